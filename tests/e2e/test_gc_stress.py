"""Online garbage collection under concurrent pushes, tag moves and deletes (issue 12, "Tests that must exist").

On real ``dockyard serve`` processes, twice: (a) one node (two workers) on SQLite + filesystem,
(b) three nodes on PostgreSQL + S3 (a private Ceph) behind nginx. The collector runs every second
(``gc.interval=1s``, under the scheduler lease) and ``dockyard gc --json`` runs by hand in a loop
beside it (refused, and counted, while another run holds the run lease), with a grace period of
0 s (a) and 1 s (b), while pushers, taggers and deleters (``tests/support/churn.py``) work for a
bounded time: 25 s each in CI, 5 minutes each under ``make stress`` (``DOCKYARD_STRESS=1``;
``DOCKYARD_TEST_GC_STRESS_SECONDS`` sets it).

Afterwards, once a last collection has run past the grace period:

* every tag that exists pulls whole (manifest, index children, every blob, hashed), with its
  referrers; every image tagged ``keep-*`` (which no client touched after its 201) still has its
  acknowledged digest and pulls whole, with the signatures pushed for it: zero lost pushes;
* nothing unreachable is left: the manifests, repository links, blob rows and blob files or objects
  in storage are exactly what is reachable (recomputed here from the rows alone) from the tags and
  from the manifests pushed by digest and never tagged, which the collector keeps by design
  (docs/lifecycle.md: they are no candidate; retention's untagged rule deals with them);
* each project's usage (``GET /api/v1/projects/{project}/usage``: used, exclusive, shared and
  manifest bytes, per project and per repository) equals a recount from the rows;
* no request answered a 5xx, and every 4xx was one of the races a client may lose.

The figures (operations by kind, duration, collections and bytes freed, objects in storage before
and after the last collection, lost: 0) are printed as a block the closing note can quote
(``pytest -s tests/e2e/test_gc_stress.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import audit, ocihttp
from tests.support.audit import PullReport, Query, Reachability, State
from tests.support.backends import postgres_admin_url
from tests.support.churn import PROJECTS, Ledger, Workload
from tests.support.cluster import Cluster, fresh_database
from tests.support.s3 import BUCKET, CephS3, delete_prefix
from tests.support.server import ADMIN_AUTH, AUTH_ENV, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STRESS = os.environ.get("DOCKYARD_STRESS") == "1"
SECONDS = float(os.environ.get("DOCKYARD_TEST_GC_STRESS_SECONDS", "300" if STRESS else "25"))
FINAL_PASSES = 6  # collections after the load, each once the grace period has passed again
TIMEOUT = httpx.Timeout(60.0)


def gc_env(grace: str) -> dict[str, str]:
    return {"DOCKYARD_GC__GRACE_PERIOD": grace, "DOCKYARD_GC__INTERVAL": "1s"}


@dataclass
class Target:
    """One registry setup under test, and how to look inside it."""

    name: str
    url: str
    grace_seconds: float
    cli_env: dict[str, str]  # what `dockyard gc` / `dockyard jobs` need to reach the same data
    cli_data_dir: Path
    query: Query
    storage_blobs: Callable[[], set[str]]
    storage_uploads: Callable[[], int]
    logs: Callable[[], str]
    roles: tuple[int, int, int] = (3, 2, 2)  # pushers, taggers, deleters


@dataclass
class Collections:
    """What the hand-run `dockyard gc --json` reported, summed."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: int = 0
    busy: int = 0  # found another run going
    manifests_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0

    def add(self, result: dict[str, Any]) -> None:
        with self.lock:
            self.runs += 1
            self.manifests_deleted += int(result["manifests_deleted"])
            self.blobs_deleted += int(result["blobs_deleted"])
            self.bytes_freed += int(result["bytes_freed"])


BUSY = "another garbage collection is running"  # a run by hand while another run holds `gc-run`


def dockyard_cli(target: Target, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``dockyard ARGS --data-dir ...`` against the target's data."""
    return subprocess.run([sys.executable, "-m", "dockyard", *args, "--data-dir", str(target.cli_data_dir)],
                          env={**os.environ, **AUTH_ENV, **target.cli_env}, capture_output=True, text=True,
                          timeout=300, check=False)


def collect(target: Target, tally: Collections) -> dict[str, Any] | None:
    """`dockyard gc --json` once; None when another run was going (it says so and exits 1)."""
    done = dockyard_cli(target, "gc", "--json")
    if done.returncode != 0 and BUSY in done.stderr:
        with tally.lock:
            tally.busy += 1
        return None
    if done.returncode != 0:
        raise RuntimeError(f"dockyard gc --json exited {done.returncode}:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    tally.add(result)
    return result


def gc_loop(target: Target, tally: Collections) -> Callable[[threading.Event], None]:
    """`dockyard gc --json` by hand, again and again, beside the scheduled collector."""
    def loop(stop: threading.Event) -> None:
        while not stop.is_set():
            collect(target, tally)
    return loop


@dataclass
class Garbage:
    """What is in the database or storage but not reachable from any tag."""

    manifests: list[str]
    links: list[str]
    rows: list[str]
    files: list[str]
    missing: list[str]  # the other way round: reachable, but the bytes are gone
    why: list[str]  # what the rows say about the first few of the above

    @classmethod
    def of(cls, state: State, reachable: Reachability, stored: set[str]) -> Garbage:
        names = state.repositories
        manifests = {mid: row for mid, row in state.manifests.items() if mid not in reachable.manifests}
        links = state.links - reachable.links
        files = sorted(stored - reachable.blobs)
        digests = {d for _, d, _, _ in manifests.values()} | {d for _, d in links} | set(files)
        why = [f"manifest {names.get(repo, repo)}@{digest} ({state.media_types[mid]}, subject {subject})"
               for mid, (repo, digest, subject, _) in list(manifests.items())[:5]]
        why += [f"candidate {kind} {names.get(repo, repo) if repo is not None else '-'} {digest} ({reason})"
                for kind, repo, digest, reason in state.candidates if digest in digests][:10]
        return cls(
            manifests=sorted(f"{names.get(repo, repo)}@{digest}" for repo, digest, _, _ in manifests.values()),
            links=sorted(f"{names.get(repo, repo)} -> {digest}" for repo, digest in links),
            rows=sorted(set(state.blobs) - reachable.blobs),
            files=files,
            missing=sorted(reachable.blobs - stored),
            why=why,
        )

    def empty(self) -> bool:
        return not (self.manifests or self.links or self.rows or self.files or self.missing)

    def describe(self) -> str:
        found = [f"{name}: {len(items)} (first {items[:3]})" for name, items in vars(self).items()
                 if items and name != "why"]
        return "; ".join(found) + (f"\n    rows: {self.why}" if self.why else "")


def last_collections(target: Target, tally: Collections, kept: set[tuple[str, str]]) -> tuple[Garbage, int]:
    """Collect until nothing unreachable is left (bounded); the garbage left and the passes run."""
    garbage = None
    for passes in range(1, FINAL_PASSES + 1):
        # Whatever became unreferenced during the load (or the pass before) ages past the grace period.
        time.sleep(target.grace_seconds + 0.5)
        collect(target, tally)
        state = audit.read_state(target.query)
        garbage = Garbage.of(state, Reachability.of(state, kept), target.storage_blobs())
        if garbage.empty():
            return garbage, passes
    assert garbage is not None
    return garbage, FINAL_PASSES


def check_protected(client: httpx.Client, ledger: Ledger) -> PullReport:
    """Every keep-* image still has its acknowledged digest and pulls whole, with its signatures."""
    report = PullReport()
    for pushed in ledger.protected:
        if pushed.subject is None:
            assert pushed.tag is not None
            audit.pull_tree(client, pushed.repo, pushed.tag, report, expected=pushed.digest)
            continue
        listed = audit.referrers(client, pushed.repo, pushed.subject)
        if pushed.digest not in listed:
            report.problems.append(f"{pushed.repo}: signature {pushed.digest} of {pushed.subject} is not "
                                   f"among its referrers {listed}")
        audit.pull_tree(client, pushed.repo, pushed.digest, report, expected=pushed.digest)
    return report


USAGE_FIELDS = ("used_bytes", "exclusive_bytes", "shared_bytes", "manifest_bytes")


def usage_mismatches(client: httpx.Client, state: State) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Each project's usage as the API reports it, against the recount from the rows."""
    problems, recounts = [], {}
    for project in PROJECTS:
        recount = audit.recount_usage(state, project)
        recounts[project] = recount
        answer = client.get(f"/api/v1/projects/{project}/usage")
        if answer.status_code != 200:
            problems.append(f"GET /api/v1/projects/{project}/usage -> {answer.status_code}: {answer.text[:300]}")
            continue
        reported = answer.json()
        differ = {key: (reported.get(key), recount[key]) for key in USAGE_FIELDS if reported.get(key) != recount[key]}
        if differ:
            problems.append(f"{project}: (reported, recounted) {differ}")
        by_name = {repo["name"]: repo for repo in reported.get("repositories", [])}
        if set(by_name) != set(recount["repositories"]):
            problems.append(f"{project}: repositories reported {sorted(by_name)}, "
                            f"in the rows {sorted(recount['repositories'])}")
        for name, counted in recount["repositories"].items():
            listed = by_name.get(name, {})
            differ = {key: (listed.get(key), counted[key]) for key in USAGE_FIELDS if listed.get(key) != counted[key]}
            if differ:
                problems.append(f"{name}: (reported, recounted) {differ}")
    return problems, recounts


def job_totals(target: Target) -> tuple[int, int, int]:
    """(runs, items removed, bytes freed) of every real (not dry-run) gc run, as `dockyard jobs`
    lists them: from the job_runs table, where every run, scheduled or by hand, is recorded."""
    runs, removed, freed = target.query(
        "SELECT count(*), coalesce(sum(removed), 0), coalesce(sum(bytes_freed), 0) FROM job_runs "
        "WHERE job = 'gc' AND dry_run = false")[0]
    return int(runs), int(removed), int(freed)


def run_stress(target: Target) -> None:
    workload = Workload(target.url, ADMIN_AUTH)
    tally = Collections()
    pushers, taggers, deleters = target.roles
    duration = workload.run(SECONDS, pushers=pushers, taggers=taggers, deleters=deleters,
                            extra=(gc_loop(target, tally),))
    ledger = workload.ledger
    state_before = audit.read_state(target.query)
    objects_before = len(target.storage_blobs())
    by_hand_during = tally.runs

    garbage, passes = last_collections(target, tally, ledger.untagged)
    state = audit.read_state(target.query)
    with_untagged, from_tags = Reachability.of(state, ledger.untagged), Reachability.of(state)
    untagged_only = with_untagged.blobs - from_tags.blobs
    objects_after = len(target.storage_blobs())
    uploads_after = target.storage_uploads()
    with httpx.Client(base_url=target.url, auth=ADMIN_AUTH, timeout=TIMEOUT, follow_redirects=True) as client:
        pulled = audit.pull_every_tag(client)
        kept = check_protected(client, ledger)
        usage_problems, recounts = usage_mismatches(client, state)
    runs, removed, freed = job_totals(target)

    ops = "\n".join(f"    {op:<42} {count:>6}" for op, count in sorted(ledger.ops.items()))
    races = ", ".join(f"{op} {count}" for op, count in sorted(ledger.races.items())) or "none"
    figures = (
        f"GC stress, {target.name}, grace period {target.grace_seconds:g} s, collector every 1 s "
        f"+ `dockyard gc` in a loop\n"
        f"  duration of the load: {duration:.1f} s; operations acknowledged by kind:\n{ops}\n"
        f"  races lost (allowed 4xx, retried): {races}\n"
        f"  collections: {runs} recorded gc runs ({by_hand_during} by hand during the load, "
        f"{tally.runs - by_hand_during} after it, the rest scheduled; {tally.busy} by hand found "
        f"another run going); {removed} items removed, "
        f"{freed:,} bytes freed (by hand: {tally.manifests_deleted} manifests, {tally.blobs_deleted} blobs, "
        f"{tally.bytes_freed:,} bytes)\n"
        f"  objects in storage: {objects_before} blobs before the last collection "
        f"({len(state_before.manifests)} manifests in the database), {objects_after} after "
        f"({len(state.manifests)} manifests), {uploads_after} upload objects; {passes} last pass(es)\n"
        f"  kept by design (docs/lifecycle.md: a manifest pushed by digest and never tagged is no candidate): "
        f"{len(with_untagged.manifests - from_tags.manifests)} such manifests, {len(untagged_only)} blobs "
        f"({sum(state.blobs.get(d, 0) for d in untagged_only):,} bytes) only they use\n"
        f"  afterwards: {pulled.tags} tags pulled whole ({pulled.manifests} manifests, {pulled.blobs} blobs, "
        f"{pulled.bytes:,} bytes), {len(ledger.protected)} keep-* images and signatures checked\n"
        "  usage (API = recount): " + ", ".join(f"{p} {c['used_bytes']:,} bytes ({c['blobs']} blobs, "
                                                f"{c['shared_bytes']:,} shared)" for p, c in recounts.items())
        + f"\n  5xx: {len(ledger.server_errors)}; unexpected answers: {len(ledger.unexpected)}; "
        f"unreachable left: {'none' if garbage.empty() else garbage.describe()}\n"
        f"  lost: {len(kept.problems)}")
    print(figures)
    failure_context = f"{figures}\n--- logs\n{target.logs()}"

    assert ledger.server_errors == [], f"5xx answers: {ledger.server_errors[:10]}\n{failure_context}"
    assert ledger.unexpected == [], f"unexpected answers: {ledger.unexpected[:10]}\n{failure_context}"
    assert kept.problems == [], f"acknowledged keep-* pushes lost: {kept.problems[:10]}\n{failure_context}"
    assert pulled.problems == [], f"tags that do not pull whole: {pulled.problems[:10]}\n{failure_context}"
    assert garbage.empty(), f"unreachable content left after the last collection: {garbage.describe()}"
    assert usage_problems == [], f"usage differs from the recount: {usage_problems}"
    # The run did what it is meant to: every kind of operation, and collections that freed bytes.
    for op in ("push image", "push index", "push referrer", "push loose blob", "tag move", "delete tag",
               "delete manifest", "delete blob", "delete repository"):
        assert ledger.ops[op] > 0, f"no {op!r} was acknowledged\n{figures}"
    assert kept.manifests > 0, figures
    assert freed > 0, figures


def not_access_lines(log: str, tail: int = 80) -> str:
    """The log without its access lines (one JSON object per request): warnings, errors, tracebacks."""
    return "\n".join([line for line in log.splitlines() if not line.startswith('{"method"')][-tail:])


# -- (a) one node: SQLite + filesystem -------------------------------------------------------------

@pytest.fixture
def single_node(tmp_path: Path) -> Iterator[Target]:
    grace = "0s"
    server = ServerProcess(data_dir=tmp_path / "data", workers=2, env=gc_env(grace)).start()
    storage = server.data_dir / "storage"
    try:
        yield Target(
            name="one node, SQLite + filesystem", url=server.url, grace_seconds=0.0,
            cli_env=gc_env(grace), cli_data_dir=server.data_dir,
            query=audit.sqlite_query(server.data_dir / "dockyard.db"),
            storage_blobs=lambda: audit.storage_blobs_fs(storage),
            storage_uploads=lambda: audit.storage_uploads_fs(storage),
            logs=lambda: not_access_lines(server.log()))
    finally:
        server.stop()


def test_gc_under_load_one_node_sqlite_filesystem(single_node: Target) -> None:
    run_stress(single_node)


# -- (b) three nodes: PostgreSQL + S3 ---------------------------------------------------------------

def s3_env(endpoint: Any, prefix: str) -> dict[str, str]:
    return {"DOCKYARD_STORAGE__DRIVER": "s3", "DOCKYARD_STORAGE__S3__ENDPOINT": endpoint.endpoint,
            "DOCKYARD_STORAGE__S3__ACCESS_KEY": endpoint.access_key,
            "DOCKYARD_STORAGE__S3__SECRET_KEY": endpoint.secret_key,
            "DOCKYARD_STORAGE__S3__REGION": endpoint.region, "DOCKYARD_STORAGE__S3__BUCKET": BUCKET,
            "DOCKYARD_STORAGE__S3__PREFIX": prefix, "DOCKYARD_STORAGE__S3__REDIRECT": "false"}


@pytest.fixture
def three_nodes(tmp_path: Path) -> Iterator[Target]:
    admin_url = postgres_admin_url()
    if shutil.which("nginx") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed; CI=true, so the cluster stress test must run")
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    ceph = CephS3(private=True)
    endpoint = ceph.endpoint()
    prefix = f"gc-stress-{uuid.uuid4().hex[:8]}"
    grace = "1s"
    try:
        with fresh_database(admin_url) as url:
            cluster = Cluster(tmp_path, url, extra_env={**gc_env(grace), **s3_env(endpoint, prefix)}).start()
            s3 = endpoint.client()
            try:
                yield Target(
                    name="three nodes behind nginx, PostgreSQL + S3 (Ceph)", url=cluster.lb.url,
                    grace_seconds=1.0, cli_env=cluster.env, cli_data_dir=tmp_path / "cli",
                    query=audit.postgres_query(url),
                    storage_blobs=lambda: audit.storage_blobs_s3(s3, BUCKET, prefix),
                    storage_uploads=lambda: audit.storage_uploads_s3(s3, BUCKET, prefix),
                    logs=lambda: "\n".join(not_access_lines(node.log()) for node in cluster.nodes),
                    roles=(4, 1, 1))
            finally:
                cluster.stop()
    finally:
        delete_prefix(endpoint, BUCKET, prefix)
        ceph.stop()


def test_gc_under_load_three_nodes_postgres_s3(three_nodes: Target) -> None:
    run_stress(three_nodes)


# -- what the stress test found, made deterministic ----------------------------------------------------

def test_upload_completed_after_its_repository_was_deleted_answers_4xx(tmp_path: Path) -> None:
    """DELETE /api/v1/repositories/{name} while an upload's completing PUT is still sending its body.

    The PUT found its upload before the delete; once the body has arrived the upload (deleted with
    its repository) is gone: the answer is a 4xx the client can act on (BLOB_UPLOAD_UNKNOWN: push
    it again), never a 500, and storage keeps no bytes of it (the stress test saw a 500 from the
    upload's pin, whose row refers to the deleted upload, in every run).
    """
    first = 16 * 1024 * 1024  # more than any socket buffer: once sent, the server is reading the body
    data = os.urandom(first) + b"the rest"
    sent, release = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield data[:first]
        sent.set()
        release.wait(timeout=60)
        yield data[first:]

    with ServerProcess(data_dir=tmp_path / "data", workers=2) as server, \
            httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=TIMEOUT) as client:
        location = ocihttp.start_upload(client, "alpha/doomed")
        answers: list[httpx.Response] = []
        url = httpx.URL(location).copy_merge_params({"digest": ocihttp.sha256_digest(data)})
        putter = threading.Thread(target=lambda: answers.append(client.put(url, content=body())))
        putter.start()
        assert sent.wait(timeout=60), "the PUT's body was not taken"
        with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=TIMEOUT) as other:
            deleted = other.delete("/api/v1/repositories/alpha/doomed")
        release.set()
        putter.join(timeout=60)
        stored = audit.storage_blobs_fs(server.data_dir / "storage")
        log = not_access_lines(server.log())
    assert deleted.status_code in (200, 202, 204), deleted.text
    assert len(answers) == 1
    assert answers[0].status_code == 404, f"{answers[0].status_code}: {answers[0].text}\n{log}"
    assert "BLOB_UPLOAD_UNKNOWN" in answers[0].text
    assert ocihttp.sha256_digest(data) not in stored, "the deleted repository's upload left its bytes behind"
