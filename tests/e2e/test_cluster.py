"""A three-node dockyard cluster behind nginx: one PostgreSQL database, one shared storage root.

The design says every `dockyard serve` node is stateless (DESIGN.md, "Scale-out"): clients may
land on any node for any request, an upload may move between nodes mid-way, a node may die
without losing an acknowledged push, and periodic jobs run on one node at a time (database
leases). These tests check each claim against real processes.

Needs ``DOCKYARD_TEST_POSTGRES_URL`` (skipped without it, failed without it when ``CI=true``)
and nginx, skopeo and podman.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.clients import Podman, Skopeo
from tests.e2e.images import build_image, unique_seed, write_layout
from tests.support import ocihttp
from tests.support.cluster import Cluster, fetch, fresh_database
from tests.support.databases import POSTGRES_ENV, postgres_unavailable_reason
from tests.support.s3 import BUCKET, CEPH, delete_prefix
from tests.support.server import ADMIN_AUTH

pytestmark = pytest.mark.e2e

TIMEOUT = httpx.Timeout(30.0)
PURGE_INTERVAL = 1  # seconds: short, so the lease is renewed several times within a test


def unavailable(reason: str) -> None:
    """Skip with `reason`, but fail in CI, where PostgreSQL and nginx are provisioned."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so the cluster tests must run")
    pytest.skip(reason)


def storage_env(kind: str, prefix: str) -> dict[str, str]:
    """One Ceph bucket (what a production cluster uses) or one directory all nodes see."""
    if kind == "shared-directory":
        return {}
    endpoint = CEPH.endpoint()
    return {"DOCKYARD_STORAGE__DRIVER": "s3", "DOCKYARD_STORAGE__S3__ENDPOINT": endpoint.endpoint,
            "DOCKYARD_STORAGE__S3__ACCESS_KEY": endpoint.access_key,
            "DOCKYARD_STORAGE__S3__SECRET_KEY": endpoint.secret_key,
            "DOCKYARD_STORAGE__S3__REGION": endpoint.region, "DOCKYARD_STORAGE__S3__BUCKET": BUCKET,
            "DOCKYARD_STORAGE__S3__PREFIX": prefix}


@pytest.fixture(scope="module", params=["s3", "shared-directory"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = asyncio.run(postgres_unavailable_reason())
    if reason is not None:
        unavailable(reason)
    if shutil.which("nginx") is None:
        unavailable("nginx is not installed (apt-get install -y nginx)")
    root = tmp_path_factory.mktemp("cluster")
    prefix = f"cluster-{uuid.uuid4().hex[:8]}"
    with fresh_database(os.environ[POSTGRES_ENV]) as url:
        running = Cluster(root, url, extra_env={
            "DOCKYARD_REGISTRY__UPLOAD_PURGE_INTERVAL_SECONDS": str(PURGE_INTERVAL),
            **storage_env(request.param, prefix)}).start()
        try:
            yield running
        finally:
            running.stop()
            print(running.logs())
            if request.param == "s3":
                delete_prefix(CEPH.endpoint(), BUCKET, prefix)


def blob_bytes(label: str, size: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


def poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (bounded) for an external condition nothing can notify us of."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


# -- 1. real clients through the balancer ------------------------------------------------------

def test_skopeo_push_pull_and_podman_pull_through_nginx(
        cluster: Cluster, skopeo: Skopeo, podman: Podman, tmp_path: Path) -> None:
    image = build_image(unique_seed("cluster"), layer_count=3)
    source = write_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{cluster.lb.host}/cluster/skopeo:v1"
    skopeo.login(cluster.lb.host)  # through nginx: the token may come from another node
    podman.login(cluster.lb.host)

    skopeo.copy(f"oci:{source}:v1", remote)
    out = tmp_path / "out"
    skopeo.copy(remote, f"oci:{out}:v1")

    index = (out / "index.json").read_text()
    assert image.manifest.digest in index, f"pulled layout does not carry {image.manifest.digest}: {index}"
    assert ocihttp.sha256_digest(skopeo.inspect_raw(remote)) == image.manifest.digest
    for blob in image.blobs():
        path = out / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
        assert ocihttp.sha256_digest(path.read_bytes()) == blob.digest

    image_id = podman.pull(f"{cluster.lb.host}/cluster/skopeo:v1")
    assert image_id == image.config.digest.removeprefix("sha256:")


# -- 2. one upload, many nodes ------------------------------------------------------------------

def test_chunked_upload_moves_between_nodes(cluster: Cluster) -> None:
    name = "cluster/chunked-direct"
    data = blob_bytes(unique_seed("chunks"), 3 * 256 * 1024 + 12345)
    chunks = ocihttp.split(data, 256 * 1024)  # four chunks: 256K, 256K, 256K, rest
    n1, n2, n3 = (httpx.Client(base_url=node.url, timeout=TIMEOUT, auth=ADMIN_AUTH, follow_redirects=True)
                  for node in cluster.nodes)
    try:
        location = ocihttp.start_upload(n1, name)
        assert location.startswith("/v2/"), f"Location should be a relative path: {location!r}"
        location = ocihttp.patch_chunk(n2, location, 0, chunks[0])
        location = ocihttp.patch_chunk(n3, location, len(chunks[0]), chunks[1])
        location = ocihttp.patch_chunk(n1, location, 2 * len(chunks[0]), chunks[2])
        status = n2.get(location)
        ocihttp.expect(status, 204)
        assert status.headers.get("Range") == f"0-{3 * len(chunks[0]) - 1}"
        final = n1.put(str(httpx.URL(location).copy_merge_params(
            {"digest": ocihttp.sha256_digest(data)})), content=chunks[3],
            headers={"Content-Type": "application/octet-stream"})
        ocihttp.expect(final, 201)
    finally:
        for client in (n1, n2, n3):
            client.close()
    with httpx.Client(base_url=cluster.lb.url, timeout=TIMEOUT, auth=ADMIN_AUTH, follow_redirects=True) as lb:
        for _ in cluster.nodes:  # each node serves it
            assert ocihttp.get_blob(lb, name, ocihttp.sha256_digest(data)) == data


def test_chunked_upload_through_nginx_fresh_connections(cluster: Cluster) -> None:
    """Every request on a new connection, so nginx's round-robin spreads the upload's steps."""
    name = "cluster/chunked-lb"
    data = blob_bytes(unique_seed("lb-chunks"), 7 * 100_000 + 3)
    digest = ocihttp.sha256_digest(data)

    def fresh() -> httpx.Client:
        return httpx.Client(base_url=cluster.lb.url, timeout=TIMEOUT, auth=ADMIN_AUTH, follow_redirects=True)

    with fresh() as client:
        location = ocihttp.start_upload(client, name)
    offset = 0
    for chunk in ocihttp.split(data, 100_000):
        with fresh() as client:
            location = ocihttp.patch_chunk(client, location, offset, chunk)
        offset += len(chunk)
    with fresh() as client:
        ocihttp.finish_upload(client, location, digest)
    for _ in range(len(cluster.nodes)):
        with fresh() as client:
            assert ocihttp.stream_blob_digest(client, name, digest) == (digest, len(data))


# -- 4. job leases (before the node kill, whose dead holder would keep the lease for its TTL) ----

def test_uploads_purge_lease_has_one_holder(cluster: Cluster) -> None:
    url = cluster.database_url

    def lease() -> list[tuple[str, object]]:
        rows = asyncio.run(fetch(url, "SELECT holder, expires_at FROM job_leases WHERE name = $1",
                                 "uploads-purge"))
        return [(row["holder"], row["expires_at"]) for row in rows]

    poll(lambda: len(lease()) == 1, 15, "the uploads-purge lease to be taken")
    seen = [lease()[0]]

    def renewed_twice() -> bool:
        current = lease()
        assert len(current) == 1, f"uploads-purge lease rows: {current}"
        if current[0] != seen[-1]:
            seen.append(current[0])
        return len(seen) >= 3

    # All three schedulers try every PURGE_INTERVAL seconds; the holder renews, nobody else takes it.
    poll(renewed_twice, 10 * PURGE_INTERVAL + 10, "the lease to be renewed twice")
    holders = {holder for holder, _ in seen}
    assert len(holders) == 1, f"the uploads-purge lease changed hands while every node was alive: {seen}"
    holder = holders.pop()
    pid = int(holder.rsplit(":", 1)[1])
    owners = [i for i, node in enumerate(cluster.nodes) if pid in cluster.group_pids(node)]
    assert len(owners) == 1, f"lease holder {holder!r} is not a process of exactly one node: {owners}"
    print(f"uploads-purge held by node {owners[0] + 1} ({holder}); renewals seen: {len(seen) - 1}")


# -- 3. a node dies under load --------------------------------------------------------------------

CLIENTS = 8
OPS_PER_CLIENT = 12
KILL_AFTER = 20  # acknowledged pushes before the kill
ATTEMPTS = 5


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, repo, ref/digest)
    retried: int = 0
    failed: list[str] = field(default_factory=list)
    enough: threading.Event = field(default_factory=threading.Event)

    def ack(self, kind: str, repo: str, ref: str) -> None:
        with self.lock:
            self.acknowledged.append((kind, repo, ref))
            if len(self.acknowledged) >= KILL_AFTER:
                self.enough.set()


def test_node_kill_loses_no_acknowledged_push(cluster: Cluster) -> None:
    tally = Tally()
    victim = cluster.nodes[1]
    manifests: dict[tuple[str, str], str] = {}

    def attempt(op: Callable[[httpx.Client], None]) -> None:
        for n in range(ATTEMPTS):
            try:
                with httpx.Client(base_url=cluster.lb.url, timeout=TIMEOUT, auth=ADMIN_AUTH,
                                  follow_redirects=True) as client:
                    op(client)
                return
            except (httpx.TransportError, ocihttp.UnexpectedResponse) as exc:
                with tally.lock:
                    tally.retried += 1
                if n == ATTEMPTS - 1:
                    with tally.lock:
                        tally.failed.append(repr(exc)[:300])

    def worker(index: int) -> None:
        repo = f"cluster/kill-{index}"
        for op_no in range(OPS_PER_CLIENT):
            label = f"{repo}-{op_no}-{unique_seed()}"
            data = blob_bytes(label, 100_000 + (op_no * 97_000) % 1_000_000)
            shape = (index + op_no) % 3

            if shape == 0:
                def push(client: httpx.Client, data: bytes = data) -> None:
                    digest = ocihttp.push_blob_monolithic(client, repo, data)
                    tally.ack("blob", repo, digest)
            elif shape == 1:
                def push(client: httpx.Client, data: bytes = data) -> None:
                    digest = ocihttp.push_blob_chunked(client, repo, data, 128 * 1024)
                    tally.ack("blob", repo, digest)
            else:
                tag = f"t{op_no}"

                def push(client: httpx.Client, data: bytes = data, label: str = label, tag: str = tag) -> None:
                    digest, _ = ocihttp.push_image(client, repo, tag, label, [data])
                    with tally.lock:
                        manifests[(repo, tag)] = digest
                    tally.ack("manifest", repo, tag)
            attempt(push)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(worker, i) for i in range(CLIENTS)]
        assert tally.enough.wait(timeout=60), f"only {len(tally.acknowledged)} pushes acknowledged in 60s"
        acked_at_kill = len(tally.acknowledged)
        victim.kill()
        for future in futures:
            future.result(timeout=120)

    lost: list[str] = []
    with httpx.Client(base_url=cluster.lb.url, timeout=TIMEOUT, auth=ADMIN_AUTH, follow_redirects=True) as client:
        for kind, repo, ref in tally.acknowledged:
            try:
                if kind == "blob":
                    if ocihttp.get_blob(client, repo, ref) is None:
                        lost.append(f"blob {repo}@{ref}")
                else:
                    got = ocihttp.get_manifest(client, repo, ref)
                    if got is None or got[0] != manifests[(repo, ref)]:
                        lost.append(f"manifest {repo}:{ref} -> {got and got[0]}")
            except AssertionError as exc:
                lost.append(f"{kind} {repo} {ref}: {exc}")
    print(f"node kill: acknowledged={len(tally.acknowledged)} (at kill {acked_at_kill}) "
          f"retried={tally.retried} failed={len(tally.failed)} lost={len(lost)}")
    assert lost == [], f"{len(lost)} acknowledged pushes are gone: {lost[:10]}"
    assert tally.failed == [], f"pushes that failed {ATTEMPTS} times through nginx: {tally.failed[:5]}"

    victim.start()
    with httpx.Client(base_url=victim.url, timeout=TIMEOUT, auth=ADMIN_AUTH, follow_redirects=True) as direct:
        for kind, repo, ref in tally.acknowledged[:: max(1, len(tally.acknowledged) // 10)]:
            if kind == "blob":
                assert ocihttp.get_blob(direct, repo, ref) is not None, f"restarted node lacks {repo}@{ref}"
            else:
                got = ocihttp.get_manifest(direct, repo, ref)
                assert got is not None, f"restarted node lacks {repo}:{ref}"
                assert got[0] == manifests[(repo, ref)]
        ocihttp.push_blob_chunked(direct, "cluster/after-restart", blob_bytes("after", 200_000), 64 * 1024)
