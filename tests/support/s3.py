"""A real S3 endpoint for tests: single-node Ceph + radosgw from ``ci/s3/start.sh``, once per run.

How an endpoint is chosen, in order:

1. ``DOCKYARD_TEST_S3=off``: S3 tests are skipped (with that reason shown).
2. ``DOCKYARD_TEST_S3_ENDPOINT`` set: that endpoint is used as is, with ``DOCKYARD_TEST_S3_ACCESS_KEY``,
   ``DOCKYARD_TEST_S3_SECRET_KEY`` and ``DOCKYARD_TEST_S3_REGION`` (default ``us-east-1``). Nothing is
   started or stopped; tests only write below a fresh random prefix and delete it afterwards.
3. Otherwise Ceph is started here, in a fresh temporary ``BASE`` directory on free loopback ports,
   the first time a test needs it, and stopped (``ci/s3/stop.sh``, which also removes its data) when
   the run ends. It is ready in about 2 s and keeps its data in RAM.

When the Debian packages Ceph needs are missing the tests are skipped, except in CI (``CI=true``,
where ``make test`` installs them): there a missing package or a Ceph that fails to start fails
the tests. ``make test`` / ``make s3`` install the packages when run as root.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "ci" / "s3"
SWITCH_ENV = "DOCKYARD_TEST_S3"
ENDPOINT_ENV = "DOCKYARD_TEST_S3_ENDPOINT"
BUCKET = "dockyard-test"
# executables start.sh runs, and the Debian package each comes from
REQUIRED_TOOLS = {
    "ceph-mon": "ceph-mon",
    "monmaptool": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "ceph": "ceph-common",
    "radosgw": "radosgw",
    "radosgw-admin": "radosgw",
    "curl": "curl",
    "uuidgen": "uuid-runtime",
}
START_TIMEOUT = 180


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str
    access_key: str
    secret_key: str
    region: str

    def client(self) -> S3Client:
        """A boto3 S3 client for this endpoint (path-style addressing, SigV4)."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


def _unavailable(reason: str) -> None:
    """Skip, or in CI fail: CI installs everything S3 tests need."""
    if _in_ci():
        pytest.fail(f"{reason}; CI=true, so the S3 tests must run")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _parse(output: str) -> dict[str, str]:
    values = {}
    for line in output.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isupper():
            values[key] = value
    return values


class CephS3:
    """Starts Ceph at most once per process and stops it when asked (or at interpreter exit).

    ``CEPH`` below is the run's shared one. A test that stops radosgw (``gateway``) makes its own
    ``CephS3(private=True)``, which always starts a Ceph of its own, even with ``ENDPOINT_ENV`` set.
    """

    def __init__(self, *, private: bool = False) -> None:
        self.private = private
        self._endpoint: S3Endpoint | None = None
        self._base: Path | None = None
        self._error: str | None = None

    def endpoint(self) -> S3Endpoint:
        """The endpoint, with bucket ``BUCKET`` existing; skips (or fails in CI) when unavailable."""
        if os.environ.get(SWITCH_ENV, "").lower() == "off":
            pytest.skip(f"S3 tests are switched off ({SWITCH_ENV}=off)")
        if self._endpoint is None:
            if self._error is not None:
                pytest.fail(self._error)
            external = None if self.private else os.environ.get(ENDPOINT_ENV)
            self._endpoint = self._from_env(external) if external else self._start()
            ensure_bucket(self._endpoint, BUCKET)
        return self._endpoint

    @staticmethod
    def _from_env(url: str) -> S3Endpoint:
        return S3Endpoint(
            endpoint=url,
            access_key=os.environ.get("DOCKYARD_TEST_S3_ACCESS_KEY", ""),
            secret_key=os.environ.get("DOCKYARD_TEST_S3_SECRET_KEY", ""),
            region=os.environ.get("DOCKYARD_TEST_S3_REGION", "us-east-1"),
        )

    def _start(self) -> S3Endpoint:
        missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
        if missing:
            _unavailable(f"Ceph for the S3 tests is not installed (apt-get install {' '.join(missing)}; "
                         f"or set {ENDPOINT_ENV}, or {SWITCH_ENV}=off)")
        base = Path(tempfile.mkdtemp(prefix="dockyard-ceph-"))
        env = {**os.environ, "BASE": str(base), "RGW_PORT": str(_free_port()),
               "MON_V2": str(_free_port()), "MON_V1": str(_free_port())}
        for key in ("S3_ACCESS_KEY", "S3_SECRET_KEY"):  # start.sh's own defaults, not the caller's
            env.pop(key, None)
        self._base = base
        atexit.register(self.stop)  # safety net; the session fixture stops it first
        try:
            result = subprocess.run(["bash", str(SCRIPTS / "start.sh")], env=env, capture_output=True,
                                    text=True, timeout=START_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            self._error = f"ci/s3/start.sh did not finish within {START_TIMEOUT}s (BASE={base})"
            self.stop()
            pytest.fail(self._error)
        values = _parse(result.stdout)
        needed = ("S3_ENDPOINT_URL", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION")
        if result.returncode != 0 or not all(values.get(key) for key in needed):
            self._error = (f"ci/s3/start.sh failed (exit {result.returncode}, BASE={base}):\n"
                           f"{result.stderr[-3000:]}{result.stdout[-1000:]}")
            self.stop()
            pytest.fail(self._error)
        return S3Endpoint(endpoint=values["S3_ENDPOINT_URL"], access_key=values["S3_ACCESS_KEY"],
                          secret_key=values["S3_SECRET_KEY"], region=values["S3_REGION"])

    def gateway(self, action: str) -> None:
        """``ci/s3/rgw.sh stop`` or ``start``: only radosgw goes away or comes back (private Ceph only)."""
        assert self.private, "only a Ceph of the test's own may lose its gateway"
        assert self._base is not None, "start it first (endpoint())"
        result = subprocess.run(["bash", str(SCRIPTS / "rgw.sh"), action], env={**os.environ, "BASE": str(self._base)},
                                capture_output=True, text=True, timeout=90, check=False)
        assert result.returncode == 0, f"rgw.sh {action} failed: {result.stderr}{result.stdout}"

    def stop(self) -> None:
        base, self._base = self._base, None
        self._endpoint = None
        if base is None:
            return
        subprocess.run(["bash", str(SCRIPTS / "stop.sh")], env={**os.environ, "BASE": str(base)},
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(base, ignore_errors=True)


CEPH = CephS3()


def ensure_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    client = endpoint.client()
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass


def delete_prefix(endpoint: S3Endpoint, bucket: str, prefix: str) -> None:
    """Delete every object, and abort every multipart upload, whose key starts with ``prefix``."""
    client = endpoint.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
