"""Job runs as people see them (``dockyard jobs``, ``GET /api/v1/jobs``): system admins only."""

from __future__ import annotations

from typing import Any

from dockyard.auth.principals import Principal
from dockyard.errors import Denied, RequestInvalid
from dockyard.store import jobs, limits
from dockyard.store.db import Database

MAX_LIMIT = 1000


class JobsService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def recent_runs(self, actor: Principal, *, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent runs, newest first, of one job or of all."""
        if not actor.is_system_admin:
            raise Denied("only a system admin may see job runs")
        if job is not None and not limits.can_hold(job, limits.JOB_NAME):
            raise RequestInvalid(f"job name {job[:40]!r} is too long or holds a NUL character; "
                                 "use a job's name, such as gc, retention, scrub or uploads-purge")
        if not 1 <= limit <= MAX_LIMIT:
            raise RequestInvalid(f"limit must be between 1 and {MAX_LIMIT}")
        async with self.db.read() as conn:
            runs = await jobs.recent_runs(conn, job=job, limit=limit)
        return [{"id": run.id, "job": run.job, "node": run.node, "started_at": run.started_at.isoformat(),
                 "ended_at": run.ended_at.isoformat() if run.ended_at else None, "outcome": run.outcome,
                 "dry_run": run.dry_run, "examined": run.examined, "removed": run.removed,
                 "bytes_freed": run.bytes_freed, "detail": run.detail} for run in runs]
