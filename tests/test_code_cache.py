"""The opt-in cache of the codes a process issued
(``AuthorizationState(authorization_code_cache_size=...)``).

The token endpoint of the process that issued a code redeems it without reading it back;
the outcome of every token request is the same as without the cache (RFC 6749 4.1.2,
4.1.3; RFC 7636 4.6). Storage calls are counted, nothing is timed; several processes are
simulated by several ``AuthorizationState`` objects over the same stores.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER_ID, FakeClock

from benchmarks.counting import CountingStore
from pyop._cache import TTLCache
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAccessToken, InvalidAuthorizationCode
from pyop.provider import Provider
from pyop.storage import MemoryStorage, StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

VERIFIER = "v" * 43
CHALLENGE = base64.urlsafe_b64encode(
    hashlib.sha256(VERIFIER.encode("ascii")).digest()).rstrip(b"=").decode("ascii")
BASIC = {"Authorization": "Basic " + base64.b64encode(
    f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode("ascii")}
LIFETIME = 600


class Stores:
    """The stores of a deployment, shared by the simulated processes; code reads counted."""

    def __init__(self, clock: FakeClock) -> None:
        self.codes = CountingStore(MemoryStorage(clock=clock))
        self.access_tokens = MemoryStorage(clock=clock)
        self.refresh_tokens = MemoryStorage(clock=clock)
        self.subjects = MemoryStorage(clock=clock)

    def options(self, cache_size: Optional[int] = 16, **kwargs: Any) -> dict[str, Any]:
        """``AuthorizationState`` arguments of a process over these stores."""
        return dict(authorization_code_db=self.codes, access_token_db=self.access_tokens,
                    refresh_token_db=self.refresh_tokens, subject_identifier_db=self.subjects,
                    authorization_code_lifetime=LIFETIME,
                    authorization_code_cache_size=cache_size, **kwargs)

    def state(self, clock: FakeClock, cache_size: Optional[int] = 16,
              **kwargs: Any) -> AuthorizationState:
        return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                                  **self.options(cache_size, **kwargs))

    def process(self, make_provider: Callable[..., Provider],
                cache_size: Optional[int] = 16) -> Provider:
        """A provider process over these stores, refresh tokens on."""
        return make_provider(authz_kwargs=self.options(cache_size, refresh_token_lifetime=3600))


@pytest.fixture
def stores(clock: FakeClock) -> Stores:
    return Stores(clock)


@pytest.fixture
def process(make_provider: Callable[..., Provider], stores: Stores) -> Callable[..., Provider]:
    """A provider process over the shared stores (cache on unless ``cache_size=None``)."""

    def build(cache_size: Optional[int] = 16) -> Provider:
        return stores.process(make_provider, cache_size)

    return build


def issue(provider: Provider, pkce: bool = True) -> str:
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
             "scope": "openid", "nonce": "n"}
    if pkce:
        query.update(code_challenge=CHALLENGE, code_challenge_method="S256")
    request = provider.parse_authentication_request(urlencode(query))
    return str(provider.authorize(request, USER_ID)["code"])


def redeem(provider: Provider, code: str, verifier: Optional[str] = VERIFIER,
           redirect_uri: str = REDIRECT_URI) -> Any:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        body["code_verifier"] = verifier
    return provider.handle_token_request(urlencode(body), BASIC)


def record_of(provider: Provider, code: str) -> tuple[dict[str, Any], bool]:
    return provider.authz_state.authorization_code_for_redemption(code)


class TestTTLCacheExpiresAt:
    def test_entry_expires_at_the_sooner_of_ttl_and_expires_at(self, clock: FakeClock) -> None:
        cache: TTLCache[str] = TTLCache(10, 4, clock)
        cache.put("soon", "S", expires_at=clock() + 5)
        cache.put("late", "L", expires_at=clock() + 50)
        clock.advance(5)
        assert cache.get("soon") is None
        assert cache.get("late") == "L"
        clock.advance(5)
        assert cache.get("late") is None


class TestCodeCache:
    def test_off_by_default_the_token_endpoint_reads_the_code(
            self, process: Callable[..., Provider], stores: Stores) -> None:
        provider = process(cache_size=None)
        assert provider.authz_state._issued_codes is None
        code = issue(provider)
        redeem(provider, code)
        assert stores.codes.counts["get"] == 1

    def test_hit_no_code_read(self, process: Callable[..., Provider], stores: Stores) -> None:
        provider = process()
        code = issue(provider)
        record, cached = record_of(provider, code)
        assert cached
        assert record == provider.authz_state.get_authorization_code(code)  # reads storage
        stores.codes.counts.clear()
        response = redeem(provider, code)
        assert response["access_token"]
        assert stores.codes.counts["get"] == 0
        assert stores.codes.counts["compare_and_set_then_set"] == 1
        assert provider.authz_state.get_authorization_code(code)["used"] is True

    def test_hit_returns_a_copy(self, process: Callable[..., Provider]) -> None:
        provider = process()
        code = issue(provider)
        record, _ = record_of(provider, code)
        record["client_id"] = "someone-else"
        assert record_of(provider, code)[0]["client_id"] == CLIENT_ID

    def test_miss_code_issued_by_another_process(
            self, process: Callable[..., Provider], stores: Stores) -> None:
        issuer, other = process(), process()
        code = issue(issuer)
        assert record_of(other, code)[1] is False
        stores.codes.counts.clear()
        redeem(other, code)
        assert stores.codes.counts["get"] == 1

    def test_expired_entry_is_never_used(self, process: Callable[..., Provider],
                                         stores: Stores, clock: FakeClock) -> None:
        provider = process()
        code = issue(provider)
        clock.advance(LIFETIME - 0.5)
        assert record_of(provider, code)[1] is True
        clock.advance(0.5)  # the code's exp: expired in the cache and in storage
        stores.codes.counts.clear()
        with pytest.raises(InvalidAuthorizationCode, match="unknown or expired"):
            redeem(provider, code)
        assert stores.codes.counts["get"] == 1
        assert len(provider.authz_state._issued_codes or ()) == 0

    def test_entry_expires_at_the_code_exp_from_extra(self, stores: Stores,
                                                      clock: FakeClock) -> None:
        state = stores.state(clock)
        code = state.create_authorization_code(
            {"client_id": CLIENT_ID}, "sub", USER_ID, ["openid"],
            extra={"exp": int(clock()) + 10})
        clock.advance(10)
        with pytest.raises(InvalidAuthorizationCode):
            state.authorization_code_for_redemption(code)

    def test_bounded_least_recently_used_first_out(
            self, process: Callable[..., Provider], stores: Stores) -> None:
        provider = process(cache_size=2)
        first, second, third = issue(provider), issue(provider), issue(provider)
        assert len(provider.authz_state._issued_codes or ()) == 2
        assert record_of(provider, first)[1] is False
        assert record_of(provider, second)[1] is True
        assert record_of(provider, third)[1] is True
        stores.codes.counts.clear()
        for code in (first, second, third):
            redeem(provider, code)
        assert stores.codes.counts["get"] == 1  # the evicted one

    def test_entry_removed_when_redeemed(self, process: Callable[..., Provider],
                                         stores: Stores) -> None:
        provider = process()
        code = issue(provider)
        first = redeem(provider, code)
        assert len(provider.authz_state._issued_codes or ()) == 0
        stores.codes.counts.clear()
        with pytest.raises(InvalidAuthorizationCode, match="already used"):
            redeem(provider, code)  # a replay reads the used record and revokes
        assert stores.codes.counts["get"] == 1
        with pytest.raises(InvalidAccessToken):
            provider.authz_state.get_access_token(first["access_token"])
        assert provider.authz_state.get_refresh_token(first["refresh_token"]) is None

    def test_entry_removed_when_the_redemption_is_lost(
            self, process: Callable[..., Provider], stores: Stores) -> None:
        issuer, other = process(), process()
        code = issue(issuer)
        won = redeem(other, code)  # another process redeemed it; the issuer's entry is stale
        with pytest.raises(InvalidAuthorizationCode, match="already used"):
            redeem(issuer, code)  # every check passes on the cached record: the CAS fails
        assert len(issuer.authz_state._issued_codes or ()) == 0
        with pytest.raises(InvalidAccessToken):
            issuer.authz_state.get_access_token(won["access_token"])
        assert issuer.authz_state.get_refresh_token(won["refresh_token"]) is None
        assert stores.refresh_tokens.get(won["refresh_token"]) is None

    def test_sealed_codes_unaffected(self, make_provider: Callable[..., Provider],
                                     clock: FakeClock) -> None:
        sealer = StatelessWrapper("authz_codes", "s" * 32, replay_cache=MemoryStorage())
        provider = make_provider(authz_kwargs={"authorization_code_db": sealer,
                                               "authorization_code_cache_size": 16})
        assert provider.authz_state._issued_codes is None
        code = issue(provider)
        assert record_of(provider, code)[1] is False
        assert redeem(provider, code)["access_token"]
        with pytest.raises(InvalidAuthorizationCode):
            redeem(provider, code)

    @pytest.mark.parametrize("size", [0, -1, True, 1.5, "16"])
    def test_invalid_size(self, stores: Stores, clock: FakeClock, size: Any) -> None:
        with pytest.raises(ValueError):
            stores.state(clock, size)


class TestFallbackOnFailedCheck:
    """A check failing on the cached (unused) record is decided on the stored record."""

    def test_replay_of_a_used_code_with_a_wrong_verifier_revokes(
            self, process: Callable[..., Provider], stores: Stores) -> None:
        issuer, other = process(), process()
        code = issue(issuer)
        won = redeem(other, code)
        stores.codes.counts.clear()
        with pytest.raises(InvalidAuthorizationCode, match="already used"):
            redeem(issuer, code, verifier="w" * 43)  # fails on the cached record
        assert stores.codes.counts["get"] >= 1  # the fallback read the used record
        assert stores.access_tokens.get(won["access_token"]) is None
        assert stores.refresh_tokens.get(won["refresh_token"]) is None
        assert len(issuer.authz_state._issued_codes or ()) == 0

    @pytest.mark.parametrize("verifier, redirect_uri", [
        ("w" * 43, REDIRECT_URI), (None, REDIRECT_URI),
        (VERIFIER, "https://rp.example.com/other")])
    def test_failed_check_on_an_unused_code_leaves_it_redeemable(
            self, process: Callable[..., Provider], stores: Stores,
            verifier: Optional[str], redirect_uri: str) -> None:
        provider = process()
        code = issue(provider)
        with pytest.raises(InvalidAuthorizationCode):
            redeem(provider, code, verifier=verifier, redirect_uri=redirect_uri)
        assert provider.authz_state.get_authorization_code(code).get("used") is None
        assert record_of(provider, code)[1] is True  # the stored record is the cached one
        stores.codes.counts.clear()
        assert redeem(provider, code)["access_token"]
        assert stores.codes.counts["get"] == 0

    def test_code_gone_from_storage_drops_the_entry(
            self, process: Callable[..., Provider], stores: Stores) -> None:
        provider = process()
        code = issue(provider)
        stores.codes.delete(code)
        with pytest.raises(InvalidAuthorizationCode, match="unknown or expired"):
            redeem(provider, code, verifier="w" * 43)
        assert len(provider.authz_state._issued_codes or ()) == 0


def _outcome(provider: Provider, code: str, **request: Any) -> Any:
    try:
        response = redeem(provider, code, **request)
    except InvalidAuthorizationCode as error:
        return ("error", str(error))
    return ("ok", sorted(response.to_dict()))


#: Token requests made in turn against one code, from the issuing process or another one.
SCENARIOS: list[list[tuple[str, dict[str, Any]]]] = [
    [("issuer", {})],
    [("issuer", {}), ("issuer", {})],
    [("issuer", {"verifier": "w" * 43}), ("issuer", {})],
    [("issuer", {"verifier": None}), ("issuer", {"redirect_uri": "https://x.example/"}),
     ("issuer", {})],
    [("other", {}), ("issuer", {})],
    [("other", {}), ("issuer", {"verifier": "w" * 43})],
    [("other", {}), ("issuer", {"redirect_uri": "https://x.example/"})],
    [("other", {"verifier": "w" * 43}), ("issuer", {}), ("other", {})],
    [("issuer", {}), ("other", {"verifier": None})],
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_outcomes_with_and_without_the_cache(
        make_provider: Callable[..., Provider], clock: FakeClock,
        scenario: list[tuple[str, dict[str, Any]]]) -> None:
    def run(cache_size: Optional[int]) -> list[Any]:
        stores = Stores(clock)
        processes = {name: stores.process(make_provider, cache_size)
                     for name in ("issuer", "other")}
        code = issue(processes["issuer"])
        outcomes = []
        issued: list[dict[str, Any]] = []
        for name, request in scenario:
            outcome = _outcome(processes[name], code, **request)
            outcomes.append(outcome)
        stored = stores.codes.get(code)
        if stored.get("used"):
            issued.append(stored["issued"])
        live = [(stores.access_tokens.get(i["access_token"]) is not None,
                 stores.refresh_tokens.get(i["refresh_token"]) is not None) for i in issued]
        return [outcomes, bool(stored.get("used")), live]

    assert run(16) == run(None)


def test_concurrent_redemptions_from_the_cache_one_winner(stores: Stores,
                                                          clock: FakeClock) -> None:
    """Threads of one process race on codes held in its cache: each code is redeemed once."""
    state = stores.state(clock)
    codes = [state.create_authorization_code({"client_id": CLIENT_ID}, "sub", USER_ID,
                                             ["openid"]) for _ in range(20)]
    threads = 8
    for code in codes:
        barrier = threading.Barrier(threads)
        wins: list[str] = []
        lock = threading.Lock()

        def attempt(code: str = code, barrier: threading.Barrier = barrier,
                    wins: list[str] = wins, lock: threading.Lock = lock) -> None:
            barrier.wait(timeout=30)
            try:
                record, _ = state.authorization_code_for_redemption(code)
                token, _ = state.redeem_authorization_code(code, record)
            except InvalidAuthorizationCode:
                return
            with lock:
                wins.append(token.value)

        workers = [threading.Thread(target=attempt) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert len(wins) == 1, code
        assert state.get_authorization_code(code)["used"] is True


def test_record_that_is_not_json_is_not_cached(clock: FakeClock) -> None:
    """A plain dict store keeps values as they are; such a record is read back instead."""
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), {}, clock=clock,
                               authorization_code_cache_size=4)
    code = state.create_authorization_code({"client_id": CLIENT_ID, "odd": {1, 2}}, "sub",
                                           USER_ID, ["openid"])
    record, cached = state.authorization_code_for_redemption(code)
    assert not cached and record["auth_req"]["odd"] == {1, 2}


@pytest.mark.parametrize("cache_size", [16, None], ids=["cache", "no-cache"])
def test_code_gone_from_storage_answers_as_a_read(
        make_provider: Callable[..., Provider], stores: Stores,
        cache_size: Optional[int]) -> None:
    """A code deleted (or expired) in storage before its exp: the same answer either way,
    although the cached path learns it only from the failed compare-and-set."""
    provider = stores.process(make_provider, cache_size)
    code = issue(provider)
    stores.codes.delete(code)
    with pytest.raises(InvalidAuthorizationCode, match="^unknown or expired authorization"):
        redeem(provider, code)
    assert len(stores.refresh_tokens) == 0  # written before the mark, removed again


def test_memory_store_holds_the_same_record_with_and_without_the_code_cache() -> None:
    """The canonical JSON made for the cache is what a memory store keeps: the stored
    record (its text and expiry) is the one written without the cache."""
    texts = []
    for cache_size in (None, 16):
        clock = FakeClock()
        codes = MemoryStorage(clock=clock)
        state = AuthorizationState(
            HashBasedSubjectIdentifierFactory("salt"), authorization_code_db=codes,
            authorization_code_cache_size=cache_size, clock=clock)
        request = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                   "scope": ["openid"], "response_type": ["code"], "nonce": "n"}
        code = state.issue_authorization_code(request, "sub", USER_ID, ["openid"],
                                              {"auth_time": 5, "amr": ["pwd"]})
        texts.append(codes._data[code])
        assert codes.get(code)["auth_req"] == request
    assert texts[0] == texts[1]
    assert isinstance(texts[0], tuple) and isinstance(texts[0][0], str)
