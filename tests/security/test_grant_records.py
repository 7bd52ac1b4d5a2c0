"""Grant records stay constant-size, and a revoked grant is revoked whole, stored or sealed.

- A refresh token's record does not grow with the refreshes made with it, and revoking it
  touches a constant number of records whatever the number of refreshes (RFC 7009 2.1 asks
  that the revocation reach every access token of the grant): one *grant revocation mark*,
  read wherever a token of a refreshed grant is used, replaces the list of tokens.
- Sealed (stateless) codes and refresh tokens: a replayed code (RFC 6749 4.1.2) or a reused
  rotated refresh token (RFC 9700 4.14.2) revokes the tokens issued from it, through the
  same mark kept in the replay cache; RFC 7009 revocation of a sealed refresh token reaches
  its grant. Sealed values issued before the grant id existed keep working.
- A sealed value the token endpoint, UserInfo or introspection would refuse to read (longer
  than the 4,096-character read limit) is never issued: a typed error instead.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from support.stores import ProxyStore

from pyop.authz_state import AuthorizationState
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthenticationRequest,
    InvalidRefreshToken,
    InvalidTokenRequest,
    OAuthError,
)
from pyop.storage import MemoryStorage, StatelessWrapper, StorageBase
from pyop.storage.base import canonical_json
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    USER_ID,
    authorize,
    basic_header,
    bearer,
    full_code_flow,
    issue_code,
    redeem,
    refresh,
)

SECRET = "0123456789abcdef-sealing-secret"
AUTH_REQ = {"client_id": CLIENT_ID, "redirect_uri": "https://rp.example.com/cb",
            "response_type": "code", "scope": "openid", "nonce": "n"}
#: Refreshes made with one refresh token before its record is measured again.
REFRESHES = 2000
#: The read limit of a code or token value (``_live``): longer ones are never looked up.
READ_LIMIT = 4096


class CountingStore(ProxyStore):
    """Counts the primitive calls made on ``inner``."""

    def __init__(self, inner: StorageBase) -> None:
        super().__init__(inner)
        self.calls: list[str] = []

    def before(self, operation: str) -> None:
        self.calls.append(operation)


def _stored_state(clock: Any) -> tuple[AuthorizationState, CountingStore, CountingStore]:
    access = CountingStore(MemoryStorage(clock=clock))
    refresh_db = CountingStore(MemoryStorage(clock=clock))
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               access_token_db=access, refresh_token_db=refresh_db,
                               refresh_token_lifetime=86400, access_token_lifetime=3600)
    return state, access, refresh_db


def _grant(state: AuthorizationState) -> tuple[str, str]:
    code = state.create_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"])
    access, refresh_token = state.redeem_authorization_code(
        code, state.get_authorization_code(code))
    assert refresh_token is not None
    return access.value, refresh_token


def _stored_size(store: CountingStore, key: str) -> int:
    return len(canonical_json(store.inner.get(key)).encode("utf-8"))


# -- resource bound: the grant record and its revocation are constant-size ------------------

def test_bound_refresh_grant_record_constant_size(clock: Any) -> None:
    """After 2000 refreshes the refresh token's stored record has the byte size it had after
    one (it used to list every access token issued with it: 305 KB after 15 s of
    refreshes, each refresh rewriting it whole)."""
    state, _, refresh_db = _stored_state(clock)
    _, refresh_token = _grant(state)
    state.refresh_access_token(refresh_token, CLIENT_ID)
    after_one = _stored_size(refresh_db, refresh_token)
    for _ in range(REFRESHES - 1):
        state.refresh_access_token(refresh_token, CLIENT_ID)
    assert _stored_size(refresh_db, refresh_token) == after_one
    # a refresh writes the new access token only: it never rewrites the grant's record
    refresh_db.calls.clear()
    state.refresh_access_token(refresh_token, CLIENT_ID)
    assert refresh_db.calls == ["get"]


def test_bound_grant_revocation_touches_constant_records(clock: Any) -> None:
    """RFC 7009 2.1: revoking the refresh token revokes every access token of its grant, with
    the same storage calls after 2000 refreshes as after one (and at most four)."""

    def revocation_calls(refreshes: int) -> tuple[list[str], list[str]]:
        state, access, refresh_db = _stored_state(clock)
        first, refresh_token = _grant(state)
        issued = [first] + [state.refresh_access_token(refresh_token, CLIENT_ID)[0].value
                            for _ in range(refreshes)]
        access.calls.clear()
        refresh_db.calls.clear()
        state.revoke_refresh_token(refresh_token)
        calls = (list(access.calls), list(refresh_db.calls))
        for value in (issued[0], issued[1], issued[-1]):
            with pytest.raises(InvalidAccessToken):
                state.get_access_token(value)
        with pytest.raises(InvalidRefreshToken):
            state.refresh_access_token(refresh_token, CLIENT_ID)
        return calls

    one = revocation_calls(1)
    many = revocation_calls(REFRESHES)
    assert one == many
    assert len(one[0]) + len(one[1]) <= 4


def test_rfc7009_2_1_every_refreshed_token_revoked(clock: Any) -> None:
    """All 2000 access tokens issued by refreshing one refresh token are refused once it is
    revoked, and the rotated successors of a revoked refresh token too."""
    state, _, _ = _stored_state(clock)
    first, refresh_token = _grant(state)
    issued = [state.refresh_access_token(refresh_token, CLIENT_ID)[0].value
              for _ in range(REFRESHES)]
    _, successor, _ = state.refresh_access_token(refresh_token, CLIENT_ID, rotate=True)
    assert successor is not None
    later, _, _ = state.refresh_access_token(successor, CLIENT_ID)
    state.revoke_refresh_token(refresh_token)  # the rotated predecessor
    for value in [first, later.value] + issued:
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(value)
    with pytest.raises(InvalidRefreshToken):
        state.refresh_access_token(successor, CLIENT_ID)
    assert state.get_refresh_token(successor) is None


def test_records_of_the_previous_version_read_and_revoked(clock: Any) -> None:
    """A refresh token record as the previous version wrote it (grant fields, its access
    tokens listed with their expiry, no grant id) is refreshed without growing, and revoking
    it reaches the tokens it lists and those issued from it since."""
    state, access, refresh_db = _stored_state(clock)
    now = int(clock())
    grant = {"client_id": CLIENT_ID, "sub": "s", "user_id": USER_ID, "scope": "openid",
             "claims": None, "issued_at": float(now)}
    access.inner.set("at-old", dict(grant, iat=now, exp=now + 600, token_type="access_token"),
                     expires_at=now + 600)
    old = dict(grant, iat=now, exp=now + 3600, token_type="refresh_token",
               access_tokens=[["at-old", now + 600]])
    refresh_db.inner.set("rt-old", old, expires_at=now + 3600)
    issued = [state.refresh_access_token("rt-old", CLIENT_ID)[0].value for _ in range(3)]
    assert refresh_db.inner.get("rt-old") == old  # read as it is, never rewritten
    state.get_access_token("at-old")
    state.revoke_refresh_token("rt-old")
    for value in ["at-old"] + issued:
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(value)


# -- sealed grants: replay and reuse revoke them ---------------------------------------------

def _sealed_stores(clock: Any) -> dict[str, Any]:
    return {name: StatelessWrapper(collection, SECRET, clock=clock)
            for name, collection in (("authorization_code_db", "authz_codes"),
                                     ("access_token_db", "access_tokens"),
                                     ("refresh_token_db", "refresh_tokens"))}


@pytest.fixture
def sealed_op(make_op: Callable[..., Any], clock: Any) -> Any:
    return make_op(authz_kwargs={"refresh_token_lifetime": 3600, **_sealed_stores(clock)})


@pytest.fixture
def sealed_rotating_op(make_op: Callable[..., Any], clock: Any) -> Any:
    return make_op(authz_kwargs={"refresh_token_lifetime": 3600,
                                 "refresh_token_threshold": 36000, **_sealed_stores(clock)})


def _assert_access_refused(provider: Any, *tokens: str) -> None:
    for token in tokens:
        with pytest.raises(InvalidAccessToken):
            provider.handle_userinfo_request(None, bearer(token))


def _assert_refresh_refused(provider: Any, token: str) -> None:
    with pytest.raises(OAuthError) as info:
        refresh(provider, token)
    assert info.value.oauth_error == "invalid_grant"


def test_rfc6749_4_1_2_sealed_code_replay_revokes_its_tokens(sealed_op: Any) -> None:
    """A replayed sealed code is refused and the tokens issued from it are revoked: the
    access token, the refresh token, and what the refresh token issued meanwhile."""
    code = issue_code(sealed_op)
    first = redeem(sealed_op, code)
    refreshed = refresh(sealed_op, first["refresh_token"])
    sealed_op.handle_userinfo_request(None, bearer(refreshed["access_token"]))
    with pytest.raises(OAuthError) as info:
        redeem(sealed_op, code)
    assert info.value.oauth_error == "invalid_grant"
    _assert_access_refused(sealed_op, first["access_token"], refreshed["access_token"])
    _assert_refresh_refused(sealed_op, first["refresh_token"])


def test_rfc9700_4_14_2_sealed_rotated_refresh_token_reuse_revokes_the_grant(
        sealed_rotating_op: Any) -> None:
    """The reuse of a rotated sealed refresh token is refused and revokes its grant: the
    successor refresh token and every access token issued from the grant."""
    first = full_code_flow(sealed_rotating_op)
    second = refresh(sealed_rotating_op, first["refresh_token"])
    third = refresh(sealed_rotating_op, second["refresh_token"])
    sealed_rotating_op.handle_userinfo_request(None, bearer(third["access_token"]))
    _assert_refresh_refused(sealed_rotating_op, first["refresh_token"])  # the reuse
    _assert_access_refused(sealed_rotating_op, first["access_token"], second["access_token"],
                           third["access_token"])
    _assert_refresh_refused(sealed_rotating_op, third["refresh_token"])


@pytest.mark.parametrize("rotated", [False, True], ids=["current", "rotated-predecessor"])
def test_rfc7009_2_1_sealed_refresh_token_revocation_reaches_the_grant(
        sealed_rotating_op: Any, sealed_op: Any, rotated: bool) -> None:
    """Revoking a sealed refresh token (RFC 7009) revokes the access tokens issued with it
    and from it, and the refresh tokens that replaced it."""
    provider = sealed_rotating_op if rotated else sealed_op
    first = full_code_flow(provider)
    second = refresh(provider, first["refresh_token"])
    current = second.get("refresh_token", first["refresh_token"])
    provider.handle_revocation_request(
        f"token={first['refresh_token']}&token_type_hint=refresh_token",
        basic_header(CLIENT_ID, CLIENT_SECRET))
    _assert_access_refused(provider, first["access_token"], second["access_token"])
    _assert_refresh_refused(provider, current)


def test_rfc7009_2_1_sealed_logout_reaches_the_grant(sealed_op: Any) -> None:
    """A logout revokes a sealed grant whole: issued and refreshed tokens."""
    first = full_code_flow(sealed_op)
    second = refresh(sealed_op, first["refresh_token"])
    sub = sealed_op.handle_userinfo_request(None, bearer(second["access_token"]))["sub"]
    sealed_op.authz_state.delete_state_for_subject_identifier(sub)
    _assert_access_refused(sealed_op, first["access_token"], second["access_token"])
    _assert_refresh_refused(sealed_op, first["refresh_token"])


def test_sealed_values_issued_without_grant_id_keep_working(clock: Any) -> None:
    """Sealed codes and tokens of the previous version (no grant id; a refresh token listing
    its first access token) are used until they expire, and revoking such a refresh token
    still reaches the tokens it lists and those issued from it since."""
    stores = _sealed_stores(clock)
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_lifetime=3600, **stores)
    now = int(clock())
    grant = {"client_id": CLIENT_ID, "sub": "s", "user_id": USER_ID, "scope": "openid",
             "claims": None, "issued_at": float(now)}
    code = stores["authorization_code_db"].seal(
        dict(grant, exp=now + 600, iat=now, auth_req=dict(AUTH_REQ),
             token_type="authorization_code"), now + 600)
    access = stores["access_token_db"].seal(
        dict(grant, iat=now, exp=now + 3600, token_type="access_token"), now + 3600)
    refresh_token = stores["refresh_token_db"].seal(
        dict(grant, iat=now, exp=now + 3600, token_type="refresh_token",
             access_tokens=[[access, now + 3600]]), now + 3600)
    assert state.get_access_token(access)["sub"] == "s"
    from_code, _ = state.redeem_authorization_code(code, state.get_authorization_code(code))
    state.get_access_token(from_code.value)
    refreshed, _, _ = state.refresh_access_token(refresh_token, CLIENT_ID)
    state.get_access_token(refreshed.value)
    state.revoke_refresh_token(refresh_token)
    for value in (access, refreshed.value):
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(value)
    state.get_access_token(from_code.value)  # another grant
    clock.advance(3601)
    with pytest.raises(InvalidAccessToken):
        state.get_access_token(from_code.value)


def test_sealed_grant_mark_lives_as_long_as_the_grants_tokens(clock: Any) -> None:
    """The revocation mark of a sealed grant is kept in the replay cache until the longest
    lifetime of the grant's tokens has passed, then removed."""
    stores = _sealed_stores(clock)
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_lifetime=7200, **stores)
    code = state.create_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"])
    access, refresh_token = state.redeem_authorization_code(
        code, state.get_authorization_code(code))
    assert refresh_token is not None
    with pytest.raises(InvalidTokenRequest):  # the replay
        state.redeem_authorization_code(code, state.get_authorization_code(code))
    cache = stores["access_token_db"].replay_cache
    marks = [key for key in cache.keys() if key.startswith("grant:")]
    assert len(marks) == 1
    clock.advance(7200)
    with pytest.raises(InvalidRefreshToken):
        state.refresh_access_token(refresh_token, CLIENT_ID)
    clock.advance(2)
    assert cache.purge_expired() >= 1
    assert [key for key in cache.keys() if key.startswith("grant:")] == []


# -- resource bound: sealed values within the read limit --------------------------------------

def _claims_request(size: int) -> str:
    """A ``claims`` request (OIDC Core 5.5) of about ``size`` characters of JSON."""
    names = {f"claim_{i:04d}_{'x' * 20}": None for i in range(size // 32)}
    return json.dumps({"userinfo": names})


def test_bound_sealed_code_within_the_read_limit(sealed_op: Any) -> None:
    """A 3 KB claims request would seal into a code longer than the token endpoint reads
    (4,359 characters for 4,096): authorize() raises a typed error instead of issuing a
    code that can never be redeemed; a request within the bound is issued and redeemed."""
    with pytest.raises(InvalidAuthenticationRequest) as info:
        authorize(sealed_op, claims=_claims_request(3000))
    assert info.value.oauth_error == "invalid_request"
    assert "too large" in str(info.value)
    # the client and its redirect_uri were verified at parse time: the error redirects there
    error_url = info.value.to_error_url()
    assert error_url is not None and "error=invalid_request" in error_url
    code = issue_code(sealed_op, claims=_claims_request(1000))
    assert len(code) <= READ_LIMIT
    assert redeem(sealed_op, code)["access_token"]


def test_bound_sealed_tokens_within_the_read_limit(clock: Any) -> None:
    """Sealed tokens are bounded the same way (the check is made wherever a sealed value is
    made: codes, access and refresh tokens), with the error of their endpoint: an implicit
    access token at authorize(), the tokens of a code redemption at the token endpoint with
    ``invalid_request``, before the code is spent."""
    stores = _sealed_stores(clock)
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_lifetime=3600, **stores)
    big = {f"claim_{i:04d}": "v" * 40 for i in range(80)}  # about 4 KB of claims
    with pytest.raises(InvalidAuthenticationRequest):
        state.issue_access_token(AUTH_REQ, "sub-1", USER_ID, ["openid"], user_info=big)
    # a code on a server-side store, whose tokens are sealed: refused at the token endpoint
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_lifetime=3600,
                               access_token_db=stores["access_token_db"],
                               refresh_token_db=stores["refresh_token_db"])
    code = state.issue_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"],
                                          {"user_info": big})
    with pytest.raises(InvalidTokenRequest) as info:
        state.redeem_authorization_code(code, state.get_authorization_code(code))
    assert info.value.oauth_error == "invalid_request"
    assert "too large" in str(info.value)
    # the code was not spent: the failure is not a replay
    assert not state.get_authorization_code(code).get("used")


def test_bound_authorization_header_carries_a_sealed_token_at_the_limit(sealed_op: Any) -> None:
    """An access token near the bound is read from the Authorization header (no separate
    header limit below it)."""
    response = full_code_flow(sealed_op, scope="openid profile",
                              claims=_claims_request(1500))
    token = response["access_token"]
    assert 1000 < len(token) <= READ_LIMIT
    assert sealed_op.handle_userinfo_request(None, bearer(token))["sub"]


def test_bound_read_limit_is_the_issue_limit() -> None:
    """One number: what is issued sealed is what is read back."""
    from pyop.authz_state._records import MAX_TOKEN_LENGTH

    assert MAX_TOKEN_LENGTH == READ_LIMIT
