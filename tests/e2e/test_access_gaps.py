"""Issue 11 item 8 against a real `dockyard serve`, with curl and httpx as an attacker would try it:
a disabled maintainer's robot is cut off at once (and restored with the maintainer), a leaked pull
token does not open `/api/v1` nor change the password, and `/api/v1` requests are in the access log
with their caller."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.ocihttp import push_image
from tests.support.server import ADMIN_AUTH, ServerProcess

pytestmark = pytest.mark.e2e

PUSH_SCOPE = "repository:team-a/app:pull,push"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data") as running:
        yield running


def curl(server: ServerProcess, path: str, *args: str) -> tuple[int, str]:
    """(status, body) of ``curl`` on ``path``."""
    done = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args, f"{server.url}{path}"],
                          capture_output=True, text=True, timeout=60, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def expect_ok(response: httpx.Response, status: int = 200) -> httpx.Response:
    assert response.status_code == status, response.text
    return response


def test_a_disabled_maintainers_robot_is_cut_off_and_restored(server: ServerProcess) -> None:
    """The robot pushes; its maintainer is disabled: the robot's Basic credentials get no token
    (curl), its token from before and its Basic credentials are refused on /v2 on the next
    request; the maintainer is enabled again: the robot pushes again."""
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30.0) as admin:
        expect_ok(admin.post("/api/v1/projects", json={"name": "team-a"}), 201)
        expect_ok(admin.post("/api/v1/users", json={"name": "maint", "password": "maint-password"}), 201)
        expect_ok(admin.put("/api/v1/projects/team-a/members/maint", json={"role": "maintainer"}))
        with httpx.Client(base_url=server.url, auth=("maint", "maint-password"), timeout=30.0) as maint:
            made = expect_ok(maint.post("/api/v1/projects/team-a/robots", json={
                "name": "ci", "permissions": ["pull", "push"], "repositories": ["*"]}), 201).json()
        robot = f"{made['name']}:{made['secret']}"
        status, body = curl(server, f"/token?service=dockyard&scope={PUSH_SCOPE}", "-u", robot)
        assert status == 200, body
        token = json.loads(body)["token"]
        with httpx.Client(base_url=server.url, timeout=30.0,
                          headers={"Authorization": f"Bearer {token}"}) as ci:
            push_image(ci, "team-a/app", "v1", "robot-push", [b"layer"])

            expect_ok(admin.patch("/api/v1/users/maint", json={"disabled": True}))
            status, body = curl(server, f"/token?service=dockyard&scope={PUSH_SCOPE}", "-u", robot)
            assert status == 401, body
            refused = ci.get("/v2/team-a/app/tags/list")
            assert refused.status_code == 401
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            status, _ = curl(server, "/v2/team-a/app/tags/list", "-u", robot)
            assert status == 401

            expect_ok(admin.patch("/api/v1/users/maint", json={"disabled": False}))
            push_image(ci, "team-a/app", "v2", "robot-push-again", [b"another layer"])
        status, body = curl(server, "/v2/team-a/app/tags/list", "-u", robot)
        assert (status, json.loads(body)["tags"]) == (200, ["v1", "v2"])


def test_a_leaked_pull_token_does_not_open_the_management_api(server: ServerProcess) -> None:
    """A five-minute pull token from /token is refused on /api/v1 (listing and the password change
    alike, with a challenge naming management:api:*); a token asked for with that scope works;
    even then, the password changes only with the current one. The access log names the caller of
    each /api/v1 request."""
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30.0) as admin:
        expect_ok(admin.post("/api/v1/projects", json={"name": "team-a"}), 201)
        expect_ok(admin.post("/api/v1/users", json={"name": "alice", "password": "alice-password"}), 201)
        expect_ok(admin.put("/api/v1/projects/team-a/members/alice", json={"role": "developer"}))
    status, body = curl(server, "/token?service=dockyard&scope=repository:team-a/app:pull", "-u",
                        "alice:alice-password")
    assert status == 200, body
    pull = json.loads(body)["token"]
    bearer = ("-H", f"Authorization: Bearer {pull}")
    status, body = curl(server, "/api/v1/projects", *bearer)
    assert status == 401, body
    status, body = curl(server, "/api/v1/users/alice", *bearer, "-X", "PATCH", "-H", "Content-Type: application/json",
                        "--data", '{"password": "taken-over-now"}')
    assert status == 401, body
    assert "management:api:*" in body
    status, _ = curl(server, "/token?service=dockyard", "-u", "alice:alice-password")
    assert status == 200  # the password was not changed

    status, body = curl(server, "/token?service=dockyard&scope=management:api:*", "-u", "alice:alice-password")
    managed = ("-H", f"Authorization: Bearer {json.loads(body)['token']}")
    status, body = curl(server, "/api/v1/projects", *managed)
    assert (status, [p["name"] for p in json.loads(body)]) == (200, ["team-a"])
    status, body = curl(server, "/api/v1/users/alice", *managed, "-X", "PATCH", "-H",
                        "Content-Type: application/json", "--data", '{"password": "taken-over-now"}')
    assert status == 400, body
    assert "current_password" in body

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logged = [json.loads(line) for line in server.log().splitlines() if line.startswith('{"method"')]
        api = [(e["path"], e["status"], e["user"]) for e in logged if e["path"] == "/api/v1/projects"]
        if len(api) >= 3:
            break
        time.sleep(0.1)  # the access log is written in batches, half a second after the first line
    assert ("/api/v1/projects", 201, "admin") in api
    assert ("/api/v1/projects", 200, "alice") in api
    assert ("/api/v1/projects", 401, "alice") in api  # a valid token, but not for /api/v1
