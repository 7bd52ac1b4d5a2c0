"""A refresh (RFC 6749 6) racing the revocation of its grant (RFC 7009 2.1) is linearizable.

Revoking a refresh token invalidates the access tokens of its grant and the refresh tokens
that replaced it by rotation (RFC 7009 2.1, RFC 9700 4.14.2). A refresh running at the same
time, in another thread or process, must either complete before the revocation -- and its
tokens are then revoked by it -- or fail with ``InvalidRefreshToken`` and leave nothing
live. Three windows used to break this:

1. refresh without rotation: the grant listed the new access token before it was stored,
   so a revocation in between deleted a token that was stored afterwards;
2. the revocation read a record and then deleted it, so a refresh listing its token in
   between had it deleted with the record, unseen;
3. rotation: the old record was marked rotated before its successor was written, so a
   revocation walking the chain in between found no successor to revoke.

The deterministic tests run the revocation at *every* point of a refresh's sequence of
storage calls (and the refresh at every point of a revocation's), through a proxy over the
stores; the thread races release a revocation and refreshes together, round after round.
The real backends race in ``tests/storage/test_grant_revocation_backends.py``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import USER_ID, FakeClock
from support.grants import (
    AUTH_REQ,
    CLIENT_ID,
    Grant,
    Interleaving,
    Jitter,
    refresh_at_every_point_of_a_revocation,
    refresh_calls,
    refresh_into,
    revocation_at_every_point_of_a_refresh,
)
from support.races import race

from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAccessToken, InvalidAuthorizationCode, InvalidRefreshToken
from pyop.storage import MemoryStorage, StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

# -- the revocation at every point of a refresh --------------------------------------------

OPTIONS = [
    pytest.param({}, id="plain"),
    pytest.param({"cache": True}, id="access-token-cache"),
    pytest.param({"shared": True}, id="one-store"),
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("chained", [False, True], ids=["revoke-this", "revoke-ancestor"])
@pytest.mark.parametrize("rotate", [False, True], ids=["no-rotation", "rotation"])
def test_revocation_at_every_point_of_a_refresh(clock: FakeClock, rotate: bool, chained: bool,
                                                options: dict[str, Any]) -> None:
    """Windows 1 and 3: wherever the revocation lands in the refresh, nothing survives it.

    With ``revoke-ancestor`` the grant was rotated once before and the revocation is of
    the first refresh token: it reaches the one being used through the chain.
    """
    count = refresh_calls(clock, rotate, chained, **options)
    assert count >= 3  # read, store the access token, list it (or add + compare-and-set)
    outcomes = revocation_at_every_point_of_a_refresh(
        lambda: Grant(clock, **options), rotate, chained)
    assert len(outcomes) == count + 1
    # the refresh fails when revoked before it takes effect, and is answered after
    assert outcomes[0] is False and outcomes[-1] is True
    # ... and takes effect at one single point (its compare-and-set)
    assert outcomes == sorted(outcomes)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("chained", [False, True], ids=["revoke-this", "revoke-ancestor"])
@pytest.mark.parametrize("rotate", [False, True], ids=["no-rotation", "rotation"])
def test_refresh_at_every_point_of_a_revocation(clock: FakeClock, rotate: bool, chained: bool,
                                                options: dict[str, Any]) -> None:
    """Window 2: wherever the refresh lands in the revocation, its tokens do not survive."""
    points = refresh_at_every_point_of_a_revocation(
        lambda: Grant(clock, **options), rotate, chained)
    assert points >= 3  # the revocation's own calls, and after the last


# -- the three windows, one by one ---------------------------------------------------------


def _revoke_when(grant: Grant, store: str, operation: str) -> Interleaving:
    """Revoke the grant's first refresh token right after the first ``operation`` on
    ``store`` (before the refresh's next storage call)."""

    class After(Interleaving):
        def step(self, name: str, op: str) -> None:
            super().step(name, op)
            if self.at is None and (name, op) == (store, operation):
                self.at = len(self.calls)

    interleaving = After(None, lambda: grant.state.revoke_refresh_token(grant.chain[0]))
    grant.observe(interleaving)
    return interleaving


def _revoke_before(grant: Grant, store: str, operation: str) -> Interleaving:
    """Revoke the grant's first refresh token right before the first ``operation`` on
    ``store``."""

    class Before(Interleaving):
        def step(self, name: str, op: str) -> None:
            if self.at is None and (name, op) == (store, operation):
                self.at = len(self.calls)
            super().step(name, op)

    interleaving = Before(None, lambda: grant.state.revoke_refresh_token(grant.chain[0]))
    grant.observe(interleaving)
    return interleaving


def test_window_1_revoked_before_the_grant_mark_is_read(clock: FakeClock) -> None:
    """The refresh read the refresh token, not yet its grant's revocation mark, when the
    grant is revoked: it reads the mark and is refused."""
    grant = Grant(clock, cache=True)
    interleaving = _revoke_when(grant, "access", "get")  # the logout mark's read
    assert grant.refresh_now(rotate=False) is None
    interleaving.finish()
    assert interleaving.fired
    grant.assert_dead()


def test_window_1_revoked_once_the_grant_mark_is_read(clock: FakeClock) -> None:
    """Revoked after the refresh read the mark, before it stored its access token: the
    refresh is answered (it took effect before the revocation) and its token, which
    carries the grant id, is refused from its first use."""
    grant = Grant(clock, cache=True)
    interleaving = _revoke_before(grant, "access", "set")
    result = grant.refresh_now(rotate=False)
    interleaving.finish()
    assert result is not None and interleaving.fired
    grant.assert_dead()


def test_window_2_refresh_between_the_revocations_steps(clock: FakeClock) -> None:
    """The revocation reads the token, writes the grant's mark, then takes the token with
    one consume: a refresh landing before the mark is answered and its token refused; one
    landing after it is refused."""
    for at, answered in ((0, True), (1, True), (2, False), (3, False)):
        grant = Grant(clock)
        results: list[Any] = []
        interleaving = Interleaving(at, refresh_into(results, grant, False))
        grant.observe(interleaving)
        grant.state.revoke_refresh_token(grant.chain[0])
        assert interleaving.calls[:3] == [("refresh", "get"), ("access", "add"),
                                          ("refresh", "consume")]
        assert (results[0] is not None) is answered
        grant.assert_dead()


def test_window_3_revoked_between_writing_the_successor_and_marking_rotated(
        clock: FakeClock) -> None:
    """The successor and its access token are written before the old record is marked
    rotated: a revocation landing then makes the mark fail, and the rotation removes
    them."""
    grant = Grant(clock)
    interleaving = _revoke_when(grant, "refresh", "add")
    assert grant.refresh_now(rotate=True) is None
    interleaving.finish()
    assert interleaving.fired
    grant.assert_dead()


def test_window_3_revoked_once_marked_rotated(clock: FakeClock) -> None:
    """Marked rotated, the old record points to a successor that already exists."""
    grant = Grant(clock)
    interleaving = _revoke_when(grant, "refresh", "compare_and_set")
    result = grant.refresh_now(rotate=True)
    interleaving.finish()
    assert result is not None and result[1] is not None and interleaving.fired
    grant.assert_dead()


def test_old_token_expiring_right_after_the_rotation(clock: FakeClock) -> None:
    """The rotation takes effect at its compare-and-set, with nothing to check afterwards:
    the presented token may expire right then (its rotated record keeps its own expiry)
    and the rotation stands; its successor is revoked through itself."""
    grant = Grant(clock)
    clock.advance(3599)  # one second left
    interleaving = _revoke_when(grant, "refresh", "compare_and_set")
    interleaving.action = lambda: clock.advance(1)
    result = grant.refresh_now(rotate=True)
    interleaving.finish()
    assert interleaving.fired and result is not None and result[1] is not None
    assert grant.state.get_refresh_token(grant.chain[0]) is None  # expired
    access, _, _ = grant.state.use_refresh_token(result[1], CLIENT_ID)
    grant.state.revoke_refresh_token(result[1])
    for value in (result[0].value, access.value):
        with pytest.raises(InvalidAccessToken):
            grant.state.get_access_token(value)
    with pytest.raises(InvalidRefreshToken):
        grant.state.use_refresh_token(result[1], CLIENT_ID)


# -- contention, failures ------------------------------------------------------------------


def test_refresh_never_writes_the_grant(clock: FakeClock) -> None:
    """A refresh without rotation reads the refresh token and the marks and stores its
    access token: no write to the grant's record, so concurrent refreshes of one token do
    not contend (the record used to list each access token, one compare-and-set each)."""
    grant = Grant(clock, cache=True)
    probe = Interleaving()
    grant.observe(probe)
    assert grant.refresh_now(rotate=False) is not None
    assert probe.calls == [("refresh", "get"), ("access", "get"), ("access", "get"),
                           ("access", "set")]


def test_refresh_read_before_a_rotation_is_linearized_before_it(clock: FakeClock) -> None:
    """A refresh without rotation that read the token before a concurrent rotation took
    effect is answered, as if it came first; revoking the grant reaches both."""
    grant = Grant(clock)
    results: list[Any] = []
    # the rotation lands once the refresh has read the token and the marks
    interleaving = _revoke_before(grant, "access", "set")
    interleaving.action = lambda: results.append(grant.refresh_now(rotate=True))
    assert grant.refresh_now(rotate=False) is not None
    assert interleaving.fired and results[0] is not None
    grant.state.revoke_refresh_token(grant.chain[0])
    grant.assert_dead()


# -- compatibility, other stores -----------------------------------------------------------


def test_records_of_the_previous_version(clock: FakeClock) -> None:
    """Records as the previous version wrote them (a rotated record pointing to its
    successor, access tokens listed with their expiry) are refreshed and revoked."""
    refresh = MemoryStorage(clock=clock)
    access = MemoryStorage(clock=clock)
    now = int(clock.now)
    grant = {"client_id": CLIENT_ID, "sub": "s", "user_id": USER_ID, "scope": "openid",
             "claims": None}
    access.set("at-old", dict(grant, iat=now, exp=now + 600, token_type="access_token"),
               expires_at=now + 600)
    access.set("at-new", dict(grant, iat=now, exp=now + 600, token_type="access_token"),
               expires_at=now + 600)
    refresh.set("rt-old", dict(grant, iat=now, exp=now + 3600, token_type="refresh_token",
                               access_tokens=[["at-old", now + 600]], rotated=True,
                               replaced_by="rt-new"), expires_at=now + 3600)
    refresh.set("rt-new", dict(grant, iat=now, exp=now + 3600, token_type="refresh_token",
                               access_tokens=[["at-new", now + 600]]), expires_at=now + 3600)
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               access_token_db=access, refresh_token_db=refresh,
                               refresh_token_lifetime=3600)
    before = refresh.get("rt-new")
    issued, _, _ = state.use_refresh_token("rt-new", CLIENT_ID)
    assert refresh.get("rt-new") == before  # read as it is, not rewritten
    state.revoke_refresh_token("rt-old")
    assert list(refresh.keys()) == []
    assert [key for key in access.keys() if not key.startswith("grant:")] == [issued.value]
    for value in ("at-old", "at-new", issued.value):
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(value)


def test_sealed_access_tokens_are_listed_as_issued(clock: FakeClock) -> None:
    """With sealed access tokens the value is known once sealed: the grant lists that value,
    so revoking the refresh token revokes them (through the replay cache)."""
    access = StatelessWrapper("access_tokens", "s" * 32, clock=clock)
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               access_token_db=access, refresh_token_lifetime=3600)
    code = state.create_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"])
    first, refresh = state.redeem_authorization_code(code, state.get_authorization_code(code))
    assert refresh is not None
    second, _, _ = state.use_refresh_token(refresh, CLIENT_ID)
    third, rotated, _ = state.use_refresh_token(refresh, CLIENT_ID, rotate=True)
    assert rotated is not None
    state.revoke_refresh_token(refresh)
    for token in (first, second, third):
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(token.value)
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token(rotated, CLIENT_ID)


def test_sealed_refresh_token_rotation_races_revocation_by_consume(clock: FakeClock) -> None:
    """Sealed refresh tokens: rotation and revocation both consume the token in the replay
    cache; exactly one wins. A revocation first makes the rotation fail."""
    refresh_db = StatelessWrapper("refresh_tokens", "r" * 32, clock=clock)
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_db=refresh_db, refresh_token_lifetime=3600)
    code = state.create_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"])
    _, refresh = state.redeem_authorization_code(code, state.get_authorization_code(code))
    assert refresh is not None
    original_consume = refresh_db.consume

    def revoke_first(key: str) -> Any:
        refresh_db.consume = original_consume  # type: ignore[method-assign]
        state.revoke_refresh_token(refresh)
        return original_consume(key)

    refresh_db.consume = revoke_first  # type: ignore[method-assign]
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token(refresh, CLIENT_ID, rotate=True)


def test_sealed_code_redeemed_concurrently_revokes_its_grant(clock: FakeClock) -> None:
    """Sealed codes: of concurrent redemptions one consumes the code in the replay cache;
    the others find it spent, as a replay, and revoke the grant (RFC 6749 4.1.2), whatever
    the order; the winner's tokens, which carry the grant id, are refused."""
    secret = "s" * 32
    state = AuthorizationState(
        HashBasedSubjectIdentifierFactory("salt"), clock=clock, refresh_token_lifetime=3600,
        authorization_code_db=StatelessWrapper("authz_codes", secret, clock=clock),
        access_token_db=StatelessWrapper("access_tokens", secret, clock=clock),
        refresh_token_db=StatelessWrapper("refresh_tokens", secret, clock=clock))
    codes = [state.create_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"])
             for _ in range(ROUNDS)]
    records = [state.get_authorization_code(code) for code in codes]
    won: list[list[Any]] = [[] for _ in range(ROUNDS)]

    def operation(r: int) -> str:
        try:
            tokens = state.redeem_authorization_code(codes[r], records[r])
        except InvalidAuthorizationCode:
            return "refused"
        won[r].append(tokens)
        return "redeemed"

    results = race(operation, rounds=ROUNDS, threads=THREADS)
    for r, outcomes in enumerate(results):
        assert outcomes.count("redeemed") == 1, outcomes
        access, refresh = won[r][0]
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)


# -- thread races ---------------------------------------------------------------------------

ROUNDS = 20
THREADS = 4


@pytest.mark.parametrize("cache", [False, True], ids=["plain", "access-token-cache"])
def test_thread_race_refreshes_and_revocation(clock: FakeClock, cache: bool) -> None:
    """Each round: one thread revokes a fresh grant while three refresh it (one rotating),
    released together. Afterwards nothing of the grant is live."""
    grants: list[Grant] = []
    for _ in range(ROUNDS):
        grant = Grant(clock, cache=cache)
        grant.chain.append(grant.chain[0])  # refresh_now uses chain[-1]: the first token
        grant.observe(Jitter(len(grants)))
        grants.append(grant)
    roles: list[int] = [0] * ROUNDS
    lock = threading.Lock()

    def operation(r: int) -> str:
        grant = grants[r]
        with lock:
            role, roles[r] = roles[r], roles[r] + 1
        if role == 0:
            grant.state.revoke_refresh_token(grant.chain[0])
            return "revoked"
        result = grant.refresh_now(rotate=role == 1)
        return "refused" if result is None else "refreshed"

    results = race(operation, rounds=ROUNDS, threads=THREADS)
    for r, outcomes in enumerate(results):
        assert sorted(outcomes).count("revoked") == 1, outcomes
        grants[r].assert_dead()
