"""Engine creation and the two ways in: ``read()`` and ``write()``.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed row survives power loss, which a
201 promises) and a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue on the lock instead of failing on upgrade. PostgreSQL gets a pooled engine with a
statement timeout. The same query code runs on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from dockyard.config import DatabaseConfig
from dockyard.store.asyncsql import AsyncConnection, AsyncEngine, create_async_engine

_WRITE = "dockyard_write"


class Database:
    def __init__(self, url: str, settings: DatabaseConfig) -> None:
        self.url = url
        self.engine = _create_engine(url, settings)
        self._hot: HotReader | PostgresHotReader | None = None
        if url.startswith("sqlite"):
            self._hot = HotReader(url)
        elif url.startswith("postgresql+asyncpg"):
            self._hot = PostgresHotReader(url, settings)

    async def first(self, statement: sa.Select[Any], **params: Any) -> tuple[Any, ...] | None:
        """The first row of a hot-path read, as a plain tuple of the selected columns.

        On SQLite the statement, compiled once, runs on a plain ``sqlite3`` connection right on
        the event loop: a WAL reader never waits for a writer, and an indexed lookup takes
        microseconds, far less than a hop to a worker thread. On PostgreSQL it runs as a prepared
        statement on a small asyncpg pool, without SQLAlchemy's layers. Elsewhere it goes through
        the pool. Only for statements whose columns need no type conversion (ints, strings, bytes).
        """
        if isinstance(self._hot, HotReader):
            return self._hot.first(statement, params)
        if isinstance(self._hot, PostgresHotReader):
            return await self._hot.first(statement, params)
        async with self.read() as conn:
            row = (await conn.execute(statement, params)).first()
        return None if row is None else tuple(row)

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
        if isinstance(self._hot, HotReader):
            self._hot.close()
        elif isinstance(self._hot, PostgresHotReader):
            await self._hot.close()
        await self.engine.dispose()


class _StatementCache:
    """Hot statements compiled once for one dialect: SQL text and the order of its parameters."""

    def __init__(self, dialect: Callable[[], sa.Dialect]) -> None:
        self._dialect = dialect
        self._compiled: dict[int, tuple[sa.Select[Any], str, tuple[str, ...]]] = {}

    def compile(self, statement: sa.Select[Any], params: dict[str, Any]) -> tuple[str, list[Any]]:
        cached = self._compiled.get(id(statement))
        if cached is None or cached[0] is not statement:
            compiled = statement.compile(dialect=self._dialect())
            cached = (statement, str(compiled), tuple(compiled.positiontup or ()))
            self._compiled[id(statement)] = cached
        return cached[1], [params[name] for name in cached[2]]


class HotReader:
    """A read-only sqlite3 connection for hot-path lookups, opened on first use."""

    def __init__(self, url: str) -> None:
        self.path = make_url(url).database or ":memory:"
        self._conn: sqlite3.Connection | None = None
        self._statements = _StatementCache(sqlite.dialect)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=2000")
            self._conn = conn
        return self._conn

    def first(self, statement: sa.Select[Any], params: dict[str, Any]) -> tuple[Any, ...] | None:
        sql, args = self._statements.compile(statement, params)
        row: tuple[Any, ...] | None = self._connection().execute(sql, args).fetchone()
        return row

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _asyncpg_dialect() -> sa.Dialect:
    from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg  # only workers on PostgreSQL load it

    dialect: sa.Dialect = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
    return dialect


class PostgresHotReader:
    """Hot-path lookups as prepared statements on a small asyncpg pool, opened on first use."""

    def __init__(self, url: str, settings: DatabaseConfig) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.settings = settings
        self._pool: Any = None  # an asyncpg.Pool (imported on first use: SQLite workers never load it)
        self._opening = asyncio.Lock()
        self._statements = _StatementCache(_asyncpg_dialect)

    async def _get_pool(self) -> Any:
        import asyncpg

        async with self._opening:
            if self._pool is None:
                server_settings = {"statement_timeout": str(self.settings.statement_timeout_ms)} \
                    if self.settings.statement_timeout_ms else {}
                self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.settings.pool_size,
                                                       server_settings=server_settings)
            return self._pool

    async def first(self, statement: sa.Select[Any], params: dict[str, Any]) -> tuple[Any, ...] | None:
        sql, args = self._statements.compile(statement, params)
        pool = self._pool or await self._get_pool()
        row = await pool.fetchrow(sql, *args)
        return None if row is None else tuple(row)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


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
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("busy_timeout=30000", "journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       "cache_size=-16000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
