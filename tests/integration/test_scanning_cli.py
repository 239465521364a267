"""``dockyard scan`` through the real CLI (click's runner, in-process) on an image pushed through the
API, on SQLite and PostgreSQL: it scans when there is no result, prints the API's JSON with --json
and a readable summary without, never the secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main
from dockyard.cli.scan import split_image
from dockyard.config import Config
from tests.integration.scanning_support import (
    AWS_KEY_ID,
    AWS_SECRET,
    NAME,
    debian_app,
    opened,
    scan_config,
    scan_row,
    write_advisory,
)
from tests.integration.test_cli_access import CHEAP
from tests.support.content import Image, push_image


def run(tmp_path: Path, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(main, [*args, "--data-dir", str(tmp_path / "data")])
    assert (result.exit_code == 0) is ok, (args, result.output)
    assert AWS_SECRET not in result.output
    assert AWS_KEY_ID not in result.output
    return result


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in {**CHEAP, "DOCKYARD_DATABASE__URL": database_url}.items():
        monkeypatch.setenv(key, value)
    return database_url


async def _push(config: Config, image: Image, advisories: Path | None = None) -> None:
    async for registry in opened(config):
        await push_image(registry.client, NAME, image, "v1")
        if advisories is not None:
            await registry.parts.scanning.vulndb.import_path(advisories)


async def _from_api(config: Config, digest: str) -> tuple[int, Any]:
    found: list[tuple[int, Any]] = []
    async for registry in opened(config):
        row = await scan_row(registry.parts, digest)
        assert row is not None
        answer = await registry.client.get(f"/api/v1/repositories/{NAME}/manifests/v1/scan")
        found.append((row.attempts, answer.json()))
    return found[0]


def test_scan_prints_the_report(tmp_path: Path, environment: str) -> None:
    image = debian_app()
    config = scan_config(tmp_path, environment)
    write_advisory(tmp_path / "osv", "PYSEC-2024-1", "requests", "PyPI", "0", "2.32.0", ["2.31.0"])
    asyncio.run(_push(config, image, tmp_path / "osv"))

    as_json = json.loads(run(tmp_path, "scan", f"{NAME}:v1", "--json").output)
    assert as_json["digest"] == image.digest
    assert as_json["status"] == "done"
    assert [v["id"] for v in as_json["vulnerabilities"]] == ["PYSEC-2024-1"]
    assert as_json["summary"]["high"] == 1

    attempts, from_api = asyncio.run(_from_api(config, image.digest))
    assert attempts == 1  # scanned once, by the first command
    assert from_api == as_json

    text = run(tmp_path, "scan", f"{NAME}@{image.digest}").output
    assert f"{NAME}@{image.digest}" in text
    assert "packages: 3 (2 deb, 1 pypi)" in text
    assert "vulnerabilities: 1 (0 critical, 1 high, 0 medium, 0 low, 0 unknown)" in text
    assert "PYSEC-2024-1" in text
    assert "2.32.0" in text
    assert "root/.aws/credentials" in text
    assert "removed, still in a layer" in text
    assert "malware: not scanned" in text


def test_scan_of_an_unknown_image_says_so(tmp_path: Path, environment: str) -> None:
    asyncio.run(_push(scan_config(tmp_path, environment), debian_app()))
    failed = run(tmp_path, "scan", f"{NAME}:nope", ok=False)
    assert "manifest unknown" in failed.output


def test_image_references_are_split() -> None:
    assert split_image("team/app:v1") == ("team/app", "v1")
    assert split_image("team/app") == ("team/app", "latest")
    assert split_image("team/app@sha256:" + "a" * 64) == ("team/app", "sha256:" + "a" * 64)
