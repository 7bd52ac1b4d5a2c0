"""A complete OpenID Provider on Flask: the code of docs/integration-flask.rst.

``create_app(provider, authenticate, secret_key)`` returns a Flask application
serving every endpoint. ``authenticate(username, password)`` is the host's own
password check: it returns the local user id, or None.

Executed by tests/test_docs_examples.py. Run a development server with
``python docs/examples/flask_app.py`` (see the ``__main__`` block at the end).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

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

op = Blueprint("op", __name__)


# [create_app]
def create_app(provider: Provider, authenticate: Authenticate, secret_key: str) -> Flask:
    """The Flask application of the provider.

    :param provider: the pyop provider (see ``provider_setup.make_provider``).
    :param authenticate: checks a username and password; returns the user id or None.
    :param secret_key: signs Flask's session cookie; long, random and kept secret.
    """
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=provider.issuer.startswith("https://"),
    )
    app.extensions["pyop.provider"] = provider
    app.extensions["pyop.authenticate"] = authenticate
    app.register_blueprint(op)
    return app


def get_provider() -> Provider:
    """The provider of the running application."""
    provider: Provider = current_app.extensions["pyop.provider"]
    return provider
# [/create_app]


# [helpers]
def json_response(body: str, status: int = 200,
                  headers: Optional[Mapping[str, str]] = None) -> Response:
    response = Response(body, status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def authentication_error(error: InvalidAuthenticationRequest) -> ResponseReturnValue:
    """Redirect an error to the client when pyop allows it, else show it (OIDC Core 3.1.2.6).

    ``to_error_url()`` is None while the client and its redirect URI are not
    verified: such an error must never be sent to the URI found in the request.
    """
    url = error.to_error_url()
    if url:
        return redirect(url, 303)
    return message_page("Invalid request", f"The sign-in request is invalid: {error}", 400)


def authentication_response(authn_req: Mapping[str, Any]) -> ResponseReturnValue:
    """Issue the response for the logged-in user and send the browser back to the client."""
    provider = get_provider()
    user_id = session["user_id"]
    try:
        response = provider.authorize(authn_req, user_id, auth_time=session["auth_time"])
    except InvalidAuthenticationRequest as e:  # another user's sub was requested
        return authentication_error(e)
    except OAuthError as e:  # e.g. the client was deleted meanwhile
        return message_page("Request refused", str(e), 400)
    # the sub this client knows the user by, for logout
    session["sub"] = provider.subject_identifier_for(authn_req["client_id"], user_id,
                                                     authn_req["redirect_uri"])
    url = response.request(authn_req["redirect_uri"], should_fragment_encode(authn_req))
    return redirect(url, 303)


def requested_scopes(authn_req: Mapping[str, Any]) -> list[str]:
    """The scope values of a request kept in the session (``to_dict()``: a string)."""
    scope = authn_req.get("scope") or ""
    return scope.split() if isinstance(scope, str) else list(scope)


def has_consented(authn_req: Mapping[str, Any]) -> bool:
    """Whether the end-user already allowed these scopes for this client in this session."""
    granted = (session.get("consents") or {}).get(authn_req["client_id"], [])
    return set(requested_scopes(authn_req)) <= set(granted)


def csrf_token() -> str:
    """The session's CSRF token, for the hidden field of every form."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def csrf_ok() -> bool:
    """Whether the submitted form carries the session's CSRF token."""
    expected = session.get("csrf", "")
    given = request.form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
# [/helpers]


# [pages]
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1>{% block body %}<p>{{ message }}</p>{% endblock %}</body></html>"""

LOGIN_PAGE = PAGE.replace("{% block body %}<p>{{ message }}</p>{% endblock %}", """
<form method="post">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  {% if error %}<p role="alert">{{ error }}</p>{% endif %}
  <label>Username <input name="username" autocomplete="username"></label>
  <label>Password <input name="password" type="password"
                         autocomplete="current-password"></label>
  <button>Log in</button>
</form>""")

CONSENT_PAGE = PAGE.replace("{% block body %}<p>{{ message }}</p>{% endblock %}", """
<p>{{ client_name }} asks for: {{ scopes | join(", ") }}.</p>
<form method="post">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  <button name="decision" value="allow">Allow</button>
  <button name="decision" value="deny">Deny</button>
</form>""")

LOGOUT_PAGE = PAGE.replace("{% block body %}<p>{{ message }}</p>{% endblock %}", """
<form method="post">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  {% for name, value in fields.items() %}
  <input type="hidden" name="{{ name }}" value="{{ value }}">
  {% endfor %}
  <button>Log out</button>
</form>""")


def message_page(title: str, message: str, status: int = 200) -> ResponseReturnValue:
    return render_template_string(PAGE, title=title, message=message), status


@op.after_request
def page_headers(response: Response) -> Response:
    """No framing of the login and consent pages (clickjacking), no caching."""
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    return response
# [/pages]


# [discovery]
@op.get("/.well-known/openid-configuration")
def discovery() -> ResponseReturnValue:
    """Provider metadata (OIDC Discovery 4)."""
    return json_response(get_provider().provider_configuration.to_json(), headers=CORS)


@op.get("/jwks")
def jwks() -> ResponseReturnValue:
    """The public signing keys, at the ``jwks_uri`` (RFC 7517 5)."""
    return json_response(json.dumps(get_provider().jwks), headers=CORS)
# [/discovery]


# [authorization]
@op.route("/authorization", methods=["GET", "POST"])
def authorization() -> ResponseReturnValue:
    """Authorization endpoint (OIDC Core 3.1.2): validate, then log in and ask consent."""
    provider = get_provider()
    # the raw query string (GET) or form body (POST); pyop checks its size and encoding
    params = request.query_string if request.method == "GET" else request.get_data()
    try:
        authn_req = provider.parse_authentication_request(params, request.headers)
    except InvalidAuthenticationRequest as e:
        return authentication_error(e)

    # log in again when not logged in, for prompt=login, or when max_age has passed
    auth_time = session.get("auth_time") if "user_id" in session else None
    must_log_in = provider.requires_authentication(authn_req, auth_time)

    if "none" in (authn_req.get("prompt") or []):
        # prompt=none: no page may be shown, answer at once (OIDC Core 3.1.2.1)
        if must_log_in:
            return authentication_error(
                provider.create_authentication_error(authn_req, "login_required"))
        if not has_consented(authn_req):
            return authentication_error(
                provider.create_authentication_error(authn_req, "consent_required"))
        return authentication_response(authn_req.to_dict())

    # keep the validated request while the end-user logs in and consents
    session["authn_req"] = authn_req.to_dict()
    return redirect(url_for(".login" if must_log_in else ".consent"), 303)
# [/authorization]


# [login]
@op.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The host's own login page: pyop is not involved until the user is known."""
    error = None
    if request.method == "POST":
        if not csrf_ok():
            return message_page("Form expired", "Reload the page and try again.", 400)
        authenticate: Authenticate = current_app.extensions["pyop.authenticate"]
        user_id = authenticate(request.form.get("username", ""),
                               request.form.get("password", ""))
        if user_id is not None:
            authn_req = session.get("authn_req")
            session.clear()  # a new session at login (no session fixation)
            session["user_id"] = user_id
            session["auth_time"] = time.time()  # to authorize() as auth_time (sub-second)
            if authn_req is None:
                return message_page("Logged in", "You are logged in.")
            session["authn_req"] = authn_req
            return redirect(url_for(".consent"), 303)
        error = "Wrong username or password."
    return render_template_string(LOGIN_PAGE, title="Log in", error=error,
                                  csrf_token=csrf_token())


@op.route("/consent", methods=["GET", "POST"])
def consent() -> ResponseReturnValue:
    """Ask the end-user; then authorize() and redirect back to the client."""
    authn_req = session.get("authn_req")
    if authn_req is None:
        return message_page("Nothing to approve", "No sign-in request is in progress.", 400)
    if "user_id" not in session:
        return redirect(url_for(".login"), 303)
    if request.method == "GET":
        client = get_provider().get_client(authn_req["client_id"]) or {}
        return render_template_string(
            CONSENT_PAGE, title="Allow access?", csrf_token=csrf_token(),
            client_name=client.get("client_name") or authn_req["client_id"],
            scopes=requested_scopes(authn_req))
    if not csrf_ok():
        return message_page("Form expired", "Reload the page and try again.", 400)
    del session["authn_req"]
    if request.form.get("decision") != "allow":
        return authentication_error(get_provider().create_authentication_error(
            authn_req, "access_denied", "the end-user denied the request"))
    consents = dict(session.get("consents") or {})
    granted = set(consents.get(authn_req["client_id"], []))
    consents[authn_req["client_id"]] = sorted(granted | set(requested_scopes(authn_req)))
    session["consents"] = consents
    return authentication_response(authn_req)
# [/login]


# [token]
@op.post("/token")
def token() -> ResponseReturnValue:
    """Token endpoint (RFC 6749 3.2, 5.1, 5.2; OIDC Core 3.1.3)."""
    try:
        response = get_provider().handle_token_request(request.get_data(), request.headers)
    except OAuthError as e:
        headers = dict(NO_STORE)
        if e.http_status == 401:  # invalid_client: failed client authentication
            headers["WWW-Authenticate"] = 'Basic realm="token"'
        return json_response(e.to_json(), e.http_status, headers)
    return json_response(response.to_json(), 200, NO_STORE)
# [/token]


# [userinfo]
@op.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    """UserInfo endpoint (OIDC Core 5.3); errors as in RFC 6750 3."""
    params = request.query_string if request.method == "GET" else request.get_data()
    try:
        response = get_provider().handle_userinfo_request(params, request.headers)
    except BearerTokenError as e:
        # 400, 401 or 403, with WWW-Authenticate: Bearer error="..."
        return json_response(e.to_json(), e.http_status,
                             {**NO_STORE, "WWW-Authenticate": e.www_authenticate})
    # JSON, or a signed JWT (application/jwt) for clients that registered
    # userinfo_signed_response_alg (OIDC Core 5.3.2)
    reply = Response(response.to_body(), status=200, content_type=response.content_type)
    reply.headers.update(NO_STORE)
    return reply
# [/userinfo]


# [registration]
@op.post("/registration")
def registration() -> ResponseReturnValue:
    """Dynamic client registration (OIDC Dynamic Registration 3): 201 or 400."""
    try:
        response = get_provider().handle_client_registration_request(request.get_data())
    except InvalidClientRegistrationRequest as e:
        return json_response(e.to_json(), 400, NO_STORE)
    return json_response(response.to_json(), 201, NO_STORE)
# [/registration]


# [logout]
@op.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    """RP-initiated logout: confirm (GET), then log out and redirect (POST)."""
    provider = get_provider()
    if request.method == "GET":
        params: Any = request.query_string
    else:
        if not csrf_ok():
            return message_page("Form expired", "Reload the page and try again.", 400)
        params = {name: value for name, value in request.form.items() if name != "csrf_token"}
    try:
        end_session_req = provider.parse_end_session_request(params)
    except InvalidEndSessionRequest as e:
        return message_page("Invalid logout request", str(e), 400)

    if request.method == "GET" and "user_id" in session:
        # ask first: a mere link must not log the end-user out
        return render_template_string(LOGOUT_PAGE, title="Log out?", csrf_token=csrf_token(),
                                      fields=end_session_req.to_dict())
    try:
        provider.logout_user(session.get("sub"), end_session_req)
    except InvalidEndSessionRequest as e:  # e.g. an id_token_hint we did not issue
        return message_page("Invalid logout request", str(e), 400)
    except InvalidSubjectIdentifier:
        pass  # nothing was issued in this session, or it was logged out already
    session.clear()
    url = provider.do_post_logout_redirect(end_session_req)
    if url:
        return redirect(url, 303)
    return message_page("Logged out", "You are logged out.")
# [/logout]


# [storage_error]
@op.app_errorhandler(StorageError)
def storage_error(error: StorageError) -> ResponseReturnValue:
    """The storage backend failed: 503, to be retried; never a protocol error."""
    logger.error("storage failure: %s", error)
    body = json.dumps({"error": "server_error", "error_description": "try again later"})
    return json_response(body, 503, {**NO_STORE, "Retry-After": "30"})
# [/storage_error]


# [main]
if __name__ == "__main__":  # development server: python docs/examples/flask_app.py
    import os

    from provider_setup import make_provider

    def demo_authenticate(username: str, password: str) -> Optional[str]:
        """Demo only: alice / alice. Check real password hashes instead."""
        return "alice" if (username, password) == ("alice", "alice") else None

    demo_provider = make_provider(
        "http://127.0.0.1:5000", os.environ.get("SIGNING_KEY", "signing_key.pem"),
        {"alice": {"name": "Alice Liddell", "email": "alice@example.com"}},
        sub_hash_salt=os.environ["SUB_HASH_SALT"])
    create_app(demo_provider, demo_authenticate, os.environ["SESSION_SECRET"]).run(port=5000)
# [/main]
