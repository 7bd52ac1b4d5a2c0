"""Where the provider finds its clients: lookup, caches and client authentication.

OAuth 2.0 (RFC 6749) 2.3 and 3.2.1 (client authentication), OIDC Core 9 (client
authentication methods), RFC 7523 3 (assertion audiences), RFC 7592 (clients change: the
caches forget them).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, cast

from ._cache import TTLCache
from .client_assertion import ClientAssertionVerifier
from .client_authentication import KeyResolver, authenticate_client
from .exceptions import InvalidConfiguration
from .storage.base import StorageBase
from .util import is_valid_identifier

__all__ = ["ClientRegistry", "DELETED_CLIENT_MEMBER", "CLIENT_EXPIRES_AT_MEMBER",
           "is_deleted_client", "client_has_expired"]

logger = logging.getLogger(__name__)

#: The client of the request being handled: (client_id, metadata), read from storage once.
_request_client: contextvars.ContextVar[Optional[tuple[str, Mapping[str, Any]]]] = (
    contextvars.ContextVar("pyop_request_client", default=None))


#: The member of a deleted client's tombstone (RFC 7592 2.3): the UNIX time of the deletion.
#: A tombstone has no other member: no secret, no registration access token hash, no
#: redirect URIs -- it cannot authenticate nor be redirected to, even by code reading the
#: store directly, and a concurrent update cannot bring the client back.
DELETED_CLIENT_MEMBER = "client_deleted_at"

#: The member holding when a dynamically registered client expires (UNIX time; see
#: ``Provider(registered_client_lifetime=...)``): from then on it is treated as unknown.
CLIENT_EXPIRES_AT_MEMBER = "client_expires_at"


def is_deleted_client(client: Mapping[str, Any]) -> bool:
    """Whether a stored record is the tombstone of a deleted client."""
    return DELETED_CLIENT_MEMBER in client


def client_has_expired(client: Mapping[str, Any], now: float) -> bool:
    """Whether a dynamically registered client's lifetime is over."""
    expires_at = client.get(CLIENT_EXPIRES_AT_MEMBER)
    return (type(expires_at) is int and 0 < expires_at <= now) or (
        type(expires_at) is float and 0 < expires_at <= now)


class _ClientLookup:
    """``clients.get`` for :func:`authenticate_client`, through :meth:`ClientRegistry.get`
    (the request's client, then the client cache when enabled)."""

    __slots__ = ("_get",)

    def __init__(self, get: Callable[[Any], Optional[Mapping[str, Any]]]) -> None:
        self._get = get

    def get(self, client_id: Any, default: Any = None) -> Any:
        client = self._get(client_id)
        return default if client is None else client


class RequestClient:
    """``with``: the client of the request being handled, known to
    :meth:`ClientRegistry.get` in the block (a class: cheaper than a generator-based
    context manager on every authentication request)."""

    __slots__ = ("_entry", "_token")

    def __init__(self, client_id: str, client: Mapping[str, Any]) -> None:
        self._entry = (client_id, client)
        self._token: Optional[contextvars.Token[Optional[tuple[str, Mapping[str, Any]]]]] = None

    def __enter__(self) -> None:
        self._token = _request_client.set(self._entry)

    def __exit__(self, *exc_info: Any) -> None:
        if self._token is not None:
            _request_client.reset(self._token)


class ClientRegistry:
    """The clients (a mapping ``client_id -> metadata``: a dict or a pyop storage).

    :param store: the clients.
    :param clock: returns the current UNIX time.
    :param cache_ttl: seconds a client read is reused in this process (None: no cache).
    :param cache_size: how many clients the cache keeps.
    :raises InvalidConfiguration: ``cache_ttl`` or ``cache_size`` is invalid.
    """

    def __init__(self, store: Any, clock: Callable[[], float],
                 cache_ttl: Optional[float] = None, cache_size: int = 1024) -> None:
        if cache_ttl is not None and (
                isinstance(cache_ttl, bool)
                or not isinstance(cache_ttl, (int, float))
                or not 0 <= cache_ttl < float("inf")):
            raise InvalidConfiguration("client_cache_ttl: must be a number of seconds >= 0")
        if (isinstance(cache_size, bool) or not isinstance(cache_size, int)
                or cache_size < 1):
            raise InvalidConfiguration("client_cache_size: must be an integer >= 1")
        self.store = store
        # only clients that exist are cached: an unknown client_id is read every time, so
        # a client registered by another process is seen at once, and made-up ids do not
        # fill the cache
        self._cache: Optional[TTLCache[Mapping[str, Any]]] = None
        if cache_ttl:
            self._cache = TTLCache(cache_ttl, cache_size, clock)
        self._lookup = cast(Mapping[str, Any], _ClientLookup(self.get))
        self._clock = clock
        # compare-and-set of a store without one (a dict): atomic within this process
        self._lock = threading.Lock()

    def get(self, client_id: Any) -> Optional[Mapping[str, Any]]:
        """The metadata of a registered client, or None: the request's client, else the
        cached one, else the stored one."""
        if not isinstance(client_id, str):
            return None
        cached = _request_client.get()
        if cached is not None and cached[0] == client_id:
            return cached[1]
        cache = self._cache
        if cache is not None:
            hit = cache.get(client_id)
            if hit is not None:
                if CLIENT_EXPIRES_AT_MEMBER in hit and client_has_expired(hit, self._clock()):
                    cache.discard(client_id)
                    return None
                return hit
        client = self.stored(client_id)
        if client is not None and cache is not None:
            cache.put(client_id, client)
        return client

    def get_client(self, client_id: Any) -> Optional[Mapping[str, Any]]:
        """:meth:`get`, under the name the request validators use."""
        return self.get(client_id)

    def stored(self, client_id: str) -> Optional[Mapping[str, Any]]:
        """The client as the store has it now (no cache): for read-modify-write of
        client metadata (RFC 7592 updates, secret rotation). None for an unknown,
        deleted (RFC 7592 2.3) or expired client, and for a client id that is not a
        valid identifier (see :func:`~pyop.util.is_valid_identifier`), which is never
        looked up; an expired client is removed (lazily, when it is next asked for)."""
        client = self.record(client_id)
        if client is None or DELETED_CLIENT_MEMBER in client:
            return None
        if CLIENT_EXPIRES_AT_MEMBER in client and client_has_expired(client, self._clock()):
            self._purge_expired(client_id, client)
            return None
        return client

    def record(self, client_id: str) -> Optional[Mapping[str, Any]]:
        """What the store holds under ``client_id`` (a client, or a deleted client's
        tombstone), or None."""
        if not is_valid_identifier(client_id):
            return None
        try:
            client = self.store.get(client_id)
        except (TypeError, ValueError):
            return None
        return client if type(client) is dict or isinstance(client, Mapping) else None

    def _purge_expired(self, client_id: str, client: Mapping[str, Any]) -> None:
        logger.info("removing expired client %s", client_id)
        try:
            if isinstance(self.store, StorageBase):
                # only the record read: a client changed meanwhile is left alone
                self.store.compare_and_set(client_id, dict(client), dict(client),
                                           expires_at=self._clock())
            else:
                with self._lock:
                    if self.store.get(client_id) == client:
                        del self.store[client_id]
        except (KeyError, TypeError, ValueError):  # removed meanwhile, or not removable
            pass
        self.changed(client_id)

    def add(self, client_id: str, client: Mapping[str, Any],
            expires_at: Optional[float] = None) -> bool:
        """Store a new client unless ``client_id`` is taken (a client or a tombstone);
        returns whether it was stored. ``expires_at`` lets a pyop storage drop the
        record itself when the client expires."""
        if isinstance(self.store, StorageBase):
            return self.store.add(client_id, dict(client), expires_at=expires_at)
        with self._lock:
            if client_id in self.store:
                return False
            self.store[client_id] = dict(client)
            return True

    def replace(self, client_id: str, expected: Mapping[str, Any], new: Mapping[str, Any],
                expires_at: Optional[float] = None) -> bool:
        """Atomically replace a client's record by ``new`` if it is still ``expected``
        (the storage's compare-and-set; with a dict, atomic within this process only).
        Returns whether it was replaced: a concurrent update, rotation or deletion makes
        it fail, so none of them is undone (RFC 7592 2.2, 2.3)."""
        if isinstance(self.store, StorageBase):
            replaced = self.store.compare_and_set(client_id, dict(expected), dict(new),
                                                  expires_at=expires_at)
        else:
            with self._lock:
                replaced = self.store.get(client_id) == expected
                if replaced:
                    self.store[client_id] = dict(new)
        if replaced:
            self.changed(client_id)
        return replaced

    def changed(self, client_id: str) -> None:
        """Forget this process's cached metadata of a client."""
        if self._cache is not None:
            self._cache.discard(client_id)

    def request_client(self, client_id: str, client: Mapping[str, Any]) -> RequestClient:
        """Within the block, :meth:`get` answers ``client_id`` without reading the store."""
        return RequestClient(client_id, client)

    def authenticate(self, parameters: Mapping[str, Any], http_headers: Optional[Any], *,
                     now: int, assertion_verifier: ClientAssertionVerifier,
                     audiences: Iterable[str], client_certificate: Any = None,
                     key_resolver: Optional[KeyResolver] = None
                     ) -> tuple[str, Mapping[str, Any]]:
        """Authenticate the client of a request (RFC 6749 2.3, OIDC Core 9); a client
        assertion is verified for ``audiences`` (RFC 7523 3), a client certificate
        (mutual TLS, RFC 8705 2) against the client's metadata or keys (``key_resolver``).

        :raises InvalidClientAuthentication: 401 ``invalid_client``.
        """
        if "client_assertion" not in parameters and "client_assertion_type" not in parameters:
            return authenticate_client(self._lookup, parameters, http_headers, now=now,
                                       client_certificate=client_certificate,
                                       key_resolver=key_resolver)
        return authenticate_client(self._lookup, parameters, http_headers, now=now,
                                   assertion_verifier=assertion_verifier,
                                   audiences=audiences)
