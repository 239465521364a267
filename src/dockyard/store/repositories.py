"""Repositories: created on first write, listed for the catalog."""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import repositories
from dockyard.store.statements import insert_ignore


async def find_id(conn: AsyncConnection, name: str) -> int | None:
    return await conn.scalar(sa.select(repositories.c.id).where(repositories.c.name == name))


async def ensure(conn: AsyncConnection, name: str) -> int:
    """The repository's id, creating it if needed (safe under concurrent creators)."""
    repo_id = await find_id(conn, name)
    if repo_id is None:
        await insert_ignore(conn, repositories, [{"name": name, "created_at": utcnow()}])
        repo_id = await find_id(conn, name)
    assert repo_id is not None
    return repo_id


async def list_names(conn: AsyncConnection, *, after: str | None, limit: int) -> list[str]:
    query = sa.select(repositories.c.name).order_by(repositories.c.name).limit(limit)
    if after is not None:
        query = query.where(repositories.c.name > after)
    return list((await conn.scalars(query)).all())
