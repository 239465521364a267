"""Blob uploads: sessions, chunks, completion, single-request pushes and cross-repository mounts.

Order of steps on completion (DESIGN.md invariant 1): the bytes are verified and durably moved
into place first, then one transaction records the blob, links it and ends the session. A crash
between the two leaves an unreferenced file that nobody can see, never a visible half-blob.

Garbage collection (services/gc.py): before the bytes move into place, a transaction pins the
digest (``blob_pins``), so the collector leaves the blob's bytes alone until the final transaction
links it and removes the pin. While the collector is deleting the bytes of that digest (a
``blob_deletions`` tombstone), the pin waits for it to finish, at most ``deletion_wait`` seconds
(then 503: retry). The new link is a GC candidate after the grace period: a blob that no manifest
lists by then goes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from dockyard import events
from dockyard.errors import BlobUploadUnknown, Denied, DigestInvalid, Unavailable
from dockyard.oci.digests import parse_digest
from dockyard.oci.names import is_valid_name, validate_name
from dockyard.oci.ranges import ByteRange
from dockyard.services import enforcement
from dockyard.storage.blobstore import BlobStore, UploadProgress
from dockyard.storage.driver import PathNotFound
from dockyard.store import blobs as blob_rows
from dockyard.store import gc as gc_rows
from dockyard.store import repositories, uploads
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.project_rules import Rules


@dataclass(frozen=True, slots=True)
class UploadStatus:
    upload_id: str
    size: int


def new_upload_id() -> str:
    return secrets.token_urlsafe(24)


async def _no_wait_hook(digest: str) -> None:
    """Nothing to tell (tests pass a hook that learns when an upload waits for a deletion)."""


class UploadService:
    def __init__(self, db: Database, store: BlobStore, *, grace_period: timedelta = timedelta(hours=24),
                 deletion_wait: float = 30.0,
                 waiting_for_deletion: Callable[[str], Awaitable[None]] = _no_wait_hook) -> None:
        self.db = db
        self.store = store
        self.grace_period = grace_period
        self.deletion_wait = deletion_wait
        self.waiting_for_deletion = waiting_for_deletion

    async def start(self, repository: str) -> UploadStatus:
        """Open an upload session; refused (403 DENIED) when the name breaks the project's naming rule."""
        validate_name(repository)
        enforcement.check_name(await enforcement.rules_for(self.db, repository), repository)
        return await self._start(repository)

    async def _start(self, repository: str) -> UploadStatus:
        upload_id = new_upload_id()
        # The row comes first: storage without a row is debris the purge job may remove at once.
        async with self.db.write() as conn:
            repo_id = await repositories.ensure(conn, repository)
            await uploads.create(conn, upload_id, repo_id)
        await self.store.begin(upload_id)
        return UploadStatus(upload_id, 0)

    async def status(self, repository: str, upload_id: str) -> UploadStatus:
        upload = await self._find(repository, upload_id)
        try:
            return UploadStatus(upload_id, await self.store.size(upload_id, _saved(upload)))
        except PathNotFound:
            raise BlobUploadUnknown() from None

    async def append(self, repository: str, upload_id: str, body: AsyncIterator[bytes],
                     claimed: ByteRange | None) -> UploadStatus:
        """Append one chunk; ``claimed`` (from Content-Range) must continue the upload."""
        upload = await self._find(repository, upload_id)
        size, saved = await self._append(upload, body, claimed.first if claimed else None)
        async with self.db.write() as conn:
            await uploads.record_progress(conn, upload_id, saved.offset if saved else None,
                                          saved.hash_state if saved else None,
                                          saved.writer_state if saved else None)
        return UploadStatus(upload_id, size)

    async def complete(self, repository: str, upload_id: str, digest: str,
                       body: AsyncIterator[bytes] | None, claimed: ByteRange | None,
                       rules: Rules | None = None) -> int:
        """Append the optional last chunk, verify the digest and publish the blob.

        The project's naming rule and quota are checked before the bytes are published (the
        upload's size is known by then): a refused upload is cancelled and nothing is stored.
        The quota is checked again in the transaction that links the blob, under the project's
        lock. A push refused there (another push took the room meanwhile, or the repository was
        deleted) has published bytes that nothing links: they become a GC candidate.
        """
        parse_digest(digest)
        upload = await self._find(repository, upload_id)
        saved = _saved(upload)
        if body is not None:
            _, saved = await self._append(upload, body, claimed.first if claimed else None)
        if rules is None:
            rules = await enforcement.rules_for(self.db, repository)
        await self._pin(upload_id, digest)
        try:
            enforcement.check_name(rules, repository)
            if enforcement.has_quota(rules):
                upload_size = await self.store.size(upload_id, saved)
                async with self.db.read() as conn:
                    await enforcement.ensure_room(conn, rules, repository, blob=digest, size=upload_size,
                                                  locked=False)
            async with self.db.read() as conn:
                repair = await blob_rows.is_corrupt(conn, digest)  # the scrub found the stored bytes corrupt
            size = await self.store.finish(upload_id, digest, saved, replace=repair)
            try:
                async with self.db.write() as conn:
                    if not await repositories.hold(conn, upload.repository_id):
                        raise BlobUploadUnknown("the repository was deleted while this upload ran; push it again")
                    await enforcement.ensure_room(conn, rules, repository, blob=digest, size=size)
                    await blob_rows.record(conn, digest, size)
                    if repair:  # verified bytes replaced the corrupt ones: served again
                        await blob_rows.clear_corrupt(conn, digest)
                    await blob_rows.link(conn, upload.repository_id, digest)
                    await gc_rows.unpin(conn, upload_id)
                    await uploads.delete(conn, upload_id)
                    await self._candidate(conn, upload.repository_id, digest, "upload")
                    await events.record(conn, events.BlobPushed(repository, digest, size))
            except (BlobUploadUnknown, Denied):
                await self._left_published(digest, size)
                raise
        except (DigestInvalid, Denied):
            await self.cancel(repository, upload_id, missing_ok=True)  # the pin goes with the session
            raise
        return size

    async def _left_published(self, digest: str, size: int) -> None:
        """Bytes ``finish`` put in place whose link was refused: the blob's row (if it had none) and
        a candidate, so the collector frees them after the grace period unless something links
        the blob by then."""
        async with self.db.write() as conn:
            await blob_rows.record(conn, digest, size)
            await gc_rows.add_candidates(conn, [gc_rows.Candidate(gc_rows.BLOB, None, digest)],
                                         reason="upload refused", due_at=utcnow() + self.grace_period)

    async def _pin(self, upload_id: str, digest: str) -> None:
        """Keep the collector and the scrub off ``digest``'s bytes until the upload has linked it;
        then wait for a deletion of those bytes that is under way (the upload puts them back).

        The pin is committed before the tombstones are looked at, and a deleter commits its
        tombstone before it looks at the pins: whichever commits second sees the other, so a
        deletion either stops for this pin or is waited for here. (The collector also holds the
        blob's row while it decides, which the pin's transaction shares.)
        """
        async with self.db.write() as conn:
            held = await uploads.hold(conn, upload_id)  # False: its repository was deleted meanwhile
            if held:
                await gc_rows.share_blob(conn, digest)
                await gc_rows.pin(conn, upload_id, digest)
        if not held:
            await self.store.cancel(upload_id)
            raise BlobUploadUnknown("this upload ended while it ran (its repository was deleted); push the blob again")
        deadline = time.monotonic() + self.deletion_wait
        told = False
        while True:
            async with self.db.read() as conn:
                if not await gc_rows.has_tombstone(conn, digest):
                    return
            if not told:
                told = True
                await self.waiting_for_deletion(digest)
            if time.monotonic() >= deadline:
                raise Unavailable(f"blob {digest} is being deleted by garbage collection right now; "
                                  "retry the upload's last request shortly")
            await asyncio.sleep(0.05)

    async def _candidate(self, conn: AsyncConnection, repository_id: int, digest: str, reason: str) -> None:
        """A link nothing may use: the collector removes it after the grace period unless a
        manifest of the repository lists the blob by then."""
        await gc_rows.add_candidates(conn, [gc_rows.Candidate(gc_rows.LINK, repository_id, digest)],
                                     reason=reason, due_at=utcnow() + self.grace_period)

    async def push(self, repository: str, digest: str, body: AsyncIterator[bytes]) -> int:
        """A whole blob in one request (POST with ``?digest=``)."""
        parse_digest(digest)
        validate_name(repository)
        rules = await enforcement.rules_for(self.db, repository)
        enforcement.check_name(rules, repository)
        status = await self._start(repository)
        try:
            return await self.complete(repository, status.upload_id, digest, body, None, rules)
        except BaseException:
            await self.cancel(repository, status.upload_id, missing_ok=True)
            raise

    async def cancel(self, repository: str, upload_id: str, *, missing_ok: bool = False) -> None:
        async with self.db.write() as conn:
            deleted = await uploads.delete(conn, upload_id)
        if not deleted and not missing_ok:
            raise BlobUploadUnknown()
        await self.store.cancel(upload_id)

    async def mount(self, repository: str, digest: str, source: str | None,
                    visible: Callable[[list[str]], Awaitable[list[str]]] | None = None) -> bool:
        """Link a blob another repository has; False when it cannot (the caller then uploads).
        Refused (403 DENIED) when the name breaks the project's naming rule, or when the blob is
        new to the project and would take it over its quota.

        ``visible`` keeps the repositories the caller may pull: a blob in any other one is never
        mounted, so a mount reveals nothing the caller could not read.
        """
        validate_name(repository)
        parse_digest(digest)
        rules = await enforcement.rules_for(self.db, repository)
        enforcement.check_name(rules, repository)
        if source is not None and not is_valid_name(source):
            return False  # no repository has that name: a plain upload follows, as distribution does
        async with self.db.read() as conn:
            candidates = [source] if source is not None else await blob_rows.repositories_linking(
                conn, digest, limit=50)
        if visible is not None:
            candidates = await visible(candidates)
        source = candidates[0] if candidates else None
        async with self.db.write() as conn:
            if source is None:
                return False
            # The source's link and the blob locked: the collector cannot take them until this commits.
            size = await blob_rows.linked_size(conn, source, digest, share=True)
            if size is None:
                return False
            await enforcement.ensure_room(conn, rules, repository, blob=digest, size=size)
            repo_id = await repositories.ensure(conn, repository)
            await blob_rows.link(conn, repo_id, digest)
            await self._candidate(conn, repo_id, digest, "mount")
            await events.record(conn, events.BlobMounted(repository, digest, source))
        return True

    async def _find(self, repository: str, upload_id: str) -> uploads.Upload:
        validate_name(repository)
        async with self.db.read() as conn:
            upload = await uploads.find(conn, upload_id, repository)
        if upload is None:
            raise BlobUploadUnknown()
        return upload

    async def _append(self, upload: uploads.Upload, body: AsyncIterator[bytes],
                      start: int | None) -> tuple[int, UploadProgress | None]:
        try:
            return await self.store.append(upload.id, body, start, _saved(upload))
        except PathNotFound:
            raise BlobUploadUnknown() from None


def _saved(upload: uploads.Upload) -> UploadProgress | None:
    if upload.hash_offset is None:
        return None
    return UploadProgress(upload.hash_offset, upload.hash_state, upload.storage_state)
