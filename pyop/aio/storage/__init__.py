"""Async storage for :mod:`pyop.aio`: the contract (:class:`AsyncStorageBase`) and its
backends, each on its driver's native asyncio client.

* :class:`AsyncMemoryStorage` -- in-process;
* :class:`AsyncStatelessWrapper` -- sealed self-contained tokens;
* :class:`AsyncRedisStorage` (``redis.asyncio``), :class:`AsyncMongoStorage` (PyMongo's
  ``AsyncMongoClient``) and :class:`AsyncSQLStorage` (SQLAlchemy's asyncio extension:
  aiosqlite, psycopg, asyncpg), whose drivers are imported when a store is created.

``AsyncStorageBase.from_uri(uri, collection=..., db_name=..., ttl=...)`` picks the
backend from the URI, as :meth:`pyop.storage.StorageBase.from_uri` does.
See ``docs/async.rst``.
"""

from .base import AsyncStorageBase, BridgedStorage, GreenletStorage
from .memory import AsyncMemoryStorage
from .mongo import AsyncMongoStorage
from .redis import AsyncRedisStorage
from .sql import AsyncSQLStorage
from .stateless import AsyncStatelessWrapper

__all__ = [
    "AsyncStorageBase",
    "BridgedStorage",
    "GreenletStorage",
    "AsyncMemoryStorage",
    "AsyncStatelessWrapper",
    "AsyncRedisStorage",
    "AsyncMongoStorage",
    "AsyncSQLStorage",
]
