"""JWT client assertions: ``client_secret_jwt`` and ``private_key_jwt``.

RFC 7523 2.2 and 3, RFC 7521 4.2, OIDC Core 9. The client sends
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
and ``client_assertion``, a JWT whose ``iss`` and ``sub`` are its client_id,
whose ``aud`` names this provider, and which is signed

* with HS256/HS384/HS512 keyed with the client's ``client_secret``
  (``client_secret_jwt``), or
* with one of the client's registered public keys (``jwks`` or ``jwks_uri``)
  and an asymmetric algorithm of :data:`pyop.crypto.SUPPORTED_ALGS`
  (``private_key_jwt``).

Each assertion is single-use: its ``jti`` is recorded with the atomic
:meth:`~pyop.storage.StorageBase.add` of the storage contract until the
assertion expires, so of any number of concurrent presentations exactly one
authenticates, on every backend.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

from .crypto import OPT_IN_ALGS, SUPPORTED_ALGS, JWSError, b64url_decode, jws_verify
from .exceptions import InvalidClientAuthentication
from .jwt_checks import MAX_JTI_LENGTH, is_numeric_date, jwt_type, use_jti_once
from .request_object import verification_keys
from .util import is_valid_identifier

__all__ = [
    "JWT_BEARER_ASSERTION_TYPE",
    "HMAC_ALGS",
    "DEFAULT_MAX_ASSERTION_LIFETIME",
    "ASSERTION_LEEWAY",
    "MAX_ASSERTION_SIZE",
    "ClientAssertionVerifier",
    "assertion_signing_algs",
    "method_for_alg",
    "ASSERTION_AUDIENCES",
    "ASSERTION_TYPES",
]

logger = logging.getLogger(__name__)

#: ``client_assertion_type`` of JWT client assertions (RFC 7523 2.2).
JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: Algorithms of ``client_secret_jwt`` (OIDC Core 9; RFC 7518 3.2).
HMAC_ALGS = ("HS256", "HS384", "HS512")

#: Default bound on ``exp - now`` of an assertion, in seconds: assertions are
#: meant to be made for one request, and a short life bounds the replay store.
DEFAULT_MAX_ASSERTION_LIFETIME = 300

#: Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat`` (RFC 7523 3, items 4-6).
ASSERTION_LEEWAY = 60

#: Longest ``client_assertion`` accepted, in characters.
MAX_ASSERTION_SIZE = 16 * 1024

#: Values of the ``client_assertion_audiences`` option: what ``aud`` may be.
#: ``"issuer"`` (default): the issuer identifier, as a single string (RFC 7523bis, the fix
#: for audience injection: an assertion made for another server's metadata cannot be
#: replayed here). ``"issuer-or-endpoint"``: also the token endpoint URL or the URL of the
#: endpoint called, and an array containing one of them (RFC 7523 3, OIDC Core 9).
ASSERTION_AUDIENCES = ("issuer", "issuer-or-endpoint")

#: Values of the JWS ``typ`` header accepted on an assertion (RFC 8725 3.11): none, the
#: generic ``JWT``/``JOSE``, or ``client-authentication+jwt`` (RFC 7523bis); any other type
#: (``oauth-authz-req+jwt``, ``at+jwt``, ``logout+jwt``...) marks another kind of JWT.
ASSERTION_TYPES = frozenset(["jwt", "jose", "client-authentication+jwt"])

#: ``kind`` of the ``jti`` records (see :func:`pyop.jwt_checks.use_jti_once`).
_JTI_KIND = "client_assertion_jti"

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}

#: ``(client_id, client metadata, refetch) -> (JWKs or None, fresh)``: the client's
#: public keys, and whether they are as fresh as can be (so a refetch would not help).
KeyResolver = Callable[[str, Mapping[str, Any], bool],
                       tuple[Optional[list[dict[str, Any]]], bool]]


def assertion_signing_algs(methods: Iterable[str]) -> list[str]:
    """The JWS algorithms accepted for the given authentication methods.

    HS256/384/512 for ``client_secret_jwt``, :data:`pyop.crypto.SUPPORTED_ALGS`
    for ``private_key_jwt`` (OIDC Discovery 3,
    ``token_endpoint_auth_signing_alg_values_supported``), less the algorithms accepted
    only when configured (``Ed25519``, RFC 9864 2.2: see :data:`pyop.crypto.OPT_IN_ALGS`).
    """
    methods = list(methods)
    algs: list[str] = []
    if "client_secret_jwt" in methods:
        algs.extend(HMAC_ALGS)
    if "private_key_jwt" in methods:
        algs.extend(sorted(SUPPORTED_ALGS - OPT_IN_ALGS))
    return algs


def method_for_alg(alg: str) -> Optional[str]:
    """The authentication method an assertion signed with ``alg`` belongs to, or None."""
    if alg in HMAC_ALGS:
        return "client_secret_jwt"
    if alg in SUPPORTED_ALGS:
        return "private_key_jwt"
    return None


def _fail(message: str) -> InvalidClientAuthentication:
    return InvalidClientAuthentication(message)


def _decode_part(part: str) -> Any:
    try:
        return json.loads(b64url_decode(part))
    except (JWSError, ValueError, UnicodeDecodeError, RecursionError):
        return None


class ClientAssertionVerifier:
    """Verifies JWT client assertions (RFC 7523 3, OIDC Core 9) and makes them single-use.

    :param replay_store: a pyop storage (anything with the contract's atomic
        ``add``) where used ``jti`` values are kept until the assertion expires;
        it must be shared by all the workers of the provider.
    :param key_resolver: ``(client_id, metadata, refetch) -> (jwks, fresh)``, the
        client's public keys for ``private_key_jwt``; without it only
        ``client_secret_jwt`` works.
    :param max_lifetime: assertions whose ``exp`` is more than this many seconds
        ahead are refused.
    :param leeway: clock skew tolerated, in seconds.
    :param allowed_algs: returns the algorithms accepted (e.g. the provider's
        ``token_endpoint_auth_signing_alg_values_supported``); default: all of
        :data:`HMAC_ALGS` and :data:`pyop.crypto.SUPPORTED_ALGS`.
    :param audience_policy: one of :data:`ASSERTION_AUDIENCES`: with ``"issuer"``
        (default) ``aud`` must be a single string naming one of the ``audiences`` given
        to :meth:`verify`; with ``"issuer-or-endpoint"`` an array naming one is accepted
        too.
    """

    def __init__(self, replay_store: Any, key_resolver: Optional[KeyResolver] = None, *,
                 max_lifetime: int = DEFAULT_MAX_ASSERTION_LIFETIME,
                 leeway: int = ASSERTION_LEEWAY,
                 allowed_algs: Optional[Callable[[], Iterable[str]]] = None,
                 audience_policy: str = "issuer") -> None:
        if audience_policy not in ASSERTION_AUDIENCES:
            raise ValueError("audience_policy must be one of " + ", ".join(ASSERTION_AUDIENCES))
        self.replay_store = replay_store
        self.key_resolver = key_resolver
        self.max_lifetime = max_lifetime
        self.leeway = leeway
        self.allowed_algs = allowed_algs
        self.audience_policy = audience_policy

    def verify(self, assertion: Any, clients: Mapping[str, Any], *, audiences: Iterable[str],
               now: float, client_id: Optional[str] = None
               ) -> tuple[str, Mapping[str, Any], str]:
        """Authenticate a client by its assertion; returns ``(client_id, metadata, method)``.

        Checks, in order (RFC 7523 3; RFC 7521 4.2; OIDC Core 9): size and
        form; ``alg`` (never ``none``; HS* only with ``client_secret_jwt``,
        asymmetric only with ``private_key_jwt``; the client's
        ``token_endpoint_auth_signing_alg`` when registered); ``iss`` = ``sub``
        = the client (= ``client_id`` when given); the signature; ``aud``
        naming one of ``audiences``; ``exp`` (required, not past, at most
        ``max_lifetime`` ahead), ``nbf`` and ``iat`` when present; and last
        ``jti``, recorded atomically so the assertion is accepted once.

        :param clients: the client metadata store.
        :param audiences: identifiers of this provider accepted in ``aud``.
        :param now: the current UNIX time.
        :param client_id: the ``client_id`` request parameter, if sent.
        :raises InvalidClientAuthentication: any failure (401 ``invalid_client``);
            the message names the failed check, never a secret.
        """
        if not isinstance(assertion, str) or not assertion:
            raise _fail("missing client_assertion")
        if len(assertion) > MAX_ASSERTION_SIZE:
            raise _fail("client_assertion too large")
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _fail("client_assertion is not a signed JWT")
        header, claims = _decode_part(parts[0]), _decode_part(parts[1])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _fail("malformed client_assertion")
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise _fail("client_assertion alg is missing, none or not supported")
        method = method_for_alg(alg)
        if method is None or (self.allowed_algs is not None
                              and alg not in set(self.allowed_algs())):
            raise _fail("client_assertion alg is missing, none or not supported")
        if "crit" in header:
            raise _fail("client_assertion has unsupported critical header parameters")
        typ = jwt_type(header)
        if typ is not None and typ not in ASSERTION_TYPES:
            raise _fail("client_assertion typ marks another kind of JWT")

        issuer, subject = claims.get("iss"), claims.get("sub")
        if not isinstance(issuer, str) or not is_valid_identifier(issuer) or subject != issuer:
            raise _fail("client_assertion iss and sub must both be the client_id")
        if client_id is not None and client_id != issuer:
            raise _fail("client_id differs from the client_assertion issuer")
        try:
            client = clients.get(issuer)
        except (TypeError, ValueError):
            client = None
        if not isinstance(client, Mapping):
            logger.info("client assertion from an unknown client")
            raise _fail("unknown client or wrong credentials")
        registered = client.get("token_endpoint_auth_method", "client_secret_basic")
        if registered != method:
            raise _fail(f"client must authenticate with {registered}")
        registered_alg = client.get("token_endpoint_auth_signing_alg")
        if registered_alg is not None and registered_alg != alg:
            raise _fail("client_assertion alg differs from the registered one")

        if method == "client_secret_jwt":
            self._check_hmac(assertion, alg, issuer, client, now)
        else:
            self._check_signature(assertion, alg, header.get("kid"), issuer, client)
        expires_at = self._check_claims(claims, audiences, now)
        self._check_unused(issuer, claims.get("jti"), expires_at)
        return issuer, client, method

    @staticmethod
    def _check_hmac(assertion: str, alg: str, client_id: str, client: Mapping[str, Any],
                    now: float) -> None:
        secret = client.get("client_secret")
        if not isinstance(secret, str) or not secret:
            # e.g. only a client_secret_hash is stored: no key to check the MAC with
            logger.warning("client %s: no client_secret stored for client_secret_jwt", client_id)
            raise _fail("unknown client or wrong credentials")
        expires = client.get("client_secret_expires_at")
        if isinstance(expires, int) and 0 < expires <= now:
            raise _fail("client secret expired")
        signing_input, _, signature_b64 = assertion.rpartition(".")
        try:
            signature = b64url_decode(signature_b64)
        except JWSError as e:
            raise _fail("malformed client_assertion") from e
        expected = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii", "replace"),
                            _HMAC_HASHES[alg]).digest()
        if not hmac.compare_digest(expected, signature):
            raise _fail("client_assertion signature verification failed")

    def _check_signature(self, assertion: str, alg: str, kid: Any, client_id: str,
                         client: Mapping[str, Any]) -> None:
        resolver = self.key_resolver
        if resolver is None:
            raise _fail("private_key_jwt is not available")

        def verify(refetch: bool) -> bool:
            jwks, fresh = resolver(client_id, client, refetch)
            try:
                jws_verify(assertion, verification_keys(jwks or [], alg, kid))
            except JWSError:
                if fresh:
                    raise _fail("client_assertion signature verification failed") from None
                return False
            return True

        # keys from a cached jwks_uri document may be stale (key rotation): refetch once
        if not verify(False) and not verify(True):
            raise _fail("client_assertion signature verification failed")

    def _check_claims(self, claims: Mapping[str, Any], audiences: Iterable[str],
                      now: float) -> float:
        aud = claims.get("aud")
        if self.audience_policy == "issuer" and not isinstance(aud, str):
            raise _fail("client_assertion aud must be the issuer identifier, a single string")
        aud_values = [aud] if isinstance(aud, str) else aud
        if (not isinstance(aud_values, list) or not aud_values
                or not all(isinstance(value, str) for value in aud_values)):
            raise _fail("client_assertion aud is missing or malformed")
        if not set(aud_values) & set(audiences):
            raise _fail("client_assertion aud does not name this provider")
        exp: Any = claims.get("exp")
        if not is_numeric_date(exp):  # NaN and infinities too: they compare false
            raise _fail("client_assertion exp is missing or not a number")
        if exp + self.leeway <= now:
            raise _fail("client_assertion expired")
        if exp - now > self.max_lifetime:
            raise _fail("client_assertion lives too long (exp too far in the future)")
        for name in ("nbf", "iat"):
            if name not in claims:
                continue
            value = claims[name]
            if not is_numeric_date(value):  # null too: RFC 7519 4.1.5-4.1.6, a NumericDate
                raise _fail(f"client_assertion {name} is not a number")
            if value > now + self.leeway:
                raise _fail(f"client_assertion {name} is in the future")
        return float(exp) + self.leeway

    def _check_unused(self, client_id: str, jti: Any, expires_at: float) -> None:
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise _fail("client_assertion jti is missing or malformed")
        if not use_jti_once(self.replay_store, _JTI_KIND, client_id, jti, expires_at):
            logger.warning("client %s: client assertion replayed", client_id)
            raise _fail("client_assertion already used")
