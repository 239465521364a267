"""The composition root: ``create_app(config)`` builds every object and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dockyard import events
from dockyard.auth.passwords import Passwords
from dockyard.config import Config
from dockyard.http.api import ManagementApi
from dockyard.http.auth import Guard
from dockyard.http.metrics import Metrics
from dockyard.http.observe import AccessLog, ObserveMiddleware
from dockyard.http.registry import RegistryApp, RegistryHandlers, RegistryServices
from dockyard.http.token import TokenEndpoint
from dockyard.jobs.scheduler import Job, Scheduler
from dockyard.jobs.uploads_purge import purge_uploads
from dockyard.services.access import AccessService, KeyRing
from dockyard.services.accounts import AccountsService
from dockyard.services.blobs import BlobService
from dockyard.services.listing import ListingService
from dockyard.services.manifests import ManifestService
from dockyard.services.uploads import UploadService
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver
from dockyard.store import events as event_rows
from dockyard.store import revision
from dockyard.store.db import Database

log = logging.getLogger("dockyard")


@dataclass(frozen=True, slots=True)
class Components:
    """Everything ``create_app`` built, for the CLI and tests that need a piece of it."""

    config: Config
    db: Database
    store: BlobStore
    services: RegistryServices
    metrics: Metrics
    scheduler: Scheduler
    access_log: AccessLog
    access: AccessService
    accounts: AccountsService


def build_driver(config: Config) -> StorageDriver:
    if config.storage.driver == "memory":
        return MemoryDriver()
    if config.storage.driver == "s3":
        from dockyard.storage.s3 import S3Driver  # boto3 is loaded only where S3 is used
        return S3Driver(config.storage.s3)
    return FilesystemDriver(config.storage_root, fsync=config.storage.fsync)


def build_components(config: Config) -> Components:
    db = Database(config.database_url, config.database)
    store = BlobStore(build_driver(config))
    passwords = Passwords(time_cost=config.auth.argon2_time_cost, memory_kib=config.auth.argon2_memory_kib,
                          parallelism=config.auth.argon2_parallelism)
    access = AccessService(db, config.auth, passwords, KeyRing(db, config.auth))
    services = RegistryServices(
        uploads=UploadService(db, store),
        blobs=BlobService(db, store),
        manifests=ManifestService(db, max_bytes=config.registry.manifest_max_bytes,
                                  cache_bytes=config.registry.manifest_cache_bytes,
                                  cache_entries=config.registry.manifest_cache_entries),
        listing=ListingService(db, page_max=config.registry.list_page_max),
        pulls=events.PullLog(),
    )
    expiry = timedelta(seconds=config.registry.upload_expiry_seconds)
    scheduler = Scheduler(db, [
        Job("uploads-purge", config.registry.upload_purge_interval_seconds,
            lambda: purge_uploads(db, store, expiry=expiry)),
    ])
    return Components(config, db, store, services, Metrics(), scheduler, AccessLog(), access,
                      AccountsService(db, passwords, access))


async def flush_pulls(parts: Components) -> None:
    rows = parts.services.pulls.take()
    if rows:
        async with parts.db.write() as conn:
            await event_rows.insert_many(conn, rows)


async def _flush_pulls_forever(parts: Components, interval: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await flush_pulls(parts)
        except Exception:  # a busy or unreachable database: the rows wait for the next round
            log.exception("writing pull events failed; retrying")


async def start_accounts(parts: Components) -> None:
    """Signing keys and the admin account, both created on first start (idempotent)."""
    await parts.access.keys.load()
    generated = await parts.accounts.bootstrap_admin(os.environ.get("DOCKYARD_ADMIN_PASSWORD"))
    if generated is not None:
        # The one time this password is shown: the issue asks for it in the log.
        # Printed, not logged through a handler that may ship it elsewhere: the one time it is shown.
        print(f"created the system admin 'admin' with the generated password {generated} (shown once; set "
              "DOCKYARD_ADMIN_PASSWORD before the first start to choose it)", file=sys.stderr, flush=True)


class Dispatcher:
    """Sends ``/v2`` to the registry API and everything else to the Starlette app."""

    def __init__(self, registry: RegistryApp, other: Starlette) -> None:
        self.registry = registry
        self.other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["path"] == "/v2" or scope["path"].startswith("/v2/")):
            await self.registry(scope, receive, send)
        else:
            await self.other(scope, receive, send)


def create_app(config: Config, components: Components | None = None) -> ObserveMiddleware:
    parts = components or build_components(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if not await revision.is_current(parts.db):
            raise RuntimeError("the database schema is not current: run `dockyard migrate`")
        await start_accounts(parts)
        parts.scheduler.start()
        flusher = asyncio.create_task(_flush_pulls_forever(parts))
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(Exception):
                await flush_pulls(parts)
            await parts.scheduler.stop()
            parts.access_log.flush()
            parts.metrics.flush()
            await parts.db.dispose()

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            async with parts.db.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # readiness reports any failure, it never raises
            return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(parts.metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    guard = Guard(parts.access, realm=config.token_realm, service=config.auth.service,
                  trust_forwarded_for=config.auth.trust_forwarded_for)
    token = TokenEndpoint(guard, parts.access, service=config.auth.service)
    api = ManagementApi(guard, parts.accounts)
    other = Starlette(routes=[
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/token", token.get, methods=["GET"]),
        Route("/token", token.post, methods=["POST"]),
        Route("/.well-known/jwks.json", token.jwks, methods=["GET"]),
        *api.routes(),
    ], lifespan=lifespan)
    handlers = RegistryHandlers(parts.services, manifest_max_bytes=config.registry.manifest_max_bytes)
    access_log = parts.access_log if config.log.access_log else None
    return ObserveMiddleware(Dispatcher(RegistryApp(handlers, guard), other), parts.metrics, access_log=access_log)
