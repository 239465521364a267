"""The values a project's policies are made of, checked the same way wherever they come from: the
API's JSON bodies, the CLI's options and the declarative policy file (``policy/document.py``).

Each check refuses a bad value with a 400 (``INVALID_REQUEST``) whose message names the field and
says what to write instead, and whose ``detail`` is ``{"field": NAME}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.errors import RequestInvalid
from dockyard.policy.checks import MAX_QUOTA, check_cron, check_glob, check_pattern, parse_size
from dockyard.store.policies import RetentionRules

MAX_KEEP_LAST = 1_000_000
MAX_DAYS = 36_500  # a hundred years; the columns are 32-bit integers
RETENTION_FIELDS: tuple[str, ...] = ("repository", "keep_last", "keep_days", "keep_pulled_days", "keep_tags",
                                     "keep_tags_invert", "untagged_days", "schedule")
_COUNTS: dict[str, int] = {"keep_last": MAX_KEEP_LAST, "keep_days": MAX_DAYS, "keep_pulled_days": MAX_DAYS,
                           "untagged_days": MAX_DAYS}


def _invalid(name: str, message: str) -> RequestInvalid:
    return RequestInvalid(message, detail={"field": name})


def _named(name: str, check: Any, *args: object) -> Any:
    """Run a check from ``policy/checks.py`` and make its error name the field."""
    try:
        return check(*args)
    except RequestInvalid as exc:
        raise _invalid(name, exc.message if name in exc.message else f"{name}: {exc.message}") from None


def count(name: str, value: object, maximum: int) -> int | None:
    """A whole number from 0 to ``maximum``, or None (the rule left out)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _invalid(name, f"{name} must be a whole number from 0 to {maximum} (or left out)")
    return value


def glob(name: str, value: object) -> str:
    return str(_named(name, check_glob, name, value))


def pattern(name: str, value: object) -> str | None:
    """A regular expression, or None (no rule)."""
    return None if value is None else str(_named(name, check_pattern, name, value))


def retention_rules(values: Mapping[str, object]) -> RetentionRules:
    """One retention policy from its fields (``RETENTION_FIELDS``; ``repository`` defaults to ``*``)."""
    unknown = sorted(set(values) - set(RETENTION_FIELDS))
    if unknown:
        raise _invalid(unknown[0], f"unknown retention field(s) {', '.join(unknown)[:200]}; "
                                   f"a retention policy takes {', '.join(RETENTION_FIELDS)}")
    repository = values.get("repository")
    counts = {name: count(name, values.get(name), maximum) for name, maximum in _COUNTS.items()}
    keep_tags = pattern("keep_tags", values.get("keep_tags"))
    invert = values.get("keep_tags_invert")
    if invert is not None and not isinstance(invert, bool):
        raise _invalid("keep_tags_invert", "keep_tags_invert must be true or false")
    if invert and keep_tags is None:
        raise _invalid("keep_tags_invert", "keep_tags_invert keeps every tag but those matching keep_tags: "
                                           "give keep_tags too")
    schedule = values.get("schedule")
    rules = RetentionRules(
        repository_glob="*" if repository is None else glob("repository", repository),
        keep_tags=keep_tags, keep_tags_invert=bool(invert),
        schedule=None if schedule is None else str(_named("schedule", check_cron, schedule)), **counts)
    if keep_tags is None and all(v is None for v in counts.values()):
        raise _invalid("keep_last", "a retention policy needs at least one rule: keep_last, keep_days, "
                                    "keep_pulled_days, keep_tags or untagged_days")
    return rules


def retention_view(rules: RetentionRules) -> dict[str, Any]:
    """A retention policy's fields under the names the API, the CLI and the policy file use."""
    return {"repository": rules.repository_glob, "keep_last": rules.keep_last, "keep_days": rules.keep_days,
            "keep_pulled_days": rules.keep_pulled_days, "keep_tags": rules.keep_tags,
            "keep_tags_invert": rules.keep_tags_invert, "untagged_days": rules.untagged_days,
            "schedule": rules.schedule}


def quota(value: object) -> int | None:
    """A quota: bytes (an integer), a size such as ``500MiB`` or ``10GiB``, or None / ``none`` for none."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > 64:
            raise _invalid("quota", "quota is not a size: write it like 500MiB, 10GiB, 2GB, a number of bytes, "
                                    "or none")
        return _named("quota", parse_size, value)  # type: ignore[no-any-return]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUOTA:
        raise _invalid("quota", f"quota must be a size like 10GiB, a number of bytes from 0 to {MAX_QUOTA}, "
                                "or none (null)")
    return value
