"""The event table: the audit log and the outbox (DESIGN.md decision 5)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.store.clock import utcnow
from dockyard.store.schema import events


async def insert(conn: AsyncConnection, name: str, *, repository: str | None, digest: str | None,
                 tag: str | None, actor: str | None, detail: dict[str, Any] | None) -> None:
    await conn.execute(sa.insert(events).values(
        created_at=utcnow(), name=name, repository=repository, digest=digest, tag=tag, actor=actor,
        detail=detail))

