"""Deleting whole repositories (``DELETE /api/v1/repositories/{name}``) and projects: who may,
what is refused, and that GC then frees exactly what only that repository held."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from dockyard.store import policies
from dockyard.store.schema import events, projects
from tests.integration.conftest import Registry, client_as
from tests.support.collection import collect, pulls_completely, stored
from tests.support.content import error_codes, make_image, push_blob, push_image, sha256


async def add_project(api: httpx.AsyncClient, name: str, *, public: bool = False) -> None:
    answer = await api.post("/api/v1/projects", json={"name": name, "public": public})
    assert answer.status_code == 201, answer.text


async def add_user(api: httpx.AsyncClient, name: str, project: str, role: str | None) -> tuple[str, str]:
    login = (name, f"{name}-password")
    assert (await api.post("/api/v1/users", json={"name": name, "password": login[1]})).status_code == 201
    if role is not None:
        granted = await api.put(f"/api/v1/projects/{project}/members/{name}", json={"role": role})
        assert granted.status_code == 200, granted.text
    return login


async def test_a_deleted_repository_is_gone_and_gc_frees_what_only_it_held(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team")
    image, shared = make_image(), make_image()
    await push_image(api, "team/app", image, "v1")
    await push_image(api, "team/app", shared, "shared")
    await push_image(api, "team/other", shared, "v1")
    await push_blob(api, "team/app", b"an unused upload")

    assert (await api.delete("/api/v1/repositories/team/app")).status_code == 204
    assert (await api.get("/v2/team/app/tags/list")).status_code == 404
    assert (await api.get(f"/v2/team/app/manifests/{image.digest}")).status_code == 404
    assert (await api.delete("/api/v1/repositories/team/app")).status_code == 404
    async with registry.parts.db.read() as conn:
        [detail] = (await conn.execute(sa.select(events.c.detail).where(
            events.c.name == "repository.deleted", events.c.repository == "team/app"))).scalars().all()
    assert detail == {"tags": 2, "manifests": 2, "blobs": 7}

    report = await collect(registry.parts)
    assert report.manifests_deleted == 0  # their rows went with the repository
    assert sorted(report.blobs) == sorted([*map(sha256, image.blobs), sha256(b"an unused upload")])
    assert report.bytes_freed == sum(map(len, image.blobs)) + len(b"an unused upload")
    assert all([await stored(registry.parts, sha256(blob)) for blob in shared.blobs])
    await pulls_completely(api, "team/other", "v1")


async def test_maintainers_may_delete_a_repository_developers_not_outsiders_see_nothing(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team")
    await push_image(api, "team/app", make_image(), "v1")
    developer = await add_user(api, "dev", "team", "developer")
    outsider = await add_user(api, "out", "team", None)
    maintainer = await add_user(api, "maint", "team", "maintainer")

    async with client_as(registry, outsider) as client:
        hidden = await client.delete("/api/v1/repositories/team/app")
        missing = await client.delete("/api/v1/repositories/team/none")
        assert (hidden.status_code, error_codes(hidden)) == (missing.status_code, error_codes(missing))
        assert (hidden.status_code, hidden.json()["errors"][0]["message"]) == (404, "repository 'team/app' not found")
    async with client_as(registry, developer) as client:
        refused = await client.delete("/api/v1/repositories/team/app")
        assert (refused.status_code, error_codes(refused)) == (403, ["DENIED"])
        assert "maintainer" in refused.json()["errors"][0]["message"]
    async with client_as(registry, maintainer) as client:
        assert (await client.delete("/api/v1/repositories/team/app")).status_code == 204
    assert (await api.get("/v2/team/app/tags/list")).status_code == 404


async def test_a_repository_with_an_immutable_tag_is_not_deleted(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team")
    await push_image(api, "team/app", make_image(), "v1.0.0")
    async with registry.parts.db.write() as conn:
        project_id = await conn.scalar(sa.select(projects.c.id).where(projects.c.name == "team"))
        await policies.add_immutable_rule(conn, project_id, "*", "v*", "admin")
    refused = await api.delete("/api/v1/repositories/team/app")
    assert (refused.status_code, error_codes(refused)) == (403, ["DENIED"])
    message = refused.json()["errors"][0]["message"]
    assert "immutable rule #" in message
    assert "'v*'" in message
    assert (await api.get("/v2/team/app/tags/list")).status_code == 200


async def test_a_project_with_repositories_is_not_deleted(registry: Registry) -> None:
    api = registry.client
    await add_project(api, "team")
    await add_project(api, "team_x")  # "_" is no wildcard: team_x's repositories are not team's
    await push_image(api, "team_x/app", make_image(), "v1")
    await push_image(api, "team/app", make_image(), "v1")
    refused = await api.delete("/api/v1/projects/team")
    assert (refused.status_code, error_codes(refused)) == (409, ["CONFLICT"])
    assert "dockyard repo delete" in refused.json()["errors"][0]["message"]
    assert (await api.delete("/api/v1/repositories/team/app")).status_code == 204
    assert (await api.delete("/api/v1/projects/team")).status_code == 204


async def test_bad_repository_names_are_answered_not_found(registry: Registry) -> None:
    for name in ("Team/App", "team//app", "a" * 300, "team/app/", "%00"):
        answer = await registry.client.delete(f"/api/v1/repositories/{name}")
        assert answer.status_code == 404, (name, answer.text)
