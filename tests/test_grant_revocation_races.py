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
from pyop.exceptions import InvalidAccessToken, InvalidRefreshToken
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


def test_window_1_revoked_between_storing_and_listing_the_access_token(
        clock: FakeClock) -> None:
    """The access token is stored, not yet listed in its grant, when the grant is revoked:
    the listing's compare-and-set finds no record, the token is deleted, the refresh
    fails."""
    grant = Grant(clock, cache=True)
    interleaving = _revoke_when(grant, "access", "set")
    assert grant.refresh_now(rotate=False) is None
    interleaving.finish()
    assert interleaving.fired
    grant.assert_dead()


def test_window_1_revoked_once_the_access_token_is_listed(clock: FakeClock) -> None:
    grant = Grant(clock, cache=True)
    interleaving = _revoke_when(grant, "refresh", "compare_and_set")
    result = grant.refresh_now(rotate=False)
    interleaving.finish()
    assert result is not None and interleaving.fired
    grant.assert_dead()


def test_window_2_listing_between_the_revocations_read_and_delete(clock: FakeClock) -> None:
    """The revocation takes the record with one consume: a refresh landing right after it
    finds no record; one landing right before it is listed in what the consume returns."""
    for before in (True, False):
        grant = Grant(clock)
        results: list[Any] = []
        interleaving = Interleaving(0 if before else 1, refresh_into(results, grant, False))
        grant.observe(interleaving)
        grant.state.revoke_refresh_token(grant.chain[0])
        assert interleaving.calls[0] == ("refresh", "consume")
        assert (results[0] is not None) is before
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


def test_contention_fails_closed(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Every attempt to list the token loses to a concurrent refresh: the refresh is refused
    and its access token removed, rather than issued unreachable by a revocation."""
    grant = Grant(clock, cache=True)
    inner = grant.refresh.inner
    token = grant.chain[0]

    class Busy(Interleaving):
        """Before each compare-and-set, another refresh lists a token first."""

        def step(self, name: str, op: str) -> None:
            if (name, op) == ("refresh", "compare_and_set"):
                record = inner.get(token)
                record["access_tokens"].append(["other", clock.now + 600])
                inner.set(token, record, expires_at=record["exp"])
            super().step(name, op)

    grant.observe(Busy())
    with caplog.at_level("WARNING", logger="pyop.authz_state"):
        assert grant.refresh_now(rotate=False) is None
    assert "contention" in caplog.text and token not in caplog.text
    assert list(grant.access.inner.keys()) == [grant.first_access]
    assert grant.state._issued_access_tokens is not None
    # the cache holds the first access token only: the refused one was forgotten
    assert len(grant.state._issued_access_tokens) == 1
    assert grant.state._issued_access_tokens.get(grant.first_access) is not None


def test_rotated_meanwhile_revokes_the_grant(clock: FakeClock) -> None:
    """A refresh without rotation finds, when it lists its token, that the refresh token was
    rotated meanwhile by a concurrent use: a replay (RFC 9700 4.14.2), the grant is
    revoked."""
    grant = Grant(clock)
    results: list[Any] = []
    # the concurrent rotation lands right after this refresh stored its access token
    interleaving = _revoke_when(grant, "access", "set")
    interleaving.action = lambda: results.append(grant.refresh_now(rotate=True))
    assert grant.refresh_now(rotate=False) is None
    assert results[0] is not None
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
    issued, _, _ = state.use_refresh_token("rt-new", CLIENT_ID)
    assert [e[0] for e in refresh.get("rt-new")["access_tokens"]] == ["at-new", issued.value]
    state.revoke_refresh_token("rt-old")
    assert list(access.keys()) == [] and list(refresh.keys()) == []


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
