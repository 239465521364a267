"""Blob responses: zero-copy for whole files, large-block reads for ranges.

A blob on a local filesystem goes out through the ASGI ``http.response.pathsend`` extension
(granian sends it from native code); under the RSGI bridge a ``Range`` does too, through the
bridge's ``dockyard.pathsend.range`` extension. Elsewhere a ``Range`` is answered from
``os.pread`` in a worker thread, in blocks of ``RANGE_BLOCK``. Without a local path the blob is
streamed from the storage driver.

Storage is asked before the status line goes out (the file opened, the stream's first chunk
read), so a blob whose bytes are missing or whose store fails gets a proper error response. A
failure after that, once the length is promised, raises ``ResponseAborted`` out of the response:
the server cuts the connection, and the client sees a broken download rather than a short blob
taken for a whole one.
Either way ``failed`` hears of it (to log and count it, and to say what the client sees); a client
that goes away is not a storage failure and is not reported.

``redirect_keeps_credentials`` decides whether a presigned redirect is safe to send (see there).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from dockyard.errors import RegistryError
from dockyard.http.errors import render_error
from dockyard.http.rsgi import RANGE_EXTENSION, ResponseAborted

RANGE_BLOCK = 4 * 1024 * 1024
Failed = Callable[[Exception], RegistryError]


class BlobResponse:
    def __init__(self, *, status: int, headers: dict[str, str], local_path: str | None,
                 offset: int, length: int, head: bool,
                 stream: Callable[[int, int], AsyncGenerator[bytes, None]], failed: Failed) -> None:
        self.status = status
        self.headers = headers
        self.local_path = local_path
        self.offset = offset
        self.length = length
        self.head = head
        self.stream = stream
        self.failed = failed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.head or self.length == 0:
            await self._start(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        extensions = scope.get("extensions") or {}
        whole = self.status == 200
        if whole and self.local_path and "http.response.pathsend" in extensions:
            await self._start(send)
            await send({"type": "http.response.pathsend", "path": self.local_path})
        elif self.local_path and RANGE_EXTENSION in extensions:
            await self._start(send)
            span = (self.offset, self.offset + self.length - 1)
            await send({"type": "http.response.pathsend", "path": self.local_path, "range": span})
        elif self.local_path:
            await self._send_file_range(scope, receive, send, self.local_path)
        else:
            await self._send_stream(scope, receive, send)

    async def _start(self, send: Send) -> None:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        raw.append((b"content-length", str(self.length).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": raw})

    async def _refuse(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """Nothing was sent yet: the client gets the error ``failed`` names for ``exc``."""
        await render_error(self.failed(exc))(scope, receive, send)

    async def _send_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = self.stream(self.offset, self.length)
        try:
            try:
                first = await anext(chunks, b"")
            except Exception as exc:
                await self._refuse(exc, scope, receive, send)
                return
            await self._start(send)
            chunk = first
            while chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                try:
                    chunk = await anext(chunks, b"")
                except Exception as exc:
                    raise ResponseAborted(self.failed(exc).message) from exc  # cut: the length was promised
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await chunks.aclose()

    async def _send_file_range(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            await self._refuse(exc, scope, receive, send)
            return
        try:
            await self._start(send)
            position, end = self.offset, self.offset + self.length
            while position < end:
                size = min(RANGE_BLOCK, end - position)
                try:
                    chunk = await anyio.to_thread.run_sync(os.pread, fd, size, position)
                    if not chunk:
                        raise EOFError(f"blob file {path} ended at byte {position} of {end}")
                except (OSError, EOFError) as exc:
                    raise ResponseAborted(self.failed(exc).message) from exc  # cut: the length was promised
                position += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": position < end})
        finally:
            os.close(fd)


def redirect_keeps_credentials(location: str, host: str | None) -> bool:
    """Whether a client following a redirect to ``location`` sends it the ``Authorization`` header it
    sent to ``host`` (the request's Host), as Go's net/http does: to the same host name, whatever
    the port, and to its subdomains. Docker, containerd, oras and the OCI conformance suite are
    built on it; a presigned URL that receives that header is refused by the store (400), so such
    a blob must be streamed, not redirected."""
    if not host:
        return True  # an HTTP/1.0 request without Host: unknown, so assume the worst
    target = (urlsplit(location).hostname or "").lower().rstrip(".")
    origin = (urlsplit(f"//{host}").hostname or "").lower().rstrip(".")
    if target == origin:
        return True
    if ":" in target or "%" in target or not origin:  # an IPv6 address is never a subdomain
        return False
    return target.endswith(f".{origin}")
