"""Client configuration management (RFC 7592) and per-client allow-lists.

* Registration access tokens (RFC 7592 1.1, 3): 256 bits from :mod:`secrets`,
  returned once; the client record keeps only a salted hash
  (``registration_access_token_hash``, see
  :func:`~pyop.client_authentication.hash_client_secret`), compared in
  constant time.
* Allow-lists: a client's ``scope`` metadata (RFC 7591 2: the scope values the
  client may request) and the host-set ``allowed_claims`` limit what it can be
  granted. Requests beyond them are narrowed, never widened.

:class:`~pyop.provider.Provider` uses these functions; hosts use the provider's
``handle_client_*_request`` methods and ``rotate_client_secret``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Optional
from urllib.parse import quote

from .access_token import get_header
from .client_authentication import client_secret_matches, hash_client_secret
from .client_certificate import TLS_CLIENT_AUTH_SUBJECT_MEMBERS
from .exceptions import BearerTokenError
from .id_token import PROTECTED_CLAIMS
from .message import RegistrationRequest

__all__ = [
    "SERVER_MANAGED_METADATA",
    "CLIENT_SETTABLE_METADATA",
    "EXTENSION_CLIENT_METADATA",
    "DEFAULT_REGISTRATION_CLIENT_URI_TEMPLATE",
    "new_registration_access_token",
    "registration_access_token_matches",
    "registration_bearer_token",
    "registration_client_uri",
    "uses_client_secret",
    "client_allowed_scope",
    "client_allowed_claims",
    "narrow_scope",
    "narrow_claims",
    "narrow_claims_request",
]

#: Members of a client information response that only the provider sets (RFC 7592 2.2, 3):
#: ignored in the body of an update request.
SERVER_MANAGED_METADATA = frozenset({
    "client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at",
    "registration_access_token", "registration_client_uri"})

#: Client metadata of the extensions pyop implements, beyond OIDC Dynamic Registration 2:
#: registered and updated as the metadata below, checked by :mod:`pyop.registration`:
#: ``require_pushed_authorization_requests`` (RFC 9126 6), ``require_signed_request_object``
#: (RFC 9101 10.5), ``authorization_signed_response_alg`` (JARM 4).
EXTENSION_CLIENT_METADATA = frozenset({
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "authorization_signed_response_alg",
})

#: Client metadata a client sets through registration and update requests (OIDC Dynamic
#: Registration 2, plus ``scope`` of RFC 7591 2, :data:`EXTENSION_CLIENT_METADATA`, the
#: mutual TLS metadata of RFC 8705 2.1.2 and 3.4, and ``dpop_bound_access_tokens`` of RFC
#: 9449 5.2, kept only when the provider supports DPoP).
#: Other members of a client record (``allowed_claims``, hashes, the host's own) are the
#: host's and survive updates.
CLIENT_SETTABLE_METADATA = (frozenset(RegistrationRequest.c_param) | {"scope"}
                            | EXTENSION_CLIENT_METADATA
                            | frozenset(TLS_CLIENT_AUTH_SUBJECT_MEMBERS)
                            | {"tls_client_certificate_bound_access_tokens",
                               "dpop_bound_access_tokens"})

#: Default format of ``registration_client_uri``: ``{registration_endpoint}`` and
#: ``{client_id}`` (percent-encoded) are replaced.
DEFAULT_REGISTRATION_CLIENT_URI_TEMPLATE = "{registration_endpoint}/{client_id}"

#: Authentication methods without a client secret (RFC 7591 2, RFC 8705 2).
_SECRETLESS_AUTH_METHODS = frozenset({"none", "private_key_jwt", "tls_client_auth",
                                      "self_signed_tls_client_auth"})

#: Claims about the authentication itself, not the end-user: never narrowed away.
_AUTHENTICATION_CLAIMS = PROTECTED_CLAIMS | {"auth_time", "acr", "amr"}

#: Compared against when a client has no token hash, so that an unknown client costs about
#: as much time as a wrong token.
_DUMMY_HASH = hash_client_secret(secrets.token_urlsafe(32))


def new_registration_access_token() -> str:
    """A new registration access token: 256 random bits, base64url (RFC 7592 1.1)."""
    return secrets.token_urlsafe(32)


def registration_access_token_matches(client: Optional[Mapping[str, Any]],
                                      presented: str) -> bool:
    """Whether ``presented`` is the client's registration access token (constant time).

    ``client`` may be None (unknown client): the comparison still runs, against a
    dummy hash, and fails.
    """
    stored = client.get("registration_access_token_hash") if client is not None else None
    if not isinstance(stored, str) or not stored:
        client_secret_matches({"client_secret_hash": _DUMMY_HASH}, presented)
        return False
    return client_secret_matches({"client_secret_hash": stored}, presented)


def registration_bearer_token(http_headers: Optional[Any]) -> Optional[str]:
    """The bearer token of the ``Authorization`` header (RFC 6750 2.1), or None.

    Only the header is read: the form body (RFC 6750 2.2) does not apply to the
    JSON, GET and DELETE requests of RFC 7592, and tokens in URLs (2.3) are
    refused. A repeated or malformed header gives None.
    """
    try:
        header = get_header(http_headers, "Authorization")
    except BearerTokenError:  # repeated header
        return None
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def registration_client_uri(template: str, registration_endpoint: str, client_id: str) -> str:
    """The client configuration endpoint URL of a client (RFC 7592 3)."""
    return template.format(registration_endpoint=registration_endpoint.rstrip("/"),
                           client_id=quote(client_id, safe=""))


def uses_client_secret(client: Mapping[str, Any]) -> bool:
    """Whether the client's ``token_endpoint_auth_method`` uses a client secret."""
    method = client.get("token_endpoint_auth_method", "client_secret_basic")
    return method not in _SECRETLESS_AUTH_METHODS


def _names(value: Any) -> Optional[frozenset[str]]:
    if value is None:  # no allow-list: the usual case
        return None
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(v for v in value if isinstance(v, str))
    return None


def client_allowed_scope(client: Mapping[str, Any]) -> Optional[frozenset[str]]:
    """The scope values the client may be granted (its ``scope`` metadata, RFC 7591 2),
    or None when it is not limited."""
    return _names(client.get("scope"))


def client_allowed_claims(client: Mapping[str, Any]) -> Optional[frozenset[str]]:
    """The end-user claims the client may receive (host-set ``allowed_claims``), or None
    when it is not limited."""
    return _names(client.get("allowed_claims"))


def narrow_scope(scope: Iterable[str], client: Mapping[str, Any]) -> list[str]:
    """``scope`` without the values outside the client's allow-list, in order."""
    allowed = client_allowed_scope(client)
    if allowed is None:
        return list(scope)
    return [value for value in scope if value in allowed]


def narrow_claims(claims: Mapping[str, Any], client: Mapping[str, Any]) -> dict[str, Any]:
    """``claims`` (claim name -> request) without the end-user claims outside the client's
    ``allowed_claims``; ``sub`` and the claims about the authentication (``auth_time``,
    ``acr``, ``amr``...) are kept."""
    allowed = client_allowed_claims(client)
    if allowed is None:
        return dict(claims)
    return {name: value for name, value in claims.items()
            if name in allowed or name in _AUTHENTICATION_CLAIMS}


def narrow_claims_request(claims_request: Mapping[str, Any],
                          client: Mapping[str, Any]) -> dict[str, Any]:
    """A ``claims`` request parameter (OIDC Core 5.5) narrowed with :func:`narrow_claims`
    in its ``userinfo`` and ``id_token`` members; other members are kept as they are."""
    narrowed = dict(claims_request)
    for member in ("userinfo", "id_token"):
        value: Any = narrowed.get(member)
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        if isinstance(value, Mapping):
            narrowed[member] = narrow_claims(value, client)
    return narrowed
