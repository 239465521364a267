"""The ``/v2`` route table: path pattern, methods, handler name and the access each needs.

Names may contain segments that look like endpoints (``a/blobs/b``), so every pattern matches the
name with the name grammar and anchors the endpoint at the end of the path; a name longer than
distribution's limit matches no route (a push creates the project row before any handler runs).
Authorization (a later layer) reads ``access`` from the matched route before any handler runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dockyard.oci.names import MAX_NAME_LENGTH, NAME_PATTERN

Access = Literal["none", "pull", "push", "delete", "catalog"]
MAX_PATH = 1024
_NAME = rf"(?P<name>{NAME_PATTERN})"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: dict[str, tuple[str, Access]]  # method -> (handler name, access needed)
    marker: str  # a literal every matching path contains: a cheap test before the pattern


def _route(name: str, pattern: str, **methods: tuple[str, Access]) -> Route:
    literal = re.search(r"/(_catalog|tags/list|manifests/|blobs/uploads|blobs/|referrers/)", pattern)
    return Route(name, re.compile(pattern, flags=re.ASCII), methods, literal.group(0) if literal else "/v2")


ROUTES: tuple[Route, ...] = (
    _route("base", r"/v2/?", GET=("base", "none"), HEAD=("base", "none")),
    _route("catalog", r"/v2/_catalog", GET=("catalog", "catalog")),
    _route("tags", rf"/v2/{_NAME}/tags/list", GET=("tags", "pull")),
    _route("manifest", rf"/v2/{_NAME}/manifests/(?P<reference>[^/]{{1,256}})",
           GET=("get_manifest", "pull"), HEAD=("get_manifest", "pull"),
           PUT=("put_manifest", "push"), DELETE=("delete_manifest", "delete")),
    _route("uploads", rf"/v2/{_NAME}/blobs/uploads/?", POST=("start_upload", "push")),
    _route("upload", rf"/v2/{_NAME}/blobs/uploads/(?P<upload_id>[A-Za-z0-9_-]{{1,128}})",
           GET=("upload_status", "push"), PATCH=("patch_upload", "push"),
           PUT=("complete_upload", "push"), DELETE=("cancel_upload", "push")),
    _route("blob", rf"/v2/{_NAME}/blobs/(?P<digest>[^/]{{1,256}})",
           GET=("get_blob", "pull"), HEAD=("get_blob", "pull"), DELETE=("delete_blob", "delete")),
    _route("referrers", rf"/v2/{_NAME}/referrers/(?P<digest>[^/]{{1,256}})", GET=("referrers", "pull")),
)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    handler: str
    access: Access
    params: dict[str, str]


_ENDPOINT_WITH_ANY_NAME = re.compile(
    r"/v2/(?P<name>.+?)/(?:manifests/[^/]+|blobs/uploads/?[^/]*|blobs/[^/]+|tags/list|referrers/[^/]+)",
    flags=re.ASCII | re.DOTALL)


def bad_name_in(path: str) -> str | None:
    """The repository name of a path that is an endpoint but for its invalid name, if it is one."""
    found = _ENDPOINT_WITH_ANY_NAME.fullmatch(path[:MAX_PATH * 4])
    return found.group("name") if found else None


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


def match(method: str, path: str) -> Match | None:
    """The first route whose pattern matches the whole path and that serves ``method``.

    Raises ``MethodNotAllowed`` when routes match the path but none serves the method.
    """
    if len(path) > MAX_PATH:
        return None
    allowed: list[str] = []
    for route in ROUTES:
        if route.marker not in path:
            continue
        found = route.pattern.fullmatch(path)
        if found is None or len(found.groupdict().get("name") or "") > MAX_NAME_LENGTH:
            continue  # a name over the limit is invalid: bad_name_in finds it
        if method in route.methods:
            handler, access = route.methods[method]
            params = {k: v for k, v in found.groupdict().items() if v is not None}
            return Match(route, handler, access, params)
        allowed += [m for m in route.methods if m not in allowed]
    if allowed:
        raise MethodNotAllowed(allowed)
    return None
