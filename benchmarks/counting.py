"""Counting storage round trips: a proxy for pyop stores and counters for the drivers.

:class:`CountingStore` wraps a pyop storage (or the plain dict a host passes as
client database) and counts calls to the storage primitives. The benchmark
installs it on the stores of an :class:`~pyop.authz_state.AuthorizationState`
and on ``provider.clients`` for one flow, then puts the real stores back, so
timed runs carry no counting overhead.

:func:`count_server_calls` additionally counts what goes over the wire: SQL
statements and COMMITs (SQLAlchemy engine events) or Redis commands.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from pyop.storage import RedisWrapper, SQLWrapper, StorageBase

__all__ = ["PRIMITIVES", "CountingStore", "counting_stores", "count_server_calls"]

#: The primitives of the storage contract that touch the data.
PRIMITIVES = ("get", "set", "delete", "consume", "compare_and_set", "compare_and_set_then_set",
              "add")


class CountingStore(StorageBase):
    """Delegates to ``inner`` (a :class:`StorageBase` or a plain mapping) and counts calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: collections.Counter[str] = collections.Counter()
        self.ttl = getattr(inner, "ttl", None)

    def _is_store(self) -> bool:
        return isinstance(self.inner, StorageBase)

    def get(self, key: str, default: Any = None) -> Any:
        self.counts["get"] += 1
        return self.inner.get(key, default)

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        self.counts["set"] += 1
        if self._is_store():
            self.inner.set(key, value, expires_at=expires_at)
        else:
            self.inner[key] = value

    def delete(self, key: str) -> bool:
        self.counts["delete"] += 1
        if self._is_store():
            return bool(self.inner.delete(key))
        return self.inner.pop(key, None) is not None

    def consume(self, key: str) -> Any:
        self.counts["consume"] += 1
        if self._is_store():
            return self.inner.consume(key)
        return self.inner.pop(key, None)

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        self.counts["compare_and_set"] += 1
        return bool(self.inner.compare_and_set(key, expected, new, expires_at=expires_at))

    def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                 expires_at: Optional[float], other: StorageBase,
                                 other_key: str, other_value: Any,
                                 other_expires_at: Optional[float] = None) -> bool:
        """Counted once, on this store; the inner stores do it as they would unwrapped
        (in one round trip where the backend can)."""
        self.counts["compare_and_set_then_set"] += 1
        inner_other = other.inner if isinstance(other, CountingStore) else other
        return bool(self.inner.compare_and_set_then_set(
            key, expected, new, expires_at, inner_other, other_key, other_value,
            other_expires_at))

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        self.counts["add"] += 1
        if self._is_store():
            return bool(self.inner.add(key, value, expires_at=expires_at))
        if key in self.inner:
            return False
        self.inner[key] = value
        return True

    def purge_expired(self) -> int:
        self.counts["purge_expired"] += 1
        return int(self.inner.purge_expired()) if self._is_store() else 0

    def close(self) -> None:
        if self._is_store():
            self.inner.close()

    def keys(self) -> Iterator[str]:
        self.counts["keys"] += 1
        return iter(list(self.inner.keys()))

    def __setitem__(self, key: str, value: Any) -> None:
        # Provider.handle_client_registration_request writes ``clients[client_id] = ...``.
        self.set(key, value)


#: Attribute names of the stores of an AuthorizationState.
AUTHZ_STORES = ("authorization_codes", "access_tokens", "refresh_tokens", "subject_identifiers")


@contextlib.contextmanager
def counting_stores(provider: Any) -> Iterator[dict[str, CountingStore]]:
    """Install counting proxies on the provider's client db and authorization state stores.

    Yields ``store name -> CountingStore``; the original stores are restored on exit.
    """
    authz = provider.authz_state
    originals: dict[str, Any] = {name: getattr(authz, name) for name in AUTHZ_STORES}
    original_clients = provider.clients
    proxies = {name: CountingStore(store) for name, store in originals.items()}
    proxies["clients"] = CountingStore(original_clients)
    try:
        for name in AUTHZ_STORES:
            setattr(authz, name, proxies[name])
        provider.clients = proxies["clients"]
        yield proxies
    finally:
        for name, store in originals.items():
            setattr(authz, name, store)
        provider.clients = original_clients


def _unique(stores: Mapping[str, Any]) -> list[Any]:
    seen: dict[int, Any] = {}
    for store in stores.values():
        seen.setdefault(id(store), store)
    return list(seen.values())


@contextlib.contextmanager
def count_server_calls(stores: Mapping[str, Any]) -> Iterator[collections.Counter[str]]:
    """Count what the given stores send to their server while the block runs.

    SQL backends: ``statement`` per cursor execution and ``commit`` per COMMIT of
    an explicit transaction (single statements run in autocommit mode, without one).
    Redis: one entry per command name (``GET``, ``SET``, ``EVALSHA``...).
    In-memory stores send nothing.
    """
    counter: collections.Counter[str] = collections.Counter()
    undo: list[Any] = []
    engines: dict[int, Any] = {}
    clients: dict[int, Any] = {}
    for store in _unique(stores):
        if isinstance(store, SQLWrapper):
            engines.setdefault(id(store._engine), store._engine)
        elif isinstance(store, RedisWrapper):
            clients.setdefault(id(store._client), store._client)
    for client in clients.values():  # stores of one URL may share a client: wrap it once
        original = client.execute_command

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            counter[str(args[0]).upper()] += 1
            return _original(*args, **kwargs)

        client.execute_command = counted
        undo.append(lambda c=client: c.__dict__.pop("execute_command", None))
    if engines:
        from sqlalchemy import event

        def on_execute(*_args: Any) -> None:
            counter["statement"] += 1

        def on_commit(*_args: Any) -> None:
            counter["commit"] += 1

        for engine in engines.values():
            event.listen(engine, "before_cursor_execute", on_execute)
            event.listen(engine, "commit", on_commit)
            undo.append(lambda e=engine: event.remove(e, "before_cursor_execute", on_execute))
            undo.append(lambda e=engine: event.remove(e, "commit", on_commit))
    try:
        yield counter
    finally:
        for restore in undo:
            restore()
