"""Content-addressed blobs and in-flight uploads on top of a storage driver.

Uploads stream to ``uploads/<id>/data`` while a sha256 is computed on the way, in blocks of
``block_size`` so that hashing and writing of one block overlap with receiving the next.

The running hash is not kept in this process: ``append`` returns it as a ``UploadProgress`` (OpenSSL's
112-byte SHA-256 state and the offset it covers) for the caller to store with the upload, and
the next ``append`` or ``finish``, on whichever worker or node, resumes from it. Uploads are
append-only, so a saved state stays valid: if bytes were appended after it was saved (a request
that failed before its state was stored), only those bytes are read back to catch up. Without a
state (sha512, or an OpenSSL without the low-level SHA-256 API) ``finish`` reads the upload once.
A blob appears at its final path only after its digest was verified and its bytes were fsync'd.

A read of a blob yields exactly the bytes its location promises or raises: bytes that are gone
(``PathNotFound``) or end early (``BytesMissing``) never pass for a shorter blob, so a response
whose length was already sent is cut rather than completed short.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread

from dockyard.errors import DigestInvalid, RangeInvalid, SizeInvalid
from dockyard.oci.digests import Hasher, algorithm_of, new_hasher
from dockyard.storage import layout
from dockyard.storage.driver import PathNotFound, StorageDriver, Writer
from dockyard.storage.hashstate import ResumableSha256, resumable_sha256

DEFAULT_BLOCK = 2 * 1024 * 1024  # 2 x 2 MiB per upload in flight: as fast as 4 MiB, less memory


@dataclass(frozen=True, slots=True)
class UploadProgress:
    """What the next request of an upload needs, kept in the uploads row: the bytes received
    (``offset``), the running SHA-256 over them, and the storage writer's own state."""

    offset: int
    hash_state: bytes | None
    writer_state: bytes | None = None


class BytesMissing(PathNotFound):
    """The stored file ended before the bytes its size promised (truncated or replaced meanwhile)."""

    def __init__(self, path: str, expected: int, got: int) -> None:
        super().__init__(path)
        self.args = (f"storage path {path} ended after {got} of {expected} bytes",)
        self.expected = expected
        self.got = got


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: str
    size: int
    modified: datetime


@dataclass(frozen=True, slots=True)
class BlobLocation:
    size: int
    local_path: str | None
    storage_path: str


class BlobStore:
    def __init__(self, driver: StorageDriver, *, block_size: int = DEFAULT_BLOCK) -> None:
        self.driver = driver
        self.block_size = block_size
        self.buffers = BufferPool(block_size)

    # -- blobs ---------------------------------------------------------------------------------

    async def locate(self, digest: str) -> BlobLocation | None:
        path = layout.blob_path(digest)
        try:
            size = await self.driver.stat(path)
        except PathNotFound:
            return None
        return BlobLocation(size=size, local_path=self.driver.local_path(path), storage_path=path)

    def redirect_url(self, location: BlobLocation) -> str | None:
        """Where a client may download the blob directly (a presigned URL), if the driver offers it;
        asked only for a GET, as signing one is wasted on a HEAD."""
        return self.driver.redirect_url(location.storage_path)

    async def read(self, location: BlobLocation, offset: int = 0,
                   length: int | None = None) -> AsyncGenerator[bytes, None]:
        """The blob's bytes from ``offset``, ``length`` of them (default: to its end), exactly."""
        expected = location.size - offset if length is None else length
        got = 0
        async for chunk in self.driver.read(location.storage_path, offset, expected):
            got += len(chunk)
            yield chunk
        if got != expected:
            raise BytesMissing(location.storage_path, expected, got)

    async def delete_blob(self, digest: str) -> None:
        await self.driver.delete(layout.blob_path(digest))

    async def stored_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every blob file in storage (whatever the database says), with its size and when it was
        written; files under ``blobs/`` that are not named like a blob are left out."""
        async for stored in self.driver.walk(layout.BLOBS):
            digest = layout.digest_of_blob_path(stored.path)
            if digest is not None:
                yield StoredBlob(digest, stored.size, stored.modified)

    # -- uploads -------------------------------------------------------------------------------

    async def begin(self, upload_id: str) -> None:
        data = layout.upload_data_path(upload_id)
        if self.driver.local_path(data) is None:
            # No file shows an object store's upload before its commit: mark that it exists.
            # (A filesystem's data file does; the marker would cost two fsyncs per upload.)
            await self.driver.put_content(layout.upload_marker_path(upload_id), b"")
        writer = await self.driver.writer(data)
        await writer.close()

    async def size(self, upload_id: str, saved: UploadProgress | None = None) -> int:
        """Bytes received so far; PathNotFound if the upload does not exist."""
        path = layout.upload_data_path(upload_id)
        try:
            return await self.driver.stat(path)
        except PathNotFound:
            await self.driver.stat(layout.upload_marker_path(upload_id))  # still an upload at all?
        # An object store: the writer knows, from the saved state (what was acknowledged).
        writer = await self._resume_writer(upload_id, saved)
        try:
            return writer.size
        finally:
            await writer.close()

    async def append(self, upload_id: str, chunks: AsyncIterator[bytes], start: int | None = None,
                     saved: UploadProgress | None = None) -> tuple[int, UploadProgress | None]:
        """Append a stream to the upload; ``start`` (if given) must equal its current size.

        Returns the new size and the hash state to save for the next request (None if this
        upload's hash cannot be carried, in which case ``finish`` reads the upload).
        """
        writer = await self._resume_writer(upload_id, saved)
        try:
            if start is not None and start != writer.size:
                raise RangeInvalid(
                    f"chunk starts at byte {start} but the upload has {writer.size} bytes; "
                    f"send the next chunk from byte {writer.size}",
                    headers={"Range": f"0-{writer.size - 1}" if writer.size else "0-0"})
            hasher = await self._resume(upload_id, saved, writer.size)
            await self._pump(chunks, writer, hasher)
        finally:
            await writer.close()
        hash_state = hasher.state() if isinstance(hasher, ResumableSha256) else None
        writer_state = writer.state()
        if hash_state is None and writer_state is None:
            return writer.size, None
        return writer.size, UploadProgress(writer.size, hash_state, writer_state)

    async def finish(self, upload_id: str, digest: str, saved: UploadProgress | None = None,
                     expected_size: int | None = None, *, replace: bool = False) -> int:
        """Verify the upload against ``digest`` and move it into place; returns its size.

        Stored bytes of the right size stay as they are, unless ``replace`` (the scrub found them
        corrupt): then the verified upload takes their place."""
        writer = await self._resume_writer(upload_id, saved)
        try:
            size = writer.size
            if expected_size is not None and expected_size != size:
                raise SizeInvalid(f"upload has {size} bytes, the request said {expected_size}")
            await writer.commit()  # durable, and readable on an object store; still not a blob
        finally:
            await writer.close()
        actual = await self._digest_of_upload(upload_id, digest, size, saved)
        if actual != digest:
            await self.cancel(upload_id)
            raise DigestInvalid(f"uploaded content has digest {actual}, not {digest}; nothing was stored",
                                detail={"expected": digest, "actual": actual})
        target = layout.blob_path(digest)
        # absent, damaged, or corrupt: the verified upload replaces it
        if replace or await self._size_or_none(target) != size:
            await self.driver.move(layout.upload_data_path(upload_id), target)
        await self.cancel(upload_id)
        return size

    async def cancel(self, upload_id: str) -> None:
        await self.driver.delete(layout.upload_dir(upload_id))

    async def upload_ids(self) -> list[str]:
        ids = set()
        async for path in self.driver.list(layout.UPLOADS):
            parts = path.split("/")
            if len(parts) >= 2:
                ids.add(parts[1])
        return sorted(ids)

    # -- internals -----------------------------------------------------------------------------

    async def _resume_writer(self, upload_id: str, saved: UploadProgress | None) -> Writer:
        return await self.driver.writer(layout.upload_data_path(upload_id), resume=True,
                                        state=saved.writer_state if saved else None)

    async def _size_or_none(self, path: str) -> int | None:
        try:
            return await self.driver.stat(path)
        except PathNotFound:
            return None

    async def _resume(self, upload_id: str, saved: UploadProgress | None, size: int) -> Hasher | None:
        """A hash over the upload's first ``size`` bytes, from the saved state if possible."""
        if saved is not None and saved.hash_state is not None and saved.offset <= size:
            hasher = resumable_sha256(saved.hash_state)
            if hasher is not None:
                if saved.offset == size:
                    return hasher
                try:  # bytes arrived after the state was saved: hash just those
                    async for chunk in self.driver.read(layout.upload_data_path(upload_id), saved.offset,
                                                        size - saved.offset):
                        await _hash(hasher, chunk)
                except PathNotFound:
                    return None  # an object store cannot read an uncommitted upload: hash it at the end
                return hasher
        if size == 0:
            return resumable_sha256() or new_hasher()
        return None

    async def _digest_of_upload(self, upload_id: str, digest: str, size: int, saved: UploadProgress | None) -> str:
        algorithm = algorithm_of(digest)
        hasher = await self._resume(upload_id, saved, size) if algorithm == "sha256" else None
        if hasher is None:
            hasher = new_hasher(algorithm)
            async for chunk in self.driver.read(layout.upload_data_path(upload_id)):
                await _hash(hasher, chunk)
        return f"{algorithm}:{hasher.hexdigest()}"

    async def _pump(self, chunks: AsyncIterator[bytes], writer: Writer, hasher: Hasher | None) -> None:
        """Receive into exact blocks; write and hash one block while the next one fills.

        Blocks are page-aligned buffers from a small pool, so a filesystem writer can send them
        with direct I/O; two per upload in flight bound the memory an upload holds.
        """
        buffers = [self.buffers.take(), self.buffers.take()]
        filling, used = 0, 0
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                source = memoryview(chunk)
                while source:
                    block = buffers[filling]
                    take = min(len(source), self.block_size - used)
                    block[used:used + take] = source[:take]
                    source, used = source[take:], used + take
                    if used == self.block_size:
                        if pending is not None:
                            await pending
                        pending = asyncio.ensure_future(_consume(writer, hasher, memoryview(block)))
                        filling, used = 1 - filling, 0
            if pending is not None:
                await pending
                pending = None
            if used:
                await _consume(writer, hasher, memoryview(buffers[filling])[:used])
        finally:
            if pending is not None:
                await pending
            for block in buffers:
                self.buffers.give(block)


class BufferPool:
    """Page-aligned block buffers, reused while uploads overlap: fresh memory is slow to touch on
    virtual machines. Once no block is in use the pool lets go of them all, so an idle worker holds
    no upload memory however many uploads it once ran at a time.

    Blocks are dropped, not closed: a worker thread may still hold a view of the last block it
    wrote, and the memory goes back when that view does.
    """

    def __init__(self, size: int, keep: int = 16) -> None:
        self.size = size
        self.keep = keep
        self._free: list[mmap.mmap] = []
        self._in_use = 0

    @property
    def pooled(self) -> int:
        """Blocks held for reuse, not in use."""
        return len(self._free)

    def take(self) -> mmap.mmap:
        self._in_use += 1
        return self._free.pop() if self._free else mmap.mmap(-1, self.size)

    def give(self, block: mmap.mmap) -> None:
        self._in_use -= 1
        if not self._in_use:
            self._free.clear()
        elif len(self._free) < self.keep:
            self._free.append(block)


async def _hash(hasher: Hasher, data: bytes | bytearray | memoryview) -> None:
    if len(data) < 256 * 1024:
        hasher.update(data)
    else:
        await anyio.to_thread.run_sync(hasher.update, data)


async def _consume(writer: Writer, hasher: Hasher | None, block: memoryview) -> None:
    if hasher is None:
        await writer.write(block)
    else:
        await asyncio.gather(writer.write(block), _hash(hasher, block))
