"""A small in-process cache: bounded (least recently used first out), entries expire.

No protocol of its own: the caches it serves (clients, subject identifiers, issued codes
and access tokens) say which specification allows them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Optional, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A thread-safe LRU of at most ``max_size`` entries, each kept ``ttl`` seconds.

    :param clock: returns the current time in seconds (injected, e.g. the provider's clock).
    """

    def __init__(self, ttl: float, max_size: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> Optional[V]:
        """The cached value, or None (absent, or stored ``ttl`` seconds ago or more)."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, value: V, expires_at: Optional[float] = None) -> None:
        """Store ``value`` for ``ttl`` seconds from now (or until ``expires_at``, if that is
        sooner), dropping the least recently used entries beyond ``max_size``."""
        expires = self.clock() + self.ttl
        if expires_at is not None and expires_at < expires:
            expires = expires_at
        with self._lock:
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        """Forget ``key`` (no error if absent)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
