"""Validation of client registration requests (OIDC Dynamic Registration 1.0, 2 and 3).

Each check is ``check(registration_request, provider)`` and raises
:class:`~pyop.exceptions.InvalidClientRegistrationRequest`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from .client_assertion import HMAC_ALGS
from .client_authentication import SUPPORTED_AUTH_METHODS
from .client_certificate import check_tls_client_auth_metadata
from .exceptions import FetchError, InvalidClientRegistrationRequest, InvalidConfiguration
from .outbound import DEFAULT_DEADLINE, DEFAULT_MAX_SIZE, GuardedFetcher
from .provider_view import ProviderView
from .request_object import DEFAULT_MAX_CLIENT_KEYS, parse_jwk_set
from .response_mode import is_jarm_mode
from .util import (
    has_control_characters,
    has_userinfo,
    is_https_or_loopback_http,
    is_loopback_host,
    normalise_host,
    refers_to_loopback,
    response_type_set,
)

__all__ = [
    "check_redirect_uris",
    "check_response_and_grant_types",
    "check_token_endpoint_auth_method",
    "check_subject_type",
    "check_sector_identifier_uri",
    "check_post_logout_redirect_uris",
    "check_signing_algs",
    "check_signed_requests_and_jarm",
    "check_metadata_uris",
    "check_client_keys",
    "check_scope",
    "check_logout_uris",
    "fetch_sector_identifier_uris",
    "grant_types_for_response_types",
    "DEFAULT_REGISTRATION_CHECKS",
    "RegistrationLimits",
    "RegistrationSettings",
    "check_metadata_bounds",
    "check_pushed_authorization_metadata",
    "check_dpop_bound_access_tokens",
]

logger = logging.getLogger(__name__)

_GRANT_FOR_RESPONSE = {"code": "authorization_code", "id_token": "implicit", "token": "implicit"}


def _error(message: str, request: Any, oauth_error: str = "invalid_client_metadata"
           ) -> InvalidClientRegistrationRequest:
    return InvalidClientRegistrationRequest(message, request, oauth_error=oauth_error)


def grant_types_for_response_types(response_types: Any) -> list[str]:
    """Grant types a set of response types needs (OIDC Dynamic Registration 2)."""
    grants: list[str] = []
    for response_type in response_types or []:
        for value in sorted(response_type_set(response_type)):
            grant = _GRANT_FOR_RESPONSE.get(value)
            if grant and grant not in grants:
                grants.append(grant)
    return grants


def _uses_implicit(request: Mapping[str, Any]) -> bool:
    return any(response_type_set(rt) - {"code", "none"} for rt in request.get("response_types", []))


def _check_uri(uri: Any, request: Mapping[str, Any], native: bool, implicit: bool,
               oauth_error: str, what: str) -> None:
    if not isinstance(uri, str) or not uri:
        raise _error(f"{what} must be strings", request, oauth_error)
    if any(ch.isspace() for ch in uri) or has_control_characters(uri):
        raise _error(f"{what} must not contain whitespace or control characters",
                     request, oauth_error)
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as e:
        raise _error(f"malformed {what}", request, oauth_error) from e
    if parts.fragment or "#" in uri:
        raise _error(f"{what} must not contain a fragment", request, oauth_error)
    if not parts.scheme:
        raise _error(f"{what} must be absolute URIs", request, oauth_error)
    if "@" in parts.netloc:
        # "https://trusted.example@evil.example/" reads as trusted.example to a person
        raise _error(f"{what} must not contain userinfo (RFC 3986 3.2.1)", request,
                     oauth_error)
    if host and normalise_host(host) is None:
        raise _error(f"{what}: the host is not a valid host name", request, oauth_error)
    if parts.scheme == "https":
        if not host:
            raise _error(f"{what} must be absolute URIs", request, oauth_error)
        if implicit and not native and refers_to_loopback(host):
            raise _error("implicit web clients must not use localhost", request, oauth_error)
        return
    if parts.scheme == "http":
        if not is_loopback_host(host):
            raise _error(f"http {what} are allowed for loopback hosts only", request,
                         oauth_error)
        if implicit and not native:
            raise _error("implicit web clients must use https", request, oauth_error)
        return
    if not native:
        raise _error(f"web clients must use https {what}", request, oauth_error)
    if parts.scheme in ("javascript", "data", "file", "vbscript"):
        raise _error(f"scheme not allowed in {what}", request, oauth_error)
    # native clients: private-use URI schemes (RFC 8252 7.1)


def check_redirect_uris(request: Mapping[str, Any], provider: ProviderView) -> None:
    """Redirect URIs: absolute, no fragment, https for web clients (http only on loopback),
    custom schemes or loopback for native clients (OIDC Dynamic Registration 2; RFC 8252 7)."""
    uris = request.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise _error("redirect_uris is required", request, "invalid_redirect_uri")
    native = request.get("application_type", "web") == "native"
    implicit = _uses_implicit(request)
    for uri in uris:
        _check_uri(uri, request, native, implicit, "invalid_redirect_uri", "redirect_uris")


def supported_values(values: Any, supported: Any) -> list[Any]:
    """The values of a list-valued client preference the provider supports, in the
    client's order and spelling. Values are compared as sets of space-separated words, so
    ``"id_token token"`` matches ``"token id_token"`` (OAuth 2.0 Multiple Response Type
    Encoding Practices 2: the order of response type values does not matter)."""
    supported_sets = {frozenset(value.split()) for value in supported or []
                      if isinstance(value, str)}
    if not isinstance(values, list):
        values = [values]
    return [value for value in values
            if isinstance(value, str) and frozenset(value.split()) in supported_sets]


#: List-valued client preferences narrowed to what the provider supports (OIDC Dynamic
#: Registration 2, 3.2: the provider may register other values than those requested),
#: with the provider metadata (OIDC Discovery 3) listing what is supported.
NARROWED_PREFERENCES = {
    "response_types": "response_types_supported",
    "grant_types": "grant_types_supported",
    "default_acr_values": "acr_values_supported",
}


def supported_preference_values(name: str, request: Mapping[str, Any],
                                grant_types_supported: list[str],
                                metadata: Mapping[str, Any]) -> Optional[list[Any]]:
    """The supported values of the list-valued preference ``name`` of a request, or None
    when the request has none or the provider publishes no list to compare with.

    :param grant_types_supported: the grant types accepted (refresh_token when issued).
    :param metadata: the provider metadata (OIDC Discovery 3).
    """
    if name not in request:
        return None
    if name == "grant_types":
        supported: Any = grant_types_supported
    else:
        supported = metadata.get(NARROWED_PREFERENCES[name])
        if supported is None:
            return None
    return supported_values(request[name], supported)


def check_response_and_grant_types(request: Mapping[str, Any], provider: ProviderView) -> None:
    """At least one response type, grant type and default ACR value of each list the
    client sent is supported; the others are dropped when the client is registered, or,
    with ``Provider(strict_client_preferences=True)``, refused (see
    :meth:`Provider.match_client_preferences_with_provider_capabilities
    <pyop.provider.Provider.match_client_preferences_with_provider_capabilities>`). The
    grant types kept must allow the response types kept (OIDC Dynamic Registration 2,
    ``grant_types``)."""
    narrowed: dict[str, list[Any]] = {}
    for name, capability in NARROWED_PREFERENCES.items():
        values = supported_preference_values(name, request, provider.grant_types_supported,
                                             provider.configuration_information)
        if values is None:
            continue
        if not values:
            supported = (provider.grant_types_supported if name == "grant_types" else
                         provider.configuration_information.get(capability) or [])
            raise _error("{}: none of the values is supported (supported: {})".format(
                name, ", ".join(str(value) for value in supported)[:200]), request)
        requested = request[name] if isinstance(request[name], list) else [request[name]]
        if getattr(provider, "strict_client_preferences", False) and len(values) < len(
                requested):
            unsupported = [value for value in requested if value not in values]
            raise _error("{}: not supported: {}".format(
                name, ", ".join(repr(str(value)[:32]) for value in unsupported)[:200]),
                request)
        narrowed[name] = values
    response_types = narrowed.get("response_types", request.get("response_types", ["code"]))
    grant_types = narrowed.get("grant_types")
    if grant_types is None:
        return
    needed = grant_types_for_response_types(response_types)
    missing = [grant for grant in needed if grant not in grant_types]
    if missing:
        raise _error("grant_types: the response_types need {}".format(", ".join(missing)),
                     request)


def check_token_endpoint_auth_method(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``token_endpoint_auth_method`` must be supported (OIDC Dynamic Registration 2).

    ``client_secret_jwt`` needs the secret itself (refused with
    ``hash_client_secrets``); ``private_key_jwt`` needs ``jwks`` or ``jwks_uri``
    (OIDC Core 9). ``token_endpoint_auth_signing_alg`` must be one the provider
    accepts for the method: HS* for ``client_secret_jwt``, asymmetric for
    ``private_key_jwt``, never ``none`` (OIDC Dynamic Registration 2). The
    ``client_credentials`` grant is for confidential clients only (RFC 6749 4.4).
    Mutual TLS (RFC 8705 2.1.2, 2.2.2, 3.4): ``tls_client_auth`` needs exactly one of the
    ``tls_client_auth_subject_dn``/``_san_dns``/``_san_uri``/``_san_ip``/``_san_email``
    members, ``self_signed_tls_client_auth`` needs ``jwks`` or ``jwks_uri``, and
    ``tls_client_certificate_bound_access_tokens`` is a boolean.
    """
    method = request.get("token_endpoint_auth_method")
    _check_auth_signing_alg(request, provider, method or "client_secret_basic")
    tls_problem = check_tls_client_auth_metadata(request)
    if tls_problem is not None:
        raise _error(tls_problem, request)
    if "client_credentials" in (request.get("grant_types") or []) and method == "none":
        raise _error("the client_credentials grant needs a confidential client", request)
    if method is None:
        return
    supported = provider.configuration_information.get(
        "token_endpoint_auth_methods_supported", SUPPORTED_AUTH_METHODS)
    if method == "client_secret_jwt" and provider.hash_client_secrets:
        raise _error("client_secret_jwt is not available: client secrets are stored hashed",
                     request)
    if method not in supported or method not in SUPPORTED_AUTH_METHODS:
        raise _error(f"token_endpoint_auth_method {method!r} is not supported", request)
    if (method == "private_key_jwt" and request.get("jwks") is None
            and request.get("jwks_uri") is None):
        raise _error("private_key_jwt needs jwks or jwks_uri", request)


def _check_auth_signing_alg(request: Mapping[str, Any], provider: ProviderView,
                            method: str) -> None:
    alg = request.get("token_endpoint_auth_signing_alg")
    if alg is None:
        return
    if method not in ("client_secret_jwt", "private_key_jwt"):
        raise _error("token_endpoint_auth_signing_alg needs client_secret_jwt or "
                     "private_key_jwt", request)
    family_ok = (alg in HMAC_ALGS) == (method == "client_secret_jwt")
    if (not isinstance(alg, str) or not family_ok
            or alg not in provider.client_assertion_signing_algs):
        raise _error(f"token_endpoint_auth_signing_alg {str(alg)[:32]!r} is not supported "
                     f"for {method}", request)


def check_subject_type(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``subject_type`` must be supported (OIDC Dynamic Registration 2)."""
    subject_type = request.get("subject_type")
    if subject_type is None:
        return
    if subject_type not in provider.configuration_information.get("subject_types_supported",
                                                                  ["public"]):
        raise _error(f"subject_type {subject_type!r} is not supported", request)


def fetch_sector_identifier_uris(uri: str, timeout: float = DEFAULT_DEADLINE,
                                 max_size: int = DEFAULT_MAX_SIZE, *,
                                 fetcher: Optional[GuardedFetcher] = None) -> Any:
    """GET a sector_identifier_uri and return its JSON (OIDC Core 8.1).

    Through ``fetcher`` (default: a :class:`~pyop.outbound.GuardedFetcher` with ``timeout``
    as its deadline): https only, public addresses only, no redirects, a total deadline
    and a size cap.

    :raises FetchError: any failure.
    """
    if fetcher is None:
        fetcher = GuardedFetcher(deadline=timeout, max_size=max_size)
    return fetcher.get_json(uri, max_size=max_size)


#: The one answer to any failure of the sector_identifier_uri document: what the URL
#: returned (or that it could not be reached) is told in the log only, never to the client.
SECTOR_IDENTIFIER_ERROR = ("sector_identifier_uri could not be fetched or does not list "
                           "every redirect_uri")


def _is_pairwise(request: Mapping[str, Any], provider: ProviderView) -> bool:
    """Whether the client gets pairwise subject identifiers: it asks for them, or asks for
    no subject type and pairwise is the provider's default (the first of
    ``subject_types_supported``, as pyop 3 chose)."""
    supported = provider.configuration_information.get("subject_types_supported") or []
    if "pairwise" not in supported:
        return False
    subject_type = request.get("subject_type")
    if subject_type is None:
        return bool(supported[0] == "pairwise")
    return bool(subject_type == "pairwise")


def check_sector_identifier_uri(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``sector_identifier_uri``: https, listing every redirect_uri (OIDC Core 8.1).

    The document is fetched only for a client that gets pairwise subject identifiers
    (requested, or the provider's default), the one case where it decides a ``sub``;
    otherwise the URL is only checked to be https and stored. Without one, a pairwise
    client's redirect URIs must share one host. Every failure of the fetch or of the
    document gets the same error (:data:`SECTOR_IDENTIFIER_ERROR`); the log tells which.
    """
    uri = request.get("sector_identifier_uri")
    redirect_uris = request.get("redirect_uris") or []
    if uri is None:
        if request.get("subject_type") == "pairwise":
            hosts = {normalise_host(urlsplit(u).hostname or "") for u in redirect_uris
                     if isinstance(u, str)}
            if len(hosts) > 1:
                raise _error("pairwise clients with several redirect_uri hosts need a "
                             "sector_identifier_uri", request)
        return
    try:
        parts = urlsplit(uri) if isinstance(uri, str) else None
        valid = (parts is not None and parts.scheme == "https" and bool(parts.hostname)
                 and "@" not in parts.netloc)
    except ValueError:
        valid = False
    if not valid:
        raise _error("sector_identifier_uri must be an https URL", request)
    if not _is_pairwise(request, provider):
        return
    fetcher: Callable[[str], Any] = provider.sector_identifier_fetcher
    try:
        listed = fetcher(uri)
    except FetchError as e:
        logger.info("could not fetch sector_identifier_uri: %s", e.reason)
        raise _error(SECTOR_IDENTIFIER_ERROR, request) from None
    except Exception as e:  # noqa: BLE001 - any network or parse failure is a client error
        logger.info("could not fetch sector_identifier_uri: %s", type(e).__name__)
        raise _error(SECTOR_IDENTIFIER_ERROR, request) from None
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        logger.info("the sector_identifier_uri document is not a JSON array of URIs")
        raise _error(SECTOR_IDENTIFIER_ERROR, request)
    if any(u not in listed for u in redirect_uris):
        logger.info("redirect_uris missing from the sector_identifier_uri document")
        raise _error(SECTOR_IDENTIFIER_ERROR, request)


def check_post_logout_redirect_uris(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``post_logout_redirect_uris``: absolute, no fragment (OIDC RP-Initiated Logout 3.1)."""
    uris = request.get("post_logout_redirect_uris")
    if uris is None:
        return
    native = request.get("application_type", "web") == "native"
    for uri in uris:
        _check_uri(uri, request, native, False, "invalid_client_metadata",
                   "post_logout_redirect_uris")


def check_signing_algs(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``id_token_signed_response_alg`` and ``userinfo_signed_response_alg`` must be
    algs the provider has a signing key for and publishes (never ``none``);
    ``request_object_signing_alg`` one it verifies (OIDC Dynamic Registration 2).
    Encryption is not supported."""
    for name, published in (("id_token_signed_response_alg",
                             "id_token_signing_alg_values_supported"),
                            ("userinfo_signed_response_alg",
                             "userinfo_signing_alg_values_supported")):
        alg = request.get(name)
        if alg is not None and (alg not in provider.signing_algs or alg not in (
                provider.configuration_information.get(published) or [])):
            raise _error(f"{name} {str(alg)[:32]!r} is not supported", request)
    alg = request.get("request_object_signing_alg")
    if alg is not None and alg not in provider.request_object_signing_algs:
        raise _error(f"request_object_signing_alg {str(alg)[:32]!r} is not supported", request)
    for name in ("id_token_encrypted_response_alg", "userinfo_encrypted_response_alg",
                 "request_object_encryption_alg"):
        if name in request:
            raise _error(f"{name} is not supported", request)
    check_signed_requests_and_jarm(request, provider)


def check_signed_requests_and_jarm(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``require_signed_request_object`` (RFC 9101 10.5) is a boolean, and when true,
    ``request_object_signing_alg`` is not ``none``. When the provider offers a JARM
    response mode: ``authorization_signed_response_alg`` is one of
    ``authorization_signing_alg_values_supported`` (never ``none``, JARM 4), and
    encrypted responses (``authorization_encrypted_response_alg``/``_enc``) are refused,
    as they are not supported. Without JARM these two are never used."""
    required = request.get("require_signed_request_object")
    if required is not None and not isinstance(required, bool):
        raise _error("require_signed_request_object: must be a boolean", request)
    alg = request.get("authorization_signed_response_alg")
    if alg is not None and not isinstance(alg, str):
        raise _error("authorization_signed_response_alg: must be a string", request)
    if required and request.get("request_object_signing_alg") == "none":
        raise _error("request_object_signing_alg none contradicts "
                     "require_signed_request_object (RFC 9101 10.5)", request)
    metadata = provider.configuration_information
    modes = metadata.get("response_modes_supported")
    if not (isinstance(modes, list) and any(is_jarm_mode(mode) for mode in modes)):
        return
    if alg is not None and (alg == "none" or alg not in (
            metadata.get("authorization_signing_alg_values_supported") or [])):
        raise _error(f"authorization_signed_response_alg {str(alg)[:32]!r} is not supported",
                     request)
    for name in ("authorization_encrypted_response_alg", "authorization_encrypted_response_enc"):
        if name in request:
            raise _error(f"{name} is not supported (encrypted JARM responses)", request)


#: Metadata holding URLs a host may show to the end-user or fetch (OIDC Dynamic Registration 2).
_WEB_URI_METADATA = ("client_uri", "logo_uri", "policy_uri", "tos_uri", "jwks_uri",
                     "initiate_login_uri", "frontchannel_logout_uri", "backchannel_logout_uri")


def check_metadata_uris(request: Mapping[str, Any], provider: ProviderView) -> None:
    """URL-valued metadata are http(s) URLs without fragments, never ``javascript:``/``data:``.

    ``initiate_login_uri`` must be https (OIDC Dynamic Registration 2).
    """
    for name in _WEB_URI_METADATA:
        uri = request.get(name)
        if uri is None:
            continue
        if (not isinstance(uri, str) or any(ch.isspace() for ch in uri)
                or has_control_characters(uri)):
            raise _error(f"{name} must be a URL", request)
        try:
            parts = urlsplit(uri)
            host = parts.hostname
        except ValueError as e:
            raise _error(f"{name} must be a URL", request) from e
        if parts.scheme not in ("https", "http") or not host or parts.fragment:
            raise _error(f"{name} must be an http(s) URL without fragment", request)
        if "@" in parts.netloc:
            raise _error(f"{name} must not contain userinfo (RFC 3986 3.2.1)", request)
        if normalise_host(host) is None:
            raise _error(f"{name}: the host is not a valid host name", request)
        if name == "initiate_login_uri" and parts.scheme != "https":
            raise _error("initiate_login_uri must use https", request)
    request_uris = request.get("request_uris")
    for uri in request_uris if isinstance(request_uris, list) else []:
        if isinstance(uri, str) and has_userinfo(uri):
            raise _error("request_uris must not contain userinfo (RFC 3986 3.2.1)", request)


def check_client_keys(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``jwks``: a JWK Set object of public keys; ``jwks_uri``: https; not both.

    OIDC Dynamic Registration 2 (``jwks_uri``, ``jwks``); RFC 7517 5. A
    private or symmetric key sent by mistake is refused rather than stored, and so is
    a set beyond the bounds of :func:`~pyop.request_object.parse_jwk_set`: more keys
    than the provider's ``max_client_keys``, RSA keys outside 2048..8192 bits (RFC 7518
    3.3) or whose exponent is not odd and 3..2**256-1 (NIST SP 800-56B 6.2.1).
    """
    jwks = request.get("jwks")
    jwks_uri = request.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise _error("jwks and jwks_uri must not be used together", request)
    if jwks is not None:
        try:
            parse_jwk_set(jwks, allow_json_string=False, strict=True, max_keys=getattr(
                provider, "max_client_keys", DEFAULT_MAX_CLIENT_KEYS))
        except ValueError as e:
            raise _error(str(e), request) from e
    if jwks_uri is not None and not (isinstance(jwks_uri, str)
                                     and is_https_or_loopback_http(jwks_uri)):
        raise _error("jwks_uri must be an https URL", request)


def check_scope(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``scope``: a string of space-separated scope values the provider supports.

    RFC 7591 2: the scope values the client may use when requesting tokens; it
    becomes the client's scope allow-list. A value the provider does not support
    is refused (``invalid_client_metadata``) rather than silently dropped, so the
    client learns at registration what it cannot have.
    """
    scope = request.get("scope")
    if scope is None:
        return
    if not isinstance(scope, str) or not scope.split():
        raise _error("scope must be a string of space-separated scope values", request)
    supported = provider.allowed_scopes()
    unsupported = [value for value in scope.split() if value not in supported]
    if unsupported:
        raise _error("scope values not supported: {}".format(
            " ".join(unsupported)[:200]), request)


def check_logout_uris(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``frontchannel_logout_uri`` and ``backchannel_logout_uri``: absolute https URLs
    (http on loopback hosts only), no fragment, no userinfo (Front-Channel Logout 1.0 2,
    Back-Channel Logout 1.0 2.2); a front-channel one on the scheme, host and port of a
    registered redirect URI (Front-Channel Logout 1.0 2). ``*_logout_session_required``:
    booleans."""
    for name in ("frontchannel_logout_uri", "backchannel_logout_uri"):
        uri = request.get(name)
        if uri is None:
            continue
        if not isinstance(uri, str) or not uri or len(uri) > 2048:
            raise _error(f"{name} must be a URL", request)
        try:
            parts = urlsplit(uri)
            host = parts.hostname
            port = parts.port
        except ValueError as e:
            raise _error(f"{name} must be a URL", request) from e
        if parts.fragment or "#" in uri or not host or any(
                ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
            raise _error(f"{name} must be an absolute URL without fragment", request)
        if "@" in parts.netloc:
            raise _error(f"{name} must not contain userinfo", request)
        if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host))):
            raise _error(f"{name} must use https (http is allowed for loopback hosts only)",
                         request)
        if name == "frontchannel_logout_uri":
            origin = (parts.scheme, host, port or (443 if parts.scheme == "https" else 80))
            if origin not in _redirect_origins(request.get("redirect_uris")):
                raise _error("frontchannel_logout_uri must have the scheme, host and port of "
                             "a redirect URI", request)
    for name in ("frontchannel_logout_session_required", "backchannel_logout_session_required"):
        if name in request and not isinstance(request[name], bool):
            raise _error(f"{name} must be a boolean", request)


def check_dpop_bound_access_tokens(request: Mapping[str, Any], provider: ProviderView) -> None:
    """``dpop_bound_access_tokens`` (RFC 9449 5.2): a boolean; true requires a DPoP proof
    with every token request of the client. Checked when the provider supports DPoP
    (``dpop_signing_alg_values_supported``); ignored otherwise, as pyop 3 ignored it."""
    value = request.get("dpop_bound_access_tokens")
    metadata = provider.configuration_information
    if (value is not None and not isinstance(value, bool)
            and metadata.get("dpop_signing_alg_values_supported") is not None):
        raise _error("dpop_bound_access_tokens must be a boolean", request)


def _redirect_origins(uris: Any) -> set[tuple[str, str, int]]:
    origins: set[tuple[str, str, int]] = set()
    for uri in uris if isinstance(uris, list) else []:
        try:
            parts = urlsplit(uri)
            if parts.hostname:
                origins.add((parts.scheme, parts.hostname,
                             parts.port or (443 if parts.scheme == "https" else 80)))
        except (ValueError, TypeError):
            continue
    return origins


def check_pushed_authorization_metadata(request: Mapping[str, Any],
                                        provider: ProviderView) -> None:
    """``require_pushed_authorization_requests``: a boolean (RFC 9126 6)."""
    value = request.get("require_pushed_authorization_requests")
    if value is not None and not isinstance(value, bool):
        raise _error("require_pushed_authorization_requests must be a boolean", request)


DEFAULT_REGISTRATION_CHECKS = (
    check_redirect_uris,
    check_response_and_grant_types,
    check_token_endpoint_auth_method,
    check_subject_type,
    check_sector_identifier_uri,
    check_post_logout_redirect_uris,
    check_signing_algs,
    check_metadata_uris,
    check_client_keys,
    check_scope,
    check_logout_uris,
    check_pushed_authorization_metadata,
    check_dpop_bound_access_tokens,
)


# -- bounds, policy and credentials of registration (RFC 7591 3) -----------------------------

@dataclass(frozen=True)
class RegistrationLimits:
    """Bounds on the metadata of a registration or update request (see :doc:`security`).

    A registration request beyond them is refused (``invalid_client_metadata``,
    ``invalid_redirect_uri`` for ``redirect_uris``) before anything is parsed further
    or stored, so that a registered client's record stays small however many are
    registered.

    :param max_metadata_size: bytes of the metadata as compact UTF-8 JSON (16 KiB).
    :param max_string_length: characters of a string member or array item (URIs, names;
        2048). ``jwks`` is bounded by ``max_metadata_size`` only.
    :param max_array_items: items of an array member such as ``redirect_uris`` (20).
    :param max_contacts: items of ``contacts`` (10).
    """

    max_metadata_size: int = 16 * 1024
    max_string_length: int = 2048
    max_array_items: int = 20
    max_contacts: int = 10

    def __post_init__(self) -> None:
        for name in ("max_metadata_size", "max_string_length", "max_array_items",
                     "max_contacts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfiguration(f"registration_limits.{name}: must be an "
                                           "integer >= 1")


#: The registration policy hook: ``policy(metadata, http_headers)`` raises to refuse.
RegistrationPolicy = Callable[[Mapping[str, Any], Any], None]

#: Initial access tokens (RFC 7591 3): a collection of accepted tokens, or
#: ``accepts(token) -> bool``.
InitialAccessTokens = Union[Collection[str], Callable[[str], bool]]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass
class RegistrationSettings:
    """How a provider limits dynamic registration (RFC 7591 3; OIDC Dynamic Registration 3).

    :param limits: bounds on the metadata (:class:`RegistrationLimits`).
    :param policy: the host's ``policy(metadata, http_headers)``, called with the parsed
        metadata of each registration request before it is verified; raise
        :class:`~pyop.exceptions.InvalidClientRegistrationRequest` (or any
        :class:`~pyop.exceptions.OAuthError`) to refuse it; a ``ValueError`` is refused
        as ``invalid_client_metadata`` with its message.
    :param initial_access_tokens: when set, a registration request must carry one of
        them as its bearer token (RFC 7591 3, RFC 6750 2.1): a collection of tokens
        (compared in constant time) or ``accepts(token) -> bool``.
    :param client_lifetime: seconds a dynamically registered client lives (0: for ever,
        as in pyop 3); its ``client_secret_expires_at`` is then the end of its life.
    """

    limits: RegistrationLimits = field(default_factory=RegistrationLimits)
    policy: Optional[RegistrationPolicy] = None
    initial_access_tokens: Optional[InitialAccessTokens] = None
    client_lifetime: int = 0
    _token_digests: tuple[bytes, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.limits, RegistrationLimits):
            raise InvalidConfiguration("registration_limits: must be a RegistrationLimits")
        if self.policy is not None and not callable(self.policy):
            raise InvalidConfiguration("registration_policy: must be callable")
        if (isinstance(self.client_lifetime, bool) or not isinstance(self.client_lifetime, int)
                or self.client_lifetime < 0):
            raise InvalidConfiguration("registered_client_lifetime: must be an integer of "
                                       "seconds >= 0 (0: never expires)")
        tokens = self.initial_access_tokens
        if tokens is not None and not callable(tokens):
            if (isinstance(tokens, str) or not isinstance(tokens, Collection)
                    or not all(isinstance(t, str) and t for t in tokens)):
                raise InvalidConfiguration("initial_access_tokens: must be a collection of "
                                           "non-empty strings or a callable")
            self._token_digests = tuple(_digest(token) for token in tokens)

    def initial_access_token_accepted(self, token: Optional[str]) -> bool:
        """Whether ``token`` is an accepted initial access token; True when none is
        required. A collection is compared in constant time (every token, digests of
        equal length)."""
        tokens = self.initial_access_tokens
        if tokens is None:
            return True
        if token is None:
            return False
        if callable(tokens):
            return bool(tokens(token))
        presented = _digest(token)
        matched = False
        for digest in self._token_digests:
            matched |= hmac.compare_digest(digest, presented)
        return matched


def _json_size(metadata: Mapping[str, Any]) -> int:
    return len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8", "surrogatepass"))


def check_metadata_bounds(metadata: Mapping[str, Any], limits: RegistrationLimits) -> None:
    """The metadata of a registration or update request is within ``limits``.

    :raises InvalidClientRegistrationRequest: ``invalid_client_metadata`` (or
        ``invalid_redirect_uri`` for too many or too long ``redirect_uris``).
    """
    try:
        size = _json_size(metadata)
    except (TypeError, ValueError, RecursionError) as e:
        raise _error("client metadata must be JSON values", None) from e
    if size > limits.max_metadata_size:
        raise _error(f"client metadata larger than {limits.max_metadata_size} bytes", None)
    for name, value in metadata.items():
        if name == "jwks":
            continue
        oauth_error = ("invalid_redirect_uri" if name == "redirect_uris"
                       else "invalid_client_metadata")
        items = value if isinstance(value, list) else [value]
        max_items = limits.max_contacts if name == "contacts" else limits.max_array_items
        if len(items) > max_items:
            raise _error(f"{str(name)[:64]}: more than {max_items} values", None, oauth_error)
        for item in items:
            if isinstance(item, str) and len(item) > limits.max_string_length:
                raise _error(f"{str(name)[:64]}: values longer than "
                             f"{limits.max_string_length} characters", None, oauth_error)


def registration_defaults(request: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults of OIDC Dynamic Registration 2 for members the client omitted."""
    defaults: dict[str, Any] = {
        "response_types": ["code"],
        "application_type": "web",
        "token_endpoint_auth_method": "client_secret_basic",
        "id_token_signed_response_alg": None,
    }
    result = {k: v for k, v in defaults.items() if v is not None and k not in request}
    if "grant_types" not in request:
        result["grant_types"] = grant_types_for_response_types(
            request.get("response_types", ["code"]))
    return result


def optional_str(value: Any) -> Optional[str]:
    """``value`` if it is a string, else None."""
    return value if isinstance(value, str) else None


#: The rule broken by a value of the wrong JSON type, by the type oic expects.
_TYPE_RULES: dict[Any, tuple[Callable[[Any], bool], str]] = {
    str: (lambda v: isinstance(v, str), "must be a string"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "must be a number"),
    bool: (lambda v: isinstance(v, bool), "must be a boolean"),
}

_ENCRYPTION_PARAMETERS = ("request_object_encryption", "id_token_encrypted_response",
                          "userinfo_encrypted_response")


def describe_invalid_metadata(metadata: Mapping[str, Any], error: BaseException) -> str:
    """``"<member>: <rule>"`` for client metadata that ``oic`` refused with ``error``.

    ``oic`` raises bare assertion errors, value errors and message exceptions whose text
    names neither the member nor the rule: the metadata is checked again here against the
    rules of OIDC Dynamic Registration 2 that ``oic`` enforces, to say which was broken.
    """
    from oic.oauth2.message import MissingRequiredAttribute
    from oic.oic.message import RegistrationRequest

    initiate = metadata.get("initiate_login_uri")
    if isinstance(initiate, str) and not initiate.startswith("https:"):
        return "initiate_login_uri: must be an https URL (OIDC Dynamic Registration 2)"
    for parameter in _ENCRYPTION_PARAMETERS:
        alg, enc = parameter + "_alg", parameter + "_enc"
        if enc in metadata and alg not in metadata:
            return f"{enc}: needs {alg} (OIDC Dynamic Registration 2)"
    if metadata.get("token_endpoint_auth_signing_alg") == "none":
        return "token_endpoint_auth_signing_alg: must not be none (OIDC Dynamic Registration 2)"
    for name, value in metadata.items():
        spec = RegistrationRequest.c_param.get(name)
        if spec is None or name == "jwks":
            continue
        expected = spec[0]
        if isinstance(expected, list):
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(item, str) for item in items):
                return f"{name}: must be an array of strings"
            continue
        if isinstance(value, list) and expected is str:
            return f"{name}: must be a single string"
        check = _TYPE_RULES.get(expected)
        if check is not None and not check[0](value):
            return f"{name}: {check[1]}"
    for name, allowed in RegistrationRequest.c_allowed_values.items():
        value = metadata.get(name)
        if value is not None and value not in allowed:
            return "{}: {!r} is not one of {}".format(name, str(value)[:32], ", ".join(allowed))
    if isinstance(error, MissingRequiredAttribute):
        return f"{str(error.args[0])[:64] if error.args else 'a member'}: required"
    detail = str(error)[:200]
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
