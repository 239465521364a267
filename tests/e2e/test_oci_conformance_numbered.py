"""A Python port of the OCI distribution-spec conformance suite's numbered Ginkgo files, run against `dockyard serve`.

Source: github.com/opencontainers/distribution-spec, folder ``conformance/``: ``01_base_api_route_test.go`` …
``09_blob_delete_test.go``, ``04_content_management``, ``05_referrers.go``, ``pull_test.go``, ``push_test.go``, with
the ``setup.go`` data of their era. Each ``Specify`` is one pytest test, in file order, sharing state like the Go
closures did. The runner generation of the same suite is ported in ``test_oci_conformance_next.py``; the HTTP calls
are made as ``oci_suite_api.py`` describes.

Not ported (obsolete checks of older spec eras, which no current run of the suite makes): ``07_error_codes``'s
"DELETE of a tag should answer with an OCI error" (tag deletion was forbidden then; now it is a 202, which
``08_manifest_delete`` checks); ``04_content_management``'s push by digest of a manifest whose config blob only that
era's pull teardown had left behind, and its delete; and ``05_referrers.go`` of commit 3af85efc, whose data
references a blob before pushing it and which wanted ``OCI-Filters-Applied`` to carry the artifact type instead of
the word ``artifactType``. dockyard accepts a ``subject`` without ``mediaType`` (that era's data) all the same.

Authentication is reggie v0.6 (``auth.go`` ``retryRequestWithAuth``): nothing cached; on a 401 the challenge is
answered (``OCI_AUTH_SCOPE`` replacing its scope; the token answer's status is not checked) and the request is sent
once more. Set ``DOCKYARD_E2E_TARGET=distribution`` to run the same checks against CNCF distribution.
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.e2e.oci_suite_api import Credentials, failed, go_do, parse_challenge, registry_and_client, show
from tests.e2e.oci_suite_data import (
    MT_OCI_CONFIG,
    MT_OCI_IMAGE,
    MT_OCI_LAYER_GZ,
    MT_OCTET_STREAM,
    b64,
    digest_of,
    go_json_indent,
)

pytestmark = pytest.mark.e2e

# --------------------------------------------------------------------------------------------------------------------
# The numbered Ginkgo files (reggie client) and the setup.go data of their era
# --------------------------------------------------------------------------------------------------------------------


class Reggie:
    """bloodorangeio/reggie over resty: `<name>` is the namespace, query params are appended to the path's own,
    a Content-Length header set by hand is dropped by Go (the body's real length is sent)."""

    def __init__(self, client: httpx.Client, base: str, name: str, credentials: Credentials,
                 auth_scope: str = "") -> None:
        self.client = client
        self.base = base
        self.name = name
        self.credentials = credentials
        self.auth_scope = auth_scope  # OCI_AUTH_SCOPE: reggie.WithAuthScope

    def do(self, method: str, path: str, *, headers: Sequence[tuple[str, str]] = (),
           params: Sequence[tuple[str, str]] = (), body: bytes | None = None) -> httpx.Response:
        url = self.base + path.replace("<name>", self.name)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(sorted(params))
        content = body if body is not None else (b"" if method in ("POST", "PUT", "PATCH") else None)
        sent = [("User-Agent", "distribution-spec-conformance-tests")]
        sent += [(k, v) for k, v in headers if k.lower() != "content-length"]
        resp = go_do(self.client, method, url, sent, content)
        if resp.status_code == 401:  # client.Do: IsUnauthorized() → retryRequestWithAuth
            resp = self.retry_with_auth(method, url, sent, content, resp)
        return resp

    def retry_with_auth(self, method: str, url: str, sent: list[tuple[str, str]], content: bytes | None,
                        resp: httpx.Response) -> httpx.Response:
        """reggie auth.go retryRequestWithAuth (v0.6): no status check on the token answer, nothing cached."""
        if not resp.headers.get("WWW-Authenticate"):
            return resp
        scheme, params = parse_challenge(resp)
        if scheme.lower() == "bearer":
            query = {"service": params.get("service", "")}
            if self.auth_scope:
                query["scope"] = self.auth_scope
            elif params.get("scope"):
                query["scope"] = params["scope"]
            try:
                token_resp = self.client.get(params.get("realm", ""), params=query, headers={
                    "Accept": "application/json", "User-Agent": "distribution-spec-conformance-tests"},
                    auth=(self.credentials.user, self.credentials.password))
                info = json.loads(token_resp.content)
            except (httpx.HTTPError, ValueError) as e:
                return failed(resp, f"token request failed: {e!r}")
            token = (info.get("token") or info.get("access_token") or "") if isinstance(info, dict) else ""
            auth = f"Bearer {token}"
        elif scheme.lower() == "basic":
            auth = self.credentials.basic()
        else:
            return failed(resp, "something went wrong with authorization")
        return go_do(self.client, method, url, [*sent, ("Authorization", auth)], content)


def relative_location(resp: httpx.Response) -> str:
    """reggie Response.GetRelativeLocation: the Location's path and query."""
    parts = urlsplit(str(resp.headers.get("Location", "")))
    return str(parts.path) + (f"?{parts.query}" if parts.query else "")


def error_codes_of(resp: httpx.Response) -> list[str]:
    """reggie Response.Errors: json.Unmarshal of the body into {"errors": [...]}; raises when that fails."""
    parsed = json.loads(resp.text)
    return [str(e.get("code")) for e in (parsed.get("errors") or [])]


def tags_of(resp: httpx.Response) -> list[str]:
    parsed = json.loads(resp.text)
    return list(parsed.get("tags") or [])


OCTET = ("Content-Type", MT_OCTET_STREAM)
OCI_MANIFEST_CT = ("Content-Type", MT_OCI_IMAGE)
ERROR_CODES = ["BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
               "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED", "NAME_INVALID", "NAME_UNKNOWN",
               "SIZE_INVALID", "TAG_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED"]

# setup.go of the numbered era (configDigest / blobDigest are the same value)
CONFIG_CONTENT = b"{}\n"
CONFIG_DIGEST = digest_of(CONFIG_CONTENT)
MANIFEST_CONTENT = (
    f'{{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "config":  {{ "digest": "{CONFIG_DIGEST}", '
    f'"mediaType": "application/vnd.oci.image.config.v1+json", "size": {len(CONFIG_CONTENT)} }}, "layers": [], '
    '"schemaVersion": 2 }').encode()
MANIFEST_DIGEST = digest_of(MANIFEST_CONTENT)
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
INVALID_MANIFEST_CONTENT = b"blablabla"
BLOB_A = b"NBA Jam on my NBA toast"
BLOB_A_DIGEST = digest_of(BLOB_A)
BLOB_B = b"Hello, how are you today?"
BLOB_B_DIGEST = digest_of(BLOB_B)
BLOB_B_CHUNK1, BLOB_B_CHUNK2 = BLOB_B[:3], BLOB_B[3:]
BLOB_B_CHUNK1_RANGE = f"0-{len(BLOB_B_CHUNK1) - 1}"
BLOB_B_CHUNK2_RANGE = f"{len(BLOB_B_CHUNK1)}-{len(BLOB_B) - 1}"
DUMMY_DIGEST = digest_of(b"hello world")
TAG_NAME_ENV = "test0"  # pull_test.go reads OCI_TAG_NAME (its tagName() never uses the listing); set to a pushed tag

# setup.go layerBase64String: a tar.gz of test.txt
LAYER_BLOB = base64.b64decode(
    "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0"
    "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD"
    "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA")
LAYER_DIGEST = digest_of(LAYER_BLOB)


def random_string(n: int) -> str:
    return "".join(random.SystemRandom().choice(string.ascii_letters) for _ in range(n))


def era_config() -> bytes:
    """setup.go configs[i]: image{author random, amd64, linux, rootfs}, MarshalIndent with tabs."""
    return go_json_indent({"author": random_string(16), "architecture": "amd64", "os": "linux",
                           "rootfs": {"type": "layers", "diff_ids": []}})


def v1_desc(media_type: str, dig: str, size: int, data: bytes | None = None,
            unspecified: bytes | None = None) -> dict[str, Any]:
    """image.go at 3af85efc: mediaType omitempty, data and newUnspecifiedField always present (null when nil)."""
    out: dict[str, Any] = {"mediaType": media_type} if media_type else {}
    out.update(digest=dig, size=size, data=b64(data) if data is not None else None,
               newUnspecifiedField=b64(unspecified) if unspecified is not None else None)
    return out


def v1_manifest(config: dict[str, Any], layers: list[dict[str, Any]], *, artifact_type: str = "",
                subject: dict[str, Any] | None = None) -> bytes:
    """image.go at 3af85efc Manifest: no mediaType field at all."""
    m: dict[str, Any] = {"schemaVersion": 2}
    if artifact_type:
        m["artifactType"] = artifact_type
    m.update(config=config, layers=layers)
    if subject is not None:
        m["subject"] = subject
    return go_json_indent(m)


def v2_desc(media_type: str, dig: str, size: int, data: bytes | None = None,
            unspecified: bytes | None = None) -> dict[str, Any]:
    """image.go at 3ec8a56d (ginkgo/v2 era): data omitempty, newUnspecifiedField always present."""
    out: dict[str, Any] = {"mediaType": media_type, "digest": dig, "size": size}
    if data:
        out["data"] = b64(data)
    out["newUnspecifiedField"] = b64(unspecified) if unspecified is not None else None
    return out


@dataclass
class Blob:
    content: bytes
    digest: str


def era_configs_manifests(count: int, v2: bool) -> tuple[list[Blob], list[Blob]]:
    """setup.go configs[i] / manifests[i]: one config per workflow, a manifest of it over the tar.gz layer."""
    configs: list[Blob] = []
    manifests: list[Blob] = []
    for _ in range(count):
        config = era_config()
        configs.append(Blob(config, digest_of(config)))
        if v2:
            body = go_json_indent({
                "schemaVersion": 2, "mediaType": MT_OCI_IMAGE,
                "config": v2_desc(MT_OCI_CONFIG, digest_of(config), len(config), config, b"hello world"),
                "layers": [v2_desc(MT_OCI_LAYER_GZ, LAYER_DIGEST, len(LAYER_BLOB))]})
        else:
            body = v1_manifest(v1_desc(MT_OCI_CONFIG, digest_of(config), len(config), config, b"hello world"),
                               [v1_desc(MT_OCI_LAYER_GZ, LAYER_DIGEST, len(LAYER_BLOB))])
        manifests.append(Blob(body, digest_of(body)))
    return configs, manifests


@pytest.fixture(scope="module")
def reggie(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Reggie]]:
    """`reggie(namespace)` → a reggie-like client for that namespace."""

    credentials = Credentials.from_env()
    auth_scope = os.environ.get("OCI_AUTH_SCOPE", "")
    with registry_and_client(tmp_path_factory.mktemp("oci-conformance-numbered") / "data") as (registry, go_client):

        def make(name: str) -> Reggie:
            return Reggie(go_client, registry.url, name, credentials, auth_scope)

        yield make


# --- the Specify bodies, shared by the sequences below ------------------------------------------------------------


def spec_01_base_route(rg: Reggie) -> None:
    resp = rg.do("GET", "/v2/")
    assert resp.status_code == 200, show(resp)


def spec_02_patch_streamed(rg: Reggie, state: dict[str, Any]) -> None:
    resp = rg.do("POST", "/v2/<name>/blobs/uploads/")
    assert resp.headers.get("Location"), show(resp)
    resp = rg.do("PATCH", relative_location(resp), headers=[OCTET], body=BLOB_A)
    assert resp.status_code == 202, show(resp)
    state["last"] = resp


def spec_02_put_streamed(rg: Reggie, state: dict[str, Any]) -> None:
    assert "last" in state, "lastResponse is nil (the PATCH spec failed)"
    resp = rg.do("PUT", relative_location(state["last"]), params=[("digest", BLOB_A_DIGEST)],
                 headers=[OCTET, ("Content-Length", str(len(BLOB_A)))])
    assert resp.status_code == 201, show(resp)
    assert resp.headers.get("Location"), show(resp)


def spec_03_get_nonexistent_blob(rg: Reggie) -> None:
    resp = rg.do("GET", f"/v2/<name>/blobs/{DUMMY_DIGEST}")
    assert resp.status_code == 404, show(resp)


def spec_03_post_with_digest(rg: Reggie) -> None:
    resp = rg.do("POST", "/v2/<name>/blobs/uploads/", params=[("digest", CONFIG_DIGEST)],
                 headers=[("Content-Length", str(len(CONFIG_CONTENT))), OCTET], body=CONFIG_CONTENT)
    assert resp.headers.get("Location"), show(resp)
    assert resp.status_code == 201, show(resp)


def spec_03_get_blob(rg: Reggie) -> None:
    resp = rg.do("GET", f"/v2/<name>/blobs/{CONFIG_DIGEST}")
    assert resp.status_code == 200, show(resp)


def spec_03_post_session(rg: Reggie, state: dict[str, Any]) -> None:
    resp = rg.do("POST", "/v2/<name>/blobs/uploads/")
    assert resp.status_code == 202, show(resp)
    state["last"] = resp


def spec_03_put_monolithic(rg: Reggie, state: dict[str, Any]) -> None:
    assert "last" in state, "lastResponse is nil (the POST spec failed)"
    resp = rg.do("PUT", relative_location(state["last"]), params=[("digest", CONFIG_DIGEST)],
                 headers=[("Content-Length", str(len(CONFIG_CONTENT))), OCTET], body=CONFIG_CONTENT)
    assert resp.headers.get("Location"), show(resp)
    assert resp.status_code == 201, show(resp)


def spec_04_out_of_order(rg: Reggie) -> None:
    resp = rg.do("POST", "/v2/<name>/blobs/uploads/", headers=[("Content-Length", "0")])
    assert resp.headers.get("Location"), show(resp)
    resp = rg.do("PATCH", relative_location(resp), headers=[OCTET, ("Content-Range", BLOB_B_CHUNK2_RANGE)],
                 body=BLOB_B_CHUNK2)
    assert resp.status_code == 416, show(resp)


def spec_04_first_chunk(rg: Reggie, state: dict[str, Any]) -> None:
    resp = rg.do("POST", "/v2/<name>/blobs/uploads/", headers=[("Content-Length", "0")])
    assert resp.headers.get("Location"), show(resp)
    resp = rg.do("PATCH", relative_location(resp), headers=[OCTET, ("Content-Range", BLOB_B_CHUNK1_RANGE)],
                 body=BLOB_B_CHUNK1)
    assert resp.status_code == 202, show(resp)
    state["last"] = resp


def spec_04_final_chunk(rg: Reggie, state: dict[str, Any]) -> None:
    assert "last" in state, "lastResponse is nil (the first-chunk spec failed)"
    resp = rg.do("PUT", relative_location(state["last"]), params=[("digest", BLOB_B_DIGEST)],
                 headers=[("Content-Range", BLOB_B_CHUNK2_RANGE), OCTET], body=BLOB_B_CHUNK2)
    assert resp.headers.get("Location"), show(resp)
    assert resp.status_code == 201, show(resp)


def spec_05_get_nonexistent_manifest(rg: Reggie) -> None:
    resp = rg.do("GET", f"/v2/<name>/manifests/{NONEXISTENT_MANIFEST}")
    assert resp.status_code == 404, show(resp)


def spec_05_put_manifests(rg: Reggie, state: dict[str, Any]) -> None:
    for i in range(4):
        tag = f"test{i}"
        if i == 0:
            state["first_tag"] = tag
        resp = rg.do("PUT", f"/v2/<name>/manifests/{tag}", headers=[OCI_MANIFEST_CT], body=MANIFEST_CONTENT)
        assert resp.headers.get("Location"), show(resp)
        assert resp.status_code == 201, show(resp)


def spec_05_get_manifest_digest(rg: Reggie) -> None:
    resp = rg.do("GET", f"/v2/<name>/manifests/{MANIFEST_DIGEST}", headers=[("Accept", MT_OCI_IMAGE)])
    assert resp.status_code == 200, show(resp)


def spec_06_list_tags(rg: Reggie, state: dict[str, Any]) -> None:
    resp = rg.do("GET", "/v2/<name>/tags/list")
    assert resp.status_code == 200, show(resp)
    state["last"] = resp
    state["num_tags"] = len(tags_of(resp))


def spec_06_get_manifest_tag(rg: Reggie, state: dict[str, Any]) -> None:
    tags = tags_of(state["last"])
    assert tags, show(state["last"])
    resp = rg.do("GET", f"/v2/<name>/manifests/{tags[0]}", headers=[("Accept", MT_OCI_IMAGE)])
    assert resp.status_code == 200, show(resp)


def spec_06_limit_n(rg: Reggie, state: dict[str, Any]) -> None:
    num = state["num_tags"] // 2
    resp = rg.do("GET", "/v2/<name>/tags/list", params=[("n", str(num))])
    assert resp.status_code == 200, show(resp)
    tags = tags_of(resp)
    assert len(tags) == num, show(resp)
    state["last_tag_list"] = tags


def spec_06_last(rg: Reggie, state: dict[str, Any]) -> None:
    num = state["num_tags"] // 2
    last_tag = state["last_tag_list"][num - 1]
    resp = rg.do("GET", "/v2/<name>/tags/list", params=[("n", str(num)), ("last", last_tag)])
    assert resp.status_code == 200, show(resp)
    assert "test3" in tags_of(resp), show(resp)


def spec_tags_list_reflects_deletion(rg: Reggie, state: dict[str, Any]) -> None:
    resp = rg.do("GET", "/v2/<name>/tags/list")
    assert resp.status_code == 200, show(resp)
    assert len(tags_of(resp)) < state["num_tags"], show(resp)


def spec_unsupported_400(resp: httpx.Response) -> None:
    if resp.status_code == 400:
        codes = error_codes_of(resp)
        assert codes, show(resp)
        assert codes[0] == "UNSUPPORTED", show(resp)


def spec_blob_delete_202(rg: Reggie) -> None:
    resp = rg.do("DELETE", f"/v2/<name>/blobs/{CONFIG_DIGEST}")
    assert resp.status_code == 202, show(resp)


def spec_blob_get_404(rg: Reggie) -> None:
    resp = rg.do("GET", f"/v2/<name>/blobs/{CONFIG_DIGEST}")
    assert resp.status_code == 404, show(resp)


def setup_numbered_prerequisites(rg: Reggie, state: dict[str, Any]) -> None:
    """What 03 (config blob), 05 (tags test0..test3) and 06 (numTags) leave in the namespace for 07/08/09."""
    spec_03_post_with_digest(rg)
    spec_05_put_manifests(rg, state)
    spec_06_list_tags(rg, state)


# --- 01 … 07_error_codes in one namespace, in the order of the era's 00_conformance_suite_test.go ---------------


class TestNumberedSuite:
    """01_base_api_route, 02_blob_upload_streamed, 03_blob_upload_monolithic, 04_blob_upload_chunked,
    05_manifest_upload, 06_tags_list, 07_error_codes (setup.go of that era: blobA/blobB/configContent "{}\\n")."""

    ns = "legacy/numbered"
    state: dict[str, Any] = {}

    def test_01_get_base_route_200(self, reggie: Any) -> None:
        """01_base_api_route_test.go: GET request to base API route must return 200 response."""
        spec_01_base_route(reggie(self.ns))

    def test_02_patch_blob_in_body_202(self, reggie: Any) -> None:
        """02_blob_upload_streamed_test.go: PATCH request with blob in body should yield 202 response."""
        spec_02_patch_streamed(reggie(self.ns), self.state)

    def test_02_put_session_with_digest_201(self, reggie: Any) -> None:
        """02_blob_upload_streamed_test.go: PUT request to session URL with digest should yield 201 response."""
        spec_02_put_streamed(reggie(self.ns), self.state)

    def test_03_get_nonexistent_blob_404(self, reggie: Any) -> None:
        """03_blob_upload_monolithic_test.go: GET nonexistent blob should result in 404 response."""
        spec_03_get_nonexistent_blob(reggie(self.ns))

    def test_03_post_digest_and_blob_201(self, reggie: Any) -> None:
        """03_blob_upload_monolithic_test.go: POST request with digest and blob should yield a 201."""
        spec_03_post_with_digest(reggie(self.ns))

    def test_03_get_blob_from_prior_request_200(self, reggie: Any) -> None:
        """03_blob_upload_monolithic_test.go: GET request to blob URL from prior request should yield 200."""
        spec_03_get_blob(reggie(self.ns))

    def test_03_post_yields_session(self, reggie: Any) -> None:
        """03_blob_upload_monolithic_test.go: POST request should yield a session ID."""
        spec_03_post_session(reggie(self.ns), self.state)

    def test_03_put_upload_201(self, reggie: Any) -> None:
        """03_blob_upload_monolithic_test.go: PUT upload of a blob should yield a 201 Response."""
        spec_03_put_monolithic(reggie(self.ns), self.state)

    def test_03_get_existing_blob_200(self, reggie: Any) -> None:
        """03_blob_upload_monolithic_test.go: GET request to existing blob should yield 200 response."""
        spec_03_get_blob(reggie(self.ns))

    def test_04_out_of_order_416(self, reggie: Any) -> None:
        """04_blob_upload_chunked_test.go: Out-of-order blob upload should return 416."""
        spec_04_out_of_order(reggie(self.ns))

    def test_04_first_chunk_202(self, reggie: Any) -> None:
        """04_blob_upload_chunked_test.go: PATCH request with first chunk should return 202."""
        spec_04_first_chunk(reggie(self.ns), self.state)

    def test_04_final_chunk_put_201(self, reggie: Any) -> None:
        """04_blob_upload_chunked_test.go: PUT request with final chunk should return 201."""
        spec_04_final_chunk(reggie(self.ns), self.state)

    def test_05_get_nonexistent_manifest_404(self, reggie: Any) -> None:
        """05_manifest_upload_test.go: GET nonexistent manifest should return 404."""
        spec_05_get_nonexistent_manifest(reggie(self.ns))

    def test_05_put_manifest_upload(self, reggie: Any) -> None:
        """05_manifest_upload_test.go: PUT should accept a manifest upload (tags test0..test3)."""
        spec_05_put_manifests(reggie(self.ns), self.state)

    def test_05_get_manifest_by_digest_200(self, reggie: Any) -> None:
        """05_manifest_upload_test.go: GET request to manifest URL (digest) should yield 200 response."""
        spec_05_get_manifest_digest(reggie(self.ns))

    def test_06_list_tags_200(self, reggie: Any) -> None:
        """06_tags_list_test.go: GET request to list tags should yield 200 response."""
        spec_06_list_tags(reggie(self.ns), self.state)

    def test_06_get_manifest_by_tag_200(self, reggie: Any) -> None:
        """06_tags_list_test.go: GET request to manifest URL (tag) should yield 200 response."""
        spec_06_get_manifest_tag(reggie(self.ns), self.state)

    def test_06_n_limits_tags(self, reggie: Any) -> None:
        """06_tags_list_test.go: GET number of tags should be limitable by `n` query parameter."""
        spec_06_limit_n(reggie(self.ns), self.state)

    def test_06_last_sets_start(self, reggie: Any) -> None:
        """06_tags_list_test.go: GET start of tag is set by `last` query parameter."""
        spec_06_last(reggie(self.ns), self.state)

    def test_07_400_body_is_oci_error(self, reggie: Any) -> None:
        """07_error_codes_test.go: 400 response body should contain OCI-conforming JSON message
        (PUT manifests/sha256:totallywrong with body "blablabla")."""
        resp = reggie(self.ns).do("PUT", "/v2/<name>/manifests/sha256:totallywrong", headers=[OCI_MANIFEST_CT],
                                  body=INVALID_MANIFEST_CONTENT)
        assert resp.status_code == 400, show(resp)
        codes = error_codes_of(resp)
        assert codes, show(resp)
        assert codes[0] in ERROR_CODES, show(resp)


class TestNumberedManifestDelete:
    """08_manifest_delete_test.go (newest: 202, 400 or 405) and 09_blob_delete_test.go, after what 03/05/06 leave."""

    ns = "legacy/numbered-delete"
    state: dict[str, Any] = {}

    def test_prerequisites_03_05_06(self, reggie: Any) -> None:
        """03 POST config blob, 05 PUT manifests test0..test3, 06 GET tags list (numTags)."""
        setup_numbered_prerequisites(reggie(self.ns), self.state)

    def test_08_delete_tag_202_400_405(self, reggie: Any) -> None:
        """08_manifest_delete_test.go: DELETE request to manifest should return 202, 400, or 405."""
        resp = reggie(self.ns).do("DELETE", f"/v2/<name>/manifests/{self.state['first_tag']}")
        assert resp.status_code in (400, 405, 202), show(resp)
        spec_unsupported_400(resp)

    def test_08_delete_digest(self, reggie: Any) -> None:
        """08_manifest_delete_test.go: DELETE request to manifest (digest) should yield 202 response unless delete
        disallowed or already deleted."""
        resp = reggie(self.ns).do("DELETE", f"/v2/<name>/manifests/{MANIFEST_DIGEST}")
        assert resp.status_code in (400, 405, 202, 404), show(resp)
        spec_unsupported_400(resp)

    def test_08_get_deleted_manifest(self, reggie: Any) -> None:
        """08_manifest_delete_test.go: GET request to deleted manifest URL should yield 404 response, unless delete
        is disallowed."""
        resp = reggie(self.ns).do("GET", f"/v2/<name>/manifests/{MANIFEST_DIGEST}")
        assert resp.status_code in (404, 200), show(resp)

    def test_08_tags_list_reflects_deletion(self, reggie: Any) -> None:
        """08_manifest_delete_test.go: GET request to tags list should reflect manifest deletion."""
        spec_tags_list_reflects_deletion(reggie(self.ns), self.state)

    def test_09_blob_delete_202(self, reggie: Any) -> None:
        """09_blob_delete_test.go: DELETE request to blob URL should yield 202 response."""
        spec_blob_delete_202(reggie(self.ns))

    def test_09_deleted_blob_404(self, reggie: Any) -> None:
        """09_blob_delete_test.go: GET request to deleted blob URL should yield 404 response."""
        spec_blob_get_404(reggie(self.ns))


class TestNumberedManifestDeleteOlder:
    """07_manifest_delete_test.go and 08_blob_delete_test.go (the earlier numbering), after what 03/05/06 leave."""

    ns = "legacy/numbered-delete-older"
    state: dict[str, Any] = {}

    def test_prerequisites_03_05_06(self, reggie: Any) -> None:
        """03 POST config blob, 05 PUT manifests test0..test3, 06 GET tags list (numTags)."""
        setup_numbered_prerequisites(reggie(self.ns), self.state)

    def test_07_delete_manifest_202(self, reggie: Any) -> None:
        """07_manifest_delete_test.go: DELETE request to manifest URL should yield 202 response."""
        resp = reggie(self.ns).do("DELETE", f"/v2/<name>/manifests/{MANIFEST_DIGEST}")
        assert resp.status_code == 202, show(resp)

    def test_07_get_deleted_manifest_404(self, reggie: Any) -> None:
        """07_manifest_delete_test.go: GET request to deleted manifest URL should yield 404 response."""
        resp = reggie(self.ns).do("GET", f"/v2/<name>/manifests/{MANIFEST_DIGEST}")
        assert resp.status_code == 404, show(resp)

    def test_07_tags_list_reflects_deletion(self, reggie: Any) -> None:
        """07_manifest_delete_test.go: GET request to tags list should reflect manifest deletion."""
        spec_tags_list_reflects_deletion(reggie(self.ns), self.state)

    def test_08_blob_delete_202(self, reggie: Any) -> None:
        """08_blob_delete_test.go: DELETE request to blob URL should yield 202 response."""
        spec_blob_delete_202(reggie(self.ns))

    def test_08_deleted_blob_404(self, reggie: Any) -> None:
        """08_blob_delete_test.go: GET request to deleted blob URL should yield 404 response."""
        spec_blob_get_404(reggie(self.ns))


class TestPushThenPull:
    """push_test.go (pushTest) then pull_test.go (pullTest). pullTest expects existing content named by
    OCI_BLOB_DIGEST / OCI_MANIFEST_DIGEST / OCI_TAG_NAME; pushTest leaves exactly that, with OCI_TAG_NAME=test0."""

    ns = "legacy/push-pull"
    state: dict[str, Any] = {}

    def test_push_streamed_patch_202(self, reggie: Any) -> None:
        """push_test.go Blob Upload Streamed: PATCH request with blob in body should yield 202 response."""
        spec_02_patch_streamed(reggie(self.ns), self.state)

    def test_push_streamed_put_201(self, reggie: Any) -> None:
        """push_test.go Blob Upload Streamed: PUT request to session URL with digest should yield 201 response."""
        spec_02_put_streamed(reggie(self.ns), self.state)

    def test_push_monolithic_get_nonexistent_404(self, reggie: Any) -> None:
        """push_test.go Blob Upload Monolithic: GET nonexistent blob should result in 404 response."""
        spec_03_get_nonexistent_blob(reggie(self.ns))

    def test_push_monolithic_post_digest_201(self, reggie: Any) -> None:
        """push_test.go Blob Upload Monolithic: POST request with digest and blob should yield a 201."""
        spec_03_post_with_digest(reggie(self.ns))

    def test_push_monolithic_get_prior_200(self, reggie: Any) -> None:
        """push_test.go Blob Upload Monolithic: GET request to blob URL from prior request should yield 200."""
        spec_03_get_blob(reggie(self.ns))

    def test_push_monolithic_post_session(self, reggie: Any) -> None:
        """push_test.go Blob Upload Monolithic: POST request should yield a session ID."""
        spec_03_post_session(reggie(self.ns), self.state)

    def test_push_monolithic_put_201(self, reggie: Any) -> None:
        """push_test.go Blob Upload Monolithic: PUT upload of a blob should yield a 201 Response."""
        spec_03_put_monolithic(reggie(self.ns), self.state)

    def test_push_monolithic_get_existing_200(self, reggie: Any) -> None:
        """push_test.go Blob Upload Monolithic: GET request to existing blob should yield 200 response."""
        spec_03_get_blob(reggie(self.ns))

    def test_push_chunked_out_of_order_416(self, reggie: Any) -> None:
        """push_test.go Blob Upload Chunked: Out-of-order blob upload should return 416."""
        spec_04_out_of_order(reggie(self.ns))

    def test_push_chunked_first_chunk_202(self, reggie: Any) -> None:
        """push_test.go Blob Upload Chunked: PATCH request with first chunk should return 202."""
        spec_04_first_chunk(reggie(self.ns), self.state)

    def test_push_chunked_final_chunk_201(self, reggie: Any) -> None:
        """push_test.go Blob Upload Chunked: PUT request with final chunk should return 201."""
        spec_04_final_chunk(reggie(self.ns), self.state)

    def test_push_manifest_get_nonexistent_404(self, reggie: Any) -> None:
        """push_test.go Manifest Upload: GET nonexistent manifest should return 404."""
        spec_05_get_nonexistent_manifest(reggie(self.ns))

    def test_push_manifest_put(self, reggie: Any) -> None:
        """push_test.go Manifest Upload: PUT should accept a manifest upload."""
        spec_05_put_manifests(reggie(self.ns), self.state)

    def test_push_manifest_get_digest_200(self, reggie: Any) -> None:
        """push_test.go Manifest Upload: GET request to manifest URL (digest) should yield 200 response."""
        spec_05_get_manifest_digest(reggie(self.ns))

    def test_pull_get_nonexistent_blob_404(self, reggie: Any) -> None:
        """pull_test.go: GET nonexistent blob should result in 404 response."""
        spec_03_get_nonexistent_blob(reggie(self.ns))

    def test_pull_patch_blob_202(self, reggie: Any) -> None:
        """pull_test.go: PATCH request with blob in body should yield 202 response."""
        spec_02_patch_streamed(reggie(self.ns), self.state)

    def test_pull_put_session_201(self, reggie: Any) -> None:
        """pull_test.go: PUT request to session URL with digest should yield 201 response."""
        spec_02_put_streamed(reggie(self.ns), self.state)

    def test_pull_get_blob_200(self, reggie: Any) -> None:
        """pull_test.go: GET request to blob URL from prior request should yield 200 (blobDigest)."""
        spec_03_get_blob(reggie(self.ns))

    def test_pull_get_nonexistent_manifest_404(self, reggie: Any) -> None:
        """pull_test.go: GET nonexistent manifest should return 404."""
        spec_05_get_nonexistent_manifest(reggie(self.ns))

    def test_pull_get_manifest_digest_200(self, reggie: Any) -> None:
        """pull_test.go: GET request to manifest URL (digest) should yield 200 response."""
        spec_05_get_manifest_digest(reggie(self.ns))

    def test_pull_list_tags_200(self, reggie: Any) -> None:
        """pull_test.go: GET request to list tags should yield 200 response."""
        spec_06_list_tags(reggie(self.ns), self.state)

    def test_pull_get_manifest_tag_200(self, reggie: Any) -> None:
        """pull_test.go: GET request to manifest URL (tag) should yield 200 response (tag from OCI_TAG_NAME)."""
        resp = reggie(self.ns).do("GET", f"/v2/<name>/manifests/{TAG_NAME_ENV}", headers=[("Accept", MT_OCI_IMAGE)])
        assert resp.status_code == 200, show(resp)


class TestContentManagement:
    """04_content_management_test.go, newest stored version (ginkgo/v2, strict 202s), setup.go data of that era:
    configs[i] / manifests[i] with data and newUnspecifiedField, the tar.gz layer."""

    ns = "legacy/content-management"
    state: dict[str, Any] = {}

    @classmethod
    def data(cls) -> tuple[list[Blob], list[Blob]]:
        if "data" not in cls.state:
            cls.state["data"] = era_configs_manifests(4, v2=True)
        configs, manifests = cls.state["data"]
        return configs, manifests

    @staticmethod
    def _push_blob(rg: Reggie, content: bytes, dig: str) -> None:
        resp = rg.do("POST", "/v2/<name>/blobs/uploads/")
        resp = rg.do("PUT", relative_location(resp), params=[("digest", dig)],
                     headers=[("Content-Length", str(len(content))), OCTET], body=content)
        assert 200 <= resp.status_code < 300, show(resp)

    def test_setup_config_blob(self, reggie: Any) -> None:
        """04_content_management_test.go Setup: Populate registry with test config blob (configs[3])."""
        configs, _ = self.data()
        self._push_blob(reggie(self.ns), configs[3].content, configs[3].digest)

    def test_setup_layer(self, reggie: Any) -> None:
        """04_content_management_test.go Setup: Populate registry with test layer."""
        self._push_blob(reggie(self.ns), LAYER_BLOB, LAYER_DIGEST)

    def test_setup_tag(self, reggie: Any) -> None:
        """04_content_management_test.go Setup: Populate registry with test tag (tagtest0 → manifests[3])."""
        _, manifests = self.data()
        self.state["tag"] = "tagtest0"
        resp = reggie(self.ns).do("PUT", "/v2/<name>/manifests/tagtest0", headers=[OCI_MANIFEST_CT],
                                  body=manifests[3].content)
        assert 200 <= resp.status_code < 300, show(resp)

    def test_setup_count_tags(self, reggie: Any) -> None:
        """04_content_management_test.go Setup: Check how many tags there are before anything gets deleted."""
        resp = reggie(self.ns).do("GET", "/v2/<name>/tags/list")
        assert resp.status_code == 200, show(resp)
        self.state["num_tags"] = len(tags_of(resp))

    def test_delete_tag_202(self, reggie: Any) -> None:
        """04_content_management_test.go Manifest delete: DELETE request to manifest tag should return 202."""
        resp = reggie(self.ns).do("DELETE", f"/v2/<name>/manifests/{self.state.get('tag', '')}")
        assert resp.status_code == 202, show(resp)

    def test_tags_list_reflects_deletion(self, reggie: Any) -> None:
        """04_content_management_test.go Manifest delete: GET request to tags list should reflect manifest
        deletion (200 with numTags-1 tags, or 404 when that is 0)."""
        resp = reggie(self.ns).do("GET", "/v2/<name>/tags/list")
        assert resp.status_code in (404, 200), show(resp)
        expect_tags = self.state["num_tags"] - 1
        if resp.status_code == 200:
            assert len(tags_of(resp)) == expect_tags, show(resp)
        else:
            assert expect_tags == 0, show(resp)

    def test_delete_config_blob_202(self, reggie: Any) -> None:
        """04_content_management_test.go Blob delete: DELETE request to config blob URL should yield 202."""
        configs, _ = self.data()
        resp = reggie(self.ns).do("DELETE", f"/v2/<name>/blobs/{configs[3].digest}")
        self.state["blob_delete_allowed"] = resp.status_code == 202
        assert resp.status_code == 202, show(resp)

    def test_delete_layer_blob_202(self, reggie: Any) -> None:
        """04_content_management_test.go Blob delete: DELETE request to layer blob URL should yield 202."""
        resp = reggie(self.ns).do("DELETE", f"/v2/<name>/blobs/{LAYER_DIGEST}")
        if resp.status_code != 202:
            self.state["blob_delete_allowed"] = False
        assert resp.status_code == 202, show(resp)

    def test_deleted_blob_404(self, reggie: Any) -> None:
        """04_content_management_test.go Blob delete: GET request to deleted blob URL should yield 404 response."""
        if not self.state.get("blob_delete_allowed", True):
            pytest.skip("RunOnlyIf(blobDeleteAllowed): a blob delete was refused")
        configs, _ = self.data()
        resp = reggie(self.ns).do("GET", f"/v2/<name>/blobs/{configs[3].digest}")
        assert resp.status_code == 404, show(resp)
