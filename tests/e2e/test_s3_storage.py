"""The registry on S3-compatible storage: a real `dockyard serve` on a real Ceph (radosgw) bucket.

skopeo pushes and pulls through it (pulls from another host than the store's follow the 307 to a
presigned URL), chunked uploads
finish as multipart uploads, and with redirects off blobs are streamed with `Range` honoured.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.images import build_image, write_layout
from tests.support.s3 import BUCKET, CEPH, S3Endpoint, delete_prefix
from tests.support.server import ADMIN_AUTH, ServerProcess

CREDS = ":".join(ADMIN_AUTH)  # skopeo --creds USER:PASSWORD

pytestmark = pytest.mark.e2e


def s3_server(tmp_path: Path, endpoint: S3Endpoint, prefix: str, *, redirect: bool) -> ServerProcess:
    env = {
        "DOCKYARD_STORAGE__DRIVER": "s3", "DOCKYARD_STORAGE__S3__ENDPOINT": endpoint.endpoint,
        "DOCKYARD_STORAGE__S3__ACCESS_KEY": endpoint.access_key,
        "DOCKYARD_STORAGE__S3__SECRET_KEY": endpoint.secret_key,
        "DOCKYARD_STORAGE__S3__REGION": endpoint.region, "DOCKYARD_STORAGE__S3__BUCKET": BUCKET,
        "DOCKYARD_STORAGE__S3__PREFIX": prefix,
        "DOCKYARD_STORAGE__S3__REDIRECT": "true" if redirect else "false",
    }
    return ServerProcess(data_dir=tmp_path / "data", workers=2, env=env)


@pytest.fixture
def endpoint() -> S3Endpoint:
    return CEPH.endpoint()  # started once per run; stopped at exit (tests/support/s3.py)


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def chunked_push(url: str, name: str, data: bytes, chunk: int) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=url, timeout=60, auth=ADMIN_AUTH) as client:
        location = client.post(f"/v2/{name}/blobs/uploads/").headers["location"]
        for start in range(0, len(data), chunk):
            # A new connection per chunk: the two workers take turns.
            part = data[start:start + chunk]
            response = httpx.patch(f"{url}{location}", content=part, timeout=60, auth=ADMIN_AUTH, headers={
                "Content-Range": f"{start}-{start + len(part) - 1}", "Connection": "close"})
            assert response.status_code == 202, response.text
            location = response.headers["location"]
        assert client.get(location).headers["range"] == f"0-{len(data) - 1}"
        done = client.put(f"{location}?digest={digest}")
        assert done.status_code == 201, done.text
    return digest


def test_skopeo_round_trip_with_redirected_pulls(tmp_path: Path, endpoint: S3Endpoint) -> None:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    layout = write_layout(tmp_path / "in", "v1", build_image("s3-e2e", layer_count=3))
    try:
        with s3_server(tmp_path, endpoint, prefix, redirect=True) as server:
            skopeo("copy", "--dest-tls-verify=false", f"--dest-creds={CREDS}", f"oci:{layout}:v1",
                   f"docker://{server.host}/team/app:v1")
            skopeo("copy", "--src-tls-verify=false", f"--src-creds={CREDS}",
                   f"docker://localhost:{server.port}/team/app:v1",
                   f"oci:{tmp_path / 'out'}:v1")
            pushed = json.loads(skopeo("inspect", "--raw", f"oci:{layout}:v1"))
            pulled = json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'out'}:v1"))
            assert pulled == pushed
            layer = pushed["layers"][0]["digest"]
            # Reached as localhost, not as the store's 127.0.0.1: another host, so a redirect
            # (the same host is streamed: tests/e2e/test_s3_redirects.py).
            elsewhere = f"http://localhost:{server.port}"
            redirected = httpx.get(f"{elsewhere}/v2/team/app/blobs/{layer}", auth=ADMIN_AUTH)
            assert redirected.status_code == 307
            assert redirected.headers["location"].startswith(endpoint.endpoint)
            assert redirected.headers["docker-content-digest"] == layer
            head = httpx.head(f"{server.url}/v2/team/app/blobs/{layer}", auth=ADMIN_AUTH)
            assert head.status_code == 200
            assert int(head.headers["content-length"]) == pushed["layers"][0]["size"]
    finally:
        delete_prefix(endpoint, BUCKET, prefix)


def test_chunked_multipart_upload_and_streamed_ranges(tmp_path: Path, endpoint: S3Endpoint) -> None:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    data = bytes(range(256)) * (70 * 1024)  # ~17.5 MiB: several 8 MiB parts and a tail
    try:
        with s3_server(tmp_path, endpoint, prefix, redirect=False) as server:
            digest = chunked_push(server.url, "team/big", data, chunk=3 * 1024 * 1024 + 17)
            whole = httpx.get(f"{server.url}/v2/team/big/blobs/{digest}", timeout=60, auth=ADMIN_AUTH)
            assert whole.status_code == 200
            assert hashlib.sha256(whole.content).hexdigest() == digest.split(":")[1]
            part = httpx.get(f"{server.url}/v2/team/big/blobs/{digest}", headers={"Range": "bytes=9000000-9000099"},
                             auth=ADMIN_AUTH)
            assert part.status_code == 206
            assert part.content == data[9000000:9000100]
            small = chunked_push(server.url, "team/small", b"tiny blob", chunk=4)
            assert httpx.get(f"{server.url}/v2/team/small/blobs/{small}", auth=ADMIN_AUTH).content == b"tiny blob"
            wrong = httpx.post(f"{server.url}/v2/team/big/blobs/uploads/?digest=sha256:{'0' * 64}", content=b"x",
                               auth=ADMIN_AUTH)
            assert wrong.status_code == 400
    finally:
        delete_prefix(endpoint, BUCKET, prefix)


def test_purge_aborts_abandoned_multipart_uploads(tmp_path: Path, endpoint: S3Endpoint) -> None:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    server = s3_server(tmp_path, endpoint, prefix, redirect=True)
    s3 = endpoint.client()
    try:
        with server:
            location = httpx.post(f"{server.url}/v2/team/app/blobs/uploads/", auth=ADMIN_AUTH).headers["location"]
            nine_mib = bytes(9 * 1024 * 1024)  # more than one 8 MiB part: a multipart upload exists
            assert httpx.patch(f"{server.url}{location}", content=nine_mib, timeout=60,
                               auth=ADMIN_AUTH).status_code == 202
            pending = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
            assert len(pending) == 1
            purge = subprocess.run(
                [sys.executable, "-m", "dockyard", "uploads", "purge", "--older-than", "0",
                 "--data-dir", str(server.data_dir)],
                env={**os.environ, **server.env}, capture_output=True, text=True, timeout=60, check=False)
            assert purge.returncode == 0, purge.stderr
            assert "removed 1 expired upload(s)" in purge.stdout
            assert s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []) == []
            listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/uploads/").get("Contents", [])
            assert listed == []
            assert httpx.get(f"{server.url}{location}", auth=ADMIN_AUTH).status_code == 404
    finally:
        delete_prefix(endpoint, BUCKET, prefix)
