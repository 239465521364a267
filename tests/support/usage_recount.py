"""Storage usage recounted from scratch, for tests: from the raw rows, in Python, without the
registry's usage queries (``store/usage.py``), to check the reports against.

Blob sizes come from the manifests' JSON descriptors where a stored manifest references the blob
(checked against the blob's row), else from the blob's row; a manifest's size is the length of
its stored bytes. The result has the shape of ``GET /api/v1/projects/{project}/usage``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from dockyard.store.db import Database
from dockyard.store.schema import blobs, manifests, projects, repositories, repository_blobs


def _project_of(repository: str) -> str:
    return repository.split("/", 1)[0]


async def recount(db: Database) -> dict[str, dict[str, Any]]:
    """Every project's usage (projects with a row or a repository), by project name."""
    async with db.read() as conn:
        names = {row[0]: row[1] for row in await conn.execute(sa.select(repositories.c.id, repositories.c.name))}
        links: dict[str, set[str]] = defaultdict(set)
        for repo_id, digest in await conn.execute(sa.select(repository_blobs.c.repository_id,
                                                            repository_blobs.c.digest)):
            links[names[repo_id]].add(digest)
        row_sizes = {row[0]: int(row[1]) for row in await conn.execute(sa.select(blobs.c.digest, blobs.c.size))}
        held: dict[str, dict[str, int]] = defaultdict(dict)
        described: dict[str, int] = {}
        for repo_id, digest, content in await conn.execute(sa.select(manifests.c.repository_id, manifests.c.digest,
                                                                     manifests.c.content)):
            held[names[repo_id]][digest] = len(content)
            document = json.loads(content)
            for item in [document.get("config"), *document.get("layers", []), *document.get("blobs", [])]:
                if isinstance(item, dict) and "digest" in item:
                    described[item["digest"]] = int(item["size"])
        quotas = {row[0]: row[1] for row in await conn.execute(sa.select(projects.c.name, projects.c.quota_bytes))}
    for digest, size in described.items():
        assert digest not in row_sizes or row_sizes[digest] == size, f"{digest}: row {row_sizes[digest]}, JSON {size}"
    sizes = {**row_sizes, **described}
    linking: dict[str, set[str]] = defaultdict(set)
    for repo, digests in links.items():
        for digest in digests:
            linking[digest].add(repo)
    found = {}
    for project in sorted({*quotas, *(_project_of(n) for n in names.values())}):
        repos = sorted(n for n in names.values() if _project_of(n) == project)
        digests = set().union(*(links[r] for r in repos)) if repos else set()
        manifest_bytes = sum(sum(held[r].values()) for r in repos)
        shared = sum(sizes[d] for d in digests if any(_project_of(r) != project for r in linking[d]))
        own = sum(sizes[d] for d in digests) - shared + manifest_bytes
        rows = []
        for repo in repos:
            repo_manifests = sum(held[repo].values())
            repo_shared = sum(sizes[d] for d in links[repo] if len(linking[d]) > 1)
            repo_own = sum(sizes[d] for d in links[repo] if len(linking[d]) == 1) + repo_manifests
            rows.append({"name": repo, "used_bytes": repo_own + repo_shared, "exclusive_bytes": repo_own,
                         "shared_bytes": repo_shared, "manifest_bytes": repo_manifests})
        found[project] = {"project": project, "quota_bytes": quotas.get(project), "used_bytes": own + shared,
                          "exclusive_bytes": own, "shared_bytes": shared, "manifest_bytes": manifest_bytes,
                          "repositories": rows}
    return found
