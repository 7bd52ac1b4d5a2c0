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
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union, cast
from urllib.parse import urlsplit

from ._cache import TTLCache
from .access_token import extract_bearer_token_from_http_request, get_header
from .authz_state import AuthorizationState
from .client_authentication import (
    SUPPORTED_AUTH_METHODS,
    authenticate_client,
    hash_client_secret,
)
from .crypto import SUPPORTED_ALGS, SigningKey, b64url_encode
from .exceptions import (
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
    InvalidRequestError,
    InvalidScope,
    InvalidSubjectIdentifier,
    InvalidTokenRequest,
    InvalidUserinfoRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .id_token import create_id_token, verify_id_token_hint
from .message import (
    AccessTokenResponse,
    AuthorizationRequest,
    AuthorizationResponse,
    EndSessionRequest,
    EndSessionResponse,
    Message,
    OpenIDSchema,
    ProviderConfigurationResponse,
    RegistrationRequest,
    RegistrationResponse,
    TokenIntrospectionResponse,
)
from .registration import (
    DEFAULT_REGISTRATION_CHECKS,
    fetch_sector_identifier_uris,
    registration_defaults,
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
    check_client_id,
    check_redirect_uri,
)
from .userinfo import Userinfo
from .util import (
    DEFAULT_MAX_REQUEST_SIZE,
    claims_request_member,
    duplicated_parameters,
    is_https_or_loopback_http,
    is_utf8_encodable,
    parse_request_parameters,
    response_type_set,
    strict_json_loads,
)

__all__ = ["Provider", "SCOPE_CLAIMS"]

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

#: The client of the request being handled: (client_id, metadata), read from storage once.
_request_client: contextvars.ContextVar[Optional[tuple[str, Mapping[str, Any]]]] = (
    contextvars.ContextVar("pyop_request_client", default=None))

ExtraClaims = Union[None, Mapping[str, Any], Callable[[str, str], Optional[Mapping[str, Any]]]]

_DEFAULT_RESPONSE_MODES = ["query", "fragment"]

#: Seconds a client's jwks_uri document is reused; at most one refetch per
#: _JWKS_REFETCH_INTERVAL when a request object does not verify (key rotation).
_JWKS_CACHE_TTL = 300
_JWKS_REFETCH_INTERVAL = 30
_JWKS_CACHE_SIZE = 1024


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
    :param client_cache_ttl: seconds client metadata read from ``clients`` is reused
        in this process (off by default: every request reads the client). A change
        made by another process is seen after at most this many seconds.
    :param client_cache_size: how many clients the cache keeps (least recently used
        are dropped first).
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
        client_cache_ttl: Optional[float] = None,
        client_cache_size: int = 1024,
    ) -> None:
        try:
            self._signing_key = SigningKey.from_key(signing_key)
        except ValueError as e:
            raise InvalidConfiguration(f"signing_key: {e}") from e
        self.signing_key = signing_key
        self.authz_state = authz_state
        self.clients = clients
        self.userinfo = userinfo
        self.id_token_lifetime = id_token_lifetime
        self.extra_scopes: dict[str, list[str]] = {
            scope: list(claims) for scope, claims in (extra_scopes or {}).items()}
        self.code_challenge_methods = ("S256", "plain") if allow_plain_pkce else ("S256",)
        self.max_request_size = max_request_size
        self.allow_unsigned_request_objects = allow_unsigned_request_objects
        self.hash_client_secrets = hash_client_secrets
        self.clock: Callable[[], float] = clock or getattr(authz_state, "clock", None) or time.time
        #: Fetches a sector_identifier_uri document (replace to add caching or policies).
        self.sector_identifier_fetcher: Callable[[str], Any] = fetch_sector_identifier_uris
        #: Fetches a client's ``jwks_uri`` document for request objects (replace to use
        #: e.g. ``functools.partial(fetch_jwks, allow_private_addresses=True)`` or a proxy).
        self.jwks_fetcher: Callable[[str], Any] = fetch_jwks
        self._jwks_cache: dict[str, tuple[float, Optional[list[dict[str, Any]]]]] = {}
        self._jwks_cache_lock = threading.Lock()
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
        defaults: dict[str, Any] = {
            "jwks_uri": issuer.rstrip("/") + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self._signing_key.alg],
            "response_modes_supported": list(_DEFAULT_RESPONSE_MODES),
            "grant_types_supported": ["authorization_code", "implicit"],
            "token_endpoint_auth_methods_supported": list(SUPPORTED_AUTH_METHODS),
            "code_challenge_methods_supported": list(self.code_challenge_methods),
            "claims_parameter_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "require_request_uri_registration": False,
            "claim_types_supported": ["normal"],
            "authorization_response_iss_parameter_supported": True,
            "scopes_supported": ["openid"] + list(SCOPE_CLAIMS) + list(self.extra_scopes),
        }
        for name, value in defaults.items():
            if name not in config:
                config[name] = value
        if self.authz_state.issues_refresh_tokens and "refresh_token" not in config[
                "grant_types_supported"] and "grant_types_supported" not in given:
            config["grant_types_supported"] = config["grant_types_supported"] + ["refresh_token"]
        if config.get("request_uri_parameter_supported"):
            logger.warning("request_uri_parameter_supported: request objects by reference "
                           "are not implemented; advertising false")
            config["request_uri_parameter_supported"] = False
        self._check_request_object_algs(config)
        if self._signing_key.alg not in config["id_token_signing_alg_values_supported"]:
            raise InvalidConfiguration(
                "id_token_signing_alg_values_supported: must contain the signing key's alg "
                + self._signing_key.alg
                )
        if any("code" in response_type_set(rt) for rt in config["response_types_supported"]) \
                and not config.get("token_endpoint"):
            raise InvalidConfiguration(
                "token_endpoint: required when response_types_supported includes code")
        for subject_type in config["subject_types_supported"]:
            if subject_type not in ("public", "pairwise"):
                raise InvalidConfiguration(
                    f"subject_types_supported: unknown type {subject_type!r}")
        scopes = config.get("scopes_supported")
        if scopes is not None and "openid" not in scopes:
            raise InvalidConfiguration("scopes_supported: must contain openid")
        try:
            config.verify()
        except Exception as e:  # oic raises several unrelated types
            raise InvalidConfiguration(
                f"configuration_information: {str(e) or type(e).__name__}") from e
        return config

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

        Reflects later changes to :attr:`configuration_information`.
        """
        config = ProviderConfigurationResponse(**self.configuration_information.to_dict())
        config.verify()
        return config

    @property
    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set to publish at ``jwks_uri`` (RFC 7517 5): public keys only."""
        return {"keys": [self._signing_key.to_jwk()]}

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
        try:
            client = self.clients.get(client_id)
        except (TypeError, ValueError):
            return None
        if not isinstance(client, Mapping):
            return None
        if cache is not None:
            cache.put(client_id, client)
        return client

    def _client_changed(self, client_id: str) -> None:
        """Forget this process's cached metadata of a client (call on any change to it:
        registration, update, deletion)."""
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
        # client and redirect_uri verified: from here on errors may be redirected
        context = _error_context(parameters)
        try:
            duplicated = duplicated_parameters(parameters)
            if duplicated:
                raise InvalidAuthenticationRequest(
                    "repeated parameters: {}".format(", ".join(duplicated)[:200]), context)
            if "request" in parameters and self.request_parameter_supported:
                parameters = self._merge_request_object(parameters)
                context = _error_context(parameters)
            max_age = parameters.get("max_age")
            if max_age is not None and not (isinstance(max_age, str) and max_age.isascii()
                                            and max_age.isdigit() and len(max_age) <= 12):
                raise InvalidAuthenticationRequest("max_age must be a non-negative integer",
                                                   context)
            claims_param = parameters.get("claims")
            if isinstance(claims_param, str):
                try:
                    parameters["claims"] = strict_json_loads(claims_param)  # OIDC Core 5.5
                except ValueError as e:
                    raise InvalidAuthenticationRequest("claims is not valid JSON", context) from e
                if not isinstance(parameters["claims"], dict):
                    raise InvalidAuthenticationRequest("claims must be a JSON object", context)
            try:
                authn_req: AuthorizationRequest = AuthorizationRequest().from_dict(parameters)
            except Exception as e:  # oic raises many types for malformed values
                raise InvalidAuthenticationRequest(
                    f"malformed request: {type(e).__name__}", context) from e
            if not self.configuration_information.get("claims_parameter_supported", True) \
                    and "claims" in authn_req:
                del authn_req["claims"]
            scope = authn_req.get("scope") or []
            if "offline_access" in scope and "consent" not in (authn_req.get("prompt") or []):
                # OIDC Core 11: ignore offline_access unless consent is prompted for
                authn_req["scope"] = [s for s in scope if s != "offline_access"]
            for validator in self.authentication_request_validators:
                validator(authn_req)
            return authn_req
        except (InvalidClientId, InvalidRedirectURI):
            raise  # e.g. a request object's redirect_uri: never redirected
        except InvalidAuthenticationRequest as e:
            e.request = context
            e.redirect_uri_verified = True
            e.issuer = self.issuer
            logger.info("invalid authentication request: %s", e.oauth_error)
            raise

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

    def subject_identifier_for(self, client_id: str, user_id: str) -> str:
        """The ``sub`` a client sees for a user: public or pairwise per its registration.

        OIDC Core 8. Hosts use it e.g. to know which ``sub`` to log out.

        :raises ValueError: unknown client.
        """
        client = self.get_client(client_id)
        if client is None:
            raise ValueError("unknown client")
        return self._subject_identifier(client, user_id)

    def verify_id_token_hint(self, id_token_hint: Any) -> Optional[dict[str, Any]]:
        """Claims of an ID token this provider issued (expired ones included), or None.

        OIDC Core 3.1.2.1 ``id_token_hint``; RP-Initiated Logout 1.0, 2.
        """
        return verify_id_token_hint(id_token_hint, [self._signing_key], self.issuer)

    def _subject_identifier(self, client: Mapping[str, Any], user_id: str) -> str:
        subject_type = client.get("subject_type", "public")
        sector = None
        if subject_type == "pairwise":
            sector_uri = client.get("sector_identifier_uri")
            if isinstance(sector_uri, str):
                sector = urlsplit(sector_uri).hostname
            else:
                uris = client.get("redirect_uris") or []
                sector = urlsplit(uris[0]).hostname if uris else None
        return self.authz_state.get_subject_identifier(subject_type, user_id, sector)

    def _allowed_scopes(self) -> set[str]:
        allowed = set(self.configuration_information.get("scopes_supported") or [])
        allowed.update(self.extra_scopes)
        allowed.update(["openid", "offline_access"] if self.authz_state.issues_refresh_tokens
                       else ["openid"])
        return allowed

    def _granted_scope(self, authentication_request: Mapping[str, Any]) -> list[str]:
        allowed = self._allowed_scopes()
        return [s for s in authentication_request.get("scope") or [] if s in allowed]

    def _scope_claims(self, scope: Iterable[str]) -> dict[str, None]:
        claims: dict[str, None] = {}
        for value in scope:
            for claim in SCOPE_CLAIMS.get(value, ()) + tuple(self.extra_scopes.get(value, ())):
                claims[claim] = None
        return claims

    def _filter_supported(self, claims: dict[str, Any]) -> dict[str, Any]:
        supported = self.configuration_information.get("claims_supported")
        if not supported:
            return claims
        return {k: v for k, v in claims.items() if k in supported}

    def _user_claims(self, user_id: str, requested: Mapping[str, Any]) -> dict[str, Any]:
        requested = self._filter_supported(dict(requested))
        requested.pop("sub", None)
        if not requested:
            return {}
        return self.userinfo.get_claims_for(user_id, requested)

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
                  access_token: Optional[str] = None, code: Optional[str] = None) -> str:
        return create_id_token(
            self._signing_key, self.issuer, client_id, sub, now=self._now(),
            lifetime=self.id_token_lifetime, nonce=nonce, auth_time=auth_time, acr=acr,
            amr=list(amr) if amr is not None else None, access_token=access_token,
            authorization_code=code, claims=claims,
            extra_claims=self._extra_claims(extra, user_id, client_id))

    @staticmethod
    def _auth_time_required(authentication_request: Mapping[str, Any],
                            client: Mapping[str, Any]) -> bool:
        if "max_age" in authentication_request or client.get("require_auth_time"):
            return True
        requested = claims_request_member(authentication_request, "id_token").get("auth_time")
        return isinstance(requested, Mapping) and requested.get("essential") is True

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
            the request was parsed.
        :raises StorageError: the storage failed.
        """
        if not isinstance(authentication_request, Message):
            # e.g. the dict a host kept in its session: scope back to a list, claims parsed
            authentication_request = AuthorizationRequest().from_dict(
                dict(authentication_request))
        client_id = authentication_request["client_id"]
        client = self._client(client_id)
        response_types = response_type_set(authentication_request.get("response_type"))
        sub = self._subject_identifier(client, user_id)
        scope = self._granted_scope(authentication_request)
        auth_time_int = int(auth_time) if auth_time is not None else None
        if auth_time_int is None and self._auth_time_required(authentication_request, client):
            # OIDC Core 3.1.2.1, 5.5.1; Registration 2: auth_time is then REQUIRED in the
            # ID token. authorize() is called when the end-user has just authenticated.
            auth_time_int = self._now()

        response = AuthorizationResponse()
        code = None
        if "code" in response_types:
            extra: dict[str, Any] = {}
            if auth_time_int is not None:
                extra["auth_time"] = auth_time_int
            if acr is not None:
                extra["acr"] = acr
            if amr is not None:
                extra["amr"] = list(amr)
            if isinstance(extra_id_token_claims, Mapping):
                extra["extra_id_token_claims"] = dict(extra_id_token_claims)
            elif callable(extra_id_token_claims):
                claims_now = extra_id_token_claims(user_id, client_id)
                if claims_now:
                    extra["extra_id_token_claims"] = dict(claims_now)
            code = self.authz_state.create_authorization_code(
                cast(Message, authentication_request).to_dict(), sub, user_id, scope, extra)
            response["code"] = code
        access_token = None
        if "token" in response_types:
            access_token = self.authz_state.create_access_token(
                authentication_request, sub, user_id, scope)
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
                claims=self._user_claims(user_id, requested), extra=extra_id_token_claims,
                auth_time=auth_time_int, acr=acr, amr=amr,
                access_token=access_token.value if access_token else None, code=code)
        if "state" in authentication_request:
            response["state"] = authentication_request["state"]
        response["iss"] = self.issuer  # RFC 9207 2
        return response

    # -- token endpoint (RFC 6749 3.2, 4.1.3, 6; OIDC Core 3.1.3) -------------------------------

    def handle_token_request(self, request_body: Any, http_headers: Optional[Any] = None,
                             extra_id_token_claims: ExtraClaims = None) -> AccessTokenResponse:
        """Handle a token request: ``authorization_code`` or ``refresh_token`` grant.

        Send the result with ``Cache-Control: no-store`` (RFC 6749 5.1).

        :param request_body: the form-encoded body (str/bytes) or a mapping.
        :param http_headers: the request headers (any mapping; names are case-insensitive).
        :param extra_id_token_claims: a dict or ``(user_id, client_id) -> dict``.
        :raises InvalidClientAuthentication: 401 ``invalid_client``.
        :raises OAuthError: any other error (``invalid_grant``, ``invalid_request``...).
        """
        parameters = parse_request_parameters(request_body, self.max_request_size)
        duplicated = duplicated_parameters(parameters)
        if duplicated:
            raise InvalidTokenRequest("repeated parameters: {}".format(", ".join(duplicated)[:200]),
                                      oauth_error="invalid_request")
        client_id, client = authenticate_client(self._client_lookup, parameters, http_headers,
                                                now=self._now())
        grant_type = parameters.get("grant_type")
        if grant_type is None:
            raise InvalidTokenRequest("missing grant_type", oauth_error="invalid_request")
        if grant_type not in ("authorization_code", "refresh_token") or \
                grant_type not in self.grant_types_supported:
            raise UnsupportedGrantType("grant_type not supported")
        registered = client.get("grant_types")
        if registered is not None and grant_type not in registered:
            raise UnauthorizedClient("the client is not registered for this grant_type")
        if grant_type == "authorization_code":
            return self._do_code_exchange(parameters, client_id, client, extra_id_token_claims)
        return self._do_token_refresh(parameters, client_id, client)

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

    def _do_code_exchange(self, parameters: Mapping[str, Any], client_id: str,
                          client: Mapping[str, Any],
                          extra_id_token_claims: ExtraClaims) -> AccessTokenResponse:
        code = parameters.get("code")
        if not isinstance(code, str):
            raise InvalidTokenRequest("missing code", oauth_error="invalid_request")
        record = self.authz_state.get_authorization_code(code)
        if record.get("client_id") != client_id:
            raise InvalidAuthorizationCode("the code was issued to another client")
        auth_req = record.get("auth_req") or {}
        if not record.get("used"):
            if parameters.get("redirect_uri") != auth_req.get("redirect_uri"):
                raise InvalidAuthorizationCode(
                    "redirect_uri differs from the authorization request")
            self._check_pkce(auth_req, parameters.get("code_verifier"))
        access_token, refresh_token = self.authz_state.redeem_authorization_code(code, record)

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
        id_token = self._id_token(
            client_id=client_id, sub=record["sub"], user_id=user_id,
            nonce=auth_req.get("nonce"), claims=self._user_claims(user_id, requested),
            extra=extra, auth_time=record.get("auth_time"), acr=record.get("acr"),
            amr=record.get("amr"), access_token=access_token.value)
        response = AccessTokenResponse(access_token=access_token.value,
                                       token_type=access_token.type,
                                       expires_in=access_token.expires_in, id_token=id_token,
                                       scope=record["scope"])
        if refresh_token:
            response["refresh_token"] = refresh_token
        return response

    def _do_token_refresh(self, parameters: Mapping[str, Any], client_id: str,
                          client: Mapping[str, Any]) -> AccessTokenResponse:
        refresh_token = parameters.get("refresh_token")
        if not isinstance(refresh_token, str):
            raise InvalidTokenRequest("missing refresh_token", oauth_error="invalid_request")
        scope_param = parameters.get("scope")
        scope = scope_param.split() if isinstance(scope_param, str) else None
        if scope is not None and not scope:
            raise InvalidScope("empty scope")
        # refresh tokens of public clients are rotated on every use (RFC 9700 4.14.2)
        access_token, new_refresh, record = self.authz_state.use_refresh_token(
            refresh_token, client_id, scope,
            rotate=client.get("token_endpoint_auth_method") == "none")
        response = AccessTokenResponse(access_token=access_token.value,
                                       token_type=access_token.type,
                                       expires_in=access_token.expires_in)
        # the scope granted, computed as use_refresh_token did (never re-read: a concurrent
        # replay may already have revoked the new token)
        response["scope"] = " ".join(s for s in record["scope"].split()
                                     if scope is None or s in scope)
        if new_refresh:
            response["refresh_token"] = new_refresh
        return response

    # -- token introspection (RFC 7662) and revocation (RFC 7009) -------------------------------

    _TOKEN_TYPE_HINTS = ("access_token", "refresh_token")

    def _parse_token_management_request(self, request_body: Any, http_headers: Optional[Any],
                                        *, allow_public: bool) -> tuple[str, str, list[str]]:
        """Authenticate the client; return ``(client_id, token, token types to try)``."""
        parameters = parse_request_parameters(request_body, self.max_request_size)
        duplicated = duplicated_parameters(parameters)
        if duplicated:
            raise InvalidRequestError(
                "repeated parameters: {}".format(", ".join(duplicated)[:200]))
        client_id, client = authenticate_client(self._client_lookup, parameters, http_headers,
                                                now=self._now())
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
        return client_id, token, order

    def _token_record(self, token_type: str, token: str) -> Optional[dict[str, Any]]:
        """The unexpired record of a token of that type, or None."""
        if token_type == "access_token":
            try:
                return self.authz_state.introspect_access_token(token)
            except InvalidAccessToken:
                return None
        return self.authz_state.get_refresh_token(token)

    def handle_introspection_request(self, request_body: Any, http_headers: Optional[Any] = None
                                     ) -> TokenIntrospectionResponse:
        """Answer a token introspection request (RFC 7662).

        The caller must be a client authenticating as at the token endpoint; public
        clients (``none``) are refused. A token is active only if it is live and was
        issued to the calling client: any other token -- unknown, expired, revoked,
        rotated, or of another client -- gets ``{"active": false}``. Send the result's
        ``to_json()`` with ``Cache-Control: no-store``.

        :param request_body: the form-encoded body (``token``, optional
            ``token_type_hint``) as str/bytes, or a mapping.
        :param http_headers: the request headers (``Authorization: Basic ...``).
        :raises InvalidClientAuthentication: 401 ``invalid_client``.
        :raises InvalidRequestError: no ``token``, repeated parameters (400).
        """
        client_id, token, order = self._parse_token_management_request(
            request_body, http_headers, allow_public=False)
        for token_type in order:
            record = self._token_record(token_type, token)
            if record is None:
                continue
            if record.get("client_id") != client_id or record.get("rotated"):
                break
            return TokenIntrospectionResponse(
                active=True, scope=record.get("scope", ""), client_id=client_id,
                sub=record.get("sub"), exp=record.get("exp"), iat=record.get("iat"),
                token_type="Bearer" if token_type == "access_token" else "refresh_token",
                iss=self.issuer)
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
        client_id, token, order = self._parse_token_management_request(
            request_body, http_headers, allow_public=True)
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
                                http_headers: Optional[Any] = None) -> OpenIDSchema:
        """Answer a UserInfo request with the claims the access token was granted.

        :param request: the form body (POST) or query string (GET), possibly empty.
        :param http_headers: the request headers; ``Authorization: Bearer ...``.
        :raises BearerTokenError: no token (401 ``invalid_token``).
        :raises InvalidUserinfoRequest: token in several places, malformed request (400).
        :raises InvalidAccessToken: unknown, expired or revoked token (401).
        :raises InsufficientScope: the token lacks ``openid`` (403).
        """
        try:
            parameters = parse_request_parameters(request, self.max_request_size)
        except InvalidRequestError as e:
            raise InvalidUserinfoRequest(str(e)) from e
        token = extract_bearer_token_from_http_request(
            parameters, get_header(http_headers, "Authorization"))
        record = self.authz_state.introspect_access_token(token)
        if "openid" not in record.get("scope", "").split():
            raise InsufficientScope("the access token was not granted the openid scope")
        requested = self._scope_claims(record["scope"].split())
        requested.update(record.get("claims") or {})
        claims = self._user_claims(record["user_id"], requested)
        claims["sub"] = record["sub"]
        return OpenIDSchema(**claims)

    # -- Dynamic Client Registration (OIDC Dynamic Registration 3) -------------------------------

    def handle_client_registration_request(self, request: Any,
                                           http_headers: Optional[Any] = None
                                           ) -> RegistrationResponse:
        """Register a client (OIDC Dynamic Registration 3.1-3.2).

        :param request: the JSON body (str/bytes) or an already parsed dict.
        :raises InvalidClientRegistrationRequest: with ``to_json()`` for the 400 body.
        """
        metadata = self._parse_registration_body(request)
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
                    raise ValueError(f"{name} must be an array of strings")
            for name, value in registration_req.items():
                # single-valued string members: oic turns [x] into x without checking x
                spec = RegistrationRequest.c_param.get(name)
                if spec is not None and spec[0] is str and name != "jwks" \
                        and not isinstance(value, str):
                    raise ValueError(f"{name} must be a string")
            registration_req.verify()
        except InvalidClientRegistrationRequest:
            raise
        except Exception as e:  # oic raises many types for bad metadata
            raise InvalidClientRegistrationRequest(
                f"invalid client metadata: {str(e)[:200] or type(e).__name__}",
                metadata, oauth_error="invalid_client_metadata") from e
        for validator in self.registration_request_validators:
            validator(registration_req)

        client_id = secrets.token_urlsafe(16)
        while self.get_client(client_id) is not None:  # pragma: no cover - 128-bit collision
            client_id = secrets.token_urlsafe(16)
        # only registered metadata is kept: unknown members are ignored and the
        # credentials are the provider's to issue (OIDC Dynamic Registration 2, 3.2)
        client = {name: value for name, value in registration_req.to_dict().items()
                  if name in RegistrationRequest.c_param}
        client.update(registration_defaults(client))
        client["client_id"] = client_id
        client["client_id_issued_at"] = self._now()
        response = dict(client)
        if client["token_endpoint_auth_method"] != "none":
            client_secret = secrets.token_urlsafe(32)
            client["client_secret_expires_at"] = response["client_secret_expires_at"] = 0
            response["client_secret"] = client_secret  # returned once
            if self.hash_client_secrets:
                client["client_secret_hash"] = hash_client_secret(client_secret)
            else:
                client["client_secret"] = client_secret
        try:
            registration_response = RegistrationResponse(**response)
        except Exception as e:  # oic refuses a value: nothing is stored (no half-registration)
            raise InvalidClientRegistrationRequest(
                "invalid client metadata", metadata, oauth_error="invalid_client_metadata") from e
        self.clients[client_id] = client
        self._client_changed(client_id)
        logger.info("registered client %s", client_id)
        return registration_response

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
        """Forget the end-user's state at the provider (OIDC RP-Initiated Logout 1.0, 2).

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



