"""Async storage for :mod:`pyop.aio`: the contract (:class:`AsyncStorageBase`) and its
backends, each on its driver's native asyncio client.

* :class:`AsyncMemoryStorage` -- in-process;
* :class:`AsyncStatelessWrapper` -- sealed self-contained tokens;
* :class:`AsyncSQLStorage` -- SQLAlchemy's asyncio extension (aiosqlite, psycopg,
  asyncpg; SQLAlchemy is imported when a store is created);
* ``AsyncRedisStorage`` (``redis.asyncio``), ``AsyncMongoStorage`` (PyMongo's
  ``AsyncMongoClient``), imported from their modules when used.

``AsyncStorageBase.from_uri(uri, collection=..., db_name=..., ttl=...)`` picks the
backend from the URI, as :meth:`pyop.storage.StorageBase.from_uri` does.
See ``docs/async.rst``.
"""

from .base import AsyncStorageBase, BridgedStorage, GreenletStorage
from .memory import AsyncMemoryStorage
from .sql import AsyncSQLStorage
from .stateless import AsyncStatelessWrapper

__all__ = [
    "AsyncStorageBase",
    "BridgedStorage",
    "GreenletStorage",
    "AsyncMemoryStorage",
    "AsyncSQLStorage",
    "AsyncStatelessWrapper",
]
