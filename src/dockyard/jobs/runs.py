"""Recording job runs: every run of GC, retention, scrub or the upload purge, by the scheduler or
by hand, is a row (``dockyard jobs``): start, end, node, outcome, items examined and removed, bytes
freed."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from dockyard.store import jobs
from dockyard.store.db import Database

log = logging.getLogger("dockyard.jobs")


def node_name() -> str:
    """This process, as job leases and runs name it: ``<hostname>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


@dataclass(slots=True)
class RunTally:
    """What a run did so far; the job updates it as it goes, the row gets it at the end."""

    run_id: int | None = None  # the job_runs row (deleted_tags.run_id names it)
    examined: int = 0
    removed: int = 0
    bytes_freed: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def recorded_run(db: Database, job: str, *, dry_run: bool = False) -> AsyncIterator[RunTally]:
    """A job run's row: "running" while the block runs, then "ok", or "failed" if it raised."""
    async with db.write() as conn:
        run_id = await jobs.start_run(conn, job, node_name(), dry_run=dry_run)
    tally = RunTally(run_id=run_id)
    outcome = "failed"
    try:
        yield tally
        outcome = "ok"
    finally:
        try:
            async with db.write() as conn:
                await jobs.finish_run(conn, run_id, outcome=outcome, examined=tally.examined, removed=tally.removed,
                                      bytes_freed=tally.bytes_freed, detail=tally.detail or None)
        except Exception:  # the run's own outcome matters more than its record
            log.exception("recording the end of job run %s (%s) failed", run_id, job)
