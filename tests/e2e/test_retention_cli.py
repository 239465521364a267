"""`dockyard retention plan | apply` and `dockyard tag restore` as an operator types them, beside a
running `dockyard serve`: the printed plan, its --explain output, and a restored tag that pulls."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from dockyard.config import build_config
from dockyard.store import policies
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.policies import RetentionRules
from dockyard.store.schema import manifests, projects, tags
from tests.support.content import OCI_INDEX, make_artifact, make_image, make_index, push_image, push_manifest
from tests.support.server import ADMIN_AUTH, AUTH_ENV, ServerProcess

pytestmark = pytest.mark.e2e
REPO = "team/api"


def dockyard(data_dir: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "dockyard", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env={**os.environ, **AUTH_ENV}, timeout=60, check=False)
    assert done.returncode == status, done.stderr
    return done


async def fill(server: ServerProcess) -> dict[str, str]:
    """A project with a policy (keep the 2 newest, keep v*, drop untagged after 7 days) and
    content of every kind, made to look old where the policy should notice."""
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN_AUTH, timeout=30) as client:
        assert (await client.post("/api/v1/projects", json={"name": "team"})).status_code == 201
        digests = {}
        for tag in ("v1.0.0", "nightly-1", "nightly-2"):
            digests[tag] = await push_image(client, REPO, make_image(), tag)
        loose = make_image()
        digests["loose"] = await push_image(client, REPO, loose)
        children = [make_image(), make_image()]
        for child in children:
            await push_image(client, REPO, child)
        signature = make_artifact(loose, "application/vnd.dev.cosign.artifact.sig.v1+json")
        digests["loose-signature"] = await push_image(client, REPO, signature)
    config = build_config({"data_dir": str(server.data_dir)})
    db = Database(config.database_url, config.database)
    try:
        old = utcnow() - timedelta(days=40)
        async with db.write() as conn:
            await conn.execute(sa.update(manifests).values(created_at=old))
            for days, tag in enumerate(("v1.0.0", "nightly-1", "nightly-2")):  # oldest first
                await conn.execute(sa.update(tags).where(tags.c.name == tag).values(updated_at=old + timedelta(days)))
            project_id = await conn.scalar(sa.select(projects.c.id).where(projects.c.name == "team"))
            await policies.put_retention_policy(conn, project_id, RetentionRules(
                keep_last=2, keep_tags=r"^v\d", untagged_days=7))
    finally:
        await db.dispose()
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN_AUTH, timeout=30) as client:
        response = await push_manifest(client, REPO, "latest", make_index(children), OCI_INDEX)
        assert response.status_code == 201
    return digests


def test_plan_explain_apply_and_restore_from_the_cli(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ServerProcess(data_dir) as server:
        digests = asyncio.run(fill(server))
        plan = dockyard(data_dir, "retention", "plan", "team").stdout
        print(plan)
        assert "Retention plan 1 for project team" in plan
        assert "remove  tag nightly-1" in plan
        assert "matches no keep rule (keep_last=2, keep_tags='^v\\d')" in plan
        assert "removed: untagged and pushed 40 days ago (untagged_days=7)" in plan
        assert "removed: signature of sha256:" in plan  # goes with the untagged image it signs
        assert "kept" not in plan.split("Total:")[0].split("\n", 2)[2].replace("kept)", "")
        assert "Total: 3 item(s) to remove" in plan
        assert "To apply it: dockyard retention apply team --plan 1" in plan

        explain = dockyard(data_dir, "retention", "plan", "team", "--explain").stdout
        print(explain)
        assert "keep    tag latest" in explain
        assert "among the 2 most recently pushed (keep_last=2)" in explain
        assert "kept: matches keep_tags '^v\\d'" in explain
        assert "kept: child of kept index sha256:" in explain

        applied = dockyard(data_dir, "retention", "apply", "team").stdout
        print(applied)
        assert "Applied plan 2: deleted 1 tag(s) and 2 untagged manifest(s)" in applied
        assert "Restore a deleted tag with: dockyard tag restore REPOSITORY:TAG" in applied
        assert httpx.get(f"{server.url}/v2/{REPO}/manifests/nightly-1", auth=ADMIN_AUTH).status_code == 404

        restored = dockyard(data_dir, "tag", "restore", f"{REPO}:nightly-1").stdout
        print(restored)
        assert restored.strip() == f"restored {REPO}:nightly-1 -> {digests['nightly-1']}"
        pulled = httpx.get(f"{server.url}/v2/{REPO}/manifests/nightly-1", auth=ADMIN_AUTH,
                           headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert pulled.status_code == 200
        assert pulled.headers["docker-content-digest"] == digests["nightly-1"]
        again = dockyard(data_dir, "tag", "restore", f"{REPO}:nightly-1", status=1).stderr
        assert again == f"Error: {REPO}:nightly-1 was not deleted by a retention run, so there is nothing to restore\n"
        assert "write it as REPOSITORY:TAG" in dockyard(data_dir, "tag", "restore", REPO, status=2).stderr
        stale = dockyard(data_dir, "retention", "apply", "team", status=1).stderr
        assert "plan 2 was applied at" in stale
