"""Storage round trips of one code flow, per backend: counted, not timed.

The stores of the authorization state and the client database live on the backend, as in
a deployment with several worker processes. The storage primitive calls are counted with
the benchmark's counting proxies, and what reaches the server too (SQL statements, Redis
commands). The warm flow is the second one (the caches, when enabled, are filled by the
first). See docs/performance.rst.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

import pytest

from benchmarks.counting import count_server_calls, counting_stores
from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey
from pyop.provider import Provider
from pyop.storage import StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .provider_support import (
    CLIENT_ID,
    USERS,
    authorize,
    clients,
    configuration,
    exchange,
    namespaced,
    new_namespace,
    userinfo,
)

BACKENDS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.servers),
            pytest.param("redis", marks=pytest.mark.servers)]

#: Default configuration: clients get x4 (authorization request, authorize, token and
#: UserInfo requests: a deleted client's tokens stop working, RFC 7592 2.3), subject
#: identifiers: the user's pinned public sub and the sub's reverse record read (both
#: written in the first flow only), code set/get, code marked used and access token stored
#: (one call), access token get x3: the end-user's logout mark at the token endpoint and at
#: UserInfo (a logout revokes the grants issued before it) and the access token at UserInfo.
DEFAULT = {"clients": {"get": 4}, "subject_identifiers": {"get": 2},
           "authorization_codes": {"set": 1, "get": 1, "compare_and_set_then_set": 1},
           "access_tokens": {"get": 3}}
#: With client_cache_ttl, subject_identifier_cache_ttl and authorization_code_cache_size: no
#: client read, no subject write, no code read (the token endpoint of the process that
#: issued the code redeems it from its cache). The logout mark is still read twice (a
#: logout may have been made through another process).
CACHED = {"authorization_codes": {"set": 1, "compare_and_set_then_set": 1},
          "access_tokens": {"get": 3}}
#: With access_token_cache_ttl as well: no access token read at UserInfo, nor its logout
#: mark (a logout through this process is known in memory; one through another process is
#: seen here when the entry expires, as a revocation is); the mark read at the token
#: endpoint stays.
CACHED_ACCESS_TOKENS = {"authorization_codes": {"set": 1, "compare_and_set_then_set": 1},
                        "access_tokens": {"get": 1}}
#: Server round trips of compare_and_set_then_set: one on Redis and PostgreSQL (a script,
#: a statement), two on SQLite (compare-and-set, then set).
ONE_TRIP = ("redis", "postgresql")


@pytest.fixture(params=BACKENDS)
def uri(request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.param
    if name == "memory":
        yield "memory://"
    elif name == "sqlite":
        yield f"sqlite:///{request.getfixturevalue('tmp_path')}/pyop.db"
    elif name == "postgresql":
        yield request.getfixturevalue("postgres_url")
    else:
        yield request.getfixturevalue("redis_server").url


def build(uri: str, signing_key: SigningKey, caches: bool,
          access_token_cache_ttl: Optional[float] = None
          ) -> tuple[Provider, list[StorageBase]]:
    namespace = new_namespace()
    stores = [StorageBase.from_uri(uri, collection=namespaced(namespace, c), db_name=namespace)
              for c in ("authz_codes", "access_tokens", "refresh_tokens",
                        "subject_identifiers", "clients")]
    stores[4].update(clients())
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), *stores[:4],
                               subject_identifier_cache_ttl=60 if caches else None,
                               authorization_code_cache_size=16 if caches else None,
                               access_token_cache_ttl=access_token_cache_ttl)
    provider = Provider(signing_key, configuration(), authz, stores[4], Userinfo(dict(USERS)),
                        client_cache_ttl=30 if caches else None)
    return provider, stores


def flow(provider: Provider) -> None:
    tokens = exchange(provider, authorize(provider))
    assert userinfo(provider, tokens["access_token"])["sub"]


def counted_flow(provider: Provider) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    with counting_stores(provider) as proxies:
        real = {name: proxy.inner for name, proxy in proxies.items()}
        with count_server_calls(real) as server:
            flow(provider)
    per_store = {name: {op: n for op, n in proxy.counts.items() if n}
                 for name, proxy in proxies.items() if sum(proxy.counts.values())}
    return per_store, dict(server)


@pytest.mark.parametrize("caches", [False, True], ids=["default", "caches"])
def test_round_trips_per_code_flow(uri: str, rsa_private_key: Any, caches: bool) -> None:
    provider, stores = build(uri, SigningKey.from_key(rsa_private_key), caches)
    try:
        flow(provider)  # fills the caches, when enabled
        per_store, server = counted_flow(provider)
    finally:
        for store in stores:
            store.close()
    expected = CACHED if caches else DEFAULT
    assert per_store == expected
    calls = sum(sum(ops.values()) for ops in expected.values())
    assert calls == (5 if caches else 12)
    assert_server_trips(uri, server, calls)
    assert provider.get_client(CLIENT_ID) is not None


def test_access_token_cache_removes_the_userinfo_read(uri: str, rsa_private_key: Any) -> None:
    provider, stores = build(uri, SigningKey.from_key(rsa_private_key), True,
                             access_token_cache_ttl=60)
    try:
        flow(provider)
        per_store, server = counted_flow(provider)
    finally:
        for store in stores:
            store.close()
    assert per_store == CACHED_ACCESS_TOKENS
    assert_server_trips(uri, server, 3)


def assert_server_trips(uri: str, server: dict[str, int], calls: int) -> None:
    """What reached the server for ``calls`` storage calls, one of them
    compare_and_set_then_set."""
    trips = calls if uri.startswith(ONE_TRIP) else calls + 1
    if uri.startswith("redis"):
        # one command per call: GET, SET (PXAT), SET NX (add), EVALSHA (the script)
        assert sum(server.values()) == trips, server
        assert server["EVALSHA"] == 1, server
    elif not uri.startswith("memory"):
        assert server.get("statement") == trips, server
        assert not server.get("commit"), server
    else:
        assert server == {}
