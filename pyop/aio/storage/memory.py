"""In-process async storage: :class:`AsyncMemoryStorage`.

The records live in a :class:`pyop.storage.MemoryStorage` (same semantics, same
atomic primitives); no I/O, so its operations never wait. One process only: use
Redis, SQL or MongoDB when the provider runs in several workers.
"""

from __future__ import annotations

from typing import Any, Optional

from ...storage.memory import MemoryStorage
from .base import GreenletStorage

__all__ = ["AsyncMemoryStorage"]


class AsyncMemoryStorage(GreenletStorage):
    """:class:`~pyop.storage.MemoryStorage` as an :class:`~pyop.aio.storage.AsyncStorageBase`.

    :param ttl: default lifetime of records written without ``expires_at``.
    :param kwargs: other arguments of :class:`~pyop.storage.MemoryStorage` (``clock=``).
    """

    def __init__(self, ttl: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(MemoryStorage(ttl=ttl, **kwargs), blocking_free=True)


def _create(db_uri: str, collection: Optional[str], db_name: Optional[str],
            ttl: Optional[float], **kwargs: Any) -> AsyncMemoryStorage:
    """``AsyncStorageBase.from_uri`` for ``memory://``."""
    return AsyncMemoryStorage(ttl=ttl, **kwargs)
