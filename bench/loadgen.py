"""Request-rate load tests: ``wrk`` for GET, ``ab`` for HEAD, and parsers for what they print.

Stock wrk waits for a body after a HEAD response that carries a Content-Length, so HEAD load uses
ApacheBench (``ab -i -k``), which knows a HEAD response has none. ab reports percentiles in whole
milliseconds; wrk in microseconds. A run counts only if every response was 2xx and the tool
completed requests; otherwise LoadError says what went wrong. Extra request headers (the
registry's ``Authorization``) go to both tools with ``-H``.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class LoadError(RuntimeError):
    """The load tool failed, or the registry did not answer every request with a 2xx."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests_per_second: float
    p99_ms: float
    completed: int
    socket_errors: int


def _search(pattern: str, text: str, tool: str) -> re.Match[str]:
    match = re.search(pattern, text, flags=re.MULTILINE)
    if match is None:
        raise LoadError(f"{tool} printed no {pattern!r}:\n{text}")
    return match


def parse_wrk(text: str) -> LoadResult:
    """Read ``wrk --latency`` output; LoadError on non-2xx responses or no completed request."""
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        raise LoadError(f"wrk got {non_2xx.group(1)} non-2xx/3xx responses:\n{text}")
    completed = int(_search(r"^\s*(\d+) requests in ", text, "wrk").group(1))
    if completed == 0:
        raise LoadError(f"wrk completed no request:\n{text}")
    p99 = _search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, "wrk")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return LoadResult(
        requests_per_second=float(_search(r"^Requests/sec:\s+([\d.]+)", text, "wrk").group(1)),
        p99_ms=float(p99.group(1)) * _WRK_UNITS[p99.group(2)],
        completed=completed,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def parse_ab(text: str) -> LoadResult:
    """Read ``ab`` output; LoadError on non-2xx responses or no completed request."""
    non_2xx = re.search(r"^Non-2xx responses:\s+(\d+)", text, flags=re.MULTILINE)
    if non_2xx:
        raise LoadError(f"ab got {non_2xx.group(1)} non-2xx responses:\n{text}")
    completed = int(_search(r"^Complete requests:\s+(\d+)", text, "ab").group(1))
    if completed == 0:
        raise LoadError(f"ab completed no request:\n{text}")
    return LoadResult(
        requests_per_second=float(_search(r"^Requests per second:\s+([\d.]+)", text, "ab").group(1)),
        p99_ms=float(_search(r"^\s*99%\s+(\d+)\s*$", text, "ab").group(1)),
        completed=completed,
        socket_errors=int(_search(r"^Failed requests:\s+(\d+)", text, "ab").group(1)),
    )


def _header_args(headers: dict[str, str] | None) -> list[str]:
    return [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]


def wrk_command(url: str, accept: str, connections: int, seconds: int, headers: dict[str, str] | None = None
                ) -> list[str]:
    """``wrk`` GETting ``url`` over ``connections`` connections, one thread per core."""
    threads = max(1, min(os.cpu_count() or 1, connections))
    return [
        "wrk", f"--threads={threads}", f"--connections={connections}", f"--duration={seconds}s",
        "--timeout=10s", "--latency", "--header", f"Accept: {accept}", *_header_args(headers), url,
    ]


def ab_command(url: str, accept: str, connections: int, seconds: int, headers: dict[str, str] | None = None
               ) -> list[str]:
    """``ab`` sending HEAD (-i) over ``connections`` keep-alive connections for ``seconds``."""
    # -t alone caps the run at 50,000 requests; -n after it lifts the cap (ab sizes a table by it).
    cap = 200_000 * seconds
    return [
        "ab", "-q", "-i", "-k", "-r", "-c", str(connections), "-t", str(seconds), "-n", str(cap),
        "-H", f"Accept: {accept}", *_header_args(headers), url,
    ]


def _run(command: list[str], seconds: int) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LoadError(f"{command[0]} did not finish within {seconds + 60}s") from None
    if done.returncode != 0:
        raise LoadError(f"{command[0]} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def get_load(url: str, accept: str, connections: int, seconds: int, headers: dict[str, str] | None = None
             ) -> LoadResult:
    """GET load with wrk."""
    return parse_wrk(_run(wrk_command(url, accept, connections, seconds, headers), seconds))


def head_load(url: str, accept: str, connections: int, seconds: int, headers: dict[str, str] | None = None
              ) -> LoadResult:
    """HEAD load with ab."""
    return parse_ab(_run(ab_command(url, accept, connections, seconds, headers), seconds))
