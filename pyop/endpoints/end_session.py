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
from ..logout_notifications import (
    DeliveryResult,
    LogoutResult,
    backchannel_requests,
    frontchannel_urls,
)
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
                end_session_request: Optional[Mapping[str, Any]] = None, *,
                session_id: Optional[str] = None,
                revoke_offline: Optional[bool] = None) -> LogoutResult:
    """Log the end-user out (RP-Initiated Logout 1.0, 2): revoke grants, then tell the
    clients (Back-Channel Logout 1.0 2.5, Front-Channel Logout 1.0 4).

    Which grants: with ``session_id`` (or, when neither it nor ``subject_identifier`` is
    given, the ``sid`` of the verified ``id_token_hint``), those issued in that login
    session (:meth:`~pyop.authz_state.AuthorizationState.revoke_session`); else those of
    the ``sub`` of the host's session or of the ``id_token_hint``
    (:meth:`~pyop.authz_state.AuthorizationState.delete_state_for_subject_identifier`).

    Offline grants (``offline_access``, OIDC Core 11): a session logout keeps them
    (Back-Channel Logout 1.0 2.7) unless ``revoke_offline`` is True; a logout of the whole
    ``sub`` revokes them, as pyop 3 did (``revoke_offline=False`` is refused there: log the
    sessions out instead).

    Which clients are told: those that registered a logout URI and got a grant in the
    session (or for the ``sub``), when the provider metadata has
    ``backchannel_logout_supported`` / ``frontchannel_logout_supported``. Back-channel
    Logout Tokens are delivered by the provider's ``backchannel_logout_sender`` if set
    (its results in :attr:`LogoutResult.backchannel_results`), else left to the host
    (:attr:`LogoutResult.backchannel_requests`); a delivery failure never raises.

    :param subject_identifier: the ``sub`` known from the host's session, if any.
    :param end_session_request: the parsed logout request (``EndSessionRequest``).
    :raises InvalidSubjectIdentifier: no session and no or unknown subject identifier.
    :raises ValueError: ``revoke_offline=False`` for a logout of the whole ``sub``.
    :raises InvalidEndSessionRequest: an id_token_hint not issued by us, or
        a client_id differing from its audience (also an
        :class:`InvalidSubjectIdentifier`, so hosts catching that see it too).
    """
    claims = _hint_claims(ctx, end_session_request or {})
    sub = subject_identifier or (claims or {}).get("sub")
    if session_id is None and subject_identifier is None and claims is not None:
        hinted = claims.get("sid")
        session_id = hinted if isinstance(hinted, str) and hinted else None
    authz_state = ctx.authz_state
    targets: dict[str, tuple[str, list[str]]]
    if session_id is not None:
        offline = bool(revoke_offline)
        authz_state.revoke_session(session_id, revoke_offline=offline)
        targets = {client_id: (client_sub, [session_id]) for client_id, client_sub
                   in authz_state.session_clients(session_id).items()}
    else:
        if not sub:
            raise InvalidSubjectIdentifier("no subject identifier to log out")
        if revoke_offline is False:
            raise ValueError("a logout of a whole sub revokes its offline grants too: "
                             "pass session_id to keep them")
        offline = True
        authz_state.delete_state_for_subject_identifier(sub)
        targets = {client_id: (sub, sids)
                   for client_id, sids in authz_state.subject_clients(sub).items()}
    result = LogoutResult(sub if isinstance(sub, str) else None, session_id, offline,
                          clients=list(targets))
    _notify(ctx, targets, result)
    return result


def _notify(ctx: ProviderContext, targets: Mapping[str, tuple[str, list[str]]],
            result: LogoutResult) -> None:
    """The back-channel requests (delivered when a sender is set) and front-channel URLs
    of a logout, for the channels the provider metadata says are supported."""
    if not targets:
        return
    metadata = ctx.configuration.metadata
    if metadata.get("backchannel_logout_supported") is True:
        requests, failed = backchannel_requests(ctx, targets)
        result.backchannel_requests = requests
        result.backchannel_results = failed
        sender = ctx.backchannel_logout_sender
        if sender is not None and requests:
            try:
                result.backchannel_results = failed + list(sender(requests))
            except Exception as e:  # noqa: BLE001 - the end-user's logout has happened
                # the type only: a message could quote the tokens it was given
                logger.warning("the back-channel logout sender failed: %s", type(e).__name__)
                result.backchannel_results = failed + [
                    DeliveryResult(r.client_id, r.uri, False, error="sender failed")
                    for r in requests]
    if metadata.get("frontchannel_logout_supported") is True:
        result.frontchannel_urls = frontchannel_urls(ctx, targets)


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
