"""Repository name and tag grammar (SPEC.md §1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import NameInvalid, ReferenceInvalid
from dockyard.http.routes import bad_name_in, match
from dockyard.oci.names import is_valid_name, is_valid_tag, validate_name, validate_tag

NAME_255 = "/".join(["a" * 63] * 4)  # 4 * 63 + 3 slashes
NAME_256 = NAME_255 + "b"
assert (len(NAME_255), len(NAME_256)) == (255, 256)


@pytest.mark.parametrize("name", [
    "a",
    "0",
    "library/ubuntu",
    "a/b/c/d/e/f",
    "my.app",
    "my_app",
    "my__app",
    "my-app",
    "my---app",
    "a1.b2_c3__d4-e5",
    "library/blobs",          # endpoint-like segments are ordinary path components
    "a/manifests/b",
    "x/blobs/uploads",
    "tags/list",
    "referrers",
    "a" * 255,
    NAME_255,
])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)
    assert validate_name(name) == name


@pytest.mark.parametrize("name", [
    "",
    "A",
    "Library/ubuntu",
    "a" * 256,
    NAME_256,
    "/a",
    "a/",
    "a//b",
    ".a",
    "a.",
    "_a",
    "a_",
    "-a",
    "a-",
    "a___b",
    "a..b",
    "a._b",
    "a-.b",
    "a b",
    "a:b",
    "a@b",
    "a\n",
    "\na",
    "\uff41",                 # fullwidth a
    "é",
    "a/../b",
    "a/./b",
    "a\\b",
    "a%2fb",
])
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(NameInvalid) as caught:
        validate_name(name)
    assert (caught.value.code, caught.value.status) == ("NAME_INVALID", 400)
    assert "lowercase" in caught.value.message


def test_invalid_name_detail_is_bounded() -> None:
    with pytest.raises(NameInvalid) as caught:
        validate_name("A" * 100_000)
    assert len(caught.value.detail["name"]) == 256


@pytest.mark.parametrize("tag", [
    "latest",
    "v1.2.3",
    "_",
    "0",
    "UPPER_and_lower",
    "1.0-rc.1",
    "sha256-" + "a" * 64 + ".sig",   # cosign's referrers fallback tag
    "a" * 128,
    "_" + "." * 127,
])
def test_valid_tags(tag: str) -> None:
    assert is_valid_tag(tag)
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", [
    "",
    "a" * 129,
    ".hidden",
    "-dash",
    "a:b",
    "a/b",
    "a+b",
    "a b",
    "a\n",
    "é",
    "sha256:" + "a" * 64,
])
def test_invalid_tags(tag: str) -> None:
    assert not is_valid_tag(tag)
    with pytest.raises(ReferenceInvalid) as caught:
        validate_tag(tag)
    assert caught.value.code == "MANIFEST_INVALID"
    assert "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}" in caught.value.message


@given(st.text(max_size=300) | st.from_regex(r"[a-z0-9._/-]{0,300}", fullmatch=True))
def test_validate_name_only_raises_registry_errors(name: str) -> None:
    try:
        assert validate_name(name) == name
    except NameInvalid:  # any other exception fails the test
        pass


@given(st.text(max_size=200))
def test_validate_tag_only_raises_registry_errors(tag: str) -> None:
    try:
        assert validate_tag(tag) == tag
    except ReferenceInvalid:
        pass


@pytest.mark.parametrize("endpoint", ["blobs/uploads/", "manifests/latest", "tags/list", "blobs/sha256:" + "a" * 64,
                                      "blobs/uploads/0123456789abcdef", "referrers/sha256:" + "a" * 64])
def test_names_over_the_limit_match_no_route(endpoint: str) -> None:
    """Every /v2 route refuses a 256-character name before authorization (which would create its
    project on a push); the name is then reported as NAME_INVALID."""
    method = {"blobs/uploads/": "POST", "manifests/latest": "PUT"}.get(endpoint, "GET")
    assert match(method, f"/v2/{NAME_255}/{endpoint}") is not None
    assert match(method, f"/v2/{NAME_256}/{endpoint}") is None
    assert bad_name_in(f"/v2/{NAME_256}/{endpoint}") == NAME_256
