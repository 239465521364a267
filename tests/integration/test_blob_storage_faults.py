"""Blobs whose bytes the filesystem lost or cannot read, on the real app (SQLite and PostgreSQL).

The database links the blob; its file was deleted, truncated or turned unreadable behind the
registry's back. Each answers a clear error, never a 500: missing or short bytes 404
``BLOB_UNKNOWN`` saying so (and a new push of the blob restores it), a read error 503 with
``Retry-After``; each is logged as an error naming digest and repository and counted in
``dockyard_blob_missing_total`` / ``dockyard_blob_read_errors_total``. Bytes that go missing once
the response's length was sent cut the response instead of ending it short.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from dockyard.http.rsgi import ResponseAborted
from dockyard.storage import layout
from tests.integration.conftest import ADMIN_AUTH, Registry
from tests.support.content import push_blob, random_bytes, sha256

NAME = "team/faults"


def blob_file(registry: Registry, digest: str) -> Path:
    return registry.config.storage_root / layout.blob_path(digest)


async def metric(registry: Registry, name: str) -> float:
    text = (await registry.client.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not exported"
    return float(found.group(1))


def logged(caplog: pytest.LogCaptureFixture, *needles: str) -> bool:
    return any(record.levelno == logging.ERROR and all(n in record.getMessage() for n in needles)
               for record in caplog.records)


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
async def test_a_blob_whose_file_is_gone_or_short_answers_404_and_a_push_restores_it(
        registry: Registry, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    """GET and HEAD answer 404 BLOB_UNKNOWN saying the bytes are missing (a short file would
    otherwise be served as a complete, wrong blob); logged and counted; pushing the blob again
    puts the right bytes back."""
    data = random_bytes(100_000)
    digest = sha256(data)
    await push_blob(registry.client, NAME, data)
    path = blob_file(registry, digest)
    if damage == "deleted":
        path.unlink()
    else:
        os.truncate(path, 1000)
    before = await metric(registry, "dockyard_blob_missing_total")
    response = await registry.client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["code"] == "BLOB_UNKNOWN"
    assert "bytes are missing from storage" in error["message"]
    assert "push it again" in error["message"]
    assert (await registry.client.head(f"/v2/{NAME}/blobs/{digest}")).status_code == 404
    assert logged(caplog, digest, NAME, "missing from storage")
    assert await metric(registry, "dockyard_blob_missing_total") == before + 2
    await push_blob(registry.client, NAME, data)
    assert (await registry.client.get(f"/v2/{NAME}/blobs/{digest}")).content == data


async def test_a_blob_file_that_cannot_be_read_answers_503(registry: Registry,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A read error of the filesystem (here ELOOP: the file became a symbolic link to itself) is
    503 UNAVAILABLE with Retry-After, logged with digest and repository and counted, not a 500."""
    data = random_bytes(10_000)
    digest = sha256(data)
    await push_blob(registry.client, NAME, data)
    path = blob_file(registry, digest)
    path.unlink()
    path.symlink_to(path.name)
    before = await metric(registry, "dockyard_blob_read_errors_total")
    response = await registry.client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert int(response.headers["retry-after"]) > 0
    assert (await registry.client.head(f"/v2/{NAME}/blobs/{digest}")).status_code == 503
    assert logged(caplog, digest, NAME, "failed in storage")
    assert await metric(registry, "dockyard_blob_read_errors_total") == before + 2


async def test_bytes_lost_after_the_headers_cut_the_response(registry: Registry,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """The file is truncated right after the status line and length went out: the response raises
    (the server cuts the connection) instead of ending short, and the loss is logged and counted."""
    data = random_bytes(300_000)
    digest = sha256(data)
    await push_blob(registry.client, NAME, data)
    path = blob_file(registry, digest)
    credentials = base64.b64encode(":".join(ADMIN_AUTH).encode())
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": f"/v2/{NAME}/blobs/{digest}", "raw_path": b"", "query_string": b"",
             "root_path": "", "headers": [(b"authorization", b"Basic " + credentials)],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 5000), "extensions": {}, "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            os.truncate(path, 1000)

    before = await metric(registry, "dockyard_blob_missing_total")
    app = registry.client._transport.app  # type: ignore[attr-defined]
    with pytest.raises(ResponseAborted):
        await app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert (b"content-length", str(len(data)).encode()) in sent[0]["headers"]
    assert sum(len(message.get("body", b"")) for message in sent[1:]) < len(data)
    assert not any(message.get("more_body") is False for message in sent[1:])  # never "that was all"
    assert logged(caplog, digest, NAME, "missing from storage")
    assert await metric(registry, "dockyard_blob_missing_total") == before + 1
