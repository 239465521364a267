"""Blobs known to the registry and their links to repositories."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.schema import blobs, repositories, repository_blobs
from dockyard.store.statements import insert_ignore

# The blob GET/HEAD lookup, one query: the size, and whether the scrub found the bytes corrupt.
LINKED_SIZE = (sa.select(blobs.c.size, blobs.c.corrupt_at)
               .select_from(repository_blobs.join(blobs).join(repositories))
               .where(repositories.c.name == sa.bindparam("repository"),
                      repository_blobs.c.digest == sa.bindparam("digest")))


@dataclass(frozen=True, slots=True)
class LinkedBlob:
    size: int
    is_corrupt: bool  # the scrub found its bytes corrupt: never served until pushed again


async def linked_size(conn: AsyncConnection, repository: str, digest: str, *, share: bool = False) -> int | None:
    """The blob's size if ``repository`` links it and its bytes are sound, else None (inside the
    caller's transaction; a mount of a corrupt blob is refused, so the client uploads it again);
    ``share`` locks the link and the blob against the collector until the transaction ends."""
    query = LINKED_SIZE.with_for_update(read=True, of=[repository_blobs, blobs]) if share else LINKED_SIZE
    row = (await conn.execute(query, {"repository": repository, "digest": digest})).first()
    return None if row is None or row.corrupt_at is not None else int(row.size)


async def linked_blob_now(db: Database, repository: str, digest: str) -> LinkedBlob | None:
    """The blob if ``repository`` links it, as a hot-path read outside any transaction (blob GET and HEAD)."""
    row = await db.first(LINKED_SIZE, repository=repository, digest=digest)
    return None if row is None else LinkedBlob(int(row[0]), row[1] is not None)


async def is_corrupt(conn: AsyncConnection, digest: str) -> bool:
    """Whether the scrub found this blob's stored bytes corrupt (an upload of it then replaces them)."""
    found = await conn.scalar(sa.select(blobs.c.corrupt_at).where(blobs.c.digest == digest))
    return found is not None


async def clear_corrupt(conn: AsyncConnection, digest: str) -> None:
    """Verified bytes are in place again: serve the blob."""
    await conn.execute(sa.update(blobs).where(blobs.c.digest == digest, blobs.c.corrupt_at.is_not(None))
                       .values(corrupt_at=None, verified_at=utcnow()))


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
