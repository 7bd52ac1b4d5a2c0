"""Why fastapi_app.py calls pyop through the thread pool, and fastapi_async_app.py
awaits pyop.aio: a measurement.

The user directory takes 200 ms per lookup (a slow LDAP server, a remote database).
Eight UserInfo requests arrive at once, and, 50 ms later, a request for the JWK Set,
which needs no lookup. Three applications answer them on one event loop:

``direct``
    an ``async def`` UserInfo endpoint that calls ``provider.handle_userinfo_request()``
    directly: each lookup blocks the event loop, so the requests are served one after
    the other and the JWK Set request waits for them.
``threadpool``
    the endpoint of ``fastapi_app.py``, which calls pyop through
    ``starlette.concurrency.run_in_threadpool``: the lookups wait in worker threads
    while the event loop answers the JWK Set request at once.
``async``
    the endpoint of ``fastapi_async_app.py``: ``await provider.handle_userinfo_request()``
    on :class:`pyop.aio.AsyncProvider`, with a user directory whose lookup is a coroutine
    (``await asyncio.sleep(0.2)`` standing for an async database query): the lookups
    wait on the event loop, no thread involved.

Run ``python docs/examples/fastapi_threadpool.py`` from the repository root to print the
figures; tests/test_docs_examples.py checks the difference with wide margins.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from fastapi import FastAPI, Request
from fastapi.responses import Response

from pyop.exceptions import BearerTokenError
from pyop.provider import Provider

ISSUER = "https://op.example.com"
CLIENT_ID = "rp"
CLIENT_SECRET = "a long random secret of the rp"
REDIRECT_URI = "https://rp.example.com/callback"
CLIENTS = {CLIENT_ID: {"client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI],
                       "response_types": ["code"]}}


class SlowDirectory(dict[str, Any]):
    """A user directory that takes ``delay`` seconds per lookup (blocking, as a
    synchronous LDAP or database client does)."""

    def __init__(self, users: dict[str, Any], delay: float) -> None:
        super().__init__(users)
        self.delay = delay

    def get(self, key: str, default: Any = None) -> Any:
        time.sleep(self.delay)
        return super().get(key, default)


# [direct]
def direct_app(provider: Provider) -> FastAPI:
    """The mistake: pyop called directly from ``async def`` endpoints."""
    app = FastAPI()

    @app.get("/userinfo")
    async def userinfo(request: Request) -> Response:
        try:  # blocks the event loop for as long as pyop and the user directory take
            response = provider.handle_userinfo_request(request.scope["query_string"],
                                                        request.headers)
        except BearerTokenError as e:
            return Response(e.to_json(), e.http_status, media_type="application/json")
        return Response(response.to_body(), media_type=response.content_type)

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        return provider.jwks

    return app
# [/direct]


def access_token_for(provider: Provider, user_id: str) -> str:
    """An access token of ``user_id``, through a code flow with pyop's API."""
    query = urlencode({"response_type": "code", "client_id": CLIENT_ID,
                       "redirect_uri": REDIRECT_URI, "scope": "openid profile",
                       "nonce": "n"})
    authn_req = provider.parse_authentication_request(query)
    redirect = provider.authorize(authn_req, user_id).request(REDIRECT_URI)
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    tokens = provider.handle_token_request(
        urlencode({"grant_type": "authorization_code", "code": code,
                   "redirect_uri": REDIRECT_URI}),
        {"Authorization": "Basic " + credentials})
    value: str = tokens["access_token"]
    return value


async def async_access_token_for(provider: Any, user_id: str) -> str:
    """An access token of ``user_id``, through a code flow with pyop.aio's API."""
    query = urlencode({"response_type": "code", "client_id": CLIENT_ID,
                       "redirect_uri": REDIRECT_URI, "scope": "openid profile",
                       "nonce": "n"})
    authn_req = await provider.parse_authentication_request(query)
    redirect = (await provider.authorize(authn_req, user_id)).request(REDIRECT_URI)
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    tokens = await provider.handle_token_request(
        urlencode({"grant_type": "authorization_code", "code": code,
                   "redirect_uri": REDIRECT_URI}),
        {"Authorization": "Basic " + credentials})
    value: str = tokens["access_token"]
    return value


@dataclass
class Timing:
    """Seconds from the start of a run."""

    total: float  #: until every request was answered
    slow_answered: list[float]  #: when each UserInfo request was answered
    fast_sent: float  #: when the JWK Set request was due
    fast_answered: float  #: when it was answered

    @property
    def fast_latency(self) -> float:
        return self.fast_answered - self.fast_sent


async def measure(app: Any, access_token: str, concurrent: int = 8,
                  fast_after: float = 0.05) -> Timing:
    """``concurrent`` UserInfo requests at once and, ``fast_after`` seconds later, one
    JWK Set request, all on one event loop (as one uvicorn worker serves them)."""
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url=ISSUER) as client:
        start = time.perf_counter()

        async def slow() -> float:
            response = await client.get("/userinfo",
                                        headers={"Authorization": "Bearer " + access_token})
            response.raise_for_status()
            return time.perf_counter() - start

        async def fast() -> float:
            # due at fast_after; a blocked event loop starts it late, as it would read
            # the request from its socket late
            await asyncio.sleep(fast_after)
            response = await client.get("/jwks")
            response.raise_for_status()
            return time.perf_counter() - start

        *slow_answered, fast_answered = await asyncio.gather(
            *(slow() for _ in range(concurrent)), fast())
        return Timing(time.perf_counter() - start, list(slow_answered), fast_after,
                      fast_answered)


async def measure_async(examples: dict[str, ModuleType], signing_key_file: str,
                        users: dict[str, Any], delay: float, concurrent: int) -> Timing:
    """The ``async`` application: an AsyncProvider, created on the loop that serves it,
    whose user directory awaits ``delay`` seconds per lookup."""
    async_app = examples["fastapi_async_app"]

    async def slow_lookup(user_id: str) -> Any:
        await asyncio.sleep(delay)  # an async database or directory query
        return users.get(user_id)

    async def no_login(username: str, password: str) -> None:
        return None

    provider = await async_app.make_async_provider(
        ISSUER, signing_key_file, async_app.UserDirectory(slow_lookup),
        sub_hash_salt="a salt for the measurement", clients=CLIENTS)
    access_token = await async_access_token_for(provider, "alice")
    app = async_app.create_app(provider, no_login, "a session secret")
    return await measure(app, access_token, concurrent)


def run(examples: dict[str, ModuleType], signing_key_file: str, delay: float = 0.2,
        concurrent: int = 8) -> dict[str, Timing]:
    """The three applications, with the same slow directory (blocking for the
    synchronous provider, a coroutine for the async one)."""
    users = {"alice": {"name": "Alice Liddell"}}
    directory = SlowDirectory(users, delay)
    provider: Provider = examples["provider_setup"].make_provider(
        ISSUER, signing_key_file, directory, sub_hash_salt="a salt for the measurement",
        clients=CLIENTS)
    access_token = access_token_for(provider, "alice")
    apps = {"direct": direct_app(provider),
            "threadpool": examples["fastapi_app"].create_app(
                provider, lambda username, password: None, "a session secret")}
    timings = {name: asyncio.run(measure(app, access_token, concurrent))
               for name, app in apps.items()}
    timings["async"] = asyncio.run(measure_async(examples, signing_key_file, users, delay,
                                                 concurrent))
    return timings


if __name__ == "__main__":  # python docs/examples/fastapi_threadpool.py
    import importlib.util
    from pathlib import Path

    from pyop.keys import generate_signing_key, write_private_key

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    examples = {}
    for name in ("provider_setup", "fastapi_app", "fastapi_async_app"):
        spec = importlib.util.spec_from_file_location(name, here / f"{name}.py")
        if spec is None or spec.loader is None:
            raise SystemExit(f"{name}.py not found beside this script")
        examples[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(examples[name])
    with tempfile.TemporaryDirectory() as directory:
        key_file = os.path.join(directory, "signing_key.pem")
        write_private_key(generate_signing_key(), key_file)
        timings = run(examples, key_file)
    for name, timing in timings.items():
        print(f"{name:>10}: 8 UserInfo requests answered in {timing.total:.2f} s "
              f"(first after {min(timing.slow_answered):.2f} s); "
              f"the JWK Set request waited {timing.fast_latency:.3f} s")
    for name in ("threadpool", "async"):
        ratio = timings["direct"].total / timings[name].total
        latency = timings["direct"].fast_latency / timings[name].fast_latency
        print(f"direct / {name}: {ratio:.1f}x the total time, "
              f"{latency:.0f}x the JWK Set latency")
    ratio = timings["threadpool"].total / timings["async"].total
    latency = timings["threadpool"].fast_latency / timings["async"].fast_latency
    print(f"threadpool / async: {ratio:.2f}x the total time, "
          f"{latency:.1f}x the JWK Set latency")
