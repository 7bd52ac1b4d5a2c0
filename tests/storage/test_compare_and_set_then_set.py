"""``compare_and_set_then_set``: a compare-and-set, then a write to another store only if it
succeeded (a code marked used, then its access token stored; RFC 6749 4.1.2).

On every backend of the contract suite, with the second store on the same backend (one
round trip on Redis and PostgreSQL) and on another one (the default: two calls).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAccessToken, InvalidAuthorizationCode, StorageError
from pyop.storage import MemoryStorage, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

from .conftest import Backend
from .test_races import KEYS, THREADS, race

CODE = {"client_id": "c", "exp": 10, "used": None}
USED = {"client_id": "c", "exp": 20, "used": True}
TOKEN = {"token_type": "access_token", "sub": "s"}


def _pair(backend: Backend) -> tuple[StorageBase, StorageBase]:
    return backend.make(), backend.make()


def test_replaces_and_writes_the_other_record(backend: Backend) -> None:
    codes, tokens = _pair(backend)
    codes.set("code", CODE, expires_at=backend.now() + 600)
    expires = backend.now() + 3600
    assert codes.compare_and_set_then_set("code", CODE, USED, backend.now() + 1200, tokens,
                                          "at", TOKEN, expires) is True
    assert codes.get("code") == USED
    assert tokens.get("at") == TOKEN


def test_other_record_expires(backend: Backend) -> None:
    if not backend.fake_clock:
        pytest.skip("expiry decided by the server's own clock (checked in test_contract)")
    codes, tokens = _pair(backend)
    codes.set("code", CODE, expires_at=backend.now() + 600)
    assert codes.compare_and_set_then_set("code", CODE, USED, backend.now() + 1200, tokens,
                                          "at", TOKEN, backend.now() + 60)
    backend.advance(61)
    assert tokens.get("at") is None
    assert codes.get("code") == USED


@pytest.mark.parametrize("stored", [None, {"client_id": "c", "exp": 10, "used": True}])
def test_no_match_writes_nothing(backend: Backend, stored: Any) -> None:
    codes, tokens = _pair(backend)
    if stored is not None:
        codes.set("code", stored, expires_at=backend.now() + 600)
    assert codes.compare_and_set_then_set("code", CODE, USED, backend.now() + 1200, tokens,
                                          "at", TOKEN, backend.now() + 3600) is False
    assert tokens.get("at") is None
    assert codes.get("code") == stored


def test_expired_record_never_matches(backend: Backend) -> None:
    if not backend.fake_clock:
        pytest.skip("expiry decided by the server's own clock")
    codes, tokens = _pair(backend)
    codes.set("code", CODE, expires_at=backend.now() + 10)
    backend.advance(11)
    assert codes.compare_and_set_then_set("code", CODE, USED, backend.now() + 1200, tokens,
                                          "at", TOKEN, backend.now() + 3600) is False
    assert tokens.get("at") is None


def test_other_store_of_another_kind(backend: Backend) -> None:
    codes = backend.make()
    tokens = MemoryStorage(clock=backend.clock)
    codes.set("code", CODE, expires_at=backend.now() + 600)
    assert codes.compare_and_set_then_set("code", CODE, USED, backend.now() + 1200, tokens,
                                          "at", TOKEN, backend.now() + 3600)
    assert tokens.get("at") == TOKEN and codes.get("code") == USED


def test_concurrent_redemptions_one_winner_one_token(race_backend: Backend) -> None:
    codes, tokens = race_backend.make(), race_backend.make()
    pairs = [(codes, tokens)]
    if race_backend.name not in ("memory", "dict"):  # a store pair per thread, as workers
        pairs += [(race_backend.make(collection=codes.collection),  # type: ignore[attr-defined]
                   race_backend.make(collection=tokens.collection))  # type: ignore[attr-defined]
                  for _ in range(THREADS - 1)]
    for r in range(KEYS):
        codes.set(f"code{r}", {"r": r}, expires_at=race_backend.now() + 600)
    assigned: dict[int, int] = {}
    lock = threading.Lock()

    def redeem(r: int) -> bool:
        with lock:
            index = assigned.setdefault(threading.get_ident(), len(assigned) % len(pairs))
        mine_codes, mine_tokens = pairs[index]
        return mine_codes.compare_and_set_then_set(
            f"code{r}", {"r": r}, {"r": r, "used": True}, race_backend.now() + 1200,
            mine_tokens, f"at{r}-{threading.get_ident()}", {"r": r},
            race_backend.now() + 3600)

    results = race(redeem)
    live_tokens = set(tokens.keys())
    for r, outcomes in enumerate(results):
        assert outcomes.count(True) == 1, f"key {r}: {outcomes}"
        assert sum(1 for key in live_tokens if key.startswith(f"at{r}-")) == 1, r


class _RecordingStore(MemoryStorage):
    """A memory store that calls ``on_set(key)`` before each ``set``."""

    def __init__(self, on_set: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_set = on_set

    def set(self, key: str, value: Any, expires_at: Any = None) -> None:
        self.on_set(key)
        super().set(key, value, expires_at=expires_at)


def test_default_writes_the_other_record_before_the_mark(backend: Backend) -> None:
    """With two calls (the other store elsewhere), the other record is written while the
    value is still the expected one: once the mark is visible, the record is stored."""
    codes = backend.make()
    seen: list[Any] = []
    tokens = _RecordingStore(lambda key: seen.append(codes.get("code")), clock=backend.clock)
    codes.set("code", CODE, expires_at=backend.now() + 600)
    assert codes.compare_and_set_then_set("code", CODE, USED, backend.now() + 1200, tokens,
                                          "at", TOKEN, backend.now() + 3600)
    assert seen == [CODE]
    assert tokens.get("at") == TOKEN and codes.get("code") == USED


class _FailingCompareAndSet(MemoryStorage):
    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Any = None) -> bool:
        raise StorageError("the server went away")


class _FailingDelete(MemoryStorage):
    def delete(self, key: str) -> bool:
        raise StorageError("the server went away")


def test_default_failed_compare_and_set_removes_the_other_record() -> None:
    codes, tokens = _FailingCompareAndSet(), MemoryStorage()
    codes.set("code", CODE)
    with pytest.raises(StorageError):
        codes.compare_and_set_then_set("code", CODE, USED, None, tokens, "at", TOKEN)
    assert tokens.get("at") is None and codes.get("code") == CODE


def test_default_lost_compare_and_set_with_a_failing_delete(
        caplog: pytest.LogCaptureFixture) -> None:
    """The answer stands when the other record cannot be removed (its key is known to
    no one); the failure is logged, without the key."""
    codes, tokens = MemoryStorage(), _FailingDelete()
    codes.set("code", USED)
    with caplog.at_level(logging.WARNING, logger="pyop.storage.base"):
        assert codes.compare_and_set_then_set("code", CODE, USED, None, tokens,
                                              "secret-token-value", TOKEN) is False
    assert "could not delete" in caplog.text and "secret-token-value" not in caplog.text


def test_replay_between_the_mark_and_the_token_revokes_the_token() -> None:
    """A replay of the code that lands right after the code is marked used finds the
    access token already stored and revokes it (RFC 6749 4.1.2): the token the first
    redemption returns does not work."""
    replays: list[Any] = []

    class ReplayAfterMark(MemoryStorage):
        def compare_and_set(self, key: str, expected: Any, new: Any,
                            expires_at: Any = None) -> bool:
            replaced = super().compare_and_set(key, expected, new, expires_at=expires_at)
            if replaced and not replays:
                replays.append(key)
                with pytest.raises(InvalidAuthorizationCode):
                    authz.redeem_authorization_code(key, expected)
            return replaced

    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                               authorization_code_db=ReplayAfterMark(),
                               access_token_db=MemoryStorage())
    code = authz.create_authorization_code(
        {"client_id": "c", "redirect_uri": "https://rp.example.com/cb", "scope": "openid"},
        "sub", "user", ["openid"])
    record = authz.get_authorization_code(code)
    access_token, _ = authz.redeem_authorization_code(code, record)
    assert replays == [code]
    with pytest.raises(InvalidAccessToken):
        authz.get_access_token(access_token.value)
