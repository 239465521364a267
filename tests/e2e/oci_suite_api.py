"""api.go, errors.go and results.go of the OCI distribution-spec conformance suite: the HTTP calls, their
expectations and the problems they report, as both ported generations of the suite make them.

Source: github.com/opencontainers/distribution-spec, folder ``conformance/`` (commits 4fc4ecbe / 216c04cd). Used by
``test_oci_conformance_next.py`` (the runner generation) and ``test_oci_conformance_numbered.py`` (the numbered
Ginkgo files).

Requests are made the way Go's ``net/http`` makes them: a body set without a length (``apiWithBody`` alone: manifest
PUTs, streamed PATCHes) goes out with ``Transfer-Encoding: chunked``; ``apiWithContentLength`` sets
``Content-Length``; a POST/PUT/PATCH without a body carries ``Content-Length: 0``; two ``Accept`` header lines are two
``Accept`` header lines.

Authentication is the suite's own. dockyard authorizes every request, so both generations log in, by default as
dockyard's system admin (``tests.support.server.ADMIN_AUTH``), the way the independent suite is run;
``OCI_USERNAME`` / ``OCI_PASSWORD`` override that (against the reference registry they default to empty).
The runner generation is ``api.go``'s ``Do`` (commit 216c04cd): with ``OCI_CACHE_AUTH`` (default on) a request
first carries the ``Authorization`` cached for its host, repository and kind of access (``authCacheKey``: pull for
GET/HEAD, push for POST/PATCH/PUT, else the method); on a 401 ``getAuthHeader`` answers the challenge (a Bearer one
by a GET to the realm with its ``service`` and ``scope`` and Basic credentials, which must answer 200 with ``token``
or ``access_token``; a Basic one with Basic credentials), caches it and the request is sent once more with its body.
A failure there fails the call, as an error of Go's ``Do`` does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from tests.e2e.oci_suite_data import CHUNK_MIN, EMPTY_DIGEST, MT_OCI_IMAGE, MT_OCI_INDEX, MT_OCTET_STREAM, TestData, b64
from tests.support.reference import RegistryProcess, is_dockyard, registry_process
from tests.support.server import ADMIN_AUTH

# --------------------------------------------------------------------------------------------------------------------
# errors.go / results.go: problems, statuses, outcomes
# --------------------------------------------------------------------------------------------------------------------

# kinds: "plain" (an ordinary error), "fail" (errAPITestFail), "unsupported" (errRegUnsupported),
# "error" (errAPITestError), "skip" (errAPITestSkip)


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str


Errs = list[Problem]


def err(message: str, kind: str = "plain") -> Errs:
    return [Problem(kind, message)]


def wrap(prefix: str, errs: Errs) -> Errs:
    return [Problem(p.kind, f"{prefix}: {p.message}" if p.message else "") for p in errs]


def marked(errs: Errs, kind: str) -> Errs:
    """fmt.Errorf("%.0w%w", errAPITestFail, err): the same error, now also matching errAPITestFail."""
    return [*errs, Problem(kind, "")] if errs else errs


def has(errs: Errs, kind: str) -> bool:
    return any(p.kind == kind for p in errs)


def messages(errs: Errs) -> list[str]:
    return [p.message for p in errs if p.message]


# results.go status order: only ever raised
STATUS_ORDER = ["Unknown", "Disabled", "Skip", "Pass", "FAIL", "Error"]


def raise_status(cur: str, new: str) -> str:
    return new if STATUS_ORDER.index(new) > STATUS_ORDER.index(cur) else cur


@dataclass
class Outcome:
    path: str
    status: str
    errs: Errs


# state.go API names
API_TAG_LIST = "Tag listing"
API_TAG_DELETE = "Tag delete"
API_TAG_DELETE_ATOMIC = "Tag delete atomic"
API_BLOB_CANCEL = "Blob upload cancel"
API_BLOB_PUSH = "Blob push"
API_BLOB_POST_ONLY = "Blob post only"
API_BLOB_POST_PUT = "Blob post put"
API_BLOB_CHUNKED = "Blob chunked"
API_BLOB_STREAM = "Blob streaming"
API_BLOB_MOUNT = "Blob mount"
API_BLOB_MOUNT_ANON = "Blob anonymous mount"
API_BLOB_GET = "Blob get"
API_BLOB_GET_RANGE = "Blob get range"
API_BLOB_HEAD = "Blob head"
API_BLOB_DELETE = "Blob delete"
API_BLOB_DELETE_ATOMIC = "Blob delete atomic"
API_MANIFEST_PUT_DIGEST = "Manifest put by digest"
API_MANIFEST_PUT_TAG = "Manifest put by tag"
API_MANIFEST_PUT_TAG_PARAM = "Manifest put with tag params"
API_MANIFEST_PUT_SUBJECT = "Manifest put with subject"
API_MANIFEST_GET_DIGEST = "Manifest get by digest"
API_MANIFEST_GET_TAG = "Manifest get by tag"
API_MANIFEST_HEAD_DIGEST = "Manifest head by digest"
API_MANIFEST_HEAD_TAG = "Manifest head by tag"
API_MANIFEST_DELETE = "Manifest delete"
API_MANIFEST_DELETE_ATOMIC = "Manifest delete atomic"
API_REFERRERS = "Referrers"
API_PING = "Ping"

# --------------------------------------------------------------------------------------------------------------------
# api.go: the HTTP calls and their expectations
# --------------------------------------------------------------------------------------------------------------------


def detect_media_type(body: bytes) -> str:
    """api.go detectMediaType: the mediaType field, the image manifest type when absent."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return MT_OCI_IMAGE
    if isinstance(parsed, dict) and isinstance(parsed.get("mediaType"), str):
        return str(parsed["mediaType"])
    return MT_OCI_IMAGE


def detect_subject(body: bytes) -> str | None:
    """api.go detectSubject: the subject's digest, if the manifest has one."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    subject = parsed.get("subject") if isinstance(parsed, dict) else None
    return str(subject.get("digest", "")) if isinstance(subject, dict) else None


def show(resp: httpx.Response) -> str:
    """The request and the answer, for failure messages."""
    req = resp.request
    interesting = ("content-type", "content-length", "content-range", "range", "location", "docker-content-digest",
                   "oci-subject", "oci-tag", "oci-filters-applied", "oci-chunk-min-length", "transfer-encoding")
    hdrs = "; ".join(f"{k}: {v}" for k, v in resp.headers.multi_items() if k.lower() in interesting)
    textual = any(t in resp.headers.get("Content-Type", "") for t in ("json", "text"))
    body = resp.content[:300].decode(errors="replace") if resp.content and textual else (
        f"<{len(resp.content)} bytes>" if resp.content else "")
    sent = "; ".join(f"{k}: {v}" for k, v in req.headers.multi_items()
                     if k.lower() in ("content-type", "content-length", "content-range", "range",
                                      "transfer-encoding", "accept"))
    return f"[{req.method} {req.url} ({sent}) -> {resp.status_code} ({hdrs}) {body!r}]"


@contextmanager
def registry_and_client(data_dir: Path) -> Iterator[tuple[RegistryProcess, httpx.Client]]:
    """The registry under test (dockyard, or distribution with DOCKYARD_E2E_TARGET) on `data_dir`, and a client
    like Go's http.DefaultClient (follows redirects, asks for gzip); both closed on exit, the client first."""
    headers = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"}
    server = registry_process(data_dir).start()
    try:
        with httpx.Client(timeout=120.0, follow_redirects=True, headers=headers) as client:
            yield server, client
    finally:
        server.stop()


def go_do(client: httpx.Client, method: str, url: str, headers: list[tuple[str, str]],
          content: bytes | list[bytes] | None) -> httpx.Response:
    """client.Do: a transport failure is an error of that request, not the end of the run. A response whose body
    breaks off keeps its status and headers (Go's apiExpectBody then fails with "failed to read body")."""
    request = client.build_request(method, url, headers=headers, content=content)
    try:
        resp = client.send(request, stream=True)
    except httpx.TransportError as e:
        return httpx.Response(599, request=request, extensions={"transport_error": repr(e)})
    try:
        resp.read()
        return resp
    except httpx.TransportError as e:
        return httpx.Response(resp.status_code, headers=resp.headers, request=request,
                              extensions={"transport_error": f"failed to read body: {e!r}"})
    finally:
        resp.close()


def failed(resp: httpx.Response, error: str) -> httpx.Response:
    """`resp` marked as a failed call (an error returned by Go's Do), so every expectation on it fails."""
    return httpx.Response(resp.status_code, headers=resp.headers, content=resp.content, request=resp.request,
                          extensions={"transport_error": error})


# --- authentication: the suite answers a 401 with the credentials it was given ----------------------------------

@dataclass(frozen=True)
class Credentials:
    """config.go LoginUser / LoginPass (OCI_USERNAME / OCI_PASSWORD), setup.go's reggie.WithUsernamePassword."""

    user: str
    password: str

    @classmethod
    def from_env(cls) -> Credentials:
        """OCI_USERNAME / OCI_PASSWORD; unset, dockyard's system admin (the reference registry needs none)."""
        default = ADMIN_AUTH if is_dockyard() else ("", "")
        return cls(os.environ.get("OCI_USERNAME", default[0]), os.environ.get("OCI_PASSWORD", default[1]))

    def basic(self) -> str:
        return "Basic " + b64(f"{self.user}:{self.password}".encode())


# api.go parseAuthHeader / reggie auth.go: the scheme is the last "bearer" or "basic" in the header, then the
# key="value" pairs ([a-zA-z] as written, which also takes [\]^_` between the cases).
AUTH_SCHEME = re.compile(r"(?i).*(bearer|basic).*", re.DOTALL)
AUTH_PARAMS = re.compile(r'([a-zA-z]+)="(.+?)"')


def parse_challenge(resp: httpx.Response) -> tuple[str, dict[str, str]]:
    """The challenge's scheme (as written) and its parameters (keys lowercased, the first value of each)."""
    challenge = resp.headers.get("WWW-Authenticate", "")
    params: dict[str, str] = {}
    for key, value in AUTH_PARAMS.findall(challenge):
        params[key.lower()] = value  # Go keeps the last value of a repeated key, as does this
    return AUTH_SCHEME.sub(r"\1", challenge), params


# api.go reRepo / authCacheKey
RE_REPO = re.compile(r"/v2/"
                     r"([a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*)"
                     r"(/(?:blobs|manifests|tags|referrers)/(?:[^/]+)|/blobs/uploads/[^/]*)")


def auth_cache_key(method: str, url: str) -> str | None:
    """host:repo:pull|push|METHOD; None where Go returns "could not extract repo from path"."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    repo = ""
    if path != "/v2/":
        found = RE_REPO.search(path)
        if found is None:
            return None
        repo = found.group(1)
    kind = {"GET": "pull", "HEAD": "pull", "POST": "push", "PATCH": "push", "PUT": "push"}.get(method, method)
    return ":".join((parts.netloc, repo, kind))


def expect_status(resp: httpx.Response, *codes: int) -> Errs:
    if "transport_error" in resp.extensions:
        return err(f"request failed: {resp.extensions['transport_error']} {show(resp)}")
    if resp.status_code in codes:
        return []
    return err(f"unexpected status code, expected one of {list(codes)}, received {resp.status_code} {show(resp)}")


def expect_header(resp: httpx.Response, key: str, val: str) -> Errs:
    """apiExpectHeader: present (val "") or one of the header lines equal to val."""
    cur = resp.headers.get_list(key)
    if val == "":
        return [] if cur else err(f"missing header {key!r} {show(resp)}")
    if val in cur:
        return []
    return err(f"header value mismatch for {key!r}, expected {val!r}, received {cur!r} {show(resp)}")


def expect_body(resp: httpx.Response, body: bytes) -> Errs:
    if "transport_error" in resp.extensions:
        return err(f"{resp.extensions['transport_error']} {show(resp)}")
    if resp.content == body:
        return []
    return err(f"body contents mismatch, expected {len(body)} bytes {body[:80]!r}, "
               f"received {len(resp.content)} bytes {show(resp)}")


def set_query(url: str, key: str, value: str) -> str:
    """u.Query(); qa.Set(key, value); u.RawQuery = qa.Encode() (keys sorted, values escaped)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != key]
    query.append((key, value))
    query.sort(key=lambda kv: kv[0])
    return urlunsplit(parts._replace(query=urlencode(query)))


def add_query(url: str, key: str, value: str) -> str:
    """apiWithURLParam: params.Add(key, value) then Encode."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (key, value)]
    query.sort(key=lambda kv: kv[0])
    return urlunsplit(parts._replace(query=urlencode(query)))


def resolve(url: str, loc: str) -> str:
    """u.Parse(loc)."""
    return urljoin(url, loc)


def header(resp: httpx.Response, key: str, cur: str) -> str:
    """apiReturnHeader: the new value when the response has one, else the old."""
    return resp.headers.get(key) or cur


class Api:
    """api.go: one method per registry call, returning the problems found (empty when all expectations held)."""

    def __init__(self, client: httpx.Client, registry: str, credentials: Credentials, *,
                 cache_auth: bool = True) -> None:
        self.client = client
        self.registry = registry
        self.watch: dict[str, str] | None = None  # apiReturnHeader passed down through opts (OCI-Chunk-Min-Length)
        self.credentials = credentials
        self.auth_cache: dict[str, str] | None = {} if cache_auth else None  # apiWithAuth(user, pass, cacheAuth)

    def do(self, method: str, url: str, headers: list[tuple[str, str]],
           content: bytes | list[bytes] | None) -> httpx.Response:
        """api.go Do: the cached Authorization if any; on a 401, answer the challenge and send once more."""
        if self.auth_cache is not None:
            key = auth_cache_key(method, url)
            if key is None:
                return httpx.Response(599, request=httpx.Request(method, url), extensions={
                    "transport_error": f"could not extract repo from path (auth cache key of {url})"})
            if key in self.auth_cache:
                headers = [*headers, ("Authorization", self.auth_cache[key])]
        resp = go_do(self.client, method, url, headers, content)
        if resp.status_code != 401:
            return resp
        try:
            auth = self.auth_header(method, url, resp)
        except AssertionError as e:
            return failed(resp, str(e))
        headers = [(k, v) for k, v in headers if k.lower() != "authorization"] + [("Authorization", auth)]
        return go_do(self.client, method, url, headers, content)

    def auth_header(self, method: str, url: str, resp: httpx.Response) -> str:
        """api.go getAuthHeader; raises AssertionError where Go returns an error."""
        key = auth_cache_key(method, url)
        if key is None:
            raise AssertionError(f"could not extract repo from path {url}")
        challenge = resp.headers.get("WWW-Authenticate", "")
        if challenge == "":
            raise AssertionError(f"status code or header invalid for adding auth, status 401, header {challenge}")
        scheme, params = parse_challenge(resp)
        if scheme.lower() == "basic":
            auth = self.credentials.basic()
        elif scheme.lower() == "bearer":
            query = {"service": params.get("service", "")}
            if params.get("scope"):
                query["scope"] = params["scope"]
            token_url = resolve(url, params.get("realm", ""))
            try:
                token_resp = self.client.get(token_url, params=query, headers={"Accept": "application/json"},
                                             auth=(self.credentials.user, self.credentials.password))
            except httpx.TransportError as e:
                raise AssertionError(f"failed to send auth request: {e!r}") from e
            if token_resp.status_code != 200:
                raise AssertionError(f"invalid status on auth request: {token_resp.status_code} {show(token_resp)}")
            try:
                info = json.loads(token_resp.content)
                token = info.get("access_token") or info.get("token") or ""
                if not isinstance(token, str):
                    raise ValueError("the token is not a string")
            except (ValueError, AttributeError) as e:
                raise AssertionError(f"failed to parse auth response: {e} {show(token_resp)}") from e
            auth = f"Bearer {token}"
        else:
            raise AssertionError(f"failed to parse auth header, type={scheme.lower()}: {challenge}")
        if self.auth_cache is not None:
            self.auth_cache[key] = auth
        return auth

    def send(self, method: str, url: str, *, headers: Sequence[tuple[str, str]] = (), body: bytes | None = None,
             length: int | None = None) -> httpx.Response:
        content: bytes | list[bytes] | None
        if body is None:
            content = b"" if method in ("POST", "PUT", "PATCH") else None
        elif length is None:
            content = [body] if body else []  # Go: body with unknown length → Transfer-Encoding: chunked
        else:
            assert length == len(body)
            content = body
        resp = self.do(method, url, list(headers), content)
        if self.watch is not None:
            for key in self.watch:
                self.watch[key] = header(resp, key, self.watch[key])
        return resp

    def url(self, repo: str, tail: str) -> str:
        return f"{self.registry}/v2/{repo}/{tail}"

    @staticmethod
    def verify_digest(resp: httpx.Response | None, dig: str, flags: set[str]) -> Errs:
        dig_header = resp.headers.get("Docker-Content-Digest", "") if resp is not None else ""
        if dig_header == "" and "RequireDigestHeader" in flags:
            return err(f"registry did not return a Docker-Content-Digest header {show(resp) if resp else ''}")
        if dig_header and dig and dig_header != dig:
            return err(f"Docker-Content-Digest header value expected {dig!r}, received {dig_header!r} "
                       f"{show(resp) if resp else ''}")
        return []

    def blob_delete(self, repo: str, dig: str) -> Errs:
        resp = self.send("DELETE", self.url(repo, f"blobs/{dig}"))
        errs = expect_status(resp, 202, 404, 405)
        if errs:
            return wrap("blob delete failed", errs)
        if resp.status_code == 405:
            return err(f"registry returned status 405 {show(resp)}", "unsupported")
        return []

    def blob_get_req(self, repo: str, dig: str, *, headers: Sequence[tuple[str, str]] = ()) -> httpx.Response:
        return self.send("GET", self.url(repo, f"blobs/{dig}"), headers=headers)

    def blob_get_exists_full(self, repo: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        resp = self.blob_get_req(repo, dig)
        errs = expect_status(resp, 200)
        val = td.blobs.get(dig)
        if val is not None and (len(val) > 0 or dig == EMPTY_DIGEST):
            errs += expect_body(resp, val) + expect_header(resp, "Content-Length", str(len(val)))
        return wrap("blob get failed", errs) + self.verify_digest(resp, dig, flags)

    def blob_head_req(self, repo: str, dig: str) -> httpx.Response:
        return self.send("HEAD", self.url(repo, f"blobs/{dig}"))

    def blob_head_exists(self, repo: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        resp = self.blob_head_req(repo, dig)
        errs = expect_status(resp, 200) + expect_body(resp, b"")
        val = td.blobs.get(dig)
        if val is not None and (len(val) > 0 or dig == EMPTY_DIGEST):
            errs += expect_header(resp, "Content-Length", str(len(val)))
        return wrap("blob head failed", errs) + self.verify_digest(resp, dig, flags)

    def blob_mount(self, repo: str, source: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        body = td.blobs[dig]
        u = set_query(self.url(repo, "blobs/uploads/"), "mount", dig)
        if source:
            u = set_query(u, "from", source)
        resp = self.send("POST", u)
        errs = expect_status(resp, 201, 202)
        loc = header(resp, "Location", "")
        if errs:
            return wrap("blob post failed", errs)
        if loc == "":
            return err(f"blob post did not return a location {show(resp)}")
        problems: Errs = []
        if resp.status_code == 202:
            u = set_query(resolve(u, loc), "digest", dig)
            resp = self.send("PUT", u, headers=[("Content-Type", MT_OCTET_STREAM)], body=body, length=len(body))
            errs = expect_status(resp, 201)
            loc = header(resp, "Location", loc)
            if errs:
                return wrap("blob put failed", errs)
            problems += err("registry returned status 202, fell back to blob POST+PUT", "unsupported")
        errs = self.verify_digest(resp, dig, flags)
        if errs:
            return errs
        errs = self.blob_verify_location(u, loc, body)
        if errs:
            return errs
        return problems

    def blob_post_session(self, repo: str, *, content_length: bool = False) -> tuple[str, str, Errs]:
        """POST blobs/uploads/ (with ``Content-Length: 0`` set, apiWithContentLength, when `content_length`), which
        must answer 202 with a Location: (the POST URL, the Location, the problems)."""
        u = self.url(repo, "blobs/uploads/")
        resp = self.send("POST", u, body=b"", length=0) if content_length else self.send("POST", u)
        errs = expect_status(resp, 202)
        loc = header(resp, "Location", "")
        if errs:
            return u, loc, wrap("blob post failed", errs)
        if loc == "":
            return u, loc, err(f"blob post did not return a location {show(resp)}")
        return u, loc, []

    def blob_patch_chunked(self, repo: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        body = td.blobs[dig]
        u = self.url(repo, "blobs/uploads/")
        resp = self.send("POST", u, body=b"", length=0)
        errs = expect_status(resp, 202)
        min_str = header(resp, "OCI-Chunk-Min-Length", "")
        loc = header(resp, "Location", "")
        if errs:
            return wrap("blob post failed", errs)
        chunk_size = len(body) // 3 + 1
        if min_str:
            try:
                minimum = int(min_str)
            except ValueError:
                return err(f"parsing OCI-Chunk-Min-Length size {min_str!r} failed")
            chunk_size = max(chunk_size, minimum)
        chunk_size = max(chunk_size, CHUNK_MIN)
        chunk_size = min(chunk_size, len(body))
        last_byte = -1
        final: httpx.Response | None = None
        while last_byte < len(body) - 1:
            if "OutOfOrderChunks" in flags:
                if loc == "":
                    return err("blob request did not return a location")
                u = resolve(u, loc)
                bad_start = last_byte + 1 + chunk_size
                if bad_start >= len(body):
                    bad_start = 0
                bad_last = min(bad_start + chunk_size - 1, len(body) - 1)
                method = "PATCH"
                if "PutLastChunk" in flags and bad_last == len(body) - 1:
                    method = "PUT"
                    u = set_query(u, "digest", dig)
                chunk = body[bad_start:bad_last + 1]
                resp = self.send(method, u, headers=[("Content-Type", MT_OCTET_STREAM),
                                                     ("Content-Range", f"{bad_start}-{bad_last}")],
                                 body=chunk, length=len(chunk))
                errs = expect_status(resp, 416)
                loc = header(resp, "Location", loc)
                if errs:
                    return wrap("blob out of order chunk", errs)
                resp = self.send("GET", u)
                errs = expect_status(resp, 204)
                loc = header(resp, "Location", loc)
                range_header = header(resp, "Range", "")
                if errs:
                    return wrap("blob chunked upload get request", errs)
                if not range_header.startswith("0-"):
                    return err(f"content-range header is missing the 0- prefix: {range_header!r} {show(resp)}")
                try:
                    range_last = int(range_header[2:])
                except ValueError:
                    return err(f"content-range header could not be parsed: {range_header!r} {show(resp)}")
                if last_byte >= 0 and range_last != last_byte:
                    return err(f"content-range unexpected, received {range_header!r}, expected \"0-{last_byte}\" "
                               f"{show(resp)}")
            if loc == "":
                return err("blob request did not return a location")
            u = resolve(u, loc)
            start = last_byte + 1
            last_byte = min(start + chunk_size - 1, len(body) - 1)
            chunk = body[start:last_byte + 1]
            hdrs = [("Content-Type", MT_OCTET_STREAM), ("Content-Range", f"{start}-{last_byte}")]
            if "PutLastChunk" in flags and last_byte == len(body) - 1:
                u = set_query(u, "digest", dig)
                resp = self.send("PUT", u, headers=hdrs, body=chunk, length=len(chunk))
                if "ExpectBadDigest" in flags:
                    errs = expect_status(resp, 400)
                else:
                    errs = expect_status(resp, 201)
                    loc = header(resp, "Location", loc)
                    final = resp
            else:
                resp = self.send("PATCH", u, headers=hdrs, body=chunk, length=len(chunk))
                errs = expect_status(resp, 202)
                loc = header(resp, "Location", loc)
            if errs:
                return wrap("blob patch failed", errs)
        if "PutLastChunk" not in flags:
            if loc == "":
                return err("blob patch did not return a location")
            u = set_query(resolve(u, loc), "digest", dig)
            resp = self.send("PUT", u, headers=[("Content-Type", MT_OCTET_STREAM)], body=b"", length=0)
            if "ExpectBadDigest" in flags:
                errs = expect_status(resp, 400)
            else:
                errs = expect_status(resp, 201)
                loc = header(resp, "Location", loc)
                final = resp
            if errs:
                return wrap("blob put failed", errs)
        if "ExpectBadDigest" in flags:
            return []
        errs = self.verify_digest(final, dig, flags)
        if errs:
            return errs
        return self.blob_verify_location(u, loc, body)

    def blob_patch_stream(self, repo: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        body = td.blobs[dig]
        u, loc, errs = self.blob_post_session(repo, content_length=True)
        if errs:
            return errs
        u = resolve(u, loc)
        resp = self.send("PATCH", u, headers=[("Content-Type", MT_OCTET_STREAM)], body=body)  # no length: chunked
        errs = expect_status(resp, 202)
        loc = header(resp, "Location", loc)
        if errs:
            return wrap("blob patch failed", errs)
        if loc == "":
            return err(f"blob patch did not return a location {show(resp)}")
        u = set_query(resolve(u, loc), "digest", dig)
        resp = self.send("PUT", u, headers=[("Content-Type", MT_OCTET_STREAM)], body=b"", length=0)
        if "ExpectBadDigest" in flags:
            errs = expect_status(resp, 400)
        else:
            errs = expect_status(resp, 201) + expect_header(resp, "Location", "")
        loc = header(resp, "Location", loc)
        if errs:
            return wrap("blob put failed", errs)
        if "ExpectBadDigest" in flags:
            return []
        errs = self.verify_digest(resp, dig, flags)
        if errs:
            return errs
        return self.blob_verify_location(u, loc, body)

    def blob_post_cancel(self, repo: str) -> Errs:
        u, loc, errs = self.blob_post_session(repo)
        if errs:
            return errs
        resp = self.send("DELETE", resolve(u, loc))
        errs = expect_status(resp, 204)
        return wrap("blob cancel failed", errs)

    def blob_post_only(self, repo: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        body = td.blobs[dig]
        u = set_query(self.url(repo, "blobs/uploads/"), "digest", dig)
        bad = "ExpectBadDigest" in flags
        resp = self.send("POST", u, headers=[("Content-Type", MT_OCTET_STREAM)], body=body, length=len(body))
        status = resp.status_code
        loc = header(resp, "Location", "")
        errs = expect_status(resp, 400, 202) if bad else expect_status(resp, 201, 202) + expect_header(
            resp, "Location", "")
        if errs:
            return wrap("blob post failed", errs)
        if status == 202:
            u = set_query(resolve(u, loc), "digest", dig)
            resp = self.send("PUT", u, headers=[("Content-Type", MT_OCTET_STREAM)], body=body, length=len(body))
            errs = expect_status(resp, 400) if bad else expect_status(resp, 201)
            if errs:
                return wrap("blob post failed", errs)
            return err("registry does not support content in the POST, fallback to PUT", "unsupported")
        if bad:
            return []
        errs = self.verify_digest(resp, dig, flags)
        if errs:
            return errs
        return self.blob_verify_location(u, loc, body)

    def blob_post_put(self, repo: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        body = td.blobs[dig]
        u, loc, errs = self.blob_post_session(repo)
        if errs:
            return errs
        u = set_query(resolve(u, loc), "digest", dig)
        resp = self.send("PUT", u, headers=[("Content-Type", MT_OCTET_STREAM)], body=body, length=len(body))
        if "ExpectBadDigest" in flags:
            return wrap("blob put failed", expect_status(resp, 400))
        errs = expect_status(resp, 201)
        loc = header(resp, "Location", loc)
        if errs:
            return wrap("blob put failed", errs)
        errs = self.verify_digest(resp, dig, flags)
        if errs:
            return errs
        return self.blob_verify_location(u, loc, body)

    def blob_verify_location(self, u: str, loc: str, body: bytes) -> Errs:
        if loc == "":
            return err("location header missing")
        resp = self.send("GET", resolve(u, loc))
        errs = expect_body(resp, body) + expect_status(resp, 200)
        return wrap("failed to verify returned location", errs)

    def manifest_delete(self, repo: str, ref: str) -> Errs:
        resp = self.send("DELETE", self.url(repo, f"manifests/{ref}"))
        errs = expect_status(resp, 202, 404, 400, 405)
        if errs:
            return wrap("manifest delete failed", errs)
        if resp.status_code in (400, 405):
            return err(f"registry returned status {resp.status_code} {show(resp)}", "unsupported")
        return []

    ACCEPT = (("Accept", MT_OCI_INDEX), ("Accept", MT_OCI_IMAGE))

    def manifest_get_req(self, repo: str, ref: str) -> httpx.Response:
        return self.send("GET", self.url(repo, f"manifests/{ref}"), headers=self.ACCEPT)

    def manifest_get_exists(self, repo: str, ref: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        resp = self.manifest_get_req(repo, ref)
        errs = expect_status(resp, 200)
        val = td.manifests.get(dig, b"")
        returned: httpx.Response | None = None
        if val:
            errs += (expect_body(resp, val) + expect_header(resp, "Content-Type", detect_media_type(val))
                     + expect_header(resp, "Content-Length", str(len(val))))
            returned = resp
        return wrap("manifest get failed", errs) + self.verify_digest(returned, dig, flags)

    def manifest_head_req(self, repo: str, ref: str) -> httpx.Response:
        return self.send("HEAD", self.url(repo, f"manifests/{ref}"), headers=self.ACCEPT)

    def manifest_head_exists(self, repo: str, ref: str, dig: str, td: TestData, flags: set[str]) -> Errs:
        resp = self.manifest_head_req(repo, ref)
        errs = expect_status(resp, 200) + expect_body(resp, b"")
        val = td.manifests.get(dig, b"")
        returned: httpx.Response | None = None
        if val:
            errs += (expect_header(resp, "Content-Type", detect_media_type(val))
                     + expect_header(resp, "Content-Length", str(len(val))))
            returned = resp
        return wrap("manifest head failed", errs) + self.verify_digest(returned, dig, flags)

    def manifest_put(self, repo: str, ref: str, dig: str, td: TestData, referrers_enabled: bool,
                     params: Sequence[tuple[str, str]], flags: set[str]) -> tuple[Errs, httpx.Response | None]:
        body = td.manifests[dig]
        u = self.url(repo, f"manifests/{ref}")
        for key, value in params:
            u = add_query(u, key, value)
        media_type = detect_media_type(body)
        resp = self.send("PUT", u, headers=[("Content-Type", media_type)], body=body)  # no length: chunked
        bad = "ExpectBadDigest" in flags
        errs = expect_status(resp, 400 if bad else 201)
        loc = "" if bad else header(resp, "Location", "")
        if referrers_enabled:
            subject = detect_subject(body)
            if subject is not None:
                errs += expect_header(resp, "OCI-Subject", subject)
        errs = wrap("manifest put failed", errs)
        if bad:
            return errs, resp
        dig_header = resp.headers.get("Docker-Content-Digest", "")
        if dig_header and dig_header != dig:
            errs += err(f"Docker-Content-Digest header value expected {dig!r}, received {dig_header!r} {show(resp)}")
        if loc == "":
            errs += err(f"blob put did not return a location {show(resp)}")
        else:
            got = self.send("GET", resolve(u, loc), headers=self.ACCEPT)
            check = (expect_status(got, 200) + expect_header(got, "Content-Type", media_type)
                     + expect_header(got, "Content-Length", str(len(body))) + expect_body(got, body))
            errs += wrap("failed to verify returned location", check)
        return errs, resp

    def ping(self) -> Errs:
        self.send("GET", f"{self.registry}/v2/")  # PingReq has no expectations: any answer passes
        return []

    def referrers_list(self, repo: str, dig: str, params: Sequence[tuple[str, str]] = (),
                       returned: dict[str, str] | None = None) -> tuple[dict[str, Any], Errs]:
        u = self.url(repo, f"referrers/{dig}")
        for key, value in params:
            u = add_query(u, key, value)
        resp = self.send("GET", u)
        if returned is not None:
            for key in returned:
                returned[key] = header(resp, key, returned[key])
        errs = expect_header(resp, "Content-Type", MT_OCI_INDEX) + expect_status(resp, 200)
        index: dict[str, Any] = {}
        try:
            parsed = json.loads(resp.content)
            index = parsed if isinstance(parsed, dict) else {}
        except ValueError as e:
            errs += err(f"referrers response is not JSON: {e} {show(resp)}")
        if not errs and (index.get("mediaType") != MT_OCI_INDEX or index.get("schemaVersion") != 2):
            errs += err(f"referrers response is not a valid OCI index (media type and schema version) {show(resp)}",
                        "fail")
        return index, errs

    def tag_list(self, repo: str, params: Sequence[tuple[str, str]] = ()) -> tuple[list[str], Errs]:
        u = self.url(repo, "tags/list")
        for key, value in params:
            u = add_query(u, key, value)
        resp = self.send("GET", u)
        if resp.status_code == 200:
            try:
                parsed = json.loads(resp.content)
                tags = parsed.get("tags") or []
                return [str(t) for t in tags], []
            except (ValueError, AttributeError) as e:
                return [], err(f"response did not match any condition: {e} {show(resp)}")
        if resp.status_code == 404:
            return [], []
        return [], err(f"response did not match any condition: status {resp.status_code} {show(resp)}")
