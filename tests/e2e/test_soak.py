"""Memory stays flat under long mixed load (DESIGN.md, invariant 6; issue 11, item 6).

32 clients (bench/soak.py) push, pull, list tags, page the catalog and delete, over many distinct
repositories and tags, against a real ``dockyard serve`` with two workers (the default on two
cores), while the resident memory of the server's whole process tree is sampled every two
seconds. Once the warm-up is over, every cache has filled to its bound, and the tree's RSS may
then grow by at most 5% to the end; no request may answer a 5xx, or anything else the
distribution spec does not allow at that point.

In CI the soak lasts 2 minutes with a 35-second warm-up, and the byte budgets of the caches that
fill with distinct content (manifests, verified tokens) are scaled down with it so they fill
within the warm-up too. ``make stress`` (``DOCKYARD_STRESS=1``) runs it for 30 minutes with a
5-minute warm-up and every setting at its default. Passwords are checked with argon2 at its
default cost (7 MiB a check), as in production: a burst of checks was what made workers grow.

The curve (seconds, tree RSS, anonymous RSS, processes, requests) is written to
``soak-curve.tsv`` in the test's temporary directory (or to ``DOCKYARD_TEST_SOAK_CURVE``), and
printed when the test fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench.soak import SoakPlan, SoakResult, run_soak

from tests.support.server import ADMIN_AUTH, ServerProcess

STRESS = os.environ.get("DOCKYARD_STRESS") == "1"
SECONDS = float(os.environ.get("DOCKYARD_TEST_SOAK_SECONDS", "1800" if STRESS else "120"))
WARMUP = 300.0 if SECONDS >= 1800 else round(SECONDS * 0.3)
WINDOW = 100.0 if SECONDS >= 1800 else round(SECONDS * 0.125)  # averaged at each end of the curve
GROWTH_LIMIT = 0.05
# What a short soak fills within its warm-up; a long one runs with every default.
SCALED_CACHES = {
    "DOCKYARD_REGISTRY__MANIFEST_CACHE_BYTES": str(256 * 1024),
    "DOCKYARD_AUTH__TOKEN_CACHE_BYTES": str(128 * 1024),
}
PRODUCTION_ARGON2 = {"DOCKYARD_AUTH__ARGON2_TIME_COST": "5", "DOCKYARD_AUTH__ARGON2_MEMORY_KIB": "7168"}

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _report(result: SoakResult, curve_path: Path) -> str:
    return (f"{result.summary(WINDOW)}\nfirst 5xx and unexpected answers:\n"
            + "\n".join(f"  {line}" for line in result.server_errors + result.protocol_errors)
            + f"\ncurve ({curve_path}):\n{result.curve()}")


def test_memory_stays_flat_under_a_soak_of_mixed_clients(tmp_path: Path) -> None:
    """After the warm-up the server tree's RSS grows by at most 5% to the end, with no 5xx."""
    env = {**PRODUCTION_ARGON2, **({} if SECONDS >= 1800 else SCALED_CACHES)}
    plan = SoakPlan(seconds=SECONDS, warmup_seconds=WARMUP)
    curve_path = Path(os.environ.get("DOCKYARD_TEST_SOAK_CURVE", str(tmp_path / "soak-curve.tsv")))
    with ServerProcess(tmp_path / "data", workers=2, env=env) as server:
        assert server.proc is not None
        result = run_soak(server.url, server.proc.pid, ADMIN_AUTH, plan)
        alive = server.proc.poll() is None
    curve_path.write_text(result.curve())
    report = _report(result, curve_path)
    print(report)

    assert alive, f"the server exited during the soak:\n{server.log()[-3000:]}"
    assert result.samples[-1].processes == 3, f"a worker is missing at the end (supervisor + 2):\n{report}"
    # The soak did real work: every kind of operation, hundreds of pushes.
    assert result.operations["push"] >= 200, report
    assert all(result.operations[name] > 0 for name in ("pull", "tags", "catalog", "delete", "odd")), report
    assert result.server_error_count == 0, f"5xx answers during the soak:\n{report}"
    assert result.protocol_errors == [], f"unexpected answers during the soak:\n{report}"
    after_warmup, end = result.growth_after_warmup(WINDOW)
    assert end <= after_warmup * (1 + GROWTH_LIMIT), (
        f"the server tree's RSS grew {100 * (end / after_warmup - 1):.1f}% after the {WARMUP:.0f}-second "
        f"warm-up ({after_warmup / 1024:.1f} -> {end / 1024:.1f} MiB); the limit is {100 * GROWTH_LIMIT:.0f}%\n"
        f"{report}")
