"""Tags: mutable names pointing at manifests."""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import manifests, tags
from dockyard.store.statements import upsert


async def point(conn: AsyncConnection, repository_id: int, name: str, manifest_id: int) -> None:
    await upsert(conn, tags, {"repository_id": repository_id, "name": name, "manifest_id": manifest_id,
                              "updated_at": utcnow()}, keys=("repository_id", "name"))


async def target(conn: AsyncConnection, repository_id: int, name: str) -> tuple[int, str] | None:
    """The id and digest of the manifest the tag points at now (None: no such tag)."""
    row = (await conn.execute(sa.select(manifests.c.id, manifests.c.digest)
                              .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
                              .where(tags.c.repository_id == repository_id, tags.c.name == name))).first()
    return None if row is None else (row[0], row[1])


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

