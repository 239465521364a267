"""Job runs (``dockyard jobs``) and per-job state (where a resumable job stopped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import job_runs, job_state
from dockyard.store.statements import upsert


@dataclass(frozen=True, slots=True)
class JobRun:
    id: int
    job: str
    node: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str  # "running", "ok" or "failed"
    dry_run: bool
    examined: int
    removed: int
    bytes_freed: int
    detail: dict[str, Any] | None


async def start_run(conn: AsyncConnection, job: str, node: str, *, dry_run: bool) -> int:
    result = await conn.execute(sa.insert(job_runs).values(
        job=job, node=node, started_at=utcnow(), outcome="running", dry_run=dry_run, examined=0, removed=0,
        bytes_freed=0).returning(job_runs.c.id))
    return int(result.scalar_one())


async def finish_run(conn: AsyncConnection, run_id: int, *, outcome: str, examined: int, removed: int,
                     bytes_freed: int, detail: dict[str, Any] | None) -> None:
    await conn.execute(sa.update(job_runs).where(job_runs.c.id == run_id).values(
        ended_at=utcnow(), outcome=outcome, examined=examined, removed=removed, bytes_freed=bytes_freed,
        detail=detail))


async def recent_runs(conn: AsyncConnection, *, job: str | None = None, limit: int = 50) -> list[JobRun]:
    query = sa.select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(job_runs.c.job == job)
    return [JobRun(r.id, r.job, r.node, r.started_at, r.ended_at, r.outcome, r.dry_run, r.examined, r.removed,
                   r.bytes_freed, r.detail) for r in await conn.execute(query)]


async def prune_runs(conn: AsyncConnection, before: datetime) -> int:
    """Forget the runs that started before ``before``; how many went."""
    result = await conn.execute(sa.delete(job_runs).where(job_runs.c.started_at < before))
    return int(result.rowcount or 0)


async def load_state(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    found = await conn.scalar(sa.select(job_state.c.state).where(job_state.c.name == name))
    return None if found is None else dict(found)


async def save_state(conn: AsyncConnection, name: str, state: dict[str, Any]) -> None:
    await upsert(conn, job_state, {"name": name, "state": state, "updated_at": utcnow()}, keys=("name",))
