"""A real clamd for tests, loading only a tiny signature database the test writes.

``running_clamd(signatures)`` writes a clamd.conf (a Unix socket in a fresh short temporary
directory, a TCP socket on a free loopback port, ``DatabaseDirectory`` holding only
``dockyard-test.ndb``), starts ``clamd`` in the foreground, waits until it answers PING and stops
it afterwards. Nothing is downloaded: no freshclam, no official database.

Without clamd (Debian package clamav-daemon) the test is skipped, except in CI (``CI=true``),
where it fails: CI installs it (TEST_DEBS in the Makefile).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.scan.clamd import Clamd, ClamdUnavailable

START_TIMEOUT = 120.0  # loading two signatures takes a second; a loaded CI machine may take longer
STREAM_MAX_BYTES = 1024 * 1024  # clamd's StreamMaxLength in these tests: larger streams are refused

# The EICAR anti-virus test file (eicar.org), built here so no file in the repository holds it whole.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@dataclass(frozen=True)
class ClamdServer:
    unix_socket: str
    tcp_socket: str  # tcp://127.0.0.1:PORT
    log: Path

    def client(self, timeout: float = 30.0) -> Clamd:
        return Clamd(self.unix_socket, timeout)


def clamd_path() -> str:
    """clamd's path; skips the test without it, but fails it under CI=true."""
    path = shutil.which("clamd") or next((p for p in ("/usr/sbin/clamd",) if Path(p).exists()), None)
    if path is not None:
        return path
    reason = "clamd is not installed (apt-get install clamav-daemon)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so the clamd tests must run")
    pytest.skip(reason)


def ndb(signatures: Mapping[str, bytes]) -> str:
    """A ClamAV body-signature database (.ndb): each name matches its bytes anywhere in any file."""
    return "".join(f"{name}:0:*:{body.hex()}\n" for name, body in signatures.items())


@contextmanager
def running_clamd(signatures: Mapping[str, bytes]) -> Iterator[ClamdServer]:
    """A clamd loading only ``signatures``, running until the block ends."""
    binary = clamd_path()
    base = Path(tempfile.mkdtemp(prefix="clamd-"))  # short: a Unix socket path has ~100 bytes at most
    try:
        (base / "db").mkdir()
        (base / "tmp").mkdir()
        (base / "db" / "dockyard-test.ndb").write_text(ndb(signatures))
        port = _free_port()
        server = ClamdServer(str(base / "clamd.sock"), f"tcp://127.0.0.1:{port}", base / "clamd.log")
        (base / "clamd.conf").write_text("\n".join([
            f"LocalSocket {server.unix_socket}",
            f"TCPSocket {port}",
            "TCPAddr 127.0.0.1",
            f"DatabaseDirectory {base / 'db'}",
            f"TemporaryDirectory {base / 'tmp'}",
            f"LogFile {server.log}",
            f"PidFile {base / 'clamd.pid'}",
            "Foreground yes",
            f"StreamMaxLength {STREAM_MAX_BYTES}",
            "SelfCheck 0",
            "",
        ]))
        with (base / "clamd.out").open("wb") as out, subprocess.Popen(
                [binary, "--config-file", str(base / "clamd.conf")], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT) as process:
            try:
                _wait_for_ping(process, server)
                yield server
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_ping(process: subprocess.Popen[bytes], server: ClamdServer) -> None:
    # clamd says nothing on a pipe when it is ready; asking it is the only way to know.
    deadline = time.monotonic() + START_TIMEOUT
    client = server.client(timeout=2.0)
    while True:
        if process.poll() is not None:
            output = (server.log.parent / "clamd.out").read_text(errors="replace")
            pytest.fail(f"clamd exited with {process.returncode} before answering PING:\n{output}")
        try:
            client.ping()
            return
        except ClamdUnavailable:
            if time.monotonic() > deadline:
                pytest.fail(f"clamd did not answer PING within {START_TIMEOUT:g}s")
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
