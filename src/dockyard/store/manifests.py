"""Manifests (bytes in the row), their references, and referrers by subject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.schema import manifest_references, manifests, repositories, tags
from dockyard.store.statements import insert_ignore


@dataclass(frozen=True, slots=True)
class StoredManifest:
    id: int
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """Which manifest a reference names, without its bytes."""

    id: int
    digest: str
    media_type: str


@dataclass(frozen=True, slots=True)
class NewManifest:
    digest: str
    media_type: str
    artifact_type: str | None
    content: bytes
    subject_digest: str | None
    annotations: dict[str, str] | None
    blob_digests: tuple[str, ...]
    child_digests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Referrer:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


_REF_COLUMNS = (manifests.c.id, manifests.c.digest, manifests.c.media_type)

# The hot reads, built once with named parameters so the database layer compiles each once.
REF_BY_TAG = (sa.select(*_REF_COLUMNS)
              .select_from(repositories.join(tags).join(manifests, manifests.c.id == tags.c.manifest_id))
              .where(repositories.c.name == sa.bindparam("repository"), tags.c.name == sa.bindparam("tag")))
REF_BY_DIGEST = (sa.select(*_REF_COLUMNS).select_from(manifests.join(repositories))
                 .where(repositories.c.name == sa.bindparam("repository"),
                        manifests.c.digest == sa.bindparam("digest")))
CONTENT_BY_ID = sa.select(manifests.c.content).where(manifests.c.id == sa.bindparam("id"))


def _ref(row: tuple[Any, ...] | None) -> ManifestRef | None:
    return None if row is None else ManifestRef(row[0], row[1], row[2])


async def ref_by_tag(db: Database, repository: str, tag: str) -> ManifestRef | None:
    return _ref(await db.first(REF_BY_TAG, repository=repository, tag=tag))


async def ref_by_digest(db: Database, repository: str, digest: str) -> ManifestRef | None:
    return _ref(await db.first(REF_BY_DIGEST, repository=repository, digest=digest))


async def content(db: Database, manifest_id: int) -> bytes | None:
    row = await db.first(CONTENT_BY_ID, id=manifest_id)
    return None if row is None else bytes(row[0])


_PULLED_AT = manifests.c.last_pulled_at.type
# One statement for a batch of pulls: a manifest's last_pulled_at moves only when it is older than
# ``b_stale`` (an UPDATE that matches no row writes nothing), so a hot image costs one write an hour.
RECORD_PULL = (sa.update(manifests)
               .where(manifests.c.repository_id == sa.select(repositories.c.id)
                      .where(repositories.c.name == sa.bindparam("b_repository")).scalar_subquery(),
                      manifests.c.digest == sa.bindparam("b_digest"),
                      sa.or_(manifests.c.last_pulled_at.is_(None),
                             manifests.c.last_pulled_at < sa.bindparam("b_stale", type_=_PULLED_AT)))
               .values(last_pulled_at=sa.bindparam("b_at", type_=_PULLED_AT)))


async def record_pulls(conn: AsyncConnection, pulls: dict[tuple[str, str], datetime], fresh: timedelta) -> None:
    """Set last_pulled_at of each pulled (repository, digest) to when it was last pulled, unless
    the stored value is within ``fresh`` of that already."""
    if pulls:
        await conn.execute(RECORD_PULL, [{"b_repository": repository, "b_digest": digest, "b_at": at,
                                          "b_stale": at - fresh} for (repository, digest), at in sorted(pulls.items())])


async def find_id(conn: AsyncConnection, repository_id: int, digest: str, *, share: bool = False) -> int | None:
    """The manifest's id; ``share`` locks its row against the collector until the transaction ends."""
    query = sa.select(manifests.c.id).where(manifests.c.repository_id == repository_id, manifests.c.digest == digest)
    return await conn.scalar(query.with_for_update(read=True) if share else query)


async def missing_in_repository(conn: AsyncConnection, repository_id: int, digests: list[str]) -> list[str]:
    """Which of ``digests`` the repository has no manifest for; the rows it has are locked
    ``FOR SHARE`` until the transaction ends, so the collector cannot take them meanwhile."""
    if not digests:
        return []
    present = set((await conn.scalars(sa.select(manifests.c.digest).where(
        manifests.c.repository_id == repository_id, manifests.c.digest.in_(digests))
        .with_for_update(read=True))).all())
    return [d for d in digests if d not in present]


async def insert(conn: AsyncConnection, repository_id: int, new: NewManifest) -> int:
    """Store the manifest (a no-op if the repository has it) and return its id, its row locked
    against the collector until the transaction ends."""
    manifest_id = None
    for _ in range(3):  # a row the collector deleted between the insert and the lock is inserted again
        await insert_ignore(conn, manifests, [{
            "repository_id": repository_id, "digest": new.digest, "media_type": new.media_type,
            "artifact_type": new.artifact_type, "size": len(new.content), "content": new.content,
            "subject_digest": new.subject_digest, "annotations": new.annotations, "created_at": utcnow(),
        }])
        manifest_id = await find_id(conn, repository_id, new.digest, share=True)
        if manifest_id is not None:
            break
    assert manifest_id is not None
    references = [{"manifest_id": manifest_id, "kind": "blob", "digest": d} for d in set(new.blob_digests)]
    references += [{"manifest_id": manifest_id, "kind": "manifest", "digest": d}
                   for d in set(new.child_digests)]
    await insert_ignore(conn, manifest_references, references)
    return manifest_id


async def delete(conn: AsyncConnection, repository_id: int, digest: str) -> bool:
    """Delete the manifest; its tags and references go with it.

    Its row is locked first (FOR UPDATE), before its tags and references: a push of the same
    manifest, which holds the row FOR SHARE while it writes references, then either finishes first
    or waits and stores the manifest again, instead of deadlocking on the references.
    """
    manifest_id = await conn.scalar(sa.select(manifests.c.id).where(
        manifests.c.repository_id == repository_id, manifests.c.digest == digest).with_for_update())
    if manifest_id is None:
        return False
    await conn.execute(sa.delete(tags).where(tags.c.manifest_id == manifest_id))
    await conn.execute(sa.delete(manifest_references).where(manifest_references.c.manifest_id == manifest_id))
    await conn.execute(sa.delete(manifests).where(manifests.c.id == manifest_id))
    return True


async def referrers(conn: AsyncConnection, repository: str, subject: str,
                    artifact_type: str | None) -> list[Referrer]:
    query = (sa.select(manifests.c.digest, manifests.c.media_type, manifests.c.size,
                       manifests.c.artifact_type, manifests.c.annotations)
             .select_from(manifests.join(repositories))
             .where(repositories.c.name == repository, manifests.c.subject_digest == subject)
             .order_by(manifests.c.digest))
    if artifact_type is not None:
        query = query.where(manifests.c.artifact_type == artifact_type)
    return [Referrer(r.digest, r.media_type, r.size, r.artifact_type, r.annotations)
            for r in (await conn.execute(query)).all()]
