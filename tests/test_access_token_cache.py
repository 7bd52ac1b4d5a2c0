"""The opt-in cache of the access tokens a process issued
(``AuthorizationState(access_token_cache_ttl=...)``).

UserInfo, introspection (RFC 7662) and revocation (RFC 7009) lookups in the process that
issued an access token answer it without reading ``access_token_db``, for at most
``access_token_cache_ttl`` seconds and never past the token's ``exp``. A revocation made
through this process is seen at once; one made through another process only when the
entry expires (the documented trade-off, asserted here both ways). Storage calls are
counted, nothing is timed; several processes are simulated by several
``AuthorizationState`` objects over the same stores.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER_ID, FakeClock, configuration
from conftest import clients as base_clients
from support.races import race_code_redemptions

import pyop.authz_state
from benchmarks.counting import CountingStore
from pyop.authz_state import AuthorizationState
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    OAuthError,
    TokenWithoutEndUser,
)
from pyop.provider import Provider
from pyop.storage import MemoryStorage, StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

TTL = 60
SERVICE = "service-client"
SERVICE_SECRET = "secret-of-the-service-client"


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(
        f"{client_id}:{secret}".encode()).decode("ascii")}


def config() -> dict[str, Any]:
    result = configuration()
    result.update(grant_types_supported=["authorization_code", "implicit", "refresh_token",
                                         "client_credentials"],
                  introspection_endpoint=result["issuer"] + "/introspect",
                  revocation_endpoint=result["issuer"] + "/revoke")
    return result


def clients() -> dict[str, Any]:
    result = base_clients()
    result[SERVICE] = {"client_id": SERVICE, "client_secret": SERVICE_SECRET,
                       "redirect_uris": [REDIRECT_URI], "response_types": [],
                       "grant_types": ["client_credentials"]}
    return result


class TokenStore(CountingStore):
    """Counts the reads of logout marks (kept with the access tokens) apart, as
    ``mark_get``: ``get`` counts the access token reads."""

    def get(self, key: str, default: Any = None) -> Any:
        if key.startswith("logout:"):
            self.counts["mark_get"] += 1
            return self.inner.get(key, default)
        return super().get(key, default)


class Stores:
    """The stores of a deployment, shared by the simulated processes; access token calls
    counted."""

    def __init__(self, clock: FakeClock) -> None:
        self.codes = MemoryStorage(clock=clock)
        self.access_tokens = TokenStore(MemoryStorage(clock=clock))
        self.refresh_tokens = MemoryStorage(clock=clock)
        self.subjects = MemoryStorage(clock=clock)

    def options(self, ttl: Optional[float] = TTL, **kwargs: Any) -> dict[str, Any]:
        """``AuthorizationState`` arguments of a process over these stores."""
        return dict(authorization_code_db=self.codes, access_token_db=self.access_tokens,
                    refresh_token_db=self.refresh_tokens, subject_identifier_db=self.subjects,
                    access_token_cache_ttl=ttl, **kwargs)

    def state(self, clock: FakeClock, ttl: Optional[float] = TTL,
              **kwargs: Any) -> AuthorizationState:
        return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                                  **self.options(ttl, **kwargs))

    def process(self, make_provider: Callable[..., Provider], ttl: Optional[float] = TTL,
                authz: Optional[dict[str, Any]] = None, **provider_kwargs: Any) -> Provider:
        """A provider process over these stores, refresh tokens on."""
        options = self.options(ttl, refresh_token_lifetime=3600, **(authz or {}))
        return make_provider(config=config(), client_db=clients(), authz_kwargs=options,
                             **provider_kwargs)

    @property
    def reads(self) -> int:
        return self.access_tokens.counts["get"]


@pytest.fixture
def stores(clock: FakeClock) -> Stores:
    return Stores(clock)


@pytest.fixture
def process(make_provider: Callable[..., Provider], stores: Stores) -> Callable[..., Provider]:
    """A provider process over the shared stores (cache on unless ``ttl=None``)."""

    def build(ttl: Optional[float] = TTL, **kwargs: Any) -> Provider:
        return stores.process(make_provider, ttl, **kwargs)

    return build


# -- requests ----------------------------------------------------------------------------------

def code_flow(provider: Provider) -> dict[str, Any]:
    """A code flow; the token response (access and refresh token) and the code."""
    request = provider.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid profile email", "nonce": "n"}))
    code = str(provider.authorize(request, USER_ID)["code"])
    tokens = redeem(provider, code).to_dict()
    tokens["code"] = code
    return dict(tokens)


def redeem(provider: Provider, code: str) -> Any:
    return provider.handle_token_request(urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}),
        basic())


def implicit(provider: Provider, response_type: str = "id_token token") -> dict[str, Any]:
    request = provider.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": response_type,
        "scope": "openid profile", "nonce": "n"}))
    return dict(provider.authorize(request, USER_ID).to_dict())


def refresh(provider: Provider, refresh_token: str) -> dict[str, Any]:
    return dict(provider.handle_token_request(urlencode({
        "grant_type": "refresh_token", "refresh_token": refresh_token}), basic()).to_dict())


def client_credentials(provider: Provider) -> dict[str, Any]:
    response = provider.handle_token_request(urlencode({"grant_type": "client_credentials"}),
                                             basic(SERVICE, SERVICE_SECRET))
    return dict(json.loads(response.to_json()))


def userinfo(provider: Provider, access_token: str) -> dict[str, Any]:
    response = provider.handle_userinfo_request(
        "", {"Authorization": "Bearer " + access_token})
    return dict(response.to_dict())


def introspect(provider: Provider, token: str, client_id: str = CLIENT_ID,
               secret: str = CLIENT_SECRET) -> dict[str, Any]:
    response = provider.handle_introspection_request(urlencode({"token": token}),
                                                     basic(client_id, secret))
    return dict(json.loads(response.to_json()))


def revoke(provider: Provider, token: str, hint: Optional[str] = None) -> None:
    body = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
    provider.handle_revocation_request(urlencode(body), basic())


def cache_of(provider: Provider) -> Any:
    return provider.authz_state._issued_access_tokens


# -- tests -------------------------------------------------------------------------------------

class TestUserinfo:
    def test_off_by_default_userinfo_reads_the_token(
            self, make_provider: Callable[..., Provider], stores: Stores) -> None:
        provider = make_provider(authz_kwargs={"access_token_db": stores.access_tokens})
        assert cache_of(provider) is None
        tokens = code_flow(provider)
        stores.access_tokens.counts.clear()
        assert userinfo(provider, tokens["access_token"])["sub"]
        assert stores.reads == 1
        assert stores.access_tokens.counts["mark_get"] == 1  # the end-user's logout mark

    def test_no_read_after_the_token_response_same_claims(
            self, make_provider: Callable[..., Provider], clock: FakeClock) -> None:
        answers = []
        for ttl in (TTL, None):
            stores = Stores(clock)
            provider = stores.process(make_provider, ttl)
            tokens = code_flow(provider)
            stores.access_tokens.counts.clear()
            answers.append(userinfo(provider, tokens["access_token"]))
            assert stores.reads == (0 if ttl else 1)
        assert answers[0] == answers[1]
        assert answers[0]["sub"] and answers[0]["email"] == "alice@example.com"


class TestEveryIssuingPathCaches:
    @staticmethod
    def answered_from_memory(provider: Provider, stores: Stores, access_token: str,
                             client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> None:
        stores.access_tokens.counts.clear()
        result = introspect(provider, access_token, client_id, secret)
        assert result["active"] is True and result["client_id"] == client_id
        if client_id == CLIENT_ID:
            assert userinfo(provider, access_token)["sub"] == result["sub"]
        assert stores.reads == 0

    @pytest.mark.parametrize("threads", [None, 2], ids=["inline", "executor"])
    def test_code_redemption(self, process: Callable[..., Provider], stores: Stores,
                             threads: Optional[int]) -> None:
        executor = ThreadPoolExecutor(threads) if threads else None
        try:
            provider = process(executor=executor)
            tokens = code_flow(provider)
            self.answered_from_memory(provider, stores, tokens["access_token"])
        finally:
            if executor is not None:
                executor.shutdown()

    @pytest.mark.parametrize("response_type", ["id_token token", "code id_token token"])
    def test_implicit_and_hybrid(self, process: Callable[..., Provider], stores: Stores,
                                 response_type: str) -> None:
        provider = process()
        response = implicit(provider, response_type)
        self.answered_from_memory(provider, stores, response["access_token"])

    def test_refresh_token_grant(self, process: Callable[..., Provider],
                                 stores: Stores) -> None:
        provider = process()
        tokens = code_flow(provider)
        refreshed = refresh(provider, tokens["refresh_token"])
        assert refreshed["access_token"] != tokens["access_token"]
        self.answered_from_memory(provider, stores, refreshed["access_token"])

    def test_refresh_token_grant_with_rotation(self, process: Callable[..., Provider],
                                               stores: Stores) -> None:
        provider = process(authz={"refresh_token_threshold": 7200})  # always rotates
        tokens = code_flow(provider)
        refreshed = refresh(provider, tokens["refresh_token"])
        assert refreshed["refresh_token"] != tokens["refresh_token"]
        self.answered_from_memory(provider, stores, refreshed["access_token"])

    def test_client_credentials(self, process: Callable[..., Provider],
                                stores: Stores) -> None:
        provider = process()
        token = client_credentials(provider)["access_token"]
        self.answered_from_memory(provider, stores, token, SERVICE, SERVICE_SECRET)
        with pytest.raises(TokenWithoutEndUser):  # decided on the cached record too
            userinfo(provider, token)
        assert stores.reads == 0


def test_hit_returns_a_copy(process: Callable[..., Provider], stores: Stores) -> None:
    provider = process()
    token = code_flow(provider)["access_token"]
    state = provider.authz_state
    record = state.get_access_token(token)
    assert record == stores.access_tokens.inner.get(token)
    record["user_id"] = "mallory"
    record["scope"] += " admin"
    again = state.get_access_token(token)
    assert again is not record
    assert again["user_id"] == USER_ID and "admin" not in again["scope"]
    assert again == stores.access_tokens.inner.get(token)


class TestExpiry:
    def test_entry_unused_after_the_ttl(self, process: Callable[..., Provider],
                                        stores: Stores, clock: FakeClock) -> None:
        provider = process()
        token = code_flow(provider)["access_token"]
        clock.advance(TTL - 1)
        stores.access_tokens.counts.clear()
        assert userinfo(provider, token)["sub"]
        assert stores.reads == 0
        clock.advance(1)
        assert userinfo(provider, token)["sub"]  # still valid in storage
        assert introspect(provider, token)["active"] is True
        assert stores.reads == 2  # every answer reads again: a miss does not refill
        assert len(cache_of(provider)) == 0

    def test_never_past_the_token_exp(self, process: Callable[..., Provider],
                                      stores: Stores, clock: FakeClock) -> None:
        provider = process(ttl=3600, authz={"access_token_lifetime": 30})
        token = code_flow(provider)["access_token"]
        clock.advance(29)
        stores.access_tokens.counts.clear()
        assert userinfo(provider, token)["sub"]
        assert stores.reads == 0
        clock.advance(1)  # the token's exp
        with pytest.raises(InvalidAccessToken):
            userinfo(provider, token)
        with pytest.raises(InvalidAccessToken):
            provider.authz_state.get_access_token(token)
        assert introspect(provider, token) == {"active": False}


class TestRevocationThroughThisProcess:
    @pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
    def test_revocation_endpoint(self, process: Callable[..., Provider], stores: Stores,
                                 hint: Optional[str]) -> None:
        provider = process()
        token = code_flow(provider)["access_token"]
        revoke(provider, token, hint)
        assert stores.access_tokens.inner.get(token) is None
        with pytest.raises(InvalidAccessToken):
            userinfo(provider, token)
        assert introspect(provider, token) == {"active": False}

    def test_revoke_access_token(self, process: Callable[..., Provider],
                                 stores: Stores) -> None:
        provider = process()
        token = code_flow(provider)["access_token"]
        assert provider.authz_state.revoke_access_token(token) is True
        assert len(cache_of(provider)) == 0
        with pytest.raises(InvalidAccessToken):
            provider.authz_state.get_access_token(token)
        assert provider.authz_state.revoke_access_token(token) is False

    def test_code_replay_revokes_the_first_token(self, process: Callable[..., Provider]
                                                 ) -> None:
        provider = process()
        tokens = code_flow(provider)
        assert userinfo(provider, tokens["access_token"])["sub"]
        with pytest.raises(InvalidAuthorizationCode, match="already used"):
            redeem(provider, tokens["code"])
        with pytest.raises(InvalidAccessToken):
            userinfo(provider, tokens["access_token"])

    def test_revoked_refresh_token_revokes_its_access_tokens(
            self, process: Callable[..., Provider]) -> None:
        provider = process()
        tokens = code_flow(provider)
        refreshed = refresh(provider, tokens["refresh_token"])
        revoke(provider, tokens["refresh_token"], "refresh_token")
        for token in (tokens["access_token"], refreshed["access_token"]):
            with pytest.raises(InvalidAccessToken):
                userinfo(provider, token)
        assert len(cache_of(provider)) == 0

    @pytest.mark.parametrize("ttl", [TTL, None], ids=["cache", "no-cache"])
    def test_replay_racing_the_redemption_in_this_process_revokes(
            self, make_provider: Callable[..., Provider], stores: Stores,
            ttl: Optional[float]) -> None:
        """A replay of the code (another thread of this process) that runs once the code is
        marked used, before the redemption returns, revokes the token the redemption
        issues: it is not left answered from memory."""
        provider = stores.process(make_provider, ttl)
        replays: list[Exception] = []

        class ReplayOnceMarked(MemoryStorage):
            def compare_and_set_then_set(self, key: str, *args: Any, **kwargs: Any) -> bool:
                done = super().compare_and_set_then_set(key, *args, **kwargs)
                if done and not replays:
                    with pytest.raises(InvalidAuthorizationCode) as info:
                        redeem(provider, key)
                    replays.append(info.value)
                return done

        codes = ReplayOnceMarked(clock=stores.codes._clock)
        provider.authz_state.authorization_codes = codes
        token = code_flow(provider)["access_token"]
        assert replays and "already used" in str(replays[0])
        assert stores.access_tokens.inner.get(token) is None
        with pytest.raises(InvalidAccessToken):
            userinfo(provider, token)

    @pytest.mark.parametrize("ttl", [TTL, None], ids=["cache", "no-cache"])
    def test_grant_revoked_as_the_refreshed_token_is_stored(
            self, make_provider: Callable[..., Provider], clock: FakeClock,
            ttl: Optional[float]) -> None:
        """A revocation of the grant (another thread of this process) made once the new
        access token is stored: the refresh took effect before it and is answered, and the
        token, which carries the grant id, is refused here and in the cache (RFC 7009
        2.1)."""
        hooks: list[Callable[[], None]] = []
        stored: list[str] = []

        class RevokeOnceStored(MemoryStorage):
            def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
                super().set(key, value, expires_at=expires_at)
                stored.append(key)
                while hooks:
                    hooks.pop()()

        stores = Stores(clock)
        stores.access_tokens = CountingStore(RevokeOnceStored(clock=clock))
        provider = stores.process(make_provider, ttl)
        tokens = code_flow(provider)
        hooks.append(lambda: revoke(provider, tokens["refresh_token"], "refresh_token"))
        token = refresh(provider, tokens["refresh_token"])["access_token"]
        assert not hooks and stored[-1] == token
        for value in (token, tokens["access_token"]):
            with pytest.raises(InvalidAccessToken):
                userinfo(provider, value)
        with pytest.raises(OAuthError) as refused:
            refresh(provider, tokens["refresh_token"])
        assert refused.value.oauth_error == "invalid_grant"

    @pytest.mark.parametrize("ttl", [TTL, None], ids=["cache", "no-cache"])
    def test_grant_revoked_once_the_refresh_token_is_read(
            self, make_provider: Callable[..., Provider], clock: FakeClock,
            ttl: Optional[float]) -> None:
        """A revocation of the grant landing right after the refresh read the refresh
        token: the refresh reads the grant's mark next and is refused; no token is
        stored."""
        hooks: list[Callable[[], None]] = []

        class RevokeOnceRead(MemoryStorage):
            def get(self, key: str, default: Any = None) -> Any:
                value = super().get(key, default)
                while hooks:
                    hooks.pop()()
                return value

        stores = Stores(clock)
        stores.refresh_tokens = RevokeOnceRead(clock=clock)
        provider = stores.process(make_provider, ttl)
        tokens = code_flow(provider)
        hooks.append(lambda: revoke(provider, tokens["refresh_token"], "refresh_token"))
        with pytest.raises(OAuthError) as refused:
            refresh(provider, tokens["refresh_token"])
        assert refused.value.oauth_error == "invalid_grant"
        assert not hooks
        assert [key for key in stores.access_tokens.inner.keys()
                if not key.startswith("grant:")] == []

    def test_concurrent_redemptions_one_wins_and_is_revoked(
            self, make_provider: Callable[..., Provider], stores: Stores) -> None:
        executor = ThreadPoolExecutor(4)
        try:
            provider = stores.process(make_provider, executor=executor)
            codes = []
            for _ in range(20):
                request = provider.parse_authentication_request(urlencode({
                    "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                    "response_type": "code", "scope": "openid", "nonce": "n"}))
                codes.append(str(provider.authorize(request, USER_ID)["code"]))

            for winner in race_code_redemptions(
                    lambda code: redeem(provider, code)["access_token"], codes):
                with pytest.raises(InvalidAccessToken):  # revoked by a loser (4.1.2)
                    userinfo(provider, winner)
        finally:
            executor.shutdown()


def _revoke_directly(other: Provider, tokens: dict[str, Any]) -> None:
    assert other.authz_state.revoke_access_token(tokens["access_token"]) is True


def _replay(other: Provider, tokens: dict[str, Any]) -> None:
    with pytest.raises(InvalidAuthorizationCode, match="already used"):
        redeem(other, tokens["code"])


REVOCATIONS_ELSEWHERE: dict[str, Callable[[Provider, dict[str, Any]], None]] = {
    "revocation endpoint": lambda other, tokens: revoke(other, tokens["access_token"]),
    "revoke_access_token": _revoke_directly,
    "code replay": _replay,
    "refresh token revoked": lambda other, tokens: revoke(
        other, tokens["refresh_token"], "refresh_token"),
}


@pytest.mark.parametrize("how", list(REVOCATIONS_ELSEWHERE))
def test_revocation_through_another_process_is_seen_when_the_entry_expires(
        process: Callable[..., Provider], stores: Stores, clock: FakeClock, how: str) -> None:
    """The documented trade-off: up to ``access_token_cache_ttl`` seconds in the issuing
    process; at once in any process without an entry."""
    issuer, other = process(), process()
    tokens = code_flow(issuer)
    REVOCATIONS_ELSEWHERE[how](other, tokens)
    token = tokens["access_token"]
    assert stores.access_tokens.inner.get(token) is None
    with pytest.raises(InvalidAccessToken):
        userinfo(other, token)
    # the issuer still answers from memory until its entry expires
    clock.advance(TTL - 1)
    assert userinfo(issuer, token)["sub"]
    assert introspect(issuer, token)["active"] is True
    clock.advance(1)
    with pytest.raises(InvalidAccessToken):
        userinfo(issuer, token)
    assert introspect(issuer, token) == {"active": False}


class TestSealedAccessTokens:
    def test_no_cache_flows_work(self, make_provider: Callable[..., Provider],
                                 clock: FakeClock) -> None:
        sealer = StatelessWrapper("access_tokens", "k" * 32)
        provider = make_provider(config=config(), client_db=clients(), authz_kwargs={
            "access_token_db": sealer, "access_token_cache_ttl": TTL,
            "refresh_token_lifetime": 3600})
        assert cache_of(provider) is None
        tokens = code_flow(provider)
        assert userinfo(provider, tokens["access_token"])["sub"]
        assert introspect(provider, tokens["access_token"])["active"] is True
        assert userinfo(provider, implicit(provider)["access_token"])["sub"]
        assert userinfo(provider, refresh(provider, tokens["refresh_token"])["access_token"])
        token = client_credentials(provider)["access_token"]
        assert introspect(provider, token, SERVICE, SERVICE_SECRET)["active"] is True


class TestConfiguration:
    @pytest.mark.parametrize("ttl", [True, False, "5", -1, -0.5, float("inf"), float("nan"),
                                     [5]])
    def test_invalid_values(self, stores: Stores, clock: FakeClock, ttl: Any) -> None:
        with pytest.raises(ValueError, match="access_token_cache_ttl"):
            stores.state(clock, ttl)

    @pytest.mark.parametrize("ttl", [0, 0.0, None])
    def test_zero_and_none_mean_off(self, process: Callable[..., Provider], stores: Stores,
                                    ttl: Optional[float]) -> None:
        provider = process(ttl=ttl)
        assert cache_of(provider) is None
        token = code_flow(provider)["access_token"]
        stores.access_tokens.counts.clear()
        assert userinfo(provider, token)["sub"]
        assert stores.reads == 1

    @pytest.mark.parametrize("ttl", [0.5, 1, 86400])
    def test_valid_values(self, stores: Stores, clock: FakeClock, ttl: float) -> None:
        state = stores.state(clock, ttl)
        assert state._issued_access_tokens is not None
        assert state._issued_access_tokens.ttl == ttl


class TestMiss:
    def test_token_of_another_process_is_read(self, process: Callable[..., Provider],
                                              stores: Stores) -> None:
        issuer, other = process(), process()
        token = code_flow(issuer)["access_token"]
        stores.access_tokens.counts.clear()
        assert userinfo(other, token)["sub"]
        assert introspect(other, token)["active"] is True
        assert stores.reads == 2
        assert len(cache_of(other)) == 0  # a read does not fill the cache

    @pytest.mark.parametrize("value", [None, 42, ["x"], {"a": 1}, b"x", "", "unknown",
                                       "x" * 5000])
    def test_not_a_string_or_unknown(self, stores: Stores, clock: FakeClock,
                                     value: Any) -> None:
        state = stores.state(clock)
        state.create_access_token({"client_id": CLIENT_ID}, "sub", USER_ID, ["openid"])
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(value)

    def test_a_record_that_is_not_an_access_token(self, clock: FakeClock) -> None:
        shared = MemoryStorage(clock=clock)  # a deployment putting both in one store
        state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), None, shared,
                                   shared, clock=clock, refresh_token_lifetime=3600,
                                   access_token_cache_ttl=TTL)
        code = state.create_authorization_code({"client_id": CLIENT_ID}, "sub", USER_ID,
                                               ["openid"])
        access, refresh_token = state.redeem_authorization_code(
            code, state.get_authorization_code(code))
        assert state.get_access_token(access.value)["token_type"] == "access_token"
        with pytest.raises(InvalidAccessToken):
            state.get_access_token(refresh_token)


def test_bounded_least_recently_used_first_out(
        monkeypatch: pytest.MonkeyPatch, process: Callable[..., Provider],
        stores: Stores) -> None:
    monkeypatch.setattr(pyop.authz_state, "ACCESS_TOKEN_CACHE_SIZE", 2)
    provider = process()
    first = implicit(provider)["access_token"]
    second = implicit(provider)["access_token"]
    assert userinfo(provider, first)  # used: the second one is now the least recent
    third = implicit(provider)["access_token"]
    assert len(cache_of(provider)) == 2
    stores.access_tokens.counts.clear()
    for token in (first, third):
        assert userinfo(provider, token)["sub"]
    assert stores.reads == 0
    assert userinfo(provider, second)["sub"]  # evicted: read from storage, still valid
    assert stores.reads == 1


# -- same outcomes with and without the cache --------------------------------------------------

#: Steps ``(process, action, label)`` run in turn. Revocations made through another process
#: are only followed by reads in the issuing process once ``access_token_cache_ttl`` has
#: passed: within it, the outcomes differ by design (see the test above).
SCENARIOS: list[list[tuple[str, str, str]]] = [
    [("A", "flow", "t"), ("A", "userinfo", "t"), ("B", "userinfo", "t"),
     ("A", "introspect", "t")],
    [("A", "flow", "t"), ("A", "revoke", "t"), ("A", "userinfo", "t"),
     ("B", "introspect", "t")],
    [("A", "flow", "t"), ("A", "replay", "t"), ("A", "userinfo", "t"), ("B", "userinfo", "t")],
    [("A", "flow", "t"), ("A", "refresh", "t>u"), ("A", "userinfo", "u"),
     ("A", "revoke_refresh", "t"), ("A", "userinfo", "t"), ("A", "introspect", "u")],
    [("A", "flow", "t"), ("B", "revoke", "t"), ("B", "userinfo", "t"), ("-", "ttl", ""),
     ("A", "userinfo", "t"), ("A", "introspect", "t")],
    [("A", "flow", "t"), ("B", "replay", "t"), ("-", "ttl", ""), ("A", "introspect", "t")],
    [("A", "implicit", "i"), ("A", "cc", "c"), ("A", "userinfo", "i"), ("A", "userinfo", "c"),
     ("B", "introspect", "c"), ("A", "revoke", "i"), ("B", "userinfo", "i")],
    [("A", "flow", "t"), ("-", "ttl", ""), ("A", "userinfo", "t"), ("A", "revoke", "t"),
     ("A", "introspect", "t")],
    [("A", "flow", "t"), ("-", "exp", ""), ("A", "userinfo", "t"), ("B", "introspect", "t")],
]


def _request(provider: Provider, action: str, token: dict[str, Any]) -> Any:
    """The outcome of a request made with a token: its answer, or the error."""
    client = token.get("client", (CLIENT_ID, CLIENT_SECRET))
    calls: dict[str, Callable[[], Any]] = {
        "userinfo": lambda: userinfo(provider, token["access_token"]),
        "introspect": lambda: introspect(provider, token["access_token"], *client),
        "revoke": lambda: revoke(provider, token["access_token"]),
        "revoke_refresh": lambda: revoke(provider, token["refresh_token"], "refresh_token"),
        "replay": lambda: redeem(provider, token["code"]),
    }
    try:
        result = calls[action]()
    except OAuthError as error:
        return ("error", type(error).__name__, error.oauth_error)
    return ("ok", result)


def _run(make_provider: Callable[..., Provider], clock: FakeClock, ttl: Optional[float],
         scenario: list[tuple[str, str, str]]) -> list[Any]:
    clock.now = 1_800_000_000
    stores = Stores(clock)
    processes = {name: stores.process(make_provider, ttl,
                                      authz={"access_token_lifetime": 2 * TTL})
                 for name in ("A", "B")}
    tokens: dict[str, dict[str, Any]] = {}
    outcomes: list[Any] = []
    for name, action, label in scenario:
        if name == "-":
            clock.advance(TTL if action == "ttl" else 2 * TTL)  # "exp": the token's lifetime
            continue
        provider = processes[name]
        if action == "flow":
            tokens[label] = code_flow(provider)
        elif action == "implicit":
            tokens[label] = implicit(provider)
        elif action == "cc":
            tokens[label] = client_credentials(provider)
            tokens[label]["client"] = (SERVICE, SERVICE_SECRET)
        elif action == "refresh":
            source, target = label.split(">")
            tokens[target] = refresh(provider, tokens[source]["refresh_token"])
        else:
            outcomes.append(_request(provider, action, tokens[label]))
    live = {label: stores.access_tokens.inner.get(token["access_token"]) is not None
            for label, token in tokens.items()}
    return [outcomes, live]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_outcomes_with_and_without_the_cache(
        make_provider: Callable[..., Provider], clock: FakeClock,
        scenario: list[tuple[str, str, str]]) -> None:
    assert _run(make_provider, clock, TTL, scenario) == _run(make_provider, clock, None,
                                                             scenario)
