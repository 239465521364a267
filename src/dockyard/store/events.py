"""The event table: the audit log and the outbox (DESIGN.md decision 5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware
from dockyard.store.schema import events


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    created_at: datetime
    name: str
    project: str | None
    repository: str | None
    digest: str | None
    tag: str | None
    actor: str | None
    address: str | None
    detail: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.created_at.isoformat(), "action": self.name, "project": self.project,
                "repository": self.repository, "digest": self.digest, "tag": self.tag, "actor": self.actor,
                "address": self.address, "detail": self.detail}


async def insert_many(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(sa.insert(events), rows)


async def search(conn: AsyncConnection, *, project: str | None = None, repository: str | None = None,
                 actor: str | None = None, action: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, projects: list[str] | None = None,
                 before_id: int | None = None, limit: int = 100) -> list[EventRow]:
    """Events matching every given filter, newest first. ``action`` may end in ``*`` (``login.*``);
    ``projects`` restricts to those projects (a caller who may see only some)."""
    query = sa.select(events).order_by(events.c.id.desc()).limit(limit)
    if project is not None:
        query = query.where(events.c.project == project)
    if projects is not None:
        query = query.where(events.c.project.in_(projects))
    if repository is not None:
        query = query.where(events.c.repository == repository)
    if actor is not None:
        query = query.where(events.c.actor == actor)
    if action is not None:
        if action.endswith("*"):
            query = query.where(events.c.name.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(events.c.name == action)
    if since is not None:
        query = query.where(events.c.created_at >= since)
    if until is not None:
        query = query.where(events.c.created_at < until)
    if before_id is not None:
        query = query.where(events.c.id < before_id)
    return [EventRow(r.id, aware(r.created_at), r.name, r.project, r.repository, r.digest,
                     r.tag, r.actor, r.address, r.detail)
            for r in await conn.execute(query)]
