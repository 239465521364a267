"""Scanning images from the blobs already stored: inventory, secrets, malware, then vulnerabilities.

One scan per image manifest digest (``store/scans.py``), whichever repositories hold it. A scan is
claimed in the database before it runs, so across nodes each image is scanned once; within this
process one task per digest runs it, and whoever else wants that result (the worker, a push
policy, the API) awaits the same task. A scan another node runs is waited for by reading its row.

What a scan costs this process: the config blob is read whole (it is small, capped); the layers
are walked once, streamed, by the package, secret and (with ``scan.clamd.socket``) malware
visitors at once, in a child process at a lower CPU priority (``services/scan_process.py``,
``scan/analysis.py``): the walk's Python code (tar headers, the secret rules' regular expressions)
never holds this process's GIL, and at most the largest file a visitor asks for is in memory.

A result matched against an older vulnerability database revision is re-matched from the stored
inventory (``rematch``), never by reading the layers again. When a scan is done its inventory is
attached as a CycloneDX referrer in every repository holding the image (``scan.sbom``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from dockyard.config import ScanConfig
from dockyard.errors import BlobUnknown, RegistryError, Unavailable
from dockyard.oci import mediatypes as mt
from dockyard.oci.manifests import Descriptor, Manifest, parse_manifest
from dockyard.scan.report import SCANNER_VERSION, Analysis, Findings, Inventory
from dockyard.scan.secrets import config_secrets
from dockyard.services.manifests import ManifestService
from dockyard.services.sbom_referrers import SbomReferrers
from dockyard.services.scan_process import analyse_in_child
from dockyard.services.scan_report import NOT_AN_IMAGE, ScanReport
from dockyard.services.uploads import UploadService
from dockyard.services.vulndb import VulnDbService
from dockyard.storage.blobstore import BlobStore
from dockyard.store import scans
from dockyard.store.db import Database

__all__ = ["ScanReport", "ScanService", "ScanTimeout", "is_image"]

log = logging.getLogger("dockyard.scan")
CONFIG_MAX_BYTES = 8 * 1024 * 1024  # an image config larger than this is refused (they are a few KiB)
CLAIM_TTL = timedelta(minutes=5)  # renewed every third of it while the scan runs
RETRY = scans.Retry(after=timedelta(minutes=5), max_attempts=3)
UNSCANNED = "unscanned"


class ScanTimeout(Unavailable):
    """The scan a push policy waits for did not end within scan.push_timeout; it goes on."""


def is_image(manifest: Manifest) -> bool:
    """Whether there is anything to scan: an image manifest with tar layers, not an artifact
    (a signature, an SBOM, anything with a subject or an artifactType)."""
    if manifest.media_type not in mt.IMAGE_MANIFESTS or manifest.subject is not None or manifest.artifact_type:
        return False
    if manifest.config is None or manifest.config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
        return False
    return any(_is_tar_layer(layer) for layer in manifest.layers)


def _is_tar_layer(layer: Descriptor) -> bool:
    kind = layer.media_type
    return "tar" in kind and "foreign" not in kind and "nondistributable" not in kind


def _platform(descriptor: Descriptor) -> str | None:
    p = descriptor.platform or {}
    parts = [str(p[k]) for k in ("os", "architecture", "variant") if p.get(k)]
    return "/".join(parts) or None


def _unobserved(outcome: str, seconds: float) -> None:
    """No metrics (tools that build the service alone)."""


class ScanService:
    def __init__(self, db: Database, store: BlobStore, manifests: ManifestService, uploads: UploadService,
                 vulndb: VulnDbService, config: ScanConfig, *, holder: str,
                 observe: Callable[[str, float], None] = _unobserved, retry: scans.Retry = RETRY,
                 claim_ttl: timedelta = CLAIM_TTL) -> None:
        self.db = db
        self.store = store
        self.manifests = manifests
        self.vulndb = vulndb
        self.config = config
        self.holder = holder  # this node in the scans table's claimed_by
        self.observe = observe  # (outcome, seconds): "done", "failed" or "rematched"
        self.retry = retry
        self.claim_ttl = claim_ttl
        self.sboms = SbomReferrers(db, uploads, manifests)
        self._tasks: dict[str, asyncio.Task[None]] = {}  # the scans this process runs or waits for

    # -- results -----------------------------------------------------------------------------------

    async def current(self, digest: str) -> ScanReport | None:
        """The done, current result of an image (an index: of each child); None if there is none yet.
        A result matched against an older vulnerability database is re-matched first."""
        async with self.db.read() as conn:
            row = await scans.read(conn, digest)
            found = None if row is not None else await scans.manifest(conn, digest)
        if found is not None:
            manifest = parse_manifest(found[1], found[0])
            if manifest.is_index:
                children = [await self.current(d.digest) for d in manifest.manifests]
                if any(child is None for child in children):
                    return None
                return ScanReport.of_index(digest, tuple(c for c in children if c is not None))
            if not is_image(manifest):
                return ScanReport(digest, NOT_AN_IMAGE)
        if row is None or row.status != scans.DONE or row.scanner_version != SCANNER_VERSION:
            return None
        if row.vulndb_revision != await self.vulndb.revision():
            await self.rematch(digest)
            async with self.db.read() as conn:
                row = await scans.read(conn, digest)
            if row is None or row.status != scans.DONE:
                return None
        return ScanReport.from_row(row)

    async def report(self, repository: str, reference: str, *, scan_now: bool = True) -> ScanReport:
        """The report of the image (or index) ``reference`` names in ``repository``; scans it now
        when there is no current result and ``scan_now``. ManifestUnknown if it is not there."""
        stored = await self.manifests.get(repository, reference)
        manifest = parse_manifest(stored.content, stored.media_type)
        if not manifest.is_index:
            return await self._image_report(stored.digest, stored.content, manifest, scan_now)
        children = []
        for child in manifest.manifests:
            found = await self.manifests.get(repository, child.digest)
            child_manifest = parse_manifest(found.content, found.media_type)
            children.append(self._image_report(child.digest, found.content, child_manifest, scan_now,
                                               _platform(child)))
        return ScanReport.of_index(stored.digest, tuple(await asyncio.gather(*children)))

    async def scan_for_push(self, repository: str, digest: str, manifest_body: bytes,
                            media_type: str) -> ScanReport:
        """Scan exactly this image (an index: each child, which the repository has) from blobs already
        present, before its manifest row exists; ScanTimeout after scan.push_timeout (the scan goes
        on, and a retry of the push finds its result)."""
        manifest = parse_manifest(manifest_body, media_type)
        images: list[tuple[str, bytes, Manifest, str | None]] = []
        if manifest.is_index:
            for child in manifest.manifests:
                found = await self.manifests.get(repository, child.digest)
                images.append((child.digest, found.content, parse_manifest(found.content, found.media_type),
                               _platform(child)))
        else:
            images.append((digest, manifest_body, manifest, None))
        waits = [self._scan_once(d, m) for d, _, m, _ in images if is_image(m) and await self.current(d) is None]
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*waits)), self.config.push_timeout.total_seconds())
        except TimeoutError:
            raise ScanTimeout(f"the scan of {digest} did not finish within scan.push_timeout "
                              f"({self.config.push_timeout.total_seconds():g}s); it goes on: push again shortly "
                              "to use its result") from None
        reports = [await self._image_report(d, body, m, False, platform) for d, body, m, platform in images]
        return ScanReport.of_index(digest, tuple(reports)) if manifest.is_index else reports[0]

    async def _image_report(self, digest: str, body: bytes, manifest: Manifest, scan_now: bool,
                            platform: str | None = None) -> ScanReport:
        if not is_image(manifest):
            return ScanReport(digest, NOT_AN_IMAGE, platform=platform)
        current = await self.current(digest)
        if current is None and scan_now:
            await self._scan_once(digest, manifest)
            current = await self.current(digest)
        if current is not None:
            return current if platform is None else replace(current, platform=platform)
        async with self.db.read() as conn:
            row = await scans.read(conn, digest)
        return ScanReport(digest, UNSCANNED, platform=platform) if row is None else ScanReport.from_row(
            row, platform=platform)

    # -- running scans -----------------------------------------------------------------------------

    def _scan_once(self, digest: str, manifest: Manifest, *, claimed: bool = False) -> Awaitable[None]:
        """The one task of this process scanning ``digest`` (claiming it first unless ``claimed``),
        or waiting for the node that does; the caller awaits it (shielded: it goes on without them)."""
        task = self._tasks.get(digest)
        if task is None:
            work = self._run_claimed(digest, manifest) if claimed else self._claim_and_scan(digest, manifest)
            task = self._tasks[digest] = asyncio.create_task(work, name=f"scan:{digest}")
            task.add_done_callback(lambda _t: self._tasks.pop(digest, None))
        return asyncio.shield(task)

    async def _claim_and_scan(self, digest: str, manifest: Manifest) -> None:
        while True:
            async with self.db.write() as conn:
                claimed = await scans.claim_digest(conn, digest, self.holder, self.claim_ttl)
                row = None if claimed else await scans.read(conn, digest)
            if claimed:
                await self._run_claimed(digest, manifest)
                return
            if row is None or row.status == scans.DONE:
                return
            await asyncio.sleep(self.config.interval.total_seconds())  # another node runs it: look again

    async def run_next(self) -> bool:
        """Claim one queued scan (or one due for a retry, or one whose node died) and run it;
        False when there was none."""
        async with self.db.write() as conn:
            claimed = await scans.claim(conn, self.holder, self.claim_ttl, retry=self.retry)
        if not claimed:
            return False
        digest = claimed[0]
        async with self.db.read() as conn:
            found = await scans.manifest(conn, digest)
        if found is None:
            async with self.db.write() as conn:
                await scans.fail(conn, digest, self.holder, "no repository holds this manifest any more")
            return True
        await self._scan_once(digest, parse_manifest(found[1], found[0]), claimed=True)
        return True

    async def _run_claimed(self, digest: str, manifest: Manifest) -> None:
        started = time.monotonic()
        renewing = asyncio.create_task(self._renew(digest))
        outcome = "failed"
        try:
            analysis = await self._analyse(manifest)
            revision, vulnerabilities = await self.vulndb.match(analysis.inventory)
            async with self.db.write() as conn:
                stored = await scans.finish(
                    conn, digest, self.holder, inventory=analysis.inventory.to_json(),
                    findings=analysis.findings.to_json(), vulnerabilities=[v.to_json() for v in vulnerabilities],
                    vulndb_revision=revision, scanner_version=SCANNER_VERSION)
            outcome = "done"
        except Exception as exc:
            await self._record_failure(digest, exc)
            return
        finally:
            renewing.cancel()
            # Not ``suppress(CancelledError)`` around ``await renewing``: a cancel of this task that
            # lands there would be swallowed, and a stopping worker would wait for it forever.
            await asyncio.wait([renewing])
            self._observe(outcome, time.monotonic() - started)
        if stored and self.config.sbom:
            await self.attach_sboms(digest, analysis.inventory)

    async def _record_failure(self, digest: str, exc: Exception) -> None:
        if isinstance(exc, RegistryError):
            reason = exc.message
        elif isinstance(exc, OSError) and exc.strerror:
            reason = f"{type(exc).__name__}: {exc.strerror}"
        else:  # its text may quote what it read: the log has the traceback, the row only the kind
            reason = f"internal error ({type(exc).__name__}); see the registry's log"
            log.error("scanning %s failed", digest, exc_info=exc)
        log.warning("scanning %s failed: %s", digest, reason)
        try:
            async with self.db.write() as conn:
                await scans.fail(conn, digest, self.holder, reason)
        except Unavailable:  # the claim expires; the scan is claimed again
            pass

    async def _renew(self, digest: str) -> None:
        while True:
            await asyncio.sleep(self.claim_ttl.total_seconds() / 3)
            try:
                async with self.db.write() as conn:
                    if not await scans.renew(conn, digest, self.holder, self.claim_ttl):
                        log.warning("the claim on the scan of %s was lost; another node may scan it", digest)
            except Unavailable:
                pass  # an outage: the next round tries again

    def _observe(self, outcome: str, seconds: float) -> None:
        try:
            self.observe(outcome, seconds)
        except Exception:  # metrics never break a scan
            log.exception("counting a scan failed")

    async def _analyse(self, manifest: Manifest) -> Analysis:
        """Read the config, then walk the layers once in a worker thread."""
        assert manifest.config is not None
        config = await self._config(manifest.config)
        config_findings = config_secrets(config, manifest.config.digest)
        tar_layers = [d for d in manifest.layers if _is_tar_layer(d)]
        analysis = await analyse_in_child(self.store, tar_layers, self.config)
        findings = analysis.findings
        secrets = (*config_findings, *findings.secrets)
        return Analysis(analysis.inventory, Findings(secrets, findings.malware, findings.files_scanned,
                                                     findings.skipped_large, findings.skipped_binary,
                                                     findings.malware_engine))

    async def _config(self, descriptor: Descriptor) -> dict[str, Any]:
        location = await self.store.locate(descriptor.digest)
        if location is None:
            raise BlobUnknown(f"config blob {descriptor.digest} is not in storage",
                              detail={"digest": descriptor.digest})
        if location.size > CONFIG_MAX_BYTES:
            raise RegistryError(f"the image config is {location.size} bytes; at most {CONFIG_MAX_BYTES} are read")
        data = b"".join([chunk async for chunk in self.store.read(location)])
        try:
            config = json.loads(data)
        except ValueError:
            raise RegistryError("the image config is not JSON") from None
        return config if isinstance(config, dict) else {}

    # -- re-matching and SBOMs ---------------------------------------------------------------------

    async def rematch(self, digest: str) -> bool:
        """Match a done scan's stored inventory against the current database; True if stored."""
        async with self.db.read() as conn:
            row = await scans.read(conn, digest)
        if row is None or row.status != scans.DONE or row.inventory is None:
            return False
        started = time.monotonic()
        revision, vulnerabilities = await self.vulndb.match(Inventory.from_json(row.inventory))
        async with self.db.write() as conn:
            stored = await scans.rematched(conn, digest, [v.to_json() for v in vulnerabilities], revision,
                                           was=row.vulndb_revision)
        if stored:
            self._observe("rematched", time.monotonic() - started)
        return stored

    async def rematch_stale(self, *, batch: int = 100) -> int:
        """Re-match every done scan made with another database revision; how many were."""
        revision = await self.vulndb.revision()
        if revision is None:
            return 0
        count = 0
        while True:
            async with self.db.read() as conn:
                digests = await scans.stale(conn, revision, limit=batch)
            changed = [digest for digest in digests if await self.rematch(digest)]
            count += len(changed)
            if len(digests) < batch or not changed:
                return count

    async def attach_sboms(self, digest: str, inventory: Inventory | None = None,
                           repositories: Sequence[str] | None = None) -> list[str]:
        """Attach the image's SBOM in each repository holding it (or in ``repositories``) that has
        none yet; the digests of those pushed."""
        async with self.db.read() as conn:
            found = await scans.manifest(conn, digest)
            names = list(repositories) if repositories is not None else await scans.holders(conn, digest)
            row = await scans.read(conn, digest) if inventory is None else None
        if inventory is None and row is not None and row.status == scans.DONE and row.inventory is not None:
            inventory = Inventory.from_json(row.inventory)
        if found is None or inventory is None:
            return []
        pushed = []
        for repository in names:
            try:
                attached = await self.sboms.attach(repository, digest, found[0], len(found[1]), inventory)
            except Unavailable as exc:
                log.warning("the SBOM of %s was not attached in %s: %s", digest, repository, exc.message)
                continue
            if attached is not None:
                pushed.append(attached)
        return pushed

    async def close(self) -> None:
        """Stop the scans this process runs (their claims expire; another node takes them over)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
