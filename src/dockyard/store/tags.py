"""Tags: mutable names pointing at manifests."""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import manifest_references, manifests, tags
from dockyard.store.statements import insert_ignore


async def target(conn: AsyncConnection, repository_id: int, name: str, *, lock: bool = False
                 ) -> tuple[int, str] | None:
    """The id and digest of the manifest the tag points at now (None: no such tag); ``lock`` holds
    the tag's row until the transaction ends (on PostgreSQL, a concurrent mover waits, then reads
    what this transaction left)."""
    query = (sa.select(manifests.c.id, manifests.c.digest)
             .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
             .where(tags.c.repository_id == repository_id, tags.c.name == name))
    row = (await conn.execute(query.with_for_update(of=tags) if lock else query)).first()
    return None if row is None else (row[0], row[1])


async def repoint(conn: AsyncConnection, repository_id: int, name: str, manifest_id: int) -> tuple[int, str] | None:
    """Point the tag at the manifest; what it pointed at before (None: a new tag).

    The tag's row is locked before it is read, so of two pushes that move one tag at once each
    learns the manifest the other left, and every manifest a tag leaves is known to someone (the
    collector's candidates depend on it). A tag two pushes create at once: one inserts it, the
    other finds it and moves it.
    """
    row = {"repository_id": repository_id, "name": name, "manifest_id": manifest_id, "updated_at": utcnow()}
    while True:
        before = await target(conn, repository_id, name, lock=True)
        if before is not None:
            await conn.execute(sa.update(tags).where(tags.c.repository_id == repository_id, tags.c.name == name)
                               .values(manifest_id=manifest_id, updated_at=row["updated_at"]))
            return before
        if await insert_ignore(conn, tags, [row]):
            return None


async def delete(conn: AsyncConnection, repository_id: int, name: str) -> bool:
    result = await conn.execute(sa.delete(tags).where(tags.c.repository_id == repository_id,
                                                      tags.c.name == name))
    return result.rowcount > 0


_WITH_MANIFESTS = tags.join(manifests, manifests.c.id == tags.c.manifest_id)


async def digests_of(conn: AsyncConnection, repository_id: int, names: list[str]) -> dict[str, str]:
    """Which manifest digest each of the named tags points at (tags that do not exist are left out)."""
    if not names:
        return {}
    query = (sa.select(tags.c.name, manifests.c.digest).select_from(_WITH_MANIFESTS)
             .where(tags.c.repository_id == repository_id, tags.c.name.in_(names)))
    return {row[0]: row[1] for row in await conn.execute(query)}


async def claim(conn: AsyncConnection, repository_id: int, name: str, manifest_id: int) -> int:
    """Create the tag unless it exists (never move it); the manifest id it points at afterwards.

    An immutable tag is created this way: of two pushes that create it at once, the second finds
    the first's and is refused, where an upsert would have moved it.
    """
    await insert_ignore(conn, tags, [{"repository_id": repository_id, "name": name, "manifest_id": manifest_id,
                                      "updated_at": utcnow()}])
    found = await conn.scalar(sa.select(tags.c.manifest_id).where(tags.c.repository_id == repository_id,
                                                                   tags.c.name == name))
    assert found is not None
    return int(found)


async def pointing_at(conn: AsyncConnection, repository_id: int, digest: str) -> dict[str, str]:
    """Tags of the repository that keep a manifest: those pointing at it, and those pointing at an
    index of the repository that lists it; tag name -> the digest it points at."""
    parents = (sa.select(manifest_references.c.manifest_id)
               .where(manifest_references.c.kind == "manifest", manifest_references.c.digest == digest))
    query = (sa.select(tags.c.name, manifests.c.digest).select_from(_WITH_MANIFESTS)
             .where(tags.c.repository_id == repository_id,
                    sa.or_(manifests.c.digest == digest, manifests.c.id.in_(parents))))
    return {row[0]: row[1] for row in await conn.execute(query)}


async def list_names(conn: AsyncConnection, repository_id: int, *, after: str | None, limit: int) -> list[str]:
    query = (sa.select(tags.c.name).where(tags.c.repository_id == repository_id)
             .order_by(tags.c.name).limit(limit))
    if after is not None:
        query = query.where(tags.c.name > after)
    return list((await conn.scalars(query)).all())

