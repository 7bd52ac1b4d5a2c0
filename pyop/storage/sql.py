"""SQL backend (SQLAlchemy 2.x Core; SQLite, PostgreSQL, MySQL/MariaDB, ...).

All collections share one table, ``pyop_storage``::

    collection  VARCHAR(255)  -- "{db_name}:{collection}" or "{collection}"
    key         VARCHAR(512)  -- primary key (collection, key)
    value       TEXT          -- canonical JSON
    expires_at  DOUBLE NULL   -- absolute UNIX time, indexed

created on first use (``metadata.create_all(checkfirst=True)``).

On PostgreSQL a wrapper created with ``postgresql_unlogged=True`` keeps its
rows in a second table of the same shape, ``pyop_storage_unlogged``, created
on first use with ``CREATE UNLOGGED TABLE`` (PostgreSQL documentation, "CREATE
TABLE", ``UNLOGGED``): writes to it generate no WAL, so the commit of a
statement that only touches it does not wait for a WAL flush; after a server
crash (not a clean shutdown) the table is truncated, and it is not replicated
to streaming standbys (empty after a failover). Meant for authorization codes
and access tokens, where a lost record fails safe (an unknown code or token);
never for refresh tokens, subject identifiers, clients or a client-assertion
replay cache. See :class:`SQLWrapper` and ``docs/storage.rst``.

On PostgreSQL a wrapper created with ``postgresql_asynchronous_set=True`` runs
the upsert of ``set`` as ``WITH async_commit AS (SELECT
set_config('synchronous_commit', 'off', true)) INSERT ... SELECT ... FROM
async_commit ON CONFLICT ...``: the setting is local to the statement's own
transaction (autocommit), so that commit does not wait for the WAL flush
(PostgreSQL documentation, "Asynchronous Commit") and the session keeps its
setting. Its other writes (``compare_and_set``, ``compare_and_set_then_set``,
``add``, ``consume``, ``delete``) commit as before, synchronously with the
default ``synchronous_commit=on``. Meant for authorization codes: a code whose
issue is lost in a crash is unknown (fails safe), and marking it used stays
durable (a synchronous commit also flushes all the WAL written before it).

Every primitive is one statement (see :mod:`pyop.storage._sql_statements` for the
statements and their atomicity), run by the engine helpers of
:mod:`pyop.storage._sql_engine`.

Expired rows are deleted by :meth:`SQLWrapper.purge_expired` and by a purge
run on a write at most every ``purge_interval`` seconds of clock time.

The atomic primitives carry the single use of authorization codes and rotated refresh
tokens (RFC 6749 4.1.2, RFC 9700 4.14.2) and of client assertions (RFC 7523 3).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from ..exceptions import StorageError
from ._sql_engine import (
    DIRECT_DRIVERS,
    POSTGRESQL_SYNCHRONOUS_COMMIT,
    SQLITE_SYNCHRONOUS,
    SQLITE_SYNCHRONOUS_DEFAULT,
    EngineEntry,
    StatementRunner,
    check_choice,
    create_engine,
    engines,
    engines_lock,
    injected_engines,
    is_memory_sqlite,
    normalise_url,
    postgresql_only,
)
from ._sql_statements import (
    TABLE_NAME,
    UNLOGGED_TABLE_NAME,
    import_sqlalchemy,
    statements_for,
    storage_table,
)
from .base import (
    Clock,
    StorageBase,
    canonical_json,
    check_expires_at,
    check_key,
    check_ttl,
    wrap_error,
)
from .schemes import register_backend

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Engine

__all__ = ["SQLWrapper", "TABLE_NAME", "UNLOGGED_TABLE_NAME"]

logger = logging.getLogger(__name__)

#: Attempts of PostgreSQL's ``add`` when a concurrent writer changed the row under it.
_ADD_ATTEMPTS = 10


class SQLWrapper(StatementRunner, StorageBase):
    """Store records in a SQL database through SQLAlchemy Core.

    URIs: ``sqlite:///path/to/file.db``, ``sqlite://`` (in-memory, shared by
    the threads of the process), ``postgresql://...`` (psycopg 3 or
    psycopg2), ``postgresql+psycopg://...``, ``mysql+pymysql://...`` and
    any other SQLAlchemy URL. One engine is shared, per URL and options, by
    all the wrappers of the process; it is created with
    ``isolation_level="AUTOCOMMIT"`` (every primitive is one statement).

    :param db_uri: SQLAlchemy database URL.
    :param db_name: optional namespace, prefixed to the collection name
        (the database itself is chosen by the URL).
    :param collection: the collection (rows of the shared table; the same name in
        ``pyop_storage`` and ``pyop_storage_unlogged`` is two distinct collections).
    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: current UNIX time; decides expiry.
    :param engine: an existing SQLAlchemy ``Engine`` to use (not disposed by
        :meth:`close`). Its connections are switched to autocommit for each
        statement unless it was created with ``isolation_level="AUTOCOMMIT"``.
    :param purge_interval: seconds of clock time between two purges on writes.
    :param sqlite_synchronous: ``PRAGMA synchronous`` of SQLite files (WAL mode):
        ``"NORMAL"`` (default) does not wait for the disk on each commit; an
        application or database crash loses nothing, an operating system crash
        or power loss can roll back the last commits (never corrupts the file).
        ``"FULL"`` (or ``"EXTRA"``) makes every commit durable across a power loss
        at the cost of one ``fsync`` per write. See ``docs/storage.rst``.
    :param postgresql_synchronous_commit: opt-in ``synchronous_commit`` for the
        sessions of this engine (``"off"``, ``"local"``...). ``None`` (default)
        keeps the server's setting. ``"off"`` stops waiting for the WAL flush:
        a PostgreSQL crash can then lose the last acknowledged writes, so a
        redeemed code or rotated refresh token can become usable again. Not
        for stores whose single use matters; see ``docs/storage.rst``.
    :param postgresql_unlogged: keep this wrapper's rows in the PostgreSQL
        ``UNLOGGED`` table ``pyop_storage_unlogged`` (:data:`UNLOGGED_TABLE_NAME`)
        instead of ``pyop_storage``; default ``False``. PostgreSQL documentation,
        "CREATE TABLE", ``UNLOGGED``: writes to an unlogged table generate no WAL,
        so a commit that only touches it does not wait for a WAL flush; the table
        is truncated after a crash of the server (not after a clean shutdown) and
        is not replicated to streaming standbys, so it is empty after a failover.
        For authorization codes and access tokens this fails safe: a lost code or
        token is unknown (``invalid_grant``, ``invalid_token``: the user signs in
        again), and a code lost with its "used" mark cannot be replayed either;
        what is lost is the revocation of the tokens of a code replayed after the
        crash but redeemed before it (RFC 6749 4.1.2). Unlike
        ``postgresql_synchronous_commit="off"``, a crash never brings a redeemed
        code back: the rows disappear entirely. Not for refresh tokens, subject
        identifiers, clients or a client-assertion replay cache (a ``jti`` lost
        would be accepted again within the assertion's lifetime). Works with an
        injected ``engine`` too (it only chooses the table).
    :param postgresql_asynchronous_set: make :meth:`set` (and only it) commit
        asynchronously on PostgreSQL; default ``False``. The upsert sets
        ``synchronous_commit`` to ``off`` for its own transaction
        (``set_config(..., true)`` in the same statement), so its commit does not
        wait for the WAL flush; the session's setting is unchanged afterwards.
        PostgreSQL documentation, "Asynchronous Commit": the row is visible to
        other sessions at once and durable once the WAL writer flushes it (within
        3 x ``wal_writer_delay``); a crash of the server can lose the sets of that
        last moment, never a conditional write: ``compare_and_set``,
        ``compare_and_set_then_set``, ``add``, ``consume`` and ``delete`` still
        commit synchronously (with the default ``synchronous_commit=on``), and a
        synchronous commit flushes all the WAL written before it. For
        authorization codes this fails safe: a code whose issue is lost is unknown
        (``invalid_grant``), and a code marked used stays used. Subject identifiers
        are written with :meth:`add`, so unaffected; not for refresh tokens (a lost
        one ends the client's offline access) or clients. Unlike
        ``postgresql_synchronous_commit="off"``, a crash never brings a redeemed
        code back; unlike ``postgresql_unlogged``, the table stays logged and
        replicated. Works with an injected ``engine`` and together with the two
        other options (with ``postgresql_synchronous_commit="off"`` it changes nothing).
    :param engine_kwargs: extra arguments for ``sqlalchemy.create_engine``.
    :raises ImportError: SQLAlchemy is not installed (``pip install pyop[sql]``).
    :raises ValueError: no collection given; an option the database does not have
        (``postgresql_unlogged=True`` or ``postgresql_asynchronous_set=True`` on
        anything but PostgreSQL).
    :raises TypeError: an option of the wrong type (``postgresql_unlogged`` or
        ``postgresql_asynchronous_set`` not a bool).
    """

    def __init__(self, db_uri: str, db_name: Optional[str] = None,
                 collection: Optional[str] = None, ttl: Optional[float] = None, *,
                 clock: Clock = time.time, engine: Optional[Engine] = None,
                 purge_interval: float = 60, sqlite_synchronous: Optional[str] = None,
                 postgresql_synchronous_commit: Optional[str] = None,
                 postgresql_unlogged: bool = False,
                 postgresql_asynchronous_set: bool = False,
                 **engine_kwargs: Any) -> None:
        sa = import_sqlalchemy()
        if not collection:
            raise ValueError("SQLWrapper needs a collection name")
        if not isinstance(postgresql_unlogged, bool):
            raise TypeError("postgresql_unlogged must be a bool")
        if not isinstance(postgresql_asynchronous_set, bool):
            raise TypeError("postgresql_asynchronous_set must be a bool")
        sqlite_synchronous = check_choice("sqlite_synchronous", sqlite_synchronous,
                                           SQLITE_SYNCHRONOUS, upper=True)
        synchronous_commit = check_choice(
            "postgresql_synchronous_commit", postgresql_synchronous_commit,
            POSTGRESQL_SYNCHRONOUS_COMMIT, upper=False)
        self._sa = sa
        self._errors: tuple[type[BaseException], ...] = (sa.exc.SQLAlchemyError,)
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self.collection = collection
        self._namespace = f"{db_name}:{collection}" if db_name else collection
        if len(self._namespace) > 255:
            raise ValueError("db_name and collection must be at most 255 characters together")
        self._table = storage_table(postgresql_unlogged)
        self._table_name: str = self._table.name
        self._cache_key: Optional[str] = None
        if engine is None:
            url_text = normalise_url(db_uri)
            if ((postgresql_unlogged or postgresql_asynchronous_set)
                    and sa.engine.make_url(url_text).get_backend_name() != "postgresql"):
                raise ValueError(postgresql_only(postgresql_unlogged))
            self._cache_key = "|".join((
                url_text, repr(sorted(engine_kwargs.items())),
                sqlite_synchronous or SQLITE_SYNCHRONOUS_DEFAULT, synchronous_commit or ""))
            with engines_lock:
                entry = engines.get(self._cache_key)
                if entry is None:
                    created, serialise, autocommit = create_engine(
                        url_text, engine_kwargs, sqlite_synchronous, synchronous_commit)
                    entry = engines[self._cache_key] = EngineEntry(
                        created, serialise, autocommit)
                entry.refs += 1
        else:
            if sqlite_synchronous is not None or synchronous_commit is not None:
                raise ValueError("sqlite_synchronous and postgresql_synchronous_commit apply "
                                 "to engines created by pyop; configure your own engine")
            if ((postgresql_unlogged or postgresql_asynchronous_set)
                    and engine.dialect.name != "postgresql"):
                raise ValueError(postgresql_only(postgresql_unlogged))
            with engines_lock:
                entry = injected_engines.get(engine)
                if entry is None:
                    autocommit = "AUTOCOMMIT" in (
                        engine.get_execution_options().get("isolation_level"),
                        getattr(engine.dialect, "_on_connect_isolation_level", None))
                    entry = injected_engines[engine] = EngineEntry(
                        None, is_memory_sqlite(engine.url), autocommit)
        self._entry = entry
        if entry.engine is not None:
            engine = entry.engine
        if engine is None:  # pragma: no cover - one of them is always set
            raise AssertionError("no engine")
        self._engine: Engine = engine
        #: What runs the statements: the engine itself when its connections are in
        #: autocommit mode, else a view of it that switches them per checkout.
        self._runner: Engine = (engine if entry.autocommit
                                else engine.execution_options(isolation_level="AUTOCOMMIT"))
        dialect = self._engine.dialect
        self._dialect_name: str = dialect.name
        self._delete_returning = bool(getattr(dialect, "delete_returning", False))
        self._insert_returning = bool(getattr(dialect, "insert_returning", False))
        self._upsert = self._dialect_name in ("postgresql", "sqlite")
        self._sql = statements_for(self._dialect_name, postgresql_unlogged)
        #: The upsert of :meth:`set` (PostgreSQL, SQLite): with
        #: ``postgresql_asynchronous_set`` the one that commits asynchronously.
        self._set_upsert: Any = (self._sql.upsert_asynchronous_postgresql
                                 if postgresql_asynchronous_set else self._sql.upsert)
        #: Request-path statements go straight to the DBAPI cursor (see :meth:`_execute`).
        self._direct = entry.autocommit and (self._dialect_name, dialect.driver) in DIRECT_DRIVERS
        self._dbapi_error: type[BaseException] = getattr(
            getattr(dialect, "loaded_dbapi", None), "Error", sa.exc.SQLAlchemyError)
        self._purge_interval = purge_interval
        self._next_purge = clock() + purge_interval
        self._closed = False
        #: Rows fetched per query by :meth:`keys`.
        self.keys_page_size = 1000

    def __repr__(self) -> str:
        return (f"SQLWrapper(dialect={self._dialect_name!r}, collection={self._namespace!r}, "
                f"ttl={self.ttl!r})")

    def _decode(self, raw: Any, operation: str) -> Any:
        try:
            return json.loads(raw)
        except (TypeError, ValueError) as error:
            raise wrap_error(operation + " (corrupt record)", self._namespace, error) from error

    def _maybe_purge(self, now: float) -> None:
        """Amortised purge after a write; its failure does not fail the write."""
        if now >= self._next_purge:
            self._next_purge = now + self._purge_interval
            try:
                removed = self.purge_expired()
            except StorageError as error:
                logger.warning("SQLWrapper: periodic purge of %r failed: %s",
                               self._namespace, error)
                return
            if removed:
                logger.debug("SQLWrapper: purged %d expired rows of %r", removed, self._namespace)

    # -- primitives ---------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._execute("get", self._sql.get, {
            "ns": self._namespace, "k": check_key(key), "now": self._clock()}, "scalar")
        return default if raw is None else self._decode(raw, "get")

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        params = {"ns": self._namespace, "k": key, "v": raw,
                  "exp": self._resolve_expiry(expires_at, now)}
        if self._upsert:
            self._execute("set", self._set_upsert, params)
        elif self._sql.upsert_mysql is not None:
            self._execute("set", self._sql.upsert_mysql, params)
        else:
            self._generic_set(params)
        self._maybe_purge(now)

    def _generic_set(self, params: dict[str, Any]) -> None:
        """``UPDATE``; if no row, ``INSERT``; if inserted concurrently, ``UPDATE`` again.

        Each statement autocommits: the last writer wins, as with an upsert.
        """
        sa = self._sa
        if self._execute("set", self._sql.update_row, params):
            return
        try:
            self._execute("set", self._sql.insert, params, passthrough=(sa.exc.IntegrityError,))
        except sa.exc.IntegrityError:
            self._execute("set", self._sql.update_row, params)  # inserted concurrently

    def delete(self, key: str) -> bool:
        return bool(self._execute("delete", self._sql.delete, {
            "ns": self._namespace, "k": check_key(key), "now": self._clock()}))

    def consume(self, key: str) -> Any:
        params = {"ns": self._namespace, "k": check_key(key), "now": self._clock()}
        if self._delete_returning:
            raw = self._execute("consume", self._sql.consume, params, "scalar")
            return None if raw is None else self._decode(raw, "consume")
        return self._consume_without_returning(params)

    def _consume_without_returning(self, params: dict[str, Any]) -> Any:
        """SELECT, then DELETE only that value: the row count says who won."""
        raw = self._execute("consume", self._sql.get, params, "scalar")
        if raw is None:
            return None
        deleted = self._execute("consume", self._sql.consume_if_value,
                                dict(params, expected=raw))
        return self._decode(raw, "consume") if deleted == 1 else None

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        check_key(key)
        params: dict[str, Any] = {"ns": self._namespace, "k": key,
                                  "expected": canonical_json(expected),
                                  "v": canonical_json(new)}
        stmt = self._sql.cas
        if expires_at is not None:
            params["exp"] = check_expires_at(expires_at)
            stmt = self._sql.cas_expiry
        now = params["now"] = self._clock()
        replaced = bool(self._execute("compare_and_set", stmt, params) == 1)
        self._maybe_purge(now)
        return replaced

    def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                 expires_at: Optional[float], other: StorageBase,
                                 other_key: str, other_value: Any,
                                 other_expires_at: Optional[float] = None) -> bool:
        """One statement (one round trip, one transaction) on PostgreSQL when ``other``
        is a store on the same engine, in the same table or not (logged and unlogged);
        else :meth:`StorageBase.compare_and_set_then_set`."""
        statements = self._sql.cas_then_set_postgresql
        if (not statements or not self._upsert or expires_at is None
                or not isinstance(other, SQLWrapper) or other._engine is not self._engine
                or (other._table_name == self._table_name
                    and other._namespace == self._namespace and other_key == key)):
            return super().compare_and_set_then_set(key, expected, new, expires_at, other,
                                                    other_key, other_value, other_expires_at)
        stmt = statements[other._table_name]
        check_key(key)
        check_key(other_key)
        if other._table_name != self._table_name:
            other._ensure_table("compare_and_set")
        now = self._clock()
        params: dict[str, Any] = {
            "ns": self._namespace, "k": key, "expected": canonical_json(expected),
            "v": canonical_json(new), "exp": check_expires_at(expires_at), "now": now,
            "ns2": other._namespace, "k2": other_key, "v2": canonical_json(other_value),
            "exp2": other._resolve_expiry(other_expires_at, now)}
        replaced = self._execute("compare_and_set", stmt, params, "scalar") is not None
        self._maybe_purge(now)
        other._maybe_purge(now)
        return replaced

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        params = {"ns": self._namespace, "k": key, "v": raw,
                  "exp": self._resolve_expiry(expires_at, now), "now": now}
        if self._upsert and self._sql.add_postgresql is not None:
            stored = self._add_postgresql(params)
        elif self._upsert:
            if self._insert_returning:
                stored = self._execute("add", self._sql.add_upsert_returning, params,
                                       "scalar") is not None
            else:  # pragma: no cover - SQLite < 3.35
                stored = self._execute("add", self._sql.add_upsert.execution_options(
                    preserve_rowcount=True), params) == 1
        else:
            stored = self._generic_add(params)
        self._maybe_purge(now)
        return stored

    def _add_postgresql(self, params: dict[str, Any]) -> bool:
        """One statement that writes only when it stores; it reports whether it stored
        and whether its snapshot saw a live row. Neither means a concurrent writer
        changed the row under it (took over the expired row, or deleted it): the
        statement runs again with a new snapshot, which sees that writer's result."""
        for _ in range(_ADD_ATTEMPTS):
            stored, live = self._execute("add", self._sql.add_postgresql, params, "row")
            if stored:
                return True
            if live:
                return False
        logger.warning("SQLWrapper: add gave up after %d concurrent changes on %r",
                       _ADD_ATTEMPTS, self._namespace)
        return False

    def _generic_add(self, params: dict[str, Any]) -> bool:
        """INSERT; on an integrity error take over the row only if it has expired."""
        sa = self._sa
        try:
            self._execute("add", self._sql.insert, params, passthrough=(sa.exc.IntegrityError,))
            return True
        except sa.exc.IntegrityError:
            pass
        return bool(self._execute("add", self._sql.take_over_expired, params) == 1)

    def purge_expired(self) -> int:
        """``DELETE`` this collection's rows whose ``expires_at`` has passed."""
        removed = self._execute("purge_expired", self._sql.purge,
                                {"ns": self._namespace, "now": self._clock()})
        return max(0, int(removed))

    def close(self) -> None:
        """Release this wrapper's share of the engine; the last one disposes it."""
        if self._closed:
            return
        self._closed = True
        if self._cache_key is None:
            return
        with engines_lock:
            entry = engines.get(self._cache_key)
            if entry is None or entry is not self._entry:
                return
            entry.refs -= 1
            if entry.refs > 0:
                return
            del engines[self._cache_key]
        self._engine.dispose()

    def keys(self) -> Iterator[str]:
        """Keyset-paginated ``SELECT key ... ORDER BY key`` (pages of 1000)."""
        last: Optional[str] = None
        page_size = self.keys_page_size
        while True:
            params: dict[str, Any] = {"ns": self._namespace, "now": self._clock(),
                                      "lim": page_size}
            stmt = self._sql.keys_first
            if last is not None:
                params["after"] = last
                stmt = self._sql.keys_after
            page: list[str] = self._execute("keys", stmt, params, "scalars")
            yield from page
            if len(page) < page_size:
                return
            last = page[-1]


#: URI schemes of the SQL backend (the dialect part of a SQLAlchemy URL).
_SQL_DIALECTS = frozenset(
    {"sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql", "cockroachdb"}
)


def _is_sqlalchemy_dialect(db_uri: str) -> bool:
    """Whether SQLAlchemy (if installed) knows the URI's dialect."""
    try:
        from sqlalchemy.engine import make_url
    except ImportError:
        return False
    try:
        make_url(db_uri).get_dialect()
    except Exception:
        return False
    return True


def _accepts(scheme: str, db_uri: str) -> bool:
    """``dialect+driver`` URLs of the known dialects, and any dialect SQLAlchemy knows."""
    return scheme.split("+", 1)[0] in _SQL_DIALECTS or _is_sqlalchemy_dialect(db_uri)


def _create(db_uri: str, collection: str, db_name: Optional[str], ttl: Optional[int],
            **kwargs: Any) -> SQLWrapper:
    """``StorageBase.from_uri`` for SQLAlchemy URLs."""
    return SQLWrapper(db_uri, db_name, collection, ttl, **kwargs)


register_backend("sql", _create, _SQL_DIALECTS, accepts=_accepts)
