"""Run real registry clients (skopeo, podman) isolated from the host's configuration.

Each client gets its own registries.conf, auth file, signature policy and (for podman) storage
root, all inside a directory the test owns, so nothing the machine has configured changes what a
test sees and nothing a test does leaks into the machine. The registry speaks plain HTTP, so every
command that talks to it turns TLS verification off.

dockyard authorizes every request, so a client logs in (``login``) before it talks to a registry:
the credentials land in the client's own auth file, and every later command finds them there, the
way a person's `podman login` works. The tests log in as the system admin (``ADMIN_AUTH``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.support.server import ADMIN_AUTH

EXTERNAL_ENV = "DOCKYARD_E2E_EXTERNAL"
COMMAND_TIMEOUT = 120.0
NO_TLS = "--tls-verify=false"


class Registry(Protocol):
    """What clients need to reach a registry; `ServerProcess` and `ExternalRegistry` are ones."""

    @property
    def url(self) -> str: ...

    @property
    def host(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ExternalRegistry:
    """A registry started outside the tests (``DOCKYARD_E2E_EXTERNAL``), reached over plain HTTP."""

    host: str

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def is_external(registry: Registry) -> bool:
    return isinstance(registry, ExternalRegistry)


def require_dockyard(registry: Registry, feature: str) -> None:
    """Skip when the tests run against an external registry that may lack `feature`."""
    if is_external(registry):
        pytest.skip(f"{feature}: only asserted against dockyard ({EXTERNAL_ENV} is set)")


class CommandFailed(AssertionError):
    """A client command exited non-zero; the message carries its command line and output."""


def require_tool(name: str) -> str:
    """The path of `name`; skip the test when it is missing, but fail it in CI (CI installs it)."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (apt-get install {name})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so e2e clients are required")
    pytest.skip(reason)


def isolated_env(home: Path, runroot: Path | None = None) -> dict[str, str]:
    """Environment variables that point the containers/* libraries at files under `home`."""
    runroot = runroot or home / "runroot"
    home.mkdir(parents=True, exist_ok=True)
    (home / "registries.conf").write_text("unqualified-search-registries = []\n")
    (home / "auth.json").write_text("{}\n")
    (home / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (home / "containers.conf").write_text('[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n')
    (home / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{home / "root"}"\nrunroot = "{runroot}"\n')
    (home / "tmp").mkdir(exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
        "REGISTRY_AUTH_FILE": str(home / "auth.json"),
        "CONTAINERS_CONF": str(home / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(home / "storage.conf"),
    }


def run(command: list[str], env: Mapping[str, str], stdin: str | None = None) -> str:
    """Run `command`, return its stdout; raise CommandFailed with its output when it fails."""
    result = subprocess.run(command, env=dict(env), capture_output=True, text=True, input=stdin,
                            timeout=COMMAND_TIMEOUT, check=False)
    if result.returncode != 0:
        raise CommandFailed(
            f"`{' '.join(command)}` exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result.stdout


@dataclass(frozen=True, slots=True)
class Skopeo:
    """skopeo with a private policy, registries.conf and auth file."""

    binary: str
    home: Path
    env: Mapping[str, str]

    @classmethod
    def create(cls, home: Path) -> Skopeo:
        return cls(require_tool("skopeo"), home, isolated_env(home))

    def run(self, *args: str, stdin: str | None = None) -> str:
        return run([self.binary, "--policy", str(self.home / "policy.json"), *args], self.env, stdin)

    def login(self, host: str, credentials: tuple[str, str] = ADMIN_AUTH) -> None:
        """`skopeo login` to `host`: the credentials go to this client's own auth file."""
        user, password = credentials
        self.run("login", NO_TLS, "--username", user, "--password-stdin", host, stdin=password)

    def copy(self, source: str, destination: str, *options: str) -> str:
        return self.run("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                        *options, source, destination)

    def inspect_raw(self, reference: str) -> bytes:
        return self.run("inspect", NO_TLS, "--raw", reference).encode()

    def inspect_config(self, reference: str) -> dict[str, Any]:
        return dict(json.loads(self.run("inspect", NO_TLS, "--config", reference)))

    def list_tags(self, reference: str) -> list[str]:
        return list(json.loads(self.run("list-tags", NO_TLS, reference))["Tags"])

    def delete(self, reference: str) -> None:
        self.run("delete", NO_TLS, reference)

    def sync(self, source_transport: str, destination_transport: str, source: str,
             destination: str, *options: str) -> str:
        return self.run("sync", "--src-tls-verify=false", "--dest-tls-verify=false",
                        "--src", source_transport, "--dest", destination_transport,
                        *options, source, destination)


@dataclass(frozen=True, slots=True)
class Podman:
    """podman on the vfs driver with its own root, runroot and tmpdir: no daemon, no host state.

    podman refuses a runroot longer than 50 characters, so the caller passes a short one (and
    removes it afterwards); everything else lives under `home`.
    """

    binary: str
    home: Path
    runroot: Path
    env: Mapping[str, str]

    @classmethod
    def create(cls, home: Path, runroot: Path) -> Podman:
        return cls(require_tool("podman"), home, runroot, isolated_env(home, runroot))

    def run(self, *args: str, stdin: str | None = None) -> str:
        return run([
            self.binary,
            "--root", str(self.home / "root"),
            "--runroot", str(self.runroot),
            "--tmpdir", str(self.home / "libpod-tmp"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            *args,
        ], self.env, stdin)

    def login(self, host: str, credentials: tuple[str, str] = ADMIN_AUTH) -> None:
        """`podman login` to `host`: the credentials go to this client's own auth file."""
        user, password = credentials
        self.run("login", NO_TLS, "--username", user, "--password-stdin", host, stdin=password)

    def pull(self, reference: str, *options: str) -> str:
        """Pull `reference`; return the image ID podman printed."""
        return self.run("pull", "--quiet", NO_TLS, *options, reference).strip().splitlines()[-1]

    def push(self, image: str, destination: str, *options: str) -> str:
        """Push `image` to `destination`; return the manifest digest podman pushed."""
        digest_file = self.home / "digest"
        self.run("push", "--quiet", NO_TLS, "--digestfile", str(digest_file), *options,
                 image, destination)
        return digest_file.read_text().strip()

    def tag(self, image: str, name: str) -> None:
        self.run("tag", image, name)

    def rmi(self, *images: str) -> None:
        self.run("rmi", "--force", *images)

    def inspect(self, image: str) -> dict[str, Any]:
        return dict(json.loads(self.run("image", "inspect", image))[0])

    def image_ids(self) -> set[str]:
        return set(self.run("images", "--quiet", "--no-trunc").split())
