"""Storage failures during token requests.

* A failure in the middle of a code redemption never leaves tokens without a consumed code
  (a consumed code without tokens is acceptable: the client gets a 503 and must start over).
  The tokens are written before the code is marked used and removed again when the mark
  fails, so a failed write leaves the code unused, and a used code's tokens are stored
  for the next replay of the code to revoke.
* ``Provider.handle_token_request`` lets :class:`pyop.exceptions.StorageError` out (typed,
  ``http_status`` 503) and never a driver exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
from support.stores import ProxyStore

from benchmarks.engines import free_port
from pyop.crypto import SigningKey
from pyop.exceptions import OAuthError, StorageError
from pyop.storage import StorageBase

from .provider_support import (
    Stores,
    authorize,
    exchange,
    make_provider,
    new_namespace,
    outcome,
    refresh,
    stores_from_uri,
    userinfo,
)


class FailingStore(ProxyStore):
    """Delegates to ``inner``; the operations named in ``failing`` raise StorageError."""

    def __init__(self, inner: StorageBase) -> None:
        super().__init__(inner)
        self.failing: set[str] = set()

    def before(self, operation: str) -> None:
        if operation in self.failing:
            raise StorageError(f"injected failure of {operation}")


@pytest.fixture(scope="module")
def signing_key(rsa_private_key: Any) -> SigningKey:
    return SigningKey.from_key(rsa_private_key)


@pytest.fixture(params=["memory", "sqlite"])
def failing(request: pytest.FixtureRequest) -> Iterator[Stores]:
    """Stores that fail on demand, each wrapping a real backend's store."""
    uri = ("memory://" if request.param == "memory"
           else f"sqlite:///{request.getfixturevalue('tmp_path')}/pyop.db")
    inner = stores_from_uri(uri, new_namespace())
    stores = Stores(FailingStore(inner.codes), FailingStore(inner.access_tokens),
                    FailingStore(inner.refresh_tokens), inner.subject_identifiers,
                    closables=inner.closables)
    try:
        yield stores
    finally:
        stores.close()


def _readable(store: FailingStore) -> list[str]:
    """The live keys of the store behind ``store``."""
    return list(store.inner.keys())


def _storage_error(call: Callable[[], Any]) -> StorageError:
    with pytest.raises(StorageError) as info:
        call()
    assert not isinstance(info.value, OAuthError)
    assert info.value.http_status == 503 and info.value.oauth_error == "server_error"
    return info.value


def test_failure_writing_the_access_token(failing: Stores, signing_key: SigningKey) -> None:
    """The access token is written before the code is marked used (two calls on these
    stores): nothing happened, and once the storage is back the code is redeemed."""
    provider = make_provider(failing, signing_key)
    code = authorize(provider)
    failing.access_tokens.failing.add("set")
    _storage_error(lambda: exchange(provider, code))
    assert "used" not in failing.codes.inner.get(code)
    assert _readable(failing.access_tokens) == [] and _readable(failing.refresh_tokens) == []
    failing.access_tokens.failing.clear()
    tokens = exchange(provider, code)
    assert userinfo(provider, tokens["access_token"])["sub"]
    assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
    assert outcome(lambda: userinfo(provider, tokens["access_token"])) == "invalid_token"


def test_failure_writing_the_refresh_token(failing: Stores, signing_key: SigningKey) -> None:
    """The refresh token is written before the code is marked used: nothing happened, and
    once the storage is back the code is redeemed normally."""
    provider = make_provider(failing, signing_key)
    code = authorize(provider)
    failing.refresh_tokens.failing.add("set")
    _storage_error(lambda: exchange(provider, code))
    assert "used" not in failing.codes.inner.get(code)
    assert _readable(failing.access_tokens) == [] and _readable(failing.refresh_tokens) == []
    failing.refresh_tokens.failing.clear()
    tokens = exchange(provider, code)
    assert userinfo(provider, tokens["access_token"])["sub"]
    assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
    assert outcome(lambda: userinfo(provider, tokens["access_token"])) == "invalid_token"


def test_failure_consuming_the_code(failing: Stores, signing_key: SigningKey) -> None:
    """Nothing happened: once the storage is back the code is redeemed normally."""
    provider = make_provider(failing, signing_key)
    code = authorize(provider)
    failing.codes.failing.add("compare_and_set")
    _storage_error(lambda: exchange(provider, code))
    assert "used" not in failing.codes.inner.get(code)
    assert _readable(failing.access_tokens) == [] and _readable(failing.refresh_tokens) == []
    failing.codes.failing.clear()
    assert outcome(lambda: exchange(provider, code)) == "ok"
    assert outcome(lambda: exchange(provider, code)) == "invalid_grant"


def test_failure_rotating_a_refresh_token(failing: Stores, signing_key: SigningKey) -> None:
    provider = make_provider(failing, signing_key, refresh_token_threshold=7200)
    tokens = exchange(provider, authorize(provider))
    failing.refresh_tokens.failing.add("compare_and_set")
    _storage_error(lambda: refresh(provider, tokens["refresh_token"]))
    assert _readable(failing.refresh_tokens) == [tokens["refresh_token"]]
    failing.refresh_tokens.failing.clear()
    assert outcome(lambda: refresh(provider, tokens["refresh_token"])) == "ok"


def test_failure_writing_the_rotated_refresh_token(failing: Stores,
                                                    signing_key: SigningKey) -> None:
    """The new refresh token is written before the old one is marked rotated: when that
    write fails nothing is spent, the access token written for the refresh is removed, and
    the client can refresh again."""
    provider = make_provider(failing, signing_key, refresh_token_threshold=7200)
    tokens = exchange(provider, authorize(provider))
    failing.refresh_tokens.failing.add("add")
    _storage_error(lambda: refresh(provider, tokens["refresh_token"]))
    failing.refresh_tokens.failing.clear()
    assert _readable(failing.refresh_tokens) == [tokens["refresh_token"]]
    assert _readable(failing.access_tokens) == [tokens["access_token"]]
    assert outcome(lambda: refresh(provider, tokens["refresh_token"])) == "ok"


def test_failure_storing_the_refreshed_access_token(failing: Stores,
                                                    signing_key: SigningKey) -> None:
    """Without rotation, a refresh writes its access token and nothing else (the grant's
    record is not rewritten): when that write fails, nothing changed and the client can
    refresh again."""
    provider = make_provider(failing, signing_key, refresh_token_threshold=None)
    tokens = exchange(provider, authorize(provider))
    record = failing.refresh_tokens.inner.get(tokens["refresh_token"])
    failing.access_tokens.failing.add("set")
    _storage_error(lambda: refresh(provider, tokens["refresh_token"]))
    failing.access_tokens.failing.clear()
    assert _readable(failing.access_tokens) == [tokens["access_token"]]
    assert failing.refresh_tokens.inner.get(tokens["refresh_token"]) == record
    assert outcome(lambda: refresh(provider, tokens["refresh_token"])) == "ok"


# -- real backends that are down -----------------------------------------------------------


def _down(kind: str, tmp_path: Any) -> Stores:
    if kind == "redis":
        pytest.importorskip("redis")
        return stores_from_uri(f"redis://127.0.0.1:{free_port()}/0", "pyop",
                               socket_connect_timeout=0.5)
    if kind == "postgresql":
        pytest.importorskip("sqlalchemy")
        pytest.importorskip("psycopg")
        return stores_from_uri(f"postgresql+psycopg://pyop@127.0.0.1:{free_port()}/pyop"
                               "?connect_timeout=1", "pyop")
    if kind == "mongodb":
        pytest.importorskip("pymongo")
        return stores_from_uri(f"mongodb://127.0.0.1:{free_port()}/"
                               "?serverSelectionTimeoutMS=50", "pyop")
    pytest.importorskip("sqlalchemy")
    return stores_from_uri(f"sqlite:///{tmp_path}/missing-dir/pyop.db", "pyop")


@pytest.mark.parametrize("kind", ["redis", "postgresql", "mongodb", "sqlite"])
def test_provider_lets_storage_error_out(kind: str, tmp_path: Any,
                                         signing_key: SigningKey) -> None:
    stores = _down(kind, tmp_path)
    try:
        provider = make_provider(stores, signing_key)
        for call in (lambda: exchange(provider, "a-code"),
                     lambda: refresh(provider, "a-refresh-token")):
            error = _storage_error(call)
            cause = error.__cause__
            assert cause is not None and not isinstance(cause, StorageError)
            assert type(cause).__module__.split(".")[0] in (
                "redis", "sqlalchemy", "pymongo"), type(cause)
    finally:
        stores.close()
