"""AsyncRedisStorage (redis.asyncio) beyond the contract suite: races as tasks on one event
loop, records shared with RedisWrapper, from_uri forms, error wrapping, loop lag."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Callable

import pytest
import redis
import redis.asyncio
from support.loop_lag import lag_probe, smallest_gap

from pyop.aio._bridge import MissingAsyncContext
from pyop.aio.storage import AsyncRedisStorage, AsyncStorageBase
from pyop.exceptions import StorageError
from pyop.storage import RedisWrapper

pytestmark = pytest.mark.servers

N = 32


def _name() -> str:
    return "t" + uuid.uuid4().hex[:12]


def run(coroutine: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coroutine
    return asyncio.run(main())


def _separate_stores(url: str, collection: str, count: int) -> list[AsyncRedisStorage]:
    """Stores over clients of their own (as separate workers would have)."""
    return [AsyncRedisStorage(url, None, collection, client=redis.asyncio.Redis.from_url(url))
            for _ in range(count)]


async def _close_all(stores: list[AsyncRedisStorage]) -> None:
    for store in stores:
        await store.close()
        await store.client.aclose()


# -- races: tasks on one loop ------------------------------------------------------------


def test_concurrent_consume_one_winner(redis_server: Any) -> None:
    async def main() -> list[Any]:
        store = AsyncRedisStorage(redis_server.url, None, _name())
        try:
            await store.set("code", {"sub": "alice"})
            return await asyncio.gather(*(store.consume("code") for _ in range(N)))
        finally:
            await store.close()

    results = run(main())
    assert [r for r in results if r is not None] == [{"sub": "alice"}]


@pytest.mark.parametrize("scripting", [True, False], ids=["lua", "watch-multi-exec"])
def test_concurrent_compare_and_set_one_winner(redis_server: Any, scripting: bool) -> None:
    async def main() -> list[bool]:
        store = AsyncRedisStorage(redis_server.url, None, _name())
        store.sync._scripting = scripting
        try:
            await store.set("rt", {"gen": 0})
            results = await asyncio.gather(*(
                store.compare_and_set("rt", {"gen": 0}, {"gen": i + 1}) for i in range(N)))
            winner = results.index(True) + 1
            assert await store.get("rt") == {"gen": winner}
            return list(results)
        finally:
            await store.close()

    assert sorted(run(main())) == [False] * (N - 1) + [True]


def test_races_over_separate_clients(redis_server: Any) -> None:
    collection = _name()

    async def main() -> tuple[list[Any], list[bool]]:
        stores = _separate_stores(redis_server.url, collection, 8)
        try:
            await stores[0].set("code", "c")
            await stores[0].set("rt", 0)
            consumed = await asyncio.gather(*(stores[i % 8].consume("code") for i in range(N)))
            swapped = await asyncio.gather(*(stores[i % 8].compare_and_set("rt", 0, i + 1)
                                             for i in range(N)))
            return list(consumed), list(swapped)
        finally:
            await _close_all(stores)

    consumed, swapped = run(main())
    assert consumed.count("c") == 1 and consumed.count(None) == N - 1
    assert swapped.count(True) == 1


def test_concurrent_compare_and_set_then_set_one_token(redis_server: Any) -> None:
    async def main() -> tuple[list[bool], list[str]]:
        codes = AsyncRedisStorage(redis_server.url, None, _name())
        tokens = AsyncRedisStorage(redis_server.url, None, _name())
        assert codes.client is tokens.client  # one client per URL: one Lua script
        try:
            await codes.set("code", "fresh")
            results = await asyncio.gather(*(codes.compare_and_set_then_set(
                "code", "fresh", "used", None, tokens, f"at{i}", i) for i in range(N)))
            return list(results), [k async for k in tokens.keys()]
        finally:
            await codes.close()
            await tokens.close()

    results, keys = run(main())
    assert results.count(True) == 1
    assert keys == [f"at{results.index(True)}"]


# -- records shared with the synchronous backend ------------------------------------------


def test_records_interchange_with_redis_wrapper(redis_server: Any) -> None:
    collection = _name()
    sync = RedisWrapper(redis_server.url, None, collection)
    expires = time.time() + 600
    sync.set("from-sync", {"v": [1, "é"]}, expires_at=expires)
    raw_client = redis.Redis.from_url(redis_server.url)

    async def main() -> Any:
        store = AsyncRedisStorage(redis_server.url, None, collection)
        try:
            assert await store.get("from-sync") == {"v": [1, "é"]}
            await store.set("from-async", {"v": [1, "é"]}, expires_at=expires)
            assert await store.compare_and_set("from-sync", {"v": [1, "é"]}, "swapped")
            return [key async for key in store.keys()]
        finally:
            await store.close()

    assert sorted(run(main())) == ["from-async", "from-sync"]
    assert sync.get("from-async") == {"v": [1, "é"]}
    assert sync.get("from-sync") == "swapped"
    # byte for byte the same record, the same expiry
    sync.set("twin", {"v": [1, "é"]}, expires_at=expires)
    written = raw_client.get(f"{collection}:from-async")
    assert written == raw_client.get(f"{collection}:twin")
    assert json.loads(written) == {"value": {"v": [1, "é"]}}
    ttls = [raw_client.pttl(f"{collection}:{key}") for key in ("from-async", "twin")]
    assert 590_000 < ttls[0] <= 600_000 and abs(ttls[0] - ttls[1]) < 5_000
    sync.close()
    raw_client.close()


def test_pyop3_whitespace_record_compare_and_set(redis_server: Any) -> None:
    """pyop 3 wrote JSON with whitespace: compare_and_set matches it, as RedisWrapper does."""
    collection = _name()
    raw_client = redis.Redis.from_url(redis_server.url)
    raw_client.set(f"{collection}:rt", json.dumps({"value": {"a": 1, "b": [2]}}))

    async def main() -> bool:
        async with AsyncRedisStorage(redis_server.url, None, collection) as store:
            return await store.compare_and_set("rt", {"b": [2], "a": 1}, "next")

    assert run(main())
    assert json.loads(raw_client.get(f"{collection}:rt")) == {"value": "next"}
    raw_client.close()


# -- from_uri ------------------------------------------------------------------------------


def test_from_uri_forms(redis_server: Any) -> None:
    base = redis_server.url.rsplit("/", 1)[0]

    async def main() -> None:
        stores = [
            AsyncStorageBase.from_uri(base, "c1", db_name="3", ttl=60),
            AsyncStorageBase.from_uri(base, "c2", db_name=4),
            AsyncStorageBase.from_uri(base + "/2", "c3", db_name="5"),  # the URI's database wins
            AsyncStorageBase.from_uri(redis_server.unix_url, "c4"),
            AsyncStorageBase.from_uri(base, "c5", extra_options={"redis_kwargs": {"db": 6}}),
        ]
        try:
            assert all(isinstance(s, AsyncRedisStorage) for s in stores)
            dbs = [s.client.connection_pool.connection_kwargs.get("db")
                   for s in stores if isinstance(s, AsyncRedisStorage)]
            assert dbs == [3, 4, 2, 0, 6]
            assert stores[0].ttl == 60
            await stores[0].set("k", "v")
            assert await stores[0].get("k") == "v"
            await stores[3].set("k", "unix")
            assert await stores[3].get("k") == "unix"
        finally:
            for store in stores:
                await store.close()
        assert RedisWrapper(base, "3", "c1").get("k") == "v"

    run(main())
    with pytest.raises(ValueError):
        AsyncStorageBase.from_uri(redis_server.url)


def test_clients_shared_per_url_and_closed_by_the_last(redis_server: Any) -> None:
    async def main() -> None:
        a = AsyncRedisStorage(redis_server.url, None, "a")
        b = AsyncRedisStorage(redis_server.url, None, "b")
        other = AsyncRedisStorage(redis_server.url, None, "c", socket_timeout=3)
        assert a.client is b.client and other.client is not a.client
        await a.set("k", 1)
        await a.close()
        assert await b.get("k") is None  # b still works: its client is open
        await b.close()
        await other.close()
        given = redis.asyncio.Redis.from_url(redis_server.url)
        store = AsyncRedisStorage(redis_server.url, None, "d", client=given)
        again = AsyncRedisStorage(redis_server.url, None, "e", client=given)
        assert store.sync._client is again.sync._client  # one script for both
        await store.close()
        assert await given.ping()  # a client given is not closed
        await given.aclose()

    run(main())


# -- errors ----------------------------------------------------------------------------------


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


OPERATIONS: list[tuple[str, Callable[[AsyncRedisStorage, AsyncRedisStorage], Awaitable[Any]]]] = [
    ("get", lambda s, o: s.get("k")),
    ("set", lambda s, o: s.set("k", 1)),
    ("delete", lambda s, o: s.delete("k")),
    ("consume", lambda s, o: s.consume("k")),
    ("compare_and_set", lambda s, o: s.compare_and_set("k", 1, 2)),
    ("compare_and_set_then_set",
     lambda s, o: s.compare_and_set_then_set("k", 1, 2, None, o, "x", 3)),
    ("add", lambda s, o: s.add("k", 1)),
    ("keys", lambda s, o: _list_keys(s)),
]


async def _list_keys(store: AsyncRedisStorage) -> list[str]:
    return [key async for key in store.keys()]


@pytest.mark.parametrize("operation", [op for _, op in OPERATIONS], ids=[n for n, _ in OPERATIONS])
def test_server_down_is_storage_error(operation: Any) -> None:
    async def main() -> None:
        url = _dead_url()
        store = AsyncRedisStorage(url, None, "c", socket_connect_timeout=0.5)
        other = AsyncRedisStorage(url, None, "o", socket_connect_timeout=0.5)
        try:
            with pytest.raises(StorageError) as caught:
                await operation(store, other)
            assert isinstance(caught.value.__cause__, redis.exceptions.RedisError)
        finally:
            await store.close()
            await other.close()

    run(main())


def test_corrupt_record_is_storage_error(redis_server: Any) -> None:
    collection = _name()
    raw_client = redis.Redis.from_url(redis_server.url)
    raw_client.set(f"{collection}:bad", b"\xff not json")
    raw_client.lpush(f"{collection}:list", "x")

    async def main() -> None:
        async with AsyncRedisStorage(redis_server.url, None, collection) as store:
            for call in (store.get("bad"), store.consume("bad"), store.get("list")):
                with pytest.raises(StorageError):
                    await call

    run(main())
    raw_client.close()


def test_sync_view_outside_the_bridge_refuses(redis_server: Any) -> None:
    """The blocking face works only inside run_sync: a clear error, not a hang."""
    store = AsyncRedisStorage(redis_server.url, None, _name())
    with pytest.raises(MissingAsyncContext):
        store.as_sync().get("k")
    run(store.close())


# -- the event loop stays free -----------------------------------------------------------


def test_loop_lag_while_operations_run(redis_server: Any) -> None:
    """A task ticking every 5 ms sees no gap over 50 ms while 200 operations run."""
    async def main() -> float:
        store = AsyncRedisStorage(redis_server.url, None, _name())
        async def work(i: int) -> None:
            await store.set(f"k{i}", {"i": i})
            await store.compare_and_set(f"k{i}", {"i": i}, {"i": -i})
            await store.get(f"k{i}")
            await store.consume(f"k{i}")

        try:
            async with lag_probe() as probe:
                for start in range(0, 50, 10):  # 50 x 4 = 200 operations, 10 tasks at once
                    await asyncio.gather(*(work(i) for i in range(start, start + 10)))
        finally:
            await store.close()
        return probe.max_gap

    assert min(smallest_gap(lambda: run(main()), 0.05)) < 0.05


def test_stores_made_on_another_event_loop_get_their_own_client(redis_server: Any) -> None:
    """An asyncio client belongs to the loop it first ran on: stores created on two loops
    (two applications, or two tests) from one URL never share one, even when the first
    loop's stores were not closed; the first loop's client is closed as that loop shuts
    down."""
    collection = _name()

    async def use_once() -> tuple[AsyncRedisStorage, Any]:
        store = AsyncRedisStorage(redis_server.url, "pyop", collection)
        await store.set("k", {"v": 1})
        assert await store.get("k") == {"v": 1}
        return store, store.client  # left open on purpose

    first, first_client = asyncio.run(use_once())
    second, second_client = asyncio.run(use_once())  # a new loop: the first one is closed
    assert first_client is not second_client
    # both stores share their per-loop clients (one URL): one Lua script across them
    assert first.sync._client is second.sync._client
    pool = first_client.connection_pool  # closed at the first loop's shutdown:
    assert pool._available_connections and not any(
        connection.is_connected for connection in pool._available_connections)
