"""Generated values for the policy endpoints (tests/integration/test_auth_fuzz.py walks every
operation with generic values; these are the ones policies are made of: counts at and past their
limits, regular expressions, cron schedules, sizes, wrong types). Never a 5xx, on SQLite and
PostgreSQL, and what was accepted reads back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.http.api_policies import OPERATIONS
from tests.integration.conftest import Registry

EXAMPLES = 150
NUMBERS = st.one_of(st.integers(-3, 40), st.integers(-(2**70), 2**70), st.sampled_from([36_500, 36_501, 1_000_000,
                                                                                      1_000_001, 2**31, 2**62]),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans())
TEXTS = st.one_of(st.text(max_size=30), st.sampled_from([
    "*", "api/*", "v*", "^v\\d+$", "(", "a{4294967296}", "(?P<x>a)(?P=y)", "\\N{foo}", "x" * 513, "a\x00b",
    "0 3 * * *", "@daily", "61 3 * * *", "* * * * * * *", "10GiB", "500MiB", "none", "9" * 80, "1e9", "-1",
    "99999PiB", "1.5KiB", "\ud800"]))
VALUES = st.one_of(NUMBERS, TEXTS, st.none(), st.lists(TEXTS, max_size=2), st.dictionaries(TEXTS, TEXTS, max_size=1))
FIELDS = sorted({name for op in OPERATIONS for name in op.body})


@pytest.fixture
def answers() -> Iterator[list[int]]:
    seen: list[int] = []
    yield seen
    assert len(seen) >= EXAMPLES, f"only {len(seen)} generated requests reached the app"


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(operation=st.sampled_from([op for op in OPERATIONS if op.body]),
       body=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5))
async def test_any_policy_value(registry: Registry, answers: list[int], operation: object,
                                body: dict[str, object]) -> None:
    await registry.client.post("/api/v1/projects", json={"name": "team"})
    path = operation.path.replace("{project}", "team")  # type: ignore[attr-defined]
    content = json.dumps(body).encode("utf-8", "surrogatepass")
    response = await registry.client.request(operation.method, path, content=content,  # type: ignore[attr-defined]
                                             headers={"Content-Type": "application/json"})
    answers.append(response.status_code)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["errors"][0]["code"] in ("INVALID_REQUEST", "CONFLICT"), response.text
    policy = await registry.client.get("/api/v1/projects/team/policies")
    assert policy.status_code == 200, policy.text
    if response.status_code == 200 and path.endswith("/retention"):
        assert response.json() in [{k: v for k, v in p.items() if k not in ("updated_at", "last_run_at")}
                                   for p in policy.json()["retention"]]
    if response.status_code == 200 and path.endswith("/quota"):
        assert policy.json()["quota"] == response.json()["quota"]
