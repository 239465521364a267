"""Digest grammar (SPEC.md §1) and hashing helpers."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import DigestInvalid
from dockyard.oci.digests import (
    algorithm_of,
    digest_of,
    looks_like_digest,
    new_hasher,
    parse_digest,
)

HEX64 = "a" * 64
HEX128 = "0123456789abcdef" * 8
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_SHA512 = (
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)


@pytest.mark.parametrize("text", [
    f"sha256:{HEX64}",
    f"sha256:{'0123456789abcdef' * 4}",
    f"sha512:{HEX128}",
    EMPTY_SHA256,
    EMPTY_SHA512,
])
def test_parse_digest_accepts_supported_digests(text: str) -> None:
    assert parse_digest(text) == text


@pytest.mark.parametrize(("text", "message_part"), [
    # unsupported algorithms are named in the message
    (f"md5:{'a' * 32}", "unsupported digest algorithm 'md5'"),
    (f"sha384:{'a' * 96}", "unsupported digest algorithm 'sha384'"),
    (f"blake3:{HEX64}", "use sha256 or sha512"),
    (f"sha256+b64u:{HEX64}", "unsupported digest algorithm"),
    # the right algorithm with the wrong encoding says what the encoding must be
    (f"sha256:{'A' * 64}", "expected 64 lowercase hex"),
    (f"sha256:{'a' * 63}", "expected 64 lowercase hex"),
    (f"sha256:{'a' * 65}", "expected 64 lowercase hex"),
    (f"sha256:{HEX128}", "expected 64 lowercase hex"),
    (f"sha512:{HEX64}", "expected 128 lowercase hex"),
    (f"sha512:{'F' * 128}", "expected 128 lowercase hex"),
    (f"sha256:{'g' * 64}", "expected 64 lowercase hex"),
    # not the shape algorithm:encoded at all
    ("", "expected algorithm:hex"),
    ("sha256", "expected algorithm:hex"),
    ("sha256:", "expected algorithm:hex"),
    (f":{HEX64}", "expected algorithm:hex"),
    (f"SHA256:{HEX64}", "expected algorithm:hex"),
    (f" sha256:{HEX64}", "expected algorithm:hex"),
    (f"sha256:{HEX64}\n", "expected algorithm:hex"),
    (f"sha256:{HEX64[:-1]}\u0661", "expected algorithm:hex"),  # Arabic-Indic digit one
    (f"sha256:{HEX64}/", "expected algorithm:hex"),
    ("latest", "expected algorithm:hex"),
    (f"sha256:{'a' * 300}", "expected algorithm:hex"),
])
def test_parse_digest_refuses_with_a_reason(text: str, message_part: str) -> None:
    with pytest.raises(DigestInvalid) as caught:
        parse_digest(text)
    assert message_part in caught.value.message
    assert caught.value.code == "DIGEST_INVALID"
    assert caught.value.status == 400


@pytest.mark.parametrize(("algorithm", "expected"), [("sha256", EMPTY_SHA256), ("sha512", EMPTY_SHA512)])
def test_digest_of_empty_content(algorithm: str, expected: str) -> None:
    assert digest_of(b"", algorithm) == expected


def test_digest_of_defaults_to_sha256() -> None:
    assert digest_of(b"hello") == "sha256:" + hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_new_hasher_streams_to_the_same_digest(algorithm: str) -> None:
    data = bytes(range(256)) * 1000
    hasher = new_hasher(algorithm)
    for start in range(0, len(data), 4096):
        hasher.update(memoryview(data)[start:start + 4096])
    assert f"{algorithm}:{hasher.hexdigest()}" == digest_of(data, algorithm)
    assert parse_digest(digest_of(data, algorithm))


def test_new_hasher_copy_is_independent() -> None:
    hasher = new_hasher()
    hasher.update(b"ab")
    snapshot = hasher.copy()
    hasher.update(b"c")
    assert snapshot.hexdigest() == hashlib.sha256(b"ab").hexdigest()
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", "nonsense"])
def test_new_hasher_refuses_unsupported_algorithms(algorithm: str) -> None:
    with pytest.raises(DigestInvalid, match="unsupported digest algorithm"):
        new_hasher(algorithm)


@pytest.mark.parametrize(("reference", "is_digest"), [
    (EMPTY_SHA256, True),
    ("md5:abc", True),  # shaped like a digest: validated (and refused) as one, never as a tag
    ("latest", False),
    ("v1.2.3", False),
])
def test_looks_like_digest(reference: str, is_digest: bool) -> None:
    assert looks_like_digest(reference) is is_digest


def test_algorithm_of() -> None:
    assert algorithm_of(EMPTY_SHA512) == "sha512"


@given(st.text(max_size=300) | st.from_regex(r"[a-z0-9]{1,10}:[0-9a-fA-F]{0,140}", fullmatch=True))
def test_parse_digest_only_raises_registry_errors(text: str) -> None:
    try:
        assert parse_digest(text) == text
    except DigestInvalid:  # any other exception fails the test
        pass
