"""Issue 11 item 8: the access-control gaps found by trying to break them, each reproduced against
the real app (SQLite and PostgreSQL) and closed.

- a disabled user's robots hold nothing (Basic, tokens, refresh tokens), and come back with the user;
- teams of projects the caller cannot see behave as if they did not exist;
- robot and member routes answer the same for a project the caller cannot see as for a missing one;
- durations and dates out of range are a 400 that names the limit, never a 500;
- ``/api/v1`` takes only credentials meant for it, and one's own password changes only with the
  current one;
- ``/api/v1`` and ``/token`` requests are logged with their caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import Registry, client_as, make_config, open_registry
from tests.support.content import make_image, push_image

PUSH_SCOPE = "repository:team-a/app:pull,push"
API_SCOPE = "management:api:*"


async def add_project(api: httpx.AsyncClient, name: str, *, public: bool = False) -> None:
    answer = await api.post("/api/v1/projects", json={"name": name, "public": public})
    assert answer.status_code == 201, answer.text


async def add_user(api: httpx.AsyncClient, name: str, project: str | None = None, role: str | None = None,
                   *, admin: bool = False) -> tuple[str, str]:
    """The user ``name`` (password ``<name>-password``), holding ``role`` in ``project`` when given."""
    login = (name, f"{name}-password")
    created = await api.post("/api/v1/users", json={"name": name, "password": login[1], "admin": admin})
    assert created.status_code == 201, created.text
    if role is not None:
        granted = await api.put(f"/api/v1/projects/{project}/members/{name}", json={"role": role})
        assert granted.status_code == 200, granted.text
    return login


async def add_robot(client: httpx.AsyncClient, project: str, name: str, permissions: list[str]) -> tuple[str, str]:
    made = await client.post(f"/api/v1/projects/{project}/robots", json={
        "name": name, "permissions": permissions, "repositories": ["*"]})
    assert made.status_code == 201, made.text
    return made.json()["name"], made.json()["secret"]


def bearer(token: str) -> dict[str, Any]:
    return {"auth": None, "headers": {"Authorization": f"Bearer {token}"}}


def error(answer: httpx.Response) -> tuple[int, str, str]:
    """(status, code, message) of an error answer."""
    found = answer.json()["errors"][0]
    return answer.status_code, found["code"], found["message"]


async def set_disabled(api: httpx.AsyncClient, user: str, disabled: bool) -> None:
    answer = await api.patch(f"/api/v1/users/{user}", json={"disabled": disabled})
    assert answer.status_code == 200, answer.text


# -- 1. a disabled creator's robots -----------------------------------------------------------------

async def test_a_disabled_creators_robot_holds_nothing_until_the_creator_is_enabled(registry: Registry) -> None:
    """Disabling a maintainer cuts off the robot they created at once, whatever credential it
    shows: Basic on /v2 and /token, a token issued before, a refresh token; enabling them again
    restores the robot (it was never revoked)."""
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "maint", "team-a", "maintainer")
    async with client_as(registry, ("maint", "maint-password")) as maint:
        robot = await add_robot(maint, "team-a", "ci", ["pull", "push"])
    issued = await api.get("/token", params={"scope": PUSH_SCOPE, "offline_token": "true"}, auth=robot)
    assert issued.status_code == 200, issued.text
    assert issued.json()["token"]
    token, refresh = issued.json()["token"], issued.json()["refresh_token"]
    async with client_as(registry, robot) as ci:
        await push_image(ci, "team-a/app", make_image(), "v1")

    await set_disabled(api, "maint", True)
    async with client_as(registry, robot) as ci:
        basic = await ci.get("/v2/team-a/app/tags/list")
        assert basic.status_code == 401, basic.text
        assert (await ci.get("/v2/")).status_code == 401
        # No token with pull or push: the robot's credentials themselves are refused.
        assert (await ci.get("/token", params={"scope": PUSH_SCOPE})).status_code == 401
    old = await api.get("/v2/team-a/app/tags/list", **bearer(token))
    assert old.status_code == 401
    assert 'error="invalid_token"' in old.headers["www-authenticate"]
    refreshed = await api.post("/token", auth=None, data={
        "grant_type": "refresh_token", "refresh_token": refresh, "scope": PUSH_SCOPE})
    assert refreshed.status_code == 401, refreshed.text

    # The caller is told nothing more; the audit log tells the admin why the right secret failed.
    failed = (await api.get("/api/v1/audit", params={"user": robot[0], "action": "login.failed"})).json()["events"]
    assert failed
    assert {e["detail"]["reason"] for e in failed} == {"robot's creator disabled"}

    await set_disabled(api, "maint", False)
    async with client_as(registry, robot) as ci:
        assert (await ci.get("/v2/team-a/app/tags/list")).status_code == 200
    assert (await api.get("/v2/team-a/app/tags/list", **bearer(token))).status_code == 200
    again = await api.post("/token", auth=None, data={
        "grant_type": "refresh_token", "refresh_token": refresh, "scope": PUSH_SCOPE})
    assert again.status_code == 200, again.text
    assert again.json()["token"]


async def test_disabling_a_creator_on_one_node_cuts_the_robot_off_on_another_at_once(
        tmp_path: Path, database_url: str) -> None:
    """Two nodes on one database, each with its caches warm (the robot's token verified, the
    maintainer's password remembered for ``auth.credential_cache_seconds``): disabling the
    maintainer through node A refuses the robot and the maintainer on node B from the next request."""
    config = make_config(tmp_path, database_url, auth={"credential_cache_seconds": 3600})
    async with open_registry(config) as node_a, open_registry(config) as node_b:
        await add_project(node_a.client, "team-a")
        maint = await add_user(node_a.client, "maint", "team-a", "maintainer")
        async with client_as(node_a, maint) as on_a:
            robot = await add_robot(on_a, "team-a", "ci", ["pull", "push"])
        token = (await node_b.client.get("/token", params={"scope": PUSH_SCOPE}, auth=robot)).json()["token"]
        async with client_as(node_b, robot) as ci, client_as(node_b, maint) as maint_on_b:
            assert (await ci.get("/v2/team-a/app/tags/list", **bearer(token))).status_code == 404  # no such repo yet
            assert (await maint_on_b.get("/v2/team-a/app/tags/list")).status_code == 404
            await set_disabled(node_a.client, "maint", True)
            assert (await ci.get("/v2/team-a/app/tags/list", **bearer(token))).status_code == 401
            assert (await ci.get("/v2/team-a/app/tags/list")).status_code == 401
            assert (await maint_on_b.get("/v2/team-a/app/tags/list")).status_code == 401


async def test_a_disabled_system_admins_robots_hold_nothing(registry: Registry) -> None:
    """A robot made by a system admin holds what a system admin holds, so a disabled system admin's
    robots, project and system-wide alike, must hold nothing."""
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "root2", admin=True)
    async with client_as(registry, ("root2", "root2-password")) as root2:
        project_robot = await add_robot(root2, "team-a", "deploy", ["pull", "push"])
        system = await root2.post("/api/v1/robots", json={"name": "mirror", "permissions": ["pull", "push"],
                                                           "repositories": ["*"]})
        assert system.status_code == 201, system.text
    system_robot = (system.json()["name"], system.json()["secret"])
    await push_image(api, "team-a/app", make_image(), "v1")
    for robot in (project_robot, system_robot):
        async with client_as(registry, robot) as ci:
            assert (await ci.get("/v2/team-a/app/tags/list")).status_code == 200
    await set_disabled(api, "root2", True)
    for robot in (project_robot, system_robot):
        async with client_as(registry, robot) as ci:
            assert (await ci.get("/v2/team-a/app/tags/list")).status_code == 401, robot[0]
            assert (await ci.get("/token", params={"scope": PUSH_SCOPE})).status_code == 401, robot[0]


async def test_a_deleted_creators_robot_is_refused_at_once(registry: Registry) -> None:
    """Deleting the maintainer who made a robot refuses the robot from the next request on, its
    token from before included (a deleted creator holds nothing, not even for a token's lifetime)."""
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "maint", "team-a", "maintainer")
    async with client_as(registry, ("maint", "maint-password")) as maint:
        robot = await add_robot(maint, "team-a", "ci", ["pull", "push"])
    issued = (await api.get("/token", params={"scope": PUSH_SCOPE, "offline_token": "true"}, auth=robot)).json()
    await push_image(api, "team-a/app", make_image(), "v1")
    assert (await api.get("/v2/team-a/app/tags/list", **bearer(issued["token"]))).status_code == 200
    assert (await api.delete("/api/v1/users/maint")).status_code == 204
    assert (await api.get("/v2/team-a/app/tags/list", **bearer(issued["token"]))).status_code == 401
    async with client_as(registry, robot) as ci:
        assert (await ci.get("/v2/team-a/app/tags/list")).status_code == 401
    refreshed = await api.post("/token", auth=None, data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "scope": PUSH_SCOPE})
    assert refreshed.status_code == 401


async def test_a_robot_of_a_deleted_project_is_gone(registry: Registry) -> None:
    """Deleting a project deletes its robots: a project of the same name made later does not bring
    them back."""
    api = registry.client
    await add_project(api, "team-a")
    robot = await add_robot(api, "team-a", "ci", ["pull", "push"])
    assert (await api.delete("/api/v1/projects/team-a")).status_code == 204
    await add_project(api, "team-a")
    async with client_as(registry, robot) as ci:
        assert (await ci.get("/v2/team-a/app/tags/list")).status_code == 401
        assert (await ci.get("/token", params={"scope": PUSH_SCOPE})).status_code == 401


# -- 2. teams of projects the caller cannot see ------------------------------------------------------

async def test_teams_of_a_project_the_caller_cannot_see_are_absent(registry: Registry) -> None:
    """beta's admin binding ``alpha/admins`` (alpha private, invisible to him) gets exactly the
    answer of a team of a project that does not exist, on PUT and DELETE; so he learns neither
    that alpha exists nor what its teams are called. Nothing is bound. A public alpha is no
    different: only who may list alpha's teams (its admins) may name them."""
    api = registry.client
    for name in ("alpha", "beta"):
        await add_project(api, name)
    assert (await api.post("/api/v1/projects/alpha/teams", json={"name": "admins"})).status_code == 201
    await add_user(api, "bob", "beta", "admin")
    async with client_as(registry, ("bob", "bob-password")) as bob:
        assert (await bob.get("/api/v1/projects/alpha")).status_code == 404
        for visibility in (False, True):
            assert (await api.patch("/api/v1/projects/alpha", json={"public": visibility})).status_code == 200
            for method in ("PUT", "DELETE"):
                body = {"json": {"role": "admin"}} if method == "PUT" else {}
                answers = {who: await bob.request(method, f"/api/v1/projects/beta/members/{who}", **body)
                           for who in ("alpha/admins", "alpha/nosuch", "nosuchproject/admins",
                                       "nosuchproject/nosuch", "team:alpha/admins")}
                absent = error(answers["nosuchproject/nosuch"])
                assert absent[:2] == (404, "NOT_FOUND"), absent
                for who, answer in answers.items():
                    shown, named = error(answer), who.removeprefix("team:")
                    assert (shown[0], shown[1], shown[2].replace(named, "X")) == (
                        absent[0], absent[1], absent[2].replace("nosuchproject/nosuch", "X")), (method, who, shown)
                    assert "admins" not in json.dumps(answer.json()).replace(named, "X")
        assert (await bob.get("/api/v1/projects/beta/members")).json() == [
            {"kind": "user", "name": "bob", "role": "admin"}]
    # Who may see alpha's teams may bind them: a system admin, or an admin of both projects. Once
    # bound into beta, beta's admin sees the binding listed, and may change or remove it.
    assert (await api.put("/api/v1/projects/beta/members/alpha/admins", json={"role": "guest"})).status_code == 200
    async with client_as(registry, ("bob", "bob-password")) as bob:
        assert {"kind": "team", "name": "alpha/admins", "role": "guest"} in (
            await bob.get("/api/v1/projects/beta/members")).json()
        changed = await bob.put("/api/v1/projects/beta/members/alpha/admins", json={"role": "developer"})
        assert changed.json() == {"kind": "team", "name": "alpha/admins", "role": "developer"}
        assert (await bob.delete("/api/v1/projects/beta/members/alpha/admins")).status_code == 204
        again = await bob.put("/api/v1/projects/beta/members/alpha/admins", json={"role": "developer"})
        assert error(again) == (404, "NOT_FOUND", "team 'alpha/admins' not found")
    await add_user(api, "carol", "alpha", "admin")
    assert (await api.put("/api/v1/projects/beta/members/carol", json={"role": "admin"})).status_code == 200
    async with client_as(registry, ("carol", "carol-password")) as carol:
        bound = await carol.put("/api/v1/projects/beta/members/alpha/admins", json={"role": "developer"})
        assert bound.status_code == 200, bound.text


# -- 3. robot and member routes --------------------------------------------------------------------

async def test_robot_and_member_routes_tell_nothing_about_projects_the_caller_cannot_see(
        registry: Registry) -> None:
    """On every robot route, a robot of a project the caller cannot see, a robot of a missing
    project, a missing robot and a system-wide robot (for a non-admin) get the same answer, but for
    the name; on every member and robot-listing route, a hidden project answers like a missing one."""
    api = registry.client
    await add_project(api, "beta")
    await add_project(api, "mine")
    await add_robot(api, "beta", "ci", ["pull"])
    assert (await api.post("/api/v1/robots", json={"name": "mirror", "permissions": ["pull"],
                                                   "repositories": ["*"]})).status_code == 201
    await add_user(api, "eve", "mine", "admin")
    robots = ["robot+beta+ci", "robot+ghost+ci", "robot+beta+nosuch", "robot+mine+nosuch", "robot+mirror",
              "robot+nosuch", "robot+a+b+c", "nonsense"]
    routes = [("POST", "/api/v1/robots/{}/rotate"), ("POST", "/api/v1/robots/{}/revoke"),
              ("DELETE", "/api/v1/robots/{}")]
    async with client_as(registry, ("eve", "eve-password")) as eve:
        for method, path in routes:
            answers = {login: error(await eve.request(method, path.format(login))) for login in robots}
            expected = (404, "NOT_FOUND", "robot 'X' not found")
            shown = {login: (s, c, m.replace(repr(login), "'X'")) for login, (s, c, m) in answers.items()}
            assert shown == dict.fromkeys(robots, expected), (method, path, shown)
        member_routes = [("GET", "/api/v1/projects/{}/members", {}),
                         ("PUT", "/api/v1/projects/{}/members/eve", {"json": {"role": "guest"}}),
                         ("DELETE", "/api/v1/projects/{}/members/eve", {}),
                         ("GET", "/api/v1/projects/{}/robots", {}),
                         ("POST", "/api/v1/projects/{}/robots",
                          {"json": {"name": "x", "permissions": ["pull"], "repositories": ["*"]}}),
                         ("GET", "/api/v1/projects/{}/teams", {}),
                         ("POST", "/api/v1/projects/{}/teams", {"json": {"name": "t"}}),
                         ("PUT", "/api/v1/projects/{}/teams/t/members/eve", {}),
                         ("DELETE", "/api/v1/projects/{}/teams/t", {})]
        for method, path, body in member_routes:
            hidden = error(await eve.request(method, path.format("beta"), **body))
            missing = error(await eve.request(method, path.format("ghost"), **body))
            assert hidden == (404, "NOT_FOUND", "project 'beta' not found"), (method, path, hidden)
            assert missing == (404, "NOT_FOUND", "project 'ghost' not found"), (method, path, missing)
    # A guest sees beta but may not manage its robots: the same refusal for a robot there or not.
    await add_user(api, "gus", "beta", "guest")
    async with client_as(registry, ("gus", "gus-password")) as gus:
        for method, path in routes:
            there = error(await gus.request(method, path.format("robot+beta+ci")))
            not_there = error(await gus.request(method, path.format("robot+beta+nosuch")))
            assert there == not_there, (method, path)
            assert there[:2] == (403, "DENIED"), there
    # The system admin is told the truth.
    assert error(await api.post("/api/v1/robots/robot+beta+nosuch/rotate"))[0] == 404
    assert (await api.post("/api/v1/robots/robot+beta+ci/rotate")).status_code == 200
    assert (await api.post("/api/v1/robots/robot+mirror/rotate")).status_code == 200


# -- 4. durations and dates -------------------------------------------------------------------------

async def test_durations_and_dates_out_of_range_are_a_clear_400(registry: Registry) -> None:
    """A robot expiry past ten years (``999999w``, ``3651d``) or not a duration, and audit times
    that overflow when read as UTC, are a 400 naming the fix; ten years exactly is accepted."""
    api = registry.client
    await add_project(api, "team-a")
    for expires in ("999999w", "3651d", "87601h", "5256001m", "522w", "0d", "-1d", "1y", "1.5d"):
        for path in ("/api/v1/projects/team-a/robots", "/api/v1/robots"):
            answer = await api.post(path, json={"name": "ci", "permissions": ["pull"], "repositories": ["*"],
                                                "expires": expires})
            status, code, message = error(answer)
            assert (status, code) == (400, "INVALID_REQUEST"), (expires, answer.text)
            assert "expiry" in message, message
            if expires in ("999999w", "3651d"):
                assert "at most 10 years" in message, message
    made = await api.post("/api/v1/robots", json={"name": "ci", "permissions": ["pull"], "repositories": ["*"],
                                                  "expires": "3650d"})
    assert made.status_code == 201, made.text
    for name in ("since", "until"):
        for value in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "99999-01-01T00:00:00Z",
                      "2026-13-01T00:00:00Z"):
            answer = await api.get("/api/v1/audit", params={name: value})
            assert error(answer)[:2] == (400, "INVALID_REQUEST"), (name, value, answer.text)
            assert name in error(answer)[2]
    for name in ("before", "limit"):
        answer = await api.get("/api/v1/audit", params={name: "9" * 18})
        assert answer.status_code in (200, 400), answer.text


# -- 5. credentials on /api/v1, and one's own password ---------------------------------------------

async def test_api_refuses_registry_tokens_and_takes_management_tokens(registry: Registry) -> None:
    """A pull/push token from /token (or an anonymous one) is refused on /api/v1 with a challenge
    that names the scope to ask for; a token asked for with that scope works there and nowhere on
    /v2; a refresh token does not yield one (it renews registry access only)."""
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "alice", "team-a", "developer")
    alice = ("alice", "alice-password")
    pull = (await api.get("/token", params={"scope": PUSH_SCOPE, "offline_token": "true"}, auth=alice)).json()
    anonymous = (await api.get("/token", auth=None)).json()["token"]
    for token in (pull["token"], anonymous):
        for method, path, body in (("GET", "/api/v1/projects", None),
                                   ("PATCH", "/api/v1/users/alice", {"password": "taken-over-1"})):
            refused = await api.request(method, path, json=body, **bearer(token))
            assert error(refused)[:2] == (401, "UNAUTHORIZED"), refused.text
            assert f'scope="{API_SCOPE}"' in refused.headers["www-authenticate"]
            assert API_SCOPE in error(refused)[2]
    # The refused PATCH changed nothing.
    assert (await api.get("/token", auth=alice)).status_code == 200

    managed = await api.get("/token", params={"scope": [API_SCOPE, PUSH_SCOPE]}, auth=alice)
    assert managed.status_code == 200
    token = managed.json()["token"]
    listed = await api.get("/api/v1/projects", **bearer(token))
    assert listed.status_code == 200, listed.text
    assert [p["name"] for p in listed.json()] == ["team-a"]
    posted = await api.post("/token", auth=None, data={"grant_type": "password", "username": "alice",
                                                       "password": "alice-password", "scope": API_SCOPE})
    assert (await api.get("/api/v1/projects", **bearer(posted.json()["token"]))).status_code == 200
    # Anonymous callers and refresh tokens are not given the management scope.
    assert (await api.get("/api/v1/projects", **bearer(
        (await api.get("/token", params={"scope": API_SCOPE}, auth=None)).json()["token"]))).status_code == 401
    renewed = await api.post("/token", auth=None, data={"grant_type": "refresh_token",
                                                        "refresh_token": pull["refresh_token"], "scope": API_SCOPE})
    assert renewed.status_code == 200, renewed.text
    assert (await api.get("/api/v1/projects", **bearer(renewed.json()["token"]))).status_code == 401
    # Basic credentials still work, as before.
    async with client_as(registry, alice) as basic:
        assert (await basic.get("/api/v1/projects")).status_code == 200


async def test_changing_ones_own_password_needs_the_current_one(registry: Registry) -> None:
    """One's own password changes only with ``current_password`` (missing: 400, wrong: 403, and a
    wrong guess counts as a failed login); a system admin resets another user's without it, but
    not their own."""
    api = registry.client
    await add_user(api, "alice")
    async with client_as(registry, ("alice", "alice-password")) as alice:
        missing = await alice.patch("/api/v1/users/alice", json={"password": "alice-password-2"})
        assert error(missing)[:2] == (400, "INVALID_REQUEST")
        assert "current_password" in error(missing)[2]
        wrong = await alice.patch("/api/v1/users/alice", json={"password": "alice-password-2",
                                                               "current_password": "guess-guess"})
        assert error(wrong)[:2] == (403, "DENIED"), wrong.text
        assert "current_password" in error(wrong)[2]
        changed = await alice.patch("/api/v1/users/alice", json={"password": "alice-password-2",
                                                                 "current_password": "alice-password"})
        assert changed.status_code == 200, changed.text
    async with client_as(registry, ("alice", "alice-password-2")) as alice:
        assert (await alice.get("/api/v1/projects")).status_code == 200
    failed = (await api.get("/api/v1/audit", params={"user": "alice", "action": "login.failed"})).json()["events"]
    assert len(failed) == 1
    # The system admin resets alice's password without hers, but changes its own only with its own.
    assert (await api.patch("/api/v1/users/alice", json={"password": "reset-by-admin"})).status_code == 200
    own = await api.patch("/api/v1/users/admin", json={"password": "new-admin-password"})
    assert error(own)[:2] == (400, "INVALID_REQUEST")
    document = (await api.get("/api/v1/openapi.json")).json()
    schema = document["paths"]["/api/v1/users/{user}"]["patch"]["requestBody"]["content"]["application/json"]
    assert "current_password" in schema["schema"]["properties"]


# -- 6. the access log ----------------------------------------------------------------------------

async def test_api_and_token_requests_are_logged_with_their_caller(tmp_path: Path, database_url: str) -> None:
    """Every /api/v1 and /token request's access-log line names its caller, as /v2's do; a refused
    login names nobody."""
    config = make_config(tmp_path, database_url)
    config = dataclasses.replace(config, log=dataclasses.replace(config.log, access_log=True))
    async with open_registry(config) as registry:
        registry.parts.access_log.stream = stream = io.StringIO()
        await _log_some_requests(registry)
        registry.parts.access_log.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["method"], line["path"], line["status"], line["user"]) for line in lines] == [
        ("POST", "/api/v1/users", 201, "admin"),
        ("GET", "/api/v1/projects", 200, "alice"),
        ("GET", "/token", 200, "alice"),
        ("GET", "/token", 401, None),
        ("GET", "/v2/", 200, "admin"),
    ]


async def _log_some_requests(registry: Registry) -> None:
    api = registry.client
    await add_user(api, "alice")
    async with client_as(registry, ("alice", "alice-password")) as alice:
        assert (await alice.get("/api/v1/projects")).status_code == 200
        assert (await alice.get("/token")).status_code == 200
    assert (await api.get("/token", auth=("alice", "wrong-password"))).status_code == 401
    assert (await api.get("/v2/")).status_code == 200


async def test_concurrent_failed_logins_for_one_user_are_counted_without_a_500(tmp_path: Path,
                                                                              database_url: str) -> None:
    """Twelve wrong passwords for the same user at once (under the lockout limit): each is a 401,
    never a 500. On PostgreSQL two transactions that both found no failure window used
    to insert the same key and one failed on the primary key (found by the memory soak)."""
    config = make_config(tmp_path, database_url, auth={"login_failure_limit": 100})
    async with open_registry(config) as registry:
        async with client_as(registry, ("admin", "not-the-password")) as wrong:
            answers = await asyncio.gather(*(wrong.get("/v2/") for _ in range(12)))
        assert sorted({a.status_code for a in answers}) == [401], [a.text for a in answers if a.status_code != 401]
