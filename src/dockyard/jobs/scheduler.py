"""An in-process scheduler: each job runs every ``interval`` seconds while this node holds its lease.

Every run it makes is recorded (``recorded_run``: a ``job_runs`` row with the job's report, see
``dockyard jobs``) and handed to ``observe`` (the Prometheus metrics of ``http/metrics.py``). A run
that lasts longer than its lease renews the lease while it runs, so no other node starts the same
job meanwhile. Runs older than ``KEEP_RUNS`` (90 days) are forgotten after each successful
scheduled run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from dockyard.errors import Unavailable
from dockyard.jobs.runs import RunTally, node_name, recorded_run, tally_report
from dockyard.store import jobs, leases
from dockyard.store.clock import utcnow
from dockyard.store.db import Database

log = logging.getLogger("dockyard.jobs")
KEEP_RUNS = timedelta(days=90)  # job runs older than this are forgotten (a scheduled run prunes them)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]  # returns a ``JobReport`` (or None: nothing to count)
    # Asked (under the lease) before each run: False skips this turn, unrecorded. For a job that
    # looks often but works rarely (a scrub pass a week, retention's cron schedules).
    is_due: Callable[[], Awaitable[bool]] | None = None


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A scheduled run as the metrics see it."""

    job: str
    outcome: str  # "ok" or "failed"
    seconds: float
    examined: int
    removed: int
    bytes_freed: int
    ended_at: float  # Unix time


def _unobserved(_run: FinishedRun) -> None:
    """No metrics (tests and tools that build the scheduler alone)."""


class Scheduler:
    def __init__(self, db: Database, jobs: list[Job],
                 observe: Callable[[FinishedRun], None] = _unobserved) -> None:
        self.db = db
        self.jobs = jobs
        self.observe = observe
        self.holder = node_name()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def run_once(self, job: Job) -> bool:
        """Run the job now if this node can take its lease and the job is due; True if it ran
        (raises what it raised)."""
        ttl = timedelta(seconds=max(job.interval * 2, 60))
        if not await self._take_lease(job, ttl):
            return False
        if job.is_due is not None and not await job.is_due():
            return False
        renewing = asyncio.create_task(self._renew(job, ttl), name=f"lease:{job.name}")
        started = time.monotonic()
        tally = RunTally()
        outcome = "failed"
        try:
            async with recorded_run(self.db, job.name) as tally:
                try:
                    tally_report(tally, await job.run())
                except Exception as exc:
                    tally.detail["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
                    raise
            outcome = "ok"
            async with self.db.write() as conn:
                await jobs.prune_runs(conn, utcnow() - KEEP_RUNS)
        finally:
            renewing.cancel()
            # Not ``suppress(CancelledError)`` around ``await renewing``: a cancel of this task that
            # lands there would be swallowed, and a stopping worker would wait for it forever.
            await asyncio.wait([renewing])
            self._observe(FinishedRun(job.name, outcome, time.monotonic() - started, tally.examined,
                                      tally.removed, tally.bytes_freed, time.time()))
        return True

    async def _take_lease(self, job: Job, ttl: timedelta) -> bool:
        async with self.db.write() as conn:
            return await leases.acquire(conn, job.name, self.holder, ttl)

    async def _renew(self, job: Job, ttl: timedelta) -> None:
        """Keep the lease while the run lasts (a scrub can take hours)."""
        while True:
            await asyncio.sleep(ttl.total_seconds() / 3)
            try:
                if not await self._take_lease(job, ttl):
                    log.warning("job %s: another node took its lease while this run goes on", job.name)
            except Exception as exc:  # an outage: the run itself will notice, or finish
                log.warning("job %s: renewing its lease failed (%s)", job.name, exc)

    def _observe(self, run: FinishedRun) -> None:
        try:
            self.observe(run)
        except Exception:  # metrics never break a job
            log.exception("counting job run %s failed", run.job)

    async def _loop(self, job: Job) -> None:
        while True:
            try:
                await self.run_once(job)
            except asyncio.CancelledError:
                raise
            except Unavailable as exc:  # the seam logged the outage; no traceback for it
                log.warning("job %s skipped (%s); it will run again in %.0fs", job.name, exc.message, job.interval)
            except Exception:
                log.exception("job %s failed; it will run again in %.0fs", job.name, job.interval)
            await asyncio.sleep(job.interval)
