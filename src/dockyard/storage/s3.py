"""S3-compatible object storage (boto3 in worker threads): the same contract as the filesystem.

Paths map to keys under ``storage.s3.prefix`` in ``storage.s3.bucket`` (created if missing).
Objects cannot be appended to, so a writer streams into a multipart upload, created on its first
full part: every part but the last is exactly ``PART_SIZE`` bytes (S3 wants at least 5 MiB), and
bytes that do not fill a part when a writer closes wait in ``<key>.tail-<token>``, an ordinary
object the next writer reads back. ``Writer.state()`` is a small JSON document (UploadId, parts
and their ETags, the tail's token and size) that the caller keeps in the uploads row; a writer
resumed from it continues exactly there, on any node. Tails are never overwritten, only added
and removed at commit or cancel, so an older saved state still finds its own tail (a request that
failed before its state was saved leaves parts and a tail that the next state simply overwrites
or ignores). Without a state a writer recovers by listing the upload's parts and its newest tail.
``commit`` completes the upload (the tail becomes the last part); only then does the object exist
at its key. ``move`` is a server-side copy and a delete.

botocore's exceptions stop at ``_translate``, here and nowhere else: a missing key becomes
``PathNotFound``; a store that cannot be reached, times out, cuts a connection, answers garbage, a
5xx or a throttling code, or refuses dockyard's credentials becomes ``StorageUnavailable`` (503
with ``Retry-After``). Every request is bounded by ``storage.s3.connect_timeout`` /
``read_timeout`` and tried by botocore up to ``max_attempts`` times; a download that breaks off is
resumed with a ranged GET from where it stopped, up to ``max_attempts`` - 1 times. A writer whose
request failed does nothing more on ``close``: its caller saves no state after a failure, and the
next request resumes from the state saved before it (or, if a commit from that state completed
before the failure, from the completed object).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC
from typing import Any, TypeVar

import anyio.to_thread
import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error

from dockyard.config import S3Config
from dockyard.errors import StorageUnavailable
from dockyard.storage.driver import PathNotFound, StoredFile

T = TypeVar("T")
PART_SIZE = 8 * 1024 * 1024
COPY_PART_SIZE = 1024 * 1024 * 1024
SINGLE_COPY_LIMIT = 5 * 1024 * 1024 * 1024
READ_CHUNK = 1024 * 1024
TAIL_INFIX = ".tail-"
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
# Answers that mean "the store cannot serve now" whatever their status (most are 5xx anyway).
_UNAVAILABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
                                "Throttling", "ThrottlingException", "RequestLimitExceeded"})
# ... and those that mean it refuses dockyard itself: a misconfiguration the operator must fix.
_REFUSED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                            "RequestTimeTooSkewed", "AllAccessDisabled"})
# The store could not be reached or its answer could not be read (after botocore's retries).
_TRANSPORT_FAILURES = (BotoConnectionError, HTTPClientError, IncompleteReadError, Urllib3Error,
                       NoCredentialsError, CredentialRetrievalError)
log = logging.getLogger("dockyard.storage.s3")


async def _run(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code"))


def _is_missing(error: ClientError) -> bool:
    return _code(error) in _MISSING_CODES


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


@contextlib.contextmanager
def _translate(path: str) -> Iterator[None]:
    """The seam: 'no such key' becomes PathNotFound, a failing store StorageUnavailable."""
    try:
        yield
    except ClientError as exc:
        if _is_missing(exc):
            raise PathNotFound(path) from None
        code = _code(exc)
        if code in _REFUSED_CODES or _status(exc) == 403:
            log.error("the object store refuses dockyard's requests (%s on %s): check "
                      "storage.s3.access_key, secret_key, bucket and the clock", code, path)
            raise StorageUnavailable() from exc
        if code in _UNAVAILABLE_CODES or _status(exc) >= 500:
            log.warning("object store failed: %s (HTTP %d) on %s", code, _status(exc), path)
            raise StorageUnavailable() from exc
        raise
    except _TRANSPORT_FAILURES as exc:
        log.warning("object store unavailable: %s on %s", str(exc)[:300] or type(exc).__name__, path)
        raise StorageUnavailable() from exc


class S3Writer:
    def __init__(self, driver: S3Driver, path: str) -> None:
        self._driver = driver
        self._path = path
        self._key = driver.key(path)
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._tail = bytearray()
        self._tail_token: str | None = None
        self._dirty = False
        self._done = False
        self._broken = False  # a request failed: nothing more to keep (see close)

    @property
    def size(self) -> int:
        in_parts: int = sum(part["Size"] for part in self._parts)
        return in_parts + len(self._tail)

    # -- opening -----------------------------------------------------------------------------

    def open_sync(self, resume: bool, state: bytes | None) -> None:
        d = self._driver
        if not resume:
            for upload_id in d.multipart_uploads(self._key):
                d.abort(self._key, upload_id)
            d.delete_keys(d.tail_keys(self._key))
            return
        if state is not None:
            self._load(json.loads(state))
            return
        uploads = d.multipart_uploads(self._key)
        if uploads:
            self._upload_id = uploads[0]
            self._parts = d.list_parts(self._key, self._upload_id)
        tails = d.tail_keys(self._key)
        if tails:
            newest = tails[-1]
            self._tail_token = newest[len(self._key + TAIL_INFIX):]
            self._tail = d.object_bytes(newest)
        if self._upload_id is None and self._tail_token is None:
            self._adopt_committed_object()

    def _load(self, saved: dict[str, Any]) -> None:
        d = self._driver
        self._upload_id = saved["upload_id"]
        self._parts = [{"PartNumber": n, "ETag": etag, "Size": size} for n, etag, size in saved["parts"]]
        self._tail_token = saved["tail"]
        if self._tail_token is not None:
            try:
                self._tail = d.object_bytes(self._key + TAIL_INFIX + self._tail_token)
            except ClientError as exc:
                if not _is_missing(exc):
                    raise
        if len(self._tail) != saved["tail_size"]:
            self._adopt_earlier_commit(sum(size for _, _, size in saved["parts"]) + saved["tail_size"])

    def _adopt_earlier_commit(self, size: int) -> None:
        """The saved state's tail is gone. If a commit from this state completed (a finish that
        failed after its commit, now retried), the object is at the key with all the bytes: it
        becomes the start of the content. Otherwise the store lost bytes the state counts."""
        d = self._driver
        finished = self._upload_id is None or self._upload_id not in d.multipart_uploads(self._key)
        if not finished or d.size_or_none(self._key) != size:
            raise PathNotFound(self._path)  # start over
        self._upload_id, self._parts, self._tail, self._tail_token = None, [], bytearray(), None
        self._adopt_committed_object()

    def state(self) -> bytes | None:
        parts = [[p["PartNumber"], p["ETag"], p["Size"]] for p in self._parts]
        return json.dumps({"upload_id": self._upload_id, "parts": parts, "tail": self._tail_token,
                           "tail_size": len(self._tail)}, separators=(",", ":")).encode()

    def _adopt_committed_object(self) -> None:
        """Resuming a committed object: it becomes the start of the new content."""
        d = self._driver
        try:
            size = int(d.client.head_object(Bucket=d.bucket, Key=self._key)["ContentLength"])
        except ClientError as exc:
            if _is_missing(exc):
                return
            raise
        if size < PART_SIZE:
            self._tail = d.object_bytes(self._key)
            return
        self._start_upload()
        assert self._upload_id is not None
        result = d.client.upload_part_copy(Bucket=d.bucket, Key=self._key, UploadId=self._upload_id,
                                           PartNumber=1, CopySource={"Bucket": d.bucket, "Key": self._key})
        self._parts = [{"PartNumber": 1, "ETag": result["CopyPartResult"]["ETag"], "Size": size}]

    # -- writing -----------------------------------------------------------------------------

    def _start_upload(self) -> None:
        d = self._driver
        self._upload_id = d.client.create_multipart_upload(Bucket=d.bucket, Key=self._key)["UploadId"]

    def _upload_part(self, data: bytes | bytearray | memoryview) -> None:
        d = self._driver
        if self._upload_id is None:
            self._start_upload()
        number = len(self._parts) + 1
        result = d.client.upload_part(Bucket=d.bucket, Key=self._key, UploadId=self._upload_id,
                                      PartNumber=number, Body=bytes(data))
        self._parts.append({"PartNumber": number, "ETag": result["ETag"], "Size": len(data)})

    def _write_sync(self, data: bytes | bytearray | memoryview) -> None:
        self._dirty = True
        self._tail += data
        while len(self._tail) >= PART_SIZE:
            self._upload_part(memoryview(self._tail)[:PART_SIZE])
            del self._tail[:PART_SIZE]

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        try:
            return await self._driver.call(self._path, func, *args)
        except BaseException:
            self._broken = True
            raise

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._call(self._write_sync, data)

    def _commit_sync(self) -> None:
        d = self._driver
        if self._upload_id is None:
            d.client.put_object(Bucket=d.bucket, Key=self._key, Body=bytes(self._tail))
        else:
            size = self.size
            try:
                if self._tail or not self._parts:
                    self._upload_part(self._tail)
                parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self._parts]
                d.client.complete_multipart_upload(Bucket=d.bucket, Key=self._key, UploadId=self._upload_id,
                                                   MultipartUpload={"Parts": parts})
            except ClientError as exc:
                # The store no longer knows the upload because it completed it: botocore retried a
                # completion whose answer was lost, or an earlier commit failed after completing.
                # The object, at the full size, says so.
                if _code(exc) != "NoSuchUpload" or d.size_or_none(self._key) != size:
                    raise
        d.delete_keys(d.tail_keys(self._key))
        self._done = True

    async def commit(self) -> None:
        if not self._done:
            await self._call(self._commit_sync)

    def _close_sync(self) -> None:
        d = self._driver
        if self._upload_id is not None and self._upload_id not in d.multipart_uploads(self._key):
            return  # the path was deleted meanwhile: do not bring a tail back
        if self._tail:  # a new object each time: a state saved earlier still finds its own tail
            self._tail_token = f"{self.size:016d}-{secrets.token_hex(6)}"  # sorts by bytes covered
            d.client.put_object(Bucket=d.bucket, Key=self._key + TAIL_INFIX + self._tail_token,
                                Body=bytes(self._tail))
        else:
            self._tail_token = None

    async def close(self) -> None:
        """Keep what did not fill a part for the next writer (nothing after commit or cancel, nor
        after a failed request: its caller keeps the state saved before it)."""
        if not self._done:
            self._done = True
            if self._dirty and not self._broken:  # a writer that only looked changes nothing
                await self._call(self._close_sync)

    def _cancel_sync(self) -> None:
        d = self._driver
        if self._upload_id is not None:
            d.abort(self._key, self._upload_id)
        d.delete_keys([self._key, *d.tail_keys(self._key)])

    async def cancel(self) -> None:
        self._done = True
        await self._call(self._cancel_sync)


class S3Driver:
    name = "s3"

    def __init__(self, settings: S3Config) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/")
        # Typed as Any: the stubs' TypedDicts add nothing at this seam, which is tested against Ceph.
        self.client: Any = boto3.client(
            "s3", endpoint_url=settings.endpoint or None, region_name=settings.region,
            aws_access_key_id=settings.access_key or None, aws_secret_access_key=settings.secret_key or None,
            config=BotoConfig(signature_version="s3v4", max_pool_connections=64,
                              connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                              retries={"total_max_attempts": settings.max_attempts, "mode": settings.retry_mode},
                              s3={"addressing_style": "path" if settings.path_style else "auto"}))
        self._bucket_ready = threading.Event()

    # -- keys and bucket ---------------------------------------------------------------------

    def key(self, path: str) -> str:
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"invalid storage path {path!r}")
        return f"{self.prefix}/{path}" if self.prefix else path

    def _path_of(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def ensure_bucket(self) -> None:
        """Create the bucket on first use if it does not exist."""
        if self._bucket_ready.is_set():
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not _is_missing(exc) and _code(exc) != "NoSuchBucket":
                raise
            with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
                self.client.create_bucket(Bucket=self.bucket)
        self._bucket_ready.set()

    async def call(self, path: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func`` in a worker thread, behind the seam (``path`` names what failed)."""
        def call() -> T:
            with _translate(path):
                self.ensure_bucket()
                return func(*args, **kwargs)
        return await _run(call)

    # -- multipart bookkeeping (used by writers, in their threads) ---------------------------

    def multipart_uploads(self, key: str) -> list[str]:
        found = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        return [u["UploadId"] for u in found.get("Uploads", []) if u["Key"] == key]

    def list_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
            parts += [{"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]}
                      for p in page.get("Parts", [])]
        return sorted(parts, key=lambda p: int(p["PartNumber"]))

    def size_or_none(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def object_bytes(self, key: str) -> bytearray:
        return bytearray(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def tail_keys(self, key: str) -> list[str]:
        """The tail objects of ``key``'s writers, the one covering the most bytes last."""
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key + TAIL_INFIX).get("Contents", [])
        return sorted(obj["Key"] for obj in found)

    def abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(ClientError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            if batch:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    # -- the driver contract -----------------------------------------------------------------

    async def stat(self, path: str) -> int:
        head = await self.call(path, self.client.head_object, Bucket=self.bucket, Key=self.key(path))
        return int(head["ContentLength"])

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if length == 0:
            await self.stat(path)
            return
        position, end = offset, None if length is None else offset + length
        resumed = 0
        while end is None or position < end:
            body = await self._open_body(path, position, end, whole=position == 0 and end is None)
            if body is None:
                return
            try:
                while True:
                    try:
                        chunk = await self.call(path, body.read, READ_CHUNK)
                    except StorageUnavailable:
                        # The connection broke mid-body: what was read stands (blobs are immutable),
                        # so continue with a ranged GET from here, a bounded number of times.
                        resumed += 1
                        if resumed >= self.settings.max_attempts:
                            raise
                        log.info("resuming the read of %s at byte %d", path, position)
                        break
                    if not chunk:
                        return
                    position += len(chunk)
                    yield chunk
            finally:
                body.close()

    async def _open_body(self, path: str, start: int, end: int | None, *, whole: bool) -> Any:
        """The body of a GET of ``[start, end)``; None when ``start`` is at or past the end."""
        ranged = {} if whole else {"Range": f"bytes={start}-{'' if end is None else end - 1}"}
        try:
            response = await self.call(path, self.client.get_object, Bucket=self.bucket, Key=self.key(path),
                                       **ranged)
        except ClientError as exc:
            if _code(exc) == "InvalidRange":
                await self.stat(path)  # past the end of an existing object: nothing to read
                return None
            raise
        return response["Body"]

    async def get_content(self, path: str) -> bytes:
        response = await self.call(path, self.client.get_object, Bucket=self.bucket, Key=self.key(path))
        return bytes(await self.call(path, response["Body"].read))

    async def put_content(self, path: str, data: bytes) -> None:
        await self.call(path, self.client.put_object, Bucket=self.bucket, Key=self.key(path), Body=data)

    async def writer(self, path: str, *, resume: bool = False, state: bytes | None = None) -> S3Writer:
        writer = S3Writer(self, path)
        await self.call(path, writer.open_sync, resume, state)
        return writer

    def _copy(self, source: str, destination: str) -> None:
        size = int(self.client.head_object(Bucket=self.bucket, Key=source)["ContentLength"])
        copy_source = {"Bucket": self.bucket, "Key": source}
        if size <= SINGLE_COPY_LIMIT:
            self.client.copy_object(Bucket=self.bucket, Key=destination, CopySource=copy_source)
            return
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=destination)["UploadId"]
        parts = []
        for number, start in enumerate(range(0, size, COPY_PART_SIZE), start=1):
            end = min(size, start + COPY_PART_SIZE) - 1
            result = self.client.upload_part_copy(Bucket=self.bucket, Key=destination, UploadId=upload_id,
                                                  PartNumber=number, CopySource=copy_source,
                                                  CopySourceRange=f"bytes={start}-{end}")
            parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=destination, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})

    async def move(self, source: str, destination: str) -> None:
        if source == destination:
            await self.stat(source)
            return
        src, dst = self.key(source), self.key(destination)
        await self.call(source, self._copy, src, dst)
        await self.call(source, self.delete_keys, [src])

    def _delete_sync(self, path: str) -> None:
        key = self.key(path) if path else self.prefix
        tree = f"{key}/" if key else ""
        keys = [key] if key else []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=tree):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        self.delete_keys(keys)
        found = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        for upload in found.get("Uploads", []):
            if upload["Key"] == key or upload["Key"].startswith(tree):
                self.abort(upload["Key"], upload["UploadId"])

    async def delete(self, path: str) -> None:
        await self.call(path, self._delete_sync, path)

    def _list_sync(self, prefix: str) -> list[str]:
        base = self.key(prefix.rstrip("/")) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        keys: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        found = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=base)
        keys.update(upload["Key"] for upload in found.get("Uploads", []))
        return [self._path_of(k) for k in sorted(keys)]

    def _walk_page(self, pages: Iterator[dict[str, Any]]) -> list[StoredFile] | None:
        """The next page of a listing (up to 1,000 objects), None after the last."""
        page = next(pages, None)
        if page is None:
            return None
        return [StoredFile(self._path_of(obj["Key"]), int(obj["Size"]), obj["LastModified"].astimezone(UTC))
                for obj in page.get("Contents", []) if TAIL_INFIX not in obj["Key"].rsplit("/", 1)[-1]]

    async def walk(self, prefix: str) -> AsyncIterator[StoredFile]:
        # Page by page (the paginator is lazy): memory stays bounded however many objects there are.
        base = self.key(prefix.rstrip("/")) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        pages = await self.call(prefix, lambda: iter(self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base)))
        while (found := await self.call(prefix, self._walk_page, pages)) is not None:
            for stored in found:
                yield stored

    async def list(self, prefix: str) -> AsyncIterator[str]:
        for path in await self.call(prefix, self._list_sync, prefix):
            yield path

    def local_path(self, path: str) -> str | None:
        return None

    def redirect_url(self, path: str) -> str | None:
        """A short-lived presigned GET URL when ``storage.s3.redirect`` is on (signed locally)."""
        if not self.settings.redirect:
            return None
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(path)},
            ExpiresIn=self.settings.redirect_expiry_seconds)
        return url
