"""Bad input gets a clear 4xx, never a 500, never a hang (DESIGN.md, invariant 5).

Hypothesis generates requests under /v2/ — names that look like endpoints, `..`, percent
escapes, unicode, huge lengths; every method; odd Content-Type, Content-Range, Range and Accept
headers; n / last / digest / mount / from queries — plus manifest bodies (random JSON,
near-valid manifests with mutated fields, wrong types, huge numbers, deep nesting) and upload
steps with inconsistent ranges and digests. Every request must be answered within TIMEOUT with a
status below 500; against dockyard, every 4xx (but HEAD) must carry the OCI error envelope with a
code from SPEC.md §4.

dockyard authorizes every request before any handler runs, so most fuzzed requests carry the
system admin's Basic credentials (they must reach the handlers to test them); the rest carry a
bearer token for the fuzz repository only, no credentials, wrong ones or malformed ones, and must
get a clean 401/403/429 like any other bad input. Manifest bodies and upload steps always go as the
admin. The fuzz server allows unlimited failed logins: wrong passwords would otherwise lock the
admin out (per user and per client address, all 127.0.0.1 here) and stop the rest of the run at
the guard.

Each test runs twice: on SQLite with the filesystem driver, and on PostgreSQL with the S3 driver
(a private Ceph): PostgreSQL refuses what SQLite lets through (a value longer than its column, a
NUL character), and S3 has its own limits.

Requests go through httpcore, not httpx, so request targets reach the server byte for byte
(httpx would normalise `..` away). With CI=true the examples are derandomised; with
DOCKYARD_STRESS set (`make stress`) ten times as many are tried.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpcore
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.support import backends, ocihttp
from tests.support.reference import RegistryProcess, is_dockyard, registry_process
from tests.support.server import ADMIN_AUTH, ServerProcess

TIMEOUT = 10.0
IN_CI = os.environ.get("CI") == "true"
EXAMPLES_FACTOR = 10 if os.environ.get("DOCKYARD_STRESS") else 1  # `make stress` searches longer
# Every test runs on SQLite with the filesystem, and again on PostgreSQL with S3 (Ceph).
BACKENDS = ("sqlite-filesystem", "postgresql-s3")
REPO = "fuzz/base"
CONFIG_BYTES = ocihttp.config_blob("fuzz")
LAYER_BYTES = b"fuzz layer, long enough for ranges to land inside it"
KNOWN_DIGESTS = (ocihttp.sha256_digest(CONFIG_BYTES), ocihttp.sha256_digest(LAYER_BYTES))
# Failed logins the fuzz server tolerates per window: in effect no limit (see the module docstring).
NO_LOGIN_LIMIT = {"DOCKYARD_AUTH__LOGIN_FAILURE_LIMIT": "1000000000",
                  "DOCKYARD_AUTH__LOGIN_FAILURE_ADDRESS_LIMIT": "1000000000"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ADMIN = {"Authorization": basic(*ADMIN_AUTH)}

pytestmark = pytest.mark.e2e


def fuzz_settings(max_examples: int) -> settings:
    """Bounded, deadline-free settings; derandomised in CI."""
    return settings(
        max_examples=max_examples * EXAMPLES_FACTOR,
        deadline=None,
        derandomize=IN_CI,
        database=None if IN_CI else DirectoryBasedExampleDatabase(".hypothesis/examples"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.large_base_example],
    )


# -- the server and a raw HTTP client ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Reply:
    """One response, read whole."""

    method: str
    target: bytes
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Base:
    """A repository holding one config and one layer, and a valid manifest over them."""

    config: ocihttp.Descriptor
    layer: ocihttp.Descriptor
    manifest: dict[str, Any]

    def __repr__(self) -> str:
        return f"Base({REPO})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # short Hypothesis reports
        printer.text(repr(self))


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """The fuzz server, on each backend in turn (PostgreSQL enforces column sizes SQLite ignores)."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    if request.param == "sqlite-filesystem":
        process = registry_process(data_dir, workers=2, env=NO_LOGIN_LIMIT).start()
        yield process
        process.stop()
        return
    if not is_dockyard():
        pytest.skip("the reference registry runs on its own filesystem storage only")
    with backends.postgres_database() as url, backends.s3_prefix("fuzz") as (endpoint, prefix):
        env = {**NO_LOGIN_LIMIT, "DOCKYARD_DATABASE__URL": url, **backends.s3_env(endpoint, prefix)}
        server_process = ServerProcess(data_dir=data_dir, workers=2, env=env).start()
        try:
            yield server_process
        finally:
            server_process.stop()


@pytest.fixture(scope="module")
def bearer(server: RegistryProcess) -> str:
    """`Authorization: Bearer` with the admin's token for REPO and the catalog (Basic where no /token)."""
    answer = httpx.get(f"{server.url}/token", auth=ADMIN_AUTH, timeout=TIMEOUT, params=[
        ("service", "dockyard"), ("scope", f"repository:{REPO}:pull,push,delete"), ("scope", "registry:catalog:*")])
    if not is_dockyard() and answer.status_code == 404:
        return ADMIN["Authorization"]
    assert answer.status_code == 200, answer.text
    return f"Bearer {answer.json()['token']}"


@pytest.fixture(scope="module")
def pool() -> Iterator[httpcore.ConnectionPool]:
    with httpcore.ConnectionPool(max_connections=4) as connections:
        yield connections


@pytest.fixture(scope="module")
def base(server: RegistryProcess) -> Base:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        ocihttp.push_blob_monolithic(client, REPO, CONFIG_BYTES)
        ocihttp.push_blob_monolithic(client, REPO, LAYER_BYTES)
        config = ocihttp.Descriptor.of(ocihttp.OCI_CONFIG, CONFIG_BYTES)
        layer = ocihttp.Descriptor.of(ocihttp.OCI_LAYER, LAYER_BYTES)
        manifest = json.loads(ocihttp.image_manifest(config, [layer]))
        ocihttp.push_manifest(client, REPO, "latest", json.dumps(manifest).encode())
    return Base(config, layer, manifest)


def send(pool: httpcore.ConnectionPool, url: str, method: str, target: bytes,
         headers: Mapping[str, str] | None = None, body: bytes = b"") -> Reply:
    """Send one request with `target` exactly as given; fail on a hang or a dropped connection.

    A dropped or reset connection is retried once: a server that answers early (413 on a big
    body) and closes without reading the rest races its answer against the kernel's RST, which
    loses the answer now and then. A crash or a deliberate drop happens again and fails.
    """
    origin = httpx.URL(url)
    request_url = httpcore.URL(scheme=b"http", host=origin.host.encode(), port=origin.port,
                               target=target)
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), TIMEOUT)
    for attempt in (1, 2):
        try:
            response = pool.request(method.encode(), request_url, headers=list((headers or {}).items()),
                                    content=body, extensions={"timeout": timeouts})
            break
        except httpcore.TimeoutException as exc:
            pytest.fail(f"{method} {target[:300]!r}: no answer within {TIMEOUT}s ({exc!r})")
        except (httpcore.ReadError, httpcore.WriteError, httpcore.RemoteProtocolError) as exc:
            if attempt == 2:
                pytest.fail(f"{method} {target[:300]!r}: connection dropped twice without an "
                            f"answer ({exc!r})")
    return Reply(method, target, response.status,
                 {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers},
                 response.content)


def assert_well_behaved(reply: Reply) -> None:
    """No 5xx; against dockyard, a 4xx body is the OCI error envelope with a known code."""
    what = f"{reply.method} {reply.target[:300]!r} -> {reply.status} {reply.body[:300]!r}"
    if reply.status >= 500:
        pytest.fail(what)
    if not (400 <= reply.status < 500) or reply.method == "HEAD" or not is_dockyard():
        return
    problem = envelope_problem(reply.body)
    if problem:
        pytest.fail(f"{what}: {problem}")


def envelope_problem(body: bytes) -> str | None:
    """What is wrong with `body` as an OCI error envelope, or None."""
    try:
        document = json.loads(body)
    except ValueError:
        return "a 4xx body must be the OCI error JSON"
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors:
        return "no 'errors' list"
    for error in errors:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return "an error without a message"
        if error.get("code") not in ocihttp.OCI_ERROR_CODES:
            return f"code {error.get('code')!r} is not in SPEC.md §4"
    return None


# -- strategies: requests ---------------------------------------------------------------------

def percent(text: str) -> str:
    return quote(text, safe="")


ENDPOINT_WORDS = ("blobs", "manifests", "tags", "list", "uploads", "referrers", "_catalog", "v2")
segment = st.one_of(
    st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True),
    st.sampled_from(ENDPOINT_WORDS),
    st.sampled_from(("..", ".", "", "%2e%2e", "%2E", "%2F", "%00", "%zz", "%", "%c0%af", "~", "A")),
    st.text(min_size=1, max_size=12).map(percent),
    st.integers(100, 9000).map(lambda n: "a" * n),
)
name = st.one_of(st.just(REPO), st.lists(segment, min_size=1, max_size=6).map("/".join))
hexes = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=140)
digest_like = st.one_of(
    st.sampled_from(KNOWN_DIGESTS),
    st.builds(lambda h: f"sha256:{h}", hexes),
    st.builds(lambda h: f"sha512:{h}", hexes),
    st.sampled_from(("sha256:", ":", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + "0" * 64,
                     ocihttp.sha256_digest(b""), "SHA256:" + "a" * 64, "sha256:" + "a" * 65)),
    st.text(max_size=80).map(percent),
)
reference = st.one_of(digest_like, st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,140}", fullmatch=True),
                      st.text(max_size=40).map(percent))
tail = st.one_of(
    st.builds(lambda d: f"/blobs/{d}", digest_like),
    st.builds(lambda r: f"/manifests/{r}", reference),
    st.just("/tags/list"),
    st.just("/blobs/uploads/"),
    st.builds(lambda u: f"/blobs/uploads/{u}", st.one_of(st.uuids().map(str), st.text(max_size=40).map(percent))),
    st.builds(lambda d: f"/referrers/{d}", digest_like),
    st.just(""),
    st.just("/"),
)
query_value = st.one_of(
    st.integers(-(10**30), 10**30).map(str), digest_like, name, st.text(max_size=30).map(percent),
    st.just(""),
)
query = st.dictionaries(
    st.sampled_from(("n", "last", "digest", "mount", "from", "artifactType", "tag", "_state")),
    query_value, max_size=4,
).map(lambda q: "?" + "&".join(f"{k}={v}" for k, v in q.items()) if q else "")
path = st.one_of(
    st.builds(lambda n, t, q: f"/v2/{n}{t}{q}", name, tail, query),
    st.builds(lambda q: f"/v2/_catalog{q}", query),
    st.builds(lambda q: f"/v2/{q}", query),
)
header_text = st.text(alphabet=string.ascii_letters + string.digits + " ,;=/*+.-_:", max_size=60).map(str.strip)
media_type = st.sampled_from((ocihttp.OCI_MANIFEST, ocihttp.OCI_INDEX, ocihttp.DOCKER_MANIFEST,
                              ocihttp.DOCKER_MANIFEST_LIST, "application/json",
                              "application/vnd.docker.distribution.manifest.v1+prettyjws",
                              "application/octet-stream", "text/plain", "*/*", ""))
byte_range = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", st.integers(-5, 10**20), st.integers(-5, 10**20)),
    st.builds(lambda a, b: f"bytes {a}-{b}/*", st.integers(0, 100), st.integers(0, 100)),
    header_text,
)
headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.one_of(media_type, header_text),
    "Content-Range": byte_range,
    "Range": st.one_of(byte_range.map(lambda r: f"bytes={r}"),
                       st.just("bytes=0-0,5-9"), st.just("bytes=-1"), header_text),
    "Accept": st.one_of(media_type, header_text,
                        st.lists(media_type, max_size=4).map(lambda types: ", ".join(types).strip(" ,"))),
})
BEARER = "<the admin's bearer token for REPO>"  # replaced by the `bearer` fixture's header
odd_authorization = st.one_of(
    st.none(),  # anonymous
    st.builds(basic, st.sampled_from(("admin", "nobody", "robot$fuzz+ci", "", "a:b")), st.text(max_size=20)),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=:. -", max_size=80).map("Basic ".__add__),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.=", max_size=400).map("Bearer ".__add__),
    st.sampled_from(("Bearer", "Basic", "bearer", "Negotiate abc", "Basic Og==", "Bearer a.b.c",
                     "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.")),
    header_text,
)


@st.composite
def authorization(draw: st.DrawFn) -> str | None:
    """Mostly the admin's Basic credentials, now and then the admin's token for REPO, or odd ones."""
    roll = draw(st.integers(0, 9))
    if roll < 7:
        return ADMIN["Authorization"]
    if roll == 7:
        return BEARER
    return draw(odd_authorization)


def with_authorization(request_headers: dict[str, str], value: str | None, bearer: str) -> dict[str, str]:
    if value is None:
        return request_headers
    # h11 sends no value with whitespace at either end ("Basic " goes out as "Basic")
    return {**request_headers, "Authorization": bearer if value == BEARER else value.strip()}


method = st.sampled_from(("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO"))
small_body = st.one_of(st.just(b""), st.binary(max_size=256), st.just(b'{"schemaVersion":2}'))


# -- strategies: manifest bodies --------------------------------------------------------------

json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
HUGE_LITERAL = "<a 5001-digit integer>"  # json.dumps refuses ints that long; spliced in as text
huge_number = st.sampled_from((10**30, -1, -(2**63), 2**63, 2**64, 1e308, 0.5, -0.0, 10**400, HUGE_LITERAL))
FIELDS = (("schemaVersion",), ("mediaType",), ("config",), ("config", "digest"), ("config", "size"),
          ("config", "mediaType"), ("layers",), ("layers", 0), ("layers", 0, "digest"),
          ("layers", 0, "size"), ("layers", 0, "urls"), ("layers", 0, "mediaType"), ("manifests",),
          ("subject",), ("subject", "digest"), ("annotations",), ("artifactType",))
DELETE = object()
mutation = st.tuples(st.sampled_from(FIELDS),
                     st.one_of(json_value, huge_number, digest_like, st.just(DELETE),
                               st.just(["ftp://example.com/x", "file:///etc/passwd"])))


def mutate(document: dict[str, Any], field_path: tuple[str | int, ...], value: object) -> None:
    """Set (or delete, for DELETE) the field at `field_path`, creating parents as needed."""
    node: Any = document
    for key in field_path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {} if isinstance(key, str) else [])
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return
    last = field_path[-1]
    if isinstance(node, dict):
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node) and value is not DELETE:
        node[last] = value


def deeply_nested(depth: int, as_object: bool) -> bytes:
    if as_object:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


RAW_BODIES = (b"", b"null", b"[]", b"NaN", b'{"schemaVersion":2,"schemaVersion":1}', b"\xef\xbb\xbf{}",
              b"\xff\xfe{}", b'{"schemaVersion": 1e999}', b'{"a":"\\ud800"}', b"{" * 3,
              b'{"schemaVersion":2,"mediaType":"' + ocihttp.OCI_MANIFEST.encode() + b'","layers":[],"manifests":[]}')


@st.composite
def manifest_body(draw: st.DrawFn, base_manifest: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(("mutated", "random", "nested", "raw", "oversized")))
    if kind == "random":
        return json.dumps(draw(json_value)).encode()
    if kind == "nested":
        return deeply_nested(draw(st.integers(1, 200_000)), draw(st.booleans()))
    if kind == "raw":
        return draw(st.sampled_from(RAW_BODIES))
    document = json.loads(json.dumps(base_manifest))
    if kind == "oversized":
        document["annotations"] = {"pad": "x" * draw(st.integers(4 << 20, 5 << 20))}
    for field_path, value in draw(st.lists(mutation, max_size=3)):
        mutate(document, field_path, value)
    return json.dumps(document).encode().replace(f'"{HUGE_LITERAL}"'.encode(), b"1" + b"0" * 5000)


# -- tests ------------------------------------------------------------------------------------

@fuzz_settings(max_examples=220)
@given(method=method, target=path, request_headers=headers, body=small_body, auth=authorization())
def test_any_request_under_v2_gets_an_answer_below_500(
    server: RegistryProcess, pool: httpcore.ConnectionPool, base: Base, bearer: str,
    method: str, target: str, request_headers: dict[str, str], body: bytes, auth: str | None,
) -> None:
    reply = send(pool, server.url, method, target.encode(), with_authorization(request_headers, auth, bearer),
                 b"" if method in ("GET", "HEAD") else body)
    assert_well_behaved(reply)


@fuzz_settings(max_examples=150)
@given(data=st.data(), content_type=media_type, tag=st.sampled_from(("latest", "fuzzed", "by-digest")))
def test_any_manifest_body_gets_an_answer_below_500(
    server: RegistryProcess, pool: httpcore.ConnectionPool, base: Base,
    data: st.DataObject, content_type: str, tag: str,
) -> None:
    body = data.draw(manifest_body(base.manifest), label="body")
    ref = ocihttp.sha256_digest(body) if tag == "by-digest" else tag
    reply = send(pool, server.url, "PUT", f"/v2/{REPO}/manifests/{ref}".encode(),
                 {"Content-Type": content_type, **ADMIN}, body)
    assert_well_behaved(reply)
    if reply.status == 201:
        check = send(pool, server.url, "GET", f"/v2/{REPO}/manifests/{ocihttp.sha256_digest(body)}".encode(),
                     {"Accept": f"{ocihttp.MANIFEST_ACCEPT}, */*", **ADMIN})
        assert (check.status, check.body) == (200, body), "an accepted manifest must read back as pushed"


@fuzz_settings(max_examples=100)
@given(
    chunks=st.lists(st.tuples(st.one_of(byte_range, st.none()), st.binary(max_size=64)), max_size=3),
    final_digest=st.one_of(digest_like, st.none()),
    final_body=st.binary(max_size=64),
    method_after=st.sampled_from(("GET", "DELETE", "PUT", "PATCH")),
)
def test_any_upload_sequence_gets_answers_below_500(
    server: RegistryProcess, pool: httpcore.ConnectionPool,
    chunks: list[tuple[str | None, bytes]], final_digest: str | None, final_body: bytes,
    method_after: str,
) -> None:
    start = send(pool, server.url, "POST", f"/v2/{REPO}/blobs/uploads/".encode(), ADMIN)
    assert start.status == 202, start
    location = httpx.URL(start.headers["location"])
    target = location.raw_path
    for content_range, chunk in chunks:
        patch_headers = {"Content-Type": "application/octet-stream", **ADMIN}
        if content_range is not None:
            patch_headers["Content-Range"] = content_range
        assert_well_behaved(send(pool, server.url, "PATCH", target, patch_headers, chunk))
    final = location if final_digest is None else location.copy_merge_params({"digest": final_digest})
    put = send(pool, server.url, "PUT", final.raw_path, {"Content-Type": "application/octet-stream", **ADMIN},
               final_body)
    assert_well_behaved(put)
    assert_well_behaved(send(pool, server.url, method_after, target, ADMIN))
    if put.status == 201 and final_digest is not None:
        pulled = send(pool, server.url, "GET", f"/v2/{REPO}/blobs/{final_digest}".encode(), ADMIN)
        served = (pulled.status, ocihttp.sha256_digest(pulled.body))
        assert served == (200, final_digest), f"upload acknowledged as {final_digest}, serves {served}"


def send_truncated(url: str, method: str, target: str, content_type: str, body: bytes) -> int | None:
    """Promise len(body) + 1 MiB bytes, send `body`, close our side; the status, or None on close."""
    origin = httpx.URL(url)
    head = (f"{method} {target} HTTP/1.1\r\nHost: {origin.host}\r\nContent-Type: {content_type}\r\n"
            f"Authorization: {ADMIN['Authorization']}\r\nContent-Length: {len(body) + (1 << 20)}\r\n\r\n")
    with socket.create_connection((origin.host, origin.port or 80), timeout=TIMEOUT) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):  # ends when the server closes; times out on a hang
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer else None


@pytest.mark.parametrize("kind", ["manifest", "blob"])
def test_truncated_request_body_is_refused_without_a_5xx_or_a_hang(
    server: RegistryProcess, base: Base, kind: str,
) -> None:
    """A client that promises more body than it sends, then closes, must not get a 201 or a 5xx."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        if kind == "manifest":
            body = ocihttp.image_manifest(base.config, [base.layer], {"truncated": "yes"})
            target = f"/v2/{REPO}/manifests/truncated"
            status = send_truncated(server.url, "PUT", target, ocihttp.OCI_MANIFEST, body)
            stored: object = ocihttp.get_manifest(client, REPO, "truncated")
        else:
            body = b"0123456789"
            target = f"/v2/{REPO}/blobs/uploads/?digest={ocihttp.sha256_digest(body)}"
            status = send_truncated(server.url, "POST", target, "application/octet-stream", body)
            stored = ocihttp.get_blob(client, REPO, ocihttp.sha256_digest(body))
        assert status is None or status < 500, f"{target} with a truncated body -> {status}"
        assert status != 201, f"{target}: a truncated body was acknowledged"
        assert stored is None, f"{target}: a truncated body was stored ({status})"
        assert client.get("/v2/").status_code == 200


def test_unknown_things_under_v2_answer_with_oci_errors(
    server: RegistryProcess, pool: httpcore.ConnectionPool,
) -> None:
    """Fixed probes for the error envelope, so a regression shows without a random search."""
    probes = [
        ("GET", f"/v2/{REPO}/blobs/{ocihttp.sha256_digest(b'absent')}", 404, "BLOB_UNKNOWN"),
        ("GET", f"/v2/{REPO}/manifests/absent", 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/no/such/repo/tags/list", 404, "NAME_UNKNOWN"),
        ("PUT", "/v2/UPPER/manifests/latest", 400, "NAME_INVALID"),
        ("PATCH", f"/v2/{REPO}/blobs/uploads/00000000-0000-0000-0000-000000000000", 404, "BLOB_UPLOAD_UNKNOWN"),
        ("GET", f"/v2/{REPO}/tags/list?n=abc", 400, None),
        ("GET", "/v2/_catalog?n=-1", 400, None),
        # Names over distribution's 255 characters, where a push would create the project first.
        ("POST", f"/v2/{'x' * 256}/blobs/uploads/", 400, "NAME_INVALID"),
        ("PUT", f"/v2/{'x' * 200}/{'y' * 55}/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/_catalog?last=%00", 400, "PAGINATION_NUMBER_INVALID"),
    ]
    for verb, target, status, code in probes:
        reply = send(pool, server.url, verb, target.encode(), {"Content-Type": ocihttp.OCI_MANIFEST, **ADMIN}, b"{}")
        assert_well_behaved(reply)
        if is_dockyard():
            assert reply.status == status, f"{verb} {target}: expected {status}, got {reply.status}"
            assert code is None or code in {e["code"] for e in json.loads(reply.body)["errors"]}, (
                f"{verb} {target}: expected {code}, got {reply.body[:300]!r}")
    # Without valid credentials the guard answers first: 401, the OCI envelope and a challenge.
    refused = [({}, None), ({"Authorization": "Bearer not-a-token"}, 'error="invalid_token"'),
               ({"Authorization": "Basic %%%"}, None)]
    for extra, challenge_part in refused:
        reply = send(pool, server.url, "GET", f"/v2/{REPO}/manifests/latest".encode(), extra)
        assert_well_behaved(reply)
        if is_dockyard():
            assert reply.status == 401, f"GET with {extra}: expected 401, got {reply.status} {reply.body[:300]!r}"
            assert "UNAUTHORIZED" in {e["code"] for e in json.loads(reply.body)["errors"]}, reply.body[:300]
            assert reply.headers.get("www-authenticate", "").startswith("Bearer realm="), reply.headers
            assert challenge_part is None or challenge_part in reply.headers["www-authenticate"], reply.headers
