"""Quotas refuse a blob push, a mount and a manifest PUT that would take the project over, with
usage and limit in the message, and nothing partial stays (no rows, no files); content the
project has already costs nothing; pushes near the limit at the same moment cannot both pass.
On every backend: SQLite and PostgreSQL on the filesystem, PostgreSQL on S3."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.backends import every_backend, registry_on_every_backend  # noqa: F401
from tests.integration.conftest import Registry
from tests.integration.rules_support import make_project, set_rules, stored_files, stored_rows
from tests.support.content import error_codes, make_image, push_blob, push_manifest, random_bytes, sha256


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    assert error_codes(response) == ["DENIED"]
    message: str = response.json()["errors"][0]["message"]
    return message


async def monolithic(client: httpx.AsyncClient, repo: str, data: bytes) -> httpx.Response:
    return await client.post(f"/v2/{repo}/blobs/uploads/?digest={sha256(data)}", content=data,
                             headers={"Content-Type": "application/octet-stream"})


async def chunked(client: httpx.AsyncClient, repo: str, data: bytes) -> httpx.Response:
    started = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    half = len(data) // 2
    patched = await client.patch(location, content=data[:half], headers={
        "Content-Type": "application/octet-stream", "Content-Range": f"0-{half - 1}"})
    assert patched.status_code == 202, patched.text
    return await client.put(f"{location}?digest={sha256(data)}", content=data[half:],
                            headers={"Content-Type": "application/octet-stream"})


async def test_a_blob_push_over_the_quota_is_refused_and_leaves_nothing(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    await set_rules(registry, project, quota=1000)
    first = random_bytes(600)
    await push_blob(registry.client, "team-a/api", first)
    rows, files = await stored_rows(registry), await stored_files(registry)

    expected = ("project team-a would use 1.2 KiB of its 1000 B quota (this push adds 600 B to 600 B): delete "
                "images, or ask an admin for more with `dockyard quota set`")
    for push in (monolithic, chunked):
        assert refusal(await push(registry.client, "team-a/api", random_bytes(600))) == expected
    assert await stored_rows(registry) == rows
    assert await stored_files(registry) == files

    # A blob the project has already costs nothing, in any of its repositories; another project's
    # quota is its own.
    assert (await monolithic(registry.client, "team-a/web", first)).status_code == 201
    assert (await chunked(registry.client, "team-a/api", first)).status_code == 201
    assert (await monolithic(registry.client, "team-b/app", random_bytes(5000))).status_code == 201
    # Exactly up to the quota fits.
    assert (await chunked(registry.client, "team-a/api", random_bytes(400))).status_code == 201
    assert refusal(await monolithic(registry.client, "team-a/api", b"x")).startswith(
        "project team-a would use 1001 B of its 1000 B quota")
    assert (await registry.client.get("/api/v1/projects/team-a/usage")).json()["used_bytes"] == 1000


async def test_a_mount_that_would_exceed_the_quota_is_refused(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    big, small = random_bytes(3000), random_bytes(100)
    await push_blob(registry.client, "team-b/app", big)
    await push_blob(registry.client, "team-b/app", small)
    await set_rules(registry, project, quota=1000)
    rows = await stored_rows(registry)
    refused = await registry.client.post(f"/v2/team-a/api/blobs/uploads/?mount={sha256(big)}&from=team-b/app")
    assert refusal(refused).startswith("project team-a would use 2.9 KiB of its 1000 B quota")
    assert await stored_rows(registry) == rows
    mounted = await registry.client.post(f"/v2/team-a/api/blobs/uploads/?mount={sha256(small)}&from=team-b/app")
    assert mounted.status_code == 201, mounted.text
    again = await registry.client.post(f"/v2/team-a/web/blobs/uploads/?mount={sha256(small)}&from=team-a/api")
    assert again.status_code == 201, again.text  # in the project already: free


async def test_a_manifest_put_over_the_quota_is_refused_and_a_retag_is_free(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    image = make_image(layers=1)
    for blob in image.blobs:
        await push_blob(registry.client, "team-a/api", blob)
    used = sum(len(blob) for blob in image.blobs)
    await set_rules(registry, project, quota=used + len(image.manifest) - 1)
    rows = await stored_rows(registry)
    refused = await push_manifest(registry.client, "team-a/api", "v1", image.manifest)
    assert "quota" in refusal(refused)
    assert "dockyard quota set" in refusal(refused)
    assert await stored_rows(registry) == rows

    await set_rules(registry, project, quota=used + len(image.manifest))
    assert (await push_manifest(registry.client, "team-a/api", "v1", image.manifest)).status_code == 201
    await set_rules(registry, project, quota=1)  # lowered below what the project uses
    retag = await push_manifest(registry.client, "team-a/api", "v2", image.manifest)
    assert retag.status_code == 201, retag.text  # the manifest is there already: a new tag adds nothing
    assert refusal(await monolithic(registry.client, "team-a/api", b"more")).startswith("project team-a would use")


async def test_pushes_near_the_limit_at_the_same_moment_cannot_both_pass(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    await set_rules(registry, project, quota=2500)
    # Room for two of each round's four pushes (2 x 1000, then 2 x 250): never more.
    for round_, size in enumerate((1000, 250)):
        answers = await asyncio.gather(*(chunked(registry.client, f"team-a/r{round_}-{i}", random_bytes(size))
                                         for i in range(4)))
        assert sorted(a.status_code for a in answers) == [201, 201, 403, 403], [a.text for a in answers]
    assert (await registry.client.get("/api/v1/projects/team-a/usage")).json()["used_bytes"] == 2500
    assert (await stored_rows(registry))["uploads"] == []
