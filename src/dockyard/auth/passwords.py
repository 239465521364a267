"""Passwords (argon2id) and generated secrets (robot secrets, refresh tokens).

A check against an unknown account still runs one full argon2 verification, against a hash
made at start-up, so "no such user" and "wrong password" take the same time (SPEC.md §5.5).
argon2 is loaded on the first check: a worker that only ever sees tokens never pays its ~3 MB.
Generated secrets carry 256 random bits and are stored as their SHA-256: they are too long to
guess, so a slow hash would buy nothing but latency.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher as Argon2Hasher

SECRET_BYTES = 32
MAX_PASSWORD_BYTES = 1024


class Passwords:
    def __init__(self, *, time_cost: int = 5, memory_kib: int = 7168, parallelism: int = 1) -> None:
        self._parameters = (time_cost, memory_kib, parallelism)
        self._loaded: Argon2Hasher | None = None
        # A well-formed hash with these parameters that no password matches: verifying against it
        # costs a full argon2 run, and building it costs nothing (no memory-hard hash at start-up
        # in every worker).
        salt, digest = (base64.b64encode(secrets.token_bytes(n)).decode().rstrip("=") for n in (16, 32))
        self._dummy = (f"$argon2id$v=19$m={memory_kib},t={time_cost},p={parallelism}${salt}${digest}")

    @property
    def _hasher(self) -> Argon2Hasher:
        if self._loaded is None:
            from argon2 import PasswordHasher, Type
            time_cost, memory_kib, parallelism = self._parameters
            self._loaded = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
                                          type=Type.ID)
        return self._loaded

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; an absent hash costs the same and fails."""
        from argon2.exceptions import InvalidHashError, VerificationError

        if len(password.encode()) > MAX_PASSWORD_BYTES:
            password = ""  # still verified, so a long password is not a timing oracle either
        hasher = self._hasher
        try:
            return hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
            return False


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_digest: str | None, secret: str) -> bool:
    """Constant-time comparison of a presented secret with a stored digest (None never matches)."""
    presented = secret_digest(secret)
    return hmac.compare_digest(stored_digest or "0" * 64, presented) and stored_digest is not None
