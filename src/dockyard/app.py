"""The composition root: ``create_app(config)`` builds every object and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dockyard import events
from dockyard.auth.passwords import Passwords
from dockyard.config import Config
from dockyard.errors import DatabaseUnavailable, RegistryError, Unavailable
from dockyard.http.api_admission import AdmissionApi
from dockyard.http.api_policies import PoliciesApi
from dockyard.http.api_retention import RetentionApi
from dockyard.http.api_scan import ScanApi
from dockyard.http.api_signatures import SignaturesApi
from dockyard.http.auth import Guard
from dockyard.http.errors import render_error
from dockyard.http.jobs import JobsApi
from dockyard.http.limits import RequestLimits
from dockyard.http.management import management_api
from dockyard.http.metrics import Metrics
from dockyard.http.observe import AccessLog, ObserveMiddleware
from dockyard.http.registry import RegistryApp, RegistryHandlers, RegistryServices
from dockyard.http.repositories import RepositoryApi
from dockyard.http.token import TokenEndpoint
from dockyard.http.usage import UsageApi
from dockyard.jobs.gc import run_gc
from dockyard.jobs.runs import node_name, recorded_run
from dockyard.jobs.scan import NodeSlots, ScanWorkers, scan_jobs
from dockyard.jobs.scheduler import Job, Scheduler
from dockyard.jobs.scrub import scrub_job
from dockyard.jobs.uploads_purge import purge_uploads
from dockyard.services.access import AccessService, KeyRing
from dockyard.services.accounts import AccountsService
from dockyard.services.admission import AdmissionService
from dockyard.services.blobs import BlobService
from dockyard.services.gc import Collector
from dockyard.services.listing import ListingService
from dockyard.services.manifests import ManifestService
from dockyard.services.policies import PolicyService
from dockyard.services.repositories import RepositoryService
from dockyard.services.retention import RetentionService
from dockyard.services.scanning import ScanService
from dockyard.services.scrub import ScrubService
from dockyard.services.signatures import SignatureService
from dockyard.services.uploads import UploadService
from dockyard.services.usage import UsageService
from dockyard.services.vulndb import VulnDbService
from dockyard.storage import layout
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver
from dockyard.store import events as event_rows
from dockyard.store import manifests as manifest_rows
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
    retention: RetentionService
    collector: Collector
    repositories: RepositoryService
    scanning: ScanService
    scan_workers: ScanWorkers
    signatures: SignatureService


def build_driver(config: Config) -> StorageDriver:
    if config.storage.driver == "memory":
        return MemoryDriver()
    if config.storage.driver == "s3":
        from dockyard.storage.s3 import S3Driver  # boto3 is loaded only where S3 is used
        layout.check_key_prefix(config.storage.s3.prefix)
        return S3Driver(config.storage.s3)
    return FilesystemDriver(config.storage_root, fsync=config.storage.fsync)


def build_components(config: Config) -> Components:
    db = Database(config.database_url, config.database)
    store = BlobStore(build_driver(config))
    passwords = Passwords(time_cost=config.auth.argon2_time_cost, memory_kib=config.auth.argon2_memory_kib,
                          parallelism=config.auth.argon2_parallelism)
    access = AccessService(db, config.auth, passwords, KeyRing(db, config.auth))
    metrics = Metrics()
    grace = config.gc.grace_period
    pulls = events.PullLog()
    admission = AdmissionService(db, store, access, push_timeout=config.scan.push_timeout, pulls=pulls)
    manifests = ManifestService(db, max_bytes=config.registry.manifest_max_bytes,
                                cache_bytes=config.registry.manifest_cache_bytes,
                                cache_entries=config.registry.manifest_cache_entries, grace_period=grace)
    manifests.admission = admission
    services = RegistryServices(
        uploads=UploadService(db, store, grace_period=grace),
        blobs=BlobService(db, store, count_missing=metrics.blobs_missing.inc,
                          count_read_error=metrics.blob_read_errors.inc, grace_period=grace),
        manifests=manifests, listing=ListingService(db, page_max=config.registry.list_page_max),
        pulls=pulls, admission=admission,
    )
    expiry = timedelta(seconds=config.registry.upload_expiry_seconds)
    retention = RetentionService(db, config.retention, access,
                                 lambda job, dry_run: recorded_run(db, job, dry_run=dry_run))
    scrub = ScrubService(db, store, grace_period=config.gc.grace_period, count_corrupt=metrics.blobs_corrupt.inc)
    collector = Collector(db, store, grace_period=grace)
    scanning = ScanService(db, store, services.manifests, services.uploads, VulnDbService(db, config.scan.vulndb),
                           config.scan, holder=node_name(), observe=metrics.record_scan)
    scan_workers = ScanWorkers(scanning, config.scan, NodeSlots(config.data_dir / "scan-slots", config.scan.workers))
    admission.scans = scanning
    jobs = [
        Job("uploads-purge", config.registry.upload_purge_interval_seconds,
            lambda: purge_uploads(db, store, expiry=expiry)),
        Job("gc", config.gc.interval.total_seconds(), lambda: run_gc(db, collector)),
        Job("retention", config.retention.interval.total_seconds(), retention.run_due),
        scrub_job(scrub, config.scrub),
        *scan_jobs(db, scanning, config.scan, scan_workers),
    ]
    metrics.declare_jobs([job.name for job in jobs])
    metrics.declare_scans()
    scheduler = Scheduler(db, jobs, observe=lambda run: metrics.record_job(
        run.job, run.outcome, run.seconds, run.removed, run.bytes_freed, run.ended_at))
    accounts = AccountsService(db, passwords, access)
    signatures = SignatureService(db, store, services.manifests, blobs=services.blobs, uploads=services.uploads,
                                  access=access, registry_host=urllib.parse.urlsplit(config.token_realm).netloc)
    admission.signatures = signatures
    return Components(config, db, store, services, metrics, scheduler, AccessLog(), access, accounts, retention,
                      collector, RepositoryService(db, accounts, grace_period=grace), scanning, scan_workers,
                      signatures=signatures)


async def flush_pulls(parts: Components, unwritten: list[dict[str, Any]] | None = None) -> None:
    """Write the buffered pull events, and ``unwritten`` (rows an earlier round could not write),
    and in the same transaction each pulled manifest's last_pulled_at (retention's keep_pulled_days):
    one UPDATE per distinct manifest, which writes nothing if the stored time is within
    ``PULL_RECORD_RESOLUTION``. The manifest GET itself never writes.

    While the database is unavailable the rows stay in ``unwritten`` for the next round (at most
    the buffer's limit of them, the newest kept); rows the database refused for another reason
    are logged and dropped, so one bad batch cannot block the ones after it.
    """
    carried = [] if unwritten is None else unwritten  # the caller's list (``or`` would drop an empty one)
    rows = carried + parts.services.pulls.take()
    carried.clear()
    if not rows:
        return
    try:
        async with parts.db.write() as conn:
            await event_rows.insert_many(conn, rows)
            await manifest_rows.record_pulls(conn, _last_pulls(rows), PULL_RECORD_RESOLUTION)
    except Unavailable:  # the seam logged it; a lost pull event only makes a count smaller
        carried.extend(rows[-parts.services.pulls.limit:])
        raise


# manifests.last_pulled_at (for retention's keep_pulled_days) is moved at most once per this.
PULL_RECORD_RESOLUTION = timedelta(hours=1)


def _last_pulls(rows: list[dict[str, Any]]) -> dict[tuple[str, str], datetime]:
    """When each pulled (repository, digest) of the batch was last pulled."""
    latest: dict[tuple[str, str], datetime] = {}
    for row in rows:
        if row["name"] == events.ManifestPulled.name and row["repository"] and row["digest"]:
            key = (row["repository"], row["digest"])
            latest[key] = max(latest.get(key, row["created_at"]), row["created_at"])
    return latest


async def _flush_pulls_forever(parts: Components, unwritten: list[dict[str, Any]],
                               interval: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await flush_pulls(parts, unwritten)
        except Unavailable:
            pass  # kept in ``unwritten`` for the next round
        except Exception:
            log.exception("writing pull events failed; this batch is dropped")


async def start_with_database(parts: Components) -> None:
    """What a worker needs from the database before it serves: a current schema, keys, the admin."""
    if not await revision.is_current(parts.db):
        raise RuntimeError("the database schema is not current: run `dockyard migrate`")
    await start_accounts(parts)


@dataclass(slots=True)
class Startup:
    """Whether this worker still waits for the database it could not reach at start-up."""

    waiting: bool = False


async def _start_when_available(parts: Components, startup: Startup, retry: float = 1.0) -> None:
    """Retry the start-up until the database answers; until then every request answers 503."""
    while True:
        await asyncio.sleep(retry)
        try:
            await start_with_database(parts)
        except Unavailable:
            continue
        except Exception:
            # A stale schema or a broken database: the worker stays unready and says why.
            log.exception("starting against the database failed; this worker stays unready")
            return
        log.warning("the database answers: this worker serves now")
        startup.waiting = False
        return


async def start_accounts(parts: Components) -> None:
    """Signing keys and the admin account, both created on first start (idempotent)."""
    await parts.access.keys.load()
    generated = await parts.accounts.bootstrap_admin(os.environ.get("DOCKYARD_ADMIN_PASSWORD"))
    if generated is not None:
        # The one time this password is shown: the issue asks for it in the log.
        # Printed, not logged through a handler that may ship it elsewhere: the one time it is shown.
        print(f"created the system admin 'admin' with the generated password {generated} (shown once; set "
              "DOCKYARD_ADMIN_PASSWORD before the first start to choose it)", file=sys.stderr, flush=True)


_ALWAYS_SERVED = frozenset({"/healthz", "/readyz", "/metrics"})


class Dispatcher:
    """Sends ``/v2`` to the registry API and everything else to the Starlette app.

    While the worker waits for a database it could not reach at start-up, requests other than the
    probes and metrics answer 503: a worker that starts while the database is unreachable serves
    them as soon as it answers, without a restart.
    """

    def __init__(self, registry: RegistryApp, other: Starlette, startup: Startup) -> None:
        self.registry = registry
        self.other = other
        self.startup = startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.startup.waiting and scope["type"] == "http" and scope["path"] not in _ALWAYS_SERVED:
            await render_error(DatabaseUnavailable("the registry is starting and its database has not "
                                                   "answered yet; retry shortly"),
                               head=scope["method"] == "HEAD")(scope, receive, send)
        elif scope["type"] == "http" and (scope["path"] == "/v2" or scope["path"].startswith("/v2/")):
            await self.registry(scope, receive, send)
        else:
            await self.other(scope, receive, send)


def create_app(config: Config, components: Components | None = None) -> ObserveMiddleware:
    parts = components or build_components(config)
    startup = Startup()
    # Shutdown waits this long at most for the database (a final write, closing connections).
    shutdown_budget = config.database.connect_timeout

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        starting: asyncio.Task[None] | None = None
        try:
            await start_with_database(parts)
        except Unavailable:
            # The seam logged why. A worker that exited here would be respawned into the same
            # outage again and again: it serves 503 instead, and starts when the database answers.
            log.warning("the database is unavailable at start-up: this worker answers 503 until it is back")
            startup.waiting = True
            starting = asyncio.create_task(_start_when_available(parts, startup))
        parts.scheduler.start()
        parts.scan_workers.start()
        unwritten: list[dict[str, Any]] = []
        flusher = asyncio.create_task(_flush_pulls_forever(parts, unwritten))
        try:
            yield
        finally:
            for task in (flusher, starting):
                if task is not None:
                    task.cancel()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(shutdown_budget):
                    await flush_pulls(parts, unwritten)
            await parts.scheduler.stop()
            await parts.scan_workers.stop()
            parts.access_log.flush()
            parts.metrics.flush()
            try:
                async with asyncio.timeout(shutdown_budget):
                    await parts.db.dispose()
            except TimeoutError:  # a database that stopped answering: the process ends anyway
                log.warning("closing the database connections timed out after %.0fs", shutdown_budget)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        """Ready when the database answers within ``database.connect_timeout`` seconds."""
        if startup.waiting:
            return JSONResponse({"status": "unavailable", "database": "not reached since start-up"},
                                status_code=503)
        try:
            async with asyncio.timeout(config.database.connect_timeout):
                async with parts.db.read() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except TimeoutError:
            return JSONResponse({"status": "unavailable", "database": "no answer within "
                                 f"{config.database.connect_timeout:g}s"}, status_code=503)
        except Exception as exc:  # readiness reports any failure, it never raises
            reason = exc.message if isinstance(exc, RegistryError) else str(exc)[:200]
            return JSONResponse({"status": "unavailable", "database": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(parts.metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    guard = Guard(parts.access, realm=config.token_realm, service=config.auth.service,
                  trust_forwarded_for=config.auth.trust_forwarded_for)
    token = TokenEndpoint(guard, parts.access, service=config.auth.service)
    api = management_api(guard, parts.accounts, [
        RetentionApi(parts.retention),
        PoliciesApi(PolicyService(parts.db, parts.access)),
        JobsApi(parts.db),
        RepositoryApi(parts.repositories),
        UsageApi(UsageService(parts.db, parts.accounts)),
        AdmissionApi(parts.services.admission),
        SignaturesApi(parts.signatures),
        ScanApi(parts.scanning),
    ])
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
    limits = RequestLimits(body_read_timeout=config.server.body_read_timeout,
                           body_min_rate=config.server.body_min_rate, send_timeout=config.server.send_timeout,
                           max_uploads_in_flight=config.registry.max_uploads_in_flight)
    return ObserveMiddleware(Dispatcher(RegistryApp(handlers, guard), other, startup), parts.metrics,
                             access_log=access_log, limits=limits)
