"""A real `dockyard serve`, probed anonymously: every registry operation on a private project is
refused with the full challenge, and the refusal reads the same as for content that does not
exist. (The OCI conformance ports run the same workflows with admin credentials and pass.)"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Registry
from tests.support.ocihttp import config_blob, push_image, sha256_digest

pytestmark = pytest.mark.e2e


def test_anonymous_callers_are_refused_everywhere_in_a_private_project(http: httpx.Client,
                                                                        shared_registry: Registry,
                                                                        repo: str) -> None:
    digest, _ = push_image(http, repo, "v1", "anonymous-probe", [b"layer one", b"layer two"])
    blob = sha256_digest(config_blob("anonymous-probe"))
    ghost = repo.split("/", 1)[0] + "/no-such-repository"
    probes = [
        ("GET", "/manifests/v1"), ("HEAD", "/manifests/v1"), ("GET", f"/manifests/{digest}"),
        ("PUT", "/manifests/v2"), ("DELETE", f"/manifests/{digest}"),
        ("GET", f"/blobs/{blob}"), ("HEAD", f"/blobs/{blob}"), ("DELETE", f"/blobs/{blob}"),
        ("POST", "/blobs/uploads/"), ("POST", f"/blobs/uploads/?digest={blob}"),
        ("POST", f"/blobs/uploads/?mount={blob}&from={repo}"),
        ("GET", "/tags/list"), ("GET", f"/referrers/{digest}"),
    ]
    with httpx.Client(base_url=shared_registry.url, timeout=30.0) as anonymous:
        for method, tail in probes:
            answers = [anonymous.request(method, f"/v2/{name}{tail}", content=b"{}" if method == "PUT" else None)
                       for name in (repo, ghost)]
            private, missing = answers
            assert private.status_code == 401, (method, tail, private.status_code, private.text)
            challenge = private.headers["www-authenticate"]
            assert challenge.startswith(f'Bearer realm="{shared_registry.url}/token",service="dockyard",scope=')
            assert f"repository:{repo}:" in challenge
            # The same answer as for a repository that does not exist, but for its name.
            assert missing.status_code == private.status_code
            assert missing.headers["www-authenticate"].replace(ghost, repo) == challenge
            if method != "HEAD":
                assert missing.json()["errors"][0]["code"] == private.json()["errors"][0]["code"] == "UNAUTHORIZED"
        base = anonymous.get("/v2/")
        assert base.status_code == 401
        catalog = anonymous.get("/v2/_catalog")
        assert catalog.status_code == 401
        assert 'scope="registry:catalog:*"' in catalog.headers["www-authenticate"]
        # An anonymous token opens the catalog, which then holds nothing private.
        token = anonymous.get("/token", params={"service": "dockyard", "scope": [
            f"repository:{repo}:pull,push", "registry:catalog:*"]}).json()["token"]
        listed = anonymous.get("/v2/_catalog", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
        assert repo not in listed.json()["repositories"]
        refused = anonymous.get(f"/v2/{repo}/manifests/v1", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
