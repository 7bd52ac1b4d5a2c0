"""Why fastapi_app.py calls pyop through the thread pool: a measurement.

The user directory takes 200 ms per lookup (a slow LDAP server, a remote database).
Eight UserInfo requests arrive at once, and, 50 ms later, a request for the JWK Set,
which needs no lookup. Two applications answer them on one event loop:

``direct``
    an ``async def`` UserInfo endpoint that calls ``provider.handle_userinfo_request()``
    directly: each lookup blocks the event loop, so the requests are served one after
    the other and the JWK Set request waits for them.
``threadpool``
    the endpoint of ``fastapi_app.py``, which calls pyop through
    ``starlette.concurrency.run_in_threadpool``: the lookups wait in worker threads
    while the event loop answers the JWK Set request at once.

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


def run(examples: dict[str, ModuleType], signing_key_file: str, delay: float = 0.2,
        concurrent: int = 8) -> dict[str, Timing]:
    """Both applications, on the same provider and slow directory."""
    directory = SlowDirectory({"alice": {"name": "Alice Liddell"}}, delay)
    provider: Provider = examples["provider_setup"].make_provider(
        ISSUER, signing_key_file, directory, sub_hash_salt="a salt for the measurement",
        clients={CLIENT_ID: {"client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI],
                             "response_types": ["code"]}})
    access_token = access_token_for(provider, "alice")
    apps = {"direct": direct_app(provider),
            "threadpool": examples["fastapi_app"].create_app(
                provider, lambda username, password: None, "a session secret")}
    return {name: asyncio.run(measure(app, access_token, concurrent))
            for name, app in apps.items()}


if __name__ == "__main__":  # python docs/examples/fastapi_threadpool.py
    import importlib.util
    from pathlib import Path

    from pyop.keys import generate_signing_key, write_private_key

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    examples = {}
    for name in ("provider_setup", "fastapi_app"):
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
    ratio = timings["direct"].total / timings["threadpool"].total
    latency = timings["direct"].fast_latency / timings["threadpool"].fast_latency
    print(f"direct / threadpool: {ratio:.1f}x the total time, "
          f"{latency:.0f}x the JWK Set latency")
