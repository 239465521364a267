"""What retention reads and writes: a repository's state as a snapshot for the pure evaluator
(``dockyard.policy.retention``), saved plans, and the tags a run deleted (restorable until they
expire; the collector keeps their manifests that long)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware, utcnow
from dockyard.store.schema import (
    blobs,
    deleted_tags,
    manifest_references,
    manifests,
    projects,
    repositories,
    repository_blobs,
    retention_plans,
    tags,
)

_CHUNK = 500  # digests per IN (...) list


@dataclass(frozen=True, slots=True)
class TagState:
    name: str
    digest: str
    pushed_at: datetime  # tags.updated_at: when the tag was last pushed or moved


@dataclass(frozen=True, slots=True)
class ManifestState:
    digest: str
    media_type: str
    pushed_at: datetime
    pulled_at: datetime | None = None
    subject: str | None = None
    artifact_type: str | None = None
    children: tuple[str, ...] = ()  # manifests an index lists
    blobs: tuple[str, ...] = ()  # config and layers (byte estimates use them; the evaluator does not)


@dataclass(frozen=True, slots=True)
class RepositorySnapshot:
    name: str  # the full name, "<project>/<path>"
    tags: tuple[TagState, ...]
    manifests: tuple[ManifestState, ...]


async def project_name(conn: AsyncConnection, project_id: int) -> str | None:
    return await conn.scalar(sa.select(projects.c.name).where(projects.c.id == project_id))


async def project_repositories(conn: AsyncConnection, project: str) -> list[tuple[int, str]]:
    """(id, name) of every repository of ``project``, by name."""
    query = (sa.select(repositories.c.id, repositories.c.name)
             .where(repositories.c.name.startswith(f"{project}/", autoescape=True))
             .order_by(repositories.c.name))
    return [(r.id, r.name) for r in await conn.execute(query)]


async def snapshot(conn: AsyncConnection, repository_id: int, name: str) -> RepositorySnapshot:
    """The repository's tags and manifests with their references, read in one transaction."""
    tag_rows = await conn.execute(
        sa.select(tags.c.name, manifests.c.digest, tags.c.updated_at)
        .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
        .where(tags.c.repository_id == repository_id).order_by(tags.c.name))
    found_tags = tuple(TagState(r.name, r.digest, aware(r.updated_at)) for r in tag_rows)
    references: dict[int, tuple[list[str], list[str]]] = {}
    ref_rows = await conn.execute(
        sa.select(manifest_references.c.manifest_id, manifest_references.c.kind, manifest_references.c.digest)
        .select_from(manifest_references.join(manifests))
        .where(manifests.c.repository_id == repository_id)
        .order_by(manifest_references.c.manifest_id, manifest_references.c.digest))
    for r in ref_rows:
        children, blob_digests = references.setdefault(r.manifest_id, ([], []))
        (children if r.kind == "manifest" else blob_digests).append(r.digest)
    manifest_rows = await conn.execute(
        sa.select(manifests.c.id, manifests.c.digest, manifests.c.media_type, manifests.c.created_at,
                  manifests.c.last_pulled_at, manifests.c.subject_digest, manifests.c.artifact_type)
        .where(manifests.c.repository_id == repository_id).order_by(manifests.c.digest))
    found_manifests = []
    for m in manifest_rows:
        children, blob_digests = references.get(m.id, ([], []))
        found_manifests.append(ManifestState(m.digest, m.media_type, aware(m.created_at), aware(m.last_pulled_at),
                                             m.subject_digest, m.artifact_type, tuple(children),
                                             tuple(blob_digests)))
    return RepositorySnapshot(name, found_tags, tuple(found_manifests))


def _chunks(items: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(set(items))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start:start + _CHUNK]


async def blob_sizes(conn: AsyncConnection, digests: Iterable[str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for chunk in _chunks(digests):
        for r in await conn.execute(sa.select(blobs.c.digest, blobs.c.size).where(blobs.c.digest.in_(chunk))):
            sizes[r.digest] = int(r.size)
    return sizes


async def held_outside(conn: AsyncConnection, digests: Iterable[str], repository_ids: Iterable[int]) -> set[str]:
    """Which of the blob ``digests`` a repository other than ``repository_ids`` links or references."""
    inside = sorted(set(repository_ids))
    held: set[str] = set()
    for chunk in _chunks(digests):
        linked = sa.select(repository_blobs.c.digest).where(
            repository_blobs.c.digest.in_(chunk), repository_blobs.c.repository_id.not_in(inside))
        referenced = (sa.select(manifest_references.c.digest).select_from(manifest_references.join(manifests))
                      .where(manifest_references.c.digest.in_(chunk), manifests.c.repository_id.not_in(inside)))
        held.update((await conn.scalars(linked.union(referenced))).all())
    return held


# -- plans -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedPlan:
    id: int
    project_id: int
    fingerprint: str
    plan: dict[str, Any]
    created_at: datetime
    applied_at: datetime | None


def _saved(row: Any) -> SavedPlan:
    return SavedPlan(row.id, row.project_id, row.fingerprint, dict(row.plan), aware(row.created_at),
                     aware(row.applied_at))


async def save_plan(conn: AsyncConnection, project_id: int, fingerprint: str, plan: dict[str, Any],
                    created_at: datetime) -> int:
    result = await conn.execute(sa.insert(retention_plans).values(
        project_id=project_id, fingerprint=fingerprint, plan=plan, created_at=created_at)
        .returning(retention_plans.c.id))
    return int(result.scalar_one())


async def prune_plans(conn: AsyncConnection, project_id: int, keep: int) -> None:
    """Forget all but the project's ``keep`` newest plans (every run, scheduled ones too, saves one)."""
    newest = (await conn.scalars(sa.select(retention_plans.c.id).where(retention_plans.c.project_id == project_id)
                                 .order_by(retention_plans.c.id.desc()).limit(keep))).all()
    if len(newest) == keep:
        await conn.execute(sa.delete(retention_plans).where(retention_plans.c.project_id == project_id,
                                                            retention_plans.c.id < min(newest)))


async def find_plan(conn: AsyncConnection, project_id: int, plan_id: int | None) -> SavedPlan | None:
    """The project's plan ``plan_id``, or its latest plan (None: the project has none)."""
    query = sa.select(retention_plans).where(retention_plans.c.project_id == project_id)
    if plan_id is not None:
        query = query.where(retention_plans.c.id == plan_id)
    row = (await conn.execute(query.order_by(retention_plans.c.id.desc()).limit(1))).first()
    return None if row is None else _saved(row)


async def mark_applied(conn: AsyncConnection, plan_id: int) -> bool:
    """False if the plan was applied already (by another apply, maybe on another node)."""
    result = await conn.execute(sa.update(retention_plans).where(
        retention_plans.c.id == plan_id, retention_plans.c.applied_at.is_(None)).values(applied_at=utcnow()))
    return result.rowcount > 0


# -- deleting and restoring tags ---------------------------------------------------------------


async def remember_deleted_tag(conn: AsyncConnection, repository_id: int, name: str, digest: str,
                               deleted_at: datetime, expires_at: datetime, run_id: int | None) -> None:
    """Note a tag a retention run deleted (replacing an older note for the same name)."""
    await conn.execute(sa.delete(deleted_tags).where(deleted_tags.c.repository_id == repository_id,
                                                     deleted_tags.c.name == name))
    await conn.execute(sa.insert(deleted_tags).values(repository_id=repository_id, name=name, digest=digest,
                                                      deleted_at=deleted_at, expires_at=expires_at, run_id=run_id))


@dataclass(frozen=True, slots=True)
class DeletedTag:
    id: int
    digest: str
    deleted_at: datetime
    expires_at: datetime


async def deleted_tag(conn: AsyncConnection, repository_id: int, name: str) -> DeletedTag | None:
    row = (await conn.execute(sa.select(deleted_tags).where(
        deleted_tags.c.repository_id == repository_id, deleted_tags.c.name == name))).first()
    return None if row is None else DeletedTag(row.id, row.digest, aware(row.deleted_at), aware(row.expires_at))


async def forget_deleted_tag(conn: AsyncConnection, deleted_id: int) -> None:
    await conn.execute(sa.delete(deleted_tags).where(deleted_tags.c.id == deleted_id))


async def untagged_manifest(conn: AsyncConnection, repository_id: int, digest: str
                            ) -> tuple[int, list[str], list[str]] | None:
    """(id, blob digests, child digests) of the manifest if it exists, no tag points at it and no
    manifest of the repository lists it as a child; else None."""
    manifest_id = await conn.scalar(sa.select(manifests.c.id).where(
        manifests.c.repository_id == repository_id, manifests.c.digest == digest))
    if manifest_id is None:
        return None
    if await conn.scalar(sa.select(tags.c.name).where(tags.c.manifest_id == manifest_id).limit(1)) is not None:
        return None
    parent = await conn.scalar(
        sa.select(manifest_references.c.manifest_id).select_from(manifest_references.join(manifests))
        .where(manifests.c.repository_id == repository_id, manifest_references.c.kind == "manifest",
               manifest_references.c.digest == digest).limit(1))
    if parent is not None:
        return None
    refs = (await conn.execute(sa.select(manifest_references.c.kind, manifest_references.c.digest).where(
        manifest_references.c.manifest_id == manifest_id))).all()
    return (manifest_id, sorted(r.digest for r in refs if r.kind == "blob"),
            sorted(r.digest for r in refs if r.kind == "manifest"))
