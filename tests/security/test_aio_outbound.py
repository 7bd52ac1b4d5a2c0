"""The asyncio fetcher and back-channel sender (pyop.aio.outbound, pyop.aio.logout): what
only a coroutine API has. Every guard they share with the synchronous ones is checked by
tests/security/test_outbound_fetch.py and test_backchannel_logout.py, which run against
both.

Here: many requests at once on one event loop do not wait for each other; concurrent
fetches of one URL make one connection; the event loop is never blocked (a task ticking
every 5 ms sees no gap over 50 ms while a slow server is fetched); a cancelled or timed-out
request closes its connection.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import Any, Callable

import pytest
from support.logout import relying_party_servers
from support.loop_lag import LagProbe, lag_probe, smallest_gap

from pyop.aio.logout import AsyncBackChannelSender
from pyop.aio.outbound import AsyncGuardedFetcher
from pyop.exceptions import FetchError
from pyop.logout_notifications import BackChannelLogoutRequest

from .fetch_servers import LOOPBACK, Listener, Server, drip, json_route, send

#: The longest the event loop may go without running a ready task.
MAX_LAG = 0.05


def local(**options: Any) -> AsyncGuardedFetcher:
    options.setdefault("allowed_networks", LOOPBACK)
    options.setdefault("allow_http", True)
    return AsyncGuardedFetcher(**options)


class HangingServer:
    """Reads each request's head, never answers; notes when the client closes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requested = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        with conn:
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.requested.set()
                while conn.recv(4096):
                    pass
            except OSError:
                pass
            self.closed.set()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    s = HangingServer()
    yield s
    s.close()


def slow_json(delay: float, document: Any) -> Callable[[http.server.BaseHTTPRequestHandler],
                                                       None]:
    body = json.dumps(document).encode()

    def route(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        send(handler, 200, body, {"Content-Type": "application/json"})

    return route


# -- concurrency ----------------------------------------------------------------------------------

def test_concurrent_fetches_on_one_loop_do_not_wait_for_each_other(server: Server) -> None:
    """Eight documents answering after 0.5 s each: about 0.5 s together, not 4 s."""
    for index in range(8):
        server.routes[f"/jwks{index}"] = slow_json(0.5, {"keys": [], "n": index})
    fetcher = local()

    async def scenario() -> tuple[list[Any], float]:
        started = time.monotonic()
        results = await asyncio.gather(*(fetcher.get_json(server.url(f"/jwks{index}"))
                                         for index in range(8)))
        return list(results), time.monotonic() - started

    results, elapsed = asyncio.run(scenario())
    assert [result["n"] for result in results] == list(range(8))
    assert elapsed < 2.0
    assert server.connections == 8


def test_single_flight_on_one_loop(server: Server) -> None:
    server.routes["/jwks"] = slow_json(0.3, {"keys": []})
    fetcher = local()

    async def scenario() -> list[Any]:
        return list(await asyncio.gather(*(fetcher.get_json(server.url("/jwks"))
                                           for _ in range(16))))

    results = asyncio.run(scenario())
    assert results == [{"keys": []}] * 16
    assert server.connections == 1
    results[0]["keys"].append("changed")  # each caller has its own object
    assert results[1] == {"keys": []}
    assert fetcher._flights == {}  # nothing kept once it is over
    asyncio.run(scenario())
    assert server.connections == 2


def test_single_flight_survives_a_cancelled_caller(server: Server) -> None:
    """One caller giving up does not end the request the others wait for."""
    server.routes["/jwks"] = slow_json(0.3, {"keys": []})
    fetcher = local()

    async def scenario() -> Any:
        first = asyncio.create_task(fetcher.get_json(server.url("/jwks")))
        second = asyncio.create_task(fetcher.get_json(server.url("/jwks")))
        await asyncio.sleep(0.1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(scenario()) == {"keys": []}
    assert server.connections == 1


def test_single_flight_errors_are_shared(server: Server) -> None:
    def slow_error(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(0.3)
        send(handler, 500, b"internal")

    server.routes["/jwks"] = slow_error
    fetcher = local()

    async def scenario() -> list[Any]:
        return list(await asyncio.gather(*(fetcher.get_json(server.url("/jwks"))
                                           for _ in range(6)), return_exceptions=True))

    errors = asyncio.run(scenario())
    assert all(isinstance(error, FetchError) for error in errors)
    assert {str(error) for error in errors} == {"the server answered 500, not 200"}
    assert server.connections == 1


# -- the event loop is never blocked ---------------------------------------------------------------

@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_event_loop_not_blocked_while_a_drip_server_is_fetched(
        server: Server, tls_server: Server, trusting: ssl.SSLContext, in_headers: bool,
        scheme: str) -> None:
    target = tls_server if scheme == "https" else server
    target.routes["/jwks"] = lambda h: drip(h, in_headers=in_headers)
    fetcher = local(deadline=1.0, ssl_context=trusting)

    async def scenario() -> tuple[LagProbe, float]:
        async with lag_probe() as probe:
            started = time.monotonic()
            with pytest.raises(FetchError, match="deadline"):
                # by name: resolution runs off the loop too
                await fetcher.get_json(target.url("/jwks", host="localhost"))
            return probe, time.monotonic() - started

    def measure() -> float:
        probe, elapsed = asyncio.run(scenario())
        assert elapsed < 3
        assert probe.ticks > 20
        return probe.max_gap

    gaps = smallest_gap(measure, MAX_LAG)
    assert min(gaps) < MAX_LAG, gaps


def test_event_loop_not_blocked_by_a_first_https_request(tls_server: Server) -> None:
    """The default TLS context (the system's trust store) is loaded off the loop, for a
    fetcher made on the loop itself."""
    tls_server.routes["/jwks"] = json_route({"keys": []})

    async def scenario() -> LagProbe:
        async with lag_probe() as probe:
            fetcher = AsyncGuardedFetcher(allowed_networks=LOOPBACK)
            with pytest.raises(FetchError, match="SSL"):  # the test certificate: not trusted
                await fetcher.get_json(tls_server.url("/jwks"))
            await asyncio.sleep(0.05)
            return probe

    gaps = smallest_gap(lambda: asyncio.run(scenario()).max_gap, MAX_LAG)
    assert min(gaps) < MAX_LAG, gaps


# -- cancellation and the deadline close the connection ------------------------------------------

FetchCall = Callable[[AsyncGuardedFetcher, str], Awaitable[Any]]
CALLS: dict[str, FetchCall] = {
    "get_json": lambda fetcher, uri: fetcher.get_json(uri),
    "get": lambda fetcher, uri: fetcher.get(uri),
    "post_form": lambda fetcher, uri: fetcher.post_form(uri, {"logout_token": "t"}),
}


async def wait_for_event(event: threading.Event, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while not event.is_set() and time.monotonic() < end:
        await asyncio.sleep(0.01)
    return event.is_set()


@pytest.mark.parametrize("call", sorted(CALLS))
def test_cancellation_closes_the_connection(hanging: HangingServer, call: str) -> None:
    fetcher = local(deadline=30)

    async def scenario() -> bool:
        task = asyncio.create_task(CALLS[call](fetcher, hanging.url("/x")))
        assert await wait_for_event(hanging.requested)
        assert not hanging.closed.is_set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await wait_for_event(hanging.closed, 2.0)

    assert asyncio.run(scenario())
    assert fetcher._flights == {}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_deadline_closes_the_connection(hanging: HangingServer, call: str) -> None:
    fetcher = local(deadline=0.3)

    async def scenario() -> bool:
        with pytest.raises(FetchError, match="deadline"):
            await CALLS[call](fetcher, hanging.url("/x"))
        return await wait_for_event(hanging.closed, 2.0)

    assert asyncio.run(scenario())


# -- the back-channel sender ----------------------------------------------------------------------

def test_sender_through_the_fetcher_never_contacts_a_private_target(listener: Listener) -> None:
    sender = AsyncBackChannelSender.through(AsyncGuardedFetcher(), deadline=2.0)
    request = BackChannelLogoutRequest("c", f"https://127.0.0.1:{listener.port}/logout", "t")
    [result] = asyncio.run(sender([request]))
    assert (result.delivered, result.error, result.attempts) == (False, "FetchError", 2)
    time.sleep(0.1)
    assert listener.connections == 0


def test_sender_deadline_cancels_slow_deliveries_without_blocking_the_loop() -> None:
    """A relying party holding the POST for 30 s: the delivery returns at its deadline, the
    other relying party is served, and the loop keeps running all along."""
    with relying_party_servers((200, 30.0), (204, 0.0)) as (slow, fast):
        sender = AsyncBackChannelSender.through(local(deadline=30), deadline=0.5)
        requests = [BackChannelLogoutRequest("slow", slow.uri, "t1"),
                    BackChannelLogoutRequest("fast", fast.uri, "t2")]

        async def scenario() -> tuple[Any, float, LagProbe]:
            async with lag_probe() as probe:
                started = time.monotonic()
                results = await sender(requests)
                return results, time.monotonic() - started, probe

        def measure() -> float:
            results, elapsed, probe = asyncio.run(scenario())
            assert elapsed < 2
            assert [(r.client_id, r.delivered, r.status, r.error) for r in results] == [
                ("slow", False, None, "deadline"), ("fast", True, 204, None)]
            assert slow.received and fast.received
            return probe.max_gap

        gaps = smallest_gap(measure, MAX_LAG)
    assert min(gaps) < MAX_LAG, gaps


def test_sender_max_workers_bounds_requests_in_flight() -> None:
    """Six relying parties answering after 0.4 s, two at a time: three rounds."""
    with relying_party_servers(*[(200, 0.4)] * 6) as servers:
        sender = AsyncBackChannelSender.through(local(), deadline=10, max_workers=2)
        requests = [BackChannelLogoutRequest(f"rp{i}", s.uri, f"t{i}")
                    for i, s in enumerate(servers)]
        started = time.monotonic()
        results = asyncio.run(sender(requests))
        elapsed = time.monotonic() - started
    assert [r.client_id for r in results] == [f"rp{i}" for i in range(6)]
    assert all(r.delivered for r in results)
    assert 1.1 < elapsed < 3.5


def test_sender_many_requests_at_once_on_one_loop() -> None:
    with relying_party_servers(*[(200, 0.5)] * 12) as servers:
        sender = AsyncBackChannelSender.through(local(), deadline=10, max_workers=12)
        requests = [BackChannelLogoutRequest(f"rp{i}", s.uri, f"t{i}")
                    for i, s in enumerate(servers)]
        started = time.monotonic()
        results = asyncio.run(sender(requests))
        elapsed = time.monotonic() - started
    assert all(r.delivered for r in results)
    assert elapsed < 2.5  # twelve 0.5 s answers at once, not one after the other


def test_sender_with_nothing_to_send() -> None:
    sender = AsyncBackChannelSender.through(local())
    assert asyncio.run(sender([])) == []
