"""The ``scans`` table: one row per image manifest digest, shared by every repository holding it.

A row's life::

    queue ──> queued ──claim──> running ──finish──> done ──(vulndb revision moves)──> done, re-matched
                 ^                │  ^
                 │                │  └── claim again when claimed_until passed (its node died)
                 │              fail
                 │                v
                 └──── queue ── failed ──claim (after retry_after, below max_attempts)──> running

Each image is scanned once across nodes: ``claim`` moves a row to ``running`` with one
``UPDATE … WHERE <still claimable>`` and counts the rows it changed, so of two nodes claiming the
same row one gets it. On PostgreSQL the candidates are also selected ``FOR UPDATE SKIP LOCKED``:
nodes claiming at once take different rows instead of queueing behind each other's locks.
``finish``, ``fail`` and ``renew`` act only while the caller still holds the claim.

``error`` holds the failure's message, which the caller builds without any file content (a
secret never reaches this table: findings are stored masked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware, utcnow
from dockyard.store.limits import SCAN_ERROR
from dockyard.store.schema import events, manifests, repositories, scans
from dockyard.store.statements import insert_ignore

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass(frozen=True, slots=True)
class ScanRow:
    digest: str
    status: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    attempts: int
    scanner_version: str | None
    inventory: dict[str, Any] | None
    findings: dict[str, Any] | None
    vulnerabilities: list[dict[str, Any]] | None
    vulndb_revision: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Retry:
    """When a failed scan is claimed again: ``after`` its failure, while it has failed fewer than
    ``max_attempts`` times."""

    after: timedelta
    max_attempts: int


def _row(r: Any) -> ScanRow:
    return ScanRow(r.digest, r.status, aware(r.queued_at), aware(r.started_at), aware(r.finished_at),
                   r.claimed_by, aware(r.claimed_until), r.attempts, r.scanner_version, r.inventory, r.findings,
                   r.vulnerabilities, r.vulndb_revision, r.error)


async def queue(conn: AsyncConnection, digests: Sequence[str], *, requeue_failed: bool = True) -> int:
    """Queue each digest that has no row; a failed one is queued again (unless not
    ``requeue_failed``). How many were queued."""
    if not digests:
        return 0
    now = utcnow()
    wanted = list(dict.fromkeys(digests))
    known = set((await conn.scalars(sa.select(scans.c.digest).where(scans.c.digest.in_(wanted)))).all())
    # Counted from the rows that were there: a multi-row insert's rowcount is not reported on every driver.
    await insert_ignore(conn, scans, [{"digest": d, "status": QUEUED, "queued_at": now, "attempts": 0}
                                      for d in wanted if d not in known])
    added = len([d for d in wanted if d not in known])
    if not requeue_failed:
        return added
    again = await conn.execute(sa.update(scans).where(scans.c.digest.in_(list(digests)), scans.c.status == FAILED)
                               .values(status=QUEUED, queued_at=now, attempts=0, error=None))
    return added + max(int(again.rowcount or 0), 0)


def _claimable(now: datetime, retry: Retry | None) -> sa.ColumnElement[bool]:
    conditions = [scans.c.status == QUEUED, sa.and_(scans.c.status == RUNNING, scans.c.claimed_until < now)]
    if retry is not None:
        conditions.append(sa.and_(scans.c.status == FAILED, scans.c.attempts < retry.max_attempts,
                                  scans.c.finished_at < now - retry.after))
    return sa.or_(*conditions)


async def claim(conn: AsyncConnection, holder: str, ttl: timedelta, *, limit: int = 1,
                retry: Retry | None = None) -> list[str]:
    """Claim up to ``limit`` scans for ``holder`` (queued ones, running ones whose claim expired,
    failed ones due for a retry), oldest first; the digests it got."""
    now = utcnow()
    candidates = (sa.select(scans.c.digest).where(_claimable(now, retry)).order_by(scans.c.queued_at)
                  .limit(limit).with_for_update(skip_locked=True))
    claimed = []
    for digest in (await conn.scalars(candidates)).all():
        if await _take(conn, digest, holder, ttl, _claimable(now, retry), now):
            claimed.append(digest)
    return claimed


async def claim_digest(conn: AsyncConnection, digest: str, holder: str, ttl: timedelta) -> bool:
    """Claim this digest's scan now (a scan someone waits for): queued, failed, or running with an
    expired claim, queued first if it has no row. False: another holder runs it, or it is done."""
    now = utcnow()
    await insert_ignore(conn, scans, [{"digest": digest, "status": QUEUED, "queued_at": now, "attempts": 0}])
    claimable = sa.or_(_claimable(now, None), scans.c.status == FAILED)
    return await _take(conn, digest, holder, ttl, claimable, now)


async def _take(conn: AsyncConnection, digest: str, holder: str, ttl: timedelta,
                claimable: sa.ColumnElement[bool], now: datetime) -> bool:
    result = await conn.execute(sa.update(scans).where(scans.c.digest == digest, claimable).values(
        status=RUNNING, claimed_by=holder, claimed_until=now + ttl, started_at=now, attempts=scans.c.attempts + 1))
    return result.rowcount == 1


def _held(digest: str, holder: str) -> sa.ColumnElement[bool]:
    return sa.and_(scans.c.digest == digest, scans.c.status == RUNNING, scans.c.claimed_by == holder)


async def renew(conn: AsyncConnection, digest: str, holder: str, ttl: timedelta) -> bool:
    """Keep the claim while the scan runs; False if it was lost (another node took it over)."""
    result = await conn.execute(sa.update(scans).where(_held(digest, holder)).values(claimed_until=utcnow() + ttl))
    return result.rowcount == 1


async def finish(conn: AsyncConnection, digest: str, holder: str, *, inventory: dict[str, Any],
                 findings: dict[str, Any], vulnerabilities: list[dict[str, Any]], vulndb_revision: int | None,
                 scanner_version: str) -> bool:
    """Store the result of a claimed scan; False if the claim was lost meanwhile (nothing stored)."""
    result = await conn.execute(sa.update(scans).where(_held(digest, holder)).values(
        status=DONE, finished_at=utcnow(), claimed_by=None, claimed_until=None, inventory=inventory,
        findings=findings, vulnerabilities=vulnerabilities, vulndb_revision=vulndb_revision,
        scanner_version=scanner_version, error=None))
    return result.rowcount == 1


async def fail(conn: AsyncConnection, digest: str, holder: str, error: str) -> bool:
    """Record that a claimed scan failed and why (a message without any file content)."""
    result = await conn.execute(sa.update(scans).where(_held(digest, holder)).values(
        status=FAILED, finished_at=utcnow(), claimed_by=None, claimed_until=None, error=error[:SCAN_ERROR]))
    return result.rowcount == 1


async def read(conn: AsyncConnection, digest: str) -> ScanRow | None:
    row = (await conn.execute(sa.select(scans).where(scans.c.digest == digest))).first()
    return None if row is None else _row(row)


async def rematched(conn: AsyncConnection, digest: str, vulnerabilities: list[dict[str, Any]],
                    vulndb_revision: int | None, *, was: int | None) -> bool:
    """Store a re-match of a done scan's stored inventory, unless someone changed its revision
    since ``was`` was read (a newer re-match or a new scan wins)."""
    same = scans.c.vulndb_revision.is_(None) if was is None else scans.c.vulndb_revision == was
    result = await conn.execute(sa.update(scans).where(scans.c.digest == digest, scans.c.status == DONE, same)
                                .values(vulnerabilities=vulnerabilities, vulndb_revision=vulndb_revision))
    return result.rowcount == 1


async def stale(conn: AsyncConnection, revision: int, *, limit: int = 100) -> list[str]:
    """Done scans matched against another vulnerability database revision than ``revision``."""
    query = (sa.select(scans.c.digest).where(
        scans.c.status == DONE, sa.or_(scans.c.vulndb_revision.is_(None), scans.c.vulndb_revision != revision))
        .order_by(scans.c.digest).limit(limit))
    return list((await conn.scalars(query)).all())


async def forget_unheld(conn: AsyncConnection, before: datetime) -> int:
    """Delete the rows (not running) of digests no repository holds any more, queued before
    ``before`` (a scan made for a push not yet committed keeps its row meanwhile)."""
    held = sa.select(manifests.c.id).where(manifests.c.digest == scans.c.digest).exists()
    result = await conn.execute(sa.delete(scans).where(~held, scans.c.status != RUNNING, scans.c.queued_at < before))
    return max(int(result.rowcount or 0), 0)


async def holders(conn: AsyncConnection, digest: str) -> list[str]:
    """The repositories holding a manifest with this digest, by name."""
    query = (sa.select(repositories.c.name).select_from(manifests.join(repositories))
             .where(manifests.c.digest == digest).order_by(repositories.c.name))
    return list((await conn.scalars(query)).all())


async def manifest(conn: AsyncConnection, digest: str) -> tuple[str, bytes] | None:
    """The media type and bytes of the manifest with this digest, from any repository holding it."""
    row = (await conn.execute(sa.select(manifests.c.media_type, manifests.c.content)
                              .where(manifests.c.digest == digest).limit(1))).first()
    return None if row is None else (row.media_type, bytes(row.content))


@dataclass(frozen=True, slots=True)
class Pushed:
    """A ``manifest.pushed`` event, as the scan queue reads it from the outbox."""

    id: int
    repository: str
    digest: str


async def pushed_since(conn: AsyncConnection, after: int, *, limit: int = 500,
                       recent: datetime | None = None) -> list[Pushed]:
    """The ``manifest.pushed`` events after event id ``after``, oldest first, and (``recent``)
    those written since then whatever their id: on PostgreSQL an id is taken when the row is
    written and becomes visible at commit, so an event may appear behind a cursor that passed it."""
    where = events.c.id > after if recent is None else sa.or_(events.c.id > after, events.c.created_at >= recent)
    query = (sa.select(events.c.id, events.c.repository, events.c.digest)
             .where(where, events.c.name == "manifest.pushed").order_by(events.c.id).limit(limit))
    return [Pushed(r.id, r.repository, r.digest) for r in (await conn.execute(query)).all() if r.digest]


async def pushed_after(conn: AsyncConnection, after: int) -> bool:
    """Whether a ``manifest.pushed`` event has an id above ``after``."""
    query = sa.select(events.c.id).where(events.c.id > after, events.c.name == "manifest.pushed").limit(1)
    return await conn.scalar(query) is not None
