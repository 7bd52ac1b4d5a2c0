"""``SQLWrapper(..., postgresql_unlogged=True)``: the rows in the UNLOGGED table.

PostgreSQL documentation, "CREATE TABLE", ``UNLOGGED``: no WAL is written for the table,
so a commit that only touches it does not wait for a WAL flush; it is truncated after a
crash and not replicated. The whole storage contract and the race suites run on it too
(the ``postgresql-unlogged`` backend of ``conftest.py``); here: the table itself, the
options' checks, ``compare_and_set_then_set`` across the two tables (one statement,
atomic), a provider keeping codes and access tokens unlogged, and the WAL not written.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pyop.storage import SQLWrapper, StorageBase
from pyop.storage import _sql_engine as sql_engine
from pyop.storage import sql as sql_module
from pyop.storage.sql import TABLE_NAME, UNLOGGED_TABLE_NAME

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



@pytest.fixture
def stores(postgres_url: str) -> Iterator[Any]:
    """``make(unlogged, collection=None)``: a PostgreSQL store in a fresh namespace."""
    with sql_stores(postgres_url) as make:
        yield lambda unlogged, collection="": make(collection, postgresql_unlogged=unlogged)


def _rows(store: SQLWrapper, table: str) -> dict[str, Any]:
    with store._engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT key, value FROM {table} WHERE collection = %(ns)s",  # noqa: S608
            {"ns": store._namespace}).all()
    return {key: value for key, value in rows}


def _persistence(store: SQLWrapper, table: str) -> str:
    with store._engine.connect() as conn:
        return str(conn.exec_driver_sql(
            "SELECT relpersistence FROM pg_class WHERE oid = %(t)s::regclass",
            {"t": table}).scalar_one())


# -- the table ----------------------------------------------------------------------------


@pytest.mark.servers
def test_rows_live_in_the_unlogged_table(stores: Any) -> None:
    unlogged, logged = stores(True, "codes"), stores(False, "codes")  # the same collection
    assert unlogged._engine is logged._engine  # one engine for both tables
    unlogged.set("k", "in the unlogged table")
    logged.set("k", "in the logged table")
    assert _persistence(unlogged, UNLOGGED_TABLE_NAME) == "u"
    assert _persistence(logged, TABLE_NAME) == "p"
    assert _rows(unlogged, UNLOGGED_TABLE_NAME) == {"k": '"in the unlogged table"'}
    assert _rows(logged, TABLE_NAME) == {"k": '"in the logged table"'}
    # the same collection name in the two tables: two collections
    assert unlogged.get("k") == "in the unlogged table"
    assert logged.get("k") == "in the logged table"
    assert unlogged.consume("k") == "in the unlogged table"
    assert logged.get("k") == "in the logged table"
    assert list(unlogged.keys()) == [] and list(logged.keys()) == ["k"]
    assert {TABLE_NAME, UNLOGGED_TABLE_NAME} <= unlogged._entry.tables_ready


@pytest.mark.servers
def test_unlogged_indexes(stores: Any) -> None:
    store = stores(True)
    store.set("k", 1)
    with store._engine.connect() as conn:
        indexes = dict(conn.exec_driver_sql(
            "SELECT c.relname, c.relpersistence FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %(t)s::regclass", {"t": UNLOGGED_TABLE_NAME}).all())
    assert indexes == {"pyop_storage_unlogged_pkey": "u",
                       "ix_pyop_storage_unlogged_expires_at": "u"}


@pytest.mark.servers
def test_from_uri_passes_the_option_through(postgres_url: str) -> None:
    store = StorageBase.from_uri(postgres_url, collection="c", db_name=new_namespace(),
                                 postgresql_unlogged=True)
    try:
        assert isinstance(store, SQLWrapper)
        store.set("k", 1)
        assert _rows(store, UNLOGGED_TABLE_NAME) == {"k": "1"}
        store.delete("k")
    finally:
        store.close()


@pytest.mark.servers
def test_injected_postgresql_engine(postgres_url: str) -> None:
    engine = sa.create_engine(sql_module.normalise_url(postgres_url))
    store = SQLWrapper("ignored://", new_namespace(), "c", engine=engine,
                       postgresql_unlogged=True)
    try:
        store.set("k", {"a": 1})
        assert _rows(store, UNLOGGED_TABLE_NAME) == {"k": '{"a":1}'}
        assert store.consume("k") == {"a": 1}
    finally:
        store.close()
        engine.dispose()


@pytest.mark.servers
def test_tables_created_concurrently_on_a_new_database(postgres_url: str) -> None:
    """First use of both tables by several engines at once, on an empty database."""
    url = sa.engine.make_url(sql_module.normalise_url(postgres_url))
    name = "pyop_unlogged_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.DBAPIError as error:
        admin.dispose()
        pytest.skip(f"cannot create a database on this server: {error}")
    made: list[SQLWrapper] = []
    try:
        new_url = url.set(database=name).render_as_string(hide_password=False)
        for i in range(THREADS):  # an engine per store (distinct options), as processes
            made.append(SQLWrapper(new_url, None, "c", postgresql_unlogged=i % 2 == 0,
                                   connect_args={"application_name": f"pyop-create-{i}"}))
        assert len({id(store._engine) for store in made}) == THREADS

        mine = per_thread(made)

        def first_write(r: int) -> bool:
            return mine().add(f"k{threading.get_ident()}", r)

        results = race(first_write, rounds=1)
        assert results == [[True] * THREADS]
        assert _persistence(made[0], UNLOGGED_TABLE_NAME) == "u"
        assert _persistence(made[1], TABLE_NAME) == "p"
    finally:
        for store in made:
            store.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


# -- options ------------------------------------------------------------------------------


def test_unlogged_is_for_postgresql_only(tmp_path: Any) -> None:
    engines = dict(sql_engine.engines)
    url = f"sqlite:///{tmp_path}/pyop.sqlite"
    with pytest.raises(ValueError, match="PostgreSQL"):
        SQLWrapper(url, None, "c", postgresql_unlogged=True)
    with pytest.raises(ValueError, match="PostgreSQL"):
        StorageBase.from_uri(url, collection="c", postgresql_unlogged=True)
    with pytest.raises(ValueError, match="PostgreSQL"):
        SQLWrapper("sqlite://", None, "c", postgresql_unlogged=True)
    assert sql_engine.engines == engines  # no engine created, none leaked
    engine = sa.create_engine(url)
    try:
        with pytest.raises(ValueError, match="PostgreSQL"):
            SQLWrapper("ignored://", None, "c", engine=engine, postgresql_unlogged=True)
    finally:
        engine.dispose()


@pytest.mark.parametrize("bad", [1, 0, "true", "yes", None])
def test_unlogged_must_be_a_bool(tmp_path: Any, bad: Any) -> None:
    with pytest.raises(TypeError):
        SQLWrapper(f"sqlite:///{tmp_path}/pyop.sqlite", None, "c", postgresql_unlogged=bad)


def test_default_is_the_logged_table(tmp_path: Any) -> None:
    store = SQLWrapper(f"sqlite:///{tmp_path}/pyop.sqlite", None, "c",
                       postgresql_unlogged=False)
    try:
        store.set("k", 1)
        assert store._table.name == TABLE_NAME
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT key FROM pyop_storage").all() == [("k",)]
    finally:
        store.close()


# -- compare_and_set_then_set across the tables -------------------------------------------


PAIRS = [pytest.param(True, True, id="unlogged-unlogged"),
         pytest.param(False, True, id="logged-unlogged"),
         pytest.param(True, False, id="unlogged-logged")]


@pytest.mark.servers
@pytest.mark.parametrize(("codes_unlogged", "tokens_unlogged"), PAIRS)
def test_cas_then_set_is_one_statement(stores: Any, codes_unlogged: bool,
                                       tokens_unlogged: bool) -> None:
    codes, tokens = stores(codes_unlogged), stores(tokens_unlogged)
    codes.set("code", CODE, expires_at=codes._clock() + 600)
    tokens.set("warm", 1)  # both tables exist: only the statement under test is counted
    with recorded_statements(codes._engine) as seen:
        assert codes.compare_and_set_then_set("code", CODE, USED, codes._clock() + 1200,
                                              tokens, "at", TOKEN, codes._clock() + 3600)
    assert len(seen) == 1, seen
    statement = seen[0]
    assert statement.startswith("WITH cas AS (UPDATE " + codes._table.name + " ")
    assert "INSERT INTO " + tokens._table.name + " " in statement
    assert _rows(codes, codes._table.name) == {"code": '{"client_id":"c","used":true}'}
    assert _rows(tokens, tokens._table.name)["at"] == '{"sub":"s","token_type":"access_token"}'
    other_table = UNLOGGED_TABLE_NAME if tokens._table.name == TABLE_NAME else TABLE_NAME
    assert "at" not in _rows(tokens, other_table)


@pytest.mark.servers
@pytest.mark.parametrize(("codes_unlogged", "tokens_unlogged"), PAIRS)
def test_cas_then_set_writes_nothing_when_the_cas_fails(stores: Any, codes_unlogged: bool,
                                                        tokens_unlogged: bool) -> None:
    codes, tokens = stores(codes_unlogged), stores(tokens_unlogged)
    now = codes._clock()
    assert not codes.compare_and_set_then_set("code", CODE, USED, now + 1200, tokens, "at",
                                              TOKEN, now + 3600)  # no code at all
    codes.set("code", USED, expires_at=now + 600)
    assert not codes.compare_and_set_then_set("code", CODE, USED, now + 1200, tokens, "at",
                                              TOKEN, now + 3600)  # already used
    assert tokens.get("at") is None and codes.get("code") == USED
    assert _rows(tokens, TABLE_NAME) == {} and _rows(tokens, UNLOGGED_TABLE_NAME) == {}


@pytest.mark.servers
def test_cas_then_set_same_collection_and_key_in_the_two_tables(stores: Any) -> None:
    """Another table is another row: still the one statement."""
    codes, same_name = stores(True, "x"), stores(False, "x")
    codes.set("k", CODE, expires_at=codes._clock() + 600)
    same_name.set("warm", 1)
    with recorded_statements(codes._engine) as seen:
        assert codes.compare_and_set_then_set("k", CODE, USED, codes._clock() + 1200,
                                              same_name, "k", TOKEN)
    assert len(seen) == 1
    assert codes.get("k") == USED and same_name.get("k") == TOKEN


@pytest.mark.servers
def test_cas_then_set_creates_the_other_table(stores: Any, monkeypatch: Any) -> None:
    """The other store's table is created (if missing) before the statement writes to it."""
    codes, tokens = stores(True), stores(False)
    codes.set("code", CODE, expires_at=codes._clock() + 600)
    created: list[str] = []
    original = SQLWrapper._create_table

    def spy(self: SQLWrapper) -> None:
        created.append(self._table.name)
        original(self)

    monkeypatch.setattr(SQLWrapper, "_create_table", spy)
    codes._entry.tables_ready.discard(TABLE_NAME)  # as on a fresh engine
    assert codes.compare_and_set_then_set("code", CODE, USED, codes._clock() + 1200, tokens,
                                          "at", TOKEN)
    assert created == [TABLE_NAME]
    assert TABLE_NAME in codes._entry.tables_ready
    assert tokens.get("at") == TOKEN


@pytest.mark.servers
@pytest.mark.parametrize(("codes_unlogged", "tokens_unlogged"), PAIRS)
def test_cas_then_set_takes_the_direct_path(stores: Any, monkeypatch: Any,
                                            codes_unlogged: bool, tokens_unlogged: bool) -> None:
    codes, tokens = stores(codes_unlogged), stores(tokens_unlogged)
    if not codes._direct:
        pytest.skip(f"no direct path for the driver {codes._engine.dialect.driver}")
    codes.set("code", CODE, expires_at=codes._clock() + 600)
    tokens.set("warm", 1)
    direct: list[Any] = []
    original = SQLWrapper._execute_direct

    def spy(self: SQLWrapper, operation: str, stmt: Any, *args: Any) -> Any:
        direct.append(stmt)
        return original(self, operation, stmt, *args)

    monkeypatch.setattr(SQLWrapper, "_execute_direct", spy)
    assert codes.compare_and_set_then_set("code", CODE, USED, codes._clock() + 1200, tokens,
                                          "at", TOKEN, codes._clock() + 3600)
    assert direct == [codes._sql.cas_then_set_postgresql[tokens._table.name]]
    assert tokens.get("at") == TOKEN and codes.get("code") == USED


@pytest.mark.servers
@pytest.mark.parametrize(("codes_unlogged", "tokens_unlogged"), PAIRS)
def test_concurrent_redemptions_across_the_tables(postgres_url: str, codes_unlogged: bool,
                                                  tokens_unlogged: bool) -> None:
    """One winner per code, one token written, with a store pair per thread."""
    namespace, rounds = new_namespace(), 20
    pairs = [(SQLWrapper(postgres_url, namespace, "codes", postgresql_unlogged=codes_unlogged),
              SQLWrapper(postgres_url, namespace, "tokens", postgresql_unlogged=tokens_unlogged))
             for _ in range(THREADS)]
    codes, tokens = pairs[0]
    try:
        for r in range(rounds):
            codes.set(f"code{r}", {"r": r}, expires_at=codes._clock() + 600)

        mine = per_thread(pairs)

        def redeem(r: int) -> bool:
            mine_codes, mine_tokens = mine()
            return mine_codes.compare_and_set_then_set(
                f"code{r}", {"r": r}, {"r": r, "used": True}, codes._clock() + 1200,
                mine_tokens, f"at{r}-{threading.get_ident()}", {"r": r},
                codes._clock() + 3600)

        results = race(redeem, rounds=rounds)
        live = set(tokens.keys())
        for r, outcomes in enumerate(results):
            assert outcomes.count(True) == 1, (r, outcomes)
            assert sum(1 for key in live if key.startswith(f"at{r}-")) == 1, r
    finally:
        for store in (codes, tokens):
            for key in list(store.keys()):
                store.delete(key)
        for pair in pairs:
            for store in pair:
                store.close()


# -- a provider with codes and access tokens unlogged -------------------------------------


@pytest.mark.servers
def test_provider_with_codes_and_access_tokens_unlogged(postgres_url: str,
                                                        rsa_private_key: Any) -> None:
    from pyop.crypto import SigningKey

    namespace = new_namespace()

    def store(collection: str, unlogged: bool) -> StorageBase:
        return StorageBase.from_uri(postgres_url, collection=collection, db_name=namespace,
                                    postgresql_unlogged=unlogged)

    def build() -> Stores:
        made = [store("authz_codes", True), store("access_tokens", True),
                store("refresh_tokens", False), store("subject_identifiers", False)]
        return Stores(*made, closables=list(made))

    first, second = build(), build()  # two workers sharing the database
    try:
        key = SigningKey.from_key(rsa_private_key)
        provider = make_provider(first, key, refresh_token_lifetime=3600,
                                 refresh_token_threshold=7200)
        other = make_provider(second, key, refresh_token_lifetime=3600,
                              refresh_token_threshold=7200)
        code = authorize(provider)
        assert list(_rows(first.codes, UNLOGGED_TABLE_NAME)) == [code]
        assert _rows(first.codes, TABLE_NAME) == {}
        tokens = exchange(other, code)
        access, refresh_token = tokens["access_token"], tokens["refresh_token"]
        assert list(_rows(first.access_tokens, UNLOGGED_TABLE_NAME)) == [access]
        assert list(_rows(first.refresh_tokens, TABLE_NAME)) == [refresh_token]
        assert len(_rows(first.subject_identifiers, TABLE_NAME)) == 2  # pin and reverse
        assert _rows(first.refresh_tokens, UNLOGGED_TABLE_NAME) == {}
        assert _rows(first.subject_identifiers, UNLOGGED_TABLE_NAME) == {}
        assert userinfo(provider, access)["name"] == "Alice Liddell"

        refreshed = refresh(provider, refresh_token)
        new_access, new_refresh = refreshed["access_token"], refreshed["refresh_token"]
        assert userinfo(other, new_access)["name"] == "Alice Liddell"
        assert outcome(lambda: refresh(other, refresh_token)) == "invalid_grant"

        # replaying the code is refused and revokes what was issued from it (RFC 6749 4.1.2)
        assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
        assert outcome(lambda: userinfo(other, access)) == "invalid_token"
        assert outcome(lambda: userinfo(other, new_access)) == "invalid_token"
        assert outcome(lambda: refresh(provider, new_refresh)) == "invalid_grant"

        # a code flow without refresh tokens: the replay revokes the access token
        plain = make_provider(first, key, refresh_token_lifetime=None)
        code = authorize(plain)
        access = exchange(plain, code)["access_token"]
        assert outcome(lambda: userinfo(plain, access)) == "ok"
        assert outcome(lambda: exchange(plain, code)) == "invalid_grant"
        assert outcome(lambda: userinfo(plain, access)) == "invalid_token"
    finally:
        for stores_ in (first, second):
            for closable in stores_.closables[:]:
                assert isinstance(closable, SQLWrapper)
                for k in list(closable.keys()):
                    closable.delete(k)
        first.close()
        second.close()


# -- no WAL -------------------------------------------------------------------------------


def _wal_written(store: SQLWrapper, write: Any) -> int:
    """Bytes of WAL inserted while ``write()`` runs (fewest of three tries: background
    activity of the server, such as autovacuum, can add records to one measurement)."""
    sizes = []
    with store._engine.connect() as conn:
        for _ in range(3):
            before = conn.exec_driver_sql("SELECT pg_current_wal_insert_lsn()").scalar_one()
            write()
            sizes.append(int(conn.exec_driver_sql(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %(b)s)",
                {"b": before}).scalar_one()))
    return min(sizes)


@pytest.mark.servers
def test_unlogged_writes_generate_no_wal_but_a_commit_record(stores: Any) -> None:
    unlogged, logged = stores(True), stores(False)
    unlogged.set("warm", 1)
    logged.set("warm", 1)
    value = os.urandom(2048).hex()  # 4 KiB that do not compress much
    assert _wal_written(logged, lambda: logged.set(uuid.uuid4().hex, value)) > 4096
    # the commit record of the transaction (an xid was assigned), without the row and
    # its index entries
    assert _wal_written(unlogged, lambda: unlogged.set(uuid.uuid4().hex, value)) < 256
