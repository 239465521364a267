"""Reading an image's layers once, in order, as streams, for every scanner at the same time.

A layer is a tar archive, gzip- or zstd-compressed or not (told by its first bytes, not by its
media type, which clients get wrong); gzip is inflated by ISA-L (``isal``), about twice as fast as
zlib: inflating is most of the time an inventory takes. ``walk`` reads each layer through
``tarfile`` in stream mode over a decompressing reader: a layer is never unpacked to disk nor held
in memory whole. For each
regular file it asks every ``Visitor`` how many bytes of it it wants, reads that many once, and hands
the same bytes to each; everything else is skipped in the stream. A hard link to a file visited
earlier in the same layer is handed that file's bytes (kept up to ``LINK_CACHE_BYTES`` per layer).
Memory is bounded by the largest ``wants`` answer plus that cache, whatever the size of the layer.

Whiteouts (``.wh.NAME`` removes NAME from the layers below; ``.wh..wh..opq`` empties its directory
of what the layers below put there) are not visited: they are recorded in the ``History`` that
``walk`` returns, which visitors ask afterwards whether a file they saw is still in the image.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

import zstandard
from isal import igzip, isal_zlib

from dockyard.errors import RequestInvalid

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
TAR_BUFFER = 64 * 1024  # tarfile's stream reads (and skips) in chunks of this size
LINK_CACHE_BYTES = 16 * 1024 * 1024  # per layer: visited files' bytes kept for hard links to them
# What a truncated or corrupt layer raises while it is read (isal's stub types its error oddly).
READ_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError, OSError, EOFError, zlib.error, cast(type[Exception], isal_zlib.error), zstandard.ZstdError)


class LayerUnreadable(RequestInvalid):
    """A layer that is not a (compressed) tar archive."""


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    media_type: str
    open: Callable[[], BinaryIO]  # a new stream of the blob's bytes as stored (compressed or not)


@dataclass(frozen=True, slots=True)
class LayerFile:
    """A regular file in one layer."""

    layer: str  # the layer's digest
    index: int  # the layer's position, 0 the base
    path: str  # normalised: relative, no "./" or "/" prefix, no "..": "var/lib/dpkg/status"
    size: int
    mode: int


class Visitor(Protocol):
    def wants(self, entry: LayerFile) -> int:
        """How many bytes of this file the visitor needs; 0: none (it may count the file as skipped)."""

    def visit(self, entry: LayerFile, data: bytes) -> None:
        """The file's first ``wants(entry)`` bytes, or all of them when it is no larger; never
        called for a file whose ``wants`` was 0."""


class History:
    """What each layer added and removed, to ask after the walk whether a file is still there."""

    def __init__(self) -> None:
        self._files: list[set[str]] = []
        self._whiteouts: list[set[str]] = []
        self._opaque: list[set[str]] = []

    def _start_layer(self) -> None:
        self._files.append(set())
        self._whiteouts.append(set())
        self._opaque.append(set())

    def removed(self, index: int, path: str, until: int | None = None) -> bool:
        """Whether a later layer's whiteout (of the file or of a directory above it) removes
        ``path`` as layer ``index`` left it: not in the image, but still in a downloadable layer.
        ``until``: look only at the layers up to that one (included), not at all the later ones."""
        above = _parents(path)
        for later in range(index + 1, self._end(until)):
            if path in self._whiteouts[later] or any(p in self._whiteouts[later] for p in above):
                return True
            if any(p in self._opaque[later] for p in above):
                return True
        return False

    def replaced(self, index: int, path: str, until: int | None = None) -> bool:
        """Whether a later layer (up to ``until``, included, when given) put another file at ``path``."""
        return any(path in self._files[later] for later in range(index + 1, self._end(until)))

    def _end(self, until: int | None) -> int:
        return len(self._files) if until is None else min(until + 1, len(self._files))

    def present(self, index: int, path: str) -> bool:
        """Whether the file layer ``index`` put at ``path`` is the one in the final image."""
        return not self.removed(index, path) and not self.replaced(index, path)

    @property
    def layers(self) -> int:
        return len(self._files)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def normalise(name: str) -> str | None:
    """A member name as a relative path, or None for the root or a name that leaves it."""
    path = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    return path if path and path != "." else None


def decompressed(raw: BinaryIO) -> BinaryIO:
    """The tar stream inside a layer blob: gunzipped, zstd-decompressed or as it is."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(_Raw(raw), 1 << 16)
    head = buffered.peek(4)[:4]
    if head.startswith(GZIP_MAGIC):
        return cast(BinaryIO, igzip.IGzipFile(fileobj=buffered, mode="rb"))  # type: ignore[no-untyped-call]
    if head.startswith(ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


def walk(layers: Sequence[Layer], visitors: Sequence[Visitor]) -> History:
    """Read every layer once, in order, handing each regular file to the visitors that want it."""
    history = History()
    for index, layer in enumerate(layers):
        history._start_layer()
        with layer.open() as raw:
            with _unreadable(layer):
                stream = decompressed(raw)
            _walk_layer(layer, index, stream, visitors, history)
    return history


@contextmanager
def _unreadable(layer: Layer) -> Iterator[None]:
    """Reading the layer's bytes: what a corrupt or truncated one raises becomes ``LayerUnreadable``
    (and only that: a visitor's own errors pass through as they are)."""
    try:
        yield
    except READ_ERRORS as exc:
        raise LayerUnreadable(f"layer {layer.digest} is not a readable tar archive ({exc})") from exc


def _walk_layer(layer: Layer, index: int, stream: BinaryIO, visitors: Sequence[Visitor], history: History) -> None:
    # What this layer's visited files were handed, for a hard link to one of them later in the
    # same layer (tar stores a hard link's bytes once, under the first name); bounded in bytes.
    linked: dict[str, bytes] = {}
    budget = LINK_CACHE_BYTES
    for member, path, tar in _members(layer, stream):
        name = posixpath.basename(path)
        if name == OPAQUE:
            history._opaque[index].add(posixpath.dirname(path))
            continue
        if name.startswith(WHITEOUT):
            history._whiteouts[index].add(posixpath.join(posixpath.dirname(path), name[len(WHITEOUT):]))
            continue
        history._files[index].add(path)
        target = normalise(member.linkname) if member.islnk() else None
        if not member.isreg() and (target is None or target not in linked):
            continue
        size = len(linked[target]) if target is not None else member.size
        entry = LayerFile(layer.digest, index, path, size, member.mode)
        wanted = [(v, n) for v in visitors if (n := v.wants(entry)) > 0]
        if not wanted:
            continue
        if target is not None:
            data = linked[target]
        else:
            with _unreadable(layer):
                content = tar.extractfile(member)
                assert content is not None  # a regular file always has content
                data = content.read(min(member.size, max(n for _, n in wanted)))
            if len(data) == member.size and 0 < len(data) <= budget:
                linked[path] = data
                budget -= len(data)
        for visitor, n in wanted:
            visitor.visit(entry, data[:n])


def _members(layer: Layer, stream: BinaryIO) -> Iterator[tuple[tarfile.TarInfo, str, tarfile.TarFile]]:
    # Errors raised while the caller handles a member are not raised here (a generator does not see
    # them), so only reading the archive is translated.
    with _unreadable(layer), tarfile.open(fileobj=stream, mode="r|", bufsize=TAR_BUFFER) as tar:
        for member in tar:
            path = normalise(member.name)
            if path is not None:
                yield member, path, tar


class _Raw(io.RawIOBase):
    """Any binary stream as a raw one, so ``io.BufferedReader`` can peek at its first bytes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
