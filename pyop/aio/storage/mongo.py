"""MongoDB for :mod:`pyop.aio`: :class:`AsyncMongoStorage`, on PyMongo's ``AsyncMongoClient``.

The store is :class:`pyop.storage.MongoWrapper` itself -- the same documents
(``{"_id", "lookup_key", "value", "expires_at", "digest"}``), the same filters and
single-document atomic operations (``find_one_and_delete`` for ``consume``, ``update_one``
on the expected digest for ``compare_and_set``, ``replace_one(upsert=True)`` for ``add``),
the same reading of pyop 3's records and the same error wrapping -- over a synchronous
face of an ``AsyncMongoClient`` whose every operation is awaited on the event loop
(:func:`~pyop.aio._bridge.await_only`). Records written by either are read by the other.

The one-time setup of a collection (the TTL index on ``expires_at``, the detection of
pyop 3's indexes) runs once, before the first operation, under an :class:`asyncio.Lock`:
concurrent first operations wait for it instead of repeating it.

Clients: the stores created from one URI with the same options share, on each event
loop, one ``AsyncMongoClient``, as the synchronous stores share a ``MongoClient``. A
client belongs to the loop that first used it: the stores serve any running loop, each
with its own client made on the first use there and closed when that loop shuts down
(:class:`~pyop.aio._loops.LoopLocal`). A client passed as ``client=`` serves the loop
that first uses it only (:class:`~pyop.aio.EventLoopMismatch` elsewhere).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

from ...storage.base import Clock, SharedClients, missing_driver
from ...storage.mongo import MongoWrapper, client_options
from .._bridge import await_only, in_bridge, run_sync
from .._loops import LoopLocal
from .base import DriverFace, GreenletStorage, release_shared_client

__all__ = ["AsyncMongoStorage"]

logger = logging.getLogger(__name__)

#: The synchronous faces of the ``AsyncMongoClient`` shared by the stores of one URI.
_clients = SharedClients()


class _LoopClient:
    """The ``AsyncMongoClient`` of one event loop and its collections, by name."""

    __slots__ = ("client", "collections")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.collections: dict[tuple[Optional[str], str], Any] = {}


class SyncMongoClient(DriverFace):
    """An ``AsyncMongoClient`` (or an object with its API) as the blocking client
    :class:`~pyop.storage.MongoWrapper` uses: its databases' collections' operations
    await the client's coroutines with :func:`~pyop.aio._bridge.await_only` (so only
    inside :func:`~pyop.aio._bridge.run_sync`).

    Constructed as a :class:`~pyop.aio.storage.base.DriverFace`.
    """

    what = "AsyncMongoStorage's AsyncMongoClient"
    entry = _LoopClient
    close_method = "close"

    def collection(self, database: Optional[str], name: str) -> Any:
        """The running loop's client's collection ``name`` of ``database`` (None: the
        client's default database)."""
        entry = self._current()
        collection = entry.collections.get((database, name))
        if collection is None:
            client = entry.client
            db = client.get_default_database() if database is None else client[database]
            collection = entry.collections[(database, name)] = db[name]
        return collection

    def __getitem__(self, name: str) -> SyncDatabase:
        return SyncDatabase(self, name)

    def get_default_database(self) -> SyncDatabase:
        if not self._clients.per_loop:
            self._clients.given.client.get_default_database()  # ConfigurationError: none in its URI
        else:
            # the store's URI names no database (MongoWrapper looked first): no default
            import pymongo.errors

            raise pymongo.errors.ConfigurationError(
                "No default database name defined or provided.")
        return SyncDatabase(self, None)



class SyncDatabase:
    """A database of :class:`SyncMongoClient` (None: the client's default one)."""

    def __init__(self, face: SyncMongoClient, name: Optional[str]) -> None:
        self.face = face
        self.name = name

    def __getitem__(self, name: str) -> SyncCollection:
        return SyncCollection(self.face, self.name, name)


class SyncCollection:
    """The collection operations :class:`~pyop.storage.MongoWrapper` uses, blocking on
    the ``AsyncCollection`` of the running loop's client."""

    def __init__(self, face: SyncMongoClient, database: Optional[str], name: str) -> None:
        self.face = face
        self.database = database
        self.name = name

    @property
    def collection(self) -> Any:
        """The ``AsyncCollection`` of the running event loop's client."""
        return self.face.collection(self.database, self.name)

    def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.find_one(*args, **kwargs))

    def find(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """The documents, fetched in batches by the async cursor."""
        cursor = self.collection.find(*args, **kwargs)
        try:
            while True:
                try:
                    yield await_only(cursor.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if in_bridge():
                await_only(cursor.close())

    def find_one_and_delete(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.find_one_and_delete(*args, **kwargs))

    def insert_one(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.insert_one(*args, **kwargs))

    def replace_one(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.replace_one(*args, **kwargs))

    def update_one(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.update_one(*args, **kwargs))

    def delete_one(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.delete_one(*args, **kwargs))

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.delete_many(*args, **kwargs))

    def count_documents(self, *args: Any, **kwargs: Any) -> int:
        return int(await_only(self.collection.count_documents(*args, **kwargs)))

    def create_index(self, *args: Any, **kwargs: Any) -> Any:
        return await_only(self.collection.create_index(*args, **kwargs))

    def index_information(self) -> Any:
        return await_only(self.collection.index_information())


@functools.cache
def _face_factory(client_class: Callable[..., Any]) -> Callable[..., SyncMongoClient]:
    """A factory of faces over ``client_class``'s clients (one per class: a stable key
    for :class:`~pyop.storage.base.SharedClients`)."""
    def make(db_uri: str, **options: Any) -> SyncMongoClient:
        return SyncMongoClient(connect=functools.partial(client_class, db_uri, **options))
    return make


def _nothing() -> None:
    return None


class AsyncMongoStorage(GreenletStorage):
    """Store records in a MongoDB collection from asyncio code.

    The arguments are those of :class:`pyop.storage.MongoWrapper`
    (``AsyncMongoStorage(db_uri, 'provider', 'authz_codes')``):

    :param db_uri: ``mongodb://`` or ``mongodb+srv://`` connection string.
    :param db_name: database name; ``None`` uses the URI's default database (a database
        in the URI wins, as in pyop 3).
    :param collection: collection name.
    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: current UNIX time; used by the read filters.
    :param client: a ``pymongo.AsyncMongoClient`` to use (not closed by :meth:`close`);
        it serves the event loop that first uses it, and raises
        :class:`~pyop.aio.EventLoopMismatch` on another. Else the stores of the same URI
        and options share a client per event loop (``pymongo.AsyncMongoClient`` looked
        up when the store is created).
    :param extra_options: ``{"mongo_kwargs": {...}}``.
    :param client_kwargs: extra client options; ``serverSelectionTimeoutMS`` defaults to
        10000 unless the URI sets it.
    :raises ImportError: PyMongo (4.13 or later, for ``AsyncMongoClient``) is not
        installed (``pip install pyop[async-mongo]``).
    :raises ValueError: no ``db_name`` and no default database in the URI.
    """

    sync: MongoWrapper

    def __init__(self, db_uri: str, db_name: Optional[str], collection: str,
                 ttl: Optional[float] = None, *, clock: Clock = time.time,
                 client: Any = None, extra_options: Optional[dict[str, Any]] = None,
                 **client_kwargs: Any) -> None:
        try:
            import pymongo
            import pymongo.errors
            client_class = pymongo.AsyncMongoClient
        except (ImportError, AttributeError) as error:
            raise missing_driver("async-mongo", "pymongo",
                                 ImportError(str(error))) from error
        client_kwargs.update((extra_options or {}).get("mongo_kwargs") or {})
        self._cache_key: Optional[tuple[Any, str, str]] = None
        if client is None:
            self._cache_key, face = _clients.acquire(
                _face_factory(client_class), db_uri, client_options(db_uri, client_kwargs))
        else:
            face = SyncMongoClient(client)
        self._errors: tuple[type[BaseException], ...] = (pymongo.errors.PyMongoError,)
        try:
            sync = MongoWrapper(db_uri, db_name, collection, ttl, clock=clock, client=face)
        except ValueError:
            if self._cache_key is not None:
                # never used: no connection to close
                _clients.release(self._cache_key)
                self._cache_key = None
            raise
        super().__init__(sync)
        #: the setup's lock, one per event loop
        self._setup: LoopLocal[asyncio.Lock] = LoopLocal(asyncio.Lock)

    def __repr__(self) -> str:
        return f"AsyncMongoStorage(collection={self.sync.collection!r}, ttl={self.ttl!r})"

    @property
    def client(self) -> Any:
        """The ``AsyncMongoClient`` of the running event loop."""
        face: SyncMongoClient = self.sync._client
        return face.client

    async def _prepare(self, operation: str) -> None:
        """The collection's one-time setup (TTL index, pyop 3 detection), once, before
        the first operation; errors are reported as ``operation``'s StorageError."""
        if self.sync._indexed:
            return
        async with self._setup.get():
            if not self.sync._indexed:
                await run_sync(self.sync._call, operation, _nothing)

    async def _run(self, name: str, *args: Any) -> Any:
        await self._prepare(name)
        return await super()._run(name, *args)

    async def keys(self) -> Any:  # an async iterator, as the base's
        await self._prepare("keys")
        async for key in super().keys():
            yield key

    async def close(self) -> None:
        """Release this store's share of its clients; the last one closes them: the
        running loop's now, those of other loops still open on their loops (scheduled
        there). A store used again afterwards makes a new client on its loop."""
        key, self._cache_key = self._cache_key, None
        await release_shared_client(_clients, key, lambda face: face.aclose(), self._errors,
                                    "AsyncMongoStorage")


def _create(db_uri: str, collection: str, db_name: Optional[str], ttl: Optional[float],
            **kwargs: Any) -> AsyncMongoStorage:
    """``AsyncStorageBase.from_uri`` for ``mongodb://`` and ``mongodb+srv://``."""
    return AsyncMongoStorage(db_uri, db_name, collection, ttl, **kwargs)
