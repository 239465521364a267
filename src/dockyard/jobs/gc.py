"""The garbage-collection job: one collector run, recorded as a job run (``dockyard jobs``)."""

from __future__ import annotations

import logging

from dockyard.jobs.runs import recorded_run
from dockyard.services.gc import Collector, GcReport
from dockyard.store.db import Database

log = logging.getLogger("dockyard.jobs.gc")


async def run_gc(db: Database, collector: Collector, *, dry_run: bool = False) -> GcReport:
    """Collect garbage now (or, with ``dry_run``, report what would go) and record the run."""
    async with recorded_run(db, "gc", dry_run=dry_run) as tally:
        report = await collector.collect(dry_run=dry_run)
        tally.examined = report.examined
        tally.removed = report.manifests_deleted + report.blobs_deleted
        tally.bytes_freed = report.bytes_freed
        tally.detail = {k: v for k, v in report.as_dict().items() if k not in ("manifests", "blobs")}
    if report.manifests_deleted or report.blobs_deleted or report.tags_expired:
        log.info("garbage collection %s", report.summary())
    return report
