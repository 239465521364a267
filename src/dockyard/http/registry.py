"""``/v2``: the OCI distribution API. Handlers parse, call one service method, build the response."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dockyard import events
from dockyard.errors import (
    BlobUploadInvalid,
    DigestInvalid,
    ManifestTooLarge,
    NameInvalid,
    NameUnknown,
    RegistryError,
    SizeInvalid,
    Unsupported,
)
from dockyard.http.auth import Guard, Visible
from dockyard.http.errors import render_error
from dockyard.http.files import BlobResponse, redirect_keeps_credentials
from dockyard.http.routes import Match, MethodNotAllowed, bad_name_in, match
from dockyard.oci.ranges import ByteRange, parse_content_range, parse_range
from dockyard.policy.admission import header_value, warning
from dockyard.services.admission import AdmissionService
from dockyard.services.blobs import BlobService
from dockyard.services.listing import ListingService, Page
from dockyard.services.manifests import ManifestService
from dockyard.services.uploads import UploadService, UploadStatus

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
POLICY_WARNING = "Dockyard-Policy-Warning"
_API_VERSION_RAW = (b"docker-distribution-api-version", b"registry/2.0")
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RegistryServices:
    uploads: UploadService
    blobs: BlobService
    manifests: ManifestService
    listing: ListingService
    pulls: events.PullLog
    admission: AdmissionService  # the pull rules


def _upload_headers(name: str, status: UploadStatus) -> dict[str, str]:
    last = f"0-{status.size - 1}" if status.size else "0-0"
    return {"Location": f"/v2/{name}/blobs/uploads/{status.upload_id}", "Range": last,
            "Docker-Upload-UUID": status.upload_id, **API_VERSION}


def _blob_created(name: str, digest: str) -> Response:
    return Response(status_code=201, headers={
        "Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest, **API_VERSION})


def _content_range(request: Request) -> ByteRange | None:
    header = request.headers.get("content-range")
    if header is None:
        return None
    claimed = parse_content_range(header)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) != claimed.length:
        raise BlobUploadInvalid(
            f"Content-Range says {claimed.length} bytes but Content-Length says {length}")
    return claimed


def _expected_length(request: Request) -> int | None:
    length = request.headers.get("content-length")
    if length is None:
        return None
    if not length.isascii() or not length.isdigit() or len(length) > 19:
        raise SizeInvalid("Content-Length must be a non-negative integer")
    return int(length)


async def _counted(request: Request, expected: int | None) -> AsyncIterator[bytes]:
    """The request body, checked against Content-Length once it ends."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        yield chunk
    if expected is not None and received != expected:
        raise SizeInvalid(f"received {received} bytes but Content-Length said {expected}")


def _visible(request: Request) -> Visible | None:
    found: Visible | None = request.scope.get("dockyard.visible")
    return found


def _digest_param(request: Request) -> str:
    digest = request.query_params.get("digest")
    if not digest:
        raise DigestInvalid("the digest query parameter is required: ?digest=sha256:<hex>")
    return digest


def _paged(body: dict[str, object], page: Page, path: str, extra: dict[str, str]) -> Response:
    headers = dict(API_VERSION)
    if page.next_last is not None:
        query = urlencode({**extra, "n": str(page.limit), "last": page.next_last})
        headers["Link"] = f'<{path}?{query}>; rel="next"'
    return Response(json.dumps(body, separators=(",", ":")), headers=headers, media_type="application/json")


class RegistryHandlers:
    def __init__(self, services: RegistryServices, *, manifest_max_bytes: int) -> None:
        self.s = services
        self.manifest_max_bytes = manifest_max_bytes

    async def base(self, request: Request) -> Response:
        return Response(b"{}", headers=API_VERSION, media_type="application/json")

    async def catalog(self, request: Request) -> Response:
        q = request.query_params
        page = await self.s.listing.catalog(q.get("n"), q.get("last"), _visible(request))
        return _paged({"repositories": page.items}, page, "/v2/_catalog", {})

    async def tags(self, request: Request, name: str) -> Response:
        q = request.query_params
        page = await self.s.listing.tags(name, q.get("n"), q.get("last"))
        return _paged({"name": name, "tags": page.items}, page, f"/v2/{name}/tags/list", {})

    async def get_manifest(self, request: Request, name: str, reference: str) -> ManifestResponse:
        found = await self.s.manifests.get(name, reference)
        head = request.method == "HEAD"
        warned = None
        if not head:  # HEAD tells a digest, not the content: clients and cosign resolve tags with it
            warned = warning(await self.s.admission.check_pull(name, found.digest, found.media_type, found.content,
                                                               reference))
            self.s.pulls.add(events.ManifestPulled(name, found.digest, reference))
        return ManifestResponse(found.content, found.media_type, found.digest, head=head, warning=warned)

    async def put_manifest(self, request: Request, name: str, reference: str) -> Response:
        body = await self._manifest_body(request)
        content_type = request.headers.get("content-type", "")
        extra_tags = request.query_params.getlist("tag")
        pushed = await self.s.manifests.put(name, reference, body, content_type, extra_tags)
        response = Response(status_code=201, headers={
            "Location": f"/v2/{name}/manifests/{pushed.digest}", "Docker-Content-Digest": pushed.digest,
            **API_VERSION})
        if pushed.subject:
            response.headers["OCI-Subject"] = pushed.subject
        if pushed.warning:
            response.headers[POLICY_WARNING] = header_value(pushed.warning)
        for tag in pushed.tags:
            response.headers.append("OCI-Tag", tag)
        return response

    async def delete_manifest(self, request: Request, name: str, reference: str) -> Response:
        await self.s.manifests.delete(name, reference)
        return Response(status_code=202, headers=API_VERSION)

    async def get_blob(self, request: Request, name: str, digest: str) -> BlobResponse | Response:
        location = await self.s.blobs.locate(name, digest)
        redirect = self.s.blobs.store.redirect_url(location) if request.method == "GET" else None
        if redirect and not redirect_keeps_credentials(redirect, request.headers.get("host")):
            return Response(status_code=307, headers={
                "Location": redirect, "Docker-Content-Digest": digest, **API_VERSION})
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes", "ETag": f'"{digest}"',
                   "Cache-Control": "max-age=31536000", **API_VERSION}
        wanted = request.headers.get("range")
        chosen = parse_range(wanted, location.size) if wanted and request.method == "GET" else None
        status, offset, length = 200, 0, location.size
        if chosen is not None:
            status, offset, length = 206, chosen.first, chosen.length
            headers["Content-Range"] = f"bytes {chosen.first}-{chosen.last}/{location.size}"
        return BlobResponse(
            status=status, headers=headers, local_path=location.local_path, offset=offset, length=length,
            head=request.method == "HEAD",
            stream=lambda start, count: self.s.blobs.store.read(location, start, count),
            failed=lambda exc: self.s.blobs.read_failed(name, digest, exc))

    async def delete_blob(self, request: Request, name: str, digest: str) -> Response:
        await self.s.blobs.unlink(name, digest)
        return Response(status_code=202, headers=API_VERSION)

    async def start_upload(self, request: Request, name: str) -> Response:
        q = request.query_params
        mount = q.get("mount")
        if mount is not None and await self.s.uploads.mount(name, mount, q.get("from") or None, _visible(request)):
            return _blob_created(name, mount)
        digest = q.get("digest")
        if digest is not None:
            await self.s.uploads.push(name, digest, _counted(request, _expected_length(request)))
            return _blob_created(name, digest)
        status = await self.s.uploads.start(name)
        return Response(status_code=202, headers={**_upload_headers(name, status), "Content-Length": "0"})

    async def upload_status(self, request: Request, name: str, upload_id: str) -> Response:
        status = await self.s.uploads.status(name, upload_id)
        return Response(status_code=204, headers=_upload_headers(name, status))

    async def patch_upload(self, request: Request, name: str, upload_id: str) -> Response:
        claimed = _content_range(request)
        body = _counted(request, _expected_length(request))
        status = await self.s.uploads.append(name, upload_id, body, claimed)
        return Response(status_code=202, headers={**_upload_headers(name, status), "Content-Length": "0"})

    async def complete_upload(self, request: Request, name: str, upload_id: str) -> Response:
        digest = _digest_param(request)
        claimed = _content_range(request)
        expected = _expected_length(request)
        has_body = bool(expected) or "chunked" in request.headers.get("transfer-encoding", "")
        body = _counted(request, expected) if has_body else None
        await self.s.uploads.complete(name, upload_id, digest, body, claimed)
        return _blob_created(name, digest)

    async def cancel_upload(self, request: Request, name: str, upload_id: str) -> Response:
        await self.s.uploads.cancel(name, upload_id)
        return Response(status_code=204, headers=API_VERSION)

    async def referrers(self, request: Request, name: str, digest: str) -> Response:
        artifact_type = request.query_params.get("artifactType") or None
        body = await self.s.manifests.referrers(name, digest, artifact_type)
        headers = dict(API_VERSION)
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return Response(body, headers=headers, media_type="application/vnd.oci.image.index.v1+json")

    async def _manifest_body(self, request: Request) -> bytes:
        expected = _expected_length(request)
        if expected is not None and expected > self.manifest_max_bytes:
            raise ManifestTooLarge(f"manifest is {expected} bytes; the limit is {self.manifest_max_bytes}")
        body = bytearray()
        async for chunk in _counted(request, expected):
            body += chunk
            if len(body) > self.manifest_max_bytes:
                raise ManifestTooLarge(f"manifest exceeds the limit of {self.manifest_max_bytes} bytes")
        return bytes(body)


class ManifestResponse:
    """A manifest's bytes and their headers, sent as they are.

    The busiest response of a registry: built straight as ASGI messages, without the header
    handling of a general response class (a tenth of a manifest GET's cost in Python).
    """

    __slots__ = ("body", "head", "headers")

    def __init__(self, content: bytes, media_type: str, digest: str, *, head: bool,
                 warning: str | None = None) -> None:
        self.body = b"" if head else content
        self.head = head
        digest_bytes = digest.encode("ascii")
        self.headers = [
            (b"content-type", media_type.encode("latin-1")), (b"content-length", b"%d" % len(content)),
            (b"docker-content-digest", digest_bytes), (b"etag", b'"%s"' % digest_bytes), _API_VERSION_RAW,
        ]
        if warning:
            self.headers.append((b"dockyard-policy-warning", header_value(warning).encode("ascii")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class RegistryApp:
    """Dispatches ``/v2`` requests through the route table; renders every error in one place."""

    def __init__(self, handlers: RegistryHandlers, guard: Guard | None) -> None:
        self.handlers = handlers
        self.guard = guard  # None: no access control (only for embedding in tests of the protocol)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        head = scope["method"] == "HEAD"
        response: ASGIApp
        try:
            found = match(scope["method"], scope["path"])
            if found is None and bad_name_in(scope["path"]) is not None:
                raise NameInvalid(detail={"name": (bad_name_in(scope["path"]) or "")[:300]})
            if found is None:
                raise NameUnknown("no such endpoint or invalid repository name",
                                  detail={"path": quote(scope["path"][:300])})
            scope["dockyard.route"] = found.route.name
            if self.guard is None:
                response = await self._call(request, found)
            else:
                caller = await self.guard.check(request, found)
                scope["dockyard.visible"] = self.guard.visible(caller)
                scope["dockyard.user"] = caller.actor
                actor = events.CURRENT_ACTOR.set(self.guard.actor(request, caller))
                try:
                    response = await self._call(request, found)
                finally:
                    events.CURRENT_ACTOR.reset(actor)
        except MethodNotAllowed as exc:
            response = render_error(Unsupported(f"method {scope['method']} is not allowed here",
                                                headers={"Allow": ", ".join(exc.allowed)}), head=head)
        except RegistryError as exc:
            response = render_error(exc, head=head)
        except ClientDisconnect:
            # The body ended before Content-Length said it would; if the client still listens
            # (it may only have closed its sending side) it gets an answer, not a 500.
            response = render_error(SizeInvalid("the request body ended before Content-Length bytes arrived"),
                                    head=head)
        await response(scope, receive, send)

    async def _call(self, request: Request, found: Match) -> ASGIApp:
        handler = getattr(self.handlers, found.handler)
        result: ASGIApp = await handler(request, **found.params)
        return result
