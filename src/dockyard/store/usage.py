"""Storage a project uses, as the quota counts it and the usage reports show it.

A project's repositories are those whose name is the project's name or starts with
``<project>/`` (``auth.principals.project_of``). What a project uses:

- each blob once, however many of its repositories link it (``repository_blobs``): the bytes are
  stored once, so they count once;
- plus the bytes of every manifest row of its repositories: a manifest's bytes live in its row,
  one row per repository that holds it, so each row counts (in the repository that holds it).

Uploads in flight are not counted (they are not stored yet); a blob or manifest counts until the
row that holds or links it is removed (the collector removes them after a delete).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.schema import blobs, manifests, projects, repositories, repository_blobs


def in_project(name_column: sa.ColumnElement[str], project: str) -> sa.ColumnElement[bool]:
    """Whether a repository name (a column) is in ``project``."""
    return sa.or_(name_column == project, name_column.startswith(f"{project}/", autoescape=True))


def _project_digests(project: str) -> sa.Select[tuple[str]]:
    repos = repositories.alias("project_repos")
    links = repository_blobs.alias("project_links")
    return (sa.select(links.c.digest).select_from(links.join(repos, repos.c.id == links.c.repository_id))
            .where(in_project(repos.c.name, project)))


def _manifest_bytes(project: str) -> sa.ScalarSelect[int]:
    return (sa.select(sa.func.coalesce(sa.func.sum(manifests.c.size), 0))
            .select_from(manifests.join(repositories)).where(in_project(repositories.c.name, project))
            .scalar_subquery())


async def project_usage(conn: AsyncConnection, project: str) -> int:
    """The bytes ``project`` uses now: its distinct blobs plus its manifest rows."""
    blob_bytes = (sa.select(sa.func.coalesce(sa.func.sum(blobs.c.size), 0))
                  .where(blobs.c.digest.in_(_project_digests(project))).scalar_subquery())
    return int(await conn.scalar(sa.select(blob_bytes + _manifest_bytes(project))) or 0)


async def blob_in_project(conn: AsyncConnection, project: str, digest: str) -> bool:
    """Whether a repository of ``project`` links the blob (linking it once more costs nothing)."""
    query = (sa.select(repository_blobs.c.digest).select_from(repository_blobs.join(repositories))
             .where(repository_blobs.c.digest == digest, in_project(repositories.c.name, project)).limit(1))
    return await conn.scalar(query) is not None


async def blob_size(conn: AsyncConnection, digest: str) -> int | None:
    return await conn.scalar(sa.select(blobs.c.size).where(blobs.c.digest == digest))


async def lock_quota(conn: AsyncConnection, project_id: int) -> int | None:
    """The project's quota, read under a row lock held until the transaction ends (PostgreSQL:
    ``FOR UPDATE``; SQLite serializes every write transaction already), so two pushes into one
    project take turns between their check and their insert."""
    query = sa.select(projects.c.quota_bytes).where(projects.c.id == project_id).with_for_update()
    return await conn.scalar(query)


# -- reports -----------------------------------------------------------------------------------


async def consistent(conn: AsyncConnection) -> AsyncConnection:
    """The connection, set so that the several queries of a report see one snapshot (PostgreSQL:
    REPEATABLE READ; a SQLite read transaction sees one snapshot already). Before its first query."""
    if conn.dialect.name == "postgresql":
        return await conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    name: str
    exclusive_bytes: int  # blobs no other repository links, and its manifests
    shared_bytes: int  # blobs another repository (of any project) links too
    manifest_bytes: int  # of which its manifests (part of exclusive_bytes)


@dataclass(frozen=True, slots=True)
class ProjectUsage:
    project: str
    quota_bytes: int | None
    exclusive_bytes: int  # blobs no other project's repository links, and the manifests
    shared_bytes: int  # blobs a repository of another project links too
    manifest_bytes: int
    repositories: tuple[RepositoryUsage, ...]

    @property
    def used_bytes(self) -> int:
        return self.exclusive_bytes + self.shared_bytes


async def project_report(conn: AsyncConnection, project: str, quota_bytes: int | None) -> ProjectUsage:
    """Exact figures for the project and each of its repositories."""
    names = list((await conn.scalars(sa.select(repositories.c.name)
                                     .where(in_project(repositories.c.name, project))
                                     .order_by(repositories.c.name))).all())
    blob_split = await _repository_blob_split(conn, project)
    manifest_split = await _repository_manifest_bytes(conn, project)
    repos = []
    for name in names:
        exclusive, shared = blob_split.get(name, (0, 0))
        manifest_bytes = manifest_split.get(name, 0)
        repos.append(RepositoryUsage(name, exclusive + manifest_bytes, shared, manifest_bytes))
    exclusive, shared = await _project_blob_split(conn, project)
    manifest_bytes = sum(manifest_split.values())
    return ProjectUsage(project, quota_bytes, exclusive + manifest_bytes, shared, manifest_bytes, tuple(repos))


async def _repository_blob_split(conn: AsyncConnection, project: str) -> dict[str, tuple[int, int]]:
    """Per repository of the project: bytes of blobs only it links, and of blobs others link too."""
    counted = repository_blobs.alias("counted")
    link_counts = (sa.select(counted.c.digest, sa.func.count().label("links"))
                   .where(counted.c.digest.in_(_project_digests(project)))
                   .group_by(counted.c.digest).subquery("link_counts"))
    exclusive = sa.func.sum(sa.case((link_counts.c.links == 1, blobs.c.size), else_=0))
    shared = sa.func.sum(sa.case((link_counts.c.links > 1, blobs.c.size), else_=0))
    query = (sa.select(repositories.c.name, exclusive, shared)
             .select_from(repository_blobs.join(repositories)
                          .join(blobs, blobs.c.digest == repository_blobs.c.digest)
                          .join(link_counts, link_counts.c.digest == repository_blobs.c.digest))
             .where(in_project(repositories.c.name, project)).group_by(repositories.c.name))
    return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in await conn.execute(query)}


async def _repository_manifest_bytes(conn: AsyncConnection, project: str) -> dict[str, int]:
    query = (sa.select(repositories.c.name, sa.func.sum(manifests.c.size))
             .select_from(manifests.join(repositories)).where(in_project(repositories.c.name, project))
             .group_by(repositories.c.name))
    return {row[0]: int(row[1] or 0) for row in await conn.execute(query)}


async def _project_blob_split(conn: AsyncConnection, project: str) -> tuple[int, int]:
    """The project's distinct blobs: bytes only it links, and bytes another project links too."""
    repos = repositories.alias("other_repos")
    links = repository_blobs.alias("other_links")
    elsewhere = (sa.select(links.c.digest).select_from(links.join(repos, repos.c.id == links.c.repository_id))
                 .where(sa.not_(in_project(repos.c.name, project)),
                        links.c.digest.in_(_project_digests(project))))
    is_shared = blobs.c.digest.in_(elsewhere)
    query = sa.select(sa.func.sum(sa.case((is_shared, 0), else_=blobs.c.size)),
                      sa.func.sum(sa.case((is_shared, blobs.c.size), else_=0))
                      ).where(blobs.c.digest.in_(_project_digests(project)))
    row = (await conn.execute(query)).one()
    return int(row[0] or 0), int(row[1] or 0)


async def quota_of(conn: AsyncConnection, project: str) -> int | None:
    return await conn.scalar(sa.select(projects.c.quota_bytes).where(projects.c.name == project))


async def project_exists(conn: AsyncConnection, project: str) -> bool:
    return await conn.scalar(sa.select(projects.c.id).where(projects.c.name == project)) is not None


async def project_names(conn: AsyncConnection) -> list[tuple[str, int | None]]:
    """Every project with its quota: the project rows, and the first components of repository
    names that have no row (repositories pushed without access control)."""
    found: dict[str, int | None] = {row[0]: row[1] for row in await conn.execute(
        sa.select(projects.c.name, projects.c.quota_bytes))}
    for name in (await conn.scalars(sa.select(repositories.c.name))).all():
        found.setdefault(name.split("/", 1)[0], None)
    return sorted(found.items())
