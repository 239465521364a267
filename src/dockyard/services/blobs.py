"""Reading and unlinking blobs of a repository."""

from __future__ import annotations

from dockyard import events
from dockyard.errors import BlobUnknown
from dockyard.oci.digests import parse_digest
from dockyard.oci.names import validate_name
from dockyard.storage.blobstore import BlobLocation, BlobStore
from dockyard.store import blobs as blob_rows
from dockyard.store import repositories
from dockyard.store.db import Database


class BlobService:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    async def locate(self, repository: str, digest: str) -> BlobLocation:
        """Where to read a blob the repository links; BlobUnknown otherwise."""
        validate_name(repository)
        parse_digest(digest)
        size = await blob_rows.linked_size_now(self.db, repository, digest)
        if size is None:
            raise BlobUnknown(detail={"digest": digest})
        location = await self.store.locate(digest)
        if location is None:
            raise BlobUnknown(f"blob {digest} is recorded but its bytes are missing from storage")
        return location

    async def unlink(self, repository: str, digest: str) -> None:
        validate_name(repository)
        parse_digest(digest)
        async with self.db.write() as conn:
            repo_id = await repositories.find_id(conn, repository)
            if repo_id is None or not await blob_rows.unlink(conn, repo_id, digest):
                raise BlobUnknown(detail={"digest": digest})
            await events.record(conn, events.BlobDeleted(repository, digest))
