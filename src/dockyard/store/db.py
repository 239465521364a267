"""Engine creation and the two ways in: ``read()`` and ``write()``.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed row survives power loss, which a
201 promises) and a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue on the lock instead of failing on upgrade. PostgreSQL gets a pooled engine with a
statement timeout. The same query code runs on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from dockyard.config import DatabaseConfig

_WRITE = "dockyard_write"


class Database:
    def __init__(self, url: str, settings: DatabaseConfig) -> None:
        self.url = url
        self.engine = _create_engine(url, settings)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a deferred transaction on SQLite: never blocks a writer)."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block exits without an exception."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{_WRITE: True})
            async with conn.begin():
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _create_engine(url: str, settings: DatabaseConfig) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=settings.echo, pool_size=settings.pool_size,
                                     max_overflow=settings.max_overflow,
                                     pool_timeout=settings.pool_timeout,
                                     connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg") and settings.statement_timeout_ms:
        connect_args["server_settings"] = {"statement_timeout": str(settings.statement_timeout_ms)}
    return create_async_engine(url, echo=settings.echo, pool_size=settings.pool_size,
                               max_overflow=settings.max_overflow, pool_timeout=settings.pool_timeout,
                               pool_pre_ping=True, connect_args=connect_args)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's begin event, below, issue BEGIN itself.
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       "busy_timeout=30000", "cache_size=-16000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
