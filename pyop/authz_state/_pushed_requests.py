"""Pushed authorization requests of an authorization state (RFC 9126): kept until the
authorization endpoint takes them, once, for the client that pushed them.

A pushed request is a record ``{"token_type": "pushed_authorization_request",
"client_id", "iat", "exp", "parameters"}`` stored under a random key (256 bits from
:mod:`secrets`, RFC 9126 2.2 and 7.1), or, in a sealed (stateless) store, sealed into the
key itself: single use then goes through the store's replay cache. The ``request_uri`` is
:data:`REQUEST_URI_PREFIX` followed by that key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

from ._records import StateBase, is_sealed

__all__ = ["PushedRequests", "REQUEST_URI_PREFIX", "PUSHED_REQUEST",
           "DEFAULT_PUSHED_REQUEST_LIFETIME"]

logger = logging.getLogger(__name__)

#: The ``request_uri`` of a pushed request: this URN followed by its key (RFC 9126 2.2).
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
#: ``token_type`` of a pushed request record (unlike any code or token record).
PUSHED_REQUEST = "pushed_authorization_request"
#: Default seconds a pushed request can be used (RFC 9126 2.2 ``expires_in``; FAPI 2.0
#: Security Profile 5.3.2.2 asks for less than 600).
DEFAULT_PUSHED_REQUEST_LIFETIME = 60


class PushedRequests(StateBase):
    """Pushed authorization requests of :class:`~pyop.authz_state.AuthorizationState`
    (RFC 9126)."""

    pushed_authorization_requests: Any
    pushed_authorization_request_lifetime: int

    def push_authorization_request(self, client_id: str, parameters: Mapping[str, Any]
                                   ) -> tuple[str, int]:
        """Keep the validated parameters of a pushed authorization request; returns its
        ``request_uri`` and how many seconds it is valid (RFC 9126 2.2).

        :param parameters: the authorization request parameters (JSON values), request
            object members included; never the client's credentials.
        :raises SealedValueTooLarge: the request, sealed, would be longer than 4,096
            characters (sealed store only): a smaller request or server-side storage.
        """
        now = self._now()
        lifetime = self.pushed_authorization_request_lifetime
        expires_at = now + lifetime
        record: dict[str, Any] = {
            "token_type": PUSHED_REQUEST,
            "client_id": client_id,
            "iat": now,
            "exp": expires_at,
            "parameters": dict(parameters),
        }
        key = self._store(self.pushed_authorization_requests, record, expires_at)
        return REQUEST_URI_PREFIX + key, lifetime

    def take_pushed_authorization_request(self, request_uri: Any, client_id: str
                                          ) -> Optional[dict[str, Any]]:
        """The parameters of the pushed request ``request_uri`` names, taken for good
        (RFC 9126 4: used once), or None: not a ``request_uri`` this provider issued,
        expired, already used, or pushed by another client than ``client_id`` (RFC 9126
        2.2: bound to the client; such a request is left for its client).

        Single use is the storage contract's atomic ``consume``: of concurrent takes of
        one request exactly one gets it (on sealed stores, through the replay cache)."""
        if not isinstance(request_uri, str) or not request_uri.startswith(REQUEST_URI_PREFIX):
            return None
        key = request_uri[len(REQUEST_URI_PREFIX):]
        store = self.pushed_authorization_requests
        record = self._live(store, key)
        if not _is_request_of(record, client_id):
            if record is not None:
                logger.warning("a pushed authorization request used by another client")
            return None
        taken = store.consume(key)
        if not _is_request_of(taken, client_id) or taken.get("exp", 0) <= self._now():
            return None  # taken meanwhile (or expired at that instant)
        parameters = taken.get("parameters")
        return dict(parameters) if isinstance(parameters, dict) else None

    @property
    def pushed_requests_are_sealed(self) -> bool:
        """Whether pushed requests are sealed into their ``request_uri`` (stateless)."""
        return is_sealed(self.pushed_authorization_requests)


def _is_request_of(record: Any, client_id: str) -> bool:
    return (isinstance(record, dict) and record.get("token_type") == PUSHED_REQUEST
            and record.get("client_id") == client_id)


