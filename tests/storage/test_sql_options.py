"""SQLWrapper's engine options and request-path execution.

* ``sqlite_synchronous`` (default ``NORMAL`` in WAL mode) and the opt-in
  ``postgresql_synchronous_commit``;
* engines created by pyop keep their connections in autocommit mode;
* the request-path statements run on the DBAPI cursor, unless the engine is
  instrumented (listeners, logging), and their errors are wrapped like the others;
* ``add`` of a live key on PostgreSQL writes nothing (no row lock, so no WAL flush).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pyop.exceptions import StorageError
from pyop.storage import SQLWrapper

sa = pytest.importorskip("sqlalchemy")


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/pyop.sqlite"


def _pragma(store: SQLWrapper, name: str) -> Any:
    connection = store._engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA {name}")
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else row[0]
    finally:
        connection.close()


def _show(store: SQLWrapper, setting: str) -> str:
    with store._engine.connect() as conn:
        return str(conn.exec_driver_sql(f"SHOW {setting}").scalar_one())


# -- SQLite: PRAGMA synchronous -----------------------------------------------------------


def test_sqlite_defaults_to_wal_and_synchronous_normal(sqlite_url: str) -> None:
    store = SQLWrapper(sqlite_url, None, "c")
    try:
        store.set("k", 1)
        assert _pragma(store, "journal_mode") == "wal"
        assert _pragma(store, "synchronous") == 1  # NORMAL
    finally:
        store.close()


@pytest.mark.parametrize(("option", "expected"), [("FULL", 2), ("full", 2), ("EXTRA", 3),
                                                  ("NORMAL", 1)])
def test_sqlite_synchronous_option(sqlite_url: str, option: str, expected: int) -> None:
    store = SQLWrapper(sqlite_url, None, "c", sqlite_synchronous=option)
    try:
        store.set("k", 1)
        assert store.get("k") == 1
        assert _pragma(store, "synchronous") == expected
    finally:
        store.close()


def test_sqlite_synchronous_options_get_their_own_engines(sqlite_url: str) -> None:
    normal = SQLWrapper(sqlite_url, None, "c")
    full = SQLWrapper(sqlite_url, None, "c", sqlite_synchronous="FULL")
    try:
        assert normal._engine is not full._engine
        normal.set("k", "written with NORMAL")
        assert full.get("k") == "written with NORMAL"
    finally:
        normal.close()
        full.close()


def test_sqlite_synchronous_through_from_uri(sqlite_url: str) -> None:
    from pyop.storage import StorageBase

    store = StorageBase.from_uri(sqlite_url, collection="c", sqlite_synchronous="FULL")
    try:
        assert isinstance(store, SQLWrapper)
        store.set("k", 1)
        assert _pragma(store, "synchronous") == 2
    finally:
        store.close()


@pytest.mark.parametrize("bad", ["fast", "", "NORMAL; DROP TABLE x"])
def test_sqlite_synchronous_rejects_unknown_values(sqlite_url: str, bad: str) -> None:
    with pytest.raises(ValueError):
        SQLWrapper(sqlite_url, None, "c", sqlite_synchronous=bad)


def test_sqlite_synchronous_rejects_non_strings(sqlite_url: str) -> None:
    with pytest.raises(TypeError):
        SQLWrapper(sqlite_url, None, "c", sqlite_synchronous=2)  # type: ignore[arg-type]


def test_engine_options_need_an_engine_created_by_pyop(tmp_path: Any) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/own.db")
    try:
        with pytest.raises(ValueError):
            SQLWrapper("ignored://", None, "c", engine=engine, sqlite_synchronous="FULL")
        with pytest.raises(ValueError):
            SQLWrapper("ignored://", None, "c", engine=engine,
                       postgresql_synchronous_commit="off")
    finally:
        engine.dispose()


def test_synchronous_commit_is_for_postgresql_only(sqlite_url: str) -> None:
    with pytest.raises(ValueError):
        SQLWrapper(sqlite_url, None, "c", postgresql_synchronous_commit="off")


# -- autocommit engines and the direct path -----------------------------------------------


def test_engines_created_here_stay_in_autocommit_mode(sqlite_url: str) -> None:
    store = SQLWrapper(sqlite_url, None, "c")
    try:
        store.set("k", 1)  # creates the table in a transaction first
        connection = store._engine.raw_connection()
        try:
            assert connection.dbapi_connection.isolation_level is None  # type: ignore[union-attr]
        finally:
            connection.close()
        assert store._runner is store._engine  # no per-checkout isolation switch
        assert store._direct
    finally:
        store.close()


def test_injected_engine_is_switched_per_statement(tmp_path: Any) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/own.db")
    store = SQLWrapper("ignored://", None, "c", engine=engine)
    try:
        assert store._runner is not engine and not store._direct
        store.set("k", {"a": 1})
        assert store.consume("k") == {"a": 1}
    finally:
        store.close()
        engine.dispose()


def test_injected_autocommit_engine_takes_the_direct_path(tmp_path: Any) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/own.db", isolation_level="AUTOCOMMIT")
    store = SQLWrapper("ignored://", None, "c", engine=engine)
    try:
        assert store._runner is engine and store._direct
        store.set("k", {"a": 1})
        assert store.add("k", 2) is False
        assert store.compare_and_set("k", {"a": 1}, {"a": 2}) is True
        assert store.consume("k") == {"a": 2}
    finally:
        store.close()
        engine.dispose()


def _statements_seen(store: SQLWrapper, operations: Any) -> list[str]:
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split()[0].upper())

    sa.event.listen(store._engine, "before_cursor_execute", listener)
    try:
        operations()
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", listener)
    return seen


def test_instrumented_engine_sees_every_statement(sqlite_url: str) -> None:
    store = SQLWrapper(sqlite_url, None, "c")
    try:
        store.set("warm", 0)

        def operations() -> None:
            store.set("k", 1)
            assert store.get("k") == 1
            assert store.compare_and_set("k", 1, 2)
            assert store.add("k", 3) is False
            assert store.consume("k") == 2
            assert store.delete("k") is False

        assert _statements_seen(store, operations) == [
            "INSERT", "SELECT", "UPDATE", "INSERT", "DELETE", "DELETE"]
        # listener removed: back on the direct path, same results
        store.set("k", 1)
        assert not store._instrumented()
        assert store.consume("k") == 1
    finally:
        store.close()


def test_statement_logging_sees_every_statement(sqlite_url: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    store = SQLWrapper(sqlite_url, None, "c")
    try:
        store.set("warm", 0)
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            store.get("warm")
        assert any("SELECT" in record.getMessage() for record in caplog.records)
    finally:
        store.close()


def test_direct_path_errors_are_wrapped(sqlite_url: str) -> None:
    store = SQLWrapper(sqlite_url, None, "c")
    try:
        store.set("SECRET-KEY", {"v": 1})
        with store._engine.connect() as conn:
            conn.exec_driver_sql("DROP TABLE pyop_storage")
        for operation in (lambda: store.get("SECRET-KEY"), lambda: store.consume("SECRET-KEY"),
                          lambda: store.set("SECRET-KEY", 2),
                          lambda: store.add("SECRET-KEY", 2),
                          lambda: store.compare_and_set("SECRET-KEY", 1, 2)):
            with pytest.raises(StorageError) as info:
                operation()
            cause = info.value.__cause__
            assert isinstance(cause, sa.exc.DBAPIError)
            assert "SECRET" not in str(info.value) and "SECRET" not in str(cause)
    finally:
        store.close()


def test_postgresql_add_retries_when_the_row_changed_under_it(sqlite_url: str,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Neither stored nor a live row seen: a concurrent writer changed the row; the
    statement runs again with a new snapshot (PostgreSQL's add)."""
    store = SQLWrapper(sqlite_url, None, "c")
    try:
        outcomes = iter([(0, 0), (0, 0), (1, 0)])
        monkeypatch.setattr(store, "_execute", lambda *args, **kwargs: next(outcomes))
        assert store._add_postgresql({}) is True
        monkeypatch.setattr(store, "_execute", lambda *args, **kwargs: (0, 1))
        assert store._add_postgresql({}) is False
        monkeypatch.setattr(store, "_execute", lambda *args, **kwargs: (0, 0))
        assert store._add_postgresql({}) is False  # gives up after a few attempts
    finally:
        store.close()


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[SQLWrapper]:
    store = SQLWrapper(postgres_url, "pyop", "options")
    try:
        yield store
    finally:
        for key in list(store.keys()):
            store.delete(key)
        store.close()


@pytest.mark.servers
def test_postgresql_synchronous_commit_is_opt_in(postgres_url: str,
                                                 pg_store: SQLWrapper) -> None:
    pg_store.set("k", 1)
    assert _show(pg_store, "synchronous_commit") == "on"
    relaxed = SQLWrapper(postgres_url, "pyop", "options", postgresql_synchronous_commit="off")
    try:
        assert relaxed._engine is not pg_store._engine
        assert relaxed.get("k") == 1
        assert _show(relaxed, "synchronous_commit") == "off"
        relaxed.set("k", 2)
        assert pg_store.get("k") == 2
    finally:
        relaxed.close()


@pytest.mark.servers
def test_postgresql_synchronous_commit_rejects_unknown_values(postgres_url: str) -> None:
    with pytest.raises(ValueError):
        SQLWrapper(postgres_url, None, "c", postgresql_synchronous_commit="off; DROP TABLE x")


@pytest.mark.servers
def test_sqlite_synchronous_is_for_sqlite_only(postgres_url: str) -> None:
    with pytest.raises(ValueError):
        SQLWrapper(postgres_url, None, "c", sqlite_synchronous="FULL")


def _xmax(store: SQLWrapper, key: str) -> int:
    with store._engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT xmax::text::bigint FROM pyop_storage WHERE collection = %(ns)s "
            "AND key = %(k)s", {"ns": store._namespace, "k": key}).scalar_one())


@pytest.mark.servers
def test_postgresql_add_of_a_live_key_writes_nothing(pg_store: SQLWrapper) -> None:
    """ON CONFLICT DO UPDATE would lock the live row (a write, so a WAL flush per
    authorization for a known subject identifier); add() must only read it."""
    assert pg_store.add("sub", {"user_id": "alice"}) is True
    assert _xmax(pg_store, "sub") == 0
    assert pg_store.add("sub", {"user_id": "mallory"}) is False
    assert _xmax(pg_store, "sub") == 0  # not even locked
    assert pg_store.get("sub") == {"user_id": "alice"}


@pytest.mark.servers
def test_postgresql_dead_connection_is_wrapped_and_replaced(postgres_url: str,
                                                             pg_store: SQLWrapper) -> None:
    """A connection killed under the pool: the statement on it fails with StorageError,
    the connection is invalidated, and the next statements get fresh connections."""
    victim = SQLWrapper(postgres_url, "pyop", "options",
                        connect_args={"application_name": "pyop-dead-connection-test"})
    try:
        victim.set("k", 1)
        assert victim._direct and victim._engine is not pg_store._engine
        pg_store.get("k")
        with pg_store._engine.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'pyop-dead-connection-test'").scalar_one()
        assert killed >= 1
        failures = 0
        for _ in range(killed + 2):
            try:
                assert victim.get("k") == 1
            except StorageError as error:
                assert isinstance(error.__cause__, sa.exc.DBAPIError)
                assert error.__cause__.connection_invalidated
                failures += 1
        assert 1 <= failures <= killed
        assert victim.get("k") == 1
    finally:
        victim.close()
