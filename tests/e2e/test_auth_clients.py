"""Real clients log in and work through the token flow, and are refused where they should be.

One `dockyard serve` (one worker) for the whole module, with a private project ``team`` and a
public project ``pub``; users, roles and robots are made with the real ``dockyard`` CLI on the
server's data directory, exactly as an operator would.

- **docker**: only the CLI runs here, no daemon. ``DOCKER_HOST`` points at a socket nobody
  listens on, so ``docker login`` finds the daemon unreachable and logs in client-side (the CLI
  falls back to that when the daemon does not answer). Registries on ``127.0.0.0/8`` are insecure
  registries by default (dockerd's documented default, which the CLI's own registry code shares),
  so login tries https first, then plain http; nothing needs configuring.
  ``docker manifest inspect`` needs its documented ``--insecure`` flag to use plain http: without
  it, it skips every non-TLS endpoint. ``DOCKER_CONFIG`` is a directory of the test's own, with no
  credential helper, so what login saved can be read from ``config.json``.
- **podman** and **skopeo**: the isolated wrappers of ``clients.py``, with ``--tls-verify=false``.
- **robots**: created with ``dockyard robot add``, their login and secret parsed from its output
  and used as CI would (``--dest-creds``); expiry is reached by moving ``robots.expires_at`` into
  the past in the SQLite database.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clients import COMMAND_TIMEOUT, NO_TLS, CommandFailed, Podman, Skopeo, require_tool
from tests.e2e.conftest import TmpFactory, print_log_tail
from tests.e2e.images import Image, Layout, build_image, unique_seed, write_layout
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = f"admin-{uuid.uuid4().hex}"
PASSWORDS = {name: f"{name}-{uuid.uuid4().hex[:12]}" for name in
             ("alice", "bob", "carol", "dave", "dora", "erin")}
# alice: developer in team and pub; bob: guest in team; carol, dora: developers in team (docker
# login tests; carol gets disabled); dave: developer in pub, nothing in team; erin: developer in
# team (podman).
ROLES = (("team", "alice", "developer"), ("pub", "alice", "developer"), ("team", "bob", "guest"),
         ("team", "carol", "developer"), ("team", "dora", "developer"), ("pub", "dave", "developer"),
         ("team", "erin", "developer"))
PRIVATE_REF = "team/app/base:v1"
PUBLIC_REF = "pub/tools/hello:v1"
# What a registry client prints when the registry refuses it (401 / DENIED / bad credentials).
REFUSED = re.compile(r"denied|unauthorized|authentication required|invalid username/password", re.I)


def attempt(command: list[str], env: Mapping[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=dict(env), input=stdin, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"`{' '.join(result.args)}` exited {result.returncode}\n--- stdout\n{result.stdout}\n" \
           f"--- stderr\n{result.stderr}"


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode != 0:
        raise CommandFailed(output(result))
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The client failed, and said the registry refused it (not some other failure)."""
    assert result.returncode != 0, f"expected a refusal:\n{output(result)}"
    text = result.stdout + result.stderr
    assert REFUSED.search(text), f"failed, but not with a refusal:\n{output(result)}"
    return text


def refusal(error: pytest.ExceptionInfo[CommandFailed]) -> str:
    text = str(error.value)
    assert REFUSED.search(text), f"failed, but not with a refusal:\n{text}"
    return text


def answer(text: str, name: str) -> str:
    """A client's error output with the repository name and the log timestamps taken out."""
    return re.sub(r'time="[^"]*"', "", text.split("--- stderr", 1)[-1]).replace(name, "NAME")


@dataclass
class Site:
    """The module's registry, its data directory and the `dockyard` CLI pointed at it."""

    server: ServerProcess
    skopeo: Skopeo  # anonymous unless a command passes credentials
    base: Image  # pushed as PRIVATE_REF
    public: Image  # pushed as PUBLIC_REF

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def ref(self, name: str) -> str:
        return f"docker://{self.host}/{name}"

    def cli(self, *args: str, stdin: str | None = None) -> str:
        env = {**os.environ, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD}
        return succeeded(attempt([sys.executable, "-m", "dockyard", *args, "--data-dir", str(self.data_dir)],
                                 env, stdin))

    def audit(self, user: str, action: str) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("audit", "--json", "--user", user, "--action", action)))

    def audit_of(self, repository: str) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("audit", "--json", "--repository", repository)))

    def add_robot(self, name: str, perms: str, repo: str, expires: str = "30d") -> tuple[str, str]:
        """`dockyard robot add` in project team; the login and secret it printed."""
        printed = self.cli("robot", "add", "team", name, "--perm", perms, "--repo", repo, "--expires", expires)
        login = re.search(r"^robot account:\s*(\S+)$", printed, re.M)
        secret = re.search(r"^secret:\s*(\S+)$", printed, re.M)
        assert login, printed
        assert secret, printed
        assert login[1] == f"robot+team+{name}"
        return login[1], secret[1]


def push_layout(skopeo: Skopeo, directory: Path, image: Image, destination: str, *options: str) -> None:
    layout = write_layout(directory, "src", image)
    skopeo.copy(f"oci:{layout}:src", destination, *options)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("auth-clients")
    server = ServerProcess(data_dir=root / "data", workers=1,
                           env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()
    try:
        skopeo = Skopeo.create(root / "skopeo")
        found = Site(server, skopeo, build_image(unique_seed()), build_image(unique_seed()))
        for name, password in PASSWORDS.items():
            found.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
        found.cli("project", "add", "team")
        found.cli("project", "add", "pub", "--public")
        for project, name, role in ROLES:
            found.cli("member", "add", project, name, role)
        alice = f"alice:{PASSWORDS['alice']}"
        push_layout(skopeo, root / "base", found.base, found.ref(PRIVATE_REF), "--dest-creds", alice)
        push_layout(skopeo, root / "public", found.public, found.ref(PUBLIC_REF), "--dest-creds", alice)
        yield found
    finally:
        server.stop()
        print_log_tail(server)


# -- docker ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Docker:
    """The docker CLI with a config directory of its own and no daemon to talk to."""

    binary: str
    config_dir: Path
    env: Mapping[str, str]

    @classmethod
    def create(cls, home: Path) -> Docker:
        binary = require_tool("docker")
        config_dir = home / "docker-config"
        config_dir.mkdir(parents=True)
        env = {**os.environ, "HOME": str(home), "DOCKER_CONFIG": str(config_dir),
               "DOCKER_HOST": f"unix://{home}/no-daemon.sock", "DOCKER_CLI_HINTS": "false"}
        env.pop("DOCKER_CONTEXT", None)
        return cls(binary, config_dir, env)

    def login(self, host: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
        return attempt([self.binary, "login", host, "-u", user, "--password-stdin"], self.env, password + "\n")

    def manifest_inspect(self, reference: str) -> subprocess.CompletedProcess[str]:
        return attempt([self.binary, "manifest", "inspect", "--insecure", reference], self.env)

    def saved(self, host: str) -> dict[str, str]:
        """What login wrote to config.json for `host` ({} when nothing)."""
        path = self.config_dir / "config.json"
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text()).get("auths", {}).get(host, {}))


def test_docker_login_saves_a_refresh_token_and_is_audited(site: Site, tmp: TmpFactory) -> None:
    docker = Docker.create(tmp("docker"))

    assert "Login Succeeded" in succeeded(docker.login(site.host, "dora", PASSWORDS["dora"]))

    saved = docker.saved(site.host)
    # docker asked for offline access; the token service answered with a refresh token, which
    # docker keeps as the identity token instead of the password.
    assert saved.get("identitytoken"), saved
    assert base64.b64decode(saved.get("auth", "")).decode() == "dora:"  # the password is not kept
    logins = site.audit("dora", "login.succeeded")
    assert len(logins) == 1, logins
    assert logins[0]["address"] == "127.0.0.1"

    # With no password saved, docker can only redeem its identity token: POST /token with
    # grant_type=refresh_token (the OAuth2 form), which records a token but no new login.
    inspected = json.loads(succeeded(docker.manifest_inspect(f"{site.host}/{PRIVATE_REF}")))
    assert inspected["config"]["digest"] == site.base.config.digest
    assert [layer["digest"] for layer in inspected["layers"]] == [layer.digest for layer in site.base.layers]
    assert len(site.audit("dora", "login.succeeded")) == 1
    scopes = [event["detail"]["scopes"] for event in site.audit("dora", "token.issued")]
    assert ["repository:team/app/base:pull"] in scopes, scopes


def test_docker_login_with_a_bad_password_is_refused_and_audited(site: Site, tmp: TmpFactory) -> None:
    docker = Docker.create(tmp("docker"))
    before = len(site.audit("dora", "login.failed"))

    text = refused(docker.login(site.host, "dora", "not-" + PASSWORDS["dora"]))

    assert "invalid username or password" in text
    assert docker.saved(site.host) == {}
    assert len(site.audit("dora", "login.failed")) > before


def test_docker_disabled_user_is_refused_at_login_and_with_a_saved_token(site: Site, tmp: TmpFactory) -> None:
    docker = Docker.create(tmp("docker"))
    succeeded(docker.login(site.host, "carol", PASSWORDS["carol"]))
    assert docker.saved(site.host).get("identitytoken")
    succeeded(docker.manifest_inspect(f"{site.host}/{PRIVATE_REF}"))

    site.cli("user", "disable", "carol")

    # The identity token saved before the user was disabled no longer works ...
    refused(docker.manifest_inspect(f"{site.host}/{PRIVATE_REF}"))
    # ... and a fresh login with the right password is refused, and audited as a failure.
    refused(Docker.create(tmp("docker")).login(site.host, "carol", PASSWORDS["carol"]))
    assert site.audit("carol", "login.failed"), "no login.failed event for the disabled user"


def test_docker_manifest_inspect_without_access_is_refused(site: Site, tmp: TmpFactory) -> None:
    docker = Docker.create(tmp("docker"))
    succeeded(docker.login(site.host, "dave", PASSWORDS["dave"]))  # logging in needs no role

    denied = refused(docker.manifest_inspect(f"{site.host}/{PRIVATE_REF}"))
    # The same answer as for a repository that does not exist: nothing is revealed.
    missing = refused(docker.manifest_inspect(f"{site.host}/team/app/missing:v1"))
    assert answer(denied, "team/app/base") == answer(missing, "team/app/missing")
    public = json.loads(succeeded(docker.manifest_inspect(f"{site.host}/{PUBLIC_REF}")))
    assert public["config"]["digest"] == site.public.config.digest


# -- podman ------------------------------------------------------------------------------------


def podman_login(podman: Podman, host: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return attempt([podman.binary, "--root", str(podman.home / "root"), "--runroot", str(podman.runroot),
                    "login", NO_TLS, "-u", user, "--password-stdin", host], podman.env, password + "\n")


def test_podman_login_push_pull_logout(site: Site, podman: Podman, tmp: TmpFactory) -> None:
    image = build_image(unique_seed())
    loaded = podman.pull(f"oci:{write_layout(tmp('layout'), 'v1', image)}:v1")
    destination = f"{site.host}/team/app/podman:v1"

    refused(podman_login(podman, site.host, "erin", "not-" + PASSWORDS["erin"]))
    assert "Login Succeeded" in succeeded(podman_login(podman, site.host, "erin", PASSWORDS["erin"]))
    pushed = podman.push(loaded, destination)
    podman.rmi(loaded)
    assert podman.pull(destination) == loaded
    assert podman.inspect(destination)["Digest"] == pushed

    podman.run("logout", site.host)
    podman.rmi(loaded)
    with pytest.raises(CommandFailed) as error:
        podman.pull(destination)
    refusal(error)
    with pytest.raises(CommandFailed) as error:
        podman.pull(f"{site.host}/{PRIVATE_REF}")
    refusal(error)

    assert podman.pull(f"{site.host}/{PUBLIC_REF}") == site.public.config.digest.removeprefix("sha256:")


# -- skopeo ------------------------------------------------------------------------------------


def creds(user: str) -> str:
    return f"{user}:{PASSWORDS[user]}"


def test_skopeo_developer_copies_in_and_out(site: Site, skopeo: Skopeo, tmp: TmpFactory) -> None:
    image = build_image(unique_seed())
    reference = site.ref("team/app/skopeo:v1")

    push_layout(skopeo, tmp("src"), image, reference, "--dest-creds", creds("alice"))

    out = tmp("out")
    skopeo.copy(reference, f"dir:{out}", "--src-creds", creds("alice"))
    assert (out / "manifest.json").read_bytes() == image.manifest.data
    assert skopeo.run("inspect", NO_TLS, "--raw", "--creds", creds("alice"), reference).encode() \
        == image.manifest.data


def test_skopeo_copy_between_repositories_mounts_only_where_the_caller_may_pull(
    site: Site, skopeo: Skopeo, tmp: TmpFactory,
) -> None:
    # Fresh images for each half: as root, skopeo's blob-location cache is machine-wide
    # (/var/lib/containers/cache), so it would also offer mounts from copies made earlier.
    hidden, shared = build_image(unique_seed()), build_image(unique_seed())
    push_layout(skopeo, tmp("src"), hidden, site.ref("team/app/hidden:v1"), "--dest-creds", creds("alice"))
    push_layout(skopeo, tmp("src"), shared, site.ref("team/app/shared:v1"), "--dest-creds", creds("alice"))

    # dave may push to pub but not read team: skopeo asks for repository:team/app/hidden:pull
    # as well, gets a token without it, is refused the source (401, as for a blob that does not
    # exist) and uploads the layers itself: nothing is mounted.
    skopeo.copy(site.ref("team/app/hidden:v1"), site.ref("pub/tools/uploaded:v1"),
                "--src-creds", creds("alice"), "--dest-creds", creds("dave"))
    assert skopeo.inspect_raw(site.ref("pub/tools/uploaded:v1")) == hidden.manifest.data
    out = Layout(tmp("out"))
    skopeo.copy(site.ref("pub/tools/uploaded:v1"), f"oci:{out.directory}:v1")
    for blob in (hidden.config, *hidden.layers):
        assert out.blob(blob.digest) == blob.data
    events = site.audit_of("pub/tools/uploaded")
    assert not [e for e in events if e["action"] == "blob.mounted"], events
    assert {e["digest"] for e in events if e["action"] == "blob.pushed"} >= {b.digest for b in hidden.layers}

    # alice may pull the source: the same kind of copy mounts layers from it. (Which layers
    # skopeo offers to mount depends on its blob-location cache, so not necessarily all.)
    skopeo.copy(site.ref("team/app/shared:v1"), site.ref("pub/tools/mounted:v1"),
                "--src-creds", creds("alice"), "--dest-creds", creds("alice"))
    assert skopeo.inspect_raw(site.ref("pub/tools/mounted:v1")) == shared.manifest.data
    mounted = [e for e in site.audit_of("pub/tools/mounted") if e["action"] == "blob.mounted"]
    assert mounted, "skopeo mounted nothing from a repository alice may pull"
    assert {e["digest"] for e in mounted} <= {b.digest for b in shared.layers}, mounted
    assert {e["detail"]["source"] for e in mounted} == {"team/app/shared"}, mounted


def test_skopeo_guest_pulls_but_cannot_push(site: Site, skopeo: Skopeo, tmp: TmpFactory) -> None:
    raw = skopeo.run("inspect", NO_TLS, "--raw", "--creds", creds("bob"), site.ref(PRIVATE_REF))
    assert raw.encode() == site.base.manifest.data
    out = tmp("out")
    skopeo.copy(site.ref(PRIVATE_REF), f"dir:{out}", "--src-creds", creds("bob"))
    assert (out / "manifest.json").read_bytes() == site.base.manifest.data

    with pytest.raises(CommandFailed) as error:
        push_layout(skopeo, tmp("src"), build_image(unique_seed()), site.ref("team/app/guest:v1"),
                    "--dest-creds", creds("bob"))
    refusal(error)
    with pytest.raises(CommandFailed) as error:  # nothing was written
        skopeo.run("inspect", NO_TLS, "--raw", "--creds", creds("alice"), site.ref("team/app/guest:v1"))
    assert "manifest unknown" in str(error.value).lower()


def test_skopeo_wrong_password_and_no_credentials_are_refused(site: Site, skopeo: Skopeo) -> None:
    with pytest.raises(CommandFailed) as error:
        skopeo.run("inspect", NO_TLS, "--raw", "--creds", f"alice:not-{PASSWORDS['alice']}", site.ref(PRIVATE_REF))
    refusal(error)
    with pytest.raises(CommandFailed) as error:
        skopeo.run("inspect", NO_TLS, "--raw", site.ref(PRIVATE_REF))
    denied = answer(refusal(error), "team/app/base")
    # Anonymous callers learn nothing: a private repository looks like one that does not exist,
    # in an existing project or in none.
    for missing in ("team/app/missing", "nosuch/app/base"):
        with pytest.raises(CommandFailed) as error:
            skopeo.run("inspect", NO_TLS, "--raw", site.ref(f"{missing}:v1"))
        assert answer(refusal(error), missing) == denied
    with pytest.raises(CommandFailed) as error:
        skopeo.run("inspect", NO_TLS, "--raw", "--no-creds", site.ref(PRIVATE_REF))
    refusal(error)


def test_skopeo_anonymous_inspect_of_a_public_image(site: Site, skopeo: Skopeo) -> None:
    assert skopeo.inspect_raw(site.ref(PUBLIC_REF)) == site.public.manifest.data
    assert skopeo.inspect_config(site.ref(PUBLIC_REF))["rootfs"] == json.loads(site.public.config.data)["rootfs"]


# -- robot accounts ----------------------------------------------------------------------------


def test_robot_pushes_only_within_its_glob_until_revoked(site: Site, skopeo: Skopeo, tmp: TmpFactory) -> None:
    login, secret = site.add_robot("ci", "pull,push", "app/*")
    robot = f"{login}:{secret}"
    image = build_image(unique_seed())

    push_layout(skopeo, tmp("src"), image, site.ref("team/app/ci:v1"), "--dest-creds", robot)
    assert skopeo.run("inspect", NO_TLS, "--raw", "--creds", robot, site.ref("team/app/ci:v1")).encode() \
        == image.manifest.data

    pushed = [e for e in site.audit_of("team/app/ci") if e["action"] == "manifest.pushed"]
    # (with scanning on, the scanner's SBOM referrer is pushed too, as the actor "scanner")
    assert [(e["actor"], e["digest"]) for e in pushed if e["actor"] != "scanner"] == [(login, image.digest)]

    with pytest.raises(CommandFailed) as error:
        push_layout(skopeo, tmp("src"), image, site.ref("team/other/ci:v1"), "--dest-creds", robot)
    refusal(error)
    with pytest.raises(CommandFailed) as error:  # nothing was written
        skopeo.run("inspect", NO_TLS, "--raw", "--creds", creds("alice"), site.ref("team/other/ci:v1"))
    assert "manifest unknown" in str(error.value).lower()

    site.cli("robot", "revoke", login)

    with pytest.raises(CommandFailed) as error:
        push_layout(skopeo, tmp("src"), build_image(unique_seed()), site.ref("team/app/ci:v2"),
                    "--dest-creds", robot)
    refusal(error)
    with pytest.raises(CommandFailed) as error:
        skopeo.run("inspect", NO_TLS, "--raw", "--creds", robot, site.ref("team/app/ci:v1"))
    refusal(error)


def test_pull_only_robot_cannot_push(site: Site, skopeo: Skopeo, tmp: TmpFactory) -> None:
    login, secret = site.add_robot("reader", "pull", "app/*")
    robot = f"{login}:{secret}"

    assert skopeo.run("inspect", NO_TLS, "--raw", "--creds", robot, site.ref(PRIVATE_REF)).encode() \
        == site.base.manifest.data
    with pytest.raises(CommandFailed) as error:
        push_layout(skopeo, tmp("src"), build_image(unique_seed()), site.ref("team/app/reader:v1"),
                    "--dest-creds", robot)
    refusal(error)


def test_expired_robot_is_refused(site: Site, skopeo: Skopeo) -> None:
    login, secret = site.add_robot("late", "pull,push", "app/*")
    robot = f"{login}:{secret}"
    assert skopeo.run("inspect", NO_TLS, "--raw", "--creds", robot, site.ref(PRIVATE_REF)).encode() \
        == site.base.manifest.data

    past = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(sep=" ")
    with closing(sqlite3.connect(site.data_dir / "dockyard.db")) as db, db:
        changed = db.execute("UPDATE robots SET expires_at = ? WHERE name = ?", (past, login)).rowcount
    assert changed == 1

    with pytest.raises(CommandFailed) as error:
        skopeo.run("inspect", NO_TLS, "--raw", "--creds", robot, site.ref(PRIVATE_REF))
    refusal(error)


def test_robot_docker_login_in_ci_until_revoked(site: Site, tmp: TmpFactory) -> None:
    """`echo $SECRET | docker login -u 'robot+team+deploy' --password-stdin`, as a CI job does."""
    login, secret = site.add_robot("deploy", "pull", "app/*")
    docker = Docker.create(tmp("docker"))

    assert "Login Succeeded" in succeeded(docker.login(site.host, login, secret))
    assert docker.saved(site.host).get("identitytoken")
    inspected = json.loads(succeeded(docker.manifest_inspect(f"{site.host}/{PRIVATE_REF}")))
    assert inspected["config"]["digest"] == site.base.config.digest

    site.cli("robot", "revoke", login)

    refused(docker.manifest_inspect(f"{site.host}/{PRIVATE_REF}"))  # the saved refresh token is dead
    refused(Docker.create(tmp("docker")).login(site.host, login, secret))
