"""`dockyard vulndb import | status | sync` as real processes: plain progress lines on stderr
(no terminal), the counts on stdout, and sync from a local HTTP server (never the internet)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_vulndb import ADVISORIES, serving, write_zip
from tests.support.server import AUTH_ENV

pytestmark = pytest.mark.e2e


def dockyard(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "vulndb", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env={**os.environ, **AUTH_ENV, **(env or {})},
                          timeout=120, check=False)


def test_import_status_and_sync_as_processes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    source = tmp_path / "osv"
    (source / "nested").mkdir(parents=True)
    for file in ADVISORIES[:10]:
        shutil.copy(file, source)
    write_zip(source / "nested" / "all.zip", ADVISORIES[10:])
    (source / "nested" / "broken.json").write_text("{")

    imported = dockyard(data_dir, "import", str(source))
    assert imported.returncode == 0, imported.stderr
    assert "revision 1: 26 advisories read (26 added, 0 updated, 0 unchanged), 1 bad, 0 clipped" in imported.stdout
    assert f"skipped: {source}/nested/broken.json: not an OSV advisory" in imported.stderr
    assert f"importing {source}: done, 27 advisories" in imported.stderr  # plain lines: no terminal
    assert "\x1b[" not in imported.stderr

    status = json.loads(dockyard(data_dir, "status", "--json").stdout)
    assert (status["revision"], status["advisories"]) == (1, 26)
    assert status["ecosystems"] == {"Debian": 1, "Debian:11": 1, "Debian:12": 24}

    root = tmp_path / "mirror"
    (root / "Debian").mkdir(parents=True)
    write_zip(root / "Debian" / "all.zip", ADVISORIES)
    with serving(root) as url:
        synced = dockyard(data_dir, "sync", "--json", env={"DOCKYARD_SCAN__VULNDB__URL": url,
                                                          "DOCKYARD_SCAN__VULNDB__ECOSYSTEMS": "Debian,Alpine"})
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert (report["revision"], report["unchanged"], report["bad"]) == (2, 26, 1)
    assert report["errors"][0].startswith(f"{url}/Alpine/all.zip: download failed: Client error '404")
    text = dockyard(data_dir, "status").stdout
    assert "revision 2 at " in text
    assert f"from {url}: 0 added, 0 updated, 26 unchanged" in text
