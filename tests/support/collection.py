"""Helpers for garbage-collection tests: a collector that pauses where a test says, time moved past
the grace period, and a pull that checks every byte."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta

import httpx

from dockyard.app import Components
from dockyard.services.gc import Collector, GcHooks, GcReport
from dockyard.store.clock import utcnow
from dockyard.store.gc import Candidate

ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json"])
BOUND = 60  # seconds any wait in a test may take at most (a hang fails instead of blocking the run)


def after_grace(parts: Components, extra: timedelta = timedelta(seconds=1)) -> datetime:
    """A moment just past the grace period of anything changed until now."""
    return utcnow() + parts.config.gc.grace_period + extra


async def collect(parts: Components, *, dry_run: bool = False, now: datetime | None = None) -> GcReport:
    """A run as if the grace period had passed (``now``: at that moment instead)."""
    return await parts.collector.collect(dry_run=dry_run, now=now or after_grace(parts))


class Pause(GcHooks):
    """Stops the collector at one point (``decided``, ``holding`` or ``bytes``) for one digest
    until the test calls ``release``."""

    def __init__(self, digest: str, *, at: str = "decided") -> None:
        self.digest = digest
        self.at = at
        self.reached = asyncio.Event()
        self._resume = asyncio.Event()

    async def decided(self, candidate: Candidate) -> None:
        if self.at == "decided" and candidate.digest == self.digest and not self.reached.is_set():
            await self._hold()

    async def holding(self, candidate: Candidate) -> None:
        if self.at == "holding" and candidate.digest == self.digest and not self.reached.is_set():
            await self._hold()

    async def before_bytes_delete(self, digest: str) -> None:
        if self.at == "bytes" and digest == self.digest and not self.reached.is_set():
            await self._hold()

    async def _hold(self) -> None:
        self.reached.set()
        async with asyncio.timeout(BOUND):
            await self._resume.wait()

    async def wait(self) -> None:
        async with asyncio.timeout(BOUND):
            await self.reached.wait()

    def release(self) -> None:
        self._resume.set()


def paused_collector(parts: Components, pause: Pause) -> Collector:
    return Collector(parts.db, parts.store, grace_period=parts.config.gc.grace_period, hooks=pause)


async def pulls_completely(client: httpx.AsyncClient, name: str, reference: str) -> list[str]:
    """Pull ``name:reference`` (an index with every child); every blob's bytes must hash to its
    digest. Returns the digests of the blobs pulled."""
    response = await client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT})
    assert response.status_code == 200, response.text
    document = json.loads(response.content)
    pulled: list[str] = []
    for child in document.get("manifests", []):
        pulled += await pulls_completely(client, name, child["digest"])
    for blob in [document["config"], *document.get("layers", [])] if "config" in document else []:
        got = await client.get(f"/v2/{name}/blobs/{blob['digest']}")
        assert got.status_code == 200, got.text
        assert "sha256:" + hashlib.sha256(got.content).hexdigest() == blob["digest"]
        pulled.append(blob["digest"])
    return pulled


async def stored(parts: Components, digest: str) -> bool:
    """Whether storage holds the blob's bytes."""
    return await parts.store.locate(digest) is not None
