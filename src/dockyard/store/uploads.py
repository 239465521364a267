"""Upload sessions: which repository an upload belongs to, and when it was last touched."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.store.clock import utcnow
from dockyard.store.schema import repositories, uploads


async def create(conn: AsyncConnection, upload_id: str, repository_id: int) -> None:
    now = utcnow()
    await conn.execute(sa.insert(uploads).values(
        id=upload_id, repository_id=repository_id, created_at=now, updated_at=now))


async def exists(conn: AsyncConnection, upload_id: str, repository: str) -> bool:
    query = (sa.select(uploads.c.id).select_from(uploads.join(repositories))
             .where(uploads.c.id == upload_id, repositories.c.name == repository))
    return await conn.scalar(query) is not None


async def touch(conn: AsyncConnection, upload_id: str) -> None:
    await conn.execute(sa.update(uploads).where(uploads.c.id == upload_id).values(updated_at=utcnow()))


async def delete(conn: AsyncConnection, upload_id: str) -> bool:
    result = await conn.execute(sa.delete(uploads).where(uploads.c.id == upload_id))
    return result.rowcount > 0


async def expired(conn: AsyncConnection, before: datetime, limit: int = 500) -> list[str]:
    query = sa.select(uploads.c.id).where(uploads.c.updated_at < before).limit(limit)
    return list((await conn.scalars(query)).all())


async def all_ids(conn: AsyncConnection) -> set[str]:
    return set((await conn.scalars(sa.select(uploads.c.id))).all())
