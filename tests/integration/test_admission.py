"""Push and pull rules on the real app (SQLite and PostgreSQL): the admission API and its value
checks, the allow-list, required labels on push (enforce, warn, artifacts exempt, indexes), pull
refused until signed by a trusted key, "not scanned yet", HEAD and signature tags never gated, and
``policy.warned`` events with the ``Dockyard-Policy-Warning`` header."""

from __future__ import annotations

from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.app import flush_pulls
from dockyard.scan import cosign
from tests.integration.conftest import Registry, client_as
from tests.integration.test_api import add_project, add_user
from tests.support.content import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    descriptor,
    dumps,
    error_codes,
    make_artifact,
    make_image,
    make_index,
    push_blob,
    push_image,
    push_manifest,
    random_bytes,
)

P = "/api/v1/projects/team-a"
SOURCE = "org.opencontainers.image.source"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def refused(response: httpx.Response, status: int, code: str, message: str | None = None, *says: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["code"] == code, error
    if message is not None:
        assert error["message"] == message, error
    for text in says:
        assert text in error["message"], error


def labelled_image(labels: dict[str, str]) -> Image:
    config = dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels},
                    "rootfs": {"type": "layers", "diff_ids": []}, "nonce": random_bytes(8).hex()})
    layer = random_bytes(600)
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor(OCI_LAYER, layer)]}
    return Image(config, (layer,), dumps(document), OCI_MANIFEST)


async def push_blobs(api: httpx.AsyncClient, repository: str, image: Image) -> None:
    for blob in image.blobs:
        await push_blob(api, repository, blob)


async def audit(api: httpx.AsyncClient, action: str) -> list[dict[str, Any]]:
    found = ok(await api.get("/api/v1/audit", params={"project": "team-a", "action": action}))
    return list(reversed(found["events"]))


async def test_rules_and_allow_list_round_trip_through_the_api_with_events(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    assert ok(await api.get(f"{P}/admission")) == {"project": "team-a", "push": {}, "pull": {}}
    body = {"push": {"secrets": "enforce", "vulnerabilities": {"severity": "critical", "mode": "enforce"},
                     "malware": "warn", "labels": {"required": [SOURCE], "mode": "enforce"}},
            "pull": {"signed": "enforce", "scanned": "warn"}}
    saved = ok(await api.put(f"{P}/admission", json=body))
    assert saved == {"project": "team-a", "push": {
        "labels": {"required": [SOURCE], "mode": "enforce"}, "malware": "warn", "secrets": "enforce",
        "vulnerabilities": {"severity": "critical", "mode": "enforce"}}, "pull": {"scanned": "warn",
                                                                                  "signed": "enforce"}}
    assert ok(await api.get(f"{P}/admission")) == saved
    only_pull = ok(await api.put(f"{P}/admission", json={"pull": {}}))  # push stays, pull goes
    assert only_pull["push"] == saved["push"]
    assert only_pull["pull"] == {}

    entry = ok(await api.post(f"{P}/allowlist", json={"id": "CVE-2023-4863", "reason": "no image decoding",
                                                        "expires": "2027-01-31"}), 201)
    assert (entry["id"], entry["expires"], entry["expired"], entry["created_by"]) == (
        "CVE-2023-4863", "2027-01-31", False, "admin")
    ok(await api.post(f"{P}/allowlist", json={"id": "GHSA-aaaa-bbbb-cccc", "reason": "dev only",
                                              "expires": "2020-01-01"}), 201)
    listed = ok(await api.get(f"{P}/allowlist"))
    assert [(e["id"], e["expired"]) for e in listed] == [("CVE-2023-4863", False), ("GHSA-aaaa-bbbb-cccc", True)]
    ok(await api.delete(f"{P}/allowlist/GHSA-aaaa-bbbb-cccc"), 204)
    refused(await api.delete(f"{P}/allowlist/GHSA-aaaa-bbbb-cccc"), 404, "NOT_FOUND",
            "project 'team-a' has no allow-list entry 'GHSA-aaaa-bbbb-cccc'")

    assert [e["action"] for e in await audit(api, "policy.*")] == [
        "policy.admission.set", "policy.admission.set", "policy.allowlist.added", "policy.allowlist.added",
        "policy.allowlist.deleted"]


async def test_bad_values_are_400s_that_name_the_field(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    for body, field, message in [
            ({"push": {"signed": "enforce"}}, "push.signed",
             "unknown push rule 'signed'; push rules are secrets, vulnerabilities, malware, labels"),
            ({"pull": {"vulnerabilities": "enforce"}}, "pull.vulnerabilities.severity",
             "pull.vulnerabilities needs severity, one of critical, high, medium, low, unknown: vulnerabilities = "
             "{ severity = \"critical\", mode = \"enforce\" }"),
            ({"push": {"secrets": "block"}}, "push.secrets.mode",
             "push.secrets.mode must be \"enforce\" or \"warn\", not 'block'"),
            ({"push": {"labels": {"required": "x"}}}, "push.labels.required",
             "push.labels needs required, a list of 1 to 32 label keys: required = "
             "[\"org.opencontainers.image.source\"]"),
            ({"push": "enforce"}, "push", "push must be an object or null")]:
        response = await api.put(f"{P}/admission", json=body)
        refused(response, 400, "INVALID_REQUEST", message)
        assert response.json()["errors"][0]["detail"] == {"field": field}
    refused(await api.post(f"{P}/allowlist", json={"id": "CVE 1", "reason": "r"}), 400, "INVALID_REQUEST",
            None, "id must be a vulnerability id")
    refused(await api.post(f"{P}/allowlist", json={"id": "CVE-1", "reason": "r", "expires": "soon"}), 400,
            "INVALID_REQUEST", None, "expires must be a date such as 2027-01-31")
    refused(await api.post(f"{P}/allowlist", json={"id": "CVE-1", "reason": " "}), 400, "INVALID_REQUEST",
            None, "reason must say why")
    assert ok(await api.get(f"{P}/admission")) == {"project": "team-a", "push": {}, "pull": {}}


async def test_only_maintainers_change_rules(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    developer = client_as(registry, await add_user(api, "dev", "team-a", "developer"))
    assert ok(await developer.get(f"{P}/admission"))["push"] == {}
    refused(await developer.put(f"{P}/admission", json={"push": {"secrets": "enforce"}}), 403, "DENIED",
            "changing the policies of project 'team-a' needs the maintainer or admin role there")
    refused(await developer.post(f"{P}/allowlist", json={"id": "CVE-1", "reason": "r"}), 403, "DENIED")
    stranger = client_as(registry, await add_user(api, "stranger"))
    refused(await stranger.get(f"{P}/admission"), 404, "NOT_FOUND")


async def test_required_labels_refuse_warn_and_spare_artifacts(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    unlabelled_child = make_image()
    await push_image(api, "team-a/app", unlabelled_child)  # before the rule
    ok(await api.put(f"{P}/admission", json={"push": {"labels": {"required": [SOURCE, "team"]}}}))
    bare = labelled_image({"team": "a"})
    await push_blobs(api, "team-a/app", bare)
    response = await push_manifest(api, "team-a/app", "v1", bare.manifest)
    refused(response, 403, "DENIED", f"missing required labels: {SOURCE}")
    assert (await api.get("/v2/team-a/app/manifests/v1")).status_code == 404  # the tag never became visible

    good = labelled_image({SOURCE: "https://example.com/app", "team": "a"})
    await push_image(api, "team-a/app", good, "v2")
    annotated = make_image(annotations={SOURCE: "https://example.com/app", "team": "a"})
    await push_image(api, "team-a/app", annotated, "v3")  # manifest annotations count too

    signature = make_artifact(bare, "application/vnd.dev.cosign.artifact.sig.v1+json")
    await push_image(api, "team-a/app", signature)  # an artifact: never checked

    index = make_index([good, annotated])
    ok(await push_manifest(api, "team-a/app", "multi", index, "application/vnd.oci.image.index.v1+json"), 201)
    half = make_index([good, unlabelled_child])
    refused(await push_manifest(api, "team-a/app", "half", half, "application/vnd.oci.image.index.v1+json"), 403,
            "DENIED", f"missing required labels: {SOURCE}, team")

    ok(await api.put(f"{P}/admission", json={"push": {"labels": {"required": [SOURCE], "mode": "warn"}}}))
    warned = await push_manifest(api, "team-a/app", "v1", bare.manifest)
    assert warned.status_code == 201, warned.text
    assert warned.headers["dockyard-policy-warning"] == f"missing required labels: {SOURCE}"
    (event,) = await audit(api, "policy.warned")
    assert (event["repository"], event["digest"], event["detail"]["stage"], event["detail"]["rules"],
            event["detail"]["message"], event["detail"]["reference"]) == (
        "team-a/app", bare.digest, "push", ["push.labels"], f"missing required labels: {SOURCE}", "v1")


async def test_a_push_rule_needing_a_scan_checks_blobs_first(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    ok(await api.put(f"{P}/admission", json={"push": {"secrets": "enforce"}}))
    image = make_image()
    response = await push_manifest(api, "team-a/app", "v1", image.manifest)
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


def new_key() -> tuple[cosign.PrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return cosign.load_private_key(pem, None), public.decode()


async def test_pull_is_refused_until_signed_by_a_trusted_key(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    image = make_image()
    await push_image(api, "team-a/app", image, "v1")
    ok(await api.put(f"{P}/admission", json={"pull": {"signed": "enforce"}}))
    refused(await api.get("/v2/team-a/app/manifests/v1"), 403, "DENIED",
            "not signed by a key project team-a trusts (project team-a trusts no key yet: add one with dockyard "
            "key add); sign it with dockyard sign or cosign sign --key")
    assert (await api.head("/v2/team-a/app/manifests/v1")).status_code == 200  # HEAD is not gated

    trusted_key, trusted_pem = new_key()
    other_key, _ = new_key()
    key = ok(await api.post(f"{P}/keys", json={"name": "ci-key", "public_key": trusted_pem}), 201)
    fingerprint = cosign.fingerprint(trusted_key.public_key())
    await registry.parts.signatures.sign("team-a/app", "v1", other_key)  # signed, by a key nobody trusts
    refused(await api.get("/v2/team-a/app/manifests/v1"), 403, "DENIED",
            f"not signed by a key project team-a trusts (trusted: ci-key sha256:{fingerprint[:12]}…); sign it "
            "with dockyard sign or cosign sign --key")
    assert key["name"] == "ci-key"
    signature_tag = cosign.signature_tag(image.digest)
    assert (await api.get(f"/v2/team-a/app/manifests/{signature_tag}")).status_code == 200  # never gated

    await registry.parts.signatures.sign("team-a/app", "v1", trusted_key)
    pulled = await api.get("/v2/team-a/app/manifests/v1")
    assert pulled.status_code == 200
    assert pulled.content == image.manifest
    assert "dockyard-policy-warning" not in pulled.headers

    # An index signed as a whole lets its children be pulled by digest.
    child = make_image()
    await push_image(api, "team-a/app", child)
    index = make_index([child])
    ok(await push_manifest(api, "team-a/app", "multi", index, "application/vnd.oci.image.index.v1+json"), 201)
    refused(await api.get(f"/v2/team-a/app/manifests/{child.digest}"), 403, "DENIED")
    await registry.parts.signatures.sign("team-a/app", "multi", trusted_key)
    assert (await api.get("/v2/team-a/app/manifests/multi")).status_code == 200
    assert (await api.get(f"/v2/team-a/app/manifests/{child.digest}")).status_code == 200


async def test_not_scanned_yet_refuses_or_warns_with_an_event(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    image = make_image()
    await push_image(api, "team-a/app", image, "v1")
    ok(await api.put(f"{P}/admission", json={"pull": {"scanned": "enforce"}}))
    refused(await api.get("/v2/team-a/app/manifests/v1"), 403, "DENIED", "not scanned yet; retry shortly")
    ok(await api.put(f"{P}/admission", json={"pull": {"scanned": "warn",
                                                     "vulnerabilities": {"severity": "high", "mode": "warn"}}}))
    for _ in range(2):
        pulled = await api.get("/v2/team-a/app/manifests/v1")
        assert pulled.status_code == 200
    assert pulled.headers["dockyard-policy-warning"] == (
        "not scanned yet; retry shortly | not scanned yet, so its vulnerabilities are unknown; retry shortly")
    await flush_pulls(registry.parts)
    (event,) = await audit(api, "policy.warned")  # two warned pulls, one row with a count
    assert (event["digest"], event["actor"], event["detail"]["stage"], event["detail"]["rules"],
            event["detail"]["count"]) == (image.digest, "admin", "pull", ["pull.scanned", "pull.vulnerabilities"], 2)


async def test_no_rules_no_cost_and_other_projects_untouched(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_project(api, "team-b")
    ok(await api.put(f"{P}/admission", json={"pull": {"scanned": "enforce"}}))
    image = make_image()
    await push_image(api, "team-b/app", image, "v1")
    pulled = await api.get("/v2/team-b/app/manifests/v1")
    assert pulled.status_code == 200
    assert "dockyard-policy-warning" not in pulled.headers
