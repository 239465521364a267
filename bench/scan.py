"""The "supply chain" table (issue 13, "Performance"): what scanning costs, and that a push does not pay it.

**Inventory.** One gzip layer of a Debian bookworm ``debootstrap --variant=minbase`` root (88
packages, apt's caches left out as the official images do: about 128 MB of tar, 49 MB gzipped) is
written once to disk, then read as a stream through ``scan.layers.walk``: with the package reader
alone (walk + inventory; the issue asks < 3 s), and with the package and secret readers together
(the analysis a scan does; clamd left out: its time is clamd's).

**Matching.** ``BENCH_ADVISORIES`` (200,000) OSV advisories, one zip per ecosystem (Debian:12, PyPI,
npm) as osv.dev publishes them, are imported into a fresh SQLite database with ``VulnDbService``;
then ``VulnDbService.match`` runs on an inventory of 500 packages (the minbase's 88 and made-up
Debian, PyPI and npm ones), four advisories on each (two affecting it), the rest on packages
nobody installed. The issue asks < 1 s.

**Memory.** A subprocess (``python -m bench.scan walk FILE``) walks a streamed gzip layer with the
package and secret readers and reports its peak RSS (``ru_maxrss``): a 2 GiB layer
(``BENCH_BIG_LAYER_MB``) against a 100 MiB one. The layer is text (one file of 40%, 1 MiB files,
a dpkg status) that gzip packs fast. The issue: memory flat whatever the layer size.

**Push with scanning on.** Three registries, one at a time, each fresh: dockyard with
``scan.enabled=true``, the same with ``false``, and CNCF distribution. On each, first four images
over the minbase layer are pushed (so the scan workers are busy reading it, on the dockyard that
scans), then at once ``BENCH_SCAN_PUSHES`` (12) images (a 2 MiB layer with a dpkg status and an
AWS-style key, and a small layer) are pushed one after the other and timed. The ratios on/off and
on/distribution are what the issue asks about ("as fast as without").
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from debian.deb822 import Deb822

from bench.client import RegistryClient, fetch_token
from bench.registries import Distribution, Dockyard, Registry
from bench.report import format_number, markdown_table
from bench.scan_data import (
    MIB,
    LayerFile,
    busy_images,
    installed_packages,
    minbase_layer,
    minbase_root,
    push_images,
    synthetic_layer,
    write_advisories,
)
from bench.settings import Settings
from bench.suite import Log, Metric
from bench.testdata import SmallImage
from dockyard.config import build_config
from dockyard.scan import layers
from dockyard.scan.inventory import PackageVisitor
from dockyard.scan.report import Distro, Inventory, Package
from dockyard.scan.secrets import SecretVisitor
from dockyard.services.vulndb import VulnDbService
from dockyard.store import migrate
from dockyard.store.db import Database

PUSH_REPO, BUSY_REPO = "bench/pushes", "bench/busy"
SCOPES = tuple(f"repository:{repo}:pull,push" for repo in (PUSH_REPO, BUSY_REPO))
BUSY_IMAGES = 4
SMALL_LAYER_MIB = 100
SECRET_MAX_FILE_BYTES = 1024 * 1024  # the [scan] default

SCAN_NOTE = ("Supply chain: dockyard alone for inventory, matching and memory (in-process and one subprocess, "
             "SQLite); the push rows start each registry fresh (dockyard with its default workers) and "
             "alternate their order per repetition (bench/scan.py).")

SCAN_METRICS = (
    Metric("inventory_s", "inventory of the minbase layer: walk + packages (s; issue: < 3)", 2, True),
    Metric("analysis_s", "the same layer, packages + secrets (s)", 2, True),
    Metric("packages", "packages found in the minbase layer", 0),
    Metric("match_s", "match 500 packages against the advisories (s; issue: < 1)", 3, True),
    Metric("matched", "vulnerabilities found (2 per installed package expected)", 0),
    Metric("rss_small_mib", f"peak RSS walking a {SMALL_LAYER_MIB} MiB layer (MiB)", 0, True),
    Metric("rss_big_mib", "peak RSS walking the big layer (MiB)", 0, True),
    Metric("rss_ratio", "ratio big/small (issue: flat, ~1.0)", 2, True),
    Metric("walk_big_mbps", "walk speed over the big layer (MB/s of tar)", 0),
    Metric("push_on_s", "pushes, dockyard scan.enabled=true, workers busy (s)", 2, True),
    Metric("push_idle_s", "the same pushes, scan.enabled=true, no scan queued before (s)", 2, True),
    Metric("push_off_s", "the same pushes, dockyard scan.enabled=false (s)", 2, True),
    Metric("push_dist_s", "the same pushes, CNCF distribution (s)", 2, True),
    Metric("push_on_off", "ratio on (busy)/off (issue: ~1.0)", 2, True),
    Metric("push_idle_off", "ratio on (idle at start)/off", 2, True),
    Metric("push_on_dist", "ratio dockyard on/distribution", 2, True),
    Metric("push_on1_s", "the same pushes, scan.workers=1, workers busy (s)", 2, True),
    Metric("push_on1_off", "ratio on (busy, scan.workers=1)/off", 2, True),
    Metric("scans_during", "scans finished while the timed pushes ran (busy, default workers)", 0),
    Metric("scans_during_on1", "scans finished while the timed pushes ran (busy, scan.workers=1)", 0),
)


@dataclass
class ScanResults:
    samples: dict[str, list[float]] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)

    def record(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.samples.setdefault(key, []).append(value)

    def median(self, key: str) -> float | None:
        values = self.samples.get(key)
        return statistics.median(values) if values else None


def scan_table(results: ScanResults) -> str:
    rows = [[metric.label, format_number(results.median(metric.key), metric.decimals),
             ", ".join(format_number(v, metric.decimals) for v in results.samples.get(metric.key, []))]
            for metric in SCAN_METRICS if metric.key in results.samples]
    return markdown_table(["metric", "median", "every repetition"], rows)


# -- walking a layer file with the scanners ---------------------------------------------------------

def walk_file(path: Path, secrets: bool) -> tuple[float, int]:
    """(seconds, packages found) for one streamed walk of the layer at ``path``."""
    started = time.perf_counter()
    packages = PackageVisitor()
    visitors: list[layers.Visitor] = [packages]
    secret_visitor = SecretVisitor(SECRET_MAX_FILE_BYTES) if secrets else None
    if secret_visitor is not None:
        visitors.append(secret_visitor)
    layer = layers.Layer("sha256:" + "0" * 64, "application/vnd.oci.image.layer.v1.tar+gzip",
                         lambda: path.open("rb"))
    history = layers.walk([layer], visitors)
    inventory = packages.inventory(history)
    if secret_visitor is not None:
        secret_visitor.findings(history)
    return time.perf_counter() - started, len(inventory.packages)


def _inventory(layer: LayerFile, reps: int, log: Log) -> dict[str, float]:
    walk_file(layer.path, secrets=False)  # the layer into the page cache, the modules imported
    inventory = [walk_file(layer.path, secrets=False) for _ in range(reps)]
    analysis = [walk_file(layer.path, secrets=True) for _ in range(reps)]
    values = {"inventory_s": statistics.median(s for s, _ in inventory),
              "analysis_s": statistics.median(s for s, _ in analysis),
              "packages": float(inventory[0][1])}
    log(f"inventory {values['inventory_s']:.2f} s ({int(values['packages'])} packages), "
        f"with secrets {values['analysis_s']:.2f} s")
    return values


# -- matching ---------------------------------------------------------------------------------------

def _real_packages(root: Path) -> list[tuple[str, str]]:
    with (root / "var/lib/dpkg/status").open() as handle:
        return [(p["Package"], p["Version"]) for p in Deb822.iter_paragraphs(handle)]


async def _match(root: Path, workdir: Path, advisories: int, reps: int, log: Log) -> dict[str, float]:
    installed = installed_packages(_real_packages(root))
    started = time.perf_counter()
    affecting = write_advisories(workdir / "osv", installed, advisories)
    log(f"wrote {advisories:,} advisories in {time.perf_counter() - started:.0f} s")
    config = build_config({"data_dir": str(workdir / "data")})
    (workdir / "data").mkdir()
    db = Database(config.database_url, config.database)
    try:
        await migrate.upgrade(db)
        service = VulnDbService(db, config.scan.vulndb)
        started = time.perf_counter()
        await service.import_path(workdir / "osv")
        imported = time.perf_counter() - started
        log(f"imported them in {imported:.0f} s")
        inventory = Inventory(Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)", "bookworm"), tuple(
            Package(p.name, p.version, p.purl_type, f"pkg:{p.purl_type}/{p.name}@{p.version}", "sha256:" + "0" * 64,
                    "bench") for p in installed))
        await service.match(inventory)  # warm: the first query reads the tables into the page cache
        times, found = [], 0
        for _ in range(reps):
            started = time.perf_counter()
            _, vulnerabilities = await service.match(inventory)
            times.append(time.perf_counter() - started)
            found = len(vulnerabilities)
    finally:
        await db.dispose()
    log(f"match {statistics.median(times):.3f} s: {found} vulnerabilities ({affecting} advisories affect "
        "the inventory, some on made-up Debian names the real packages' source names do not map)")
    return {"match_s": statistics.median(times), "matched": float(found), "import_s": imported}


# -- memory ---------------------------------------------------------------------------------------

def _peak_rss(path: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of a subprocess walking ``path`` (its VmHWM)."""
    done = subprocess.run([sys.executable, "-m", "bench.scan", "walk", str(path)], capture_output=True,
                          text=True, timeout=3600, check=False, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"the walking subprocess failed: {done.stderr[-1000:]}")
    answer = json.loads(done.stdout)
    return answer["max_rss_kib"] / 1024, answer["seconds"]


def _memory(root: Path, workdir: Path, big_mib: int, log: Log) -> dict[str, float]:
    status = (root / "var/lib/dpkg/status").read_bytes()
    small = synthetic_layer(workdir / "small.tar.gz", SMALL_LAYER_MIB * MIB, status)
    started = time.perf_counter()
    big = synthetic_layer(workdir / "big.tar.gz", big_mib * MIB, status)
    log(f"wrote a {big.tar_size / MIB:,.0f} MiB layer ({big.size / MIB:,.0f} MiB gzipped) in "
        f"{time.perf_counter() - started:.0f} s")
    rss_small, _ = _peak_rss(small.path)
    rss_big, seconds = _peak_rss(big.path)
    big.path.unlink()
    log(f"peak RSS: {rss_small:.0f} MiB over {small.tar_size / MIB:.0f} MiB, {rss_big:.0f} MiB over "
        f"{big.tar_size / MIB:,.0f} MiB ({seconds:.0f} s)")
    return {"rss_small_mib": rss_small, "rss_big_mib": rss_big, "rss_ratio": rss_big / rss_small,
            "walk_big_mbps": big.tar_size / 1e6 / seconds}


# -- pushes with and without scanning ----------------------------------------------------------------

class ScanningDockyard(Dockyard):
    """dockyard with scanning on or off; ``workers`` sets scan.workers (None: its default, 2)."""

    def __init__(self, workdir: Path, enabled: bool, workers: int | None = None) -> None:
        super().__init__(workdir)
        self.name = f"dockyard-scan-{'on' if enabled else 'off'}"
        self.enabled = enabled
        self.workers = workers

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), "DOCKYARD_SCAN__ENABLED": "true" if self.enabled else "false",
               "DOCKYARD_SCAN__INTERVAL": "1s"}
        if self.workers is not None:
            env["DOCKYARD_SCAN__WORKERS"] = str(self.workers)
        return env


def _client(registry: Registry) -> RegistryClient:
    token = fetch_token(registry.url, registry.credentials, SCOPES) if registry.credentials else None
    return RegistryClient(registry.url, token)


def _scans_finished(data_dir: Path, between: tuple[float, float]) -> int:
    conn = sqlite3.connect(f"file:{data_dir / 'dockyard.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT finished_at FROM scans WHERE finished_at IS NOT NULL").fetchall()
    finally:
        conn.close()
    stamps = [datetime.fromisoformat(str(r[0])).replace(tzinfo=UTC).timestamp() for r in rows]
    return sum(between[0] <= s <= between[1] for s in stamps)


def _push_pass(registry: Registry, layer: LayerFile, images: Sequence[SmallImage], run: str,
               busy: bool = True) -> tuple[float, int]:
    """(seconds the timed pushes took, scans finished meanwhile) on a started, empty ``registry``;
    with ``busy``, images over the minbase layer are pushed first (untimed) to keep the scanners busy."""
    client = _client(registry)
    if busy:
        client.push_blob(BUSY_REPO, layer.path.read_bytes())
        for i, (image, _) in enumerate(busy_images(layer, BUSY_IMAGES, run)):
            client.push_image(BUSY_REPO, f"busy-{i}", image)
    started_wall, started = time.time(), time.perf_counter()
    for i, image in enumerate(images):
        client.push_image(PUSH_REPO, f"p{i}", image)
    seconds = time.perf_counter() - started
    data_dir = registry.workdir / "data"
    scans = _scans_finished(data_dir, (started_wall, time.time())) if isinstance(registry, ScanningDockyard) else 0
    return seconds, scans


def _pushes(root: Path, workdir: Path, layer: LayerFile, count: int, rep: int, log: Log) -> dict[str, float]:
    status = (root / "var/lib/dpkg/status").read_bytes()
    builds: list[tuple[str, Callable[[Path], Registry]]] = [
        ("on", lambda w: ScanningDockyard(w, True)), ("on1", lambda w: ScanningDockyard(w, True, workers=1)),
        ("idle", lambda w: ScanningDockyard(w, True)),
        ("off", lambda w: ScanningDockyard(w, False)), ("dist", Distribution)]
    order = builds if rep % 2 else list(reversed(builds))
    times: dict[str, float] = {}
    scans: dict[str, int] = {}
    for kind, build in order:
        images = push_images(count, status, f"rep{rep}-{kind}")
        with build(workdir / f"push-{rep}-{kind}") as registry:
            times[kind], finished = _push_pass(registry, layer, images, f"rep{rep}-{kind}", busy=kind != "idle")
            scans[kind] = finished
        log(f"{kind}: {count} pushes in {times[kind]:.2f} s" + (f", {finished} scans finished meanwhile"
                                                                   if kind not in ("dist", "off") else ""))
    return {"push_on_s": times["on"], "push_idle_s": times["idle"], "push_off_s": times["off"],
            "push_dist_s": times["dist"], "push_on_off": times["on"] / times["off"],
            "push_idle_off": times["idle"] / times["off"], "push_on_dist": times["on"] / times["dist"],
            "push_on1_s": times["on1"], "push_on1_off": times["on1"] / times["off"],
            "scans_during": float(scans["on"]), "scans_during_on1": float(scans["on1"])}


# -- the whole table ----------------------------------------------------------------------------------

def _prefixed(log: Log, prefix: str) -> Log:
    return lambda line: log(prefix + line)


def run_scan(settings: Settings, log: Log) -> ScanResults:
    results = ScanResults()
    scan_log = _prefixed(log, "[scan] ")
    root = minbase_root()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-scan-") as tmp:
        workdir = Path(tmp)
        layer = minbase_layer(root, workdir / "minbase.tar.gz")
        results.facts.append(f"minbase layer: {layer.tar_size / 1e6:.0f} MB of tar, {layer.size / 1e6:.0f} MB "
                             f"gzipped, from {root}")
        results.record(_inventory(layer, settings.reps, scan_log))
        (workdir / "match").mkdir()
        match = asyncio.run(_match(root, workdir / "match", settings.scan_advisories, settings.reps, scan_log))
        results.facts.append(f"{settings.scan_advisories:,} advisories imported in {match.pop('import_s'):.0f} s")
        results.record(match)
        results.record(_memory(root, workdir, settings.scan_big_layer_mib, scan_log))
        for rep in range(1, settings.reps + 1):
            results.record(_pushes(root, workdir, layer, settings.scan_pushes, rep,
                                   _prefixed(scan_log, f"[push {rep}/{settings.reps}] ")))
    return results


def _walk_main(path: str) -> int:
    """``python -m bench.scan walk FILE``: walk it with the package and secret readers; print JSON."""
    seconds, packages = walk_file(Path(path), secrets=True)
    # VmHWM, not ru_maxrss: Linux carries a parent's high-water mark across fork and exec into
    # ru_maxrss, and the benchmark process that starts this one holds 200,000 advisories.
    status = Path("/proc/self/status").read_text().splitlines()
    max_rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "packages": packages, "max_rss_kib": max_rss_kib}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "walk":
        print("usage: python -m bench.scan walk LAYER_FILE", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(_walk_main(sys.argv[2]))
