"""The images, secrets and expectations the supply-chain end-to-end tests share.

The Debian image is built from real package data: the dpkg ``status`` and ``os-release`` of a
``debootstrap --variant=minbase`` bookworm root (captured in tests/data/scan by the inventory work;
the shared cache /work/cache/bookworm-minbase when that is absent), with further layers that add a
Python dist-info, an npm package, credentials (realistic, invalid), a private key a later layer
deletes, a ``.netrc`` an opaque directory hides, and the EICAR test file::

    layer 0 (gzip)  var/lib/dpkg/status, usr/lib/os-release, etc/os-release -> ../usr/lib/os-release,
                    root/.aws/credentials (AWS key pair), root/.ssh/id_ecdsa (PEM key),
                    opt/legacy/.netrc (password)
    layer 1 (zstd)  usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA,
                    app/node_modules/lodash/package.json (4.17.20), root/.ssh/.wh.id_ecdsa,
                    opt/legacy/.wh..wh..opq, opt/legacy/README
    layer 2 (plain) srv/eicar.com (the EICAR test string)
    config          Env GITHUB_TOKEN=ghp_…

The expected packages are read from the same status file here with python-debian (``Deb822``),
independently of dockyard's reader, and their purls are built with packageurl-python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
from debian.deb822 import Deb822
from packageurl import PackageURL

from tests.support.clamd import EICAR
from tests.support.images import Image, ImageConfig, Symlink, build_image, build_layer, opaque, whiteout
from tests.support.server import ADMIN_AUTH, AUTH_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]
SCAN_DATA = REPO_ROOT / "tests" / "data" / "scan"
OSV_DATA = REPO_ROOT / "tests" / "data" / "osv"
MINBASE = Path("/work/cache/bookworm-minbase")
SCAN_DEADLINE = 60.0
T = TypeVar("T")

# Realistic, invalid credentials: right shapes, no account behind them.
AWS_KEY_ID = "AKIAZ3MJQ7WVX5RGKT4N"
AWS_SECRET = "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"
GITHUB_TOKEN = "ghp_R8cK2pWq7Zx4Lm9Tn3Vb6Yh1Jd5Fs0Ga8Ue2"
NETRC_PASSWORD = "Hunter2-Sup3r-S3cret"
# An EC private key made for these tests; it signs nothing anyone trusts.
PEM_KEY = b"""-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oa3t7TQNyGgIoAoGCCqGSM49
AwEHoUQDQgAE4ocZxgdqLnMuVJYRuVTLWmF0lpuFkeMz4a9dZqnQaMRx0Zr3xrqn
oBvHGCgHZqEu9w9vFwBNGyn0ZKcsvRaLmA==
-----END EC PRIVATE KEY-----
"""

PYTHON_METADATA = b"""Metadata-Version: 2.1
Name: requests
Version: 2.31.0
Summary: Python HTTP for Humans.
License: Apache 2.0
Requires-Python: >=3.7
"""
LODASH = json.dumps({"name": "lodash", "version": "4.17.20", "license": "MIT",
                     "main": "lodash.js"}).encode()


def debian_root_file(relative: str) -> bytes:
    """A file of the real minbase root: from tests/data/scan/debian, else the shared cache."""
    for root in (SCAN_DATA / "debian", MINBASE):
        path = root / relative
        if path.is_file():
            return path.resolve().read_bytes() if path.is_symlink() else path.read_bytes()
    raise FileNotFoundError(f"{relative}: neither {SCAN_DATA / 'debian'} nor {MINBASE} has it")


def dpkg_status() -> bytes:
    return debian_root_file("var/lib/dpkg/status")


def os_release() -> bytes:
    for candidate in ("usr/lib/os-release", "etc/os-release"):
        try:
            return debian_root_file(candidate)
        except FileNotFoundError:
            continue
    raise FileNotFoundError("no os-release in the Debian test data")


def debian_image() -> Image:
    base = build_layer({
        "var/lib/dpkg/status": dpkg_status(),
        "usr/lib/os-release": os_release(),
        "etc/os-release": Symlink("../usr/lib/os-release"),
        "root/.aws/credentials": (f"[default]\naws_access_key_id = {AWS_KEY_ID}\n"
                                  f"aws_secret_access_key = {AWS_SECRET}\nregion = eu-west-1\n").encode(),
        "root/.ssh/id_ecdsa": PEM_KEY,
        "opt/legacy/.netrc": f"machine git.example.com\nlogin deploy\npassword {NETRC_PASSWORD}\n".encode(),
        "opt/legacy/NOTES": b"old deploy scripts\n",
    }, compression="gzip")
    apps = build_layer({
        "usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA": PYTHON_METADATA,
        "app/node_modules/lodash/package.json": LODASH,
        whiteout("root/.ssh/id_ecdsa"): b"",
        opaque("opt/legacy"): b"",
        "opt/legacy/README": b"moved to /app\n",
    }, compression="zstd")
    test_file = build_layer({"srv/eicar.com": EICAR}, compression="none")
    config = ImageConfig(
        env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"GITHUB_TOKEN={GITHUB_TOKEN}"),
        labels={"org.opencontainers.image.source": "https://git.example.com/shop"},
        cmd=("python3", "-m", "shop"),
        history=("debootstrap --variant=minbase bookworm", "pip install requests && npm install lodash",
                 "COPY eicar.com /srv/"),
    )
    return build_image([base, apps, test_file], config=config)


def clean_image(label: str) -> Image:
    """A small image with no package, secret or malware: what a push policy lets through."""
    return build_image([build_layer({"srv/www/index.html": f"<p>{label}</p>\n".encode()})],
                       config=ImageConfig(labels={"org.opencontainers.image.source": "https://git.example.com/www"}))


# -- expectations computed independently of dockyard ---------------------------------------------

def expected_debian_packages(layer: str) -> list[dict[str, Any]]:
    """Every installed package of the real status file (python-debian), as the report lists them."""
    packages = []
    for para in Deb822.iter_paragraphs(dpkg_status().decode()):
        if para.get("Status", "").split()[-1:] != ["installed"]:
            continue
        qualifiers = {"arch": para["Architecture"], "distro": "debian-12"}
        purl = PackageURL(type="deb", namespace="debian", name=para["Package"], version=para["Version"],
                          qualifiers=qualifiers).to_string()
        packages.append({"name": para["Package"], "version": para["Version"], "type": "deb", "purl": purl,
                         "layer": layer})
    return packages


# The vulnerabilities the Debian image must get from tests/data/osv/debian (its README's table: one
# row per advisory and binary package; DYT advisories are made up, on real installed versions) and
# from APP_ADVISORIES: (id, package, installed, fixed, severity).
EXPECTED_VULNERABILITIES = sorted([
    ("DYT-2026-0001", "zlib1g", "1:1.2.13.dfsg-1", "1:1.2.13.dfsg-2", "critical"),
    ("DYT-2026-0004", "libc-bin", "2.36-9+deb12u14", "2.36-9+deb12u15", "high"),
    ("DYT-2026-0004", "libc6", "2.36-9+deb12u14", "2.36-9+deb12u15", "high"),
    ("DYT-2026-0007", "libc-bin", "2.36-9+deb12u14", "2.36-9+deb12u16", "high"),
    ("DYT-2026-0007", "libc6", "2.36-9+deb12u14", "2.36-9+deb12u16", "high"),
    ("DYT-2026-0008", "libsystemd0", "252.39-1~deb12u2", "252.39-1", "medium"),
    ("DYT-2026-0008", "libudev1", "252.39-1~deb12u2", "252.39-1", "medium"),
    ("DYT-2026-0011", "base-files", "12.4+deb12u15", None, "low"),
    ("DYT-2026-0013", "tzdata", "2026b-0+deb12u1", None, "medium"),
    ("DYT-2026-0015", "bash", "5.2.15-2+b13", "5.2.15-2+b5", "unknown"),
    ("DYT-2026-0017", "login", "1:4.13+dfsg1-1+deb12u2", "1:4.13+dfsg1-1+deb12u3", "medium"),
    ("DYT-2026-0017", "passwd", "1:4.13+dfsg1-1+deb12u2", "1:4.13+dfsg1-1+deb12u3", "medium"),
    ("DYT-2026-0020", "gzip", "1.12-1", "1.12-2", "unknown"),
    ("DYT-2026-0022", "libzstd1", "1.5.4+dfsg2-5", "1.5.4+dfsg2-6", "low"),
    ("DYT-2026-0025", "libsystemd0", "252.39-1~deb12u2", "252.40-1", "high"),
    ("DYT-2026-0025", "libudev1", "252.39-1~deb12u2", "252.40-1", "high"),
    ("GHSA-35jh-r3h4-6jhm", "lodash", "4.17.20", "4.17.21", "high"),
    ("GHSA-9wx4-h78v-vm56", "requests", "2.31.0", "2.32.0", "medium"),
])


def _app_advisory(ghsa: str, cve: str, ecosystem: str, name: str, fixed: str, vector: str,
                  summary: str) -> dict[str, Any]:
    return {"schema_version": "1.6.0", "id": ghsa, "modified": "2024-06-10T00:00:00Z", "aliases": [cve],
            "summary": summary, "severity": [{"type": "CVSS_V3", "score": vector}],
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}


# Two real GitHub advisories for the application layer's packages, as OSV publishes them (abridged).
APP_ADVISORIES = (
    _app_advisory("GHSA-35jh-r3h4-6jhm", "CVE-2021-23337", "npm", "lodash", "4.17.21",
                  "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", "Command Injection in lodash"),
    _app_advisory("GHSA-9wx4-h78v-vm56", "CVE-2024-35195", "PyPI", "requests", "2.32.0",
                  "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N",
                  "Requests `Session` object does not verify requests after making first request with verify=False"),
)


def write_advisories(directory: Path) -> Path:
    """tests/data/osv/debian and APP_ADVISORIES, as one directory of OSV JSON files to import."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in sorted((OSV_DATA / "debian").glob("*.json")):
        (directory / source.name).write_bytes(source.read_bytes())
    for advisory in APP_ADVISORIES:
        (directory / f"{advisory['id']}.json").write_text(json.dumps(advisory))
    return directory


def vulnerability_keys(report: dict[str, Any]) -> list[tuple[str, str, str, str | None, str]]:
    return sorted((v["id"], v["package"], v["installed"], v["fixed"], v["severity"])
                  for v in report["vulnerabilities"])


# -- the dockyard CLI and the scan API ----------------------------------------------------------------

def dockyard_cli(data_dir: Path, *args: str, env: Mapping[str, str] | None = None,
                 timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``python -m dockyard ARGS --data-dir DATA_DIR`` (the server's data directory)."""
    return subprocess.run([sys.executable, "-m", "dockyard", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env={**os.environ, **AUTH_ENV, **(env or {})},
                          timeout=timeout, check=False)


def eventually(check: Callable[[], T | None], what: str, deadline: float = SCAN_DEADLINE) -> T:
    """Call ``check`` until it returns something other than None, at most ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = check()
        if found is not None:
            return found
        time.sleep(0.2)  # polling another process's background job: there is nothing to await
    raise AssertionError(f"{what}: not within {deadline:.0f}s")


def wait_for_scan(base_url: str, repository: str, reference: str, *,
                  done: Callable[[dict[str, Any]], bool] | None = None,
                  deadline: float = SCAN_DEADLINE) -> dict[str, Any]:
    """Poll ``GET …/scan`` until the report is done (and ``done(report)``), at most ``deadline`` s."""
    url = f"/api/v1/repositories/{repository}/manifests/{reference}/scan"
    end = time.monotonic() + deadline
    last: object = None
    with httpx.Client(base_url=base_url, auth=ADMIN_AUTH, timeout=30.0) as http:
        while time.monotonic() < end:
            answer = http.get(url)
            last = (answer.status_code, answer.text[:500])
            if answer.status_code == 200:
                report: dict[str, Any] = answer.json()
                if report.get("status") == "done" and (done is None or done(report)):
                    return report
            time.sleep(0.2)  # polling another process's background job: there is nothing to await
    raise AssertionError(f"no finished scan of {repository}@{reference} within {deadline:.0f}s; last: {last}")
