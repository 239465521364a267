"""The S3 driver's seam when the store fails: every botocore failure becomes StorageUnavailable.

The driver talks to the run's real radosgw (``tests/support/s3.py``) through a TCP proxy the test
controls (``tests/support/tcpproxy.py``), with short timeouts and two attempts per request. A store
that refuses connections (EndpointConnectionError), answers a 5xx (SlowDown, InternalError:
ClientError) or garbage (ConnectionClosedError and kin) makes every operation, reads, writers and
moves alike, raise ``StorageUnavailable`` (503 for the client), and nothing half-written appears at
a path; a connection cut in the middle of a read is resumed where it broke; the same driver works
again once the store is back. (A store that hangs, ReadTimeoutError, is in
``tests/e2e/test_storage_faults.py``: here it would cost each operation its timeouts.)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from dockyard.config import S3Config
from dockyard.errors import StorageUnavailable
from dockyard.storage.driver import PathNotFound
from dockyard.storage.s3 import PART_SIZE, S3Driver
from tests.support.s3 import BUCKET, S3Endpoint, delete_prefix
from tests.support.tcpproxy import TcpProxy

SLOWDOWN = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 77\r\n"
            b"Connection: close\r\n\r\n<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message/></Error>\n\n\n\n")
INTERNAL = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: 71\r\n"
            b"Connection: close\r\n\r\n<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message/></Error>")
GARBAGE = b"\x00\x01 definitely not HTTP \xff\r\n\r\n"


@pytest.fixture
async def proxied(s3_endpoint: S3Endpoint) -> AsyncIterator[tuple[S3Driver, TcpProxy]]:
    port = int(s3_endpoint.endpoint.rsplit(":", 1)[1])
    prefix = f"faults-{secrets.token_hex(6)}"
    with TcpProxy(("127.0.0.1", port)) as proxy:
        driver = S3Driver(S3Config(
            endpoint=f"http://{proxy.address}", region=s3_endpoint.region, bucket=BUCKET, prefix=prefix,
            access_key=s3_endpoint.access_key, secret_key=s3_endpoint.secret_key, redirect=False,
            connect_timeout=0.5, read_timeout=1.0, max_attempts=2))
        try:
            yield driver, proxy
        finally:
            proxy.up()
            delete_prefix(s3_endpoint, BUCKET, prefix)


async def read_all(driver: S3Driver, path: str) -> bytes:
    return b"".join([chunk async for chunk in driver.read(path)])


async def write_and_commit(driver: S3Driver, path: str) -> None:
    writer = await driver.writer(path)
    try:
        await writer.write(b"w" * 1000)
        await writer.commit()
    finally:
        await writer.close()


OPERATIONS: dict[str, Callable[[S3Driver], Awaitable[Any]]] = {
    "stat": lambda d: d.stat("blobs/kept"),
    "read": lambda d: read_all(d, "blobs/kept"),
    "get_content": lambda d: d.get_content("blobs/kept"),
    "put_content": lambda d: d.put_content("blobs/new", b"never stored"),
    "writer": lambda d: write_and_commit(d, "uploads/u1/data"),
    "move": lambda d: d.move("blobs/kept", "blobs/moved"),
}


def break_store(proxy: TcpProxy, how: str) -> None:
    if how == "down":
        proxy.down()
    else:
        proxy.answer({"slowdown": SLOWDOWN, "internal": INTERNAL, "garbage": GARBAGE}[how])
        proxy.cut()  # the pooled connections too


@pytest.mark.parametrize("how", ["down", "slowdown", "internal", "garbage"])
async def test_every_operation_on_a_failing_store_raises_storage_unavailable(
        proxied: tuple[S3Driver, TcpProxy], how: str) -> None:
    driver, proxy = proxied
    await driver.put_content("blobs/kept", b"kept bytes")
    break_store(proxy, how)
    outcomes = {}
    for name, operation in OPERATIONS.items():
        try:
            await operation(driver)
            outcomes[name] = "no error"
        except Exception as exc:  # which exception each raised is the result
            outcomes[name] = type(exc).__name__
    assert outcomes == dict.fromkeys(OPERATIONS, StorageUnavailable.__name__)
    proxy.up()
    assert await driver.get_content("blobs/kept") == b"kept bytes"
    for path in ("blobs/new", "blobs/moved", "uploads/u1/data"):
        with pytest.raises(PathNotFound):
            await driver.stat(path)
    await write_and_commit(driver, "uploads/u1/data")
    assert await driver.get_content("uploads/u1/data") == b"w" * 1000


async def test_a_read_cut_midway_resumes_where_it_broke(proxied: tuple[S3Driver, TcpProxy]) -> None:
    driver, proxy = proxied
    data = secrets.token_bytes(1024) * (24 * 1024)  # 24 MiB: more than the sockets in between hold
    await driver.put_content("blobs/big", data)
    chunks = driver.read("blobs/big")
    received = bytearray(await anext(chunks))
    proxy.cut()
    async for chunk in chunks:
        received += chunk
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


async def test_a_failed_append_saves_nothing_and_the_saved_state_still_resumes(
        proxied: tuple[S3Driver, TcpProxy]) -> None:
    """A writer whose request failed leaves nothing that a writer resumed from the state saved
    before it would misread: the upload continues from that state to the right content."""
    driver, proxy = proxied
    first, second = b"a" * (PART_SIZE + 100), b"b" * 5000
    writer = await driver.writer("uploads/u2/data")
    await writer.write(first)
    await writer.close()
    state = writer.state()
    resumed = await driver.writer("uploads/u2/data", resume=True, state=state)
    proxy.down()
    with pytest.raises(StorageUnavailable):
        await resumed.write(second + b"c" * PART_SIZE)  # a full part: the store is asked at once
    await resumed.close()  # nothing to keep after a failure: no request to a store that is down
    proxy.up()
    again = await driver.writer("uploads/u2/data", resume=True, state=state)
    assert again.size == len(first)
    await again.write(second)
    await again.commit()
    await again.close()
    assert await driver.get_content("uploads/u2/data") == first + second
