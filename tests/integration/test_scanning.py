"""Scanning on push, end to end in the real app: the outbox reader queues what was pushed, a worker
scans it from the stored blobs (the filesystem, and S3 on PostgreSQL), the report and the SBOM
referrer follow; on SQLite, PostgreSQL and PostgreSQL + S3."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.oci.manifests import Descriptor
from dockyard.scan.analysis import analyse
from dockyard.scan.layers import Layer
from dockyard.scan.sbom import SBOM_ARTIFACT_TYPE
from dockyard.services.scan_process import analyse_in_child
from tests.integration.backends import every_backend  # noqa: F401 - the fixture this module runs on
from tests.integration.conftest import Registry
from tests.integration.scanning_support import (
    AWS_KEY_ID,
    AWS_SECRET,
    CREDENTIALS,
    DIST_INFO,
    NAME,
    PACKAGES,
    debian_app,
    drain,
    opened,
    queue_pushed,
    scan_config,
    scan_row,
    tar_layer,
)
from tests.support.content import (
    OCI_INDEX,
    OCI_LAYER,
    make_artifact,
    make_index,
    push_blob,
    push_image,
    push_manifest,
    sha256,
)


@pytest.fixture
async def registry(tmp_path: Path, backend: tuple[str, dict[str, object]]) -> AsyncIterator[Registry]:
    database_url, storage = backend
    async for opened_registry in opened(scan_config(tmp_path, database_url, storage)):
        yield opened_registry


def assert_no_secret(text: str) -> None:
    assert AWS_SECRET not in text
    assert AWS_KEY_ID not in text
    assert AWS_SECRET[4:12] not in text


async def sboms_of(registry: Registry, digest: str, *, name: str = NAME) -> list[dict[str, object]]:
    listed = await registry.client.get(f"/v2/{name}/referrers/{digest}", params={"artifactType": SBOM_ARTIFACT_TYPE})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["manifests"])


async def test_a_pushed_image_is_queued_scanned_and_gets_its_sbom(registry: Registry) -> None:
    parts = registry.parts
    image = debian_app()
    await push_image(registry.client, NAME, image, "v1")
    assert await scan_row(parts, image.digest) is None  # the push queued nothing itself

    assert await queue_pushed(parts) == 1
    assert (await scan_row(parts, image.digest)).status == "queued"  # type: ignore[union-attr]
    assert await drain(parts.scanning) == 1

    row = await scan_row(parts, image.digest)
    assert row is not None
    assert row.status == "done"
    assert row.attempts == 1
    assert_no_secret(json.dumps([row.inventory, row.findings, row.vulnerabilities]))

    answer = await registry.client.get(f"/api/v1/repositories/{NAME}/manifests/v1/scan")
    assert answer.status_code == 200, answer.text
    assert_no_secret(answer.text)
    report = answer.json()
    assert report["digest"] == image.digest
    assert report["status"] == "done"
    assert {p["name"] for p in report["packages"]} == PACKAGES
    layers = json.loads(image.manifest)["layers"]
    by_name = {p["name"]: p for p in report["packages"]}
    assert by_name["zlib1g"]["layer"] == layers[0]["digest"]
    assert by_name["requests"]["layer"] == layers[1]["digest"]
    assert by_name["requests"]["purl"].startswith("pkg:pypi/requests@2.31.0")
    assert by_name["requests"]["ecosystem"] == "PyPI"
    assert report["distro"]["id"] == "debian"
    secrets = [s for s in report["secrets"] if s["path"] == "root/.aws/credentials"]
    assert secrets, report["secrets"]
    assert all(s["removed"] and s["layer"] == layers[1]["digest"] for s in secrets)
    assert all(s["masked"].endswith("****") and len(s["masked"].rstrip("*")) <= 4 for s in secrets)
    assert report["scanner_version"]
    assert report["scanned_at"]
    assert set(report["summary"]) == {"critical", "high", "medium", "low", "unknown"}
    assert report["vulnerabilities"] == []
    assert report["malware"] == []

    # The SBOM referrer: listed (with and without the filter), a CycloneDX layer, the empty config.
    sboms = await sboms_of(registry, image.digest)
    assert len(sboms) == 1
    assert sboms[0]["artifactType"] == SBOM_ARTIFACT_TYPE
    everything = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}")
    assert [d["digest"] for d in everything.json()["manifests"]] == [sboms[0]["digest"]]
    manifest = (await registry.client.get(f"/v2/{NAME}/manifests/{sboms[0]['digest']}")).json()
    assert manifest["subject"]["digest"] == image.digest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["config"]["digest"] == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SBOM_ARTIFACT_TYPE
    document = (await registry.client.get(f"/v2/{NAME}/blobs/{layer['digest']}")).json()
    assert document["bomFormat"] == "CycloneDX"
    assert_no_secret(json.dumps(document))

    # The SBOM's own push event is not an image: nothing more to scan, no second SBOM.
    assert await queue_pushed(parts) == 0
    assert await drain(parts.scanning) == 0
    report_again = await parts.scanning.report(NAME, "v1")
    assert report_again.is_done
    assert len(await sboms_of(registry, image.digest)) == 1


async def test_each_child_of_an_index_is_scanned_and_gets_one_sbom(registry: Registry) -> None:
    parts = registry.parts
    children = [debian_app(architecture="amd64"), debian_app(architecture="arm64")]
    for child in children:
        await push_image(registry.client, NAME, child)
    index = make_index(children)
    assert (await push_manifest(registry.client, NAME, "multi", index, OCI_INDEX)).status_code == 201

    assert await queue_pushed(parts) == 2  # the children; the index itself is not an image
    assert await drain(parts.scanning) == 2
    for child in children:
        assert len(await sboms_of(registry, child.digest)) == 1

    answer = await registry.client.get(f"/api/v1/repositories/{NAME}/manifests/multi/scan")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["status"] == "done"
    assert [c["platform"] for c in report["children"]] == ["linux/amd64", "linux/arm64"]
    assert [c["digest"] for c in report["children"]] == [c.digest for c in children]
    assert all({p["name"] for p in c["packages"]} == PACKAGES for c in report["children"])
    assert_no_secret(answer.text)


async def test_artifacts_are_not_scanned(registry: Registry) -> None:
    parts = registry.parts
    image = debian_app()
    await push_image(registry.client, NAME, image, "v1")
    signature = make_artifact(image, "application/vnd.dev.cosign.artifact.sig.v1+json")
    await push_image(registry.client, NAME, signature)
    assert await queue_pushed(parts) == 1
    assert await scan_row(parts, signature.digest) is None
    report = await parts.scanning.report(NAME, signature.digest)
    assert report.status == "not-an-image"
    assert await scan_row(parts, signature.digest) is None


async def test_an_image_pushed_into_another_repository_gets_its_sbom_there(registry: Registry) -> None:
    parts = registry.parts
    image = debian_app()
    await push_image(registry.client, NAME, image, "v1")
    await queue_pushed(parts)
    await drain(parts.scanning)
    await push_image(registry.client, "team/copy", image, "v1")
    assert await queue_pushed(parts) == 0  # scanned already
    assert await drain(parts.scanning) == 0
    assert len(await sboms_of(registry, image.digest, name="team/copy")) == 1
    assert len(await sboms_of(registry, image.digest)) == 1
    assert DIST_INFO in {p.path for p in (await parts.scanning.report("team/copy", "v1")).packages}


async def test_layers_are_analysed_by_a_child_process_reading_them_from_this_backend(registry: Registry) -> None:
    """The child gets the bytes as stored (its own open of a file on the filesystem, frames over
    its stdin from an object store, a layer it stops reading early skipped to the next) and answers
    what an analysis in this process answers; a cancelled analysis kills the child."""
    status = b"Package: tiny\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0-1\n\n"
    first = tar_layer({f"file-{i}": bytes([i]) * 300_000 for i in range(8)}, compress=False) + b"\0" * 70_000
    second = tar_layer({"var/lib/dpkg/status": status, "root/.aws/credentials": CREDENTIALS})
    descriptors = []
    for layer in (first, second):
        await push_blob(registry.client, NAME, layer)
        descriptors.append(Descriptor(media_type=OCI_LAYER, digest=sha256(layer), size=len(layer)))
    config = registry.parts.config.scan
    in_child = await analyse_in_child(registry.parts.store, descriptors, config)
    here = analyse([Layer(d.digest, d.media_type, lambda data=data: io.BytesIO(data))
                    for d, data in zip(descriptors, (first, second), strict=True)],
                   max_file_bytes=config.secret_max_file_bytes, clamd=None)
    assert in_child == here
    assert [p.name for p in in_child.inventory.packages] == ["tiny"]
    assert {s.rule for s in in_child.findings.secrets} == {"aws-access-key-id", "aws-secret-access-key"}

    scan = asyncio.create_task(analyse_in_child(registry.parts.store, descriptors * 200, config))
    await asyncio.sleep(0)
    scan.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scan
