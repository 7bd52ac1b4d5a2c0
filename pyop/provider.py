"""The OpenID Provider: parses, validates and answers the protocol messages of a host app.

The host owns HTTP, sessions and end-user login; it calls the ``parse_*``,
``authorize`` and ``handle_*`` methods from its routes and turns their results
(``oic`` messages) and exceptions (:mod:`pyop.exceptions`) into HTTP responses.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import Any, Callable, Optional, Union, cast
from urllib.parse import urlsplit

from ._cache import TTLCache
from .access_token import AccessToken, extract_bearer_token_from_http_request, get_header
from .authz_state import AuthorizationState, new_token_value
from .client_assertion import (
    DEFAULT_MAX_ASSERTION_LIFETIME,
    HMAC_ALGS,
    ClientAssertionVerifier,
    assertion_signing_algs,
    method_for_alg,
)
from .client_authentication import (
    authenticate_client,
    client_secret_matches,
    hash_client_secret,
    verify_client_authentication,
)
from .client_management import (
    CLIENT_SETTABLE_METADATA,
    DEFAULT_REGISTRATION_CLIENT_URI_TEMPLATE,
    SERVER_MANAGED_METADATA,
    client_allowed_claims,
    client_allowed_scope,
    narrow_claims,
    narrow_claims_request,
    narrow_scope,
    new_registration_access_token,
    registration_access_token_matches,
    registration_bearer_token,
    registration_client_uri,
    uses_client_secret,
)
from .crypto import SUPPORTED_ALGS, SigningKey, VerificationKey, b64url_encode
from .exceptions import (
    AuthorizationError,
    InsufficientScope,
    InvalidAccessToken,
    InvalidAuthenticationRequest,
    InvalidAuthorizationCode,
    InvalidClientAuthentication,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidEndSessionRequest,
    InvalidRedirectURI,
    InvalidRegistrationAccessToken,
    InvalidRequestError,
    InvalidScope,
    InvalidSubjectIdentifier,
    InvalidTokenRequest,
    InvalidUserinfoRequest,
    OAuthError,
    RequestedSubjectMismatch,
    TokenWithoutEndUser,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .id_token import create_id_token, verify_id_token_hint
from .message import (
    AccessTokenRequest,
    AccessTokenResponse,
    AuthorizationRequest,
    AuthorizationResponse,
    ClaimsRequest,
    EndSessionRequest,
    EndSessionResponse,
    IdToken,
    Message,
    OpenIDSchema,
    ProviderConfigurationResponse,
    RefreshAccessTokenRequest,
    RegistrationRequest,
    RegistrationResponse,
    TokenIntrospectionResponse,
    UserinfoResponse,
    issued_token_response,
    message_from_plain_values,
    set_string_member,
)
from .registration import (
    DEFAULT_REGISTRATION_CHECKS,
    NARROWED_PREFERENCES,
    describe_invalid_metadata,
    fetch_sector_identifier_uris,
    registration_defaults,
    supported_preference_values,
)
from .request_object import (
    DEFAULT_REQUEST_OBJECT_SIGNING_ALGS,
    fetch_jwks,
    merge_request_object,
    parse_jwk_set,
    verify_request_object,
)
from .request_validator import (
    DEFAULT_AUTHENTICATION_CHECKS,
    PKCE_VALUE_PATTERN,
    authorization_request_verify,
    check_client_id,
    check_redirect_uri,
    client_id_is_known,
    client_preferences_match_provider_capabilities,
    redirect_uri_is_in_registered_redirect_uris,
    registration_request_verify,
    requested_scope_is_supported,
    response_type_is_in_registered_response_types,
    userinfo_claims_only_specified_when_access_token_is_issued,
)
from .userinfo import Userinfo
from .util import (
    DEFAULT_MAX_REQUEST_SIZE,
    claims_request_member,
    duplicated_parameters,
    find_common_values,
    is_https_or_loopback_http,
    is_utf8_encodable,
    parse_request_parameters,
    response_type_set,
    strict_json_loads,
)

__all__ = ["Provider", "SCOPE_CLAIMS"]

#: Names pyop 3 imported into pyop.provider: code written against it imports them from here,
#: so they stay importable (they are not part of ``__all__``).
_PYOP3_IMPORTED_NAMES = (
    AccessTokenRequest, AuthorizationError, IdToken, OAuthError, OpenIDSchema,
    RefreshAccessTokenRequest, authorization_request_verify, client_id_is_known,
    client_preferences_match_provider_capabilities, find_common_values,
    redirect_uri_is_in_registered_redirect_uris, registration_request_verify,
    requested_scope_is_supported, response_type_is_in_registered_response_types,
    userinfo_claims_only_specified_when_access_token_is_issued, verify_client_authentication,
)

#: The other module-level names of pyop 3's pyop.provider (modules and oic/pyjwkest names it
#: imported), resolved on first use so that importing pyop.provider does not load them.
_PYOP3_LAZY_NAMES: dict[str, tuple[str, Optional[str]]] = {
    "copy": ("copy", None),
    "uuid": ("uuid", None),
    "parse_qsl": ("urllib.parse", "parse_qsl"),
    "urlparse": ("urllib.parse", "urlparse"),
    "jws": ("jwkest.jws", None),
    "rndstr": ("oic", "rndstr"),
    "MessageException": ("oic.exception", "MessageException"),
    "PREFERENCE2PROVIDER": ("oic.oic", "PREFERENCE2PROVIDER"),
    "scope2claims": ("oic.oic", "scope2claims"),
    "OICProviderExtensions": ("oic.extension.provider", "Provider"),
}


def __getattr__(name: str) -> Any:
    """pyop 3's other module-level names (PEP 562), imported when first asked for."""
    if name in _PYOP3_LAZY_NAMES:
        import importlib

        module_name, attribute = _PYOP3_LAZY_NAMES[name]
        module = importlib.import_module(module_name)
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

logger = logging.getLogger(__name__)

#: Claims requested by the standard scope values (OIDC Core 5.4).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname",
                "preferred_username", "profile", "picture", "website", "gender", "birthdate",
                "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}

#: Where the sector identifier of pairwise subject identifiers comes from (OIDC Core 8.1).
PAIRWISE_SECTOR_SOURCES = ("request", "registration")

#: The client of the request being handled: (client_id, metadata), read from storage once.
_request_client: contextvars.ContextVar[Optional[tuple[str, Mapping[str, Any]]]] = (
    contextvars.ContextVar("pyop_request_client", default=None))

ExtraClaims = Union[None, Mapping[str, Any], Callable[[str, str], Optional[Mapping[str, Any]]]]

#: Seconds a client's jwks_uri document is reused; at most one refetch per
#: _JWKS_REFETCH_INTERVAL when a request object does not verify (key rotation).
_JWKS_CACHE_TTL = 300
_JWKS_REFETCH_INTERVAL = 30
_JWKS_CACHE_SIZE = 1024


class _NamedRuleError(ValueError):
    """A metadata error whose message already names the member and the rule."""


def _wait_quietly(future: Future[Any]) -> None:
    """Wait for ``future``; an exception it raised is logged, not raised."""
    try:
        future.result()
    except Exception:  # noqa: BLE001 - the caller is raising its own error
        logger.warning("a code redemption failed while the ID token could not be made",
                       exc_info=False)


class _ClientLookup:
    """``clients.get`` for :func:`authenticate_client`, through :meth:`Provider.get_client`
    (the request's client, then the client cache when enabled)."""

    __slots__ = ("_provider",)

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    def get(self, client_id: Any, default: Any = None) -> Any:
        client = self._provider.get_client(client_id)
        return default if client is None else client


class Provider:
    """An OpenID Connect Provider.

    :param signing_key: the ID token signing key: a ``jwkest.jwk.RSAKey``/``ECKey``
        with a private key, a ``cryptography`` private key or a
        :class:`~pyop.crypto.SigningKey`.
    :param configuration_information: provider metadata (OIDC Discovery 3); may
        be updated after construction (e.g. endpoints set late). Missing members
        get the documented defaults (see the configuration reference).
    :param authz_state: the :class:`~pyop.authz_state.AuthorizationState`.
    :param clients: mapping ``client_id -> client metadata`` (a dict or a pyop storage).
    :param userinfo: the :class:`~pyop.userinfo.Userinfo` claims source.
    :param id_token_lifetime: ID token lifetime in seconds (default 3600).
    :param extra_scopes: ``scope -> list of claims`` for scopes beyond OIDC Core 5.4.
    :param allow_plain_pkce: accept ``code_challenge_method=plain`` (off by default,
        RFC 9700 2.1.1).
    :param max_request_size: limit on a request body or query string, in characters.
    :param clock: returns the current UNIX time (defaults to the authz_state's clock).
    :param allow_unsigned_request_objects: accept request objects with ``alg: none``
        (off by default; OIDC Core 6.1 allows them, but they prove nothing about
        who made the request). Only used with ``request_parameter_supported``.
    :param hash_client_secrets: registration stores a salted hash of the client
        secret (``client_secret_hash``) instead of the secret itself, for client
        storage that others may read (see :func:`~pyop.client_authentication.hash_client_secret`).
        ``client_secret_jwt`` then cannot work and is neither offered nor registered.
    :param signing_keys: more private keys, each in any form accepted for ``signing_key``,
        at most one per alg (the active key's included): used for clients that registered
        ``id_token_signed_response_alg`` or ``userinfo_signed_response_alg`` with that alg
        (OIDC Dynamic Registration 2). Published in :attr:`jwks`.
    :param published_keys: keys published in :attr:`jwks` and accepted when verifying
        our own ID tokens (``id_token_hint``), never used to sign: the next key before a
        rotation and retired keys after it (see :doc:`keys`). Public or private keys:
        anything :meth:`VerificationKey.from_key <pyop.crypto.VerificationKey.from_key>`
        accepts.
    :param client_assertion_replay_store: where the ``jti`` of used client
        assertions are kept (``client_secret_jwt``, ``private_key_jwt``; RFC 7523 3):
        any pyop storage shared by all workers. Defaults to the authorization code
        storage, or, when that is sealed (stateless), its replay cache.
    :param max_client_assertion_lifetime: client assertions whose ``exp`` is more
        than this many seconds ahead are refused (default 300).
    :param client_cache_ttl: seconds client metadata read from ``clients`` is reused
        in this process (off by default: every request reads the client). A change
        made by another process is seen after at most this many seconds.
    :param client_cache_size: how many clients the cache keeps (least recently used
        are dropped first).
    :param pairwise_sector_from: where the sector identifier of ``pairwise`` subject
        identifiers comes from (OIDC Core 8.1). ``"request"`` (default, as pyop 3): the
        ``host[:port]`` of the client's ``sector_identifier_uri``, else of the
        authentication request's ``redirect_uri``. ``"registration"``: the host of the
        ``sector_identifier_uri``, else of the registered ``redirect_uris`` (the first
        one's when they have several hosts), whatever redirect_uri a request uses.
        Switching an existing deployment changes pairwise ``sub`` values.
    :param limit_claims_to_claims_supported: release only the claims listed in the
        ``claims_supported`` metadata (off by default: as in pyop 3, and as OIDC
        Discovery 3 allows, the list need not be exhaustive).
    :param executor: a :class:`concurrent.futures.Executor` (e.g. a
        ``ThreadPoolExecutor``) on which the token endpoint writes a code redemption
        while the calling thread builds and signs the ID token, so that a code
        exchange waits for the longer of the two instead of their sum (one storage
        round trip less per code flow with Redis, PostgreSQL or MongoDB; ``cryptography``
        releases the GIL while it signs). None (default): one after the other. Never the
        executor that runs the host's requests (a full pool would wait on itself). See
        :doc:`performance`.
    :param thumbprint_kids: give every key without a ``kid`` its RFC 7638 thumbprint as
        kid (in ID token headers and :attr:`jwks`). Off by default: a single key is
        used and published as given, as pyop 3 did (a key without kid signs without a
        ``kid`` header). With ``signing_keys`` or ``published_keys`` there are several
        keys, and keys without kid always get their thumbprint (OIDC Core 10.1: a
        ``kid`` is required when the JWK Set holds several keys). See :doc:`keys`.
    :param strict_client_preferences: refuse a registration that lists any response type,
        grant type or default ACR value the provider does not support. Off by default:
        those values are dropped, as pyop 3 dropped them, and only a list left empty is
        refused (see :meth:`match_client_preferences_with_provider_capabilities`).
    :param id_token_aud_as_string: issue the ``aud`` claim of ID tokens as the
        ``client_id`` string. Off by default: ``aud`` is the list ``[client_id]``, as pyop 3
        issued it (OIDC Core 2 allows both forms; relying parties that worked with pyop 3
        accept the list).
    :raises InvalidConfiguration: the configuration is invalid; the message names the field.
    """

    def __init__(
        self,
        signing_key: Any,
        configuration_information: Mapping[str, Any],
        authz_state: AuthorizationState,
        clients: Any,
        userinfo: Userinfo,
        *,
        id_token_lifetime: int = 3600,
        extra_scopes: Optional[Mapping[str, Iterable[str]]] = None,
        allow_plain_pkce: bool = False,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        clock: Optional[Callable[[], float]] = None,
        allow_unsigned_request_objects: bool = False,
        hash_client_secrets: bool = False,
        signing_keys: Optional[Sequence[Any]] = None,
        published_keys: Optional[Sequence[Any]] = None,
        client_assertion_replay_store: Any = None,
        max_client_assertion_lifetime: int = DEFAULT_MAX_ASSERTION_LIFETIME,
        client_cache_ttl: Optional[float] = None,
        client_cache_size: int = 1024,
        executor: Optional[Executor] = None,
        pairwise_sector_from: str = "request",
        limit_claims_to_claims_supported: bool = False,
        thumbprint_kids: bool = False,
        strict_client_preferences: bool = False,
        id_token_aud_as_string: bool = False,
    ) -> None:
        try:
            self._signing_key = SigningKey.from_key(signing_key)
        except ValueError as e:
            raise InvalidConfiguration(f"signing_key: {e}") from e
        self._signing_keys, self._verification_keys = _key_sets(
            self._signing_key, [] if signing_keys is None else signing_keys,
            [] if published_keys is None else published_keys, thumbprint_kids)
        self._signing_key = cast(SigningKey, self._verification_keys[0])
        self.signing_key = signing_key
        self.authz_state = authz_state
        self.clients = clients
        self.userinfo = userinfo
        self.id_token_lifetime = id_token_lifetime
        self.extra_scopes: dict[str, list[str]] = {
            scope: list(claims) for scope, claims in (extra_scopes or {}).items()}
        if pairwise_sector_from not in PAIRWISE_SECTOR_SOURCES:
            raise InvalidConfiguration("pairwise_sector_from: must be one of "
                                       + ", ".join(PAIRWISE_SECTOR_SOURCES))
        #: ``"request"`` or ``"registration"``: see the constructor.
        self.pairwise_sector_from = pairwise_sector_from
        #: Release only the claims of ``claims_supported`` (when published).
        self.limit_claims_to_claims_supported = limit_claims_to_claims_supported
        self.code_challenge_methods = ("S256", "plain") if allow_plain_pkce else ("S256",)
        self.max_request_size = max_request_size
        self.allow_unsigned_request_objects = allow_unsigned_request_objects
        self.hash_client_secrets = hash_client_secrets
        self.strict_client_preferences = strict_client_preferences
        #: ``aud`` of ID tokens as the client_id string instead of ``[client_id]``.
        self.id_token_aud_as_string = id_token_aud_as_string
        self.clock: Callable[[], float] = clock or getattr(authz_state, "clock", None) or time.time
        #: Fetches a sector_identifier_uri document (replace to add caching or policies).
        self.sector_identifier_fetcher: Callable[[str], Any] = fetch_sector_identifier_uris
        #: Fetches a client's ``jwks_uri`` document for request objects (replace to use
        #: e.g. ``functools.partial(fetch_jwks, allow_private_addresses=True)`` or a proxy).
        self.jwks_fetcher: Callable[[str], Any] = fetch_jwks
        self._jwks_cache: dict[str, tuple[float, Optional[list[dict[str, Any]]]]] = {}
        self._jwks_cache_lock = threading.Lock()
        #: Format of ``registration_client_uri`` (RFC 7592 3).
        self.registration_client_uri_template = DEFAULT_REGISTRATION_CLIENT_URI_TEMPLATE
        if client_assertion_replay_store is None:
            codes = authz_state.authorization_codes
            # sealed codes cannot hold records: their replay cache can (shared when configured)
            client_assertion_replay_store = getattr(codes, "replay_cache", codes) if callable(
                getattr(codes, "seal", None)) else codes
        #: Verifies ``client_secret_jwt`` / ``private_key_jwt`` assertions (RFC 7523).
        self.client_assertion_verifier = ClientAssertionVerifier(
            client_assertion_replay_store,
            lambda client_id, client, refetch: self._client_jwks(client_id, client,
                                                                 refetch=refetch),
            max_lifetime=max_client_assertion_lifetime,
            allowed_algs=lambda: self.client_assertion_signing_algs)
        if client_cache_ttl is not None and (
                isinstance(client_cache_ttl, bool)
                or not isinstance(client_cache_ttl, (int, float))
                or not 0 <= client_cache_ttl < float("inf")):
            raise InvalidConfiguration("client_cache_ttl: must be a number of seconds >= 0")
        if isinstance(client_cache_size, bool) or not isinstance(client_cache_size, int) \
                or client_cache_size < 1:
            raise InvalidConfiguration("client_cache_size: must be an integer >= 1")
        # only clients that exist are cached: an unknown client_id is read every time, so
        # a client registered by another process is seen at once, and made-up ids do not
        # fill the cache
        self._client_cache: Optional[TTLCache[Mapping[str, Any]]] = None
        if client_cache_ttl:
            self._client_cache = TTLCache(client_cache_ttl, client_cache_size,
                                          lambda: self.clock())
        self._client_lookup = cast(Mapping[str, Any], _ClientLookup(self))
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise InvalidConfiguration("executor: must be a concurrent.futures.Executor")
        #: Runs code redemptions concurrently with the ID token signature (or None).
        self.executor: Optional[Executor] = executor

        self._claims_parameter_configured = (
            "claims_parameter_supported" in configuration_information)
        self._scopes_configured = "scopes_supported" in configuration_information
        self.configuration_information = self._complete_configuration(configuration_information)
        self.authentication_request_validators: list[Callable[[Any], None]] = [
            functools.partial(check, provider=self) for check in DEFAULT_AUTHENTICATION_CHECKS
        ]
        self.registration_request_validators: list[Callable[[Any], None]] = [
            functools.partial(check, provider=self) for check in DEFAULT_REGISTRATION_CHECKS
        ]

    # -- configuration (OIDC Discovery 3) -------------------------------------------------------

    def _complete_configuration(self, given: Mapping[str, Any]) -> ProviderConfigurationResponse:
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
        for name, value in self._configuration_defaults(issuer).items():
            if name not in config:
                config[name] = value
        scopes = config.get("scopes_supported")
        if isinstance(scopes, list):
            # the extra_scopes are supported scopes (as in pyop 3), added to a copy
            config["scopes_supported"] = list(dict.fromkeys(
                [*scopes, *(scope for scope in self.extra_scopes if scope not in scopes)]))
        if config.get("request_uri_parameter_supported"):
            logger.warning("request_uri_parameter_supported: request objects by reference "
                           "are not implemented; advertising false")
            config["request_uri_parameter_supported"] = False
        methods = config.get("code_challenge_methods_supported")
        for method in methods if isinstance(methods, list) else []:
            if method not in self.code_challenge_methods:
                raise InvalidConfiguration(
                    f"code_challenge_methods_supported: {str(method)[:32]!r} is not accepted"
                    + (" (plain needs allow_plain_pkce=True)" if method == "plain" else ""))
        self._check_request_object_algs(config)
        self._check_assertion_signing_algs(config)
        self._check_registrable_auth_methods(config)
        if self._signing_key.alg not in config["id_token_signing_alg_values_supported"]:
            raise InvalidConfiguration(
                "id_token_signing_alg_values_supported: must contain the signing key's alg "
                + self._signing_key.alg
                )
        for name in ("id_token_signing_alg_values_supported",
                     "userinfo_signing_alg_values_supported"):
            for alg in config.get(name) or []:
                if alg not in self._signing_keys:
                    # a client registering this alg would get tokens we cannot sign
                    raise InvalidConfiguration(f"{name}: no signing key for alg {alg!r}")
        if any("code" in response_type_set(rt) for rt in config["response_types_supported"]) \
                and not config.get("token_endpoint"):
            raise InvalidConfiguration(
                "token_endpoint: required when response_types_supported includes code")
        for subject_type in config["subject_types_supported"]:
            if subject_type not in ("public", "pairwise"):
                raise InvalidConfiguration(
                    f"subject_types_supported: unknown type {subject_type!r}")
        scopes = config.get("scopes_supported")
        if "openid" not in scopes:
            raise InvalidConfiguration("scopes_supported: must contain openid")
        try:
            config.verify()
        except Exception as e:  # oic raises several unrelated types
            raise InvalidConfiguration(
                f"configuration_information: {str(e) or type(e).__name__}") from e
        return config

    def _configuration_defaults(self, issuer: str) -> dict[str, Any]:
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
            "id_token_signing_alg_values_supported": list(self._signing_keys),
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

    @property
    def client_assertion_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for client assertions (never ``none``)."""
        algs = self.configuration_information.get(
            "token_endpoint_auth_signing_alg_values_supported")
        if algs is None:
            return assertion_signing_algs(self.configuration_information.get(
                "token_endpoint_auth_methods_supported") or [])
        return [alg for alg in algs if alg in HMAC_ALGS or alg in SUPPORTED_ALGS]

    def _authenticate_client(self, parameters: Mapping[str, Any], http_headers: Optional[Any],
                             endpoint: Optional[str] = None) -> tuple[str, Mapping[str, Any]]:
        """Authenticate the client of a request at the token, introspection or revocation
        endpoint; a client assertion's ``aud`` may name the issuer, the token endpoint or
        (``endpoint``) the endpoint called (RFC 7523 3, OIDC Core 9)."""
        if "client_assertion" not in parameters and "client_assertion_type" not in parameters:
            return authenticate_client(self._client_lookup, parameters, http_headers,
                                       now=self._now())
        config = self.configuration_information
        audiences = [self.issuer]
        for name in ("token_endpoint", endpoint):
            url = config.get(name) if name else None
            if isinstance(url, str):
                audiences.append(url)
        return authenticate_client(self._client_lookup, parameters, http_headers, now=self._now(),
                                   assertion_verifier=self.client_assertion_verifier,
                                   audiences=audiences)

    @property
    def request_parameter_supported(self) -> bool:
        """Whether request objects passed by value are accepted (OIDC Core 6.1)."""
        return self.configuration_information.get("request_parameter_supported") is True

    @property
    def request_object_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for request objects (``none`` only if allowed)."""
        algs = self.configuration_information.get("request_object_signing_alg_values_supported")
        if algs is None:
            algs = self._default_request_object_algs()
        return [alg for alg in algs if alg != "none" or self.allow_unsigned_request_objects]

    @property
    def provider_configuration(self) -> ProviderConfigurationResponse:
        """The verified provider metadata to publish at ``/.well-known/openid-configuration``.

        Reflects later changes to :attr:`configuration_information`. With an
        ``introspection_endpoint`` or ``revocation_endpoint``, the client
        authentication methods (and assertion algorithms) those endpoints accept are
        published unless configured: they are the token endpoint's, without ``none``
        for introspection (RFC 8414 2 -- omitted, a client would assume
        ``client_secret_basic`` only).
        """
        metadata = self.configuration_information.to_dict()
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
        config = ProviderConfigurationResponse(**metadata)
        config.verify()
        return config

    @property
    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set to publish at ``jwks_uri`` (RFC 7517 5): public keys only.

        The active signing key first, then the other ``signing_keys``, then the
        ``published_keys``. A key given as a pyjwkest key or JWK is published as given
        (a single ``jwkest.jwk.RSAKey`` gives exactly its ``serialize()``, as in pyop 3),
        a ``cryptography`` key with ``use: "sig"`` and its ``alg``; each with its
        ``kid`` if it has one (see ``thumbprint_kids``).
        """
        return {"keys": [key.to_jwk() for key in self._verification_keys]}

    @property
    def signing_algs(self) -> list[str]:
        """The JWS algs the provider can sign with (one key each), the active key's first."""
        return list(self._signing_keys)

    def _signing_key_for(self, client: Mapping[str, Any],
                         member: str = "id_token_signed_response_alg") -> Optional[SigningKey]:
        """The key for a client's registered alg (OIDC Dynamic Registration 2), in O(1).

        The active key when the client registered none; None when the provider has
        no key for the registered alg (a client configured by hand, or a key removed).
        """
        alg = client.get(member)
        if alg is None:
            return self._signing_key
        key = self._signing_keys.get(alg) if isinstance(alg, str) else None
        if key is None:
            logger.error("no signing key for %s %.32r of client %.64r", member, alg,
                         client.get("client_id"))
        return key

    def _id_token_key(self, client: Mapping[str, Any]) -> SigningKey:
        key = self._signing_key_for(client)
        if key is None:
            raise UnauthorizedClient(
                "the provider has no key for the client's id_token_signed_response_alg")
        return key

    @property
    def issuer(self) -> str:
        """The issuer identifier."""
        return str(self.configuration_information["issuer"])

    @property
    def grant_types_supported(self) -> list[str]:
        """Grant types accepted at the token endpoint and in registrations."""
        grants = list(self.configuration_information.get("grant_types_supported", []))
        if self.authz_state.issues_refresh_tokens and "refresh_token" not in grants:
            grants.append("refresh_token")
        return grants

    def get_client(self, client_id: Any) -> Optional[Mapping[str, Any]]:
        """The metadata of a registered client, or None.

        Within one ``parse_authentication_request``/``handle_token_request``
        call the client is read from storage once and reused. With
        ``client_cache_ttl``, a client read is reused for that many seconds.
        """
        if not isinstance(client_id, str):
            return None
        cached = _request_client.get()
        if cached is not None and cached[0] == client_id:
            return cached[1]
        cache = self._client_cache
        if cache is not None:
            hit = cache.get(client_id)
            if hit is not None:
                return hit
        client = self._stored_client(client_id)
        if client is not None and cache is not None:
            cache.put(client_id, client)
        return client

    def _stored_client(self, client_id: str) -> Optional[Mapping[str, Any]]:
        """The client as ``clients`` has it now (no cache): for read-modify-write of
        client metadata (RFC 7592 updates, secret rotation)."""
        try:
            client = self.clients.get(client_id)
        except (TypeError, ValueError):
            return None
        return client if type(client) is dict or isinstance(client, Mapping) else None

    def client_changed(self, client_id: str) -> None:
        """Forget this process's cached metadata of a client (``client_cache_ttl``).

        Registration, the RFC 7592 update and delete handlers and
        :meth:`rotate_client_secret` call it; a host that changes ``clients``
        directly calls it with the client id so this process sees the change at
        once. Other processes see it when their cache entry expires.
        """
        if self._client_cache is not None:
            self._client_cache.discard(client_id)

    def _now(self) -> int:
        return int(self.clock())

    # -- authentication requests (OIDC Core 3.1.2) ----------------------------------------------

    def parse_authentication_request(self, request_body: Any,
                                     http_headers: Optional[Any] = None) -> AuthorizationRequest:
        """Parse and validate an authentication request (OIDC Core 3.1.2.1-3.1.2.2).

        With ``request_parameter_supported``, a ``request`` object (OIDC Core
        6.1) is verified with the client's keys once client_id and redirect_uri
        are, and its members replace the query parameters (OIDC Core 6.3.3);
        see :mod:`pyop.request_object`.

        :param request_body: the query string (GET) or form body (POST), as
            ``str``/``bytes``, or a mapping of parameters.
        :param http_headers: unused; accepted for symmetry with the other handlers.
        :returns: the validated request, to keep in the end-user's session.
        :raises InvalidClientId: unknown client (never redirected).
        :raises InvalidRedirectURI: missing or unregistered redirect_uri, also
            one inside a request object (never redirected).
        :raises InvalidAuthenticationRequest: any other error; its
            ``to_error_url()`` (or ``to_form_post()`` for ``response_mode=form_post``)
            gives the response to the client.
        """
        try:
            parameters = parse_request_parameters(request_body, self.max_request_size)
        except InvalidRequestError as e:
            raise InvalidAuthenticationRequest(str(e), {}) from e
        client = check_client_id(parameters, self)
        check_redirect_uri(parameters, client)
        token = _request_client.set((cast(str, parameters["client_id"]), client))
        try:
            return self._validate_authentication_request(parameters)
        finally:
            _request_client.reset(token)

    def _validate_authentication_request(self, parameters: dict[str, Any]
                                         ) -> AuthorizationRequest:
        """The checks after client and redirect_uri (OIDC Core 3.1.2.2); errors redirect."""
        # client and redirect_uri verified: from here on errors may be redirected, with what
        # the response needs from the parameters (_error_context, made only for an error)
        try:
            duplicated = duplicated_parameters(parameters)
            if duplicated:
                raise InvalidAuthenticationRequest(
                    "repeated parameters: {}".format(", ".join(duplicated)[:200]), parameters)
            if "request" in parameters and self.request_parameter_supported:
                parameters = self._merge_request_object(parameters)
            max_age = parameters.get("max_age")
            if max_age is not None and not (isinstance(max_age, str) and max_age.isascii()
                                            and max_age.isdigit() and len(max_age) <= 12):
                raise InvalidAuthenticationRequest("max_age must be a non-negative integer",
                                                   parameters)
            claims_param = parameters.get("claims")
            if isinstance(claims_param, str):
                try:
                    parameters["claims"] = strict_json_loads(claims_param)  # OIDC Core 5.5
                except ValueError as e:
                    raise InvalidAuthenticationRequest("claims is not valid JSON",
                                                       parameters) from e
                if not isinstance(parameters["claims"], dict):
                    raise InvalidAuthenticationRequest("claims must be a JSON object", parameters)
            try:
                authn_req = message_from_plain_values(AuthorizationRequest, parameters)
            except Exception as e:  # oic raises many types for malformed values
                raise InvalidAuthenticationRequest(
                    f"malformed request: {type(e).__name__}", parameters) from e
            if "claims" in authn_req and not self._claims_parameter_honoured():
                del authn_req["claims"]
            scope = authn_req.get("scope") or []
            if "offline_access" in scope and "consent" not in (authn_req.get("prompt") or []):
                # OIDC Core 11: ignore offline_access unless consent is prompted for
                authn_req["scope"] = [s for s in scope if s != "offline_access"]
            client = self.get_client(authn_req.get("client_id")) or {}
            self._narrow_scope_to_allow_list(authn_req, client)
            for validator in self.authentication_request_validators:
                validator(authn_req)
            self._narrow_claims_to_allow_list(authn_req, client)
            return authn_req
        except (InvalidClientId, InvalidRedirectURI):
            raise  # e.g. a request object's redirect_uri: never redirected
        except InvalidAuthenticationRequest as e:
            e.request = _error_context(parameters)
            e.redirect_uri_verified = True
            e.issuer = self.issuer
            logger.info("invalid authentication request: %s", e.oauth_error)
            raise

    def _claims_parameter_honoured(self) -> bool:
        """Whether the ``claims`` parameter (OIDC Core 5.5) of a request is used.

        Yes when ``claims_parameter_supported`` is true; also when the host did not
        configure it (it is then published as false, its OIDC Discovery 3 default, yet
        used as pyop 3 used it, so that the same claims are released); no when the host
        configured false.
        """
        supported = self.configuration_information.get("claims_parameter_supported")
        return supported is True or (supported is False and not self._claims_parameter_configured)

    @staticmethod
    def _narrow_scope_to_allow_list(authn_req: AuthorizationRequest,
                                    client: Mapping[str, Any]) -> None:
        """Drop scope values outside the client's ``scope`` metadata (RFC 7591 2).

        Run before the validators, so that a request left without ``openid`` is an
        ``invalid_scope`` error (OIDC Core 3.1.2.1).
        """
        if client_allowed_scope(client) is None or "scope" not in authn_req:
            return
        authn_req["scope"] = narrow_scope(authn_req["scope"], client)

    @staticmethod
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

    def _client_jwks(self, client_id: str, client: Mapping[str, Any], *,
                     refetch: bool = False) -> tuple[Optional[list[dict[str, Any]]], bool]:
        """The client's public keys (``jwks`` metadata, or its ``jwks_uri`` document), or None;
        and whether they are as fresh as can be (so a refetch would not help)."""
        jwks = client.get("jwks")
        jwks_uri = client.get("jwks_uri")
        if jwks is None and isinstance(jwks_uri, str):
            return self._fetched_jwks(client_id, jwks_uri, refetch)
        if jwks is None:
            return None, True
        try:
            return parse_jwk_set(jwks), True
        except ValueError as e:
            logger.warning("client %s: unusable jwks metadata: %s", client_id, e)
            return None, True

    def _fetched_jwks(self, client_id: str, uri: str, refetch: bool
                      ) -> tuple[Optional[list[dict[str, Any]]], bool]:
        now = self.clock()
        cached = self._jwks_cache.get(uri)
        if cached is not None:
            fetched_at, keys = cached
            too_soon = now - fetched_at < _JWKS_REFETCH_INTERVAL
            if (not refetch and now - fetched_at < _JWKS_CACHE_TTL) or (refetch and too_soon):
                return keys, too_soon
        keys = None
        try:
            keys = parse_jwk_set(self.jwks_fetcher(uri))
        except Exception as e:  # noqa: BLE001 - any network or parse failure: no keys
            logger.warning("client %s: could not fetch its jwks_uri: %s", client_id,
                           type(e).__name__)
        with self._jwks_cache_lock:
            if uri not in self._jwks_cache and len(self._jwks_cache) >= _JWKS_CACHE_SIZE:
                del self._jwks_cache[next(iter(self._jwks_cache))]  # the oldest entry
            self._jwks_cache[uri] = (now, keys)
        return keys, True

    def _forget_jwks(self, *uris: Any) -> None:
        """Drop cached ``jwks_uri`` documents: a client that changed its registration
        (RFC 7592 2.2, 2.3) may have removed keys from them."""
        with self._jwks_cache_lock:
            for uri in uris:
                if isinstance(uri, str):
                    self._jwks_cache.pop(uri, None)

    def _merge_request_object(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Verify the ``request`` object and merge it over the query (OIDC Core 6.3).

        :raises InvalidAuthenticationRequest: ``invalid_request_object`` (redirectable).
        :raises InvalidRedirectURI: the object's redirect_uri is not registered.
        """
        client_id = cast(str, parameters["client_id"])
        client = self.get_client(client_id) or {}
        client_alg = client.get("request_object_signing_alg")

        def verify(jwks: Optional[list[dict[str, Any]]]) -> dict[str, Any]:
            return verify_request_object(
                parameters["request"], client_id=client_id, client_jwks=jwks,
                issuer=self.issuer, allowed_algs=self.request_object_signing_algs,
                now=self._now(), client_alg=client_alg if isinstance(client_alg, str) else None,
                allow_unsigned=self.allow_unsigned_request_objects)

        jwks, fresh = self._client_jwks(client_id, client)
        try:
            claims = verify(jwks)
        except InvalidAuthenticationRequest:
            if fresh:
                raise
            # keys from a cached jwks_uri document: the client may have rotated them
            jwks, _ = self._client_jwks(client_id, client, refetch=True)
            claims = verify(jwks)
        merged = merge_request_object(parameters, claims)
        if merged.get("redirect_uri") != parameters.get("redirect_uri"):
            # the response goes to the merged redirect_uri: it must be registered too
            check_redirect_uri(merged, client)
        return merged

    def create_authentication_error(self, authentication_request: Mapping[str, Any],
                                    oauth_error: str, description: str = ""
                                    ) -> InvalidAuthenticationRequest:
        """A redirectable error for a request this provider validated.

        For errors the host decides, e.g. ``login_required`` for ``prompt=none``
        without a session, ``consent_required``, ``access_denied`` (OIDC Core
        3.1.2.6). Use its ``to_error_url()``.
        """
        return InvalidAuthenticationRequest(description, _error_context(authentication_request),
                                            oauth_error,
                                            redirect_uri_verified=True, issuer=self.issuer)

    def requires_authentication(self, authentication_request: Mapping[str, Any],
                                auth_time: Optional[float]) -> bool:
        """Whether the end-user must (re-)authenticate: ``prompt=login`` or ``max_age`` passed.

        OIDC Core 3.1.2.1.

        :param auth_time: when the end-user last authenticated (UNIX time), or None.
        """
        if auth_time is None:
            return True
        if "login" in (authentication_request.get("prompt") or []):
            return True
        max_age = authentication_request.get("max_age")
        if isinstance(max_age, int) and not isinstance(max_age, bool):
            return self._now() - auth_time > max_age
        return False

    # -- authorization (OIDC Core 3.1.2.5, 3.2.2.5, 3.3.2.5) -------------------------------------

    def _client(self, client_id: str) -> Mapping[str, Any]:
        client = self.get_client(client_id)
        if client is None:
            raise InvalidTokenRequest("unknown client", oauth_error="invalid_client")
        return client

    def subject_identifier_for(self, client_id: str, user_id: str,
                               redirect_uri: Optional[str] = None) -> str:
        """The ``sub`` a client sees for a user (OIDC Core 8), as :meth:`authorize` issues it.

        Hosts use it e.g. to know which ``sub`` to log out. A ``sub`` in the user's record
        (``userinfo[user_id]["sub"]``) is that user's ``sub`` for every client. Otherwise
        it is public or pairwise per the client's ``subject_type`` (default: the first of
        ``subject_types_supported``). For a pairwise client, the sector identifier is that
        of :attr:`pairwise_sector_from`: with ``"request"`` (the default) it depends on the
        redirect_uri of the authentication request when the client has no
        ``sector_identifier_uri``; pass that ``redirect_uri``. Without it, the client's
        first registered redirect URI stands for the request's (the ``sub`` issued for a
        request to that URI).

        :raises ValueError: unknown client, or a pairwise client without any URI to
            derive a sector identifier from.
        """
        client = self.get_client(client_id)
        if client is None:
            raise ValueError("unknown client")
        return self._subject_identifier(client, user_id, redirect_uri)

    def verify_id_token_hint(self, id_token_hint: Any) -> Optional[dict[str, Any]]:
        """Claims of an ID token this provider issued (expired ones included), or None.

        OIDC Core 3.1.2.1 ``id_token_hint``; RP-Initiated Logout 1.0, 2.
        """
        return verify_id_token_hint(id_token_hint, self._verification_keys, self.issuer)

    def _user_record(self, user_id: str) -> Optional[Mapping[str, Any]]:
        """The user's claims (``userinfo[user_id]``), or None when the user has none."""
        try:
            record = self.userinfo[user_id]
        except KeyError:
            return None
        return record if isinstance(record, Mapping) else None

    def _subject_type(self, client: Mapping[str, Any]) -> str:
        """The client's ``subject_type``, else the first of ``subject_types_supported``
        (as pyop 3; OIDC Registration 2 leaves the default to the provider)."""
        subject_type = client.get("subject_type")
        if isinstance(subject_type, str) and subject_type:
            return subject_type
        supported = self.configuration_information.get("subject_types_supported") or []
        return str(supported[0]) if supported else "public"

    def _sector_identifier(self, client: Mapping[str, Any],
                           redirect_uri: Optional[str]) -> Optional[str]:
        """The sector identifier of a pairwise client (OIDC Core 8.1), per
        :attr:`pairwise_sector_from`."""
        sector_uri = client.get("sector_identifier_uri")
        uris = client.get("redirect_uris") or []
        if self.pairwise_sector_from == "request":
            # the netloc (host[:port]), as pyop 3 computed it
            uri = sector_uri if isinstance(sector_uri, str) else redirect_uri
            if not isinstance(uri, str):
                uri = uris[0] if uris else None
            return urlsplit(uri).netloc if isinstance(uri, str) else None
        if isinstance(sector_uri, str):
            return urlsplit(sector_uri).hostname
        return urlsplit(uris[0]).hostname if uris and isinstance(uris[0], str) else None

    def _subject_identifier(self, client: Mapping[str, Any], user_id: str,
                            redirect_uri: Optional[str] = None,
                            user_record: Optional[Mapping[str, Any]] = None,
                            *, user_record_read: bool = False) -> str:
        """The ``sub`` of a user for a client, recorded for reverse lookup (OIDC Core 8).

        :param redirect_uri: the authentication request's redirect_uri.
        :param user_record: the user's claims when the caller read them
            (``user_record_read``), else they are read here.
        """
        if not user_record_read:
            user_record = self._user_record(user_id)
        chosen = user_record.get("sub") if user_record is not None else None
        if chosen:
            # the host chose the user's sub (as pyop 3: for every client, recorded as public)
            sub = chosen if isinstance(chosen, str) else str(chosen)
            self.authz_state.record_subject_identifier(sub, user_id, "public")
            return sub
        subject_type = self._subject_type(client)
        sector = self._sector_identifier(client, redirect_uri) \
            if subject_type == "pairwise" else None
        return self.authz_state.get_subject_identifier(subject_type, user_id, sector)

    def _check_requested_subject(self, authentication_request: Mapping[str, Any],
                                 sub: str) -> None:
        """A ``sub`` requested with a value must be the end-user's (OIDC Core 3.1.2.2, 5.5.1).

        :raises RequestedSubjectMismatch: another ``sub`` was requested (also when the
            ``id_token`` and ``userinfo`` members ask for different ones).
        """
        for member in ("id_token", "userinfo"):
            request = claims_request_member(authentication_request, member).get("sub")
            if not isinstance(request, Mapping):
                continue
            mismatch = "value" in request and request["value"] != sub
            values = request.get("values")
            if isinstance(values, list) and sub not in values:
                mismatch = True
            if mismatch:
                raise RequestedSubjectMismatch(
                    "the authenticated end-user is not the one requested",
                    _error_context(authentication_request), "login_required",
                    redirect_uri_verified=True, issuer=self.issuer)

    def _allowed_scopes(self) -> set[str]:
        """Scope values granted when requested: the advertised ones, and, as in pyop 3,
        the standard ones of OIDC Core 5.4 and those of ``extra_scopes`` even when not
        advertised (OIDC Discovery 3: ``scopes_supported`` need not list them all)."""
        allowed = set(self.configuration_information.get("scopes_supported") or [])
        allowed.update(SCOPE_CLAIMS)
        allowed.update(self.extra_scopes)
        if not self._scopes_configured:
            # scopes_supported defaults to ["openid"] (pyop 3): the standard scopes of OIDC
            # Core 5.4 stay usable, as they were with pyop 3
            allowed.update(SCOPE_CLAIMS)
        allowed.update(["openid", "offline_access"] if self.authz_state.issues_refresh_tokens
                       else ["openid"])
        return allowed

    def _granted_scope(self, authentication_request: Mapping[str, Any]) -> list[str]:
        allowed = self._allowed_scopes()
        return [s for s in authentication_request.get("scope") or [] if s in allowed]

    def _scope_claims(self, scope: Iterable[str]) -> dict[str, None]:
        """Claims the scope values request (OIDC Core 5.4); an ``extra_scopes`` entry for
        a standard scope replaces its claims, as in pyop 3."""
        claims: dict[str, None] = {}
        extra = self.extra_scopes
        for value in scope:
            names = extra[value] if value in extra else SCOPE_CLAIMS.get(value, ())
            for claim in names:
                claims[claim] = None
        return claims

    def _filter_supported(self, claims: dict[str, Any]) -> dict[str, Any]:
        if not self.limit_claims_to_claims_supported:
            return claims
        supported = self.configuration_information.get("claims_supported")
        if not supported:
            return claims
        return {k: v for k, v in claims.items() if k in supported}

    def _user_claims(self, user_id: str, requested: Mapping[str, Any],
                     user_record: Any = None) -> dict[str, Any]:
        """The requested claims of the user, read from ``user_record`` when it is a mapping
        (the user record read once at authorization, or the claims a sealed grant carries,
        see :meth:`_claims_to_carry`), else from the user source."""
        requested = self._filter_supported(dict(requested))
        requested.pop("sub", None)
        if not requested:
            return {}
        if isinstance(user_record, Mapping):
            return self.userinfo.get_claims_for(user_id, requested, user_record)
        return self.userinfo.get_claims_for(user_id, requested)

    def _claims_to_carry(self, user_id: str, client: Mapping[str, Any], scope: Iterable[str],
                         authentication_request: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """The end-user's claims a grant carries when its codes or tokens are sealed.

        With sealed (stateless) storage the code and tokens are the only state, and the
        host may forget the user once ``authorize`` returns (pyop 3's stateless mode
        carried the user's claims the same way). Only the claims the grant may release
        are kept: those of its scope (OIDC Core 5.4) and of the ``userinfo`` and
        ``id_token`` members of its ``claims`` request (OIDC Core 5.5), within the
        client's allow-lists and ``claims_supported``; their values are filtered by the
        request (``value``/``values``) when released. They are sealed (encrypted and
        authenticated) with the rest of the record. None when nothing is sealed.
        """
        if not getattr(self.authz_state, "stateless", False):
            return None
        requested: dict[str, Any] = dict(self._scope_claims(scope))
        requested.update(claims_request_member(authentication_request, "userinfo"))
        requested.update(claims_request_member(authentication_request, "id_token"))
        names = self._filter_supported(narrow_claims(requested, client))
        names.pop("sub", None)
        if not names:
            return {}
        return dict(self.userinfo.get_claims_for(user_id, dict.fromkeys(names)))

    @staticmethod
    def _extra_claims(extra: ExtraClaims, user_id: str,
                      client_id: str) -> Optional[Mapping[str, Any]]:
        if extra is None:
            return None
        if callable(extra):
            return extra(user_id, client_id)
        return extra

    def _id_token(self, *, client_id: str, sub: str, user_id: str, nonce: Optional[str],
                  claims: Mapping[str, Any], extra: ExtraClaims, auth_time: Optional[int] = None,
                  acr: Optional[str] = None, amr: Optional[Iterable[str]] = None,
                  access_token: Optional[str] = None, code: Optional[str] = None,
                  signing_key: Optional[SigningKey] = None) -> str:
        return create_id_token(
            signing_key or self._signing_key, self.issuer, client_id, sub, now=self._now(),
            lifetime=self.id_token_lifetime, nonce=nonce, auth_time=auth_time, acr=acr,
            amr=list(amr) if amr is not None else None, access_token=access_token,
            authorization_code=code, claims=claims,
            extra_claims=self._extra_claims(extra, user_id, client_id),
            audience=client_id if self.id_token_aud_as_string else [client_id])

    @staticmethod
    def _auth_time_required(authentication_request: Mapping[str, Any],
                            client: Mapping[str, Any]) -> bool:
        if "max_age" in authentication_request or client.get("require_auth_time"):
            return True
        requested = claims_request_member(authentication_request, "id_token").get("auth_time")
        return requested is not None and isinstance(requested, Mapping) \
            and requested.get("essential") is True

    def authorize(self, authentication_request: Mapping[str, Any], user_id: str,
                  extra_id_token_claims: ExtraClaims = None, *,
                  auth_time: Optional[float] = None, acr: Optional[str] = None,
                  amr: Optional[Iterable[str]] = None) -> AuthorizationResponse:
        """Issue the authentication response for an authenticated end-user.

        Creates a code, access token and/or ID token as the ``response_type``
        asks (OIDC Core 3.1.2.5, 3.2.2.5, 3.3.2.5). The host sends the user
        agent to ``response.request(redirect_uri, should_fragment_encode(req))``.

        :param authentication_request: the request returned by
            :meth:`parse_authentication_request` (or rebuilt from its ``to_dict()``).
        :param user_id: the host's local id of the authenticated user.
        :param extra_id_token_claims: extra ID token claims: a dict, or a callable
            ``(user_id, client_id) -> dict``; also applied at the token endpoint.
        :param auth_time: when the user authenticated (UNIX time), for ``auth_time``.
        :param acr: the Authentication Context Class Reference achieved.
        :param amr: the Authentication Methods References used.
        :raises InvalidTokenRequest: ``invalid_client`` when the client was deleted since
            the request was parsed; :class:`~pyop.exceptions.UnauthorizedClient` when the
            provider has no key for the client's ``id_token_signed_response_alg``.
        :raises StorageError: the storage failed.
        """
        if not isinstance(authentication_request, Message):
            # e.g. the dict a host kept in its session: scope back to a list, claims parsed
            authentication_request = AuthorizationRequest().from_dict(
                dict(authentication_request))
        client_id = authentication_request["client_id"]
        client = self._client(client_id)
        id_token_key = self._id_token_key(client)  # before any code or token is issued
        response_types = response_type_set(authentication_request.get("response_type"))
        user_record = self._user_record(user_id)
        sub = self._subject_identifier(client, user_id,
                                       authentication_request.get("redirect_uri"),
                                       user_record, user_record_read=True)
        self._check_requested_subject(authentication_request, sub)
        scope = narrow_scope(self._granted_scope(authentication_request), client)
        auth_time_int = int(auth_time) if auth_time is not None else None
        if auth_time_int is None and self._auth_time_required(authentication_request, client):
            # OIDC Core 3.1.2.1, 5.5.1; Registration 2: auth_time is then REQUIRED in the
            # ID token. authorize() is called when the end-user has just authenticated.
            auth_time_int = self._now()

        response = AuthorizationResponse()
        code = None
        carried = None
        if response_types & {"code", "token"}:
            carried = self._claims_to_carry(user_id, client, scope, authentication_request)
        if "code" in response_types:
            extra: dict[str, Any] = {}
            if auth_time_int is not None:
                extra["auth_time"] = auth_time_int
            if acr is not None:
                extra["acr"] = acr
            if amr is not None:
                extra["amr"] = list(amr)
            if extra_id_token_claims is not None and isinstance(extra_id_token_claims, Mapping):
                extra["extra_id_token_claims"] = dict(extra_id_token_claims)
            elif callable(extra_id_token_claims):
                claims_now = extra_id_token_claims(user_id, client_id)
                if claims_now:
                    extra["extra_id_token_claims"] = dict(claims_now)
            if carried is not None:
                extra["user_info"] = carried
            code = self.authz_state.issue_authorization_code(
                cast(Message, authentication_request).to_dict(), sub, user_id, scope, extra)
            set_string_member(response, "code", code)
        access_token = None
        if "token" in response_types:
            access_token = self.authz_state.issue_access_token(
                authentication_request, sub, user_id, scope, user_info=carried)
            response["access_token"] = access_token.value
            response["token_type"] = access_token.type
            response["expires_in"] = access_token.expires_in
        if "id_token" in response_types:
            requested = claims_request_member(authentication_request, "id_token")
            if response_types == {"id_token"}:
                # no access token: scope claims go in the ID token (OIDC Core 5.4)
                requested = {**self._scope_claims(scope), **requested}
            response["id_token"] = self._id_token(
                client_id=client_id, sub=sub, user_id=user_id,
                nonce=authentication_request.get("nonce"),
                claims=self._user_claims(user_id, narrow_claims(requested, client),
                                         user_record),
                extra=extra_id_token_claims,
                auth_time=auth_time_int, acr=acr, amr=amr,
                access_token=access_token.value if access_token else None, code=code,
                signing_key=id_token_key)
        if "state" in authentication_request:
            set_string_member(response, "state", authentication_request["state"])
        set_string_member(response, "iss", self.issuer)  # RFC 9207 2
        return response

    # -- token endpoint (RFC 6749 3.2, 4.1.3, 6; OIDC Core 3.1.3) -------------------------------

    def handle_token_request(self, request_body: Any, http_headers: Optional[Any] = None,
                             extra_id_token_claims: ExtraClaims = None) -> AccessTokenResponse:
        """Handle a token request: ``authorization_code``, ``refresh_token`` or
        ``client_credentials`` grant (RFC 6749 4.1.3, 6, 4.4).

        Send the result with ``Cache-Control: no-store`` (RFC 6749 5.1).

        :param request_body: the form-encoded body (str/bytes) or a mapping.
        :param http_headers: the request headers (any mapping; names are case-insensitive).
        :param extra_id_token_claims: a dict or ``(user_id, client_id) -> dict``.
        :raises InvalidClientAuthentication: 401 ``invalid_client``.
        :raises OAuthError: any other error (``invalid_grant``, ``invalid_request``...;
            ``unauthorized_client`` when the provider has no key for the client's
            ``id_token_signed_response_alg``, before the code is spent).
        """
        parameters = parse_request_parameters(request_body, self.max_request_size)
        duplicated = duplicated_parameters(parameters)
        if duplicated:
            raise InvalidTokenRequest("repeated parameters: {}".format(", ".join(duplicated)[:200]),
                                      oauth_error="invalid_request")
        client_id, client = self._authenticate_client(parameters, http_headers)
        grant_type = parameters.get("grant_type")
        if grant_type is None:
            raise InvalidTokenRequest("missing grant_type", oauth_error="invalid_request")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials") or \
                grant_type not in self.grant_types_supported:
            raise UnsupportedGrantType("grant_type not supported")
        registered = client.get("grant_types")
        if registered is not None and grant_type not in registered:
            raise UnauthorizedClient("the client is not registered for this grant_type")
        if grant_type == "authorization_code":
            return self._do_code_exchange(parameters, client_id, client, extra_id_token_claims)
        if grant_type == "client_credentials":
            return self._do_client_credentials(parameters, client_id, client)
        return self._do_token_refresh(parameters, client_id, client)

    def _do_client_credentials(self, parameters: Mapping[str, Any], client_id: str,
                               client: Mapping[str, Any]) -> AccessTokenResponse:
        """The ``client_credentials`` grant (RFC 6749 4.4): an access token for the client
        itself -- no ID token, no refresh token (4.4.3).

        Only confidential clients that registered the grant explicitly (``grant_types``)
        may use it. The scope granted is the requested one (or, without ``scope``, the
        client's registered ``scope`` metadata, RFC 7591 2) narrowed to the scopes the
        provider supports and, when the client registered ``scope``, to those; ``openid``
        and ``offline_access`` are never granted (no end-user). The response names the
        scope granted, unless it is empty (RFC 6749 5.1).

        :raises UnauthorizedClient: public client, or grant not registered.
        :raises InvalidScope: scopes were requested and none may be granted.
        """
        if "client_credentials" not in (client.get("grant_types") or []) or \
                client.get("token_endpoint_auth_method", "client_secret_basic") == "none":
            raise UnauthorizedClient("the client is not registered for client_credentials")
        registered_scope = client.get("scope")
        client_scopes = registered_scope.split() if isinstance(registered_scope, str) else None
        scope_param = parameters.get("scope")
        if scope_param is not None and not isinstance(scope_param, str):
            raise InvalidTokenRequest("malformed scope", oauth_error="invalid_request")
        requested = scope_param.split() if scope_param is not None else (client_scopes or [])
        allowed = self._allowed_scopes() - {"openid", "offline_access"}
        granted: list[str] = []
        for value in requested:
            if value in allowed and (client_scopes is None or value in client_scopes) \
                    and value not in granted:
                granted.append(value)
        if requested and not granted:
            raise InvalidScope("none of the requested scopes may be granted to this client")
        access_token = self.authz_state.create_client_access_token(client_id, granted)
        logger.info("client %s: access token issued through client_credentials", client_id)
        return AccessTokenResponse(access_token=access_token.value,
                                   token_type=access_token.type,
                                   expires_in=access_token.expires_in, scope=" ".join(granted))

    @staticmethod
    def _check_pkce(auth_req: Mapping[str, Any], verifier: Any) -> None:
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

    def _check_code_record(self, record: Mapping[str, Any], parameters: Mapping[str, Any],
                           client_id: str) -> None:
        """The token request matches the code: same client (RFC 6749 4.1.3) and, for a code
        not used yet, the ``redirect_uri`` of the authorization request and the PKCE
        verifier (RFC 7636 4.6). A used code skips the latter two: its redemption revokes
        the tokens issued from it (RFC 6749 4.1.2).

        :raises InvalidAuthorizationCode: a check failed.
        """
        if record.get("client_id") != client_id:
            raise InvalidAuthorizationCode("the code was issued to another client")
        if not record.get("used"):
            auth_req = record.get("auth_req") or {}
            if parameters.get("redirect_uri") != auth_req.get("redirect_uri"):
                raise InvalidAuthorizationCode(
                    "redirect_uri differs from the authorization request")
            self._check_pkce(auth_req, parameters.get("code_verifier"))

    def _do_code_exchange(self, parameters: Mapping[str, Any], client_id: str,
                          client: Mapping[str, Any],
                          extra_id_token_claims: ExtraClaims) -> AccessTokenResponse:
        code = parameters.get("code")
        if not isinstance(code, str):
            raise InvalidTokenRequest("missing code", oauth_error="invalid_request")
        record, cached = self.authz_state.authorization_code_for_redemption(code)
        if cached:
            # an unused record this process issued (no read); if a check fails on it, the
            # stored record decides, as without the cache: the code may have been used
            # since, and then a replay revokes the tokens issued from it (RFC 6749 4.1.2)
            try:
                self._check_code_record(record, parameters, client_id)
            except InvalidAuthorizationCode:
                try:
                    stored = self.authz_state.get_authorization_code(code)
                except InvalidAuthorizationCode:
                    self.authz_state.forget_issued_authorization_code(code)
                    raise
                if stored != record:  # used (or changed) since: the entry is stale
                    self.authz_state.forget_issued_authorization_code(code)
                record = stored
                self._check_code_record(record, parameters, client_id)
        else:
            self._check_code_record(record, parameters, client_id)
        id_token_key = self._id_token_key(client)  # before the code is spent
        started = self._redeem_on_executor(code, record)
        if started is None:
            access_token, refresh_token = self.authz_state.redeem_authorization_code(
                code, record)
            id_token = self._code_id_token(record, client_id, client, extra_id_token_claims,
                                           access_token.value, id_token_key)
        else:
            # the storage write runs on the executor while this thread signs; the ID token
            # is sent only if the redemption succeeded (else it is dropped unsent)
            redemption, access_value = started
            try:
                id_token = self._code_id_token(record, client_id, client,
                                               extra_id_token_claims, access_value,
                                               id_token_key)
            except BaseException:
                # as without the executor, the redemption is not undone; its own failure
                # is secondary to this one
                _wait_quietly(redemption)
                raise
            access_token, refresh_token = redemption.result()
        response = issued_token_response(access_token.value, access_token.type,
                                         access_token.expires_in, id_token, record["scope"])
        if refresh_token:
            response["refresh_token"] = refresh_token
        return response

    def _redeem_on_executor(self, code: str, record: Mapping[str, Any]
                            ) -> Optional[tuple[Future[tuple[AccessToken, Optional[str]]], str]]:
        """Submit the redemption of ``code`` to :attr:`executor`, with the access token value
        drawn here (for ``at_hash``); None to redeem in the calling thread: no executor, a
        replay (its stored record is "used": revoked, no ID token), sealed access tokens,
        or an executor that was shut down."""
        executor = self.executor
        authz_state = self.authz_state
        if executor is None or record.get("used") or \
                not authz_state.access_token_values_are_random:
            return None
        access_value = new_token_value()
        try:
            redemption = executor.submit(authz_state.redeem_authorization_code, code, record,
                                         access_token_value=access_value)
        except RuntimeError:  # shut down (the host is stopping)
            logger.warning("the provider's executor refused the code redemption; "
                           "redeeming in the calling thread")
            return None
        return redemption, access_value

    def _code_id_token(self, record: Mapping[str, Any], client_id: str,
                       client: Mapping[str, Any], extra_id_token_claims: ExtraClaims,
                       access_token_value: str, signing_key: SigningKey) -> str:
        """The ID token of a code exchange (OIDC Core 3.1.3.3, 3.1.3.6)."""
        auth_req = record.get("auth_req") or {}
        user_id = record["user_id"]
        requested = claims_request_member(auth_req, "id_token")
        extra: ExtraClaims = extra_id_token_claims
        stored_extra = record.get("extra_id_token_claims")
        if stored_extra and extra is None:
            extra = stored_extra
        elif stored_extra:
            base = dict(stored_extra)
            base.update(self._extra_claims(extra, user_id, client_id) or {})
            extra = base
        return self._id_token(
            client_id=client_id, sub=record["sub"], user_id=user_id,
            nonce=auth_req.get("nonce"),
            claims=self._user_claims(user_id, narrow_claims(requested, client),
                                     record.get("user_info")),
            extra=extra, auth_time=record.get("auth_time"), acr=record.get("acr"),
            amr=record.get("amr"), access_token=access_token_value, signing_key=signing_key)

    def _do_token_refresh(self, parameters: Mapping[str, Any], client_id: str,
                          client: Mapping[str, Any]) -> AccessTokenResponse:
        refresh_token = parameters.get("refresh_token")
        if not isinstance(refresh_token, str):
            raise InvalidTokenRequest("missing refresh_token", oauth_error="invalid_request")
        scope_param = parameters.get("scope")
        scope = scope_param.split() if isinstance(scope_param, str) else None
        if scope is not None and not scope:
            raise InvalidScope("empty scope")
        scope = self._refresh_scope_in_allow_list(refresh_token, scope, client_id, client)
        # refresh tokens of public clients are rotated on every use (RFC 9700 4.14.2)
        access_token, new_refresh, record = self.authz_state.refresh_access_token(
            refresh_token, client_id, scope,
            rotate=client.get("token_endpoint_auth_method") == "none")
        response = AccessTokenResponse(access_token=access_token.value,
                                       token_type=access_token.type,
                                       expires_in=access_token.expires_in)
        # the scope granted, computed as refresh_access_token did (never re-read: a concurrent
        # replay may already have revoked the new token)
        response["scope"] = " ".join(s for s in record["scope"].split()
                                     if scope is None or s in scope)
        if new_refresh:
            response["refresh_token"] = new_refresh
        return response

    def _refresh_scope_in_allow_list(self, refresh_token: str, scope: Optional[list[str]],
                                     client_id: str, client: Mapping[str, Any]
                                     ) -> Optional[list[str]]:
        """The scope to refresh with, within the client's ``scope`` metadata (RFC 7591 2).

        Requested values outside it are dropped; without a request, a grant wider than
        the allow-list (narrowed by the host since) is narrowed. Refresh never widens
        the grant (RFC 6749 6): that is for ``refresh_access_token``.

        :raises InvalidScope: nothing in the allow-list remains.
        """
        allowed = client_allowed_scope(client)
        if allowed is None:
            return scope
        if scope is None:
            record = self.authz_state.get_refresh_token(refresh_token)
            granted = str(record.get("scope", "")).split() if record is not None \
                and record.get("client_id") == client_id else []
            if all(value in allowed for value in granted):
                return None
            scope = granted
        narrowed = [value for value in scope if value in allowed]
        if not narrowed:
            raise InvalidScope("no requested scope value is allowed for the client")
        return narrowed

    # -- token introspection (RFC 7662) and revocation (RFC 7009) -------------------------------

    _TOKEN_TYPE_HINTS = ("access_token", "refresh_token")

    def _parse_token_management_request(self, request_body: Any, http_headers: Optional[Any],
                                        *, allow_public: bool, endpoint: Optional[str] = None
                                        ) -> tuple[str, Mapping[str, Any], str, list[str]]:
        """Authenticate the client; return ``(client_id, client, token, token types to
        try)``."""
        parameters = parse_request_parameters(request_body, self.max_request_size)
        duplicated = duplicated_parameters(parameters)
        if duplicated:
            raise InvalidRequestError(
                "repeated parameters: {}".format(", ".join(duplicated)[:200]))
        client_id, client = self._authenticate_client(parameters, http_headers, endpoint)
        if not allow_public and \
                client.get("token_endpoint_auth_method", "client_secret_basic") == "none":
            raise InvalidClientAuthentication("public clients may not introspect tokens")
        token = parameters.get("token")
        if not isinstance(token, str) or not token:
            raise InvalidRequestError("missing token")
        hint = parameters.get("token_type_hint")
        order = list(self._TOKEN_TYPE_HINTS)
        if hint == "refresh_token":  # unknown hints are ignored (RFC 7662 2.1, RFC 7009 2.1)
            order.reverse()
        return client_id, client, token, order

    def _token_record(self, token_type: str, token: str) -> Optional[dict[str, Any]]:
        """The unexpired record of a token of that type, or None."""
        if token_type == "access_token":
            try:
                return self.authz_state.get_access_token(token)
            except InvalidAccessToken:
                return None
        return self.authz_state.get_refresh_token(token)

    def handle_introspection_request(self, request_body: Any, http_headers: Optional[Any] = None
                                     ) -> TokenIntrospectionResponse:
        """Answer a token introspection request (RFC 7662).

        The caller must be a client authenticating as at the token endpoint; public
        clients (``none``) are refused. A token is active only if it is live and was
        issued to the calling client: any other token -- unknown, expired, revoked,
        rotated, or of another client -- gets ``{"active": false}``. A token of the
        ``client_credentials`` grant has no end-user: its answer has ``client_id`` and no
        ``sub`` (RFC 7662 2.2). ``scope`` is the token's, narrowed to the client's ``scope``
        allow-list as it is now (RFC 7591 2), as at UserInfo. Send the result's ``to_json()`` with
        ``Cache-Control: no-store``.

        :param request_body: the form-encoded body (``token``, optional
            ``token_type_hint``) as str/bytes, or a mapping.
        :param http_headers: the request headers (``Authorization: Basic ...``).
        :raises InvalidClientAuthentication: 401 ``invalid_client``.
        :raises InvalidRequestError: no ``token``, repeated parameters (400).
        """
        client_id, client, token, order = self._parse_token_management_request(
            request_body, http_headers, allow_public=False, endpoint="introspection_endpoint")
        for token_type in order:
            record = self._token_record(token_type, token)
            if record is None:
                continue
            if record.get("client_id") != client_id or record.get("rotated"):
                break
            # the client's scope allow-list as it is now, as at UserInfo (RFC 7591 2)
            scope = " ".join(narrow_scope(str(record.get("scope", "")).split(), client))
            response = TokenIntrospectionResponse(
                active=True, scope=scope, client_id=client_id,
                exp=record.get("exp"), iat=record.get("iat"),
                token_type="Bearer" if token_type == "access_token" else "refresh_token",
                iss=self.issuer)
            if record.get("sub") is not None:  # client_credentials tokens have no end-user
                response["sub"] = record["sub"]
            return response
        return TokenIntrospectionResponse(active=False)

    def handle_revocation_request(self, request_body: Any,
                                  http_headers: Optional[Any] = None) -> None:
        """Handle a token revocation request (RFC 7009); answer 200 with an empty body.

        The client authenticates as at the token endpoint; public clients send
        their ``client_id`` (RFC 7009 2.1). ``token_type_hint`` decides which kind
        of token is looked up first. Revoking a refresh token revokes its grant
        (the access tokens issued with it and its rotations). A token that is
        unknown, expired or of another client is left alone, without error
        (RFC 7009 2.2).

        :raises InvalidClientAuthentication: 401 ``invalid_client``.
        :raises InvalidRequestError: no ``token``, repeated parameters (400).
        """
        client_id, _, token, order = self._parse_token_management_request(
            request_body, http_headers, allow_public=True, endpoint="revocation_endpoint")
        for token_type in order:
            record = self._token_record(token_type, token)
            if record is None:
                continue
            if record.get("client_id") != client_id:
                logger.info("revocation request for a token of another client: ignored")
                return
            if token_type == "access_token":
                self.authz_state.revoke_access_token(token)
            else:
                self.authz_state.revoke_refresh_token(token)
            return

    # -- UserInfo (OIDC Core 5.3, RFC 6750) ------------------------------------------------------

    def handle_userinfo_request(self, request: Any = None,
                                http_headers: Optional[Any] = None) -> UserinfoResponse:
        """Answer a UserInfo request with the claims the access token was granted.

        The result is a :class:`~pyop.message.UserinfoResponse` (an ``OpenIDSchema``)
        whose ``to_json()`` is the JSON response, as in pyop 3. Send ``result.to_body()``
        with the ``Content-Type`` ``result.content_type``: for a client that registered
        ``userinfo_signed_response_alg`` that is a JWT signed with that alg, with the
        ``iss`` and ``aud`` claims, as ``application/jwt`` (OIDC Core 5.3.2).

        :param request: the form body (POST) or query string (GET), possibly empty.
        :param http_headers: the request headers; ``Authorization: Bearer ...``.
        :raises BearerTokenError: no token (401 ``invalid_token``).
        :raises InvalidUserinfoRequest: token in several places, malformed request (400).
        :raises InvalidAccessToken: unknown, expired or revoked token, or a token of a
            client that was deleted since (401).
        :raises InsufficientScope: the token lacks ``openid`` (403).
        :raises InvalidUserinfoRequest: also when the provider has no key for the
            client's registered ``userinfo_signed_response_alg`` (logged as an error).
        :raises TokenWithoutEndUser: a ``client_credentials`` token of a client that
            still exists (403; an :class:`InsufficientScope`).

        The client's allow-lists (its ``scope``, its ``allowed_claims``) as they are now
        narrow the claims released.
        """
        try:
            parameters = parse_request_parameters(request, self.max_request_size)
        except InvalidRequestError as e:
            raise InvalidUserinfoRequest(str(e)) from e
        token = extract_bearer_token_from_http_request(
            parameters, get_header(http_headers, "Authorization"))
        record = self.authz_state.get_access_token(token)
        client = self.get_client(record.get("client_id"))
        if client is None:  # deleted since (RFC 7592 2.3): whatever the grant, 401
            raise InvalidAccessToken("the access token is unknown, expired or revoked")
        if "user_id" not in record:
            raise TokenWithoutEndUser(
                "the access token was issued to a client for itself (client_credentials): "
                "there is no end-user")
        scope = narrow_scope(record.get("scope", "").split(), client)
        if "openid" not in scope:
            raise InsufficientScope("the access token was not granted the openid scope")
        requested = self._scope_claims(scope)
        requested.update(record.get("claims") or {})
        claims = self._user_claims(record["user_id"], narrow_claims(requested, client),
                                   record.get("user_info"))
        claims["sub"] = record["sub"]
        response = message_from_plain_values(UserinfoResponse, claims)
        if client.get("userinfo_signed_response_alg") is not None:
            key = self._signing_key_for(client, "userinfo_signed_response_alg")
            if key is None:
                raise InvalidUserinfoRequest(
                    "the provider has no key for the client's userinfo_signed_response_alg")
            response.sign(key, issuer=self.issuer, audience=record["client_id"])
        return response

    # -- Dynamic Client Registration (OIDC Dynamic Registration 3) -------------------------------

    def handle_client_registration_request(self, request: Any,
                                           http_headers: Optional[Any] = None
                                           ) -> RegistrationResponse:
        """Register a client (OIDC Dynamic Registration 3.1-3.2).

        :param request: the JSON body (str/bytes) or an already parsed dict.
        :raises InvalidClientRegistrationRequest: with ``to_json()`` for the 400 body.
        """
        metadata = self._parse_registration_body(request)
        registration_req = self._verified_registration_request(metadata)

        client_id = secrets.token_urlsafe(16)
        while self.get_client(client_id) is not None:  # pragma: no cover - 128-bit collision
            client_id = secrets.token_urlsafe(16)
        # only registered metadata is kept: unknown members are ignored and the
        # credentials are the provider's to issue (OIDC Dynamic Registration 2, 3.2)
        client = self._client_metadata(registration_req)
        client["client_id"] = client_id
        client["client_id_issued_at"] = self._now()
        response = dict(client)
        if uses_client_secret(client):
            response["client_secret"] = self._set_client_secret(client)  # returned once
            response["client_secret_expires_at"] = client["client_secret_expires_at"]
        self._issue_registration_access_token(client, response)
        try:
            registration_response = RegistrationResponse(**response)
        except Exception as e:  # oic refuses a value: nothing is stored (no half-registration)
            raise InvalidClientRegistrationRequest(
                describe_invalid_metadata(response, e), metadata,
                oauth_error="invalid_client_metadata") from e
        self.clients[client_id] = client
        self.client_changed(client_id)
        logger.info("registered client %s", client_id)
        return registration_response

    def _verified_registration_request(self, metadata: dict[str, Any]) -> RegistrationRequest:
        """Client metadata checked as OIDC Dynamic Registration 2 and the validators say.

        :raises InvalidClientRegistrationRequest: invalid metadata (400).
        """
        if not metadata.get("redirect_uris"):
            raise InvalidClientRegistrationRequest("redirect_uris is required", metadata,
                                                   oauth_error="invalid_redirect_uri")
        try:
            registration_req = RegistrationRequest().from_dict(metadata)
            for name in ("redirect_uris", "response_types", "grant_types", "contacts",
                         "post_logout_redirect_uris", "default_acr_values", "request_uris"):
                value = registration_req.get(name)
                if value is not None and (not isinstance(value, list) or not all(
                        isinstance(v, str) for v in value)):
                    raise _NamedRuleError(f"{name}: must be an array of strings")
            for name, value in registration_req.items():
                # single-valued string members: oic turns [x] into x without checking x
                spec = RegistrationRequest.c_param.get(name)
                if spec is not None and spec[0] is str and name != "jwks" \
                        and not isinstance(value, str):
                    raise _NamedRuleError(f"{name}: must be a string")
            registration_req.verify()
        except InvalidClientRegistrationRequest:
            raise
        except Exception as e:  # oic raises many types for bad metadata
            raise InvalidClientRegistrationRequest(
                describe_invalid_metadata(metadata, e) if not isinstance(e, _NamedRuleError)
                else str(e), metadata, oauth_error="invalid_client_metadata") from e
        for validator in self.registration_request_validators:
            validator(registration_req)
        matched = self.match_client_preferences_with_provider_capabilities(registration_req)
        for name in NARROWED_PREFERENCES:
            if name in matched:
                registration_req[name] = matched[name]
        return cast(RegistrationRequest, registration_req)

    def match_client_preferences_with_provider_capabilities(
            self, client_preferences: Mapping[str, Any]) -> dict[str, Any]:
        """The client's metadata with its list-valued preferences narrowed to what the
        provider supports (OIDC Dynamic Registration 2, 3.2).

        ``response_types``, ``grant_types`` and ``default_acr_values`` keep only the
        values listed in ``response_types_supported``, the grant types accepted
        (:attr:`grant_types_supported`) and ``acr_values_supported`` (when configured),
        in the client's order and spelling; response types are compared as sets of
        space-separated values. The other members are returned unchanged.

        :param client_preferences: a registration request (message or mapping).
        :returns: a new dict; ``client_preferences`` is not changed.
        """
        to_dict = getattr(client_preferences, "to_dict", None)
        matched: dict[str, Any] = dict(to_dict() if callable(to_dict) else client_preferences)
        for name in NARROWED_PREFERENCES:
            values = supported_preference_values(name, matched, self)
            if values is not None:
                matched[name] = values
        return matched

    @staticmethod
    def _client_metadata(registration_req: RegistrationRequest) -> dict[str, Any]:
        """The members of a verified registration request that are kept, with defaults.

        Only registered metadata is kept: unknown members are ignored and the
        credentials are the provider's to issue (OIDC Dynamic Registration 2, 3.2).
        ``scope`` (RFC 7591 2) is kept too, normalised.
        """
        client = {name: value for name, value in registration_req.to_dict().items()
                  if name in RegistrationRequest.c_param}
        client.update(registration_defaults(client))
        scope = registration_req.get("scope")
        if isinstance(scope, str):
            client["scope"] = " ".join(scope.split())
        return client

    @staticmethod
    def _parse_registration_body(request: Any) -> dict[str, Any]:
        if isinstance(request, Mapping):
            metadata: Any = dict(request)
        else:
            if isinstance(request, (bytes, bytearray)):
                request = _utf8_or_none(request)
                if request is None:
                    raise InvalidClientRegistrationRequest("body is not UTF-8", None)
            if not isinstance(request, str) or len(request) > DEFAULT_MAX_REQUEST_SIZE:
                raise InvalidClientRegistrationRequest("missing or oversized body", None)
            try:
                metadata = strict_json_loads(request)
            except ValueError as e:
                raise InvalidClientRegistrationRequest("body is not JSON", None) from e
        if not isinstance(metadata, dict):
            raise InvalidClientRegistrationRequest("body must be a JSON object", None)
        return metadata

    # -- Client configuration endpoint (RFC 7592; OIDC Dynamic Registration 4) -------------------

    def _registration_client_uri(self, client_id: str) -> Optional[str]:
        endpoint = self.configuration_information.get("registration_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            return None
        return registration_client_uri(self.registration_client_uri_template, endpoint,
                                       client_id)

    def _issue_registration_access_token(self, client: dict[str, Any],
                                         response: dict[str, Any]) -> None:
        """Give a client a new registration access token when the provider has a
        ``registration_endpoint`` (RFC 7592 3): its hash goes in ``client``, the token
        and ``registration_client_uri`` in ``response``."""
        uri = self._registration_client_uri(client["client_id"])
        if uri is None:
            return
        token = new_registration_access_token()
        client["registration_access_token_hash"] = hash_client_secret(token)
        response["registration_access_token"] = token  # returned once
        response["registration_client_uri"] = uri

    def _set_client_secret(self, client: dict[str, Any], expires_at: int = 0) -> str:
        """Give ``client`` a new secret (stored hashed with ``hash_client_secrets``).

        A ``client_secret_jwt`` secret is an HMAC key as long as the longest hash it may
        key (HS512, RFC 7518 3.2).
        """
        client_secret = secrets.token_urlsafe(
            64 if client.get("token_endpoint_auth_method") == "client_secret_jwt" else 32)
        if self.hash_client_secrets:
            client["client_secret_hash"] = hash_client_secret(client_secret)
            client.pop("client_secret", None)
        else:
            client["client_secret"] = client_secret
            client.pop("client_secret_hash", None)
        client["client_secret_expires_at"] = expires_at
        return client_secret

    def _managed_client(self, client_id: Any, http_headers: Optional[Any]
                        ) -> tuple[str, dict[str, Any], str]:
        """The client a configuration request is for, with the token it presented.

        RFC 7592 2: the registration access token is the bearer token of the
        ``Authorization`` header (RFC 6750 2.1).

        :raises InvalidRegistrationAccessToken: no token, a wrong one, or an unknown
            client -- the same 401 ``invalid_token`` (RFC 7592 2.1).
        """
        token = registration_bearer_token(http_headers)
        if token is None:
            raise InvalidRegistrationAccessToken("no registration access token",
                                                 token_missing=True)
        client = self._stored_client(client_id)
        if not registration_access_token_matches(client, token) or client is None:
            logger.info("client configuration request with an invalid registration "
                        "access token")
            raise InvalidRegistrationAccessToken("invalid registration access token")
        return cast(str, client_id), dict(client), token

    def _client_information(self, client: Mapping[str, Any], token: str
                            ) -> RegistrationResponse:
        """The client information response (RFC 7592 3; OIDC Dynamic Registration 4.3).

        The client's metadata, never a stored hash nor members only the host sets;
        ``client_secret`` only when it is stored in clear. ``registration_access_token``
        is the token the client presented (or a new one).
        """
        response = {name: value for name, value in client.items()
                    if name in CLIENT_SETTABLE_METADATA or name in SERVER_MANAGED_METADATA}
        response["registration_access_token"] = token
        uri = self._registration_client_uri(client["client_id"])
        if uri is not None:
            response["registration_client_uri"] = uri
        return RegistrationResponse(**response)

    def handle_client_read_request(self, client_id: Any, http_headers: Optional[Any] = None
                                   ) -> RegistrationResponse:
        """Answer a client read request (RFC 7592 2.1; OIDC Dynamic Registration 4.2).

        :param client_id: the client id of the ``registration_client_uri`` the
            request was made to (the host's route extracts it).
        :param http_headers: the request headers: ``Authorization: Bearer
            <registration access token>``.
        :returns: the client information (send ``to_json()`` with 200 and
            ``Cache-Control: no-store``). ``client_secret`` is in it only when the
            provider stores it in clear (not with ``hash_client_secrets``).
        :raises InvalidRegistrationAccessToken: 401, for a missing or wrong token and
            for an unknown client alike.
        """
        _, client, token = self._managed_client(client_id, http_headers)
        return self._client_information(client, token)

    def handle_client_update_request(self, client_id: Any, request_body: Any,
                                     http_headers: Optional[Any] = None, *,
                                     rotate_client_secret: bool = False,
                                     rotate_registration_access_token: bool = False
                                     ) -> RegistrationResponse:
        """Replace a client's metadata (RFC 7592 2.2).

        The body is the client's complete metadata, validated exactly as a
        registration request; omitted members are removed. ``client_id`` must be
        the client's; a ``client_secret`` must be its current one. Members the
        provider manages (``client_secret``, ``client_id_issued_at``,
        ``client_secret_expires_at``, ``registration_access_token``,
        ``registration_client_uri``) are not taken from the body, and members only
        the host sets (e.g. ``allowed_claims``) are kept.

        A client moving to a method with a secret gets one, and one moving to
        ``client_secret_jwt`` a new 512-bit one (its HMAC key, RFC 7518 3.2);
        ``rotate_client_secret`` issues a new secret (the old one stops working). The
        registration access token stays the same unless
        ``rotate_registration_access_token`` (RFC 7592 2.2 allows either); the response
        carries the token to use from now on. A cached ``jwks_uri`` document of the
        client is dropped: the update may follow a key removal.

        :raises InvalidRegistrationAccessToken: 401, as for a read request.
        :raises InvalidClientRegistrationRequest: 400 ``invalid_request`` (client_id
            or client_secret not the client's, malformed body),
            ``invalid_redirect_uri`` or ``invalid_client_metadata``.
        """
        client_id, current, token = self._managed_client(client_id, http_headers)
        metadata = self._parse_registration_body(request_body)
        if metadata.get("client_id") != client_id:
            raise InvalidClientRegistrationRequest(
                "client_id must be the identifier of the client", None)
        presented_secret = metadata.get("client_secret")
        if presented_secret is not None and not (
                isinstance(presented_secret, str)
                and client_secret_matches(current, presented_secret)):
            raise InvalidClientRegistrationRequest(
                "client_secret does not match the current client secret", None)
        for name in SERVER_MANAGED_METADATA:
            metadata.pop(name, None)
        client = self._client_metadata(self._verified_registration_request(metadata))
        for name, value in current.items():  # provider- and host-set members stay
            if name not in CLIENT_SETTABLE_METADATA:
                client.setdefault(name, value)
        new_secret = None
        if uses_client_secret(client):
            # a client moving to client_secret_jwt gets a secret fit to be its HMAC key
            # (HS512, RFC 7518 3.2), not the shorter one of its former method
            to_secret_jwt = client.get("token_endpoint_auth_method") == "client_secret_jwt" \
                and current.get("token_endpoint_auth_method") != "client_secret_jwt"
            if rotate_client_secret or to_secret_jwt or not (client.get("client_secret")
                                                             or client.get("client_secret_hash")):
                new_secret = self._set_client_secret(client)
        else:
            for name in ("client_secret", "client_secret_hash", "client_secret_expires_at"):
                client.pop(name, None)
        if rotate_registration_access_token:
            token = new_registration_access_token()
            client["registration_access_token_hash"] = hash_client_secret(token)
        try:
            response = self._client_information(client, token)
            if new_secret is not None:
                response["client_secret"] = new_secret  # returned once
        except Exception as e:  # oic refuses a value: nothing is stored
            raise InvalidClientRegistrationRequest(
                describe_invalid_metadata(client, e), None,
                oauth_error="invalid_client_metadata") from e
        self.clients[client_id] = client
        self.client_changed(client_id)
        self._forget_jwks(current.get("jwks_uri"), client.get("jwks_uri"))
        logger.info("updated client %s", client_id)
        return response

    def handle_client_delete_request(self, client_id: Any,
                                     http_headers: Optional[Any] = None) -> None:
        """Delete a client (RFC 7592 2.3); the host answers 204 No Content.

        The client can no longer authenticate, be authorized, nor use its
        registration access token; its access tokens stop working at the UserInfo
        endpoint.

        :raises InvalidRegistrationAccessToken: 401, as for a read request.
        """
        client_id, current, _ = self._managed_client(client_id, http_headers)
        try:
            del self.clients[client_id]
        except KeyError:  # deleted concurrently
            pass
        self.client_changed(client_id)
        self._forget_jwks(current.get("jwks_uri"))
        logger.info("deleted client %s", client_id)

    def rotate_client_secret(self, client_id: str, *, expires_at: int = 0) -> str:
        """Issue a new secret to a client and return it; the old one stops working.

        For hosts (e.g. an administration page). The secret is stored hashed with
        ``hash_client_secrets``.

        :param expires_at: ``client_secret_expires_at``: UNIX time, or 0 for never.
        :raises ValueError: unknown client, or one that does not use a secret; a
            ``client_secret_jwt`` client with ``hash_client_secrets`` (a stored hash
            cannot check its HMAC, OIDC Core 9: the client would be locked out).
        """
        found = self._stored_client(client_id) if isinstance(client_id, str) else None
        if found is None:
            raise ValueError("unknown client")
        client = dict(found)
        if not uses_client_secret(client):
            raise ValueError("the client does not authenticate with a client secret")
        if self.hash_client_secrets and \
                client.get("token_endpoint_auth_method") == "client_secret_jwt":
            raise ValueError("client_secret_jwt needs its secret in clear: not rotated with "
                             "hash_client_secrets")
        client_secret = self._set_client_secret(client, expires_at)
        self.clients[client_id] = client
        self.client_changed(client_id)
        logger.info("rotated the secret of client %s", client_id)
        return client_secret

    # -- RP-Initiated Logout 1.0 ---------------------------------------------------------------

    def _hint_claims(self, end_session_request: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """Claims of a verified id_token_hint; None without a hint.

        :raises InvalidEndSessionRequest: a hint that we did not issue.
        """
        hint = end_session_request.get("id_token_hint")
        if hint is None:
            return None
        claims = self.verify_id_token_hint(hint)
        if claims is None:
            raise InvalidEndSessionRequest("id_token_hint was not issued by this provider")
        client_id = end_session_request.get("client_id")
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if client_id is not None and client_id not in aud:
            raise InvalidEndSessionRequest("client_id differs from the id_token_hint audience")
        return claims

    def logout_user(self, subject_identifier: Optional[str] = None,
                    end_session_request: Optional[Mapping[str, Any]] = None) -> None:
        """Log the end-user out at the provider (OIDC RP-Initiated Logout 1.0, 2): revoke
        the authorization codes, access tokens and refresh tokens issued for the ``sub`` so
        far (see :meth:`AuthorizationState.delete_state_for_subject_identifier
        <pyop.authz_state.AuthorizationState.delete_state_for_subject_identifier>`).

        :param subject_identifier: the ``sub`` known from the host's session, if any.
        :param end_session_request: the parsed logout request (``EndSessionRequest``).
        :raises InvalidSubjectIdentifier: no or unknown subject identifier.
        :raises InvalidEndSessionRequest: an id_token_hint not issued by us, or
            a client_id differing from its audience (also an
            :class:`InvalidSubjectIdentifier`, so hosts catching that see it too).
        """
        claims = self._hint_claims(end_session_request or {})
        sub = subject_identifier or (claims or {}).get("sub")
        if not sub:
            raise InvalidSubjectIdentifier("no subject identifier to log out")
        self.authz_state.delete_state_for_subject_identifier(sub)

    def do_post_logout_redirect(self, end_session_request: Mapping[str, Any]) -> Optional[str]:
        """The post-logout redirect URL, or None (OIDC RP-Initiated Logout 1.0, 3).

        Redirects only to a ``post_logout_redirect_uri`` registered (exact
        match) for the client proven by a valid ``id_token_hint`` or named by
        ``client_id``; ``state`` is passed back.
        """
        uri = end_session_request.get("post_logout_redirect_uri")
        if not isinstance(uri, str):
            return None
        try:
            claims = self._hint_claims(end_session_request)
        except InvalidEndSessionRequest:
            return None
        client_id = end_session_request.get("client_id")
        if claims is not None:
            aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            client_id = client_id or (aud[0] if len(aud) == 1 else claims.get("azp"))
        client = self.get_client(client_id)
        if client is None:
            return None
        registered = client.get("post_logout_redirect_uris") or []
        if uri not in registered:
            return None
        response = EndSessionResponse()
        state = end_session_request.get("state")
        if isinstance(state, str) and is_utf8_encodable(state):
            response["state"] = state
        url: str = response.request(uri)
        return url if response.keys() else uri

    def parse_end_session_request(self, request_body: Any) -> EndSessionRequest:
        """Parse a logout request (query string, form body or mapping).

        :raises InvalidEndSessionRequest: malformed or repeated parameters.
        """
        try:
            parameters = parse_request_parameters(request_body, self.max_request_size)
        except InvalidRequestError as e:
            raise InvalidEndSessionRequest(str(e)) from e
        if duplicated_parameters(parameters):
            raise InvalidEndSessionRequest("repeated parameters")
        return EndSessionRequest(**parameters)


def _key_sets(active: SigningKey, signing_keys: Any, published_keys: Any,
              thumbprint_kids: bool = False
              ) -> tuple[dict[str, SigningKey], list[VerificationKey]]:
    """The provider's signing keys by alg and every key it publishes (the active key
    first), converted once.

    Keys keep their ``kid`` (none if they have none). Keys without one get their RFC 7638
    thumbprint as kid with ``thumbprint_kids``, and whenever more than one key is
    published: OIDC Core 10.1 requires a ``kid`` in the JWS header when the JWK Set holds
    several keys, so that the verifier can choose (RFC 7517 4.5).

    :raises InvalidConfiguration: a key that cannot be used, two signing keys for one
        alg, or two keys with the same ``kid`` (RFC 7517 4.5); the message names the field.
    """
    for name, value in (("signing_keys", signing_keys), ("published_keys", published_keys)):
        if not isinstance(value, (list, tuple)):
            raise InvalidConfiguration(f"{name}: must be a list of keys")
    signing: list[tuple[str, SigningKey]] = [("signing_key", active)]
    for i, key in enumerate(signing_keys):
        try:
            signing.append((f"signing_keys[{i}]", SigningKey.from_key(key)))
        except ValueError as e:
            raise InvalidConfiguration(f"signing_keys[{i}]: {e}") from e
    published: list[tuple[str, VerificationKey]] = []
    for i, key in enumerate(published_keys):
        try:
            published.append((f"published_keys[{i}]", VerificationKey.from_key(key)))
        except ValueError as e:
            raise InvalidConfiguration(f"published_keys[{i}]: {e}") from e
    if thumbprint_kids or len(signing) + len(published) > 1:
        signing = [(field, key.with_thumbprint_kid()) for field, key in signing]
        published = [(field, key.with_thumbprint_kid()) for field, key in published]
    by_alg: dict[str, SigningKey] = {}
    for field, key in signing:
        if key.alg in by_alg:
            raise InvalidConfiguration(
                f"{field}: a signing key for {key.alg} is already configured "
                "(at most one per alg; publish others with published_keys)")
        by_alg[key.alg] = key
    fields: list[tuple[str, VerificationKey]] = [*signing, *published]
    kids: dict[str, str] = {}
    for field, key in fields:
        if key.kid is None:
            continue
        if key.kid in kids:
            raise InvalidConfiguration(
                f"{field}: duplicate kid {key.kid!r} (also {kids[key.kid]}); "
                "give each key its own kid")
        kids[key.kid] = field
    return by_alg, [key for _field, key in fields]


def _error_context(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What an error response needs from a request whose redirect_uri is verified.

    A repeated ``response_type`` keeps all its values, so an error for any
    response type that issues tokens still goes in the fragment (OIDC Core
    3.2.2.6); other repeated values are left out.
    """
    context = {name: parameters[name] for name in
               ("redirect_uri", "state", "response_type", "response_mode")
               if isinstance(parameters.get(name), str)}
    response_type = parameters.get("response_type")
    if isinstance(response_type, list):
        context["response_type"] = " ".join(str(value) for value in response_type)
    return context


def _utf8_or_none(data: Union[bytes, bytearray]) -> Optional[str]:
    """``data`` decoded, or None; the UnicodeDecodeError (which holds all of ``data``) is
    not kept as the context of the error raised next."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None



