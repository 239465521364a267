"""The schema revision this code expects, checked without importing Alembic (workers stay lean).

``HEAD`` must name the newest migration in ``store/migrations/versions``; a test keeps them equal.
"""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store.db import Database

HEAD = "0006"


async def current(db: Database) -> str | None:
    try:
        async with db.read() as conn:
            found = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
            return None if found is None else str(found)
    except sa.exc.DBAPIError:
        return None  # no alembic_version table: an empty database


async def is_current(db: Database) -> bool:
    return await current(db) == HEAD
