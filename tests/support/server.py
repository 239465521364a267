"""Start a real `dockyard serve` process for end-to-end tests.

Used by ``tests/e2e``: the server runs as its own process (granian workers and all), on a free
loopback port, with its data in a directory the test owns, so a test can ``kill -9`` it and start
it again on the same data.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Every test server starts with this system admin password (the first start creates `admin`).
ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-Secret-1"
ADMIN_AUTH = (ADMIN_USER, ADMIN_PASSWORD)
# What every test server gets unless the test overrides it: the admin password, and argon2 at its
# cheapest settings (a server verifies each password once per process; tests start many servers).
AUTH_ENV = {
    "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "DOCKYARD_AUTH__ARGON2_TIME_COST": "1",
    "DOCKYARD_AUTH__ARGON2_MEMORY_KIB": "1024",
    # Scanning is opt-in here: a test about something else would also pay a scan (a child process
    # and an SBOM push) for every image it pushes; the supply-chain tests set it to "true".
    "DOCKYARD_SCAN__ENABLED": "false",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    """A server process in its own process group, logging to a file beside its data directory."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """`host:port`, the form skopeo and podman take in image references."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def _launch(self, name: str, cmd: list[str], ready_path: str, timeout: float,
                env: dict[str, str] | None = None) -> None:
        """Start ``cmd`` and poll ``ready_path`` until it answers 200 (anonymously, as probes do)."""
        self._spawn(name, cmd, env)
        self._wait_ready(name, ready_path, timeout)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None, *,
               environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        """Start ``cmd`` (in its own session, output to ``log_path``) without waiting for it; its
        environment is ``environ`` (default: this process's) overlaid with ``env``."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"{name}-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                         env={**(os.environ if environ is None else environ), **(env or {})},
                                         start_new_session=True)

    def _wait_ready(self, name: str, ready_path: str, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}{ready_path}", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{name} did not become ready in {timeout}s:\n{self.log()}")

    def group_pids(self) -> set[int]:
        """Every live pid in this process's group (a server: its supervisor and workers), without
        the scan child processes a worker starts for the length of one scan."""
        if self.proc is None:
            return set()
        pids = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                scanning = b"dockyard.scan.analysis" in (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid and not scanning:
                pids.add(int(entry.name))
        return pids

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown handler runs."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait: the graceful path."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


@dataclass
class ServerProcess(ManagedProcess):
    """One `dockyard serve` process; `start()` waits until `/readyz` answers 200.

    The server's environment is `AUTH_ENV` (admin password ``ADMIN_PASSWORD``) overlaid with `env`,
    so a test can override any of it.
    """

    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.spawn()
        self._wait_ready("dockyard", "/readyz", timeout)
        return self

    def spawn(self) -> ServerProcess:
        """Start the process without waiting for it to be ready."""
        cmd = [sys.executable, "-m", "dockyard", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--workers", str(self.workers), *self.extra_args]
        self._spawn("dockyard", cmd, {**AUTH_ENV, **self.env})
        return self

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
