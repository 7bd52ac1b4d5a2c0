"""Requests to URLs a client registered (``jwks_uri``, ``sector_identifier_uri``): server-side
request forgery and resource bounds (pyop.outbound.GuardedFetcher; docs/security.rst,
"Requests to client URLs").

Real local servers record every connection they accept, so "refused" means "never contacted".
"""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Coroutine, Iterator
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pyop.aio.outbound import AsyncGuardedFetcher
from pyop.client_keys import ClientKeys
from pyop.crypto import b64url_encode
from pyop.exceptions import (
    FetchError,
    InvalidAuthenticationRequest,
    InvalidClientAuthentication,
    InvalidClientRegistrationRequest,
)
from pyop.outbound import ForbiddenAddress, GuardedFetcher, is_public_address
from pyop.provider import Provider

from .fetch_servers import (
    LOOPBACK,
    ConnectProxy,
    Listener,
    Server,
    drip,
    json_route,
    send,
)
from .helpers import CLIENT_ID, ISSUER, REDIRECT_URI, auth_params


def local(**options: Any) -> GuardedFetcher:
    """A fetcher allowing the loopback network explicitly, and plain http."""
    options.setdefault("allowed_networks", LOOPBACK)
    options.setdefault("allow_http", True)
    return GuardedFetcher(**options)


#: Builds a fetcher from GuardedFetcher's options.
Make = Callable[..., Any]


class SyncFacade:
    """An :class:`AsyncGuardedFetcher` with the synchronous fetcher's methods, so one test
    body checks both. Each call runs its coroutine on one event loop in a background thread:
    one loop for every calling thread, so concurrent callers share a flight as concurrent
    tasks on one loop do."""

    def __init__(self, fetcher: AsyncGuardedFetcher, loop: asyncio.AbstractEventLoop) -> None:
        self.fetcher = fetcher
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fetcher, name)  # the options, address_allowed

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def get_json(self, uri: str, **options: Any) -> Any:
        return self._run(self.fetcher.get_json(uri, **options))

    def get(self, uri: str, **options: Any) -> bytes:
        return self._run(self.fetcher.get(uri, **options))  # type: ignore[no-any-return]

    def post_form(self, uri: str, form: Any, **options: Any) -> Any:
        return self._run(self.fetcher.post_form(uri, form, **options))


@pytest.fixture(scope="module")
def background_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture(params=["sync", "async"])
def make_fetcher(request: pytest.FixtureRequest) -> Make:
    """GuardedFetcher, or AsyncGuardedFetcher behind a synchronous facade."""
    if request.param == "sync":
        return GuardedFetcher
    loop = request.getfixturevalue("background_loop")
    return lambda **options: SyncFacade(AsyncGuardedFetcher(**options), loop)


@pytest.fixture
def make_local(make_fetcher: Make) -> Make:
    """As :func:`local`, for both fetchers."""
    def make(**options: Any) -> Any:
        options.setdefault("allowed_networks", LOOPBACK)
        options.setdefault("allow_http", True)
        return make_fetcher(**options)

    return make


def patched_resolution(monkeypatch: pytest.MonkeyPatch, addresses: dict[str, list[str]]
                       ) -> None:
    """Resolve the given names to the given addresses (and nothing else)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in addresses:
            return real(host, port, *args, **kwargs)
        results = []
        for address in addresses[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr: tuple[Any, ...] = ((address, port, 0, 0) if family == socket.AF_INET6
                                         else (address, port))
            results.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return results

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# -- addresses ------------------------------------------------------------------------------------

NON_PUBLIC = [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3",  # noqa: S104 - not a binding
    "224.0.0.1", "233.252.0.1",
    "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.8", "192.0.2.1",
    "198.18.0.1", "198.51.100.7", "203.0.113.9", "192.88.99.1",
    "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "ff0e::1",
    "2001:db8::1", "2001::1", "2002:a00:1::1", "100::1", "64:ff9b:1::a00:1",
    # IPv4-mapped and IPv4-compatible forms, NAT64 embedding private IPv4 addresses
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:100.64.0.1",
    "::ffff:0.0.0.0", "::127.0.0.1", "::10.0.0.1", "::8.8.8.8",
    "64:ff9b::127.0.0.1", "64:ff9b::10.0.0.1", "64:ff9b::169.254.169.254",
    "64:ff9b::100.64.0.1", "64:ff9b::192.168.0.1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111",
          "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8"]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_ssrf_non_public_addresses_refused(make_fetcher: Make, address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))
    assert not make_fetcher().address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_ssrf_public_addresses_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_ssrf_allowed_networks_explicit(make_fetcher: Make) -> None:
    fetcher = make_fetcher(allowed_networks=["10.1.0.0/16"])
    assert fetcher.address_allowed(ipaddress.ip_address("10.1.2.3"))
    assert fetcher.address_allowed(ipaddress.ip_address("::ffff:10.1.2.3"))
    assert not fetcher.address_allowed(ipaddress.ip_address("10.2.0.1"))
    assert not fetcher.address_allowed(ipaddress.ip_address("127.0.0.1"))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::1]",
                                  "2130706433", "0x7f.1", "[::127.0.0.1]"])
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_ssrf_loopback_targets_never_contacted(make_fetcher: Make, listener: Listener, host: str,
                                               scheme: str) -> None:
    fetcher = make_fetcher(allow_http=True)
    with pytest.raises(FetchError):
        fetcher.get_json(f"{scheme}://{host}:{listener.port}/jwks")
    time.sleep(0.1)
    assert listener.connections == 0


@pytest.mark.parametrize("resolved", [["127.0.0.1"], ["10.0.0.1"], ["169.254.169.254"],
                                      ["::ffff:127.0.0.1"], ["64:ff9b::a00:1"],
                                      ["100.64.0.1"], ["0.0.0.0"], ["::1"]])  # noqa: S104
def test_ssrf_dns_names_resolving_to_private_addresses_refused(make_fetcher: Make,
        listener: Listener, monkeypatch: pytest.MonkeyPatch, resolved: list[str]) -> None:
    patched_resolution(monkeypatch, {"jwks.attacker.example": resolved})
    with pytest.raises(FetchError, match="no allowed address") as info:
        make_fetcher().get_json(f"https://jwks.attacker.example:{listener.port}/jwks")
    assert isinstance(info.value.__cause__, ForbiddenAddress)
    assert listener.connections == 0


def test_ssrf_only_checked_addresses_connected(make_fetcher: Make, server: Server,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolving to a forbidden and an allowed address: only the allowed one is
    connected to (the loopback server stands for the public address here)."""
    server.routes["/jwks"] = json_route({"keys": []})
    patched_resolution(monkeypatch, {"mixed.example": ["10.0.0.1", "127.0.0.1"]})
    fetcher = make_fetcher(allowed_networks=["127.0.0.1/32"], allow_http=True)
    assert fetcher.get_json(f"http://mixed.example:{server.port}/jwks") == {"keys": []}
    assert server.requests == [("GET", "/jwks", b"")]


def test_ssrf_default_fetcher_refuses_http(make_fetcher: Make, server: Server) -> None:
    with pytest.raises(FetchError, match="https"):
        make_fetcher(allowed_networks=LOOPBACK).get_json(server.url("/jwks"))
    assert server.connections == 0


@pytest.mark.parametrize("uri", ["ftp://rp.example.com/x", "file:///etc/passwd", "jwks",
                                 "https:///x", "https://user:pw@rp.example.com/x",
                                 "https://[::1/x", 42, ["https://rp.example.com/x"]])
def test_ssrf_bad_urls_refused_with_typed_error(make_fetcher: Make, uri: Any) -> None:
    with pytest.raises(FetchError):
        make_fetcher().get_json(uri)


# -- proxies --------------------------------------------------------------------------------------

def test_ssrf_environment_proxies_ignored(make_local: Make, server: Server, listener: Listener,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = f"http://127.0.0.1:{listener.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.routes["/jwks"] = json_route({"keys": []})
    assert make_local().get_json(server.url("/jwks")) == {"keys": []}
    assert listener.connections == 0
    assert server.requests == [("GET", "/jwks", b"")]


def test_ssrf_configured_proxy_tunnels_to_the_checked_address(make_local: Make,
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ConnectProxy()
    try:
        server.routes["/jwks"] = json_route({"keys": []})
        patched_resolution(monkeypatch, {"rp.internal.example": ["127.0.0.1"]})
        fetcher = make_local(proxy=f"http://127.0.0.1:{proxy.port}")
        assert fetcher.get_json(f"http://rp.internal.example:{server.port}/jwks") == {
            "keys": []}
        # the proxy is asked for the address the fetcher checked, never for the name
        assert proxy.lines == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.0"] or \
            proxy.lines == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"]
    finally:
        proxy.close()


def test_ssrf_configured_proxy_tls_end_to_end(make_local: Make, tls_server: Server,
        trusting: ssl.SSLContext,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ConnectProxy()
    try:
        tls_server.routes["/jwks"] = json_route({"keys": []})
        patched_resolution(monkeypatch, {"localhost": ["127.0.0.1"]})
        fetcher = make_local(proxy=f"http://127.0.0.1:{proxy.port}", ssl_context=trusting)
        # the certificate is checked for the URL's host name, through the tunnel
        assert fetcher.get_json(tls_server.url("/jwks", host="localhost")) == {"keys": []}
        assert [line.split()[1] for line in proxy.lines] == [f"127.0.0.1:{tls_server.port}"]
    finally:
        proxy.close()


def test_ssrf_configured_proxy_refusing_the_tunnel(make_local: Make, server: Server) -> None:
    proxy = ConnectProxy(refuse=403)
    try:
        server.routes["/jwks"] = json_route({"keys": []})
        with pytest.raises(FetchError, match="no connection could be made"):
            make_local(proxy=f"http://127.0.0.1:{proxy.port}").get_json(server.url("/jwks"))
        assert proxy.lines and server.connections == 0
    finally:
        proxy.close()


def test_ssrf_configured_proxy_not_asked_for_a_forbidden_target(make_fetcher: Make,
        listener: Listener) -> None:
    fetcher = make_fetcher(proxy=f"http://127.0.0.1:{listener.port}")
    with pytest.raises(FetchError, match="no allowed address"):
        fetcher.get_json("https://localhost:8443/jwks")
    assert listener.connections == 0


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "https://proxy.example:3128",
                                   "proxy.example"])
def test_ssrf_proxy_must_be_http(make_fetcher: Make, proxy: str) -> None:
    with pytest.raises(ValueError, match="proxy"):
        make_fetcher(proxy=proxy)


# -- redirects, deadline, size ---------------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_ssrf_redirects_refused(make_local: Make, server: Server, status: int) -> None:
    server.routes["/jwks"] = lambda h: send(h, status, headers={"Location": "/internal"})
    server.routes["/internal"] = json_route({"keys": []})
    with pytest.raises(FetchError, match=f"redirect refused.*{status}"):
        make_local().get_json(server.url("/jwks"))
    assert [path for _, path, _ in server.requests] == ["/jwks"]


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_resource_bounds_slow_drip_cut_at_the_deadline(make_local: Make, server: Server,
        in_headers: bool) -> None:
    server.routes["/jwks"] = lambda h: drip(h, in_headers=in_headers)
    start = time.monotonic()
    with pytest.raises(FetchError, match="deadline"):
        make_local(deadline=0.5).get_json(server.url("/jwks"))
    assert time.monotonic() - start < 5


def test_resource_bounds_slow_drip_cut_at_the_deadline_over_tls(make_local: Make,
        tls_server: Server, trusting: ssl.SSLContext) -> None:
    tls_server.routes["/jwks"] = lambda h: drip(h, in_headers=False)
    start = time.monotonic()
    with pytest.raises(FetchError, match="deadline"):
        make_local(deadline=0.5, ssl_context=trusting).get_json(tls_server.url("/jwks"))
    assert time.monotonic() - start < 5


def test_resource_bounds_silent_tls_handshake_cut_at_the_deadline(make_local: Make,
        listener: Listener) -> None:
    """A server that accepts and never answers the TLS handshake."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        start = time.monotonic()
        with pytest.raises(FetchError, match="deadline"):
            make_local(deadline=0.5).get_json(f"https://127.0.0.1:{silent.getsockname()[1]}/j")
        assert time.monotonic() - start < 5
    finally:
        silent.close()


def test_resource_bounds_size_cap(make_local: Make, server: Server) -> None:
    big = b'{"keys": [], "x": "' + b"a" * 100_000 + b'"}'
    server.routes["/jwks"] = lambda h: send(h, 200, big)
    with pytest.raises(FetchError, match="too large"):
        make_local().get_json(server.url("/jwks"))
    with pytest.raises(FetchError, match="too large"):
        make_local(max_size=1000).get_json(server.url("/jwks"))
    assert make_local().get_json(server.url("/jwks"), max_size=200_000)["keys"] == []


def test_resource_bounds_size_cap_without_content_length(make_local: Make, server: Server) -> None:
    def endless(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for _ in range(200):
                handler.wfile.write(b"a" * 4096)
        except OSError:
            pass

    server.routes["/jwks"] = endless
    with pytest.raises(FetchError, match="too large"):
        make_local().get_json(server.url("/jwks"))


@pytest.mark.parametrize("status", [404, 500, 204])
def test_documents_need_status_200(make_local: Make, server: Server, status: int) -> None:
    server.routes["/jwks"] = lambda h: send(h, status, b'{"keys": []}')
    with pytest.raises(FetchError, match=str(status)):
        make_local().get_json(server.url("/jwks"))


def test_fetch_error_never_carries_the_body(make_local: Make, server: Server,
                                            caplog: pytest.LogCaptureFixture) -> None:
    secret = b"internal-secret-0123456789"
    server.routes["/a"] = lambda h: send(h, 500, secret)
    server.routes["/b"] = lambda h: send(h, 200, b"<html>" + secret)
    for path in ("/a", "/b"):
        with pytest.raises(FetchError) as info:
            make_local().get_json(server.url(path))
        assert secret.decode() not in str(info.value)
        assert secret.decode() not in repr(info.value.__cause__)


# -- single flight --------------------------------------------------------------------------------

def test_resource_bounds_single_flight(make_local: Make, server: Server) -> None:
    body = json.dumps({"keys": []}).encode()

    def slow(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(0.5)
        send(handler, 200, body)

    server.routes["/jwks"] = slow
    fetcher = make_local()
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def fetch() -> None:
        barrier.wait()
        results.append(fetcher.get_json(server.url("/jwks")))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [{"keys": []}] * 8
    assert server.connections == 1
    results[0]["keys"].append("changed")  # each caller has its own object
    assert results[1] == {"keys": []}
    # nothing is kept once the fetch is over
    assert fetcher.get_json(server.url("/jwks")) == {"keys": []}
    assert server.connections == 2


def test_resource_bounds_single_flight_shares_the_error(make_local: Make, server: Server) -> None:
    def slow_error(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(0.5)
        send(handler, 500)

    server.routes["/jwks"] = slow_error
    fetcher = make_local()
    errors: list[str] = []
    barrier = threading.Barrier(6)

    def fetch() -> None:
        barrier.wait()
        try:
            fetcher.get_json(server.url("/jwks"))
        except FetchError as e:
            errors.append(e.reason)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 6 and len(set(errors)) == 1 and "500" in errors[0]
    assert server.connections == 1


# -- POST (back-channel delivery) ------------------------------------------------------------------

def test_post_form_guarded_identically(make_fetcher: Make, make_local: Make, server: Server,
        listener: Listener) -> None:
    server.routes["/logout"] = lambda h: send(h, 200, b"ok")
    response = make_local().post_form(server.url("/logout"), {"logout_token": "a.b.c"},
                                 headers={"Cache-Control": "no-store"})
    assert (response.status, response.body) == (200, b"ok")
    assert server.requests == [("POST", "/logout", b"logout_token=a.b.c")]
    server.routes["/moved"] = lambda h: send(h, 307, headers={"Location": "/logout"})
    with pytest.raises(FetchError, match="redirect"):
        make_local().post_form(server.url("/moved"), {"logout_token": "a.b.c"})
    server.routes["/error"] = lambda h: send(h, 400, b'{"error": "x"}')
    assert make_local().post_form(server.url("/error"), {}).status == 400
    with pytest.raises(FetchError):
        make_fetcher(allow_http=True).post_form(
            f"http://127.0.0.1:{listener.port}/logout", {"logout_token": "a.b.c"})
    assert listener.connections == 0


def test_tls_verified_for_the_host_name(make_local: Make, tls_server: Server,
        trusting: ssl.SSLContext) -> None:
    tls_server.routes["/jwks"] = json_route({"keys": []})
    assert make_local(ssl_context=trusting).get_json(tls_server.url("/jwks")) == {"keys": []}
    with pytest.raises(FetchError, match="SSL"):  # not trusted by the default context
        make_local().get_json(tls_server.url("/jwks"))


# -- sector_identifier_uri (OIDC Core 8.1) ---------------------------------------------------------

SECTOR_PATHS = {
    "ok": [REDIRECT_URI],
    "missing": ["https://other.example.com/cb"],
    "object": {"redirect_uris": [REDIRECT_URI]},
}


@pytest.fixture
def sector_server(tls_server: Server) -> Server:
    for name, document in SECTOR_PATHS.items():
        tls_server.routes["/" + name] = json_route(document)
    tls_server.routes["/redirect"] = lambda h: send(h, 302, headers={"Location": "/ok"})
    tls_server.routes["/big"] = lambda h: send(h, 200, b'["' + b"a" * 70_000 + b'"]')
    tls_server.routes["/html"] = lambda h: send(h, 200, b"<html>internal admin</html>")
    tls_server.routes["/error"] = lambda h: send(h, 500, b"internal stack trace")
    tls_server.routes["/slow"] = lambda h: drip(h, in_headers=False)
    return tls_server


def registration(uri: str, **members: Any) -> dict[str, Any]:
    return {"redirect_uris": [REDIRECT_URI], "sector_identifier_uri": uri, **members}


def test_oidc_core_8_1_uniform_sector_identifier_error(
        make_op: Callable[..., Provider], sector_server: Server, trusting: ssl.SSLContext,
        caplog: pytest.LogCaptureFixture, listener: Listener) -> None:
    """Whatever the URL did, the client gets one error; only the log says which."""
    op = make_op(outbound_fetcher=local(deadline=0.5, ssl_context=trusting))
    assert op.handle_client_registration_request(
        registration(sector_server.url("/ok"), subject_type="pairwise"))["client_id"]
    failing = [sector_server.url("/" + path) for path in
               ("missing", "object", "redirect", "big", "html", "error", "slow", "nothing")]
    failing.append(f"https://127.0.0.1:{listener.port}/closed")
    errors = set()
    logged = set()
    for uri in failing:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pyop"), \
                pytest.raises(InvalidClientRegistrationRequest) as info:
            op.handle_client_registration_request(registration(uri, subject_type="pairwise"))
        errors.add((info.value.oauth_error, str(info.value), info.value.to_json()))
        logged.add(" ".join(r.getMessage() for r in caplog.records))
    assert len(errors) == 1, errors
    assert "internal" not in next(iter(errors))[1]
    assert len(logged) >= 6  # the log tells the failures apart
    assert not any("internal" in line for line in logged)
    # the default fetcher refuses the loopback server itself: the same answer
    default_op = make_op()
    with pytest.raises(InvalidClientRegistrationRequest) as info:
        default_op.handle_client_registration_request(
            registration(sector_server.url("/ok"), subject_type="pairwise"))
    assert (info.value.oauth_error, str(info.value), info.value.to_json()) in errors


@pytest.mark.parametrize("subject_types, members", [
    (["public"], {}),
    (["public", "pairwise"], {}),
    (["public", "pairwise"], {"subject_type": "public"}),
], ids=["pairwise-unsupported", "not-requested", "public-requested"])
def test_oidc_core_8_1_sector_identifier_uri_fetched_only_for_pairwise(
        make_op: Callable[..., Provider], listener: Listener, subject_types: list[str],
        members: dict[str, Any]) -> None:
    from .helpers import security_configuration

    op = make_op(config=security_configuration(subject_types_supported=subject_types),
                 outbound_fetcher=local())
    uri = f"https://127.0.0.1:{listener.port}/sector.json"
    response = op.handle_client_registration_request(registration(uri, **members))
    assert response["sector_identifier_uri"] == uri  # stored: pyop 3 took a sector from it
    time.sleep(0.1)
    assert listener.connections == 0


def test_oidc_core_8_1_sector_identifier_uri_fetched_for_default_pairwise(
        make_op: Callable[..., Provider], listener: Listener) -> None:
    """pyop 3's default configuration: every client is pairwise unless it asks otherwise,
    so the document decides its ``sub`` and is verified."""
    from .helpers import security_configuration

    op = make_op(config=security_configuration(subject_types_supported=["pairwise", "public"]),
                 outbound_fetcher=local(deadline=0.5))
    with pytest.raises(InvalidClientRegistrationRequest):
        op.handle_client_registration_request(
            registration(f"https://127.0.0.1:{listener.port}/sector.json"))
    assert listener.connections == 1


def test_provider_outbound_fetcher_must_be_a_guarded_fetcher(
        make_op: Callable[..., Provider]) -> None:
    from pyop.exceptions import InvalidConfiguration

    with pytest.raises(InvalidConfiguration, match="outbound_fetcher"):
        make_op(outbound_fetcher=lambda uri: {})


@pytest.mark.sync_only  # calls the provider's internals outside a request
def test_provider_uses_the_outbound_fetcher_for_jwks_uri(
        make_op: Callable[..., Provider], server: Server,
        foreign_rsa_key: rsa.RSAPrivateKey) -> None:
    from pyop.keys import public_jwk

    server.routes["/jwks"] = json_route({"keys": [public_jwk(foreign_rsa_key)]})
    op = make_op(outbound_fetcher=local())
    assert op.outbound_fetcher.allowed_networks == (ipaddress.ip_network("127.0.0.0/8"),)
    keys, _ = op._context.client_keys.jwks("c", {"jwks_uri": server.url("/jwks")})
    assert keys is not None and keys[0]["n"] == public_jwk(foreign_rsa_key)["n"]
    default = make_op()
    keys, _ = default._context.client_keys.jwks("c", {"jwks_uri": server.url("/jwks")})
    assert keys is None
    assert server.connections == 1


# -- the jwks_uri cache (Resource bounds 1) -------------------------------------------------------

def rsa_jwk_members(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
            "n": b64url_encode(numbers.n.to_bytes(256, "big")),
            "e": b64url_encode(numbers.e.to_bytes(3, "big"))}


JUNK = [f"junk{index:05d}" for index in range(2000)]


def retained_by_cache(documents: Callable[[int], Any], clients: int = 1024,
                      **options: Any) -> tuple[int, ClientKeys]:
    """Bytes (tracemalloc) the cache keeps after ``clients`` distinct jwks_uri fetches."""
    keys = ClientKeys(lambda: 1000.0, lambda uri: documents(int(uri.rsplit("/", 1)[1])),
                      **options)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(clients):
            keys.jwks(f"client{index}", {"jwks_uri": f"https://rp{index}.example/{index}"})
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, keys


def test_resource_bounds_jwks_uri_cache_keeps_public_members_only(
        foreign_rsa_key: rsa.RSAPrivateKey) -> None:
    base = rsa_jwk_members(foreign_rsa_key)

    def clean(index: int) -> Any:
        jwk = dict(base, n=base["n"][:-1] + base["n"][-1:])  # a string of its own
        return {"keys": [jwk]}

    def junk(index: int) -> Any:
        jwk = dict(base, n=base["n"][:-1] + base["n"][-1:], x5c=["A" * 3000])
        jwk.update(dict.fromkeys(JUNK, index))
        return {"keys": [jwk], "extra": list(JUNK)}

    clean_size, _ = retained_by_cache(clean)
    junk_size, cache = retained_by_cache(junk)
    assert len(cache.cache) == 1024
    kept = cache.cache["https://rp7.example/7"][1]
    assert kept is not None and set(kept[0]) == {"kty", "kid", "use", "alg", "n", "e"}
    # measured: junk members cost nothing once cached (about 2.5 KB per RSA-2048 entry:
    # the members kept and the key built from them)
    assert junk_size < clean_size * 1.2
    assert junk_size < 1024 * 4096
    assert cache.retained_bytes <= cache.max_bytes


def test_resource_bounds_jwks_uri_cache_bounded_by_bytes(
        foreign_rsa_key: rsa.RSAPrivateKey) -> None:
    base = rsa_jwk_members(foreign_rsa_key)
    # 20 keys per document (the most used by default): about 50 KB kept per client
    document = {"keys": [dict(base, kid=f"k{i}") for i in range(20)]}
    size, cache = retained_by_cache(lambda index: json.loads(json.dumps(document)),
                                    clients=256, max_bytes=1024 * 1024)
    assert cache.retained_bytes <= 1024 * 1024
    assert len(cache.cache) < 256  # the oldest were dropped
    assert size < 1.5 * 1024 * 1024
    default_size, default_cache = retained_by_cache(
        lambda index: json.loads(json.dumps(document)), clients=256)
    assert default_cache.retained_bytes <= default_cache.max_bytes
    assert size < default_size


def test_resource_bounds_jwks_uri_cache_bounded_by_entries() -> None:
    _, cache = retained_by_cache(lambda index: {"keys": []}, clients=50, max_entries=10)
    assert list(cache.cache) == [f"https://rp{i}.example/{i}" for i in range(40, 50)]


# -- cheap checks before any fetch -----------------------------------------------------------------

@pytest.fixture
def ro_op(make_op: Callable[..., Provider]) -> Provider:
    """Request objects accepted (RS256, ES256)."""
    from .helpers import security_configuration

    return make_op(config=security_configuration(request_parameter_supported=True))


class CountingFetcher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, uri: str) -> Any:
        self.calls.append(uri)
        return {"keys": []}


def jws_with_header(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return ".".join([b64url_encode(json.dumps(header).encode()),
                     b64url_encode(json.dumps(claims).encode()), b64url_encode(b"sig")])


@pytest.mark.parametrize("request_object", [
    "not-a-jwt", "a.b", "a.b.c.d.e", "%%%.e30.c",
    jws_with_header({"alg": "HS256"}, {}),
    jws_with_header({"alg": "none"}, {}),
    jws_with_header({"alg": "RS256", "crit": ["x"]}, {}),
    jws_with_header({"typ": "JWT"}, {}),
], ids=["garbage", "two-parts", "jwe-like", "bad-base64", "hmac", "none", "crit", "no-alg"])
def test_rfc9101_request_object_refused_before_any_jwks_uri_fetch(
        ro_op: Provider, request_object: str) -> None:
    op = ro_op
    fetcher = CountingFetcher()
    op.jwks_fetcher = fetcher
    client = op.clients[CLIENT_ID]
    client.pop("jwks", None)
    client["jwks_uri"] = "https://rp.example.com/jwks"
    op.clients[CLIENT_ID] = client
    params = auth_params(request=request_object)
    from urllib.parse import urlencode

    with pytest.raises(InvalidAuthenticationRequest):
        op.parse_authentication_request(urlencode(params))
    assert fetcher.calls == []


def test_rfc9101_request_object_with_acceptable_header_looks_keys_up(ro_op: Provider) -> None:
    """The control of the test above: the same client, a header naming RS256."""
    op = ro_op
    from urllib.parse import urlencode

    fetcher = CountingFetcher()
    op.jwks_fetcher = fetcher
    client = op.clients[CLIENT_ID]
    client.pop("jwks", None)
    client["jwks_uri"] = "https://rp.example.com/jwks"
    op.clients[CLIENT_ID] = client
    request_object = jws_with_header({"alg": "RS256"}, {"iss": CLIENT_ID})
    with pytest.raises(InvalidAuthenticationRequest):
        op.parse_authentication_request(urlencode(auth_params(request=request_object)))
    assert fetcher.calls == ["https://rp.example.com/jwks"]


@pytest.mark.parametrize("header, claims", [
    ({"alg": "RS256"}, {"iss": "someone-else", "sub": "someone-else"}),
    ({"alg": "RS256"}, {"iss": CLIENT_ID, "sub": "other"}),
    ({"alg": "none"}, {"iss": CLIENT_ID, "sub": CLIENT_ID}),
    ({"alg": "HS256"}, {"iss": CLIENT_ID, "sub": CLIENT_ID}),
], ids=["iss-not-client", "sub-not-iss", "none", "hmac-for-private-key-jwt"])
def test_rfc7523_3_client_assertion_refused_before_any_jwks_uri_fetch(
        op: Provider, header: dict[str, Any], claims: dict[str, Any]) -> None:
    fetcher = CountingFetcher()
    op.jwks_fetcher = fetcher
    client = op.clients[CLIENT_ID]
    client.pop("jwks", None)
    client.update(jwks_uri="https://rp.example.com/jwks",
                  token_endpoint_auth_method="private_key_jwt")
    op.clients[CLIENT_ID] = client
    claims = dict(claims, aud=ISSUER + "/token", exp=int(time.time()) + 60, jti="j1")
    with pytest.raises(InvalidClientAuthentication):
        op._context.client_assertion_verifier.verify(
            jws_with_header(header, claims), op.clients, audiences=[ISSUER + "/token"],
            now=time.time(), client_id=CLIENT_ID)
    assert fetcher.calls == []


def test_rfc7523_3_client_assertion_passing_cheap_checks_looks_keys_up(op: Provider) -> None:
    """The control of the test above: iss = sub = the client, RS256."""
    fetcher = CountingFetcher()
    op.jwks_fetcher = fetcher
    client = op.clients[CLIENT_ID]
    client.pop("jwks", None)
    client.update(jwks_uri="https://rp.example.com/jwks",
                  token_endpoint_auth_method="private_key_jwt")
    op.clients[CLIENT_ID] = client
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER + "/token",
              "exp": int(time.time()) + 60, "jti": "j1"}
    with pytest.raises(InvalidClientAuthentication):
        op._context.client_assertion_verifier.verify(
            jws_with_header({"alg": "RS256"}, claims), op.clients,
            audiences=[ISSUER + "/token"], now=time.time(), client_id=CLIENT_ID)
    assert fetcher.calls == ["https://rp.example.com/jwks"]


def test_post_form_timeout_shortens_the_deadline(make_local: Make, server: Server) -> None:
    """The back-channel sender passes the time it has left."""
    server.routes["/logout"] = lambda h: drip(h, in_headers=True)
    start = time.monotonic()
    with pytest.raises(FetchError, match="deadline"):
        make_local(deadline=30).post_form(server.url("/logout"), {"logout_token": "t"},
                                     timeout=0.5)
    assert time.monotonic() - start < 5
    with pytest.raises(FetchError, match="deadline"):
        make_local().post_form(server.url("/logout"), {"logout_token": "t"}, timeout=0)


def test_backchannel_sender_through_the_guarded_fetcher(make_fetcher: Make, server: Server,
                                                        listener: Listener) -> None:
    """The transport of docs/logout.rst: a private target is never contacted."""
    from pyop.logout_notifications import BackChannelLogoutRequest, BackChannelSender

    fetcher = make_fetcher()

    def transport(uri: str, form: dict[str, str], timeout: float) -> int:
        return fetcher.post_form(uri, form, timeout=timeout).status

    sender = BackChannelSender(transport, deadline=2.0, attempts=1)
    request = BackChannelLogoutRequest(
        client_id="c", uri=f"https://127.0.0.1:{listener.port}/logout", logout_token="t")
    results = sender([request])
    assert len(results) == 1 and not results[0].delivered
    assert results[0].error == "FetchError"
    assert listener.connections == 0
