"""SQL storage for :mod:`pyop.aio` on SQLAlchemy's asyncio extension: :class:`AsyncSQLStorage`.

The store *is* :class:`pyop.storage.SQLWrapper` (same table, statements, record format,
error wrapping; a record written by one is read by the other), given the synchronous
face of an ``AsyncEngine`` (``async_engine.sync_engine``): the greenlets of
:func:`~pyop.aio._bridge.run_sync` are recognised by SQLAlchemy's own greenlet bridge, so
every statement that wrapper runs is awaited by the asyncio driver on the event loop:

* SQLite through ``aiosqlite`` (``sqlite:///path``, ``sqlite+aiosqlite:///path``);
* PostgreSQL through psycopg 3 (``postgresql://``, ``postgresql+psycopg://``) or
  ``asyncpg`` (``postgresql+asyncpg://``);
* any other SQLAlchemy dialect with an asyncio driver (``mysql+aiomysql://``...).

Thread locks of the synchronous wrapper are never held across an await: the one-time
``CREATE TABLE`` and, on in-memory SQLite (one shared connection), every statement run
under an :class:`asyncio.Lock` of the engine (and event loop) instead.

Event loops: an ``AsyncEngine``'s pooled connections belong to the loop that opened them.
A store made from a URL serves any running loop, with an engine per loop made on the
first use there and disposed when that loop shuts down
(:class:`~pyop.aio._loops.LoopLocal`); in-memory SQLite keeps its one engine (its one
database), which moves to a new loop once the previous one is closed. An engine passed as
``engine=`` serves one loop at a time likewise, its pool replaced when it moves (as
SQLAlchemy prescribes); with ``NullPool`` it serves every loop. Elsewhere
:class:`~pyop.aio.EventLoopMismatch` is raised.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ...storage._sql_engine import (
    POSTGRESQL_SYNCHRONOUS_COMMIT,
    SQLITE_SYNCHRONOUS,
    EngineEntry,
    check_choice,
    create_engine,
    postgresql_only,
)
from ...storage._sql_statements import import_sqlalchemy
from ...storage.base import Clock, wrap_error
from ...storage.sql import SQLWrapper
from .._bridge import await_only, run_sync
from .._loops import LoopBinding, LoopLocal, running_loop
from .base import GreenletStorage

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AsyncSQLStorage"]

#: Errors of the asyncio drivers that SQLAlchemy lets through unwrapped (a refused or
#: timed out connection of asyncpg): wrapped as :class:`~pyop.exceptions.StorageError`.
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)

#: Per engine, the asyncio locks (one per event loop) of its one-time table creation and
#: of every statement of an in-memory SQLite engine (one connection shared by its stores).
_table_locks: weakref.WeakKeyDictionary[Engine, LoopLocal[asyncio.Lock]] = (
    weakref.WeakKeyDictionary())
_statement_locks: weakref.WeakKeyDictionary[Engine, LoopLocal[asyncio.Lock]] = (
    weakref.WeakKeyDictionary())


def _engine_lock(locks: weakref.WeakKeyDictionary[Engine, LoopLocal[asyncio.Lock]],
                 engine: Engine) -> asyncio.Lock:
    """The running loop's lock of ``engine`` in ``locks``."""
    per_loop = locks.get(engine)
    if per_loop is None:
        per_loop = locks[engine] = LoopLocal(asyncio.Lock, what="an AsyncSQLStorage lock")
    return per_loop.get()


class _Binding:
    """An ``AsyncEngine`` as :class:`~pyop.storage.SQLWrapper` uses it: its synchronous
    face, what runs the statements and the engine's state (tables known to exist)."""

    __slots__ = ("async_engine", "engine", "runner", "entry")

    def __init__(self, async_engine: AsyncEngine, entry: EngineEntry) -> None:
        self.async_engine = async_engine
        self.engine: Engine = async_engine.sync_engine
        self.entry = entry
        self.runner: Engine = (self.engine if entry.autocommit
                               else self.engine.execution_options(isolation_level="AUTOCOMMIT"))


class _EnginePerLoop:
    """An engine per event loop, made from the store's URL on its first use there and
    disposed when that loop shuts down (or by :meth:`aclose`); the engine made by the
    constructor serves the first loop."""

    def __init__(self, first: _Binding, make: Callable[[], AsyncEngine]) -> None:
        self._unused: list[_Binding] = [first]
        self._flags = (first.entry.serialise, first.entry.autocommit)
        self._make = make
        self._loops: LoopLocal[_Binding] = LoopLocal(self._bind, _dispose,
                                                     "AsyncSQLStorage's engine")
        self.get: Callable[[], _Binding] = self._loops.get  # one call less per read

    def _bind(self) -> _Binding:
        if self._unused:
            return self._unused.pop()
        return _Binding(self._make(), EngineEntry(None, *self._flags))

    def peek(self) -> _Binding:
        """The running loop's engine; outside a loop, the constructor's until a loop
        takes it."""
        if running_loop() is None and self._unused:
            return self._unused[0]
        return self._loops.get()

    async def aclose(self) -> None:
        await self._loops.aclose()


#: The loop binding of each engine serving one loop at a time (shared by its stores, so
#: that it moves to a new loop once); None for an engine without a pool.
_bindings: weakref.WeakKeyDictionary[Engine, Optional[LoopBinding]] = (
    weakref.WeakKeyDictionary())


def _binding_of(engine: Engine, serialise: bool, owned: bool) -> Optional[LoopBinding]:
    """The :class:`~pyop.aio._loops.LoopBinding` shared by the stores of ``engine``."""
    from sqlalchemy.pool import NullPool

    if engine in _bindings:
        return _bindings[engine]
    binding: Optional[LoopBinding] = None
    if not isinstance(engine.pool, NullPool):
        what = ("AsyncSQLStorage's in-memory SQLite engine" if owned
                else "the AsyncEngine passed to AsyncSQLStorage as engine=")
        advice = (": use a database file to serve several loops at once" if serialise
                  else ": use an engine per loop, or NullPool, or leave engine= out "
                       "(the store then makes an engine per loop)")
        binding = LoopBinding(what, rebind=functools.partial(_rebind, weakref.ref(engine),
                                                             serialise), advice=advice)
    _bindings[engine] = binding
    return binding


def _rebind(engine: Callable[[], Optional[Engine]], serialise: bool) -> None:
    """Move an engine to a new loop, the previous one closed: its pooled connections
    cannot serve the new loop (SQLAlchemy: dispose an engine before using it on a new
    loop); in-memory SQLite keeps its one connection, which holds the database (aiosqlite
    serves any loop)."""
    live = engine()
    if live is not None and not serialise:
        live.dispose(close=False)


class _OneEngine:
    """One engine for every loop, one loop at a time (see the module docstring): an
    engine passed as ``engine=``, or the one of in-memory SQLite."""

    def __init__(self, first: _Binding, owned: bool) -> None:
        self.first = first
        self._owned = owned
        self._binding = _binding_of(first.engine, first.entry.serialise, owned)

    def get(self) -> _Binding:
        if self._binding is not None:
            self._binding.check()
        return self.first

    def peek(self) -> _Binding:
        """The engine (not bound to the running loop by this)."""
        return self.first

    async def aclose(self) -> None:
        if self._owned:
            await _dispose(self.first)


async def _dispose(binding: _Binding) -> None:
    await binding.async_engine.dispose()


def _make_engine(url_text: str, engine_kwargs: dict[str, Any],
                 sqlite_synchronous: Optional[str],
                 synchronous_commit: Optional[str]) -> AsyncEngine:
    """A new ``AsyncEngine`` of a store's URL and options."""
    from sqlalchemy.ext.asyncio import create_async_engine

    made, _, _ = create_engine(url_text, engine_kwargs, sqlite_synchronous,
                               synchronous_commit, factory=create_async_engine)
    engine: AsyncEngine = made
    return engine


def _no_engine() -> AsyncEngine:  # pragma: no cover - never called
    raise AssertionError("the store was given its engine")


def _per_loop(name: str) -> Any:
    """A property of :class:`_BridgedSQLWrapper` read from the running loop's engine
    (its value as set by the wrapper's constructor until the store binds engines)."""
    initial = "_initial" + name
    attribute = name.lstrip("_")

    def get(self: _BridgedSQLWrapper) -> Any:
        engines = self._engines
        if engines is None:
            return self.__dict__[initial]
        return getattr(engines.get(), attribute)

    def set(self: _BridgedSQLWrapper, value: Any) -> None:
        self.__dict__[initial] = value

    return property(get, set)


def async_url(db_uri: str) -> str:
    """The URL with the asyncio driver of its dialect: ``sqlite://`` and
    ``sqlite+pysqlite://`` become ``sqlite+aiosqlite://``; ``postgresql://`` (and
    ``postgres://``) ``postgresql+psycopg://`` (psycopg 3, async face) or, without
    psycopg, ``postgresql+asyncpg://``. Other URLs are kept."""
    scheme, sep, rest = db_uri.partition("://")
    if not sep:
        return db_uri
    lowered = scheme.lower()
    if lowered in ("sqlite", "sqlite+pysqlite"):
        return "sqlite+aiosqlite://" + rest
    if lowered in ("postgresql", "postgres"):
        if (importlib.util.find_spec("psycopg") is None
                and importlib.util.find_spec("asyncpg") is not None):
            return "postgresql+asyncpg://" + rest
        return "postgresql+psycopg://" + rest
    return db_uri


#: The asyncio drivers whose request-path statements skip SQLAlchemy Core's execution
#: (statement cache, execution context, result object), as the synchronous store does
#: on pysqlite and psycopg: they run on the pooled connection's DBAPI cursor (SQLAlchemy's
#: adaptation of the driver), or on the driver connection itself where
#: :data:`_NATIVE_STATEMENTS` has a coroutine for it.
_ASYNC_DIRECT_DRIVERS = frozenset({("sqlite", "aiosqlite"), ("postgresql", "psycopg"),
                                   ("postgresql", "asyncpg")})


async def _aiosqlite_statement(connection: Any, sql: str, parameters: Any, result: str) -> Any:
    """One statement on an ``aiosqlite.Connection``, executed and fetched by its thread in
    one hand-over (SQLAlchemy's adapted cursor makes four: cursor, execute, fetch, close);
    the row count is the connection's change count across the statement (it is checked
    out for this statement alone: nothing else runs on it meanwhile)."""
    import sqlite3

    try:
        before = connection.total_changes
        rows = await connection.execute_fetchall(sql, parameters)
        if result == "rowcount":
            return connection.total_changes - before
    except ValueError as error:  # aiosqlite's "no active connection" (closed)
        raise sqlite3.OperationalError(str(error)) from error
    if not rows:
        return None
    row = rows[0]
    return row[0] if result == "scalar" else tuple(row)


async def _psycopg_statement(connection: Any, sql: str, parameters: Any, result: str) -> Any:
    """One statement on a ``psycopg.AsyncConnection``: executed, its row fetched and its
    cursor closed in one coroutine (awaited once, as SQLAlchemy's adapted cursor does,
    without the adapted cursor and its row buffer)."""
    cursor = connection.cursor()
    try:
        await cursor.execute(sql, parameters)
        if result == "rowcount":
            return cursor.rowcount
        row = await cursor.fetchone()
    finally:
        await cursor.close()
    if row is None:
        return None
    return row[0] if result == "scalar" else tuple(row)


#: Per (dialect, driver), the coroutine running one statement on the driver connection
#: (whose errors are the DBAPI errors SQLAlchemy's adaptation raises: sqlite3's, psycopg's).
_NATIVE_STATEMENTS: dict[tuple[str, str], Callable[[Any, str, Any, str], Any]] = {
    ("sqlite", "aiosqlite"): _aiosqlite_statement,
    ("postgresql", "psycopg"): _psycopg_statement}


class _BridgedSQLWrapper(SQLWrapper):
    """:class:`~pyop.storage.SQLWrapper` on the synchronous face of an ``AsyncEngine``,
    run inside :func:`~pyop.aio._bridge.run_sync` only: its one-time table creation and
    (in-memory SQLite) its statements wait for the engine's :class:`asyncio.Lock`
    (awaited on the event loop) instead of holding a thread lock across an await. Its
    engine is the running loop's (see the module docstring)."""

    #: the engines of the store, set once constructed
    _engines: Optional[Union[_EnginePerLoop, _OneEngine]] = None
    _engine = _per_loop("_engine")
    _runner = _per_loop("_runner")
    _entry = _per_loop("_entry")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        driver = (self._dialect_name, self._engine.dialect.driver)
        self._direct = self._entry.autocommit and driver in _ASYNC_DIRECT_DRIVERS
        self._native = _NATIVE_STATEMENTS.get(driver)
        #: the same for every engine of the store (they share the URL)
        self._serialise: bool = self._entry.serialise

    def _run_direct(self, connection: Any, sql: str, parameters: Any, result: str) -> Any:
        if self._native is None:
            return super()._run_direct(connection, sql, parameters, result)
        return await_only(self._native(connection.driver_connection, sql, parameters, result))

    def _create_table(self) -> None:
        try:
            await_only(_create_table_once(self))
        except _DRIVER_ERRORS as error:
            raise wrap_error("create table", self._namespace, error) from error

    def _execute(self, operation: str, stmt: Any, params: dict[str, Any],
                 result: str = "rowcount",
                 passthrough: tuple[type[BaseException], ...] = ()) -> Any:
        try:
            if not self._serialise:
                return super()._execute(operation, stmt, params, result, passthrough)
            lock = _engine_lock(_statement_locks, self._engine)
            await_only(lock.acquire())
            try:
                return super()._execute(operation, stmt, params, result, passthrough)
            finally:
                lock.release()
        except _DRIVER_ERRORS as error:
            raise wrap_error(operation, self._namespace, error) from error

    def _base_create_table(self) -> None:
        SQLWrapper._create_table(self)


async def _create_table_once(store: _BridgedSQLWrapper) -> None:
    """The synchronous ``CREATE TABLE`` of ``store``, once per engine and table, under the
    engine's :class:`asyncio.Lock` (no other greenlet of the loop runs it meanwhile)."""
    if store._table_name in store._entry.tables_ready:
        return
    async with _engine_lock(_table_locks, store._engine):
        if store._table_name not in store._entry.tables_ready:
            await run_sync(store._base_create_table)


class AsyncSQLStorage(GreenletStorage):
    """:class:`~pyop.storage.SQLWrapper` as an :class:`~pyop.aio.storage.AsyncStorageBase`,
    on SQLAlchemy's asyncio extension (``create_async_engine``).

    Same arguments as :class:`~pyop.storage.SQLWrapper` (``sqlite_synchronous``,
    ``postgresql_synchronous_commit``, ``postgresql_unlogged``,
    ``postgresql_asynchronous_set``, ``purge_interval``, ``clock``, engine keyword
    arguments), same table and records. The URL is given the asyncio driver of its
    dialect (:func:`async_url`).

    Each store made from a URL has engines (connection pools) of its own, one per event
    loop that uses it (made there on first use, disposed when that loop shuts down or by
    :meth:`close`); in-memory SQLite (``sqlite://``) is one database per store, with one
    engine serving one loop at a time. To share one pool between the stores
    of a provider (and let ``compare_and_set_then_set`` of two PostgreSQL stores be one
    statement), create an ``AsyncEngine`` and pass it as ``engine=`` to each (never
    disposed here; create it with ``isolation_level="AUTOCOMMIT"`` to save a statement
    per checkout).

    :param engine: an existing ``sqlalchemy.ext.asyncio.AsyncEngine`` (``db_uri`` is then
        not used; the stores sharing it share its pool). It serves the loop that first
        uses it; once that loop is closed, its pool is replaced for the next loop; used on
        another loop while the first is open it raises :class:`~pyop.aio.EventLoopMismatch`
        (unless its pool is a ``NullPool``).
    :raises ImportError: SQLAlchemy or the URL's asyncio driver is not installed (the
        message names the extra: ``pyop[async-sql]``, ``pyop[async-postgresql]``...).
    :raises ValueError: the URL's driver is not an asyncio one (``postgresql+psycopg2``),
        or the errors of :class:`~pyop.storage.SQLWrapper`.
    """

    sync: SQLWrapper

    def __init__(self, db_uri: str, db_name: Optional[str] = None,
                 collection: Optional[str] = None, ttl: Optional[float] = None, *,
                 clock: Clock = time.time, engine: Optional[AsyncEngine] = None,
                 purge_interval: float = 60, sqlite_synchronous: Optional[str] = None,
                 postgresql_synchronous_commit: Optional[str] = None,
                 postgresql_unlogged: bool = False,
                 postgresql_asynchronous_set: bool = False,
                 **engine_kwargs: Any) -> None:
        sa = import_sqlalchemy()
        from sqlalchemy.ext.asyncio import AsyncEngine

        owned: Optional[AsyncEngine] = None
        make: Callable[[], AsyncEngine] = _no_engine
        if engine is None:
            if not collection:
                raise ValueError("AsyncSQLStorage needs a collection name")
            url_text = async_url(db_uri)
            sqlite_synchronous = check_choice("sqlite_synchronous", sqlite_synchronous,
                                               SQLITE_SYNCHRONOUS, upper=True)
            synchronous_commit = check_choice(
                "postgresql_synchronous_commit", postgresql_synchronous_commit,
                POSTGRESQL_SYNCHRONOUS_COMMIT, upper=False)
            if ((postgresql_unlogged is True or postgresql_asynchronous_set is True)
                    and sa.engine.make_url(url_text).get_backend_name() != "postgresql"):
                raise ValueError(postgresql_only(postgresql_unlogged is True))
            url = sa.engine.make_url(url_text)
            if not url.get_dialect().get_async_dialect_cls(url).is_async:
                raise ValueError(
                    f"{url.drivername} is not an asyncio driver: use sqlite+aiosqlite, "
                    "postgresql+psycopg, postgresql+asyncpg or another asyncio driver of "
                    "SQLAlchemy")
            make = functools.partial(_make_engine, url_text, dict(engine_kwargs),
                                     sqlite_synchronous, synchronous_commit)

            try:
                owned = make()
            except ImportError as error:
                raise ImportError(
                    f"the asyncio driver of {url.drivername} is not installed ({error}): "
                    "pip install pyop[async-sql] (SQLite), pyop[async-postgresql] "
                    "(psycopg) or pyop[async-asyncpg]") from error
            engine = owned
            sqlite_synchronous = synchronous_commit = None  # set up on the engine already
        elif engine_kwargs:
            raise TypeError(f"unexpected arguments with engine=: {sorted(engine_kwargs)}")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("engine must be a sqlalchemy.ext.asyncio.AsyncEngine")
        sync = _BridgedSQLWrapper(
            db_uri, db_name, collection, ttl, clock=clock, engine=engine.sync_engine,
            purge_interval=purge_interval, sqlite_synchronous=sqlite_synchronous,
            postgresql_synchronous_commit=postgresql_synchronous_commit,
            postgresql_unlogged=postgresql_unlogged,
            postgresql_asynchronous_set=postgresql_asynchronous_set)
        super().__init__(sync)
        first = _Binding(engine, sync._entry)
        self._engines: Union[_EnginePerLoop, _OneEngine] = (
            _EnginePerLoop(first, make) if owned is not None and not first.entry.serialise
            else _OneEngine(first, owned=owned is not None))
        sync._engines = self._engines
        for name in ("_engine", "_runner", "_entry"):  # the engines hold them from now on
            del sync.__dict__["_initial" + name]

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    @property
    def engine(self) -> AsyncEngine:
        """The ``AsyncEngine`` of the running event loop (made there on first use); outside
        a loop, the one made by the constructor until a loop uses it, or the one given as
        ``engine=``.

        :raises MissingAsyncContext: outside a loop, the constructor's engine taken.
        """
        engine: AsyncEngine = self._engines.peek().async_engine
        return engine

    async def close(self) -> None:
        """Close the store; the engines created by it are disposed (their connections
        closed): the running loop's now, those of other loops still open on their loops
        (scheduled there). A store used again afterwards makes a new engine on its loop."""
        await run_sync(self.sync.close)
        try:
            await self._engines.aclose()
        except _DRIVER_ERRORS + (self.sync._sa.exc.SQLAlchemyError,) as error:
            raise wrap_error("close", self.sync._namespace, error) from error


def _create(db_uri: str, collection: Optional[str], db_name: Optional[str],
            ttl: Optional[float], **kwargs: Any) -> AsyncSQLStorage:
    """``AsyncStorageBase.from_uri`` for SQLAlchemy URLs."""
    return AsyncSQLStorage(db_uri, db_name, collection, ttl, **kwargs)

