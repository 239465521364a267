"""`dockyard scrub`, `dockyard uploads purge` and `dockyard jobs` as an operator runs them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def dockyard(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "DOCKYARD_ADMIN_PASSWORD": "e2e-admin-password"})


def old_orphan(data_dir: Path, data: bytes, age_hours: float) -> str:
    """A blob file no row names, written ``age_hours`` ago (as a crash between move and commit leaves)."""
    encoded = hashlib.sha256(data).hexdigest()
    path = data_dir / "storage" / "blobs" / "sha256" / encoded[:2] / encoded
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age_hours * 3600
    os.utime(path, (then, then))
    return f"sha256:{encoded}"


def test_scrub_removes_an_old_orphan_and_jobs_shows_the_runs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert dockyard(data_dir, "migrate").returncode == 0
    old = old_orphan(data_dir, b"left behind by a crash", age_hours=48)
    young = old_orphan(data_dir, b"perhaps a push in flight", age_hours=1)  # within gc.grace_period (24h)

    preview = dockyard(data_dir, "scrub", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert f"orphan   {old}: no row names it; would be removed" in preview.stdout
    assert "scrubbing blobs: done" in preview.stderr  # plain progress lines off a terminal

    done = dockyard(data_dir, "scrub", "--json", "--rate", "5")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {key: report[key] for key in ("examined", "bytes_read", "missing", "corrupt", "orphans_removed",
                                         "resumed_from")} == {
        "examined": 0, "bytes_read": 0, "missing": [], "corrupt": [], "orphans_removed": [old], "resumed_from": None}
    assert report["orphans_kept"] == [young]
    assert not (data_dir / "storage" / "blobs" / "sha256" / old[7:9] / old[7:]).exists()

    assert dockyard(data_dir, "uploads", "purge").returncode == 0
    listed = dockyard(data_dir, "jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [(r["job"], r["outcome"], r["dry_run"], r["removed"]) for r in runs] == [
        ("uploads-purge", "ok", False, 0), ("scrub", "ok", False, 1), ("scrub", "ok", True, 1)]
    assert runs[1]["bytes_freed"] == len(b"left behind by a crash")
    assert all(r["ended_at"] and r["node"] for r in runs)

    table = dockyard(data_dir, "jobs", "--job", "scrub", "--limit", "1")
    assert table.stdout.splitlines()[0].split() == ["ID", "JOB", "NODE", "STARTED_AT", "ENDED_AT", "OUTCOME",
                                                    "DRY_RUN", "EXAMINED", "REMOVED", "BYTES_FREED"]
    assert len(table.stdout.splitlines()) == 2
    assert dockyard(data_dir, "scrub", "--rate", "0").returncode == 2  # refused by click, with the reason
