"""Guarded outbound HTTP requests to URLs a client chose.

A client registers URLs the provider fetches (``jwks_uri``, ``sector_identifier_uri``:
OIDC Dynamic Registration 2, OIDC Core 8.1) or posts to (``backchannel_logout_uri``: OIDC
Back-Channel Logout 1.0, 2.8). Such a URL may point anywhere the provider can reach: the
loopback interface, the private network, a cloud metadata service (server-side request
forgery), or a server that answers slowly and endlessly. Every such request goes through one
:class:`GuardedFetcher`, which:

* connects only to addresses it checked: it resolves the host itself, refuses every address
  that is not public unicast (see :func:`is_public_address`) unless an allowed network of the
  host contains it, and connects to the checked address (so DNS rebinding cannot slip
  another address in between); the peer address of the connected socket is checked again;
* speaks https only, unless the host allows http;
* never reads proxy settings from the environment (``HTTP(S)_PROXY``, ``NO_PROXY``); a proxy
  is used only when configured, and then the tunnel is opened to the checked address (an
  IP literal in ``CONNECT``), never to a name the proxy would resolve again;
* never follows a redirect (a 3xx answer is an error saying so);
* bounds each request by a total deadline (name resolution aside: connecting, TLS, sending
  and every read together; a server that drips its answer is cut off when it passes) and
  the size of the answer;
* shares one request among concurrent identical document fetches (single flight);
* reports every failure as :class:`~pyop.exceptions.FetchError`, whose reason is safe to log
  (it never contains the answer's body).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import urlencode, urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import parse_url

from .exceptions import FetchError

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_SIZE",
    "FetchResponse",
    "ForbiddenAddress",
    "GuardedFetcher",
    "fetch_jwks",
    "is_public_address",
]

logger = logging.getLogger(__name__)

#: Seconds one request may take in total (connect, TLS, send, every read).
DEFAULT_DEADLINE = 5.0
#: Bytes an answer's body may have.
DEFAULT_MAX_SIZE = 64 * 1024

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: IPv4 networks that are not public unicast (RFC 6890 and its updates), whatever the
#: Python version's ``ipaddress`` thinks of them.
_NON_PUBLIC_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",        # "this network" (RFC 791), 0.0.0.0 unspecified
    "10.0.0.0/8",       # private (RFC 1918)
    "100.64.0.0/10",    # shared address space, CGNAT (RFC 6598)
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local, cloud metadata services
    "172.16.0.0/12",    # private
    "192.0.0.0/24",     # IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",     # documentation (RFC 5737)
    "192.88.99.0/24",   # 6to4 relay anycast (deprecated, RFC 7526)
    "192.168.0.0/16",   # private
    "198.18.0.0/15",    # benchmarking (RFC 2544)
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",   # documentation
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, and 255.255.255.255 broadcast
))

#: IPv6 networks that are not public unicast. IPv4-mapped addresses (``::ffff:0:0/96``)
#: and the NAT64 well-known prefix (``64:ff9b::/96``, RFC 6052) are judged by the IPv4
#: address they embed instead.
_NON_PUBLIC_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",            # unspecified, loopback, IPv4-compatible (deprecated, RFC 4291 2.5.5.1)
    "64:ff9b:1::/48",   # local-use NAT64 (RFC 8215)
    "100::/64",         # discard-only (RFC 6666)
    "2001::/23",        # IETF protocol assignments (Teredo, ORCHID, ...; RFC 2928)
    "2001:db8::/32",    # documentation (RFC 3849)
    "2002::/16",        # 6to4 (deprecated, RFC 7526): embeds any IPv4 address
    "3fff::/20",        # documentation (RFC 9637)
    "5f00::/16",        # segment routing SIDs (RFC 9602)
    "fc00::/7",         # unique local (RFC 4193)
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated)
    "ff00::/8",         # multicast
))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address the provider may connect to.

    Refused: loopback, private, link-local, shared (CGNAT ``100.64.0.0/10``), multicast,
    reserved, documentation and benchmarking ranges, unspecified and ``0.0.0.0/8``; and in
    IPv6 also unique-local, site-local, IPv4-compatible and 6to4 addresses. An
    IPv4-mapped address (``::ffff:a.b.c.d``) and a NAT64 well-known-prefix address
    (``64:ff9b::a.b.c.d``) are judged by the IPv4 address they embed.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(address in network for network in _NON_PUBLIC_V6):
            return False
    elif any(address in network for network in _NON_PUBLIC_V4):
        return False
    return bool(address.is_global) and not address.is_multicast


class ForbiddenAddress(OSError):
    """A request would reach a loopback, private or otherwise non-public address."""


@dataclass(frozen=True)
class FetchResponse:
    """The answer to :meth:`GuardedFetcher.post_form`: the HTTP status and the body
    (at most the fetcher's size limit)."""

    status: int
    body: bytes


#: The reason of every :class:`~pyop.exceptions.FetchError` raised at the deadline.
DEADLINE_PASSED = "the deadline passed"


@dataclass(frozen=True)
class RequestTarget:
    """What a request URL says, once :func:`parse_request_url` accepted it."""

    scheme: str
    #: The host name or IP literal (without brackets), for resolution and TLS (SNI).
    host: str
    port: int
    #: The request target: path and query.
    target: str
    #: The ``Host`` header: the URL's authority.
    host_header: str


def parse_request_url(uri: Any, allow_http: bool) -> RequestTarget:
    """Parse a URL the provider is asked to fetch: https (or http when ``allow_http``), a
    host, no credentials; the port defaults to the scheme's.

    :raises FetchError: any other URL.
    """
    if not isinstance(uri, str):
        raise FetchError("the URL is not a string")
    not_allowed = ("the URL is not an https URL" if not allow_http
                   else "the URL is not an http(s) URL")
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise FetchError(not_allowed) from None
    if parts.scheme not in (("https", "http") if allow_http else ("https",)) or not host:
        raise FetchError(not_allowed)
    if parts.username is not None or parts.password is not None:
        raise FetchError("the URL must not carry credentials")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return RequestTarget(parts.scheme, host, port or (443 if parts.scheme == "https" else 80),
                         target, parts.netloc.rpartition("@")[2])


def request_headers(target: RequestTarget, user_agent: str,
                    headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a request: ``Host``, ``User-Agent``, no compression, then ``headers``."""
    return {"Host": target.host_header, "User-Agent": user_agent,
            "Accept-Encoding": "identity", **headers}


def form_request(form: Mapping[str, str], headers: Optional[Mapping[str, str]]
                 ) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a form POST (``application/x-www-form-urlencoded``)."""
    sent_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    sent_headers.update(headers or {})
    return urlencode(dict(form)).encode("utf-8"), sent_headers


def check_not_redirect(status: int) -> None:
    """:raises FetchError: a 3xx answer (redirects are never followed)."""
    if 300 <= status < 400:
        raise FetchError(f"redirect refused (the server answered {status})")


def check_size(size: int, max_size: int) -> None:
    """:raises FetchError: a body of more than ``max_size`` bytes."""
    if size > max_size:
        raise FetchError(f"the answer is too large (over {max_size} bytes)")


def check_document_status(status: int) -> None:
    """:raises FetchError: a document answer other than 200."""
    if status != 200:
        raise FetchError(f"the server answered {status}, not 200")


def parse_json_document(body: bytes) -> Any:
    """The JSON document ``body``.

    :raises FetchError: not JSON (the reason does not quote it).
    """
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FetchError("the document is not JSON") from None


def request_failed(error: BaseException) -> FetchError:
    """The error for a failure of the transport (HTTP library, socket, TLS), named by its
    type only."""
    return FetchError(f"the request failed ({type(error).__name__})")


def no_connection(last_error: Optional[BaseException]) -> FetchError:
    """The error when no checked address could be connected to."""
    reason = f" ({type(last_error).__name__})" if last_error is not None else ""
    return FetchError("no connection could be made" + reason)


def address_of(sockaddr: Any) -> IPAddress:
    """The IP address of a socket address (``getaddrinfo``, ``getpeername``), without an
    IPv6 zone."""
    return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])


class FetchPolicy:
    """The options and the address rules of a guarded fetcher (:class:`GuardedFetcher`,
    :class:`pyop.aio.outbound.AsyncGuardedFetcher`); the transport is theirs.

    The parameters are :class:`GuardedFetcher`'s.
    """

    def __init__(self, *, deadline: float = DEFAULT_DEADLINE, max_size: int = DEFAULT_MAX_SIZE,
                 allowed_networks: Iterable[Union[str, IPNetwork]] = (),
                 allow_http: bool = False, proxy: Optional[str] = None,
                 ssl_context: Optional[ssl.SSLContext] = None,
                 user_agent: str = "pyop") -> None:
        if not isinstance(deadline, (int, float)) or isinstance(deadline, bool) or deadline <= 0:
            raise ValueError("deadline must be a positive number of seconds")
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0:
            raise ValueError("max_size must be a positive number of bytes")
        self.deadline = float(deadline)
        self.max_size = max_size
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(network) for network in allowed_networks)
        self.allow_http = bool(allow_http)
        self.proxy: Optional[tuple[str, int]] = None
        if proxy is not None:
            parsed = parse_url(proxy)
            if parsed.scheme != "http" or not parsed.host:
                raise ValueError("proxy must be an http://host:port URL")
            self.proxy = (parsed.host.strip("[]"), parsed.port or 80)
        self.ssl_context = ssl_context
        self.user_agent = user_agent
        self._init_transport()

    def _init_transport(self) -> None:
        """Set up the transport's own state (called last by the constructor)."""

    def form_post(self, uri: Any, form: Mapping[str, str], headers: Optional[Mapping[str, str]],
                  max_size: Optional[int], timeout: Optional[float]
                  ) -> tuple[bytes, dict[str, str], int, float]:
        """The body, headers, size limit and deadline of a ``post_form`` request.

        :raises FetchError: ``uri`` is not a string.
        """
        limit = self.size_limit(max_size)
        body, sent_headers = form_request(form, headers)
        if not isinstance(uri, str):
            raise FetchError("the URL is not a string")
        return body, sent_headers, limit, self.post_deadline(timeout)

    def address_allowed(self, address: IPAddress) -> bool:
        """Whether a request may go to ``address``: public unicast, or in an allowed network."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        for candidate in candidates:
            if any(candidate in network for network in self.allowed_networks
                   if network.version == candidate.version):
                return True
        return is_public_address(address)

    def allowed_infos(self, infos: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The ``getaddrinfo`` results whose address is allowed, in the resolver's order.

        :raises FetchError: none is (its cause a :class:`ForbiddenAddress`).
        """
        allowed = [info for info in infos if self.address_allowed(address_of(info[4]))]
        if not allowed:
            raise FetchError("the host resolves to no allowed address") from ForbiddenAddress(
                "non-public address")
        return allowed

    def check_peer(self, sockaddr: Any) -> None:
        """Check the peer address of a connected socket again.

        :raises FetchError: it is not allowed."""
        if not self.address_allowed(address_of(sockaddr)):
            raise FetchError("connected to an address that is not allowed") from (
                ForbiddenAddress("non-public address"))

    def size_limit(self, max_size: Optional[int]) -> int:
        """The size limit of a call: its own, else the fetcher's."""
        return self.max_size if max_size is None else max_size

    def post_deadline(self, timeout: Optional[float]) -> float:
        """The deadline of a POST given the caller's ``timeout`` (never longer than the
        fetcher's).

        :raises FetchError: no time left."""
        deadline = self.deadline if timeout is None else min(self.deadline, timeout)
        if deadline <= 0:
            raise FetchError(DEADLINE_PASSED)
        return deadline


class _Flight:
    """One document fetch that concurrent callers of the same URL wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.body: Optional[bytes] = None
        self.reason: Optional[str] = None


class _Attempt:
    """The state of one request: its deadline, and the watchdog ending it there."""

    def __init__(self, deadline: float) -> None:
        self.ends_at = time.monotonic() + deadline
        self.expired = False
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self._timer: Optional[threading.Timer] = None

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            self.expired = True
            raise FetchError(DEADLINE_PASSED)
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut the connection down when the deadline passes, whatever is blocked on it.

        A duplicate of the descriptor is kept: ``shutdown`` acts on the connection, so it
        also ends a TLS handshake or read on the socket that wraps the original."""
        with self._lock:
            self._handles.append(sock.dup())
            if self._timer is None:
                self._timer = threading.Timer(max(0.0, self.ends_at - time.monotonic()),
                                              self._expire)
                self._timer.daemon = True
                self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for handle in self._handles:
                try:
                    handle.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            for handle in self._handles:
                handle.close()
            self._handles.clear()


class GuardedFetcher(FetchPolicy):
    """Makes the provider's requests to URLs clients registered (see the module docstring).

    :param deadline: seconds each request may take in total, connecting, TLS, sending and
        every read together (default :data:`DEFAULT_DEADLINE`); a server that answers one
        byte at a time is cut off when it passes. Name resolution runs before and is bounded
        by the system resolver's own timeout.
    :param max_size: bytes an answer's body may have (default :data:`DEFAULT_MAX_SIZE`); a
        larger answer is an error. Each call may pass a smaller or larger one.
    :param allowed_networks: networks (``"10.0.0.0/8"``, ``"127.0.0.1/32"``, ``"::1/128"``
        or :mod:`ipaddress` networks) whose addresses are allowed although they are not
        public: a test server on loopback, clients on an intranet. Empty by default.
    :param allow_http: accept ``http://`` URLs too (default: https only). Meant for tests
        and development; a plain http request can be read and changed on the way.
    :param proxy: an ``http://host:port`` forward proxy to send every request through (none
        by default; proxy settings of the environment are never used). The fetcher still
        resolves the target and checks its addresses, then asks the proxy for a tunnel
        (``CONNECT``) to the checked IP address, never to the name: the proxy cannot be
        made to resolve the name to another address. TLS is end to end, verified for the
        URL's host name.
    :param ssl_context: the :class:`ssl.SSLContext` for https (default: certificates
        verified against the system's trust store, host name checked).
    :param user_agent: the ``User-Agent`` header sent.
    :raises ValueError: an invalid option.
    """

    def _init_transport(self) -> None:
        self._flights: dict[tuple[str, int], _Flight] = {}
        self._lock = threading.Lock()

    # -- the policy ------------------------------------------------------------------------------

    def _checked_addresses(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """``getaddrinfo`` results of ``host`` whose address is allowed."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise FetchError("the host name could not be resolved") from e
        return self.allowed_infos(infos)

    def _check_peer(self, sock: socket.socket) -> None:
        self.check_peer(sock.getpeername())

    # -- the public operations ---------------------------------------------------------------------

    def get_json(self, uri: str, *, max_size: Optional[int] = None) -> Any:
        """GET the JSON document at ``uri`` (a ``jwks_uri``, a ``sector_identifier_uri``).

        Concurrent calls for the same URL share one request; its body, or its failure, is
        given to each of them (and then forgotten: nothing is cached).

        :param max_size: bytes the document may have (default: the fetcher's).
        :returns: the parsed JSON (a new object for each caller).
        :raises FetchError: any failure: a URL not allowed, an address not allowed, no
            connection, a redirect, a status other than 200, the deadline, the size limit,
            not JSON.
        """
        return parse_json_document(self.get(uri, max_size=max_size))

    __call__ = get_json

    def get(self, uri: str, *, max_size: Optional[int] = None) -> bytes:
        """GET the document at ``uri`` and return its body (status 200 only), sharing one
        request among concurrent calls for the same URL.

        :raises FetchError: as :meth:`get_json`, JSON aside.
        """
        if not isinstance(uri, str):
            raise FetchError("the URL is not a string")
        limit = self.size_limit(max_size)
        key = (uri, limit)
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leading:
            if not flight.done.wait(self.deadline + 1.0):
                raise FetchError(DEADLINE_PASSED)
            if flight.body is None:
                raise FetchError(flight.reason or "the request failed")
            return flight.body
        try:
            response = self._request("GET", uri, None, {"Accept": "application/json"}, limit)
            check_document_status(response.status)
            flight.body = response.body
            return response.body
        except FetchError as e:
            flight.reason = e.reason
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def post_form(self, uri: str, form: Mapping[str, str], *,
                  headers: Optional[Mapping[str, str]] = None,
                  max_size: Optional[int] = None,
                  timeout: Optional[float] = None) -> FetchResponse:
        """POST ``form`` as ``application/x-www-form-urlencoded`` to ``uri`` (e.g. a logout
        token to a ``backchannel_logout_uri``, OIDC Back-Channel Logout 1.0, 2.5), guarded as
        every request is.

        :param timeout: a shorter deadline for this request, in seconds (e.g. the time left
            of a :class:`~pyop.logout_notifications.BackChannelSender`); never longer than
            the fetcher's ``deadline``.
        :returns: the status and the body (at most ``max_size`` bytes) of any answer but a
            redirect.
        :raises FetchError: a URL or address not allowed, no connection, a redirect, the
            deadline, an answer larger than ``max_size``.
        """
        body, sent_headers, limit, deadline = self.form_post(uri, form, headers, max_size,
                                                             timeout)
        return self._request("POST", uri, body, sent_headers, limit, deadline)

    # -- one request -------------------------------------------------------------------------------

    def _request(self, method: str, uri: str, body: Optional[bytes],
                 headers: Mapping[str, str], max_size: int,
                 deadline: Optional[float] = None) -> FetchResponse:
        url = parse_request_url(uri, self.allow_http)
        attempt = _Attempt(self.deadline if deadline is None else deadline)
        try:
            response = self._exchange(
                attempt, url.scheme, url.host, url.port, method, url.target, body,
                request_headers(url, self.user_agent, headers), max_size)
            if attempt.expired:  # the watchdog ended the answer: what was read is cut short
                raise FetchError(DEADLINE_PASSED)
            return response
        except FetchError as e:
            if attempt.expired and e.reason != DEADLINE_PASSED:
                raise FetchError(DEADLINE_PASSED) from e
            raise
        except Exception as e:  # noqa: BLE001 - any failure
            # of the HTTP library (its errors, the socket's, the TLS layer's) is a fetch error
            if attempt.expired:
                raise FetchError(DEADLINE_PASSED) from e
            raise request_failed(e) from e
        finally:
            attempt.close()

    def _exchange(self, attempt: _Attempt, scheme: str, host: str, port: int, method: str,
                  target: str, body: Optional[bytes], headers: dict[str, str],
                  max_size: int) -> FetchResponse:
        addresses = self._checked_addresses(host, port)
        fetcher = self
        last_error: Optional[BaseException] = None
        for family, _type, proto, _name, sockaddr in addresses:
            # one connection per checked address, in the resolver's order, until one connects
            def new_conn(family: int = family, proto: int = proto,
                         sockaddr: Any = sockaddr) -> socket.socket:
                if fetcher.proxy is not None:
                    sock = socket.create_connection(fetcher.proxy, attempt.remaining())
                else:
                    sock = socket.socket(family, socket.SOCK_STREAM, proto)
                    try:
                        sock.settimeout(attempt.remaining())
                        sock.connect(sockaddr)
                        fetcher._check_peer(sock)
                    except BaseException:
                        sock.close()
                        raise
                attempt.watch(sock)
                sock.settimeout(attempt.remaining())
                return sock

            connection = _connection(scheme, host, port, attempt.remaining(), new_conn,
                                     self.ssl_context)
            if self.proxy is not None:
                connection.set_tunnel(address_of(sockaddr).compressed, port)
            try:
                try:
                    connection.connect()
                except FetchError:
                    raise
                except OSError as e:
                    last_error = e
                    if attempt.expired:
                        raise
                    continue
                connection.request(method, target, body=body, headers=headers,
                                   preload_content=False, decode_content=False)
                response = connection.getresponse()
                try:
                    check_not_redirect(response.status)
                    content = response.read(max_size + 1, decode_content=False)
                finally:
                    response.close()
                check_size(len(content), max_size)
                return FetchResponse(response.status, content)
            finally:
                connection.close()
        raise no_connection(last_error) from last_error


class _ThroughCheckedAddresses:
    """Makes the connection's socket with the fetcher's function, which connects to a
    checked address only (or to the configured proxy)."""

    guarded_new_conn: Callable[[], socket.socket]

    def _new_conn(self) -> socket.socket:
        return self.guarded_new_conn()


class _GuardedHTTPConnection(_ThroughCheckedAddresses, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_ThroughCheckedAddresses, HTTPSConnection):
    """TLS verified for the URL's host name (``server_hostname``), not the address."""


def _connection(scheme: str, host: str, port: int, timeout: float,
                new_conn: Callable[[], socket.socket],
                ssl_context: Optional[ssl.SSLContext]) -> HTTPConnection:
    """An urllib3 connection to ``host`` whose socket ``new_conn`` makes."""
    connection: Union[_GuardedHTTPConnection, _GuardedHTTPSConnection]
    if scheme == "https":
        connection = _GuardedHTTPSConnection(host, port, timeout=timeout,
                                             ssl_context=ssl_context, server_hostname=host)
    else:
        connection = _GuardedHTTPConnection(host, port, timeout=timeout)
    connection.guarded_new_conn = new_conn
    return connection


def fetch_jwks(uri: str, *, timeout: float = DEFAULT_DEADLINE, max_size: int = DEFAULT_MAX_SIZE,
               allow_private_addresses: bool = False) -> Any:
    """GET the JWK Set at a client's ``jwks_uri`` (OIDC Dynamic Registration 2) and parse it,
    with a one-off :class:`GuardedFetcher`.

    :param timeout: the total deadline, in seconds.
    :param allow_private_addresses: allow every address and plain http (development only).
    :raises FetchError: see :meth:`GuardedFetcher.get_json`.
    """
    networks = ("0.0.0.0/0", "::/0") if allow_private_addresses else ()
    return GuardedFetcher(deadline=timeout, max_size=max_size, allowed_networks=networks,
                          allow_http=allow_private_addresses).get_json(uri)
