"""Concurrent pushes against a real server process: no lost updates, no mixed bytes.

Each test lines its clients up on a `threading.Barrier` so the requests really overlap, and each
client has its own connection.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest

from tests.support import ocihttp
from tests.support.reference import RegistryProcess, is_dockyard, registry_process
from tests.support.server import ADMIN_AUTH

CLIENTS = 20
TIMEOUT = httpx.Timeout(30.0)
T = TypeVar("T")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    process = registry_process(tmp_path_factory.mktemp("concurrency") / "data", workers=2).start()
    yield process
    process.stop()


def together(count: int, url: str, action: Callable[[httpx.Client, int, threading.Barrier], T]) -> list[T]:
    """Run `action(client, index, barrier)` in `count` threads at once; return results in order."""
    barrier = threading.Barrier(count, timeout=30)
    clients = [httpx.Client(base_url=url, timeout=TIMEOUT, auth=ADMIN_AUTH) for _ in range(count)]
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            futures = [pool.submit(action, clients[i], i, barrier) for i in range(count)]
            return [future.result(timeout=60) for future in futures]
    finally:
        for client in clients:
            client.close()


def distinct_bytes(index: int, size: int) -> bytes:
    """`size` bytes that differ for every `index`, yet equal in length, to catch mixing."""
    return hashlib.shake_256(f"client-{index}".encode()).digest(size)


def test_same_blob_pushed_concurrently(server: RegistryProcess) -> None:
    name = "concurrency/same-blob"
    data = distinct_bytes(-1, 1 << 20)
    fallback = not is_dockyard()

    def push(client: httpx.Client, index: int, barrier: threading.Barrier) -> str:
        shape = index % 3
        if shape == 0:
            location = ocihttp.start_upload(client, name)
            barrier.wait()
            return ocihttp.finish_upload(client, location, ocihttp.sha256_digest(data), data)
        barrier.wait()
        if shape == 1:
            return ocihttp.push_blob_single_post(client, name, data, fallback=fallback)
        return ocihttp.push_blob_chunked(client, name, data, 256 * 1024)

    digests = together(CLIENTS, server.url, push)

    assert set(digests) == {ocihttp.sha256_digest(data)}
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        assert ocihttp.get_blob(client, name, digests[0]) == data


def test_same_blob_pushed_to_many_repositories(server: RegistryProcess) -> None:
    data = distinct_bytes(-2, 300_000)

    def push(client: httpx.Client, index: int, barrier: threading.Barrier) -> str:
        location = ocihttp.start_upload(client, f"concurrency/repo-{index}")
        barrier.wait()
        return ocihttp.finish_upload(client, location, ocihttp.sha256_digest(data), data)

    digests = together(CLIENTS, server.url, push)

    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        for index, digest in enumerate(digests):
            assert ocihttp.get_blob(client, f"concurrency/repo-{index}", digest) == data


def test_different_manifests_pushed_to_one_tag(server: RegistryProcess) -> None:
    name = "concurrency/one-tag"
    bodies: dict[str, bytes] = {}
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        for index in range(CLIENTS):
            config = ocihttp.config_blob(f"image-{index}")
            layer = distinct_bytes(index, 10_000)
            ocihttp.push_blob_monolithic(client, name, config)
            ocihttp.push_blob_monolithic(client, name, layer)
            body = ocihttp.image_manifest(ocihttp.Descriptor.of(ocihttp.OCI_CONFIG, config),
                                          [ocihttp.Descriptor.of(ocihttp.OCI_LAYER, layer)])
            bodies[ocihttp.sha256_digest(body)] = body
    ordered = list(bodies.values())

    def push(client: httpx.Client, index: int, barrier: threading.Barrier) -> str:
        barrier.wait()
        return ocihttp.push_manifest(client, name, "latest", ordered[index])

    digests = together(CLIENTS, server.url, push)

    assert set(digests) == set(bodies)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        found = ocihttp.get_manifest(client, name, "latest")
        assert found is not None, "tag 'latest' does not resolve after 20 acknowledged pushes"
        digest, body = found
        assert digest in bodies, f"tag 'latest' points at {digest}, which nobody pushed"
        assert body == bodies[digest]
        assert ocihttp.list_tags(client, name) == ["latest"]
        for pushed, pushed_body in bodies.items():
            assert ocihttp.get_manifest(client, name, pushed) == (pushed, pushed_body)


def test_interleaved_chunked_uploads_do_not_mix(server: RegistryProcess) -> None:
    name = "concurrency/chunked"
    chunk_size = 64 * 1024
    chunks_each = 6

    def upload(client: httpx.Client, index: int, barrier: threading.Barrier) -> tuple[str, bytes]:
        data = distinct_bytes(index, chunk_size * chunks_each)
        location = ocihttp.start_upload(client, name)
        for number, chunk in enumerate(ocihttp.split(data, chunk_size)):
            barrier.wait()  # every session sends its n-th chunk at the same moment
            location = ocihttp.patch_chunk(client, location, number * chunk_size, chunk)
        barrier.wait()
        return ocihttp.finish_upload(client, location, ocihttp.sha256_digest(data)), data

    results = together(CLIENTS, server.url, upload)

    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        for digest, data in results:
            assert ocihttp.get_blob(client, name, digest) == data


def test_concurrent_final_puts_with_wrong_digests_store_nothing(server: RegistryProcess) -> None:
    name = "concurrency/wrong-digest"

    def upload(client: httpx.Client, index: int, barrier: threading.Barrier) -> str:
        data = distinct_bytes(1000 + index, 50_000)
        claimed = ocihttp.sha256_digest(data + b"!")
        location = ocihttp.start_upload(client, name)
        barrier.wait()
        response = client.put(httpx.URL(location).copy_merge_params({"digest": claimed}),
                              content=data, headers={"Content-Type": "application/octet-stream"})
        ocihttp.expect(response, 400)
        return claimed

    claimed = together(CLIENTS, server.url, upload)

    with httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH) as client:
        for digest in claimed:
            assert ocihttp.get_blob(client, name, digest) is None
