"""``SQLWrapper(..., postgresql_asynchronous_set=True)``: ``set()`` commits asynchronously.

The upsert of ``set()`` runs ``set_config('synchronous_commit', 'off', true)`` in a CTE, so
the implicit transaction of that one statement (autocommit mode) commits without waiting
for the WAL flush (PostgreSQL documentation, "Asynchronous Commit"); the session's setting
is unchanged afterwards, and every conditional write (compare_and_set,
compare_and_set_then_set, add, consume, delete) still commits synchronously. The storage
contract runs on it too (the ``postgresql-asyncset`` backend of ``conftest.py``); here: the
statement, its scope, the options' checks and a provider keeping its codes this way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pyop.storage import SQLWrapper, StorageBase
from pyop.storage import _sql_engine as sql_engine
from pyop.storage import _sql_statements as sql_statements
from pyop.storage import sql as sql_module

from .provider_support import (
    Stores,
    authorize,
    exchange,
    make_provider,
    new_namespace,
    outcome,
    per_thread,
    refresh,
    userinfo,
)
from .sql_support import CODE, TOKEN, USED, recorded_statements, sql_stores
from .test_races import THREADS, race

sa = pytest.importorskip("sqlalchemy")

PREFIX = "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "


@pytest.fixture
def stores(postgres_url: str) -> Iterator[Any]:
    """``make(collection="", **options)``: a PostgreSQL store in a fresh namespace
    (asynchronous set unless ``postgresql_asynchronous_set=False`` is given)."""
    with sql_stores(postgres_url, postgresql_asynchronous_set=True) as make:
        yield make


def _single_connection(stores: Any, **options: Any) -> SQLWrapper:
    """A store on an engine of its own with one pooled connection (distinct engine options
    make a distinct engine), so every statement runs on the same PostgreSQL session."""
    return stores(pool_size=1, max_overflow=0,
                  connect_args={"application_name": "pyop-asyncset-" + uuid.uuid4().hex[:8]},
                  **options)


def _session(store: SQLWrapper) -> tuple[int, str]:
    """(backend pid, ``SHOW synchronous_commit``) of the store's pooled connection."""
    connection = store._engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT pg_backend_pid(), current_setting('synchronous_commit')")
            pid, setting = cursor.fetchone()
        finally:
            cursor.close()
    finally:
        connection.close()
    return int(pid), str(setting)


# -- set ----------------------------------------------------------------------------------


@pytest.mark.servers
def test_round_trip_overwrite_and_expiry(stores: Any) -> None:
    store = stores()
    now = store._clock()
    store.set("k", {"a": 1})
    assert store.get("k") == {"a": 1}
    store.set("k", [1, "two"])  # overwrite (ON CONFLICT DO UPDATE)
    assert store.get("k") == [1, "two"]
    store.set("short", "gone soon", expires_at=now - 1)  # already expired
    assert store.get("short") is None
    store.set("short", "back", expires_at=now + 600)  # takes over the expired row
    assert store.get("short") == "back"
    store.set("k", "expired", expires_at=now - 1)  # an overwrite sets the expiry too
    assert store.get("k") is None
    assert sorted(store.keys()) == ["short"]
    assert store.consume("short") == "back"


@pytest.mark.servers
def test_ttl_applies(postgres_url: str) -> None:
    now = [1_000_000.0]
    store = SQLWrapper(postgres_url, new_namespace(), "c", 60, clock=lambda: now[0],
                       postgresql_asynchronous_set=True)
    try:
        store.set("k", 1)
        now[0] += 59
        assert store.get("k") == 1
        now[0] += 2
        assert store.get("k") is None
    finally:
        store.close()


@pytest.mark.servers
def test_set_is_one_statement(stores: Any) -> None:
    store = stores()
    store.set("warm", 1)  # the table exists: only the statement under test is counted
    with recorded_statements(store._engine) as seen:
        store.set("k", {"a": 1}, expires_at=store._clock() + 600)
    assert len(seen) == 1, seen
    assert seen[0].startswith(PREFIX + "INSERT INTO pyop_storage ")
    assert "ON CONFLICT (collection, key) DO UPDATE" in seen[0]


@pytest.mark.servers
def test_only_set_changes(stores: Any) -> None:
    """Every other write is the statement of a store without the option."""
    store = stores()
    store.set("warm", CODE, expires_at=store._clock() + 600)
    with recorded_statements(store._engine) as seen:
        assert store.add("new", 1)
        assert not store.add("new", 2)
        assert store.compare_and_set("warm", CODE, USED, store._clock() + 600)
        assert store.consume("new") == 1
        assert store.delete("warm")
    assert len(seen) == 5 and not any("set_config" in statement for statement in seen), seen


@pytest.mark.servers
def test_set_takes_the_direct_path(stores: Any, monkeypatch: Any) -> None:
    store = stores()
    if not store._direct:
        pytest.skip(f"no direct path for the driver {store._engine.dialect.driver}")
    store.set("warm", 1)
    direct: list[Any] = []
    original = SQLWrapper._execute_direct

    def spy(self: SQLWrapper, operation: str, stmt: Any, *args: Any) -> Any:
        direct.append(stmt)
        return original(self, operation, stmt, *args)

    monkeypatch.setattr(SQLWrapper, "_execute_direct", spy)
    store.set("k", {"a": 1})
    assert direct == [store._sql.upsert_asynchronous_postgresql]
    assert id(direct[0]) in store._sql.direct
    assert store.get("k") == {"a": 1}


@pytest.mark.servers
def test_set_through_sqlalchemy(stores: Any) -> None:
    """The same statement on the SQLAlchemy path (an instrumented engine, a table not yet
    known to exist): the bind parameters are typed for the INSERT ... SELECT."""
    store = stores()
    with recorded_statements(store._engine) as seen:  # a listener: no direct path
        store.set("k", {"a": 1}, expires_at=store._clock() + 600)
        store.set("none", None)  # expires_at NULL
        store.set("k", "again")
    assert sum(statement.startswith(PREFIX) for statement in seen) == 3
    assert store.get("k") == "again" and store.get("none", "default") is None


# -- the scope of the asynchronous commit -------------------------------------------------


@pytest.mark.servers
@pytest.mark.parametrize("session_setting", [None, "local", "remote_write"])
def test_the_session_setting_is_unchanged_after_set(stores: Any,
                                                    session_setting: Any) -> None:
    store = _single_connection(stores, postgresql_synchronous_commit=session_setting)
    pid, before = _session(store)
    assert before == (session_setting or before)
    for i in range(3):
        store.set(f"k{i}", i)
        assert _session(store) == (pid, before)  # the same session, the same setting
    # the conditional writes after it still run with the session's setting
    assert store.compare_and_set("k0", 0, 10)
    assert store.add("k9", 9)
    assert _session(store) == (pid, before)


def _run_in_transaction(store: SQLWrapper, stmt: Any, params: dict[str, Any]) -> tuple[str, str]:
    """``stmt`` inside ``BEGIN``/``COMMIT`` on a raw connection: ``synchronous_commit`` in
    the transaction after the statement, and in the session after the ``COMMIT``."""
    direct = sql_statements.DirectStatement(stmt, store._engine.dialect)
    connection = store._engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("BEGIN")
            cursor.execute(direct.sql, direct.parameters(params))
            cursor.execute("SHOW synchronous_commit")
            inside = cursor.fetchone()[0]
            cursor.execute("COMMIT")
            cursor.execute("SHOW synchronous_commit")
            after = cursor.fetchone()[0]
        finally:
            cursor.close()
    finally:
        connection.close()
    return str(inside), str(after)


@pytest.mark.servers
def test_the_statement_turns_synchronous_commit_off_for_its_transaction(stores: Any) -> None:
    store = stores()
    store.set("warm", 1)
    session = _session(store)[1]
    assert session != "off"  # the server's default (on) for this check
    now = store._clock()
    params = {"ns": store._namespace, "k": "k", "v": "1", "exp": now + 600}
    assert _run_in_transaction(store, store._sql.upsert_asynchronous_postgresql,
                               params) == ("off", session)
    assert store.get("k") == 1  # committed
    # the conditional update on the same store: the session's setting in its transaction
    assert _run_in_transaction(store, store._sql.cas, dict(
        params, v="2", expected="1", now=now)) == (session, session)
    assert store.get("k") == 2


def _lsn(cursor: Any, function: str) -> int:
    cursor.execute(f"SELECT pg_wal_lsn_diff({function}(), '0/0')")
    return int(cursor.fetchone()[0])


@pytest.mark.servers
def test_conditional_writes_still_wait_for_the_flush(stores: Any) -> None:
    """A synchronous commit returns once the WAL is flushed past its commit record, which
    comes after the WAL insert position read before the statement."""
    codes, tokens = stores("codes"), stores("tokens")
    now = codes._clock()
    codes.set("code", CODE, expires_at=now + 600)
    codes.set("code2", CODE, expires_at=now + 600)
    tokens.set("warm", 1)
    connection = codes._engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            for write in (lambda: codes.compare_and_set("code", CODE, USED, now + 1200),
                          lambda: codes.compare_and_set_then_set(
                              "code2", CODE, USED, now + 1200, tokens, "at", TOKEN,
                              now + 3600)):
                before = _lsn(cursor, "pg_current_wal_insert_lsn")
                assert write()
                assert _lsn(cursor, "pg_current_wal_flush_lsn") > before
        finally:
            cursor.close()
    finally:
        connection.close()
    assert codes.get("code") == USED and tokens.get("at") == TOKEN


# -- options ------------------------------------------------------------------------------


@pytest.mark.servers
def test_from_uri_passes_the_option_through(postgres_url: str) -> None:
    store = StorageBase.from_uri(postgres_url, collection="c", db_name=new_namespace(),
                                 postgresql_asynchronous_set=True)
    try:
        assert isinstance(store, SQLWrapper)
        assert store._set_upsert is store._sql.upsert_asynchronous_postgresql
        store.set("k", 1)
        assert store.get("k") == 1
        store.delete("k")
    finally:
        store.close()


@pytest.mark.servers
def test_injected_postgresql_engine(postgres_url: str) -> None:
    """Also on an engine not in autocommit mode (switched per statement): the statement is
    still a transaction of its own."""
    engine = sa.create_engine(sql_module.normalise_url(postgres_url))
    store = SQLWrapper("ignored://", new_namespace(), "c", engine=engine,
                       postgresql_asynchronous_set=True)
    try:
        with recorded_statements(engine) as seen:
            store.set("k", {"a": 1})
        assert any(statement.startswith(PREFIX) for statement in seen)
        assert store.consume("k") == {"a": 1}
    finally:
        store.close()
        engine.dispose()


@pytest.mark.servers
def test_combined_with_unlogged_and_synchronous_commit(stores: Any) -> None:
    unlogged = stores(postgresql_unlogged=True)
    off = stores(postgresql_synchronous_commit="off")
    with recorded_statements(unlogged._engine) as seen:
        unlogged.set("k", 1)
    assert seen[-1].startswith(PREFIX + "INSERT INTO pyop_storage_unlogged ")
    assert unlogged.get("k") == 1
    off.set("k", 2)
    assert off.get("k") == 2
    assert _session(off)[1] == "off"


def test_asynchronous_set_is_for_postgresql_only(tmp_path: Any) -> None:
    engines = dict(sql_engine.engines)
    url = f"sqlite:///{tmp_path}/pyop.sqlite"
    with pytest.raises(ValueError, match="postgresql_asynchronous_set .*PostgreSQL"):
        SQLWrapper(url, None, "c", postgresql_asynchronous_set=True)
    with pytest.raises(ValueError, match="postgresql_asynchronous_set .*PostgreSQL"):
        StorageBase.from_uri(url, collection="c", postgresql_asynchronous_set=True)
    with pytest.raises(ValueError, match="PostgreSQL"):
        SQLWrapper("sqlite://", None, "c", postgresql_asynchronous_set=True)
    with pytest.raises(ValueError, match="PostgreSQL"):
        SQLWrapper("mysql+pymysql://u@localhost/db", None, "c",
                   postgresql_asynchronous_set=True)
    assert sql_engine.engines == engines  # no engine created, none leaked
    engine = sa.create_engine(url)
    try:
        with pytest.raises(ValueError, match="postgresql_asynchronous_set .*PostgreSQL"):
            SQLWrapper("ignored://", None, "c", engine=engine,
                       postgresql_asynchronous_set=True)
    finally:
        engine.dispose()


@pytest.mark.parametrize("bad", [1, 0, "true", "yes", None])
def test_asynchronous_set_must_be_a_bool(tmp_path: Any, bad: Any) -> None:
    with pytest.raises(TypeError, match="postgresql_asynchronous_set"):
        SQLWrapper(f"sqlite:///{tmp_path}/pyop.sqlite", None, "c",
                   postgresql_asynchronous_set=bad)


def test_default_is_the_plain_upsert(tmp_path: Any) -> None:
    store = SQLWrapper(f"sqlite:///{tmp_path}/pyop.sqlite", None, "c",
                       postgresql_asynchronous_set=False)
    try:
        assert store._set_upsert is store._sql.upsert
        assert store._sql.upsert_asynchronous_postgresql is None
        store.set("k", 1)
        assert store.get("k") == 1
    finally:
        store.close()


# -- a provider with its codes set asynchronously ------------------------------------------


def _provider_stores(postgres_url: str, namespace: str) -> Stores:
    def store(collection: str, asynchronous: bool) -> StorageBase:
        return StorageBase.from_uri(postgres_url, collection=collection, db_name=namespace,
                                    postgresql_asynchronous_set=asynchronous)

    made = [store("authz_codes", True), store("access_tokens", False),
            store("refresh_tokens", False), store("subject_identifiers", False)]
    return Stores(*made, closables=list(made))


@pytest.mark.servers
def test_provider_with_codes_set_asynchronously(postgres_url: str,
                                                rsa_private_key: Any) -> None:
    from pyop.crypto import SigningKey

    namespace = new_namespace()
    first, second = (_provider_stores(postgres_url, namespace),
                     _provider_stores(postgres_url, namespace))  # two workers, one database
    try:
        key = SigningKey.from_key(rsa_private_key)
        provider = make_provider(first, key, refresh_token_lifetime=3600,
                                 refresh_token_threshold=7200)
        other = make_provider(second, key, refresh_token_lifetime=3600,
                              refresh_token_threshold=7200)
        with recorded_statements(first.codes._engine) as seen:
            code = authorize(provider)
        assert sum(statement.startswith(PREFIX) for statement in seen) == 1
        tokens = exchange(other, code)  # visible at once to another session
        access, refresh_token = tokens["access_token"], tokens["refresh_token"]
        assert userinfo(provider, access)["name"] == "Alice Liddell"
        refreshed = refresh(provider, refresh_token)
        assert userinfo(other, refreshed["access_token"])["name"] == "Alice Liddell"

        # replaying the code is refused and revokes what was issued from it (RFC 6749 4.1.2)
        assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
        assert outcome(lambda: userinfo(other, access)) == "invalid_token"
        assert outcome(lambda: userinfo(other, refreshed["access_token"])) == "invalid_token"
        assert outcome(lambda: refresh(provider, refreshed["refresh_token"])) == "invalid_grant"

        # without refresh tokens: the replay revokes the access token
        plain = make_provider(first, key, refresh_token_lifetime=None)
        code = authorize(plain)
        access = exchange(plain, code)["access_token"]
        assert outcome(lambda: userinfo(plain, access)) == "ok"
        assert outcome(lambda: exchange(plain, code)) == "invalid_grant"
        assert outcome(lambda: userinfo(plain, access)) == "invalid_token"
    finally:
        for built in (first, second):
            for closable in built.closables:
                assert isinstance(closable, SQLWrapper)
                for k in list(closable.keys()):
                    closable.delete(k)
        first.close()
        second.close()


@pytest.mark.servers
def test_concurrent_code_redemption_has_one_winner(postgres_url: str,
                                                   rsa_private_key: Any) -> None:
    """8 workers (a Provider and stores each) redeem each of 20 codes at once: one wins."""
    from pyop.crypto import SigningKey

    namespace, rounds = new_namespace(), 20
    built = [_provider_stores(postgres_url, namespace) for _ in range(THREADS)]
    try:
        key = SigningKey.from_key(rsa_private_key)
        providers = [make_provider(stores_, key) for stores_ in built]
        codes = [authorize(providers[0]) for _ in range(rounds)]
        mine = per_thread(providers)
        results = race(lambda r: outcome(lambda: exchange(mine(), codes[r])), rounds=rounds)
        for r, outcomes in enumerate(results):
            assert len(outcomes) == THREADS, (r, outcomes)
            assert outcomes.count("ok") == 1, (r, outcomes)
            assert outcomes.count("invalid_grant") == THREADS - 1, (r, outcomes)
    finally:
        for closable in built[0].closables:
            assert isinstance(closable, SQLWrapper)
            for k in list(closable.keys()):
                closable.delete(k)
        for stores_ in built:
            stores_.close()
