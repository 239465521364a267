"""Expire abandoned upload sessions and remove their bytes.

A session untouched for ``registry.upload_expiry_seconds`` is over: its row and its files go.
Upload directories in storage with no row (left by a crash) go too. ``dry_run`` reports without
deleting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dockyard.storage.blobstore import BlobStore
from dockyard.store import uploads
from dockyard.store.clock import utcnow
from dockyard.store.db import Database

log = logging.getLogger("dockyard.jobs.uploads_purge")
CLAIM_BATCH = 100


@dataclass(slots=True)
class PurgeReport:
    expired: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def examined(self) -> int:
        return len(self.expired) + len(self.orphaned)

    @property
    def removed(self) -> int:
        return len(self.expired) + len(self.orphaned)  # in a dry run: would remove

    @property
    def bytes_freed(self) -> int:
        return 0  # not measured: an upload's bytes are not counted before they go

    def detail(self) -> dict[str, Any]:
        return {"expired": len(self.expired), "orphaned": len(self.orphaned)}

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return f"{verb} {len(self.expired)} expired upload(s) and {len(self.orphaned)} orphaned upload dir(s)"


async def purge_uploads(db: Database, store: BlobStore, *, expiry: timedelta,
                        dry_run: bool = False, batch: int = CLAIM_BATCH) -> PurgeReport:
    report = PurgeReport(dry_run=dry_run)
    before = utcnow() - expiry
    if dry_run:
        async with db.read() as conn:
            report.expired = await uploads.expired(conn, before, limit=10_000)
    while not dry_run:
        # Rows first, in batches other nodes skip; bytes after the commit. A crash in between
        # leaves bytes without a row, which the orphan sweep below removes on a later run.
        async with db.write() as conn:
            claimed = await uploads.claim_expired(conn, before, limit=batch)
        if not claimed:
            break
        for upload_id in claimed:
            await store.cancel(upload_id)
        report.expired += claimed
    # Read the rows after listing storage: an upload started in between has its row by then.
    in_storage = await store.upload_ids()
    async with db.read() as conn:
        known = await uploads.all_ids(conn)
    passed_over = known | set(report.expired)
    report.orphaned = [upload_id for upload_id in in_storage if upload_id not in passed_over]
    if not dry_run:
        for upload_id in report.orphaned:
            await store.cancel(upload_id)
    if report.expired or report.orphaned:
        log.info(report.summary())
    return report
