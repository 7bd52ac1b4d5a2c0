"""The ``authorization_code`` grant: a code exchanged for tokens, exactly once.

RFC 6749 4.1.3 (the token request), 4.1.2 (single use: a replay revokes what the code
issued), 5.1 (the response); RFC 7636 4.6 (PKCE); OIDC Core 3.1.3.3 and 3.1.3.6 (the ID
token of a code exchange).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Optional

from .. import claims_policy, dpop
from ..access_token import AccessToken
from ..authz_state import new_token_value
from ..client_management import narrow_claims
from ..context import ProviderContext
from ..crypto import SigningKey, b64url_encode
from ..exceptions import InvalidAuthorizationCode, InvalidTokenRequest
from ..logout_notifications import id_token_sid
from ..message import AccessTokenResponse, issued_token_response
from ..request_validator import PKCE_VALUE_PATTERN
from ..util import claims_request_member
from .base import GrantRequest

__all__ = ["handle_authorization_code_grant", "check_pkce", "refresh_token_eligible"]

logger = logging.getLogger(__name__)


def handle_authorization_code_grant(ctx: ProviderContext,
                                    request: GrantRequest) -> AccessTokenResponse:
    """Exchange a code (RFC 6749 4.1.3): 1. the code's record, checked against the
    request; 2. the ID token key, before the code is spent; 3. the redemption and the
    ID token (concurrently with an executor); 4. the response (RFC 6749 5.1)."""
    parameters, client_id, client = request.parameters, request.client_id, request.client
    code = parameters.get("code")
    if not isinstance(code, str):
        raise InvalidTokenRequest("missing code", oauth_error="invalid_request")
    record = ctx.authz_state.checked_authorization_code(
        code, lambda found: _check_code_record(found, parameters, client_id, ctx, request))
    id_token_key = ctx.keys.id_token_key(client)  # before the code is spent
    eligible = refresh_token_eligible(ctx, client, record["scope"])
    bindings = _bindings(request)
    started = _redeem_on_executor(ctx, code, record, eligible, bindings)
    if started is None:
        access_token, refresh_token = ctx.authz_state.redeem_authorization_code(
            code, record, issue_refresh_token=eligible, **bindings)
        id_token = _code_id_token(ctx, record, request, access_token.value, id_token_key)
    else:
        # the storage write runs on the executor while this thread signs; the ID token
        # is sent only if the redemption succeeded (else it is dropped unsent)
        redemption, access_value = started
        try:
            id_token = _code_id_token(ctx, record, request, access_value, id_token_key)
        except BaseException:
            # as without the executor, the redemption is not undone; its own failure
            # is secondary to this one
            _wait_quietly(redemption)
            raise
        access_token, refresh_token = redemption.result()
    scope = record["scope"]
    if not eligible and "offline_access" in scope.split():
        # no refresh token: the response does not claim offline access (OIDC Core 11)
        scope = " ".join(value for value in scope.split() if value != "offline_access")
    response = issued_token_response(access_token.value, access_token.type,
                                     access_token.expires_in, id_token, scope)
    if refresh_token:
        response["refresh_token"] = refresh_token
    return response


def refresh_token_eligible(ctx: ProviderContext, client: Mapping[str, Any],
                           scope: Any) -> bool:
    """Whether a code exchange may issue the client a refresh token (when the provider
    issues them at all: ``refresh_token_lifetime``).

    Never to a client whose registered ``grant_types`` omit ``refresh_token``: it may not
    use the grant (RFC 7591 2; the token endpoint refuses it, ``unauthorized_client``).
    A client without ``grant_types`` gets one, as every client did with pyop 3, unless
    ``refresh_token_requires_registered_grant`` (then omitted ``grant_types`` are the
    OIDC Dynamic Registration 2 default, ``["authorization_code"]``). With
    ``refresh_token_requires_offline_access``, only grants of the ``offline_access``
    scope get one (OIDC Core 11).

    :param scope: the granted scope (a space-separated string or a list).
    """
    registered = client.get("grant_types")
    configuration = ctx.configuration
    if registered is None:
        if configuration.refresh_token_requires_registered_grant:
            return False
    elif "refresh_token" not in (registered if isinstance(registered, (list, tuple))
                                 else [registered]):
        return False
    if configuration.refresh_token_requires_offline_access:
        values = scope.split() if isinstance(scope, str) else list(scope or [])
        return "offline_access" in values
    return True


def check_pkce(auth_req: Mapping[str, Any], verifier: Any) -> None:
    """The ``code_verifier`` matches the request's ``code_challenge`` (RFC 7636 4.6),
    compared in constant time.

    :raises InvalidAuthorizationCode: missing, malformed, unexpected or wrong verifier.
    """
    challenge = auth_req.get("code_challenge")
    if challenge is None:
        if verifier is not None:
            raise InvalidAuthorizationCode("code_verifier sent but no code_challenge was")
        return
    if not isinstance(verifier, str) or not PKCE_VALUE_PATTERN.fullmatch(verifier):
        raise InvalidAuthorizationCode("missing or malformed code_verifier")
    if auth_req.get("code_challenge_method", "plain") == "S256":
        computed = b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())
    else:
        computed = verifier
    if not hmac.compare_digest(computed.encode("ascii"), str(challenge).encode("ascii")):
        raise InvalidAuthorizationCode("code_verifier does not match the code_challenge")


def _bindings(request: GrantRequest) -> dict[str, Any]:
    """The confirmation the tokens of a code exchange are bound to (RFC 7800 3.1): the
    access token to the request's ``cnf`` (DPoP key and/or client certificate); the
    refresh token too for a public client (RFC 9449 5, RFC 8705 4: a confidential
    client's is bound by its authentication)."""
    cnf = request.cnf
    if not cnf:  # the call pyop 3's AuthorizationState (and its subclasses) accept
        return {}
    public = request.client.get("token_endpoint_auth_method") == "none"
    return {"cnf": cnf, "bind_refresh_token": public}


def _check_code_record(record: Mapping[str, Any], parameters: Mapping[str, Any],
                       client_id: str, ctx: Optional[ProviderContext] = None,
                       request: Optional[GrantRequest] = None) -> None:
    """The token request matches the code: same client (RFC 6749 4.1.3) and, for a code
    not used yet, the ``redirect_uri`` of the authorization request, the PKCE
    verifier (RFC 7636 4.6) and the DPoP key named by ``dpop_jkt`` (RFC 9449 10). A used
    code skips the latter: its redemption revokes the tokens issued from it (RFC 6749
    4.1.2).

    :raises InvalidAuthorizationCode: a check failed.
    """
    if record.get("client_id") != client_id:
        raise InvalidAuthorizationCode("the code was issued to another client")
    if not record.get("used"):
        auth_req = record.get("auth_req") or {}
        if parameters.get("redirect_uri") != auth_req.get("redirect_uri"):
            raise InvalidAuthorizationCode(
                "redirect_uri differs from the authorization request")
        check_pkce(auth_req, parameters.get("code_verifier"))
        if ctx is not None and not dpop.code_binding_matches(
                ctx.dpop, auth_req, request.dpop_proof if request is not None else None):
            raise InvalidAuthorizationCode("the DPoP proof's key is not the one dpop_jkt "
                                           "named in the authorization request")


def _redeem_on_executor(ctx: ProviderContext, code: str, record: Mapping[str, Any],
                        issue_refresh_token: bool, bindings: Mapping[str, Any]
                        ) -> Optional[tuple[Future[tuple[AccessToken, Optional[str]]], str]]:
    """Submit the redemption of ``code`` to the executor, with the access token value
    drawn here (for ``at_hash``); None to redeem in the calling thread: no executor, a
    replay (its stored record is "used": revoked, no ID token), sealed access tokens,
    or an executor that was shut down."""
    executor = ctx.executor
    authz_state = ctx.authz_state
    if (executor is None or record.get("used")
            or not authz_state.access_token_values_are_random):
        return None
    access_value = new_token_value()
    try:
        redemption = executor.submit(authz_state.redeem_authorization_code, code, record,
                                     access_token_value=access_value,
                                     issue_refresh_token=issue_refresh_token,
                                     **bindings)
    except RuntimeError:  # shut down (the host is stopping)
        logger.warning("the provider's executor refused the code redemption; "
                       "redeeming in the calling thread")
        return None
    return redemption, access_value


def _wait_quietly(future: Future[Any]) -> None:
    """Wait for ``future``; an exception it raised is logged, not raised."""
    try:
        future.result()
    except Exception:  # noqa: BLE001 - the caller is raising its own error
        logger.warning("a code redemption failed while the ID token could not be made",
                       exc_info=False)


def _code_id_token(ctx: ProviderContext, record: Mapping[str, Any], request: GrantRequest,
                   access_token_value: str, signing_key: SigningKey) -> str:
    """The ID token of a code exchange (OIDC Core 3.1.3.3, 3.1.3.6)."""
    client_id = request.client_id
    auth_req = record.get("auth_req") or {}
    user_id = record["user_id"]
    requested = claims_request_member(auth_req, "id_token")
    extra: claims_policy.ExtraClaims = request.extra_id_token_claims
    stored_extra = record.get("extra_id_token_claims")
    if stored_extra and extra is None:
        extra = stored_extra
    elif stored_extra:
        base = dict(stored_extra)
        base.update(claims_policy.extra_claims(extra, user_id, client_id) or {})
        extra = base
    return claims_policy.id_token(
        ctx, client_id=client_id, sub=record["sub"], user_id=user_id,
        nonce=auth_req.get("nonce"),
        claims=claims_policy.user_claims(ctx, user_id, narrow_claims(requested, request.client),
                                         record.get("user_info")),
        extra=extra, auth_time=record.get("auth_time"), acr=record.get("acr"),
        amr=record.get("amr"), access_token=access_token_value, signing_key=signing_key,
        sid=id_token_sid(ctx, request.client, record.get("sid")))
