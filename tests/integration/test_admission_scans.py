"""Push and pull rules that read real scans, on the real app (SQLite and PostgreSQL): a push waits
for the scan of exactly that image and is refused, warned or accepted; a scan past
``scan.push_timeout`` answers 503 and a retry uses the result; the vulnerability rules honour the
allow-list by id or alias until it expires."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from dockyard.services.vulndb import VulnDbService
from dockyard.store import accounts, scans
from dockyard.store import admission as admission_rows
from tests.integration.conftest import Registry, open_registry
from tests.integration.scanning_support import (
    AWS_SECRET,
    NAME,
    debian_app,
    image_of,
    opened,
    scan_config,
    write_advisory,
)
from tests.support.content import OCI_INDEX, Image, make_index, push_blob, push_image, push_manifest

P = "/api/v1/projects/team"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["errors"][0]
    assert error["code"] == code, error
    return error


async def setup(registry: Registry, rules: dict[str, Any]) -> None:
    ok(await registry.client.post("/api/v1/projects", json={"name": "team"}), 201)
    ok(await registry.client.put(f"{P}/admission", json=rules))


async def push_blobs(api: httpx.AsyncClient, image: Image) -> None:
    for blob in image.blobs:
        await push_blob(api, NAME, blob)


def secret_message(image: Image) -> str:
    layer = json.loads(image.manifest)["layers"][1]["digest"]
    where = f"layer {layer[:19]}…, removed but still downloadable"
    return (f"2 secrets found: aws-access-key-id in /root/.aws/credentials line 2 ({where}); "
            f"aws-secret-access-key in /root/.aws/credentials line 3 ({where}): remove them from the layer that "
            "added them and rebuild")


async def audit(api: httpx.AsyncClient, action: str) -> list[dict[str, Any]]:
    found = ok(await api.get("/api/v1/audit", params={"project": "team", "action": action}))
    return list(reversed(found["events"]))


async def test_a_push_with_secrets_is_refused_after_its_scan(registry: Registry) -> None:
    await setup(registry, {"push": {"secrets": "enforce", "malware": "warn"}})
    api, image = registry.client, debian_app()
    await push_blobs(api, image)
    response = await push_manifest(api, NAME, "v1", image.manifest)
    error = error_of(response, 403, "DENIED")
    assert error["message"] == secret_message(image)
    assert AWS_SECRET[:5] not in response.text
    assert (await api.get(f"/v2/{NAME}/manifests/v1")).status_code == 404
    async with registry.parts.db.read() as conn:
        kept = await scans.read(conn, image.digest)
    assert kept is not None
    assert kept.status == scans.DONE


async def test_a_warn_rule_lets_the_push_through_with_header_and_event(registry: Registry) -> None:
    await setup(registry, {"push": {"secrets": "warn", "vulnerabilities": {"severity": "critical",
                                                                          "mode": "enforce"}}})
    api, image = registry.client, debian_app()
    await push_blobs(api, image)
    response = await push_manifest(api, NAME, "v1", image.manifest)
    assert response.status_code == 201, response.text
    assert response.headers["dockyard-policy-warning"] == secret_message(image).replace("…", "...")
    (event,) = await audit(api, "policy.warned")
    assert (event["digest"], event["detail"]["rules"], event["detail"]["message"]) == (
        image.digest, ["push.secrets"], secret_message(image))
    assert AWS_SECRET[:5] not in json.dumps(event)

    # An index: its children's findings (the same layer once), checked like an image.
    arm = debian_app(architecture="arm64")
    await push_image(api, NAME, arm)
    index = make_index([image, arm])
    pushed = await push_manifest(api, NAME, "multi", index, OCI_INDEX)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["dockyard-policy-warning"].startswith("2 secrets found: aws-access-key-id")


async def test_vulnerability_rules_honour_the_allow_list(registry: Registry, tmp_path: Path) -> None:
    await setup(registry, {"push": {"vulnerabilities": {"severity": "high", "mode": "enforce"}}})
    api, parts = registry.client, registry.parts
    write_advisory(tmp_path / "osv", "PYSEC-2024-1", "requests", "PyPI", "0", "2.32.0", ["2.31.0"])
    await VulnDbService(parts.db, parts.config.scan.vulndb).import_path(tmp_path / "osv")
    image = debian_app()
    await push_blobs(api, image)
    message = "1 high vulnerability: PYSEC-2024-1 in requests 2.31.0 (fixed in 2.32.0); allow-list or rebuild"
    assert error_of(await push_manifest(api, NAME, "v1", image.manifest), 403, "DENIED")["message"] == message

    # Allowed by its alias: the push goes through.
    ok(await api.post(f"{P}/allowlist", json={"id": "CVE-2024-0012", "reason": "not reachable",
                                              "expires": "2099-01-01"}), 201)
    ok(await push_manifest(api, NAME, "v1", image.manifest), 201)

    # The same rule on pull: allowed, then the entry expires and the pull is refused.
    ok(await api.put(f"{P}/admission", json={"push": {}, "pull": {"vulnerabilities": {"severity": "high",
                                                                                      "mode": "enforce"}}}))
    pulled = await api.get(f"/v2/{NAME}/manifests/v1")
    assert pulled.status_code == 200, pulled.text
    async with parts.db.write() as conn:  # the entry's expiry passes (written as the API would, in the past)
        project = await accounts.find_project(conn, "team")
        assert project is not None
        await admission_rows.put_allowed(conn, project.id, admission_rows.AllowEntry(
            "CVE-2024-0012", "not reachable", datetime.now(UTC) - timedelta(seconds=1)))
    parts.services.admission.forget("team")
    assert error_of(await api.get(f"/v2/{NAME}/manifests/v1"), 403, "DENIED")["message"] == message
    assert (await api.head(f"/v2/{NAME}/manifests/v1")).status_code == 200


async def test_a_scan_past_the_push_timeout_answers_503_and_a_retry_uses_its_result(
        tmp_path: Path, database_url: str) -> None:
    # push_timeout 0s: no scan finishes within it, as a large image would not within 60s.
    async for registry in opened(scan_config(tmp_path, database_url, push_timeout="0s")):
        await setup(registry, {"push": {"secrets": "enforce"}})
        api, image = registry.client, debian_app()
        await push_blobs(api, image)
        response = await push_manifest(api, NAME, "v1", image.manifest)
        error = error_of(response, 503, "UNAVAILABLE")
        assert error["message"] == (f"scan of {image.digest} still running after 0s; push again shortly — the "
                                    "result is kept")
        assert response.headers["retry-after"] == "5"
        assert (await api.get(f"/v2/{NAME}/manifests/v1")).status_code == 404

        # The client retries, here through a second node with the default timeout: it waits for the
        # scan the first push started (one scan, not two), and the rule decides on its result.
        async with open_registry(scan_config(tmp_path / "second", database_url,
                                             storage={"root": str(tmp_path / "data" / "storage")})) as second:
            retried = await push_manifest(second.client, NAME, "v1", image.manifest)
            assert error_of(retried, 403, "DENIED")["message"] == secret_message(image)
            await second.parts.scanning.close()
        async with registry.parts.db.read() as conn:
            row = await scans.read(conn, image.digest)
        assert row is not None
        assert row.attempts == 1

        # A warn rule lets the push through with the timeout as its warning.
        ok(await api.put(f"{P}/admission", json={"push": {"malware": "warn"}}))
        other = debian_app(architecture="arm64")
        await push_blobs(api, other)
        warned = await push_manifest(api, NAME, "v2", other.manifest)
        assert warned.status_code == 201, warned.text
        assert warned.headers["dockyard-policy-warning"] == (
            f"scan of {other.digest} still running after 0s; push again shortly - the result is kept")


async def test_an_image_whose_scan_fails_is_refused_not_retried(registry: Registry) -> None:
    await setup(registry, {"push": {"secrets": "enforce"}})
    api = registry.client
    broken = image_of([b"not a tar archive, not gzip either"])
    await push_blobs(api, broken)
    message = error_of(await push_manifest(api, NAME, "v1", broken.manifest), 403, "DENIED")["message"]
    assert message.startswith(f"scan of {broken.digest} failed (")
    assert message.endswith("): the image cannot be checked; fix it and push again")
