"""Online garbage collection: manifests, links and blob bytes that nothing refers to any more.

Changes that may leave garbage (a tag deleted or moved, a manifest or repository deleted, a blob
unlinked, an upload finished) note *candidates* in their own transaction, due after
``gc.grace_period``. A run works through the due candidates in batches:

1. it reads a batch and decides, without locks, which candidates look like garbage;
2. for groups of those (``GROUP`` at most, ``BUDGET`` seconds at most), one write transaction locks each row it may
   delete, checks again whether anything keeps it (a tag, an index, a subject, a restorable tag, a manifest listing a
   blob, a link, an upload's pin), and deletes it only if nothing does. Deleting a manifest makes
   its blobs' links, its children and its referrers candidates at once; deleting the last link to
   a blob makes the blob one;
3. a blob's bytes are deleted only after the transaction that removed its row committed, and that
   transaction left a tombstone (``blob_deletions``) which an upload of the same digest waits for:
   so a blob that something refers to never lacks its bytes.

Between two of its write transactions a run rests (``PAUSE``, or as long as the transaction took
if that was longer), so pushes get the write lock in between and serving keeps its share of the
CPU: see ``GROUP`` and ``PAUSE`` below.

Writers that rely on a row the collector may delete lock it ``FOR SHARE`` in their transaction
(a manifest PUT its links and children, a mount the source link and the blob, an upload's pin the
blob), so on PostgreSQL under READ COMMITTED either the writer commits first and the re-check sees
it, or the writer waits and then finds the row gone (and answers as if it had never existed).

One run at a time: a real run holds the lease ``gc-run`` (the scheduler's lease ``gc`` picks the
node that schedules; the run lease also keeps a run by hand from overlapping a scheduled one).
A dry run takes no lease and no write lock: it reads, and treats what it would delete as gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dockyard.errors import Unavailable
from dockyard.storage.blobstore import BlobStore
from dockyard.store import gc as rows
from dockyard.store import leases
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.gc import BLOB, LINK, MANIFEST, Candidate

log = logging.getLogger("dockyard.gc")
RUN_LEASE = "gc-run"
RUN_LEASE_TTL = timedelta(minutes=10)  # renewed after every batch
DROPS_PER_TRANSACTION = 50  # candidates found still in use, forgotten this many per (short) transaction
LISTED = 1000  # at most this many deleted manifests and blobs are named in a report
# Serving first: a run removes at most GROUP candidates per write transaction, and takes no more
# once the transaction has run BUDGET seconds, then rests PAUSE seconds. On SQLite a writer that
# finds the lock taken sleeps and retries (its waits grow to 100 ms), so back-to-back transactions
# of the collector could keep a push out for a second; with a rest longer than that retry
# interval, a push waits for about one short transaction.
# On PostgreSQL pushes only wait for rows the collector holds; the rest keeps its share of the CPU
# and the database small. Measured in docs/benchmarks.md ("Lifecycle").
GROUP = 64
BUDGET = 0.015
PAUSE = 0.12


class GcHooks:
    """Points where a run waits for its caller (tests pause it here); by default it never waits."""

    async def decided(self, candidate: Candidate) -> None:
        """A candidate looked like garbage; its locked re-check comes next."""

    async def holding(self, candidate: Candidate) -> None:
        """Inside the re-check's transaction: the row is locked, found garbage, and deleted next."""

    async def before_bytes_delete(self, digest: str) -> None:
        """The blob's row is gone (committed, with a tombstone); its bytes are deleted next."""


@dataclass(slots=True)
class GcReport:
    dry_run: bool
    examined: int = 0
    manifests_deleted: int = 0
    links_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    tags_expired: int = 0
    busy: int = 0  # candidates whose row a writer held at the re-check: left for the next run
    duration_seconds: float = 0.0
    manifests: list[str] = field(default_factory=list)  # "repository@digest", the first LISTED
    blobs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "examined": self.examined, "manifests_deleted": self.manifests_deleted,
                "links_deleted": self.links_deleted, "blobs_deleted": self.blobs_deleted,
                "bytes_freed": self.bytes_freed, "tags_expired": self.tags_expired, "busy": self.busy,
                "duration_seconds": round(self.duration_seconds, 3), "manifests": self.manifests,
                "blobs": self.blobs}

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (f"{verb} {self.manifests_deleted} manifest(s), {self.blobs_deleted} blob(s), "
                f"{self.bytes_freed} bytes ({self.examined} candidate(s) examined)")


@dataclass(slots=True)
class _Run:
    now: datetime
    dry_run: bool
    report: GcReport
    # What deleting something made a candidate, reviewed before the next batch (a real run also
    # notes them as rows, due at once, in case it stops first). A dry run deletes nothing: it
    # treats what it would delete as gone.
    gone_manifests: set[int] = field(default_factory=set)
    gone_links: set[tuple[int, str]] = field(default_factory=set)
    gone_blobs: set[str] = field(default_factory=set)
    queue: list[Candidate] = field(default_factory=list)
    progress: Callable[[int], None] | None = None  # told how many candidates each batch examined
    announced: set[Candidate] = field(default_factory=set)  # told to hooks.decided already


class Collector:
    def __init__(self, db: Database, store: BlobStore, *, grace_period: timedelta, batch: int = 500,
                 group: int = GROUP, budget: float = BUDGET, pause: float = PAUSE,
                 hooks: GcHooks | None = None) -> None:
        self.db = db
        self.store = store
        self.grace_period = grace_period
        self.batch = batch
        self.group = group  # candidates re-checked and removed in one write transaction, at most
        self.budget = budget  # seconds a write transaction may run before it takes no more candidates
        self.pause = pause  # seconds between two of the run's write transactions
        self.hooks = hooks or GcHooks()
        # This collector, as the run lease names it (two collectors of one process are two holders).
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[-128:]

    async def collect(self, *, dry_run: bool = False, now: datetime | None = None,
                      progress: Callable[[int], None] | None = None) -> GcReport:
        """Review every candidate due by ``now`` (default: the current time) and remove the garbage;
        ``progress`` hears how many candidates each batch examined (the CLI's progress bar)."""
        started = time.monotonic()
        run = _Run(now or utcnow(), dry_run, GcReport(dry_run), progress=progress)
        if not dry_run:
            await self._take_lease()
        try:
            if not dry_run:
                await self._finish_tombstones(run.report)
            await self._expire_deleted_tags(run)
            after = 0
            while True:
                async with self.db.read() as conn:
                    batch = await rows.due(conn, run.now, after_id=after, limit=self.batch)
                if not batch:
                    break
                after = batch[-1][0]
                await self._review(run, list(dict.fromkeys(c for _, c in batch)))
                while run.queue:
                    pending, run.queue = run.queue, []
                    await self._review(run, list(dict.fromkeys(pending)))
                if not dry_run:
                    await self._take_lease()  # renewed: a long run keeps it
            while run.queue:  # tags whose restore window ended, when there was no batch
                pending, run.queue = run.queue, []
                await self._review(run, list(dict.fromkeys(pending)))
        finally:
            if not dry_run:
                async with self.db.write() as conn:
                    await leases.release(conn, RUN_LEASE, self.holder)
        run.report.duration_seconds = time.monotonic() - started
        return run.report

    # -- the run lease and leftovers of a crashed run ----------------------------------------------

    async def _take_lease(self) -> None:
        async with self.db.write() as conn:
            if not await leases.acquire(conn, RUN_LEASE, self.holder, RUN_LEASE_TTL):
                holder = await leases.holder_of(conn, RUN_LEASE)
                raise Unavailable(f"another garbage collection is running (on {holder or 'another node'}); "
                                  "run it again when that one has finished")

    async def _finish_tombstones(self, report: GcReport) -> None:
        """Delete the bytes of blobs whose rows a crashed run removed (their tombstones remain)."""
        while True:
            async with self.db.read() as conn:
                digests = await rows.tombstones(conn)
            if not digests:
                return
            for digest in digests:
                await self._delete_bytes(digest)
                report.blobs_deleted += 1
                if len(report.blobs) < LISTED:
                    report.blobs.append(digest)

    async def _expire_deleted_tags(self, run: _Run) -> None:
        """Tags deleted by retention whose restore window ended: their manifests become candidates."""
        while True:
            async with (self.db.read() if run.dry_run else self.db.write()) as conn:
                expired = await rows.expired_deleted_tags(conn, run.now)
                found = [Candidate(MANIFEST, repo, digest) for _, repo, digest in expired]
                run.queue += found
                if not run.dry_run:
                    await rows.delete_deleted_tags(conn, [i for i, _, _ in expired])
                    await rows.add_candidates(conn, found, reason="restore window ended", due_at=run.now)
            run.report.tags_expired += len(expired)
            if run.dry_run or not expired:
                return

    # -- phases 1 and 2 ------------------------------------------------------------------------

    async def _review(self, run: _Run, batch: list[Candidate]) -> None:
        run.report.examined += len(batch)
        if run.progress is not None:
            run.progress(len(batch))
        async with self.db.read() as conn:
            garbage = [c for c in batch if await self._is_garbage(conn, run, c)]
        kept = [c for c in batch if c not in garbage]
        for start in range(0, 0 if run.dry_run else len(kept), DROPS_PER_TRANSACTION):
            async with self.db.write() as conn:
                for c in kept[start:start + DROPS_PER_TRANSACTION]:
                    await rows.drop(conn, c, run.now)
        while garbage:
            garbage = await self._remove(run, garbage)

    async def _remove(self, run: _Run, pending: list[Candidate]) -> list[Candidate]:
        """Phase 2 for the first of ``pending`` in one short write transaction (at most ``group``
        of them, and no more once it has taken ``budget`` seconds), then phase 3 for their blobs'
        bytes, then a rest; returns the candidates it did not get to."""
        group = pending[:self.group]
        for c in group:
            if c not in run.announced:  # told once, outside any transaction (tests pause here)
                run.announced.add(c)
                await self.hooks.decided(c)
        doomed: list[str] = []
        handled = 0
        started = time.monotonic()
        async with (self.db.read() if run.dry_run else self.db.write()) as conn:
            for c in group:
                if handled and time.monotonic() - started >= self.budget:
                    break
                handled += 1
                try:
                    if c.kind == MANIFEST:
                        await self._collect_manifest(conn, run, c)
                    elif c.kind == LINK:
                        await self._collect_link(conn, run, c)
                    elif c.kind == BLOB and await self._collect_blob(conn, run, c):
                        doomed.append(c.digest)
                except rows.Busy:  # nothing of it changed yet; it stays a candidate
                    run.report.busy += 1
        if run.dry_run:
            return pending[handled:]
        held = time.monotonic() - started
        for digest in doomed:
            await self.hooks.before_bytes_delete(digest)
            await self.store.delete_blob(digest)
        if doomed:
            async with self.db.write() as conn:
                for digest in doomed:
                    await rows.remove_tombstone(conn, digest)
        await asyncio.sleep(max(self.pause, held))
        return pending[handled:]

    async def _is_garbage(self, conn: AsyncConnection, run: _Run, c: Candidate) -> bool:
        """Phase 1: the decision without locks (each is checked again, locked, before it goes)."""
        if c.kind == MANIFEST and c.repository_id is not None:
            found = await rows.find_manifest(conn, c.repository_id, c.digest, lock=False)
            return (found is not None and found.id not in run.gone_manifests
                    and await rows.manifest_holder(conn, c.repository_id, c.digest, found, run.now,
                                                   run.gone_manifests) is None)
        if c.kind == LINK and c.repository_id is not None:
            return ((c.repository_id, c.digest) not in run.gone_links
                    and await rows.find_link(conn, c.repository_id, c.digest, lock=False)
                    and not await rows.link_used(conn, c.repository_id, c.digest, run.gone_manifests))
        if c.kind == BLOB:
            return (c.digest not in run.gone_blobs
                    and await rows.find_blob(conn, c.digest, lock=False) is not None
                    and not await rows.linked_anywhere(conn, c.digest, run.gone_links)
                    and not await rows.is_pinned(conn, c.digest))
        return False  # a kind this version does not know: nothing it can collect

    async def _collect_manifest(self, conn: AsyncConnection, run: _Run, c: Candidate) -> None:
        assert c.repository_id is not None
        repo = c.repository_id
        found = await rows.find_manifest(conn, repo, c.digest, lock=not run.dry_run)
        if found is None or found.id in run.gone_manifests or (
                not run.dry_run and not await rows.is_due(conn, c, run.now)) or \
                await rows.manifest_holder(conn, repo, c.digest, found, run.now, run.gone_manifests):
            if not run.dry_run:
                await rows.drop(conn, c, run.now)
            return
        if not run.dry_run:
            await self.hooks.holding(c)
        contents = await rows.contents_of(conn, repo, found.id, c.digest)
        follow = [Candidate(LINK, repo, d) for d in contents.blobs]
        follow += [Candidate(MANIFEST, repo, d) for d in contents.children + contents.referrers]
        run.queue += follow
        if run.dry_run:
            run.gone_manifests.add(found.id)
        else:
            await rows.delete_manifest(conn, found.id)
            await rows.drop(conn, c, run.now)
            await rows.add_candidates(conn, follow, reason="manifest collected", due_at=run.now)
        run.report.manifests_deleted += 1
        if len(run.report.manifests) < LISTED:
            run.report.manifests.append(f"{found.repository}@{c.digest}")

    async def _collect_link(self, conn: AsyncConnection, run: _Run, c: Candidate) -> None:
        assert c.repository_id is not None
        repo = c.repository_id
        if (repo, c.digest) in run.gone_links or \
                not await rows.find_link(conn, repo, c.digest, lock=not run.dry_run) or \
                await rows.link_used(conn, repo, c.digest, run.gone_manifests):
            if not run.dry_run:
                await rows.drop(conn, c, run.now)
            return
        if run.dry_run:
            run.gone_links.add((repo, c.digest))
        else:
            await self.hooks.holding(c)
            await rows.delete_link(conn, repo, c.digest)
            await rows.drop(conn, c, run.now)
        if not await rows.linked_anywhere(conn, c.digest, run.gone_links):
            blob = Candidate(BLOB, None, c.digest)
            run.queue.append(blob)
            if not run.dry_run:
                await rows.add_candidates(conn, [blob], reason="last link collected", due_at=run.now)
        run.report.links_deleted += 1

    async def _collect_blob(self, conn: AsyncConnection, run: _Run, c: Candidate) -> bool:
        """Remove the blob's row, leaving a tombstone; True if its bytes are to go after the commit."""
        size = None if c.digest in run.gone_blobs else await rows.find_blob(conn, c.digest, lock=not run.dry_run)
        if size is None or await rows.linked_anywhere(conn, c.digest, run.gone_links):
            if not run.dry_run:
                await rows.drop(conn, c, run.now)
            return False
        if await rows.is_pinned(conn, c.digest):
            # An upload of it is finishing: it links the blob, or, abandoned, its pin goes with it.
            if not run.dry_run:
                await rows.postpone(conn, c, run.now, run.now + self.grace_period)
            return False
        if run.dry_run:
            run.gone_blobs.add(c.digest)
        else:
            await self.hooks.holding(c)
            await rows.delete_blob_row(conn, c.digest)
            await rows.drop(conn, c, run.now)
        run.report.blobs_deleted += 1
        run.report.bytes_freed += size
        if len(run.report.blobs) < LISTED:
            run.report.blobs.append(c.digest)
        return not run.dry_run

    async def _delete_bytes(self, digest: str) -> None:
        """Phase 3: the row is gone and committed; the bytes go, then the tombstone."""
        await self.hooks.before_bytes_delete(digest)
        await self.store.delete_blob(digest)
        async with self.db.write() as conn:
            await rows.remove_tombstone(conn, digest)
        log.debug("deleted the bytes of blob %s", digest)

