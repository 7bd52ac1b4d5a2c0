"""The opt-in in-process caches: client metadata (``Provider(client_cache_ttl=...)``) and
written subject identifiers (``AuthorizationState(subject_identifier_cache_ttl=...)``).

Hits, misses, expiry, invalidation and bounds, with an injected clock; the storage reads
and writes are counted, nothing is timed.
"""

from __future__ import annotations

import base64
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER_ID, FakeClock, clients

from benchmarks.counting import CountingStore
from pyop._cache import TTLCache
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidClientAuthentication, InvalidClientId, InvalidConfiguration
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

AUTH_QUERY = urlencode({"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                        "response_type": "code", "scope": "openid", "nonce": "n"})
BASIC = {"Authorization": "Basic " + base64.b64encode(
    f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode("ascii")}


def code_flow(provider: Provider) -> Any:
    request = provider.parse_authentication_request(AUTH_QUERY)
    code = provider.authorize(request, USER_ID)["code"]
    body = urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": REDIRECT_URI})
    return provider.handle_token_request(body, BASIC)


@pytest.fixture
def client_db() -> CountingStore:
    return CountingStore(clients())


class TestTTLCache:
    def test_hit_miss_expiry(self, clock: FakeClock) -> None:
        cache: TTLCache[str] = TTLCache(10, 4, clock)
        assert cache.get("a") is None
        cache.put("a", "A")
        assert cache.get("a") == "A"
        clock.advance(9.5)
        assert cache.get("a") == "A"
        clock.advance(0.5)
        assert cache.get("a") is None
        assert len(cache) == 0

    def test_bounded_least_recently_used_first_out(self, clock: FakeClock) -> None:
        cache: TTLCache[int] = TTLCache(10, 2, clock)
        cache.put("a", 1)
        cache.put("b", 2)
        assert cache.get("a") == 1  # "b" is now the least recently used
        cache.put("c", 3)
        assert len(cache) == 2
        assert cache.get("b") is None
        assert cache.get("a") == 1 and cache.get("c") == 3

    def test_discard_and_clear(self, clock: FakeClock) -> None:
        cache: TTLCache[int] = TTLCache(10, 4, clock)
        cache.put("a", 1)
        cache.put("b", 2)
        cache.discard("a")
        cache.discard("missing")
        assert cache.get("a") is None and cache.get("b") == 2
        cache.clear()
        assert len(cache) == 0


class TestClientCache:
    def test_off_by_default_every_step_reads_the_client(
            self, make_provider: Callable[..., Provider], client_db: CountingStore) -> None:
        provider = make_provider(client_db=client_db)
        code_flow(provider)
        code_flow(provider)
        assert client_db.counts["get"] == 6  # parse, authorize, token endpoint, per flow

    def test_warm_flow_reads_no_client(self, make_provider: Callable[..., Provider],
                                       client_db: CountingStore) -> None:
        provider = make_provider(client_db=client_db, client_cache_ttl=30)
        code_flow(provider)
        assert client_db.counts["get"] == 1
        code_flow(provider)
        assert client_db.counts["get"] == 1

    def test_entries_expire_after_the_ttl(self, make_provider: Callable[..., Provider],
                                          client_db: CountingStore, clock: FakeClock) -> None:
        provider = make_provider(client_db=client_db, client_cache_ttl=30)
        assert provider.get_client(CLIENT_ID) is not None
        clock.advance(29)
        provider.get_client(CLIENT_ID)
        assert client_db.counts["get"] == 1
        clock.advance(1)
        provider.get_client(CLIENT_ID)
        assert client_db.counts["get"] == 2

    def test_a_change_elsewhere_is_seen_after_the_ttl(
            self, make_provider: Callable[..., Provider], client_db: CountingStore,
            clock: FakeClock) -> None:
        # the documented staleness window: a secret changed by another process
        provider = make_provider(client_db=client_db, client_cache_ttl=30)
        code_flow(provider)
        updated = dict(client_db.inner[CLIENT_ID], client_secret="a-new-secret")
        client_db.inner[CLIENT_ID] = updated
        code_flow(provider)  # the cached metadata (old secret) is still used
        clock.advance(30)
        with pytest.raises(InvalidClientAuthentication):
            code_flow(provider)

    def test_client_changed_invalidates(self, make_provider: Callable[..., Provider],
                                        client_db: CountingStore) -> None:
        provider = make_provider(client_db=client_db, client_cache_ttl=30)
        provider.get_client(CLIENT_ID)
        del client_db.inner[CLIENT_ID]
        assert provider.get_client(CLIENT_ID) is not None  # cached
        provider.client_changed(CLIENT_ID)
        assert provider.get_client(CLIENT_ID) is None
        with pytest.raises(InvalidClientId):
            provider.parse_authentication_request(AUTH_QUERY)

    def test_client_changed_without_cache_is_a_no_op(
            self, make_provider: Callable[..., Provider]) -> None:
        provider = make_provider()
        provider.client_changed(CLIENT_ID)
        assert provider.get_client(CLIENT_ID) is not None

    def test_registration_invalidates(self, make_provider: Callable[..., Provider],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
        provider = make_provider(client_cache_ttl=30)
        changed: list[str] = []
        monkeypatch.setattr(provider, "client_changed", changed.append)
        response = provider.handle_client_registration_request(
            {"redirect_uris": ["https://rp2.example.com/cb"]})
        assert changed == [response["client_id"]]

    def test_unknown_clients_are_not_cached(self, make_provider: Callable[..., Provider],
                                            client_db: CountingStore) -> None:
        provider = make_provider(client_db=client_db, client_cache_ttl=30)
        assert provider.get_client("newcomer") is None
        assert provider.get_client("newcomer") is None
        assert client_db.counts["get"] == 2
        client_db.inner["newcomer"] = {"client_id": "newcomer", "redirect_uris": [REDIRECT_URI]}
        assert provider.get_client("newcomer") is not None

    def test_bounded(self, make_provider: Callable[..., Provider],
                     client_db: CountingStore) -> None:
        for n in range(3):
            client_db.inner[f"c{n}"] = {"client_id": f"c{n}", "redirect_uris": [REDIRECT_URI]}
        provider = make_provider(client_db=client_db, client_cache_ttl=30, client_cache_size=2)
        for n in range(3):
            provider.get_client(f"c{n}")
        assert client_db.counts["get"] == 3
        provider.get_client("c2")
        provider.get_client("c1")
        assert client_db.counts["get"] == 3
        provider.get_client("c0")  # dropped as the least recently used
        assert client_db.counts["get"] == 4

    def test_token_endpoint_still_checks_the_secret(
            self, make_provider: Callable[..., Provider]) -> None:
        provider = make_provider(client_cache_ttl=30)
        code_flow(provider)
        request = provider.parse_authentication_request(AUTH_QUERY)
        code = provider.authorize(request, USER_ID)["code"]
        wrong = {"Authorization": "Basic " + base64.b64encode(
            f"{CLIENT_ID}:wrong".encode()).decode("ascii")}
        body = urlencode({"grant_type": "authorization_code", "code": code,
                          "redirect_uri": REDIRECT_URI})
        with pytest.raises(InvalidClientAuthentication):
            provider.handle_token_request(body, wrong)

    @pytest.mark.parametrize("kwargs", [
        {"client_cache_ttl": -1}, {"client_cache_ttl": "30"}, {"client_cache_ttl": True},
        {"client_cache_ttl": float("inf")}, {"client_cache_ttl": 30, "client_cache_size": 0},
        {"client_cache_ttl": 30, "client_cache_size": 2.5},
    ])
    def test_invalid_configuration(self, make_provider: Callable[..., Provider],
                                   kwargs: dict[str, Any]) -> None:
        with pytest.raises(InvalidConfiguration):
            make_provider(**kwargs)

    def test_zero_ttl_is_off(self, make_provider: Callable[..., Provider],
                             client_db: CountingStore) -> None:
        provider = make_provider(client_db=client_db, client_cache_ttl=0)
        provider.get_client(CLIENT_ID)
        provider.get_client(CLIENT_ID)
        assert client_db.counts["get"] == 2


def make_state(clock: FakeClock, subjects: CountingStore, **kwargs: Any) -> AuthorizationState:
    return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                              subject_identifier_db=subjects, clock=clock, **kwargs)


class TestSubjectIdentifierCache:
    def test_off_by_default_checked_every_time(self, clock: FakeClock) -> None:
        """Every authorization reads the user's pinned public sub and the sub's reverse
        record, so a logout made by another process is repaired at once."""
        subjects = CountingStore({})
        state = make_state(clock, subjects)
        sub = state.get_subject_identifier("public", USER_ID)
        assert subjects.counts["add"] == 2  # the pin and the reverse record
        subjects.counts.clear()
        for _ in range(2):
            assert state.get_subject_identifier("public", USER_ID) == sub
        assert subjects.counts == {"get": 4}
        del subjects.inner[sub]  # a logout through another process
        state.get_subject_identifier("public", USER_ID)
        assert subjects.counts["add"] == 1
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID

    def test_written_once_per_ttl(self, clock: FakeClock) -> None:
        subjects = CountingStore({})
        state = make_state(clock, subjects, subject_identifier_cache_ttl=60)
        sub = state.get_subject_identifier("public", USER_ID)
        assert subjects.counts["add"] == 2
        subjects.counts.clear()
        assert state.get_subject_identifier("public", USER_ID) == sub
        assert not subjects.counts  # neither read nor written
        clock.advance(60)
        state.get_subject_identifier("public", USER_ID)
        assert subjects.counts == {"get": 2}
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID

    def test_each_subject_is_written(self, clock: FakeClock) -> None:
        subjects = CountingStore({})
        state = make_state(clock, subjects, subject_identifier_cache_ttl=60)
        public = state.get_subject_identifier("public", USER_ID)
        pairwise = state.get_subject_identifier("pairwise", USER_ID, "rp.example.com")
        other = state.get_subject_identifier("public", "bob")
        assert len({public, pairwise, other}) == 3
        # a pin and a reverse record per public sub, a reverse record per pairwise one
        assert subjects.counts["add"] == 5
        assert state.get_user_id_for_subject_identifier(other) == "bob"

    def test_logout_keeps_the_entry(self, clock: FakeClock) -> None:
        # logout keeps the mapping (as pyop 3), so the cached entry stays right
        subjects = CountingStore({})
        state = make_state(clock, subjects, subject_identifier_cache_ttl=60)
        sub = state.get_subject_identifier("public", USER_ID)
        state.delete_state_for_subject_identifier(sub)
        state.get_subject_identifier("public", USER_ID)  # nothing to write again
        assert subjects.counts["add"] == 2
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID

    def test_logout_elsewhere_is_repaired_after_the_ttl(self, clock: FakeClock) -> None:
        # the documented window: another process deleted the mapping
        subjects = CountingStore({})
        state = make_state(clock, subjects, subject_identifier_cache_ttl=60)
        sub = state.get_subject_identifier("public", USER_ID)
        del subjects.inner[sub]
        state.get_subject_identifier("public", USER_ID)
        assert sub not in subjects.inner
        clock.advance(60)
        state.get_subject_identifier("public", USER_ID)
        assert state.get_user_id_for_subject_identifier(sub) == USER_ID

    @pytest.mark.parametrize("ttl", [-1, "60", True, float("nan")])
    def test_invalid_ttl(self, clock: FakeClock, ttl: Any) -> None:
        with pytest.raises(ValueError):
            make_state(clock, CountingStore({}), subject_identifier_cache_ttl=ttl)
