"""Job leases: with several nodes, each periodic job runs on one of them at a time."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import job_leases
from dockyard.store.statements import insert_ignore


async def acquire(conn: AsyncConnection, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False if someone else holds it."""
    now = utcnow()
    await insert_ignore(conn, job_leases, [{"name": name, "holder": holder, "expires_at": now + ttl}])
    result = await conn.execute(
        sa.update(job_leases)
        .where(job_leases.c.name == name,
               sa.or_(job_leases.c.holder == holder, job_leases.c.expires_at < now))
        .values(holder=holder, expires_at=now + ttl))
    return result.rowcount > 0


async def release(conn: AsyncConnection, name: str, holder: str) -> None:
    """Give the lease up now, if ``holder`` holds it."""
    await conn.execute(sa.update(job_leases).where(job_leases.c.name == name, job_leases.c.holder == holder)
                       .values(expires_at=utcnow()))


async def holder_of(conn: AsyncConnection, name: str) -> str | None:
    """Who holds the lease now (None: nobody)."""
    return await conn.scalar(sa.select(job_leases.c.holder).where(job_leases.c.name == name,
                                                                  job_leases.c.expires_at >= utcnow()))
