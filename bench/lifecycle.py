"""The "dockyard lifecycle" table (issue 12, "Performance"): what GC and pull recording cost serving.

**Manifest GET and pushes while GC runs.** Once per benchmark, a dockyard (SQLite + filesystem,
``gc.grace_period=0s``, ``gc.interval=24h``) is given ``BENCH_GC_CANDIDATES`` (10,000) small blobs
that nothing references, each a GC candidate from the moment its upload finished, and the small
image; it is stopped and its data directory kept twice: as it is (the stopped server still holds
the scheduler's ``gc`` lease, for twice gc.interval, so nothing collects) and with that lease
released, so a server started on it runs the collector at once (a job's first run is at start-up),
inside one of its workers, over every candidate. Each repetition starts dockyard (a worker per core,
as ``make bench`` runs it) on a fresh copy of each, in alternating order, warms it for a second,
then measures for ``BENCH_SECONDS`` each:

* manifest GET with wrk over ``BENCH_CONNECTIONS`` connections, as the main table does;
* then, alone, pushes one after the other: a 4 KiB blob (POST, then the PUT with ``?digest=`` that
  completes the upload) and a manifest over it (PUT under a tag), timing each PUT.

The table shows both GET rates and their ratio (the issue asks >= 0.90), the longest and the
99th-percentile PUT of each kind with and without GC (the issue: a push is never blocked for longer
than one short transaction), and how much of the pass the GC run covered (its ``job_runs`` row).

**Manifest GET with pull recording.** Since issue 12 each batch of pull events (written once a
second) also moves ``manifests.last_pulled_at``. There is no setting that turns recording off, so
this compares the code as it is with the code before issue 12 (commit ``BENCH_BASELINE_COMMIT``,
0e4cfe7, exported with ``git archive`` and run from its own ``src`` in this virtualenv), each
started fresh and loaded as the main table's manifest GET, alternating which goes first. The issue
asks for the rate to stay within 5% (a ratio >= 0.95).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.client import ProtocolError, RegistryClient, fetch_token
from bench.loadgen import get_load
from bench.registries import Dockyard, RegistryError
from bench.report import format_number, markdown_table
from bench.settings import Settings
from bench.suite import Log, Metric
from bench.testdata import MANIFEST_ACCEPT, OCI_MANIFEST, SmallImage, digest_of

REPO = Path(__file__).resolve().parent.parent
IMAGE_REPO, IMAGE_TAG = "bench/image", "bench"
GARBAGE_REPO, PROBE_REPO = "bench/garbage", "bench/probe"
SCOPES = tuple(f"repository:{repo}:pull,push" for repo in (IMAGE_REPO, GARBAGE_REPO, PROBE_REPO))
GC_ENV = {"DOCKYARD_GC__GRACE_PERIOD": "0s", "DOCKYARD_GC__INTERVAL": "24h"}
SEED_THREADS = 16
GC_WAIT_SECONDS = 1800.0
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

GC_METRICS = (
    Metric("gc_get_rps", "manifest GET while GC runs (req/s)", 0),
    Metric("idle_get_rps", "manifest GET, same data, no GC (req/s)", 0),
    Metric("gc_get_ratio", "ratio with/without GC (issue: >= 0.90)", 2),
    Metric("gc_blob_put_max", "upload completion PUT while GC runs, longest (ms)", 1, lower_is_better=True),
    Metric("idle_blob_put_max", "upload completion PUT without GC, longest (ms)", 1, lower_is_better=True),
    Metric("gc_blob_put_p99", "upload completion PUT while GC runs, p99 (ms)", 1, lower_is_better=True),
    Metric("idle_blob_put_p99", "upload completion PUT without GC, p99 (ms)", 1, lower_is_better=True),
    Metric("gc_manifest_put_max", "manifest PUT while GC runs, longest (ms)", 1, lower_is_better=True),
    Metric("idle_manifest_put_max", "manifest PUT without GC, longest (ms)", 1, lower_is_better=True),
    Metric("gc_pushes", "pushes (blob + manifest) timed while GC runs", 0),
    Metric("gc_removed", "unreferenced blob links the run removed by the end of the pass", 0),
    Metric("gc_coverage", "share of the pass the GC run covered", 2),
)
RECORDING_METRICS = (
    Metric("rec_get_rps", "manifest GET with pull recording, this code (req/s)", 0),
    Metric("base_get_rps", "manifest GET before issue 12, no recording (req/s)", 0),
    Metric("rec_get_ratio", "ratio recording/before (issue: >= 0.95)", 2),
)


@dataclass
class LifecycleResults:
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.samples.setdefault(key, []).append(value)

    def median(self, key: str) -> float | None:
        values = [v for v in self.samples.get(key, []) if not math.isnan(v)]
        return statistics.median(values) if values else None


class ConfiguredDockyard(Dockyard):
    """dockyard with extra environment, optionally from another source tree (``source/src``)."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, source: Path | None = None,
                 name: str = "dockyard") -> None:
        super().__init__(workdir)
        self.name = name
        self.extra_env = env or {}
        self.source = source

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), **self.extra_env}
        if self.source is not None:  # ahead of the editable install's path entry
            env["PYTHONPATH"] = str(self.source / "src")
        return env

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"


def _client(registry: Dockyard) -> RegistryClient:
    assert registry.credentials is not None
    return RegistryClient(registry.url, fetch_token(registry.url, registry.credentials, SCOPES))


# -- seeding ---------------------------------------------------------------------------------------

def _seed(registry: ConfiguredDockyard, image: SmallImage, count: int, log: Log) -> None:
    """The image, and ``count`` distinct 1 KiB blobs no manifest references, each in one POST."""
    client = _client(registry)
    client.push_image(IMAGE_REPO, IMAGE_TAG, image)
    client.check_manifest(IMAGE_REPO, IMAGE_TAG, image)
    client.push_image(PROBE_REPO, "base", image)  # tagged: the config the probe's manifests use stays
    started = time.monotonic()

    def push(index: int) -> None:
        data = index.to_bytes(8, "big") * 128
        client.expect(201, "POST", f"/v2/{GARBAGE_REPO}/blobs/uploads/?digest={digest_of(data)}", data,
                      {"Content-Type": "application/octet-stream"})

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(push, range(count)))
    log(f"seeded {count} unreferenced blobs in {time.monotonic() - started:.0f}s")


def _release_gc_lease(data_dir: Path) -> None:
    """The seeding server, now stopped, held the scheduler's `gc` lease (for twice gc.interval,
    48 h): release it, as its expiry would, so a server started on this copy runs the collector at
    once. A copy that keeps it never collects: the same data without GC."""
    conn = sqlite3.connect(data_dir / "dockyard.db")
    try:
        conn.execute("DELETE FROM job_leases WHERE name = 'gc'")
        conn.commit()
    finally:
        conn.close()


# -- one GC repetition: the same data with and without the collector running --------------------------

@dataclass
class PushTimes:
    blob_ms: list[float] = field(default_factory=list)
    manifest_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _push_probe(client: RegistryClient, image: SmallImage, seconds: float) -> PushTimes:
    """Push a fresh 4 KiB blob and a manifest over it, one after the other, for ``seconds``,
    timing the PUT that completes the upload and the manifest PUT."""
    config, times = image.blobs[0], PushTimes()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        layer = os.urandom(4096)
        try:
            location = client.start_upload(PROBE_REPO)
            started = time.perf_counter()
            client.finish_upload(location, digest_of(layer), layer)
            times.blob_ms.append(1000 * (time.perf_counter() - started))
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config),
                           "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}],
                "annotations": {"n": str(n)}}).encode()
            started = time.perf_counter()
            client.expect(201, "PUT", f"/v2/{PROBE_REPO}/manifests/probe", manifest, {"Content-Type": OCI_MANIFEST})
            times.manifest_ms.append(1000 * (time.perf_counter() - started))
        except ProtocolError as exc:
            times.errors.append(str(exc)[:300])
    return times


def _utc(text: str | None) -> float | None:
    if text is None:
        return None
    return datetime.fromisoformat(str(text)).replace(tzinfo=UTC).timestamp()


def _database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / 'dockyard.db'}?mode=ro", uri=True, timeout=30)


def _last_run_id(data_dir: Path) -> int:
    conn = _database(data_dir)
    try:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM job_runs").fetchone()[0])
    finally:
        conn.close()


def _gc_run(data_dir: Path, after_id: int) -> tuple[float | None, float | None]:
    """(started, ended) of the real gc run this server started with (runs up to ``after_id`` are
    the seeding server's); (None, None) if there is none."""
    conn = _database(data_dir)
    try:
        row = conn.execute("SELECT started_at, ended_at FROM job_runs WHERE job = 'gc' AND dry_run = 0 "
                           "AND id > ? ORDER BY id LIMIT 1", (after_id,)).fetchone()
    finally:
        conn.close()
    return (None, None) if row is None else (_utc(row[0]), _utc(row[1]))


def _garbage_left(data_dir: Path) -> int:
    conn = _database(data_dir)
    try:
        return int(conn.execute("SELECT count(*) FROM repository_blobs rb JOIN repositories r "
                                "ON r.id = rb.repository_id WHERE r.name = ?", (GARBAGE_REPO,)).fetchone()[0])
    finally:
        conn.close()


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Pass:
    get_rps: float
    pushes: PushTimes
    window: tuple[float, float]  # when the GET load and the pushes ran (epoch seconds)
    garbage_left: int
    gc_run: tuple[float | None, float | None]  # (started, ended) of the server's gc run, if any


def _serve_copy(snapshot: Path, workdir: Path, image: SmallImage, settings: Settings, log: Log) -> Pass:
    after_id = _last_run_id(snapshot)
    """Start dockyard on a copy of ``snapshot``, warm it for a second, then GET load and pushes."""
    shutil.copytree(snapshot, workdir / "data")
    try:
        with ConfiguredDockyard(workdir, GC_ENV) as registry:
            assert isinstance(registry, ConfiguredDockyard)
            client = _client(registry)
            url = client.resolve(f"/v2/{IMAGE_REPO}/manifests/{IMAGE_TAG}")
            get_load(url, MANIFEST_ACCEPT, settings.connections, 1, client.auth_headers)  # warm-up
            started = time.time()
            load = get_load(url, MANIFEST_ACCEPT, settings.connections, settings.seconds, client.auth_headers)
            pushes = _push_probe(client, image, settings.seconds)
            window = (started, time.time())
            left = _garbage_left(registry.data_dir)
            gc_started, gc_ended = _gc_run(registry.data_dir, after_id)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if pushes.errors:
        raise ProtocolError(f"the push probe failed {len(pushes.errors)} time(s): {pushes.errors[:3]}")
    log(f"GET {load.requests_per_second:.0f} req/s; {len(pushes.blob_ms)} pushes, longest upload PUT "
        f"{max(pushes.blob_ms):.1f} ms, manifest PUT {max(pushes.manifest_ms):.1f} ms; "
        f"{left} unreferenced links left; " + ("no gc run" if gc_started is None else
                                               "the gc run ended" if gc_ended else "the gc run still going"))
    return Pass(load.requests_per_second, pushes, window, left, (gc_started, gc_ended))


def _gc_repetition(rep: int, snapshots: dict[str, Path], root: Path, image: SmallImage, settings: Settings,
                   log: Log) -> dict[str, float]:
    passes: dict[str, Pass] = {}
    order = ["idle", "gc"] if rep % 2 else ["gc", "idle"]
    for kind in order:
        pass_log = lambda line, kind=kind: log(f"{'with GC' if kind == 'gc' else 'without GC'}: {line}")  # noqa: E731
        passes[kind] = _serve_copy(snapshots[kind], root / f"gc{rep}-{kind}", image, settings, pass_log)
    gc, idle = passes["gc"], passes["idle"]
    gc_started, gc_ended = gc.gc_run
    if gc_started is None:
        raise RegistryError("the server started on the copy with the lease released ran no gc job")
    if idle.gc_run[0] is not None:
        raise RegistryError("the server started on the copy that keeps the gc lease ran the collector")
    end = gc_ended if gc_ended is not None else gc.window[1]
    covered = max(0.0, min(end, gc.window[1]) - max(gc_started, gc.window[0])) / (gc.window[1] - gc.window[0])
    return {
        "gc_get_rps": gc.get_rps, "idle_get_rps": idle.get_rps, "gc_get_ratio": gc.get_rps / idle.get_rps,
        "gc_blob_put_max": max(gc.pushes.blob_ms), "idle_blob_put_max": max(idle.pushes.blob_ms),
        "gc_blob_put_p99": _percentile(gc.pushes.blob_ms, 0.99),
        "idle_blob_put_p99": _percentile(idle.pushes.blob_ms, 0.99),
        "gc_manifest_put_max": max(gc.pushes.manifest_ms), "idle_manifest_put_max": max(idle.pushes.manifest_ms),
        "gc_pushes": len(gc.pushes.manifest_ms), "gc_removed": idle.garbage_left - gc.garbage_left,
        "gc_coverage": covered,
    }


# -- pull recording against the code before issue 12 -------------------------------------------------

@contextmanager
def exported_source(commit: str, root: Path) -> Iterator[Path]:
    """``src/`` of ``commit`` (git archive), in ``root/<commit>``."""
    target = root / f"source-{commit}"
    done = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
                          capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RegistryError(f"git archive {commit} failed: {done.stderr.decode(errors='replace')[:300]}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(target, filter="data")
    try:
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _get_pass(registry: ConfiguredDockyard, image: SmallImage, settings: Settings) -> tuple[float, bool]:
    """(manifest GET req/s, whether a last_pulled_at was recorded) on a fresh registry."""
    client = _client(registry)
    client.push_image(IMAGE_REPO, IMAGE_TAG, image)
    client.check_manifest(IMAGE_REPO, IMAGE_TAG, image)
    url = client.resolve(f"/v2/{IMAGE_REPO}/manifests/{IMAGE_TAG}")
    load = get_load(url, MANIFEST_ACCEPT, settings.connections, settings.seconds, client.auth_headers)
    time.sleep(1.5)  # one flush of the pull batch (every second) after the load
    conn = sqlite3.connect(f"file:{registry.data_dir / 'dockyard.db'}?mode=ro", uri=True, timeout=30)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(manifests)")}
        recorded = "last_pulled_at" in columns and conn.execute(
            "SELECT count(*) FROM manifests WHERE last_pulled_at IS NOT NULL").fetchone()[0] > 0
    finally:
        conn.close()
    return load.requests_per_second, bool(recorded)


def _recording_repetition(rep: int, source: Path, root: Path, image: SmallImage, settings: Settings,
                          log: Log) -> dict[str, float]:
    rates: dict[str, float] = {}
    order = [("rec", None), ("base", source)]
    for kind, tree in order if rep % 2 else reversed(order):
        workdir = root / f"rec{rep}-{kind}"
        with ConfiguredDockyard(workdir, source=tree, name=f"dockyard-{kind}") as registry:
            assert isinstance(registry, ConfiguredDockyard)
            rates[kind], recorded = _get_pass(registry, image, settings)
        shutil.rmtree(workdir, ignore_errors=True)
        if recorded != (kind == "rec"):
            raise RegistryError(f"{kind}: last_pulled_at recorded={recorded}, which the code under test "
                                "should not do (is the right source tree running?)")
        log(f"{'this code, recording' if kind == 'rec' else 'before issue 12'}: GET {rates[kind]:.0f} req/s")
    return {"rec_get_rps": rates["rec"], "base_get_rps": rates["base"],
            "rec_get_ratio": rates["rec"] / rates["base"]}


# -- the whole table ------------------------------------------------------------------------------

def run_lifecycle(settings: Settings, image: SmallImage, log: Log) -> LifecycleResults:
    results = LifecycleResults()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-lifecycle-") as tmp:
        root = Path(tmp)
        seeding = ConfiguredDockyard(root / "seed", GC_ENV)
        with seeding:
            _seed(seeding, image, settings.gc_candidates, lambda line: log(f"[lifecycle] {line}"))
        snapshots = {"idle": seeding.data_dir, "gc": root / "seed-released"}
        shutil.copytree(seeding.data_dir, snapshots["gc"])
        _release_gc_lease(snapshots["gc"])
        with exported_source(settings.baseline_commit, root) as source:
            for rep in range(1, settings.reps + 1):
                rep_log = lambda line, rep=rep: log(f"[lifecycle {rep}/{settings.reps}] {line}")  # noqa: E731
                values = _gc_repetition(rep, snapshots, root, image, settings, rep_log)
                values.update(_recording_repetition(rep, source, root, image, settings, rep_log))
                results.record(values)
    return results


def lifecycle_table(results: LifecycleResults) -> str:
    rows = [[metric.label, format_number(results.median(metric.key), metric.decimals),
             ", ".join(format_number(v, metric.decimals) for v in results.samples.get(metric.key, []))]
            for metric in GC_METRICS + RECORDING_METRICS]
    return markdown_table(["metric", "median", "every repetition"], rows)
