"""Deterministic races between the collector and pushes: the collector decides something is garbage
and stops (a hook); a push then relies on it; the collector goes on; the image must pull completely.
On every backend: SQLite, PostgreSQL, PostgreSQL with S3."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dockyard.services.gc import GcReport
from tests.integration.backends import every_backend, registry_on_every_backend
from tests.integration.conftest import Registry
from tests.support.collection import BOUND, Pause, after_grace, paused_collector, pulls_completely, stored
from tests.support.content import (
    OCI_INDEX,
    make_image,
    make_index,
    push_blob,
    push_image,
    push_manifest,
    sha256,
)

__all__ = ["every_backend", "registry_on_every_backend"]  # the fixtures this module runs on


def start(registry: Registry, pause: Pause) -> asyncio.Task[GcReport]:
    """A run as if the grace period had just passed for everything done so far (and not for what
    the test does while the run is paused)."""
    collector = paused_collector(registry.parts, pause)
    return asyncio.create_task(collector.collect(now=after_grace(registry.parts, timedelta(0))))


async def finish(task: asyncio.Task[GcReport]) -> GcReport:
    async with asyncio.timeout(BOUND):
        return await task


async def test_a_manifest_put_after_a_head_keeps_the_blob_it_links(registry: Registry) -> None:
    """Blobs pushed, manifest not yet: the collector decides a link is garbage; the client HEADs
    the blob (present), pushes the manifest; the link and bytes stay."""
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, "team/app", blob)
    pause = Pause(sha256(image.config))  # the first pushed: the first the collector reaches
    task = start(registry, pause)
    await pause.wait()
    for blob in image.blobs:
        assert (await registry.client.head(f"/v2/team/app/blobs/{sha256(blob)}")).status_code == 200
    assert (await push_manifest(registry.client, "team/app", "v1", image.manifest)).status_code == 201
    pause.release()
    report = await finish(task)
    assert (report.links_deleted, report.blobs_deleted) == (0, 0)
    assert sorted(await pulls_completely(registry.client, "team/app", "v1")) == sorted(map(sha256, image.blobs))


async def test_a_mount_keeps_the_blob_it_links(registry: Registry) -> None:
    """The collector decides the source's link is garbage; a mount links the blob elsewhere first."""
    image = make_image()
    await push_blob(registry.client, "team/source", image.layers[0])
    layer = sha256(image.layers[0])
    pause = Pause(layer)
    task = start(registry, pause)
    await pause.wait()
    mounted = await registry.client.post(f"/v2/team/app/blobs/uploads/?mount={layer}&from=team/source")
    assert mounted.status_code == 201, mounted.text
    pause.release()
    report = await finish(task)
    assert (report.links_deleted, report.blobs_deleted) == (1, 0)  # the source's link only
    for blob in (image.config, *image.layers[1:]):
        await push_blob(registry.client, "team/app", blob)
    assert (await push_manifest(registry.client, "team/app", "v1", image.manifest)).status_code == 201
    await pulls_completely(registry.client, "team/app", "v1")


async def unlinked(registry: Registry, data: bytes) -> str:
    """A blob pushed, then deleted: its bytes are a candidate, and nothing links them."""
    await push_blob(registry.client, "team/app", data)
    assert (await registry.client.delete(f"/v2/team/app/blobs/{sha256(data)}")).status_code == 202
    return sha256(data)


async def test_a_re_upload_of_the_same_digest_keeps_the_bytes(registry: Registry) -> None:
    image = make_image()
    layer = await unlinked(registry, image.layers[0])
    pause = Pause(layer)
    task = start(registry, pause)
    await pause.wait()
    await push_image(registry.client, "team/app", image, "v1")
    pause.release()
    report = await finish(task)
    assert report.blobs_deleted == 0
    await pulls_completely(registry.client, "team/app", "v1")


async def test_a_chunked_upload_started_before_the_decision_keeps_the_bytes(registry: Registry) -> None:
    image = make_image()
    data = image.layers[0]
    layer = await unlinked(registry, data)
    started = await registry.client.post("/v2/team/app/blobs/uploads/")
    location = started.headers["location"]
    first = await registry.client.patch(location, content=data[:100], headers={
        "Content-Range": "0-99", "Content-Type": "application/octet-stream"})
    assert first.status_code == 202, first.text
    pause = Pause(layer)
    task = start(registry, pause)
    await pause.wait()
    location = first.headers["location"]
    rest = await registry.client.patch(location, content=data[100:], headers={
        "Content-Range": f"100-{len(data) - 1}", "Content-Type": "application/octet-stream"})
    assert rest.status_code == 202, rest.text
    separator = "&" if "?" in rest.headers["location"] else "?"
    done = await registry.client.put(f"{rest.headers['location']}{separator}digest={layer}")
    assert done.status_code == 201, done.text
    pause.release()
    report = await finish(task)
    assert report.blobs_deleted == 0
    await push_image(registry.client, "team/app", image, "v1")
    await pulls_completely(registry.client, "team/app", "v1")


async def test_a_manifest_tagged_again_during_the_pause_stays(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, "team/app", image, "v1")
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202
    pause = Pause(image.digest)
    task = start(registry, pause)
    await pause.wait()
    assert (await push_manifest(registry.client, "team/app", image.digest, image.manifest)).status_code == 201
    assert (await push_manifest(registry.client, "team/app", "v2", image.manifest)).status_code == 201
    pause.release()
    report = await finish(task)
    assert (report.manifests_deleted, report.blobs_deleted) == (0, 0)
    await pulls_completely(registry.client, "team/app", "v2")


async def test_an_index_that_lists_a_child_about_to_go_keeps_it(registry: Registry) -> None:
    """The old index is collected, and with it its children become candidates; the collector
    decides one is garbage; a new index listing it is pushed; the child and its blobs stay."""
    amd, arm = make_image(), make_image()
    for child in (amd, arm):
        await push_image(registry.client, "team/app", child)
    old = make_index([amd, arm])
    assert (await push_manifest(registry.client, "team/app", "v1", old, OCI_INDEX)).status_code == 201
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202
    pause = Pause(amd.digest)
    task = start(registry, pause)
    await pause.wait()
    new = make_index([amd])
    assert (await push_manifest(registry.client, "team/app", "v2", new, OCI_INDEX)).status_code == 201
    pause.release()
    report = await finish(task)
    assert sorted(report.manifests) == sorted(f"team/app@{d}" for d in (sha256(old), arm.digest))
    assert sorted(await pulls_completely(registry.client, "team/app", "v2")) == sorted(map(sha256, amd.blobs))
    assert not await stored(registry.parts, sha256(arm.layers[0]))


async def test_an_upload_waits_while_the_bytes_of_its_digest_are_deleted(registry: Registry) -> None:
    """The collector has removed the blob's row (committed) and stops before deleting the bytes;
    an upload of the same digest waits for the deletion, then puts the bytes back."""
    image = make_image()
    layer = await unlinked(registry, image.layers[0])
    pause = Pause(layer, at="bytes")
    waiting = asyncio.Event()

    async def told(digest: str) -> None:
        waiting.set()

    registry.parts.services.uploads.waiting_for_deletion = told
    task = start(registry, pause)
    await pause.wait()
    upload = asyncio.create_task(push_blob(registry.client, "team/app", image.layers[0]))
    async with asyncio.timeout(BOUND):
        await waiting.wait()
    assert not upload.done()
    pause.release()
    report = await finish(task)
    assert (report.blobs_deleted, report.bytes_freed) == (1, len(image.layers[0]))
    async with asyncio.timeout(BOUND):
        await upload
    assert await stored(registry.parts, layer)
    await push_image(registry.client, "team/app", image, "v1")
    await pulls_completely(registry.client, "team/app", "v1")
