"""The Alembic migrations create exactly the schema the code declares."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from dockyard.store import migrate
from dockyard.store.schema import metadata
from tests.integration.conftest import Registry


async def test_migrations_match_schema(registry: Registry) -> None:
    def diff(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with registry.parts.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_migrate_is_idempotent_and_current(registry: Registry) -> None:
    before, after = await migrate.upgrade(registry.parts.db)
    assert before == after == migrate.head_revision()
    assert await migrate.is_current(registry.parts.db)


def test_revision_head_names_the_newest_migration() -> None:
    from dockyard.store import revision
    assert revision.HEAD == migrate.head_revision()


async def test_revision_check_sees_an_empty_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dockyard.config import DatabaseConfig
    from dockyard.store import revision
    from dockyard.store.db import Database
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/empty.db", DatabaseConfig())
    try:
        assert await revision.current(db) is None
        assert not await revision.is_current(db)
        await migrate.upgrade(db)
        assert await revision.is_current(db)
    finally:
        await db.dispose()


async def test_concurrent_migrations_of_one_database(postgres) -> None:  # type: ignore[no-untyped-def]
    """Nodes of a cluster may all run `dockyard migrate` as they start: they must not collide.

    PostgreSQL only: a cluster's database. (SQLite is the one-node layout, migrated once by
    `serve` in one child process before its workers start.)"""
    import asyncio

    from dockyard.config import DatabaseConfig
    from dockyard.store.db import Database

    if postgres is None:
        pytest.skip("needs PostgreSQL (DOCKYARD_TEST_POSTGRES_URL)")
    url = await postgres.create_empty()
    databases = [Database(url, DatabaseConfig()) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate.upgrade(db) for db in databases))
        assert {after for _before, after in results} == {migrate.head_revision()}
        assert sum(before is None for before, _after in results) == 1, url
    finally:
        for db in databases:
            await db.dispose()


async def test_repositories_from_before_access_control_get_private_projects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from dockyard.config import DatabaseConfig
    from dockyard.store.db import Database
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/old.db", DatabaseConfig())
    try:
        await migrate.upgrade(db, "0003")
        async with db.write() as conn:
            for name in ("team-a/api", "team-a/web/x", "solo"):
                await conn.execute(sa.text("INSERT INTO repositories (name, created_at) VALUES (:n, '2026-01-01')"),
                                   {"n": name})
        await migrate.upgrade(db)
        async with db.read() as conn:
            rows = (await conn.execute(sa.text("SELECT name, public FROM projects ORDER BY name"))).all()
        assert [(name, bool(public)) for name, public in rows] == [("solo", False), ("team-a", False)]
    finally:
        await db.dispose()


async def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 2 item 4: SQLite in WAL mode; synchronous=FULL so a committed row survives power loss."""
    import sqlalchemy as sa

    from dockyard.config import DatabaseConfig
    from dockyard.store.db import Database
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/wal.db", DatabaseConfig())
    try:
        await migrate.upgrade(db)
        for opened in (db.read, db.write):
            async with opened() as conn:
                mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
                sync = (await conn.execute(sa.text("PRAGMA synchronous"))).scalar()
            assert (mode, sync) == ("wal", 2), opened
    finally:
        await db.dispose()
