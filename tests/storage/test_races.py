"""Atomicity under concurrency, per backend (RFC 6749 4.1.2: a code is redeemed once).

For each of 50 keys, 8 threads released together by a barrier race on the
same key; exactly one of them may win, on every backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Callable, Optional, TypeVar

import pytest
from support.races import KEYS, THREADS, race

from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAuthorizationCode
from pyop.storage import MemoryStorage, StatelessWrapper, StorageBase
from pyop.storage.base import canonical_json
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

from .conftest import RACE_BACKENDS, Backend, backend_params

T = TypeVar("T")
#: Codes raced by the code-cache race (each round is a full redemption per thread).
CACHED_KEYS = 20

def _stores(backend: Backend) -> list[StorageBase]:
    """One store per thread where backends are shared (like separate workers), else one."""
    first = backend.make()
    if backend.name in ("memory", "dict"):
        return [first] * THREADS
    collection = first.collection  # type: ignore[attr-defined]
    return [first] + [backend.make(collection=collection) for _ in range(THREADS - 1)]


def _thread_store(stores: Sequence[T]) -> Callable[[], T]:
    index: dict[int, int] = {}
    lock = threading.Lock()

    def get() -> T:
        ident = threading.get_ident()
        with lock:
            if ident not in index:
                index[ident] = len(index) % len(stores)
            return stores[index[ident]]

    return get


def test_concurrent_consume_exactly_one_winner(race_backend: Backend) -> None:
    stores = _stores(race_backend)
    for r in range(KEYS):
        stores[0].set(f"code{r}", {"round": r})
    mine = _thread_store(stores)
    results = race(lambda r: mine().consume(f"code{r}"))
    for r, outcomes in enumerate(results):
        winners = [o for o in outcomes if o is not None]
        assert winners == [{"round": r}], f"key {r}: {outcomes}"


@pytest.mark.parametrize("race_backend",
                         backend_params([b for b in RACE_BACKENDS if "generic" not in b]),
                         indirect=True)  # compare_and_set has no dialect-specific path
def test_concurrent_compare_and_set_exactly_one_winner(race_backend: Backend) -> None:
    stores = _stores(race_backend)
    for r in range(KEYS):
        stores[0].set(f"rt{r}", {"rotated": False, "r": r})
    mine = _thread_store(stores)

    def rotate(r: int) -> bool:
        me = threading.get_ident()
        return mine().compare_and_set(f"rt{r}", {"rotated": False, "r": r},
                                      {"rotated": True, "r": r, "by": me})

    results = race(rotate)
    for r, outcomes in enumerate(results):
        assert outcomes.count(True) == 1, f"key {r}: {outcomes}"
        assert stores[0].get(f"rt{r}")["rotated"] is True


def test_concurrent_add_exactly_one_winner(race_backend: Backend) -> None:
    stores = _stores(race_backend)
    mine = _thread_store(stores)
    results = race(lambda r: mine().add(f"jti{r}", {"r": r},
                                        expires_at=time.time() + 3600))
    for r, outcomes in enumerate(results):
        assert outcomes.count(True) == 1, f"key {r}: {outcomes}"


def test_concurrent_add_over_expired_record_exactly_one_winner(race_backend: Backend) -> None:
    stores = _stores(race_backend)
    for r in range(KEYS):
        stores[0].set(f"jti{r}", {"old": r}, expires_at=race_backend.now() - 1)
    mine = _thread_store(stores)
    results = race(lambda r: mine().add(f"jti{r}", {"r": r},
                                        expires_at=race_backend.now() + 3600))
    for r, outcomes in enumerate(results):
        assert outcomes.count(True) == 1, f"key {r}: {outcomes}"


def test_concurrent_redemption_from_each_process_cache_exactly_one_winner(
        race_backend: Backend) -> None:
    """Every "process" (one AuthorizationState per thread, its own connections) holds the
    unused code record in its cache of issued codes (``authorization_code_cache_size``)
    and redeems without reading it: the compare-and-set still lets exactly one win."""
    codes, tokens = _stores(race_backend), _stores(race_backend)
    states = [AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), codes[i],
                                 tokens[i], clock=race_backend.now,
                                 authorization_code_cache_size=KEYS) for i in range(THREADS)]
    issued = [states[0].create_authorization_code({"client_id": "c"}, "sub", "alice",
                                                  ["openid"]) for _ in range(CACHED_KEYS)]
    for state in states[1:]:  # as if each process had issued the code
        for code in issued:
            record = states[0].get_authorization_code(code)
            assert state._issued_codes is not None
            state._issued_codes.put(code, canonical_json(record), expires_at=record["exp"])
    mine = _thread_store(states)

    def redeem(r: int) -> Optional[str]:
        state = mine()
        record, cached = state.authorization_code_for_redemption(issued[r])
        assert cached
        try:
            return state.redeem_authorization_code(issued[r], record)[0].value
        except InvalidAuthorizationCode:
            return None

    results = race(redeem, rounds=CACHED_KEYS)
    for r, outcomes in enumerate(results):
        winners = [o for o in outcomes if o is not None]
        assert len(winners) == 1, f"code {r}: {outcomes}"
        used = states[0].get_authorization_code(issued[r])
        assert used["used"] is True and used["issued"]["access_token"] == winners[0]


@pytest.mark.parametrize("replay", ["memory", pytest.param("redis", marks=pytest.mark.servers)])
def test_concurrent_consume_of_a_sealed_token(replay: str, request: pytest.FixtureRequest) -> None:
    cache: StorageBase
    if replay == "redis":
        from pyop.storage import RedisWrapper

        server = request.getfixturevalue("redis_server")
        caches = [RedisWrapper(server.url, "pyop", "replay-race") for _ in range(THREADS)]
        # one StatelessWrapper per thread, as separate processes would have
        sealers = [StatelessWrapper("authz_codes", "s" * 32, replay_cache=c) for c in caches]
    else:
        cache = MemoryStorage()
        sealers = [StatelessWrapper("authz_codes", "s" * 32, replay_cache=cache)] * THREADS
    tokens = [sealers[0].seal({"r": r}, time.time() + 60) for r in range(KEYS)]
    mine = _thread_store(list(sealers))
    try:
        results = race(lambda r: mine().consume(tokens[r]))
    finally:
        for sealer in set(sealers):
            sealer.replay_cache.close()
    for r, outcomes in enumerate(results):
        assert [o for o in outcomes if o is not None] == [{"r": r}], f"key {r}: {outcomes}"
