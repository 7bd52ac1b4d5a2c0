"""The UserInfo endpoint: the claims an access token was granted.

OIDC Core 5.3 (request 5.3.1, response 5.3.2, signed response), 5.4 (scope claims),
5.5 (``claims`` request); RFC 6750 2-3 (bearer tokens and their errors); RFC 7591 2 and
RFC 7592 2.3 (allow-lists as they are now; deleted clients).
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Union

from .. import claims_policy, dpop
from ..access_token import extract_bearer_token_from_http_request, get_header
from ..client_certificate import check_certificate_bound
from ..client_management import narrow_claims, narrow_scope
from ..context import ProviderContext
from ..exceptions import (
    BearerTokenError,
    InsufficientScope,
    InvalidAccessToken,
    InvalidUserinfoRequest,
    TokenWithoutEndUser,
)
from ..message import UserinfoResponse, message_from_plain_values
from ..util import is_valid_identifier, parse_parameters

__all__ = ["handle_userinfo_request"]

logger = logging.getLogger(__name__)


#: The media type of a form body (RFC 6750 2.2).
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


def handle_userinfo_request(ctx: ProviderContext, request: Any = None,
                            http_headers: Optional[Any] = None, *,
                            http_method: Optional[str] = None,
                            http_url: Optional[str] = None,
                            client_certificate: Optional[Union[str, bytes]] = None
                            ) -> UserinfoResponse:
    """A UserInfo request (OIDC Core 5.3): 1. the bearer token and its record; 2. its
    client, still registered; 3. an end-user and the ``openid`` scope; 4. the claims of
    the scope and ``claims`` request within the client's allow-lists; 5. signed when the
    client registered ``userinfo_signed_response_alg``.

    The result is a :class:`~pyop.message.UserinfoResponse` (an ``OpenIDSchema``)
    whose ``to_json()`` is the JSON response, as in pyop 3. Send ``result.to_body()``
    with the ``Content-Type`` ``result.content_type``: for a client that registered
    ``userinfo_signed_response_alg`` that is a JWT signed with that alg, with the
    ``iss`` and ``aud`` claims, as ``application/jwt`` (OIDC Core 5.3.2).

    :param request: the form body (POST) or query string (GET), possibly empty.
    :param http_headers: the request headers; ``Authorization: Bearer ...``.
    :param http_method: the HTTP method, when the host passes it: see below.
    :param http_url: the URL the client called (default: the ``userinfo_endpoint``
        metadata), for DPoP proofs (``htu``, RFC 9449 4.3).
    :param client_certificate: the client certificate of a mutual TLS connection (PEM or
        DER): a certificate-bound access token (``cnf`` ``x5t#S256``) is refused without
        the certificate it is bound to (RFC 8705 3: 401 ``invalid_token``).
    :raises BearerTokenError: no token (401 ``invalid_token``).
    :raises InvalidUserinfoRequest: token in several places, malformed request, or a
        token in the URL query (400).
    :raises InvalidAccessToken: unknown, expired or revoked token, or a token of a
        client that was deleted since (401).
    :raises InsufficientScope: the token lacks ``openid`` (403).
    :raises InvalidUserinfoRequest: also when the provider has no key for the
        client's registered ``userinfo_signed_response_alg`` (logged as an error).
    :raises TokenWithoutEndUser: a ``client_credentials`` token of a client that
        still exists (403; an :class:`InsufficientScope`).
    :raises DPoPTokenError: with DPoP enabled, a request with ``Authorization: DPoP``
        whose proof, token or claims fail (the error above as a ``DPoP`` challenge), or a
        DPoP-bound token sent as a bearer token (401, RFC 9449 7).

    The client's allow-lists (its ``scope``, its ``allowed_claims``) as they are now
    narrow the claims released.

    An ``access_token`` in ``request`` is a form body parameter (RFC 6750 2.2, always
    accepted) when ``http_method`` is ``POST`` or, when the host does not pass
    ``http_method``, when ``http_headers`` carry ``Content-Type:
    application/x-www-form-urlencoded`` (2.2 requires it of a form body); otherwise it
    is a URL query parameter (RFC 6750 2.3), refused unless the provider was created
    with ``userinfo_token_in_query=True``: RFC 9700 4.3.2 forbids clients to send
    access tokens in the query, where browser histories and server logs keep them.

    With DPoP (RFC 9449 7), a DPoP-bound token comes as ``Authorization: DPoP <token>``
    with a ``DPoP`` proof of the request (``htm`` is ``http_method``, or without it
    ``POST`` for a form body and ``GET`` otherwise) made with the token's key.
    """
    dpop_token = (dpop.dpop_scheme_token(get_header(http_headers, "Authorization"))
                  if ctx.dpop.enabled else None)
    try:
        return _handle(ctx, request, http_headers, http_method, http_url, dpop_token,
                       client_certificate)
    except BearerTokenError as error:
        if dpop_token is None:
            raise
        raise dpop.as_dpop_error(ctx.dpop, error) from None


def _handle(ctx: ProviderContext, request: Any, http_headers: Optional[Any],
            http_method: Optional[str], http_url: Optional[str],
            dpop_token: Optional[str],
            client_certificate: Optional[Union[str, bytes]]) -> UserinfoResponse:
    """:func:`handle_userinfo_request` once the ``Authorization`` scheme is known
    (``dpop_token``: the token of a ``DPoP`` one). A token bound to both a DPoP key and a
    client certificate (``cnf`` with ``jkt`` and ``x5t#S256``) needs both."""
    parameters = parse_parameters(request, ctx.configuration.max_request_size,
                                  InvalidUserinfoRequest)
    if ("access_token" in parameters and not ctx.configuration.userinfo_token_in_query
            and not _is_form_body(http_method, http_headers)):
        raise InvalidUserinfoRequest(
            "access token in the URL query: send it in the Authorization header "
            "(RFC 6750 2.1, RFC 9700 4.3.2)")
    if dpop_token is not None:
        if "access_token" in parameters:
            raise InvalidUserinfoRequest("access token given in more than one place")
        token = dpop_token
    else:
        token = extract_bearer_token_from_http_request(
            parameters, get_header(http_headers, "Authorization"))
    if not is_valid_identifier(token):  # never looked up (see is_valid_identifier)
        raise InvalidAccessToken("the access token is unknown, expired or revoked")
    record = ctx.authz_state.get_access_token(token)
    dpop.check_dpop_bound_request(
        ctx.dpop, record, token, dpop_scheme=dpop_token is not None, http_headers=http_headers,
        method=http_method.upper() if isinstance(http_method, str) else (
            "POST" if _is_form_body(None, http_headers) else "GET"),
        url=http_url or ctx.configuration.metadata.get("userinfo_endpoint"), now=ctx.clock())
    check_certificate_bound(record, client_certificate)
    client = ctx.clients.get(record.get("client_id"))
    if client is None:  # deleted since (RFC 7592 2.3): whatever the grant, 401
        raise InvalidAccessToken("the access token is unknown, expired or revoked")
    if "user_id" not in record:
        raise TokenWithoutEndUser(
            "the access token was issued to a client for itself (client_credentials): "
            "there is no end-user")
    scope = narrow_scope(record.get("scope", "").split(), client)
    if "openid" not in scope:
        raise InsufficientScope("the access token was not granted the openid scope")
    requested = claims_policy.scope_claims(ctx, scope)
    requested.update(record.get("claims") or {})
    claims = claims_policy.user_claims(ctx, record["user_id"], narrow_claims(requested, client),
                                       record.get("user_info"))
    claims["sub"] = record["sub"]
    response = message_from_plain_values(UserinfoResponse, claims)
    if client.get("userinfo_signed_response_alg") is not None:
        key = ctx.keys.signing_key_for(client, "userinfo_signed_response_alg")
        if key is None:
            raise InvalidUserinfoRequest(
                "the provider has no key for the client's userinfo_signed_response_alg")
        response.sign(key, issuer=ctx.issuer, audience=record["client_id"])
    return response


def _is_form_body(http_method: Optional[str], http_headers: Optional[Any]) -> bool:
    """Whether the request parameters came in a form body (RFC 6750 2.2): a POST, or,
    with no method given, a form ``Content-Type``."""
    if http_method is not None:
        return isinstance(http_method, str) and http_method.upper() == "POST"
    content_type = get_header(http_headers, "Content-Type")
    if not isinstance(content_type, str):
        return False
    return content_type.split(";", 1)[0].strip().lower() == FORM_MEDIA_TYPE
