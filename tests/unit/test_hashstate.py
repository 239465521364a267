"""The resumable SHA-256 agrees with hashlib across any split, any buffer type, any save/restore."""

from __future__ import annotations

import hashlib
import mmap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.storage.hashstate import STATE_SIZE, ResumableSha256, resumable_sha256


def new(state: bytes | None = None) -> ResumableSha256:
    hasher = resumable_sha256(state)
    assert hasher is not None, "this machine's OpenSSL must offer the low-level SHA-256 API"
    return hasher


@given(st.binary(max_size=5000), st.lists(st.integers(min_value=0, max_value=5000), max_size=6))
def test_saved_and_resumed_anywhere_equals_hashlib(data: bytes, cuts: list[int]) -> None:
    hasher, start = new(), 0
    for cut in sorted(cuts):
        cut = min(cut, len(data))
        hasher.update(data[start:cut])
        hasher = new(hasher.state())  # as if the next chunk went to another process
        start = cut
    hasher.update(data[start:])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_every_buffer_type() -> None:
    data = bytes(range(256)) * 1000
    block = mmap.mmap(-1, len(data))
    block[:] = data
    for buffer in (data, bytearray(data), memoryview(data), memoryview(block), memoryview(data)[10:]):
        hasher = new()
        hasher.update(buffer)
        assert hasher.hexdigest() == hashlib.sha256(bytes(buffer)).hexdigest()
    block.close()


def test_hexdigest_does_not_end_the_hash() -> None:
    hasher = new()
    hasher.update(b"abc")
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    hasher.update(b"def")
    assert hasher.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
    assert hasher.copy().hexdigest() == hasher.hexdigest()


def test_state_size_and_bad_state() -> None:
    assert len(new().state()) == STATE_SIZE
    with pytest.raises(ValueError, match="not a SHA-256 state"):
        new(b"short")
