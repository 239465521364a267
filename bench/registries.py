"""The registries under test: each is one process tree on 127.0.0.1 with its data in a directory we own.

Adding a registry is one subclass of ``Registry``: a name, the command that starts it (writing any
config file it needs into ``workdir``) and the path that answers 200 once it is ready.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

from bench.proctree import tree_pids


class RegistryError(RuntimeError):
    """A registry would not start, or stopped working."""


# dockyard authorizes every request. Its first start creates the system admin with this password
# (one per benchmark run, so every node of a cluster on one database agrees), and the benchmark
# authenticates as that admin the way a real client does: a bearer token from /token.
ADMIN_USER = "admin"
ADMIN_PASSWORD = secrets.token_urlsafe(18)
DOCKYARD_AUTH_ENV = {
    "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    # The longest lifetime allowed: one token serves a whole pass, however slow the machine.
    "DOCKYARD_AUTH__TOKEN_LIFETIME_SECONDS": "3600",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers_ok(host: str, port: int, path: str) -> bool:
    """Whether ``GET path`` answers 200 right now."""
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class Registry(ABC):
    """A registry server; ``start()`` returns once it is ready, ``stop()`` ends its whole tree."""

    name: str
    ready_path: str
    credentials: tuple[str, str] | None = None  # (user, password) to get a token with; None: no auth

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The id of the process we started (the root of the tree)."""
        if self._proc is None:
            raise RegistryError(f"{self.name} is not running")
        return self._proc.pid

    def pids(self) -> list[int]:
        """Every process of the server: the one we started and its descendants."""
        return tree_pids(self.pid)

    def environment(self) -> dict[str, str] | None:
        """The server's environment; None inherits ours."""
        return None

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the server in the foreground; may write files in ``workdir``."""

    def start(self, timeout: float = 60.0) -> None:
        """Start the server in its own process group and wait until ``ready_path`` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True, env=self.environment(),
            )
        deadline = time.monotonic() + timeout
        while not answers_ok(self.host, self.port, self.ready_path):
            if self._proc.poll() is not None:
                raise RegistryError(f"{self.name} exited with {self._proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RegistryError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)  # polling another process's readiness: there is nothing to await

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after ``timeout``; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        _signal_group(proc.pid, signal.SIGKILL)  # workers that outlived their parent
        proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote to its log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Registry:
        try:
            self.start()
        except BaseException:  # also Ctrl-C while waiting: never leave a server behind
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
"""


class Distribution(Registry):
    """CNCF distribution (Debian's ``docker-registry``) on filesystem storage, without auth."""

    ready_path = "/v2/"

    def __init__(self, workdir: Path, name: str = "distribution") -> None:
        super().__init__(workdir)
        self.name = name

    def command(self) -> list[str]:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RegistryError("docker-registry not found: apt-get install -y docker-registry")
        config = self.workdir / "config.yml"
        config.write_text(DISTRIBUTION_CONFIG.format(root=self.workdir / "data", port=self.port))
        return [binary, "serve", str(config)]


def distribution_version() -> str:
    """What ``docker-registry --version`` says, or why it could not say."""
    try:
        done = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return f"unknown ({exc})"
    return done.stdout.strip() or done.stderr.strip()


class Dockyard(Registry):
    """``python -m dockyard serve`` with its defaults (a worker per core, SQLite + filesystem).

    Its admin password is ``ADMIN_PASSWORD``; clients authenticate with ``credentials``.
    """

    name = "dockyard"
    ready_path = "/readyz"
    credentials = (ADMIN_USER, ADMIN_PASSWORD)

    def environment(self) -> dict[str, str]:
        return {**os.environ, **DOCKYARD_AUTH_ENV}

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "dockyard", "serve",
            "--host", self.host, "--port", str(self.port), "--data-dir", str(self.workdir / "data"),
        ]
