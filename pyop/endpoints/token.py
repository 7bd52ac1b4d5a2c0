"""The token endpoint: client authentication, then the grant the request names.

RFC 6749 3.2 (the endpoint), 3.2.1 and 2.3 (client authentication), 5.1-5.2 (responses
and errors), 4.1.3, 4.4 and 6 (the grants of :mod:`pyop.grants`); OIDC Core 3.1.3.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Union

from .. import dpop
from ..client_certificate import certificate_confirmation, parse_client_certificate
from ..context import ProviderContext
from ..exceptions import InvalidTokenRequest, UnauthorizedClient, UnsupportedGrantType
from ..grants.base import GrantRequest
from ..message import AccessTokenResponse
from ..util import (
    FORM_MEDIA_TYPE,
    check_content_type,
    is_valid_identifier,
    parse_unique_parameters,
)

__all__ = ["handle_token_request"]

logger = logging.getLogger(__name__)


def _invalid_request(message: str) -> InvalidTokenRequest:
    return InvalidTokenRequest(message, oauth_error="invalid_request")


def handle_token_request(ctx: ProviderContext, request_body: Any,
                         http_headers: Optional[Any] = None,
                         extra_id_token_claims: Any = None, *,
                         http_method: Optional[str] = None,
                         http_url: Optional[str] = None,
                         client_certificate: Optional[Union[str, bytes]] = None
                         ) -> AccessTokenResponse:
    """A token request (RFC 6749 3.2): 1. parameters, each once; 2. client
    authentication; 3. a ``grant_type`` the provider supports and the client registered;
    4. its handler (``ctx.grant_handlers``).

    Send the result with ``Cache-Control: no-store`` (RFC 6749 5.1).

    :param request_body: the form-encoded body (str/bytes) or a mapping.
    :param http_headers: the request headers (any mapping; names are case-insensitive).
        A ``Content-Type`` other than ``application/x-www-form-urlencoded`` is refused
        (RFC 6749 3.2, 4.1.3); headers without one are accepted, as in pyop 3.
    :param extra_id_token_claims: a dict or ``(user_id, client_id) -> dict``.
    :param http_method: the request's HTTP method (default ``POST``) and
    :param http_url: the URL the client called (default: the ``token_endpoint``
        metadata): what a DPoP proof must name (``htm``, ``htu``; RFC 9449 4.3).
    :param client_certificate: the client certificate of a mutual TLS connection, as the
        host's TLS layer verified it (PEM text or DER bytes): client authentication with
        ``tls_client_auth``/``self_signed_tls_client_auth`` (RFC 8705 2), and tokens bound
        to it (``cnf``, RFC 8705 3) for clients that registered
        ``tls_client_certificate_bound_access_tokens`` (or every client, with
        ``bind_tokens_to_client_certificates``). With a DPoP proof too, the tokens' one
        ``cnf`` holds both ``x5t#S256`` and ``jkt`` (RFC 7800 3.1).
    :raises InvalidClientAuthentication: 401 ``invalid_client`` (also a malformed
        ``client_certificate``: :class:`~pyop.exceptions.InvalidClientCertificate`).
    :raises InvalidDPoPProof: 400 ``invalid_dpop_proof`` (RFC 9449 5); ``use_dpop_nonce``
        with ``error.headers`` (``DPoP-Nonce``) when a server nonce is needed (8).
    :raises OAuthError: any other error (``invalid_grant``, ``invalid_request``...;
        ``unauthorized_client`` when the provider has no key for the client's
        ``id_token_signed_response_alg``, before the code is spent).
    """
    check_content_type(http_headers, FORM_MEDIA_TYPE, _invalid_request)
    parameters = parse_unique_parameters(request_body, ctx.configuration.max_request_size,
                                         _invalid_request)
    certificate = (parse_client_certificate(client_certificate)
                   if client_certificate is not None else None)
    client_id, client = ctx.authenticate_client(parameters, http_headers,
                                                client_certificate=certificate)
    if certificate is None and client.get("tls_client_certificate_bound_access_tokens") is True:
        raise _invalid_request("the client registered certificate-bound access tokens: "
                               "use mutual TLS (RFC 8705 3)")
    cnf = certificate_confirmation(
        client, certificate,
        bind_by_default=ctx.configuration.bind_tokens_to_client_certificates)
    for name in ("code", "refresh_token"):  # never looked up (see is_valid_identifier)
        value = parameters.get(name)
        if value is not None and not is_valid_identifier(value):
            raise InvalidTokenRequest(f"invalid {name}", oauth_error="invalid_grant")
    grant_type = parameters.get("grant_type")
    if grant_type is None:
        raise _invalid_request("missing grant_type")
    handler = ctx.grant_handlers.get(grant_type) if isinstance(grant_type, str) else None
    if handler is None or grant_type not in ctx.grant_types_supported():
        raise UnsupportedGrantType("grant_type not supported")
    registered = client.get("grant_types")
    if registered is not None and grant_type not in registered:
        raise UnauthorizedClient("the client is not registered for this grant_type")
    proof = dpop.token_request_proof(
        ctx.dpop, http_headers, method=(http_method or "POST").upper(),
        url=http_url or ctx.configuration.metadata.get("token_endpoint"), client=client,
        now=ctx.clock()) if ctx.dpop.enabled else None  # (it checks enabled too)
    if proof is not None:  # one cnf for both confirmations (RFC 7800 3.1)
        cnf = dict(cnf or {}, **proof.cnf)
    for check in ctx.token_request_validators:
        check(client, parameters, cnf)
    response: AccessTokenResponse = handler(
        ctx, GrantRequest(parameters, client_id, client, extra_id_token_claims, cnf, proof))
    return response
