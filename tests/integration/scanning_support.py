"""Images with real package databases and a secret, built in the test, and the scan pieces a test
drives by hand (the outbox reader, a worker, a second node's ScanService)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from dockyard.app import Components
from dockyard.config import Config, build_config
from dockyard.jobs.scan import ScanQueue
from dockyard.services.scanning import ScanService
from dockyard.services.vulndb import VulnDbService
from dockyard.store import scans
from tests.integration.conftest import CHEAP_AUTH, Registry, open_registry
from tests.support.content import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Image, descriptor, dumps, sha256

NAME = "team/app"
# Realistic, invalid: an AWS key pair as `aws configure` writes it.
AWS_KEY_ID = "AKIAQ3EGRT5LXKPM7WZN"
AWS_SECRET = "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"
CREDENTIALS = f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n".encode()

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n' \
             b'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
DPKG_STATUS = b"""Package: base-files
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 340
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: zlib1g
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 168
Maintainer: Mark Brown <broonie@debian.org>
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Depends: libc6 (>= 2.14)
Description: compression library - runtime

"""
METADATA = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: Python HTTP for Humans.\n"
DIST_INFO = "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA"
PACKAGES = {"base-files", "zlib1g", "requests"}


def tar_layer(files: dict[str, bytes], *, compress: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0) if compress else raw.getvalue()


def image_of(layers: list[bytes], *, architecture: str = "amd64", env: tuple[str, ...] = ()) -> Image:
    config = dumps({"architecture": architecture, "os": "linux", "config": {"Env": list(env)},
                    "rootfs": {"type": "layers", "diff_ids": [sha256(_uncompressed(layer)) for layer in layers]}})
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor(OCI_LAYER, layer) for layer in layers]}
    return Image(config, tuple(layers), dumps(document), OCI_MANIFEST)


def debian_app(*, architecture: str = "amd64") -> Image:
    """A Debian base (two packages), a Python package and AWS credentials, then the credentials
    removed by a whiteout: still in the second layer, not in the image."""
    return image_of([
        tar_layer({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": DPKG_STATUS}),
        tar_layer({DIST_INFO: METADATA, "root/.aws/credentials": CREDENTIALS}),
        tar_layer({"root/.aws/.wh.credentials": b"", "app/main.py": b"print('hello')\n"}),
    ], architecture=architecture)


def scan_config(tmp_path: Path, database_url: str, storage: dict[str, object] | None = None,
                **scan: object) -> Config:
    return build_config({"data_dir": str(tmp_path / "data"), "database": {"url": database_url},
                         "storage": storage or {}, "auth": CHEAP_AUTH, "log": {"access_log": False},
                         "scan": {"interval": "0.05", **scan}})


async def opened(config: Config) -> AsyncIterator[Registry]:
    """The app on ``config`` (as conftest's ``registry``); its scans stopped at the end."""
    async with open_registry(config) as registry:
        yield registry
        await registry.parts.scanning.close()


def node(parts: Components, holder: str, *, retry: scans.Retry = scans.Retry(timedelta(0), 3),
         outcomes: list[str] | None = None) -> ScanService:
    """Another node's ScanService on the same database and storage."""
    record = outcomes.append if outcomes is not None else (lambda _o: None)
    return ScanService(parts.db, parts.store, parts.services.manifests, parts.services.uploads,
                       VulnDbService(parts.db, parts.config.scan.vulndb), parts.config.scan, holder=holder,
                       observe=lambda outcome, _s: record(outcome), retry=retry)


async def queue_pushed(parts: Components) -> int:
    """One run of the outbox reader; how many scans it queued."""
    return (await ScanQueue(parts.db, parts.scanning, parts.config.scan).run()).queued


async def drain(service: ScanService) -> int:
    """Run queued scans until none is left; how many ran."""
    ran = 0
    while await service.run_next():
        ran += 1
    return ran


async def scan_row(parts: Components, digest: str) -> scans.ScanRow | None:
    async with parts.db.read() as conn:
        return await scans.read(conn, digest)


def write_advisory(directory: Path, advisory_id: str, package: str, ecosystem: str, introduced: str,
                   fixed: str, versions: list[str], severity: str = "HIGH") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "schema_version": "1.6.0", "id": advisory_id, "modified": "2024-05-20T00:00:00Z",
        "aliases": [f"CVE-2024-{len(advisory_id):04d}"], "summary": f"{package} is vulnerable",
        "affected": [{"package": {"ecosystem": ecosystem, "name": package},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]}],
                      "versions": versions}],
        "database_specific": {"severity": severity},
    }
    (directory / f"{advisory_id}.json").write_text(json.dumps(document))


def _uncompressed(layer: bytes) -> bytes:
    return gzip.decompress(layer) if layer.startswith(b"\x1f\x8b") else layer
