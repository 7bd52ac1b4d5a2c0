"""Sealed (stateless) tokens: pyop.storage.stateless.StatelessWrapper.

SECURITY.md "Stored and sealed data": authenticated encryption; tampered,
truncated, swapped between types or sealed under another key -> rejected as
invalid, never a crash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from pyop.storage import MemoryStorage, RedisWrapper, StatelessWrapper, StorageBase

from .conftest import FakeClock

SECRET = "correct horse battery staple, 32+"
VALUE = {"sub": "alice", "client_id": "client1", "scope": "openid profile",
         "claims": {"name": "Ålice 日本"}, "nonce": None}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000)


@pytest.fixture
def codes(clock: FakeClock) -> StatelessWrapper:
    return StatelessWrapper("authz_codes", SECRET, clock=clock)


def _b64decode(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hkdf_sha256(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 written out, salt absent (HashLen zero bytes)."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    okm, block = b"", b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


# -- format --------------------------------------------------------------------------------


def test_round_trip(codes: StatelessWrapper, clock: FakeClock) -> None:
    token = codes.seal(VALUE, clock() + 600)
    assert codes.unseal(token) == VALUE
    assert codes.get(token) == VALUE
    assert codes[token] == VALUE
    assert token in codes


def test_format_is_documented_aead(codes: StatelessWrapper, clock: FakeClock) -> None:
    """version byte || 96-bit nonce || AES-256-GCM(JSON [exp, value]) with HKDF key."""
    token = codes.seal(VALUE, clock() + 600)
    assert "=" not in token and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = _b64decode(token)
    assert raw[0] == 1
    key = _hkdf_sha256(SECRET.encode(), b"pyop sealed authz_codes")
    plaintext = AESGCM(key).decrypt(raw[1:13], raw[13:], raw[:1])
    assert json.loads(plaintext) == [clock() + 600, VALUE]


def test_nonces_are_random(codes: StatelessWrapper, clock: FakeClock) -> None:
    tokens = {codes.seal(VALUE, clock() + 600) for _ in range(50)}
    assert len(tokens) == 50
    assert len({_b64decode(t)[1:13] for t in tokens}) == 50


def test_every_tampered_byte_is_rejected(codes: StatelessWrapper, clock: FakeClock) -> None:
    token = codes.seal({"a": 1}, clock() + 600)
    raw = _b64decode(token)
    for i in range(len(raw)):
        for flip in (0x01, 0x80):
            tampered = raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1:]
            assert codes.unseal(_b64encode(tampered)) is None, i


def test_every_tampered_character_is_rejected(codes: StatelessWrapper, clock: FakeClock) -> None:
    token = codes.seal({"a": 1}, clock() + 600)
    for i, char in enumerate(token):
        other = "A" if char != "A" else "B"
        assert codes.unseal(token[:i] + other + token[i + 1:]) is None, i


def test_truncated_and_extended_tokens_are_rejected(codes: StatelessWrapper,
                                                     clock: FakeClock) -> None:
    token = codes.seal({"a": 1}, clock() + 600)
    for length in range(len(token)):
        assert codes.unseal(token[:length]) is None, length
    for suffix in ("A", "=", "==", " ", "\n", ".", "AAAA"):
        assert codes.unseal(token + suffix) is None, suffix
    assert codes.unseal(" " + token) is None


def test_non_canonical_base64_is_rejected(codes: StatelessWrapper, clock: FakeClock) -> None:
    """Stray low bits in the last character would give a second spelling of one token."""
    for n in range(3):
        token = codes.seal({"a": "x" * n}, clock() + 600)
        if len(token) % 4 in (2, 3):
            break
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare_bits = 4 if len(token) % 4 == 2 else 2
    last = alphabet.index(token[-1])
    variant = token[:-1] + alphabet[last | ((1 << spare_bits) - 1)]
    assert variant != token
    assert _b64decode(variant) == _b64decode(token)  # same bytes...
    assert codes.unseal(variant) is None  # ...but only one accepted spelling


@pytest.mark.parametrize("garbage", [
    "", "!", "not base64 at all", "====", "AAAA", "A" * 40, "\x00\x01", "é", None, 0, 1.5,
    b"bytes", ["list"], {"dict": 1}, object(), "A" * 100_000,
])
def test_garbage_is_rejected(codes: StatelessWrapper, garbage: Any) -> None:
    assert codes.unseal(garbage) is None
    assert codes.get(garbage) is None
    assert codes.consume(garbage) is None
    assert codes.delete(garbage) is False


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    codes = StatelessWrapper("authz_codes", SECRET)
    assert codes.unseal(text) is None
    assert codes.consume(text) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_binary_never_raises(data: bytes) -> None:
    codes = StatelessWrapper("authz_codes", SECRET)
    assert codes.unseal(_b64encode(data)) is None
    assert codes.unseal(_b64encode(b"\x01" + data)) is None


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=8), children, max_size=4),
                    max_leaves=20))
def test_arbitrary_json_round_trips(value: Any) -> None:
    codes = StatelessWrapper("authz_codes", SECRET)
    token = codes.seal(value, time.time() + 60)
    assert codes.unseal(token) == value


def test_other_collection_and_other_secret_are_rejected(clock: FakeClock) -> None:
    codes = StatelessWrapper("authz_codes", SECRET, clock=clock)
    tokens = StatelessWrapper("access_tokens", SECRET, clock=clock)
    other_secret = StatelessWrapper("authz_codes", SECRET + "!", clock=clock)
    token = codes.seal(VALUE, clock() + 600)
    assert tokens.unseal(token) is None
    assert tokens.consume(token) is None
    assert other_secret.unseal(token) is None
    assert codes.unseal(tokens.seal(VALUE, clock() + 600)) is None


def test_expiry_is_enforced(codes: StatelessWrapper, clock: FakeClock) -> None:
    token = codes.seal(VALUE, clock() + 10)
    clock.advance(9.999)
    assert codes.unseal(token) == VALUE
    clock.advance(0.001)
    assert codes.unseal(token) is None
    assert codes.get(token, "gone") == "gone"
    assert codes.consume(token) is None
    assert codes.unseal(codes.seal(VALUE, clock() - 1)) is None


def test_secret_rotation(clock: FakeClock) -> None:
    old = StatelessWrapper("authz_codes", "old secret, long enough", clock=clock)
    rotated = StatelessWrapper("authz_codes", ["new secret, long enough",
                                               "old secret, long enough"], clock=clock)
    new_only = StatelessWrapper("authz_codes", "new secret, long enough", clock=clock)
    old_token = old.seal(VALUE, clock() + 60)
    assert rotated.unseal(old_token) == VALUE
    new_token = rotated.seal(VALUE, clock() + 60)
    assert new_only.unseal(new_token) == VALUE
    assert old.unseal(new_token) is None


def test_bad_secrets_and_expiry(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        StatelessWrapper("authz_codes", "")
    with pytest.raises(ValueError):
        StatelessWrapper("authz_codes", [])
    codes = StatelessWrapper("authz_codes", b"bytes secret of 32 bytes........", clock=clock)
    with pytest.raises(ValueError):
        codes.seal(VALUE)  # no expiry and no ttl
    with pytest.raises(ValueError):
        codes.seal(VALUE, float("nan"))
    with pytest.raises(TypeError):
        codes.seal({"x": object()}, clock() + 1)
    with_ttl = StatelessWrapper("authz_codes", SECRET, clock=clock, ttl=60)
    token = with_ttl.seal(VALUE)
    clock.advance(59)
    assert with_ttl.unseal(token) == VALUE
    clock.advance(1)
    assert with_ttl.unseal(token) is None


# -- single use, revocation, replay cache -------------------------------------------------------


def test_consume_twice(codes: StatelessWrapper, clock: FakeClock) -> None:
    token = codes.seal(VALUE, clock() + 600)
    assert codes.consume(token) == VALUE
    assert codes.consume(token) is None
    assert codes.get(token) is None  # used codes no longer read back
    assert codes.unseal(token) == VALUE  # the seal itself is still intact
    assert codes.pop(token, "used") == "used"


def test_delete_revokes_until_expiry(codes: StatelessWrapper, clock: FakeClock) -> None:
    token = codes.seal(VALUE, clock() + 600)
    assert codes.delete(token) is True
    assert codes.delete(token) is False
    assert codes.get(token) is None
    assert codes.consume(token) is None
    with pytest.raises(KeyError):
        del codes[token]


def test_replay_cache_entries_expire(codes: StatelessWrapper, clock: FakeClock) -> None:
    cache = codes.replay_cache
    assert isinstance(cache, MemoryStorage)
    first = codes.seal(VALUE, clock() + 10)
    second = codes.seal(VALUE, clock() + 100)
    codes.consume(first)
    codes.delete(second)
    assert len(cache._data) == 2
    # the cache holds hashes, never the tokens themselves
    assert first not in cache._data and second not in cache._data
    clock.advance(11)
    assert codes.purge_expired() == 1
    assert len(cache._data) == 1
    clock.advance(100)
    assert codes.purge_expired() == 1
    assert len(cache._data) == 0


@pytest.mark.servers
def test_shared_replay_cache_across_instances(redis_server: Any) -> None:
    """Two workers (two wrappers, two clients) sharing a Redis replay cache."""
    caches = [RedisWrapper(redis_server.url, "pyop", "replay") for _ in range(2)]
    worker_a = StatelessWrapper("authz_codes", SECRET, replay_cache=caches[0])
    worker_b = StatelessWrapper("authz_codes", SECRET, replay_cache=caches[1])
    try:
        token = worker_a.seal(VALUE, time.time() + 1)
        assert worker_a.consume(token) == VALUE
        assert worker_b.consume(token) is None
        assert worker_b.get(token) is None
        revoked = worker_b.seal(VALUE, time.time() + 60)
        assert worker_b.delete(revoked) is True
        assert worker_a.get(revoked) is None
        # the replay entry lives exactly as long as the token: Redis drops it itself
        key = caches[0]._key(hashlib.sha256(token.encode()).hexdigest())
        assert 0 < caches[0]._client.pttl(key) <= 1000
    finally:
        for cache in caches:
            cache.close()


def test_default_replay_cache_is_per_instance(clock: FakeClock) -> None:
    one = StatelessWrapper("authz_codes", SECRET, clock=clock)
    two = StatelessWrapper("authz_codes", SECRET, clock=clock)
    token = one.seal(VALUE, clock() + 60)
    assert one.consume(token) == VALUE
    assert two.consume(token) == VALUE  # in-process cache: one per process, document it
    assert isinstance(one.replay_cache, StorageBase)


def test_contract_surface(codes: StatelessWrapper, clock: FakeClock) -> None:
    token = codes.seal(VALUE, clock() + 60)
    codes.set(token, {"ignored": True})  # no-op: the value lives in the token
    codes[token] = {"ignored": True}
    assert codes.get(token) == VALUE
    assert list(codes.keys()) == [] and len(codes) == 0 and bool(codes)
    with pytest.raises(NotImplementedError):
        codes.compare_and_set(token, VALUE, {"x": 1})
    with pytest.raises(NotImplementedError):
        codes.add(token, VALUE)
    codes.close()


def test_from_uri(clock: FakeClock) -> None:
    store = StorageBase.from_uri("stateless://user:s%40cret%3Awith%2Fchars@host",
                                 collection="authz_codes", clock=clock)
    assert isinstance(store, StatelessWrapper)
    direct = StatelessWrapper("authz_codes", "s@cret:with/chars", clock=clock)
    assert direct.unseal(store.seal(VALUE, clock() + 5)) == VALUE
    with pytest.raises(ValueError):
        StorageBase.from_uri("stateless://host", collection="authz_codes")
