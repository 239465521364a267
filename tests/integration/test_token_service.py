"""The token service, key handling, rate limits, bootstrap and what never reaches a log line.

Every test runs the real app on SQLite and PostgreSQL. "Another node" is a second app built on the
same database: it shares nothing with the first but the database, like a node of a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa

from dockyard.app import build_components
from dockyard.auth.passwords import Passwords, secret_digest
from dockyard.errors import ResourceExists
from dockyard.services.access import AccessService, InvalidCredentials
from dockyard.store import accounts as account_rows
from dockyard.store import migrate
from dockyard.store.schema import refresh_tokens as refresh_rows
from dockyard.store.schema import robots as robot_rows
from tests.integration.conftest import ADMIN_PASSWORD, Registry, client_as, make_config, open_registry
from tests.support.content import make_image, push_image

SCOPE = "repository:team/app:pull,push"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_user(registry: Registry, name: str, password: str, project: str = "team", role: str | None = None,
                   *, public: bool = False) -> None:
    admin = await admin_principal(registry)
    await registry.parts.accounts.add_user(admin, name, password)
    if role is not None:
        with contextlib.suppress(ResourceExists):
            await registry.parts.accounts.add_project(admin, project, public=public)
        await registry.parts.accounts.set_member(admin, project, name, role)


async def admin_principal(registry: Registry):  # type: ignore[no-untyped-def]
    return await registry.parts.access.principal_named("admin")


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
async def anonymous(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    async with open_registry(make_config(tmp_path, database_url), anonymous=True) as opened:
        yield opened


async def test_base_challenges_anonymous_callers(anonymous: Registry) -> None:
    response = await anonymous.client.get("/v2/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="http://127.0.0.1:5000/token",service="dockyard"'
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_realm_comes_from_config_never_from_host(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url, auth={"realm": "https://registry.example.com/token"})
    async with open_registry(config, anonymous=True) as registry:
        response = await registry.client.get("/v2/team/app/tags/list", headers={"Host": "evil.example"})
    assert response.headers["www-authenticate"] == (
        'Bearer realm="https://registry.example.com/token",service="dockyard",'
        'scope="repository:team/app:pull"')


async def test_anonymous_token_grants_only_public_pulls(anonymous: Registry) -> None:
    response = await anonymous.client.get("/token", params={"service": "dockyard", "scope": [
        "repository:team/app:pull,push", "registry:catalog:*"]})
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] >= 60
    assert "refresh_token" not in body
    assert claims_of(body["token"])["access"] == [{"type": "registry", "name": "catalog", "actions": ["*"]}]
    # An anonymous token opens /v2/ (clients ping it after fetching one).
    assert (await anonymous.client.get("/v2/", headers=bearer(body["token"]))).status_code == 200


async def test_token_grants_the_intersection(registry: Registry) -> None:
    await add_user(registry, "dev", "dev-password", "team", "developer")
    await add_user(registry, "guest", "guest-password", "team", "guest")
    scopes = {"scope": ["repository:team/app:pull,push,delete", "repository:other/app:pull"]}
    dev = (await registry.client.get("/token", params=scopes, auth=("dev", "dev-password"))).json()
    assert claims_of(dev["token"])["access"] == [{"type": "repository", "name": "team/app",
                                                   "actions": ["pull", "push"]}]
    guest = (await registry.client.get("/token", params=scopes, auth=("guest", "guest-password"))).json()
    assert claims_of(guest["token"])["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]


async def test_a_token_for_one_repository_does_not_open_another(registry: Registry) -> None:
    token = (await registry.client.get("/token", params={"scope": "repository:team/app:pull,push"})).json()["token"]
    image = make_image()
    await push_image(registry.client, "team/other", image, "v1")
    async with client_as(registry, None) as raw:
        allowed = await raw.get("/v2/team/app/tags/list", headers=bearer(token))
        refused = await raw.get("/v2/team/other/tags/list", headers=bearer(token))
    assert allowed.status_code == 404  # allowed, and the repository does not exist yet
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="repository:team/other:pull"' in challenge


async def test_bad_and_tampered_tokens_are_invalid_token(anonymous: Registry, registry: Registry) -> None:
    token = (await registry.client.get("/token", params={"scope": SCOPE})).json()["token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["access"] = [{"type": "repository", "name": "*", "actions": ["*"]}]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{header}.{forged}.{signature}", "not-a-token", token[:-4] + "AAAA"):
        response = await anonymous.client.get("/v2/team/app/tags/list", headers=bearer(bad))
        assert response.status_code == 401, bad
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # A token from another registry (its own keys) is refused here.
    other_config = make_config(anonymous.config.data_dir.parent / "other", "sqlite+aiosqlite:///" + str(
        anonymous.config.data_dir.parent / "other.db"))
    async with open_registry(other_config) as other:
        foreign = (await other.client.get("/token", params={"scope": SCOPE})).json()["token"]
    assert (await anonymous.client.get("/v2/", headers=bearer(foreign))).status_code == 401


async def test_post_token_password_and_refresh_grants(registry: Registry) -> None:
    form = {"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "service": "dockyard",
            "client_id": "docker", "access_type": "offline", "scope": SCOPE}
    async with client_as(registry, None) as raw:
        first = await raw.post("/token", data=form)
        assert first.status_code == 200, first.text
        refresh = first.json()["refresh_token"]
        assert len(refresh) >= 40
        again = await raw.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh,
                                               "service": "dockyard", "scope": SCOPE})
        assert again.status_code == 200, again.text
        assert again.json()["refresh_token"] == refresh
        assert claims_of(again.json()["access_token"])["sub"] == "admin"
        wrong = await raw.post("/token", data={**form, "password": "wrong-password"})
        assert wrong.status_code == 401
        unknown = await raw.post("/token", data={"grant_type": "refresh_token", "refresh_token": "dyr_nope"})
        assert unknown.status_code == 401
        odd = await raw.post("/token", data={"grant_type": "client_credentials"})
        assert odd.status_code == 400
        assert odd.json()["errors"][0]["code"] == "INVALID_REQUEST"


async def test_refresh_tokens_end_with_a_disabled_account_or_a_new_password(registry: Registry) -> None:
    await add_user(registry, "dev", "dev-password", "team", "developer")
    offline = await registry.client.get("/token", params={"offline_token": "true", "scope": SCOPE},
                                        auth=("dev", "dev-password"))
    refresh = offline.json()["refresh_token"]
    admin = await admin_principal(registry)

    async def redeem() -> httpx.Response:
        return await registry.client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh})

    # Disabled: refused, saying so; enabled again: the session is back.
    await registry.parts.accounts.update_user(admin, "dev", disabled=True)
    while_disabled = await redeem()
    assert while_disabled.status_code == 401
    assert "disabled" in while_disabled.json()["errors"][0]["message"]
    await registry.parts.accounts.update_user(admin, "dev", disabled=False)
    assert (await redeem()).status_code == 200
    # A new password ends it for good.
    await registry.parts.accounts.update_user(admin, "dev", password="dev-password-2")
    assert (await redeem()).status_code == 401


async def test_bad_token_requests_are_clear_4xx(anonymous: Registry) -> None:
    for params in ({"scope": "repository"}, {"scope": "repository:team/app"}, {"scope": "x" * 2000},
                   {"service": "someone-else"}, {"scope": "Repo!:a:pull"}):
        response = await anonymous.client.get("/token", params=params)
        assert response.status_code == 400, params
        assert response.json()["errors"][0]["code"] == "INVALID_REQUEST"
    not_form = await anonymous.client.post("/token", content=b"{}", headers={"Content-Type": "application/json"})
    assert not_form.status_code == 400


async def test_basic_credentials_straight_to_v2(anonymous: Registry) -> None:
    good = await anonymous.client.get("/v2/_catalog", headers=basic("admin", ADMIN_PASSWORD))
    assert good.status_code == 200
    bad = await anonymous.client.get("/v2/_catalog", headers=basic("admin", "wrong"))
    assert bad.status_code == 401
    malformed = await anonymous.client.get("/v2/", headers={"Authorization": "Basic !!!"})
    assert malformed.status_code == 401


async def test_failed_logins_are_limited_per_user_across_nodes(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url, auth={"login_failure_limit": 3,
                                                       "login_failure_address_limit": 100})
    async with open_registry(config, anonymous=True) as node1, open_registry(config, anonymous=True) as node2:
        for node in (node1, node2, node1):
            response = await node.client.get("/token", headers=basic("admin", "wrong"))
            assert response.status_code == 401
        # The fourth attempt, on the other node, is refused before the password is even checked.
        limited = await node2.client.get("/token", headers=basic("admin", ADMIN_PASSWORD))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        # Another user from the same address is not affected by this user's failures.
        other = await node2.client.get("/v2/", headers=basic("nobody", "x"))
        assert other.status_code == 401


async def test_failed_logins_are_limited_per_address(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url, auth={"login_failure_address_limit": 3})
    async with open_registry(config, anonymous=True) as registry:
        for name in ("a", "b", "c"):
            assert (await registry.client.get("/v2/", headers=basic(name, "wrong"))).status_code == 401
        limited = await registry.client.get("/v2/", headers=basic("admin", ADMIN_PASSWORD))
        assert limited.status_code == 429
        assert "retry-after" in limited.headers


async def test_unknown_users_cost_a_full_password_check(registry: Registry) -> None:
    from argon2 import PasswordHasher, extract_parameters
    from argon2.exceptions import VerifyMismatchError

    class Counting(Passwords):
        checked: list[str | None]

        def verify(self, stored: str | None, password: str) -> bool:
            self.checked.append(stored)
            return super().verify(stored, password)

    passwords = Counting(time_cost=1, memory_kib=1024)
    passwords.checked = []
    real = passwords.hash("right-password")
    assert passwords.verify(real, "right-password")
    assert not passwords.verify(real, "wrong-password")
    assert not passwords.verify(None, "right-password")
    assert passwords.checked == [real, real, None]
    # The unknown user went through argon2 too, against a hash of the same parameters.
    assert passwords._dummy.split("$")[1:4] == real.split("$")[1:4]
    assert extract_parameters(passwords._dummy) == extract_parameters(real)
    # ...and the dummy is a hash argon2 really computes against (a malformed one would be refused
    # at once, InvalidHashError, costing nothing).
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(passwords._dummy, "right-password")

    # Through the login path: a wrong password and an unknown user each cost one verification,
    # the unknown one against no stored hash (so against the dummy).
    access = AccessService(registry.parts.db, registry.config.auth, passwords, registry.parts.access.keys)
    passwords.checked = []
    for user in ("admin", "nobody-at-all"):
        with pytest.raises(InvalidCredentials):
            await access.login(user, "wrong-password", None, record_success=False)
    async with registry.parts.db.read() as conn:
        admin = await account_rows.find_user(conn, "admin")
    assert admin is not None
    assert passwords.checked == [admin.password_hash, None]
    assert admin.password_hash.startswith("$argon2id$")  # issue 4: argon2id password hashes


async def test_keys_are_shared_rotated_and_published(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url)
    async with open_registry(config) as node1, open_registry(config, anonymous=True) as node2:
        old = (await node1.client.get("/token", params={"scope": SCOPE})).json()["token"]
        assert (await node2.client.get("/v2/", headers=bearer(old))).status_code == 200
        jwks = (await node2.client.get("/.well-known/jwks.json")).json()
        key = jwt.PyJWK(jwks["keys"][0])
        verified = jwt.decode(old, key.key, algorithms=["ES256"], audience="dockyard", issuer="dockyard")
        assert verified["sub"] == "admin"
        admin = await admin_principal(node1)
        new_kid = await node1.parts.accounts.rotate_signing_key(admin)
        new = (await node1.client.get("/token", params={"scope": SCOPE})).json()["token"]
        assert jwt.get_unverified_header(new)["kid"] == new_kid
        # The other node has never seen the new key: it reloads and accepts; the old token still works.
        assert (await node2.client.get("/v2/", headers=bearer(new))).status_code == 200
        assert (await node2.client.get("/v2/", headers=bearer(old))).status_code == 200
        published = {k["kid"] for k in (await node2.client.get("/.well-known/jwks.json")).json()["keys"]}
        assert new_kid in published


async def test_a_key_file_signs_for_every_node(tmp_path: Path, database_url: str) -> None:
    key_file = tmp_path / "keys" / "token.pem"
    config = make_config(tmp_path, database_url, auth={"key_file": str(key_file), "algorithm": "RS256"})
    async with open_registry(config) as node1, open_registry(config, anonymous=True) as node2:
        token = (await node1.client.get("/token", params={"scope": SCOPE})).json()["token"]
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        assert (await node2.client.get("/v2/", headers=bearer(token))).status_code == 200
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_admin_bootstrap_is_idempotent_under_races(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url)
    async with open_registry(config) as node1, open_registry(config) as node2:
        results = await asyncio.gather(*(node.parts.accounts.bootstrap_admin(None) for node in (node1, node2)))
        assert results == [None, None]  # the admin exists: nobody creates or prints anything
        users = await node1.parts.accounts.list_users(await admin_principal(node1))
    assert [u["name"] for u in users] == ["admin"]


async def test_first_start_without_a_password_generates_one(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url)
    parts = build_components(config)
    try:
        await migrate.upgrade(parts.db)
        generated = await asyncio.gather(parts.accounts.bootstrap_admin(None), parts.accounts.bootstrap_admin(None))
        printed = [g for g in generated if g is not None]
        assert len(printed) <= 1
        # A fresh database has no admin: exactly one of the two calls creates it and returns its password.
        assert len(printed) == 1, generated
        principal = await parts.access.login("admin", printed[0], "127.0.0.1", record_success=False)
        assert principal.is_admin
        assert len(printed[0]) >= 16
    finally:
        await parts.db.dispose()


async def test_users_may_create_projects_when_configured(tmp_path: Path, database_url: str) -> None:
    for allowed in (False, True):
        config = make_config(tmp_path / str(allowed), database_url, auth={"users_create_projects": allowed})
        maker_name, project = f"maker{int(allowed)}", f"newproject{int(allowed)}"
        async with open_registry(config) as registry:
            await add_user(registry, maker_name, "maker-password")
            async with client_as(registry, (maker_name, "maker-password")) as maker:
                started = await maker.post(f"/v2/{project}/app/blobs/uploads/")
            assert started.status_code == (202 if allowed else 401), started.text
            projects = await registry.parts.accounts.list_projects(await admin_principal(registry))
            assert (project in [p["name"] for p in projects]) is allowed
            if allowed:
                members = await registry.parts.accounts.list_members(await admin_principal(registry), project)
                assert members == [{"kind": "user", "name": maker_name, "role": "admin"}]


async def test_no_secret_or_token_reaches_a_log_line(tmp_path: Path, database_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(tmp_path, database_url).with_overrides(log={"access_log": True})
    written = io.StringIO()
    async with open_registry(config, anonymous=True) as registry:
        registry.parts.access_log.stream = written
        admin = await admin_principal(registry)
        await registry.parts.accounts.add_project(admin, "team")
        robot = await registry.parts.accounts.add_robot(admin, "team", "ci", ["pull"], ["*"], None)
        offline = await registry.client.get("/token", params={"offline_token": "true", "scope": SCOPE},
                                            headers=basic("admin", ADMIN_PASSWORD))
        token, refresh = offline.json()["token"], offline.json()["refresh_token"]
        # Each request must take the path it is here for (a success logs differently from a refusal).
        answers = [
            await registry.client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh}),
            await registry.client.post("/token", data={"grant_type": "password", "username": "admin",
                                                       "password": "wrong-password-42"}),
            await registry.client.get("/v2/team/app/tags/list", headers=bearer(token)),
            await registry.client.get("/v2/", headers=basic(robot.login, robot.secret)),
            await registry.client.get(f"/v2/?token={token}"),
        ]
        assert [a.status_code for a in answers] == [200, 401, 404, 200, 401], [a.text for a in answers]
        registry.parts.access_log.flush()
        events = await registry.parts.accounts.audit(admin, limit=1000)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("dockyard"))
    everything = written.getvalue() + ours + json.dumps(events)
    for secret in (ADMIN_PASSWORD, "wrong-password-42", token, refresh, robot.secret):
        assert secret not in everything
    assert '"user": "admin"' in written.getvalue() or '"user":"admin"' in written.getvalue()


async def test_robot_secrets_and_refresh_tokens_are_stored_only_hashed(registry: Registry) -> None:
    """Issue 4 item 4 (a robot's secret is stored hashed) and the refresh tokens of item 5."""
    admin = await admin_principal(registry)
    await registry.parts.accounts.add_project(admin, "team")
    robot = await registry.parts.accounts.add_robot(admin, "team", "ci", ["pull"], ["*"], None)
    rotated = await registry.parts.accounts.rotate_robot(admin, robot.login)
    offline = await registry.client.get("/token", params={"offline_token": "true", "scope": SCOPE})
    assert offline.status_code == 200, offline.text
    refresh = offline.json()["refresh_token"]
    async with registry.parts.db.read() as conn:
        robots = (await conn.execute(sa.select(robot_rows))).all()
        refreshes = (await conn.execute(sa.select(refresh_rows))).all()
    assert [(row.name, row.secret_hash) for row in robots] == [(robot.login, secret_digest(rotated.secret))]
    assert secret_digest(refresh) in [row.token_hash for row in refreshes]
    stored = repr(robots) + repr(refreshes)
    for secret in (robot.secret, rotated.secret, refresh):
        assert secret not in stored
