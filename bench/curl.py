"""curl as the transfer client for big bodies: it streams from and to files at full speed.

Each call returns the status, the ``Location`` header (for uploads), the byte counts and curl's own
timing, read from one ``--write-out`` template.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# One value a line; %header{} needs curl >= 7.84 (Debian 12 ships 7.88).
_WRITE_OUT = "%{http_code}\\n%{size_download}\\n%{size_upload}\\n%{time_total}\\n%header{location}\\n"
_BASE = [
    "curl", "--silent", "--show-error", "--noproxy", "*",
    "--header", "Expect:",  # no 100-continue round trip (and no 1 s wait where it is not answered)
    "--output", "/dev/null", "--write-out", _WRITE_OUT,
]


class CurlError(RuntimeError):
    """curl failed, or the registry answered an unexpected status."""


@dataclass(frozen=True, slots=True)
class CurlResult:
    status: int
    downloaded: int
    uploaded: int
    seconds: float
    location: str


def parse_write_out(text: str) -> CurlResult:
    """Read the ``--write-out`` block printed by one curl run."""
    lines = text.split("\n")
    if len(lines) < 5:
        raise CurlError(f"unexpected curl output: {text!r}")
    return CurlResult(int(lines[0]), int(lines[1]), int(lines[2]), float(lines[3]), lines[4].strip())


def upload_command(url: str, path: Path, method: str = "PUT", headers: dict[str, str] | None = None
                   ) -> list[str]:
    """curl streaming the file at ``path`` as the body of ``method url``."""
    if urlsplit(url).path.endswith("/"):
        # curl -T would append the file's name to such a URL.
        raise CurlError(f"refusing to upload to a URL whose path ends in '/': {url}")
    return [*_BASE, "--request", method, "--upload-file", str(path), *_header_args(headers), url]


def _header_args(headers: dict[str, str] | None) -> list[str]:
    return [arg for name, value in (headers or {}).items() for arg in ("--header", f"{name}: {value}")]


def download_command(url: str, follow_redirects: bool = False, headers: dict[str, str] | None = None
                     ) -> list[str]:
    """curl reading ``GET url`` into /dev/null; with ``follow_redirects`` also through 3xx (``-L``).

    curl sends an ``Authorization`` given in ``headers`` to the registry only, never on to where a
    redirect points (another host or port, e.g. a presigned object-store URL).
    """
    return [*_BASE, *(["--location"] if follow_redirects else []), *_header_args(headers), url]


def shown(command: Sequence[str]) -> list[str]:
    """``command`` fit for an error message: credentials replaced by ``[redacted]``."""
    return ["Authorization: [redacted]" if arg.lower().startswith("authorization:") else arg for arg in command]


def _finish(proc: subprocess.Popen[str], command: Sequence[str], expected: int) -> CurlResult:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise CurlError(f"curl exited with {proc.returncode}: {err.strip()}")
    result = parse_write_out(out)
    if result.status != expected:
        raise CurlError(f"{shown(command)!r} answered {result.status}, expected {expected}")
    return result


def run(command: list[str], expected: int) -> CurlResult:
    """Run one curl command; raise CurlError unless it answers ``expected``."""
    return run_concurrently([command], expected)[0]


def run_concurrently(commands: list[list[str]], expected: int) -> list[CurlResult]:
    """Start all commands at once and wait for all; every one must answer ``expected``."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for command in commands:
            procs.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        return [_finish(proc, command, expected) for proc, command in zip(procs, commands, strict=True)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
