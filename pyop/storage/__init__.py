"""Storage for pyop: the contract (:class:`StorageBase`) and its backends.

* :class:`MemoryStorage` -- in-process, the reference implementation;
* :class:`DictStorage` -- adapter for plain dicts (what pyop 3 accepted);
* :class:`MongoWrapper` -- MongoDB (``pip install pyop[mongo]``);
* :class:`RedisWrapper` -- Redis (``pip install pyop[redis]``);
* :class:`SQLWrapper` -- SQLite, PostgreSQL, MySQL... (``pip install pyop[sql]``);
* :class:`StatelessWrapper` -- sealed self-contained tokens.

``StorageBase.from_uri(uri, collection=..., db_name=..., ttl=...)`` picks the
backend from the URI: each backend module registers its URI schemes in
:mod:`pyop.storage.schemes` when imported, and this package imports them all.
The database drivers are imported only when a backend that needs them is
created, so ``import pyop.storage`` needs none of them.
See ``docs/storage.rst``.

The atomic primitives carry the single use of authorization codes and rotated refresh
tokens (RFC 6749 4.1.2, RFC 9700 4.14.2) and of client assertions (RFC 7523 3).
"""

from .base import StorageBase
from .memory import DictStorage, MemoryStorage, as_storage
from .mongo import MongoWrapper
from .redis import RedisWrapper
from .sql import SQLWrapper
from .stateless import StatelessWrapper

__all__ = [
    "StorageBase",
    "MemoryStorage",
    "DictStorage",
    "as_storage",
    "MongoWrapper",
    "RedisWrapper",
    "SQLWrapper",
    "StatelessWrapper",
]
