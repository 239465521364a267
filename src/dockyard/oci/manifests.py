"""Parsing and validating manifests: OCI image manifest and index, Docker schema2 and list.

The registry stores manifests byte for byte; this module only reads them to learn what they
reference (config, layers, children, subject) and to refuse what is malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import DigestInvalid, ManifestInvalid
from dockyard.oci import mediatypes as mt
from dockyard.oci.digests import parse_digest

MAX_JSON_DEPTH = 64
_MEDIA_TYPE_MAX = mt.MAX_MEDIA_TYPE_LENGTH


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the registry needs to know of a manifest."""

    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def blob_references(self) -> tuple[Descriptor, ...]:
        """Blobs that must exist in the repository: the config and layers (not foreign layers)."""
        refs = [self.config] if self.config is not None else []
        refs.extend(layer for layer in self.layers if not _is_foreign(layer))
        return tuple(refs)

    def referrer_artifact_type(self) -> str | None:
        """The artifactType a referrers response reports for this manifest."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and not self.is_index:
            return self.config.media_type
        return None


def _is_foreign(layer: Descriptor) -> bool:
    return "foreign" in layer.media_type or "nondistributable" in layer.media_type


def _fail(message: str, **detail: Any) -> ManifestInvalid:
    return ManifestInvalid(message, detail=detail or None)


def _depth_ok(value: Any, depth: int = 0) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return all(_depth_ok(item, depth + 1) for item in value)
    return True


def _load(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _fail("manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise _fail("manifest must be a JSON object")
    if not _depth_ok(document):
        raise _fail(f"manifest is nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _string(value: Any, where: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    # Printable: media types are stored in columns, and PostgreSQL takes no NUL (nor a lone surrogate).
    if not isinstance(value, str) or not value or len(value) > _MEDIA_TYPE_MAX or not value.isprintable():
        raise _fail(f"{where} must be a non-empty string of at most {_MEDIA_TYPE_MAX} characters, all printable")
    return value


def _annotations(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(f"{where} must be an object of string values")
    return value


def parse_descriptor(value: Any, where: str, *, media_type_required: bool = True) -> Descriptor:
    if not isinstance(value, dict):
        raise _fail(f"{where} must be a descriptor object with mediaType, digest and size")
    media_type = _string(value.get("mediaType"), f"{where}.mediaType", required=media_type_required) or ""
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise _fail(f"{where}.digest must be a string such as sha256:<64 hex>")
    try:
        parse_digest(digest)
    except DigestInvalid as exc:
        raise _fail(f"{where}.digest: {exc.message}") from None
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 2**63:
        raise _fail(f"{where}.size must be a non-negative integer")
    urls = value.get("urls")
    if urls is not None:
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise _fail(f"{where}.urls must be a list of strings")
        for url in urls:
            if not url.lower().startswith(("http://", "https://")):
                raise _fail(f"{where}.urls may only hold http or https URLs", url=url[:200])
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _fail(f"{where}.platform must be an object")
    return Descriptor(
        media_type=media_type, digest=digest, size=size,
        artifact_type=_string(value.get("artifactType"), f"{where}.artifactType", required=False),
        platform=platform, annotations=_annotations(value.get("annotations"), f"{where}.annotations"))


def _descriptor_list(value: Any, where: str) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise _fail(f"{where} must be a list of descriptors")
    return tuple(parse_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


def resolve_media_type(document: dict[str, Any], content_type: str) -> str:
    """The manifest's media type from its body and the request's Content-Type, which must agree."""
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _fail("mediaType must be a string")
    header = mt.bare(content_type)
    if header in ("", "application/octet-stream", "application/json"):
        header = ""
    version = document.get("schemaVersion")
    if header in mt.SCHEMA1 or declared in mt.SCHEMA1 or (type(version) is int and version == 1):
        raise _fail("Docker schema1 manifests are not supported: push with a current client "
                    "(docker ≥ 1.10, skopeo, podman) or convert with `skopeo copy --format v2s2`")
    if declared and header and declared != header:
        raise _fail(f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}")
    media_type = declared or header
    if not media_type:
        if "manifests" in document and "layers" not in document:
            return mt.OCI_INDEX
        if "config" in document:
            return mt.OCI_MANIFEST
        raise _fail("cannot tell the manifest type: set mediaType in the body or Content-Type")
    return media_type


def parse_manifest(body: bytes, content_type: str) -> Manifest:
    """Parse and validate a pushed manifest; raise ManifestInvalid saying what to fix."""
    document = _load(body)
    media_type = resolve_media_type(document, content_type)
    if media_type not in mt.MANIFESTS:
        raise _fail(f"unsupported manifest media type {media_type!r}: push an OCI image manifest or "
                    "index, or a Docker schema2 manifest or manifest list")
    version = document.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise _fail("schemaVersion must be 2")
    if "layers" in document and "manifests" in document:
        raise _fail("a manifest cannot have both layers and manifests")
    subject = document.get("subject")
    common: dict[str, Any] = {
        "media_type": media_type,
        # Early referrers clients wrote the subject without a mediaType; it names content that
        # may not even be here, so only its digest matters.
        "subject": parse_descriptor(subject, "subject", media_type_required=False) if subject is not None else None,
        "artifact_type": _string(document.get("artifactType"), "artifactType", required=False),
        "annotations": _annotations(document.get("annotations"), "annotations") or {},
    }
    if media_type in mt.INDEXES:
        if "config" in document or "layers" in document:
            raise _fail("an index must not have config or layers")
        return Manifest(manifests=_descriptor_list(document.get("manifests"), "manifests"), **common)
    if "manifests" in document:
        raise _fail("an image manifest must not have manifests; push it as an index")
    config = parse_descriptor(document.get("config"), "config")
    layers = _descriptor_list(document.get("layers", []), "layers")
    if media_type == mt.DOCKER_MANIFEST and common["artifact_type"]:
        raise _fail("Docker schema2 manifests have no artifactType; push an OCI manifest")
    return Manifest(config=config, layers=layers, **common)
