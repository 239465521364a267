"""Scanning in a real `dockyard serve` (two worker processes): an image pushed over HTTP is scanned
in the background without anyone asking (its SBOM referrer appears, the scan metric counts it
once), and `dockyard scan` next to the running server prints the same report as the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.scanning_support import AWS_KEY_ID, AWS_SECRET, NAME, PACKAGES, debian_app
from tests.support.content import Image, sha256
from tests.support.server import ADMIN_AUTH, AUTH_ENV, ServerProcess

pytestmark = pytest.mark.e2e

SCAN_ENV = {"DOCKYARD_SCAN__ENABLED": "true", "DOCKYARD_SCAN__INTERVAL": "0.2", "DOCKYARD_SCAN__WORKERS": "1"}
SBOM = "application/vnd.cyclonedx+json"


def dockyard(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env={**os.environ, **AUTH_ENV, **SCAN_ENV}, timeout=120,
                          check=False)


def push(client: httpx.Client, image: Image, tag: str) -> None:
    for blob in image.blobs:
        started = client.post(f"/v2/{NAME}/blobs/uploads/")
        assert started.status_code == 202, started.text
        done = client.put(started.headers["location"], params={"digest": sha256(blob)}, content=blob,
                          headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
    pushed = client.put(f"/v2/{NAME}/manifests/{tag}", content=image.manifest,
                        headers={"Content-Type": image.media_type})
    assert pushed.status_code == 201, pushed.text


def referrers_when_there(client: httpx.Client, digest: str, deadline: float = 90.0) -> list[dict[str, object]]:
    """The image's SBOM referrers, once the server's own workers have attached one (a separate
    process: there is nothing to await but its answers)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        listed = client.get(f"/v2/{NAME}/referrers/{digest}", params={"artifactType": SBOM})
        assert listed.status_code == 200, listed.text
        if listed.json()["manifests"]:
            return list(listed.json()["manifests"])
        time.sleep(0.1)
    raise AssertionError(f"no SBOM referrer for {digest} within {deadline:.0f}s")


def test_a_push_is_scanned_in_the_background_and_the_cli_prints_its_report(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    image = debian_app()
    with ServerProcess(data_dir=data_dir, env=SCAN_ENV, workers=2) as server, \
            httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30) as client:
        assert client.post("/api/v1/projects", json={"name": "team"}).status_code == 201
        push(client, image, "v1")
        sboms = referrers_when_there(client, image.digest)
        assert len(sboms) == 1

        printed = dockyard(data_dir, "scan", f"{NAME}:v1", "--json")
        assert printed.returncode == 0, printed.stderr
        report = json.loads(printed.stdout)
        assert report["status"] == "done"
        assert {p["name"] for p in report["packages"]} == PACKAGES
        from_api = client.get(f"/api/v1/repositories/{NAME}/manifests/v1/scan")
        assert from_api.json() == report
        for text in (printed.stdout, from_api.text, server.log()):
            assert AWS_SECRET not in text
            assert AWS_KEY_ID not in text

        human = dockyard(data_dir, "scan", f"{NAME}:v1")
        assert human.returncode == 0, human.stderr
        assert "packages: 3 (2 deb, 1 pypi)" in human.stdout
        assert "removed, still in a layer" in human.stdout

        metrics = client.get("/metrics").text
        assert 'dockyard_scans_total{outcome="done"} 1.0' in metrics
        assert len(referrers_when_there(client, image.digest)) == 1  # still one: not scanned twice
