"""mongomock with the API of PyMongo's ``AsyncMongoClient``, for the async MongoDB tests.

:class:`AsyncMockClient` wraps a ``mongomock.MongoClient``: ``client[db][collection]`` is
an :class:`AsyncMockCollection` whose operations are coroutines and whose ``find``
returns an async cursor (``async for``, ``await cursor.close()``), as
``pymongo.asynchronous`` has them. Each operation first yields to the event loop
(``asyncio.sleep(0)``), so that concurrent tasks interleave between operations as they
do on a server; the operation itself then runs whole (mongomock's methods are made
atomic per document in conftest.py, as a server's are).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

#: The AsyncCollection coroutines that :class:`pyop.aio.storage.AsyncMongoStorage` and
#: the tests use.
_OPERATIONS = ("find_one", "find_one_and_delete", "insert_one", "replace_one", "update_one",
               "delete_one", "delete_many", "count_documents", "create_index",
               "index_information", "drop_index", "drop", "insert_many")


class AsyncMockCursor:
    """An async cursor over a mongomock cursor."""

    def __init__(self, cursor: Iterator[Any]) -> None:
        self._cursor = cursor
        self.closed = False

    def __aiter__(self) -> AsyncMockCursor:
        return self

    async def __anext__(self) -> Any:
        await asyncio.sleep(0)
        if self.closed:
            raise StopAsyncIteration
        try:
            return next(self._cursor)
        except StopIteration:
            raise StopAsyncIteration from None

    async def to_list(self, length: Any = None) -> list[Any]:
        return [doc async for doc in self]

    async def close(self) -> None:
        self.closed = True


class AsyncMockCollection:
    """A mongomock collection whose operations are coroutines (see the module docstring)."""

    def __init__(self, collection: Any) -> None:
        #: the mongomock collection
        self.sync = collection

    def __getattr__(self, name: str) -> Any:
        if name not in _OPERATIONS:
            raise AttributeError(name)
        method = getattr(self.sync, name)

        async def operation(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return method(*args, **kwargs)

        operation.__name__ = name
        return operation

    def find(self, *args: Any, **kwargs: Any) -> AsyncMockCursor:
        return AsyncMockCursor(self.sync.find(*args, **kwargs))


class AsyncMockDatabase:
    def __init__(self, database: Any) -> None:
        self.sync = database

    def __getitem__(self, name: str) -> AsyncMockCollection:
        return AsyncMockCollection(self.sync[name])


class AsyncMockClient:
    """``AsyncMongoClient``'s API over a ``mongomock.MongoClient`` (shared data: the sync
    stores on the same mongomock client read what the async ones wrote)."""

    def __init__(self, client: Any) -> None:
        self.sync = client
        self.closed = False

    def __getitem__(self, name: str) -> AsyncMockDatabase:
        return AsyncMockDatabase(self.sync[name])

    def get_default_database(self) -> AsyncMockDatabase:
        return AsyncMockDatabase(self.sync.get_default_database())

    async def close(self) -> None:
        self.closed = True
