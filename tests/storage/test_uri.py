"""StorageBase.type and StorageBase.from_uri for every scheme (pyop 3 API)."""

from __future__ import annotations

import importlib.util
from typing import Any, Optional

import pytest

from pyop.storage import (
    MemoryStorage,
    MongoWrapper,
    RedisWrapper,
    SQLWrapper,
    StatelessWrapper,
    StorageBase,
)
from pyop.storage.sql import normalise_url


@pytest.mark.parametrize(("uri", "kind"), [
    ("mongodb://localhost:27017", "mongodb"),
    ("mongodb://user:pw@a:27017,b:27017/db?replicaSet=rs0&authSource=admin", "mongodb"),
    ("mongodb+srv://user:pw@cluster0.example.net/db?retryWrites=true", "mongodb"),
    ("MongoDB://LOCALHOST", "mongodb"),
    ("redis://localhost:6379/0", "redis"),
    ("rediss://:password@redis.example.com:6380/1", "redis"),
    ("unix:///run/redis/redis.sock?db=2", "redis"),
    ("sqlite://", "sql"),
    ("sqlite:///relative.db", "sql"),
    ("sqlite:////absolute/path.db", "sql"),
    ("postgresql://user:pw@db.example.com/pyop", "sql"),
    ("postgresql+psycopg://user:pw@db.example.com/pyop", "sql"),
    ("postgresql+psycopg2://user@/pyop?host=/var/run/postgresql", "sql"),
    ("postgres://user@host/db", "sql"),
    ("mysql+pymysql://user:pw@host/db", "sql"),
    ("mariadb+mariadbconnector://user:pw@host/db", "sql"),
    ("stateless://user:secret@host", "stateless"),
    ("memory://", "memory"),
    ("memory:", "memory"),
])
def test_type(uri: str, kind: str) -> None:
    assert StorageBase.type(uri) == kind


@pytest.mark.parametrize("uri", ["ftp://user:hunter2@host/x", "http://example.com", "nope:",
                                 "", "no scheme at all", "mongo://host"])
def test_unknown_scheme(uri: str) -> None:
    with pytest.raises(ValueError) as info:
        StorageBase.type(uri)
    assert "hunter2" not in str(info.value)
    if "://" in uri:
        assert repr(uri.split(":")[0]) in str(info.value)  # names the scheme
    with pytest.raises(ValueError):
        StorageBase.from_uri(uri, collection="c")


def test_from_uri_memory() -> None:
    store = StorageBase.from_uri("memory://", ttl=60)
    assert isinstance(store, MemoryStorage) and store.ttl == 60
    assert isinstance(StorageBase.from_uri("memory:", collection="ignored"), MemoryStorage)


def test_from_uri_needs_a_collection() -> None:
    for uri in ("redis://localhost", "sqlite://", "mongodb://localhost",
                "stateless://u:p@h"):
        with pytest.raises(ValueError):
            StorageBase.from_uri(uri)


def test_from_uri_sqlite(tmp_path: Any) -> None:
    store = StorageBase.from_uri(f"sqlite:///{tmp_path}/pyop.db", db_name="satosa",
                                 collection="authz_codes", ttl=600)
    try:
        assert isinstance(store, SQLWrapper) and store.ttl == 600
        store.set("k", {"v": 1})
        assert store.get("k") == {"v": 1}
    finally:
        store.close()


def test_from_uri_pyop3_positional_order(tmp_path: Any) -> None:
    """pyop 3: from_uri(db_uri, collection, db_name=None, ttl=None)."""
    store = StorageBase.from_uri(f"sqlite:///{tmp_path}/pyop.db", "codes", "provider", 30)
    try:
        assert isinstance(store, SQLWrapper) and store.ttl == 30
        assert store._namespace == "provider:codes"
    finally:
        store.close()


@pytest.mark.servers
def test_from_uri_postgresql(postgres_url: str) -> None:
    store = StorageBase.from_uri(postgres_url, db_name="satosa", collection="clients")
    try:
        assert isinstance(store, SQLWrapper)
        store.set("client1", {"redirect_uris": ["https://rp.example.com/cb"]})
        assert store.get("client1") == {"redirect_uris": ["https://rp.example.com/cb"]}
    finally:
        store.close()


@pytest.mark.servers
def test_from_uri_redis_tcp_and_unix(redis_server: Any) -> None:
    tcp = StorageBase.from_uri(redis_server.url, db_name="satosa", collection="codes", ttl=60)
    unix = StorageBase.from_uri(redis_server.unix_url, db_name="satosa", collection="codes")
    try:
        assert isinstance(tcp, RedisWrapper) and isinstance(unix, RedisWrapper)
        tcp.set("k", {"via": "tcp"})
        assert unix.get("k") == {"via": "tcp"}  # same server, same namespace
        assert 0 < tcp._client.pttl("codes:k") <= 60_000  # pyop 3's key layout
        assert unix.consume("k") == {"via": "tcp"}
    finally:
        tcp.close()
        unix.close()


def test_from_uri_rediss_constructs_without_connecting() -> None:
    pytest.importorskip("redis")
    store = StorageBase.from_uri("rediss://:pw@redis.invalid:6380/1", db_name="d",
                                 collection="c")
    assert isinstance(store, RedisWrapper)
    store.close()


def test_from_uri_mongodb_constructs_without_connecting() -> None:
    pytest.importorskip("pymongo")
    store = StorageBase.from_uri("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=10",
                                 db_name="satosa", collection="authz_codes", ttl=600)
    assert isinstance(store, MongoWrapper) and store.ttl == 600
    assert store._coll.full_name == "satosa.authz_codes"
    store.close()


def test_mongodb_default_database_from_uri() -> None:
    pytest.importorskip("pymongo")
    store = MongoWrapper("mongodb://127.0.0.1:1/fromuri?serverSelectionTimeoutMS=10", None,
                         "c")
    assert store._coll.full_name == "fromuri.c"
    store.close()
    with pytest.raises(ValueError):
        MongoWrapper("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=10", None, "c")


def test_from_uri_mongomock_client_kwarg(mongomock_client: Any) -> None:
    store = StorageBase.from_uri("mongodb://localhost", db_name="satosa", collection="c",
                                 client=mongomock_client)
    store.set("k", 1)
    assert store.get("k") == 1
    store.close()


def test_from_uri_stateless() -> None:
    store = StorageBase.from_uri("stateless://user:topsecret-of-some-length@host",
                                 collection="access_tokens")
    assert isinstance(store, StatelessWrapper)


def test_from_uri_passes_clock(tmp_path: Any) -> None:
    now = [1000.0]
    store = StorageBase.from_uri(f"sqlite:///{tmp_path}/c.db", collection="c",
                                 clock=lambda: now[0])
    try:
        store.set("k", 1, expires_at=1001)
        assert store.get("k") == 1
        now[0] = 1001
        assert store.get("k") is None
    finally:
        store.close()


@pytest.mark.parametrize(("psycopg", "psycopg2", "expected"), [
    (True, False, "postgresql+psycopg://u@h/db"),
    (True, True, "postgresql://u@h/db"),
    (False, True, "postgresql://u@h/db"),
])
def test_bare_postgresql_url_driver_choice(monkeypatch: pytest.MonkeyPatch, psycopg: bool,
                                           psycopg2: bool, expected: str) -> None:
    present = {"psycopg": psycopg, "psycopg2": psycopg2}

    def find_spec(name: str) -> Optional[object]:
        return object() if present.get(name) else None

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert normalise_url("postgresql://u@h/db") == expected
    assert normalise_url("postgres://u@h/db") == expected
    assert normalise_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalise_url("sqlite://") == "sqlite://"


def test_engines_are_shared_per_url(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    first = SQLWrapper(url, "p", "codes")
    second = SQLWrapper(url, "p", "tokens")
    try:
        assert first._engine is second._engine
        first.close()
        second.set("still", "works")
        assert second.get("still") == "works"
    finally:
        second.close()
    third = SQLWrapper(url, "p", "codes")
    try:
        assert third._engine is not first._engine  # the last close disposed the shared one
    finally:
        third.close()


def test_injected_engine_is_not_disposed(tmp_path: Any) -> None:
    sa = pytest.importorskip("sqlalchemy")
    engine = sa.create_engine(f"sqlite:///{tmp_path}/own.db")
    store = SQLWrapper("ignored://", None, "c", engine=engine)
    store.set("k", 1)
    store.close()
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from pyop_storage")).scalar_one() == 1
    engine.dispose()


def test_sql_needs_a_collection() -> None:
    with pytest.raises(ValueError):
        SQLWrapper("sqlite://")


@pytest.mark.servers
def test_redis_namespace_and_glob_escaping(redis_server: Any) -> None:
    tricky = RedisWrapper(redis_server.url, None, "db*:c[1]?", clock=lambda: 0)
    other = RedisWrapper(redis_server.url, None, "dbX:c1x", clock=lambda: 0)
    plain = RedisWrapper(redis_server.url, None, "nodb")
    try:
        tricky.set("a", 1)
        other.set("b", 2)
        plain.set("c", 3)
        assert list(tricky.keys()) == ["a"]
        assert list(other.keys()) == ["b"]
        assert plain._client.get("nodb:c") == b'{"value":3}'  # pyop 3's layout
    finally:
        for store in (tricky, other, plain):
            for key in list(store.keys()):
                store.delete(key)
            store.close()


@pytest.mark.servers
@pytest.mark.parametrize("db_name", [3, "3", " 3 "])
def test_redis_db_name_is_the_database_index(redis_server: Any, db_name: Any) -> None:
    """pyop 3: ``db_name`` was passed to ``Redis.from_url`` as ``db``."""
    uri = f"redis://127.0.0.1:{redis_server.port}"
    store = StorageBase.from_uri(uri, "idx", db_name=db_name)
    try:
        assert store._client.connection_pool.connection_kwargs["db"] == 3
        store["k"] = {"v": 1}
        assert store._client.get("idx:k") == b'{"value":{"v":1}}'
    finally:
        store.delete("k")
        store.close()


@pytest.mark.servers
def test_redis_uri_database_wins_over_db_name(redis_server: Any) -> None:
    """As with ``Redis.from_url(url, db=...)``: the URI's database wins, so SATOSA's
    ``db_name="satosa"`` with ``redis://host:6379/0`` keeps working."""
    for uri in (redis_server.url, redis_server.unix_url):
        store = StorageBase.from_uri(uri, db_name="satosa", collection="idx")
        try:
            assert store._client.connection_pool.connection_kwargs["db"] == 0
        finally:
            store.close()


def test_redis_db_name_that_is_no_index() -> None:
    """pyop 3 failed at the first command (``SELECT satosa``); the default database is
    used instead."""
    pytest.importorskip("redis")
    store = StorageBase.from_uri("redis://127.0.0.1:1", db_name="satosa", collection="c")
    assert "db" not in store._client.connection_pool.connection_kwargs or \
        store._client.connection_pool.connection_kwargs["db"] == 0
    store.close()


def test_from_uri_driver_options_pyop3_style(mongomock_client: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """pyop 3 / SATOSA: ``from_uri(..., mongo_kwargs={...})`` and ``redis_kwargs``."""
    pymongo = pytest.importorskip("pymongo")
    redis = pytest.importorskip("redis")
    seen: list[tuple[str, dict[str, Any]]] = []

    def mongo_client(uri: str, **kwargs: Any) -> Any:
        seen.append(("mongo", kwargs))
        return mongomock_client

    def from_url(uri: str, **kwargs: Any) -> Any:
        seen.append(("redis", kwargs))
        return redis.Redis(db=kwargs.get("db", 0))

    monkeypatch.setattr(pymongo, "MongoClient", mongo_client)
    monkeypatch.setattr(redis.Redis, "from_url", from_url)
    mongo = StorageBase.from_uri("mongodb://h/x", "c", "satosa", 60,
                                 mongo_kwargs={"appname": "sat"})
    red = StorageBase.from_uri("redis://h", "c", "2", redis_kwargs={"client_name": "sat"})
    mongo.close()
    red.close()
    assert seen[0][0] == "mongo" and seen[0][1]["appname"] == "sat"
    assert seen[1][0] == "redis" and seen[1][1]["client_name"] == "sat"
    assert seen[1][1]["db"] == 2


def test_mongodb_uri_database_wins_over_db_name() -> None:
    """pyop 3: ``parsed_uri['database'] or db_name``."""
    pytest.importorskip("pymongo")
    store = StorageBase.from_uri("mongodb://127.0.0.1:1/fromuri?serverSelectionTimeoutMS=10",
                                 db_name="satosa", collection="c")
    assert store._coll.full_name == "fromuri.c"
    store.close()


@pytest.mark.parametrize(("query", "ok"), [("", True), ("?alg=aes256", True),
                                           ("?alg=AES256", True), ("?alg=des", False)])
def test_from_uri_stateless_alg(query: str, ok: bool) -> None:
    uri = "stateless://user:topsecret-of-some-length@host" + query
    if ok:
        assert isinstance(StorageBase.from_uri(uri, "c"), StatelessWrapper)
    else:
        with pytest.raises(ValueError):
            StorageBase.from_uri(uri, "c")


def test_type_answers_as_pyop3() -> None:
    """The URIs pyop 3 knew get pyop 3's answers (its StorageBase.type)."""
    for uri, kind in (("mongodb://h/db", "mongodb"), ("redis://h:6379/0", "redis"),
                      ("unix:///tmp/redis.sock", "redis"), ("stateless://u:p@h", "stateless")):
        assert StorageBase.type(uri) == kind
