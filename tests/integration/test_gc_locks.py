"""The collector's row locks on PostgreSQL (READ COMMITTED): a push that needs a row the collector
holds, found garbage and is about to delete, waits for it, then answers cleanly (never a 500) and
leaves nothing referenced without its bytes. On the filesystem and S3.

SQLite needs no such test: its write transactions run one at a time (``BEGIN IMMEDIATE``), so a
push cannot even start its transaction while the collector's is open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from dockyard.config import build_config
from dockyard.services.gc import GcReport
from dockyard.store import manifests as manifest_rows
from dockyard.store import repositories
from dockyard.store import tags as tag_rows
from dockyard.store.schema import manifest_references, repository_blobs
from dockyard.store.statements import insert_ignore
from tests.integration.conftest import CHEAP_AUTH, Registry, open_registry
from tests.support import backends
from tests.support.collection import BOUND, Pause, after_grace, paused_collector, pulls_completely, stored
from tests.support.content import error_codes, make_image, push_blob, push_image, push_manifest, sha256
from tests.support.databases import PostgresDatabases


@pytest.fixture(params=["filesystem", "s3"])
async def registry(request: pytest.FixtureRequest, tmp_path: Path,
                   postgres: PostgresDatabases | None) -> AsyncIterator[Registry]:
    if postgres is None:
        backends.postgres_admin_url()  # skips with the reason (fails in CI)
    assert postgres is not None
    url = await postgres.create()
    with ExitStack() as stack:
        storage: dict[str, object] = {}
        if request.param == "s3":
            endpoint, prefix = stack.enter_context(backends.s3_prefix("gc-locks"))
            storage = backends.s3_settings(endpoint, prefix)
        config = build_config({"data_dir": str(tmp_path / "data"), "database": {"url": url}, "storage": storage,
                               "auth": CHEAP_AUTH, "log": {"access_log": False}})
        async with open_registry(config) as opened:
            yield opened


def start(registry: Registry, pause: Pause) -> asyncio.Task[GcReport]:
    collector = paused_collector(registry.parts, pause)
    return asyncio.create_task(collector.collect(now=after_grace(registry.parts, timedelta(0))))


async def blocked_on_a_lock(registry: Registry) -> None:
    """Returns once a session of this test's database waits for a row lock (the push)."""
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
    async with asyncio.timeout(BOUND):
        while True:
            async with registry.parts.db.read() as conn:
                if await conn.scalar(query):
                    return
            await asyncio.sleep(0.01)  # polling the server's own view of who waits: nothing to await


async def settle(task: asyncio.Task[GcReport], push: asyncio.Task[httpx.Response]) -> tuple[GcReport, httpx.Response]:
    async with asyncio.timeout(BOUND):
        return await task, await push


async def test_a_manifest_put_waiting_for_a_link_being_deleted_is_told_to_push_the_blob(registry: Registry) -> None:
    image = make_image()
    for blob in image.blobs:
        await push_blob(registry.client, "team/app", blob)
    config = sha256(image.config)
    pause = Pause(config, at="holding")
    task = start(registry, pause)
    async with asyncio.timeout(BOUND):
        await pause.reached.wait()
    put = asyncio.create_task(push_manifest(registry.client, "team/app", "v1", image.manifest))
    await blocked_on_a_lock(registry)
    pause.release()
    report, answer = await settle(task, put)
    assert (answer.status_code, error_codes(answer)) == (400, ["MANIFEST_BLOB_UNKNOWN"])
    assert config in report.blobs
    await push_image(registry.client, "team/app", image, "v1")  # what a client does next
    await pulls_completely(registry.client, "team/app", "v1")


async def test_a_tag_put_waiting_for_its_manifest_being_deleted_stores_it_again(registry: Registry) -> None:
    image = make_image()
    await push_image(registry.client, "team/app", image, "v1")
    assert (await registry.client.delete("/v2/team/app/manifests/v1")).status_code == 202
    pause = Pause(image.digest, at="holding")
    task = start(registry, pause)
    async with asyncio.timeout(BOUND):
        await pause.reached.wait()
    put = asyncio.create_task(push_manifest(registry.client, "team/app", "v2", image.manifest))
    await blocked_on_a_lock(registry)
    pause.release()
    report, answer = await settle(task, put)
    assert answer.status_code == 201, answer.text
    assert report.manifests == [f"team/app@{image.digest}"]  # the old row; the PUT stored a new one
    assert (report.links_deleted, report.blobs_deleted) == (0, 0)  # the new row lists them
    await pulls_completely(registry.client, "team/app", "v2")


async def test_an_upload_waiting_for_a_blob_being_deleted_puts_its_bytes_back(registry: Registry) -> None:
    image = make_image()
    await push_blob(registry.client, "team/app", image.layers[0])
    layer = sha256(image.layers[0])
    assert (await registry.client.delete(f"/v2/team/app/blobs/{layer}")).status_code == 202
    pause = Pause(layer, at="holding")
    task = start(registry, pause)
    async with asyncio.timeout(BOUND):
        await pause.reached.wait()
    upload = asyncio.create_task(push_blob(registry.client, "team/app", image.layers[0]))
    await blocked_on_a_lock(registry)
    pause.release()
    report, answer = await settle(task, upload)
    assert answer.status_code == 201
    assert report.blobs == [layer]
    assert await stored(registry.parts, layer)
    await push_image(registry.client, "team/app", image, "v1")
    await pulls_completely(registry.client, "team/app", "v1")


async def test_the_collector_never_waits_for_a_writer_it_leaves_a_held_row_for_the_next_run(
        registry: Registry) -> None:
    """A row a writer holds is skipped, not waited for: a collector that waited while holding
    rows of its own could deadlock with a push that holds some of the same rows and waits for the
    others (PostgreSQL would then abort one of the two, a 500 for the push)."""
    blob = b"a blob nothing references"
    await push_blob(registry.client, "team/app", blob)
    digest = sha256(blob)
    async with registry.parts.db.write() as writer:  # a writer that holds the link, as a manifest PUT does
        await writer.execute(sa.select(repository_blobs.c.digest).where(repository_blobs.c.digest == digest)
                             .with_for_update(read=True))
        async with asyncio.timeout(BOUND):  # never waits for the writer
            report = await registry.parts.collector.collect(now=after_grace(registry.parts))
        assert (report.busy, report.links_deleted, report.blobs_deleted) == (1, 0, 0)
    assert await stored(registry.parts, digest)
    later = await registry.parts.collector.collect(now=after_grace(registry.parts))  # still a candidate
    assert (later.busy, later.links_deleted, later.blobs_deleted) == (0, 1, 1)
    assert not await stored(registry.parts, digest)


async def test_two_pushes_moving_one_tag_at_once_each_leave_a_candidate(registry: Registry) -> None:
    """Each push that moves a tag learns the manifest the tag left, also when two move it at the
    same moment (the tag's row is locked before it is read): otherwise the manifest between them
    would be left untagged with no candidate, and kept forever (found by the GC stress test).
    On SQLite the two transactions cannot overlap at all."""
    first, second, third = make_image(), make_image(), make_image()
    for image in (first, second, third):
        await push_image(registry.client, "team/app", image)
    assert (await push_manifest(registry.client, "team/app", "v1", first.manifest)).status_code == 201
    db = registry.parts.db
    async with db.read() as conn:
        repo = await repositories.find_id(conn, "team/app")
        assert repo is not None
        ids = [await manifest_rows.find_id(conn, repo, image.digest) for image in (second, third)]
    assert None not in ids
    moved = asyncio.Event()

    async def other_move() -> tuple[int, str] | None:
        await moved.wait()
        async with db.write() as conn:  # waits for the first move's transaction (its lock, or SQLite's)
            return await tag_rows.repoint(conn, repo, "v1", ids[1])

    racer = asyncio.create_task(other_move())
    async with db.write() as conn:
        before = await tag_rows.repoint(conn, repo, "v1", ids[0])
        moved.set()
        await blocked_on_a_lock(registry)  # the other move waits for this one's row lock
    async with asyncio.timeout(BOUND):
        after = await racer
    assert before is not None
    assert before[1] == first.digest
    assert after is not None
    assert after[1] == second.digest  # not first's: it sees what the first move left


async def test_a_delete_by_digest_and_a_push_of_the_same_manifest_do_not_deadlock(registry: Registry) -> None:
    """A push of a manifest holds its row FOR SHARE while it writes the manifest's references; an
    OCI DELETE of that manifest by digest locks the row before it touches the references, so it
    waits for the push instead of deadlocking with it (found by the three-node stress test: the
    DELETE answered 500 "deadlock detected")."""
    image = make_image()
    await push_image(registry.client, "team/app", image, "v1")
    db = registry.parts.db
    async with db.write() as push:  # the push's steps, as manifest_rows.insert takes them
        repo = await repositories.find_id(push, "team/app")
        assert repo is not None
        manifest_id = await manifest_rows.find_id(push, repo, image.digest, share=True)
        assert manifest_id is not None
        delete = asyncio.create_task(registry.client.delete(f"/v2/team/app/manifests/{image.digest}"))
        await blocked_on_a_lock(registry)
        await insert_ignore(push, manifest_references, [{"manifest_id": manifest_id, "kind": "blob",
                                                         "digest": sha256(blob)} for blob in image.blobs])
    async with asyncio.timeout(BOUND):
        answer = await delete
    assert answer.status_code == 202, answer.text
    assert (await registry.client.get(f"/v2/team/app/manifests/{image.digest}")).status_code == 404
