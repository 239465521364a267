"""The classic OCI distribution-spec conformance suite (Ginkgo), ported check for check to pytest.

Source: github.com/opencontainers/distribution-spec, folder ``conformance/``, at the versions the
code index lists for these files:

- ``setup.go`` @ b5f09eb (test data, env vars), ``image.go`` @ 3ec8a56 (JSON shapes of the data)
- ``00_conformance_suite_test.go`` @ 81bb239 (order: pull, push, content discovery, management)
- ``01_pull_test.go`` @ 47008ca, ``02_push_test.go`` @ 11b8e3f, ``03_discovery_test.go`` @ b5f09eb,
  ``04_management_test.go`` @ 3c7a4ac

Each Go ``g.Specify`` is one test here, in the suite's order, sharing state the way the Go closures
do (``lastResponse``, ``prevResponse``, ``tag``, ``tagList`` ...), so a failure shows up on the
same spec it would in the Go run. The requests are built the way the Go client builds them:
reggie v0.6 (``<name>``/``<reference>``/``<digest>`` substitution, ``GetRelativeLocation``) on
resty v2 (query parameters appended to the Location's own query, ``Accept`` copied from a JSON
``Content-Type``, no body on GET/HEAD) on net/http (a caller's ``Content-Length`` header is never
sent: the body's real length is, ``0`` for a PUT/POST/PATCH without one).

Environment, as ``setup.go`` reads it, with the defaults of an ordinary full run:

- ``OCI_TEST_PULL`` / ``_PUSH`` / ``_CONTENT_DISCOVERY`` / ``_CONTENT_MANAGEMENT``: all on unless set
  to a false value (the Go binary runs none unless set to true; everyone runs all four).
- ``OCI_NAMESPACE`` (default ``conformance/repo``), ``OCI_CROSSMOUNT_NAMESPACE`` (default
  ``conformance-<uuid4>``, as in Go).
- ``OCI_DELETE_MANIFEST_BEFORE_BLOBS``: default true, as in Go; decides the teardown order.
- ``OCI_AUTOMATIC_CROSSMOUNT``: unset in Go skips both "without from" specs. dockyard claims
  automatic cross-mount, so against dockyard the default here is ``1``; against the reference
  registry (``DOCKYARD_E2E_TARGET=distribution``) it stays unset. Set it to override.
- ``OCI_TAG_NAME`` + ``OCI_MANIFEST_DIGEST`` + ``OCI_BLOB_DIGEST`` and ``OCI_TAG_LIST`` switch the
  pull and discovery setups off, as in Go (only useful against a pre-filled registry).
- ``OCI_DEBUG`` prints every exchange (Go logs them). ``OCI_HIDE_SKIPPED_WORKFLOWS`` and
  ``OCI_REPORT_DIR`` only shape Go's HTML/JUnit reports, and ``OCI_SKIP_EMPTY_LAYER_PUSH_TEST`` is
  declared in setup.go but read by none of these files: none of them changes a request or an
  expectation, so they are not read here.
- ``OCI_SEED``: the seed for the two random blobs (Go: the Ginkgo random seed).
- ``OCI_USERNAME`` / ``OCI_PASSWORD``: the credentials reggie answers a 401 with (setup.go passes
  them to ``reggie.WithUsernamePassword``). dockyard authorizes every request, so against it they
  default to its system admin (``tests.support.server.ADMIN_AUTH``), the way the independent suite
  is run; against the reference registry they stay empty. ``OCI_AUTH_SCOPE`` replaces the scope of
  the challenge in token requests (``reggie.WithAuthScope``).

Authentication is reggie v0.6's (``auth.go``): every request goes out without credentials first;
on a 401 with a ``WWW-Authenticate`` challenge, a Bearer challenge is answered by a GET to its realm
(``service`` and ``scope`` from the challenge, Basic credentials, no status check: the body's
``token`` or ``access_token`` is used), a Basic one by Basic credentials, and the request is sent
once more with that ``Authorization``. So every check sees the answer to the authorized retry.

Four Go specs are not ported because no default run against dockyard reaches them: the pull and
discovery setups "from environment" (they need a pre-filled registry named by ``OCI_TAG_NAME`` /
``OCI_TAG_LIST``), "Cross-mounting of nonexistent blob should yield session id" (runs only when
the mount before it answered 202; dockyard mounts automatically and answers 201) and "Cross-mounting
without from, and automatic content discovery disabled should return a 202" (dockyard always
discovers: set ``OCI_AUTOMATIC_CROSSMOUNT=0`` against it and that spec would fail, by design).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import secrets
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote, urlsplit, urlunsplit

import httpx
import pytest

from tests.support.reference import DistributionProcess, is_dockyard
from tests.support.server import ADMIN_AUTH, ManagedProcess, ServerProcess

pytestmark = pytest.mark.e2e

# ---------------------------------------------------------------------------------------------
# setup.go: constants and environment
# ---------------------------------------------------------------------------------------------

PULL, PUSH, CONTENT_DISCOVERY, CONTENT_MANAGEMENT = 1, 2, 4, 8
NUM_WORKFLOWS = 16  # `numWorkflows` continues the `1 << iota` block: 1 << 4

# errorCodes is a slice indexed by constants that start at iota == 5 (they follow the workflow
# block), so its first five entries are "" and an empty error code "conforms" too.
ERROR_CODES = ["", "", "", "", "", "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN",
               "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN",
               "MANIFEST_UNVERIFIED", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "TAG_INVALID",
               "UNAUTHORIZED", "DENIED", "UNSUPPORTED"]

EMPTY_LAYER_TEST_TAG = "emptylayer"
TEST_TAG_NAME = "tagtest0"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
INVALID_MANIFEST_CONTENT = b"blablabla"
ARTIFACT_TYPE_FILTER = "artifactType"
LAYER_BASE64 = ("H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0"
                "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD"
                "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA")

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
OCTET = "application/octet-stream"
USER_AGENT = "distribution-spec-conformance-tests"
GO_416 = "Expect(resp.StatusCode()).To(Equal(http.StatusRequestedRangeNotSatisfiable))"


def parse_bool(value: str | None) -> bool:
    """strconv.ParseBool, with its error read as false (as setup.go does)."""
    return value in {"1", "t", "T", "TRUE", "true", "True"}


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else parse_bool(value)


# setup.go: `deleteManifestBeforeBlobs = true`, then LookupEnv(OCI_DELETE_MANIFEST_BEFORE_BLOBS).
# Read at import time: like the Go spec tree, the teardown specs that exist depend on it.
DELETE_MANIFEST_BEFORE_BLOBS = env_flag("OCI_DELETE_MANIFEST_BEFORE_BLOBS", True)


# ---------------------------------------------------------------------------------------------
# image.go: JSON shapes, marshalled like json.MarshalIndent(v, "", "\t")
# ---------------------------------------------------------------------------------------------

def go_json(value: Any) -> bytes:
    return json.dumps(value, indent="\t").encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, digest: str, size: int, *, annotations: dict[str, str] | None = None,
               data: bytes | None = None, new_unspecified_field: bytes | None = None) -> dict[str, Any]:
    """`descriptor`: mediaType, digest, size, [annotations], [data], newUnspecifiedField (never omitted)."""
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        out["annotations"] = dict(sorted(annotations.items()))
    if data:
        out["data"] = b64(data)
    out["newUnspecifiedField"] = b64(new_unspecified_field) if new_unspecified_field is not None else None
    return out


def manifest(config: dict[str, Any], layers: list[dict[str, Any]], *, media_type: str = "",
             artifact_type: str = "", subject: dict[str, Any] | None = None,
             annotations: dict[str, str] | None = None) -> bytes:
    out: dict[str, Any] = {"schemaVersion": 2}
    if media_type:
        out["mediaType"] = media_type
    if artifact_type:
        out["artifactType"] = artifact_type
    out["config"] = config
    out["layers"] = layers
    if subject is not None:
        out["subject"] = subject
    if annotations:
        out["annotations"] = dict(sorted(annotations.items()))
    return go_json(out)


def image_index(manifests: list[dict[str, Any]], *, artifact_type: str, subject: dict[str, Any],
                annotations: dict[str, str]) -> bytes:
    return go_json({"schemaVersion": 2, "mediaType": MT_INDEX, "artifactType": artifact_type,
                    "manifests": manifests, "subject": subject, "annotations": dict(sorted(annotations.items()))})


@dataclass(frozen=True)
class Blob:  # setup.go TestBlob
    content: bytes
    digest: str

    @property
    def length(self) -> str:
        return str(len(self.content))


def random_string(n: int) -> str:
    letters = string.digits + string.ascii_uppercase + string.ascii_lowercase + "-"
    return "".join(secrets.choice(letters) for _ in range(n))


def random_blob(size: int, seed: int) -> Blob:
    data = random.Random(seed).randbytes(size)
    return Blob(data, sha256(data))


@dataclass
class ChunkedBlob:
    """setupChunkedBlob(size): testBlobB split after size/2+1 bytes, with the two Content-Ranges."""

    blob: Blob
    chunk1: bytes
    chunk2: bytes
    chunk1_range: str
    chunk2_range: str

    @classmethod
    def make(cls, size: int, seed: int) -> ChunkedBlob:
        blob = random_blob(size, seed + 2)
        cut = size // 2 + 1
        return cls(blob, blob.content[:cut], blob.content[cut:], f"0-{cut - 1}", f"{cut}-{size - 1}")


@dataclass
class SuiteData:
    """Everything setup.go's init() builds."""

    seed: int
    configs: list[Blob]
    manifests: list[Blob]
    layer: Blob
    empty_layer_manifest: Blob
    blob_a: Blob
    chunked: ChunkedBlob
    empty_json: Blob
    ref_blob_a: Blob
    ref_blob_b: Blob
    refs_a_config: Blob
    refs_b_config: Blob
    refs_a_layer: Blob
    refs_b_layer: Blob
    refs_c_layer: Blob
    refs_index: Blob
    annotation_values: dict[str, str]
    dummy_digest: str = sha256(b"hello world")
    artifact_type_a: str = "application/vnd.nhl.peanut.butter.bagel"
    artifact_type_b: str = "application/vnd.nba.strawberry.jam.croissant"
    annotation_key: str = "org.opencontainers.conformance.test"

    @classmethod
    def build(cls, seed: int) -> SuiteData:
        configs = []
        for _ in range(NUM_WORKFLOWS):
            content = go_json({"author": random_string(16), "architecture": "amd64", "os": "linux",
                               "rootfs": {"type": "layers", "diff_ids": []}})
            configs.append(Blob(content, sha256(content)))
        layer_data = base64.b64decode(LAYER_BASE64)
        layer = Blob(layer_data, sha256(layer_data))
        layers = [descriptor(MT_LAYER, layer.digest, len(layer_data))]

        def config_descriptor(config: Blob) -> dict[str, Any]:
            return descriptor(MT_CONFIG, config.digest, len(config.content), data=config.content,
                              new_unspecified_field=b"hello world")

        manifests = []
        for config in configs:
            content = manifest(config_descriptor(config), layers, media_type=MT_MANIFEST)
            manifests.append(Blob(content, sha256(content)))
        empty_layer = manifest(config_descriptor(configs[1]), [])  # no mediaType: not set in setup.go

        empty_json_data = b"{}"
        empty_json = Blob(empty_json_data, sha256(empty_json_data))
        empty_json_desc = descriptor(MT_EMPTY, empty_json.digest, 2)
        ref_a = Blob(b"NHL Peanut Butter on my NHL bagel", sha256(b"NHL Peanut Butter on my NHL bagel"))
        ref_b = Blob(b"NBA Strawberry Jam on my NBA croissant",
                         sha256(b"NBA Strawberry Jam on my NBA croissant"))
        type_a, type_b = cls.artifact_type_a, cls.artifact_type_b
        key = cls.annotation_key

        def subject(of: Blob) -> dict[str, Any]:
            return descriptor(MT_MANIFEST, sha256(of.content), len(of.content))

        def blob_of(content: bytes) -> Blob:
            return Blob(content, sha256(content))

        refs_a_config = blob_of(manifest(
            descriptor(type_a, ref_a.digest, len(ref_a.content)), [empty_json_desc], media_type=MT_MANIFEST,
            subject=subject(manifests[4]), annotations={key: "test config a"}))
        refs_b_config = blob_of(manifest(
            descriptor(type_b, ref_b.digest, len(ref_b.content)), [empty_json_desc], media_type=MT_MANIFEST,
            subject=subject(manifests[4]), annotations={key: "test config b"}))
        refs_a_layer = blob_of(manifest(
            empty_json_desc, [descriptor(type_a, ref_a.digest, len(ref_a.content))], media_type=MT_MANIFEST,
            artifact_type=type_a, subject=subject(manifests[4]), annotations={key: "test layer a"}))
        refs_b_layer = blob_of(manifest(
            empty_json_desc, [descriptor(type_b, ref_b.digest, len(ref_b.content))], media_type=MT_MANIFEST,
            artifact_type=type_b, subject=subject(manifests[4]), annotations={key: "test layer b"}))
        refs_c_layer = blob_of(manifest(
            empty_json_desc, [descriptor(type_b, ref_b.digest, len(ref_b.content))], media_type=MT_MANIFEST,
            artifact_type=type_b, subject=subject(manifests[3])))
        refs_index = blob_of(image_index(
            [descriptor(MT_MANIFEST, refs_a_config.digest, len(refs_a_config.content)),
             descriptor(MT_MANIFEST, refs_a_layer.digest, len(refs_a_layer.content))],
            artifact_type="application/vnd.food.stand", subject=subject(manifests[4]),
            annotations={key: "test index"}))
        annotation_values = {refs_a_config.digest: "test config a", refs_b_config.digest: "test config b",
                             refs_a_layer.digest: "test layer a", refs_b_layer.digest: "test layer b",
                             refs_index.digest: "test index"}
        return cls(seed=seed, configs=configs, manifests=manifests, layer=layer,
                   empty_layer_manifest=blob_of(empty_layer), blob_a=random_blob(42, seed + 1),
                   chunked=ChunkedBlob.make(42, seed), empty_json=empty_json, ref_blob_a=ref_a,
                   ref_blob_b=ref_b, refs_a_config=refs_a_config, refs_b_config=refs_b_config,
                   refs_a_layer=refs_a_layer, refs_b_layer=refs_b_layer, refs_c_layer=refs_c_layer,
                   refs_index=refs_index, annotation_values=annotation_values)


# ---------------------------------------------------------------------------------------------
# The Go client: reggie on resty v2 on net/http
# ---------------------------------------------------------------------------------------------

_UNSUBSTITUTED = re.compile(r"<name>|<reference>|<digest>|<session_id>|//{2,}")
_RESTY_JSON_TYPE = re.compile(r"(?i:(application|text)/(json|.*\+json|json\-.*)(;|$))")


class RequestInvalid(AssertionError):
    """reggie's validateRequest: a placeholder left in the URL (Go: `Expect(err).To(BeNil())` fails)."""


class AuthFailed(AssertionError):
    """reggie's retryRequestWithAuth returned an error (Go: `Expect(err).To(BeNil())` fails)."""


# reggie auth.go: the challenge's scheme (the last "bearer" or "basic" in it) and its key="value" pairs
_AUTH_SCHEME = re.compile(r"(?i).*(bearer|basic).*", re.DOTALL)
_AUTH_PARAMS = re.compile(r'([a-zA-z]+)="(.+?)"')


@dataclass
class Reggie:
    root_url: str
    default_name: str
    http: httpx.Client
    debug: bool = False
    username: str = ""
    password: str = ""
    auth_scope: str = ""

    def do(self, method: str, path: str, *, name: str = "", reference: str = "", digest: str = "",
           headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
           body: bytes | None = None) -> httpx.Response:
        for placeholder, value in (("<name>", name or self.default_name), ("<reference>", reference),
                                   ("<digest>", digest)):
            if value:
                path = path.replace(placeholder, value)
        url = f"{self.root_url}/{path.removeprefix('/')}"
        if _UNSUBSTITUTED.search(url):
            raise RequestInvalid(f"request is invalid: {method} {url}")
        if query:  # resty: url.Values.Encode() (sorted, QueryEscape) appended to the URL's own query
            encoded = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(query.items()))
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(query=f"{parts.query}&{encoded}" if parts.query else encoded))
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
        for key, value in (headers or {}).items():
            if key.lower() != "content-length":  # net/http writes the body's own length instead
                sent[key] = value
        content_type = sent.get("Content-Type", "")
        if "Accept" not in sent and content_type and _RESTY_JSON_TYPE.search(content_type):
            sent["Accept"] = content_type
        if method in {"GET", "HEAD", "OPTIONS"}:
            body = None  # resty sends no payload on these methods
        resp = self._send(method, url, sent, body)
        if resp.status_code == 401:  # client.Do: IsUnauthorized() → retryRequestWithAuth
            resp = self._retry_with_auth(method, url, sent, body, resp)
        return resp

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> httpx.Response:
        resp = self.http.request(method, url, headers=headers, content=body)
        if self.debug:  # OCI_DEBUG: show every exchange (pytest -s, or -rA for passed tests)
            print(f"{method} {url} -> {resp.status_code}{describe(resp)}")
        return resp

    def _retry_with_auth(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                         resp: httpx.Response) -> httpx.Response:
        """reggie auth.go retryRequestWithAuth (v0.6)."""
        challenge = header(resp, "Www-Authenticate")
        if challenge == "":
            return resp
        scheme = _AUTH_SCHEME.sub(r"\1", challenge)
        if scheme.lower() == "bearer":
            params = {k.lower(): v for k, v in _AUTH_PARAMS.findall(challenge)}  # mapstructure: any case
            query = {"service": params.get("service", "")}
            if self.auth_scope:
                query["scope"] = self.auth_scope
            elif params.get("scope"):
                query["scope"] = params["scope"]
            try:
                auth_resp = self.http.get(params.get("realm", ""), params=query, auth=(self.username, self.password),
                                          headers={"Accept": "application/json", "User-Agent": USER_AGENT})
                info = json.loads(auth_resp.content)
            except (httpx.HTTPError, ValueError) as exc:
                raise AuthFailed(f"token request for {method} {url} failed: {exc!r}{describe(resp)}") from exc
            if not isinstance(info, dict):
                raise AuthFailed(f"token response is not a JSON object: {auth_resp.content[:200]!r}")
            token = info.get("token") or info.get("access_token") or ""
            if not isinstance(token, str):
                raise AuthFailed(f"token response has a non-string token: {auth_resp.content[:200]!r}")
            authorization = f"Bearer {token}"
        elif scheme.lower() == "basic":
            authorization = "Basic " + b64(f"{self.username}:{self.password}".encode())
        else:
            raise AuthFailed(f"something went wrong with authorization: {challenge!r}{describe(resp)}")
        return self._send(method, url, {**headers, "Authorization": authorization}, body)


def header(resp: httpx.Response, name: str) -> str:
    """http.Header.Get: the first value, or ""."""
    values = resp.headers.get_list(name)
    return values[0] if values else ""


def relative_location(resp: httpx.Response) -> str:
    """reggie Response.GetRelativeLocation: the Location's (unescaped) path plus its raw query."""
    try:
        parts = urlsplit(header(resp, "Location"))
    except ValueError:
        return ""
    path = unquote(parts.path)
    return f"{path}?{parts.query}" if parts.query else path


def describe(resp: httpx.Response) -> str:
    req = resp.request
    shown = {k: v for k, v in resp.headers.items() if k.lower() not in {"date", "server"}}
    return (f"\n  request:  {req.method} {req.url}\n  req hdrs: {dict(req.headers)}"
            f"\n  response: {resp.status_code} {shown}\n  body:     {resp.content[:400]!r}")


def expect(ok: bool, resp: httpx.Response, go: str) -> None:
    """One Gomega expectation; the message carries the ported Go line and the exchange."""
    assert ok, f"Go: {go}{describe(resp)}"


def is_2xx(code: int) -> bool:
    return 200 <= code < 300


def error_codes(resp: httpx.Response) -> list[str]:
    """reggie Response.Errors(): json.Unmarshal into {"errors": [{"code": string, ...}]} (raises if it fails)."""
    body = json.loads(resp.content)
    if not isinstance(body, dict):
        raise AssertionError(f"Errors(): cannot unmarshal {type(body).__name__}{describe(resp)}")
    errors = go_field(body, "errors")
    if errors is None:
        return []
    if not isinstance(errors, list) or not all(isinstance(e, dict) or e is None for e in errors):
        raise AssertionError(f"Errors(): errors is not an array of objects{describe(resp)}")
    codes = []
    for item in errors:
        code = go_field(item or {}, "code")
        if code is not None and not isinstance(code, str):
            raise AssertionError(f"Errors(): code is not a string{describe(resp)}")
        codes.append(code or "")
    return codes


def go_field(obj: dict[str, Any], name: str) -> Any:
    """encoding/json key matching: exact first, then case-insensitive."""
    if name in obj:
        return obj[name]
    return next((v for k, v in obj.items() if k.lower() == name.lower()), None)


def _check_descriptor(value: Any) -> dict[str, Any]:
    """json.Unmarshal into image.go's `descriptor`: the typed fields must have their Go types."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"descriptor is {type(value).__name__}")
    for name in ("mediaType", "digest", "artifactType"):
        if go_field(value, name) is not None and not isinstance(go_field(value, name), str):
            raise ValueError(f"{name} is not a string")
    size = go_field(value, "size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        raise ValueError("size is not an int64")
    annotations = go_field(value, "annotations")
    if annotations is not None and not (isinstance(annotations, dict)
                                        and all(isinstance(v, str) for v in annotations.values())):
        raise ValueError("annotations is not a map[string]string")
    for name in ("data", "newUnspecifiedField"):
        raw = go_field(value, name)
        if raw is not None:
            if not isinstance(raw, str):
                raise ValueError(f"{name} is not a base64 string")
            base64.b64decode(raw, validate=True)
    urls = go_field(value, "urls")
    if urls is not None and not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
        raise ValueError("urls is not a []string")
    return value


def unmarshal_index(resp: httpx.Response) -> list[dict[str, Any]]:
    """`var index index; err = json.Unmarshal(resp.Body(), &index); Expect(err).To(BeNil())` → index.Manifests."""
    try:
        body = json.loads(resp.content)
        if not isinstance(body, dict):
            raise ValueError(f"top level is {type(body).__name__}")
        version = go_field(body, "schemaVersion")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ValueError("schemaVersion is not an int")
        _check_descriptor(go_field(body, "subject"))
        manifests = go_field(body, "manifests")
        if manifests is None:
            return []
        if not isinstance(manifests, list):
            raise ValueError("manifests is not an array")
        return [_check_descriptor(m) for m in manifests]
    except ValueError as exc:
        raise AssertionError(f"Go: json.Unmarshal(resp.Body(), &index) failed: {exc}{describe(resp)}") from exc


def tag_list(resp: httpx.Response) -> list[str]:
    """setup.go getTagList: the `tags` of the body, [] when it does not unmarshal."""
    try:
        body = json.loads(resp.content)
        tags = go_field(body, "tags") if isinstance(body, dict) else None
    except ValueError:
        return []
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return []
    return tags


# ---------------------------------------------------------------------------------------------
# The suite's state: setup.go globals plus each workflow's closure variables
# ---------------------------------------------------------------------------------------------

@dataclass
class Suite:
    client: Reggie
    data: SuiteData
    crossmount_namespace: str
    tests_to_run: int
    run_pull_setup: bool
    run_push_setup: bool
    run_content_discovery_setup: bool
    run_content_management_setup: bool
    run_automatic_crossmount_test: bool
    automatic_crossmount_enabled: bool
    warnings: list[str] = field(default_factory=list)
    # 01_pull_test.go
    tag: str = ""
    # 02_push_test.go
    last_response: httpx.Response | None = None
    prev_response: httpx.Response | None = None
    empty_layer_manifest_ref: str = ""
    # 03_discovery_test.go
    num_tags: int = 4
    tag_list: list[str] = field(default_factory=list)
    # 04_management_test.go
    tag_to_delete: str = ""
    mgmt_num_tags: int = 0
    blob_delete_allowed: bool = True

    def skip_if_disabled(self, workflow: int) -> None:
        if not self.tests_to_run & workflow:
            pytest.skip("workflow disabled by its OCI_TEST_* variable")

    def warn(self, message: str) -> None:
        """setup.go Warn(): printed, never a failure."""
        self.warnings.append(message)
        print(f"WARNING: {message}")


def run_only_if(value: bool) -> None:
    if not value:
        pytest.skip("you have skipped this test.")


def run_only_if_not(value: bool) -> None:
    run_only_if(not value)


def start_registry(data_dir: Path) -> ManagedProcess:
    if is_dockyard():
        return ServerProcess(data_dir=data_dir).start()
    return DistributionProcess(data_dir=data_dir).start()


def credentials() -> tuple[str, str]:
    """OCI_USERNAME / OCI_PASSWORD; unset, dockyard's system admin (the reference registry needs none)."""
    default = ADMIN_AUTH if is_dockyard() else ("", "")
    return os.environ.get("OCI_USERNAME", default[0]), os.environ.get("OCI_PASSWORD", default[1])


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """setup.go init() against a fresh registry (dockyard; or distribution with DOCKYARD_E2E_TARGET)."""
    server = start_registry(tmp_path_factory.mktemp("oci-conformance") / "data")
    seed = int(os.environ.get("OCI_SEED") or random.randrange(1, 1 << 31))
    tests_to_run = 0
    for var, workflow in (("OCI_TEST_PULL", PULL), ("OCI_TEST_PUSH", PUSH),
                          ("OCI_TEST_CONTENT_DISCOVERY", CONTENT_DISCOVERY),
                          ("OCI_TEST_CONTENT_MANAGEMENT", CONTENT_MANAGEMENT)):
        if env_flag(var, True):
            tests_to_run |= workflow
    automatic = os.environ.get("OCI_AUTOMATIC_CROSSMOUNT", "1" if is_dockyard() else None)
    username, password = credentials()
    try:
        with httpx.Client(follow_redirects=True, timeout=60.0) as http:
            yield Suite(
                client=Reggie(server.url, os.environ.get("OCI_NAMESPACE", "conformance/repo"), http,
                              debug=parse_bool(os.environ.get("OCI_DEBUG")), username=username,
                              password=password, auth_scope=os.environ.get("OCI_AUTH_SCOPE", "")),
                data=SuiteData.build(seed),
                crossmount_namespace=os.environ.get("OCI_CROSSMOUNT_NAMESPACE") or f"conformance-{uuid.uuid4()}",
                tests_to_run=tests_to_run,
                run_pull_setup=not all(os.environ.get(v) for v in
                                       ("OCI_TAG_NAME", "OCI_MANIFEST_DIGEST", "OCI_BLOB_DIGEST")),
                run_push_setup=True,
                run_content_discovery_setup=not os.environ.get("OCI_TAG_LIST"),
                run_content_management_setup=True,
                run_automatic_crossmount_test=automatic is not None,
                automatic_crossmount_enabled=parse_bool(automatic),
            )
    finally:
        server.stop()
        print(f"seed={seed}; last lines of {server.log_path}:", *server.log().splitlines()[-40:], sep="\n")


# Helpers for the repeated Go idioms -----------------------------------------------------------

def upload_blob(s: Suite, blob: Blob) -> httpx.Response:
    """POST /v2/<name>/blobs/uploads/, then PUT <Location>?digest= with the blob (the setup idiom)."""
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    return s.client.do("PUT", relative_location(resp), query={"digest": blob.digest},
                       headers={"Content-Type": OCTET, "Content-Length": blob.length}, body=blob.content)


def put_manifest(s: Suite, reference: str, content: bytes, media_type: str = MT_MANIFEST) -> httpx.Response:
    return s.client.do("PUT", "/v2/<name>/manifests/<reference>", reference=reference,
                       headers={"Content-Type": media_type}, body=content)


def expect_2xx(resp: httpx.Response, go: str = "Expect(resp.StatusCode()).To(SatisfyAll(>= 200, < 300))") -> None:
    expect(is_2xx(resp.status_code), resp, go)


def expect_delete(resp: httpx.Response, *, allow_404: bool) -> None:
    allowed = "2xx, 404 or 405" if allow_404 else "2xx or 405"
    ok = is_2xx(resp.status_code) or resp.status_code == 405 or (allow_404 and resp.status_code == 404)
    expect(ok, resp, f"Expect(resp.StatusCode()).To(SatisfyAny({allowed}))")


def teardown_delete_blob(s: Suite, workflow: int, setup_ran: bool, digest: str, *, allow_404: bool) -> None:
    """A workflow's Teardown "Delete ... blob": skipped with the workflow or its setup, then `expect_delete`."""
    s.skip_if_disabled(workflow)
    run_only_if(setup_ran)
    expect_delete(s.client.do("DELETE", "/v2/<name>/blobs/<digest>", digest=digest), allow_404=allow_404)


# =============================================================================================
# 01_pull_test.go — Pull
# =============================================================================================

# 01_pull_test.go: Pull / Setup / "Populate registry with test blob" (configs[0])
def test_pull_setup_populate_config0(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    run_only_if(s.run_pull_setup)
    expect_2xx(upload_blob(s, s.data.configs[0]))


# 01_pull_test.go: Pull / Setup / "Populate registry with test blob" (configs[1])
def test_pull_setup_populate_config1(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    run_only_if(s.run_pull_setup)
    expect_2xx(upload_blob(s, s.data.configs[1]))


# 01_pull_test.go: Pull / Setup / "Populate registry with test layer"
def test_pull_setup_populate_layer(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    run_only_if(s.run_pull_setup)
    expect_2xx(upload_blob(s, s.data.layer))


# 01_pull_test.go: Pull / Setup / "Populate registry with test manifest" (manifests[0] as tag tagtest0)
def test_pull_setup_populate_manifest_by_tag(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    run_only_if(s.run_pull_setup)
    s.tag = TEST_TAG_NAME
    expect_2xx(put_manifest(s, s.tag, s.data.manifests[0].content))


# 01_pull_test.go: Pull / Setup / "Populate registry with test manifest" (manifests[1] by digest)
def test_pull_setup_populate_manifest_by_digest(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    run_only_if(s.run_pull_setup)
    expect_2xx(put_manifest(s, s.data.manifests[1].digest, s.data.manifests[1].content))


# 01_pull_test.go: Pull / Pull blobs / "HEAD request to nonexistent blob should result in 404 response"
def test_pull_head_nonexistent_blob_404(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = s.client.do("HEAD", "/v2/<name>/blobs/<digest>", digest=s.data.dummy_digest)
    expect(resp.status_code == 404, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")


# 01_pull_test.go: Pull / Pull blobs / "HEAD request to existing blob should yield 200"
def test_pull_head_existing_blob_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = s.client.do("HEAD", "/v2/<name>/blobs/<digest>", digest=s.data.configs[0].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    if h := header(resp, "Docker-Content-Digest"):
        expect(h == s.data.configs[0].digest, resp, "Expect(h).To(Equal(configs[0].Digest))")


# 01_pull_test.go: Pull / Pull blobs / "GET nonexistent blob should result in 404 response"
def test_pull_get_nonexistent_blob_404(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = s.client.do("GET", "/v2/<name>/blobs/<digest>", digest=s.data.dummy_digest)
    expect(resp.status_code == 404, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")


# 01_pull_test.go: Pull / Pull blobs / "GET request to existing blob URL should yield 200"
def test_pull_get_existing_blob_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = s.client.do("GET", "/v2/<name>/blobs/<digest>", digest=s.data.configs[0].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 01_pull_test.go: Pull / Pull manifests / "HEAD request to nonexistent manifest should return 404"
def test_pull_head_nonexistent_manifest_404(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = s.client.do("HEAD", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect(resp.status_code == 404, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")


def _head_manifest(s: Suite, *, digest: str = "", reference: str = "") -> httpx.Response:
    path = "/v2/<name>/manifests/<digest>" if digest else "/v2/<name>/manifests/<reference>"
    return s.client.do("HEAD", path, digest=digest, reference=reference, headers={"Accept": MT_MANIFEST})


# 01_pull_test.go: Pull / Pull manifests / "HEAD request to manifest[0] path (digest) should yield 200 response"
def test_pull_head_manifest0_by_digest_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = _head_manifest(s, digest=s.data.manifests[0].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    if h := header(resp, "Docker-Content-Digest"):
        expect(h == s.data.manifests[0].digest, resp, "Expect(h).To(Equal(manifests[0].Digest))")


# 01_pull_test.go: Pull / Pull manifests / "HEAD request to manifest[1] path (digest) should yield 200 response"
def test_pull_head_manifest1_by_digest_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = _head_manifest(s, digest=s.data.manifests[1].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    if h := header(resp, "Docker-Content-Digest"):
        expect(h == s.data.manifests[1].digest, resp, "Expect(h).To(Equal(manifests[1].Digest))")


# 01_pull_test.go: Pull / Pull manifests / "HEAD request to manifest path (tag) should yield 200 response"
def test_pull_head_manifest_by_tag_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    assert s.tag, "Go: Expect(tag).ToNot(BeEmpty())"
    resp = _head_manifest(s, reference=s.tag)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    if h := header(resp, "Docker-Content-Digest"):
        expect(h == s.data.manifests[0].digest, resp, "Expect(h).To(Equal(manifests[0].Digest))")


# 01_pull_test.go: Pull / Pull manifests / "GET nonexistent manifest should return 404"
def test_pull_get_nonexistent_manifest_404(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = s.client.do("GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect(resp.status_code == 404, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")


def _get_manifest(s: Suite, *, digest: str = "", reference: str = "") -> httpx.Response:
    path = "/v2/<name>/manifests/<digest>" if digest else "/v2/<name>/manifests/<reference>"
    return s.client.do("GET", path, digest=digest, reference=reference, headers={"Accept": MT_MANIFEST})


# 01_pull_test.go: Pull / Pull manifests / "GET request to manifest[0] path (digest) should yield 200 response"
def test_pull_get_manifest0_by_digest_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = _get_manifest(s, digest=s.data.manifests[0].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 01_pull_test.go: Pull / Pull manifests / "GET request to manifest[1] path (digest) should yield 200 response"
def test_pull_get_manifest1_by_digest_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = _get_manifest(s, digest=s.data.manifests[1].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 01_pull_test.go: Pull / Pull manifests / "GET request to manifest path (tag) should yield 200 response"
def test_pull_get_manifest_by_tag_200(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    assert s.tag, "Go: Expect(tag).ToNot(BeEmpty())"
    resp = _get_manifest(s, reference=s.tag)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 01_pull_test.go: Pull / Error codes / "400 response body should contain OCI-conforming JSON message"
def test_pull_400_response_body_is_oci_error_json(s: Suite) -> None:
    s.skip_if_disabled(PULL)
    resp = s.client.do("GET", "/v2/<name>/manifests/<reference>", reference="sha256:totallywrong",
                       headers={"Content-Type": MT_MANIFEST}, body=INVALID_MANIFEST_CONTENT)
    expect(resp.status_code in {400, 404}, resp, "Expect(resp.StatusCode()).To(SatisfyAny(Equal(400), Equal(404)))")
    if resp.status_code == 400:
        codes = error_codes(resp)
        expect(bool(codes), resp, "Expect(errorResponses).ToNot(BeEmpty())")
        expect(codes[0] in ERROR_CODES, resp, "Expect(errorCodes).To(ContainElement(errorResponses[0].Code))")


def _pull_delete_manifest(s: Suite, index: int) -> None:
    s.skip_if_disabled(PULL)
    run_only_if(s.run_pull_setup)
    resp = s.client.do("DELETE", "/v2/<name>/manifests/<digest>", digest=s.data.manifests[index].digest)
    expect_delete(resp, allow_404=False)


if DELETE_MANIFEST_BEFORE_BLOBS:
    # 01_pull_test.go: Pull / Teardown / "Delete manifest[0] created in setup" (manifests before blobs)
    def test_pull_teardown_delete_manifest0(s: Suite) -> None:
        _pull_delete_manifest(s, 0)

    # 01_pull_test.go: Pull / Teardown / "Delete manifest[1] created in setup" (manifests before blobs)
    def test_pull_teardown_delete_manifest1(s: Suite) -> None:
        _pull_delete_manifest(s, 1)


def _pull_delete_blob(s: Suite, digest: str) -> None:
    teardown_delete_blob(s, PULL, s.run_pull_setup, digest, allow_404=True)


# 01_pull_test.go: Pull / Teardown / "Delete config[0] blob created in setup"
def test_pull_teardown_delete_config0(s: Suite) -> None:
    _pull_delete_blob(s, s.data.configs[0].digest)


# 01_pull_test.go: Pull / Teardown / "Delete config[1] blob created in setup"
def test_pull_teardown_delete_config1(s: Suite) -> None:
    _pull_delete_blob(s, s.data.configs[1].digest)


# 01_pull_test.go: Pull / Teardown / "Delete layer blob created in setup"
def test_pull_teardown_delete_layer(s: Suite) -> None:
    _pull_delete_blob(s, s.data.layer.digest)


if not DELETE_MANIFEST_BEFORE_BLOBS:
    # 01_pull_test.go: Pull / Teardown / "Delete manifest[0] created in setup" (blobs before manifests)
    def test_pull_teardown_delete_manifest0_after_blobs(s: Suite) -> None:
        _pull_delete_manifest(s, 0)

    # 01_pull_test.go: Pull / Teardown / "Delete manifest[1] created in setup" (blobs before manifests)
    def test_pull_teardown_delete_manifest1_after_blobs(s: Suite) -> None:
        _pull_delete_manifest(s, 1)


# =============================================================================================
# 02_push_test.go — Push
# =============================================================================================

# 02_push_test.go: Push / Blob Upload Streamed / "PATCH request with blob in body should yield 202 response"
def test_push_streamed_patch_202(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    expect(header(resp, "Location") != "", resp, 'Expect(location).ToNot(BeEmpty())')
    resp = s.client.do("PATCH", relative_location(resp), headers={"Content-Type": OCTET}, body=s.data.blob_a.content)
    expect(resp.status_code == 202, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusAccepted))")
    s.last_response = resp


# 02_push_test.go: Push / Blob Upload Streamed / "PUT request to session URL with digest should yield 201 response"
def test_push_streamed_put_201(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.last_response is not None, "Go: Expect(lastResponse).ToNot(BeNil())"
    resp = s.client.do("PUT", relative_location(s.last_response), query={"digest": s.data.blob_a.digest},
                       headers={"Content-Type": OCTET, "Content-Length": s.data.blob_a.length})
    expect(resp.status_code == 201, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusCreated))")
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")


# 02_push_test.go: Push / Blob Upload Monolithic / "GET nonexistent blob should result in 404 response"
def test_push_monolithic_get_nonexistent_blob_404(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("GET", "/v2/<name>/blobs/<digest>", digest=s.data.dummy_digest)
    expect(resp.status_code == 404, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")


# 02_push_test.go: Push / Blob Upload Monolithic / "POST request with digest and blob should yield a 201 or 202"
def test_push_monolithic_post_with_digest_201_or_202(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    config = s.data.configs[1]
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/", query={"digest": config.digest},
                       headers={"Content-Length": config.length, "Content-Type": OCTET}, body=config.content)
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")
    expect(resp.status_code in {201, 202}, resp, "Expect(resp.StatusCode()).To(SatisfyAny(Equal(201), Equal(202)))")
    s.last_response = resp


# 02_push_test.go: Push / Blob Upload Monolithic /
#   "GET request to blob URL from prior request should yield 200 or 404 based on response code"
def test_push_monolithic_get_blob_after_post(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.last_response is not None, "Go: Expect(lastResponse).ToNot(BeNil())"
    resp = s.client.do("GET", "/v2/<name>/blobs/<digest>", digest=s.data.configs[1].digest)
    if s.last_response.status_code == 202:
        expect(resp.status_code == 404, resp, "(POST was 202) Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")
    else:
        expect(resp.status_code == 200, resp, "(POST was 201) Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 02_push_test.go: Push / Blob Upload Monolithic / "POST request should yield a session ID"
def test_push_monolithic_post_session_202(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    expect(resp.status_code == 202, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusAccepted))")
    s.last_response = resp


# 02_push_test.go: Push / Blob Upload Monolithic / "PUT upload of a blob should yield a 201 Response"
def test_push_monolithic_put_blob_201(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.last_response is not None
    config = s.data.configs[1]
    resp = s.client.do("PUT", relative_location(s.last_response), query={"digest": config.digest},
                       headers={"Content-Length": config.length, "Content-Type": OCTET}, body=config.content)
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")
    expect(resp.status_code == 201, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusCreated))")


# 02_push_test.go: Push / Blob Upload Monolithic / "GET request to existing blob should yield 200 response"
def test_push_monolithic_get_existing_blob_200(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("GET", "/v2/<name>/blobs/<digest>", digest=s.data.configs[1].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 02_push_test.go: Push / Blob Upload Monolithic / "PUT upload of a layer blob should yield a 201 Response"
def test_push_monolithic_put_layer_201(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    layer = s.data.layer
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    resp = s.client.do("PUT", relative_location(resp), query={"digest": layer.digest},
                       headers={"Content-Length": layer.length, "Content-Type": OCTET}, body=layer.content)
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")
    expect(resp.status_code == 201, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusCreated))")


# 02_push_test.go: Push / Blob Upload Monolithic / "GET request to existing layer should yield 200 response"
def test_push_monolithic_get_existing_layer_200(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("GET", "/v2/<name>/blobs/<digest>", digest=s.data.layer.digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 02_push_test.go: Push / Blob Upload Chunked / "Out-of-order blob upload should return 416"
def test_push_chunked_out_of_order_416(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")
    if min_size_str := header(resp, "OCI-Chunk-Min-Length"):  # rebuild the blob if our chunk is too small
        expect(min_size_str.isdigit(), resp, "minSize, err := strconv.Atoi(minSizeStr); Expect(err).To(BeNil())")
        if int(min_size_str) > len(s.data.chunked.chunk1):
            s.data.chunked = ChunkedBlob.make(int(min_size_str) * 2 - 2, s.data.seed)
    chunked = s.data.chunked
    resp = s.client.do("PATCH", relative_location(resp), headers={
        "Content-Type": OCTET, "Content-Length": str(len(chunked.chunk2)), "Content-Range": chunked.chunk2_range},
        body=chunked.chunk2)
    expect(resp.status_code == 416, resp, GO_416)


# 02_push_test.go: Push / Blob Upload Chunked / "PATCH request with first chunk should return 202"
def test_push_chunked_first_chunk_202(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    chunked = s.data.chunked
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")
    s.prev_response = resp
    resp = s.client.do("PATCH", relative_location(resp), headers={
        "Content-Type": OCTET, "Content-Length": str(len(chunked.chunk1)), "Content-Range": chunked.chunk1_range},
        body=chunked.chunk1)
    expect(resp.status_code == 202, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusAccepted))")
    expect(header(resp, "Range") == chunked.chunk1_range, resp,
           f'Expect(resp.Header().Get("Range")).To(Equal(testBlobBChunk1Range)) -- want {chunked.chunk1_range!r}')
    s.last_response = resp


# 02_push_test.go: Push / Blob Upload Chunked / "Retry previous blob chunk should return 416"
def test_push_chunked_retry_previous_chunk_416(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.prev_response is not None
    chunked = s.data.chunked
    resp = s.client.do("PATCH", relative_location(s.prev_response), headers={
        "Content-Type": OCTET, "Content-Length": str(len(chunked.chunk1)), "Content-Range": chunked.chunk1_range},
        body=chunked.chunk1)
    expect(resp.status_code == 416, resp, GO_416)


# 02_push_test.go: Push / Blob Upload Chunked / "Get on stale blob upload should return 204 with a range and location"
def test_push_chunked_get_stale_upload_204(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.prev_response is not None
    chunked = s.data.chunked
    resp = s.client.do("GET", relative_location(s.prev_response))
    expect(resp.status_code == 204, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNoContent))")
    expect(header(resp, "Location") != "", resp, 'Expect(resp.Header().Get("Location")).ToNot(BeEmpty())')
    expect(header(resp, "Range") == chunked.chunk1_range, resp,
           f'Expect(resp.Header().Get("Range")).To(Equal(testBlobBChunk1Range)) -- want {chunked.chunk1_range!r}')
    s.last_response = resp


# 02_push_test.go: Push / Blob Upload Chunked / "PATCH request with second chunk should return 202"
def test_push_chunked_second_chunk_202(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.last_response is not None
    chunked = s.data.chunked
    resp = s.client.do("PATCH", relative_location(s.last_response), headers={
        "Content-Length": str(len(chunked.chunk2)), "Content-Range": chunked.chunk2_range, "Content-Type": OCTET},
        body=chunked.chunk2)
    expect(resp.status_code == 202, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusAccepted))")
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")
    s.last_response = resp


# 02_push_test.go: Push / Blob Upload Chunked / "PUT request with digest should return 201"
def test_push_chunked_put_with_digest_201(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.last_response is not None
    resp = s.client.do("PUT", relative_location(s.last_response), query={"digest": s.data.chunked.blob.digest},
                       headers={"Content-Length": "0", "Content-Type": OCTET})
    expect(resp.status_code == 201, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusCreated))")
    expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")


# 02_push_test.go: Push / Cross-Repository Blob Mount /
#   "Cross-mounting of a blob without the from argument should yield session id"
def test_push_crossmount_without_from_yields_session(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/", name=s.crossmount_namespace,
                       query={"mount": s.data.dummy_digest})
    expect(resp.status_code == 202, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusAccepted))")
    expect(header(resp, "Location") != "", resp, "Expect(resp.GetAbsoluteLocation()).To(Not(BeEmpty()))")


# 02_push_test.go: Push / Cross-Repository Blob Mount /
#   "POST request to mount another repository's blob should return 201 or 202"
def test_push_crossmount_from_201_or_202(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/", name=s.crossmount_namespace,
                       query={"mount": s.data.blob_a.digest, "from": s.client.default_name})
    expect(resp.status_code in {201, 202}, resp, "Expect(resp.StatusCode()).To(SatisfyAny(Equal(201), Equal(202)))")
    s.last_response = resp


# 02_push_test.go: Push / Cross-Repository Blob Mount /
#   "GET request to test digest within cross-mount namespace should return 200"
def test_push_crossmount_get_mounted_blob_200(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    assert s.last_response is not None
    run_only_if(s.last_response.status_code == 201)
    want = f"/v2/{s.crossmount_namespace}/blobs/{s.data.blob_a.digest}"
    expect(relative_location(s.last_response) == want, s.last_response,
           f"Expect(lastResponse.GetRelativeLocation()).To(Equal({want!r}))")
    resp = s.client.do("GET", relative_location(s.last_response))
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


# 02_push_test.go: Push / Cross-Repository Blob Mount /
#   "Cross-mounting without from, and automatic content discovery enabled should return a 201"
def test_push_crossmount_automatic_enabled_201(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    run_only_if(s.run_automatic_crossmount_test)
    assert s.last_response is not None
    run_only_if(s.last_response.status_code == 201)
    run_only_if(s.automatic_crossmount_enabled)
    resp = s.client.do("POST", "/v2/<name>/blobs/uploads/", name=s.crossmount_namespace,
                       query={"mount": s.data.blob_a.digest})
    expect(resp.status_code == 201, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusCreated))")


# 02_push_test.go: Push / Manifest Upload / "GET nonexistent manifest should return 404"
def test_push_get_nonexistent_manifest_404(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = s.client.do("GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect(resp.status_code == 404, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")


# 02_push_test.go: Push / Manifest Upload / "PUT should accept a manifest upload"
def test_push_put_manifest_201(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    for i in range(4):
        resp = put_manifest(s, f"test{i}", s.data.manifests[1].content)
        expect(header(resp, "Location") != "", resp, "Expect(location).ToNot(BeEmpty())")
        expect(resp.status_code == 201, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusCreated))")


# 02_push_test.go: Push / Manifest Upload / "Registry should accept a manifest upload with no layers"
def test_push_put_manifest_without_layers(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = put_manifest(s, EMPTY_LAYER_TEST_TAG, s.data.empty_layer_manifest.content)
    if resp.status_code == 201:
        s.empty_layer_manifest_ref = header(resp, "Location")
        expect(s.empty_layer_manifest_ref != "", resp, "Expect(location).ToNot(BeEmpty())")
    else:
        s.warn(f"image manifest with no layers is not supported (got {resp.status_code})")


# 02_push_test.go: Push / Manifest Upload / "GET request to manifest URL (digest) should yield 200 response"
def test_push_get_manifest_by_digest_200(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    resp = _get_manifest(s, digest=s.data.manifests[1].digest)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")


def _push_delete_manifests(s: Suite) -> None:
    s.skip_if_disabled(PUSH)
    run_only_if(s.run_push_setup)
    resp = s.client.do("DELETE", "/v2/<name>/manifests/<digest>", digest=s.data.manifests[1].digest)
    expect_delete(resp, allow_404=False)
    if s.empty_layer_manifest_ref:
        resp = s.client.do("DELETE", "/v2/<name>/manifests/<reference>",
                           reference=s.data.empty_layer_manifest.digest)
        expect_delete(resp, allow_404=False)


if DELETE_MANIFEST_BEFORE_BLOBS:
    # 02_push_test.go: Push / Teardown / "Delete manifest created in tests" (manifests before blobs)
    def test_push_teardown_delete_manifests(s: Suite) -> None:
        _push_delete_manifests(s)


# 02_push_test.go: Push / Teardown / "Delete config blob created in tests"
def test_push_teardown_delete_config(s: Suite) -> None:
    teardown_delete_blob(s, PUSH, s.run_push_setup, s.data.configs[1].digest, allow_404=True)


# 02_push_test.go: Push / Teardown / "Delete layer blob created in setup"
def test_push_teardown_delete_layer(s: Suite) -> None:
    teardown_delete_blob(s, PUSH, s.run_push_setup, s.data.layer.digest, allow_404=True)


if not DELETE_MANIFEST_BEFORE_BLOBS:
    # 02_push_test.go: Push / Teardown / "Delete manifest created in tests" (blobs before manifests)
    def test_push_teardown_delete_manifests_after_blobs(s: Suite) -> None:
        _push_delete_manifests(s)


# =============================================================================================
# 03_discovery_test.go — Content Discovery
# =============================================================================================

# 03_discovery_test.go: Content Discovery / Setup / "Populate registry with test blob" (configs[2])
def test_discovery_setup_populate_config(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    run_only_if(s.run_content_discovery_setup)
    expect_2xx(upload_blob(s, s.data.configs[2]))


# 03_discovery_test.go: Content Discovery / Setup / "Populate registry with test layer"
def test_discovery_setup_populate_layer(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    run_only_if(s.run_content_discovery_setup)
    expect_2xx(upload_blob(s, s.data.layer))


# 03_discovery_test.go: Content Discovery / Setup / "Populate registry with test tags"
def test_discovery_setup_populate_tags(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    run_only_if(s.run_content_discovery_setup)
    for i in range(s.num_tags):
        tag = f"test{i}"
        s.tag_list.append(tag)
        expect_2xx(put_manifest(s, tag, s.data.manifests[2].content))
    s.tag_list = tag_list(s.client.do("GET", "/v2/<name>/tags/list"))


# 03_discovery_test.go: Content Discovery / Setup / "References setup"
def test_discovery_setup_references(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    run_only_if(s.run_content_discovery_setup)
    d = s.data
    assert d.empty_json.digest == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    # Populate registry with empty JSON blob
    expect_2xx(upload_blob(s, d.empty_json))
    # Populate registry with reference blob before the image manifest is pushed
    expect_2xx(upload_blob(s, d.ref_blob_a))
    subject4 = d.manifests[4].digest
    oci_subject = 'Expect(resp.Header().Get("OCI-Subject")).To(Equal(manifests[{}].Digest))'
    # Populate registry with test references manifest (config.MediaType = artifactType)
    resp = put_manifest(s, d.refs_a_config.digest, d.refs_a_config.content)
    expect_2xx(resp)
    expect(header(resp, "OCI-Subject") == subject4, resp, oci_subject.format(4))
    # Populate registry with test references manifest (ArtifactType, config.MediaType = emptyJSON)
    resp = put_manifest(s, d.refs_a_layer.digest, d.refs_a_layer.content)
    expect_2xx(resp)
    expect(header(resp, "OCI-Subject") == subject4, resp, oci_subject.format(4))
    # Populate registry with test index manifest
    resp = put_manifest(s, d.refs_index.digest, d.refs_index.content, MT_INDEX)
    expect_2xx(resp)
    expect(header(resp, "OCI-Subject") == subject4, resp, oci_subject.format(4))
    # Populate registry with test blob, test layer, test manifest (the subject, tagged tagtest0)
    expect_2xx(upload_blob(s, d.configs[4]))
    expect_2xx(upload_blob(s, d.layer))
    expect_2xx(put_manifest(s, TEST_TAG_NAME, d.manifests[4].content))
    # Populate registry with reference blob after the image manifest is pushed
    expect_2xx(upload_blob(s, d.ref_blob_b))
    resp = put_manifest(s, d.refs_b_config.digest, d.refs_b_config.content)
    expect_2xx(resp)
    expect(header(resp, "OCI-Subject") == subject4, resp, oci_subject.format(4))
    resp = put_manifest(s, d.refs_b_layer.digest, d.refs_b_layer.content)
    expect_2xx(resp)
    expect(header(resp, "OCI-Subject") == subject4, resp, oci_subject.format(4))
    # Populate registry with test references manifest to a non-existent subject
    resp = put_manifest(s, d.refs_c_layer.digest, d.refs_c_layer.content)
    expect_2xx(resp)
    expect(header(resp, "OCI-Subject") == d.manifests[3].digest, resp, oci_subject.format(3))


# 03_discovery_test.go: Content Discovery / listing tags / "GET request to list tags should yield 200 response"
def test_discovery_list_tags_200(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    resp = s.client.do("GET", "/v2/<name>/tags/list")
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    s.tag_list = tag_list(resp)
    s.num_tags = len(s.tag_list)


# 03_discovery_test.go: Content Discovery / listing tags /
#   "GET number of tags should be limitable by `n` query parameter"
def test_discovery_list_tags_n(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    num_results = s.num_tags // 2
    resp = s.client.do("GET", "/v2/<name>/tags/list", query={"n": str(num_results)})
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    s.tag_list = tag_list(resp)
    expect(len(s.tag_list) == num_results, resp,
           f"Expect(len(tagList)).To(Equal(numResults)) -- numResults={num_results}")


# 03_discovery_test.go: Content Discovery / listing tags / "GET start of tag is set by `last` query parameter"
def test_discovery_list_tags_last(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    num_results = s.num_tags // 2
    resp = s.client.do("GET", "/v2/<name>/tags/list", query={"n": str(num_results)})
    s.tag_list = tag_list(resp)
    # tagList[numResults-1] panics (a failed spec) when the first page came back short
    assert len(s.tag_list) >= num_results > 0, f"Go: index out of range: tagList[{num_results - 1}]{describe(resp)}"
    resp = s.client.do("GET", "/v2/<name>/tags/list",
                       query={"n": str(num_results), "last": s.tag_list[num_results - 1]})
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    # As in Go, tagList is not reassigned from this second response, so these two always hold.
    assert len(s.tag_list) <= num_results
    assert s.tag_list[num_results - 1] in s.tag_list


def _get_referrers(s: Suite, digest: str, query: dict[str, str] | None = None) -> httpx.Response:
    resp = s.client.do("GET", "/v2/<name>/referrers/<digest>", digest=digest, query=query)
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    expect(header(resp, "Content-Type") == MT_INDEX, resp,
           'Expect(resp.Header().Get("Content-Type")).To(Equal("application/vnd.oci.image.index.v1+json"))')
    return resp


def _expect_annotations(s: Suite, resp: httpx.Response, manifests: list[dict[str, Any]]) -> None:
    for m in manifests:
        annotations = go_field(m, "annotations") or {}
        digest = go_field(m, "digest") or ""
        expect(len(annotations) == 1, resp, "Expect(len(index.Manifests[i].Annotations)).To(Equal(1))")
        expect(annotations.get(s.data.annotation_key) == s.data.annotation_values.get(digest, ""), resp,
               "Expect(index.Manifests[i].Annotations[testAnnotationKey]).To(Equal(testAnnotationValues[digest]))")


# 03_discovery_test.go: Content Discovery / listing references /
#   "GET request to nonexistent blob should result in empty 200 response"
def test_discovery_referrers_unknown_subject_empty_200(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    resp = _get_referrers(s, s.data.dummy_digest)
    expect(len(unmarshal_index(resp)) == 0, resp, "Expect(len(index.Manifests)).To(BeZero())")


# 03_discovery_test.go: Content Discovery / listing references / "GET request to existing blob should yield 200"
def test_discovery_referrers_existing_subject_200(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    resp = _get_referrers(s, s.data.manifests[4].digest)
    manifests = unmarshal_index(resp)
    expect(len(manifests) == 5, resp, "Expect(len(index.Manifests)).To(Equal(5))")
    expect(go_field(manifests[0], "digest") != go_field(manifests[1], "digest"), resp,
           "Expect(index.Manifests[0].Digest).ToNot(Equal(index.Manifests[1].Digest))")
    _expect_annotations(s, resp, manifests)


# 03_discovery_test.go: Content Discovery / listing references /
#   "GET request to existing blob with filter should yield 200"
def test_discovery_referrers_filtered_200(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    resp = _get_referrers(s, s.data.manifests[4].digest, {"artifactType": s.data.artifact_type_a})
    manifests = unmarshal_index(resp)
    if header(resp, "OCI-Filters-Applied"):
        expect(len(manifests) == 2, resp, "Expect(len(index.Manifests)).To(Equal(2))")
        expect(header(resp, "OCI-Filters-Applied") == ARTIFACT_TYPE_FILTER, resp,
               'Expect(resp.Header().Get("OCI-Filters-Applied")).To(Equal(artifactTypeFilter))')
    else:
        expect(len(manifests) == 5, resp, "Expect(len(index.Manifests)).To(Equal(5))")
        s.warn("filtering by artifact-type is not implemented")
    _expect_annotations(s, resp, manifests)


# 03_discovery_test.go: Content Discovery / listing references / "GET request to missing manifest should yield 200"
def test_discovery_referrers_missing_subject_200(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    resp = _get_referrers(s, s.data.manifests[3].digest)
    manifests = unmarshal_index(resp)
    expect(len(manifests) == 1, resp, "Expect(len(index.Manifests)).To(Equal(1))")
    expect(go_field(manifests[0], "digest") == s.data.refs_c_layer.digest, resp,
           "Expect(index.Manifests[0].Digest.String()).To(Equal(refsManifestCLayerArtifactDigest))")


def _discovery_delete_manifests_and_tags(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    run_only_if(s.run_content_discovery_setup)
    d = s.data
    references = [d.refs_index.digest, d.manifests[2].digest, d.manifests[4].digest, d.refs_a_config.digest,
                  d.refs_a_layer.digest, TEST_TAG_NAME, d.refs_b_config.digest, d.refs_b_layer.digest,
                  d.refs_c_layer.digest]
    for ref in references:
        expect_delete(s.client.do("DELETE", "/v2/<name>/manifests/<digest>", digest=ref), allow_404=True)


if DELETE_MANIFEST_BEFORE_BLOBS:
    # 03_discovery_test.go: Content Discovery / Teardown / "Delete created manifest & associated tags"
    def test_discovery_teardown_delete_manifests_and_tags(s: Suite) -> None:
        _discovery_delete_manifests_and_tags(s)


# 03_discovery_test.go: Content Discovery / Teardown / "Delete config blob created in tests"
def test_discovery_teardown_delete_config(s: Suite) -> None:
    teardown_delete_blob(s, CONTENT_DISCOVERY, s.run_content_discovery_setup, s.data.configs[2].digest, allow_404=False)


# 03_discovery_test.go: Content Discovery / Teardown / "Delete layer blob created in setup"
def test_discovery_teardown_delete_layer(s: Suite) -> None:
    teardown_delete_blob(s, CONTENT_DISCOVERY, s.run_content_discovery_setup, s.data.layer.digest, allow_404=False)


if not DELETE_MANIFEST_BEFORE_BLOBS:
    # 03_discovery_test.go: Content Discovery / Teardown / "Delete created manifest & associated tags" (after blobs)
    def test_discovery_teardown_delete_manifests_and_tags_after_blobs(s: Suite) -> None:
        _discovery_delete_manifests_and_tags(s)


# 03_discovery_test.go: Content Discovery / Teardown / "References teardown"
def test_discovery_teardown_references(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_DISCOVERY)
    run_only_if(s.run_content_discovery_setup)
    d = s.data

    def delete(path: str, *, reference: str = "", digest: str = "") -> None:
        expect_delete(s.client.do("DELETE", path, reference=reference, digest=digest), allow_404=True)

    def delete_manifests() -> None:
        delete("/v2/<name>/manifests/<reference>", reference=d.refs_index.digest)
        delete("/v2/<name>/manifests/<reference>", reference=d.refs_a_config.digest)
        delete("/v2/<name>/manifests/<reference>", reference=d.refs_a_layer.digest)
        delete("/v2/<name>/manifests/<digest>", digest=d.manifests[4].digest)
        delete("/v2/<name>/manifests/<reference>", reference=d.refs_b_config.digest)
        delete("/v2/<name>/manifests/<reference>", reference=d.refs_b_layer.digest)

    if DELETE_MANIFEST_BEFORE_BLOBS:
        delete_manifests()
    delete("/v2/<name>/blobs/<digest>", digest=d.configs[4].digest)
    delete("/v2/<name>/blobs/<digest>", digest=d.ref_blob_a.digest)
    delete("/v2/<name>/blobs/<digest>", digest=d.ref_blob_b.digest)
    delete("/v2/<name>/blobs/<digest>", digest=d.empty_json.digest)
    if not DELETE_MANIFEST_BEFORE_BLOBS:
        delete_manifests()


# =============================================================================================
# 04_management_test.go — Content Management
# =============================================================================================

# 04_management_test.go: Content Management / Setup / "Populate registry with test config blob"
def test_management_setup_populate_config(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    run_only_if(s.run_content_management_setup)
    expect_2xx(upload_blob(s, s.data.configs[3]))


# 04_management_test.go: Content Management / Setup / "Populate registry with test layer"
def test_management_setup_populate_layer(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    run_only_if(s.run_content_management_setup)
    expect_2xx(upload_blob(s, s.data.layer))


# 04_management_test.go: Content Management / Setup / "Populate registry with test tag"
def test_management_setup_populate_tag(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    run_only_if(s.run_content_management_setup)
    s.tag_to_delete = TEST_TAG_NAME
    expect_2xx(put_manifest(s, s.tag_to_delete, s.data.manifests[3].content))


# 04_management_test.go: Content Management / Setup / "Check how many tags there are before anything gets deleted"
def test_management_setup_count_tags(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    run_only_if(s.run_content_management_setup)
    resp = s.client.do("GET", "/v2/<name>/tags/list")
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    body = json.loads(resp.content)  # Expect(json.Unmarshal(jsonData, tagList)).To(BeNil())
    expect(isinstance(body, dict), resp, "err = json.Unmarshal(jsonData, tagList); Expect(err).To(BeNil())")
    s.mgmt_num_tags = len(tag_list(resp))


# 04_management_test.go: Content Management / Manifest delete /
#   "DELETE request to manifest tag should return 202, unless tag deletion is disallowed (400/405)"
def test_management_delete_tag_202(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    resp = s.client.do("DELETE", "/v2/<name>/manifests/<reference>", reference=s.tag_to_delete)
    expect(resp.status_code in {400, 202, 405}, resp,
           "Expect(resp.StatusCode()).To(SatisfyAny(Equal(400), Equal(202), Equal(405)))")
    if resp.status_code == 400:
        codes = error_codes(resp)
        expect(bool(codes), resp, "Expect(errorResponses).ToNot(BeEmpty())")
        expect(codes[0] == "UNSUPPORTED", resp, "Expect(errorResponses[0].Code).To(Equal(errorCodes[UNSUPPORTED]))")


# 04_management_test.go: Content Management / Manifest delete /
#   "DELETE request to manifest (digest) should yield 202 response unless already deleted"
def test_management_delete_manifest_by_digest_202(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    resp = s.client.do("DELETE", "/v2/<name>/manifests/<digest>", digest=s.data.manifests[3].digest)
    expect(resp.status_code in {202, 404}, resp, "Expect(resp.StatusCode()).To(SatisfyAny(Equal(202), Equal(404)))")


# 04_management_test.go: Content Management / Manifest delete /
#   "GET request to deleted manifest URL should yield 404 response, unless delete is disallowed"
def test_management_get_deleted_manifest_404(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    resp = s.client.do("GET", "/v2/<name>/manifests/<digest>", digest=s.data.manifests[3].digest)
    expect(resp.status_code in {404, 200}, resp, "Expect(resp.StatusCode()).To(SatisfyAny(Equal(404), Equal(200)))")


# 04_management_test.go: Content Management / Manifest delete /
#   "GET request to tags list should reflect manifest deletion"
def test_management_tags_list_reflects_deletion(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    resp = s.client.do("GET", "/v2/<name>/tags/list")
    expect(resp.status_code == 200, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusOK))")
    body = json.loads(resp.content)
    expect(isinstance(body, dict), resp, "err = json.Unmarshal(jsonData, tagList); Expect(err).To(BeNil())")
    expect(len(tag_list(resp)) < s.mgmt_num_tags, resp,
           f"Expect(len(tagList.Tags)).To(BeNumerically(\"<\", numTags)) -- numTags={s.mgmt_num_tags}")


# 04_management_test.go: Content Management / Blob delete / "DELETE request to blob URL should yield 202 response"
def test_management_delete_blobs_202(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    run_only_if(s.run_content_management_setup)
    go = "Expect(resp.StatusCode()).To(SatisfyAny(Equal(202), Equal(404), Equal(405)))"
    resp = s.client.do("DELETE", "/v2/<name>/blobs/<digest>", digest=s.data.configs[3].digest)  # config blob
    expect(resp.status_code in {202, 404, 405}, resp, go)
    resp = s.client.do("DELETE", "/v2/<name>/blobs/<digest>", digest=s.data.layer.digest)  # layer blob
    expect(resp.status_code in {202, 404, 405}, resp, go)
    if resp.status_code == 405:
        s.blob_delete_allowed = False


# 04_management_test.go: Content Management / Blob delete / "GET request to deleted blob URL should yield 404 response"
def test_management_get_deleted_blob_404(s: Suite) -> None:
    s.skip_if_disabled(CONTENT_MANAGEMENT)
    run_only_if(s.run_content_management_setup)
    run_only_if(s.blob_delete_allowed)
    resp = s.client.do("GET", "/v2/<name>/blobs/<digest>", digest=s.data.configs[3].digest)
    expect(resp.status_code == 404, resp, "Expect(resp.StatusCode()).To(Equal(http.StatusNotFound))")
