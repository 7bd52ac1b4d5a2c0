"""The storage contract as coroutines: :class:`AsyncStorageBase`.

Same primitives, same semantics and the same atomicity as
:class:`pyop.storage.StorageBase` (see there): ``get``, ``set``, ``delete``,
``consume`` (single use, RFC 6749 4.1.2), ``compare_and_set`` (refresh-token
rotation, RFC 9700 4.14.2), ``compare_and_set_then_set``, ``add`` (replay caches,
RFC 7523 3), ``purge_expired``, ``close`` and ``keys`` (an async iterator, for
administration only).

The backends of :mod:`pyop.aio.storage` run the *same* backend code as their
synchronous counterparts (the same Lua scripts, SQL statements, MongoDB filters,
record formats and error wrapping), with their driver's native asyncio client
underneath: :class:`GreenletStorage` runs the synchronous backend inside
:func:`~pyop.aio._bridge.run_sync`, and the driver calls it makes are awaited on the
event loop. Records written by one are read by the other.

Any other implementation of :class:`AsyncStorageBase` (the coroutines alone) works
too: the protocol code reaches it through :class:`BridgedStorage`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator, MutableMapping
from typing import Any, Callable, Optional, Union

from ...storage.base import SharedClients, StorageBase
from ...storage.memory import DictStorage, MemoryStorage
from ...storage.stateless import StatelessWrapper
from .._bridge import await_only, run_sync
from .._loops import LoopClients, running_loop
from .schemes import create

__all__ = ["AsyncStorageBase", "BridgedStorage", "DriverFace", "GreenletStorage", "as_sync_storage",
           "running_loop"]

logger = logging.getLogger(__name__)

Number = Union[int, float]


class AsyncStorageBase(abc.ABC):
    """The storage contract of :class:`pyop.storage.StorageBase`, as coroutines."""

    #: Default lifetime in seconds of records written without ``expires_at``.
    ttl: Optional[Number] = None

    @abc.abstractmethod
    async def get(self, key: str, default: Any = None) -> Any:
        """The live value of ``key``, or ``default`` (:meth:`StorageBase.get`)."""

    @abc.abstractmethod
    async def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        """Store ``value`` under ``key`` (:meth:`StorageBase.set`)."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether a live record was removed (:meth:`StorageBase.delete`)."""

    @abc.abstractmethod
    async def consume(self, key: str) -> Any:
        """Atomically get and delete ``key``: of N concurrent consumers exactly one gets
        the value (:meth:`StorageBase.consume`; RFC 6749 4.1.2)."""

    @abc.abstractmethod
    async def compare_and_set(self, key: str, expected: Any, new: Any,
                              expires_at: Optional[float] = None) -> bool:
        """Atomically replace ``expected`` by ``new`` (:meth:`StorageBase.compare_and_set`)."""

    @abc.abstractmethod
    async def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                       expires_at: Optional[float], other: AsyncStorageBase,
                                       other_key: str, other_value: Any,
                                       other_expires_at: Optional[float] = None) -> bool:
        """:meth:`compare_and_set`, then ``other.set(...)`` only if it replaced the value
        (:meth:`StorageBase.compare_and_set_then_set`)."""

    @abc.abstractmethod
    async def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        """Store only if ``key`` is absent (:meth:`StorageBase.add`)."""

    @abc.abstractmethod
    async def purge_expired(self) -> int:
        """Remove expired records now; how many (best effort)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the backend's connections."""

    @abc.abstractmethod
    def keys(self) -> AsyncIterator[str]:
        """The live keys (scans the collection: never on request paths)."""

    def as_sync(self) -> StorageBase:
        """A synchronous view of this store for the protocol code run by
        :func:`~pyop.aio._bridge.run_sync` (every call awaits on the event loop)."""
        return BridgedStorage(self)

    async def __aenter__(self) -> AsyncStorageBase:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    @staticmethod
    def type(db_uri: str) -> str:
        """The kind of backend a URI selects (:meth:`StorageBase.type`)."""
        return StorageBase.type(db_uri)

    @classmethod
    def from_uri(cls, db_uri: str, collection: Optional[str] = None,
                 db_name: Optional[str] = None, ttl: Optional[int] = None,
                 **kwargs: Any) -> AsyncStorageBase:
        """Create the async backend a URI selects, with the arguments of
        :meth:`StorageBase.from_uri <pyop.storage.StorageBase.from_uri>` (the backend's
        asyncio driver: ``redis.asyncio``, PyMongo's ``AsyncMongoClient``, SQLAlchemy's
        asyncio extension; ``memory://`` and ``stateless://`` need none).

        :raises ValueError: unknown scheme, or a required part is missing.
        :raises ImportError: the backend's driver is not installed (names the pip extra).
        """
        store: AsyncStorageBase = create(db_uri, collection, db_name, ttl, **kwargs)
        return store


class GreenletStorage(AsyncStorageBase):
    """An async store that runs a synchronous backend, whose driver calls are awaited
    on the event loop (see the module docstring).

    :param sync: the synchronous backend; every driver call it makes must go through
        :func:`~pyop.aio._bridge.await_only` (or make no I/O at all).
    :param blocking_free: ``sync`` makes no I/O (in-process stores): its methods are
        called directly, without a greenlet.
    """

    def __init__(self, sync: StorageBase, *, blocking_free: bool = False) -> None:
        self.sync = sync
        self.ttl = sync.ttl
        self._direct = blocking_free

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync!r})"

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self._direct:
            return fn(*args)
        return await run_sync(fn, *args)

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._call(getattr(self.sync, name), *args)

    async def get(self, key: str, default: Any = None) -> Any:
        return await self._run("get", key, default)

    async def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        await self._run("set", key, value, expires_at)

    async def delete(self, key: str) -> bool:
        return bool(await self._run("delete", key))

    async def consume(self, key: str) -> Any:
        return await self._run("consume", key)

    async def compare_and_set(self, key: str, expected: Any, new: Any,
                              expires_at: Optional[float] = None) -> bool:
        return bool(await self._run("compare_and_set", key, expected, new, expires_at))

    async def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                       expires_at: Optional[float], other: AsyncStorageBase,
                                       other_key: str, other_value: Any,
                                       other_expires_at: Optional[float] = None) -> bool:
        other_sync = other.as_sync()
        if self._direct and not (isinstance(other, GreenletStorage) and other._direct):
            # the other store makes I/O: the call needs a greenlet after all
            return bool(await run_sync(self.sync.compare_and_set_then_set, key, expected, new,
                                       expires_at, other_sync, other_key, other_value,
                                       other_expires_at))
        return bool(await self._run("compare_and_set_then_set", key, expected, new,
                                    expires_at, other_sync, other_key, other_value,
                                    other_expires_at))

    async def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        return bool(await self._run("add", key, value, expires_at))

    async def purge_expired(self) -> int:
        return int(await self._run("purge_expired"))

    async def close(self) -> None:
        await self._run("close")

    async def keys(self) -> AsyncIterator[str]:
        for key in await self._call(_key_list, self.sync):
            yield key

    def as_sync(self) -> StorageBase:
        return self.sync


def _key_list(store: StorageBase) -> list[str]:
    return list(store.keys())


class BridgedStorage(StorageBase):
    """A :class:`~pyop.storage.StorageBase` over an :class:`AsyncStorageBase`, for the
    protocol code run by :func:`~pyop.aio._bridge.run_sync`: every call awaits the
    async store on the event loop."""

    def __init__(self, store: AsyncStorageBase) -> None:
        self.store = store
        self.ttl = store.ttl

    def __repr__(self) -> str:
        return f"BridgedStorage({self.store!r})"

    def get(self, key: str, default: Any = None) -> Any:
        return await_only(self.store.get(key, default))

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        await_only(self.store.set(key, value, expires_at))

    def delete(self, key: str) -> bool:
        return await_only(self.store.delete(key))

    def consume(self, key: str) -> Any:
        return await_only(self.store.consume(key))

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        return await_only(self.store.compare_and_set(key, expected, new, expires_at))

    def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                 expires_at: Optional[float], other: StorageBase,
                                 other_key: str, other_value: Any,
                                 other_expires_at: Optional[float] = None) -> bool:
        if isinstance(other, BridgedStorage):
            return await_only(self.store.compare_and_set_then_set(
                key, expected, new, expires_at, other.store, other_key, other_value,
                other_expires_at))
        return super().compare_and_set_then_set(key, expected, new, expires_at, other,
                                                other_key, other_value, other_expires_at)

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        return await_only(self.store.add(key, value, expires_at))

    def purge_expired(self) -> int:
        return await_only(self.store.purge_expired())

    def close(self) -> None:
        await_only(self.store.close())

    def keys(self) -> Iterator[str]:
        return iter(await_only(_collect(self.store.keys())))


async def _collect(keys: AsyncIterator[str]) -> list[str]:
    return [key async for key in keys]


async def release_shared_client(clients: SharedClients, key: Optional[tuple[Any, str, str]],
                                close: Callable[[Any], Awaitable[Any]],
                                errors: tuple[type[BaseException], ...], store: str) -> None:
    """Release one store's share of a driver client of ``clients`` (the key its
    ``acquire`` gave, or None); the last share closes the client with ``close(client)``,
    logging (not raising) a driver error."""
    if key is None:
        return
    client = clients.release(key)
    if client is None:
        return
    try:
        await close(client)
    except errors as error:  # pragma: no cover - closing never talks to the server
        logger.debug("%s: error on close: %s", store, type(error).__name__)


def as_sync_storage(obj: Any, name: str) -> Any:
    """The synchronous view, for the protocol code, of a store given to :mod:`pyop.aio`.

    An :class:`AsyncStorageBase` gives its :meth:`~AsyncStorageBase.as_sync` view;
    in-process stores that make no I/O (a ``dict``, :class:`~pyop.storage.MemoryStorage`,
    :class:`~pyop.storage.DictStorage`, a :class:`~pyop.storage.StatelessWrapper` whose
    replay cache is one of these) and ``None`` are used as they are.

    :raises TypeError: a synchronous store that makes I/O (it would block the event
        loop): the message names the async backend to use instead.
    """
    if isinstance(obj, AsyncStorageBase):
        return obj.as_sync()
    if obj is None or isinstance(obj, (MemoryStorage, DictStorage, dict)):
        return obj
    if isinstance(obj, StatelessWrapper):  # sealed: I/O only through its replay cache
        as_sync_storage(obj.replay_cache, name + " (its replay_cache)")
        return obj
    if isinstance(obj, MutableMapping) and not isinstance(obj, StorageBase):
        return obj
    twin = _ASYNC_TWINS.get(type(obj).__name__, "the async backend of pyop.aio.storage")
    raise TypeError(
        f"{name}: a {type(obj).__name__} would block the event loop; use {twin} "
        f"(AsyncStorageBase.from_uri(...) takes the same URI) or an in-memory store")


#: the async backend of each synchronous one, named in the error above
_ASYNC_TWINS = {"RedisWrapper": "pyop.aio.storage.AsyncRedisStorage",
                "SQLWrapper": "pyop.aio.storage.AsyncSQLStorage",
                "MongoWrapper": "pyop.aio.storage.AsyncMongoStorage"}


class DriverFace:
    """Base of the blocking faces of an asyncio driver client that the synchronous
    backends' code calls (:class:`~pyop.aio.storage.redis.SyncRedis`,
    :class:`~pyop.aio.storage.mongo.SyncMongoClient`): the client of the running event
    loop, one made per loop by ``connect``, or the one the application passed in
    (:class:`~pyop.aio._loops.LoopClients`).

    Subclasses name :attr:`what`, wrap each client in an :meth:`entry` (the client and what
    is cached for it on its loop) and name its :attr:`close_method`.

    :param client: a client of the application's (it serves the loop that first uses it).
    :param connect: else, makes a client: one per event loop, on its first use there.
    """

    #: names the clients in errors and logs
    what = "an asyncio driver client"
    #: the name of the client's close coroutine
    close_method = "aclose"

    def __init__(self, client: Any = None, *,
                 connect: Optional[Callable[[], Any]] = None) -> None:
        entry = self.entry
        self._clients = LoopClients(
            entry(client), connect=None if connect is None else (lambda: entry(connect())),
            close=self.close_entry, what=self.what)

    @staticmethod
    def entry(client: Any) -> Any:
        """What is kept per client (by default the client itself)."""
        return client

    async def close_entry(self, entry: Any) -> None:
        """Close the client of ``entry`` (on its loop): ``await client.<close_method>()``."""
        await getattr(entry.client, self.close_method)()

    def __repr__(self) -> str:
        if self._clients.per_loop:
            return f"{type(self).__name__}(per event loop)"
        return f"{type(self).__name__}({self._clients.given.client!r})"

    def _current(self) -> Any:
        """The running loop's entry."""
        return self._clients.current()

    @property
    def client(self) -> Any:
        """The driver client of the running event loop."""
        return self._current().client

    async def aclose(self) -> None:
        """Close the clients this face made (see :meth:`LoopClients.aclose`)."""
        await self._clients.aclose()
