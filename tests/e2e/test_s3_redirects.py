"""S3 redirects and the registry's host: the OCI conformance suite's pull workflow, and skopeo, against
dockyard on a real Ceph bucket with ``storage.s3.redirect`` on.

A client built on Go's net/http resends its ``Authorization`` header when it follows a redirect to
the same host name (any port), and radosgw, like AWS, refuses a presigned URL that also carries
one (400 ``InvalidArgument``). So:

- **same host**: the registry is reached as ``127.0.0.1``, where radosgw also listens: dockyard
  streams blobs (200) instead of redirecting, and the suite's pull workflow passes with a client
  that follows redirects as Go does (``tests/support/goredirects.py``);
- **other host**: the registry is reached as ``localhost`` (also loopback): blob GETs answer 307
  to a presigned URL on ``127.0.0.1``, Go's rule drops the header there, and the same workflow
  passes through the store.

The pull workflow is the classic suite's (``test_oci_conformance.py``: every ``test_pull_*`` spec,
in its order, sharing one state), run here against these servers instead of its own.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e import test_oci_conformance as classic
from tests.e2e.images import build_image, write_layout
from tests.support.goredirects import GoRedirectClient
from tests.support.s3 import BUCKET, CEPH, S3Endpoint, delete_prefix
from tests.support.server import ADMIN_AUTH, ServerProcess

pytestmark = pytest.mark.e2e

PULL_SPECS: list[Callable[[classic.Suite], None]] = [
    spec for name, spec in vars(classic).items() if name.startswith("test_pull_") and callable(spec)]
HOSTS = {"same-host": "127.0.0.1", "other-host": "localhost"}


@dataclass
class RedirectingRegistry:
    server: ServerProcess
    endpoint: S3Endpoint

    def url(self, host: str) -> str:
        return f"http://{host}:{self.server.port}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedirectingRegistry]:
    endpoint = CEPH.endpoint()
    assert httpx.URL(endpoint.endpoint).host == "127.0.0.1", "the cases below assume radosgw on 127.0.0.1"
    prefix = f"redirects-{uuid.uuid4().hex[:8]}"
    env = {
        "DOCKYARD_STORAGE__DRIVER": "s3", "DOCKYARD_STORAGE__S3__ENDPOINT": endpoint.endpoint,
        "DOCKYARD_STORAGE__S3__ACCESS_KEY": endpoint.access_key,
        "DOCKYARD_STORAGE__S3__SECRET_KEY": endpoint.secret_key,
        "DOCKYARD_STORAGE__S3__REGION": endpoint.region, "DOCKYARD_STORAGE__S3__BUCKET": BUCKET,
        "DOCKYARD_STORAGE__S3__PREFIX": prefix, "DOCKYARD_STORAGE__S3__REDIRECT": "true",
    }
    try:
        with ServerProcess(data_dir=tmp_path_factory.mktemp("s3-redirects") / "data", env=env) as server:
            yield RedirectingRegistry(server, endpoint)
    finally:
        delete_prefix(endpoint, BUCKET, prefix)


def suite_against(url: str, http: httpx.Client, namespace: str) -> classic.Suite:
    """setup.go init() for the pull workflow only, against ``url``."""
    return classic.Suite(
        client=classic.Reggie(url, namespace, http, username=ADMIN_AUTH[0], password=ADMIN_AUTH[1]),
        data=classic.SuiteData.build(20261206), crossmount_namespace=f"conformance-{uuid.uuid4()}",
        tests_to_run=classic.PULL, run_pull_setup=True, run_push_setup=False,
        run_content_discovery_setup=False, run_content_management_setup=False,
        run_automatic_crossmount_test=False, automatic_crossmount_enabled=False)


@pytest.mark.parametrize("case", list(HOSTS))
def test_conformance_pull_workflow_with_go_redirects(registry: RedirectingRegistry, case: str) -> None:
    """Every spec of the suite's pull workflow passes, the same host streamed and another host
    redirected, with a client that keeps or drops Authorization on redirects as Go's does."""
    assert len(PULL_SPECS) >= 20
    url = registry.url(HOSTS[case])
    with GoRedirectClient(follow_redirects=True, timeout=60) as http:
        suite = suite_against(url, http, f"conformance/{case}")
        classic.upload_blob(suite, suite.data.configs[0])
        config = suite.data.configs[0].digest
        direct = httpx.get(f"{url}/v2/conformance/{case}/blobs/{config}", auth=ADMIN_AUTH)
        if case == "same-host":
            assert direct.status_code == 200  # streamed: Go would send its Authorization along
            assert direct.content == suite.data.configs[0].content
        else:
            assert direct.status_code == 307
            assert direct.headers["location"].startswith(registry.endpoint.endpoint)
            assert "X-Amz-Signature=" in direct.headers["location"]
        for spec in PULL_SPECS:
            try:
                spec(suite)
            except AssertionError as exc:
                raise AssertionError(f"{spec.__name__} ({case}): {exc}") from exc


def test_a_presigned_url_refuses_a_resent_authorization_header(registry: RedirectingRegistry) -> None:
    """Why the same host must not be redirected: the store answers 400 to a presigned URL that
    also carries the registry's Authorization header, and 200 to the same URL without it."""
    data = b"presigned and authorized" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    base = registry.url("localhost")
    with httpx.Client(base_url=base, auth=ADMIN_AUTH, timeout=60) as client:
        location = client.post("/v2/why/blobs/uploads/").headers["location"]
        assert client.put(location, params={"digest": digest}, content=data).status_code == 201
        presigned = client.get(f"/v2/why/blobs/{digest}").headers["location"]
    basic = httpx.BasicAuth(*ADMIN_AUTH)
    assert httpx.get(presigned, auth=basic).status_code == 400
    assert httpx.get(presigned).content == data


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("case", list(HOSTS))
def test_skopeo_pulls_from_either_host(registry: RedirectingRegistry, tmp_path: Path, case: str) -> None:
    """skopeo (Go) copies an image in and out, through dockyard on the same host and through the
    store's presigned URLs from another host, and gets back what it pushed."""
    host = f"{HOSTS[case]}:{registry.server.port}"
    creds = ":".join(ADMIN_AUTH)
    layout = write_layout(tmp_path / "in", "v1", build_image(f"redirects-{case}", layer_count=2))
    skopeo("copy", "--dest-tls-verify=false", f"--dest-creds={creds}", f"oci:{layout}:v1",
           f"docker://{host}/skopeo/{case}:v1")
    skopeo("copy", "--src-tls-verify=false", f"--src-creds={creds}", f"docker://{host}/skopeo/{case}:v1",
           f"oci:{tmp_path / 'out'}:v1")
    pushed = json.loads(skopeo("inspect", "--raw", f"oci:{layout}:v1"))
    assert json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'out'}:v1")) == pushed
