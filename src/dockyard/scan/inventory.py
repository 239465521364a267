"""The packages installed in an image, from its layers' package databases, as ``report.Inventory``.

``PackageVisitor`` rides along ``layers.walk``: it asks for the files that are package databases
(dpkg, apk, rpm sqlite, Python metadata, npm package.json, Go binaries' build info, os-release),
parses each version of each one as it streams past, and keeps only the records. After the walk,
``inventory(history)`` keeps what is in the final filesystem:

- a database file counts in its last version, unless a later whiteout removed it (an opaque
  directory above it included); a version replaced by a later layer's file does not count;
- a package's ``layer`` is the earliest layer from which the same name, version and architecture
  is continuously present in the versions of its database file (a whiteout, or a non-database
  file at that path, in between breaks the chain), i.e. the layer that installed that version;
- what could not be read (an rpm BerkeleyDB or ndb database, a file over the size limit, a
  corrupt database, a Go binary older than Go 1.18) becomes a note, not an error.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.scan import apk, dpkg, golang, npm, osrelease, pydists, rpm
from dockyard.scan.layers import History, LayerFile
from dockyard.scan.purls import Installed, Unreadable, purl
from dockyard.scan.report import Distro, Inventory, Package

MIB = 1024 * 1024
MAX_DATABASE_BYTES = 128 * MIB  # a package database larger than this is noted, not read
MAX_BINARY_BYTES = 64 * MIB  # executables larger than this are not searched for Go build info
MIN_BINARY_BYTES = 1024  # smaller executables are scripts, not Go binaries
EXECUTABLE = 0o111

Reader = Callable[[bytes], list[Installed]]


def _status_d(data: bytes) -> list[Installed]:
    return dpkg.packages(data, status_required=False)


@dataclass(frozen=True, slots=True)
class _Kind:
    read: Reader
    limit: int | None = None  # bytes; None: the visitor's max_database_bytes
    head: bool = False  # the first ``limit`` bytes say all that is read (metadata headers)


DPKG, STATUS_D, APK, RPM = _Kind(dpkg.packages), _Kind(_status_d, MIB), _Kind(apk.packages), _Kind(rpm.packages)
PYTHON = _Kind(pydists.distribution, 256 * 1024, head=True)
NPM = _Kind(npm.package, npm.MAX_BYTES)
GO = _Kind(golang.modules)


@dataclass(frozen=True, slots=True)
class _Version:
    """One layer's version of a database file, as read."""

    index: int
    layer: str
    packages: tuple[Installed, ...] = ()
    problem: str | None = None  # why it could not be read
    keys: frozenset[tuple[str, str, str | None]] = frozenset()

    @classmethod
    def read(cls, entry: LayerFile, packages: tuple[Installed, ...]) -> _Version:
        return cls(entry.index, entry.layer, packages, keys=frozenset(p.key for p in packages))


class PackageVisitor:
    """A ``layers.Visitor`` that reads package databases; ``inventory(history)`` after the walk."""

    def __init__(self, *, max_database_bytes: int = MAX_DATABASE_BYTES,
                 max_binary_bytes: int = MAX_BINARY_BYTES) -> None:
        self.max_database_bytes = max_database_bytes
        self.max_binary_bytes = max_binary_bytes
        self._versions: dict[str, list[_Version]] = {}
        self._releases: dict[str, list[tuple[int, Distro | None]]] = {}
        self._unread_rpmdb: list[tuple[int, str]] = []
        self._large_binaries: list[tuple[int, str]] = []

    def wants(self, entry: LayerFile) -> int:
        if entry.path in osrelease.PATHS:
            return min(entry.size, osrelease.MAX_BYTES)
        if entry.path in rpm.NOT_READ:
            self._unread_rpmdb.append((entry.index, entry.path))
            return 0
        kind = _kind(entry.path)
        if kind is not None:
            limit = kind.limit or self.max_database_bytes
            if kind.head:
                return max(min(entry.size, limit), 1)
            if entry.size > limit:
                problem = f"larger than {limit // 1024} KiB, not read"
                self._add(entry.path, _Version(entry.index, entry.layer, problem=problem))
                return 0
            return max(entry.size, 1)
        if entry.mode & EXECUTABLE and entry.size >= MIN_BINARY_BYTES:
            if entry.size <= self.max_binary_bytes:
                return entry.size
            self._large_binaries.append((entry.index, entry.path))
        return 0

    def visit(self, entry: LayerFile, data: bytes) -> None:
        if entry.path in osrelease.PATHS:
            self._releases.setdefault(entry.path, []).append((entry.index, osrelease.distro(data)))
            return
        kind = _kind(entry.path)
        if kind is None:  # an executable: a version only when it is a Go binary
            if not golang.has_build_info(data):
                return
            kind = GO
        try:
            found = tuple(kind.read(data))
        except Unreadable as exc:
            self._add(entry.path, _Version(entry.index, entry.layer, problem=str(exc)))
            return
        if found or kind is not GO:
            self._add(entry.path, _Version.read(entry, found))

    def inventory(self, history: History) -> Inventory:
        """The packages of the final filesystem, sorted, with notes on what was not read."""
        distro = self._distro(history)
        packages: list[Package] = []
        notes: list[str] = []
        for path, versions in self._versions.items():
            final = versions[-1]
            if not history.present(final.index, path):
                continue
            if final.problem is not None:
                notes.append(f"{path} (layer {final.layer}): {final.problem}")
                continue
            first = _first_layers(_chain(history, path, versions))
            packages.extend(_package(found, distro, first[found.key], path) for found in final.packages)
        notes.extend(self._notes(history))
        packages.sort(key=lambda p: (p.type, p.name, p.version, p.arch or "", p.path, p.layer))
        return Inventory(distro, tuple(packages), tuple(sorted(notes)))

    def _add(self, path: str, version: _Version) -> None:
        self._versions.setdefault(path, []).append(version)

    def _distro(self, history: History) -> Distro | None:
        # os-release(5): /etc/os-release when it exists, else /usr/lib/os-release (where the usual
        # symlink etc/os-release -> ../usr/lib/os-release points: a symlink is not read itself).
        for path in osrelease.PATHS:
            index, found = self._releases.get(path, [(-1, None)])[-1]
            if index >= 0 and history.present(index, path):
                return found
        return None

    def _notes(self, history: History) -> list[str]:
        notes = []
        for index, path in self._unread_rpmdb:
            if history.present(index, path):
                notes.append(
                    f"{path}: an rpm database in the {rpm.NOT_READ[path]} format, which is not read, so "
                    f"the image's rpm packages are not listed; rebuild it as sqlite in the image "
                    f"(`rpmdb --rebuilddb --define '_db_backend sqlite'`, rpm >= 4.16) to have them listed")
        large = sum(1 for index, path in self._large_binaries if history.present(index, path))
        if large:
            notes.append(f"{large} executable(s) larger than {self.max_binary_bytes // MIB} MiB were not "
                         f"searched for Go build information")
        return notes


def _kind(path: str) -> _Kind | None:
    """How to read the package database at ``path``; None: not a database."""
    if path == dpkg.STATUS:
        return DPKG
    if path in apk.PATHS:
        return APK
    if path in rpm.PATHS:
        return RPM
    if posixpath.basename(path) == "package.json":
        return NPM if npm.is_manifest(path) else None
    if pydists.is_metadata(path):
        return PYTHON
    if dpkg.is_database(path):
        return STATUS_D
    return None


def _chain(history: History, path: str, versions: list[_Version]) -> list[_Version]:
    """The versions the final one continues, earliest first: back to a removal or a non-database file."""
    chain = [versions[-1]]
    for earlier in reversed(versions[:-1]):
        later = chain[0].index
        if history.removed(earlier.index, path, until=later) or \
                history.replaced(earlier.index, path, until=later - 1):
            break
        chain.insert(0, earlier)
    return chain


def _first_layers(chain: list[_Version]) -> dict[tuple[str, str, str | None], str]:
    """For each package of the last version, the layer of the earliest version of the run of
    versions, ending in the last one, that all have it."""
    first: dict[tuple[str, str, str | None], str] = {}
    alive = set(chain[-1].keys)
    for version in reversed(chain):
        alive &= version.keys
        if not alive:
            break
        first.update(dict.fromkeys(alive, version.layer))
    return first


def _package(found: Installed, distro: Distro | None, layer: str, path: str) -> Package:
    return Package(name=found.name, version=found.version, type=found.type, purl=purl(found, distro),
                   layer=layer, path=path, source=found.source, source_version=found.source_version,
                   arch=found.arch, licenses=found.licenses)
