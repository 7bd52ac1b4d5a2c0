"""AsyncMongoStorage (PyMongo's AsyncMongoClient) beyond the contract suite: races as tasks
on one event loop, records shared with MongoWrapper (pyop 3's included), from_uri forms,
error wrapping, the one-time setup, loop lag.

Every test runs against mongomock through an AsyncMongoClient-like adapter
(tests/storage/mongomock_async.py), and against a real server too when
``PYOP_TEST_MONGODB_URI`` is set.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pymongo
import pymongo.errors
import pytest
from support.loop_lag import lag_probe, smallest_gap

from pyop.aio.storage import AsyncMongoStorage, AsyncStorageBase
from pyop.exceptions import StorageError
from pyop.storage import MongoWrapper

from .conftest import MONGODB_URI
from .mongomock_async import AsyncMockClient

N = 32


def run(coroutine: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coroutine
    return asyncio.run(main())


@dataclass
class Mongo:
    """One MongoDB under test: makes async stores, and sync stores on the same data."""

    name: str
    uri: str
    db_name: str
    #: a new async client (AsyncMongoClient or the mongomock adapter); None: the store's own
    async_client: Callable[[], Any]
    #: the synchronous client on the same data
    sync_client: Any

    def store(self, collection: str, **kwargs: Any) -> AsyncMongoStorage:
        client = self.async_client()
        if client is not None:
            kwargs.setdefault("client", client)
        return AsyncMongoStorage(self.uri, self.db_name, collection, **kwargs)

    def separate(self, collection: str) -> AsyncMongoStorage:
        """A store over a client of its own."""
        if self.name == "mongomock":
            return self.store(collection)
        return AsyncMongoStorage(self.uri, self.db_name, collection,
                                 client=pymongo.AsyncMongoClient(self.uri))

    def sync_store(self, collection: str) -> MongoWrapper:
        return MongoWrapper(self.uri, self.db_name, collection, client=self.sync_client)

    def collection(self, collection: str) -> Any:
        return self.sync_client[self.db_name][collection]


async def close(*stores: AsyncMongoStorage, own_clients: bool = False) -> None:
    for store in stores:
        await store.close()
        if own_clients:
            await store.client.close()


MONGOS = ["mongomock", pytest.param("mongodb", marks=pytest.mark.servers)]


@pytest.fixture(params=MONGOS)
def mongo(request: pytest.FixtureRequest) -> Iterator[Mongo]:
    if request.param == "mongomock":
        client = request.getfixturevalue("mongomock_client")
        yield Mongo("mongomock", "mongodb://localhost", "pyop",
                    lambda: AsyncMockClient(client), client)
        return
    if not MONGODB_URI:
        pytest.skip("PYOP_TEST_MONGODB_URI not set")
    sync_client: Any = pymongo.MongoClient(MONGODB_URI)
    try:
        yield Mongo("mongodb", MONGODB_URI, "pyop_test", lambda: None, sync_client)
    finally:
        sync_client.close()


def _name() -> str:
    return "t" + uuid.uuid4().hex[:12]


# -- races: tasks on one loop ------------------------------------------------------------


def test_concurrent_consume_one_winner(mongo: Mongo) -> None:
    async def main() -> list[Any]:
        store = mongo.store(_name())
        try:
            await store.set("code", {"sub": "alice"})
            return await asyncio.gather(*(store.consume("code") for _ in range(N)))
        finally:
            await close(store)

    results = run(main())
    assert [r for r in results if r is not None] == [{"sub": "alice"}]


def test_concurrent_compare_and_set_one_winner(mongo: Mongo) -> None:
    async def main() -> list[bool]:
        store = mongo.store(_name())
        try:
            await store.set("rt", {"gen": 0})
            results = await asyncio.gather(*(
                store.compare_and_set("rt", {"gen": 0}, {"gen": i + 1}) for i in range(N)))
            assert await store.get("rt") == {"gen": results.index(True) + 1}
            return list(results)
        finally:
            await close(store)

    assert sorted(run(main())) == [False] * (N - 1) + [True]


def test_races_over_separate_clients(mongo: Mongo) -> None:
    collection = _name()

    async def main() -> tuple[list[Any], list[bool], list[bool]]:
        stores = [mongo.separate(collection) for _ in range(8)]
        try:
            await stores[0].set("code", "c")
            await stores[0].set("rt", 0)
            consumed = await asyncio.gather(*(stores[i % 8].consume("code") for i in range(N)))
            swapped = await asyncio.gather(*(stores[i % 8].compare_and_set("rt", 0, i + 1)
                                             for i in range(N)))
            added = await asyncio.gather(*(stores[i % 8].add("jti", i) for i in range(N)))
            return list(consumed), list(swapped), list(added)
        finally:
            await close(*stores, own_clients=mongo.name != "mongomock")

    consumed, swapped, added = run(main())
    assert consumed.count("c") == 1 and consumed.count(None) == N - 1
    assert swapped.count(True) == 1
    assert added.count(True) == 1


def test_setup_runs_once_for_concurrent_first_operations(mongo: Mongo,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = MongoWrapper._ensure_index

    def counting(self: MongoWrapper) -> None:
        if not self._indexed:
            calls.append(self.collection)
        original(self)

    monkeypatch.setattr(MongoWrapper, "_ensure_index", counting)
    collection = _name()

    async def main() -> None:
        store = mongo.store(collection)
        try:
            await asyncio.gather(*(store.set(f"k{i}", i) for i in range(N)))
            assert sorted([k async for k in store.keys()]) == sorted(f"k{i}" for i in range(N))
        finally:
            await close(store)

    run(main())
    assert calls == [collection]
    ttl_indexes = [spec for spec in mongo.collection(collection).index_information().values()
                   if spec.get("key") == [("expires_at", 1)]]
    assert len(ttl_indexes) == 1 and ttl_indexes[0]["expireAfterSeconds"] == 0


# -- records shared with the synchronous backend ------------------------------------------


def test_records_interchange_with_mongo_wrapper(mongo: Mongo) -> None:
    collection = _name()
    sync = mongo.sync_store(collection)
    expires = time.time() + 600
    sync.set("from-sync", {"v": [1, "é"]}, expires_at=expires)

    async def main() -> list[str]:
        store = mongo.store(collection)
        try:
            assert await store.get("from-sync") == {"v": [1, "é"]}
            await store.set("from-async", {"v": [1, "é"]}, expires_at=expires)
            assert await store.compare_and_set("from-sync", {"v": [1, "é"]}, "swapped")
            return [key async for key in store.keys()]
        finally:
            await close(store)

    assert sorted(run(main())) == ["from-async", "from-sync"]
    assert sync.get("from-async") == {"v": [1, "é"]}
    assert sync.get("from-sync") == "swapped"
    sync.set("twin", {"v": [1, "é"]}, expires_at=expires)
    documents = mongo.collection(collection)
    written = documents.find_one({"_id": "from-async"})
    twin = documents.find_one({"_id": "twin"})
    del written["_id"], written["lookup_key"], twin["_id"], twin["lookup_key"]
    assert written == twin


def test_pyop3_records_read_and_consumed(mongo: Mongo) -> None:
    """A collection written by pyop 3 (ObjectId documents with ``data``, a unique
    ``lookup_key`` index): the async store reads, swaps and consumes them as MongoWrapper."""
    collection = _name()
    documents = mongo.collection(collection)
    documents.create_index("lookup_key", unique=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    documents.insert_many([
        {"lookup_key": "code", "data": {"sub": "alice"}, "last_modified": now},
        {"lookup_key": "rt", "data": {"gen": 0}, "last_modified": now}])

    async def main() -> None:
        store = mongo.store(collection)
        try:
            assert await store.get("code") == {"sub": "alice"}
            assert sorted([k async for k in store.keys()]) == ["code", "rt"]
            assert await store.compare_and_set("rt", {"gen": 0}, {"gen": 1})
            assert await store.consume("code") == {"sub": "alice"}
            assert await store.consume("code") is None
        finally:
            await close(store)

    run(main())
    assert mongo.sync_store(collection).get("rt") == {"gen": 1}


# -- from_uri -----------------------------------------------------------------------------


def test_from_uri_forms() -> None:
    """The URI forms of StorageBase.from_uri; the AsyncMongoClient connects lazily."""
    async def main() -> None:
        stores = [
            AsyncStorageBase.from_uri("mongodb://127.0.0.1:1", "codes", db_name="op", ttl=60),
            AsyncStorageBase.from_uri("mongodb://127.0.0.1:1/fromuri", "codes", db_name="op"),
            AsyncStorageBase.from_uri("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300",
                                      "tokens", db_name="op",
                                      extra_options={"mongo_kwargs": {"appname": "x"}}),
        ]
        try:
            assert all(isinstance(s, AsyncMongoStorage) for s in stores)
            mongos = [s for s in stores if isinstance(s, AsyncMongoStorage)]
            assert isinstance(mongos[0].client, pymongo.AsyncMongoClient)
            assert [s.sync._coll.collection.full_name for s in mongos] == [
                "op.codes", "fromuri.codes", "op.tokens"]
            assert mongos[0].ttl == 60
            assert mongos[0].client.options.server_selection_timeout == 10
            assert mongos[2].client.options.server_selection_timeout == 0.3
            assert mongos[2].client.options.pool_options.metadata["application"] == {
                "name": "x"}
            # one client per URI and options, as MongoWrapper's
            again = AsyncStorageBase.from_uri("mongodb://127.0.0.1:1", "other", db_name="op")
            assert isinstance(again, AsyncMongoStorage) and again.client is mongos[0].client
            await again.close()
        finally:
            for store in stores:
                await store.close()

    run(main())
    with pytest.raises(ValueError):
        AsyncStorageBase.from_uri("mongodb://127.0.0.1:1", "codes")  # no database
    with pytest.raises(ValueError):
        AsyncStorageBase.from_uri("mongodb://127.0.0.1:1", db_name="op")  # no collection


# -- errors ----------------------------------------------------------------------------------


def _dead_uri() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=200&connectTimeoutMS=200"


async def _list_keys(store: AsyncMongoStorage) -> list[str]:
    return [key async for key in store.keys()]


OPERATIONS: list[tuple[str, Callable[[AsyncMongoStorage, AsyncMongoStorage], Awaitable[Any]]]] = [
    ("get", lambda s, o: s.get("k")),
    ("set", lambda s, o: s.set("k", 1)),
    ("delete", lambda s, o: s.delete("k")),
    ("consume", lambda s, o: s.consume("k")),
    ("compare_and_set", lambda s, o: s.compare_and_set("k", 1, 2)),
    ("compare_and_set_then_set",
     lambda s, o: s.compare_and_set_then_set("k", 1, 2, None, o, "x", 3)),
    ("add", lambda s, o: s.add("k", 1)),
    ("purge_expired", lambda s, o: s.purge_expired()),
    ("keys", lambda s, o: _list_keys(s)),
]


@pytest.mark.parametrize("operation", [op for _, op in OPERATIONS], ids=[n for n, _ in OPERATIONS])
def test_server_down_is_storage_error(operation: Any) -> None:
    async def main() -> None:
        uri = _dead_uri()
        store = AsyncMongoStorage(uri, "op", "c")
        other = AsyncMongoStorage(uri, "op", "o")
        try:
            with pytest.raises(StorageError) as caught:
                await operation(store, other)
            assert isinstance(caught.value.__cause__, pymongo.errors.PyMongoError)
            assert str(caught.value).startswith("storage ")
        finally:
            await close(store, other)

    run(main())


# -- the event loop stays free -----------------------------------------------------------


def test_loop_lag_while_operations_run(mongo: Mongo) -> None:
    """A task ticking every 5 ms sees no gap over 50 ms while 200 operations run."""
    async def main() -> float:
        store = mongo.store(_name())
        async def work(i: int) -> None:
            await store.set(f"k{i}", {"i": i})
            await store.compare_and_set(f"k{i}", {"i": i}, {"i": -i})
            await store.get(f"k{i}")
            await store.consume(f"k{i}")

        await store.get("warm-up")  # the one-time setup
        try:
            async with lag_probe() as probe:
                for start in range(0, 50, 10):  # 50 x 4 = 200 operations, 10 tasks at once
                    await asyncio.gather(*(work(i) for i in range(start, start + 10)))
        finally:
            await close(store)
        return probe.max_gap

    assert min(smallest_gap(lambda: run(main()), 0.05)) < 0.05
