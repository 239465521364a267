"""Blob responses: zero-copy for whole files, large-block reads for ranges.

A blob on a local filesystem goes out through the ASGI ``http.response.pathsend`` extension
(granian sends it from native code); under the RSGI bridge a ``Range`` does too, through the
bridge's ``dockyard.pathsend.range`` extension. Elsewhere a ``Range`` is answered from
``os.pread`` in a worker thread, in blocks of ``RANGE_BLOCK``. Without a local path the blob is
streamed from the storage driver.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from dockyard.http.rsgi import RANGE_EXTENSION

RANGE_BLOCK = 4 * 1024 * 1024


class BlobResponse:
    def __init__(self, *, status: int, headers: dict[str, str], local_path: str | None,
                 offset: int, length: int, head: bool,
                 stream: Callable[[int, int], AsyncIterator[bytes]]) -> None:
        self.status = status
        self.headers = headers
        self.local_path = local_path
        self.offset = offset
        self.length = length
        self.head = head
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        raw.append((b"content-length", str(self.length).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        if self.head or self.length == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        extensions = scope.get("extensions") or {}
        whole = self.status == 200
        if whole and self.local_path and "http.response.pathsend" in extensions:
            await send({"type": "http.response.pathsend", "path": self.local_path})
        elif self.local_path and RANGE_EXTENSION in extensions:
            span = (self.offset, self.offset + self.length - 1)
            await send({"type": "http.response.pathsend", "path": self.local_path, "range": span})
        elif self.local_path:
            await self._send_file_range(send, self.local_path)
        else:
            async for chunk in self.stream(self.offset, self.length):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_file_range(self, send: Send, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            position, end = self.offset, self.offset + self.length
            while position < end:
                size = min(RANGE_BLOCK, end - position)
                chunk = await anyio.to_thread.run_sync(os.pread, fd, size, position)
                if not chunk:
                    raise OSError(f"blob file {path} is shorter than recorded")
                position += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": position < end})
        finally:
            os.close(fd)
