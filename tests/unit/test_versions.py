"""Each ecosystem's version ordering (scan/versions.py), with boundaries checked from both sides."""

from __future__ import annotations

import pytest

from dockyard.scan import versions

# (kind, lower, higher): lower < higher, and so higher > lower.
ORDERED = [
    # dpkg: epochs, tildes, Debian revisions, stable updates, binNMUs
    ("dpkg", "2.1-1", "1:2.0-1"),
    ("dpkg", "1:2.0-1", "1:2.0-2"),
    ("dpkg", "1.0~rc1", "1.0"),
    ("dpkg", "1.0~rc1-1", "1.0~rc2-1"),
    ("dpkg", "252.39-1~deb12u2", "252.39-1"),
    ("dpkg", "252.39-1~deb12u1", "252.39-1~deb12u2"),
    ("dpkg", "1.2-1", "1.2-1+deb12u1"),
    ("dpkg", "2.36-9+deb12u14", "2.36-9+deb12u15"),
    ("dpkg", "5.2.15-2", "5.2.15-2+b1"),
    ("dpkg", "1.2.13.dfsg-1", "1.2.14-1"),
    ("dpkg", "1.9", "1.10"),
    # apk: -rN releases, _rc/_alpha/_pre below the release, _p after it
    ("apk", "1.2.3-r0", "1.2.3-r1"),
    ("apk", "1.2.3_rc1-r0", "1.2.3-r0"),
    ("apk", "1.2.3_alpha1-r0", "1.2.3_rc1-r0"),
    ("apk", "1.2.3-r9", "1.2.3_p1-r0"),
    ("apk", "1.2.9-r0", "1.2.10-r0"),
    ("apk", "3.1.4-r0", "3.1.4a-r0"),
    # rpm: epoch first, then version, then release
    ("rpm", "2.0-1", "1:1.0-1"),
    ("rpm", "1.0-1.el9", "1.0-2.el9"),
    ("rpm", "1.0-2.el9", "1.0.1-1.el9"),
    ("rpm", "1.0~rc1-1", "1.0-1"),
    ("rpm", "3.0.7-24.el9", "3.0.7-25.el9_3"),
    # PEP 440: dev < pre < final < post; local versions after
    ("pep440", "1.0.dev1", "1.0a1"),
    ("pep440", "1.0a1", "1.0b1"),
    ("pep440", "1.0rc1", "1.0"),
    ("pep440", "1.0", "1.0.post1"),
    ("pep440", "1.0", "1.0+local.1"),
    ("pep440", "1.9", "1.10"),
    # semver: prerelease below its release, numeric identifiers numerically
    ("semver", "1.0.0-rc.1", "1.0.0"),
    ("semver", "1.0.0-alpha", "1.0.0-alpha.1"),
    ("semver", "1.0.0-alpha.2", "1.0.0-alpha.10"),
    ("semver", "1.9.0", "1.10.0"),
    # Go: semver with a v prefix, pseudo-versions before the tag they precede
    ("go", "v1.2.3", "v1.10.0"),
    ("go", "v0.0.0-20230101000000-abcdefabcdef", "v0.0.1"),
    ("go", "v1.2.3-rc.1", "v1.2.3"),
]


@pytest.mark.parametrize(("kind", "lower", "higher"), ORDERED)
def test_orders_both_sides(kind: str, lower: str, higher: str) -> None:
    assert versions.compare(kind, lower, higher) == -1
    assert versions.compare(kind, higher, lower) == 1
    assert versions.compare(kind, lower, lower) == 0


@pytest.mark.parametrize(("kind", "left", "right"), [
    ("dpkg", "1.0-1", "0:1.0-1"),  # epoch 0 is no epoch
    ("pep440", "1.0", "1.0.0"),
    ("rpm", "1.0-1", "0:1.0-1"),
    ("go", "v1.2.3", "1.2.3"),
])
def test_equal_spellings(kind: str, left: str, right: str) -> None:
    assert versions.compare(kind, left, right) == 0


@pytest.mark.parametrize(("kind", "text"), [
    ("dpkg", "not a version"), ("dpkg", ""), ("apk", "garbage!!"), ("pep440", "one.two"),
    ("semver", "abc"), ("go", "latest"), ("rpm", ""), ("nope", "1.0"), ("dpkg", "1" * 300),
])
def test_unreadable_is_none_not_an_exception(kind: str, text: str) -> None:
    assert versions.parse(kind, text) is None
    assert versions.compare(kind, text, "1.0") is None


@pytest.mark.parametrize(("ecosystem", "range_type", "kind"), [
    ("Debian:12", "ECOSYSTEM", "dpkg"), ("Debian", "ECOSYSTEM", "dpkg"), ("Ubuntu:22.04:LTS", "ECOSYSTEM", "dpkg"),
    ("Alpine:v3.18", "ECOSYSTEM", "apk"), ("Rocky Linux:9", "ECOSYSTEM", "rpm"), ("AlmaLinux:9", "ECOSYSTEM", "rpm"),
    ("Red Hat:enterprise_linux:9", "ECOSYSTEM", "rpm"), ("PyPI", "ECOSYSTEM", "pep440"),
    ("npm", "ECOSYSTEM", "semver"), ("npm", "SEMVER", "semver"), ("Go", "SEMVER", "go"), ("Go", "ECOSYSTEM", "go"),
    ("Debian:12", "GIT", None), ("crates.io", "ECOSYSTEM", None),
])
def test_kind_of_each_ecosystem(ecosystem: str, range_type: str, kind: str | None) -> None:
    assert versions.kind_of(ecosystem, range_type) == kind
