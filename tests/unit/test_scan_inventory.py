"""Inventories of multi-layer images: what is in the final filesystem, and which layer installed it."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from dockyard.scan.inventory import PackageVisitor
from dockyard.scan.layers import Layer, walk
from dockyard.scan.report import Distro, Inventory, Package
from tests.unit.test_scan_layers import DIR, Hardlink, Symlink, layer

DATA = Path(__file__).parent.parent / "data" / "scan"
STATUS = (DATA / "debian/var/lib/dpkg/status").read_bytes()
OS_RELEASE = (DATA / "debian/usr/lib/os-release").read_bytes()
DEBIAN_12 = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)", "bookworm")


def inventory_of(*layers: Layer, visitor: PackageVisitor | None = None) -> Inventory:
    visitor = visitor or PackageVisitor()
    return visitor.inventory(walk(layers, [visitor]))


def paragraphs(*names: str, status: bool = True) -> bytes:
    """The real minbase status paragraphs of these packages (without Status: as distroless writes them)."""
    text = STATUS.decode()
    found = [next(p for p in text.split("\n\n") if p.startswith(f"Package: {name}\n")) + "\n" for name in names]
    joined = "\n".join(found)
    return (joined if status else re.sub(r"^Status: .*\n", "", joined, flags=re.MULTILINE)).encode()


def versions(inventory: Inventory) -> dict[str, tuple[str, str]]:
    """name → (version, layer digest)."""
    return {p.name: (p.version, p.layer) for p in inventory.packages}


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_the_debian_minbase_status_and_its_os_release_symlink(compression: str) -> None:
    rootfs = layer({"etc/": DIR, "usr/lib/os-release": OS_RELEASE, "etc/os-release": Symlink("../usr/lib/os-release"),
                    "var/lib/dpkg/status": STATUS}, compression=compression)

    inventory = inventory_of(rootfs)

    assert inventory.distro == DEBIAN_12
    assert inventory.notes == ()
    assert len(inventory.packages) == 88
    assert {p.layer for p in inventory.packages} == {rootfs.digest}
    login = next(p for p in inventory.packages if p.name == "login")
    assert login == Package(name="login", version="1:4.13+dfsg1-1+deb12u2", type="deb",
                            purl="pkg:deb/debian/login@1:4.13%2Bdfsg1-1%2Bdeb12u2?arch=amd64&distro=debian-12",
                            layer=rootfs.digest, path="var/lib/dpkg/status", source="shadow",
                            source_version="1:4.13+dfsg1-1+deb12u2", arch="amd64")
    names = [p.name for p in inventory.packages]
    assert names == sorted(names)


def test_etc_os_release_wins_over_usr_lib_os_release() -> None:
    inventory = inventory_of(layer({"usr/lib/os-release": OS_RELEASE,
                                    "etc/os-release": b'ID=ubuntu\nVERSION_ID="22.04"\n'}))
    assert inventory.distro == Distro("ubuntu", "22.04")


def test_a_package_belongs_to_the_layer_that_installed_its_version() -> None:
    def upgraded(status: bytes) -> bytes:
        return status.replace(b"Version: 1.34+dfsg-1.2+deb12u1", b"Version: 1.35+dfsg-1")

    base = layer({"var/lib/dpkg/status": paragraphs("gzip", "tar")})
    upgrade = layer({"var/lib/dpkg/status": upgraded(paragraphs("gzip", "tar"))})
    unrelated = layer({"srv/app.txt": b"hello"})
    more = layer({"var/lib/dpkg/status": upgraded(paragraphs("gzip", "tar", "sed"))})

    inventory = inventory_of(base, upgrade, unrelated, more)

    assert versions(inventory) == {"gzip": ("1.12-1", base.digest), "tar": ("1.35+dfsg-1", upgrade.digest),
                                   "sed": ("4.9-1+deb12u1", more.digest)}


def test_a_version_removed_in_between_counts_from_the_layer_that_put_it_back() -> None:
    base = layer({"var/lib/dpkg/status": paragraphs("gzip", "tar")})
    dropped = layer({"var/lib/dpkg/status": paragraphs("tar")})
    back = layer({"var/lib/dpkg/status": paragraphs("gzip", "tar")})
    wiped = layer({"var/lib/dpkg/.wh.status": b""})
    again = layer({"var/lib/dpkg/status": paragraphs("tar")})

    assert versions(inventory_of(base, dropped, back)) == {"gzip": ("1.12-1", back.digest),
                                                           "tar": ("1.34+dfsg-1.2+deb12u1", base.digest)}
    assert versions(inventory_of(base, wiped, again)) == {"tar": ("1.34+dfsg-1.2+deb12u1", again.digest)}
    assert inventory_of(base, wiped).packages == ()


def test_a_database_replaced_by_a_later_layer_counts_in_its_last_version_only() -> None:
    base = layer({"var/lib/dpkg/status": paragraphs("gzip", "tar", "sed")})
    slim = layer({"var/lib/dpkg/status": paragraphs("sed")})
    assert versions(inventory_of(base, slim)) == {"sed": ("4.9-1+deb12u1", base.digest)}


def test_a_distroless_status_d_file_removed_by_a_whiteout_is_gone() -> None:
    base = layer({"var/lib/dpkg/status.d/base-files": paragraphs("base-files", status=False),
                  "var/lib/dpkg/status.d/base-files.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  etc/debian_version\n",
                  "var/lib/dpkg/status.d/libc6": paragraphs("libc6", status=False)})
    cleanup = layer({"var/lib/dpkg/status.d/.wh.libc6": b""})

    inventory = inventory_of(base, cleanup)

    assert [(p.name, p.path, p.layer) for p in inventory.packages] == [
        ("base-files", "var/lib/dpkg/status.d/base-files", base.digest)]


def test_an_opaque_directory_hides_the_node_modules_below() -> None:
    ms = (DATA / "npm/node_modules/ms/package.json").read_bytes()
    types_ms = (DATA / "npm/node_modules/@types/ms/package.json").read_bytes()
    project = b'{"name": "my-app", "version": "1.0.0", "dependencies": {"ms": "^2.1.3"}}'
    base = layer({"app/package.json": project, "app/node_modules/ms/package.json": ms,
                  "app/node_modules/ms/esm/package.json": b'{"type": "module"}',
                  "app/node_modules/@types/ms/package.json": types_ms,
                  "usr/lib/node_modules/ms/package.json": ms})
    reinstall = layer({"app/node_modules/.wh..wh..opq": b"", "app/node_modules/@types/ms/package.json": types_ms})

    before = inventory_of(base)
    after = inventory_of(base, reinstall)

    assert [(p.purl, p.path) for p in before.packages] == [
        ("pkg:npm/%40types/ms@0.7.34", "app/node_modules/@types/ms/package.json"),
        ("pkg:npm/ms@2.1.3", "app/node_modules/ms/package.json"),
        ("pkg:npm/ms@2.1.3", "usr/lib/node_modules/ms/package.json")]
    assert [(p.purl, p.path, p.layer) for p in after.packages] == [
        ("pkg:npm/%40types/ms@0.7.34", "app/node_modules/@types/ms/package.json", reinstall.digest),
        ("pkg:npm/ms@2.1.3", "usr/lib/node_modules/ms/package.json", base.digest)]


def test_rpm_sqlite_and_the_formats_that_are_not_read() -> None:
    rpmdb = (DATA / "rpm/rpmdb.sqlite").read_bytes()
    base = layer({"etc/os-release": b'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\n',
                  "usr/lib/sysimage/rpm/rpmdb.sqlite": rpmdb,
                  "var/lib/rpm/Packages": b"\x00\x06\x15\x61" + b"\x00" * 4092})  # a BerkeleyDB file's look

    inventory = inventory_of(base)

    assert [(p.name, p.version, p.purl, p.source) for p in inventory.packages] == [
        ("epoch-tool", "3:2.0-1.fc39", "pkg:rpm/rocky/epoch-tool@2.0-1.fc39?arch=noarch&distro=rocky-9.3&epoch=3",
         "epoch-tool"),
        ("hello-dockyard", "1.2.3-4", "pkg:rpm/rocky/hello-dockyard@1.2.3-4?arch=noarch&distro=rocky-9.3",
         "hello-dockyard"),
        ("libtiny", "0.9-7", "pkg:rpm/rocky/libtiny@0.9-7?arch=noarch&distro=rocky-9.3", "tiny-suite")]
    assert len(inventory.notes) == 1
    assert inventory.notes[0].startswith("var/lib/rpm/Packages: an rpm database in the BerkeleyDB format")
    assert "rpmdb --rebuilddb" in inventory.notes[0]
    rebuilt = layer({"var/lib/rpm/.wh.Packages": b"", "var/lib/rpm/rpmdb.sqlite": rpmdb})
    assert inventory_of(base, rebuilt).notes == ()


def test_python_distributions_in_site_packages_and_dist_packages() -> None:
    site = "usr/local/lib/python3.11/site-packages"
    image = layer({
        f"{site}/typing_extensions-4.16.0.dist-info/METADATA":
            (DATA / "python/typing_extensions-4.16.0.dist-info/METADATA").read_bytes(),
        f"{site}/typing_extensions-4.16.0.dist-info/RECORD": b"typing_extensions.py,,\n",
        "usr/lib/python3/dist-packages/xmltodict-0.13.0.egg-info/PKG-INFO":
            (DATA / "python/xmltodict-0.13.0.egg-info/PKG-INFO").read_bytes(),
        "usr/lib/python2.7/wsgiref.egg-info": (DATA / "python/wsgiref.egg-info").read_bytes()})

    inventory = inventory_of(image)

    assert [(p.purl, p.licenses) for p in inventory.packages] == [
        ("pkg:pypi/typing-extensions@4.16.0", ("PSF-2.0",)), ("pkg:pypi/wsgiref@0.1.2", ("PSF or ZPL",)),
        ("pkg:pypi/xmltodict@0.13.0", ("MIT",))]


def test_go_binaries_are_read_when_executable_and_replaced_ones_are_gone() -> None:
    binary = gzip.decompress((DATA / "golang/hello.gz").read_bytes())
    base = layer({"usr/local/bin/hello": binary, "usr/local/bin/hello-copy": Hardlink("usr/local/bin/hello"),
                  "srv/hello.data": binary}, executable=frozenset({"usr/local/bin/hello", "usr/local/bin/hello-copy"}))
    script = layer({"usr/local/bin/hello": b"#!/bin/sh\necho this is no longer a Go binary\n" * 40},
                   executable=frozenset({"usr/local/bin/hello"}))

    inventory = inventory_of(base)

    assert [(p.purl, p.path) for p in inventory.packages if p.path == "usr/local/bin/hello"] == [
        ("pkg:golang/example.com/fork@v1.0.1", "usr/local/bin/hello"),
        ("pkg:golang/example.com/greet@v1.2.0", "usr/local/bin/hello"),
        ("pkg:golang/example.com/hello", "usr/local/bin/hello"),
        ("pkg:golang/stdlib@1.19.8", "usr/local/bin/hello")]
    assert {p.path for p in inventory.packages} == {"usr/local/bin/hello", "usr/local/bin/hello-copy"}
    assert {p.path for p in inventory_of(base, script).packages} == {"usr/local/bin/hello-copy"}


def test_alpine_apk_database() -> None:
    image = layer({"etc/os-release": (DATA / "alpine/etc/os-release").read_bytes(),
                   "lib/apk/db/installed": (DATA / "alpine/lib/apk/db/installed").read_bytes()})
    inventory = inventory_of(image)
    assert inventory.distro == Distro("alpine", "3.14.2", "Alpine Linux v3.14")
    assert [p.purl for p in inventory.packages][:2] == [
        "pkg:apk/alpine/ca-certificates-bundle@20191127-r5?arch=armv7&distro=alpine-3.14.2",
        "pkg:apk/alpine/libgcc@10.3.1_git20210424-r2?arch=armv7&distro=alpine-3.14.2"]
    assert len(inventory.packages) == 6


def test_what_cannot_be_read_becomes_a_note() -> None:
    binary = gzip.decompress((DATA / "golang/hello.gz").read_bytes())
    image = layer({"var/lib/dpkg/status": STATUS, "var/lib/rpm/rpmdb.sqlite": b"SQLite format 3\x00 but no more",
                   "usr/bin/go-tool": binary}, executable=frozenset({"usr/bin/go-tool"}))
    visitor = PackageVisitor(max_database_bytes=64 * 1024, max_binary_bytes=1024 * 1024 // 2)

    inventory = inventory_of(image, visitor=visitor)

    assert inventory.packages == ()
    assert inventory.notes == (
        "1 executable(s) larger than 0 MiB were not searched for Go build information",
        f"var/lib/dpkg/status (layer {image.digest}): larger than 64 KiB, not read",
        f"var/lib/rpm/rpmdb.sqlite (layer {image.digest}): its Packages table cannot be read (file is not a database)",
    )


def test_the_inventory_is_the_same_whatever_the_order_of_the_files_in_a_layer() -> None:
    files = {"var/lib/dpkg/status": paragraphs("gzip", "tar"),
             "usr/lib/python3/dist-packages/xmltodict-0.13.0.egg-info/PKG-INFO":
                 (DATA / "python/xmltodict-0.13.0.egg-info/PKG-INFO").read_bytes()}
    forward, backward = layer(files), layer(dict(reversed(files.items())))
    strip = [(p.name, p.version, p.type, p.purl, p.path) for p in inventory_of(forward).packages]
    assert strip == [(p.name, p.version, p.type, p.purl, p.path) for p in inventory_of(backward).packages]
    assert [p.type for p in inventory_of(forward).packages] == ["deb", "deb", "pypi"]
