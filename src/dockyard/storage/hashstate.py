"""A SHA-256 whose running state can be saved and resumed in another process.

Chunks of one upload may reach different workers or nodes. hashlib cannot export a running hash,
so this wraps OpenSSL's own ``SHA256_CTX`` (the public struct of ``openssl/sha.h``, 112 bytes)
through ctypes: the same SHA-NI code as hashlib, the GIL released while it runs, and a state the
uploads table can carry from one request to the next.

If libcrypto or its low-level SHA-256 functions are missing, or the self-test below fails,
``resumable_sha256()`` returns None and callers fall back to re-reading an upload to hash it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from functools import cache
from typing import Any

STATE_SIZE = 112


class _Context(ctypes.Structure):
    _fields_ = [("h", ctypes.c_uint32 * 8), ("Nl", ctypes.c_uint32), ("Nh", ctypes.c_uint32),
                ("data", ctypes.c_uint32 * 16), ("num", ctypes.c_uint), ("md_len", ctypes.c_uint)]


@cache
def _libcrypto() -> Any | None:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.SHA256_Init.argtypes = [ctypes.POINTER(_Context)]
        lib.SHA256_Update.argtypes = [ctypes.POINTER(_Context), ctypes.c_void_p, ctypes.c_size_t]
        lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Context)]
    except (OSError, AttributeError):
        return None
    if ctypes.sizeof(_Context) != STATE_SIZE or not _self_test(lib):
        return None
    return lib


def _self_test(lib: Any) -> bool:
    data = bytes(range(256)) * 40
    first = ResumableSha256(lib)
    first.update(data[:777])
    second = ResumableSha256(lib, first.state())
    second.update(memoryview(bytearray(data[777:])))
    return second.hexdigest() == hashlib.sha256(data).hexdigest()


def _address(data: bytes | bytearray | memoryview) -> tuple[Any, int]:
    """Something ctypes can pass as a pointer to the bytes, and their length."""
    if isinstance(data, bytes):
        return data, len(data)
    view = memoryview(data).cast("B")
    if view.readonly:
        copied = view.tobytes()
        return copied, len(copied)
    return ctypes.addressof(ctypes.c_char.from_buffer(view)), len(view)


class ResumableSha256:
    """The ``Hasher`` interface plus ``state()``; build with ``resumable_sha256()``."""

    def __init__(self, lib: Any, state: bytes | None = None) -> None:
        self._lib = lib
        if state is None:
            self._ctx = _Context()
            lib.SHA256_Init(ctypes.byref(self._ctx))
        else:
            if len(state) != STATE_SIZE:
                raise ValueError("not a SHA-256 state")
            self._ctx = _Context.from_buffer_copy(state)

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        pointer, length = _address(data)
        if length:
            self._lib.SHA256_Update(ctypes.byref(self._ctx), pointer, length)

    def state(self) -> bytes:
        return bytes(self._ctx)

    def copy(self) -> ResumableSha256:
        return ResumableSha256(self._lib, self.state())

    def hexdigest(self) -> str:
        finished = _Context.from_buffer_copy(self.state())  # finalising must not end this hash
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctypes.byref(finished))
        return out.raw.hex()


def resumable_sha256(state: bytes | None = None) -> ResumableSha256 | None:
    """A new (or resumed) hash, or None when this machine's OpenSSL cannot provide one."""
    lib = _libcrypto()
    return None if lib is None else ResumableSha256(lib, state)
