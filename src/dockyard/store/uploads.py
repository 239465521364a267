"""Upload sessions: which repository an upload belongs to, and when it was last touched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import repositories, uploads


async def create(conn: AsyncConnection, upload_id: str, repository_id: int) -> None:
    now = utcnow()
    await conn.execute(sa.insert(uploads).values(
        id=upload_id, repository_id=repository_id, created_at=now, updated_at=now))


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    repository_id: int
    hash_offset: int | None
    hash_state: bytes | None
    storage_state: bytes | None


async def find(conn: AsyncConnection, upload_id: str, repository: str) -> Upload | None:
    """The upload, if it exists and belongs to ``repository``."""
    query = (sa.select(uploads.c.id, uploads.c.repository_id, uploads.c.hash_offset, uploads.c.hash_state,
                       uploads.c.storage_state)
             .select_from(uploads.join(repositories))
             .where(uploads.c.id == upload_id, repositories.c.name == repository))
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Upload(row.id, row.repository_id, row.hash_offset, None if row.hash_state is None else bytes(row.hash_state),
                  None if row.storage_state is None else bytes(row.storage_state))


async def hold(conn: AsyncConnection, upload_id: str) -> bool:
    """Lock the upload's row (FOR SHARE) until the transaction ends; False if it is gone (ended,
    expired, or deleted with its repository)."""
    found = await conn.scalar(sa.select(uploads.c.id).where(uploads.c.id == upload_id).with_for_update(read=True))
    return found is not None


async def record_progress(conn: AsyncConnection, upload_id: str, offset: int | None,
                          hash_state: bytes | None, storage_state: bytes | None) -> None:
    """Mark the upload active now and keep what its next request resumes from (None clears)."""
    await conn.execute(sa.update(uploads).where(uploads.c.id == upload_id).values(
        updated_at=utcnow(), hash_offset=offset, hash_state=hash_state, storage_state=storage_state))


async def delete(conn: AsyncConnection, upload_id: str) -> bool:
    result = await conn.execute(sa.delete(uploads).where(uploads.c.id == upload_id))
    return result.rowcount > 0


async def claim_expired(conn: AsyncConnection, before: datetime, limit: int) -> list[str]:
    """Delete up to ``limit`` sessions idle since ``before`` and return their ids.

    On PostgreSQL the rows are locked with SKIP LOCKED, so nodes purging at once each take
    different sessions; SQLite's write transactions run one at a time anyway.
    """
    query = (sa.select(uploads.c.id).where(uploads.c.updated_at < before).order_by(uploads.c.updated_at)
             .limit(limit).with_for_update(skip_locked=True))
    claimed = list((await conn.scalars(query)).all())
    if claimed:
        await conn.execute(sa.delete(uploads).where(uploads.c.id.in_(claimed)))
    return claimed


async def expired(conn: AsyncConnection, before: datetime, limit: int = 500) -> list[str]:
    query = sa.select(uploads.c.id).where(uploads.c.updated_at < before).limit(limit)
    return list((await conn.scalars(query)).all())


async def all_ids(conn: AsyncConnection) -> set[str]:
    return set((await conn.scalars(sa.select(uploads.c.id))).all())
