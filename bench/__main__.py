"""Side-by-side benchmark of dockyard and CNCF distribution (``make bench``).

Usage: python -m bench [--help]        (run from the repository root, in its virtualenv)

Starts each registry on 127.0.0.1 with an empty data directory and measures, per registry:
  * pushing a 1 GiB blob monolithically (POST + PUT ?digest=) and in 64 MiB PATCH chunks   [MB/s]
  * pulling it with 1 stream, and with 8 concurrent streams (aggregate)                  [MB/s]
  * manifest GET (wrk) and HEAD (ab -i -k) under 64 connections                   [req/s, p99 ms]
  * peak RSS of the server's whole process tree                                             [MB]
dockyard authorizes every request: it starts with a generated admin password, and each pass gets
one bearer token from its /token endpoint and sends it on every request (curl, wrk and ab too),
as a real client does; distribution runs without authentication.
Repetitions interleave the two registries (dockyard, distribution, dockyard, ...). Prints the
machine, then one markdown table of medians with the ratio dockyard/distribution, and writes
it to bench/results/latest.md. A full run takes about 4 minutes on a 2-core machine.

Needs: curl, wrk, ab (apache2-utils) and docker-registry on PATH (Debian packages), and dockyard
installed in this Python environment.

Environment (defaults in brackets; a quick run: BENCH_BLOB_MB=64 BENCH_REPS=1 BENCH_SECONDS=3):
  BENCH_BLOB_MB      size of the test blob in MiB [1024]
  BENCH_CHUNK_MB     chunk size of the chunked push in MiB [64]
  BENCH_STREAMS      concurrent streams of the multi-stream pull [8]
  BENCH_CONNECTIONS  connections of the manifest load tests [64]
  BENCH_SECONDS      duration of each manifest load test [10]
  BENCH_REPS         repetitions [3]
  BENCH_SUBJECT      dockyard, or distribution to test the harness with two distributions [dockyard]
  BENCH_SCALEOUT     1 adds a second table, "dockyard scale-out": dockyard on fs + SQLite (1 node),
                     on Ceph S3 + PostgreSQL with 1 node, and with 3 nodes behind nginx round-robin;
                     starts Ceph (ci/s3/start.sh) itself, needs nginx and a running PostgreSQL [0]
  BENCH_PG_URL       PostgreSQL to create each pass's database on (scale-out only)
                     [postgresql+asyncpg://postgres@127.0.0.1:5432/test]
  BENCH_LIFECYCLE    1 adds a third table, "dockyard lifecycle" (bench/lifecycle.py): manifest GET and
                     push latency while GC collects BENCH_GC_CANDIDATES unreferenced blobs, against
                     the same without GC; manifest GET with pull recording against the code before
                     issue 12 (BENCH_BASELINE_COMMIT); 0 leaves it out, only runs it alone [1]
  BENCH_GC_CANDIDATES  GC candidates seeded for the lifecycle table [10000]
  BENCH_BASELINE_COMMIT  the code before issue 12, exported with git archive [0e4cfe7]
  BENCH_SCAN         1 adds the "supply chain" table (bench/scan.py): inventory of a Debian minbase
                     layer, matching 500 packages against BENCH_ADVISORIES advisories, peak RSS
                     walking a BENCH_BIG_LAYER_MB layer against a 100 MiB one, and BENCH_SCAN_PUSHES
                     pushes with scanning on, off, and to distribution; 0 leaves it out, only runs
                     it alone [1]
  BENCH_ADVISORIES   OSV advisories the matching benchmark imports [200000]
  BENCH_BIG_LAYER_MB size of the memory benchmark's big layer in MiB [2048]
  BENCH_SCAN_PUSHES  images pushed per registry in the push-with-scanning test [12]
  TMPDIR             where the test blob and both registries' data live [/tmp]

Exit status: 0 done, 1 a registry or tool failed, 2 bad settings or missing tools, 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from bench.client import ProtocolError
from bench.curl import CurlError
from bench.lifecycle import LifecycleResults, lifecycle_table
from bench.loadgen import LoadError
from bench.machine import describe_machine
from bench.registries import RegistryError, distribution_version
from bench.report import Results, median_table, samples_table, settings_line, write_latest
from bench.runner import missing_packages, run_benchmark
from bench.scaleout import ScaleoutResults, scaleout_metrics, scaleout_samples_table, scaleout_table
from bench.scaleout import missing_packages as scaleout_missing_packages
from bench.scan import SCAN_NOTE, ScanResults, run_scan, scan_table
from bench.scan_data import DataError
from bench.settings import Settings, SettingsError, load_settings
from bench.suite import Log, metrics_for

FAILURES = (RegistryError, ProtocolError, CurlError, LoadError, DataError, OSError)


def stderr_log() -> Log:
    """Progress lines on stderr, stamped with the seconds since the start."""
    start = time.monotonic()

    def log(line: str) -> None:
        print(f"{time.monotonic() - start:7.1f}s  {line}", file=sys.stderr, flush=True)

    return log


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every cleanup, like Ctrl-C


SCALEOUT_NOTE = ("S3 setups: Ceph radosgw (memstore) + PostgreSQL, blob GETs answer 307 to radosgw and "
                 "the pulls follow it (curl -L); 3 nodes run --workers 1 each behind nginx round-robin.")


LIFECYCLE_NOTE = ("Lifecycle: dockyard alone (SQLite + filesystem, a worker per core). GC rows: two fresh servers "
                  "on copies of the same data (BENCH_GC_CANDIDATES unreferenced blobs, grace 0 s), one running "
                  "the collector in a worker from its start, one not; on each, wrk GETs the manifest, then one "
                  "client pushes alone. Recording rows: this code against the code before issue 12 "
                  "(BENCH_BASELINE_COMMIT), fresh servers, alternating.")


def render(results: Results | None, settings: Settings, header: str, scaleout: ScaleoutResults | None = None,
           lifecycle: LifecycleResults | None = None, scan: ScanResults | None = None) -> tuple[str, str]:
    """(what stdout shows, what latest.md holds): both carry the machine and the median table(s)."""
    shown, saved = f"{header}\n", f"# dockyard benchmark\n\n{header}\n"
    if results is not None and settings.lifecycle != "only":
        metrics = metrics_for(settings)
        table = median_table(results, metrics)
        shown += f"\n{table}\n"
        saved += f"\n{table}\n\n## Every repetition\n\n{samples_table(results, metrics)}\n"
    if scaleout is not None:
        wide = scaleout_metrics(metrics_for(settings))
        table = scaleout_table(scaleout, wide)
        shown += f"\ndockyard scale-out\n\n{table}\n\n{SCALEOUT_NOTE}\n"
        saved += (f"\n## dockyard scale-out\n\n{table}\n\n{SCALEOUT_NOTE}\n\n"
                  f"### Every repetition (scale-out)\n\n{scaleout_samples_table(scaleout, wide)}\n")
    if lifecycle is not None:
        table = lifecycle_table(lifecycle)
        shown += f"\ndockyard lifecycle\n\n{table}\n\n{LIFECYCLE_NOTE}\n"
        saved += f"\n## dockyard lifecycle\n\n{table}\n\n{LIFECYCLE_NOTE}\n"
    if scan is not None:
        table, facts = scan_table(scan), "\n".join(f"- {fact}" for fact in scan.facts)
        shown += f"\nsupply chain\n\n{table}\n\n{facts}\n{SCAN_NOTE}\n"
        saved += f"\n## supply chain\n\n{table}\n\n{facts}\n{SCAN_NOTE}\n"
    return shown, saved


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    missing = missing_packages() + (scaleout_missing_packages() if settings.scaleout else [])
    if missing:
        print(f"bench: missing tools; install them with: apt-get install -y {' '.join(missing)}",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    header = "\n".join([
        f"- machine: {describe_machine().describe()}",
        f"- baseline: {distribution_version()}",
        f"- settings: {settings_line(settings)}",
    ])
    log = stderr_log()
    log(f"settings: {settings_line(settings)}")
    results: Results | None = None
    scaleout, lifecycle, scan = None, None, None
    try:
        if settings.scan != "only":
            results, scaleout, lifecycle = run_benchmark(settings, log)
        if settings.scan != "0":
            scan = run_scan(settings, log)
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped and temporary files removed", file=sys.stderr)
        return 130
    except FAILURES as exc:
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 1
    shown, saved = render(results, settings, header, scaleout, lifecycle, scan)
    print(shown, end="")
    print(f"written to {write_latest(saved)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
