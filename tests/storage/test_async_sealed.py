"""Sealed (stateless) storage for pyop.aio: AsyncStatelessWrapper.

The sealed value is the token itself (AES-256-GCM, see pyop/storage/stateless.py); single
use and revocation are kept in the replay cache, an async store shared by the workers
(RFC 6749 4.1.2 for codes).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER_ID, USERS, clients, configuration

from pyop.aio import AsyncAuthorizationState, AsyncProvider, AsyncStatelessWrapper
from pyop.aio.storage import AsyncMemoryStorage, AsyncRedisStorage, AsyncStorageBase
from pyop.exceptions import InvalidAuthorizationCode, OAuthError
from pyop.storage import StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

SECRET = "a sealing secret of 32 characters!"


def test_from_uri_gives_the_sealed_store_over_the_sync_one() -> None:
    store = AsyncStorageBase.from_uri(f"stateless://user:{SECRET}@localhost", "authz_codes")
    assert isinstance(store, AsyncStatelessWrapper)
    assert isinstance(store.as_sync(), StatelessWrapper)
    assert store._direct  # an in-process replay cache: no greenlet needed


def test_sealed_values_round_trip_and_are_single_use() -> None:
    async def scenario() -> None:
        store = AsyncStatelessWrapper("authz_codes", SECRET)
        token = store.as_sync().seal({"user": "alice"}, expires_at=time.time() + 60)
        assert await store.get(token) == {"user": "alice"}
        assert await store.consume(token) == {"user": "alice"}
        assert await store.consume(token) is None  # the replay cache remembers it

    asyncio.run(scenario())


def basic_auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(
        f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()}


async def sealed_code_flow(replay_cache: AsyncStorageBase, signing_key: Any) -> None:
    codes = AsyncStatelessWrapper("authz_codes", SECRET, replay_cache=replay_cache)
    tokens = AsyncStatelessWrapper("access_tokens", SECRET, replay_cache=replay_cache)
    authz = AsyncAuthorizationState(HashBasedSubjectIdentifierFactory("salt"), codes, tokens)
    op = AsyncProvider(signing_key, configuration(), authz, clients(), Userinfo(dict(USERS)))
    async def issue_code() -> str:
        request = await op.parse_authentication_request(urlencode({
            "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid email", "nonce": "n"}))
        return str((await op.authorize(request, USER_ID))["code"])

    async def redeem(code: str) -> Any:
        try:
            return await op.handle_token_request(urlencode({
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": REDIRECT_URI}), basic_auth())
        except OAuthError as error:
            return error

    async def userinfo(access_token: str) -> Any:
        try:
            return await op.handle_userinfo_request(
                http_headers={"Authorization": "Bearer " + access_token})
        except OAuthError as error:
            return error

    tokens_issued = await redeem(await issue_code())
    claims = await userinfo(tokens_issued["access_token"])
    assert claims["email"] == USERS[USER_ID]["email"]  # carried sealed in the token

    code = await issue_code()
    outcomes = await asyncio.gather(*(redeem(code) for _ in range(16)))
    winners = [o for o in outcomes if not isinstance(o, OAuthError)]
    assert len(winners) == 1
    assert all(isinstance(o, InvalidAuthorizationCode) for o in outcomes if o not in winners)
    # the replays revoked the grant of the code (RFC 6749 4.1.2), sealed tokens too
    assert isinstance(await userinfo(winners[0]["access_token"]), OAuthError)


def test_rfc6749_4_1_2_sealed_codes_single_use_with_an_in_process_replay_cache(
        jwkest_signing_key: Any) -> None:
    asyncio.run(sealed_code_flow(AsyncMemoryStorage(), jwkest_signing_key))


@pytest.mark.servers
def test_rfc6749_4_1_2_sealed_codes_single_use_with_a_redis_replay_cache(
        jwkest_signing_key: Any, redis_server: Any) -> None:
    async def scenario() -> None:
        cache = AsyncRedisStorage(redis_server.url, "pyop", "sealed_replay")
        assert not AsyncStatelessWrapper("c", SECRET, replay_cache=cache)._direct
        try:
            await sealed_code_flow(cache, jwkest_signing_key)
        finally:
            await cache.close()

    asyncio.run(scenario())
