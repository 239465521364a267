"""The ``/v2`` route table: names with endpoint-like segments, 405 detection, bad names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.http.routes import MAX_PATH, MethodNotAllowed, bad_name_in, match

DIGEST = "sha256:" + "a" * 64
NAME_255 = "/".join(["a" * 63] * 4)


@pytest.mark.parametrize(("method", "path", "handler", "access", "params"), [
    ("GET", "/v2/", "base", "none", {}),
    ("GET", "/v2", "base", "none", {}),
    ("HEAD", "/v2/", "base", "none", {}),
    ("GET", "/v2/_catalog", "catalog", "catalog", {}),
    ("GET", "/v2/library/ubuntu/tags/list", "tags", "pull", {"name": "library/ubuntu"}),
    ("GET", "/v2/a/manifests/latest", "get_manifest", "pull", {"name": "a", "reference": "latest"}),
    ("HEAD", f"/v2/a/manifests/{DIGEST}", "get_manifest", "pull", {"name": "a", "reference": DIGEST}),
    ("PUT", "/v2/a/manifests/v1", "put_manifest", "push", {"name": "a", "reference": "v1"}),
    ("DELETE", "/v2/a/manifests/v1", "delete_manifest", "delete", {"name": "a", "reference": "v1"}),
    ("POST", "/v2/a/blobs/uploads/", "start_upload", "push", {"name": "a"}),
    ("POST", "/v2/a/blobs/uploads", "start_upload", "push", {"name": "a"}),
    ("GET", "/v2/a/blobs/uploads/abc-123_X", "upload_status", "push",
     {"name": "a", "upload_id": "abc-123_X"}),
    ("PATCH", "/v2/a/blobs/uploads/u1", "patch_upload", "push", {"name": "a", "upload_id": "u1"}),
    ("PUT", "/v2/a/blobs/uploads/u1", "complete_upload", "push", {"name": "a", "upload_id": "u1"}),
    ("DELETE", "/v2/a/blobs/uploads/u1", "cancel_upload", "push", {"name": "a", "upload_id": "u1"}),
    ("GET", f"/v2/a/blobs/{DIGEST}", "get_blob", "pull", {"name": "a", "digest": DIGEST}),
    ("HEAD", f"/v2/a/blobs/{DIGEST}", "get_blob", "pull", {"name": "a", "digest": DIGEST}),
    ("DELETE", f"/v2/a/blobs/{DIGEST}", "delete_blob", "delete", {"name": "a", "digest": DIGEST}),
    ("GET", f"/v2/a/referrers/{DIGEST}", "referrers", "pull", {"name": "a", "digest": DIGEST}),
    # names whose segments look like endpoints: the endpoint is anchored at the end of the path
    ("GET", "/v2/library/blobs/manifests/latest", "get_manifest", "pull",
     {"name": "library/blobs", "reference": "latest"}),
    ("GET", "/v2/a/manifests/b/manifests/c", "get_manifest", "pull",
     {"name": "a/manifests/b", "reference": "c"}),
    ("PUT", "/v2/x/manifests/y/manifests/latest", "put_manifest", "push",
     {"name": "x/manifests/y", "reference": "latest"}),
    ("GET", f"/v2/a/blobs/b/blobs/{DIGEST}", "get_blob", "pull", {"name": "a/blobs/b", "digest": DIGEST}),
    ("GET", f"/v2/a/manifests/b/blobs/{DIGEST}", "get_blob", "pull",
     {"name": "a/manifests/b", "digest": DIGEST}),
    ("GET", "/v2/a/blobs/b/manifests/latest", "get_manifest", "pull",
     {"name": "a/blobs/b", "reference": "latest"}),
    ("POST", "/v2/a/blobs/b/blobs/uploads/", "start_upload", "push", {"name": "a/blobs/b"}),
    ("PATCH", "/v2/a/blobs/uploads/b/blobs/uploads/u1", "patch_upload", "push",
     {"name": "a/blobs/uploads/b", "upload_id": "u1"}),
    ("GET", "/v2/tags/list/tags/list", "tags", "pull", {"name": "tags/list"}),
    ("GET", "/v2/a/tags/list/manifests/list", "get_manifest", "pull",
     {"name": "a/tags/list", "reference": "list"}),
    ("GET", f"/v2/referrers/referrers/{DIGEST}", "referrers", "pull",
     {"name": "referrers", "digest": DIGEST}),
    ("GET", "/v2/_catalog/manifests/latest", None, None, None),  # "_catalog" is no valid name
    ("GET", f"/v2/{NAME_255}/manifests/latest", "get_manifest", "pull",
     {"name": NAME_255, "reference": "latest"}),
])
def test_routes(method: str, path: str, handler: str | None, access: str | None,
                params: dict[str, str] | None) -> None:
    found = match(method, path)
    if handler is None:
        assert found is None
        return
    assert found is not None
    assert (found.handler, found.access, found.params) == (handler, access, params)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "/v2/", ["GET", "HEAD"]),
    ("DELETE", "/v2/_catalog", ["GET"]),
    ("POST", "/v2/a/manifests/latest", ["GET", "HEAD", "PUT", "DELETE"]),
    ("PATCH", "/v2/a/manifests/latest", ["GET", "HEAD", "PUT", "DELETE"]),
    ("PUT", f"/v2/a/blobs/{DIGEST}", ["GET", "HEAD", "DELETE"]),
    ("DELETE", "/v2/a/tags/list", ["GET"]),
    ("PUT", "/v2/a/blobs/uploads/", ["POST"]),
    ("POST", "/v2/a/blobs/uploads/u1", ["GET", "PATCH", "PUT", "DELETE"]),
    ("HEAD", "/v2/a/blobs/uploads/u1", ["GET", "PATCH", "PUT", "DELETE"]),
    ("POST", f"/v2/a/referrers/{DIGEST}", ["GET"]),
    ("get", "/v2/", ["GET", "HEAD"]),  # methods are case-sensitive (RFC 9110 §9.1)
])
def test_method_not_allowed_lists_what_is(method: str, path: str, allowed: list[str]) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        match(method, path)
    assert sorted(caught.value.allowed) == sorted(allowed)


def test_without_its_slash_the_uploads_endpoint_is_also_a_blob_path() -> None:
    # /v2/a/blobs/uploads reads as the blob "uploads" of a: POST starts an upload, GET asks for a
    # blob (and gets DIGEST_INVALID from the handler), so neither is a 405.
    assert match("POST", "/v2/a/blobs/uploads") is not None
    found = match("GET", "/v2/a/blobs/uploads")
    assert found is not None
    assert (found.handler, found.params) == ("get_blob", {"name": "a", "digest": "uploads"})


@pytest.mark.parametrize("path", [
    "/",
    "/v1/",
    "/v2/A/manifests/latest",
    "/v2/a//manifests/latest",
    "/v2/a/manifests/",
    "/v2/a/manifests/x/",
    "/v2/a/manifests/" + "x" * 257,
    "/v2/a/blobs/",
    "/v2/a/tags",
    "/v2/a/tags/list/",
    "/v2/a/unknown/thing",
    "/v2/a/blobs/uploads/bad.id!",
    "/v2/manifests/latest",
    "/v2/" + "a" * MAX_PATH + "/tags/list",
    "/v2/a\n/tags/list",
])
def test_paths_that_match_no_route(path: str) -> None:
    assert match("GET", path) is None
    assert match("PUT", path) is None


@pytest.mark.parametrize(("path", "name"), [
    ("/v2/Library/Ubuntu/manifests/latest", "Library/Ubuntu"),
    ("/v2/a..b/blobs/uploads/", "a..b"),
    (f"/v2/-a/blobs/{DIGEST}", "-a"),
    ("/v2/UPPER/tags/list", "UPPER"),
    ("/v2/A/manifests/b/manifests/c", "A/manifests/b"),
    (f"/v2/a b/referrers/{DIGEST}", "a b"),
    ("/v2/a/unknown", None),
    ("/v2/_catalog", None),
    ("/v2/", None),
    ("/v2/A", None),
])
def test_bad_name_in(path: str, name: str | None) -> None:
    assert match("GET", path) is None or name is None
    assert bad_name_in(path) == name


ENDPOINT_LIKE = r"/v2/[a-z0-9/._-]{0,40}/(manifests|blobs|blobs/uploads|tags|referrers)/[a-z0-9:/]{0,20}"


@given(st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]),
       st.text(max_size=80).map(lambda tail: "/v2/" + tail)
       | st.from_regex(ENDPOINT_LIKE, fullmatch=True))
def test_match_only_raises_method_not_allowed(method: str, path: str) -> None:
    try:
        found = match(method, path)
    except MethodNotAllowed as exc:
        allowed = exc.allowed
        assert allowed
        assert method not in allowed
        return
    if found is not None:
        assert method in found.route.methods
        assert found.route.pattern.fullmatch(path)
