"""SQL backend (SQLAlchemy 2.x Core; SQLite, PostgreSQL, MySQL/MariaDB, ...).

All collections share one table, ``pyop_storage``::

    collection  VARCHAR(255)  -- "{db_name}:{collection}" or "{collection}"
    key         VARCHAR(512)  -- primary key (collection, key)
    value       TEXT          -- canonical JSON
    expires_at  DOUBLE NULL   -- absolute UNIX time, indexed

created on first use (``metadata.create_all(checkfirst=True)``).

Atomicity, each a single statement whose ``WHERE`` clause includes the
liveness test ``expires_at IS NULL OR expires_at > :now``:

* ``consume``: ``DELETE ... RETURNING value`` (SQLite >= 3.35, PostgreSQL,
  MariaDB >= 10.5); elsewhere ``SELECT`` then a ``DELETE`` conditioned on the
  value read, whose row count decides (the primary key makes it exactly-once).
* ``compare_and_set``: ``UPDATE ... WHERE value = :expected_json``; row count.
* ``add``: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <row expired>``
  (PostgreSQL, SQLite); elsewhere ``INSERT`` and, on an integrity error, an
  ``UPDATE`` that only takes over an expired row.

Expired rows are deleted by :meth:`SQLWrapper.purge_expired` and by a purge
run on a write at most every ``purge_interval`` seconds of clock time.
"""

from __future__ import annotations

import contextlib
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

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine

__all__ = ["SQLWrapper", "TABLE_NAME"]

logger = logging.getLogger(__name__)

TABLE_NAME = "pyop_storage"


def _import_sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as error:
        raise missing_driver("sql", "sqlalchemy", error) from error
    return sqlalchemy


_table_lock = threading.Lock()
_table: Optional[Table] = None


def storage_table() -> Table:
    """The ``pyop_storage`` table (built once, when SQLAlchemy is first needed)."""
    global _table
    with _table_lock:
        if _table is None:
            sa = _import_sqlalchemy()
            from sqlalchemy.dialects import mysql

            def _binary_string(length: int) -> Any:
                # Keys are case-sensitive tokens: avoid MySQL's case-insensitive collations.
                return sa.String(length).with_variant(
                    mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb")

            metadata = sa.MetaData()
            _table = sa.Table(
                TABLE_NAME, metadata,
                sa.Column("collection", _binary_string(255), primary_key=True),
                sa.Column("key", _binary_string(512), primary_key=True),
                sa.Column("value", sa.Text().with_variant(
                    mysql.LONGTEXT(collation="utf8mb4_bin"), "mysql", "mariadb"), nullable=False),
                sa.Column("expires_at", sa.Double(), nullable=True, index=True),
            )
        return _table


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


class _EngineEntry:
    __slots__ = ("engine", "refs", "table_ready", "lock", "serialise")

    def __init__(self, engine: Optional[Engine], serialise: bool) -> None:
        #: The engine when created here; None for a host's engine (the entry
        #: is then the value of a weak mapping keyed by that engine).
        self.engine = engine
        self.refs = 0
        self.table_ready = False
        #: Serialises every statement on in-memory SQLite (one shared connection).
        self.lock = threading.RLock()
        self.serialise = serialise


_engines_lock = threading.Lock()
#: Engines created here, shared per URL and options (reference counted).
_engines: dict[str, _EngineEntry] = {}
#: State kept for engines passed in by the host (never disposed here).
_injected_engines: weakref.WeakKeyDictionary[Engine, _EngineEntry] = weakref.WeakKeyDictionary()


def _is_memory_sqlite(url: Any) -> bool:
    return bool(url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def _create_engine(url_text: str, engine_kwargs: dict[str, Any]) -> tuple[Engine, bool]:
    sa = _import_sqlalchemy()
    from sqlalchemy import event
    from sqlalchemy.pool import StaticPool

    url = sa.engine.make_url(url_text)
    kwargs = dict(engine_kwargs)
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    backend = url.get_backend_name()
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
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    if backend == "sqlite":
        memory = serialise

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                if not memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=30000")
            finally:
                cursor.close()
    return engine, serialise


class SQLWrapper(StorageBase):
    """Store records in a SQL database through SQLAlchemy Core.

    URIs: ``sqlite:///path/to/file.db``, ``sqlite://`` (in-memory, shared by
    the threads of the process), ``postgresql://...`` (psycopg 3 or
    psycopg2), ``postgresql+psycopg://...``, ``mysql+pymysql://...`` and
    any other SQLAlchemy URL. One engine is shared, per URL, by all the
    wrappers of the process.

    :param db_uri: SQLAlchemy database URL.
    :param db_name: optional namespace, prefixed to the collection name
        (the database itself is chosen by the URL).
    :param collection: the collection (rows of the shared table).
    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: current UNIX time; decides expiry.
    :param engine: an existing SQLAlchemy ``Engine`` to use (not disposed by :meth:`close`).
    :param purge_interval: seconds of clock time between two purges on writes.
    :param engine_kwargs: extra arguments for ``sqlalchemy.create_engine``.
    :raises ImportError: SQLAlchemy is not installed (``pip install pyop[sql]``).
    :raises ValueError: no collection given.
    """

    def __init__(self, db_uri: str, db_name: Optional[str] = None,
                 collection: Optional[str] = None, ttl: Optional[float] = None, *,
                 clock: Clock = time.time, engine: Optional[Engine] = None,
                 purge_interval: float = 60, **engine_kwargs: Any) -> None:
        sa = _import_sqlalchemy()
        if not collection:
            raise ValueError("SQLWrapper needs a collection name")
        self._sa = sa
        self._errors: tuple[type[BaseException], ...] = (sa.exc.SQLAlchemyError,)
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self.collection = collection
        self._namespace = f"{db_name}:{collection}" if db_name else collection
        if len(self._namespace) > 255:
            raise ValueError("db_name and collection must be at most 255 characters together")
        self._table = storage_table()
        self._cache_key: Optional[str] = None
        if engine is None:
            url_text = normalise_url(db_uri)
            self._cache_key = url_text + "|" + repr(sorted(engine_kwargs.items()))
            with _engines_lock:
                entry = _engines.get(self._cache_key)
                if entry is None:
                    created, serialise = _create_engine(url_text, engine_kwargs)
                    entry = _engines[self._cache_key] = _EngineEntry(created, serialise)
                entry.refs += 1
        else:
            with _engines_lock:
                entry = _injected_engines.get(engine)
                if entry is None:
                    entry = _injected_engines[engine] = _EngineEntry(
                        None, _is_memory_sqlite(engine.url))
        self._entry = entry
        if entry.engine is not None:
            engine = entry.engine
        if engine is None:  # pragma: no cover - one of them is always set
            raise AssertionError("no engine")
        self._engine: Engine = engine
        self._autocommit = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        dialect = self._engine.dialect
        self._dialect_name: str = dialect.name
        self._delete_returning = bool(getattr(dialect, "delete_returning", False))
        self._insert_returning = bool(getattr(dialect, "insert_returning", False))
        self._upsert = self._dialect_name in ("postgresql", "sqlite")
        self._purge_interval = purge_interval
        self._next_purge = clock() + purge_interval
        self._closed = False
        #: Rows fetched per query by :meth:`keys`.
        self.keys_page_size = 1000

    def __repr__(self) -> str:
        return (f"SQLWrapper(dialect={self._dialect_name!r}, collection={self._namespace!r}, "
                f"ttl={self.ttl!r})")

    # -- plumbing -----------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, operation: str, passthrough: tuple[type[BaseException], ...] = (),
                 transaction: bool = False) -> Iterator[Connection]:
        """A connection; driver errors (except ``passthrough``) become StorageError.

        Single statements run in autocommit mode (one round trip; each
        statement is atomic by itself); ``transaction=True`` wraps the
        block in ``BEGIN``/``COMMIT``.
        """
        entry = self._entry
        try:
            if not entry.table_ready:
                self._create_table()
            with contextlib.ExitStack() as stack:
                if entry.serialise:
                    stack.enter_context(entry.lock)
                if transaction:
                    yield stack.enter_context(self._engine.begin())
                else:
                    yield stack.enter_context(self._autocommit.connect())
        except passthrough:
            raise
        except self._errors as error:
            raise wrap_error(operation, self._namespace, error) from error

    def _create_table(self) -> None:
        entry = self._entry
        with entry.lock:
            if not entry.table_ready:
                try:
                    self._table.metadata.create_all(self._engine, checkfirst=True)
                except (self._sa.exc.IntegrityError, self._sa.exc.ProgrammingError):
                    # Another process created it between our check and our CREATE.
                    self._table.metadata.create_all(self._engine, checkfirst=True)
                entry.table_ready = True
                logger.debug("SQLWrapper: table %s ready", TABLE_NAME)

    def _row(self, key: str) -> Any:
        t = self._table
        return (t.c.collection == self._namespace) & (t.c.key == check_key(key))

    def _live(self, now: float) -> Any:
        t = self._table
        return t.c.expires_at.is_(None) | (t.c.expires_at > now)

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
        sa, t = self._sa, self._table
        now = self._clock()
        stmt = sa.select(t.c.value).where(self._row(key) & self._live(now))
        with self._connect("get") as conn:
            raw = conn.execute(stmt).scalar_one_or_none()
        return default if raw is None else self._decode(raw, "get")

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        values = {"collection": self._namespace, "key": key, "value": raw, "expires_at": expiry}
        generic = not self._upsert and self._dialect_name not in ("mysql", "mariadb")
        with self._connect("set", transaction=generic) as conn:
            if self._upsert:
                stmt = self._dialect_insert().values(**values)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[self._table.c.collection, self._table.c.key],
                    set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at}))
            elif self._dialect_name in ("mysql", "mariadb"):
                from sqlalchemy.dialects.mysql import insert as mysql_insert

                stmt = mysql_insert(self._table).values(**values)
                conn.execute(stmt.on_duplicate_key_update(
                    value=stmt.inserted.value, expires_at=stmt.inserted.expires_at))
            else:
                self._generic_set(conn, key, values)
        self._maybe_purge(now)

    def _generic_set(self, conn: Connection, key: str, values: dict[str, Any]) -> None:
        sa, t = self._sa, self._table
        update = sa.update(t).where(self._row(key)).values(
            value=values["value"], expires_at=values["expires_at"])
        if conn.execute(update).rowcount:
            return
        nested = conn.begin_nested()
        try:
            conn.execute(sa.insert(t).values(**values))
            nested.commit()
        except sa.exc.IntegrityError:
            nested.rollback()  # inserted concurrently: overwrite it
            conn.execute(update)

    def _dialect_insert(self) -> Any:
        if self._dialect_name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(self._table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(self._table)

    def delete(self, key: str) -> bool:
        sa, t = self._sa, self._table
        now = self._clock()
        stmt = sa.delete(t).where(self._row(key) & self._live(now))
        with self._connect("delete") as conn:
            return bool(conn.execute(stmt).rowcount)

    def consume(self, key: str) -> Any:
        sa, t = self._sa, self._table
        now = self._clock()
        if self._delete_returning:
            stmt = sa.delete(t).where(self._row(key) & self._live(now)).returning(t.c.value)
            with self._connect("consume") as conn:
                raw = conn.execute(stmt).scalar_one_or_none()
            return None if raw is None else self._decode(raw, "consume")
        return self._consume_without_returning(key, now)

    def _consume_without_returning(self, key: str, now: float) -> Any:
        """SELECT, then DELETE only that value: the row count says who won."""
        sa, t = self._sa, self._table
        with self._connect("consume") as conn:
            raw = conn.execute(
                sa.select(t.c.value).where(self._row(key) & self._live(now))).scalar_one_or_none()
        if raw is None:
            return None
        with self._connect("consume") as conn:
            deleted = conn.execute(
                sa.delete(t).where(self._row(key) & self._live(now) & (t.c.value == raw))).rowcount
        return self._decode(raw, "consume") if deleted == 1 else None

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        sa, t = self._sa, self._table
        expected_raw = canonical_json(expected)
        new_values: dict[str, Any] = {"value": canonical_json(new)}
        if expires_at is not None:
            new_values["expires_at"] = check_expires_at(expires_at)
        now = self._clock()
        stmt = (sa.update(t)
                .where(self._row(key) & self._live(now) & (t.c.value == expected_raw))
                .values(**new_values))
        with self._connect("compare_and_set") as conn:
            replaced = conn.execute(stmt).rowcount == 1
        self._maybe_purge(now)
        return replaced

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        values = {"collection": self._namespace, "key": key, "value": raw, "expires_at": expiry}
        t = self._table
        expired = t.c.expires_at.is_not(None) & (t.c.expires_at <= now)
        if self._upsert:
            stmt = self._dialect_insert().values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.collection, t.c.key],
                set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
                where=expired)
            with self._connect("add") as conn:
                if self._insert_returning:
                    stored = conn.execute(stmt.returning(t.c.key)).first() is not None
                else:  # pragma: no cover - SQLite < 3.35
                    stored = conn.execute(
                        stmt.execution_options(preserve_rowcount=True)).rowcount == 1
        else:
            stored = self._generic_add(key, values, expired)
        self._maybe_purge(now)
        return stored

    def _generic_add(self, key: str, values: dict[str, Any], expired: Any) -> bool:
        """INSERT; on an integrity error take over the row only if it has expired."""
        sa, t = self._sa, self._table
        try:
            with self._connect("add", passthrough=(sa.exc.IntegrityError,)) as conn:
                conn.execute(sa.insert(t).values(**values))
            return True
        except sa.exc.IntegrityError:
            pass
        stmt = (sa.update(t).where(self._row(key) & expired)
                .values(value=values["value"], expires_at=values["expires_at"]))
        with self._connect("add") as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def purge_expired(self) -> int:
        """``DELETE`` this collection's rows whose ``expires_at`` has passed."""
        sa, t = self._sa, self._table
        now = self._clock()
        stmt = sa.delete(t).where((t.c.collection == self._namespace)
                                  & t.c.expires_at.is_not(None) & (t.c.expires_at <= now))
        with self._connect("purge_expired") as conn:
            removed = conn.execute(stmt).rowcount
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
        sa, t = self._sa, self._table
        last: Optional[str] = None
        page_size = self.keys_page_size
        while True:
            now = self._clock()
            cond = (t.c.collection == self._namespace) & self._live(now)
            if last is not None:
                cond = cond & (t.c.key > last)
            stmt = sa.select(t.c.key).where(cond).order_by(t.c.key).limit(page_size)
            with self._connect("keys") as conn:
                page = list(conn.execute(stmt).scalars())
            yield from page
            if len(page) < page_size:
                return
            last = page[-1]
