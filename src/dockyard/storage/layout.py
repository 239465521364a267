"""The one module that knows where things live in storage.

    <root>/
      blobs/
        sha256/
          ab/
            abcdef…(64 hex)        immutable content, written once, named by its digest
        sha512/…
      uploads/
        <upload-id>/
          started                  empty marker: the upload exists (before its first byte)
          data                     bytes received so far for an in-flight upload (on an object
                                   store: a multipart upload, readable once committed)

A blob file exists only once its bytes were verified against its digest. Whether a blob belongs
to a repository is a database fact, never a storage one.

Every path is short and bounded (``LONGEST_PATH``: no client-chosen name is ever part of one), so
the only thing that can make an object store's key too long is its configured prefix, which
``check_key_prefix`` refuses at start-up.
"""

from __future__ import annotations

import re

from dockyard.errors import ConfigError, DigestInvalid
from dockyard.oci.digests import ENCODED_LENGTH, parse_digest

BLOBS = "blobs"
UPLOADS = "uploads"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{8,64}", flags=re.ASCII)


def blob_path(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"{BLOBS}/{algorithm}/{encoded[:2]}/{encoded}"


def digest_of_blob_path(path: str) -> str | None:
    """The digest a path of this layout names a blob of (the inverse of ``blob_path``), or None
    for any other path (a stray file, a temporary one)."""
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != BLOBS:
        return None
    digest = f"{parts[1]}:{parts[3]}"
    try:
        parse_digest(digest)
    except DigestInvalid:
        return None
    return digest if parts[2] == parts[3][:2] else None


def upload_dir(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError(f"invalid upload id {upload_id!r}")
    return f"{UPLOADS}/{upload_id}"


def upload_data_path(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/data"


def upload_marker_path(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/started"


MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# What a driver may add to a path for objects of its own (the S3 driver's upload tails add
# ".tail-<16 digits>-<12 hex>", 35 characters).
DRIVER_SUFFIX_ROOM = 64
_LONGEST_UPLOAD_ID = "u" * 64
LONGEST_PATH = max(
    *(len(blob_path(f"{algorithm}:{'0' * length}")) for algorithm, length in ENCODED_LENGTH.items()),
    len(upload_data_path(_LONGEST_UPLOAD_ID)) + DRIVER_SUFFIX_ROOM,
    len(upload_marker_path(_LONGEST_UPLOAD_ID)) + DRIVER_SUFFIX_ROOM,
)


def check_key_prefix(prefix: str, setting: str = "storage.s3.prefix") -> None:
    """Refuse a key prefix that leaves a path of this layout no room under ``MAX_KEY_BYTES``."""
    room = MAX_KEY_BYTES - LONGEST_PATH - 1  # the slash between prefix and path
    size = len(prefix.strip("/").encode("utf-8", errors="replace"))
    if size > room:
        raise ConfigError(f"{setting}: {size} bytes is too long: object keys are at most {MAX_KEY_BYTES} bytes "
                          f"and the registry's own paths need {LONGEST_PATH + 1}, so use at most {room}")
