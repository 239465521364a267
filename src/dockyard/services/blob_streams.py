"""A stored blob as a blocking file object, for the layer walker that runs in a worker thread.

On the filesystem driver the thread opens the blob's file itself (``local_path``). On an object
store it reads the driver's async stream: each ``read`` in the thread asks the event loop for the
next chunk (``asyncio.run_coroutine_threadsafe``) and waits for it, so at most one driver chunk is
held at a time and the event loop is never blocked by the walk.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO

from dockyard.errors import BlobUnknown
from dockyard.storage.blobstore import BlobStore

BUFFER = 1 << 16
CHUNK_WAIT = 300.0  # seconds a read in the thread waits for the next chunk from storage


class Stopped(Exception):
    """The reader was told to stop (the scan was cancelled: the server is shutting down)."""


def blob_opener(store: BlobStore, digest: str, loop: asyncio.AbstractEventLoop,
                stop: threading.Event) -> Callable[[], BinaryIO]:
    """A function, to call in a worker thread, that opens a new stream of the blob's bytes; a read
    after ``stop`` is set raises ``Stopped`` (a thread cannot be cancelled, its reads can)."""

    def open_blob() -> BinaryIO:
        location = asyncio.run_coroutine_threadsafe(store.locate(digest), loop).result(CHUNK_WAIT)
        if location is None:
            raise BlobUnknown(f"blob {digest} is not in storage", detail={"digest": digest})
        if location.local_path is not None:
            raw: io.RawIOBase = _File(open(location.local_path, "rb", buffering=0), stop)  # noqa: SIM115
        else:
            raw = _AsyncChunks(store.read(location), loop, stop)
        return io.BufferedReader(raw, BUFFER)  # the walker closes it, and so the file

    return open_blob


class _File(io.RawIOBase):
    def __init__(self, file: BinaryIO, stop: threading.Event) -> None:
        self._file = file
        self._stop = stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._stop.is_set():
            raise Stopped()
        return self._file.readinto(buffer)  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        self._file.close()
        super().close()


class _AsyncChunks(io.RawIOBase):
    """An async iterator of chunks, read from another thread than its event loop's."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        self._chunks = chunks
        self._loop = loop
        self._stop = stop
        self._pending = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._ended:
            if self._stop.is_set():
                raise Stopped()
            chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result(CHUNK_WAIT)
            if chunk is None:
                self._ended = True
            else:
                self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    async def _next(self) -> bytes | None:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return None

    def close(self) -> None:
        if not self.closed and not self._ended:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                # Closing a read early: the driver logs its own trouble.
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(aclose(), self._loop).result(CHUNK_WAIT)
        super().close()
