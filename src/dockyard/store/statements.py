"""Dialect-aware statement builders shared by the query modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    # Imported here: a worker loads only the dialect it talks to (each costs memory per worker).
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql
        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite
    return sqlite.insert(table)


async def insert_ignore(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping any that collide with an existing key; how many went in."""
    if not rows:
        return 0
    result = await conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))
    return max(int(result.rowcount or 0), 0)


async def upsert(conn: AsyncConnection, table: sa.Table, row: dict[str, Any], keys: Sequence[str],
                 updates: dict[str, Any] | None = None) -> None:
    """Insert a row, or update the row with the same keys: its non-key columns to ``row``'s, or
    as ``updates`` says (expressions on the existing row's columns)."""
    statement = _insert(conn, table).values(**row)
    if updates is None:
        updates = {name: statement.excluded[name] for name in row if name not in keys}
    await conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates))
