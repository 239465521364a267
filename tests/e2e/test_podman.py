"""podman against a real registry process: push, remove, pull back and compare; Docker format;
platform selection from a multi-platform index; a manifest list built and pushed by podman."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.clients import Podman, Registry, Skopeo
from tests.e2e.conftest import TmpFactory
from tests.e2e.images import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    build_image,
    build_index,
    sha256_digest,
    unique_seed,
    write_layout,
)

pytestmark = pytest.mark.e2e

ACCEPT_ALL = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST))


def image_id(config_digest: str) -> str:
    """podman's image ID is the config digest without its algorithm."""
    return config_digest.removeprefix("sha256:")


def served_manifest(http: httpx.Client, repo: str, reference: str) -> httpx.Response:
    response = http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200, f"GET manifest {repo}:{reference}: {response.text}"
    return response


def load_from_layout(podman: Podman, tmp: TmpFactory, seed: str) -> str:
    """Put a fresh image into podman's storage from an OCI layout; return its image ID."""
    image = build_image(seed)
    layout = write_layout(tmp("layout"), "v1", image)
    loaded = podman.pull(f"oci:{layout}:v1")
    assert loaded == image_id(image.config.digest)
    return loaded


def test_push_rmi_pull_gives_back_the_same_image(
    podman: Podman, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    loaded = load_from_layout(podman, tmp, unique_seed())
    destination = f"{shared_registry.host}/{repo}:v1"

    pushed_digest = podman.push(loaded, destination)
    served = served_manifest(http, repo, "v1")
    assert served.headers["docker-content-digest"] == pushed_digest
    assert sha256_digest(served.content) == pushed_digest
    assert json.loads(served.content)["config"]["digest"] == f"sha256:{loaded}"

    podman.rmi(loaded)
    assert loaded not in podman.image_ids()

    assert podman.pull(destination) == loaded
    inspected = podman.inspect(destination)
    assert inspected["Digest"] == pushed_digest
    assert f"{shared_registry.host}/{repo}@{pushed_digest}" in inspected["RepoDigests"]


def test_pull_by_digest(
    podman: Podman, tmp: TmpFactory, shared_registry: Registry, repo: str,
) -> None:
    loaded = load_from_layout(podman, tmp, unique_seed())
    pushed_digest = podman.push(loaded, f"{shared_registry.host}/{repo}:v1")
    podman.rmi(loaded)

    assert podman.pull(f"{shared_registry.host}/{repo}@{pushed_digest}") == loaded


def test_push_in_docker_format(
    podman: Podman, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    loaded = load_from_layout(podman, tmp, unique_seed())
    destination = f"{shared_registry.host}/{repo}:docker"

    pushed_digest = podman.push(loaded, destination, "--format", "v2s2")
    served = served_manifest(http, repo, "docker")
    assert served.headers["content-type"].split(";")[0] == DOCKER_MANIFEST
    assert served.headers["docker-content-digest"] == pushed_digest

    podman.rmi(loaded)
    assert podman.pull(destination) == loaded
    assert podman.inspect(destination)["Digest"] == pushed_digest


@pytest.mark.parametrize("architecture", ["amd64", "arm64"])
def test_pull_selects_the_platform_from_an_index(
    podman: Podman, skopeo: Skopeo, tmp: TmpFactory, shared_registry: Registry, repo: str,
    architecture: str,
) -> None:
    index = build_index(unique_seed())
    layout = write_layout(tmp("layout"), "multi", index)
    destination = f"{shared_registry.host}/{repo}:multi"
    skopeo.copy(f"oci:{layout}:multi", f"docker://{destination}", "--all")
    wanted = next(image for image in index.images if image.architecture == architecture)

    pulled = podman.pull(destination, "--platform", f"linux/{architecture}")

    assert pulled == image_id(wanted.config.digest)
    inspected = podman.inspect(pulled)
    assert inspected["Architecture"] == architecture
    assert inspected["Digest"] == index.digest, (index.digest, wanted.digest, inspected["RepoDigests"])
    assert f"{shared_registry.host}/{repo}@{wanted.digest}" in inspected["RepoDigests"]


def test_manifest_list_built_by_podman_is_pushed_whole(
    podman: Podman, tmp: TmpFactory, shared_registry: Registry, repo: str, http: httpx.Client,
) -> None:
    seed = unique_seed()
    list_name = f"localhost/{repo}-list"
    podman.run("manifest", "create", list_name)
    images = [build_image(seed, platform=("linux", arch)) for arch in ("amd64", "arm64")]
    for image in images:
        layout = write_layout(tmp("layout"), "v1", image)
        podman.run("manifest", "add", list_name, f"oci:{layout}:v1")
    destination = f"{shared_registry.host}/{repo}:list"

    podman.run("manifest", "push", "--all", "--tls-verify=false", list_name, f"docker://{destination}")

    served = json.loads(served_manifest(http, repo, "list").content)
    children = {child["platform"]["architecture"]: child["digest"] for child in served["manifests"]}
    assert set(children) == {"amd64", "arm64"}
    for image in images:
        child = json.loads(served_manifest(http, repo, children[image.architecture]).content)
        assert child["config"]["digest"] == image.config.digest
