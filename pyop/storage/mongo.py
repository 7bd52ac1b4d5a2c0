"""MongoDB backend (pymongo 4.x; ``mongodb://`` and ``mongodb+srv://`` URIs).

One document per record::

    {"_id": key, "lookup_key": key, "value": <the JSON value>,
     "expires_at": <BSON date or null>,
     "digest": <hex SHA-256 of the value's canonical JSON>}

``lookup_key`` repeats the key so that the documents fit in a collection written by
pyop 3, which has a unique index on it.

Records written by pyop 3 (``{"_id": ObjectId, "lookup_key": key, "data": value,
"last_modified": date}``, expired by a TTL index named ``expiry`` on
``last_modified``) are read, consumed, replaced and deleted transparently: a
collection with pyop 3's unique ``lookup_key`` index is looked up there too when a
key is not found in the current layout (one indexed query, on misses only);
``python -m pyop.migrate`` converts them in place.

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

The atomic primitives carry the single use of authorization codes and rotated refresh
tokens (RFC 6749 4.1.2, RFC 9700 4.14.2) and of client assertions (RFC 7523 3).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from .base import (
    MISSING,
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

    pyop3_mapping = True

    def __init__(self, db_uri: str, db_name: Optional[str], collection: str,
                 ttl: Optional[float] = None, *, clock: Clock = time.time,
                 client: Any = None, extra_options: Optional[dict[str, Any]] = None,
                 **client_kwargs: Any) -> None:
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
        # pyop 3's constructor took the MongoClient options as extra_options["mongo_kwargs"]
        client_kwargs.update((extra_options or {}).get("mongo_kwargs") or {})
        if client is None:
            client = self._acquire_client(db_uri, client_kwargs)
        self._client = client
        # as in pyop 3, a database named in the URI wins over db_name
        uri_database = _uri_database(db_uri)
        try:
            if uri_database:
                database = client[uri_database]
            else:
                database = client[db_name] if db_name else client.get_default_database()
        except pymongo.errors.ConfigurationError as error:
            self.close()
            raise ValueError("MongoWrapper needs db_name or a database in the URI") from error
        self._coll = database[collection]
        self._indexed = False
        #: Whether the collection has pyop 3's unique index on ``lookup_key`` (records
        #: in pyop 3's layout may exist); decided on first use.
        self.has_pyop3_records = False
        #: pyop 3's record lifetime (its ``expiry`` TTL index), if any.
        self._pyop3_ttl: Optional[float] = None

    def _acquire_client(self, db_uri: str, client_kwargs: dict[str, Any]) -> Any:
        # ``pymongo.MongoClient`` is looked up now, not at import time, so a host (or a
        # test) that replaced it, e.g. with ``mongomock.MongoClient``, gets its replacement.
        import pymongo

        factory = pymongo.MongoClient
        self._cache_key, client = _clients.acquire(factory, db_uri,
                                                   client_options(db_uri, client_kwargs))
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
        self._detect_pyop3()
        self._indexed = True

    def _detect_pyop3(self) -> None:
        """Look for pyop 3's indexes: its unique ``lookup_key`` index, its TTL index."""
        self.has_pyop3_records = False
        self._pyop3_ttl = None
        for name, spec in self._coll.index_information().items():
            keys = [k for k, _ in spec.get("key", [])]
            if keys == ["lookup_key"] and spec.get("unique") and name != "_id_":
                self.has_pyop3_records = True
            elif keys == ["last_modified"] and "expireAfterSeconds" in spec:
                self._pyop3_ttl = float(spec["expireAfterSeconds"])

    def pyop3_indexes(self) -> list[str]:
        """Names of pyop 3's indexes on the collection (``lookup_key``, ``expiry``)."""
        self._call("index_information", lambda: None)
        names = []
        for name, spec in self._coll.index_information().items():
            keys = [k for k, _ in spec.get("key", [])]
            if name != "_id_" and keys in (["lookup_key"], ["last_modified"]):
                names.append(name)
        return sorted(names)

    # -- pyop 3 records ---------------------------------------------------------

    def _pyop3_query(self, key: str, now: Optional[float], live: bool = True
                     ) -> dict[str, Any]:
        """Filter for the pyop 3 record of ``key``: live ones (``now`` given) or expired."""
        query: dict[str, Any] = {"lookup_key": check_key(key), "data": {"$exists": True}}
        if self._pyop3_ttl is not None and now is not None:
            cutoff = _to_datetime(now - self._pyop3_ttl)
            query["last_modified"] = {"$gt": cutoff} if live else {"$lte": cutoff}
        elif not live:
            query["_id"] = {"$exists": False}  # no TTL: pyop 3 records never expire
        return query

    def pyop3_expiry(self, document: Mapping[str, Any]) -> Optional[float]:
        """The absolute expiry (UNIX seconds) of a pyop 3 document, or None."""
        if self._pyop3_ttl is None:
            return None
        modified = document.get("last_modified")
        if not isinstance(modified, datetime):
            return None
        if modified.tzinfo is not None:
            modified = modified.astimezone(timezone.utc).replace(tzinfo=None)
        return (modified - _EPOCH).total_seconds() + self._pyop3_ttl

    def _pyop3_get(self, key: str, now: float) -> Any:
        if not self.has_pyop3_records:
            return MISSING
        doc = self._call("get", self._coll.find_one, self._pyop3_query(key, now), {"data": 1})
        return MISSING if doc is None else doc.get("data")

    def _drop_pyop3(self, key: str, operation: str) -> int:
        """Delete the pyop 3 record of ``key`` (live or not); how many were deleted."""
        if not self.has_pyop3_records:
            return 0
        result = self._call(operation, self._coll.delete_many,
                            {"lookup_key": check_key(key), "data": {"$exists": True}})
        return int(result.deleted_count)

    def convert_pyop3_document(self, document: Mapping[str, Any]) -> bool:
        """Replace one pyop 3 document by a record of the current layout (same key, value
        and expiry); False when another process converted or removed it first."""
        key = document["lookup_key"]
        raw = canonical_json(document.get("data"))
        result = self._call("convert", self._coll.delete_one, {"_id": document["_id"]})
        if not result.deleted_count:
            return False
        try:
            self._call("convert", self._coll.insert_one,
                       self._document(key, raw, self.pyop3_expiry(document)))
        except self._duplicate_key:  # written meanwhile in the current layout: it wins
            return False
        return True

    def pyop3_documents(self) -> Iterator[dict[str, Any]]:
        """The documents in pyop 3's layout, expired ones included (scans)."""
        try:
            self._ensure_index()
            yield from self._coll.find({"data": {"$exists": True},
                                        "lookup_key": {"$exists": True}})
        except self._errors as error:
            raise wrap_error("keys", self.collection, error) from error

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
        return {"_id": key, "lookup_key": key, "value": json.loads(raw),
                "expires_at": None if expiry is None else _to_datetime(expiry),
                "digest": _digest(raw)}

    # -- primitives ---------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        now = self._clock()
        doc = self._call("get", self._coll.find_one, self._live(key, now), {"value": 1})
        if doc is not None:
            return doc.get("value")
        value = self._pyop3_get(key, now)
        return default if value is MISSING else value

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        check_key(key)
        raw = canonical_json(value)
        expiry = self._resolve_expiry(expires_at, self._clock())
        document = self._document(key, raw, expiry)
        try:
            self._call("set", self._coll.replace_one, {"_id": key}, document, upsert=True)
        except self._duplicate_key as error:
            # a pyop 3 record of the key holds its lookup_key: replace it
            if not self._drop_pyop3(key, "set"):
                raise wrap_error("set", self.collection, error) from error
            try:
                self._call("set", self._coll.replace_one, {"_id": key}, document, upsert=True)
            except self._duplicate_key as again:
                raise wrap_error("set", self.collection, again) from again

    def delete(self, key: str) -> bool:
        now = self._clock()
        result = self._call("delete", self._coll.delete_one, self._live(key, now))
        if result.deleted_count:
            return True
        if not self.has_pyop3_records:
            return False
        result = self._call("delete", self._coll.delete_one, self._pyop3_query(key, now))
        return bool(result.deleted_count)

    def consume(self, key: str) -> Any:
        now = self._clock()
        doc = self._call("consume", self._coll.find_one_and_delete,
                         self._live(key, now), projection={"value": 1})
        if doc is not None:
            return doc.get("value")
        if not self.has_pyop3_records:
            return None
        doc = self._call("consume", self._coll.find_one_and_delete,
                         self._pyop3_query(key, now), projection={"data": 1})
        return None if doc is None else doc.get("data")

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        now = self._clock()
        query = self._live(key, now)
        expected_raw = canonical_json(expected)
        query["digest"] = _digest(expected_raw)
        new_raw = canonical_json(new)
        changes: dict[str, Any] = {"value": json.loads(new_raw), "digest": _digest(new_raw)}
        if expires_at is not None:
            changes["expires_at"] = _to_datetime(check_expires_at(expires_at))
        result = self._call("compare_and_set", self._coll.update_one, query, {"$set": changes})
        if result.matched_count:
            return True
        return self._compare_and_set_pyop3(key, expected_raw, new_raw, expires_at, now)

    def _compare_and_set_pyop3(self, key: str, expected_raw: str, new_raw: str,
                               expires_at: Optional[float], now: float) -> bool:
        """compare_and_set on a pyop 3 record: the record is deleted (only if it still
        holds the expected value: atomic) and its successor written in the current layout."""
        if not self.has_pyop3_records:
            return False
        doc = self._call("compare_and_set", self._coll.find_one, self._pyop3_query(key, now))
        if doc is None or canonical_json(doc.get("data")) != expected_raw:
            return False
        expiry = (check_expires_at(expires_at) if expires_at is not None
                  else self.pyop3_expiry(doc))
        result = self._call("compare_and_set", self._coll.delete_one,
                            {"_id": doc["_id"], "data": doc.get("data"),
                             "last_modified": doc.get("last_modified")})
        if not result.deleted_count:
            return False
        try:
            self._call("compare_and_set", self._coll.insert_one,
                       self._document(key, new_raw, expiry))
        except self._duplicate_key:
            return False
        return True

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        # Matches only an expired document; none -> upsert inserts; a live one
        # -> the insert hits the unique _id: duplicate key (or, for a pyop 3 record of
        # the key, its unique lookup_key).
        query = {"_id": key, "expires_at": {"$lte": _to_datetime(now)}}
        for attempt in range(2):
            try:
                self._call("add", self._coll.replace_one, query,
                           self._document(key, raw, expiry), upsert=True)
            except self._duplicate_key:
                # an expired pyop 3 record (its TTL monitor has not run yet) does not count
                if attempt or not self.has_pyop3_records or not self._call(
                        "add", self._coll.delete_many,
                        self._pyop3_query(key, now, live=False)).deleted_count:
                    return False
                continue
            return True
        return False  # pragma: no cover

    def purge_expired(self) -> int:
        """``delete_many`` the expired documents (the TTL index does it too, every 60 s)."""
        now = self._clock()
        result = self._call("purge_expired", self._coll.delete_many,
                            {"expires_at": {"$lte": _to_datetime(now)}})
        count = int(result.deleted_count)
        if self.has_pyop3_records and self._pyop3_ttl is not None:
            result = self._call("purge_expired", self._coll.delete_many, {
                "data": {"$exists": True},
                "last_modified": {"$lte": _to_datetime(now - self._pyop3_ttl)}})
            count += int(result.deleted_count)
        return count

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
        """``find`` over the live documents, projecting ``_id`` only (a cursor, batched);
        then the live pyop 3 records' keys."""
        now = self._clock()
        query = {"value": {"$exists": True},
                 "$or": [{"expires_at": None}, {"expires_at": {"$gt": _to_datetime(now)}}]}
        try:
            self._ensure_index()
            for doc in self._coll.find(query, {"_id": 1}):
                yield doc["_id"]
            if self.has_pyop3_records:
                pyop3 = self._pyop3_query("", now)
                del pyop3["lookup_key"]
                for doc in self._coll.find(pyop3, {"lookup_key": 1}):
                    yield doc["lookup_key"]
        except self._errors as error:
            raise wrap_error("keys", self.collection, error) from error


def client_options(db_uri: str, client_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the client for ``db_uri``: ``client_kwargs`` (updated in
    place) with ``serverSelectionTimeoutMS`` 10000 unless the URI or ``client_kwargs``
    set it. The async backend uses them too."""
    if ("serverselectiontimeoutms" not in db_uri.lower()
            and "serverSelectionTimeoutMS" not in client_kwargs):
        client_kwargs["serverSelectionTimeoutMS"] = 10000
    return client_kwargs


def _uri_database(db_uri: str) -> Optional[str]:
    """The database named in a ``mongodb://`` URI's path, if any."""
    try:
        path = urlsplit(db_uri).path
    except ValueError:
        return None
    name = unquote(path.lstrip("/"))
    return name or None


def _create(db_uri: str, collection: str, db_name: Optional[str], ttl: Optional[int],
            **kwargs: Any) -> MongoWrapper:
    """``StorageBase.from_uri`` for ``mongodb://`` and ``mongodb+srv://``."""
    return MongoWrapper(db_uri, db_name, collection, ttl, **kwargs)


register_backend("mongodb", _create, frozenset({"mongodb", "mongodb+srv"}))
