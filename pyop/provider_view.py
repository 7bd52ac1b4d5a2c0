"""What the request and registration checks read of the provider they are bound to.

The checks of :mod:`pyop.request_validator` (OIDC Core 3.1.2.2) and
:mod:`pyop.registration` (OIDC Dynamic Registration 2) are ``check(request, provider)``
functions, as in pyop 3. :class:`ProviderView` names the members they use, so that they
depend on this description and not on :mod:`pyop.provider`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional, Protocol

__all__ = ["ClientSource", "ProviderView"]

logger = logging.getLogger(__name__)


class ClientSource(Protocol):
    """Where a check finds clients."""

    def get_client(self, client_id: Any) -> Optional[Mapping[str, Any]]:
        """The metadata of a registered client, or None."""


class ProviderView(ClientSource, Protocol):
    """The provider as the checks see it (:class:`~pyop.provider.Provider` is one)."""

    #: The provider metadata (OIDC Discovery 3).
    configuration_information: Any
    #: The PKCE methods accepted (RFC 7636 4.3).
    code_challenge_methods: Any
    #: Registration stores hashed client secrets.
    hash_client_secrets: Any
    #: Fetches a ``sector_identifier_uri`` document (OIDC Core 8.1).
    sector_identifier_fetcher: Callable[[str], Any]

    def allowed_scopes(self) -> set[str]:
        """Scope values granted when requested."""

    @property
    def grant_types_supported(self) -> list[str]:
        """Grant types accepted at the token endpoint and in registrations."""

    @property
    def client_assertion_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for client assertions."""

    @property
    def request_object_signing_algs(self) -> list[str]:
        """The JWS algorithms accepted for request objects."""

    @property
    def signing_algs(self) -> list[str]:
        """The JWS algs the provider can sign with."""
