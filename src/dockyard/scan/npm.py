"""npm packages from the ``package.json`` of each package directory under a ``node_modules``.

npm (and yarn, pnpm's hoisted layout) installs each package as ``node_modules/NAME/`` or
``node_modules/@SCOPE/NAME/`` with the ``package.json`` it was published with. Only those files
count: a project's own ``package.json`` (outside ``node_modules``) is not an installed package, and
the ``package.json`` files deeper inside a package (``node_modules/x/esm/package.json``, test
fixtures) are not packages either. ``name`` and ``version`` are both required; the license is the
``license`` string (an SPDX expression) or the older ``{"type": ...}`` / ``licenses`` forms.
"""

from __future__ import annotations

import json
from typing import Any

from dockyard.scan.purls import Installed

MAX_BYTES = 1024 * 1024


def is_manifest(path: str) -> bool:
    """Whether ``path`` is the package.json of a package directory directly under a node_modules."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith((".", "@"))
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


def package(data: bytes) -> list[Installed]:
    """The package a package.json names (none when it lacks a name or version)."""
    try:
        document = json.loads(data)
    except ValueError:  # UnicodeDecodeError included; a broken package.json is no package
        return []
    if not isinstance(document, dict):
        return []
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name.strip() or not version.strip():
        return []
    return [Installed("npm", name.strip(), version.strip(), licenses=_licenses(document))]


def _licenses(document: dict[str, Any]) -> tuple[str, ...]:
    declared = document.get("license")
    if declared is None:
        declared = document.get("licenses")
    entries = declared if isinstance(declared, list) else [declared]
    found = []
    for entry in entries:
        value = entry.get("type") if isinstance(entry, dict) else entry
        if isinstance(value, str) and value.strip():
            found.append(value.strip())
    return tuple(found)
