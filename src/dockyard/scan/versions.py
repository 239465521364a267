"""Version ordering per OSV ecosystem, from maintained libraries (no comparator of our own).

    ecosystem (before the first ":")                   ordering             library
    Debian, Ubuntu                                     dpkg                 univers DebianVersion
    Alpine                                             apk                  univers AlpineLinuxVersion
    Red Hat, Rocky Linux, AlmaLinux, openSUSE, SUSE,   rpm                  univers RpmVersion
      Mageia, openEuler, Azure Linux
    PyPI                                               PEP 440              packaging.version
    npm, and any range of type SEMVER                  semver               univers SemverVersion
    Go                                                 semver, "v" prefix   univers GolangVersion

``parse(kind, text)`` gives a comparable value, or None when the library cannot read ``text``:
an unreadable version never raises into a scan, the caller counts it and matches nothing.
Parsed values are cached (the same fixed versions recur across thousands of advisories); what is
compared is univers's scheme value (``Version.value``), which univers itself compares.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import packaging.version
from univers import versions as univers

ECOSYSTEM_KINDS = {
    "Debian": "dpkg", "Ubuntu": "dpkg",
    "Alpine": "apk",
    "Red Hat": "rpm", "Rocky Linux": "rpm", "AlmaLinux": "rpm", "openSUSE": "rpm", "SUSE": "rpm",
    "Mageia": "rpm", "openEuler": "rpm", "Azure Linux": "rpm",
    "PyPI": "pep440",
    "npm": "semver",
    "Go": "go",
}

_PARSERS: dict[str, Callable[[str], Any]] = {
    "dpkg": univers.DebianVersion,
    "apk": univers.AlpineLinuxVersion,
    "rpm": univers.RpmVersion,
    "pep440": packaging.version.Version,
    "semver": univers.SemverVersion,
    "go": univers.GolangVersion,
}

# Where univers's wrapper only compares its ``value`` (apk's compares itself: its value is the string).
_COMPARE_VALUE = frozenset({"dpkg", "rpm", "semver", "go"})


@lru_cache(maxsize=1024)
def kind_of(ecosystem: str, range_type: str = "ECOSYSTEM") -> str | None:
    """The ordering for versions of ``ecosystem`` in a range of ``range_type``; None: none we know
    (GIT ranges name commits, which have no order without the repository)."""
    if range_type == "SEMVER":
        return "go" if ecosystem.split(":", 1)[0] == "Go" else "semver"
    if range_type != "ECOSYSTEM":
        return None
    return ECOSYSTEM_KINDS.get(ecosystem.split(":", 1)[0])


@lru_cache(maxsize=50_000)  # bounded: a parsed version is a few hundred bytes
def parse(kind: str, text: str) -> Any | None:
    """``text`` as a comparable version of ordering ``kind``; None if the library cannot parse it."""
    parser = _PARSERS.get(kind)
    if parser is None or not text or len(text) > 256:
        return None
    try:
        parsed = parser(text.strip())
    except Exception:  # each library raises its own kind; unreadable is all we need to know
        return None
    # univers wraps each scheme's comparable value in an attrs class whose comparisons cost twice
    # as much; the value is what it compares.
    return parsed.value if kind in _COMPARE_VALUE else parsed


@lru_cache(maxsize=100_000)  # rescans compare the same installed and fixed versions again
def compare(kind: str, left: str, right: str) -> int | None:
    """-1, 0 or 1 as ``left`` is below, equal to or above ``right``; None if either is unreadable."""
    a, b = parse(kind, left), parse(kind, right)
    if a is None or b is None:
        return None
    return -1 if a < b else 1 if b < a else 0
