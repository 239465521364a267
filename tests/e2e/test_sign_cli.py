"""`dockyard sign`, `verify`, `key` and `signatures` through the real CLI, on the data directory of
a running server that skopeo pushed the image to; then skopeo itself (containers/image, which
reads cosign's signatures from the .sig tag) copies the image with dockyard's signature as a cosign
signature: an independent reader of what cosign writes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dockyard.scan import cosign
from tests.e2e.clients import Registry, Skopeo, require_dockyard
from tests.e2e.conftest import TmpFactory
from tests.e2e.images import build_image, unique_seed, write_layout
from tests.support.server import ADMIN_AUTH, AUTH_ENV, ServerProcess

pytestmark = pytest.mark.e2e

KEYS = Path(__file__).parent.parent / "data" / "cosign" / "key3-kwctl-cosign-generate-key-pair"


def dockyard(data_dir: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **AUTH_ENV}
    env.pop("COSIGN_PASSWORD", None)
    if password is not None:
        env["COSIGN_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "dockyard", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env=env, timeout=120, check=False, stdin=subprocess.DEVNULL)


def fetch_with_signatures(skopeo: Skopeo, host: str, reference: str, out: Path) -> list[bytes]:
    """``skopeo copy`` to a directory with ``use-sigstore-attachments``: containers/image reads the
    sha256-<hex>.sig manifest and its payloads as cosign signatures and writes each as a
    ``signature-N`` file in its own sigstore form."""
    registries = skopeo.home / "registries.d"
    registries.mkdir(exist_ok=True)
    (registries / "dockyard.yaml").write_text(f"docker:\n  {host}:\n    use-sigstore-attachments: true\n")
    skopeo.run("--registries.d", str(registries), "copy", "--src-tls-verify=false", reference, f"dir:{out}")
    return [path.read_bytes() for path in sorted(out.glob("signature-*"))]


def test_sign_verify_and_show_who_signed(registry: Registry, skopeo: Skopeo, tmp: TmpFactory) -> None:
    require_dockyard(registry, "dockyard sign")
    assert isinstance(registry, ServerProcess)
    data_dir, repository = registry.data_dir, "team/app"
    with httpx.Client(base_url=registry.url, auth=ADMIN_AUTH) as client:
        assert client.post("/api/v1/projects", json={"name": "team"}).status_code == 201
    image = build_image(unique_seed("sign"))
    skopeo.copy(f"oci:{write_layout(tmp('layout'), 'v1', image)}:v1", f"docker://{registry.host}/{repository}:v1")

    wrong = dockyard(data_dir, "sign", f"{repository}:v1", "--key", str(KEYS / "cosign1.key"), password="nope")
    assert wrong.returncode == 1
    assert "wrong password for the encrypted cosign key" in wrong.stderr
    signed = dockyard(data_dir, "sign", f"{repository}:v1", "--key", str(KEYS / "cosign1.key"),
                      "--registry", registry.host, password="kubewarden")
    assert signed.returncode == 0, signed.stderr
    tag = cosign.signature_tag(image.manifest.digest)
    assert f"signature: {repository}:{tag}" in signed.stdout

    good = dockyard(data_dir, "verify", f"{repository}@{image.manifest.digest}", "--key", str(KEYS / "cosign1.pub"))
    assert good.returncode == 0, good.stderr
    assert "1 signature(s), 1 verified" in good.stdout
    bad = dockyard(data_dir, "verify", f"{repository}:v1", "--key", str(KEYS / "cosign2.pub"), "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["signatures"][0]["reason"] == "no trusted key verifies it (tried cosign2.pub)"
    assert "no signature of team/app@" in bad.stderr

    added = dockyard(data_dir, "key", "add", "team", "release", str(KEYS / "cosign1.pub"))
    assert added.returncode == 0, added.stderr
    listed = dockyard(data_dir, "key", "list", "team", "--json")
    assert [k["name"] for k in json.loads(listed.stdout)] == ["release"]
    shown = dockyard(data_dir, "signatures", f"{repository}:v1", "--json")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert found["signed"] is True
    assert [(s["key"], s["tag"], s["docker_reference"]) for s in found["signatures"]] == [
        ("release", tag, f"{registry.host}/{repository}")]
    table = dockyard(data_dir, "signatures", f"{repository}:v1")
    assert "1 signature(s), 1 verified" in table.stdout
    assert "release" in table.stdout

    # containers/image (skopeo) reads what dockyard wrote as the cosign signature it is. (Debian's
    # skopeo cannot verify it: its sigstoreSigned policy is patched out, "sigstore disabled".)
    [copied] = fetch_with_signatures(skopeo, registry.host, f"docker://{registry.host}/{repository}:v1",
                                     tmp("pulled"))
    assert copied.startswith(b"\x00sigstore-json\n")
    document = json.loads(copied[len(b"\x00sigstore-json\n"):])
    assert document["mimeType"] == cosign.SIMPLESIGNING
    data = base64.b64decode(document["payload"])
    assert cosign.parse_payload(data).digest == image.manifest.digest
    public = cosign.load_public_key((KEYS / "cosign1.pub").read_bytes())
    assert cosign.verify(public, data, document["annotations"][cosign.SIGNATURE_ANNOTATION])

    removed = dockyard(data_dir, "key", "remove", "team", "release")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(dockyard(data_dir, "signatures", f"{repository}:v1", "--json").stdout)["signed"] is False
