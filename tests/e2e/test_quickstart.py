"""The README's quick start, as written: `make serve` on a fresh copy, then skopeo against it.

The copy is this working tree without its virtualenv or data, so `make serve` has to create
`.venv`, install dockyard into it (from the package index, as on a new machine) and start the
registry. Only the port is moved off 5000 (with the Makefile's own `SERVE_PORT`), so the test
cannot collide with a registry already serving there; the defaults are checked separately.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.clients import Skopeo
from tests.e2e.images import Layout, build_image, unique_seed, write_layout
from tests.support.server import ManagedProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "quick-start-Admin-password-1"
# Creating the virtualenv and installing into it (pip's cache makes it ~20 s here).
READY_TIMEOUT = 300.0


def _fresh_copy(destination: Path) -> Path:
    """The files git would put in a clone of this working tree, as they are now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return destination


def _environment() -> dict[str, str]:
    """A newcomer's shell: no virtualenv active, no DOCKYARD_* settings but the admin password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_") and k != "VIRTUAL_ENV"}
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["DOCKYARD_ADMIN_PASSWORD"] = PASSWORD
    return env


@dataclass
class MakeServe(ManagedProcess):
    """``make serve`` in a copy of the repository, moved to this object's port."""

    def start(self, repo: Path) -> MakeServe:
        self._spawn("make-serve", ["make", "serve", f"SERVE_PORT={self.port}"], environ=_environment(), cwd=repo)
        self._wait_ready("make serve", "/readyz", READY_TIMEOUT)
        return self


@pytest.fixture
def make_serve(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the quick start is checked from one")
    repo = _fresh_copy(tmp_path / "dockyard")
    assert not (repo / ".venv").exists()
    assert not (repo / "data").exists()
    process = MakeServe(data_dir=tmp_path / "make")  # only its log lives there
    try:
        process.start(repo)
        yield repo, process.port
    finally:
        returncode = process.stop(timeout=30)
    # make itself dies of the SIGTERM (or reports its stopped child as 2); dockyard stops gracefully.
    assert returncode in (0, 2, -signal.SIGTERM), process.log()
    assert "did not stop within server.graceful_timeout" not in process.log()


def test_make_serve_listens_on_5000_with_data_in_dot_data_by_default() -> None:
    planned = subprocess.run(["make", "-n", "serve"], cwd=ROOT, capture_output=True, text=True,
                             env={**_environment(), "PORT": "8080", "HOST": "0.0.0.0"}, check=True).stdout
    assert "dockyard serve --host 127.0.0.1 --port 5000 --data-dir ./data" in planned


def test_make_serve_on_a_fresh_copy_then_the_readme_push_and_pull(
    make_serve: tuple[Path, int], tmp_path: Path,
) -> None:
    repo, port = make_serve
    assert (repo / ".venv" / "bin" / "dockyard").exists()  # make serve created and installed it
    assert (repo / "data" / "dockyard.db").exists()  # the data is in ./data

    skopeo = Skopeo.create(tmp_path / "skopeo")
    creds = f"admin:{PASSWORD}"
    image = build_image(unique_seed())
    source = write_layout(tmp_path / "source", "3.20", image)
    target = f"docker://127.0.0.1:{port}/library/alpine:3.20"
    skopeo.copy(f"oci:{source}:3.20", target, "--dest-creds", creds)
    pulled = Layout(tmp_path / "pulled")
    skopeo.copy(target, f"oci:{pulled.directory}:3.20", "--src-creds", creds)
    assert pulled.descriptor("3.20")["digest"] == image.digest
    assert pulled.manifest("3.20") == image.manifest.data
    tags = skopeo.run("list-tags", "--tls-verify=false", "--creds", creds,
                      f"docker://127.0.0.1:{port}/library/alpine")
    assert '"3.20"' in tags
    # Every project is private: without credentials the pull is refused.
    assert httpx.get(f"http://127.0.0.1:{port}/v2/library/alpine/manifests/3.20").status_code == 401
