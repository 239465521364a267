"""The CLI progress helper: plain lines off a terminal, a rich bar on one."""

from __future__ import annotations

import io

import pytest

from dockyard.cli.progress import format_amount, progress


def test_plain_lines_every_n_items_and_a_last_line() -> None:
    out = io.StringIO()
    with progress("scrubbing blobs", total=10 * 1024, unit="B", every_items=4, every_seconds=3600,
                  stream=out) as advance:
        for n in range(10):
            advance(1024, f"sha256:{n}")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("scrubbing blobs: 4.0 KiB of 10.0 KiB (40%), 4 items, ")
    assert lines[0].endswith("(sha256:3)")
    assert lines[1].startswith("scrubbing blobs: 8.0 KiB of 10.0 KiB (80%), 8 items, ")
    assert lines[2].startswith("scrubbing blobs: done, 10.0 KiB, 10 items in ")
    assert len(lines) == 3


def test_plain_lines_every_n_seconds() -> None:
    out = io.StringIO()
    with progress("purging", every_items=10**9, every_seconds=0, stream=out) as advance:
        advance()
        advance(2, "b")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # every call is "every_seconds" later (0), then the last line
    assert lines[0].startswith("purging: 1 items, ")
    assert not lines[0].endswith(")")
    assert lines[1].startswith("purging: 3 items, ")
    assert lines[1].endswith("(b)")
    assert lines[2].startswith("purging: done, 3 items in ")


def test_unknown_total_has_no_percentage() -> None:
    out = io.StringIO()
    with progress("walking", every_items=1, stream=out) as advance:
        advance(5)
    first = out.getvalue().splitlines()[0]
    assert first.startswith("walking: 5 items, ")
    assert "%" not in first


def test_last_line_also_when_the_body_raises() -> None:
    out = io.StringIO()

    def fail_halfway() -> None:
        with progress("failing", stream=out) as advance:
            advance(1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_halfway()
    assert out.getvalue().splitlines()[-1].startswith("failing: done, 1 items in ")


def test_terminal_shows_a_bar_with_bytes_and_the_note() -> None:
    out = io.StringIO()
    with progress("scrubbing blobs", total=2 * 1024 * 1024, unit="B", stream=out, terminal=True) as advance:
        advance(2 * 1024 * 1024, "sha256:last")
    shown = out.getvalue()
    assert "scrubbing blobs" in shown
    assert "2.0/2.0 MiB" in shown
    assert "sha256:last" in shown
    assert "100%" in shown


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (0, "B", "0 B"), (1023, "B", "1023 B"), (1024, "B", "1.0 KiB"), (5 * 1024**3, "B", "5.0 GiB"),
    (3 * 1024**4, "B", "3.0 TiB"), (7, "blobs", "7 blobs"),
])
def test_format_amount(value: int, unit: str, shown: str) -> None:
    assert format_amount(value, unit) == shown
