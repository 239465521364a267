"""The database seam's translation table and its log lines (store/db.py ``translate_failures``).

What a client sees for each kind of database failure, and that an outage makes one warning per
kind of failure, not one per request. The real failures (PostgreSQL refusing or silent, SQLite
locked) are in tests/e2e/test_db_faults.py and tests/integration/test_db_faults.py.
"""

from __future__ import annotations

import errno
import logging
import sqlite3

import pytest

from dockyard.errors import DatabaseUnavailable, StorageFull
from dockyard.store.db import OutageLog, translate_failures


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize("failure", [
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    TimeoutError(),
    sqlite_error("database is locked", sqlite3.SQLITE_BUSY),
])
def test_outages_become_503_with_retry_after(failure: Exception) -> None:
    """A refused connection, a timeout and a SQLite lock held past the busy timeout answer 503
    with Retry-After (UNAVAILABLE), the original error kept as the cause for the log."""
    with pytest.raises(DatabaseUnavailable) as raised, translate_failures():
        raise failure
    assert raised.value.status == 503
    assert raised.value.code == "UNAVAILABLE"
    assert raised.value.headers["Retry-After"].isdigit()
    assert raised.value.__cause__ is failure


def test_full_sqlite_volume_becomes_507() -> None:
    """SQLite's "database or disk is full" answers 507 (StorageFull), not 503 or 500."""
    with pytest.raises(StorageFull) as raised, translate_failures("write"):
        raise sqlite_error("database or disk is full", sqlite3.SQLITE_FULL)
    assert raised.value.status == 507


@pytest.mark.parametrize("failure", [
    sqlite_error("no such table: users", sqlite3.SQLITE_ERROR),  # a bug, not an outage
    OSError(errno.ENOSPC, "No space left on device"),  # the blob storage's to translate
    ValueError("not the database's"),
])
def test_other_errors_pass_through(failure: Exception) -> None:
    """Only outages are translated: a bug stays a bug (a 500 with its traceback in the log), and a
    full disk under the blob storage is the storage driver's to report."""
    with pytest.raises(type(failure)) as raised, translate_failures():
        raise failure
    assert raised.value is failure


def test_an_outage_logs_one_warning_per_kind_then_one_recovery(caplog: pytest.LogCaptureFixture) -> None:
    """A hundred failing requests log one warning per kind of failure (counted in the next one),
    and the recovery is logged once, when reads and writes (whichever failed) work again."""
    outages = OutageLog(interval=3600)
    with caplog.at_level(logging.WARNING, logger="dockyard.db"):
        for _ in range(100):
            outages.failed("read", logging.WARNING, "database unavailable", ConnectionRefusedError("refused"))
            outages.failed("write", logging.WARNING, "database unavailable", ConnectionRefusedError("refused"))
        outages.failed("write", logging.WARNING, "database unavailable", TimeoutError())
        outages.succeeded("read")  # writes still fail: not back yet
        outages.succeeded("write")
        outages.succeeded("write")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3, messages
    assert "ConnectionRefusedError: refused" in messages[0]
    assert "503" in messages[0]
    assert "TimeoutError: timed out" in messages[1]
    assert "database available again" in messages[2]
