"""The offline vulnerability database: importing OSV advisories, syncing them, matching inventories.

An import reads advisories (``scan.osv.read``: a file, a zip, a directory of them) in a worker
thread, ``BATCH`` at a time, and upserts each batch in its own transaction (a long import never
holds the SQLite write lock for long). When it ends, one ``vulndb_revisions`` row records what it
did; that row's id is the new revision, which the scan jobs watch to re-match stored inventories.
Matching during an import sees the batches committed so far.

A file that is not an advisory, or an advisory the columns cannot hold, is counted and named in
the report (the first ``MAX_ERRORS``), never the end of the import.

``sync`` downloads ``{scan.vulndb.url}/{ecosystem}/all.zip`` for each configured ecosystem with
httpx, streamed to a temporary file (deleted after its import), then imports them all as one
revision. An ecosystem that fails to download is reported; the others are still imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread

from dockyard.config import VulnDbConfig
from dockyard.errors import RequestInvalid, Unavailable
from dockyard.scan import matching, osv
from dockyard.scan.report import Inventory, Vulnerability
from dockyard.store import vulndb as rows
from dockyard.store.db import Database

log = logging.getLogger("dockyard.vulndb")
BATCH = 2000  # advisories per transaction
MAX_ERRORS = 50  # messages kept in a report
Progress = Callable[[int], None]


class SyncFailed(Unavailable):
    """Not one ecosystem's advisories could be downloaded."""

    default_message = "the vulnerability database could not be downloaded"


@dataclass(slots=True)
class ImportReport:
    """What an import or sync did (``dockyard vulndb import --json`` prints ``to_json()``)."""

    source: str
    revision: int | None = None
    read: int = 0  # advisories read (files or zip members that parsed)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0  # files that are not advisories, advisories refused, downloads that failed
    clipped: int = 0  # advisories stored without a part the columns cannot hold
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "revision": self.revision, "read": self.read, "added": self.added,
                "updated": self.updated, "unchanged": self.unchanged, "bad": self.bad, "clipped": self.clipped,
                "errors": list(self.errors), "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        rate = f", {self.read / self.seconds:.0f}/s" if self.seconds > 0 else ""
        return (f"revision {self.revision}: {self.read} advisories read ({self.added} added, {self.updated} "
                f"updated, {self.unchanged} unchanged), {self.bad} bad, {self.clipped} clipped, "
                f"in {self.seconds:.1f}s{rate}")


@dataclass(frozen=True, slots=True)
class VulnDbStatus:
    revision: int | None
    imported_at: datetime | None
    advisories: int
    ecosystems: dict[str, int]  # advisories naming a package of each (stored) ecosystem
    sources: list[rows.RevisionRow]  # the latest imports, newest first

    def to_json(self) -> dict[str, Any]:
        return {"revision": self.revision,
                "imported_at": self.imported_at.isoformat() if self.imported_at else None,
                "advisories": self.advisories, "ecosystems": dict(self.ecosystems),
                "sources": [s.to_json() for s in self.sources]}


def to_row(advisory: osv.Advisory) -> rows.AdvisoryRow:
    """An advisory as stored: its entries under the ecosystem and name lookups use."""
    affected = []
    for entry in advisory.affected:
        ecosystem = matching.stored_ecosystem(entry.ecosystem)
        affected.append(rows.AffectedRow(ecosystem, matching.stored_name(ecosystem, entry.package),
                                         [r.to_json() for r in entry.ranges], entry.versions, entry.severity))
    return rows.AdvisoryRow(advisory.id, advisory.modified, advisory.withdrawn, advisory.aliases, advisory.summary,
                            advisory.severity, advisory.score, advisory.vector, tuple(affected))


def to_entries(found: dict[rows.Key, list[rows.EntryRow]]) -> dict[rows.Key, list[tuple[str, osv.Affected]]]:
    """Stored entries for matching; their JSON decoded in bulk, each distinct ranges text once."""
    unique = list({row.ranges_json: None for group in found.values() for row in group})
    ranges = {text: tuple(osv.Range(r["type"], tuple((k, v) for event in r["events"] for k, v in event.items()))
                          for r in decoded)
              for text, decoded in zip(unique, json.loads("[" + ",".join(unique) + "]"), strict=True)}
    return {key: [(row.advisory_id, osv.Affected(
        row.ecosystem, row.package, ranges[row.ranges_json],
        () if row.versions_json == "[]" else tuple(json.loads(row.versions_json)), row.severity)) for row in group]
        for key, group in found.items()}


def to_advisories(found: dict[str, rows.HeaderRow]) -> dict[str, osv.Advisory]:
    aliases = json.loads("[" + ",".join(row.aliases_json for row in found.values()) + "]")
    return {row.id: osv.Advisory(row.id, None, False, tuple(names), row.summary, row.severity, row.score)
            for row, names in zip(found.values(), aliases, strict=True)}


class VulnDbService:
    def __init__(self, db: Database, config: VulnDbConfig) -> None:
        self.db = db
        self.config = config

    async def import_path(self, path: Path, progress: Progress | None = None) -> ImportReport:
        """Import every advisory under ``path`` (a .json, a .zip, or a directory of them, nested)."""
        report = ImportReport(str(path))
        if not path.exists():
            raise RequestInvalid(f"{path} does not exist: give a directory of OSV .json files or osv.dev zips")
        started = time.monotonic()
        await self._import_items(osv.read(path), report, progress)
        await self._record(report)
        report.seconds = time.monotonic() - started
        return report

    async def sync(self, progress: Progress | None = None) -> ImportReport:
        """Download each configured ecosystem's all.zip and import them as one revision."""
        import httpx

        base = self.config.url.rstrip("/")
        report = ImportReport(base)
        started = time.monotonic()
        downloaded = 0
        ecosystems = [e.strip() for e in self.config.ecosystems.split(",") if e.strip()]
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True) as client:
            for ecosystem in ecosystems:
                url = f"{base}/{urllib.parse.quote(ecosystem)}/all.zip"
                with tempfile.TemporaryDirectory(prefix="dockyard-vulndb-") as tmp:
                    target = Path(tmp, "all.zip")
                    try:
                        await _download(client, url, target)
                    except (httpx.HTTPError, OSError) as exc:
                        report.bad += 1
                        report.note(f"{url}: download failed: {exc}")
                        log.warning("vulndb sync: %s: download failed: %s", url, exc)
                        continue
                    downloaded += 1
                    await self._import_items(osv.read(target), report, progress, source=url)
        if downloaded == 0 and ecosystems:
            raise SyncFailed(f"no ecosystem could be downloaded from {base}: {'; '.join(report.errors[:3])}")
        await self._record(report)
        report.seconds = time.monotonic() - started
        return report

    async def _import_items(self, items: Iterator[osv.Item], report: ImportReport, progress: Progress | None,
                            source: str | None = None) -> None:
        """Upsert the items batch by batch; the next batch is read and parsed (in a thread) while
        the current one is written."""
        following = asyncio.ensure_future(anyio.to_thread.run_sync(_prepare, items, source))
        try:
            while True:
                batch = await following
                if not batch.items:
                    return
                following = asyncio.ensure_future(anyio.to_thread.run_sync(_prepare, items, source))
                report.read += batch.read
                report.bad += batch.bad
                report.clipped += batch.clipped
                for message in batch.messages:
                    report.note(message)
                async with self.db.write() as conn:
                    counts = await rows.upsert(conn, batch.rows)
                report.added += counts.added
                report.updated += counts.updated
                report.unchanged += counts.unchanged
                if progress is not None:
                    progress(batch.items)
        finally:
            if not following.done():
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following  # the thread finishes its batch; nothing else reads the iterator

    async def _record(self, report: ImportReport) -> None:
        if report.added or report.updated:
            async with self.db.write() as conn:
                await rows.analyze(conn)
        async with self.db.write() as conn:
            report.revision = await rows.add_revision(conn, report.source, rows.UpsertCounts(
                report.added, report.updated, report.unchanged))
        log.info("vulndb import from %s: %s", report.source, report.summary())

    async def revision(self) -> int | None:
        """The current revision; None when nothing was ever imported."""
        async with self.db.read() as conn:
            return await rows.current_revision(conn)

    async def status(self) -> VulnDbStatus:
        async with self.db.read() as conn:
            sources = await rows.revisions(conn)
            ecosystems = await rows.advisories_per_ecosystem(conn)
            total = await rows.advisory_count(conn)
        latest = sources[0] if sources else None
        return VulnDbStatus(latest.id if latest else None, latest.imported_at if latest else None, total,
                            ecosystems, sources)

    async def match(self, inventory: Inventory,
                    stats: matching.MatchStats | None = None) -> tuple[int | None, list[Vulnerability]]:
        """The revision used and the inventory's vulnerabilities, most severe first, then by id.

        Two reads in one transaction: the entries stored under the packages' keys, then (after the
        versions are compared, in a worker thread) the advisories of those that match.
        """
        lookups = matching.lookups(inventory.packages, inventory.distro)
        keys = {key for item in lookups for key in item.keys}
        async with self.db.read() as conn:
            revision = await rows.current_revision(conn)
            if not keys:
                return revision, []
            found = await rows.entries(conn, keys)
            hits = await anyio.to_thread.run_sync(_hits, lookups, found, stats)
            advisories = to_advisories(await rows.headers(conn, {hit.advisory_id for hit in hits}))
        return revision, matching.vulnerabilities(hits, advisories)


def _hits(lookups: list[matching.Lookup], found: dict[rows.Key, list[rows.EntryRow]],
          stats: matching.MatchStats | None) -> list[matching.Hit]:
    return matching.find_hits(lookups, to_entries(found), stats)


@dataclass(slots=True)
class _Batch:
    items: int = 0  # files or members taken from the reader
    read: int = 0
    bad: int = 0
    clipped: int = 0
    rows: list[rows.AdvisoryRow] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def _prepare(items: Iterator[osv.Item], source: str | None) -> _Batch:
    """The next ``BATCH`` items as rows the columns can hold, and what was wrong with the others."""
    batch = _Batch()
    for item in items:
        batch.items += 1
        if item.advisory is None:
            batch.bad += 1
            batch.messages.append(item.error or f"{item.source}: not an advisory")
        else:
            batch.read += 1
            row, problems = rows.fit(to_row(item.advisory))
            if row is None:
                batch.bad += 1
            elif problems:
                batch.clipped += 1
            batch.messages.extend(f"{source or item.source}: {problem}" for problem in problems)
            if row is not None:
                batch.rows.append(row)
        if batch.items >= BATCH:
            break
    return batch


async def _download(client: Any, url: str, target: Path) -> None:
    """Stream ``url`` to ``target``; an HTTP error status raises (httpx.HTTPStatusError)."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        with target.open("wb") as out:
            async for chunk in response.aiter_bytes(1024 * 1024):
                await anyio.to_thread.run_sync(out.write, chunk)
