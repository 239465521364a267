"""The authorization table issue 4 asks for: principal x operation x public/private project.

Every cell states the expected status and, for a refusal, the exact error code and the complete
``WWW-Authenticate`` challenge (SPEC.md §5.1: realm from config, service, the scope the request
needs, ``error=`` for tokens). Expectations come from a small model of issue 4 written out below
(``repository_actions``, ``expect``), not from the code under test.

Each test builds its data once (``build_world``) and walks its cells, collecting every mismatch, so
a failure lists all the cells that differ: ``[principal | operation | column | credentials]``.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa

from dockyard.auth.principals import Principal
from dockyard.config import Config
from dockyard.store.clock import utcnow
from dockyard.store.schema import robots as robot_rows
from tests.integration.conftest import ADMIN_AUTH, Registry, make_config, open_registry
from tests.support.content import Image, make_image, push_image, push_manifest, sha256

REALM = "https://auth.dockyard.test/token"  # never the Host the request came to
SERVICE = "dockyard"
PASSWORD = "correct-horse-battery"
PUB, PRIV, GHOST = "pub", "priv", "ghost"
SOURCE = "priv/src"  # the private repository mounts come from
COLUMNS = {"public": PUB, "private": PRIV}
ALL = frozenset({"pull", "push", "delete"})
PULL = frozenset({"pull"})
PULL_PUSH = frozenset({"pull", "push"})
NONE: frozenset[str] = frozenset()
# The role table as issue 4 writes it (repository actions and management permissions), plus the
# one addition tests/unit/test_authorize.py pins down: maintainers and admins may read the audit log.
ROLE_TABLE: dict[str, frozenset[str]] = {
    "guest": frozenset({"pull"}),
    "developer": frozenset({"pull", "push"}),
    "maintainer": frozenset({"pull", "push", "delete", "manage_policies", "manage_robots", "view_audit"}),
    "admin": frozenset({"pull", "push", "delete", "manage_policies", "manage_robots", "view_audit",
                        "manage_members", "manage_settings"}),
}


def auth_config(tmp_path: Path, database_url: str) -> Config:
    # Failed logins are part of the table (disabled user, expired and revoked robots): keep the
    # rate limit out of the way so they answer 401, not 429.
    return make_config(tmp_path, database_url, auth={
        "realm": REALM, "login_failure_limit": 1_000_000, "login_failure_address_limit": 1_000_000})


# -- principals ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Who:
    key: str
    login: str | None = None  # a user's login name
    role: str | None = None  # held in both projects (team_developer: through a team)
    sysadmin: bool = False
    robot: str | None = None  # the robot's short name; one robot per project, glob "<project>/app*"
    robot_actions: frozenset[str] = NONE
    valid: bool = True  # the credentials are (still) accepted
    anonymous: bool = False


PRINCIPALS: dict[str, Who] = {w.key: w for w in [
    Who("anonymous", anonymous=True),
    Who("guest", "guest", role="guest"),
    Who("developer", "dev", role="developer"),
    Who("maintainer", "maint", role="maintainer"),
    Who("admin_role", "owner", role="admin"),
    Who("team_developer", "teamdev", role="developer"),
    Who("no_role", "norole"),
    Who("disabled_user", "disabled", role="developer", valid=False),
    Who("system_admin", "admin", sysadmin=True),
    Who("robot_pull", robot="ci-pull", robot_actions=PULL),
    Who("robot_push", robot="ci-push", robot_actions=PULL_PUSH),
    Who("robot_expired", robot="ci-expired", robot_actions=PULL_PUSH, valid=False),
    Who("robot_revoked", robot="ci-revoked", robot_actions=PULL_PUSH, valid=False),
]}


def project_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def repository_actions(who: Who, column_project: str, repository: str) -> frozenset[str]:
    """What issue 4 lets ``who`` do on ``repository`` (valid credentials assumed)."""
    project = project_of(repository)
    if project not in (PUB, PRIV):
        return ALL if who.sysadmin else NONE  # no such project: only a system admin's push creates one
    public = PULL if project == PUB else NONE  # public: anonymous pull, so anyone's pull
    if who.sysadmin:
        return ALL
    if who.robot is not None:
        own = project == column_project and fnmatchcase(repository, f"{column_project}/app*")
        # Created by a maintainer, so its own actions are all it is limited to.
        return (who.robot_actions if own else NONE) | public
    if who.role is not None:
        return (ROLE_TABLE[who.role] & ALL) | public
    return public


def management(who: Who, project: str) -> tuple[frozenset[str], bool]:
    """(permissions held, whether the project is visible) for /api/v1."""
    if project not in (PUB, PRIV):
        return NONE, who.sysadmin
    if who.sysadmin:
        return ROLE_TABLE["admin"], True
    held = ROLE_TABLE[who.role] if who.role is not None and who.robot is None else NONE
    return held, bool(held) or project == PUB


# -- operations ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    name: str
    need: str  # /v2: none, catalog, pull, push, delete; /api/v1: a permission or "sysadmin"
    success: int
    api: bool = False
    method: str = "GET"

    @property
    def repository_scoped(self) -> bool:
        return not self.api and self.need in ("pull", "push", "delete")

    @property
    def project_scoped(self) -> bool:
        return self.api and self.need != "sysadmin"


OPS: list[Op] = [
    Op("base", "none", 200),
    Op("catalog", "catalog", 200),
    Op("tags_list", "pull", 200),
    Op("manifest_get", "pull", 200),
    Op("manifest_head", "pull", 200, method="HEAD"),
    Op("manifest_put", "push", 201, method="PUT"),
    Op("manifest_delete", "delete", 202, method="DELETE"),
    Op("blob_get", "pull", 200),
    Op("blob_head", "pull", 200, method="HEAD"),
    Op("blob_delete", "delete", 202, method="DELETE"),
    Op("upload_start", "push", 202, method="POST"),
    Op("upload_patch", "push", 202, method="PATCH"),
    Op("upload_put", "push", 201, method="PUT"),
    Op("upload_status", "push", 204),
    Op("upload_cancel", "push", 204, method="DELETE"),
    Op("mount_from_private", "push", 201, method="POST"),  # 202 when the caller cannot pull the source
    Op("referrers", "pull", 200),
    Op("api_list_members", "manage_members", 200, api=True),
    Op("api_add_robot", "manage_robots", 201, api=True, method="POST"),
    Op("api_set_member", "manage_members", 200, api=True, method="PUT"),
    Op("api_audit", "view_audit", 200, api=True),
    Op("api_patch_project", "manage_settings", 200, api=True, method="PATCH"),
    Op("api_create_project", "sysadmin", 201, api=True, method="POST"),
    Op("api_create_user", "sysadmin", 201, api=True, method="POST"),
]


# -- answers ---------------------------------------------------------------------------------------

Scope = frozenset[tuple[str, str, frozenset[str]]]


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None = None  # None: not checked (successes, HEAD)
    challenge: dict[str, Any] | None = None  # checked on every 401

    def show(self, method: str = "GET") -> str:
        text = f"{self.status}"
        if self.code and method != "HEAD":
            text += f" {self.code}"
        if self.challenge is not None:
            text += " " + _show_challenge(self.challenge)
        return text


def challenge(scope: Scope | None = None, error: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"scheme": "bearer", "realm": REALM, "service": SERVICE}
    if scope:
        found["scope"] = scope
    if error:
        found["error"] = error
    return found


def parse_challenge(header: str | None) -> dict[str, Any] | None:
    if header is None:
        return None
    scheme, _, rest = header.partition(" ")
    found: dict[str, Any] = {"scheme": scheme.lower()}
    for key, value in re.findall(r'([A-Za-z_]+)="([^"]*)"', rest):
        found[key] = parse_scope(value) if key == "scope" else value
    return found


def parse_scope(text: str) -> Scope:
    entries = set()
    for item in text.split():
        type_, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        entries.add((type_, name, frozenset(actions.split(","))))
    return frozenset(entries)


def _show_value(key: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if key == "scope":
        return " ".join(sorted(f"{t}:{n}:{','.join(sorted(a))}" for t, n, a in value))
    return repr(value)


def _show_challenge(found: dict[str, Any]) -> str:
    """The challenge, leaving out realm and service when they are the expected ones."""
    usual = {"realm": REALM, "service": SERVICE}
    parts = [f"{k}={_show_value(k, v)}" for k, v in sorted(found.items())
             if k != "scheme" and usual.get(k) != v]
    return f"{found['scheme'].capitalize()}[{', '.join(parts)}]"


def describe(expected: Answer, got: Answer, method: str) -> str:
    """How one cell's answer differs from what it should be."""
    if (got.status, got.code if method != "HEAD" else None) != \
            (expected.status, expected.code if method != "HEAD" else None) or got.challenge is None:
        return f"expected {expected.show(method)}, got {got.show(method)}"
    want = expected.challenge or {}
    keys = sorted(set(want) | set(got.challenge))
    wrong = [f"{k}: expected {_show_value(k, want.get(k))}, got {_show_value(k, got.challenge.get(k))}"
             for k in keys if want.get(k) != got.challenge.get(k)]
    return f"{got.show(method)}: WWW-Authenticate " + "; ".join(wrong)


def needed_scope(op: Op, repository: str) -> Scope | None:
    if op.need == "none":
        return None
    if op.need == "catalog":
        return frozenset({("registry", "catalog", frozenset({"*"}))})
    actions = {"pull": PULL, "push": PULL_PUSH, "delete": frozenset({"delete"})}[op.need]
    scope = {("repository", repository, actions)}
    if op.name == "mount_from_private":
        scope.add(("repository", SOURCE, PULL))
    return frozenset(scope)


def expect(who: Who, mode: str, op: Op, column_project: str, repository: str, project: str) -> Answer:
    """The answer issue 4 and SPEC.md §5 require for one cell."""
    bearer = mode == "bearer"
    if op.api:
        # /api/v1's challenge names the scope its tokens need (registry tokens are refused there).
        if who.anonymous or not who.valid:
            return Answer(401, "UNAUTHORIZED", challenge(MANAGEMENT_SCOPE,
                                                         "invalid_token" if bearer and not who.valid else None))
        if op.need == "sysadmin":
            return Answer(op.success) if who.sysadmin else Answer(403, "DENIED")
        held, visible = management(who, project)
        if not visible:
            return Answer(404, "NOT_FOUND")  # the same as for a project that does not exist
        return Answer(op.success) if op.need in held else Answer(403, "DENIED")
    scope = needed_scope(op, repository)
    if mode == "none":  # no credentials at all
        allowed = op.repository_scoped and op.need in repository_actions(who, column_project, repository)
        if allowed:
            return _success(who, op, column_project)
        return Answer(401, "UNAUTHORIZED", challenge(scope))
    if not who.valid:
        # SPEC.md §5.1: every 401 challenge lists what the request needs; a bad token adds error.
        return Answer(401, "UNAUTHORIZED", challenge(scope, "invalid_token" if bearer else None))
    if op.need in ("none", "catalog") or op.need in repository_actions(who, column_project, repository):
        return _success(who, op, column_project)
    return Answer(401, "DENIED", challenge(scope, "insufficient_scope" if bearer else None))


def _success(who: Who, op: Op, column_project: str) -> Answer:
    if op.name == "mount_from_private" and "pull" not in repository_actions(who, column_project, SOURCE):
        return Answer(202)  # a plain upload: never 201, never the blob
    return Answer(op.success)


def observed(response: httpx.Response) -> Answer:
    code = None
    if response.request.method != "HEAD" and response.content:
        try:
            code = response.json()["errors"][0]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            code = None
    return Answer(response.status_code, code, parse_challenge(response.headers.get("www-authenticate")))


def differs(expected: Answer, got: Answer, method: str) -> bool:
    if got.status != expected.status:
        return True
    if expected.code is not None and method != "HEAD" and got.code != expected.code:
        return True
    return expected.status == 401 and got.challenge != expected.challenge


# -- the world every test starts from --------------------------------------------------------------

@dataclass
class Creds:
    basic: tuple[str, str] | None
    token: str | None = None

    def request(self, mode: str) -> dict[str, Any]:
        if mode == "bearer":
            assert self.token is not None
            return {"auth": None, "headers": {"Authorization": f"Bearer {self.token}"}}
        return {"auth": self.basic if mode == "basic" else None, "headers": {}}


@dataclass
class World:
    registry: Registry
    admin: Principal
    images: dict[str, Image]  # repository -> the image tagged v1 there
    robots: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (project, short) -> login
    creds: dict[tuple[str, str], Creds] = field(default_factory=dict)  # (principal, project) -> creds
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.registry.client

    def unique(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"


USERS = ["guest", "dev", "maint", "owner", "teamdev", "norole", "disabled", "target", "pubdev"]
ROBOTS = [("ci-pull", ["pull"]), ("ci-push", ["pull", "push"]), ("ci-expired", ["pull", "push"]),
          ("ci-revoked", ["pull", "push"])]
MANAGEMENT_SCOPE: Scope = frozenset({("management", "api", frozenset({"*"}))})
# The tokens ask for the management API too: /api/v1 refuses tokens without it
# (tests/integration/test_access_gaps.py shows that).
TOKEN_SCOPES = ["management:api:*", "repository:{p}/app:pull,push,delete",
                "repository:priv/app:pull,push,delete", f"repository:{SOURCE}:pull",
                "repository:priv/nope:pull,push,delete",
                "repository:ghost/app:pull,push,delete", "repository:pub/other:pull", "registry:catalog:*"]


async def get_token(client: httpx.AsyncClient, basic: tuple[str, str] | None, scopes: list[str]) -> str:
    query = urlencode([("service", SERVICE)] + [("scope", s) for s in scopes])
    answer = await client.get(f"/token?{query}", auth=basic)
    assert answer.status_code == 200, f"token for {basic[0] if basic else 'anonymous'}: {answer.text}"
    return str(answer.json()["token"])


async def build_world(registry: Registry, tokens_for: list[str]) -> World:
    """Two projects (pub public, priv private) with an image in each, users holding every role in
    both (team_developer through a team), robots created by the maintainer; then tokens for the
    principals in ``tokens_for``; then the disabled user, expired robot and revoked robot lose access."""
    accounts = registry.parts.accounts
    admin = await registry.parts.access.principal_named("admin")
    assert admin is not None
    await accounts.add_project(admin, PUB, public=True)
    await accounts.add_project(admin, PRIV)
    for name in USERS:
        await accounts.add_user(admin, name, PASSWORD)
    for project in (PUB, PRIV):
        for user, role in (("guest", "guest"), ("dev", "developer"), ("maint", "maintainer"), ("owner", "admin"),
                           ("disabled", "developer")):
            await accounts.set_member(admin, project, f"user:{user}", role)
        await accounts.add_team(admin, project, "devs")
        await accounts.add_team_member(admin, project, "devs", "teamdev")
        await accounts.set_member(admin, project, "team:devs", "developer")
    await accounts.set_member(admin, PUB, "user:pubdev", "developer")
    images = {}
    for repository in (f"{PUB}/app", f"{PRIV}/app", f"{PUB}/other", SOURCE):
        images[repository] = make_image(layers=1)
        await push_image(registry.client, repository, images[repository], "v1")
    world = World(registry, admin, images)
    for project in (PUB, PRIV):
        for short, actions in ROBOTS:
            made = await registry.client.post(
                f"/api/v1/projects/{project}/robots", auth=("maint", PASSWORD),
                json={"name": short, "permissions": actions, "repositories": [f"{project}/app*"], "expires": "30d"})
            assert made.status_code == 201, made.text
            world.robots[(project, short)] = (made.json()["name"], made.json()["secret"])
    for who in PRINCIPALS.values():
        for project in (PUB, PRIV):
            if who.anonymous:
                basic = None
            elif who.robot is not None:
                basic = world.robots[(project, who.robot)]
            else:
                basic = ADMIN_AUTH if who.sysadmin else (who.login or "", PASSWORD)
            creds = world.creds[(who.key, project)] = Creds(basic)
            if who.key in tokens_for:
                creds.token = await get_token(registry.client, basic, [s.format(p=project) for s in TOKEN_SCOPES])
    # Now take access away: a disabled user, an expired robot, a revoked robot.
    await accounts.update_user(admin, "disabled", disabled=True)
    async with registry.parts.db.write() as conn:
        for project in (PUB, PRIV):
            expired = world.robots[(project, "ci-expired")][0]
            await conn.execute(sa.update(robot_rows).where(robot_rows.c.name == expired)
                               .values(expires_at=utcnow() - timedelta(hours=1)))
    for project in (PUB, PRIV):
        await accounts.revoke_robot(admin, world.robots[(project, "ci-revoked")][0])
    return world


# -- performing one operation ----------------------------------------------------------------------

async def admin_push_blob(world: World, repository: str) -> str:
    data = secrets.token_bytes(64)
    started = await world.client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    done = await world.client.put(f"{started.headers['location']}?digest={sha256(data)}", content=data)
    assert done.status_code == 201, done.text
    return sha256(data)


async def admin_upload(world: World, repository: str) -> str:
    started = await world.client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    return str(started.headers["location"])


async def perform(world: World, op: Op, repository: str, project: str, request: dict[str, Any], *,
                  real: bool) -> tuple[httpx.Response, dict[str, Any]]:
    """Run ``op`` on ``repository`` / ``project`` with the caller's credentials in ``request``.

    ``real``: the repository exists, so the data the operation acts on is prepared first (as the
    system admin). Otherwise (a private repository's stand-in that does not exist) nothing is
    created and made-up identifiers are used.
    """
    c = world.client
    image = world.images[repository if real else f"{PRIV}/app"]
    layer = sha256(image.layers[0])
    context: dict[str, Any] = {}
    fake_upload = f"/v2/{repository}/blobs/uploads/{secrets.token_hex(16)}"
    match op.name:
        case "base":
            return await c.get("/v2/", **request), context
        case "catalog":
            return await c.get("/v2/_catalog", **request), context
        case "tags_list":
            return await c.get(f"/v2/{repository}/tags/list", **request), context
        case "manifest_get":
            return await c.get(f"/v2/{repository}/manifests/v1", **request), context
        case "manifest_head":
            return await c.head(f"/v2/{repository}/manifests/v1", **request), context
        case "manifest_put":
            return await c.put(f"/v2/{repository}/manifests/{world.unique('t')}", content=image.manifest,
                               headers={**request["headers"], "Content-Type": image.media_type},
                               auth=request["auth"]), context
        case "manifest_delete":
            tag = world.unique("d")
            if real:
                assert (await push_manifest(c, repository, tag, image.manifest, image.media_type)).status_code == 201
            return await c.delete(f"/v2/{repository}/manifests/{tag}", **request), context
        case "blob_get":
            return await c.get(f"/v2/{repository}/blobs/{layer}", **request), context
        case "blob_head":
            return await c.head(f"/v2/{repository}/blobs/{layer}", **request), context
        case "blob_delete":
            digest = await admin_push_blob(world, repository) if real else sha256(secrets.token_bytes(8))
            return await c.delete(f"/v2/{repository}/blobs/{digest}", **request), context
        case "upload_start":
            return await c.post(f"/v2/{repository}/blobs/uploads/", **request), context
        case "upload_patch":
            location = await admin_upload(world, repository) if real else fake_upload
            return await c.patch(location, content=b"x" * 32, auth=request["auth"],
                                 headers={**request["headers"], "Content-Type": "application/octet-stream"}), context
        case "upload_put":
            location = await admin_upload(world, repository) if real else fake_upload
            data = secrets.token_bytes(32)
            return await c.put(f"{location}?digest={sha256(data)}", content=data, auth=request["auth"],
                               headers={**request["headers"], "Content-Type": "application/octet-stream"}), context
        case "upload_status":
            location = await admin_upload(world, repository) if real else fake_upload
            return await c.get(location, **request), context
        case "upload_cancel":
            location = await admin_upload(world, repository) if real else fake_upload
            return await c.delete(location, **request), context
        case "mount_from_private":
            digest = context["digest"] = await admin_push_blob(world, SOURCE)
            return await c.post(f"/v2/{repository}/blobs/uploads/?mount={digest}&from={SOURCE}", **request), context
        case "referrers":
            return await c.get(f"/v2/{repository}/referrers/{image.digest}", **request), context
        case "api_list_members":
            return await c.get(f"/api/v1/projects/{project}/members", **request), context
        case "api_add_robot":
            body = {"name": world.unique("bot"), "permissions": ["pull"], "repositories": [f"{project}/app*"]}
            return await c.post(f"/api/v1/projects/{project}/robots", json=body, **request), context
        case "api_set_member":
            return await c.put(f"/api/v1/projects/{project}/members/user:target", json={"role": "guest"},
                               **request), context
        case "api_audit":
            return await c.get(f"/api/v1/audit?project={project}", **request), context
        case "api_patch_project":
            return await c.patch(f"/api/v1/projects/{project}", json={"public": project == PUB}, **request), context
        case "api_create_project":
            return await c.post("/api/v1/projects", json={"name": world.unique("made")}, **request), context
        case "api_create_user":
            return await c.post("/api/v1/users", json={"name": world.unique("made"), "password": PASSWORD},
                                **request), context
    raise AssertionError(f"no operation {op.name}")


async def catalog_universe(world: World) -> list[str]:
    listed = await world.client.get("/v2/_catalog")
    assert listed.status_code == 200, listed.text
    return list(listed.json()["repositories"])


async def check_success(world: World, who: Who, op: Op, column_project: str, repository: str,
                        response: httpx.Response, context: dict[str, Any]) -> list[str]:
    """What a successful answer must also show: the catalog's contents, a mount's effect."""
    problems = []
    if op.name == "catalog":
        universe = await catalog_universe(world)
        expected = sorted(r for r in universe if "pull" in repository_actions(who, column_project, r))
        listed = response.json()["repositories"]
        if listed != expected:
            leaked = sorted(set(listed) - set(expected))
            missing = sorted(set(expected) - set(listed))
            problems.append(f"catalog lists {listed}, expected {expected}"
                            + (f"; LEAKS {leaked}" if leaked else "") + (f"; missing {missing}" if missing else ""))
    if op.name == "mount_from_private" and response.status_code in (201, 202):
        linked = await world.client.head(f"/v2/{repository}/blobs/{context['digest']}")
        if response.status_code == 202:
            if linked.status_code != 404:
                problems.append(f"mount answered 202 but the blob is in {repository} (HEAD {linked.status_code})")
            if "/blobs/uploads/" not in response.headers.get("location", ""):
                problems.append(f"mount answered 202 without an upload Location: {dict(response.headers)}")
        elif linked.status_code != 200:
            problems.append(f"mount answered 201 but HEAD of the blob in {repository} is {linked.status_code}")
    return problems


def modes_of(who: Who) -> list[str]:
    return ["none", "bearer"] if who.anonymous else ["basic", "bearer"]


def _same_ignoring_name(first: Answer, second: Answer, name: str, stand_in: str) -> bool:
    if (first.status, first.code) != (second.status, second.code):
        return False
    if first.challenge is None or second.challenge is None:
        return first.challenge == second.challenge
    renamed = dict(second.challenge)
    if "scope" in renamed:
        renamed["scope"] = frozenset((t, name if n == stand_in else n, a) for t, n, a in renamed["scope"])
    return first.challenge == renamed


# -- the table -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(PRINCIPALS))
async def test_authorization_table(tmp_path: Path, database_url: str, key: str) -> None:
    """One principal's row of the table: every operation x public/private x Basic/bearer (or none)."""
    who = PRINCIPALS[key]
    failures: list[str] = []
    async with open_registry(auth_config(tmp_path, database_url)) as registry:
        world = await build_world(registry, [key])
        for column, project in COLUMNS.items():
            for mode in modes_of(who):
                request = world.creds[(key, project)].request(mode)
                for op in OPS:
                    cell = f"[{key} | {op.name} | {column} | {mode}]"
                    repository = f"{project}/app"
                    wanted = expect(who, mode, op, project, repository, project)
                    response, context = await perform(world, op, repository, project, request, real=True)
                    got = observed(response)
                    if differs(wanted, got, op.method):
                        failures.append(f"{cell} {describe(wanted, got, op.method)}")
                    elif response.status_code < 300:
                        failures += [f"{cell} {p}" for p in await check_success(
                            world, who, op, project, repository, response, context)]
                failures += await invariant_4(world, who, mode, project, column, request)
    assert not failures, f"{len(failures)} cell(s) differ:\n" + "\n".join(failures)


async def invariant_4(world: World, who: Who, mode: str, column_project: str, column: str,
                      request: dict[str, Any]) -> list[str]:
    """A caller who cannot pull ``priv/app`` gets the same answer for it as for a repository that
    does not exist (``priv/nope``, ``ghost/app``); one who cannot see project ``priv`` gets the same
    answer for it as for project ``ghost``."""
    failures: list[str] = []
    if who.sysadmin:
        return failures
    blind = not who.valid or "pull" not in repository_actions(who, column_project, f"{PRIV}/app")
    for op in OPS:
        if op.repository_scoped and blind:
            pairs = [(f"{PRIV}/app", PRIV, True), (f"{PRIV}/nope", PRIV, False), (f"{GHOST}/app", GHOST, False)]
        elif op.project_scoped and (not management(who, PRIV)[1] or not who.valid or who.anonymous):
            pairs = [(f"{PRIV}/app", PRIV, True), (f"{GHOST}/app", GHOST, False)]
        else:
            continue
        answers = []
        for repository, project, real in pairs:
            response, _ = await perform(world, op, repository, project, request, real=real)
            answers.append((repository, project, observed(response)))
        first_repo, first_project, first = answers[0]
        wanted = expect(who, mode, op, column_project, first_repo, first_project)
        # Only a robot's credentials differ between the columns; the private column checked the rest.
        if who.robot is not None and column_project != PRIV and differs(wanted, first, op.method):
            failures.append(f"[{who.key} | {op.name} on {first_repo} | {column} | {mode}] "
                            f"{describe(wanted, first, op.method)}")
        for repository, project, answer in answers[1:]:
            name, stand_in = (first_project, project) if op.api else (first_repo, repository)
            if not _same_ignoring_name(first, answer, name, stand_in):
                shown = first_project if op.api else first_repo
                failures.append(f"[{who.key} | {op.name} | {column} | {mode}] INVARIANT 4: {shown} answered "
                                f"{first.show(op.method)} but missing {stand_in} answered {answer.show(op.method)}")
    return failures


# -- the must-checks, each on its own --------------------------------------------------------------

def bearer(token: str) -> dict[str, Any]:
    return {"auth": None, "headers": {"Authorization": f"Bearer {token}"}}


def basic(login: tuple[str, str]) -> dict[str, Any]:
    return {"auth": login, "headers": {}}


async def test_mount_from_a_repository_the_caller_cannot_pull(tmp_path: Path, database_url: str) -> None:
    """SPEC.md §2 and issue 4: such a mount is a plain new upload (202), never 201, never the blob."""
    failures: list[str] = []
    async with open_registry(auth_config(tmp_path, database_url)) as registry:
        world = await build_world(registry, [])
        c = registry.client
        digest = await admin_push_blob(world, SOURCE)
        pubdev = ("pubdev", PASSWORD)  # developer in pub only
        pubdev_token = await get_token(c, pubdev, ["repository:pub/app:pull,push", f"repository:{SOURCE}:pull"])
        # "dev" may pull priv/src, but this token does not carry that.
        narrow_token = await get_token(c, ("dev", PASSWORD), ["repository:pub/app:pull,push"])
        cells = [
            ("developer of pub only, Basic, from=priv/src", basic(pubdev), f"?mount={digest}&from={SOURCE}", 202),
            ("developer of pub only, Basic, mount without from", basic(pubdev), f"?mount={digest}", 202),
            ("developer of pub only, bearer, from=priv/src", bearer(pubdev_token), f"?mount={digest}&from={SOURCE}",
             202),
            ("robot pull,push of pub, Basic, from=priv/src", basic(world.robots[(PUB, "ci-push")]),
             f"?mount={digest}&from={SOURCE}", 202),
            # dev may pull the source but the token does not say so: 401 asking for a token that does
            # (what distribution answers; clients then fetch one), and nothing is mounted meanwhile.
            ("developer of both, bearer token without pull on priv/src, from=priv/src", bearer(narrow_token),
             f"?mount={digest}&from={SOURCE}", 401),
            # The control: a caller who may pull the source gets the mount.
            ("developer of both, Basic, from=priv/src", basic(("dev", PASSWORD)), f"?mount={digest}&from={SOURCE}",
             201),
        ]
        for cell, request, query, status in cells:
            answer = await c.post(f"/v2/{PUB}/app/blobs/uploads/{query}", **request)
            linked = await c.head(f"/v2/{PUB}/app/blobs/{digest}")  # as the system admin
            if answer.status_code != status:
                failures.append(f"[{cell}] expected {status}, got {answer.status_code} {answer.text[:200]}")
            if status == 401:
                challenge = answer.headers.get("www-authenticate", "")
                if f"repository:{SOURCE}:pull" not in challenge or 'error="insufficient_scope"' not in challenge:
                    failures.append(f"[{cell}] the challenge does not ask for the source: {challenge!r}")
                if linked.status_code != 404:
                    failures.append(f"[{cell}] the blob is now in {PUB}/app (HEAD {linked.status_code})")
            elif status == 202:
                if linked.status_code != 404:
                    failures.append(f"[{cell}] the blob is now in {PUB}/app (HEAD {linked.status_code})")
                if answer.status_code == 202 and ("/blobs/uploads/" not in answer.headers.get("location", "")
                                                  or not answer.headers.get("docker-upload-uuid")):
                    failures.append(f"[{cell}] 202 without a new upload session: {dict(answer.headers)}")
                own = await c.get(f"/v2/{PUB}/app/blobs/{digest}", **request)
                if own.status_code != 404:
                    failures.append(f"[{cell}] the caller reads the blob through {PUB}/app: {own.status_code}")
            elif linked.status_code != 200:
                failures.append(f"[{cell}] mounted but HEAD in {PUB}/app is {linked.status_code}")
    assert not failures, "\n".join(failures)


async def test_catalog_lists_only_what_the_caller_may_pull(tmp_path: Path, database_url: str) -> None:
    """Issue 4 item 6: never a repository the caller cannot pull (each listed one is pulled back)."""
    failures: list[str] = []
    async with open_registry(auth_config(tmp_path, database_url)) as registry:
        world = await build_world(registry, [])
        universe = await catalog_universe(world)
        assert sorted(universe) == sorted(world.images)
        for who in PRINCIPALS.values():
            if who.anonymous or not who.valid:
                continue
            for project in (PUB, PRIV):
                request = world.creds[(who.key, project)].request("basic")
                listed = await registry.client.get("/v2/_catalog", **request)
                if listed.status_code != 200:
                    failures.append(f"[{who.key} | {project}] catalog answered {listed.status_code}")
                    continue
                names = listed.json()["repositories"]
                allowed = {r for r in universe if "pull" in repository_actions(who, project, r)}
                if set(names) - allowed:
                    failures.append(f"[{who.key} | {project}] catalog LEAKS {sorted(set(names) - allowed)}")
                for name in names:
                    pulled = await registry.client.get(f"/v2/{name}/tags/list", **request)
                    if pulled.status_code != 200:
                        failures.append(f"[{who.key} | {project}] lists {name} but cannot pull it: "
                                        f"{pulled.status_code}")
        anonymous_token = await get_token(registry.client, None, ["registry:catalog:*"])
        listed = await registry.client.get("/v2/_catalog", **bearer(anonymous_token))
        if listed.status_code != 200 or listed.json()["repositories"] != [f"{PUB}/app", f"{PUB}/other"]:
            failures.append(f"[anonymous token] catalog: {listed.status_code} {listed.text[:200]}")
    assert not failures, "\n".join(failures)


async def test_disabled_user_is_refused_on_the_next_request(tmp_path: Path, database_url: str) -> None:
    """Issue 4 item 2: disabling takes effect on the next request, for tokens already issued too."""
    failures: list[str] = []
    async with open_registry(auth_config(tmp_path, database_url)) as registry:
        world = await build_world(registry, [])
        c = registry.client
        accounts = registry.parts.accounts
        await accounts.add_user(world.admin, "leaver", PASSWORD)
        await accounts.set_member(world.admin, PRIV, "user:leaver", "developer")
        login = ("leaver", PASSWORD)
        issued = await c.get("/token", params={"service": SERVICE, "scope": f"repository:{PRIV}/app:pull",
                                               "offline_token": "true"}, auth=login)
        assert issued.status_code == 200, issued.text
        token, refresh = issued.json()["token"], issued.json()["refresh_token"]
        manifest = f"/v2/{PRIV}/app/manifests/v1"
        assert (await c.get(manifest, **bearer(token))).status_code == 200
        assert (await c.get(manifest, **basic(login))).status_code == 200

        await accounts.update_user(world.admin, "leaver", disabled=True)

        cells: list[tuple[str, httpx.Response, int, str | None, str | None]] = [
            ("token issued before, GET manifest", await c.get(manifest, **bearer(token)), 401, "UNAUTHORIZED",
             "invalid_token"),
            ("token issued before, GET /v2/", await c.get("/v2/", **bearer(token)), 401, "UNAUTHORIZED",
             "invalid_token"),
            ("Basic, GET manifest", await c.get(manifest, **basic(login)), 401, "UNAUTHORIZED", None),
            ("Basic, GET /v2/", await c.get("/v2/", **basic(login)), 401, "UNAUTHORIZED", None),
            ("Basic, GET /token", await c.get("/token", params={"service": SERVICE}, auth=login), 401,
             "UNAUTHORIZED", None),
            ("POST /token password grant", await c.post("/token", data={
                "grant_type": "password", "username": "leaver", "password": PASSWORD, "service": SERVICE}),
             401, "UNAUTHORIZED", None),
            ("POST /token refresh token issued before", await c.post("/token", data={
                "grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE}),
             401, "UNAUTHORIZED", None),
            ("token issued before, /api/v1/projects", await c.get("/api/v1/projects", **bearer(token)), 401,
             "UNAUTHORIZED", "invalid_token"),
            ("Basic, /api/v1/projects", await c.get("/api/v1/projects", **basic(login)), 401, "UNAUTHORIZED", None),
        ]
        failures += _check_refusals(cells)
    assert not failures, "\n".join(failures)


def _check_refusals(cells: list[tuple[str, httpx.Response, int, str | None, str | None]]) -> list[str]:
    failures = []
    for cell, answer, status, code, error in cells:
        got_code = observed(answer).code
        if answer.status_code != status or got_code != code:
            failures.append(f"[{cell}] expected {status} {code}, got {answer.status_code} {got_code}: "
                            f"{answer.text[:200]}")
            continue
        if answer.request.url.path.startswith(("/v2", "/api")):
            found = parse_challenge(answer.headers.get("www-authenticate")) or {}
            if found.get("realm") != REALM or found.get("service") != SERVICE or found.get("error") != error:
                failures.append(f"[{cell}] challenge {answer.headers.get('www-authenticate')!r}: expected realm "
                                f"{REALM}, service {SERVICE}, error {error}")
    return failures


@pytest.mark.parametrize("how", ["expired", "revoked"])
async def test_expired_or_revoked_robot_is_refused(tmp_path: Path, database_url: str, how: str) -> None:
    """Issue 4 item 4: a robot past its expiry, or revoked, is refused (tokens issued before too)."""
    async with open_registry(auth_config(tmp_path, database_url)) as registry:
        world = await build_world(registry, [])
        c = registry.client
        made = await c.post(f"/api/v1/projects/{PRIV}/robots", auth=("maint", PASSWORD), json={
            "name": "late", "permissions": ["pull"], "repositories": [f"{PRIV}/app*"], "expires": "1h"})
        assert made.status_code == 201, made.text
        login = (made.json()["name"], made.json()["secret"])
        token = await get_token(c, login, [f"repository:{PRIV}/app:pull"])
        manifest = f"/v2/{PRIV}/app/manifests/v1"
        assert (await c.get(manifest, **basic(login))).status_code == 200
        assert (await c.get(manifest, **bearer(token))).status_code == 200
        if how == "expired":
            async with registry.parts.db.write() as conn:
                await conn.execute(sa.update(robot_rows).where(robot_rows.c.name == login[0])
                                   .values(expires_at=utcnow() - timedelta(seconds=1)))
        else:
            await registry.parts.accounts.revoke_robot(world.admin, login[0])
        failures = _check_refusals([
            ("Basic, GET manifest", await c.get(manifest, **basic(login)), 401, "UNAUTHORIZED", None),
            ("token issued before, GET manifest", await c.get(manifest, **bearer(token)), 401, "UNAUTHORIZED",
             "invalid_token"),
            ("Basic, GET /token", await c.get("/token", auth=login, params={
                "service": SERVICE, "scope": f"repository:{PRIV}/app:pull"}), 401, "UNAUTHORIZED", None),
            ("POST /token password grant", await c.post("/token", data={
                "grant_type": "password", "username": login[0], "password": login[1], "service": SERVICE}),
             401, "UNAUTHORIZED", None),
        ])
    assert not failures, f"{how} robot:\n" + "\n".join(failures)


async def test_robot_outside_its_repositories(tmp_path: Path, database_url: str) -> None:
    """A project robot holds its actions on its globs only; outside them it has what anyone has:
    nothing in a private project, pull in a public one (issue 4: public = anonymous pull)."""
    failures: list[str] = []
    async with open_registry(auth_config(tmp_path, database_url)) as registry:
        world = await build_world(registry, [])
        c = registry.client
        pub_pull, priv_pull = world.robots[(PUB, "ci-pull")], world.robots[(PRIV, "ci-pull")]
        priv_push = world.robots[(PRIV, "ci-push")]
        image = world.images[f"{PUB}/app"]

        def denied(name: str, actions: frozenset[str]) -> Answer:
            return Answer(401, "DENIED", challenge(frozenset({("repository", name, actions)})))

        cells: list[tuple[str, Any, Answer]] = [
            ("pub robot pulls pub/other (public, outside its glob)",
             c.get(f"/v2/{PUB}/other/manifests/v1", **basic(pub_pull)), Answer(200)),
            ("priv robot pulls pub/app (public, outside its project)",
             c.get(f"/v2/{PUB}/app/manifests/v1", **basic(priv_pull)), Answer(200)),
            ("anonymous pulls pub/other (the control)", c.get(f"/v2/{PUB}/other/manifests/v1"), Answer(200)),
            ("pub robot pulls priv/app (private, outside its project)",
             c.get(f"/v2/{PRIV}/app/manifests/v1", **basic(pub_pull)), denied(f"{PRIV}/app", PULL)),
            ("priv robot pulls priv/src (private, outside its glob)",
             c.get(f"/v2/{SOURCE}/manifests/v1", **basic(priv_pull)), denied(SOURCE, PULL)),
            ("priv push robot pushes to pub/app (public, outside its project)",
             c.put(f"/v2/{PUB}/app/manifests/x1", content=image.manifest, auth=priv_push,
                   headers={"Content-Type": image.media_type}), denied(f"{PUB}/app", PULL_PUSH)),
            ("priv push robot starts an upload in priv/src (outside its glob)",
             c.post(f"/v2/{SOURCE}/blobs/uploads/", **basic(priv_push)), denied(SOURCE, PULL_PUSH)),
            ("pub pull robot pushes to pub/app (its glob, no push)",
             c.post(f"/v2/{PUB}/app/blobs/uploads/", **basic(pub_pull)), denied(f"{PUB}/app", PULL_PUSH)),
            ("pub pull robot deletes in pub/app (its glob, no delete)",
             c.delete(f"/v2/{PUB}/app/manifests/v1", **basic(pub_pull)),
             denied(f"{PUB}/app", frozenset({"delete"}))),
        ]
        for cell, pending, wanted in cells:
            response = await pending
            got = observed(response)
            if differs(wanted, got, response.request.method):
                failures.append(f"[{cell}] {describe(wanted, got, response.request.method)}")
    assert not failures, "\n".join(failures)
