"""What the benchmark pushes: one big random blob (made once, reused) and a small image.

The big blob is written to a file, and also split into chunk files, so ``curl -T`` can stream the
whole blob or any chunk straight from disk (from the page cache, really) without Python in the way.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
_WRITE_BLOCK = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of the big blob, in its own file; ``start``/``end`` are inclusive byte offsets."""

    path: Path
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class BigBlob:
    """The random test blob: its file, size, digest and chunk files."""

    path: Path
    size: int
    digest: str
    chunks: tuple[Chunk, ...]


def warm(blob: BigBlob) -> None:
    """Read the blob and its chunk files, so the client sends them from memory.

    A pass drops the page cache before its cold pull; without this, the next pass's pushes would
    read their source from disk, which bounds a fast registry and not a slow one.
    """
    for path in (blob.path, *(chunk.path for chunk in blob.chunks)):
        with path.open("rb") as handle:
            while handle.read(8 * 1024 * 1024):
                pass


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_big_blob(directory: Path, size: int, chunk_size: int) -> BigBlob:
    """Write ``size`` random bytes to ``directory/blob`` and to chunk files; hash them once."""
    path = directory / "blob"
    sha = hashlib.sha256()
    chunks: list[Chunk] = []
    with path.open("wb") as whole:
        for start in range(0, size, chunk_size):
            end = min(start + chunk_size, size) - 1
            chunk = Chunk(directory / f"chunk-{len(chunks):04d}", start, end)
            with chunk.path.open("wb") as part:
                for offset in range(start, end + 1, _WRITE_BLOCK):
                    block = os.urandom(min(_WRITE_BLOCK, end + 1 - offset))
                    sha.update(block)
                    whole.write(block)
                    part.write(block)
            chunks.append(chunk)
    return BigBlob(path, size, "sha256:" + sha.hexdigest(), tuple(chunks))


@dataclass(frozen=True, slots=True)
class SmallImage:
    """A one-layer OCI image: the blobs (config, layer) and the manifest that references them."""

    blobs: tuple[bytes, ...]
    manifest: bytes


def _layer_tar_gz() -> tuple[bytes, bytes]:
    """A gzipped tar holding one small file; returns (uncompressed tar, gzipped tar)."""
    content = b"dockyard benchmark\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/bench.txt")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = buffer.getvalue()
    return tar_bytes, gzip.compress(tar_bytes, mtime=0)


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def make_small_image() -> SmallImage:
    """A valid OCI image (real tar.gz layer, config with its diff_id) of a few hundred bytes."""
    tar_bytes, layer = _layer_tar_gz()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(tar_bytes)]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config),
        "layers": [_descriptor(OCI_LAYER_GZIP, layer)],
    }, sort_keys=True).encode()
    return SmallImage(blobs=(config, layer), manifest=manifest)
