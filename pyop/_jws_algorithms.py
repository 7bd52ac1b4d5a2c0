"""The JWS signature algorithms on ``cryptography`` (OpenSSL) keys: RS*, PS* and ES*
(RFC 7518 3.3-3.5), EdDSA (RFC 8037 3.1) and its fully-specified form Ed25519 (RFC 9864
2.2), their hashes and curves; what :mod:`pyop.crypto` signs and verifies with.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from typing import Any, Callable, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

logger = logging.getLogger(__name__)

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]
PublicKey = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey]

HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
HASHLIB = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def builtin_sha256() -> Callable[..., Any]:
    """SHA-256 for the short values of :func:`pyop.crypto.left_hash`: the interpreter's own
    implementation (``_sha2`` from Python 3.12, ``_sha256`` before) when it has one, which
    has no OpenSSL digest to fetch and set up per value; else hashlib's."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256  # pragma: no cover - an interpreter without either module


sha256 = builtin_sha256()
SHA256_ALGS = frozenset(["RS256", "PS256", "ES256", "HS256"])
#: The JWS algs of Ed25519 signatures: the polymorphic EdDSA (RFC 8037 3.1, with the key's
#: ``crv`` naming the curve) and the fully-specified Ed25519 (RFC 9864 2.2), which is
#: EdDSA with the Ed25519 parameter set only: the same signature bytes (RFC 8032 5.1).
ED25519_ALGS = frozenset(["EdDSA", "Ed25519"])
CURVES: dict[str, tuple[type[ec.EllipticCurve], str, int]] = {
    "P-256": (ec.SECP256R1, "ES256", 32),
    "P-384": (ec.SECP384R1, "ES384", 48),
    "P-521": (ec.SECP521R1, "ES512", 66),
}


def default_alg(key: Union[PrivateKey, PublicKey]) -> str:
    """The alg a key signs with when none is given: RS256, the ES* of its curve, EdDSA."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RS256"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        for curve_cls, alg, _size in CURVES.values():
            if isinstance(key.curve, curve_cls):
                return alg
    return "EdDSA"


def verify_signature(key: PublicKey, alg: str, signing_input: bytes,
                     signature: bytes) -> bool:
    """Check one raw JWS signature of ``alg`` made with the private half of ``key``
    (RFC 7518 3.3-3.5, RFC 8037 3.1, RFC 9864 2.2: ``Ed25519`` only with an Ed25519 key);
    never raises on a bad signature."""
    try:
        if alg.startswith("RS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), HASHES[alg[2:]]())
        elif alg.startswith("PS") and isinstance(key, rsa.RSAPublicKey):
            h = HASHES[alg[2:]]()
            key.verify(signature, signing_input,
                       padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        elif alg.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signing_input,
                       ec.ECDSA(HASHES[alg[2:]]()))
        elif alg in ED25519_ALGS and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signing_input)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def signer(key: PrivateKey, alg: str) -> Callable[[bytes], bytes]:
    """``signing_input -> raw JWS signature`` for ``key`` and ``alg`` (RFC 7518 3.3-3.5,
    RFC 8037 3.1, RFC 9864 2.2), with the padding and hash objects made once."""
    if isinstance(key, rsa.RSAPrivateKey):
        h = HASHES[alg[2:]]()
        rsa_padding: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
            if alg.startswith("PS") else padding.PKCS1v15())
        rsa_key = key
        return lambda signing_input: rsa_key.sign(signing_input, rsa_padding, h)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        ecdsa = ec.ECDSA(HASHES[alg[2:]]())
        ec_key = key

        def sign_ec(signing_input: bytes) -> bytes:
            # DER (r, s) to the fixed-size R || S of RFC 7518 3.4
            r, s = decode_dss_signature(ec_key.sign(signing_input, ecdsa))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        return sign_ec
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("only RSA, EC and Ed25519 keys sign")
    ed_key = key
    return lambda signing_input: ed_key.sign(signing_input)
