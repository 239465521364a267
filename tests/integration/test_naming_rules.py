"""Naming rules refuse at the first request that names the repository (the upload POST: plain,
monolithic with ``?digest=``, and mount) before any bytes are stored, and at a manifest PUT, with
403 DENIED quoting the rule and giving an example; reads of existing content are never refused."""

from __future__ import annotations

import httpx

from tests.integration.conftest import Registry
from tests.integration.rules_support import make_project, set_rules, stored_files, stored_rows
from tests.support.content import error_codes, make_image, push_blob, push_image, push_manifest, sha256

REPOSITORY_RULE = r"^(api|web|worker)(/[a-z0-9-]+)?$"
TAG_RULE = r"^v\d+\.\d+\.\d+(-(dev|test|prod))?$"


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    assert error_codes(response) == ["DENIED"]
    message: str = response.json()["errors"][0]["message"]
    return message


async def test_a_badly_named_repository_is_refused_at_every_upload_post_before_any_bytes(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    elsewhere = b"a blob the bad repository would mount"
    await push_blob(registry.client, "team-b/app", elsewhere)
    await set_rules(registry, project, repository_pattern=REPOSITORY_RULE)
    rows, files = await stored_rows(registry), await stored_files(registry)

    expected = (f"repository team-a/db breaks the naming rule: the name after 'team-a/' must match "
                f"'{REPOSITORY_RULE}' (the whole of it, re.fullmatch); for example team-a/api")
    assert refusal(await registry.client.post("/v2/team-a/db/blobs/uploads/")) == expected
    data = b"bytes that must not be stored"
    monolithic = await registry.client.post(f"/v2/team-a/db/blobs/uploads/?digest={sha256(data)}", content=data,
                                            headers={"Content-Type": "application/octet-stream"})
    assert refusal(monolithic) == expected
    mount = await registry.client.post(f"/v2/team-a/db/blobs/uploads/?mount={sha256(elsewhere)}&from=team-b/app")
    assert refusal(mount) == expected
    assert refusal(await registry.client.post(f"/v2/team-a/blobs/uploads/?mount={sha256(elsewhere)}")).startswith(
        "repository team-a breaks the naming rule")  # the project's own name: the part after it is empty
    assert await stored_rows(registry) == rows
    assert await stored_files(registry) == files

    # Names the rule allows go through, with and without a sub-path.
    assert (await registry.client.post("/v2/team-a/api/blobs/uploads/")).status_code == 202
    await push_blob(registry.client, "team-a/worker/queue-2", data)
    mounted = await registry.client.post(f"/v2/team-a/web/blobs/uploads/?mount={sha256(elsewhere)}&from=team-b/app")
    assert mounted.status_code == 201, mounted.text


async def test_a_manifest_put_is_refused_for_a_bad_tag_or_a_badly_named_repository(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, "team-a/api", blob)
        await push_blob(registry.client, "team-a/legacy", blob)
    await set_rules(registry, project, repository_pattern=REPOSITORY_RULE, tag_pattern=TAG_RULE)
    rows = await stored_rows(registry)

    bad_tag = await push_manifest(registry.client, "team-a/api", "latest", image.manifest)
    assert refusal(bad_tag) == (f"tag latest breaks the naming rule: every tag in project team-a must match "
                                f"'{TAG_RULE}' (the whole of it, re.fullmatch); for example v0.0.0")
    extra = await registry.client.put(f"/v2/team-a/api/manifests/{image.digest}?tag=v1.0.0&tag=v1.0",
                                      content=image.manifest, headers={"Content-Type": image.media_type})
    assert refusal(extra).startswith("tag v1.0 breaks the naming rule")
    by_digest = await push_manifest(registry.client, "team-a/legacy", image.digest, image.manifest)
    assert refusal(by_digest).startswith("repository team-a/legacy breaks the naming rule")
    assert await stored_rows(registry) == rows

    assert (await push_manifest(registry.client, "team-a/api", "v1.2.3-prod", image.manifest)).status_code == 201
    assert (await push_manifest(registry.client, "team-a/api", image.digest, image.manifest)).status_code == 201


async def test_reads_of_content_pushed_before_the_rules_are_never_refused(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    image = make_image()
    await push_image(registry.client, "team-a/old-name", image, "latest")
    await set_rules(registry, project, repository_pattern=REPOSITORY_RULE, tag_pattern=TAG_RULE)
    client = registry.client
    assert (await client.get("/v2/team-a/old-name/manifests/latest")).status_code == 200
    assert (await client.get(f"/v2/team-a/old-name/blobs/{sha256(image.layers[0])}")).status_code == 200
    assert (await client.get("/v2/team-a/old-name/tags/list")).json()["tags"] == ["latest"]
    # Deleting is not pushing: the old content can be cleaned up.
    assert (await client.delete("/v2/team-a/old-name/manifests/latest")).status_code == 202


async def test_an_upload_started_before_the_rule_is_refused_at_completion_and_removed(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    started = await registry.client.post("/v2/team-a/db/blobs/uploads/")
    assert started.status_code == 202
    await set_rules(registry, project, repository_pattern=REPOSITORY_RULE)
    data = b"late bytes"
    done = await registry.client.put(f"{started.headers['location']}?digest={sha256(data)}", content=data,
                                     headers={"Content-Type": "application/octet-stream"})
    assert refusal(done).startswith("repository team-a/db breaks the naming rule")
    assert (await stored_rows(registry))["uploads"] == []
    assert not any(path.startswith("blobs/") for path in await stored_files(registry))
    assert await stored_files(registry) == []


async def test_a_rule_no_example_can_be_made_for_says_so(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    await set_rules(registry, project, repository_pattern=r"(?=x)y")  # matches nothing
    message = refusal(await registry.client.post("/v2/team-a/anything/blobs/uploads/"))
    assert message.endswith("no example could be made from the expression; ask a project admin which names "
                            "it allows")
