"""A refresh racing the revocation of its grant, on each storage backend (RFC 7009 2.1).

The deterministic interleavings of ``tests/test_grant_revocation_races.py`` (the revocation
at every point of a refresh, the refresh at every point of a revocation) run here over the
stores of each backend, whose ``consume``, ``compare_and_set`` and ``add`` they rely on;
then threads, each with an ``AuthorizationState`` and connections of its own as separate
worker processes would have, race one revocation against three refreshes of the same
grant, round after round. Afterwards nothing of any grant is live.
"""

from __future__ import annotations

import threading

import pytest
from support.grants import (
    AUTH_REQ,
    CLIENT_ID,
    Grant,
    HookedStore,
    Interleaving,
    Jitter,
    refresh_at_every_point_of_a_revocation,
    revocation_at_every_point_of_a_refresh,
)
from support.races import race

from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAccessToken, InvalidRefreshToken
from pyop.storage import MemoryStorage, StorageBase
from pyop.storage.base import canonical_json
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

from .conftest import Backend, backend_params

#: memory, an SQL file, PostgreSQL, Redis and MongoDB (mongomock, made atomic per document)
GRANT_BACKENDS = ["memory", "sqlite", "postgresql", "redis", "mongomock"]
ROUNDS = 20
THREADS = 4

pytestmark = pytest.mark.parametrize("race_backend", backend_params(GRANT_BACKENDS),
                                     indirect=True)


def _pair(backend: Backend) -> tuple[StorageBase, StorageBase]:
    return backend.make(), backend.make()


def _assert_no_usable_token(state: AuthorizationState, access: StorageBase,
                            refresh: StorageBase) -> None:
    """What the stores still hold (the grants' revocation marks, token records refused by
    them, rotated records) is refused, and expires by itself."""
    for key in list(access.keys()):
        if not key.startswith("grant:"):
            with pytest.raises(InvalidAccessToken):
                state.get_access_token(key)
    for key in list(refresh.keys()):
        assert state.get_refresh_token(key) is None


@pytest.mark.parametrize("chained", [False, True], ids=["revoke-this", "revoke-ancestor"])
@pytest.mark.parametrize("rotate", [False, True], ids=["no-rotation", "rotation"])
def test_revocation_at_every_point_of_a_refresh(race_backend: Backend, rotate: bool,
                                                chained: bool) -> None:
    stores = _pair(race_backend)
    outcomes = revocation_at_every_point_of_a_refresh(
        lambda: Grant(race_backend.now, stores=stores), rotate, chained)
    assert outcomes[0] is False and outcomes[-1] is True
    assert outcomes == sorted(outcomes)


@pytest.mark.parametrize("chained", [False, True], ids=["revoke-this", "revoke-ancestor"])
@pytest.mark.parametrize("rotate", [False, True], ids=["no-rotation", "rotation"])
def test_refresh_at_every_point_of_a_revocation(race_backend: Backend, rotate: bool,
                                                chained: bool) -> None:
    stores = _pair(race_backend)
    assert refresh_at_every_point_of_a_revocation(
        lambda: Grant(race_backend.now, stores=stores), rotate, chained) >= 3


def _thread_stores(backend: Backend, first: StorageBase) -> list[StorageBase]:
    """A store per thread over ``first``'s collection (one shared store for memory)."""
    if backend.name == "memory":
        return [first] * THREADS
    collection = first.collection  # type: ignore[attr-defined]
    return [first] + [backend.make(collection=collection) for _ in range(THREADS - 1)]


def test_thread_race_refreshes_and_revocation(race_backend: Backend) -> None:
    """Each round, on a fresh grant: one thread revokes its refresh token while three use
    it (one rotating), each thread with an AuthorizationState of its own."""
    access_first, refresh_first = _pair(race_backend)
    access = _thread_stores(race_backend, access_first)
    refresh = _thread_stores(race_backend, refresh_first)
    states = []
    for i in range(THREADS):
        jitter = Jitter(i)
        hooked_access, hooked_refresh = (HookedStore("access", access[i]),
                                         HookedStore("refresh", refresh[i]))
        hooked_access.interleaving = hooked_refresh.interleaving = jitter
        states.append(AuthorizationState(
            HashBasedSubjectIdentifierFactory("salt"), MemoryStorage(), hooked_access,
            hooked_refresh, clock=race_backend.now, refresh_token_lifetime=3600,
            access_token_lifetime=600))
    grants: list[str] = []
    issued: list[str] = []
    for _ in range(ROUNDS):
        code = states[0].create_authorization_code(AUTH_REQ, "sub-1", "alice", ["openid"])
        first, refresh_token = states[0].redeem_authorization_code(
            code, states[0].get_authorization_code(code))
        assert refresh_token is not None
        grants.append(refresh_token)
        issued += [first.value, refresh_token]
    roles = [0] * ROUNDS
    lock = threading.Lock()

    def operation(r: int) -> str:
        with lock:
            role, roles[r] = roles[r], roles[r] + 1
        state = states[role]
        if role == 0:
            state.revoke_refresh_token(grants[r])
            return "revoked"
        try:
            access_token, new, _ = state.use_refresh_token(grants[r], CLIENT_ID,
                                                           rotate=role == 1)
        except InvalidRefreshToken:
            return "refused"
        with lock:
            issued.append(access_token.value)
            if new is not None:
                issued.append(new)
        return "refreshed"

    results = race(operation, rounds=ROUNDS, threads=THREADS)
    for outcomes in results:
        assert outcomes.count("revoked") == 1, outcomes
    check = states[0]
    _assert_no_usable_token(check, access_first, refresh_first)
    for value in issued:
        with pytest.raises(InvalidAccessToken):
            check.get_access_token(value)
        with pytest.raises(InvalidRefreshToken):
            check.use_refresh_token(value, CLIENT_ID)


#: Refreshes of one refresh token before its record and its revocation are measured again.
REFRESHES = 200


def test_grant_record_and_revocation_constant_on_the_backend(race_backend: Backend) -> None:
    """On each backend: after 200 refreshes the refresh token's stored record is the one
    stored after the first (not rewritten, same bytes), and its revocation makes the same
    storage calls as after one refresh; every token of the grant is refused after it."""

    def measure(refreshes: int) -> list[tuple[str, str]]:
        access, refresh = _pair(race_backend)
        grant = Grant(race_backend.now, stores=(access, refresh))
        token = grant.chain[0]
        first_size = 0
        for n in range(refreshes):
            result = grant.refresh_now(rotate=False)
            assert result is not None
            if n == 0:
                first_size = len(canonical_json(refresh.get(token)).encode())
        assert len(canonical_json(refresh.get(token)).encode()) == first_size
        probe = Interleaving()
        grant.observe(probe)
        grant.state.revoke_refresh_token(token)
        grant.assert_dead()
        return probe.calls

    one = measure(1)
    assert one == measure(REFRESHES)
    assert len(one) == 4
