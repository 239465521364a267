"""``/api/v1`` end to end on the real app: accounts, projects, teams, members, robots, the audit log
and the OpenAPI document that describes it all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from dockyard.app import flush_pulls
from dockyard.http.management import ALL_OPERATIONS as OPERATIONS
from tests.integration.conftest import Registry, client_as
from tests.support.content import make_image, push_image


async def add_project(api: httpx.AsyncClient, name: str) -> None:
    assert (await api.post("/api/v1/projects", json={"name": name})).status_code == 201


async def add_user(api: httpx.AsyncClient, name: str, project: str | None = None, role: str | None = None
                   ) -> tuple[str, str]:
    """The user ``name`` (password ``<name>-password``), holding ``role`` in ``project`` when given."""
    login = (name, f"{name}-password")
    created = await api.post("/api/v1/users", json={"name": name, "password": login[1]})
    assert created.status_code == 201, created.text
    if role is not None:
        granted = await api.put(f"/api/v1/projects/{project}/members/{name}", json={"role": role})
        assert granted.status_code == 200, granted.text
    return login


async def test_openapi_document_lists_every_operation(registry: Registry) -> None:
    document = (await registry.client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    listed = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert listed == {(op.method, op.path.replace(":path}", "}")) for op in OPERATIONS}
    assert {op["operationId"] for item in document["paths"].values() for op in item.values()} == {
        op.name for op in OPERATIONS}


async def test_the_api_needs_a_login(registry: Registry) -> None:
    response = await registry.client.get("/api/v1/projects", auth=None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer realm=")
    # A token does, if it was asked for with the management API's scope (and a password).
    token = (await registry.client.get("/token", params={"scope": "management:api:*"})).json()["token"]
    with_token = await registry.client.get("/api/v1/projects", auth=None, headers={"Authorization": f"Bearer {token}"})
    assert with_token.status_code == 200
    anonymous = (await registry.client.get("/token", auth=None, params={"scope": "management:api:*"})).json()["token"]
    refused = await registry.client.get("/api/v1/projects", auth=None, headers={"Authorization": f"Bearer {anonymous}"})
    assert refused.status_code == 401


async def test_accounts_projects_teams_and_members(registry: Registry) -> None:
    api = registry.client
    created = await api.post("/api/v1/users", json={"name": "alice", "password": "alice-password"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "alice"
    assert "password" not in created.text
    assert (await api.post("/api/v1/users", json={"name": "alice", "password": "alice-password"})).status_code == 409
    assert (await api.post("/api/v1/users", json={"name": "Bad Name", "password": "xxxxxxxx"})).status_code == 400
    assert (await api.post("/api/v1/users", json={"name": "bob", "password": "short"})).status_code == 400
    assert (await api.post("/api/v1/users", json={"name": "bob"})).status_code == 400
    assert (await api.post("/api/v1/users", json={"name": "bob", "password": "x" * 9, "extra": 1})).status_code == 400
    assert (await api.post("/api/v1/users", content=b"[1]")).status_code == 400
    assert (await api.post("/api/v1/users", json={"name": "bob", "password": "bob-password"})).status_code == 201

    assert (await api.post("/api/v1/projects", json={"name": "team-a"})).status_code == 201
    assert (await api.post("/api/v1/projects", json={"name": "shared", "public": True})).status_code == 201
    assert (await api.post("/api/v1/projects/team-a/teams", json={"name": "devs"})).status_code == 201
    assert (await api.put("/api/v1/projects/team-a/teams/devs/members/alice")).status_code == 204
    granted = await api.put("/api/v1/projects/team-a/members/devs", json={"role": "developer"})
    assert granted.json() == {"kind": "team", "name": "team-a/devs", "role": "developer"}
    shared = await api.put("/api/v1/projects/shared/members/team-a%2Fdevs", json={"role": "guest"})
    assert shared.status_code == 200, shared.text
    assert (await api.put("/api/v1/projects/team-a/members/bob", json={"role": "maintainer"})).status_code == 200
    assert (await api.put("/api/v1/projects/team-a/members/bob", json={"role": "owner"})).status_code == 400
    members = (await api.get("/api/v1/projects/team-a/members")).json()
    assert members == [{"kind": "team", "name": "team-a/devs", "role": "developer"},
                       {"kind": "user", "name": "bob", "role": "maintainer"}]
    teams = (await api.get("/api/v1/projects/team-a/teams")).json()
    assert teams == [{"name": "devs", "members": ["alice"]}]

    async with client_as(registry, ("alice", "alice-password")) as alice:
        # alice sees the projects she holds a role in (through her team) and the public one.
        assert [p["name"] for p in (await alice.get("/api/v1/projects")).json()] == ["shared", "team-a"]
        # A developer may not manage members, nor create users.
        assert (await alice.get("/api/v1/projects/team-a/members")).status_code == 403
        assert (await alice.post("/api/v1/users", json={"name": "eve", "password": "eve-password"})).status_code == 403
        # Her own password she may change, giving the current one.
        changed = await alice.patch("/api/v1/users/alice", json={"password": "alice-password-2",
                                                                 "current_password": "alice-password"})
        assert changed.status_code == 200
    async with client_as(registry, ("bob", "bob-password")) as bob:
        # A maintainer manages robots but not members; a private project bob has no role in does not exist.
        assert (await bob.get("/api/v1/projects/team-a/robots")).status_code == 200
        assert (await bob.put("/api/v1/projects/team-a/members/alice", json={"role": "admin"})).status_code == 403
        # The project must exist, or "hidden" and "missing" below would be the same request.
        assert (await api.post("/api/v1/projects", json={"name": "secret"})).status_code == 201
        hidden = await bob.get("/api/v1/projects/secret")
        missing = await bob.get("/api/v1/projects/no-such-project")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["errors"][0]["code"] == missing.json()["errors"][0]["code"] == "NOT_FOUND"

    assert (await api.delete("/api/v1/projects/team-a/members/bob")).status_code == 204
    assert (await api.delete("/api/v1/projects/team-a/members/bob")).status_code == 404
    assert (await api.delete("/api/v1/projects/team-a/teams/devs/members/alice")).status_code == 204
    assert (await api.delete("/api/v1/projects/team-a/teams/devs")).status_code == 204
    assert (await api.get("/api/v1/projects/team-a/members")).json() == []


async def test_robots_are_shown_once_rotated_revoked_and_bounded_by_their_creator(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "maint", "team-a", "maintainer")
    async with client_as(registry, ("maint", "maint-password")) as maint:
        made = await maint.post("/api/v1/projects/team-a/robots", json={
            "name": "ci", "permissions": ["pull", "push"], "repositories": ["api/*"], "expires": "30d"})
        assert made.status_code == 201, made.text
        robot = made.json()
        assert robot["name"] == "robot+team-a+ci"
        assert len(robot["secret"]) >= 40
        expires = datetime.fromisoformat(robot["expires_at"])
        assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
        listed = (await maint.get("/api/v1/projects/team-a/robots")).json()
        assert listed[0]["repositories"] == ["team-a/api/*"]
        assert robot["secret"] not in str(listed)
        # A maintainer cannot mint a robot holding more than a maintainer holds... delete is fine here,
        await add_user(api, "dev", "team-a", "developer")
    async with client_as(registry, ("dev", "dev-password")) as dev:
        # ...and a developer may not create robots at all.
        refused = await dev.post("/api/v1/projects/team-a/robots", json={
            "name": "mine", "permissions": ["pull"], "repositories": ["*"]})
        assert refused.status_code == 403
    # Only a system admin makes system-wide robots.
    assert (await api.post("/api/v1/robots", json={"name": "mirror", "permissions": ["pull"],
                                                   "repositories": ["*"]})).status_code == 201
    bad = await api.post("/api/v1/projects/team-a/robots", json={"name": "x", "permissions": ["admin"],
                                                                 "repositories": ["*"]})
    assert bad.status_code == 400

    login, secret = robot["name"], robot["secret"]
    async with client_as(registry, (login, secret)) as ci:
        image = make_image()
        await push_image(ci, "team-a/api/web", image, "v1")
        assert (await ci.get("/v2/team-a/other/tags/list")).status_code == 401
    rotated = (await api.post(f"/api/v1/robots/{login}/rotate")).json()
    assert rotated["secret"] != secret
    async with client_as(registry, (login, secret)) as old, client_as(registry, (login, rotated["secret"])) as new:
        assert (await old.get("/v2/team-a/api/web/tags/list")).status_code == 401
        assert (await new.get("/v2/team-a/api/web/tags/list")).status_code == 200
    assert (await api.post(f"/api/v1/robots/{login}/revoke")).status_code == 204
    async with client_as(registry, (login, rotated["secret"])) as revoked:
        assert (await revoked.get("/v2/team-a/api/web/tags/list")).status_code == 401
    assert (await api.delete(f"/api/v1/robots/{login}")).status_code == 204
    assert (await api.post(f"/api/v1/robots/{login}/rotate")).status_code == 404


async def test_robot_rights_shrink_with_their_creators(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "lead", "team-a", "maintainer")
    async with client_as(registry, ("lead", "lead-password")) as lead:
        robot = (await lead.post("/api/v1/projects/team-a/robots", json={
            "name": "deploy", "permissions": ["pull"], "repositories": ["*"]})).json()
    await push_image(api, "team-a/app", make_image(), "v1")
    async with client_as(registry, (robot["name"], robot["secret"])) as deploy:
        assert (await deploy.get("/v2/team-a/app/tags/list")).status_code == 200
        assert (await api.delete("/api/v1/projects/team-a/members/lead")).status_code == 204
        assert (await deploy.get("/v2/team-a/app/tags/list")).status_code == 401


async def test_audit_log_records_and_filters(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "alice", "team-a", "maintainer")
    started = datetime.now(UTC)
    async with client_as(registry, ("alice", "alice-password")) as alice:
        image = make_image()
        await push_image(alice, "team-a/app", image, "v1")
        assert (await alice.get("/v2/team-a/app/manifests/v1")).status_code == 200
        assert (await alice.get("/v2/team-a/app/manifests/v1")).status_code == 200
        assert (await alice.head("/v2/team-a/app/manifests/v1")).status_code == 200  # a HEAD is no pull
        assert (await alice.delete(f"/v2/team-a/app/manifests/{image.digest}")).status_code == 202
    assert (await registry.client.get("/token", auth=("alice", "not-her-password"))).status_code == 401
    await flush_pulls(registry.parts)  # pulls are written in batches, about once a second

    def actions(found: httpx.Response) -> list[str]:
        assert found.status_code == 200, found.text
        return [e["action"] for e in found.json()["events"]]

    by_alice = actions(await api.get("/api/v1/audit", params={"user": "alice"}))
    assert {"blob.pushed", "manifest.pushed", "manifest.pulled", "manifest.deleted", "login.failed"} <= set(by_alice)
    repo = (await api.get("/api/v1/audit", params={"repository": "team-a/app", "action": "manifest.pulled"})).json()
    assert [(e["actor"], e["repository"], e["digest"]) for e in repo["events"]] == [
        ("alice", "team-a/app", image.digest)]
    assert repo["events"][0]["address"] == "127.0.0.1"
    # The same pull by the same caller in one batch is one row that counts them.
    assert repo["events"][0]["detail"] == {"reference": "v1", "count": 2}
    changes = actions(await api.get("/api/v1/audit", params={"project": "team-a", "action": "member.*"}))
    assert changes == ["member.set"]
    logins = actions(await api.get("/api/v1/audit", params={"action": "login.*", "since": started.isoformat()}))
    assert "login.failed" in logins
    assert actions(await api.get("/api/v1/audit", params={"until": started.isoformat(), "user": "alice"})) == []
    page = (await api.get("/api/v1/audit", params={"limit": "2"})).json()
    older = (await api.get("/api/v1/audit", params={"limit": "2", "before": page["next_before"]})).json()
    assert len(page["events"]) == 2
    assert all(e["id"] < page["next_before"] for e in older["events"])
    assert (await api.get("/api/v1/audit", params={"since": "yesterday"})).status_code == 400
    assert (await api.get("/api/v1/audit", params={"limit": "0"})).status_code == 400
    # A maintainer sees the audit log of their project only.
    async with client_as(registry, ("alice", "alice-password")) as alice:
        own = await alice.get("/api/v1/audit")
        assert own.status_code == 200
        assert {e["project"] for e in own.json()["events"]} <= {"team-a"}
        assert (await alice.get("/api/v1/audit", params={"project": "elsewhere"})).status_code == 404


async def test_disabling_a_user_takes_effect_on_the_next_request(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "carol", "team-a", "developer")
    token = (await registry.client.get("/token", params={"scope": "repository:team-a/app:pull"},
                                       auth=("carol", "carol-password"))).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await registry.client.get("/v2/team-a/app/tags/list", auth=None, headers=bearer)).status_code == 404
    assert (await api.patch("/api/v1/users/carol", json={"disabled": True})).json()["disabled"] is True
    refused = await registry.client.get("/v2/team-a/app/tags/list", auth=None, headers=bearer)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    async with client_as(registry, ("carol", "carol-password")) as carol:
        assert (await carol.get("/v2/")).status_code == 401
    assert (await api.patch("/api/v1/users/carol", json={"disabled": False})).json()["disabled"] is False
    assert (await registry.client.get("/v2/team-a/app/tags/list", auth=None, headers=bearer)).status_code == 404


async def test_concurrent_member_changes_leave_one_role(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "dana")
    roles = ["guest", "developer", "maintainer", "admin"] * 3
    answers = await asyncio.gather(*(api.put("/api/v1/projects/team-a/members/dana", json={"role": r})
                                     for r in roles))
    assert [a.status_code for a in answers] == [200] * len(roles), [a.text for a in answers]
    members = (await api.get("/api/v1/projects/team-a/members")).json()
    assert len(members) == 1
    assert members[0]["role"] in roles
    # The role left is the one some request reported last setting, not a mixture.
    assert members[0] in [a.json() for a in answers]


async def test_only_system_admins_make_system_wide_robots_and_keys(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "lead", "team-a", "admin")
    body = {"name": "mirror", "permissions": ["pull"], "repositories": ["*"]}
    async with client_as(registry, ("lead", "lead-password")) as lead:
        refused = await lead.post("/api/v1/robots", json=body)
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["code"] == "DENIED"
        assert (await lead.get("/api/v1/robots")).status_code == 403
        assert (await lead.post("/api/v1/keys/rotate")).status_code == 403
    assert (await api.post("/api/v1/robots", json=body)).status_code == 201


async def test_a_refused_change_records_no_event(registry: Registry) -> None:
    """Events are written in the change's own transaction: a change that fails leaves none."""
    api = registry.client
    await add_project(api, "team-a")
    image = make_image()
    before = (await api.get("/api/v1/audit", params={"limit": "1000"})).json()["events"]
    # The manifest's blobs were never pushed: refused, and no manifest.pushed.
    refused = await api.put("/v2/team-a/app/manifests/v1", content=image.manifest,
                            headers={"Content-Type": image.media_type})
    assert refused.status_code == 400
    assert (await api.put("/api/v1/projects/team-a/members/nobody", json={"role": "guest"})).status_code == 404
    after = (await api.get("/api/v1/audit", params={"limit": "1000"})).json()["events"]
    assert after == before


async def test_audit_records_logins_tokens_and_key_rotations(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_user(api, "alice", "team-a", "developer")
    issued = await api.get("/token", params={"scope": "repository:team-a/app:pull"}, auth=("alice", "alice-password"))
    assert issued.status_code == 200
    rotated = await api.post("/api/v1/keys/rotate")
    assert rotated.status_code == 200
    found = (await api.get("/api/v1/audit", params={"user": "alice"})).json()["events"]
    by_action = {e["action"]: e for e in found}
    assert by_action["login.succeeded"]["detail"] == {"target": "alice"}
    assert by_action["token.issued"]["detail"]["scopes"] == ["repository:team-a/app:pull"]
    keys = (await api.get("/api/v1/audit", params={"action": "key.rotated"})).json()["events"]
    assert [e["detail"]["target"] for e in keys] == [rotated.json()["kid"]]
    assert keys[0]["actor"] == "admin"
