"""Client authentication at the token endpoint (RFC 6749 2.3, OIDC Core 9)."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import unquote_plus

from .access_token import get_header
from .exceptions import InvalidClientAuthentication, InvalidRequestError

__all__ = ["authenticate_client", "verify_client_authentication", "parse_basic_authorization",
           "SUPPORTED_AUTH_METHODS"]

logger = logging.getLogger(__name__)

#: Client authentication methods this module implements.
SUPPORTED_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


def parse_basic_authorization(header: str) -> tuple[str, str]:
    """Decode ``Basic base64(urlencode(id) ":" urlencode(secret))`` (RFC 6749 2.3.1, RFC 7617).

    Raises :class:`InvalidClientAuthentication` for anything malformed.
    """
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        raise InvalidClientAuthentication("malformed Basic authorization header")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise InvalidClientAuthentication("malformed Basic authorization header") from e
    if ":" not in decoded:
        raise InvalidClientAuthentication("malformed Basic authorization header")
    client_id, client_secret = decoded.split(":", 1)
    client_id, client_secret = unquote_plus(client_id), unquote_plus(client_secret)
    if not client_id:
        raise InvalidClientAuthentication("malformed Basic authorization header")
    return client_id, client_secret


def _secret_matches(client: Mapping[str, Any], presented: str) -> bool:
    expected = client.get("client_secret")
    if not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def verify_client_authentication(
    clients: Mapping[str, Any],
    parsed_request: Mapping[str, Any],
    http_headers: Optional[Any] = None,
    *,
    now: Optional[float] = None,
) -> str:
    """Authenticate the client of a token request; returns its ``client_id``.

    See :func:`authenticate_client`, which also returns the client's metadata.
    """
    return authenticate_client(clients, parsed_request, http_headers, now=now)[0]


def authenticate_client(
    clients: Mapping[str, Any],
    parsed_request: Mapping[str, Any],
    http_headers: Optional[Any] = None,
    *,
    now: Optional[float] = None,
) -> tuple[str, Mapping[str, Any]]:
    """Authenticate the client of a token request; returns ``(client_id, metadata)``.

    The method used must be the client's registered
    ``token_endpoint_auth_method`` (default ``client_secret_basic``, OIDC
    Dynamic Registration 2). Secrets are compared in constant time. Clients
    must not use more than one method (RFC 6749 2.3).

    :raises InvalidClientAuthentication: unknown client, wrong or missing secret,
        wrong method (401 ``invalid_client``).
    :raises InvalidRequestError: credentials both in the header and the body.
    """
    try:
        authz_header = get_header(http_headers, "Authorization")
    except ValueError as e:
        raise InvalidRequestError("duplicate Authorization header") from e
    body_id = parsed_request.get("client_id")
    body_secret = parsed_request.get("client_secret")
    if isinstance(body_id, list) or isinstance(body_secret, list):
        raise InvalidRequestError("duplicate client credentials")

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

    client = clients.get(client_id) if hasattr(clients, "get") else None
    if not isinstance(client, Mapping):
        logger.info("token request from unknown client")
        raise InvalidClientAuthentication("unknown client or wrong credentials")
    registered = client.get("token_endpoint_auth_method", "client_secret_basic")
    if method != registered:
        raise InvalidClientAuthentication(
            f"client must authenticate with {registered}")
    if method != "none":
        if not _secret_matches(client, secret):
            raise InvalidClientAuthentication("unknown client or wrong credentials")
        expires_at = client.get("client_secret_expires_at")
        if now is not None and isinstance(expires_at, int) and 0 < expires_at <= now:
            raise InvalidClientAuthentication("client secret expired")
    return client_id, client
