"""An in-process scheduler: each job runs every ``interval`` seconds while this node holds its lease."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from dockyard.errors import Unavailable
from dockyard.store import leases
from dockyard.store.db import Database

log = logging.getLogger("dockyard.jobs")


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]


class Scheduler:
    def __init__(self, db: Database, jobs: list[Job]) -> None:
        self.db = db
        self.jobs = jobs
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def run_once(self, job: Job) -> bool:
        """Run the job now if this node can take its lease; True if it ran."""
        ttl = timedelta(seconds=max(job.interval * 2, 60))
        async with self.db.write() as conn:
            if not await leases.acquire(conn, job.name, self.holder, ttl):
                return False
        await job.run()
        return True

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
