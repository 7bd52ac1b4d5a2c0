"""A full Provider on each storage backend: races at the token endpoint and a complete flow.

Each backend's four stores come from ``StorageBase.from_uri(uri, db_name=..., collection=...)``.
Where the state is shared (SQL, Redis, MongoDB, sealed tokens with a Redis replay cache) every
thread gets a Provider of its own over the same database, as separate workers would have;
in-process state (memory, sealed tokens with their in-process replay cache) is shared by
one set of store objects.

RFC 6749 4.1.2: a code is redeemed once; RFC 9700 4.14.2: a rotated refresh token is used
once. Of 8 concurrent token requests for one code (or refresh token) exactly one succeeds and
every other one is refused with ``invalid_grant``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from pyop.crypto import SigningKey
from pyop.provider import Provider
from pyop.storage import DictStorage, MemoryStorage, StatelessWrapper, StorageBase

from .provider_support import (
    STATELESS_URI,
    USER_ID,
    Stores,
    authorize,
    exchange,
    make_provider,
    new_namespace,
    outcome,
    per_thread,
    refresh,
    stores_from_uri,
    userinfo,
)
from .test_races import THREADS, race

CODES = 50
REFRESH_ROUNDS = 10
#: refresh_token_threshold > refresh_token_lifetime: every use of a refresh token rotates it.
LIFETIME, THRESHOLD = 3600, 7200

PROVIDER_BACKENDS = ["memory", "sqlite", "postgresql", "redis", "mongomock", "stateless",
                     "stateless-redis"]
#: Backends whose state lives in a server (or file) shared by separately built providers.
SHARED = {"sqlite", "postgresql", "redis", "mongomock", "stateless-redis"}
SEALED = {"stateless", "stateless-redis"}


@dataclass
class ProviderBackend:
    """Builds Providers over one backend's state."""

    name: str
    build_stores: Callable[[], Stores]
    signing_key: SigningKey
    stores: list[Stores] = field(default_factory=list)

    def provider(self, **kwargs: Any) -> Provider:
        """A new Provider over the backend's state (its own stores where they are shared)."""
        if self.name in SHARED or not self.stores:
            self.stores.append(self.build_stores())
        kwargs.setdefault("refresh_token_lifetime", LIFETIME)
        kwargs.setdefault("refresh_token_threshold", THRESHOLD)
        return make_provider(self.stores[-1], self.signing_key, **kwargs)

    def providers(self, count: int = THREADS) -> list[Provider]:
        return [self.provider() for _ in range(count)]

    def close(self) -> None:
        for stores in self.stores:
            stores.close()


@pytest.fixture(scope="module")
def signing_key(rsa_private_key: Any) -> SigningKey:
    return SigningKey.from_key(rsa_private_key)


def build_provider_backend(name: str, request: pytest.FixtureRequest,
                           signing_key: SigningKey) -> ProviderBackend:
    namespace = new_namespace()
    if name == "memory":
        uri, kwargs = "memory://", {}
    elif name == "sqlite":
        uri, kwargs = f"sqlite:///{request.getfixturevalue('tmp_path')}/pyop.db", {}
    elif name == "postgresql":
        uri, kwargs = request.getfixturevalue("postgres_url"), {}
    elif name == "redis":
        uri, kwargs = request.getfixturevalue("redis_server").url, {}
    elif name == "mongomock":
        uri = "mongodb://localhost"
        kwargs = {"client": request.getfixturevalue("mongomock_client")}
    elif name == "stateless":
        uri, kwargs = STATELESS_URI, {}
    elif name == "stateless-redis":
        uri = STATELESS_URI
        kwargs = {"replay_uri": request.getfixturevalue("redis_server").url}
    else:  # pragma: no cover
        raise AssertionError(name)
    return ProviderBackend(name, lambda: stores_from_uri(uri, namespace, **kwargs),
                           signing_key)


SERVER_BACKED = {"postgresql", "redis", "stateless-redis"}


@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.servers) if n in SERVER_BACKED else n
                        for n in PROVIDER_BACKENDS])
def provider_backend(request: pytest.FixtureRequest,
                     signing_key: SigningKey) -> Iterator[ProviderBackend]:
    built = build_provider_backend(request.param, request, signing_key)
    try:
        yield built
    finally:
        built.close()


# -- races ---------------------------------------------------------------------------------


def _assert_one_winner(results: list[list[str]]) -> None:
    for r, outcomes in enumerate(results):
        assert len(outcomes) == THREADS, f"round {r}: {outcomes}"
        assert outcomes.count("ok") == 1, f"round {r}: {outcomes}"
        assert outcomes.count("invalid_grant") == THREADS - 1, f"round {r}: {outcomes}"


def test_concurrent_code_redemption_issues_tokens_once(
        provider_backend: ProviderBackend) -> None:
    providers = provider_backend.providers()
    codes = [authorize(providers[0]) for _ in range(CODES)]
    mine = per_thread(providers)
    results = race(lambda r: outcome(lambda: exchange(mine(), codes[r])), rounds=CODES)
    _assert_one_winner(results)


def test_concurrent_refresh_rotates_once(provider_backend: ProviderBackend) -> None:
    providers = provider_backend.providers()
    tokens = [exchange(providers[0], authorize(providers[0]))["refresh_token"]
              for _ in range(REFRESH_ROUNDS)]
    mine = per_thread(providers)
    results = race(lambda r: outcome(lambda: refresh(mine(), tokens[r])),
                   rounds=REFRESH_ROUNDS)
    _assert_one_winner(results)


# -- a complete flow -----------------------------------------------------------------------


def test_end_to_end_flow(provider_backend: ProviderBackend) -> None:
    """parse -> authorize -> token -> userinfo -> refresh (rotating) -> replays refused."""
    provider = provider_backend.provider()
    other = provider_backend.provider()  # a second worker where the state is shared
    sealed = provider_backend.name in SEALED
    authz = provider.authz_state

    code = authorize(provider)
    tokens = exchange(other, code)
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == ["openid", "profile"]
    access, refresh_token = tokens["access_token"], tokens["refresh_token"]
    claims = userinfo(provider, access)
    assert claims["name"] == "Alice Liddell"
    assert authz.get_user_id_for_subject_identifier(claims["sub"]) == USER_ID

    if sealed:
        # AuthorizationState detected the sealed stores (they have seal()): the code and
        # the tokens are the records themselves, and nothing was written anywhere.
        for store, value, kind in ((authz.authorization_codes, code, "authorization_code"),
                                   (authz.access_tokens, access, "access_token"),
                                   (authz.refresh_tokens, refresh_token, "refresh_token")):
            assert isinstance(store, StatelessWrapper)
            assert store.unseal(value)["token_type"] == kind
        # the subject identifier store is the host's plain dict, readable by the host
        assert isinstance(authz.subject_identifiers, DictStorage)
        assert authz.subject_identifiers.mapping[claims["sub"]]["user_id"] == USER_ID

    refreshed = refresh(provider, refresh_token)
    new_access, new_refresh = refreshed["access_token"], refreshed["refresh_token"]
    assert new_refresh != refresh_token
    assert userinfo(other, new_access)["sub"] == claims["sub"]

    # replaying the rotated refresh token is refused...
    assert outcome(lambda: refresh(other, refresh_token)) == "invalid_grant"
    # ...and replaying the code too
    assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
    # the replay revoked the grant: every token of the family is dead (sealed tokens
    # carry their grant's id, whose revocation mark is in the replay cache)
    assert outcome(lambda: refresh(provider, new_refresh)) == "invalid_grant"
    assert outcome(lambda: userinfo(other, new_access)) == "invalid_token"
    assert outcome(lambda: userinfo(other, access)) == "invalid_token"


def test_code_replay_revokes_the_access_token(provider_backend: ProviderBackend) -> None:
    provider = provider_backend.provider(refresh_token_lifetime=None,
                                         refresh_token_threshold=None)
    code = authorize(provider)
    tokens = exchange(provider, code)
    assert "refresh_token" not in tokens
    assert outcome(lambda: userinfo(provider, tokens["access_token"])) == "ok"
    assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
    assert outcome(lambda: userinfo(provider, tokens["access_token"])) == "invalid_token"


class _HookedMemoryStorage(MemoryStorage):
    """Runs ``hook`` once, right after the next write of kind ``on`` (``set`` or
    ``compare_and_set``): a concurrent request landing then."""

    hook: Optional[Callable[[], None]] = None
    on: str = "set"

    def _after(self, operation: str) -> None:
        if operation != self.on:
            return
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        super().set(key, value, expires_at)
        self._after("set")

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        replaced = super().compare_and_set(key, expected, new, expires_at)
        self._after("compare_and_set")
        return replaced


def test_replay_racing_a_rotation_does_not_fail_the_rotation(signing_key: SigningKey) -> None:
    """The interleaving the refresh race above hits now and then, made deterministic.

    The rotation wins the compare-and-set that marks the old refresh token rotated (its new
    tokens are already written); a replay of the old refresh token lands right then and
    revokes the grant (RFC 9700 4.14.2). The rotation has succeeded: it must be answered
    (its tokens are revoked anyway), not fail with ``invalid_token``, which is not even a
    token endpoint error (RFC 6749 5.2).
    """
    refresh_tokens = _HookedMemoryStorage()
    refresh_tokens.on = "compare_and_set"
    access_tokens = MemoryStorage()
    stores = Stores(MemoryStorage(), access_tokens, refresh_tokens, MemoryStorage())
    provider = make_provider(stores, signing_key, refresh_token_lifetime=LIFETIME,
                             refresh_token_threshold=THRESHOLD)
    old = exchange(provider, authorize(provider))["refresh_token"]
    replays: list[str] = []
    refresh_tokens.hook = lambda: replays.append(outcome(lambda: refresh(provider, old)))
    assert outcome(lambda: refresh(provider, old)) == "ok"
    assert replays == ["invalid_grant"]
    _assert_nothing_usable(provider, access_tokens, refresh_tokens)


def test_replay_before_the_rotation_takes_effect(signing_key: SigningKey) -> None:
    """A replay landing once the rotation has written its new access token, before it marks
    the old refresh token rotated, is a concurrent use: one of the two wins, the other
    finds the token used and revokes the grant (RFC 9700 4.14.2)."""
    access_tokens = _HookedMemoryStorage()
    refresh_tokens = MemoryStorage()
    stores = Stores(MemoryStorage(), access_tokens, refresh_tokens, MemoryStorage())
    provider = make_provider(stores, signing_key, refresh_token_lifetime=LIFETIME,
                             refresh_token_threshold=THRESHOLD)
    old = exchange(provider, authorize(provider))["refresh_token"]
    replays: list[str] = []
    access_tokens.hook = lambda: replays.append(outcome(lambda: refresh(provider, old)))
    first = outcome(lambda: refresh(provider, old))
    assert sorted([first] + replays) == ["invalid_grant", "ok"]
    _assert_nothing_usable(provider, access_tokens, refresh_tokens)


def _assert_nothing_usable(provider: Provider, access_tokens: StorageBase,
                           refresh_tokens: StorageBase) -> None:
    """The grant is revoked: what the stores still hold (its revocation mark, token
    records refused by it) is refused, and expires by itself."""
    for key in list(access_tokens.keys()):
        if not key.startswith("grant:"):
            assert outcome(lambda k=key: userinfo(provider, k)) == "invalid_token"
    for key in list(refresh_tokens.keys()):
        assert outcome(lambda k=key: refresh(provider, k)) == "invalid_grant"
