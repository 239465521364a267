"""Debian packages from dpkg's database: ``var/lib/dpkg/status`` and distroless's ``status.d/``.

The status file is deb822 paragraphs, one per package dpkg knows; only those whose ``Status`` says
the package's files are on disk (``<want> ok installed``: "install ok installed", also "hold ok
installed") count, not half-removed or config-files-only ones. Distroless images have no status file
but one file per package in ``var/lib/dpkg/status.d/`` (the package's control fields, written by
``dpkg-deb --field``, usually with no ``Status``: absent means installed), next to ``NAME.md5sums``
files that are not read.

``Source: NAME`` names the source package of the same version; ``Source: NAME (VERSION)`` one whose
version differs from the binary package's (binNMUs, packages built from a versioned source).
"""

from __future__ import annotations

import posixpath
import re

from dockyard.scan.purls import Installed

STATUS = "var/lib/dpkg/status"
STATUS_DIR = "var/lib/dpkg/status.d"
FIELDS = {"package", "status", "version", "architecture", "source"}
_PARAGRAPHS = re.compile(r"\r?\n(?:[ \t]*\r?\n)+")
_SOURCE = re.compile(r"^(?P<name>\S+)(?:\s*\((?P<version>[^)]*)\))?")


def is_database(path: str) -> bool:
    """Whether ``path`` is dpkg's status file or one of distroless's per-package status files."""
    if path == STATUS:
        return True
    directory, name = posixpath.split(path)
    return directory == STATUS_DIR and not name.endswith(".md5sums") and not name.startswith(".")


def packages(data: bytes, *, status_required: bool = True) -> list[Installed]:
    """The installed packages a status file lists, in its order; a status.d file's paragraphs may
    have no ``Status`` (``status_required=False``)."""
    found = []
    for paragraph in _PARAGRAPHS.split(data.decode("utf-8", "replace")):
        fields = _fields(paragraph)
        name, version = fields.get("package"), fields.get("version")
        if not name or not version or not _is_installed(fields.get("status"), status_required):
            continue
        source, source_version = name, version
        if match := _SOURCE.match(fields.get("source", "")):
            source = match["name"]
            source_version = (match["version"] or "").strip() or version
        found.append(Installed("deb", name, version, arch=fields.get("architecture") or None,
                               source=source, source_version=source_version))
    return found


def _fields(paragraph: str) -> dict[str, str]:
    fields = {}
    for line in paragraph.splitlines():
        if not line or line[0] in " \t#":  # continuation lines only belong to fields not read here
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if colon and key in FIELDS:
            fields[key] = value.strip()
    return fields


def _is_installed(status: str | None, required: bool) -> bool:
    if status is None:  # a status.d file: dpkg-deb --field output has no Status
        return not required
    words = status.split()
    return len(words) == 3 and words[1] == "ok" and words[2] == "installed"
