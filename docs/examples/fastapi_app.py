"""A complete OpenID Provider on FastAPI: the code of docs/integration-fastapi.rst.

``create_app(provider, authenticate, secret_key)`` returns a FastAPI (ASGI) application
serving every endpoint. ``authenticate(username, password)`` is the host's own password
check: it returns the local user id, or None.

pyop's :class:`~pyop.provider.Provider` is synchronous: it reads and writes storage
(Redis, PostgreSQL, MongoDB...) and looks up claims in the host's user source while the
call runs. Every call that may do so runs in Starlette's thread pool
(``run_in_threadpool``) so that the event loop keeps serving other requests meanwhile;
see the guide for the measurement. ``fastapi_async_app.py`` is this application on
``pyop.aio.AsyncProvider``, awaited without a thread pool; it imports the request
parsing, helpers and pages below.

Executed by tests/test_docs_examples.py. Run a development server with
``python docs/examples/fastapi_app.py`` (see the ``__main__`` block at the end).
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

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
from pyop.util import should_fragment_encode

logger = logging.getLogger(__name__)

#: The host's password check: ``(username, password) -> user id or None``.
Authenticate = Callable[[str, str], Optional[str]]

#: Responses carrying credentials must not be cached (RFC 6749 5.1, 5.2).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Discovery and the JWK Set may be read by browser-based clients.
CORS = {"Access-Control-Allow-Origin": "*"}

router = APIRouter()


# [create_app]
def create_app(provider: Provider, authenticate: Authenticate, secret_key: str) -> FastAPI:
    """The FastAPI application of the provider.

    :param provider: the pyop provider (see ``provider_setup.make_provider``).
    :param authenticate: checks a username and password; returns the user id or None.
        Called in the thread pool, so it may block (a database, an LDAP bind).
    :param secret_key: signs the session cookie; long, random and kept secret.
    """
    # no OpenAPI schema or /docs pages: the protocol endpoints are described by discovery
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.provider = provider
    app.state.authenticate = authenticate
    app.add_middleware(SessionMiddleware, secret_key=secret_key, session_cookie="op_session",
                       same_site="lax", https_only=provider.issuer.startswith("https://"))
    app.add_exception_handler(StorageError, storage_error)
    app.include_router(router)
    return app


def get_provider(request: Request) -> Provider:
    """The provider of the running application."""
    provider: Provider = request.app.state.provider
    return provider
# [/create_app]


# [request]
async def protocol_parameters(request: Request) -> bytes:
    """The raw query string (GET) or body (POST), as bytes, for pyop to parse and check.

    Not ``request.query_params`` or ``await request.form()``: those hide repeated
    parameters, which pyop must refuse, and pyop answers bytes that are not UTF-8
    with ``invalid_request``.
    """
    if request.method == "GET":
        query: bytes = request.scope["query_string"]
        return query
    return await request.body()


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of our own HTML forms (login, consent, logout).

    Parsed from the body with the standard library, so no multipart parser is needed.
    """
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
# [/request]


# [helpers]
def json_response(body: str, status: int = 200,
                  headers: Optional[Mapping[str, str]] = None) -> Response:
    return Response(body, status_code=status, media_type="application/json",
                    headers=dict(headers or {}))


def see_other(url: str) -> Response:
    """A 303 redirect: the browser follows it with GET (RFC 9110 15.4.4)."""
    return Response(status_code=303, headers={"Location": url})


def authentication_error(error: InvalidAuthenticationRequest) -> Response:
    """Redirect an error to the client when pyop allows it, else show it (OIDC Core 3.1.2.6).

    ``to_error_url()`` is None while the client and its redirect URI are not
    verified: such an error must never be sent to the URI found in the request.
    """
    url = error.to_error_url()
    if url:
        return see_other(url)
    return message_page("Invalid request", f"The sign-in request is invalid: {error}", 400)


def issue_response(provider: Provider, authn_req: Mapping[str, Any], user_id: str,
                   auth_time: float) -> tuple[str, str]:
    """The pyop side of a sign-in, run in the thread pool: the URL that sends the
    response to the client, and the ``sub`` the client knows the user by (for logout).

    :raises InvalidAuthenticationRequest: e.g. another user's ``sub`` was requested.
    :raises OAuthError: e.g. the client was deleted meanwhile.
    """
    response = provider.authorize(authn_req, user_id, auth_time=auth_time)
    sub = provider.subject_identifier_for(authn_req["client_id"], user_id,
                                          authn_req["redirect_uri"])
    return response.request(authn_req["redirect_uri"], should_fragment_encode(authn_req)), sub


async def authentication_response(request: Request, authn_req: Mapping[str, Any]) -> Response:
    """Issue the response for the logged-in user and send the browser back to the client."""
    session = request.session
    try:
        url, sub = await run_in_threadpool(issue_response, get_provider(request), authn_req,
                                           session["user_id"], session["auth_time"])
    except InvalidAuthenticationRequest as e:
        return authentication_error(e)
    except OAuthError as e:
        return message_page("Request refused", str(e), 400)
    session["sub"] = sub
    return see_other(url)


def requested_scopes(authn_req: Mapping[str, Any]) -> list[str]:
    """The scope values of a request kept in the session (``to_dict()``: a string)."""
    scope = authn_req.get("scope") or ""
    return scope.split() if isinstance(scope, str) else list(scope)


def has_consented(session: Mapping[str, Any], authn_req: Mapping[str, Any]) -> bool:
    """Whether the end-user already allowed these scopes for this client in this session."""
    granted = (session.get("consents") or {}).get(authn_req["client_id"], [])
    return set(requested_scopes(authn_req)) <= set(granted)


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, for the hidden field of every form."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def csrf_ok(session: Mapping[str, Any], form: Mapping[str, str]) -> bool:
    """Whether the submitted form carries the session's CSRF token."""
    expected = session.get("csrf", "")
    given = form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


async def storage_error(request: Request, error: Exception) -> Response:
    """The storage backend failed: 503, to be retried; never a protocol error."""
    logger.error("storage failure: %s", error)
    body = json.dumps({"error": "server_error", "error_description": "try again later"})
    return json_response(body, 503, {**NO_STORE, "Retry-After": "30"})
# [/helpers]


# [pages]
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>"""

#: No framing of the login and consent pages (clickjacking), no caching.
PAGE_HEADERS = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY",
                "Cache-Control": "no-store"}


def page(title: str, body_html: str, status: int = 200) -> Response:
    """An HTML page; ``body_html`` must already be escaped."""
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body_html), status,
                        headers=PAGE_HEADERS)


def message_page(title: str, message: str, status: int = 200) -> Response:
    return page(title, f"<p>{html.escape(message)}</p>", status)


def hidden(name: str, value: Any) -> str:
    return (f'<input type="hidden" name="{html.escape(name)}" '
            f'value="{html.escape(str(value))}">')


def login_page(session: dict[str, Any], error: Optional[str] = None) -> Response:
    alert = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return page("Log in", f"""<form method="post">{hidden("csrf_token", csrf_token(session))}
  {alert}
  <label>Username <input name="username" autocomplete="username"></label>
  <label>Password <input name="password" type="password"
                         autocomplete="current-password"></label>
  <button>Log in</button>
</form>""")


def consent_page(session: dict[str, Any], client_name: str, scopes: list[str]) -> Response:
    return page("Allow access?", f"""<p>{html.escape(client_name)} asks for:
  {html.escape(", ".join(scopes))}.</p>
<form method="post">{hidden("csrf_token", csrf_token(session))}
  <button name="decision" value="allow">Allow</button>
  <button name="decision" value="deny">Deny</button>
</form>""")


def logout_page(session: dict[str, Any], fields: Mapping[str, Any]) -> Response:
    inputs = "".join(hidden(name, value) for name, value in fields.items())
    return page("Log out?", f"""<form method="post">{hidden("csrf_token", csrf_token(session))}
  {inputs}
  <button>Log out</button>
</form>""")
# [/pages]


# [discovery]
@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> Response:
    """Provider metadata (OIDC Discovery 4); computed in memory, no storage."""
    return json_response(get_provider(request).provider_configuration.to_json(), headers=CORS)


@router.get("/jwks")
async def jwks(request: Request) -> Response:
    """The public signing keys, at the ``jwks_uri`` (RFC 7517 5); in memory, no storage."""
    return json_response(json.dumps(get_provider(request).jwks), headers=CORS)
# [/discovery]


# [authorization]
@router.api_route("/authorization", methods=["GET", "POST"])
async def authorization(request: Request) -> Response:
    """Authorization endpoint (OIDC Core 3.1.2): validate, then log in and ask consent."""
    provider = get_provider(request)
    params = await protocol_parameters(request)
    try:
        # reads the client from storage (and may fetch a request_uri or the client's keys)
        authn_req = await run_in_threadpool(provider.parse_authentication_request, params,
                                            request.headers)
    except InvalidAuthenticationRequest as e:
        return authentication_error(e)

    # log in again when not logged in, for prompt=login, or when max_age has passed
    session = request.session
    auth_time = session.get("auth_time") if "user_id" in session else None
    must_log_in = provider.requires_authentication(authn_req, auth_time)

    if "none" in (authn_req.get("prompt") or []):
        # prompt=none: no page may be shown, answer at once (OIDC Core 3.1.2.1)
        if must_log_in:
            return authentication_error(
                provider.create_authentication_error(authn_req, "login_required"))
        if not has_consented(session, authn_req):
            return authentication_error(
                provider.create_authentication_error(authn_req, "consent_required"))
        return await authentication_response(request, authn_req.to_dict())

    # keep the validated request while the end-user logs in and consents
    session["authn_req"] = authn_req.to_dict()
    return see_other("/login" if must_log_in else "/consent")
# [/authorization]


# [login]
@router.api_route("/login", methods=["GET", "POST"])
async def login(request: Request) -> Response:
    """The host's own login page: pyop is not involved until the user is known."""
    session = request.session
    if request.method == "GET":
        return login_page(session)
    form = await form_fields(request)
    if not csrf_ok(session, form):
        return message_page("Form expired", "Reload the page and try again.", 400)
    authenticate: Authenticate = request.app.state.authenticate
    user_id = await run_in_threadpool(authenticate, form.get("username", ""),
                                      form.get("password", ""))
    if user_id is None:
        return login_page(session, "Wrong username or password.")
    authn_req = session.get("authn_req")
    session.clear()  # a new session at login (no session fixation)
    session["user_id"] = user_id
    session["auth_time"] = time.time()  # to authorize() as auth_time (sub-second)
    if authn_req is None:
        return message_page("Logged in", "You are logged in.")
    session["authn_req"] = authn_req
    return see_other("/consent")


@router.api_route("/consent", methods=["GET", "POST"])
async def consent(request: Request) -> Response:
    """Ask the end-user; then authorize() and redirect back to the client."""
    session = request.session
    authn_req = session.get("authn_req")
    if authn_req is None:
        return message_page("Nothing to approve", "No sign-in request is in progress.", 400)
    if "user_id" not in session:
        return see_other("/login")
    provider = get_provider(request)
    if request.method == "GET":
        client = await run_in_threadpool(provider.get_client, authn_req["client_id"]) or {}
        return consent_page(session, client.get("client_name") or authn_req["client_id"],
                            requested_scopes(authn_req))
    form = await form_fields(request)
    if not csrf_ok(session, form):
        return message_page("Form expired", "Reload the page and try again.", 400)
    del session["authn_req"]
    if form.get("decision") != "allow":
        return authentication_error(provider.create_authentication_error(
            authn_req, "access_denied", "the end-user denied the request"))
    consents = dict(session.get("consents") or {})
    granted = set(consents.get(authn_req["client_id"], []))
    consents[authn_req["client_id"]] = sorted(granted | set(requested_scopes(authn_req)))
    session["consents"] = consents
    return await authentication_response(request, authn_req)
# [/login]


# [token]
@router.post("/token")
async def token(request: Request) -> Response:
    """Token endpoint (RFC 6749 3.2, 5.1, 5.2; OIDC Core 3.1.3)."""
    body = await request.body()
    try:
        response = await run_in_threadpool(get_provider(request).handle_token_request, body,
                                           request.headers)
    except OAuthError as e:
        headers = dict(NO_STORE)
        if e.http_status == 401:  # invalid_client: failed client authentication
            headers["WWW-Authenticate"] = 'Basic realm="token"'
        return json_response(e.to_json(), e.http_status, headers)
    return json_response(response.to_json(), 200, NO_STORE)
# [/token]


# [userinfo]
@router.api_route("/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request) -> Response:
    """UserInfo endpoint (OIDC Core 5.3); errors as in RFC 6750 3."""
    params = await protocol_parameters(request)
    try:
        # reads the access token from storage, and the claims from the user source
        response = await run_in_threadpool(get_provider(request).handle_userinfo_request,
                                           params, request.headers)
    except BearerTokenError as e:
        # 400, 401 or 403, with WWW-Authenticate: Bearer error="..."
        return json_response(e.to_json(), e.http_status,
                             {**NO_STORE, "WWW-Authenticate": e.www_authenticate})
    # JSON, or a signed JWT (application/jwt) for clients that registered
    # userinfo_signed_response_alg (OIDC Core 5.3.2)
    return Response(response.to_body(), media_type=response.content_type, headers=NO_STORE)
# [/userinfo]


# [registration]
@router.post("/registration")
async def registration(request: Request) -> Response:
    """Dynamic client registration (OIDC Dynamic Registration 3): 201 or 400."""
    body = await request.body()
    try:
        response = await run_in_threadpool(
            get_provider(request).handle_client_registration_request, body)
    except InvalidClientRegistrationRequest as e:
        return json_response(e.to_json(), 400, NO_STORE)
    return json_response(response.to_json(), 201, NO_STORE)
# [/registration]


# [token_management]
def token_management_error(error: OAuthError) -> Response:
    """RFC 6749 5.2 errors, as at the token endpoint (RFC 7662 2.3, RFC 7009 2.2.1)."""
    headers = dict(NO_STORE)
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return json_response(error.to_json(), error.http_status, headers)


@router.post("/introspection")
async def introspection(request: Request) -> Response:
    """Token introspection (RFC 7662): ``{"active": ...}`` for the calling client's tokens."""
    body = await request.body()
    try:
        response = await run_in_threadpool(
            get_provider(request).handle_introspection_request, body, request.headers)
    except OAuthError as e:
        return token_management_error(e)
    return json_response(response.to_json(), 200, NO_STORE)


@router.post("/revocation")
async def revocation(request: Request) -> Response:
    """Token revocation (RFC 7009): 200 with an empty body, whether the token was known."""
    body = await request.body()
    try:
        await run_in_threadpool(get_provider(request).handle_revocation_request, body,
                                request.headers)
    except OAuthError as e:
        return token_management_error(e)
    return Response(b"", headers=NO_STORE)
# [/token_management]


# [logout]
def end_session(provider: Provider, sub: Optional[str], params: Any) -> Optional[str]:
    """The pyop side of a confirmed logout, run in the thread pool: revoke what was
    issued to ``sub``; the URL to send the browser to, if the client registered one.

    :raises InvalidEndSessionRequest: e.g. an ``id_token_hint`` we did not issue.
    """
    end_session_req = provider.parse_end_session_request(params)
    try:
        provider.logout_user(sub, end_session_req)
    except InvalidEndSessionRequest:  # (also an InvalidSubjectIdentifier)
        raise
    except InvalidSubjectIdentifier:
        pass  # nothing was issued in this session, or it was logged out already
    return provider.do_post_logout_redirect(end_session_req)


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(request: Request) -> Response:
    """RP-initiated logout: confirm (GET), then log out and redirect (POST)."""
    provider = get_provider(request)
    session = request.session
    if request.method == "GET":
        params: Any = request.scope["query_string"]
        if "user_id" in session:
            # ask first: a mere link must not log the end-user out
            try:
                end_session_req = await run_in_threadpool(provider.parse_end_session_request,
                                                          params)
            except InvalidEndSessionRequest as e:
                return message_page("Invalid logout request", str(e), 400)
            return logout_page(session, end_session_req.to_dict())
    else:
        form = await form_fields(request)
        if not csrf_ok(session, form):
            return message_page("Form expired", "Reload the page and try again.", 400)
        params = {name: value for name, value in form.items() if name != "csrf_token"}
    try:
        url = await run_in_threadpool(end_session, provider, session.get("sub"), params)
    except InvalidEndSessionRequest as e:
        return message_page("Invalid logout request", str(e), 400)
    session.clear()
    if url:
        return see_other(url)
    return message_page("Logged out", "You are logged out.")
# [/logout]


# [main]
if __name__ == "__main__":  # development server: python docs/examples/fastapi_app.py
    import os

    import uvicorn
    from provider_setup import make_provider

    def demo_authenticate(username: str, password: str) -> Optional[str]:
        """Demo only: alice / alice. Check real password hashes instead."""
        return "alice" if (username, password) == ("alice", "alice") else None

    demo_provider = make_provider(
        "http://127.0.0.1:8000", os.environ.get("SIGNING_KEY", "signing_key.pem"),
        {"alice": {"name": "Alice Liddell", "email": "alice@example.com"}},
        sub_hash_salt=os.environ["SUB_HASH_SALT"], token_management=True)
    app = create_app(demo_provider, demo_authenticate, os.environ["SESSION_SECRET"])
    uvicorn.run(app, host="127.0.0.1", port=8000)
# [/main]
