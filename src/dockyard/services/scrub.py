"""The integrity scrub: re-hash stored blobs and reconcile the database with storage.

One pass walks the blob rows in digest order, reading each blob's bytes at most ``rate`` bytes a
second (a ``TokenBucket``) and hashing them:

- bytes storage does not have (or that end early): **missing**, reported and logged (blob GET
  already answers 404 for them, and a push of the blob restores them);
- bytes of another size or another digest: **corrupt**: ``blobs.corrupt_at`` is set, an error
  logged and ``dockyard_blobs_corrupt_total`` raised; blob GET/HEAD answer 404 ``BLOB_UNKNOWN``
  ("corrupt in storage; push it again") and a verified upload of the digest replaces the bytes;
- bytes that hash right: ``blobs.verified_at`` is set (and a corrupt mark cleared: restored bytes).

Where it got to is saved in ``job_state`` ("scrub") every ``save_every`` blobs, so a run that
stops (a restart, a lost database) is continued by the next one after that digest. A run that
reaches the last row ends the pass with the **orphan sweep**: blob files in storage that no row
names, written longer than ``gc.grace_period`` ago, pinned by no upload and not being deleted by
the collector, are removed (a tombstone in ``blob_deletions`` first, the claims checked again
after it is committed, so an upload that publishes the digest meanwhile either sees the tombstone
and waits, or is seen and keeps its bytes). The next run starts a new pass.

``dry_run`` reads and reports the same, but changes nothing: no row, no saved position, no file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread

from dockyard.oci.digests import algorithm_of, new_hasher
from dockyard.services.throttle import TokenBucket
from dockyard.storage.blobstore import BlobStore, StoredBlob
from dockyard.storage.driver import PathNotFound
from dockyard.store import gc as gc_rows
from dockyard.store import integrity, jobs
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.integrity import BlobRow

log = logging.getLogger("dockyard.scrub")
STATE = "scrub"  # its job_state row
BATCH = 200  # blob rows read at a time
SAVE_EVERY = 50  # blobs between two saves of the position
ORPHAN_BATCH = 500  # storage files checked against the rows at a time
DETAIL_LIMIT = 100  # digests of each kind kept in the job run's detail
FINDINGS = ("missing", "corrupt", "unreadable", "orphans_removed")


@dataclass(slots=True)
class ScrubReport:
    """What a run found (``dockyard scrub --json`` prints ``as_json()``)."""

    resumed_from: str | None = None
    dry_run: bool = False
    examined: int = 0
    bytes_read: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)  # dry run: would be removed
    orphans_kept: list[str] = field(default_factory=list)  # no row, but within the grace period or claimed
    unreadable: list[str] = field(default_factory=list)  # a read error (EIO): neither verified nor condemned
    bytes_freed: int = 0
    pass_complete: bool = False

    @property
    def removed(self) -> int:
        return len(self.orphans_removed)

    def as_json(self) -> dict[str, Any]:
        return {"examined": self.examined, "bytes_read": self.bytes_read, "missing": self.missing,
                "corrupt": self.corrupt, "orphans_removed": self.orphans_removed, "resumed_from": self.resumed_from,
                "orphans_kept": self.orphans_kept, "unreadable": self.unreadable, "bytes_freed": self.bytes_freed,
                "dry_run": self.dry_run,
                "pass_complete": self.pass_complete}

    def detail(self) -> dict[str, Any]:
        """For the job run's row: the counts, and the first digests of each finding."""
        return {"bytes_read": self.bytes_read, "resumed_from": self.resumed_from, "pass_complete": self.pass_complete,
                **{name: getattr(self, name)[:DETAIL_LIMIT] for name in FINDINGS},
                "counts": {name: len(getattr(self, name)) for name in (*FINDINGS, "orphans_kept")}}

    def summary(self) -> str:
        removed = "orphan(s) would be removed" if self.dry_run else "orphan(s) removed"
        unreadable = f"{len(self.unreadable)} unreadable, " if self.unreadable else ""
        return (f"examined {self.examined} blob(s), read {self.bytes_read} bytes: {len(self.missing)} missing, "
                f"{len(self.corrupt)} corrupt, {unreadable}{len(self.orphans_removed)} {removed}"
                + (f" (resumed after {self.resumed_from})" if self.resumed_from else ""))


@dataclass(frozen=True, slots=True)
class ScrubPosition:
    """Where a run would start, and what is left of the pass from there."""

    after: str | None
    blobs: int
    bytes: int


def _nothing(*_args: object) -> None:
    """No progress display, no metric."""


class ScrubService:
    def __init__(self, db: Database, store: BlobStore, *, grace_period: timedelta,
                 count_corrupt: Callable[[], None] = _nothing, save_every: int = SAVE_EVERY) -> None:
        self.db = db
        self.store = store
        self.grace_period = grace_period
        self.count_corrupt = count_corrupt
        self.save_every = save_every

    async def position(self, *, restart: bool = False) -> ScrubPosition:
        async with self.db.read() as conn:
            state = None if restart else await jobs.load_state(conn, STATE)
            after = state.get("after") if state else None
            count, size = await integrity.count_after(conn, after)
        return ScrubPosition(after, count, size)

    async def is_due(self, interval: timedelta) -> bool:
        """Whether a scheduled run should go now: a pass is under way (or never ran), or the last
        one ended ``interval`` ago or more."""
        async with self.db.read() as conn:
            state = await jobs.load_state(conn, STATE)
        if state is None or state.get("after") is not None or "last_pass_ended_at" not in state:
            return True
        ended = datetime.fromisoformat(state["last_pass_ended_at"])
        return utcnow() - ended >= interval

    async def run(self, throttle: TokenBucket, *, dry_run: bool = False, restart: bool = False,
                  on_blob: Callable[[int, str], None] = _nothing) -> ScrubReport:
        """One run: from the saved position (or the first digest) to the end of the pass, then
        the orphan sweep. ``on_blob(size, digest)`` after each blob (a progress bar)."""
        after = (await self.position(restart=restart)).after
        report = ScrubReport(resumed_from=after, dry_run=dry_run)
        unsaved = 0
        while True:
            async with self.db.read() as conn:
                rows = await integrity.blobs_after(conn, after, BATCH)
            if not rows:
                break
            for row in rows:
                await self._check(row, report, throttle)
                on_blob(row.size, row.digest)
                after, unsaved = row.digest, unsaved + 1
                if unsaved >= self.save_every:
                    await self._save({"after": after}, dry_run)
                    unsaved = 0
        await self._save({"after": after}, dry_run)
        await self._sweep_orphans(report)
        report.pass_complete = True
        await self._save({"after": None, "last_pass_ended_at": utcnow().isoformat()}, dry_run)
        return report

    async def _save(self, state: dict[str, Any], dry_run: bool) -> None:
        if not dry_run:
            async with self.db.write() as conn:
                await jobs.save_state(conn, STATE, state)

    async def _check(self, row: BlobRow, report: ScrubReport, throttle: TokenBucket) -> None:
        report.examined += 1
        location = await self.store.locate(row.digest)
        if location is None:
            await self._missing(row, report, "not in storage")
            return
        if location.size != row.size:
            await self._corrupt(row, report, f"storage has {location.size} bytes, the row says {row.size}")
            return
        hasher = new_hasher(algorithm_of(row.digest))
        try:
            async for chunk in self.store.read(location):
                report.bytes_read += len(chunk)
                await throttle.take(len(chunk))
                if len(chunk) < 256 * 1024:
                    hasher.update(chunk)
                else:
                    await anyio.to_thread.run_sync(hasher.update, chunk)
        except PathNotFound as exc:  # deleted or cut short while it was read
            await self._missing(row, report, str(exc))
            return
        except OSError as exc:  # a disk read error: the bytes may be fine; the next pass tries again
            report.unreadable.append(row.digest)
            log.error("scrub: reading blob %s failed (%s); it is left as it is", row.digest, exc)
            return
        actual = f"{algorithm_of(row.digest)}:{hasher.hexdigest()}"
        if actual != row.digest:
            await self._corrupt(row, report, f"its bytes hash to {actual}")
        elif not report.dry_run:
            async with self.db.write() as conn:
                if await integrity.mark_verified(conn, row.digest):
                    log.warning("blob %s, marked corrupt, hashes right again (restored in storage): served again",
                                row.digest)

    async def _missing(self, row: BlobRow, report: ScrubReport, why: str) -> None:
        async with self.db.read() as conn:
            if not await integrity.is_recorded(conn, row.digest):
                return  # the collector removed it meanwhile: not a finding
        report.missing.append(row.digest)
        log.error("scrub: blob %s is recorded but its bytes are missing from storage (%s); push it again to "
                  "restore it", row.digest, why)

    async def _corrupt(self, row: BlobRow, report: ScrubReport, why: str) -> None:
        if not report.dry_run:
            async with self.db.write() as conn:
                newly = await integrity.mark_corrupt(conn, row.digest)
                if not newly and not await integrity.is_recorded(conn, row.digest):
                    return  # the collector removed it meanwhile
            if newly:
                self.count_corrupt()
        report.corrupt.append(row.digest)
        log.error("scrub: blob %s is corrupt in storage (%s); it is no longer served: push it again to restore it",
                  row.digest, why)

    async def _sweep_orphans(self, report: ScrubReport) -> None:
        batch: list[StoredBlob] = []
        async for stored in self.store.stored_blobs():
            batch.append(stored)
            if len(batch) >= ORPHAN_BATCH:
                await self._orphans_in(batch, report)
                batch = []
        await self._orphans_in(batch, report)

    async def _orphans_in(self, batch: list[StoredBlob], report: ScrubReport) -> None:
        async with self.db.read() as conn:
            orphans = await integrity.unclaimed(conn, [stored.digest for stored in batch])
        cutoff = utcnow() - self.grace_period
        for stored in sorted(batch, key=lambda s: s.digest):
            if stored.digest not in orphans:
                continue
            if stored.modified > cutoff:
                report.orphans_kept.append(stored.digest)  # perhaps a push about to record it
            elif report.dry_run or await self._remove_orphan(stored):
                report.orphans_removed.append(stored.digest)
                report.bytes_freed += stored.size
            else:
                report.orphans_kept.append(stored.digest)

    async def _remove_orphan(self, stored: StoredBlob) -> bool:
        """Remove the file unless a row or an upload claims it by the time the tombstone is committed."""
        async with self.db.write() as conn:
            if not await integrity.begin_deletion(conn, stored.digest):
                return False  # the collector is deleting it
        try:
            async with self.db.read() as conn:
                if await integrity.is_claimed(conn, stored.digest):
                    return False
            await self.store.delete_blob(stored.digest)
        finally:
            async with self.db.write() as conn:
                await gc_rows.remove_tombstone(conn, stored.digest)
        log.warning("scrub: removed orphan blob file %s (%d bytes, written %s): no row names it",
                    stored.digest, stored.size, stored.modified.isoformat(timespec="seconds"))
        return True
