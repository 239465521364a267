"""Prometheus metrics of the HTTP layer, counted per worker and added to the shared totals in batches.

Across granian's worker processes the totals live in prometheus_client's multiprocess files when
``PROMETHEUS_MULTIPROC_DIR`` is set (``dockyard serve`` sets it). Writing those files costs a lock,
a ``getpid()`` and a memory-mapped write per value, four values a request: a tenth of a manifest
GET. So each request only adds to plain per-series tallies, and the tallies go to the files once a
second, when ``/metrics`` is rendered, and at shutdown. A scrape therefore sees every request of
the worker that answers it and those of the other workers up to a second ago; a worker killed
hard loses at most its last second of counts (never data).

prometheus_client writes its files through memory maps, and the files are sparse (it makes and
grows them with ``ftruncate``): the first write to a page the filesystem has no block for yet
takes one, and on a full filesystem the kernel kills the process with SIGBUS instead. So
``MetricFiles`` allocates this worker's files (``posix_fallocate``) before each flush, up to the
size the library grows them to next, and the flush adds only the new series that fit in what is
allocated: on a full filesystem known series still count and new ones wait, but no page is
written that has no block. ``dockyard serve`` also keeps the directory off the data volume.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from dockyard.http.batches import FlushLater

log = logging.getLogger("dockyard.metrics")
FLUSH_SECONDS = 1.0
MAX_SERIES = 4096  # pending tallies between two flushes, whatever arrives
# The method label: a client may send any token as a method, and a Prometheus child (with its
# values in the multiprocess files) lives as long as the process, so every other one is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))
JOB_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600)  # job runs: a second to a day
JOB_OUTCOMES = ("ok", "failed")  # prometheus_client's buckets: the given ones, then +Inf
SCAN_BUCKETS = (.1, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)  # an image scan: a tenth of a second to an hour
SCAN_OUTCOMES = ("done", "failed", "rematched")
# prometheus_client's files, by the prefix it names them with (then _<pid>.db), and its first size.
_FILES = ("counter", "histogram", "gauge_livesum", "gauge_max")
_FIRST_SIZE = 1 << 16
# An entry: length, key (JSON of the names, labels and help; each label character at most 12
# bytes once escaped) padded to 8, value and timestamp. Names and help take less than this.
_ENTRY_FIXED = 4 + 8 + 16 + 320


@dataclass(slots=True)
class _Tally:
    """What one (method, route, status) series gathered since the last flush."""

    requests: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BOUNDS))
    bytes_in: int = 0
    bytes_out: int = 0


def _entry_bytes(*labels: str) -> int:
    return _ENTRY_FIXED + 12 * sum(len(label) for label in labels)


class MetricFiles:
    """This worker's prometheus_client files, allocated ahead of what is written to them.

    The library opens a file at the size it finds and doubles that capacity (an ``ftruncate`` to
    the new size) whenever an entry would not fit. The first ``reserve`` runs before the library
    opens anything, so the library's capacity is always at least ``ours``, the smallest
    ``first x 2^k`` (``first``: the size before our first allocation, at least the library's own
    64 KiB) that holds what the file uses, and a power-of-two multiple of it. Allocating
    ``2 x ours`` and letting a flush add at most up to that size means the library either does not
    grow the file or grows it to exactly the size it already has: its mapping never covers a hole.
    ``room`` says how many bytes each file may take in this flush. On a filesystem without
    ``fallocate`` support (not ENOSPC) the files are used as the library makes them, with a warning.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.first_size: dict[str, int] = {}
        self.room: dict[str, int] = dict.fromkeys(_FILES, 0)
        self.is_full = False
        self.unprotected = False
        self.reserve()

    def reserve(self) -> None:
        """Allocate each file up to twice our capacity; set ``room`` (0 where that fails)."""
        if self.unprotected:
            self.room = dict.fromkeys(_FILES, 1 << 62)
            return
        self.room = dict.fromkeys(_FILES, 0)
        failure: OSError | None = None
        for prefix in _FILES:
            try:
                self.room[prefix] = self._allocate(prefix)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    log.warning("cannot allocate the metrics files in %s (%s): a full filesystem there "
                                "would kill workers (SIGBUS); keep server.metrics_dir on tmpfs",
                                self.directory, exc.strerror)
                    self.unprotected = True
                    self.reserve()
                    return
                failure = exc
        if failure is not None and not self.is_full:
            log.error("the metrics directory %s is full (%s): new metric series wait for room; free space "
                      "there (server.metrics_dir)", self.directory, failure.strerror)
        elif failure is None and self.is_full:
            log.warning("the metrics directory %s has room again", self.directory)
        self.is_full = failure is not None

    def _allocate(self, prefix: str) -> int:
        path = os.path.join(self.directory, f"{prefix}_{os.getpid()}.db")  # the library's name for it
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = _create(path)
        try:
            size = os.fstat(fd).st_size
            first = self.first_size.setdefault(path, max(size, _FIRST_SIZE))
            used = max(struct.unpack("i", os.pread(fd, 4, 0))[0] if size >= 4 else 0, 8)
            capacity = first
            while capacity < used:
                capacity *= 2
            os.posix_fallocate(fd, 0, 2 * capacity)
            return 2 * capacity - used
        finally:
            os.close(fd)

    def admit(self, costs: dict[str, int]) -> bool:
        """Take ``costs`` (bytes per file) from the room, if all of it fits."""
        if any(cost > self.room[prefix] for prefix, cost in costs.items()):
            return False
        for prefix, cost in costs.items():
            self.room[prefix] -= cost
        return True


def _create(path: str) -> int:
    """The file, allocated at the library's first size before it appears under its name: a file
    that ``/metrics`` finds (any ``*.db``) is never empty, which the library cannot read."""
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, _FIRST_SIZE)
        os.rename(temp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return fd


class Metrics:
    def __init__(self) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.multiprocess = bool(directory)
        # Before any metric exists: the files are then made at the size the room was computed for.
        self.files = MetricFiles(directory) if directory else None
        if self.files is not None and self.files.is_full:
            # The library would make its files itself, sparse, and write to them: SIGBUS.
            raise RuntimeError(f"the metrics directory {directory} is full: this worker cannot start; free "
                               "space there (server.metrics_dir)")
        self._in_files: set[tuple[str, ...]] = set()  # series (and routes) the files hold already
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
        # Rare events, counted as they happen (not tallied): see services/blobs.py.
        self.blobs_missing = Counter("dockyard_blob_missing_total", "Blob reads that found a recorded blob's bytes "
                                     "missing from storage (answered 404, or the download cut)", registry=target)
        self.blob_read_errors = Counter("dockyard_blob_read_errors_total", "Blob reads that failed in storage: the "
                                        "store unavailable or a read error (answered 503, or the download cut)",
                                        registry=target)
        self.blobs_corrupt = Counter("dockyard_blobs_corrupt_total", "Blobs the integrity scrub found corrupt in "
                                     "storage (no longer served until pushed again)", registry=target)
        # Background jobs (jobs/scheduler.py): every series is made by ``declare_jobs`` at start,
        # so a run only adds to values the files already hold.
        self.job_runs = Counter("dockyard_job_runs_total", "Scheduled job runs by outcome",
                                ["job", "outcome"], registry=target)
        self.job_duration = Histogram("dockyard_job_duration_seconds", "How long scheduled job runs took",
                                      ["job"], registry=target, buckets=JOB_BUCKETS)
        self.job_removed = Counter("dockyard_job_items_removed_total", "Items scheduled job runs removed",
                                   ["job"], registry=target)
        self.job_bytes_freed = Counter("dockyard_job_bytes_freed_total", "Bytes scheduled job runs freed in storage",
                                       ["job"], registry=target)
        self.job_last_success = Gauge("dockyard_job_last_success_timestamp_seconds", "When a scheduled run of the "
                                      "job last ended well (Unix time; 0: not since start)", ["job"],
                                      registry=target, multiprocess_mode="max")
        # Image scans (services/scanning.py), each series made by ``declare_scans`` at start.
        self.scans = Counter("dockyard_scans_total", "Image scans by outcome: done, failed, or rematched (a "
                             "stored inventory matched again after a vulnerability database change)",
                             ["outcome"], registry=target)
        self.scan_duration = Histogram("dockyard_scan_duration_seconds", "How long image scans (and re-matches) "
                                       "took, by outcome", ["outcome"], registry=target, buckets=SCAN_BUCKETS)
        self._scans_declared = False
        self._jobs: set[str] = set()
        self._pending: dict[tuple[str, str, int], _Tally] = {}
        self._later = FlushLater(self.flush, FLUSH_SECONDS)

    def declare_jobs(self, names: list[str]) -> None:
        """Make every job series now (at 0), in room the files have: ``record_job`` never adds one."""
        new = [name for name in names if name not in self._jobs]
        if self.files is not None and new:
            self.files.reserve()
            per_job = {"counter": sum(_entry_bytes(n, o) for n in new for o in JOB_OUTCOMES)
                       + 2 * sum(_entry_bytes(n) for n in new),
                       "histogram": (len(JOB_BUCKETS) + 2) * sum(_entry_bytes(n) for n in new),
                       "gauge_max": sum(_entry_bytes(n) for n in new)}
            if not self.files.admit(per_job):
                raise RuntimeError(f"the metrics directory {self.files.directory} is full: this worker cannot "
                                   "start; free space there (server.metrics_dir)")
        for name in new:
            for outcome in JOB_OUTCOMES:
                self.job_runs.labels(name, outcome)
            self.job_duration.labels(name)
            self.job_removed.labels(name)
            self.job_bytes_freed.labels(name)
            self.job_last_success.labels(name)
            self._jobs.add(name)

    def record_job(self, job: str, outcome: str, seconds: float, removed: int, bytes_freed: int,
                   ended_at: float) -> None:
        """Count one scheduled run (of a job ``declare_jobs`` made series for)."""
        if job not in self._jobs or outcome not in JOB_OUTCOMES:
            log.warning("job %s (outcome %s) has no metric series: it is not counted", job, outcome)
            return
        self.job_runs.labels(job, outcome).inc()
        self.job_duration.labels(job).observe(seconds)
        self.job_removed.labels(job).inc(removed)
        self.job_bytes_freed.labels(job).inc(bytes_freed)
        if outcome == "ok":
            self.job_last_success.labels(job).set(ended_at)

    def declare_scans(self) -> None:
        """Make every scan series now (at 0), in room the files have: ``record_scan`` never adds one."""
        if self._scans_declared:
            return
        if self.files is not None:
            self.files.reserve()
            cost = {"counter": sum(_entry_bytes(o) for o in SCAN_OUTCOMES),
                    "histogram": (len(SCAN_BUCKETS) + 2) * sum(_entry_bytes(o) for o in SCAN_OUTCOMES)}
            if not self.files.admit(cost):
                raise RuntimeError(f"the metrics directory {self.files.directory} is full: this worker cannot "
                                   "start; free space there (server.metrics_dir)")
        for outcome in SCAN_OUTCOMES:
            self.scans.labels(outcome)
            self.scan_duration.labels(outcome)
        self._scans_declared = True

    def record_scan(self, outcome: str, seconds: float) -> None:
        """Count one scan ("done", "failed") or re-match ("rematched")."""
        if not self._scans_declared or outcome not in SCAN_OUTCOMES:
            log.warning("scan outcome %s has no metric series: it is not counted", outcome)
            return
        self.scans.labels(outcome).inc()
        self.scan_duration.labels(outcome).observe(seconds)

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
        if self.files is not None:
            self.files.reserve()
        for (method, route, status), tally in pending.items():
            if not self._fits(method, route, str(status)):
                # No room in the files for a new series: it waits (dropped only past MAX_SERIES).
                if len(self._pending) < MAX_SERIES:
                    self._pending[(method, route, status)] = tally
                continue
            self.requests.labels(method, route, str(status)).inc(tally.requests)
            _add_observations(self.latency.labels(method, route), tally)
            self.bytes_in.labels(route).inc(tally.bytes_in)  # at 0 too: the series exists from the first request
            self.bytes_out.labels(route).inc(tally.bytes_out)

    def _fits(self, method: str, route: str, status: str) -> bool:
        """Whether the files have room for what this series adds to them (see ``MetricFiles``)."""
        if self.files is None or (method, route, status) in self._in_files:
            return True
        counter = _entry_bytes(method, route, status)
        if (route,) not in self._in_files:
            counter += 2 * _entry_bytes(route)  # bytes in and out
        histogram = 0 if (method, route) in self._in_files else (len(_BOUNDS) + 1) * _entry_bytes(method, route)
        if not self.files.admit({"counter": counter, "histogram": histogram}):
            return False
        self._in_files.update({(method, route, status), (method, route), (route,)})
        return True

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
