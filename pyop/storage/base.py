"""The storage contract of pyop: :class:`StorageBase` and its helpers.

Every backend implements the same narrow set of primitives (``get``, ``set``
with an absolute expiry, ``delete``, the atomic ``consume``,
``compare_and_set`` and ``add``, ``purge_expired``, ``close`` and the
administrative ``keys``). The mapping interface (``store[key]``, ``key in
store``, ``store.pop(key)``, ...) is implemented once here on top of them, so
code written against pyop 3, which used the stores as dicts, keeps working.

Values are JSON-serialisable objects and round-trip like JSON does (tuples
come back as lists, mapping keys must be strings). Keys are strings.
Expiry times are absolute UNIX timestamps in seconds.

The atomic primitives are what makes "a code can be redeemed exactly once"
(RFC 6749 4.1.2, RFC 9700 4.14.2) hold on every backend: of N concurrent
``consume`` calls for one key exactly one returns the value.
"""

from __future__ import annotations

import abc
import json
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, Optional, Union

from ..exceptions import StorageError
from ..util import json_encode_function
from .schemes import backend_for

__all__ = ["StorageBase", "Clock", "canonical_json", "MISSING", "SharedClients"]

logger = logging.getLogger(__name__)

#: A clock: returns the current UNIX time in seconds (``time.time``).
Clock = Callable[[], float]

Number = Union[int, float]


class _Missing:
    """Sentinel type for "no value" (distinct from a stored JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


#: Sentinel returned by ``get(key, MISSING)`` when the key is absent.
MISSING: Any = _Missing()


#: One encoder for :func:`canonical_json` (``json.dumps`` with options builds one per call).
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
_canonical_encode = json_encode_function(_CANONICAL_ENCODER)


def canonical_json(value: Any) -> str:
    """Serialise ``value`` as canonical JSON (sorted keys, no whitespace).

    Two values are equal for :meth:`StorageBase.compare_and_set` when their
    canonical JSON is equal.

    :raises TypeError: ``value`` is not JSON-serialisable.
    :raises ValueError: ``value`` contains NaN/Infinity (not JSON, RFC 8259 6).
    """
    return _canonical_encode(value)


def check_key(key: Any) -> str:
    """Return ``key`` if it is a ``str``.

    :raises TypeError: otherwise.
    """
    if not isinstance(key, str):
        raise TypeError(f"storage keys must be str, not {type(key).__name__}")
    return key


def check_expires_at(expires_at: Any) -> float:
    """Validate an absolute expiry time (UNIX seconds) and return it as float.

    :raises TypeError: not a real number.
    :raises ValueError: NaN or infinite.
    """
    if type(expires_at) is int:  # the usual; finite once converted (or OverflowError)
        return float(expires_at)
    if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
        raise TypeError("expires_at must be a UNIX timestamp (int or float)")
    value = float(expires_at)
    if not math.isfinite(value):
        raise ValueError("expires_at must be finite")
    return value


def check_ttl(ttl: Any) -> Optional[Number]:
    """Validate a default lifetime in seconds; ``None`` and ``0`` mean "no default expiry".

    :raises TypeError: not a number.
    :raises ValueError: negative or not finite.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError("ttl must be a number of seconds or None")
    if not math.isfinite(ttl) or ttl < 0:
        raise ValueError("ttl must be a non-negative number of seconds")
    return ttl or None


class SharedClients:
    """Process-wide driver clients shared by the wrappers of one URI, reference counted.

    Keyed by (client factory, URI, options): the factory is part of the key so that a
    factory replaced after a client was cached (pyop 3 tests patch ``pymongo.MongoClient``
    with ``mongomock.MongoClient``, or ``redis.Redis.from_url`` with fakeredis) is honoured.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, str, str], list[Any]] = {}

    def acquire(self, factory: Callable[..., Any], uri: str, options: dict[str, Any]
                ) -> tuple[tuple[Any, str, str], Any]:
        """The shared client for these arguments (created on first use) and its key."""
        key = (factory, uri, repr(sorted(options.items())))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = [factory(uri, **options), 0]
            entry[1] += 1
            return key, entry[0]

    def release(self, key: tuple[Any, str, str]) -> Any:
        """Drop one user of a client; returns the client to close when it was the last."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry[1] -= 1
            if entry[1] > 0:
                return None
            del self._entries[key]
            return entry[0]


def missing_driver(extra: str, module: str, error: ImportError) -> ImportError:
    """An ImportError telling which pip extra installs the missing driver."""
    exc = ImportError(
        f"the {module!r} package is needed for this storage backend: "
        f"pip install pyop[{extra}]"
    )
    exc.__cause__ = error
    return exc


def _delete_quietly(store: StorageBase, key: str) -> None:
    """Delete ``key``, logging (not raising) a failure: the caller's outcome stands."""
    try:
        store.delete(key)
    except Exception:  # noqa: BLE001 - the record's key is known to no one
        logger.warning("could not delete a record written for a compare-and-set that "
                       "did not replace")


class StorageBase(abc.ABC):
    """The storage contract every pyop backend implements.

    Primitives (abstract): :meth:`get`, :meth:`set`, :meth:`delete`,
    :meth:`consume`, :meth:`compare_and_set`, :meth:`add`,
    :meth:`purge_expired`, :meth:`close` and :meth:`keys`; and
    :meth:`compare_and_set_then_set`, built on them, which backends may do in
    one round trip.

    A record is *live* while its ``expires_at`` is ``None`` or later than
    now; expired records are treated as absent by every operation, whether
    or not the backend has physically removed them yet.

    Backend failures (server down, timeout, corrupt record) raise
    :class:`pyop.exceptions.StorageError` wrapping the driver's exception;
    driver exceptions never escape.

    The mapping sugar (``store[key]``, ``del store[key]``, ``key in store``,
    :meth:`pop`, iteration, ``len``, :meth:`items`, :meth:`values`,
    :meth:`update`) is built on the primitives. Iteration, ``len``,
    :meth:`items` and :meth:`values` scan the collection: they are for
    administration and tests, never for request paths. ``bool(store)`` is
    always true (it does not scan).
    """

    #: Default lifetime in seconds of records written without ``expires_at``
    #: (pyop 3's ``ttl`` argument); ``None``: such records never expire.
    ttl: Optional[Number] = None

    #: Mapping sugar of pyop 3's wrappers of the same name: ``del store[key]`` of an
    #: absent key does nothing and ``store.pop(key)`` returns ``None`` (instead of
    #: raising :class:`KeyError`). True for :class:`MongoWrapper` and
    #: :class:`RedisWrapper`; ``store[key]`` raises :class:`KeyError` on every store.
    pyop3_mapping: bool = False

    # -- primitives ---------------------------------------------------------

    @abc.abstractmethod
    def get(self, key: str, default: Any = None) -> Any:
        """Return the live value of ``key``, or ``default`` when it is absent or expired."""

    @abc.abstractmethod
    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        """Store ``value`` under ``key``, replacing any previous value.

        :param expires_at: absolute UNIX time at which the record expires;
            ``None`` means ``now + self.ttl`` when the store has a default
            ``ttl``, else the record never expires.
        :raises TypeError: ``value`` is not JSON-serialisable.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return True if a live record was removed."""

    @abc.abstractmethod
    def consume(self, key: str) -> Any:
        """Atomically get and delete ``key``.

        Returns the live value and removes the record, or ``None`` when the
        key is absent or expired. Of N concurrent consumers of one key,
        exactly one gets the value (single-use codes, RFC 6749 4.1.2).
        """

    @abc.abstractmethod
    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        """Atomically replace the live value of ``key`` by ``new`` if it equals ``expected``.

        Equality is JSON equality (equal :func:`canonical_json`). Returns
        whether the value was replaced; an absent or expired key never
        matches. Used for refresh-token rotation (RFC 9700 4.14.2) and
        revocation flags.

        :param expires_at: the new absolute expiry; ``None`` keeps the
            record's current expiry.
        """

    def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                 expires_at: Optional[float], other: StorageBase,
                                 other_key: str, other_value: Any,
                                 other_expires_at: Optional[float] = None) -> bool:
        """:meth:`compare_and_set` on this store and, only if it replaced the value,
        ``other.set(other_key, other_value, other_expires_at)``; returns whether the
        compare-and-set succeeded.

        Used to mark an authorization code used and store the access token issued
        for it (RFC 6749 4.1.2). Backends that can do both in one round trip,
        atomically, do so when ``other`` is on the same server: Redis (one Lua
        script, same client) and PostgreSQL (one statement, same engine). The
        compare-and-set is atomic in every case.

        This default makes two calls, the write to ``other`` *first*: once the new
        value is visible (the code marked used), the other record is stored, so a
        replay that finds the mark and deletes that record (revoking the token) cannot
        be overtaken by the write. When the compare-and-set does not replace the
        value, or fails, the other record is deleted again; meanwhile it existed under
        ``other_key`` -- a fresh random token value that nobody has been given.

        :raises StorageError: a write failed (the other record is then deleted, as far
            as the store allows).
        """
        other.set(other_key, other_value, expires_at=other_expires_at)
        try:
            replaced = self.compare_and_set(key, expected, new, expires_at=expires_at)
        except Exception:
            _delete_quietly(other, other_key)
            raise
        if not replaced:
            _delete_quietly(other, other_key)
        return replaced

    @abc.abstractmethod
    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        """Atomically store ``value`` only if ``key`` is absent (or expired).

        Returns True if stored. Used for replay caches (``jti``, sealed
        tokens). ``expires_at`` as for :meth:`set`.
        """

    @abc.abstractmethod
    def purge_expired(self) -> int:
        """Remove expired records now; return how many were removed (best effort)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend's connections. The store must not be used afterwards."""

    @abc.abstractmethod
    def keys(self) -> Iterator[str]:
        """Iterate over the live keys. May scan the collection: never use on request paths."""

    # -- helpers for backends -----------------------------------------------

    def _resolve_expiry(self, expires_at: Optional[float], now: float) -> Optional[float]:
        """The absolute expiry of a write: ``expires_at``, else ``now + ttl``, else None."""
        if expires_at is not None:
            return check_expires_at(expires_at)
        if self.ttl:
            return now + self.ttl
        return None

    # -- mapping sugar ------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.delete(key) and not self.pyop3_mapping:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self.get(key, MISSING) is not MISSING

    def pop(self, key: str, *default: Any) -> Any:
        """Atomically remove ``key`` and return its value (built on :meth:`consume`).

        :raises KeyError: the key is absent or expired and no default was given
            (stores with :attr:`pyop3_mapping` return ``None`` instead).
        """
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        value = self.consume(key)
        if value is None:
            if default:
                return default[0]
            if self.pyop3_mapping:
                return None
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def __bool__(self) -> bool:
        return True

    def items(self) -> Iterator[tuple[str, Any]]:
        """Iterate over ``(key, value)`` of live records (scans)."""
        for key in self.keys():
            value = self.get(key, MISSING)
            if value is not MISSING:
                yield key, value

    def values(self) -> Iterator[Any]:
        """Iterate over the live values (scans)."""
        for _, value in self.items():
            yield value

    def update(self, other: Union[Mapping[str, Any], Iterable[tuple[str, Any]]] = (),
               **kwargs: Any) -> None:
        """Store every pair of ``other`` and ``kwargs`` with the default expiry."""
        pairs: Iterable[tuple[str, Any]]
        if isinstance(other, Mapping):
            pairs = other.items()
        elif hasattr(other, "keys"):
            pairs = ((k, other[k]) for k in other.keys())  # type: ignore[index]
        else:
            pairs = other
        for key, value in pairs:
            self.set(key, value)
        for key, value in kwargs.items():
            self.set(key, value)

    def __enter__(self) -> StorageBase:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- factory ------------------------------------------------------------

    @staticmethod
    def type(db_uri: str) -> str:
        """The kind of backend a URI selects.

        ``'mongodb'`` (``mongodb://``, ``mongodb+srv://``), ``'redis'``
        (``redis://``, ``rediss://``, ``unix://``), ``'sql'`` (any SQLAlchemy
        URL: ``sqlite://``, ``postgresql[+driver]://``, ``mysql[+driver]://``
        ...), ``'stateless'`` (``stateless://``), ``'memory'`` (``memory://`` or
        ``memory:``).

        :raises ValueError: unknown scheme (the message names the scheme,
            never the rest of the URI, which may hold a password).
        """
        return backend_for(db_uri).kind

    @classmethod
    def from_uri(cls, db_uri: str, collection: Optional[str] = None, db_name: Optional[str] = None,
                 ttl: Optional[int] = None, *, mongo_kwargs: Optional[Mapping[str, Any]] = None,
                 redis_kwargs: Optional[Mapping[str, Any]] = None,
                 **kwargs: Any) -> StorageBase:
        """Create the backend a URI selects (pyop 3 signature and call forms).

        ``from_uri("mongodb://...", db_name="satosa", collection="authz_codes", ttl=600)``,
        or positionally ``from_uri(db_uri, collection, db_name, ttl)``.

        * MongoDB: ``db_name`` is the database (the URI's own database wins, as in
          pyop 3); ``mongo_kwargs`` are options for ``pymongo.MongoClient``.
        * Redis: ``db_name`` is the database *index* (``0``, ``"1"``...), as in pyop 3;
          a database given in the URI (``redis://host/2``, ``unix://...?db=2``) wins.
          ``redis_kwargs`` are options for ``redis.Redis.from_url``.
        * ``stateless://user:SECRET@host[?alg=aes256]``: the secret is the URI's
          password; ``alg`` may only be ``aes256`` (pyop 3's only algorithm).

        Other keyword arguments go to the backend constructor (``clock=``,
        ``client=``, ``engine=``, ``replay_cache=``, driver options).

        :raises ValueError: unknown scheme, or a required part is missing.
        :raises ImportError: the backend's driver is not installed (names the pip extra).
        """
        backend = backend_for(db_uri)
        if collection is None and backend.needs_collection:
            raise ValueError(f"a collection name is required for {backend.kind} storage")
        driver_options = {"mongodb": mongo_kwargs, "redis": redis_kwargs}.get(backend.kind)
        kwargs.update(driver_options or {})
        store: StorageBase = backend.create(db_uri, collection, db_name, ttl, **kwargs)
        return store


def wrap_error(operation: str, collection: str, error: BaseException) -> StorageError:
    """A :class:`StorageError` for a failed ``operation``, chained to the driver error.

    The message names the operation, the collection and the error class,
    never keys or values (they may be tokens).
    """
    message = f"storage {operation} failed on {collection!r}: {type(error).__name__}"
    logger.warning("%s", message)
    exc = StorageError(message)
    exc.__cause__ = error
    return exc
