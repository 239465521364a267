"""Filesystem driver: fsync before rename, rename into place, fsync the directory.

Blocking calls run in worker threads so the event loop never waits on the disk. Writers send
page-aligned spans of page-aligned buffers with ``O_DIRECT``: the bytes go straight to the disk
instead of being copied into the page cache first, which on virtual machines (fresh guest memory
is slow to touch) more than doubled upload throughput, and makes the fsync before a 201 cheap.
Everything else (an unaligned tail or offset, a read-only ``bytes``) takes the buffered path.
Filesystems without ``O_DIRECT`` (tmpfs) simply use the buffered path.

This module is the filesystem's seam: a write, fsync, rename or directory creation that fails for
lack of space (``ENOSPC``) or quota (``EDQUOT``) becomes ``StorageFull`` (507), here and nowhere
else, and leaves nothing half-done behind: a writer drops what it appended in the failed request
(the upload continues from what was acknowledged before), a commit whose fsync failed drops the
upload (its bytes may never reach the disk; the client starts it again), ``put_content`` removes
its temporary file. Blobs already stored are never written again, so they cannot be damaged. The
first such failure is logged as one line, and the return of space once more.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import secrets
import shutil
import stat as stat_mode
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

import anyio.to_thread

from dockyard.errors import StorageFull
from dockyard.storage.driver import PathNotFound, StoredFile

log = logging.getLogger("dockyard.storage")
T = TypeVar("T")
READ_CHUNK = 4 * 1024 * 1024
# What the OS says when a path is missing, runs through a file, or names a directory.
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
# What the OS says when a write needs space the filesystem (or the owner's quota) does not have.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class SpaceWatch:
    """Says once that the disk is full, and once that it has room again, rather than a line (and a
    traceback) for every request that fails while it is full."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.is_full = False

    @contextmanager
    def translating(self, what: str, *, shows_room: bool = False) -> Iterator[None]:
        """Run a write step; ``ENOSPC``/``EDQUOT`` become ``StorageFull``. A step that
        ``shows_room`` (a whole file made durable) ends a full spell."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            if not self.is_full:
                self.is_full = True
                log.error("blob storage is full: %s failed under %s: %s; pushes answer 507 until space is "
                          "freed (nothing stored is affected)", what, self.root, exc.strerror)
            quota = exc.errno == errno.EDQUOT
            raise StorageFull(
                f"the registry's disk is full ({'over its quota' if quota else 'no space left on the device'}): "
                "nothing was stored; retry once the operator has freed space") from None
        if self.is_full and shows_room:
            self.is_full = False
            log.warning("blob storage has space again under %s: pushes are accepted", self.root)


async def _run(func: Callable[..., T], *args: object) -> T:
    return await anyio.to_thread.run_sync(func, *args)


def _open_for_reading(path: Path) -> BinaryIO:
    return path.open("rb")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


DIRECT_ALIGN = 4096


def _address(view: memoryview) -> int | None:
    """The buffer's memory address, or None for a read-only buffer (which we never send direct)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (TypeError, ValueError):
        return None


def _open_direct(path: Path) -> int | None:
    """A descriptor for O_DIRECT reads, None where the filesystem has none; PathNotFound if missing."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
    except _MISSING:
        raise PathNotFound(str(path)) from None
    except OSError:
        return None


async def _read_direct(fd: int, offset: int, length: int | None) -> AsyncIterator[bytes]:
    """Read through an aligned buffer, bypassing the page cache (see the module docstring)."""
    buffer = mmap.mmap(-1, READ_CHUNK)
    view = memoryview(buffer)
    try:
        remaining = length
        while remaining is None or remaining > 0:
            count = await _run(os.preadv, fd, [view], offset)
            if count <= 0:
                return
            if remaining is not None:
                count = min(count, remaining)
                remaining -= count
            offset += count
            yield bytes(view[:count])
    finally:
        view.release()
        buffer.close()
        os.close(fd)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class FileWriter:
    """Appends to one file; aligned spans go through an ``O_DIRECT`` descriptor; ``commit`` fsyncs."""

    def __init__(self, path: Path, fd: int, direct_fd: int | None, size: int, fsync: bool,
                 space: SpaceWatch) -> None:
        self._path = path
        self._fd: int | None = fd
        self._direct_fd = direct_fd
        self._size = self._opened_at = size
        self._fsync = fsync
        self._space = space

    @property
    def size(self) -> int:
        return self._size

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        assert self._fd is not None, "writer is closed"
        view, offset = memoryview(data).cast("B"), self._size
        aligned = len(view) - len(view) % DIRECT_ALIGN
        address = _address(view) if self._direct_fd is not None and aligned else None
        if address is not None and address % DIRECT_ALIGN == 0 and offset % DIRECT_ALIGN == 0:
            assert self._direct_fd is not None
            try:
                _pwrite_all(self._direct_fd, view[:aligned], offset)
                view, offset = view[aligned:], offset + aligned
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                os.close(self._direct_fd)  # the device wants another alignment: stay buffered
                self._direct_fd = None
        _pwrite_all(self._fd, view, offset)

    def _drop_appended(self) -> None:
        """After a failed write: back to the size this writer was opened at, which is what the
        caller had acknowledged (and the space it took is free again)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._opened_at)
            self._size = self._opened_at
        except OSError:  # the bytes stay: a real prefix of the chunk, which the next request sees
            self._size = os.fstat(self._fd).st_size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            with self._space.translating("writing an upload"):
                await _run(self._write_all, data)
        except StorageFull:
            await _run(self._drop_appended)
            raise
        self._size += len(data)

    async def commit(self) -> None:
        try:
            with self._space.translating("flushing an upload to disk (fsync)", shows_room=True):
                if self._fd is not None and self._fsync:
                    await _run(os.fsync, self._fd)  # one inode: covers what both descriptors wrote
        except StorageFull:
            # Linux may have dropped the pages it could not write and would not report it twice:
            # these bytes are not to be trusted, so the upload goes (the client starts it again).
            await self.cancel()
            raise

    async def close(self) -> None:
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def cancel(self) -> None:
        await self.close()
        await _run(lambda: self._path.unlink(missing_ok=True))

    def state(self) -> bytes | None:
        return None  # the file is its own state


class FilesystemDriver:
    name = "filesystem"

    def __init__(self, root: Path, *, fsync: bool = True, direct_io: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.direct_io = direct_io
        self.space = SpaceWatch(root)
        root.mkdir(parents=True, exist_ok=True)

    def _full(self, path: str) -> Path:
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"invalid storage path {path!r}")
        return self.root / path

    async def stat(self, path: str) -> int:
        try:
            result = await _run(os.stat, self._full(path))
        except _MISSING:
            raise PathNotFound(path) from None
        if not stat_mode.S_ISREG(result.st_mode):
            raise PathNotFound(path)
        return result.st_size

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if self.direct_io and hasattr(os, "O_DIRECT") and offset % DIRECT_ALIGN == 0:
            direct = await _run(_open_direct, self._full(path))
            if direct is not None:
                async for chunk in _read_direct(direct, offset, length):
                    yield chunk
                return
        try:
            handle = await _run(_open_for_reading, self._full(path))
        except _MISSING:
            raise PathNotFound(path) from None
        try:
            handle.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await _run(handle.read, size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def get_content(self, path: str) -> bytes:
        try:
            return await _run(self._full(path).read_bytes)
        except _MISSING:
            raise PathNotFound(path) from None

    def _put_sync(self, path: str, data: bytes) -> None:
        target = self._full(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            with temp.open("wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if self.fsync:
            _fsync_dir(target.parent)

    async def put_content(self, path: str, data: bytes) -> None:
        with self.space.translating("writing a file", shows_room=True):
            await _run(self._put_sync, path, data)

    def _open_writer(self, path: str, resume: bool) -> FileWriter:
        target = self._full(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(target, flags | (0 if resume else os.O_TRUNC), 0o644)
        direct_fd = None
        if self.direct_io and hasattr(os, "O_DIRECT"):
            try:
                direct_fd = os.open(target, flags | os.O_DIRECT)
            except OSError:
                direct_fd = None  # e.g. tmpfs: no O_DIRECT, buffered writes only
        return FileWriter(target, fd, direct_fd, os.fstat(fd).st_size, self.fsync, self.space)

    async def writer(self, path: str, *, resume: bool = False, state: bytes | None = None) -> FileWriter:
        with self.space.translating("creating an upload"):
            return await _run(self._open_writer, path, resume)

    def _move_sync(self, source: str, destination: str) -> None:
        src, dst = self._full(source), self._full(destination)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dst)
        except _MISSING:
            raise PathNotFound(source) from None
        if self.fsync:
            _fsync_dir(dst.parent)

    async def move(self, source: str, destination: str) -> None:
        with self.space.translating("moving a blob into place"):
            await _run(self._move_sync, source, destination)

    def _delete_sync(self, path: str) -> None:
        target = self._full(path)
        try:
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        except _MISSING:
            pass

    async def delete(self, path: str) -> None:
        await _run(self._delete_sync, path)

    async def walk(self, prefix: str) -> AsyncIterator[StoredFile]:
        # One directory at a time (a blob directory holds 1/256 of the blobs): memory stays bounded.
        directories = os.walk(self._full(prefix))
        while (found := await _run(self._walk_directory, directories)) is not None:
            for stored in found:
                yield stored

    def _walk_directory(self, directories: Iterator[tuple[str, list[str], list[str]]]) -> list[StoredFile] | None:
        """The files of the next directory, None after the last."""
        entry = next(directories, None)
        if entry is None:
            return None
        directory, _dirs, files = entry
        found: list[StoredFile] = []
        for name in files:
            if name.endswith(".tmp"):
                continue  # put_content's temporary file, not (yet) a file of the layout
            full = os.path.join(directory, name)
            try:
                info = os.stat(full)
            except _MISSING:
                continue  # deleted since the directory was read
            if stat_mode.S_ISREG(info.st_mode):
                found.append(StoredFile(Path(full).relative_to(self.root).as_posix(), info.st_size,
                                        datetime.fromtimestamp(info.st_mtime, UTC)))
        return found

    async def list(self, prefix: str) -> AsyncIterator[str]:
        base = self._full(prefix)

        def walk() -> list[str]:
            found: list[str] = []
            for directory, _dirs, files in os.walk(base):
                rel = Path(directory).relative_to(self.root).as_posix()
                prefix = "" if rel == "." else f"{rel}/"
                found.extend(f"{prefix}{name}" for name in files if not name.endswith(".tmp"))
            return found

        for path in await _run(walk):
            yield path

    def local_path(self, path: str) -> str | None:
        return str(self._full(path))

    def redirect_url(self, path: str) -> str | None:
        return None
