"""Prometheus metrics of the HTTP layer, counted per worker and added to the shared totals in batches.

Across granian's worker processes the totals live in prometheus_client's multiprocess files when
``PROMETHEUS_MULTIPROC_DIR`` is set (``dockyard serve`` sets it). Writing those files costs a lock,
a ``getpid()`` and a memory-mapped write per value, four values a request: a tenth of a manifest
GET. So each request only adds to plain per-series tallies, and the tallies go to the files once a
second, when ``/metrics`` is rendered, and at shutdown. A scrape therefore sees every request of
the worker that answers it and those of the other workers up to a second ago; a worker killed
hard loses at most its last second of counts (never data).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from dockyard.http.batches import FlushLater

FLUSH_SECONDS = 1.0
MAX_SERIES = 4096  # pending tallies between two flushes, whatever arrives
# The method label: a client may send any token as a method, and a Prometheus child (with its
# values in the multiprocess files) lives as long as the process, so every other one is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))  # prometheus_client's buckets: the given ones, then +Inf


@dataclass(slots=True)
class _Tally:
    """What one (method, route, status) series gathered since the last flush."""

    requests: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BOUNDS))
    bytes_in: int = 0
    bytes_out: int = 0


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        target = None if self.multiprocess else self.registry
        self.requests = Counter("dockyard_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=target)
        self.latency = Histogram("dockyard_http_request_duration_seconds", "Request latency by route",
                                 ["method", "route"], registry=target, buckets=LATENCY_BUCKETS)
        self.bytes_in = Counter("dockyard_http_request_bytes_total", "Request body bytes received",
                                ["route"], registry=target)
        self.bytes_out = Counter("dockyard_http_response_bytes_total", "Response body bytes sent",
                                 ["route"], registry=target)
        self.uploads_in_flight = Gauge("dockyard_uploads_in_flight", "Blob upload requests in progress",
                                       registry=target, multiprocess_mode="livesum")
        self._pending: dict[tuple[str, str, int], _Tally] = {}
        self._later = FlushLater(self.flush, FLUSH_SECONDS)

    def record(self, method: str, route: str, status: int, elapsed: float, bytes_in: int, bytes_out: int) -> None:
        """Count one request (in this worker's tallies; see the module docstring)."""
        if method not in METHODS:
            method = "other"
        tally = self._pending.get((method, route, status))
        if tally is None:
            if len(self._pending) >= MAX_SERIES:
                self.flush()
            tally = self._pending[(method, route, status)] = _Tally()
        tally.requests += 1
        tally.seconds += elapsed
        # Prometheus buckets hold every observation <= their bound: the first bound >= elapsed.
        tally.buckets[bisect_left(_BOUNDS, elapsed)] += 1
        tally.bytes_in += bytes_in
        tally.bytes_out += bytes_out
        self._later.request()

    def flush(self) -> None:
        """Add every tally to the Prometheus series (the shared files in multiprocess mode)."""
        self._later.done()
        pending, self._pending = self._pending, {}
        for (method, route, status), tally in pending.items():
            self.requests.labels(method, route, str(status)).inc(tally.requests)
            _add_observations(self.latency.labels(method, route), tally)
            self.bytes_in.labels(route).inc(tally.bytes_in)  # at 0 too: the series exists from the first request
            self.bytes_out.labels(route).inc(tally.bytes_out)

    def render(self) -> bytes:
        self.flush()
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))


def _add_observations(histogram: Any, tally: _Tally) -> None:
    """Add a tally's observations to a histogram child at once.

    prometheus_client offers only ``observe(value)``; a child keeps its sum and its per-bucket
    counts (not cumulative) as ``_sum`` and ``_buckets``, which ``observe`` increments.
    ``tests/unit/test_metrics.py`` holds the result to what ``observe`` gives, value by value.
    """
    histogram._sum.inc(tally.seconds)
    for index, count in enumerate(tally.buckets):
        if count:
            histogram._buckets[index].inc(count)
