"""Build small OCI images and OCI image layouts on disk, without a network or a container engine.

An image is a config blob, a few gzipped tar layers and an OCI image manifest; an index points at
one image per platform. ``write_layout`` lays them out as an OCI image layout that skopeo and
podman read as ``oci:DIR:TAG``::

    DIR/
      oci-layout                      {"imageLayoutVersion": "1.0.0"}
      index.json                      one descriptor per tag (annotation org.opencontainers.image.ref.name)
      blobs/sha256/<hex>              every manifest, config and layer

Everything is a pure function of its ``seed``: the same seed gives the same bytes (so digests can
be asserted), a fresh seed (``unique_seed``) gives content no other test pushed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

PLATFORMS: tuple[tuple[str, str], ...] = (("linux", "amd64"), ("linux", "arm64"))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unique_seed(prefix: str = "e2e") -> str:
    """A seed no other test uses, so the blobs it yields are new to the registry."""
    return f"{prefix}-{uuid.uuid4().hex}"


def canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Blob:
    """Content-addressed bytes with the media type they are referenced under."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True, slots=True)
class Image:
    """One single-platform image: its manifest blob, config blob and layer blobs."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    os: str
    architecture: str

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers, self.manifest)


@dataclass(frozen=True, slots=True)
class Index:
    """A multi-platform image index and the images it points at."""

    manifest: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> tuple[Blob, ...]:
        return (*(blob for image in self.images for blob in image.blobs()), self.manifest)


def tar_layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of regular files with fixed owners and times."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def layer_files(seed: str, index: int, platform: tuple[str, str]) -> dict[str, bytes]:
    """A few files whose content depends on the seed, the layer and the platform."""
    tag = f"{seed}/{platform[0]}/{platform[1]}/{index}"
    return {
        f"layer{index}/hello.txt": f"hello from {tag}\n".encode(),
        f"layer{index}/data.bin": hashlib.sha512(tag.encode()).digest() * 64,
        f"etc/dockyard-{index}.conf": f"seed = {seed!r}\nlayer = {index}\n".encode(),
    }


def build_image(seed: str, *, platform: tuple[str, str] = PLATFORMS[0], layer_count: int = 2,
                annotations: dict[str, str] | None = None) -> Image:
    """An OCI image whose every byte follows from `seed` and `platform`."""
    tars = [tar_layer(layer_files(seed, i, platform)) for i in range(layer_count)]
    layers = tuple(Blob(OCI_LAYER_GZIP, gzip_bytes(tar)) for tar in tars)
    config = Blob(OCI_CONFIG, canonical_json({
        "architecture": platform[1],
        "os": platform[0],
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"dockyard.e2e.seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar) for tar in tars]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                    for i in range(layer_count)],
    }))
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    return Image(Blob(OCI_MANIFEST, canonical_json(manifest)), config, layers, *platform)


def build_index(seed: str, platforms: tuple[tuple[str, str], ...] = PLATFORMS) -> Index:
    """An OCI image index with one image per platform."""
    images = tuple(build_image(seed, platform=platform) for platform in platforms)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            image.manifest.descriptor(platform={"os": image.os, "architecture": image.architecture})
            for image in images
        ],
    }
    return Index(Blob(OCI_INDEX, canonical_json(document)), images)


@dataclass(frozen=True, slots=True)
class Artifact:
    """An OCI artifact: an image manifest with an `artifactType`, an empty config and a `subject`."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    artifact_type: str

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers, self.manifest)


def build_artifact(seed: str, subject: Blob, artifact_type: str) -> Artifact:
    """An artifact about `subject` (a manifest blob), unique to `seed`."""
    empty = Blob(OCI_EMPTY, b"{}")
    payload = Blob("text/plain", f"artifact {artifact_type} for {subject.digest} ({seed})\n".encode())
    manifest = Blob(OCI_MANIFEST, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [payload.descriptor()],
        "subject": subject.descriptor(),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }))
    return Artifact(manifest, empty, (payload,), artifact_type)


def write_layout(directory: Path, tag: str, target: Image | Index | Artifact) -> Path:
    """Write `target` as an OCI image layout (adding to one already there) tagged `tag`."""
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for blob in target.blobs():
        (blob_dir / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = directory / "index.json"
    existing = json.loads(index_path.read_text())["manifests"] if index_path.exists() else []
    manifests: list[dict[str, Any]] = [d for d in existing if ref_name(d) != tag]
    manifests.append(target.manifest.descriptor(annotations={REF_NAME: tag}))
    index_path.write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
    return directory


def ref_name(descriptor: dict[str, Any]) -> str | None:
    """The tag an `index.json` descriptor carries, if any."""
    name = descriptor.get("annotations", {}).get(REF_NAME)
    return str(name) if name is not None else None


@dataclass(frozen=True, slots=True)
class Layout:
    """Read access to an OCI image layout a client wrote."""

    directory: Path

    def blob(self, digest: str) -> bytes:
        algorithm, encoded = digest.split(":", 1)
        return (self.directory / "blobs" / algorithm / encoded).read_bytes()

    def descriptor(self, tag: str) -> dict[str, Any]:
        index = json.loads((self.directory / "index.json").read_text())
        for descriptor in index["manifests"]:
            if ref_name(descriptor) == tag:
                return dict(descriptor)
        raise KeyError(f"no tag {tag!r} in {self.directory}/index.json")

    def manifest(self, tag: str) -> bytes:
        return self.blob(self.descriptor(tag)["digest"])
