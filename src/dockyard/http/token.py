"""The token service (Docker token spec, SPEC.md §5.2): ``GET /token`` and ``POST /token``.

``GET`` takes optional Basic credentials and repeated ``scope`` parameters; ``POST`` is the OAuth2
form ``docker login`` uses (``grant_type=password`` or ``refresh_token``). Both grant the
intersection of what was asked and what the caller may do: never an error for partial access.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.auth.authorize import is_management
from dockyard.auth.principals import ANONYMOUS
from dockyard.auth.scopes import Grant, ScopeInvalid, parse_scopes
from dockyard.errors import RegistryError, RequestInvalid
from dockyard.http.auth import Guard
from dockyard.http.errors import render_error, small_body
from dockyard.services.access import AccessService

MAX_FORM_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenEndpoint:
    def __init__(self, guard: Guard, access: AccessService, *, service: str) -> None:
        self.guard = guard
        self.access = access
        self.service = service

    async def get(self, request: Request) -> Response:
        try:
            q = request.query_params
            self._check_service(q.get("service"))
            wanted = _scopes(q.getlist("scope"))
            principal = ANONYMOUS
            if request.headers.get("authorization", "").lower().startswith("basic "):
                principal = (await self.guard.identify(request, record_login=True)).principal
                request.scope["dockyard.user"] = principal.name  # the access log's caller
            offline = q.get("offline_token", "").lower() == "true"
            body = await self.access.issue(principal, wanted, offline=offline, address=self.guard.address(request))
        except RegistryError as exc:
            return render_error(exc)
        return JSONResponse(body, headers=_NO_STORE)

    async def post(self, request: Request) -> Response:
        try:
            form = await _form(request)
            self._check_service(form.get("service"))
            wanted = _scopes([form.get("scope", "")])
            grant_type = form.get("grant_type")
            address = self.guard.address(request)
            if grant_type == "password":
                username, password = form.get("username", ""), form.get("password", "")
                if not username:
                    raise RequestInvalid("grant_type=password needs username and password")
                principal = await self.access.login(username, password, address, record_success=True)
                request.scope["dockyard.user"] = principal.name
                offline = form.get("access_type") == "offline"
                body = await self.access.issue(principal, wanted, offline=offline, address=address)
            elif grant_type == "refresh_token":
                refresh = form.get("refresh_token", "")
                if not refresh:
                    raise RequestInvalid("grant_type=refresh_token needs refresh_token")
                principal = await self.access.redeem_refresh_token(refresh)
                request.scope["dockyard.user"] = principal.name
                # A refresh token renews registry access only: the management API wants the
                # password itself (a refresh token sits in every docker config.json).
                wanted = [w for w in wanted if not is_management(w)]
                body = await self.access.issue(principal, wanted, offline=False, address=address)
                body["refresh_token"] = refresh
            else:
                raise RequestInvalid("grant_type must be password or refresh_token")
        except RegistryError as exc:
            return render_error(exc)
        return JSONResponse(body, headers=_NO_STORE)

    async def jwks(self, request: Request) -> Response:
        await self.access.keys.refresh()
        return Response(json.dumps(self.access.keys.jwks()), media_type="application/json",
                        headers={"Cache-Control": "max-age=60"})

    def _check_service(self, service: str | None) -> None:
        if service and service != self.service:
            raise RequestInvalid(f"this token service is for service {self.service!r}, not {service[:80]!r}")


def _scopes(values: list[str]) -> list[Grant]:
    try:
        return parse_scopes(values)
    except ScopeInvalid as exc:
        raise RequestInvalid(f"invalid scope: {exc}") from None


async def _form(request: Request) -> dict[str, str]:
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        raise RequestInvalid("POST /token takes an application/x-www-form-urlencoded form")
    body = await small_body(request, MAX_FORM_BYTES, "the form")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestInvalid(f"the form cannot be parsed: {exc}") from None
    return {key: " ".join(values) if key == "scope" else values[0] for key, values in parsed.items()}
