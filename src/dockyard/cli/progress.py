"""Progress of a long CLI run: a rich progress bar on a terminal, plain lines otherwise.

    with progress("scrubbing blobs", total=total_bytes, unit="B") as advance:
        for blob in blobs:
            ...
            advance(blob.size, blob.digest)      # amount done since the last call, and a note

On a terminal (``stream.isatty()``) a bar shows the description, the amount done of ``total``
(bytes shown as KiB/MiB/GiB when ``unit="B"``), the rate and the time left, and the latest note.
Anywhere else (a pipe, a log file, cron) it writes one plain line every ``every_items`` calls or
``every_seconds`` seconds, whichever comes first, and a last line when the block ends::

    scrubbing blobs: 12.0 MiB of 40.0 MiB (30%), 310 items, 4s (sha256:9f2c...)
    scrubbing blobs: done, 40.0 MiB, 1024 items in 13s

It writes to stderr by default, so a command's ``--json`` output on stdout stays clean. ``total``
may be None when it is not known (no percentage then). The block ends the bar also when the body
raises; the exception is not swallowed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Advance = Callable[..., None]
"""``advance(amount=1, note="")``: add ``amount`` (in ``unit``) to the work done; ``note`` is
shown with the next update (e.g. the item just finished)."""


@contextmanager
def progress(description: str, *, total: int | None = None, unit: str = "items",
             every_items: int = 100, every_seconds: float = 10.0,
             stream: TextIO | None = None, terminal: bool | None = None) -> Iterator[Advance]:
    """Show progress of the block's work; yield ``advance(amount=1, note="")``.

    ``terminal`` forces the bar (True) or plain lines (False); by default the stream decides.
    """
    out = stream if stream is not None else sys.stderr
    if terminal is None:
        terminal = out.isatty()
    if terminal:
        with _bar(description, total, unit, out) as advance:
            yield advance
    else:
        with _lines(description, total, unit, every_items, every_seconds, out) as advance:
            yield advance


@contextmanager
def _bar(description: str, total: int | None, unit: str, out: TextIO) -> Iterator[Advance]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    amount_columns = ([DownloadColumn(binary_units=True), TransferSpeedColumn()] if unit == "B"
                      else [MofNCompleteColumn(), TextColumn(unit)])
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), *amount_columns,
               TimeRemainingColumn(), TextColumn("{task.fields[note]}", style="dim")]
    console = Console(file=out, force_terminal=True)
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total, note="")

        def advance(amount: int = 1, note: str = "") -> None:
            bar.update(task, advance=amount, note=note)

        yield advance


@contextmanager
def _lines(description: str, total: int | None, unit: str, every_items: int, every_seconds: float,
           out: TextIO) -> Iterator[Advance]:
    started = last_line = time.monotonic()
    done = items = items_at_last_line = 0

    def amount(value: int) -> str:
        return format_amount(value, unit)

    def advance(step: int = 1, note: str = "") -> None:
        nonlocal done, items, items_at_last_line, last_line
        done += step
        items += 1
        now = time.monotonic()
        if items - items_at_last_line < every_items and now - last_line < every_seconds:
            return
        items_at_last_line, last_line = items, now
        of_total = f" of {amount(total)} ({done * 100 // total}%)" if total else ""
        items_part = "" if unit == "items" else f", {items} items"
        out.write(f"{description}: {amount(done)}{of_total}{items_part}, {now - started:.0f}s"
                  + (f" ({note})" if note else "") + "\n")
        out.flush()

    try:
        yield advance
    finally:
        items_part = "" if unit == "items" else f", {items} items"
        out.write(f"{description}: done, {amount(done)}{items_part} in {time.monotonic() - started:.0f}s\n")
        out.flush()


def format_amount(value: int, unit: str) -> str:
    """``value`` in ``unit``; bytes (``unit="B"``) in binary multiples: ``512 B``, ``3.2 MiB``."""
    if unit != "B":
        return f"{value} {unit}"
    if abs(value) < 1024:
        return f"{value} B"
    size = value / 1024
    for prefix in ("KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.1f} {prefix}"
        size /= 1024
    return f"{size:.1f} TiB"
