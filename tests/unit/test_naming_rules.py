"""The naming-rule example generator and the quota message, as tables."""

from __future__ import annotations

import re

import pytest

from dockyard.oci.names import is_valid_name, is_valid_tag
from dockyard.policy import naming, quotas


@pytest.mark.parametrize(("pattern", "accept", "expected"), [
    (r"^(api|web|worker)(/[a-z0-9-]+)?$", None, "api"),
    (r"^v\d+\.\d+\.\d+(-(dev|test|prod))?$", is_valid_tag, "v0.0.0"),
    (r"[a-z]+(-[a-z]+)*", None, "a"),
    (r"[a-z]*", lambda s: is_valid_name(f"p/{s}"), "a"),  # the empty name is no name: a repeat is taken
    (r"team-[0-9]{2,4}", None, "team-00"),
    (r"(?:release|hotfix)-\w+", is_valid_tag, "release-a"),
    (r"[^A-Z/]+", None, "a"),
    (r"(x)(?(1)y|z)", None, "xy"),
    (r"(ab)\1", None, "abab"),
    (r"(ab){2}c", None, "ababc"),
    (r"(?i)API", None, "API"),
    (r"(?:[A-Z]+|[a-z]+)", lambda s: is_valid_name(f"p/{s}"), "a"),  # the last branch when the first fails
])
def test_the_example_matches_the_rule_and_is_a_valid_name(pattern: str, accept: object, expected: str) -> None:
    made = naming.example(pattern) if accept is None else naming.example(pattern, accept)  # type: ignore[arg-type]
    assert made == expected
    assert re.fullmatch(pattern, made)


@pytest.mark.parametrize("pattern", [r"(?=x)y", r"[^\x00-\U0010ffff]", r"(", r"a{2}(?<=b)",
                                     r"((a{100}){100}){100}"])  # longer than any name: not built
def test_no_example_when_none_can_be_made(pattern: str) -> None:
    assert naming.example(pattern) is None


def test_matching_is_of_the_whole_name() -> None:
    assert naming.matches("api", "api")
    assert not naming.matches("api", "api-v2")  # no implicit prefix match: re.fullmatch
    assert not naming.matches("api|web", "webapp")


@pytest.mark.parametrize(("used", "cost", "quota", "fits"), [
    (0, 10, None, True), (90, 10, 100, True), (91, 10, 100, False), (500, 0, 100, True), (0, 101, 100, False)])
def test_what_fits(used: int, cost: int, quota: int | None, fits: bool) -> None:
    assert quotas.fits(used, cost, quota) is fits


def test_the_quota_message_gives_usage_and_limit() -> None:
    mib = 1024 * 1024
    assert quotas.refusal("team-a", 500 * mib, int(12.3 * mib), 500 * mib) == (
        "project team-a would use 512.3 MiB of its 500 MiB quota (this push adds 12.3 MiB to 500 MiB): delete "
        "images, or ask an admin for more with `dockyard quota set`")
    # Over by less than the rounding shows: exact bytes.
    assert quotas.refusal("p", 500 * mib, 1, 500 * mib).startswith(
        f"project p would use {500 * mib + 1} bytes of its {500 * mib}-byte quota")
