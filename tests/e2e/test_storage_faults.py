"""The object store fails under a real `dockyard serve`: pushes and pulls answer 503, then recover.

dockyard reaches a real Ceph radosgw (``tests/support/s3.py``) through a TCP proxy the tests
control (``tests/support/tcpproxy.py``): the store goes down, hangs, slows, answers errors or
garbage, or cuts connections mid-transfer, without touching the Ceph other tests use. One test
stops and starts radosgw itself (``ci/s3/rgw.sh``) on a Ceph of its own. The server runs with
short storage timeouts (``TIMEOUTS``), so every failure is answered within seconds.

What each shows: a push during an outage answers 503 ``UNAVAILABLE`` with ``Retry-After`` and
leaves nothing visible; a pull answers 503 (or, once its length was sent, has its connection cut,
never a short body); a hanging or slow store is bounded by the timeout settings; the store's error
answers and garbage are 503 too; service resumes when the store does, without a restart; an
interrupted chunked push continues to the right digest.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.s3 import BUCKET, CEPH, CephS3, S3Endpoint, delete_prefix
from tests.support.server import ADMIN_AUTH, ServerProcess
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e

CONNECT_TIMEOUT, READ_TIMEOUT, ATTEMPTS = 1.0, 2.0, 2
TIMEOUTS = {"DOCKYARD_STORAGE__S3__CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "DOCKYARD_STORAGE__S3__READ_TIMEOUT": str(READ_TIMEOUT),
            "DOCKYARD_STORAGE__S3__MAX_ATTEMPTS": str(ATTEMPTS)}
# One S3 call gives up after ATTEMPTS x (connect + read) and botocore's backoff (< 1 s a retry at
# first); a registry request makes a few such calls one after another. A client that waits this
# long for an answer and gets none has met a registry that hangs past its timeout settings.
PATIENCE = 6 * ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT + 1)
SLOWDOWN = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 97\r\n"
            b"Connection: close\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
            b"<Message></Message></Error>")
GARBAGE = b"\x16\x03\x01 this is not HTTP at all \xff\xfe\r\n\r\n"


def s3_env(endpoint: S3Endpoint, url: str, prefix: str) -> dict[str, str]:
    return {
        "DOCKYARD_STORAGE__DRIVER": "s3", "DOCKYARD_STORAGE__S3__ENDPOINT": url,
        "DOCKYARD_STORAGE__S3__ACCESS_KEY": endpoint.access_key,
        "DOCKYARD_STORAGE__S3__SECRET_KEY": endpoint.secret_key,
        "DOCKYARD_STORAGE__S3__REGION": endpoint.region, "DOCKYARD_STORAGE__S3__BUCKET": BUCKET,
        "DOCKYARD_STORAGE__S3__PREFIX": prefix, "DOCKYARD_STORAGE__S3__REDIRECT": "false", **TIMEOUTS,
    }


@dataclass
class Faulty:
    """A server whose object store is behind ``proxy``."""

    server: ServerProcess
    proxy: TcpProxy
    endpoint: S3Endpoint
    prefix: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, auth=ADMIN_AUTH, timeout=PATIENCE)

    def keys(self, under: str) -> list[str]:
        listed = self.endpoint.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{self.prefix}/{under}")
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    endpoint = CEPH.endpoint()
    port = int(endpoint.endpoint.rsplit(":", 1)[1])
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    with TcpProxy(("127.0.0.1", port)) as proxy:
        env = s3_env(endpoint, f"http://{proxy.address}", prefix)
        server = ServerProcess(data_dir=tmp_path_factory.mktemp("storage-faults") / "data", env=env)
        try:
            with server:
                yield Faulty(server, proxy, endpoint, prefix)
        finally:
            delete_prefix(endpoint, BUCKET, prefix)


@pytest.fixture
def store(faulty: Faulty) -> Iterator[Faulty]:
    """The module's server, its store reachable again after each test whatever the test did."""
    yield faulty
    faulty.proxy.up()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    """A monolithic push (POST, then PUT with the bytes); the PUT's answer, or the POST's if it failed."""
    started = client.post(f"/v2/{name}/blobs/uploads/")
    if started.status_code != 202:
        return started
    return client.put(started.headers["location"], params={"digest": digest_of(data)}, content=data)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    if response.request.method != "HEAD":
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE", response.text


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for_log(server: ServerProcess, pattern: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(pattern, server.log())
        if found:
            return found.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no log line matches {pattern!r}:\n{server.log()[-3000:]}")


def drain(chunks: Iterator[bytes], into: bytearray) -> None:
    for chunk in chunks:
        into += chunk


def test_push_and_pull_while_the_store_is_down_answer_503_and_recover(store: Faulty) -> None:
    """With the store refusing connections a push answers 503 and stores nothing, pulls and HEADs
    answer 503; once it is back the same server pushes and pulls without a restart."""
    kept, lost = b"stored before the outage" * 1000, b"pushed during the outage" * 1000
    with store.client() as client:
        assert push(client, "faults/down", kept).status_code == 201
        store.proxy.down()
        assert_unavailable(push(client, "faults/down", lost))
        assert_unavailable(client.get(f"/v2/faults/down/blobs/{digest_of(kept)}"))
        assert_unavailable(client.head(f"/v2/faults/down/blobs/{digest_of(kept)}"))
        store.proxy.up()
        assert client.head(f"/v2/faults/down/blobs/{digest_of(lost)}").status_code == 404
        assert not [key for key in store.keys("blobs/") if digest_of(lost).split(":")[1] in key]
        assert client.get(f"/v2/faults/down/blobs/{digest_of(kept)}").content == kept
        assert push(client, "faults/down", lost).status_code == 201
        assert client.get(f"/v2/faults/down/blobs/{digest_of(lost)}").content == lost


def test_a_hanging_store_is_answered_503_within_the_timeouts(store: Faulty) -> None:
    """A store that accepts connections and never answers costs a request its timeouts, not forever:
    push and pull answer 503 before the client's patience (a few times the configured bound) runs out."""
    data = b"hang" * 5000
    with store.client() as client:
        assert push(client, "faults/hang", data).status_code == 201
        store.proxy.hang()
        assert_unavailable(client.get(f"/v2/faults/hang/blobs/{digest_of(data)}"))
        assert_unavailable(push(client, "faults/hang", b"never stored" * 100))
        store.proxy.up()
        assert client.get(f"/v2/faults/hang/blobs/{digest_of(data)}").content == data


def test_a_slow_store_is_slow_until_it_passes_the_read_timeout(store: Faulty) -> None:
    """A store that answers each piece slowly but within ``read_timeout`` still serves correctly;
    slower than ``read_timeout`` the request answers 503 within the timeouts."""
    data = b"slow" * 5000
    with store.client() as client:
        assert push(client, "faults/slow", data).status_code == 201
        store.proxy.slow(READ_TIMEOUT / 8)
        assert client.get(f"/v2/faults/slow/blobs/{digest_of(data)}").content == data
        store.proxy.slow(READ_TIMEOUT * 1.5)
        assert_unavailable(client.get(f"/v2/faults/slow/blobs/{digest_of(data)}"))
        store.proxy.up()
        assert client.get(f"/v2/faults/slow/blobs/{digest_of(data)}").content == data


@pytest.mark.parametrize("answer", [SLOWDOWN, GARBAGE], ids=["slowdown-503", "garbage"])
def test_a_store_answering_errors_or_garbage_gives_503(store: Faulty, answer: bytes) -> None:
    """The store's own 503 SlowDown, or bytes that are not HTTP at all, become 503 for the client
    (after botocore's retries), for pushes and pulls alike, and nothing half-pushed is visible."""
    data, lost = b"errors" * 5000, f"lost {answer[:8]!r}".encode() * 500
    with store.client() as client:
        assert push(client, "faults/errors", data).status_code == 201
        store.proxy.answer(answer)
        store.proxy.cut()  # pooled connections too
        assert_unavailable(client.get(f"/v2/faults/errors/blobs/{digest_of(data)}"))
        assert_unavailable(push(client, "faults/errors", lost))
        store.proxy.up()
        assert client.head(f"/v2/faults/errors/blobs/{digest_of(lost)}").status_code == 404
        assert client.get(f"/v2/faults/errors/blobs/{digest_of(data)}").content == data


BIG = 48 * 1024 * 1024  # more than the socket buffers between the store, dockyard and the client hold


def big_blob(seed: bytes) -> bytes:
    return hashlib.sha256(seed).digest() * (BIG // 32)


def test_a_download_cut_mid_stream_resumes_where_it_broke(store: Faulty) -> None:
    """The store's connection breaks while a blob streams: dockyard continues with a ranged GET from
    where it was, and the client receives the whole blob, unaware."""
    data = big_blob(b"resume")
    with store.client() as client:
        assert push(client, "faults/resume", data).status_code == 201
        with client.stream("GET", f"/v2/faults/resume/blobs/{digest_of(data)}") as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            received = bytearray(next(chunks))
            store.proxy.cut()
            for chunk in chunks:
                received += chunk
        assert hashlib.sha256(received).hexdigest() == digest_of(data).split(":")[1]
    wait_for_log(store.server, r"resuming the read of blobs/sha256/\S+ at byte \d+")


def test_a_download_whose_store_goes_away_is_cut_not_ended_short(store: Faulty) -> None:
    """The store goes down while a blob streams (its length already sent): the client's connection
    is cut, so it sees a failed download rather than a short blob; the operator sees an error line
    naming the digest and repository, and ``dockyard_blob_read_errors_total`` counts it."""
    data = big_blob(b"cut")
    with store.client() as client:
        assert push(client, "faults/cut", data).status_code == 201
        before = metric(store.server, "dockyard_blob_read_errors_total")
        received = bytearray()
        with client.stream("GET", f"/v2/faults/cut/blobs/{digest_of(data)}") as response:
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == len(data)
            chunks = response.iter_raw()
            received += next(chunks)
            store.proxy.down()
            with pytest.raises(httpx.RemoteProtocolError):  # "peer closed connection without sending complete body"
                drain(chunks, received)
        assert len(received) < len(data)
        wait_for_log(store.server, rf"reading blob {digest_of(data)} of repository faults/cut failed in storage")
        assert metric(store.server, "dockyard_blob_read_errors_total") == before + 1
        store.proxy.up()
        assert hashlib.sha256(client.get(f"/v2/faults/cut/blobs/{digest_of(data)}").content).digest() == \
            bytes.fromhex(digest_of(data).split(":")[1])


def test_an_interrupted_chunked_push_continues_to_the_right_digest(store: Faulty) -> None:
    """A chunk sent while the store is down answers 503; the upload keeps what was acknowledged
    (its Range), and the client sends the chunk again and finishes with the right digest."""
    # 10 MiB (a multipart part and a tail), then 48 KB: small enough that the server has read it
    # all when it answers 503 (it answers before reading a body, and then closes the connection).
    first, second = bytes(range(256)) * 40000, b"second chunk" * 4000
    data = first + second
    with store.client() as client:
        location = client.post("/v2/faults/chunked/blobs/uploads/").headers["location"]
        sent = client.patch(location, content=first, headers={"Content-Range": f"0-{len(first) - 1}"})
        assert sent.status_code == 202, sent.text
        location = sent.headers["location"]
        store.proxy.down()
        assert_unavailable(client.patch(location, content=second, headers={
            "Content-Range": f"{len(first)}-{len(data) - 1}"}))
        store.proxy.up()
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{len(first) - 1}"
        resent = client.patch(status.headers["location"], content=second,
                              headers={"Content-Range": f"{len(first)}-{len(data) - 1}"})
        assert resent.status_code == 202, resent.text
        done = client.put(resent.headers["location"], params={"digest": digest_of(data)})
        assert done.status_code == 201, done.text
        assert hashlib.sha256(client.get(f"/v2/faults/chunked/blobs/{digest_of(data)}").content).hexdigest() == \
            digest_of(data).split(":")[1]


def test_a_blob_whose_bytes_vanished_from_the_bucket_answers_404_and_heals(store: Faulty) -> None:
    """A blob the database links whose object was deleted from the bucket behind dockyard's back
    answers 404 BLOB_UNKNOWN saying its bytes are missing (not a 500), is logged and counted in
    ``dockyard_blob_missing_total``; pushing it again restores it."""
    data = b"vanishing bytes" * 1000
    with store.client() as client:
        assert push(client, "faults/vanish", data).status_code == 201
        hex_digest = digest_of(data).split(":")[1]
        key = next(key for key in store.keys("blobs/") if key.endswith(hex_digest))
        store.endpoint.client().delete_object(Bucket=BUCKET, Key=key)
        before = metric(store.server, "dockyard_blob_missing_total")
        missing = client.get(f"/v2/faults/vanish/blobs/{digest_of(data)}")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert "bytes are missing from storage" in missing.json()["errors"][0]["message"]
        assert client.head(f"/v2/faults/vanish/blobs/{digest_of(data)}").status_code == 404
        wait_for_log(store.server, rf"blob {digest_of(data)} of repository faults/vanish is recorded but its "
                                   r"bytes are missing")
        assert metric(store.server, "dockyard_blob_missing_total") == before + 2
        assert push(client, "faults/vanish", data).status_code == 201
        assert client.get(f"/v2/faults/vanish/blobs/{digest_of(data)}").content == data


def test_radosgw_stopped_and_started_by_ci_s3(tmp_path: Path) -> None:
    """radosgw itself stops (``ci/s3/rgw.sh stop``, on a Ceph this test starts for itself): pushes
    and pulls answer 503; once ``ci/s3/rgw.sh start`` brings it back, the same dockyard process
    serves both again."""
    ceph = CephS3(private=True)
    endpoint = ceph.endpoint()
    data, later = b"before radosgw stopped" * 1000, b"after radosgw came back" * 1000
    try:
        with ServerProcess(data_dir=tmp_path / "data", env=s3_env(endpoint, endpoint.endpoint, "rgw")) as server, \
                httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=PATIENCE) as client:
            assert push(client, "faults/rgw", data).status_code == 201
            ceph.gateway("stop")
            assert_unavailable(client.get(f"/v2/faults/rgw/blobs/{digest_of(data)}"))
            assert_unavailable(push(client, "faults/rgw", later))
            ceph.gateway("start")
            assert client.get(f"/v2/faults/rgw/blobs/{digest_of(data)}").content == data
            assert push(client, "faults/rgw", later).status_code == 201
            assert client.get(f"/v2/faults/rgw/blobs/{digest_of(later)}").content == later
    finally:
        ceph.stop()
