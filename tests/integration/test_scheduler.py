"""Periodic jobs run under a database lease: with several nodes, one runs a job at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dockyard.jobs.scheduler import Job, Scheduler
from dockyard.store import leases
from tests.integration.conftest import Registry


async def test_only_the_lease_holder_runs_a_job(registry: Registry) -> None:
    runs: list[str] = []

    def job_for(node: str) -> Job:
        async def run() -> None:
            runs.append(node)
        return Job("uploads-purge-test", 600, run)

    first = Scheduler(registry.parts.db, [job_for("first")])
    second = Scheduler(registry.parts.db, [job_for("second")])
    first.holder, second.holder = "node-a:1", "node-b:2"
    assert await first.run_once(first.jobs[0])
    assert not await second.run_once(second.jobs[0])
    assert await first.run_once(first.jobs[0])  # the holder renews its own lease
    assert runs == ["first", "first"]


async def test_an_expired_lease_passes_to_another_node(registry: Registry) -> None:
    async with registry.parts.db.write() as conn:
        assert await leases.acquire(conn, "job", "node-a:1", timedelta(seconds=-1))
    async with registry.parts.db.write() as conn:
        assert await leases.acquire(conn, "job", "node-b:2", timedelta(seconds=60))
    async with registry.parts.db.write() as conn:
        assert not await leases.acquire(conn, "job", "node-a:1", timedelta(seconds=60))


async def test_scheduler_loop_runs_and_survives_a_failing_job(registry: Registry) -> None:
    ran = asyncio.Event()
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first run fails")
        ran.set()

    scheduler = Scheduler(registry.parts.db, [Job("flaky", 0.01, flaky)])
    scheduler.start()
    try:
        await asyncio.wait_for(ran.wait(), timeout=10)
    finally:
        await scheduler.stop()
    assert attempts >= 2
