"""The ``refresh_token`` grant: new tokens from a refresh token.

RFC 6749 6 (never wider than the original grant), RFC 9700 4.14.2 (refresh tokens of
public clients rotate on every use), RFC 7591 2 (a client's ``scope`` allow-list).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

from ..client_management import client_allowed_scope
from ..context import ProviderContext
from ..exceptions import InvalidScope, InvalidTokenRequest
from ..message import AccessTokenResponse
from .base import GrantRequest

__all__ = ["handle_refresh_token_grant"]

logger = logging.getLogger(__name__)


def handle_refresh_token_grant(ctx: ProviderContext,
                               request: GrantRequest) -> AccessTokenResponse:
    """Refresh (RFC 6749 6): 1. the refresh token and the scope asked for; 2. the scope
    within the client's allow-list; 3. new tokens (rotated for public clients); 4. the
    response with the scope granted."""
    parameters, client_id, client = request.parameters, request.client_id, request.client
    refresh_token = parameters.get("refresh_token")
    if not isinstance(refresh_token, str):
        raise InvalidTokenRequest("missing refresh_token", oauth_error="invalid_request")
    scope_param = parameters.get("scope")
    scope = scope_param.split() if isinstance(scope_param, str) else None
    if scope is not None and not scope:
        raise InvalidScope("empty scope")
    scope = _scope_in_allow_list(ctx, refresh_token, scope, client_id, client)
    # refresh tokens of public clients are rotated on every use (RFC 9700 4.14.2)
    access_token, new_refresh, record = ctx.authz_state.refresh_access_token(
        refresh_token, client_id, scope,
        rotate=client.get("token_endpoint_auth_method") == "none",
        **({"cnf": request.cnf} if request.cnf else {}))
    response = AccessTokenResponse(access_token=access_token.value,
                                   token_type=access_token.type,
                                   expires_in=access_token.expires_in)
    # the scope granted, computed as refresh_access_token did (never re-read: a concurrent
    # replay may already have revoked the new token)
    response["scope"] = " ".join(s for s in record["scope"].split()
                                 if scope is None or s in scope)
    if new_refresh:
        response["refresh_token"] = new_refresh
    return response


def _scope_in_allow_list(ctx: ProviderContext, refresh_token: str, scope: Optional[list[str]],
                         client_id: str, client: Mapping[str, Any]) -> Optional[list[str]]:
    """The scope to refresh with, within the client's ``scope`` metadata (RFC 7591 2).

    Requested values outside it are dropped; without a request, a grant wider than
    the allow-list (narrowed by the host since) is narrowed. Refresh never widens
    the grant (RFC 6749 6): that is for ``refresh_access_token``.

    :raises InvalidScope: nothing in the allow-list remains.
    """
    allowed = client_allowed_scope(client)
    if allowed is None:
        return scope
    if scope is None:
        record = ctx.authz_state.get_refresh_token(refresh_token)
        granted = (str(record.get("scope", "")).split()
                   if record is not None and record.get("client_id") == client_id else [])
        if all(value in allowed for value in granted):
            return None
        scope = granted
    narrowed = [value for value in scope if value in allowed]
    if not narrowed:
        raise InvalidScope("no requested scope value is allowed for the client")
    return narrowed
