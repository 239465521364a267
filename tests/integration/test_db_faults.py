"""The database seam (store/db.py) against a real SQLite file that another connection locks.

The process-level behaviour (PostgreSQL down or silent, SQLite locked under a running server) is
in tests/e2e/test_db_faults.py; these check what is cheaper to see in process: the hot-path
reader, which runs on the event loop, never waits out the busy timeout there.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from dockyard.config import DatabaseConfig
from dockyard.errors import DatabaseUnavailable
from dockyard.store import migrate
from dockyard.store.accounts import USER_STATUS
from dockyard.store.db import Database
from tests.support.databases import sqlite_url


async def test_hot_reader_locked_out_answers_unavailable_without_blocking_the_loop(tmp_path: Path) -> None:
    """A lock that shuts out even readers (another process in exclusive locking mode) makes a
    hot-path lookup fail with ``DatabaseUnavailable`` (503) after the busy timeout, not with a raw
    sqlite3 error (500); the wait happens off the event loop, which keeps running other tasks
    meanwhile; and the lookup works again once the lock is gone."""
    url = sqlite_url(tmp_path)
    settings = DatabaseConfig(busy_timeout_ms=1500)
    setup = Database(url, settings)
    await migrate.upgrade(setup)
    await setup.dispose()

    locker = sqlite3.connect(tmp_path / "dockyard.db", isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")  # held: nobody else reads or writes until it ends
    db = Database(url, settings)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        with pytest.raises(DatabaseUnavailable):
            await db.first(USER_STATUS, name="admin")
        assert ticks > 0, "the event loop was blocked while the lookup waited for the lock"
        locker.execute("ROLLBACK")
        locker.close()
        assert await db.first(USER_STATUS, name="nobody") is None
    finally:
        ticking.cancel()
        locker.close()
        await db.dispose()
