"""Databases for tests: SQLite always; PostgreSQL when ``DOCKYARD_TEST_POSTGRES_URL`` is reachable.

Each PostgreSQL test gets a fresh database cloned from a template that was migrated once per run,
and every database this run created is dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from dockyard.config import DatabaseConfig
from dockyard.store import migrate
from dockyard.store.db import Database

POSTGRES_ENV = "DOCKYARD_TEST_POSTGRES_URL"


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'dockyard.db'}"


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def postgres_unavailable_reason() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return f"{POSTGRES_ENV} is not set"
    try:
        conn = await asyncpg.connect(_dsn(url), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {POSTGRES_ENV} is unreachable: {exc}"
    await conn.close()
    return None


@dataclass
class PostgresDatabases:
    """Creates databases for one test run and drops them all at the end."""

    url: str
    prefix: str = field(default_factory=lambda: f"dockyard_t{secrets.token_hex(4)}")
    created: list[str] = field(default_factory=list)
    template: str | None = None

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(_dsn(self.url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> str:
        """A new, migrated database; returns its SQLAlchemy URL."""
        if self.template is None:
            self.template = f"{self.prefix}_template"
            await self._admin(f'CREATE DATABASE "{self.template}"')
            self.created.append(self.template)
            db = Database(self._url(self.template), DatabaseConfig())
            try:
                await migrate.upgrade(db)
            finally:
                await db.dispose()
        name = f"{self.prefix}_{len(self.created)}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self._url(name)

    async def create_empty(self) -> str:
        """A new database with no schema at all; returns its SQLAlchemy URL."""
        name = f"{self.prefix}_{len(self.created)}"
        await self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self._url(name)

    def _url(self, database: str) -> str:
        return make_url(self.url).set(database=database).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        for name in reversed(self.created):
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()
