"""Alpine packages from apk's database, ``lib/apk/db/installed``.

One paragraph per installed package, blank-line separated, each line ``X:value`` with a one-letter
key (apk-tools' "installed database" format): ``P`` name, ``V`` version, ``A`` architecture, ``o``
origin (the source package, "aport"), ``L`` license (an SPDX-like expression as the APKBUILD writes
it). The many ``F``/``R``/``Z`` lines (the package's files) are not kept.
"""

from __future__ import annotations

from dockyard.scan.purls import Installed

PATHS = ("lib/apk/db/installed", "usr/lib/apk/db/installed")
KEYS = {"P", "V", "A", "o", "L"}


def packages(data: bytes) -> list[Installed]:
    """The packages an apk installed database lists, in its order (paragraphs without P or V skipped)."""
    found: list[Installed] = []
    fields: dict[str, str] = {}
    for line in [*data.decode("utf-8", "replace").splitlines(), ""]:
        if not line.strip():
            if fields.get("P") and fields.get("V"):
                found.append(_package(fields))
            fields = {}
            continue
        key, colon, value = line.partition(":")
        if colon and key in KEYS:
            fields[key] = value.strip()
    return found


def _package(fields: dict[str, str]) -> Installed:
    license_ = fields.get("L")
    return Installed("apk", fields["P"], fields["V"], arch=fields.get("A") or None,
                     source=fields.get("o") or fields["P"], source_version=fields["V"],
                     licenses=(license_,) if license_ else ())
