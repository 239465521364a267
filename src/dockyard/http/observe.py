"""Metrics and the access log: one middleware that sees every request (metrics: ``metrics.py``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.errors import BodyStalled, RegistryError
from dockyard.http.batches import FlushLater
from dockyard.http.errors import render_error
from dockyard.http.limits import PACE_WINDOW, BodyReader, RequestLimits
from dockyard.http.metrics import Metrics
from dockyard.http.sockets import ClientGone

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
FLUSH_LINES = 256
FLUSH_SECONDS = 0.5
# The C function json.dumps uses for a str (ensure_ascii): the quoted, escaped JSON text.
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _json_text(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


class UTCClock:
    """Timestamps as ``datetime.now(UTC).isoformat(timespec="milliseconds")`` writes them (the
    time truncated to the millisecond); the part up to the second is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self, at_ns: int | None = None) -> str:
        at_ns = time.time_ns() if at_ns is None else at_ns
        second, rest = divmod(at_ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{rest // 1_000_000:03d}+00:00"


class AccessLog:
    """One JSON line per request, written in batches.

    Going through ``logging`` with a flush per record cost a third of the registry's request
    rate, so lines are buffered and written together: when 256 are waiting, or half a second after
    the first of them. A crash loses at most that half second of access lines, never data. Each
    line is formatted directly, with the same keys, order and escaping as ``json.dumps`` with
    compact separators: building a dict and encoding it cost a fifth of a manifest GET.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lines: list[str] = []
        self._later = FlushLater(self.flush, FLUSH_SECONDS)
        self.clock = UTCClock()

    def write_request(self, *, method: str, path: str, route: str, status: int, duration_ms: float,
                      bytes_in: int, bytes_out: int, remote: str | None, user: str | None,
                      user_agent: str | None) -> None:
        self._add(
            f'{{"method":{_json_string(method)},"path":{_json_string(path)},"route":{_json_string(route)},'
            f'"status":{int(status)},"duration_ms":{float(duration_ms)!r},"bytes_in":{int(bytes_in)},'
            f'"bytes_out":{int(bytes_out)},"remote":{_json_text(remote)},"user":{_json_text(user)},'
            f'"user_agent":{_json_text(user_agent)},"time":"{self.clock.now()}"}}')

    def _add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= FLUSH_LINES:
            self.flush()
        else:
            self._later.request()

    def flush(self) -> None:
        self._later.done()
        if not self._lines:
            return
        stream = self.stream or sys.stdout
        stream.write("\n".join(self._lines) + "\n")
        stream.flush()
        self._lines.clear()


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, *, access_log: AccessLog | None,
                 limits: RequestLimits | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "out": 0, "in": 0}
        has_body = scope["method"] in _BODY_METHODS
        is_upload = has_body and "/blobs/uploads" in scope["path"]
        limits = self.limits
        reader: BodyReader | None = None
        if limits is not None and has_body:
            if is_upload and not limits.uploads.take():
                await self._refuse(scope, receive, send, state, started, limits.uploads.busy())
                return
            reader = limits.bodies.start(receive)
            receive = reader.receive

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                for key, value in message.get("headers", ()):
                    if key == b"content-length":
                        state["length"] = int(value)
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
                if state["out"] > PACE_WINDOW and limits is not None and message.get("more_body"):
                    await limits.pace(scope, state)
            elif message["type"] == "http.response.pathsend":
                state["out"] += state.get("length", 0)
            await send(message)

        if is_upload:
            self.metrics.uploads_in_flight.inc()
        try:
            await self.app(scope, counting_receive, counting_send)
        except BodyStalled as exc:  # from a part of the app that does not render errors itself
            if state.get("started"):
                raise
            await render_error(exc)(scope, receive, counting_send)
        except ClientGone:  # a paced response whose client left or stopped reading: nobody to answer
            pass
        finally:
            if state.get("pacer"):
                state["pacer"].close()
            if is_upload:
                self.metrics.uploads_in_flight.dec()
            if limits is not None and reader is not None:
                limits.bodies.stop(reader)
                if is_upload:
                    limits.uploads.give()
            self._observe(scope, state, time.perf_counter() - started)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, state: dict[str, Any],
                      started: float, error: RegistryError) -> None:
        """Answer ``error`` without calling the app (its body is never read)."""
        state["status"] = error.status
        try:
            await render_error(error)(scope, receive, send)
        finally:
            self._observe(scope, state, time.perf_counter() - started)

    def _observe(self, scope: Scope, state: dict[str, Any], elapsed: float) -> None:
        route = scope.get("dockyard.route") or _route_label(scope["path"])
        method = scope["method"]
        status = state["status"]
        self.metrics.record(method, route, status, elapsed, state["in"], state["out"])
        if self.access_log is not None:
            client = scope.get("client")
            self.access_log.write_request(
                method=method, path=scope["path"][:512], route=route, status=status,
                duration_ms=round(elapsed * 1000, 3), bytes_in=state["in"], bytes_out=state["out"],
                remote=client[0] if client else None, user=scope.get("dockyard.user"),
                user_agent=_header(scope, b"user-agent"))


_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _route_label(path: str) -> str:
    if path.startswith("/v2"):
        return "v2_unmatched"
    if path == "/token":
        return "token"
    if path.startswith("/api/v1/"):
        return "api"
    return path if path in _OPS_PATHS else "other"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1")[:200])
    return None
