"""Enforcement: once per request, before any handler, from the access the matched route declares.

The guard identifies the caller (bearer token, Basic credentials or nobody), works out what the
request needs, and either lets it through or answers 401 with the complete ``WWW-Authenticate``
challenge (SPEC.md §5.1). It decides before any handler runs, so a caller without access gets
the same answer for a private repository as for one that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from dockyard.auth.principals import ANONYMOUS, Principal
from dockyard.auth.scopes import Grant
from dockyard.errors import DeniedChallenge, Unauthorized
from dockyard.events import Actor
from dockyard.http.routes import Match
from dockyard.oci.names import is_valid_name
from dockyard.services.access import AccessService, InvalidCredentials, parse_basic

Visible = Callable[[list[str]], Awaitable[list[str]]]
# What a challenge asks for, by route access: a push also reads (docker asks for both).
_CHALLENGE_ACTIONS = {"pull": ("pull",), "push": ("pull", "push"), "delete": ("delete",)}
# The pushes that may create a repository (and so its project); the others act on an upload
# that exists, in a project that does too.
_CREATES_REPOSITORIES = frozenset({"start_upload", "put_manifest"})


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    grants: tuple[Grant, ...] | None  # a bearer token's access claim; None: decided live
    credentials: bool  # a token or a password was presented

    @property
    def actor(self) -> str | None:
        return self.principal.name or None


def client_address(request: Request, trust_forwarded_for: bool) -> str | None:
    if trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64] or None
    return request.client.host if request.client else None


class Guard:
    def __init__(self, access: AccessService, *, realm: str, service: str, trust_forwarded_for: bool) -> None:
        self.access = access
        self.realm = realm
        self.service = service
        self.trust_forwarded_for = trust_forwarded_for

    def address(self, request: Request) -> str | None:
        return client_address(request, self.trust_forwarded_for)

    async def identify(self, request: Request, scopes: list[Grant] | None = None, *,
                       record_login: bool = False) -> Caller:
        """Who is calling; a bad token or bad credentials are a 401 right away, whose challenge
        names ``scopes`` (what the request needs)."""
        scopes = scopes or []
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value.strip():
            try:
                principal, grants = await self.access.verify_token(value.strip())
            except Unauthorized as exc:
                raise self._challenge(exc.message, scopes, error="invalid_token") from None
            return Caller(principal, grants, True)
        if scheme == "basic":
            parsed = parse_basic(value)
            if parsed is None:
                raise self._challenge("the Basic credentials are malformed: send base64(user:password)", scopes)
            try:
                principal = await self.access.login(parsed[0], parsed[1], self.address(request),
                                                    record_success=record_login)
            except InvalidCredentials as exc:
                raise self._challenge(exc.message, scopes) from None
            return Caller(principal, None, True)
        return Caller(ANONYMOUS, None, False)

    async def check(self, request: Request, found: Match) -> Caller:
        """The caller, if the route's access allows the request; else the right 401."""
        scopes = self._scopes(request, found)
        caller = await self.identify(request, scopes)
        if found.access == "none":
            if not caller.credentials:
                raise self._challenge("authentication required: log in (an anonymous token will do)", [])
            return caller
        if found.access == "catalog":
            if not caller.credentials:  # an anonymous token will do: it lists public repositories
                raise self._challenge("authentication required", scopes)
            if caller.grants is not None and not _holds(caller.grants, "registry", "catalog", "*"):
                raise self._refuse(caller, scopes)
            return caller
        if not await self.allows(caller, found.params["name"], found.access):
            raise self._refuse(caller, scopes)
        if found.handler == "start_upload" and await self._token_lacks_mount_source(request, caller):
            raise self._refuse(caller, scopes)
        if found.handler in _CREATES_REPOSITORIES:
            await self.access.ensure_project_for_push(caller.principal, found.params["name"])
        return caller

    async def _token_lacks_mount_source(self, request: Request, caller: Caller) -> bool:
        """A mount ``from`` a repository the caller may pull, with a token that does not say so:
        answered 401 so the client fetches a token that does (as distribution answers). Callers
        who may not pull the source at all get no such hint: their mount is a plain upload."""
        source = request.query_params.get("from")
        if caller.grants is None or not source or "mount" not in request.query_params or not is_valid_name(source):
            return False
        if _holds(caller.grants, "repository", source, "pull"):
            return False
        return "pull" in await self.access.actions_on(caller.principal, source)

    @staticmethod
    def _scopes(request: Request, found: Match) -> list[Grant]:
        """What the request needs, as the challenge names it (SPEC.md §5.1)."""
        if found.access == "none":
            return []
        if found.access == "catalog":
            return [Grant("registry", "catalog", ("*",))]
        scopes = [Grant("repository", found.params["name"], _CHALLENGE_ACTIONS[found.access])]
        if found.handler == "start_upload" and (source := request.query_params.get("from")):
            scopes.append(Grant("repository", source, ("pull",)))
        return scopes

    async def allows(self, caller: Caller, repository: str, action: str) -> bool:
        if caller.grants is not None:
            # A token carries what was granted when it was issued; the principal is live-checked.
            return _holds(caller.grants, "repository", repository, action)
        return action in await self.access.actions_on(caller.principal, repository)

    def visible(self, caller: Caller) -> Visible:
        """Which of some repositories the caller may pull now (the catalog lists only those)."""
        async def visible(names: list[str]) -> list[str]:
            return await self.access.visible(caller.principal, names)
        return visible

    def actor(self, request: Request, caller: Caller) -> Actor:
        return Actor(caller.actor, self.address(request))

    def _refuse(self, caller: Caller, scopes: list[Grant]) -> Unauthorized:
        if caller.credentials:
            return self._challenge("requested access to the resource is denied", scopes,
                                   error="insufficient_scope" if caller.grants is not None else None,
                                   kind=DeniedChallenge)
        return self._challenge("authentication required", scopes)

    def challenge_header(self, scopes: list[Grant], error: str | None = None) -> str:
        parts = [f'realm="{self.realm}"', f'service="{self.service}"']
        if scopes:
            parts.append('scope="' + " ".join(str(s) for s in scopes) + '"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    def _challenge(self, message: str, scopes: list[Grant], error: str | None = None,
                   kind: type[Unauthorized] = Unauthorized) -> Unauthorized:
        detail = [{"Type": s.type, "Name": s.name, "Action": a} for s in scopes for a in s.actions]
        return kind(message, detail=detail or None, headers={"WWW-Authenticate": self.challenge_header(scopes, error)})


def _holds(grants: tuple[Grant, ...], type_: str, name: str, action: str) -> bool:
    return any(g.type == type_ and g.name == name and (action in g.actions or "*" in g.actions) for g in grants)
