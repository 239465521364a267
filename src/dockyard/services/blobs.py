"""Reading and unlinking blobs of a repository.

A blob the database links but whose bytes storage does not have (deleted behind the registry's
back, lost with a volume or a bucket, truncated) answers 404 ``BLOB_UNKNOWN`` saying so, is logged
as an error with its digest and repository, and is counted (``dockyard_blob_missing_total``).
404, not 503: the condition does not pass by retrying, and a client that pushes the blob again
(docker and skopeo do after a 404 on HEAD) restores it, since a verified upload replaces missing
or damaged bytes. A read that fails in storage (the store unavailable, a disk read error) answers
503 with ``Retry-After`` and is counted too (``dockyard_blob_read_errors_total``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from dockyard import events
from dockyard.errors import BlobUnknown, RegistryError, StorageUnavailable
from dockyard.oci.digests import parse_digest
from dockyard.oci.names import validate_name
from dockyard.storage.blobstore import BlobLocation, BlobStore
from dockyard.storage.driver import PathNotFound
from dockyard.store import blobs as blob_rows
from dockyard.store import gc as gc_rows
from dockyard.store import repositories
from dockyard.store.clock import utcnow
from dockyard.store.db import Database

log = logging.getLogger("dockyard.blobs")


def _uncounted() -> None:
    """No metrics (tests and tools that build the service alone)."""


class BlobService:
    def __init__(self, db: Database, store: BlobStore, *, count_missing: Callable[[], None] = _uncounted,
                 count_read_error: Callable[[], None] = _uncounted,
                 grace_period: timedelta = timedelta(hours=24)) -> None:
        self.db = db
        self.grace_period = grace_period
        self.store = store
        self.count_missing = count_missing
        self.count_read_error = count_read_error

    async def locate(self, repository: str, digest: str) -> BlobLocation:
        """Where to read a blob the repository links; BlobUnknown otherwise."""
        validate_name(repository)
        parse_digest(digest)
        size = await blob_rows.linked_size_now(self.db, repository, digest)
        if size is None:
            raise BlobUnknown(detail={"digest": digest})
        try:
            location = await self.store.locate(digest)
        except (StorageUnavailable, OSError) as exc:
            raise self.read_failed(repository, digest, exc) from exc
        if location is None:
            raise self._missing(repository, digest, "not in storage")
        if location.size != size:
            raise self._missing(repository, digest, f"storage has {location.size} bytes, {size} were pushed")
        return location

    def read_failed(self, repository: str, digest: str, exc: Exception) -> RegistryError:
        """Log and count a blob read that failed in storage; the error the client should see.
        Anything else (a bug) is raised again as it is."""
        if isinstance(exc, PathNotFound | FileNotFoundError | EOFError):  # EOFError: a file ended early
            return self._missing(repository, digest, str(exc))
        if isinstance(exc, StorageUnavailable | OSError):
            self.count_read_error()
            log.error("reading blob %s of repository %s failed in storage: %s", digest, repository,
                      _cause(exc))
            if isinstance(exc, StorageUnavailable):
                return StorageUnavailable(exc.message)  # a new one: the caller raises it from exc
            return StorageUnavailable("the registry could not read this blob from its storage; retry shortly")
        raise exc

    def _missing(self, repository: str, digest: str, why: str) -> BlobUnknown:
        self.count_missing()
        log.error("blob %s of repository %s is recorded but its bytes are missing from storage (%s); "
                  "push it again to restore it", digest, repository, why)
        return BlobUnknown(f"blob {digest} is recorded but its bytes are missing from storage; "
                           "push it again to restore it", detail={"digest": digest})

    async def unlink(self, repository: str, digest: str) -> None:
        validate_name(repository)
        parse_digest(digest)
        async with self.db.write() as conn:
            repo_id = await repositories.find_id(conn, repository)
            if repo_id is None or not await blob_rows.unlink(conn, repo_id, digest):
                raise BlobUnknown(detail={"digest": digest})
            # Its bytes go after the grace period, unless another repository links it by then.
            await gc_rows.add_candidates(conn, [gc_rows.Candidate(gc_rows.BLOB, None, digest)],
                                         reason="blob.deleted", due_at=utcnow() + self.grace_period)
            await events.record(conn, events.BlobDeleted(repository, digest))


def _cause(exc: BaseException) -> str:
    """What went wrong underneath (the store's own error, not only the client's message)."""
    root = exc.__cause__ or exc
    return f"{type(root).__name__}: {str(root)[:300]}"
