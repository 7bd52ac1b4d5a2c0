"""The storage contract suite against the async backends of :mod:`pyop.aio.storage`.

:class:`LoopDriven` is a :class:`~pyop.storage.StorageBase` whose every primitive runs
the async store's coroutine to completion on an event loop of its own, so that each
test of the (synchronous) contract suite runs unchanged against an async backend.
Concurrency of async stores is tested with tasks on one loop (tests/storage/test_async_races.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, Optional, TypeVar

from pyop.aio.storage import AsyncStorageBase
from pyop.storage import StorageBase

T = TypeVar("T")


class LoopDriven(StorageBase):
    """A synchronous face of ``store``: every call runs on ``loop`` until done."""

    def __init__(self, store: AsyncStorageBase, loop: asyncio.AbstractEventLoop) -> None:
        self.async_store = store
        self.loop = loop
        self.ttl = store.ttl

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def get(self, key: str, default: Any = None) -> Any:
        return self._run(self.async_store.get(key, default))

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        self._run(self.async_store.set(key, value, expires_at))

    def delete(self, key: str) -> bool:
        return self._run(self.async_store.delete(key))

    def consume(self, key: str) -> Any:
        return self._run(self.async_store.consume(key))

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        return self._run(self.async_store.compare_and_set(key, expected, new, expires_at))

    def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                 expires_at: Optional[float], other: StorageBase,
                                 other_key: str, other_value: Any,
                                 other_expires_at: Optional[float] = None) -> bool:
        if not isinstance(other, LoopDriven):  # a synchronous store: the contract's default
            return super().compare_and_set_then_set(key, expected, new, expires_at, other,
                                                    other_key, other_value, other_expires_at)
        return self._run(self.async_store.compare_and_set_then_set(
            key, expected, new, expires_at, other.async_store, other_key, other_value,
            other_expires_at))

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        return self._run(self.async_store.add(key, value, expires_at))

    def purge_expired(self) -> int:
        return self._run(self.async_store.purge_expired())

    def close(self) -> None:
        self._run(self.async_store.close())

    def keys(self) -> Iterator[str]:
        async def collect() -> list[str]:
            return [key async for key in self.async_store.keys()]

        return iter(self._run(collect()))


def new_loop() -> asyncio.AbstractEventLoop:
    """An event loop for one backend under test (closed by the backend's ``close``)."""
    return asyncio.new_event_loop()
