"""Garbage-collection rows: candidates, blob pins, deletion tombstones, and the checks the collector
runs on each candidate.

Every check takes ``lock``: the collector's re-check locks the row it may delete (``FOR UPDATE``)
so that a writer that relies on the row (a manifest PUT, a mount, an upload) and takes it ``FOR
SHARE`` either finishes first, and the check then sees what it wrote, or waits, and then finds the
row gone. SQLAlchemy leaves the clause out on SQLite, where ``BEGIN IMMEDIATE`` serializes writers.
The ``gone_*`` sets let a dry run, which deletes nothing, treat what it would have deleted as gone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import (
    blob_deletions,
    blob_pins,
    blobs,
    deleted_tags,
    gc_candidates,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
)
from dockyard.store.statements import insert_ignore

MANIFEST, LINK, BLOB = "manifest", "link", "blob"


@dataclass(frozen=True, slots=True, order=True)
class Candidate:
    """Something that may be garbage: a manifest or a link of a repository, or a blob's bytes."""

    kind: str
    repository_id: int | None
    digest: str


# -- candidates --------------------------------------------------------------------------------

async def add_candidates(conn: AsyncConnection, found: Iterable[Candidate], *, reason: str,
                         due_at: datetime) -> None:
    """Note candidates for review from ``due_at`` on (inside the transaction that made them)."""
    now = utcnow()
    rows = [{"kind": c.kind, "repository_id": c.repository_id, "digest": c.digest, "reason": reason[:32],
             "created_at": now, "due_at": due_at} for c in dict.fromkeys(found)]
    if rows:
        await conn.execute(sa.insert(gc_candidates), rows)


async def forget_manifest(conn: AsyncConnection, repository_id: int, digest: str) -> None:
    """A manifest pushed again is wanted: it is no candidate any more."""
    await conn.execute(sa.delete(gc_candidates).where(
        gc_candidates.c.kind == MANIFEST, gc_candidates.c.repository_id == repository_id,
        gc_candidates.c.digest == digest))


async def due(conn: AsyncConnection, now: datetime, *, after_id: int, limit: int) -> list[tuple[int, Candidate]]:
    """Candidates due by ``now`` with an id above ``after_id``, oldest first."""
    query = (sa.select(gc_candidates.c.id, gc_candidates.c.kind, gc_candidates.c.repository_id,
                       gc_candidates.c.digest)
             .where(gc_candidates.c.due_at <= now, gc_candidates.c.id > after_id)
             .order_by(gc_candidates.c.id).limit(limit))
    return [(r.id, Candidate(r.kind, r.repository_id, r.digest)) for r in await conn.execute(query)]


def _rows_of(c: Candidate) -> sa.ColumnElement[bool]:
    repo = (gc_candidates.c.repository_id.is_(None) if c.repository_id is None
            else gc_candidates.c.repository_id == c.repository_id)
    return sa.and_(gc_candidates.c.kind == c.kind, repo, gc_candidates.c.digest == c.digest)


# A run reviews the rows due by the time it started (``now``); rows due later, which changes made
# since, stay for a later run.

async def is_due(conn: AsyncConnection, c: Candidate, now: datetime) -> bool:
    """Whether a due row still names ``c`` (a manifest PUT removes its manifest's rows)."""
    found = await conn.scalar(sa.select(gc_candidates.c.id).where(_rows_of(c), gc_candidates.c.due_at <= now)
                              .limit(1))
    return found is not None


async def drop(conn: AsyncConnection, c: Candidate, now: datetime) -> None:
    """Remove the reviewed rows of ``c``."""
    await conn.execute(sa.delete(gc_candidates).where(_rows_of(c), gc_candidates.c.due_at <= now))


async def postpone(conn: AsyncConnection, c: Candidate, now: datetime, until: datetime) -> None:
    """Review ``c`` again from ``until`` on."""
    await conn.execute(sa.update(gc_candidates).where(_rows_of(c), gc_candidates.c.due_at <= now)
                       .values(due_at=until))


async def pending_count(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(gc_candidates)) or 0)


# -- manifests ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ManifestRow:
    id: int
    repository: str
    subject: str | None
    size: int


async def find_manifest(conn: AsyncConnection, repository_id: int, digest: str, *, lock: bool) -> ManifestRow | None:
    query = (sa.select(manifests.c.id, repositories.c.name, manifests.c.subject_digest, manifests.c.size)
             .select_from(manifests.join(repositories))
             .where(manifests.c.repository_id == repository_id, manifests.c.digest == digest))
    if lock:
        query = query.with_for_update(of=manifests)
    row = (await conn.execute(query)).first()
    return None if row is None else ManifestRow(row[0], row[1], row[2], row[3])


async def manifest_holder(conn: AsyncConnection, repository_id: int, digest: str, found: ManifestRow,
                          now: datetime, gone: Collection[int] = ()) -> str | None:
    """What keeps the manifest (None: nothing): a tag, an index listing it, the subject it refers
    to, or a tag deleted by retention that can still be restored."""
    if await conn.scalar(sa.select(tags.c.name).where(tags.c.manifest_id == found.id).limit(1)) is not None:
        return "tagged"
    parents = await conn.scalars(
        sa.select(manifests.c.id).select_from(manifest_references.join(manifests))
        .where(manifests.c.repository_id == repository_id, manifest_references.c.kind == "manifest",
               manifest_references.c.digest == digest))
    if any(parent not in gone for parent in parents):
        return "listed by an index"
    if found.subject is not None:
        subject = await conn.scalar(sa.select(manifests.c.id).where(
            manifests.c.repository_id == repository_id, manifests.c.digest == found.subject))
        if subject is not None and subject not in gone:
            return "its subject exists"
    restorable = await conn.scalar(sa.select(deleted_tags.c.id).where(
        deleted_tags.c.repository_id == repository_id, deleted_tags.c.digest == digest,
        deleted_tags.c.expires_at > now).limit(1))
    return "restorable tag" if restorable is not None else None


@dataclass(frozen=True, slots=True)
class ManifestContents:
    blobs: list[str]
    children: list[str]
    referrers: list[str]


async def contents_of(conn: AsyncConnection, repository_id: int, manifest_id: int, digest: str) -> ManifestContents:
    """The manifest's blobs, child manifests, and the referrers naming it as their subject."""
    refs = (await conn.execute(sa.select(manifest_references.c.kind, manifest_references.c.digest)
                               .where(manifest_references.c.manifest_id == manifest_id))).all()
    referrers = await conn.scalars(sa.select(manifests.c.digest).where(
        manifests.c.repository_id == repository_id, manifests.c.subject_digest == digest))
    return ManifestContents([d for k, d in refs if k == "blob"], [d for k, d in refs if k == "manifest"],
                            list(referrers))


async def delete_manifest(conn: AsyncConnection, manifest_id: int) -> None:
    """Delete an untagged manifest row; its references go with it."""
    await conn.execute(sa.delete(manifest_references).where(manifest_references.c.manifest_id == manifest_id))
    await conn.execute(sa.delete(manifests).where(manifests.c.id == manifest_id))


# -- links of a repository to a blob -----------------------------------------------------------

async def find_link(conn: AsyncConnection, repository_id: int, digest: str, *, lock: bool) -> bool:
    query = sa.select(repository_blobs.c.digest).where(repository_blobs.c.repository_id == repository_id,
                                                       repository_blobs.c.digest == digest)
    if lock:
        query = query.with_for_update()
    return (await conn.scalar(query)) is not None


async def link_used(conn: AsyncConnection, repository_id: int, digest: str, gone: Collection[int] = ()) -> bool:
    """Whether a manifest of the repository lists the blob."""
    users = await conn.scalars(
        sa.select(manifests.c.id).select_from(manifest_references.join(manifests))
        .where(manifests.c.repository_id == repository_id, manifest_references.c.kind == "blob",
               manifest_references.c.digest == digest))
    return any(user not in gone for user in users)


async def delete_link(conn: AsyncConnection, repository_id: int, digest: str) -> None:
    await conn.execute(sa.delete(repository_blobs).where(repository_blobs.c.repository_id == repository_id,
                                                         repository_blobs.c.digest == digest))


async def linked_anywhere(conn: AsyncConnection, digest: str, gone: Collection[tuple[int, str]] = ()) -> bool:
    linking = await conn.scalars(sa.select(repository_blobs.c.repository_id).where(repository_blobs.c.digest == digest))
    return any((repo, digest) not in gone for repo in linking)


# -- blobs -------------------------------------------------------------------------------------

async def find_blob(conn: AsyncConnection, digest: str, *, lock: bool) -> int | None:
    """The blob's size if the registry knows it; ``lock`` takes its row for update."""
    query = sa.select(blobs.c.size).where(blobs.c.digest == digest)
    if lock:
        query = query.with_for_update()
    size = await conn.scalar(query)
    return None if size is None else int(size)


async def share_blob(conn: AsyncConnection, digest: str) -> bool:
    """Lock the blob's row against the collector until this transaction ends; False if no row."""
    return (await conn.scalar(sa.select(blobs.c.digest).where(blobs.c.digest == digest)
                              .with_for_update(read=True))) is not None


async def is_pinned(conn: AsyncConnection, digest: str) -> bool:
    found = await conn.scalar(sa.select(blob_pins.c.upload_id).where(blob_pins.c.digest == digest).limit(1))
    return found is not None


async def delete_blob_row(conn: AsyncConnection, digest: str) -> None:
    """Delete the blob's row and leave a tombstone until its bytes are gone."""
    await conn.execute(sa.delete(blobs).where(blobs.c.digest == digest))
    await insert_ignore(conn, blob_deletions, [{"digest": digest, "started_at": utcnow()}])


async def tombstones(conn: AsyncConnection, limit: int = 1000) -> list[str]:
    return list(await conn.scalars(sa.select(blob_deletions.c.digest).order_by(blob_deletions.c.digest)
                                   .limit(limit)))


async def has_tombstone(conn: AsyncConnection, digest: str) -> bool:
    return (await conn.scalar(sa.select(blob_deletions.c.digest).where(blob_deletions.c.digest == digest))) is not None


async def remove_tombstone(conn: AsyncConnection, digest: str) -> None:
    await conn.execute(sa.delete(blob_deletions).where(blob_deletions.c.digest == digest))


# -- pins: an upload about to publish a blob ---------------------------------------------------

async def pin(conn: AsyncConnection, upload_id: str, digest: str) -> None:
    await conn.execute(sa.delete(blob_pins).where(blob_pins.c.upload_id == upload_id))
    await conn.execute(sa.insert(blob_pins).values(upload_id=upload_id, digest=digest, created_at=utcnow()))


async def unpin(conn: AsyncConnection, upload_id: str) -> None:
    await conn.execute(sa.delete(blob_pins).where(blob_pins.c.upload_id == upload_id))


# -- tags deleted by retention -----------------------------------------------------------------

async def expired_deleted_tags(conn: AsyncConnection, now: datetime, limit: int = 1000) -> list[tuple[int, int, str]]:
    """(id, repository id, digest) of deleted tags whose restore window has ended."""
    rows = await conn.execute(sa.select(deleted_tags.c.id, deleted_tags.c.repository_id, deleted_tags.c.digest)
                              .where(deleted_tags.c.expires_at <= now).order_by(deleted_tags.c.id).limit(limit))
    return [(r.id, r.repository_id, r.digest) for r in rows]


async def delete_deleted_tags(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(sa.delete(deleted_tags).where(deleted_tags.c.id.in_(ids)))
