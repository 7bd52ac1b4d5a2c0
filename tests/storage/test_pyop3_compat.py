"""pyop 3 compatibility: test doubles patched in before the stores are created.

Code written against pyop 3 (SATOSA's tests among it) replaces ``pymongo.MongoClient`` with
``mongomock.MongoClient`` (or uses ``mongomock.patch``) and ``redis.Redis.from_url`` with
fakeredis, then creates its stores. The backends look those names up when a store is
created, and their per-URI client caches are keyed by the factory too, so a replaced
factory is honoured even when a client for the same URI is already cached.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.engines import free_port
from pyop.crypto import SigningKey
from pyop.storage import MongoWrapper, RedisWrapper, StorageBase

from .provider_support import (
    Stores,
    authorize,
    exchange,
    make_provider,
    outcome,
    per_thread,
    refresh,
    stores_from_uri,
    userinfo,
)
from .test_races import KEYS, THREADS, race

mongomock = pytest.importorskip("mongomock")
pymongo = pytest.importorskip("pymongo")
redis = pytest.importorskip("redis")


@pytest.fixture(scope="module")
def signing_key(rsa_private_key: Any) -> SigningKey:
    return SigningKey.from_key(rsa_private_key)


def _flow(stores: Stores, signing_key: SigningKey) -> None:
    """A complete code flow with a rotating refresh token and replays, on ``stores``."""
    provider = make_provider(stores, signing_key, refresh_token_threshold=7200)
    code = authorize(provider)
    tokens = exchange(provider, code)
    assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
    assert outcome(lambda: userinfo(provider, tokens["access_token"])) == "invalid_token"
    tokens = exchange(provider, authorize(provider))
    rotated = refresh(provider, tokens["refresh_token"])
    assert userinfo(provider, rotated["access_token"])["sub"]
    assert outcome(lambda: refresh(provider, tokens["refresh_token"])) == "invalid_grant"
    assert outcome(lambda: refresh(provider, rotated["refresh_token"])) == "invalid_grant"


def _exercise(store: StorageBase) -> None:
    store.set("k", {"v": 1})
    assert store.get("k") == {"v": 1}
    assert store.compare_and_set("k", {"v": 1}, {"v": 2})
    assert not store.compare_and_set("k", {"v": 1}, {"v": 3})
    assert store.consume("k") == {"v": 2} and store.consume("k") is None
    assert store.add("j", 1) and not store.add("j", 2)
    assert list(store.keys()) == ["j"]


# -- MongoDB -------------------------------------------------------------------------------


def test_mongoclient_patched_with_mongomock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pymongo, "MongoClient", mongomock.MongoClient)
    uri = "mongodb://localhost:27017/satosa"
    first = StorageBase.from_uri(uri, db_name="satosa", collection="authz_codes", ttl=600)
    second = MongoWrapper(uri, "satosa", "authz_codes")  # pyop 3's constructor signature
    try:
        assert isinstance(first, MongoWrapper)
        assert isinstance(first._client, mongomock.MongoClient)
        assert second._client is first._client  # one client per URI, as before
        _exercise(first)
        assert second.get("j") == 1
    finally:
        first.close()
        second.close()


def test_a_cached_client_does_not_hide_the_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real client cached for the URI before the patch is not handed out after it."""
    uri = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=50"
    real = MongoWrapper(uri, "pyop", "codes")  # pymongo connects lazily: no server needed
    try:
        assert isinstance(real._client, pymongo.MongoClient)
        with monkeypatch.context() as patch:
            patch.setattr(pymongo, "MongoClient", mongomock.MongoClient)
            mocked = MongoWrapper(uri, "pyop", "codes")
            try:
                assert isinstance(mocked._client, mongomock.MongoClient)
                _exercise(mocked)
            finally:
                mocked.close()
        again = MongoWrapper(uri, "pyop", "codes")  # unpatched: the cached real client
        assert again._client is real._client
        again.close()
    finally:
        real.close()


def test_mongomock_patch_full_flow(signing_key: SigningKey) -> None:
    """SATOSA's style: ``mongomock.patch`` around code that creates stores from a URI
    (and does not close them); each patch is a fresh, empty server."""
    uri = "mongodb://localhost:27017/satosa"
    with mongomock.patch(servers=(("localhost", 27017),)):
        stores = stores_from_uri(uri, "satosa")
        assert isinstance(stores.codes._client, mongomock.MongoClient)
        _flow(stores, signing_key)
        assert len(stores.codes) > 0
    with mongomock.patch(servers=(("localhost", 27017),)):
        fresh = stores_from_uri(uri, "satosa")
        assert fresh.codes._client is not stores.codes._client
        assert len(fresh.codes) == 0
        _flow(fresh, signing_key)
    stores.close()
    fresh.close()


# -- Redis ---------------------------------------------------------------------------------


@pytest.fixture
def fakeredis_from_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``redis.Redis.from_url`` replaced as pyop 3 tests did (needs ``pip install fakeredis``)."""
    fakeredis = pytest.importorskip("fakeredis")

    def from_url(url: str, **kwargs: Any) -> Any:
        return fakeredis.FakeStrictRedis(decode_responses=True)

    monkeypatch.setattr(redis.Redis, "from_url", from_url)
    yield fakeredis


def test_redis_from_url_patched_with_fakeredis(fakeredis_from_url: Any,
                                               signing_key: SigningKey) -> None:
    uri = "redis://localhost:6379/0"
    stores = stores_from_uri(uri, "satosa", ttl=600)
    try:
        assert isinstance(stores.codes, RedisWrapper)
        assert isinstance(stores.codes._client, fakeredis_from_url.FakeStrictRedis)
        assert stores.access_tokens._client is stores.codes._client
        _exercise(StorageBase.from_uri(uri, collection="scratch"))
        # fakeredis without lupa has no Lua: compare_and_set (code redemption, refresh
        # rotation) then uses WATCH/MULTI/EXEC, and the flow works all the same
        _flow(stores, signing_key)
    finally:
        stores.close()


@pytest.mark.servers
def test_redis_from_url_looked_up_at_creation(monkeypatch: pytest.MonkeyPatch,
                                              redis_server: Any) -> None:
    """Without fakeredis: a replaced from_url is called, and a client cached for the same
    URI before the replacement is not handed out by it."""
    uri = "redis://cache.example.com:6379/0"  # never contacted: the factories redirect it
    original = redis.Redis.from_url
    calls: list[str] = []

    def to_test_server(url: str, **kwargs: Any) -> Any:
        calls.append(url)
        return original(redis_server.url, **kwargs)

    monkeypatch.setattr(redis.Redis, "from_url", to_test_server)
    before = RedisWrapper(uri, "pyop", "compat")
    assert calls == [uri]

    def second_factory(url: str, **kwargs: Any) -> Any:
        calls.append("second " + url)
        return original(redis_server.url, **kwargs)

    monkeypatch.setattr(redis.Redis, "from_url", second_factory)
    after = RedisWrapper(uri, "pyop", "compat")
    try:
        assert calls == [uri, "second " + uri]
        assert after._client is not before._client
        _exercise(after)
        assert before.get("j") == 1  # same server, same namespace
    finally:
        for store in (before, after):
            store._client.delete(store._key("j"))
            store.close()


@pytest.mark.servers
def test_watch_fallback_compare_and_set_is_atomic(redis_server: Any) -> None:
    """The WATCH/MULTI/EXEC compare_and_set (servers without Lua): one winner per key."""
    stores = [RedisWrapper(redis_server.url, "pyop", "watch-race") for _ in range(THREADS)]
    for store in stores:
        store._scripting = False
    mine = per_thread(stores)
    try:
        for r in range(KEYS):
            stores[0].set(f"rt{r}", {"rotated": False}, expires_at=4_000_000_000)
        results = race(lambda r: mine().compare_and_set(
            f"rt{r}", {"rotated": False}, {"rotated": True, "by": threading.get_ident()}))
        for r, outcomes in enumerate(results):
            assert outcomes.count(True) == 1, f"key {r}: {outcomes}"
        # KEEPTTL: the record keeps its expiry
        assert stores[0]._client.pttl(stores[0]._key("rt0")) > 0
    finally:
        for r in range(KEYS):
            stores[0].delete(f"rt{r}")
        for store in stores:
            store.close()
