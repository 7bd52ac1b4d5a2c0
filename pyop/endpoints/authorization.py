"""The authorization endpoint: authentication requests and their responses.

OIDC Core 3.1.2 (authorization code flow), 3.2.2 (implicit), 3.3.2 (hybrid), 5.5 (the
``claims`` parameter), 6.1-6.3 (request objects), 11 (``offline_access``); RFC 9207
(``iss`` in the response); RFC 7591 2 (a client's ``scope`` allow-list).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Optional, cast

from .. import claims_policy, dpop
from ..authz_state._pushed_requests import REQUEST_URI_PREFIX
from ..claims_policy import ExtraClaims
from ..client_management import (
    client_allowed_claims,
    client_allowed_scope,
    narrow_claims,
    narrow_claims_request,
    narrow_scope,
)
from ..context import ProviderContext
from ..crypto import JWSError, b64url_decode
from ..exceptions import (
    IdTokenHintMismatch,
    InvalidAuthenticationRequest,
    InvalidClientId,
    InvalidRedirectURI,
    InvalidRequestURI,
    ReauthenticationRequired,
    UnknownUser,
    UnmetAuthenticationRequirements,
)
from ..jarm import error_signer, jarm_key_for_request, wrap_response
from ..logout_notifications import has_logout_uri, id_token_sid, session_for_authorization
from ..message import (
    AuthorizationRequest,
    AuthorizationResponse,
    ClaimsRequest,
    Message,
    message_from_plain_values,
    new_message,
    set_string_member,
)
from ..request_object import merge_request_object, verify_request_object
from ..request_validator import check_client_id, check_redirect_uri
from ..response_mode import error_context
from ..util import (
    check_unique_parameters,
    claims_request_member,
    parse_parameters,
    response_type_set,
    strict_json_loads,
)

__all__ = ["parse_authentication_request", "create_authentication_error",
           "requires_authentication", "authorize", "RequestedAcr", "requested_acr_values",
           "hint_matches_user", "REQUEST_TIME_MEMBER", "requested_prompts",
           "validate_authentication_parameters", "verify_client_request_object",
           "pushed_requests_required", "PUSHED_REQUEST_URI_PREFIX",
           "SIGNED_REQUEST_MEMBER", "signed_request_required", "signed_request_object"]

#: The ``request_uri`` values of pushed authorization requests begin with this URN
#: (RFC 9126 2.2); other ``request_uri`` values are refused as before
#: (``request_uri_not_supported``).
PUSHED_REQUEST_URI_PREFIX = REQUEST_URI_PREFIX

logger = logging.getLogger(__name__)

#: The member of a parsed request holding when it was parsed (UNIX time, sub-second), set
#: only for requests that bound the age of the authentication (``prompt=login``,
#: ``max_age``, the client's ``default_max_age``); a value sent by the client is dropped.
#: It survives ``to_dict()``, so that :func:`authorize` can refuse an ``auth_time`` older
#: than the request allows (OIDC Core 3.1.2.1).
REQUEST_TIME_MEMBER = "pyop_requested_at"

#: The member set (to ``True``) only when the parameters came from a verified request
#: object signed by the client (not ``alg: none``; RFC 9101 10.5): in a parsed request,
#: for a ``request`` by value or a pushed one, and in the kept parameters of a pushed
#: request (RFC 9126 3), where the pushed request endpoint sets it. A value sent by the
#: client, in a query or pushed, is dropped; one in kept parameters counts only for the
#: ``request_uri`` of a pushed request. It survives ``to_dict()``.
SIGNED_REQUEST_MEMBER = "pyop_signed_request_object"


def parse_authentication_request(ctx: ProviderContext,
                                 request_body: Any) -> AuthorizationRequest:
    """Parse and validate an authentication request (OIDC Core 3.1.2.1-3.1.2.2): the
    fatal checks first (client_id, then redirect_uri: never redirected), then the rest.

    With ``request_parameter_supported``, a ``request`` object (OIDC Core
    6.1) is verified with the client's keys once client_id and redirect_uri
    are, and its members replace the query parameters (OIDC Core 6.3.3);
    see :mod:`pyop.request_object`.

    :param request_body: the query string (GET) or form body (POST), as
        ``str``/``bytes``, or a mapping of parameters.
    :returns: the validated request, to keep in the end-user's session.
    :raises InvalidClientId: unknown client (never redirected).
    :raises InvalidRedirectURI: missing or unregistered redirect_uri, also
        one inside a request object (never redirected).
    :raises InvalidAuthenticationRequest: any other error; its
        ``to_error_url()`` (or ``to_form_post()`` for ``response_mode=form_post``)
        gives the response to the client.
    """
    parameters = parse_parameters(request_body, ctx.configuration.max_request_size,
                                  lambda message: InvalidAuthenticationRequest(message, {}))
    client = check_client_id(parameters, ctx.clients)
    pushed = _is_pushed_request_uri(parameters.get("request_uri"))
    if pushed:
        parameters = _take_pushed_request(ctx, parameters)
    check_redirect_uri(parameters, client)
    with ctx.clients.request_client(cast(str, parameters["client_id"]), client):
        return _validate(ctx, parameters, pushed=pushed)


def _is_pushed_request_uri(request_uri: Any) -> bool:
    return isinstance(request_uri, str) and request_uri.startswith(PUSHED_REQUEST_URI_PREFIX)


def _take_pushed_request(ctx: ProviderContext, parameters: Mapping[str, Any]
                         ) -> dict[str, Any]:
    """The parameters of the pushed request the ``request_uri`` names, taken once (RFC
    9126 4): every other parameter of the request is ignored but ``client_id``, which must
    be the client that pushed it (RFC 9126 2.2, 7.1).

    :raises InvalidRequestURI: unknown, expired, used, or another client's (never
        redirected: the redirect URI is the pushed request's, which was not read).
    """
    client_id = cast(str, parameters["client_id"])
    pushed = ctx.authz_state.take_pushed_authorization_request(parameters["request_uri"],
                                                                client_id)
    if pushed is None:
        logger.info("authorization request with an invalid request_uri")
        raise InvalidRequestURI("request_uri is unknown, expired, used, or another client's",
                                {"client_id": client_id})
    pushed["client_id"] = client_id  # as pushed (the record is the client's)
    return pushed


def pushed_requests_required(ctx: ProviderContext, client: Mapping[str, Any]) -> bool:
    """Whether the client must push its authorization requests (RFC 9126 5, 6): the
    provider's ``require_pushed_authorization_requests``, or the client's metadata."""
    return (ctx.configuration.require_pushed_authorization_requests
            or client.get("require_pushed_authorization_requests") is True)


def validate_authentication_parameters(ctx: ProviderContext, parameters: Mapping[str, Any],
                                       *, pushed: bool = True) -> AuthorizationRequest:
    """The checks of an authentication request once its client and ``redirect_uri`` are
    verified (OIDC Core 3.1.2.2), on a copy of ``parameters``; for a pushed request
    (RFC 9126 2.1) ``pushed`` is true. The errors are redirectable
    :class:`~pyop.exceptions.InvalidAuthenticationRequest`; the caller answers them as its
    endpoint does."""
    return _validate(ctx, dict(parameters), pushed=pushed)


def _validate(ctx: ProviderContext, parameters: dict[str, Any], *,
              pushed: bool = False) -> AuthorizationRequest:
    """The checks after client and redirect_uri (OIDC Core 3.1.2.2); errors redirect.
    ``pushed``: the parameters are those of a pushed request (RFC 9126)."""
    # client and redirect_uri verified: from here on errors may be redirected, with what
    # the response needs from the parameters (error_context, made only for an error)
    try:
        check_unique_parameters(
            parameters, lambda message: InvalidAuthenticationRequest(message, parameters))
        signed = False
        if pushed:  # the provider's record of the push (RFC 9126 3), never the client's
            signed = parameters.pop(SIGNED_REQUEST_MEMBER, None) is True
        parameters.pop(SIGNED_REQUEST_MEMBER, None)
        if not pushed and pushed_requests_required(
                ctx, ctx.clients.get(parameters.get("client_id")) or {}):
            # RFC 9126 4: only request_uri values from the pushed request endpoint
            raise InvalidAuthenticationRequest(
                "authorization requests of this client must be pushed (RFC 9126)", parameters)
        if "request" in parameters and ctx.configuration.request_parameter_supported:
            parameters, signed_object = _merge_request_object(ctx, parameters)
            signed = signed or signed_object
        if not signed and signed_request_required(ctx, parameters["client_id"]):
            raise InvalidAuthenticationRequest(
                "this request must be a signed request object (RFC 9101 10.5)", parameters)
        _check_max_age(parameters)
        _parse_claims_parameter(parameters)
        create = ctx.configuration.prompt_create and _take_prompt_create(parameters)
        try:
            authn_req = message_from_plain_values(AuthorizationRequest, parameters)
        except Exception as e:  # oic raises many types for malformed values
            raise InvalidAuthenticationRequest(
                f"malformed request: {type(e).__name__}", parameters) from e
        if "claims" in authn_req and not ctx.configuration.claims_parameter_honoured():
            del authn_req["claims"]
        scope = authn_req.get("scope") or []
        if "offline_access" in scope and "consent" not in (authn_req.get("prompt") or []):
            # OIDC Core 11: ignore offline_access unless consent is prompted for
            authn_req["scope"] = [s for s in scope if s != "offline_access"]
        client = ctx.clients.get(authn_req.get("client_id")) or {}
        _narrow_scope_to_allow_list(authn_req, client)
        for validator in ctx.authentication_request_validators:
            validator(authn_req)
        _narrow_claims_to_allow_list(authn_req, client)
        _check_id_token_hint(ctx, authn_req)
        dpop.check_dpop_jkt_parameter(ctx.dpop, authn_req)
        for member in (REQUEST_TIME_MEMBER, SIGNED_REQUEST_MEMBER):
            if member in authn_req:
                del authn_req[member]  # only the provider sets them
        if signed:
            authn_req[SIGNED_REQUEST_MEMBER] = True
        if _login_required(authn_req) or claims_policy.effective_max_age(
                authn_req, client) is not None:
            authn_req[REQUEST_TIME_MEMBER] = float(ctx.clock())
        if create:  # checked apart from the values OIDC Core 3.1.2.1 defines
            authn_req["prompt"] = [*(authn_req.get("prompt") or []), PROMPT_CREATE]
        return authn_req
    except (InvalidClientId, InvalidRedirectURI):
        raise  # e.g. a request object's redirect_uri: never redirected
    except InvalidAuthenticationRequest as e:
        e.request = error_context(parameters)
        e.redirect_uri_verified = True
        e.issuer = ctx.issuer
        e.response_signer = error_signer(ctx, parameters.get("client_id"),
                                         parameters.get("response_mode"))
        logger.info("invalid authentication request: %s", e.oauth_error)
        raise


#: The ``prompt`` value asking for the sign-up page (Initiating User Registration 1.0, 3).
PROMPT_CREATE = "create"


def _take_prompt_create(parameters: dict[str, Any]) -> bool:
    """Remove ``create`` from the ``prompt`` parameter; whether it was there.

    :raises InvalidAuthenticationRequest: ``create`` with ``none`` (Initiating User
        Registration 1.0, 3: the end-user must be able to interact).
    """
    prompt = parameters.get("prompt")
    values = prompt.split() if isinstance(prompt, str) else prompt
    if not isinstance(values, list) or PROMPT_CREATE not in values:
        return False
    if "none" in values:
        raise InvalidAuthenticationRequest("prompt=create must not be combined with none",
                                           parameters)
    rest = [value for value in values if value != PROMPT_CREATE]
    if rest:
        parameters["prompt"] = " ".join(str(value) for value in rest)
    else:
        del parameters["prompt"]
    return True


def requested_prompts(authentication_request: Mapping[str, Any]) -> frozenset[str]:
    """The ``prompt`` values of a parsed request (OIDC Core 3.1.2.1): ``none``,
    ``login``, ``consent``, ``select_account``, and ``create`` (Initiating User
    Registration 1.0) when the provider's ``prompt_create`` option accepted it."""
    prompt = authentication_request.get("prompt")
    values = prompt.split() if isinstance(prompt, str) else prompt
    if not isinstance(values, list):
        return frozenset()
    return frozenset(value for value in values if isinstance(value, str))


def _check_max_age(parameters: Mapping[str, Any]) -> None:
    max_age = parameters.get("max_age")
    if max_age is not None and not (isinstance(max_age, str) and max_age.isascii()
                                    and max_age.isdigit() and len(max_age) <= 12):
        raise InvalidAuthenticationRequest("max_age must be a non-negative integer",
                                           parameters)


def _check_id_token_hint(ctx: ProviderContext, authn_req: AuthorizationRequest) -> None:
    """An ``id_token_hint`` must be an ID token this provider issued (OIDC Core 3.1.2.1:
    "ID Token previously issued by the Authorization Server"; expired ones included).

    pyop 3 failed with an uncaught exception on any hint signed with a key (its own
    included) and accepted unsigned ones; here a hint that does not verify is an
    ``invalid_request`` (redirected: client and redirect_uri are verified by now).
    """
    hint = authn_req.get("id_token_hint")
    if hint is None:
        return
    if ctx.keys.verify_id_token_hint(hint, ctx.issuer) is None:
        raise InvalidAuthenticationRequest("id_token_hint was not issued by this provider",
                                           authn_req)


def _parse_claims_parameter(parameters: dict[str, Any]) -> None:
    """The ``claims`` parameter (OIDC Core 5.5) parsed from its JSON."""
    claims_param = parameters.get("claims")
    if isinstance(claims_param, str):
        try:
            parameters["claims"] = strict_json_loads(claims_param)
        except ValueError as e:
            raise InvalidAuthenticationRequest("claims is not valid JSON", parameters) from e
        if not isinstance(parameters["claims"], dict):
            raise InvalidAuthenticationRequest("claims must be a JSON object", parameters)


def _narrow_scope_to_allow_list(authn_req: AuthorizationRequest,
                                client: Mapping[str, Any]) -> None:
    """Drop scope values outside the client's ``scope`` metadata (RFC 7591 2).

    Run before the validators, so that a request left without ``openid`` is an
    ``invalid_scope`` error (OIDC Core 3.1.2.1).
    """
    if client_allowed_scope(client) is None or "scope" not in authn_req:
        return
    authn_req["scope"] = narrow_scope(authn_req["scope"], client)


def _narrow_claims_to_allow_list(authn_req: AuthorizationRequest,
                                 client: Mapping[str, Any]) -> None:
    """Drop the members of the ``claims`` parameter (OIDC Core 5.5) outside the
    client's ``allowed_claims``."""
    claims = authn_req.get("claims")
    if claims is None or client_allowed_claims(client) is None:
        return
    if hasattr(claims, "to_dict"):
        claims = claims.to_dict()
    authn_req["claims"] = ClaimsRequest(**narrow_claims_request(claims, client))


def signed_request_required(ctx: ProviderContext, client_id: Any) -> bool:
    """Whether the client's requests must be signed request objects: the provider's
    ``require_signed_request_object`` option, or the client's metadata of that name
    (RFC 9101 10.5; ``alg: none`` does not count)."""
    if ctx.configuration.require_signed_request_object:
        return True
    client = ctx.clients.get(client_id) or {}
    return client.get("require_signed_request_object") is True


def signed_request_object(request_object: Any) -> bool:
    """Whether a verified request object is signed: its JWS ``alg`` is not ``none``
    (RFC 9101 10.5)."""
    if not isinstance(request_object, str):
        return False
    try:
        header = json.loads(b64url_decode(request_object.split(".", 1)[0]))
    except (JWSError, ValueError, UnicodeDecodeError, RecursionError):  # pragma: no cover
        return False  # verified before: well-formed
    return isinstance(header, dict) and header.get("alg") not in (None, "none")


def _worth_client_keys(request_object: Any, allowed_algs: Iterable[str],
                       client_alg: Optional[str]) -> bool:
    """Cheap checks before the client's keys are looked up (maybe fetched from its
    ``jwks_uri``): a JWS whose header parses and names an ``alg`` the provider and the
    client accept, ``none`` aside. When they fail, verification fails (or, for an accepted
    unsigned object, succeeds) without any key, so nothing is fetched."""
    if not isinstance(request_object, str) or request_object.count(".") != 2:
        return False
    try:
        header = json.loads(b64url_decode(request_object.split(".", 1)[0]))
    except (JWSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    if not isinstance(header, dict) or "crit" in header:
        return False
    alg = header.get("alg")
    return (isinstance(alg, str) and alg != "none" and alg in set(allowed_algs)
            and (client_alg is None or alg == client_alg))


def _merge_request_object(ctx: ProviderContext, parameters: dict[str, Any]
                          ) -> tuple[dict[str, Any], bool]:
    """Verify the ``request`` object and merge it over the query (OIDC Core 6.3); the
    merged parameters, and whether the object was signed.

    :raises InvalidAuthenticationRequest: ``invalid_request_object`` (redirectable).
    :raises InvalidRedirectURI: the object's redirect_uri is not registered.
    """
    client_id = cast(str, parameters["client_id"])
    client = ctx.clients.get(client_id) or {}
    claims = verify_client_request_object(ctx, client_id, client, parameters["request"])
    merged = merge_request_object(parameters, claims)
    if merged.get("redirect_uri") != parameters.get("redirect_uri"):
        # the response goes to the merged redirect_uri: it must be registered too
        check_redirect_uri(merged, client)
    return merged, signed_request_object(parameters["request"])


def verify_client_request_object(ctx: ProviderContext, client_id: str,
                                 client: Mapping[str, Any], request_object: Any
                                 ) -> dict[str, Any]:
    """The claims of a client's request object, verified with its keys (OIDC Core 6.3.2,
    RFC 9101 6), its keys fetched again once when they came from a cached ``jwks_uri``
    document (the client may have rotated them).

    :raises InvalidAuthenticationRequest: ``invalid_request_object``.
    """
    client_alg = client.get("request_object_signing_alg")
    configuration = ctx.configuration

    def verify(jwks: Optional[list[dict[str, Any]]]) -> dict[str, Any]:
        return verify_request_object(
            request_object, client_id=client_id, client_jwks=jwks,
            issuer=ctx.issuer, allowed_algs=configuration.request_object_signing_algs,
            now=ctx.now(), client_alg=client_alg if isinstance(client_alg, str) else None,
            allow_unsigned=configuration.allow_unsigned_request_objects,
            max_lifetime=configuration.max_request_object_lifetime,
            require_claims=configuration.require_request_object_claims,
            replay_store=getattr(ctx.client_assertion_verifier, "replay_store", None))

    if not _worth_client_keys(request_object, configuration.request_object_signing_algs,
                              client_alg if isinstance(client_alg, str) else None):
        jwks, fresh = None, True
    else:
        jwks, fresh = ctx.client_keys.jwks(client_id, client)
    try:
        claims = verify(jwks)
    except InvalidAuthenticationRequest:
        if fresh:
            raise
        # keys from a cached jwks_uri document: the client may have rotated them
        jwks, _ = ctx.client_keys.jwks(client_id, client, refetch=True)
        claims = verify(jwks)
    return claims


def create_authentication_error(ctx: ProviderContext,
                                authentication_request: Mapping[str, Any],
                                oauth_error: str, description: str = ""
                                ) -> InvalidAuthenticationRequest:
    """A redirectable error for a request this provider validated (OIDC Core 3.1.2.6).

    For errors the host decides, e.g. ``login_required`` for ``prompt=none``
    without a session, ``consent_required``, ``access_denied`` (OIDC Core
    3.1.2.6). Use its ``to_error_url()``.
    """
    error = InvalidAuthenticationRequest(description, error_context(authentication_request),
                                         oauth_error,
                                         redirect_uri_verified=True, issuer=ctx.issuer)
    error.response_signer = error_signer(ctx, authentication_request.get("client_id"),
                                         authentication_request.get("response_mode"))
    return error


def requires_authentication(ctx: ProviderContext, authentication_request: Mapping[str, Any],
                            auth_time: Optional[float], *,
                            user_id: Optional[str] = None) -> bool:
    """Whether the end-user must (re-)authenticate before :func:`authorize`.

    True without an ``auth_time``; for ``prompt=login`` and for ``max_age=0``, which is
    equivalent (OIDC Core 3.1.2.1), always, even when the session began in the same
    second; when more than ``max_age`` seconds passed since ``auth_time`` -- the request's
    ``max_age``, else the client's registered ``default_max_age`` (OIDC Dynamic
    Registration 2); and, with ``user_id`` (the user logged in at the host), when the
    request's ``id_token_hint`` names another end-user (OIDC Core 3.1.2.1, see
    :func:`hint_matches_user`).

    After a (re-)authentication, pass its time to :func:`authorize` as ``auth_time``
    with sub-second precision (e.g. ``time.time()``): :func:`authorize` refuses an
    ``auth_time`` before the request for ``prompt=login``/``max_age=0``
    (:class:`~pyop.exceptions.ReauthenticationRequired`).

    :param auth_time: when the end-user last authenticated (UNIX time), or None.
    :param user_id: the host's id of the end-user logged in, to check ``id_token_hint``.
    """
    if auth_time is None:
        return True
    if _login_required(authentication_request):
        return True
    max_age = claims_policy.effective_max_age(authentication_request, {})
    if max_age is None:  # the client's default (read only when needed)
        client = ctx.clients.get(authentication_request.get("client_id")) or {}
        max_age = claims_policy.effective_max_age(authentication_request, client)
    if max_age is not None and (max_age == 0 or ctx.clock() - auth_time > max_age):
        return True
    return user_id is not None and not hint_matches_user(ctx, authentication_request, user_id)


def _login_required(authentication_request: Mapping[str, Any]) -> bool:
    """``prompt=login`` (OIDC Core 3.1.2.1), the prompt a list or a space-separated string."""
    prompt = authentication_request.get("prompt") or []
    return "login" in (prompt.split() if isinstance(prompt, str) else prompt)


class RequestedAcr(NamedTuple):
    """The Authentication Context Class References an authentication request asks for.

    ``values`` in order of preference: those of an ``acr`` claim request for the ID token
    (OIDC Core 5.5.1.1, ``value`` or ``values``), then those of ``acr_values`` (OIDC Core
    3.1.2.1), else the client's ``default_acr_values`` (OIDC Dynamic Registration 2).
    ``essential``: the ``acr`` claim was requested as Essential with value(s): the
    authentication must achieve one of ``values``, or :func:`authorize` fails with
    :class:`~pyop.exceptions.UnmetAuthenticationRequirements` (OIDC Core 5.5.1.1).
    Otherwise the values are voluntary: the acr achieved is released whatever it is.
    """

    values: list[str]
    essential: bool

    def satisfied_by(self, acr: Any) -> bool:
        """Whether an achieved ``acr`` meets the request (always, unless essential)."""
        return not self.essential or acr in self.values


def requested_acr_values(ctx: ProviderContext, authentication_request: Mapping[str, Any],
                         client: Optional[Mapping[str, Any]] = None) -> RequestedAcr:
    """The acr values the request asks for, for the host to choose how to authenticate
    the end-user before :func:`authorize` (OIDC Core 3.1.2.1, 5.5.1.1; OIDC Dynamic
    Registration 2). See :class:`RequestedAcr`.

    :param client: the client's metadata when the caller has read it (else read here,
        only when the request names no acr value)."""
    spec = claims_request_member(authentication_request, "id_token").get("acr")
    claim_values: list[str] = []
    essential = False
    if spec is not None and isinstance(spec, Mapping):
        if isinstance(spec.get("value"), str):
            claim_values = [spec["value"]]
        elif isinstance(spec.get("values"), list):
            claim_values = [v for v in spec["values"] if isinstance(v, str)]
        essential = spec.get("essential") is True and bool(claim_values)
    if essential:
        return RequestedAcr(claim_values, True)
    values = list(claim_values)
    for value in _string_list(authentication_request.get("acr_values")):
        if value not in values:
            values.append(value)
    if not values:
        if client is None:
            client = ctx.clients.get(authentication_request.get("client_id")) or {}
        values = _string_list(client.get("default_acr_values"))
    return RequestedAcr(values, False)


def _string_list(value: Any) -> list[str]:
    """A list of strings from a list or a space-separated string (anything else: [])."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def hint_matches_user(ctx: ProviderContext, authentication_request: Mapping[str, Any],
                      user_id: str, *, sub: Optional[str] = None) -> bool:
    """Whether the request's ``id_token_hint`` names ``user_id`` (True without a hint).

    OIDC Core 3.1.2.1: the hint identifies the end-user the client expects; when another
    one is logged in, the provider answers an error such as ``login_required`` (with
    ``prompt=none``) or asks the end-user to switch accounts. The hint's ``sub`` is
    compared with the one issued to the hint's client for ``user_id``, public or pairwise
    (:func:`pyop.claims_policy.subject_names_user`). A hint that does not verify matches
    nobody.

    :param sub: the ``sub`` of ``user_id`` for the requesting client, when known.
    """
    hint = authentication_request.get("id_token_hint")
    if hint is None:
        return True
    claims = ctx.keys.verify_id_token_hint(hint, ctx.issuer)
    if claims is None:
        return False
    client_id = authentication_request.get("client_id")
    audience = claims.get("aud")
    audience = [audience] if isinstance(audience, str) else list(audience or [])
    if client_id in audience:
        if sub is not None and claims["sub"] == sub:
            return True
        client = ctx.clients.get(client_id)
        redirect_uri = authentication_request.get("redirect_uri")
    else:  # issued to another client: its sub of the user
        client = next((c for c in (ctx.clients.get(a) for a in audience[:4]) if c), None)
        redirect_uri = None
    return claims_policy.subject_names_user(ctx, claims["sub"], user_id, client, redirect_uri)


def authorize(ctx: ProviderContext, authentication_request: Mapping[str, Any], user_id: str,
              extra_id_token_claims: ExtraClaims = None, *,
              auth_time: Optional[float] = None, acr: Optional[str] = None,
              amr: Optional[Iterable[str]] = None,
              session_id: Optional[str] = None) -> AuthorizationResponse:
    """The authentication response for an authenticated end-user: a code, access token
    and/or ID token as the ``response_type`` asks (OIDC Core 3.1.2.5, 3.2.2.5, 3.3.2.5).

    Steps: 1. the client and its ID token key (before anything is issued); 2. the
    subject identifier, checked against a requested ``sub`` and the ``id_token_hint``,
    and the authentication against the request (age, essential ``acr``); 3. the scope
    granted and ``auth_time``; 4. the code, 5. the access token, 6. the ID token; 7. ``state`` and
    ``iss`` (RFC 9207 2).

    The host sends the user agent to
    ``response.request(redirect_uri, should_fragment_encode(req))`` (or answers with
    :func:`~pyop.util.render_form_post` when ``should_form_post(req)``). For a JARM
    response mode the provider offers, the response's only member is ``response``, a
    JWT signed by the provider holding the parameters with ``iss``, ``aud`` and ``exp``
    (JARM 2.1, 2.3); the same calls send it.

    :param authentication_request: the request returned by
        :meth:`~pyop.provider.Provider.parse_authentication_request` (or rebuilt from
        its ``to_dict()``).
    :param user_id: the host's local id of the authenticated user.
    :param extra_id_token_claims: extra ID token claims: a dict, or a callable
        ``(user_id, client_id) -> dict``; also applied at the token endpoint.
    :param auth_time: when the user authenticated (UNIX time, best with sub-second
        precision), for ``auth_time``. Without it, when the ID token needs an
        ``auth_time`` (``max_age``, the client's ``default_max_age`` or
        ``require_auth_time``, an essential ``auth_time`` claim request), the time of this
        call is used: calling ``authorize`` without ``auth_time`` asserts that the
        end-user has just authenticated.
    :param acr: the Authentication Context Class Reference achieved (else an ``acr`` in
        ``extra_id_token_claims`` or the user's claims is the one released).
    :param amr: the Authentication Methods References used.
    :raises IdTokenHintMismatch: the ``id_token_hint`` names another end-user
        (``login_required``, OIDC Core 3.1.2.1).
    :raises ReauthenticationRequired: ``auth_time`` is before the request for
        ``prompt=login`` or ``max_age=0``, or more than ``max_age`` (else
        ``default_max_age``) seconds before it (``login_required``, OIDC Core 3.1.2.1).
    :raises UnmetAuthenticationRequirements: the ``acr`` released would not be one of the
        values of an essential ``acr`` claim request (OIDC Core 5.5.1.1).

    :param session_id: the host's login session the grant belongs to (e.g. from
        :func:`~pyop.logout_notifications.new_session_id`, kept in the host's session):
        its codes and tokens remember it, so that logging that session out revokes them
        only, and ID tokens carry it as ``sid`` when the client registered
        ``frontchannel_logout_session_required`` / ``backchannel_logout_session_required``
        or ``id_token_sid`` is on. Without it, one is minted when the ID tokens need a
        ``sid``; the session used is ``response.session_id`` (an attribute, not a member
        of the response; None without a session): keep it to log the session out.
    :raises InvalidTokenRequest: ``invalid_client`` when the client was deleted since
        the request was parsed; :class:`~pyop.exceptions.UnauthorizedClient` when the
        provider has no key for the client's ``id_token_signed_response_alg``.
    :raises UnknownUser: the claims source does not know ``user_id`` (a ``KeyError``;
        nothing is issued, the host decides what follows, see :doc:`errors`).
    :raises StorageError: the storage failed.
    """
    if (type(authentication_request) is not AuthorizationRequest
            and not isinstance(authentication_request, Message)):
        # e.g. the dict a host kept in its session: scope back to a list, claims parsed
        authentication_request = AuthorizationRequest().from_dict(dict(authentication_request))
    client_id = authentication_request["client_id"]
    client = ctx.client(client_id)  # 1.
    id_token_key = ctx.keys.id_token_key(client)  # before any code or token is issued
    jarm_key = jarm_key_for_request(ctx, client, authentication_request)  # JARM 2.2
    response_types = response_type_set(authentication_request.get("response_type"))
    try:
        user_record, sub = _end_user(ctx, authentication_request, client, user_id)  # 2.
        _check_authentication(ctx, authentication_request, client, user_id, sub,
                              user_record, extra_id_token_claims, auth_time, acr)
    except InvalidAuthenticationRequest as e:
        if e.redirectable and e.response_signer is None:  # JARM 2.1.3
            e.response_signer = error_signer(ctx, client_id,
                                             authentication_request.get("response_mode"))
        raise
    scope = narrow_scope(claims_policy.granted_scope(ctx, authentication_request), client)  # 3.
    auth_time_int = _auth_time(ctx, authentication_request, client, auth_time)
    sid, _ = session_for_authorization(ctx, client, session_id)

    response = new_message(AuthorizationResponse)
    carried = None
    if response_types & {"code", "token"}:
        carried = claims_policy.claims_to_carry(ctx, user_id, client, scope,
                                                authentication_request)
    code = None
    access_token = None
    try:
        if "code" in response_types:  # 4.
            code = _issue_code(ctx, authentication_request, sub, user_id, scope, carried,
                               extra_id_token_claims, auth_time_int, acr, amr, sid)
        if "token" in response_types:  # 5.
            access_token = ctx.authz_state.issue_access_token(
                authentication_request, sub, user_id, scope, user_info=carried,
                session_id=sid)
    except InvalidAuthenticationRequest as e:
        # e.g. a sealed code or token too long to be read back: the client and its
        # redirect_uri were verified when the request was parsed, so the error redirects
        e.request = error_context(authentication_request)
        e.redirect_uri_verified = True
        e.issuer = ctx.issuer
        raise
    if code is not None:
        set_string_member(response, "code", code)
    if access_token is not None:
        response["access_token"] = access_token.value
        response["token_type"] = access_token.type
        response["expires_in"] = access_token.expires_in
    if "id_token" in response_types:  # 6.
        response["id_token"] = _id_token(
            ctx, authentication_request, response_types, client, sub, user_id, scope,
            user_record, extra_id_token_claims, auth_time_int, acr, amr,
            access_token.value if access_token else None, code, id_token_key,
            id_token_sid(ctx, client, sid))
    if "state" in authentication_request:  # 7.
        set_string_member(response, "state", authentication_request["state"])
    set_string_member(response, "iss", ctx.issuer)  # RFC 9207 2
    if has_logout_uri(client, ctx.configuration.metadata):  # to notify at logout
        ctx.authz_state.record_session_client(client_id, sub, sid,
                                              ctx.configuration.session_lifetime)
    # an attribute, not a member: never sent to the client
    response.session_id = sid  # type: ignore[attr-defined]
    if jarm_key is not None:  # JARM 2.1, 2.3: the parameters in one signed JWT
        return wrap_response(ctx, jarm_key, client_id, response)
    return response


def _end_user(ctx: ProviderContext, authentication_request: Mapping[str, Any],
              client: Mapping[str, Any], user_id: str) -> tuple[Any, str]:
    """The user's claims record (read once) and ``sub``, checked against a requested
    ``sub`` (OIDC Core 3.1.2.2, 5.5.1).

    :raises UnknownUser: the claims source does not know ``user_id``.
    """
    user_record = claims_policy.user_record(ctx, user_id)
    if user_record is None and not claims_policy.knows_user(ctx, user_id):
        raise UnknownUser(f"the claims source (userinfo) does not know user {user_id!r}")
    sub = claims_policy.subject_identifier(ctx, client, user_id,
                                           authentication_request.get("redirect_uri"),
                                           user_record, record_read=True)
    claims_policy.check_requested_subject(ctx, authentication_request, sub)
    return user_record, sub


def _check_authentication(ctx: ProviderContext, authentication_request: Mapping[str, Any],
                          client: Mapping[str, Any], user_id: str, sub: str,
                          user_record: Any, extra_id_token_claims: ExtraClaims,
                          auth_time: Optional[float], acr: Optional[str]) -> None:
    """The end-user and the authentication meet the request's constraints, before anything
    is issued: the ``id_token_hint`` names this user, ``auth_time`` is recent enough
    (OIDC Core 3.1.2.1), an essential ``acr`` is met (OIDC Core 5.5.1.1)."""
    def refuse(error_class: Any, message: str) -> None:
        raise error_class(message, error_context(authentication_request),
                          redirect_uri_verified=True, issuer=ctx.issuer)

    if "id_token_hint" in authentication_request and not hint_matches_user(
            ctx, authentication_request, user_id, sub=sub):
        refuse(IdTokenHintMismatch, "the end-user is not the one the id_token_hint names")
    requested_at = authentication_request.get(REQUEST_TIME_MEMBER)
    if (auth_time is not None and isinstance(requested_at, (int, float))
            and not isinstance(requested_at, bool)):
        max_age = claims_policy.effective_max_age(authentication_request, client)
        if _login_required(authentication_request) or max_age == 0:
            if auth_time < requested_at:
                refuse(ReauthenticationRequired,
                       "the end-user did not authenticate again after the request")
        elif max_age is not None and requested_at - auth_time > max_age:
            refuse(ReauthenticationRequired, "the authentication is older than max_age")
    requested_acr = requested_acr_values(ctx, authentication_request, client)
    if requested_acr.essential and not requested_acr.satisfied_by(
            _released_acr(ctx, authentication_request, client, user_id, user_record,
                          extra_id_token_claims, acr)):
        refuse(UnmetAuthenticationRequirements,
               "the authentication does not meet the essential acr requested")


def _released_acr(ctx: ProviderContext, authentication_request: Mapping[str, Any],
                  client: Mapping[str, Any], user_id: str, user_record: Any,
                  extra_id_token_claims: ExtraClaims, acr: Optional[str]) -> Any:
    """The ``acr`` the ID token will carry, by the precedence of
    :func:`pyop.id_token.create_id_token`: the ``acr`` argument, else the host's extra
    claims, else the user's claims as requested (OIDC Core 5.5.1.1)."""
    if acr is not None:
        return acr
    extra = claims_policy.extra_claims(extra_id_token_claims, user_id,
                                       authentication_request["client_id"])
    if isinstance(extra, Mapping) and "acr" in extra:
        return extra["acr"]
    spec = claims_request_member(authentication_request, "id_token").get("acr")
    released = claims_policy.user_claims(ctx, user_id, narrow_claims({"acr": spec}, client),
                                         user_record)
    return released.get("acr")


def _auth_time(ctx: ProviderContext, authentication_request: Mapping[str, Any],
               client: Mapping[str, Any], auth_time: Optional[float]) -> Optional[int]:
    """The ``auth_time`` of the ID token: the host's, else now when it is required."""
    auth_time_int = int(auth_time) if auth_time is not None else None
    if auth_time_int is None and claims_policy.auth_time_required(authentication_request,
                                                                  client):
        # OIDC Core 3.1.2.1, 5.5.1; Registration 2 (require_auth_time, default_max_age):
        # auth_time is then REQUIRED in the ID token. authorize() is called when the
        # end-user has just authenticated.
        auth_time_int = ctx.now()
    return auth_time_int


def _id_token(ctx: ProviderContext, authentication_request: Mapping[str, Any],
              response_types: frozenset[str], client: Mapping[str, Any], sub: str,
              user_id: str, scope: list[str], user_record: Any,
              extra_id_token_claims: ExtraClaims, auth_time: Optional[int],
              acr: Optional[str], amr: Optional[Iterable[str]],
              access_token: Optional[str], code: Optional[str], signing_key: Any,
              sid: Optional[str] = None) -> str:
    """The ID token of the authentication response (OIDC Core 3.2.2.10, 3.3.2.11), with
    the requested claims; the scope's claims too when no access token is issued
    (OIDC Core 5.4)."""
    requested = claims_request_member(authentication_request, "id_token")
    if response_types == {"id_token"}:
        # no access token: scope claims go in the ID token (OIDC Core 5.4)
        requested = {**claims_policy.scope_claims(ctx, scope), **requested}
    token: str = claims_policy.id_token(
        ctx, client_id=authentication_request["client_id"], sub=sub, user_id=user_id,
        nonce=authentication_request.get("nonce"),
        claims=claims_policy.user_claims(ctx, user_id, narrow_claims(requested, client),
                                         user_record),
        extra=extra_id_token_claims, auth_time=auth_time, acr=acr, amr=amr,
        access_token=access_token, code=code, signing_key=signing_key, sid=sid)
    return token


def _issue_code(ctx: ProviderContext, authentication_request: Mapping[str, Any], sub: str,
                user_id: str, scope: list[str], carried: Optional[dict[str, Any]],
                extra_id_token_claims: ExtraClaims, auth_time: Optional[int],
                acr: Optional[str], amr: Optional[Iterable[str]],
                sid: Optional[str] = None) -> str:
    """An authorization code recording what its ID token will need (OIDC Core 3.1.3.6)."""
    extra: dict[str, Any] = {}
    if auth_time is not None:
        extra["auth_time"] = auth_time
    if acr is not None:
        extra["acr"] = acr
    if amr is not None:
        extra["amr"] = list(amr)
    if extra_id_token_claims is not None and isinstance(extra_id_token_claims, Mapping):
        extra["extra_id_token_claims"] = dict(extra_id_token_claims)
    elif callable(extra_id_token_claims):
        claims_now = extra_id_token_claims(user_id, authentication_request["client_id"])
        if claims_now:
            extra["extra_id_token_claims"] = dict(claims_now)
    if carried is not None:
        extra["user_info"] = carried
    if sid is not None:
        extra["sid"] = sid  # the login session (see AuthorizationState.revoke_session)
    return ctx.authz_state.issue_authorization_code(
        cast(Message, authentication_request).to_dict(), sub, user_id, scope, extra)
