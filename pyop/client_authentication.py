"""Client authentication at the token endpoint (RFC 6749 2.3, OIDC Core 9).

``client_secret_basic``, ``client_secret_post`` and ``none`` are handled here;
JWT assertions (``client_secret_jwt``, ``private_key_jwt``) by
:class:`~pyop.client_assertion.ClientAssertionVerifier`; mutual TLS (``tls_client_auth``,
``self_signed_tls_client_auth``, RFC 8705 2) with :mod:`pyop.client_certificate`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union
from urllib.parse import unquote, unquote_plus  # noqa: F401 - unquote: a pyop 3 name here

from .access_token import get_header
from .client_assertion import JWT_BEARER_ASSERTION_TYPE, ClientAssertionVerifier
from .client_certificate import (
    TLS_CLIENT_AUTH_METHODS,
    ClientCertificate,
    parse_client_certificate,
    self_signed_certificate_matches,
    tls_client_auth_matches,
)
from .exceptions import InvalidClientAuthentication, InvalidClientCertificate, InvalidRequestError
from .util import is_valid_identifier

__all__ = ["authenticate_client", "verify_client_authentication", "parse_basic_authorization",
           "hash_client_secret", "client_secret_matches", "SUPPORTED_AUTH_METHODS"]

logger = logging.getLogger(__name__)

#: Client authentication methods this module implements.
SUPPORTED_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt",
                          "private_key_jwt", "none", *TLS_CLIENT_AUTH_METHODS)

#: ``(client_id, client metadata, refetch) -> (JWKs or None, fresh)``: a client's public
#: keys (see :class:`~pyop.client_keys.ClientKeys`), for ``self_signed_tls_client_auth``.
KeyResolver = Callable[[str, Mapping[str, Any], bool],
                       tuple[Optional[list[dict[str, Any]]], bool]]


def parse_basic_authorization(header: str) -> tuple[str, str]:
    """Decode ``Basic base64(urlencode(id) ":" urlencode(secret))`` (RFC 6749 2.3.1, RFC 7617).

    Raises :class:`InvalidClientAuthentication` for anything malformed.
    """
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        raise InvalidClientAuthentication("malformed Basic authorization header")
    decoded: Optional[str]
    try:
        # base64.b64decode(..., validate=True), without its Python wrapper
        decoded = binascii.a2b_base64(credentials.strip(), strict_mode=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        decoded = None
    # raised outside the except clause: a UnicodeDecodeError holds the decoded credentials,
    # and must not end up in the new error's __context__
    if decoded is None or ":" not in decoded:
        raise InvalidClientAuthentication("malformed Basic authorization header")
    client_id, client_secret = decoded.split(":", 1)
    # (unquote_plus changes nothing without "%" or "+")
    if "%" in decoded or "+" in decoded:
        client_id, client_secret = unquote_plus(client_id), unquote_plus(client_secret)
    if not is_valid_identifier(client_id):  # empty, or control characters (never stored)
        raise InvalidClientAuthentication("malformed Basic authorization header")
    return client_id, client_secret


#: Prefix of the hashes made by :func:`hash_client_secret`.
_HMAC_SHA256 = "hmac_sha256"
#: Prefix of PBKDF2 hashes, accepted for secrets a host provisions itself.
_PBKDF2_SHA256 = "pbkdf2_sha256"
#: Bound on PBKDF2 iterations read from storage, so a bad record cannot stall a request.
_MAX_PBKDF2_ITERATIONS = 10_000_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def hash_client_secret(client_secret: str) -> str:
    """A salted hash of a client secret, to store as ``client_secret_hash``.

    Format: ``hmac_sha256$<salt>$<digest>`` (base64url), where ``digest`` is
    HMAC-SHA256 keyed with a per-client random 128-bit salt over the UTF-8
    secret.

    Why not a slow KDF (PBKDF2, scrypt, Argon2)? Those exist to make guessing
    *low-entropy* passwords expensive. The secrets this library issues are 256
    bits from :mod:`secrets` (``secrets.token_urlsafe(32)``): nobody can
    enumerate them, fast hash or not, so a slow KDF would add no security,
    only cost -- and this check runs on every token request (PBKDF2 at a
    recommended 600 000 iterations is ~0.3 s of CPU per request, a gift to
    anyone flooding the token endpoint). A salted HMAC-SHA256 costs a few
    microseconds. What the hash protects against is a reader of the client
    storage (backup, replica, log of a query) turning what they read into
    working credentials; the salt keeps equal secrets from having equal
    hashes.

    Secrets chosen by people are another matter: hosts that provision such
    secrets themselves can store ``pbkdf2_sha256$<iterations>$<salt>$<digest>``
    (base64url salt and digest, e.g. from :func:`hashlib.pbkdf2_hmac`), which
    :func:`client_secret_matches` also verifies.
    """
    salt = secrets.token_bytes(16)
    digest = hmac.new(salt, client_secret.encode("utf-8"), hashlib.sha256).digest()
    return f"{_HMAC_SHA256}${_b64(salt)}${_b64(digest)}"


def _hash_matches(stored: str, presented: bytes) -> bool:
    parts = stored.split("$")
    try:
        if parts[0] == _HMAC_SHA256 and len(parts) == 3:
            salt, expected = _unb64(parts[1]), _unb64(parts[2])
            computed = hmac.new(salt, presented, hashlib.sha256).digest()
        elif parts[0] == _PBKDF2_SHA256 and len(parts) == 4:
            iterations = int(parts[1])
            if not 0 < iterations <= _MAX_PBKDF2_ITERATIONS:
                return False
            salt, expected = _unb64(parts[2]), _unb64(parts[3])
            computed = hashlib.pbkdf2_hmac("sha256", presented, salt, iterations)
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return len(expected) >= 16 and hmac.compare_digest(computed, expected)


def client_secret_matches(client: Mapping[str, Any], presented: str) -> bool:
    """Whether ``presented`` is the client's secret, compared in constant time.

    Uses ``client_secret_hash`` (see :func:`hash_client_secret`) when the
    client metadata has one, else ``client_secret``. A client with neither
    never matches.
    """
    try:
        presented_bytes = presented.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        return False
    stored_hash = client.get("client_secret_hash")
    if stored_hash is not None:
        return isinstance(stored_hash, str) and _hash_matches(stored_hash, presented_bytes)
    expected = client.get("client_secret")
    if not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented_bytes)


def verify_client_authentication(
    clients: Mapping[str, Any],
    parsed_request: Mapping[str, Any],
    http_headers: Optional[Any] = None,
    *,
    authz_header: Optional[str] = None,
    now: Optional[float] = None,
    assertion_verifier: Optional[ClientAssertionVerifier] = None,
    audiences: Iterable[str] = (),
) -> str:
    """Authenticate the client of a token request (RFC 6749 2.3); returns its ``client_id``.

    The third argument is the request's headers (any mapping) or, as in pyop 3, the
    ``Authorization`` header value itself (a string); ``authz_header=`` (pyop 3's keyword)
    gives the header value too. See :func:`authenticate_client`, which also returns the
    client's metadata.

    :raises InvalidClientAuthentication: as :func:`authenticate_client`.
    :raises InvalidRequestError: as :func:`authenticate_client`.
    """
    if isinstance(http_headers, str):
        http_headers = {"Authorization": http_headers}
    if authz_header is not None:
        if http_headers is not None:
            raise TypeError("give the headers or authz_header, not both")
        http_headers = {"Authorization": authz_header}
    return authenticate_client(clients, parsed_request, http_headers, now=now,
                               assertion_verifier=assertion_verifier, audiences=audiences)[0]


def authenticate_client(
    clients: Mapping[str, Any],
    parsed_request: Mapping[str, Any],
    http_headers: Optional[Any] = None,
    *,
    now: Optional[float] = None,
    assertion_verifier: Optional[ClientAssertionVerifier] = None,
    audiences: Iterable[str] = (),
    client_certificate: Union[None, str, bytes, ClientCertificate] = None,
    key_resolver: Optional[KeyResolver] = None,
) -> tuple[str, Mapping[str, Any]]:
    """Authenticate the client of a token request; returns ``(client_id, metadata)``.

    The method used must be the client's registered
    ``token_endpoint_auth_method`` (default ``client_secret_basic``, OIDC
    Dynamic Registration 2). Secrets are compared in constant time. Clients
    must not use more than one method (RFC 6749 2.3).

    A ``client_assertion`` (RFC 7523 2.2, OIDC Core 9) is verified by
    ``assertion_verifier`` with ``audiences`` as the accepted ``aud`` values;
    without a verifier, assertions are refused.

    A client registered for mutual TLS (RFC 8705 2) sends its ``client_id`` in the body and
    nothing else; ``client_certificate`` is the certificate the host's TLS layer verified
    (PEM, DER or parsed): for ``tls_client_auth`` its subject DN or a SAN must match the
    client's metadata (2.1.2), for ``self_signed_tls_client_auth`` it must be one of the
    client's registered keys, resolved by ``key_resolver`` (2.2.2).

    :raises InvalidClientAuthentication: unknown client, wrong or missing secret,
        wrong method, invalid assertion, missing, malformed or unmatched client
        certificate (:class:`InvalidClientCertificate`) (401 ``invalid_client``).
    :raises InvalidRequestError: credentials both in the header and the body,
        an assertion together with another method.
    """
    try:
        authz_header = get_header(http_headers, "Authorization")
    except ValueError as e:
        raise InvalidRequestError("duplicate Authorization header") from e
    body_id = parsed_request.get("client_id")
    body_secret = parsed_request.get("client_secret")
    if isinstance(body_id, list) or isinstance(body_secret, list):
        raise InvalidRequestError("duplicate client credentials")
    if "client_assertion" in parsed_request or "client_assertion_type" in parsed_request:
        return _authenticate_by_assertion(clients, parsed_request, authz_header, now=now,
                                          verifier=assertion_verifier, audiences=audiences)

    if authz_header is not None and authz_header.strip():
        if body_secret is not None:
            raise InvalidRequestError("client credentials both in the header and the body")
        client_id, secret = parse_basic_authorization(authz_header)
        if body_id is not None and body_id != client_id:
            raise InvalidRequestError("client_id in the body differs from the header")
        method = "client_secret_basic"
    elif body_secret is not None:
        if not isinstance(body_id, str):
            raise InvalidClientAuthentication("client_secret without client_id")
        client_id, secret, method = body_id, body_secret, "client_secret_post"
    elif isinstance(body_id, str):
        client_id, secret, method = body_id, "", "none"
    else:
        raise InvalidClientAuthentication("no client authentication in the request")

    if not is_valid_identifier(client_id):  # never looked up (see is_valid_identifier)
        raise InvalidClientAuthentication("unknown client or wrong credentials")
    client = clients.get(client_id) if hasattr(clients, "get") else None
    if type(client) is not dict and not isinstance(client, Mapping):
        logger.info("token request from unknown client")
        raise InvalidClientAuthentication("unknown client or wrong credentials")
    registered = client.get("token_endpoint_auth_method", "client_secret_basic")
    if method == "none" and registered in TLS_CLIENT_AUTH_METHODS:
        _check_client_certificate(client_id, client, registered, client_certificate,
                                  key_resolver)
        return client_id, client
    if method != registered:
        raise InvalidClientAuthentication(
            f"client must authenticate with {registered}")
    if method != "none":
        if not client_secret_matches(client, secret):
            raise InvalidClientAuthentication("unknown client or wrong credentials")
        expires_at = client.get("client_secret_expires_at")
        if now is not None and isinstance(expires_at, int) and 0 < expires_at <= now:
            raise InvalidClientAuthentication("client secret expired")
    return client_id, client


def _check_client_certificate(client_id: str, client: Mapping[str, Any], method: str,
                              client_certificate: Union[None, str, bytes, ClientCertificate],
                              key_resolver: Optional[KeyResolver]) -> None:
    """``tls_client_auth`` / ``self_signed_tls_client_auth`` (RFC 8705 2.1, 2.2).

    :raises InvalidClientCertificate: no certificate, a malformed one, or one the client
        did not register."""
    if client_certificate is None:
        raise InvalidClientCertificate(f"client must authenticate with {method}: "
                                       "no client certificate")
    certificate = parse_client_certificate(client_certificate)
    if method == "tls_client_auth":
        if not tls_client_auth_matches(client, certificate):
            logger.info("client %s: the certificate does not match its registration",
                        client_id)
            raise InvalidClientCertificate("unknown client or wrong credentials")
        return
    if key_resolver is None:
        raise InvalidClientCertificate("self_signed_tls_client_auth is not available")
    jwks, fresh = key_resolver(client_id, client, False)
    if self_signed_certificate_matches(jwks, certificate):
        return
    if not fresh:  # a jwks_uri document cached before the client added its certificate
        jwks, _ = key_resolver(client_id, client, True)
        if self_signed_certificate_matches(jwks, certificate):
            return
    logger.info("client %s: the certificate is not one of its registered keys", client_id)
    raise InvalidClientCertificate("unknown client or wrong credentials")


def _authenticate_by_assertion(
    clients: Mapping[str, Any],
    parsed_request: Mapping[str, Any],
    authz_header: Optional[str],
    *,
    now: Optional[float],
    verifier: Optional[ClientAssertionVerifier],
    audiences: Iterable[str],
) -> tuple[str, Mapping[str, Any]]:
    """``client_secret_jwt`` / ``private_key_jwt`` (RFC 7521 4.2, RFC 7523 2.2)."""
    if ((authz_header is not None and authz_header.strip())
            or parsed_request.get("client_secret") is not None):
        raise InvalidRequestError("more than one client authentication method")
    assertion_type = parsed_request.get("client_assertion_type")
    assertion = parsed_request.get("client_assertion")
    if isinstance(assertion_type, list) or isinstance(assertion, list):
        raise InvalidRequestError("duplicate client assertion parameters")
    if assertion_type is None or assertion is None:
        raise InvalidRequestError("client_assertion and client_assertion_type go together")
    if assertion_type != JWT_BEARER_ASSERTION_TYPE:
        raise InvalidClientAuthentication("unsupported client_assertion_type")
    if verifier is None:
        raise InvalidClientAuthentication("client assertions are not accepted here")
    body_id = parsed_request.get("client_id")
    client_id, client, _method = verifier.verify(
        assertion, clients, audiences=audiences,
        now=now if now is not None else time.time(),
        client_id=body_id if body_id is not None else None)
    return client_id, client
