"""The registry's one error tree.

Every error a client can see is a class here that declares, as data, its OCI error code, its HTTP
status and a message saying what to fix. Exactly one place renders them (``http/errors.py``).

    RegistryError                      (code, status)
    ├── BlobUnknown                    BLOB_UNKNOWN           404
    ├── BlobUploadInvalid              BLOB_UPLOAD_INVALID    400
    │   ├── RangeInvalid               BLOB_UPLOAD_INVALID    416
    │   └── BodyStalled                BLOB_UPLOAD_INVALID    408   (+ Connection: close)
    ├── BlobUploadUnknown              BLOB_UPLOAD_UNKNOWN    404
    ├── DigestInvalid                  DIGEST_INVALID         400
    ├── ManifestBlobUnknown            MANIFEST_BLOB_UNKNOWN  400
    ├── ManifestInvalid                MANIFEST_INVALID       400
    │   ├── ManifestTooLarge           MANIFEST_INVALID       413
    │   └── ReferenceInvalid           MANIFEST_INVALID       400
    ├── ManifestUnknown                MANIFEST_UNKNOWN       404
    ├── NameInvalid                    NAME_INVALID           400
    ├── NameUnknown                    NAME_UNKNOWN           404
    ├── SizeInvalid                    SIZE_INVALID           400
    ├── PaginationInvalid              PAGINATION_NUMBER_INVALID 400
    ├── RangeNotSatisfiable            RANGE_INVALID          416
    ├── Unsupported                    UNSUPPORTED            405 / 415
    ├── Unauthorized                   UNAUTHORIZED           401
    │   └── DeniedChallenge            DENIED                 401   (valid credentials, not enough access)
    ├── Denied                         DENIED                 403
    ├── TooManyRequests                TOOMANYREQUESTS        429
    ├── Unavailable                    UNAVAILABLE            503   (+ Retry-After: a part of the
    │   │                                                           registry's world failed; retry)
    │   ├── DatabaseUnavailable        UNAVAILABLE            503
    │   ├── StorageUnavailable         UNAVAILABLE            503
    │   └── StorageFull                UNAVAILABLE            507   (a disk or volume is full)
    ├── RequestInvalid                 INVALID_REQUEST        400   (token service, /api/v1)
    │   └── ValueInvalid               INVALID_REQUEST        400   (a value the database refused)
    ├── ResourceUnknown                NOT_FOUND              404   (/api/v1)
    └── ResourceExists                 CONFLICT               409   (/api/v1)

``ConfigError`` is separate: it is raised at start-up, never over HTTP.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RegistryError(Exception):
    """An error a client sees; subclasses set ``code``, ``status`` and a default message."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "unknown error"

    def __init__(self, message: str | None = None, *, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.headers = headers or {}
        super().__init__(self.message)


class BlobUnknown(RegistryError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class RangeInvalid(BlobUploadInvalid):
    """A chunk that does not start where the upload ends (out of order or overlapping)."""

    status = 416
    default_message = "chunk range does not continue the upload; GET the upload for its current Range"


class BodyStalled(BlobUploadInvalid):
    """The request body paused longer than ``server.body_read_timeout``; the connection is closed."""

    status = 408
    default_message = "the request body stalled"

    def __init__(self, message: str | None = None, *, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, detail=detail, headers={"Connection": "close", **(headers or {})})


class BlobUploadUnknown(RegistryError):
    code, status = "BLOB_UPLOAD_UNKNOWN", 404
    default_message = "blob upload unknown to registry: it expired, was cancelled or never existed"


class DigestInvalid(RegistryError):
    code, status = "DIGEST_INVALID", 400
    default_message = "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code, status = "MANIFEST_BLOB_UNKNOWN", 400
    default_message = "manifest references a blob or manifest unknown to this repository; push it first"


class ManifestInvalid(RegistryError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestTooLarge(ManifestInvalid):
    status = 413
    default_message = "manifest is larger than the configured limit"


class ReferenceInvalid(ManifestInvalid):
    default_message = (
        "invalid reference: a tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}, "
        "a digest must look like sha256:<64 lowercase hex>"
    )


class ManifestUnknown(RegistryError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status = "NAME_INVALID", 400
    default_message = (
        "invalid repository name: use lowercase path components of [a-z0-9] separated by "
        "'.', '_', '__' or '-', joined by '/', at most 255 characters"
    )


class NameUnknown(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, default_message = "SIZE_INVALID", 400, "provided length did not match content length"


class PaginationInvalid(RegistryError):
    code, status = "PAGINATION_NUMBER_INVALID", 400
    default_message = "invalid number of results requested: n must be a non-negative integer"


class RangeNotSatisfiable(RegistryError):
    code, status = "RANGE_INVALID", 416
    default_message = "requested range not satisfiable: the blob is shorter (see Content-Range for its size)"


class Unsupported(RegistryError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class Unauthorized(RegistryError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class DeniedChallenge(Unauthorized):
    """Valid credentials without the access: 401, so clients fetch a token with the scope and
    retry, with the DENIED code, so people read why."""

    code, default_message = "DENIED", "requested access to the resource is denied"


class Denied(RegistryError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class TooManyRequests(RegistryError):
    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class Unavailable(RegistryError):
    """A part of the registry's world (database, object store, disk) failed; the request may be
    retried as it is. Always sent with ``Retry-After``."""

    code, status = "UNAVAILABLE", 503
    default_message = "the registry is temporarily unavailable; retry shortly"
    retry_after_seconds: ClassVar[int] = 5

    def __init__(self, message: str | None = None, *, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, detail=detail,
                         headers={"Retry-After": str(self.retry_after_seconds), **(headers or {})})


class DatabaseUnavailable(Unavailable):
    default_message = "the registry's database is unavailable; retry shortly"


class StorageUnavailable(Unavailable):
    default_message = "the registry's blob storage is unavailable; retry shortly"


class StorageFull(Unavailable):
    status = 507
    default_message = ("the registry's storage is full: nothing was stored; retry once the operator "
                       "has freed space")
    retry_after_seconds = 60


class RequestInvalid(RegistryError):
    code, status, default_message = "INVALID_REQUEST", 400, "the request is not valid"


class ValueInvalid(RequestInvalid):
    """A value the database cannot store (too long for its column, a number out of range, not text)
    that no check at the edge caught: the safety net of ``store/db.py``, so it is a 400, not a 500."""

    default_message = ("a value in the request is too long, out of range or not valid text for the registry's "
                       "database: shorten names to 255 characters and tags to 128, and send only plain text")


class ResourceUnknown(RegistryError):
    code, status, default_message = "NOT_FOUND", 404, "no such resource"


class ResourceExists(RegistryError):
    code, status, default_message = "CONFLICT", 409, "that resource exists already"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and what is wrong."""
