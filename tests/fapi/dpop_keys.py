"""A DPoP client key for the tests: makes proofs (RFC 9449 4.2), well-formed or not."""

from __future__ import annotations

import json
import secrets
from typing import Any, Optional

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pyop.crypto import SigningKey, b64url_encode, jwk_thumbprint
from pyop.dpop import access_token_hash

__all__ = ["DPoPKey", "make_jws"]


def make_jws(header: dict[str, Any], claims: Any, key: Optional[SigningKey]) -> str:
    """A compact JWS of ``claims`` (a dict, or raw JSON text) with ``header`` as given,
    signed by ``key`` (an empty signature without one)."""
    payload = claims if isinstance(claims, str) else json.dumps(claims)
    signing_input = (b64url_encode(json.dumps(header).encode()) + "."
                     + b64url_encode(payload.encode()))
    signature = key.sign(signing_input.encode("ascii")) if key is not None else b""
    return signing_input + "." + b64url_encode(signature)


class DPoPKey:
    """A client's DPoP key pair."""

    def __init__(self, kind: str = "EC", alg: Optional[str] = None) -> None:
        private: Any
        if kind == "EC":
            private = ec.generate_private_key(ec.SECP256R1())
        elif kind == "RSA":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        self.key = SigningKey(private, alg)
        self.alg = self.key.alg
        self.jwk: dict[str, Any] = dict(self.key.public_jwk)

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(self.jwk)

    def proof(self, htm: str, htu: str, iat: Any, *, access_token: Optional[str] = None,
              nonce: Optional[str] = None, jti: Optional[str] = None,
              header: Optional[dict[str, Any]] = None, drop: tuple[str, ...] = (),
              signer: Optional[SigningKey] = None, **claims: Any) -> str:
        """A proof of this key; ``header`` members override the defaults, ``drop`` names
        claims or header members to leave out, ``signer`` signs instead of this key."""
        head: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}
        head.update(header or {})
        body: dict[str, Any] = {"jti": jti or secrets.token_urlsafe(16), "htm": htm,
                                "htu": htu, "iat": iat}
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        if nonce is not None:
            body["nonce"] = nonce
        body.update(claims)
        for name in drop:
            head.pop(name, None)
            body.pop(name, None)
        return make_jws(head, body, signer or self.key)
