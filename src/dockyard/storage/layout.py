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
"""

from __future__ import annotations

import re

BLOBS = "blobs"
UPLOADS = "uploads"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{8,64}", flags=re.ASCII)


def blob_path(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"{BLOBS}/{algorithm}/{encoded[:2]}/{encoded}"


def upload_dir(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError(f"invalid upload id {upload_id!r}")
    return f"{UPLOADS}/{upload_id}"


def upload_data_path(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/data"


def upload_marker_path(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/started"
