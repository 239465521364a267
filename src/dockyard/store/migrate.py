"""Schema migrations with Alembic, run on the caller's engine."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from dockyard.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: sa.Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(_current)


async def is_current(db: Database) -> bool:
    return await current_revision(db) == head_revision()


# Any fixed number: every dockyard migrating the same PostgreSQL database takes this lock.
MIGRATION_LOCK = 0x646F636B79617264  # "dockyard"


async def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str]:
    """Migrate to ``revision``; returns (before, after). Safe to run from several nodes at once:
    on PostgreSQL they queue on an advisory lock, on SQLite on the write lock."""
    def run(connection: sa.Connection) -> tuple[str | None, str]:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        before = _current(connection)
        command.upgrade(alembic_config(connection), revision)
        after = _current(connection)
        assert after is not None
        return before, after

    async with db.engine.connect() as conn:
        conn = await conn.execution_options(dockyard_write=True)
        result = await conn.run_sync(run)
        await conn.commit()
        return result
