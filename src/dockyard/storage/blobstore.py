"""Content-addressed blobs and in-flight uploads on top of a storage driver.

Uploads stream to ``uploads/<id>/data`` while a sha256 is computed on the way, in blocks of
``block_size`` so that hashing and writing of one block overlap with receiving the next. The hash
state lives in this process; when a chunk arrives here for an upload whose earlier chunks another
process received (or after a restart), the state is dropped and ``finish`` re-reads the upload
once to hash it — correct, only slower. A blob appears at its final path only after its digest was
verified and its bytes were fsync'd.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread

from dockyard.errors import DigestInvalid, RangeInvalid, SizeInvalid
from dockyard.oci.digests import Hasher, algorithm_of, new_hasher
from dockyard.storage import layout
from dockyard.storage.driver import PathNotFound, StorageDriver, Writer

DEFAULT_BLOCK = 4 * 1024 * 1024
MAX_HASH_STATES = 4096


@dataclass(slots=True)
class HashState:
    offset: int
    hasher: Hasher


@dataclass(frozen=True, slots=True)
class BlobLocation:
    size: int
    local_path: str | None
    storage_path: str


class BlobStore:
    def __init__(self, driver: StorageDriver, *, block_size: int = DEFAULT_BLOCK) -> None:
        self.driver = driver
        self.block_size = block_size
        self._states: OrderedDict[str, HashState] = OrderedDict()

    # -- blobs ---------------------------------------------------------------------------------

    async def locate(self, digest: str) -> BlobLocation | None:
        path = layout.blob_path(digest)
        try:
            size = await self.driver.stat(path)
        except PathNotFound:
            return None
        return BlobLocation(size=size, local_path=self.driver.local_path(path), storage_path=path)

    def read(self, location: BlobLocation, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self.driver.read(location.storage_path, offset, length)

    async def delete_blob(self, digest: str) -> None:
        await self.driver.delete(layout.blob_path(digest))

    # -- uploads -------------------------------------------------------------------------------

    async def begin(self, upload_id: str) -> None:
        writer = await self.driver.writer(layout.upload_data_path(upload_id))
        await writer.close()
        self._remember(upload_id, HashState(0, new_hasher()))

    async def size(self, upload_id: str) -> int:
        return await self.driver.stat(layout.upload_data_path(upload_id))

    async def append(self, upload_id: str, chunks: AsyncIterator[bytes], start: int | None = None) -> int:
        """Append a stream to the upload; ``start`` (if given) must equal its current size."""
        writer = await self.driver.writer(layout.upload_data_path(upload_id), resume=True)
        try:
            if start is not None and start != writer.size:
                raise RangeInvalid(
                    f"chunk starts at byte {start} but the upload has {writer.size} bytes; "
                    f"send the next chunk from byte {writer.size}",
                    headers={"Range": f"0-{writer.size - 1}" if writer.size else "0-0"})
            state = self._states.pop(upload_id, None)
            if state is not None and state.offset != writer.size:
                state = None
            try:
                await self._pump(chunks, writer, state.hasher if state else None)
            except BaseException:
                state = None  # the hash may not match the bytes on disk any more
                raise
            finally:
                if state is not None:
                    state.offset = writer.size
                    self._remember(upload_id, state)
            return writer.size
        finally:
            await writer.close()

    async def finish(self, upload_id: str, digest: str, expected_size: int | None = None) -> int:
        """Verify the upload against ``digest`` and move it into place; returns its size."""
        path = layout.upload_data_path(upload_id)
        writer = await self.driver.writer(path, resume=True)
        try:
            size = writer.size
            if expected_size is not None and expected_size != size:
                raise SizeInvalid(f"upload has {size} bytes, the request said {expected_size}")
            actual = await self._digest_of_upload(upload_id, digest, size)
            if actual != digest:
                await writer.cancel()
                await self.cancel(upload_id)
                raise DigestInvalid(f"uploaded content has digest {actual}, not {digest}; nothing was stored",
                                    detail={"expected": digest, "actual": actual})
            await writer.commit()
        finally:
            await writer.close()
        target = layout.blob_path(digest)
        if await self._exists(target):
            await self.cancel(upload_id)
        else:
            await self.driver.move(path, target)
            await self.cancel(upload_id)
        return size

    async def cancel(self, upload_id: str) -> None:
        self._states.pop(upload_id, None)
        await self.driver.delete(layout.upload_dir(upload_id))

    async def upload_ids(self) -> list[str]:
        ids = set()
        async for path in self.driver.list(layout.UPLOADS):
            parts = path.split("/")
            if len(parts) >= 2:
                ids.add(parts[1])
        return sorted(ids)

    # -- internals -----------------------------------------------------------------------------

    async def _exists(self, path: str) -> bool:
        try:
            await self.driver.stat(path)
        except PathNotFound:
            return False
        return True

    def _remember(self, upload_id: str, state: HashState) -> None:
        self._states[upload_id] = state
        while len(self._states) > MAX_HASH_STATES:
            self._states.popitem(last=False)

    async def _digest_of_upload(self, upload_id: str, digest: str, size: int) -> str:
        algorithm = algorithm_of(digest)
        state = self._states.pop(upload_id, None)
        if state is not None and state.offset == size and algorithm == "sha256":
            return f"sha256:{state.hasher.hexdigest()}"
        hasher = new_hasher(algorithm)
        async for chunk in self.driver.read(layout.upload_data_path(upload_id)):
            await _hash(hasher, chunk)
        return f"{algorithm}:{hasher.hexdigest()}"

    async def _pump(self, chunks: AsyncIterator[bytes], writer: Writer, hasher: Hasher | None) -> None:
        """Receive into blocks; write and hash one block while the next one arrives."""
        block = bytearray()
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                block += chunk
                if len(block) >= self.block_size:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(_consume(writer, hasher, block))
                    block = bytearray()
        finally:
            if pending is not None:
                await pending
        if block:
            await _consume(writer, hasher, block)


async def _hash(hasher: Hasher, data: bytes | bytearray) -> None:
    if len(data) < 256 * 1024:
        hasher.update(data)
    else:
        await anyio.to_thread.run_sync(hasher.update, data)


async def _consume(writer: Writer, hasher: Hasher | None, block: bytearray) -> None:
    if hasher is None:
        await writer.write(block)
    else:
        await asyncio.gather(writer.write(block), _hash(hasher, block))
