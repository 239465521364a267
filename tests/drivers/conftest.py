"""The ``driver`` fixture: every storage driver, each a fresh and empty instance per test.

To add a driver, add one factory to ``DRIVER_FACTORIES``: an async context manager that yields an
empty driver and removes what the test left behind.

``s3`` runs against a real S3 endpoint: the session fixture ``s3_endpoint`` (``tests/support/s3.py``)
starts a single-node Ceph + radosgw (``ci/s3/start.sh``) once per run, the first time an S3 test
needs it, and stops it at the end. Each test gets a fresh random prefix in bucket ``dockyard-test``
that is deleted afterwards. ``DOCKYARD_TEST_S3=off`` skips the S3 tests; ``DOCKYARD_TEST_S3_ENDPOINT``
(with ``_ACCESS_KEY``, ``_SECRET_KEY``, ``_REGION``) uses an existing endpoint instead of starting Ceph.
Without Ceph's Debian packages they are skipped with the reason shown, except with ``CI=true``,
where they fail. Only this suite: ``make s3``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path

import pytest

from dockyard.storage.driver import PathNotFound, StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver
from tests.support.s3 import BUCKET, CEPH, S3Endpoint, delete_prefix

DriverFactory = Callable[[Path], AbstractAsyncContextManager[StorageDriver]]


@asynccontextmanager
async def filesystem_driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
    yield FilesystemDriver(tmp_path / "storage", fsync=True)


@asynccontextmanager
async def memory_driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
    yield MemoryDriver()


@asynccontextmanager
async def s3_driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
    from dockyard.config import S3Config
    from dockyard.storage.s3 import S3Driver

    endpoint = CEPH.endpoint()  # started by the ``s3_endpoint`` session fixture, which also stops it
    prefix = f"t-{secrets.token_hex(8)}"
    driver = S3Driver(S3Config(
        endpoint=endpoint.endpoint, region=endpoint.region, bucket=BUCKET, prefix=prefix,
        access_key=endpoint.access_key, secret_key=endpoint.secret_key, path_style=True, redirect=False,
    ))
    try:
        yield driver
    finally:
        with suppress(PathNotFound):
            await driver.delete("")
        # whatever the driver's own delete left (e.g. unfinished multipart uploads)
        await asyncio.to_thread(delete_prefix, endpoint, BUCKET, prefix)


DRIVER_FACTORIES: dict[str, DriverFactory] = {
    "filesystem": filesystem_driver,
    "memory": memory_driver,
    "s3": s3_driver,
}

# Needs a service: the ``driver`` fixture requests ``s3_endpoint`` for these before calling the factory.
S3_BACKED = {"s3"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """The S3 endpoint for this run, with bucket ``dockyard-test``; see ``tests/support/s3.py``.

    Starts single-node Ceph once per session (``ci/s3/start.sh``, temporary ``BASE``, free ports) and
    runs ``ci/s3/stop.sh`` at session end. Skipped with ``DOCKYARD_TEST_S3=off`` or, outside CI, when
    Ceph's Debian packages are missing; with ``CI=true`` any failure to get an endpoint fails.
    ``DOCKYARD_TEST_S3_ENDPOINT`` (+ ``_ACCESS_KEY``/``_SECRET_KEY``/``_REGION``) uses an existing one.
    """
    try:
        yield CEPH.endpoint()
    finally:
        CEPH.stop()


@pytest.fixture(params=list(DRIVER_FACTORIES))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    if request.param in S3_BACKED:
        request.getfixturevalue("s3_endpoint")
    async with DRIVER_FACTORIES[request.param](tmp_path) as instance:
        yield instance
