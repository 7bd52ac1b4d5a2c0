"""Async stores, AsyncProvider and the async fetcher across event loops.

An application builds its provider once (at import time) while it runs several loops: each
``with TestClient(app)`` block, each test of pytest-asyncio, each ``uvicorn --reload``, or
threads running loops of their own. The async stores resolve their driver client on the
running loop (a client per loop), release the clients of closed loops, keep single use
atomic across loops, and refuse a client passed in by the application on a loop it cannot
serve with :class:`pyop.aio.EventLoopMismatch` (never the driver's raw error, never a hang).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import http.server
import json
import threading
import uuid
import weakref
from collections.abc import Awaitable, Iterator
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER_ID, USERS, clients, configuration
from support.serving import serving

from pyop.aio import (
    AsyncAuthorizationState,
    AsyncBackChannelSender,
    AsyncGuardedFetcher,
    AsyncProvider,
    EventLoopMismatch,
)
from pyop.aio.storage import (
    AsyncMongoStorage,
    AsyncRedisStorage,
    AsyncSQLStorage,
    AsyncStorageBase,
)
from pyop.exceptions import OAuthError
from pyop.logout_notifications import BackChannelLogoutRequest
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .mongomock_async import AsyncMockClient

T = TypeVar("T")

#: async backends: name -> is it server-backed
BACKENDS = {"redis": True, "sqlite": False, "sqlite-memory": False, "postgresql": True,
            "postgresql-asyncpg": True, "mongomock": False}


def params(names: list[str]) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.servers) if BACKENDS[n] else n for n in names]


class Maker:
    """Makes the stores of one backend (a fresh namespace per test); counts the driver
    clients (engines) the stores made, through weak references."""

    def __init__(self, name: str, request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.name = name
        self.namespace = "l" + uuid.uuid4().hex[:10]
        self.made: list[AsyncStorageBase] = []
        self.clients: list[weakref.ref[Any]] = []
        if name == "redis":
            self.url = request.getfixturevalue("redis_server").url
        elif name == "sqlite":
            self.url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'loops.sqlite'}"
        elif name == "sqlite-memory":
            self.url = "sqlite://"
        elif name.startswith("postgresql"):
            self.url = request.getfixturevalue("postgres_url")
            if name.endswith("asyncpg"):
                pytest.importorskip("asyncpg")
                self.url = "postgresql+asyncpg://" + self.url.partition("://")[2]
        elif name == "mongomock":
            # the face of PyMongo's AsyncMongoClient over mongomock: the stores make their
            # clients themselves (one per loop), as they make AsyncMongoClient instances
            import pymongo

            shared = request.getfixturevalue("mongomock_client")
            self.url = "mongodb://localhost"

            def client_class(uri: str, **options: Any) -> AsyncMockClient:
                client = AsyncMockClient(shared)
                self.clients.append(weakref.ref(client))
                return client

            monkeypatch.setattr(pymongo, "AsyncMongoClient", client_class)
        self.memory_engine: Optional[AsyncSQLStorage] = None

    def __call__(self, collection: str) -> AsyncStorageBase:
        name = f"{self.namespace}_{collection}"
        store: AsyncStorageBase
        if self.name == "redis":
            store = AsyncRedisStorage(self.url, None, name)
        elif self.name == "mongomock":
            store = AsyncMongoStorage(self.url, "pyop", name)
        elif self.name == "sqlite-memory" and self.made:
            # one in-memory database: the stores of a provider share the first one's engine
            first = self.made[0]
            assert isinstance(first, AsyncSQLStorage)
            store = AsyncSQLStorage(self.url, "pyop", name, engine=first.engine)
        else:
            store = AsyncSQLStorage(self.url, "pyop", name)
        self.made.append(store)
        return store

    def note_clients(self) -> None:
        """Note (weakly) the driver clients of the running loop (call on each loop)."""
        for store in self.made:
            if isinstance(store, AsyncRedisStorage):
                self.clients.append(weakref.ref(store.client))
            elif isinstance(store, AsyncSQLStorage):
                self.clients.append(weakref.ref(store.engine))

    def live_clients(self) -> int:
        gc.collect()
        alive = {id(c) for c in (ref() for ref in self.clients) if c is not None}
        return len(alive)

    def close_all(self) -> None:
        async def close() -> None:
            for store in self.made:
                await store.close()
        asyncio.run(close())


@pytest.fixture
def maker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Maker]:
    made = Maker(request.param, request, monkeypatch)
    try:
        yield made
    finally:
        made.close_all()


def run(coroutine_function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``asyncio.run`` of ``coroutine_function(*args)``: a new event loop per call."""
    async def main() -> T:
        return await coroutine_function(*args)
    return asyncio.run(main())


# -- one store, three loops ---------------------------------------------------------------------


@pytest.mark.parametrize("maker", params(list(BACKENDS)), indirect=True)
def test_one_store_serves_three_successive_event_loops(maker: Maker) -> None:
    store = maker("codes")  # made outside any loop, as at an application's import time
    other = maker("tokens")

    async def use(i: int) -> list[Any]:
        await store.set(f"k{i}", {"loop": i})
        seen = [await store.get(f"k{j}") for j in range(i + 1)]  # earlier loops' records
        assert await store.add(f"once{i}", 1) is True
        assert await store.add(f"once{i}", 2) is False
        await store.set(f"code{i}", "fresh")
        assert await store.compare_and_set(f"code{i}", "fresh", "used") is True
        assert await store.compare_and_set_then_set(
            f"k{i}", {"loop": i}, {"loop": i, "used": True}, None, other, f"at{i}", i) is True
        assert await other.get(f"at{i}") == i
        assert await store.consume(f"once{i}") == 1
        assert await store.consume(f"once{i}") is None
        keys = sorted([key async for key in store.keys()])
        assert f"code{i}" in keys
        maker.note_clients()
        return seen

    for i in range(3):
        seen = run(use, i)
        assert seen == [{"loop": j, "used": True} for j in range(i)] + [{"loop": i}]


# -- one AsyncProvider, a full code flow per loop -------------------------------------------------


def async_provider(make: Callable[[str], AsyncStorageBase], signing_key: Any) -> AsyncProvider:
    authz = AsyncAuthorizationState(
        HashBasedSubjectIdentifierFactory("salt"), make("codes"), make("tokens"),
        make("refresh"), make("subjects"), refresh_token_lifetime=3600,
        refresh_token_threshold=36000)
    client_store = make("clients")
    provider = AsyncProvider(signing_key, configuration(), authz, client_store,
                             Userinfo(dict(USERS)))
    return provider


def basic_auth() -> dict[str, str]:
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return {"Authorization": "Basic " + credentials}


async def code_flow(op: AsyncProvider) -> tuple[str, dict[str, Any]]:
    """Authorization, token, UserInfo and refresh requests; the subject and the claims."""
    request = await op.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid profile offline_access", "nonce": "n", "prompt": "consent"}))
    code = str((await op.authorize(request, USER_ID))["code"])
    token = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    tokens = await op.handle_token_request(urlencode(token), basic_auth())
    claims = await op.handle_userinfo_request(
        http_headers={"Authorization": "Bearer " + tokens["access_token"]})
    refreshed = await op.handle_token_request(urlencode({
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
        basic_auth())
    assert refreshed["access_token"] != tokens["access_token"]
    with pytest.raises(OAuthError):  # single use (RFC 6749 4.1.2)
        await op.handle_token_request(urlencode(token), basic_auth())
    return str(claims["sub"]), dict(claims.to_dict())


@pytest.mark.parametrize("maker", params(list(BACKENDS)), indirect=True)
def test_one_provider_serves_a_code_flow_on_each_of_three_loops(maker: Maker,
                                                                jwkest_signing_key: Any) -> None:
    op = async_provider(maker, jwkest_signing_key)

    async def register() -> None:
        for client_id, metadata in clients().items():
            await op.clients.set(client_id, metadata)

    run(register)
    subjects = set()
    for _ in range(3):
        sub, claims = run(code_flow, op)
        assert claims["name"] == USERS[USER_ID]["name"]
        subjects.add(sub)
    assert len(subjects) == 1  # one subject identifier, stored on the first loop

    async def issue_code() -> str:
        request = await op.parse_authentication_request(urlencode({
            "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid", "nonce": "n"}))
        return str((await op.authorize(request, USER_ID))["code"])

    async def redeem(code: str) -> Any:
        return await op.handle_token_request(urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}),
            basic_auth())

    code = run(issue_code)  # issued on one loop, redeemed on another
    assert "access_token" in run(redeem, code)


# -- clients of closed loops are released --------------------------------------------------------


@pytest.mark.parametrize("shutdown", [True, False], ids=["asyncio.run", "loop.close"])
@pytest.mark.parametrize("maker", params(["redis", "sqlite", "postgresql", "mongomock"]),
                         indirect=True)
def test_clients_of_closed_loops_are_released(maker: Maker, shutdown: bool) -> None:
    """``asyncio.run`` shuts the loop down (its clients are closed there); a loop merely
    closed has its clients dropped when the next loop makes its own. Either way the live
    clients stay bounded however many loops come and go."""
    store = maker("codes")
    loops = 8

    async def use(i: int) -> None:
        await store.set("k", i)
        assert await store.get("k") == i
        maker.note_clients()

    for i in range(loops):
        if shutdown:
            run(use, i)
        else:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(use(i))
            finally:
                loop.close()
    assert len({id(ref) for ref in maker.clients}) >= loops  # a client per loop was made
    # asyncio.run: every loop's client was closed at its shutdown; loop.close: the last
    # loop's client waits for the next loop (or close()) to be dropped
    assert maker.live_clients() <= (0 if shutdown else 1)


def test_redis_clients_are_closed_at_loop_shutdown(redis_server: Any) -> None:
    store = AsyncRedisStorage(redis_server.url, None, "l" + uuid.uuid4().hex[:10])

    async def use() -> Any:
        await store.set("k", 1)
        client = store.client
        assert any(c.is_connected for c in client.connection_pool._available_connections)
        return client

    clients_seen = [run(use) for _ in range(3)]
    assert len({id(c) for c in clients_seen}) == 3
    for client in clients_seen:  # closed on their own loop as it shut down
        assert not any(c.is_connected for c in client.connection_pool._available_connections)
    run(store.close)


# -- two loops at once, in two threads ------------------------------------------------------------


def in_threads(count: int, body: Callable[[int], Awaitable[T]]) -> list[T]:
    """``asyncio.run(body(i))`` in ``count`` threads at once, each its own event loop."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = run(body, i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a loop hung"
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("maker", params(["redis", "sqlite", "postgresql", "postgresql-asyncpg",
                                          "mongomock"]), indirect=True)
def test_two_loops_in_two_threads_share_one_store_single_use_holds(maker: Maker) -> None:
    store = maker("codes")
    keys = [f"code{i}" for i in range(20)]
    run(lambda: asyncio.gather(*(store.set(key, {"code": key}) for key in keys)))
    start = threading.Barrier(2)

    async def consume_all(thread: int) -> list[Optional[str]]:
        await asyncio.get_running_loop().run_in_executor(None, start.wait)

        async def attempt(key: str) -> Optional[str]:
            value = await store.consume(key)
            return None if value is None else key

        # each loop tries every code 4 times at once
        outcomes = await asyncio.gather(*(attempt(key) for key in keys for _ in range(4)))
        await store.set(f"thread{thread}", thread)  # and writes of its own
        return [o for o in outcomes if o is not None]

    won = in_threads(2, consume_all)
    assert sorted(won[0] + won[1]) == sorted(keys)  # each code redeemed exactly once

    async def check() -> None:
        assert await store.get("thread0") == 0 and await store.get("thread1") == 1
    run(check)


def test_in_memory_sqlite_serves_one_loop_at_a_time() -> None:
    """In-memory SQLite is one connection (the database itself): it moves to a new loop
    once the previous one is closed, and refuses a second loop meanwhile."""
    store = AsyncSQLStorage("sqlite://", None, "codes")
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(store.set("k", "v"))

        async def use() -> Any:
            return await store.get("k")

        with pytest.raises(EventLoopMismatch, match="in-memory SQLite"):
            run(use)
    finally:
        first.close()
    assert run(use) == "v"  # the first loop is closed: the database moved, records kept
    run(store.close)


# -- clients passed in by the application ---------------------------------------------------------


@pytest.mark.servers
def test_a_redis_client_passed_in_serves_the_loop_that_first_used_it(redis_server: Any) -> None:
    import redis.asyncio

    given = redis.asyncio.Redis.from_url(redis_server.url)
    store = AsyncRedisStorage(redis_server.url, None, "l" + uuid.uuid4().hex[:10], client=given)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(store.set("k", 1))

        async def use() -> Any:
            return await store.get("k")

        with pytest.raises(EventLoopMismatch, match="client=.*still open"):
            run(use)
        assert first.run_until_complete(use()) == 1
        first.run_until_complete(given.aclose())
    finally:
        first.close()
    with pytest.raises(EventLoopMismatch, match="client=.*closed; it cannot be moved"):
        run(use)


def test_a_mongo_client_passed_in_serves_the_loop_that_first_used_it(
        mongomock_client: Any) -> None:
    store = AsyncMongoStorage("mongodb://localhost", "pyop", "l" + uuid.uuid4().hex[:10],
                              client=AsyncMockClient(mongomock_client))
    run(store.set, "k", 1)
    with pytest.raises(EventLoopMismatch, match="AsyncMongoClient passed"):
        run(store.get, "k")


def test_an_engine_passed_in_moves_to_a_new_loop_once_the_first_is_closed(tmp_path: Any) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    url = f"sqlite+aiosqlite:///{tmp_path / 'given.sqlite'}"
    engine = create_async_engine(url)
    store = AsyncSQLStorage(url, "pyop", "codes", engine=engine)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(store.set("k", 1))
        with pytest.raises(EventLoopMismatch, match="engine=.*still open"):
            run(store.get, "k")
        first.run_until_complete(engine.dispose())
    finally:
        first.close()
    sibling = AsyncSQLStorage(url, "pyop", "tokens", engine=engine)

    async def both() -> list[int]:
        pools = []
        for each in (store, sibling, store):
            await each.get("k")
            pools.append(id(engine.sync_engine.pool))
        return pools

    seen = set()
    for _ in range(2):  # its pool replaced for each new loop (SQLAlchemy's rule), once
        assert run(store.get, "k") == 1
        pools = run(both)
        assert len(set(pools)) == 1  # the stores of one engine move together
        seen.add(pools[0])
    assert len(seen) == 2
    run(store.close)
    run(sibling.close)
    run(engine.dispose)

    # an engine without a pool serves any loop, even two at once
    unpooled = create_async_engine(url, poolclass=NullPool)
    shared = AsyncSQLStorage(url, "pyop", "codes", engine=unpooled)

    async def read(thread: int) -> Any:
        return [await shared.get("k") for _ in range(5)]

    assert in_threads(2, read) == [[1] * 5, [1] * 5]
    run(unpooled.dispose)


# -- close() --------------------------------------------------------------------------------------


@pytest.mark.servers
def test_close_closes_every_loops_client_and_the_store_serves_again(redis_server: Any) -> None:
    """close() on one loop closes that loop's client at once and another running loop's on
    that loop; the store makes a new client if used again."""
    store = AsyncRedisStorage(redis_server.url, None, "l" + uuid.uuid4().hex[:10])
    used = threading.Event()
    closed = threading.Event()
    result: dict[str, Any] = {}

    async def other_loop() -> None:
        await store.set("other", 1)
        client = store.client
        used.set()
        # (bounded: a failure on the other side must not leave this thread waiting)
        await asyncio.get_running_loop().run_in_executor(None, closed.wait, 30)
        for _ in range(100):  # the close scheduled on this loop runs as it waits
            if not any(c.is_connected for c in client.connection_pool._available_connections):
                break
            await asyncio.sleep(0.01)
        result["closed there"] = not any(
            c.is_connected for c in client.connection_pool._available_connections)
        result["again"] = await store.get("other")  # a new client of this loop
        result["new client"] = store.client is not client

    thread = threading.Thread(target=run, args=(other_loop,))
    thread.start()
    assert used.wait(30)

    async def here() -> None:
        try:
            await store.set("here", 2)
            client = store.client
            await store.close()
            assert not any(c.is_connected
                           for c in client.connection_pool._available_connections)
        finally:
            closed.set()
        assert await store.get("here") == 2  # used again: a new client

    run(here)
    thread.join(30)
    assert result == {"closed there": True, "again": 1, "new client": True}
    run(store.close)


# -- the async fetcher and the back-channel sender ------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        body = json.dumps({"keys": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    with serving(server) as url:
        yield url


def test_the_fetcher_and_the_sender_serve_successive_and_concurrent_loops(http_url: str) -> None:
    fetcher = AsyncGuardedFetcher(allowed_networks=["127.0.0.0/8"], allow_http=True)
    sender = AsyncBackChannelSender.through(fetcher)
    requests = [BackChannelLogoutRequest(CLIENT_ID, http_url + "/logout", "a-logout-token")]

    async def use(_: int = 0) -> tuple[Any, list[Any]]:
        document = await asyncio.gather(*(fetcher.get_json(http_url + "/jwks")
                                          for _ in range(3)))  # one shared request per loop
        return document[0], [(r.delivered, r.status) for r in await sender(requests)]

    for _ in range(3):
        assert run(use) == ({"keys": []}, [(True, 200)])
    assert in_threads(2, use) == [({"keys": []}, [(True, 200)])] * 2
    assert fetcher._flights == {}  # no request (nor loop) left behind


# -- a Starlette application: one provider, successive TestClient blocks ------------------------


def _starlette_app(provider: AsyncProvider, stores: Optional[list[AsyncStorageBase]] = None
                   ) -> Any:
    """A Starlette application over ``provider``; its lifespan closes ``stores`` at the
    end of each run."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, RedirectResponse
    from starlette.routing import Route

    async def authorization(request: Request) -> Any:
        parsed = await provider.parse_authentication_request(request.url.query)
        response = await provider.authorize(parsed, USER_ID)
        return RedirectResponse(response.request(parsed["redirect_uri"], False), 303)

    async def token(request: Request) -> Any:
        body = (await request.body()).decode()
        response = await provider.handle_token_request(body, dict(request.headers))
        return JSONResponse(response.to_dict())

    async def userinfo(request: Request) -> Any:
        response = await provider.handle_userinfo_request(http_headers=dict(request.headers))
        return JSONResponse(response.to_dict())

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        for store in stores or ():
            await store.close()

    return Starlette(routes=[Route("/authorization", authorization),
                             Route("/token", token, methods=["POST"]),
                             Route("/userinfo", userinfo)], lifespan=lifespan)


@pytest.mark.parametrize("close_in_lifespan", [False, True], ids=["open", "lifespan-close"])
@pytest.mark.parametrize("maker", params(["redis", "sqlite", "postgresql", "mongomock"]),
                         indirect=True)
def test_starlette_testclient_blocks_share_a_module_level_provider(
        maker: Maker, jwkest_signing_key: Any, close_in_lifespan: bool) -> None:
    from starlette.testclient import TestClient

    # as at import time of the application's module: no event loop yet
    provider = async_provider(maker, jwkest_signing_key)
    app = _starlette_app(provider, list(maker.made) if close_in_lifespan else None)
    run(lambda: provider.clients.set(CLIENT_ID, clients()[CLIENT_ID]))

    subjects = []
    for _ in range(2):
        with TestClient(app) as client:  # a new event loop (anyio's portal) per block
            answer = client.get("/authorization", params={
                "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
                "scope": "openid profile", "nonce": "n"}, follow_redirects=False)
            assert answer.status_code == 303, answer.text
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            tokens = client.post("/token", content=urlencode({
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": REDIRECT_URI}), headers={
                **basic_auth(), "Content-Type": "application/x-www-form-urlencoded"})
            assert tokens.status_code == 200, tokens.text
            claims = client.get("/userinfo", headers={
                "Authorization": "Bearer " + tokens.json()["access_token"]})
            assert claims.status_code == 200, claims.text
            assert claims.json()["name"] == USERS[USER_ID]["name"]
            subjects.append(claims.json()["sub"])
    assert len(set(subjects)) == 1


# -- the per-loop registry itself -----------------------------------------------------------------


def test_loop_local_closes_on_shutdown_drops_closed_loops_and_leaves_no_finaliser(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pyop.aio._loops import LoopLocal

    class Client:
        pass

    closed: list[Client] = []
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    async def close(client: Client) -> None:
        closed.append(client)

    held: dict[str, LoopLocal[Client]] = {"local": LoopLocal(Client, close, "test clients")}

    async def get() -> tuple[Client, Client]:
        return held["local"].get(), held["local"].get()

    first, again = run(get)
    assert first is again and closed == [first]  # one per loop, closed at its shutdown
    loop = asyncio.new_event_loop()
    second, _ = loop.run_until_complete(get())
    loop.close()  # no shutdown: nothing closed, dropped when another loop comes
    assert closed == [first] and held["local"].values() == []
    third, _ = run(get)
    assert len({id(first), id(second), id(third)}) == 3 and closed == [first, third]
    loop = asyncio.new_event_loop()
    loop.run_until_complete(get())
    loop.close()
    collected = weakref.ref(held.pop("local"))
    gc.collect()
    assert collected() is None and unraisable == []  # no finaliser asked of a closed loop
