"""Abandoned uploads expire; their rows and bytes are removed; dry runs remove nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from dockyard.jobs.uploads_purge import purge_uploads
from dockyard.store.clock import utcnow
from dockyard.store.schema import uploads
from tests.integration.conftest import Registry
from tests.support.content import push_blob, random_bytes, sha256


async def _start(registry: Registry, body: bytes) -> str:
    location = (await registry.client.post("/v2/team/app/blobs/uploads/")).headers["location"]
    assert (await registry.client.patch(location, content=body)).status_code == 202
    return location


async def _age(registry: Registry, location: str, hours: int) -> None:
    upload_id = location.rsplit("/", 1)[1]
    async with registry.parts.db.write() as conn:
        await conn.execute(sa.update(uploads).where(uploads.c.id == upload_id)
                           .values(updated_at=utcnow() - timedelta(hours=hours)))


async def test_expired_uploads_are_purged_and_fresh_ones_kept(registry: Registry) -> None:
    old = await _start(registry, b"old bytes")
    fresh = await _start(registry, b"fresh bytes")
    await _age(registry, old, hours=48)
    await registry.parts.store.begin("orphanedupload1")  # bytes with no row: debris of a crash

    preview = await purge_uploads(registry.parts.db, registry.parts.store, expiry=timedelta(hours=24),
                                  dry_run=True)
    assert preview.expired == [old.rsplit("/", 1)[1]]
    assert preview.orphaned == ["orphanedupload1"]
    assert (await registry.client.get(old)).status_code == 204
    assert "orphanedupload1" in await registry.parts.store.upload_ids()  # the dry run removed nothing

    report = await purge_uploads(registry.parts.db, registry.parts.store, expiry=timedelta(hours=24))
    assert report.summary() == "removed 1 expired upload(s) and 1 orphaned upload dir(s)"
    assert (await registry.client.get(old)).status_code == 404
    assert (await registry.client.get(fresh)).status_code == 204
    assert sorted(await registry.parts.store.upload_ids()) == [fresh.rsplit("/", 1)[1]]


async def test_purge_leaves_completed_blobs_alone(registry: Registry) -> None:
    data = random_bytes(100)
    await push_blob(registry.client, "team/app", data)
    report = await purge_uploads(registry.parts.db, registry.parts.store, expiry=timedelta(seconds=0))
    assert (report.expired, report.orphaned) == ([], [])
    assert (await registry.client.get(f"/v2/team/app/blobs/{sha256(data)}")).content == data


async def test_purges_running_at_once_never_take_the_same_upload(registry: Registry) -> None:
    """Several nodes may purge at the same moment: each expired upload is removed exactly once."""
    locations = [await _start(registry, b"x") for _ in range(30)]
    for location in locations:
        await _age(registry, location, hours=48)
    reports = await asyncio.gather(*(  # small batches, so the two runs interleave
        purge_uploads(registry.parts.db, registry.parts.store, expiry=timedelta(hours=24), batch=4)
        for _ in range(2)))
    first, second = (set(report.expired) for report in reports)
    assert first.isdisjoint(second)
    assert first | second == {location.rsplit("/", 1)[1] for location in locations}
    assert await registry.parts.store.upload_ids() == []
