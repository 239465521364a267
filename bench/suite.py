"""The metrics, and one pass of all of them against one running registry.

A pass pushes the big blob twice (monolithic into ``bench/mono``, chunked into ``bench/chunked``),
pulls it with one stream and with several, pushes a small image tagged ``bench`` and loads its
manifest with GET (wrk) and HEAD (ab), while sampling the server's process tree for peak RSS.

Pull speed depends on where the blob's bytes are: distribution writes through the page cache, so
right after a push its blob is cached; dockyard writes with O_DIRECT, so its blob is on disk only.
A pull right after the push therefore compares a cached read with a disk read. To compare like
with like the pass also pulls with the page cache dropped (``sync`` + ``drop_caches``, both
registries from disk; needs root) and warm (both from the page cache), and reports all three.

A registry with ``credentials`` (dockyard, which authorizes every request) is measured the way a
real client uses it: one bearer token per pass from its token endpoint, for the pass's repositories,
sent as ``Authorization: Bearer`` on every request (curl, wrk and ab included). distribution runs
without authentication.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from bench import transfers
from bench.client import RegistryClient, fetch_token
from bench.loadgen import LoadResult, get_load, head_load
from bench.proctree import PeakMemory
from bench.registries import Registry
from bench.settings import Settings
from bench.testdata import MANIFEST_ACCEPT, BigBlob, SmallImage, warm

IMAGE_REPO, IMAGE_TAG = "bench/image", "bench"
MONO_REPO, CHUNKED_REPO = "bench/mono", "bench/chunked"
# What one pass does: push and pull in these three repositories.
SCOPES = tuple(f"repository:{repo}:pull,push" for repo in (MONO_REPO, CHUNKED_REPO, IMAGE_REPO))


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of the result table."""

    key: str
    label: str
    decimals: int = 1
    lower_is_better: bool = False


def _size(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def metrics_for(settings: Settings) -> tuple[Metric, ...]:
    """The table's rows, labelled with this run's sizes and counts."""
    blob, conns = _size(settings.blob_mib), settings.connections
    return (
        Metric("push_mono", f"push {blob} blob, monolithic (MB/s)"),
        Metric("push_chunked", f"push {blob} blob, {_size(settings.chunk_mib)} chunks (MB/s)"),
        Metric("pull_after_push", f"pull {blob} blob right after its push, 1 stream (MB/s)"),
        Metric("pull_cold", f"pull {blob} blob, page cache dropped, 1 stream (MB/s)"),
        Metric("pull_one", f"pull {blob} blob, warm, 1 stream (MB/s)"),
        Metric("pull_many", f"pull {blob} blob, warm, {settings.streams} streams (aggregate MB/s)"),
        Metric("get_rps", f"manifest GET, {conns} connections (req/s)", decimals=0),
        Metric("get_p99", "manifest GET p99 latency (ms, lower is better)", 2, lower_is_better=True),
        Metric("head_rps", f"manifest HEAD, {conns} connections (req/s)", decimals=0),
        Metric("head_p99", "manifest HEAD p99 latency (ms, lower is better)", 0, lower_is_better=True),
        Metric("peak_rss", "peak RSS, whole process tree (MB, lower is better)", 0, lower_is_better=True),
        Metric("peak_pss", "peak PSS, whole process tree, sampled (MB, lower is better)", 0, lower_is_better=True),
    )


Log = Callable[[str], None]


def _load_line(kind: str, result: LoadResult) -> str:
    line = f"manifest {kind}: {result.requests_per_second:.0f} req/s, p99 {result.p99_ms:.2f} ms"
    if result.socket_errors:
        line += f" (WARNING: {result.socket_errors} socket errors / failed requests)"
    return line


def drop_page_cache() -> bool:
    """Write back and drop the kernel's page cache; False when not permitted (not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
    except OSError:
        return False
    return True


def _blob_tests(client: RegistryClient, blob: BigBlob, streams: int, log: Log, follow: bool = False
                ) -> dict[str, float]:
    values = {
        "push_mono": transfers.push_monolithic(client, MONO_REPO, blob),
        "push_chunked": transfers.push_chunked(client, CHUNKED_REPO, blob),
    }
    log(f"push: monolithic {values['push_mono']:.0f} MB/s, chunked {values['push_chunked']:.0f} MB/s")
    def pull(count: int) -> float:
        return transfers.pull(client, MONO_REPO, blob, count, follow)

    values["pull_after_push"] = pull(1)
    values["pull_cold"] = pull(1) if drop_page_cache() else float("nan")
    # Warm reads vary a lot from one to the next on a shared machine: median of three, for both.
    values["pull_one"] = statistics.median(pull(1) for _ in range(3))
    values["pull_many"] = statistics.median(pull(streams) for _ in range(3))
    log(f"pull, 1 stream: right after push {values['pull_after_push']:.0f} MB/s, "
        f"cache dropped {values['pull_cold']:.0f} MB/s, warm {values['pull_one']:.0f} MB/s; "
        f"{streams} streams warm {values['pull_many']:.0f} MB/s")
    return values


def _manifest_tests(client: RegistryClient, image: SmallImage, settings: Settings, log: Log
                    ) -> dict[str, float]:
    client.push_image(IMAGE_REPO, IMAGE_TAG, image)
    client.check_manifest(IMAGE_REPO, IMAGE_TAG, image)
    url = client.resolve(f"/v2/{IMAGE_REPO}/manifests/{IMAGE_TAG}")
    get = get_load(url, MANIFEST_ACCEPT, settings.connections, settings.seconds, client.auth_headers)
    log(_load_line("GET", get))
    head = head_load(url, MANIFEST_ACCEPT, settings.connections, settings.seconds, client.auth_headers)
    log(_load_line("HEAD", head))
    return {"get_rps": get.requests_per_second, "get_p99": get.p99_ms,
            "head_rps": head.requests_per_second, "head_p99": head.p99_ms}


def run_pass(registry: Registry, blob: BigBlob, image: SmallImage, settings: Settings, log: Log
             ) -> dict[str, float]:
    """Measure every metric once against a started, empty ``registry``."""
    return run_pass_at(registry.url, [registry.pid], blob, image, settings, log,
                       credentials=registry.credentials)


def run_pass_at(url: str, root_pids: Sequence[int], blob: BigBlob, image: SmallImage, settings: Settings,
                log: Log, follow_redirects: bool = False, credentials: tuple[str, str] | None = None
                ) -> dict[str, float]:
    """Measure every metric once against the empty registry at ``url``.

    Peak RSS is summed over the process trees rooted at ``root_pids`` (several for a cluster);
    ``follow_redirects`` makes blob pulls follow a 3xx to wherever it points (curl ``-L``);
    ``credentials`` (user, password) get the pass its bearer token, None sends no credentials.
    """
    # The registry measured before this one may have left dirty pages (distribution writes through
    # the page cache); written back now, they would compete with this pass's disk writes.
    os.sync()
    warm(blob)
    token = fetch_token(url, credentials, SCOPES) if credentials is not None else None
    if credentials is not None:
        log(f"authenticating as {credentials[0]}: one bearer token from {url}/token for {' '.join(SCOPES)}")
    client = RegistryClient(url, token)
    with ExitStack() as stack:
        memories = [stack.enter_context(PeakMemory(pid)) for pid in root_pids]
        values = _blob_tests(client, blob, settings.streams, log, follow_redirects)
        values.update(_manifest_tests(client, image, settings, log))
    values["peak_rss"] = sum(memory.peak_mb for memory in memories)
    values["peak_pss"] = sum(memory.peak_pss_mb for memory in memories)
    peaks = [peak for memory in memories for peak in memory.peaks_mb]
    log(f"peak RSS {values['peak_rss']:.0f} MB, summed over {len(peaks)} processes "
        f"({' + '.join(f'{peak:.0f}' for peak in peaks)}); peak PSS {values['peak_pss']:.0f} MB")
    return values

