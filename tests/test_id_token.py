"""Unit tests of pyop.id_token: creating ID tokens and verifying id_token_hint values."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.crypto import SigningKey, VerificationKey, b64url_encode, jws_sign, jws_verify
from pyop.id_token import PROTECTED_CLAIMS, create_id_token, verify_id_token_hint

ISSUER = "https://op.example.com"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def key(rsa_private_key: rsa.RSAPrivateKey) -> SigningKey:
    return SigningKey(rsa_private_key, kid="k1")


def half_hash(value: str, hash_fn: Any = hashlib.sha256) -> str:
    digest = hash_fn(value.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def claims_of(token: str, key: SigningKey) -> dict[str, Any]:
    return jws_verify(token, [VerificationKey(key.public_key, key.alg, key.kid)])


class TestCreateIdToken:
    def test_minimal(self, key: SigningKey) -> None:
        token = create_id_token(key, ISSUER, "client", "sub-1", now=NOW, lifetime=300)
        assert claims_of(token, key) == {"iss": ISSUER, "sub": "sub-1", "aud": "client",
                                         "iat": NOW, "exp": NOW + 300}

    def test_all_claims(self, key: SigningKey) -> None:
        token = create_id_token(
            key, ISSUER, "client", "sub-1", now=NOW, lifetime=60, nonce="n", auth_time=NOW - 5,
            acr="urn:acr", amr=("pwd", "otp"), access_token="at-value",
            authorization_code="code-value", claims={"email": "a@b"}, extra_claims={"x": 1})
        claims = claims_of(token, key)
        assert claims == {
            "iss": ISSUER, "sub": "sub-1", "aud": "client", "iat": NOW, "exp": NOW + 60,
            "nonce": "n", "auth_time": NOW - 5, "acr": "urn:acr", "amr": ["pwd", "otp"],
            "at_hash": half_hash("at-value"), "c_hash": half_hash("code-value"),
            "email": "a@b", "x": 1}

    def test_header(self, key: SigningKey) -> None:
        import base64
        import json

        token = create_id_token(key, ISSUER, "c", "s", now=NOW, lifetime=1)
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert header == {"alg": "RS256", "kid": "k1"}

    def test_hash_follows_alg(self) -> None:
        key = SigningKey(ec.generate_private_key(ec.SECP521R1()))
        token = create_id_token(key, ISSUER, "c", "s", now=NOW, lifetime=1, access_token="at",
                                authorization_code="code")
        claims = claims_of(token, key)
        assert claims["at_hash"] == half_hash("at", hashlib.sha512)
        assert claims["c_hash"] == half_hash("code", hashlib.sha512)

    def test_protected_claims_not_overridden(self, key: SigningKey,
                                             caplog: pytest.LogCaptureFixture) -> None:
        forged = {name: "forged" for name in PROTECTED_CLAIMS}
        with caplog.at_level(logging.WARNING, logger="pyop.id_token"):
            token = create_id_token(key, ISSUER, "client", "sub-1", now=NOW, lifetime=10,
                                    nonce="n", claims=forged, extra_claims=forged)
        claims = claims_of(token, key)
        assert claims == {"iss": ISSUER, "sub": "sub-1", "aud": "client", "iat": NOW,
                          "exp": NOW + 10, "nonce": "n"}
        assert "ignoring" in caplog.text

    def test_protected_claims_set(self) -> None:
        assert PROTECTED_CLAIMS == {"iss", "sub", "aud", "exp", "iat", "nonce", "at_hash",
                                    "c_hash", "azp"}

    def test_library_values_win_over_extra(self, key: SigningKey) -> None:
        token = create_id_token(key, ISSUER, "c", "s", now=NOW, lifetime=1, auth_time=7,
                                acr="real", extra_claims={"auth_time": 1, "acr": "fake",
                                                          "amr": ["x"]})
        claims = claims_of(token, key)
        assert claims["auth_time"] == 7 and claims["acr"] == "real"
        assert claims["amr"] == ["x"]  # not supplied by the library: the host's value

    def test_extra_claims_override_user_claims(self, key: SigningKey) -> None:
        token = create_id_token(key, ISSUER, "c", "s", now=NOW, lifetime=1,
                                claims={"name": "user"}, extra_claims={"name": "host"})
        assert claims_of(token, key)["name"] == "host"


class TestVerifyIdTokenHint:
    def make(self, key: SigningKey, **claims: Any) -> str:
        payload = {"iss": ISSUER, "sub": "sub-1", "aud": "client", "iat": 1, "exp": 2}
        payload.update(claims)
        return jws_sign({k: v for k, v in payload.items() if v is not None}, key)

    def test_valid_even_if_expired(self, key: SigningKey) -> None:
        claims = verify_id_token_hint(self.make(key), [key], ISSUER)
        assert claims is not None and claims["sub"] == "sub-1" and claims["exp"] == 2

    def test_issued_token(self, key: SigningKey) -> None:
        token = create_id_token(key, ISSUER, "client", "sub-1", now=NOW, lifetime=1)
        claims = verify_id_token_hint(token, [key], ISSUER)
        assert claims is not None and claims["aud"] == "client"

    def test_list_audience(self, key: SigningKey) -> None:
        claims = verify_id_token_hint(self.make(key, aud=["a", "b"]), [key], ISSUER)
        assert claims is not None and claims["aud"] == ["a", "b"]

    @pytest.mark.parametrize("claims", [
        {"iss": "https://other.example.com"}, {"iss": None}, {"sub": None}, {"sub": 5},
        {"aud": None}, {"aud": 5}, {"aud": []}, {"aud": ["a", 5]},
    ])
    def test_invalid_claims(self, key: SigningKey, claims: dict[str, Any]) -> None:
        assert verify_id_token_hint(self.make(key, **claims), [key], ISSUER) is None

    def test_foreign_key(self, key: SigningKey) -> None:
        other = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        assert verify_id_token_hint(self.make(other), [key], ISSUER) is None

    @pytest.mark.parametrize("hint", [None, 5, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
    def test_garbage(self, key: SigningKey, hint: Any) -> None:
        assert verify_id_token_hint(hint, [key], ISSUER) is None
