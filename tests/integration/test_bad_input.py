"""Bad input gets a 4xx with the right OCI code and a message that says what to fix, on every backend:
SQLite and PostgreSQL with the filesystem driver, and PostgreSQL with S3 (tests/integration/backends.py)."""

from __future__ import annotations

import pytest

from tests.integration.backends import every_backend, registry_on_every_backend  # noqa: F401
from tests.integration.conftest import Registry
from tests.support.content import error_codes, make_image, push_blob, push_image, random_bytes, sha256

NAME = "team/app"


@pytest.mark.parametrize("path", [
    "/v2/UPPER/manifests/latest", "/v2/-lead/tags/list", "/v2/a//b/blobs/uploads/",
    "/v2/a_/manifests/x", "/v2/" + "a" * 256 + "/tags/list", "/v2/a/.b/manifests/x",
])
async def test_invalid_repository_names(registry: Registry, path: str) -> None:
    response = await registry.client.request("POST" if path.endswith("uploads/") else "GET", path)
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["NAME_INVALID"]
    assert "lowercase" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("reference", ["-bad", "a" * 129, "tag!", ".hidden", ".INVALID_MANIFEST_NAME"])
async def test_invalid_tags(registry: Registry, reference: str) -> None:
    pushed = await registry.client.put(f"/v2/{NAME}/manifests/{reference}", content=b"{}")
    assert pushed.status_code == 400, pushed.text
    assert error_codes(pushed) == ["MANIFEST_INVALID"]
    assert "a tag must match" in pushed.json()["errors"][0]["message"]
    # A tag that cannot exist reads like one that does not (the OCI conformance suite wants 404).
    for method in ("GET", "HEAD", "DELETE"):
        response = await registry.client.request(method, f"/v2/{NAME}/manifests/{reference}")
        assert response.status_code == 404, (method, response.text)
        if method != "HEAD":
            assert error_codes(response) == ["MANIFEST_UNKNOWN"]


@pytest.mark.parametrize("digest", [
    "sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha512:" + "a" * 64, "sha256:" + "g" * 64,
])
async def test_invalid_digests(registry: Registry, digest: str) -> None:
    for path in (f"/v2/{NAME}/blobs/{digest}", f"/v2/{NAME}/manifests/{digest}",
                 f"/v2/{NAME}/referrers/{digest}"):
        response = await registry.client.get(path)
        assert response.status_code == 400, (path, response.text)
        assert error_codes(response) == ["DIGEST_INVALID"]


async def test_unknown_endpoint_and_method(registry: Registry) -> None:
    unknown = await registry.client.get("/v2/team/app/whatever")
    assert unknown.status_code == 404
    assert error_codes(unknown) == ["NAME_UNKNOWN"]
    wrong = await registry.client.post(f"/v2/{NAME}/manifests/latest")
    assert wrong.status_code == 405
    assert error_codes(wrong) == ["UNSUPPORTED"]
    assert "PUT" in wrong.headers["allow"]


@pytest.mark.parametrize("header", ["bytes=abc", "0-", "bytes 5-1", "-", "bytes=1-2-3"])
async def test_malformed_content_range(registry: Registry, header: str) -> None:
    location = (await registry.client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    response = await registry.client.patch(location, content=b"abc", headers={"Content-Range": header})
    assert response.status_code in (400, 416), response.text
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]


async def test_content_range_length_mismatch(registry: Registry) -> None:
    location = (await registry.client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    response = await registry.client.patch(location, content=b"abc", headers={"Content-Range": "0-9"})
    assert response.status_code == 400
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"schemaVersion": 2}', b'{"schemaVersion": 2, "config": 5, "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [{}]}',
    b'{"schemaVersion": 3, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    b'{"schemaVersion": 2, "mediaType": "text/plain"}',
    b'{"schemaVersion": 2, "manifests": [], "layers": []}',
    b'[' * 5000 + b']' * 5000,
    b'{"a":' * 200 + b'1' + b'}' * 200,
])
async def test_malformed_manifests(registry: Registry, body: bytes) -> None:
    response = await registry.client.put(f"/v2/{NAME}/manifests/v1", content=body,
                                         headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["MANIFEST_INVALID"]


async def test_range_requests_on_blobs(registry: Registry) -> None:
    data = random_bytes(10_000)
    await push_blob(registry.client, NAME, data)
    url = f"/v2/{NAME}/blobs/{sha256(data)}"
    cases = {"bytes=0-0": data[:1], "bytes=100-199": data[100:200], "bytes=9000-": data[9000:],
             "bytes=-10": data[-10:], "bytes=9990-20000": data[9990:]}
    for header, expected in cases.items():
        response = await registry.client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == expected, header
        assert response.headers["content-length"] == str(len(expected))
        first = len(data) - len(expected) if header.startswith("bytes=-") or header.endswith("-20000") \
            else int(header[6:].split("-")[0])
        assert response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    unsatisfiable = await registry.client.get(url, headers={"Range": "bytes=10000-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"
    ignored = await registry.client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert ignored.status_code == 200
    assert ignored.content == data


async def test_head_errors_have_no_body(registry: Registry) -> None:
    response = await registry.client.head(f"/v2/{NAME}/manifests/missing")
    assert response.status_code == 404
    assert response.content == b""


async def test_wrong_content_length_on_monolithic_put(registry: Registry) -> None:
    image = make_image(layers=1)
    await push_image(registry.client, NAME, image)
    location = (await registry.client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    response = await registry.client.put(f"{location}?digest={sha256(b'abc')}", content=b"abc",
                                         headers={"Content-Length": "abc"})
    assert response.status_code == 400
    assert error_codes(response) == ["SIZE_INVALID"]
