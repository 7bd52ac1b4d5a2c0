"""A store proxy for tests: delegates every primitive to a real store, calling
:meth:`ProxyStore.before` with the primitive's name first (to fail it, observe it, or run
something else at that point)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

from pyop.storage import StorageBase

__all__ = ["ProxyStore"]


class ProxyStore(StorageBase):
    """Delegates to ``inner``; :meth:`before` runs ahead of each primitive call.

    ``compare_and_set_then_set`` is not delegated: the default of
    :class:`~pyop.storage.StorageBase` makes it of the proxied primitives.
    """

    def __init__(self, inner: StorageBase) -> None:
        self.inner = inner
        self.ttl = inner.ttl

    def before(self, operation: str) -> None:
        """Called with ``"get"``, ``"set"``, ``"delete"``, ``"consume"``,
        ``"compare_and_set"`` or ``"add"`` before the call reaches ``inner``."""

    def get(self, key: str, default: Any = None) -> Any:
        self.before("get")
        return self.inner.get(key, default)

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        self.before("set")
        self.inner.set(key, value, expires_at=expires_at)

    def delete(self, key: str) -> bool:
        self.before("delete")
        return self.inner.delete(key)

    def consume(self, key: str) -> Any:
        self.before("consume")
        return self.inner.consume(key)

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        self.before("compare_and_set")
        return self.inner.compare_and_set(key, expected, new, expires_at=expires_at)

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        self.before("add")
        return self.inner.add(key, value, expires_at=expires_at)

    def purge_expired(self) -> int:
        return self.inner.purge_expired()

    def close(self) -> None:
        self.inner.close()

    def keys(self) -> Iterator[str]:
        return self.inner.keys()
