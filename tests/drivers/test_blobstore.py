"""BlobStore over every driver: streamed uploads, digest verification, resumes across processes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dockyard.errors import DigestInvalid, RangeInvalid, SizeInvalid
from dockyard.storage.blobstore import BlobStore, UploadProgress
from dockyard.storage.driver import PathNotFound, StorageDriver

BLOCK = 1024  # small blocks, so that a few KiB already take the pipelined write-and-hash path
DATA = bytes(range(256)) * 37 + b"end"  # 9475 bytes: several blocks and a partial one


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[start:start + size] for start in range(0, len(data), size)]


async def read_blob(store: BlobStore, digest: str, offset: int = 0, length: int | None = None) -> bytes:
    location = await store.locate(digest)
    assert location is not None, f"blob {digest} is not stored"
    return b"".join([chunk async for chunk in store.read(location, offset, length)])


async def assert_upload_gone(store: BlobStore, upload_id: str) -> None:
    with pytest.raises(PathNotFound):
        await store.size(upload_id)
    assert upload_id not in await store.upload_ids()
    assert [path async for path in store.driver.list(f"uploads/{upload_id}")] == []


async def upload(store: BlobStore, upload_id: str, data: bytes, chunk: int = 1000) -> UploadProgress | None:
    """Append ``data`` in pieces, carrying the saved hash state the way the uploads table does."""
    await store.begin(upload_id)
    offset, saved = 0, None
    for piece in pieces(data, chunk):
        offset, saved = await store.append(upload_id, stream(piece), start=offset, saved=saved)
    return saved


@pytest.fixture
def store(driver: StorageDriver) -> BlobStore:
    return BlobStore(driver, block_size=BLOCK)


# -- the happy path --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 4000, len(DATA)])
async def test_upload_in_several_appends_then_finish(store: BlobStore, chunk: int) -> None:
    # Byte-sized appends are one request each on an object store: a few hundred of them suffice.
    data = DATA[:300] if chunk == 1 else DATA
    saved = await upload(store, "upload-0001", data, chunk)
    assert saved is not None
    assert saved.offset == len(data)
    assert await store.size("upload-0001") == len(data)
    assert await store.finish("upload-0001", sha256(data), saved) == len(data)
    location = await store.locate(sha256(data))
    assert location is not None
    assert location.size == len(data)
    assert await read_blob(store, sha256(data)) == data
    assert await read_blob(store, sha256(data), 100, 50) == data[100:150]
    await assert_upload_gone(store, "upload-0001")


async def test_append_streams_many_small_chunks_and_reports_the_size(store: BlobStore) -> None:
    await store.begin("upload-0001")
    assert await store.size("upload-0001") == 0
    assert (await store.append("upload-0001", stream(*pieces(DATA[:5000], 7))))[0] == 5000
    assert (await store.append("upload-0001", stream(*pieces(DATA[5000:], 3000)), start=5000))[0] == len(DATA)
    await store.finish("upload-0001", sha256(DATA), expected_size=len(DATA))
    assert await read_blob(store, sha256(DATA)) == DATA


async def test_a_large_upload_with_the_default_block_size(driver: StorageDriver) -> None:
    store = BlobStore(driver)
    data = bytes(range(256)) * (40 * 1024) + b"!"  # 10 MiB + 1: blocks hashed in worker threads
    await store.begin("upload-big1")
    await store.append("upload-big1", stream(*pieces(data, 256 * 1024 + 3)))
    await store.finish("upload-big1", sha256(data))
    assert await read_blob(store, sha256(data)) == data


async def test_empty_blob(store: BlobStore) -> None:
    await store.begin("upload-0001")
    assert await store.finish("upload-0001", sha256(b"")) == 0
    assert await read_blob(store, sha256(b"")) == b""


async def test_local_path_of_a_blob(store: BlobStore) -> None:
    await upload(store, "upload-0001", DATA)
    await store.finish("upload-0001", sha256(DATA))
    location = await store.locate(sha256(DATA))
    assert location is not None
    if location.local_path is not None:
        assert Path(location.local_path).read_bytes() == DATA
    assert await store.locate(sha256(b"never stored")) is None


async def test_sha512_digest(store: BlobStore) -> None:
    await upload(store, "upload-0001", DATA)
    assert await store.finish("upload-0001", sha512(DATA)) == len(DATA)
    assert await read_blob(store, sha512(DATA)) == DATA
    assert await store.locate(sha256(DATA)) is None
    assert [p async for p in store.driver.list("blobs")] == [
        f"blobs/sha512/{sha512(DATA)[7:9]}/{sha512(DATA)[7:]}"]


async def test_cancel_and_delete_blob(store: BlobStore) -> None:
    await upload(store, "upload-0001", DATA)
    await store.cancel("upload-0001")
    await assert_upload_gone(store, "upload-0001")
    await upload(store, "upload-0002", DATA)
    await store.finish("upload-0002", sha256(DATA))
    await store.delete_blob(sha256(DATA))
    assert await store.locate(sha256(DATA)) is None


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", [
    sha256(DATA + b"x"),
    sha512(DATA + b"x"),
    "sha256:" + "0" * 64,
    sha256(DATA).upper().replace("SHA256", "sha256"),
], ids=["other-sha256", "other-sha512", "zeros", "uppercase-hex"])
async def test_wrong_digest_stores_nothing(store: BlobStore, wrong: str) -> None:
    await upload(store, "upload-0001", DATA)
    with pytest.raises(DigestInvalid) as caught:
        await store.finish("upload-0001", wrong)
    assert caught.value.status == 400
    assert caught.value.detail["expected"] == wrong
    assert caught.value.detail["actual"] in (sha256(DATA), sha512(DATA))
    await assert_upload_gone(store, "upload-0001")
    assert [path async for path in store.driver.list("blobs")] == []


async def test_size_mismatch_keeps_the_upload(store: BlobStore) -> None:
    await upload(store, "upload-0001", DATA)
    with pytest.raises(SizeInvalid):
        await store.finish("upload-0001", sha256(DATA), expected_size=len(DATA) + 1)
    assert await store.finish("upload-0001", sha256(DATA), expected_size=len(DATA)) == len(DATA)


@pytest.mark.parametrize(("start", "expected_range"), [(1, "0-0"), (5000, "0-0")])
async def test_first_chunk_must_start_at_zero(store: BlobStore, start: int, expected_range: str) -> None:
    await store.begin("upload-0001")
    with pytest.raises(RangeInvalid) as caught:
        await store.append("upload-0001", stream(DATA), start=start)
    assert caught.value.status == 416
    assert caught.value.headers == {"Range": expected_range}
    assert await store.size("upload-0001") == 0


@pytest.mark.parametrize("start", [0, 999, 1001, 2000])
async def test_out_of_order_chunk_is_refused_and_the_upload_can_go_on(store: BlobStore, start: int) -> None:
    await store.begin("upload-0001")
    await store.append("upload-0001", stream(DATA[:1000]), start=0)
    with pytest.raises(RangeInvalid) as caught:
        await store.append("upload-0001", stream(b"junk"), start=start)
    assert caught.value.headers == {"Range": "0-999"}
    assert "send the next chunk from byte 1000" in caught.value.message
    assert await store.size("upload-0001") == 1000
    await store.append("upload-0001", stream(DATA[1000:]), start=1000)
    await store.finish("upload-0001", sha256(DATA))
    assert await read_blob(store, sha256(DATA)) == DATA


async def test_a_stream_that_breaks_midway_can_be_resumed(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        for piece in pieces(DATA[:5500], 500):
            yield piece
        raise ConnectionError("client went away")

    await store.begin("upload-0001")
    with pytest.raises(ConnectionError):
        await store.append("upload-0001", broken())
    received = await store.size("upload-0001")
    assert received <= 5500
    await store.append("upload-0001", stream(DATA[received:]), start=received)
    await store.finish("upload-0001", sha256(DATA))
    assert await read_blob(store, sha256(DATA)) == DATA


# -- several processes -----------------------------------------------------------------------------

# Which of two BlobStore instances (two processes) handles begin, each of three chunks, and finish.
HANDOFFS = ["AAAAA", "ABBBB", "AABAA", "AAABA", "AAAAB", "ABABA", "BAAAA", "BBBBA"]


@pytest.mark.parametrize("handlers", HANDOFFS)
@pytest.mark.parametrize("digest_of", [sha256, sha512])
@pytest.mark.parametrize("lost_state_after", [None, 0, 1, 2])
async def test_chunks_received_by_different_processes(driver: StorageDriver, handlers: str,
                                                      digest_of: Callable[[bytes], str],
                                                      lost_state_after: int | None) -> None:
    """The saved state travels between processes. When one request's state is never saved (it
    failed after writing), its bytes were not acknowledged: like a client, each step asks where
    the upload stands and sends from there (a directory still has those bytes and catches the hash
    up; an object store resumes from the saved state and takes them again)."""
    stores = {"A": BlobStore(driver, block_size=BLOCK), "B": BlobStore(driver, block_size=BLOCK)}
    ends = [3000, 6500, len(DATA)]
    await stores[handlers[0]].begin("upload-0001")
    saved = None
    for step, (handler, end) in enumerate(zip(handlers[1:4], ends, strict=True)):
        offset = await stores[handler].size("upload-0001", saved)
        reached, new_saved = await stores[handler].append(
            "upload-0001", stream(*pieces(DATA[offset:end], 700)), start=offset, saved=saved)
        assert reached == end
        saved = saved if step == lost_state_after else new_saved
    offset = await stores[handlers[4]].size("upload-0001", saved)
    if offset < len(DATA):  # the last chunk was not acknowledged: the client sends it again
        _, saved = await stores[handlers[4]].append("upload-0001", stream(DATA[offset:]), start=offset, saved=saved)
    digest = digest_of(DATA)
    assert await stores[handlers[4]].finish("upload-0001", digest, saved) == len(DATA)
    for instance in stores.values():
        assert await read_blob(instance, digest) == DATA
        await assert_upload_gone(instance, "upload-0001")


async def test_a_stale_hash_state_is_not_trusted(driver: StorageDriver) -> None:
    first, second = BlobStore(driver, block_size=BLOCK), BlobStore(driver, block_size=BLOCK)
    await first.begin("upload-0001")
    _, saved = await first.append("upload-0001", stream(DATA[:4000]))
    await second.cancel("upload-0001")  # another process cancels, then the id is used again
    await second.begin("upload-0001")
    await second.append("upload-0001", stream(b"other"))
    # Refused either way: a directory gives the other bytes (wrong digest); an object store no
    # longer has the tail the stale state names.
    with pytest.raises((DigestInvalid, PathNotFound)):
        await first.finish("upload-0001", sha256(DATA[:4000]), saved)


# -- concurrency -----------------------------------------------------------------------------------


async def test_concurrent_finishes_of_the_same_digest(driver: StorageDriver) -> None:
    stores = [BlobStore(driver, block_size=BLOCK) for _ in range(2)]
    ids = [f"upload-{n:04d}" for n in range(12)]
    for n, upload_id in enumerate(ids):
        await upload(stores[n % 2], upload_id, DATA, chunk=2500)
    sizes = await asyncio.gather(*(stores[n % 2].finish(upload_id, sha256(DATA))
                                   for n, upload_id in enumerate(ids)))
    assert sizes == [len(DATA)] * len(ids)
    assert await read_blob(stores[0], sha256(DATA)) == DATA
    assert await stores[0].upload_ids() == []
    assert len([path async for path in driver.list("blobs")]) == 1


async def test_finishing_a_blob_that_exists_keeps_it(store: BlobStore) -> None:
    await upload(store, "upload-0001", DATA)
    await store.finish("upload-0001", sha256(DATA))
    await upload(store, "upload-0002", DATA, chunk=333)
    assert await store.finish("upload-0002", sha256(DATA)) == len(DATA)
    assert await read_blob(store, sha256(DATA)) == DATA
    await assert_upload_gone(store, "upload-0002")


async def test_concurrent_uploads_of_different_blobs(store: BlobStore) -> None:
    blobs = {f"upload-{n:04d}": bytes([n]) * (3000 + n) for n in range(10)}

    async def push(upload_id: str, data: bytes) -> None:
        await upload(store, upload_id, data, chunk=900)
        await store.finish(upload_id, sha256(data))

    await asyncio.gather(*(push(upload_id, data) for upload_id, data in blobs.items()))
    for data in blobs.values():
        assert await read_blob(store, sha256(data)) == data
    assert await store.upload_ids() == []


async def test_upload_blocks_are_shared_while_uploads_overlap_and_released_after(store: BlobStore) -> None:
    """Blocks are reused while uploads overlap, and all released once none is in flight, so an
    idle worker holds no upload memory (peak RSS is a benchmark floor)."""
    pool = store.buffers
    first, second = pool.take(), pool.take()
    pool.give(first)
    assert pool.pooled == 1  # kept for the upload still in flight
    assert pool.take() is first
    pool.give(first)
    pool.give(second)
    assert pool.pooled == 0

    data = bytes(range(256)) * 40
    await asyncio.gather(*(upload(store, f"upload-{n}", data, chunk=700) for n in range(4)))
    assert pool.pooled == 0
