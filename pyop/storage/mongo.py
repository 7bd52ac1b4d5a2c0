"""MongoDB backend (pymongo 4.x; ``mongodb://`` and ``mongodb+srv://`` URIs).

One document per record::

    {"_id": key, "value": <the JSON value>, "expires_at": <BSON date or null>,
     "digest": <hex SHA-256 of the value's canonical JSON>}

A TTL index (``expireAfterSeconds=0``) on ``expires_at`` lets MongoDB delete
expired documents itself; since its TTL monitor only runs every 60 s, every
read also filters on ``expires_at``. ``digest`` makes
``compare_and_set`` exact JSON equality (MongoDB's own equality on embedded
documents depends on field order and traverses arrays).

Atomicity (single-document operations are atomic in MongoDB):

* ``consume``: ``find_one_and_delete`` with the liveness filter;
* ``compare_and_set``: ``update_one`` whose filter holds the expected digest;
* ``add``: ``replace_one(upsert=True)`` filtered on "expired": it replaces an
  expired document, inserts when there is none, and fails with a duplicate
  key error (so returns False) when a live one exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Optional

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

__all__ = ["MongoWrapper"]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1)

#: MongoClients shared by the wrappers of one URI (see :class:`SharedClients`).
_clients = SharedClients()


def _to_datetime(timestamp: float) -> datetime:
    """UNIX seconds -> naive UTC datetime (what BSON dates hold), clamped to datetime's range."""
    try:
        return _EPOCH + timedelta(seconds=timestamp)
    except OverflowError:
        return datetime.max if timestamp > 0 else datetime.min


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class MongoWrapper(StorageBase):
    """Store records in a MongoDB collection.

    ``MongoWrapper(db_uri, 'provider', 'authz_codes')`` as in pyop 3. The
    MongoClient is shared by all wrappers of the process created with the
    same URI and options; replica set, TLS and auth options in the URI are
    passed through to it. ``pymongo.MongoClient`` is looked up when a wrapper
    is created, so replacing it (``mongomock.MongoClient``, ``mongomock.patch``)
    before creating stores works as it did with pyop 3.

    :param db_uri: ``mongodb://`` or ``mongodb+srv://`` connection string.
    :param db_name: database name; ``None`` uses the URI's default database.
    :param collection: collection name.
    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: current UNIX time; used by the read filters.
    :param client: a ``pymongo.MongoClient`` (or ``mongomock.MongoClient``) to
        use instead of creating one (it is not closed by :meth:`close`).
    :param client_kwargs: extra MongoClient options; ``serverSelectionTimeoutMS``
        defaults to 10000 unless the URI sets it.
    :raises ImportError: pymongo is not installed (``pip install pyop[mongo]``).
    :raises ValueError: no ``db_name`` and no default database in the URI.
    """

    def __init__(self, db_uri: str, db_name: Optional[str], collection: str,
                 ttl: Optional[float] = None, *, clock: Clock = time.time,
                 client: Any = None, **client_kwargs: Any) -> None:
        try:
            import bson.errors
            import pymongo.errors
        except ImportError as error:
            raise missing_driver("mongo", "pymongo", error) from error
        self._errors: tuple[type[BaseException], ...] = (
            pymongo.errors.PyMongoError, bson.errors.BSONError)
        self._duplicate_key = pymongo.errors.DuplicateKeyError
        self._operation_failure = pymongo.errors.OperationFailure
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self.collection = collection
        self._cache_key: Optional[tuple[Any, str, str]] = None
        if client is None:
            client = self._acquire_client(db_uri, client_kwargs)
        self._client = client
        try:
            database = client[db_name] if db_name else client.get_default_database()
        except pymongo.errors.ConfigurationError as error:
            self.close()
            raise ValueError("MongoWrapper needs db_name or a database in the URI") from error
        self._coll = database[collection]
        self._indexed = False

    def _acquire_client(self, db_uri: str, client_kwargs: dict[str, Any]) -> Any:
        # ``pymongo.MongoClient`` is looked up now, not at import time, so a host (or a
        # test) that replaced it, e.g. with ``mongomock.MongoClient``, gets its replacement.
        import pymongo

        factory = pymongo.MongoClient
        if ("serverselectiontimeoutms" not in db_uri.lower()
                and "serverSelectionTimeoutMS" not in client_kwargs):
            client_kwargs["serverSelectionTimeoutMS"] = 10000
        self._cache_key, client = _clients.acquire(factory, db_uri, client_kwargs)
        return client

    def __repr__(self) -> str:
        return f"MongoWrapper(collection={self.collection!r}, ttl={self.ttl!r})"

    # -- plumbing -----------------------------------------------------------

    def _ensure_index(self) -> None:
        if self._indexed:
            return
        try:
            self._coll.create_index("expires_at", expireAfterSeconds=0)
        except self._operation_failure as error:
            # E.g. an index on expires_at with other options exists already:
            # reads filter on expiry anyway.
            logger.warning("MongoWrapper: could not create the TTL index on %r: %s",
                           self.collection, type(error).__name__)
        self._indexed = True

    def _call(self, operation: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            self._ensure_index()
            return func(*args, **kwargs)
        except self._duplicate_key:
            raise
        except self._errors as error:
            raise wrap_error(operation, self.collection, error) from error

    def _live(self, key: str, now: float) -> dict[str, Any]:
        return {"_id": check_key(key),
                "$or": [{"expires_at": None}, {"expires_at": {"$gt": _to_datetime(now)}}]}

    def _document(self, key: str, raw: str, expiry: Optional[float]) -> dict[str, Any]:
        return {"_id": key, "value": json.loads(raw),
                "expires_at": None if expiry is None else _to_datetime(expiry),
                "digest": _digest(raw)}

    # -- primitives ---------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        doc = self._call("get", self._coll.find_one, self._live(key, self._clock()),
                         {"value": 1})
        return default if doc is None else doc.get("value")

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        check_key(key)
        raw = canonical_json(value)
        expiry = self._resolve_expiry(expires_at, self._clock())
        self._call("set", self._coll.replace_one, {"_id": key},
                   self._document(key, raw, expiry), upsert=True)

    def delete(self, key: str) -> bool:
        result = self._call("delete", self._coll.delete_one, self._live(key, self._clock()))
        return bool(result.deleted_count)

    def consume(self, key: str) -> Any:
        doc = self._call("consume", self._coll.find_one_and_delete,
                         self._live(key, self._clock()), projection={"value": 1})
        return None if doc is None else doc.get("value")

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        query = self._live(key, self._clock())
        query["digest"] = _digest(canonical_json(expected))
        new_raw = canonical_json(new)
        changes: dict[str, Any] = {"value": json.loads(new_raw), "digest": _digest(new_raw)}
        if expires_at is not None:
            changes["expires_at"] = _to_datetime(check_expires_at(expires_at))
        result = self._call("compare_and_set", self._coll.update_one, query, {"$set": changes})
        return bool(result.matched_count)

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        # Matches only an expired document; none -> upsert inserts; a live one
        # -> the insert hits the unique _id: duplicate key.
        query = {"_id": key, "expires_at": {"$lte": _to_datetime(now)}}
        try:
            self._call("add", self._coll.replace_one, query,
                       self._document(key, raw, expiry), upsert=True)
        except self._duplicate_key:
            return False
        return True

    def purge_expired(self) -> int:
        """``delete_many`` the expired documents (the TTL index does it too, every 60 s)."""
        result = self._call("purge_expired", self._coll.delete_many,
                            {"expires_at": {"$lte": _to_datetime(self._clock())}})
        return int(result.deleted_count)

    def close(self) -> None:
        """Release this wrapper's share of the client; the last one closes it."""
        if self._cache_key is None:
            return
        cache_key, self._cache_key = self._cache_key, None
        client = _clients.release(cache_key)
        if client is None:
            return
        try:
            client.close()
        except self._errors as error:  # pragma: no cover
            logger.debug("MongoWrapper: error on close: %s", type(error).__name__)

    def keys(self) -> Iterator[str]:
        """``find`` over the live documents, projecting ``_id`` only (a cursor, batched)."""
        now = self._clock()
        query = {"$or": [{"expires_at": None}, {"expires_at": {"$gt": _to_datetime(now)}}]}
        try:
            self._ensure_index()
            for doc in self._coll.find(query, {"_id": 1}):
                yield doc["_id"]
        except self._errors as error:
            raise wrap_error("keys", self.collection, error) from error
