"""The table and the statements of the SQL backend (SQLAlchemy 2.x Core).

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

These primitives carry the single use of authorization codes and rotated refresh tokens
(RFC 6749 4.1.2, RFC 9700 4.14.2) and of client assertions (RFC 7523 3).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from .base import missing_driver

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import Table

logger = logging.getLogger(__name__)

#: The name of the table all collections share.
TABLE_NAME = "pyop_storage"
#: The table of the wrappers created with ``postgresql_unlogged=True`` (PostgreSQL only).
UNLOGGED_TABLE_NAME = "pyop_storage_unlogged"


def import_sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as error:
        raise missing_driver("sql", "sqlalchemy", error) from error
    return sqlalchemy


table_lock = threading.Lock()
#: The two tables, by name, built when SQLAlchemy is first needed.
tables: dict[str, Table] = {}


def storage_table(unlogged: bool = False) -> Table:
    """The ``pyop_storage`` table, or with ``unlogged`` the ``pyop_storage_unlogged`` one
    (PostgreSQL ``CREATE UNLOGGED TABLE``). Each has a :class:`~sqlalchemy.MetaData` of
    its own, so creating one never creates the other. Built once."""
    name = UNLOGGED_TABLE_NAME if unlogged else TABLE_NAME
    with table_lock:
        table = tables.get(name)
        if table is None:
            sa = import_sqlalchemy()
            from sqlalchemy.dialects import mysql

            def _binary_string(length: int) -> Any:
                # Keys are case-sensitive tokens: avoid MySQL's case-insensitive collations.
                return sa.String(length).with_variant(
                    mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb")

            metadata = sa.MetaData()
            table = tables[name] = sa.Table(
                name, metadata,
                sa.Column("collection", _binary_string(255), primary_key=True),
                sa.Column("key", _binary_string(512), primary_key=True),
                sa.Column("value", sa.Text().with_variant(
                    mysql.LONGTEXT(collation="utf8mb4_bin"), "mysql", "mariadb"), nullable=False),
                sa.Column("expires_at", sa.Double(), nullable=True, index=True),
                prefixes=["UNLOGGED"] if unlogged else [],
            )
        return table


class Statements:
    """Every statement of the backend, built once per dialect and table with bind parameters.

    Parameters: ``ns`` (the namespaced collection), ``k`` (key), ``now``
    (clock time deciding liveness), ``v`` (value JSON), ``exp`` (expiry or
    None), ``expected`` (JSON compared by ``compare_and_set``), ``lim`` and
    ``after`` (key pages). The SQL text is compiled once per engine and then
    found in SQLAlchemy's statement cache (the cache key of a prebuilt
    statement is memoised).
    """

    def __init__(self, dialect_name: str, unlogged: bool = False) -> None:
        sa = import_sqlalchemy()
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
_statements: dict[tuple[str, bool], Statements] = {}


def statements_for(dialect_name: str, unlogged: bool = False) -> Statements:
    """The statements of one dialect on ``pyop_storage`` (or ``pyop_storage_unlogged``)."""
    with _statements_lock:
        built = _statements.get((dialect_name, unlogged))
        if built is None:
            built = _statements[(dialect_name, unlogged)] = Statements(dialect_name, unlogged)
        return built


class DirectStatement:
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
