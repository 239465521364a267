"""The scope grammar (SPEC.md §5.3) and Basic credential parsing, with property tests."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.auth.scopes import MAX_SCOPES, Grant, ScopeInvalid, grants_from_claim, parse_scope, parse_scopes
from dockyard.services.access import parse_basic


def test_a_scope_names_type_resource_and_actions() -> None:
    assert parse_scope("repository:team/app:pull,push") == Grant("repository", "team/app", ("pull", "push"))
    assert parse_scope("registry:catalog:*") == Grant("registry", "catalog", ("*",))


def test_a_name_may_hold_a_port() -> None:
    # The type ends at the first colon and the actions start after the last one.
    assert parse_scope("repository:localhost:5000/team/app:pull") == Grant(
        "repository", "localhost:5000/team/app", ("pull",))


def test_a_resource_class_is_dropped() -> None:
    assert parse_scope("repository(plugin):team/app:pull").type == "repository"


def test_empty_and_repeated_actions() -> None:
    assert parse_scope("repository:team/app:").actions == ()
    assert parse_scope("repository:team/app:pull,,pull,push").actions == ("pull", "push")


@pytest.mark.parametrize("text", ["", "repository", "repository:team/app", ":team/app:pull", "repository::pull",
                                  "Repository:a:pull", "repository:a b:pull", "repository:a:PULL",
                                  "repository:a:pull;rm", "x" * 2000])
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(ScopeInvalid):
        parse_scope(text)


def test_scopes_merge_by_resource_across_parameters() -> None:
    merged = parse_scopes(["repository:a:pull repository:b:push", "repository:a:push"])
    assert merged == [Grant("repository", "a", ("pull", "push")), Grant("repository", "b", ("push",))]


def test_too_many_scopes_are_refused() -> None:
    with pytest.raises(ScopeInvalid):
        parse_scopes([" ".join(f"repository:r{i}:pull" for i in range(MAX_SCOPES + 1))])


def test_access_claims_must_be_well_formed() -> None:
    assert grants_from_claim([{"type": "repository", "name": "a", "actions": ["pull"]}]) == (
        Grant("repository", "a", ("pull",)),)
    for bad in ({}, [1], [{"type": "repository", "name": "a", "actions": "pull"}], [{"name": "a"}]):
        with pytest.raises(ScopeInvalid):
            grants_from_claim(bad)


ACTION = re.compile(r"[a-z*]{1,16}")


def assert_well_formed(grants: list[Grant], text: str) -> None:
    """What any accepted scope text must give: grants that name a resource in the text, each once,
    with valid actions, and that read back as themselves."""
    assert len({(g.type, g.name) for g in grants}) == len(grants)
    for grant in grants:
        assert str(grant).count(":") >= 2
        assert all(action for action in grant.actions)
        assert all(ACTION.fullmatch(action) for action in grant.actions), grant
        assert len(set(grant.actions)) == len(grant.actions)
        assert grant.type
        assert grant.name
        assert f"{grant.name}:" in text
        assert parse_scope(str(grant)) == grant


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_scope_invalid(text: str) -> None:
    try:
        grants = parse_scopes([text])
    except ScopeInvalid:
        return
    assert_well_formed(grants, text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["repository", "registry", ":", "/", ",", "pull", "push", "*", "a", "5000", " ",
                                 "(x)", "catalog", "delete"]), max_size=30))
def test_scope_shaped_text_parses_or_is_scope_invalid(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        grants = parse_scopes([text])
    except ScopeInvalid:
        return
    assert_well_formed(grants, text)


NAMES = st.from_regex(r"[a-z0-9]+(?:[._/-][a-z0-9]+){0,3}(?::[0-9]{1,5}/[a-z0-9]+)?", fullmatch=True)
ACTIONS = st.lists(st.sampled_from(["pull", "push", "delete", "*"]), max_size=4)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["repository", "registry"]), NAMES, ACTIONS), min_size=1,
                max_size=MAX_SCOPES))
def test_well_formed_scopes_are_all_parsed_and_merged(scopes: list[tuple[str, str, list[str]]]) -> None:
    """The other direction: every scope a client may send is accepted, none is lost, and repeated
    resources merge their actions in the order first seen."""
    texts = [f"{type_}:{name}:{','.join(actions)}" for type_, name, actions in scopes]
    expected: dict[tuple[str, str], list[str]] = {}
    for type_, name, actions in scopes:
        merged = expected.setdefault((type_, name), [])
        merged.extend(a for a in actions if a not in merged)
    want = [Grant(t, n, tuple(a)) for (t, n), a in expected.items()]
    assert parse_scopes(texts) == want
    assert parse_scopes([" ".join(texts)]) == want


def test_basic_credentials() -> None:
    encoded = base64.b64encode(b"alice:pa:ss").decode()
    assert parse_basic(encoded) == ("alice", "pa:ss")
    for bad in ("!!!", base64.b64encode(b"no-colon").decode(), base64.b64encode(b":nouser").decode(),
                base64.b64encode(b"\xff\xfe:x").decode(), ""):
        assert parse_basic(bad) is None


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())))
def test_any_basic_value_parses_or_is_none(value: str) -> None:
    parsed = parse_basic(value)
    if parsed is not None:
        assert parsed[0]
        user, password = parsed
        # What was parsed is exactly what was sent: user, the first colon, the password.
        assert base64.b64decode(value.strip(), validate=True).decode() == f"{user}:{password}"
        assert ":" not in user


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=100).filter(lambda u: ":" not in u), st.text(max_size=100))
def test_any_user_and_password_round_trip(user: str, password: str) -> None:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert parse_basic(encoded) == (user, password)
