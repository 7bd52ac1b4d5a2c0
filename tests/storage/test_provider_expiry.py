"""Expiry of codes and tokens issued through AuthorizationState, per backend.

Memory and SQL decide expiry with the injected clock: codes and tokens become unreadable at
their own expiry and a purge leaves no expired record behind. Redis and MongoDB expire
records themselves: the expiry they record must be the token's own (the ``exp`` of the
record), not the time of the last write plus a fixed lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAccessToken, InvalidAuthorizationCode, InvalidRefreshToken
from pyop.storage import MemoryStorage, MongoWrapper, RedisWrapper, SQLWrapper, StorageBase
from pyop.storage.mongo import _to_datetime
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

from .conftest import FakeClock
from .provider_support import CLIENT_ID, REDIRECT_URI, USER_ID, namespaced, new_namespace

CODE_LIFETIME, ACCESS_LIFETIME, REFRESH_LIFETIME = 600, 3600, 7200
#: The stores' default ttl: a backend using "last write + ttl" would show it.
STORE_TTL = 10
AUTH_REQ = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": "openid",
            "response_type": "code"}
COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers")


def _authz(stores: list[StorageBase], clock: Callable[[], float]) -> AuthorizationState:
    return AuthorizationState(
        HashBasedSubjectIdentifierFactory("salt"), *stores, clock=clock,
        authorization_code_lifetime=CODE_LIFETIME, access_token_lifetime=ACCESS_LIFETIME,
        refresh_token_lifetime=REFRESH_LIFETIME)


def _make_stores(uri: str, **kwargs: Any) -> list[StorageBase]:
    namespace = new_namespace()
    return [StorageBase.from_uri(uri, collection=namespaced(namespace, c), db_name=namespace,
                                 ttl=None if c == "subject_identifiers" else STORE_TTL, **kwargs)
            for c in COLLECTIONS]


def _issue(authz: AuthorizationState) -> tuple[str, str, str, str]:
    """An unused code, and a redeemed code with its access and refresh tokens."""
    sub = authz.get_subject_identifier("public", USER_ID)
    unused = authz.create_authorization_code(AUTH_REQ, sub, USER_ID, ["openid"])
    used = authz.create_authorization_code(AUTH_REQ, sub, USER_ID, ["openid"])
    access, refresh = authz.redeem_authorization_code(used, authz.get_authorization_code(used))
    assert refresh is not None
    return unused, used, access.value, refresh


# -- memory and SQL: the injected clock decides -------------------------------------------


def _physical(store: StorageBase) -> list[tuple[str, Any]]:
    """Every record physically kept, expired ones included: (key, expires_at)."""
    if isinstance(store, MemoryStorage):
        return [(k, rec[1] if isinstance(rec, tuple) else None)
                for k, rec in store._data.items()]
    assert isinstance(store, SQLWrapper)
    import sqlalchemy as sa

    t = store._table
    with store._engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.key, t.c.expires_at).where(
            t.c.collection == store._namespace)).all()
    return [(row[0], row[1]) for row in rows]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def clocked_stores(request: pytest.FixtureRequest) -> Iterator[tuple[list[StorageBase],
                                                                      FakeClock]]:
    clock = FakeClock(1_800_000_000)
    if request.param == "memory":
        uri = "memory://"
    elif request.param == "sqlite":
        uri = f"sqlite:///{request.getfixturevalue('tmp_path')}/pyop.db"
    else:
        uri = request.getfixturevalue("postgres_url")
    stores = _make_stores(uri, clock=clock)
    try:
        yield stores, clock
    finally:
        for store in stores:
            store.close()


def _assert_purge_leaves_nothing_expired(stores: list[StorageBase], now: float) -> None:
    for store in stores:
        store.purge_expired()
        expired = [key for key, expiry in _physical(store) if expiry is not None
                   and expiry <= now]
        assert expired == [], store


def test_codes_and_tokens_expire_at_their_own_expiry(
        clocked_stores: tuple[list[StorageBase], FakeClock]) -> None:
    stores, clock = clocked_stores
    codes, access_tokens, refresh_tokens, subjects = stores
    authz = _authz(stores, clock)
    t0 = clock()
    unused, used, access, refresh = _issue(authz)
    sub = authz.get_subject_identifier("public", USER_ID)

    clock.now = t0 + CODE_LIFETIME - 1
    assert authz.get_authorization_code(unused)["exp"] == t0 + CODE_LIFETIME
    clock.now = t0 + CODE_LIFETIME
    with pytest.raises(InvalidAuthorizationCode):
        authz.get_authorization_code(unused)
    assert codes.get(unused) is None  # the store itself, not only AuthorizationState
    assert authz.get_access_token(access)["exp"] == t0 + ACCESS_LIFETIME
    _assert_purge_leaves_nothing_expired(stores, clock())
    assert unused not in [k for k, _ in _physical(codes)]
    # the used code's record outlives the code, so that a late replay still revokes
    assert [k for k, _ in _physical(codes)] == [used]

    clock.now = t0 + ACCESS_LIFETIME - 1
    authz.get_access_token(access)
    clock.now = t0 + ACCESS_LIFETIME
    with pytest.raises(InvalidAccessToken):
        authz.get_access_token(access)
    assert access_tokens.get(access) is None and codes.get(used) is None
    _assert_purge_leaves_nothing_expired(stores, clock())
    assert _physical(codes) == [] and _physical(access_tokens) == []

    clock.now = t0 + REFRESH_LIFETIME - 1
    new_access, _, _ = authz.use_refresh_token(refresh, CLIENT_ID)
    clock.now = t0 + REFRESH_LIFETIME
    with pytest.raises(InvalidRefreshToken):
        authz.use_refresh_token(refresh, CLIENT_ID)
    assert refresh_tokens.get(refresh) is None
    authz.get_access_token(new_access.value)  # lives its own lifetime
    clock.now = t0 + REFRESH_LIFETIME - 1 + ACCESS_LIFETIME
    with pytest.raises(InvalidAccessToken):
        authz.get_access_token(new_access.value)
    _assert_purge_leaves_nothing_expired(stores, clock())
    assert [_physical(s) for s in stores[:3]] == [[], [], []]
    # subject identifiers do not expire
    # the user's pinned public sub and the sub's reverse record
    assert sorted(k for k, _ in _physical(subjects)) == sorted([USER_ID, sub])
    assert authz.get_user_id_for_subject_identifier(sub) == USER_ID


# -- Redis and MongoDB: the engine expires records at the expiry recorded ------------------


def _recorded_expiries(store: StorageBase) -> list[tuple[Any, Any, Any]]:
    """(value, recorded expiry, expected expiry) of every record; ms (Redis) or datetime."""
    out: list[tuple[Any, Any, Any]] = []
    if isinstance(store, RedisWrapper):
        for key in store.keys():
            name = store._key(key)
            value = store.get(key)
            try:
                recorded = int(store._client.pexpiretime(name))  # Redis 7+
                expected = None if "exp" not in value else value["exp"] * 1000
            except Exception:  # Redis 6.2: no PEXPIRETIME; PTTL from now, to 0.25 s
                before = time.time()
                ttl = int(store._client.pttl(name))
                recorded = -1 if ttl < 0 else round((before * 1000 + ttl) / 250)
                expected = None if "exp" not in value else round(value["exp"] * 4)
            out.append((value, recorded, expected if expected is not None else -1))
        return out
    assert isinstance(store, MongoWrapper)
    for doc in store._coll.find({}):
        value = doc["value"]
        expected = _to_datetime(value["exp"]) if "exp" in value else None
        out.append((value, doc["expires_at"], expected))
    return out


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.servers), "mongomock"])
def engine_stores(request: pytest.FixtureRequest) -> Iterator[list[StorageBase]]:
    if request.param == "redis":
        stores = _make_stores(request.getfixturevalue("redis_server").url)
    else:
        stores = _make_stores("mongodb://localhost",
                              client=request.getfixturevalue("mongomock_client"))
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


def test_engine_expiry_is_the_tokens_own(engine_stores: list[StorageBase]) -> None:
    # the AuthorizationState's clock: the real time (Redis compares with it), then later
    clock = FakeClock(float(int(time.time())))
    authz = _authz(engine_stores, clock)
    _, _, _, refresh = _issue(authz)
    clock.advance(100)
    # a refresh later: the refresh token's record is rewritten (the new access token is
    # recorded in it) and must keep its own expiry, not get "now + a lifetime"
    new_access, _, _ = authz.use_refresh_token(refresh, CLIENT_ID)
    clock.advance(100)
    authz.create_authorization_code(AUTH_REQ, "sub", USER_ID, ["openid"])

    codes, access_tokens, refresh_tokens, subjects = engine_stores
    checked = 0
    for store in (codes, access_tokens, refresh_tokens):
        for value, recorded, expected in _recorded_expiries(store):
            assert recorded == expected, (store, value)
            checked += 1
    assert checked == 6  # 3 codes (one used), 2 access tokens, 1 refresh token
    by_kind = {v["token_type"]: v["exp"] for v, _, _ in _recorded_expiries(refresh_tokens)}
    assert by_kind == {"refresh_token": clock() - 200 + REFRESH_LIFETIME}
    assert authz.get_access_token(new_access.value)["exp"] == (
        clock() - 100 + ACCESS_LIFETIME)
    # subject identifiers never expire
    assert [r for _, r, _ in _recorded_expiries(subjects)] in ([-1, -1], [None, None])
