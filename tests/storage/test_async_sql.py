"""AsyncSQLStorage (pyop.aio.storage.sql): SQLWrapper on SQLAlchemy's asyncio extension.

The storage contract suite runs on it through tests/storage/conftest.py (async-sqlite,
async-sqlite-memory, async-postgresql[-generic|-unlogged|-asyncset|-asyncpg]); here:
races as tasks on one event loop, records shared with the synchronous SQLWrapper,
``from_uri`` forms, failures as StorageError and the event loop kept free.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any, Callable

import pytest
from support.loop_lag import lag_probe, smallest_gap

from benchmarks.engines import free_port
from pyop.aio.storage import AsyncSQLStorage, AsyncStorageBase
from pyop.aio.storage.sql import async_url
from pyop.exceptions import StorageError
from pyop.storage import SQLWrapper, StorageBase

from .sql_support import recorded_statements

sa = pytest.importorskip("sqlalchemy")
pytest.importorskip("aiosqlite")

N = 32

#: (name, needs the PostgreSQL server)
KINDS = [("sqlite", False), ("sqlite-memory", False),
         pytest.param(("postgresql", True), marks=pytest.mark.servers),
         pytest.param(("asyncpg", True), marks=pytest.mark.servers)]


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(_as_coroutine(coroutine))


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


@pytest.fixture(params=KINDS, ids=lambda kind: kind[0])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The URL of each kind of database (synchronous form: AsyncSQLStorage maps it)."""
    name, _ = request.param
    if name == "sqlite":
        return f"sqlite:///{tmp_path}/pyop.sqlite"
    if name == "sqlite-memory":
        return "sqlite://"
    server: str = request.getfixturevalue("postgres_url")
    if name == "asyncpg":
        pytest.importorskip("asyncpg")
        return "postgresql+asyncpg://" + server.partition("://")[2]
    return server


def namespace() -> str:
    return "n" + uuid.uuid4().hex[:10]


# -- races: tasks on one loop ------------------------------------------------------------


def test_concurrent_consume_one_winner(url: str) -> None:
    async def scenario() -> None:
        async with AsyncSQLStorage(url, namespace(), "codes") as store:
            for round_ in range(3):
                await store.set(f"code{round_}", {"round": round_})
                results = await asyncio.gather(*(store.consume(f"code{round_}")
                                                 for _ in range(N)))
                assert [r for r in results if r is not None] == [{"round": round_}]
                assert await store.get(f"code{round_}") is None

    run(scenario())


def test_concurrent_compare_and_set_one_winner(url: str) -> None:
    async def scenario() -> None:
        async with AsyncSQLStorage(url, namespace(), "refresh") as store:
            await store.set("rt", {"generation": 0})
            results = await asyncio.gather(*(
                store.compare_and_set("rt", {"generation": 0}, {"generation": 1, "by": i})
                for i in range(N)))
            assert results.count(True) == 1
            winner = results.index(True)
            assert await store.get("rt") == {"generation": 1, "by": winner}

    run(scenario())


def test_races_across_store_objects_with_their_own_engines(url: str, tmp_path: Any) -> None:
    """Several stores of one collection, each with its own engine (connection pool), as
    the workers of a deployment; in-memory SQLite is one database per engine, so it
    shares one engine here."""
    ns = namespace()

    async def scenario() -> None:
        if url == "sqlite://":
            engine = _async_engine(url)
            stores = [AsyncSQLStorage(url, ns, "codes", engine=engine) for _ in range(4)]
        else:
            engine = None
            stores = [AsyncSQLStorage(url, ns, "codes") for _ in range(4)]
        try:
            await stores[0].set("code", {"v": 1})
            await stores[0].set("rt", "r0")
            consumed = await asyncio.gather(*(stores[i % 4].consume("code") for i in range(N)))
            swapped = await asyncio.gather(*(stores[i % 4].compare_and_set("rt", "r0", f"r{i + 1}")
                                             for i in range(N)))
            added = await asyncio.gather(*(stores[i % 4].add("jti", i) for i in range(N)))
            assert [r for r in consumed if r is not None] == [{"v": 1}]
            assert swapped.count(True) == 1
            assert added.count(True) == 1
            assert await stores[3].get("jti") == added.index(True)
        finally:
            for store in stores:
                await store.close()
            if engine is not None:
                await engine.dispose()

    run(scenario())


def test_first_operations_of_many_stores_create_the_table_once(tmp_path: Any) -> None:
    """The one-time CREATE TABLE runs under an asyncio lock of the engine: N stores
    sharing a fresh engine all start at once."""
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.sqlite"

    async def scenario() -> None:
        engine = _async_engine(url)
        stores = [AsyncSQLStorage(url, None, f"c{i}", engine=engine) for i in range(N)]
        with recorded_statements(engine.sync_engine) as seen:
            await asyncio.gather(*(store.set("k", i) for i, store in enumerate(stores)))
        assert sum("CREATE TABLE" in statement for statement in seen) == 1
        assert [await store.get("k") for store in stores] == list(range(N))
        await engine.dispose()

    run(scenario())


def _async_engine(url: str) -> Any:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import StaticPool

    url = async_url(url)
    extra = {"poolclass": StaticPool} if url == "sqlite+aiosqlite://" else {}
    return create_async_engine(url, isolation_level="AUTOCOMMIT", **extra)


# -- records shared with the synchronous backend ---------------------------------------


def test_records_interchange_with_the_synchronous_wrapper(url: str) -> None:
    if url == "sqlite://":
        pytest.skip("in-memory SQLite: one database per engine (see the file tests)")
    ns = namespace()
    sync_url = url.replace("+asyncpg", "+psycopg")
    sync = SQLWrapper(sync_url, ns, "tokens")
    record = {"sub": "s", "scope": ["openid"], "n": 1.5, "nested": {"a": [None, True]}}

    async def scenario() -> None:
        async with AsyncSQLStorage(url, ns, "tokens") as store:
            sync.set("from-sync", record, expires_at=time.time() + 60)
            assert await store.get("from-sync") == record
            await store.set("from-async", record, expires_at=time.time() + 60)
            assert await store.add("added", [1, 2])
            await asyncio.to_thread(_check_sync_side, sync, record)
            assert await store.consume("from-sync") == record
            assert sorted([key async for key in store.keys()]) == ["added"]

    try:
        run(scenario())
    finally:
        sync.close()


def _check_sync_side(sync: SQLWrapper, record: Any) -> None:
    assert sync.get("from-async") == record
    assert sync.consume("from-async") == record
    assert not sync.add("added", "other")
    assert sync.get("added") == [1, 2]


def test_shared_engine_makes_compare_and_set_then_set_one_statement(
        postgres_url: str) -> None:
    """Two stores on one AsyncEngine (the logged and the unlogged table): one statement."""
    pytest.importorskip("psycopg")
    ns = namespace()

    async def scenario() -> None:
        engine = _async_engine(postgres_url)
        codes = AsyncSQLStorage(postgres_url, ns, "codes", engine=engine,
                                postgresql_unlogged=True)
        tokens = AsyncSQLStorage(postgres_url, ns, "tokens", engine=engine)
        try:
            await codes.set("code", {"used": False})
            await tokens.set("warm-up", 1)
            with recorded_statements(engine.sync_engine) as seen:
                assert await codes.compare_and_set_then_set(
                    "code", {"used": False}, {"used": True}, time.time() + 60,
                    tokens, "at", {"token": 1})
            assert len(seen) == 1
            assert await tokens.get("at") == {"token": 1}
            assert await codes.get("code") == {"used": True}
        finally:
            await codes.close()
            await tokens.close()
            await engine.dispose()

    run(scenario())


# -- from_uri -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sqlite:///{path}", "sqlite+aiosqlite:///{path}",
                                  "sqlite+pysqlite:///{path}"])
def test_from_uri_sqlite_forms(form: str, tmp_path: Any) -> None:
    uri = form.format(path=tmp_path / "p.sqlite")

    async def scenario() -> None:
        store = AsyncStorageBase.from_uri(uri, collection="codes", db_name="op", ttl=30)
        async with store:
            assert isinstance(store, AsyncSQLStorage)
            assert store.ttl == 30
            assert store.engine.dialect.driver == "aiosqlite"
            await store.set("k", 1)
            assert await store.get("k") == 1
        # the same collection and namespace as StorageBase.from_uri
        sync = StorageBase.from_uri(f"sqlite:///{tmp_path / 'p.sqlite'}", collection="codes",
                                    db_name="op")
        try:
            assert sync.get("k") == 1
        finally:
            sync.close()

    run(scenario())


@pytest.mark.servers
@pytest.mark.parametrize("scheme,driver", [("postgresql", "psycopg"), ("postgres", "psycopg"),
                                           ("postgresql+psycopg", "psycopg"),
                                           ("postgresql+asyncpg", "asyncpg")])
def test_from_uri_postgresql_forms(scheme: str, driver: str, postgres_url: str) -> None:
    pytest.importorskip(driver)
    uri = scheme + "://" + postgres_url.partition("://")[2]

    async def scenario() -> None:
        async with AsyncStorageBase.from_uri(uri, collection="c", db_name=namespace(),
                                             postgresql_unlogged=True) as store:
            assert isinstance(store, AsyncSQLStorage)
            assert store.engine.dialect.is_async
            assert store.engine.dialect.driver.startswith(driver)
            assert store.sync._table_name == "pyop_storage_unlogged"
            assert await store.add("k", 1)

    run(scenario())


def test_async_url() -> None:
    assert async_url("sqlite://") == "sqlite+aiosqlite://"
    assert async_url("sqlite:////a/b.db") == "sqlite+aiosqlite:////a/b.db"
    assert async_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert async_url("postgresql+asyncpg://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert async_url("mysql+aiomysql://u@h/d") == "mysql+aiomysql://u@h/d"


@pytest.mark.parametrize("uri,kwargs,error", [
    ("postgresql+psycopg2://u@h/d", {}, "not an asyncio driver"),
    ("mysql://u@h/d", {}, "not an asyncio driver"),
    ("sqlite://", {"postgresql_unlogged": True}, "PostgreSQL only"),
    ("sqlite://", {"postgresql_asynchronous_set": True}, "PostgreSQL only"),
    ("sqlite://", {"sqlite_synchronous": "sometimes"}, "sqlite_synchronous"),
    ("sqlite://", {"postgresql_synchronous_commit": "off"}, "PostgreSQL only"),
])
def test_from_uri_rejects(uri: str, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AsyncStorageBase.from_uri(uri, collection="c", **kwargs)


def test_collection_required() -> None:
    with pytest.raises(ValueError, match="collection"):
        AsyncStorageBase.from_uri("sqlite://")
    with pytest.raises(ValueError, match="collection"):
        AsyncSQLStorage("sqlite://")


def test_engine_argument_is_an_async_engine(tmp_path: Any) -> None:
    sync_engine = sa.create_engine(f"sqlite:///{tmp_path}/x.sqlite")
    with pytest.raises(TypeError, match="AsyncEngine"):
        AsyncSQLStorage("sqlite://", None, "c", engine=sync_engine)
    sync_engine.dispose()


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "aiosqlite", None)  # import fails
    with pytest.raises(ImportError, match=r"pyop\[async-sql\]"):
        AsyncSQLStorage("sqlite://", None, "c")


# -- failures ------------------------------------------------------------------------------


OPERATIONS: list[tuple[str, Callable[[AsyncStorageBase], Awaitable[Any]]]] = [
    ("get", lambda s: s.get("k")),
    ("set", lambda s: s.set("k", {"v": 1})),
    ("delete", lambda s: s.delete("k")),
    ("consume", lambda s: s.consume("k")),
    ("compare_and_set", lambda s: s.compare_and_set("k", {"v": 1}, {"v": 2})),
    ("add", lambda s: s.add("k", {"v": 1})),
    ("purge_expired", lambda s: s.purge_expired()),
    ("keys", lambda s: _collect(s)),
]


async def _collect(store: AsyncStorageBase) -> list[str]:
    return [key async for key in store.keys()]


async def assert_every_operation_fails_cleanly(store: AsyncStorageBase,
                                               budget: float) -> None:
    """Each operation (all at once, as an outage hits concurrent requests) raises
    StorageError chained to the driver's error; nothing else escapes."""
    started = time.monotonic()
    outcomes = await asyncio.gather(*(operation(store) for _, operation in OPERATIONS),
                                    return_exceptions=True)
    for (name, _), error in zip(OPERATIONS, outcomes):
        assert isinstance(error, StorageError), (name, error)
        assert error.__cause__ is not None, name
    assert time.monotonic() - started < budget


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections but never answers (a hung server)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.parametrize("scheme,driver,options", [
    ("postgresql+psycopg", "psycopg", "?connect_timeout=1"),
    ("postgresql+asyncpg", "asyncpg", ""),
])
def test_postgresql_server_down(scheme: str, driver: str, options: str) -> None:
    pytest.importorskip(driver)
    store = AsyncSQLStorage(f"{scheme}://pyop@127.0.0.1:{free_port()}/pyop{options}",
                            None, "codes")

    async def scenario() -> None:
        try:
            await assert_every_operation_fails_cleanly(store, budget=30)
        finally:
            await store.close()

    run(scenario())


@pytest.mark.parametrize("scheme,driver,options,kwargs", [
    ("postgresql+psycopg", "psycopg", "?connect_timeout=1", {}),
    ("postgresql+asyncpg", "asyncpg", "", {"connect_args": {"timeout": 1}}),
])
def test_postgresql_server_hangs(scheme: str, driver: str, options: str,
                                 kwargs: dict[str, Any], silent_port: int) -> None:
    pytest.importorskip(driver)
    store = AsyncSQLStorage(f"{scheme}://pyop@127.0.0.1:{silent_port}/pyop{options}",
                            None, "codes", **kwargs)

    async def scenario() -> None:
        try:
            with pytest.raises(StorageError) as raised:
                await store.get("k")
            assert raised.value.__cause__ is not None
        finally:
            await store.close()

    started = time.monotonic()
    run(scenario())
    assert time.monotonic() - started < 10


def test_sqlite_unreachable_file(tmp_path: Any) -> None:
    store = AsyncSQLStorage(f"sqlite:///{tmp_path}/missing-dir/pyop.sqlite", None, "codes")

    async def scenario() -> None:
        try:
            await assert_every_operation_fails_cleanly(store, budget=10)
        finally:
            await store.close()
        # aiosqlite stops the thread of a connection that failed to open without waiting
        # for it: let those threads report back before the loop closes
        await asyncio.sleep(0.1)

    run(scenario())


def test_corrupt_record(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/pyop.sqlite"

    async def scenario() -> None:
        async with AsyncSQLStorage(url, None, "codes") as store:
            await store.set("k", 1)
            async with store.engine.begin() as conn:
                await conn.execute(sa.update(store.sync._table).values(value="{not json"))
            with pytest.raises(StorageError) as raised:
                await store.get("k")
            assert isinstance(raised.value.__cause__, ValueError)

    run(scenario())


# -- the event loop stays free -------------------------------------------------------------


def test_loop_lag_while_operations_run(url: str) -> None:
    """A task ticking every 5 ms sees no gap over 50 ms while 200 operations run
    (8 at a time): the statements are awaited on the loop, never waited for in it."""

    async def scenario() -> float:
        async with AsyncSQLStorage(url, namespace(), "lag") as store:
            await store.set("warm-up", 0)  # table, pool and first connection ready
            async def worker(offset: int) -> None:
                for i in range(offset, 200, 8):
                    key = f"k{i}"
                    if i % 4 == 0:
                        await store.set(key, {"i": i})
                    elif i % 4 == 1:
                        await store.add(key, i)
                    elif i % 4 == 2:
                        await store.compare_and_set(f"k{i - 2}", {"i": i - 2}, {"i": i})
                    else:
                        await store.consume(f"k{i - 3}")

            async with lag_probe() as probe:
                await asyncio.gather(*(worker(offset) for offset in range(8)))
            assert probe.gaps, "the ticker never ran"
            return probe.max_gap

    gaps = smallest_gap(lambda: run(scenario()), 0.05)
    assert min(gaps) < 0.05, gaps


def test_compare_and_set_then_set_on_a_shared_engine_server_down() -> None:
    """The other store's table check runs first there: its failure is a StorageError too."""
    pytest.importorskip("asyncpg")
    url = f"postgresql+asyncpg://pyop@127.0.0.1:{free_port()}/pyop"

    async def scenario() -> None:
        engine = _async_engine(url)
        codes = AsyncSQLStorage(url, None, "codes", engine=engine)
        tokens = AsyncSQLStorage(url, None, "tokens", engine=engine, postgresql_unlogged=True)
        try:
            with pytest.raises(StorageError) as raised:
                await codes.compare_and_set_then_set("c", 1, 2, time.time() + 60,
                                                     tokens, "t", 3)
            assert raised.value.__cause__ is not None
        finally:
            await engine.dispose()

    run(scenario())


# -- request-path statements skip SQLAlchemy Core ------------------------------------------


def test_request_path_statements_take_the_direct_path(url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On every asyncio driver the primitives run their prebuilt statements on the pooled
    connection (the driver connection itself on aiosqlite and psycopg), with the same
    results as through SQLAlchemy Core."""
    from pyop.aio.storage import sql as async_sql

    ran: list[tuple[str, bool]] = []
    original = async_sql._BridgedSQLWrapper._run_direct

    def spy(self: Any, connection: Any, sql: str, parameters: Any, result: str) -> Any:
        ran.append((result, self._native is not None))
        return original(self, connection, sql, parameters, result)

    monkeypatch.setattr(async_sql._BridgedSQLWrapper, "_run_direct", spy)

    async def scenario() -> None:
        async with AsyncSQLStorage(url, namespace(), "codes") as store:
            await store.get("warm-up")  # creates the table (not a direct statement)
            ran.clear()
            await store.set("k", {"a": 1})
            assert await store.get("k") == {"a": 1}
            assert await store.get("absent", "default") == "default"
            assert await store.compare_and_set("k", {"a": 2}, {"a": 3}) is False
            assert await store.compare_and_set("k", {"a": 1}, {"a": 3}) is True
            assert await store.add("k", {"a": 4}) is False
            assert await store.add("k2", {"a": 4}) is True
            assert await store.consume("k") == {"a": 3}
            assert await store.consume("k") is None
            assert await store.delete("k2") is True
            assert await store.delete("k2") is False
            native = store.sync._engine.dialect.driver in ("aiosqlite", "psycopg")
        assert len(ran) == 11
        assert {is_native for _, is_native in ran} == {native}
        assert {result for result, _ in ran} >= {"rowcount", "scalar"}

    run(scenario())


def test_aiosqlite_statement_on_a_closed_connection_is_a_dbapi_error(tmp_path: Any) -> None:
    """aiosqlite's ValueError for a closed connection becomes sqlite3's OperationalError
    (as SQLAlchemy's adaptation raises), which the store wraps as StorageError."""
    import sqlite3

    import aiosqlite

    from pyop.aio.storage.sql import _aiosqlite_statement

    async def scenario() -> None:
        connection = await aiosqlite.connect(str(tmp_path / "closed.sqlite"))
        assert await _aiosqlite_statement(connection, "SELECT ?", (7,), "scalar") == 7
        assert await _aiosqlite_statement(connection, "SELECT 1 WHERE 0", (), "row") is None
        await connection.close()
        with pytest.raises(sqlite3.OperationalError):
            await _aiosqlite_statement(connection, "SELECT 1", (), "scalar")

    run(scenario())


def test_sqlite_statement_error_on_the_native_path_is_a_storage_error(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver error raised on the driver connection is wrapped as the Core path wraps
    it: StorageError caused by SQLAlchemy's DBAPIError, caused by sqlite3's error."""
    import sqlite3


    async def failing(connection: Any, sql: str, parameters: Any, result: str) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    async def scenario() -> None:
        async with AsyncSQLStorage(f"sqlite:///{tmp_path}/pyop.sqlite", None, "codes") as store:
            await store.set("k", 1)
            monkeypatch.setattr(store.sync, "_native", failing)
            with pytest.raises(StorageError) as raised:
                await store.get("k")
            assert isinstance(raised.value.__cause__, sa.exc.DBAPIError)
            assert isinstance(raised.value.__cause__.__cause__, sqlite3.OperationalError)
            monkeypatch.undo()
            assert await store.get("k") == 1

    run(scenario())
