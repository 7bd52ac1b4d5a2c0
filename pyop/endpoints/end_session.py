"""Logout: the end session request, the end-user's grants revoked, the redirect back.

OIDC RP-Initiated Logout 1.0: 2 (the request, ``id_token_hint``; asking the end-user when
the hint is not the current session's), 3 (redirect to a registered
``post_logout_redirect_uri`` with ``state``; without a hint only once the target is
confirmed otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import urlsplit

from .. import claims_policy
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

__all__ = ["parse_end_session_request", "logout_user", "do_post_logout_redirect",
           "post_logout_redirect_client", "id_token_hint_matches"]

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
    Logout Tokens are delivered by the provider's ``backchannel_logout_sender`` if set --
    by default one POSTing through the guarded outbound fetcher
    (``backchannel_logout_delivery``) -- (its results in
    :attr:`LogoutResult.backchannel_results`), else left to the host
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


def do_post_logout_redirect(ctx: ProviderContext, end_session_request: Mapping[str, Any],
                            *, confirmed: bool = False) -> Optional[str]:
    """The post-logout redirect URL, or None (RP-Initiated Logout 1.0, 3).

    Only a ``post_logout_redirect_uri`` registered (exact match) for the client of the
    request: 1. the client proven by a valid ``id_token_hint`` (a ``client_id`` sent
    with it must be one of its audiences) -- redirected to; 2. without a hint, the
    client named by ``client_id`` -- redirected to only when the host says the end-user
    ``confirmed`` it (RP-Initiated Logout 1.0, 3: without an ``id_token_hint`` the OP
    must not redirect unless it has other means of confirming the target; anyone can
    name a client and its registered URI, so the redirect alone would make the
    endpoint an open redirector for clients of an open registration). ``state`` is
    passed back.

    :param confirmed: the end-user confirmed the return to the client named by
        ``client_id`` (see :func:`post_logout_redirect_client`), e.g. with a form
        protected against CSRF. Without a hint it is the only way to a redirect.
    """
    target = _redirect_target(ctx, end_session_request)
    if target is None:
        return None
    uri, proven = target[1], target[2]
    if not proven and not confirmed:
        return None
    response = EndSessionResponse()
    state = end_session_request.get("state")
    if isinstance(state, str) and is_utf8_encodable(state):
        response["state"] = state
    url: str = response.request(uri)
    return url if response.keys() else uri


def post_logout_redirect_client(ctx: ProviderContext,
                                end_session_request: Mapping[str, Any]) -> Optional[str]:
    """The ``client_id`` of the client the logout request would return to, or None.

    Set only when the request's ``post_logout_redirect_uri`` is registered (exact match)
    for an existing client, the one proven by a valid ``id_token_hint`` or, without a
    hint, named by ``client_id``; never for an invalid hint. A host asks the end-user
    "Return to <client>?" with it before calling :func:`do_post_logout_redirect` with
    ``confirmed=True`` (RP-Initiated Logout 1.0, 3).
    """
    target = _redirect_target(ctx, end_session_request)
    return target[0] if target is not None else None


def id_token_hint_matches(ctx: ProviderContext, end_session_request: Mapping[str, Any],
                          user_id: Optional[str]) -> bool:
    """Whether the request's ``id_token_hint`` was issued for the logged-in end-user.

    RP-Initiated Logout 1.0, 2: when the hint does not belong to the current session the
    OP should ask the end-user whether to log out. True only for a valid hint whose
    ``sub`` is the one issued for ``user_id`` (whatever client, pairwise included):
    False without a hint, without a logged-in user (``user_id`` None) and for a hint of
    another user (e.g. an ID token of an earlier, unrelated session).

    :param user_id: the host's local id of the end-user logged in to this session.
    :raises InvalidEndSessionRequest: a hint not issued by this provider, or a
        ``client_id`` that is not among its audiences.
    """
    claims = _hint_claims(ctx, end_session_request)
    if claims is None or not isinstance(user_id, str) or not user_id:
        return False
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        return False
    return hint_subject_belongs_to_user(ctx, claims, user_id)


#: At most this many redirect URI hosts of a pairwise client are tried when a hint's
#: ``sub`` is not recorded (sealed subject identifier store).
MAX_SECTORS_TRIED = 16


def hint_subject_belongs_to_user(ctx: ProviderContext, claims: Mapping[str, Any],
                                 user_id: str) -> bool:
    """Whether a verified hint's ``sub`` is the one issued to its audience for ``user_id``
    (OIDC Core 8).

    The recorded ``sub -> user_id`` mapping decides; a ``sub`` that is not recorded (a
    sealed subject identifier store only knows those this process made recently) is
    compared with the ``sub`` computed for the hint's client (``aud``, or ``azp`` with
    several audiences): for a pairwise client whose sector comes from the request's
    redirect URI, that of each host of its registered redirect URIs.
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        return False
    try:
        return ctx.authz_state.get_user_id_for_subject_identifier(sub) == user_id
    except InvalidSubjectIdentifier:
        pass
    client_id = _hint_client_id(claims)
    client = ctx.clients.get(client_id) if client_id is not None else None
    if client is None:
        return False
    uris: list[Optional[str]] = [None]
    seen: set[str] = set()
    for uri in client.get("redirect_uris") or []:
        netloc = urlsplit(uri).netloc if isinstance(uri, str) else None
        if netloc and netloc not in seen and len(seen) < MAX_SECTORS_TRIED:
            seen.add(netloc)
            uris.append(uri)
    try:
        return any(claims_policy.subject_identifier(ctx, client, user_id, uri) == sub
                   for uri in uris)
    except ValueError:  # a pairwise client without any URI to derive a sector from
        return False


def _hint_client_id(claims: Mapping[str, Any]) -> Optional[str]:
    """The client an ID token was issued to: its one audience, else its ``azp``."""
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    client_id = audiences[0] if len(audiences) == 1 else claims.get("azp")
    return client_id if isinstance(client_id, str) else None


def _redirect_target(ctx: ProviderContext, end_session_request: Mapping[str, Any]
                     ) -> Optional[tuple[str, str, bool]]:
    """``(client_id, post_logout_redirect_uri, proven by a valid hint)`` when the URI is
    registered for that existing client; None otherwise (an invalid hint included)."""
    uri = end_session_request.get("post_logout_redirect_uri")
    if not isinstance(uri, str):
        return None
    try:
        claims = _hint_claims(ctx, end_session_request)
    except InvalidEndSessionRequest:
        return None
    client_id = end_session_request.get("client_id")
    if claims is not None:
        client_id = client_id or _hint_client_id(claims)
    if not isinstance(client_id, str):
        return None
    client = ctx.clients.get(client_id)
    if client is None:
        return None
    registered = client.get("post_logout_redirect_uris") or []
    if uri not in registered:
        return None
    return client_id, uri, claims is not None


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
