"""Redis for :mod:`pyop.aio`: :class:`AsyncRedisStorage`, on ``redis.asyncio``.

The store is :class:`pyop.storage.RedisWrapper` itself -- the same record layout
(``"{collection}:{key}"`` holding ``{"value": ...}`` as JSON, expiry with ``SET ... PXAT``),
the same Lua scripts for ``compare_and_set`` and ``compare_and_set_then_set``, the same
``GETDEL`` and ``SET NX``, the same error wrapping -- over a synchronous face of a
``redis.asyncio.Redis`` client whose every command is awaited on the event loop
(:func:`~pyop.aio._bridge.await_only`). Records written by either are read by the other.

Clients: the stores created from one URL with the same options share, on each event
loop, one ``redis.asyncio.Redis`` (one connection pool), as the synchronous stores share
one client; so a ``compare_and_set_then_set`` between two of them is one atomic script.
A pool's connections belong to the loop that opened them: the stores serve any running
loop, each with its own client made on the first use there and closed when that loop
shuts down (:class:`~pyop.aio._loops.LoopLocal`). A client passed as ``client=`` serves
the loop that first uses it only (:class:`~pyop.aio.EventLoopMismatch` elsewhere).
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Iterator
from typing import Any, Callable, Optional, Union

from ...storage.base import Clock, SharedClients, missing_driver
from ...storage.redis import RedisWrapper, client_options
from .._bridge import await_only, in_bridge
from .base import DriverFace, GreenletStorage, release_shared_client

__all__ = ["AsyncRedisStorage"]

logger = logging.getLogger(__name__)

#: The synchronous faces of the ``redis.asyncio`` clients shared by the stores of one URL.
_clients = SharedClients()

#: The face of each client given as ``client=`` (one per client: same client, same face).
_faces: weakref.WeakKeyDictionary[Any, SyncRedis] = weakref.WeakKeyDictionary()


class _LoopClient:
    """The ``redis.asyncio.Redis`` client of one event loop and its registered scripts."""

    __slots__ = ("client", "scripts")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.scripts: dict[str, Any] = {}


class SyncRedis(DriverFace):
    """The commands :class:`~pyop.storage.RedisWrapper` sends, as blocking calls on a
    ``redis.asyncio.Redis``: each awaits the client's coroutine with
    :func:`~pyop.aio._bridge.await_only` (so only inside :func:`~pyop.aio._bridge.run_sync`).

    Constructed as a :class:`~pyop.aio.storage.base.DriverFace`.
    """

    what = "AsyncRedisStorage's redis.asyncio client"
    entry = _LoopClient

    def script(self, text: str) -> Any:
        """The running loop's client's registered Lua script ``text``."""
        entry = self._current()
        script = entry.scripts.get(text)
        if script is None:
            script = entry.scripts[text] = entry.client.register_script(text)
        return script

    def get(self, name: str) -> Any:
        return await_only(self.client.get(name))

    def set(self, name: str, value: Any, **options: Any) -> Any:
        return await_only(self.client.set(name, value, **options))

    def delete(self, *names: str) -> int:
        return int(await_only(self.client.delete(*names)))

    def getdel(self, name: str) -> Any:
        return await_only(self.client.getdel(name))

    def register_script(self, script: str) -> SyncScript:
        return SyncScript(self, script)

    def pipeline(self, transaction: bool = True) -> SyncPipeline:
        return SyncPipeline(self.client.pipeline(transaction=transaction))

    def scan_iter(self, match: Optional[str] = None, count: Optional[int] = None
                  ) -> Iterator[Any]:
        names = self.client.scan_iter(match=match, count=count)
        try:
            while True:
                try:
                    yield await_only(names.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if in_bridge():
                await_only(names.aclose())

    def close(self) -> None:
        await_only(self.client.aclose())


class SyncScript:
    """A Lua script registered on the running loop's client (``EVALSHA``, loaded on the
    first ``NOSCRIPT``)."""

    def __init__(self, face: SyncRedis, text: str) -> None:
        self.face = face
        self.text = text

    def __call__(self, keys: Any = None, args: Any = None) -> Any:
        return await_only(self.face.script(self.text)(keys=keys, args=args))


class SyncPipeline:
    """A ``redis.asyncio`` pipeline for ``WATCH``/``MULTI``/``EXEC``: commands run at
    once while watching, are queued after :meth:`multi` and sent by :meth:`execute`."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def __enter__(self) -> SyncPipeline:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        await_only(self.pipe.reset())

    def watch(self, *names: str) -> None:
        await_only(self.pipe.watch(*names))

    def unwatch(self) -> None:
        await_only(self.pipe.unwatch())

    def get(self, name: str) -> Any:
        return await_only(self.pipe.get(name))  # while watching: at once

    def multi(self) -> None:
        self.pipe.multi()

    def set(self, name: str, value: Any, **options: Any) -> None:
        self.pipe.set(name, value, **options)  # after multi: queued

    def execute(self) -> Any:
        return await_only(self.pipe.execute())


@functools.cache
def _face_factory(from_url: Callable[..., Any]) -> Callable[..., SyncRedis]:
    """A factory of faces over ``from_url``'s clients (one per ``from_url``: a stable
    key for :class:`~pyop.storage.base.SharedClients`)."""
    def make(db_uri: str, **options: Any) -> SyncRedis:
        return SyncRedis(connect=functools.partial(from_url, db_uri, **options))
    return make


class AsyncRedisStorage(GreenletStorage):
    """Store records in Redis from asyncio code (``redis://``, ``rediss://``, ``unix://``).

    The arguments are those of :class:`pyop.storage.RedisWrapper`:

    :param db_uri: passed to ``redis.asyncio.Redis.from_url`` (looked up when the store is
        created, so a replacement is honoured).
    :param db_name: the database index, as in :class:`~pyop.storage.RedisWrapper` (a
        database in the URI wins).
    :param collection: the key namespace: records are ``"{collection}:{key}"``.
    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: used to compute ``now + ttl``; Redis decides expiry itself.
    :param client: an existing ``redis.asyncio.Redis`` client to use (not closed by
        :meth:`close`); it serves the event loop that first uses it, and raises
        :class:`~pyop.aio.EventLoopMismatch` on another. Else the stores of the same URL
        and options share a client per event loop.
    :param extra_options: ``{"redis_kwargs": {...}}``.
    :param redis_kwargs: extra keyword arguments for ``from_url``; ``socket_connect_timeout``
        and ``socket_timeout`` default to 5 s.
    :raises ImportError: redis-py is not installed (``pip install pyop[async-redis]``).
    """

    sync: RedisWrapper

    def __init__(self, db_uri: str, db_name: Optional[Union[str, int]] = None,
                 collection: str = "", ttl: Optional[float] = None, *,
                 clock: Clock = time.time, client: Any = None,
                 extra_options: Optional[dict[str, Any]] = None,
                 **redis_kwargs: Any) -> None:
        try:
            import redis.asyncio
        except ImportError as error:
            raise missing_driver("async-redis", "redis", error) from error
        if not collection:
            raise ValueError("AsyncRedisStorage needs a collection")
        redis_kwargs.update((extra_options or {}).get("redis_kwargs") or {})
        self._cache_key: Optional[tuple[Any, str, str]] = None
        if client is None:
            factory = _face_factory(redis.asyncio.Redis.from_url)
            self._cache_key, face = _clients.acquire(
                factory, db_uri, client_options(db_uri, db_name, redis_kwargs))
        else:
            face = _faces.get(client)
            if face is None:
                face = _faces[client] = SyncRedis(client)
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        super().__init__(RedisWrapper(db_uri, db_name, collection, ttl, clock=clock,
                                      client=face))

    def __repr__(self) -> str:
        return f"AsyncRedisStorage(collection={self.sync.collection!r}, ttl={self.ttl!r})"

    @property
    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` client of the running event loop."""
        face: SyncRedis = self.sync._client
        return face.client

    async def close(self) -> None:
        """Release this store's share of its clients; the last one closes them: the
        running loop's now, those of other loops still open on their loops (scheduled
        there). A store used again afterwards makes a new client on its loop."""
        key, self._cache_key = self._cache_key, None
        await release_shared_client(_clients, key, lambda face: face.aclose(), self._errors,
                                    "AsyncRedisStorage")


def _create(db_uri: str, collection: str, db_name: Optional[Union[str, int]],
            ttl: Optional[float], **kwargs: Any) -> AsyncRedisStorage:
    """``AsyncStorageBase.from_uri`` for ``redis://``, ``rediss://`` and ``unix://``."""
    return AsyncRedisStorage(db_uri, db_name, collection, ttl, **kwargs)
