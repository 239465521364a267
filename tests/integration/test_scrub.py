"""The integrity scrub finds corrupt bytes, missing bytes and orphans, on every backend; a corrupt
blob is never served until a verified re-upload repairs it; resume, dry run, grace and pins hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from dockyard.services.scrub import ScrubReport, ScrubService
from dockyard.services.throttle import TokenBucket
from dockyard.storage import layout
from dockyard.store import jobs
from dockyard.store.clock import utcnow
from dockyard.store.schema import blob_deletions, blob_pins, blobs
from tests.integration.backends import every_backend, registry_on_every_backend
from tests.integration.conftest import Registry
from tests.support.content import error_codes, push_blob, random_bytes, sha256

__all__ = ["every_backend", "registry_on_every_backend"]  # the fixtures: every backend, S3 included

FAST = 1e12  # bytes a second: no waiting where the rate is not what a test checks


def scrubber(registry: Registry, grace: timedelta = timedelta(0), **options: int) -> ScrubService:
    return ScrubService(registry.parts.db, registry.parts.store, grace_period=grace,
                        count_corrupt=registry.parts.metrics.blobs_corrupt.inc, **options)


async def scrub(registry: Registry, grace: timedelta = timedelta(0), **options: bool) -> ScrubReport:
    return await scrubber(registry, grace).run(TokenBucket(FAST), **options)


async def pushed(registry: Registry, *sizes: int) -> list[tuple[str, bytes]]:
    found = []
    for size in sizes:
        data = random_bytes(size)
        assert (await push_blob(registry.client, "team/app", data)).status_code == 201
        found.append((sha256(data), data))
    return found


async def put_in_storage(registry: Registry, digest: str, data: bytes) -> None:
    await registry.parts.store.driver.put_content(layout.blob_path(digest), data)


async def in_storage(registry: Registry) -> set[str]:
    return {stored.digest async for stored in registry.parts.store.stored_blobs()}


async def corrupt_metric(registry: Registry) -> float:
    text = (await registry.client.get("/metrics")).text
    line = next(line for line in text.splitlines() if line.startswith("dockyard_blobs_corrupt_total "))
    return float(line.split()[1])


async def test_scrub_finds_corrupt_missing_and_orphan_and_a_push_repairs(registry: Registry) -> None:
    blobs_pushed = await pushed(registry, 3000, 2000, 1500, 700)
    (good, good_data), (flipped, flipped_data), (cut, cut_data), (gone, _) = blobs_pushed
    await put_in_storage(registry, flipped, bytes([flipped_data[0] ^ 1]) + flipped_data[1:])  # same size
    await put_in_storage(registry, cut, cut_data[:-1])  # one byte short
    await registry.parts.store.delete_blob(gone)
    orphan_data = random_bytes(900)
    orphan = sha256(orphan_data)
    await put_in_storage(registry, orphan, orphan_data)  # bytes no row names
    before = await corrupt_metric(registry)

    report = await scrub(registry)

    assert report.examined == 4
    assert report.corrupt == sorted([flipped, cut])
    assert report.missing == [gone]
    assert report.orphans_removed == [orphan]
    assert report.bytes_freed == 900
    assert report.bytes_read == 3000 + 2000  # the short one is refused on its size, unread
    assert report.pass_complete
    assert orphan not in await in_storage(registry)
    assert await corrupt_metric(registry) == before + 2
    for digest in (flipped, cut):
        for method in ("GET", "HEAD"):
            answer = await registry.client.request(method, f"/v2/team/app/blobs/{digest}")
            assert answer.status_code == 404
        answer = await registry.client.get(f"/v2/team/app/blobs/{digest}")
        assert error_codes(answer) == ["BLOB_UNKNOWN"]
        assert answer.json()["errors"][0]["message"] == (
            f"blob {digest} is corrupt in storage; push it again to restore it")
    assert (await registry.client.get(f"/v2/team/app/blobs/{good}")).content == good_data
    async with registry.parts.db.read() as conn:
        verified = {r.digest: r.verified_at for r in await conn.execute(sa.select(blobs.c.digest, blobs.c.verified_at))}
    assert verified[good] is not None
    assert verified[flipped] is None

    # A mount of the corrupt blob is refused (the client uploads it instead) ...
    mount = await registry.client.post(f"/v2/team/other/blobs/uploads/?mount={flipped}&from=team/app")
    assert mount.status_code == 202
    # ... and a verified upload of it replaces the bytes: served again, and the next scrub agrees.
    assert (await push_blob(registry.client, "team/app", flipped_data)).status_code == 201
    assert (await push_blob(registry.client, "team/app", cut_data)).status_code == 201
    assert (await registry.client.get(f"/v2/team/app/blobs/{flipped}")).content == flipped_data
    assert (await registry.client.get(f"/v2/team/app/blobs/{cut}")).content == cut_data
    again = await scrub(registry)
    assert (again.corrupt, again.missing, again.orphans_removed) == ([], [gone], [])
    assert await corrupt_metric(registry) == before + 2


async def test_a_dry_run_changes_nothing(registry: Registry) -> None:
    (flipped, data), = await pushed(registry, 1000)
    await put_in_storage(registry, flipped, data[::-1])
    orphan_data = random_bytes(10)
    await put_in_storage(registry, sha256(orphan_data), orphan_data)

    report = await scrub(registry, dry_run=True)

    assert report.corrupt == [flipped]
    assert report.orphans_removed == [sha256(orphan_data)]
    assert sha256(orphan_data) in await in_storage(registry)
    assert (await registry.client.head(f"/v2/team/app/blobs/{flipped}")).status_code == 200  # not marked
    async with registry.parts.db.read() as conn:
        assert await jobs.load_state(conn, "scrub") is None
    assert (await scrub(registry)).corrupt == [flipped]  # the real run finds the same


async def test_young_pinned_and_collected_orphans_are_kept(registry: Registry) -> None:
    young, pinned, collected = (random_bytes(50) for _ in range(3))
    for data in (young, pinned, collected):
        await put_in_storage(registry, sha256(data), data)

    report = await scrub(registry, grace=timedelta(hours=1))
    assert report.orphans_removed == []
    assert sorted(report.orphans_kept) == sorted(map(sha256, (young, pinned, collected)))

    location = (await registry.client.post("/v2/team/app/blobs/uploads/")).headers["location"]
    async with registry.parts.db.write() as conn:
        await conn.execute(sa.insert(blob_pins).values(upload_id=location.rsplit("/", 1)[1], digest=sha256(pinned),
                                                       created_at=utcnow()))
        await conn.execute(sa.insert(blob_deletions).values(digest=sha256(collected), started_at=utcnow()))
    report = await scrub(registry)
    assert report.orphans_removed == [sha256(young)]
    assert await in_storage(registry) == {sha256(pinned), sha256(collected)}
    async with registry.parts.db.read() as conn:  # the collector's tombstone is its own
        assert await conn.scalar(sa.select(sa.func.count()).select_from(blob_deletions)) == 1


async def test_a_run_resumes_after_the_saved_digest_and_a_full_pass_starts_over(registry: Registry) -> None:
    digests = sorted(digest for digest, _ in await pushed(registry, 10, 20, 30, 40, 50))
    seen: list[str] = []

    def stop_at_the_third(size: int, digest: str) -> None:
        seen.append(digest)
        if len(seen) == 3:
            raise RuntimeError("the process stops here")

    with pytest.raises(RuntimeError, match="stops here"):
        await scrubber(registry, save_every=1).run(TokenBucket(FAST), on_blob=stop_at_the_third)
    assert seen == digests[:3]  # in digest order
    async with registry.parts.db.read() as conn:
        assert await jobs.load_state(conn, "scrub") == {"after": digests[1]}

    resumed = await scrub(registry)
    assert resumed.resumed_from == digests[1]
    assert resumed.examined == 3
    assert resumed.pass_complete
    fresh = await scrub(registry)
    assert (fresh.resumed_from, fresh.examined) == (None, 5)
    async with registry.parts.db.write() as conn:
        await jobs.save_state(conn, "scrub", {"after": digests[3]})
    assert (await scrub(registry, restart=True)).examined == 5


async def test_the_rate_limit_bounds_the_bytes_read(registry: Registry) -> None:
    await pushed(registry, 300_000, 200_000, 100_000)
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(100_000, burst=50_000, clock=lambda: now[0], sleep=sleep)
    report = await scrubber(registry).run(bucket)
    assert report.bytes_read == bucket.taken == 600_000
    # every byte past the burst waited for its token: 550,000 bytes at 100,000 a second
    assert now[0] == pytest.approx(5.5)
    assert bucket.waited == pytest.approx(5.5)


async def test_the_scheduled_scrub_is_recorded_and_counted(registry: Registry) -> None:
    (flipped, data), = await pushed(registry, 100)
    await put_in_storage(registry, flipped, data[::-1])
    scheduler = registry.parts.scheduler
    assert await scheduler.run_once(next(job for job in scheduler.jobs if job.name == "scrub"))
    runs = (await registry.client.get("/api/v1/jobs", params={"job": "scrub"})).json()
    assert [(r["job"], r["outcome"], r["examined"], r["removed"], r["dry_run"]) for r in runs] == [
        ("scrub", "ok", 1, 0, False)]
    assert runs[0]["detail"]["corrupt"] == [flipped]
    text = (await registry.client.get("/metrics")).text
    assert 'dockyard_job_runs_total{job="scrub",outcome="ok"} 1.0' in text
    assert "dockyard_blobs_corrupt_total 1.0" in text
    assert (await registry.client.get(f"/v2/team/app/blobs/{flipped}")).status_code == 404


async def test_an_unknown_blob_is_still_plainly_unknown(registry: Registry) -> None:
    answer = await registry.client.get(f"/v2/team/app/blobs/{sha256(b'never pushed')}")
    assert answer.status_code == 404
    assert error_codes(answer) == ["BLOB_UNKNOWN"]
    assert "corrupt" not in answer.text


async def test_the_scheduled_scrub_starts_a_pass_only_when_one_is_due(registry: Registry) -> None:
    await pushed(registry, 10, 20)
    scheduler = registry.parts.scheduler
    job = next(job for job in scheduler.jobs if job.name == "scrub")
    assert job.interval == 3600  # it looks every hour; a pass a week (scrub.interval)
    assert await scheduler.run_once(job)  # never ran: due
    assert not await scheduler.run_once(job)  # the pass just ended: not due, and not recorded
    async with registry.parts.db.write() as conn:  # a pass under way (cut short by a restart): due
        await jobs.save_state(conn, "scrub", {"after": "sha256:" + "0" * 64})
    assert await scheduler.run_once(job)
    async with registry.parts.db.write() as conn:  # the last pass ended a week ago: due
        ended = (utcnow() - timedelta(days=7, seconds=1)).isoformat()
        await jobs.save_state(conn, "scrub", {"after": None, "last_pass_ended_at": ended})
    assert await scheduler.run_once(job)
    runs = (await registry.client.get("/api/v1/jobs", params={"job": "scrub"})).json()
    assert [run["examined"] for run in runs] == [2, 2, 2]
