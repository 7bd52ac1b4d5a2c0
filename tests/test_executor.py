"""``Provider(executor=...)``: the code redemption is written on the executor while the
calling thread signs the ID token.

The outcome of every token request must be the one without an executor: single use and
replay revocation (RFC 6749 4.1.2), ``at_hash`` of the access token actually issued
(OIDC Core 3.1.3.6), errors typed as before. Nothing here is timed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER_ID
from support.races import race_code_redemptions

from pyop.authz_state import new_token_value
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    InvalidConfiguration,
    InvalidRefreshToken,
    StorageError,
)
from pyop.provider import Provider
from pyop.storage import MemoryStorage, StatelessWrapper, StorageBase

BASIC = {"Authorization": "Basic " + base64.b64encode(
    f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode("ascii")}


class RecordingExecutor(Executor):
    """A thread pool that records what was submitted and on which thread it ran."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2)
        self.submitted: list[str] = []
        self.threads: list[int] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append(getattr(fn, "__name__", repr(fn)))

        def run() -> Any:
            self.threads.append(threading.get_ident())
            return fn(*args, **kwargs)

        return self._pool.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@pytest.fixture
def executor() -> Iterator[RecordingExecutor]:
    recording = RecordingExecutor()
    yield recording
    recording.shutdown()


def issue(provider: Provider, scope: str = "openid profile") -> str:
    request = provider.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": scope, "nonce": "n-1"}))
    return str(provider.authorize(request, USER_ID)["code"])


def redeem(provider: Provider, code: str, **kwargs: Any) -> Any:
    return provider.handle_token_request(urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}), BASIC,
        **kwargs)


def payload(id_token: str) -> dict[str, Any]:
    part = id_token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def userinfo(provider: Provider, access_token: str) -> Any:
    return provider.handle_userinfo_request("", {"Authorization": "Bearer " + access_token})


class TestConfiguration:
    def test_off_by_default(self, make_provider: Callable[..., Provider]) -> None:
        assert make_provider().executor is None

    @pytest.mark.parametrize("value", [object(), "threads", 4, lambda: None])
    def test_not_an_executor_is_refused(self, make_provider: Callable[..., Provider],
                                        value: Any) -> None:
        with pytest.raises(InvalidConfiguration, match="executor"):
            make_provider(executor=value)


class TestCodeExchange:
    def test_redemption_runs_on_the_executor(self, make_provider: Callable[..., Provider],
                                             executor: RecordingExecutor) -> None:
        provider = make_provider(executor=executor)
        tokens = redeem(provider, issue(provider))
        assert executor.submitted == ["redeem_authorization_code"]
        assert executor.threads and executor.threads[0] != threading.get_ident()
        claims = payload(tokens["id_token"])
        assert claims["at_hash"] == at_hash(tokens["access_token"])
        assert claims["aud"] == [CLIENT_ID] and claims["nonce"] == "n-1"
        assert userinfo(provider, tokens["access_token"])["sub"] == claims["sub"]

    def test_same_response_members_as_without(self, make_provider: Callable[..., Provider],
                                              executor: RecordingExecutor) -> None:
        plain = make_provider(authz_kwargs={"refresh_token_lifetime": 3600})
        overlapped = make_provider(executor=executor,
                                   authz_kwargs={"refresh_token_lifetime": 3600})
        expected = redeem(plain, issue(plain)).to_dict()
        got = redeem(overlapped, issue(overlapped)).to_dict()
        assert set(got) == set(expected)
        for member in ("token_type", "expires_in", "scope"):
            assert got[member] == expected[member]
        id_claims, expected_claims = payload(got["id_token"]), payload(expected["id_token"])
        assert set(id_claims) == set(expected_claims)
        assert id_claims["sub"] == expected_claims["sub"]

    def test_refresh_token_issued_and_usable(self, make_provider: Callable[..., Provider],
                                             executor: RecordingExecutor) -> None:
        provider = make_provider(executor=executor,
                                 authz_kwargs={"refresh_token_lifetime": 3600})
        tokens = redeem(provider, issue(provider))
        refreshed = provider.handle_token_request(urlencode({
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}), BASIC)
        assert refreshed["access_token"] != tokens["access_token"]
        assert userinfo(provider, refreshed["access_token"])["sub"]

    def test_replay_refused_and_revokes(self, make_provider: Callable[..., Provider],
                                        executor: RecordingExecutor) -> None:
        provider = make_provider(executor=executor,
                                 authz_kwargs={"refresh_token_lifetime": 3600})
        code = issue(provider)
        tokens = redeem(provider, code)
        with pytest.raises(InvalidAuthorizationCode) as info:
            redeem(provider, code)
        assert info.value.oauth_error == "invalid_grant"
        # the stored record is "used": decided without the executor, no ID token made
        assert executor.submitted == ["redeem_authorization_code"]
        with pytest.raises(InvalidAccessToken):
            userinfo(provider, tokens["access_token"])
        with pytest.raises(InvalidRefreshToken):
            provider.handle_token_request(urlencode({
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
                BASIC)

    def test_concurrent_redemptions_one_wins(self, make_provider: Callable[..., Provider],
                                             executor: RecordingExecutor) -> None:
        provider = make_provider(executor=executor)
        codes = [issue(provider) for _ in range(20)]

        for winner in race_code_redemptions(
                lambda code: redeem(provider, code)["access_token"], codes):
            # each loser found the code used and revoked what the winner got (4.1.2)
            with pytest.raises(InvalidAccessToken):
                userinfo(provider, winner)

    def test_redemption_storage_failure_is_raised_and_no_token_sent(
            self, make_provider: Callable[..., Provider], executor: RecordingExecutor) -> None:
        class FailingTokens(MemoryStorage):
            def compare_and_set_then_set(self, *args: Any, **kwargs: Any) -> bool:
                raise StorageError("injected")

        codes = FailingTokens()
        provider = make_provider(executor=executor,
                                 authz_kwargs={"authorization_code_db": codes})
        with pytest.raises(StorageError, match="injected"):
            redeem(provider, issue(provider))
        assert executor.submitted == ["redeem_authorization_code"]

    def test_id_token_failure_waits_for_the_redemption(
            self, make_provider: Callable[..., Provider],
            executor: RecordingExecutor) -> None:
        started = threading.Event()
        release = threading.Event()
        finished: list[bool] = []

        class SlowCodes(MemoryStorage):
            def compare_and_set_then_set(self, *args: Any, **kwargs: Any) -> bool:
                started.set()
                release.wait(5)
                result = super().compare_and_set_then_set(*args, **kwargs)
                finished.append(result)
                return result

        def broken_claims(user_id: str, client_id: str) -> dict[str, Any]:
            started.wait(5)
            release.set()
            raise RuntimeError("user directory down")

        provider = make_provider(executor=executor,
                                 authz_kwargs={"authorization_code_db": SlowCodes()})
        code = issue(provider)
        with pytest.raises(RuntimeError, match="user directory down"):
            redeem(provider, code, extra_id_token_claims=broken_claims)
        # the redemption had completed before the error left the token endpoint: the code
        # is spent, exactly as when the ID token fails after a sequential redemption
        assert finished == [True]
        with pytest.raises(InvalidAuthorizationCode):
            redeem(provider, code)

    def test_failure_of_both_raises_the_id_token_error(
            self, make_provider: Callable[..., Provider], executor: RecordingExecutor,
            caplog: pytest.LogCaptureFixture) -> None:
        class FailingCodes(MemoryStorage):
            def compare_and_set_then_set(self, *args: Any, **kwargs: Any) -> bool:
                raise StorageError("secret-free storage failure")

        def broken_claims(user_id: str, client_id: str) -> dict[str, Any]:
            raise RuntimeError("user directory down")

        provider = make_provider(executor=executor,
                                 authz_kwargs={"authorization_code_db": FailingCodes()})
        code = issue(provider)
        with pytest.raises(RuntimeError, match="user directory down"):
            redeem(provider, code, extra_id_token_claims=broken_claims)
        assert "code redemption failed" in caplog.text
        assert code not in caplog.text

    def test_shut_down_executor_redeems_inline(
            self, make_provider: Callable[..., Provider], executor: RecordingExecutor,
            caplog: pytest.LogCaptureFixture) -> None:
        provider = make_provider(executor=executor)
        executor.shutdown()
        code = issue(provider)
        tokens = redeem(provider, code)
        assert executor.threads == []  # nothing ran on the executor
        assert payload(tokens["id_token"])["at_hash"] == at_hash(tokens["access_token"])
        assert userinfo(provider, tokens["access_token"])["sub"]
        assert "redeeming in the calling thread" in caplog.text
        with pytest.raises(InvalidAuthorizationCode):
            redeem(provider, code)

    def test_sealed_access_tokens_redeem_inline(
            self, make_provider: Callable[..., Provider], executor: RecordingExecutor) -> None:
        sealed = StatelessWrapper("access_tokens", "a" * 32)
        provider = make_provider(executor=executor, authz_kwargs={"access_token_db": sealed})
        assert not provider.authz_state.access_token_values_are_random
        tokens = redeem(provider, issue(provider))
        assert executor.submitted == []
        assert payload(tokens["id_token"])["at_hash"] == at_hash(tokens["access_token"])
        assert userinfo(provider, tokens["access_token"])["sub"]

    def test_code_flow_on_every_store_kind_is_unchanged(
            self, make_provider: Callable[..., Provider], executor: RecordingExecutor) -> None:
        stores: dict[str, StorageBase] = {name: MemoryStorage() for name in (
            "authorization_code_db", "access_token_db", "refresh_token_db",
            "subject_identifier_db")}
        provider = make_provider(executor=executor, authz_kwargs=dict(
            stores, refresh_token_lifetime=60, authorization_code_cache_size=8))
        tokens = redeem(provider, issue(provider))
        assert payload(tokens["id_token"])["at_hash"] == at_hash(tokens["access_token"])
        assert stores["access_token_db"].get(tokens["access_token"])["client_id"] == CLIENT_ID


class TestRedeemWithPresetValue:
    def test_the_given_value_is_the_access_token(
            self, make_provider: Callable[..., Provider]) -> None:
        provider = make_provider()
        code = issue(provider)
        state = provider.authz_state
        record, _ = state.authorization_code_for_redemption(code)
        value = new_token_value()
        access_token, _refresh = state.redeem_authorization_code(code, record,
                                                                 access_token_value=value)
        assert access_token.value == value
        assert state.access_tokens.get(value)["sub"] == record["sub"]

    def test_refused_with_sealed_access_tokens(
            self, make_provider: Callable[..., Provider]) -> None:
        provider = make_provider(authz_kwargs={
            "access_token_db": StatelessWrapper("access_tokens", "a" * 32)})
        code = issue(provider)
        state = provider.authz_state
        record, _ = state.authorization_code_for_redemption(code)
        with pytest.raises(ValueError, match="sealed"):
            state.redeem_authorization_code(code, record, access_token_value=new_token_value())
        # nothing was spent by the refused call
        assert state.redeem_authorization_code(code, record)[0].value
