"""Sealed, self-contained values for :mod:`pyop.aio`: :class:`AsyncStatelessWrapper`.

The value *is* the key (see :mod:`pyop.storage.stateless`: AES-256-GCM under an
HKDF-derived key); only single use and revocation need state, kept in the *replay
cache*: an in-process store by default (no I/O), or any
:class:`~pyop.aio.storage.AsyncStorageBase` shared by the workers (e.g. Redis).
"""

from __future__ import annotations

from typing import Any, Optional

from ...storage.base import StorageBase
from ...storage.stateless import StatelessWrapper
from .base import AsyncStorageBase, GreenletStorage

__all__ = ["AsyncStatelessWrapper"]


class AsyncStatelessWrapper(GreenletStorage):
    """:class:`~pyop.storage.StatelessWrapper` as an :class:`~pyop.aio.storage.AsyncStorageBase`.

    :param collection: the collection name (part of the key derivation).
    :param secret: the sealing secret.
    :param replay_cache: an :class:`~pyop.aio.storage.AsyncStorageBase` for consumed and
        revoked tokens; None: an in-process one.
    :param kwargs: other arguments of :class:`~pyop.storage.StatelessWrapper`.
    """

    def __init__(self, collection: str, secret: Any, *,
                 replay_cache: Optional[AsyncStorageBase] = None, **kwargs: Any) -> None:
        cache = replay_cache.as_sync() if replay_cache is not None else None
        self._adopt(StatelessWrapper(collection, secret, replay_cache=cache, **kwargs),
                    replay_cache)

    @classmethod
    def wrapping(cls, sealed: StatelessWrapper,
                 replay_cache: Optional[AsyncStorageBase] = None) -> AsyncStatelessWrapper:
        """An async store over an existing :class:`~pyop.storage.StatelessWrapper` (whose
        replay cache, when ``replay_cache`` is given, is that async store's view)."""
        if replay_cache is not None:
            sealed.replay_cache = replay_cache.as_sync()
        store = cls.__new__(cls)
        store._adopt(sealed, replay_cache)
        return store

    def _adopt(self, sealed: StatelessWrapper, replay_cache: Optional[AsyncStorageBase]) -> None:
        # no greenlet needed when the replay cache makes no I/O either
        blocking_free = replay_cache is None or (isinstance(replay_cache, GreenletStorage)
                                                 and replay_cache._direct)
        GreenletStorage.__init__(self, sealed, blocking_free=blocking_free)
        self.replay_cache = replay_cache


def _create(db_uri: str, collection: Optional[str], db_name: Optional[str],
            ttl: Optional[float], *, replay_cache: Optional[AsyncStorageBase] = None,
            **kwargs: Any) -> AsyncStatelessWrapper:
    """``AsyncStorageBase.from_uri`` for ``stateless://user:SECRET@host``."""
    sealed = StorageBase.from_uri(db_uri, collection, db_name,
                                  None if ttl is None else int(ttl), **kwargs)
    if not isinstance(sealed, StatelessWrapper):
        raise ValueError("not a stateless:// URI")
    return AsyncStatelessWrapper.wrapping(sealed, replay_cache)
