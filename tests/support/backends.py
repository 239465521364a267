"""The registry's other backends for suites that run on the defaults too: a fresh PostgreSQL
database and a fresh prefix in the test Ceph's bucket, each removed afterwards.

Without ``DOCKYARD_TEST_POSTGRES_URL`` (or without Ceph) the test is skipped with the reason shown,
except in CI (``CI=true``), where it fails: CI has both.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.cluster import fresh_database
from tests.support.databases import POSTGRES_ENV, postgres_unavailable_reason
from tests.support.s3 import BUCKET, CEPH, S3Endpoint, delete_prefix


def postgres_admin_url() -> str:
    """The PostgreSQL URL tests may create databases next to; skips (fails in CI) without one."""
    reason = asyncio.run(postgres_unavailable_reason())
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}")
        pytest.skip(f"PostgreSQL not configured: {reason}")
    return os.environ[POSTGRES_ENV]


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (the registry migrates it); its SQLAlchemy URL."""
    with fresh_database(postgres_admin_url()) as url:
        yield url


def s3_settings(endpoint: S3Endpoint, prefix: str) -> dict[str, object]:
    """The ``storage`` section that puts blobs below ``prefix`` in the test bucket. Blob GETs are
    served by the registry (no redirect), so its own handling of them (ranges) is what is tested."""
    return {"driver": "s3", "s3": {
        "endpoint": endpoint.endpoint, "access_key": endpoint.access_key, "secret_key": endpoint.secret_key,
        "region": endpoint.region, "bucket": BUCKET, "prefix": prefix, "redirect": False}}


def s3_env(endpoint: S3Endpoint, prefix: str) -> dict[str, str]:
    """The same as ``DOCKYARD_STORAGE__*`` variables, for a server process."""
    settings = s3_settings(endpoint, prefix)
    s3 = settings["s3"]
    assert isinstance(s3, dict)
    return {"DOCKYARD_STORAGE__DRIVER": "s3",
            **{f"DOCKYARD_STORAGE__S3__{key.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
               for key, value in s3.items()}}


@contextmanager
def s3_prefix(label: str) -> Iterator[tuple[S3Endpoint, str]]:
    """The test Ceph (started once per run) and a fresh prefix in its bucket, emptied afterwards."""
    endpoint = CEPH.endpoint()
    prefix = f"{label}-{uuid.uuid4().hex[:8]}"
    try:
        yield endpoint, prefix
    finally:
        delete_prefix(endpoint, BUCKET, prefix)
