"""The benchmark's knobs, read once from ``BENCH_*`` environment variables.

| variable          | default    | meaning                                                        |
|-------------------|------------|----------------------------------------------------------------|
| BENCH_BLOB_MB     | 1024       | size of the test blob, in MiB                                  |
| BENCH_CHUNK_MB    | 64         | PATCH chunk size of the chunked push, in MiB (at most the blob) |
| BENCH_STREAMS     | 8          | concurrent pulls of the blob in the multi-stream test          |
| BENCH_CONNECTIONS | 64         | open connections of the manifest GET/HEAD load tests           |
| BENCH_SECONDS     | 10         | duration of each manifest load test                            |
| BENCH_REPS        | 3          | repetitions; subject and baseline alternate within each one    |
| BENCH_SUBJECT     | dockyard   | what to compare with distribution: ``dockyard``, or            |
|                   |            | ``distribution`` (a second instance: checks the harness itself) |
| BENCH_SCALEOUT    | 0          | 1: also run the "dockyard scale-out" table (bench/scaleout.py)  |
| BENCH_LIFECYCLE   | 1          | 1: also run the "dockyard lifecycle" table (bench/lifecycle.py); |
|                   |            | 0: not; only: that table alone                                  |
| BENCH_GC_CANDIDATES | 10000    | GC candidates (unreferenced blobs) the lifecycle table collects |
| BENCH_BASELINE_COMMIT | 0e4cfe7 | the code before issue 12, for the pull-recording comparison   |
| BENCH_SCAN        | 1          | 1: also run the "supply chain" table (bench/scan.py); 0: not;   |
|                   |            | only: that table alone                                          |
| BENCH_ADVISORIES  | 200000     | OSV advisories the matching benchmark imports                   |
| BENCH_BIG_LAYER_MB | 2048      | size of the big layer of the memory benchmark, in MiB           |
| BENCH_SCAN_PUSHES | 12         | images pushed (timed) per registry in the push-with-scan test   |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MIB = 1024 * 1024
SUBJECTS = ("dockyard", "distribution")


class SettingsError(ValueError):
    """A ``BENCH_*`` variable has a value the benchmark cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Sizes, counts and durations of one benchmark run."""

    blob_mib: int = 1024
    chunk_mib: int = 64
    streams: int = 8
    connections: int = 64
    seconds: int = 10
    reps: int = 3
    subject: str = "dockyard"
    scaleout: bool = False
    lifecycle: str = "1"  # "1", "0" or "only"
    gc_candidates: int = 10_000
    baseline_commit: str = "0e4cfe7"
    scan: str = "1"  # "1", "0" or "only"
    scan_advisories: int = 200_000
    scan_big_layer_mib: int = 2048
    scan_pushes: int = 12

    @property
    def blob_bytes(self) -> int:
        return self.blob_mib * MIB

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_mib * MIB


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r}: expected a number of at least 1")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (default: ``os.environ``); raise SettingsError on bad values."""
    env = os.environ if env is None else env
    defaults = Settings()
    subject = env.get("BENCH_SUBJECT", "").strip() or defaults.subject
    if subject not in SUBJECTS:
        raise SettingsError(f"BENCH_SUBJECT={subject!r}: expected one of {', '.join(SUBJECTS)}")
    blob_mib = _positive_int(env, "BENCH_BLOB_MB", defaults.blob_mib)
    scaleout = env.get("BENCH_SCALEOUT", "").strip() or "0"
    if scaleout not in ("0", "1"):
        raise SettingsError(f"BENCH_SCALEOUT={scaleout!r}: expected 0 or 1")
    lifecycle = env.get("BENCH_LIFECYCLE", "").strip() or defaults.lifecycle
    if lifecycle not in ("0", "1", "only"):
        raise SettingsError(f"BENCH_LIFECYCLE={lifecycle!r}: expected 0, 1 or only")
    commit = env.get("BENCH_BASELINE_COMMIT", "").strip() or defaults.baseline_commit
    if not commit.replace("-", "").replace("_", "").replace(".", "").replace("/", "").isalnum():
        raise SettingsError(f"BENCH_BASELINE_COMMIT={commit!r}: expected a commit or a branch name")
    scan = env.get("BENCH_SCAN", "").strip() or defaults.scan
    if scan not in ("0", "1", "only"):
        raise SettingsError(f"BENCH_SCAN={scan!r}: expected 0, 1 or only")
    return Settings(
        blob_mib=blob_mib,
        chunk_mib=min(blob_mib, _positive_int(env, "BENCH_CHUNK_MB", defaults.chunk_mib)),
        streams=_positive_int(env, "BENCH_STREAMS", defaults.streams),
        connections=_positive_int(env, "BENCH_CONNECTIONS", defaults.connections),
        seconds=_positive_int(env, "BENCH_SECONDS", defaults.seconds),
        reps=_positive_int(env, "BENCH_REPS", defaults.reps),
        subject=subject,
        scaleout=scaleout == "1",
        lifecycle=lifecycle,
        gc_candidates=_positive_int(env, "BENCH_GC_CANDIDATES", defaults.gc_candidates),
        baseline_commit=commit,
        scan=scan,
        scan_advisories=_positive_int(env, "BENCH_ADVISORIES", defaults.scan_advisories),
        scan_big_layer_mib=_positive_int(env, "BENCH_BIG_LAYER_MB", defaults.scan_big_layer_mib),
        scan_pushes=_positive_int(env, "BENCH_SCAN_PUSHES", defaults.scan_pushes),
    )
