"""Which advisories affect which installed packages (pure: the candidates come from the caller).

A package is looked up under the (ecosystem, name) pairs advisories use for it (``lookup``):

- the ecosystem from its type and the image's distribution (``ecosystem_of``): deb on Debian 12
  → "Debian:12", on Ubuntu 22.04 → "Ubuntu:22.04:LTS"; apk on Alpine 3.18.4 → "Alpine:v3.18";
  rpm on Rocky 9.3 → "Rocky Linux:9", AlmaLinux → "AlmaLinux:9", RHEL → "Red Hat:enterprise_linux:9"
  (OSV's "Red Hat:enterprise_linux:9::appstream" is stored under that prefix, ``stored_ecosystem``);
  pypi → "PyPI", npm → "npm", golang → "Go". Advisories for the bare ecosystem ("Debian") match too.
- the name: Debian, Ubuntu and Alpine advisories name the *source* package, so a binary package
  is looked up by its ``source`` (its own name when it has none) and compared by its source
  version (its own version when none is given); rpm packages by their name, and by their source
  too; PyPI names PEP 503-normalised.

An entry affects the installed version when the version is in its ``versions`` list, or inside
one of its ECOSYSTEM/SEMVER ranges, evaluated as the OSV schema says: events in version order,
``introduced`` opens ("0": from the start), ``fixed`` closes (that version is not affected),
``last_affected`` closes after that version, and with ``limit`` events the version must be below
one. GIT ranges (commits) are not evaluated. A withdrawn advisory never matches. A version the
ecosystem's ordering cannot read matches nothing and is counted in ``MatchStats``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.scan import versions
from dockyard.scan.osv import Advisory, Affected, Range
from dockyard.scan.report import SEVERITY_RANK, Distro, Package, Vulnerability

Key = tuple[str, str]  # (ecosystem, package name) as stored
Candidate = tuple[Advisory, Affected]  # an advisory (its ``affected`` may be left empty) and one entry

_LANGUAGE_ECOSYSTEMS = {"pypi": "PyPI", "npm": "npm", "golang": "Go", "cargo": "crates.io", "gem": "RubyGems",
                        "maven": "Maven", "nuget": "NuGet", "composer": "Packagist", "hex": "Hex", "pub": "Pub"}
_RPM_DISTROS = {"rocky": "Rocky Linux", "almalinux": "AlmaLinux"}
_BY_SOURCE = ("deb", "apk")  # their advisories name source packages only


@dataclass(slots=True)
class MatchStats:
    """What matching could not judge: versions the ecosystem's ordering cannot read."""

    unreadable_installed: int = 0  # installed versions (each package once)
    unreadable_ranges: int = 0  # ranges with an event version that could not be read
    examples: list[str] = field(default_factory=list)  # a few "ecosystem name version" for the report

    def note(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)


@dataclass(frozen=True, slots=True)
class Lookup:
    """One installed package as advisories name it."""

    package: Package
    ecosystem: str  # the package's OSV ecosystem ("Debian:12")
    name: str  # the name advisories use (the source package for deb/apk)
    version: str  # the version compared (the source version for deb/apk when given)
    keys: tuple[Key, ...]  # where its candidates are stored


def ecosystem_of(package: Package, distro: Distro | None) -> str | None:
    """The OSV ecosystem of an installed package; None when no advisory database covers it."""
    if package.type in _LANGUAGE_ECOSYSTEMS:
        return _LANGUAGE_ECOSYSTEMS[package.type]
    if distro is None:
        return None
    ident = distro.id.lower()
    release = distro.version_id or ""
    if package.type == "deb":
        if ident == "debian":
            major = release.split(".")[0]
            return f"Debian:{major}" if major.isdigit() else "Debian"
        if ident == "ubuntu" and (found := re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", release)):
            year, month = int(found[1]), int(found[2])
            lts = ":LTS" if month == 4 and year % 2 == 0 else ""
            return f"Ubuntu:{found[1]}.{found[2]}{lts}"
        return None
    if package.type == "apk" and ident == "alpine":
        found = re.match(r"(\d+)\.(\d+)", release)
        return f"Alpine:v{found[1]}.{found[2]}" if found else "Alpine"
    if package.type == "rpm":
        major = release.split(".")[0]
        if not major.isdigit():
            return None
        if ident in _RPM_DISTROS:
            return f"{_RPM_DISTROS[ident]}:{major}"
        if ident == "rhel":
            return f"Red Hat:enterprise_linux:{major}"
    return None


def stored_ecosystem(ecosystem: str) -> str:
    """The ecosystem an advisory's entry is stored and looked up under: as written, except Red Hat's
    "Red Hat:enterprise_linux:9::appstream", stored as "Red Hat:enterprise_linux:9" (an image does
    not say which repository a package came from)."""
    if ecosystem.startswith("Red Hat:"):
        return ":".join(ecosystem.split(":")[:3])
    return ecosystem


def stored_name(ecosystem: str, name: str) -> str:
    """A package name as stored and looked up: PyPI's PEP 503-normalised, others as written."""
    if ecosystem.split(":", 1)[0] == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def _bare(ecosystem: str) -> str:
    return ecosystem.split(":", 1)[0]


def lookup(package: Package, distro: Distro | None) -> list[Lookup]:
    """The names and versions a package is matched under (two for an rpm with another source)."""
    ecosystem = ecosystem_of(package, distro)
    if ecosystem is None:
        return []
    ecosystems = (ecosystem,) if _bare(ecosystem) == ecosystem else (ecosystem, _bare(ecosystem))
    pairs: list[tuple[str, str]] = []
    if package.type in _BY_SOURCE:
        pairs.append((package.source or package.name, package.source_version or package.version))
    else:
        pairs.append((package.name, package.version))
        if package.type == "rpm" and package.source and package.source != package.name:
            pairs.append((package.source, package.source_version or package.version))
    return [Lookup(package, ecosystem, name, version,
                   tuple((e, stored_name(e, name)) for e in ecosystems)) for name, version in pairs]


def lookups(packages: Iterable[Package], distro: Distro | None) -> list[Lookup]:
    return [found for package in packages for found in lookup(package, distro)]


@dataclass(frozen=True, slots=True)
class Hit:
    """An affected entry that affects an installed package (its advisory not yet looked at)."""

    lookup: Lookup
    advisory_id: str
    affected: Affected
    fixed: str | None


def find_hits(packages: Sequence[Lookup], entries_by_key: Mapping[Key, Sequence[tuple[str, Affected]]],
              stats: MatchStats | None = None) -> list[Hit]:
    """Which (advisory id, entry) pairs stored under each package's keys affect its version."""
    stats = stats if stats is not None else MatchStats()
    hits = []
    for item in packages:
        kind = versions.kind_of(item.ecosystem)
        if kind is None or versions.parse(kind, item.version) is None:
            if any(entries_by_key.get(key) for key in item.keys):
                stats.unreadable_installed += 1
                stats.note(f"{item.ecosystem} {item.name} {item.version}")
            continue
        order = _order_against(item.version)
        for key in item.keys:
            for advisory_id, affected in entries_by_key.get(key, ()):
                hit, fixed = affects(affected, item.version, order, stats)
                if hit:
                    hits.append(Hit(item, advisory_id, affected, fixed))
    return hits


def vulnerabilities(hits: Iterable[Hit], advisories: Mapping[str, Advisory]) -> list[Vulnerability]:
    """The hits as vulnerabilities, sorted most severe first, then by id; a hit whose advisory is
    not in ``advisories`` (withdrawn, or gone) is left out."""
    found: dict[tuple[str, str, str, str], Vulnerability] = {}
    for hit in hits:
        advisory = advisories.get(hit.advisory_id)
        if advisory is None or advisory.withdrawn:
            continue
        package = hit.lookup.package
        severity = advisory.severity if advisory.severity != "unknown" else hit.affected.severity or "unknown"
        found.setdefault((advisory.id, package.name, package.version, package.purl), Vulnerability(
            id=advisory.id, aliases=advisory.aliases, package=package.name, ecosystem=hit.lookup.ecosystem,
            installed=package.version, fixed=hit.fixed, severity=severity, summary=advisory.summary,
            score=advisory.score, purl=package.purl, layer=package.layer))
    return sorted(found.values(), key=lambda v: (-SEVERITY_RANK.get(v.severity, 1), v.id, v.package, v.installed))


def match(packages: Sequence[Lookup], advisories_by_key: Mapping[Key, Sequence[Candidate]],
          stats: MatchStats | None = None) -> list[Vulnerability]:
    """The vulnerabilities of ``packages`` (from ``lookups``), sorted most severe first, then by id."""
    entries = {key: [(advisory.id, affected) for advisory, affected in found if not advisory.withdrawn]
               for key, found in advisories_by_key.items()}
    advisories = {advisory.id: advisory for found in advisories_by_key.values() for advisory, _ in found}
    return vulnerabilities(find_hits(packages, entries, stats), advisories)


Order = Callable[[str, str], int | None]  # (kind, event version) → installed below (-1), equal (0), above (1)


def _order_against(installed: str) -> Order:
    def order(kind: str, other: str) -> int | None:
        return versions.compare(kind, installed, other)
    return order


def affects(affected: Affected, installed: str, order: Order | None = None,
            stats: MatchStats | None = None) -> tuple[bool, str | None]:
    """Whether ``installed`` is affected by the entry, and the lowest fixed version above it."""
    order = order or _order_against(installed)
    hit = installed in affected.versions
    fixes: list[tuple[str, str]] = []  # (kind, version) of fixed events above the installed version
    for entry in affected.ranges:
        kind = versions.kind_of(affected.ecosystem, entry.type)
        if kind is None:
            continue
        events = entry.events
        if len(events) == 2 and events[0] == ("introduced", "0") and events[1][0] == "fixed":
            # the common shape, "affected from the start until fixed in X", in one comparison
            below = order(kind, events[1][1])
            if below is None:
                if stats is not None:
                    stats.unreadable_ranges += 1
                continue
            if below == -1:
                hit = True
                fixes.append((kind, events[1][1]))
            continue
        inside = _in_range(kind, entry, order)
        if inside is None:
            if stats is not None:
                stats.unreadable_ranges += 1
            continue
        hit = hit or inside
        fixes.extend((kind, v) for k, v in entry.events if k == "fixed" and order(kind, v) == -1)
    if not hit:
        return False, None
    lowest: str | None = None
    for kind, version in fixes:
        if lowest is None or versions.compare(kind, version, lowest) == -1:
            lowest = version
    return True, lowest


def _in_range(kind: str, entry: Range, order: Order) -> bool | None:
    """Whether the installed version is inside the range; None when an event version is unreadable."""
    introduced = [v for k, v in entry.events if k == "introduced"]
    closing = [(k, v) for k, v in entry.events if k in ("fixed", "last_affected")]
    limits = [v for k, v in entry.events if k == "limit"]
    if not introduced:
        return False
    if len(introduced) == 1 and len(closing) <= 1:
        inside = _simple(kind, introduced[0], closing[0] if closing else None, order)
    else:
        inside = _sorted(kind, entry, order)
    if not inside or not limits:
        return inside
    below = [order(kind, v) for v in limits]
    if None in below:
        return None
    return any(c == -1 for c in below)


def _simple(kind: str, introduced: str, closing: tuple[str, str] | None, order: Order) -> bool | None:
    if introduced != "0":
        start = order(kind, introduced)
        if start is None:
            return None
        if start == -1:
            return False
    if closing is None:
        return True
    event, version = closing
    end = order(kind, version)
    if end is None:
        return None
    return end == -1 if event == "fixed" else end <= 0


def _sorted(kind: str, entry: Range, order: Order) -> bool | None:
    """The OSV schema's evaluation: walk the events in version order ("0" first)."""
    keyed: list[tuple[tuple[Any, ...], str, str]] = []
    for event, version in entry.events:
        if event == "limit":
            continue
        if event == "introduced" and version == "0":
            keyed.append(((0,), event, version))
            continue
        parsed = versions.parse(kind, version)
        if parsed is None:
            return None
        keyed.append(((1, parsed), event, version))
    keyed.sort(key=lambda item: item[0])
    inside = False
    for _, event, version in keyed:
        position = 1 if version == "0" else order(kind, version)
        if position is None:
            return None
        if event == "introduced" and position >= 0:
            inside = True
        elif (event == "fixed" and position >= 0) or (event == "last_affected" and position > 0):
            inside = False
    return inside
