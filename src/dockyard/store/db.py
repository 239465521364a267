"""Engine creation and the two ways in: ``read()`` and ``write()``.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed row survives power loss, which a
201 promises) and a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue on the lock instead of failing on upgrade. PostgreSQL gets a pooled engine with a
statement timeout. The same query code runs on both.

This module is the database's seam: a database that cannot be reached, refuses connections,
stays locked past the busy timeout or times out becomes ``DatabaseUnavailable`` (503 with
``Retry-After``), a full SQLite volume ``StorageFull`` (507), and a value the database refuses
(too long, out of range, not text: a check missing at the edge) ``ValueInvalid`` (400), here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from dockyard.config import DatabaseConfig
from dockyard.errors import DatabaseUnavailable, RegistryError, StorageFull, ValueInvalid
from dockyard.store.asyncsql import AsyncConnection, AsyncEngine, create_async_engine

_WRITE = "dockyard_write"
log = logging.getLogger("dockyard.db")
# asyncpg's exceptions that say the server is gone, refuses us or took too long (by class name:
# SQLite workers never import asyncpg).
_ASYNCPG_UNAVAILABLE = frozenset({
    "PostgresConnectionError", "ConnectionDoesNotExistError", "ConnectionFailureError",
    "CannotConnectNowError", "TooManyConnectionsError", "InterfaceError", "QueryCanceledError",
    "AdminShutdownError", "CrashShutdownError", "ServerNotReadyError", "ConnectionRejectionError",
})


_SQLITE_UNAVAILABLE = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
                                 sqlite3.SQLITE_IOERR})


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (``orig``) and what it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__


def _is_full(error: BaseException) -> bool:
    return any(isinstance(e, sqlite3.OperationalError) and (
        getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(e))
        for e in _causes(error))


def _is_locked(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)) or "locked" in str(error)


def _is_unavailable(error: BaseException) -> bool:
    for e in _causes(error):
        if isinstance(e, sqlite3.Error):
            # Only the lock and the file itself: "no such table" and friends are bugs, not outages.
            code = getattr(e, "sqlite_errorcode", None)
            return (code is not None and code & 0xFF in _SQLITE_UNAVAILABLE) or "locked" in str(e)
        if isinstance(e, sa.exc.DBAPIError) and e.connection_invalidated:
            return True
        # Sockets only: an OSError of the disk (ENOSPC from a blob write inside a transaction)
        # is the storage's to translate, not a database outage.
        if isinstance(e, sa.exc.TimeoutError | ConnectionError | socket.gaierror | TimeoutError):
            return True
        if any(cls.__name__ in _ASYNCPG_UNAVAILABLE and cls.__module__.startswith("asyncpg")
               for cls in type(e).__mro__):
            return True
    return False


class OutageLog:
    """What the operator reads in the log about a failing database: one line per kind of failure
    every ``interval`` seconds (with how many more there were), not one per request, and one line
    when the database answers again after such a warning: when the kinds of operation that failed
    (reads, writes) have each succeeded since (a SQLite lock stops writes but not reads).
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.since: float | None = None  # when the first warning of this outage was logged
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}
        self._failing: set[str] = set()

    def failed(self, operation: str, level: int, what: str, error: BaseException) -> None:
        """Note one failure of ``operation`` ("read", "write"); its kind is ``what`` and the class
        of the innermost error (refused, timed out, locked)."""
        now = time.monotonic()
        self._failing.add(operation)
        # The innermost cause says what happened (SQLAlchemy's wrapper adds SQL and links), but
        # a timeout's own cause is the cancellation it used, which says nothing.
        *_, innermost = (cause for cause in _causes(error) if not isinstance(cause, asyncio.CancelledError))
        kind = f"{what}/{type(innermost).__name__}"
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._folded[kind] = self._folded.get(kind, 0) + 1
            return
        self._last[kind] = now
        if self.since is None:
            self.since = now
        folded = self._folded.pop(kind, 0)
        message = " ".join(str(innermost).split())[:300] or "timed out"
        more = f" (and {folded} more in the last {now - last:.0f}s)" if folded and last is not None else ""
        until = "answer 507 until space is freed" if level >= logging.ERROR else "answer 503 until it is back"
        log.log(level, "%s: %s: %s%s; requests that need the database %s",
                what, type(innermost).__name__, message, more, until)

    @property
    def failing(self) -> bool:
        return bool(self._failing)

    def succeeded(self, operation: str) -> None:
        self._failing.discard(operation)
        if self.since is not None and not self._failing:
            log.warning("database available again (first failure logged %.1fs ago)", time.monotonic() - self.since)
            self.since = None


outages = OutageLog()


def _is_bad_value(error: BaseException) -> bool:
    """A value the database refused to store: too long for its column, a number out of range,
    text it cannot hold (SQLSTATE class 22, asyncpg's own check of an argument, sqlite3's)."""
    for e in _causes(error):
        if isinstance(e, sa.exc.DataError | sqlite3.DataError | OverflowError | UnicodeEncodeError):
            return True
        if any(cls.__name__ == "DataError" and cls.__module__.startswith("asyncpg") for cls in type(e).__mro__):
            return True
    return False


@contextmanager
def translate_failures(operation: str = "read") -> Iterator[None]:
    """The seam: a database that failed becomes ``DatabaseUnavailable`` or ``StorageFull``."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        if _is_bad_value(exc):
            # A check at the edge is missing: a 400 for the client, and a line to find it by.
            log.warning("the database refused a value: %s: %s", type(exc).__name__, str(exc)[:300])
            raise ValueInvalid() from exc
        if _is_full(exc):
            outages.failed(operation, logging.ERROR, "the database volume is full", exc)
            raise StorageFull("the registry's database volume is full: nothing was stored; retry once "
                              "the operator has freed space") from exc
        if _is_unavailable(exc):
            outages.failed(operation, logging.WARNING, "database unavailable", exc)
            raise DatabaseUnavailable() from exc
        raise
    else:
        if outages.failing:
            outages.succeeded(operation)


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
        with translate_failures():
            if isinstance(self._hot, HotReader):
                try:
                    return self._hot.first(statement, params)
                except sqlite3.OperationalError as exc:
                    if not _is_locked(exc):
                        raise
                # Locked (a checkpoint, another process's exclusive lock): the pool path below
                # waits the full busy timeout in a thread, not on the event loop.
            elif isinstance(self._hot, PostgresHotReader):
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
        with translate_failures():
            async with self.engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block exits without an exception."""
        with translate_failures("write"):
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
    """A read-only sqlite3 connection for hot-path lookups, opened on first use.

    It runs on the event loop, so it waits for a lock only briefly (``BUSY_TIMEOUT_MS``); a
    lookup that finds the database locked takes the pool's path, which waits in a thread.
    """

    BUSY_TIMEOUT_MS = 50

    def __init__(self, url: str) -> None:
        self.path = make_url(url).database or ":memory:"
        self._conn: sqlite3.Connection | None = None
        self._statements = _StatementCache(sqlite.dialect)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute(f"PRAGMA busy_timeout={self.BUSY_TIMEOUT_MS}")
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
    """Hot-path lookups as prepared statements on a small asyncpg pool, opened on first use.

    Every step has a bound: opening a connection (``connect_timeout``), waiting for a free one
    (``pool_timeout``) and the lookup, which a live server answers in well under a millisecond
    (``connect_timeout`` too, as the pre-ping of the engine's pool; a silent server fails the
    request within it, not after ``command_timeout``); a connection whose query timed out is
    closed, not handed back, and the pool replaces dead connections by itself when the server
    returns. It keeps no connection floor (``min_size=0``): a pool with one would try, and log,
    to restore it all through an outage.
    """

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
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=0, max_size=self.settings.pool_size, server_settings=server_settings,
                    timeout=self.settings.connect_timeout, command_timeout=self.settings.command_timeout)
            return self._pool

    async def first(self, statement: sa.Select[Any], params: dict[str, Any]) -> tuple[Any, ...] | None:
        sql, args = self._statements.compile(statement, params)
        pool = self._pool or await self._get_pool()
        async with pool.acquire(timeout=self.settings.pool_timeout) as conn:
            try:
                row = await conn.fetchrow(sql, *args, timeout=self.settings.connect_timeout)
            except TimeoutError:
                conn.terminate()  # its answer may still come: never reuse it
                raise
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
                                     connect_args={"timeout": settings.busy_timeout_ms / 1000})
        _configure_sqlite(engine, settings.busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg"):
        # Bounds on opening a connection and on every query (the pre-ping included), so a server
        # that stopped answering fails requests with 503 instead of holding them.
        connect_args.update(timeout=settings.connect_timeout, command_timeout=settings.command_timeout)
        if settings.statement_timeout_ms:
            connect_args["server_settings"] = {"statement_timeout": str(settings.statement_timeout_ms)}
    engine = create_async_engine(url, echo=settings.echo, pool_size=settings.pool_size,
                                 max_overflow=settings.max_overflow, pool_timeout=settings.pool_timeout,
                                 pool_pre_ping=True, connect_args=connect_args)
    if url.startswith("postgresql+asyncpg"):
        _bound_pre_ping(engine, settings.connect_timeout)
    return engine


def _bound_pre_ping(engine: AsyncEngine, seconds: float) -> None:
    """Ping a pooled connection before use within ``seconds``, not ``command_timeout``.

    SQLAlchemy's asyncpg ping (a BEGIN, the ping, a ROLLBACK) waits up to the command timeout
    for each, so with a server that stopped answering every request on a pooled connection would
    hang that long before its 503. A live server answers a ping in far less than the time to open
    a connection, so that bound is used; a ping that times out fails the request (503) and its
    connection is discarded.
    """
    def do_ping(dbapi_connection: Any) -> bool:
        try:
            await_only(dbapi_connection.driver_connection.fetchrow(";", timeout=seconds))
        except Exception as error:
            dbapi_connection._handle_exception(error)  # asyncpg's errors as the DB-API's, as ping() does
        return True

    engine.sync_engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's begin event, below, issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (f"busy_timeout={busy_timeout_ms}", "journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       "cache_size=-16000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
