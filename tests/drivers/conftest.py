"""The ``driver`` fixture: every storage driver, each a fresh and empty instance per test.

To add a driver, add one factory to ``DRIVER_FACTORIES``: an async context manager that yields an
empty driver and removes what the test left behind. A driver that needs a service (S3 needs an
endpoint and a bucket) skips itself when the service is not configured, for example::

    @asynccontextmanager
    async def s3_driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
        endpoint = os.environ.get("DOCKYARD_TEST_S3_ENDPOINT") or pytest.skip("no S3 endpoint")
        driver = S3Driver(endpoint=endpoint, bucket=..., prefix=f"test-{secrets.token_hex(8)}")
        try:
            yield driver
        finally:
            await driver.delete("")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver

DriverFactory = Callable[[Path], AbstractAsyncContextManager[StorageDriver]]


@asynccontextmanager
async def filesystem_driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
    yield FilesystemDriver(tmp_path / "storage", fsync=True)


@asynccontextmanager
async def memory_driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
    yield MemoryDriver()


DRIVER_FACTORIES: dict[str, DriverFactory] = {
    "filesystem": filesystem_driver,
    "memory": memory_driver,
}


@pytest.fixture(params=list(DRIVER_FACTORIES))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    async with DRIVER_FACTORIES[request.param](tmp_path) as instance:
        yield instance
