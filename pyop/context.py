"""What the endpoints and grants share: the provider's services, handed over explicitly.

A :class:`ProviderContext` holds the configuration, the clock, the key set, the client
registry, the clients' keys, the authorization state and the userinfo source of one
provider. The endpoints (:mod:`pyop.endpoints`) and the grants (:mod:`pyop.grants`) read
what they need from it; none of them sees the :class:`~pyop.provider.Provider`.
Client authentication follows RFC 6749 2.3 and RFC 7523 3 (assertion audiences).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any, Callable, Optional

from .authz_state import AuthorizationState
from .client_assertion import ClientAssertionVerifier
from .client_keys import ClientKeys
from .client_registry import ClientRegistry
from .configuration import Configuration
from .dpop import DPoPSettings
from .exceptions import InvalidTokenRequest
from .key_set import KeySet
from .outbound import GuardedFetcher
from .registration import RegistrationSettings
from .userinfo import Userinfo

__all__ = ["ProviderContext"]

logger = logging.getLogger(__name__)


class ProviderContext:
    """The services of one provider, and the host-replaceable parts they use.

    Every member may be replaced after construction (the provider's attributes of the
    same names read and write them here).
    """

    def __init__(self, *, configuration: Configuration, clock: Callable[[], float],
                 keys: KeySet, clients: ClientRegistry, client_keys: ClientKeys,
                 authz_state: AuthorizationState, userinfo: Userinfo,
                 client_assertion_verifier: ClientAssertionVerifier,
                 executor: Optional[Executor] = None,
                 grant_handlers: Optional[Mapping[str, Callable[..., Any]]] = None,
                 outbound: Optional[GuardedFetcher] = None) -> None:
        self.configuration = configuration
        self.clock = clock
        self.keys = keys
        self.clients = clients
        self.client_keys = client_keys
        self.authz_state = authz_state
        self.userinfo = userinfo
        self.client_assertion_verifier = client_assertion_verifier
        self.executor = executor
        #: ``grant_type -> handler`` of the token endpoint (see :mod:`pyop.grants`).
        self.grant_handlers: dict[str, Callable[..., Any]] = dict(grant_handlers or {})
        #: Checks of a parsed authentication request: ``check(request)``, raising.
        self.authentication_request_validators: list[Callable[[Any], None]] = []
        #: Checks of a registration request: ``check(request)``, raising.
        self.registration_request_validators: list[Callable[[Any], None]] = []
        #: Checks of an authenticated client at the token, PAR, introspection and
        #: revocation endpoints: ``check(client_id, client)``, raising.
        self.client_authentication_validators: list[Callable[[str, Mapping[str, Any]],
                                                             None]] = []
        #: Checks of a token request once the client is authenticated and the tokens'
        #: confirmation (``cnf``, or None) known: ``check(client, parameters, cnf)``, raising.
        self.token_request_validators: list[Callable[..., None]] = []
        #: Called with a client_id whenever the provider changed that client's metadata.
        self.client_changed: Callable[[str], None] = clients.changed
        #: Makes every request to a URL a client registered (:mod:`pyop.outbound`).
        self.outbound: GuardedFetcher = outbound if outbound is not None else GuardedFetcher()
        #: Bounds, policy and credentials of dynamic registration (RFC 7591 3).
        self.registration = RegistrationSettings()
        #: Delivers back-channel Logout Tokens (``sender(requests) -> results``), or None:
        #: the requests are handed to the host (see :mod:`pyop.logout_notifications`).
        self.backchannel_logout_sender: Optional[Callable[[Any], Any]] = None
        #: DPoP (RFC 9449): accepted algorithms, proof window, replay store, nonces.
        self.dpop = DPoPSettings()

    def now(self) -> int:
        """The current UNIX time, in whole seconds."""
        return int(self.clock())

    @property
    def issuer(self) -> str:
        """The issuer identifier."""
        return self.configuration.issuer

    def grant_types_supported(self) -> list[str]:
        """Grant types accepted at the token endpoint and in registrations."""
        return self.configuration.grant_types_supported(self.authz_state.issues_refresh_tokens)

    def client(self, client_id: str) -> Mapping[str, Any]:
        """The client's metadata.

        :raises InvalidTokenRequest: ``invalid_client``: unknown client.
        """
        client = self.clients.get(client_id)
        if client is None:
            raise InvalidTokenRequest("unknown client", oauth_error="invalid_client")
        return client

    def authenticate_client(self, parameters: Mapping[str, Any], http_headers: Optional[Any],
                            endpoint: Optional[str] = None, *,
                            client_certificate: Any = None) -> tuple[str, Mapping[str, Any]]:
        """Authenticate the client of a request at the token, introspection or revocation
        endpoint. A client assertion's ``aud`` must be the issuer (RFC 7523bis); with the
        verifier's ``audience_policy`` ``"issuer-or-endpoint"`` it may also name the token
        endpoint or (``endpoint``) the endpoint called (RFC 7523 3, OIDC Core 9).
        ``client_certificate``: the certificate of a mutual TLS connection (PEM, DER or a
        :class:`~pyop.client_certificate.ClientCertificate`; RFC 8705 2).

        :raises InvalidClientAuthentication: 401 ``invalid_client``.
        """
        assertion = "client_assertion" in parameters or "client_assertion_type" in parameters
        # the audiences matter to a client assertion only
        audiences = [self.issuer] if assertion else []
        if (assertion and getattr(self.client_assertion_verifier, "audience_policy",
                                  "issuer") != "issuer"):
            metadata = self.configuration.metadata
            # the endpoint's mutual TLS alias too (RFC 8705 5)
            aliases = metadata.get("mtls_endpoint_aliases")
            for name in ("token_endpoint", endpoint):
                for source in (metadata, aliases if isinstance(aliases, Mapping) else {}):
                    url = source.get(name) if name else None
                    if isinstance(url, str):
                        audiences.append(url)
        client_id, client = self.clients.authenticate(
            parameters, http_headers, now=self.now(),
            assertion_verifier=self.client_assertion_verifier, audiences=audiences,
            client_certificate=client_certificate, key_resolver=self._client_jwks)
        for check in self.client_authentication_validators:
            check(client_id, client)
        return client_id, client

    def _client_jwks(self, client_id: str, client: Mapping[str, Any], refetch: bool
                     ) -> tuple[Optional[list[dict[str, Any]]], bool]:
        """The client's registered keys (``self_signed_tls_client_auth``, RFC 8705 2.2)."""
        return self.client_keys.jwks(client_id, client, refetch=refetch)
