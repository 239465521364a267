"""Serve the ASGI app through granian's RSGI protocol.

RSGI can send a byte range of a file from native code (``response_file_range``), which ASGI's
``http.response.pathsend`` cannot: with this bridge a resumed pull (``Range``) is as zero-copy as
a whole one. The app stays a plain ASGI app; this module is the only one that knows RSGI.

Besides the standard ``http.response.pathsend`` the bridge offers the extension
``dockyard.pathsend.range``: a pathsend message carrying ``"range": (first, last)`` sends those
bytes (inclusive) of the file.

An app that fails after its response started raises ``ResponseAborted`` (or anything else): the
bridge lets go of granian's stream at once, which ends the body short of its ``Content-Length``,
so granian closes the connection and the client sees a broken transfer. (Left to the garbage
collector, the stream would keep the client waiting for the rest, as long as its timeout.)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol
from urllib.parse import quote

from starlette.types import ASGIApp, Message

RANGE_EXTENSION = "dockyard.pathsend.range"
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_EXTENSIONS: dict[str, dict[str, Any]] = {"http.response.pathsend": {}, RANGE_EXTENSION: {}}


class ResponseAborted(Exception):
    """Raised by the app after its response started, to cut the connection (the failure was
    already reported: the bridge logs no traceback for it)."""


class RSGIScope(Protocol):
    http_version: str
    method: str
    scheme: str
    path: str
    query_string: str
    client: str
    server: str

    @property
    def headers(self) -> Any: ...


# Both caches are bounded in bytes by their entries' sizes: an address is at most ~60 characters
# (~250 bytes an entry, with the parsed tuple and the cache's node), a remembered path at most 256
# (~1.2 KiB with its quoted form, 3x at worst). 1,024 of each: under 1.5 MiB per worker, whatever
# is sent; filled within seconds under load (every upload and every connection is new).
CACHED = 1024


@functools.lru_cache(maxsize=CACHED)  # the server's address never changes, a client's rarely
def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


def _quote(path: str) -> bytes:
    return quote(path, safe=_PATH_SAFE).encode("ascii")


_quote_remembered = functools.lru_cache(maxsize=CACHED)(_quote)  # a popular manifest's path repeats


def _raw_path(path: str) -> bytes:
    # Only short paths are remembered: CACHED of them at most 256 characters each, whatever is sent.
    return _quote_remembered(path) if len(path) <= 256 else _quote(path)


class _Exchange:
    """One request: feeds the ASGI app's receive() and turns its send() into RSGI calls."""

    __slots__ = ("body", "headers", "more", "protocol", "status", "stream")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.body: AsyncIterator[bytes] | None = None
        self.more = True
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.stream: Any = None

    async def receive(self) -> Message:
        if not self.more:
            await self.protocol.client_disconnect()
            return {"type": "http.disconnect"}
        if self.body is None:
            self.body = self.protocol.__aiter__()
        try:
            chunk = await self.body.__anext__()
        except StopAsyncIteration:
            self.more = False
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
        elif kind == "http.response.body":
            await self._body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.pathsend":
            span = message.get("range")
            if span is None:
                self.protocol.response_file(self.status, self.headers, message["path"])
            else:
                self.protocol.response_file_range(self.status, self.headers, message["path"],
                                                  span[0], span[1] + 1)

    async def _body(self, body: bytes, more: bool) -> None:
        if self.stream is None and not more:
            self.protocol.response_bytes(self.status, self.headers, body)
            return
        if self.stream is None:
            self.stream = self.protocol.response_stream(self.status, self.headers)
        if body:
            await self.stream.send_bytes(body)


class RSGIBridge:
    """An RSGI application wrapping an ASGI one, lifespan included.

    The worker that serves it runs the app's lifespan around serving: ``await startup()`` before
    it starts granian's server, ``await shutdown()`` once that has stopped (``dockyard.serving``).
    granian calls ``__rsgi_init__`` right before it starts serving, which is when
    ``before_serving`` runs (``server.pin_workers`` pins the threads granian starts then).
    """

    def __init__(self, app: ASGIApp,
                 before_serving: Callable[[asyncio.AbstractEventLoop], None] | None = None) -> None:
        self.app = app
        self.before_serving = before_serving
        self.state: dict[str, Any] = {}
        self._lifespan: asyncio.Task[None] | None = None
        self._lifespan_inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def startup(self) -> None:
        await self._lifespan_step("startup")

    async def shutdown(self) -> None:
        await self._lifespan_step("shutdown")

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.before_serving is not None:
            self.before_serving(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Nothing: the worker shuts the app down once granian's server has stopped."""

    async def _lifespan_step(self, step: str) -> None:
        if self._lifespan is None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.4"}, "state": self.state}
            self._lifespan = asyncio.ensure_future(
                self.app(scope, self._lifespan_inbox.get, self._lifespan_outbox.put))
        await self._lifespan_inbox.put({"type": f"lifespan.{step}"})
        reply = await self._lifespan_outbox.get()
        if reply["type"].endswith(".failed"):
            raise RuntimeError(f"{step} failed: {reply.get('message', '')}")
        if step == "shutdown":
            await self._lifespan

    async def __rsgi__(self, scope: RSGIScope, protocol: Any) -> None:
        path = scope.path  # granian hands RSGI apps the path already percent-decoded
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()]
        asgi_scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": scope.http_version, "method": scope.method, "scheme": scope.scheme,
            "path": path, "raw_path": _raw_path(path),
            "query_string": scope.query_string.encode("latin-1"),
            "root_path": "", "headers": headers, "client": _address(scope.client),
            "server": _address(scope.server), "extensions": _EXTENSIONS, "state": dict(self.state),
        }
        exchange = _Exchange(protocol)
        try:
            await self.app(asgi_scope, exchange.receive, exchange.send)
        except ResponseAborted:
            if exchange.stream is None:
                raise  # nothing sent yet: granian answers 500, which is what happened
            exchange.stream = None  # granian's end of the body goes away: the connection is cut
        except BaseException:
            exchange.stream = None
            raise
