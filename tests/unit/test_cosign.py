"""cosign's format against what the real cosign wrote (/work/shared/fixtures/cosign, copied under
tests/data/cosign): every fixture signature verifies with its key and no other, the encrypted keys
decrypt, and what dockyard builds has, field by field, the structure of cosign's own manifest."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dockyard.scan import cosign

DATA = Path(__file__).parent.parent / "data" / "cosign"
SIG1 = DATA / "sig1-containers-image-cosign-valid"
SIG2 = DATA / "sig2-containers-image-cosign-valid-2-signature-2"
SIG3 = DATA / "sig3-containers-image-cosign-key-rekor-valid"
NEG = DATA / "neg-containers-image-unknown-cosign-key"
SIG5 = DATA / "sig5-tobby-fetch-full-sig-manifest"
KEY1 = DATA / "key1-cosign-keys_test"
KEY2 = DATA / "key2-sigstore-rs-cosign-generated-empty-password"
KEY3 = DATA / "key3-kwctl-cosign-generate-key-pair"
COSIGN_PUB = cosign.load_public_key((SIG2 / "cosign.pub").read_bytes())
COSIGN2_PUB = cosign.load_public_key((SIG2 / "cosign2.pub").read_bytes())


def signature_of(folder: Path) -> tuple[bytes, str]:
    return (folder / "payload.json").read_bytes(), (folder / "signature.b64").read_text().strip()


@pytest.mark.parametrize(("folder", "good", "bad"), [
    (SIG1, COSIGN_PUB, COSIGN2_PUB),
    (SIG2, COSIGN_PUB, COSIGN2_PUB),
    (SIG3, COSIGN2_PUB, COSIGN_PUB),
])
def test_cosign_signatures_verify_with_their_key_only(folder: Path, good: cosign.PublicKey,
                                                      bad: cosign.PublicKey) -> None:
    data, signature = signature_of(folder)
    assert cosign.verify(good, data, signature)
    assert not cosign.verify(bad, data, signature)
    assert not cosign.verify(good, data + b" ", signature)  # the exact bytes are signed
    claim = cosign.parse_payload(data)
    assert claim.digest.startswith("sha256:")
    assert claim.docker_reference


def test_the_unknown_key_signature_verifies_with_neither_key() -> None:
    data, signature = signature_of(NEG)
    assert cosign.parse_payload(data).digest == cosign.parse_payload(signature_of(SIG1)[0]).digest
    assert not cosign.verify(COSIGN_PUB, data, signature)
    assert not cosign.verify(COSIGN2_PUB, data, signature)


def test_sig1_signs_the_manifest_it_came_with() -> None:
    manifest = (SIG1 / "signed-image-manifest.json").read_bytes()
    claim = cosign.parse_payload((SIG1 / "payload.json").read_bytes())
    assert claim.digest == f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    assert claim.docker_reference == "192.168.64.2:5000/cosign-signed-single-sample"


@pytest.mark.parametrize("folder", [SIG1, SIG2, SIG3, NEG])
def test_containers_image_copy_holds_the_same_signature(folder: Path) -> None:
    raw = (folder / "containers-image-sigstore-json.bin").read_bytes()
    assert raw.startswith(b"\x00sigstore-json\n")
    document = json.loads(raw[len(b"\x00sigstore-json\n"):])
    assert document["mimeType"] == cosign.SIMPLESIGNING
    data, signature = signature_of(folder)
    assert base64.b64decode(document["payload"]) == data
    assert document["annotations"][cosign.SIGNATURE_ANNOTATION] == signature


def test_sig3_carries_a_rekor_bundle() -> None:
    raw = (SIG3 / "containers-image-sigstore-json.bin").read_bytes()
    annotations = json.loads(raw[len(b"\x00sigstore-json\n"):])["annotations"]
    assert json.loads(annotations[cosign.BUNDLE_ANNOTATION]) == json.loads((SIG3 / "bundle.json").read_bytes())


@pytest.mark.parametrize("folder", [SIG1, SIG2, SIG3, SIG5])
def test_payload_is_written_byte_for_byte_as_cosign_writes_it(folder: Path) -> None:
    data = (folder / "payload.json").read_bytes()
    claim = cosign.parse_payload(data)
    assert claim.docker_reference is not None
    assert cosign.payload(claim.digest, claim.docker_reference) == data


def test_sig5_manifest_parsed_and_its_payload_verified() -> None:
    body = (SIG5 / "sig-manifest.json").read_bytes()
    config = (SIG5 / "config.json").read_bytes()
    data = (SIG5 / "payload.json").read_bytes()
    parsed = cosign.parse_signature_manifest(body)
    assert parsed.subject is None
    assert parsed.artifact_type is None
    assert parsed.config_digest == f"sha256:{hashlib.sha256(config).hexdigest()}"
    [layer] = parsed.layers
    assert layer.digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert layer.size == len(data)
    assert layer.signature == (SIG5 / "signature.b64").read_text().strip()
    assert cosign.verify(cosign.load_public_key((SIG5 / "cosign.pub").read_bytes()), data, layer.signature)
    # Rebuilt from its layers, cosign's manifest and config come out byte for byte.
    assert cosign.signature_config(parsed.layers) == config
    assert cosign.signature_manifest(parsed.layers, config) == body


def test_signature_tag() -> None:
    digest = "sha256:" + "ab" * 32
    assert cosign.signature_tag(digest) == f"sha256-{'ab' * 32}.sig"


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3])
def test_generate_key_pair_keys_decrypt_with_their_password(number: int) -> None:
    password = (KEY3 / "PASSWORD").read_bytes().strip()
    assert password == b"kubewarden"
    key = cosign.load_private_key((KEY3 / f"cosign{number}.key").read_bytes(), password)
    public = cosign.load_public_key((KEY3 / f"cosign{number}.pub").read_bytes())
    assert cosign.fingerprint(key.public_key()) == cosign.fingerprint(public)
    with pytest.raises(cosign.KeyInvalid, match="wrong password"):
        cosign.load_private_key((KEY3 / f"cosign{number}.key").read_bytes(), b"not-it")


def test_empty_password_key() -> None:
    assert (KEY2 / "PASSWORD").read_bytes() == b""
    pem = (KEY2 / "cosign_generated_encrypted_empty_private.key").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    derived = cosign.load_public_key((KEY2 / "cosign_generated_encrypted_empty_private.pub.derived").read_bytes())
    assert cosign.fingerprint(cosign.load_private_key(pem, b"").public_key()) == cosign.fingerprint(derived)
    assert cosign.fingerprint(cosign.load_private_key(pem, None).public_key()) == cosign.fingerprint(derived)


@pytest.mark.parametrize("name", ["pemcosignkey", "pemsigstorekey"])
def test_cosign_and_sigstore_labels(name: str) -> None:
    password = (KEY1 / "PASSWORD").read_bytes().strip()
    key = cosign.load_private_key((KEY1 / f"{name}.key").read_bytes(), password)
    derived = cosign.load_public_key((KEY1 / f"{name}.pub.derived").read_bytes())
    assert cosign.fingerprint(key.public_key()) == cosign.fingerprint(derived)


def test_sec1_key_inside_the_envelope_is_refused_as_cosign_refuses_it() -> None:
    pem = (KEY1 / "pemcosigneckey.key").read_bytes()
    with pytest.raises(cosign.KeyInvalid, match="not a PKCS#8 private key"):
        cosign.load_private_key(pem, b"hello")


def _pem_private(key: Any, fmt: serialization.PrivateFormat) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))


def test_plain_pkcs8_and_sec1_pem() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    loaded = cosign.load_private_key(_pem_private(key, serialization.PrivateFormat.PKCS8), None)
    assert cosign.fingerprint(loaded.public_key()) == cosign.fingerprint(key.public_key())
    with pytest.raises(cosign.KeyInvalid, match="SEC1"):
        cosign.load_private_key(_pem_private(key, serialization.PrivateFormat.TraditionalOpenSSL), None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    assert cosign.fingerprint(cosign.load_private_key(encrypted, b"pw").public_key()) == cosign.fingerprint(
        key.public_key())
    with pytest.raises(cosign.KeyInvalid, match="COSIGN_PASSWORD"):
        cosign.load_private_key(encrypted, None)


def _public_pem(key: Any) -> bytes:
    return bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.parametrize(("pem", "says"), [
    (_public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "not ECDSA"),
    (_public_pem(ec.generate_private_key(ec.SECP384R1())), "not P-256"),
    (b"-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n", "not valid base64"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a valid SubjectPublicKeyInfo"),
    (b"hello", "exactly one PEM block"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n", "no END line"),
    (b"x" * 5000, "more than the 4096"),
    ((KEY3 / "cosign1.key").read_bytes(), "give the .pub file"),
    ((KEY3 / "cosign1.pub").read_bytes() * 2, "found 2"),
])
def test_bad_public_keys_say_what_to_fix(pem: bytes, says: str) -> None:
    with pytest.raises(cosign.KeyInvalid, match=says) as raised:
        cosign.load_public_key(pem)
    assert raised.value.status == 400


# -- what dockyard writes has cosign's structure -----------------------------------------------


def _structure(value: Any) -> Any:
    """The shape of a JSON value: dict keys and their order kept, media types and other strings
    kept, digests, signatures, sizes and the docker-reference blanked, lists by their items' shapes."""
    if isinstance(value, dict):
        return [(k, "<reference>" if k == "docker-reference" else _structure(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_structure(v) for v in value]
    if isinstance(value, str) and (value.startswith("sha256:") or value.startswith("ME")):
        return "<digest or signature>"
    if isinstance(value, int) and not isinstance(value, bool):
        return "<int>"
    return value


def test_a_dockyard_signature_verifies_and_has_cosigns_structure() -> None:
    key = cosign.load_private_key((KEY3 / "cosign1.key").read_bytes(), b"kubewarden")
    image = "sha256:" + hashlib.sha256(b"some image manifest").hexdigest()
    data = cosign.payload(image, "registry.example:5000/team/app")
    signature = cosign.sign(key, data)
    assert cosign.verify(cosign.load_public_key((KEY3 / "cosign1.pub").read_bytes()), data, signature)
    assert not cosign.verify(cosign.load_public_key((KEY3 / "cosign2.pub").read_bytes()), data, signature)
    layer = cosign.new_layer(data, signature)
    config = cosign.signature_config([layer])
    ours, theirs = json.loads(cosign.signature_manifest([layer], config)), json.loads(
        (SIG5 / "sig-manifest.json").read_bytes())
    assert _structure(ours) == _structure(theirs)
    assert ours["mediaType"] == theirs["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert ours["config"]["mediaType"] == theirs["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert ours["config"]["digest"] == f"sha256:{hashlib.sha256(config).hexdigest()}"
    assert ours["config"]["size"] == len(config)
    assert [x["mediaType"] for x in ours["layers"]] == [x["mediaType"] for x in theirs["layers"]]
    assert ours["layers"][0]["annotations"].keys() == theirs["layers"][0]["annotations"].keys()
    assert ours["layers"][0]["digest"] == f"sha256:{hashlib.sha256(data).hexdigest()}"
    our_config, their_config = json.loads(config), json.loads((SIG5 / "config.json").read_bytes())
    assert _structure(our_config) == _structure(their_config)
    # The diff_ids rule: each layer's digest, in order (the payloads are stored uncompressed).
    assert our_config["rootfs"]["diff_ids"] == [x["digest"] for x in ours["layers"]]
    assert their_config["rootfs"]["diff_ids"] == [x["digest"] for x in theirs["layers"]]
    # The payload has cosign's exact shape too.
    assert _structure(json.loads(data)) == _structure(json.loads((SIG5 / "payload.json").read_bytes()))


def test_a_second_signature_appends_a_layer_and_an_identical_one_is_skipped() -> None:
    first = cosign.load_private_key((KEY3 / "cosign1.key").read_bytes(), b"kubewarden")
    second = cosign.load_private_key((KEY3 / "cosign2.key").read_bytes(), b"kubewarden")
    data = cosign.payload("sha256:" + "0" * 64, "r.example/app")
    one = cosign.new_layer(data, cosign.sign(first, data))
    two = cosign.new_layer(data, cosign.sign(second, data))
    again = cosign.new_layer(data, cosign.sign(first, data))  # ECDSA: another signature, same key

    def verifies_with(key: cosign.PrivateKey) -> Any:
        return lambda signature: cosign.verify(key.public_key(), data, signature)

    assert cosign.is_duplicate(one, again, verifies_with(first))
    assert not cosign.is_duplicate(one, two, verifies_with(second))
    with_bundle = cosign.new_layer(data, again.signature or "", {cosign.BUNDLE_ANNOTATION: "{}"})
    assert not cosign.is_duplicate(one, with_bundle, verifies_with(first))
    config = json.loads(cosign.signature_config([one, two]))
    assert config["rootfs"]["diff_ids"] == [one.digest, two.digest]
    assert len(config["history"]) == 2
    parsed = cosign.parse_signature_manifest(cosign.signature_manifest([one, two], json.dumps(config).encode()))
    assert [x.signature for x in parsed.layers] == [one.signature, two.signature]


def test_referrers_form() -> None:
    data = cosign.payload("sha256:" + "1" * 64, "r.example/app")
    layer = cosign.new_layer(data, "MEUC")
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 7, "digest": "sha256:" + "1" * 64}
    body = cosign.signature_manifest([layer], cosign.signature_config([layer]), subject=subject)
    document = json.loads(body)
    assert document["artifactType"] == cosign.SIGNATURE_ARTIFACT_TYPE
    assert document["config"]["mediaType"] == cosign.SIGNATURE_ARTIFACT_TYPE
    assert document["subject"] == subject
    assert list(document) == ["schemaVersion", "mediaType", "config", "layers", "subject", "artifactType"]
    parsed = cosign.parse_signature_manifest(body)
    assert parsed.subject == subject["digest"]
    assert parsed.artifact_type == cosign.SIGNATURE_ARTIFACT_TYPE


@pytest.mark.parametrize(("payload", "says"), [
    (b"{", "not JSON"),
    (b"[]", "no 'critical'"),
    (b'{"critical":{"type":"something else"}}', "not 'cosign container image signature'"),
    (b'{"critical":{"type":"cosign container image signature"}}', "docker-manifest-digest"),
])
def test_payloads_that_are_not_cosigns(payload: bytes, says: str) -> None:
    with pytest.raises(cosign.PayloadInvalid, match=says):
        cosign.parse_payload(payload)


def test_go_json_escapes_like_go() -> None:
    assert cosign.go_json({"b": "<&>", "a": None}) == b'{"b":"\\u003c\\u0026\\u003e","a":null}'
