"""The bridge that runs the synchronous protocol code from coroutines (pyop/aio/_bridge.py),
and what AsyncProvider accepts as storage, claims source and options."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import threading
import time
from collections.abc import Mapping
from typing import Any, Optional

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    USER_ID,
    USERS,
    clients,
    configuration,
)

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


# -- reuse of the bridge greenlets and the in-memory claims source ---------------------------------


async def test_successive_calls_reuse_one_greenlet_and_keep_nothing_of_a_call() -> None:
    import gc
    import weakref

    import greenlet  # type: ignore[import-untyped]

    class Payload:
        pass

    def which(payload: Payload) -> Any:
        REQUEST.set("changed inside")
        return greenlet.getcurrent()

    payload = Payload()
    first = await run_sync(which, payload)
    second = await run_sync(which, Payload())
    assert first is second and not first.dead  # idle between calls, reused
    assert REQUEST.get() == "none"  # each call ran in a copy of the caller's context
    seen = weakref.ref(payload)
    del payload
    gc.collect()
    assert seen() is None  # the idle greenlet holds nothing of the call it ran


async def test_concurrent_calls_get_their_own_greenlets_and_the_idle_ones_are_bounded() -> None:
    import greenlet

    from pyop.aio import _bridge

    def hold() -> Any:
        await_only(asyncio.sleep(0.01))
        return greenlet.getcurrent()

    used = await asyncio.gather(*(run_sync(hold) for _ in range(_bridge.POOL_SIZE + 8)))
    assert len({id(g) for g in used}) == _bridge.POOL_SIZE + 8
    idle = _bridge._idle.greenlets
    assert len(idle) == _bridge.POOL_SIZE and all(not g.dead for g in idle)
    assert sum(g.dead for g in used) == 8  # the ones beyond the bound ended


async def test_a_failed_or_cancelled_call_does_not_spoil_the_next() -> None:
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await run_sync(boom)

    def slow() -> None:
        await_only(asyncio.sleep(10))

    task = asyncio.ensure_future(run_sync(slow))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await run_sync(lambda: await_only(double(4))) == 8


def test_calls_from_other_threads_and_from_a_greenlet_are_served() -> None:
    import greenlet

    def logic(x: int) -> int:
        return await_only(double(x)) + 1

    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(asyncio.run(run_sync(logic, i))))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [1, 3, 5, 7]
    # an event loop run inside a greenlet (not the thread's main one): a greenlet per call
    assert greenlet.greenlet(lambda: asyncio.run(run_sync(logic, 5))).switch() == 11


async def _code_flow_hops(provider: AsyncProvider) -> tuple[dict[str, Any], list[Any]]:
    """A code flow on ``provider`` (OIDC Core 3.1): the UserInfo claims, and the functions
    the event loop ran in its executor meanwhile."""
    from urllib.parse import urlencode

    loop = asyncio.get_running_loop()
    hops: list[Any] = []
    real = loop.run_in_executor

    def counted(executor: Any, fn: Any, *args: Any) -> Any:
        hops.append(fn)
        return real(executor, fn, *args)

    loop.run_in_executor = counted  # type: ignore[method-assign]
    try:
        request = await provider.parse_authentication_request(urlencode(
            {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
             "scope": "openid profile email", "nonce": "n"}))
        code = (await provider.authorize(request, USER_ID))["code"]
        tokens = await provider.handle_token_request(
            urlencode({"grant_type": "authorization_code", "code": code,
                       "redirect_uri": REDIRECT_URI}),
            {"Authorization": "Basic " + base64.b64encode(
                f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()})
        claims = await provider.handle_userinfo_request(
            "", {"Authorization": "Bearer " + tokens["access_token"]})
    finally:
        del loop.run_in_executor
    return claims.to_dict(), hops


async def test_a_dict_backed_userinfo_is_called_directly_and_others_in_threads(
        jwkest_signing_key: Any) -> None:
    plain = Userinfo(dict(USERS))
    assert as_sync_userinfo(plain) is plain  # dictionary reads: no thread, no bridge

    class Directory(Userinfo):
        pass

    for source in (Directory(dict(USERS)), Userinfo(MemoryStorage()),
                   Userinfo(type("Users", (dict,), {})(USERS))):
        bridged = as_sync_userinfo(source)
        assert bridged is not source and isinstance(bridged.source, ThreadedUserinfo)

    claims, hops = await _code_flow_hops(build(jwkest_signing_key, userinfo=plain))
    assert claims["email"] == USERS[USER_ID]["email"] and hops == []
    # a subclass may block: its lookups run in worker threads, with the same claims
    threaded, hops = await _code_flow_hops(build(jwkest_signing_key,
                                                 userinfo=Directory(dict(USERS))))
    assert threaded == claims and len(hops) >= 1
