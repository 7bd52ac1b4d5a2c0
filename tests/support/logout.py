"""Helpers of the session and logout notification tests: clients with logout URIs, the
flows that give them grants, a transport over urllib and local relying party servers."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlencode

from pyop.message import AuthorizationResponse
from pyop.provider import Provider

ISSUER = "https://op.example.com"
RP_A = "rp-a"
RP_B = "rp-b"
RP_PLAIN = "rp-plain"
SECRET = "secret-of-the-rp"
USER = "alice"


def logout_clients(**overrides: dict[str, Any]) -> dict[str, Any]:
    """Three clients: ``rp-a`` requires ``sid`` on both channels, ``rp-b`` has logout URIs
    without requiring it, ``rp-plain`` has none."""
    def client(client_id: str, host: str, **extra: Any) -> dict[str, Any]:
        metadata = {
            "client_id": client_id, "client_secret": SECRET,
            "redirect_uris": [f"https://{host}/callback"],
            "response_types": ["code", "id_token", "code id_token"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "implicit", "refresh_token"],
        }
        metadata.update(extra)
        metadata.update(overrides.get(client_id, {}))
        return metadata

    return {
        RP_A: client(RP_A, "a.example", backchannel_logout_uri="https://a.example/bc",
                     backchannel_logout_session_required=True,
                     frontchannel_logout_uri="https://a.example/fc?x=1&y=a%20b",
                     frontchannel_logout_session_required=True),
        RP_B: client(RP_B, "b.example", backchannel_logout_uri="https://b.example/bc",
                     frontchannel_logout_uri="https://b.example/fc"),
        RP_PLAIN: client(RP_PLAIN, "plain.example"),
    }


def logout_configuration(**extra: Any) -> dict[str, Any]:
    config = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token",
        "end_session_endpoint": ISSUER + "/logout",
        "response_types_supported": ["code", "id_token", "code id_token"],
        "subject_types_supported": ["public", "pairwise"],
        "scopes_supported": ["openid", "offline_access"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
    }
    config.update(extra)
    return config


def authenticate(provider: Provider, client_id: str, *, session_id: Optional[str] = None,
                 response_type: str = "code", scope: str = "openid",
                 prompt: Optional[str] = None, user: str = USER) -> AuthorizationResponse:
    client = provider.clients[client_id]
    parameters = {"client_id": client_id, "redirect_uri": client["redirect_uris"][0],
                  "response_type": response_type, "scope": scope, "nonce": "n-0S6"}
    if prompt is not None:
        parameters["prompt"] = prompt
    request = provider.parse_authentication_request(urlencode(parameters))
    return provider.authorize(request, user, session_id=session_id)


def basic_auth(client_id: str) -> dict[str, str]:
    raw = f"{client_id}:{SECRET}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def exchange(provider: Provider, client_id: str, code: str) -> dict[str, Any]:
    client = provider.clients[client_id]
    body = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client["redirect_uris"][0]}
    return dict(provider.handle_token_request(urlencode(body), basic_auth(client_id)))


def refresh(provider: Provider, client_id: str, refresh_token: str) -> dict[str, Any]:
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return dict(provider.handle_token_request(urlencode(body), basic_auth(client_id)))


def unverified_claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def unverified_header(jwt: str) -> dict[str, Any]:
    header = jwt.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))))


class FakeTransport:
    """Records every POST; answers with ``status(uri)`` or raises what it returns."""

    def __init__(self, answer: Callable[[str], Any] = lambda uri: 200) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, str], float]] = []
        self._lock = threading.Lock()

    def __call__(self, uri: str, form: dict[str, str], timeout: float) -> int:
        with self._lock:
            self.calls.append((uri, dict(form), timeout))
        result = self.answer(uri)
        if isinstance(result, BaseException):
            raise result
        return int(result)

    @property
    def uris(self) -> list[str]:
        return [uri for uri, _, _ in self.calls]


def urllib_transport(uri: str, form: dict[str, str], timeout: float) -> int:
    """A test-only transport: a plain urllib POST (no address policy: loopback servers)."""
    if not uri.startswith("http://127.0.0.1:"):
        raise ValueError("the test transport reaches the local test servers only")
    request = urllib.request.Request(  # noqa: S310 - checked above
        uri, data=urlencode(form).encode("ascii"), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request,  # noqa: S310 - checked above
                                    timeout=max(timeout, 0.01)) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


class RelyingPartyServer:
    """A local back-channel logout endpoint: records the forms it receives, answers
    ``status`` after ``delay`` seconds (cut short when the server stops)."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.received: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("ascii")
                server.received.append((self.headers.get("Content-Type") or "",
                                        dict(parse_qsl(body))))
                if server.delay:
                    server.stopping.wait(server.delay)
                self.send_response(server.status)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/backchannel-logout"

    def start(self) -> RelyingPartyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def relying_party_servers(*specs: tuple[int, float]) -> Iterator[list[RelyingPartyServer]]:
    servers = [RelyingPartyServer(status, delay).start() for status, delay in specs]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


# -- the asyncio sender behind the synchronous sender's call ------------------------------------

def async_transport(transport: Callable[[str, dict[str, str], float], int]
                    ) -> Callable[[str, dict[str, str], float], Awaitable[int]]:
    """``transport`` for :class:`~pyop.aio.logout.AsyncBackChannelSender`: a
    :class:`FakeTransport` answers at once and is called on the loop; :func:`urllib_transport`
    becomes a POST through an :class:`~pyop.aio.outbound.AsyncGuardedFetcher` allowed to
    reach the local test servers (it does not block the event loop)."""
    from pyop.aio.outbound import AsyncGuardedFetcher

    if transport is urllib_transport:
        fetcher = AsyncGuardedFetcher(allowed_networks=["127.0.0.1/32"], allow_http=True)

        async def post(uri: str, form: dict[str, str], timeout: float) -> int:
            if not uri.startswith("http://127.0.0.1:"):
                raise ValueError("the test transport reaches the local test servers only")
            return (await fetcher.post_form(uri, form, timeout=timeout)).status
    else:
        async def post(uri: str, form: dict[str, str], timeout: float) -> int:
            return transport(uri, form, timeout)

    return post


class SyncSenderFacade:
    """An :class:`~pyop.aio.logout.AsyncBackChannelSender` called as a
    :class:`~pyop.logout_notifications.BackChannelSender` is (``sender(requests)``, also
    by a synchronous Provider), so one test body checks both senders."""

    def __init__(self, transport: Callable[[str, dict[str, str], float], int],
                 **options: Any) -> None:
        from pyop.aio.logout import AsyncBackChannelSender

        self.sender = AsyncBackChannelSender(async_transport(transport), **options)

    def __call__(self, requests: Any) -> Any:
        return asyncio.run(self.sender(requests))
