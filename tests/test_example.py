"""The example OP (``example/``) through Flask's test client: pages, flows and error responses."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

pytest.importorskip("flask", reason="the example needs Flask: pip install -e .[example]")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # example/ is run from the checkout, not installed
    sys.path.insert(0, str(REPO))

from flask import Flask  # noqa: E402

from example.app import DEFAULT_USERS_FILE, config_from_env, create_app  # noqa: E402
from example.users import UserStore, hash_password, verify_password  # noqa: E402
from pyop.crypto import VerificationKey, jws_verify  # noqa: E402
from pyop.exceptions import StorageError  # noqa: E402
from pyop.keys import generate_signing_key, write_private_key  # noqa: E402
from pyop.provider import SCOPE_CLAIMS  # noqa: E402

ISSUER = "http://127.0.0.1:5999"
REDIRECT_URI = "https://rp.example.org/callback"
POST_LOGOUT_URI = "https://rp.example.org/logged-out"

FlaskClient = Any


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("example-key") / "signing_key.pem"
    write_private_key(generate_signing_key("RS256"), path)
    return path


@pytest.fixture(scope="module")
def fast_users(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled users with cheap password hashes (the bundled ones cost 600,000 rounds)."""
    users = json.loads(DEFAULT_USERS_FILE.read_text(encoding="utf-8"))
    for name, entry in users.items():
        entry["password_hash"] = hash_password(name, iterations=1000)
    path = tmp_path_factory.mktemp("users") / "users.json"
    path.write_text(json.dumps(users), encoding="utf-8")
    return path


@pytest.fixture
def app(tmp_path: Path, key_path: Path, fast_users: Path) -> Flask:
    """The example OP on in-memory storage, secrets in a fresh data dir (SQLite, the
    default storage, is used by the tests that create the app with the defaults)."""
    application = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
                              "signing_key": str(key_path), "users_file": str(fast_users),
                              "demo": True, "storage_uri": "memory:"})
    application.testing = True
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def register(client: FlaskClient, **metadata: Any) -> dict[str, Any]:
    body = {"redirect_uris": [REDIRECT_URI], "client_name": "Test RP",
            "post_logout_redirect_uris": [POST_LOGOUT_URI], **metadata}
    response = client.post("/registration", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    result: dict[str, Any] = response.get_json()
    return result


def form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert match, f"no {name} field in the page"
    return match.group(1)


def authn_query(client_id: str, **extra: str) -> str:
    params = {"client_id": client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
              "scope": "openid profile email", "state": "st4te", "nonce": "n0nce", **extra}
    return "/authorization?" + urlencode(params)


def login(client: FlaskClient, username: str = "alice", password: str = "alice") -> Any:
    page = client.get("/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="username"' in html and 'name="password"' in html
    return client.post("/login", data={"csrf_token": form_value(html, "csrf_token"),
                                       "username": username, "password": password})


def consent(client: FlaskClient, decision: str = "approve") -> Any:
    page = client.get("/consent")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return client.post("/consent", data={"csrf_token": form_value(html, "csrf_token"),
                                         "request_id": form_value(html, "request_id"),
                                         "decision": decision})


def redirect_params(response: Any, base: str = REDIRECT_URI) -> dict[str, str]:
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(base + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_flow(client: FlaskClient, registered: dict[str, Any], **extra: str) -> dict[str, str]:
    """Authorization request, login, consent: the parameters sent back to the client."""
    response = client.get(authn_query(registered["client_id"], **extra))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login")
    assert login(client).headers["Location"].endswith("/consent")
    return redirect_params(consent(client))


def exchange(client: FlaskClient, registered: dict[str, Any], code: str,
             **extra: str) -> Any:
    basic = base64.b64encode("{}:{}".format(registered["client_id"],
                                            registered["client_secret"]).encode()).decode()
    return client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT_URI, **extra},
                       headers={"Authorization": "Basic " + basic})


def verify_id_token(client: FlaskClient, id_token: str) -> dict[str, Any]:
    jwks = client.get("/jwks").get_json()
    return jws_verify(id_token, [VerificationKey.from_jwk(k) for k in jwks["keys"]])


# -- discovery and keys ---------------------------------------------------------------------------

def test_discovery_publishes_every_endpoint(client: FlaskClient) -> None:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    config = response.get_json()
    assert config["issuer"] == ISSUER
    for name, path in [("authorization_endpoint", "/authorization"), ("token_endpoint", "/token"),
                       ("userinfo_endpoint", "/userinfo"), ("jwks_uri", "/jwks"),
                       ("registration_endpoint", "/registration"),
                       ("end_session_endpoint", "/logout"),
                       ("pushed_authorization_request_endpoint", "/par")]:
        assert config[name] == ISSUER + path
        assert client.open(path, method="OPTIONS").status_code != 404
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    keys = client.get("/jwks").get_json()["keys"]
    assert len(keys) == 1 and "d" not in keys[0] and keys[0]["kty"] == "RSA"


def test_signed_userinfo_for_a_client_that_registered_it(client: FlaskClient) -> None:
    config = client.get("/.well-known/openid-configuration").get_json()
    assert config["userinfo_signing_alg_values_supported"] == ["RS256"]
    registered = register(client, userinfo_signed_response_alg="RS256")
    tokens = exchange(client, registered, code_flow(client, registered)["code"]).get_json()
    userinfo = client.get("/userinfo",
                          headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 200
    assert userinfo.mimetype == "application/jwt"
    assert userinfo.headers["Cache-Control"] == "no-store"
    claims = verify_id_token(client, userinfo.get_data(as_text=True))  # checked with /jwks
    assert claims["iss"] == ISSUER and claims["aud"] == registered["client_id"]
    assert claims["name"] == "Alice Liddell"


def test_secrets_and_key_are_created_once_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = create_app({"issuer": ISSUER, "data_dir": str(data)})
    files = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    assert {"signing_key.pem", "session_secret", "subject_salt"} <= set(files)
    for name in ("signing_key.pem", "session_secret", "subject_salt"):
        assert (data / name).stat().st_mode & 0o077 == 0
    second = create_app({"issuer": ISSUER, "data_dir": str(data)})
    assert second.secret_key == first.secret_key
    assert {n: (data / n).read_bytes() for n in files} == files
    jwks = [app.test_client().get("/jwks").get_json() for app in (first, second)]
    assert jwks[0] == jwks[1]


def test_config_from_env() -> None:
    config = config_from_env({"PYOP_EXAMPLE_PORT": "6001", "PYOP_EXAMPLE_DATA": "/tmp/x",
                              "PYOP_EXAMPLE_STORAGE": "memory:",
                              "PYOP_EXAMPLE_KEY": "/tmp/k.pem", "PYOP_EXAMPLE_USERS": "u.json"})
    assert config == {"issuer": "http://127.0.0.1:6001", "data_dir": "/tmp/x",
                      "storage_uri": "memory:", "signing_key": "/tmp/k.pem",
                      "users_file": "u.json"}
    assert config_from_env({"PYOP_EXAMPLE_ISSUER": "https://op.example"})["issuer"] \
        == "https://op.example"
    assert config_from_env({})["issuer"] == "http://127.0.0.1:5000"


# -- the code flow --------------------------------------------------------------------------------

def test_code_flow_login_consent_token_userinfo(tmp_path: Path, key_path: Path) -> None:
    # all defaults: the bundled users file (demo user alice / alice), SQLite storage
    client = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
                         "signing_key": str(key_path)}).test_client()
    assert "demo user" in client.get("/login").get_data(as_text=True)
    registered = register(client)
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = code_flow(client, registered, code_challenge=challenge,
                       code_challenge_method="S256")
    assert params["state"] == "st4te"
    assert params["iss"] == ISSUER

    response = exchange(client, registered, params["code"], code_verifier=verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    tokens = response.get_json()
    assert tokens["token_type"] == "Bearer"
    claims = verify_id_token(client, tokens["id_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == registered["client_id"] or claims["aud"] == [registered["client_id"]]
    assert claims["nonce"] == "n0nce"
    assert isinstance(claims["auth_time"], int)

    userinfo = client.get("/userinfo",
                          headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 200
    assert userinfo.headers["Cache-Control"] == "no-store"
    info = userinfo.get_json()
    assert info["sub"] == claims["sub"]
    assert info["name"] == "Alice Liddell"
    assert info["email"] == "alice@example.com"
    assert "password_hash" not in info and "phone_number" not in info

    # the code is single-use (RFC 6749 4.1.2)
    replay = exchange(client, registered, params["code"], code_verifier=verifier)
    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant"
    assert replay.headers["Cache-Control"] == "no-store"


def test_login_page_shows_demo_user_and_client(client: FlaskClient) -> None:
    registered = register(client)
    client.get(authn_query(registered["client_id"], login_hint="alice"))
    response = client.get("/login")
    html = response.get_data(as_text=True)
    assert "demo user: <code>alice</code> / <code>alice</code>" in html
    assert "Test RP" in html
    assert 'value="alice"' in html  # login_hint prefilled
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_consent_page_lists_client_scopes_and_claims(client: FlaskClient) -> None:
    registered = register(client)
    claims = json.dumps({"userinfo": {"phone_number": {"essential": True}}})
    client.get(authn_query(registered["client_id"], claims=claims))
    login(client)
    html = client.get("/consent").get_data(as_text=True)
    assert "Test RP" in html
    for scope in ("openid", "profile", "email"):
        assert f"<code>{scope}</code>" in html
    assert "<code>phone_number</code>" in html
    assert "rp.example.org" in html
    approve = html.index('value="approve"')
    deny = html.index('value="deny"')
    assert approve < deny, "approve must be the form's first submit button"


def test_deny_redirects_access_denied(client: FlaskClient) -> None:
    registered = register(client)
    client.get(authn_query(registered["client_id"]))
    login(client)
    params = redirect_params(consent(client, "deny"))
    assert params["error"] == "access_denied"
    assert params["state"] == "st4te"
    assert "code" not in params


def test_wrong_password_shows_the_form_again(client: FlaskClient) -> None:
    response = login(client, "alice", "wrong")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Wrong username or password" in html
    assert login(client, "nobody", "alice").status_code == 200
    assert client.get("/consent").status_code == 400  # nothing pending, nobody logged in


def test_login_with_bad_csrf_token_is_refused(client: FlaskClient) -> None:
    client.get("/login")
    for token in ("forged", ""):
        response = client.post("/login", data={"csrf_token": token, "username": "alice",
                                               "password": "alice"})
        assert response.status_code == 400
    # no session at all (another site's form)
    fresh = client.application.test_client()
    response = fresh.post("/login", data={"csrf_token": "x", "username": "alice",
                                          "password": "alice"})
    assert response.status_code == 400
    assert "user_id" not in _session(client)


def test_consent_needs_csrf_token_and_current_request(client: FlaskClient) -> None:
    registered = register(client)
    client.get(authn_query(registered["client_id"]))
    login(client)
    html = client.get("/consent").get_data(as_text=True)
    bad_csrf = client.post("/consent", data={"csrf_token": "forged", "decision": "approve",
                                             "request_id": form_value(html, "request_id")})
    assert bad_csrf.status_code == 400
    stale = client.post("/consent", data={"csrf_token": form_value(html, "csrf_token"),
                                          "request_id": "another", "decision": "approve"})
    assert stale.status_code == 400


def test_consent_before_login_goes_to_login(client: FlaskClient) -> None:
    registered = register(client)
    client.get(authn_query(registered["client_id"]))
    response = client.get("/consent")
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")


def test_prompt_login_cannot_skip_the_login_page(client: FlaskClient) -> None:
    registered = register(client)
    code_flow(client, registered)
    response = client.get(authn_query(registered["client_id"], prompt="login"))
    assert response.headers["Location"].endswith("/login")
    # going straight to the consent page does not bypass the re-authentication
    assert client.get("/consent").headers["Location"].endswith("/login")


def test_logged_in_user_goes_straight_to_consent(client: FlaskClient) -> None:
    registered = register(client)
    code_flow(client, registered)
    # more than consented to: the consent page, without a new login
    response = client.get(authn_query(registered["client_id"], scope="openid phone"))
    assert response.headers["Location"].endswith("/consent")
    assert "code" in redirect_params(consent(client))


def test_post_authorization_request(client: FlaskClient) -> None:
    registered = register(client)
    query = authn_query(registered["client_id"]).split("?", 1)[1]
    response = client.post("/authorization", data=query,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")


def test_oversized_request_is_refused_before_it_breaks_the_session_cookie(
        client: FlaskClient) -> None:
    registered = register(client)
    params = redirect_params(client.get(authn_query(registered["client_id"], nonce="n" * 3000)))
    assert params["error"] == "invalid_request"


def test_implicit_flow_response_is_fragment_encoded(client: FlaskClient) -> None:
    registered = register(client, response_types=["id_token"], grant_types=["implicit"])
    client.get(authn_query(registered["client_id"], response_type="id_token"))
    login(client)
    response = consent(client)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert not location.query
    fragment = {k: v[0] for k, v in parse_qs(location.fragment).items()}
    claims = verify_id_token(client, fragment["id_token"])
    assert claims["name"] == "Alice Liddell" and claims["nonce"] == "n0nce"


def form_post_fields(response: Any) -> dict[str, str]:
    """The hidden fields of a form_post page, checked to post to the redirect URI."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert "'unsafe-hashes'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    assert f'<form method="post" action="{REDIRECT_URI}">' in html
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def test_hybrid_flow_with_form_post_response_mode(client: FlaskClient) -> None:
    """OAuth 2.0 Form Post Response Mode: advertised, and the response is posted."""
    assert "form_post" in client.get("/.well-known/openid-configuration").get_json()[
        "response_modes_supported"]
    registered = register(client, response_types=["code id_token"],
                          grant_types=["authorization_code", "implicit"])
    client.get(authn_query(registered["client_id"], response_type="code id_token",
                           response_mode="form_post"))
    login(client)
    fields = form_post_fields(consent(client))
    assert fields["state"] == "st4te" and fields["code"]
    claims = verify_id_token(client, fields["id_token"])
    assert claims["nonce"] == "n0nce" and claims["c_hash"]
    assert exchange(client, registered, fields["code"]).status_code == 200


def test_errors_are_form_posted_for_form_post_requests(client: FlaskClient) -> None:
    registered = register(client)
    client.get(authn_query(registered["client_id"], response_mode="form_post"))
    login(client)
    fields = form_post_fields(consent(client, decision="deny"))
    assert fields["error"] == "access_denied" and fields["state"] == "st4te"
    response = client.get(authn_query(registered["client_id"], response_mode="form_post",
                                      prompt="none", scope="openid phone"))
    assert form_post_fields(response)["error"] == "consent_required"


# -- prompt=none ----------------------------------------------------------------------------------

def test_prompt_none_without_session_redirects_login_required(client: FlaskClient) -> None:
    registered = register(client)
    response = client.get(authn_query(registered["client_id"], prompt="none"))
    params = redirect_params(response)
    assert params["error"] == "login_required"
    assert params["state"] == "st4te"


def test_prompt_none_with_session_and_consent_issues_code(client: FlaskClient) -> None:
    registered = register(client)
    code_flow(client, registered)
    params = redirect_params(client.get(authn_query(registered["client_id"], prompt="none")))
    assert "code" in params and params["state"] == "st4te"
    # more scopes than consented to
    params = redirect_params(client.get(authn_query(registered["client_id"], prompt="none",
                                                    scope="openid phone")))
    assert params["error"] == "consent_required"


# -- errors that must not be redirected -----------------------------------------------------------

def test_unknown_client_gets_error_page_not_redirect(client: FlaskClient) -> None:
    response = client.get(authn_query("no-such-client"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert "unknown client" in response.get_data(as_text=True).lower()


def test_unregistered_redirect_uri_gets_error_page(client: FlaskClient) -> None:
    registered = register(client)
    response = client.get("/authorization?" + urlencode({
        "client_id": registered["client_id"], "redirect_uri": "https://evil.example/cb",
        "response_type": "code", "scope": "openid"}))
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_invalid_request_from_known_client_is_redirected(client: FlaskClient) -> None:
    registered = register(client)
    response = client.get(authn_query(registered["client_id"], scope="profile"))  # no openid
    assert redirect_params(response)["error"] == "invalid_scope" or \
        redirect_params(response)["error"] == "invalid_request"


# -- token and userinfo errors --------------------------------------------------------------------

def test_token_invalid_client_is_401_with_basic_challenge(client: FlaskClient) -> None:
    registered = register(client)
    params = code_flow(client, registered)
    response = exchange(client, {**registered, "client_secret": "wrong"}, params["code"])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["error"] == "invalid_client"


def test_token_endpoint_errors(client: FlaskClient) -> None:
    registered = register(client)
    response = exchange(client, registered, "not-a-code")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert response.headers["Pragma"] == "no-cache"
    assert client.get("/token").status_code == 405


def test_userinfo_errors_follow_rfc6750(client: FlaskClient) -> None:
    response = client.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/userinfo", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.get_json()["error"] == "invalid_token"


def test_registration_errors(client: FlaskClient) -> None:
    response = client.post("/registration", data="not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    response = client.post("/registration", data=json.dumps(
        {"redirect_uris": ["http://rp.example.org/cb"]}), content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_redirect_uri"


def test_storage_error_is_503(client: FlaskClient, app: Flask,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    provider = app.extensions["pyop"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("storage get failed on 'x': OperationalError")

    monkeypatch.setattr(provider, "handle_token_request", broken)
    response = client.post("/token", data={"grant_type": "authorization_code"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "server_error"
    assert "OperationalError" not in response.get_data(as_text=True)


# -- logout ---------------------------------------------------------------------------------------

def test_logout_with_id_token_hint_redirects_and_ends_the_session(client: FlaskClient) -> None:
    registered = register(client)
    params = code_flow(client, registered)
    tokens = exchange(client, registered, params["code"]).get_json()
    response = client.get("/logout?" + urlencode({
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI,
        "state": "bye"}))
    assert redirect_params(response, POST_LOGOUT_URI) == {"state": "bye"}
    assert "user_id" not in _session(client)
    # the session is gone: prompt=none needs a login again
    again = client.get(authn_query(registered["client_id"], prompt="none"))
    assert redirect_params(again)["error"] == "login_required"


def test_logout_without_hint_asks_first(client: FlaskClient) -> None:
    registered = register(client)
    code_flow(client, registered)
    page = client.get("/logout?" + urlencode({"client_id": registered["client_id"],
                                               "post_logout_redirect_uri": POST_LOGOUT_URI}))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Log out?" in html and "Test RP" in html
    assert "user_id" in _session(client)  # a plain link logs nobody out
    response = client.post("/logout", data={
        "csrf_token": form_value(html, "csrf_token"), "client_id": registered["client_id"],
        "post_logout_redirect_uri": POST_LOGOUT_URI})
    assert response.status_code == 303
    assert response.headers["Location"] == POST_LOGOUT_URI
    assert "user_id" not in _session(client)


def test_logout_confirmation_names_registered_clients_only(client: FlaskClient) -> None:
    login(client)
    html = client.get("/logout?client_id=Your+Bank").get_data(as_text=True)
    assert "Log out?" in html
    assert "<strong>Your Bank</strong>" not in html


@pytest.fixture
def two_users_app(tmp_path: Path, key_path: Path, fast_users: Path) -> Flask:
    """The example OP with a second user, bob."""
    users = json.loads(fast_users.read_text(encoding="utf-8"))
    users["bob"] = {"password_hash": hash_password("bob", iterations=1000),
                    "claims": {"name": "Bob"}}
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    application = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
                              "signing_key": str(key_path), "users_file": str(users_file),
                              "demo": True, "storage_uri": "memory:"})
    application.testing = True
    return application


def alices_tokens_and_bobs_browser(app: Flask) -> tuple[dict[str, Any], dict[str, str], Any]:
    """Alice signs in to Test RP in one browser; bob signs in in another."""
    alice = app.test_client()
    registered = register(alice)
    tokens = exchange(alice, registered, code_flow(alice, registered)["code"]).get_json()
    bob = app.test_client()
    assert login(bob, "bob", "bob").status_code == 303
    return registered, tokens, bob


def test_logout_confirmation_names_the_client_of_the_hint(two_users_app: Flask) -> None:
    """A hint of another session asks first, naming the client of its ``aud``
    (``["client_id"]``, as pyop 3 issued it) and the host it returns to."""
    _, tokens, bob = alices_tokens_and_bobs_browser(two_users_app)
    html = bob.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"],
                                           "post_logout_redirect_uri": POST_LOGOUT_URI})
                   ).get_data(as_text=True)
    assert "Log out?" in html and "<strong>Test RP</strong>" in html
    assert "<strong>rp.example.org</strong>" in html


def test_rp_initiated_logout_2_hint_of_an_earlier_unrelated_session_asks_first(
        two_users_app: Flask) -> None:
    """Alice's ID token sent to the browser where bob is signed in: a plain GET logs
    nobody out and revokes nothing (RP-Initiated Logout 1.0, 2); bob's confirmation logs
    bob out, not alice."""
    _, tokens, bob = alices_tokens_and_bobs_browser(two_users_app)
    query = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI,
             "state": "s1"}
    page = bob.get("/logout?" + urlencode(query))
    assert page.status_code == 200 and "Location" not in page.headers
    assert _session(bob).get("user_id") == "bob"
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert two_users_app.test_client().get("/userinfo", headers=bearer).status_code == 200
    confirmed = bob.post("/logout", data={
        "csrf_token": form_value(page.get_data(as_text=True), "csrf_token"), **query})
    assert redirect_params(confirmed, POST_LOGOUT_URI) == {"state": "s1"}
    assert "user_id" not in _session(bob)
    # alice's grants were not revoked by bob's logout
    assert two_users_app.test_client().get("/userinfo", headers=bearer).status_code == 200


def test_rp_initiated_logout_3_signed_out_return_without_hint_asks_first(
        client: FlaskClient) -> None:
    """Nobody signed in, client_id and a registered post_logout_redirect_uri, no hint: the
    link alone redirects nowhere (an open redirector with open registration); the user is
    asked "Return to <client>?" and goes there on confirmation (RP-Initiated Logout 1.0, 3)."""
    registered = register(client)
    query = {"client_id": registered["client_id"], "post_logout_redirect_uri": POST_LOGOUT_URI,
             "state": "s2"}
    page = client.get("/logout?" + urlencode(query))
    assert page.status_code == 200 and "Location" not in page.headers
    html = page.get_data(as_text=True)
    assert "Return to Test RP?" in html and "<strong>rp.example.org</strong>" in html
    response = client.post("/logout", data={"csrf_token": form_value(html, "csrf_token"),
                                            **query})
    assert redirect_params(response, POST_LOGOUT_URI) == {"state": "s2"}


def test_rp_initiated_logout_3_signed_out_return_with_hint_is_immediate(
        client: FlaskClient) -> None:
    """A verified hint proves the client: nothing to log out, straight back."""
    registered = register(client)
    tokens = exchange(client, registered, code_flow(client, registered)["code"]).get_json()
    with client.session_transaction() as session:
        session.clear()
    response = client.get("/logout?" + urlencode({
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI}))
    assert response.status_code == 303
    assert response.headers["Location"] == POST_LOGOUT_URI


def test_rp_initiated_logout_3_unregistered_uri_never_asked_for(client: FlaskClient) -> None:
    registered = register(client)
    response = client.get("/logout?" + urlencode({
        "client_id": registered["client_id"], "post_logout_redirect_uri": "https://evil.example/"}))
    assert response.status_code == 200
    assert "evil.example" not in response.get_data(as_text=True)
    assert "logged out" in response.get_data(as_text=True)


def test_logout_confirmation_needs_csrf(client: FlaskClient) -> None:
    login(client)
    response = client.post("/logout", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert "user_id" in _session(client)


def test_logout_without_session_shows_logged_out_page(client: FlaskClient) -> None:
    response = client.get("/logout")
    assert response.status_code == 200
    assert "logged out" in response.get_data(as_text=True)


def test_logout_with_forged_hint_is_refused(client: FlaskClient) -> None:
    login(client)
    response = client.get("/logout?id_token_hint=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
    assert response.status_code == 400
    assert "user_id" in _session(client)


def test_logout_with_unregistered_post_logout_uri_does_not_redirect(
        client: FlaskClient) -> None:
    registered = register(client)
    params = code_flow(client, registered)
    tokens = exchange(client, registered, params["code"]).get_json()
    response = client.get("/logout?" + urlencode({
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://evil.example/"}))
    assert response.status_code == 200
    assert "Location" not in response.headers


# -- sessions and users ---------------------------------------------------------------------------

def test_session_cookie_flags(tmp_path: Path, key_path: Path) -> None:
    for issuer, secure in (("http://127.0.0.1:5999", False), ("https://op.example.org", True)):
        app = create_app({"issuer": issuer, "data_dir": str(tmp_path / issuer[:5]),
                          "signing_key": str(key_path), "storage_uri": "memory:"})
        client = app.test_client()
        cookie = client.get("/login").headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure
        assert cookie.startswith("__Host-") is secure


def test_custom_users_file_turns_demo_mode_off(tmp_path: Path, key_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"bob": {
        "password_hash": hash_password("s3cret", iterations=1000),
        "claims": {"name": "Bob"}}}))
    app = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "d"),
                      "signing_key": str(key_path), "users_file": str(users),
                      "storage_uri": "memory:"})
    client = app.test_client()
    assert "demo user" not in client.get("/login").get_data(as_text=True)
    assert login(client, "bob", "s3cret").headers["Location"].endswith("/")
    assert "Bob" in client.get("/").get_data(as_text=True)


def test_falls_back_to_memory_storage_without_sqlalchemy(
        tmp_path: Path, key_path: Path, fast_users: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import example.app

    real_find_spec = example.app.importlib.util.find_spec
    monkeypatch.setattr(example.app.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sqlalchemy" else real_find_spec(name, *a))
    app = create_app({"issuer": ISSUER, "data_dir": str(tmp_path), "signing_key": str(key_path),
                      "users_file": str(fast_users)})
    storage = app.config["PYOP_EXAMPLE"]["storage"]
    assert storage.startswith("memory:") and "SQLAlchemy is not installed" in storage
    assert register(app.test_client())["client_id"]


def test_hash_password_command(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from example.__main__ import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    assert main(["--hash-password"]) == 0
    encoded = capsys.readouterr().out.strip()
    assert encoded.startswith("pbkdf2_sha256$600000$")
    assert verify_password("s3cret", encoded)


def test_password_hashes() -> None:
    encoded = hash_password("pw", iterations=1000)
    assert verify_password("pw", encoded)
    assert not verify_password("PW", encoded)
    assert not verify_password("pw", "md5$1$x$y")
    assert not verify_password("pw", "garbage")
    store = UserStore({"u": {"password_hash": encoded, "claims": {}}})
    assert store.authenticate("u", "pw") == "u"
    assert store.authenticate("x", "pw") is None
    with pytest.raises(ValueError):
        UserStore({"u": {"password_hash": encoded, "claims": {"sub": "chosen"}}})


def _session(client: FlaskClient) -> dict[str, Any]:
    with client.session_transaction() as session:
        return dict(session)


# -- python -m example ----------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_python_m_example_serves_discovery(tmp_path: Path, key_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYOP_EXAMPLE_PORT": str(port), "PYOP_EXAMPLE_DATA": str(tmp_path),
           "PYOP_EXAMPLE_KEY": str(key_path), "PYOP_EXAMPLE_STORAGE": "memory:"}
    process = subprocess.Popen([sys.executable, "-m", "example"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.strip() == f"pyop example OP: issuer http://127.0.0.1:{port}"
        config: Optional[dict[str, Any]] = None
        deadline = time.monotonic() + 15
        while config is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(  # noqa: S310 - loopback test server
                        f"http://127.0.0.1:{port}/.well-known/openid-configuration"
                        "?state=secret-state-value", timeout=2) as response:
                    config = json.load(response)
            except OSError:
                time.sleep(0.1)
        assert config is not None and config["issuer"] == f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    # the access log, without the query string (nor the server's own request line)
    assert re.search(r"INFO example\.access GET /\.well-known/openid-configuration 200 ", output)
    assert "secret-state-value" not in output


def test_client_configuration_endpoint(client: FlaskClient) -> None:
    registered = register(client)
    uri = urlsplit(registered["registration_client_uri"]).path
    assert uri == "/registration/" + registered["client_id"]
    auth = {"Authorization": "Bearer " + registered["registration_access_token"]}
    read = client.get(uri, headers=auth)
    assert read.status_code == 200 and read.headers["Cache-Control"] == "no-store"
    metadata = read.get_json()
    assert metadata["client_name"] == "Test RP"
    metadata["client_name"] = "Renamed RP"
    updated = client.put(uri, data=json.dumps(metadata), headers=auth,
                         content_type="application/json")
    assert updated.status_code == 200 and updated.get_json()["client_name"] == "Renamed RP"
    refused = client.get(uri, headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_token"
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    bad = client.put(uri, data=json.dumps({**metadata, "client_id": "other"}), headers=auth,
                     content_type="application/json")
    assert bad.status_code == 400
    assert client.delete(uri, headers=auth).status_code == 204
    assert client.get(uri, headers=auth).status_code == 401


# -- the access and error log ---------------------------------------------------------------------

ACCESS_LINE = re.compile(r"^(GET|POST|PUT|DELETE) (/[^ ?]*) (\d{3}) \d+\.\dms$")


def test_log_has_one_line_per_request_and_no_secret(tmp_path: Path, key_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A whole flow, with every kind of secret an OP sees; none of them is logged."""
    password = "Tr0ub4dor&3-not-logged"
    users = {"carol": {"password_hash": hash_password(password, iterations=1000),
                       "claims": {"name": "Carol", "email": "carol@example.org"}}}
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    app = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
                      "signing_key": str(key_path), "users_file": str(users_file),
                      "storage_uri": "memory:"})
    client = app.test_client()
    caplog.set_level(logging.DEBUG)  # everything, from every logger

    registered = register(client, grant_types=["authorization_code", "refresh_token"])
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                         ).rstrip(b"=").decode()
    state, nonce = "state-not-logged-1234", "nonce-not-logged-5678"
    response = client.get(authn_query(
        registered["client_id"], state=state, nonce=nonce, code_challenge=challenge,
        code_challenge_method="S256", scope="openid email offline_access", prompt="consent"))
    assert response.headers["Location"].endswith("/login")
    assert login(client, "carol", password).headers["Location"].endswith("/consent")
    params = redirect_params(consent(client))
    tokens = exchange(client, registered, params["code"], code_verifier=verifier).get_json()
    assert "refresh_token" in tokens
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert client.get("/userinfo", headers=bearer).status_code == 200
    assert client.get("/userinfo?access_token=" + tokens["access_token"]).status_code in (
        200, 400, 401)
    basic = base64.b64encode("{}:{}".format(registered["client_id"],
                                            registered["client_secret"]).encode()).decode()
    refreshed = client.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": tokens["refresh_token"]},
                            headers={"Authorization": "Basic " + basic})
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    management = {"Authorization": "Bearer " + registered["registration_access_token"]}
    assert client.get("/registration/" + registered["client_id"],
                      headers=management).status_code == 200
    # refused requests: a reused code, a wrong password, an unknown page with a query
    assert exchange(client, registered, params["code"],
                    code_verifier=verifier).status_code == 400
    client.get(authn_query(registered["client_id"], state=state))
    assert "Wrong username" in login(client, "carol", password + "x").get_data(as_text=True)
    assert client.get("/nowhere?code=" + params["code"]).status_code == 404
    logout = client.get("/logout?" + urlencode({
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI,
        "state": state}))
    assert logout.status_code in (200, 303)

    secrets_ = [password, password + "x", state, nonce, verifier, challenge, params["code"],
                tokens["access_token"], tokens["refresh_token"], tokens["id_token"],
                refreshed.get_json()["access_token"], registered["client_secret"],
                registered["registration_access_token"], app.config["SECRET_KEY"]]
    text = caplog.text
    for secret in secrets_:
        assert secret not in text
    for fragment in ("Authorization:", "Bearer", "Basic", "?", "csrf", "password"):
        assert fragment not in text
    access = [r.getMessage() for r in caplog.records if r.name == "example.access"]
    assert len(access) == 17  # one per request above (login() and consent() make two each)
    assert all(ACCESS_LINE.match(line) for line in access), access
    assert "GET /nowhere 404" in "\n".join(access)
    assert re.search(r"^POST /token 400 ", "\n".join(access), re.MULTILINE)
    refused = [r.getMessage() for r in caplog.records if r.name == "example.app"]
    assert any("POST /token refused: InvalidAuthorizationCode" in line or
               "POST /token refused: " in line for line in refused), refused


def test_unexpected_error_is_500_and_logged_with_its_type_only(
        client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    provider = app.extensions["pyop"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("token=secret-value-in-message")

    monkeypatch.setattr(provider, "handle_userinfo_request", broken)
    monkeypatch.setattr(provider, "parse_authentication_request", broken)
    caplog.set_level(logging.DEBUG)
    response = client.get("/userinfo", headers={"Authorization": "Bearer secret-value"})
    assert response.status_code == 500
    assert response.get_json() == {"error": "server_error"}
    page = client.get("/authorization?state=secret-value")
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "Something went wrong" in page.get_data(as_text=True)
    assert "secret-value" not in page.get_data(as_text=True)
    assert "secret-value" not in caplog.text
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert errors[0].startswith("GET /userinfo failed: RuntimeError at test_example.py:")
    assert errors[1].startswith("GET /authorization failed: RuntimeError at ")


# -- error pages ----------------------------------------------------------------------------------

def test_error_page_explains_and_folds_the_technical_detail(client: FlaskClient) -> None:
    response = client.get(authn_query("no-such-client"))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Sign-in request refused" in html
    assert "cannot be sent back" in html
    details = html[html.index("<details"):html.index("</details>")]
    assert "<summary>Technical details</summary>" in details
    assert "<code>unauthorized_client</code>" in details  # as pyop 3 answered an unknown client_id
    assert "unknown client" in details.lower()
    # the way back is home: the client is not known, its redirect_uri not verified
    assert re.search(r'<a class="button" href="/">Go to the home page</a>', html)
    assert REDIRECT_URI not in html


def test_error_page_offers_the_way_back_to_a_verified_client(client: FlaskClient) -> None:
    registered = register(client)
    client.get(authn_query(registered["client_id"]))
    login(client)
    response = client.post("/consent", data={"csrf_token": "forged", "decision": "approve"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Form expired" in html
    link = re.search(r'<a class="button" href="([^"]+)">Back to Test RP</a>', html)
    assert link, html
    back = link.group(1).replace("&amp;", "&")
    assert back.startswith(REDIRECT_URI + "?")
    params = parse_qs(urlsplit(back).query)
    assert params["error"] == ["access_denied"] and params["state"] == ["st4te"]
    assert "<details" not in html  # nothing technical to tell


def test_form_post_client_gets_no_back_link(client: FlaskClient) -> None:
    registered = register(client)
    client.get(authn_query(registered["client_id"], response_mode="form_post"))
    login(client)
    html = client.post("/consent", data={"csrf_token": "forged"}).get_data(as_text=True)
    assert 'href="/">Go to the home page' in html and "Back to" not in html


def test_logout_error_page_goes_home(client: FlaskClient) -> None:
    login(client)
    html = client.get("/logout?id_token_hint=forged").get_data(as_text=True)
    assert "Logout request refused" in html and "still signed in" in html
    assert "id_token_hint was not issued by this provider" in html[html.index("<details"):]
    assert 'href="/">Go to the home page' in html


def test_styled_404_page(client: FlaskClient) -> None:
    response = client.get("/no/such/page?x=1")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Page not found" in html and "style.css" in html
    assert 'href="/">Go to the home page' in html
    assert response.headers["X-Frame-Options"] == "DENY"


def test_api_endpoints_answer_http_errors_in_json(client: FlaskClient) -> None:
    response = client.get("/token")
    assert response.status_code == 405
    assert response.get_json()["error"] == "invalid_request"
    assert "POST" in response.headers["Allow"]
    page = client.put("/login")
    assert page.status_code == 405 and page.mimetype == "text/html"
    assert "GET" in page.headers["Allow"]


# -- logout confirmation: stay signed in ----------------------------------------------------------

def test_stay_signed_in_returns_to_the_verified_client(client: FlaskClient) -> None:
    registered = register(client)
    code_flow(client, registered)
    html = client.get("/logout?" + urlencode({
        "client_id": registered["client_id"], "post_logout_redirect_uri": POST_LOGOUT_URI,
        "state": "s1"})).get_data(as_text=True)
    stay = re.search(r'<a class="button secondary" href="([^"]+)">([^<]+)</a>', html)
    assert stay, html
    assert stay.group(1).replace("&amp;", "&") == POST_LOGOUT_URI + "?state=s1"
    assert stay.group(2) == "Stay signed in and return to Test RP"
    assert "user_id" in _session(client)  # showing the page logged nobody out


def test_stay_signed_in_goes_home_for_an_unverified_uri(client: FlaskClient) -> None:
    registered = register(client)
    code_flow(client, registered)
    html = client.get("/logout?" + urlencode({
        "client_id": registered["client_id"],
        "post_logout_redirect_uri": "https://evil.example/"})).get_data(as_text=True)
    assert '<a class="button secondary" href="/">Stay signed in</a>' in html
    assert "evil.example" not in html.split("</form>")[0].split("Log out</button>")[1]


# -- remembered consent ---------------------------------------------------------------------------

def sign_in_again(app: Flask, query: str) -> Any:
    """A new browser: authorization request and login; the response to the login form."""
    browser = app.test_client()
    assert browser.get(query).headers["Location"].endswith("/login")
    return browser, login(browser)


def test_consent_is_remembered_per_user_client_scopes_and_claims(app: Flask,
                                                                 client: FlaskClient) -> None:
    registered = register(client)
    other = register(client, client_name="Other RP")
    claims = json.dumps({"userinfo": {"phone_number": None}})
    code_flow(client, registered, claims=claims)
    stored = app.extensions["pyop_example"].granted("alice", registered["client_id"])
    # the claims shown on the consent page: those of the scopes and those asked by name
    assert stored == {"client_id": registered["client_id"],
                      "scopes": ["email", "openid", "profile"],
                      "claims": sorted({*SCOPE_CLAIMS["profile"], *SCOPE_CLAIMS["email"],
                                        "phone_number"})}
    client_id = registered["client_id"]
    # same or narrower scopes and claims, in a new session: straight back to the client
    # (offline_access without prompt=consent is ignored: OIDC Core 11)
    for extra in ({"claims": claims}, {}, {"scope": "openid email"},
                  {"scope": "openid email offline_access"}):
        browser, response = sign_in_again(app, authn_query(client_id, **extra))
        assert "code" in redirect_params(response), extra
    # wider, or prompt=consent: asked again
    for extra in ({"scope": "openid phone"},
                  {"claims": json.dumps({"id_token": {"address": None}})},
                  {"prompt": "consent"}, {"scope": "openid offline_access", "prompt": "consent"}):
        browser, response = sign_in_again(app, authn_query(client_id, **extra))
        assert response.headers["Location"].endswith("/consent"), extra
    # another client: asked
    browser, response = sign_in_again(app, authn_query(other["client_id"]))
    assert response.headers["Location"].endswith("/consent")
    # already logged in: no page at all, unless prompt=consent
    assert "code" in redirect_params(client.get(authn_query(client_id)))
    assert client.get(authn_query(client_id, prompt="consent")
                      ).headers["Location"].endswith("/consent")
    # consenting to more keeps what was allowed before
    assert "code" in redirect_params(consent(client))
    app.extensions["pyop_example"].forget_consents("alice")
    assert client.get(authn_query(client_id)).headers["Location"].endswith("/consent")


def test_remembered_consent_is_kept_in_the_storage(tmp_path: Path, key_path: Path,
                                                   fast_users: Path) -> None:
    """SQLite: a restarted OP still knows the consent."""
    config = {"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
              "signing_key": str(key_path), "users_file": str(fast_users)}
    first = create_app(config)
    registered = register(first.test_client())
    code_flow(first.test_client(), registered)
    restarted = create_app(config)
    browser, response = sign_in_again(restarted, authn_query(registered["client_id"]))
    assert "code" in redirect_params(response)


def test_consent_page_describes_claims_and_marks_essential_ones(client: FlaskClient) -> None:
    registered = register(client)
    claims = json.dumps({"userinfo": {"phone_number": {"essential": True}, "x_custom": None},
                         "id_token": {"email": {"essential": False}}})
    client.get(authn_query(registered["client_id"], claims=claims))
    login(client)
    html = client.get("/consent").get_data(as_text=True)
    items = re.findall(r"<li>(.*?)</li>", html.split('class="claims"')[1], re.S)
    texts = [" ".join(item.split()) for item in items]
    assert texts == [
        'Your email address <code>email</code>',
        'Your phone number <code>phone_number</code> <span class="essential">required</span>',
        'The claim named x_custom <code>x_custom</code>']
    assert "Your name and basic profile" in html  # the scopes are described too


def test_pushed_authorization_request_flow(client: FlaskClient) -> None:
    """RFC 9126: POST /par answers 201 with a request_uri; the authorization request
    carries only client_id and request_uri, once; errors are JSON, never redirects."""
    registered = register(client)
    basic = base64.b64encode("{}:{}".format(registered["client_id"],
                                            registered["client_secret"]).encode()).decode()
    params = {"redirect_uri": REDIRECT_URI, "response_type": "code",
              "scope": "openid profile", "state": "p4r", "nonce": "n0nce"}
    response = client.post("/par", data=params, headers={"Authorization": "Basic " + basic})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    pushed = response.get_json()
    assert pushed["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    query = "/authorization?" + urlencode({"client_id": registered["client_id"],
                                           "request_uri": pushed["request_uri"]})
    response = client.get(query)
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")
    assert login(client).headers["Location"].endswith("/consent")
    assert redirect_params(consent(client))["state"] == "p4r"
    replay = client.get(query)  # used once: an error page, not a redirect
    assert replay.status_code == 400 and "Location" not in replay.headers
    refused = client.post("/par", data={**params, "redirect_uri": "https://evil.example/cb"},
                          headers={"Authorization": "Basic " + basic})
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    unauthenticated = client.post("/par", data=params)
    assert unauthenticated.status_code == 401
    assert unauthenticated.get_json()["error"] == "invalid_client"

# -- single logout: sessions, front- and back-channel (docs/logout.rst) ---------------------------

def test_example_advertises_single_logout(client: FlaskClient) -> None:
    metadata = client.get("/.well-known/openid-configuration").get_json()
    for name in ("backchannel_logout_supported", "backchannel_logout_session_supported",
                 "frontchannel_logout_supported", "frontchannel_logout_session_supported"):
        assert metadata[name] is True


def id_token_claims(client: FlaskClient, id_token: str) -> dict[str, Any]:
    keys = [VerificationKey.from_jwk(jwk) for jwk in client.get("/jwks").get_json()["keys"]]
    return dict(jws_verify(id_token, keys))


def test_example_logout_page_loads_the_frontchannel_iframes(client: FlaskClient) -> None:
    """The login session's id reaches the ID token (sid) and the iframe URL (iss, sid);
    the page's CSP allows frames from exactly that origin (Front-Channel Logout 1.0 4)."""
    registered = register(client, frontchannel_logout_uri="https://rp.example.org/fc?a=1",
                          frontchannel_logout_session_required=True)
    tokens = exchange(client, registered, code_flow(client, registered)["code"]).get_json()
    sid = id_token_claims(client, tokens["id_token"])["sid"]
    assert sid and sid not in str(_session(client))  # not the cookie's secret
    response = client.get("/logout?" + urlencode({
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI,
        "state": "bye"}))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    iframe = re.search(r'<iframe src="([^"]*)"', html)
    assert iframe is not None
    src = iframe.group(1).replace("&amp;", "&")
    assert src.startswith("https://rp.example.org/fc?")
    assert parse_qs(urlsplit(src).query) == {"a": ["1"], "iss": [ISSUER], "sid": [sid]}
    csp = dict(part.split(" ", 1) for part in
               response.headers["Content-Security-Policy"].split("; "))
    assert csp["frame-src"] == "https://rp.example.org"
    assert csp["default-src"] == "'none'"
    assert POST_LOGOUT_URI + "?state=bye" in html
    assert "user_id" not in _session(client)
    # the session's grants are revoked
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert client.get("/userinfo", headers=bearer).status_code == 401


def backchannel_app(tmp_path: Path, key_path: Path, fast_users: Path, **extra: Any) -> Flask:
    application = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
                              "signing_key": str(key_path), "users_file": str(fast_users),
                              "demo": True, "storage_uri": "memory:", **extra})
    application.testing = True
    return application


def test_example_backchannel_logout_reaches_a_loopback_rp_when_allowed(
        tmp_path: Path, key_path: Path, fast_users: Path) -> None:
    from support.logout import relying_party_servers

    application = backchannel_app(tmp_path, key_path, fast_users, outbound_allow_loopback=True)
    client = application.test_client()
    with relying_party_servers((200, 0.0)) as (rp,):
        registered = register(client, backchannel_logout_uri=rp.uri,
                              backchannel_logout_session_required=True)
        tokens = exchange(client, registered, code_flow(client, registered)["code"]).get_json()
        sid = id_token_claims(client, tokens["id_token"])["sid"]
        response = client.get("/logout?" + urlencode({
            "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI}))
        assert response.status_code == 303  # no front-channel client: straight back
    [(content_type, form)] = rp.received
    assert content_type == "application/x-www-form-urlencoded"
    claims = id_token_claims(client, form["logout_token"])
    assert claims["sid"] == sid and claims["aud"] == registered["client_id"]
    assert claims["iss"] == ISSUER and "nonce" not in claims


def test_example_backchannel_logout_never_reaches_loopback_by_default(
        tmp_path: Path, key_path: Path, fast_users: Path) -> None:
    from support.logout import relying_party_servers

    client = backchannel_app(tmp_path, key_path, fast_users).test_client()
    with relying_party_servers((200, 0.0)) as (rp,):
        registered = register(client, backchannel_logout_uri=rp.uri)
        tokens = exchange(client, registered, code_flow(client, registered)["code"]).get_json()
        response = client.get("/logout?" + urlencode({
            "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI}))
        assert response.status_code == 303
    assert rp.received == []


def test_example_outbound_allow_loopback_from_the_environment() -> None:
    assert "outbound_allow_loopback" not in config_from_env({})
    assert config_from_env({"PYOP_EXAMPLE_OUTBOUND_ALLOW_LOOPBACK": "1"})[
        "outbound_allow_loopback"] is True
