"""Streaming layer files to a ClamAV daemon (clamd) and collecting what it detects.

clamd's protocol, as used here (one connection per command; ``z`` commands end with a NUL, and so
do their answers):

    zPING\\0      → PONG\\0
    zVERSION\\0   → ClamAV 1.4.6/27000/Mon Jan 1 08:00:00 2026\\0
    zINSTREAM\\0  then chunks, each a 4-byte big-endian length and that many bytes, then a zero length
                 → stream: OK\\0 | stream: NAME FOUND\\0 | INSTREAM size limit exceeded. ERROR\\0
                   | … ERROR\\0

The address is ``scan.clamd.socket``: a Unix socket path, or ``tcp://HOST:PORT``. Every connect,
send and receive is bounded by ``timeout`` seconds (``scan.clamd.timeout``), and so is each layer's
whole share of the malware scan, so a dead, wedged or overwhelmed daemon gives ``ClamdUnavailable``
(503 when it reaches a client) instead of a hang. A file larger than clamd's
own ``StreamMaxLength`` is refused by clamd: that is ``ClamdLimitExceeded``, which the visitor
counts as skipped rather than as an outage.
"""

from __future__ import annotations

import logging
import socket as sockets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from dockyard.errors import Unavailable
from dockyard.scan.layers import History, LayerFile
from dockyard.scan.report import MalwareFinding

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
DEFAULT_MAX_FILE_BYTES = 25 * 1024 * 1024  # clamd's own default StreamMaxLength
MAX_ANSWER_BYTES = 4096


class ClamdUnavailable(Unavailable):
    """clamd could not be reached, did not answer in time, or answered with an error."""

    default_message = "the malware scanner (clamd) is unavailable; check scan.clamd.socket"


class ClamdLimitExceeded(ClamdUnavailable):
    """clamd refused a stream longer than its StreamMaxLength."""


class Clamd:
    """A client of one clamd, at a Unix socket path or ``tcp://HOST:PORT``."""

    def __init__(self, socket: str, timeout: float) -> None:
        self.socket = socket
        self.timeout = timeout
        self._tcp: tuple[str, int] | None = None
        self._unix: str | None = None
        if socket.startswith("tcp://"):
            parts = urlsplit(socket)
            try:
                port = parts.port
            except ValueError:
                port = None
            if not parts.hostname or port is None:
                raise ClamdUnavailable(f"scan.clamd.socket {socket!r} is not tcp://HOST:PORT nor a socket path")
            self._tcp = (parts.hostname, port)
        else:
            self._unix = socket.removeprefix("unix://")

    def ping(self) -> None:
        """Check that clamd answers; raises ``ClamdUnavailable`` otherwise."""
        answer = self._command(b"zPING\0")
        if answer != "PONG":
            raise self._error(f"answered PING with {answer[:80]!r}")

    def version(self) -> str:
        """clamd's version and its signature database's: ``ClamAV 1.4.6/27000/…``."""
        return self._command(b"zVERSION\0")

    def scan_bytes(self, data: bytes) -> str | None:
        """The name of the signature ``data`` matches, or None when clean."""
        return self._verdict(self._command(b"zINSTREAM\0", data))

    def _verdict(self, answer: str) -> str | None:
        if answer.endswith("ERROR"):
            if "size limit exceeded" in answer:
                raise ClamdLimitExceeded(f"clamd at {self.socket} refused a file over its StreamMaxLength")
            raise self._error(f"answered {answer[:200]!r}")
        _, _, result = answer.partition(": ")
        if result == "OK":
            return None
        if result.endswith(" FOUND"):
            return result.removesuffix(" FOUND")
        raise self._error(f"gave an answer this client does not understand: {answer[:200]!r}")

    def _command(self, command: bytes, stream: bytes | None = None) -> str:
        try:
            with self._connect() as conn:
                try:
                    conn.sendall(command)
                    if stream is not None:
                        self._send_stream(conn, stream)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # clamd closes early to refuse a stream (size limit): its answer says why
                return self._answer(conn)
        except TimeoutError as exc:
            raise self._error(f"did not answer within {self.timeout:g}s") from exc
        except OSError as exc:
            raise self._error(f"is unreachable ({exc.strerror or exc})") from exc

    def _connect(self) -> sockets.socket:
        if self._tcp is not None:
            return sockets.create_connection(self._tcp, timeout=self.timeout)
        conn = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        conn.settimeout(self.timeout)
        try:
            conn.connect(self._unix or "")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _send_stream(conn: sockets.socket, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_BYTES):
            chunk = view[start:start + CHUNK_BYTES]
            conn.sendall(struct.pack(">I", len(chunk)))
            conn.sendall(chunk)
        conn.sendall(struct.pack(">I", 0))

    def _answer(self, conn: sockets.socket) -> str:
        answer = b""
        while not answer.endswith(b"\0") and len(answer) < MAX_ANSWER_BYTES:
            data = conn.recv(MAX_ANSWER_BYTES)
            if not data:
                break
            answer += data
        if not answer:
            raise self._error("closed the connection without answering")
        return answer.rstrip(b"\0").decode("utf-8", "replace").strip()

    def _error(self, what: str) -> ClamdUnavailable:
        return ClamdUnavailable(f"clamd at {self.socket} {what}; check scan.clamd.socket and that clamd is running")


@dataclass(frozen=True, slots=True)
class _Detection:
    index: int
    layer: str
    path: str
    signature: str


class ClamdVisitor:
    """A ``layers.Visitor`` that streams every file up to ``max_file_bytes`` to clamd.

    When clamd fails mid-walk, or one layer's files take longer than ``clamd.timeout`` in all, the
    visitor stops sending (the walk and the other visitors go on) and ``findings`` raises the
    ``ClamdUnavailable``: a malware scan is all or nothing.
    """

    def __init__(self, clamd: Clamd, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clamd = clamd
        self.max_file_bytes = max_file_bytes
        self._clock = clock
        self._layer: tuple[int, float] | None = None  # the layer being scanned, and when it started
        self.files_scanned = 0
        self.skipped_large = 0
        self.error: ClamdUnavailable | None = None
        self._detections: list[_Detection] = []

    def wants(self, entry: LayerFile) -> int:
        if self.error is not None or entry.size == 0:
            return 0
        if entry.size > self.max_file_bytes:
            self.skipped_large += 1
            return 0
        return entry.size

    def visit(self, entry: LayerFile, data: bytes) -> None:
        try:
            self._check_layer_time(entry)
            signature = self.clamd.scan_bytes(data)
        except ClamdLimitExceeded:
            self.skipped_large += 1
            return
        except ClamdUnavailable as exc:
            log.warning("malware scan stopped at layer %s: %s", entry.layer, exc.message)
            self.error = exc
            return
        self.files_scanned += 1
        if signature is not None:
            self._detections.append(_Detection(entry.index, entry.layer, entry.path, signature))

    def _check_layer_time(self, entry: LayerFile) -> None:
        now = self._clock()
        if self._layer is None or self._layer[0] != entry.index:
            self._layer = (entry.index, now)
        elif now - self._layer[1] > self.clamd.timeout:
            raise ClamdUnavailable(f"clamd at {self.clamd.socket} took over {self.clamd.timeout:g}s on the files of "
                                   f"layer {entry.layer}; raise scan.clamd.timeout or give clamd more threads")

    def findings(self, history: History) -> list[MalwareFinding]:
        """What clamd detected, each marked ``removed`` when the final image no longer has that file;
        raises the ``ClamdUnavailable`` that stopped the scan, if one did."""
        if self.error is not None:
            raise self.error
        return [MalwareFinding(d.layer, d.path, d.signature, removed=not history.present(d.index, d.path))
                for d in self._detections]
