"""Concurrency on one event loop: AsyncProvider requests racing as tasks.

The single use of codes (RFC 6749 4.1.2), of rotated refresh tokens (RFC 9700 4.14.2) and
of client assertion ``jti`` values (RFC 7523 3) holds when the racing redemptions are
tasks of one loop, interleaved at every storage round trip, on each async store.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER_ID, USERS, clients, configuration

from pyop.aio import AsyncAuthorizationState, AsyncProvider, AsyncStorageBase
from pyop.aio.storage import AsyncMemoryStorage
from pyop.exceptions import InvalidAuthorizationCode, InvalidClientAuthentication, OAuthError
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

N = 32

def _redis(request: pytest.FixtureRequest, collection: str) -> AsyncStorageBase:
    from pyop.aio.storage import AsyncRedisStorage

    return AsyncRedisStorage(request.getfixturevalue("redis_server").url, "pyop", collection)


def _postgresql(request: pytest.FixtureRequest, collection: str) -> AsyncStorageBase:
    from pyop.aio.storage import AsyncSQLStorage

    return AsyncSQLStorage(request.getfixturevalue("postgres_url"), "pyop", collection)


def _sqlite(request: pytest.FixtureRequest, collection: str) -> AsyncStorageBase:
    from pyop.aio.storage import AsyncSQLStorage

    path = request.getfixturevalue("tmp_path") / "races.sqlite"
    return AsyncSQLStorage(f"sqlite:///{path}", "pyop", collection)


def _mongomock(request: pytest.FixtureRequest, collection: str) -> AsyncStorageBase:
    from pyop.aio.storage import AsyncMongoStorage

    from .mongomock_async import AsyncMockClient

    client = AsyncMockClient(request.getfixturevalue("mongomock_client"))
    return AsyncMongoStorage("mongodb://localhost", "pyop", collection, client=client)


#: name -> factory(request, collection) of the async stores the races run on
STORES: dict[str, Callable[[pytest.FixtureRequest, str], AsyncStorageBase]] = {
    "memory": lambda request, collection: AsyncMemoryStorage(),
    "redis": _redis,
    "postgresql": _postgresql,
    "sqlite": _sqlite,
    "mongomock": _mongomock,
}


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.servers)
                        if name in ("redis", "postgresql") else name for name in sorted(STORES)])
async def store_factory(request: pytest.FixtureRequest
                        ) -> AsyncIterator[Callable[[str], AsyncStorageBase]]:
    make = STORES[request.param]
    prefix = "r" + uuid.uuid4().hex[:8]
    made: list[AsyncStorageBase] = []

    def factory(collection: str) -> AsyncStorageBase:
        made.append(make(request, prefix + collection))
        return made[-1]

    yield factory
    for store in made:
        await store.close()


@pytest.fixture
async def op(store_factory: Callable[[str], AsyncStorageBase],
             jwkest_signing_key: Any) -> AsyncIterator[AsyncProvider]:
    codes = store_factory("codes")
    authz = AsyncAuthorizationState(
        HashBasedSubjectIdentifierFactory("salt"), codes, store_factory("tokens"),
        store_factory("refresh"), store_factory("subjects"), refresh_token_lifetime=3600,
        refresh_token_threshold=36000)  # always rotate: the threshold exceeds the lifetime
    yield AsyncProvider(jwkest_signing_key, configuration(), authz, clients(),
                        Userinfo(dict(USERS)))


def basic_auth() -> dict[str, str]:
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return {"Authorization": "Basic " + credentials}


async def issue_code(op: AsyncProvider) -> str:
    request = await op.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid offline_access", "nonce": "n", "prompt": "consent"}))
    return str((await op.authorize(request, USER_ID))["code"])


async def redeem(op: AsyncProvider, code: str) -> Any:
    try:
        return await op.handle_token_request(urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}),
            basic_auth())
    except OAuthError as error:
        return error


@pytest.mark.anyio
async def test_rfc6749_4_1_2_n_concurrent_redemptions_of_one_code_one_winner(
        op: AsyncProvider) -> None:
    for _ in range(5):
        code = await issue_code(op)
        outcomes = await asyncio.gather(*(redeem(op, code) for _ in range(N)))
        winners = [o for o in outcomes if not isinstance(o, OAuthError)]
        assert len(winners) == 1
        assert all(isinstance(o, InvalidAuthorizationCode)
                   for o in outcomes if isinstance(o, OAuthError))
        # the replays revoked what the winner got (RFC 6749 4.1.2)
        with pytest.raises(OAuthError):
            await op.handle_userinfo_request(
                http_headers={"Authorization": "Bearer " + winners[0]["access_token"]})


@pytest.mark.anyio
async def test_rfc9700_4_14_2_n_concurrent_rotations_of_one_refresh_token_one_winner(
        op: AsyncProvider) -> None:
    tokens = await redeem(op, await issue_code(op))
    refresh_token = tokens["refresh_token"]

    async def rotate() -> Any:
        try:
            return await op.handle_token_request(urlencode({
                "grant_type": "refresh_token", "refresh_token": refresh_token}), basic_auth())
        except OAuthError as error:
            return error

    outcomes = await asyncio.gather(*(rotate() for _ in range(N)))
    assert len([o for o in outcomes if not isinstance(o, OAuthError)]) == 1


@pytest.mark.anyio
async def test_rfc7523_3_n_concurrent_uses_of_one_client_assertion_one_winner(
        store_factory: Callable[[str], AsyncStorageBase], jwkest_signing_key: Any) -> None:
    from oic.oic.message import Message

    config = configuration()
    client_db = clients()
    client_db[CLIENT_ID]["token_endpoint_auth_method"] = "client_secret_jwt"
    authz = AsyncAuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                    store_factory("codes"), store_factory("tokens"))
    op = AsyncProvider(jwkest_signing_key, config, authz, client_db, Userinfo(dict(USERS)),
                       client_assertion_replay_store=store_factory("jti"))
    from jwkest.jwk import SYMKey

    now = int(time.time())
    assertion = Message(iss=CLIENT_ID, sub=CLIENT_ID, aud=config["issuer"], jti="one-jti",
                        iat=now, exp=now + 60).to_jwt(
        [SYMKey(key=CLIENT_SECRET.encode(), alg="HS256")], "HS256")
    codes = [await issue_code(op) for _ in range(N)]

    async def redeem_with_assertion(code: str) -> Any:
        try:
            return await op.handle_token_request(urlencode({
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": REDIRECT_URI, "client_id": CLIENT_ID,
                "client_assertion_type":
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion}))
        except OAuthError as error:
            return error

    outcomes = await asyncio.gather(*(redeem_with_assertion(code) for code in codes))
    assert len([o for o in outcomes if not isinstance(o, OAuthError)]) == 1
    assert all(isinstance(o, InvalidClientAuthentication)
               for o in outcomes if isinstance(o, OAuthError))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class NonAtomicConsume(AsyncStorageBase):
    """A store whose ``consume`` is a read, a pause, then a delete: not atomic. Reached by
    the protocol code through :class:`~pyop.aio.storage.BridgedStorage`."""

    def __init__(self) -> None:
        self.inner = AsyncMemoryStorage()

    async def get(self, key: str, default: Any = None) -> Any:
        return await self.inner.get(key, default)

    async def set(self, key: str, value: Any, expires_at: Any = None) -> None:
        await self.inner.set(key, value, expires_at)

    async def delete(self, key: str) -> bool:
        return await self.inner.delete(key)

    async def consume(self, key: str) -> Any:
        value = await self.inner.get(key)
        await asyncio.sleep(0)  # another task runs here
        await self.inner.delete(key)
        return value

    async def compare_and_set(self, key: str, expected: Any, new: Any,
                              expires_at: Any = None) -> bool:
        current = await self.inner.get(key)
        await asyncio.sleep(0)
        if current != expected:
            return False
        await self.inner.set(key, new, expires_at)
        return True

    async def compare_and_set_then_set(self, key: str, expected: Any, new: Any,
                                       expires_at: Any, other: AsyncStorageBase, other_key: str,
                                       other_value: Any, other_expires_at: Any = None) -> bool:
        if not await self.compare_and_set(key, expected, new, expires_at):
            return False
        await other.set(other_key, other_value, other_expires_at)
        return True

    async def add(self, key: str, value: Any, expires_at: Any = None) -> bool:
        return await self.inner.add(key, value, expires_at)

    async def purge_expired(self) -> int:
        return await self.inner.purge_expired()

    async def close(self) -> None:
        await self.inner.close()

    def keys(self) -> AsyncIterator[str]:
        return self.inner.keys()


@pytest.mark.anyio
async def test_the_race_detects_a_store_that_is_not_atomic(jwkest_signing_key: Any) -> None:
    """The races above can fail: with a code store whose single use is not atomic, several
    of the concurrent redemptions win."""
    authz = AsyncAuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                    NonAtomicConsume(), AsyncMemoryStorage())
    op = AsyncProvider(jwkest_signing_key, configuration(), authz, clients(),
                       Userinfo(dict(USERS)))
    code = await issue_code(op)
    outcomes = await asyncio.gather(*(redeem(op, code) for _ in range(N)))
    assert len([o for o in outcomes if not isinstance(o, OAuthError)]) > 1
