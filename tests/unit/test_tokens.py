"""Signing and verifying registry tokens (SPEC.md §5.4), and every token the verifier must refuse."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.auth.scopes import Grant
from dockyard.auth.tokens import (
    MAX_TOKEN_LENGTH,
    IssuedToken,
    SigningKey,
    TokenInvalid,
    TokenIssuer,
    TokenVerifier,
    generate_key,
    jwks,
    load_private_pem,
    load_public_pem,
)

ISSUER = "https://registry.example/token"
AUDIENCE = "registry.example"
NOW = 1_700_000_000
LIFETIME = 300
KEY = generate_key("ES256")
PULL = Grant("repository", "alice/app", ("pull",))

# RFC 7638 §3.1: this RSA key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
RFC_7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj"
    "hMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
    "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def segment(value: object) -> str:
    return b64(json.dumps(value).encode())


def make_issuer(key: SigningKey = KEY, *, audience: str = AUDIENCE, issuer: str = ISSUER,
                lifetime: int = LIFETIME) -> TokenIssuer:
    return TokenIssuer(key, issuer=issuer, audience=audience, lifetime_seconds=lifetime)


def make_verifier(*keys: SigningKey, max_lifetime: int = 600, leeway: int = 60) -> TokenVerifier:
    return TokenVerifier(keys or (KEY,), issuer=ISSUER, audience=AUDIENCE, max_lifetime_seconds=max_lifetime,
                         leeway_seconds=leeway)


def payload(**changes: Any) -> dict[str, Any]:
    """Valid claims for NOW; a change to ``None`` drops that claim."""
    claims = {"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": NOW + LIFETIME, "nbf": NOW, "iat": NOW,
              "jti": "a-token-id", "access": [PULL.to_claim()], **changes}
    return {name: value for name, value in claims.items() if value is not None}


def sign(claims: dict[str, Any], key: SigningKey = KEY, *, headers: dict[str, Any] | None = None) -> str:
    """Claims signed as they are: ``jwt.encode`` would refuse some of the malformed ones."""
    assert key.private_pem is not None
    return jwt.PyJWS().encode(json.dumps(claims).encode(), key.private_pem, algorithm=key.algorithm,
                              headers={"kid": key.kid} if headers is None else headers)


def refuse(token: str, match: str | None = None, *, now: int = NOW, verifier: TokenVerifier | None = None) -> None:
    with pytest.raises(TokenInvalid, match=match):
        (verifier or make_verifier()).verify(token, now=now)


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_a_token_round_trips(algorithm: str) -> None:
    key = generate_key(algorithm)
    issued = make_issuer(key).issue("alice", [PULL], now=NOW)
    assert issued == IssuedToken(issued.token, NOW, LIFETIME)
    assert jwt.get_unverified_header(issued.token) == {"alg": algorithm, "typ": "JWT", "kid": key.kid}

    claims = make_verifier(key).verify(issued.token, now=NOW + 10)

    assert (claims.subject, claims.access, claims.issued_at, claims.expires_at) == ("alice", (PULL,), NOW, NOW + 300)


def test_issued_claims_follow_the_token_spec() -> None:
    first, second = (make_issuer().issue("", [], now=NOW).token for _ in range(2))
    claims = json.loads(unb64(first.split(".")[1]))
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": ISSUER, "sub": "", "aud": AUDIENCE, "exp": NOW + LIFETIME, "nbf": NOW, "iat": NOW, "access": []}
    assert len(unb64(claims["jti"])) >= 16
    assert make_verifier().verify(first, now=NOW).token_id != make_verifier().verify(second, now=NOW).token_id


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    numbers = rsa.RSAPublicNumbers(65537, int.from_bytes(unb64(RFC_7638_N), "big"))
    pem = numbers.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    key = load_public_pem(pem)
    assert (key.kid, key.algorithm, key.private_pem) == ("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "RS256", None)
    assert key.public_jwk()["n"] == RFC_7638_N


def test_the_kid_is_stable_and_differs_between_keys() -> None:
    assert load_private_pem(KEY.private_pem or b"").kid == KEY.kid
    assert load_public_pem(KEY.public_pem).kid == KEY.kid
    assert generate_key().kid != KEY.kid


def test_jwks_lists_public_keys_that_verify_issued_tokens() -> None:
    rsa_key = generate_key("RS256")
    document = jwks([KEY, rsa_key])
    ec_jwk, rsa_jwk = document["keys"]
    assert ec_jwk.keys() == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (ec_jwk["kty"], ec_jwk["crv"], ec_jwk["kid"], ec_jwk["alg"], ec_jwk["use"]) == \
        ("EC", "P-256", KEY.kid, "ES256", "sig")
    assert rsa_jwk.keys() == {"kty", "n", "e", "kid", "alg", "use"}
    assert (rsa_jwk["kty"], rsa_jwk["e"], rsa_jwk["kid"], rsa_jwk["alg"]) == ("RSA", "AQAB", rsa_key.kid, "RS256")
    for key, jwk in ((KEY, ec_jwk), (rsa_key, rsa_jwk)):   # an independent reader of the JWKS agrees
        token = make_issuer(key).issue("alice", [PULL]).token
        assert jwt.decode(token, jwt.PyJWK(jwk), audience=AUDIENCE)["sub"] == "alice"


@pytest.mark.parametrize("private", [
    ec.generate_private_key(ec.SECP256R1()),
    rsa.generate_private_key(public_exponent=65537, key_size=2048),
])
@pytest.mark.parametrize("form", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_load_private_pem_round_trips(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
                                      form: serialization.PrivateFormat) -> None:
    pem = private.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
    key = load_private_pem(pem)
    assert key.algorithm == ("ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256")
    assert (key.private_pem or b"").startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_private_pem(key.private_pem or b"") == key
    assert load_public_pem(key.public_pem) == SigningKey(key.kid, key.algorithm, None, key.public_pem)


@pytest.mark.parametrize(("private", "match"), [
    (ec.generate_private_key(ec.SECP384R1()), "P-256"),
    (rsa.generate_private_key(public_exponent=65537, key_size=1024), "2048"),
    (ed25519.Ed25519PrivateKey.generate(), "EC P-256 or RSA"),
])
def test_load_private_pem_refuses_other_keys(private: Any, match: str) -> None:
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with pytest.raises(ValueError, match=match):
        load_private_pem(pem)
    with pytest.raises(ValueError, match=match):
        load_public_pem(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))


def test_load_private_pem_refuses_garbage_and_encrypted_keys() -> None:
    with pytest.raises(ValueError, match="PEM private key"):
        load_private_pem(b"not a key")
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(ValueError, match="unencrypted"):
        load_private_pem(encrypted)


def test_generate_key_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError, match="ES256, RS256"):
        generate_key("HS256")


def test_a_verify_only_key_verifies_but_cannot_sign() -> None:
    public = load_public_pem(KEY.public_pem)
    with pytest.raises(ValueError, match="verify-only"):
        make_issuer(public)
    assert make_verifier(public).verify(make_issuer().issue("alice", [PULL], now=NOW).token, now=NOW).subject == "alice"


def test_keys_whose_kid_or_algorithm_lies_are_refused() -> None:
    with pytest.raises(ValueError, match="wrong kid"):
        make_issuer(SigningKey("made-up", KEY.algorithm, KEY.private_pem, KEY.public_pem))
    with pytest.raises(ValueError, match="wrong kid"):
        make_verifier(SigningKey(KEY.kid, "RS256", None, KEY.public_pem))
    with pytest.raises(ValueError, match="twice"):
        make_verifier(KEY, KEY)


# --- what a valid token grants ------------------------------------------------------------------


def test_a_token_for_another_repository_grants_only_that_repository() -> None:
    other = Grant("repository", "bob/tools", ("pull", "push"))
    token = make_issuer().issue("alice", [other], now=NOW).token
    assert make_verifier().verify(token, now=NOW).access == (other,)


def test_a_missing_kid_uses_the_only_key_but_not_one_of_several() -> None:
    token = sign(payload(), headers={})
    assert make_verifier().verify(token, now=NOW).subject == "alice"
    refuse(token, "not signed by a key", verifier=make_verifier(KEY, generate_key()))


def test_a_list_audience_naming_this_service_is_accepted() -> None:
    token = sign(payload(aud=["elsewhere", AUDIENCE]))
    assert make_verifier().verify(token, now=NOW).subject == "alice"


@pytest.mark.parametrize(("offset", "is_valid"), [(LIFETIME - 1, True), (LIFETIME + 59, True), (LIFETIME + 60, False),
                                                  (LIFETIME + 61, False), (10_000, False)])
def test_an_expired_token_is_accepted_only_within_the_leeway(offset: int, is_valid: bool) -> None:
    token = make_issuer().issue("alice", [PULL], now=NOW).token
    if is_valid:
        assert make_verifier().verify(token, now=NOW + offset).subject == "alice"
    else:
        refuse(token, "expired", now=NOW + offset)


def test_the_leeway_is_capped_at_sixty_seconds() -> None:
    token = make_issuer().issue("alice", [PULL], now=NOW).token
    refuse(token, "expired", now=NOW + LIFETIME + 61, verifier=make_verifier(leeway=3600))


# --- refusals: algorithm and key choice ---------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS256", "ES384", "ES512", "PS256", "RS256", "EdDSA", "", 7])
def test_any_algorithm_but_the_keys_own_is_refused(alg: object) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": KEY.kid}
    refuse(f"{segment(header)}.{segment(payload())}.", "algorithm must be ES256")


def test_a_token_without_alg_is_refused() -> None:
    refuse(f"{segment({'kid': KEY.kid})}.{segment(payload())}.", "algorithm")


@pytest.mark.parametrize(("alg", "digest"), [("HS256", hashlib.sha256), ("HS384", hashlib.sha384),
                                             ("HS512", hashlib.sha512)])
def test_hmac_signed_with_the_public_key_is_refused(alg: str, digest: Any) -> None:
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT', 'kid': KEY.kid})}.{segment(payload())}"
    mac = hmac.new(KEY.public_pem, signing_input.encode(), digest).digest()
    refuse(f"{signing_input}.{b64(mac)}", "algorithm must be ES256")


def test_a_token_signed_by_another_key_with_our_kid_is_refused() -> None:
    refuse(sign(payload(), generate_key(), headers={"kid": KEY.kid}), "signature")


def test_an_unknown_kid_is_refused() -> None:
    attacker = generate_key()
    refuse(sign(payload(), attacker), "not signed by a key")
    refuse(f"{segment({'alg': 'ES256', 'kid': 17})}.{segment(payload())}.")


def test_a_header_jwk_is_refused() -> None:
    attacker = generate_key()
    refuse(sign(payload(), attacker, headers={"kid": attacker.kid, "jwk": attacker.public_jwk()}), "jwk")
    refuse(sign(payload(), attacker, headers={"jwk": attacker.public_jwk()}), "jwk")


@pytest.mark.parametrize("name", ["jku", "x5u"])
def test_a_header_key_url_is_refused_even_on_a_good_signature(name: str) -> None:
    refuse(sign(payload(), headers={"kid": KEY.kid, name: "https://attacker.example/keys"}), name)


def test_a_header_x5c_with_a_self_signed_certificate_is_refused() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry.example")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(start)
                   .not_valid_after(start + datetime.timedelta(days=365)).sign(private, hashes.SHA256()))
    chain = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]
    token = jwt.encode(payload(), private, algorithm="ES256", headers={"kid": KEY.kid, "x5c": chain})
    refuse(token, "x5c")


def test_critical_header_extensions_are_refused() -> None:
    refuse(sign(payload(), headers={"kid": KEY.kid, "crit": ["exp"], "exp": 1}))
    refuse(sign(payload(), headers={"kid": KEY.kid, "b64": False, "crit": ["b64"]}))


# --- refusals: claims ---------------------------------------------------------------------------


def test_a_wrong_audience_is_refused() -> None:
    refuse(make_issuer(audience="other.example").issue("alice", [PULL], now=NOW).token, "another service")
    refuse(sign(payload(aud=["other.example"])), "another service")


def test_a_wrong_issuer_is_refused() -> None:
    refuse(make_issuer(issuer="https://attacker.example").issue("alice", [PULL], now=NOW).token, "another issuer")


def test_a_token_not_yet_valid_is_refused_beyond_the_leeway() -> None:
    refuse(sign(payload(nbf=NOW + 61)), "not valid yet")
    assert make_verifier().verify(sign(payload(nbf=NOW + 60)), now=NOW).subject == "alice"


def test_a_token_issued_in_the_future_is_refused() -> None:
    refuse(sign(payload(iat=NOW + 120, exp=NOW + 400)), "issued in the future")


def test_a_lifetime_above_the_cap_is_refused() -> None:
    refuse(make_issuer(lifetime=3600).issue("alice", [PULL], now=NOW).token, "lifetime", now=NOW + 10)
    refuse(sign(payload(iat=NOW, exp=NOW)), "lifetime")    # already over when issued


def test_a_tampered_access_claim_is_refused() -> None:
    header, _, signature = make_issuer().issue("alice", [PULL], now=NOW).token.split(".")
    forged = payload(access=[Grant("repository", "alice/app", ("pull", "push")).to_claim()])
    refuse(f"{header}.{segment(forged)}.{signature}", "signature")


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "nbf", "iat", "sub", "jti", "access"])
def test_a_missing_required_claim_is_refused(claim: str) -> None:
    refuse(sign(payload(**{claim: None})), f"lacks the claims {claim}")


@pytest.mark.parametrize("access", [
    "repository:alice/app:pull",
    {"type": "repository", "name": "alice/app", "actions": ["pull"]},
    [None],
    ["repository:alice/app:pull"],
    [{"type": "repository", "name": "alice/app"}],
    [{"type": "repository", "name": "alice/app", "actions": "pull"}],
    [{"type": "repository", "name": 7, "actions": ["pull"]}],
    [{"type": "repository", "name": "alice/app", "actions": [1]}],
])
def test_a_malformed_access_claim_is_refused(access: object) -> None:
    refuse(sign(payload(access=access)), "access claim is malformed")


@pytest.mark.parametrize("changes", [
    {"sub": 7}, {"jti": ["x"]}, {"exp": str(NOW + 300)}, {"exp": float(NOW + 300)}, {"iat": True}, {"nbf": [NOW]},
])
def test_claims_of_the_wrong_type_are_refused(changes: dict[str, object]) -> None:
    refuse(sign(payload(**changes)), "must be")


# --- refusals: size and shape -------------------------------------------------------------------


def test_an_oversized_token_is_refused_before_anything_else() -> None:
    token = sign(payload(padding="x" * MAX_TOKEN_LENGTH))
    refuse(token, "longer than 8192")


def test_the_issuer_will_not_sign_a_token_too_long_to_verify() -> None:
    grants = [Grant("repository", f"team/{'x' * 200}-{n}", ("pull", "push")) for n in range(64)]
    with pytest.raises(ValueError, match="longer than 8192"):
        make_issuer().issue("alice", grants)


@pytest.mark.parametrize("token", [
    "", ".", "..", "...", "a", "a.b", "a.b.c.d", "!!!.###.$$$", "é.é.é", "\ud800.a.b",
    f"{segment([1, 2])}.{segment(payload())}.",
    f"{segment('header')}.{segment(payload())}.",
    f"{b64(b'{not json')}.{segment(payload())}.",
    f"{segment({'alg': 'ES256', 'kid': KEY.kid})}.{segment(payload())}.",          # no signature
    f"{segment({'alg': 'ES256', 'kid': KEY.kid})}.{segment(payload())}.!!!!",      # signature not base64
])
def test_garbage_is_refused(token: str) -> None:
    refuse(token)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe", b"[" * 5000])
def test_a_good_signature_over_claims_that_are_not_an_object_is_refused(body: bytes) -> None:
    assert KEY.private_pem is not None
    token = jwt.PyJWS().encode(body, KEY.private_pem, algorithm="ES256", headers={"kid": KEY.kid})
    refuse(token, "claims are not")


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10)


def _base64_segments() -> st.SearchStrategy[str]:
    algorithms = st.sampled_from(["ES256", "RS256", "none", "HS256"]) | _json_values()
    headers = st.fixed_dictionaries({}, optional={"alg": algorithms, "kid": st.just(KEY.kid) | _json_values(),
                                                  "crit": _json_values(), "b64": _json_values()})
    raw = st.binary(max_size=200) | _json_values().map(json.dumps).map(str.encode) \
        | headers.map(json.dumps).map(str.encode)
    return st.lists(raw.map(b64), min_size=1, max_size=5).map(".".join)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | _base64_segments())
def test_arbitrary_input_only_ever_raises_token_invalid(token: str) -> None:
    with pytest.raises(TokenInvalid):
        make_verifier().verify(token, now=NOW)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={name: st.just(value) | _json_values() for name, value in payload().items()}))
def test_arbitrary_claims_under_a_good_signature_are_accepted_or_token_invalid(claims: dict[str, Any]) -> None:
    try:
        verified = make_verifier().verify(sign(claims), now=NOW)
    except TokenInvalid:
        return
    assert (verified.subject, verified.token_id, verified.expires_at) == (claims["sub"], claims["jti"], claims["exp"])
