"""Unit tests of pyop.authz_state.AuthorizationState: codes, tokens, refresh, subject ids."""

from __future__ import annotations

import base64
import logging
from typing import Any, Optional

import pytest
from conftest import CLIENT_ID, REDIRECT_URI, USER_ID, FakeClock

from pyop.access_token import AccessToken
from pyop.authz_state import AuthorizationState, new_token_value
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    InvalidRefreshToken,
    InvalidScope,
    InvalidSubjectIdentifier,
    StorageError,
)
from pyop.message import AuthorizationRequest
from pyop.storage import MemoryStorage, StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

AUTH_REQ = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid email", "nonce": "n"}
SUB = "sub-1"


def make_state(clock: FakeClock, **kwargs: Any) -> AuthorizationState:
    return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock, **kwargs)


@pytest.fixture
def state(clock: FakeClock) -> AuthorizationState:
    return make_state(clock, refresh_token_lifetime=3600)


def issue_code(state: AuthorizationState, scope: tuple[str, ...] = ("openid", "email"),
               auth_req: Optional[dict[str, Any]] = None, **extra: Any) -> str:
    return state.create_authorization_code(auth_req or AUTH_REQ, SUB, USER_ID, list(scope),
                                           extra or None)


def redeem(state: AuthorizationState, code: str) -> tuple[AccessToken, Optional[str]]:
    return state.redeem_authorization_code(code, state.get_authorization_code(code))


class FailingCAS(MemoryStorage):
    """A store where every compare-and-set loses the race."""

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        return False


class TestTokenValues:
    def test_new_token_value(self) -> None:
        values = {new_token_value() for _ in range(100)}
        assert len(values) == 100
        for value in values:
            assert len(base64.urlsafe_b64decode(value + "=")) == 32  # 256 bits

    @pytest.mark.parametrize("lifetime,issues", [(None, False), (0, False), (-5, False),
                                                 (1, True), (3600, True)])
    def test_issues_refresh_tokens(self, clock: FakeClock, lifetime: Optional[int],
                                   issues: bool) -> None:
        assert make_state(clock, refresh_token_lifetime=lifetime).issues_refresh_tokens is issues

    def test_plain_dict_storage_accepted(self, clock: FakeClock) -> None:
        codes: dict[str, Any] = {}
        state = make_state(clock, authorization_code_db=codes)
        code = issue_code(state)
        assert codes[code]["user_id"] == USER_ID
        assert state.get_authorization_code(code)["scope"] == "openid email"

    def test_unsupported_storage(self, clock: FakeClock) -> None:
        from types import MappingProxyType

        with pytest.raises(TypeError):
            make_state(clock, authorization_code_db=MappingProxyType({}))

    def test_default_clock_is_time(self) -> None:
        import time

        assert AuthorizationState(HashBasedSubjectIdentifierFactory("s")).clock is time.time


class TestAuthorizationCodes:
    def test_record(self, state: AuthorizationState, clock: FakeClock) -> None:
        code = issue_code(state, auth_time=123, acr="urn:acr")
        record = state.get_authorization_code(code)
        assert record["client_id"] == CLIENT_ID
        assert record["sub"] == SUB
        assert record["user_id"] == USER_ID
        assert record["scope"] == "openid email"
        assert record["auth_req"] == AUTH_REQ
        assert record["iat"] == clock.now
        assert record["exp"] == clock.now + 600
        assert record["auth_time"] == 123 and record["acr"] == "urn:acr"
        assert "used" not in record

    def test_expiry(self, state: AuthorizationState, clock: FakeClock) -> None:
        code = issue_code(state)
        clock.advance(599)
        assert state.get_authorization_code(code)
        clock.advance(1)
        with pytest.raises(InvalidAuthorizationCode):
            state.get_authorization_code(code)

    def test_custom_lifetime(self, clock: FakeClock) -> None:
        state = make_state(clock, authorization_code_lifetime=10)
        code = issue_code(state)
        assert state.get_authorization_code(code)["exp"] == clock.now + 10

    @pytest.mark.parametrize("code", [None, "", 5, ["x"], "unknown", "x" * 4097])
    def test_unknown_code(self, state: AuthorizationState, code: Any) -> None:
        with pytest.raises(InvalidAuthorizationCode) as info:
            state.get_authorization_code(code)
        assert info.value.oauth_error == "invalid_grant"

    def test_other_token_types_are_not_codes(self, clock: FakeClock) -> None:
        shared = MemoryStorage(clock=clock)
        state = make_state(clock, authorization_code_db=shared, access_token_db=shared,
                           refresh_token_db=shared, refresh_token_lifetime=100)
        access, refresh = redeem(state, issue_code(state))
        for value in (access.value, refresh):
            with pytest.raises(InvalidAuthorizationCode):
                state.get_authorization_code(value)

    def test_non_dict_record_ignored(self, clock: FakeClock) -> None:
        state = make_state(clock, authorization_code_db={"code": "garbage"})
        with pytest.raises(InvalidAuthorizationCode):
            state.get_authorization_code("code")

    def test_redeem(self, state: AuthorizationState, clock: FakeClock) -> None:
        code = issue_code(state, auth_req=dict(AUTH_REQ, claims={"userinfo": {"name": None}}))
        access, refresh = redeem(state, code)
        assert isinstance(access, AccessToken)
        assert access.type == "Bearer" and access.expires_in == 3600
        assert refresh is not None
        record = state.get_access_token(access.value)
        assert record["sub"] == SUB and record["user_id"] == USER_ID
        assert record["client_id"] == CLIENT_ID and record["scope"] == "openid email"
        assert record["claims"] == {"name": None}
        assert record["exp"] == clock.now + 3600
        used = state.get_authorization_code(code)
        assert used["used"] is True
        assert used["issued"] == {"access_token": access.value, "refresh_token": refresh}
        # what a replay needs, without the authentication request
        assert "auth_req" not in used
        assert used["client_id"] == CLIENT_ID and used["token_type"] == "authorization_code"

    def test_no_refresh_token_without_lifetime(self, clock: FakeClock) -> None:
        state = make_state(clock)
        access, refresh = redeem(state, issue_code(state))
        assert refresh is None
        assert state.get_access_token(access.value)

    def test_replay_revokes_issued_tokens(self, state: AuthorizationState) -> None:
        code = issue_code(state)
        access, refresh = redeem(state, code)
        with pytest.raises(InvalidAuthorizationCode, match="already used"):
            redeem(state, code)
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)

    def test_concurrent_redemption_loses_and_revokes(self, state: AuthorizationState) -> None:
        code = issue_code(state)
        stale = state.get_authorization_code(code)
        access, _ = state.redeem_authorization_code(code, stale)
        with pytest.raises(InvalidAuthorizationCode, match="already used"):
            state.redeem_authorization_code(code, stale)  # compare-and-set fails
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)

    def test_replay_right_after_the_mark_revokes_the_refresh_token_too(
            self, clock: FakeClock) -> None:
        """A replay landing between the winner's mark and its return still finds every
        token of the grant (RFC 6749 4.1.2, RFC 9700 4.14.2)."""
        replayed: dict[str, Any] = {}

        class ReplayAfterMark(MemoryStorage):
            def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                         expires_at: Optional[float], other: Any,
                                         other_key: str, other_value: Any,
                                         other_expires_at: Optional[float] = None) -> bool:
                won = super().compare_and_set_then_set(key, expected, new, expires_at, other,
                                                       other_key, other_value,
                                                       other_expires_at)
                if won and not replayed:
                    replayed["done"] = True
                    with pytest.raises(InvalidAuthorizationCode):
                        state.redeem_authorization_code(key, self.get(key))
                return won

        state = make_state(clock, refresh_token_lifetime=3600,
                           authorization_code_db=ReplayAfterMark(clock=clock))
        access, refresh = redeem(state, issue_code(state))
        assert replayed and refresh is not None
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)
        assert state.get_refresh_token(refresh) is None

    def test_losing_redemption_leaves_no_refresh_token(self, clock: FakeClock) -> None:
        refresh_db = MemoryStorage(clock=clock)
        state = make_state(clock, refresh_token_lifetime=3600,
                           authorization_code_db=FailingCAS(clock=clock),
                           refresh_token_db=refresh_db)
        code = issue_code(state)
        with pytest.raises(InvalidAuthorizationCode):
            redeem(state, code)
        assert len(refresh_db) == 0

    def test_losing_redemption_reports_the_loss_when_cleanup_fails(
            self, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
        class NoDelete(MemoryStorage):
            def delete(self, key: str) -> bool:
                raise StorageError("down")

        state = make_state(clock, refresh_token_lifetime=3600,
                           authorization_code_db=FailingCAS(clock=clock),
                           refresh_token_db=NoDelete(clock=clock))
        with pytest.raises(InvalidAuthorizationCode):
            redeem(state, issue_code(state))
        assert "could not remove the refresh token" in caplog.text

    def test_replay_of_a_corrupt_used_record(self, clock: FakeClock) -> None:
        codes: dict[str, Any] = {}
        state = make_state(clock, authorization_code_db=codes)
        code = issue_code(state)
        codes[code] = dict(codes[code], used=True, issued={"access_token": 5})
        with pytest.raises(InvalidAuthorizationCode, match="already used"):
            redeem(state, code)

    def test_compare_and_set_failure_on_vanished_code(self, clock: FakeClock) -> None:
        state = make_state(clock, authorization_code_db=FailingCAS(clock=clock))
        code = issue_code(state)
        record = state.get_authorization_code(code)
        state.authorization_codes.delete(code)
        with pytest.raises(InvalidAuthorizationCode):
            state.redeem_authorization_code(code, record)

    def test_used_code_kept_until_access_token_expiry(self, state: AuthorizationState,
                                                      clock: FakeClock) -> None:
        code = issue_code(state)
        access, _ = redeem(state, code)
        clock.advance(3000)  # beyond the code lifetime, within the access token's
        with pytest.raises(InvalidAuthorizationCode):
            redeem(state, code)
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)

    def test_message_request_accepted(self, state: AuthorizationState) -> None:
        req = AuthorizationRequest().from_dict(
            dict(AUTH_REQ, claims={"userinfo": {"email": {"essential": True}}}))
        access = state.create_access_token(req, SUB, USER_ID, ["openid"])
        assert state.get_access_token(access.value)["claims"] == {
            "email": {"essential": True}}


class TestSealedStorage:
    def sealed_state(self, clock: FakeClock, **kwargs: Any) -> AuthorizationState:
        secret = "s" * 32
        return make_state(
            clock,
            authorization_code_db=StatelessWrapper("authz_codes", secret, clock=clock),
            access_token_db=StatelessWrapper("access_tokens", secret, clock=clock),
            refresh_token_db=StatelessWrapper("refresh_tokens", secret, clock=clock),
            subject_identifier_db=StatelessWrapper("subject_identifiers", secret, clock=clock),
            **kwargs)

    def test_sealed_code_single_use(self, clock: FakeClock) -> None:
        state = self.sealed_state(clock, refresh_token_lifetime=100)
        code = issue_code(state)
        record = state.get_authorization_code(code)
        access, refresh = state.redeem_authorization_code(code, record)
        assert state.get_access_token(access.value)["sub"] == SUB
        assert refresh is not None
        new_access, new_refresh, _ = state.use_refresh_token(refresh, CLIENT_ID)
        assert new_refresh is None
        assert state.get_access_token(new_access.value)["scope"] == "openid email"
        # the spent code reads as a used one, and its replay revokes the grant
        spent = state.get_authorization_code(code)
        assert spent["used"] is True and spent["grant_id"]
        with pytest.raises(InvalidAuthorizationCode):
            state.redeem_authorization_code(code, spent)
        with pytest.raises(InvalidAuthorizationCode):
            state.redeem_authorization_code(code, record)
        for token in (access, new_access):
            with pytest.raises(InvalidAccessToken):
                state.get_access_token(token.value)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)

    def test_sealed_refresh_rotation(self, clock: FakeClock) -> None:
        state = self.sealed_state(clock, refresh_token_lifetime=100, refresh_token_threshold=200)
        _, refresh = redeem(state, issue_code(state))
        assert refresh is not None
        _, rotated, _ = state.use_refresh_token(refresh, CLIENT_ID, ["openid"])
        assert rotated is not None and rotated != refresh
        _, again, record = state.use_refresh_token(rotated, CLIENT_ID)
        assert record["scope"] == "openid email"  # the rotated token keeps the full grant
        assert again is not None
        # the reuse of a rotated token is refused and revokes the grant (RFC 9700 4.14.2)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(again, CLIENT_ID)

    def test_sealed_refresh_rotation_race(self, clock: FakeClock) -> None:
        state = self.sealed_state(clock, refresh_token_lifetime=100, refresh_token_threshold=200)
        _, refresh = redeem(state, issue_code(state))
        assert refresh is not None
        original_get = state.refresh_tokens.get
        record = original_get(refresh)
        state.refresh_tokens.consume(refresh)  # another worker won
        state.refresh_tokens.get = lambda key, default=None: record  # type: ignore[method-assign]
        with pytest.raises(InvalidRefreshToken, match="already used"):
            state.use_refresh_token(refresh, CLIENT_ID)

    def test_sealed_subject_identifiers_not_recorded(self, clock: FakeClock) -> None:
        """A sealed subject identifier store records nothing: only the process that made a
        ``sub`` knows it, for as long as its codes and tokens live (pyop 3's stateless
        mode kept them in memory)."""
        state = self.sealed_state(clock)
        sub = state.get_subject_identifier("public", USER_ID)
        assert sub == HashBasedSubjectIdentifierFactory("salt").create_public_identifier(USER_ID)
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID
        other_process = self.sealed_state(clock)
        with pytest.raises(InvalidSubjectIdentifier):
            other_process.get_user_id_for_subject_identifier(sub)
        clock.advance(3600)  # max(code lifetime, access token lifetime)
        with pytest.raises(InvalidSubjectIdentifier):
            state.get_user_id_for_subject_identifier(sub)


class TestAccessTokens:
    def test_create_and_introspect(self, state: AuthorizationState, clock: FakeClock) -> None:
        access = state.create_access_token(AUTH_REQ, SUB, USER_ID, ["openid", "profile"])
        assert access.expires_in == 3600
        record = state.get_access_token(access.value)
        assert record["scope"] == "openid profile"
        assert record["token_type"] == "access_token"
        assert record["iat"] == clock.now and record["exp"] == clock.now + 3600
        assert record["claims"] is None

    def test_lifetime(self, clock: FakeClock) -> None:
        state = make_state(clock, access_token_lifetime=60)
        access = state.create_access_token(AUTH_REQ, SUB, USER_ID, ["openid"])
        assert access.expires_in == 60
        clock.advance(59)
        assert state.get_access_token(access.value)
        clock.advance(1)
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)

    @pytest.mark.parametrize("value", [None, "", 1, "unknown", "a" * 5000])
    def test_unknown(self, state: AuthorizationState, value: Any) -> None:
        with pytest.raises(InvalidAccessToken) as info:
            state.get_access_token(value)
        assert info.value.http_status == 401

    def test_expired_record_in_a_plain_dict(self, clock: FakeClock) -> None:
        # records a host wrote itself carry no storage expiry: the record's exp decides
        tokens = {"tok": {"token_type": "access_token", "exp": clock.now, "scope": "openid"}}
        state = make_state(clock, access_token_db=tokens)
        with pytest.raises(InvalidAccessToken):
            state.get_access_token("tok")
        tokens["tok"]["exp"] = clock.now + 1
        assert state.get_access_token("tok")["scope"] == "openid"

    def test_revoke(self, state: AuthorizationState) -> None:
        access = state.create_access_token(AUTH_REQ, SUB, USER_ID, ["openid"])
        assert state.revoke_access_token(access.value) is True
        assert state.revoke_access_token(access.value) is False
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)

    def test_token_types_not_interchangeable_in_shared_storage(self, clock: FakeClock) -> None:
        shared = MemoryStorage(clock=clock)
        state = make_state(clock, access_token_db=shared, refresh_token_db=shared,
                           refresh_token_lifetime=100)
        access, refresh = redeem(state, issue_code(state))
        assert refresh is not None
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(refresh)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(access.value, CLIENT_ID)

    def test_repr_hides_value(self) -> None:
        token = AccessToken("secret-value", 10)
        assert "secret-value" not in repr(token)
        assert repr(token) == "AccessToken(type='Bearer', expires_in=10)"


class TestRefreshTokens:
    def test_use(self, state: AuthorizationState, clock: FakeClock) -> None:
        first_access, refresh = redeem(state, issue_code(state))
        assert refresh is not None
        clock.advance(10)
        access, new_refresh, record = state.use_refresh_token(refresh, CLIENT_ID)
        assert new_refresh is None
        assert record["token_type"] == "refresh_token"
        assert record["exp"] == clock.now - 10 + 3600
        assert state.get_access_token(access.value)["iat"] == clock.now
        # revoking the grant reaches every access token issued from it
        state.revoke_refresh_token(refresh)
        for token in (access, first_access):
            with pytest.raises(InvalidAccessToken):
                state.get_access_token(token.value)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)

    def test_grant_record_lists_the_first_access_token_only(self, clock: FakeClock) -> None:
        """The refresh token's record lists the access token issued with it (read without
        the grant's mark) and is never rewritten by a refresh: the later access tokens
        carry the grant id instead (RFC 7009 2.1 through the grant's revocation mark)."""
        state = make_state(clock, refresh_token_lifetime=10_000, access_token_lifetime=100)
        first, refresh = redeem(state, issue_code(state))
        assert refresh is not None
        record = state.refresh_tokens.get(refresh)
        assert record["access_tokens"] == [[first.value, clock.now + 100]]
        assert "grant_id" not in state.get_access_token(first.value)
        clock.advance(50)
        second, _, _ = state.use_refresh_token(refresh, CLIENT_ID)
        assert state.refresh_tokens.get(refresh) == record
        assert state.get_access_token(second.value)["grant_id"] == record["grant_id"]

    def test_refresh_makes_no_compare_and_set(self, clock: FakeClock) -> None:
        """Concurrent refreshes of one refresh token no longer contend on its record: a
        store whose every compare-and-set fails still refreshes (without rotation)."""
        access_db = MemoryStorage(clock=clock)
        state = make_state(clock, refresh_token_lifetime=100, access_token_db=access_db,
                           refresh_token_db=FailingCAS(clock=clock))
        first, refresh = redeem(state, issue_code(state))
        assert refresh is not None
        second, _, _ = state.use_refresh_token(refresh, CLIENT_ID)
        state.revoke_refresh_token(refresh)
        for token in (first, second):
            with pytest.raises(InvalidAccessToken):
                state.get_access_token(token.value)

    def test_forced_rotation(self, state: AuthorizationState) -> None:
        _, refresh = redeem(state, issue_code(state))
        _, rotated, _ = state.use_refresh_token(refresh, CLIENT_ID, rotate=True)
        assert rotated is not None and rotated != refresh
        _, kept, _ = state.use_refresh_token(rotated, CLIENT_ID)
        assert kept is None  # no threshold: rotation only when asked
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)

    def test_other_client(self, state: AuthorizationState) -> None:
        _, refresh = redeem(state, issue_code(state))
        with pytest.raises(InvalidRefreshToken, match="another client"):
            state.use_refresh_token(refresh, "other")

    def test_expiry(self, state: AuthorizationState, clock: FakeClock) -> None:
        _, refresh = redeem(state, issue_code(state))
        clock.advance(3600)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)

    def test_scope(self, state: AuthorizationState) -> None:
        _, refresh = redeem(state, issue_code(state, scope=("openid", "email", "phone")))
        access, _, _ = state.use_refresh_token(refresh, CLIENT_ID, ["phone", "openid"])
        assert state.get_access_token(access.value)["scope"] == "openid phone"
        access, _, _ = state.use_refresh_token(refresh, CLIENT_ID, [])
        assert state.get_access_token(access.value)["scope"] == ""
        with pytest.raises(InvalidScope):
            state.use_refresh_token(refresh, CLIENT_ID, ["openid", "address"])
        access, _, _ = state.use_refresh_token(refresh, CLIENT_ID)
        assert state.get_access_token(access.value)["scope"] == "openid email phone"

    @pytest.mark.parametrize("threshold,elapsed,rotates", [
        (None, 3599, False), (0, 3599, False), (100, 3500, False), (100, 3501, True),
        (5000, 0, True)])
    def test_threshold(self, clock: FakeClock, threshold: Optional[int], elapsed: int,
                       rotates: bool) -> None:
        state = make_state(clock, refresh_token_lifetime=3600,
                           refresh_token_threshold=threshold)
        _, refresh = redeem(state, issue_code(state))
        clock.advance(elapsed)
        _, new_refresh, _ = state.use_refresh_token(refresh, CLIENT_ID)
        assert (new_refresh is not None) is rotates

    def test_rotation_chain_revocation(self, clock: FakeClock) -> None:
        state = make_state(clock, refresh_token_lifetime=100, refresh_token_threshold=1000)
        _, first = redeem(state, issue_code(state))
        access2, second, _ = state.use_refresh_token(first, CLIENT_ID)
        access3, third, _ = state.use_refresh_token(second, CLIENT_ID)
        assert None not in (second, third)
        assert state.get_access_token(access3.value)
        # replaying the first token revokes the whole chain
        with pytest.raises(InvalidRefreshToken, match="already used"):
            state.use_refresh_token(first, CLIENT_ID)
        for token in (second, third):
            with pytest.raises(InvalidRefreshToken):
                state.use_refresh_token(token, CLIENT_ID)
        for access in (access2, access3):
            with pytest.raises(InvalidAccessToken):
                state.get_access_token(access.value)

    def test_rotation_race_revokes(self, clock: FakeClock) -> None:
        state = make_state(clock, refresh_token_lifetime=100, refresh_token_threshold=1000,
                           refresh_token_db=FailingCAS(clock=clock))
        access, refresh = redeem(state, issue_code(state))
        with pytest.raises(InvalidRefreshToken, match="already used"):
            state.use_refresh_token(refresh, CLIENT_ID)
        with pytest.raises(InvalidRefreshToken):
            state.use_refresh_token(refresh, CLIENT_ID)
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(access.value)

    def test_revoke_unknown_is_harmless(self, state: AuthorizationState) -> None:
        state.revoke_refresh_token("unknown")

    def test_revoke_cycle_is_bounded(self, clock: FakeClock) -> None:
        store = MemoryStorage(clock=clock)
        store.set("a", {"replaced_by": "b", "access_tokens": [[5, 0], [], "x"]})
        store.set("b", {"replaced_by": "a", "access_tokens": None})
        state = make_state(clock, refresh_token_db=store, refresh_token_lifetime=10)
        state.revoke_refresh_token("a")
        assert store.get("a") is None and store.get("b") is None


class TestSubjectIdentifiers:
    def test_public(self, state: AuthorizationState) -> None:
        sub = state.get_subject_identifier("public", USER_ID)
        assert sub == state.get_subject_identifier("public", USER_ID)
        assert sub != state.get_subject_identifier("public", "bob")
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID

    def test_pairwise(self, state: AuthorizationState) -> None:
        sub_a = state.get_subject_identifier("pairwise", USER_ID, "a.example.com")
        sub_b = state.get_subject_identifier("pairwise", USER_ID, "b.example.com")
        public = state.get_subject_identifier("public", USER_ID)
        assert len({sub_a, sub_b, public}) == 3
        assert sub_a == state.get_subject_identifier("pairwise", USER_ID, "a.example.com")
        for sub in (sub_a, sub_b, public):
            assert state.get_user_id_for_subject_identifier(sub) == USER_ID
        assert state.subject_identifiers.get(sub_a) == {"user_id": USER_ID, "type": "pairwise"}

    @pytest.mark.parametrize("cache_ttl", [None, 60])
    def test_recorded_subject_identifier(self, clock: FakeClock, cache_ttl: Optional[int],
                                         caplog: pytest.LogCaptureFixture) -> None:
        # a sub chosen in the user record (not made by the factory)
        state = make_state(clock, subject_identifier_cache_ttl=cache_ttl)
        state.record_subject_identifier("chosen", USER_ID)
        state.record_subject_identifier("chosen", USER_ID)
        assert state.subject_identifiers.get("chosen") == {"user_id": USER_ID, "type": "public"}
        assert state.get_user_id_for_subject_identifier("chosen") == USER_ID
        with caplog.at_level(logging.WARNING, logger="pyop.authz_state"):
            state.record_subject_identifier("chosen", "bob")  # the user data changed
        assert state.get_user_id_for_subject_identifier("chosen") == "bob"
        assert "another user" in caplog.text and "chosen" not in caplog.text
        state.delete_state_for_subject_identifier("chosen")  # logout
        state.record_subject_identifier("chosen", "bob")
        assert state.get_user_id_for_subject_identifier("chosen") == "bob"

    def test_pairwise_needs_sector(self, state: AuthorizationState) -> None:
        with pytest.raises(ValueError, match="sector"):
            state.get_subject_identifier("pairwise", USER_ID)

    def test_unknown_type(self, state: AuthorizationState) -> None:
        with pytest.raises(ValueError, match="subject_type"):
            state.get_subject_identifier("ephemeral", USER_ID)

    @pytest.mark.parametrize("sub", ["unknown", None, 5])
    def test_unknown_lookup(self, state: AuthorizationState, sub: Any) -> None:
        with pytest.raises(InvalidSubjectIdentifier):
            state.get_user_id_for_subject_identifier(sub)
        with pytest.raises(InvalidSubjectIdentifier):
            state.delete_state_for_subject_identifier(sub)

    def test_delete_keeps_the_mapping(self, state: AuthorizationState) -> None:
        # as pyop 3: logout revokes the grants, the sub -> user_id mapping stays
        sub = state.get_subject_identifier("public", USER_ID)
        state.delete_state_for_subject_identifier(sub)
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID
        state.delete_state_for_subject_identifier(sub)  # a second logout is no error
        assert state.get_subject_identifier("public", USER_ID) == sub
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID

    def test_public_is_pinned(self, clock: FakeClock) -> None:
        """As in pyop 3: the first public ``sub`` recorded for a user stays, even when
        the factory's salt changes (SATOSA's default salt is random per start)."""
        db: dict[str, Any] = {}
        first = make_state(clock, subject_identifier_db=db)
        sub = first.get_subject_identifier("public", USER_ID)
        assert db[USER_ID] == {"public": sub}
        assert db[sub] == {"user_id": USER_ID, "type": "public"}
        other_salt = AuthorizationState(HashBasedSubjectIdentifierFactory("another salt"),
                                        subject_identifier_db=db, clock=clock)
        assert other_salt.get_subject_identifier("public", USER_ID) == sub
        assert other_salt.get_subject_identifier("pairwise", USER_ID, "rp.example.com") != \
            first.get_subject_identifier("pairwise", USER_ID, "rp.example.com")

    def test_pyop3_record_is_read(self, clock: FakeClock) -> None:
        """pyop 3 kept ``user_id -> {"public": sub, "pairwise": [...]}``; its public
        ``sub`` (a custom one included) is issued and gets its reverse record."""
        db: dict[str, Any] = {USER_ID: {"public": "custom-sub", "pairwise": ["p1"]}}
        state = make_state(clock, subject_identifier_db=db)
        assert state.get_subject_identifier("public", USER_ID) == "custom-sub"
        assert state.get_user_id_for_subject_identifier("custom-sub") == USER_ID
        assert db[USER_ID] == {"public": "custom-sub", "pairwise": ["p1"]}  # untouched
        state.delete_state_for_subject_identifier("custom-sub")
        assert state.get_subject_identifier("public", USER_ID) == "custom-sub"

    def test_sub_equal_to_a_user_id(self, clock: FakeClock) -> None:
        """One key both a user id (its pinned sub) and a sub (reverse record)."""
        db: dict[str, Any] = {USER_ID: {"public": USER_ID}}
        state = make_state(clock, subject_identifier_db=db)
        assert state.get_subject_identifier("public", USER_ID) == USER_ID
        assert db[USER_ID] == {"public": USER_ID, "user_id": USER_ID, "type": "public"}
        state.delete_state_for_subject_identifier(USER_ID)
        # logout keeps both the pin and the mapping (as pyop 3 kept its record)
        assert db[USER_ID] == {"public": USER_ID, "user_id": USER_ID, "type": "public"}
        assert state.get_user_id_for_subject_identifier(USER_ID) == USER_ID
        assert state.get_subject_identifier("public", USER_ID) == USER_ID

    def test_sub_recorded_for_another_user_is_kept(self, clock: FakeClock) -> None:
        db: dict[str, Any] = {"bob": {"public": "shared"},
                              "shared": {"user_id": "carol", "type": "public"}}
        state = make_state(clock, subject_identifier_db=db)
        assert state.get_subject_identifier("public", "bob") == "shared"
        assert state.get_user_id_for_subject_identifier("shared") == "carol"

    def test_record_without_user_id(self, clock: FakeClock) -> None:
        state = make_state(clock, subject_identifier_db={"s": {"type": "public"}})
        with pytest.raises(InvalidSubjectIdentifier):
            state.get_user_id_for_subject_identifier("s")
