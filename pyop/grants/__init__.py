"""The grant types of the token endpoint, one module each, found by ``grant_type``.

:data:`DEFAULT_GRANT_HANDLERS` maps each ``grant_type`` (RFC 6749 4.1.3, 4.4, 6) to its
handler ``handler(ctx, request) -> AccessTokenResponse`` (see :mod:`pyop.grants.base`).
A provider copies it into its ``grant_handlers``; a host adds a grant type by adding a
handler there and listing the type in ``grant_types_supported``.
"""

from __future__ import annotations

import logging

from .authorization_code import handle_authorization_code_grant
from .base import GrantHandler as _GrantHandler
from .base import GrantRequest
from .client_credentials import handle_client_credentials_grant
from .refresh_token import handle_refresh_token_grant

__all__ = ["DEFAULT_GRANT_HANDLERS", "GrantHandler", "GrantRequest"]

logger = logging.getLogger(__name__)

#: ``handler(ctx, request)``: the token response of one grant type.
GrantHandler = _GrantHandler

#: ``grant_type -> handler`` of the grant types pyop implements.
DEFAULT_GRANT_HANDLERS: dict[str, GrantHandler] = {
    "authorization_code": handle_authorization_code_grant,
    "refresh_token": handle_refresh_token_grant,
    "client_credentials": handle_client_credentials_grant,
}
