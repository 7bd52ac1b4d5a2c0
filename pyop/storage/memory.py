"""In-process storage: :class:`MemoryStorage` (the reference backend) and
:class:`DictStorage` (adapter for the plain dicts pyop 3 accepted), plus
:func:`as_storage`.

Both are thread-safe within one process (one :class:`threading.Lock` per
store) and neither is shared between processes: use Redis, SQL or MongoDB
when the provider runs in several worker processes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any, Callable, Optional, Union

from .base import MISSING, Clock, StorageBase, canonical_json, check_key, check_ttl

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


class MemoryStorage(StorageBase):
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
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, _Record] = {}
        self._purge_interval = purge_interval
        self._next_purge = clock() + purge_interval

    def __repr__(self) -> str:
        return f"MemoryStorage(ttl={self.ttl!r})"

    # Called with the lock held.
    def _live_raw(self, key: str, now: float) -> Optional[str]:
        record = self._data.get(key)
        if record is None:
            return None
        if type(record) is tuple:
            if record[1] <= now:
                del self._data[key]
                return None
            return record[0]
        return record  # type: ignore[return-value]

    def _store(self, key: str, raw: str, expires_at: Optional[float], now: float) -> None:
        self._data[key] = raw if expires_at is None else (raw, expires_at)
        if now >= self._next_purge:
            self._next_purge = now + self._purge_interval
            removed = self._purge_locked(now)
            if removed:
                logger.debug("MemoryStorage: purged %d expired records", removed)

    def _purge_locked(self, now: float) -> int:
        expired = [k for k, rec in self._data.items() if type(rec) is tuple and rec[1] <= now]
        for key in expired:
            del self._data[key]
        return len(expired)

    def get(self, key: str, default: Any = None) -> Any:
        check_key(key)
        now = self._clock()
        with self._lock:
            raw = self._live_raw(key, now)
        return default if raw is None else _scan_json(raw, 0)[0]

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        with self._lock:
            self._store(key, raw, expiry, now)

    def delete(self, key: str) -> bool:
        check_key(key)
        now = self._clock()
        with self._lock:
            record = self._data.pop(key, None)
        if record is None:
            return False
        return type(record) is not tuple or record[1] > now

    def consume(self, key: str) -> Any:
        check_key(key)
        now = self._clock()
        with self._lock:
            record = self._data.pop(key, None)
        if record is None:
            return None
        if type(record) is tuple:
            if record[1] <= now:
                return None
            return _scan_json(record[0], 0)[0]
        return _scan_json(record, 0)[0]  # type: ignore[arg-type]

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        check_key(key)
        expected_raw = canonical_json(expected)
        new_raw = canonical_json(new)
        now = self._clock()
        with self._lock:
            record = self._data.get(key)
            if record is None:
                return False
            if type(record) is tuple:
                raw, current_expiry = record
                if current_expiry <= now:
                    del self._data[key]
                    return False
            else:
                raw, current_expiry = record, None  # type: ignore[assignment]
            if raw != expected_raw:
                return False
            expiry = current_expiry if expires_at is None else self._resolve_expiry(expires_at, now)
            self._store(key, new_raw, expiry, now)
            return True

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        check_key(key)
        raw = canonical_json(value)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        with self._lock:
            if self._live_raw(key, now) is not None:
                return False
            self._store(key, raw, expiry, now)
            return True

    def purge_expired(self) -> int:
        now = self._clock()
        with self._lock:
            self._next_purge = now + self._purge_interval
            return self._purge_locked(now)

    def close(self) -> None:
        """Nothing to release; the records stay until the object is garbage collected."""

    def keys(self) -> Iterator[str]:
        now = self._clock()
        with self._lock:
            live = [k for k, rec in self._data.items() if type(rec) is not tuple or rec[1] > now]
        return iter(live)

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


class DictStorage(StorageBase):
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
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._purge_interval = purge_interval
        self._next_purge = clock() + purge_interval

    def __repr__(self) -> str:
        return f"DictStorage(<{type(self.mapping).__name__}>, ttl={self.ttl!r})"

    # Called with the lock held.
    def _live(self, key: str, now: float) -> Any:
        expiry = self._expiry.get(key)
        if expiry is not None and expiry <= now:
            del self._expiry[key]
            self.mapping.pop(key, None)
            return MISSING
        return self.mapping.get(key, MISSING)

    def _store(self, key: str, value: Any, expires_at: Optional[float], now: float) -> None:
        self.mapping[key] = value
        if expires_at is None:
            self._expiry.pop(key, None)
        else:
            self._expiry[key] = expires_at
        if now >= self._next_purge:
            self._next_purge = now + self._purge_interval
            self._purge_locked(now)

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

    def get(self, key: str, default: Any = None) -> Any:
        check_key(key)
        now = self._clock()
        with self._lock:
            value = self._live(key, now)
        return default if value is MISSING else value

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        check_key(key)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        with self._lock:
            self._store(key, value, expiry, now)

    def delete(self, key: str) -> bool:
        check_key(key)
        now = self._clock()
        with self._lock:
            expiry = self._expiry.pop(key, None)
            value = self.mapping.pop(key, MISSING)
        return value is not MISSING and (expiry is None or expiry > now)

    def consume(self, key: str) -> Any:
        check_key(key)
        now = self._clock()
        with self._lock:
            expiry = self._expiry.pop(key, None)
            value = self.mapping.pop(key, None)
        if expiry is not None and expiry <= now:
            return None
        return value

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        check_key(key)
        now = self._clock()
        with self._lock:
            current = self._live(key, now)
            if current is MISSING or not _json_equal(current, expected):
                return False
            expiry = (self._expiry.get(key) if expires_at is None
                      else self._resolve_expiry(expires_at, now))
            self._store(key, new, expiry, now)
            return True

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        check_key(key)
        now = self._clock()
        expiry = self._resolve_expiry(expires_at, now)
        with self._lock:
            if self._live(key, now) is not MISSING:
                return False
            self._store(key, value, expiry, now)
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
            live: list[str] = [k for k in list(self.mapping.keys())
                               if self._expiry.get(k, now + 1) > now]
        return iter(live)


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
