"""Connection timeouts below the app: what granian's server does not time, the kernel or this does.

granian's HTTP/1 server (hyper) times the reading of a request's head, and with the same timer a
kept-alive connection waiting for its next request (``server.header_read_timeout``). It does
not time two things a hostile client can do for ever, each holding one of the worker's
``server.max_connections`` (and a file, a task) until it stops:

- **Stop reading a response.** ``send_timeout`` sets ``TCP_USER_TIMEOUT`` on the listening socket,
  which every accepted connection inherits: the kernel drops a connection whose bytes stay
  unacknowledged, or whose receive window stays shut, for that long (tcp(7)). A slow download
  that keeps reading is never cut. The server then sees the connection fail and lets go of it.
- **Connect and say nothing.** hyper starts its timer at a request's first byte; a new connection
  that never sends one is left open. ``SilentConnections`` looks at this process's connections to
  the server's port every few seconds (``TCP_INFO``: bytes received, time since the last) and
  shuts down those that have sent no byte at all for ``header_read_timeout``. A connection that
  sent anything is never touched here: a request in progress is hyper's and the app's to time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct

log = logging.getLogger(__name__)

_FD_DIR = "/proc/self/fd"
_TCP_ESTABLISHED = 1
# struct tcp_info (linux/tcp.h): tcpi_state is byte 0, tcpi_last_data_recv (ms) the u32 at 52,
# tcpi_bytes_acked and tcpi_bytes_received (Linux 4.1+) the u64s at 120 and 128.
_TCP_INFO_SIZE = 136
_LAST_DATA_RECV = struct.Struct("=I")
_BYTES_RECEIVED = struct.Struct("=Q")
_BYTES_ACKED = _BYTES_RECEIVED
PACE_POLL = 0.05  # seconds between looks at a client that is behind


class ClientGone(Exception):
    """The connection of a paced response closed, or its client took nothing for the send timeout."""


def set_send_timeout(listener_fd: int, seconds: float) -> None:
    """Give the listening socket (and so every connection it accepts) ``TCP_USER_TIMEOUT``."""
    sock = socket.socket(fileno=os.dup(listener_fd))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, round(seconds * 1000)))
    finally:
        sock.close()


def find_connection(client: tuple[str, int], port: int) -> socket.socket | None:
    """A duplicate of this process's descriptor of the connection from ``client`` to ``port``.

    The caller must close it soon: while it is open the connection outlives the server's close.
    """
    for name in os.listdir(_FD_DIR):
        sock = _tcp_socket(name)
        if sock is None:
            continue
        try:
            if sock.getsockname()[1] == port and tuple(sock.getpeername()[:2]) == tuple(client):
                return sock
        except OSError:
            pass
        sock.close()
    return None


class SendPacer:
    """Holds a response streamed from Python back while its client lags behind.

    granian queues a streamed body without bound: a client that stops reading an object-store
    download would have the whole blob read into the worker's memory before the send timeout
    drops it. With the connection's own socket, what the client has acknowledged
    (``tcpi_bytes_acked``) is known, and the stream waits while more than ``window`` bytes are
    out. A response sent from a file never comes here.
    """

    __slots__ = ("sock", "timeout", "window")

    def __init__(self, sock: socket.socket, window: int, timeout: float) -> None:
        self.sock = sock
        self.window = window
        self.timeout = timeout

    async def wait(self, sent: int) -> None:
        """Return once at most ``window`` of the ``sent`` bytes are unacknowledged; ClientGone if
        the connection ends first, or nothing more is acknowledged for ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        last, since = -1, loop.time()
        while True:
            try:
                info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
            except OSError as exc:
                raise ClientGone(str(exc)) from None
            if len(info) < _TCP_INFO_SIZE or info[0] != _TCP_ESTABLISHED:
                raise ClientGone("the connection closed")
            (acked,) = _BYTES_ACKED.unpack_from(info, 120)
            if sent - acked <= self.window:
                return
            if acked != last:
                last, since = acked, loop.time()
            elif loop.time() - since > self.timeout:
                raise ClientGone(f"the client took nothing for {self.timeout:g} s")
            await asyncio.sleep(PACE_POLL)

    def close(self) -> None:
        self.sock.close()


class SilentConnections:
    """Shuts down connections to ``port`` that have sent no byte for ``timeout`` seconds."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout_ms = timeout * 1000
        self.interval = max(0.5, min(5.0, timeout / 4))
        self.closed = 0  # connections shut down so far

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                found = self.sweep()
            except OSError as exc:  # /proc unreadable (a sandbox): say so once and stop
                log.warning("cannot watch for silent connections (%s); server.header_read_timeout "
                            "then does not apply to connections that never send a byte", exc)
                return
            if found:
                log.info("closed %d connection(s) that sent nothing for %g s (server.header_read_timeout)",
                         found, self.timeout_ms / 1000)

    def sweep(self) -> int:
        """Shut down the silent connections found now; how many."""
        found = 0
        for name in os.listdir(_FD_DIR):
            sock = _tcp_socket(name)
            if sock is None:
                continue
            with sock:
                if self._is_silent(sock):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # the server's own descriptor sees the end
                    except OSError:
                        continue
                    found += 1
        self.closed += found
        return found

    def _is_silent(self, sock: socket.socket) -> bool:
        try:
            if sock.getsockname()[1] != self.port:  # a client connection of ours (database, S3)
                return False
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        except OSError:
            return False
        if len(info) < _TCP_INFO_SIZE or info[0] != _TCP_ESTABLISHED:
            return False
        (received,) = _BYTES_RECEIVED.unpack_from(info, 128)
        (idle_ms,) = _LAST_DATA_RECV.unpack_from(info, 52)
        return bool(received == 0 and idle_ms >= self.timeout_ms)


def _tcp_socket(name: str) -> socket.socket | None:
    """A duplicate of descriptor ``name`` if it is a TCP socket (the original stays the server's)."""
    try:
        if not os.readlink(f"{_FD_DIR}/{name}").startswith("socket:"):
            return None
        duplicate = os.dup(int(name))
    except (OSError, ValueError):  # closed meanwhile
        return None
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:
        os.close(duplicate)
        return None
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.close()
        return None
    return sock
