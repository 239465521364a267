"""Request metrics are tallied per worker and flushed in batches; the totals must be exactly what
counting request by request gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dockyard.http.metrics import LATENCY_BUCKETS, Metrics

requests = st.lists(
    st.tuples(st.sampled_from(["GET", "HEAD", "PUT"]), st.sampled_from(["manifest", "blob", "upload"]),
              st.sampled_from([200, 201, 404]),
              st.floats(min_value=0, max_value=100, allow_nan=False) | st.sampled_from(LATENCY_BUCKETS),
              st.integers(0, 10**9), st.integers(0, 10**9)),
    max_size=40)


def _one_by_one(seen: list[tuple[str, str, int, float, int, int]]) -> bytes:
    registry = CollectorRegistry()
    counted = Counter("dockyard_http_requests_total", "HTTP requests by route and status",
                      ["method", "route", "status"], registry=registry)
    latency = Histogram("dockyard_http_request_duration_seconds", "Request latency by route",
                        ["method", "route"], registry=registry, buckets=LATENCY_BUCKETS)
    received = Counter("dockyard_http_request_bytes_total", "Request body bytes received", ["route"],
                       registry=registry)
    sent = Counter("dockyard_http_response_bytes_total", "Response body bytes sent", ["route"], registry=registry)
    for method, route, status, elapsed, bytes_in, bytes_out in seen:
        counted.labels(method, route, str(status)).inc()
        latency.labels(method, route).observe(elapsed)
        received.labels(route).inc(bytes_in)
        sent.labels(route).inc(bytes_out)
    return generate_latest(registry)


def _samples(exposition: bytes) -> dict[str, float]:
    """Every sample line but the _created timestamps, which differ between two registries."""
    samples = {}
    for line in exposition.decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name and not line.startswith("#") and "_created" not in name:
            samples[name] = float(value)
    return samples


@settings(max_examples=60)
@given(requests, st.integers(0, 40))
def test_batched_totals_equal_request_by_request_counting(seen: list[tuple[str, str, int, float, int, int]],
                                                         flush_after: int) -> None:
    metrics = Metrics()
    assert not metrics.multiprocess
    for index, request in enumerate(seen):
        metrics.record(*request)
        if index == flush_after:
            metrics.flush()  # a flush in the middle changes nothing either
    rendered = _samples(metrics.render())
    expected = _samples(_one_by_one(seen))
    not_tallied = ("dockyard_uploads_in_flight", "dockyard_blob_missing", "dockyard_blob_read_errors",
                   "dockyard_blobs_corrupt", "dockyard_job_")
    for name in [name for name in rendered if name.startswith(not_tallied)]:
        del rendered[name]
    assert rendered.keys() == expected.keys()
    for name, value in expected.items():
        assert rendered[name] == value or abs(rendered[name] - value) <= 1e-9 * abs(value), name


def test_an_observation_on_a_bound_lands_in_that_bucket() -> None:
    metrics = Metrics()
    metrics.record("GET", "manifest", 200, 0.005, 0, 10)
    text = metrics.render().decode()
    assert 'dockyard_http_request_duration_seconds_bucket{le="0.0025",method="GET",route="manifest"} 0.0' in text
    assert 'dockyard_http_request_duration_seconds_bucket{le="0.005",method="GET",route="manifest"} 1.0' in text
    assert 'dockyard_http_request_duration_seconds_count{method="GET",route="manifest"} 1.0' in text


def test_methods_clients_make_up_share_one_series() -> None:
    """A method is any token a client sends; each label set lives as long as the worker, so
    made-up methods are counted under "other" and never add series (memory) of their own."""
    metrics = Metrics()
    for n in range(500):
        metrics.record(f"X{n}", "v2_unmatched", 405, 0.001, 0, 0)
    metrics.record("DELETE", "manifest", 202, 0.001, 0, 0)
    text = metrics.render().decode()
    assert 'dockyard_http_requests_total{method="other",route="v2_unmatched",status="405"} 500.0' in text
    assert 'dockyard_http_requests_total{method="DELETE",route="manifest",status="202"} 1.0' in text
    assert "X1" not in text
