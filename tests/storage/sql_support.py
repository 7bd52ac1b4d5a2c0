"""Helpers of the PostgreSQL option tests (``postgresql_unlogged``,
``postgresql_asynchronous_set``): stores in a fresh namespace, and the statements an
engine runs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from pyop.storage import SQLWrapper

from .provider_support import new_namespace

sa = pytest.importorskip("sqlalchemy")

#: A code record, the same marked used, and an access token record.
CODE = {"client_id": "c", "used": None}
USED = {"client_id": "c", "used": True}
TOKEN = {"token_type": "access_token", "sub": "s"}


@contextlib.contextmanager
def sql_stores(url: str, **defaults: Any) -> Iterator[Callable[..., SQLWrapper]]:
    """``make(collection="", **options)``: a store in a namespace of its own (a random
    collection when none is named), ``defaults`` under ``options``; emptied and closed
    afterwards."""
    namespace = new_namespace()
    made: list[SQLWrapper] = []

    def make(collection: str = "", **options: Any) -> SQLWrapper:
        store = SQLWrapper(url, namespace, collection or "c" + uuid.uuid4().hex[:8],
                           **{**defaults, **options})
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            with contextlib.suppress(Exception):
                for key in list(store.keys()):
                    store.delete(key)
            store.close()


@contextlib.contextmanager
def recorded_statements(engine: Any) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` while the block runs (listener removed after)."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
