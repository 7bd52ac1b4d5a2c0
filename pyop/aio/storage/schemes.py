"""``AsyncStorageBase.from_uri``: the async backend of each URI scheme.

The schemes are those of :mod:`pyop.storage.schemes` (one list); each kind's async
backend module is imported only when a store of that kind is created, so that
``import pyop.aio`` needs none of the drivers.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

from ...storage.base import StorageBase

__all__ = ["create"]

#: kind (as :meth:`StorageBase.type` names it) -> module whose ``_create`` builds it
_MODULES = {
    "memory": "pyop.aio.storage.memory",
    "stateless": "pyop.aio.storage.stateless",
    "redis": "pyop.aio.storage.redis",
    "mongodb": "pyop.aio.storage.mongo",
    "sql": "pyop.aio.storage.sql",
}

#: kinds that need no collection name
_NO_COLLECTION = frozenset({"memory"})


def create(db_uri: str, collection: Optional[str], db_name: Optional[str],
           ttl: Optional[float], **kwargs: Any) -> Any:
    """Create the async store of ``db_uri`` (see
    :meth:`~pyop.aio.storage.AsyncStorageBase.from_uri`, which this module is below)."""
    kind = StorageBase.type(db_uri)
    if collection is None and kind not in _NO_COLLECTION:
        raise ValueError(f"a collection name is required for {kind} storage")
    module = importlib.import_module(_MODULES[kind])
    return module._create(db_uri, collection, db_name, ttl, **kwargs)
