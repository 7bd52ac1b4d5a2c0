"""Demonstrating Proof of Possession (DPoP, RFC 9449): proofs, bound tokens, nonces.

A client proves at the token endpoint that it holds a private key by sending a *DPoP
proof*: a JWT it signed with that key, whose header carries the public key (``jwk``) and
whose claims name the HTTP request (``htm``, ``htu``), its time (``iat``) and a unique
``jti`` (RFC 9449 4). The access token issued is then bound to the key: its record (and
sealed value) carries ``cnf: {"jkt": <RFC 7638 thumbprint>}`` (RFC 9449 6, RFC 7800 3.1)
and its ``token_type`` is ``DPoP`` (RFC 9449 5). UserInfo accepts such a token only with
``Authorization: DPoP <token>`` and a proof by the same key that also names the token
(``ath``, RFC 9449 7); introspection reports ``cnf`` (RFC 9449 6.2).

DPoP is enabled by the provider metadata ``dpop_signing_alg_values_supported``: the JWS
algorithms accepted for proofs (asymmetric ones only, RFC 9449 4.3 point 5), which is
also what discovery publishes (RFC 9449 5.1). Without it, a ``DPoP`` header is ignored
and tokens are bearer tokens, as with pyop 3.

The endpoints call :func:`token_request_proof` (token endpoint) and
:func:`check_dpop_bound_request` (UserInfo), one call each.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional, Protocol
from urllib.parse import quote, unquote, urlsplit

from .crypto import (
    SUPPORTED_ALGS,
    JWSError,
    VerificationKey,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
)
from .exceptions import DPoPTokenError, InvalidAuthenticationRequest, InvalidDPoPProof, UseDPoPNonce
from .jwt_checks import MAX_JTI_LENGTH, is_numeric_date, jwt_type, use_jti_once
from .request_object import parse_jwk_set, verification_keys

__all__ = [
    "DEFAULT_DPOP_SIGNING_ALGS",
    "DPOP_PROOF_TYPE",
    "DPoPNonceProvider",
    "DPoPProof",
    "DPoPSettings",
    "TimeBasedDPoPNonces",
    "access_token_hash",
    "as_dpop_error",
    "check_dpop_bound_request",
    "check_dpop_jkt_parameter",
    "check_dpop_signing_algs",
    "client_requires_dpop",
    "cnf_matches",
    "code_binding_matches",
    "dpop_scheme_token",
    "is_dpop_bound",
    "normalize_htu",
    "pushed_request_proof",
    "token_request_proof",
    "verify_dpop_proof",
]

logger = logging.getLogger(__name__)

#: The algorithms accepted for proofs when ``dpop_signing_alg_values_supported`` is
#: configured without a value of its own choosing: those FAPI 2.0 Security Profile 5.4.1
#: allows (PS256, ES256, EdDSA with Ed25519), with Ed25519 also under its fully-specified
#: name (RFC 9864 2.2), which clients such as openid-client 6 sign Ed25519 proofs with.
DEFAULT_DPOP_SIGNING_ALGS: tuple[str, ...] = ("ES256", "PS256", "EdDSA", "Ed25519")
#: The ``typ`` of a DPoP proof (RFC 9449 4.2).
DPOP_PROOF_TYPE = "dpop+jwt"
#: Seconds a proof is accepted after its ``iat`` (RFC 9449 11.1: a short window).
DEFAULT_PROOF_LIFETIME = 60
#: Seconds a proof's ``iat`` may be ahead of the server's clock.
DEFAULT_CLOCK_SKEW = 5
#: Longest proof read, in characters (a proof with an RSA key of 8192 bits fits).
MAX_PROOF_LENGTH = 8192
#: Longest ``htu`` and ``nonce`` read, in characters.
MAX_CLAIM_LENGTH = 2048
#: The form of a ``dpop_jkt`` value: a base64url SHA-256 thumbprint (RFC 9449 10).
_JKT_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DPoPProof(NamedTuple):
    """A verified DPoP proof (RFC 9449 4.3)."""

    #: The RFC 7638 SHA-256 thumbprint of the proof's key (``cnf.jkt``, RFC 9449 6.1).
    jkt: str
    #: The public JWK of the proof's header.
    jwk: dict[str, Any]
    #: The proof's claims.
    claims: dict[str, Any]

    @property
    def cnf(self) -> dict[str, str]:
        """The confirmation member of a token bound to this proof's key (RFC 9449 6.1)."""
        return {"jkt": self.jkt}


class DPoPNonceProvider(Protocol):
    """Server nonces for DPoP proofs (RFC 9449 8, 9)."""

    def new_nonce(self) -> str:
        """The nonce to send in ``DPoP-Nonce``."""

    def is_valid(self, nonce: str) -> bool:
        """Whether a proof's ``nonce`` is one this provider accepts now."""


class TimeBasedDPoPNonces:
    """Stateless server nonces: the current time step and its HMAC (RFC 9449 8 leaves the
    form to the server). A nonce is accepted during the step it was made in and the next
    one (so for ``lifetime`` to ``2 * lifetime`` seconds).

    :param secret: the HMAC key (at least 16 bytes); every worker of a deployment must
        share it. Default: random, for this process only.
    :param lifetime: seconds of a time step (default 300).
    :param clock: the current UNIX time.
    """

    def __init__(self, secret: Optional[bytes] = None, *, lifetime: int = 300,
                 clock: Callable[[], float] = time.time) -> None:
        if secret is not None and (not isinstance(secret, bytes) or len(secret) < 16):
            raise ValueError("secret: at least 16 bytes")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise ValueError("lifetime: an integer >= 1 (seconds)")
        self._secret = secret or secrets.token_bytes(32)
        self.lifetime = lifetime
        self.clock = clock

    def _step(self) -> int:
        return int(self.clock()) // self.lifetime

    def _mac(self, step: int) -> bytes:
        return hmac.new(self._secret, b"pyop dpop nonce\x00" + step.to_bytes(8, "big"),
                        hashlib.sha256).digest()[:16]

    def new_nonce(self) -> str:
        """The nonce of the current time step."""
        step = self._step()
        return b64url_encode(step.to_bytes(8, "big") + self._mac(step))

    def is_valid(self, nonce: str) -> bool:
        """Whether ``nonce`` was made by this provider in this time step or the last."""
        try:
            raw = b64url_decode(nonce)
        except JWSError:
            return False
        if len(raw) != 24:
            return False
        step = int.from_bytes(raw[:8], "big")
        if step not in (self._step(), self._step() - 1):
            return False
        return hmac.compare_digest(raw[8:], self._mac(step))


class DPoPSettings:
    """How a provider handles DPoP (RFC 9449).

    :param algs: returns the configured ``dpop_signing_alg_values_supported`` (None:
        DPoP is not enabled).
    :param replay_store: where the ``jti`` of used proofs are kept until they expire (a
        pyop storage shared by all workers; RFC 9449 11.1).
    :param proof_lifetime: seconds a proof is accepted after its ``iat`` (default 60).
    :param clock_skew: seconds a proof's ``iat`` may be ahead of the clock (default 5).
    :param nonces: a :class:`DPoPNonceProvider` to require server nonces (RFC 9449 8, 9),
        or None (default).
    """

    def __init__(self, algs: Callable[[], Any] = lambda: None, *, replay_store: Any = None,
                 proof_lifetime: int = DEFAULT_PROOF_LIFETIME,
                 clock_skew: int = DEFAULT_CLOCK_SKEW,
                 nonces: Optional[DPoPNonceProvider] = None) -> None:
        for name, value, least in (("dpop_proof_lifetime", proof_lifetime, 1),
                                   ("dpop_clock_skew", clock_skew, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}: an integer >= {least} (seconds)")
        if nonces is not None and not (callable(getattr(nonces, "new_nonce", None))
                                       and callable(getattr(nonces, "is_valid", None))):
            raise ValueError("dpop_nonces: needs new_nonce() and is_valid(nonce)")
        self._algs = algs
        self.replay_store = replay_store
        self.proof_lifetime = proof_lifetime
        self.clock_skew = clock_skew
        self.nonces = nonces

    @property
    def enabled(self) -> bool:
        """Whether DPoP proofs are verified (``dpop_signing_alg_values_supported`` set)."""
        return self._algs() is not None

    @property
    def algs(self) -> list[str]:
        """The JWS algorithms accepted for proofs (asymmetric ones only)."""
        configured = self._algs()
        values = DEFAULT_DPOP_SIGNING_ALGS if configured is None else configured
        return [alg for alg in values if alg in SUPPORTED_ALGS]

    def nonce(self) -> Optional[str]:
        """A server nonce to send as ``DPoP-Nonce``, or None when nonces are not used."""
        return self.nonces.new_nonce() if self.nonces is not None else None


def check_dpop_signing_algs(value: Any) -> list[str]:
    """``dpop_signing_alg_values_supported``: a non-empty list of asymmetric JWS algs this
    library verifies (RFC 9449 5.1; 4.3 point 5: never ``none`` nor a MAC).

    :raises ValueError: anything else; the message names the offending value.
    """
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise ValueError("must be a non-empty list of JWS algorithm names")
    for alg in value:
        if alg not in SUPPORTED_ALGS:
            raise ValueError(f"{alg[:32]!r} is not an asymmetric algorithm this provider "
                             "verifies")
    return list(value)


def _dpop_headers(http_headers: Any) -> list[Any]:
    """Every value of the ``DPoP`` header field (names are case-insensitive)."""
    if not http_headers:
        return []
    items = http_headers.items() if hasattr(http_headers, "items") else http_headers
    values: list[Any] = []
    try:
        for name, value in items:
            if isinstance(name, str) and name.lower() == "dpop":
                values.append(value)
    except (TypeError, ValueError):
        return []
    getlist = getattr(http_headers, "getlist", None) or getattr(http_headers, "get_all", None)
    if callable(getlist) and len(values) == 1:  # multi-dicts that list a name once
        try:
            listed = list(getlist("DPoP") or [])
        except Exception:  # noqa: BLE001 - not a multi-dict after all
            listed = []
        if len(listed) > 1:
            values = listed
    return values


def access_token_hash(access_token: str) -> str:
    """The ``ath`` of a proof sent with ``access_token``: base64url SHA-256 of its ASCII
    octets (RFC 9449 4.2)."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def _normalize_path(path: str) -> str:
    """Percent-encoding normalised (RFC 3986 6.2.2.1-2), dot segments removed (5.2.4)."""

    def percent(match: re.Match[str]) -> str:
        char = unquote(match.group(0))
        return char if char in _UNRESERVED else match.group(0).upper()

    path = re.sub(r"%[0-9A-Fa-f]{2}", percent, path)
    path = quote(path, safe="/%:@!$&'()*+,;=-._~")
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if path.endswith(("/.", "/..")):
        output.append("")
    return "/".join(output) or "/"


def normalize_htu(url: Any) -> Optional[str]:
    """An absolute http(s) URL without query and fragment, normalised for comparison
    (RFC 9449 4.3 point 9; RFC 3986 6.2.2 syntax-based and 6.2.3 scheme-based
    normalisation: lowercase scheme and host, no default port, ``/`` for an empty path,
    percent-encoding and dot segments normalised). None for anything else.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_CLAIM_LENGTH:
        return None
    return _normalize_url(url)


@functools.lru_cache(maxsize=256)
def _normalize_url(url: str) -> Optional[str]:
    """:func:`normalize_htu` of a string, remembered for the recent ones (the endpoints'
    URLs come back with every proof)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{_normalize_path(parts.path)}"


#: Keys of recent proofs: ``(alg, canonical JWK) -> (verifier, thumbprint)``. A client
#: proves with the same key many times; building the key (and, for EC, checking its point)
#: costs as much as a verification.
_KEY_CACHE: OrderedDict[tuple[str, str], tuple[VerificationKey, str]] = OrderedDict()
_KEY_CACHE_SIZE = 512
_KEY_CACHE_LOCK = threading.Lock()


def _proof_key(alg: str, jwk: dict[str, Any]) -> tuple[VerificationKey, str]:
    """The verifier of ``alg`` signatures for a proof's ``jwk`` and the key's RFC 7638
    thumbprint (RFC 9449 4.3 points 6-7).

    :raises InvalidDPoPProof: a private or symmetric key, a malformed one, one out of the
        bounds of :func:`~pyop.request_object.parse_jwk_set`, or one that does not fit
        ``alg``.
    """
    try:
        cache_key = (alg, json.dumps(jwk, sort_keys=True, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidDPoPProof("the DPoP proof's jwk must be a valid public key") from e
    with _KEY_CACHE_LOCK:
        found = _KEY_CACHE.get(cache_key)
        if found is not None:
            _KEY_CACHE.move_to_end(cache_key)
            return found
    try:
        parsed = parse_jwk_set({"keys": [jwk]}, allow_json_string=False, max_keys=1)
    except ValueError as e:  # a private or symmetric key, a malformed one, out of bounds
        raise InvalidDPoPProof("the DPoP proof's jwk must be a valid public key") from e
    keys = verification_keys(parsed, alg)
    if not keys:
        raise InvalidDPoPProof("the DPoP proof's jwk does not fit its alg")
    result = (keys[0], jwk_thumbprint(jwk))
    with _KEY_CACHE_LOCK:
        _KEY_CACHE[cache_key] = result
        while len(_KEY_CACHE) > _KEY_CACHE_SIZE:
            _KEY_CACHE.popitem(last=False)
    return result


def _decode_json(segment: str) -> Any:
    try:
        return json.loads(b64url_decode(segment))
    except (JWSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidDPoPProof("the DPoP proof is not a well-formed JWT") from e


def verify_dpop_proof(settings: DPoPSettings, proof: Any, *, method: str, url: str,
                      now: float, access_token: Optional[str] = None) -> DPoPProof:
    """Verify a DPoP proof (RFC 9449 4.3), and record its ``jti`` as used (11.1).

    Checks, in order: a compact JWS (point 2) with ``typ: dpop+jwt`` (4), an accepted
    asymmetric ``alg`` (5), a public ``jwk`` with no private member (7) that verifies the
    signature (6); the claims ``jti``, ``htm``, ``htu`` and ``iat`` (3); ``htm`` is
    ``method`` (8); ``htu`` is ``url`` without query and fragment, compared normalised
    (9); ``iat`` within ``proof_lifetime`` seconds before now and ``clock_skew`` after
    (11); with ``access_token``, ``ath`` is its hash (12); with server nonces, a valid
    ``nonce`` (10); then the ``jti`` was not used before by the same key (11.1).

    :raises InvalidDPoPProof: ``invalid_dpop_proof``, the proof is refused.
    :raises UseDPoPNonce: ``use_dpop_nonce``, a valid server nonce is missing (RFC 9449 8).
    """
    if (not isinstance(proof, str) or len(proof) > MAX_PROOF_LENGTH
            or proof.count(".") != 2):
        raise InvalidDPoPProof("the DPoP proof is not a well-formed JWT")
    header_b64, payload_b64, signature_b64 = proof.split(".")
    header = _decode_json(header_b64)
    claims = _decode_json(payload_b64)
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidDPoPProof("the DPoP proof is not a well-formed JWT")
    if jwt_type(header) != DPOP_PROOF_TYPE:
        raise InvalidDPoPProof("the DPoP proof's typ must be dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in settings.algs:
        raise InvalidDPoPProof("the DPoP proof's alg is not accepted")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidDPoPProof("the DPoP proof has no jwk")
    key, jkt = _proof_key(alg, jwk)
    try:
        signature = b64url_decode(signature_b64)
    except JWSError as e:
        raise InvalidDPoPProof("the DPoP proof is not a well-formed JWT") from e
    if not key.verify((header_b64 + "." + payload_b64).encode("ascii"), signature):
        raise InvalidDPoPProof("the DPoP proof's signature does not verify with its jwk")
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidDPoPProof("the DPoP proof has no valid jti")
    if not isinstance(htm, str) or htm != method:
        raise InvalidDPoPProof("the DPoP proof's htm is not the request's method")
    expected = normalize_htu(url)
    if expected is None or normalize_htu(htu) != expected:
        raise InvalidDPoPProof("the DPoP proof's htu is not the request's URL")
    if not is_numeric_date(iat) or iat is None:
        raise InvalidDPoPProof("the DPoP proof has no valid iat")
    if iat > now + settings.clock_skew or iat < now - settings.proof_lifetime:
        raise InvalidDPoPProof("the DPoP proof's iat is outside the accepted window")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(
                ath.encode("utf-8", "replace"), access_token_hash(access_token).encode()):
            raise InvalidDPoPProof("the DPoP proof's ath is not the access token's hash")
    if settings.nonces is not None:
        nonce = claims.get("nonce")
        if (not isinstance(nonce, str) or len(nonce) > MAX_CLAIM_LENGTH
                or not settings.nonces.is_valid(nonce)):
            raise UseDPoPNonce("a DPoP proof with the server's nonce is required")
    store = settings.replay_store
    if store is not None and not use_jti_once(
            store, "dpop_proof", jkt, jti, now + settings.proof_lifetime + settings.clock_skew):
        raise InvalidDPoPProof("the DPoP proof was already used")
    return DPoPProof(jkt, dict(jwk), claims)


def _one_proof(http_headers: Any) -> Optional[Any]:
    """The request's single DPoP header value, None without one (RFC 9449 4.3 point 1).

    :raises InvalidDPoPProof: more than one.
    """
    values = _dpop_headers(http_headers)
    if len(values) > 1:
        raise InvalidDPoPProof("more than one DPoP header")
    return values[0] if values else None


def is_dpop_bound(record: Mapping[str, Any]) -> bool:
    """Whether a token record is bound to a DPoP key (``cnf.jkt``, RFC 9449 6)."""
    cnf = record.get("cnf")
    return cnf is not None and isinstance(cnf, Mapping) and isinstance(cnf.get("jkt"), str)


def client_requires_dpop(client: Mapping[str, Any]) -> bool:
    """Whether the client registered ``dpop_bound_access_tokens`` true (RFC 9449 5.2)."""
    return client.get("dpop_bound_access_tokens") is True


def token_request_proof(settings: DPoPSettings, http_headers: Any, *, method: str, url: Any,
                        client: Mapping[str, Any], now: float) -> Optional[DPoPProof]:
    """The verified DPoP proof of a token request (RFC 9449 5), or None without one.

    Without DPoP enabled, a ``DPoP`` header and the client's ``dpop_bound_access_tokens``
    are ignored (the token is a bearer token, as an authorization server without DPoP
    support answers, RFC 9449 5; as pyop 3 did).

    :raises InvalidDPoPProof: 400 ``invalid_dpop_proof``: the proof is refused, several
        were sent, or the client registered ``dpop_bound_access_tokens`` and sent none.
    :raises UseDPoPNonce: 400 ``use_dpop_nonce`` with a ``DPoP-Nonce`` header (RFC 9449 8).
    """
    if not settings.enabled:
        return None
    required = client_requires_dpop(client)
    try:
        proof = _one_proof(http_headers)
        if proof is None:
            if required:
                raise InvalidDPoPProof("the client registered dpop_bound_access_tokens: a DPoP "
                                  "proof is required")
            return None
        return verify_dpop_proof(settings, proof, method=method, url=url, now=now)
    except InvalidDPoPProof as e:
        nonce = settings.nonce()
        if nonce is not None:
            e.headers["DPoP-Nonce"] = nonce
        raise


def pushed_request_proof(settings: DPoPSettings, http_headers: Any, *, method: str, url: Any,
                         request: dict[str, Any], now: float) -> Optional[DPoPProof]:
    """A DPoP proof sent to the pushed authorization request endpoint (RFC 9449 10.1):
    verified as at the token endpoint (RFC 9449 4.3: ``htm`` is ``method``, ``htu`` the
    endpoint's ``url``, the ``iat`` window, ``jti`` used once, a server nonce when
    required), then the pushed request is bound to the proof's key: its ``dpop_jkt``
    becomes the key's thumbprint, so that the code it yields is only exchanged with a
    proof of that key (RFC 9449 10). A ``dpop_jkt`` the request also carries must be that
    thumbprint (10.1). Without DPoP enabled, or without a ``DPoP`` header, nothing is
    done (a proof is optional at this endpoint).

    :raises InvalidDPoPProof: 400 ``invalid_dpop_proof``: the proof is refused, several
        were sent, or the request's ``dpop_jkt`` names another key.
    :raises UseDPoPNonce: 400 ``use_dpop_nonce`` with a ``DPoP-Nonce`` header (RFC 9449 8).
    """
    if not settings.enabled:
        return None
    try:
        value = _one_proof(http_headers)
        if value is None:
            return None
        proof = verify_dpop_proof(settings, value, method=method, url=url, now=now)
        given = request.get("dpop_jkt")
        if given is not None and not (isinstance(given, str) and hmac.compare_digest(
                given.encode("utf-8", "replace"), proof.jkt.encode("ascii"))):
            raise InvalidDPoPProof("the dpop_jkt parameter is not the thumbprint of the DPoP "
                                   "proof's key (RFC 9449 10.1)")
    except InvalidDPoPProof as e:
        nonce = settings.nonce()
        if nonce is not None:
            e.headers["DPoP-Nonce"] = nonce
        raise
    request["dpop_jkt"] = proof.jkt
    return proof


def dpop_scheme_token(authorization: Optional[str]) -> Optional[str]:
    """The access token of an ``Authorization: DPoP <token>`` header (RFC 9449 7.1), or
    None for another scheme or no header; the scheme is case-insensitive.

    :raises DPoPTokenError: the scheme is DPoP but the token is missing or malformed.
    """
    if not isinstance(authorization, str):
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "dpop":
        return None
    token = token.strip()
    if not token or " " in token:
        raise DPoPTokenError("malformed DPoP Authorization header", "invalid_request", 400)
    return token


def check_dpop_bound_request(settings: DPoPSettings, record: Mapping[str, Any], token: str, *,
                             dpop_scheme: bool, http_headers: Any, method: str, url: Any,
                             now: float) -> None:
    """A protected resource request (UserInfo) with the access token ``token`` whose
    record is ``record`` (RFC 9449 7).

    A token bound to a DPoP key must come with the ``DPoP`` scheme (RFC 9449 7.2: a
    bound token sent as a bearer token is refused) and a proof by that key (4.3 point
    12) naming this request and the token (``ath``). A token that is not bound is
    refused with the ``DPoP`` scheme. Bearer requests of unbound tokens pass untouched.

    :raises DPoPTokenError: 401 with a ``DPoP`` challenge (``error.headers``).
    """
    bound = is_dpop_bound(record)
    if not bound and not dpop_scheme:
        return
    algs = settings.algs

    def refuse(message: str, error: str, nonce: Optional[str] = None) -> DPoPTokenError:
        return DPoPTokenError(message, error, 401, algs=algs, nonce=nonce)

    if not bound:
        raise refuse("the access token is not DPoP-bound: send it as a bearer token",
                     "invalid_token")
    if not dpop_scheme:
        raise refuse("the access token is DPoP-bound: send it with the DPoP scheme and a "
                     "DPoP proof", "invalid_token")
    try:
        proof = _one_proof(http_headers)
        if proof is None:
            raise InvalidDPoPProof("a DPoP proof is required")
        verified = verify_dpop_proof(settings, proof, method=method, url=url, now=now,
                                     access_token=token)
    except InvalidDPoPProof as e:
        nonce = settings.nonce()
        raise refuse(str(e), e.oauth_error, nonce) from None
    if not hmac.compare_digest(verified.jkt.encode("ascii", "replace"),
                               str(record["cnf"]["jkt"]).encode("ascii", "replace")):
        raise refuse("the DPoP proof's key is not the one the access token is bound to",
                     "invalid_dpop_proof")


def as_dpop_error(settings: DPoPSettings, error: Any) -> DPoPTokenError:
    """A resource request error (RFC 6750 3.1) as the DPoP challenge of a request made
    with the ``DPoP`` scheme (RFC 9449 7.1): same code, status and description."""
    if isinstance(error, DPoPTokenError):
        return error
    return DPoPTokenError(str(error), getattr(error, "oauth_error", "invalid_token"),
                          getattr(error, "http_status", 401), algs=settings.algs,
                          token_missing=bool(getattr(error, "token_missing", False)))


def check_dpop_jkt_parameter(settings: DPoPSettings, request: Mapping[str, Any]) -> None:
    """The ``dpop_jkt`` authorization request parameter (RFC 9449 10), when DPoP is
    enabled: a base64url SHA-256 JWK thumbprint.

    :raises InvalidAuthenticationRequest: ``invalid_request``, a malformed value.
    """
    value = request.get("dpop_jkt")
    if value is None or not settings.enabled:
        return
    if not isinstance(value, str) or not _JKT_PATTERN.fullmatch(value):
        raise InvalidAuthenticationRequest("dpop_jkt must be a base64url SHA-256 JWK "
                                           "thumbprint", dict(request))


def code_binding_matches(settings: DPoPSettings, auth_req: Mapping[str, Any],
                         proof: Optional[DPoPProof]) -> bool:
    """Whether the token request's proof uses the key the authorization request named
    with ``dpop_jkt`` (RFC 9449 10); True without ``dpop_jkt`` or with DPoP disabled."""
    value = auth_req.get("dpop_jkt")
    if value is None or not settings.enabled:
        return True
    if proof is None or not isinstance(value, str):
        return False
    return hmac.compare_digest(proof.jkt.encode("ascii", "replace"),
                               value.encode("ascii", "replace"))


def cnf_matches(bound: Any, presented: Optional[Mapping[str, Any]]) -> bool:
    """Whether every confirmation member a token is bound to (``bound``, its ``cnf``: a
    DPoP key's ``jkt``, RFC 9449 6, and/or a client certificate's ``x5t#S256``, RFC 8705
    3) is presented with the same value (RFC 7800 3.1); True for a token without ``cnf``,
    False for a malformed one."""
    if not bound:
        return True
    if not isinstance(bound, Mapping) or not isinstance(presented, Mapping):
        return False
    return all(isinstance(presented.get(name), str) and isinstance(value, str)
               and hmac.compare_digest(presented[name].encode("utf-8", "replace"),
                                       value.encode("utf-8", "replace"))
               for name, value in bound.items())

