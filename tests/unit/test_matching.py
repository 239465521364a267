"""Matching installed packages against advisories (scan/matching.py), as tables."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from dockyard.scan import matching, osv
from dockyard.scan.report import Distro, Package

DATA = Path(__file__).parents[1] / "data" / "osv"
DEBIAN_12 = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)", "bookworm")


def deb(name: str, version: str, source: str | None = None, source_version: str | None = None) -> Package:
    return Package(name, version, "deb", f"pkg:deb/debian/{name}@{version}?distro=debian-12", "sha256:layer",
                   "var/lib/dpkg/status", source, source_version)


# Copied from /work/cache/bookworm-minbase/var/lib/dpkg/status (Package, Version, Source).
MINBASE = [
    deb("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
    deb("libc6", "2.36-9+deb12u14", "glibc"),
    deb("libc-bin", "2.36-9+deb12u14", "glibc"),
    deb("libsystemd0", "252.39-1~deb12u2", "systemd"),
    deb("libudev1", "252.39-1~deb12u2", "systemd"),
    deb("base-files", "12.4+deb12u15"),
    deb("tzdata", "2026b-0+deb12u1"),
    deb("bash", "5.2.15-2+b13", "bash", "5.2.15-2"),
    deb("login", "1:4.13+dfsg1-1+deb12u2", "shadow"),
    deb("passwd", "1:4.13+dfsg1-1+deb12u2", "shadow"),
    deb("libzstd1", "1.5.4+dfsg2-5", "libzstd"),
    deb("gzip", "1.12-1"),
    deb("dpkg", "1.21.23"),
]


def by_key(advisories: Iterable[osv.Advisory]) -> dict[matching.Key, list[matching.Candidate]]:
    found: dict[matching.Key, list[matching.Candidate]] = {}
    for advisory in advisories:
        for entry in advisory.affected:
            ecosystem = matching.stored_ecosystem(entry.ecosystem)
            found.setdefault((ecosystem, matching.stored_name(ecosystem, entry.package)), []).append(
                (advisory, entry))
    return found


def test_the_minbase_advisories_match_exactly_as_the_readme_says() -> None:
    advisories = [item.advisory for item in osv.read(DATA / "debian") if item.advisory]
    assert len(advisories) == 26
    found = matching.match(matching.lookups(MINBASE, DEBIAN_12), by_key(advisories))
    expected = json.loads((DATA / "bookworm-minbase.expected").read_text())["vulnerabilities"]
    assert [(v.id, v.package, v.fixed, v.severity) for v in found] == [
        (e["id"], e["package"], e["fixed"], e["severity"])
        for e in sorted(expected, key=lambda e: (-"unknown low medium high critical".split().index(e["severity"]),
                                                 e["id"], e["package"]))]
    bash = next(v for v in found if v.package == "bash")
    assert (bash.installed, bash.ecosystem, bash.aliases) == ("5.2.15-2+b13", "Debian:12", ("CVE-2026-90015",))
    zlib = next(v for v in found if v.package == "zlib1g")
    assert (zlib.score, zlib.purl, zlib.layer) == (9.8, MINBASE[0].purl, "sha256:layer")


def entry(ecosystem: str, package: str, *events: tuple[str, str], versions: tuple[str, ...] = (),
          range_type: str = "ECOSYSTEM") -> osv.Affected:
    ranges = (osv.Range(range_type, events),) if events else ()
    return osv.Affected(ecosystem, package, ranges, versions)


def advisory(ident: str, *entries: osv.Affected, withdrawn: bool = False, severity: str = "unknown") -> osv.Advisory:
    return osv.Advisory(ident, None, withdrawn, (), None, severity, affected=entries)


def pkg(kind: str, name: str, version: str, **fields: str) -> Package:
    return Package(name, version, kind, f"pkg:{kind}/{name}@{version}", "sha256:l", "p", **fields)  # type: ignore[arg-type]


ALPINE = Distro("alpine", "3.18.4")
ROCKY = Distro("rocky", "9.3")

CASES = [
    # (package, distro, advisory, matched, fixed)
    (pkg("apk", "libcrypto3", "3.1.4-r0", source="openssl"), ALPINE,
     advisory("A1", entry("Alpine:v3.18", "openssl", ("introduced", "0"), ("fixed", "3.1.4-r1"))), True, "3.1.4-r1"),
    (pkg("apk", "libcrypto3", "3.1.4-r1", source="openssl"), ALPINE,
     advisory("A2", entry("Alpine:v3.18", "openssl", ("introduced", "0"), ("fixed", "3.1.4-r1"))), False, None),
    (pkg("apk", "busybox", "1.36.1_rc1-r0"), ALPINE,
     advisory("A3", entry("Alpine:v3.18", "busybox", ("introduced", "0"), ("fixed", "1.36.1-r0"))), True, "1.36.1-r0"),
    (pkg("apk", "busybox", "1.36.1_p1-r0"), ALPINE,
     advisory("A4", entry("Alpine:v3.18", "busybox", ("introduced", "0"), ("fixed", "1.36.1-r0"))), False, None),
    (pkg("apk", "busybox", "1.36.1-r0"), ALPINE,
     advisory("A5", entry("Alpine:v3.17", "busybox", ("introduced", "0"), ("fixed", "1.36.1-r9"))), False, None),
    (pkg("rpm", "openssl-libs", "1:3.0.7-24.el9", source="openssl"), ROCKY,
     advisory("R1", entry("Rocky Linux:9", "openssl-libs", ("introduced", "0"), ("fixed", "1:3.0.7-25.el9_3"))),
     True, "1:3.0.7-25.el9_3"),
    (pkg("rpm", "openssl-libs", "1:3.0.7-24.el9", source="openssl"), ROCKY,
     advisory("R2", entry("Rocky Linux:9", "openssl", ("introduced", "0"), ("fixed", "1:3.0.7-25.el9_3"))),
     True, "1:3.0.7-25.el9_3"),
    (pkg("rpm", "openssl-libs", "1:3.0.7-24.el9"), ROCKY,
     advisory("R3", entry("Rocky Linux:9", "openssl-libs", ("introduced", "0"), ("fixed", "3.0.8-1.el9"))),
     False, None),
    (pkg("rpm", "bash", "5.1.8-6.el9_1"), Distro("rhel", "9.3"),
     advisory("R4", entry("Red Hat:enterprise_linux:9::baseos", "bash", ("introduced", "0"), ("fixed", "5.1.8-9.el9"))),
     True, "5.1.8-9.el9"),
    (pkg("pypi", "Django", "4.2.1"), None,
     advisory("P1", entry("PyPI", "django", ("introduced", "4.2"), ("fixed", "4.2.2"))), True, "4.2.2"),
    (pkg("pypi", "zope.interface", "6.0"), None,
     advisory("P2", entry("PyPI", "Zope_Interface", ("introduced", "0"), ("fixed", "6.0.post1"))), True, "6.0.post1"),
    (pkg("pypi", "requests", "2.31.0"), None,
     advisory("P3", entry("PyPI", "requests", ("introduced", "0"), ("fixed", "2.31.0rc1"))), False, None),
    (pkg("pypi", "requests", "2.31.0.dev1"), None,
     advisory("P4", entry("PyPI", "requests", ("introduced", "2.31.0a1"), ("fixed", "2.32.0"))), False, None),
    (pkg("pypi", "requests", "2.30.0"), None,
     advisory("P5", entry("PyPI", "requests", versions=("2.29.0", "2.30.0"))), True, None),
    (pkg("npm", "lodash", "4.17.20"), None,
     advisory("N1", entry("npm", "lodash", ("introduced", "0"), ("fixed", "4.17.21"), range_type="SEMVER")),
     True, "4.17.21"),
    (pkg("npm", "lodash", "4.17.21-rc.1"), None,
     advisory("N2", entry("npm", "lodash", ("introduced", "0"), ("last_affected", "4.17.20"), range_type="SEMVER")),
     False, None),
    (pkg("npm", "lodash", "4.17.21"), None,
     advisory("N3", entry("npm", "lodash", ("introduced", "4.0.0"), ("limit", "4.17.21"))), False, None),
    (pkg("npm", "lodash", "4.17.20"), None,
     advisory("N4", entry("npm", "lodash", ("introduced", "4.0.0"), ("limit", "4.17.21"))), True, None),
    (pkg("golang", "golang.org/x/net", "v0.17.0"), None,
     advisory("G1", entry("Go", "golang.org/x/net", ("introduced", "0"), ("fixed", "0.17.0"), range_type="SEMVER")),
     False, None),
    (pkg("golang", "golang.org/x/net", "v0.16.0"), None,
     advisory("G2", entry("Go", "golang.org/x/net", ("introduced", "0"), ("fixed", "0.17.0"), range_type="SEMVER")),
     True, "0.17.0"),
    # withdrawn advisories never match
    (pkg("npm", "lodash", "4.17.20"), None,
     advisory("W1", entry("npm", "lodash", ("introduced", "0")), withdrawn=True), False, None),
    # an entry without "introduced" affects nothing; "introduced" alone affects every later version
    (pkg("npm", "lodash", "4.17.20"), None, advisory("E1", entry("npm", "lodash", ("fixed", "5.0.0"))), False, None),
    (pkg("npm", "lodash", "4.17.20"), None,
     advisory("E2", entry("npm", "lodash", ("introduced", "4.17.20"))), True, None),
]


@pytest.mark.parametrize(("package", "distro", "found", "matched", "fixed"), CASES,
                         ids=[case[2].id for case in CASES])
def test_matching_table(package: Package, distro: Distro | None, found: osv.Advisory, matched: bool,
                        fixed: str | None) -> None:
    vulns = matching.match(matching.lookups([package], distro), by_key([found]))
    assert [(v.id, v.fixed) for v in vulns] == ([(found.id, fixed)] if matched else [])


@pytest.mark.parametrize(("package", "distro", "ecosystem"), [
    (deb("a", "1"), DEBIAN_12, "Debian:12"),
    (deb("a", "1"), Distro("debian", "12.4"), "Debian:12"),
    (deb("a", "1"), Distro("debian", None, codename="trixie"), "Debian"),
    (deb("a", "1"), Distro("ubuntu", "22.04"), "Ubuntu:22.04:LTS"),
    (deb("a", "1"), Distro("ubuntu", "23.10"), "Ubuntu:23.10"),
    (deb("a", "1"), Distro("ubuntu", "24.04"), "Ubuntu:24.04:LTS"),
    (deb("a", "1"), Distro("ubuntu", "23.04"), "Ubuntu:23.04"),
    (deb("a", "1"), None, None),
    (deb("a", "1"), Distro("alpine", "3.18.4"), None),
    (pkg("apk", "a", "1-r0"), ALPINE, "Alpine:v3.18"),
    (pkg("apk", "a", "1-r0"), Distro("alpine", "3.19_alpha20230901"), "Alpine:v3.19"),
    (pkg("rpm", "a", "1-1"), ROCKY, "Rocky Linux:9"),
    (pkg("rpm", "a", "1-1"), Distro("almalinux", "9.3"), "AlmaLinux:9"),
    (pkg("rpm", "a", "1-1"), Distro("rhel", "8.9"), "Red Hat:enterprise_linux:8"),
    (pkg("rpm", "a", "1-1"), Distro("fedora", "39"), None),
    (pkg("pypi", "a", "1"), None, "PyPI"),
    (pkg("npm", "a", "1.0.0"), ALPINE, "npm"),
    (pkg("golang", "a", "v1.0.0"), None, "Go"),
])
def test_ecosystem_of(package: Package, distro: Distro | None, ecosystem: str | None) -> None:
    assert matching.ecosystem_of(package, distro) == ecosystem


def test_debian_lookups_use_the_source_and_the_bare_ecosystem() -> None:
    [found] = matching.lookup(deb("bash", "5.2.15-2+b13", "bash", "5.2.15-2"), DEBIAN_12)
    assert (found.name, found.version, found.keys) == ("bash", "5.2.15-2", (("Debian:12", "bash"), ("Debian", "bash")))
    [found] = matching.lookup(deb("zlib1g", "1:1.2.13.dfsg-1", "zlib"), DEBIAN_12)
    assert (found.name, found.version) == ("zlib", "1:1.2.13.dfsg-1")


def test_an_unreadable_installed_version_matches_nothing_and_is_counted() -> None:
    stats = matching.MatchStats()
    package = pkg("npm", "lodash", "not-a-version")
    found = advisory("U1", entry("npm", "lodash", ("introduced", "0")))
    assert matching.match(matching.lookups([package], None), by_key([found]), stats) == []
    assert stats.unreadable_installed == 1
    assert stats.examples == ["npm lodash not-a-version"]


def test_an_unreadable_event_skips_its_range_and_is_counted() -> None:
    stats = matching.MatchStats()
    found = advisory("U2", dataclasses.replace(
        entry("npm", "lodash", ("introduced", "0"), ("fixed", "garbage!")),
        ranges=(osv.Range("SEMVER", (("introduced", "0"), ("fixed", "garbage!"))),
                osv.Range("SEMVER", (("introduced", "4.0.0"), ("fixed", "4.17.21"))))))
    vulns = matching.match(matching.lookups([pkg("npm", "lodash", "4.17.20")], None), by_key([found]), stats)
    assert [(v.id, v.fixed) for v in vulns] == [("U2", "4.17.21")]
    assert stats.unreadable_ranges == 1


def test_sorted_by_severity_then_id() -> None:
    package = pkg("npm", "lodash", "4.17.20")
    found = [advisory(ident, entry("npm", "lodash", ("introduced", "0")), severity=sev)
             for ident, sev in [("B", "low"), ("A", "low"), ("C", "critical"), ("D", "unknown"), ("E", "high")]]
    assert [v.id for v in matching.match(matching.lookups([package], None), by_key(found))] == ["C", "E", "A", "B", "D"]


def test_affected_entry_severity_when_the_advisory_has_none() -> None:
    found = advisory("S1", dataclasses.replace(entry("npm", "lodash", ("introduced", "0")), severity="high"))
    [vuln] = matching.match(matching.lookups([pkg("npm", "lodash", "1.0.0")], None), by_key([found]))
    assert vuln.severity == "high"
