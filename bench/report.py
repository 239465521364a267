"""Collected samples, their medians, and the markdown that shows them (stdout and results/latest.md)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.settings import Settings
from bench.suite import Metric

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class Results:
    """Every repetition's value of every metric, for the subject and the baseline registry."""

    def __init__(self, subject: str, baseline: str) -> None:
        self.subject = subject
        self.baseline = baseline
        self._samples: dict[str, dict[str, list[float]]] = {subject: {}, baseline: {}}

    def record(self, target: str, values: dict[str, float]) -> None:
        """Add one pass's values for ``target``."""
        for key, value in values.items():
            self._samples[target].setdefault(key, []).append(value)

    def samples(self, target: str, key: str) -> list[float]:
        return list(self._samples[target].get(key, []))

    def median(self, target: str, key: str) -> float | None:
        values = self._samples[target].get(key)
        values = [v for v in values or () if not math.isnan(v)]  # a metric this run could not take
        return statistics.median(values) if values else None


def format_number(value: float | None, decimals: int) -> str:
    return "—" if value is None else f"{value:,.{decimals}f}"


def format_ratio(subject: float | None, baseline: float | None) -> str:
    if subject is None or baseline is None or baseline == 0:
        return "—"
    return f"{subject / baseline:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table with padded columns (first column left-aligned, the others right)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        padded = [cells[0].ljust(widths[0]), *rest]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2), *("-" * (w + 1) + ":" for w in widths[1:])]) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def median_table(results: Results, metrics: Sequence[Metric]) -> str:
    """The one result table: metric, both medians, and the subject/baseline ratio."""
    header = ["metric", f"{results.subject} (median)", f"{results.baseline} (median)",
              f"ratio {results.subject}/{results.baseline}"]
    rows = []
    for metric in metrics:
        subject = results.median(results.subject, metric.key)
        baseline = results.median(results.baseline, metric.key)
        rows.append([metric.label, format_number(subject, metric.decimals), format_number(baseline, metric.decimals),
                     format_ratio(subject, baseline)])
    return markdown_table(header, rows)


def samples_table(results: Results, metrics: Sequence[Metric]) -> str:
    """Every repetition's value, to judge the spread behind each median."""
    header = ["metric", results.subject, results.baseline]
    rows = [
        [metric.label, *(", ".join(format_number(v, metric.decimals) for v in results.samples(target, metric.key))
                         for target in (results.subject, results.baseline))]
        for metric in metrics
    ]
    return markdown_table(header, rows)


def settings_line(settings: Settings) -> str:
    return (f"blob {settings.blob_mib} MiB, chunks {settings.chunk_mib} MiB, "
            f"{settings.streams} pull streams, {settings.connections} connections for {settings.seconds} s, "
            f"{settings.reps} repetitions" + (", scale-out table on" if settings.scaleout else "")
            + {"0": "", "1": f", lifecycle table on ({settings.gc_candidates} GC candidates)",
               "only": f", the lifecycle table alone ({settings.gc_candidates} GC candidates)"}[settings.lifecycle]
            + {"0": "", "1": ", supply-chain table on", "only": ", the supply-chain table alone"}[settings.scan])


def write_latest(text: str, directory: Path = RESULTS_DIR) -> Path:
    """Write ``text`` to ``directory/latest.md`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "latest.md"
    path.write_text(text)
    return path
