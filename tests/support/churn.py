"""Pushers, taggers and deleters running at once over HTTP, with a ledger of what was acknowledged.

The GC stress test (``tests/e2e/test_gc_stress.py``) points these at real ``dockyard serve``
processes while the collector runs every second with a grace period of 0-2 s. The content is laid
out so that deletes and garbage collection always have something shared to get wrong::

    alpha/keep  beta/keep          images tagged keep-<n> (never touched again: each must survive
                                   whole, with the signatures pushed for it) and t0..t5 (moved and
                                   deleted by the others)
    alpha/churn-a, alpha/churn-b,  images, indexes and referrers whose tags move, whose manifests
    beta/churn                     are deleted by digest, and which are deleted as whole repositories
    alpha/loose  beta/loose        blobs no manifest references (uploads the collector may take),
                                   deleted again by DELETE /v2/<name>/blobs/<digest>

Every image has a config and a layer of its own plus one or two layers from a pool shared by all
repositories of both projects, each blob pushed in one of the shapes clients use (HEAD first and
skip it if present, a cross-repository mount, monolithic, a single POST, chunked). A client that
loses a race to a delete or to the collector gets an answer the distribution spec allows
(``RACE_ANSWERS``: the blob it saw a moment ago is gone, the manifest it wanted to tag was
deleted) and starts that image again; only an image whose manifest PUT answered 201 enters the
ledger. Anything else (a 5xx, another 4xx, a transport error) is recorded as a registry failure.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from tests.support import ocihttp

PROJECTS = ("alpha", "beta")
KEEP_REPOS = ("alpha/keep", "beta/keep")
CHURN_REPOS = ("alpha/churn-a", "alpha/churn-b", "beta/churn")
LOOSE_REPOS = ("alpha/loose", "beta/loose")
IMAGE_REPOS = KEEP_REPOS + CHURN_REPOS
PROTECTED_PREFIX = "keep-"
MOVABLE_TAGS = tuple(f"t{n}" for n in range(6))
SHARED_LAYERS = 16
OWN_LAYER_SIZES = (1024, 8 * 1024, 64 * 1024, 300 * 1024)
CHUNK = 64 * 1024
REFERRER_TYPE = "application/vnd.example.signature.v1+json"
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
ATTEMPTS = 3
T = TypeVar("T")

# What a client may be told when a delete or the collector got there first, by status and OCI code.
RACE_ANSWERS = frozenset({
    (404, "BLOB_UNKNOWN"), (404, "MANIFEST_UNKNOWN"), (404, "NAME_UNKNOWN"), (404, "BLOB_UPLOAD_UNKNOWN"),
    (400, "MANIFEST_BLOB_UNKNOWN"),
})


@dataclass(frozen=True, slots=True)
class Pushed:
    """A manifest the registry acknowledged with 201, and what it needs."""

    repo: str
    tag: str | None
    digest: str
    media_type: str
    body: bytes
    blobs: tuple[str, ...]
    children: tuple[str, ...] = ()
    subject: str | None = None


@dataclass
class Ledger:
    """What was acknowledged, what was done, and what went wrong; shared by every thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pushed: list[Pushed] = field(default_factory=list)
    protected: list[Pushed] = field(default_factory=list)  # nothing touches these after their 201
    protected_digests: set[tuple[str, str]] = field(default_factory=set)  # (repo, digest): never deleted
    loose: list[tuple[str, str]] = field(default_factory=list)  # (repo, digest) of blobs no manifest uses
    # (repo, digest) of manifests pushed by digest (referrers, index children), which no client tags
    # later: the collector keeps them until something makes them a candidate (docs/lifecycle.md)
    untagged: set[tuple[str, str]] = field(default_factory=set)
    ops: Counter[str] = field(default_factory=Counter)
    races: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def count(self, op: str) -> None:
        with self.lock:
            self.ops[op] += 1

    def race(self, op: str) -> None:
        with self.lock:
            self.races[op] += 1

    def add(self, pushed: Pushed, protected: bool) -> None:
        with self.lock:
            self.pushed.append(pushed)
            if protected:
                self.protected.append(pushed)
                self.protected_digests.add((pushed.repo, pushed.digest))
                self.protected_digests.update((pushed.repo, child) for child in pushed.children)

    def pushed_untagged(self, repo: str, digest: str) -> None:
        with self.lock:
            self.untagged.add((repo, digest))

    def pick(self, rng: random.Random, where: tuple[str, ...], *, referrers: bool = True) -> Pushed | None:
        """One of the latest acknowledged manifests in the repositories ``where``."""
        with self.lock:
            found = [p for p in self.pushed[-300:] if p.repo in where and (referrers or p.subject is None)]
        return rng.choice(found) if found else None

    def pick_loose(self, rng: random.Random) -> tuple[str, str] | None:
        with self.lock:
            return rng.choice(self.loose[-300:]) if self.loose else None

    def is_protected(self, repo: str, digest: str) -> bool:
        with self.lock:
            return (repo, digest) in self.protected_digests

    def on_response(self, response: httpx.Response) -> None:
        """httpx response hook: every 5xx anyone got."""
        if response.status_code >= 500:
            response.read()
            line = (f"{response.request.method} {response.request.url.path} -> {response.status_code}: "
                    f"{response.text[:300]}")
            with self.lock:
                self.server_errors.append(line)

    def failed(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.unexpected.append(f"{what}: {type(exc).__name__}: {str(exc)[:400]}")


def is_race(response: httpx.Response) -> bool:
    """Whether the answer is one a client gets for losing a race to a delete or the collector."""
    try:
        errors = json.loads(response.content).get("errors", [])
        codes = [error.get("code") for error in errors]
    except (ValueError, AttributeError):
        return False
    return any((response.status_code, code) in RACE_ANSWERS for code in codes)


def shared_layers(seed: str) -> list[bytes]:
    """The layer pool every repository of both projects draws from (2 KiB to about 180 KiB)."""
    return [hashlib.shake_256(f"{seed}-shared-{i}".encode()).digest(2048 + i * 12_000)
            for i in range(SHARED_LAYERS)]


class Workload:
    """Starts the threads, runs them for a bounded time, and keeps the ledger."""

    def __init__(self, base_url: str, auth: tuple[str, str], seed: str | None = None) -> None:
        self.base_url = base_url
        self.auth = auth
        self.seed = seed or uuid.uuid4().hex[:8]
        self.shared = shared_layers(self.seed)
        self.ledger = Ledger()
        self.stop = threading.Event()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=self.auth, timeout=httpx.Timeout(60.0),
                            follow_redirects=True, event_hooks={"response": [self.ledger.on_response]})

    def run(self, seconds: float, *, pushers: int = 3, taggers: int = 2, deleters: int = 2,
            extra: tuple[Callable[[threading.Event], None], ...] = ()) -> float:
        """Run every role at once for ``seconds``; return the time it took until all stopped."""
        roles: list[tuple[str, Callable[[httpx.Client, random.Random], None], float]] = (
            [(f"pusher-{i}", self.push_step, 0.0) for i in range(pushers)]
            + [(f"tagger-{i}", self.tag_step, 0.05) for i in range(taggers)]
            + [(f"deleter-{i}", self.delete_step, 0.05) for i in range(deleters)])
        threads = [threading.Thread(target=self._loop, args=role, name=role[0]) for role in roles]
        threads += [threading.Thread(target=self._guarded, args=(f"extra-{i}", job), name=f"extra-{i}")
                    for i, job in enumerate(extra)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        self.stop.wait(seconds)
        self.stop.set()
        for thread in threads:
            thread.join(timeout=120)
            if thread.is_alive():
                self.ledger.unexpected.append(f"{thread.name} did not stop within 120 s")
        return time.monotonic() - started

    def _guarded(self, name: str, job: Callable[[threading.Event], None]) -> None:
        try:
            job(self.stop)
        except Exception as exc:  # recorded, then the test fails on it
            self.ledger.failed(name, exc)

    def _loop(self, name: str, step: Callable[[httpx.Client, random.Random], None], pause: float) -> None:
        rng = random.Random(f"{self.seed}-{name}")
        with self.client() as client:
            while not self.stop.is_set():
                try:
                    step(client, rng)
                except (ocihttp.UnexpectedResponse, httpx.TransportError, AssertionError) as exc:
                    self.ledger.failed(name, exc)
                if pause:
                    self.stop.wait(pause)  # pacing: deletes should not outrun the pushes

    def _attempt(self, op: str, action: Callable[[], T]) -> T | None:
        """``action()``, or None (counted as a lost race) when it got one of ``RACE_ANSWERS``."""
        try:
            return action()
        except ocihttp.UnexpectedResponse as exc:
            if is_race(exc.response):
                self.ledger.race(op)
                return None
            raise

    # -- pushers -------------------------------------------------------------------------------

    def push_step(self, client: httpx.Client, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.2:
            self._push_loose(client, rng)
            return
        repo = rng.choice(IMAGE_REPOS)
        protected = repo in KEEP_REPOS and rng.random() < 0.5
        tag = f"{PROTECTED_PREFIX}{uuid.uuid4().hex[:10]}" if protected else rng.choice(MOVABLE_TAGS)
        if roll < 0.35:
            op, push = "push index", lambda: self.push_index(client, rng, repo, tag)
        elif roll < 0.45:
            subject = self.ledger.pick(rng, (repo,))
            if subject is None:
                return
            protected = self.ledger.is_protected(repo, subject.digest)
            op, push = "push referrer", lambda: self.push_referrer(client, rng, subject)
        else:
            op, push = "push image", lambda: self.push_image(client, rng, repo, tag)
        for _ in range(ATTEMPTS):
            pushed = self._attempt(op, push)
            if pushed is not None:
                self.ledger.add(pushed, protected)
                self.ledger.count(op)
                return
        self.ledger.count(f"{op}: gave up after {ATTEMPTS} lost races")

    def _push_loose(self, client: httpx.Client, rng: random.Random) -> None:
        repo = rng.choice(LOOSE_REPOS)
        data = rng.choice(self.shared) if rng.random() < 0.4 else rng.randbytes(rng.choice(OWN_LAYER_SIZES))
        if self._attempt("push loose blob", lambda: self.put_blob(client, rng, repo, data)) is not None:
            with self.ledger.lock:
                self.ledger.loose.append((repo, ocihttp.sha256_digest(data)))
            self.ledger.count("push loose blob")

    def put_blob(self, client: httpx.Client, rng: random.Random, repo: str, data: bytes) -> str:
        """Push ``data`` to ``repo`` in one of the shapes clients use; return its digest."""
        digest = ocihttp.sha256_digest(data)
        shape = rng.randrange(5)
        if shape == 0:  # HEAD first and skip what is there, as docker and skopeo do
            head = ocihttp.expect(client.head(f"/v2/{repo}/blobs/{digest}"), 200, 404)
            if head.status_code == 200:
                return digest
            return ocihttp.push_blob_monolithic(client, repo, data)
        if shape == 1:  # a mount from another repository, which may not have it (then: an upload)
            source = rng.choice([name for name in IMAGE_REPOS + LOOSE_REPOS if name != repo])
            answer = ocihttp.expect(client.post(f"/v2/{repo}/blobs/uploads/",
                                                params={"mount": digest, "from": source}), 201, 202)
            if answer.status_code == 201:
                return digest
            return ocihttp.finish_upload(client, str(answer.headers["Location"]), digest, data)
        if shape == 2:
            return ocihttp.push_blob_single_post(client, repo, data)
        if shape == 3 and len(data) > CHUNK:
            return ocihttp.push_blob_chunked(client, repo, data, CHUNK)
        return ocihttp.push_blob_monolithic(client, repo, data)

    def _image_blobs(self, rng: random.Random) -> tuple[bytes, list[bytes]]:
        config = ocihttp.config_blob(f"{self.seed}-{uuid.uuid4().hex}")
        own = rng.randbytes(rng.choice(OWN_LAYER_SIZES))
        return config, [own, *rng.sample(self.shared, rng.randint(1, 2))]

    def push_image(self, client: httpx.Client, rng: random.Random, repo: str, tag: str | None) -> Pushed:
        """Blobs, then the manifest under ``tag`` (by digest when None)."""
        config, layers = self._image_blobs(rng)
        for blob in (config, *layers):
            self.put_blob(client, rng, repo, blob)
        body = ocihttp.image_manifest(ocihttp.Descriptor.of(ocihttp.OCI_CONFIG, config),
                                      [ocihttp.Descriptor.of(ocihttp.OCI_LAYER, layer) for layer in layers])
        digest = ocihttp.push_manifest(client, repo, tag or ocihttp.sha256_digest(body), body)
        if tag is None:
            self.ledger.pushed_untagged(repo, digest)
        blobs = tuple(ocihttp.sha256_digest(blob) for blob in (config, *layers))
        return Pushed(repo, tag, digest, ocihttp.OCI_MANIFEST, body, blobs)

    def push_index(self, client: httpx.Client, rng: random.Random, repo: str, tag: str) -> Pushed:
        """Two platform images pushed by digest, then an index over them under ``tag``."""
        children = [self.push_image(client, rng, repo, None) for _ in range(2)]
        body = json.dumps({"schemaVersion": 2, "mediaType": ocihttp.OCI_INDEX, "manifests": [
            {"mediaType": child.media_type, "digest": child.digest, "size": len(child.body),
             "platform": {"architecture": arch, "os": "linux"}}
            for child, arch in zip(children, ("amd64", "arm64"), strict=True)]}).encode()
        digest = ocihttp.push_manifest(client, repo, tag, body, ocihttp.OCI_INDEX)
        return Pushed(repo, tag, digest, ocihttp.OCI_INDEX, body,
                      tuple(blob for child in children for blob in child.blobs),
                      tuple(child.digest for child in children))

    def push_referrer(self, client: httpx.Client, rng: random.Random, subject: Pushed) -> Pushed:
        """A signature-like artifact whose subject is ``subject``, pushed by digest (untagged)."""
        payload = rng.randbytes(256)
        for blob in (EMPTY_CONFIG, payload):
            self.put_blob(client, rng, subject.repo, blob)
        body = json.dumps({
            "schemaVersion": 2, "mediaType": ocihttp.OCI_MANIFEST, "artifactType": REFERRER_TYPE,
            "config": ocihttp.Descriptor.of(EMPTY_MEDIA_TYPE, EMPTY_CONFIG).as_json(),
            "layers": [ocihttp.Descriptor.of("application/octet-stream", payload).as_json()],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.body)},
        }).encode()
        digest = ocihttp.push_manifest(client, subject.repo, ocihttp.sha256_digest(body), body)
        self.ledger.pushed_untagged(subject.repo, digest)
        return Pushed(subject.repo, None, digest, ocihttp.OCI_MANIFEST, body,
                      (ocihttp.sha256_digest(EMPTY_CONFIG), ocihttp.sha256_digest(payload)),
                      subject=subject.digest)

    # -- taggers -------------------------------------------------------------------------------

    def tag_step(self, client: httpx.Client, rng: random.Random) -> None:
        """Point a movable tag at a manifest pushed earlier (GET by digest, PUT under the tag);
        never at a referrer, which stays one that was pushed by digest and never tagged."""
        source = self.ledger.pick(rng, IMAGE_REPOS, referrers=False)
        if source is None:
            return
        tag = rng.choice(MOVABLE_TAGS)

        def move() -> bool:
            found = ocihttp.get_manifest(client, source.repo, source.digest)
            if found is None:
                self.ledger.race("tag move")  # deleted meanwhile
                return False
            ocihttp.push_manifest(client, source.repo, tag, found[1], source.media_type)
            return True

        if self._attempt("tag move", move):
            self.ledger.count("tag move")

    # -- deleters ------------------------------------------------------------------------------

    def delete_step(self, client: httpx.Client, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.35:
            target = self.ledger.pick(rng, IMAGE_REPOS)
            if target is not None:
                self._delete("delete tag", client, f"/v2/{target.repo}/manifests/{rng.choice(MOVABLE_TAGS)}")
        elif roll < 0.65:
            target = self.ledger.pick(rng, IMAGE_REPOS)
            if target is not None and not self.ledger.is_protected(target.repo, target.digest):
                self._delete("delete manifest", client, f"/v2/{target.repo}/manifests/{target.digest}")
        elif roll < 0.95:
            loose = self.ledger.pick_loose(rng)
            if loose is not None:
                self._delete("delete blob", client, f"/v2/{loose[0]}/blobs/{loose[1]}")
        else:
            self._delete("delete repository", client, f"/api/v1/repositories/{rng.choice(CHURN_REPOS)}")

    def _delete(self, op: str, client: httpx.Client, path: str) -> None:
        answer = client.delete(path)
        if answer.status_code == 404:
            self.ledger.race(op)  # already gone
            return
        ocihttp.expect(answer, 200, 202, 204)
        self.ledger.count(op)
