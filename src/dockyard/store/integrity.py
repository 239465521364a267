"""What the integrity scrub reads and writes: blob rows in digest order, what it found, and the
claims that decide whether a file in storage that no row names may go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware, utcnow
from dockyard.store.schema import blob_deletions, blob_pins, blobs
from dockyard.store.statements import insert_ignore


@dataclass(frozen=True, slots=True)
class BlobRow:
    digest: str
    size: int
    corrupt_at: datetime | None


async def blobs_after(conn: AsyncConnection, after: str | None, limit: int) -> list[BlobRow]:
    """The next ``limit`` blob rows in digest order, after ``after`` (from the first if None)."""
    query = sa.select(blobs.c.digest, blobs.c.size, blobs.c.corrupt_at).order_by(blobs.c.digest).limit(limit)
    if after is not None:
        query = query.where(blobs.c.digest > after)
    return [BlobRow(r.digest, int(r.size), aware(r.corrupt_at)) for r in await conn.execute(query)]


async def count_after(conn: AsyncConnection, after: str | None) -> tuple[int, int]:
    """How many blob rows, and how many bytes, come after ``after``."""
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(blobs.c.size), 0))
    if after is not None:
        query = query.where(blobs.c.digest > after)
    row = (await conn.execute(query)).one()
    return int(row[0]), int(row[1])


async def mark_verified(conn: AsyncConnection, digest: str) -> bool:
    """The bytes re-hashed to their digest: verified now, and served again if they were corrupt
    (restored behind the registry's back). True if the blob was marked corrupt until now."""
    was_corrupt = await conn.scalar(sa.select(blobs.c.corrupt_at.is_not(None)).where(blobs.c.digest == digest))
    await conn.execute(sa.update(blobs).where(blobs.c.digest == digest)
                       .values(verified_at=utcnow(), corrupt_at=None))
    return bool(was_corrupt)


async def mark_corrupt(conn: AsyncConnection, digest: str) -> bool:
    """Never serve these bytes again; True if the blob was not marked corrupt before."""
    result = await conn.execute(sa.update(blobs).where(blobs.c.digest == digest, blobs.c.corrupt_at.is_(None))
                                .values(corrupt_at=utcnow()))
    return result.rowcount > 0


async def is_recorded(conn: AsyncConnection, digest: str) -> bool:
    """Whether a blob row names the digest and no collector is deleting it."""
    row = await conn.scalar(sa.select(blobs.c.digest).where(blobs.c.digest == digest))
    gone = await conn.scalar(sa.select(blob_deletions.c.digest).where(blob_deletions.c.digest == digest))
    return row is not None and gone is None


async def unclaimed(conn: AsyncConnection, digests: Sequence[str]) -> set[str]:
    """Which of ``digests`` no blob row names, no upload has pinned and no collector is deleting."""
    if not digests:
        return set()
    claimed: set[str] = set()
    for column in (blobs.c.digest, blob_pins.c.digest, blob_deletions.c.digest):
        claimed.update((await conn.scalars(sa.select(column).where(column.in_(digests)))).all())
    return set(digests) - claimed


async def is_claimed(conn: AsyncConnection, digest: str) -> bool:
    """Whether a blob row names the digest or an upload has pinned it."""
    for column in (blobs.c.digest, blob_pins.c.digest):
        if await conn.scalar(sa.select(column).where(column == digest).limit(1)) is not None:
            return True
    return False


async def begin_deletion(conn: AsyncConnection, digest: str) -> bool:
    """Tombstone the digest before its bytes go (uploads of it wait); False if one exists already
    (another deleter has it)."""
    return await insert_ignore(conn, blob_deletions, [{"digest": digest, "started_at": utcnow()}]) > 0

