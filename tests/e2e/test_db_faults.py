"""The database fails under a running registry: PostgreSQL unreachable or silent, SQLite locked.

PostgreSQL is never stopped (other tests share it): every node reaches it through a TCP proxy the
test controls (tests/support/tcpproxy.py), whose ``down()`` refuses and cuts connections as a
stopped server does and whose ``hang()`` passes nothing on, as a server or network that stopped
answering. Two ``dockyard serve`` nodes of two workers each share one database and one storage
root. What the issue promises, and each test shows:

- a request that needs the database answers 503 with ``Retry-After`` and an OCI error body
  (code ``UNAVAILABLE``), on pushes, pulls, Basic and bearer authentication, ``/token`` and
  ``/api/v1``; never a 500 and never a hang past the configured timeouts;
- ``/readyz`` answers 503 while the database is unreachable, in bounded time;
- when the database returns every node serves again by itself, with the same worker processes;
- every acknowledged write is there afterwards, and an upload interrupted by the outage is
  continued by the client to the right digest.

Needs ``DOCKYARD_TEST_POSTGRES_URL`` for the PostgreSQL tests (skipped without it, failed without
it when ``CI=true``); the SQLite test needs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support import ocihttp
from tests.support.cluster import fetch, fresh_database
from tests.support.databases import POSTGRES_ENV, postgres_unavailable_reason
from tests.support.server import ADMIN_AUTH, ServerProcess
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e

# Short bounds, so an outage shows within seconds: opening a connection, waiting for a free one,
# any one query. A request that needs the database answers within about their sum.
TIMEOUTS = {
    "DOCKYARD_DATABASE__CONNECT_TIMEOUT": "2",
    "DOCKYARD_DATABASE__POOL_TIMEOUT": "2",
    "DOCKYARD_DATABASE__COMMAND_TIMEOUT": "3",
}
# A client gives up far past those bounds: a request still unanswered then is a hang.
CLIENT_TIMEOUT = httpx.Timeout(30.0)
RECOVERY_DEADLINE = 30.0  # seconds for every node to serve again once the database is back
ACCEPT = {"Accept": ocihttp.MANIFEST_ACCEPT}


def unavailable(reason: str) -> None:
    """Skip with `reason`, but fail in CI, where PostgreSQL is provisioned."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so the database fault tests must run")
    pytest.skip(reason)


def poll(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> float:
    """Wait (bounded) for an external condition; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what if isinstance(what, str) else what()}")
        time.sleep(0.1)
    return time.monotonic() - started


def blob_bytes(label: str, size: int = 2048) -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


def problem_with_503(response: httpx.Response) -> str | None:
    """Why a 503 is not the promised one (Retry-After and an OCI UNAVAILABLE body), or None."""
    if response.headers.get("Retry-After", "").isdigit() is False:
        return f"no Retry-After: {dict(response.headers)}"
    try:
        codes = [error["code"] for error in response.json()["errors"]]
    except (ValueError, KeyError, TypeError):
        return f"not an OCI error body: {response.text[:200]!r}"
    return None if codes == ["UNAVAILABLE"] else f"codes {codes}"


def ready(node: ServerProcess) -> int:
    """The node's /readyz status (0 when it does not answer at all)."""
    try:
        return httpx.get(f"{node.url}/readyz", timeout=CLIENT_TIMEOUT).status_code
    except httpx.TransportError:
        return 0


def worker_pids(node: ServerProcess) -> set[int]:
    """Every live pid in `node`'s process group: the supervisor and its granian workers."""
    return node.group_pids()


# -- the PostgreSQL setup: two nodes behind one proxy ------------------------------------------

@dataclass
class Deployment:
    proxy: TcpProxy
    nodes: list[ServerProcess]
    env: dict[str, str]
    root: Path
    database_url: str  # straight to PostgreSQL, not through the proxy: for the test's own queries

    def wait_all_ready(self) -> float:
        return poll(lambda: all(ready(node) == 200 for node in self.nodes), RECOVERY_DEADLINE,
                    "every node's /readyz to answer 200")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    reason = asyncio.run(postgres_unavailable_reason())
    if reason is not None:
        unavailable(reason)
    admin_url = os.environ[POSTGRES_ENV]
    target = make_url(admin_url)
    root = tmp_path_factory.mktemp("dbfaults")
    with fresh_database(admin_url) as url, TcpProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
        proxied = make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = {"DOCKYARD_DATABASE__URL": proxied, "DOCKYARD_DATABASE__AUTO_MIGRATE": "false",
               "DOCKYARD_STORAGE__ROOT": str(root / "shared-storage"), **TIMEOUTS}
        migrated = subprocess.run([sys.executable, "-m", "dockyard", "migrate", "--data-dir", str(root / "m")],
                                  env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
                                  check=False)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        nodes = [ServerProcess(data_dir=root / f"node{index}" / "data", workers=2, env=env) for index in (1, 2)]
        try:
            for node in nodes:  # both start at once: on a busy CI machine each takes seconds
                node.spawn()
            for node in nodes:
                node._wait_ready("dockyard", "/readyz", 90)
            yield Deployment(proxy, nodes, env, root, url)
        finally:
            for node in nodes:
                node.stop()
            for node in nodes:
                print(f"--- {node.log_path}", *node.log().splitlines()[-80:], sep="\n")


@pytest.fixture
def healthy(deployment: Deployment) -> Iterator[Deployment]:
    """The deployment with the database reachable before and after the test."""
    deployment.proxy.up()
    deployment.wait_all_ready()
    yield deployment
    deployment.proxy.up()


# -- load: every kind of request, recorded -----------------------------------------------------

@dataclass
class Ledger:
    """Every answer by kind of request, the acknowledged writes, and anything not allowed."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    succeeded: Counter[str] = field(default_factory=Counter)
    blobs: dict[str, str] = field(default_factory=dict)  # digest -> repository
    manifests: dict[tuple[str, str], str] = field(default_factory=dict)  # (repository, tag) -> digest
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, response: httpx.Response, *ok: int) -> bool:
        """True when the request succeeded; a 503 must be the promised one; anything else is wrong."""
        status = response.status_code
        with self.lock:
            self.statuses[(kind, status)] += 1
            if status in ok:
                self.succeeded[kind] += 1
                return True
            problem = problem_with_503(response) if status == 503 else f"unexpected {status}: {response.text[:300]!r}"
            if problem is not None:
                self.problems.append(f"{kind}: {response.request.method} {response.request.url.path}: {problem}")
        return False

    def seen(self, kind: str, status: int) -> int:
        with self.lock:
            return self.statuses[(kind, status)]


KINDS = ("push", "manifest", "pull-basic", "token", "pull-bearer", "api")


def run_client(node: ServerProcess, index: int, ledger: Ledger, stop: threading.Event, repo: str,
               pulled: tuple[str, str]) -> None:
    """One client against one node, cycling through every kind of request until `stop`.

    Every request is recorded; a push's blob and a manifest's tag are recorded as acknowledged
    only on 201."""
    with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
        config_digest: str | None = None
        token: str | None = None  # kept: a bearer pull during the outage uses one issued before
        for step in itertools.count():
            if stop.is_set():
                return
            kind = KINDS[(step + index) % len(KINDS)]  # clients start at different kinds
            try:
                if kind == "push":
                    data = blob_bytes(f"{repo}-{index}-{step}")
                    digest = ocihttp.sha256_digest(data)
                    started = client.post(f"/v2/{repo}/blobs/uploads/")
                    if ledger.record(kind, started, 202):
                        done = client.put(httpx.URL(started.headers["Location"]).copy_merge_params(
                            {"digest": digest}), content=data, headers={"Content-Type": "application/octet-stream"})
                        if ledger.record(kind, done, 201):
                            with ledger.lock:
                                ledger.blobs[digest] = repo
                            config_digest = config_digest or digest
                elif kind == "manifest" and config_digest is not None:
                    config = ocihttp.Descriptor(ocihttp.OCI_CONFIG, config_digest, 2048)
                    body = ocihttp.image_manifest(config, [])
                    tag = f"t{index}-{step}"
                    response = client.put(f"/v2/{repo}/manifests/{tag}", content=body,
                                          headers={"Content-Type": ocihttp.OCI_MANIFEST})
                    if ledger.record(kind, response, 201):
                        with ledger.lock:
                            ledger.manifests[(repo, tag)] = ocihttp.sha256_digest(body)
                elif kind == "pull-basic":
                    ledger.record(kind, client.get(f"/v2/{pulled[0]}/manifests/{pulled[1]}", headers=ACCEPT), 200)
                elif kind == "token":
                    issued = client.get("/token", params={"service": "dockyard",
                                                          "scope": f"repository:{pulled[0]}:pull"})
                    if ledger.record(kind, issued, 200):
                        token = issued.json()["token"]
                elif kind == "pull-bearer" and token is not None:
                    response = httpx.get(f"{node.url}/v2/{pulled[0]}/manifests/{pulled[1]}",
                                         headers={**ACCEPT, "Authorization": f"Bearer {token}"},
                                         timeout=CLIENT_TIMEOUT)
                    ledger.record(kind, response, 200)
                elif kind == "api":
                    ledger.record(kind, client.get("/api/v1/projects"), 200)
            except httpx.TransportError as exc:  # a hang past the client's timeout, or a dropped connection
                with ledger.lock:
                    ledger.problems.append(f"{kind}: {type(exc).__name__}: {exc}")


@dataclass
class Load:
    deployment: Deployment
    repo: str
    pulled: tuple[str, str]
    clients_per_node: int = 3
    ledger: Ledger = field(default_factory=Ledger)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for index, (node, _) in enumerate(itertools.product(self.deployment.nodes, range(self.clients_per_node))):
            thread = threading.Thread(target=run_client, daemon=True,
                                      args=(node, index, self.ledger, self.stop, self.repo, self.pulled))
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self.threads), "a client is still waiting for an answer"

    def wait_for_every_kind_to_succeed(self, times: int, what: str) -> float:
        def enough() -> bool:
            with self.ledger.lock:
                return all(self.ledger.succeeded[kind] >= times for kind in KINDS)
        return poll(enough, 60, lambda: f"every kind of request to succeed {times} times ({what}): "
                                        f"{dict(self.ledger.statuses)}")

    def wait_for_every_kind(self, status: int, what: str) -> float:
        return poll(lambda: all(self.ledger.seen(kind, status) for kind in KINDS), 60,
                    lambda: f"every kind of request to answer {status} ({what}): {dict(self.ledger.statuses)}")


def seed_image(node: ServerProcess, repo: str) -> tuple[str, str]:
    with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
        ocihttp.push_image(client, repo, "seed", "seed", [blob_bytes(f"{repo}-seed-layer")])
    return repo, "seed"


def verify_acknowledged(deployment: Deployment, ledger: Ledger) -> None:
    """Every 201 the clients got names content that is there, with the right digest, on every node."""
    assert ledger.blobs, f"no blob was acknowledged: {dict(ledger.statuses)}"
    assert ledger.manifests, f"no manifest was acknowledged: {dict(ledger.statuses)}"
    for node in deployment.nodes:
        with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
            for digest, repo in ledger.blobs.items():
                assert ocihttp.get_blob(client, repo, digest) is not None, f"acknowledged blob {digest} is gone"
            for (repo, tag), digest in ledger.manifests.items():
                found = ocihttp.get_manifest(client, repo, tag)
                assert found is not None, f"acknowledged manifest {repo}:{tag} is gone"
                assert found[0] == digest, f"acknowledged manifest {repo}:{tag} is {found[0]}, was {digest}"


def recorded_pulls(deployment: Deployment, repository: str) -> int:
    """The pulls of `repository` in the audit log (rows of one batch count their pulls)."""
    rows = asyncio.run(fetch(deployment.database_url, "SELECT detail FROM events WHERE name = 'manifest.pulled' "
                             "AND repository = $1", repository))
    return sum(int(json.loads(row["detail"])["count"]) for row in rows)


# -- the tests ---------------------------------------------------------------------------------

def outage_then_recovery(deployment: Deployment, load: Load, outage: Callable[[], None], what: str, *,
                         before: int) -> float:
    """Under ``load``: every kind of request succeeds ``before`` times, ``outage()`` starts, every
    node turns unready and every kind of request answers 503; then the proxy comes up and every
    kind succeeds again. Returns how long the nodes took to be ready again."""
    load.wait_for_every_kind_to_succeed(before, "before the outage")
    outage()
    poll(lambda: all(ready(node) == 503 for node in deployment.nodes), 30, "/readyz to answer 503")
    load.wait_for_every_kind(503, what)
    succeeded = dict(load.ledger.succeeded)
    deployment.proxy.up()
    recovery = deployment.wait_all_ready()
    poll(lambda: all(load.ledger.succeeded[kind] > succeeded[kind] for kind in KINDS), RECOVERY_DEADLINE,
         lambda: f"every kind of request to succeed again: {dict(load.ledger.statuses)}")
    return recovery


def test_postgres_down_under_load_answers_503_and_recovers_without_losing_acks(healthy: Deployment) -> None:
    """PostgreSQL refusing connections mid-load (``down()``): every kind of request (blob and
    manifest pushes, pulls with Basic and with a bearer token, /token, /api/v1) answers 503 with
    Retry-After and an UNAVAILABLE body, never a 500 or a hang; /readyz answers 503 on every node.
    When PostgreSQL returns, every node serves again within seconds with the same worker
    processes (nothing restarted), and every push acknowledged before, during or after the outage
    is there with its digest; no pull is missing from the audit log (the batches the outage
    held back are written once it ends). The operator sees one warning per kind of failure (no
    traceback) and the 503s counted by route in dockyard_http_requests_total."""
    deployment = healthy
    pids = [worker_pids(node) for node in deployment.nodes]
    assert all(len(group) == 3 for group in pids), pids  # the supervisor and two workers
    pulled = seed_image(deployment.nodes[0], "faults/seed-down")
    with Load(deployment, "faults/down", pulled) as load:
        recovery = outage_then_recovery(deployment, load, deployment.proxy.down, "database down", before=2)
    print(f"every node ready {recovery:.2f}s after PostgreSQL came back; answers: {dict(load.ledger.statuses)}")
    assert not load.ledger.problems, "\n".join(load.ledger.problems[:20])
    assert [worker_pids(node) for node in deployment.nodes] == pids, "a worker died or was restarted"
    verify_acknowledged(deployment, load.ledger)
    pulls = load.ledger.succeeded["pull-basic"] + load.ledger.succeeded["pull-bearer"]
    recorded = poll(lambda: recorded_pulls(deployment, pulled[0]) >= pulls, 30,
                    lambda: f"the {pulls} pulls to be in the audit log: {recorded_pulls(deployment, pulled[0])}")
    print(f"the audit log had every pull {recorded:.1f}s after the load ended")
    for node in deployment.nodes:  # the operator counts the 503s per route in the request metric
        poll(lambda node=node: 'route="manifest",status="503"' in httpx.get(f"{node.url}/metrics").text, 30,
             "dockyard_http_requests_total to count the 503s")
    for node in deployment.nodes:  # the operator reads a warning per kind of failure, not tracebacks
        log = node.log()
        assert "Traceback" not in log, log[-3000:]
        assert "WARNING dockyard.db database unavailable" in log
        assert "WARNING dockyard.db database available again" in log


def test_postgres_silent_answers_503_within_the_timeouts(healthy: Deployment) -> None:
    """PostgreSQL accepting connections but answering nothing (``hang()``): requests that need it
    answer 503 with Retry-After within the configured connect, pool and command timeouts (the
    clients wait 30 s, ten times their sum, so a hang fails the test), /readyz answers 503, and
    the nodes serve again when it answers."""
    deployment = healthy
    pulled = seed_image(deployment.nodes[1], "faults/seed-hang")
    with Load(deployment, "faults/hang", pulled, clients_per_node=2) as load:
        recovery = outage_then_recovery(deployment, load, deployment.proxy.hang, "database silent", before=1)
    print(f"every node ready {recovery:.2f}s after PostgreSQL answered again; answers: {dict(load.ledger.statuses)}")
    assert not load.ledger.problems, "\n".join(load.ledger.problems[:20])
    verify_acknowledged(deployment, load.ledger)


def test_chunked_upload_interrupted_by_the_outage_is_continued(healthy: Deployment) -> None:
    """A chunked upload whose PATCH reaches storage but cannot record its progress because
    PostgreSQL went away mid-request answers 503; after the outage the client asks the upload's
    Range, sends what is missing, and the blob completes with the right digest, readable on both
    nodes (the upload moved between nodes too)."""
    deployment = healthy
    first, second = deployment.nodes
    repo = "faults/chunked"
    data = blob_bytes("chunked-upload", 3 * 65536)
    digest = ocihttp.sha256_digest(data)
    chunks = ocihttp.split(data, 65536)
    with httpx.Client(base_url=first.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
        location = ocihttp.start_upload(client, repo)
        location = ocihttp.patch_chunk(client, location, 0, chunks[0])

        def body_that_cuts_the_database() -> Iterator[bytes]:
            yield chunks[1][:32768]
            deployment.proxy.down()  # after the upload was looked up, before its progress is saved
            yield chunks[1][32768:]

        interrupted = client.patch(location, content=body_that_cuts_the_database(),
                                   headers={"Content-Type": "application/octet-stream",
                                            "Content-Range": f"65536-{2 * 65536 - 1}",
                                            "Content-Length": str(len(chunks[1]))})
        assert interrupted.status_code == 503, interrupted.text
        assert problem_with_503(interrupted) is None, problem_with_503(interrupted)
    deployment.proxy.up()
    deployment.wait_all_ready()
    with httpx.Client(base_url=second.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
        status = ocihttp.expect(client.get(location), 204)
        end = int(status.headers["Range"].split("-")[1]) + 1
        assert end in (65536, 2 * 65536), f"the upload's Range is {status.headers['Range']}"
        for offset in range(end, len(data), 65536):
            location = ocihttp.patch_chunk(client, location, offset, data[offset:offset + 65536])
        assert ocihttp.finish_upload(client, location, digest) == digest
    for node in deployment.nodes:
        with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
            assert ocihttp.get_blob(client, repo, digest) == data


# -- SQLite locked past the busy timeout -------------------------------------------------------

def test_sqlite_locked_past_the_busy_timeout_answers_503_then_recovers(tmp_path: Path) -> None:
    """Another process holding SQLite's write lock longer than ``database.busy_timeout_ms``: a
    push, and /token (it writes the login to the audit log), answer 503 with Retry-After (not a
    500, not a hang) while pulls, tag lists and /readyz keep working (WAL readers do not wait for
    the writer). Once the lock is released, pushes succeed again on the same workers, and the log
    holds a warning, not a traceback."""
    busy_ms = 300
    server = ServerProcess(data_dir=tmp_path / "data", workers=1,
                           env={"DOCKYARD_DATABASE__BUSY_TIMEOUT_MS": str(busy_ms)}).start()
    try:
        pids = worker_pids(server)
        with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
            repo, tag = seed_image(server, "faults/sqlite")
            locker = sqlite3.connect(tmp_path / "data" / "dockyard.db", isolation_level=None, timeout=10)
            try:
                locker.execute("BEGIN EXCLUSIVE")
                refused = client.post(f"/v2/{repo}/blobs/uploads/")
                assert refused.status_code == 503, refused.text
                assert problem_with_503(refused) is None, problem_with_503(refused)
                ocihttp.expect(client.get(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT), 200)
                ocihttp.expect(client.get(f"/v2/{repo}/tags/list"), 200)
                # /token records the login in the audit log: a write, so it waits and answers 503.
                token = client.get("/token", params={"service": "dockyard", "scope": f"repository:{repo}:pull"})
                assert token.status_code == 503, token.text
                assert problem_with_503(token) is None, problem_with_503(token)
                assert ready(server) == 200  # reads work: taking this node out would not help
            finally:
                locker.close()
            ocihttp.push_blob_monolithic(client, repo, blob_bytes("after the lock"))
            assert ocihttp.get_manifest(client, repo, tag) is not None
        assert worker_pids(server) == pids, "a worker died or was restarted"
        log = server.log()
        assert "Traceback" not in log, log[-3000:]
        assert "database unavailable" in log
    finally:
        server.stop()
        print(f"--- {server.log_path}", *server.log().splitlines()[-60:], sep="\n")


def test_worker_respawned_during_the_outage_serves_once_postgres_answers(healthy: Deployment) -> None:
    """A worker that dies while PostgreSQL is unreachable (SIGKILL here) is respawned by the
    supervisor once, not in a loop: the new worker cannot check the schema or load the signing
    keys, so it starts anyway, answers 503 (/readyz unready) and logs why; once PostgreSQL
    answers it finishes starting by itself and serves pushes, with no further restart."""
    deployment = healthy
    node = deployment.nodes[0]
    assert node.proc is not None
    workers = worker_pids(node) - {node.proc.pid}
    deployment.proxy.down()
    poll(lambda: ready(node) == 503, 30, "/readyz to answer 503")
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    poll(lambda: len(worker_pids(node) - {node.proc.pid} - workers) == 1, 30, "the supervisor to respawn the worker")
    poll(lambda: "unavailable at start-up" in node.log(), 30, "the new worker to start without the database")
    with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
        for _ in range(4):  # both workers, the new one included, answer 503 (fresh connections)
            with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as fresh:
                response = fresh.post("/v2/faults/respawn/blobs/uploads/")
                assert response.status_code == 503, response.text
                assert problem_with_503(response) is None, problem_with_503(response)
        pids = worker_pids(node)
        deployment.proxy.up()
        recovery = poll(lambda: "this worker serves now" in node.log(), RECOVERY_DEADLINE,
                        "the respawned worker to finish starting")
        deployment.wait_all_ready()
        print(f"the respawned worker served {recovery:.2f}s after PostgreSQL came back")
        for index in range(6):  # more pushes than workers, each on a fresh connection
            with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as fresh:
                ocihttp.push_blob_monolithic(fresh, "faults/respawn", blob_bytes(f"respawn-{index}"))
        assert ocihttp.get_blob(client, "faults/respawn", ocihttp.sha256_digest(blob_bytes("respawn-5")))
    assert worker_pids(node) == pids, "a worker died or was restarted again"
    assert node.log().count("exited unexpectedly") == 1, node.log()[-3000:]


def test_final_put_interrupted_by_the_outage_is_retried(healthy: Deployment) -> None:
    """The closing PUT of a chunked upload (with its last chunk as body) whose bytes are verified
    and stored but whose rows cannot be written because PostgreSQL went away mid-request answers
    503; the client sends the same PUT again after the outage (to the other node) and gets 201 with
    the right digest, and the blob reads back whole on both nodes."""
    deployment = healthy
    first, second = deployment.nodes
    repo = "faults/final-put"
    data = blob_bytes("final-put", 2 * 65536)
    digest = ocihttp.sha256_digest(data)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": "65536",
               "Content-Range": f"65536-{2 * 65536 - 1}"}
    with httpx.Client(base_url=first.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
        location = ocihttp.start_upload(client, repo)
        location = ocihttp.patch_chunk(client, location, 0, data[:65536])

        def last_chunk_that_cuts_the_database() -> Iterator[bytes]:
            yield data[65536:65536 + 32768]
            deployment.proxy.down()  # the upload was looked up; its rows are written after the bytes
            yield data[65536 + 32768:]

        interrupted = client.put(httpx.URL(location).copy_merge_params({"digest": digest}),
                                 content=last_chunk_that_cuts_the_database(), headers=headers)
        assert interrupted.status_code == 503, interrupted.text
        assert problem_with_503(interrupted) is None, problem_with_503(interrupted)
    deployment.proxy.up()
    deployment.wait_all_ready()
    with httpx.Client(base_url=second.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
        retried = ocihttp.expect(client.put(httpx.URL(location).copy_merge_params({"digest": digest}),
                                            content=data[65536:], headers=headers), 201)
        assert retried.headers["Docker-Content-Digest"] == digest
    for node in deployment.nodes:
        with httpx.Client(base_url=node.url, auth=ADMIN_AUTH, timeout=CLIENT_TIMEOUT) as client:
            assert ocihttp.get_blob(client, repo, digest) == data
