"""Blob pushes: monolithic, single POST, chunked, streamed, resumable, cancel, mount."""

from __future__ import annotations

import hashlib

from tests.integration.conftest import Registry
from tests.support.content import error_codes, push_blob, random_bytes, sha256

NAME = "team/app"


async def test_monolithic_push_then_pull(registry: Registry) -> None:
    data = random_bytes(10_000)
    done = await push_blob(registry.client, NAME, data)
    assert done.headers["docker-content-digest"] == sha256(data)
    assert done.headers["location"] == f"/v2/{NAME}/blobs/{sha256(data)}"
    pulled = await registry.client.get(done.headers["location"])
    assert pulled.status_code == 200
    assert pulled.content == data
    assert pulled.headers["docker-content-digest"] == sha256(data)


async def test_post_session_headers(registry: Registry) -> None:
    started = await registry.client.post(f"/v2/{NAME}/blobs/uploads/")
    assert started.status_code == 202
    upload_id = started.headers["docker-upload-uuid"]
    assert started.headers["location"] == f"/v2/{NAME}/blobs/uploads/{upload_id}"
    assert started.headers["range"] == "0-0"


async def test_single_post_push(registry: Registry) -> None:
    data = random_bytes(3000)
    done = await registry.client.post(f"/v2/{NAME}/blobs/uploads/?digest={sha256(data)}", content=data,
                                      headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    assert (await registry.client.get(f"/v2/{NAME}/blobs/{sha256(data)}")).content == data


async def test_single_post_with_wrong_digest_stores_nothing(registry: Registry) -> None:
    data = random_bytes(3000)
    wrong = sha256(b"something else")
    done = await registry.client.post(f"/v2/{NAME}/blobs/uploads/?digest={wrong}", content=data)
    assert done.status_code == 400
    assert error_codes(done) == ["DIGEST_INVALID"]
    for digest in (wrong, sha256(data)):
        assert (await registry.client.head(f"/v2/{NAME}/blobs/{digest}")).status_code == 404


async def test_chunked_push_with_status_and_resume(registry: Registry) -> None:
    data = random_bytes(300_000)
    client = registry.client
    location = (await client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    offset = 0
    for size in (100_000, 1, 99_999):
        chunk = data[offset:offset + size]
        response = await client.patch(location, content=chunk, headers={
            "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + size - 1}"})
        assert response.status_code == 202, response.text
        offset += size
        assert response.headers["range"] == f"0-{offset - 1}"
        location = response.headers["location"]
        status = await client.get(location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{offset - 1}"
    done = await client.put(f"{location}?digest={sha256(data)}", content=data[offset:])
    assert done.status_code == 201, done.text
    assert (await client.get(f"/v2/{NAME}/blobs/{sha256(data)}")).content == data


async def test_streamed_patch_without_content_range(registry: Registry) -> None:
    data = random_bytes(50_000)
    location = (await registry.client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]

    async def body():  # type: ignore[no-untyped-def]
        for start in range(0, len(data), 7000):
            yield data[start:start + 7000]

    patched = await registry.client.patch(location, content=body())
    assert patched.status_code == 202
    done = await registry.client.put(f"{patched.headers['location']}?digest={sha256(data)}")
    assert done.status_code == 201
    assert (await registry.client.get(f"/v2/{NAME}/blobs/{sha256(data)}")).content == data


async def test_out_of_order_chunk_is_416_and_upload_continues(registry: Registry) -> None:
    client = registry.client
    location = (await client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    first = await client.patch(location, content=b"abcd", headers={"Content-Range": "0-3"})
    assert first.status_code == 202
    skipped = await client.patch(location, content=b"xyz", headers={"Content-Range": "10-12"})
    assert skipped.status_code == 416
    assert error_codes(skipped) == ["BLOB_UPLOAD_INVALID"]
    overlap = await client.patch(location, content=b"cdef", headers={"Content-Range": "2-5"})
    assert overlap.status_code == 416
    assert (await client.get(location)).headers["range"] == "0-3"
    done = await client.put(f"{location}?digest={sha256(b'abcdef')}", content=b"ef",
                            headers={"Content-Range": "4-5"})
    assert done.status_code == 201, done.text


async def test_final_put_with_wrong_digest_stores_nothing(registry: Registry) -> None:
    client = registry.client
    data = random_bytes(2000)
    location = (await client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    # The bytes must be in the session, or nothing would be stored whatever the final PUT did.
    assert (await client.patch(location, content=data)).status_code == 202
    wrong = sha256(b"nope")
    done = await client.put(f"{location}?digest={wrong}")
    assert done.status_code == 400
    assert error_codes(done) == ["DIGEST_INVALID"]
    assert (await client.head(f"/v2/{NAME}/blobs/{wrong}")).status_code == 404
    assert (await client.head(f"/v2/{NAME}/blobs/{sha256(data)}")).status_code == 404
    assert (await client.get(location)).status_code == 404


async def test_put_without_digest_is_400(registry: Registry) -> None:
    location = (await registry.client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    done = await registry.client.put(location, content=b"abc")
    assert done.status_code == 400
    assert error_codes(done) == ["DIGEST_INVALID"]


async def test_cancel_upload(registry: Registry) -> None:
    client = registry.client
    location = (await client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    assert (await client.patch(location, content=b"partial")).status_code == 202
    assert await registry.parts.store.upload_ids() == [location.rsplit("/", 1)[1]]
    assert (await client.delete(location)).status_code == 204
    gone = await client.get(location)
    assert gone.status_code == 404
    assert error_codes(gone) == ["BLOB_UPLOAD_UNKNOWN"]
    assert (await client.delete(location)).status_code == 404
    assert await registry.parts.store.upload_ids() == []


async def test_upload_is_bound_to_its_repository(registry: Registry) -> None:
    location = (await registry.client.post(f"/v2/{NAME}/blobs/uploads/")).headers["location"]
    upload_id = location.rsplit("/", 1)[1]
    other = await registry.client.get(f"/v2/other/blobs/uploads/{upload_id}")
    assert other.status_code == 404
    assert error_codes(other) == ["BLOB_UPLOAD_UNKNOWN"]


async def test_unknown_upload_id(registry: Registry) -> None:
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = await registry.client.request(method, f"/v2/{NAME}/blobs/uploads/doesnotexist123",
                                                 params={"digest": sha256(b"")} if method == "PUT" else None)
        assert response.status_code == 404, method
        assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]


async def test_mount_from_repository(registry: Registry) -> None:
    data = random_bytes(1000)
    await push_blob(registry.client, "source/repo", data)
    mounted = await registry.client.post(
        f"/v2/target/repo/blobs/uploads/?mount={sha256(data)}&from=source/repo")
    assert mounted.status_code == 201
    assert mounted.headers["location"] == f"/v2/target/repo/blobs/{sha256(data)}"
    assert (await registry.client.get(f"/v2/target/repo/blobs/{sha256(data)}")).content == data


async def test_mount_without_from_finds_the_blob(registry: Registry) -> None:
    data = random_bytes(1000)
    await push_blob(registry.client, "source/repo", data)
    mounted = await registry.client.post(f"/v2/target/repo/blobs/uploads/?mount={sha256(data)}")
    assert mounted.status_code == 201
    assert mounted.headers["location"] == f"/v2/target/repo/blobs/{sha256(data)}"
    assert (await registry.client.get(f"/v2/target/repo/blobs/{sha256(data)}")).content == data


async def test_mount_of_unknown_blob_falls_back_to_upload(registry: Registry) -> None:
    unknown = sha256(b"never pushed")
    for query in (f"mount={unknown}&from=source/repo", f"mount={unknown}"):
        response = await registry.client.post(f"/v2/target/repo/blobs/uploads/?{query}")
        assert response.status_code == 202
        assert "docker-upload-uuid" in response.headers
    assert (await registry.client.head(f"/v2/target/repo/blobs/{unknown}")).status_code == 404


async def test_mount_from_repository_without_the_blob_falls_back(registry: Registry) -> None:
    data = random_bytes(100)
    await push_blob(registry.client, "has/it", data)
    await push_blob(registry.client, "lacks/it", random_bytes(10))
    response = await registry.client.post(f"/v2/target/repo/blobs/uploads/?mount={sha256(data)}&from=lacks/it")
    assert response.status_code == 202
    assert "/blobs/uploads/" in response.headers["location"]
    assert (await registry.client.head(f"/v2/target/repo/blobs/{sha256(data)}")).status_code == 404


async def test_same_blob_pushed_twice_and_to_two_repositories(registry: Registry) -> None:
    data = random_bytes(5000)
    await push_blob(registry.client, "a/one", data)
    await push_blob(registry.client, "a/one", data)
    await push_blob(registry.client, "a/two", data)
    for name in ("a/one", "a/two"):
        assert (await registry.client.get(f"/v2/{name}/blobs/{sha256(data)}")).content == data


async def test_sha512_blob(registry: Registry) -> None:
    data = random_bytes(4096)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    done = await registry.client.post(f"/v2/{NAME}/blobs/uploads/?digest={digest}", content=data)
    assert done.status_code == 201, done.text
    pulled = await registry.client.get(f"/v2/{NAME}/blobs/{digest}")
    assert pulled.content == data
    assert pulled.headers["docker-content-digest"] == digest


async def test_empty_blob(registry: Registry) -> None:
    done = await registry.client.post(f"/v2/{NAME}/blobs/uploads/?digest={sha256(b'')}", content=b"")
    assert done.status_code == 201
    pulled = await registry.client.get(f"/v2/{NAME}/blobs/{sha256(b'')}")
    assert pulled.status_code == 200
    assert pulled.content == b""
    assert pulled.headers["content-length"] == "0"


async def test_unsupported_digest_algorithm(registry: Registry) -> None:
    response = await registry.client.post(f"/v2/{NAME}/blobs/uploads/?digest=md5:abcdef", content=b"x")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert "sha256" in response.json()["errors"][0]["message"]
