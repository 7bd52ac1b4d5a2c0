"""Security profiles: one switch that sets and enforces a set of options.

``fapi2``: the FAPI 2.0 Security Profile (final), section 5, for the authorization server.
:func:`fapi2_metadata` checks the provider's settings and narrows its metadata (what
discovery publishes: 5.3.2.1 "distribute discovery metadata"); the ``check_fapi2_*``
validators are hooked into the validator lists of the endpoints by
:func:`install_fapi2_validators`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Optional
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .context import ProviderContext
from .crypto import OPT_IN_ALGS
from .exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientAuthentication,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidTokenRequest,
)
from .util import response_type_set

__all__ = ["PROFILES", "FAPI2", "FAPI2_SIGNING_ALGS", "FAPI2_CLIENT_AUTH_METHODS",
           "FAPI2_MAX_CODE_LIFETIME", "FAPI2_MAX_PUSHED_REQUEST_LIFETIME",
           "FAPI2_MIN_RSA_KEY_BITS", "FAPI2_MIN_EC_KEY_BITS", "fapi2_metadata",
           "install_fapi2_validators",
           "check_fapi2_authentication_request", "check_fapi2_registration_request",
           "check_fapi2_client", "check_fapi2_token_request"]

#: The FAPI 2.0 Security Profile (final), section 5.
FAPI2 = "fapi2"
#: The values the ``profile`` option accepts (None: no profile).
PROFILES = (None, FAPI2)

#: FAPI 2.0 Security Profile 5.4.1: signatures with PS256, ES256 or EdDSA (Ed25519) only;
#: EdDSA with Ed25519 also under its fully-specified name ``Ed25519`` (RFC 9864 2.2), the
#: same algorithm.
FAPI2_SIGNING_ALGS = ("PS256", "ES256", "EdDSA", "Ed25519")
#: FAPI 2.0 5.3.2.1: clients authenticate with mutual TLS (RFC 8705 2) or
#: ``private_key_jwt`` (OIDC Core 9); public clients are not supported.
FAPI2_CLIENT_AUTH_METHODS = ("private_key_jwt", "tls_client_auth",
                             "self_signed_tls_client_auth")
#: FAPI 2.0 5.3.2.2: authorization codes live at most 60 seconds.
FAPI2_MAX_CODE_LIFETIME = 60
#: FAPI 2.0 5.3.2.2: the ``expires_in`` of a pushed authorization response is below 600
#: seconds.
FAPI2_MAX_PUSHED_REQUEST_LIFETIME = 599
#: FAPI 2.0 5.4: RSA keys of at least 2048 bits (client RSA keys are held to that bound
#: whatever the profile: :data:`pyop.request_object.MIN_RSA_MODULUS_BITS`).
FAPI2_MIN_RSA_KEY_BITS = 2048
#: FAPI 2.0 5.4: elliptic curve keys of at least 224 bits.
FAPI2_MIN_EC_KEY_BITS = 224

#: Metadata members naming signing algorithms (OIDC Discovery 3, RFC 8414 2, RFC 9449
#: 5.1, JARM 4): narrowed to :data:`FAPI2_SIGNING_ALGS`.
_ALG_MEMBERS = ("id_token_signing_alg_values_supported",
                "request_object_signing_alg_values_supported",
                "token_endpoint_auth_signing_alg_values_supported",
                "introspection_endpoint_auth_signing_alg_values_supported",
                "revocation_endpoint_auth_signing_alg_values_supported",
                "userinfo_signing_alg_values_supported",
                "authorization_signing_alg_values_supported",
                "dpop_signing_alg_values_supported")
#: Members set to these lists when the host did not configure them.
_DEFAULTED_ALG_MEMBERS = ("request_object_signing_alg_values_supported",
                          "token_endpoint_auth_signing_alg_values_supported")
#: Client metadata naming a signing algorithm (OIDC Dynamic Registration 2, JARM 3).
_CLIENT_ALG_MEMBERS = ("id_token_signed_response_alg", "request_object_signing_alg",
                       "token_endpoint_auth_signing_alg", "userinfo_signed_response_alg",
                       "authorization_signed_response_alg")


def _narrowed(name: str, values: Any, allowed: Iterable[str]) -> list[str]:
    if not isinstance(values, list):
        raise InvalidConfiguration(f"{name}: must be a list")
    kept = [value for value in values if value in allowed]
    if not kept:
        raise InvalidConfiguration(f"{name}: none of {', '.join(allowed)} (profile fapi2)")
    return kept


def fapi2_metadata(given: Mapping[str, Any], signing_algs: Iterable[str], *,
                   allow_plain_pkce: bool, client_assertion_audiences: str,
                   authorization_code_lifetime: Any,
                   bind_tokens_to_client_certificates: bool,
                   pushed_authorization_request_lifetime: Any = None,
                   signing_keys: Iterable[Any] = ()) -> dict[str, Any]:
    """The provider metadata under the ``fapi2`` profile, from the host's: checked and
    narrowed (FAPI 2.0 Security Profile 5).

    :raises InvalidConfiguration: a setting the profile forbids: a signing key of another
        alg than PS256, ES256 or EdDSA/Ed25519 (5.4.1); a signing key (``signing_keys``: objects
        with the ``private_key`` of :class:`~pyop.crypto.SigningKey`) of an RSA modulus
        below 2048 bits or an elliptic curve below 224 bits (5.4); ``allow_plain_pkce``
        (5.3.2.2: S256); ``client_assertion_audiences="issuer-or-endpoint"`` (5.3.2.1:
        the issuer only); an authorization code lifetime over 60 seconds (5.3.2.2); a
        pushed request lifetime (its ``expires_in``) of 600 seconds or more (5.3.2.2); no
        ``pushed_authorization_request_endpoint`` (5.3.2.2); neither DPoP
        (``dpop_signing_alg_values_supported``) nor ``bind_tokens_to_client_certificates``
        (5.3.2.1: sender-constrained access tokens only); a configured list left empty
        once narrowed.
    """
    for alg in signing_algs:
        if alg not in FAPI2_SIGNING_ALGS:
            raise InvalidConfiguration(
                f"signing_key: alg {alg} is not allowed by the fapi2 profile (PS256, ES256, "
                "EdDSA or Ed25519; FAPI 2.0 5.4.1)")
    for key in signing_keys:
        _check_key_size(getattr(key, "private_key", key))
    if allow_plain_pkce:
        raise InvalidConfiguration("allow_plain_pkce: not with the fapi2 profile (S256 only, "
                                   "FAPI 2.0 5.3.2.2)")
    if client_assertion_audiences != "issuer":
        raise InvalidConfiguration('client_assertion_audiences: must be "issuer" with the '
                                   "fapi2 profile (FAPI 2.0 5.3.2.1)")
    if (isinstance(authorization_code_lifetime, (int, float))
            and authorization_code_lifetime > FAPI2_MAX_CODE_LIFETIME):
        raise InvalidConfiguration(
            "authorization_code_lifetime: at most 60 seconds with the fapi2 profile (FAPI 2.0 "
            "5.3.2.2); pass AuthorizationState(..., authorization_code_lifetime=60)")
    if (isinstance(pushed_authorization_request_lifetime, (int, float))
            and pushed_authorization_request_lifetime > FAPI2_MAX_PUSHED_REQUEST_LIFETIME):
        raise InvalidConfiguration(
            "pushed_authorization_request_lifetime: below 600 seconds with the fapi2 profile "
            "(FAPI 2.0 5.3.2.2: the expires_in of pushed authorization responses)")
    metadata = dict(given)
    if not metadata.get("pushed_authorization_request_endpoint"):
        raise InvalidConfiguration("pushed_authorization_request_endpoint: required by the "
                                   "fapi2 profile (FAPI 2.0 5.3.2.2)")
    if ("dpop_signing_alg_values_supported" not in metadata
            and not bind_tokens_to_client_certificates):
        raise InvalidConfiguration(
            "the fapi2 profile issues sender-constrained access tokens only (FAPI 2.0 "
            "5.3.2.1): configure dpop_signing_alg_values_supported or "
            "bind_tokens_to_client_certificates")
    metadata["require_pushed_authorization_requests"] = True
    metadata["response_types_supported"] = ["code"]
    if "response_modes_supported" in metadata:  # no fragment: no implicit/hybrid flow
        metadata["response_modes_supported"] = _narrowed(
            "response_modes_supported", metadata["response_modes_supported"],
            ("query", "jwt", "query.jwt", "form_post", "form_post.jwt"))
    metadata["grant_types_supported"] = [
        grant for grant in metadata.get("grant_types_supported",
                                        ["authorization_code", "refresh_token"])
        if grant not in ("implicit", "password")] or ["authorization_code"]
    metadata["code_challenge_methods_supported"] = ["S256"]
    metadata["authorization_response_iss_parameter_supported"] = True
    metadata["token_endpoint_auth_methods_supported"] = _narrowed(
        "token_endpoint_auth_methods_supported",
        metadata.get("token_endpoint_auth_methods_supported", ["private_key_jwt"]),
        FAPI2_CLIENT_AUTH_METHODS)
    for name in ("introspection_endpoint_auth_methods_supported",
                 "revocation_endpoint_auth_methods_supported"):
        if name in metadata:
            metadata[name] = _narrowed(name, metadata[name], FAPI2_CLIENT_AUTH_METHODS)
    for name in _ALG_MEMBERS:
        if name in metadata:
            metadata[name] = _narrowed(name, metadata[name], FAPI2_SIGNING_ALGS)
        elif name in _DEFAULTED_ALG_MEMBERS:  # Ed25519 only when configured (OPT_IN_ALGS)
            metadata[name] = [alg for alg in FAPI2_SIGNING_ALGS if alg not in OPT_IN_ALGS]
    if "private_key_jwt" not in metadata["token_endpoint_auth_methods_supported"]:
        metadata.pop("token_endpoint_auth_signing_alg_values_supported", None)
    return metadata


def _check_key_size(private_key: Any) -> None:
    """A provider signing key under the ``fapi2`` profile: RSA of 2048 bits or more, an
    elliptic curve of 224 bits or more (FAPI 2.0 5.4); Ed25519 keys (256 bits) pass.

    :raises InvalidConfiguration: a smaller key.
    """
    if isinstance(private_key, rsa.RSAPrivateKey) and (
            private_key.key_size < FAPI2_MIN_RSA_KEY_BITS):
        raise InvalidConfiguration(
            f"signing_key: an RSA key of {private_key.key_size} bits; the fapi2 profile "
            f"requires {FAPI2_MIN_RSA_KEY_BITS} or more (FAPI 2.0 5.4)")
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and (
            private_key.curve.key_size < FAPI2_MIN_EC_KEY_BITS):
        raise InvalidConfiguration(
            f"signing_key: an elliptic curve key of {private_key.curve.key_size} bits; the "
            f"fapi2 profile requires {FAPI2_MIN_EC_KEY_BITS} or more (FAPI 2.0 5.4)")


# -- validators ----------------------------------------------------------------------------------


def check_fapi2_authentication_request(request: Mapping[str, Any], *,
                                       ctx: ProviderContext) -> None:
    """An authorization request under the ``fapi2`` profile (FAPI 2.0 5.3.2.2):
    ``response_type=code`` only, PKCE with ``S256``, and a ``redirect_uri`` (required in
    pushed requests). Pushed requests themselves are required through
    ``require_pushed_authorization_requests``."""
    def refuse(message: str, error: str = "invalid_request") -> InvalidAuthenticationRequest:
        return InvalidAuthenticationRequest(message + " (fapi2 profile)", request,
                                            oauth_error=error)
    if response_type_set(request.get("response_type")) != {"code"}:
        raise refuse("response_type must be code", "unsupported_response_type")
    if not request.get("code_challenge"):
        raise refuse("code_challenge required (PKCE)")
    if request.get("code_challenge_method") != "S256":
        raise refuse("code_challenge_method must be S256")
    if not request.get("redirect_uri"):
        raise refuse("redirect_uri required")


def check_fapi2_registration_request(request: Mapping[str, Any], *,
                                     ctx: ProviderContext) -> None:
    """A client registration under the ``fapi2`` profile: only clients that can comply
    (FAPI 2.0 5.3.2.1, 5.3.2.2, 5.4.1): ``response_types`` ``["code"]``, a
    ``token_endpoint_auth_method`` of :data:`FAPI2_CLIENT_AUTH_METHODS` (given: the
    default ``client_secret_basic`` is refused), signing algs of
    :data:`FAPI2_SIGNING_ALGS`, https ``redirect_uris``.

    :raises InvalidClientRegistrationRequest: ``invalid_client_metadata`` or
        ``invalid_redirect_uri``.
    """
    def refuse(message: str, error: str = "invalid_client_metadata"
               ) -> InvalidClientRegistrationRequest:
        return InvalidClientRegistrationRequest(message + " (fapi2 profile)", request,
                                                oauth_error=error)
    response_types = request.get("response_types", ["code"])
    if not isinstance(response_types, list) or any(
            response_type_set(value) != {"code"} for value in response_types):
        raise refuse("response_types must be [\"code\"]")
    if any(grant in ("implicit", "password") for grant in request.get("grant_types") or []):
        raise refuse("grant_types must not list implicit or password")
    if request.get("token_endpoint_auth_method") not in FAPI2_CLIENT_AUTH_METHODS:
        raise refuse("token_endpoint_auth_method must be one of "
                     + ", ".join(FAPI2_CLIENT_AUTH_METHODS))
    for name in _CLIENT_ALG_MEMBERS:
        alg = request.get(name)
        if alg is not None and alg not in FAPI2_SIGNING_ALGS:
            raise refuse(f"{name} must be one of " + ", ".join(FAPI2_SIGNING_ALGS))
    for uri in request.get("redirect_uris") or []:
        if not isinstance(uri, str) or urlsplit(uri).scheme != "https":
            raise refuse("redirect_uris must be https URLs", "invalid_redirect_uri")


def check_fapi2_client(client_id: str, client: Mapping[str, Any]) -> None:
    """Client authentication under the ``fapi2`` profile (FAPI 2.0 5.3.2.1): a
    confidential client registered for ``private_key_jwt`` or mutual TLS. Called once the
    client authenticated with its registered method, at the token, PAR, introspection
    and revocation endpoints.

    :raises InvalidClientAuthentication: 401 ``invalid_client``.
    """
    method = client.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in FAPI2_CLIENT_AUTH_METHODS:
        raise InvalidClientAuthentication(
            f"client authentication {method} not allowed by the fapi2 profile",
            oauth_error="invalid_client")


def check_fapi2_token_request(client: Mapping[str, Any], parameters: Mapping[str, Any],
                              cnf: Optional[Mapping[str, Any]]) -> None:
    """A token request under the ``fapi2`` profile (FAPI 2.0 5.3.2.1): the access token
    must be sender-constrained, by a DPoP proof (RFC 9449) or the mutual TLS client
    certificate (RFC 8705 3); a request that would get a bearer token is refused.

    :raises InvalidTokenRequest: ``invalid_request``.
    """
    if not cnf:
        raise InvalidTokenRequest(
            "sender-constrained access tokens only: send a DPoP proof or use mutual TLS "
            "(fapi2 profile)", oauth_error="invalid_request")


def install_fapi2_validators(ctx: ProviderContext) -> None:
    """Hook the ``fapi2`` validators into the endpoints' validator lists."""
    ctx.authentication_request_validators.append(
        functools.partial(check_fapi2_authentication_request, ctx=ctx))
    ctx.registration_request_validators.append(
        functools.partial(check_fapi2_registration_request, ctx=ctx))
    ctx.client_authentication_validators.append(check_fapi2_client)
    ctx.token_request_validators.append(check_fapi2_token_request)
