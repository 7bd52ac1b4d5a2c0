"""A complete OpenID Provider on Django: the code of docs/integration-django.rst.

A single-module Django project configured in code: ``configure()`` calls
``settings.configure()``, this module is the URL configuration (``urlpatterns``), and
the views are the functions below. ``create_app(provider, authenticate, secret_key)``
returns the WSGI application; ``authenticate(username, password)`` is the host's own
password check, returning the local user id or None.

In a Django project of your own, the settings go to ``settings.py``, the views to an
app's ``views.py`` and the routes to its ``urls.py``; nothing else changes.

Executed by tests/test_docs_examples.py. Run a development server with
``python docs/examples/django_app.py`` (see the ``__main__`` block at the end).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import rotate_token
from django.template import engines
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

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


# [settings]
def configure(issuer: str, secret_key: str, provider: Optional[Provider] = None,
              authenticate: Optional[Authenticate] = None) -> None:
    """Configure Django for the provider (once per process, as Django's settings are).

    The session is a signed cookie (no database is needed); with a server-side session
    engine instead, use one shared by every worker process (e.g. the cache engine on
    Redis). ``PYOP_PROVIDER`` and ``PYOP_AUTHENTICATE`` are this project's own settings.
    """
    https = issuer.startswith("https://")
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secret_key,
        ALLOWED_HOSTS=[urlsplit(issuer).hostname],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
            f"{__name__}.StorageErrorMiddleware",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        CSRF_COOKIE_SECURE=https,
        X_FRAME_OPTIONS="DENY",
        PYOP_PROVIDER=provider,
        PYOP_AUTHENTICATE=authenticate,
    )
    django.setup()


def create_app(provider: Provider, authenticate: Authenticate, secret_key: str) -> WSGIHandler:
    """The WSGI application of the provider (``configure()`` first, if not done yet)."""
    if not settings.configured:
        configure(provider.issuer, secret_key, provider, authenticate)
    return WSGIHandler()


def get_provider() -> Provider:
    """The provider of this process."""
    provider: Provider = settings.PYOP_PROVIDER
    return provider
# [/settings]


# [helpers]
def json_response(body: str, status: int = 200,
                  headers: Optional[Mapping[str, str]] = None) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json",
                        headers=headers)


def see_other(url: str) -> HttpResponse:
    """A 303 redirect: the browser follows it with GET (RFC 9110 15.4.4).

    Not ``HttpResponseRedirect``: it refuses URI schemes other than http(s) and ftp,
    which native clients register (``com.example.app:/callback``, RFC 8252 7.1); pyop has
    already checked the redirect URI against the client's registration.
    """
    response = HttpResponse(status=303)
    response["Location"] = url
    return response


def authentication_error(request: HttpRequest,
                         error: InvalidAuthenticationRequest) -> HttpResponse:
    """Redirect an error to the client when pyop allows it, else show it (OIDC Core 3.1.2.6).

    ``to_error_url()`` is None while the client and its redirect URI are not
    verified: such an error must never be sent to the URI found in the request.
    """
    url = error.to_error_url()
    if url:
        return see_other(url)
    return message_page(request, "Invalid request",
                        f"The sign-in request is invalid: {error}", 400)


def authentication_response(request: HttpRequest, authn_req: Mapping[str, Any]) -> HttpResponse:
    """Issue the response for the logged-in user and send the browser back to the client."""
    provider = get_provider()
    session = request.session
    user_id = session["user_id"]
    try:
        response = provider.authorize(authn_req, user_id, auth_time=session["auth_time"])
    except InvalidAuthenticationRequest as e:  # another user's sub was requested
        return authentication_error(request, e)
    except OAuthError as e:  # e.g. the client was deleted meanwhile
        return message_page(request, "Request refused", str(e), 400)
    # the sub this client knows the user by, for logout
    session["sub"] = provider.subject_identifier_for(authn_req["client_id"], user_id,
                                                     authn_req["redirect_uri"])
    return see_other(response.request(authn_req["redirect_uri"],
                                      should_fragment_encode(authn_req)))


def requested_scopes(authn_req: Mapping[str, Any]) -> list[str]:
    """The scope values of a request kept in the session (``to_dict()``: a string)."""
    scope = authn_req.get("scope") or ""
    return scope.split() if isinstance(scope, str) else list(scope)


def has_consented(request: HttpRequest, authn_req: Mapping[str, Any]) -> bool:
    """Whether the end-user already allowed these scopes for this client in this session."""
    granted = (request.session.get("consents") or {}).get(authn_req["client_id"], [])
    return set(requested_scopes(authn_req)) <= set(granted)


class StorageErrorMiddleware:
    """The storage backend failed: 503, to be retried; never a protocol error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest,
                          exception: Exception) -> Optional[HttpResponse]:
        if not isinstance(exception, StorageError):
            return None  # Django's own handling
        logger.error("storage failure: %s", exception)
        body = json.dumps({"error": "server_error", "error_description": "try again later"})
        return json_response(body, 503, {**NO_STORE, "Retry-After": "30"})
# [/helpers]


# [pages]
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1>{% block body %}<p>{{ message }}</p>{% endblock %}</body></html>"""

LOGIN_PAGE = PAGE.replace("{% block body %}<p>{{ message }}</p>{% endblock %}", """
<form method="post">{% csrf_token %}
  {% if error %}<p role="alert">{{ error }}</p>{% endif %}
  <label>Username <input name="username" autocomplete="username"></label>
  <label>Password <input name="password" type="password"
                         autocomplete="current-password"></label>
  <button>Log in</button>
</form>""")

CONSENT_PAGE = PAGE.replace("{% block body %}<p>{{ message }}</p>{% endblock %}", """
<p>{{ client_name }} asks for: {{ scopes|join:", " }}.</p>
<form method="post">{% csrf_token %}
  <button name="decision" value="allow">Allow</button>
  <button name="decision" value="deny">Deny</button>
</form>""")

LOGOUT_PAGE = PAGE.replace("{% block body %}<p>{{ message }}</p>{% endblock %}", """
<form method="post">{% csrf_token %}
  {% for name, value in fields.items %}
  <input type="hidden" name="{{ name }}" value="{{ value }}">
  {% endfor %}
  <button>Log out</button>
</form>""")


def render_page(request: HttpRequest, template: str, status: int = 200,
                **context: Any) -> HttpResponse:
    """Render a page (autoescaped; ``{% csrf_token %}`` needs the request). Never framed
    (``XFrameOptionsMiddleware`` adds ``X-Frame-Options: DENY``), never cached."""
    html = engines["django"].from_string(template).render(context, request)
    return HttpResponse(html, status=status, headers={
        "Content-Security-Policy": "frame-ancestors 'none'", "Cache-Control": "no-store"})


def message_page(request: HttpRequest, title: str, message: str,
                 status: int = 200) -> HttpResponse:
    return render_page(request, PAGE, status, title=title, message=message)
# [/pages]


# [discovery]
@require_GET
def discovery(request: HttpRequest) -> HttpResponse:
    """Provider metadata (OIDC Discovery 4)."""
    return json_response(get_provider().provider_configuration.to_json(), headers=CORS)


@require_GET
def jwks(request: HttpRequest) -> HttpResponse:
    """The public signing keys, at the ``jwks_uri`` (RFC 7517 5)."""
    return json_response(json.dumps(get_provider().jwks), headers=CORS)
# [/discovery]


# [request]
def protocol_parameters(request: HttpRequest) -> Any:
    """The raw query string (GET) or body (POST), for pyop to parse and check.

    Not ``request.GET``/``request.POST``: those ``QueryDict`` objects hide repeated
    parameters, which pyop must refuse. The body is passed as bytes: pyop decodes it
    and answers a body that is not UTF-8 with ``invalid_request``.
    """
    return request.META.get("QUERY_STRING", "") if request.method == "GET" else request.body
# [/request]


# [authorization]
@csrf_exempt  # the client's page may POST the request from its own site (OIDC Core 3.1.2.1)
@require_http_methods(["GET", "POST"])
def authorization(request: HttpRequest) -> HttpResponse:
    """Authorization endpoint (OIDC Core 3.1.2): validate, then log in and ask consent."""
    provider = get_provider()
    try:
        authn_req = provider.parse_authentication_request(protocol_parameters(request),
                                                          request.headers)
    except InvalidAuthenticationRequest as e:
        return authentication_error(request, e)

    # log in again when not logged in, for prompt=login, or when max_age has passed
    session = request.session
    auth_time = session.get("auth_time") if "user_id" in session else None
    must_log_in = provider.requires_authentication(authn_req, auth_time)

    if "none" in (authn_req.get("prompt") or []):
        # prompt=none: no page may be shown, answer at once (OIDC Core 3.1.2.1)
        if must_log_in:
            return authentication_error(request, provider.create_authentication_error(
                authn_req, "login_required"))
        if not has_consented(request, authn_req):
            return authentication_error(request, provider.create_authentication_error(
                authn_req, "consent_required"))
        return authentication_response(request, authn_req.to_dict())

    # keep the validated request while the end-user logs in and consents
    session["authn_req"] = authn_req.to_dict()
    return see_other(reverse("login" if must_log_in else "consent"))
# [/authorization]


# [login]
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """The host's own login page: pyop is not involved until the user is known.

    Protected by ``CsrfViewMiddleware``: a POST without the form's token is refused (403).
    """
    error = None
    if request.method == "POST":
        authenticate: Authenticate = settings.PYOP_AUTHENTICATE
        user_id = authenticate(request.POST.get("username", ""),
                               request.POST.get("password", ""))
        if user_id is not None:
            session = request.session
            authn_req = session.get("authn_req")
            session.flush()  # a new session at login (no session fixation)
            rotate_token(request)  # and a new CSRF token, as django.contrib.auth does
            session["user_id"] = user_id
            session["auth_time"] = time.time()  # to authorize() as auth_time (sub-second)
            if authn_req is None:
                return message_page(request, "Logged in", "You are logged in.")
            session["authn_req"] = authn_req
            return see_other(reverse("consent"))
        error = "Wrong username or password."
    return render_page(request, LOGIN_PAGE, title="Log in", error=error)


@require_http_methods(["GET", "POST"])
def consent(request: HttpRequest) -> HttpResponse:
    """Ask the end-user; then authorize() and redirect back to the client."""
    session = request.session
    authn_req = session.get("authn_req")
    if authn_req is None:
        return message_page(request, "Nothing to approve",
                            "No sign-in request is in progress.", 400)
    if "user_id" not in session:
        return see_other(reverse("login"))
    if request.method == "GET":
        client = get_provider().get_client(authn_req["client_id"]) or {}
        return render_page(request, CONSENT_PAGE, title="Allow access?",
                           client_name=client.get("client_name") or authn_req["client_id"],
                           scopes=requested_scopes(authn_req))
    del session["authn_req"]
    if request.POST.get("decision") != "allow":
        return authentication_error(request, get_provider().create_authentication_error(
            authn_req, "access_denied", "the end-user denied the request"))
    consents = dict(session.get("consents") or {})
    granted = set(consents.get(authn_req["client_id"], []))
    consents[authn_req["client_id"]] = sorted(granted | set(requested_scopes(authn_req)))
    session["consents"] = consents
    return authentication_response(request, authn_req)
# [/login]


# [token]
@csrf_exempt  # called by the client, authenticated by its credentials, not by cookies
@require_POST
def token(request: HttpRequest) -> HttpResponse:
    """Token endpoint (RFC 6749 3.2, 5.1, 5.2; OIDC Core 3.1.3)."""
    try:
        response = get_provider().handle_token_request(request.body, request.headers)
    except OAuthError as e:
        headers = dict(NO_STORE)
        if e.http_status == 401:  # invalid_client: failed client authentication
            headers["WWW-Authenticate"] = 'Basic realm="token"'
        return json_response(e.to_json(), e.http_status, headers)
    return json_response(response.to_json(), 200, NO_STORE)
# [/token]


# [userinfo]
@csrf_exempt  # called with the access token, not with cookies
@require_http_methods(["GET", "POST"])
def userinfo(request: HttpRequest) -> HttpResponse:
    """UserInfo endpoint (OIDC Core 5.3); errors as in RFC 6750 3."""
    try:
        response = get_provider().handle_userinfo_request(protocol_parameters(request),
                                                          request.headers)
    except BearerTokenError as e:
        # 400, 401 or 403, with WWW-Authenticate: Bearer error="..."
        return json_response(e.to_json(), e.http_status,
                             {**NO_STORE, "WWW-Authenticate": e.www_authenticate})
    # JSON, or a signed JWT (application/jwt) for clients that registered
    # userinfo_signed_response_alg (OIDC Core 5.3.2)
    return HttpResponse(response.to_body(), content_type=response.content_type,
                        headers=NO_STORE)
# [/userinfo]


# [registration]
@csrf_exempt  # called by client software, not by a browser with cookies
@require_POST
def registration(request: HttpRequest) -> HttpResponse:
    """Dynamic client registration (OIDC Dynamic Registration 3): 201 or 400."""
    try:
        response = get_provider().handle_client_registration_request(request.body)
    except InvalidClientRegistrationRequest as e:
        return json_response(e.to_json(), 400, NO_STORE)
    return json_response(response.to_json(), 201, NO_STORE)
# [/registration]


# [token_management]
def token_management_error(error: OAuthError) -> HttpResponse:
    """RFC 6749 5.2 errors, as at the token endpoint (RFC 7662 2.3, RFC 7009 2.2.1)."""
    headers = dict(NO_STORE)
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return json_response(error.to_json(), error.http_status, headers)


@csrf_exempt  # called by the client (a resource server), authenticated by its credentials
@require_POST
def introspection(request: HttpRequest) -> HttpResponse:
    """Token introspection (RFC 7662): ``{"active": ...}`` for the calling client's tokens."""
    try:
        response = get_provider().handle_introspection_request(request.body, request.headers)
    except OAuthError as e:
        return token_management_error(e)
    return json_response(response.to_json(), 200, NO_STORE)


@csrf_exempt  # called by the client, authenticated by its credentials
@require_POST
def revocation(request: HttpRequest) -> HttpResponse:
    """Token revocation (RFC 7009): 200 with an empty body, whether the token was known."""
    try:
        get_provider().handle_revocation_request(request.body, request.headers)
    except OAuthError as e:
        return token_management_error(e)
    return HttpResponse(b"", status=200, headers=NO_STORE)
# [/token_management]


# [logout]
@require_http_methods(["GET", "POST"])
def logout(request: HttpRequest) -> HttpResponse:
    """RP-initiated logout: confirm (GET), then log out and redirect (POST).

    The POST is the confirmation form's, so it keeps Django's CSRF protection.
    """
    provider = get_provider()
    session = request.session
    if request.method == "GET":
        params: Any = request.META.get("QUERY_STRING", "")
    else:
        params = {name: value for name, value in request.POST.items()
                  if name != "csrfmiddlewaretoken"}
    try:
        end_session_req = provider.parse_end_session_request(params)
    except InvalidEndSessionRequest as e:
        return message_page(request, "Invalid logout request", str(e), 400)

    if request.method == "GET" and "user_id" in session:
        # ask first: a mere link must not log the end-user out
        return render_page(request, LOGOUT_PAGE, title="Log out?",
                           fields=end_session_req.to_dict())
    try:
        provider.logout_user(session.get("sub"), end_session_req)
    except InvalidEndSessionRequest as e:  # e.g. an id_token_hint we did not issue
        return message_page(request, "Invalid logout request", str(e), 400)
    except InvalidSubjectIdentifier:
        pass  # nothing was issued in this session, or it was logged out already
    session.flush()
    url = provider.do_post_logout_redirect(end_session_req)
    if url:
        return see_other(url)
    return message_page(request, "Logged out", "You are logged out.")
# [/logout]


# [urls]
urlpatterns = [
    path(".well-known/openid-configuration", discovery),
    path("jwks", jwks),
    path("authorization", authorization),
    path("login", login, name="login"),
    path("consent", consent, name="consent"),
    path("token", token),
    path("userinfo", userinfo),
    path("registration", registration),
    path("introspection", introspection),
    path("revocation", revocation),
    path("logout", logout),
]
# [/urls]


# [main]
if __name__ == "__main__":  # development server: python docs/examples/django_app.py
    import os
    from wsgiref.simple_server import make_server

    from provider_setup import make_provider

    def demo_authenticate(username: str, password: str) -> Optional[str]:
        """Demo only: alice / alice. Check real password hashes instead."""
        return "alice" if (username, password) == ("alice", "alice") else None

    demo_provider = make_provider(
        "http://127.0.0.1:8000", os.environ.get("SIGNING_KEY", "signing_key.pem"),
        {"alice": {"name": "Alice Liddell", "email": "alice@example.com"}},
        sub_hash_salt=os.environ["SUB_HASH_SALT"], token_management=True)
    app = create_app(demo_provider, demo_authenticate, os.environ["SESSION_SECRET"])
    make_server("127.0.0.1", 8000, app).serve_forever()
# [/main]
