"""Project policies through ``/api/v1`` on the real app (SQLite and PostgreSQL): retention, immutable
tags, naming rules and quotas, who may read and change them, the checks on their values, and the
audit event every change records."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dockyard.http.api_policies import OPERATIONS as POLICY_OPERATIONS
from tests.integration.conftest import Registry, client_as
from tests.integration.test_api import add_project, add_user

P = "/api/v1/projects/team-a"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def refused(response: httpx.Response, status: int, code: str, *says: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["code"] == code, error
    for text in says:
        assert text in error["message"], error


async def events_of(api: httpx.AsyncClient, action: str = "policy.*") -> list[dict[str, Any]]:
    found = ok(await api.get("/api/v1/audit", params={"project": "team-a", "action": action}))
    return list(reversed(found["events"]))  # oldest first


async def test_openapi_lists_the_policy_operations(registry: Registry) -> None:
    document = ok(await registry.client.get("/api/v1/openapi.json"))
    listed = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert {(op.method, op.path) for op in POLICY_OPERATIONS} <= listed
    assert ("PUT", f"{P.replace('team-a', '{project}')}/retention") in listed
    quota = document["paths"]["/api/v1/projects/{project}/quota"]["put"]["requestBody"]["content"]
    assert quota["application/json"]["schema"]["properties"]["quota"] == {"type": ["string", "integer", "null"]}
    retention = document["paths"]["/api/v1/projects/{project}/retention"]["put"]["requestBody"]["content"]
    assert retention["application/json"]["schema"]["properties"]["keep_last"] == {"type": "integer"}


async def test_policies_round_trip_with_an_audit_event_for_each_change(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    empty = ok(await api.get(f"{P}/policies"))
    assert empty == {"project": "team-a", "quota": None, "quota_size": None,
                     "naming": {"repository": None, "tag": None}, "retention": [], "immutable": []}

    set_ = ok(await api.put(f"{P}/retention", json={"keep_last": 10, "untagged_days": 7, "schedule": "0 3 * * *"}))
    assert set_ == {"repository": "*", "keep_last": 10, "keep_days": None, "keep_pulled_days": None,
                    "keep_tags": None, "keep_tags_invert": False, "untagged_days": 7, "schedule": "0 3 * * *"}
    ok(await api.put(f"{P}/retention", json={"repository": "api/*", "keep_tags": "^v", "keep_tags_invert": True,
                                             "keep_days": 30, "keep_pulled_days": 14}))
    ok(await api.put(f"{P}/retention", json={"keep_last": 5, "untagged_days": 7, "schedule": "0 3 * * *"}))
    ok(await api.put(f"{P}/retention", json={"keep_last": 5, "untagged_days": 7, "schedule": "0 3 * * *"}))  # same
    rule = ok(await api.post(f"{P}/immutable", json={"repository": "api/*", "tag": "v*"}), 201)
    assert (rule["repository"], rule["tag"], rule["created_by"]) == ("api/*", "v*", "admin")
    release = ok(await api.post(f"{P}/immutable", json={"tag": "release-*"}), 201)
    assert release["repository"] == "*"
    refused(await api.post(f"{P}/immutable", json={"repository": "api/*", "tag": "v*"}), 409, "CONFLICT", "already")
    naming = ok(await api.put(f"{P}/naming", json={"repository": r"^(api|web)(/[a-z0-9-]+)?$"}))
    assert naming == {"repository": r"^(api|web)(/[a-z0-9-]+)?$", "tag": None}
    naming = ok(await api.put(f"{P}/naming", json={"tag": r"^v\d+$"}))  # the repository rule stays
    assert naming == {"repository": r"^(api|web)(/[a-z0-9-]+)?$", "tag": r"^v\d+$"}
    assert ok(await api.put(f"{P}/quota", json={"quota": "10GiB"})) == {"quota": 10 * 2**30, "quota_size": "10.0 GiB"}

    policy = ok(await api.get(f"{P}/policies"))
    assert policy["quota"] == 10 * 2**30
    assert [(p["repository"], p["keep_last"], p["keep_tags_invert"]) for p in policy["retention"]] == [
        ("*", 5, False), ("api/*", None, True)]
    assert [(r["id"], r["repository"], r["tag"]) for r in policy["immutable"]] == [
        (rule["id"], "api/*", "v*"), (release["id"], "*", "release-*")]
    assert ok(await api.get(f"{P}/immutable")) == policy["immutable"]

    assert ok(await api.delete(f"{P}/immutable/{rule['id']}"), 204) is None
    refused(await api.delete(f"{P}/immutable/{rule['id']}"), 404, "NOT_FOUND", f"#{rule['id']}")
    ok(await api.delete(f"{P}/retention", params={"repository": "api/*"}), 204)
    refused(await api.delete(f"{P}/retention", params={"repository": "api/*"}), 404, "NOT_FOUND", "api/*")
    cleared = ok(await api.put(f"{P}/naming", json={"repository": None, "tag": None}))
    assert cleared == {"repository": None, "tag": None}
    assert ok(await api.put(f"{P}/quota", json={"quota": None}))["quota"] is None
    assert ok(await api.put(f"{P}/quota", json={"quota": 1048576}))["quota_size"] == "1.0 MiB"

    found = await events_of(api)
    assert [(e["action"], e["detail"].get("target")) for e in found] == [
        ("policy.retention.set", "*"), ("policy.retention.set", "api/*"), ("policy.retention.set", "*"),
        ("policy.immutable.added", "api/*:v*"), ("policy.immutable.added", "*:release-*"),
        ("policy.naming.set", None), ("policy.naming.set", None), ("policy.quota.set", None),
        ("policy.immutable.deleted", "api/*:v*"), ("policy.retention.deleted", "api/*"),
        ("policy.naming.set", None), ("policy.quota.set", None), ("policy.quota.set", None)]
    assert all(e["actor"] == "admin" for e in found)
    assert found[2]["detail"]["old"]["keep_last"] == 10
    assert found[2]["detail"]["new"]["keep_last"] == 5
    assert found[7]["detail"] == {"old": None, "new": 10 * 2**30}
    assert found[8]["detail"] == {"id": rule["id"], "old": {"repository": "api/*", "tag": "v*"}, "new": None,
                                  "target": "api/*:v*"}
    assert found[10]["detail"]["old"] == {"repository": r"^(api|web)(/[a-z0-9-]+)?$", "tag": r"^v\d+$"}


@pytest.mark.parametrize(("path", "body", "field", "says"), [
    ("retention", {"keep_last": -1}, "keep_last", "from 0 to 1000000"),
    ("retention", {"keep_days": 2**40}, "keep_days", "from 0 to 36500"),
    ("retention", {"keep_last": 2**70}, "keep_last", "from 0 to 1000000"),
    ("retention", {"keep_last": True}, "keep_last", "an integer"),
    ("retention", {"keep_last": "10"}, "keep_last", "an integer"),
    ("retention", {"keep_days": 1.5}, "keep_days", "an integer"),
    ("retention", {"keep_tags": "(unclosed"}, "keep_tags", "not a valid regular expression"),
    ("retention", {"keep_tags": "a{4294967296}"}, "keep_tags", "not a valid regular expression"),
    ("retention", {"keep_last": 3, "schedule": "every day"}, "schedule", "five fields"),
    ("retention", {"keep_last": 3, "repository": ""}, "repository", "1 to 255 characters"),
    ("retention", {"keep_last": 3, "repository": "a" * 256}, "repository", "1 to 255 characters"),
    ("retention", {"keep_tags_invert": True, "keep_last": 3}, "keep_tags_invert", "give keep_tags too"),
    ("retention", {"schedule": "0 3 * * *"}, "keep_last", "needs at least one rule"),
    ("retention", {"keep_last": 3, "keep_everything": True}, "keep_everything", "unknown field"),
    ("naming", {"repository": "(api"}, "naming.repository", "not a valid regular expression"),
    ("naming", {"tag": "x" * 513}, "naming.tag", "1 to 512 characters"),
    ("naming", {"tag": 5}, "tag", "a string"),
    ("naming", {}, "repository", "repository and/or tag"),
    ("quota", {"quota": "lots"}, "quota", "500MiB, 10GiB"),
    ("quota", {"quota": -1}, "quota", "from 0 to"),
    ("quota", {"quota": 2**63}, "quota", "from 0 to"),
    ("quota", {"quota": "99999PiB"}, "quota", "too large"),
    ("quota", {"quota": "9" * 70}, "quota", "not a size"),
    ("quota", {"quota": False}, "quota", "a string or an integer"),
    ("quota", {}, None, "missing field(s): quota"),
])
async def test_bad_values_are_400_naming_the_field(registry: Registry, path: str, body: dict[str, Any],
                                                   field: str | None, says: str) -> None:
    await add_project(registry.client, "team-a")
    response = await registry.client.put(f"{P}/{path}", json=body)
    refused(response, 400, "INVALID_REQUEST", says)
    if field is not None:
        error = response.json()["errors"][0]
        assert field in error["message"] or error["detail"] == {"field": field}, error
    assert await events_of(registry.client) == []


async def test_bad_immutable_rules_and_ids(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    refused(await api.post(f"{P}/immutable", json={"repository": "*"}), 400, "INVALID_REQUEST", "tag")
    refused(await api.post(f"{P}/immutable", json={"tag": "v\x00"}), 400, "INVALID_REQUEST", "tag must be 1 to 255")
    for bad in ("x", "-1", "99999999999999999999", "1.5"):
        refused(await api.delete(f"{P}/immutable/{bad}"), 404, "NOT_FOUND")
    refused(await api.get("/api/v1/projects/nowhere/policies"), 404, "NOT_FOUND", "nowhere")
    refused(await api.put("/api/v1/projects/nowhere/quota", json={"quota": "1GiB"}), 404, "NOT_FOUND")


async def test_who_may_read_and_change_policies(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team-a")
    await add_project(api, "other")
    ok(await api.post("/api/v1/projects", json={"name": "open", "public": True}), 201)
    roles = {"guest": "guest", "dev": "developer", "maint": "maintainer", "padmin": "admin"}
    for name, role in roles.items():
        await add_user(api, name, "team-a", role)
    await add_user(api, "stranger")
    changes = [("PUT", f"{P}/retention", {"keep_last": 3}), ("POST", f"{P}/immutable", {"tag": "v*"}),
               ("PUT", f"{P}/naming", {"tag": "^v"})]

    async with client_as(registry, ("stranger", "stranger-password")) as stranger:
        for method, path, body in [("GET", f"{P}/policies", None), ("GET", f"{P}/immutable", None), *changes,
                                   ("PUT", f"{P}/quota", {"quota": "1GiB"}), ("DELETE", f"{P}/immutable/1", None)]:
            refused(await stranger.request(method, path, json=body), 404, "NOT_FOUND", "team-a")
        # A public project's policies are there for anyone to read, not to change.
        assert ok(await stranger.get("/api/v1/projects/open/policies"))["retention"] == []
        refused(await stranger.put("/api/v1/projects/open/naming", json={"tag": "^v"}), 403, "DENIED")
    for name in ("guest", "dev"):
        async with client_as(registry, (name, f"{name}-password")) as member:
            assert ok(await member.get(f"{P}/policies"))["project"] == "team-a"
            for method, path, body in changes:
                refused(await member.request(method, path, json=body), 403, "DENIED", "maintainer or admin role")
    for name in ("maint", "padmin"):
        async with client_as(registry, (name, f"{name}-password")) as manager:
            ok(await manager.put(f"{P}/retention", json={"keep_last": 3, "repository": name}))
            rule = ok(await manager.post(f"{P}/immutable", json={"tag": f"{name}-*"}), 201)
            ok(await manager.put(f"{P}/naming", json={"tag": "^v"}))
            ok(await manager.delete(f"{P}/immutable/{rule['id']}"), 204)
            # The quota limits what the project's own admins may store: only a system admin sets it.
            refused(await manager.put(f"{P}/quota", json={"quota": "1TiB"}), 403, "DENIED", "system admin")
            refused(await manager.put("/api/v1/projects/other/naming", json={"tag": "^v"}), 404, "NOT_FOUND")
    ok(await api.put(f"{P}/quota", json={"quota": "1TiB"}))
    actors = [(e["action"], e["actor"]) for e in await events_of(api)]
    assert actors == [("policy.retention.set", "maint"), ("policy.immutable.added", "maint"),
                      ("policy.naming.set", "maint"), ("policy.immutable.deleted", "maint"),
                      ("policy.retention.set", "padmin"), ("policy.immutable.added", "padmin"),
                      ("policy.immutable.deleted", "padmin"), ("policy.quota.set", "admin")]
    # A maintainer sees the project's policy changes in the audit log.
    async with client_as(registry, ("maint", "maint-password")) as maint:
        seen = ok(await maint.get("/api/v1/audit", params={"project": "team-a", "action": "policy.*"}))
        assert len(seen["events"]) == len(actors)


async def test_a_policy_file_is_applied_with_the_callers_rights(registry: Registry) -> None:
    """``PolicyService.apply`` (what `dockyard policy apply` calls) checks every project's rights
    before it changes anything: a maintainer may apply rules but not a quota, a developer nothing."""
    from dockyard import events
    from dockyard.auth.principals import Principal
    from dockyard.errors import Denied, ResourceUnknown
    from dockyard.policy.document import parse_document
    from dockyard.services.policies import PolicyService
    from dockyard.store import accounts

    api = registry.client
    for name in ("team-a", "team-b"):
        await add_project(api, name)
    await add_user(api, "maint", "team-a", "maintainer")
    ok(await api.put("/api/v1/projects/team-b/members/maint", json={"role": "developer"}))
    async with registry.parts.db.read() as conn:
        user = await accounts.find_user(conn, "maint")
    assert user is not None
    maint = Principal("user", "maint", user.id)
    events.CURRENT_ACTOR.set(events.Actor("maint", "test"))  # as the CLI and the API set it
    service = PolicyService(registry.parts.db, registry.parts.access)
    rules = "[[projects.team-a.immutable]]\ntag = 'v*'\n"

    for text, error, says in [
        (f"[projects.team-a]\nquota = '1GiB'\n{rules}", Denied, "only a system admin may set a project's quota"),
        (f"{rules}[projects.team-b]\nnaming = {{ tag = '^v' }}\n", Denied, "maintainer or admin role"),
        (f"{rules}[projects.team-c]\n", ResourceUnknown, "does not create projects"),
    ]:
        with pytest.raises(error, match=says):
            await service.apply(maint, parse_document(text))
    assert await events_of(api) == []
    applied = await service.apply(maint, parse_document(f"[projects.team-a]\n{rules}[projects.team-b]\n"))
    assert [c.line() for c in applied] == ["+ team-a immutable '*:v*'"]
    assert [(e["action"], e["actor"]) for e in await events_of(api)] == [("policy.immutable.added", "maint")]


async def test_retention_policies_are_listed_by_glob_in_code_point_order(registry: Registry) -> None:
    """The same order on every backend, whatever PostgreSQL's collation (which may skip punctuation)."""
    api = registry.client
    await add_project(api, "team-a")
    for glob in ("x/*", "_tmp/*", "a/*", "*"):
        ok(await api.put(f"{P}/retention", json={"repository": glob, "keep_last": 1}))
    listed = [p["repository"] for p in ok(await api.get(f"{P}/policies"))["retention"]]
    assert listed == ["*", "_tmp/*", "a/*", "x/*"]
