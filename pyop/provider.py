"""The OpenID Provider: parses, validates and answers the protocol messages of a host app.

The host owns HTTP, sessions and end-user login; it calls the ``parse_*``,
``authorize`` and ``handle_*`` methods from its routes and turns their results
(``oic`` messages) and exceptions (:mod:`pyop.exceptions`) into HTTP responses.

:class:`Provider` is a facade: each method hands the request to its endpoint
(:mod:`pyop.endpoints`, OIDC Core 3, 5.3; RFC 6749, 7009, 7591, 7592, 7662; RP-Initiated
Logout 1.0) together with the provider's services (:class:`~pyop.context.ProviderContext`).
"""

from __future__ import annotations

import functools
import hmac  # noqa: F401 - ``pyop.provider.hmac``: the module the PKCE comparison uses
import logging
import operator
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Callable, Optional, Union

from . import claims_policy
from .access_token import extract_bearer_token_from_http_request
from .authz_state import AuthorizationState
from .claims_policy import SCOPE_CLAIMS as _SCOPE_CLAIMS
from .claims_policy import ExtraClaims
from .client_assertion import (
    ASSERTION_AUDIENCES,
    DEFAULT_MAX_ASSERTION_LIFETIME,
    ClientAssertionVerifier,
)
from .client_authentication import verify_client_authentication
from .client_keys import ClientKeys
from .client_management import DEFAULT_REGISTRATION_CLIENT_URI_TEMPLATE
from .client_registry import ClientRegistry
from .configuration import DEFAULT_AUTHORIZATION_RESPONSE_LIFETIME, Configuration
from .context import ProviderContext
from .dpop import DEFAULT_CLOCK_SKEW, DEFAULT_PROOF_LIFETIME, DPoPSettings, TimeBasedDPoPNonces
from .endpoints import (
    authorization,
    end_session,
    pushed_authorization,
    registration,
    token,
    token_management,
)
from .endpoints import (
    userinfo as userinfo_endpoint,
)
from .exceptions import (
    AuthorizationError,
    InvalidAccessToken,
    InvalidAuthenticationRequest,
    InvalidAuthorizationCode,
    InvalidConfiguration,
    InvalidTokenRequest,
    OAuthError,
)
from .grants import DEFAULT_GRANT_HANDLERS
from .key_set import KeySet
from .logout_notifications import BackChannelSender, LogoutResult, new_session_id
from .message import (
    AccessTokenRequest,
    AccessTokenResponse,
    AuthorizationRequest,
    AuthorizationResponse,
    EndSessionRequest,
    EndSessionResponse,
    IdToken,
    OpenIDSchema,
    ProviderConfigurationResponse,
    PushedAuthorizationResponse,
    RefreshAccessTokenRequest,
    RegistrationRequest,
    RegistrationResponse,
    TokenIntrospectionResponse,
    UserinfoResponse,
)
from .misuse_checks import check_claims_source, warn_unknown_configuration_keys
from .outbound import GuardedFetcher
from .profiles import FAPI2, PROFILES, fapi2_metadata, install_fapi2_validators
from .registration import (
    DEFAULT_REGISTRATION_CHECKS,
    InitialAccessTokens,
    RegistrationLimits,
    RegistrationPolicy,
    RegistrationSettings,
)
from .request_object import (
    DEFAULT_MAX_CLIENT_KEYS,
    DEFAULT_MAX_REQUEST_OBJECT_LIFETIME,
)
from .request_validator import (
    DEFAULT_AUTHENTICATION_CHECKS,
    authorization_request_verify,
    client_id_is_known,
    client_preferences_match_provider_capabilities,
    redirect_uri_is_in_registered_redirect_uris,
    registration_request_verify,
    requested_scope_is_supported,
    response_type_is_in_registered_response_types,
    userinfo_claims_only_specified_when_access_token_is_issued,
)
from .userinfo import Userinfo
from .util import DEFAULT_MAX_REQUEST_SIZE, find_common_values

__all__ = ["Provider", "SCOPE_CLAIMS"]

#: Names pyop 3 imported into pyop.provider: code written against it imports them from here,
#: so they stay importable (they are not part of ``__all__``).
_PYOP3_IMPORTED_NAMES = (
    AccessTokenRequest, AccessTokenResponse, AuthorizationError, AuthorizationResponse,
    EndSessionRequest, EndSessionResponse, IdToken, InvalidAccessToken,
    InvalidAuthorizationCode, InvalidTokenRequest, OAuthError, OpenIDSchema,
    ProviderConfigurationResponse, RefreshAccessTokenRequest, RegistrationRequest,
    RegistrationResponse, authorization_request_verify, client_id_is_known,
    client_preferences_match_provider_capabilities, extract_bearer_token_from_http_request,
    find_common_values, redirect_uri_is_in_registered_redirect_uris,
    registration_request_verify, requested_scope_is_supported,
    response_type_is_in_registered_response_types,
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
SCOPE_CLAIMS = _SCOPE_CLAIMS


class _Shared:
    """A provider attribute kept by one of its services: reads and writes go there, so
    that the endpoints see what the host sets."""

    def __init__(self, service: Optional[str], name: str) -> None:
        self.service = service
        self.name = name
        # one C call for the read (the attribute chain resolved on every access)
        path = f"_context.{name}" if service is None else f"_context.{service}.{name}"
        self._read = operator.attrgetter(path)

    def _owner(self, provider: Provider) -> Any:
        context = provider._context
        return context if self.service is None else getattr(context, self.service)

    def __get__(self, provider: Optional[Provider], owner: Any = None) -> Any:
        if provider is None:
            return self
        return self._read(provider)

    def __set__(self, provider: Provider, value: Any) -> None:
        setattr(self._owner(provider), self.name, value)


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
    :param client_assertion_audiences: what the ``aud`` of a client assertion may be
        (``private_key_jwt``, ``client_secret_jwt``). ``"issuer"`` (default): the issuer
        identifier as a single string (RFC 7523bis: an assertion a client made for another
        server's metadata cannot be replayed here). ``"issuer-or-endpoint"``: also the
        token endpoint URL or the URL of the endpoint called, or an array containing one
        of these (RFC 7523 3, OIDC Core 9; what Authlib and pyoidc send by default).
    :param max_client_keys: the most keys a client's JWK Set (``jwks`` or ``jwks_uri``)
        may hold (default 20): registration refuses more, and of a larger set only the
        first ones are used.
    :param max_request_object_lifetime: request objects whose ``exp`` is more than this
        many seconds ahead are refused (default 3600; RFC 9101 10.8).
    :param require_request_object_claims: signed request objects must carry ``iss``,
        ``aud`` and ``exp`` (default; RFC 9101 10.8). False: checked only when present
        (e.g. for pyoidc-made request objects, which carry none).

    :param registration_limits: bounds on the metadata of registration and update
        requests (:class:`~pyop.registration.RegistrationLimits`; default: 16 KiB of
        JSON, strings of 2048 characters, 20 items per array, 10 ``contacts``).
    :param registration_policy: ``policy(metadata, http_headers)``, called for each
        registration and update request before its metadata is verified; raises
        :class:`~pyop.exceptions.InvalidClientRegistrationRequest` to refuse it (see
        :doc:`registration`).
    :param initial_access_tokens: registration requires one of these bearer tokens
        (RFC 7591 3): a collection of tokens, compared in constant time, or
        ``accepts(token) -> bool``. None (default): open registration, as in pyop 3.
    :param registered_client_lifetime: seconds a dynamically registered client lives,
        ``client_secret_expires_at`` included; an expired client is unknown and removed
        when next asked for. 0 (default, as pyop 3): never expires.

    :param refresh_token_requires_registered_grant: issue refresh tokens only to clients
        whose registered ``grant_types`` list ``refresh_token`` (omitted ``grant_types``
        count as OIDC Dynamic Registration 2's default ``["authorization_code"]``). Off by
        default: clients without ``grant_types`` get them, as with pyop 3; a client whose
        ``grant_types`` omit ``refresh_token`` never does (RFC 7591 2).
    :param refresh_token_requires_offline_access: issue refresh tokens only for grants of
        the ``offline_access`` scope (OIDC Core 11; honoured with ``prompt=consent``).
        Off by default, as pyop 3.
    :param userinfo_token_in_query: accept the access token as an ``access_token`` URL
        query parameter at UserInfo (RFC 6750 2.3), as pyop 3 did. Off by default: RFC
        9700 4.3.2 forbids clients to send it there (browser history, logs). The header
        (RFC 6750 2.1) and the form body of a POST (2.2) are always accepted; see
        :meth:`handle_userinfo_request` for how the body is told from the query.

    :param id_token_sid: put the login session's ``sid`` in every ID token of a grant with a
        session (see :meth:`authorize`), not only in those of the clients that registered
        ``frontchannel_logout_session_required`` or ``backchannel_logout_session_required``.
        Off by default (pyop 3 issued no ``sid``).
    :param session_lifetime: seconds after its last authorization during which a login
        session's (or a ``sub``'s) clients with a logout URI are remembered, to be notified
        at logout (default 86400).
    :param logout_token_lifetime: seconds a back-channel Logout Token is valid (``exp``,
        default 120; Back-Channel Logout 1.0 2.4).
    :param prompt_create: accept ``prompt=create`` (OpenID Connect Initiating User
        Registration 1.0) and list it in ``prompt_values_supported``. Off by default (a
        request with it is refused as an unknown prompt value, as before).
    :param outbound_fetcher: the :class:`~pyop.outbound.GuardedFetcher` making every request
        to a URL a client registered (``jwks_uri``, ``sector_identifier_uri``): https only,
        public addresses only, no redirects, no proxy from the environment, a total
        deadline and a size cap. Default ``GuardedFetcher()`` (5 seconds, 64 KiB); pass one
        to change its deadline, size cap, allowed networks (an intranet, a test server on
        loopback) or proxy. See :doc:`security`.

    :param require_pushed_authorization_requests: the authorization endpoint accepts only
        ``request_uri`` values of pushed authorization requests (RFC 9126 4, 5; see
        :meth:`handle_pushed_authorization_request`), for every client; published in
        discovery. Off by default: a client requires it for itself with the metadata of
        the same name (RFC 9126 6). Needs a ``pushed_authorization_request_endpoint`` in
        the configuration.

    :param backchannel_logout_delivery: who POSTs the back-channel Logout Tokens of a logout
        (Back-Channel Logout 1.0 2.5) when ``backchannel_logout_supported`` is advertised.
        ``"deliver"`` (default): pyop does, through :attr:`outbound_fetcher` (a
        :class:`~pyop.logout_notifications.BackChannelSender`: concurrent POSTs, 5 seconds
        in total, two attempts), and :meth:`logout_user` reports each delivery;
        ``"return"``: nobody, the host delivers the requests of the
        :class:`~pyop.logout_notifications.LogoutResult` (e.g. from its own queue). Sets
        the initial :attr:`backchannel_logout_sender`. See :doc:`logout`.

    :param bind_tokens_to_client_certificates: bind every access token issued to a token
        request made over mutual TLS (``client_certificate=``) to that certificate (``cnf``
        ``x5t#S256``, RFC 8705 3), unless the client registered
        ``tls_client_certificate_bound_access_tokens: false``; discovery then publishes
        ``tls_client_certificate_bound_access_tokens: true``. Off by default: only the
        clients that registered ``tls_client_certificate_bound_access_tokens: true`` get
        bound tokens.
    :param require_signed_request_object: every authorization request must be a request
        object signed by the client (``request``, or one pushed, RFC 9126), never
        ``alg: none``; others are refused with ``invalid_request`` (RFC 9101 10.5).
        Published as ``require_signed_request_object: true``; needs
        ``request_parameter_supported``. Off by default; a client may require it for
        itself with the metadata of that name.
    :param authorization_response_lifetime: seconds a JARM response JWT is valid (``exp``,
        default and most 600; JARM 2.1). JARM is offered when ``response_modes_supported``
        lists ``jwt``, ``query.jwt``, ``fragment.jwt`` or ``form_post.jwt``.
    :param dpop_proof_lifetime: seconds a DPoP proof is accepted after its ``iat``
        (default 60; RFC 9449 11.1). DPoP itself is enabled by the metadata member
        ``dpop_signing_alg_values_supported`` (see :doc:`fapi`).
    :param dpop_clock_skew: seconds a DPoP proof's ``iat`` may be ahead of the clock
        (default 5).
    :param dpop_nonces: require server nonces in DPoP proofs (RFC 9449 8, 9): a
        :class:`~pyop.dpop.DPoPNonceProvider`, or True for
        :class:`~pyop.dpop.TimeBasedDPoPNonces` with a random per-process secret (one
        worker only; give several workers one made with a shared secret). None (default):
        no nonces.
    :param profile: a security profile that sets and enforces a set of options: ``"fapi2"``
        for the FAPI 2.0 Security Profile (section 5: pushed requests, PKCE S256,
        ``private_key_jwt`` or mutual TLS clients, sender-constrained tokens, code flow
        only, codes of at most 60 seconds, PS256/ES256/EdDSA; see :doc:`fapi`). None
        (default): no profile.
    :raises InvalidConfiguration: the configuration is invalid; the message names the field."""

    #: The :class:`~pyop.authz_state.AuthorizationState`.
    authz_state = _Shared(None, "authz_state")
    #: The :class:`~pyop.userinfo.Userinfo` claims source.
    userinfo = _Shared(None, "userinfo")
    #: Returns the current UNIX time.
    clock = _Shared(None, "clock")
    #: Runs code redemptions concurrently with the ID token signature (or None).
    executor = _Shared(None, "executor")
    #: Verifies ``client_secret_jwt`` / ``private_key_jwt`` assertions (RFC 7523).
    client_assertion_verifier = _Shared(None, "client_assertion_verifier")
    #: ``check(request)`` functions run on every parsed authentication request.
    authentication_request_validators = _Shared(None, "authentication_request_validators")
    #: ``check(request)`` functions run on every registration request.
    registration_request_validators = _Shared(None, "registration_request_validators")
    #: ``grant_type -> handler(ctx, request)`` of the token endpoint (see :mod:`pyop.grants`).
    grant_handlers = _Shared(None, "grant_handlers")
    #: The clients: a mapping ``client_id -> metadata`` (a dict or a pyop storage).
    clients = _Shared("clients", "store")
    #: Fetches a client's ``jwks_uri`` document for request objects and assertions
    #: (default: :attr:`outbound_fetcher`'s ``get_json``).
    jwks_fetcher = _Shared("client_keys", "fetcher")
    #: The :class:`~pyop.outbound.GuardedFetcher` given as ``outbound_fetcher``.
    outbound_fetcher = _Shared(None, "outbound")
    _jwks_cache = _Shared("client_keys", "cache")
    #: The most keys of a client's JWK Set that registration accepts and that are used.
    max_client_keys = _Shared("client_keys", "max_keys")
    #: The provider metadata (OIDC Discovery 3), defaults included; may be updated.
    configuration_information = _Shared("configuration", "metadata")
    #: ID token lifetime in seconds.
    id_token_lifetime = _Shared("configuration", "id_token_lifetime")
    #: ``scope -> list of claims`` for scopes beyond OIDC Core 5.4.
    extra_scopes = _Shared("configuration", "extra_scopes")
    #: ``"request"`` or ``"registration"``: see the constructor.
    pairwise_sector_from = _Shared("configuration", "pairwise_sector_from")
    #: Release only the claims of ``claims_supported`` (when published).
    limit_claims_to_claims_supported = _Shared("configuration",
                                               "limit_claims_to_claims_supported")
    #: The PKCE methods accepted (RFC 7636 4.3).
    code_challenge_methods = _Shared("configuration", "code_challenge_methods")
    #: Limit on a request body or query string, in characters.
    max_request_size = _Shared("configuration", "max_request_size")
    #: Accept request objects with ``alg: none``.
    allow_unsigned_request_objects = _Shared("configuration", "allow_unsigned_request_objects")
    #: Registration stores hashed client secrets.
    hash_client_secrets = _Shared("configuration", "hash_client_secrets")
    #: Refuse registrations listing unsupported preferences.
    strict_client_preferences = _Shared("configuration", "strict_client_preferences")
    #: Delivers back-channel Logout Tokens at logout: ``sender(requests) -> results``, e.g.
    #: a :class:`~pyop.logout_notifications.BackChannelSender`. Default: a
    #: ``BackChannelSender`` POSTing through :attr:`outbound_fetcher`
    #: (``backchannel_logout_delivery="deliver"``); None (``"return"``): the requests are
    #: in the :class:`~pyop.logout_notifications.LogoutResult` for the host.
    backchannel_logout_sender = _Shared(None, "backchannel_logout_sender")
    #: ``aud`` of ID tokens as the client_id string instead of ``[client_id]``.
    id_token_aud_as_string = _Shared("configuration", "id_token_aud_as_string")
    #: Format of ``registration_client_uri`` (RFC 7592 3).
    registration_client_uri_template = _Shared("configuration",
                                               "registration_client_uri_template")
    #: Refresh tokens only for clients that registered the ``refresh_token`` grant.
    refresh_token_requires_registered_grant = _Shared(
        "configuration", "refresh_token_requires_registered_grant")
    #: Refresh tokens only for grants of the ``offline_access`` scope.
    refresh_token_requires_offline_access = _Shared(
        "configuration", "refresh_token_requires_offline_access")
    #: UserInfo accepts the access token in the URL query.
    userinfo_token_in_query = _Shared("configuration", "userinfo_token_in_query")

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
        client_assertion_audiences: str = "issuer",
        max_client_keys: int = DEFAULT_MAX_CLIENT_KEYS,
        max_request_object_lifetime: int = DEFAULT_MAX_REQUEST_OBJECT_LIFETIME,
        require_request_object_claims: bool = True,
        registration_limits: Optional[RegistrationLimits] = None,
        registration_policy: Optional[RegistrationPolicy] = None,
        initial_access_tokens: Optional[InitialAccessTokens] = None,
        registered_client_lifetime: int = 0,
        refresh_token_requires_registered_grant: bool = False,
        refresh_token_requires_offline_access: bool = False,
        userinfo_token_in_query: bool = False,
        id_token_sid: bool = False,
        session_lifetime: int = 86400,
        logout_token_lifetime: int = 120,
        prompt_create: bool = False,
        outbound_fetcher: Optional[GuardedFetcher] = None,
        require_pushed_authorization_requests: bool = False,
        backchannel_logout_delivery: str = "deliver",
        bind_tokens_to_client_certificates: bool = False,
        require_signed_request_object: bool = False,
        authorization_response_lifetime: int = DEFAULT_AUTHORIZATION_RESPONSE_LIFETIME,
        dpop_proof_lifetime: int = DEFAULT_PROOF_LIFETIME,
        dpop_clock_skew: int = DEFAULT_CLOCK_SKEW,
        dpop_nonces: Any = None,
        profile: Optional[str] = None,
    ) -> None:
        check_claims_source(userinfo)
        warn_unknown_configuration_keys(configuration_information)
        keys = KeySet(signing_key, signing_keys, published_keys, thumbprint_kids)
        self.signing_key = signing_key
        if profile not in PROFILES:
            raise InvalidConfiguration("profile: must be one of "
                                       + ", ".join(repr(name) for name in PROFILES))
        #: The security profile enforced (``"fapi2"``), or None.
        self.profile = profile
        if profile == FAPI2:
            configuration_information = fapi2_metadata(
                configuration_information, keys.signing_algs,
                allow_plain_pkce=allow_plain_pkce,
                client_assertion_audiences=client_assertion_audiences,
                authorization_code_lifetime=getattr(authz_state,
                                                    "authorization_code_lifetime", None),
                bind_tokens_to_client_certificates=bind_tokens_to_client_certificates,
                pushed_authorization_request_lifetime=getattr(
                    authz_state, "pushed_authorization_request_lifetime", None),
                signing_keys=keys.by_alg.values())
            require_pushed_authorization_requests = True
        clock = clock or getattr(authz_state, "clock", None) or time.time
        configuration = Configuration(
            configuration_information, keys.signing_algs, id_token_lifetime=id_token_lifetime,
            extra_scopes=extra_scopes, allow_plain_pkce=allow_plain_pkce,
            max_request_size=max_request_size,
            allow_unsigned_request_objects=allow_unsigned_request_objects,
            hash_client_secrets=hash_client_secrets, pairwise_sector_from=pairwise_sector_from,
            limit_claims_to_claims_supported=limit_claims_to_claims_supported,
            strict_client_preferences=strict_client_preferences,
            id_token_aud_as_string=id_token_aud_as_string,
            registration_client_uri_template=DEFAULT_REGISTRATION_CLIENT_URI_TEMPLATE,
            max_request_object_lifetime=max_request_object_lifetime,
            require_request_object_claims=require_request_object_claims,
            refresh_token_requires_registered_grant=refresh_token_requires_registered_grant,
            refresh_token_requires_offline_access=refresh_token_requires_offline_access,
            userinfo_token_in_query=userinfo_token_in_query,
            id_token_sid=id_token_sid, session_lifetime=session_lifetime,
            logout_token_lifetime=logout_token_lifetime, prompt_create=prompt_create,
            require_pushed_authorization_requests=require_pushed_authorization_requests,
            bind_tokens_to_client_certificates=bind_tokens_to_client_certificates,
            require_signed_request_object=require_signed_request_object,
            authorization_response_lifetime=authorization_response_lifetime)
        if client_assertion_audiences not in ASSERTION_AUDIENCES:
            raise InvalidConfiguration("client_assertion_audiences: must be one of "
                                       + ", ".join(ASSERTION_AUDIENCES))
        if (isinstance(max_client_keys, bool) or not isinstance(max_client_keys, int)
                or max_client_keys < 1):
            raise InvalidConfiguration("max_client_keys: must be a positive integer")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise InvalidConfiguration("executor: must be a concurrent.futures.Executor")
        if backchannel_logout_delivery not in ("deliver", "return"):
            raise InvalidConfiguration('backchannel_logout_delivery: must be "deliver" or '
                                       '"return"')
        if outbound_fetcher is None:
            outbound_fetcher = GuardedFetcher()
        elif not isinstance(outbound_fetcher, GuardedFetcher):
            raise InvalidConfiguration("outbound_fetcher: must be a pyop.outbound.GuardedFetcher")
        client_keys = ClientKeys(lambda: self.clock(), outbound_fetcher.get_json,
                                 max_keys=max_client_keys)
        registry = ClientRegistry(clients, lambda: self.clock(), client_cache_ttl,
                                  client_cache_size)
        self._context = ProviderContext(
            configuration=configuration, clock=clock, keys=keys, clients=registry,
            client_keys=client_keys, authz_state=authz_state, userinfo=userinfo,
            client_assertion_verifier=ClientAssertionVerifier(
                _replay_store(authz_state, client_assertion_replay_store),
                lambda client_id, client, refetch: client_keys.jwks(client_id, client,
                                                                    refetch=refetch),
                max_lifetime=max_client_assertion_lifetime,
                allowed_algs=lambda: configuration.client_assertion_signing_algs,
                audience_policy=client_assertion_audiences),
            executor=executor, grant_handlers=DEFAULT_GRANT_HANDLERS, outbound=outbound_fetcher)
        if backchannel_logout_delivery == "deliver":
            # through the fetcher of the moment: a host replacing outbound_fetcher keeps this
            self._context.backchannel_logout_sender = BackChannelSender(
                lambda uri, form, timeout: self._context.outbound.post_form(
                    uri, form, timeout=timeout).status)
        # endpoints report client changes through client_changed (which hosts may wrap)
        self._context.client_changed = lambda client_id: self.client_changed(client_id)
        #: Fetches a sector_identifier_uri document (replace to add caching or policies).
        self.sector_identifier_fetcher: Callable[[str], Any] = outbound_fetcher.get_json
        self.authentication_request_validators = [
            functools.partial(check, provider=self) for check in DEFAULT_AUTHENTICATION_CHECKS]
        self.registration_request_validators = [
            functools.partial(check, provider=self) for check in DEFAULT_REGISTRATION_CHECKS]
        if profile == FAPI2:
            install_fapi2_validators(self._context)
        if dpop_nonces is True:
            dpop_nonces = TimeBasedDPoPNonces(clock=lambda: self.clock())
        try:
            self._context.dpop = DPoPSettings(
                lambda: configuration.metadata.get("dpop_signing_alg_values_supported"),
                replay_store=_replay_store(authz_state, client_assertion_replay_store),
                proof_lifetime=dpop_proof_lifetime, clock_skew=dpop_clock_skew,
                nonces=dpop_nonces or None)
        except ValueError as e:
            raise InvalidConfiguration(str(e)) from e
        self._context.registration = RegistrationSettings(
            registration_limits or RegistrationLimits(), registration_policy,
            initial_access_tokens, registered_client_lifetime)

    # -- configuration and keys (OIDC Discovery 3, RFC 7517) -------------------------------------

    @property
    def _signing_key(self) -> Any:
        return self._context.keys.active

    @property
    def issuer(self) -> str:
        """The issuer identifier."""
        return self._context.issuer

    @property
    def provider_configuration(self) -> ProviderConfigurationResponse:
        """The verified provider metadata to publish at ``/.well-known/openid-configuration``.

        Reflects later changes to :attr:`configuration_information`. With an
        ``introspection_endpoint`` or ``revocation_endpoint``, the client
        authentication methods (and assertion algorithms) those endpoints accept are
        published unless configured: they are the token endpoint's, without ``none``
        for introspection (RFC 8414 2 -- omitted, a client would assume
        ``client_secret_basic`` only)."""
        return self._context.configuration.discovery_document()

    @property
    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set to publish at ``jwks_uri`` (RFC 7517 5): public keys only.

        The active signing key first, then the other ``signing_keys``, then the
        ``published_keys``. A key given as a pyjwkest key or JWK is published as given
        (a single ``jwkest.jwk.RSAKey`` gives exactly its ``serialize()``, as in pyop 3),
        a ``cryptography`` key with ``use: "sig"`` and its ``alg``; each with its
        ``kid`` if it has one (see ``thumbprint_kids``)."""
        return self._context.keys.jwks()

    @property
    def signing_algs(self) -> list[str]:
        """The JWS algs the provider can sign with (one key each), the active key's first."""
        return self._context.keys.signing_algs

    @property
    def grant_types_supported(self) -> list[str]:
        """Grant types accepted at the token endpoint and in registrations."""
        return self._context.grant_types_supported()

    @property
    def client_assertion_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for client assertions (never ``none``)."""
        return self._context.configuration.client_assertion_signing_algs

    @property
    def request_parameter_supported(self) -> bool:
        """Whether request objects passed by value are accepted (OIDC Core 6.1)."""
        return self._context.configuration.request_parameter_supported

    @property
    def request_object_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for request objects (``none`` only if allowed)."""
        return self._context.configuration.request_object_signing_algs

    def allowed_scopes(self) -> set[str]:
        """Scope values granted when requested: those advertised, the standard ones of OIDC
        Core 5.4 and those of ``extra_scopes`` (and ``offline_access`` with refresh tokens)."""
        return claims_policy.allowed_scopes(self._context)

    def verify_id_token_hint(self, id_token_hint: Any) -> Optional[dict[str, Any]]:
        """Claims of an ID token this provider issued (expired ones included), or None.

        OIDC Core 3.1.2.1 ``id_token_hint``; RP-Initiated Logout 1.0, 2."""
        return self._context.keys.verify_id_token_hint(id_token_hint, self.issuer)

    # -- clients ---------------------------------------------------------------------------------

    def get_client(self, client_id: Any) -> Optional[Mapping[str, Any]]:
        """The metadata of a registered client, or None.

        Within one ``parse_authentication_request``/``handle_token_request``
        call the client is read from storage once and reused. With
        ``client_cache_ttl``, a client read is reused for that many seconds."""
        return self._context.clients.get(client_id)

    def client_changed(self, client_id: str) -> None:
        """Forget this process's cached metadata of a client (``client_cache_ttl``).

        Registration, the RFC 7592 update and delete handlers and
        :meth:`rotate_client_secret` call it; a host that changes ``clients``
        directly calls it with the client id so this process sees the change at
        once. Other processes see it when their cache entry expires."""
        self._context.clients.changed(client_id)

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
            derive a sector identifier from."""
        client = self.get_client(client_id)
        if client is None:
            raise ValueError("unknown client")
        return claims_policy.subject_identifier(self._context, client, user_id, redirect_uri)

    # -- authentication requests (OIDC Core 3.1.2) -----------------------------------------------

    def parse_authentication_request(self, request_body: Any,
                                     http_headers: Optional[Any] = None) -> AuthorizationRequest:
        """Parse and validate an authentication request (OIDC Core 3.1.2.1-3.1.2.2);
        ``http_headers`` is unused. A ``request_uri`` of a pushed request (RFC 9126 4) is
        taken once, for the client that pushed it; its parameters are the request's.

        Details: :func:`pyop.endpoints.authorization.parse_authentication_request`."""
        return authorization.parse_authentication_request(self._context, request_body)

    def handle_pushed_authorization_request(self, request_body: Any,
                                            http_headers: Optional[Any] = None, *,
                                            client_certificate: Optional[
                                                Union[str, bytes]] = None,
                                            http_method: Optional[str] = None,
                                            http_url: Optional[str] = None
                                            ) -> PushedAuthorizationResponse:
        """Handle a pushed authorization request (RFC 9126 2): authenticate the client as
        at the token endpoint, validate the parameters as an authentication request,
        keep them, and answer with their ``request_uri`` and ``expires_in``. Send the
        result with status ``response.http_status`` (201), ``Content-Type:
        application/json`` and ``Cache-Control: no-store``; errors with their
        ``http_status`` (400, or 401 for ``invalid_client``) and ``to_json()``. The host
        answers 405 for a method other than POST, 413 and 429 itself (RFC 9126 2.3).
        ``client_certificate``: the client certificate of a mutual TLS connection (PEM or
        DER), for ``tls_client_auth`` and ``self_signed_tls_client_auth`` (RFC 8705 2).
        ``http_method``/``http_url``: the request as the client made it, what a ``DPoP``
        proof sent here must name; the pushed request is then bound to the proof's key
        (RFC 9449 10.1; errors: :class:`~pyop.exceptions.InvalidDPoPProof` with
        ``error.headers``).

        Details: :func:`pyop.endpoints.pushed_authorization.handle_pushed_authorization_request`."""
        return pushed_authorization.handle_pushed_authorization_request(
            self._context, request_body, http_headers, client_certificate=client_certificate,
            http_method=http_method, http_url=http_url)

    def create_authentication_error(self, authentication_request: Mapping[str, Any],
                                    oauth_error: str, description: str = ""
                                    ) -> InvalidAuthenticationRequest:
        """A redirectable error for a request this provider validated.

        Details: :func:`pyop.endpoints.authorization.create_authentication_error`."""
        return authorization.create_authentication_error(
            self._context, authentication_request, oauth_error, description)

    def requires_authentication(self, authentication_request: Mapping[str, Any],
                                auth_time: Optional[float], *,
                                user_id: Optional[str] = None) -> bool:
        """Whether the end-user must (re-)authenticate: ``prompt=login``, ``max_age=0``,
        ``max_age`` (or the client's ``default_max_age``) passed, or, with ``user_id``, an
        ``id_token_hint`` naming another end-user.

        Details: :func:`pyop.endpoints.authorization.requires_authentication`."""
        return authorization.requires_authentication(self._context, authentication_request,
                                                     auth_time, user_id=user_id)

    def requested_acr_values(self, authentication_request: Mapping[str, Any]
                             ) -> authorization.RequestedAcr:
        """The acr values requested (``values``, in order of preference) and whether one of
        them must be achieved (``essential``), before the end-user authenticates (OIDC
        Core 3.1.2.1, 5.5.1.1).

        Details: :func:`pyop.endpoints.authorization.requested_acr_values`."""
        return authorization.requested_acr_values(self._context, authentication_request)

    def hint_matches_user(self, authentication_request: Mapping[str, Any],
                          user_id: str) -> bool:
        """Whether the request's ``id_token_hint`` names ``user_id`` (True without a hint;
        OIDC Core 3.1.2.1).

        Details: :func:`pyop.endpoints.authorization.hint_matches_user`."""
        return authorization.hint_matches_user(self._context, authentication_request, user_id)

    def authorize(self, authentication_request: Mapping[str, Any], user_id: str,
                  extra_id_token_claims: ExtraClaims = None, *,
                  auth_time: Optional[float] = None, acr: Optional[str] = None,
                  amr: Optional[Iterable[str]] = None,
                  session_id: Optional[str] = None) -> AuthorizationResponse:
        """Issue the authentication response for an authenticated end-user.

        ``session_id``: the host's login session the grant belongs to (see
        :meth:`new_session_id`); the session used is ``response.session_id``.

        Details: :func:`pyop.endpoints.authorization.authorize`."""
        return authorization.authorize(self._context, authentication_request, user_id,
                                       extra_id_token_claims, auth_time=auth_time, acr=acr,
                                       amr=amr, session_id=session_id)

    @staticmethod
    def new_session_id() -> str:
        """A new login session identifier (``sid``; Front-Channel Logout 1.0 3) for the
        host to keep in its session and pass to :meth:`authorize` and :meth:`logout_user`."""
        return new_session_id()

    def requested_prompts(self, authentication_request: Mapping[str, Any]) -> frozenset[str]:
        """The ``prompt`` values of a parsed request (OIDC Core 3.1.2.1), ``create`` included
        when ``prompt_create`` is on (Initiating User Registration 1.0): the host shows its
        sign-up page for ``create`` as it shows its login page for ``login``.

        Details: :func:`pyop.endpoints.authorization.requested_prompts`."""
        return authorization.requested_prompts(authentication_request)

    # -- token endpoint, introspection, revocation (RFC 6749, 7662, 7009) ------------------------

    def handle_token_request(self, request_body: Any, http_headers: Optional[Any] = None,
                             extra_id_token_claims: ExtraClaims = None, *,
                             http_method: Optional[str] = None,
                             http_url: Optional[str] = None,
                             client_certificate: Optional[Union[str, bytes]] = None
                             ) -> AccessTokenResponse:
        """Handle a token request: ``authorization_code``, ``refresh_token`` or
        ``client_credentials`` grant (RFC 6749 4.1.3, 6, 4.4). Send the result with
        ``Cache-Control: no-store`` (RFC 6749 5.1). ``client_certificate``: the client
        certificate of a mutual TLS connection, as the host's TLS layer verified it (PEM
        text or DER bytes; RFC 8705).

        ``http_method`` and ``http_url`` describe the request for DPoP proofs (RFC 9449
        4.3; default ``POST`` and the ``token_endpoint`` metadata).

        Details: :func:`pyop.endpoints.token.handle_token_request`."""
        return token.handle_token_request(self._context, request_body, http_headers,
                                          extra_id_token_claims, http_method=http_method,
                                          http_url=http_url,
                                          client_certificate=client_certificate)

    def handle_introspection_request(self, request_body: Any, http_headers: Optional[Any] = None,
                                     *, client_certificate: Optional[Union[str, bytes]] = None
                                     ) -> TokenIntrospectionResponse:
        """Answer a token introspection request (RFC 7662); ``client_certificate`` as for
        :meth:`handle_token_request`.

        Details: :func:`pyop.endpoints.token_management.handle_introspection_request`."""
        return token_management.handle_introspection_request(
            self._context, request_body, http_headers, client_certificate=client_certificate)

    def handle_revocation_request(self, request_body: Any,
                                  http_headers: Optional[Any] = None, *,
                                  client_certificate: Optional[Union[str, bytes]] = None
                                  ) -> None:
        """Handle a token revocation request (RFC 7009); answer 200 with an empty body;
        ``client_certificate`` as for :meth:`handle_token_request`.

        Details: :func:`pyop.endpoints.token_management.handle_revocation_request`."""
        token_management.handle_revocation_request(self._context, request_body, http_headers,
                                                   client_certificate=client_certificate)

    # -- UserInfo (OIDC Core 5.3) ----------------------------------------------------------------

    def handle_userinfo_request(self, request: Any = None,
                                http_headers: Optional[Any] = None, *,
                                http_method: Optional[str] = None,
                                http_url: Optional[str] = None,
                                client_certificate: Optional[Union[str, bytes]] = None
                                ) -> UserinfoResponse:
        """Answer a UserInfo request with the claims the access token was granted.

        ``request`` is the form body of a POST or the query string of a GET; an
        ``access_token`` in it counts as a form body parameter (RFC 6750 2.2) when
        ``http_method`` is ``"POST"`` or, without ``http_method``, when ``http_headers``
        has ``Content-Type: application/x-www-form-urlencoded``; otherwise it is a query
        parameter, refused unless ``userinfo_token_in_query``. ``http_method`` and
        ``http_url`` (default: the ``userinfo_endpoint`` metadata) are what a DPoP proof
        must name (RFC 9449 7). ``client_certificate``: the client certificate of a mutual
        TLS connection (PEM or DER), required for a certificate-bound access token (RFC
        8705 3). A token bound to both (``cnf`` with ``jkt`` and ``x5t#S256``) needs both.

        Details: :func:`pyop.endpoints.userinfo.handle_userinfo_request`."""
        return userinfo_endpoint.handle_userinfo_request(
            self._context, request, http_headers, http_method=http_method,
            http_url=http_url, client_certificate=client_certificate)

    def dpop_nonce(self) -> Optional[str]:
        """A server nonce for DPoP proofs to send in a ``DPoP-Nonce`` response header
        (RFC 9449 8.2, 9), or None when ``dpop_nonces`` is not configured."""
        return self._context.dpop.nonce()

    # -- registration (OIDC Dynamic Registration, RFC 7591, RFC 7592) ----------------------------

    def handle_client_registration_request(self, request: Any,
                                           http_headers: Optional[Any] = None
                                           ) -> RegistrationResponse:
        """Register a client (OIDC Dynamic Registration 3.1-3.2).

        Details: :func:`pyop.endpoints.registration.handle_client_registration_request`."""
        return registration.handle_client_registration_request(self._context, request,
                                                               http_headers)

    def match_client_preferences_with_provider_capabilities(
            self, client_preferences: Mapping[str, Any]) -> dict[str, Any]:
        """The client's metadata with its list-valued preferences narrowed to what the
        provider supports (OIDC Dynamic Registration 2, 3.2).

        Details: :func:`pyop.endpoints.registration.match_client_preferences`."""
        return registration.match_client_preferences(self._context, client_preferences)

    def handle_client_read_request(self, client_id: Any, http_headers: Optional[Any] = None
                                   ) -> RegistrationResponse:
        """Answer a client read request (RFC 7592 2.1; OIDC Dynamic Registration 4.2).

        Details: :func:`pyop.endpoints.registration.handle_client_read_request`."""
        return registration.handle_client_read_request(self._context, client_id, http_headers)

    def handle_client_update_request(self, client_id: Any, request_body: Any,
                                     http_headers: Optional[Any] = None, *,
                                     rotate_client_secret: bool = False,
                                     rotate_registration_access_token: bool = False
                                     ) -> RegistrationResponse:
        """Replace a client's metadata (RFC 7592 2.2).

        Details: :func:`pyop.endpoints.registration.handle_client_update_request`."""
        return registration.handle_client_update_request(
            self._context, client_id, request_body, http_headers,
            rotate_client_secret=rotate_client_secret,
            rotate_registration_access_token=rotate_registration_access_token)

    def handle_client_delete_request(self, client_id: Any,
                                     http_headers: Optional[Any] = None) -> None:
        """Delete a client (RFC 7592 2.3); the host answers 204 No Content.

        Details: :func:`pyop.endpoints.registration.handle_client_delete_request`."""
        registration.handle_client_delete_request(self._context, client_id, http_headers)

    def rotate_client_secret(self, client_id: str, *, expires_at: int = 0) -> str:
        """Issue a new secret to a client and return it; the old one stops working.

        Details: :func:`pyop.endpoints.registration.rotate_client_secret`."""
        return registration.rotate_client_secret(self._context, client_id,
                                                 expires_at=expires_at)

    # -- RP-Initiated Logout 1.0 -----------------------------------------------------------------

    def logout_user(self, subject_identifier: Optional[str] = None,
                    end_session_request: Optional[Mapping[str, Any]] = None, *,
                    session_id: Optional[str] = None,
                    revoke_offline: Optional[bool] = None) -> LogoutResult:
        """Log the end-user out at the provider (OIDC RP-Initiated Logout 1.0, 2): revoke
        the authorization codes, access tokens and refresh tokens issued for the ``sub`` so
        far (see :meth:`AuthorizationState.delete_state_for_subject_identifier
        <pyop.authz_state.AuthorizationState.delete_state_for_subject_identifier>`), or with
        ``session_id`` those of that login session only; then tell the clients
        (Back-Channel and Front-Channel Logout 1.0). Returns what was done (see
        :doc:`logout`).

        Details: :func:`pyop.endpoints.end_session.logout_user`."""
        return end_session.logout_user(self._context, subject_identifier, end_session_request,
                                       session_id=session_id, revoke_offline=revoke_offline)

    def do_post_logout_redirect(self, end_session_request: Mapping[str, Any], *,
                                confirmed: bool = False) -> Optional[str]:
        """The post-logout redirect URL, or None (OIDC RP-Initiated Logout 1.0, 3): to a
        registered URI of the client proven by the ``id_token_hint``; without a hint,
        of the client named by ``client_id`` only when the end-user ``confirmed`` it.

        Details: :func:`pyop.endpoints.end_session.do_post_logout_redirect`."""
        return end_session.do_post_logout_redirect(self._context, end_session_request,
                                                   confirmed=confirmed)

    def post_logout_redirect_client(self, end_session_request: Mapping[str, Any]
                                    ) -> Optional[str]:
        """The ``client_id`` whose registered ``post_logout_redirect_uri`` the logout
        request names, or None: for a "Return to <client>?" confirmation page.

        Details: :func:`pyop.endpoints.end_session.post_logout_redirect_client`."""
        return end_session.post_logout_redirect_client(self._context, end_session_request)

    def id_token_hint_matches(self, end_session_request: Mapping[str, Any],
                              user_id: Optional[str]) -> bool:
        """Whether the logout request's ``id_token_hint`` was issued for ``user_id``, the
        end-user logged in to the current session (OIDC RP-Initiated Logout 1.0, 2): if
        not, ask the end-user before logging out.

        Details: :func:`pyop.endpoints.end_session.id_token_hint_matches`."""
        return end_session.id_token_hint_matches(self._context, end_session_request, user_id)

    def parse_end_session_request(self, request_body: Any) -> EndSessionRequest:
        """Parse a logout request (query string, form body or mapping).

        Details: :func:`pyop.endpoints.end_session.parse_end_session_request`."""
        return end_session.parse_end_session_request(self._context, request_body)


def _replay_store(authz_state: AuthorizationState, given: Any) -> Any:
    """Where used client assertion ``jti`` are kept (RFC 7523 3): ``given``, else the
    authorization code storage, or, when that is sealed (stateless), its replay cache."""
    if given is not None:
        return given
    codes = authz_state.authorization_codes
    # sealed codes cannot hold records: their replay cache can (shared when configured)
    sealed = callable(getattr(codes, "seal", None))
    return getattr(codes, "replay_cache", codes) if sealed else codes
