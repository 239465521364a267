"""Build OCI image layouts from Python data, and push them with skopeo.

A layer is a mapping of path → content: ``bytes`` for a regular file, ``Symlink(target)`` for a
symbolic link, and the OCI whiteouts as paths (``whiteout("root/.ssh/id_rsa")`` gives
``root/.ssh/.wh.id_rsa``; ``opaque("etc/app")`` gives ``etc/app/.wh..wh..opq``). Parent directories
get their own tar entries, as real layers have. Each layer is stored gzip-compressed, zstd-compressed
(media type ``…tar+zstd``) or as a plain tar::

    base = build_layer({"etc/os-release": b"ID=debian\\n", "etc/os-release.d": Symlink("os-release")})
    cleanup = build_layer({whiteout("root/key.pem"): b""}, compression="zstd")
    image = build_image([base, cleanup], config=ImageConfig(env=("A=1",), labels={"x": "y"}))
    layout = write_layout(tmp / "layout", "v1", image)
    pushed = push_layout(layout, "v1", "127.0.0.1:5000", "team/app:v1", home=tmp / "skopeo")

``write_layout`` writes the OCI image layout skopeo and podman read as ``oci:DIR:TAG``::

    DIR/oci-layout                {"imageLayoutVersion": "1.0.0"}
    DIR/index.json                one descriptor per tag (annotation org.opencontainers.image.ref.name)
    DIR/blobs/sha256/<hex>        every manifest, config and layer

Everything is deterministic: tar times, owners and gzip headers are fixed, so the same data gives
the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zstandard

from tests.e2e.clients import COMMAND_TIMEOUT, isolated_env, require_tool
from tests.support.server import ADMIN_AUTH

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
REF_NAME = "org.opencontainers.image.ref.name"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
CREATED = "2024-01-01T00:00:00Z"

Compression = Literal["gzip", "zstd", "none"]


@dataclass(frozen=True, slots=True)
class Symlink:
    """A symbolic link entry in a layer, pointing at ``target``."""

    target: str


Entry = bytes | Symlink


def whiteout(path: str) -> str:
    """The whiteout path that removes ``path`` from the layers below."""
    directory, name = posixpath.split(path)
    return posixpath.join(directory, WHITEOUT_PREFIX + name)


def opaque(directory: str) -> str:
    """The marker path that hides everything the layers below put in ``directory``."""
    return posixpath.join(directory, OPAQUE_MARKER)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Mapping[str, Any]) -> bytes:
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
class Layer:
    """One layer blob and the digest of its uncompressed tar (the config's ``diff_id``)."""

    blob: Blob
    diff_id: str

    @property
    def digest(self) -> str:
        return self.blob.digest


def tar_bytes(files: Mapping[str, Entry]) -> bytes:
    """A tar of ``files`` (and their parent directories), fixed owners and times, sorted."""
    directories = {parent for path in files for parent in _parents(path.strip("/"))}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path.strip("/"))
            info.mtime = 0
            if isinstance(content, Symlink):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content.target, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def compress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


def build_layer(files: Mapping[str, Entry], compression: Compression = "gzip") -> Layer:
    """A layer holding ``files``, compressed as asked (its media type says which)."""
    tar = tar_bytes(files)
    return Layer(Blob(LAYER_MEDIA_TYPES[compression], compress(tar, compression)), sha256_digest(tar))


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What goes into the image config's ``config`` object and ``history``."""

    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    labels: Mapping[str, str] = field(default_factory=dict)
    cmd: tuple[str, ...] = ("/bin/sh",)
    entrypoint: tuple[str, ...] | None = None
    history: tuple[str, ...] = ()  # created_by of each layer, in order; default "layer N"


@dataclass(frozen=True, slots=True)
class Image:
    """One single-platform image: manifest, config and layers."""

    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]
    os: str
    architecture: str

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *(layer.blob for layer in self.layers), self.manifest)


@dataclass(frozen=True, slots=True)
class Index:
    """A multi-platform image index and its images."""

    manifest: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> tuple[Blob, ...]:
        return (*(blob for image in self.images for blob in image.blobs()), self.manifest)


def config_document(layers: Sequence[Layer], config: ImageConfig, platform: tuple[str, str]) -> dict[str, Any]:
    """The image config JSON for ``layers`` (diff_ids in order) and ``config``."""
    history = config.history or tuple(f"layer {i}" for i in range(len(layers)))
    if len(history) != len(layers):
        raise ValueError(f"{len(history)} history entries for {len(layers)} layers")
    body: dict[str, Any] = {"Env": list(config.env), "Cmd": list(config.cmd)}
    if config.labels:
        body["Labels"] = dict(config.labels)
    if config.entrypoint is not None:
        body["Entrypoint"] = list(config.entrypoint)
    return {
        "architecture": platform[1],
        "os": platform[0],
        "created": CREATED,
        "config": body,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": created_by} for created_by in history],
    }


def build_image(layers: Sequence[Layer], *, config: ImageConfig | None = None,
                annotations: Mapping[str, str] | None = None,
                platform: tuple[str, str] = ("linux", "amd64")) -> Image:
    """An OCI image of ``layers`` (base first) with that config and manifest annotations."""
    config_blob = Blob(OCI_CONFIG, canonical_json(config_document(layers, config or ImageConfig(), platform)))
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.blob.descriptor() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Image(Blob(OCI_MANIFEST, canonical_json(manifest)), config_blob, tuple(layers), *platform)


def build_index(images: Sequence[Image], annotations: Mapping[str, str] | None = None) -> Index:
    """An OCI image index with one entry per image, each with its platform."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [image.manifest.descriptor(platform={"os": image.os, "architecture": image.architecture})
                      for image in images],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return Index(Blob(OCI_INDEX, canonical_json(document)), tuple(images))


def write_layout(directory: Path, tag: str, target: Image | Index) -> Path:
    """Write ``target`` into the OCI image layout at ``directory`` (adding to one there) as ``tag``."""
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for blob in target.blobs():
        (blob_dir / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = directory / "index.json"
    existing = json.loads(index_path.read_text())["manifests"] if index_path.exists() else []
    manifests = [d for d in existing if d.get("annotations", {}).get(REF_NAME) != tag]
    manifests.append(target.manifest.descriptor(annotations={REF_NAME: tag}))
    index_path.write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
    return directory


@dataclass(frozen=True, slots=True)
class Pushed:
    """How a ``skopeo copy`` ended: its exit status and everything it printed."""

    returncode: int
    stdout: str
    stderr: str
    digest: str | None  # the manifest digest skopeo pushed (its --digestfile), None when it failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def push_layout(layout: Path, tag: str, host: str, destination: str, *, home: Path,
                credentials: tuple[str, str] = ADMIN_AUTH, options: Sequence[str] = ()) -> Pushed:
    """``skopeo copy --dest-tls-verify=false --dest-creds USER:PASS oci:LAYOUT:TAG docker://HOST/DEST``.

    skopeo runs with its own policy, registries.conf and auth file under ``home``; a missing skopeo
    skips the test (fails it under CI=true). The result is returned, not raised, so a test can read
    the refusal skopeo printed. ``--preserve-digests`` keeps the manifest's bytes (and digest) as built.
    """
    skopeo = require_tool("skopeo")
    env = isolated_env(home)
    user, password = credentials
    digest_file = home / "pushed-digest"
    digest_file.unlink(missing_ok=True)
    command = [skopeo, "--policy", str(home / "policy.json"), "copy", "--dest-tls-verify=false",
               "--dest-creds", f"{user}:{password}", "--preserve-digests", "--digestfile", str(digest_file),
               *options, f"oci:{layout}:{tag}", f"docker://{host}/{destination}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    digest = digest_file.read_text().strip() if done.returncode == 0 and digest_file.exists() else None
    return Pushed(done.returncode, done.stdout, done.stderr, digest)
