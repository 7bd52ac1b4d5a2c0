"""AsyncProvider on uvicorn versus the sync Provider on a thread pool, under concurrency.

``python -m benchmarks.async_load [--backends redis,postgresql,postgresql-asyncpg]
[--concurrency 1,8,32] [--flows N] [--time-limit S] [--slow-ms 20] [--client raw|httpx]
[--quick] [--json PATH]``; ``python -m benchmarks.async_load gets``.

The same small Starlette application is served by uvicorn (one worker process,
the default asyncio loop, the ``h11`` protocol) on 127.0.0.1 with two front ends:

* ``async``: :class:`pyop.aio.AsyncProvider`, every call awaited on the loop, its
  stores made by ``AsyncStorageBase.from_uri``;
* ``sync``: :class:`pyop.provider.Provider`, every call through
  ``starlette.concurrency.run_in_threadpool`` (anyio's default limiter of 40
  threads), its stores made by ``StorageBase.from_uri``.

This process drives full code flows over HTTP through each (authorization request
with the end-user ``alice`` approved automatically, token request with
client_secret_basic, UserInfo request) from ``--concurrency`` asyncio tasks, each on
its own keep-alive connection (:class:`RawClient`, a minimal HTTP/1.1 client: a
general client such as httpx costs more CPU per request than the provider and, on
the shared cores, would be what is measured); a cell is a fixed number of flows or
``--time-limit`` seconds, whichever ends first. For each storage engine (Redis,
PostgreSQL, both started by :mod:`benchmarks.engines`) and concurrency, each front
end's cell is three slices that alternate with the other's (the order flipping at
each slice) against servers started together, so the ratio async/sync of one run
compares like with like on a machine whose load moves. The server process's CPU time
per flow (``/proc``) is reported too: it moves less with the load than flows/s. A
last pair of cells per engine, at the highest concurrency, uses a slow user source:
every read of it waits ``--slow-ms`` milliseconds (``asyncio.sleep`` in the async
source, ``time.sleep`` in the sync one, which holds a pool thread meanwhile).

On the 2-core benchmark machine the client, the server and the storage engine share
the cores: the figures compare the two front ends under the same load; they are not
the throughput of a dedicated server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

from . import engines

__all__ = ["make_app", "serve", "run_cell", "run_all", "print_table", "main"]

FRONTS = ("async", "sync")
DEFAULT_BACKENDS = ("redis", "postgresql", "postgresql-asyncpg", "postgresql-pool8")
#: ``postgresql-asyncpg``: the async front end's stores on ``postgresql+asyncpg://``
#: instead of the default driver ``from_uri`` picks (psycopg's async face when psycopg is
#: installed); the sync front end as for ``postgresql``. ``postgresql-pool8``: both front
#: ends' SQL stores with a fixed pool (``pool_size=8, max_overflow=0``) instead of
#: SQLAlchemy's default (5, and up to 10 overflow connections opened and closed on demand);
#: no slow cells (PostgreSQL's 100 connections would not hold four servers' pools).
BACKENDS = ("memory", "redis", "postgresql", "postgresql-asyncpg", "postgresql-pool8")
FIXED_POOL = 8
DEFAULT_CONCURRENCY = (1, 8, 32)
JSON_NO_STORE = {"Cache-Control": "no-store"}


# -- the user sources ------------------------------------------------------------------------


def slow_sync_userinfo(users: Mapping[str, Any], delay: float) -> Any:
    """A :class:`~pyop.userinfo.Userinfo` whose every read sleeps ``delay`` seconds first
    (a directory or database lookup that blocks its thread)."""
    from pyop.userinfo import Userinfo

    class SlowUserinfo(Userinfo):
        def __getitem__(self, item: str) -> Any:
            time.sleep(delay)
            return super().__getitem__(item)

        def __contains__(self, item: object) -> bool:
            time.sleep(delay)
            return super().__contains__(item)

        def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                           userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
            time.sleep(delay)
            return super().get_claims_for(user_id, requested_claims, userinfo)

    return SlowUserinfo(dict(users))


class AsyncUsers:
    """An async user source (:class:`pyop.aio.AsyncUserinfo`) over a dict; every read
    awaits ``delay`` seconds first (``asyncio.sleep``: the loop serves others meanwhile)."""

    def __init__(self, users: Mapping[str, Any], delay: float = 0.0) -> None:
        from pyop.userinfo import Userinfo

        self._users = dict(users)
        self._claims = Userinfo(self._users)
        self.delay = delay

    async def _wait(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                             userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        await self._wait()
        return self._claims.get_claims_for(user_id, requested_claims, userinfo)

    async def get_user(self, user_id: str) -> Optional[Mapping[str, Any]]:
        await self._wait()
        record: Optional[Mapping[str, Any]] = self._users.get(user_id)
        return record

    async def has_user(self, user_id: str) -> bool:
        await self._wait()
        return user_id in self._users


# -- the providers ---------------------------------------------------------------------------


def _compose(storage: Any, state: Any, provider_class: Any, key: Any, url: Optional[str],
             namespace: str, userinfo: Any, store_options: Optional[Mapping[str, Any]]
             ) -> tuple[Any, Any, list[Any]]:
    """The provider of one front end (its storage base, authorization state and provider
    classes) on stores made from ``url`` (in memory when None): (provider, clients store
    or None, stores made)."""
    from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

    from .flows import CLIENT_ID, client_metadata, configuration

    factory = HashBasedSubjectIdentifierFactory("bench-salt")
    if url is None:
        clients = {CLIENT_ID: client_metadata()}
        return (provider_class(key, configuration(key.alg), state(factory), clients, userinfo),
                None, [])
    stores = [storage.from_uri(url, collection=f"{namespace}:{collection}",
                               db_name=namespace, **(store_options or {}))
              for collection in ("authz_codes", "access_tokens", "refresh_tokens",
                                 "subject_identifiers", "clients")]
    provider = provider_class(key, configuration(key.alg), state(factory, *stores[:4]),
                              stores[4], userinfo)
    return provider, stores[4], stores


def _build_sync(key: Any, url: Optional[str], namespace: str, userinfo: Any,
                store_options: Optional[Mapping[str, Any]] = None
                ) -> tuple[Any, Callable[[], Any]]:
    from pyop.authz_state import AuthorizationState
    from pyop.provider import Provider
    from pyop.storage import StorageBase

    from .flows import CLIENT_ID, client_metadata

    provider, clients, stores = _compose(StorageBase, AuthorizationState, Provider, key, url,
                                         namespace, userinfo, store_options)
    if clients is not None:
        clients.set(CLIENT_ID, client_metadata())

    async def close() -> None:
        for store in stores:
            store.close()

    return provider, close


async def _build_async(key: Any, url: Optional[str], namespace: str, userinfo: Any,
                       store_options: Optional[Mapping[str, Any]] = None
                       ) -> tuple[Any, Callable[[], Any]]:
    from pyop.aio import AsyncAuthorizationState, AsyncProvider, AsyncStorageBase

    from .flows import CLIENT_ID, client_metadata

    provider, clients, stores = _compose(AsyncStorageBase, AsyncAuthorizationState,
                                         AsyncProvider, key, url, namespace, userinfo,
                                         store_options)
    if clients is not None:
        await clients.set(CLIENT_ID, client_metadata())

    async def close() -> None:
        for store in stores:
            await store.close()

    return provider, close


# -- the application -------------------------------------------------------------------------


def make_app(front: str, build: Callable[[], Any], user_id: str) -> Any:
    """A Starlette application with the authorization, token, UserInfo and JWKS endpoints;
    every end-user is ``user_id``, already logged in and consenting.

    :param front: ``"async"`` (the provider's methods are coroutines, awaited on the
        loop) or ``"sync"`` (each call runs in Starlette's thread pool).
    :param build: a coroutine function returning ``(provider, close)``, called at startup.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from pyop.exceptions import BearerTokenError, InvalidAuthenticationRequest, OAuthError
    from pyop.util import should_fragment_encode

    if front not in FRONTS:
        raise ValueError(f"front: one of {FRONTS}, not {front!r}")
    state: dict[str, Any] = {}

    async def call(name: str, *args: Any) -> Any:
        method = getattr(state["provider"], name)
        if front == "async":
            return await method(*args)
        return await run_in_threadpool(method, *args)

    def headers_of(request: Request) -> dict[str, str]:
        return {name.title(): value for name, value in request.headers.items()}

    async def authorization(request: Request) -> Response:
        query = request.scope["query_string"].decode("latin-1")
        try:
            authn_req = await call("parse_authentication_request", query, headers_of(request))
        except InvalidAuthenticationRequest as e:
            error_url = e.to_error_url()
            if error_url:
                return Response(status_code=303, headers={"Location": error_url})
            return PlainTextResponse(str(e), status_code=400)
        response = await call("authorize", authn_req, user_id)
        location = response.request(authn_req["redirect_uri"],
                                    should_fragment_encode(authn_req))
        return Response(status_code=303, headers={"Location": location})

    async def token(request: Request) -> Response:
        body = (await request.body()).decode("utf-8")
        try:
            token_response = await call("handle_token_request", body, headers_of(request))
        except OAuthError as e:
            headers = dict(JSON_NO_STORE)
            if e.http_status == 401:
                headers["WWW-Authenticate"] = "Basic"
            return Response(e.to_json(), status_code=e.http_status, headers=headers,
                            media_type="application/json")
        return Response(token_response.to_json(), headers=JSON_NO_STORE,
                        media_type="application/json")

    async def userinfo(request: Request) -> Response:
        body = (await request.body()).decode("utf-8")
        try:
            claims = await call("handle_userinfo_request", body, headers_of(request))
        except BearerTokenError as e:
            return Response(e.to_json(), status_code=e.http_status,
                            headers={"WWW-Authenticate": e.www_authenticate},
                            media_type="application/json")
        return Response(claims.to_json(), media_type="application/json")

    async def jwks(request: Request) -> Response:
        return JSONResponse(state["provider"].jwks)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        state["provider"], close = await build()
        try:
            yield
        finally:
            await close()

    return Starlette(routes=[
        Route("/authorization", authorization, methods=["GET"]),
        Route("/token", token, methods=["POST"]),
        Route("/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/jwks", jwks, methods=["GET"]),
    ], lifespan=lifespan)


def serve(port: int, front: str, url: Optional[str], namespace: str, slow_ms: float,
          pool_size: int = 0) -> None:
    """Serve the benchmark OP (RS256 2048-bit) with uvicorn on 127.0.0.1 until stopped;
    ``pool_size``: each SQL store's pool has that many connections and no overflow (0:
    SQLAlchemy's default, 5 and up to 10 more opened and closed on demand)."""
    import uvicorn
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pyop.crypto import SigningKey

    from .flows import USER_ID, USERS

    key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    delay = slow_ms / 1000
    options = {"pool_size": pool_size, "max_overflow": 0} if pool_size else {}

    async def build() -> tuple[Any, Callable[[], Any]]:
        if front == "async":
            return await _build_async(key, url, namespace, AsyncUsers(USERS, delay), options)
        from pyop.userinfo import Userinfo

        source = slow_sync_userinfo(USERS, delay) if delay else Userinfo(dict(USERS))
        return _build_sync(key, url, namespace, source, options)

    uvicorn.run(make_app(front, build, USER_ID), host="127.0.0.1", port=port,
                loop="asyncio", http="h11", lifespan="on", workers=1,
                log_level="warning", access_log=False)


# -- the client ------------------------------------------------------------------------------


class RawResponse:
    """What :func:`one_flow` reads of a response (as ``httpx.Response`` offers it)."""

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = _Headers(headers)
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Headers(dict[str, str]):
    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())


class RawClient:
    """A minimal HTTP/1.1 client on one keep-alive connection per task, for responses
    with a ``Content-Length`` (what uvicorn sends for Starlette's responses).

    Far cheaper in CPU than a general client: on a 2-core machine the client shares the
    cores with the server, and a costly client would make every front end look the same.
    """

    def __init__(self) -> None:
        self._connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def _connection(self, host: str, port: int
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        task = id(asyncio.current_task())
        if task not in self._connections:
            self._connections[task] = await asyncio.open_connection(host, port)
        return self._connections[task]

    async def request(self, method: str, url: str, body: bytes = b"",
                      headers: Optional[Mapping[str, str]] = None) -> RawResponse:
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}",
                 f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/x-www-form-urlencoded")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        reader, writer = await self._connection(parts.hostname or "127.0.0.1",
                                                parts.port or 80)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        received: dict[str, str] = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                received[name.strip().lower()] = value.strip()
        content = await reader.readexactly(int(received.get("content-length", "0")))
        return RawResponse(status, received, content)

    async def get(self, url: str, headers: Optional[Mapping[str, str]] = None
                  ) -> RawResponse:
        return await self.request("GET", url, headers=headers)

    async def post(self, url: str, data: Mapping[str, str],
                   headers: Optional[Mapping[str, str]] = None) -> RawResponse:
        return await self.request("POST", url, urlencode(data).encode("ascii"), headers)

    async def aclose(self) -> None:
        for _, writer in self._connections.values():
            writer.close()
        self._connections.clear()


async def one_flow(client: Any, base: str) -> None:
    """One code flow over HTTP; raises AssertionError on anything unexpected."""
    from .flows import BASIC_AUTH, CODE_QUERY, REDIRECT_URI, USER_ID, USERS

    response = await client.get(base + "/authorization?" + CODE_QUERY)
    assert response.status_code == 303, (response.status_code, response.text[:200])
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = await client.post(base + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers={"Authorization": BASIC_AUTH})
    assert response.status_code == 200, (response.status_code, response.text[:200])
    access_token = response.json()["access_token"]
    response = await client.get(base + "/userinfo",
                                headers={"Authorization": "Bearer " + access_token})
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert response.json()["email"] == USERS[USER_ID]["email"]


def process_cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU time of process ``pid`` (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(base: str, concurrency: int, flows: int, time_limit: float,
                 warmup: int, server_pid: Optional[int], client_kind: str) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    client: Any
    if client_kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency,
                              max_keepalive_connections=concurrency)
        client = httpx.AsyncClient(limits=limits, timeout=30.0)
        failures: tuple[type[BaseException], ...] = (httpx.HTTPError,)
    else:
        client = RawClient()
        failures = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)
    caught = (AssertionError, KeyError, ValueError, TimeoutError) + failures
    warmed = 0
    try:
        deadline = time.monotonic() + time_limit + 3600  # set when the timed part starts

        async def worker(warm: int) -> None:
            nonlocal issued, warmed
            if warm:
                for _ in range(warm):
                    await one_flow(client, base)
            else:  # opens this task's connection
                assert (await client.get(base + "/jwks")).status_code == 200
            warmed += 1
            await ready.wait()
            while issued < flows and time.monotonic() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(one_flow(client, base), 60)
                except caught as error:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                    if client_kind != "httpx":  # the connection may be out of step
                        connection = client._connections.pop(
                            id(asyncio.current_task()), None)
                        if connection is not None:
                            connection[1].close()
                    continue
                latencies.append(time.perf_counter() - started)

        ready = asyncio.Event()
        workers = [asyncio.ensure_future(worker(warmup if i == 0 else 0))
                   for i in range(concurrency)]
        while warmed < concurrency and not any(w.done() for w in workers):
            await asyncio.sleep(0.01)
        cpu_before = process_cpu_seconds(server_pid) if server_pid else None
        started = time.perf_counter()
        deadline = time.monotonic() + time_limit
        ready.set()
        await asyncio.gather(*workers)
        wall = time.perf_counter() - started
        cpu_after = process_cpu_seconds(server_pid) if server_pid else None
    finally:
        await client.aclose()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {"latencies": latencies, "errors": errors, "seconds": wall,
            "flows_requested": flows, "server_cpu_s": cpu}


def summarize(slices: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """One cell from its slices (see :func:`run_cell`): flows/s over the slices' summed
    time, p50/p95 of every flow's latency, errors."""
    latencies = sorted(x for part in slices for x in part["latencies"])
    errors = [e for part in slices for e in part["errors"]]
    wall = sum(part["seconds"] for part in slices)
    requested = sum(part["flows_requested"] for part in slices)
    done = len(latencies)
    cpu = [part["server_cpu_s"] for part in slices]
    return {
        "concurrency": concurrency,
        "server_cpu_ms_per_flow": (sum(cpu) / done * 1e3 if done and None not in cpu
                                   else None),
        "flows_requested": requested,
        "flows_done": done,
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": wall,
        "flows_per_s": done / wall if wall else 0.0,
        "slices_flows_per_s": [len(part["latencies"]) / part["seconds"] if part["seconds"]
                               else 0.0 for part in slices],
        "p50_ms": statistics.median(latencies) * 1e3 if latencies else None,
        "p95_ms": latencies[int(0.95 * (done - 1))] * 1e3 if latencies else None,
        "time_limited": done + len(errors) < requested,
    }


def run_cell(base: str, concurrency: int, flows: int, time_limit: float,
             warmup: int = 3, server_pid: Optional[int] = None,
             client: str = "raw") -> dict[str, Any]:
    """Drive up to ``flows`` code flows (or ``time_limit`` seconds) through the server at
    ``base`` from ``concurrency`` tasks (after ``warmup`` flows); one slice of a cell: the
    flows' latencies, the errors, the time taken and the CPU time the server process
    ``server_pid`` used meanwhile (None when not given or not measurable). ``client``:
    ``"raw"`` (:class:`RawClient`) or ``"httpx"`` (``httpx.AsyncClient``)."""
    result: dict[str, Any] = asyncio.run(_drive(base, concurrency, flows, time_limit, warmup,
                                                server_pid, client))
    return result


# -- the servers -----------------------------------------------------------------------------


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(base + "/jwks", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout} s")


@contextlib.contextmanager
def servers(specs: Mapping[str, tuple[str, Optional[str], str, float, int]]
            ) -> Iterator[dict[str, tuple[str, int]]]:
    """Start one uvicorn process per ``name -> (front, url, namespace, slow_ms,
    pool_size)``, all
    at once; yield ``name -> (base URL, pid)`` once every one answers; stop them at the
    end."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    bases: dict[str, str] = {}
    try:
        for name, (front, url, namespace, slow_ms, pool_size) in specs.items():
            port = engines.free_port()
            command = [sys.executable, "-m", "benchmarks.async_load", "serve", "--port",
                       str(port), "--front", front, "--namespace", namespace,
                       "--slow-ms", str(slow_ms), "--pool-size", str(pool_size)]
            if url is not None:
                command += ["--url", url]
            procs[name] = subprocess.Popen(command, cwd=root, env=env)  # noqa: S603 - ours
            bases[name] = f"http://127.0.0.1:{port}"
        for name, proc in procs.items():
            _wait_ready(bases[name], proc)
        yield {name: (bases[name], proc.pid) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def engine_urls(backend: str) -> Iterator[tuple[Optional[str], Optional[str]]]:
    """The storage URLs of ``backend`` for the async and the sync front end (None: in
    memory), its engine started for the run (see :data:`BACKENDS`)."""
    if backend == "memory":
        yield None, None
    elif backend == "redis":
        with engines.redis_url() as url:
            yield url, url
    elif backend in ("postgresql", "postgresql-asyncpg", "postgresql-pool8"):
        if backend.endswith("asyncpg") and importlib.util.find_spec("asyncpg") is None:
            raise engines.EngineUnavailable("asyncpg is not installed (pip install asyncpg)")
        with engines.postgresql_url() as url:
            if backend.endswith("asyncpg"):
                yield "postgresql+asyncpg://" + url.split("://", 1)[1], url
            else:
                yield url, url
    else:
        raise ValueError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")


# -- the run ---------------------------------------------------------------------------------


def run_all(backends: tuple[str, ...] = DEFAULT_BACKENDS,
            concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY, flows: int = 300,
            time_limit: float = 8.0, slow_ms: float = 20.0,
            slow_concurrency: tuple[int, ...] = (), rounds: int = 3, client: str = "raw",
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every cell: each backend x concurrency x front end, and the slow user source at
    ``slow_concurrency`` (default: the highest concurrency). Each cell is ``rounds``
    slices of ``flows / rounds`` flows (``time_limit / rounds`` seconds at most) that
    alternate with the other front end's, the order flipping at each round, so that a
    change of the machine's load in the middle of a cell hits both front ends alike.
    Returns the cells and the same-run ratios."""
    cells: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    started = time.monotonic()
    for backend in backends:
        try:
            with engine_urls(backend) as (async_url, sync_url):
                pool = FIXED_POOL if backend == "postgresql-pool8" else 0
                slow = 0.0 if pool else slow_ms  # 4 servers' pools would pass max_connections
                specs = {
                    "async": ("async", async_url, "bench-async", 0.0, pool),
                    "sync": ("sync", sync_url, "bench-sync", 0.0, pool),
                }
                if slow:
                    specs["async-slow"] = ("async", async_url, "bench-async-slow", slow, 0)
                    specs["sync-slow"] = ("sync", sync_url, "bench-sync-slow", slow, 0)
                with servers(specs) as bases:
                    plan = [(c, "", i) for i, c in enumerate(concurrency)]
                    if slow:
                        plan += [(c, "-slow", len(plan) + i)
                                 for i, c in enumerate(slow_concurrency or (max(concurrency),))]
                    for c, suffix, i in plan:
                        slices: dict[str, list[dict[str, Any]]] = {f: [] for f in FRONTS}
                        for r in range(rounds):
                            order = FRONTS if (i + r) % 2 == 0 else FRONTS[::-1]
                            for front in order:
                                base, pid = bases[front + suffix]
                                slices[front].append(run_cell(
                                    base, c, -(-flows // rounds), time_limit / rounds,
                                    server_pid=pid, client=client))
                        for front in FRONTS:
                            cell = summarize(slices[front], c)
                            cell.update(backend=backend, front=front,
                                        slow_ms=slow_ms if suffix else 0.0)
                            log(_cell_line(cell))
                            cells.append(cell)
        except engines.EngineUnavailable as error:
            skipped[backend] = str(error)
            log(f"  {backend}: SKIPPED ({error})")
    return {
        "cells": cells,
        "ratios": ratios(cells),
        "skipped": skipped,
        "seconds": time.monotonic() - started,
        "environment": environment(),
        "settings": {"backends": list(backends), "concurrency": list(concurrency),
                     "flows": flows, "time_limit": time_limit, "slow_ms": slow_ms,
                     "rounds": rounds, "client": client,
                     "slow_concurrency": list(slow_concurrency or (max(concurrency),))},
    }


def _cell_line(cell: dict[str, Any]) -> str:
    slow = f", user source {cell['slow_ms']:g} ms" if cell["slow_ms"] else ""
    limited = " (time limit)" if cell["time_limited"] else ""
    p50 = f"{cell['p50_ms']:.1f}" if cell["p50_ms"] is not None else "-"
    p95 = f"{cell['p95_ms']:.1f}" if cell["p95_ms"] is not None else "-"
    line = (f"  {cell['front']:5} {cell['backend']}{slow} c={cell['concurrency']}: "
            f"{cell['flows_done']} flows in {cell['seconds']:.1f} s = "
            f"{cell['flows_per_s']:.1f} flows/s, p50 {p50} ms, p95 {p95} ms, "
            f"server CPU {_num(cell['server_cpu_ms_per_flow'])} ms/flow, "
            f"errors {cell['errors']}{limited}")
    for error in cell["first_errors"]:
        line += f"\n    error: {error}"
    return line


def _num(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def ratios(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ratio async/sync of flows/s for each (backend, concurrency, slow) of one run."""
    by_key: dict[tuple[str, int, float], dict[str, dict[str, Any]]] = {}
    for cell in cells:
        key = (cell["backend"], cell["concurrency"], cell["slow_ms"])
        by_key.setdefault(key, {})[cell["front"]] = cell
    out = []
    for (backend, c, slow), pair in by_key.items():
        if set(pair) != set(FRONTS):
            continue
        a, s = pair["async"], pair["sync"]
        out.append({
            "backend": backend, "concurrency": c, "slow_ms": slow,
            "async_flows_per_s": a["flows_per_s"], "sync_flows_per_s": s["flows_per_s"],
            "ratio": a["flows_per_s"] / s["flows_per_s"] if s["flows_per_s"] else None,
            "async_cpu_ms_per_flow": a["server_cpu_ms_per_flow"],
            "sync_cpu_ms_per_flow": s["server_cpu_ms_per_flow"],
            "cpu_ratio": (a["server_cpu_ms_per_flow"] / s["server_cpu_ms_per_flow"]
                          if a["server_cpu_ms_per_flow"] and s["server_cpu_ms_per_flow"]
                          else None),
            "async_p50_ms": a["p50_ms"], "async_p95_ms": a["p95_ms"],
            "sync_p50_ms": s["p50_ms"], "sync_p95_ms": s["p95_ms"],
            "errors": a["errors"] + s["errors"],
        })
    return out


def print_table(result: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """The table: flows/s of each front end, the same-run ratio, p50/p95 latencies, the
    server's CPU time per flow (async / sync) and its ratio."""
    ms = _num
    header = (f"{'backend':<24} {'conc':>4} {'async fl/s':>10} {'sync fl/s':>10} "
              f"{'async/sync':>10} {'async p50/p95 ms':>17} {'sync p50/p95 ms':>17} "
              f"{'CPU ms/flow a/s':>16} {'CPU a/s':>7} {'errors':>6}")
    log(header)
    log("-" * len(header))
    for row in result["ratios"]:
        name = row["backend"] + (f", user {row['slow_ms']:g} ms" if row["slow_ms"] else "")
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        log(f"{name:<24} {row['concurrency']:>4} {row['async_flows_per_s']:>10.1f} "
            f"{row['sync_flows_per_s']:>10.1f} {ratio:>10} "
            f"{ms(row['async_p50_ms']) + ' / ' + ms(row['async_p95_ms']):>17} "
            f"{ms(row['sync_p50_ms']) + ' / ' + ms(row['sync_p95_ms']):>17} "
            f"{ms(row['async_cpu_ms_per_flow']) + ' / ' + ms(row['sync_cpu_ms_per_flow']):>16} "
            f"{'-' if row['cpu_ratio'] is None else format(row['cpu_ratio'], '.2f') + 'x':>7} "
            f"{row['errors']:>6}")
    for backend, reason in result["skipped"].items():
        log(f"{backend:<24} SKIPPED ({reason})")


def environment() -> dict[str, Any]:
    """Versions and machine of the run."""
    import importlib.metadata

    versions: dict[str, Optional[str]] = {}
    for dist in ("uvicorn", "starlette", "anyio", "httpx", "h11", "redis", "SQLAlchemy",
                 "psycopg", "asyncpg", "greenlet", "cryptography"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def store_gets(calls: int = 300, log: Callable[[str], None] = print) -> dict[str, float]:
    """The time of one ``get`` of a small record on PostgreSQL, in this process and run:
    the sync store (``StorageBase.from_uri``) and the async one (``AsyncStorageBase.from_uri``)
    on its default driver and on asyncpg, with a bare ``SELECT 1`` of psycopg's sync and
    async connections next to them. Explains the PostgreSQL cells of the run."""
    import psycopg

    from pyop.aio import AsyncStorageBase
    from pyop.storage import StorageBase

    def per_call(started: float) -> float:
        return (time.perf_counter() - started) / calls * 1e3

    out: dict[str, float] = {}
    with engines.postgresql_url() as url:
        sync_store = StorageBase.from_uri(url, collection="gets:sync", db_name="gets")
        sync_store.set("k", {"a": 1})
        for _ in range(50):
            sync_store.get("k")
        started = time.perf_counter()
        for _ in range(calls):
            sync_store.get("k")
        out["sync store get"] = per_call(started)
        sync_store.close()
        with psycopg.connect(url) as connection:
            for _ in range(50):
                connection.execute("SELECT 1").fetchone()
            started = time.perf_counter()
            for _ in range(calls):
                connection.execute("SELECT 1").fetchone()
            out["psycopg sync SELECT 1"] = per_call(started)

        async def measure() -> None:
            connection = await psycopg.AsyncConnection.connect(url)
            for _ in range(50):
                await (await connection.execute("SELECT 1")).fetchone()
            started = time.perf_counter()
            for _ in range(calls):
                await (await connection.execute("SELECT 1")).fetchone()
            out["psycopg async SELECT 1"] = per_call(started)
            await connection.close()
            rest = url.split("://", 1)[1]
            for label, uri in (("async store get (from_uri default)", url),
                               ("async store get (postgresql+asyncpg)",
                                "postgresql+asyncpg://" + rest)):
                store = AsyncStorageBase.from_uri(uri, collection="gets:async",
                                                  db_name="gets")
                await store.set("k", {"a": 1})
                for _ in range(50):
                    await store.get("k")
                started = time.perf_counter()
                for _ in range(calls):
                    await store.get("k")
                out[label] = per_call(started)
                await store.close()

        asyncio.run(measure())
    for label, ms in out.items():
        log(f"  {label:<40} {ms:.3f} ms")
    return out


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.async_load",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    server = sub.add_parser("serve", help="run one benchmark OP (used by the run)")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--front", choices=FRONTS, required=True)
    server.add_argument("--url", default=None, help="storage URL (default: in memory)")
    server.add_argument("--namespace", default="bench")
    server.add_argument("--slow-ms", type=float, default=0.0)
    server.add_argument("--pool-size", type=int, default=0)
    sub.add_parser("gets", help="time one store get on PostgreSQL: sync, async (psycopg, "
                                "asyncpg)")
    parser.add_argument("--backends", default=None,
                        help=f"comma-separated, of {','.join(BACKENDS)} "
                             f"(default {','.join(DEFAULT_BACKENDS)}; memory with --quick)")
    parser.add_argument("--concurrency", default="1,8,32", help="client tasks per cell")
    parser.add_argument("--flows", type=int, default=None,
                        help="flows per cell (default 300; 6 with --quick)")
    parser.add_argument("--time-limit", type=float, default=8.0, help="seconds per cell")
    parser.add_argument("--slow-ms", type=float, default=20.0,
                        help="the slow user source's delay per read (0: no slow cells)")
    parser.add_argument("--slow-concurrency", default=None,
                        help="client tasks of the slow cells (default: the highest of "
                             "--concurrency)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: a minimal keep-alive HTTP/1.1 client (default, cheap in "
                             "CPU); httpx: httpx.AsyncClient")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating slices per cell and front end (default 3)")
    parser.add_argument("--quick", action="store_true", help="a few flows per cell (smoke run)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=logging.WARNING)
        serve(args.port, args.front, args.url, args.namespace, args.slow_ms, args.pool_size)
        return 0
    if args.command == "gets":
        store_gets()
        return 0
    backends = tuple(args.backends.split(",")) if args.backends else (
        ("memory",) if args.quick else DEFAULT_BACKENDS)
    for backend in backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")
    flows = args.flows or (6 if args.quick else 300)
    result = run_all(backends, _int_list(args.concurrency), flows, args.time_limit,
                     args.slow_ms, _int_list(args.slow_concurrency or ""), args.rounds,
                     args.client)
    print()
    print_table(result)
    print(f"\n{len(result['cells'])} cells in {result['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
    return 1 if any(cell["errors"] for cell in result["cells"]) else 0


if __name__ == "__main__":
    sys.exit(main())
