"""The pushed authorization request endpoint (RFC 9126).

A client posts the parameters of its authorization request to this endpoint, directly,
authenticated as at the token endpoint (RFC 9126 2); the provider validates them as an
authorization request (2.1), a request object included (3), keeps them, and answers with
a ``request_uri`` (2.2) that the client sends to the authorization endpoint, where
:func:`pyop.endpoints.authorization.parse_authentication_request` takes the pushed
parameters once (4).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Optional, Union

from .. import dpop
from ..authz_state._records import SealedValueTooLarge
from ..client_certificate import parse_client_certificate
from ..context import ProviderContext
from ..exceptions import (
    InvalidAuthenticationRequest,
    InvalidPushedAuthorizationRequest,
    InvalidRequestError,
)
from ..message import PushedAuthorizationResponse
from ..request_object import request_object_parameters
from ..request_validator import check_redirect_uri
from ..util import FORM_MEDIA_TYPE, check_content_type, parse_unique_parameters
from .authorization import (
    SIGNED_REQUEST_MEMBER,
    signed_request_object,
    validate_authentication_parameters,
    verify_client_request_object,
)

__all__ = ["handle_pushed_authorization_request", "CLIENT_AUTHENTICATION_PARAMETERS"]

logger = logging.getLogger(__name__)

#: Parameters of client authentication (RFC 6749 2.3.1, RFC 7521 4.2): not authorization
#: request parameters, never kept with the pushed request.
CLIENT_AUTHENTICATION_PARAMETERS = ("client_secret", "client_assertion",
                                    "client_assertion_type")


def _invalid_request(message: str) -> InvalidPushedAuthorizationRequest:
    return InvalidPushedAuthorizationRequest(message)


def handle_pushed_authorization_request(ctx: ProviderContext, request_body: Any,
                                        http_headers: Optional[Any] = None, *,
                                        client_certificate: Optional[Union[str, bytes]] = None,
                                        http_method: Optional[str] = None,
                                        http_url: Optional[str] = None
                                        ) -> PushedAuthorizationResponse:
    """A pushed authorization request (RFC 9126 2): 1. form parameters, each once; 2. the
    client authenticated as at the token endpoint (RFC 9126 2, with the endpoint's URL as
    a client assertion audience under ``client_assertion_audiences="issuer-or-endpoint"``);
    3. no ``request_uri`` (2.1); 4. a ``request`` object verified, its members then being
    the request's (RFC 9126 3, RFC 9101 5); ``client_certificate``: that of a mutual TLS
    connection (PEM or DER), for ``tls_client_auth``/``self_signed_tls_client_auth`` (RFC
    8705 2); 5. a ``DPoP`` proof, when DPoP is enabled and one is sent, verified
    against ``http_method`` (default ``POST``) and ``http_url`` (default: the
    ``pushed_authorization_request_endpoint`` metadata), the pushed request then bound to
    its key with ``dpop_jkt`` (RFC 9449 10.1); 6. the ``redirect_uri`` and every check of
    an authentication request (2.1); 7. the parameters kept, but the client's credentials.

    :returns: the response to send with status ``response.http_status`` (201),
        ``Content-Type: application/json`` and ``Cache-Control: no-store`` (RFC 9126 2.2).
    :raises InvalidClientAuthentication: 401 ``invalid_client`` (RFC 9126 2.3).
    :raises InvalidPushedAuthorizationRequest: 400 with the OAuth error (RFC 9126 2.3):
        answer it with its ``to_json()``, never with a redirect.
    :raises InvalidDPoPProof: 400 ``invalid_dpop_proof`` (a refused proof, or a
        ``dpop_jkt`` of another key), or ``use_dpop_nonce``: answer with ``to_json()``
        and ``error.headers`` (``DPoP-Nonce``; RFC 9449 8, 10.1).
    """
    check_content_type(http_headers, FORM_MEDIA_TYPE, _invalid_request)
    parameters = parse_unique_parameters(request_body, ctx.configuration.max_request_size,
                                         _invalid_request)
    certificate = (parse_client_certificate(client_certificate)
                   if client_certificate is not None else None)
    try:
        client_id, client = ctx.authenticate_client(
            parameters, http_headers, "pushed_authorization_request_endpoint",
            client_certificate=certificate)
    except InvalidRequestError as error:  # e.g. credentials in the header and the body
        raise InvalidPushedAuthorizationRequest(str(error), oauth_error=error.oauth_error
                                                ) from None
    if "request_uri" in parameters:
        raise _invalid_request("request_uri must not be pushed (RFC 9126 2.1)")
    given_id = parameters.get("client_id")
    if given_id is not None and given_id != client_id:
        raise _invalid_request("client_id is not the authenticated client's")
    request = {name: value for name, value in parameters.items()
               if name not in CLIENT_AUTHENTICATION_PARAMETERS
               and name != SIGNED_REQUEST_MEMBER}  # only the provider sets it
    request["client_id"] = client_id
    try:
        if "request" in request:
            if not ctx.configuration.request_parameter_supported:
                raise InvalidAuthenticationRequest("request objects are not supported", {},
                                                   "request_not_supported")
            claims = verify_client_request_object(ctx, client_id, client, request["request"])
            signed = signed_request_object(request["request"])
            request = request_object_parameters(claims, client_id)
            request.pop(SIGNED_REQUEST_MEMBER, None)
            if signed:  # RFC 9101 10.5: counts as a signed request where one is required
                request[SIGNED_REQUEST_MEMBER] = True
        dpop.pushed_request_proof(
            ctx.dpop, http_headers, method=(http_method or "POST").upper(),
            url=http_url or ctx.configuration.metadata.get(
                "pushed_authorization_request_endpoint"),
            request=request, now=ctx.clock())
        check_redirect_uri(request, client)
        with ctx.clients.request_client(client_id, client):
            # on a copy: what is kept is what the client pushed, validated again when used
            validate_authentication_parameters(ctx, copy.deepcopy(request), pushed=True)
        request_uri, expires_in = ctx.authz_state.push_authorization_request(client_id,
                                                                           request)
    except (InvalidAuthenticationRequest, SealedValueTooLarge) as error:
        logger.info("pushed authorization request refused: %s", error.oauth_error)
        raise InvalidPushedAuthorizationRequest(str(error), oauth_error=error.oauth_error
                                                ) from None
    return PushedAuthorizationResponse(request_uri=request_uri, expires_in=expires_in)
