"""``/api/v1``: the management API, described by the OpenAPI document it serves.

One table lists every operation (method, path, handler, summary, body fields); the Starlette
routes and ``/api/v1/openapi.json`` are both built from it, so they cannot drift apart. Handlers
identify the caller like ``/v2`` does (Basic credentials, or a bearer token, which must carry the
``management:api:*`` scope: a registry token is refused here) and call the same
``AccountsService`` methods the CLI calls: authorization happens there, once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dockyard import events
from dockyard.auth.authorize import MANAGEMENT, is_management
from dockyard.auth.principals import Principal
from dockyard.errors import NameUnknown, RegistryError, RequestInvalid, Unauthorized
from dockyard.http.auth import Guard
from dockyard.http.errors import render_error, small_body
from dockyard.services.accounts import AccountsService, parse_expiry, parse_time

MAX_BODY_BYTES = 64 * 1024
Handler = Callable[[Request, Principal, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    name: str
    summary: str
    # field -> JSON type: "string", "boolean", "integer", "array" (of strings), or a union such as
    # "string|integer|null". Any field may be null (left out); "null" in a union only documents it.
    body: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    status: int = 200
    # The path parameter naming a repository the caller must be allowed to pull, checked before the
    # handler runs; a caller who may not is answered 404 NAME_UNKNOWN, whether it exists or not.
    pull: str | None = None


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/v1/users", "list_users", "List users (system admin)."),
    Operation("POST", "/api/v1/users", "add_user", "Create a user (system admin).",
              {"name": "string", "password": "string", "admin": "boolean"}, ("name", "password"), status=201),
    Operation("PATCH", "/api/v1/users/{user}", "update_user",
              "Change a user's password (the user, with current_password, or a system admin), disable or "
              "enable it, make it admin.",
              {"password": "string", "current_password": "string", "disabled": "boolean", "admin": "boolean"}),
    Operation("DELETE", "/api/v1/users/{user}", "delete_user", "Delete a user (system admin).", status=204),
    Operation("GET", "/api/v1/projects", "list_projects", "List the projects the caller can see."),
    Operation("POST", "/api/v1/projects", "add_project", "Create a project (system admin).",
              {"name": "string", "public": "boolean"}, ("name",), status=201),
    Operation("GET", "/api/v1/projects/{project}", "get_project", "Show a project."),
    Operation("PATCH", "/api/v1/projects/{project}", "update_project", "Make a project public or private (admin role).",
              {"public": "boolean"}, ("public",)),
    Operation("DELETE", "/api/v1/projects/{project}", "delete_project",
              "Delete a project without repositories (system admin); 409 while it has any.",
              status=204),
    Operation("GET", "/api/v1/projects/{project}/teams", "list_teams", "List a project's teams and their members."),
    Operation("POST", "/api/v1/projects/{project}/teams", "add_team", "Create a team in a project (admin role).",
              {"name": "string"}, ("name",), status=201),
    Operation("DELETE", "/api/v1/projects/{project}/teams/{team}", "delete_team", "Delete a team.", status=204),
    Operation("PUT", "/api/v1/projects/{project}/teams/{team}/members/{user}", "add_team_member",
              "Add a user to a team.", status=204),
    Operation("DELETE", "/api/v1/projects/{project}/teams/{team}/members/{user}", "remove_team_member",
              "Remove a user from a team.", status=204),
    Operation("GET", "/api/v1/projects/{project}/members", "list_members", "List who holds which role."),
    Operation("PUT", "/api/v1/projects/{project}/members/{member:path}", "set_member",
              "Grant a role to a user or team (user:NAME, team:NAME, PROJECT/TEAM or a bare name).",
              {"role": "string"}, ("role",)),
    Operation("DELETE", "/api/v1/projects/{project}/members/{member:path}", "remove_member", "Take a role away.",
              status=204),
    Operation("GET", "/api/v1/projects/{project}/robots", "list_robots", "List a project's robot accounts."),
    Operation("POST", "/api/v1/projects/{project}/robots", "add_robot",
              "Create a robot account (maintainer role); the secret is in this answer only.",
              {"name": "string", "permissions": "array", "repositories": "array", "expires": "string"},
              ("name", "permissions", "repositories"), status=201),
    Operation("GET", "/api/v1/robots", "list_system_robots", "List system-wide robot accounts (system admin)."),
    Operation("POST", "/api/v1/robots", "add_system_robot", "Create a system-wide robot account (system admin).",
              {"name": "string", "permissions": "array", "repositories": "array", "expires": "string"},
              ("name", "permissions", "repositories"), status=201),
    Operation("POST", "/api/v1/robots/{robot}/rotate", "rotate_robot",
              "Replace a robot's secret; the new one is in this answer only."),
    Operation("POST", "/api/v1/robots/{robot}/revoke", "revoke_robot", "Revoke a robot account.", status=204),
    Operation("DELETE", "/api/v1/robots/{robot}", "delete_robot", "Delete a robot account.", status=204),
    Operation("GET", "/api/v1/audit", "audit", "Search the audit log, newest first.",
              query=("project", "repository", "user", "action", "since", "until", "before", "limit")),
    Operation("POST", "/api/v1/keys/rotate", "rotate_key", "Rotate the token signing key (system admin)."),
)


class ApiGroup(Protocol):
    """More operations, from another module: ``operations`` and a ``_<name>`` handler for each."""

    operations: tuple[Operation, ...]


class ManagementApi:
    def __init__(self, guard: Guard, accounts: AccountsService, groups: Sequence[ApiGroup] = ()) -> None:
        self.guard = guard
        self.accounts = accounts
        self.groups: list[tuple[tuple[Operation, ...], object]] = [(OPERATIONS, self)]
        self.groups += [(group.operations, group) for group in groups]

    @property
    def operations(self) -> list[Operation]:
        return [op for ops, _ in self.groups for op in ops]

    def routes(self) -> list[Route]:
        routes = [Route("/api/v1/openapi.json", self.openapi, methods=["GET"])]
        for ops, owner in self.groups:
            for op in ops:
                routes.append(Route(op.path, self._endpoint(op, getattr(owner, f"_{op.name}")),
                                    methods=[op.method], name=op.name))
        return routes

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(openapi_document(self.operations))

    def _endpoint(self, op: Operation, handler: Handler) -> Callable[[Request], Awaitable[Response]]:

        async def endpoint(request: Request) -> Response:
            try:
                caller = await self.guard.identify(request, [MANAGEMENT])
                request.scope["dockyard.user"] = caller.actor  # the access log's caller, as on /v2
                if not caller.credentials or caller.principal.is_anonymous:
                    raise Unauthorized(f"log in: send Basic credentials or a bearer token from /token with scope "
                                       f"{MANAGEMENT}", headers=self._challenge())
                if caller.grants is not None and not any(is_management(g) and "*" in g.actions
                                                         for g in caller.grants):
                    raise Unauthorized(f"this token is for the registry, not the management API: ask /token for "
                                       f"scope {MANAGEMENT} with your password, or send Basic credentials",
                                       headers=self._challenge("insufficient_scope"))
                if op.pull is not None:
                    await self._check_pull(caller.principal, request.path_params[op.pull])
                body = await _json_body(request, op) if op.body else {}
                actor = events.CURRENT_ACTOR.set(self.guard.actor(request, caller))
                try:
                    result = await handler(request, caller.principal, body)
                finally:
                    events.CURRENT_ACTOR.reset(actor)
            except RegistryError as exc:
                return render_error(exc)
            if op.status == 204:
                return Response(status_code=204)
            return JSONResponse(result, status_code=op.status)
        return endpoint

    async def _check_pull(self, principal: Principal, repository: str) -> None:
        if "pull" not in await self.guard.access.actions_on(principal, repository):
            raise NameUnknown(detail={"name": repository[:300]})

    def _challenge(self, error: str | None = None) -> dict[str, str]:
        return {"WWW-Authenticate": self.guard.challenge_header([MANAGEMENT], error)}

    # -- handlers: unpack, call one service method ---------------------------------------------

    async def _list_users(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.list_users(who)

    async def _add_user(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.add_user(who, b["name"], b["password"], admin=bool(b.get("admin", False)))

    async def _update_user(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.update_user(who, r.path_params["user"], password=b.get("password"),
                                               current_password=b.get("current_password"),
                                               disabled=b.get("disabled"), admin=b.get("admin"))

    async def _delete_user(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.accounts.delete_user(who, r.path_params["user"])

    async def _list_projects(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.list_projects(who)

    async def _add_project(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.add_project(who, b["name"], public=bool(b.get("public", False)))

    async def _get_project(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.get_project(who, r.path_params["project"])

    async def _update_project(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.update_project(who, r.path_params["project"], public=bool(b["public"]))

    async def _delete_project(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.accounts.delete_project(who, r.path_params["project"])

    async def _list_teams(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.list_teams(who, r.path_params["project"])

    async def _add_team(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.accounts.add_team(who, r.path_params["project"], b["name"])
        return {"project": r.path_params["project"], "name": b["name"], "members": []}

    async def _delete_team(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.accounts.delete_team(who, r.path_params["project"], r.path_params["team"])

    async def _add_team_member(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        p = r.path_params
        await self.accounts.add_team_member(who, p["project"], p["team"], p["user"])

    async def _remove_team_member(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        p = r.path_params
        await self.accounts.remove_team_member(who, p["project"], p["team"], p["user"])

    async def _list_members(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.list_members(who, r.path_params["project"])

    async def _set_member(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.set_member(who, r.path_params["project"], r.path_params["member"], b["role"])

    async def _remove_member(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.accounts.remove_member(who, r.path_params["project"], r.path_params["member"])

    async def _list_robots(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.list_robots(who, r.path_params["project"])

    async def _list_system_robots(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.accounts.list_robots(who, None)

    async def _add_robot(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self._new_robot(who, r.path_params["project"], b)

    async def _add_system_robot(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self._new_robot(who, None, b)

    async def _new_robot(self, who: Principal, project: str | None, b: dict[str, Any]) -> Any:
        robot = await self.accounts.add_robot(who, project, b["name"], _strings(b, "permissions"),
                                              _strings(b, "repositories"), parse_expiry(b.get("expires")))
        return {"name": robot.login, "secret": robot.secret,
                "expires_at": robot.expires_at.isoformat() if robot.expires_at else None}

    async def _rotate_robot(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        robot = await self.accounts.rotate_robot(who, r.path_params["robot"])
        return {"name": robot.login, "secret": robot.secret}

    async def _revoke_robot(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.accounts.revoke_robot(who, r.path_params["robot"])

    async def _delete_robot(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.accounts.delete_robot(who, r.path_params["robot"])

    async def _audit(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        q = r.query_params
        before = _integer(q.get("before"), "before")
        limit = _integer(q.get("limit"), "limit")
        found = await self.accounts.audit(
            who, project=q.get("project") or None, repository=q.get("repository") or None,
            user=q.get("user") or None, action=q.get("action") or None, since=parse_time(q.get("since"), "since"),
            until=parse_time(q.get("until"), "until"), before_id=before, limit=100 if limit is None else limit)
        return {"events": found, "next_before": found[-1]["id"] if found else None}

    async def _rotate_key(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return {"kid": await self.accounts.rotate_signing_key(who)}


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestInvalid(f"{key} must be a list of strings")
    return value


def _integer(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise RequestInvalid(f"{name} must be a non-negative integer")
    return int(text)


async def _json_body(request: Request, op: Operation) -> dict[str, Any]:
    raw = await small_body(request, MAX_BODY_BYTES)
    try:
        body = json.loads(raw or b"{}")
    except (UnicodeDecodeError, ValueError):
        raise RequestInvalid("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise RequestInvalid("the body must be a JSON object")
    unknown = sorted(set(body) - set(op.body))
    if unknown:
        raise RequestInvalid(f"unknown field(s) {', '.join(unknown)[:200]}; this takes {', '.join(op.body)}")
    missing = [name for name in op.required if name not in body]
    if missing:
        raise RequestInvalid(f"missing field(s): {', '.join(missing)}")
    for name, kind in op.body.items():
        if name in body and body[name] is not None and not _is_kind(body[name], kind):
            raise RequestInvalid(f"{name} must be {' or '.join(_WORDS[k] for k in kind.split('|'))}",
                                 detail={"field": name})
    return body


_WORDS = {"string": "a string", "boolean": "a boolean", "integer": "an integer", "array": "an array of strings",
          "object": "an object", "null": "null"}
_PYTHON: dict[str, type | tuple[type, ...]] = {"string": str, "boolean": bool, "array": (list, str),
                                               "object": dict, "null": type(None)}


def _is_kind(value: object, kind: str) -> bool:
    for part in kind.split("|"):
        if part == "integer":
            if isinstance(value, int) and not isinstance(value, bool):  # JSON true is no integer
                return True
        elif isinstance(value, _PYTHON[part]):
            return True
    return False


def _schema(kind: str) -> dict[str, Any]:
    if kind == "array":
        return {"type": "array", "items": {"type": "string"}}
    parts = kind.split("|")
    return {"type": parts[0] if len(parts) == 1 else parts}


def openapi_document(operations: Sequence[Operation] = OPERATIONS) -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Errors"}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.name, "summary": op.summary,
            "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                           for p in _path_params(op.path)]
            + [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in op.query],
            "responses": {str(op.status): {"description": "success"},
                          **{code: {"description": text, "content": {"application/json": {"schema": error}}}
                             for code, text in (("400", "invalid request"), ("401", "not logged in"),
                                                ("403", "not allowed"), ("404", "not found"),
                                                ("409", "exists already"))}},
        }
        if op.body:
            properties = {k: _schema(v) for k, v in op.body.items()}
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "properties": properties, "required": list(op.required),
                "additionalProperties": False}}}}
        paths.setdefault(op.path.replace(":path}", "}"), {})[op.method.lower()] = entry
    errors_schema = {"type": "object", "properties": {"errors": {"type": "array", "items": {
        "type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "detail": {}},
    }}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "dockyard management API", "version": "1"},
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                           "description": f"A token from /token asked for with scope {MANAGEMENT} "
                                                          "(and a password); registry tokens are refused."}},
            "schemas": {"Errors": errors_schema},
        },
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]
