"""Side-by-side benchmarks of dockyard against CNCF distribution; run with ``python -m bench``.

Modules, one concept each: ``settings`` (BENCH_* knobs), ``registries`` (the servers under test),
``proctree`` (process trees and peak RSS), ``testdata`` (the big blob and a small image),
``client`` (small OCI API requests), ``curl`` (big transfers), ``transfers`` (blob throughput),
``loadgen`` (wrk/ab request-rate tests), ``suite`` (the metrics and one pass), ``runner``
(interleaved repetitions), ``report`` (medians and tables), ``machine`` (what it ran on).
"""
