"""The scan queue's guarantees in the real app on SQLite and PostgreSQL: each image scanned once
when nodes race for it, a failure recorded and retried, a re-match after a vulnerability database
import that reads no layer, nothing queued with scan.enabled = false, a push policy's wait and its
timeout, and the API's access and 404."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from dockyard.jobs.scan import NodeSlots, Rematch, ScanQueue, ScanWorkers, scan_jobs
from dockyard.services.scanning import ScanTimeout
from dockyard.services.vulndb import VulnDbService
from dockyard.storage import layout
from dockyard.store import scans
from dockyard.store.clock import utcnow
from tests.integration.conftest import Registry, client_as
from tests.integration.scanning_support import (
    AWS_SECRET,
    NAME,
    debian_app,
    drain,
    image_of,
    node,
    opened,
    queue_pushed,
    scan_config,
    scan_row,
    write_advisory,
)
from tests.support.content import error_codes, push_blob, push_image, sha256


@pytest.fixture
async def registry(tmp_path: Path, database_url: str) -> AsyncIterator[Registry]:
    async for opened_registry in opened(scan_config(tmp_path, database_url)):
        yield opened_registry


async def test_two_nodes_scan_an_image_once(registry: Registry) -> None:
    parts = registry.parts
    images = [debian_app(architecture=arch) for arch in ("amd64", "arm64", "s390x")]
    for image in images:
        await push_image(registry.client, NAME, image)
    await queue_pushed(parts)
    outcomes: list[str] = []
    a, b = node(parts, "node-a", outcomes=outcomes), node(parts, "node-b", outcomes=outcomes)
    ran = await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    assert sum(ran) == 3
    assert outcomes == ["done"] * 3
    # Two nodes asked for the report of the same unscanned image at once: one scans, one waits.
    late = debian_app(architecture="ppc64le")
    await push_image(registry.client, NAME, late, "late")
    reports = await asyncio.gather(a.report(NAME, "late"), b.report(NAME, "late"))
    assert [r.status for r in reports] == ["done", "done"]
    assert outcomes == ["done"] * 4
    assert (await scan_row(parts, late.digest)).attempts == 1  # type: ignore[union-attr]


async def test_a_claim_whose_node_died_is_taken_over(registry: Registry) -> None:
    parts = registry.parts
    image = debian_app()
    await push_image(registry.client, NAME, image)
    await queue_pushed(parts)
    async with parts.db.write() as conn:
        assert await scans.claim(conn, "dead-node", timedelta(seconds=-1)) == [image.digest]
    alive = node(parts, "alive")
    assert await alive.run_next()
    row = await scan_row(parts, image.digest)
    assert row is not None
    assert row.status == "done"
    assert row.attempts == 2


async def test_a_failed_scan_is_recorded_and_retried(registry: Registry) -> None:
    parts = registry.parts
    image = debian_app()
    await push_image(registry.client, NAME, image, "v1")
    await queue_pushed(parts)
    layer = image.layers[1]
    await parts.store.delete_blob(sha256(layer))
    outcomes: list[str] = []
    worker = node(parts, "node-a", outcomes=outcomes)
    assert await worker.run_next()
    row = await scan_row(parts, image.digest)
    assert row is not None
    assert row.status == "failed"
    assert row.attempts == 1
    assert row.error is not None
    assert "not in storage" in row.error
    failed = (await registry.client.get(f"/api/v1/repositories/{NAME}/manifests/{image.digest}/scan")).json()
    # The API scans now when there is no current result: it fails again, and says why.
    assert failed["status"] == "failed"
    assert "not in storage" in failed["error"]

    await parts.store.driver.put_content(layout.blob_path(sha256(layer)), layer)  # the storage is back
    assert await worker.run_next()  # the retry
    row = await scan_row(parts, image.digest)
    assert row is not None
    assert row.status == "done"
    assert row.error is None
    assert outcomes == ["failed", "done"]  # (the API's scan ran on the app's own service)


async def test_failures_stop_being_retried_after_the_last_attempt(registry: Registry) -> None:
    parts = registry.parts
    broken = image_of([b"this is not a tar archive at all" * 40])
    await push_image(registry.client, NAME, broken)
    await queue_pushed(parts)
    worker = node(parts, "node-a", retry=scans.Retry(timedelta(0), 2))
    assert await drain(worker) == 2
    row = await scan_row(parts, broken.digest)
    assert row is not None
    assert row.status == "failed"
    assert row.attempts == 2
    assert "not a readable tar archive" in (row.error or "")
    # A push of it again queues it again.
    await push_image(registry.client, "team/other", broken)
    assert await queue_pushed(parts) == 1


async def test_a_new_vulnerability_database_rematches_without_reading_layers(registry: Registry,
                                                                              tmp_path: Path) -> None:
    parts = registry.parts
    image = debian_app()
    await push_image(registry.client, NAME, image, "v1")
    await queue_pushed(parts)
    await drain(parts.scanning)
    before = await parts.scanning.report(NAME, "v1")
    assert before.vulnerabilities == ()
    assert before.vulndb_revision is None

    for layer in json.loads(image.manifest)["layers"]:  # from now on a layer read would fail
        await parts.store.delete_blob(layer["digest"])
    advisories = tmp_path / "osv"
    write_advisory(advisories, "PYSEC-2024-1", "requests", "PyPI", "0", "2.32.0", ["2.31.0"])
    write_advisory(advisories, "PYSEC-2024-2", "requests", "PyPI", "2.32.0", "2.33.0", ["2.32.0"])  # above it
    vulndb = VulnDbService(parts.db, parts.config.scan.vulndb)
    await vulndb.import_path(advisories)
    revision = await vulndb.revision()

    rematch = Rematch(parts.db, parts.scanning)
    assert await rematch.is_due()
    done = await rematch.run()
    assert done.rematched == 1
    assert done.revision == revision
    row = await scan_row(parts, image.digest)
    assert row is not None
    assert row.vulndb_revision == revision
    after = await parts.scanning.report(NAME, "v1")
    assert [(v.id, v.package, v.installed) for v in after.vulnerabilities] == [("PYSEC-2024-1", "requests", "2.31.0")]
    assert after.vulnerabilities[0].fixed == "2.32.0"
    assert after.summary["high"] == 1
    assert not await rematch.is_due()


async def test_a_result_of_an_older_database_is_rematched_when_read(registry: Registry, tmp_path: Path) -> None:
    parts = registry.parts
    image = debian_app()
    await push_image(registry.client, NAME, image, "v1")
    await parts.scanning.report(NAME, "v1")
    write_advisory(tmp_path / "osv", "PYSEC-2024-1", "requests", "PyPI", "0", "2.32.0", ["2.31.0"])
    await VulnDbService(parts.db, parts.config.scan.vulndb).import_path(tmp_path / "osv")
    answer = await registry.client.get(f"/api/v1/repositories/{NAME}/manifests/v1/scan")
    assert [v["id"] for v in answer.json()["vulnerabilities"]] == ["PYSEC-2024-1"]
    assert (await scan_row(parts, image.digest)).attempts == 1  # type: ignore[union-attr]


async def test_nothing_is_queued_with_scanning_off(tmp_path: Path, database_url: str) -> None:
    async for registry in opened(scan_config(tmp_path, database_url, enabled=False)):
        parts = registry.parts
        image = debian_app()
        await push_image(registry.client, NAME, image, "v1")
        assert scan_jobs(parts.db, parts.scanning, parts.config.scan, parts.scan_workers) == []
        assert (await ScanQueue(parts.db, parts.scanning, parts.config.scan).run()).queued == 0
        assert await scan_row(parts, image.digest) is None
        assert not await parts.scanning.run_next()


async def test_a_push_policy_waits_for_the_scan_of_that_image(registry: Registry) -> None:
    parts = registry.parts
    image = debian_app()
    for blob in image.blobs:
        await push_blob(registry.client, NAME, blob)
    report = await parts.scanning.scan_for_push(NAME, image.digest, image.manifest, image.media_type)
    assert report.is_done
    assert any(s.removed for s in report.secrets)
    assert AWS_SECRET not in json.dumps(report.to_json())
    await push_image(registry.client, NAME, image, "v1")
    assert await queue_pushed(parts) == 0  # scanned already: its SBOM is attached now
    listed = await registry.client.get(f"/v2/{NAME}/referrers/{image.digest}")
    assert len(listed.json()["manifests"]) == 1


async def test_a_push_scan_past_its_timeout_goes_on(tmp_path: Path, database_url: str) -> None:
    async for registry in opened(scan_config(tmp_path, database_url, push_timeout="0s")):
        parts = registry.parts
        image = debian_app()
        for blob in image.blobs:
            await push_blob(registry.client, NAME, blob)
        with pytest.raises(ScanTimeout) as refused:
            await parts.scanning.scan_for_push(NAME, image.digest, image.manifest, image.media_type)
        assert refused.value.status == 503
        assert "push again" in refused.value.message
        await push_image(registry.client, NAME, image, "v1")
        report = await parts.scanning.report(NAME, "v1")  # joins the scan that went on
        assert report.is_done
        assert (await scan_row(parts, image.digest)).attempts == 1  # type: ignore[union-attr]


async def test_the_report_needs_pull_access_and_a_known_reference(registry: Registry) -> None:
    image = debian_app()
    await push_image(registry.client, NAME, image, "v1")
    unknown = await registry.client.get(f"/api/v1/repositories/{NAME}/manifests/v2/scan")
    assert unknown.status_code == 404
    assert error_codes(unknown) == ["MANIFEST_UNKNOWN"]
    nowhere = await registry.client.get("/api/v1/repositories/team/none/manifests/v1/scan")
    assert nowhere.status_code == 404
    assert error_codes(nowhere) == ["MANIFEST_UNKNOWN"]

    added = await registry.client.post("/api/v1/users", json={"name": "outsider", "password": "outsider-pass-1"})
    assert added.status_code == 201, added.text
    async with client_as(registry, ("outsider", "outsider-pass-1")) as outsider:
        for reference in ("v1", "v2"):
            denied = await outsider.get(f"/api/v1/repositories/{NAME}/manifests/{reference}/scan")
            assert denied.status_code == 404
            assert error_codes(denied) == ["NAME_UNKNOWN"]
    assert await scan_row(registry.parts, image.digest) is None  # nothing scanned for them
    async with client_as(registry, None) as anonymous:
        assert (await anonymous.get(f"/api/v1/repositories/{NAME}/manifests/v1/scan")).status_code == 401


async def test_the_workers_of_a_node_scan_what_the_queue_reads(registry: Registry, tmp_path: Path) -> None:
    parts = registry.parts
    finished = asyncio.Event()
    outcomes: list[str] = []

    def observe(outcome: str) -> None:
        outcomes.append(outcome)
        finished.set()

    service = node(parts, "node-w", outcomes=None)
    service.observe = lambda outcome, _seconds: observe(outcome)
    workers = ScanWorkers(service, parts.config.scan, NodeSlots(tmp_path / "slots", parts.config.scan.workers))
    workers.start()
    try:
        image = debian_app()
        await push_image(registry.client, NAME, image, "v1")
        queue = ScanQueue(parts.db, service, parts.config.scan, workers.wake)
        assert await queue.is_due()
        assert (await queue.run()).queued == 1
        assert not await queue.is_due()
        await asyncio.wait_for(finished.wait(), 60)
    finally:
        await workers.stop()
    assert outcomes == ["done"]
    assert (await scan_row(parts, image.digest)).status == "done"  # type: ignore[union-attr]


def test_a_node_runs_at_most_its_number_of_scans(tmp_path: Path) -> None:
    one, other = NodeSlots(tmp_path, 2), NodeSlots(tmp_path, 2)  # as two worker processes see them
    held = [one.take(), other.take()]
    assert None not in held
    assert one.take() is None
    assert other.take() is None
    NodeSlots.give(held.pop())
    again = other.take()
    assert again is not None
    for fd in (*held, again):
        NodeSlots.give(fd)  # type: ignore[arg-type]


async def test_rows_of_images_no_repository_holds_are_forgotten(registry: Registry) -> None:
    parts = registry.parts
    kept, gone = debian_app(architecture="amd64"), debian_app(architecture="arm64")
    await push_image(registry.client, NAME, kept, "kept")
    await push_image(registry.client, NAME, gone, "gone")
    await queue_pushed(parts)
    await drain(parts.scanning)
    assert (await registry.client.delete(f"/v2/{NAME}/manifests/{gone.digest}")).status_code == 202
    async with parts.db.write() as conn:
        assert await scans.forget_unheld(conn, utcnow() - timedelta(days=1)) == 0  # too recent yet
        assert await scans.forget_unheld(conn, utcnow() + timedelta(seconds=1)) == 1
    assert await scan_row(parts, gone.digest) is None
    assert await scan_row(parts, kept.digest) is not None
    assert (await Rematch(parts.db, parts.scanning).run()).forgotten == 0
