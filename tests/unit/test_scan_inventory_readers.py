"""Each package-database reader on real files (tests/data/scan/README.md says where each came from)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from dockyard.scan import apk, dpkg, golang, npm, osrelease, pydists, rpm
from dockyard.scan.purls import Installed, Unreadable, purl
from dockyard.scan.report import Distro

DATA = Path(__file__).parent.parent / "data" / "scan"
STATUS = DATA / "debian/var/lib/dpkg/status"
DEBIAN_12 = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)", "bookworm")


def paragraph(name: str) -> str:
    """The real status paragraph of one minbase package."""
    text = STATUS.read_text()
    return next(p for p in text.split("\n\n") if p.startswith(f"Package: {name}\n")) + "\n"


def test_dpkg_reads_every_installed_package_of_the_minbase_status_file() -> None:
    found = dpkg.packages(STATUS.read_bytes())
    assert len(found) == 88
    by_name = {p.name: p for p in found}
    assert by_name["libc6"] == Installed("deb", "libc6", "2.36-9+deb12u14", arch="amd64", source="glibc",
                                         source_version="2.36-9+deb12u14")
    # A binNMU: "Source: bash (5.2.15-2)" names the source version the binary version differs from.
    assert by_name["bash"] == Installed("deb", "bash", "5.2.15-2+b13", arch="amd64", source="bash",
                                        source_version="5.2.15-2")
    assert by_name["bsdutils"] == Installed("deb", "bsdutils", "1:2.38.1-5+deb12u3", arch="amd64",
                                            source="util-linux", source_version="2.38.1-5+deb12u3")
    assert by_name["login"] == Installed("deb", "login", "1:4.13+dfsg1-1+deb12u2", arch="amd64", source="shadow",
                                         source_version="1:4.13+dfsg1-1+deb12u2")
    assert by_name["tzdata"].arch == "all"
    assert [p.name for p in found][:3] == ["adduser", "apt", "base-files"]  # the file's order


@pytest.mark.parametrize(("status", "listed"), [
    ("install ok installed", True), ("hold ok installed", True), ("deinstall ok config-files", False),
    ("install ok half-installed", False), ("install reinstreq half-installed", False),
    ("purge ok not-installed", False),
])
def test_dpkg_lists_a_package_only_when_its_files_are_installed(status: str, listed: bool) -> None:
    text = paragraph("gzip").replace("Status: install ok installed", f"Status: {status}")
    assert [p.name for p in dpkg.packages(text.encode())] == (["gzip"] if listed else [])


def test_dpkg_status_d_files_have_no_status_field() -> None:
    # distroless writes each package's control fields (dpkg-deb --field): no Status line.
    control = re.sub(r"^Status: .*\n", "", paragraph("libc6"), flags=re.MULTILINE)
    assert dpkg.packages(control.encode()) == []  # a status file's paragraph needs a Status
    assert [p.name for p in dpkg.packages(control.encode(), status_required=False)] == ["libc6"]
    assert dpkg.is_database("var/lib/dpkg/status.d/libc6")
    assert not dpkg.is_database("var/lib/dpkg/status.d/libc6.md5sums")
    assert not dpkg.is_database("var/lib/dpkg/status-old")


def test_apk_reads_the_installed_database() -> None:
    found = apk.packages((DATA / "alpine/lib/apk/db/installed").read_bytes())
    assert found == [
        Installed("apk", "musl", "1.2.2-r3", arch="armv7", source="musl", source_version="1.2.2-r3",
                  licenses=("MIT",)),
        Installed("apk", "libssl1.1", "1.1.1k-r0", arch="armv7", source="openssl", source_version="1.1.1k-r0",
                  licenses=("OpenSSL",)),
        Installed("apk", "ca-certificates-bundle", "20191127-r5", arch="armv7", source="ca-certificates",
                  source_version="20191127-r5", licenses=("MPL-2.0 AND MIT",)),
        Installed("apk", "zlib", "1.2.11-r3", arch="armv7", source="zlib", source_version="1.2.11-r3",
                  licenses=("Zlib",)),
        Installed("apk", "libretls", "3.3.3-r2", arch="armv7", source="libretls", source_version="3.3.3-r2",
                  licenses=("ISC AND (BSD-3-Clause OR MIT)",)),
        Installed("apk", "libgcc", "10.3.1_git20210424-r2", arch="armv7", source="gcc",
                  source_version="10.3.1_git20210424-r2", licenses=("GPL-2.0-or-later LGPL-2.1-or-later",)),
    ]
    assert apk.packages(b"P:no-version\n\nV:1.0\n") == []


def test_rpm_reads_the_headers_of_an_rpmdb_sqlite_made_by_rpm() -> None:
    found = rpm.packages((DATA / "rpm/rpmdb.sqlite").read_bytes())
    assert found == [
        Installed("rpm", "libtiny", "0.9-7", arch="noarch", source="tiny-suite", source_version="0.9-7",
                  licenses=("BSD-3-Clause",), vendor="dockyard tests"),
        Installed("rpm", "hello-dockyard", "1.2.3-4", arch="noarch", source="hello-dockyard",
                  source_version="1.2.3-4", licenses=("MIT",), vendor="dockyard tests"),
        Installed("rpm", "epoch-tool", "3:2.0-1.fc39", arch="noarch", source="epoch-tool",
                  source_version="2.0-1.fc39", licenses=("GPL-2.0-or-later AND MIT",), vendor="dockyard tests"),
    ]


@pytest.mark.parametrize("data", [b"", b"SQLite format 3\x00" + b"\x00" * 200, b"Berkeley DB, not sqlite" * 50])
def test_rpm_refuses_what_is_not_an_rpmdb_sqlite(data: bytes) -> None:
    with pytest.raises(Unreadable):
        rpm.packages(data)


def test_rpm_refuses_a_header_whose_index_overruns_it() -> None:
    with pytest.raises(Unreadable):
        rpm.header(b"\x00\x00\x00\x10\x00\x00\x01\x00" + b"\x00" * 20)
    with pytest.raises(Unreadable):
        rpm.header(b"\x00\x00")


def test_python_metadata_from_dist_info_egg_info_directory_and_egg_info_file() -> None:
    assert pydists.distribution((DATA / "python/typing_extensions-4.16.0.dist-info/METADATA").read_bytes()) == [
        Installed("pypi", "typing_extensions", "4.16.0", licenses=("PSF-2.0",))]
    assert pydists.distribution((DATA / "python/xmltodict-0.13.0.egg-info/PKG-INFO").read_bytes()) == [
        Installed("pypi", "xmltodict", "0.13.0", licenses=("MIT",))]
    assert pydists.distribution((DATA / "python/wsgiref.egg-info").read_bytes()) == [
        Installed("pypi", "wsgiref", "0.1.2", licenses=("PSF or ZPL",))]
    assert pydists.distribution(b"Metadata-Version: 2.1\nName: nameless-version\n") == []
    assert pydists.is_metadata("usr/lib/python3/dist-packages/xmltodict-0.13.0.egg-info/PKG-INFO")
    assert pydists.is_metadata("usr/local/lib/python3.11/site-packages/ms-1.0.dist-info/METADATA")
    assert not pydists.is_metadata("usr/local/lib/python3.11/site-packages/ms-1.0.dist-info/RECORD")


def test_npm_package_json_of_installed_packages_only() -> None:
    assert npm.package((DATA / "npm/node_modules/ms/package.json").read_bytes()) == [
        Installed("npm", "ms", "2.1.3", licenses=("MIT",))]
    assert npm.package((DATA / "npm/node_modules/@types/ms/package.json").read_bytes()) == [
        Installed("npm", "@types/ms", "0.7.34", licenses=("MIT",))]
    assert npm.package(b'{"type": "module"}') == []
    assert npm.package(b'{"name": "x", "version": "1.0.0", "licenses": [{"type": "MIT"}, {"type": "GPL-2.0"}]}') == [
        Installed("npm", "x", "1.0.0", licenses=("MIT", "GPL-2.0"))]
    assert npm.package(b"not json") == []
    assert npm.package(b'["a list"]') == []


@pytest.mark.parametrize(("path", "manifest"), [
    ("app/node_modules/ms/package.json", True),
    ("usr/lib/node_modules/npm/node_modules/@npmcli/arborist/package.json", True),
    ("node_modules/a/node_modules/b/package.json", True),
    ("app/package.json", False),  # the project itself
    ("app/node_modules/ms/esm/package.json", False),  # a file inside a package
    ("app/node_modules/@types/package.json", False),
    ("app/node_modules/.bin/package.json", False),
    ("app/node_modules/ms/package.json.bak", False),
])
def test_npm_manifest_paths(path: str, manifest: bool) -> None:
    assert npm.is_manifest(path) is manifest


def go_binary() -> bytes:
    return gzip.decompress((DATA / "golang/hello.gz").read_bytes())


def test_go_build_info_of_a_binary_built_by_go_1_19() -> None:
    assert golang.modules(go_binary()) == [
        Installed("golang", "example.com/hello", "(devel)", arch="amd64"),
        Installed("golang", "example.com/greet", "v1.2.0", arch="amd64"),
        Installed("golang", "example.com/fork", "v1.0.1", arch="amd64"),  # replaces example.com/old v1.0.0
        Installed("golang", "stdlib", "1.19.8", arch="amd64"),
    ]
    assert golang.modules((DATA / "rpm/make-rpmdb.sh").read_bytes()) == []


def test_go_build_info_before_go_1_18_is_not_read() -> None:
    binary = bytearray(go_binary())
    at = binary.find(golang.MAGIC)
    binary[at + 15] = 0  # the flags byte: no inline strings, as Go < 1.18 wrote it
    with pytest.raises(Unreadable, match=r"before Go 1\.18"):
        golang.modules(bytes(binary))
    with pytest.raises(Unreadable, match="cut short"):
        golang.modules(go_binary()[: at + 40])


def test_os_release_of_debian_and_alpine() -> None:
    assert osrelease.distro((DATA / "debian/usr/lib/os-release").read_bytes()) == DEBIAN_12
    assert osrelease.distro((DATA / "alpine/etc/os-release").read_bytes()) == Distro(
        "alpine", "3.14.2", "Alpine Linux v3.14", None)
    assert osrelease.distro(b"# no ID here\nNAME=x\n") is None
    assert osrelease.distro(b"ID='rocky'\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky \\\"Blue\\\"\"\n") == Distro(
        "rocky", "9.3", 'Rocky "Blue"', None)


ALPINE = Distro("alpine", "3.14.2")
ROCKY = Distro("rocky", "9.3")


@pytest.mark.parametrize(("package", "distro", "expected"), [
    (Installed("deb", "login", "1:4.13+dfsg1-1+deb12u2", arch="amd64"), DEBIAN_12,
     "pkg:deb/debian/login@1:4.13%2Bdfsg1-1%2Bdeb12u2?arch=amd64&distro=debian-12"),
    (Installed("deb", "libc6", "2.36-9", arch="amd64"), None, "pkg:deb/debian/libc6@2.36-9?arch=amd64"),
    (Installed("deb", "bash", "5.2", arch="amd64"), Distro("debian", None, codename="trixie"),
     "pkg:deb/debian/bash@5.2?arch=amd64&distro=debian-trixie"),
    (Installed("apk", "musl", "1.2.2-r3", arch="armv7"), ALPINE,
     "pkg:apk/alpine/musl@1.2.2-r3?arch=armv7&distro=alpine-3.14.2"),
    (Installed("rpm", "epoch-tool", "3:2.0-1.fc39", arch="noarch"), ROCKY,
     "pkg:rpm/rocky/epoch-tool@2.0-1.fc39?arch=noarch&distro=rocky-9.3&epoch=3"),
    (Installed("rpm", "bash", "5.1.8-6.el9", arch="x86_64"), Distro("rhel", "9.3"),
     "pkg:rpm/redhat/bash@5.1.8-6.el9?arch=x86_64&distro=rhel-9.3"),
    (Installed("rpm", "bash", "5.1.8-6.el9", arch="x86_64", vendor="Red Hat, Inc."), None,
     "pkg:rpm/redhat/bash@5.1.8-6.el9?arch=x86_64"),
    (Installed("pypi", "typing_extensions", "4.16.0"), DEBIAN_12, "pkg:pypi/typing-extensions@4.16.0"),
    (Installed("pypi", "Zope.Interface", "6.0"), None, "pkg:pypi/zope-interface@6.0"),
    (Installed("npm", "@types/ms", "0.7.34"), None, "pkg:npm/%40types/ms@0.7.34"),
    (Installed("npm", "ms", "2.1.3"), None, "pkg:npm/ms@2.1.3"),
    (Installed("golang", "example.com/greet", "v1.2.0", arch="amd64"), None, "pkg:golang/example.com/greet@v1.2.0"),
    (Installed("golang", "example.com/hello", "(devel)"), None, "pkg:golang/example.com/hello"),
    (Installed("golang", "stdlib", "1.19.8"), None, "pkg:golang/stdlib@1.19.8"),
])
def test_purls(package: Installed, distro: Distro | None, expected: str) -> None:
    assert purl(package, distro) == expected
