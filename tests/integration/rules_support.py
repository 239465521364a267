"""Shared steps of the push-rules tests: writing a project's rules as rows, and what is stored."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from dockyard.store import accounts as account_rows
from dockyard.store import policies
from dockyard.store.schema import blobs, manifests, repositories, repository_blobs, tags, uploads
from tests.integration.conftest import Registry


async def make_project(registry: Registry, name: str) -> int:
    response = await registry.client.post("/api/v1/projects", json={"name": name})
    assert response.status_code == 201, response.text
    async with registry.parts.db.read() as conn:
        found = await account_rows.find_project(conn, name)
    assert found is not None
    return found.id


async def set_rules(registry: Registry, project_id: int, *, quota: int | None = None,
                    repository_pattern: str | None = None, tag_pattern: str | None = None,
                    immutable: tuple[tuple[str, str], ...] = ()) -> list[int]:
    """Write the project's rules as rows (as `dockyard quota set`, `naming set` and `immutable add`
    do); the ids of the immutable rules added."""
    async with registry.parts.db.write() as conn:
        await policies.set_quota(conn, project_id, quota)
        await policies.set_naming(conn, project_id, repository_pattern=repository_pattern, tag_pattern=tag_pattern)
        for repository_glob, tag_glob in immutable:
            assert await policies.add_immutable_rule(conn, project_id, repository_glob, tag_glob, "admin")
        return [rule.id for rule in await policies.immutable_rules_of(conn, project_id)]


async def stored_rows(registry: Registry) -> dict[str, list[tuple[object, ...]]]:
    """Every row a push can leave behind (repositories, blobs, links, manifests, tags, uploads)."""
    found = {}
    async with registry.parts.db.read() as conn:
        for table, columns in ((repositories, [repositories.c.name]), (blobs, [blobs.c.digest, blobs.c.size]),
                               (repository_blobs, [repository_blobs.c.repository_id, repository_blobs.c.digest]),
                               (manifests, [manifests.c.repository_id, manifests.c.digest]),
                               (tags, [tags.c.repository_id, tags.c.name, tags.c.manifest_id]),
                               (uploads, [uploads.c.id])):
            found[table.name] = sorted(tuple(row) for row in await conn.execute(sa.select(*columns)))
    return found


async def stored_files(registry: Registry) -> list[str]:
    """Every file (or object) in storage, blobs and uploads: on the filesystem every file under
    the root, temporary ones included; on an object store every key the driver lists."""
    if registry.config.storage.driver == "filesystem":
        root: Path = registry.config.storage_root
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    driver = registry.parts.store.driver
    return sorted([path for prefix in ("blobs", "uploads") async for path in driver.list(prefix)])
