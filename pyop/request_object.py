"""Request objects passed by value: the ``request`` parameter (OIDC Core 6.1, 6.3).

A request object is a JWT, signed by the client, carrying authentication
request parameters. :class:`~pyop.provider.Provider` verifies it (when
``request_parameter_supported`` is true) once the ``client_id`` and
``redirect_uri`` of the query are verified, then merges its members over the
query parameters (OIDC Core 6.3.3) before the usual checks run.

Verification (OIDC Core 6.3.2; RFC 9101 6, 10; RFC 8725 3.1):

* the JWS ``alg`` must be one the provider accepts
  (``request_object_signing_alg_values_supported``) and, when the client
  registered ``request_object_signing_alg``, that one; ``none`` only when the
  provider allows unsigned request objects; ``HS*`` never (there is no shared
  key, and a public key must never be used as an HMAC secret);
* the ``typ`` header, when present, must be ``JWT``, ``JOSE`` or
  ``oauth-authz-req+jwt`` (:data:`REQUEST_OBJECT_TYPES`): any other type marks
  another kind of JWT (RFC 9101 10.8, RFC 8725 3.11);
* the signature must verify with one of the client's registered public keys
  (``jwks`` metadata, or the JWK Set at ``jwks_uri``, fetched through
  :class:`~pyop.outbound.GuardedFetcher`), usable for signatures and for that ``alg``,
  and naming the header's ``kid`` when it has one;
* a signed object must carry ``iss`` = the ``client_id``, ``aud`` = the issuer (a
  string, or an array containing it) and ``exp`` (RFC 9101 10.8; the provider option
  ``require_request_object_claims=False`` checks them only when present, as for
  unsigned objects); ``exp`` must be in the future and at most
  ``max_request_object_lifetime`` seconds ahead, ``nbf`` and ``iat`` not in the
  future (with :data:`NBF_LEEWAY`), all finite numbers; ``sub`` must not be the
  ``client_id`` (that is a client assertion, RFC 7523 3); a ``jti`` makes a signed
  object single-use;
* encrypted request objects (JWE) are not supported.

Every error is a redirectable :class:`~pyop.exceptions.InvalidAuthenticationRequest`
with ``invalid_request_object`` (OIDC Core 3.1.2.6), except those about the
query itself (``invalid_request``) and an unregistered ``redirect_uri`` inside
the object (:class:`~pyop.exceptions.InvalidRedirectURI`, never redirected).

Request objects by reference (``request_uri``) are not supported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union

from .crypto import SUPPORTED_ALGS, JWSError, VerificationKey, b64url_decode, jws_verify
from .exceptions import InvalidAuthenticationRequest
from .jwt_checks import MAX_JTI_LENGTH, is_numeric_date, jwt_type, use_jti_once
from .outbound import ForbiddenAddress, fetch_jwks  # moved to pyop.outbound; kept importable here
from .util import is_utf8_encodable, response_type_set

__all__ = [
    "DEFAULT_REQUEST_OBJECT_SIGNING_ALGS",
    "NBF_LEEWAY",
    "JWT_CLAIMS",
    "parse_jwk_set",
    "verification_keys",
    "verify_request_object",
    "merge_request_object",
    "fetch_jwks",
    "ForbiddenAddress",
    "ClientJWK",
    "DEFAULT_MAX_CLIENT_KEYS",
    "MIN_RSA_MODULUS_BITS",
    "MAX_RSA_MODULUS_BITS",
    "MAX_RSA_EXPONENT",
    "REQUEST_OBJECT_TYPES",
    "DEFAULT_MAX_REQUEST_OBJECT_LIFETIME",
    "request_object_parameters",
]

logger = logging.getLogger(__name__)

#: ``request_object_signing_alg_values_supported`` when not configured ("none" is added
#: only with ``allow_unsigned_request_objects=True``).
DEFAULT_REQUEST_OBJECT_SIGNING_ALGS = ("RS256", "ES256")

#: Seconds a client's clock may run ahead of the provider's for ``nbf``.
NBF_LEEWAY = 60

#: Registered JWT claims of a request object that are not request parameters (RFC 7519 4.1).
JWT_CLAIMS = frozenset(["iss", "aud", "exp", "iat", "nbf", "jti", "sub"])

#: Most keys a client's JWK Set may hold (registration refuses more; at use the first
#: this many are kept): bounds the work an unauthenticated JWT can cause.
DEFAULT_MAX_CLIENT_KEYS = 20

#: Fewest bits of the modulus of a client's RSA key (RFC 7518 3.3: 2048 or more).
MIN_RSA_MODULUS_BITS = 2048
#: Most bits of the modulus of a client's RSA key: the cost of a verification grows with
#: it, and larger keys are not in common use.
MAX_RSA_MODULUS_BITS = 8192
#: Largest public exponent of a client's RSA key, which must also be odd and at least 3
#: (NIST SP 800-56B 6.2.1); the cost of a verification grows with the exponent's size.
MAX_RSA_EXPONENT = 2**256 - 1

#: JWK members that only a private or symmetric key has (RFC 7518 6.2.2, 6.3.2, 6.4; RFC 8037 2).
_PRIVATE_JWK_MEMBERS = frozenset(["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
_ALGS_BY_KTY = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "OKP": ("EdDSA",),
}
#: An Ed25519 key without ``alg`` verifies both EdDSA and its fully-specified form
#: Ed25519 (RFC 9864 2.2); an Ed448 one EdDSA only.
_ALGS_BY_OKP_CURVE = {"Ed25519": ("EdDSA", "Ed25519")}
_ALG_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


def _error(message: str, oauth_error: str = "invalid_request_object"
           ) -> InvalidAuthenticationRequest:
    # the provider fills in the error context (redirect_uri, state...) when it catches it
    return InvalidAuthenticationRequest(message, {}, oauth_error)


class ClientJWK(dict[str, Any]):
    """A validated public JWK of a client: the members (it is a ``dict``), and the public
    key built once (:attr:`key`), with one :class:`~pyop.crypto.VerificationKey` per alg
    made on first use. :func:`parse_jwk_set` returns these."""

    def __init__(self, jwk: Mapping[str, Any], key: VerificationKey) -> None:
        super().__init__(jwk)
        #: The public key, as built from the JWK.
        self.key = key
        self._by_alg: dict[str, VerificationKey] = {}

    def for_alg(self, alg: str) -> VerificationKey:
        """The key as a verifier of ``alg`` signatures (made once per alg)."""
        key = self._by_alg.get(alg)
        if key is None:
            key = self._by_alg[alg] = VerificationKey(self.key.public_key, alg, self.key.kid)
        return key


def _rsa_bound_violation(jwk: Mapping[str, Any]) -> Optional[str]:
    """The RSA bound ``jwk`` breaks (see :data:`MAX_RSA_EXPONENT`), or None."""
    try:
        n = int.from_bytes(b64url_decode(jwk["n"]), "big")
        e = int.from_bytes(b64url_decode(jwk["e"]), "big")
    except (JWSError, KeyError, TypeError, ValueError):
        return None  # malformed: refused when the key is built
    if not (3 <= e <= MAX_RSA_EXPONENT and e % 2 == 1):
        return "its RSA public exponent e must be odd, at least 3 and below 2**256"
    if not MIN_RSA_MODULUS_BITS <= n.bit_length() <= MAX_RSA_MODULUS_BITS:
        return (f"its RSA modulus n must have {MIN_RSA_MODULUS_BITS} to "
                f"{MAX_RSA_MODULUS_BITS} bits")
    return None


def parse_jwk_set(jwks: Any, *, allow_json_string: bool = True,
                  max_keys: int = DEFAULT_MAX_CLIENT_KEYS, strict: bool = True,
                  client_id: Optional[str] = None) -> list[dict[str, Any]]:
    """The keys of a JWK Set of public keys (RFC 7517 5), validated and built once.

    :param jwks: a JWK Set object (``{"keys": [...]}``), or its JSON text when
        ``allow_json_string`` (client metadata kept as a string by some hosts).
    :param max_keys: the most keys the set may hold.
    :param strict: refuse a set that breaks a bound (more than ``max_keys`` keys, an
        RSA key outside :data:`MIN_RSA_MODULUS_BITS`..:data:`MAX_RSA_MODULUS_BITS` bits
        or with an exponent other than odd 3..:data:`MAX_RSA_EXPONENT`), as registration
        does; else (keys about to be used: a fetched ``jwks_uri`` document, metadata
        stored before the bounds) keep the first ``max_keys`` keys and skip the keys
        out of bounds, with a log line.
    :param client_id: named in those log lines.
    :returns: the JWKs (:class:`ClientJWK`, dicts) whose ``kty`` this library
        understands; others are ignored, as RFC 7517 5 asks.
    :raises ValueError: not a JWK Set, a private or symmetric key, a malformed
        key, or (``strict``) a bound broken. The message names the rule, never key
        material.
    """
    if isinstance(jwks, (str, bytes)) and allow_json_string:
        try:
            jwks = json.loads(jwks)
        except (ValueError, RecursionError) as e:
            raise ValueError("jwks is not valid JSON") from e
    if hasattr(jwks, "to_dict"):
        jwks = jwks.to_dict()
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("jwks must be a JWK Set: an object with a keys array")
    keys = jwks["keys"]
    if len(keys) > max_keys:
        if strict:
            raise ValueError(f"jwks must hold at most {max_keys} keys")
        logger.warning("client %s: jwks holds %d keys, only the first %d are used",
                       client_id, len(keys), max_keys)
        keys = keys[:max_keys]
    result: list[dict[str, Any]] = []
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kty"), str):
            raise ValueError("every key of jwks must be an object with a kty")
        if _PRIVATE_JWK_MEMBERS & set(jwk) or jwk["kty"] == "oct":
            raise ValueError("jwks must hold public keys only")
        if jwk["kty"] not in ("RSA", "EC", "OKP"):
            continue  # unknown key types are ignored (RFC 7517 5)
        for name in ("alg", "use", "kid"):
            if name in jwk and not isinstance(jwk[name], str):
                raise ValueError(f"the {name} of a key in jwks must be a string")
        if "key_ops" in jwk and not (isinstance(jwk["key_ops"], list)
                                     and all(isinstance(op, str) for op in jwk["key_ops"])):
            raise ValueError("the key_ops of a key in jwks must be an array of strings")
        violation = _rsa_bound_violation(jwk) if jwk["kty"] == "RSA" else None
        if violation is not None:
            if strict:
                raise ValueError(f"key {index} of jwks: {violation}")
            logger.warning("client %s: key %d of its jwks skipped: %s", client_id, index,
                           violation)
            continue
        try:
            key = VerificationKey.from_jwk(jwk)
        except (JWSError, KeyError, TypeError, ValueError) as e:
            raise ValueError("jwks holds a malformed or unsupported key") from e
        result.append(ClientJWK(jwk, key))
    return result


def _candidate_algs(jwk: Mapping[str, Any]) -> tuple[str, ...]:
    if isinstance(jwk.get("alg"), str):
        return (jwk["alg"],)
    if jwk.get("kty") == "EC":
        alg = _ALG_BY_CURVE.get(jwk.get("crv", ""))
        return (alg,) if alg else ()
    crv = jwk.get("crv")
    if jwk.get("kty") == "OKP" and isinstance(crv, str) and crv in _ALGS_BY_OKP_CURVE:
        return _ALGS_BY_OKP_CURVE[crv]
    return _ALGS_BY_KTY.get(str(jwk.get("kty")), ())


def verification_keys(jwks: Iterable[Mapping[str, Any]], alg: str,
                      kid: Optional[Any] = None) -> list[VerificationKey]:
    """Keys of a JWK Set that may verify a signature made with ``alg`` (and, when the
    JWS header has one, naming ``kid``), in the order of the set.

    A key qualifies when its ``use`` (if any) is ``sig``, its ``key_ops`` (if
    any) include ``verify``, its ``alg`` (if any) is ``alg``, and its type
    fits ``alg`` (RSA for RS*/PS*, the matching curve for ES*, Ed25519 for
    EdDSA and Ed25519, RFC 9864 2.2); with ``kid``, its ``kid`` must be that one (a
    key without a kid: its RFC 7638 thumbprint). Symmetric keys never qualify. Keys parsed by
    :func:`parse_jwk_set` are not built again; other dicts are built here, and skipped
    when out of the bounds of :func:`parse_jwk_set`.
    """
    keys: list[VerificationKey] = []
    if alg not in SUPPORTED_ALGS:
        return keys
    for jwk in jwks:
        if jwk.get("use", "sig") != "sig":
            continue
        if "key_ops" in jwk and "verify" not in (jwk.get("key_ops") or []):
            continue
        if alg not in _candidate_algs(jwk):
            continue
        if kid is not None and "kid" in jwk and jwk["kid"] != kid:
            continue  # cheap refusal before anything is built
        if isinstance(jwk, ClientJWK):
            key = jwk.for_alg(alg)
        else:
            if jwk.get("kty") == "RSA" and _rsa_bound_violation(jwk) is not None:
                continue
            try:
                public = VerificationKey.from_jwk({k: v for k, v in jwk.items() if k != "alg"})
                key = VerificationKey(public.public_key, alg, public.kid)
            except JWSError:
                continue
        if kid is not None and not key.matches_kid(kid):
            continue
        keys.append(key)
    return keys


def _unverified_header(request_object: str) -> dict[str, Any]:
    parts = request_object.split(".")
    if len(parts) == 5:
        raise _error("encrypted request objects are not supported")
    if len(parts) != 3:
        raise _error("the request object is not a JWT")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (JWSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _error("the request object has a malformed header") from e
    if not isinstance(header, dict):
        raise _error("the request object has a malformed header")
    return header


def _unsigned_payload(request_object: str) -> dict[str, Any]:
    _header, payload_b64, signature = request_object.split(".")
    if signature:
        raise _error("an unsigned request object must have an empty signature")
    try:
        payload = json.loads(b64url_decode(payload_b64))
    except (JWSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _error("the request object has a malformed payload") from e
    if not isinstance(payload, dict):
        raise _error("the request object payload is not a JSON object")
    return payload


#: Values of the JWS ``typ`` header accepted on a request object (RFC 9101 10.8, RFC 8725
#: 3.11): none, the generic ``JWT``/``JOSE`` (RFC 7519 5.1, RFC 7515 4.1.9), or the explicit
#: ``oauth-authz-req+jwt`` (RFC 9101 4). Any other type marks another kind of JWT (an
#: access token ``at+jwt``, a logout token ``logout+jwt``, a DPoP proof ``dpop+jwt``, a
#: security event ``secevent+jwt``, a client assertion ``client-authentication+jwt``...).
REQUEST_OBJECT_TYPES = frozenset(["jwt", "jose", "oauth-authz-req+jwt"])

#: Default bound on ``exp - now`` of a request object, in seconds.
DEFAULT_MAX_REQUEST_OBJECT_LIFETIME = 3600

#: ``kind`` of the ``jti`` records of request objects (see :func:`pyop.jwt_checks.use_jti_once`).
REQUEST_OBJECT_JTI = "request_object_jti"


def _check_time_claims(claims: Mapping[str, Any], now: float, max_lifetime: float,
                       exp_required: bool) -> None:
    """``exp`` (not past, at most ``max_lifetime`` ahead), ``nbf`` and ``iat`` (not in the
    future beyond :data:`NBF_LEEWAY`): finite numbers when present (RFC 7519 4.1.4-6)."""
    for name in ("exp", "nbf", "iat"):
        if name in claims and not is_numeric_date(claims[name]):
            raise _error(f"the request object {name} must be a number")
    if "exp" in claims:
        if claims["exp"] <= now:
            raise _error("the request object has expired")
        if claims["exp"] - now > max_lifetime:
            raise _error("the request object lives too long (exp too far in the future)")
    elif exp_required:
        raise _error("the request object must have an exp (RFC 9101 10.8)")
    for name in ("nbf", "iat"):
        if name in claims and claims[name] > now + NBF_LEEWAY:
            raise _error(f"the request object {name} is in the future")


def verify_request_object(
    request_object: Any,
    *,
    client_id: str,
    client_jwks: Optional[Sequence[Mapping[str, Any]]],
    issuer: str,
    allowed_algs: Iterable[str],
    now: float,
    client_alg: Optional[str] = None,
    allow_unsigned: bool = False,
    max_lifetime: float = DEFAULT_MAX_REQUEST_OBJECT_LIFETIME,
    require_claims: bool = True,
    replay_store: Any = None,
) -> dict[str, Any]:
    """Verify a request object and return its claims (OIDC Core 6.3.2; RFC 9101 4, 6, 10.8).

    Checks, in order: form; ``typ`` (absent or one of :data:`REQUEST_OBJECT_TYPES`);
    ``alg``; the signature, tried with the client's keys that fit ``alg`` and the
    header's ``kid``; then the claims. A signed object must carry ``iss`` = the
    ``client_id``, ``aud`` = the issuer (a string, or an array containing it) and ``exp``
    (RFC 9101 10.8; OIDC Core 6.1 "SHOULD"), unless ``require_claims`` is false (then,
    as for unsigned objects, they are checked only when present). ``exp`` must not be
    past nor more than ``max_lifetime`` seconds ahead; ``nbf`` and ``iat`` not in the
    future; all three finite numbers. An object whose ``sub`` is the ``client_id`` has
    the shape of a client assertion (RFC 7523 3) and is refused. Last, the ``jti`` of a
    signed object, when present, is recorded in ``replay_store`` (if given): an object
    is accepted once.

    :param request_object: the ``request`` parameter.
    :param client_id: the verified ``client_id`` of the query.
    :param client_jwks: the client's public keys (see :func:`parse_jwk_set`), or None.
    :param issuer: the provider's issuer identifier, expected in ``aud``.
    :param allowed_algs: the algorithms the provider accepts.
    :param now: the current UNIX time (the provider's clock).
    :param client_alg: the client's registered ``request_object_signing_alg``.
    :param allow_unsigned: accept ``alg: none`` (when also in ``allowed_algs``).
    :param max_lifetime: the longest ``exp - now`` accepted, in seconds.
    :param require_claims: require ``iss``, ``aud`` and ``exp`` in signed objects.
    :param replay_store: where used ``jti`` values are kept (the storage contract's
        atomic ``add``), or None.
    :raises InvalidAuthenticationRequest: ``invalid_request_object``.
    """
    if not isinstance(request_object, str) or not request_object:
        raise _error("the request object must be a string")
    header = _unverified_header(request_object)
    typ = jwt_type(header)
    if typ is not None and typ not in REQUEST_OBJECT_TYPES:
        raise _error("the request object typ marks another kind of JWT (RFC 9101 10.8)")
    alg = header.get("alg")
    allowed = set(allowed_algs)
    if not isinstance(alg, str) or alg not in allowed:
        raise _error("the request object alg is not supported")
    if client_alg is not None and alg != client_alg:
        raise _error("the request object alg differs from the client's "
                     "registered request_object_signing_alg")
    if "crit" in header:
        raise _error("the request object uses critical header parameters")  # RFC 7515 4.1.11
    signed = alg != "none"
    if not signed:
        if not allow_unsigned:
            raise _error("unsigned request objects are not accepted")
        claims = _unsigned_payload(request_object)
    else:
        if alg not in SUPPORTED_ALGS:
            raise _error("the request object alg is not supported")
        keys = verification_keys(client_jwks or [], alg, header.get("kid"))
        if not keys:
            raise _error("the client has no registered key to verify this request object")
        try:
            claims = jws_verify(request_object, keys)
        except JWSError as e:
            raise _error("the request object signature is invalid") from e

    required = signed and require_claims
    if "iss" in claims or required:
        if claims.get("iss") != client_id:
            raise _error("the request object iss is not the client_id")
    if "aud" in claims or required:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if issuer not in audiences:
            raise _error("the request object aud does not contain the issuer")
    if "sub" in claims and claims["sub"] == client_id:
        # iss = sub = client_id is what a client assertion is (RFC 7523 3)
        raise _error("the request object has the claims of a client assertion (sub)")
    _check_time_claims(claims, now, max_lifetime, required)
    if signed and "jti" in claims:
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise _error("the request object jti must be a non-empty string")
        if replay_store is not None:
            lives_until = claims["exp"] if "exp" in claims else now + max_lifetime
            if not use_jti_once(replay_store, REQUEST_OBJECT_JTI, client_id, jti,
                                lives_until):
                raise _error("the request object was already used (jti)")
    return claims


def _has_lone_surrogates(value: Any) -> bool:
    """JSON escapes such as ``"\\ud800"`` decode to strings that cannot be encoded as UTF-8."""
    if isinstance(value, str):
        return not is_utf8_encodable(value)
    if isinstance(value, dict):
        return any(_has_lone_surrogates(k) or _has_lone_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogates(item) for item in value)
    return False


def _as_parameter(name: str, value: Any) -> Union[str, dict[str, Any]]:
    """A request object member as the query parameter it stands for."""
    try:
        invalid = _has_lone_surrogates(name) or _has_lone_surrogates(value)
    except RecursionError:
        raise _error("the request object is nested too deeply") from None
    if invalid:
        raise _error("the request object is not valid UTF-8")
    if isinstance(value, str):
        return value
    if name == "max_age" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if name == "claims" and isinstance(value, dict):
        return value
    raise _error(f"the request object member {name[:64]} has an invalid type")


def merge_request_object(parameters: Mapping[str, Any],
                         claims: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters to use: the object's members over the query's (OIDC Core 6.3.3).

    The query must carry ``response_type`` and a ``scope`` containing
    ``openid`` (OIDC Core 6.1); ``client_id`` and ``response_type`` in the
    object must equal the query's. JWT claims (``iss``, ``aud``, ``exp``...)
    are not request parameters and are dropped; ``request``/``request_uri``
    inside the object are refused (OIDC Core 6.1).

    :raises InvalidAuthenticationRequest: ``invalid_request_object`` or
        ``invalid_request``.
    """
    if "request_uri" in parameters:
        raise _error("request and request_uri must not be used together", "invalid_request")
    if not isinstance(parameters.get("response_type"), str):
        raise _error("response_type must also be sent as a query parameter (OIDC Core 6.1)",
                     "invalid_request")
    scope = parameters.get("scope")
    if not isinstance(scope, str) or "openid" not in scope.split():
        raise _error("scope with openid must also be sent as a query parameter "
                     "(OIDC Core 6.1)", "invalid_request")
    if "request" in claims or "request_uri" in claims:
        raise _error("a request object must not contain request or request_uri")
    if "client_id" in claims and claims["client_id"] != parameters.get("client_id"):
        raise _error("the request object client_id differs from the query's")
    if "response_type" in claims and (
            not isinstance(claims["response_type"], str)
            or response_type_set(claims["response_type"])
            != response_type_set(parameters["response_type"])):
        raise _error("the request object response_type differs from the query's")

    merged: dict[str, Any] = {name: value for name, value in parameters.items()
                              if name != "request"}
    for name, value in claims.items():
        if name in JWT_CLAIMS:
            continue
        if not isinstance(name, str) or not name:
            continue  # pragma: no cover - JSON object keys are strings
        merged[name] = _as_parameter(name, value)
    return merged


def request_object_parameters(claims: Mapping[str, Any], client_id: str) -> dict[str, Any]:
    """The authorization request parameters of a request object alone (RFC 9101 5: only
    the object's members are used), e.g. one pushed without other parameters (RFC 9126
    3). ``client_id`` is the authenticated client's: the object's, when present, must be
    it. JWT claims (``iss``, ``aud``, ``exp``...) are not request parameters and are
    dropped.

    :raises InvalidAuthenticationRequest: ``invalid_request_object``.
    """
    if "request" in claims or "request_uri" in claims:
        raise _error("a request object must not contain request or request_uri")
    if "client_id" in claims and claims["client_id"] != client_id:
        raise _error("the request object client_id is not the client's")
    parameters: dict[str, Any] = {"client_id": client_id}
    for name, value in claims.items():
        if name in JWT_CLAIMS or name == "client_id":
            continue
        if not isinstance(name, str) or not name:
            continue  # pragma: no cover - JSON object keys are strings
        parameters[name] = _as_parameter(name, value)
    return parameters

