"""Tags: mutable names pointing at manifests."""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import tags
from dockyard.store.statements import upsert


async def point(conn: AsyncConnection, repository_id: int, name: str, manifest_id: int) -> None:
    await upsert(conn, tags, {"repository_id": repository_id, "name": name, "manifest_id": manifest_id,
                              "updated_at": utcnow()}, keys=("repository_id", "name"))


async def delete(conn: AsyncConnection, repository_id: int, name: str) -> bool:
    result = await conn.execute(sa.delete(tags).where(tags.c.repository_id == repository_id,
                                                      tags.c.name == name))
    return result.rowcount > 0


async def list_names(conn: AsyncConnection, repository_id: int, *, after: str | None, limit: int) -> list[str]:
    query = (sa.select(tags.c.name).where(tags.c.repository_id == repository_id)
             .order_by(tags.c.name).limit(limit))
    if after is not None:
        query = query.where(tags.c.name > after)
    return list((await conn.scalars(query)).all())

