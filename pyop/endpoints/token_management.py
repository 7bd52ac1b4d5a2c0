"""Token introspection and revocation: what a client may learn of, or end, its tokens.

RFC 7662 (introspection: 2.1 request, 2.2 response), RFC 7009 (revocation: 2.1 request,
2.2 response); the client authenticates as at the token endpoint (RFC 6749 2.3).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional, Union

from .. import dpop
from ..client_certificate import parse_client_certificate
from ..client_management import narrow_scope
from ..context import ProviderContext
from ..exceptions import InvalidAccessToken, InvalidClientAuthentication, InvalidRequestError
from ..message import TokenIntrospectionResponse
from ..util import (
    FORM_MEDIA_TYPE,
    check_content_type,
    is_valid_identifier,
    parse_unique_parameters,
)

__all__ = ["handle_introspection_request", "handle_revocation_request"]

logger = logging.getLogger(__name__)

_TOKEN_TYPE_HINTS = ("access_token", "refresh_token")


def handle_introspection_request(ctx: ProviderContext, request_body: Any,
                                 http_headers: Optional[Any] = None, *,
                                 client_certificate: Optional[Union[str, bytes]] = None
                                 ) -> TokenIntrospectionResponse:
    """Introspection (RFC 7662): 1. the confidential client; 2. the token, live and the
    client's; 3. its description (2.2), or ``{"active": false}``.

    The caller must be a client authenticating as at the token endpoint; public
    clients (``none``) are refused. A token is active only if it is live and was
    issued to the calling client: any other token -- unknown, expired, revoked,
    rotated, or of another client -- gets ``{"active": false}``. A token of the
    ``client_credentials`` grant has no end-user: its answer has ``client_id`` and no
    ``sub`` (RFC 7662 2.2). ``scope`` is the token's, narrowed to the client's ``scope``
    allow-list as it is now (RFC 7591 2), as at UserInfo. A token bound to a key has
    its ``cnf`` (RFC 9449 6.2, RFC 8705 3.2); a DPoP one ``token_type`` ``DPoP``. Send
    the result's ``to_json()`` with ``Cache-Control: no-store``.

    :param request_body: the form-encoded body (``token``, optional
        ``token_type_hint``) as str/bytes, or a mapping.
    :param http_headers: the request headers (``Authorization: Basic ...``).
    :param client_certificate: the client certificate of a mutual TLS connection (client
        authentication, RFC 8705 2). The answer for a certificate-bound token has its
        ``cnf`` (RFC 8705 3.2).
    :raises InvalidClientAuthentication: 401 ``invalid_client``.
    :raises InvalidRequestError: no ``token``, repeated parameters (400).
    """
    client_id, client, token, order = _parse_request(
        ctx, request_body, http_headers, allow_public=False, endpoint="introspection_endpoint",
        client_certificate=client_certificate)
    found = _find_token(ctx, token, order, client_id)
    if found is None:
        return TokenIntrospectionResponse(active=False)
    token_type, record = found
    if record.get("rotated"):
        return TokenIntrospectionResponse(active=False)
    # the client's scope allow-list as it is now, as at UserInfo (RFC 7591 2)
    scope = " ".join(narrow_scope(str(record.get("scope", "")).split(), client))
    response = TokenIntrospectionResponse(
        active=True, scope=scope, client_id=client_id,
        exp=record.get("exp"), iat=record.get("iat"),
        token_type=(("DPoP" if dpop.is_dpop_bound(record) else "Bearer")
                    if token_type == "access_token" else "refresh_token"),
        iss=ctx.issuer)
    if record.get("sub") is not None:  # client_credentials tokens have no end-user
        response["sub"] = record["sub"]
    if token_type == "access_token" and isinstance(record.get("cnf"), dict):
        # what the token is bound to, one cnf for a DPoP key (``jkt``, RFC 9449 6.2) and a
        # client certificate (``x5t#S256``, RFC 8705 3.2): RFC 7800 3.1
        response["cnf"] = dict(record["cnf"])
    return response


def handle_revocation_request(ctx: ProviderContext, request_body: Any,
                              http_headers: Optional[Any] = None, *,
                              client_certificate: Optional[Union[str, bytes]] = None) -> None:
    """Revocation (RFC 7009): 1. the client; 2. the token, if it is the client's;
    3. revoked (a refresh token with its grant). Other tokens are left alone (2.2).

    The client authenticates as at the token endpoint; public clients send
    their ``client_id`` (RFC 7009 2.1). ``token_type_hint`` decides which kind
    of token is looked up first. Revoking a refresh token revokes its grant
    (the access tokens issued with it and its rotations). A token that is
    unknown, expired or of another client is left alone, without error
    (RFC 7009 2.2).

    :raises InvalidClientAuthentication: 401 ``invalid_client``.
    :raises InvalidRequestError: no ``token``, repeated parameters (400).
    """
    client_id, _, token, order = _parse_request(
        ctx, request_body, http_headers, allow_public=True, endpoint="revocation_endpoint",
        client_certificate=client_certificate)
    found = _find_token(ctx, token, order, client_id)
    if found is None:
        return
    if found[0] == "access_token":
        ctx.authz_state.revoke_access_token(token)
    else:
        ctx.authz_state.revoke_refresh_token(token)


def _parse_request(ctx: ProviderContext, request_body: Any, http_headers: Optional[Any], *,
                   allow_public: bool, endpoint: str,
                   client_certificate: Optional[Union[str, bytes]] = None
                   ) -> tuple[str, Mapping[str, Any], str, list[str]]:
    """Authenticate the client; return ``(client_id, client, token, token types to
    try)``."""
    # RFC 7009 2.1, RFC 7662 2.1: form-encoded (headers without a Content-Type pass)
    check_content_type(http_headers, FORM_MEDIA_TYPE, InvalidRequestError)
    parameters = parse_unique_parameters(request_body, ctx.configuration.max_request_size,
                                         InvalidRequestError)
    certificate = (parse_client_certificate(client_certificate)
                   if client_certificate is not None else None)
    client_id, client = ctx.authenticate_client(parameters, http_headers, endpoint,
                                                client_certificate=certificate)
    if (not allow_public
            and client.get("token_endpoint_auth_method", "client_secret_basic") == "none"):
        raise InvalidClientAuthentication("public clients may not introspect tokens")
    token = parameters.get("token")
    if not isinstance(token, str) or not token:
        raise InvalidRequestError("missing token")
    hint = parameters.get("token_type_hint")
    order = list(_TOKEN_TYPE_HINTS)
    if hint == "refresh_token":  # unknown hints are ignored (RFC 7662 2.1, RFC 7009 2.1)
        order.reverse()
    return client_id, client, token, order


def _find_token(ctx: ProviderContext, token: str, order: list[str], client_id: str
                ) -> Optional[tuple[str, dict[str, Any]]]:
    """``(token type, record)`` of the first live token of the types in ``order``, if it
    was issued to ``client_id``; None otherwise (also for a token that is not a valid
    identifier, never looked up: see :func:`~pyop.util.is_valid_identifier`)."""
    if not is_valid_identifier(token):
        return None
    for token_type in order:
        record = _token_record(ctx, token_type, token)
        if record is None:
            continue
        if record.get("client_id") != client_id:
            logger.info("token management request for a token of another client")
            return None
        return token_type, record
    return None


def _token_record(ctx: ProviderContext, token_type: str,
                  token: str) -> Optional[dict[str, Any]]:
    """The unexpired record of a token of that type, or None."""
    if token_type == "access_token":
        try:
            return ctx.authz_state.get_access_token(token)
        except InvalidAccessToken:
            return None
    return ctx.authz_state.get_refresh_token(token)
