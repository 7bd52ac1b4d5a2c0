"""JWT Secured Authorization Response Mode for OAuth 2.0 (JARM): the authorization
response as one JWT signed by the provider.

A request with ``response_mode`` ``jwt``, ``query.jwt``, ``fragment.jwt`` or
``form_post.jwt`` (JARM 2.3) gets its response parameters -- ``code``, ``state``,
``iss``, tokens, or ``error``, ``error_description``, ``state`` -- as the claims of a
JWT with ``iss`` (the issuer), ``aud`` (the ``client_id``) and ``exp`` (JARM 2.1),
sent as the single ``response`` parameter. The provider offers it only when its
``response_modes_supported`` lists these modes (opt-in); the signing algorithm is the
client's ``authorization_signed_response_alg`` (JARM 4), else the provider's active
key's. Encrypted responses (``authorization_encrypted_response_alg``) are not
supported: registration refuses them, and a request from a client configured with
them is refused (a JARM response would be sent without the encryption it asked for).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional

from .context import ProviderContext
from .crypto import SigningKey, jws_sign
from .exceptions import UnauthorizedClient
from .message import AuthorizationResponse
from .response_mode import is_jarm_mode

__all__ = [
    "ENCRYPTION_METADATA",
    "jarm_enabled",
    "encryption_requested",
    "response_signing_key",
    "response_jwt",
    "wrap_response",
    "jarm_key_for_request",
    "error_signer",
]

logger = logging.getLogger(__name__)

#: Client metadata asking for encrypted responses (JARM 4), which are not supported.
ENCRYPTION_METADATA = ("authorization_encrypted_response_alg",
                       "authorization_encrypted_response_enc")


def jarm_enabled(metadata: Mapping[str, Any]) -> bool:
    """Whether the provider metadata lists a JARM response mode (JARM 3)."""
    modes = metadata.get("response_modes_supported")
    return isinstance(modes, list) and any(is_jarm_mode(mode) for mode in modes)


def encryption_requested(client: Mapping[str, Any]) -> bool:
    """Whether the client's metadata asks for encrypted authorization responses (JARM 4)."""
    return any(client.get(name) is not None for name in ENCRYPTION_METADATA)


def response_signing_key(ctx: ProviderContext,
                         client: Mapping[str, Any]) -> Optional[SigningKey]:
    """The key that signs the client's JARM responses, or None when the provider has none.

    The client's ``authorization_signed_response_alg`` (JARM 4; never ``none``). Without
    one, JARM 4's default ``RS256`` when the provider has an RS256 key and lists it in
    ``authorization_signing_alg_values_supported`` (JARM 3); else the active key when its
    alg is listed; else the first listed alg the provider has a key for.
    """
    alg = client.get("authorization_signed_response_alg")
    if alg is not None:
        if not isinstance(alg, str) or alg == "none":
            return None
        return ctx.keys.by_alg.get(alg)
    supported = ctx.configuration.metadata.get("authorization_signing_alg_values_supported")
    if not isinstance(supported, list):
        supported = ctx.keys.signing_algs
    if "RS256" in supported and "RS256" in ctx.keys.by_alg:
        return ctx.keys.by_alg["RS256"]
    active = ctx.keys.active
    if active.alg in supported:
        return active
    return next((ctx.keys.by_alg[alg] for alg in supported if alg in ctx.keys.by_alg), None)


def response_jwt(key: SigningKey, issuer: str, client_id: str,
                 parameters: Mapping[str, Any], now: int, lifetime: int) -> str:
    """The JWT of a JARM response: the response parameters with ``iss`` = the issuer,
    ``aud`` = the ``client_id`` and ``exp`` = ``now + lifetime`` (JARM 2.1)."""
    claims = {name: value for name, value in parameters.items()
              if value is not None and name not in ("iss", "aud", "exp")}
    claims.update({"iss": issuer, "aud": client_id, "exp": now + lifetime})
    return jws_sign(claims, key)


def wrap_response(ctx: ProviderContext, key: SigningKey, client_id: str,
                  response: AuthorizationResponse) -> AuthorizationResponse:
    """The authorization response as its JWT: a response whose only member is
    ``response`` (JARM 2.3). Send it as the request's ``response_mode`` says
    (:func:`~pyop.util.should_fragment_encode`, :func:`~pyop.util.should_form_post`)."""
    token = response_jwt(key, ctx.issuer, client_id, response.to_dict(), ctx.now(),
                         ctx.configuration.authorization_response_lifetime)
    wrapped = AuthorizationResponse(response=token)
    session_id = getattr(response, "session_id", None)
    wrapped.session_id = session_id  # type: ignore[attr-defined]
    return wrapped


def jarm_key_for_request(ctx: ProviderContext, client: Mapping[str, Any],
                         request: Mapping[str, Any]) -> Optional[SigningKey]:
    """For a request with a JARM response mode the provider offers, the key its response
    is signed with; None for other requests.

    :raises UnauthorizedClient: the provider has no key for the client's
        ``authorization_signed_response_alg``.
    """
    mode = request.get("response_mode")
    if not is_jarm_mode(mode) or not _mode_offered(ctx, mode):
        return None
    key = response_signing_key(ctx, client)
    if key is None:
        raise UnauthorizedClient(
            "the provider has no key for the client's authorization_signed_response_alg")
    return key


def _mode_offered(ctx: ProviderContext, mode: Any) -> bool:
    modes = ctx.configuration.metadata.get("response_modes_supported")
    return isinstance(modes, list) and mode in modes


def error_signer(ctx: ProviderContext, client_id: Any, response_mode: Any
                 ) -> Optional[Callable[[dict[str, Any]], str]]:
    """``sign(parameters) -> JWT`` for the error response of a request whose client and
    redirect_uri are verified, when its ``response_mode`` is a JARM mode the provider
    offers (JARM 2.1.3); None otherwise, and when the response cannot be made as the
    client registered it (encryption asked for, no key for its alg): the error then
    goes as plain parameters."""
    if not is_jarm_mode(response_mode) or not _mode_offered(ctx, response_mode):
        return None
    if not isinstance(client_id, str):
        return None
    client = ctx.clients.get(client_id)
    if client is None or encryption_requested(client):
        return None
    key = response_signing_key(ctx, client)
    if key is None:
        return None
    issuer = ctx.issuer
    lifetime = ctx.configuration.authorization_response_lifetime

    def sign(parameters: dict[str, Any]) -> str:
        return response_jwt(key, issuer, client_id, parameters, ctx.now(), lifetime)

    return sign
