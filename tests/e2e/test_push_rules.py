"""skopeo against a real registry process with naming rules and a quota: the push is refused and
skopeo shows the registry's message (the rule and an example; usage and limit) to the user.

The rules are written as rows in the server's database (as `dockyard naming set` and `dockyard
quota set` do) while it runs: every request reads them afresh.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from dockyard.config import build_config
from dockyard.store import accounts as account_rows
from dockyard.store import policies
from dockyard.store.db import Database
from tests.e2e.clients import CommandFailed, Registry, Skopeo, require_dockyard
from tests.e2e.conftest import TmpFactory
from tests.e2e.images import build_image, unique_seed, write_layout
from tests.support.server import ADMIN_AUTH

pytestmark = pytest.mark.e2e


def set_rules(data_dir: Path, project: str, *, quota: int | None = None,
              repository_pattern: str | None = None) -> None:
    config = build_config({"data_dir": str(data_dir)})

    async def write() -> None:
        db = Database(config.database_url, config.database)
        try:
            async with db.write() as conn:
                found = await account_rows.find_project(conn, project)
                assert found is not None
                await policies.set_quota(conn, found.id, quota)
                await policies.set_naming(conn, found.id, repository_pattern=repository_pattern, tag_pattern=None)
        finally:
            await db.dispose()
    asyncio.run(write())


def refused_push(skopeo: Skopeo, tmp: TmpFactory, destination: str) -> str:
    layout = write_layout(tmp("src"), "src", build_image(unique_seed(), layer_count=2))
    with pytest.raises(CommandFailed) as failed:
        skopeo.copy(f"oci:{layout}:src", destination)
    return str(failed.value)


def test_skopeo_shows_why_a_push_breaks_the_naming_rule_or_the_quota(
    skopeo: Skopeo, tmp: TmpFactory, registry: Registry,
) -> None:
    require_dockyard(registry, "naming rules and quotas")
    with httpx.Client(base_url=registry.url, auth=ADMIN_AUTH, timeout=30.0) as http:
        assert http.post("/api/v1/projects", json={"name": "team-a"}).status_code == 201
        data_dir: Path = registry.data_dir  # type: ignore[attr-defined]
        set_rules(data_dir, "team-a", repository_pattern=r"^(api|web)(/[a-z0-9-]+)?$")
        output = refused_push(skopeo, tmp, f"docker://{registry.host}/team-a/db:v1")
        assert "denied" in output.lower()
        assert ("repository team-a/db breaks the naming rule: the name after 'team-a/' must match "
                "'^(api|web)(/[a-z0-9-]+)?$'") in output
        assert "for example team-a/api" in output

        set_rules(data_dir, "team-a", quota=100, repository_pattern=r"^(api|web)(/[a-z0-9-]+)?$")
        output = refused_push(skopeo, tmp, f"docker://{registry.host}/team-a/api:v1")
        assert "project team-a would use" in output
        assert "of its 100 B quota" in output
        assert "dockyard quota set" in output
        usage = http.get("/api/v1/projects/team-a/usage").json()
        assert usage["used_bytes"] <= 100  # nothing over the quota was kept
        assert usage["repositories"] in ([], [{"name": "team-a/api", "used_bytes": usage["used_bytes"],
                                                "exclusive_bytes": usage["used_bytes"], "shared_bytes": 0,
                                                "manifest_bytes": 0}])
