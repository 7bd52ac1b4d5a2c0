"""A complete OpenID Provider as a bare WSGI application: the code of docs/integration-wsgi.rst.

No web framework: the HTTP plumbing uses the standard library only (``wsgiref``,
``urllib.parse``, ``http.cookies``). ``OpenIDProviderApp(provider, authenticate)``
is the WSGI callable; ``authenticate(username, password)`` is the host's own
password check, returning the local user id or None.

Executed by tests/test_docs_examples.py. Run a development server with
``python docs/examples/wsgi_app.py`` (see the ``__main__`` block at the end).
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qsl

from pyop.exceptions import (
    BearerTokenError,
    InvalidAuthenticationRequest,
    InvalidClientRegistrationRequest,
    InvalidEndSessionRequest,
    InvalidSubjectIdentifier,
    OAuthError,
    StorageError,
)
from pyop.provider import Provider
from pyop.storage import MemoryStorage, StorageBase
from pyop.util import should_fragment_encode

logger = logging.getLogger(__name__)

#: The host's password check: ``(username, password) -> user id or None``.
Authenticate = Callable[[str, str], Optional[str]]
StartResponse = Callable[..., Any]

#: Responses carrying credentials must not be cached (RFC 6749 5.1, 5.2).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Discovery and the JWK Set may be read by browser-based clients.
CORS = {"Access-Control-Allow-Origin": "*"}
#: Largest request body read, in bytes (pyop refuses parameters above 64 kB anyway).
MAX_BODY = 1024 * 1024
SESSION_COOKIE = "op_session"


# [request]
def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers as a dict: ``HTTP_AUTHORIZATION`` -> ``Authorization``.

    pyop looks header names up case-insensitively, so any spelling works.
    """
    headers = {key[5:].replace("_", "-").title(): value
               for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):  # not prefixed with HTTP_ in WSGI
        if environ.get(key):
            headers[key.replace("_", "-").title()] = environ[key]
    return headers


class RequestTooLarge(Exception):
    """The body is larger than MAX_BODY."""


class Request:
    """What the endpoints need from a WSGI ``environ``.

    ``query`` and ``body`` are bytes, as sent: pyop decodes them (UTF-8) and
    refuses malformed or oversized ones with the right OAuth error.
    """

    def __init__(self, environ: Mapping[str, Any], session: dict[str, Any]) -> None:
        self.method = environ["REQUEST_METHOD"].upper()
        self.script_name = environ.get("SCRIPT_NAME", "")  # where the app is mounted
        # PEP 3333: QUERY_STRING is a str holding the raw bytes as latin-1
        self.query = environ.get("QUERY_STRING", "").encode("latin-1")
        self.headers = request_headers(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY:
            raise RequestTooLarge()
        self.body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
        self.session = session

    @property
    def params(self) -> bytes:
        """The protocol parameters: the query string (GET) or the form body (POST)."""
        return self.query if self.method == "GET" else self.body

    @property
    def form(self) -> dict[str, str]:
        """The fields of an HTML form post (our own login, consent and logout forms)."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace")))
# [/request]


# [response]
class Response:
    """A status, headers and a body, sent through WSGI's ``start_response``."""

    def __init__(self, body: Union[str, bytes] = b"", status: int = 200,
                 content_type: str = "text/html; charset=utf-8",
                 headers: Optional[Mapping[str, str]] = None) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.headers = {"Content-Type": content_type, **(headers or {})}
        self.cookies: list[str] = []

    def send(self, start_response: StartResponse) -> Iterable[bytes]:
        status = f"{self.status} {HTTPStatus(self.status).phrase}"
        headers = [(name, value) for name, value in self.headers.items()]
        headers += [("Set-Cookie", cookie) for cookie in self.cookies]
        headers.append(("Content-Length", str(len(self.body))))
        start_response(status, headers)
        return [self.body]


def json_response(body: str, status: int = 200,
                  headers: Optional[Mapping[str, str]] = None) -> Response:
    return Response(body, status, "application/json", headers)


def redirect(url: str) -> Response:
    """A 303 redirect: the browser follows it with GET (RFC 9110 15.4.4)."""
    return Response(b"", 303, headers={"Location": url})


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>"""

PAGE_HEADERS = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY",
                "Cache-Control": "no-store"}


def page(title: str, body_html: str, status: int = 200) -> Response:
    """An HTML page; ``body_html`` must already be escaped."""
    return Response(PAGE.format(title=html.escape(title), body=body_html), status,
                    headers=PAGE_HEADERS)


def message_page(title: str, message: str, status: int = 200) -> Response:
    return page(title, f"<p>{html.escape(message)}</p>", status)


def hidden(name: str, value: Any) -> str:
    return (f'<input type="hidden" name="{html.escape(name)}" '
            f'value="{html.escape(str(value))}">')


# The forms; the values are escaped by the callers.
LOGIN_FORM = """<form method="post">{csrf}{error}
  <label>Username <input name="username" autocomplete="username"></label>
  <label>Password <input name="password" type="password"
                         autocomplete="current-password"></label>
  <button>Log in</button>
</form>"""

CONSENT_FORM = """<p>{client_name} asks for: {scopes}.</p>
<form method="post">{csrf}
  <button name="decision" value="allow">Allow</button>
  <button name="decision" value="deny">Deny</button>
</form>"""

LOGOUT_FORM = """<form method="post">{csrf}{fields}
  <button>Log out</button>
</form>"""
# [/response]


# [app]
class OpenIDProviderApp:
    """The WSGI application of an OpenID Provider.

    :param provider: the pyop provider (see ``provider_setup.make_provider``).
    :param authenticate: checks a username and password; returns the user id or None.
    :param sessions: where end-user sessions are kept: any pyop store (records
        expire); the default is this process's memory. Use a shared store,
        e.g. ``RedisWrapper``, with several worker processes.
    :param session_lifetime: seconds a session lasts.
    """

    def __init__(self, provider: Provider, authenticate: Authenticate, *,
                 sessions: Optional[StorageBase] = None,
                 session_lifetime: int = 8 * 60 * 60) -> None:
        self.provider = provider
        self.authenticate = authenticate
        self.sessions = sessions if sessions is not None else MemoryStorage()
        self.session_lifetime = session_lifetime
        self.secure_cookies = provider.issuer.startswith("https://")
        self.routes: dict[str, tuple[Callable[[Request], Response], set[str]]] = {
            "/.well-known/openid-configuration": (self.discovery, {"GET"}),
            "/jwks": (self.jwks, {"GET"}),
            "/authorization": (self.authorization, {"GET", "POST"}),
            "/login": (self.login, {"GET", "POST"}),
            "/consent": (self.consent, {"GET", "POST"}),
            "/token": (self.token, {"POST"}),
            "/userinfo": (self.userinfo, {"GET", "POST"}),
            "/registration": (self.registration, {"POST"}),
            "/logout": (self.logout, {"GET", "POST"}),
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        """The WSGI entry point (PEP 3333)."""
        route = self.routes.get(environ.get("PATH_INFO") or "/")
        method = environ["REQUEST_METHOD"].upper()
        if route is None:
            return message_page("Not found", "There is nothing here.", 404).send(start_response)
        handler, methods = route
        if method not in methods:
            response = message_page("Method not allowed", method, 405)
            response.headers["Allow"] = ", ".join(sorted(methods))
            return response.send(start_response)
        try:
            session_id, session = self.load_session(environ)
            request = Request(environ, session)
            response = handler(request)
            self.save_session(session_id, request, response)
        except RequestTooLarge:
            response = message_page("Request too large", "The request body is too large.", 413)
        except StorageError as e:
            response = self.storage_error(e)
        return response.send(start_response)
    # [/app]

    # [sessions]
    def load_session(self, environ: Mapping[str, Any]) -> tuple[Optional[str], dict[str, Any]]:
        """The session named by the cookie: (its id, a copy of its data)."""
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        morsel = cookie.get(SESSION_COOKIE)
        session_id = morsel.value if morsel is not None else None
        data = self.sessions.get(session_id) if session_id else None
        if not isinstance(data, dict):
            return None, {}
        return session_id, data

    def save_session(self, session_id: Optional[str], request: Request,
                     response: Response) -> None:
        """Store the session if it changed; a new id at login (``_renew``), none when empty."""
        data = request.session
        renew = bool(data.pop("_renew", False))
        if session_id is not None and (renew or not data):
            self.sessions.delete(session_id)
            session_id = None
        if not data:
            return
        if session_id is None:
            session_id = secrets.token_urlsafe(32)
            attributes = f"Path=/; HttpOnly; SameSite=Lax; Max-Age={self.session_lifetime}"
            if self.secure_cookies:
                attributes += "; Secure"
            response.cookies.append(f"{SESSION_COOKIE}={session_id}; {attributes}")
        self.sessions.set(session_id, data, expires_at=time.time() + self.session_lifetime)

    @staticmethod
    def csrf_token(request: Request) -> str:
        """The session's CSRF token, for the hidden field of every form."""
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        token: str = request.session["csrf"]
        return token

    @staticmethod
    def csrf_ok(request: Request) -> bool:
        """Whether the submitted form carries the session's CSRF token."""
        expected = request.session.get("csrf", "")
        given = request.form.get("csrf_token", "")
        return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
    # [/sessions]

    # [discovery]
    def discovery(self, request: Request) -> Response:
        """Provider metadata (OIDC Discovery 4)."""
        return json_response(self.provider.provider_configuration.to_json(), headers=CORS)

    def jwks(self, request: Request) -> Response:
        """The public signing keys, at the ``jwks_uri`` (RFC 7517 5)."""
        return json_response(json.dumps(self.provider.jwks), headers=CORS)
    # [/discovery]

    # [authorization]
    def authorization(self, request: Request) -> Response:
        """Authorization endpoint (OIDC Core 3.1.2): validate, then log in and ask consent."""
        provider = self.provider
        try:
            authn_req = provider.parse_authentication_request(request.params, request.headers)
        except InvalidAuthenticationRequest as e:
            return self.authentication_error(e)

        session = request.session
        # log in again when not logged in, for prompt=login, or when max_age has passed
        auth_time = session.get("auth_time") if "user_id" in session else None
        must_log_in = provider.requires_authentication(authn_req, auth_time)

        if "none" in (authn_req.get("prompt") or []):
            # prompt=none: no page may be shown, answer at once (OIDC Core 3.1.2.1)
            if must_log_in:
                return self.authentication_error(
                    provider.create_authentication_error(authn_req, "login_required"))
            if not self.has_consented(request, authn_req):
                return self.authentication_error(
                    provider.create_authentication_error(authn_req, "consent_required"))
            return self.authentication_response(request, authn_req.to_dict())

        # keep the validated request while the end-user logs in and consents
        session["authn_req"] = authn_req.to_dict()
        return redirect(request.script_name + ("/login" if must_log_in else "/consent"))

    @staticmethod
    def authentication_error(error: InvalidAuthenticationRequest) -> Response:
        """Redirect an error to the client when pyop allows it, else show it (OIDC Core 3.1.2.6).

        ``to_error_url()`` is None while the client and its redirect URI are not
        verified: such an error must never be sent to the URI found in the request.
        """
        url = error.to_error_url()
        if url:
            return redirect(url)
        return message_page("Invalid request", f"The sign-in request is invalid: {error}", 400)

    def authentication_response(self, request: Request,
                                authn_req: Mapping[str, Any]) -> Response:
        """Issue the response for the logged-in user and send the browser back to the client."""
        session = request.session
        user_id = session["user_id"]
        try:
            response = self.provider.authorize(authn_req, user_id,
                                               auth_time=session["auth_time"])
        except InvalidAuthenticationRequest as e:  # another user's sub was requested
            return self.authentication_error(e)
        except OAuthError as e:  # e.g. the client was deleted meanwhile
            return message_page("Request refused", str(e), 400)
        # the sub this client knows the user by, for logout
        session["sub"] = self.provider.subject_identifier_for(
            authn_req["client_id"], user_id, authn_req["redirect_uri"])
        return redirect(response.request(authn_req["redirect_uri"],
                                         should_fragment_encode(authn_req)))
    # [/authorization]

    # [login]
    def login(self, request: Request) -> Response:
        """The host's own login page: pyop is not involved until the user is known."""
        session = request.session
        error = ""
        if request.method == "POST":
            if not self.csrf_ok(request):
                return message_page("Form expired", "Reload the page and try again.", 400)
            form = request.form
            user_id = self.authenticate(form.get("username", ""), form.get("password", ""))
            if user_id is not None:
                authn_req = session.get("authn_req")
                session.clear()
                session["_renew"] = True  # a new session id at login (no session fixation)
                session["user_id"] = user_id
                session["auth_time"] = time.time()  # to authorize() as auth_time (sub-second)
                if authn_req is None:
                    return message_page("Logged in", "You are logged in.")
                session["authn_req"] = authn_req
                return redirect(request.script_name + "/consent")
            error = '<p role="alert">Wrong username or password.</p>'
        csrf = hidden("csrf_token", self.csrf_token(request))
        return page("Log in", LOGIN_FORM.format(csrf=csrf, error=error))

    def consent(self, request: Request) -> Response:
        """Ask the end-user; then authorize() and redirect back to the client."""
        session = request.session
        authn_req = session.get("authn_req")
        if authn_req is None:
            return message_page("Nothing to approve", "No sign-in request is in progress.", 400)
        if "user_id" not in session:
            return redirect(request.script_name + "/login")
        if request.method == "GET":
            client = self.provider.get_client(authn_req["client_id"]) or {}
            return page("Allow access?", CONSENT_FORM.format(
                client_name=html.escape(client.get("client_name") or authn_req["client_id"]),
                scopes=html.escape(", ".join(requested_scopes(authn_req))),
                csrf=hidden("csrf_token", self.csrf_token(request))))
        if not self.csrf_ok(request):
            return message_page("Form expired", "Reload the page and try again.", 400)
        del session["authn_req"]
        if request.form.get("decision") != "allow":
            return self.authentication_error(self.provider.create_authentication_error(
                authn_req, "access_denied", "the end-user denied the request"))
        consents = dict(session.get("consents") or {})
        granted = set(consents.get(authn_req["client_id"], []))
        consents[authn_req["client_id"]] = sorted(granted | set(requested_scopes(authn_req)))
        session["consents"] = consents
        return self.authentication_response(request, authn_req)

    @staticmethod
    def has_consented(request: Request, authn_req: Mapping[str, Any]) -> bool:
        """Whether the end-user already allowed these scopes for this client in this session."""
        granted = (request.session.get("consents") or {}).get(authn_req["client_id"], [])
        return set(requested_scopes(authn_req)) <= set(granted)
    # [/login]

    # [token]
    def token(self, request: Request) -> Response:
        """Token endpoint (RFC 6749 3.2, 5.1, 5.2; OIDC Core 3.1.3)."""
        try:
            response = self.provider.handle_token_request(request.body, request.headers)
        except OAuthError as e:
            headers = dict(NO_STORE)
            if e.http_status == 401:  # invalid_client: failed client authentication
                headers["WWW-Authenticate"] = 'Basic realm="token"'
            return json_response(e.to_json(), e.http_status, headers)
        return json_response(response.to_json(), 200, NO_STORE)
    # [/token]

    # [userinfo]
    def userinfo(self, request: Request) -> Response:
        """UserInfo endpoint (OIDC Core 5.3); errors as in RFC 6750 3."""
        try:
            response = self.provider.handle_userinfo_request(request.params, request.headers)
        except BearerTokenError as e:
            # 400, 401 or 403, with WWW-Authenticate: Bearer error="..."
            return json_response(e.to_json(), e.http_status,
                                 {**NO_STORE, "WWW-Authenticate": e.www_authenticate})
        # JSON, or a signed JWT (application/jwt) for clients that registered
        # userinfo_signed_response_alg (OIDC Core 5.3.2)
        return Response(response.to_body(), 200, response.content_type, NO_STORE)
    # [/userinfo]

    # [registration]
    def registration(self, request: Request) -> Response:
        """Dynamic client registration (OIDC Dynamic Registration 3): 201 or 400."""
        try:
            response = self.provider.handle_client_registration_request(request.body)
        except InvalidClientRegistrationRequest as e:
            return json_response(e.to_json(), 400, NO_STORE)
        return json_response(response.to_json(), 201, NO_STORE)
    # [/registration]

    # [logout]
    def logout(self, request: Request) -> Response:
        """RP-initiated logout: confirm (GET), then log out and redirect (POST)."""
        provider = self.provider
        session = request.session
        if request.method == "GET":
            params: Any = request.query
        else:
            if not self.csrf_ok(request):
                return message_page("Form expired", "Reload the page and try again.", 400)
            params = {name: value for name, value in request.form.items()
                      if name != "csrf_token"}
        try:
            end_session_req = provider.parse_end_session_request(params)
        except InvalidEndSessionRequest as e:
            return message_page("Invalid logout request", str(e), 400)

        if request.method == "GET" and "user_id" in session:
            # ask first: a mere link must not log the end-user out
            fields = "".join(hidden(name, value)
                             for name, value in end_session_req.to_dict().items())
            csrf = hidden("csrf_token", self.csrf_token(request))
            return page("Log out?", LOGOUT_FORM.format(csrf=csrf, fields=fields))
        try:
            provider.logout_user(session.get("sub"), end_session_req)
        except InvalidEndSessionRequest as e:  # e.g. an id_token_hint we did not issue
            return message_page("Invalid logout request", str(e), 400)
        except InvalidSubjectIdentifier:
            pass  # nothing was issued in this session, or it was logged out already
        session.clear()
        url = provider.do_post_logout_redirect(end_session_req)
        if url:
            return redirect(url)
        return message_page("Logged out", "You are logged out.")
    # [/logout]

    # [storage_error]
    @staticmethod
    def storage_error(error: StorageError) -> Response:
        """The storage backend failed: 503, to be retried; never a protocol error."""
        logger.error("storage failure: %s", error)
        body = json.dumps({"error": "server_error", "error_description": "try again later"})
        return json_response(body, 503, {**NO_STORE, "Retry-After": "30"})
    # [/storage_error]


def requested_scopes(authn_req: Mapping[str, Any]) -> list[str]:
    """The scope values of a request kept in the session (``to_dict()``: a string)."""
    scope = authn_req.get("scope") or ""
    return scope.split() if isinstance(scope, str) else list(scope)


# [main]
if __name__ == "__main__":  # development server: python docs/examples/wsgi_app.py
    import os
    from wsgiref.simple_server import make_server

    from provider_setup import make_provider

    def demo_authenticate(username: str, password: str) -> Optional[str]:
        """Demo only: alice / alice. Check real password hashes instead."""
        return "alice" if (username, password) == ("alice", "alice") else None

    demo_provider = make_provider(
        "http://127.0.0.1:8000", os.environ.get("SIGNING_KEY", "signing_key.pem"),
        {"alice": {"name": "Alice Liddell", "email": "alice@example.com"}},
        sub_hash_salt=os.environ["SUB_HASH_SALT"])
    app = OpenIDProviderApp(demo_provider, demo_authenticate)
    with make_server("127.0.0.1", 8000, app) as server:
        print("issuer http://127.0.0.1:8000")
        server.serve_forever()
# [/main]
