"""Push and pull policies as skopeo and podman meet them, and signatures that open the gate.

A real `dockyard serve`; policies are applied with ``dockyard policy apply FILE``, keys trusted
with ``dockyard key add`` and images signed with ``dockyard sign``, all on the server's data
directory while it runs. The refusal messages are asserted in the clients' own stderr, as a
developer sees them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.clients import CommandFailed, Podman
from tests.e2e.supply_chain import clean_image, debian_image, dockyard_cli, eventually, write_advisories
from tests.support.images import Blob, push_layout, write_layout
from tests.support.server import ADMIN_AUTH, ServerProcess

pytestmark = pytest.mark.e2e

# Signatures and keys made by the real cosign (their README says where each comes from): the copy in
# tests/data/cosign, else the shared fixtures it was copied from.
COSIGN_FIXTURES = next((p for p in (Path(__file__).resolve().parents[1] / "data" / "cosign",
                                    Path("/work/shared/fixtures/cosign")) if (p / "README.md").is_file()),
                       Path(__file__).resolve().parents[1] / "data" / "cosign")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WARNING_HEADER = "Dockyard-Policy-Warning"
CRITICAL_MESSAGE = ("1 critical vulnerability: DYT-2026-0001 in zlib1g 1:1.2.13.dfsg-1 (fixed in 1:1.2.13.dfsg-2); "
                    "allow-list or rebuild")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("policies") / "data"
    advisories = write_advisories(data_dir.parent / "osv")
    imported = dockyard_cli(data_dir, "vulndb", "import", str(advisories))
    assert imported.returncode == 0, imported.stderr
    scanning = {"DOCKYARD_SCAN__ENABLED": "true", "DOCKYARD_SCAN__INTERVAL": "1s"}
    with ServerProcess(data_dir=data_dir, env=scanning) as process:
        with httpx.Client(base_url=process.url, auth=ADMIN_AUTH) as http:
            for project in ("gate", "signed"):
                assert http.post("/api/v1/projects", json={"name": project}).status_code == 201
        yield process
        print(*process.log().splitlines()[-60:], sep="\n")


def apply_policy(server: ServerProcess, tmp_path: Path, text: str) -> None:
    path = tmp_path / f"policy-{abs(hash(text))}.toml"
    path.write_text(text)
    done = dockyard_cli(server.data_dir, "policy", "apply", str(path))
    assert done.returncode == 0, done.stderr + done.stdout


def test_skopeo_shows_why_a_push_with_secrets_and_critical_vulnerabilities_is_refused_and_warn_lets_it_in(
    server: ServerProcess, tmp_path: Path,
) -> None:
    apply_policy(server, tmp_path, """
[projects.gate.push]
secrets = "enforce"
vulnerabilities = { severity = "critical", mode = "enforce" }
""")
    image = debian_image()
    layout = write_layout(tmp_path / "layout", "v1", image)
    refused = push_layout(layout, "v1", server.host, "gate/app:v1", home=tmp_path / "skopeo")
    assert not refused.ok
    print("skopeo, refused push:\n" + refused.stderr)
    base = image.layers[0].digest.removeprefix("sha256:")[:12]
    assert (f"writing manifest: uploading manifest v1 to {server.host}/gate/app: denied: 5 secrets found: "
            f"aws-access-key-id in /root/.aws/credentials line 2 (layer sha256:{base}…); "
            f"aws-secret-access-key in /root/.aws/credentials line 3 (layer sha256:{base}…); "
            "github-token in the image config's Env (entry 2) and 2 more: remove them from the layer or "
            f"Dockerfile instruction that added them and rebuild | {CRITICAL_MESSAGE}") in refused.stderr
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30.0) as http:
        assert http.get("/v2/gate/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 404

        apply_policy(server, tmp_path, """
[projects.gate.push]
secrets = "warn"
vulnerabilities = { severity = "critical", mode = "warn" }
""")
        # A worker reads a project's rules afresh at most every 10 s (AdmissionService's cache):
        # skopeo retries until the new rules apply.
        accepted = eventually(lambda: pushed if (pushed := push_layout(
            layout, "v1", server.host, "gate/app:v1", home=tmp_path / "skopeo")).ok else None,
            "the push under warn rules", deadline=30.0)
        assert accepted.digest == image.digest
        # skopeo does not show response headers: the same manifest again, to another tag, by HTTP.
        again = http.put("/v2/gate/app/manifests/v1-again", content=image.manifest.data,
                         headers={"Content-Type": OCI_MANIFEST})
        assert again.status_code == 201, again.text
        warning = again.headers[WARNING_HEADER]
        assert "5 secrets found: " in warning
        events = http.get("/api/v1/audit", params={"action": "policy.warned", "repository": "gate/app"}).json()
        assert events, "no policy.warned event"


def p256_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def podman_client(tmp_path: Path) -> Iterator[Podman]:
    import shutil
    import tempfile

    runroot = Path(tempfile.mkdtemp(prefix="dockyard-podman-"))
    try:
        yield Podman.create(tmp_path / "podman", runroot)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture
def podman(tmp_path: Path, server: ServerProcess) -> Iterator[Podman]:
    for client in podman_client(tmp_path):
        client.login(server.host)
        yield client


def refused_pull(podman: Podman, reference: str) -> str:
    with pytest.raises(CommandFailed) as failed:
        podman.pull(reference)
    return str(failed.value)


def test_podman_pull_of_an_unsigned_image_is_refused_until_dockyard_sign_with_a_trusted_key(
    server: ServerProcess, tmp_path: Path, podman: Podman,
) -> None:
    apply_policy(server, tmp_path, """
[projects.signed.pull]
signed = "enforce"
""")
    image = clean_image("signed")
    layout = write_layout(tmp_path / "layout", "v1", image)
    pushed = push_layout(layout, "v1", server.host, "signed/app:v1", home=tmp_path / "skopeo")
    assert pushed.ok, pushed.stderr
    reference = f"{server.host}/signed/app:v1"

    output = refused_pull(podman, reference)
    print("podman, refused pull:\n" + output)
    assert (f"Error: initializing source docker://{reference}: reading manifest v1 in {server.host}/signed/app: "
            "denied: not signed by a key project signed trusts (project signed trusts no key yet: add one with "
            "dockyard key add); sign it with dockyard sign or cosign sign --key") in output

    private, public = p256_key_pair(tmp_path, "release")
    added = dockyard_cli(server.data_dir, "key", "add", "signed", "release", str(public))
    assert added.returncode == 0, added.stderr
    output = refused_pull(podman, reference)
    assert "not signed by a key project signed trusts (trusted: release sha256:" in output

    signed = dockyard_cli(server.data_dir, "sign", "signed/app:v1", "--key", str(private))
    assert signed.returncode == 0, signed.stderr
    podman.pull(reference)
    assert len(podman.image_ids()) == 1


def test_a_cosign_generated_encrypted_key_signs_and_its_public_key_opens_the_pull(
    server: ServerProcess, tmp_path: Path, podman: Podman,
) -> None:
    keys = COSIGN_FIXTURES / "key3-kwctl-cosign-generate-key-pair"
    apply_policy(server, tmp_path, """
[projects.signed.pull]
signed = "enforce"
""")
    image = clean_image("cosign-key")
    layout = write_layout(tmp_path / "layout", "v1", image)
    assert push_layout(layout, "v1", server.host, "signed/cosign-key:v1", home=tmp_path / "skopeo").ok
    password = (keys / "PASSWORD").read_text().strip()
    signed = dockyard_cli(server.data_dir, "sign", "signed/cosign-key:v1", "--key", str(keys / "cosign1.key"),
                          env={"COSIGN_PASSWORD": password})
    assert signed.returncode == 0, signed.stderr
    reference = f"{server.host}/signed/cosign-key:v1"
    assert "not signed by a key project signed trusts" in refused_pull(podman, reference)
    added = dockyard_cli(server.data_dir, "key", "add", "signed", "kubewarden", str(keys / "cosign1.pub"))
    assert added.returncode == 0, added.stderr
    podman.pull(reference)


def test_a_signature_the_real_cosign_pushed_verifies_once_its_key_is_trusted(
    server: ServerProcess, tmp_path: Path,
) -> None:
    """The cosign v3.0.4 signature manifest (tobby-fetch's fixture), pushed byte for byte under its
    .sig tag. Its subject image's layers are not published, so the subject is not pushed: the
    signature is read by digest, as a pull of that digest would."""
    fixture = COSIGN_FIXTURES / "sig5-tobby-fetch-full-sig-manifest"
    payload = (fixture / "payload.json").read_bytes()
    subject = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    tag = subject.replace(":", "-") + ".sig"
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30.0) as http:
        for data in ((fixture / "config.json").read_bytes(), payload):
            blob = Blob("application/octet-stream", data)
            assert http.post(f"/v2/signed/fixture/blobs/uploads/?digest={blob.digest}", content=data,
                             headers={"Content-Type": "application/octet-stream"}).status_code == 201
        put = http.put(f"/v2/signed/fixture/manifests/{tag}", content=(fixture / "sig-manifest.json").read_bytes(),
                       headers={"Content-Type": OCI_MANIFEST})
        assert put.status_code == 201, put.text
        url = f"/api/v1/repositories/signed/fixture/manifests/{subject}/signatures"
        before = http.get(url).json()
        assert before["signed"] is False
        assert len(before["signatures"]) == 1
        added = dockyard_cli(server.data_dir, "key", "add", "signed", "tobby", str(fixture / "cosign.pub"))
        assert added.returncode == 0, added.stderr
        after = http.get(url).json()
    assert after["signed"] is True
    assert [s["verified"] for s in after["signatures"]] == [True]
    assert after["signatures"][0]["key"] == "tobby"
