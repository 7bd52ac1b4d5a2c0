"""The event loop keeps running while :class:`pyop.aio.AsyncProvider` serves flows.

A probe task wakes every 2 ms and records the largest gap between two of its wake-ups:
the longest time something else held the event loop. Full flows run meanwhile --
registration, authorization request, code, token (one ID token signature), UserInfo,
refresh -- several at once, with a user source that awaits 50 ms per lookup, on each
store of :data:`STORE_FACTORIES`. Only the CPU work between two I/O points runs on the
loop (parsing, one signature), so the largest gap stays far below a lookup.

The same probe around the synchronous :class:`~pyop.provider.Provider`, called from a
coroutine with a source that blocks 50 ms, sees the loop stall for a whole lookup: the
probe can fail.

The figures (largest gap, time of one signature) are printed and written to
``loop_lag.json`` in pytest's temporary directory, to be quoted in the docs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from support.loop_lag import LagProbe, lag_probe, smallest_gap

from pyop.aio import AsyncAuthorizationState, AsyncProvider
from pyop.aio.storage import AsyncStorageBase
from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, jws_sign
from pyop.keys import load_signing_key
from pyop.provider import Provider
from pyop.storage import MemoryStorage
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ISSUER = "https://op.example.com"
REDIRECT_URI = "https://rp.example.com/callback"
USERS = {"alice": {"name": "Alice Liddell", "email": "alice@example.com"}}
LOOKUP = 0.05  #: seconds per user lookup
TICK = 0.002  #: the probe's period
#: the largest gap allowed (CI machines are shared and noisy; a blocked lookup is 50 ms)
BOUND = 0.05
CONCURRENT_FLOWS = 4
ROUNDS = 3

#: An async store per collection name, for one test: ``factory(request, collection)``.
StoreFactory = Callable[[pytest.FixtureRequest, str], AsyncStorageBase]

#: The stores the probe runs on (name, factory); a backend that needs a server gets it
#: from its fixture through ``request.getfixturevalue``.
STORE_FACTORIES: list[tuple[str, StoreFactory]] = [
    ("memory", lambda request, collection: AsyncStorageBase.from_uri(
        "memory://", collection=collection)),
    ("redis", lambda request, collection: AsyncStorageBase.from_uri(
        request.getfixturevalue("redis_server").url, collection=collection)),
    ("postgresql", lambda request, collection: AsyncStorageBase.from_uri(
        request.getfixturevalue("postgres_url"), collection=collection, db_name="pyop")),
]

COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers",
               "clients")


async def probed(work: Callable[[], Awaitable[Any]]) -> LagProbe:
    """Run ``work`` while a probe ticks every :data:`TICK` seconds; the probe."""
    async with lag_probe(TICK) as probe:
        await work()
    return probe


class SlowDirectory:
    """An async user source: every lookup awaits :data:`LOOKUP` seconds."""

    def __init__(self) -> None:
        self.lookups = 0

    async def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                             userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        self.lookups += 1
        await asyncio.sleep(LOOKUP)
        return Userinfo(USERS).get_claims_for(user_id, requested_claims, userinfo)


class BlockingUsers(dict[str, Any]):
    """A synchronous user source whose lookup blocks :data:`LOOKUP` seconds."""

    def get(self, key: str, default: Any = None) -> Any:
        time.sleep(LOOKUP)
        return super().get(key, default)


def configuration() -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token",
        "userinfo_endpoint": ISSUER + "/userinfo",
        "registration_endpoint": ISSUER + "/registration",
        "jwks_uri": ISSUER + "/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
    }


@pytest.fixture(params=[pytest.param(entry, marks=pytest.mark.servers) if entry[0] != "memory"
                        else entry for entry in STORE_FACTORIES],
                ids=[name for name, _ in STORE_FACTORIES])
def store_factory(request: pytest.FixtureRequest) -> Callable[[str], AsyncStorageBase]:
    name, factory = request.param
    return lambda collection: factory(request, collection)


@pytest.fixture(scope="module")
def signing_key(signing_key_pem: str) -> SigningKey:
    return load_signing_key(signing_key_pem)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Collects the measured figures; printed and written to ``loop_lag.json``."""
    collected: dict[str, Any] = {}
    yield collected
    path = tmp_path_factory.getbasetemp() / "loop_lag.json"
    path.write_text(json.dumps(collected, indent=2), encoding="utf-8")
    print(f"\nloop lag figures ({path}):\n{json.dumps(collected, indent=2)}")


def one_signature_seconds(signing_key: SigningKey) -> float:
    """The median time of one ID-token-sized RS256 signature."""
    payload = {"iss": ISSUER, "sub": "a" * 64, "aud": "client", "exp": 2_000_000_000,
               "iat": 1_900_000_000, "auth_time": 1_900_000_000, "nonce": "n" * 22,
               "at_hash": "h" * 22}
    times = []
    for _ in range(20):
        start = time.perf_counter()
        jws_sign(payload, signing_key)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def register(provider: Any) -> tuple[str, str]:
    """Dynamic registration (OIDC Dynamic Registration 3); (client_id, client_secret)."""
    response = await provider.handle_client_registration_request(json.dumps(
        {"redirect_uris": [REDIRECT_URI], "response_types": ["code"],
         "grant_types": ["authorization_code", "refresh_token"]}))
    return response["client_id"], response["client_secret"]


async def code_flow(provider: Any) -> None:
    """Registration, authorization request, code, token, UserInfo, refresh."""
    client_id, secret = await register(provider)
    query = urlencode({"response_type": "code", "client_id": client_id,
                       "redirect_uri": REDIRECT_URI, "nonce": "n", "prompt": "consent",
                       "scope": "openid profile email offline_access"})
    authn_req = await provider.parse_authentication_request(query)
    redirect = (await provider.authorize(authn_req, "alice")).request(REDIRECT_URI)
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    basic = {"Authorization": "Basic " + base64.b64encode(
        f"{client_id}:{secret}".encode()).decode()}
    tokens = await provider.handle_token_request(urlencode(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}),
        basic)
    assert tokens["id_token"]
    userinfo = await provider.handle_userinfo_request(
        "", {"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo["name"] == "Alice Liddell"
    refreshed = await provider.handle_token_request(urlencode(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}), basic)
    assert refreshed["access_token"] != tokens["access_token"]


def async_provider(signing_key: SigningKey, store: Callable[[str], AsyncStorageBase],
                   directory: SlowDirectory) -> AsyncProvider:
    stores = {name: store(name) for name in COLLECTIONS}
    authz_state = AsyncAuthorizationState(
        HashBasedSubjectIdentifierFactory("a salt for the loop lag probe"),
        stores["authz_codes"], stores["access_tokens"], stores["refresh_tokens"],
        stores["subject_identifiers"], refresh_token_lifetime=3600)
    return AsyncProvider(signing_key, configuration(), authz_state, stores["clients"],
                         directory)


def test_async_provider_flows_leave_the_event_loop_serving(
        signing_key: SigningKey, store_factory: Callable[[str], AsyncStorageBase],
        request: pytest.FixtureRequest, figures: dict[str, Any]) -> None:
    flows = 0

    async def measure() -> float:
        nonlocal flows
        directory = SlowDirectory()
        provider = async_provider(signing_key, store_factory, directory)

        async def work() -> None:
            nonlocal flows
            for _ in range(ROUNDS):
                await asyncio.gather(*(code_flow(provider) for _ in range(CONCURRENT_FLOWS)))
                flows += CONCURRENT_FLOWS

        probe = await probed(work)
        assert directory.lookups >= ROUNDS * CONCURRENT_FLOWS  # the lookups were awaited
        return probe.max_gap

    largest = smallest_gap(lambda: asyncio.run(measure()), BOUND)
    signature = one_signature_seconds(signing_key)
    figures[request.node.callspec.id] = {
        "largest_gap_ms": [round(gap * 1000, 2) for gap in largest],
        "one_signature_ms": round(signature * 1000, 3),
        "flows": flows, "concurrent_flows": CONCURRENT_FLOWS, "lookup_ms": LOOKUP * 1000,
    }
    assert min(largest) < BOUND, figures


def test_the_probe_sees_the_sync_provider_block(signing_key: SigningKey,
                                                figures: dict[str, Any]) -> None:
    """The synchronous Provider called from a coroutine: its blocking lookup stops the
    loop for the whole lookup."""
    authz_state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                     MemoryStorage(), MemoryStorage(), MemoryStorage(),
                                     MemoryStorage(), refresh_token_lifetime=3600)
    provider = Provider(signing_key, configuration(), authz_state, MemoryStorage(),
                        Userinfo(BlockingUsers(USERS)))

    probe = asyncio.run(probed(lambda: code_flow(SyncFace(provider))))
    figures["sync_provider_called_on_the_loop"] = {
        "largest_gap_ms": round(probe.max_gap * 1000, 2)}
    assert probe.max_gap >= LOOKUP * 0.8


class SyncFace:
    """The synchronous provider's methods as coroutines that call it directly, on the
    loop (the mistake the probe must catch)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.provider, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call

