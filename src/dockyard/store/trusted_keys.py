"""The public keys a project trusts for cosign signatures (table ``trusted_keys``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import trusted_keys
from dockyard.store.statements import insert_ignore


@dataclass(frozen=True, slots=True)
class TrustedKey:
    id: int
    project_id: int
    name: str
    public_key: str  # PEM SubjectPublicKeyInfo
    fingerprint: str  # hex SHA-256 of the DER key
    created_at: datetime
    created_by: str | None


async def keys_of(conn: AsyncConnection, project_id: int) -> list[TrustedKey]:
    """The project's keys, by name."""
    rows = await conn.execute(sa.select(trusted_keys).where(trusted_keys.c.project_id == project_id)
                              .order_by(trusted_keys.c.name))
    return [TrustedKey(r.id, r.project_id, r.name, r.public_key, r.fingerprint, r.created_at, r.created_by)
            for r in rows]


async def add(conn: AsyncConnection, project_id: int, name: str, public_key: str, fingerprint: str,
              created_by: str | None) -> bool:
    """False if the project has a key of that name already."""
    return bool(await insert_ignore(conn, trusted_keys, [{
        "project_id": project_id, "name": name, "public_key": public_key, "fingerprint": fingerprint,
        "created_at": utcnow(), "created_by": created_by}]))


async def remove(conn: AsyncConnection, project_id: int, name: str) -> bool:
    result = await conn.execute(sa.delete(trusted_keys).where(trusted_keys.c.project_id == project_id,
                                                              trusted_keys.c.name == name))
    return result.rowcount > 0
