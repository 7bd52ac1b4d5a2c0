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
under an :class:`asyncio.Lock` of the engine instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
import weakref
from typing import TYPE_CHECKING, Any, Optional

from ...storage._sql_engine import (
    POSTGRESQL_SYNCHRONOUS_COMMIT,
    SQLITE_SYNCHRONOUS,
    check_choice,
    create_engine,
    postgresql_only,
)
from ...storage._sql_statements import import_sqlalchemy
from ...storage.base import Clock, wrap_error
from ...storage.sql import SQLWrapper
from .._bridge import await_only, run_sync
from .base import GreenletStorage

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AsyncSQLStorage"]

#: Errors of the asyncio drivers that SQLAlchemy lets through unwrapped (a refused or
#: timed out connection of asyncpg): wrapped as :class:`~pyop.exceptions.StorageError`.
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)

#: Per engine, the asyncio locks of its one-time table creation and of every statement of
#: an in-memory SQLite engine (one connection shared by all its stores).
_table_locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()
_statement_locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _engine_lock(locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock],
                 engine: Engine) -> asyncio.Lock:
    lock = locks.get(engine)
    if lock is None:
        lock = locks[engine] = asyncio.Lock()
    return lock


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


class _BridgedSQLWrapper(SQLWrapper):
    """:class:`~pyop.storage.SQLWrapper` on the synchronous face of an ``AsyncEngine``,
    run inside :func:`~pyop.aio._bridge.run_sync` only: its one-time table creation and
    (in-memory SQLite) its statements wait for the engine's :class:`asyncio.Lock`
    (awaited on the event loop) instead of holding a thread lock across an await."""

    def _create_table(self) -> None:
        try:
            await_only(_create_table_once(self))
        except _DRIVER_ERRORS as error:
            raise wrap_error("create table", self._namespace, error) from error

    def _execute(self, operation: str, stmt: Any, params: dict[str, Any],
                 result: str = "rowcount",
                 passthrough: tuple[type[BaseException], ...] = ()) -> Any:
        try:
            if not self._entry.serialise:
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

    Each store made from a URL has an engine (a connection pool) of its own, bound to
    the event loop that first uses it and disposed by :meth:`close`; in-memory SQLite
    (``sqlite://``) is thus one database per store. To share one pool between the stores
    of a provider (and let ``compare_and_set_then_set`` of two PostgreSQL stores be one
    statement), create an ``AsyncEngine`` and pass it as ``engine=`` to each (never
    disposed here; create it with ``isolation_level="AUTOCOMMIT"`` to save a statement
    per checkout).

    :param engine: an existing ``sqlalchemy.ext.asyncio.AsyncEngine`` (``db_uri`` is then
        not used; the stores sharing it share its pool).
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
        from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

        owned: Optional[AsyncEngine] = None
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
            try:
                owned, _, _ = create_engine(url_text, engine_kwargs, sqlite_synchronous,
                                            synchronous_commit, factory=create_async_engine)
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
        super().__init__(_BridgedSQLWrapper(
            db_uri, db_name, collection, ttl, clock=clock, engine=engine.sync_engine,
            purge_interval=purge_interval, sqlite_synchronous=sqlite_synchronous,
            postgresql_synchronous_commit=postgresql_synchronous_commit,
            postgresql_unlogged=postgresql_unlogged,
            postgresql_asynchronous_set=postgresql_asynchronous_set))
        self.engine: AsyncEngine = engine
        self._owned = owned

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    async def close(self) -> None:
        """Close the store; an engine created by it is disposed (its connections closed)."""
        await run_sync(self.sync.close)
        owned, self._owned = self._owned, None
        if owned is not None:
            try:
                await owned.dispose()
            except _DRIVER_ERRORS + (self.sync._sa.exc.SQLAlchemyError,) as error:
                raise wrap_error("close", self.sync._namespace, error) from error


def _create(db_uri: str, collection: Optional[str], db_name: Optional[str],
            ttl: Optional[float], **kwargs: Any) -> AsyncSQLStorage:
    """``AsyncStorageBase.from_uri`` for SQLAlchemy URLs."""
    return AsyncSQLStorage(db_uri, db_name, collection, ttl, **kwargs)

