"""cosign's key-pair signatures, byte for byte as cosign writes and reads them (pure: no I/O).

What cosign stores for a signed image ``sha256:<hex>`` (sigstore/cosign specs/SIGNATURE_SPEC.md,
and the manifests cosign v2/v3 push, kept in tests/data as found):

    tag sha256-<hex>.sig ─► OCI image manifest
        config  application/vnd.oci.image.config.v1+json
                {"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":…}, one per layer],
                 "os":"","rootfs":{"type":"layers","diff_ids":[<each layer's digest>]},"config":{}}
        layers  application/vnd.dev.cosign.simplesigning.v1+json, one per signature; the blob is the
                payload, annotation dev.cosignproject.cosign/signature = base64(ASN.1 DER ECDSA
                over SHA-256 of the payload's exact bytes); optionally dev.sigstore.cosign/bundle
                (Rekor), /certificate, /chain
    payload  {"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
              "type":"cosign container image signature"},"optional":null}

The OCI 1.1 referrers form is the same manifest pushed by digest, with ``artifactType`` and the
config's mediaType ``application/vnd.dev.cosign.artifact.sig.v1+json`` and a ``subject``.

JSON is written as Go's encoding/json does (struct fields in declaration order, map keys sorted,
no spaces, ``<>&`` escaped), so a manifest built here is the one cosign would build.

Keys: ECDSA P-256 only. Private keys are PKCS#8 PEM, or cosign's ``ENCRYPTED COSIGN PRIVATE KEY``
/ ``ENCRYPTED SIGSTORE PRIVATE KEY`` envelope (scrypt, then NaCl secretbox, around a PKCS#8 DER);
a SEC1 ``EC PRIVATE KEY`` is refused, as cosign refuses it. Public keys are PEM
SubjectPublicKeyInfo; a key's fingerprint is the hex SHA-256 of that DER.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.errors import RequestInvalid
from dockyard.oci import mediatypes as mt
from dockyard.oci.digests import parse_digest

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
PAYLOAD_TYPE = "cosign container image signature"
ENCRYPTED_LABELS = ("ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED SIGSTORE PRIVATE KEY")
MAX_PEM_BYTES = 4096  # a P-256 key in any of these forms is under 1 KiB (store/limits.PUBLIC_KEY)
MAX_PAYLOAD_BYTES = 64 * 1024  # cosign's payloads are ~250 bytes; optional annotations add a little
_SCRYPT_MAX_MEMORY = 512 * 1024 * 1024  # cosign's keys need 32-64 MiB (N=32768/65536, r=8)
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"

PublicKey = ec.EllipticCurvePublicKey
PrivateKey = ec.EllipticCurvePrivateKey


class KeyInvalid(RequestInvalid):
    """A key file or PEM dockyard cannot use; the message says what to give instead."""


class PayloadInvalid(ValueError):
    """A simple-signing payload that is not cosign's (the reason is the message)."""


# -- keys --------------------------------------------------------------------------------------


def _pem_blocks(pem: bytes) -> list[tuple[str, bytes]]:
    """Each ``-----BEGIN X-----`` … ``-----END X-----`` block: its label and decoded body."""
    blocks = []
    lines = iter(pem.decode("ascii", "replace").splitlines())
    for line in lines:
        line = line.strip()
        if not (line.startswith("-----BEGIN ") and line.endswith("-----")):
            continue
        label = line[len("-----BEGIN "):-5]
        body = []
        for inner in lines:
            inner = inner.strip()
            if inner == f"-----END {label}-----":
                break
            body.append(inner)
        else:
            raise KeyInvalid(f"the PEM block {label!r} has no END line: give the whole key file")
        try:
            blocks.append((label, base64.b64decode("".join(body), validate=True)))
        except (binascii.Error, ValueError):
            raise KeyInvalid(f"the PEM block {label!r} is not valid base64: give the key file as written") from None
    return blocks


def _one_block(pem: bytes, what: str) -> tuple[str, bytes]:
    if len(pem) > MAX_PEM_BYTES:
        raise KeyInvalid(f"the {what} is {len(pem)} bytes, more than the {MAX_PEM_BYTES} a P-256 key in PEM "
                         "can take: give only the key (one PEM block)")
    blocks = _pem_blocks(pem)
    if len(blocks) != 1:
        raise KeyInvalid(f"the {what} must be exactly one PEM block (-----BEGIN …-----), found {len(blocks)}")
    return blocks[0]


def _p256(key: object, what: str) -> None:
    curve = getattr(key, "curve", None)
    if not isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        raise KeyInvalid(f"the {what} is a {type(key).__name__.lstrip('_')}, not ECDSA: cosign's key-pair "
                         "signatures use ECDSA P-256 (`cosign generate-key-pair` makes one)")
    if not isinstance(curve, ec.SECP256R1):
        raise KeyInvalid(f"the {what} is ECDSA on {getattr(curve, 'name', '?')}, not P-256 (secp256r1): "
                         "cosign's key-pair signatures use P-256 only")


def load_public_key(pem: bytes) -> PublicKey:
    """An ECDSA P-256 public key from PEM SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``)."""
    label, der = _one_block(pem, "public key")
    if label != "PUBLIC KEY":
        hint = " (that is a private key: give the .pub file)" if "PRIVATE" in label else ""
        raise KeyInvalid(f"expected a PEM 'PUBLIC KEY' block, got {label[:60]!r}{hint}")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyInvalid("the PUBLIC KEY block is not a valid SubjectPublicKeyInfo: give the key as "
                         "`cosign generate-key-pair` or `openssl ec -pubout` writes it") from None
    _p256(key, "public key")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def load_private_key(pem: bytes, password: bytes | None) -> PrivateKey:
    """An ECDSA P-256 private key: PKCS#8 PEM (``PRIVATE KEY``, or ``ENCRYPTED PRIVATE KEY`` with
    ``password``) or cosign's encrypted envelope (``password`` as COSIGN_PASSWORD; None is empty)."""
    label, der = _one_block(pem, "private key")
    if label in ENCRYPTED_LABELS:
        der = _decrypt_envelope(der, password or b"")
        return _pkcs8(der, None, "the decrypted cosign key")
    if label == "PRIVATE KEY":
        return _pkcs8(der, None, "the PRIVATE KEY block")
    if label == "ENCRYPTED PRIVATE KEY":
        if not password:
            raise KeyInvalid("the key is an encrypted PKCS#8 key: set its password in COSIGN_PASSWORD")
        return _pkcs8(der, password, "the ENCRYPTED PRIVATE KEY block")
    if label == "EC PRIVATE KEY":
        raise KeyInvalid("the key is a SEC1 'EC PRIVATE KEY', which cosign refuses: convert it to PKCS#8 "
                         "(`openssl pkcs8 -topk8 -nocrypt -in KEY`) or use `cosign generate-key-pair`")
    raise KeyInvalid(f"expected a private key (PKCS#8 'PRIVATE KEY' or cosign's 'ENCRYPTED COSIGN PRIVATE "
                     f"KEY'), got a {label[:60]!r} block")


def _pkcs8(der: bytes, password: bytes | None, what: str) -> PrivateKey:
    if password is None and not _is_pkcs8(der):
        # cryptography would also read a SEC1 or PKCS#1 DER here; cosign (x509.ParsePKCS8PrivateKey) does not.
        raise KeyInvalid(f"{what} is not a PKCS#8 private key (a SEC1 EC key, which cosign refuses): "
                         "convert it with `openssl pkcs8 -topk8 -nocrypt` or use `cosign generate-key-pair`")
    try:
        key = serialization.load_der_private_key(der, password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if password is not None:
            raise KeyInvalid(f"{what} cannot be decrypted: check COSIGN_PASSWORD") from None
        raise KeyInvalid(f"{what} is not a PKCS#8 private key (cosign refuses SEC1 and PKCS#1 keys too): "
                         "convert it with `openssl pkcs8 -topk8 -nocrypt`") from None
    _p256(key, "private key")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _is_pkcs8(der: bytes) -> bool:
    """Whether the DER is a PrivateKeyInfo: SEQUENCE { INTEGER version, SEQUENCE algorithm, … }
    (SEC1's ECPrivateKey has an OCTET STRING after the version, PKCS#1 an INTEGER)."""
    position = _skip_header(der, 0, 0x30)
    if position is None or position >= len(der) or der[position] != 0x02 or position + 1 >= len(der):
        return False
    after_version = position + 2 + der[position + 1]
    return after_version < len(der) and der[after_version] == 0x30


def _skip_header(der: bytes, position: int, tag: int) -> int | None:
    """Where the content of the DER element at ``position`` starts, if it has ``tag``."""
    if position + 2 > len(der) or der[position] != tag:
        return None
    length = der[position + 1]
    return position + 2 + (length & 0x7F if length & 0x80 else 0)


def _decrypt_envelope(envelope: bytes, password: bytes) -> bytes:
    """cosign's encrypted key: JSON {kdf: scrypt N/r/p + salt, cipher: nacl/secretbox + nonce,
    ciphertext}; the scrypt of the password is the secretbox key."""
    try:
        document = json.loads(envelope)
        kdf, cipher = document["kdf"], document["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        ciphertext = base64.b64decode(document["ciphertext"], validate=True)
        names = (kdf["name"], cipher["name"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise KeyInvalid("the encrypted cosign key is damaged (its JSON envelope cannot be read): "
                         "give the .key file `cosign generate-key-pair` wrote") from None
    if names != ("scrypt", "nacl/secretbox"):
        raise KeyInvalid(f"the encrypted cosign key uses {names[0]!r} and {names[1]!r}; only scrypt with "
                         "nacl/secretbox (what cosign writes) is supported")
    memory = 128 * r * n * max(p, 1)
    if not (n > 1 and n & (n - 1) == 0 and 0 < r <= 64 and 0 < p <= 16) or memory > _SCRYPT_MAX_MEMORY:
        raise KeyInvalid(f"the encrypted cosign key's scrypt parameters (N={n}, r={r}, p={p}) are out of the "
                         "range cosign writes; re-encrypt it with `cosign import-key-pair`")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyInvalid("the encrypted cosign key's nonce is not 24 bytes: the file is damaged")
    key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=memory + 1024 * 1024)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(ciphertext, nonce))
    except nacl.exceptions.CryptoError:
        raise KeyInvalid("wrong password for the encrypted cosign key: set COSIGN_PASSWORD to the password "
                         "it was made with (empty if none)") from None


def public_key_of(private_key: PrivateKey) -> PublicKey:
    return private_key.public_key()


def public_key_pem(public_key: PublicKey) -> str:
    """The key as PEM SubjectPublicKeyInfo, as ``cosign.pub`` holds it."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(public_key: PublicKey) -> str:
    """Hex SHA-256 of the key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# -- payload, sign, verify ---------------------------------------------------------------------


def go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: no spaces, map keys sorted (the caller orders struct
    fields), ``<``, ``>`` and ``&`` escaped, other characters as UTF-8."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def payload(digest: str, reference: str, optional: Mapping[str, str] | None = None) -> bytes:
    """The simple-signing payload cosign signs for image ``digest`` pushed as ``reference``
    (the repository with its registry, e.g. ``registry.example:5000/team/app``)."""
    parse_digest(digest)
    document = {"critical": {"identity": {"docker-reference": reference},
                             "image": {"docker-manifest-digest": digest},
                             "type": PAYLOAD_TYPE},
                "optional": dict(sorted(optional.items())) if optional else None}
    return go_json(document)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a payload says: which image digest it signs, as which reference."""

    digest: str
    docker_reference: str | None
    optional: dict[str, Any] | None = None


def parse_payload(data: bytes) -> Claim:
    """Read a simple-signing payload as cosign does; PayloadInvalid says why it is not one."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadInvalid(f"the payload is {len(data)} bytes, more than {MAX_PAYLOAD_BYTES}")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise PayloadInvalid("the payload is not JSON") from None
    critical = document.get("critical") if isinstance(document, dict) else None
    if not isinstance(critical, dict):
        raise PayloadInvalid("the payload has no 'critical' object")
    if critical.get("type") != PAYLOAD_TYPE:
        raise PayloadInvalid(f"critical.type is {str(critical.get('type'))[:80]!r}, not {PAYLOAD_TYPE!r}")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str):
        raise PayloadInvalid("the payload has no critical.image.docker-manifest-digest")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    optional = document.get("optional")
    return Claim(digest, reference if isinstance(reference, str) else None,
                 optional if isinstance(optional, dict) else None)


def sign(private_key: PrivateKey, data: bytes) -> str:
    """base64 of the ASN.1 DER ECDSA signature over SHA-256 of ``data`` (cosign's form)."""
    return base64.b64encode(private_key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def verify(public_key: PublicKey, data: bytes, signature_b64: str) -> bool:
    """Whether ``signature_b64`` (cosign's base64 DER ECDSA) signs exactly ``data`` with the key."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


# -- the signature manifest --------------------------------------------------------------------


def signature_tag(digest: str) -> str:
    """The tag cosign stores an image's signatures under: ``sha256-<hex>.sig``."""
    algorithm, hexpart = parse_digest(digest).split(":", 1)
    return f"{algorithm}-{hexpart}.sig"


@dataclass(frozen=True, slots=True)
class SignatureLayer:
    """One layer of a signature manifest: the payload blob and its annotations."""

    digest: str
    size: int
    media_type: str = SIMPLESIGNING
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def signature(self) -> str | None:
        return self.annotations.get(SIGNATURE_ANNOTATION)

    def descriptor(self) -> dict[str, Any]:
        """Go's v1.Descriptor field order: mediaType, size, digest, annotations (keys sorted)."""
        found: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            found["annotations"] = dict(sorted(self.annotations.items()))
        return found


@dataclass(frozen=True, slots=True)
class SignatureManifest:
    layers: tuple[SignatureLayer, ...]
    config_digest: str | None
    subject: str | None = None
    artifact_type: str | None = None


def new_layer(data: bytes, signature_b64: str, extra: Mapping[str, str] | None = None) -> SignatureLayer:
    annotations = {**(extra or {}), SIGNATURE_ANNOTATION: signature_b64}
    return SignatureLayer(f"sha256:{hashlib.sha256(data).hexdigest()}", len(data), SIMPLESIGNING, annotations)


def signature_config(layers: Sequence[SignatureLayer]) -> bytes:
    """The config blob cosign writes: an empty image whose diff_ids are the layers' digests (the
    payloads are stored uncompressed) with one empty history entry per layer."""
    document = {"architecture": "", "created": _GO_ZERO_TIME,
                "history": [{"created": _GO_ZERO_TIME} for _ in layers], "os": "",
                "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]}, "config": {}}
    return go_json(document)


def signature_manifest(layers: Sequence[SignatureLayer], config: bytes, *,
                       subject: Mapping[str, Any] | None = None) -> bytes:
    """The manifest cosign pushes under the .sig tag; with ``subject`` (the signed image's
    mediaType, size, digest) the OCI 1.1 referrers form cosign pushes by digest."""
    config_type = SIGNATURE_ARTIFACT_TYPE if subject is not None else mt.OCI_CONFIG
    document: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": config_type, "size": len(config),
                   "digest": f"sha256:{hashlib.sha256(config).hexdigest()}"},
        "layers": [layer.descriptor() for layer in layers]}
    if subject is not None:
        document["subject"] = {"mediaType": subject["mediaType"], "size": subject["size"],
                               "digest": subject["digest"]}
        document["artifactType"] = SIGNATURE_ARTIFACT_TYPE
    return go_json(document)


def parse_signature_manifest(body: bytes) -> SignatureManifest:
    """The simple-signing layers of a signature manifest (other layers are left out); PayloadInvalid
    when it is not an image manifest."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadInvalid("the signature manifest is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
        raise PayloadInvalid("the signature manifest is not an image manifest (no layers)")
    layers = []
    for item in document["layers"]:
        if not isinstance(item, dict) or item.get("mediaType") != SIMPLESIGNING:
            continue
        digest, size, annotations = item.get("digest"), item.get("size"), item.get("annotations") or {}
        if not isinstance(digest, str) or not isinstance(size, int) or not isinstance(annotations, dict):
            continue
        layers.append(SignatureLayer(digest, size, SIMPLESIGNING,
                                     {str(k): str(v) for k, v in annotations.items()}))
    config = document.get("config")
    subject = document.get("subject")
    artifact_type = document.get("artifactType")
    return SignatureManifest(
        tuple(layers), config.get("digest") if isinstance(config, dict) else None,
        subject.get("digest") if isinstance(subject, dict) else None,
        artifact_type if isinstance(artifact_type, str) else None)


def is_duplicate(existing: SignatureLayer, new: SignatureLayer, verifies: Callable[[str], bool]) -> bool:
    """cosign's duplicate rule: same payload and media type, the new layer's other annotations
    all present with the same values, and the existing signature verifies with the signing key."""
    if (existing.digest, existing.media_type) != (new.digest, new.media_type):
        return False
    for name, value in new.annotations.items():
        if name != SIGNATURE_ANNOTATION and existing.annotations.get(name) != value:
            return False
    return existing.signature is not None and verifies(existing.signature)
