"""What the supply-chain benchmark reads: real and generated layers, images to push, OSV advisories.

* ``minbase_layer``: one gzip layer of a Debian bookworm ``debootstrap --variant=minbase`` root
  filesystem (88 packages); the root comes from ``BENCH_MINBASE`` or /work/cache/bookworm-minbase,
  else debootstrap makes it once into ``~/.cache/dockyard-bench/bookworm-minbase``.
* ``synthetic_layer``: a gzip layer of any size, written as a stream (never held in memory): one
  large file, many 1 MiB files, and a dpkg status, all text that gzip packs fast.
* ``push_images``: small images, each with a unique layer holding a real dpkg status, to push.
* ``write_advisories``: OSV advisories, one zip per ecosystem as osv.dev publishes them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.testdata import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, SmallImage, digest_of

MINBASE_CACHE = Path("/work/cache/bookworm-minbase")
MINBASE_MIRROR = "http://deb.debian.org/debian"
MIB = 1024 * 1024


class DataError(RuntimeError):
    """The benchmark's input could not be made (debootstrap failed, a root file system is missing)."""


@dataclass(frozen=True, slots=True)
class LayerFile:
    """A layer written to disk: where, its compressed and uncompressed sizes, its digest."""

    path: Path
    size: int
    tar_size: int
    digest: str


def minbase_root() -> Path:
    """A Debian bookworm minbase root: ``BENCH_MINBASE``, the shared cache, or one debootstrap makes."""
    configured = os.environ.get("BENCH_MINBASE", "").strip()
    for candidate in ([Path(configured)] if configured else []) + [MINBASE_CACHE]:
        if (candidate / "var/lib/dpkg/status").is_file():
            return candidate
    target = Path.home() / ".cache" / "dockyard-bench" / "bookworm-minbase"
    if (target / "var/lib/dpkg/status").is_file():
        return target
    if shutil.which("debootstrap") is None:
        raise DataError("no Debian minbase root and no debootstrap: apt-get install -y debootstrap")
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(target), MINBASE_MIRROR],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise DataError(f"debootstrap failed: {done.stderr[-500:]}")
    return target


class _Counting(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target, self.sha, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


def _write_layer(path: Path, level: int, fill: Callable[[tarfile.TarFile], None]) -> LayerFile:
    """Stream a tar through gzip into ``path``; ``fill(tar)`` adds the members."""
    with path.open("wb") as raw:
        blob = _Counting(raw)
        with gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=level, mtime=0) as compressed:
            tar_counter = _Counting(compressed)  # type: ignore[arg-type]
            with tarfile.open(fileobj=tar_counter, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                fill(tar)
    return LayerFile(path, blob.size, tar_counter.size, "sha256:" + blob.sha.hexdigest())


# What the official Debian images leave out of the root filesystem (debuerreotype's slimming):
# the downloaded .debs and the package lists. What remains is an image of about 120 MB.
SLIMMED = ("var/cache/apt/", "var/lib/apt/lists/")


def minbase_layer(root: Path, path: Path) -> LayerFile:
    """One gzip layer of ``root`` as an image has it: regular files, directories and links, without
    apt's caches."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            return None  # device nodes, fifos and sockets: not what an image layer carries
        if any(info.name.startswith(prefix) and info.name != prefix.rstrip("/") for prefix in SLIMMED):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = int(info.mtime)  # a float makes tarfile write a PAX header per member; image tools do not
        return info

    def fill(tar: tarfile.TarFile) -> None:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry, recursive=True, filter=keep)

    return _write_layer(path, 6, fill)


class _TextStream(io.RawIOBase):
    """``size`` bytes of text, made as they are read: a 16 KiB block of hex repeated, unique per seed."""

    def __init__(self, seed: str, size: int) -> None:
        rng = random.Random(seed)
        self.block = rng.randbytes(8 * 1024).hex().encode()
        self.left = size
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        written = 0
        while written < n:
            start = self.offset % len(self.block)
            take = min(n - written, len(self.block) - start)
            buffer[written:written + take] = self.block[start:start + take]
            written += take
            self.offset += take
        self.left -= n
        return n


def _add_stream(tar: tarfile.TarFile, name: str, seed: str, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    tar.addfile(info, io.BufferedReader(_TextStream(seed, size), 1 << 20))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def synthetic_layer(path: Path, size: int, status: bytes) -> LayerFile:
    """A gzip layer of about ``size`` bytes of tar: a dpkg status, one file of 40% of the size, and
    1 MiB files for the rest."""
    def fill(tar: tarfile.TarFile) -> None:
        _add_bytes(tar, "var/lib/dpkg/status", status)
        big = int(size * 0.4)
        _add_stream(tar, "opt/data/big.log", "big", big)
        for i in range(max(1, (size - big) // MIB)):
            _add_stream(tar, f"srv/files/{i // 100:03d}/file-{i:05d}.txt", f"file-{i}", MIB)

    return _write_layer(path, 1, fill)


def _gzip_tar_bytes(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(tar, gzipped tar) of ``files``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(files.items()):
            _add_bytes(archive, name, data)
    tar = buffer.getvalue()
    return tar, gzip.compress(tar, compresslevel=6, mtime=0)


def image_of(layers: list[tuple[bytes, bytes]], label: str) -> SmallImage:
    """An OCI image of ``layers`` ((tar, blob) pairs), its config labelled ``label``."""
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Labels": {"bench": label}},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(tar) for tar, _ in layers]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest_of(blob), "size": len(blob)}
                   for _, blob in layers],
    }, sort_keys=True).encode()
    return SmallImage(blobs=(config, *(blob for _, blob in layers)), manifest=manifest)


def push_images(count: int, status: bytes, run: str, layer_bytes: int = 2 * MIB) -> list[SmallImage]:
    """``count`` images, each of a unique layer (a real dpkg status, an env file with an AWS-style
    key, ``layer_bytes`` of random data) and a small one; ``run`` makes them unique to one pass."""
    images = []
    for i in range(count):
        rng = random.Random(f"{run}-{i}")
        first = _gzip_tar_bytes({
            "var/lib/dpkg/status": status,
            "app/.env": f"AWS_ACCESS_KEY_ID=AKIA{rng.randbytes(8).hex().upper()}\n".encode(),
            "app/data.bin": rng.randbytes(layer_bytes),
        })
        second = _gzip_tar_bytes({"app/VERSION": f"{run} {i}\n".encode()})
        images.append(image_of([first, second], f"{run}-{i}"))
    return images


def busy_images(layer: LayerFile, count: int, run: str) -> list[tuple[SmallImage, bytes]]:
    """``count`` images over the big ``layer`` (pushed once) plus a unique small layer each: the
    scanner reads the big layer once per image."""
    images = []
    for i in range(count):
        small = _gzip_tar_bytes({"etc/busy": f"{run} {i}\n".encode()})
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "config": {"Labels": {"busy": f"{run}-{i}"}},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest, digest_of(small[0])]},
        }, sort_keys=True).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size},
                       {"mediaType": OCI_LAYER_GZIP, "digest": digest_of(small[1]), "size": len(small[1])}],
        }, sort_keys=True).encode()
        images.append((SmallImage(blobs=(config, small[1]), manifest=manifest), small[1]))
    return images


# -- OSV advisories ----------------------------------------------------------------------------------

ECOSYSTEM_DIRS = {"Debian:12": "Debian", "PyPI": "PyPI", "npm": "npm"}


@dataclass(frozen=True, slots=True)
class Installed:
    """A package of the matching benchmark's inventory: its name, version and OSV ecosystem."""

    ecosystem: str
    name: str
    version: str
    purl_type: str


def installed_packages(real: list[tuple[str, str]], total: int = 500) -> list[Installed]:
    """``real`` (Debian name, version) pairs, then made-up Debian, PyPI and npm ones up to ``total``."""
    packages = [Installed("Debian:12", name, version, "deb") for name, version in real]
    i = 0
    while len(packages) < total:
        kind = i % 5
        if kind < 3:
            packages.append(Installed("Debian:12", f"libbench{i}", f"1.{i}-1", "deb"))
        elif kind == 3:
            packages.append(Installed("PyPI", f"bench-py-{i}", f"2.{i}.0", "pypi"))
        else:
            packages.append(Installed("npm", f"bench-js-{i}", f"3.{i}.1", "npm"))
        i += 1
    return packages


def _above(ecosystem: str, version: str) -> str:
    """A version just above ``version`` in the ecosystem's ordering."""
    if ecosystem.startswith("Debian"):
        return f"{version}+deb12u9"
    major, minor, patch = [*version.split("."), "0", "0"][:3]
    return f"{major}.{minor}.{int(patch) + 1}"


def _advisory(number: int, ecosystem: str, name: str, fixed: str, severity: str) -> dict[str, object]:
    return {
        "schema_version": "1.6.0",
        "id": f"BENCH-{number:07d}",
        "modified": "2024-01-01T00:00:00Z",
        "aliases": [f"CVE-2099-{number:07d}"],
        "summary": f"benchmark advisory {number} for {name}",
        "affected": [{
            "package": {"ecosystem": ecosystem, "name": name},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            "database_specific": {"severity": severity},
        }],
    }


def write_advisories(directory: Path, installed: list[Installed], total: int) -> int:
    """Write ``total`` advisories as ``directory/<ecosystem>/all.zip``: four per installed package
    (two affect it, two were fixed below its version), the rest on packages nobody installed.
    Returns how many affect the inventory."""
    severities = ("critical", "high", "medium", "low")
    by_ecosystem: dict[str, list[dict[str, object]]] = {e: [] for e in ECOSYSTEM_DIRS}
    number, affecting = 0, 0
    for package in installed:
        for k in range(4):
            number += 1
            fixed = _above(package.ecosystem, package.version) if k < 2 else "0.0.1"
            affecting += k < 2
            by_ecosystem[package.ecosystem].append(
                _advisory(number, package.ecosystem, package.name, fixed, severities[k]))
    ecosystems = list(ECOSYSTEM_DIRS)
    while number < total:
        number += 1
        ecosystem = ecosystems[number % 3] if number % 5 else "Debian:12"
        name = f"unused-{number % 40_000}"
        by_ecosystem[ecosystem].append(_advisory(number, ecosystem, name, "1.0.0", severities[number % 4]))
    for ecosystem, advisories in by_ecosystem.items():
        target = directory / ECOSYSTEM_DIRS[ecosystem]
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target / "all.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for advisory in advisories:
                archive.writestr(f"{advisory['id']}.json", json.dumps(advisory))
    return affecting
