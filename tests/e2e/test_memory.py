"""Memory stays flat (DESIGN.md, invariant 6): a multi-GiB blob never sits in memory.

A blob of DOCKYARD_TEST_BIG_BLOB_MB MiB (default 2048) is generated on the fly, streamed up
(monolithic PUT, or 64 MiB PATCH chunks) and streamed back down while hashing, and the resident
memory of the server's whole process tree (main process and its one worker) is sampled every
50 ms. The peak must stay under DOCKYARD_TEST_RSS_LIMIT_MB (default 250), and must not grow more
than DOCKYARD_TEST_RSS_GROWTH_MB (default 100) over the idle tree: each Python process starts at
70-80 MiB, so the growth is what shows a blob being buffered.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import ocihttp
from tests.support.reference import RegistryProcess, registry_process
from tests.support.server import ADMIN_AUTH

MIB = 1 << 20
BIG_BLOB_BYTES = int(os.environ.get("DOCKYARD_TEST_BIG_BLOB_MB", "2048")) * MIB
RSS_LIMIT_BYTES = int(os.environ.get("DOCKYARD_TEST_RSS_LIMIT_MB", "250")) * MIB
RSS_GROWTH_BYTES = int(os.environ.get("DOCKYARD_TEST_RSS_GROWTH_MB", "100")) * MIB
CHUNK_BYTES = 64 * MIB
SAMPLE_SECONDS = 0.05
SEED = 20240611
TIMEOUT = httpx.Timeout(300.0, connect=10.0)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


# -- measuring --------------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, read from /proc (threads' children included)."""
    found = [pid]
    for current in found:
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                found.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants."""
    return sum(rss_bytes(p) for p in process_tree(pid))


@dataclass
class RssSampler:
    """Samples a process tree's RSS every SAMPLE_SECONDS in a background thread."""

    pid: int
    peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self.samples += 1
            if self._stop.wait(SAMPLE_SECONDS):  # the sampling period, not a wait for an event
                return


# -- the blob ---------------------------------------------------------------------------------

def chunk_streams(total: int, chunk_size: int) -> Iterator[tuple[int, int, Iterable[bytes]]]:
    """(offset, length, stream) for each `chunk_size` piece of the generated blob."""
    blocks = ocihttp.iter_pattern(total, SEED)
    for offset in range(0, total, chunk_size):
        length = min(chunk_size, total - offset)
        yield offset, length, itertools.islice(blocks, -(-length // MIB))


def patch_stream(client: httpx.Client, location: str, offset: int, length: int,
                 stream: Iterable[bytes]) -> str:
    """PATCH one streamed chunk; return the next upload location."""
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length),
               "Content-Range": f"{offset}-{offset + length - 1}"}
    response = ocihttp.expect(client.patch(location, content=stream, headers=headers), 202)
    return str(response.headers.get("Location", location))


def upload_monolithic(client: httpx.Client, name: str, digest: str) -> None:
    location = ocihttp.start_upload(client, name)
    ocihttp.finish_upload(client, location, digest, ocihttp.iter_pattern(BIG_BLOB_BYTES, SEED),
                          length=BIG_BLOB_BYTES)


def upload_chunked(client: httpx.Client, name: str, digest: str) -> None:
    location = ocihttp.start_upload(client, name)
    for offset, length, stream in chunk_streams(BIG_BLOB_BYTES, CHUNK_BYTES):
        location = patch_stream(client, location, offset, length, stream)
    ocihttp.finish_upload(client, location, digest)


# -- tests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digest() -> str:
    return ocihttp.pattern_digest(BIG_BLOB_BYTES, SEED)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RegistryProcess]:
    process = registry_process(tmp_path / "data", workers=1).start()
    yield process
    process.stop()


@pytest.mark.parametrize("upload", [upload_monolithic, upload_chunked], ids=["monolithic", "chunked"])
def test_big_blob_round_trip_keeps_memory_flat(
    server: RegistryProcess, digest: str, upload: Callable[[httpx.Client, str, str], None]
) -> None:
    assert server.proc is not None
    name = "memory/big"
    baseline = tree_rss_bytes(server.proc.pid)
    with RssSampler(server.proc.pid) as sampler, \
            httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        upload(client, name, digest)
        head = ocihttp.expect(client.head(f"/v2/{name}/blobs/{digest}"), 200)
        served_digest, served_bytes = ocihttp.stream_blob_digest(client, name, digest)

    print(f"{BIG_BLOB_BYTES // MIB} MiB: server tree RSS baseline {baseline / MIB:.0f} MiB, "
          f"peak {sampler.peak / MIB:.0f} MiB over {sampler.samples} samples")
    assert head.headers["Content-Length"] == str(BIG_BLOB_BYTES)
    assert (served_digest, served_bytes) == (digest, BIG_BLOB_BYTES)
    assert sampler.samples > 1
    peak = f"server process tree peaked at {sampler.peak / MIB:.0f} MiB RSS (idle: {baseline / MIB:.0f} MiB)"
    assert sampler.peak < RSS_LIMIT_BYTES, f"{peak}; limit {RSS_LIMIT_BYTES / MIB:.0f} MiB"
    assert sampler.peak - baseline < RSS_GROWTH_BYTES, f"{peak}; growth limit {RSS_GROWTH_BYTES / MIB:.0f} MiB"
