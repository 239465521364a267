"""Test content (blobs, manifests, indexes) and async helpers that push it through the API."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_bytes(size: int) -> bytes:
    return secrets.token_bytes(size)


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()


@dataclass(frozen=True)
class Image:
    config: bytes
    layers: tuple[bytes, ...]
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> tuple[bytes, ...]:
        return (self.config, *self.layers)


def make_image(*, layers: int = 2, docker: bool = False, subject: dict[str, Any] | None = None,
               artifact_type: str | None = None, annotations: dict[str, str] | None = None) -> Image:
    config = dumps({"architecture": "amd64", "os": "linux", "nonce": secrets.token_hex(8),
                    "rootfs": {"type": "layers", "diff_ids": []}})
    layer_blobs = tuple(random_bytes(512 + i) for i in range(layers))
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    document: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, b) for b in layer_blobs],
    }
    if subject is not None:
        document["subject"] = subject
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if annotations:
        document["annotations"] = annotations
    return Image(config, layer_blobs, dumps(document), media_type)


def make_artifact(subject: Image, artifact_type: str, payload: bytes | None = None) -> Image:
    """An OCI artifact manifest (empty config) whose subject is ``subject``."""
    empty = b"{}"
    payload = payload if payload is not None else random_bytes(64)
    document = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": descriptor(OCI_EMPTY, empty),
        "layers": [descriptor("application/octet-stream", payload)],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.manifest)},
        "annotations": {"org.example.kind": artifact_type},
    }
    return Image(empty, (payload,), dumps(document), OCI_MANIFEST)


def make_index(images: list[Image], *, docker: bool = False) -> bytes:
    platforms = [{"architecture": arch, "os": "linux"} for arch in ("amd64", "arm64", "riscv64", "s390x")]
    media_type = DOCKER_LIST if docker else OCI_INDEX
    return dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": [
        {"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest),
         "platform": platforms[i % len(platforms)]} for i, image in enumerate(images)]})


async def push_blob(client: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
    """Monolithic push: POST a session, PUT the whole body with the digest."""
    started = await client.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    separator = "&" if "?" in location else "?"
    done = await client.put(f"{location}{separator}digest={sha256(data)}", content=data,
                            headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return done


async def push_manifest(client: httpx.AsyncClient, name: str, reference: str, body: bytes,
                        media_type: str = OCI_MANIFEST) -> httpx.Response:
    return await client.put(f"/v2/{name}/manifests/{reference}", content=body,
                            headers={"Content-Type": media_type})


async def push_image(client: httpx.AsyncClient, name: str, image: Image, reference: str | None = None) -> str:
    for blob in image.blobs:
        await push_blob(client, name, blob)
    response = await push_manifest(client, name, reference or image.digest, image.manifest, image.media_type)
    assert response.status_code == 201, response.text
    return image.digest


def error_codes(response: httpx.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]
