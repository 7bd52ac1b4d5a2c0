"""The provider's configuration: its settings and its metadata.

OIDC Discovery 1.0 section 3 (provider metadata: defaults, validation, the published
document), RFC 8414 2 (introspection and revocation endpoint metadata), OIDC Dynamic
Registration 2 (what registration may accept), RFC 7523 3 and OIDC Core 6.1 (signing
algorithms of client assertions and request objects).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Optional
from urllib.parse import urlsplit

from .client_assertion import HMAC_ALGS, assertion_signing_algs, method_for_alg
from .crypto import SUPPORTED_ALGS
from .dpop import check_dpop_signing_algs
from .exceptions import InvalidConfiguration
from .message import ProviderConfigurationResponse
from .request_object import DEFAULT_MAX_REQUEST_OBJECT_LIFETIME, DEFAULT_REQUEST_OBJECT_SIGNING_ALGS
from .response_mode import is_jarm_mode
from .util import DEFAULT_MAX_REQUEST_SIZE, is_https_or_loopback_http, response_type_set

__all__ = ["Configuration", "PAIRWISE_SECTOR_SOURCES", "configuration_defaults",
           "DEFAULT_AUTHORIZATION_RESPONSE_LIFETIME", "MAX_AUTHORIZATION_RESPONSE_LIFETIME"]

logger = logging.getLogger(__name__)

#: Where the sector identifier of pairwise subject identifiers comes from (OIDC Core 8.1).
PAIRWISE_SECTOR_SOURCES = ("request", "registration")

#: Default seconds a JARM response JWT is valid (``exp``; JARM 2.1).
DEFAULT_AUTHORIZATION_RESPONSE_LIFETIME = 600
#: Longest ``authorization_response_lifetime`` accepted: JARM 2.1 recommends at most
#: 10 minutes.
MAX_AUTHORIZATION_RESPONSE_LIFETIME = 600


def configuration_defaults(issuer: str, signing_algs: Iterable[str]) -> dict[str, Any]:
    """The provider metadata used for members the host did not configure.

    pyop 3's defaults (its own and those of ``oic``'s ``ProviderConfigurationResponse``),
    so that an upgraded deployment publishes the same discovery document, except
    ``request_uri_parameter_supported``: false, since ``request_uri`` is not supported
    (OIDC Discovery 3 defaults it to true). ``jwks_uri`` (required by OIDC Discovery
    3, which pyop 3 left to the host) is derived from the issuer. Capabilities beyond
    pyop 3's (other client authentication methods, signed userinfo, ``form_post``,
    PKCE and RFC 9207 metadata, refresh tokens in ``grant_types_supported``, the
    ``claims`` parameter) are advertised only when configured; see
    :doc:`configuration`.
    """
    return {
        "jwks_uri": issuer.rstrip("/") + "/jwks",
        "response_types_supported": ["code", "id_token", "token id_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": list(signing_algs),
        "scopes_supported": ["openid"],
        "version": "3.0",
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "grant_types_supported": ["authorization_code", "implicit"],
        "frontchannel_logout_supported": False,
        "frontchannel_logout_session_supported": False,
        "backchannel_logout_supported": False,
        "backchannel_logout_session_supported": False,
    }


class Configuration:
    """The provider's settings (the constructor options of :class:`~pyop.provider.Provider`)
    and its verified metadata (:attr:`metadata`, the provider's ``configuration_information``).

    :raises InvalidConfiguration: a setting or a metadata member is invalid; the message
        names it.
    """

    def __init__(self, given: Mapping[str, Any], signing_algs: Iterable[str], *,
                 id_token_lifetime: int = 3600,
                 extra_scopes: Optional[Mapping[str, Iterable[str]]] = None,
                 allow_plain_pkce: bool = False,
                 max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
                 allow_unsigned_request_objects: bool = False,
                 hash_client_secrets: bool = False,
                 pairwise_sector_from: str = "request",
                 limit_claims_to_claims_supported: bool = False,
                 strict_client_preferences: bool = False,
                 id_token_aud_as_string: bool = False,
                 registration_client_uri_template: str,
                 max_request_object_lifetime: int = DEFAULT_MAX_REQUEST_OBJECT_LIFETIME,
                 require_request_object_claims: bool = True,
                 refresh_token_requires_registered_grant: bool = False,
                 refresh_token_requires_offline_access: bool = False,
                 userinfo_token_in_query: bool = False,
                 id_token_sid: bool = False,
                 session_lifetime: int = 86400,
                 logout_token_lifetime: int = 120,
                 prompt_create: bool = False,
                 require_pushed_authorization_requests: bool = False,
                 bind_tokens_to_client_certificates: bool = False,
                 require_signed_request_object: bool = False,
                 authorization_response_lifetime: int = DEFAULT_AUTHORIZATION_RESPONSE_LIFETIME
                 ) -> None:
        self.id_token_lifetime = id_token_lifetime
        self.extra_scopes: dict[str, list[str]] = {
            scope: list(claims) for scope, claims in (extra_scopes or {}).items()}
        if pairwise_sector_from not in PAIRWISE_SECTOR_SOURCES:
            raise InvalidConfiguration("pairwise_sector_from: must be one of "
                                       + ", ".join(PAIRWISE_SECTOR_SOURCES))
        self.pairwise_sector_from = pairwise_sector_from
        self.limit_claims_to_claims_supported = limit_claims_to_claims_supported
        self.code_challenge_methods = ("S256", "plain") if allow_plain_pkce else ("S256",)
        self.max_request_size = max_request_size
        self.allow_unsigned_request_objects = allow_unsigned_request_objects
        self.hash_client_secrets = hash_client_secrets
        self.strict_client_preferences = strict_client_preferences
        #: ``aud`` of ID tokens as the client_id string instead of ``[client_id]``.
        self.id_token_aud_as_string = id_token_aud_as_string
        self.registration_client_uri_template = registration_client_uri_template
        #: Request objects whose ``exp`` is further ahead are refused (RFC 9101 10.8).
        self.max_request_object_lifetime = max_request_object_lifetime
        #: Signed request objects must carry ``iss``, ``aud`` and ``exp`` (RFC 9101 10.8).
        self.require_request_object_claims = require_request_object_claims
        #: Refresh tokens only for clients whose ``grant_types`` list ``refresh_token``.
        self.refresh_token_requires_registered_grant = refresh_token_requires_registered_grant
        #: Refresh tokens only for grants of the ``offline_access`` scope (OIDC Core 11).
        self.refresh_token_requires_offline_access = refresh_token_requires_offline_access
        #: UserInfo accepts the access token in the URL query (RFC 6750 2.3).
        self.userinfo_token_in_query = userinfo_token_in_query
        #: ``sid`` in every ID token of a grant with a login session (Front-/Back-Channel
        #: Logout 1.0), not only for the clients that registered ``*_session_required``.
        self.id_token_sid = id_token_sid
        for name, value in (("session_lifetime", session_lifetime),
                            ("logout_token_lifetime", logout_token_lifetime)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfiguration(f"{name}: must be an integer >= 1 (seconds)")
        #: Seconds a login session's clients are remembered for logout notifications.
        self.session_lifetime = session_lifetime
        #: Lifetime of Logout Tokens (Back-Channel Logout 1.0 2.4: ``exp``).
        self.logout_token_lifetime = logout_token_lifetime
        #: ``prompt=create`` accepted and advertised (OpenID Connect Initiating User
        #: Registration 1.0).
        self.prompt_create = prompt_create
        #: Authorization requests only through pushed requests (RFC 9126 4, 5): this
        #: option, or the metadata member of that name set to true.
        self.require_pushed_authorization_requests = (
            require_pushed_authorization_requests is True
            or given.get("require_pushed_authorization_requests") is True)
        #: Bind every token issued over mutual TLS to the client certificate (RFC 8705 3),
        #: unless the client registered ``tls_client_certificate_bound_access_tokens: false``.
        self.bind_tokens_to_client_certificates = bind_tokens_to_client_certificates
        #: Every authorization request must use a signed request object (RFC 9101 10.5).
        self.require_signed_request_object = require_signed_request_object
        if (isinstance(authorization_response_lifetime, bool)
                or not isinstance(authorization_response_lifetime, int)
                or not 1 <= authorization_response_lifetime
                <= MAX_AUTHORIZATION_RESPONSE_LIFETIME):
            raise InvalidConfiguration(
                "authorization_response_lifetime: must be an integer from 1 to "
                f"{MAX_AUTHORIZATION_RESPONSE_LIFETIME} (seconds; JARM 2.1)")
        #: Seconds a JARM response JWT is valid (``exp``; JARM 2.1).
        self.authorization_response_lifetime = authorization_response_lifetime
        self.claims_parameter_configured = "claims_parameter_supported" in given
        self.scopes_configured = "scopes_supported" in given
        self.signing_algs = list(signing_algs)
        self.metadata = self._complete(given)

    # -- OIDC Discovery 3 ------------------------------------------------------------------------

    def _complete(self, given: Mapping[str, Any]) -> ProviderConfigurationResponse:
        """The host's metadata with the defaults, checked (OIDC Discovery 3)."""
        try:
            config = ProviderConfigurationResponse(**dict(given))
        except Exception as e:  # oic raises several unrelated types for ill-typed members
            raise InvalidConfiguration(
                f"configuration_information: {str(e)[:200] or type(e).__name__}") from e
        issuer = config.get("issuer")
        if not isinstance(issuer, str) or not is_https_or_loopback_http(issuer):
            raise InvalidConfiguration(
                "issuer: must be an https URL (http is allowed for loopback hosts only)")
        parts = urlsplit(issuer)
        if parts.query or parts.fragment:
            raise InvalidConfiguration("issuer: must not have a query or fragment")
        if not config.get("authorization_endpoint"):
            raise InvalidConfiguration("authorization_endpoint: required")
        for name, value in configuration_defaults(issuer, self.signing_algs).items():
            if name not in config:
                config[name] = value
        self._add_extra_scopes(config)
        if config.get("request_uri_parameter_supported"):
            logger.warning("request_uri_parameter_supported: request objects by reference "
                           "are not implemented; advertising false")
            config["request_uri_parameter_supported"] = False
        self._check_code_challenge_methods(config)
        self._check_request_object_algs(config)
        self._check_assertion_signing_algs(config)
        self._check_registrable_auth_methods(config)
        self._check_signing_algs(config)
        self._check_signed_requests_and_jarm(config)
        self._check_response_and_subject_types(config)
        self._check_pushed_authorization_requests(config)
        self._check_dpop_signing_algs(config)
        self._check_mtls_metadata(config)
        try:
            config.verify()
        except Exception as e:  # oic raises several unrelated types
            raise InvalidConfiguration(
                f"configuration_information: {str(e) or type(e).__name__}") from e
        return config

    def _check_pushed_authorization_requests(self, config: ProviderConfigurationResponse
                                             ) -> None:
        """``pushed_authorization_request_endpoint`` (RFC 9126 5): an https URL (http on
        loopback hosts), required when pushed requests are."""
        endpoint = config.get("pushed_authorization_request_endpoint")
        if endpoint is not None and not (isinstance(endpoint, str)
                                         and is_https_or_loopback_http(endpoint)):
            raise InvalidConfiguration(
                "pushed_authorization_request_endpoint: must be an https URL (http is allowed "
                "for loopback hosts only)")
        required = config.get("require_pushed_authorization_requests")
        if required is not None and not isinstance(required, bool):
            raise InvalidConfiguration("require_pushed_authorization_requests: must be a "
                                       "boolean")
        if self.require_pushed_authorization_requests and endpoint is None:
            raise InvalidConfiguration(
                "pushed_authorization_request_endpoint: required with "
                "require_pushed_authorization_requests")
    def _check_mtls_metadata(self, config: ProviderConfigurationResponse) -> None:
        """``tls_client_certificate_bound_access_tokens`` (a boolean, published as true when
        ``bind_tokens_to_client_certificates`` is on and it is not configured) and
        ``mtls_endpoint_aliases`` (an object of endpoint metadata names to https URLs),
        RFC 8705 3.3 and 5. Both are published only when configured."""
        name = "tls_client_certificate_bound_access_tokens"
        if name in config and not isinstance(config[name], bool):
            raise InvalidConfiguration(f"{name}: must be a boolean")
        if self.bind_tokens_to_client_certificates and name not in config:
            config[name] = True
        aliases = config.get("mtls_endpoint_aliases")
        if aliases is None:
            return
        if not isinstance(aliases, Mapping) or not aliases:
            raise InvalidConfiguration(
                "mtls_endpoint_aliases: must be an object of endpoint names to URLs")
        for endpoint, url in aliases.items():
            if (not isinstance(endpoint, str) or not endpoint.endswith("_endpoint")
                    or not isinstance(url, str) or not is_https_or_loopback_http(url)):
                raise InvalidConfiguration(
                    f"mtls_endpoint_aliases: {str(endpoint)[:64]!r} must name an endpoint "
                    "and be an https URL")
        config["mtls_endpoint_aliases"] = dict(aliases)

    def _add_extra_scopes(self, config: ProviderConfigurationResponse) -> None:
        scopes = config.get("scopes_supported")
        if isinstance(scopes, list):
            # the extra_scopes are supported scopes (as in pyop 3), added to a copy
            config["scopes_supported"] = list(dict.fromkeys(
                [*scopes, *(scope for scope in self.extra_scopes if scope not in scopes)]))

    def _check_code_challenge_methods(self, config: ProviderConfigurationResponse) -> None:
        methods = config.get("code_challenge_methods_supported")
        for method in methods if isinstance(methods, list) else []:
            if method not in self.code_challenge_methods:
                raise InvalidConfiguration(
                    f"code_challenge_methods_supported: {str(method)[:32]!r} is not accepted"
                    + (" (plain needs allow_plain_pkce=True)" if method == "plain" else ""))

    def _check_signing_algs(self, config: ProviderConfigurationResponse) -> None:
        """The active key's alg is offered, and every alg offered has a key."""
        active = self.signing_algs[0]
        if active not in config["id_token_signing_alg_values_supported"]:
            raise InvalidConfiguration(
                "id_token_signing_alg_values_supported: must contain the signing key's alg "
                + active)
        for name in ("id_token_signing_alg_values_supported",
                     "userinfo_signing_alg_values_supported"):
            for alg in config.get(name) or []:
                if alg not in self.signing_algs:
                    # a client registering this alg would get tokens we cannot sign
                    raise InvalidConfiguration(f"{name}: no signing key for alg {alg!r}")

    def _check_signed_requests_and_jarm(self, config: ProviderConfigurationResponse) -> None:
        """``require_signed_request_object`` (RFC 9101 10.5) published when required, and
        needing request objects; with a JARM response mode listed in
        ``response_modes_supported``, ``authorization_signing_alg_values_supported``
        (JARM 3) defaulted to the provider's signing algs, each with a key, never ``none``."""
        if config.get("require_signed_request_object") is True:
            self.require_signed_request_object = True
        if self.require_signed_request_object:
            config["require_signed_request_object"] = True
            if not config.get("request_parameter_supported"):
                raise InvalidConfiguration(
                    "require_signed_request_object: needs request_parameter_supported")
        name = "authorization_signing_alg_values_supported"
        modes = config.get("response_modes_supported")
        jarm = isinstance(modes, list) and any(is_jarm_mode(mode) for mode in modes)
        algs = config.get(name)
        if algs is None:
            if jarm:
                config[name] = list(self.signing_algs)
            return
        if not isinstance(algs, list) or not algs:
            raise InvalidConfiguration(f"{name}: must be a non-empty list of algs")
        for alg in algs:
            if alg not in self.signing_algs:  # none included: never a signing key's alg
                raise InvalidConfiguration(f"{name}: no signing key for alg {str(alg)[:32]!r}")

    @staticmethod
    def _check_response_and_subject_types(config: ProviderConfigurationResponse) -> None:
        if (any("code" in response_type_set(rt) for rt in config["response_types_supported"])
                and not config.get("token_endpoint")):
            raise InvalidConfiguration(
                "token_endpoint: required when response_types_supported includes code")
        for subject_type in config["subject_types_supported"]:
            if subject_type not in ("public", "pairwise"):
                raise InvalidConfiguration(
                    f"subject_types_supported: unknown type {subject_type!r}")
        scopes = config.get("scopes_supported")
        if "openid" not in scopes:
            raise InvalidConfiguration("scopes_supported: must contain openid")

    def _default_request_object_algs(self) -> list[str]:
        algs = list(DEFAULT_REQUEST_OBJECT_SIGNING_ALGS)
        if self.allow_unsigned_request_objects:
            algs.append("none")
        return algs

    def _check_request_object_algs(self, config: ProviderConfigurationResponse) -> None:
        """``request_object_signing_alg_values_supported``: defaulted when request objects
        are supported, and limited to the algorithms verified (OIDC Discovery 3)."""
        name = "request_object_signing_alg_values_supported"
        algs = config.get(name)
        if algs is None:
            if config.get("request_parameter_supported"):
                config[name] = self._default_request_object_algs()
            return
        if not isinstance(algs, list) or not all(isinstance(alg, str) for alg in algs):
            raise InvalidConfiguration(f"{name}: must be a list of strings")
        for alg in algs:
            if alg == "none":
                if not self.allow_unsigned_request_objects:
                    raise InvalidConfiguration(
                        f"{name}: none needs allow_unsigned_request_objects=True")
            elif alg not in SUPPORTED_ALGS:
                raise InvalidConfiguration(f"{name}: unsupported alg {alg!r}")

    @staticmethod
    def _check_dpop_signing_algs(config: ProviderConfigurationResponse) -> None:
        """``dpop_signing_alg_values_supported`` (RFC 9449 5.1): when configured, DPoP is
        enabled with these asymmetric algorithms (RFC 9449 4.3 point 5)."""
        name = "dpop_signing_alg_values_supported"
        if name in config:
            try:
                check_dpop_signing_algs(config[name])
            except ValueError as e:
                raise InvalidConfiguration(f"{name}: {e}") from e

    @staticmethod
    def _check_assertion_signing_algs(config: ProviderConfigurationResponse) -> None:
        """``token_endpoint_auth_signing_alg_values_supported``: derived from the JWT
        authentication methods offered when not configured; never ``none`` (OIDC Discovery 3)."""
        name = "token_endpoint_auth_signing_alg_values_supported"
        algs = config.get(name)
        if algs is None:
            derived = assertion_signing_algs(
                config.get("token_endpoint_auth_methods_supported") or [])
            if derived:
                config[name] = derived
            return
        if not isinstance(algs, list) or not all(isinstance(alg, str) for alg in algs):
            raise InvalidConfiguration(f"{name}: must be a list of strings")
        for alg in algs:
            if alg not in HMAC_ALGS and alg not in SUPPORTED_ALGS:
                raise InvalidConfiguration(f"{name}: unsupported alg {alg[:32]!r}")

    def _check_registrable_auth_methods(self, config: ProviderConfigurationResponse) -> None:
        """With a ``registration_endpoint``, what discovery advertises for client
        authentication must be what registration accepts (OIDC Discovery 3, OIDC Dynamic
        Registration 2): no ``client_secret_jwt`` with ``hash_client_secrets``, and no
        assertion alg of a method that is not offered. Without one, hosts may list more
        for the clients they configure themselves."""
        if not config.get("registration_endpoint"):
            return
        methods = config.get("token_endpoint_auth_methods_supported") or []
        if self.hash_client_secrets and "client_secret_jwt" in methods:
            raise InvalidConfiguration(
                "token_endpoint_auth_methods_supported: client_secret_jwt cannot be registered "
                "with hash_client_secrets")
        name = "token_endpoint_auth_signing_alg_values_supported"
        for alg in config.get(name) or []:
            if method_for_alg(alg) not in methods or (
                    self.hash_client_secrets and alg in HMAC_ALGS):
                raise InvalidConfiguration(
                    f"{name}: {alg} belongs to a method that cannot be registered")

    # -- what the metadata says ------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer identifier."""
        return str(self.metadata["issuer"])

    @property
    def client_assertion_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for client assertions (never ``none``)."""
        algs = self.metadata.get("token_endpoint_auth_signing_alg_values_supported")
        if algs is None:
            return assertion_signing_algs(
                self.metadata.get("token_endpoint_auth_methods_supported") or [])
        return [alg for alg in algs if alg in HMAC_ALGS or alg in SUPPORTED_ALGS]

    @property
    def request_parameter_supported(self) -> bool:
        """Whether request objects passed by value are accepted (OIDC Core 6.1)."""
        return self.metadata.get("request_parameter_supported") is True

    @property
    def request_object_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for request objects (``none`` only if allowed)."""
        algs = self.metadata.get("request_object_signing_alg_values_supported")
        if algs is None:
            algs = self._default_request_object_algs()
        return [alg for alg in algs if alg != "none" or self.allow_unsigned_request_objects]

    def grant_types_supported(self, issues_refresh_tokens: bool) -> list[str]:
        """Grant types accepted at the token endpoint and in registrations."""
        grants = list(self.metadata.get("grant_types_supported", []))
        if issues_refresh_tokens and "refresh_token" not in grants:
            grants.append("refresh_token")
        return grants

    def claims_parameter_honoured(self) -> bool:
        """Whether the ``claims`` parameter (OIDC Core 5.5) of a request is used.

        Yes when ``claims_parameter_supported`` is true; also when the host did not
        configure it (it is then published as false, its OIDC Discovery 3 default, yet
        used as pyop 3 used it, so that the same claims are released); no when the host
        configured false.
        """
        supported = self.metadata.get("claims_parameter_supported")
        return supported is True or (supported is False and not self.claims_parameter_configured)

    def discovery_document(self) -> ProviderConfigurationResponse:
        """The verified provider metadata to publish (OIDC Discovery 3, RFC 8414 2).

        With an ``introspection_endpoint`` or ``revocation_endpoint``, the client
        authentication methods (and assertion algorithms) those endpoints accept are
        published unless configured: they are the token endpoint's, without ``none``
        for introspection.
        """
        metadata = self.metadata.to_dict()
        token_methods = metadata.get("token_endpoint_auth_methods_supported") or []
        token_algs = metadata.get("token_endpoint_auth_signing_alg_values_supported")
        for endpoint, public in (("introspection_endpoint", False),
                                 ("revocation_endpoint", True)):
            if not metadata.get(endpoint):
                continue
            methods_name = endpoint + "_auth_methods_supported"
            if methods_name not in metadata:
                metadata[methods_name] = [method for method in token_methods
                                          if public or method != "none"]
            algs_name = endpoint + "_auth_signing_alg_values_supported"
            if token_algs and algs_name not in metadata:
                metadata[algs_name] = list(token_algs)
        if self.prompt_create:
            # Initiating User Registration 1.0, 4: create is listed in prompt_values_supported
            prompts = metadata.get("prompt_values_supported")
            values = list(prompts) if isinstance(prompts, list) else [
                "none", "login", "consent", "select_account"]
            metadata["prompt_values_supported"] = values + (
                [] if "create" in values else ["create"])
        if self.require_pushed_authorization_requests:
            metadata["require_pushed_authorization_requests"] = True  # RFC 9126 5
        config = ProviderConfigurationResponse(**metadata)
        config.verify()
        return config
