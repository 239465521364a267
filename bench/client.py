"""The small requests of the OCI distribution API (start/finish an upload, push an image), over http.client.

Big bodies never go through here: ``bench.curl`` streams them. Every URL is checked to stay on the
registry's own loopback address, whatever a ``Location`` header says.

A registry that authorizes requests (dockyard) is reached like a real client reaches it: one
bearer token from its token endpoint (``fetch_token``, Basic credentials), then
``Authorization: Bearer`` on every request, which ``RegistryClient.auth_headers`` also hands to
curl, wrk and ab.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

from bench.testdata import MANIFEST_ACCEPT, OCI_MANIFEST, SmallImage, digest_of


class ProtocolError(RuntimeError):
    """The registry answered something the OCI distribution spec does not allow here."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def with_digest(location: str, digest: str) -> str:
    """``location`` with ``digest=`` appended to its query (``?`` or ``&`` as the URL needs)."""
    return f"{location}{'&' if urlsplit(location).query else '?'}digest={digest}"


def fetch_token(base_url: str, credentials: tuple[str, str], scopes: Sequence[str],
                service: str = "dockyard") -> str:
    """``GET /token?service=&scope=...`` with Basic ``credentials``; the bearer token it grants."""
    parts = urlsplit(base_url)
    query = urlencode([("service", service), *(("scope", scope) for scope in scopes)])
    basic = base64.b64encode(":".join(credentials).encode()).decode()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("GET", f"/token?{query}", headers={"Authorization": f"Basic {basic}"})
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise ProtocolError(f"GET /token answered {answer.status}, expected 200: {body[:300]!r}")
    try:
        token = json.loads(body).get("token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise ProtocolError(f"GET /token answered 200 without a token: {body[:300]!r}")
    return token


class RegistryClient:
    """Issues single, small requests to one registry at ``base_url`` (``http://127.0.0.1:PORT``).

    With ``token`` every request carries ``Authorization: Bearer <token>``.
    """

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self._netloc = urlsplit(base_url).netloc
        self.auth_headers: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}

    def resolve(self, location: str) -> str:
        """An absolute URL for a (possibly relative) ``Location``; refuses to leave the registry."""
        url = urljoin(self.base_url + "/", location)
        if urlsplit(url).netloc != self._netloc:
            raise ProtocolError(f"Location {location!r} points away from {self.base_url}")
        return url

    def request(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        """Send one request (``url`` absolute or a path) and read the whole answer."""
        parts = urlsplit(self.resolve(url))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
        try:
            conn.request(method, target, body=body, headers={**self.auth_headers, **(headers or {})})
            answer = conn.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            conn.close()

    def expect(self, expected: int, method: str, url: str, body: bytes = b"",
               headers: dict[str, str] | None = None) -> Response:
        """Like ``request``, raising ProtocolError unless the status is ``expected``."""
        response = self.request(method, url, body, headers)
        if response.status != expected:
            raise ProtocolError(
                f"{method} {url} answered {response.status}, expected {expected}: {response.body[:300]!r}"
            )
        return response

    def start_upload(self, repo: str) -> str:
        """POST a new upload session; return its absolute location."""
        response = self.expect(202, "POST", f"/v2/{repo}/blobs/uploads/")
        location = response.headers.get("Location")
        if not location:
            raise ProtocolError(f"POST /v2/{repo}/blobs/uploads/ answered 202 without a Location")
        return self.resolve(location)

    def finish_upload(self, location: str, digest: str, body: bytes = b"") -> None:
        """PUT the final (possibly empty) chunk with the blob's digest; expect 201."""
        headers = {"Content-Type": "application/octet-stream"}
        self.expect(201, "PUT", with_digest(location, digest), body, headers)

    def push_blob(self, repo: str, data: bytes) -> None:
        """Push a small blob in one PUT."""
        self.finish_upload(self.start_upload(repo), digest_of(data), data)

    def push_image(self, repo: str, tag: str, image: SmallImage) -> None:
        """Push the image's blobs, then its manifest under ``tag``."""
        for blob in image.blobs:
            self.push_blob(repo, blob)
        headers = {"Content-Type": OCI_MANIFEST}
        self.expect(201, "PUT", f"/v2/{repo}/manifests/{tag}", image.manifest, headers)

    def check_manifest(self, repo: str, tag: str, image: SmallImage) -> None:
        """GET and HEAD the manifest once; both must answer 200, GET with the exact bytes pushed."""
        url = f"/v2/{repo}/manifests/{tag}"
        got = self.expect(200, "GET", url, headers={"Accept": MANIFEST_ACCEPT})
        if got.body != image.manifest:
            raise ProtocolError(f"GET {url} did not return the manifest bytes that were pushed")
        self.expect(200, "HEAD", url, headers={"Accept": MANIFEST_ACCEPT})
