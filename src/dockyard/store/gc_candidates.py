"""GC candidates: hints that something may have become garbage, and from when the collector may
look at it. The collector re-checks every candidate; adding one never deletes anything."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import gc_candidates


async def add_candidates(conn: AsyncConnection, kind: str, repository_id: int | None, digests: Iterable[str],
                         reason: str, due_at: datetime) -> None:
    """One candidate of ``kind`` ("manifest", "link" or "blob") per digest, due at ``due_at``."""
    now = utcnow()
    rows = [{"kind": kind, "repository_id": repository_id, "digest": digest, "reason": reason,
             "created_at": now, "due_at": due_at} for digest in sorted(set(digests))]
    if rows:
        await conn.execute(sa.insert(gc_candidates), rows)
