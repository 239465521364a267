"""The server process: graceful SIGTERM, schema checks at start, and the CLI around it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ADMIN_AUTH, ServerProcess, free_port

pytestmark = pytest.mark.e2e


def dockyard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60, check=False)


def _slow_push(server: ServerProcess, data: bytes, piece: int, pause: float
               ) -> tuple[str, threading.Thread, threading.Event, dict[str, object]]:
    """PUT ``data`` as one upload from a thread, ``piece`` bytes every ``pause`` seconds: its
    digest, the thread, an event set once half the data is sent, and what the PUT came to
    (``status``, or the transport ``error``)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = httpx.post(f"{server.url}/v2/team/app/blobs/uploads/", auth=ADMIN_AUTH).headers["location"]
    halfway = threading.Event()
    outcome: dict[str, object] = {}

    def slow_body() -> Iterator[bytes]:
        for start in range(0, len(data), piece):
            if start >= len(data) // 2:
                halfway.set()
            yield data[start:start + piece]
            time.sleep(pause)

    def push() -> None:
        try:
            outcome["status"] = httpx.put(f"{server.url}{location}?digest={digest}", content=slow_body(),
                                          timeout=30, auth=ADMIN_AUTH).status_code
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    upload = threading.Thread(target=push)
    upload.start()
    return digest, upload, halfway, outcome


@pytest.mark.parametrize("signals", [1, 3])
def test_sigterm_lets_an_upload_in_flight_finish(tmp_path: Path, signals: int) -> None:
    # Three: a service manager signals every process of the unit, and may repeat; every signal after
    # the first changes nothing (granian's own worker handler used to block on the second one).
    server = ServerProcess(data_dir=tmp_path / "data", workers=1).start()
    data = os.urandom(6 << 20)
    digest, upload, halfway, outcome = _slow_push(server, data, 1 << 20, 0.15)
    assert halfway.wait(10)
    assert server.proc is not None
    for _ in range(signals):
        os.killpg(server.proc.pid, signal.SIGTERM)
        time.sleep(0.05)
    upload.join(30)
    assert outcome["status"] == 201
    assert server.proc.wait(30) == 0

    with ServerProcess(data_dir=tmp_path / "data", workers=1) as restarted:
        assert httpx.get(f"{restarted.url}/v2/team/app/blobs/{digest}", auth=ADMIN_AUTH).content == data


def test_a_worker_still_busy_after_the_graceful_timeout_is_killed(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", workers=1,
                           env={"DOCKYARD_SERVER__GRACEFUL_TIMEOUT": "1"}).start()
    # 8 s of sending, far beyond the graceful timeout; halfway is 4 s in.
    digest, upload, halfway, outcome = _slow_push(server, os.urandom(4 << 20), 1 << 19, 1)
    assert halfway.wait(10)
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 1  # a worker had to be killed
    assert time.monotonic() - started < 5
    upload.join(30)
    assert "status" not in outcome  # the upload was cut, never acknowledged
    assert "did not stop within server.graceful_timeout (1s); killing it" in server.log()

    with ServerProcess(data_dir=tmp_path / "data", workers=1) as restarted:
        assert httpx.head(f"{restarted.url}/v2/team/app/blobs/{digest}", auth=ADMIN_AUTH).status_code == 404


def test_the_supervisor_stays_a_bare_interpreter(tmp_path: Path) -> None:
    # Whatever the supervisor maps, every worker forked from it maps too, and the memory floor
    # (docs/benchmarks.md) counts each worker's resident pages: granian and the app load in the
    # workers only, after the fork.
    with ServerProcess(data_dir=tmp_path / "data", workers=2) as server:
        assert server.proc is not None
        _wait_until_serving(server, workers=2)
        supervisor = Path(f"/proc/{server.proc.pid}/maps").read_text()
        workers = [Path(f"/proc/{pid}/maps").read_text() for pid in _workers(server)]
        for library in ("_granian", "uvloop", "cryptography", "sqlalchemy", "_ssl", "_sqlite3"):
            assert library not in supervisor, library
            assert all(library in maps for maps in workers), library


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", workers=2).start()
    _wait_until_serving(server, workers=2)
    workers = _workers(server)
    assert server.proc is not None
    server.proc.kill()  # the supervisor only, as the OOM killer would
    server.proc.wait(10)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.1)
    restarted = ServerProcess(data_dir=tmp_path / "data", port=server.port, workers=1).start()
    restarted.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"  # gone while being read


def test_the_plain_asgi_interface_serves_too(tmp_path: Path) -> None:
    env = {"DOCKYARD_SERVER__INTERFACE": "asgi"}
    with ServerProcess(data_dir=tmp_path / "data", workers=2, env=env) as server:
        _wait_until_serving(server, workers=2)
        data = os.urandom(300_000)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = httpx.post(f"{server.url}/v2/team/app/blobs/uploads/", auth=ADMIN_AUTH).headers["location"]
        pushed = httpx.put(f"{server.url}{location}?digest={digest}", content=data, auth=ADMIN_AUTH)
        assert pushed.status_code == 201
        blob = f"{server.url}/v2/team/app/blobs/{digest}"
        assert httpx.get(blob, auth=ADMIN_AUTH).content == data
        ranged = httpx.get(blob, headers={"Range": "bytes=1000-1999"}, auth=ADMIN_AUTH)
        assert ranged.status_code == 206
        assert ranged.content == data[1000:2000]


def test_serve_refuses_a_stale_schema_when_auto_migrate_is_off(tmp_path: Path) -> None:
    env = {"DOCKYARD_DATABASE__AUTO_MIGRATE": "false"}
    server = ServerProcess(data_dir=tmp_path / "data", env=env)
    with pytest.raises(RuntimeError, match="run `dockyard migrate`"):
        server.start(timeout=20)
    check = dockyard("migrate", "--check", "--data-dir", str(tmp_path / "data"))
    assert check.returncode == 1
    migrated = dockyard("migrate", "--data-dir", str(tmp_path / "data"))
    assert migrated.returncode == 0, migrated.stderr
    assert "schema at" in migrated.stdout
    assert dockyard("migrate", "--check", "--data-dir", str(tmp_path / "data")).returncode == 0
    with ServerProcess(data_dir=tmp_path / "data", env=env) as started:
        assert httpx.get(f"{started.url}/v2/", auth=ADMIN_AUTH).status_code == 200


def test_config_check_names_the_bad_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[server]\nport = 5001\n[storage]\ndriver = "filesystem"\n')
    assert dockyard("config", "check", str(good)).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nprot = 5001\n[registry]\nlist_page_max = "many"\n')
    result = dockyard("config", "check", str(bad))
    assert result.returncode == 1
    assert "server.prot: unknown setting" in result.stderr
    assert "registry.list_page_max" in result.stderr


def test_environment_overrides_reach_the_server(tmp_path: Path) -> None:
    env = {"DOCKYARD_REGISTRY__LIST_PAGE_MAX": "1"}
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server:
        for name in ("a/one", "a/two"):
            httpx.post(f"{server.url}/v2/{name}/blobs/uploads/?digest=sha256:{hashlib.sha256(b'').hexdigest()}",
                       auth=ADMIN_AUTH)
        page = httpx.get(f"{server.url}/v2/_catalog", auth=ADMIN_AUTH)
        assert page.json() == {"repositories": ["a/one"]}
        assert 'rel="next"' in page.headers["link"]


def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    with ServerProcess(data_dir=tmp_path / "data", workers=2) as server, httpx.Client(auth=ADMIN_AUTH) as client:
        for _ in range(40):  # new connections land on either worker
            client.get(f"{server.url}/v2/", headers={"Connection": "close"})
        # Each worker adds its counts to the shared totals within a second (docs/operations.md).
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"{server.url}/metrics").text  # anonymous on purpose: scrapers do not log in
            line = next(x for x in text.splitlines()
                        if x.startswith('dockyard_http_requests_total{method="GET",route="base",status="200"}'))
            if float(line.split()[-1]) >= 40.0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert float(line.split()[-1]) == 40.0


def test_first_start_prints_a_generated_admin_password_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir=data_dir, workers=2, env={"DOCKYARD_ADMIN_PASSWORD": ""}).start()
    try:
        lines = [line for line in server.log().splitlines() if "generated password" in line]
        assert len(lines) == 1, server.log()
        password = lines[0].split("generated password ", 1)[1].split()[0]
        assert len(password) >= 20
        token = httpx.get(f"{server.url}/token", auth=("admin", password), timeout=10)
        assert token.status_code == 200
    finally:
        server.stop()
    # A later start (even one that names a password) neither prints nor changes it.
    again = ServerProcess(data_dir=data_dir, workers=1, port=server.port,
                          env={"DOCKYARD_ADMIN_PASSWORD": "another-password"}).start()
    try:
        assert httpx.get(f"{again.url}/token", auth=("admin", password), timeout=10).status_code == 200
        assert httpx.get(f"{again.url}/token", auth=("admin", "another-password"), timeout=10).status_code == 401
        assert again.log().count(password) == 1  # the first start's line, in the same log file
    finally:
        again.stop()


def test_a_second_server_on_a_taken_port_refuses_to_start(tmp_path: Path) -> None:
    # granian listens with SO_REUSEPORT: unchecked, a second server would silently take half of
    # the first one's connections (each with its own data, keys and accounts).
    with ServerProcess(data_dir=tmp_path / "first", workers=1) as first:
        # (Not start(): its readiness probe, on the same port, would reach the first server.)
        second = ServerProcess(data_dir=tmp_path / "second", port=first.port).spawn()
        assert second.proc is not None
        try:
            assert second.proc.wait(60) != 0
        finally:
            second.kill()
        assert f"127.0.0.1:{first.port} is already in use" in second.log()
        assert "--port" in second.log()
        assert not (tmp_path / "second" / "dockyard.db").exists()  # refused before touching anything
        for _ in range(20):  # new connections all reach the first server, whose admin this is
            answer = httpx.get(f"{first.url}/v2/", auth=ADMIN_AUTH, headers={"Connection": "close"})
            assert answer.status_code == 200


def test_serve_names_the_fix_for_an_address_it_cannot_use(tmp_path: Path) -> None:
    elsewhere = dockyard("serve", "--host", "192.0.2.1", "--port", "5000", "--data-dir", str(tmp_path / "d"))
    assert elsewhere.returncode != 0
    assert "cannot listen on 192.0.2.1:5000" in elsewhere.stderr
    assert "--host" in elsewhere.stderr


def test_sigterm_while_workers_are_still_starting_stops_them_at_once(tmp_path: Path) -> None:
    # A worker is forked with the supervisor's signal handlers, and CPython drops a signal that
    # reaches a forked child before it first runs: a SIGTERM that came before the worker set its own
    # handlers used to be lost, and the stop waited the whole graceful timeout to kill it.
    for attempt in range(3):
        server = ServerProcess(data_dir=tmp_path / f"data{attempt}", workers=2,
                               env={"DOCKYARD_SERVER__GRACEFUL_TIMEOUT": "5"}).spawn()
        assert server.proc is not None
        try:
            deadline = time.monotonic() + 60
            while "Spawning worker-2" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.killpg(server.proc.pid, signal.SIGTERM)  # as systemd stops a unit: every process of it
            assert server.proc.wait(60) == 0
        finally:
            server.kill()
        text = server.log()
        assert "Spawning worker-2" in text
        assert "did not stop within server.graceful_timeout" not in text, text
        assert "exited unexpectedly" not in text, text


@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("user", "list"), ("uploads", "purge")])
def test_a_data_dir_that_cannot_be_one_is_named_with_the_fix(tmp_path: Path, command: tuple[str, ...]) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    done = dockyard(*command, "--data-dir", str(a_file))
    assert done.returncode == 1
    assert f"cannot use {a_file} as the data directory (it is a file)" in done.stderr
    assert "--data-dir" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_data_dir_without_write_access_is_named_with_the_fix() -> None:
    done = dockyard("serve", "--data-dir", "/proc/1", "--port", str(free_port()))  # a directory nobody writes in
    assert done.returncode == 1
    assert "cannot write in the data directory /proc/1" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("user", "list"), ("uploads", "purge")])
def test_a_database_it_cannot_reach_is_named_without_its_password(tmp_path: Path, command: tuple[str, ...]) -> None:
    closed = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://dockyard:Pass-word-9@127.0.0.1:{closed}/registry"
    done = dockyard(*command, "--data-dir", str(tmp_path / "data"), env={"DOCKYARD_DATABASE__URL": url})
    assert done.returncode == 1
    assert f"the database at postgresql+asyncpg://dockyard:***@127.0.0.1:{closed}/registry failed" in done.stderr
    assert "DOCKYARD_DATABASE__URL" in done.stderr
    assert "Pass-word-9" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def _thread_cpus(pid: int) -> dict[int, str]:
    """Each thread of ``pid`` and the CPUs it may run on (``Cpus_allowed_list``)."""
    cpus = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus[int(task.name)] = line.split()[1]
    return cpus


def _workers(server: ServerProcess) -> list[int]:
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def _wait_until_serving(server: ServerProcess, workers: int) -> None:
    """Until every worker serves: the server answers as soon as one does."""
    deadline = time.monotonic() + 30
    while not all(f"worker-{n} serving" in server.log() for n in range(1, workers + 1)):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


def _pinned_cpu(worker: int, timeout: float = 30) -> str:
    """The one CPU the worker's granian threads are pinned to, once it serves; its main thread
    stays free to run anywhere."""
    deadline = time.monotonic() + timeout
    while True:
        cpus = _thread_cpus(worker)
        pinned = {cpu for cpu in cpus.values() if cpu != cpus[worker]}
        if pinned or time.monotonic() > deadline:  # a worker still building the app has no threads yet
            break
        time.sleep(0.1)
    assert len(pinned) == 1, cpus
    return pinned.pop()


def test_each_worker_has_its_granian_threads_on_a_cpu_of_its_own(tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: there is nothing to pin to")
    with ServerProcess(data_dir=tmp_path / "data", workers=2) as server:
        workers = _workers(server)
        assert len(workers) == 2
        first, second = (_pinned_cpu(worker) for worker in workers)
        assert first != second
        assert server.proc is not None
        everywhere = _thread_cpus(server.proc.pid)[server.proc.pid]
        assert [_thread_cpus(worker)[worker] for worker in workers] == [everywhere, everywhere]
        # A worker that dies is replaced on the same CPU.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (replaced := [w for w in _workers(server) if w not in workers]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert replaced, server.log()
        assert _pinned_cpu(replaced[0]) == first


def test_pin_workers_false_leaves_every_thread_free(tmp_path: Path) -> None:
    env = {"DOCKYARD_SERVER__PIN_WORKERS": "false"}
    with ServerProcess(data_dir=tmp_path / "data", workers=2, env=env) as server:
        workers = _workers(server)
        _wait_until_serving(server, workers=2)
        for worker in workers:
            assert len(set(_thread_cpus(worker).values())) == 1, _thread_cpus(worker)
