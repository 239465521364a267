"""Big-blob throughput: monolithic push, chunked push, and pulls with one or many streams.

Each function times the whole exchange a client goes through (upload session, body, final PUT)
with a wall clock and returns MB/s, where MB is 10^6 bytes.
"""

from __future__ import annotations

import time

from bench import curl
from bench.client import ProtocolError, RegistryClient, with_digest
from bench.testdata import BigBlob


def mb_per_second(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def push_monolithic(client: RegistryClient, repo: str, blob: BigBlob) -> float:
    """POST an upload, then PUT the whole blob with ``?digest=``; expect 201."""
    start = time.perf_counter()
    location = client.start_upload(repo)
    curl.run(curl.upload_command(with_digest(location, blob.digest), blob.path, headers=client.auth_headers),
             expected=201)
    return mb_per_second(blob.size, time.perf_counter() - start)


def push_chunked(client: RegistryClient, repo: str, blob: BigBlob) -> float:
    """POST an upload, PATCH each chunk with its Content-Range, then PUT ``?digest=`` with no body."""
    start = time.perf_counter()
    location = client.start_upload(repo)
    for chunk in blob.chunks:
        headers = {**client.auth_headers, "Content-Type": "application/octet-stream",
                   "Content-Range": f"{chunk.start}-{chunk.end}"}
        result = curl.run(curl.upload_command(location, chunk.path, "PATCH", headers), expected=202)
        if not result.location:
            raise ProtocolError(f"PATCH {location} answered 202 without a Location")
        location = client.resolve(result.location)
    client.finish_upload(location, blob.digest)
    return mb_per_second(blob.size, time.perf_counter() - start)


def pull(client: RegistryClient, repo: str, blob: BigBlob, streams: int, follow_redirects: bool = False
         ) -> float:
    """GET the blob with ``streams`` concurrent connections; aggregate MB/s until the last one ends.

    With ``follow_redirects`` curl follows a 3xx (e.g. a 307 to the object store) and the time
    includes that extra round trip.
    """
    url = client.resolve(f"/v2/{repo}/blobs/{blob.digest}")
    start = time.perf_counter()
    command = curl.download_command(url, follow_redirects, client.auth_headers)
    results = curl.run_concurrently([command] * streams, expected=200)
    elapsed = time.perf_counter() - start
    short = [r.downloaded for r in results if r.downloaded != blob.size]
    if short:
        raise ProtocolError(f"GET {url} returned {short[0]} bytes, expected {blob.size}")
    return mb_per_second(blob.size * streams, elapsed)
