"""Slow and hostile clients against a real `dockyard serve` process: they must not starve the others.

The main test opens 1,000 hostile connections to a two-worker server (``DOCKYARD_STRESS=1``:
4,000) — idle ones that never send a byte, uploads that send their body a byte a second, and
downloads of a large blob that stop reading — and meanwhile runs normal pulls at full speed:
every pull must complete with the right digest, and every hostile connection must be cut by the
server (the slow uploads with a 408) before a generous deadline. The throughput of the normal
pulls with and without the hostile connections is printed (``-s``), not asserted.

The other tests show each limit on its own: an upload cut for stalling keeps its session
consistent and can be resumed; a slow but steady upload is never cut; uploads past
``registry.max_uploads_in_flight`` are refused with 503 and ``Retry-After``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import ocihttp
from tests.support.server import ADMIN_AUTH, ServerProcess

pytestmark = pytest.mark.e2e

STRESS = os.environ.get("DOCKYARD_STRESS") == "1"
HOSTILE = 4000 if STRESS else 1000
PULL_SECONDS = 30.0 if STRESS else 6.0  # how long the normal clients pull, in each phase
PULLERS = 4
LAYER_BYTES = 24 * 1024 * 1024  # larger than what the kernel buffers for a client that stops reading
HEADER_READ_TIMEOUT = 4
BODY_READ_TIMEOUT = 3
SEND_TIMEOUT = 4
# Seconds after the hostile connections are open by which all of them must have been cut.
DEADLINE = 120.0
TIMEOUTS_ENV = {
    "DOCKYARD_SERVER__HEADER_READ_TIMEOUT": str(HEADER_READ_TIMEOUT),
    "DOCKYARD_SERVER__BODY_READ_TIMEOUT": str(BODY_READ_TIMEOUT),
    "DOCKYARD_SERVER__SEND_TIMEOUT": str(SEND_TIMEOUT),
}
TCP_ESTABLISHED = 1
BASIC = "Basic " + base64.b64encode(f"{ADMIN_AUTH[0]}:{ADMIN_AUTH[1]}".encode()).decode()


def raise_open_files_limit(needed: int) -> None:
    """This process holds every hostile connection: make room for them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == resource.RLIM_INFINITY or soft >= needed, f"need {needed} open files, may have {soft}"


def open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of a process, from /proc; unlimited as 2**63."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return tuple(2**63 if v == "unlimited" else int(v) for v in (soft, hard))  # type: ignore[return-value]
    raise AssertionError(f"no open files limit for process {pid}")


def is_established(sock: socket.socket) -> bool:
    """Whether a client socket is still connected (TCP_INFO's state; a reset one is closed)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == TCP_ESTABLISHED


def request_head(method: str, path: str, extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: registry\r\nAuthorization: {BASIC}\r\n{extra}\r\n").encode()


@dataclass
class Hostile:
    """One hostile connection and what the server did to it."""

    kind: str  # "idle", "slow-upload" or "stalled-download"
    sock: socket.socket
    received: bytearray = field(default_factory=bytearray)
    closed_at: float | None = None  # when the server ended it (EOF or reset)
    reading: bool = True  # a stalled download reads only at the end

    @property
    def status(self) -> int | None:
        head = bytes(self.received[:12])
        return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") and head[9:12].isdigit() else None


class HostileCrowd:
    """Opens the hostile connections and plays them from one thread: a byte a second to every
    slow upload, nothing to the idle ones, and no reading of the stalled downloads."""

    def __init__(self, port: int, name: str, layer: str) -> None:
        self.port, self.name, self.layer = port, name, layer
        self.connections: list[Hostile] = []
        self.selector = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._play, daemon=True)

    def open(self, count: int) -> None:
        kinds = ["idle"] * (count * 5 // 10) + ["slow-upload"] * (count * 3 // 10)
        kinds += ["stalled-download"] * (count - len(kinds))
        for index, kind in enumerate(kinds):
            sock = socket.socket()
            if kind == "stalled-download":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a closed window soon
                # A server that gives up on a connection whose window stays shut drops it without
                # a word (tcp(7), TCP_USER_TIMEOUT); the client's keep-alive probe then meets a
                # reset. While the server holds on, its window probes keep the client from probing.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            sock.connect(("127.0.0.1", self.port))
            if kind == "slow-upload":
                digest = "sha256:" + hashlib.sha256(str(index).encode()).hexdigest()
                sock.sendall(request_head("POST", f"/v2/{self.name}/blobs/uploads/?digest={digest}",
                                          "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n"))
            elif kind == "stalled-download":
                sock.sendall(request_head("GET", f"/v2/{self.name}/blobs/{self.layer}"))
            sock.setblocking(False)
            hostile = Hostile(kind, sock, reading=kind != "stalled-download")
            self.connections.append(hostile)
            if hostile.reading:
                self.selector.register(sock, selectors.EVENT_READ, hostile)
        self.thread.start()

    def _play(self) -> None:
        next_byte = time.monotonic()
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                self._read(key.data)
            if time.monotonic() >= next_byte:
                next_byte += 1.0
                for hostile in self.connections:
                    if hostile.kind == "slow-upload" and hostile.closed_at is None:
                        try:
                            hostile.sock.send(b"x")
                        except OSError:  # reset, or the server stopped reading: it answers or closes
                            pass

    def _read(self, hostile: Hostile) -> None:
        try:
            data = hostile.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            hostile.received += data
            return
        hostile.closed_at = time.monotonic()
        self.selector.unregister(hostile.sock)

    def dropped_downloads(self) -> int:
        """How many stalled downloads the server has dropped (their socket is no longer
        established: the server reset it), without reading them: reading would let them go on."""
        return sum(1 for h in self.connections if h.kind == "stalled-download" and not is_established(h.sock))

    def finish_downloads(self) -> None:
        """Read what the stalled downloads have left, to the end the server gave them."""
        for hostile in self.connections:
            if hostile.kind == "stalled-download" and hostile.closed_at is None:
                hostile.reading = True
                self.selector.register(hostile.sock, selectors.EVENT_READ, hostile)

    def open_count(self) -> int:
        return sum(1 for h in self.connections if h.closed_at is None)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        for hostile in self.connections:
            hostile.sock.close()
        self.selector.close()


def pull_for(url: str, name: str, reference: str, seconds: float) -> tuple[int, int]:
    """Pull the image again and again from ``PULLERS`` clients for ``seconds``; (pulls, bytes).

    Every pull is checked: the manifest by its digest, each blob by streaming it through sha256.
    """
    until = time.monotonic() + seconds

    def one_client(_: int) -> tuple[int, int]:
        pulls = count = 0
        with httpx.Client(base_url=url, auth=ADMIN_AUTH, timeout=httpx.Timeout(60.0)) as client:
            while time.monotonic() < until:
                found = ocihttp.get_manifest(client, name, reference)
                assert found is not None, f"{name}:{reference} is gone"
                manifest = httpx.Response(200, content=found[1]).json()
                for blob in [manifest["config"], *manifest["layers"]]:
                    digest, size = ocihttp.stream_blob_digest(client, name, blob["digest"])
                    assert (digest, size) == (blob["digest"], blob["size"]), f"blob {blob['digest']} corrupted"
                    count += size
                pulls += 1
        return pulls, count

    with ThreadPoolExecutor(PULLERS) as pool:
        results = list(pool.map(one_client, range(PULLERS)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {**TIMEOUTS_ENV, "DOCKYARD_REGISTRY__MAX_UPLOADS_IN_FLIGHT": str(HOSTILE)}
    with ServerProcess(tmp_path / "data", workers=2, env=env) as server:
        yield server


def test_normal_pulls_complete_while_a_thousand_hostile_connections_are_open(
        hostile_server: ServerProcess) -> None:
    """With 1,000 idle, slow-upload and stalled-download connections open against two workers,
    normal pulls all complete with the right bytes before the deadline; every idle connection is
    closed by the server, every slow upload answered 408 and closed, every stalled download dropped;
    and the supervisor raised its open files limit to the hard one."""
    server = hostile_server
    assert server.proc is not None
    soft, hard = open_files_limit(server.proc.pid)
    assert soft == hard or soft >= 1 << 20, f"the server's open files limit stayed at {soft} (hard {hard})"
    raise_open_files_limit(HOSTILE + 512)
    name = "hostile/app"
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=60.0) as client:
        layer = b"".join(ocihttp.iter_pattern(LAYER_BYTES, seed=11))
        _, manifest = ocihttp.push_image(client, name, "v1", "hostile", [layer])
    layer_digest = ocihttp.sha256_digest(layer)

    calm_pulls, calm_bytes = pull_for(server.url, name, "v1", PULL_SECONDS)

    crowd = HostileCrowd(server.port, name, layer_digest)
    try:
        crowd.open(HOSTILE)
        opened = time.monotonic()
        busy_pulls, busy_bytes = pull_for(server.url, name, "v1", PULL_SECONDS)
        stalled = HOSTILE - HOSTILE * 8 // 10
        while crowd.dropped_downloads() < stalled and time.monotonic() < opened + DEADLINE:
            time.sleep(0.2)
        crowd.finish_downloads()
        while crowd.open_count() and time.monotonic() < opened + DEADLINE:
            time.sleep(0.2)
        still_open = crowd.open_count()
        cut_after = time.monotonic() - opened
    finally:
        crowd.close()

    print(f"\nnormal pulls ({PULLERS} clients, {PULL_SECONDS:g} s each phase): "
          f"{calm_bytes / PULL_SECONDS / 1e6:.0f} MB/s ({calm_pulls} pulls) alone, "
          f"{busy_bytes / PULL_SECONDS / 1e6:.0f} MB/s ({busy_pulls} pulls) with {HOSTILE} hostile "
          f"connections open; all hostile connections cut within {cut_after:.1f} s")
    assert calm_pulls > 0
    assert busy_pulls > 0
    open_kinds = Counter(h.kind for h in crowd.connections if h.closed_at is None)
    assert still_open == 0, f"hostile connections still open after {DEADLINE:g} s: {dict(open_kinds)}"
    slow = [h for h in crowd.connections if h.kind == "slow-upload"]
    statuses = {h.status for h in slow}
    assert statuses == {408}, f"slow uploads were answered {statuses}, not only 408"
    assert all(b"BLOB_UPLOAD_INVALID" in h.received for h in slow)
    assert all(not h.received for h in crowd.connections if h.kind == "idle")
    downloads = [h for h in crowd.connections if h.kind == "stalled-download"]
    assert len(downloads) == stalled
    assert all(len(h.received) < LAYER_BYTES for h in downloads), "a stalled download was served whole"
    # The server is fine afterwards: a pull still works.
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=60.0) as client:
        assert ocihttp.get_manifest(client, name, "v1") == (ocihttp.sha256_digest(manifest), manifest)


def stalled_patch(port: int, location: str, offset: int, data: bytes, declared: int) -> bytes:
    """PATCH ``data`` (of a declared ``declared`` bytes) at ``offset``, then go silent; the answer."""
    path = location.removeprefix(f"http://127.0.0.1:{port}")
    head = request_head("PATCH", path, "Content-Type: application/octet-stream\r\n"
                        f"Content-Range: {offset}-{offset + declared - 1}\r\nContent-Length: {declared}\r\n")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + data)
        sock.settimeout(DEADLINE)
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
    return bytes(answer)


@pytest.fixture(scope="module", params=["rsgi", "asgi"])
def small_server(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One worker, the short timeouts, and room for two uploads at a time; on either of
    granian's interfaces (the limits sit in the app, below both)."""
    env = {**TIMEOUTS_ENV, "DOCKYARD_REGISTRY__MAX_UPLOADS_IN_FLIGHT": "2",
           "DOCKYARD_SERVER__INTERFACE": request.param}
    with ServerProcess(tmp_path_factory.mktemp("hostile") / "data", workers=1, env=env) as server:
        yield server


def test_an_upload_cut_for_stalling_keeps_its_session_and_resumes(small_server: ServerProcess) -> None:
    """A chunk whose body stops halfway is answered 408 and its connection closed; the session
    still exists with a consistent size (the whole blocks written before the stall), and the
    client resumes from that size and completes the blob, which then pulls with the right digest."""
    blob = b"".join(ocihttp.iter_pattern(5 * 1024 * 1024 + 12345, seed=5))
    name = "hostile/resume"
    server = small_server
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=60.0) as client:
        location = ocihttp.start_upload(client, name)
        answer = stalled_patch(server.port, location, 0, blob[:5 * 1024 * 1024], len(blob))
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"server.body_read_timeout" in answer
        status = ocihttp.expect(client.get(location), 204)
        kept = int(status.headers["Range"].split("-")[1]) + 1
        assert 0 < kept <= 5 * 1024 * 1024, f"the session says it holds {kept} bytes"
        location = ocihttp.patch_chunk(client, location, kept, blob[kept:])
        digest = ocihttp.finish_upload(client, location, ocihttp.sha256_digest(blob))
        assert ocihttp.get_blob(client, name, digest) == blob


def test_a_slow_but_steady_upload_is_not_cut(small_server: ServerProcess) -> None:
    """An upload whose body arrives in pieces, each within the body-read timeout of the last but
    all together taking longer than it, completes with 201 and the right bytes."""
    blob = b"".join(ocihttp.iter_pattern(64 * 1024, seed=7))
    pieces = ocihttp.split(blob, len(blob) // 4)
    gap = BODY_READ_TIMEOUT * 0.4  # 16 KiB every 1.2 s: 4.8 s in all, more than the timeout

    def trickle() -> Iterator[bytes]:
        for piece in pieces:
            yield piece
            time.sleep(gap)  # the pace of a slow client, not a wait for anything

    with httpx.Client(base_url=small_server.url, auth=ADMIN_AUTH, timeout=60.0) as client:
        location = ocihttp.start_upload(client, "hostile/steady")
        digest = ocihttp.finish_upload(client, location, ocihttp.sha256_digest(blob), trickle(), len(blob))
        assert ocihttp.get_blob(client, "hostile/steady", digest) == blob


def test_uploads_past_the_limit_are_refused_with_retry_after(small_server: ServerProcess) -> None:
    """With ``registry.max_uploads_in_flight`` = 2 on one worker, two uploads that are still
    sending hold both slots; a third is answered 503 UNAVAILABLE with Retry-After at once, and
    once the two stop sending and are cut (408), an upload is accepted again."""
    server = small_server
    name = "hostile/limit"
    sending = threading.Event()
    sending.set()

    def keep_sending(sock: socket.socket) -> None:
        while sending.is_set():
            sock.sendall(b"x" * 4096)  # 16 KiB/s: well above server.body_min_rate
            time.sleep(0.25)  # the pace of a client, not a wait for anything

    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=60.0) as client, \
            ThreadPoolExecutor(2) as pool:
        holders = []
        for _ in range(2):
            location = ocihttp.start_upload(client, name)
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(request_head("PATCH", location.removeprefix(server.url), "Content-Length: 100000000\r\n"))
            holders.append((sock, pool.submit(keep_sending, sock)))
        # Wait until both are inside the server (its metrics count uploads in flight).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "dockyard_uploads_in_flight 2.0" not in client.get("/metrics").text:
            time.sleep(0.05)
        refused = client.post(f"/v2/{name}/blobs/uploads/")
        sending.clear()
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert "registry.max_uploads_in_flight" in refused.json()["errors"][0]["message"]
        for sock, sender in holders:
            sender.result(timeout=DEADLINE)
            sock.settimeout(DEADLINE)
            assert sock.recv(12) == b"HTTP/1.1 408"
            sock.close()
        ocihttp.push_blob_monolithic(client, name, b"accepted again")


def worker_peak_rss(server: ServerProcess) -> int:
    """The peak resident memory (VmHWM, bytes) of the server's one worker."""
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    assert len(children) == 1, f"expected one worker, found {children}"
    for line in Path(f"/proc/{children[0]}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One worker whose blobs live in its memory: every download is streamed from Python."""
    env = {**TIMEOUTS_ENV, "DOCKYARD_STORAGE__DRIVER": "memory"}
    with ServerProcess(tmp_path_factory.mktemp("hostile-memory") / "data", workers=1, env=env) as server:
        yield server


def test_stalled_streamed_downloads_do_not_fill_the_worker_memory(memory_server: ServerProcess) -> None:
    """Three clients that download a 96 MiB blob streamed from Python (as from an object store)
    and stop reading are dropped after the send timeout, and the worker's peak memory grows by far
    less than the 288 MiB they asked for: the stream waits for the client instead of queueing in
    granian (which would take it all). A client that reads gets the blob whole and right."""
    server = memory_server
    size = 96 * 1024 * 1024
    name = "hostile/streamed"
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=60.0) as client:
        digest = ocihttp.push_blob_monolithic(client, name, b"".join(ocihttp.iter_pattern(size, seed=3)))
        assert ocihttp.stream_blob_digest(client, name, digest) == (digest, size)
        before = worker_peak_rss(server)
        stalled = []
        for _ in range(3):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # see HostileCrowd.open
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(request_head("GET", f"/v2/{name}/blobs/{digest}"))
            stalled.append(sock)
        deadline = time.monotonic() + DEADLINE
        while any(is_established(sock) for sock in stalled) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(is_established(sock) for sock in stalled), "a stalled download was not dropped"
        for sock in stalled:
            sock.close()
        grown = worker_peak_rss(server) - before
        assert grown < 144 * 1024 * 1024, f"the worker's peak memory grew by {grown / 2**20:.0f} MiB"
        assert ocihttp.stream_blob_digest(client, name, digest) == (digest, size)
