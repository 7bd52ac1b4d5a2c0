"""The ``client_credentials`` grant: an access token for the client itself.

RFC 6749 4.4 (no end-user: no ID token, no refresh token, 4.4.3), 5.1 (``scope`` in the
response), RFC 7591 2 (a client's ``scope`` allow-list and ``grant_types``).
"""

from __future__ import annotations

import logging

from ..claims_policy import allowed_scopes
from ..context import ProviderContext
from ..exceptions import InvalidScope, InvalidTokenRequest, UnauthorizedClient
from ..message import AccessTokenResponse
from .base import GrantRequest

__all__ = ["handle_client_credentials_grant"]

logger = logging.getLogger(__name__)


def handle_client_credentials_grant(ctx: ProviderContext,
                                    request: GrantRequest) -> AccessTokenResponse:
    """An access token for the client itself (RFC 6749 4.4).

    Only confidential clients that registered the grant explicitly (``grant_types``)
    may use it. The scope granted is the requested one (or, without ``scope``, the
    client's registered ``scope`` metadata, RFC 7591 2) narrowed to the scopes the
    provider supports and, when the client registered ``scope``, to those; ``openid``
    and ``offline_access`` are never granted (no end-user). The response names the
    scope granted, unless it is empty (RFC 6749 5.1).

    :raises UnauthorizedClient: public client, or grant not registered.
    :raises InvalidScope: scopes were requested and none may be granted.
    """
    parameters, client_id, client = request.parameters, request.client_id, request.client
    if ("client_credentials" not in (client.get("grant_types") or [])
            or client.get("token_endpoint_auth_method", "client_secret_basic") == "none"):
        raise UnauthorizedClient("the client is not registered for client_credentials")
    registered_scope = client.get("scope")
    client_scopes = registered_scope.split() if isinstance(registered_scope, str) else None
    scope_param = parameters.get("scope")
    if scope_param is not None and not isinstance(scope_param, str):
        raise InvalidTokenRequest("malformed scope", oauth_error="invalid_request")
    requested = scope_param.split() if scope_param is not None else (client_scopes or [])
    allowed = allowed_scopes(ctx) - {"openid", "offline_access"}
    granted: list[str] = []
    for value in requested:
        if (value in allowed and (client_scopes is None or value in client_scopes)
                and value not in granted):
            granted.append(value)
    if requested and not granted:
        raise InvalidScope("none of the requested scopes may be granted to this client")
    access_token = ctx.authz_state.create_client_access_token(
        client_id, granted, **({"cnf": request.cnf} if request.cnf else {}))
    logger.info("client %s: access token issued through client_credentials", client_id)
    return AccessTokenResponse(access_token=access_token.value, token_type=access_token.type,
                               expires_in=access_token.expires_in, scope=" ".join(granted))
