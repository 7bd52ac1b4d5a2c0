"""In-process storage: :class:`MemoryStorage` (the reference backend) and
:class:`DictStorage` (adapter for the plain dicts pyop 3 accepted), plus
:func:`as_storage`.

Both are thread-safe within one process (one :class:`threading.Lock` per
store; the operations are written once, in :class:`InProcessStore`, over the
way each keeps its records) and neither is shared between processes: use Redis, SQL or MongoDB
when the provider runs in several worker processes.

The atomic primitives carry the single use of authorization codes and rotated refresh
tokens (RFC 6749 4.1.2, RFC 9700 4.14.2) and of client assertions (RFC 7523 3).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any, Callable, Optional, Union

from .base import MISSING, Clock, StorageBase, canonical_json, check_key, check_ttl
from .schemes import register_backend

__all__ = ["MemoryStorage", "DictStorage", "as_storage"]

logger = logging.getLogger(__name__)

#: A record: the canonical JSON of the value alone when it never expires,
#: else ``(json, expires_at)``. A bare ``str`` saves the tuple for
#: records without expiry; small records cost a key, a str and a tuple.
_Record = Union[str, tuple[str, float]]

#: ``json.loads`` for the records: they are canonical JSON written by this module, a
#: whole JSON text without surrounding whitespace, so the value scanned from the
#: start is the value, without the checks ``json.loads`` makes around it.
_scan_json: Callable[[str, int], tuple[Any, int]] = (
    json.JSONDecoder().scan_once)  # type: ignore[attr-defined]


class InProcessStore(StorageBase):
    """The storage operations of a store kept in this process, under one lock.

    Subclasses say how records are kept: the ``_load``, ``_put``, ``_pop``,
    ``_expiry_of``, ``_purge_locked`` and ``_live_keys`` hooks (called with the lock
    held) and how values are encoded for storage (``_encode``/``_decode``, and
    ``_expected``/``_equal`` for :meth:`compare_and_set`). Expired records are dropped
    lazily when touched and by a sweep run on a write at most every
    ``purge_interval`` seconds of clock time (amortised, no background thread).
    """

    def __init__(self, ttl: Optional[float], clock: Clock, purge_interval: float) -> None:
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._purge_interval = purge_interval
        self._next_purge = clock() + purge_interval

    # -- how records are kept (called with the lock held) -----------------------

    def _load(self, key: str, now: float) -> Any:
        """The stored form of the live record of ``key`` (dropping it if expired), or MISSING."""
        raise NotImplementedError

    def _put(self, key: str, stored: Any, expires_at: Optional[float]) -> None:
        raise NotImplementedError

    def _pop(self, key: str) -> tuple[Any, Optional[float]]:
        """Remove ``key``: its stored form (or MISSING) and its expiry, live or not."""
        raise NotImplementedError

    def _expiry_of(self, key: str) -> Optional[float]:
        raise NotImplementedError

    def _purge_locked(self, now: float) -> int:
        raise NotImplementedError

    def _live_keys(self, now: float) -> list[str]:
        raise NotImplementedError

    # -- how values are kept ----------------------------------------------------

    def _encode(self, value: Any) -> Any:
        return value

    def _decode(self, stored: Any) -> Any:
        return stored

    def _expected(self, value: Any) -> Any:
        """The form of ``compare_and_set``'s expected value that ``_equal`` compares."""
        return value

    def _equal(self, stored: Any, expected: Any) -> bool:
        raise NotImplementedError

    # -- the operations ---------------------------------------------------------

    # Called with the lock held.
    def _store(self, key: str, stored: Any, expires_at: Optional[float], now: float) -> None:
        self._put(key, stored, expires_at)
        if now >= self._next_purge:
            self._next_purge = now + self._purge_interval
            removed = self._purge_locked(now)
            if removed:
                logger.debug("%s: purged %d expired records", type(self).__name__, removed)

    def get(self, key: str, default: Any = None) -> Any:
        check_key(key)
        now = self._clock()
        with self._lock:
            stored = self._load(key, now)
        return default if stored is MISSING else self._decode(stored)

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        check_key(key)
        stored = self._encode(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        with self._lock:
            self._store(key, stored, expiry, now)

    def delete(self, key: str) -> bool:
        check_key(key)
        now = self._clock()
        with self._lock:
            stored, expiry = self._pop(key)
        return stored is not MISSING and (expiry is None or expiry > now)

    def consume(self, key: str) -> Any:
        check_key(key)
        now = self._clock()
        with self._lock:
            stored, expiry = self._pop(key)
        if stored is MISSING or (expiry is not None and expiry <= now):
            return None
        return self._decode(stored)

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        check_key(key)
        expected_form = self._expected(expected)
        new_stored = self._encode(new)
        now = self._clock()
        with self._lock:
            current = self._load(key, now)
            if current is MISSING or not self._equal(current, expected_form):
                return False
            expiry = (self._expiry_of(key) if expires_at is None
                      else self._resolve_expiry(expires_at, now))
            self._store(key, new_stored, expiry, now)
            return True

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        check_key(key)
        stored = self._encode(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        with self._lock:
            if self._load(key, now) is not MISSING:
                return False
            self._store(key, stored, expiry, now)
            return True

    def purge_expired(self) -> int:
        now = self._clock()
        with self._lock:
            self._next_purge = now + self._purge_interval
            return self._purge_locked(now)

    def close(self) -> None:
        """Nothing to release."""

    def keys(self) -> Iterator[str]:
        now = self._clock()
        with self._lock:
            live = self._live_keys(now)
        return iter(live)


class MemoryStorage(InProcessStore):
    """Thread-safe in-process store with per-record expiry (the reference backend).

    Values are kept as canonical JSON strings, which both bounds their size
    (a small dict costs less as JSON text than as a dict object) and gives
    the same copy-on-read/JSON-round-trip semantics as the remote backends.

    Expired records are dropped lazily when touched and by a sweep run on a
    write at most every ``purge_interval`` seconds of clock time (amortised,
    no background thread), so memory does not grow without bound.

    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: returns the current UNIX time; inject a fake one in tests.
    :param purge_interval: seconds of clock time between two sweeps.
    """

    def __init__(self, ttl: Optional[float] = None, *, clock: Clock = time.time,
                 purge_interval: float = 60) -> None:
        super().__init__(ttl, clock, purge_interval)
        self._data: dict[str, _Record] = {}

    def __repr__(self) -> str:
        return f"MemoryStorage(ttl={self.ttl!r})"

    def get(self, key: str, default: Any = None) -> Any:
        # InProcessStore.get with its hooks inlined (the most frequent operation); the
        # clock is read only for a record that expires
        if type(key) is not str:
            check_key(key)
        with self._lock:
            record = self._data.get(key)
            if record is None:
                return default
            if type(record) is tuple:
                if record[1] <= self._clock():
                    del self._data[key]
                    return default
                text: str = record[0]
            else:
                text = record  # type: ignore[assignment]
        return _scan_json(text, 0)[0]

    def _set_encoded(self, key: str, text: str,
                           expires_at: Optional[float] = None) -> None:
        """:meth:`set` of the value whose :func:`canonical_json` is ``text``, already
        computed by the caller (who keeps it too, e.g. in a cache): the same record."""
        check_key(key)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        with self._lock:
            self._store(key, text, expiry, now)

    def _load(self, key: str, now: float) -> Any:
        record = self._data.get(key)
        if record is None:
            return MISSING
        if type(record) is tuple:
            if record[1] <= now:
                del self._data[key]
                return MISSING
            return record[0]
        return record

    def _put(self, key: str, stored: Any, expires_at: Optional[float]) -> None:
        self._data[key] = stored if expires_at is None else (stored, expires_at)

    def _pop(self, key: str) -> tuple[Any, Optional[float]]:
        record = self._data.pop(key, None)
        if record is None:
            return MISSING, None
        if type(record) is tuple:
            return record
        return record, None

    def _expiry_of(self, key: str) -> Optional[float]:
        record = self._data.get(key)
        return record[1] if type(record) is tuple else None

    def _purge_locked(self, now: float) -> int:
        expired = [k for k, rec in self._data.items() if type(rec) is tuple and rec[1] <= now]
        for key in expired:
            del self._data[key]
        return len(expired)

    def _live_keys(self, now: float) -> list[str]:
        return [k for k, rec in self._data.items() if type(rec) is not tuple or rec[1] > now]

    def _encode(self, value: Any) -> str:
        return canonical_json(value)

    def _decode(self, stored: Any) -> Any:
        return _scan_json(stored, 0)[0]

    def _expected(self, value: Any) -> str:
        return canonical_json(value)

    def _equal(self, stored: Any, expected: Any) -> bool:
        return bool(stored == expected)

    def close(self) -> None:
        """Nothing to release; the records stay until the object is garbage collected."""

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for rec in self._data.values() if type(rec) is not tuple or rec[1] > now)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality (equal canonical JSON); Python ``==`` for non-JSON values."""
    try:
        return canonical_json(a) == canonical_json(b)
    except (TypeError, ValueError):
        return bool(a == b)


class DictStorage(InProcessStore):
    """Adapter giving a plain ``dict`` (or any ``MutableMapping``) the storage contract.

    pyop 3 accepted plain dicts as stores; hosts that still pass one keep
    reading it back as before: values are stored in the mapping *as is*
    (no envelope, no copy). Expiry times live in a side dict on the adapter,
    so records written by the host directly never expire.

    Atomicity holds between users of this adapter (one lock per adapter;
    ``consume`` uses ``dict.pop``), not against the host writing to the
    mapping concurrently.

    :param mapping: the mapping to wrap; a new dict when omitted.
    :param ttl: default lifetime in seconds for writes without ``expires_at``.
    :param clock: returns the current UNIX time.
    :param purge_interval: seconds of clock time between two sweeps.
    """

    def __init__(self, mapping: Optional[MutableMapping[str, Any]] = None,
                 ttl: Optional[float] = None, *, clock: Clock = time.time,
                 purge_interval: float = 60) -> None:
        self.mapping: MutableMapping[str, Any] = {} if mapping is None else mapping
        super().__init__(ttl, clock, purge_interval)
        self._expiry: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"DictStorage(<{type(self.mapping).__name__}>, ttl={self.ttl!r})"

    def _load(self, key: str, now: float) -> Any:
        expiry = self._expiry.get(key)
        if expiry is not None and expiry <= now:
            del self._expiry[key]
            self.mapping.pop(key, None)
            return MISSING
        return self.mapping.get(key, MISSING)

    def _put(self, key: str, stored: Any, expires_at: Optional[float]) -> None:
        self.mapping[key] = stored
        if expires_at is None:
            self._expiry.pop(key, None)
        else:
            self._expiry[key] = expires_at

    def _pop(self, key: str) -> tuple[Any, Optional[float]]:
        expiry = self._expiry.pop(key, None)
        return self.mapping.pop(key, MISSING), expiry

    def _expiry_of(self, key: str) -> Optional[float]:
        return self._expiry.get(key)

    def _purge_locked(self, now: float) -> int:
        removed = 0
        for key, expiry in list(self._expiry.items()):
            if key not in self.mapping:
                del self._expiry[key]  # the host removed it directly
            elif expiry <= now:
                del self._expiry[key]
                del self.mapping[key]
                removed += 1
        return removed

    def _live_keys(self, now: float) -> list[str]:
        return [k for k in list(self.mapping.keys()) if self._expiry.get(k, now + 1) > now]

    def _equal(self, stored: Any, expected: Any) -> bool:
        return _json_equal(stored, expected)


def as_storage(obj: Union[StorageBase, MutableMapping[str, Any], None]) -> StorageBase:
    """Return ``obj`` as a :class:`StorageBase`.

    A :class:`StorageBase` is returned unchanged; a plain ``dict`` (or any
    ``MutableMapping``) is wrapped in :class:`DictStorage` so the host can
    keep reading it; ``None`` gives a fresh :class:`MemoryStorage`.

    :raises TypeError: anything else.
    """
    if isinstance(obj, StorageBase):
        return obj
    if obj is None:
        return MemoryStorage()
    if isinstance(obj, MutableMapping):
        return DictStorage(obj)
    raise TypeError(f"expected a StorageBase, a dict or None, not {type(obj).__name__}")


def _create(db_uri: str, collection: Optional[str], db_name: Optional[str],
            ttl: Optional[float], **kwargs: Any) -> MemoryStorage:
    """``StorageBase.from_uri`` for ``memory://`` (no collection needed)."""
    return MemoryStorage(ttl=ttl, **kwargs)


register_backend("memory", _create, frozenset({"memory"}), needs_collection=False)
