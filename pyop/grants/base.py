"""What a grant handler receives and returns (RFC 6749 4, 5.1).

A handler is ``handler(ctx, request) -> AccessTokenResponse``: ``ctx`` the
:class:`~pyop.context.ProviderContext`, ``request`` a :class:`GrantRequest` whose client
is authenticated and registered for the grant type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional

from ..context import ProviderContext
from ..message import AccessTokenResponse

__all__ = ["GrantRequest", "GrantHandler"]

logger = logging.getLogger(__name__)


class GrantRequest(NamedTuple):
    """A token request whose client is authenticated (RFC 6749 3.2.1)."""

    #: The request parameters, each given once.
    parameters: Mapping[str, Any]
    #: The authenticated client's id.
    client_id: str
    #: The authenticated client's metadata.
    client: Mapping[str, Any]
    #: The host's extra ID token claims: a dict or ``(user_id, client_id) -> dict``.
    extra_id_token_claims: Any = None
    #: The confirmation the tokens issued are bound to (RFC 7800 3.1 ``cnf``), one dict
    #: for both: ``jkt`` of a verified DPoP proof's key (RFC 9449 6) and/or ``x5t#S256``
    #: of the client certificate (RFC 8705 3); None: bearer tokens.
    cnf: Optional[Mapping[str, Any]] = None
    #: The verified DPoP proof of the request (RFC 9449 5), or None.
    dpop_proof: Any = None


#: ``handler(ctx, request)``: the token response of one grant type.
GrantHandler = Callable[[ProviderContext, GrantRequest], AccessTokenResponse]
