"""Backend failures surface as pyop.exceptions.StorageError, never as driver exceptions."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from benchmarks.engines import free_port
from pyop.exceptions import StorageError
from pyop.storage import MongoWrapper, RedisWrapper, SQLWrapper, StorageBase

OPERATIONS: list[tuple[str, Callable[[StorageBase], Any]]] = [
    ("get", lambda s: s.get("k")),
    ("set", lambda s: s.set("k", {"v": 1})),
    ("delete", lambda s: s.delete("k")),
    ("consume", lambda s: s.consume("k")),
    ("compare_and_set", lambda s: s.compare_and_set("k", {"v": 1}, {"v": 2})),
    ("add", lambda s: s.add("k", {"v": 1})),
    ("keys", lambda s: list(s.keys())),
    ("getitem", lambda s: s["k"]),
    ("contains", lambda s: "k" in s),
]


def assert_every_operation_fails_cleanly(store: StorageBase, budget: float) -> None:
    """Each operation raises StorageError chained to the driver's error (run concurrently,
    as a server outage hits concurrent requests, and to keep the test quick)."""

    def outcome(operation: Callable[[StorageBase], Any]) -> BaseException | None:
        try:
            operation(store)
        except BaseException as error:  # noqa: BLE001 - inspected below
            return error
        return None

    started = time.monotonic()
    with ThreadPoolExecutor(len(OPERATIONS)) as pool:
        outcomes = list(pool.map(outcome, [operation for _, operation in OPERATIONS]))
    for (name, _), error in zip(OPERATIONS, outcomes):
        assert isinstance(error, StorageError), (name, error)
        assert error.__cause__ is not None, name  # the driver error is chained
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


def test_redis_server_down() -> None:
    pytest.importorskip("redis")
    store = RedisWrapper(f"redis://127.0.0.1:{free_port()}/0", "pyop", "codes",
                         socket_connect_timeout=0.5)
    try:
        assert_every_operation_fails_cleanly(store, budget=30)
    finally:
        store.close()


def test_redis_server_hangs(silent_port: int) -> None:
    pytest.importorskip("redis")
    store = RedisWrapper(f"redis://127.0.0.1:{silent_port}/0", "pyop", "codes",
                         socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        with pytest.raises(StorageError):
            store.get("k")
        with pytest.raises(StorageError):
            store.consume("k")
    finally:
        store.close()


@pytest.mark.servers
def test_redis_corrupt_record(redis_server: Any) -> None:
    store = RedisWrapper(redis_server.url, "pyop", "corrupt")
    try:
        store._client.set(store._key("k"), b"\xff not json")
        with pytest.raises(StorageError):
            store.get("k")
        store._client.set(store._key("k"), b"{truncated")
        with pytest.raises(StorageError):
            store.consume("k")
    finally:
        store.close()


@pytest.mark.servers
def test_redis_wrong_type_record(redis_server: Any) -> None:
    """A key of another Redis type under our namespace: a server error, wrapped."""
    store = RedisWrapper(redis_server.url, "pyop", "wrongtype")
    try:
        store._client.lpush(store._key("k"), "x")
        with pytest.raises(StorageError):
            store.get("k")
        with pytest.raises(StorageError):
            store.compare_and_set("k", 1, 2)
    finally:
        store._client.delete(store._key("k"))
        store.close()


def test_postgresql_server_down() -> None:
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    store = SQLWrapper(f"postgresql+psycopg://pyop@127.0.0.1:{free_port()}/pyop"
                       "?connect_timeout=1", None, "codes")
    try:
        assert_every_operation_fails_cleanly(store, budget=30)
        with pytest.raises(StorageError):
            store.purge_expired()
    finally:
        store.close()


def test_postgresql_server_hangs(silent_port: int) -> None:
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    store = SQLWrapper(f"postgresql+psycopg://pyop@127.0.0.1:{silent_port}/pyop"
                       "?connect_timeout=1", None, "codes")
    started = time.monotonic()
    try:
        with pytest.raises(StorageError):
            store.get("k")
    finally:
        store.close()
    assert time.monotonic() - started < 10


def test_sqlite_unreachable_file(tmp_path: Any) -> None:
    pytest.importorskip("sqlalchemy")
    store = SQLWrapper(f"sqlite:///{tmp_path}/missing-dir/pyop.sqlite", None, "codes")
    try:
        assert_every_operation_fails_cleanly(store, budget=10)
    finally:
        store.close()


def test_sql_corrupt_record(tmp_path: Any) -> None:
    pytest.importorskip("sqlalchemy")
    store = SQLWrapper(f"sqlite:///{tmp_path}/pyop.sqlite", None, "codes")
    try:
        store.set("k", 1)
        import sqlalchemy as sa

        with store._engine.begin() as conn:
            conn.execute(sa.update(store._table).values(value="{not json"))
        with pytest.raises(StorageError):
            store.get("k")
    finally:
        store.close()


def test_mongodb_server_down() -> None:
    pytest.importorskip("pymongo")
    store = MongoWrapper(f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=50",
                         "pyop", "codes")
    try:
        assert_every_operation_fails_cleanly(store, budget=30)
        with pytest.raises(StorageError):
            store.purge_expired()
    finally:
        store.close()


def test_storage_error_message_names_no_key_or_value() -> None:
    pytest.importorskip("redis")
    store = RedisWrapper(f"redis://127.0.0.1:{free_port()}/0", "pyop", "codes",
                         socket_connect_timeout=0.2)
    secret_key = "SECRET-TOKEN-VALUE"
    try:
        with pytest.raises(StorageError) as info:
            store.set(secret_key, {"secret": "SECRET-PAYLOAD"})
    finally:
        store.close()
    assert "SECRET" not in str(info.value)
    assert info.value.http_status == 503 and info.value.oauth_error == "server_error"
