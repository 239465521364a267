"""Generated credentials, tokens, scopes and token forms against the real app: never a 5xx, on every
backend (SQLite, PostgreSQL, PostgreSQL with S3: tests/integration/backends.py)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.http.api import Operation
from dockyard.http.management import ALL_OPERATIONS as OPERATIONS
from tests.integration.backends import every_backend, registry_on_every_backend  # noqa: F401
from tests.integration.conftest import Registry

HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)
SCHEMES = st.sampled_from(["Basic ", "Bearer ", "basic ", "BEARER ", "Digest ", "", "Basic  ", "Bearer x."])
SCOPE_PARTS = st.lists(st.sampled_from(["repository", "registry", ":", "/", ",", "pull", "push", "*", "team",
                                        "app", "catalog", " ", "delete", "5000", "(x)", "%", "\u00e9"]), max_size=20)
# Any text a client can send: NUL and other control characters, long values, non-ASCII.
ANY_TEXT = st.one_of(st.text(max_size=40), st.text(max_size=400), st.integers(60, 400).map(lambda n: "a" * n),
                     st.sampled_from(["a\x00b", "\x00", "é" * 300]))
FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
EXAMPLES = 150


@pytest.fixture
def answers() -> Iterator[list[int]]:
    """The status of every generated request. The examples of an async hypothesis test run only
    through pytest-asyncio's wrapper: this fails the test if they did not all reach the app."""
    seen: list[int] = []
    yield seen
    assert len(seen) >= EXAMPLES, f"only {len(seen)} generated requests reached the app"


def no_server_error(answers: list[int], status: int) -> None:
    answers.append(status)
    assert status < 500, status


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=FIXTURE_OK)
@given(scheme=SCHEMES, value=st.one_of(HEADER_TEXT, st.binary(max_size=120).map(
    lambda b: base64.b64encode(b).decode())), path=st.sampled_from([
        "/v2/", "/v2/_catalog", "/v2/team/app/tags/list", "/v2/team/app/manifests/latest", "/api/v1/projects",
        "/token"]))
async def test_any_authorization_header(registry: Registry, answers: list[int], scheme: str, value: str,
                                       path: str) -> None:
    response = await registry.client.get(path, headers={"Authorization": scheme + value}, auth=None)
    no_server_error(answers, response.status_code)
    if response.status_code == 401 and path.startswith("/v2"):
        assert response.headers["www-authenticate"].startswith("Bearer realm=")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=FIXTURE_OK)
@given(scopes=st.lists(SCOPE_PARTS.map("".join), max_size=4), service=st.one_of(st.none(), HEADER_TEXT),
       offline=st.sampled_from(["true", "false", "", "x"]), account=HEADER_TEXT)
async def test_any_token_query(registry: Registry, answers: list[int], scopes: list[str], service: str | None,
                               offline: str, account: str) -> None:
    params: dict[str, object] = {"scope": scopes, "offline_token": offline, "account": account}
    if service is not None:
        params["service"] = service
    response = await registry.client.get("/token", params=params)
    no_server_error(answers, response.status_code)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=FIXTURE_OK)
@given(form=st.dictionaries(st.sampled_from(["grant_type", "username", "password", "refresh_token", "scope",
                                             "service", "access_type", "client_id"]),
                            st.one_of(HEADER_TEXT, ANY_TEXT, st.sampled_from(["password", "refresh_token", "offline",
                                                                              "admin", "dockyard"])), max_size=8),
       raw=st.one_of(st.none(), st.binary(max_size=200)))
async def test_any_token_form(registry: Registry, answers: list[int], form: dict[str, str],
                              raw: bytes | None) -> None:
    if raw is None:
        response = await registry.client.post("/token", data=form, auth=None)
    else:
        response = await registry.client.post("/token", content=raw, auth=None,
                                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    no_server_error(answers, response.status_code)


KNOWN_NAMES = ("team", "admin", "robot+team+ci", "team/devs", "user:admin")


def _json_value() -> st.SearchStrategy[object]:
    return st.one_of(ANY_TEXT, st.booleans(), st.none(), st.integers(-(2**70), 2**70),
                     st.lists(ANY_TEXT, max_size=3), st.sampled_from(["pull", "push", "admin", "30d", "never"]))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=FIXTURE_OK)
@given(operation=st.sampled_from(OPERATIONS),
       params=st.lists(st.one_of(ANY_TEXT, st.sampled_from(KNOWN_NAMES)), min_size=4, max_size=4),
       body=st.dictionaries(st.sampled_from(sorted({f for op in OPERATIONS for f in op.body})), _json_value(),
                            max_size=4),
       raw=st.one_of(st.none(), st.sampled_from([b'{"name": "\\ud800"}', b'{"password": "\\udfff\\ud800xx"}',
                                                  b'{"name": "a\\u0000b"}', b"{", b"[]"])))
async def test_any_management_request(registry: Registry, answers: list[int], operation: Operation,
                                      params: list[str], body: dict[str, object], raw: bytes | None) -> None:
    """/api/v1 as the admin with any path parameters and body: names too long for their columns,
    NUL characters, lone surrogates, wrong types. Never a 5xx (a 4xx with INVALID_REQUEST or
    NOT_FOUND), on every backend."""
    await registry.client.post("/api/v1/projects", json={"name": "team"})  # 201, then 409: something to find
    path = operation.path
    for value in params:
        path = re.sub(r"\{[a-z]+(:path)?\}", quote(value, safe="") or "x", path, count=1)
    content = raw if raw is not None else json.dumps(body).encode()
    response = await registry.client.request(operation.method, path, content=content,
                                             headers={"Content-Type": "application/json"})
    no_server_error(answers, response.status_code)
