"""Authentication and access decisions: logins, tokens, refresh tokens, signing keys, rate limits.

``authorize`` (auth/authorize.py) decides; this service gathers the facts it needs from the
database, checks credentials and issues tokens. Every node shares all of its state through the
database (signing keys, refresh tokens, failure counters), so a cluster behaves as one registry.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from dockyard import events
from dockyard.auth import tokens
from dockyard.auth.authorize import ProjectFacts, authorize, repository_actions
from dockyard.auth.passwords import Passwords, new_secret, secret_digest, secret_matches
from dockyard.auth.principals import (
    ANONYMOUS,
    REPOSITORY_ACTIONS,
    ROLES,
    Principal,
    RobotRules,
    Role,
    best_role,
    project_of,
)
from dockyard.auth.scopes import Grant
from dockyard.config import AuthConfig
from dockyard.errors import StorageFull, TooManyRequests, Unauthorized
from dockyard.services.lru import ENTRY_OVERHEAD, LRU
from dockyard.store import accounts, limits
from dockyard.store.clock import utcnow
from dockyard.store.db import Database

log = logging.getLogger("dockyard.access")
ROBOT_PREFIX = "robot+"
REFRESH_PREFIX = "dyr_"
ISSUER_REFRESH_SECONDS = 60.0
# Each argon2 run holds auth.argon2_memory_kib (7 MiB by default) and the allocator may keep it
# after: a worker runs at most this many at once, and requests with the same credentials share one.
ARGON2_RUNS = 2
VERIFIED_CACHE_BYTES = 512 * 1024  # ~1,000 verified passwords (a hash, never the password)


class InvalidCredentials(Unauthorized):
    default_message = "invalid username or password"


class InvalidToken(Unauthorized):
    default_message = "the token is not valid: log in again"


def parse_basic(header: str) -> tuple[str, str] | None:
    """The (user, password) of a ``Basic`` Authorization header, None when it is malformed."""
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user or len(user) > 255:
        return None
    return user, password


class KeyRing:
    """The token signing keys: the newest signs, every key not retired too long ago verifies.

    Keys live in the database (generated on first start, shared by every node) unless
    ``auth.key_file`` names a PEM file. A token signed by a key this process has not loaded but
    the database holds (a rotation on another node) makes it reload; the issuer also reloads once
    a minute, to sign with the newest key.
    """

    def __init__(self, db: Database, config: AuthConfig) -> None:
        self.db = db
        self.config = config
        self.issuer: tokens.TokenIssuer | None = None
        self.verifier: tokens.TokenVerifier | None = None
        self.keys: list[tokens.SigningKey] = []
        self._loaded_at = 0.0

    async def load(self) -> None:
        if self.config.key_file is not None:
            self.keys = [_key_from_file(self.config.key_file, self.config.algorithm)]
        else:
            self.keys = await self._database_keys()
        self._build()

    def _build(self) -> None:
        self.issuer = tokens.TokenIssuer(self.keys[0], issuer=self.config.issuer, audience=self.config.service,
                                         lifetime_seconds=self.config.token_lifetime_seconds)
        self.verifier = tokens.TokenVerifier(self.keys, issuer=self.config.issuer, audience=self.config.service,
                                             max_lifetime_seconds=self.config.token_lifetime_seconds)
        self._loaded_at = time.monotonic()

    async def _database_keys(self) -> list[tokens.SigningKey]:
        # Keys retired within the longest token lifetime still verify the tokens they signed.
        retired_after = utcnow() - timedelta(seconds=self.config.token_lifetime_seconds + 60)
        async with self.db.read() as conn:
            rows = await accounts.signing_key_rows(conn, retired_after=retired_after)
        if not any(not retired for *_, retired in rows):
            key = tokens.generate_key(self.config.algorithm)
            assert key.private_pem is not None
            async with self.db.write() as conn:
                rows = await accounts.signing_key_rows(conn, retired_after=retired_after)
                if not any(not retired for *_, retired in rows):  # nobody added one meanwhile
                    await accounts.add_signing_key(conn, key.kid, key.algorithm, key.private_pem)
                    rows = await accounts.signing_key_rows(conn, retired_after=retired_after)
        # The newest active key first: it signs.
        ordered = sorted(rows, key=lambda row: row[3])  # stable: active (False) before retired
        return [tokens.load_private_pem(pem) for _kid, _alg, pem, _retired in ordered]

    async def rotate(self) -> str:
        """Add a new signing key and retire the others (they keep verifying for one token lifetime)."""
        if self.config.key_file is not None:
            raise RuntimeError("the signing key comes from auth.key_file: replace that file to rotate it")
        key = tokens.generate_key(self.config.algorithm)
        assert key.private_pem is not None
        async with self.db.write() as conn:
            await accounts.add_signing_key(conn, key.kid, key.algorithm, key.private_pem)
            await accounts.retire_signing_keys(conn, keep=key.kid)
            await events.record(conn, events.Change("key.rotated", target=key.kid))
        await self.load()
        return key.kid

    async def refresh(self) -> None:
        """Pick up keys rotated on other nodes, at most once a minute."""
        if self.config.key_file is None and time.monotonic() - self._loaded_at >= ISSUER_REFRESH_SECONDS:
            await self.load()

    async def verify(self, token: str) -> tokens.Claims:
        if self.verifier is None:
            await self.load()
        assert self.verifier is not None
        try:
            return self.verifier.verify(token)
        except tokens.TokenInvalid:
            if not await self._new_key_in_database(token):
                raise
            await self.load()  # signed with a key another node rotated in since this one loaded
            return self.verifier.verify(token)

    async def _new_key_in_database(self, token: str) -> bool:
        if self.config.key_file is not None:
            return False
        kid = tokens.key_id(token)
        if kid is None or len(kid) > 64 or any(k.kid == kid for k in self.keys):
            return False
        return await self.db.first(accounts.SIGNING_KEY_EXISTS, kid=kid) is not None

    async def issue(self, subject: str, access: Sequence[Grant]) -> tokens.IssuedToken:
        await self.refresh()
        if self.issuer is None:
            await self.load()
        assert self.issuer is not None
        return self.issuer.issue(subject, access)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return tokens.jwks(self.keys)


def _key_from_file(path: Path, algorithm: str) -> tokens.SigningKey:
    """The key in ``path``; a missing file is created with a new key (mode 0600) by the first
    process to get there."""
    if not path.exists():
        key = tokens.generate_key(algorithm)
        assert key.private_pem is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(key.private_pem)
                out.flush()
                os.fsync(out.fileno())
    return tokens.load_private_pem(path.read_bytes())


class AccessService:
    def __init__(self, db: Database, config: AuthConfig, passwords: Passwords, keys: KeyRing) -> None:
        self.db = db
        self.config = config
        self.passwords = passwords
        self.keys = keys
        # Verified passwords (by a hash of user and password) and verified tokens, per worker.
        self._verified: LRU[str, tuple[str, float]] = LRU(VERIFIED_CACHE_BYTES, _verified_weight)
        self._claims: LRU[str, tokens.Claims] = LRU(config.token_cache_bytes, _claims_weight)
        self._verifying: dict[tuple[str, str | None], asyncio.Future[bool]] = {}
        self._argon2_runs = asyncio.Semaphore(ARGON2_RUNS)
        self.password_checks = 0  # argon2 runs in this worker

    # -- who is calling -------------------------------------------------------------------------

    async def login(self, username: str, password: str, address: str | None, *, record_success: bool) -> Principal:
        """The principal these credentials name, or ``InvalidCredentials`` / ``TooManyRequests``."""
        if not limits.can_hold(username, limits.ROBOT_NAME):
            raise InvalidCredentials()  # no account has such a name (nor could its failures be counted)
        failed_before = await self._check_rate(username, address)
        principal, unusable = await self._check_credentials(username, password)
        actor = events.Actor(username, address)
        if principal is None:
            window_start = utcnow() - timedelta(seconds=self.config.login_failure_window_seconds)
            # The caller is told nothing more; the audit log (for admins) says why right secrets
            # were refused, e.g. a robot whose creator is disabled.
            details = {"reason": unusable} if unusable else {}
            async with self.db.write() as conn:
                await accounts.record_failure(conn, f"user:{username}", window_start)
                if address:
                    await accounts.record_failure(conn, f"addr:{address}", window_start)
                await events.record(conn, events.Change("login.failed", target=username, details=details), actor)
            raise InvalidCredentials()
        if failed_before or record_success:
            try:
                async with self.db.write() as conn:
                    if failed_before:
                        await accounts.clear_failures(conn, f"user:{username}")
                    if record_success:
                        await events.record(conn, events.Change("login.succeeded", target=username), actor)
            except StorageFull:
                # The credentials are good; a full database volume must not stop pulls too.
                log.warning("login of %r not recorded: the database volume is full", username)
        return principal

    async def _check_rate(self, username: str, address: str | None) -> bool:
        """``TooManyRequests`` past a limit; else whether this user name failed in the window."""
        window = self.config.login_failure_window_seconds
        keys = [f"user:{username}"] + ([f"addr:{address}"] if address else [])
        async with self.db.read() as conn:
            counts = await accounts.failure_counts(conn, keys, utcnow() - timedelta(seconds=window))
        limits = {f"user:{username}": self.config.login_failure_limit,
                  f"addr:{address}": self.config.login_failure_address_limit}
        for key, (count, started) in counts.items():
            if count >= limits[key]:
                retry = max(1, int((started + timedelta(seconds=window) - utcnow()).total_seconds()) + 1)
                raise TooManyRequests(f"too many failed logins; try again in {retry} seconds",
                                      headers={"Retry-After": str(retry)})
        return f"user:{username}" in counts

    async def _check_credentials(self, username: str, password: str) -> tuple[Principal | None, str | None]:
        """The principal the credentials name; else None, and why when the secret was right but
        the account is unusable (disabled, revoked, expired, its creator disabled or deleted)."""
        if username.startswith(ROBOT_PREFIX):
            async with self.db.read() as conn:
                robot = await accounts.find_robot(conn, username)
            if robot is None or not secret_matches(robot.secret_hash if robot else None, password):
                return None, None
            unusable = _robot_unusable(robot)
            return (None, unusable) if unusable else (_robot_principal(robot), None)
        async with self.db.read() as conn:
            user = await accounts.find_user(conn, username)
        key = hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()
        cached = self._verified.get(key)
        if user is not None and cached is not None and cached[0] == user.password_hash \
                and cached[1] > time.monotonic():
            ok = True
        else:
            ok = await self._verify_password(key, user.password_hash if user else None, password)
        if not ok or user is None:
            return None, None
        if user.disabled:
            return None, "account disabled"
        return Principal("user", user.name, user.id, user.is_admin), None

    async def _verify_password(self, key: str, stored: str | None, password: str) -> bool:
        """argon2, once for all the requests that bring the same credentials while it runs."""
        flight = (key, stored)
        running = self._verifying.get(flight)
        if running is None:
            running = self._verifying[flight] = asyncio.ensure_future(self._argon2(key, stored, password))
            running.add_done_callback(lambda done: self._verifying.pop(flight, None) and None)
        return await asyncio.shield(running)

    async def _argon2(self, key: str, stored: str | None, password: str) -> bool:
        async with self._argon2_runs:
            self.password_checks += 1
            ok = await anyio.to_thread.run_sync(self.passwords.verify, stored, password)
        # Remembered before the run ends, so no request comes between the run and the cache.
        if ok and stored is not None and self.config.credential_cache_seconds:
            self._verified.put(key, (stored, time.monotonic() + self.config.credential_cache_seconds))
        return ok

    async def verify_token(self, token: str) -> tuple[Principal, tuple[Grant, ...]]:
        """The live principal and the grants of a bearer token; ``InvalidToken`` otherwise.

        The signature is checked once per token (then cached); the principal is looked up on
        every request, so a disabled user or a revoked robot loses access at once.
        """
        claims = self._claims.get(token)
        if claims is None or claims.expires_at < time.time():
            try:
                claims = await self.keys.verify(token)
            except tokens.TokenInvalid as exc:
                raise InvalidToken(f"the token is not valid ({exc}): log in again") from None
            self._claims.put(token, claims)
        principal = await self.principal_named(claims.subject)
        if principal is None:
            raise InvalidToken("the account of this token is disabled, revoked or gone")
        return principal, claims.access

    async def principal_named(self, subject: str) -> Principal | None:
        """The principal a token's subject names, as it is now (None: disabled, revoked, gone)."""
        if subject == "":
            return ANONYMOUS
        if subject.startswith(ROBOT_PREFIX):
            async with self.db.read() as conn:
                robot = await accounts.find_robot(conn, subject)
            return _robot_principal(robot) if robot is not None and _robot_usable(robot) else None
        row = await self.db.first(accounts.USER_STATUS, name=subject)
        if row is None or row[1]:
            return None
        return Principal("user", subject, int(row[0]), bool(row[2]))

    # -- what they may do -----------------------------------------------------------------------

    async def facts(self, principal: Principal, project: str) -> ProjectFacts:
        row = await self.db.first(accounts.PROJECT_VISIBILITY, name=project)
        if row is None:
            return ProjectFacts(project, exists=False)
        return await self.facts_of(principal, project, int(row[0]), bool(row[1]))

    async def facts_of(self, principal: Principal, project: str, project_id: int, public: bool) -> ProjectFacts:
        """The facts of a project the caller has already found: the principal's role in it."""
        member = principal.id if principal.kind == "user" else None
        if principal.robot is not None and not principal.robot.creator_is_admin:
            member = principal.robot.creator_id  # a robot holds no more than its creator
        role: Role | None = None
        if member is not None:
            async with self.db.read() as conn:
                roles = await accounts.user_roles(conn, project_id, member)
            role = best_role([r for r in roles if r in ROLES])
        return ProjectFacts(project, True, public, role)

    async def _facts_by_project(self, principal: Principal, names: Iterable[str]) -> dict[str, ProjectFacts]:
        """The facts of each project the repository names are in, each looked up once."""
        found: dict[str, ProjectFacts] = {}
        for project in dict.fromkeys(project_of(name) for name in names):
            found[project] = await self.facts(principal, project)
        return found

    async def actions_on(self, principal: Principal, repository: str) -> frozenset[str]:
        if principal.is_system_admin:
            return REPOSITORY_ACTIONS  # no lookup needed: a system admin may do everything
        facts = await self.facts(principal, project_of(repository))
        return repository_actions(principal, repository, facts,
                                  users_create_projects=self.config.users_create_projects)

    async def grant(self, principal: Principal, wanted: Iterable[Grant]) -> list[Grant]:
        """What of ``wanted`` the principal may have (the intersection; empty entries dropped)."""
        wanted = list(wanted)
        facts = await self._facts_by_project(principal, [w.name for w in wanted if w.type == "repository"])
        granted = []
        for want in wanted:
            known = facts[project_of(want.name)] if want.type == "repository" else None
            got = authorize(principal, want, known, users_create_projects=self.config.users_create_projects)
            if got.actions:
                granted.append(got)
        return granted

    async def visible(self, principal: Principal, names: list[str]) -> list[str]:
        """Those of ``names`` the principal may pull (the catalog shows nothing else)."""
        if principal.is_system_admin:
            return names
        facts = await self._facts_by_project(principal, names)
        return [name for name in names if "pull" in repository_actions(principal, name, facts[project_of(name)])]

    async def ensure_project_for_push(self, principal: Principal, repository: str) -> None:
        """A push into a project that does not exist creates it (private); a non-admin creator
        becomes its admin (only possible with ``auth.users_create_projects``)."""
        project = project_of(repository)
        if await self.db.first(accounts.PROJECT_VISIBILITY, name=project) is not None:
            return
        async with self.db.write() as conn:
            created = await accounts.ensure_project(conn, project, public=False, created_by=principal.name)
            if not created:
                return
            if principal.kind == "user" and not principal.is_system_admin and principal.id is not None:
                found = await accounts.find_project(conn, project)
                assert found is not None
                await accounts.set_member(conn, found.id, "admin", user_id=principal.id)
            await events.record(conn, events.Change("project.created", project=project,
                                                    details={"public": False, "on": "push"}))

    # -- tokens ---------------------------------------------------------------------------------

    async def issue(self, principal: Principal, wanted: list[Grant], *, offline: bool,
                    address: str | None) -> dict[str, Any]:
        granted = await self.grant(principal, wanted)
        issued = await self.keys.issue(principal.subject, granted)
        body: dict[str, Any] = {
            "token": issued.token, "access_token": issued.token, "expires_in": issued.expires_in,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued.issued_at)),
        }
        try:
            async with self.db.write() as conn:
                if offline and not principal.is_anonymous:
                    refresh = new_secret(REFRESH_PREFIX)
                    await accounts.store_refresh_token(
                        conn, secret_digest(refresh), principal.subject,
                        timedelta(seconds=self.config.refresh_token_lifetime_seconds))
                    body["refresh_token"] = refresh
                await events.record(conn, events.Change("token.issued", target=principal.subject or None, details={
                    "scopes": [str(g) for g in granted], "offline": offline and not principal.is_anonymous}),
                    events.Actor(principal.subject or None, address))
        except StorageFull:
            # A full database volume must not stop pulls: the token goes out unrecorded, without
            # a refresh token (that one would have to be stored; the client logs in again).
            body.pop("refresh_token", None)
            log.warning("token for %r not recorded: the database volume is full", principal.subject)
        return body

    async def redeem_refresh_token(self, token: str) -> Principal:
        async with self.db.read() as conn:
            found = await accounts.find_refresh_token(conn, secret_digest(token))
        if found is None or found[2] or found[1] < utcnow():
            raise InvalidToken("the refresh token is not valid (expired, revoked or unknown): log in again")
        principal = await self.principal_named(found[0])
        if principal is None:
            raise InvalidToken(f"the account {found[0]!r} is disabled, revoked or gone: ask an admin")
        return principal


def _robot_usable(robot: accounts.Robot) -> bool:
    return _robot_unusable(robot) is None


def _robot_unusable(robot: accounts.Robot) -> str | None:
    """Why the robot may not log in, None if it may: revoked, expired, or its creator disabled or
    deleted. A robot never holds more than its creator, and a disabled or deleted creator holds
    nothing (enabling the creator again restores the robot; a deleted creator's robot stays refused)."""
    if robot.revoked:
        return "robot revoked"
    if robot.expires_at is not None and robot.expires_at <= utcnow():
        return "robot expired"
    if robot.created_by is None:
        return "robot's creator deleted"
    if robot.creator_disabled:
        return "robot's creator disabled"
    return None


def _robot_principal(robot: accounts.Robot) -> Principal:
    rules = RobotRules(robot.project, frozenset(robot.actions), robot.repositories, robot.creator_is_admin,
                       robot.created_by)
    return Principal("robot", robot.name, robot.id, False, rules)


def _verified_weight(key: str, value: tuple[str, float]) -> int:
    return sys.getsizeof(key) + sys.getsizeof(value) + sys.getsizeof(value[0]) + 24 + ENTRY_OVERHEAD


def _claims_weight(token: str, claims: tokens.Claims) -> int:
    """What a verified token keeps alive in the cache: the token, its claims and their grants."""
    grants = sum(sys.getsizeof(g.type) + sys.getsizeof(g.name) + sys.getsizeof(g.actions) + 80 + 60 * len(g.actions)
                 for g in claims.access)
    return (sys.getsizeof(token) + sys.getsizeof(claims.subject) + sys.getsizeof(claims.token_id)
            + sys.getsizeof(claims.access) + 150 + grants + ENTRY_OVERHEAD)
