"""Referrers API, OCI-Subject, and the sha256-<hex> tag fallback."""

from __future__ import annotations

from tests.integration.conftest import Registry
from tests.support.content import (
    OCI_INDEX,
    dumps,
    error_codes,
    make_artifact,
    make_image,
    push_blob,
    push_image,
    push_manifest,
    sha256,
)

NAME = "team/app"
SBOM = "application/vnd.example.sbom+json"
SIG = "application/vnd.example.signature"


async def test_referrers_list_and_filter(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, NAME, image, "v1")
    sbom, sig = make_artifact(image, SBOM), make_artifact(image, SIG)
    for artifact in (sbom, sig):
        for blob in artifact.blobs:
            await push_blob(registry.client, NAME, blob)
        pushed = await push_manifest(registry.client, NAME, artifact.digest, artifact.manifest)
        assert pushed.status_code == 201, pushed.text
        assert pushed.headers["oci-subject"] == image.digest

    listed = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}")
    assert listed.status_code == 200
    assert listed.headers["content-type"] == OCI_INDEX
    index = listed.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sbom.digest, sig.digest}
    assert by_digest[sbom.digest]["artifactType"] == SBOM
    assert by_digest[sbom.digest]["size"] == len(sbom.manifest)
    assert by_digest[sbom.digest]["annotations"] == {"org.example.kind": SBOM}
    assert "oci-filters-applied" not in listed.headers

    filtered = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}",
                                         params={"artifactType": SBOM})
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [sbom.digest]


async def test_referrer_may_arrive_before_its_subject(registry: Registry) -> None:
    image = make_image()
    artifact = make_artifact(image, SBOM)
    await push_image(registry.client, NAME, artifact)
    listed = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}")
    assert [d["digest"] for d in listed.json()["manifests"]] == [artifact.digest]


async def test_image_manifest_referrer_reports_config_media_type(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, NAME, image)
    subject = {"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest)}
    referrer = make_image(layers=1, subject=subject)
    await push_image(registry.client, NAME, referrer)
    listed = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}")
    assert listed.json()["manifests"][0]["artifactType"] == "application/vnd.oci.image.config.v1+json"


async def test_unknown_subject_is_an_empty_index(registry: Registry) -> None:
    listed = await registry.client.get(f"/v2/{NAME}/referrers/{sha256(b'nothing')}")
    assert listed.status_code == 200
    assert listed.json()["manifests"] == []


async def test_bad_digest_is_400(registry: Registry) -> None:
    listed = await registry.client.get(f"/v2/{NAME}/referrers/sha256:nothex")
    assert listed.status_code == 400
    assert error_codes(listed) == ["DIGEST_INVALID"]


async def test_deleted_referrer_disappears(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, NAME, image)
    artifact = make_artifact(image, SIG)
    await push_image(registry.client, NAME, artifact)
    listed = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}")
    assert [d["digest"] for d in listed.json()["manifests"]] == [artifact.digest]
    assert (await registry.client.delete(f"/v2/{NAME}/manifests/{artifact.digest}")).status_code == 202
    listed = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}")
    assert listed.json()["manifests"] == []


async def test_tag_schema_fallback(registry: Registry) -> None:
    """Clients without the referrers API push an index under the tag sha256-<hex>."""
    image = make_image()
    await push_image(registry.client, NAME, image)
    artifact = make_artifact(image, SIG)
    await push_image(registry.client, NAME, artifact)
    fallback_tag = image.digest.replace(":", "-")
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": artifact.media_type, "digest": artifact.digest, "size": len(artifact.manifest),
         "artifactType": SIG}]})
    pushed = await push_manifest(registry.client, NAME, fallback_tag, index, OCI_INDEX)
    assert pushed.status_code == 201, pushed.text
    pulled = await registry.client.get(f"/v2/{NAME}/manifests/{fallback_tag}")
    assert pulled.content == index
    tags = (await registry.client.get(f"/v2/{NAME}/tags/list")).json()["tags"]
    assert fallback_tag in tags
