"""Scanning as background work: the queue from the event outbox, the workers, the re-match.

- ``scan-queue`` (a scheduled job: one node at a time, under the scheduler's lease) reads the
  ``manifest.pushed`` events after its cursor (``job_state``) and queues the digests of images
  (``store/scans.queue``); artifacts (signatures, SBOMs, anything with a subject, manifests
  without tar layers) and indexes (their children were pushed, and queued, on their own) are
  skipped. An image already scanned, pushed into another repository, gets its SBOM there.
- ``ScanWorkers``: on every node, at most ``scan.workers`` scans at a time claim queued scans and
  run them (``ScanService.run_next``), each image once across nodes. Every worker process of the
  node runs the tasks, and a task runs a scan only while it holds one of the node's
  ``scan.workers`` slot files (``flock`` in ``<data_dir>/scan-slots``), so the bound is per node,
  not per process. They look every ``scan.interval``, and at once when this process queued something.
- ``scan-rematch`` (scheduled, one node): when the vulnerability database's revision moved, every
  done scan is matched again from its stored inventory, no layer read; and once an hour the rows
  of images no repository holds any more are forgotten.

A push never waits for any of this (a push policy's wait is ``ScanService.scan_for_push``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.config import ScanConfig
from dockyard.errors import Unavailable
from dockyard.jobs.scheduler import Job
from dockyard.oci.manifests import parse_manifest
from dockyard.services.scanning import ScanService, is_image
from dockyard.store import jobs, scans
from dockyard.store.clock import utcnow
from dockyard.store.db import Database

log = logging.getLogger("dockyard.scan")
QUEUE_JOB = "scan-queue"
REMATCH_JOB = "scan-rematch"
BATCH = 500
# An event id is taken when its row is written and seen at commit: one written before the cursor
# moved past it may appear later. Events this recent are looked at again (queued if new to the table).
LOOKBACK = timedelta(seconds=60)
RECHECK_AFTER = timedelta(seconds=10)  # one more look after a busy run, for such late events
FORGET_EVERY = timedelta(hours=1)
FORGET_AFTER = timedelta(days=1)  # a row no repository holds (a refused push's scan) stays this long


@dataclass(slots=True)
class QueueReport:
    examined: int = 0
    queued: int = 0
    skipped: int = 0
    sboms: int = 0

    @property
    def removed(self) -> int:
        return 0

    @property
    def bytes_freed(self) -> int:
        return 0

    def detail(self) -> dict[str, Any]:
        return {"queued": self.queued, "skipped": self.skipped, "sboms": self.sboms}


@dataclass(slots=True)
class RematchReport:
    rematched: int = 0
    forgotten: int = 0
    revision: int | None = None
    digests: list[str] = field(default_factory=list)

    @property
    def examined(self) -> int:
        return self.rematched

    @property
    def removed(self) -> int:
        return self.forgotten

    @property
    def bytes_freed(self) -> int:
        return 0

    def detail(self) -> dict[str, Any]:
        return {"rematched": self.rematched, "forgotten": self.forgotten, "revision": self.revision}


class ScanQueue:
    """The outbox reader: ``manifest.pushed`` events → queued scans."""

    def __init__(self, db: Database, service: ScanService, config: ScanConfig,
                 wake: asyncio.Event | None = None) -> None:
        self.db = db
        self.service = service
        self.config = config
        self.wake = wake

    async def _state(self) -> dict[str, Any]:
        async with self.db.read() as conn:
            return await jobs.load_state(conn, QUEUE_JOB) or {"after": 0}

    async def is_due(self) -> bool:
        """Whether there are events past the cursor (or a second look is due): a run only then."""
        state = await self._state()
        recheck = state.get("recheck_at")
        if recheck is not None and datetime.fromisoformat(recheck) <= utcnow():
            return True
        async with self.db.read() as conn:
            return await scans.pushed_after(conn, int(state["after"]))

    async def run(self) -> QueueReport:
        """Queue the images pushed since the cursor; nothing at all with scan.enabled = false."""
        report = QueueReport()
        if not self.config.enabled:
            return report
        state = await self._state()
        after = int(state["after"])
        while True:
            async with self.db.read() as conn:
                pushed = await scans.pushed_since(conn, after, limit=BATCH, recent=utcnow() - LOOKBACK)
            new = [event for event in pushed if event.id > after]
            images_new = await self._images(new, report)
            images_late = await self._images([e for e in pushed if e.id <= after], None)
            newest = max((event.id for event in new), default=after)
            async with self.db.write() as conn:
                report.queued += await scans.queue(conn, [e.digest for e in images_new])
                report.queued += await scans.queue(conn, [e.digest for e in images_late], requeue_failed=False)
                done = [e for e in images_new if (row := await scans.read(conn, e.digest)) is not None
                        and row.status == scans.DONE]
                recheck = (utcnow() + RECHECK_AFTER).isoformat() if new else None
                await jobs.save_state(conn, QUEUE_JOB, {"after": newest, "recheck_at": recheck})
            after = newest
            report.examined += len(new)
            if report.queued and self.wake is not None:
                self.wake.set()
            if self.config.sbom:
                for event in done:  # scanned before, pushed here now: its SBOM follows it
                    report.sboms += len(await self.service.attach_sboms(event.digest, repositories=[event.repository]))
            if len(pushed) < BATCH:
                return report

    async def _images(self, pushed: list[scans.Pushed], report: QueueReport | None) -> list[scans.Pushed]:
        """Those events whose manifest is an image (still held by some repository)."""
        images = []
        async with self.db.read() as conn:
            for event in pushed:
                found = await scans.manifest(conn, event.digest)
                if found is not None and is_image(parse_manifest(found[1], found[0])):
                    images.append(event)
                elif report is not None:
                    report.skipped += 1
        return images


class Rematch:
    """Re-matching stored inventories when the vulnerability database changed; forgetting rows."""

    def __init__(self, db: Database, service: ScanService) -> None:
        self.db = db
        self.service = service
        self._forgot_at: datetime | None = None

    async def is_due(self) -> bool:
        if self._forgot_at is None or utcnow() - self._forgot_at >= FORGET_EVERY:
            return True
        revision = await self.service.vulndb.revision()
        if revision is None:
            return False
        async with self.db.read() as conn:
            return bool(await scans.stale(conn, revision, limit=1))

    async def run(self) -> RematchReport:
        report = RematchReport(revision=await self.service.vulndb.revision())
        report.rematched = await self.service.rematch_stale()
        if self._forgot_at is None or utcnow() - self._forgot_at >= FORGET_EVERY:
            async with self.db.write() as conn:
                report.forgotten = await scans.forget_unheld(conn, utcnow() - FORGET_AFTER)
            self._forgot_at = utcnow()
        return report


class NodeSlots:
    """``count`` slot files in ``directory``; a scan runs while its task holds one (an exclusive
    ``flock``, which the kernel drops with the process), whichever worker process it is in."""

    def __init__(self, directory: Path, count: int) -> None:
        self.directory = directory
        self.count = count

    def take(self) -> int | None:
        """An open descriptor holding a free slot, or None when all are taken."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for slot in range(self.count):
            fd = os.open(self.directory / f"slot-{slot}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @staticmethod
    def give(fd: int) -> None:
        os.close(fd)  # closing the descriptor releases its lock


class ScanWorkers:
    """``scan.workers`` tasks in this process, each claiming and running one scan at a time while
    it holds one of the node's slots."""

    def __init__(self, service: ScanService, config: ScanConfig, slots: NodeSlots) -> None:
        self.service = service
        self.config = config
        self.slots = slots
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self.config.enabled:
            self._tasks = [asyncio.create_task(self._loop(), name=f"scan-worker:{n}")
                           for n in range(self.config.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.service.close()

    async def _next(self) -> bool:
        slot = self.slots.take()
        if slot is None:  # the node runs scan.workers scans already (in this or another process)
            return False
        try:
            return await self.service.run_next()
        finally:
            self.slots.give(slot)

    async def _loop(self) -> None:
        while True:
            try:
                ran = await self._next()
            except asyncio.CancelledError:
                raise
            except Unavailable as exc:
                log.warning("scan worker: %s; it looks again in %.0fs", exc.message,
                            self.config.interval.total_seconds())
                ran = False
            except Exception:
                log.exception("scan worker failed; it looks again in %.0fs", self.config.interval.total_seconds())
                ran = False
            if not ran:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.config.interval.total_seconds())
                self.wake.clear()


def scan_jobs(db: Database, service: ScanService, config: ScanConfig, workers: ScanWorkers) -> list[Job]:
    """The scheduled jobs of scanning (none with scan.enabled = false)."""
    if not config.enabled:
        return []
    queue = ScanQueue(db, service, config, workers.wake)
    rematch = Rematch(db, service)
    interval = config.interval.total_seconds()
    return [Job(QUEUE_JOB, interval, queue.run, queue.is_due),
            Job(REMATCH_JOB, max(interval * 15, 30.0), rematch.run, rematch.is_due)]
