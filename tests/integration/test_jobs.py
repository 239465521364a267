"""Every scheduled run is recorded and counted; `GET /api/v1/jobs` shows runs to system admins only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dockyard.jobs.scheduler import Job, Scheduler
from dockyard.store import jobs as store_jobs
from dockyard.store.clock import utcnow
from dockyard.store.schema import job_runs
from tests.integration.conftest import Registry, client_as


@dataclass
class Report:
    examined: int = 7
    removed: int = 3
    bytes_freed: int = 4096
    found: list[str] = field(default_factory=lambda: ["a"])

    def detail(self) -> dict[str, Any]:
        return {"found": self.found}


def counted(registry: Registry, jobs: list[Job]) -> Scheduler:
    """A scheduler wired to the app's metrics, as app.py wires its own."""
    metrics = registry.parts.metrics
    metrics.declare_jobs([job.name for job in jobs])
    return Scheduler(registry.parts.db, jobs, observe=lambda run: metrics.record_job(
        run.job, run.outcome, run.seconds, run.removed, run.bytes_freed, run.ended_at))


async def test_the_scheduler_records_ok_and_failed_runs_and_counts_them(registry: Registry) -> None:
    async def works() -> Report:
        return Report()

    async def breaks() -> Report:
        raise RuntimeError("the store fell over")

    scheduler = counted(registry, [Job("sweeper", 600, works), Job("breaker", 600, breaks)])
    assert await scheduler.run_once(scheduler.jobs[0])
    with pytest.raises(RuntimeError, match="the store fell over"):  # the loop logs it
        await scheduler.run_once(scheduler.jobs[1])

    runs = (await registry.client.get("/api/v1/jobs")).json()
    assert [(r["job"], r["outcome"], r["examined"], r["removed"], r["bytes_freed"]) for r in runs] == [
        ("breaker", "failed", 0, 0, 0), ("sweeper", "ok", 7, 3, 4096)]
    assert runs[1]["detail"] == {"found": ["a"]}
    assert runs[0]["detail"] == {"error": "RuntimeError: the store fell over"}
    assert all(r["ended_at"] is not None and r["node"] == scheduler.holder for r in runs)
    only = (await registry.client.get("/api/v1/jobs", params={"job": "sweeper", "limit": "1"})).json()
    assert [r["job"] for r in only] == ["sweeper"]

    text = (await registry.client.get("/metrics")).text
    assert 'dockyard_job_runs_total{job="sweeper",outcome="ok"} 1.0' in text
    assert 'dockyard_job_runs_total{job="sweeper",outcome="failed"} 0.0' in text
    assert 'dockyard_job_runs_total{job="breaker",outcome="failed"} 1.0' in text
    assert 'dockyard_job_items_removed_total{job="sweeper"} 3.0' in text
    assert 'dockyard_job_bytes_freed_total{job="sweeper"} 4096.0' in text
    assert 'dockyard_job_duration_seconds_count{job="sweeper"} 1.0' in text
    assert 'dockyard_job_last_success_timestamp_seconds{job="breaker"} 0.0' in text
    success = next(line for line in text.splitlines()
                   if line.startswith('dockyard_job_last_success_timestamp_seconds{job="sweeper"}'))
    assert float(success.split()[1]) > 1.7e9
    # the app's own jobs have their series from the start
    assert 'dockyard_job_runs_total{job="scrub",outcome="ok"} 0.0' in text
    assert 'dockyard_job_runs_total{job="uploads-purge",outcome="failed"} 0.0' in text


async def test_job_runs_are_for_system_admins_only(registry: Registry) -> None:
    assert (await registry.client.post("/api/v1/users", json={"name": "dev", "password": "dev-password-1"})
            ).status_code == 201
    async with client_as(registry, ("dev", "dev-password-1")) as dev:
        answer = await dev.get("/api/v1/jobs")
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["code"] == "DENIED"


async def test_bad_queries_are_refused_clearly(registry: Registry) -> None:
    for params in ({"limit": "0"}, {"limit": "-1"}, {"limit": "5000"}, {"limit": "x"}, {"job": "j" * 65},
                   {"job": "a\x00b"}):
        answer = await registry.client.get("/api/v1/jobs", params=params)
        assert answer.status_code == 400, params
        error = answer.json()["errors"][0]
        assert error["code"] == "INVALID_REQUEST"
        assert ("limit must be" in error["message"]) == ("limit" in params), error


MULTIPROCESS_SCRIPT = """
import os, sys
from dockyard.http.metrics import Metrics
for worker in range(2):
    if os.fork() == 0:
        metrics = Metrics()
        metrics.declare_jobs(["scrub", "gc"])
        metrics.record_job("scrub", "ok", 2.5, 1, 100, 1000.0 + worker)
        metrics.blobs_corrupt.inc()
        os._exit(0)
    os.wait()
sys.stdout.write(Metrics().render().decode())
"""


def test_job_metrics_add_up_across_worker_processes(tmp_path: Path) -> None:
    """As under `dockyard serve`: each worker's series in its own files, allocated ahead of use."""
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    text = subprocess.run([sys.executable, "-c", MULTIPROCESS_SCRIPT], env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert 'dockyard_job_runs_total{job="scrub",outcome="ok"} 2.0' in text
    assert 'dockyard_job_runs_total{job="gc",outcome="ok"} 0.0' in text
    assert 'dockyard_job_bytes_freed_total{job="scrub"} 200.0' in text
    assert 'dockyard_job_last_success_timestamp_seconds{job="scrub"} 1001.0' in text  # the latest, not a sum
    assert "dockyard_blobs_corrupt_total 2.0" in text
    assert len(list(tmp_path.glob("gauge_max_*.db"))) == 3  # made (and allocated) by each process


async def test_scheduled_runs_forget_runs_older_than_ninety_days(registry: Registry) -> None:
    async with registry.parts.db.write() as conn:
        old = await store_jobs.start_run(conn, "scrub", "node:1", dry_run=False)
        recent = await store_jobs.start_run(conn, "scrub", "node:1", dry_run=False)
        await conn.execute(sa.update(job_runs).where(job_runs.c.id == old)
                           .values(started_at=utcnow() - timedelta(days=91)))
    scheduler = registry.parts.scheduler
    assert await scheduler.run_once(next(job for job in scheduler.jobs if job.name == "uploads-purge"))
    ids = [run["id"] for run in (await registry.client.get("/api/v1/jobs")).json()]
    assert old not in ids
    assert recent in ids
    assert len(ids) == 2  # and the purge's own run
