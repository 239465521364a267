"""Blob uploads: sessions, chunks, completion, single-request pushes and cross-repository mounts.

Order of steps on completion (DESIGN.md invariant 1): the bytes are verified and durably moved
into place first, then one transaction records the blob, links it and ends the session. A crash
between the two leaves an unreferenced file that nobody can see, never a visible half-blob.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from dockyard import events
from dockyard.errors import BlobUploadUnknown, Denied, DigestInvalid
from dockyard.oci.digests import parse_digest
from dockyard.oci.names import is_valid_name, validate_name
from dockyard.oci.ranges import ByteRange
from dockyard.services import enforcement
from dockyard.storage.blobstore import BlobStore, UploadProgress
from dockyard.storage.driver import PathNotFound
from dockyard.store import blobs as blob_rows
from dockyard.store import repositories, uploads
from dockyard.store.db import Database
from dockyard.store.project_rules import Rules


@dataclass(frozen=True, slots=True)
class UploadStatus:
    upload_id: str
    size: int


def new_upload_id() -> str:
    return secrets.token_urlsafe(24)


class UploadService:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

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
        lock; a push refused there (another push took the room meanwhile) leaves bytes no row
        refers to, which the scrub removes as an orphan.
        """
        parse_digest(digest)
        upload = await self._find(repository, upload_id)
        saved = _saved(upload)
        if body is not None:
            _, saved = await self._append(upload, body, claimed.first if claimed else None)
        if rules is None:
            rules = await enforcement.rules_for(self.db, repository)
        try:
            enforcement.check_name(rules, repository)
            if enforcement.has_quota(rules):
                upload_size = await self.store.size(upload_id, saved)
                async with self.db.read() as conn:
                    await enforcement.ensure_room(conn, rules, repository, blob=digest, size=upload_size,
                                                  locked=False)
            size = await self.store.finish(upload_id, digest, saved)
            async with self.db.write() as conn:
                await enforcement.ensure_room(conn, rules, repository, blob=digest, size=size)
                await blob_rows.record(conn, digest, size)
                await blob_rows.link(conn, upload.repository_id, digest)
                await uploads.delete(conn, upload_id)
                await events.record(conn, events.BlobPushed(repository, digest, size))
        except (DigestInvalid, Denied):
            await self.cancel(repository, upload_id, missing_ok=True)
            raise
        return size

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
            size = await blob_rows.linked_size(conn, source, digest)
            if size is None:
                return False
            await enforcement.ensure_room(conn, rules, repository, blob=digest, size=size)
            repo_id = await repositories.ensure(conn, repository)
            await blob_rows.link(conn, repo_id, digest)
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
