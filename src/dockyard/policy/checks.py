"""Checks on the values a policy is made of: globs, regular expressions, cron schedules, sizes.

Each refuses a bad value with a 400 that says what to fix, before it reaches a column (the sizes
are the columns' sizes, ``store/limits.py``).
"""

from __future__ import annotations

import re

from dockyard.errors import RequestInvalid
from dockyard.store import limits

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5,
          "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4, "pi": 1024**5}
MAX_QUOTA = 2**62  # fits a BIGINT with room to add to it


def _text(kind: str, value: object, size: int) -> str:
    if not isinstance(value, str):
        raise RequestInvalid(f"{kind} must be a string")
    if not value or not limits.can_hold(value, size):
        raise RequestInvalid(f"{kind} must be 1 to {size} characters of plain text")
    return value


def check_glob(kind: str, value: object) -> str:
    """A shell-style glob (``*``, ``?``, ``[...]``) of at most ``limits.GLOB`` characters."""
    return _text(kind, value, limits.GLOB)


def check_pattern(kind: str, value: object) -> str:
    """A regular expression (Python syntax) of at most ``limits.PATTERN`` characters that compiles."""
    text = _text(kind, value, limits.PATTERN)
    try:
        re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:  # a{4294967296}: OverflowError, not re.error
        raise RequestInvalid(f"{kind} {text[:80]!r} is not a valid regular expression: {exc}") from None
    return text


def check_cron(value: object) -> str:
    """A five-field cron schedule ("0 3 * * *": every day at 03:00 UTC) or a @-alias (@daily)."""
    from croniter import croniter  # loaded only where a schedule is set or checked

    text = _text("schedule", value, limits.CRON)
    if not croniter.is_valid(text) or len(text.split()) not in (1, 5):
        raise RequestInvalid(f"schedule {text[:80]!r} is not a cron expression: use five fields, "
                             "minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (03:00 UTC daily)")
    return text


def parse_size(text: str) -> int | None:
    """``500MiB``, ``10GiB``, ``2GB``, ``1048576`` (bytes), or ``none`` (no quota: None)."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    found = _SIZE.match(text)
    if found is None:
        raise RequestInvalid(f"size {text[:40]!r} is not understood: write it like 500MiB, 10GiB, 2GB, "
                             "a number of bytes, or none")
    unit = (found.group(2) or "").lower().removesuffix("b")
    size = int(float(found.group(1)) * _UNITS[unit])
    if size > MAX_QUOTA:
        raise RequestInvalid(f"size {text[:40]!r} is too large; the most is {MAX_QUOTA} bytes")
    return size


def format_size(size: int) -> str:
    """Bytes for people: 1536 → "1.5 KiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
