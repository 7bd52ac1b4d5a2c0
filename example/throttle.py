"""Login throttling: slows password guessing per account and per client address.

Every password check costs a full key derivation (PBKDF2, about a third of a second of
CPU), so guessing is slowed by refusing attempts *before* the check:

* per account and per client address, the first failures are free
  (:data:`FREE_FAILURES_PER_ACCOUNT`, :data:`FREE_FAILURES_PER_ADDRESS`); each further
  failure doubles the wait before the next attempt, from :data:`FIRST_DELAY` up to
  :data:`MAX_DELAY`. A failure record is forgotten :data:`FORGET_AFTER` seconds after
  its last failure, and a successful login forgets its account's record.
* at most :data:`MAX_CONCURRENT_CHECKS` password checks run at once, whoever asks: a
  guessing run spread over many addresses and accounts cannot take every CPU.

IPv6 clients are counted per /64 network (one end site usually holds a whole /64).
Behind a reverse proxy, make ``request.remote_addr`` the client's address (Werkzeug's
``ProxyFix``), or every client shares the proxy's count.

The tables are bounded: at most :data:`MAX_ENTRIES` records each, the least recently
used dropped first, and accounts are keyed by a hash of the name (a long name costs no
more memory than a short one).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["LoginThrottle", "FREE_FAILURES_PER_ACCOUNT", "FREE_FAILURES_PER_ADDRESS",
           "FIRST_DELAY", "MAX_DELAY", "FORGET_AFTER", "MAX_ENTRIES", "MAX_CONCURRENT_CHECKS"]

#: Failed logins to one account before it is slowed down.
FREE_FAILURES_PER_ACCOUNT = 5
#: Failed logins from one address (or IPv6 /64) before it is slowed down: more than per
#: account, as many users may share one address (NAT).
FREE_FAILURES_PER_ADDRESS = 20
#: Seconds to wait after the first failure beyond the free ones; doubles with each one.
FIRST_DELAY = 1.0
#: The longest wait between two attempts, in seconds (15 minutes).
MAX_DELAY = 15 * 60.0
#: Seconds after its last failure when a record is forgotten (one hour).
FORGET_AFTER = 60 * 60.0
#: Records kept per table (accounts, addresses); the least recently used go first.
MAX_ENTRIES = 10_000
#: Password checks running at the same time, at most.
MAX_CONCURRENT_CHECKS = 2


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class _FailureTable:
    """Failure records by key, bounded in size (LRU) and forgotten after a while."""

    def __init__(self, free_failures: int, max_entries: int) -> None:
        self.free_failures = free_failures
        self.max_entries = max_entries
        self._records: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _get(self, key: str, now: float) -> Optional[_Failures]:
        record = self._records.get(key)
        if record is not None and now - record.last_failure > FORGET_AFTER:
            del self._records[key]
            return None
        return record

    def wait(self, key: str, now: float) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        record = self._get(key, now)
        return max(0.0, record.blocked_until - now) if record is not None else 0.0

    def fail(self, key: str, now: float) -> None:
        record = self._get(key, now) or _Failures()
        record.count += 1
        record.last_failure = now
        beyond = record.count - self.free_failures
        if beyond > 0:
            record.blocked_until = now + min(MAX_DELAY, FIRST_DELAY * 2 ** min(beyond - 1, 32))
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    def forget(self, key: str) -> None:
        self._records.pop(key, None)


def address_key(address: Optional[str]) -> str:
    """The throttling key of a client address: the address, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def account_key(username: str) -> str:
    """The throttling key of an account name: a fixed-size hash of it."""
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


class LoginThrottle:
    """Decides whether a login attempt may check its password, and records the outcome.

    Use :meth:`retry_after` before the password check (refuse when it is not 0), then
    :meth:`check` around the check itself, then :meth:`failed` or :meth:`succeeded`.

    :param clock: monotonic seconds (tests pass a fake one).
    :param max_entries: records kept per table.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES,
                 max_concurrent_checks: int = MAX_CONCURRENT_CHECKS) -> None:
        self.clock = clock
        self.accounts = _FailureTable(FREE_FAILURES_PER_ACCOUNT, max_entries)
        self.addresses = _FailureTable(FREE_FAILURES_PER_ADDRESS, max_entries)
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(max_concurrent_checks)

    def retry_after(self, username: str, address: Optional[str]) -> int:
        """Whole seconds before this account may be tried from this address (0: now)."""
        now = self.clock()
        with self._lock:
            wait = max(self.accounts.wait(account_key(username), now),
                       self.addresses.wait(address_key(address), now))
        return math.ceil(wait)

    def begin_check(self) -> bool:
        """Take one of the password check slots; False when all are busy (the caller
        refuses the attempt). Release it with :meth:`end_check`."""
        return self._checks.acquire(blocking=False)

    def end_check(self) -> None:
        self._checks.release()

    def failed(self, username: str, address: Optional[str]) -> None:
        """Record a wrong password (or unknown account) for both the account and the address."""
        now = self.clock()
        with self._lock:
            self.accounts.fail(account_key(username), now)
            self.addresses.fail(address_key(address), now)

    def succeeded(self, username: str) -> None:
        """A successful login forgets the account's failures (not the address's: one's own
        account must not reset a guessing run on others)."""
        with self._lock:
            self.accounts.forget(account_key(username))
