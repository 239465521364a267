"""`dockyard gc` and `dockyard repo delete` through the real CLI, next to a running server that
shares the data directory (no read-only mode, no pause in serving)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.ocihttp import config_blob, push_image
from tests.support.server import ADMIN_AUTH, AUTH_ENV, ServerProcess

pytestmark = pytest.mark.e2e

GC_ENV = {"DOCKYARD_GC__GRACE_PERIOD": "0s", "DOCKYARD_GC__INTERVAL": "24h"}


def dockyard(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env={**os.environ, **AUTH_ENV, **GC_ENV}, timeout=60,
                          check=False)


def test_gc_and_repo_delete_free_storage_while_the_server_serves(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    gone_layers = [b"layer only in the deleted tag" * 40, b"another one" * 30]
    kept_layers = [b"layer of the image that stays" * 20]
    with ServerProcess(data_dir=data_dir, env=GC_ENV) as server, \
            httpx.Client(base_url=server.url, auth=ADMIN_AUTH) as client:
        assert client.post("/api/v1/projects", json={"name": "team"}).status_code == 201
        gone, _ = push_image(client, "team/app", "v1", "gone", gone_layers)
        push_image(client, "team/keep", "v1", "kept", kept_layers)
        assert client.delete("/v2/team/app/manifests/v1").status_code == 202
        freed = sum(map(len, gone_layers)) + len(config_blob("gone"))

        dry = dockyard(data_dir, "gc", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        predicted = json.loads(dry.stdout)
        assert {k: predicted[k] for k in ("dry_run", "manifests_deleted", "blobs_deleted", "bytes_freed")} == {
            "dry_run": True, "manifests_deleted": 1, "blobs_deleted": 3, "bytes_freed": freed}
        assert client.get(f"/v2/team/app/manifests/{gone}").status_code == 200

        done = dockyard(data_dir, "gc", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert {k: report[k] for k in ("dry_run", "manifests_deleted", "blobs_deleted", "bytes_freed")} == {
            "dry_run": False, "manifests_deleted": 1, "blobs_deleted": 3, "bytes_freed": freed}
        assert {"examined", "duration_seconds"} <= set(report)
        assert client.get(f"/v2/team/app/manifests/{gone}").status_code == 404
        assert client.get("/v2/team/keep/manifests/v1").status_code == 200

        deleted = dockyard(data_dir, "repo", "delete", "team/keep")
        assert deleted.returncode == 0, deleted.stderr
        assert "deleted repository team/keep (1 tag(s), 1 manifest(s), 2 blob link(s))" in deleted.stdout
        assert client.get("/v2/team/keep/tags/list").status_code == 404
        missing = dockyard(data_dir, "repo", "delete", "team/keep")
        assert missing.returncode == 1
        assert "repository 'team/keep' not found" in missing.stderr

        plain = dockyard(data_dir, "gc")
        assert plain.returncode == 0, plain.stderr
        expected = len(config_blob("kept")) + sum(map(len, kept_layers))
        assert f"freed 0 manifest(s), 2 blob(s), {expected} bytes" in plain.stdout
        assert plain.stdout.count("deleted blob sha256:") == 2
        assert [p for p in (data_dir / "storage" / "blobs").rglob("*") if p.is_file()] == []
