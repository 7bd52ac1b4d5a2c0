"""A complete OpenID Provider built on pyop with Flask.

pyop itself is framework-free: this module is the *host*. It owns HTTP, the
end-user's session (a signed Flask cookie), the login and consent pages, and
calls the :class:`pyop.provider.Provider` from each route, turning its results
and exceptions into HTTP responses.

``create_app(config)`` builds the application; ``python -m example`` runs it.
Configuration keys (all optional; :func:`config_from_env` reads them from the
``PYOP_EXAMPLE_*`` environment variables):

``issuer``
    the issuer URL (default ``http://127.0.0.1:5000``); the endpoints are
    ``<issuer>/authorization`` etc. http is accepted for loopback hosts only.
``data_dir``
    where the signing key, the session secret, the subject salt and the default
    SQLite database live (default ``./.pyop-example``).
``storage_uri``
    a pyop storage URI (``sqlite:///...``, ``redis://...``, ``mongodb://...``,
    ``memory:``); default: SQLite in ``data_dir`` when SQLAlchemy is
    installed, else in-memory.
``signing_key``
    path of the PEM signing key, generated (RS256) on first start.
``users_file``
    the users JSON file (default: the bundled ``users.json``, demo user alice).
``demo``
    show the demo credentials on the login page (default: when the bundled
    users file is used).
``secret_key`` / ``subject_salt``
    override the secrets otherwise generated and kept in ``data_dir``.
``refresh_token_lifetime``
    seconds; refresh tokens are issued for ``offline_access`` (default one day).
``verified_clients``
    client ids whose ``client_name`` the operator has checked; the consent page marks
    every other name as chosen by the client itself (default: none).
``outbound_allow_loopback``
    let the OP's outbound requests (back-channel logout POSTs, ``jwks_uri``) reach
    loopback addresses over http too: relying parties on this machine, for development
    and tests (default: off; never on a server others can register clients at).
``dpop``
    accept DPoP proofs (RFC 9449) at the PAR, token and UserInfo endpoints and issue
    DPoP-bound tokens to clients that send them (``PYOP_EXAMPLE_DPOP=1``; default: off).
``dpop_nonces``
    with ``dpop``, require server nonces in proofs (RFC 9449 8, 9;
    ``PYOP_EXAMPLE_DPOP_NONCES=1``; default: off).

Every request is logged on the ``example.access`` logger (method, path without the
query string, status, duration); unexpected errors on ``example.app`` with the
exception type and where it was raised. Neither logs query strings, form fields,
headers or exception messages: they may carry codes, tokens, passwords or states.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import ipaddress
import json
import logging
import os
import re
import secrets
import time
import traceback
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey
from pyop.exceptions import (
    BearerTokenError,
    DPoPTokenError,
    InvalidAuthenticationRequest,
    InvalidClientAuthentication,
    InvalidClientRegistrationRequest,
    InvalidDPoPProof,
    InvalidEndSessionRequest,
    InvalidRegistrationAccessToken,
    InvalidSubjectIdentifier,
    OAuthError,
    StorageError,
)
from pyop.keys import generate_signing_key, load_signing_key, write_private_key
from pyop.logout_notifications import LogoutResult
from pyop.message import AuthorizationRequest
from pyop.outbound import GuardedFetcher
from pyop.provider import SCOPE_CLAIMS, Provider
from pyop.storage import StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo
from pyop.util import (
    FORM_POST_CONTENT_SECURITY_POLICY,
    render_form_post,
    should_form_post,
    should_fragment_encode,
)

from .throttle import LoginThrottle
from .users import UserStore

__all__ = ["create_app", "config_from_env", "DEFAULT_USERS_FILE", "ExampleProvider"]

logger = logging.getLogger(__name__)
#: One line per request: method, path (never the query string), status, duration.
access_logger = logging.getLogger("example.access")

#: The bundled users file (demo user ``alice`` / ``alice``).
DEFAULT_USERS_FILE = Path(__file__).with_name("users.json")
DEFAULT_PORT = 5000
DEFAULT_DATA_DIR = ".pyop-example"
#: Largest authentication request (as JSON) kept in the session cookie, in characters.
MAX_STORED_REQUEST = 2048

#: Storage collections the provider needs.
COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers", "clients",
               "consents", "sessions")

#: A login session ends after this many seconds without a request (30 minutes)...
SESSION_IDLE_LIFETIME = 30 * 60
#: ...and at the latest this many seconds after the login (12 hours).
SESSION_ABSOLUTE_LIFETIME = 12 * 60 * 60
#: The stored last use of a session is updated at most this often, in seconds.
SESSION_TOUCH_INTERVAL = 60
#: Longest user name accepted by the login form, in characters.
MAX_USERNAME_LENGTH = 256
#: Longest client name shown to the user, in characters (longer ones are cut, with "…").
MAX_CLIENT_NAME_LENGTH = 60

#: What each scope lets the client see, as told on the consent page.
SCOPE_DESCRIPTIONS = {
    "openid": "Sign you in with your account",
    "profile": "Your name and basic profile",
    "email": "Your email address",
    "address": "Your postal address",
    "phone": "Your phone number",
    "offline_access": "Keep access while you are not using the application (refresh tokens)",
}

#: What each standard claim (OIDC Core 5.1) tells the client, as told on the consent page.
CLAIM_DESCRIPTIONS = {
    "sub": "An identifier for you, for this application",
    "name": "Your full name",
    "given_name": "Your first name",
    "family_name": "Your last name",
    "middle_name": "Your middle name",
    "nickname": "Your nickname",
    "preferred_username": "Your username",
    "profile": "The address of your profile page",
    "picture": "Your profile picture",
    "website": "Your website",
    "email": "Your email address",
    "email_verified": "Whether your email address has been verified",
    "gender": "Your gender",
    "birthdate": "Your date of birth",
    "zoneinfo": "Your time zone",
    "locale": "Your language and country",
    "phone_number": "Your phone number",
    "phone_number_verified": "Whether your phone number has been verified",
    "address": "Your postal address",
    "updated_at": "When your profile was last changed",
}

#: Plain words for the OAuth error codes shown on error pages (RFC 6749 4.1.2.1,
#: OIDC Core 3.1.2.6, RP-Initiated Logout 1.0).
ERROR_EXPLANATIONS = {
    "invalid_request": "The application that sent you here made a request this sign-in "
                       "service cannot accept.",
    "unauthorized_client": "The application that sent you here is not allowed to sign you "
                           "in this way.",
    "invalid_client": "The application that sent you here is not known to this sign-in "
                      "service.",
    "invalid_scope": "The application that sent you here asked for access this sign-in "
                     "service does not offer.",
    "unsupported_response_type": "The application that sent you here asked for a kind of "
                                 "answer this sign-in service does not give.",
    "server_error": "Something went wrong on our side.",
    "temporarily_unavailable": "The service is temporarily unavailable.",
}

RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token", "code token",
                  "code id_token token"]
CLAIMS_SUPPORTED = sorted({"sub", *(c for claims in SCOPE_CLAIMS.values() for c in claims)})

_JSON_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# form-action is not restricted: after the consent form the browser follows a
# redirect to the client, which Chromium checks against form-action.
_HTML_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", re.IGNORECASE)
_PAGE_PATHS = frozenset(["/", "/authorization", "/login", "/consent", "/logout"])
_API_PATHS = ("/token", "/userinfo", "/registration", "/jwks", "/.well-known/")


def config_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """The configuration given by the ``PYOP_EXAMPLE_*`` environment variables.

    ``PYOP_EXAMPLE_ISSUER``, ``PYOP_EXAMPLE_PORT`` (for the default issuer),
    ``PYOP_EXAMPLE_DATA``, ``PYOP_EXAMPLE_STORAGE``, ``PYOP_EXAMPLE_KEY``,
    ``PYOP_EXAMPLE_USERS`` and ``PYOP_EXAMPLE_OUTBOUND_ALLOW_LOOPBACK`` (``1``: on).
    """
    env = os.environ if environ is None else environ
    port = int(env.get("PYOP_EXAMPLE_PORT") or DEFAULT_PORT)
    config: dict[str, Any] = {
        "issuer": env.get("PYOP_EXAMPLE_ISSUER") or f"http://127.0.0.1:{port}",
        "data_dir": env.get("PYOP_EXAMPLE_DATA") or DEFAULT_DATA_DIR,
    }
    for name, key in (("PYOP_EXAMPLE_STORAGE", "storage_uri"), ("PYOP_EXAMPLE_KEY", "signing_key"),
                      ("PYOP_EXAMPLE_USERS", "users_file")):
        if env.get(name):
            config[key] = env[name]
    if env.get("PYOP_EXAMPLE_OUTBOUND_ALLOW_LOOPBACK") == "1":
        config["outbound_allow_loopback"] = True
    for name, key in (("PYOP_EXAMPLE_DPOP", "dpop"), ("PYOP_EXAMPLE_DPOP_NONCES", "dpop_nonces")):
        if env.get(name) == "1":
            config[key] = True
    return config


def requested_claims(authn_req: Mapping[str, Any]) -> dict[str, bool]:
    """The claims named by the request's ``claims`` parameter (OIDC Core 5.5), each
    mapped to whether it is essential."""
    claims_request = authn_req.get("claims") or {}
    if isinstance(claims_request, str):  # the raw JSON of a to_dict()
        try:
            claims_request = json.loads(claims_request)
        except ValueError:
            return {}
    claims: dict[str, bool] = {}
    for member in ("userinfo", "id_token"):
        requested = claims_request.get(member) if isinstance(claims_request, Mapping) else None
        for name, spec in (requested or {}).items():
            essential = isinstance(spec, Mapping) and spec.get("essential") is True
            claims[name] = claims.get(name, False) or essential
    return claims


def requested_scopes(authn_req: Mapping[str, Any]) -> list[str]:
    """The scope values of a request: an ``oic`` message (a list) or its ``to_dict()`` (a str)."""
    scope = authn_req.get("scope") or []
    if isinstance(scope, str):
        return scope.split()
    return [value for item in scope for value in str(item).split()]


def display_host(uri: str) -> Optional[str]:
    """The host (and port) of ``uri`` as shown to the end-user, in ASCII: an
    internationalized name in its IDNA form (``xn--...``), so that a look-alike of
    another name shows as what it is. None when there is no valid host."""
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port
        ascii_host = host.encode("idna").decode("ascii") if host else ""
    except (ValueError, UnicodeError):
        return None
    if not _HOST_NAME.fullmatch(ascii_host):
        try:
            ascii_host = f"[{ipaddress.IPv6Address(ascii_host)}]"
        except ValueError:
            return None
    return ascii_host if port is None else f"{ascii_host}:{port}"


def https_origin(uri: Any) -> Optional[str]:
    """``https://host[:port]`` of an https ``uri`` (host in ASCII), else None: the origin
    added to the consent page's ``img-src`` for a client's ``logo_uri``."""
    if not isinstance(uri, str) or not uri.startswith("https://"):
        return None
    host = display_host(uri)
    return "https://" + host if host else None


def _session_key(sid: str) -> str:
    """The storage key of a login session: a hash of its id (the cookie's secret)."""
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def _read_or_create_secret(path: Path) -> str:
    """A random secret kept in ``path`` (mode 0600), created on first use."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="ascii").strip()
        if len(value) < 32:
            raise ValueError(f"{path}: secret too short; delete it to make a new one") from None
        return value
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value


def _load_or_create_signing_key(path: Path) -> SigningKey:
    """Load the PEM signing key, generating an RS256 key there first if there is none."""
    if not path.exists():
        try:
            write_private_key(generate_signing_key("RS256"), path)
            logger.info("generated a signing key in %s", path)
        except FileExistsError:  # created meanwhile by another process
            pass
    # a kid lets relying parties pick the key once keys rotate (see docs/keys.rst)
    return load_signing_key(path, thumbprint_kid=True)


def _open_storage(uri: Optional[str], data_dir: Path) -> tuple[dict[str, StorageBase], str]:
    """One store per collection, and a description of where they are for the console."""
    note = ""
    if uri is None:
        if importlib.util.find_spec("sqlalchemy") is not None:
            uri = "sqlite:///" + str((data_dir / "pyop-example.sqlite").resolve())
        else:
            uri = "memory:"
            note = " (SQLAlchemy is not installed: state is lost on restart; " \
                   "pip install 'pyop[sql]' to keep it in SQLite)"
    stores = {name: StorageBase.from_uri(uri, collection=name, db_name="pyop")
              for name in COLLECTIONS}
    kind = StorageBase.type(uri)
    where = uri if kind in ("sql", "memory") and "@" not in uri else f"{kind} storage"
    return stores, where + note


class ExampleProvider:
    """The routes of the example OP, around one :class:`~pyop.provider.Provider`.

    :param provider: the pyop provider.
    :param users: the end-users (passwords and claims).
    :param demo: show the demo credentials on the login page.
    :param consents: where consents are remembered (default: in memory).
    :param sessions: where login sessions are kept (default: in memory).
    :param verified_clients: client ids whose ``client_name`` the operator has checked.
    """

    def __init__(self, provider: Provider, users: UserStore, demo: bool,
                 consents: Optional[StorageBase] = None,
                 sessions: Optional[StorageBase] = None,
                 verified_clients: Iterable[str] = ()) -> None:
        self.provider = provider
        self.users = users
        self.demo = demo
        #: ``user id -> {"grants": [{"client_id": ..., "scopes": [...], "claims": [...]}]}``:
        #: what each user allowed each client, so that the consent page is not shown again
        #: (a list, not a mapping: client ids are not valid field names in every store).
        self.consents: StorageBase = consents if consents is not None \
            else StorageBase.from_uri("memory:", collection="consents")
        #: ``hash of the session id -> {"user_id", "created", "last_seen", "op_sid"}``: the
        #: logged-in sessions. The cookie only names its session; logging out deletes the
        #: record, so a copy of the cookie taken before does not log in again. Keyed by a
        #: hash, so that a copy of the store holds no session ids. ``op_sid`` is the login
        #: session's id given to pyop (``sid`` of ID tokens and logout notifications):
        #: another value than the cookie's secret, since relying parties see it.
        self.sessions: StorageBase = sessions if sessions is not None \
            else StorageBase.from_uri("memory:", collection="sessions")
        #: Slows password guessing (see :mod:`example.throttle`).
        self.throttle = LoginThrottle()
        self.verified_clients = frozenset(verified_clients)

    def register(self, app: Flask) -> None:
        """Add the routes to ``app``."""
        rules: list[tuple[str, str, Any, list[str]]] = [
            ("/", "index", self.index, ["GET"]),
            ("/.well-known/openid-configuration", "discovery", self.discovery, ["GET"]),
            ("/jwks", "jwks", self.jwks, ["GET"]),
            ("/authorization", "authorization", self.authorization, ["GET", "POST"]),
            ("/login", "login", self.login, ["GET", "POST"]),
            ("/consent", "consent", self.consent, ["GET", "POST"]),
            ("/token", "token", self.token, ["POST"]),
            ("/par", "pushed_authorization", self.pushed_authorization, ["POST"]),
            ("/userinfo", "userinfo", self.userinfo, ["GET", "POST"]),
            ("/registration", "registration", self.registration, ["POST"]),
            ("/registration/<client_id>", "client_configuration", self.client_configuration,
             ["GET", "PUT", "DELETE"]),
            ("/logout", "logout", self.logout, ["GET", "POST"]),
        ]
        for rule, endpoint, view, methods in rules:
            app.add_url_rule(rule, endpoint, view, methods=methods)
        app.register_error_handler(StorageError, self.storage_error)
        app.register_error_handler(HTTPException, self.http_error)
        app.register_error_handler(Exception, self.unexpected_error)
        app.before_request(start_timer)
        app.after_request(self.security_headers)
        app.after_request(log_request)
        app.jinja_env.globals["csrf_token"] = csrf_token

    # -- helpers ---------------------------------------------------------------------------------

    def current_user(self) -> Optional[str]:
        """The logged-in user id of this browser session, or None.

        The cookie's session must still be stored (not logged out), used within
        :data:`SESSION_IDLE_LIFETIME` and younger than :data:`SESSION_ABSOLUTE_LIFETIME`.
        """
        user_id = session.get("user_id")
        sid = session.get("sid")
        if not isinstance(user_id, str) or user_id not in self.users or not isinstance(sid, str):
            return None
        if g.get("session_checked") == sid:  # once per request
            return user_id
        key = _session_key(sid)
        record = self.sessions.get(key)
        now = self.provider.clock()
        if not isinstance(record, Mapping) or record.get("user_id") != user_id:
            return None
        if now - record["last_seen"] > SESSION_IDLE_LIFETIME or \
                now - record["created"] > SESSION_ABSOLUTE_LIFETIME:
            self.sessions.delete(key)
            return None
        if now - record["last_seen"] > SESSION_TOUCH_INTERVAL:
            self.sessions.set(key, {**record, "last_seen": now},
                              expires_at=record["created"] + SESSION_ABSOLUTE_LIFETIME)
        g.session_checked = sid
        g.op_sid = record.get("op_sid")
        return user_id

    def login_session_id(self) -> Optional[str]:
        """pyop's id of the logged-in session (``op_sid`` of its record), or None."""
        if self.current_user() is None:
            return None
        op_sid = g.get("op_sid")
        return op_sid if isinstance(op_sid, str) else None

    def start_session(self, user_id: str) -> None:
        """Log ``user_id`` in: a new session (new id, new CSRF token), stored server-side."""
        self.end_session()
        now = self.provider.clock()
        sid = secrets.token_urlsafe(32)
        self.sessions.set(_session_key(sid), {"user_id": user_id, "created": now,
                                              "last_seen": now,
                                              "op_sid": self.provider.new_session_id()},
                          expires_at=now + SESSION_ABSOLUTE_LIFETIME)
        session["sid"] = sid
        session["user_id"] = user_id
        # sub-second: a login in the same second as a prompt=login request is after it
        session["auth_time"] = now

    def end_session(self) -> None:
        """Log out: the stored session is deleted, so the cookie (and any copy of it) no
        longer logs anyone in; the cookie is cleared."""
        sid = session.get("sid")
        if isinstance(sid, str):
            self.sessions.delete(_session_key(sid))
        session.clear()
        g.pop("session_checked", None)
        g.pop("op_sid", None)

    @staticmethod
    def json_response(body: str, status: int = 200,
                      headers: Optional[Mapping[str, str]] = None) -> Response:
        response = Response(body, status=status, mimetype="application/json")
        response.headers.update(headers or {})
        return response

    def error_page(self, message: str, status: int = 400, title: str = "Request refused", *,
                   error: Optional[OAuthError] = None, back: Optional[tuple[str, str]] = None
                   ) -> Response:
        """An error shown to the end-user: for errors that must not go to a client.

        :param message: what happened, in plain words.
        :param error: the OAuth error, shown (code and description) under "Technical
            details".
        :param back: ``(url, label)`` of the way back; default: back to the client of
            the sign-in request in progress when its redirect URI was verified (with an
            ``access_denied`` error response), else the home page.
        """
        if back is None:
            back = self.back_to_client() or (url_for("index"), "Go to the home page")
        details = None
        if error is not None:
            details = {"error": error.oauth_error, "description": str(error)}
        page = render_template("error.html", title=title, message=message, details=details,
                               back_url=back[0], back_label=back[1])
        return Response(page, status=status, mimetype="text/html")

    def back_to_client(self) -> Optional[tuple[str, str]]:
        """A link back to the client of the sign-in request in progress, or None.

        Its redirect URI was verified when the request was received (OIDC Core 3.1.2.1),
        so the end-user can be sent there, with an ``access_denied`` error response
        (OIDC Core 3.1.2.6). Not for ``form_post`` (a link cannot POST).
        """
        pending = session.get("pending")
        if not isinstance(pending, Mapping) or not isinstance(pending.get("request"), Mapping):
            return None
        authn_req = AuthorizationRequest().from_dict(dict(pending["request"]))
        if should_form_post(authn_req) or self.provider.get_client(
                authn_req.get("client_id")) is None:
            return None
        url = self.provider.create_authentication_error(
            authn_req, "access_denied", "the end-user cancelled the request").to_error_url()
        if not url:
            return None
        return url, "Back to " + self.client_name(authn_req["client_id"],
                                                  authn_req["redirect_uri"])

    def explain(self, error: OAuthError, prefix: str) -> str:
        """Plain words for ``error``."""
        return prefix + " " + ERROR_EXPLANATIONS.get(
            error.oauth_error, "The request cannot be completed.")

    @staticmethod
    def form_post_page(page: str) -> Response:
        """A response posted to the client by an auto-submitted form (OAuth 2.0 Form Post
        Response Mode 2)."""
        return Response(page, status=200, mimetype="text/html", headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": FORM_POST_CONTENT_SECURITY_POLICY})

    @staticmethod
    def log_refused(error: OAuthError) -> None:
        """Log a refused request: the exception type and OAuth error code, never its
        description (it may quote the request)."""
        logger.info("%s %s refused: %s (%s)", request.method, request.path,
                    type(error).__name__, error.oauth_error)

    def authentication_error(self, error: InvalidAuthenticationRequest) -> BaseResponse:
        """Send a redirectable error to the client; show the others (OIDC Core 3.1.2.6)."""
        self.log_refused(error)
        if should_form_post(error.request):
            page = error.to_form_post()
            if page:
                return self.form_post_page(page)
        url = error.to_error_url()
        if url:
            return redirect(url, 303)
        # unknown client or unverified redirect URI: never send the user there
        return self.error_page(
            "The application that sent you here made a sign-in request this service cannot "
            "accept, so you cannot be sent back to it. Return to the application and try "
            "again, or contact its support if this happens again.",
            title="Sign-in request refused", error=error,
            back=(url_for("index"), "Go to the home page"))

    def client_name(self, client_id: str, redirect_uri: Optional[str] = None) -> str:
        """The client's ``client_name``, cut to :data:`MAX_CLIENT_NAME_LENGTH` characters
        and without control or formatting characters (bidirectional overrides could
        make it read as another name); without a name, the host of ``redirect_uri`` (or
        of the client's only redirect URI), else the client id.

        The name is chosen by whoever registered the client: see :meth:`name_verified`.
        """
        client = self.provider.get_client(client_id) or {}
        name = client.get("client_name")
        if isinstance(name, str):
            name = " ".join("".join(ch for ch in name
                                    if unicodedata.category(ch)[0] != "C").split())
            if len(name) > MAX_CLIENT_NAME_LENGTH:
                name = name[:MAX_CLIENT_NAME_LENGTH - 1].rstrip() + "…"
        if isinstance(name, str) and name:
            return name
        uris = client.get("redirect_uris") or []
        if redirect_uri is None and isinstance(uris, list) and len(uris) == 1:
            redirect_uri = uris[0]
        host = display_host(redirect_uri) if isinstance(redirect_uri, str) else None
        return host or client_id

    def name_verified(self, client_id: str) -> bool:
        """Whether the operator checked this client's name (``verified_clients``).

        Anyone can register a client (OIDC Dynamic Registration) and call it "Your Bank":
        the consent page says so for every other client."""
        return client_id in self.verified_clients

    def scope_claims(self, scopes: Iterable[str]) -> list[str]:
        """The claims released for ``scopes`` (OIDC Core 5.4, and the provider's
        ``extra_scopes``), in the order of the scopes."""
        extra = self.provider.extra_scopes or {}
        claims: list[str] = []
        for scope in scopes:
            for claim in (*SCOPE_CLAIMS.get(scope, ()), *extra.get(scope, ())):
                if claim not in claims:
                    claims.append(claim)
        return claims

    def consented_claims(self, authn_req: Mapping[str, Any]) -> set[str]:
        """Every claim the request may release: those of its scopes and those named by its
        ``claims`` parameter (OIDC Core 5.4, 5.5). Consent is given, and remembered, for
        these claims."""
        return set(self.scope_claims(requested_scopes(authn_req))) | set(
            requested_claims(authn_req))

    def has_consent(self, authn_req: Mapping[str, Any]) -> bool:
        """Whether the logged-in user already allowed this client these scopes and every
        claim they and the ``claims`` parameter ask for (or more).

        The claims are compared one by one: a consent to the ``profile`` scope is not a
        consent to claims that are added to it later, nor to claims asked for by name.
        ``offline_access`` always asks again: consent for it must be obtained with
        ``prompt=consent`` (OIDC Core 11).
        """
        user_id = self.current_user()
        if user_id is None:
            return False
        scopes = set(requested_scopes(authn_req))
        if "offline_access" in scopes:
            return False
        granted = self.granted(user_id, authn_req["client_id"])
        return scopes <= set(granted.get("scopes") or []) and \
            self.consented_claims(authn_req) <= set(granted.get("claims") or [])

    def remember_consent(self, authn_req: Mapping[str, Any]) -> None:
        """Store that the logged-in user allowed this client these scopes and claims (those
        of the scopes and those named by the ``claims`` parameter)."""
        user_id = self.current_user()
        if user_id is None:  # pragma: no cover - callers check
            return
        client_id = authn_req["client_id"]
        granted = self.granted(user_id, client_id)
        grants = [grant for grant in (self.consents.get(user_id) or {}).get("grants") or []
                  if grant.get("client_id") != client_id]
        grants.append({
            "client_id": client_id,
            "scopes": sorted(set(granted.get("scopes") or [])
                             | set(requested_scopes(authn_req)) - {"offline_access"}),
            "claims": sorted(set(granted.get("claims") or []) | self.consented_claims(authn_req)),
        })
        self.consents[user_id] = {"grants": grants}

    def granted(self, user_id: str, client_id: str) -> dict[str, Any]:
        """What ``user_id`` allowed ``client_id``: ``{"scopes": [...], "claims": [...]}``."""
        for grant in (self.consents.get(user_id) or {}).get("grants") or []:
            if grant.get("client_id") == client_id:
                return dict(grant)
        return {}

    def forget_consents(self, user_id: Optional[str] = None) -> None:
        """Forget what ``user_id`` (default: every user) allowed: the consent page is shown
        again."""
        for key in [user_id] if user_id is not None else list(self.consents.keys()):
            self.consents.delete(key)

    @staticmethod
    def consent_prompted(authn_req: Mapping[str, Any]) -> bool:
        """``prompt=consent``: the consent page is shown even when remembered (OIDC Core
        3.1.2.1)."""
        prompt = authn_req.get("prompt") or []
        return "consent" in (prompt.split() if isinstance(prompt, str) else prompt)

    def issue_response(self, stored_request: Mapping[str, Any]) -> BaseResponse:
        """Run :meth:`Provider.authorize` for the logged-in user and redirect to the client."""
        user_id = self.current_user()
        if user_id is None:  # pragma: no cover - callers check
            return self.error_page("You are not logged in.")
        authn_req = AuthorizationRequest().from_dict(dict(stored_request))
        try:
            # the grant belongs to this login session: logging it out revokes the grant
            response = self.provider.authorize(authn_req, user_id,
                                               auth_time=session.get("auth_time"),
                                               session_id=self.login_session_id())
        except OAuthError as e:  # e.g. the client was deleted meanwhile
            if isinstance(e, InvalidAuthenticationRequest) and e.redirectable:
                # the request's constraints are not met (an id_token_hint naming another
                # user, an essential acr...): the client learns it from the error
                return self.authentication_error(e)
            self.log_refused(e)
            return self.error_page(
                "The sign-in cannot be completed: the application that sent you here is no "
                "longer known to this service.", title="Sign-in failed", error=e,
                back=(url_for("index"), "Go to the home page"))
        client = self.provider.get_client(authn_req["client_id"]) or {}
        if client.get("subject_type", "public") == "public":
            # remembered for RP-initiated logout (this OP supports public subjects only)
            session["sub"] = self.provider.authz_state.get_subject_identifier("public", user_id)
        if should_form_post(authn_req):
            return self.form_post_page(render_form_post(response, authn_req["redirect_uri"]))
        url = response.request(authn_req["redirect_uri"], should_fragment_encode(authn_req))
        return redirect(url, 303)

    def check_csrf(self) -> Optional[Response]:
        """None when the form carries this session's CSRF token; else the 400 error page."""
        expected = session.get("csrf")
        given = request.form.get("csrf_token", "")
        if not isinstance(expected, str) or not hmac.compare_digest(
                given.encode("utf-8"), expected.encode("utf-8")):
            return self.error_page("The form expired or was not sent by this site. "
                                   "Go back, reload the page and try again.",
                                   title="Form expired")
        return None

    # -- pages and endpoints ---------------------------------------------------------------------

    def index(self) -> ResponseReturnValue:
        user_id = self.current_user()
        return render_template(
            "index.html", issuer=self.provider.issuer,
            user=self.users.display_name(user_id) if user_id else None)

    def discovery(self) -> ResponseReturnValue:
        """Provider metadata (OIDC Discovery 4)."""
        return self.json_response(self.provider.provider_configuration.to_json(),
                                  headers={"Access-Control-Allow-Origin": "*"})

    def jwks(self) -> ResponseReturnValue:
        """The public signing keys (RFC 7517 5)."""
        return self.json_response(json.dumps(self.provider.jwks),
                                  headers={"Access-Control-Allow-Origin": "*"})

    def authorization(self) -> ResponseReturnValue:
        """Authorization endpoint (OIDC Core 3.1.2): validate, then login and consent."""
        body: Union[bytes, str] = request.get_data() if request.method == "POST" \
            else request.query_string
        try:
            authn_req = self.provider.parse_authentication_request(body)
        except InvalidAuthenticationRequest as e:
            return self.authentication_error(e)
        user_id = self.current_user()
        # prompt=login, max_age, and an id_token_hint naming another user than the one
        # logged in all need a (new) login (OIDC Core 3.1.2.1)
        needs_login = user_id is None or self.provider.requires_authentication(
            authn_req, session.get("auth_time"), user_id=user_id)
        if "none" in (authn_req.get("prompt") or []):  # OIDC Core 3.1.2.1: no UI at all
            if needs_login:
                return self.authentication_error(self.provider.create_authentication_error(
                    authn_req, "login_required", "the end-user is not logged in"))
            if not self.has_consent(authn_req):
                return self.authentication_error(self.provider.create_authentication_error(
                    authn_req, "consent_required", "the end-user has not consented"))
            return self.issue_response(authn_req.to_dict())
        stored = authn_req.to_dict()
        if len(json.dumps(stored)) > MAX_STORED_REQUEST:
            # it is kept in the session cookie, which browsers cap at about 4 kB
            return self.authentication_error(self.provider.create_authentication_error(
                authn_req, "invalid_request", "the request is too large for this provider"))
        if not needs_login and not self.consent_prompted(authn_req) and \
                self.has_consent(authn_req):
            return self.issue_response(stored)
        session["pending"] = {"id": secrets.token_urlsafe(16), "request": stored,
                              "login": needs_login}
        return redirect(url_for("login" if needs_login else "consent"), 303)

    def login(self) -> ResponseReturnValue:
        """The login form (GET) and the password check (POST)."""
        pending = session.get("pending")
        authn_req = pending["request"] if pending else {}
        context = {
            "demo": self.demo,
            "client_name": self.client_name(authn_req["client_id"], authn_req.get("redirect_uri"))
            if authn_req else None,
            "username": authn_req.get("login_hint", ""),
            "error": None,
        }
        if request.method == "GET":
            return render_template("login.html", **context)
        refused = self.check_csrf()
        if refused:
            return refused
        username = request.form.get("username", "")[:MAX_USERNAME_LENGTH]
        context["username"] = username
        # throttled attempts are refused before the (costly) password check
        wait = self.throttle.retry_after(username, request.remote_addr)
        if wait:
            return self.login_throttled(context, wait)
        if not self.throttle.begin_check():  # others' password checks take every slot
            return self.login_throttled(context, 1, "The service is busy.")
        try:
            user_id = self.users.authenticate(username, request.form.get("password", ""))
        finally:
            self.throttle.end_check()
        if user_id is None:
            self.throttle.failed(username, request.remote_addr)
            context.update(error="Wrong username or password.")
            return render_template("login.html", **context)
        self.throttle.succeeded(username)
        self.start_session(user_id)  # a new session for the new login: fresh CSRF token
        if not pending:
            return redirect(url_for("index"), 303)
        if not self.consent_prompted(pending["request"]) and \
                self.has_consent(pending["request"]):
            return self.issue_response(pending["request"])
        pending["login"] = False
        session["pending"] = pending
        return redirect(url_for("consent"), 303)

    @staticmethod
    def login_throttled(context: dict[str, Any], wait: int,
                        reason: str = "Too many failed sign-in attempts.") -> Response:
        """The login form again, 429 with ``Retry-After`` (RFC 6585 4); the password was
        not checked."""
        minutes = -(-wait // 60)
        delay = f"{wait} second{'s' if wait > 1 else ''}" if wait < 60 else \
            f"{minutes} minute{'s' if minutes > 1 else ''}"
        context["error"] = f"{reason} Wait {delay} and try again."
        return Response(render_template("login.html", **context), status=429,
                        mimetype="text/html", headers={"Retry-After": str(wait)})

    def consent(self) -> ResponseReturnValue:
        """Show the client and what it asks for (GET); approve or deny it (POST)."""
        pending = session.get("pending")
        if not pending:
            return self.error_page("There is no sign-in request in progress. Start again from "
                                   "the application you were signing in to.",
                                   title="Nothing to approve")
        if self.current_user() is None or pending.get("login"):
            return redirect(url_for("login"), 303)
        authn_req = pending["request"]
        if request.method == "GET":
            context = self.consent_context(pending)
            page = Response(render_template("consent.html", **context), mimetype="text/html")
            if context["logo_origin"]:  # the client's logo, loaded from its origin only
                page.headers["Content-Security-Policy"] = _HTML_SECURITY_HEADERS[
                    "Content-Security-Policy"].replace(
                        "img-src 'self'", "img-src 'self' " + context["logo_origin"])
            return page
        refused = self.check_csrf()
        if refused:
            return refused
        if not hmac.compare_digest(request.form.get("request_id", "").encode("utf-8"),
                                      str(pending["id"]).encode("utf-8")):
            return self.error_page("This page belongs to another sign-in request. Start again "
                                   "from the application you were signing in to.",
                                   title="Sign-in request changed")
        session.pop("pending")
        if request.form.get("decision") != "approve":
            return self.authentication_error(self.provider.create_authentication_error(
                authn_req, "access_denied", "the end-user denied the request"))
        self.remember_consent(authn_req)
        return self.issue_response(authn_req)

    def consent_context(self, pending: Mapping[str, Any]) -> dict[str, Any]:
        """What the consent page shows: the client (its name, marked unverified unless the
        operator checked it; its logo, privacy policy and terms when registered, OIDC
        Dynamic Registration 2), each scope with the claims it releases, the claims asked
        for by name (OIDC Core 5.5), and where the user will be sent."""
        authn_req = pending["request"]
        client_id = authn_req["client_id"]
        client = self.provider.get_client(client_id) or {}
        user_id = self.current_user() or ""
        claims = [(name, CLAIM_DESCRIPTIONS.get(name, "The claim named " + name), essential)
                  for name, essential in sorted(requested_claims(authn_req).items())]
        links = {name: client.get(name) if isinstance(client.get(name), str) and
                 client[name].startswith(("https://", "http://")) else None
                 for name in ("policy_uri", "tos_uri")}
        logo_origin = https_origin(client.get("logo_uri"))  # https logos only
        return {
            "client_name": self.client_name(client_id, authn_req["redirect_uri"]),
            "name_verified": self.name_verified(client_id),
            "logo_uri": client["logo_uri"] if logo_origin else None,
            "logo_origin": logo_origin,
            **links,
            "redirect_host": display_host(authn_req["redirect_uri"]) or "",
            "scopes": [(scope, SCOPE_DESCRIPTIONS.get(scope, "Access named " + scope),
                        self.scope_claims([scope]))
                       for scope in requested_scopes(authn_req)],
            "claims": claims,
            "user": self.users.display_name(user_id),
            "request_id": pending["id"],
        }

    @staticmethod
    def endpoint_url() -> str:
        """The URL the client called, as it knows it: the issuer's URL and the path of
        the request (what a DPoP proof's ``htu`` names, RFC 9449 4.3), also behind a proxy
        that rewrites the host."""
        return str(current_app.config["PYOP_EXAMPLE"]["issuer"]) + request.path

    @staticmethod
    def dpop_error_headers(error: OAuthError) -> dict[str, str]:
        """``DPoP-Nonce`` of a ``use_dpop_nonce`` error (RFC 9449 8), none otherwise."""
        return dict(error.headers) if isinstance(error, InvalidDPoPProof) else {}

    def token(self) -> ResponseReturnValue:
        """Token endpoint (RFC 6749 3.2, 5.1, 5.2; OIDC Core 3.1.3; RFC 9449 5)."""
        return self.client_endpoint(self.provider.handle_token_request, 200)

    def pushed_authorization(self) -> ResponseReturnValue:
        """Pushed authorization request endpoint (RFC 9126 2.2: 201; 2.3: errors; RFC
        9449 10.1: a DPoP proof binds the request to its key)."""
        return self.client_endpoint(self.provider.handle_pushed_authorization_request)

    def client_endpoint(self, handle: Callable[..., Any],
                        status: Optional[int] = None) -> ResponseReturnValue:
        """An endpoint where the client authenticates (token, PAR): the request as received
        (method and URL for DPoP), 401 with a ``Basic`` challenge when the client
        authentication fails (RFC 6749 5.2), the RFC 9449 headers with a DPoP error; the
        answer with ``status``, else the response's own ``http_status``."""
        try:
            response = handle(request.get_data(), request.headers, http_method=request.method,
                              http_url=self.endpoint_url())
        except InvalidClientAuthentication as e:
            self.log_refused(e)
            return self.json_response(e.to_json(), 401, {**_JSON_NO_STORE,
                                                         "WWW-Authenticate": 'Basic realm="pyop"'})
        except OAuthError as e:
            self.log_refused(e)
            return self.json_response(e.to_json(), e.http_status,
                                      {**_JSON_NO_STORE, **self.dpop_error_headers(e)})
        return self.json_response(response.to_json(), status or response.http_status,
                                  _JSON_NO_STORE)

    def userinfo(self) -> ResponseReturnValue:
        """UserInfo endpoint (OIDC Core 5.3; errors per RFC 6750 3 and, for DPoP, RFC 9449
        7.1: a ``DPoP`` challenge and ``DPoP-Nonce``)."""
        body: Union[bytes, str] = request.get_data() if request.method == "POST" \
            else request.query_string
        try:
            response = self.provider.handle_userinfo_request(
                body, request.headers, http_method=request.method,
                http_url=self.endpoint_url())
        except BearerTokenError as e:
            self.log_refused(e)
            challenge = (e.headers if isinstance(e, DPoPTokenError)
                         else {"WWW-Authenticate": e.www_authenticate})
            return self.json_response(e.to_json(), e.http_status,
                                      {**_JSON_NO_STORE, **challenge})
        except OAuthError as e:
            self.log_refused(e)
            return self.json_response(e.to_json(), e.http_status, _JSON_NO_STORE)
        # JSON, or a signed JWT for clients that registered userinfo_signed_response_alg
        reply = Response(response.to_body(), status=200, content_type=response.content_type)
        reply.headers.update(_JSON_NO_STORE)
        return reply

    def registration(self) -> ResponseReturnValue:
        """Open dynamic client registration (OIDC Dynamic Registration 3)."""
        try:
            response = self.provider.handle_client_registration_request(request.get_data())
        except InvalidClientRegistrationRequest as e:
            self.log_refused(e)
            return self.json_response(e.to_json(), 400, _JSON_NO_STORE)
        return self.json_response(response.to_json(), 201, _JSON_NO_STORE)

    def client_configuration(self, client_id: str) -> ResponseReturnValue:
        """The client configuration endpoint (RFC 7592 2): read, update, delete."""
        try:
            if request.method == "GET":
                response = self.provider.handle_client_read_request(client_id, request.headers)
            elif request.method == "PUT":
                response = self.provider.handle_client_update_request(
                    client_id, request.get_data(), request.headers)
            else:
                self.provider.handle_client_delete_request(client_id, request.headers)
                return Response(status=204, headers={"Cache-Control": "no-store"})
        except InvalidRegistrationAccessToken as e:
            self.log_refused(e)
            return self.json_response(e.to_json(), e.http_status,
                                      {**_JSON_NO_STORE, "WWW-Authenticate": e.www_authenticate})
        except InvalidClientRegistrationRequest as e:
            self.log_refused(e)
            return self.json_response(e.to_json(), 400, _JSON_NO_STORE)
        return self.json_response(response.to_json(), 200, _JSON_NO_STORE)

    def logout(self) -> ResponseReturnValue:
        """RP-initiated logout (OIDC RP-Initiated Logout 1.0).

        Logs out at once, and returns to the client, when the request carries an
        ``id_token_hint`` issued for the logged-in user (``id_token_hint_matches``).
        Otherwise asks first: a hint of another session or none at all must not log
        anyone out (section 2), and without a hint the return to the client named by
        ``client_id`` waits for the user's confirmation (section 3: anyone can name a
        client and its registered URI). The confirmation is a POST with the CSRF token.
        """
        confirmed = request.method == "POST"
        if confirmed:
            refused = self.check_csrf()
            if refused:
                return refused
            body: Any = {name: values for name, values in request.form.lists()
                         if name != "csrf_token"}
        else:
            body = request.query_string
        user_id = self.current_user()
        try:
            end_session_req = self.provider.parse_end_session_request(body)
            hint_matches = self.provider.id_token_hint_matches(end_session_req, user_id)
        except InvalidEndSessionRequest as e:
            return self.logout_error(e)
        return_client = self.provider.post_logout_redirect_client(end_session_req)
        proven_return = self.provider.do_post_logout_redirect(end_session_req)
        if not confirmed and ((user_id is not None and not hint_matches)
                              or (proven_return is None and return_client is not None)):
            return self.logout_confirmation(end_session_req, user_id is not None,
                                            return_client)
        result = None
        if user_id is not None:
            result = self.logout_session(end_session_req, hint_matches)
            self.end_session()
        url = self.provider.do_post_logout_redirect(end_session_req, confirmed=confirmed)
        if result is not None and result.frontchannel_urls:
            # Front-Channel Logout 1.0 4: one iframe per relying party, then the redirect
            page = result.frontchannel_page(url)
            return Response(page.html, status=200, mimetype="text/html", headers={
                "Content-Security-Policy": page.content_security_policy,
                "Cache-Control": "no-store"})
        if url:
            return redirect(url, 303)
        return render_template("logged_out.html")

    def logout_session(self, end_session_req: Mapping[str, Any], hint_matches: bool
                       ) -> Optional[LogoutResult]:
        """Revoke the grants of the logged-in session and notify its relying parties: the
        back-channel Logout Tokens are POSTed by pyop (its default sender, through the
        guarded outbound fetcher, within 5 seconds); the result lists the front-channel
        iframes. A session from before login sessions had ids: its ``sub``'s grants."""
        op_sid = self.login_session_id()
        try:
            if op_sid is not None:
                result = self.provider.logout_user(session_id=op_sid)
            elif session.get("sub"):  # the session's own sub
                result = self.provider.logout_user(session["sub"])
            elif hint_matches:  # the hint's only when it is this user's
                result = self.provider.logout_user(None, end_session_req)
            else:
                return None
        except InvalidSubjectIdentifier:
            return None  # nothing issued to this session (or already logged out)
        delivered = sum(1 for r in result.backchannel_results if r.delivered)
        logger.info("logout: %d relying parties, %d of %d back-channel notifications "
                    "delivered, %d front-channel", len(result.clients), delivered,
                    len(result.backchannel_results), len(result.frontchannel_urls))
        return result

    def logout_confirmation(self, end_session_req: Mapping[str, Any], logged_in: bool,
                            return_client: Optional[str]) -> ResponseReturnValue:
        """"Log out?" (signed in) or "Return to <client>?" (signed out): the form posts
        the request back. Only a client whose registered URI the request names is named,
        with that URI's host. "Stay signed in" returns to it (a link the user follows
        from this page), else goes home."""
        client_name = return_host = stay_url = None
        if return_client is not None:
            client_name = self.client_name(return_client)
            return_host = urlsplit(end_session_req["post_logout_redirect_uri"]).hostname
            stay_url = self.provider.do_post_logout_redirect(end_session_req, confirmed=True)
        return render_template("logout_confirm.html", fields=end_session_req.to_dict(),
                               logged_in=logged_in, client_name=client_name,
                               return_host=return_host, stay_url=stay_url or url_for("index"),
                               stay_label=f"Stay signed in and return to {client_name}"
                               if stay_url else "Stay signed in")

    def logout_error(self, error: InvalidEndSessionRequest) -> Response:
        """A refused logout request: its redirect URI cannot be trusted, the way back is home."""
        self.log_refused(error)
        return self.error_page(
            "The application that sent you here asked to log you out with a request this "
            "service cannot accept. You are still signed in; to log out, use the button on "
            "the home page.", title="Logout request refused", error=error,
            back=(url_for("index"), "Go to the home page"))

    # -- errors and headers ----------------------------------------------------------------------

    def storage_error(self, error: StorageError) -> ResponseReturnValue:
        """The storage is down: 503 (``server_error``), never details of the cause."""
        logger.error("%s %s failed: storage error %s", request.method, request.path,
                     type(error).__name__)
        if request.path in _PAGE_PATHS:
            return self.error_page("The service is temporarily unavailable. Try again later.",
                                   503, "Temporarily unavailable",
                                   back=(url_for("index"), "Go to the home page"))
        body = json.dumps({"error": "server_error",
                           "error_description": "temporarily unavailable"})
        return self.json_response(body, 503, {**_JSON_NO_STORE, "Retry-After": "30"})

    def http_error(self, error: HTTPException) -> ResponseReturnValue:
        """404, 405...: a page for browsers, JSON for the API endpoints."""
        status = error.code or 500
        if request.path.startswith(_API_PATHS):
            body = json.dumps({"error": "invalid_request", "error_description": error.name})
            response = self.json_response(body, status, _JSON_NO_STORE)
            if status == 405 and error.get_headers():  # the Allow header
                response.headers.update({k: v for k, v in error.get_headers()
                                         if k.lower() == "allow"})
            return response
        if status == 404:
            message = ("There is no page at this address. Check the address, or start "
                       "again from the home page.")
            title = "Page not found"
        elif status == 405:
            message = "This page cannot be used this way."
            title = "Not allowed"
        else:
            message = "The request cannot be handled."
            title = error.name
        page = self.error_page(message, status, title,
                               back=(url_for("index"), "Go to the home page"))
        for name, value in error.get_headers():
            if name.lower() == "allow":
                page.headers[name] = value
        return page

    def unexpected_error(self, error: Exception) -> ResponseReturnValue:
        """A bug: 500, logged with the exception type and where it was raised (its message
        may hold request data)."""
        if isinstance(error, HTTPException):  # pragma: no cover - Flask routes them above
            return self.http_error(error)
        frames = traceback.extract_tb(error.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" \
            if frames else "?"
        logger.error("%s %s failed: %s at %s", request.method, request.path,
                     type(error).__name__, where)
        if request.path.startswith(_API_PATHS):
            body = json.dumps({"error": "server_error"})
            return self.json_response(body, 500, _JSON_NO_STORE)
        return self.error_page("Something went wrong on our side. Try again later.", 500,
                               "Something went wrong",
                               back=(url_for("index"), "Go to the home page"))

    @staticmethod
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "text/html":
            for name, value in _HTML_SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response


def start_timer() -> None:
    g.request_started = time.perf_counter()


def log_request(response: Response) -> Response:
    """The access log line: method, path without the query string, status, duration.

    Never the query string (codes, states, tokens...), headers or form fields.
    """
    started = g.get("request_started")
    duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    access_logger.info("%s %s %d %.1fms", request.method, request.path,
                       response.status_code, duration)
    return response


def csrf_token() -> str:
    """This session's CSRF token (created on first use), for the hidden form fields."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def create_app(config: Optional[Mapping[str, Any]] = None) -> Flask:
    """Build the example OP.

    :param config: the configuration (see the module documentation); default:
        :func:`config_from_env`.
    :raises pyop.exceptions.InvalidConfiguration: e.g. an http issuer on a non-loopback host.
    :raises ValueError: a malformed users file or secret.
    """
    cfg = dict(config_from_env() if config is None else config)
    issuer = str(cfg.get("issuer") or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")
    data_dir = Path(cfg.get("data_dir") or DEFAULT_DATA_DIR)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    signing_key = _load_or_create_signing_key(
        Path(cfg.get("signing_key") or data_dir / "signing_key.pem"))
    users_file = Path(cfg.get("users_file") or DEFAULT_USERS_FILE)
    users = UserStore.from_file(users_file)
    demo = bool(cfg.get("demo", users_file.resolve() == DEFAULT_USERS_FILE.resolve()))
    stores, storage_description = _open_storage(cfg.get("storage_uri"), data_dir)
    subject_salt = cfg.get("subject_salt") or _read_or_create_secret(data_dir / "subject_salt")
    secret_key = cfg.get("secret_key") or _read_or_create_secret(data_dir / "session_secret")

    authz_state = AuthorizationState(
        HashBasedSubjectIdentifierFactory(subject_salt),
        stores["authz_codes"], stores["access_tokens"], stores["refresh_tokens"],
        stores["subject_identifiers"],
        refresh_token_lifetime=int(cfg.get("refresh_token_lifetime", 24 * 60 * 60)))
    configuration_information = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorization",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "registration_endpoint": issuer + "/registration",
        "end_session_endpoint": issuer + "/logout",
        "pushed_authorization_request_endpoint": issuer + "/par",
        "jwks_uri": issuer + "/jwks",
        "response_types_supported": RESPONSE_TYPES,
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token"],
        "id_token_signing_alg_values_supported": [signing_key.alg],
        "scopes_supported": ["openid", *SCOPE_CLAIMS, "offline_access"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": True,
        # capabilities beyond pyop 3's defaults are offered when configured
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "client_secret_jwt",
            "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "userinfo_signing_alg_values_supported": [signing_key.alg],
        "claim_types_supported": ["normal"],
        "authorization_response_iss_parameter_supported": True,
        # single logout (docs/logout.rst): pyop POSTs Logout Tokens through the fetcher
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
    }
    if cfg.get("dpop"):  # RFC 9449 5.1: advertised (and proofs read) only when configured
        configuration_information["dpop_signing_alg_values_supported"] = [
            "ES256", "PS256", "EdDSA"]
    # requests to URLs clients registered: public addresses over https only, unless the
    # operator lets relying parties on this machine be reached (development, tests)
    outbound = GuardedFetcher(allowed_networks=["127.0.0.0/8", "::1/128"], allow_http=True) \
        if cfg.get("outbound_allow_loopback") else GuardedFetcher()
    provider = Provider(signing_key, configuration_information, authz_state, stores["clients"],
                        Userinfo(users.claims), outbound_fetcher=outbound,
                        dpop_nonces=bool(cfg.get("dpop") and cfg.get("dpop_nonces")))

    app = Flask(__name__)
    secure = urlsplit(issuer).scheme == "https"
    app.config.update(
        SECRET_KEY=secret_key,
        # A cookie name of our own: browsers share cookies between ports of one host.
        SESSION_COOKIE_NAME="__Host-pyop-session" if secure else "pyop_example_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_PATH="/",
        MAX_CONTENT_LENGTH=1024 * 1024,
        PYOP_EXAMPLE={
            "issuer": issuer,
            "data_dir": str(data_dir),
            "storage": storage_description,
            "demo": demo,
            "users_file": str(users_file),
            "started": time.time(),
        },
    )
    app.extensions["pyop"] = provider
    example = ExampleProvider(provider, users, demo, stores["consents"], stores["sessions"],
                              cfg.get("verified_clients") or ())
    app.extensions["pyop_example"] = example
    example.register(app)
    return app
