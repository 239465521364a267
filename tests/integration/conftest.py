"""The real app on a real database (SQLite, and PostgreSQL when reachable) and a real filesystem.

Requests go in-process through httpx's ASGI transport: no server process, no mocks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dockyard.app import Components, build_components, create_app
from dockyard.config import Config, build_config
from dockyard.store import migrate
from tests.support.databases import PostgresDatabases, postgres_unavailable_reason, sqlite_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases | None]:
    reason = asyncio.run(postgres_unavailable_reason())
    if reason is not None:
        if os.environ.get("CI") == "true" and "is not set" not in reason:
            pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}")
        yield None
        return
    databases = PostgresDatabases(os.environ["DOCKYARD_TEST_POSTGRES_URL"])
    yield databases
    asyncio.run(databases.drop_all())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                 postgres: PostgresDatabases | None) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    if postgres is None:
        pytest.skip(f"PostgreSQL not configured: {asyncio.run(postgres_unavailable_reason())}")
    yield asyncio.run(postgres.create())


@dataclass
class Registry:
    client: httpx.AsyncClient
    parts: Components
    config: Config


ADMIN_PASSWORD = "integration-admin-password"
ADMIN_AUTH = ("admin", ADMIN_PASSWORD)
# Cheap password hashing: these tests check behaviour, not argon2's cost.
CHEAP_AUTH = {"argon2_time_cost": 1, "argon2_memory_kib": 1024}


def make_config(tmp_path: Path, database_url: str, auth: dict[str, object] | None = None,
                **registry: object) -> Config:
    return build_config({
        "data_dir": str(tmp_path / "data"),
        "database": {"url": database_url},
        "registry": registry,
        "auth": {**CHEAP_AUTH, **(auth or {})},
        "log": {"access_log": False},
    })


@pytest.fixture
async def registry(tmp_path: Path, database_url: str) -> AsyncIterator[Registry]:
    async with open_registry(make_config(tmp_path, database_url)) as opened:
        yield opened


def client_as(registry: Registry, auth: tuple[str, str] | None) -> httpx.AsyncClient:
    """Another client of the same app, sending ``auth`` as Basic credentials (None: nothing)."""
    return httpx.AsyncClient(transport=registry.client._transport, base_url="http://registry", auth=auth)


class open_registry:
    """The app on the given config, schema migrated, the admin account created, with an httpx
    client bound to it that sends the admin's Basic credentials (``anonymous=True``: none)."""

    def __init__(self, config: Config, *, anonymous: bool = False) -> None:
        self.config = config
        self.anonymous = anonymous

    async def __aenter__(self) -> Registry:
        self.parts = build_components(self.config)
        await migrate.upgrade(self.parts.db)
        await self.parts.accounts.bootstrap_admin(ADMIN_PASSWORD)
        app = create_app(self.config, self.parts)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry",
                                        auth=None if self.anonymous else ADMIN_AUTH)
        return Registry(self.client, self.parts, self.config)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.parts.db.dispose()
