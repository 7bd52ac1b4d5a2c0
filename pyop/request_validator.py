"""Validation of authentication requests (OIDC Core 3.1.2.2), as small ordered checks.

The fatal checks (:func:`check_client_id`, :func:`check_redirect_uri`) run first
and raise errors that are never redirected. Every other check raises a
redirectable :class:`~pyop.exceptions.InvalidAuthenticationRequest`. Each check is
``check(authentication_request, provider)``; :class:`~pyop.provider.Provider`
binds the provider so its ``authentication_request_validators`` list holds
one-argument callables, to which hosts append their own.

pyop 3's validators keep their names and signatures -- ``(provider, request)`` or
``(request)`` -- and raise pyop 3's exception types: :func:`authorization_request_verify`,
:func:`client_id_is_known`, :func:`redirect_uri_is_in_registered_redirect_uris`,
:func:`response_type_is_in_registered_response_types`,
:func:`userinfo_claims_only_specified_when_access_token_is_issued`,
:func:`requested_scope_is_supported`, :func:`registration_request_verify` and
:func:`client_preferences_match_provider_capabilities`.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Collection, Mapping
from typing import Any

from oic.exception import MessageException
from oic.oic import PREFERENCE2PROVIDER

from .exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidRedirectURI,
    UnknownClientId,
)
from .provider_view import ClientSource, ProviderView
from .response_mode import JARM_RESPONSE_MODES, is_jarm_mode
from .util import find_common_values, is_allowed_response_type, response_type_set

__all__ = [
    "check_client_id",
    "check_redirect_uri",
    "check_response_type",
    "check_response_mode",
    "check_scope",
    "check_nonce",
    "check_prompt",
    "check_max_age",
    "check_request_objects",
    "check_pkce",
    "check_claims",
    "DEFAULT_AUTHENTICATION_CHECKS",
    "PKCE_VALUE_PATTERN",
    "authorization_request_verify",
    "client_id_is_known",
    "redirect_uri_is_in_registered_redirect_uris",
    "response_type_is_in_registered_response_types",
    "userinfo_claims_only_specified_when_access_token_is_issued",
    "requested_scope_is_supported",
    "registration_request_verify",
    "client_preferences_match_provider_capabilities",
]

logger = logging.getLogger(__name__)

#: ``code_challenge``/``code_verifier`` syntax: 43-128 unreserved characters (RFC 7636 4.1, 4.2).
PKCE_VALUE_PATTERN = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_PROMPT_VALUES = frozenset(["none", "login", "consent", "select_account"])
_RESPONSE_MODES = frozenset(["query", "fragment", "form_post", *JARM_RESPONSE_MODES])


def _error(message: str, request: Mapping[str, Any],
           oauth_error: str = "invalid_request") -> InvalidAuthenticationRequest:
    return InvalidAuthenticationRequest(message, request, oauth_error=oauth_error)


def check_client_id(parameters: Mapping[str, Any], provider: ClientSource) -> Mapping[str, Any]:
    """The client must be known (RFC 6749 4.1.2.1); returns its metadata. Never redirected."""
    client_id = parameters.get("client_id")
    if not isinstance(client_id, str):
        raise InvalidClientId("missing or repeated client_id", parameters)
    client = provider.get_client(client_id)
    if client is None:
        # pyop 3 answered unauthorized_client; the error is never sent to the client
        raise InvalidClientId("unknown client_id", parameters, oauth_error="unauthorized_client")
    return client


def check_redirect_uri(parameters: Mapping[str, Any], client: Mapping[str, Any]) -> None:
    """``redirect_uri`` must be present and registered, by exact string match.

    OIDC Core 3.1.2.1 (required), RFC 9700 4.1.3 (exact match). Never redirected.
    """
    redirect_uri = parameters.get("redirect_uri")
    if not isinstance(redirect_uri, str):
        raise InvalidRedirectURI("missing or repeated redirect_uri", parameters)
    registered = client.get("redirect_uris") or []
    if isinstance(registered, str):
        registered = [registered]
    if redirect_uri not in registered:
        raise InvalidRedirectURI("redirect_uri is not registered for the client", parameters)


def check_response_type(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``response_type`` present, supported by the provider and registered for the client.

    RFC 6749 4.1.2.1 (``unsupported_response_type``, ``unauthorized_client``).
    """
    requested = response_type_set(request.get("response_type"))
    if not requested:
        raise _error("missing response_type", request)
    supported = _response_type_sets(
        provider.configuration_information.get("response_types_supported", []))
    if requested not in supported:
        raise _error("response_type not supported", request, "unsupported_response_type")
    client = provider.get_client(request["client_id"]) or {}
    registered = _response_type_sets(client.get("response_types", ["code"]))
    if requested not in registered:
        raise _error("response_type not registered for the client", request,
                     "unauthorized_client")


def _response_type_sets(values: Any) -> Collection[frozenset[str]]:
    """``[response_type_set(value) for value in values]``: for a list of hashable values
    (strings), computed once per distinct list of values (the few lists a provider and
    its clients have); the result does not change, so it is shared."""
    try:
        return _response_type_sets_of(tuple(values))
    except TypeError:  # an unhashable value (or not a list): as it is
        return [response_type_set(value) for value in values]


@functools.lru_cache(maxsize=256)
def _response_type_sets_of(values: tuple[Any, ...]) -> frozenset[frozenset[str]]:
    return frozenset(response_type_set(value) for value in values)


def check_response_mode(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``response_mode`` supported; tokens never in the query.

    OAuth 2.0 Multiple Response Type Encoding Practices 2.1, 5; ``form_post``:
    OAuth 2.0 Form Post Response Mode 2; ``jwt``, ``query.jwt``, ``fragment.jwt``,
    ``form_post.jwt``: JARM 2.3, offered only when listed in ``response_modes_supported``.
    ``query.jwt`` is refused for response types with ``token`` or ``id_token`` (JARM
    2.3.1: only an encrypted JWT may carry them in the query, and responses are not
    encrypted), and so is any JARM mode for a client whose metadata asks for encrypted
    responses (``authorization_encrypted_response_alg``, JARM 4).
    """
    mode = request.get("response_mode")
    if mode is None:
        return
    # omitted: query and fragment (OIDC Discovery 3); form_post only when listed
    supported = provider.configuration_information.get("response_modes_supported",
                                                       ["query", "fragment"])
    if mode not in _RESPONSE_MODES or mode not in supported:
        raise _error("response_mode not supported", request)
    if mode in ("query", "query.jwt") and response_type_set(
            request.get("response_type")) - {"code", "none"}:
        raise _error("tokens must not be returned in the query", request)
    if is_jarm_mode(mode):
        client = provider.get_client(request["client_id"]) or {}
        if any(client.get(name) is not None for name in (
                "authorization_encrypted_response_alg", "authorization_encrypted_response_enc")):
            raise _error("encrypted authorization responses are not supported", request)


def check_scope(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``openid`` must be in the scope (OIDC Core 3.1.2.1)."""
    if "openid" not in (request.get("scope") or []):
        raise _error("the openid scope is required", request, "invalid_scope")


def check_nonce(request: Mapping[str, Any], provider: ProviderView) -> None:
    """Nonce required when tokens are issued from the authorization endpoint.

    OIDC Core 3.2.2.1 (implicit) and 3.3.2.11 (hybrid); optional for ``code``.
    """
    if response_type_set(request.get("response_type")) - {"code", "none"} and not request.get(
            "nonce"):
        raise _error("nonce is required for this response_type", request)


def check_prompt(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``prompt`` values known; ``none`` alone (OIDC Core 3.1.2.1)."""
    prompt = request.get("prompt")
    if prompt is None:
        return
    values = prompt if isinstance(prompt, list) else str(prompt).split()
    if any(value not in _PROMPT_VALUES for value in values):
        raise _error("unknown prompt value", request)
    if "none" in values and len(values) > 1:
        raise _error("prompt=none must not be combined with other values", request)


def check_max_age(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``max_age`` is a non-negative integer (OIDC Core 3.1.2.1)."""
    max_age = request.get("max_age")
    if max_age is None:
        return
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise _error("max_age must be a non-negative integer", request)


def check_request_objects(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``request``/``request_uri``/``registration`` are refused, never ignored.

    OIDC Core 6 and 3.1.2.6 (``request_not_supported``...). With
    ``request_parameter_supported``, the provider verifies a ``request`` object
    and merges it into the request before the checks run
    (:mod:`pyop.request_object`), so one still here was not processed: it is
    refused as ``invalid_request_object``.
    """
    if "request" in request:
        if getattr(provider, "request_parameter_supported", False):
            raise _error("the request object was not verified", request,
                         "invalid_request_object")
        raise _error("request objects are not supported", request, "request_not_supported")
    if "request_uri" in request:
        raise _error("request_uri is not supported", request, "request_uri_not_supported")
    if "registration" in request:
        raise _error("the registration parameter is not supported", request,
                     "registration_not_supported")


def check_pkce(request: Mapping[str, Any], provider: ProviderView) -> None:
    """PKCE parameters well-formed; required for public clients.

    RFC 7636 4.3, 4.4.1; RFC 9700 2.1.1.

    ``plain`` is accepted only when the provider allows it.
    """
    challenge = request.get("code_challenge")
    method = request.get("code_challenge_method")
    uses_code = "code" in response_type_set(request.get("response_type"))
    if challenge is None:
        if method is not None:
            raise _error("code_challenge_method without code_challenge", request)
        client = provider.get_client(request["client_id"]) or {}
        if uses_code and client.get("token_endpoint_auth_method") == "none":
            raise _error("public clients must use PKCE (code_challenge)", request)
        return
    if not isinstance(challenge, str) or not PKCE_VALUE_PATTERN.fullmatch(challenge):
        raise _error("malformed code_challenge", request)
    method = method or "plain"
    if method not in provider.code_challenge_methods:
        raise _error("code_challenge_method not supported", request)


def check_claims(request: Mapping[str, Any], provider: ProviderView) -> None:
    """The ``claims`` parameter: a JSON object of ``userinfo``/``id_token`` objects.

    OIDC Core 5.5, 5.5.1. A ``userinfo`` member needs a response type that issues an
    access token (OIDC Core 5.5; refused as in pyop 3).
    """
    claims = request.get("claims")
    if claims is None:
        return
    if hasattr(claims, "to_dict"):
        claims = claims.to_dict()
    if not isinstance(claims, Mapping):
        raise _error("claims must be a JSON object", request)
    for member in ("userinfo", "id_token"):
        value = claims.get(member)
        if value is None:
            continue
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        if not isinstance(value, Mapping):
            raise _error(f"claims.{member} must be a JSON object", request)
        for spec in value.values():
            if spec is not None and not isinstance(spec, Mapping):
                raise _error("individual claim requests must be objects or null", request)
            if isinstance(spec, Mapping):
                if "essential" in spec and not isinstance(spec["essential"], bool):
                    raise _error("essential must be a boolean", request)
                if "values" in spec and not isinstance(spec["values"], list):
                    raise _error("values must be an array", request)
    if claims.get("userinfo") is not None and response_type_set(
            request.get("response_type")) == {"id_token"}:
        raise _error("userinfo claims cannot be requested with response_type=id_token "
                     "(no access token is issued)", request)


#: The default checks after the fatal ones, in order.
DEFAULT_AUTHENTICATION_CHECKS = (
    check_response_type,
    check_response_mode,
    check_request_objects,
    check_scope,
    check_nonce,
    check_prompt,
    check_max_age,
    check_pkce,
    check_claims,
)


# -- pyop 3's validators: its names, signatures and exception types --------------------------


def _verify_message(request: Any, message_class: Any) -> None:
    """``request.verify()`` (an oic message; a plain mapping is made one first)."""
    if not callable(getattr(request, "verify", None)):
        request = message_class(**dict(request))
    request.verify()


def authorization_request_verify(authentication_request: Any) -> None:
    """The authentication request has every required parameter, well-formed
    (OIDC Core 3.1.2.1, checked by oic's ``AuthorizationRequest.verify``).

    :raises InvalidAuthenticationRequest: ``invalid_request``.
    """
    from .message import AuthorizationRequest

    try:
        _verify_message(authentication_request, AuthorizationRequest)
    except (MessageException, ValueError, KeyError) as e:
        raise InvalidAuthenticationRequest(str(e), authentication_request,
                                           oauth_error="invalid_request") from e


def client_id_is_known(provider: ProviderView, authentication_request: Mapping[str, Any]) -> None:
    """The client is registered (RFC 6749 4.1.2.1); never redirected.

    :raises UnknownClientId: (:class:`~pyop.exceptions.InvalidClientId`)
        ``unauthorized_client``, as pyop 3 answered.
    """
    client_id = authentication_request.get("client_id")
    if not isinstance(client_id, str) or provider.get_client(client_id) is None:
        logger.info("authentication request from an unknown client")
        raise UnknownClientId("Unknown client_id", authentication_request,
                              oauth_error="unauthorized_client")


def redirect_uri_is_in_registered_redirect_uris(provider: ProviderView,
                                                authentication_request: Mapping[str, Any]
                                                ) -> None:
    """The ``redirect_uri`` is registered for the client, exactly (OIDC Core 3.1.2.1,
    RFC 9700 4.1.3); never redirected.

    :raises InvalidRedirectURI: ``invalid_request`` (also for a client without
        ``redirect_uris``, or unknown).
    """
    client = provider.get_client(authentication_request.get("client_id")) or {}
    check_redirect_uri(authentication_request, client)


def response_type_is_in_registered_response_types(provider: ProviderView,
                                                  authentication_request: Mapping[str, Any]
                                                  ) -> None:
    """The ``response_type`` is one the client registered, order aside (OIDC Dynamic
    Registration 2; a client without ``response_types`` has none, as in pyop 3).

    :raises InvalidAuthenticationRequest: ``invalid_request``.
    """
    client = provider.get_client(authentication_request.get("client_id")) or {}
    registered = client.get("response_types")
    if not isinstance(registered, list) or not is_allowed_response_type(
            authentication_request.get("response_type") or [], registered):
        raise InvalidAuthenticationRequest("Response type is not registered",
                                           authentication_request,
                                           oauth_error="invalid_request")


def userinfo_claims_only_specified_when_access_token_is_issued(
        authentication_request: Mapping[str, Any]) -> None:
    """A ``claims`` request with a ``userinfo`` member needs a response type issuing an
    access token (OIDC Core 5.5).

    :raises InvalidAuthenticationRequest: ``invalid_request``.
    """
    if response_type_set(authentication_request.get("response_type")) != {"id_token"}:
        return
    claims = authentication_request.get("claims")
    if isinstance(claims, str):
        try:
            claims = json.loads(claims)
        except ValueError:
            return
    if isinstance(claims, Mapping) and "userinfo" in claims:
        raise InvalidAuthenticationRequest(
            "Userinfo claims cannot be requested, when response_type='id_token'",
            authentication_request, oauth_error="invalid_request")


def requested_scope_is_supported(provider: ProviderView,
                                 authentication_request: Mapping[str, Any]) -> None:
    """Log the requested scope values the provider does not support; never raises (OIDC
    Core 3.1.2.1: unknown scope values are ignored)."""
    scope = authentication_request.get("scope") or []
    requested = set(scope.split() if isinstance(scope, str) else scope)
    supported = set(provider.configuration_information.get("scopes_supported") or [])
    unsupported = requested - supported
    if unsupported:
        logger.warning("request contains unsupported scope values: %s",
                       ", ".join(sorted(str(value) for value in unsupported))[:200])


def registration_request_verify(registration_request: Any) -> None:
    """The registration request is well-formed (OIDC Dynamic Registration 3.1, checked by
    oic's ``RegistrationRequest.verify``).

    :raises InvalidClientRegistrationRequest: ``invalid_request``.
    """
    from .message import RegistrationRequest

    try:
        _verify_message(registration_request, RegistrationRequest)
    except (MessageException, ValueError, KeyError, AssertionError) as e:
        # oic checks some values with assert (pyop 3 let that escape)
        raise InvalidClientRegistrationRequest(str(e), registration_request,
                                               oauth_error="invalid_request") from e


def client_preferences_match_provider_capabilities(provider: ProviderView,
                                                   registration_request: Mapping[str, Any]
                                                   ) -> None:
    """Each client preference the provider advertises a capability for can be met (OIDC
    Dynamic Registration 2, Discovery 3): a list preference shares at least one value
    (multi-word values compared as sets of words), a single value is supported.

    :raises InvalidClientRegistrationRequest: ``invalid_request``.
    """
    configuration = provider.configuration_information
    for preference, value in registration_request.items():
        capability_name = PREFERENCE2PROVIDER.get(preference)
        if capability_name is None or capability_name not in configuration:
            continue
        capability = configuration[capability_name]
        if isinstance(value, list):
            matched = bool(find_common_values(value, capability))
        else:
            matched = value in capability
        if not matched:
            raise InvalidClientRegistrationRequest(
                f"Could not match client preference {preference}={value} with provider "
                f"capability {capability_name}={capability}", registration_request,
                oauth_error="invalid_request")
