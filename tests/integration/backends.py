"""A ``registry`` fixture over every backend: SQLite and PostgreSQL with the filesystem driver, and
PostgreSQL with the S3 driver (the private Ceph of tests/support/s3.py).

A test module that must hold on every backend imports its two fixtures (``every_backend`` and
``registry_on_every_backend``): for that module they replace conftest's ``registry`` (both
databases, the filesystem only).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from dockyard.config import build_config
from tests.integration.conftest import CHEAP_AUTH, Registry, open_registry
from tests.support import backends
from tests.support.databases import PostgresDatabases, sqlite_url

BACKENDS = ("sqlite", "postgresql", "postgresql-s3")


@pytest.fixture(name="backend", params=BACKENDS)
def every_backend(request: pytest.FixtureRequest, tmp_path: Path,
            postgres: PostgresDatabases | None) -> Iterator[tuple[str, dict[str, object]]]:
    """(database URL, storage settings) of one backend, made for this test and removed after it."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path), {}
        return
    if postgres is None:
        backends.postgres_admin_url()  # skips with the reason (fails in CI)
    assert postgres is not None
    url = asyncio.run(postgres.create())
    with ExitStack() as stack:
        storage: dict[str, object] = {}
        if request.param.endswith("-s3"):
            endpoint, prefix = stack.enter_context(backends.s3_prefix("integration"))
            storage = backends.s3_settings(endpoint, prefix)
        yield url, storage


@pytest.fixture(name="registry")
async def registry_on_every_backend(tmp_path: Path, backend: tuple[str, dict[str, object]]) -> AsyncIterator[Registry]:
    """The app on this test's backend, as conftest's ``registry`` (admin client, cheap hashing)."""
    database_url, storage = backend
    config = build_config({"data_dir": str(tmp_path / "data"), "database": {"url": database_url},
                           "storage": storage, "auth": CHEAP_AUTH, "log": {"access_log": False}})
    async with open_registry(config) as opened:
        yield opened
