"""Push and pull OCI content over plain HTTP, the way registry clients do.

A thin, typed layer over `httpx.Client` for end-to-end tests. Every step checks the status it
expects and raises `UnexpectedResponse` naming the request, the expected and the received status
and the body, so a failing test reads as a repro. A push function returns only once the registry
answered 201: a returned digest is an acknowledged one.

Blob pushes come in the three shapes clients use:

    monolithic    POST /blobs/uploads/  ->  PUT <location>?digest=  (whole body)
    single POST   POST /blobs/uploads/?digest=  (whole body)
    chunked       POST  ->  PATCH <location> (Content-Range) ...  ->  PUT <location>?digest=
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

OCI_ERROR_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
    # Where the OCI texts are silent SPEC.md says to do what distribution does; these are its codes
    # for a bad page size and an unsatisfiable blob range.
    "PAGINATION_NUMBER_INVALID", "RANGE_INVALID",
})


class UnexpectedResponse(AssertionError):
    """The registry answered with a status the protocol step did not expect."""

    def __init__(self, response: httpx.Response, expected: Sequence[int]) -> None:
        request = response.request
        body = "" if request.method == "HEAD" else response.text[:500]
        super().__init__(
            f"{request.method} {request.url} -> expected {' or '.join(map(str, expected))}, "
            f"got {response.status_code}: {body!r}"
        )
        self.response = response


def expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    """Return `response` when its status is one of `statuses`, else raise `UnexpectedResponse`."""
    if response.status_code not in statuses:
        response.read()
        raise UnexpectedResponse(response, statuses)
    return response


def sha256_digest(data: bytes) -> str:
    """The `sha256:<hex>` digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data))

    def as_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def image_manifest(config: Descriptor, layers: Iterable[Descriptor],
                   annotations: dict[str, str] | None = None) -> bytes:
    """The bytes of an OCI image manifest referencing `config` and `layers`."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.as_json(),
        "layers": [layer.as_json() for layer in layers],
    }
    if annotations:
        document["annotations"] = annotations
    return json.dumps(document, separators=(",", ":")).encode()


def config_blob(label: str) -> bytes:
    """A small, distinct image config."""
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"l": label}},
                       "rootfs": {"type": "layers", "diff_ids": []}}).encode()


# -- uploads ----------------------------------------------------------------------------------

def _uploads_url(name: str) -> str:
    return f"/v2/{name}/blobs/uploads/"


def start_upload(client: httpx.Client, name: str) -> str:
    """Open an upload session; return its `Location` (absolute or path, as the server sent it)."""
    response = expect(client.post(_uploads_url(name)), 202)
    return str(response.headers["Location"])


def _with_digest(location: str, digest: str) -> httpx.URL:
    return httpx.URL(location).copy_merge_params({"digest": digest})


def finish_upload(client: httpx.Client, location: str, digest: str,
                  content: bytes | Iterable[bytes] = b"", length: int | None = None) -> str:
    """PUT the upload at `location` with an optional final body; return the acknowledged digest."""
    size = len(content) if isinstance(content, bytes) else length
    headers = {"Content-Type": "application/octet-stream"}
    if size is not None:
        headers["Content-Length"] = str(size)
    response = expect(client.put(_with_digest(location, digest), content=content, headers=headers), 201)
    return _acknowledged_digest(response, digest)


def _acknowledged_digest(response: httpx.Response, digest: str) -> str:
    served = response.headers.get("Docker-Content-Digest", digest)
    if served != digest:
        raise AssertionError(f"{response.request.method} {response.request.url} acknowledged "
                             f"{served}, pushed {digest}")
    return digest


def push_blob_monolithic(client: httpx.Client, name: str, data: bytes) -> str:
    """POST a session, then PUT the whole blob with `?digest=`."""
    return finish_upload(client, start_upload(client, name), sha256_digest(data), data)


def push_blob_single_post(client: httpx.Client, name: str, data: bytes, fallback: bool = False) -> str:
    """One POST with `?digest=` and the whole blob as body.

    The OCI spec lets a registry answer 202 instead (it opened a session and ignored the body);
    dockyard must answer 201, so a 202 is accepted, and the upload completed with a PUT, only
    when `fallback` is set (as it is for the reference registry).
    """
    digest = sha256_digest(data)
    response = client.post(_uploads_url(name), params={"digest": digest}, content=data,
                           headers={"Content-Type": "application/octet-stream"})
    if fallback and response.status_code == 202:
        return finish_upload(client, str(response.headers["Location"]), digest, data)
    return _acknowledged_digest(expect(response, 201), digest)


def patch_chunk(client: httpx.Client, location: str, offset: int, chunk: bytes) -> str:
    """PATCH one chunk at `offset`; check the `Range` echoed back; return the next location."""
    headers = {"Content-Type": "application/octet-stream",
               "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
               "Content-Length": str(len(chunk))}
    response = expect(client.patch(location, content=chunk, headers=headers), 202)
    echoed = response.headers.get("Range")
    if echoed != f"0-{offset + len(chunk) - 1}":
        raise AssertionError(f"PATCH {location} with bytes {offset}-{offset + len(chunk) - 1}: "
                             f"expected Range 0-{offset + len(chunk) - 1}, got {echoed!r}")
    return str(response.headers.get("Location", location))


def split(data: bytes, chunk_size: int) -> list[bytes]:
    """`data` cut into pieces of `chunk_size` (the last may be shorter)."""
    return [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]


def push_blob_chunked(client: httpx.Client, name: str, data: bytes, chunk_size: int) -> str:
    """POST a session, PATCH `data` in chunks, then PUT `?digest=` with an empty body."""
    location = start_upload(client, name)
    offset = 0
    for chunk in split(data, chunk_size):
        location = patch_chunk(client, location, offset, chunk)
        offset += len(chunk)
    return finish_upload(client, location, sha256_digest(data))


# -- manifests --------------------------------------------------------------------------------

def push_manifest(client: httpx.Client, name: str, reference: str, body: bytes,
                  media_type: str = OCI_MANIFEST) -> str:
    """PUT a manifest under a tag or digest; return the acknowledged digest."""
    response = client.put(f"/v2/{name}/manifests/{reference}", content=body,
                          headers={"Content-Type": media_type})
    return _acknowledged_digest(expect(response, 201), sha256_digest(body))


def push_image(client: httpx.Client, name: str, reference: str, label: str,
               layers: Sequence[bytes]) -> tuple[str, bytes]:
    """Push a config, `layers` and a manifest over them; return (digest, manifest bytes)."""
    config = config_blob(label)
    push_blob_monolithic(client, name, config)
    for layer in layers:
        push_blob_monolithic(client, name, layer)
    body = image_manifest(Descriptor.of(OCI_CONFIG, config),
                          [Descriptor.of(OCI_LAYER, layer) for layer in layers])
    return push_manifest(client, name, reference, body), body


# -- pulls ------------------------------------------------------------------------------------

def get_blob(client: httpx.Client, name: str, digest: str) -> bytes | None:
    """The blob's bytes, or None on 404; raise if the bytes do not hash to `digest`."""
    response = expect(client.get(f"/v2/{name}/blobs/{digest}"), 200, 404)
    if response.status_code == 404:
        return None
    verify_digest(response, digest)
    return response.content


def get_manifest(client: httpx.Client, name: str, reference: str) -> tuple[str, bytes] | None:
    """(digest, bytes) of a manifest by tag or digest, or None on 404; the digest is checked."""
    response = expect(client.get(f"/v2/{name}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_ACCEPT}), 200, 404)
    if response.status_code == 404:
        return None
    digest = sha256_digest(response.content)
    if reference.startswith("sha256:"):
        verify_digest(response, reference)
    served = response.headers.get("Docker-Content-Digest")
    if served is not None and served != digest:
        raise AssertionError(f"GET {response.request.url}: Docker-Content-Digest {served} but the "
                             f"body hashes to {digest}")
    return digest, response.content


def verify_digest(response: httpx.Response, digest: str) -> None:
    """Raise unless the response body hashes to `digest`."""
    actual = sha256_digest(response.content)
    if actual != digest:
        raise AssertionError(f"GET {response.request.url}: {len(response.content)} bytes hash to "
                             f"{actual}, expected {digest}")


def stream_blob_digest(client: httpx.Client, name: str, digest: str,
                       chunk_size: int = 1 << 20) -> tuple[str, int]:
    """GET a blob as a stream, hashing as it arrives; return (digest of the bytes, byte count)."""
    hasher = hashlib.sha256()
    count = 0
    with client.stream("GET", f"/v2/{name}/blobs/{digest}") as response:
        expect(response, 200)
        for chunk in response.iter_bytes(chunk_size):
            hasher.update(chunk)
            count += len(chunk)
    return "sha256:" + hasher.hexdigest(), count


def list_tags(client: httpx.Client, name: str) -> list[str]:
    """All tags of a repository (following `Link` pagination); [] when the repository is unknown."""
    tags: list[str] = []
    url: str | None = f"/v2/{name}/tags/list"
    while url is not None:
        response = expect(client.get(url), 200, 404)
        if response.status_code == 404:
            return tags
        tags.extend(response.json().get("tags") or [])
        url = _next_link(response)
    return tags


def _next_link(response: httpx.Response) -> str | None:
    link = str(response.headers.get("Link", ""))
    if 'rel="next"' not in link:
        return None
    return link.split(";")[0].strip().strip("<>")


def iter_pattern(total: int, seed: int, block_size: int = 1 << 20) -> Iterator[bytes]:
    """`total` pseudo-random bytes, produced block by block and never held whole.

    Each block is one random block with its index stamped in front, so no two blocks are equal
    and the same (total, seed) always yields the same bytes.
    """
    base = hashlib.shake_256(seed.to_bytes(8, "big")).digest(block_size)
    sent = 0
    index = 0
    while sent < total:
        size = min(block_size, total - sent)
        yield (index.to_bytes(8, "big") + base[8:])[:size]
        sent += size
        index += 1


def pattern_digest(total: int, seed: int) -> str:
    """The digest of `iter_pattern(total, seed)`, computed by streaming it."""
    hasher = hashlib.sha256()
    for block in iter_pattern(total, seed):
        hasher.update(block)
    return "sha256:" + hasher.hexdigest()
