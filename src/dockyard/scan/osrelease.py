"""The distribution an image is built on, from ``etc/os-release`` (os-release(5)).

``etc/os-release`` is often a symlink to ``../usr/lib/os-release``; the inventory reads both paths
and resolves the link (``inventory.py``). The file is shell-like ``KEY=value`` lines, values
optionally quoted with ``"`` or ``'`` and backslash-escaped inside double quotes.
"""

from __future__ import annotations

import shlex

from dockyard.scan.report import Distro

PATHS = ("etc/os-release", "usr/lib/os-release")
MAX_BYTES = 64 * 1024


def distro(data: bytes) -> Distro | None:
    """The distribution an os-release file describes; None when it has no ID."""
    fields = fields_of(data)
    if not fields.get("ID"):
        return None
    return Distro(id=fields["ID"].lower(), version_id=fields.get("VERSION_ID") or None,
                  pretty_name=fields.get("PRETTY_NAME") or None, codename=fields.get("VERSION_CODENAME") or None)


def fields_of(data: bytes) -> dict[str, str]:
    """The KEY=value assignments of an os-release file (comments, blank and bad lines ignored)."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        try:
            words = shlex.split(raw, posix=True)
        except ValueError:  # an unterminated quote: take the value as it is written
            words = [raw.strip("\"'")]
        fields[key.strip()] = " ".join(words)
    return fields
