"""Manifests: push and pull byte for byte, every supported type, tags, deletes, validation."""

from __future__ import annotations

import hashlib
import json

from tests.integration.conftest import Registry
from tests.support.content import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    dumps,
    error_codes,
    make_image,
    make_index,
    push_blob,
    push_image,
    push_manifest,
    sha256,
)

NAME = "team/app"


async def test_push_by_tag_and_pull_by_tag_and_digest(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    pushed = await push_manifest(registry.client, NAME, "v1", image.manifest)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["docker-content-digest"] == image.digest
    assert pushed.headers["location"] == f"/v2/{NAME}/manifests/{image.digest}"
    assert pushed.headers.get_list("oci-tag") == ["v1"]
    for reference in ("v1", image.digest):
        pulled = await registry.client.get(f"/v2/{NAME}/manifests/{reference}",
                                           headers={"Accept": OCI_MANIFEST})
        assert pulled.status_code == 200
        assert pulled.content == image.manifest
        assert pulled.headers["content-type"] == OCI_MANIFEST
        assert pulled.headers["docker-content-digest"] == image.digest
        head = await registry.client.head(f"/v2/{NAME}/manifests/{reference}")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(image.manifest))
        assert head.headers["docker-content-digest"] == image.digest
        assert head.content == b""


async def test_docker_schema2_manifest_and_list(registry: Registry) -> None:
    images = [make_image(docker=True) for _ in range(2)]
    for image in images:
        await push_image(registry.client, NAME, image)
    body = make_index(images, docker=True)
    pushed = await push_manifest(registry.client, NAME, "multi", body, DOCKER_LIST)
    assert pushed.status_code == 201, pushed.text
    pulled = await registry.client.get(f"/v2/{NAME}/manifests/multi")
    assert pulled.content == body
    assert pulled.headers["content-type"] == DOCKER_LIST
    child = await registry.client.get(f"/v2/{NAME}/manifests/{images[0].digest}")
    assert child.headers["content-type"] == DOCKER_MANIFEST


async def test_oci_index_requires_its_children(registry: Registry) -> None:
    images = [make_image() for _ in range(3)]
    await push_image(registry.client, NAME, images[0])
    body = make_index(images)
    refused = await push_manifest(registry.client, NAME, "idx", body, OCI_INDEX)
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    for image in images[1:]:
        await push_image(registry.client, NAME, image)
    assert (await push_manifest(registry.client, NAME, "idx", body, OCI_INDEX)).status_code == 201


async def test_manifest_requires_its_blobs_in_this_repository(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, "elsewhere/repo", blob)
    refused = await push_manifest(registry.client, NAME, "v1", image.manifest)
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    assert "push them" in refused.json()["errors"][0]["message"]
    assert (await registry.client.get(f"/v2/{NAME}/manifests/v1")).status_code == 404


async def test_push_by_digest(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, NAME, image, reference=image.digest)
    assert (await registry.client.get(f"/v2/{NAME}/manifests/{image.digest}")).content == image.manifest


async def test_push_by_wrong_digest(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    wrong = sha256(b"other")
    refused = await push_manifest(registry.client, NAME, wrong, image.manifest)
    assert refused.status_code == 400
    assert error_codes(refused) == ["DIGEST_INVALID"]


async def test_sha512_manifest_reference(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    digest = "sha512:" + hashlib.sha512(image.manifest).hexdigest()
    pushed = await push_manifest(registry.client, NAME, digest, image.manifest)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["docker-content-digest"] == digest
    assert (await registry.client.get(f"/v2/{NAME}/manifests/{digest}")).content == image.manifest


async def test_multi_tag_push(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    pushed = await registry.client.put(f"/v2/{NAME}/manifests/{image.digest}?tag=a&tag=b&tag=c",
                                       content=image.manifest, headers={"Content-Type": OCI_MANIFEST})
    assert pushed.status_code == 201, pushed.text
    assert sorted(pushed.headers.get_list("oci-tag")) == ["a", "b", "c"]
    for tag in ("a", "b", "c"):
        assert (await registry.client.get(f"/v2/{NAME}/manifests/{tag}")).content == image.manifest


async def test_retag_moves_the_tag(registry: Registry) -> None:
    first, second = make_image(), make_image()
    await push_image(registry.client, NAME, first, "latest")
    await push_image(registry.client, NAME, second, "latest")
    assert (await registry.client.get(f"/v2/{NAME}/manifests/latest")).content == second.manifest
    assert (await registry.client.get(f"/v2/{NAME}/manifests/{first.digest}")).status_code == 200


async def test_bytes_are_kept_exactly(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    odd = b"  \n" + json.dumps(json.loads(image.manifest), indent=7, sort_keys=True).encode() + b"\n\n"
    pushed = await push_manifest(registry.client, NAME, "odd", odd)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["docker-content-digest"] == sha256(odd)
    assert (await registry.client.get(f"/v2/{NAME}/manifests/odd")).content == odd


async def test_content_type_must_match_media_type(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    refused = await push_manifest(registry.client, NAME, "v1", image.manifest, DOCKER_MANIFEST)
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_INVALID"]


async def test_schema1_is_refused_with_a_clear_message(registry: Registry) -> None:
    body = dumps({"schemaVersion": 1, "name": NAME, "tag": "v1", "architecture": "amd64",
                  "fsLayers": [], "history": []})
    refused = await push_manifest(registry.client, NAME, "v1", body,
                                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_INVALID"]
    assert "schema1" in refused.json()["errors"][0]["message"]


async def test_manifest_too_large_is_413(registry: Registry) -> None:
    body = b"{" + b" " * (registry.config.registry.manifest_max_bytes + 10) + b"}"
    refused = await push_manifest(registry.client, NAME, "big", body)
    assert refused.status_code == 413
    assert error_codes(refused) == ["MANIFEST_INVALID"]


async def test_non_http_urls_are_refused(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    document = json.loads(image.manifest)
    document["layers"][0]["urls"] = ["file:///etc/passwd"]
    refused = await push_manifest(registry.client, NAME, "v1", dumps(document))
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_INVALID"]


async def test_delete_tag_keeps_manifest(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, NAME, image, "v1")
    assert (await push_manifest(registry.client, NAME, "v2", image.manifest)).status_code == 201
    assert (await registry.client.delete(f"/v2/{NAME}/manifests/v1")).status_code == 202
    assert (await registry.client.get(f"/v2/{NAME}/manifests/v1")).status_code == 404
    assert (await registry.client.get(f"/v2/{NAME}/manifests/v2")).status_code == 200
    assert (await registry.client.get(f"/v2/{NAME}/manifests/{image.digest}")).status_code == 200


async def test_delete_by_digest_removes_manifest_and_tags(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, NAME, image, "v1")
    assert (await registry.client.delete(f"/v2/{NAME}/manifests/{image.digest}")).status_code == 202
    for reference in ("v1", image.digest):
        gone = await registry.client.get(f"/v2/{NAME}/manifests/{reference}")
        assert gone.status_code == 404
        assert error_codes(gone) == ["MANIFEST_UNKNOWN"]
    tags = await registry.client.get(f"/v2/{NAME}/tags/list")
    assert tags.json()["tags"] == []
    again = await registry.client.delete(f"/v2/{NAME}/manifests/{image.digest}")
    assert again.status_code == 404


async def test_delete_blob(registry: Registry) -> None:
    data = b"some layer"
    await push_blob(registry.client, NAME, data)
    assert (await registry.client.delete(f"/v2/{NAME}/blobs/{sha256(data)}")).status_code == 202
    gone = await registry.client.get(f"/v2/{NAME}/blobs/{sha256(data)}")
    assert gone.status_code == 404
    assert error_codes(gone) == ["BLOB_UNKNOWN"]
    assert (await registry.client.delete(f"/v2/{NAME}/blobs/{sha256(data)}")).status_code == 404


async def test_unknown_manifest_and_repository(registry: Registry) -> None:
    for path in (f"/v2/{NAME}/manifests/nope", f"/v2/never/pushed/manifests/{sha256(b'x')}"):
        response = await registry.client.get(path)
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]


async def test_artifact_with_custom_config_media_type(registry: Registry) -> None:
    config = b'{"kind":"helm"}'
    layer = b"chart bytes"
    for blob in (config, layer):
        await push_blob(registry.client, NAME, blob)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                  "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                             "digest": sha256(config), "size": len(config)},
                  "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                              "digest": sha256(layer), "size": len(layer)}]})
    assert (await push_manifest(registry.client, NAME, "chart", body)).status_code == 201
    assert (await registry.client.get(f"/v2/{NAME}/manifests/chart")).content == body


async def test_names_that_look_like_endpoints(registry: Registry) -> None:
    for name in ("library/blobs", "a/manifests/b", "x/tags/list/y", "uploads/blobs/uploads"):
        image = make_image(layers=1)
        await push_image(registry.client, name, image, "v1")
        pulled = await registry.client.get(f"/v2/{name}/manifests/v1")
        assert pulled.content == image.manifest, name
        tags = await registry.client.get(f"/v2/{name}/tags/list")
        assert tags.json() == {"name": name, "tags": ["v1"]}
