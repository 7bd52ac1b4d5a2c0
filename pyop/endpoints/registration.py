"""Dynamic client registration and the client configuration endpoint.

OIDC Dynamic Registration 1.0: 2 (client metadata), 3.1-3.2 (registration request and
response), 4 (client read); RFC 7591 2-3 (metadata, ``scope``); RFC 7592 2.1-2.3 (read,
update, delete with the registration access token) and 3 (the client information).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any, Optional, cast

from ..client_authentication import client_secret_matches, hash_client_secret
from ..client_certificate import TLS_CLIENT_AUTH_SUBJECT_MEMBERS
from ..client_management import (
    CLIENT_SETTABLE_METADATA,
    EXTENSION_CLIENT_METADATA,
    SERVER_MANAGED_METADATA,
    new_registration_access_token,
    registration_access_token_matches,
    registration_bearer_token,
    registration_client_uri,
    uses_client_secret,
)
from ..client_registry import CLIENT_EXPIRES_AT_MEMBER, DELETED_CLIENT_MEMBER
from ..context import ProviderContext
from ..exceptions import (
    InvalidClientRegistrationRequest,
    InvalidRegistrationAccessToken,
    OAuthError,
    StorageError,
)
from ..message import RegistrationRequest, RegistrationResponse
from ..registration import (
    NARROWED_PREFERENCES,
    check_metadata_bounds,
    describe_invalid_metadata,
    registration_defaults,
    supported_preference_values,
)
from ..util import (
    DEFAULT_MAX_REQUEST_SIZE,
    check_content_type,
    is_valid_identifier,
    strict_json_loads,
    utf8_or_none,
)

__all__ = ["handle_client_registration_request", "match_client_preferences",
           "handle_client_read_request", "handle_client_update_request",
           "handle_client_delete_request", "rotate_client_secret"]

logger = logging.getLogger(__name__)

#: Attempts of a compare-and-set update, deletion or rotation before giving up (each
#: failure means another change of the same client won meanwhile).
MAX_CHANGE_ATTEMPTS = 16

#: Seconds a pyop storage keeps a deleted client's tombstone (RFC 7592 2.3); a dict keeps
#: it until the host removes it. Client ids are random: none is issued twice.
DELETED_CLIENT_RETENTION = 90 * 24 * 3600

#: The media type of registration and update requests (OIDC Dynamic Registration 3.1,
#: RFC 7591 3.1, RFC 7592 2.2).
JSON_MEDIA_TYPE = "application/json"


class _NamedRuleError(ValueError):
    """A metadata error whose message already names the member and the rule."""


def handle_client_registration_request(ctx: ProviderContext, request: Any,
                                       http_headers: Optional[Any] = None
                                       ) -> RegistrationResponse:
    """Register a client (OIDC Dynamic Registration 3.1-3.2): 1. the initial access token
    when required (RFC 7591 3), the media type and the metadata bounds; 2. the host's
    registration policy; 3. the metadata, verified; 4. a new client_id; 5. the
    credentials (secret, registration access token), returned once; 6. the response
    checked before anything is stored.

    :param request: the JSON body (str/bytes) or an already parsed dict.
    :param http_headers: the request headers: ``Authorization: Bearer <initial access
        token>`` when the provider requires one; a ``Content-Type`` other than
        ``application/json`` is refused.
    :raises InvalidRegistrationAccessToken: 401 ``invalid_token``: missing or wrong
        initial access token.
    :raises InvalidClientRegistrationRequest: with ``to_json()`` for the 400 body.
    """
    settings = ctx.registration
    if settings.initial_access_tokens is not None:
        token = registration_bearer_token(http_headers)
        if token is None:
            raise InvalidRegistrationAccessToken("no initial access token",
                                                 token_missing=True)
        if not settings.initial_access_token_accepted(token):
            logger.info("registration request with an invalid initial access token")
            raise InvalidRegistrationAccessToken("invalid initial access token")
    metadata = _parse_request(ctx, request, http_headers)
    registration_req = _verified_request(ctx, metadata)
    # only registered metadata is kept: unknown members are ignored and the
    # credentials are the provider's to issue (OIDC Dynamic Registration 2, 3.2)
    client = _client_metadata(registration_req, ctx.dpop.enabled)
    now = ctx.now()
    expires_at = now + settings.client_lifetime if settings.client_lifetime else None
    while True:
        client_id = secrets.token_urlsafe(16)
        client["client_id"] = client_id
        client["client_id_issued_at"] = now
        if expires_at is not None:
            client[CLIENT_EXPIRES_AT_MEMBER] = expires_at
        response = {name: value for name, value in client.items()
                    if name != CLIENT_EXPIRES_AT_MEMBER}
        if uses_client_secret(client):
            # returned once; expires with the client (RFC 7591 3.2.1: 0 for never)
            response["client_secret"] = _set_client_secret(ctx, client, expires_at or 0)
            response["client_secret_expires_at"] = client["client_secret_expires_at"]
        _issue_registration_access_token(ctx, client, response)
        try:
            registration_response = RegistrationResponse(**response)
        except Exception as e:  # oic refuses a value: nothing is stored (no half-registration)
            raise InvalidClientRegistrationRequest(
                describe_invalid_metadata(response, e), metadata,
                oauth_error="invalid_client_metadata") from e
        if ctx.clients.add(client_id, client, expires_at):
            break
        logger.warning("client id collision; drawing another")  # pragma: no cover
    ctx.client_changed(client_id)
    logger.info("registered client %s", client_id)
    return registration_response


def _parse_request(ctx: ProviderContext, request: Any,
                   http_headers: Optional[Any]) -> dict[str, Any]:
    """The metadata of a registration or update request: its media type, JSON object,
    bounds and the host's registration policy (RFC 7591 3)."""
    check_content_type(http_headers, JSON_MEDIA_TYPE,
                       lambda message: InvalidClientRegistrationRequest(message, None))
    metadata = _parse_body(request)
    check_metadata_bounds(metadata, ctx.registration.limits)
    policy = ctx.registration.policy
    if policy is not None:
        try:
            policy(metadata, http_headers)
        except OAuthError:
            raise
        except ValueError as e:
            raise InvalidClientRegistrationRequest(
                str(e)[:200] or "refused by the registration policy", metadata,
                oauth_error="invalid_client_metadata") from e
    return metadata


def _verified_request(ctx: ProviderContext, metadata: dict[str, Any]) -> RegistrationRequest:
    """Client metadata checked as OIDC Dynamic Registration 2 and the validators say.

    :raises InvalidClientRegistrationRequest: invalid metadata (400).
    """
    if not metadata.get("redirect_uris"):
        raise InvalidClientRegistrationRequest("redirect_uris is required", metadata,
                                               oauth_error="invalid_redirect_uri")
    try:
        registration_req = RegistrationRequest().from_dict(metadata)
        _check_member_types(registration_req)
        registration_req.verify()
    except InvalidClientRegistrationRequest:
        raise
    except Exception as e:  # oic raises many types for bad metadata
        raise InvalidClientRegistrationRequest(
            describe_invalid_metadata(metadata, e) if not isinstance(e, _NamedRuleError)
            else str(e), metadata, oauth_error="invalid_client_metadata") from e
    for validator in ctx.registration_request_validators:
        validator(registration_req)
    matched = match_client_preferences(ctx, registration_req)
    for name in NARROWED_PREFERENCES:
        if name in matched:
            registration_req[name] = matched[name]
    return cast(RegistrationRequest, registration_req)


def _check_member_types(registration_req: RegistrationRequest) -> None:
    for name in ("redirect_uris", "response_types", "grant_types", "contacts",
                 "post_logout_redirect_uris", "default_acr_values", "request_uris"):
        value = registration_req.get(name)
        if value is not None and (not isinstance(value, list) or not all(
                isinstance(v, str) for v in value)):
            raise _NamedRuleError(f"{name}: must be an array of strings")
    for name, value in registration_req.items():
        # single-valued string members: oic turns [x] into x without checking x
        spec = RegistrationRequest.c_param.get(name)
        if (spec is not None and spec[0] is str and name != "jwks"
                and not isinstance(value, str)):
            raise _NamedRuleError(f"{name}: must be a string")


def match_client_preferences(ctx: ProviderContext,
                             client_preferences: Mapping[str, Any]) -> dict[str, Any]:
    """The client's metadata with its list-valued preferences narrowed to what the
    provider supports (OIDC Dynamic Registration 2, 3.2); a new dict.

    ``response_types``, ``grant_types`` and ``default_acr_values`` keep only the
    values listed in ``response_types_supported``, the grant types accepted
    (:attr:`~pyop.provider.Provider.grant_types_supported`) and ``acr_values_supported``
    (when configured),
    in the client's order and spelling; response types are compared as sets of
    space-separated values. The other members are returned unchanged.

    :param client_preferences: a registration request (message or mapping).
    :returns: a new dict; ``client_preferences`` is not changed.
    """
    to_dict = getattr(client_preferences, "to_dict", None)
    matched: dict[str, Any] = dict(to_dict() if callable(to_dict) else client_preferences)
    grant_types = ctx.grant_types_supported()
    for name in NARROWED_PREFERENCES:
        values = supported_preference_values(name, matched, grant_types,
                                             ctx.configuration.metadata)
        if values is not None:
            matched[name] = values
    return matched


#: Client metadata of RFC 8705 (2.1.2, 3.4) kept at registration.
_MTLS_METADATA = frozenset(TLS_CLIENT_AUTH_SUBJECT_MEMBERS) | {
    "tls_client_certificate_bound_access_tokens"}


def _client_metadata(registration_req: RegistrationRequest,
                     dpop: bool = False) -> dict[str, Any]:
    """The members of a verified registration request that are kept, with defaults.

    Only registered metadata is kept: unknown members are ignored and the
    credentials are the provider's to issue (OIDC Dynamic Registration 2, 3.2).
    ``scope`` (RFC 7591 2) is kept too, normalised, the mutual TLS metadata (RFC 8705
    2.1.2, 3.4), checked by :func:`~pyop.registration.check_token_endpoint_auth_method`,
    and, when the provider supports DPoP (``dpop``), ``dpop_bound_access_tokens`` (RFC
    9449 5.2).
    """
    client = {name: value for name, value in registration_req.to_dict().items()
              if name in RegistrationRequest.c_param or name in EXTENSION_CLIENT_METADATA
              or name in _MTLS_METADATA or (dpop and name == "dpop_bound_access_tokens")}
    client.update(registration_defaults(client))
    scope = registration_req.get("scope")
    if isinstance(scope, str):
        client["scope"] = " ".join(scope.split())
    return client


def _parse_body(request: Any) -> dict[str, Any]:
    """The JSON object of a registration request (OIDC Dynamic Registration 3.1)."""
    if isinstance(request, Mapping):
        metadata: Any = dict(request)
    else:
        if isinstance(request, (bytes, bytearray)):
            request = utf8_or_none(request)
            if request is None:
                raise InvalidClientRegistrationRequest("body is not UTF-8", None)
        if not isinstance(request, str) or len(request) > DEFAULT_MAX_REQUEST_SIZE:
            raise InvalidClientRegistrationRequest("missing or oversized body", None)
        try:
            metadata = strict_json_loads(request)
        except ValueError as e:
            raise InvalidClientRegistrationRequest("body is not JSON", None) from e
    if not isinstance(metadata, dict):
        raise InvalidClientRegistrationRequest("body must be a JSON object", None)
    return metadata


# -- credentials (RFC 7592 3; OIDC Dynamic Registration 3.2) -------------------------------------

def _registration_client_uri(ctx: ProviderContext, client_id: str) -> Optional[str]:
    endpoint = ctx.configuration.metadata.get("registration_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return None
    return registration_client_uri(ctx.configuration.registration_client_uri_template,
                                   endpoint, client_id)


def _issue_registration_access_token(ctx: ProviderContext, client: dict[str, Any],
                                     response: dict[str, Any]) -> None:
    """Give a client a new registration access token when the provider has a
    ``registration_endpoint`` (RFC 7592 3): its hash goes in ``client``, the token
    and ``registration_client_uri`` in ``response``."""
    uri = _registration_client_uri(ctx, client["client_id"])
    if uri is None:
        return
    token = new_registration_access_token()
    client["registration_access_token_hash"] = hash_client_secret(token)
    response["registration_access_token"] = token  # returned once
    response["registration_client_uri"] = uri


def _set_client_secret(ctx: ProviderContext, client: dict[str, Any],
                       expires_at: int = 0) -> str:
    """Give ``client`` a new secret (stored hashed with ``hash_client_secrets``).

    A ``client_secret_jwt`` secret is an HMAC key as long as the longest hash it may
    key (HS512, RFC 7518 3.2).
    """
    client_secret = secrets.token_urlsafe(
        64 if client.get("token_endpoint_auth_method") == "client_secret_jwt" else 32)
    if ctx.configuration.hash_client_secrets:
        client["client_secret_hash"] = hash_client_secret(client_secret)
        client.pop("client_secret", None)
    else:
        client["client_secret"] = client_secret
        client.pop("client_secret_hash", None)
    client["client_secret_expires_at"] = expires_at
    return client_secret


# -- the client configuration endpoint (RFC 7592) ------------------------------------------------

def _managed_client(ctx: ProviderContext, client_id: Any, http_headers: Optional[Any]
                    ) -> tuple[str, dict[str, Any], str]:
    """The client a configuration request is for, with the token it presented.

    RFC 7592 2: the registration access token is the bearer token of the
    ``Authorization`` header (RFC 6750 2.1).

    :raises InvalidRegistrationAccessToken: no token, a wrong one, or an unknown
        client -- the same 401 ``invalid_token`` (RFC 7592 2.1).
    """
    token = registration_bearer_token(http_headers)
    if token is None:
        raise InvalidRegistrationAccessToken("no registration access token",
                                             token_missing=True)
    # an id or token with control characters is never looked up (is_valid_identifier);
    # a deleted client's tombstone and an expired client are unknown (RFC 7592 2.3)
    client = ctx.clients.stored(client_id) if is_valid_identifier(client_id) else None
    if not registration_access_token_matches(client, token) or client is None:
        logger.info("client configuration request with an invalid registration "
                    "access token")
        raise InvalidRegistrationAccessToken("invalid registration access token")
    return cast(str, client_id), dict(client), token


def _client_information(ctx: ProviderContext, client: Mapping[str, Any],
                        token: str) -> RegistrationResponse:
    """The client information response (RFC 7592 3; OIDC Dynamic Registration 4.3).

    The client's metadata, never a stored hash nor members only the host sets;
    ``client_secret`` only when it is stored in clear. ``registration_access_token``
    is the token the client presented (or a new one).
    """
    response = {name: value for name, value in client.items()
                if name in CLIENT_SETTABLE_METADATA or name in SERVER_MANAGED_METADATA}
    response["registration_access_token"] = token
    uri = _registration_client_uri(ctx, client["client_id"])
    if uri is not None:
        response["registration_client_uri"] = uri
    return RegistrationResponse(**response)


def handle_client_read_request(ctx: ProviderContext, client_id: Any,
                               http_headers: Optional[Any] = None) -> RegistrationResponse:
    """A client read request (RFC 7592 2.1; OIDC Dynamic Registration 4.2).

    :param client_id: the client id of the ``registration_client_uri`` the
        request was made to (the host's route extracts it).
    :param http_headers: the request headers: ``Authorization: Bearer
        <registration access token>``.
    :returns: the client information (send ``to_json()`` with 200 and
        ``Cache-Control: no-store``). ``client_secret`` is in it only when the
        provider stores it in clear (not with ``hash_client_secrets``).
    :raises InvalidRegistrationAccessToken: 401, for a missing or wrong token and
        for an unknown client alike.
    """
    _, client, token = _managed_client(ctx, client_id, http_headers)
    return _client_information(ctx, client, token)


def handle_client_update_request(ctx: ProviderContext, client_id: Any, request_body: Any,
                                 http_headers: Optional[Any] = None, *,
                                 rotate_client_secret: bool = False,
                                 rotate_registration_access_token: bool = False
                                 ) -> RegistrationResponse:
    """Replace a client's metadata (RFC 7592 2.2): 1. the client and its token; 2. the
    body, for this client, with its current secret if any; 3. verified as a registration;
    4. provider- and host-set members kept, credentials issued as needed; 5. stored, and
    the caches told.

    The body is the client's complete metadata, validated exactly as a
    registration request; omitted members are removed. ``client_id`` must be
    the client's; a ``client_secret`` must be its current one. Members the
    provider manages (``client_secret``, ``client_id_issued_at``,
    ``client_secret_expires_at``, ``registration_access_token``,
    ``registration_client_uri``) are not taken from the body, and members only
    the host sets (e.g. ``allowed_claims``) are kept.

    A client moving to a method with a secret gets one, and one moving to
    ``client_secret_jwt`` a new 512-bit one (its HMAC key, RFC 7518 3.2);
    ``rotate_client_secret`` issues a new secret (the old one stops working). The
    registration access token stays the same unless
    ``rotate_registration_access_token`` (RFC 7592 2.2 allows either); the response
    carries the token to use from now on. A cached ``jwks_uri`` document of the
    client is dropped: the update may follow a key removal.

    :raises InvalidRegistrationAccessToken: 401, as for a read request.
    :raises InvalidClientRegistrationRequest: 400 ``invalid_request`` (client_id
        or client_secret not the client's, malformed body),
        ``invalid_redirect_uri`` or ``invalid_client_metadata``.
    """
    requested_id = client_id
    client_id, current, token = _managed_client(ctx, requested_id, http_headers)  # 1.
    metadata = _parse_request(ctx, request_body, http_headers)  # 2.
    identity: dict[str, Any] = {name: metadata[name] for name in ("client_id", "client_secret")
                if name in metadata}
    _check_update_identity(identity, client_id, current)
    for name in SERVER_MANAGED_METADATA:
        metadata.pop(name, None)
    verified = _client_metadata(_verified_request(ctx, metadata), ctx.dpop.enabled)  # 3.
    for _attempt in range(MAX_CHANGE_ATTEMPTS):
        client = dict(verified)
        for name, value in current.items():  # 4. provider- and host-set members stay
            if name not in CLIENT_SETTABLE_METADATA:
                client.setdefault(name, value)
        new_secret = _update_client_secret(ctx, client, current, rotate_client_secret)
        new_token = token
        if rotate_registration_access_token:
            new_token = new_registration_access_token()
            client["registration_access_token_hash"] = hash_client_secret(new_token)
        response = _updated_client_information(ctx, client, new_token, new_secret)
        # 5. only over the record read: a concurrent deletion, rotation or update is
        # never undone (RFC 7592 2.2, 2.3)
        if ctx.clients.replace(client_id, current, client):
            break
        client_id, current, token = _managed_client(ctx, requested_id, http_headers)
        # a presented client_secret must still be the current one (not a rotated one)
        _check_update_identity(identity, client_id, current)
    else:
        raise StorageError("the client changed concurrently too many times")
    ctx.client_changed(client_id)
    ctx.client_keys.forget(current.get("jwks_uri"), client.get("jwks_uri"))
    logger.info("updated client %s", client_id)
    return response


def _updated_client_information(ctx: ProviderContext, client: dict[str, Any], token: str,
                                new_secret: Optional[str]) -> RegistrationResponse:
    """The response to an update (RFC 7592 3), checked before anything is stored; a new
    secret is in it, once."""
    try:
        response = _client_information(ctx, client, token)
        if new_secret is not None:
            response["client_secret"] = new_secret  # returned once
    except Exception as e:  # oic refuses a value: nothing is stored
        raise InvalidClientRegistrationRequest(
            describe_invalid_metadata(client, e), None,
            oauth_error="invalid_client_metadata") from e
    return response


def _check_update_identity(metadata: Mapping[str, Any], client_id: str,
                           current: Mapping[str, Any]) -> None:
    """The body names the client, and a ``client_secret`` in it is the current one
    (RFC 7592 2.2)."""
    if metadata.get("client_id") != client_id:
        raise InvalidClientRegistrationRequest(
            "client_id must be the identifier of the client", None)
    presented_secret = metadata.get("client_secret")
    if presented_secret is not None and not (
            isinstance(presented_secret, str)
            and client_secret_matches(current, presented_secret)):
        raise InvalidClientRegistrationRequest(
            "client_secret does not match the current client secret", None)


def _update_client_secret(ctx: ProviderContext, client: dict[str, Any],
                          current: Mapping[str, Any], rotate: bool) -> Optional[str]:
    """The new secret an updated client gets, if any; a client without a secret method
    loses its secret."""
    if not uses_client_secret(client):
        for name in ("client_secret", "client_secret_hash", "client_secret_expires_at"):
            client.pop(name, None)
        return None
    # a client moving to client_secret_jwt gets a secret fit to be its HMAC key
    # (HS512, RFC 7518 3.2), not the shorter one of its former method
    to_secret_jwt = (client.get("token_endpoint_auth_method") == "client_secret_jwt"
                     and current.get("token_endpoint_auth_method") != "client_secret_jwt")
    if rotate or to_secret_jwt or not (client.get("client_secret")
                                       or client.get("client_secret_hash")):
        # a client with a lifetime keeps it: its secret expires with it
        expires_at = client.get(CLIENT_EXPIRES_AT_MEMBER)
        return _set_client_secret(ctx, client, expires_at if type(expires_at) is int else 0)
    return None


def handle_client_delete_request(ctx: ProviderContext, client_id: Any,
                                 http_headers: Optional[Any] = None) -> None:
    """Delete a client (RFC 7592 2.3).

    The client can no longer authenticate, be authorized, nor use its
    registration access token; its access tokens stop working at the UserInfo
    endpoint.

    :raises InvalidRegistrationAccessToken: 401, as for a read request.
    """
    requested_id = client_id
    for _attempt in range(MAX_CHANGE_ATTEMPTS):
        client_id, current, _ = _managed_client(ctx, requested_id, http_headers)
        # the record becomes a tombstone in one compare-and-set: a concurrent update,
        # which replaces only the record it read, cannot bring the client back
        now = ctx.now()
        if ctx.clients.replace(client_id, current, {DELETED_CLIENT_MEMBER: now},
                               expires_at=now + DELETED_CLIENT_RETENTION):
            break
    else:
        raise StorageError("the client changed concurrently too many times")
    ctx.client_changed(client_id)
    ctx.client_keys.forget(current.get("jwks_uri"))
    logger.info("deleted client %s", client_id)


def rotate_client_secret(ctx: ProviderContext, client_id: str, *, expires_at: int = 0) -> str:
    """Issue a new secret to a client and return it; the old one stops working.

    :raises ValueError: unknown client, or one that does not use a secret; a
        ``client_secret_jwt`` client with ``hash_client_secrets``.

    For hosts (e.g. an administration page). The secret is stored hashed with
    ``hash_client_secrets``.

    :param expires_at: ``client_secret_expires_at``: UNIX time, or 0 for never.
    :raises ValueError: unknown client, or one that does not use a secret; a
        ``client_secret_jwt`` client with ``hash_client_secrets`` (a stored hash
        cannot check its HMAC, OIDC Core 9: the client would be locked out).
    """
    for _attempt in range(MAX_CHANGE_ATTEMPTS):
        found = ctx.clients.stored(client_id) if isinstance(client_id, str) else None
        if found is None:
            raise ValueError("unknown client")
        client = dict(found)
        if not uses_client_secret(client):
            raise ValueError("the client does not authenticate with a client secret")
        if (ctx.configuration.hash_client_secrets
                and client.get("token_endpoint_auth_method") == "client_secret_jwt"):
            raise ValueError("client_secret_jwt needs its secret in clear: not rotated with "
                             "hash_client_secrets")
        client_secret = _set_client_secret(ctx, client, expires_at)
        # only over the record read: a concurrent update cannot restore the old secret
        if ctx.clients.replace(client_id, found, client):
            break
    else:
        raise StorageError("the client changed concurrently too many times")
    ctx.client_changed(client_id)
    logger.info("rotated the secret of client %s", client_id)
    return client_secret
