"""Helpers for the races between a refresh and the revocation of its grant.

:class:`HookedStore` wraps a store and reports each primitive call to an
:class:`Interleaving`, which can run another operation just before a chosen call;
:class:`Grant` is an ``AuthorizationState`` over two hooked stores with one grant issued
from an authorization code, and checks that nothing of it is left.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from pyop.access_token import AccessToken
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAccessToken, InvalidRefreshToken
from pyop.storage import MemoryStorage, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

__all__ = ["AUTH_REQ", "CLIENT_ID", "Grant", "HookedStore", "Interleaving", "Jitter",
           "refresh_calls", "refresh_into"]

CLIENT_ID = "client1"
USER_ID = "alice"
AUTH_REQ = {"client_id": CLIENT_ID, "redirect_uri": "https://rp.example.com/cb",
            "response_type": "code", "scope": "openid email", "nonce": "n"}
CACHE_TTL = 60.0


class Interleaving:
    """Observes the storage calls of an operation; runs ``action`` once, just before the
    call numbered ``at`` (0-based), or after the last one with :meth:`finish`.

    The action's own storage calls are neither observed nor counted.
    """

    def __init__(self, at: Optional[int] = None,
                 action: Optional[Callable[[], None]] = None) -> None:
        self.at = at
        self.action = action
        self.calls: list[tuple[str, str]] = []
        self.fired = False
        self._running = False

    def step(self, store: str, operation: str) -> None:
        if self._running:
            return
        if self.at == len(self.calls):
            self._fire()
        self.calls.append((store, operation))

    def finish(self) -> None:
        """Fire now if the action was scheduled after the last call."""
        if self.at == len(self.calls):
            self._fire()

    def _fire(self) -> None:
        if self.fired or self.action is None:
            return
        self.fired = True
        self._running = True
        try:
            self.action()
        finally:
            self._running = False


class HookedStore(StorageBase):
    """Delegates to ``inner`` and reports each primitive call to ``interleaving`` first."""

    def __init__(self, name: str, inner: StorageBase) -> None:
        self.name = name
        self.inner = inner
        self.interleaving = Interleaving()
        self.ttl = inner.ttl

    def _step(self, operation: str) -> None:
        self.interleaving.step(self.name, operation)

    def get(self, key: str, default: Any = None) -> Any:
        self._step("get")
        return self.inner.get(key, default)

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        self._step("set")
        self.inner.set(key, value, expires_at=expires_at)

    def delete(self, key: str) -> bool:
        self._step("delete")
        return self.inner.delete(key)

    def consume(self, key: str) -> Any:
        self._step("consume")
        return self.inner.consume(key)

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        self._step("compare_and_set")
        return self.inner.compare_and_set(key, expected, new, expires_at=expires_at)

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        self._step("add")
        return self.inner.add(key, value, expires_at=expires_at)

    def purge_expired(self) -> int:
        return self.inner.purge_expired()

    def close(self) -> None:
        self.inner.close()

    def keys(self) -> Iterator[str]:
        return self.inner.keys()


@dataclass
class Grant:
    """An AuthorizationState over hooked stores, and one grant issued from a code.

    The stores are new memory stores (one for both kinds with ``shared``), or
    ``stores`` (access, refresh): stores of a backend, empty when the grant is made.
    """

    clock: Callable[[], float]
    cache: bool = False
    shared: bool = False
    stores: Optional[tuple[StorageBase, StorageBase]] = None
    access: HookedStore = field(init=False)
    refresh: HookedStore = field(init=False)
    state: AuthorizationState = field(init=False)
    first_access: str = field(init=False)
    #: the grant's refresh tokens, oldest first (more than one once rotated)
    chain: list[str] = field(init=False)
    #: every token value issued to the client from this grant
    issued: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.stores is not None:
            inner_access, inner_refresh = self.stores
        else:
            inner_access = MemoryStorage(clock=self.clock)
            inner_refresh = inner_access if self.shared else MemoryStorage(clock=self.clock)
        self.access = HookedStore("access", inner_access)
        self.refresh = HookedStore("refresh", inner_refresh)
        self.state = AuthorizationState(
            HashBasedSubjectIdentifierFactory("salt"), clock=self.clock,
            access_token_db=self.access, refresh_token_db=self.refresh,
            refresh_token_lifetime=3600, access_token_lifetime=600,
            access_token_cache_ttl=CACHE_TTL if self.cache else None)
        code = self.state.create_authorization_code(AUTH_REQ, "sub-1", USER_ID,
                                                    ["openid", "email"])
        access, refresh = self.state.redeem_authorization_code(
            code, self.state.get_authorization_code(code))
        assert refresh is not None
        self.first_access, self.chain = access.value, [refresh]
        self.issued += [access.value, refresh]

    def rotate_once(self) -> None:
        """Use the current refresh token with rotation: the chain grows by one."""
        access, new, _ = self.state.use_refresh_token(self.chain[-1], CLIENT_ID, rotate=True)
        assert new is not None
        self.chain.append(new)
        self.issued += [access.value, new]

    def observe(self, interleaving: Interleaving) -> None:
        self.access.interleaving = self.refresh.interleaving = interleaving

    def refresh_now(self, rotate: bool) -> Optional[tuple[AccessToken, Optional[str]]]:
        """Use the newest refresh token; its tokens, or None if refused."""
        try:
            access, new, _ = self.state.use_refresh_token(self.chain[-1], CLIENT_ID,
                                                          rotate=rotate)
        except InvalidRefreshToken:
            return None
        self.issued.append(access.value)
        if new is not None:
            self.issued.append(new)
        return access, new

    def assert_dead(self) -> None:
        """Nothing of the grant is live: the stores are empty, and no token issued to the
        client is accepted anywhere."""
        self.observe(Interleaving())
        assert list(self.access.inner.keys()) == []
        assert list(self.refresh.inner.keys()) == []
        for value in self.issued:
            with pytest.raises(InvalidAccessToken):
                self.state.introspect_access_token(value)
            with pytest.raises(InvalidRefreshToken):
                self.state.use_refresh_token(value, CLIENT_ID)


def refresh_into(results: list[Any], grant: Grant, rotate: bool) -> Callable[[], None]:
    """An action refreshing ``grant`` and appending the outcome to ``results``."""
    return lambda: results.append(grant.refresh_now(rotate))


def refresh_calls(clock: Callable[[], float], rotate: bool, chained: bool, **options: Any) -> int:
    """How many storage calls a refresh makes (with nothing racing it)."""
    grant = Grant(clock, **options)
    if chained:
        grant.rotate_once()
    probe = Interleaving()
    grant.observe(probe)
    assert grant.refresh_now(rotate) is not None
    return len(probe.calls)


class Jitter(Interleaving):
    """Lets another thread run before every storage call (memory stores are otherwise too
    fast, under the GIL, for the threads to interleave inside a refresh)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def step(self, store: str, operation: str) -> None:
        with self._lock:
            pause = self._random.random() * 0.002
        time.sleep(pause)
