"""The CPU cost of the SQL store on :mod:`pyop.aio` next to the synchronous one, in process.

``python -m benchmarks.aio_sql_cpu [--backends memory,sqlite,postgresql,postgresql-asyncpg]
[--calls N] [--flows N] [--rounds N] [--userinfo dict|threaded|async] [--profile OP]``

No HTTP: on one event loop, batches of each store operation (``get``, ``set``, ``add``,
``consume``, ``compare_and_set``) and batches of whole code flows
(:class:`~pyop.aio.AsyncProvider` next to :class:`~pyop.provider.Provider`, both with the
same in-process claims source) alternate between the synchronous store
(``StorageBase.from_uri``) and the async one (``AsyncStorageBase.from_uri``) on the same
database; the CPU time of each batch (``time.process_time``: this process only, the
database server excluded) is divided by its calls, and the median of the rounds is
printed with the async/sync ratio. The flows also run on the in-memory stores, so the
cost of the asynchronous front end alone (no SQL) can be read off next to the SQL rows
(``--backends memory``: those flows only), with the greenlet switches and the worker
thread hops of one async flow (deterministic, unlike the times).

``--userinfo``: the claims source of both providers: ``dict`` (default) a
:class:`~pyop.userinfo.Userinfo` over a dict (called directly by both),
``threaded`` a subclass of it (AsyncProvider runs a sync source it cannot trust not to
block in worker threads, :class:`~pyop.aio.ThreadedUserinfo`), ``async`` an
:class:`~pyop.aio.AsyncUserinfo` over the same dict for AsyncProvider.

``postgresql`` is the async store's default driver (psycopg 3), ``postgresql-asyncpg``
the same database through ``postgresql+asyncpg://``; the synchronous store uses psycopg
on both. ``--profile OP`` (``get``, ``flow``...) prints a cProfile of the async side of
that operation instead, its own time grouped by area (pyop, SQLAlchemy's asyncio
adaptation, the rest of SQLAlchemy, the driver, greenlet, asyncio).

``PYOP_BENCH_POSTGRESQL_URI`` names a running server (else pgserver starts one), so two
trees can be measured on one server: run this module's file with ``PYTHONPATH`` set to
the other tree (the module imports only ``pyop`` and the ``benchmarks`` package).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import itertools
import json
import pstats
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

__all__ = ["main", "run_backend"]

BACKENDS = ("memory", "sqlite", "postgresql", "postgresql-asyncpg")
USERINFO = ("dict", "threaded", "async")
OPERATIONS = ("get", "set", "add", "consume", "compare_and_set")


@contextlib.contextmanager
def _urls(backend: str) -> Iterator[tuple[str, str]]:
    """(sync URL, async URL) of ``backend``."""
    from benchmarks import engines

    if backend == "sqlite":
        with engines.sqlite_url() as url:
            yield url, url
        return
    with engines.postgresql_url() as url:
        rest = url.split("://", 1)[1]
        sync_url = "postgresql+psycopg://" + rest
        yield sync_url, ("postgresql+asyncpg://" + rest if backend == "postgresql-asyncpg"
                         else sync_url)


class _Ops:
    """The operations of one store, as zero-argument callables (coroutine functions for
    the async store); every call of one operation does the same work."""

    def __init__(self, store: Any, tag: str) -> None:
        now = time.time()
        self.store = store
        self.record = {"client_id": "bench-client", "sub": "f" * 64, "user_id": "alice",
                       "scope": "openid profile email", "iat": int(now),
                       "exp": int(now) + 600, "auth_req": {"state": "x" * 16}}
        self.used = dict(self.record, used=True)
        self.exp = now + 3600
        self.counter = itertools.count()
        self.tag = tag

    def key(self, prefix: str) -> str:
        return f"{prefix}-{self.tag}-{next(self.counter)}"

    def calls(self, name: str) -> Callable[[], Any]:
        store, record, used, exp = self.store, self.record, self.used, self.exp
        if name == "get":
            return lambda: store.get("client")
        if name == "set":
            return lambda: store.set(self.key("set"), record, exp)
        if name == "add":
            return lambda: store.add("known", record, exp)  # present: no write
        if name == "consume":
            return lambda: store.consume("absent")  # nothing to delete: one statement
        if name == "compare_and_set":
            flip = itertools.count()

            def cas() -> Any:
                old, new = (record, used) if next(flip) % 2 == 0 else (used, record)
                return store.compare_and_set("cas", old, new, exp)
            return cas
        raise ValueError(name)


async def _prepare(sync_ops: _Ops, async_ops: _Ops) -> None:
    """The records the operations read (the client, a known key, the CAS key)."""
    for ops in (sync_ops, async_ops):
        store = ops.store
        for result in (store.set("client", ops.record),
                       store.add("known", ops.record, ops.exp),
                       store.set("cas", ops.record, ops.exp)):
            if asyncio.iscoroutine(result):
                await result


async def _batch_sync(fn: Callable[[], Any], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - started) / calls


async def _batch_async(fn: Callable[[], Any], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await fn()
    return (time.process_time() - started) / calls


def _claims_sources(kind: str) -> tuple[Any, Any]:
    """(claims source of the sync provider, of the async one) of ``--userinfo``."""
    from benchmarks.flows import USERS
    from pyop.userinfo import Userinfo

    if kind == "dict":
        return Userinfo(dict(USERS)), Userinfo(dict(USERS))

    class Directory(Userinfo):
        """A subclass: AsyncProvider cannot know it never blocks."""

    if kind == "threaded":
        return Directory(dict(USERS)), Directory(dict(USERS))
    source = Userinfo(dict(USERS))

    class AsyncDirectory:
        """An AsyncUserinfo over the dict (its coroutines never wait)."""

        async def get_claims_for(self, user_id: str, requested_claims: Any,
                                 userinfo: Any = None) -> dict[str, Any]:
            return source.get_claims_for(user_id, requested_claims, userinfo)

        async def get_user(self, user_id: str) -> Any:
            return USERS.get(user_id)

        async def has_user(self, user_id: str) -> bool:
            return user_id in USERS

    return Userinfo(dict(USERS)), AsyncDirectory()


def _providers(sync_url: Optional[str], async_url: Optional[str], tag: str,
               userinfo: str = "dict") -> Any:
    """(sync provider, async provider, stores to close) on SQL, or in memory (URLs None)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from benchmarks.flows import CLIENT_ID, client_metadata, configuration
    from pyop.aio import AsyncAuthorizationState, AsyncProvider, AsyncStorageBase
    from pyop.authz_state import AuthorizationState
    from pyop.crypto import SigningKey
    from pyop.provider import Provider
    from pyop.storage import StorageBase
    from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

    key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    factory = HashBasedSubjectIdentifierFactory("bench-salt")
    names = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers",
             "clients")
    if sync_url is None or async_url is None:
        clients = {CLIENT_ID: client_metadata()}
        sync_source, async_source = _claims_sources(userinfo)
        return (Provider(key, configuration(key.alg), AuthorizationState(factory), clients,
                         sync_source),
                AsyncProvider(key, configuration(key.alg), AsyncAuthorizationState(factory),
                              dict(clients), async_source), [], [])
    sync_stores = [StorageBase.from_uri(sync_url, collection=f"{tag}s:{n}", db_name="cpu")
                   for n in names]
    async_stores = [AsyncStorageBase.from_uri(async_url, collection=f"{tag}a:{n}",
                                              db_name="cpu") for n in names]
    sync_stores[4].set(CLIENT_ID, client_metadata())
    sync_source, async_source = _claims_sources(userinfo)
    sync = Provider(key, configuration(key.alg), AuthorizationState(factory, *sync_stores[:4]),
                    sync_stores[4], sync_source)
    aio = AsyncProvider(key, configuration(key.alg),
                        AsyncAuthorizationState(factory, *async_stores[:4]), async_stores[4],
                        async_source)
    return sync, aio, sync_stores, async_stores


def _flow_calls(sync: Any, aio: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from benchmarks.flows import (
        BASIC_AUTH,
        CODE_QUERY,
        TOKEN_BODY_PREFIX,
        TOKEN_BODY_SUFFIX,
        USER_ID,
        code_flow,
    )

    async def async_flow() -> Any:
        request = await aio.parse_authentication_request(CODE_QUERY)
        response = await aio.authorize(request, USER_ID)
        tokens = await aio.handle_token_request(
            TOKEN_BODY_PREFIX + response["code"] + TOKEN_BODY_SUFFIX,
            {"Authorization": BASIC_AUTH})
        return await aio.handle_userinfo_request(
            "", {"Authorization": "Bearer " + tokens["access_token"]})

    return (lambda: code_flow(sync)), async_flow


def _signature_ms() -> float:
    """CPU time of one RS256 signature here (the flows make one): subtract it to read
    the storage and protocol part of a flow."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    started = time.process_time()
    for _ in range(200):
        private.sign(b"x" * 300, padding.PKCS1v15(), hashes.SHA256())
    return (time.process_time() - started) / 200 * 1e3


async def _measure(pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]],
                   rounds: int) -> dict[str, dict[str, float]]:
    """Alternate sync and async batches of every entry; median CPU ms per call."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {"sync": [], "async": []} for name in pairs}
    for sync_fn, async_fn, _calls in pairs.values():  # warm up
        for _ in range(20):
            sync_fn()
            await async_fn()
    for round_no in range(rounds):
        for name, (sync_fn, async_fn, calls) in pairs.items():
            gc.collect()
            order = ("sync", "async") if round_no % 2 == 0 else ("async", "sync")
            for side in order:
                per = (await _batch_sync(sync_fn, calls) if side == "sync"
                       else await _batch_async(async_fn, calls))
                samples[name][side].append(per * 1e3)
    out: dict[str, dict[str, float]] = {}
    for name, sides in samples.items():
        sync_ms = statistics.median(sides["sync"])
        async_ms = statistics.median(sides["async"])
        out[name] = {"sync_ms": sync_ms, "async_ms": async_ms,
                     "ratio": async_ms / sync_ms if sync_ms else float("nan")}
    return out


#: Areas of the profile, by file path fragment (first match wins).
_AREAS = (
    ("pyop/aio/", "pyop (aio bridge, loops, async store)"),
    ("pyop/", "pyop (sync store, protocol)"),
    ("sqlalchemy/connectors/asyncio", "SQLAlchemy asyncio adaptation"),
    ("sqlalchemy/dialects/sqlite/aiosqlite", "SQLAlchemy asyncio adaptation"),
    ("sqlalchemy/dialects/postgresql/asyncpg", "SQLAlchemy asyncio adaptation"),
    ("sqlalchemy/dialects/postgresql/psycopg", "SQLAlchemy asyncio adaptation"),
    ("sqlalchemy/util/concurrency", "SQLAlchemy asyncio adaptation"),
    ("sqlalchemy/util/_concurrency", "SQLAlchemy asyncio adaptation"),
    ("sqlalchemy/", "SQLAlchemy (core, pool, engine)"),
    ("aiosqlite", "driver"), ("asyncpg", "driver"), ("psycopg", "driver"),
    ("sqlite3", "driver"),
    ("asyncio/", "asyncio"), ("threading", "threads (aiosqlite)"),
    ("queue", "threads (aiosqlite)"),
    ("concurrent/", "threads (aiosqlite)"),
    ("greenlet", "greenlet"),
)


def _area(filename: str) -> str:
    if filename.startswith("<") or filename == "~":
        return "builtins"
    for fragment, area in _AREAS:
        if fragment in filename:
            return area
    return "other"


async def _profile(fn: Callable[[], Any], calls: int, top: int) -> None:
    for _ in range(20):
        await fn()
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(calls):
        await fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_area: dict[str, float] = {}
    total = 0.0
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, _ct, _callers) in (
            stats.stats.items()):  # type: ignore[attr-defined]
        area = _area(filename)
        by_area[area] = by_area.get(area, 0.0) + tottime
        total += tottime
        rows.append((tottime, ncalls, f"{filename.split('site-packages/')[-1]}:{line}({func})"))
    print(f"  own time per call, by area (total {total / calls * 1e3:.3f} ms under cProfile):")
    for area, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        print(f"    {area:<40} {seconds / calls * 1e6:8.1f} us  {seconds / total:6.1%}")
    print(f"  top {top} functions by own time (us per call, calls per call):")
    for tottime, ncalls, where in sorted(rows, reverse=True)[:top]:
        print(f"    {tottime / calls * 1e6:7.1f} {ncalls / calls:6.1f}  {where}")


async def _count(fn: Callable[[], Any], flows: int) -> dict[str, float]:
    """Greenlet switches and worker thread hops (functions run in the loop's executor)
    per call of the coroutine function ``fn``."""
    import greenlet  # type: ignore[import-untyped]

    switches = 0

    def trace(event: str, _args: Any) -> None:
        nonlocal switches
        switches += event in ("switch", "throw")

    loop = asyncio.get_running_loop()
    hops = 0
    real = loop.run_in_executor

    def counted(*args: Any) -> Any:
        nonlocal hops
        hops += 1
        return real(*args)

    await fn()
    loop.run_in_executor = counted  # type: ignore[method-assign]
    previous = greenlet.settrace(trace)
    try:
        for _ in range(flows):
            await fn()
    finally:
        greenlet.settrace(previous)
        del loop.run_in_executor
    return {"greenlet_switches": switches / flows, "thread_hops": hops / flows}


def run_backend(backend: str, calls: int, flows: int, rounds: int,
                profile: Optional[str] = None, top: int = 30,
                userinfo: str = "dict") -> dict[str, dict[str, float]]:
    """Measure (or, with ``profile``, profile) one backend; ``name -> sync_ms, async_ms,
    ratio`` (and the counts of the in-memory flow)."""
    from pyop.aio import AsyncStorageBase
    from pyop.storage import StorageBase

    tag = f"{int(time.time() * 1000) % 10**9}"

    async def run(sync_url: Optional[str], async_url: Optional[str]
                  ) -> dict[str, dict[str, float]]:
        mem_sync, mem_async, _, _ = _providers(None, None, tag, userinfo)
        pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]] = {}
        closing: list[Any] = []
        try:
            if sync_url is not None and async_url is not None:
                sync_store = StorageBase.from_uri(sync_url, collection=f"ops-{tag}-s",
                                                  db_name="cpu")
                async_store = AsyncStorageBase.from_uri(async_url, collection=f"ops-{tag}-a",
                                                        db_name="cpu")
                closing += [sync_store, async_store]
                sync_ops, async_ops = _Ops(sync_store, "s"), _Ops(async_store, "a")
                await _prepare(sync_ops, async_ops)
                sync_p, async_p, sync_stores, async_stores = _providers(
                    sync_url, async_url, tag, userinfo)
                closing += sync_stores + async_stores
                from benchmarks.flows import CLIENT_ID, client_metadata
                await async_stores[4].set(CLIENT_ID, client_metadata())
                pairs = {name: (sync_ops.calls(name), async_ops.calls(name), calls)
                         for name in OPERATIONS}
                pairs["code flow"] = (*_flow_calls(sync_p, async_p), flows)
            pairs["code flow (memory)"] = (*_flow_calls(mem_sync, mem_async), flows)
            if profile is not None:
                wanted = "code flow" if profile == "flow" else profile
                if wanted not in pairs:
                    wanted = "code flow (memory)"
                _sync_fn, async_fn, n = pairs[wanted]
                print(f"{backend}: cProfile of the async {wanted}, {n * 5} calls")
                await _profile(async_fn, n * 5, top)
                return {}
            out = await _measure(pairs, rounds)
            out["code flow (memory)"].update(await _count(pairs["code flow (memory)"][1], 20))
            return out
        finally:
            for store in closing:
                result = store.close()
                if asyncio.iscoroutine(result):
                    await result

    if backend == "memory":
        return asyncio.run(run(None, None))
    with _urls(backend) as (sync_url, async_url):
        return asyncio.run(run(sync_url, async_url))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aio_sql_cpu",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS[1:]),
                        help=f"of {', '.join(BACKENDS)} (memory: the in-memory flows only; "
                             "they also run with every other backend)")
    parser.add_argument("--calls", type=int, default=300, help="store calls per batch")
    parser.add_argument("--flows", type=int, default=40, help="code flows per batch")
    parser.add_argument("--rounds", type=int, default=5, help="alternating batches")
    parser.add_argument("--profile", default=None, metavar="OP",
                        help=f"profile the async side of one of {', '.join(OPERATIONS)}, "
                             "flow")
    parser.add_argument("--userinfo", choices=USERINFO, default="dict",
                        help="the claims source (see the module docstring)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    import pyop

    print(f"pyop from {pyop.__file__}; one RS256 signature: {_signature_ms():.3f} ms CPU; "
          f"claims source: {args.userinfo}")
    results: dict[str, Any] = {}
    for backend in (b.strip() for b in args.backends.split(",") if b.strip()):
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}")
        result = run_backend(backend, args.calls, args.flows, args.rounds, args.profile,
                             args.top, args.userinfo)
        results[backend] = result
        for name, row in result.items():
            counts = (f"  ({row['greenlet_switches']:.0f} greenlet switches, "
                      f"{row['thread_hops']:.0f} thread hops per flow)"
                      if "thread_hops" in row else "")
            print(f"  {backend:<19} {name:<20} sync {row['sync_ms']:7.3f} ms  "
                  f"async {row['async_ms']:7.3f} ms  async/sync {row['ratio']:5.2f}{counts}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
