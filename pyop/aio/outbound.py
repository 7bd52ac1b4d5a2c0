"""Guarded outbound HTTP requests to URLs a client chose, for asyncio.

:class:`AsyncGuardedFetcher` is :class:`pyop.outbound.GuardedFetcher` with coroutines: the
same options, the same methods, the same results and :class:`~pyop.exceptions.FetchError`
reasons, the same guard (see :mod:`pyop.outbound`). The guard's decisions -- which URLs,
which addresses, which answers -- are the functions of :mod:`pyop.outbound` both fetchers
call; only the transport differs:

* the host is resolved with ``loop.getaddrinfo`` and its addresses checked before any
  connection; the connection goes to a checked address only, and its peer address is
  checked again (or, with a ``proxy``, a ``CONNECT`` tunnel is opened to the checked IP
  address);
* HTTP/1.1 and TLS are httpcore's (``httpcore.AsyncHTTPConnection`` over the network backend
  of this module, whose ``connect_tcp`` is the only way to the network; httpcore starts TLS
  with ``server_hostname`` set to the URL's host, so the certificate is verified for that
  name and SNI names it). httpcore was chosen over asyncio streams with h11 because it
  already provides everything but the connection itself -- request framing, response
  parsing, chunked bodies, TLS over anyio, the ``CONNECT`` exchange -- so this module only
  adds the guard; it reads no proxy setting from the environment, follows no redirect and
  decodes no compressed body (httpx, built on it, would do all three unless told not to);
* the deadline is one ``asyncio`` timeout around resolution, connecting, TLS, sending and
  every read: a server dripping its answer is cut off when it passes, and the connection
  closed; cancelling the caller closes the connection too;
* concurrent fetches of one document on one event loop share one request (single flight);
  a caller that stops waiting does not end it for the others, the last one does.

Nothing here blocks the event loop: name resolution runs in the loop's executor, sockets
and TLS are non-blocking.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import ssl
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import httpcore

from ..exceptions import FetchError
from ..outbound import (
    DEADLINE_PASSED,
    FetchPolicy,
    FetchResponse,
    RequestTarget,
    address_of,
    check_document_status,
    check_not_redirect,
    check_size,
    no_connection,
    parse_json_document,
    parse_request_url,
    request_failed,
    request_headers,
)

__all__ = ["AsyncGuardedFetcher"]

# httpcore's network backend runs on anyio, which imports its asyncio support at its first
# call (some 30 ms): done now, at import, rather than on the event loop in a first request.
try:
    importlib.import_module("anyio._backends._asyncio")
except ImportError:  # pragma: no cover - another anyio layout: it is imported at first use
    pass


def _root_cause(error: BaseException) -> BaseException:
    """The error under httpcore's own: httpcore wraps socket and TLS errors
    (``ConnectError`` from ``ConnectionRefusedError``, ``SSLCertVerificationError``...); a
    reason names what happened, as the synchronous fetcher's does."""
    while type(error).__module__.startswith("httpcore") and error.__cause__ is not None:
        error = error.__cause__
    return error


def _authority(address: str, port: int) -> bytes:
    return (f"[{address}]:{port}" if ":" in address else f"{address}:{port}").encode("ascii")


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's way to the network for one request: connects to the checked addresses
    of the target only, in the resolver's order until one connects, directly (and checks
    the peer) or through the configured proxy's ``CONNECT`` tunnel to the checked IP."""

    def __init__(self, policy: FetchPolicy, infos: list[tuple[Any, ...]]) -> None:
        self._policy = policy
        self._infos = infos
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: Optional[float] = None,
                          local_address: Optional[str] = None,
                          socket_options: Optional[Iterable[Any]] = None
                          ) -> httpcore.AsyncNetworkStream:
        # ``host`` is the URL's: it is only given to TLS (SNI, certificate check)
        last_error: Optional[BaseException] = None
        for info in self._infos:
            address = address_of(info[4]).compressed
            try:
                if self._policy.proxy is not None:
                    return await self._tunnel(self._policy.proxy, address, port)
                stream = await self._network.connect_tcp(address, port)
            except (OSError, httpcore.NetworkError, httpcore.ProtocolError,
                    httpcore.ProxyError) as e:  # this address (or the tunnel) failed: next
                last_error = _root_cause(e)
                continue
            try:
                self._policy.check_peer(stream.get_extra_info("server_addr"))
            except BaseException:
                await stream.aclose()
                raise
            return stream
        raise no_connection(last_error) from last_error

    async def _tunnel(self, proxy_address: tuple[str, int], address: str,
                      port: int) -> httpcore.AsyncNetworkStream:
        """A tunnel through the proxy to ``address`` (an IP literal, never a name the
        proxy would resolve again)."""
        proxy_host, proxy_port = proxy_address
        stream = await self._network.connect_tcp(proxy_host, proxy_port)
        proxy = httpcore.AsyncHTTP11Connection(
            httpcore.Origin(b"http", proxy_host.encode("idna"), proxy_port), stream)
        target = _authority(address, port)
        try:
            response = await proxy.handle_async_request(httpcore.Request(
                b"CONNECT", httpcore.URL(scheme=b"http", host=proxy_host.encode("idna"),
                                         port=proxy_port, target=target),
                headers=[(b"Host", target)]))
            if not 200 <= response.status < 300:
                raise httpcore.ProxyError(f"the proxy answered {response.status}")
        except BaseException:
            await proxy.aclose()
            raise
        tunnel: httpcore.AsyncNetworkStream = response.extensions["network_stream"]
        return tunnel

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Flight:
    """One document fetch the concurrent callers of a URL on one event loop wait for."""

    def __init__(self, task: asyncio.Task[bytes]) -> None:
        self.task = task
        self.waiters = 0


class AsyncGuardedFetcher(FetchPolicy):
    """Makes the provider's requests to URLs clients registered, as coroutines (see the
    module docstring); the options and their defaults are
    :class:`~pyop.outbound.GuardedFetcher`'s.
    """

    def _init_transport(self) -> None:
        self._flights: dict[tuple[asyncio.AbstractEventLoop, str, int], _Flight] = {}
        self._tls = self.ssl_context

    # -- the public operations ---------------------------------------------------------------------

    async def get_json(self, uri: str, *, max_size: Optional[int] = None) -> Any:
        """GET the JSON document at ``uri`` (a ``jwks_uri``, a ``sector_identifier_uri``);
        as :meth:`pyop.outbound.GuardedFetcher.get_json`.

        :returns: the parsed JSON (a new object for each caller).
        :raises FetchError: any failure.
        """
        return parse_json_document(await self.get(uri, max_size=max_size))

    __call__ = get_json

    async def get(self, uri: str, *, max_size: Optional[int] = None) -> bytes:
        """GET the document at ``uri`` and return its body (status 200 only), sharing one
        request among concurrent calls for the same URL on the running event loop.

        :raises FetchError: as :meth:`get_json`, JSON aside.
        """
        if not isinstance(uri, str):
            raise FetchError("the URL is not a string")
        limit = self.size_limit(max_size)
        loop = asyncio.get_running_loop()
        key = (loop, uri, limit)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight(loop.create_task(self._document(uri, limit)))

            def landed(task: asyncio.Task[bytes], key: Any = key) -> None:
                self._flights.pop(key, None)
                if not task.cancelled():
                    task.exception()  # given to the callers; none left is not an error

            flight.task.add_done_callback(landed)
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # every caller stopped waiting (cancelled): end the request and its connection
                flight.task.cancel()

    async def post_form(self, uri: str, form: Mapping[str, str], *,
                        headers: Optional[Mapping[str, str]] = None,
                        max_size: Optional[int] = None,
                        timeout: Optional[float] = None) -> FetchResponse:
        """POST ``form`` as ``application/x-www-form-urlencoded`` to ``uri`` (e.g. a logout
        token, OIDC Back-Channel Logout 1.0, 2.5); as
        :meth:`pyop.outbound.GuardedFetcher.post_form`.

        :param timeout: a shorter deadline for this request, in seconds.
        :returns: the status and the body of any answer but a redirect.
        :raises FetchError: a URL or address not allowed, no connection, a redirect, the
            deadline, an answer larger than ``max_size``.
        """
        body, sent_headers, limit, deadline = self.form_post(uri, form, headers, max_size,
                                                             timeout)
        return await self._request("POST", uri, body, sent_headers, limit, deadline)

    # -- one request -------------------------------------------------------------------------------

    async def _document(self, uri: str, max_size: int) -> bytes:
        response = await self._request("GET", uri, None, {"Accept": "application/json"},
                                       max_size, self.deadline)
        check_document_status(response.status)
        return response.body

    async def _request(self, method: str, uri: str, body: Optional[bytes],
                       headers: Mapping[str, str], max_size: int,
                       deadline: float) -> FetchResponse:
        url = parse_request_url(uri, self.allow_http)
        sent = request_headers(url, self.user_agent, headers)
        if body is not None:
            sent["Content-Length"] = str(len(body))
        try:
            return await asyncio.wait_for(self._exchange(method, url, body, sent, max_size),
                                          deadline)
        except FetchError:
            raise
        except asyncio.TimeoutError:
            raise FetchError(DEADLINE_PASSED) from None
        except Exception as e:  # noqa: BLE001 - any failure of the HTTP library,
            # the socket or the TLS layer is a fetch error, named by its type
            raise request_failed(_root_cause(e)) from e

    async def _tls_context(self) -> ssl.SSLContext:
        """The ``ssl_context``, else the default one, made once off the event loop (loading
        the system's trust store takes tens of milliseconds)."""
        if self._tls is None:
            context = await asyncio.get_running_loop().run_in_executor(
                None, ssl.create_default_context)
            self._tls = self._tls or context
        return self._tls

    async def _exchange(self, method: str, url: RequestTarget, body: Optional[bytes],
                        headers: dict[str, str], max_size: int) -> FetchResponse:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                url.host, url.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise FetchError("the host name could not be resolved") from e
        backend = _CheckedBackend(self, self.allowed_infos(infos))
        host = url.host.encode("idna")
        connection = httpcore.AsyncHTTPConnection(
            httpcore.Origin(url.scheme.encode("ascii"), host, url.port),
            ssl_context=await self._tls_context() if url.scheme == "https" else None,
            network_backend=backend)
        async with connection:
            response = await connection.handle_async_request(httpcore.Request(
                method.encode("ascii"),
                httpcore.URL(scheme=url.scheme.encode("ascii"), host=host, port=url.port,
                             target=url.target.encode("ascii")),
                headers=[(name.encode("latin-1"), value.encode("latin-1"))
                         for name, value in headers.items()],
                content=body or b""))
            try:
                check_not_redirect(response.status)
                content = bytearray()
                async for chunk in response.aiter_stream():
                    content += chunk
                    check_size(len(content), max_size)
            finally:
                await response.aclose()
        return FetchResponse(response.status, bytes(content))
