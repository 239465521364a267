"""The fast paths of issue 2 item 5, seen from the ASGI side: a whole blob leaves through
``http.response.pathsend`` when the server offers it, a range falls back to block reads, and the
per-worker manifest cache never answers for a manifest the database no longer has.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.integration.conftest import ADMIN_AUTH, Registry
from tests.support.content import (
    OCI_MANIFEST,
    Image,
    make_image,
    push_blob,
    push_image,
    random_bytes,
    sha256,
)

NAME = "team/app"


async def _call(registry: Registry, method: str, path: str, headers: dict[str, str],
                extensions: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one request through the app as an ASGI server would, with ``extensions`` offered."""
    credentials = base64.b64encode(f"{ADMIN_AUTH[0]}:{ADMIN_AUTH[1]}".encode()).decode()
    raw = [(b"authorization", f"Basic {credentials}".encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": raw, "client": ("127.0.0.1", 40000),
             "server": ("127.0.0.1", 5000), "extensions": extensions, "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = registry.client._transport.app  # type: ignore[attr-defined]
    await app(scope, receive, send)
    return sent


async def test_a_whole_blob_goes_out_through_pathsend(registry: Registry) -> None:
    data = random_bytes(300_000)
    await push_blob(registry.client, NAME, data)
    sent = await _call(registry, "GET", f"/v2/{NAME}/blobs/{sha256(data)}", {},
                       {"http.response.pathsend": {}})
    start, body = sent
    assert start["status"] == 200
    assert (b"content-length", b"300000") in start["headers"]
    assert body["type"] == "http.response.pathsend"
    assert Path(body["path"]).read_bytes() == data  # the stored file itself, not a copy


async def test_a_range_without_the_range_extension_is_read_in_blocks(registry: Registry) -> None:
    data = random_bytes(300_000)
    await push_blob(registry.client, NAME, data)
    sent = await _call(registry, "GET", f"/v2/{NAME}/blobs/{sha256(data)}", {"range": "bytes=1000-250999"},
                       {"http.response.pathsend": {}})
    start, *bodies = sent
    assert start["status"] == 206
    assert (b"content-range", f"bytes 1000-250999/{len(data)}".encode()) in start["headers"]
    assert all(message["type"] == "http.response.body" for message in bodies)
    assert b"".join(message["body"] for message in bodies) == data[1000:251000]
    assert bodies[-1].get("more_body", False) is False


async def test_without_pathsend_the_blob_is_streamed(registry: Registry) -> None:
    data = random_bytes(50_000)
    await push_blob(registry.client, NAME, data)
    sent = await _call(registry, "GET", f"/v2/{NAME}/blobs/{sha256(data)}", {}, {})
    assert sent[0]["status"] == 200
    assert b"".join(message.get("body", b"") for message in sent[1:]) == data


async def _push_image(registry: Registry, tag: str) -> Image:
    image = make_image()
    await push_image(registry.client, NAME, image, tag)
    return image


async def test_a_cached_manifest_is_not_served_once_deleted(registry: Registry) -> None:
    image = await _push_image(registry, "v1")
    for _ in range(2):  # the second read is answered from the worker's cache
        pulled = await registry.client.get(f"/v2/{NAME}/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST})
        assert pulled.content == image.manifest
    assert registry.parts.services.manifests.cache.get(image.digest) == image.manifest
    assert (await registry.client.delete(f"/v2/{NAME}/manifests/{image.digest}")).status_code == 202
    for reference in (image.digest, "v1"):
        gone = await registry.client.get(f"/v2/{NAME}/manifests/{reference}")
        assert gone.status_code == 404, reference


async def test_the_cache_answers_by_digest_and_a_moved_tag_moves_at_once(registry: Registry) -> None:
    first = await _push_image(registry, "latest")
    assert (await registry.client.get(f"/v2/{NAME}/manifests/latest")).content == first.manifest
    # The bytes under a digest never change: a second read does not touch the manifest's row.
    async with registry.parts.db.write() as conn:
        await conn.execute(sa.text("UPDATE manifests SET content = :junk WHERE digest = :digest"),
                           {"junk": b"not what was pushed", "digest": first.digest})
    assert (await registry.client.get(f"/v2/{NAME}/manifests/latest")).content == first.manifest
    second = await _push_image(registry, "latest")
    moved = await registry.client.get(f"/v2/{NAME}/manifests/latest")
    assert moved.headers["docker-content-digest"] == second.digest
    assert moved.content == second.manifest
