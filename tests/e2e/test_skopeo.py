"""skopeo against a real registry process: copy in and out, indexes, Docker schema2, referrers,
tags, delete and sync. Every test pushes content of its own to a repository of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.clients import Registry, Skopeo, is_external, require_dockyard
from tests.e2e.conftest import TmpFactory
from tests.e2e.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Artifact,
    Blob,
    Image,
    Index,
    Layout,
    build_artifact,
    build_image,
    build_index,
    sha256_digest,
    unique_seed,
    write_layout,
)

pytestmark = pytest.mark.e2e

ACCEPT_ALL = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))


def push(skopeo: Skopeo, tmp: TmpFactory, target: Image | Index | Artifact, destination: str,
         *options: str) -> None:
    """Write `target` to a fresh OCI layout and `skopeo copy` it to `destination`."""
    layout = write_layout(tmp("src"), "src", target)
    skopeo.copy(f"oci:{layout}:src", destination, *options)


def get_manifest(http: httpx.Client, repo: str, reference: str) -> httpx.Response:
    response = http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200, f"GET manifest {repo}:{reference}: {response.text}"
    return response


def content_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def test_copy_in_and_out_preserves_digests_and_bytes(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    image = build_image(unique_seed(), layer_count=3)
    ref = f"docker://{shared_registry.host}/{repo}:v1"
    push(skopeo, tmp, image, ref)

    assert skopeo.inspect_raw(ref) == image.manifest.data
    response = get_manifest(http, repo, "v1")
    assert response.headers["docker-content-digest"] == image.digest
    assert content_type(response) == OCI_MANIFEST
    assert skopeo.inspect_config(ref)["rootfs"] == json.loads(image.config.data)["rootfs"]

    out = Layout(tmp("out"))
    skopeo.copy(ref, f"oci:{out.directory}:v1")
    assert out.descriptor("v1")["digest"] == image.digest
    assert out.manifest("v1") == image.manifest.data
    for blob in (image.config, *image.layers):
        assert out.blob(blob.digest) == blob.data


def test_copy_by_digest_resolves_the_same_manifest(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str,
) -> None:
    image = build_image(unique_seed())
    push(skopeo, tmp, image, f"docker://{shared_registry.host}/{repo}:v1")

    assert skopeo.inspect_raw(f"docker://{shared_registry.host}/{repo}@{image.digest}") == image.manifest.data


def test_copy_all_keeps_the_index_and_every_platform(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    index = build_index(unique_seed())
    base = f"docker://{shared_registry.host}/{repo}"
    ref = f"{base}:multi"
    push(skopeo, tmp, index, ref, "--all")

    assert skopeo.inspect_raw(ref) == index.manifest.data
    response = get_manifest(http, repo, "multi")
    assert content_type(response) == OCI_INDEX
    assert response.headers["docker-content-digest"] == index.digest
    for image in index.images:
        child = get_manifest(http, repo, image.digest)
        assert child.content == image.manifest.data
        assert content_type(child) == OCI_MANIFEST
        config = skopeo.inspect_config(f"{base}@{image.digest}")
        assert (config["os"], config["architecture"]) == (image.os, image.architecture)

    out = Layout(tmp("out"))
    skopeo.copy(ref, f"oci:{out.directory}:multi", "--all")
    assert out.descriptor("multi")["digest"] == index.digest
    for image in index.images:
        assert out.blob(image.digest) == image.manifest.data


def test_copy_without_all_selects_one_platform(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str,
) -> None:
    index = build_index(unique_seed())
    ref = f"docker://{shared_registry.host}/{repo}:multi"
    push(skopeo, tmp, index, ref, "--all")
    arm64 = next(image for image in index.images if image.architecture == "arm64")

    out = Layout(tmp("out"))
    skopeo.run("--override-arch", "arm64", "--override-os", "linux", "copy", "--src-tls-verify=false",
               ref, f"oci:{out.directory}:one")
    assert out.manifest("one") == arm64.manifest.data


def test_format_v2s2_is_stored_and_served_as_docker_schema2(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    image = build_image(unique_seed())
    ref = f"docker://{shared_registry.host}/{repo}:v2s2"
    push(skopeo, tmp, image, ref, "--format", "v2s2")

    raw = skopeo.inspect_raw(ref)
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER_GZIP] * len(image.layers)
    assert [layer["digest"] for layer in manifest["layers"]] == [layer.digest for layer in image.layers]

    response = get_manifest(http, repo, "v2s2")
    assert content_type(response) == DOCKER_MANIFEST
    assert response.content == raw
    assert response.headers["docker-content-digest"] == sha256_digest(raw)
    head = http.head(f"/v2/{repo}/manifests/{sha256_digest(raw)}", headers={"Accept": DOCKER_MANIFEST})
    assert head.status_code == 200
    assert content_type(head) == DOCKER_MANIFEST
    assert int(head.headers["content-length"]) == len(raw)


def test_format_v2s2_all_stores_a_docker_manifest_list(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    index = build_index(unique_seed())
    ref = f"docker://{shared_registry.host}/{repo}:list"
    push(skopeo, tmp, index, ref, "--all", "--format", "v2s2")

    response = get_manifest(http, repo, "list")
    assert content_type(response) == DOCKER_LIST
    children = json.loads(response.content)["manifests"]
    assert sorted(child["platform"]["architecture"] for child in children) == ["amd64", "arm64"]
    for child in children:
        assert content_type(get_manifest(http, repo, child["digest"])) == DOCKER_MANIFEST


def put_blob(http: httpx.Client, repo: str, blob: Blob) -> None:
    """Monolithic upload: POST for a session, PUT the bytes with the digest."""
    started = http.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = httpx.URL(started.headers["location"]).copy_merge_params({"digest": blob.digest})
    finished = http.put(location, content=blob.data, headers={"Content-Type": "application/octet-stream"})
    assert finished.status_code == 201, finished.text


def put_artifact(http: httpx.Client, repo: str, artifact: Artifact) -> httpx.Response:
    """Push `artifact` with plain HTTP (skopeo does not show the response headers)."""
    for blob in (artifact.config, *artifact.layers):
        put_blob(http, repo, blob)
    response = http.put(f"/v2/{repo}/manifests/{artifact.digest}", content=artifact.manifest.data,
                        headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return response


def referrer_digests(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert content_type(response) == OCI_INDEX
    document = json.loads(response.content)
    assert document["schemaVersion"] == 2
    assert document["mediaType"] == OCI_INDEX
    return {descriptor["digest"]: descriptor for descriptor in document["manifests"]}


def test_referrers_list_artifacts_pushed_with_a_subject(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    image = build_image(unique_seed())
    push(skopeo, tmp, image, f"docker://{shared_registry.host}/{repo}:v1")
    sbom = build_artifact(unique_seed(), image.manifest, "application/vnd.dockyard.sbom+json")
    signature = build_artifact(unique_seed(), image.manifest, "application/vnd.dockyard.signature")
    push(skopeo, tmp, sbom, f"docker://{shared_registry.host}/{repo}:sbom")
    put_response = put_artifact(http, repo, signature)

    listed = http.get(f"/v2/{repo}/referrers/{image.digest}")
    if listed.status_code == 404 and is_external(shared_registry):
        pytest.skip("the external registry has no referrers API (distribution before v3)")
    referrers = referrer_digests(listed)
    assert set(referrers) == {sbom.digest, signature.digest}
    for artifact in (sbom, signature):
        assert referrers[artifact.digest]["artifactType"] == artifact.artifact_type
        assert referrers[artifact.digest]["mediaType"] == OCI_MANIFEST
        assert referrers[artifact.digest]["size"] == artifact.manifest.size
    assert put_response.headers.get("oci-subject") == image.digest

    filtered = http.get(f"/v2/{repo}/referrers/{image.digest}",
                        params={"artifactType": signature.artifact_type})
    assert set(referrer_digests(filtered)) == {signature.digest}
    assert "artifactType" in filtered.headers.get("oci-filters-applied", "").split(",")


def test_referrers_of_an_unknown_subject_is_an_empty_index(
    shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    listed = http.get(f"/v2/{repo}/referrers/{sha256_digest(repo.encode())}")
    if listed.status_code == 404 and is_external(shared_registry):
        pytest.skip("the external registry has no referrers API (distribution before v3)")
    assert referrer_digests(listed) == {}
    assert http.get(f"/v2/{repo}/referrers/sha256:not-a-digest").status_code == 400


def test_list_tags_is_ascii_sorted(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str,
) -> None:
    image = build_image(unique_seed())
    first = f"docker://{shared_registry.host}/{repo}:v1"
    push(skopeo, tmp, image, first)
    tags = ["v1", "latest", "B", "_private", "1.0", "a-b.c_d"]
    for tag in tags[1:]:
        skopeo.copy(first, f"docker://{shared_registry.host}/{repo}:{tag}")

    listed = skopeo.list_tags(f"docker://{shared_registry.host}/{repo}")
    assert sorted(listed) == sorted(tags)
    require_dockyard(shared_registry, "tags/list order (distribution 2.x lists in directory order)")
    assert listed == sorted(tags)


def test_delete_removes_the_manifest_and_its_tag_only(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    seed = unique_seed()
    doomed, kept = build_image(seed), build_image(seed, layer_count=1)
    base = f"docker://{shared_registry.host}/{repo}"
    push(skopeo, tmp, doomed, f"{base}:doomed")
    push(skopeo, tmp, kept, f"{base}:kept")

    skopeo.delete(f"{base}:doomed")

    gone = http.get(f"/v2/{repo}/manifests/{doomed.digest}", headers={"Accept": ACCEPT_ALL})
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert http.get(f"/v2/{repo}/manifests/doomed", headers={"Accept": ACCEPT_ALL}).status_code == 404
    assert skopeo.list_tags(base) == ["kept"]
    assert skopeo.inspect_raw(f"{base}:kept") == kept.manifest.data


def test_sync_docker_to_docker_copies_every_tag(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str,
) -> None:
    seed = unique_seed()
    source = f"{shared_registry.host}/{repo}"
    single, index = build_image(seed), build_index(seed)
    push(skopeo, tmp, single, f"docker://{source}:single")
    push(skopeo, tmp, index, f"docker://{source}:multi", "--all")

    skopeo.sync("docker", "docker", source, f"{shared_registry.host}/{repo}-mirror", "--all")

    mirror = f"docker://{shared_registry.host}/{repo}-mirror/{repo.rsplit('/', 1)[-1]}"
    assert sorted(skopeo.list_tags(mirror)) == ["multi", "single"]
    assert skopeo.inspect_raw(f"{mirror}:single") == single.manifest.data
    assert skopeo.inspect_raw(f"{mirror}:multi") == index.manifest.data
    for image in index.images:
        assert skopeo.inspect_raw(f"{mirror}@{image.digest}") == image.manifest.data


def test_sync_docker_to_dir_writes_each_tag(
    skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str,
) -> None:
    seed = unique_seed()
    images = {"one": build_image(seed), "two": build_image(seed, layer_count=1)}
    for tag, image in images.items():
        push(skopeo, tmp, image, f"docker://{shared_registry.host}/{repo}:{tag}")

    out = tmp("sync")
    skopeo.sync("docker", "dir", f"{shared_registry.host}/{repo}", str(out))

    name = repo.rsplit("/", 1)[-1]
    for tag, image in images.items():
        directory = Path(out, f"{name}:{tag}")
        assert (directory / "manifest.json").read_bytes() == image.manifest.data
        for layer in image.layers:
            assert (directory / layer.digest.removeprefix("sha256:")).read_bytes() == layer.data
