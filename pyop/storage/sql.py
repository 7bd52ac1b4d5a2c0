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

Every primitive is one statement, built once per dialect and table with bind
parameters (no SQL expression is built on a request path), run on a
connection in autocommit mode: one round trip, no ``BEGIN``/``COMMIT``.
Engines created here are created with ``isolation_level="AUTOCOMMIT"``, so a
pooled connection is never switched between modes.

Atomicity, each a single statement whose ``WHERE`` clause includes the
liveness test ``expires_at IS NULL OR expires_at > :now``:

* ``consume``: ``DELETE ... RETURNING value`` (SQLite >= 3.35, PostgreSQL,
  MariaDB >= 10.5); elsewhere ``SELECT`` then a ``DELETE`` conditioned on the
  value read, whose row count decides (the primary key makes it exactly-once).
* ``compare_and_set``: ``UPDATE ... WHERE value = :expected_json``; row count.
* ``compare_and_set_then_set`` on PostgreSQL, both stores on one engine: that
  ``UPDATE`` in a ``WITH`` whose ``RETURNING`` gates the upsert of the second row
  (one statement, also when one table is ``pyop_storage`` and the other
  ``pyop_storage_unlogged``).
* ``add``: PostgreSQL: ``INSERT ... ON CONFLICT DO NOTHING`` and an ``UPDATE``
  of an expired row, in one statement (data-modifying CTEs) that writes
  nothing when a live row exists; SQLite: ``INSERT ... ON CONFLICT DO UPDATE
  ... WHERE <row expired>``; elsewhere ``INSERT`` and, on an integrity error,
  an ``UPDATE`` that only takes over an expired row.

Expired rows are deleted by :meth:`SQLWrapper.purge_expired` and by a purge
run on a write at most every ``purge_interval`` seconds of clock time.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from ..exceptions import StorageError
from .base import (
    Clock,
    StorageBase,
    canonical_json,
    check_expires_at,
    check_key,
    check_ttl,
    missing_driver,
    wrap_error,
)
from .schemes import register_backend

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import Table
    from sqlalchemy.engine import Engine

__all__ = ["SQLWrapper", "TABLE_NAME", "UNLOGGED_TABLE_NAME"]

logger = logging.getLogger(__name__)

TABLE_NAME = "pyop_storage"
#: The table of the wrappers created with ``postgresql_unlogged=True`` (PostgreSQL only).
UNLOGGED_TABLE_NAME = "pyop_storage_unlogged"

#: Values of SQLite's ``PRAGMA synchronous`` accepted by ``sqlite_synchronous``.
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Default ``PRAGMA synchronous`` of SQLite files (WAL mode): see :class:`SQLWrapper`.
SQLITE_SYNCHRONOUS_DEFAULT = "NORMAL"
#: Values of PostgreSQL's ``synchronous_commit`` accepted by ``postgresql_synchronous_commit``.
POSTGRESQL_SYNCHRONOUS_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")

#: Attempts of PostgreSQL's ``add`` when a concurrent writer changed the row under it.
_ADD_ATTEMPTS = 10


def _import_sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as error:
        raise missing_driver("sql", "sqlalchemy", error) from error
    return sqlalchemy


_table_lock = threading.Lock()
#: The two tables, by name, built when SQLAlchemy is first needed.
_tables: dict[str, Table] = {}


def storage_table(unlogged: bool = False) -> Table:
    """The ``pyop_storage`` table, or with ``unlogged`` the ``pyop_storage_unlogged`` one
    (PostgreSQL ``CREATE UNLOGGED TABLE``). Each has a :class:`~sqlalchemy.MetaData` of
    its own, so creating one never creates the other. Built once."""
    name = UNLOGGED_TABLE_NAME if unlogged else TABLE_NAME
    with _table_lock:
        table = _tables.get(name)
        if table is None:
            sa = _import_sqlalchemy()
            from sqlalchemy.dialects import mysql

            def _binary_string(length: int) -> Any:
                # Keys are case-sensitive tokens: avoid MySQL's case-insensitive collations.
                return sa.String(length).with_variant(
                    mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb")

            metadata = sa.MetaData()
            table = _tables[name] = sa.Table(
                name, metadata,
                sa.Column("collection", _binary_string(255), primary_key=True),
                sa.Column("key", _binary_string(512), primary_key=True),
                sa.Column("value", sa.Text().with_variant(
                    mysql.LONGTEXT(collation="utf8mb4_bin"), "mysql", "mariadb"), nullable=False),
                sa.Column("expires_at", sa.Double(), nullable=True, index=True),
                prefixes=["UNLOGGED"] if unlogged else [],
            )
        return table


class _Statements:
    """Every statement of the backend, built once per dialect and table with bind parameters.

    Parameters: ``ns`` (the namespaced collection), ``k`` (key), ``now``
    (clock time deciding liveness), ``v`` (value JSON), ``exp`` (expiry or
    None), ``expected`` (JSON compared by ``compare_and_set``), ``lim`` and
    ``after`` (key pages). The SQL text is compiled once per engine and then
    found in SQLAlchemy's statement cache (the cache key of a prebuilt
    statement is memoised).
    """

    def __init__(self, dialect_name: str, unlogged: bool = False) -> None:
        sa = _import_sqlalchemy()
        t = storage_table(unlogged)
        #: The table's name, in the raw SQL below (one of the two constants, never input).
        name = t.name
        bp = sa.bindparam
        collection = t.c.collection == bp("ns")
        row = collection & (t.c.key == bp("k"))
        live = t.c.expires_at.is_(None) | (t.c.expires_at > bp("now"))
        expired = t.c.expires_at.is_not(None) & (t.c.expires_at <= bp("now"))
        record = {"collection": bp("ns"), "key": bp("k"), "value": bp("v"),
                  "expires_at": bp("exp")}
        same_value = t.c.value == bp("expected")

        self.get = sa.select(t.c.value).where(row & live)
        self.delete = sa.delete(t).where(row & live)
        self.consume = sa.delete(t).where(row & live).returning(t.c.value)
        self.consume_if_value = sa.delete(t).where(row & live & same_value)
        self.cas = sa.update(t).where(row & live & same_value).values(value=bp("v"))
        self.cas_expiry = (sa.update(t).where(row & live & same_value)
                           .values(value=bp("v"), expires_at=bp("exp")))
        self.insert = sa.insert(t).values(**record)
        self.update_row = sa.update(t).where(row).values(value=bp("v"), expires_at=bp("exp"))
        self.take_over_expired = (sa.update(t).where(row & expired)
                                  .values(value=bp("v"), expires_at=bp("exp")))
        self.purge = sa.delete(t).where(collection & expired)
        keys = sa.select(t.c.key).order_by(t.c.key).limit(bp("lim", type_=sa.Integer()))
        self.keys_first = keys.where(collection & live)
        self.keys_after = keys.where(collection & live & (t.c.key > bp("after")))

        self.upsert: Any = None
        self.add_upsert: Any = None
        self.add_upsert_returning: Any = None
        self.add_postgresql: Any = None
        if dialect_name in ("postgresql", "sqlite"):
            from sqlalchemy.dialects import postgresql, sqlite

            dialect_insert: Any = (postgresql.insert if dialect_name == "postgresql"
                                   else sqlite.insert)
            ins: Any = dialect_insert(t).values(**record)
            index = [t.c.collection, t.c.key]
            self.upsert = ins.on_conflict_do_update(
                index_elements=index,
                set_={"value": ins.excluded.value, "expires_at": ins.excluded.expires_at})
            self.add_upsert = ins.on_conflict_do_update(
                index_elements=index,
                set_={"value": ins.excluded.value, "expires_at": ins.excluded.expires_at},
                where=expired)
            self.add_upsert_returning = self.add_upsert.returning(t.c.key)
        if dialect_name == "postgresql":
            # ON CONFLICT DO UPDATE locks the conflicting row even when its WHERE is
            # false, and a row lock is a write: the commit then waits for a WAL flush.
            # add() of a key that is live (a known subject identifier, on every
            # authorization) must not write, so: INSERT ... DO NOTHING, then UPDATE the
            # row only if it has expired; the SELECT tells whether a live row was seen.
            # (S608: the table name is one of the two constants, never input)
            self.add_postgresql = sa.text(
                f"WITH ins AS (INSERT INTO {name} (collection, key, value, expires_at) "  # noqa: S608
                "VALUES (:ns, :k, :v, :exp) ON CONFLICT (collection, key) DO NOTHING "
                "RETURNING 1), "
                f"upd AS (UPDATE {name} SET value = :v, expires_at = :exp "
                "WHERE collection = :ns AND key = :k AND expires_at IS NOT NULL "
                "AND expires_at <= :now AND NOT EXISTS (SELECT 1 FROM ins) RETURNING 1) "
                "SELECT (SELECT count(*) FROM ins) + (SELECT count(*) FROM upd), "
                f"(SELECT count(*) FROM {name} WHERE collection = :ns AND key = :k "
                "AND (expires_at IS NULL OR expires_at > :now))"
            ).bindparams(bp("ns", type_=sa.String()), bp("k", type_=sa.String()),
                         bp("v", type_=sa.Text()), bp("exp", type_=sa.Double()),
                         bp("now", type_=sa.Double()))
        #: set() of the wrappers created with ``postgresql_asynchronous_set=True``:
        #: PostgreSQL only.
        self.upsert_asynchronous_postgresql: Any = None
        if dialect_name == "postgresql":
            # The upsert of set() in a transaction of its own (autocommit) that commits
            # asynchronously: set_config(..., is_local => true) changes synchronous_commit
            # for the current transaction only, so the commit does not wait for the WAL
            # flush and the session's setting is unchanged afterwards. The INSERT reads
            # the CTE, so set_config runs (once) before the commit. Conditional writes
            # (compare_and_set, add, consume, delete) never use it: they stay durable.
            self.upsert_asynchronous_postgresql = sa.text(
                "WITH async_commit AS "  # noqa: S608 - the table name is a constant
                "(SELECT set_config('synchronous_commit', 'off', true)) "
                f"INSERT INTO {name} (collection, key, value, expires_at) "
                "SELECT :ns, :k, :v, :exp FROM async_commit "
                "ON CONFLICT (collection, key) DO UPDATE "
                "SET value = excluded.value, expires_at = excluded.expires_at"
            ).bindparams(bp("ns", type_=sa.String()), bp("k", type_=sa.String()),
                         bp("v", type_=sa.Text()), bp("exp", type_=sa.Double()))
        #: compare_and_set_then_set by the table of the other store (the CTE updates
        #: this table and upserts into that one): empty but on PostgreSQL.
        self.cas_then_set_postgresql: dict[str, Any] = {}
        if dialect_name == "postgresql":
            # compare_and_set_then_set in one statement: the upsert of the second row
            # reads the RETURNING of the conditional UPDATE, so it happens only if the
            # update did; one round trip, one transaction (one WAL flush instead of two,
            # none when both tables are unlogged)
            for other in (TABLE_NAME, UNLOGGED_TABLE_NAME):
                self.cas_then_set_postgresql[other] = sa.text(
                    f"WITH cas AS (UPDATE {name} SET value = :v, expires_at = :exp "  # noqa: S608
                    "WHERE collection = :ns AND key = :k "
                    "AND (expires_at IS NULL OR expires_at > :now) AND value = :expected "
                    "RETURNING 1) "
                    f"INSERT INTO {other} (collection, key, value, expires_at) "
                    "SELECT :ns2, :k2, :v2, :exp2 WHERE EXISTS (SELECT 1 FROM cas) "
                    "ON CONFLICT (collection, key) DO UPDATE "
                    "SET value = excluded.value, expires_at = excluded.expires_at "
                    "RETURNING 1"
                ).bindparams(bp("ns", type_=sa.String()), bp("k", type_=sa.String()),
                             bp("v", type_=sa.Text()), bp("exp", type_=sa.Double()),
                             bp("now", type_=sa.Double()), bp("expected", type_=sa.Text()),
                             bp("ns2", type_=sa.String()), bp("k2", type_=sa.String()),
                             bp("v2", type_=sa.Text()), bp("exp2", type_=sa.Double()))
        #: The request-path statements, run straight on the DBAPI cursor where
        #: :func:`_direct_driver` allows (ids of the statement objects).
        self.direct = frozenset(id(stmt) for stmt in (
            self.get, self.delete, self.consume, self.cas, self.cas_expiry, self.upsert,
            self.add_upsert_returning, self.add_postgresql,
            self.upsert_asynchronous_postgresql, *self.cas_then_set_postgresql.values())
            if stmt is not None)
        self.upsert_mysql: Any = None
        if dialect_name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            mysql_ins = mysql_insert(t).values(**record)
            self.upsert_mysql = mysql_ins.on_duplicate_key_update(
                value=mysql_ins.inserted.value, expires_at=mysql_ins.inserted.expires_at)


_statements_lock = threading.Lock()
_statements: dict[tuple[str, bool], _Statements] = {}


def _statements_for(dialect_name: str, unlogged: bool = False) -> _Statements:
    """The statements of one dialect on ``pyop_storage`` (or ``pyop_storage_unlogged``)."""
    with _statements_lock:
        built = _statements.get((dialect_name, unlogged))
        if built is None:
            built = _statements[(dialect_name, unlogged)] = _Statements(dialect_name, unlogged)
        return built


def normalise_url(db_uri: str) -> str:
    """Map a bare ``postgresql://`` (or ``postgres://``) URL to ``postgresql+psycopg://``
    when psycopg 3 is installed and psycopg2 is not (SQLAlchemy's default is psycopg2)."""
    scheme, sep, rest = db_uri.partition("://")
    if scheme.lower() in ("postgresql", "postgres"):
        if (importlib.util.find_spec("psycopg2") is None
                and importlib.util.find_spec("psycopg") is not None):
            return "postgresql+psycopg://" + rest
        return "postgresql://" + rest
    return db_uri


class _DirectStatement:
    """A prebuilt statement compiled for one engine's dialect: SQL text, the order of
    its parameters (positional paramstyles) and their bind processors."""

    __slots__ = ("sql", "names", "positional", "processors")

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.positional: bool = bool(compiled.positional)
        self.names: tuple[str, ...] = tuple(
            compiled.positiontup if self.positional else compiled.binds)
        processors = {}
        for name in self.names:
            bind = compiled.binds[name]
            if bind.value is not None or bind.callable is not None:
                raise ValueError("direct statements take all their values as parameters")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        self.processors: dict[str, Any] = processors

    def parameters(self, params: dict[str, Any]) -> Any:
        processors = self.processors
        if processors:
            params = {name: (processors[name](value) if name in processors and value is not None
                             else value) for name, value in params.items()}
        if self.positional:
            return tuple(params[name] for name in self.names)
        return {name: params[name] for name in self.names}


#: DBAPI drivers whose cursors the request-path statements are run on directly.
_DIRECT_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg"),
                   ("postgresql", "psycopg2")}


class _EngineEntry:
    __slots__ = ("engine", "refs", "tables_ready", "lock", "serialise", "autocommit",
                 "compiled")

    def __init__(self, engine: Optional[Engine], serialise: bool, autocommit: bool) -> None:
        #: The engine when created here; None for a host's engine (the entry
        #: is then the value of a weak mapping keyed by that engine).
        self.engine = engine
        self.refs = 0
        #: Names of the tables known to exist on this engine (created or checked here).
        self.tables_ready: set[str] = set()
        #: Serialises every statement on in-memory SQLite (one shared connection).
        self.lock = threading.RLock()
        self.serialise = serialise
        #: The engine's connections are in autocommit mode already.
        self.autocommit = autocommit
        #: Direct statements compiled for this engine, by id of the prebuilt statement.
        self.compiled: dict[int, _DirectStatement] = {}


_engines_lock = threading.Lock()
#: Engines created here, shared per URL and options (reference counted).
_engines: dict[str, _EngineEntry] = {}
#: State kept for engines passed in by the host (never disposed here).
_injected_engines: weakref.WeakKeyDictionary[Engine, _EngineEntry] = weakref.WeakKeyDictionary()


def _is_memory_sqlite(url: Any) -> bool:
    return bool(url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def _check_choice(name: str, value: Optional[str], choices: tuple[str, ...],
                  upper: bool) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    normalised = value.upper() if upper else value.lower()
    if normalised not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}")
    return normalised


def _postgresql_only(unlogged: bool) -> str:
    """The message of the ValueError for a PostgreSQL option given on another database."""
    option = "postgresql_unlogged" if unlogged else "postgresql_asynchronous_set"
    return f"{option} applies to PostgreSQL only"


def _create_engine(url_text: str, engine_kwargs: dict[str, Any],
                   sqlite_synchronous: Optional[str],
                   synchronous_commit: Optional[str]) -> tuple[Engine, bool, bool]:
    """A new engine: (engine, serialise statements, connections in autocommit mode)."""
    sa = _import_sqlalchemy()
    from sqlalchemy import event
    from sqlalchemy.pool import StaticPool

    url = sa.engine.make_url(url_text)
    kwargs = dict(engine_kwargs)
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    backend = url.get_backend_name()
    if synchronous_commit is not None and backend != "postgresql":
        raise ValueError("postgresql_synchronous_commit applies to PostgreSQL only")
    if sqlite_synchronous is not None and backend != "sqlite":
        raise ValueError("sqlite_synchronous applies to SQLite only")
    pragma = sqlite_synchronous or SQLITE_SYNCHRONOUS_DEFAULT
    serialise = False
    if backend == "sqlite":
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", 30)  # busy timeout, seconds
        if _is_memory_sqlite(url):
            # One connection shared by all threads, so they all see one database.
            kwargs.setdefault("poolclass", StaticPool)
            serialise = True
    elif backend == "postgresql" and "connect_timeout" not in url.query:
        connect_args.setdefault("connect_timeout", 10)
    # Single statements: connections stay in autocommit mode for their whole life
    # (switching a pooled connection per checkout costs a statement on SQLite).
    kwargs.setdefault("isolation_level", "AUTOCOMMIT")
    autocommit = kwargs["isolation_level"] == "AUTOCOMMIT"
    if autocommit:
        # No transaction is ever left open: nothing to roll back when a connection
        # goes back to the pool.
        kwargs.setdefault("pool_reset_on_return", None)
    # Parameters are keys and values, that is tokens: keep them out of error messages.
    kwargs.setdefault("hide_parameters", True)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    if backend == "sqlite":
        memory = serialise

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                if not memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute(f"PRAGMA synchronous={pragma}")
                cursor.execute("PRAGMA busy_timeout=30000")
            finally:
                cursor.close()
    if synchronous_commit is not None:
        setting = synchronous_commit

        @event.listens_for(engine, "connect")
        def _postgresql_synchronous_commit(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"SET SESSION synchronous_commit TO {setting}")
            finally:
                cursor.close()
            if not getattr(dbapi_connection, "autocommit", False):
                dbapi_connection.commit()  # a session setting, kept after the commit
    return engine, serialise, autocommit


class SQLWrapper(StorageBase):
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
        sa = _import_sqlalchemy()
        if not collection:
            raise ValueError("SQLWrapper needs a collection name")
        if not isinstance(postgresql_unlogged, bool):
            raise TypeError("postgresql_unlogged must be a bool")
        if not isinstance(postgresql_asynchronous_set, bool):
            raise TypeError("postgresql_asynchronous_set must be a bool")
        sqlite_synchronous = _check_choice("sqlite_synchronous", sqlite_synchronous,
                                           SQLITE_SYNCHRONOUS, upper=True)
        synchronous_commit = _check_choice(
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
                raise ValueError(_postgresql_only(postgresql_unlogged))
            self._cache_key = "|".join((
                url_text, repr(sorted(engine_kwargs.items())),
                sqlite_synchronous or SQLITE_SYNCHRONOUS_DEFAULT, synchronous_commit or ""))
            with _engines_lock:
                entry = _engines.get(self._cache_key)
                if entry is None:
                    created, serialise, autocommit = _create_engine(
                        url_text, engine_kwargs, sqlite_synchronous, synchronous_commit)
                    entry = _engines[self._cache_key] = _EngineEntry(
                        created, serialise, autocommit)
                entry.refs += 1
        else:
            if sqlite_synchronous is not None or synchronous_commit is not None:
                raise ValueError("sqlite_synchronous and postgresql_synchronous_commit apply "
                                 "to engines created by pyop; configure your own engine")
            if ((postgresql_unlogged or postgresql_asynchronous_set)
                    and engine.dialect.name != "postgresql"):
                raise ValueError(_postgresql_only(postgresql_unlogged))
            with _engines_lock:
                entry = _injected_engines.get(engine)
                if entry is None:
                    autocommit = "AUTOCOMMIT" in (
                        engine.get_execution_options().get("isolation_level"),
                        getattr(engine.dialect, "_on_connect_isolation_level", None))
                    entry = _injected_engines[engine] = _EngineEntry(
                        None, _is_memory_sqlite(engine.url), autocommit)
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
        self._sql = _statements_for(self._dialect_name, postgresql_unlogged)
        #: The upsert of :meth:`set` (PostgreSQL, SQLite): with
        #: ``postgresql_asynchronous_set`` the one that commits asynchronously.
        self._set_upsert: Any = (self._sql.upsert_asynchronous_postgresql
                                 if postgresql_asynchronous_set else self._sql.upsert)
        #: Request-path statements go straight to the DBAPI cursor (see :meth:`_execute`).
        self._direct = entry.autocommit and (self._dialect_name, dialect.driver) in _DIRECT_DRIVERS
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

    # -- plumbing -----------------------------------------------------------

    def _execute(self, operation: str, stmt: Any, params: dict[str, Any],
                 result: str = "rowcount",
                 passthrough: tuple[type[BaseException], ...] = ()) -> Any:
        """Run one statement in autocommit mode (one round trip, atomic by itself).

        ``result``: ``"rowcount"``, ``"scalar"`` (first column of the first row,
        or None), ``"row"`` (the first row as a tuple, or None) or ``"scalars"``
        (a list of the first column). Driver errors (except ``passthrough``)
        become :class:`StorageError`.
        """
        entry = self._entry
        if (self._direct and self._table_name in entry.tables_ready
                and id(stmt) in self._sql.direct
                and not self._instrumented()):
            if entry.serialise:
                with entry.lock:
                    return self._execute_direct(operation, stmt, params, result)
            return self._execute_direct(operation, stmt, params, result)
        try:
            if self._table_name not in entry.tables_ready:
                self._create_table()
            if entry.serialise:
                with entry.lock, self._runner.connect() as conn:
                    return self._fetch(conn.execute(stmt, params), result)
            with self._runner.connect() as conn:
                return self._fetch(conn.execute(stmt, params), result)
        except passthrough:
            raise
        except self._errors as error:
            raise wrap_error(operation, self._namespace, error) from error

    def _instrumented(self) -> bool:
        """Whether the engine logs statements or has statement or error listeners
        (a host's tracing, the benchmark's counters): they see every statement."""
        engine = self._engine
        events = engine.dispatch
        return bool(events.before_cursor_execute or events.after_cursor_execute
                    or events.before_execute or events.after_execute
                    or engine.dialect.dispatch.handle_error
                    or engine.logger.isEnabledFor(logging.INFO))

    def _execute_direct(self, operation: str, stmt: Any, params: dict[str, Any],
                        result: str) -> Any:
        """:meth:`_execute` on the DBAPI cursor of a pooled connection, for the request-path
        statements on SQLite (pysqlite) and PostgreSQL (psycopg, psycopg2).

        The SQL text is compiled once per engine, so no statement cache lookup, execution
        context or result object is made per call: about half the client-side cost of
        a statement. Taken only when the engine's connections are in autocommit mode and
        no ``before/after_cursor_execute`` listener or statement logging is set on it
        (those see every statement through the SQLAlchemy path). Driver errors are
        wrapped as SQLAlchemy would (``sqlalchemy.exc.DBAPIError``, parameters hidden)
        and a connection found dead is invalidated in the pool.
        """
        entry = self._entry
        direct = entry.compiled.get(id(stmt))
        if direct is None:
            direct = entry.compiled[id(stmt)] = _DirectStatement(stmt, self._engine.dialect)
        try:
            connection = self._engine.raw_connection()
        except self._errors as error:
            raise wrap_error(operation, self._namespace, error) from error
        cursor = None
        try:
            cursor = connection.cursor()
            cursor.execute(direct.sql, direct.parameters(params))
            if result == "rowcount":
                return cursor.rowcount
            row = cursor.fetchone()
            if row is None:
                return None
            return row[0] if result == "scalar" else tuple(row)
        except self._dbapi_error as error:
            dialect = self._engine.dialect
            invalidated = bool(dialect.is_disconnect(error, connection, cursor))  # type: ignore[arg-type]
            if invalidated:
                connection.invalidate(error)
            wrapped = self._sa.exc.DBAPIError.instance(
                direct.sql, None, error, self._dbapi_error, hide_parameters=True,
                connection_invalidated=invalidated, dialect=dialect)
            wrapped.__cause__ = error
            raise wrap_error(operation, self._namespace, wrapped) from wrapped
        finally:
            if cursor is not None:
                try:
                    cursor.close()
                except self._dbapi_error:  # pragma: no cover - a dead connection
                    pass
            connection.close()

    @staticmethod
    def _fetch(cursor: Any, result: str) -> Any:
        if result == "scalar":
            row = cursor.first()
            return None if row is None else row[0]
        if result == "rowcount":
            return cursor.rowcount
        if result == "row":
            row = cursor.first()
            return None if row is None else tuple(row)
        return list(cursor.scalars())

    def _create_table(self) -> None:
        """Create this wrapper's table (and its index) unless this engine has it already."""
        entry = self._entry
        with entry.lock:
            if self._table_name not in entry.tables_ready:
                try:
                    self._create_all()
                except (self._sa.exc.IntegrityError, self._sa.exc.ProgrammingError):
                    # Another process created it between our check and our CREATE.
                    self._create_all()
                entry.tables_ready.add(self._table_name)
                logger.debug("SQLWrapper: table %s ready", self._table_name)

    def _ensure_table(self, operation: str) -> None:
        """:meth:`_create_table` for a statement that writes to this wrapper's table but is
        run by another wrapper (``compare_and_set_then_set``); errors as :class:`StorageError`."""
        if self._table_name in self._entry.tables_ready:
            return
        try:
            self._create_table()
        except self._errors as error:
            raise wrap_error(operation, self._namespace, error) from error

    def _create_all(self) -> None:
        """``CREATE TABLE``/``CREATE INDEX`` in one transaction (DDL is transactional on
        PostgreSQL and SQLite), on a connection taken out of autocommit mode."""
        with self._engine.connect() as conn:
            level = getattr(conn.dialect, "default_isolation_level", None)
            if level and level != "AUTOCOMMIT":
                conn = conn.execution_options(isolation_level=level)
            with conn.begin():
                self._table.metadata.create_all(conn, checkfirst=True)

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
        with _engines_lock:
            entry = _engines.get(self._cache_key)
            if entry is None or entry is not self._entry:
                return
            entry.refs -= 1
            if entry.refs > 0:
                return
            del _engines[self._cache_key]
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
