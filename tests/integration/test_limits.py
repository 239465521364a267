"""Every length the schema limits is refused at the edge with a 4xx, the same on SQLite (which ignores
declared lengths) and PostgreSQL (which refuses longer values with an error), and a value the
database still refuses is a 400, never a 500. Each test runs on both databases."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from dockyard.errors import ValueInvalid
from dockyard.http.errors import render_error
from dockyard.store import limits
from dockyard.store.clock import utcnow
from dockyard.store.schema import blobs, projects
from tests.integration.conftest import Registry, client_as
from tests.support.content import (
    OCI_CONFIG,
    OCI_MANIFEST,
    descriptor,
    error_codes,
    make_artifact,
    make_image,
    push_blob,
    push_image,
    sha256,
)

X256 = "x" * 256


def error_codes_of(body: bytes | memoryview) -> list[str]:
    return [e["code"] for e in json.loads(bytes(body))["errors"]]


async def project_exists(registry: Registry, name: str) -> bool:
    response = await registry.client.get(f"/api/v1/projects/{name}")
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


async def test_push_to_a_name_over_255_characters_is_name_invalid(registry: Registry) -> None:
    """The reported bug: a push creates the project row before any handler runs; a 256-character
    name is NAME_INVALID (400) on every backend, and no project row is made."""
    for name in (X256, "x" * 200 + "/" + "y" * 55, "a/" * 127 + "bc"):
        assert len(name) == 256
        for method, path in (("POST", f"/v2/{name}/blobs/uploads/"), ("PUT", f"/v2/{name}/manifests/latest"),
                             ("POST", f"/v2/{name}/blobs/uploads/?mount=sha256:{'a' * 64}&from=team/app")):
            response = await registry.client.request(method, path, content=b"{}")
            assert response.status_code == 400, (method, path, response.text)
            assert error_codes(response) == ["NAME_INVALID"]
            assert "at most 255 characters" in response.json()["errors"][0]["message"]
        assert not await project_exists(registry, name.split("/")[0])


async def test_a_255_character_name_is_pushed_and_read_back(registry: Registry) -> None:
    """Exactly at the limit: the project (the whole name) and the repository are stored and listed."""
    name = "x" * 255
    image = make_image(layers=1)
    await push_image(registry.client, name, image, "v1")
    tags = await registry.client.get(f"/v2/{name}/tags/list")
    assert tags.json() == {"name": name, "tags": ["v1"]}
    assert await project_exists(registry, name)


async def test_tag_of_128_characters_is_stored_and_129_is_refused(registry: Registry) -> None:
    image = make_image(layers=1)
    longest = "t" * limits.TAG
    await push_image(registry.client, "team/app", image, longest)
    assert (await registry.client.get(f"/v2/team/app/manifests/{longest}")).status_code == 200
    refused = await registry.client.put(f"/v2/team/app/manifests/{longest}x", content=image.manifest,
                                        headers={"Content-Type": image.media_type})
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_INVALID"]
    extra = await registry.client.put(f"/v2/team/app/manifests/{image.digest}?tag={longest}x",
                                      content=image.manifest, headers={"Content-Type": image.media_type})
    assert extra.status_code == 400
    assert error_codes(extra) == ["MANIFEST_INVALID"]


async def test_artifact_type_must_fit_its_column(registry: Registry) -> None:
    """artifactType is stored in a 255-character column: longer, a NUL or a lone surrogate is MANIFEST_INVALID."""
    config = b"{}"
    await push_blob(registry.client, "team/app", config)
    for value, fits in (("application/" + "a" * 243, True), ("application/" + "a" * 244, False),
                        ("application/a\u0000b", False), ("application/\ud800", False)):
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": value,
                           "config": descriptor(OCI_CONFIG, config), "layers": []}).encode()
        response = await registry.client.put("/v2/team/app/manifests/art", content=body,
                                             headers={"Content-Type": OCI_MANIFEST})
        if fits:
            assert response.status_code == 201, response.text
            continue
        assert response.status_code == 400, response.text
        assert error_codes(response) == ["MANIFEST_INVALID"]
        assert "artifactType" in response.json()["errors"][0]["message"]


async def test_project_names_up_to_255_characters(registry: Registry) -> None:
    api = registry.client
    assert (await api.post("/api/v1/projects", json={"name": "p" * 255})).status_code == 201
    refused = await api.post("/api/v1/projects", json={"name": "p" * 256})
    assert refused.status_code == 400
    assert error_codes(refused) == ["INVALID_REQUEST"]
    assert "at most 255 characters" in refused.json()["errors"][0]["message"]


async def test_user_and_team_names_up_to_64_characters(registry: Registry) -> None:
    api = registry.client
    password = "long-enough-password"
    assert (await api.post("/api/v1/users", json={"name": "u" * 64, "password": password})).status_code == 201
    user = await api.post("/api/v1/users", json={"name": "u" * 65, "password": password})
    assert user.status_code == 400
    assert "at most 64 characters" in user.json()["errors"][0]["message"]
    assert (await api.post("/api/v1/projects", json={"name": "team"})).status_code == 201
    assert (await api.post("/api/v1/projects/team/teams", json={"name": "t" * 64})).status_code == 201
    team = await api.post("/api/v1/projects/team/teams", json={"name": "t" * 65})
    assert team.status_code == 400
    assert error_codes(team) == ["INVALID_REQUEST"]


async def test_robot_login_must_fit_160_characters(registry: Registry) -> None:
    """A project robot's login is robot+<project>+<name>: a long project leaves less room for the name."""
    project = "p" * 140
    api = registry.client
    assert (await api.post("/api/v1/projects", json={"name": project})).status_code == 201
    fits = "r" * (limits.ROBOT_NAME - len(f"robot+{project}+"))
    body = {"permissions": ["pull"], "repositories": ["*"]}
    created = await api.post(f"/api/v1/projects/{project}/robots", json={"name": fits, **body})
    assert created.status_code == 201, created.text
    assert len(created.json()["name"]) == limits.ROBOT_NAME
    refused = await api.post(f"/api/v1/projects/{project}/robots", json={"name": fits + "r", **body})
    assert refused.status_code == 400
    assert error_codes(refused) == ["INVALID_REQUEST"]
    assert "shorter robot name" in refused.json()["errors"][0]["message"]
    robot = client_as(registry, (created.json()["name"], created.json()["secret"]))
    assert (await robot.get("/v2/")).status_code == 200


LOOKUPS = (("GET", "/api/v1/projects/a%00b"), ("PATCH", "/api/v1/users/a%00b"),
           ("GET", "/api/v1/projects/" + "p" * 300), ("PATCH", "/api/v1/users/" + "u" * 300),
           ("PUT", "/api/v1/projects/team/teams/" + "t" * 100 + "/members/admin"),
           ("PUT", "/api/v1/projects/team/members/a%00b"), ("POST", "/api/v1/robots/robot+a%00b/rotate"))


async def test_lookups_of_names_no_column_holds_are_not_found(registry: Registry) -> None:
    """A name too long for its column or holding a NUL cannot exist: 404 on every backend (PostgreSQL
    would refuse the NUL in the query itself)."""
    assert (await registry.client.post("/api/v1/projects", json={"name": "team"})).status_code == 201
    for method, path in LOOKUPS:
        body = {"PATCH": {"disabled": True}, "PUT": {"role": "guest"}}.get(method)
        response = await registry.client.request(method, path, json=body) if body else \
            await registry.client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert error_codes(response) == ["NOT_FOUND"]


async def test_audit_filters_no_column_holds_are_refused(registry: Registry) -> None:
    """Audit filters too long for their columns, or holding a NUL: INVALID_REQUEST."""
    for query in ("user=a%00b", "project=a%00b", "repository=" + "r" * 300, "action=%00"):
        response = await registry.client.get(f"/api/v1/audit?{query}")
        assert response.status_code == 400, (query, response.text)
        assert error_codes(response) == ["INVALID_REQUEST"]


async def test_odd_query_values_under_v2(registry: Registry) -> None:
    """``last`` with a NUL is a 400; an artifactType filter no column holds matches nothing; a mount
    from a repository name no column holds starts a plain upload (as from one that does not exist)."""
    image = make_image(layers=1)
    await push_image(registry.client, "team/app", image, "v1")
    for path in ("/v2/_catalog?last=%00", "/v2/team/app/tags/list?last=a%00", f"/v2/_catalog?last={'a' * 300}"):
        response = await registry.client.get(path)
        assert response.status_code == 400, (path, response.text)
        assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]
    referrers = await registry.client.get(f"/v2/team/app/referrers/{image.digest}?artifactType=a%00b")
    assert referrers.status_code == 200, referrers.text
    assert referrers.json()["manifests"] == []
    for source in ("a%00b", "x" * 256):
        mount = await registry.client.post(f"/v2/team/other/blobs/uploads/?mount={image.digest}&from={source}")
        assert mount.status_code == 202, mount.text


async def test_login_names_no_account_can_have_are_refused_with_401(registry: Registry) -> None:
    """Basic credentials and the token form with such a name: 401 (no failure row, no event row,
    whose columns could not hold the name)."""
    for user in ("a\x00b", "u" * 161, "robot+" + "r" * 300):
        basic = client_as(registry, (user, "whatever-password"))
        assert (await basic.get("/v2/team/app/tags/list")).status_code == 401
        token = await client_as(registry, None).post("/token", data={
            "grant_type": "password", "username": user, "password": "whatever-password", "service": "dockyard"})
        assert token.status_code == 401, token.text


async def test_password_that_is_not_text_is_refused(registry: Registry) -> None:
    """A lone surrogate (JSON "\\ud800") or a NUL cannot be stored or hashed as text: 400."""
    for password in (b'"abcdefgh\\ud800"', b'"abcdefgh\\u0000"'):
        response = await registry.client.post("/api/v1/users", content=b'{"name": "someone", "password": '
                                              + password + b"}", headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert error_codes(response) == ["INVALID_REQUEST"]


async def test_a_value_the_database_refuses_is_a_400(registry: Registry) -> None:
    """The safety net at the database seam: what no edge check caught (here written straight
    through the store) becomes ValueInvalid, a 400 with a message, not a 500."""
    db = registry.parts.db
    bad_rows = [(blobs, {"digest": "sha256:x", "size": 2**64, "created_at": utcnow()})]  # out of range everywhere
    if db.dialect == "postgresql":  # SQLite stores these
        bad_rows += [(projects, {"name": "p" * 256, "public": False, "created_at": utcnow()}),
                     (projects, {"name": "a\x00b", "public": False, "created_at": utcnow()})]
    for table, row in bad_rows:
        with pytest.raises(ValueInvalid) as refused:
            async with db.write() as conn:
                await conn.execute(sa.insert(table).values(**row))
        response = render_error(refused.value)
        assert response.status_code == 400
        assert error_codes_of(response.body) == ["INVALID_REQUEST"]
        assert "too long, out of range" in json.loads(response.body)["errors"][0]["message"]
    lookup = sa.select(projects.c.id).where(projects.c.name == sa.bindparam("name"))
    if db.dialect == "postgresql":  # the hot path's own asyncpg pool: the same seam
        with pytest.raises(ValueInvalid):
            await db.first(lookup, name="a\x00b")
    else:
        assert await db.first(lookup, name="a\x00b") is None
    async with db.read() as conn:  # and the database is fine afterwards
        assert await conn.scalar(sa.select(sa.func.count()).select_from(projects)) == 0


async def test_annotations_of_any_text_and_size_round_trip(registry: Registry) -> None:
    """Annotations live in a JSON column without a size (the manifest's own limit bounds them):
    NUL, lone surrogates, long keys and values are stored and read back as pushed, on every database."""
    subject = make_image(layers=1)
    await push_image(registry.client, "team/app", subject)
    artifact = make_artifact(subject, "application/vnd.example.sbom")
    document = json.loads(artifact.manifest)
    odd = {"nul": "a\u0000b", "surrogate": "\ud800", "k" * 1000: "v" * 100_000, "newline": "line 1\nline 2"}
    document["annotations"] = odd
    body = json.dumps(document).encode()
    for blob in artifact.blobs:
        await push_blob(registry.client, "team/app", blob)
    pushed = await registry.client.put(f"/v2/team/app/manifests/{sha256(body)}", content=body,
                                       headers={"Content-Type": OCI_MANIFEST})
    assert pushed.status_code == 201, pushed.text
    listed = await registry.client.get(f"/v2/team/app/referrers/{subject.digest}")
    assert listed.status_code == 200, listed.text
    assert [m["annotations"] for m in listed.json()["manifests"]] == [odd]
    read = await registry.client.get(f"/v2/team/app/manifests/{sha256(body)}", headers={"Accept": OCI_MANIFEST})
    assert read.content == body
