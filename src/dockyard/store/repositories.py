"""Repositories: created on first write, listed for the catalog."""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import manifests, repositories, repository_blobs, tags
from dockyard.store.statements import insert_ignore


async def find_id(conn: AsyncConnection, name: str, *, hold: bool = False) -> int | None:
    """The repository's id; ``hold`` keeps it from being deleted until the transaction ends."""
    query = sa.select(repositories.c.id).where(repositories.c.name == name)
    return await conn.scalar(query.with_for_update(key_share=True) if hold else query)


async def ensure(conn: AsyncConnection, name: str) -> int:
    """The repository's id, creating it if needed (safe under concurrent creators), held until the
    transaction ends: a repository delete waits for the writer, then deletes what it wrote too."""
    repo_id = await find_id(conn, name, hold=True)
    if repo_id is None:
        await insert_ignore(conn, repositories, [{"name": name, "created_at": utcnow()}])
        repo_id = await find_id(conn, name, hold=True)
    assert repo_id is not None
    return repo_id


async def hold(conn: AsyncConnection, repository_id: int) -> bool:
    """Keep the repository from being deleted until the transaction ends; False if it is gone."""
    found = await conn.scalar(sa.select(repositories.c.id).where(repositories.c.id == repository_id)
                              .with_for_update(key_share=True))
    return found is not None


async def lock_for_delete(conn: AsyncConnection, name: str) -> int | None:
    """The repository's id, locked against every writer that holds it (``ensure``, ``hold``)."""
    return await conn.scalar(sa.select(repositories.c.id).where(repositories.c.name == name).with_for_update())


async def list_names(conn: AsyncConnection, *, after: str | None, limit: int) -> list[str]:
    query = sa.select(repositories.c.name).order_by(repositories.c.name).limit(limit)
    if after is not None:
        query = query.where(repositories.c.name > after)
    return list((await conn.scalars(query)).all())


async def in_project(conn: AsyncConnection, project: str, limit: int = 10) -> list[str]:
    """Names of (up to ``limit``) repositories in ``project``."""
    query = (sa.select(repositories.c.name).where(repositories.c.name.startswith(f"{project}/", autoescape=True))
             .order_by(repositories.c.name).limit(limit))
    return list((await conn.scalars(query)).all())


async def tag_names(conn: AsyncConnection, repository_id: int) -> list[str]:
    return list((await conn.scalars(sa.select(tags.c.name).where(tags.c.repository_id == repository_id)
                                    .order_by(tags.c.name))).all())


async def linked_digests(conn: AsyncConnection, repository_id: int) -> list[str]:
    return list((await conn.scalars(sa.select(repository_blobs.c.digest)
                                    .where(repository_blobs.c.repository_id == repository_id))).all())


async def manifest_count(conn: AsyncConnection, repository_id: int) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(manifests)
                                 .where(manifests.c.repository_id == repository_id)) or 0)


async def delete(conn: AsyncConnection, repository_id: int) -> None:
    """Delete the repository; its tags, manifests, links, uploads and their pins go with it."""
    await conn.execute(sa.delete(repositories).where(repositories.c.id == repository_id))
