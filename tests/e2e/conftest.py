"""Fixtures shared by the end-to-end tests: a running registry, fresh directories, real clients.

By default each registry is a real `dockyard serve` process on a free loopback port with its data
in a temporary directory. ``DOCKYARD_E2E_EXTERNAL=127.0.0.1:PORT`` points the tests at a registry
that is already running instead (e.g. CNCF distribution, to check the tests themselves); tests
that need something only dockyard has call ``require_dockyard``.

dockyard authorizes every request: the HTTP client sends the system admin's credentials
(``ADMIN_AUTH``), and the skopeo and podman fixtures log in as the admin to each registry fixture
the test uses (`shared_registry`, `registry`); a test that talks to another registry logs its
clients in itself.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.clients import EXTERNAL_ENV, ExternalRegistry, Podman, Registry, Skopeo
from tests.support.server import ADMIN_AUTH, ServerProcess

LOG_TAIL_LINES = 80

TmpFactory = Callable[[str], Path]


def external_host() -> str | None:
    return os.environ.get(EXTERNAL_ENV) or None


def print_log_tail(server: ServerProcess) -> None:
    """Shown by pytest under "Captured stdout teardown" when the test failed."""
    lines = server.log().splitlines()[-LOG_TAIL_LINES:]
    print(f"--- last {len(lines)} lines of {server.log_path}", *lines, sep="\n")


@pytest.fixture
def tmp(tmp_path: Path) -> TmpFactory:
    """`tmp("name")` → a new, empty directory for this test (a fresh one on every call)."""

    def make(name: str) -> Path:
        path = tmp_path / f"{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    return make


def running_registry(data_dir: Path) -> Iterator[Registry]:
    host = external_host()
    if host is not None:
        yield ExternalRegistry(host)
        return
    server = ServerProcess(data_dir=data_dir).start()
    try:
        yield server
    finally:
        server.stop()
        print_log_tail(server)


@pytest.fixture
def registry(tmp: TmpFactory) -> Iterator[Registry]:
    """A registry of this test's own: a fresh `dockyard serve` on an empty data directory."""
    yield from running_registry(tmp("registry") / "data")


@pytest.fixture(scope="session")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One registry for the whole session, for tests that push only content of their own."""
    yield from running_registry(tmp_path_factory.mktemp("shared-registry") / "data")


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses: `e2e/<test name>-<random>`."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    return f"e2e/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def http(shared_registry: Registry) -> Iterator[httpx.Client]:
    """An HTTP client for the shared registry's API."""
    with httpx.Client(base_url=shared_registry.url, timeout=30.0, auth=ADMIN_AUTH) as client:
        yield client


def log_in(client: Skopeo | Podman, request: pytest.FixtureRequest) -> None:
    """Log `client` in as the admin to each registry fixture the requesting test uses."""
    for name in ("shared_registry", "registry"):
        if name in request.fixturenames:
            registry: Registry = request.getfixturevalue(name)
            client.login(registry.host)


@pytest.fixture
def skopeo(tmp: TmpFactory, request: pytest.FixtureRequest) -> Skopeo:
    client = Skopeo.create(tmp("skopeo"))
    log_in(client, request)
    return client


@pytest.fixture
def podman(tmp: TmpFactory, request: pytest.FixtureRequest) -> Iterator[Podman]:
    runroot = Path(tempfile.mkdtemp(prefix="dockyard-podman-"))
    try:
        client = Podman.create(tmp("podman"), runroot)
        log_in(client, request)
        yield client
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
