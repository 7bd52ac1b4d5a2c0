"""The integration guides' code runs: docs/examples/{provider_setup,flask_app,wsgi_app,
django_app,fastapi_app,fastapi_async_app}.py.

docs/integration-{flask,wsgi,django,fastapi}.rst and docs/async.rst include these files
with ``literalinclude``. Every test below drives the five applications the same way
(``op`` is parametrized): Flask through its test client, the bare WSGI app through
``werkzeug.test.Client`` wrapped in ``wsgiref.validate.validator`` (PEP 3333
conformance), Django through ``django.test.Client`` (with CSRF checks enforced), and
the FastAPI applications (the synchronous provider through the thread pool, and
:class:`pyop.aio.AsyncProvider` awaited directly) through Starlette's ``TestClient``
(httpx). Their answers are turned into
werkzeug responses, so that every test reads them alike. A few tests call the WSGI app
directly with ``wsgiref.util.setup_testing_defaults``, as the guide shows.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import hashlib
import importlib.util
import io
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from django.conf import settings as django_settings
from django.test import Client as DjangoClient
from django.test import override_settings
from starlette.testclient import TestClient
from werkzeug.test import Client, TestResponse
from werkzeug.wrappers import Response as WerkzeugResponse

from pyop.crypto import VerificationKey, b64url_encode, jws_verify
from pyop.exceptions import StorageError
from pyop.provider import Provider

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"

ISSUER = "https://op.example.com"
RP = "rp"
RP_SECRET = "a long random secret of the rp"
RP_CALLBACK = "https://rp.example.com/callback"
RP_LOGGED_OUT = "https://rp.example.com/logged-out"
SPA = "spa"
SPA_CALLBACK = "http://127.0.0.1:9000/callback"
USERS = {"alice": {"name": "Alice Liddell", "given_name": "Alice",
                   "email": "alice@example.com", "email_verified": True}}
PASSWORDS = {"alice": "wonderland"}
CLIENTS = {
    RP: {
        "client_name": "The Example RP",
        "client_secret": RP_SECRET,
        "redirect_uris": [RP_CALLBACK],
        "response_types": ["code", "id_token token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "post_logout_redirect_uris": [RP_LOGGED_OUT],
    },
    SPA: {
        "redirect_uris": [SPA_CALLBACK],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    },
}
#: the CSRF field of the forms: the applications' own, or Django's
CSRF_FIELD = re.compile(r'name="(csrf_token|csrfmiddlewaretoken)" value="([^"]+)"')
HIDDEN_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def load_example(name: str) -> ModuleType:
    """Import docs/examples/<name>.py (a fresh module object).

    The examples import each other by name (fastapi_async_app.py shares the pages and
    helpers of fastapi_app.py), as they do when run from their directory.
    """
    if str(EXAMPLES) not in sys.path:
        sys.path.append(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"pyop_docs_example_{name}",
                                                  EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Django imports its URL configuration and middleware by module name
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def authenticate(username: str, password: str) -> Optional[str]:
    """The host's password check handed to the applications."""
    return username if PASSWORDS.get(username) == password else None


@pytest.fixture(scope="module")
def examples() -> dict[str, ModuleType]:
    modules = {name: load_example(name) for name in
               ("provider_setup", "flask_app", "wsgi_app", "django_app", "fastapi_app",
                "fastapi_async_app")}
    # loading (and validating) the RSA key takes ~40 ms; once per module is enough
    setup = modules["provider_setup"]
    setup.load_signing_key = functools.lru_cache(maxsize=None)(setup.load_signing_key)
    return modules


def new_provider(examples: dict[str, ModuleType], signing_key_pem: str,
                 token_management: bool = False) -> Provider:
    provider: Provider = examples["provider_setup"].make_provider(
        ISSUER, signing_key_pem, USERS, sub_hash_salt="a salt for the docs tests",
        clients=CLIENTS, token_management=token_management)
    return provider


async def find_user(user_id: str) -> Optional[dict[str, Any]]:
    """The async user directory's query (fastapi_async_app.UserDirectory)."""
    return USERS.get(user_id)


async def authenticate_async(username: str, password: str) -> Optional[str]:
    """The host's password check, for the async application."""
    return authenticate(username, password)


def new_async_provider(examples: dict[str, ModuleType], signing_key_pem: str,
                       loop: asyncio.AbstractEventLoop, token_management: bool = False) -> Any:
    """The AsyncProvider of fastapi_async_app.py, behind a synchronous face whose
    coroutines run on ``loop`` (tests/support/async_front_end.py), so that the tests read
    ``op.provider`` alike for every application."""
    from support.async_front_end import LoopDrivenProvider

    app_module = examples["fastapi_async_app"]
    provider = loop.run_until_complete(app_module.make_async_provider(
        ISSUER, signing_key_pem, app_module.UserDirectory(find_user),
        sub_hash_salt="a salt for the docs tests", clients=CLIENTS,
        token_management=token_management))
    return LoopDrivenProvider(provider, loop)


@pytest.fixture
def provider(examples: dict[str, ModuleType], signing_key_pem: str) -> Provider:
    return new_provider(examples, signing_key_pem)


SESSION_SECRET = "a session secret for the docs tests"


@dataclass
class OP:
    """One of the applications, behind a test client that keeps cookies.

    ``get`` and ``post`` take werkzeug's arguments (``headers``, ``content_type``) and
    return werkzeug responses, whatever the framework.
    """

    kind: str
    app: Any
    client: Any
    provider: Any  #: a Provider, or the synchronous face of an AsyncProvider

    def get(self, path: str, query: Optional[dict[str, str]] = None, **kwargs: Any
            ) -> TestResponse:
        path += "?" + urlencode(query) if query else ""
        if self.kind == "django":
            return from_django(self.client.get(path, secure=True, **kwargs))
        if self.kind.startswith("fastapi"):
            return from_httpx(self.client.get(ISSUER + path, headers=kwargs.get("headers")))
        return self.client.get(ISSUER + path, buffered=True, **kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> TestResponse:
        if isinstance(data, dict):
            data = urlencode(data)
            kwargs.setdefault("content_type", "application/x-www-form-urlencoded")
        if self.kind == "django":
            # a browser sends Origin with a form POST; Django's CSRF check compares it
            headers = {"Origin": ISSUER, **kwargs.pop("headers", {})}
            return from_django(self.client.post(path, data=data or b"", secure=True,
                                                headers=headers, **kwargs))
        if self.kind.startswith("fastapi"):
            headers = dict(kwargs.get("headers") or {})
            if "content_type" in kwargs:
                headers["Content-Type"] = kwargs["content_type"]
            return from_httpx(self.client.post(ISSUER + path, content=data, headers=headers))
        return self.client.post(ISSUER + path, data=data, buffered=True, **kwargs)


def from_django(response: Any) -> TestResponse:
    """A Django test response as a werkzeug response."""
    return WerkzeugResponse(response.content, status=response.status_code,
                            headers=list(response.items()))  # type: ignore[return-value]


def from_httpx(response: Any) -> TestResponse:
    """An httpx response as a werkzeug response."""
    return WerkzeugResponse(response.content, status=response.status_code,
                            headers=response.headers.multi_items())  # type: ignore[return-value]


def make_op(kind: str, examples: dict[str, ModuleType], provider: Any) -> Iterator[OP]:
    """The application ``kind`` on ``provider`` (for ``fastapi_async``, the face of
    :func:`new_async_provider`)."""
    if kind == "flask":
        app = examples["flask_app"].create_app(provider, authenticate, SESSION_SECRET)
        yield OP("flask", app, app.test_client(), provider)
    elif kind == "wsgi":
        app = examples["wsgi_app"].OpenIDProviderApp(provider, authenticate)
        yield OP("wsgi", app, Client(validator(app)), provider)
    elif kind == "django":
        django_app = examples["django_app"]
        if not django_settings.configured:  # Django's settings: once per process
            django_app.configure(ISSUER, SESSION_SECRET)
        app = django_app.create_app(provider, authenticate, SESSION_SECRET)
        # each test has its own provider; Django tests swap settings this way
        with override_settings(PYOP_PROVIDER=provider, PYOP_AUTHENTICATE=authenticate):
            client = DjangoClient(enforce_csrf_checks=True, HTTP_HOST=urlsplit(ISSUER).netloc)
            yield OP("django", app, client, provider)
    elif kind == "fastapi":
        app = examples["fastapi_app"].create_app(provider, authenticate, SESSION_SECRET)
        with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
            yield OP("fastapi", app, client, provider)
    else:
        async_provider = provider._target  # the AsyncProvider behind the face
        app = examples["fastapi_async_app"].create_app(async_provider, authenticate_async,
                                                       SESSION_SECRET)
        with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
            yield OP("fastapi_async", app, client, provider)


def provider_for(kind: str, examples: dict[str, ModuleType], signing_key_pem: str,
                 token_management: bool = False) -> Iterator[Any]:
    """The provider of a new application ``kind``: a Provider, or for ``fastapi_async``
    the face of an AsyncProvider (whose event loop is closed afterwards)."""
    if kind != "fastapi_async":
        yield new_provider(examples, signing_key_pem, token_management)
        return
    loop = asyncio.new_event_loop()
    try:
        yield new_async_provider(examples, signing_key_pem, loop, token_management)
    finally:
        loop.close()


@pytest.fixture(params=["flask", "wsgi", "django", "fastapi", "fastapi_async"])
def op(request: pytest.FixtureRequest, examples: dict[str, ModuleType],
       signing_key_pem: str) -> Iterator[OP]:
    for provider in provider_for(request.param, examples, signing_key_pem):
        yield from make_op(request.param, examples, provider)


# -- helpers: what a browser and a relying party do ----------------------------------------------

def location(response: TestResponse) -> str:
    assert response.status_code == 303, (response.status_code, response.get_data(as_text=True))
    return response.headers["Location"]


def redirect_params(response: TestResponse) -> dict[str, str]:
    """The parameters of a redirect to the client, from its query or fragment."""
    parts = urlsplit(location(response))
    encoded = parts.fragment or parts.query
    return {name: values[0] for name, values in parse_qs(encoded).items()}


def csrf_of(response: TestResponse) -> dict[str, str]:
    """The CSRF field of the form on the page, to post back with it."""
    assert response.status_code == 200, response.get_data(as_text=True)
    match = CSRF_FIELD.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return {match.group(1): match.group(2)}


def authn_query(**overrides: str) -> dict[str, str]:
    query = {"response_type": "code", "client_id": RP, "redirect_uri": RP_CALLBACK,
             "scope": "openid profile email", "state": "st-1", "nonce": "n-1"}
    query.update(overrides)
    return query


def log_in(op: OP, password: str = "wonderland") -> TestResponse:
    csrf = csrf_of(op.get("/login"))
    return op.post("/login", {**csrf, "username": "alice", "password": password})


def consent(op: OP, decision: str = "allow") -> TestResponse:
    page = op.get("/consent")
    assert "The Example RP" in page.get_data(as_text=True)
    return op.post("/consent", {**csrf_of(page), "decision": decision})


def basic(client_id: str = RP, secret: str = RP_SECRET) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": "Basic " + credentials}


def sign_in(op: OP, **query: str) -> dict[str, str]:
    """A complete interactive sign-in; the parameters sent back to the client."""
    response = op.get("/authorization", authn_query(**query))
    assert location(response).endswith("/login")
    assert location(log_in(op)).endswith("/consent")
    return redirect_params(consent(op))


def redeem(op: OP, code: str, **extra: str) -> TestResponse:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": RP_CALLBACK}
    body.update(extra)
    return op.post("/token", body, headers=basic())


def id_token_claims(op: OP, id_token: str) -> dict[str, Any]:
    keys = [VerificationKey.from_jwk(jwk) for jwk in op.get("/jwks").json["keys"]]
    return jws_verify(id_token, keys)


def assert_no_store(response: TestResponse) -> None:
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"


# -- the code flow, end to end -------------------------------------------------------------------

def test_discovery_and_jwks(op: OP) -> None:
    response = op.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    metadata = response.json
    assert metadata["issuer"] == ISSUER
    for endpoint in ("authorization", "token", "userinfo", "registration", "jwks"):
        path = urlsplit(metadata[f"{endpoint}_endpoint" if endpoint != "jwks" else "jwks_uri"])
        assert op.get(path.path).status_code != 404
    assert urlsplit(metadata["end_session_endpoint"]).path == "/logout"
    jwks = op.get("/jwks").json
    assert [key["kty"] for key in jwks["keys"]] == ["RSA"]
    assert "d" not in jwks["keys"][0]


def test_code_flow(op: OP) -> None:
    before = int(time.time())
    params = sign_in(op)
    assert params["state"] == "st-1"
    assert params["iss"] == ISSUER

    response = redeem(op, params["code"])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_no_store(response)
    tokens = response.json
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    claims = id_token_claims(op, tokens["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] in (RP, [RP])
    assert claims["nonce"] == "n-1"
    assert before <= claims["auth_time"] <= int(time.time())  # authorize(auth_time=...)

    userinfo = op.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 200
    assert userinfo.json == {"sub": claims["sub"], "name": "Alice Liddell", "given_name": "Alice",
                             "email": "alice@example.com", "email_verified": True}
    # POST with the token in the form body (RFC 6750 2.2)
    posted = op.post("/userinfo", {"access_token": tokens["access_token"]})
    assert posted.status_code == 200 and posted.json["sub"] == claims["sub"]

    refreshed = op.post("/token", {"grant_type": "refresh_token",
                                   "refresh_token": tokens["refresh_token"]}, headers=basic())
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert_no_store(refreshed)
    assert refreshed.json["access_token"] != tokens["access_token"]


def test_replayed_code_is_refused_and_revokes_the_tokens(op: OP) -> None:
    code = sign_in(op)["code"]
    access_token = redeem(op, code).json["access_token"]
    replay = redeem(op, code)
    assert replay.status_code == 400
    assert replay.json["error"] == "invalid_grant"
    assert_no_store(replay)
    userinfo = op.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
    assert userinfo.status_code == 401
    assert userinfo.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_public_client_with_pkce(op: OP) -> None:
    verifier = "v" * 64
    challenge = b64url_encode(hashlib.sha256(verifier.encode()).digest())
    response = op.get("/authorization", authn_query(
        client_id=SPA, redirect_uri=SPA_CALLBACK, code_challenge=challenge,
        code_challenge_method="S256"))
    assert location(response).endswith("/login")
    log_in(op)
    page = op.get("/consent")
    assert SPA in page.get_data(as_text=True)  # no client_name: the client_id is shown
    code = redirect_params(op.post("/consent", {**csrf_of(page),
                                                "decision": "allow"}))["code"]
    token = op.post("/token", {"grant_type": "authorization_code", "code": code,
                               "redirect_uri": SPA_CALLBACK, "client_id": SPA,
                               "code_verifier": verifier})
    assert token.status_code == 200, token.get_data(as_text=True)


def test_implicit_flow_answers_in_the_fragment(op: OP) -> None:
    assert location(op.get("/authorization", authn_query(response_type="id_token token")))
    log_in(op)
    response = consent(op)
    assert urlsplit(location(response)).fragment  # should_fragment_encode()
    params = redirect_params(response)
    assert set(params) >= {"id_token", "access_token", "state"}
    assert "code" not in params
    assert id_token_claims(op, params["id_token"])["nonce"] == "n-1"


# -- the authorization endpoint: login and consent hand-off --------------------------------------

def test_authentication_request_by_post(op: OP) -> None:
    response = op.post("/authorization", authn_query())
    assert location(response).endswith("/login")


def test_unknown_client_or_redirect_uri_is_shown_never_redirected(op: OP) -> None:
    for query in (authn_query(client_id="nobody"),
                  authn_query(redirect_uri="https://attacker.example/cb")):
        response = op.get("/authorization", query)
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert "invalid" in response.get_data(as_text=True)


def test_other_errors_are_redirected_to_the_client(op: OP) -> None:
    params = redirect_params(op.get("/authorization", authn_query(scope="profile")))
    assert params["error"] == "invalid_scope"
    assert params["state"] == "st-1"
    params = redirect_params(op.get("/authorization", authn_query(response_type="token")))
    assert params["error"] == "unsupported_response_type"


def test_prompt_none(op: OP) -> None:
    # not logged in
    params = redirect_params(op.get("/authorization", authn_query(prompt="none")))
    assert params["error"] == "login_required"
    assert params["state"] == "st-1"
    # logged in, but no consent given to this client yet
    log_in(op)
    params = redirect_params(op.get("/authorization", authn_query(prompt="none")))
    assert params["error"] == "consent_required"
    # after an interactive consent, prompt=none answers at once
    assert location(op.get("/authorization", authn_query())).endswith("/consent")
    consent(op)
    params = redirect_params(op.get("/authorization", authn_query(prompt="none")))
    assert "code" in params and "error" not in params
    assert redeem(op, params["code"]).status_code == 200


def test_logged_in_user_goes_to_consent_unless_prompt_login(op: OP) -> None:
    log_in(op)
    assert location(op.get("/authorization", authn_query())).endswith("/consent")
    assert location(op.get("/authorization", authn_query(prompt="login"))).endswith("/login")


def test_max_age_asks_for_a_new_login(op: OP, monkeypatch: pytest.MonkeyPatch) -> None:
    an_hour_ago = time.time() - 3600
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: an_hour_ago)
        log_in(op)
    assert location(op.get("/authorization", authn_query(max_age="7200"))).endswith("/consent")
    assert location(op.get("/authorization", authn_query(max_age="60"))).endswith("/login")
    # logging in again refreshes auth_time, which the ID token carries
    assert location(log_in(op)).endswith("/consent")
    code = redirect_params(consent(op))["code"]
    claims = id_token_claims(op, redeem(op, code).json["id_token"])
    assert claims["auth_time"] >= int(an_hour_ago) + 3600 - 5


def test_wrong_password_and_missing_csrf(op: OP) -> None:
    op.get("/authorization", authn_query())
    response = log_in(op, password="guess")
    assert response.status_code == 200
    assert "Wrong username or password" in response.get_data(as_text=True)
    # Django's CsrfViewMiddleware answers 403 Forbidden; the other applications 400
    expected = 403 if op.kind == "django" else 400
    refused = op.post("/login", {"username": "alice", "password": "wonderland"})
    assert refused.status_code == expected
    assert location(log_in(op)).endswith("/consent")
    refused = op.post("/consent", {"decision": "allow"})
    assert refused.status_code == expected


def test_denied_consent(op: OP) -> None:
    op.get("/authorization", authn_query())
    log_in(op)
    params = redirect_params(consent(op, decision="deny"))
    assert params["error"] == "access_denied"
    assert params["state"] == "st-1"
    # the pending request is gone
    assert op.get("/consent").status_code == 400


def test_login_page_headers(op: OP) -> None:
    response = op.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# -- the token endpoint: RFC 6749 5.2 errors -----------------------------------------------------

def test_token_errors(op: OP) -> None:
    code = sign_in(op)["code"]

    wrong_secret = op.post(
        "/token", {"grant_type": "authorization_code", "code": code,
                   "redirect_uri": RP_CALLBACK}, headers=basic(secret="wrong"))
    assert wrong_secret.status_code == 401
    assert wrong_secret.json["error"] == "invalid_client"
    assert wrong_secret.headers["WWW-Authenticate"].startswith("Basic")
    assert_no_store(wrong_secret)

    no_client = op.post("/token", {"grant_type": "authorization_code", "code": code})
    assert no_client.status_code == 401
    assert no_client.headers["WWW-Authenticate"].startswith("Basic")

    cases = [
        ({"grant_type": "password", "username": "alice"}, "unsupported_grant_type"),
        ({"code": code, "redirect_uri": RP_CALLBACK}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "not-a-code",
          "redirect_uri": RP_CALLBACK}, "invalid_grant"),
        ({"grant_type": "authorization_code", "code": code,
          "redirect_uri": "https://rp.example.com/other"}, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, "invalid_grant"),
    ]
    for body, error in cases:
        response = op.post("/token", body, headers=basic())
        assert response.status_code == 400, (body, response.get_data(as_text=True))
        assert response.json["error"] == error, body
        assert "WWW-Authenticate" not in response.headers
        assert_no_store(response)

    not_utf8 = op.post("/token", b"grant_type=\xff", headers=basic(),
                       content_type="application/x-www-form-urlencoded")
    assert not_utf8.status_code == 400
    assert not_utf8.json["error"] == "invalid_request"
    # the code was not spent by the failed requests
    assert redeem(op, code).status_code == 200


# -- the UserInfo endpoint: RFC 6750 3 errors ----------------------------------------------------

def test_userinfo_errors(op: OP) -> None:
    missing = op.get("/userinfo")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.headers["Cache-Control"] == "no-store"

    unknown = op.get("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert unknown.status_code == 401
    assert unknown.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert unknown.json["error"] == "invalid_token"

    access_token = redeem(op, sign_in(op)["code"]).json["access_token"]
    twice = op.post("/userinfo", {"access_token": access_token},
                    headers={"Authorization": "Bearer " + access_token})
    assert twice.status_code == 400
    assert twice.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'


def test_signed_userinfo(op: OP) -> None:
    """A client that registered userinfo_signed_response_alg gets application/jwt (OIDC Core
    5.3.2); the host sends to_body() with content_type."""
    op.provider.clients[RP] = {**op.provider.clients[RP], "userinfo_signed_response_alg": "RS256"}
    access_token = redeem(op, sign_in(op)["code"]).json["access_token"]
    response = op.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
    assert response.status_code == 200
    assert response.mimetype == "application/jwt"
    assert response.headers["Cache-Control"] == "no-store"
    claims = id_token_claims(op, response.get_data(as_text=True))  # verified with /jwks
    assert claims["iss"] == ISSUER and claims["aud"] == RP and claims["name"] == "Alice Liddell"

    op.provider.clients[RP] = {**op.provider.clients[RP], "userinfo_signed_response_alg": "ES512"}
    refused = op.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
    assert refused.status_code == 400 and refused.json["error"] == "invalid_request"


# -- registration --------------------------------------------------------------------------------

def test_registration(op: OP) -> None:
    metadata = {"redirect_uris": ["https://new-rp.example.com/cb"], "client_name": "New RP"}
    response = op.post("/registration", json.dumps(metadata), content_type="application/json")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert_no_store(response)
    registered = response.json
    assert registered["client_secret"]
    assert op.provider.get_client(registered["client_id"])["client_name"] == "New RP"

    for body, error in (({"client_name": "no redirect"}, "invalid_redirect_uri"),
                        ({"redirect_uris": ["http://not-loopback.example/cb"]},
                         "invalid_redirect_uri")):
        refused = op.post("/registration", json.dumps(body), content_type="application/json")
        assert refused.status_code == 400
        assert refused.json["error"] == error
    not_json = op.post("/registration", "{", content_type="application/json")
    assert not_json.status_code == 400
    assert not_json.json["error"] == "invalid_request"


# -- logout --------------------------------------------------------------------------------------

def test_logout_with_confirmation_and_post_logout_redirect(op: OP) -> None:
    tokens = redeem(op, sign_in(op)["code"]).json
    id_token = tokens["id_token"]
    sub = id_token_claims(op, id_token)["sub"]
    assert op.provider.authz_state.get_user_id_for_subject_identifier(sub) == "alice"
    assert op.provider.authz_state.introspect_access_token(tokens["access_token"])

    page = op.get("/logout", {"id_token_hint": id_token,
                              "post_logout_redirect_uri": RP_LOGGED_OUT, "state": "bye"})
    assert page.status_code == 200  # a link alone does not log out
    html = page.get_data(as_text=True)
    fields = dict(HIDDEN_FIELD.findall(html))
    assert fields["post_logout_redirect_uri"] == RP_LOGGED_OUT
    response = op.post("/logout", fields)
    assert location(response) == RP_LOGGED_OUT + "?state=bye"

    # logged out: the subject's tokens are revoked and the session is gone (the
    # subject identifier mapping stays, as in pyop 3)
    with pytest.raises(ValueError):
        op.provider.authz_state.introspect_access_token(tokens["access_token"])
    assert op.provider.authz_state.get_user_id_for_subject_identifier(sub) == "alice"
    assert location(op.get("/authorization", authn_query())).endswith("/login")


def test_logout_without_session_or_with_foreign_hint(op: OP) -> None:
    # without an id_token_hint nothing proves the target: no redirect (RP-Initiated
    # Logout 1.0, 3), as with pyop 3; the guides end on their "logged out" page
    response = op.get("/logout", {"post_logout_redirect_uri": RP_LOGGED_OUT, "client_id": RP})
    assert response.status_code == 200
    assert "Location" not in response.headers
    unregistered = op.get("/logout", {"post_logout_redirect_uri": "https://evil.example/",
                                      "client_id": RP})
    assert unregistered.status_code == 200
    assert "Location" not in unregistered.headers
    forged = op.get("/logout", {"id_token_hint": "e30.e30.c2ln"})
    assert forged.status_code == 400
    repeated = op.get("/logout?state=a&state=b")
    assert repeated.status_code == 400


# -- storage failures ----------------------------------------------------------------------------

def test_storage_error_is_503(op: OP, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("the database is down")

    code = sign_in(op)["code"]
    monkeypatch.setattr(op.provider.authz_state.authorization_codes, "get", unavailable)
    response = redeem(op, code)
    assert response.status_code == 503
    assert response.json["error"] == "server_error"
    assert response.headers["Retry-After"] == "30"
    assert_no_store(response)
    monkeypatch.setattr(op.provider.clients, "get", unavailable)
    assert op.get("/authorization", authn_query()).status_code == 503


# -- the bare WSGI application, called as the guide shows ----------------------------------------

@dataclass
class WSGIResult:
    status: str
    headers: dict[str, str]
    body: bytes


def call_wsgi(app: Any, method: str, path: str, query: str = "", body: bytes = b"",
              headers: Optional[dict[str, str]] = None) -> WSGIResult:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update({"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                    "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)})
    if body:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        started.update(status=status, headers=dict(response_headers))

    chunks = validator(app)(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return WSGIResult(started["status"], started["headers"], content)


@pytest.fixture
def wsgi_app(examples: dict[str, ModuleType], provider: Provider) -> Any:
    return examples["wsgi_app"].OpenIDProviderApp(provider, authenticate)


def test_wsgi_called_directly(wsgi_app: Any) -> None:
    result = call_wsgi(wsgi_app, "GET", "/.well-known/openid-configuration")
    assert result.status == "200 OK"
    assert json.loads(result.body)["issuer"] == ISSUER
    assert result.headers["Content-Length"] == str(len(result.body))

    result = call_wsgi(wsgi_app, "POST", "/token", body=b"grant_type=authorization_code&code=x",
                       headers={"Authorization": "Basic " + base64.b64encode(b"rp:bad").decode()})
    assert result.status == "401 Unauthorized"
    assert result.headers["WWW-Authenticate"].startswith("Basic")
    assert result.headers["Cache-Control"] == "no-store"

    result = call_wsgi(wsgi_app, "GET", "/userinfo",
                       headers={"Authorization": "Bearer unknown"})
    assert result.status == "401 Unauthorized"
    assert result.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_wsgi_headers_from_environ(examples: dict[str, ModuleType]) -> None:
    headers = examples["wsgi_app"].request_headers({
        "HTTP_AUTHORIZATION": "Bearer x", "HTTP_X_FORWARDED_PROTO": "https",
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": "12",
        "REQUEST_METHOD": "POST"})
    assert headers == {"Authorization": "Bearer x", "X-Forwarded-Proto": "https",
                       "Content-Type": "application/x-www-form-urlencoded",
                       "Content-Length": "12"}


def test_wsgi_routing_errors(wsgi_app: Any) -> None:
    assert call_wsgi(wsgi_app, "GET", "/nowhere").status == "404 Not Found"
    result = call_wsgi(wsgi_app, "GET", "/token")
    assert result.status == "405 Method Not Allowed"
    assert result.headers["Allow"] == "POST"
    environ_body = b"x" * (1024 * 1024 + 1)
    assert call_wsgi(wsgi_app, "POST", "/token", body=environ_body).status.startswith("413")


def test_wsgi_session_cookie(wsgi_app: Any) -> None:
    result = call_wsgi(wsgi_app, "GET", "/authorization", urlencode(authn_query()))
    assert result.status.startswith("303")
    cookie = result.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in cookie  # the issuer is https



# -- introspection and revocation (the Django and FastAPI applications) --------------------------

@pytest.fixture(params=["django", "fastapi", "fastapi_async"])
def tm_op(request: pytest.FixtureRequest, examples: dict[str, ModuleType],
          signing_key_pem: str) -> Iterator[OP]:
    for provider in provider_for(request.param, examples, signing_key_pem,
                                 token_management=True):
        yield from make_op(request.param, examples, provider)


def test_introspection_and_revocation(tm_op: OP) -> None:
    op = tm_op
    metadata = op.get("/.well-known/openid-configuration").json
    assert urlsplit(metadata["introspection_endpoint"]).path == "/introspection"
    assert urlsplit(metadata["revocation_endpoint"]).path == "/revocation"
    tokens = redeem(op, sign_in(op)["code"]).json

    # RFC 7662: the client's own live token is active, with its scope and sub
    response = op.post("/introspection", {"token": tokens["access_token"]}, headers=basic())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_no_store(response)
    assert response.json["active"] is True
    assert set(response.json["scope"].split()) == {"openid", "profile", "email"}
    assert response.json["client_id"] == RP and response.json["sub"]
    unknown = op.post("/introspection", {"token": "not-a-token"}, headers=basic())
    assert unknown.json == {"active": False}
    refused = op.post("/introspection", {"token": tokens["access_token"]},
                      headers=basic(secret="wrong"))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert refused.json["error"] == "invalid_client"
    public = op.post("/introspection", {"token": tokens["access_token"], "client_id": SPA})
    assert public.status_code == 401  # public clients may not introspect
    missing = op.post("/introspection", {}, headers=basic())
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"

    # RFC 7009: 200 with an empty body; the grant of a refresh token is revoked
    revoked = op.post("/revocation", {"token": tokens["refresh_token"],
                                      "token_type_hint": "refresh_token"}, headers=basic())
    assert revoked.status_code == 200 and revoked.get_data() == b""
    assert revoked.headers["Cache-Control"] == "no-store"
    assert op.post("/introspection", {"token": tokens["access_token"]},
                   headers=basic()).json == {"active": False}
    userinfo = op.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 401
    # an unknown token is no error (RFC 7009 2.2); bad credentials are
    assert op.post("/revocation", {"token": "not-a-token"}, headers=basic()).status_code == 200
    assert op.post("/revocation", {"token": "x"},
                   headers=basic(secret="wrong")).status_code == 401


# -- Django: the WSGI application and CSRF -------------------------------------------------------

def test_django_wsgi_application(examples: dict[str, ModuleType], provider: Provider) -> None:
    """create_app() returns a PEP 3333 application (what a WSGI server such as gunicorn
    serves)."""
    ops = make_op("django", examples, provider)
    op = next(ops)
    try:
        client = Client(validator(op.app))
        response = client.get(ISSUER + "/.well-known/openid-configuration", buffered=True)
        assert response.status_code == 200 and response.json["issuer"] == ISSUER
        unknown = client.get(ISSUER + "/userinfo", headers={"Authorization": "Bearer x"},
                             buffered=True)
        assert unknown.status_code == 401
        assert unknown.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        # the routes answer only their methods
        assert client.get(ISSUER + "/token", buffered=True).status_code == 405
    finally:
        ops.close()


def test_django_csrf_protects_the_forms_not_the_client_endpoints(
        examples: dict[str, ModuleType], provider: Provider) -> None:
    """The login, consent and logout forms need the CSRF token and a same-origin Origin;
    the endpoints called by clients (token, UserInfo, registration, and the authorization
    request posted from the client's site) are csrf_exempt."""
    ops = make_op("django", examples, provider)
    op = next(ops)
    try:
        op.get("/authorization", authn_query())
        form = {**csrf_of(op.get("/login")), "username": "alice", "password": "wonderland"}
        cross_site = from_django(op.client.post(
            "/login", urlencode(form), content_type="application/x-www-form-urlencoded",
            secure=True, headers={"Origin": "https://evil.example"}))
        assert cross_site.status_code == 403
        assert location(op.post("/login", form)).endswith("/consent")

        code = redirect_params(consent(op))["code"]
        # posted from another site, without any CSRF token or cookie
        fresh = DjangoClient(enforce_csrf_checks=True, HTTP_HOST=urlsplit(ISSUER).netloc)
        body = urlencode({"grant_type": "authorization_code", "code": code,
                          "redirect_uri": RP_CALLBACK})
        token = from_django(fresh.post("/token", body, secure=True,
                                       content_type="application/x-www-form-urlencoded",
                                       headers={**basic(), "Origin": "https://rp.example.com"}))
        assert token.status_code == 200, token.get_data(as_text=True)
        assert_no_store(token)
        authorization = from_django(fresh.post(
            "/authorization", urlencode(authn_query()), secure=True,
            content_type="application/x-www-form-urlencoded",
            headers={"Origin": "https://rp.example.com"}))
        assert location(authorization).endswith("/login")
    finally:
        ops.close()


# -- FastAPI: the thread pool or pyop.aio keep the event loop serving --------------------------

def test_fastapi_thread_pool_keeps_the_event_loop_serving(
        examples: dict[str, ModuleType], signing_key_pem: str) -> None:
    """docs/examples/fastapi_threadpool.py: 8 UserInfo requests whose user lookup blocks
    for ``delay`` seconds, and an unrelated JWK Set request due 50 ms later. Called
    directly from ``async def``, pyop blocks the event loop: the lookups run one after the
    other and the JWK Set request waits. Through the thread pool (fastapi_app.py) the
    JWK Set request is answered while the lookups run, and so it is with AsyncProvider
    (fastapi_async_app.py) and a directory whose lookup is a coroutine. Wide margins: the
    figures of a quiet machine are in docs/integration-fastapi.rst."""
    delay = 0.3
    # in a thread of its own: asyncio.run() needs a thread without a running event loop
    # (Playwright's sync API, used by the browser tests, keeps one in the main thread)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        timings = pool.submit(load_example("fastapi_threadpool").run, examples,
                              signing_key_pem, delay=delay, concurrent=8).result()
    direct, pooled, awaited = timings["direct"], timings["threadpool"], timings["async"]
    assert direct.total >= 8 * delay * 0.9  # one lookup at a time
    assert direct.fast_answered >= delay  # not answered before a whole lookup ended
    for overlapping in (pooled, awaited):
        assert overlapping.fast_answered < min(overlapping.slow_answered)  # meanwhile
        assert overlapping.total < 8 * delay / 2  # the lookups overlapped
    # AsyncProvider: every lookup waited on the event loop at once, no thread needed
    assert len(awaited.slow_answered) == 8
    assert max(awaited.slow_answered) - min(awaited.slow_answered) < delay
