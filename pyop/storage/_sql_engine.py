r"""The engines of the SQL backend: created once per URL and options and shared by the
wrappers of a process (reference counted), tuned per database (SQLite ``PRAGMA``\ s,
PostgreSQL ``synchronous_commit``), and :class:`StatementRunner`, which runs one
prebuilt statement per call in autocommit mode, straight on the DBAPI cursor where the
driver allows.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._sql_statements import DirectStatement, Statements, import_sqlalchemy
from .base import wrap_error

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import Table
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

#: Values of SQLite's ``PRAGMA synchronous`` accepted by ``sqlite_synchronous``.
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Default ``PRAGMA synchronous`` of SQLite files (WAL mode): see :class:`SQLWrapper`.
SQLITE_SYNCHRONOUS_DEFAULT = "NORMAL"
#: Values of PostgreSQL's ``synchronous_commit`` accepted by ``postgresql_synchronous_commit``.
POSTGRESQL_SYNCHRONOUS_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")


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


#: DBAPI drivers whose cursors the request-path statements are run on directly.
DIRECT_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg"),
                   ("postgresql", "psycopg2")}


class EngineEntry:
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
        self.compiled: dict[int, DirectStatement] = {}


engines_lock = threading.Lock()
#: Engines created here, shared per URL and options (reference counted).
engines: dict[str, EngineEntry] = {}
#: State kept for engines passed in by the host (never disposed here).
injected_engines: weakref.WeakKeyDictionary[Engine, EngineEntry] = weakref.WeakKeyDictionary()


def is_memory_sqlite(url: Any) -> bool:
    return bool(url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def check_choice(name: str, value: Optional[str], choices: tuple[str, ...],
                  upper: bool) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    normalised = value.upper() if upper else value.lower()
    if normalised not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}")
    return normalised


def postgresql_only(unlogged: bool) -> str:
    """The message of the ValueError for a PostgreSQL option given on another database."""
    option = "postgresql_unlogged" if unlogged else "postgresql_asynchronous_set"
    return f"{option} applies to PostgreSQL only"


def create_engine(url_text: str, engine_kwargs: dict[str, Any],
                   sqlite_synchronous: Optional[str],
                   synchronous_commit: Optional[str],
                   factory: Optional[Callable[..., Any]] = None) -> tuple[Any, bool, bool]:
    """A new engine: (engine, serialise statements, connections in autocommit mode).

    ``factory``: what makes the engine from the URL and keyword arguments
    (``sqlalchemy.create_engine`` by default; SQLAlchemy's ``create_async_engine`` for
    :mod:`pyop.aio`, whose event listeners go on its ``sync_engine``).
    """
    sa = import_sqlalchemy()
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
        if is_memory_sqlite(url):
            # One connection shared by all threads, so they all see one database.
            kwargs.setdefault("poolclass", StaticPool)
            serialise = True
    elif backend == "postgresql" and url.get_driver_name() == "asyncpg":
        connect_args.setdefault("timeout", 10)  # asyncpg's name of the connect timeout
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
    made = (factory or sa.create_engine)(url, connect_args=connect_args, **kwargs)
    engine = getattr(made, "sync_engine", made)
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
    return made, serialise, autocommit


class StatementRunner:
    """Runs the statements of a :class:`~pyop.storage.SQLWrapper` on its engine
    (set by the wrapper's constructor)."""

    _sa: Any
    _errors: tuple[type[BaseException], ...]
    _dbapi_error: type[BaseException]
    _namespace: str
    _table: Table
    _table_name: str
    _entry: EngineEntry
    _engine: Engine
    _runner: Engine
    _sql: Statements
    _direct: bool

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
            direct = entry.compiled[id(stmt)] = DirectStatement(stmt, self._engine.dialect)
        try:
            connection = self._engine.raw_connection()
        except self._errors as error:
            raise wrap_error(operation, self._namespace, error) from error
        try:
            return self._run_direct(connection, direct.sql, direct.parameters(params), result)
        except self._dbapi_error as error:
            dialect = self._engine.dialect
            invalidated = bool(dialect.is_disconnect(error, connection, None))  # type: ignore[arg-type]
            if invalidated:
                connection.invalidate(error)
            wrapped = self._sa.exc.DBAPIError.instance(
                direct.sql, None, error, self._dbapi_error, hide_parameters=True,
                connection_invalidated=invalidated, dialect=dialect)
            wrapped.__cause__ = error
            raise wrap_error(operation, self._namespace, wrapped) from wrapped
        finally:
            connection.close()

    def _run_direct(self, connection: Any, sql: str, parameters: Any, result: str) -> Any:
        """Run ``sql`` on a cursor of the pooled DBAPI ``connection`` (see
        :meth:`_execute_direct`); its driver errors propagate."""
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters)
            if result == "rowcount":
                return cursor.rowcount
            row = cursor.fetchone()
            if row is None:
                return None
            return row[0] if result == "scalar" else tuple(row)
        finally:
            try:
                cursor.close()
            except self._dbapi_error:  # pragma: no cover - a dead connection
                pass

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
