"""Helpers for the races between a refresh and the revocation of its grant.

:class:`HookedStore` wraps a store and reports each primitive call to an
:class:`Interleaving`, which can run another operation just before a chosen call;
:class:`Grant` is an ``AuthorizationState`` over two hooked stores with one grant issued
from an authorization code, and checks that nothing of it is left.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from pyop.access_token import AccessToken
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAccessToken, InvalidRefreshToken
from pyop.storage import MemoryStorage, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

from .stores import ProxyStore

__all__ = ["AUTH_REQ", "CLIENT_ID", "Grant", "HookedStore", "Interleaving", "Jitter",
           "refresh_at_every_point_of_a_revocation", "refresh_calls", "refresh_into",
           "revocation_at_every_point_of_a_refresh"]

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


class HookedStore(ProxyStore):
    """Delegates to ``inner`` and reports each primitive call to ``interleaving`` first."""

    def __init__(self, name: str, inner: StorageBase) -> None:
        super().__init__(inner)
        self.name = name
        self.interleaving = Interleaving()

    def before(self, operation: str) -> None:
        self.interleaving.step(self.name, operation)


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
        """Nothing of the grant is live: no token issued to the client is accepted
        anywhere, and the stores hold no usable token (what they still hold -- the grant's
        revocation mark, token records refused by it -- expires by itself)."""
        self.observe(Interleaving())
        marks = ("grant:", "logout:")
        for key in list(self.access.inner.keys()):
            if not key.startswith(marks):
                with pytest.raises(InvalidAccessToken):
                    self.state.get_access_token(key)
        for key in list(self.refresh.inner.keys()):
            if not key.startswith(marks):
                assert self.state.get_refresh_token(key) is None
        assert any(key.startswith("grant:") for key in self.access.inner.keys())
        for value in self.issued:
            with pytest.raises(InvalidAccessToken):
                self.state.get_access_token(value)
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


def revocation_at_every_point_of_a_refresh(make_grant: Callable[[], Grant], rotate: bool,
                                           chained: bool) -> list[bool]:
    """Revoke a grant's first refresh token before each storage call of a refresh (and
    after the last), each time on a new grant from ``make_grant``; check that nothing of
    the grant survives. Returns, per point, whether the refresh was answered.

    With ``chained`` the grant was rotated once before: the revocation reaches the token
    being used through the chain.
    """
    outcomes = []
    at = 0
    while True:
        grant = make_grant()
        if chained:
            grant.rotate_once()
        interleaving = Interleaving(at, functools.partial(grant.state.revoke_refresh_token,
                                                          grant.chain[0]))
        grant.observe(interleaving)
        outcomes.append(grant.refresh_now(rotate) is not None)
        calls = len(interleaving.calls)
        interleaving.finish()
        assert interleaving.fired
        grant.assert_dead()
        if at >= calls:
            return outcomes
        at += 1


def refresh_at_every_point_of_a_revocation(make_grant: Callable[[], Grant], rotate: bool,
                                           chained: bool) -> int:
    """Refresh a grant before each storage call of the revocation of its first refresh
    token (and after the last), each time on a new grant from ``make_grant``; check that
    nothing of the grant survives. Returns how many points were tried."""
    at = 0
    while True:
        grant = make_grant()
        if chained:
            grant.rotate_once()
        results: list[Any] = []
        interleaving = Interleaving(at, refresh_into(results, grant, rotate))
        grant.observe(interleaving)
        grant.state.revoke_refresh_token(grant.chain[0])
        calls = len(interleaving.calls)
        interleaving.finish()
        assert interleaving.fired and len(results) == 1
        grant.assert_dead()
        if at >= calls:
            return at + 1
        at += 1
