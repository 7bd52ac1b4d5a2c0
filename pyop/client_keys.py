"""The public keys of clients: their ``jwks`` metadata or their fetched ``jwks_uri`` document.

OIDC Dynamic Registration 2 (``jwks``, ``jwks_uri``), OIDC Core 6.2 and 10.1.1 (request
objects and key rotation: a refetch when a signature does not verify), RFC 7523 3
(``private_key_jwt`` assertions), RFC 7592 2.2-2.3 (a client's keys forgotten when it
changes its registration).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable, Optional

from .crypto import VerificationKey
from .exceptions import FetchError
from .outbound import GuardedFetcher
from .request_object import DEFAULT_MAX_CLIENT_KEYS, ClientJWK, parse_jwk_set

__all__ = ["ClientKeys", "DEFAULT_JWKS_CACHE_ENTRIES", "DEFAULT_JWKS_CACHE_BYTES"]

logger = logging.getLogger(__name__)

#: Seconds a client's jwks_uri document is reused; at most one refetch per
#: _JWKS_REFETCH_INTERVAL when a signature does not verify (key rotation).
_JWKS_CACHE_TTL = 300
_JWKS_REFETCH_INTERVAL = 30
_JWKS_CACHE_SIZE = 1024

#: How many ``jwks_uri`` documents the cache keeps at most.
DEFAULT_JWKS_CACHE_ENTRIES = _JWKS_CACHE_SIZE
#: How many bytes (measured with :func:`sys.getsizeof` over what is kept) the cached
#: ``jwks_uri`` documents may take together: 4 MiB, about 1,500 RSA-2048 keys.
DEFAULT_JWKS_CACHE_BYTES = 4 * 1024 * 1024

#: The members of a fetched key that are kept (RFC 7517 4; RFC 7518 6.2.1, 6.3.1; RFC 8037
#: 2): those selecting the key and its public parameters. Every other member -- private
#: parameters, certificates, anything else a document carries -- is dropped.
_KEPT_MEMBERS = {name: name for name in ("kty", "kid", "use", "alg", "key_ops", "crv",
                                          "n", "e", "x", "y")}

#: Bytes counted for the public key built from a cached JWK (its native object).
_BUILT_KEY_SIZE = 512


def _kept(jwk: dict[str, Any]) -> dict[str, Any]:
    # the names are this module's strings, shared by every cached key
    members = {_KEPT_MEMBERS[name]: value for name, value in jwk.items()
               if name in _KEPT_MEMBERS}
    if not isinstance(jwk, ClientJWK):
        return members
    # the built key is kept (not built again), with the kept members as its source JWK: the
    # one built from the document would hold every member the document gave
    key = VerificationKey(jwk.key.public_key, jwk.key.alg, jwk.key.kid, source_jwk=members)
    return ClientJWK(members, key)


def _dict_size(members: Optional[Mapping[str, Any]]) -> int:
    if members is None:
        return 0
    size = sys.getsizeof(members)
    for value in members.values():
        size += sys.getsizeof(value)
        if isinstance(value, list):
            size += sum(sys.getsizeof(item) for item in value)
    return size


def _retained_size(uri: str, keys: Optional[list[dict[str, Any]]]) -> int:
    """Bytes a cache entry keeps alive: the URL, the entry, the keys and their values (the
    member names are shared)."""
    size = sys.getsizeof(uri) + sys.getsizeof((0.0, None, 0)) + 16
    if keys is None:
        return size
    size += sys.getsizeof(keys)
    for jwk in keys:
        size += _dict_size(jwk)
        key = getattr(jwk, "key", None)
        if isinstance(key, VerificationKey):
            # the native key, its public JWK, and its source JWK (sharing the values above)
            size += _BUILT_KEY_SIZE + _dict_size(key.public_jwk)
            size += sys.getsizeof(key.source_jwk)
    return size


#: How many clients' parsed ``jwks`` metadata are kept (least recently used dropped first).
INLINE_JWKS_CACHE_SIZE = 1024


class ClientKeys:
    """Clients' public keys, with fetched ``jwks_uri`` documents cached in this process.

    :param clock: returns the current UNIX time.
    :param fetcher: fetches a ``jwks_uri`` document, ``callable(uri) -> parsed JSON``
        (default: :meth:`GuardedFetcher.get_json <pyop.outbound.GuardedFetcher.get_json>`
        of a :class:`~pyop.outbound.GuardedFetcher` with its defaults).
    :param max_keys: the most keys of a client's set that are used (the first ones; see
        :func:`~pyop.request_object.parse_jwk_set`).
    :param max_entries: ``jwks_uri`` documents kept at most (default
        :data:`DEFAULT_JWKS_CACHE_ENTRIES`).
    :param max_bytes: bytes the kept documents may take together (default
        :data:`DEFAULT_JWKS_CACHE_BYTES`); the oldest are dropped first. Only the public
        members of each fetched key are kept (``kty``, ``kid``, ``use``, ``alg``,
        ``key_ops``, ``crv``, ``n``, ``e``, ``x``, ``y``).

    A client's ``jwks`` metadata is parsed, and each of its keys built, once: the result
    is kept by client id and a digest of the metadata (a registration update changes the
    digest), for at most :data:`INLINE_JWKS_CACHE_SIZE` clients.
    """

    def __init__(self, clock: Callable[[], float],
                 fetcher: Optional[Callable[[str], Any]] = None, *,
                 max_keys: int = DEFAULT_MAX_CLIENT_KEYS,
                 max_entries: Optional[int] = None,
                 max_bytes: int = DEFAULT_JWKS_CACHE_BYTES) -> None:
        self.clock = clock
        #: The most keys of a client's set that are used.
        self.max_keys = max_keys
        #: ``client_id -> (digest of its jwks metadata, keys or None)``, least recently
        #: used first.
        self.inline: OrderedDict[str, tuple[str, Optional[list[dict[str, Any]]]]]
        self.inline = OrderedDict()
        #: Fetches a client's ``jwks_uri`` document.
        self.fetcher: Callable[[str], Any] = fetcher or GuardedFetcher().get_json
        #: ``uri -> (fetched at, keys or None)``, oldest first.
        self.cache: dict[str, tuple[float, Optional[list[dict[str, Any]]]]] = {}
        #: Documents kept at most (None: :data:`DEFAULT_JWKS_CACHE_ENTRIES`).
        self.max_entries = max_entries
        #: Bytes the kept documents may take together.
        self.max_bytes = max_bytes
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def jwks(self, client_id: str, client: Mapping[str, Any], *,
             refetch: bool = False) -> tuple[Optional[list[dict[str, Any]]], bool]:
        """The client's public keys (``jwks`` metadata, or its ``jwks_uri`` document), or None;
        and whether they are as fresh as can be (so a refetch would not help)."""
        jwks = client.get("jwks")
        jwks_uri = client.get("jwks_uri")
        if jwks is None and isinstance(jwks_uri, str):
            return self._fetched(client_id, jwks_uri, refetch)
        if jwks is None:
            return None, True
        return self._inline(client_id, jwks), True

    def _inline(self, client_id: str, jwks: Any) -> Optional[list[dict[str, Any]]]:
        """The client's ``jwks`` metadata parsed, from the cache when it has not changed."""
        with self._lock:
            cached = self.inline.get(client_id)
        try:
            document = jwks.to_dict() if hasattr(jwks, "to_dict") else jwks
            digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=repr)
                                    .encode("utf-8", "surrogatepass")).hexdigest()
        except (TypeError, ValueError, RecursionError):
            digest = None
        if cached is not None and digest is not None and cached[0] == digest:
            keys = cached[1]
        else:
            try:
                keys = parse_jwk_set(jwks, max_keys=self.max_keys, strict=False,
                                     client_id=client_id)
            except ValueError as e:
                logger.warning("client %s: unusable jwks metadata: %s", client_id, e)
                keys = None
        if digest is not None:
            with self._lock:
                self.inline[client_id] = (digest, keys)
                self.inline.move_to_end(client_id)
                while len(self.inline) > INLINE_JWKS_CACHE_SIZE:
                    self.inline.popitem(last=False)
        return keys

    def _fetched(self, client_id: str, uri: str, refetch: bool
                 ) -> tuple[Optional[list[dict[str, Any]]], bool]:
        now = self.clock()
        cached = self.cache.get(uri)
        if cached is not None:
            fetched_at, keys = cached
            too_soon = now - fetched_at < _JWKS_REFETCH_INTERVAL
            if (not refetch and now - fetched_at < _JWKS_CACHE_TTL) or (refetch and too_soon):
                return keys, too_soon
        keys = None
        try:
            keys = [_kept(jwk) for jwk in parse_jwk_set(
                self.fetcher(uri), max_keys=self.max_keys, strict=False, client_id=client_id)]
        except FetchError as e:
            logger.warning("client %s: could not fetch its jwks_uri: %s", client_id, e.reason)
        except Exception as e:  # noqa: BLE001 - any network or parse failure: no keys
            logger.warning("client %s: could not use its jwks_uri: %s", client_id,
                           type(e).__name__)
        self._store(uri, now, keys)
        return keys, True

    def _store(self, uri: str, now: float, keys: Optional[list[dict[str, Any]]]) -> None:
        size = _retained_size(uri, keys)
        max_entries = self.max_entries if self.max_entries is not None else _JWKS_CACHE_SIZE
        with self._lock:
            self._drop(uri)
            if size > self.max_bytes:
                return  # larger than the whole budget: used once, not kept
            while self.cache and (len(self.cache) >= max_entries
                                  or self._bytes + size > self.max_bytes):
                self._drop(next(iter(self.cache)))  # the oldest entry
            self.cache[uri] = (now, keys)
            self._sizes[uri] = size
            self._bytes += size

    def _drop(self, uri: str) -> None:
        if self.cache.pop(uri, None) is not None:
            self._bytes -= self._sizes.pop(uri, 0)

    @property
    def retained_bytes(self) -> int:
        """Bytes the cached documents take (as counted against ``max_bytes``)."""
        return self._bytes

    def forget(self, *uris: Any) -> None:
        """Drop cached ``jwks_uri`` documents: a client that changed its registration
        (RFC 7592 2.2, 2.3) may have removed keys from them."""
        with self._lock:
            for uri in uris:
                if isinstance(uri, str):
                    self._drop(uri)
