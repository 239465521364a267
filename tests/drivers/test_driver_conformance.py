"""The contract of ``storage/driver.py``, checked against every driver (see ``conftest.py``)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dockyard.storage.driver import PathNotFound, StorageDriver, StoredFile

CONTENT = b"0123456789abcdef"
BIG = bytes(range(256)) * (12 * 1024 + 7)  # ~3 MiB: crosses the 1 MiB read chunks of the drivers


async def read_all(driver: StorageDriver, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in driver.read(path, offset, length)])


async def listed(driver: StorageDriver, prefix: str) -> set[str]:
    return {path async for path in driver.list(prefix)}


async def assert_missing(driver: StorageDriver, path: str) -> None:
    with pytest.raises(PathNotFound) as caught:
        await driver.stat(path)
    assert caught.value.path == path
    with pytest.raises(PathNotFound):
        await driver.get_content(path)
    with pytest.raises(PathNotFound):
        await read_all(driver, path)


# -- put, get, stat --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", CONTENT, BIG])
async def test_put_then_get(driver: StorageDriver, data: bytes) -> None:
    await driver.put_content("a/b/c/file", data)
    assert await driver.get_content("a/b/c/file") == data
    assert await driver.stat("a/b/c/file") == len(data)
    assert await read_all(driver, "a/b/c/file") == data


async def test_put_replaces_the_whole_file(driver: StorageDriver) -> None:
    await driver.put_content("f", BIG)
    await driver.put_content("f", b"short")
    assert await driver.get_content("f") == b"short"
    assert await driver.stat("f") == 5


async def test_concurrent_puts_leave_one_whole_version(driver: StorageDriver) -> None:
    versions = [bytes([i]) * (64 * 1024 + i) for i in range(8)]
    await asyncio.gather(*(driver.put_content("dir/f", data) for data in versions))
    assert await driver.get_content("dir/f") in versions
    assert await listed(driver, "dir") == {"dir/f"}  # no temporary files are left or listed


async def test_missing_paths(driver: StorageDriver) -> None:
    await assert_missing(driver, "nothing/here")
    await driver.put_content("a/file", CONTENT)
    await assert_missing(driver, "a/fil")
    await assert_missing(driver, "a/file2")


async def test_a_path_below_a_file_is_missing(driver: StorageDriver) -> None:
    await driver.put_content("a/file", CONTENT)
    await assert_missing(driver, "a/file/below")
    with pytest.raises(PathNotFound):
        await driver.move("a/file/below", "elsewhere")
    await driver.delete("a/file/below")
    assert await driver.get_content("a/file") == CONTENT


async def test_a_directory_is_not_a_file(driver: StorageDriver) -> None:
    await driver.put_content("dir/sub/file", CONTENT)
    await assert_missing(driver, "dir/sub")


# -- read ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "length", "expected"), [
    (0, None, CONTENT),
    (5, None, CONTENT[5:]),
    (0, 3, b"012"),
    (5, 3, b"567"),
    (15, 1, b"f"),
    (10, 100, CONTENT[10:]),
    (0, 0, b""),
    (16, None, b""),
    (100, None, b""),
])
async def test_read_with_offset_and_length(driver: StorageDriver, offset: int, length: int | None,
                                           expected: bytes) -> None:
    await driver.put_content("f", CONTENT)
    assert await read_all(driver, "f", offset, length) == expected


@pytest.mark.parametrize(("offset", "length"), [
    (0, None), (1024 * 1024 - 1, 2), (1024 * 1024 - 5, 2 * 1024 * 1024 + 10), (len(BIG) - 3, 10), (123, None),
])
async def test_read_large_files_across_chunks(driver: StorageDriver, offset: int, length: int | None) -> None:
    await driver.put_content("big", BIG)
    end = None if length is None else offset + length
    assert await read_all(driver, "big", offset, length) == BIG[offset:end]


# -- writer ----------------------------------------------------------------------------------------


async def test_writer_write_commit_close(driver: StorageDriver) -> None:
    writer = await driver.writer("uploads/u/data")
    assert writer.size == 0
    await writer.write(b"abc")
    await writer.write(bytearray(b"def"))
    await writer.write(memoryview(b"--ghi--")[2:5])
    assert writer.size == 9
    await writer.commit()
    await writer.close()
    assert await driver.get_content("uploads/u/data") == b"abcdefghi"
    assert await driver.stat("uploads/u/data") == 9


async def test_writer_of_a_large_stream(driver: StorageDriver) -> None:
    writer = await driver.writer("big")
    for start in range(0, len(BIG), 100_000):
        await writer.write(BIG[start:start + 100_000])
    await writer.commit()
    await writer.close()
    assert hashlib.sha256(await read_all(driver, "big")).digest() == hashlib.sha256(BIG).digest()


async def test_resume_continues_where_the_file_ends(driver: StorageDriver) -> None:
    first = await driver.writer("f")
    await first.write(b"hello ")
    await first.commit()
    await first.close()
    second = await driver.writer("f", resume=True)
    assert second.size == 6
    await second.write(b"world")
    assert second.size == 11
    await second.commit()
    await second.close()
    assert await driver.get_content("f") == b"hello world"


async def test_closed_without_commit_the_bytes_stay_for_a_resume(driver: StorageDriver) -> None:
    writer = await driver.writer("f")
    await writer.write(b"partial")
    await writer.close()
    resumed = await driver.writer("f", resume=True)
    assert resumed.size == 7
    await resumed.write(b"+rest")
    await resumed.commit()
    await resumed.close()
    assert await driver.get_content("f") == b"partial+rest"


async def test_resume_from_a_saved_state(driver: StorageDriver) -> None:
    """What the uploads row carries between requests (on any node) continues the writer exactly."""
    first = await driver.writer("uploads/u/data")
    await first.write(b"hello " * 1000)
    await first.close()
    second = await driver.writer("uploads/u/data", resume=True, state=first.state())
    assert second.size == 6000
    await second.write(b"world")
    await second.close()
    third = await driver.writer("uploads/u/data", resume=True, state=second.state())
    assert third.size == 6005
    await third.commit()
    await third.close()
    assert await driver.get_content("uploads/u/data") == b"hello " * 1000 + b"world"


async def test_resume_of_a_put_file(driver: StorageDriver) -> None:
    await driver.put_content("f", CONTENT)
    writer = await driver.writer("f", resume=True)
    assert writer.size == len(CONTENT)
    await writer.write(b"!")
    await writer.commit()
    await writer.close()
    assert await driver.get_content("f") == CONTENT + b"!"


async def test_resume_of_a_missing_file_starts_empty(driver: StorageDriver) -> None:
    writer = await driver.writer("new/f", resume=True)
    assert writer.size == 0
    await writer.write(b"x")
    await writer.commit()
    await writer.close()
    assert await driver.get_content("new/f") == b"x"


async def test_a_new_writer_starts_the_file_over(driver: StorageDriver) -> None:
    await driver.put_content("f", CONTENT)
    writer = await driver.writer("f")
    assert writer.size == 0
    await writer.write(b"new")
    await writer.commit()
    await writer.close()
    assert await driver.get_content("f") == b"new"


async def test_cancel_discards_the_file(driver: StorageDriver) -> None:
    writer = await driver.writer("uploads/u/data")
    await writer.write(CONTENT)
    await writer.cancel()
    await assert_missing(driver, "uploads/u/data")


async def test_close_after_cancel_does_not_bring_the_file_back(driver: StorageDriver) -> None:
    writer = await driver.writer("uploads/u/data")
    await writer.write(CONTENT)
    await writer.commit()
    await writer.cancel()
    await writer.close()
    await assert_missing(driver, "uploads/u/data")
    assert await listed(driver, "uploads") == set()


async def test_close_after_the_path_was_deleted_does_not_bring_it_back(driver: StorageDriver) -> None:
    writer = await driver.writer("uploads/u/data", resume=True)
    await writer.write(CONTENT)
    await driver.delete("uploads/u")
    await writer.close()
    await assert_missing(driver, "uploads/u/data")


# -- move ------------------------------------------------------------------------------------------


async def test_move_to_a_new_path(driver: StorageDriver) -> None:
    await driver.put_content("uploads/u/data", CONTENT)
    await driver.move("uploads/u/data", "blobs/sha256/ab/abcd")
    assert await driver.get_content("blobs/sha256/ab/abcd") == CONTENT
    await assert_missing(driver, "uploads/u/data")


async def test_move_replaces_the_destination(driver: StorageDriver) -> None:
    await driver.put_content("src", b"new")
    await driver.put_content("dst", BIG)
    await driver.move("src", "dst")
    assert await driver.get_content("dst") == b"new"
    assert await driver.stat("dst") == 3
    await assert_missing(driver, "src")


async def test_move_of_a_missing_source(driver: StorageDriver) -> None:
    await driver.put_content("dst", CONTENT)
    with pytest.raises(PathNotFound) as caught:
        await driver.move("no/such/file", "dst")
    assert caught.value.path == "no/such/file"
    assert await driver.get_content("dst") == CONTENT


async def test_move_onto_itself_keeps_the_file(driver: StorageDriver) -> None:
    await driver.put_content("f", CONTENT)
    await driver.move("f", "f")
    assert await driver.get_content("f") == CONTENT


async def test_move_of_a_written_file(driver: StorageDriver) -> None:
    writer = await driver.writer("uploads/u/data")
    await writer.write(CONTENT)
    await writer.commit()
    await writer.close()
    await driver.move("uploads/u/data", "final")
    assert await driver.get_content("final") == CONTENT


# -- delete ----------------------------------------------------------------------------------------


async def test_delete_a_file(driver: StorageDriver) -> None:
    await driver.put_content("d/f", CONTENT)
    await driver.put_content("d/g", CONTENT)
    await driver.delete("d/f")
    await assert_missing(driver, "d/f")
    assert await driver.get_content("d/g") == CONTENT


async def test_delete_a_directory_tree(driver: StorageDriver) -> None:
    for path in ["tree/a", "tree/b/c", "tree/b/d/e", "treehouse/f", "other/tree/g"]:
        await driver.put_content(path, CONTENT)
    await driver.delete("tree")
    for path in ["tree/a", "tree/b/c", "tree/b/d/e"]:
        await assert_missing(driver, path)
    assert await listed(driver, "tree") == set()
    assert await driver.get_content("treehouse/f") == CONTENT  # a prefix of the name is no parent
    assert await driver.get_content("other/tree/g") == CONTENT


@pytest.mark.parametrize("path", ["missing", "missing/dir/file", "d/missing"])
async def test_delete_of_a_missing_path_is_fine(driver: StorageDriver, path: str) -> None:
    await driver.put_content("d/f", CONTENT)
    await driver.delete(path)
    assert await driver.get_content("d/f") == CONTENT


async def test_deleted_path_can_be_written_again(driver: StorageDriver) -> None:
    await driver.put_content("d/f", CONTENT)
    await driver.delete("d")
    await driver.put_content("d/f", b"again")
    assert await driver.get_content("d/f") == b"again"


# -- list ------------------------------------------------------------------------------------------


async def test_list_is_recursive_under_a_prefix(driver: StorageDriver) -> None:
    for path in ["up/a/data", "up/b/data", "up/b/deep/er/x", "upper/c", "blobs/d"]:
        await driver.put_content(path, CONTENT)
    expected = {"up/a/data", "up/b/data", "up/b/deep/er/x"}
    assert await listed(driver, "up") == expected
    assert await listed(driver, "up/") == expected
    assert await listed(driver, "up/b/deep") == {"up/b/deep/er/x"}
    assert await listed(driver, "nothing") == set()


async def test_list_sees_written_and_moved_files(driver: StorageDriver) -> None:
    writer = await driver.writer("up/u/data")
    await writer.write(CONTENT)
    await writer.commit()
    await writer.close()
    assert await listed(driver, "up") == {"up/u/data"}
    await driver.move("up/u/data", "blobs/x")
    assert await listed(driver, "up") == set()
    assert await listed(driver, "blobs") == {"blobs/x"}


async def walked(driver: StorageDriver, prefix: str) -> dict[str, StoredFile]:
    return {stored.path: stored async for stored in driver.walk(prefix)}


async def test_walk_gives_paths_sizes_and_modification_times(driver: StorageDriver) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)  # an object store's clock counts whole seconds
    for path, data in [("blobs/sha256/ab/ab1", CONTENT), ("blobs/sha256/cd/cd2", CONTENT * 3), ("blobsx/e", b"")]:
        await driver.put_content(path, data)
    writer = await driver.writer("up/u/data")
    await writer.write(CONTENT * 2)
    await writer.commit()
    await writer.close()
    await driver.move("up/u/data", "blobs/sha256/ef/ef3")
    after = datetime.now(UTC) + timedelta(seconds=2)
    found = await walked(driver, "blobs")
    assert {path: stored.size for path, stored in found.items()} == {
        "blobs/sha256/ab/ab1": len(CONTENT), "blobs/sha256/cd/cd2": 3 * len(CONTENT),
        "blobs/sha256/ef/ef3": 2 * len(CONTENT)}
    for stored in found.values():
        assert stored.modified.utcoffset() == timedelta(0)
        assert before <= stored.modified <= after
    assert set(await walked(driver, "blobs/sha256/cd")) == {"blobs/sha256/cd/cd2"}
    assert await walked(driver, "nothing") == {}


async def test_walk_no_longer_sees_a_deleted_file(driver: StorageDriver) -> None:
    await driver.put_content("blobs/a", CONTENT)
    await driver.put_content("blobs/b", CONTENT)
    await driver.delete("blobs/a")
    assert set(await walked(driver, "blobs")) == {"blobs/b"}


# -- local_path ------------------------------------------------------------------------------------


async def test_local_path(driver: StorageDriver) -> None:
    await driver.put_content("blobs/f", CONTENT)
    local = driver.local_path("blobs/f")
    if driver.name != "filesystem":  # memory and object stores have no file to hand the server
        assert local is None
        return
    assert local is not None
    assert Path(local).read_bytes() == CONTENT


# -- concurrency -----------------------------------------------------------------------------------


async def test_concurrent_writers_moving_to_the_same_final_path(driver: StorageDriver) -> None:
    payload = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB
    target = "blobs/sha256/aa/final"

    async def upload(number: int) -> None:
        path = f"uploads/{number:04d}/data"
        writer = await driver.writer(path)
        for start in range(0, len(payload), 64 * 1024):
            await writer.write(payload[start:start + 64 * 1024])
        await writer.commit()
        await writer.close()
        await driver.move(path, target)

    await asyncio.gather(*(upload(n) for n in range(16)))
    assert await driver.stat(target) == len(payload)
    assert await driver.get_content(target) == payload
    assert await listed(driver, "uploads") == set()
    assert await listed(driver, "blobs") == {target}


async def test_concurrent_writers_of_different_paths_do_not_mix(driver: StorageDriver) -> None:
    async def write(number: int) -> None:
        writer = await driver.writer(f"w/{number}")
        for _ in range(20):
            await writer.write(bytes([number]) * 1000)
        await writer.commit()
        await writer.close()

    await asyncio.gather(*(write(n) for n in range(10)))
    for number in range(10):
        assert await driver.get_content(f"w/{number}") == bytes([number]) * 20_000
