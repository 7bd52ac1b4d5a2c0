"""Logout notifications: login sessions (``sid``), Back-Channel Logout Tokens and their
delivery, Front-Channel Logout iframes and the page that holds them.

OIDC Back-Channel Logout 1.0: 2.1 (``sid`` in ID tokens), 2.4 (the Logout Token), 2.5
(the POST to ``backchannel_logout_uri``), 2.8 (the RP's answer), 2.7 (offline access).
OIDC Front-Channel Logout 1.0: 2 (``frontchannel_logout_uri``, ``iss`` and ``sid``
parameters), 3 (``sid`` in ID tokens), 4 (the OP's page rendering one iframe per RP).

Nothing here makes an HTTP request by itself: :class:`BackChannelSender` POSTs through a
*transport* the host gives, ``post(uri, form, timeout) -> status``, which decides which
addresses may be reached (it should refuse private addresses, see :doc:`logout`).
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .context import ProviderContext
from .crypto import jws_sign
from .exceptions import UnauthorizedClient
from .util import is_loopback_host

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "LOGOUT_TOKEN_TYPE",
    "BackChannelLogoutRequest",
    "BackChannelSender",
    "DeliveryResult",
    "FormPoster",
    "FrontChannelLogoutPage",
    "LogoutResult",
    "SenderSettings",
    "Transport",
    "client_requires_sid",
    "frontchannel_logout_page",
    "frontchannel_logout_url",
    "is_acceptable_logout_uri",
    "make_logout_token",
    "new_session_id",
]

logger = logging.getLogger(__name__)

#: The authority of a logout URI: a DNS name or IP literal and an optional port (no
#: userinfo, nothing a Content-Security-Policy or a header would read as syntax).
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                        r"(?::[0-9]{1,5})?")

#: The event member of a Logout Token (Back-Channel Logout 1.0 2.4).
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: The JOSE ``typ`` of a Logout Token (Back-Channel Logout 1.0 2.4, RFC 8725 3.11).
LOGOUT_TOKEN_TYPE = "logout+jwt"
#: Logout Tokens made per client for one logout at most (one per session of the client).
MAX_TOKENS_PER_CLIENT = 16

#: ``post(uri, form, timeout) -> HTTP status``: POSTs ``form`` (as
#: ``application/x-www-form-urlencoded``) to ``uri`` within ``timeout`` seconds, raising
#: on any failure (no connection, a forbidden address, the timeout).
Transport = Callable[[str, dict[str, str], float], int]


class FormPoster(Protocol):
    """What :meth:`BackChannelSender.through` POSTs with: a
    :class:`~pyop.outbound.GuardedFetcher` (``post_form(uri, form, timeout=...)`` returning
    an answer with a ``status``)."""

    def post_form(self, uri: str, form: Mapping[str, str], *,
                  timeout: Optional[float] = None) -> Any:
        """POST ``form`` to ``uri`` within ``timeout`` seconds; an answer with ``status``;
        raises on failure."""


def new_session_id() -> str:
    """A new login session identifier (``sid``, Front-Channel Logout 1.0 3): 128 random
    bits, URL-safe."""
    return secrets.token_urlsafe(16)


def client_requires_sid(client: Mapping[str, Any],
                        metadata: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether the client registered ``frontchannel_logout_session_required`` or
    ``backchannel_logout_session_required`` (then its ID tokens carry ``sid``), for a
    channel the provider ``metadata`` supports (``frontchannel_logout_supported``,
    ``backchannel_logout_supported``) when given."""
    return ((client.get("frontchannel_logout_session_required") is True and (
        metadata is None or metadata.get("frontchannel_logout_supported") is True))
        or (client.get("backchannel_logout_session_required") is True and (
            metadata is None or metadata.get("backchannel_logout_supported") is True)))


def has_logout_uri(client: Mapping[str, Any],
                   metadata: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether the client registered a front- or back-channel logout URI (for a channel
    the provider ``metadata`` supports, when given)."""
    return bool((client.get("frontchannel_logout_uri") and (
        metadata is None or metadata.get("frontchannel_logout_supported") is True))
        or (client.get("backchannel_logout_uri") and (
            metadata is None or metadata.get("backchannel_logout_supported") is True)))


def id_token_sid(ctx: ProviderContext, client: Mapping[str, Any],
                 session_id: Optional[str]) -> Optional[str]:
    """The ``sid`` claim of the client's ID tokens: the session's when the client requires
    it (for a channel the provider supports) or the provider's ``id_token_sid`` option is
    on; else None (as pyop 3: no ``sid``)."""
    if session_id is None:
        return None
    configuration = ctx.configuration
    if configuration.id_token_sid or client_requires_sid(client, configuration.metadata):
        return session_id
    return None


def session_for_authorization(ctx: ProviderContext, client: Mapping[str, Any],
                              session_id: Optional[str]) -> tuple[Optional[str], bool]:
    """The login session of a grant and whether it was minted here: the host's, else a
    new one when the client's ID tokens must carry ``sid``."""
    if session_id is not None:
        if not isinstance(session_id, str) or not session_id or len(session_id) > 255:
            raise ValueError("session_id must be a non-empty string of at most 255 characters")
        return session_id, False
    configuration = ctx.configuration
    if configuration.id_token_sid or client_requires_sid(client, configuration.metadata):
        return new_session_id(), True
    return None, False


def is_acceptable_logout_uri(uri: Any) -> bool:
    """A logout URI pyop will use: an absolute https URL (http on a loopback host), without
    fragment or userinfo, without control characters or spaces."""
    if not isinstance(uri, str) or not uri or len(uri) > 2048:
        return False
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        return False
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return False
    if parts.fragment or "#" in uri or not host or not _AUTHORITY.fullmatch(parts.netloc):
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host))


# -- Back-Channel Logout 1.0 ------------------------------------------------------------------


@dataclass(frozen=True)
class BackChannelLogoutRequest:
    """A Logout Token to POST to a client's ``backchannel_logout_uri`` (Back-Channel
    Logout 1.0 2.5): the body is ``form`` as ``application/x-www-form-urlencoded``."""

    client_id: str
    uri: str
    logout_token: str

    @property
    def form(self) -> dict[str, str]:
        """The form body: ``{"logout_token": ...}``."""
        return {"logout_token": self.logout_token}


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one :class:`BackChannelLogoutRequest`."""

    client_id: str
    uri: str
    #: True when the client answered 2xx (Back-Channel Logout 1.0 2.8: 200 or 204).
    delivered: bool
    #: The last HTTP status received, if any.
    status: Optional[int] = None
    #: POST attempts made.
    attempts: int = 0
    #: Why it was not delivered (an exception's type, ``"deadline"``, ``"status 400"``).
    error: Optional[str] = None


def make_logout_token(ctx: ProviderContext, client_id: str, client: Mapping[str, Any], *,
                      sub: Optional[str], sid: Optional[str]) -> str:
    """A Logout Token for a client (Back-Channel Logout 1.0 2.4): ``iss``, ``aud`` (the
    client_id), ``iat``, ``exp`` (``logout_token_lifetime`` later), a random ``jti``,
    ``events``, ``sub`` and/or ``sid``; never ``nonce``. Signed as the client's ID tokens
    are (its ``id_token_signed_response_alg``, else the active key), header ``typ:
    logout+jwt``.

    :raises UnauthorizedClient: no key for the client's ``id_token_signed_response_alg``.
    :raises ValueError: neither ``sub`` nor ``sid``.
    """
    if not sub and not sid:
        raise ValueError("a Logout Token needs sub or sid")
    key = ctx.keys.id_token_key(client)
    now = ctx.now()
    claims: dict[str, Any] = {
        "iss": ctx.issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + ctx.configuration.logout_token_lifetime,
        "jti": secrets.token_urlsafe(16),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    if sub:
        claims["sub"] = sub
    if sid:
        claims["sid"] = sid
    return jws_sign(claims, key, {"typ": LOGOUT_TOKEN_TYPE})


def backchannel_requests(ctx: ProviderContext, targets: Mapping[str, tuple[str, list[str]]]
                         ) -> tuple[list[BackChannelLogoutRequest], list[DeliveryResult]]:
    """The Logout Tokens of a logout: for each ``client_id -> (sub, sids)`` whose client
    registered an acceptable ``backchannel_logout_uri``, one token per session when the
    client needs ``sid`` (or ``id_token_sid`` is on), else one with ``sub``.

    :returns: the requests, and the results of the clients no token could be made for.
    """
    requests: list[BackChannelLogoutRequest] = []
    failed: list[DeliveryResult] = []
    for client_id, (sub, sids) in targets.items():
        client = ctx.clients.get(client_id)
        if client is None:
            continue
        uri = client.get("backchannel_logout_uri")
        if uri is None:
            continue
        if not is_acceptable_logout_uri(uri):
            logger.warning("backchannel_logout_uri of a client is not acceptable: not used")
            failed.append(DeliveryResult(client_id, str(uri)[:2048], False,
                                         error="unacceptable backchannel_logout_uri"))
            continue
        with_sid = ctx.configuration.id_token_sid or client.get(
            "backchannel_logout_session_required") is True
        sessions: list[Optional[str]] = list(sids[-MAX_TOKENS_PER_CLIENT:]) if (
            with_sid and sids) else [None]
        try:
            for sid in sessions:
                requests.append(BackChannelLogoutRequest(
                    client_id, uri, make_logout_token(ctx, client_id, client, sub=sub, sid=sid)))
        except UnauthorizedClient:
            failed.append(DeliveryResult(client_id, uri, False,
                                         error="no key for the client's ID token alg"))
    return requests, failed


def check_sender_options(deadline: float, attempts: int, retry_delay: float,
                         max_workers: int) -> None:
    """Check the options of a back-channel sender (:class:`BackChannelSender`,
    :class:`pyop.aio.logout.AsyncBackChannelSender`).

    :raises ValueError: an option out of range."""
    for name, value, low in (("deadline", deadline, 0), ("retry_delay", retry_delay, -1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                low < value < float("inf")):
            raise ValueError(f"{name} must be a number of seconds")
    for name, count in (("attempts", attempts), ("max_workers", max_workers)):
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
            raise ValueError(f"{name} must be an integer from 1 to 64")


class DeliveryLog:
    """The attempts at delivering one :class:`BackChannelLogoutRequest`, and the rules
    both senders follow (Back-Channel Logout 1.0 2.8): a 2xx answer delivers it; a 4xx
    answer is final (the client refused the token: sending it again changes nothing); a
    failure to connect or any other answer is tried again, at most ``attempts`` times in
    all and while time is left."""

    def __init__(self, request: BackChannelLogoutRequest, attempts: int) -> None:
        self.request = request
        self.max_attempts = attempts
        self.attempts = 0
        self.status: Optional[int] = None
        self.error: Optional[str] = "deadline"
        self.delivered = False
        self.final = False

    def begin(self, remaining: float) -> Optional[float]:
        """Start the next attempt with ``remaining`` seconds left: its timeout, or None
        when no attempt is to be made (delivered, refused, attempts or time spent)."""
        if self.final or self.attempts >= self.max_attempts:
            return None
        if remaining <= 0:
            self.error = "deadline"
            return None
        self.attempts += 1
        return remaining

    def answered(self, status: int) -> None:
        """Record the HTTP status of an attempt."""
        self.status = status
        if 200 <= status < 300:
            self.delivered, self.final, self.error = True, True, None
            return
        self.error = f"status {status}"
        if 400 <= status < 500:
            self.final = True

    def failed(self, error: BaseException) -> None:
        """Record an attempt that got no answer (no connection, refused address...)."""
        self.status = None
        self.error = type(error).__name__

    def retry_pending(self) -> bool:
        """Whether another attempt may follow (after the retry delay)."""
        return not self.final and self.attempts < self.max_attempts

    def result(self) -> DeliveryResult:
        """What became of the request (logged when it was not delivered)."""
        request = self.request
        if self.delivered:
            return DeliveryResult(request.client_id, request.uri, True, self.status,
                                  self.attempts)
        logger.info("a back-channel logout notification was not delivered: %s", self.error)
        return DeliveryResult(request.client_id, request.uri, False, self.status,
                              self.attempts, self.error)


def deadline_result(request: BackChannelLogoutRequest) -> DeliveryResult:
    """The result of a request still in flight when the sender's deadline passed."""
    return DeliveryResult(request.client_id, request.uri, False, error="deadline")


#: the transport type of a sender
TransportT = TypeVar("TransportT")


class SenderSettings(Generic[TransportT]):
    """The options of a back-channel Logout Token sender (:class:`BackChannelSender`, and
    :class:`~pyop.aio.logout.AsyncBackChannelSender` for asyncio).

    :param transport: POSTs one request (see :data:`Transport`); it decides which
        addresses may be reached.
    :param deadline: seconds the whole delivery may take (default 5): the call returns by
        then, whatever the clients do; requests not done are reported ``"deadline"``.
    :param attempts: POSTs per request at most (default 2): a connection failure or a 5xx
        answer is tried again after ``retry_delay`` seconds if the deadline allows; a 4xx
        answer is not (the client refused the token, Back-Channel Logout 1.0 2.8).
    :param max_workers: requests in flight at once (default 4).
    """

    def __init__(self, transport: TransportT, *, deadline: float = 5.0, attempts: int = 2,
                 retry_delay: float = 0.2, max_workers: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_sender_options(deadline, attempts, retry_delay, max_workers)
        self.transport = transport
        self.deadline = float(deadline)
        self.attempts = attempts
        self.retry_delay = float(retry_delay)
        self.max_workers = max_workers
        self.clock = clock


class BackChannelSender(SenderSettings[Transport]):
    """POSTs Logout Tokens concurrently, each through ``transport``, all within one total
    ``deadline`` (Back-Channel Logout 1.0 2.5, 2.8); never raises for a client's failure.

    ``transport`` is ``post(uri, form, timeout) -> status``, called from worker threads;
    the other options are those of :class:`SenderSettings`.
    """

    @classmethod
    def through(cls, fetcher: FormPoster, **options: Any) -> BackChannelSender:
        """A sender POSTing through a guarded fetcher: ``fetcher.post_form(uri, form,
        timeout=<time left>)`` (e.g. ``provider.outbound_fetcher``, a
        :class:`~pyop.outbound.GuardedFetcher`: public addresses only unless allowed, no
        redirects, no proxy from the environment). Any failure of the fetcher (a
        :class:`~pyop.exceptions.FetchError`: an address not allowed, no connection, a
        redirect, its deadline) is a delivery failure of that request.

        :param options: as for the constructor (``deadline``, ``attempts``...).
        """
        def post(uri: str, form: dict[str, str], timeout: float) -> int:
            return int(fetcher.post_form(uri, form, timeout=timeout).status)

        return cls(post, **options)

    def __call__(self, requests: Sequence[BackChannelLogoutRequest]) -> list[DeliveryResult]:
        """Deliver ``requests``; one result each, in the same order, within the deadline."""
        if not requests:
            return []
        end = self.clock() + self.deadline
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(requests)),
                                  thread_name_prefix="pyop-backchannel-logout")
        try:
            futures = [pool.submit(self._deliver, request, end, stop) for request in requests]
            wait(futures, timeout=max(0.0, end - self.clock()))
        finally:
            stop.set()  # the workers still retrying give up; queued ones are cancelled
            pool.shutdown(wait=False, cancel_futures=True)
        return [self._result(request, future) for request, future in zip(requests, futures)]

    @staticmethod
    def _result(request: BackChannelLogoutRequest,
                future: Future[DeliveryResult]) -> DeliveryResult:
        if future.done() and not future.cancelled() and future.exception() is None:
            return future.result()
        return deadline_result(request)

    def _deliver(self, request: BackChannelLogoutRequest, end: float,
                 stop: threading.Event) -> DeliveryResult:
        log = DeliveryLog(request, self.attempts)
        while not stop.is_set():
            timeout = log.begin(end - self.clock())
            if timeout is None:
                break
            try:
                log.answered(int(self.transport(request.uri, request.form, timeout)))
            except Exception as e:  # noqa: BLE001 - a client's failure is a result
                log.failed(e)
            if not log.retry_pending() or stop.wait(min(self.retry_delay,
                                                        max(0.0, end - self.clock()))):
                break
        return log.result()


# -- Front-Channel Logout 1.0 -----------------------------------------------------------------


def frontchannel_logout_url(uri: str, issuer: str, sid: Optional[str]) -> str:
    """The iframe URL for a client (Front-Channel Logout 1.0 2): its
    ``frontchannel_logout_uri`` with ``iss`` and ``sid`` added to its query when a
    ``sid`` is given (the client requires them), URL-encoded."""
    if sid is None:
        return uri
    parts = urlsplit(uri)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
             if name not in ("iss", "sid")]
    query += [("iss", issuer), ("sid", sid)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def frontchannel_urls(ctx: ProviderContext, targets: Mapping[str, tuple[str, list[str]]]
                      ) -> list[str]:
    """The iframe URLs of a logout: for each ``client_id -> (sub, sids)`` whose client
    registered an acceptable ``frontchannel_logout_uri``, one URL (one per session, with
    ``iss`` and ``sid``, when the client registered ``frontchannel_logout_session_required``
    or ``id_token_sid`` is on)."""
    urls: list[str] = []
    for client_id, (_sub, sids) in targets.items():
        client = ctx.clients.get(client_id)
        uri = client.get("frontchannel_logout_uri") if client is not None else None
        if uri is None or client is None:
            continue
        if not is_acceptable_logout_uri(uri):
            logger.warning("frontchannel_logout_uri of a client is not acceptable: not used")
            continue
        with_sid = ctx.configuration.id_token_sid or client.get(
            "frontchannel_logout_session_required") is True
        if with_sid and sids:
            urls.extend(frontchannel_logout_url(uri, ctx.issuer, sid)
                        for sid in sids[-MAX_TOKENS_PER_CLIENT:])
        else:
            urls.append(uri)
    return list(dict.fromkeys(urls))


@dataclass(frozen=True)
class FrontChannelLogoutPage:
    """The OP's logout page (Front-Channel Logout 1.0 4): send ``html`` with the header
    ``Content-Security-Policy: <content_security_policy>`` (and ``Cache-Control:
    no-store``)."""

    html: str
    content_security_policy: str


#: The logout page's only script: once every iframe has loaded (or after 5 seconds), go
#: to the target of the page's link. It holds no value of the request.
_REDIRECT_SCRIPT = (
    "(function () {"
    " var frames = document.getElementsByTagName(\"iframe\");"
    " var left = frames.length;"
    " var target = document.getElementsByTagName(\"a\")[0].href;"
    " var gone = false;"
    " function go() { if (!gone) { gone = true; window.location.replace(target); } }"
    " if (left === 0) { go(); return; }"
    " Array.prototype.forEach.call(frames, function (f) {"
    " f.addEventListener(\"load\", function () { left -= 1; if (left === 0) { go(); } });"
    " });"
    " setTimeout(go, 5000);"
    " })();")


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def frontchannel_logout_page(urls: Iterable[str], *,
                             post_logout_redirect_uri: Optional[str] = None,
                             title: str = "Signed out",
                             message: str = "You have been signed out.") -> FrontChannelLogoutPage:
    """A complete HTML page with one hidden iframe per URL (Front-Channel Logout 1.0 4),
    every value escaped, and its Content-Security-Policy: ``default-src 'none'``, frames
    from exactly the URLs' origins, no script but the page's own redirect.

    :param post_logout_redirect_uri: where to send the user agent once every frame has
        loaded (or after 5 seconds): a URL the host verified (e.g. from
        ``do_post_logout_redirect``); a link to it is shown too.
    """
    frames = [url for url in urls if is_acceptable_logout_uri(url)]
    origins = sorted({_origin(url) for url in frames})
    body = [f"<p>{html.escape(message)}</p>"]
    body += [f'<iframe src="{html.escape(url, quote=True)}" hidden width="0" height="0">'
             "</iframe>" for url in frames]
    csp = ["default-src 'none'", "frame-src " + (" ".join(origins) if origins else "'none'"),
           "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"]
    if post_logout_redirect_uri is not None and is_acceptable_logout_uri(
            post_logout_redirect_uri):
        nonce = secrets.token_urlsafe(16)
        target = html.escape(post_logout_redirect_uri, quote=True)
        body.append(f'<p><a href="{target}">Continue</a></p>')
        # the script reads the target from the link: no value is written into script text
        body.append(f'<script nonce="{nonce}">{_REDIRECT_SCRIPT}</script>')
        csp.append(f"script-src 'nonce-{nonce}'")
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            '<meta name="referrer" content="no-referrer">'
            f"<title>{html.escape(title)}</title></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    return FrontChannelLogoutPage(page, "; ".join(csp))


# -- what a logout did --------------------------------------------------------------------------


@dataclass
class LogoutResult:
    """What :meth:`~pyop.provider.Provider.logout_user` did.

    ``backchannel_requests`` are the Logout Tokens to POST; with a
    ``backchannel_logout_sender`` they were delivered and ``backchannel_results`` says how
    (else the host delivers them, e.g. from its own queue). ``frontchannel_urls`` are the
    iframes of the logout page (:meth:`frontchannel_page`).
    """

    #: The ``sub`` logged out (None for a session logout without one).
    subject_identifier: Optional[str]
    #: The login session logged out (None for a logout of the whole ``sub``).
    session_id: Optional[str]
    #: Whether grants with ``offline_access`` were revoked too.
    offline_revoked: bool
    #: The clients of the session (or ``sub``) that registered a logout URI.
    clients: list[str] = field(default_factory=list)
    backchannel_requests: list[BackChannelLogoutRequest] = field(default_factory=list)
    backchannel_results: list[DeliveryResult] = field(default_factory=list)
    frontchannel_urls: list[str] = field(default_factory=list)

    def frontchannel_page(self, post_logout_redirect_uri: Optional[str] = None,
                          **texts: str) -> FrontChannelLogoutPage:
        """The logout page holding :attr:`frontchannel_urls` (see
        :func:`frontchannel_logout_page`)."""
        return frontchannel_logout_page(self.frontchannel_urls,
                                        post_logout_redirect_uri=post_logout_redirect_uri,
                                        **texts)
