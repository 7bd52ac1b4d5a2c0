"""Redis backend (redis-py; Redis server 6.2 or later).

Records are plain Redis strings holding the canonical JSON of
``{"value": <the value>}`` under the key ``"{collection}:{key}"``, in the
database whose index is ``db_name``: the layout of pyop 3, whose records are
therefore read as they are. Expiry is set per record with the absolute
``SET ... PXAT`` option, so Redis itself expires records at their own
expiry; nothing is left behind and :meth:`RedisWrapper.purge_expired` has
nothing to do. pyop 3 wrote the JSON with whitespace: ``compare_and_set`` of such a
record compares it once more against its exact bytes.

Atomicity: ``consume`` is ``GETDEL``, ``add`` is ``SET NX``,
``compare_and_set`` a Lua script (``EVALSHA``) run atomically by the server, and
``compare_and_set_then_set`` another one when both stores use the same client.
On a server without scripting (``EVALSHA`` is an unknown command, as on
``fakeredis`` without ``lupa``) ``compare_and_set`` falls back to an
optimistic ``WATCH``/``MULTI``/``EXEC`` transaction, atomic as well.

``redis.Redis.from_url`` is looked up when a wrapper is created (not when
this module is imported), so code that replaces it, e.g. with
``fakeredis.FakeRedis.from_url`` as pyop 3 tests did, keeps working; the
client cache is keyed by that factory too.

The atomic primitives carry the single use of authorization codes and rotated refresh
tokens (RFC 6749 4.1.2, RFC 9700 4.14.2) and of client assertions (RFC 7523 3).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from typing import Any, Optional, Union

from .base import (
    Clock,
    SharedClients,
    StorageBase,
    canonical_json,
    check_expires_at,
    check_key,
    check_ttl,
    missing_driver,
    wrap_error,
)
from .schemes import register_backend

__all__ = ["RedisWrapper"]

logger = logging.getLogger(__name__)

#: KEYS[1] = key; ARGV[1] = expected JSON, ARGV[2] = new JSON,
#: ARGV[3] = absolute expiry in ms or "" to keep the current one.
_CAS_STEPS = """
local current = redis.call('GET', KEYS[1])
if (not current) or current ~= ARGV[1] then
  return 0
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
"""
_CAS_SCRIPT = _CAS_STEPS + "return 1\n"

#: compare_and_set on KEYS[1] (ARGV[1..3] as for _CAS_SCRIPT), then, only if it replaced
#: the value, SET KEYS[2] ARGV[4] with ARGV[5] the absolute expiry in ms or "" for none.
_CAS_THEN_SET_SCRIPT = _CAS_STEPS + """
if ARGV[5] == '' then
  redis.call('SET', KEYS[2], ARGV[4])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PXAT', ARGV[5])
end
return 1
"""

_GLOB_SPECIAL = set("*?[]\\")

#: Attempts of the WATCH/MULTI/EXEC fallback before ``compare_and_set`` reports a miss.
_CAS_ATTEMPTS = 100

#: Redis clients (one connection pool each) shared by the wrappers of one URL.
_clients = SharedClients()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


def _database_index(db_uri: str, db_name: Optional[Union[str, int]]) -> Optional[int]:
    """The database index ``db_name`` selects (pyop 3: ``Redis.from_url(db=db_name)``),
    or None when it selects nothing: no ``db_name``, the URI names a database (it wins, as
    in ``Redis.from_url``), or ``db_name`` is no index (a name such as ``"satosa"``,
    with which pyop 3 failed at the first command: the default database is used).
    """
    if db_name is None or db_name == "":
        return None
    from redis.connection import parse_url

    try:
        if parse_url(db_uri).get("db") is not None:
            return None
    except ValueError:
        return None  # Redis.from_url reports the URI itself
    if isinstance(db_name, int) and not isinstance(db_name, bool) and db_name >= 0:
        return db_name
    if isinstance(db_name, str) and db_name.strip().isdigit():
        return int(db_name.strip())
    logger.debug("RedisWrapper: db_name %r is no database index: the URI's (default) "
                 "database is used", db_name)
    return None


def client_options(db_uri: str, db_name: Optional[Union[str, int]],
                   redis_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``Redis.from_url(db_uri, ...)`` for a store: ``redis_kwargs``
    (updated in place), the database index ``db_name`` selects (unless ``redis_kwargs``
    has ``db``) and 5 s socket timeouts unless given. The async backend uses them too."""
    if "db" not in redis_kwargs:
        index = _database_index(db_uri, db_name)
        if index is not None:
            redis_kwargs["db"] = index
    redis_kwargs.setdefault("socket_connect_timeout", 5)
    redis_kwargs.setdefault("socket_timeout", 5)
    return redis_kwargs


def _to_ms(expires_at: float) -> int:
    # PXAT must be positive; a time in the past makes the key expire at once.
    return max(1, int(math.ceil(expires_at * 1000)))


class RedisWrapper(StorageBase):
    """Store records in Redis (``redis://``, ``rediss://``, ``unix://`` URIs).

    :param db_uri: passed to ``redis.Redis.from_url`` (database number,
        password, TLS and timeouts in the URL are honoured), looked up when
        the wrapper is created, so a replacement (fakeredis) is honoured.
    :param db_name: the Redis database index (``0``, ``"1"``...), as in pyop 3; a
        database given in the URI (``redis://host/2``, ``unix://...?db=2``) wins and
        ``db_name`` is then ignored.
    :param collection: the key namespace: records are ``"{collection}:{key}"``.
    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: used to compute ``now + ttl``; Redis decides expiry itself.
    :param client: an existing ``redis.Redis`` client to use instead of
        creating one (it is not closed by :meth:`close`). Otherwise one client
        (one connection pool) is shared by the wrappers of the process created
        with the same URI and options.
    :param extra_options: pyop 3's form of the driver options:
        ``{"redis_kwargs": {...}}``.
    :param redis_kwargs: extra keyword arguments for ``Redis.from_url``;
        ``socket_connect_timeout`` and ``socket_timeout`` default to 5 s.
    :raises ImportError: redis-py is not installed (``pip install pyop[redis]``).
    """

    pyop3_mapping = True

    def __init__(self, db_uri: str, db_name: Optional[Union[str, int]] = None,
                 collection: str = "", ttl: Optional[float] = None, *,
                 clock: Clock = time.time, client: Any = None,
                 extra_options: Optional[dict[str, Any]] = None,
                 **redis_kwargs: Any) -> None:
        try:
            import redis
        except ImportError as error:
            raise missing_driver("redis", "redis", error) from error
        if not collection:
            raise ValueError("RedisWrapper needs a collection")
        redis_kwargs.update((extra_options or {}).get("redis_kwargs") or {})
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        self._response_error: type[BaseException] = redis.exceptions.ResponseError
        self._watch_error: type[BaseException] = redis.exceptions.WatchError
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self.collection = collection
        self._prefix = collection + ":"
        self._cache_key: Optional[tuple[Any, str, str]] = None
        if client is None:
            # Looked up now: a replaced Redis.from_url (fakeredis) is honoured.
            factory = redis.Redis.from_url
            self._cache_key, client = _clients.acquire(
                factory, db_uri, client_options(db_uri, db_name, redis_kwargs))
        self._client = client
        self._cas = client.register_script(_CAS_SCRIPT)
        self._cas_then_set = client.register_script(_CAS_THEN_SET_SCRIPT)
        #: False once the server answered that it has no scripting (EVALSHA unknown).
        self._scripting = True

    def __repr__(self) -> str:
        return f"RedisWrapper(prefix={self._prefix!r}, ttl={self.ttl!r})"

    def _key(self, key: str) -> str:
        return self._prefix + check_key(key)

    def _decode(self, raw: Any, operation: str) -> Any:
        try:
            record = json.loads(raw)
        except ValueError as error:
            raise wrap_error(operation + " (corrupt record)", self.collection, error) from error
        if not isinstance(record, dict) or "value" not in record:
            raise wrap_error(operation + " (corrupt record)", self.collection,
                             ValueError('not a {"value": ...} record'))
        return record["value"]

    @staticmethod
    def _encode(value: Any) -> str:
        return canonical_json({"value": value})

    def _written_as(self, name: str, expected_raw: str) -> Optional[str]:
        """The stored bytes of ``name`` when they are another encoding (pyop 3's JSON,
        with whitespace) of ``expected_raw``; else None."""
        raw = self._client.get(name)
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if text == expected_raw:
            return None
        try:
            same = canonical_json(json.loads(text)) == expected_raw
        except ValueError:
            return None
        return text if same else None

    def _expiry_ms(self, expires_at: Optional[float]) -> Optional[int]:
        if expires_at is not None:  # pyop's own writes: the clock is not needed
            return _to_ms(check_expires_at(expires_at))
        expiry = self._resolve_expiry(None, self._clock())
        return None if expiry is None else _to_ms(expiry)

    def get(self, key: str, default: Any = None) -> Any:
        name = self._key(key)
        try:
            raw = self._client.get(name)
        except self._errors as error:
            raise wrap_error("get", self.collection, error) from error
        return default if raw is None else self._decode(raw, "get")

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        name = self._key(key)
        raw = self._encode(value)
        pxat = self._expiry_ms(expires_at)
        try:
            self._client.set(name, raw, pxat=pxat)
        except self._errors as error:
            raise wrap_error("set", self.collection, error) from error

    def delete(self, key: str) -> bool:
        name = self._key(key)
        try:
            return bool(self._client.delete(name))
        except self._errors as error:
            raise wrap_error("delete", self.collection, error) from error

    def consume(self, key: str) -> Any:
        name = self._key(key)
        try:
            raw = self._client.getdel(name)
        except self._errors as error:
            raise wrap_error("consume", self.collection, error) from error
        return None if raw is None else self._decode(raw, "consume")

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        name = self._key(key)
        expected_raw = self._encode(expected)
        new_raw = self._encode(new)
        pxat = None if expires_at is None else _to_ms(check_expires_at(expires_at))
        try:
            if self._compare_and_set_raw(name, expected_raw, new_raw, pxat):
                return True
            legacy = self._written_as(name, expected_raw)
            return legacy is not None and self._compare_and_set_raw(name, legacy, new_raw, pxat)
        except self._errors as error:
            raise wrap_error("compare_and_set", self.collection, error) from error

    def _compare_and_set_raw(self, name: str, expected_raw: str, new_raw: str,
                             pxat: Optional[int]) -> bool:
        if self._scripting:
            try:
                return bool(self._cas(keys=[name], args=[
                    expected_raw, new_raw, "" if pxat is None else str(pxat)]))
            except self._response_error as error:
                if "unknown command" not in str(error).lower():
                    raise
                self._scripting = False
                logger.warning("RedisWrapper: the server has no scripting (EVALSHA); "
                               "compare_and_set uses WATCH/MULTI/EXEC on %r",
                               self.collection)
        return self._compare_and_set_watch(name, expected_raw, new_raw, pxat)

    def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                 expires_at: Optional[float], other: StorageBase,
                                 other_key: str, other_value: Any,
                                 other_expires_at: Optional[float] = None) -> bool:
        """One Lua script (one round trip, atomic) when ``other`` is a Redis store on the
        same client; else :meth:`StorageBase.compare_and_set_then_set`."""
        if not (isinstance(other, RedisWrapper) and other._client is self._client
                and self._scripting):
            return super().compare_and_set_then_set(key, expected, new, expires_at, other,
                                                    other_key, other_value, other_expires_at)
        name, other_name = self._key(key), other._key(other_key)
        expected_raw, new_raw = self._encode(expected), self._encode(new)
        other_raw = self._encode(other_value)
        pxat = None if expires_at is None else _to_ms(check_expires_at(expires_at))
        other_pxat = other._expiry_ms(other_expires_at)
        try:
            try:
                args = [expected_raw, new_raw, "" if pxat is None else str(pxat),
                        other_raw, "" if other_pxat is None else str(other_pxat)]
                if self._cas_then_set(keys=[name, other_name], args=args):
                    return True
                legacy = self._written_as(name, expected_raw)
                if legacy is None:
                    return False
                args[0] = legacy
                return bool(self._cas_then_set(keys=[name, other_name], args=args))
            except self._response_error as error:
                if "unknown command" not in str(error).lower():
                    raise
        except self._errors as error:
            raise wrap_error("compare_and_set", self.collection, error) from error
        # no scripting on this server: compare_and_set notes it and uses WATCH/MULTI/EXEC
        return super().compare_and_set_then_set(key, expected, new, expires_at, other,
                                                other_key, other_value, other_expires_at)

    def _compare_and_set_watch(self, name: str, expected_raw: str, new_raw: str,
                               pxat: Optional[int]) -> bool:
        """``compare_and_set`` as an optimistic transaction: ``WATCH key``, ``GET``,
        compare, then ``MULTI SET EXEC``, which the server aborts if the key changed
        after the ``WATCH`` (then the comparison is made again)."""
        expected = expected_raw.encode("utf-8")
        with self._client.pipeline(transaction=True) as pipe:
            for _ in range(_CAS_ATTEMPTS):
                try:
                    pipe.watch(name)
                    current = pipe.get(name)
                    if isinstance(current, str):  # a client with decode_responses=True
                        current = current.encode("utf-8")
                    if current != expected:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    if pxat is None:
                        pipe.set(name, new_raw, keepttl=True)
                    else:
                        pipe.set(name, new_raw, pxat=pxat)
                    pipe.execute()
                    return True
                except self._watch_error:
                    continue
        logger.warning("RedisWrapper: compare_and_set gave up after %d concurrent changes "
                       "on %r", _CAS_ATTEMPTS, self.collection)
        return False

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        name = self._key(key)
        raw = self._encode(value)
        pxat = self._expiry_ms(expires_at)
        try:
            return bool(self._client.set(name, raw, nx=True, pxat=pxat))
        except self._errors as error:
            raise wrap_error("add", self.collection, error) from error

    def purge_expired(self) -> int:
        """Redis expires records itself: nothing to do, returns 0."""
        return 0

    def close(self) -> None:
        """Release this wrapper's share of the client; the last one closes it."""
        if self._cache_key is None:
            return
        cache_key, self._cache_key = self._cache_key, None
        client = _clients.release(cache_key)
        if client is None:  # pragma: no cover
            return
        try:
            client.close()
        except self._errors as error:  # pragma: no cover - closing never talks to the server
            logger.debug("RedisWrapper: error on close: %s", type(error).__name__)

    def keys(self) -> Iterator[str]:
        """Iterate with ``SCAN MATCH prefix*`` (never ``KEYS``)."""
        pattern = _glob_escape(self._prefix) + "*"
        start = len(self._prefix)
        try:
            for name in self._client.scan_iter(match=pattern, count=500):
                if isinstance(name, bytes):
                    name = name.decode("utf-8")
                yield name[start:]
        except self._errors as error:
            raise wrap_error("keys", self.collection, error) from error


def _create(db_uri: str, collection: str, db_name: Optional[Union[str, int]],
            ttl: Optional[int], **kwargs: Any) -> RedisWrapper:
    """``StorageBase.from_uri`` for ``redis://``, ``rediss://`` and ``unix://``."""
    return RedisWrapper(db_uri, db_name, collection, ttl, **kwargs)


register_backend("redis", _create, frozenset({"redis", "rediss", "unix"}))
