"""A memory soak: many clients mixing pushes, pulls, tag lists, catalog pages and deletes against
one registry for a long while, and the resident memory of the server's process tree sampled all
along (DESIGN.md, invariant 6: flat over hours of load).

Each client is a thread with its own keep-alive connection (dropped and made anew every few dozen
requests, as clients come and go). Pushes go to many distinct repositories and tags, so every
per-worker cache fills: each pushes a small unique layer and config and one of a few shared
layers, then the manifest under a tag (a tag pushed again moves). Pulls read a manifest by tag and
one of its blobs; deletes remove a manifest by digest, or only its tag. Half the clients send Basic
credentials on every request; the other half get a bearer token per repository from ``/token``
and keep it for a while, as docker does. A few requests carry a made-up method (metrics label
sets come from clients). A 404 for something another client just deleted is expected; any 5xx,
and any answer the distribution spec does not allow, is counted.

``python -m bench.soak --seconds 300`` starts ``dockyard serve`` with its defaults, runs the soak
and prints the RSS curve; ``tests/e2e/test_soak.py`` runs the same soak under pytest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.proctree import PROC, tree_pids
from bench.testdata import MANIFEST_ACCEPT, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST

TOKEN_KEEP_SECONDS = 200.0  # under the registry's default token lifetime (300 s)
SHARED_LAYERS = 8


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """How long and how hard; the defaults are the issue's: 32 clients, 5 minutes of warm-up."""

    seconds: float = 300.0
    warmup_seconds: float = 100.0
    clients: int = 32
    sample_seconds: float = 2.0
    repositories: int = 3000
    tags: int = 12
    max_layer_bytes: int = 8192
    seed: int = 20261206


@dataclass(frozen=True, slots=True)
class Sample:
    """The server tree at one moment: seconds since the soak started, summed RSS and anonymous RSS."""

    elapsed: float
    rss_kib: int
    anon_kib: int
    processes: int
    requests: int


@dataclass
class SoakResult:
    plan: SoakPlan
    samples: list[Sample] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # the first few 5xx, for the report
    protocol_errors: list[str] = field(default_factory=list)  # answers the spec does not allow

    @property
    def server_error_count(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def window_mean_kib(self, start: float, end: float) -> float:
        """Mean tree RSS of the samples taken in [start, end) seconds."""
        picked = [s.rss_kib for s in self.samples if start <= s.elapsed < end]
        if not picked:
            raise ValueError(f"no RSS sample between {start:.0f} s and {end:.0f} s")
        return sum(picked) / len(picked)

    def growth_after_warmup(self, window: float) -> tuple[float, float]:
        """(mean RSS over ``window`` seconds right after the warm-up, over the last ``window`` seconds)."""
        warm = self.plan.warmup_seconds
        last = self.samples[-1].elapsed
        return self.window_mean_kib(warm, warm + window), self.window_mean_kib(last - window, last + 1)

    def curve(self) -> str:
        """The samples as tab-separated lines: seconds, tree RSS MiB, anonymous MiB, processes, requests."""
        lines = ["seconds\trss_mib\tanon_mib\tprocesses\trequests"]
        lines += [f"{s.elapsed:.1f}\t{s.rss_kib / 1024:.1f}\t{s.anon_kib / 1024:.1f}\t{s.processes}\t{s.requests}"
                  for s in self.samples]
        return "\n".join(lines) + "\n"

    def summary(self, window: float) -> str:
        first = self.window_mean_kib(0, window) / 1024
        warm, end = (kib / 1024 for kib in self.growth_after_warmup(window))
        total = sum(self.statuses.values())
        return (f"{total} requests ({dict(sorted(self.statuses.items()))}), {self.server_error_count} 5xx, "
                f"{len(self.protocol_errors)} protocol errors; operations {dict(sorted(self.operations.items()))}; "
                f"tree RSS first {window:.0f} s {first:.1f} MiB, after warm-up ({self.plan.warmup_seconds:.0f} s) "
                f"{warm:.1f} MiB, last {window:.0f} s {end:.1f} MiB: {100 * (end / warm - 1):+.1f}%")


# -- memory ---------------------------------------------------------------------------------------

def _status_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, RssAnon) of a process in KiB, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            found[key] = int(value.split()[0])
    return found.get("VmRSS", 0), found.get("RssAnon", 0)


def tree_rss(root: int) -> tuple[int, int, int]:
    """(summed VmRSS KiB, summed RssAnon KiB, processes) over ``root`` and its descendants."""
    rss = anon = count = 0
    for pid in tree_pids(root):
        found = _status_kib(pid)
        if found is not None:
            rss, anon, count = rss + found[0], anon + found[1], count + 1
    return rss, anon, count


# -- what the clients push ------------------------------------------------------------------------

def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


@dataclass(frozen=True, slots=True)
class Image:
    repository: str
    tag: str
    digest: str
    blobs: tuple[str, ...]


class Ledger:
    """What the clients pushed and have not deleted, shared by all of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._images: dict[tuple[str, str], Image] = {}
        self._keys: list[tuple[str, str]] = []

    def add(self, image: Image) -> None:
        key = (image.repository, image.tag)
        with self._lock:
            if key not in self._images:
                self._keys.append(key)
            self._images[key] = image

    def pick(self, rng: random.Random) -> Image | None:
        with self._lock:
            while self._keys:
                index = rng.randrange(len(self._keys))
                found = self._images.get(self._keys[index])
                if found is not None:
                    return found
                self._keys[index] = self._keys[-1]  # forget a deleted key
                self._keys.pop()
            return None

    def remove(self, image: Image) -> None:
        with self._lock:
            if self._images.get((image.repository, image.tag)) == image:
                del self._images[(image.repository, image.tag)]


# -- one client -----------------------------------------------------------------------------------

class Unexpected(Exception):
    """An answer the soak did not expect (a 5xx, or one the spec does not allow here)."""


class Client:
    """One soak client: a thread with a keep-alive connection, picking operations at random."""

    def __init__(self, index: int, base_url: str, credentials: tuple[str, str], plan: SoakPlan,
                 ledger: Ledger, result: SoakResult, lock: threading.Lock, shared: Sequence[bytes]) -> None:
        self.index = index
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.basic = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        self.uses_tokens = index % 2 == 1
        self.plan = plan
        self.ledger = ledger
        self.result = result
        self.lock = lock
        self.shared = shared
        self.rng = random.Random(plan.seed * 1000 + index)
        self.conn: http.client.HTTPConnection | None = None
        self.left_on_connection = 0
        self.tokens: dict[str, tuple[str, float]] = {}
        self.statuses: Counter[int] = Counter()
        self.operations: Counter[str] = Counter()
        self.pushed = 0

    # -- requests

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                auth: str | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        if self.conn is None or self.left_on_connection <= 0:
            if self.conn is not None:
                self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.left_on_connection = self.rng.randint(10, 80)
        self.left_on_connection -= 1
        sent = {"Authorization": auth or self.basic, **(headers or {})}
        try:
            self.conn.request(method, path, body=body, headers=sent)
            answer = self.conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        if answer.getheader("Connection", "").lower() == "close":
            self.left_on_connection = 0
        self.statuses[answer.status] += 1
        if answer.status >= 500:
            with self.lock:
                if len(self.result.server_errors) < 20:
                    self.result.server_errors.append(f"{method} {path} -> {answer.status}: {data[:300]!r}")
        return answer.status, answer.headers, data

    def expect(self, allowed: Sequence[int], method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None, auth: str | None = None
               ) -> tuple[int, http.client.HTTPMessage, bytes]:
        status, answer_headers, data = self.request(method, path, body, headers, auth)
        if status not in allowed:
            raise Unexpected(f"{method} {path} -> {status}, expected one of {list(allowed)}: {data[:300]!r}")
        return status, answer_headers, data

    def auth_for(self, repository: str) -> str:
        """Basic credentials, or (for token clients) a bearer token for this repository."""
        if not self.uses_tokens:
            return self.basic
        now = time.monotonic()
        kept = self.tokens.get(repository)
        if kept is not None and kept[1] > now:
            return kept[0]
        query = urlencode([("service", "dockyard"), ("scope", f"repository:{repository}:pull,push,delete")])
        _, _, data = self.expect([200], "GET", f"/token?{query}")
        token = "Bearer " + str(json.loads(data)["token"])
        if len(self.tokens) > 256:
            self.tokens.clear()
        self.tokens[repository] = (token, now + TOKEN_KEEP_SECONDS)
        return token

    # -- operations

    def push_blob(self, repository: str, data: bytes, auth: str) -> None:
        _, headers, _ = self.expect([202], "POST", f"/v2/{repository}/blobs/uploads/", auth=auth)
        location = headers.get("Location", "")
        parts = urlsplit(location)
        if parts.netloc not in ("", f"{self.host}:{self.port}") or not parts.path.startswith("/v2/"):
            raise Unexpected(f"upload Location {location!r} is not on the registry")
        separator = "&" if parts.query else "?"
        target = f"{parts.path}?{parts.query}{separator}digest={digest_of(data)}" if parts.query \
            else f"{parts.path}{separator}digest={digest_of(data)}"
        self.expect([201], "PUT", target, data, {"Content-Type": "application/octet-stream"}, auth=auth)

    def push(self) -> None:
        repository = f"soak/p{self.rng.randrange(8)}/r{self.rng.randrange(self.plan.repositories)}"
        tag = f"t{self.rng.randrange(self.plan.tags)}"
        auth = self.auth_for(repository)
        self.pushed += 1
        layer = os.urandom(self.rng.randint(256, self.plan.max_layer_bytes))
        shared = self.shared[self.rng.randrange(len(self.shared))]
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Labels": {"soak.client": str(self.index), "soak.n": str(self.pushed)}},
                             "rootfs": {"type": "layers", "diff_ids": [digest_of(layer), digest_of(shared)]}}
                            ).encode()
        for blob in (layer, shared, config):
            self.push_blob(repository, blob, auth)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _descriptor(OCI_CONFIG, config),
            "layers": [_descriptor(OCI_LAYER_GZIP, layer), _descriptor(OCI_LAYER_GZIP, shared)],
            "annotations": {"org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }).encode()
        self.expect([201], "PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                    {"Content-Type": OCI_MANIFEST}, auth=auth)
        self.ledger.add(Image(repository, tag, digest_of(manifest),
                              (digest_of(config), digest_of(layer), digest_of(shared))))

    def pull(self) -> None:
        image = self.ledger.pick(self.rng)
        if image is None:
            return self.push()
        auth = self.auth_for(image.repository)
        method = "HEAD" if self.rng.random() < 0.2 else "GET"
        reference = image.tag if self.rng.random() < 0.7 else image.digest
        status, _, data = self.expect([200, 404], method, f"/v2/{image.repository}/manifests/{reference}",
                                      headers={"Accept": MANIFEST_ACCEPT}, auth=auth)
        if status == 200 and method == "GET" and reference == image.digest and digest_of(data) != image.digest:
            raise Unexpected(f"GET {image.repository}@{image.digest} answered other bytes")
        blob = image.blobs[self.rng.randrange(len(image.blobs))]
        self.expect([200, 404], "GET", f"/v2/{image.repository}/blobs/{blob}", auth=auth)

    def list_tags(self) -> None:
        image = self.ledger.pick(self.rng)
        repository = image.repository if image else "soak/p0/r0"
        self.expect([200, 404], "GET", f"/v2/{repository}/tags/list?n=50", auth=self.auth_for(repository))

    def catalog(self) -> None:
        last = f"soak/p{self.rng.randrange(8)}/r{self.rng.randrange(self.plan.repositories)}"
        self.expect([200], "GET", f"/v2/_catalog?{urlencode({'n': 100, 'last': last})}")

    def delete(self) -> None:
        image = self.ledger.pick(self.rng)
        if image is None:
            return
        auth = self.auth_for(image.repository)
        self.ledger.remove(image)
        reference = image.tag if self.rng.random() < 0.3 else image.digest
        self.expect([202, 404], "DELETE", f"/v2/{image.repository}/manifests/{reference}", auth=auth)

    def odd_method(self) -> None:
        """A method no route serves, made up by the client: a 4xx, and no new metrics series kept."""
        method = f"X{self.rng.randrange(1_000_000)}"
        status, _, data = self.request(method, "/v2/")
        if not 400 <= status < 500:
            raise Unexpected(f"{method} /v2/ -> {status}, expected a 4xx: {data[:300]!r}")

    OPERATIONS: tuple[tuple[str, float], ...] = (
        ("push", 0.34), ("pull", 0.36), ("tags", 0.12), ("catalog", 0.05), ("delete", 0.11), ("odd", 0.02),
    )

    def run(self, until: float) -> None:
        actions: dict[str, Callable[[], None]] = {
            "push": self.push, "pull": self.pull, "tags": self.list_tags, "catalog": self.catalog,
            "delete": self.delete, "odd": self.odd_method,
        }
        names = [name for name, _ in self.OPERATIONS]
        weights = [weight for _, weight in self.OPERATIONS]
        try:
            while time.monotonic() < until:
                name = self.rng.choices(names, weights)[0]
                try:
                    actions[name]()
                except Unexpected as exc:
                    with self.lock:
                        if len(self.result.protocol_errors) < 50:
                            self.result.protocol_errors.append(str(exc))
                except (OSError, http.client.HTTPException) as exc:
                    with self.lock:
                        if len(self.result.protocol_errors) < 50:
                            self.result.protocol_errors.append(f"{name}: connection failed: {exc!r}")
                self.operations[name] += 1
        finally:
            if self.conn is not None:
                self.conn.close()
            with self.lock:
                self.result.statuses.update(self.statuses)
                self.result.operations.update(self.operations)


# -- the soak -------------------------------------------------------------------------------------

def run_soak(base_url: str, root_pid: int, credentials: tuple[str, str], plan: SoakPlan,
             progress: Callable[[Sample], None] | None = None) -> SoakResult:
    """Run ``plan.clients`` clients against ``base_url`` for ``plan.seconds``, sampling the RSS of
    the process tree rooted at ``root_pid`` every ``plan.sample_seconds``."""
    result = SoakResult(plan)
    ledger = Ledger()
    lock = threading.Lock()
    rng = random.Random(plan.seed)
    shared = [rng.randbytes(4096 + 1024 * i) for i in range(SHARED_LAYERS)]
    clients = [Client(i, base_url, credentials, plan, ledger, result, lock, shared) for i in range(plan.clients)]
    started = time.monotonic()
    until = started + plan.seconds
    threads = [threading.Thread(target=c.run, args=(until,), name=f"soak-{c.index}", daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    next_sample = started
    while True:
        rss, anon, count = tree_rss(root_pid)
        now = time.monotonic()
        requests = sum(sum(c.statuses.values()) for c in clients)
        sample = Sample(round(now - started, 1), rss, anon, count, requests)
        result.samples.append(sample)
        if progress is not None:
            progress(sample)
        if now >= until:
            break
        next_sample += plan.sample_seconds
        stopping = threading.Event()
        stopping.wait(max(0.0, min(next_sample, until) - time.monotonic()))  # the sampling period itself
    for thread in threads:
        thread.join(timeout=180)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from bench.registries import Dockyard

    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--warmup", type=float, default=None, help="default: a third of --seconds, at most 300")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds averaged at each end (default: a third of the warm-up)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--curve", type=Path, default=None, help="write the curve (TSV) here")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(300.0, args.seconds / 3)
    window = args.window if args.window is not None else warmup / 3
    plan = SoakPlan(seconds=args.seconds, warmup_seconds=warmup, clients=args.clients)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dockyard-soak-"))
    with Dockyard(workdir) as server:
        assert server.credentials is not None
        result = run_soak(server.url, server.pid, server.credentials, plan,
                          progress=lambda s: print(f"{s.elapsed:7.1f} s  {s.rss_kib / 1024:7.1f} MiB RSS  "
                                                   f"{s.anon_kib / 1024:7.1f} MiB anon  {s.requests} requests",
                                                   file=sys.stderr, flush=True))
    curve = args.curve or workdir / "soak-curve.tsv"
    curve.write_text(result.curve())
    print(result.summary(window))
    for line in result.server_errors + result.protocol_errors:
        print("  " + line)
    print(f"curve: {curve}")
    warm, end = result.growth_after_warmup(window)
    return 0 if result.server_error_count == 0 and not result.protocol_errors and end <= warm * 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
