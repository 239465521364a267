"""Digests: ``algorithm:encoded``, sha256 (required) and sha512."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from dockyard.errors import DigestInvalid

ENCODED_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"(sha256:[a-f0-9]{64})|(sha512:[a-f0-9]{128})", flags=re.ASCII)
_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", flags=re.ASCII)
MAX_DIGEST_LENGTH = 7 + 1 + 128


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


def parse_digest(text: str) -> str:
    """Return ``text`` if it is a supported digest, else raise ``DigestInvalid`` saying why."""
    if len(text) <= MAX_DIGEST_LENGTH and _DIGEST.fullmatch(text):
        return text
    if len(text) <= 256 and _ANY_DIGEST.fullmatch(text):
        algorithm = text.split(":", 1)[0]
        if algorithm not in ENCODED_LENGTH:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}: use sha256 or sha512")
        raise DigestInvalid(
            f"invalid {algorithm} digest: expected {ENCODED_LENGTH[algorithm]} lowercase hex characters")
    raise DigestInvalid("invalid digest: expected algorithm:hex, for example sha256:<64 lowercase hex>")


def looks_like_digest(reference: str) -> bool:
    """A manifest reference is a digest when it has a colon (tags cannot)."""
    return ":" in reference


def algorithm_of(digest: str) -> str:
    return digest.split(":", 1)[0]


def new_hasher(algorithm: str = "sha256") -> Hasher:
    if algorithm not in ENCODED_LENGTH:
        raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}: use sha256 or sha512")
    hasher: Hasher = hashlib.new(algorithm)
    return hasher


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"
