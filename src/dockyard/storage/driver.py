"""The storage driver interface every backend implements (and ``tests/drivers`` checks).

Paths are ``/``-separated keys relative to the driver's root, such as ``blobs/sha256/ab/ab…``;
``storage/layout.py`` is the only module that builds them. Content written through ``put_content``
or a committed ``Writer`` is durable when the call returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class PathNotFound(Exception):
    """The path does not exist in storage."""

    def __init__(self, path: str) -> None:
        super().__init__(f"storage path not found: {path}")
        self.path = path


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file as ``walk`` finds it: its path, size, and when it was last written (UTC)."""

    path: str
    size: int
    modified: datetime


class Writer(Protocol):
    """An append-only handle on one path.

    Opening without ``resume`` truncates the path. Written bytes may be readable before
    ``commit``; only ``commit`` makes them durable. Callers publish a blob by moving a committed
    upload to its final path, so nothing half-written is ever under a blob's name.
    """

    @property
    def size(self) -> int:
        """Bytes in the file so far, including what was there when it was resumed."""
        ...

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append all of ``data``; may block a worker thread but never the event loop."""
        ...

    async def commit(self) -> None:
        """Make everything written durable and visible at the path."""
        ...

    async def close(self) -> None:
        """Release the handle; written bytes stay for a later resume."""
        ...

    async def cancel(self) -> None:
        """Discard everything written to the path."""
        ...

    def state(self) -> bytes | None:
        """What a later writer needs to continue this one (None: the path alone suffices).

        Valid after ``close``; the caller keeps it (the uploads row) and hands it back to
        ``writer(path, resume=True, state=...)``."""
        ...


class StorageDriver(Protocol):
    name: str

    async def stat(self, path: str) -> int:
        """Size in bytes of the file at ``path``; raises ``PathNotFound``."""
        ...

    def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream the file from ``offset`` (``length`` bytes or to the end); raises ``PathNotFound``."""
        ...

    async def get_content(self, path: str) -> bytes:
        """The whole (small) file; raises ``PathNotFound``."""
        ...

    async def put_content(self, path: str, data: bytes) -> None:
        """Atomically replace the file at ``path`` with ``data``, durably."""
        ...

    async def writer(self, path: str, *, resume: bool = False, state: bytes | None = None) -> Writer:
        """A writer appending to ``path`` (``resume``, from ``state`` if the driver needs one)
        or starting it empty."""
        ...

    async def move(self, source: str, destination: str) -> None:
        """Atomically and durably rename; replaces ``destination``; raises ``PathNotFound``."""
        ...

    async def delete(self, path: str) -> None:
        """Delete a file or a whole directory tree; a missing path is not an error."""
        ...

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Every file path under ``prefix``, recursively, in no particular order."""
        ...

    def walk(self, prefix: str) -> AsyncIterator[StoredFile]:
        """Every complete file under ``prefix``, recursively, in no particular order, with its size
        and modification time (an object store's LastModified). Unlike ``list`` it leaves out what
        is not a readable file yet (an object store's unfinished multipart uploads)."""
        ...

    def local_path(self, path: str) -> str | None:
        """A filesystem path the server may send with zero-copy I/O, or None."""
        ...

    def redirect_url(self, path: str) -> str | None:
        """A URL the client may fetch the file from instead (a presigned object-store GET), or None."""
        ...
