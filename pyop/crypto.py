"""JWS signing and verification through ``cryptography`` (OpenSSL).

pyjwkest key objects (``jwkest.jwk.RSAKey``, ``ECKey``) are what hosts pass
in; they are converted once, at construction, into ``cryptography`` key
objects, so every signature of the hot path goes through OpenSSL.

Implements the JWS Compact Serialization (RFC 7515 3.1, 7.1) for the
algorithms of RFC 7518 3.3-3.5 (RS*, PS*, ES*), EdDSA (RFC 8037) and the fully-specified
Ed25519 (RFC 9864 2.2).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, TypeVar, Union

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ._jws_algorithms import (
    CURVES,
    ED25519_ALGS,
    HASHLIB,
    SHA256_ALGS,
    PrivateKey,
    PublicKey,
    default_alg,
    sha256,
    signer,
    verify_signature,
)
from .util import json_encode_function

__all__ = [
    "JWSError",
    "SigningKey",
    "VerificationKey",
    "b64url_encode",
    "b64url_decode",
    "left_hash",
    "hash_for_alg",
    "jws_sign",
    "jws_verify",
    "jwk_thumbprint",
]

_K = TypeVar("_K", bound="VerificationKey")

#: The asymmetric JWS algorithms signed and verified (RFC 7518 3.3-3.5, RFC 8037 3.1,
#: RFC 9864 2.2).
SUPPORTED_ALGS = frozenset(
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
     "Ed25519"]
)
#: Algorithms of :data:`SUPPORTED_ALGS` accepted only where a host lists them (e.g. in
#: ``dpop_signing_alg_values_supported``), never in a list derived from
#: :data:`SUPPORTED_ALGS` (so discovery defaults stay those of earlier releases): the
#: fully-specified ``Ed25519`` of RFC 9864 2.2, the same signatures as ``EdDSA`` with an
#: Ed25519 key.
OPT_IN_ALGS = frozenset(["Ed25519"])


class JWSError(ValueError):
    """A JWS could not be parsed or its signature did not verify."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(data: Union[str, bytes]) -> bytes:
    """Decode base64url with or without padding; :class:`JWSError` on bad input."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError as e:
            raise JWSError("not base64url") from e
    if b"=" in data or b"+" in data or b"/" in data:
        raise JWSError("not base64url")
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as e:
        raise JWSError("not base64url") from e


def _b64_int(value: Union[str, int]) -> int:
    if isinstance(value, int):
        return value
    return int.from_bytes(b64url_decode(value), "big")


def _int_b64(value: int, length: Optional[int] = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


def hash_for_alg(alg: str) -> Callable[..., Any]:
    """The hashlib constructor used by a JWS alg (OIDC Core 3.3.2.11; EdDSA and Ed25519,
    whose signatures hash with SHA-512 (RFC 8032 5.1): SHA-512)."""
    if alg in ED25519_ALGS:
        return hashlib.sha512
    try:
        return HASHLIB[alg[-3:]]
    except KeyError as e:
        raise JWSError(f"unsupported alg {alg}") from e


def left_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash``: base64url of the left half of the hash (OIDC Core 3.3.2.11)."""
    digest = (sha256 if alg in SHA256_ALGS else hash_for_alg(alg))(
        value.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """JWK thumbprint (RFC 7638) with SHA-256, base64url."""
    kty = jwk["kty"]
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    required = {m: jwk[m] for m in members[kty]}
    data = json.dumps(required, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return b64url_encode(hashlib.sha256(data).digest())


#: JWK members of private (and symmetric) keys, never published (RFC 7518 6.2.2, 6.3.2, 6.4).
_PRIVATE_JWK_MEMBERS = frozenset(("d", "p", "q", "dp", "dq", "qi", "oth", "k"))


def _public_jwk_of(public_key: PublicKey) -> dict[str, Any]:
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        pn = public_key.public_numbers()
        for crv, (curve_cls, _alg, size) in CURVES.items():
            if isinstance(public_key.curve, curve_cls):
                return {"kty": "EC", "crv": crv,
                        "x": _int_b64(pn.x, size), "y": _int_b64(pn.y, size)}
        raise JWSError("unsupported curve")  # pragma: no cover
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    raise JWSError("unsupported key type")  # pragma: no cover


def _private_key_from_jwk(jwk: Mapping[str, Any]) -> PrivateKey:
    kty = jwk.get("kty")
    if kty == "RSA":
        n, e, d = _b64_int(jwk["n"]), _b64_int(jwk["e"]), _b64_int(jwk["d"])
        if jwk.get("p") and jwk.get("q"):
            p, q = _b64_int(jwk["p"]), _b64_int(jwk["q"])
        else:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(e, n),
        )
        return numbers.private_key()
    if kty == "EC":
        curve_cls = CURVES[jwk["crv"]][0]
        public = ec.EllipticCurvePublicNumbers(_b64_int(jwk["x"]), _b64_int(jwk["y"]), curve_cls())
        return ec.EllipticCurvePrivateNumbers(_b64_int(jwk["d"]), public).private_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(jwk["d"]))
    raise JWSError(f"unsupported private key type {kty}")


def _public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    kty = jwk.get("kty")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_b64_int(jwk["e"]), _b64_int(jwk["n"])).public_key()
    if kty == "EC":
        curve_cls = CURVES[jwk["crv"]][0]
        return ec.EllipticCurvePublicNumbers(
            _b64_int(jwk["x"]), _b64_int(jwk["y"]), curve_cls()
        ).public_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    raise JWSError(f"unsupported public key type {kty}")


def _jwk_of_jwkest(key: Any, private: bool) -> dict[str, Any]:
    """Serialise a pyjwkest key object to a JWK dict (ints as base64url)."""
    jwk = dict(key.serialize(private=private))
    for name, value in list(jwk.items()):
        if isinstance(value, int) and name not in ("kty",):
            jwk[name] = _int_b64(value)
    return jwk


def _check_alg_fits(key: PublicKey, alg: str) -> None:
    """RS*/PS* need an RSA key, ES* the curve of RFC 7518 3.4, EdDSA and Ed25519 an Ed25519
    key (RFC 8037 3.1, RFC 9864 2.2)."""
    if isinstance(key, rsa.RSAPublicKey):
        fits = alg[:2] in ("RS", "PS")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        fits = alg == default_alg(key)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        fits = alg in ED25519_ALGS
    else:  # pragma: no cover - no other key type is built
        fits = False
    if not fits:
        raise JWSError(f"alg {alg} does not fit this key type")


class VerificationKey:
    """A public key that verifies JWS signatures of one algorithm."""

    def __init__(self, public_key: PublicKey, alg: Optional[str] = None,
                 kid: Optional[str] = None, *, source_jwk: Optional[Mapping[str, Any]] = None):
        self.public_key = public_key
        self.alg = alg or default_alg(public_key)
        if self.alg not in SUPPORTED_ALGS:
            raise JWSError(f"unsupported alg {self.alg}")
        self.public_jwk: dict[str, Any] = _public_jwk_of(public_key)
        #: The key id, or None: a key without one is published and signs without one
        #: (RFC 7515 4.1.4 and RFC 7517 4.5 make ``kid`` optional).
        self.kid: Optional[str] = kid or None
        #: The public JWK members as the key was given (a pyjwkest key's serialisation or a
        #: JWK dict), published by :meth:`to_jwk`; None for ``cryptography`` keys.
        self.source_jwk: Optional[dict[str, Any]] = None if source_jwk is None else {
            name: value for name, value in source_jwk.items()
            if name not in _PRIVATE_JWK_MEMBERS and value is not None}
        self._thumbprint: Optional[str] = None

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key."""
        if self._thumbprint is None:
            self._thumbprint = jwk_thumbprint(self.public_jwk)
        return self._thumbprint

    def with_thumbprint_kid(self: _K) -> _K:
        """This key if it has a kid, else a copy whose ``kid`` is its RFC 7638 thumbprint."""
        if self.kid is not None:
            return self
        key = copy.copy(self)
        key.kid = self.thumbprint
        key._kid_changed()
        return key

    def _kid_changed(self) -> None:
        """Hook for subclasses caching what depends on the kid."""

    def matches_kid(self, kid: Any) -> bool:
        """Whether a JWS header ``kid`` names this key: its own kid, or, for a key without
        one, its RFC 7638 thumbprint (what earlier releases published as its kid)."""
        if self.kid is not None:
            return bool(kid == self.kid)
        return isinstance(kid, str) and kid == self.thumbprint

    @classmethod
    def from_key(cls, key: Any) -> VerificationKey:
        """Accept any key a provider may publish for verification.

        A :class:`VerificationKey` (or :class:`SigningKey`) is returned as is; a
        ``cryptography`` public or private key gets the default alg of its type
        (RS256 for RSA, ES256/384/512 by curve, EdDSA for Ed25519: give ``Ed25519``
        explicitly for the fully-specified alg of RFC 9864); a JWK dict
        (RFC 7517 4) or a pyjwkest key keeps its ``alg``, its ``kid`` (none if it has
        none: see :meth:`with_thumbprint_kid`) and, for :meth:`to_jwk`, its public
        members as given. Only the public key is kept.

        :raises JWSError: an unsupported key type, or an alg that does not fit the
            key (RFC 7518 3.3-3.5, RFC 8037 3.1).
        """
        if isinstance(key, VerificationKey):
            result = key
        elif isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                              ed25519.Ed25519PrivateKey)):
            result = cls(key.public_key())
        elif isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                              ed25519.Ed25519PublicKey)):
            result = cls(key)
        elif isinstance(key, Mapping):
            result = cls.from_jwk(key)
        else:
            try:
                jwk = _jwk_of_jwkest(key, private=False)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise JWSError("unsupported key type") from e
            jwk["alg"] = getattr(key, "alg", None) or None
            jwk["kid"] = getattr(key, "kid", None) or None
            result = cls.from_jwk(jwk)
            result.source_jwk = _jwk_of_jwkest(key, private=False)
        _check_alg_fits(result.public_key, result.alg)
        return result

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> VerificationKey:
        """Build from a public JWK dict (RFC 7517)."""
        try:
            return cls(_public_key_from_jwk(jwk), jwk.get("alg"), jwk.get("kid"),
                       source_jwk=jwk)
        except (KeyError, TypeError, ValueError) as e:
            raise JWSError("invalid JWK") from e

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Check one signature made with :attr:`alg`; never raises on a bad signature."""
        return verify_signature(self.public_key, self.alg, signing_input, signature)

    def to_jwk(self) -> dict[str, Any]:
        """The public JWK to publish (RFC 7517 4).

        A key given as a pyjwkest key or a JWK dict is published as given (its public
        members only, e.g. a ``jwkest.jwk.RSAKey``'s ``serialize()``), with :attr:`kid`
        set when it has one; a ``cryptography`` key gets ``use: "sig"``, its ``alg`` and,
        when it has one, its ``kid``.
        """
        if self.source_jwk is not None:
            jwk = dict(self.source_jwk)
            if self.kid is None:
                jwk.pop("kid", None)
            elif jwk.get("kid") != self.kid:
                jwk["kid"] = self.kid
            return jwk
        jwk = dict(self.public_jwk)
        jwk.update({"use": "sig", "alg": self.alg})
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk


class SigningKey(VerificationKey):
    """A private signing key, converted once from pyjwkest or taken from ``cryptography``.

    :param private_key: a ``cryptography`` private key.
    :param alg: the JWS alg (defaults: RS256 for RSA, ES256/384/512 by curve, EdDSA; an
        Ed25519 key also signs as ``Ed25519``, RFC 9864 2.2).
    :param kid: key id; none by default (then the JWS header has no ``kid``; see
        :meth:`~VerificationKey.with_thumbprint_kid`).
    :param source_jwk: the public JWK members as given, published by :meth:`to_jwk`.
    """

    def __init__(self, private_key: PrivateKey, alg: Optional[str] = None,
                 kid: Optional[str] = None, *,
                 source_jwk: Optional[Mapping[str, Any]] = None) -> None:
        self.private_key = private_key
        super().__init__(private_key.public_key(), alg or default_alg(private_key), kid,
                         source_jwk=source_jwk)
        if isinstance(private_key, rsa.RSAPrivateKey) and self.alg[:2] not in ("RS", "PS"):
            raise JWSError(f"alg {self.alg} does not fit an RSA key")
        if isinstance(private_key, ec.EllipticCurvePrivateKey) and self.alg != default_alg(
            private_key
        ):
            raise JWSError(f"alg {self.alg} does not fit this EC curve")
        if isinstance(private_key, ed25519.Ed25519PrivateKey) and self.alg not in ED25519_ALGS:
            raise JWSError(f"alg {self.alg} does not fit an Ed25519 key (RFC 8037 3.1, "
                           "RFC 9864 2.2)")
        self._sign = signer(private_key, self.alg)
        self._signer_alg = self.alg
        #: base64url JWS header segments already encoded, by alg, kid and extra members
        self._header_segments: dict[tuple[Any, ...], str] = {}

    def _kid_changed(self) -> None:
        self._header_segments = {}  # a copy's own cache (see with_thumbprint_kid)

    def header_segment(self, headers: Optional[Mapping[str, Any]] = None) -> str:
        """The base64url JWS Protected Header ``{"alg", "kid", **headers}`` (RFC 7515 7.1),
        encoded once per distinct alg, kid and ``headers`` (at most 32 kept). A key
        without a kid gives ``{"alg", **headers}``."""
        # (the type too: True == 1 and 1 == 1.0 are equal keys, not equal headers)
        cache_key = (self.alg, self.kid, *(
            (k, v.__class__, v) for k, v in (headers.items() if headers else ())))
        try:
            return self._header_segments[cache_key]
        except KeyError:
            cacheable = True
        except TypeError:  # an unhashable header value: not cached
            cacheable = False
        header: dict[str, Any] = {"alg": self.alg}
        if self.kid is not None:
            header["kid"] = self.kid
        if headers:
            header.update(headers)
        segment = b64url_encode(_COMPACT_ENCODER.encode(header).encode("utf-8"))
        if cacheable and len(self._header_segments) < 32:
            self._header_segments[cache_key] = segment
        return segment

    @classmethod
    def from_jwkest(cls, key: Any) -> SigningKey:
        """Convert a ``jwkest.jwk.RSAKey`` / ``ECKey`` holding a private key."""
        try:
            jwk = _jwk_of_jwkest(key, private=True)
            private_key = _private_key_from_jwk(jwk)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise JWSError("the signing key must be a private RSA or EC key") from e
        try:
            source = _jwk_of_jwkest(key, private=False)
        except (KeyError, TypeError, ValueError, AttributeError):  # pragma: no cover
            source = None
        return cls(private_key, getattr(key, "alg", None) or None,
                   getattr(key, "kid", None) or None, source_jwk=source)

    @classmethod
    def from_key(cls, key: Any) -> SigningKey:
        """Accept a :class:`SigningKey`, a ``cryptography`` private key or a pyjwkest key."""
        if isinstance(key, SigningKey):
            return key
        if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey)):
            return cls(key)
        return cls.from_jwkest(key)

    def sign(self, signing_input: bytes) -> bytes:
        """Raw JWS signature of ``signing_input`` (RFC 7518 3)."""
        if self._signer_alg != self.alg:  # the alg attribute was changed: follow it
            self._sign = signer(self.private_key, self.alg)
            self._signer_alg = self.alg
        return self._sign(signing_input)


#: ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call.
_COMPACT_ENCODER = json.JSONEncoder(separators=(",", ":"))
_compact_json = json_encode_function(_COMPACT_ENCODER)


def jws_sign(payload: Mapping[str, Any], key: SigningKey,
             headers: Optional[Mapping[str, Any]] = None) -> str:
    """Compact JWS of a JSON payload (RFC 7515 7.1)."""
    signing_input = (
        key.header_segment(headers)
        + "."
        + b64url_encode(_compact_json(payload).encode("utf-8"))
    ).encode("ascii")
    return signing_input.decode("ascii") + "." + b64url_encode(key.sign(signing_input))


def jws_verify(token: Any, keys: Sequence[VerificationKey]) -> dict[str, Any]:
    """Verify a compact JWS against ``keys`` and return its JSON payload.

    The header's ``alg`` must equal the alg of a candidate key (matched by
    ``kid`` when the header has one); ``alg: none`` and algorithm confusion are
    therefore rejected (RFC 8725 3.1). Raises :class:`JWSError` on anything
    that is not a valid signature by one of ``keys``.
    """
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 64 * 1024:
        raise JWSError("not a compact JWS")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = json.loads(b64url_decode(header_b64))
        payload = json.loads(b64url_decode(payload_b64))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise JWSError("malformed JWS") from e
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JWSError("malformed JWS")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGS:
        raise JWSError("unsupported or missing alg")
    signature = b64url_decode(signature_b64)
    signing_input = (header_b64 + "." + payload_b64).encode("ascii")
    kid = header.get("kid")
    for key in keys:
        if key.alg != alg or (kid is not None and not key.matches_kid(kid)):
            continue
        if key.verify(signing_input, signature):
            return payload
    raise JWSError("signature verification failed")
