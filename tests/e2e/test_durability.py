"""A 201 is a promise (DESIGN.md, invariant 1).

Many clients push blobs (monolithic, single POST, chunked) and images (config, layers, a
manifest under a shared tag or by digest) at once; at a random moment the whole server process
group gets SIGKILL. After a restart on the same data directory:

- every blob, manifest and tag that was answered 201 is there, and its bytes hash to its digest;
- every tag resolves to a manifest that some client pushed to that tag;
- anything in flight at the kill is either absent or complete — never partial, never corrupt.

The seed is printed; set DOCKYARD_TEST_SEED to replay a run's choices (not its timing).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import ocihttp
from tests.support.reference import RegistryProcess, is_dockyard, registry_process
from tests.support.server import ADMIN_AUTH

CYCLES = 10 if os.environ.get("DOCKYARD_STRESS") else 3  # `make stress` kills more often
CLIENTS = 16
REPOS = ("durability/alpha", "durability/beta", "durability/gamma")
TAGS = ("latest", "stable", "v1")
MIN_ACKS_BEFORE_KILL = 10
BLOB_SIZES = (0, 1, 100, 4096, 65_536, 1 << 20, 3 << 20)
TIMEOUT = httpx.Timeout(10.0)

pytestmark = pytest.mark.e2e


@dataclass
class Ledger:
    """What was attempted and what was acknowledged, shared by all client threads."""

    blobs_attempted: set[tuple[str, str]] = field(default_factory=set)
    blobs_acked: dict[tuple[str, str], int] = field(default_factory=dict)
    manifests_attempted: dict[tuple[str, str], bytes] = field(default_factory=dict)
    manifests_acked: set[tuple[str, str]] = field(default_factory=set)
    tag_candidates: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    tags_acked: set[tuple[str, str]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    acks: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def attempt_blob(self, repo: str, data: bytes) -> None:
        with self.changed:
            self.blobs_attempted.add((repo, ocihttp.sha256_digest(data)))

    def ack_blob(self, repo: str, digest: str, size: int) -> None:
        with self.changed:
            self.blobs_acked[(repo, digest)] = size
            self._count_ack()

    def attempt_manifest(self, repo: str, tag: str | None, body: bytes) -> None:
        digest = ocihttp.sha256_digest(body)
        with self.changed:
            self.manifests_attempted[(repo, digest)] = body
            if tag is not None:
                self.tag_candidates.setdefault((repo, tag), set()).add(digest)

    def ack_manifest(self, repo: str, tag: str | None, digest: str) -> None:
        with self.changed:
            self.manifests_acked.add((repo, digest))
            if tag is not None:
                self.tags_acked.add((repo, tag))
            self._count_ack()

    def fail(self, message: str) -> None:
        with self.changed:
            self.failures.append(message)

    def _count_ack(self) -> None:
        self.acks += 1
        self.changed.notify_all()

    def wait_for_acks(self, count: int, timeout: float) -> bool:
        """Block until `count` acknowledgements were recorded in total."""
        with self.changed:
            return self.changed.wait_for(lambda: self.acks >= count, timeout=timeout)


# -- clients ----------------------------------------------------------------------------------

@dataclass
class Client:
    """One pushing client: its own connection, random source and view of the ledger."""

    http: httpx.Client
    rng: random.Random
    ledger: Ledger

    def push_blob(self, repo: str, data: bytes) -> str:
        self.ledger.attempt_blob(repo, data)
        shape = self.rng.choice(("monolithic", "single-post", "chunked"))
        if shape == "monolithic":
            digest = ocihttp.push_blob_monolithic(self.http, repo, data)
        elif shape == "single-post":
            digest = ocihttp.push_blob_single_post(self.http, repo, data, fallback=not is_dockyard())
        else:
            chunk = self.rng.choice((4096, 65_536, 262_144))
            digest = ocihttp.push_blob_chunked(self.http, repo, data, chunk)
        self.ledger.ack_blob(repo, digest, len(data))
        return digest

    def push_random_blob(self) -> None:
        self.push_blob(self.rng.choice(REPOS), self.random_bytes())

    def push_image(self) -> None:
        repo = self.rng.choice(REPOS)
        config = ocihttp.config_blob(f"{self.rng.getrandbits(64):x}")
        layers = [self.random_bytes() for _ in range(self.rng.randint(1, 2))]
        for blob in (config, *layers):
            self.push_blob(repo, blob)
        body = ocihttp.image_manifest(ocihttp.Descriptor.of(ocihttp.OCI_CONFIG, config),
                                      [ocihttp.Descriptor.of(ocihttp.OCI_LAYER, b) for b in layers])
        tag = self.rng.choice((*TAGS, None))
        self.ledger.attempt_manifest(repo, tag, body)
        digest = ocihttp.push_manifest(self.http, repo, tag or ocihttp.sha256_digest(body), body)
        self.ledger.ack_manifest(repo, tag, digest)

    def random_bytes(self) -> bytes:
        size = self.rng.choice(BLOB_SIZES)
        return self.rng.randbytes(size + (self.rng.randrange(512) if size else 0))

    def run(self, stop: threading.Event) -> None:
        """Push until `stop` is set; any failure before then is recorded in the ledger."""
        while not stop.is_set():
            try:
                if self.rng.random() < 0.6:
                    self.push_random_blob()
                else:
                    self.push_image()
            except httpx.TransportError as exc:
                if not stop.is_set():
                    self.ledger.fail(f"transport error before the kill: {exc!r}")
                return
            except AssertionError as exc:
                self.ledger.fail(str(exc))
                return


def run_clients_then_kill(server: RegistryProcess, ledger: Ledger, rng: random.Random) -> None:
    """Start CLIENTS pushing, wait for some acknowledgements, then SIGKILL at a random moment."""
    stop = threading.Event()
    clients = [Client(httpx.Client(base_url=server.url, timeout=TIMEOUT, auth=ADMIN_AUTH),
                      random.Random(rng.getrandbits(64)), ledger) for _ in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    try:
        assert ledger.wait_for_acks(ledger.acks + MIN_ACKS_BEFORE_KILL, timeout=20), (
            f"fewer than {MIN_ACKS_BEFORE_KILL} acknowledgements in 20 s: {ledger.failures[:5]}")
        # The kill moment itself is what is random here; nothing is being waited for.
        stop.wait(rng.uniform(0.3, 1.5))
    finally:
        stop.set()
        server.kill()
        for thread in threads:
            thread.join(timeout=30)
        for client in clients:
            client.http.close()
    assert not any(t.is_alive() for t in threads), "a client thread hung after the kill"


# -- checks -----------------------------------------------------------------------------------

@dataclass
class Verdict:
    """The outcome of checking the ledger against a restarted registry."""

    lost: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def check_blob(http: httpx.Client, ledger: Ledger, key: tuple[str, str], verdict: Verdict) -> None:
    repo, digest = key
    try:
        data = ocihttp.get_blob(http, repo, digest)
    except AssertionError as exc:
        verdict.invalid.append(str(exc))
        return
    if data is None and key in ledger.blobs_acked:
        verdict.lost.append(f"blob {repo}@{digest} ({ledger.blobs_acked[key]} bytes) acknowledged, now 404")


def check_manifest(http: httpx.Client, ledger: Ledger, key: tuple[str, str], verdict: Verdict) -> None:
    repo, digest = key
    try:
        found = ocihttp.get_manifest(http, repo, digest)
    except AssertionError as exc:
        verdict.invalid.append(str(exc))
        return
    if found is None:
        if key in ledger.manifests_acked:
            verdict.lost.append(f"manifest {repo}@{digest} acknowledged, now 404")
    elif found[1] != ledger.manifests_attempted[key]:
        verdict.invalid.append(f"manifest {repo}@{digest}: served bytes differ from pushed bytes")


def check_repository_tags(http: httpx.Client, ledger: Ledger, repo: str, verdict: Verdict) -> None:
    """Every tag listed or acknowledged resolves to a manifest pushed to that tag."""
    try:
        listed = set(ocihttp.list_tags(http, repo))
    except AssertionError as exc:
        verdict.invalid.append(str(exc))
        return
    acked = {tag for (r, tag) in ledger.tags_acked if r == repo}
    for tag in sorted(listed | acked):
        candidates = ledger.tag_candidates.get((repo, tag), set())
        try:
            found = ocihttp.get_manifest(http, repo, tag)
        except AssertionError as exc:
            verdict.invalid.append(str(exc))
            continue
        if found is None:
            if tag in acked:
                verdict.lost.append(f"tag {repo}:{tag} acknowledged, now 404")
            elif tag in listed:
                verdict.invalid.append(f"tag {repo}:{tag} is listed but does not resolve")
        elif found[0] not in candidates:
            verdict.invalid.append(f"tag {repo}:{tag} -> {found[0]}, never pushed to it "
                                   f"(pushed: {sorted(candidates)})")
        if tag in acked and tag not in listed:
            verdict.lost.append(f"tag {repo}:{tag} acknowledged, missing from tags/list")


def verify(url: str, ledger: Ledger) -> Verdict:
    """Check everything attempted so far against the registry at `url`."""
    verdict = Verdict()
    with httpx.Client(base_url=url, timeout=TIMEOUT, auth=ADMIN_AUTH) as http:
        checks: list[Callable[[], None]] = [
            *(lambda k=k: check_blob(http, ledger, k, verdict) for k in ledger.blobs_attempted),
            *(lambda k=k: check_manifest(http, ledger, k, verdict) for k in ledger.manifests_attempted),
            *(lambda r=r: check_repository_tags(http, ledger, r, verdict) for r in REPOS),
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda check: check(), checks))
    return verdict


# -- the test ---------------------------------------------------------------------------------

@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("DOCKYARD_TEST_SEED", random.randrange(1 << 32)))
    print(f"DOCKYARD_TEST_SEED={value}")
    return value


def test_acknowledged_pushes_survive_sigkill(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    ledger = Ledger()
    data_dir = tmp_path / "data"
    server = registry_process(data_dir, workers=2).start()
    try:
        for cycle in range(1, CYCLES + 1):
            run_clients_then_kill(server, ledger, rng)
            assert not ledger.failures, f"cycle {cycle}: pushes failed before the kill:\n" + \
                "\n".join(ledger.failures[:10])
            server = registry_process(data_dir, workers=2).start()
            verdict = verify(server.url, ledger)
            print(f"cycle {cycle}: {ledger.acks} pushes acknowledged so far "
                  f"({len(ledger.blobs_acked)} blobs, {len(ledger.manifests_acked)} manifests, "
                  f"{len(ledger.tags_acked)} tags), "
                  f"{len(ledger.blobs_attempted) - len(ledger.blobs_acked)} blobs never acknowledged; "
                  f"lost {len(verdict.lost)}, invalid {len(verdict.invalid)}")
            assert not verdict.lost, f"cycle {cycle}: acknowledged content lost:\n" + \
                "\n".join(verdict.lost[:20])
            assert not verdict.invalid, f"cycle {cycle}: invalid content visible:\n" + \
                "\n".join(verdict.invalid[:20])
    finally:
        server.kill()
