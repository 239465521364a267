"""Health, readiness, metrics and the access log."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx

from dockyard.app import build_components, create_app
from tests.integration.conftest import ADMIN_PASSWORD, Registry, make_config, open_registry
from tests.support.content import push_blob, random_bytes, sha256


async def test_base_endpoint(registry: Registry) -> None:
    response = await registry.client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


async def test_health_and_readiness(registry: Registry) -> None:
    assert (await registry.client.get("/healthz")).json() == {"status": "ok"}
    assert (await registry.client.get("/readyz")).json() == {"status": "ready"}


async def test_readiness_fails_without_database(tmp_path: Path) -> None:
    # Nothing listens on port 1: the connection is refused at once (and asyncpg leaves no threads).
    config = make_config(tmp_path, "postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    parts = build_components(config)
    app = create_app(config, parts)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
            response = await client.get("/readyz")
    finally:
        await parts.db.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


async def test_metrics_count_requests_and_bytes(registry: Registry) -> None:
    data = random_bytes(12345)
    await push_blob(registry.client, "team/app", data)
    await registry.client.get("/v2/team/app/manifests/missing")
    text = (await registry.client.get("/metrics")).text
    assert 'dockyard_http_requests_total{method="GET",route="manifest",status="404"} 1.0' in text
    assert 'dockyard_http_requests_total{method="PUT",route="upload",status="201"} 1.0' in text
    assert 'dockyard_http_request_bytes_total{route="upload"} 12345.0' in text
    pulled = await registry.client.get(f"/v2/team/app/blobs/{sha256(data)}")
    assert pulled.content == data
    text = (await registry.client.get("/metrics")).text
    assert 'dockyard_http_response_bytes_total{route="blob"} 12345.0' in text
    assert "dockyard_http_request_duration_seconds_bucket" in text
    assert "dockyard_uploads_in_flight 0.0" in text


async def test_metrics_count_every_repeat_of_a_series(registry: Registry) -> None:
    """Each (method, route, status) series is looked up once and kept: later requests still count."""
    data = random_bytes(1000)
    await push_blob(registry.client, "team/app", data)
    for _ in range(3):
        assert (await registry.client.get(f"/v2/team/app/blobs/{sha256(data)}")).content == data
        await registry.client.head(f"/v2/team/app/blobs/{sha256(data)}")
    text = (await registry.client.get("/metrics")).text
    assert 'dockyard_http_requests_total{method="GET",route="blob",status="200"} 3.0' in text
    assert 'dockyard_http_requests_total{method="HEAD",route="blob",status="200"} 3.0' in text
    assert 'dockyard_http_response_bytes_total{route="blob"} 3000.0' in text
    assert 'dockyard_http_request_duration_seconds_count{method="GET",route="blob"} 3.0' in text


async def test_one_access_log_line_per_request(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url).with_overrides(log={"access_log": True})
    written = io.StringIO()
    # The client's own Basic auth would replace an Authorization header given per request, so
    # the admin's credentials go in by hand: the log must hold neither them nor their encoding.
    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    async with open_registry(config, anonymous=True) as registry:
        registry.parts.access_log.stream = written
        sent = await registry.client.get("/v2/team/app/tags/list", headers={"Authorization": f"Basic {credentials}"})
        assert sent.request.headers["authorization"] == f"Basic {credentials}"
        await registry.client.get("/v2/?token=secret", headers={"Authorization": f"Basic {credentials}"})
        registry.parts.access_log.flush()
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    assert [(line["path"], line["status"], line["route"]) for line in lines] == [
        ("/v2/team/app/tags/list", 404, "tags"), ("/v2/", 200, "base")]
    assert all(line["duration_ms"] >= 0 and line["time"].endswith("+00:00") for line in lines)
    assert "secret" not in written.getvalue()
    assert "c2VjcmV0" not in written.getvalue()
    assert ADMIN_PASSWORD not in written.getvalue()
    assert credentials not in written.getvalue()
    assert [line.get("user") for line in lines] == ["admin", "admin"]
