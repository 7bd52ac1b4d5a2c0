"""Logout: the end session request, the end-user's grants revoked, the redirect back.

OIDC RP-Initiated Logout 1.0: 2 (the request, ``id_token_hint``), 3 (redirect to a
registered ``post_logout_redirect_uri`` with ``state``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

from ..context import ProviderContext
from ..exceptions import InvalidEndSessionRequest, InvalidSubjectIdentifier
from ..message import EndSessionRequest, EndSessionResponse
from ..util import is_utf8_encodable, parse_unique_parameters

__all__ = ["parse_end_session_request", "logout_user", "do_post_logout_redirect"]

logger = logging.getLogger(__name__)


def parse_end_session_request(ctx: ProviderContext, request_body: Any) -> EndSessionRequest:
    """A logout request (query string, form body or mapping), each parameter once.

    :raises InvalidEndSessionRequest: malformed or repeated parameters.
    """
    parameters = parse_unique_parameters(request_body, ctx.configuration.max_request_size,
                                         InvalidEndSessionRequest)
    return EndSessionRequest(**parameters)


def logout_user(ctx: ProviderContext, subject_identifier: Optional[str] = None,
                end_session_request: Optional[Mapping[str, Any]] = None) -> None:
    """Revoke the codes and tokens of the ``sub`` of the session or of the verified
    ``id_token_hint`` (RP-Initiated Logout 1.0, 2).

    :param subject_identifier: the ``sub`` known from the host's session, if any.
    :param end_session_request: the parsed logout request (``EndSessionRequest``).
    :raises InvalidSubjectIdentifier: no or unknown subject identifier.
    :raises InvalidEndSessionRequest: an id_token_hint not issued by us, or
        a client_id differing from its audience (also an
        :class:`InvalidSubjectIdentifier`, so hosts catching that see it too).
    """
    claims = _hint_claims(ctx, end_session_request or {})
    sub = subject_identifier or (claims or {}).get("sub")
    if not sub:
        raise InvalidSubjectIdentifier("no subject identifier to log out")
    ctx.authz_state.delete_state_for_subject_identifier(sub)


def do_post_logout_redirect(ctx: ProviderContext,
                            end_session_request: Mapping[str, Any]) -> Optional[str]:
    """The post-logout redirect URL, or None (RP-Initiated Logout 1.0, 3): 1. a
    ``post_logout_redirect_uri``; 2. the client, proven by the hint or named; 3. the URI
    registered for it (exact match); 4. ``state`` passed back.

    Redirects only to a ``post_logout_redirect_uri`` registered (exact
    match) for the client proven by a valid ``id_token_hint`` or named by
    ``client_id``; ``state`` is passed back.
    """
    uri = end_session_request.get("post_logout_redirect_uri")
    if not isinstance(uri, str):
        return None
    try:
        claims = _hint_claims(ctx, end_session_request)
    except InvalidEndSessionRequest:
        return None
    client_id = end_session_request.get("client_id")
    if claims is not None:
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        client_id = client_id or (aud[0] if len(aud) == 1 else claims.get("azp"))
    client = ctx.clients.get(client_id)
    if client is None:
        return None
    registered = client.get("post_logout_redirect_uris") or []
    if uri not in registered:
        return None
    response = EndSessionResponse()
    state = end_session_request.get("state")
    if isinstance(state, str) and is_utf8_encodable(state):
        response["state"] = state
    url: str = response.request(uri)
    return url if response.keys() else uri


def _hint_claims(ctx: ProviderContext,
                 end_session_request: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """Claims of a verified id_token_hint; None without a hint.

    :raises InvalidEndSessionRequest: a hint that we did not issue.
    """
    hint = end_session_request.get("id_token_hint")
    if hint is None:
        return None
    claims = ctx.keys.verify_id_token_hint(hint, ctx.issuer)
    if claims is None:
        raise InvalidEndSessionRequest("id_token_hint was not issued by this provider")
    client_id = end_session_request.get("client_id")
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if client_id is not None and client_id not in aud:
        raise InvalidEndSessionRequest("client_id differs from the id_token_hint audience")
    return claims
