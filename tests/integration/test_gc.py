"""Online garbage collection: what each change leaves behind goes after the grace period, exactly
that, and nothing that is still referenced (SQLite and PostgreSQL, filesystem)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from dockyard.errors import Unavailable
from dockyard.jobs.gc import run_gc
from dockyard.store import jobs
from dockyard.store.clock import utcnow
from dockyard.store.schema import deleted_tags, gc_candidates, repositories
from tests.integration.conftest import Registry
from tests.support.collection import (
    BOUND,
    Pause,
    after_grace,
    collect,
    paused_collector,
    pulls_completely,
    stored,
)
from tests.support.content import (
    OCI_INDEX,
    Image,
    make_artifact,
    make_image,
    make_index,
    push_blob,
    push_image,
    push_manifest,
    sha256,
)


def size_of(image: Image) -> int:
    return sum(len(blob) for blob in image.blobs)


async def manifest_status(registry: Registry, name: str, reference: str) -> int:
    return (await registry.client.get(f"/v2/{name}/manifests/{reference}")).status_code


async def test_a_deleted_tag_frees_its_image_after_the_grace_period_not_before(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, "team/app", image, "v1")
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202

    early = await registry.parts.collector.collect()
    assert (early.manifests_deleted, early.blobs_deleted, early.bytes_freed) == (0, 0, 0)
    assert await manifest_status(registry, "team/app", image.digest) == 200

    report = await collect(registry.parts)
    assert report.manifests_deleted == 1
    assert report.manifests == [f"team/app@{image.digest}"]
    assert report.blobs_deleted == 3
    assert sorted(report.blobs) == sorted(sha256(b) for b in image.blobs)
    assert report.bytes_freed == size_of(image)
    assert await manifest_status(registry, "team/app", image.digest) == 404
    for blob in image.blobs:
        assert not await stored(registry.parts, sha256(blob))
        assert (await registry.client.head(f"/v2/team/app/blobs/{sha256(blob)}")).status_code == 404
    again = await collect(registry.parts)
    assert (again.manifests_deleted, again.blobs_deleted) == (0, 0)
    async with registry.parts.db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(gc_candidates)) == 0


async def test_a_manifest_deleted_by_digest_takes_its_referrers_along(registry: Registry) -> None:
    image = make_image()
    signature = make_artifact(image, "application/vnd.example.signature")
    await push_image(registry.client, "team/app", image, "v1")
    await push_image(registry.client, "team/app", signature)
    assert (await registry.client.delete(f"/v2/team/app/manifests/{image.digest}")).status_code == 202

    report = await collect(registry.parts)
    assert report.manifests == [f"team/app@{signature.digest}"]  # the image's row went with the DELETE
    assert report.bytes_freed == size_of(image) + size_of(signature)
    assert await manifest_status(registry, "team/app", signature.digest) == 404


async def test_a_signature_lives_while_its_subject_lives(registry: Registry) -> None:
    image = make_image()
    signature = make_artifact(image, "application/vnd.example.signature")
    await push_image(registry.client, "team/app", image, "v1")
    await push_image(registry.client, "team/app", signature, "sig")
    assert (await registry.client.delete("/v2/team/app/manifests/sig")).status_code == 202

    report = await collect(registry.parts)
    assert (report.manifests_deleted, report.blobs_deleted) == (0, 0)
    await pulls_completely(registry.client, "team/app", signature.digest)


async def test_a_signature_pushed_without_its_subject_goes_unless_the_subject_comes(registry: Registry) -> None:
    """A referrer whose subject is not in the repository (deleted before it was pushed, or not
    pushed yet) goes after the grace period, unless the subject is pushed by then."""
    gone, kept = make_image(), make_image()
    orphan = make_artifact(gone, "application/vnd.example.signature")
    waiting = make_artifact(kept, "application/vnd.example.signature")
    await push_image(registry.client, "team/app", orphan)  # its subject never comes
    await push_image(registry.client, "team/app", waiting)  # its subject comes next
    await push_image(registry.client, "team/app", kept, "v1")

    report = await collect(registry.parts)
    assert report.manifests == [f"team/app@{orphan.digest}"]
    assert report.bytes_freed == len(orphan.layers[0])  # its empty config is the other signature's too
    assert await manifest_status(registry, "team/app", orphan.digest) == 404
    await pulls_completely(registry.client, "team/app", waiting.digest)


async def test_moving_a_tag_frees_the_old_image_only(registry: Registry) -> None:
    old, new = make_image(), make_image()
    await push_image(registry.client, "team/app", old, "latest")
    await push_image(registry.client, "team/app", new, "latest")

    report = await collect(registry.parts)
    assert report.manifests == [f"team/app@{old.digest}"]
    assert report.bytes_freed == size_of(old)
    await pulls_completely(registry.client, "team/app", "latest")


async def test_blobs_shared_with_another_repository_survive(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, "team/one", image, "v1")
    await push_image(registry.client, "team/two", image, "v1")
    assert (await registry.client.delete("/v2/team/one/manifests/v1")).status_code == 202

    report = await collect(registry.parts)
    assert report.manifests == [f"team/one@{image.digest}"]
    assert (report.links_deleted, report.blobs_deleted, report.bytes_freed) == (3, 0, 0)
    assert (await registry.client.head(f"/v2/team/one/blobs/{sha256(image.config)}")).status_code == 404
    await pulls_completely(registry.client, "team/two", "v1")


async def test_an_upload_nothing_uses_goes_after_the_grace_period(registry: Registry) -> None:
    data = b"pushed and never used" * 50
    await push_blob(registry.client, "team/app", data)
    assert (await collect(registry.parts, now=utcnow())).blobs_deleted == 0
    assert await stored(registry.parts, sha256(data))

    report = await collect(registry.parts)
    assert (report.links_deleted, report.blobs_deleted, report.bytes_freed) == (1, 1, len(data))
    assert not await stored(registry.parts, sha256(data))


async def test_an_index_goes_with_its_children_unless_one_is_tagged(registry: Registry) -> None:
    amd, arm = make_image(), make_image()
    for child in (amd, arm):
        await push_image(registry.client, "team/app", child)
    await push_image(registry.client, "team/app", arm, "arm")
    index = make_index([amd, arm])
    assert (await push_manifest(registry.client, "team/app", "v1", index, OCI_INDEX)).status_code == 201
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202

    report = await collect(registry.parts)
    assert sorted(report.manifests) == sorted(f"team/app@{d}" for d in (sha256(index), amd.digest))
    assert report.bytes_freed == size_of(amd)
    await pulls_completely(registry.client, "team/app", "arm")


async def test_a_dry_run_changes_nothing_and_predicts_the_run(registry: Registry) -> None:
    image, kept = make_image(), make_image()
    await push_image(registry.client, "team/app", image, "v1")
    await push_image(registry.client, "team/app", kept, "v2")
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202
    now = after_grace(registry.parts)

    dry = await collect(registry.parts, dry_run=True, now=now)
    assert dry.dry_run
    assert (dry.manifests_deleted, dry.blobs_deleted) == (1, 3)
    assert dry.bytes_freed == size_of(image)
    assert await manifest_status(registry, "team/app", image.digest) == 200
    assert all([await stored(registry.parts, sha256(b)) for b in image.blobs])

    real = await collect(registry.parts, now=now)
    assert (real.manifests, sorted(real.blobs), real.bytes_freed) == (dry.manifests, sorted(dry.blobs),
                                                                      dry.bytes_freed)
    await pulls_completely(registry.client, "team/app", "v2")


async def test_a_restorable_tag_keeps_its_manifest_until_the_window_ends(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, "team/app", image, "v1")
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202
    window_end = utcnow() + timedelta(days=14)
    async with registry.parts.db.write() as conn:  # as a retention run leaves it
        repo_id = await conn.scalar(sa.select(repositories.c.id).where(repositories.c.name == "team/app"))
        await conn.execute(sa.insert(deleted_tags).values(repository_id=repo_id, name="v1", digest=image.digest,
                                                          deleted_at=utcnow(), expires_at=window_end))

    kept = await collect(registry.parts)
    assert (kept.manifests_deleted, kept.tags_expired) == (0, 0)
    freed = await collect(registry.parts, now=window_end + timedelta(seconds=1))
    assert (freed.tags_expired, freed.manifests_deleted, freed.bytes_freed) == (1, 1, size_of(image))


async def test_a_run_is_recorded_as_a_job_run(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, "team/app", image, "v1")
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202
    async with registry.parts.db.write() as conn:  # due now: the job runs at the current time
        await conn.execute(sa.update(gc_candidates).values(due_at=utcnow() - timedelta(seconds=1)))

    report = await run_gc(registry.parts.db, registry.parts.collector)
    async with registry.parts.db.read() as conn:
        [run] = await jobs.recent_runs(conn, job="gc")
    assert (run.outcome, run.examined, run.removed, run.bytes_freed) == (
        "ok", report.examined, 4, size_of(image))
    assert run.detail is not None
    assert run.detail["manifests_deleted"] == 1


async def test_one_collection_at_a_time(registry: Registry) -> None:
    """A second run (by hand, or on another node) is refused while one runs; a dry run is not."""
    image = make_image()
    await push_image(registry.client, "team/app", image, "v1")
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202
    pause = Pause(image.digest)
    running = asyncio.create_task(paused_collector(registry.parts, pause).collect(now=after_grace(registry.parts)))
    await pause.wait()
    with pytest.raises(Unavailable, match="another garbage collection is running"):
        await collect(registry.parts)
    assert (await collect(registry.parts, dry_run=True)).manifests_deleted == 1
    pause.release()
    async with asyncio.timeout(BOUND):
        assert (await running).manifests_deleted == 1
    assert (await collect(registry.parts)).manifests_deleted == 0  # the lease was given back

