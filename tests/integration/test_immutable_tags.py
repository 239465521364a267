"""Immutable tags refuse through every path in this tree: a manifest PUT that would move the tag
(by tag, or by digest with ``?tag=``), an OCI DELETE of the tag, of the manifest it points at and
of a manifest its index lists; pushing the same digest again is allowed. Rows are written with
``store/policies.py`` directly (the CLI and API that write them are another module's)."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.services import enforcement
from tests.integration.conftest import Registry
from tests.integration.rules_support import make_project, set_rules
from tests.support.content import OCI_INDEX, error_codes, make_image, make_index, push_blob, push_image, push_manifest


async def tag_digest(registry: Registry, repo: str, tag: str) -> str:
    response = await registry.client.head(f"/v2/{repo}/manifests/{tag}")
    assert response.status_code == 200, response.text
    return response.headers["docker-content-digest"]


async def push_blobs(registry: Registry, repo: str, *images: object) -> None:
    for image in images:
        for blob in image.blobs:  # type: ignore[attr-defined]
            await push_blob(registry.client, repo, blob)


def assert_refused(response: object, *fragments: str) -> None:
    assert response.status_code == 403, response.text  # type: ignore[attr-defined]
    assert error_codes(response) == ["DENIED"]  # type: ignore[arg-type]
    message = response.json()["errors"][0]["message"]  # type: ignore[attr-defined]
    for fragment in fragments:
        assert fragment in message, message


async def test_an_immutable_tag_is_not_moved_but_the_same_digest_may_be_pushed_again(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    repo = "team-a/api"
    first, second = make_image(), make_image()
    await push_image(registry.client, repo, first, "v1.0")
    await push_blobs(registry, repo, second)
    [rule] = await set_rules(registry, project, immutable=(("api*", "v*"),))

    moved = await push_manifest(registry.client, repo, "v1.0", second.manifest)
    assert_refused(moved, "tag team-a/api:v1.0 is immutable", f"points at {first.digest}",
                   f"immutable rule #{rule} (repository 'api*', tag 'v*')", "dockyard immutable delete")
    by_digest = await registry.client.put(f"/v2/{repo}/manifests/{second.digest}?tag=latest&tag=v1.0",
                                          content=second.manifest,
                                          headers={"Content-Type": second.media_type})
    assert_refused(by_digest, "tag team-a/api:v1.0 is immutable")
    assert await tag_digest(registry, repo, "v1.0") == first.digest
    assert (await registry.client.head(f"/v2/{repo}/manifests/latest")).status_code == 404  # all or nothing

    again = await push_manifest(registry.client, repo, "v1.0", first.manifest)
    assert again.status_code == 201, again.text
    assert (await push_manifest(registry.client, repo, "latest", second.manifest)).status_code == 201
    assert (await push_manifest(registry.client, repo, "latest", first.manifest)).status_code == 201  # mutable
    # A repository the rule's glob does not match keeps its tags mutable.
    await push_image(registry.client, "team-a/web", first, "v1.0")
    await push_blobs(registry, "team-a/web", second)
    assert (await push_manifest(registry.client, "team-a/web", "v1.0", second.manifest)).status_code == 201


async def test_deleting_an_immutable_tag_or_a_manifest_it_keeps_is_refused(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    repo = "team-a/api"
    image, child, other = make_image(), make_image(), make_image()
    await push_image(registry.client, repo, image, "v2")
    await push_image(registry.client, repo, child)
    await push_image(registry.client, repo, other, "dev")
    index = make_index([child])
    assert (await push_manifest(registry.client, repo, "v2-multi", index, OCI_INDEX)).status_code == 201
    [rule] = await set_rules(registry, project, immutable=(("*", "v2*"),))

    assert_refused(await registry.client.delete(f"/v2/{repo}/manifests/v2"),
                   "tag team-a/api:v2 is immutable; it cannot be deleted", f"immutable rule #{rule}")
    assert_refused(await registry.client.delete(f"/v2/{repo}/manifests/{image.digest}"),
                   f"manifest {image.digest} cannot be deleted: the immutable tag team-a/api:v2 points at it")
    assert_refused(await registry.client.delete(f"/v2/{repo}/manifests/{child.digest}"),
                   f"manifest {child.digest} cannot be deleted: the immutable tag team-a/api:v2-multi keeps it")
    assert await tag_digest(registry, repo, "v2") == image.digest
    assert (await registry.client.head(f"/v2/{repo}/manifests/{child.digest}")).status_code == 200

    # What no rule protects still goes.
    assert (await registry.client.delete(f"/v2/{repo}/manifests/dev")).status_code == 202
    assert (await registry.client.delete(f"/v2/{repo}/manifests/{other.digest}")).status_code == 202
    # A missing tag that a rule would protect is a 404, as before.
    assert (await registry.client.delete(f"/v2/{repo}/manifests/v2-none")).status_code == 404


async def test_two_pushes_that_create_one_immutable_tag_at_once_cannot_both_win(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    repo = "team-a/api"
    images = [make_image() for _ in range(4)]
    await push_blobs(registry, repo, *images)
    await set_rules(registry, project, immutable=(("*", "release-*"),))
    for round_ in range(3):
        tag = f"release-{round_}"
        answers = await asyncio.gather(*(push_manifest(registry.client, repo, tag, image.manifest)
                                         for image in images))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201, 403, 403, 403], [a.text for a in answers]
        winner = next(image for image, answer in zip(images, answers, strict=True) if answer.status_code == 201)
        assert await tag_digest(registry, repo, tag) == winner.digest


async def test_ensure_mutable_is_the_one_check_other_services_call(registry: Registry) -> None:
    project = await make_project(registry, "team-a")
    image = make_image()
    await push_image(registry.client, "team-a/api", image, "v3")
    await set_rules(registry, project, immutable=(("api", "v*"),))
    async with registry.parts.db.read() as conn:
        await enforcement.ensure_mutable(conn, "team-a/api", ["v3"], digest=image.digest)  # same digest: fine
        await enforcement.ensure_mutable(conn, "team-a/api", ["latest", "v4"])  # absent or unprotected
        with pytest.raises(enforcement.Denied, match="cannot be deleted"):
            await enforcement.ensure_mutable(conn, "team-a/api", ["latest", "v3"])
        with pytest.raises(enforcement.Denied, match="cannot be overwritten"):
            await enforcement.ensure_mutable(conn, "team-a/api", ["v3"], digest="sha256:" + "0" * 64)
