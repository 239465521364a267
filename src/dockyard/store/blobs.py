"""Blobs known to the registry and their links to repositories."""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.schema import blobs, repositories, repository_blobs
from dockyard.store.statements import insert_ignore

LINKED_SIZE = (sa.select(blobs.c.size)
               .select_from(repository_blobs.join(blobs).join(repositories))
               .where(repositories.c.name == sa.bindparam("repository"),
                      repository_blobs.c.digest == sa.bindparam("digest")))


async def linked_size(conn: AsyncConnection, repository: str, digest: str, *, share: bool = False) -> int | None:
    """The blob's size if ``repository`` links it, else None (inside the caller's transaction);
    ``share`` locks the link and the blob against the collector until the transaction ends."""
    query = LINKED_SIZE.with_for_update(read=True, of=[repository_blobs, blobs]) if share else LINKED_SIZE
    return await conn.scalar(query, {"repository": repository, "digest": digest})


async def linked_size_now(db: Database, repository: str, digest: str) -> int | None:
    """The same, as a hot-path read outside any transaction (blob GET and HEAD)."""
    row = await db.first(LINKED_SIZE, repository=repository, digest=digest)
    return None if row is None else int(row[0])


async def record(conn: AsyncConnection, digest: str, size: int) -> None:
    await insert_ignore(conn, blobs, [{"digest": digest, "size": size, "created_at": utcnow()}])


async def link(conn: AsyncConnection, repository_id: int, digest: str) -> None:
    await insert_ignore(conn, repository_blobs,
                        [{"repository_id": repository_id, "digest": digest, "created_at": utcnow()}])


async def unlink(conn: AsyncConnection, repository_id: int, digest: str) -> bool:
    result = await conn.execute(sa.delete(repository_blobs).where(
        repository_blobs.c.repository_id == repository_id, repository_blobs.c.digest == digest))
    return result.rowcount > 0


async def repositories_linking(conn: AsyncConnection, digest: str, limit: int = 100) -> list[str]:
    """Names of repositories that link the blob (for a mount without ``from``)."""
    query = (sa.select(repositories.c.name).select_from(repository_blobs.join(repositories))
             .where(repository_blobs.c.digest == digest).order_by(repositories.c.name).limit(limit))
    return list((await conn.scalars(query)).all())


async def missing_in_repository(conn: AsyncConnection, repository_id: int, digests: list[str]) -> list[str]:
    """Which of ``digests`` the repository does not link; the links it has are locked ``FOR SHARE``
    until the transaction ends, so the collector cannot remove them meanwhile."""
    if not digests:
        return []
    query = sa.select(repository_blobs.c.digest).where(
        repository_blobs.c.repository_id == repository_id, repository_blobs.c.digest.in_(digests)
    ).with_for_update(read=True)
    present = set((await conn.scalars(query)).all())
    return [d for d in digests if d not in present]
