"""SECURITY.md, "Stored and sealed data": sealing, expiry and randomness of codes and tokens.

Each SECURITY.md line and the tests covering it:

- Sealed (stateless) codes/tokens: authenticated encryption; tampered, truncated, swapped
  between types or sealed under another key -> rejected as invalid, never a crash:
  ``test_aead_sealed_*`` (StatelessWrapper) and ``test_aead_provider_*`` (a provider on
  sealed storage, including ``test_aead_provider_tokens_swapped_between_types``).
- Every stored record expires at its own expiry; nothing grows without bound:
  ``test_storage_record_expires_at_its_own_expiry``, ``test_storage_expired_records_purged``,
  ``test_storage_expired_records_swept_by_later_writes``,
  ``test_storage_provider_state_expires_and_is_purged``,
  ``test_storage_replay_cache_entries_expire`` -- memory, dict and sealed stores here; the
  Redis/SQL/MongoDB backends run the same contract in tests/storage.
- Codes and tokens carry >= 128 bits from ``secrets``:
  ``test_rfc6749_10_10_codes_and_tokens_from_secrets``,
  ``test_rfc6749_10_10_registration_credentials_from_secrets``,
  ``test_rfc6749_10_10_sealed_tokens_unique``.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any, Callable

import pytest

from pyop.exceptions import InvalidAccessToken, OAuthError
from pyop.storage import DictStorage, MemoryStorage, StatelessWrapper

from .helpers import (
    bearer,
    full_code_flow,
    issue_code,
    redeem,
    refresh,
)

SECRET = "0123456789abcdef-sealing-secret"
OTHER_SECRET = "fedcba9876543210-sealing-secret"
VALUE = {"client_id": "client1", "sub": "s", "scope": "openid", "exp": 1_800_000_600}
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.fixture
def sealer(clock: Any) -> StatelessWrapper:
    return StatelessWrapper("authz_codes", SECRET, clock=clock)


@pytest.fixture
def token(sealer: StatelessWrapper, clock: Any) -> str:
    return sealer.seal(VALUE, clock() + 600)


def raw_of(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def token_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# -- sealed values (StatelessWrapper) ----------------------------------------------------------

def test_aead_sealed_round_trip(sealer: StatelessWrapper, token: str) -> None:
    assert sealer.unseal(token) == VALUE
    assert sealer.get(token) == VALUE
    assert BASE64URL.match(token)
    assert "client1" not in token  # encrypted, not merely signed
    assert b"client1" not in raw_of(token)


def test_aead_sealed_every_bit_flip_rejected(sealer: StatelessWrapper, token: str) -> None:
    raw = raw_of(token)
    for index in range(len(raw)):
        for bit in (0x01, 0x80):
            tampered = bytearray(raw)
            tampered[index] ^= bit
            assert sealer.unseal(token_of(bytes(tampered))) is None, (index, bit)
            assert sealer.get(token_of(bytes(tampered))) is None


def test_aead_sealed_every_character_substitution_rejected(sealer: StatelessWrapper,
                                                          token: str) -> None:
    for index, char in enumerate(token):
        replacement = "A" if char != "A" else "B"
        assert sealer.unseal(token[:index] + replacement + token[index + 1:]) is None, index


def test_aead_sealed_every_truncation_rejected(sealer: StatelessWrapper, token: str) -> None:
    for length in range(len(token)):
        assert sealer.unseal(token[:length]) is None, length
        assert sealer.unseal(token[len(token) - length:] if length else "") is None, length


@pytest.mark.parametrize("suffix", ["A", "AA", "AAAA", "=", "==", ".", " ", "\n"])
def test_aead_sealed_extended_rejected(sealer: StatelessWrapper, token: str, suffix: str) -> None:
    assert sealer.unseal(token + suffix) is None


def test_aead_sealed_appended_bytes_rejected(sealer: StatelessWrapper, token: str) -> None:
    assert sealer.unseal(token_of(raw_of(token) + b"\x00")) is None
    assert sealer.unseal(token + token) is None


def test_aead_sealed_non_canonical_encoding_rejected(sealer: StatelessWrapper,
                                                     clock: Any) -> None:
    # stray low bits in the last character decode to the same bytes: one token, one string
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tokens = [sealer.seal({"pad": "x" * n}, clock() + 600) for n in range(4)]
    token = next(t for t in tokens if len(t) % 4 in (2, 3))  # lengths with spare bits
    variant = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert raw_of(variant) == raw_of(token)
    assert sealer.unseal(token) is not None
    assert sealer.unseal(variant) is None


def test_aead_sealed_other_collection_rejected(token: str, clock: Any) -> None:
    for collection in ("access_tokens", "refresh_tokens", "authz_codes ", "AUTHZ_CODES"):
        assert StatelessWrapper(collection, SECRET, clock=clock).unseal(token) is None


def test_aead_sealed_other_key_rejected(token: str, clock: Any) -> None:
    assert StatelessWrapper("authz_codes", OTHER_SECRET, clock=clock).unseal(token) is None
    assert StatelessWrapper("authz_codes", SECRET + "x", clock=clock).unseal(token) is None
    assert StatelessWrapper("authz_codes", SECRET.encode(), clock=clock).unseal(token) == VALUE


def test_aead_sealed_key_rotation(token: str, clock: Any) -> None:
    rotated = StatelessWrapper("authz_codes", [OTHER_SECRET, SECRET], clock=clock)
    assert rotated.unseal(token) == VALUE  # old secret still opens
    new_token = rotated.seal(VALUE, clock() + 600)
    assert StatelessWrapper("authz_codes", SECRET, clock=clock).unseal(new_token) is None
    assert StatelessWrapper("authz_codes", OTHER_SECRET, clock=clock).unseal(new_token) == VALUE


@pytest.mark.parametrize("seconds", [600, 601, 86400])
def test_aead_sealed_expired_rejected(sealer: StatelessWrapper, token: str, clock: Any,
                                      seconds: int) -> None:
    clock.advance(seconds)
    assert sealer.unseal(token) is None
    assert sealer.get(token) is None
    assert sealer.consume(token) is None
    assert sealer.delete(token) is False


def test_aead_sealed_valid_until_expiry(sealer: StatelessWrapper, token: str,
                                        clock: Any) -> None:
    clock.advance(599)
    assert sealer.unseal(token) == VALUE


GARBAGE_TOKENS: dict[str, Any] = {
    "empty": "",
    "none": None,
    "integer": 12345,
    "bytes": b"AQ" * 40,
    "list": ["a"],
    "punctuation": "!!!",
    "standard-base64": "+/+/" * 20,
    "version-only": token_of(b"\x01"),
    "wrong-version": token_of(b"\x02" + b"\x00" * 60),
    "zeroes": token_of(b"\x01" + b"\x00" * 60),
    "unicode": "\u00e9" * 40,
    "nul": "A" * 40 + "\x00",
    "huge": "A" * 100_000,
    "jws": "eyJhbGciOiJub25lIn0.e30.",
}


@pytest.mark.parametrize("value", list(GARBAGE_TOKENS.values()), ids=list(GARBAGE_TOKENS))
def test_aead_sealed_garbage_rejected_never_raises(sealer: StatelessWrapper, value: Any) -> None:
    assert sealer.unseal(value) is None
    if isinstance(value, str):
        assert sealer.get(value) is None
        assert sealer.consume(value) is None
        assert sealer.delete(value) is False


def test_aead_sealed_single_use(sealer: StatelessWrapper, token: str) -> None:
    assert sealer.consume(token) == VALUE
    assert sealer.consume(token) is None
    assert sealer.get(token) is None


def test_aead_sealed_revocation(sealer: StatelessWrapper, token: str) -> None:
    assert sealer.delete(token) is True
    assert sealer.get(token) is None
    assert sealer.consume(token) is None


# -- a provider on sealed storage --------------------------------------------------------------

def sealed_stores(clock: Any, collections: tuple[str, str, str]) -> dict[str, Any]:
    names = ("authorization_code_db", "access_token_db", "refresh_token_db")
    return {name: StatelessWrapper(collection, SECRET, clock=clock)
            for name, collection in zip(names, collections)}


@pytest.fixture
def sealed_op(make_op: Callable[..., Any], clock: Any) -> Any:
    stores = sealed_stores(clock, ("authz_codes", "access_tokens", "refresh_tokens"))
    return make_op(authz_kwargs={"refresh_token_lifetime": 3600, **stores})


def test_aead_provider_flow_works(sealed_op: Any) -> None:
    response = full_code_flow(sealed_op, scope="openid profile")
    claims = sealed_op.handle_userinfo_request(None, bearer(response["access_token"]))
    assert claims["name"] == "Alice Liddell"
    assert refresh(sealed_op, response["refresh_token"])["access_token"]


def test_aead_provider_code_single_use(sealed_op: Any) -> None:
    code = issue_code(sealed_op)
    assert redeem(sealed_op, code)["access_token"]
    with pytest.raises(OAuthError) as info:
        redeem(sealed_op, code)
    assert info.value.oauth_error == "invalid_grant"


@pytest.mark.parametrize("kind", ["code", "access_token", "refresh_token"])
def test_aead_provider_tampered_tokens_rejected(sealed_op: Any, kind: str) -> None:
    response = full_code_flow(sealed_op)
    value = issue_code(sealed_op) if kind == "code" else response[kind]
    raw = bytearray(raw_of(value))
    raw[len(raw) // 2] ^= 0x01
    tampered = token_of(bytes(raw))
    if kind == "code":
        with pytest.raises(OAuthError) as info:
            redeem(sealed_op, tampered)
        assert info.value.oauth_error == "invalid_grant"
    elif kind == "access_token":
        with pytest.raises(InvalidAccessToken):
            sealed_op.handle_userinfo_request(None, bearer(tampered))
    else:
        with pytest.raises(OAuthError) as info:
            refresh(sealed_op, tampered)
        assert info.value.oauth_error == "invalid_grant"


def _assert_swaps_rejected(provider: Any) -> None:
    response = full_code_flow(provider)
    code = issue_code(provider)
    access, refresh_token = response["access_token"], response["refresh_token"]
    for value in (code, refresh_token, response["id_token"]):
        with pytest.raises(InvalidAccessToken):
            provider.handle_userinfo_request(None, bearer(value))
    for value in (access, refresh_token, response["id_token"]):
        with pytest.raises(OAuthError) as info:
            redeem(provider, value, redirect_uri=None)
        assert info.value.oauth_error in ("invalid_grant", "invalid_request"), value
        with pytest.raises(OAuthError) as info:
            redeem(provider, value)
        assert info.value.oauth_error in ("invalid_grant", "invalid_request"), value
    for value in (code, access, response["id_token"]):
        with pytest.raises(OAuthError) as info:
            refresh(provider, value)
        assert info.value.oauth_error == "invalid_grant"
    # the genuine artefacts still work
    assert provider.handle_userinfo_request(None, bearer(access))["sub"]
    assert redeem(provider, code)["access_token"]


def test_aead_provider_tokens_swapped_between_types(sealed_op: Any) -> None:
    _assert_swaps_rejected(sealed_op)


@pytest.mark.parametrize("layout", ["sealed-one-collection", "memory-one-store"])
def test_aead_provider_tokens_swapped_between_types_in_one_collection(
        make_op: Callable[..., Any], clock: Any, layout: str) -> None:
    # defence in depth: a host that gives every token type the same collection (or the same
    # store) must not turn an access or refresh token into an authorization code
    if layout == "sealed-one-collection":
        stores = sealed_stores(clock, ("tokens", "tokens", "tokens"))
    else:
        shared = MemoryStorage(clock=clock)
        stores = {"authorization_code_db": shared, "access_token_db": shared,
                  "refresh_token_db": shared}
    provider = make_op(authz_kwargs={"refresh_token_lifetime": 3600, **stores})
    _assert_swaps_rejected(provider)


# -- expiry of stored records ------------------------------------------------------------------

STORES: dict[str, Callable[[Any], Any]] = {
    "memory": lambda clock: MemoryStorage(clock=clock),
    "dict": lambda clock: DictStorage({}, clock=clock),
}


@pytest.mark.parametrize("make_store", list(STORES.values()), ids=list(STORES))
def test_storage_record_expires_at_its_own_expiry(clock: Any, make_store: Any) -> None:
    store = make_store(clock)
    now = clock()
    store.set("short", {"v": 1}, expires_at=now + 10)
    store.set("long", {"v": 2}, expires_at=now + 100)
    clock.advance(9)
    assert store.get("short") == {"v": 1}
    clock.advance(1)  # exactly at its expiry
    assert store.get("short") is None
    assert "short" not in store
    assert store.consume("short") is None
    assert store.compare_and_set("short", {"v": 1}, {"v": 3}) is False
    assert store.add("short", {"v": 4}, expires_at=clock() + 5) is True  # absent again
    assert store.get("long") == {"v": 2}
    assert sorted(store.keys()) == ["long", "short"]
    clock.advance(90)
    assert store.get("long") is None
    assert list(store.keys()) == []


@pytest.mark.parametrize("make_store", list(STORES.values()), ids=list(STORES))
def test_storage_ttl_default_expiry(clock: Any, make_store: Any) -> None:
    store = make_store(clock)
    store.ttl = 30
    store.set("k", "v")
    clock.advance(30)
    assert store.get("k") is None


@pytest.mark.parametrize("make_store", list(STORES.values()), ids=list(STORES))
def test_storage_expired_records_purged(clock: Any, make_store: Any) -> None:
    store = make_store(clock)
    for i in range(100):
        store.set(f"k{i}", i, expires_at=clock() + 10 + i % 3)
    store.set("keep", 1, expires_at=clock() + 1000)
    clock.advance(20)
    assert store.purge_expired() == 100
    assert store.purge_expired() == 0
    assert list(store.keys()) == ["keep"]


def test_storage_dict_purge_removes_from_the_hosts_dict(clock: Any) -> None:
    mapping: dict[str, Any] = {}
    store = DictStorage(mapping, clock=clock)
    store.set("k", 1, expires_at=clock() + 10)
    clock.advance(10)
    store.purge_expired()
    assert mapping == {}


@pytest.mark.parametrize("make_store", list(STORES.values()), ids=list(STORES))
def test_storage_expired_records_swept_by_later_writes(clock: Any, make_store: Any) -> None:
    # no background thread and no purge call: writes alone keep memory bounded
    store = make_store(clock)
    for i in range(1000):
        store.set(f"k{i}", i, expires_at=clock() + 10)
    clock.advance(3600)
    store.set("new", 1, expires_at=clock() + 10)
    assert store.purge_expired() == 0  # the write already swept them


def test_storage_provider_state_expires_and_is_purged(make_op: Callable[..., Any],
                                                      clock: Any) -> None:
    stores = {"authorization_code_db": MemoryStorage(clock=clock),
              "access_token_db": MemoryStorage(clock=clock),
              "refresh_token_db": MemoryStorage(clock=clock)}
    provider = make_op(authz_kwargs={"refresh_token_lifetime": 3600, **stores})
    used = full_code_flow(provider)
    refresh(provider, used["refresh_token"])
    issue_code(provider)  # never redeemed
    assert all(len(store) > 0 for store in stores.values())
    clock.advance(3600 + 1)
    for name, store in stores.items():
        assert len(store) == 0, name
        assert store.purge_expired() > 0, name
        assert store.purge_expired() == 0, name


def test_storage_used_code_record_bounded_by_token_lifetime(make_op: Callable[..., Any],
                                                            clock: Any) -> None:
    codes = MemoryStorage(clock=clock)
    provider = make_op(authz_kwargs={"refresh_token_lifetime": 3600,
                                     "authorization_code_db": codes,
                                     "access_token_lifetime": 300})
    full_code_flow(provider)
    clock.advance(600)  # the code's own lifetime (and longer than the access token's)
    assert codes.purge_expired() == 1


def test_storage_replay_cache_entries_expire(clock: Any) -> None:
    cache = MemoryStorage(clock=clock)
    sealer = StatelessWrapper("authz_codes", SECRET, replay_cache=cache, clock=clock)
    tokens = [sealer.seal({"i": i}, clock() + 60) for i in range(10)]
    for value in tokens:
        assert sealer.consume(value) == {"i": tokens.index(value)}
    assert len(cache) == 10
    clock.advance(60)
    assert len(cache) == 0
    assert sealer.purge_expired() == 10


# -- randomness (RFC 6749 10.10, RFC 6819 5.1.4.2.2) -------------------------------------------

@pytest.fixture
def secrets_spy(monkeypatch: Any) -> list[tuple[int, str]]:
    """Records every ``secrets.token_urlsafe`` call: ``(nbytes, value)``."""
    real = secrets.token_urlsafe
    calls: list[tuple[int, str]] = []

    def spy(nbytes: Any = None) -> str:
        value = real(nbytes)
        calls.append((nbytes if nbytes is not None else 32, value))
        return value

    monkeypatch.setattr(secrets, "token_urlsafe", spy)
    return calls


def test_rfc6749_10_10_codes_and_tokens_from_secrets(op: Any,
                                                     secrets_spy: list[tuple[int, str]]) -> None:
    issued: dict[str, list[str]] = {"code": [], "access_token": [], "refresh_token": []}
    for _ in range(100):
        code = issue_code(op)
        response = redeem(op, code)
        issued["code"].append(code)
        issued["access_token"].append(response["access_token"])
        issued["refresh_token"].append(response["refresh_token"])
    issued["access_token"].append(refresh(op, issued["refresh_token"][0])["access_token"])
    from_secrets = {value: nbytes for nbytes, value in secrets_spy}
    everything = [value for values in issued.values() for value in values]
    assert len(set(everything)) == len(everything)
    for kind, values in issued.items():
        for value in values:
            assert value in from_secrets, kind
            assert from_secrets[value] >= 16, kind  # >= 128 bits
            assert len(value) >= 22 and BASE64URL.match(value), kind


def test_rfc6749_10_10_registration_credentials_from_secrets(
        op: Any, secrets_spy: list[tuple[int, str]]) -> None:
    op.sector_identifier_fetcher = lambda uri: pytest.fail("no fetch expected")
    credentials = set()
    for _ in range(20):
        response = op.handle_client_registration_request(
            {"redirect_uris": ["https://rp.example.com/cb"]})
        credentials.update([response["client_id"], response["client_secret"]])
    assert len(credentials) == 40
    from_secrets = {value: nbytes for nbytes, value in secrets_spy}
    for value in credentials:
        assert from_secrets.get(value, 0) >= 16


def test_rfc6749_10_10_sealed_tokens_unique(sealed_op: Any) -> None:
    values = []
    for _ in range(20):
        response = full_code_flow(sealed_op)
        values += [response["access_token"], response["refresh_token"]]
    values += [issue_code(sealed_op) for _ in range(20)]
    assert len(set(values)) == len(values)
    # 96-bit random nonce + AEAD under a 256-bit key: never shorter than a 128-bit token
    assert all(len(raw_of(value)) >= 1 + 12 + 16 for value in values)
