"""Generated credentials, tokens, scopes and token forms against the real app: never a 5xx, on every
backend (SQLite, PostgreSQL, PostgreSQL with S3: tests/integration/backends.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.backends import every_backend, registry_on_every_backend  # noqa: F401
from tests.integration.conftest import Registry

HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)
SCHEMES = st.sampled_from(["Basic ", "Bearer ", "basic ", "BEARER ", "Digest ", "", "Basic  ", "Bearer x."])
SCOPE_PARTS = st.lists(st.sampled_from(["repository", "registry", ":", "/", ",", "pull", "push", "*", "team",
                                        "app", "catalog", " ", "delete", "5000", "(x)", "%", "\u00e9"]), max_size=20)
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
                            st.one_of(HEADER_TEXT, st.sampled_from(["password", "refresh_token", "offline",
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
