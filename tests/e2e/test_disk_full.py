"""Disk full (issue 11, item 4): on a small filesystem the test makes and fills itself.

A real `dockyard serve` keeps its data directory on a tmpfs or a loop-mounted ext4 image of a few
MiB; the test fills it with a file of its own and frees it by deleting that file. While it is full,
pushes answer 507 with ``Retry-After`` and an OCI body that says the disk is full and nothing was
stored; pulls of what was stored before still answer with the right bytes; the workers live on
(their PIDs do not change, ``/metrics`` answers). Once the file is deleted, pushes work again, with
no restart. Mounting needs root: outside CI the tests skip without it, in CI (``CI=true``) they fail.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from dockyard.errors import StorageFull
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.filesystem import FilesystemDriver
from tests.e2e.clients import Skopeo
from tests.e2e.images import build_image, write_layout
from tests.support.content import Image, make_image, sha256
from tests.support.server import ADMIN_AUTH, ServerProcess

pytestmark = pytest.mark.e2e

FULL_MESSAGE = re.compile(r"full.*nothing was stored", re.S)


def require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = "mounting a small filesystem needs root"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so the disk-full tests must run")
    pytest.skip(reason)


@contextmanager
def small_filesystem(where: Path, kind: str, size_mib: int) -> Iterator[Path]:
    """A filesystem of ``size_mib`` MiB mounted at ``where``: ``tmpfs``, or ``ext4`` in a loop image
    (which, unlike tmpfs, has blocks, a journal and a real fsync). Unmounted on the way out."""
    require_root()
    where.mkdir(parents=True)
    if kind == "tmpfs":
        command = ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(where)]
    else:
        image = where.with_name(f"{where.name}.img")
        with image.open("wb") as handle:
            handle.truncate(size_mib << 20)
        if shutil.which("mkfs.ext4") is None:
            pytest.fail("mkfs.ext4 is missing (apt-get install e2fsprogs)")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
        command = ["mount", "-o", "loop", str(image), str(where)]
    subprocess.run(command, check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        if os.path.ismount(where):  # something still has a file open there (a stray process)
            subprocess.run(["umount", "-l", str(where)], check=True)


def fill(directory: Path) -> Path:
    """Write a file into ``directory`` until its filesystem has no byte left; returns the file."""
    ballast = directory / "ballast"
    block = b"\0" * (1 << 20)
    with ballast.open("wb", buffering=0) as handle:
        for size in (1 << 20, 4096, 1):
            with pytest.raises(OSError) as full:  # noqa: PT012 - written until the disk refuses
                while True:
                    handle.write(block[:size])
            assert full.value.errno == errno.ENOSPC, full.value
        os.fsync(handle.fileno())
    return ballast


def worker_pids(server: ServerProcess) -> set[int]:
    """The supervisor's children: its workers."""
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    return {int(pid) for pid in children.split()}


def serving_workers(server: ServerProcess, count: int) -> set[int]:
    """The worker PIDs once all ``count`` workers serve (``/readyz`` answers with the first)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        serving = {int(pid) for pid in re.findall(r"serving \(pid (\d+)\)", server.log())}
        if len(serving) == count:
            assert serving == worker_pids(server)
            return serving
        time.sleep(0.05)
    raise AssertionError(f"not all {count} workers serve:\n{server.log()[-4000:]}")


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30.0)


def push_blob(http: httpx.Client, name: str, data: bytes) -> httpx.Response:
    """A monolithic push; the first answer that is not a success (or the final 201)."""
    started = http.post(f"/v2/{name}/blobs/uploads/")
    if started.status_code != 202:
        return started
    return http.put(started.headers["location"], params={"digest": sha256(data)}, content=data,
                    headers={"Content-Type": "application/octet-stream"})


def push_image(http: httpx.Client, name: str, image: Image, tag: str) -> httpx.Response:
    """Blobs, then the manifest; the first answer that failed, or the manifest's 201."""
    for blob in image.blobs:
        response = push_blob(http, name, blob)
        if response.status_code != 201:
            return response
    return http.put(f"/v2/{name}/manifests/{tag}", content=image.manifest,
                    headers={"Content-Type": image.media_type})


def assert_disk_full(response: httpx.Response, what: str = "") -> None:
    """507, Retry-After, and an OCI error whose message says that (the ``what``) is full and
    nothing was stored: the blob disk or the database volume, whichever the request met first."""
    assert response.status_code == 507, f"{response.status_code}: {response.text}"
    assert int(response.headers["Retry-After"]) > 0
    (error,) = response.json()["errors"]
    assert error["code"] == "UNAVAILABLE"
    assert what in error["message"], error["message"]
    assert FULL_MESSAGE.search(error["message"]), error["message"]


def assert_pulls(http: httpx.Client, name: str, image: Image, tag: str) -> None:
    """The tag, the manifest and every blob answer with bytes that hash to their digests."""
    manifest = http.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": image.media_type})
    assert manifest.status_code == 200, manifest.text
    assert sha256(manifest.content) == image.digest == manifest.headers["Docker-Content-Digest"]
    for blob in image.blobs:
        got = http.get(f"/v2/{name}/blobs/{sha256(blob)}")
        assert got.status_code == 200, got.text
        assert sha256(got.content) == sha256(blob)


def assert_no_tracebacks(server: ServerProcess) -> None:
    """No worker died, and the log has no traceback: a full disk is one line, not a stack.

    (The pull-event writer's own traceback on a failing database is the database-fault work's
    to quiet, and is not counted here.)"""
    log = server.log()
    assert "exited unexpectedly" not in log, log[-4000:]
    assert "Errno 28" not in log, log[-4000:]
    # One record per line that starts with a timestamp, an access-log object or a supervisor tag.
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d |\{|\[)", log)
    stacks = [record for record in records if "Traceback" in record
              and "writing pull events failed; retrying" not in record.split("\n", 1)[0]]
    assert not stacks, "\n".join(stacks)[-4000:]


UPLOAD = "diskfull-upload-0123456789abcdef"


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 << 10):
        yield data[start:start + (64 << 10)]


@pytest.mark.parametrize("kind", ["tmpfs", "ext4"])
async def test_filesystem_driver_turns_enospc_into_storage_full(tmp_path: Path, kind: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """The driver's seam on a full tmpfs, and on ext4 (where aligned blocks go by O_DIRECT and
    fsync is real): an upload's append raises StorageFull (not OSError) and
    leaves the upload at the size it had (the failed request's bytes are dropped), ``put_content``
    raises StorageFull and leaves no temporary file; three failures log one line, no traceback.
    After the filler is deleted the same upload continues and completes with the right digest,
    and one line says there is space again."""
    with small_filesystem(tmp_path / "fs", kind, 4 if kind == "tmpfs" else 8) as fs:
        driver = FilesystemDriver(fs / "storage")
        store = BlobStore(driver)
        await store.begin(UPLOAD)
        head, tail = os.urandom(300 << 10), os.urandom(1 << 20)
        size, saved = await store.append(UPLOAD, _stream(head))
        assert size == len(head)
        ballast = fill(fs)
        for _ in range(3):
            with pytest.raises(StorageFull, match=r"disk is full.*nothing was stored"):
                await store.append(UPLOAD, _stream(tail), start=len(head), saved=saved)
            assert await store.size(UPLOAD, saved) == len(head)
        with pytest.raises(StorageFull):
            await driver.put_content("somewhere/small", os.urandom(64 << 10))
        assert not [path for path in fs.rglob("*") if path.name.endswith(".tmp")]
        full_lines = [r for r in caplog.records if "blob storage is full" in r.getMessage()]
        assert len(full_lines) == 1
        assert full_lines[0].exc_info is None

        ballast.unlink()
        size, saved = await store.append(UPLOAD, _stream(tail), start=len(head), saved=saved)
        assert size == len(head) + len(tail)
        assert await store.finish(UPLOAD, sha256(head + tail), saved) == size
        location = await store.locate(sha256(head + tail))
        assert location is not None
        assert sha256(b"".join([chunk async for chunk in store.read(location)])) == sha256(head + tail)
        assert any("has space again" in r.getMessage() for r in caplog.records)


def test_blob_storage_full_answers_507_keeps_workers_and_recovers(tmp_path: Path) -> None:
    """On a full tmpfs holding the data directory (SQLite, blobs, uploads): a monolithic push and
    a chunk of a chunked upload answer 507 with Retry-After and a message saying the disk is full;
    the failed chunk leaves the upload where it was acknowledged (resumable); what was stored
    before still pulls with the right digests; both workers keep their PIDs and /metrics answers
    (its files are off the data volume); the full disk is logged once per worker, with no
    traceback. After the filler is deleted, the same upload continues and completes and a new
    image pushes, with no restart."""
    with small_filesystem(tmp_path / "fs", "tmpfs", 24) as fs, \
            ServerProcess(data_dir=fs, workers=2) as server, client(server) as http:
        stored = make_image(layers=2)
        assert push_image(http, "full/stored", stored, "v1").status_code == 201
        # A chunked upload: the first chunk before the disk fills.
        first, rest = os.urandom(256 << 10), os.urandom(3 << 20)
        started = http.post("/v2/full/chunked/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["location"]
        patched = http.patch(location, content=first, headers={"Content-Type": "application/octet-stream"})
        assert patched.status_code == 202
        assert patched.headers["Range"] == f"0-{len(first) - 1}"
        location = patched.headers["location"]
        monolithic = http.post("/v2/full/whole/blobs/uploads/")
        assert monolithic.status_code == 202
        pids = serving_workers(server, 2)

        continuing = {"Content-Type": "application/octet-stream",
                      "Content-Range": f"{len(first)}-{len(first) + len(rest) - 1}"}
        ballast = fill(fs)
        chunk = http.patch(location, content=rest, headers=continuing)
        assert_disk_full(chunk, "disk is full")
        whole_blob = os.urandom(2 << 20)
        put = http.put(monolithic.headers["location"], params={"digest": sha256(whole_blob)}, content=whole_blob,
                       headers={"Content-Type": "application/octet-stream"})
        assert_disk_full(put, "disk is full")
        status = http.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{len(first) - 1}"
        for _ in range(6):  # several requests, so both workers meet the full disk
            assert_disk_full(push_blob(http, "full/new", os.urandom(2 << 20)))
            assert_pulls(http, "full/stored", stored, "v1")
            metrics = http.get("/metrics")
            assert metrics.status_code == 200
        assert 'status="507"' in metrics.text
        assert worker_pids(server) == pids

        ballast.unlink()
        resumed = http.patch(location, content=rest, headers=continuing)
        assert resumed.status_code == 202, resumed.text
        whole = first + rest
        done = http.put(resumed.headers["location"], params={"digest": sha256(whole)})
        assert done.status_code == 201, done.text
        assert sha256(http.get(f"/v2/full/chunked/blobs/{sha256(whole)}").content) == sha256(whole)
        fresh = make_image(layers=2)
        assert push_image(http, "full/new", fresh, "v1").status_code == 201
        assert_pulls(http, "full/new", fresh, "v1")
        assert_pulls(http, "full/stored", stored, "v1")
        assert worker_pids(server) == pids
        log = server.log()
        assert 0 < log.count("blob storage is full") <= len(pids), log[-4000:]
        assert_no_tracebacks(server)
        assert not list(fs.rglob("counter_*.db")), "metrics files on the data volume"


def test_skopeo_push_to_full_ext4_fails_clearly_then_succeeds(tmp_path: Path) -> None:
    """On a loop-mounted ext4 image (real blocks, journal and fsync), filled: `skopeo copy` of an
    image fails and says "507 Insufficient Storage"; an image stored before still
    pulls (skopeo inspect gives its digest). After the filler is deleted, the same copy succeeds
    and the registry serves the manifest skopeo pushed."""
    with small_filesystem(tmp_path / "fs", "ext4", 40) as fs, \
            ServerProcess(data_dir=fs, workers=1) as server:
        skopeo = Skopeo.create(tmp_path / "skopeo")
        skopeo.login(server.host)
        layout = write_layout(tmp_path / "layout", "v1", build_image("diskfull-a"))
        before = write_layout(tmp_path / "before", "v1", build_image("diskfull-b"))
        skopeo.copy(f"oci:{before}:v1", f"docker://{server.host}/full/before:v1")
        stored = skopeo.inspect_raw(f"docker://{server.host}/full/before:v1")
        pids = serving_workers(server, 1)

        ballast = fill(fs)
        with pytest.raises(AssertionError) as failure:
            skopeo.copy(f"oci:{layout}:v1", f"docker://{server.host}/full/image:v1", "--retry-times", "0")
        # skopeo names the status (its text is the HTTP reason, 507 Insufficient Storage) and
        # does not print the body on this path; curl-style clients get the body's message.
        assert "507 Insufficient Storage" in str(failure.value), str(failure.value)
        assert skopeo.inspect_raw(f"docker://{server.host}/full/before:v1") == stored
        assert worker_pids(server) == pids

        ballast.unlink()
        skopeo.copy(f"oci:{layout}:v1", f"docker://{server.host}/full/image:v1")
        pushed = skopeo.inspect_raw(f"docker://{server.host}/full/image:v1")
        index = json.loads((layout / "index.json").read_text())
        assert sha256(pushed) == index["manifests"][0]["digest"]
        assert worker_pids(server) == pids
        assert_no_tracebacks(server)
        server.stop()


def test_database_volume_full_answers_507_and_recovers(tmp_path: Path) -> None:
    """With only the SQLite database's volume full (blobs elsewhere): a push whose manifest the
    database must store answers 507 saying the database volume is full; the stored image still
    pulls; the database passes SQLite's integrity check; after the filler is deleted the same
    push succeeds."""
    storage = tmp_path / "storage"
    with small_filesystem(tmp_path / "fs", "tmpfs", 8) as fs, \
            ServerProcess(data_dir=fs, workers=1,
                          env={"DOCKYARD_STORAGE__ROOT": str(storage)}) as server, client(server) as http:
        stored = make_image(layers=1)
        assert push_image(http, "dbfull/stored", stored, "v1").status_code == 201
        pids = serving_workers(server, 1)
        # A manifest larger than any slack SQLite's files may have: the row cannot fit.
        big = make_image(layers=1, annotations={"org.example.padding": "x" * (3 << 20)})

        ballast = fill(fs)
        assert_disk_full(push_image(http, "dbfull/big", big, "v1"), "database volume is full")
        assert_pulls(http, "dbfull/stored", stored, "v1")
        assert worker_pids(server) == pids

        ballast.unlink()
        assert push_image(http, "dbfull/big", big, "v1").status_code == 201
        assert_pulls(http, "dbfull/big", big, "v1")
        assert_pulls(http, "dbfull/stored", stored, "v1")
        with sqlite3.connect(f"file:{fs / 'dockyard.db'}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert worker_pids(server) == pids
        assert_no_tracebacks(server)
        server.stop()


def series(metrics: str) -> set[str]:
    """The request counter's series in a /metrics page."""
    return {line.rsplit(" ", 1)[0] for line in metrics.splitlines() if line.startswith("dockyard_http_requests_total{")}


# What a client can vary in the request metric's labels: the methods (a made-up one counts as
# "other") and the routes.
METRIC_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW")
METRIC_PATHS = ("/v2/", "/v2/_catalog", "/v2/m/a/tags/list", "/v2/m/a/manifests/v1",
                f"/v2/m/a/blobs/sha256:{'0' * 64}", "/v2/m/a/blobs/uploads/", "/v2/m/a/blobs/uploads/nosuch",
                f"/v2/m/a/referrers/sha256:{'0' * 64}", "/v2/-bad-/tags/list", "/token", "/api/v1/users",
                "/api/v1/projects", "/healthz", "/readyz", "/nowhere")


def test_full_metrics_directory_does_not_kill_workers(tmp_path: Path) -> None:
    """With server.metrics_dir on a tiny tmpfs that is then filled, requests that make new metric
    series (new routes and statuses) neither kill a worker with SIGBUS (prometheus_client writes
    through memory maps) nor fail: the PIDs stay, every request is answered and /metrics answers.
    After space is freed the new series appear in /metrics, and every metrics file is allocated
    to its full size (no hole a mapped write could fault on)."""
    with small_filesystem(tmp_path / "metrics", "tmpfs", 2) as metrics_dir, \
            ServerProcess(data_dir=tmp_path / "data", workers=2,
                          env={"DOCKYARD_SERVER__METRICS_DIR": str(metrics_dir)}) as server, \
            client(server) as http:
        pids = serving_workers(server, 2)
        ballast = fill(metrics_dir)
        # New series: every (method, route, status) a client can reach. Made-up methods share one
        # series ("other"), so the series come from the standard methods across the routes; they
        # outgrow the space each worker allocated at start.
        combos = itertools.cycle(itertools.product(METRIC_METHODS, METRIC_PATHS))
        for method, path in itertools.islice(combos, 2 * len(METRIC_METHODS) * len(METRIC_PATHS)):
            assert http.request(method, path).status_code < 500
        deadline = time.monotonic() + 30  # a worker finds it out at its next flush (each second)
        while "is full (No space left on device): new metric series wait" not in server.log():
            assert time.monotonic() < deadline, server.log()[-4000:]
            assert http.get("/metrics").status_code == 200
            method, path = next(combos)
            assert http.request(method, path).status_code < 500
            time.sleep(0.01)
        assert http.get("/metrics").status_code == 200
        assert worker_pids(server) == pids

        while_full = series(http.get("/metrics").text)
        ballast.unlink()
        deadline = time.monotonic() + 30  # the waiting series go in at a later flush (each second)
        while len(series(http.get("/metrics").text)) <= len(while_full):
            assert time.monotonic() < deadline, server.log()[-4000:]
            for method, path in itertools.product(METRIC_METHODS, METRIC_PATHS[:3]):  # every worker flushes
                http.request(method, path)
            time.sleep(0.05)
        for path in metrics_dir.glob("*.db"):  # fully allocated: no page of a mapping without a block
            assert path.stat().st_blocks * 512 >= path.stat().st_size, path
        assert worker_pids(server) == pids
        assert_no_tracebacks(server)
