"""A TCP proxy a test controls, to make a real dependency (PostgreSQL, radosgw) fail on cue.

It listens on a free loopback port and forwards every connection to ``target``. The test turns
the dependency's network off and on without touching the dependency itself, which other tests
(and other test runs on the machine) keep using:

- ``down()``: stop listening (new connections are refused) and cut every open connection, as a
  stopped server looks to its clients; ``up()`` listens again on the same port.
- ``hang()``: accept connections and forward nothing either way (a server that stopped answering:
  clients see their timeouts, not a refusal); ``up()`` ends it.
- ``slow(seconds)``: forward, but wait ``seconds`` before passing on each piece of data.
- ``cut()``: cut every open connection, keep listening (a connection that breaks mid-transfer).
- ``answer(raw)``: answer each new connection's first request with the bytes ``raw`` (an HTTP
  error, or garbage) and close it, forwarding nothing; ``up()`` ends it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    target: tuple[str, int]
    port: int = 0
    delay: float = 0.0
    hanging: bool = False
    reply: bytes | None = None
    _listener: socket.socket | None = None
    _open: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    # -- control -------------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone leaves it listening.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._cut_all()

    def up(self) -> None:
        """Forward normally again (listening again if ``down()`` stopped it)."""
        self.hanging = False
        self.delay = 0.0
        self.reply = None
        if self._listener is None:
            self._listen()

    def hang(self) -> None:
        """Keep connections open but pass nothing on; connections already open stall too."""
        self.hanging = True

    def slow(self, seconds: float) -> None:
        self.delay = seconds

    def cut(self) -> None:
        """Cut the open connections; new ones are forwarded as before."""
        self._cut_all()

    def answer(self, raw: bytes) -> None:
        """Answer new connections with ``raw`` instead of forwarding them."""
        self.reply = raw

    def close(self) -> None:
        self._stopped = True
        self.down()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- forwarding ----------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(1024)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            if self.reply is not None:
                threading.Thread(target=self._answer, args=(client, self.reply), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self.hanging and not self._stopped and source in self._open:
                    time.sleep(0.05)
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._cut(source, sink)

    def _answer(self, client: socket.socket, raw: bytes) -> None:
        with self._lock:
            self._open.add(client)
        try:
            client.recv(65536)
            client.sendall(raw)
        except OSError:
            pass
        finally:
            self._cut(client)

    def _cut(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._open.discard(sock)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _cut_all(self) -> None:
        with self._lock:
            sockets = list(self._open)
        self._cut(*sockets)
