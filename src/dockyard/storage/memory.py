"""In-memory driver for tests: the same contract as the filesystem, nothing on disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from dockyard.storage.driver import PathNotFound, StoredFile

READ_CHUNK = 1024 * 1024


class MemoryWriter:
    def __init__(self, driver: MemoryDriver, path: str, data: bytearray) -> None:
        self._driver = driver
        self._path = path
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._data += data
        self._driver.modified[self._path] = datetime.now(UTC)

    async def commit(self) -> None:
        """Nothing to do: the bytes are in the driver's map from the first write."""

    async def close(self) -> None:
        """Nothing to do; a cancelled or deleted path must stay gone."""

    async def cancel(self) -> None:
        self._driver.files.pop(self._path, None)

    def state(self) -> bytes | None:
        return None


class MemoryDriver:
    name = "memory"

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        self.modified: dict[str, datetime] = {}  # when each file was last written (for ``walk``)

    def _get(self, path: str) -> bytearray:
        try:
            return self.files[path]
        except KeyError:
            raise PathNotFound(path) from None

    async def stat(self, path: str) -> int:
        return len(self._get(path))

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        data = self._get(path)
        end = len(data) if length is None else min(len(data), offset + length)
        for start in range(offset, end, READ_CHUNK):
            yield bytes(data[start:min(end, start + READ_CHUNK)])

    async def get_content(self, path: str) -> bytes:
        return bytes(self._get(path))

    async def put_content(self, path: str, data: bytes) -> None:
        self.files[path] = bytearray(data)
        self.modified[path] = datetime.now(UTC)

    async def writer(self, path: str, *, resume: bool = False, state: bytes | None = None) -> MemoryWriter:
        data = self.files.get(path, bytearray()) if resume else bytearray()
        self.files[path] = data
        if not resume:
            self.modified[path] = datetime.now(UTC)
        return MemoryWriter(self, path, data)

    async def move(self, source: str, destination: str) -> None:
        data = self._get(source)
        del self.files[source]
        self.files[destination] = data
        self.modified[destination] = self.modified.pop(source, datetime.now(UTC))  # a rename keeps it

    async def delete(self, path: str) -> None:
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self.files if k == path or k.startswith(prefix)]:
            del self.files[key]

    async def list(self, prefix: str) -> AsyncIterator[str]:
        base = prefix.rstrip("/") + "/"
        for key in list(self.files):
            if key.startswith(base):
                yield key

    async def walk(self, prefix: str) -> AsyncIterator[StoredFile]:
        base = prefix.rstrip("/") + "/"
        epoch = datetime.fromtimestamp(0, UTC)
        for key in [k for k in self.files if k.startswith(base)]:
            if key in self.files:
                yield StoredFile(key, len(self.files[key]), self.modified.get(key, epoch))

    def local_path(self, path: str) -> str | None:
        return None

    def redirect_url(self, path: str) -> str | None:
        return None
