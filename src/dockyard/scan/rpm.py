"""Red Hat-family packages from rpm's sqlite database, ``rpmdb.sqlite``.

rpm ≥ 4.16 keeps its database in ``var/lib/rpm/rpmdb.sqlite`` (Fedora ≥ 33, RHEL/Rocky/Alma ≥ 9;
``usr/lib/sysimage/rpm/`` on newer Fedora and openSUSE). The file is opened from its bytes in memory
(``sqlite3.Connection.deserialize``, nothing written to disk) and each row of table ``Packages`` is an
rpm header blob, parsed here (rpm's ``lib/header.c`` on-disk layout, without the lead and magic):

    int32 il, int32 dl                      (big-endian: index entries, data bytes)
    il times {int32 tag, int32 type, int32 offset, int32 count}
    dl bytes of data                         (strings NUL-terminated, integers big-endian)

Tags read: NAME 1000, VERSION 1001, RELEASE 1002, EPOCH 1003, VENDOR 1011, LICENSE 1014, ARCH 1022,
SOURCERPM 1044. The ``gpg-pubkey`` pseudo-packages (imported signing keys) are not packages.

The older formats are not read: BerkeleyDB (``Packages``, rpm < 4.16: RHEL/CentOS ≤ 8, Amazon Linux
2) and ndb (``Packages.db``, SUSE). ``NOT_READ`` lists their paths; the inventory says so in its
notes, and rebuilding the database in the image (``rpmdb --rebuilddb --define '_db_backend sqlite'``)
makes it readable.
"""

from __future__ import annotations

import sqlite3
import struct

from dockyard.scan.purls import Installed, Unreadable

DIRECTORIES = ("var/lib/rpm", "usr/lib/sysimage/rpm")
PATHS = tuple(f"{d}/rpmdb.sqlite" for d in DIRECTORIES)
NOT_READ = {f"{d}/{name}": kind for d in DIRECTORIES
            for name, kind in (("Packages", "BerkeleyDB"), ("Packages.db", "ndb"))}
SQLITE_MAGIC = b"SQLite format 3\x00"

NAME, VERSION, RELEASE, EPOCH, VENDOR, LICENSE, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1011, 1014, 1022, 1044
WANTED = {NAME, VERSION, RELEASE, EPOCH, VENDOR, LICENSE, ARCH, SOURCERPM}
INT32, STRING, STRING_ARRAY, I18NSTRING = 4, 6, 8, 9
MAX_ENTRIES = 0xFFFF  # rpm's own limit on a header's index (hdrchkTags)
_ENTRY = struct.Struct(">iiii")


def packages(data: bytes) -> list[Installed]:
    """The packages an rpmdb.sqlite file records, in the database's order."""
    found = []
    for blob in _blobs(data):
        tags = header(blob)
        name, version = tags.get(NAME), tags.get(VERSION)
        if not isinstance(name, str) or not isinstance(version, str) or name == "gpg-pubkey":
            continue
        release, epoch = tags.get(RELEASE), tags.get(EPOCH)
        full = f"{version}-{release}" if release else version
        if isinstance(epoch, int):
            full = f"{epoch}:{full}"
        source, source_version = _source(tags.get(SOURCERPM))
        license_ = tags.get(LICENSE)
        found.append(Installed("rpm", name, full, arch=_text(tags.get(ARCH)), source=source,
                               source_version=source_version,
                               licenses=(license_,) if isinstance(license_, str) and license_ else (),
                               vendor=_text(tags.get(VENDOR))))
    return found


def header(blob: bytes) -> dict[int, str | int]:
    """The wanted tags of one rpm header blob: strings (first of an array) and integers (first)."""
    if len(blob) < 8:
        raise Unreadable("an rpm header shorter than its 8-byte preamble")
    entries, size = struct.unpack_from(">ii", blob)
    start = 8 + 16 * entries
    if not 0 <= entries <= MAX_ENTRIES or size < 0 or start + size > len(blob):
        raise Unreadable(f"an rpm header whose index ({entries} entries, {size} bytes) overruns it")
    store = blob[start:start + size]
    tags: dict[int, str | int] = {}
    for i in range(entries):
        tag, kind, offset, count = _ENTRY.unpack_from(blob, 8 + 16 * i)
        if tag not in WANTED or not 0 <= offset < len(store) or count < 1:
            continue
        if kind in (STRING, STRING_ARRAY, I18NSTRING):
            end = store.find(b"\x00", offset)
            tags[tag] = store[offset:end if end >= 0 else len(store)].decode("utf-8", "replace")
        elif kind == INT32 and offset + 4 <= len(store):
            (tags[tag],) = struct.unpack_from(">i", store, offset)
    return tags


def _blobs(data: bytes) -> list[bytes]:
    if not data.startswith(SQLITE_MAGIC):
        raise Unreadable("not an sqlite database")
    image = bytearray(data)
    image[18:20] = b"\x01\x01"  # a WAL-mode file opens in memory only as a rollback-journal one
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(image)
        connection.execute("PRAGMA query_only = ON")
        return [bytes(row[0]) for row in connection.execute("SELECT blob FROM Packages ORDER BY hnum")]
    except sqlite3.Error as exc:
        raise Unreadable(f"its Packages table cannot be read ({exc})") from exc
    finally:
        connection.close()


def _source(sourcerpm: str | int | None) -> tuple[str | None, str | None]:
    """``tiny-suite-0.9-7.src.rpm`` → ("tiny-suite", "0.9-7")."""
    if not isinstance(sourcerpm, str) or not sourcerpm.endswith(".rpm"):
        return None, None
    stem = sourcerpm.removesuffix(".rpm").rsplit(".", 1)[0]  # drop ".src" / ".nosrc"
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:
        return None, None
    return parts[0], f"{parts[1]}-{parts[2]}"


def _text(value: str | int | None) -> str | None:
    return value if isinstance(value, str) and value else None
