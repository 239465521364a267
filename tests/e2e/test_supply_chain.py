"""skopeo pushes real-data images to a real `dockyard serve`; the registry finds exactly what is in them.

One server for the module, with a real clamd (tests/support/clamd.py: a tiny signature database
with EICAR) configured as ``scan.clamd.socket``, and the OSV advisories of tests/data/osv imported
with ``dockyard vulndb import`` on the server's data directory. Each test pushes with skopeo, then
polls the scan API until the scan is done (bounded), and compares what the registry reports with
what the test built (the packages with an independent parse of the real dpkg status).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from packageurl import PackageURL

from tests.e2e.clients import require_tool
from tests.e2e.supply_chain import (
    AWS_KEY_ID,
    AWS_SECRET,
    EXPECTED_VULNERABILITIES,
    GITHUB_TOKEN,
    NETRC_PASSWORD,
    PEM_KEY,
    SCAN_DATA,
    debian_image,
    dockyard_cli,
    eventually,
    expected_debian_packages,
    vulnerability_keys,
    wait_for_scan,
    write_advisories,
)
from tests.support.clamd import EICAR, ClamdServer, running_clamd
from tests.support.images import build_image, build_index, build_layer, push_layout, write_layout
from tests.support.server import ADMIN_AUTH, ServerProcess

pytestmark = pytest.mark.e2e

SBOM_TYPE = "application/vnd.cyclonedx+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdServer]:
    with running_clamd({"Dockyard.Test.EICAR": EICAR}) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, clamd: ClamdServer) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("supply-chain") / "data"
    env = {"DOCKYARD_SCAN__ENABLED": "true", "DOCKYARD_SCAN__CLAMD__SOCKET": clamd.unix_socket,
           "DOCKYARD_SCAN__INTERVAL": "1s"}
    advisories = write_advisories(data_dir.parent / "osv")
    imported = dockyard_cli(data_dir, "vulndb", "import", str(advisories))
    assert imported.returncode == 0, imported.stderr
    with ServerProcess(data_dir=data_dir, env=env) as process:
        with httpx.Client(base_url=process.url, auth=ADMIN_AUTH) as http:
            for project in ("shop", "distros"):
                assert http.post("/api/v1/projects", json={"name": project}).status_code == 201
        yield process
        print(*process.log().splitlines()[-60:], sep="\n")


def package_keys(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    return sorted((p["type"], p["name"], p["version"], p["purl"], p["layer"]) for p in report["packages"])


def test_the_debian_image_reports_exactly_its_packages_vulnerabilities_secrets_and_malware(
    server: ServerProcess, tmp_path: Path,
) -> None:
    image = debian_image()
    base, apps, test_file = (layer.digest for layer in image.layers)
    layout = write_layout(tmp_path / "layout", "v1", image)
    pushed = push_layout(layout, "v1", server.host, "shop/debian:v1", home=tmp_path / "skopeo")
    assert pushed.ok, pushed.stderr
    assert pushed.digest == image.digest

    report = wait_for_scan(server.url, "shop/debian", "v1", done=lambda r: r["vulndb_revision"] is not None)
    assert report["digest"] == image.digest

    expected = [(p["type"], p["name"], p["version"], p["purl"], p["layer"]) for p in expected_debian_packages(base)]
    expected += [("pypi", "requests", "2.31.0", "pkg:pypi/requests@2.31.0", apps),
                 ("npm", "lodash", "4.17.20", "pkg:npm/lodash@4.17.20", apps)]
    assert len(expected) == 90  # 88 dpkg packages in the minbase, one Python, one npm
    assert package_keys(report) == sorted(expected)
    assert report["distro"]["id"] == "debian"
    assert report["distro"]["version_id"] == "12"

    secrets = sorted((s["rule"], s["path"], s["line"], s["removed"], s["layer"]) for s in report["secrets"])
    assert secrets == sorted([
        ("aws-access-key-id", "root/.aws/credentials", 2, False, base),
        ("aws-secret-access-key", "root/.aws/credentials", 3, False, base),
        ("private-key", "root/.ssh/id_ecdsa", 1, True, base),  # deleted by layer 1's whiteout
        ("netrc-password", "opt/legacy/.netrc", 3, True, base),  # hidden by an opaque dir; password on line 3
        ("github-token", "config:Env", 2, False, image.config.digest),
    ])
    text = json.dumps(report)
    for secret in (AWS_KEY_ID, AWS_SECRET, GITHUB_TOKEN, NETRC_PASSWORD, PEM_KEY.decode().splitlines()[1]):
        assert secret not in text
        assert secret[:12] not in text
    for found in report["secrets"]:
        assert found["masked"].endswith("****")
        assert len(found["masked"].removesuffix("****")) <= 4

    assert [(m["layer"], m["path"], m["removed"]) for m in report["malware"]] == [(test_file, "srv/eicar.com", False)]
    assert report["malware"][0]["signature"].startswith("Dockyard.Test.EICAR")
    assert report["malware_engine"]

    assert vulnerability_keys(report) == EXPECTED_VULNERABILITIES
    assert report["summary"] == {s: sum(1 for v in report["vulnerabilities"] if v["severity"] == s)
                                 for s in ("critical", "high", "medium", "low", "unknown")}

    log = server.log()
    for secret in (AWS_KEY_ID, AWS_SECRET, GITHUB_TOKEN, NETRC_PASSWORD, EICAR.decode()):
        assert secret not in log

    cli = dockyard_cli(server.data_dir, "scan", "shop/debian:v1", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == report

    (tmp_path / "report.json").write_text(json.dumps(report, indent=2))
    print(f"scan report of shop/debian:v1 written to {tmp_path / 'report.json'}")


def test_the_sbom_is_a_referrer_clients_can_list_and_copy(server: ServerProcess, tmp_path: Path) -> None:
    image = debian_image()
    layout = write_layout(tmp_path / "layout", "v1", image)
    pushed = push_layout(layout, "v1", server.host, "shop/sbom:v1", home=tmp_path / "skopeo")
    assert pushed.ok, pushed.stderr
    report = wait_for_scan(server.url, "shop/sbom", "v1")
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30.0) as http:
        def sbom_referrers() -> list[dict[str, Any]] | None:
            listed = http.get(f"/v2/shop/sbom/referrers/{image.digest}").json()["manifests"]
            return [r for r in listed if r.get("artifactType") == SBOM_TYPE] or None

        # The SBOM is attached by the scan worker, right after it stores the scan.
        sboms = eventually(sbom_referrers, "the SBOM referrer of shop/sbom:v1")
        assert len(sboms) == 1, sboms
        manifest = http.get(f"/v2/shop/sbom/manifests/{sboms[0]['digest']}", headers={"Accept": OCI_MANIFEST}).json()
        assert manifest["subject"]["digest"] == image.digest
        document = http.get(f"/v2/shop/sbom/blobs/{manifest['layers'][0]['digest']}").json()
    assert document["bomFormat"] == "CycloneDX"
    purls = {c.get("purl") for c in document.get("components", [])}
    assert {p["purl"] for p in report["packages"]} <= purls

    copied = tmp_path / "sbom-copy"
    skopeo_home = tmp_path / "skopeo"
    done = push_layout_back(server, f"shop/sbom@{sboms[0]['digest']}", copied, skopeo_home)
    assert done == sboms[0]["digest"]


def push_layout_back(server: ServerProcess, reference: str, layout: Path, home: Path) -> str:
    """skopeo copy docker://HOST/REFERENCE oci:LAYOUT:copy; the digest of what it wrote."""
    from tests.e2e.clients import Skopeo

    skopeo = Skopeo.create(home)
    skopeo.login(server.host)
    skopeo.copy(f"docker://{server.host}/{reference}", f"oci:{layout}:copy", "--preserve-digests")
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


FEDORA_OS_RELEASE = b"""NAME="Fedora Linux"
VERSION="39 (Container Image)"
ID=fedora
VERSION_ID=39
VERSION_CODENAME=""
PRETTY_NAME="Fedora Linux 39 (Container Image)"
"""


def expected_apk_packages(installed: bytes, layer: str, distro: str) -> list[tuple[str, str, str, str, str]]:
    """The packages of an apk ``installed`` database (P:, V:, A: of each blank-line separated entry)."""
    found = []
    for entry in installed.decode().strip().split("\n\n"):
        fields = dict(line.split(":", 1) for line in entry.splitlines() if line[1:2] == ":")
        purl = PackageURL(type="apk", namespace="alpine", name=fields["P"], version=fields["V"],
                          qualifiers={"arch": fields["A"], "distro": distro}).to_string()
        found.append(("apk", fields["P"], fields["V"], purl, layer))
    return found


def expected_rpm_packages(rpmdb: Path, layer: str, distro: str, work: Path) -> list[tuple[str, str, str, str, str]]:
    """The packages of an rpmdb.sqlite as the real rpm tool lists them."""
    work.mkdir()
    (work / "rpmdb.sqlite").write_bytes(rpmdb.read_bytes())
    listed = subprocess.run([require_tool("rpm"), "--dbpath", str(work), "-qa", "--qf",
                             "%{NAME} %{EPOCHNUM} %{VERSION} %{RELEASE} %{ARCH}\\n"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    found = []
    for line in listed.splitlines():
        name, epoch, version, release, arch = line.split()
        qualifiers = {"arch": arch, "distro": distro, **({"epoch": epoch} if epoch != "0" else {})}
        purl = PackageURL(type="rpm", namespace="fedora", name=name, version=f"{version}-{release}",
                          qualifiers=qualifiers).to_string()
        shown = f"{epoch}:{version}-{release}" if epoch != "0" else f"{version}-{release}"
        found.append(("rpm", name, shown, purl, layer))
    return found


def test_an_alpine_and_an_rpm_image_in_one_index_each_get_exactly_their_packages_and_an_sbom(
    server: ServerProcess, tmp_path: Path,
) -> None:
    installed = (SCAN_DATA / "alpine/lib/apk/db/installed").read_bytes()
    alpine = build_image([
        build_layer({"etc/os-release": (SCAN_DATA / "alpine/etc/os-release").read_bytes()}, compression="zstd"),
        build_layer({"lib/apk/db/installed": installed}, compression="zstd"),
    ], platform=("linux", "arm64"))
    rpm = build_image([
        build_layer({"etc/os-release": FEDORA_OS_RELEASE,
                     "var/lib/rpm/rpmdb.sqlite": (SCAN_DATA / "rpm/rpmdb.sqlite").read_bytes()}, compression="none"),
    ], platform=("linux", "amd64"))
    index = build_index([rpm, alpine])
    layout = write_layout(tmp_path / "layout", "multi", index)
    pushed = push_layout(layout, "multi", server.host, "distros/multi:v1", home=tmp_path / "skopeo",
                         options=("--all",))
    assert pushed.ok, pushed.stderr
    assert pushed.digest == index.digest
    report = wait_for_scan(server.url, "distros/multi", "v1")
    children = {child["digest"]: child for child in report["children"]}
    assert set(children) == {alpine.digest, rpm.digest}
    alpine_release = "3.14.2"
    assert package_keys(children[alpine.digest]) == sorted(
        expected_apk_packages(installed, alpine.layers[1].digest, f"alpine-{alpine_release}"))
    assert package_keys(children[rpm.digest]) == sorted(expected_rpm_packages(
        SCAN_DATA / "rpm/rpmdb.sqlite", rpm.layers[0].digest, "fedora-39", tmp_path / "rpmdb"))
    with httpx.Client(base_url=server.url, auth=ADMIN_AUTH, timeout=30.0) as http:
        for child in (alpine, rpm):
            url = f"/v2/distros/multi/referrers/{child.digest}"
            referrers = eventually(lambda url=url: http.get(url).json()["manifests"] or None, f"referrers of {url}")
            assert [r.get("artifactType") for r in referrers] == [SBOM_TYPE]
