"""Parsing pushed manifests (SPEC.md §3): what is accepted, and why the rest is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import ManifestInvalid
from dockyard.oci import mediatypes as mt
from dockyard.oci.digests import digest_of
from dockyard.oci.manifests import MAX_JSON_DEPTH, Descriptor, parse_manifest

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def desc(media_type: str, content: bytes = b"x", **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(content), "size": len(content), **extra}


def image(media_type: str | None = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemaVersion": 2, "config": desc(mt.OCI_CONFIG, b"{}"),
                           "layers": [desc(LAYER, b"l1"), desc(LAYER, b"l2")], **extra}
    if media_type is not None:
        doc["mediaType"] = media_type
    return doc


def index(media_type: str | None = mt.OCI_INDEX, **extra: Any) -> dict[str, Any]:
    child = desc(mt.OCI_MANIFEST, b"m", platform={"os": "linux", "architecture": "amd64"})
    doc: dict[str, Any] = {"schemaVersion": 2, "manifests": [child], **extra}
    if media_type is not None:
        doc["mediaType"] = media_type
    return doc


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def refused(doc: Any, content_type: str = "") -> str:
    """The message parse_manifest refuses ``doc`` with."""
    raw = doc if isinstance(doc, bytes) else body(doc)
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(raw, content_type)
    assert caught.value.code == "MANIFEST_INVALID"
    return caught.value.message


def test_oci_image_manifest() -> None:
    found = parse_manifest(body(image(annotations={"org.example": "x"})), mt.OCI_MANIFEST)
    assert found.media_type == mt.OCI_MANIFEST
    assert not found.is_index
    assert found.config == Descriptor(mt.OCI_CONFIG, digest_of(b"{}"), 2)
    assert [layer.digest for layer in found.layers] == [digest_of(b"l1"), digest_of(b"l2")]
    assert found.blob_references == (found.config, *found.layers)
    assert found.annotations == {"org.example": "x"}
    assert found.subject is None
    assert found.referrer_artifact_type() == mt.OCI_CONFIG


def test_oci_index() -> None:
    found = parse_manifest(body(index()), mt.OCI_INDEX)
    assert found.is_index
    assert found.config is None
    assert found.blob_references == ()
    assert found.manifests[0].platform == {"os": "linux", "architecture": "amd64"}
    assert found.referrer_artifact_type() is None


def test_docker_schema2_manifest_with_a_foreign_layer() -> None:
    doc = image(mt.DOCKER_MANIFEST, config=desc(mt.DOCKER_CONFIG, b"{}"),
                layers=[desc(DOCKER_LAYER, b"l"),
                        desc(FOREIGN_LAYER, b"win", urls=["https://mcr.microsoft.com/layer"])])
    found = parse_manifest(body(doc), mt.DOCKER_MANIFEST + "; charset=utf-8")
    assert found.media_type == mt.DOCKER_MANIFEST
    assert [d.media_type for d in found.blob_references] == [mt.DOCKER_CONFIG, DOCKER_LAYER]


def test_docker_manifest_list() -> None:
    found = parse_manifest(body(index(mt.DOCKER_LIST)), mt.DOCKER_LIST)
    assert found.is_index
    assert len(found.manifests) == 1


def test_artifact_with_artifact_type_and_subject() -> None:
    subject = desc(mt.OCI_MANIFEST, b"the image")
    doc = image(artifactType=SIGNATURE, config=desc(mt.OCI_EMPTY, b"{}"),
                layers=[desc(SIGNATURE, b"sig")], subject=subject)
    found = parse_manifest(body(doc), mt.OCI_MANIFEST)
    assert found.artifact_type == SIGNATURE
    assert found.referrer_artifact_type() == SIGNATURE
    assert found.subject is not None
    assert found.subject.digest == subject["digest"]


def test_artifact_type_defaults_to_the_config_media_type() -> None:
    found = parse_manifest(body(image(config=desc("application/vnd.example.thing", b"{}"))), "")
    assert found.referrer_artifact_type() == "application/vnd.example.thing"


def test_index_with_subject_and_artifact_type() -> None:
    found = parse_manifest(body(index(artifactType=SIGNATURE, subject=desc(mt.OCI_INDEX, b"i"))), "")
    assert found.subject is not None
    assert found.referrer_artifact_type() == SIGNATURE


@pytest.mark.parametrize(("doc", "content_type", "expected"), [
    (image(None), mt.OCI_MANIFEST, mt.OCI_MANIFEST),           # type from the header only
    (image(None), "", mt.OCI_MANIFEST),                        # inferred from the shape
    (index(None), "", mt.OCI_INDEX),
    (image(), "application/json", mt.OCI_MANIFEST),            # generic types do not disagree
    (image(), "application/octet-stream", mt.OCI_MANIFEST),
    (index(), "APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON", mt.OCI_INDEX),
])
def test_media_type_from_body_or_header(doc: dict[str, Any], content_type: str, expected: str) -> None:
    assert parse_manifest(body(doc), content_type).media_type == expected


@pytest.mark.parametrize(("doc", "content_type"), [
    ({"schemaVersion": 1, "name": "a", "tag": "latest", "fsLayers": [], "history": []}, ""),
    ({"schemaVersion": 1, "name": "a"}, mt.DOCKER_SCHEMA1_SIGNED),
    ({"schemaVersion": 2, "name": "a"}, mt.DOCKER_SCHEMA1),
    (image(mt.DOCKER_SCHEMA1), ""),
    (image(mt.DOCKER_SCHEMA1_SIGNED), mt.DOCKER_SCHEMA1_SIGNED),
])
def test_schema1_is_refused_with_a_clear_message(doc: dict[str, Any], content_type: str) -> None:
    message = refused(doc, content_type)
    assert "schema1" in message
    assert "skopeo copy" in message


@pytest.mark.parametrize(("doc", "content_type", "message_part"), [
    # the body and the header must agree
    (image(), mt.OCI_INDEX, "does not match the manifest's mediaType"),
    (index(), mt.OCI_MANIFEST, "does not match"),
    (image(mt.DOCKER_MANIFEST), mt.OCI_MANIFEST, "does not match"),
    (image(mt.OCI_MANIFEST), "application/vnd.oci.image.layer.v1.tar", "does not match"),
    # unknown or unusable types
    (image("application/vnd.example+json"), "", "unsupported manifest media type"),
    (image(None), "text/plain", "unsupported manifest media type"),
    ({"schemaVersion": 2}, "", "cannot tell the manifest type"),
    ({**image(), "mediaType": 7}, "", "mediaType must be a string"),
    # structure
    (image(schemaVersion=3), "", "schemaVersion must be 2"),
    (image(schemaVersion="2"), "", "schemaVersion must be 2"),
    ({"mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_CONFIG)}, "", "schemaVersion must be 2"),
    (image(manifests=[]), "", "both layers and manifests"),
    (index(layers=[]), "", "both layers and manifests"),
    (index(config=desc(mt.OCI_CONFIG)), "", "an index must not have config or layers"),
    (image(layers=None), "", "layers must be a list"),
    ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "manifests": []}, "", "must not have manifests"),
    (image(config=None), "", "config must be a descriptor"),
    ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}, "", "config must be a descriptor"),
    (index(manifests={}), "", "manifests must be a list"),
    ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}, "", "manifests must be a list"),
    (image(layers="l"), "", "layers must be a list"),
    (image(mt.DOCKER_MANIFEST, artifactType=SIGNATURE), "", "Docker schema2 manifests have no artifactType"),
    (image(artifactType=""), "", "artifactType must be a non-empty string"),
    (image(artifactType=1), "", "artifactType must be a non-empty string"),
    (image(annotations=[]), "", "annotations must be an object"),
    (image(annotations={"a": 1}), "", "annotations must be an object of string values"),
    (image(subject="sha256:abc"), "", "subject must be a descriptor"),
    (image(subject=desc(mt.OCI_MANIFEST, digest="nope")), "", "subject.digest"),
])
def test_invalid_manifests_say_what_is_wrong(doc: dict[str, Any], content_type: str,
                                             message_part: str) -> None:
    assert message_part in refused(doc, content_type)


@pytest.mark.parametrize(("bad_layer", "message_part"), [
    ({"digest": digest_of(b"x"), "size": 1}, "layers[0].mediaType must be a non-empty string"),
    (desc(""), "layers[0].mediaType must be a non-empty string"),
    (desc("a" * 256), "at most 255 characters"),
    (desc(LAYER, digest=None), "layers[0].digest must be a string"),
    (desc(LAYER, digest=5), "layers[0].digest must be a string"),
    (desc(LAYER, digest="sha256:" + "A" * 64), "layers[0].digest: invalid sha256 digest"),
    (desc(LAYER, digest="md5:" + "a" * 32), "unsupported digest algorithm"),
    (desc(LAYER, size=-1), "layers[0].size must be a non-negative integer"),
    (desc(LAYER, size=1.5), "size must be a non-negative integer"),
    (desc(LAYER, size="1"), "size must be a non-negative integer"),
    (desc(LAYER, size=True), "size must be a non-negative integer"),
    (desc(LAYER, size=2**63), "size must be a non-negative integer"),
    (desc(LAYER, size=None), "size must be a non-negative integer"),
    (desc(LAYER, urls="https://example.com"), "urls must be a list of strings"),
    (desc(LAYER, urls=[1]), "urls must be a list of strings"),
    (desc(LAYER, urls=["file:///etc/passwd"]), "may only hold http or https URLs"),
    (desc(LAYER, urls=["https://ok.example", "ftp://example.com/x"]), "http or https"),
    (desc(LAYER, urls=["javascript:alert(1)"]), "http or https"),
    (desc(LAYER, urls=["//example.com/x"]), "http or https"),
    (desc(LAYER, platform="linux"), "layers[0].platform must be an object"),
    (desc(LAYER, artifactType=""), "layers[0].artifactType"),
    (desc(LAYER, annotations={"a": None}), "layers[0].annotations"),
    ("sha256:abc", "layers[0] must be a descriptor object"),
    (None, "layers[0] must be a descriptor object"),
])
def test_bad_descriptor_fields(bad_layer: Any, message_part: str) -> None:
    assert message_part in refused(image(layers=[bad_layer]))


def test_error_names_the_descriptor_that_is_wrong() -> None:
    doc = index(manifests=[desc(mt.OCI_MANIFEST, b"a"), desc(mt.OCI_MANIFEST, b"b", size=-5)])
    assert "manifests[1].size" in refused(doc)
    assert "config.digest" in refused(image(config=desc(mt.OCI_CONFIG, digest="x")))


def test_http_and_https_urls_are_accepted() -> None:
    doc = image(layers=[desc(LAYER, urls=["http://a.example/x", "HTTPS://b.example/y"])])
    assert len(parse_manifest(body(doc), "").layers) == 1


def test_zero_size_and_largest_size_are_accepted() -> None:
    doc = image(layers=[desc(LAYER, b""), desc(LAYER, size=2**63 - 1)])
    assert [layer.size for layer in parse_manifest(body(doc), "").layers] == [0, 2**63 - 1]


def nested(depth: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value  # type: ignore[no-any-return]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    doc = image(annotations=None)
    doc["extra"] = nested(MAX_JSON_DEPTH - 1)
    assert parse_manifest(body(doc), "").media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    raw = b'{"schemaVersion":2,"x":' + b"[" * depth + b"]" * depth + b"}"
    message = refused(raw)
    assert "nested deeper" in message or "not valid JSON" in message


@pytest.mark.parametrize("raw", [
    b"",
    b"not json",
    b"{",
    b"{'schemaVersion': 2}",
    b"\xff\xfe\x00garbage",
    b"{\"schemaVersion\": 2, \"size\": " + b"9" * 5000 + b"}",  # past Python's int-digits limit
])
def test_not_json_is_refused(raw: bytes) -> None:
    assert "not valid JSON" in refused(raw)


@pytest.mark.parametrize("raw", [b"[]", b"2", b'"manifest"', b"null"])
def test_json_that_is_not_an_object_is_refused(raw: bytes) -> None:
    assert "must be a JSON object" in refused(raw)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    keys = st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "manifests", "subject",
                            "digest", "size", "urls", "platform", "annotations", "artifactType"])
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(keys | st.text(max_size=5), inner, max_size=6), max_leaves=30)


_MEDIA_TYPES = st.sampled_from([*sorted(mt.MANIFESTS | mt.SCHEMA1), "", "application/json"])


@given(st.binary(max_size=200) | _json_values().map(lambda v: json.dumps(v).encode()),
       _MEDIA_TYPES | st.text(max_size=40))
def test_parse_manifest_only_raises_registry_errors(raw: bytes, content_type: str) -> None:
    try:
        parse_manifest(raw, content_type)
    except ManifestInvalid:  # any other exception fails the test
        pass


@given(st.fixed_dictionaries({"schemaVersion": st.just(2)}, optional={
    "mediaType": _MEDIA_TYPES,
    "config": _json_values() | st.just(desc(mt.OCI_CONFIG)),
    "layers": st.lists(_json_values() | st.just(desc(LAYER)), max_size=3),
    "manifests": st.lists(_json_values() | st.just(desc(mt.OCI_MANIFEST)), max_size=3),
    "subject": _json_values() | st.just(desc(mt.OCI_MANIFEST)),
}), _MEDIA_TYPES)
def test_parse_manifest_near_valid_documents_only_raise_registry_errors(
        doc: dict[str, Any], content_type: str) -> None:
    try:
        parse_manifest(body(doc), content_type)
    except ManifestInvalid:
        pass


def test_subject_without_media_type_is_accepted() -> None:
    """Early referrers clients wrote subjects without a mediaType; only the digest matters."""
    subject_digest = "sha256:" + "a" * 64
    body = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [], "subject": {"digest": subject_digest, "size": 10},
    }).encode()
    manifest = parse_manifest(body, "application/vnd.oci.image.manifest.v1+json")
    assert manifest.subject is not None
    assert manifest.subject.digest == subject_digest
