"""What a package-database reader finds, and its package URL (purl, github.com/package-url/purl-spec).

Every reader (``dpkg``, ``apk``, ``rpm``, ``pydists``, ``npm``, ``golang``) turns a file's bytes into
``Installed`` records; ``purl`` names each one the way scanners and vulnerability databases expect:

    pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12
    pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4
    pkg:rpm/redhat/bash@5.1.8-6.el9?arch=x86_64&distro=rhel-9.3&epoch=1
    pkg:pypi/charset-normalizer@3.3.2          (the PEP 503 normalised name)
    pkg:npm/%40babel/core@7.23.2
    pkg:golang/github.com/spf13/cobra@v1.8.0

The namespace of an OS package is its distribution, from ``os-release``'s ID (rpm: the vendor's purl
name, "rhel" → "redhat"); the ``distro`` qualifier is ID-VERSION_ID. An rpm epoch is the ``epoch``
qualifier, as the purl spec says for rpm; a deb epoch stays in the version, as dpkg writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from packageurl import PackageURL
from packaging.utils import canonicalize_name

from dockyard.scan.report import Distro

OS_TYPES = ("deb", "apk", "rpm")
UNVERSIONED = "(devel)"  # Go's version of a main module built from a source tree: no purl version
DEFAULT_NAMESPACE = {"deb": "debian", "apk": "alpine"}
# os-release ID → the rpm purl namespace scanners use for that vendor.
RPM_NAMESPACES = {"rhel": "redhat", "ol": "oracle", "amzn": "amazon", "sles": "suse", "sled": "suse",
                  "opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensuse"}
# Words of an rpm VENDOR tag → namespace, for an image without os-release.
RPM_VENDORS = {"red hat": "redhat", "fedora": "fedora", "centos": "centos", "rocky": "rocky",
               "almalinux": "almalinux", "oracle": "oracle", "amazon": "amazon", "suse": "suse",
               "opensuse": "opensuse"}


class Unreadable(ValueError):
    """A package database whose bytes are not in the format its path promises."""


@dataclass(frozen=True, slots=True)
class Installed:
    """One package as a reader finds it, before the inventory says where and in which layer."""

    type: str  # the purl type: "deb", "apk", "rpm", "pypi", "npm", "golang"
    name: str  # npm: "@scope/name"; golang: the module path
    version: str  # as the ecosystem writes it (dpkg, rpm: with "EPOCH:" when there is one)
    arch: str | None = None
    source: str | None = None
    source_version: str | None = None
    licenses: tuple[str, ...] = ()
    vendor: str | None = None  # rpm's VENDOR tag, for the namespace when there is no os-release

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What says two reads of a database found the same package."""
        return self.name, self.version, self.arch


def purl(package: Installed, distro: Distro | None) -> str:
    """The package URL of ``package`` installed on ``distro`` (None: no os-release was found)."""
    qualifiers: dict[str, str] = {}
    namespace: str | None = None
    name, version = package.name, package.version
    if package.type in OS_TYPES:
        namespace = _os_namespace(package, distro)
        if package.arch:
            qualifiers["arch"] = package.arch
        if distro is not None:
            qualifiers["distro"] = _distro_qualifier(distro)
        if package.type == "rpm" and ":" in version:
            epoch, version = version.split(":", 1)
            qualifiers["epoch"] = epoch
    elif package.type == "pypi":
        name = canonicalize_name(name)
    elif package.type in ("npm", "golang") and "/" in name:
        namespace, name = name.rsplit("/", 1)
    return PackageURL(type=package.type, namespace=namespace, name=name,
                      version=None if version == UNVERSIONED else version,
                      qualifiers=qualifiers or None).to_string()


def _os_namespace(package: Installed, distro: Distro | None) -> str | None:
    if package.type == "rpm":
        if distro is not None:
            return RPM_NAMESPACES.get(distro.id, distro.id)
        vendor = (package.vendor or "").lower()
        return next((ns for word, ns in RPM_VENDORS.items() if word in vendor), None)
    return distro.id if distro is not None else DEFAULT_NAMESPACE[package.type]


def _distro_qualifier(distro: Distro) -> str:
    release = distro.version_id or distro.codename
    return f"{distro.id}-{release}" if release else distro.id
