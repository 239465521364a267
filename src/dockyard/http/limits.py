"""Per-worker limits that keep slow and greedy clients from starving the others.

Two of them live here, applied by the observe middleware to every request:

- **Stalled bodies** (``server.body_read_timeout``, ``server.body_min_rate``). granian's HTTP
  server times a request's head but not its body, so a client could hold a worker's upload (its
  buffers, its storage writer) for ever by sending a byte now and then. Each request with a body
  gets a ``BodyReader``: its ``receive`` adds up the time spent waiting for the client and the
  bytes that came (two clock reads and a few additions per piece, nothing else). A timer that
  runs only while such requests exist looks at them every ``tick``; one whose body brought too
  little in a window of waiting (``BodyWatch``) is cancelled right where it waits, and its
  ``receive`` turns the cancellation into ``BodyStalled`` (408, connection closed), which the
  handler sees as it would any failed read: an upload keeps what it had written, records nothing
  half, and can be resumed. A slow but steady upload is never cut.
- **Uploads in flight** (``registry.max_uploads_in_flight``): past the limit an upload request is
  answered 503 with ``Retry-After`` before its body is read.
- **Responses streamed from Python** (an object-store blob, a range without the RSGI bridge):
  once one has sent ``PACE_WINDOW`` bytes, each further piece waits while more than that is
  unacknowledged by the client (``sockets.SendPacer``), as granian would buffer it all.

Connections are bounded where granian accepts them (``server.max_connections``), and the timeouts
granian and the kernel enforce are set up by ``dockyard.http.sockets``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.types import Message, Receive, Scope

from dockyard.errors import BodyStalled, Unavailable
from dockyard.http.sockets import SendPacer, find_connection

PACE_WINDOW = 16 * 1024 * 1024  # bytes a response streamed from Python may have out unacknowledged
UPLOADS_RETRY_AFTER = 1  # seconds: an upload slot frees as soon as any upload request ends
_DISCONNECT: Message = {"type": "http.disconnect"}


class BodyReader:
    """One request's ``receive``, watched for a body too slow to wait for (module docstring)."""

    __slots__ = ("got", "inner", "since", "stalled", "task", "waited", "watch")

    def __init__(self, inner: Receive, watch: BodyWatch) -> None:
        self.inner = inner
        self.watch = watch
        self.since = 0.0  # when the wait for the next piece began; 0: not waiting
        self.waited = 0.0  # seconds spent waiting for the client in this window, the wait under way aside
        self.got = 0  # bytes received in this window
        self.task: asyncio.Task[object] | None = None
        self.stalled = False

    async def receive(self) -> Message:
        if self.stalled:  # the body was given up on; the connection is being closed
            return _DISCONNECT
        self.task = asyncio.current_task()
        self.since = time.monotonic()
        try:
            message = await self.inner()
        except asyncio.CancelledError:
            if not self.stalled or self.task is None:
                raise
            self.task.uncancel()  # the watch's own cancellation, and nobody else's: it ends here
            raise self.watch.stalled_error() from None
        finally:
            self.waited += time.monotonic() - self.since
            self.since = 0.0
        self.got += len(message.get("body", b""))
        return message

    def _stall(self) -> None:
        self.stalled = True
        if self.task is not None:
            self.task.cancel()


class BodyWatch:
    """Cuts request bodies too slow to wait for; one per worker.

    Time is counted only while the request waits for its client (a server busy writing to
    storage is not the client's fault). For each ``timeout`` seconds of such waiting the body
    must bring at least ``min_rate * timeout`` bytes (and at least one): a body that pauses for
    the whole timeout, or trickles a byte a second, is cut; one that is merely slow is not.
    """

    def __init__(self, timeout: float, min_rate: int = 0) -> None:
        self.timeout = timeout
        self.min_rate = min_rate
        self.min_bytes = max(1, round(min_rate * timeout))
        self.tick = min(1.0, timeout / 4)
        self.stalls = 0  # bodies cut so far
        self._readers: set[BodyReader] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, receive: Receive) -> BodyReader:
        """Watch a request's body from now until ``stop``."""
        reader = BodyReader(receive, self)
        self._readers.add(reader)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)
        return reader

    def stop(self, reader: BodyReader) -> None:
        self._readers.discard(reader)

    def stalled_error(self) -> BodyStalled:
        return BodyStalled(
            f"the request body brought fewer than {self.min_bytes} bytes in {self.timeout:g} s "
            "(server.body_read_timeout, server.body_min_rate); the connection is closed. An upload "
            "keeps what it had received: GET its Location for the Range and resume from there",
            detail={"timeout_seconds": self.timeout, "min_bytes_per_second": self.min_rate})

    def _check(self) -> None:
        # A timer rather than a task: nothing is left pending when a loop closes between checks.
        self._timer = None
        now = time.monotonic()
        for reader in list(self._readers):
            waited = reader.waited + (now - reader.since if reader.since else 0.0)
            if waited < self.timeout:
                continue
            if reader.got >= self.min_bytes:  # enough came in this window: start the next one
                reader.waited, reader.got = 0.0, 0
                reader.since = now if reader.since else 0.0
                continue
            self._readers.discard(reader)
            self.stalls += 1
            reader._stall()
        if self._readers:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)


class UploadSlots:
    """How many upload requests a worker serves at once (``registry.max_uploads_in_flight``)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1

    def busy(self) -> Unavailable:
        """The answer to an upload past the limit: 503, retry in a second (another worker or node
        may take it at once; the limit is this worker's capacity, not the client's rate)."""
        return Unavailable(
            f"this registry worker is serving its limit of {self.limit} uploads "
            "(registry.max_uploads_in_flight); retry shortly",
            headers={"Retry-After": str(UPLOADS_RETRY_AFTER)})


class RequestLimits:
    """The limits the observe middleware applies (``None`` there: no limits, as in some tests)."""

    __slots__ = ("bodies", "send_timeout", "uploads")

    def __init__(self, *, body_read_timeout: float, body_min_rate: int, max_uploads_in_flight: int,
                 send_timeout: float = 60.0) -> None:
        self.bodies = BodyWatch(body_read_timeout, body_min_rate)
        self.uploads = UploadSlots(max_uploads_in_flight)
        self.send_timeout = send_timeout

    async def pace(self, scope: Scope, state: dict[str, Any]) -> None:
        """Wait while the client is more than ``PACE_WINDOW`` behind the ``state["out"]`` bytes
        sent (``sockets.ClientGone`` when it is gone); ``state["pacer"]`` keeps the connection's
        socket, for the caller to close when the response ends."""
        pacer: SendPacer | bool | None = state.get("pacer")
        if pacer is None:
            client, server = scope.get("client"), scope.get("server")
            sock = find_connection(client, server[1]) if client and server else None
            pacer = SendPacer(sock, PACE_WINDOW, self.send_timeout) if sock is not None else False
            state["pacer"] = pacer  # False: not found (a unix socket, a test transport): unpaced
        if isinstance(pacer, SendPacer):
            await pacer.wait(state["out"])
