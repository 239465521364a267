"""cosign signatures on the real app (SQLite and PostgreSQL): signatures made by the real cosign,
pushed through /v2 as cosign pushes them, are found and verified against the project's trusted
keys; signatures made by dockyard are too; the keys API checks what it is given.

About the fixtures' signed images: sig1's ``signed-image-manifest.json`` (the image its payload
signs) references a config and a 2.9 MB layer the fixtures do not include, and no blob can be made
to have their digests, so the registry refuses that manifest (MANIFEST_BLOB_UNKNOWN, checked
below). cosign does not need the image to be present either: its signatures live under a tag
computed from the digest alone. So the fixtures' signature manifests are pushed as cosign pushes
them (sig5's byte for byte, with its real config and payload blobs; the others rebuilt around the
real payload and signatures), and looked up by the signed image's digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from dockyard.scan import cosign
from tests.integration.conftest import Registry, client_as
from tests.integration.test_api import add_project, add_user
from tests.support.content import error_codes, make_image, push_blob, push_image, push_manifest

DATA = Path(__file__).parent.parent / "data" / "cosign"
SIG1 = DATA / "sig1-containers-image-cosign-valid"
SIG2 = DATA / "sig2-containers-image-cosign-valid-2-signature-2"
SIG3 = DATA / "sig3-containers-image-cosign-key-rekor-valid"
NEG = DATA / "neg-containers-image-unknown-cosign-key"
SIG5 = DATA / "sig5-tobby-fetch-full-sig-manifest"
KEY3 = DATA / "key3-kwctl-cosign-generate-key-pair"
SIGNED_DIGEST = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def refused(response: httpx.Response, status: int, code: str, says: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["code"] == code, error
    assert says in error["message"], error


async def trust(api: httpx.AsyncClient, project: str, name: str, pub: Path) -> dict[str, Any]:
    return dict(ok(await api.post(f"/api/v1/projects/{project}/keys",
                                  json={"name": name, "public_key": pub.read_text()}), 201))


async def signatures_of(api: httpx.AsyncClient, repository: str, reference: str) -> dict[str, Any]:
    return dict(ok(await api.get(f"/api/v1/repositories/{repository}/manifests/{reference}/signatures")))


async def push_cosign_signatures(api: httpx.AsyncClient, repository: str, data: bytes,
                                 layers: list[cosign.SignatureLayer]) -> str:
    """What ``cosign sign`` pushes: the payload, the config, the manifest under the .sig tag."""
    config = cosign.signature_config(layers)
    await push_blob(api, repository, data)
    await push_blob(api, repository, config)
    digest = cosign.parse_payload(data).digest
    body = cosign.signature_manifest(layers, config)
    ok(await push_manifest(api, repository, cosign.signature_tag(digest), body), 201)
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def fixture_layer(folder: Path, extra: dict[str, str] | None = None) -> tuple[bytes, cosign.SignatureLayer]:
    data = (folder / "payload.json").read_bytes()
    return data, cosign.new_layer(data, (folder / "signature.b64").read_text().strip(), extra)


async def test_cosigns_own_manifest_pushed_byte_for_byte_verifies(registry: Registry) -> None:
    api, repository = registry.client, "tobby/fixture"
    await add_project(api, "tobby")
    body = (SIG5 / "sig-manifest.json").read_bytes()
    digest = cosign.parse_payload((SIG5 / "payload.json").read_bytes()).digest
    for blob in ("config.json", "payload.json"):
        await push_blob(api, repository, (SIG5 / blob).read_bytes())
    pushed = await push_manifest(api, repository, cosign.signature_tag(digest), body)
    ok(pushed, 201)

    untrusted = await signatures_of(api, repository, digest)
    [view] = untrusted["signatures"]
    assert untrusted["signed"] is False
    assert view["verified"] is False
    assert "trusts no key" in view["reason"]

    key = await trust(api, "tobby", "tobby-ci", SIG5 / "cosign.pub")
    found = await signatures_of(api, repository, digest)
    assert found["digest"] == digest
    assert found["signed"] is True
    [view] = found["signatures"]
    assert view["verified"] is True
    assert view["key"] == "tobby-ci"
    assert view["fingerprint"] == key["fingerprint"]
    assert view["source"] == "tag"
    assert view["tag"] == cosign.signature_tag(digest)
    assert view["manifest"] == pushed.headers["docker-content-digest"]
    assert view["docker_reference"] == "localhost:15381/tobby/fixture"
    assert view["signature"] == (SIG5 / "signature.b64").read_text().strip()
    assert view["rekor_bundle"] is False
    assert await registry.parts.signatures.is_signed_by_trusted_key(repository, digest)
    # What is stored is cosign's manifest, byte for byte.
    fetched = await api.get(f"/v2/{repository}/manifests/{cosign.signature_tag(digest)}",
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert fetched.content == body


async def test_fixture_signatures_each_verify_with_their_key_and_the_unknown_one_with_none(
        registry: Registry) -> None:
    api, repository = registry.client, "containers/cosign-signed-single-sample"
    await add_project(api, "containers")
    # The signed image itself cannot be pushed: its blobs are not in the fixtures.
    subject = (SIG1 / "signed-image-manifest.json").read_bytes()
    assert f"sha256:{hashlib.sha256(subject).hexdigest()}" == SIGNED_DIGEST
    missing = await push_manifest(api, repository, SIGNED_DIGEST, subject,
                                  "application/vnd.docker.distribution.manifest.v2+json")
    assert missing.status_code == 400
    assert error_codes(missing) == ["MANIFEST_BLOB_UNKNOWN"]

    layers = [fixture_layer(folder) for folder in (SIG1, SIG2, NEG)]
    assert len({data for data, _ in layers}) == 1  # one payload, three signatures of it
    await push_cosign_signatures(api, repository, layers[0][0], [layer for _, layer in layers])
    await trust(api, "containers", "valid", SIG2 / "cosign.pub")
    await trust(api, "containers", "rekor", SIG2 / "cosign2.pub")

    found = await signatures_of(api, repository, SIGNED_DIGEST)
    verdicts = [(v["verified"], v["key"]) for v in found["signatures"]]
    assert verdicts == [(True, "valid"), (True, "valid"), (False, None)]
    assert found["signatures"][2]["reason"] == "no trusted key verifies it (tried rekor, valid)"
    assert all(v["docker_reference"] == "192.168.64.2:5000/cosign-signed-single-sample"
               for v in found["signatures"])


async def test_rekor_bundle_signature_verifies_with_the_second_key(registry: Registry) -> None:
    api, repository = registry.client, "containers/cosign-signed/key-1"
    await add_project(api, "containers")
    raw = (SIG3 / "containers-image-sigstore-json.bin").read_bytes()
    bundle = json.loads(raw[len(b"\x00sigstore-json\n"):])["annotations"][cosign.BUNDLE_ANNOTATION]
    data, layer = fixture_layer(SIG3, {cosign.BUNDLE_ANNOTATION: bundle})
    await push_cosign_signatures(api, repository, data, [layer])
    await trust(api, "containers", "first", SIG3 / "cosign.pub")
    digest = cosign.parse_payload(data).digest
    [view] = (await signatures_of(api, repository, digest))["signatures"]
    assert view["verified"] is False
    await trust(api, "containers", "second", SIG3 / "cosign2.pub")
    [view] = (await signatures_of(api, repository, digest))["signatures"]
    assert (view["verified"], view["key"], view["rekor_bundle"]) == (True, "second", True)
    assert view["annotations"] == [cosign.BUNDLE_ANNOTATION]


async def test_a_signature_of_another_image_does_not_count(registry: Registry) -> None:
    api, repository = registry.client, "team/app"
    await add_project(api, "team")
    image = make_image()
    await push_image(api, repository, image, "v1")
    await trust(api, "team", "valid", SIG1 / "cosign.pub")
    data, layer = fixture_layer(SIG1)  # a valid signature, of sha256:634a…, copied under this image's tag
    config = cosign.signature_config([layer])
    await push_blob(api, repository, data)
    await push_blob(api, repository, config)
    ok(await push_manifest(api, repository, cosign.signature_tag(image.digest),
                           cosign.signature_manifest([layer], config)), 201)
    found = await signatures_of(api, repository, "v1")
    assert found["digest"] == image.digest
    [view] = found["signatures"]
    assert view["verified"] is False
    assert view["reason"] == f"the payload signs {SIGNED_DIGEST}, not this image"
    assert not await registry.parts.signatures.is_signed_by_trusted_key(repository, image.digest)


async def test_dockyard_signs_like_cosign_tag_and_referrer(registry: Registry) -> None:
    api, repository, service = registry.client, "team/app", registry.parts.signatures
    await add_project(api, "team")
    image = make_image()
    await push_image(api, repository, image, "v1")
    first = cosign.load_private_key((KEY3 / "cosign1.key").read_bytes(), b"kubewarden")
    second = cosign.load_private_key((KEY3 / "cosign2.key").read_bytes(), b"kubewarden")
    third = cosign.load_private_key((KEY3 / "cosign3.key").read_bytes(), b"kubewarden")

    signed = await service.sign(repository, "v1", first)
    assert await service.sign(repository, image.digest, first) == signed  # the same signer again: kept
    both = await service.sign(repository, "v1", second)
    assert both != signed
    referrer = await service.sign(repository, "v1", third, referrer=True)

    tag = cosign.signature_tag(image.digest)
    manifest = ok(await api.get(f"/v2/{repository}/manifests/{tag}",
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}))
    assert [x["mediaType"] for x in manifest["layers"]] == [cosign.SIMPLESIGNING] * 2
    config = ok(await api.get(f"/v2/{repository}/blobs/{manifest['config']['digest']}"))
    assert config["rootfs"]["diff_ids"] == [x["digest"] for x in manifest["layers"]]
    payload = (await api.get(f"/v2/{repository}/blobs/{manifest['layers'][0]['digest']}")).content
    assert payload == cosign.payload(image.digest, f"{service.registry_host}/{repository}")
    listed = ok(await api.get(f"/v2/{repository}/referrers/{image.digest}"))
    [descriptor] = listed["manifests"]
    assert descriptor["digest"] == referrer
    assert descriptor["artifactType"] == cosign.SIGNATURE_ARTIFACT_TYPE

    for number in (1, 2):
        await trust(api, "team", f"ci-{number}", KEY3 / f"cosign{number}.pub")
    found = await signatures_of(api, repository, "v1")
    assert [(v["source"], v["verified"], v["key"]) for v in found["signatures"]] == [
        ("tag", True, "ci-1"), ("tag", True, "ci-2"), ("referrer", False, None)]
    assert found["signatures"][2]["manifest"] == referrer
    await trust(api, "team", "ci-3", KEY3 / "cosign3.pub")
    found = await signatures_of(api, repository, image.digest)
    assert [v["key"] for v in found["signatures"]] == ["ci-1", "ci-2", "ci-3"]

    events = ok(await api.get("/api/v1/audit", params={"repository": repository, "action": "manifest.pushed"}))
    pushed_tags = {t for e in events["events"] for t in (e.get("detail") or {}).get("tags", [])}
    assert pushed_tags == {tag, "v1"}  # the signatures went through the manifest service, recorded


async def test_keys_api_checks_what_it_is_given(registry: Registry) -> None:
    api, keys = registry.client, "/api/v1/projects/team/keys"
    await add_project(api, "team")
    pem = (KEY3 / "cosign1.pub").read_text()
    added = ok(await api.post(keys, json={"name": "release", "public_key": pem}), 201)
    assert added["fingerprint"] == cosign.fingerprint(cosign.load_public_key(pem.encode()))
    assert added["created_by"] == "admin"
    refused(await api.post(keys, json={"name": "release", "public_key": (KEY3 / "cosign2.pub").read_text()}),
            409, "CONFLICT", "has a key named 'release' already")
    refused(await api.post(keys, json={"name": "again", "public_key": pem}), 409, "CONFLICT",
            "trusts this key already, as 'release'")
    refused(await api.post(keys, json={"name": "bad", "public_key": "hello"}), 400, "INVALID_REQUEST",
            "exactly one PEM block")
    refused(await api.post(keys, json={"name": "bad", "public_key": "A" * 5000}), 400, "INVALID_REQUEST",
            "more than the 4096")
    refused(await api.post(keys, json={"name": "bad", "public_key": (KEY3 / "cosign1.key").read_text()}),
            400, "INVALID_REQUEST", "give the .pub file")
    refused(await api.post(keys, json={"name": "no/slash", "public_key": pem}), 400, "INVALID_REQUEST",
            "a key name is letters, digits")
    refused(await api.post(keys, json={"name": "n" * 65, "public_key": pem}), 400, "INVALID_REQUEST", "at most 64")
    listed = ok(await api.get(keys))
    assert [k["name"] for k in listed] == ["release"]
    assert listed[0]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")

    developer = client_as(registry, await add_user(api, "dev", "team", "developer"))
    assert [k["name"] for k in ok(await developer.get(keys))] == ["release"]
    refused(await developer.post(keys, json={"name": "mine", "public_key": pem}), 403, "DENIED", "admin role")
    refused(await developer.delete(f"{keys}/release"), 403, "DENIED", "admin role")
    outsider = client_as(registry, await add_user(api, "outsider"))
    refused(await outsider.get(keys), 404, "NOT_FOUND", "project 'team' not found")
    refused(await outsider.get("/api/v1/repositories/team/app/manifests/v1/signatures"), 404, "NOT_FOUND",
            "repository 'team/app' not found")

    ok(await api.delete(f"{keys}/release"), 204)
    refused(await api.delete(f"{keys}/release"), 404, "NOT_FOUND", "no trusted key named 'release'")
    assert ok(await api.get(keys)) == []
    audit = ok(await api.get("/api/v1/audit", params={"project": "team", "action": "signing_key.*"}))
    assert [e["action"] for e in reversed(audit["events"])] == [
        "signing_key.added", "signing_key.removed"]


async def test_signatures_of_an_unknown_tag_is_404_and_of_an_unsigned_digest_empty(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team")
    image = make_image()
    await push_image(api, "team/app", image, "v1")
    refused(await api.get("/api/v1/repositories/team/app/manifests/v2/signatures"), 404, "MANIFEST_UNKNOWN", "")
    assert await signatures_of(api, "team/app", image.digest) == {
        "repository": "team/app", "digest": image.digest, "signed": False, "signatures": []}
    refused(await api.get("/api/v1/repositories/team/app/manifests/sha256:abc/signatures"), 400,
            "DIGEST_INVALID", "")


async def test_a_signature_whose_payload_blob_is_gone_does_not_verify(registry: Registry) -> None:
    api, repository = registry.client, "tobby/fixture"
    await add_project(api, "tobby")
    data = (SIG5 / "payload.json").read_bytes()
    for blob in ((SIG5 / "config.json").read_bytes(), data):
        await push_blob(api, repository, blob)
    digest = cosign.parse_payload(data).digest
    ok(await push_manifest(api, repository, cosign.signature_tag(digest), (SIG5 / "sig-manifest.json").read_bytes()),
       201)
    await trust(api, "tobby", "tobby-ci", SIG5 / "cosign.pub")
    payload_digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert (await api.delete(f"/v2/{repository}/blobs/{payload_digest}")).status_code == 202
    [view] = (await signatures_of(api, repository, digest))["signatures"]
    assert view["verified"] is False
    assert view["reason"].startswith(f"the payload blob {payload_digest} cannot be read")
