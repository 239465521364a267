"""Blob bytes that go missing behind the blobstore's back, and a finish retried after a failure,
on every driver.

A blob's location (its size, which the response's ``Content-Length`` is built from) is taken
before its bytes are read. Whatever happens to the stored bytes in between, a read yields exactly
that many bytes or raises: deleted, ``PathNotFound``; replaced by fewer, ``BytesMissing`` (a kind of
``PathNotFound``). Never a shorter stream that ends as if complete. A new push of a blob whose
stored bytes are damaged puts the verified bytes back. A finish that failed after its upload was
committed (the store went away before the blob was moved into place) succeeds when the client
retries it, from the state saved before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from dockyard.storage import layout
from dockyard.storage.blobstore import BlobStore, BytesMissing
from dockyard.storage.driver import PathNotFound, StorageDriver
from tests.drivers.test_blobstore import BLOCK, read_blob, upload

DATA = bytes(range(256)) * 40  # 10240 bytes


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def drain(chunks: AsyncIterator[bytes], into: bytearray) -> None:
    async for chunk in chunks:
        into += chunk


async def stored_blob(driver: StorageDriver) -> BlobStore:
    store = BlobStore(driver, block_size=BLOCK)
    await upload(store, "upload-0001", DATA)
    await store.finish("upload-0001", sha256(DATA))
    return store


@pytest.mark.parametrize(("offset", "length"), [(0, None), (100, 5000)])
async def test_a_blob_deleted_after_it_was_located_raises_on_read(driver: StorageDriver, offset: int,
                                                                  length: int | None) -> None:
    store = await stored_blob(driver)
    location = await store.locate(sha256(DATA))
    assert location is not None
    await driver.delete(layout.blob_path(sha256(DATA)))
    with pytest.raises(PathNotFound):
        _ = [chunk async for chunk in store.read(location, offset, length)]


@pytest.mark.parametrize(("offset", "length"), [(0, None), (100, 9000), (5000, None)])
async def test_a_blob_shortened_after_it_was_located_raises_instead_of_ending_short(
        driver: StorageDriver, offset: int, length: int | None) -> None:
    store = await stored_blob(driver)
    location = await store.locate(sha256(DATA))
    assert location is not None
    await driver.put_content(layout.blob_path(sha256(DATA)), DATA[:4000])
    received = bytearray()
    with pytest.raises(BytesMissing) as raised:
        await drain(store.read(location, offset, length), received)
    expected = (len(DATA) - offset) if length is None else length
    assert raised.value.expected == expected
    assert raised.value.got == len(received) < expected
    assert received == DATA[offset:4000]


async def test_a_new_push_replaces_damaged_bytes(driver: StorageDriver) -> None:
    store = await stored_blob(driver)
    await driver.put_content(layout.blob_path(sha256(DATA)), DATA[:4000])
    await upload(store, "upload-0002", DATA, chunk=3000)
    assert await store.finish("upload-0002", sha256(DATA)) == len(DATA)
    assert await read_blob(store, sha256(DATA)) == DATA


@pytest.mark.parametrize("size", [len(DATA), 9 * 1024 * 1024 + 7])  # S3: a tail only, and a part and a tail
async def test_a_finish_that_failed_after_committing_can_be_retried(driver: StorageDriver, size: int) -> None:
    data = (DATA * (size // len(DATA) + 1))[:size]
    store = BlobStore(driver, block_size=BLOCK if size < 100_000 else 1024 * 1024)
    saved = await upload(store, "upload-0003", data, chunk=max(3000, size // 3))
    writer = await driver.writer(layout.upload_data_path("upload-0003"), resume=True,
                                 state=saved.writer_state if saved else None)
    await writer.commit()  # what finish does first; then, here, the store failed
    await writer.close()
    assert await store.finish("upload-0003", sha256(data), saved) == size
    assert await read_blob(store, sha256(data)) == data
