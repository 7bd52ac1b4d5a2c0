"""The bridge that runs the synchronous protocol code from coroutines (pyop/aio/_bridge.py),
and what AsyncProvider accepts as storage, claims source and options."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Mapping
from typing import Any, Optional

import pytest
from conftest import USER_ID, USERS, clients, configuration

from pyop.aio import (
    AsyncAuthorizationState,
    AsyncMemoryStorage,
    AsyncProvider,
    MissingAsyncContext,
    ThreadedUserinfo,
)
from pyop.aio._bridge import await_only, in_bridge, run_sync
from pyop.aio.userinfo import as_sync_userinfo
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidConfiguration
from pyop.storage import MemoryStorage, SQLWrapper, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

pytestmark = pytest.mark.anyio

REQUEST = contextvars.ContextVar("REQUEST", default="none")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


async def fail() -> None:
    await asyncio.sleep(0)
    raise KeyError("from the driver")


async def test_awaited_results_and_exceptions_reach_the_synchronous_code() -> None:
    def logic() -> tuple[int, str]:
        total = sum(await_only(double(i)) for i in range(3))
        try:
            await_only(fail())
        except KeyError as error:
            return total, str(error)
        return total, "not raised"

    assert await run_sync(logic) == (6, "'from the driver'")


async def test_an_exception_of_the_synchronous_code_reaches_the_caller() -> None:
    def logic() -> None:
        await_only(double(1))
        raise ValueError("protocol error")

    with pytest.raises(ValueError, match="protocol error"):
        await run_sync(logic)


async def test_calls_interleave_at_their_io_points() -> None:
    def logic() -> None:
        for _ in range(5):
            await_only(asyncio.sleep(0.02))

    started = time.monotonic()
    await asyncio.gather(*(run_sync(logic) for _ in range(50)))
    # 50 calls of 5 x 20 ms each: together in about 0.1 s, one after the other 5 s
    assert time.monotonic() - started < 1.5


async def test_the_caller_context_variables_are_seen() -> None:
    REQUEST.set("request-42")
    assert await run_sync(REQUEST.get) == "request-42"


async def test_cancellation_unwinds_the_synchronous_code() -> None:
    unwound = asyncio.Event()

    def logic() -> None:
        try:
            await_only(asyncio.sleep(10))
        finally:
            unwound.set()

    task = asyncio.ensure_future(run_sync(logic))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert unwound.is_set()


async def test_nested_bridges_and_in_bridge() -> None:
    def inner() -> bool:
        return in_bridge() and await_only(double(2)) == 4

    def outer() -> bool:
        return await_only(run_sync(inner))

    assert not in_bridge()
    assert await run_sync(outer) is True


def test_await_only_outside_the_bridge_is_a_clear_error() -> None:
    coroutine = double(1)
    with pytest.raises(MissingAsyncContext, match="pyop.aio"):
        await_only(coroutine)
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning


def test_an_async_store_used_by_a_synchronous_provider_is_refused_clearly() -> None:
    sync_view = AsyncMemoryStorage().as_sync()  # no I/O: usable anywhere
    sync_view.set("k", 1)
    assert sync_view.get("k") == 1

    class Remote(AsyncMemoryStorage):
        def as_sync(self) -> StorageBase:
            from pyop.aio.storage import BridgedStorage

            return BridgedStorage(self)

    with pytest.raises(MissingAsyncContext):
        Remote().as_sync().get("k")


# -- what AsyncProvider accepts -------------------------------------------------------------------

def build(jwkest_signing_key: Any, **kwargs: Any) -> AsyncProvider:
    options: dict[str, Any] = {
        "authz_state": AsyncAuthorizationState(HashBasedSubjectIdentifierFactory("salt")),
        "clients": clients(), "userinfo": Userinfo(dict(USERS))}
    options.update(kwargs)
    return AsyncProvider(jwkest_signing_key, configuration(), **options)


async def test_a_blocking_synchronous_store_is_refused(jwkest_signing_key: Any,
                                                       tmp_path: Any) -> None:
    sql = SQLWrapper(f"sqlite:///{tmp_path}/c.sqlite", "pyop", "clients")
    try:
        with pytest.raises(InvalidConfiguration, match="would block the event loop"):
            build(jwkest_signing_key, clients=sql)
        with pytest.raises(TypeError, match="would block the event loop"):
            AsyncAuthorizationState(HashBasedSubjectIdentifierFactory("salt"), sql)
    finally:
        sql.close()


async def test_in_memory_stores_are_accepted_as_they_are(jwkest_signing_key: Any) -> None:
    codes = MemoryStorage()
    authz = AsyncAuthorizationState(HashBasedSubjectIdentifierFactory("salt"), codes, {})
    assert authz.sync.authorization_codes is codes
    build(jwkest_signing_key, authz_state=authz, clients=MemoryStorage())


async def test_a_synchronous_authorization_state_or_an_executor_is_refused(
        jwkest_signing_key: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with pytest.raises(InvalidConfiguration, match="AsyncAuthorizationState"):
        build(jwkest_signing_key,
              authz_state=AuthorizationState(HashBasedSubjectIdentifierFactory("salt")))
    with ThreadPoolExecutor(1) as executor, pytest.raises(InvalidConfiguration,
                                                          match="executor"):
        build(jwkest_signing_key, executor=executor)


async def test_a_source_without_get_claims_for_is_refused(jwkest_signing_key: Any) -> None:
    with pytest.raises(InvalidConfiguration, match="get_claims_for"):
        build(jwkest_signing_key, userinfo={"alice": {}})


async def test_a_synchronous_claims_source_runs_in_worker_threads() -> None:
    threads: list[int] = []

    class Directory(Userinfo):
        def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                           userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
            threads.append(threading.get_ident())
            time.sleep(0.1)  # a blocking directory lookup
            return super().get_claims_for(user_id, requested_claims, userinfo)

    source = ThreadedUserinfo(Directory(dict(USERS)))
    started = time.monotonic()
    results = await asyncio.gather(*(source.get_claims_for(USER_ID, {"name": None})
                                     for _ in range(8)))
    # 8 x 100 ms one after the other would be 0.8 s; overlapping (the default executor has
    # at least 5 workers) 0.2 s. The bound leaves room for a noisy machine.
    assert time.monotonic() - started < 0.6
    assert results[0] == {"name": USERS[USER_ID]["name"]}
    assert threading.get_ident() not in threads
    assert await source.get_user(USER_ID) == USERS[USER_ID]
    assert await source.get_user("nobody") is None
    assert await source.has_user(USER_ID) and not await source.has_user("nobody")


class AsyncDirectory:
    """An AsyncUserinfo with the optional coroutines."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                             userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        self.calls.append("get_claims_for")
        await asyncio.sleep(0)
        record = userinfo if userinfo is not None else USERS.get(user_id, {})
        return {k: record[k] for k in requested_claims if k in record}

    async def get_user(self, user_id: str) -> Optional[Mapping[str, Any]]:
        self.calls.append("get_user")
        return USERS.get(user_id)

    async def has_user(self, user_id: str) -> bool:
        self.calls.append("has_user")
        return user_id in USERS


async def test_an_async_claims_source_is_awaited_by_the_protocol_code() -> None:
    directory = AsyncDirectory()
    bridged = as_sync_userinfo(directory)

    def lookups() -> tuple[Any, bool, bool, Any]:
        try:
            bridged["nobody"]
            missing: Any = "found"
        except KeyError:
            missing = None
        return (bridged.get_claims_for(USER_ID, {"email": None}), USER_ID in bridged,
                "nobody" in bridged, missing)

    assert await run_sync(lookups) == ({"email": USERS[USER_ID]["email"]}, True, False, None)
    assert directory.calls == ["get_user", "get_claims_for", "has_user", "has_user"]


async def test_a_source_without_has_user_knows_every_user() -> None:
    class ClaimsOnly:
        async def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                                 userinfo: Optional[Mapping[str, Any]] = None
                                 ) -> dict[str, Any]:
            return {}

    bridged = as_sync_userinfo(ClaimsOnly())
    assert getattr(type(bridged), "__contains__", None) is None
    with pytest.raises(KeyError):
        await run_sync(bridged.__getitem__, USER_ID)


async def test_the_refusal_names_the_async_backend_to_use(jwkest_signing_key: Any,
                                                         tmp_path: Any) -> None:
    sql = SQLWrapper(f"sqlite:///{tmp_path}/c.sqlite", "pyop", "clients")
    try:
        with pytest.raises(InvalidConfiguration, match="AsyncSQLStorage"):
            build(jwkest_signing_key, clients=sql)
    finally:
        sql.close()


async def test_the_clients_store_given_is_the_one_the_host_manages(
        jwkest_signing_key: Any) -> None:
    store = AsyncMemoryStorage()
    provider = build(jwkest_signing_key, clients=store)
    assert provider.clients is store
    await store.set("late-client", {"client_id": "late-client", "redirect_uris": [
        "https://rp.example.com/cb"], "response_types": ["code"]})
    assert (await provider.get_client("late-client"))["client_id"] == "late-client"
