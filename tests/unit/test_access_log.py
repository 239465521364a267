"""Access log lines are formatted by hand for speed; they must be exactly what ``json.dumps`` writes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from dockyard.http.observe import AccessLog, UTCClock

text = st.text(max_size=40)
maybe_text = st.none() | text
counts = st.integers(min_value=0, max_value=2**53)


@given(method=text, path=text, route=text, status=st.integers(100, 599),
       duration=st.floats(min_value=0, max_value=1e7, allow_nan=False), bytes_in=counts, bytes_out=counts,
       remote=maybe_text, user=maybe_text, user_agent=maybe_text)
def test_a_line_is_what_json_dumps_writes(method: str, path: str, route: str, status: int, duration: float,
                                          bytes_in: int, bytes_out: int, remote: str | None, user: str | None,
                                          user_agent: str | None) -> None:
    stream = io.StringIO()
    log = AccessLog(stream)
    log.write_request(method=method, path=path, route=route, status=status, duration_ms=round(duration, 3),
                      bytes_in=bytes_in, bytes_out=bytes_out, remote=remote, user=user, user_agent=user_agent)
    log.flush()
    line = stream.getvalue()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    parsed = json.loads(line)
    expected = {"method": method, "path": path, "route": route, "status": status,
                "duration_ms": round(duration, 3), "bytes_in": bytes_in, "bytes_out": bytes_out,
                "remote": remote, "user": user, "user_agent": user_agent, "time": parsed["time"]}
    assert line == json.dumps(expected, separators=(",", ":")) + "\n"


def _isoformat(at_ns: int) -> str:
    moment = datetime.fromtimestamp(at_ns // 10**9, UTC).replace(microsecond=at_ns // 1000 % 10**6)
    return moment.isoformat(timespec="milliseconds")


@given(st.integers(min_value=0, max_value=4 * 10**18))
def test_the_clock_writes_what_isoformat_writes(at_ns: int) -> None:
    assert UTCClock().now(at_ns) == _isoformat(at_ns)


def test_the_clock_follows_the_seconds() -> None:
    clock = UTCClock()
    for at_ns in (1_700_000_000_500_000_000, 1_700_000_000_999_999_999, 1_700_000_001_000_000_000,
                  1_700_000_061_250_000_000, 1_700_000_000_000_000_000):
        assert clock.now(at_ns) == _isoformat(at_ns)


def test_the_clock_reads_the_time_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = datetime.fromisoformat(UTCClock().now())
    assert before <= stamp <= datetime.now(UTC)
