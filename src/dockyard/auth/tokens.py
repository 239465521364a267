"""Signing and verifying the bearer tokens of the Docker token spec (SPEC.md §5.4).

A token is a compact JWS (``header.payload.signature``) signed with ES256 or RS256. The header
only names the key (``kid``) and must agree with it on the algorithm; the key itself always comes
from the configured keys, never from the token. PyJWT checks the signature; the claims are checked
here, by hand, so that ``now`` can be passed in and every refusal has a message of our own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dockyard.auth.scopes import Grant, ScopeInvalid, grants_from_claim

ALGORITHMS = ("ES256", "RS256")
MAX_LEEWAY_SECONDS = 60
MAX_TOKEN_LENGTH = 8192
MIN_RSA_BITS = 2048
# A key carried by the token would let anyone sign; ``crit`` would ask for extensions we do not implement.
_REFUSED_HEADERS = ("jwk", "jku", "x5u", "x5c", "crit")
_REQUIRED_CLAIMS = ("iss", "aud", "exp", "nbf", "iat", "sub", "jti", "access")

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class TokenInvalid(Exception):
    """A token that must not be honoured; the message says why and never repeats the token."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A token key: ``kid`` is its RFC 7638 thumbprint, so the same key always has the same id."""

    kid: str
    algorithm: str
    private_pem: bytes | None
    public_pem: bytes

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK, for the JWKS document other services verify with."""
        return {**_jwk_members(_load_public(self.public_pem)), "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who it was issued to and what it grants."""

    subject: str
    access: tuple[Grant, ...]
    issued_at: int
    expires_at: int
    token_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed token and the times the token endpoint reports alongside it."""

    token: str
    issued_at: int
    expires_in: int


def generate_key(algorithm: str = "ES256") -> SigningKey:
    """A new private key for ``algorithm``."""
    private: _PrivateKey
    if algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    else:
        raise ValueError(f"the token algorithm must be one of {', '.join(ALGORITHMS)}")
    return _signing_key(private, private.public_key())


def load_private_pem(pem: bytes) -> SigningKey:
    """A signing key from an unencrypted PEM private key; its type decides the algorithm."""
    private = _load_private(pem)
    return _signing_key(private, private.public_key())


def load_public_pem(pem: bytes) -> SigningKey:
    """A verify-only key from a SubjectPublicKeyInfo PEM."""
    return _signing_key(None, _load_public(pem))


def key_id(token: str) -> str | None:
    """The ``kid`` a token names, read without verifying anything; None if it names none."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def jwks(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    """The JWKS document (RFC 7517) listing ``keys``."""
    return {"keys": [key.public_jwk() for key in keys]}


class TokenIssuer:
    """Signs tokens for one service with one key."""

    def __init__(self, key: SigningKey, *, issuer: str, audience: str, lifetime_seconds: int) -> None:
        if key.private_pem is None:
            raise ValueError(f"token key {key.kid} is verify-only and cannot sign")
        if lifetime_seconds <= 0:
            raise ValueError("the token lifetime must be positive")
        self._private = _load_private(key.private_pem)
        _check_describes(key, self._private.public_key())
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._lifetime = lifetime_seconds

    def issue(self, subject: str, access: Sequence[Grant], *, now: int | None = None) -> IssuedToken:
        """A token granting ``access`` to ``subject``; ``ValueError`` if it would be too long to verify."""
        issued_at = int(time.time()) if now is None else now
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": self._audience,
            "exp": issued_at + self._lifetime,
            "nbf": issued_at,
            "iat": issued_at,
            "jti": secrets.token_urlsafe(16),
            "access": [grant.to_claim() for grant in access],
        }
        headers = {"kid": self._key.kid, "typ": "JWT"}
        token = jwt.encode(claims, self._private, algorithm=self._key.algorithm, headers=headers)
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError(f"a token for {len(access)} grants would be longer than {MAX_TOKEN_LENGTH} bytes")
        return IssuedToken(token, issued_at, self._lifetime)


class TokenVerifier:
    """Verifies tokens signed by any of the configured keys for one issuer and audience."""

    def __init__(
        self,
        keys: Iterable[SigningKey],
        *,
        issuer: str,
        audience: str,
        max_lifetime_seconds: int,
        leeway_seconds: int = MAX_LEEWAY_SECONDS,
    ) -> None:
        self._keys: dict[str, tuple[SigningKey, _PublicKey]] = {}
        for key in keys:
            if key.kid in self._keys:
                raise ValueError(f"token key {key.kid} is configured twice")
            public = _load_public(key.public_pem)
            _check_describes(key, public)
            self._keys[key.kid] = (key, public)
        if not self._keys:
            raise ValueError("at least one token key is needed")
        if max_lifetime_seconds <= 0 or leeway_seconds < 0:
            raise ValueError("the token lifetime must be positive and the leeway not negative")
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime_seconds
        self._leeway = min(leeway_seconds, MAX_LEEWAY_SECONDS)
        # Only the allowed algorithms are registered, so no other one can even be looked up.
        self._jws = jwt.PyJWS(algorithms=list(ALGORITHMS))

    def verify(self, token: str, *, now: int | None = None) -> Claims:
        """The claims of a valid token; anything else is ``TokenInvalid``."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid(f"the token is longer than {MAX_TOKEN_LENGTH} bytes")
        if not token.isascii():
            raise TokenInvalid("the token is not a JWT")
        try:
            header = self._jws.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("the token is not a JWT") from None
        key, public = self._choose_key(header)
        try:
            payload_bytes = self._jws.decode(token, public, algorithms=[key.algorithm])
        except jwt.PyJWTError:
            raise TokenInvalid("the token signature does not verify") from None
        try:
            payload = json.loads(payload_bytes)
        except (ValueError, RecursionError):
            raise TokenInvalid("the token claims are not JSON") from None
        if not isinstance(payload, dict):
            raise TokenInvalid("the token claims are not a JSON object")
        return self._check_claims(payload, int(time.time()) if now is None else now)

    def _choose_key(self, header: Mapping[str, Any]) -> tuple[SigningKey, _PublicKey]:
        """Before any crypto: the key named by ``kid``, and only with that key's own algorithm."""
        refused = [name for name in _REFUSED_HEADERS if name in header]
        if refused:
            raise TokenInvalid(f"the token header may not carry {', '.join(refused)}")
        kid = header.get("kid")
        if kid is None and len(self._keys) == 1:
            kid = next(iter(self._keys))
        if not isinstance(kid, str) or kid not in self._keys:
            raise TokenInvalid("the token was not signed by a key this registry knows")
        key, public = self._keys[kid]
        if header.get("alg") != key.algorithm:
            raise TokenInvalid(f"the token algorithm must be {key.algorithm}")
        return key, public

    def _check_claims(self, payload: dict[str, Any], now: int) -> Claims:
        missing = [name for name in _REQUIRED_CLAIMS if name not in payload]
        if missing:
            raise TokenInvalid(f"the token lacks the claims {', '.join(missing)}")
        if payload["iss"] != self._issuer:
            raise TokenInvalid("the token was issued by another issuer")
        audience = payload["aud"]
        if audience != self._audience and not (isinstance(audience, list) and self._audience in audience):
            raise TokenInvalid("the token was issued for another service")
        subject, token_id = payload["sub"], payload["jti"]
        if not isinstance(subject, str) or not isinstance(token_id, str):
            raise TokenInvalid("the token sub and jti claims must be strings")
        expires_at = _numeric_date(payload, "exp")
        not_before = _numeric_date(payload, "nbf")
        issued_at = _numeric_date(payload, "iat")
        if expires_at <= now - self._leeway:
            raise TokenInvalid("the token has expired")
        if not_before > now + self._leeway:
            raise TokenInvalid("the token is not valid yet")
        if issued_at > now + self._leeway:
            raise TokenInvalid("the token was issued in the future")
        if not 0 < expires_at - issued_at <= self._max_lifetime:
            raise TokenInvalid(f"the token lifetime must be between 1 and {self._max_lifetime} seconds")
        try:
            access = grants_from_claim(payload["access"])
        except ScopeInvalid as exc:
            raise TokenInvalid(f"the token access claim is malformed: {exc}") from None
        return Claims(subject, access, issued_at, expires_at, token_id)


def _numeric_date(payload: Mapping[str, Any], name: str) -> int:
    value = payload[name]
    # bool is an int subclass; true would otherwise pass as the time 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenInvalid(f"the token {name} claim must be an integer number of seconds")
    return value


def _signing_key(private: _PrivateKey | None, public: _PublicKey) -> SigningKey:
    algorithm = _algorithm_for(public)
    private_pem = None if private is None else private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(_thumbprint(public), algorithm, private_pem, public_pem)


def _check_describes(key: SigningKey, public: _PublicKey) -> None:
    """A hand-built ``SigningKey`` whose kid or algorithm lies would sign tokens nobody can verify."""
    if (_thumbprint(public), _algorithm_for(public)) != (key.kid, key.algorithm):
        raise ValueError(f"token key {key.kid} has the wrong kid or algorithm for its key")


def _load_private(pem: bytes) -> _PrivateKey:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a usable unencrypted PEM private key: {exc}") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("token keys must be EC P-256 or RSA keys")
    _algorithm_for(private.public_key())
    return private


def _load_public(pem: bytes) -> _PublicKey:
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a usable PEM public key: {exc}") from None
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError("token keys must be EC P-256 or RSA keys")
    _algorithm_for(public)
    return public


def _algorithm_for(public: _PublicKey) -> str:
    """The key type alone decides the algorithm, so a token can never choose a weaker one."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, ec.SECP256R1):
            raise ValueError(f"EC token keys must use the P-256 curve, not {public.curve.name}")
        return "ES256"
    if public.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA token keys need at least {MIN_RSA_BITS} bits, not {public.key_size}")
    return "RS256"


def _jwk_members(public: _PublicKey) -> dict[str, str]:
    """The members RFC 7638 hashes, in its (lexicographic) order."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": _b64(point.x.to_bytes(32, "big")),
                "y": _b64(point.y.to_bytes(32, "big"))}
    numbers = public.public_numbers()
    return {"e": _b64(_unsigned(numbers.e)), "kty": "RSA", "n": _b64(_unsigned(numbers.n))}


def _thumbprint(public: _PublicKey) -> str:
    canonical = json.dumps(_jwk_members(public), sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
