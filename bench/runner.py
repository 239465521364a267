"""The whole benchmark: test data made once, then interleaved passes, each on a fresh registry.

Every repetition runs the subject (dockyard) and then the baseline (distribution), one at a time,
each started on an empty data directory and stopped (its whole process tree) before the next one
starts. Everything lives in one temporary directory that is removed at the end, also on error or
Ctrl-C.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.lifecycle import LifecycleResults, run_lifecycle
from bench.registries import Distribution, Dockyard, Registry
from bench.report import Results
from bench.scaleout import ScaleoutResults, run_scaleout
from bench.settings import Settings
from bench.suite import Log, run_pass
from bench.testdata import BigBlob, SmallImage, make_big_blob, make_small_image

# command -> the Debian package that provides it
REQUIRED_TOOLS = {"curl": "curl", "wrk": "wrk", "ab": "apache2-utils", "docker-registry": "docker-registry"}


def missing_packages() -> list[str]:
    """The Debian packages whose commands are not on PATH."""
    return sorted({package for command, package in REQUIRED_TOOLS.items() if shutil.which(command) is None})


@dataclass(frozen=True, slots=True)
class Target:
    """A registry to measure: its column name and how to build it in a working directory."""

    name: str
    build: Callable[[Path], Registry]


def targets(settings: Settings) -> tuple[Target, Target]:
    """(subject, baseline); the subject is dockyard, or a second distribution to check the harness."""
    baseline = Target("distribution", Distribution)
    if settings.subject == "dockyard":
        return Target("dockyard", Dockyard), baseline
    return Target("distribution-b", lambda workdir: Distribution(workdir, "distribution-b")), baseline


def prefixed(log: Log, prefix: str) -> Log:
    """A log that starts every line with ``prefix``."""
    return lambda line: log(prefix + line)


def _measure(target: Target, workdir: Path, blob: BigBlob, image: SmallImage, settings: Settings,
             log: Log) -> dict[str, float]:
    """One pass against a fresh instance of ``target``, stopped and deleted afterwards."""
    with target.build(workdir) as registry:
        values = run_pass(registry, blob, image, settings, log)
    shutil.rmtree(workdir, ignore_errors=True)  # free the disk before the next pass
    return values


def run_benchmark(settings: Settings, log: Log
                  ) -> tuple[Results, ScaleoutResults | None, LifecycleResults | None]:
    """Run ``settings.reps`` interleaved repetitions and return every value measured.

    With ``settings.scaleout`` the scale-out table's setups (``bench.scaleout``) run afterwards on
    the same test data; otherwise the second result is None. Unless ``settings.lifecycle`` is "0"
    the lifecycle table (``bench.lifecycle``) runs last; with "only" it is all that runs.
    """
    subject, baseline = targets(settings)
    results = Results(subject.name, baseline.name)
    scaleout = None
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        root = Path(tmp)
        image = make_small_image()
        if settings.lifecycle != "only":
            log(f"writing a {settings.blob_mib} MiB random test blob to {root}")
            blob = make_big_blob(root, settings.blob_bytes, settings.chunk_bytes)
            for rep in range(1, settings.reps + 1):
                for target in (subject, baseline):
                    pass_log = prefixed(log, f"[{rep}/{settings.reps} {target.name}] ")
                    values = _measure(target, root / f"rep{rep}-{target.name}", blob, image, settings, pass_log)
                    results.record(target.name, values)
            scaleout = run_scaleout(settings, blob, image, log) if settings.scaleout else None
    lifecycle = run_lifecycle(settings, image, log) if settings.lifecycle != "0" else None
    return results, scaleout, lifecycle
