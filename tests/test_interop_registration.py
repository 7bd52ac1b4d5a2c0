"""Interoperability of dynamic registration, RFC 7592 management and allow-lists, over HTTP.

No Python client library implements RFC 7592 (Authlib has its server side only), so the
client configuration endpoint is exercised with plain ``requests`` against a minimal Flask
host app served on a loopback port: registration (RFC 7591 3), read, update and delete
(RFC 7592 2.1-2.3) as an RP would send them. The allow-lists are then shown to a real RP
library: Authlib's ``OAuth2Session`` (as in ``tests/test_interop.py``), registered with a
narrower ``scope`` than it requests, receives the narrowed scope, accepts the token
response and validates the ID token with Authlib (``CodeIDToken`` over ``joserfc``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuthError as AuthlibOAuthError
from authlib.oidc.core import CodeIDToken
from flask import Flask, redirect
from flask import request as flask_request
from test_interop import ClientInfo, RelyingParty
from werkzeug.serving import WSGIRequestHandler, make_server

from pyop.authz_state import AuthorizationState
from pyop.exceptions import (
    BearerTokenError,
    InvalidAuthenticationRequest,
    InvalidClientRegistrationRequest,
    OAuthError,
)
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo
from pyop.util import should_fragment_encode

USER_ID = "alice"
USERS = {USER_ID: {"name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
                   "email": "alice@example.com", "email_verified": True}}
REDIRECT_URI = "https://rp.example.com/callback"
JSON_NO_STORE = {"Content-Type": "application/json", "Cache-Control": "no-store"}


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def host_app(provider_of: Any) -> Flask:
    """The routes a host needs, written as docs/registration.rst describes them."""
    app = Flask(__name__)

    @app.route("/.well-known/openid-configuration")
    def configuration() -> Any:
        return provider_of().provider_configuration.to_json(), 200, JSON_NO_STORE

    @app.route("/jwks")
    def jwks() -> Any:
        return json.dumps(provider_of().jwks), 200, JSON_NO_STORE

    @app.route("/authorization")
    def authorization() -> Any:
        provider = provider_of()
        try:
            authn_req = provider.parse_authentication_request(
                flask_request.query_string.decode("utf-8"))
        except InvalidAuthenticationRequest as e:
            url = e.to_error_url()
            return redirect(url, 303) if url else (str(e), 400)
        response = provider.authorize(authn_req, USER_ID)  # the end-user is logged in
        return redirect(response.request(authn_req["redirect_uri"],
                                         should_fragment_encode(authn_req)), 303)

    @app.route("/token", methods=["POST"])
    def token() -> Any:
        try:
            response = provider_of().handle_token_request(
                flask_request.get_data(as_text=True), flask_request.headers)
        except OAuthError as e:
            headers = dict(JSON_NO_STORE)
            if e.http_status == 401:
                headers["WWW-Authenticate"] = "Basic"
            return e.to_json(), e.http_status, headers
        return response.to_json(), 200, JSON_NO_STORE

    @app.route("/userinfo", methods=["GET", "POST"])
    def userinfo() -> Any:
        try:
            response = provider_of().handle_userinfo_request(
                flask_request.get_data(as_text=True), flask_request.headers)
        except BearerTokenError as e:
            return e.to_json(), e.http_status, {**JSON_NO_STORE,
                                                "WWW-Authenticate": e.www_authenticate}
        return response.to_json(), 200, JSON_NO_STORE

    @app.route("/registration", methods=["POST"])
    def registration() -> Any:
        try:
            response = provider_of().handle_client_registration_request(
                flask_request.get_data(as_text=True))
        except InvalidClientRegistrationRequest as e:
            return e.to_json(), 400, JSON_NO_STORE
        return response.to_json(), 201, JSON_NO_STORE

    @app.route("/registration/<client_id>", methods=["GET", "PUT", "DELETE"])
    def client_configuration(client_id: str) -> Any:
        provider = provider_of()
        try:
            if flask_request.method == "GET":
                response = provider.handle_client_read_request(client_id, flask_request.headers)
            elif flask_request.method == "PUT":
                response = provider.handle_client_update_request(
                    client_id, flask_request.get_data(as_text=True), flask_request.headers)
            else:
                provider.handle_client_delete_request(client_id, flask_request.headers)
                return "", 204, {"Cache-Control": "no-store"}
        except BearerTokenError as e:
            return e.to_json(), e.http_status, {**JSON_NO_STORE,
                                                "WWW-Authenticate": e.www_authenticate}
        except InvalidClientRegistrationRequest as e:
            return e.to_json(), 400, JSON_NO_STORE
        return response.to_json(), 200, JSON_NO_STORE

    return app


@dataclass
class Host:
    issuer: str
    provider: Provider


@pytest.fixture(scope="module")
def host(jwkest_signing_key: Any) -> Iterator[Host]:
    holder: dict[str, Provider] = {}
    server = make_server("127.0.0.1", 0, host_app(lambda: holder["provider"]),
                         request_handler=_QuietHandler)
    issuer = f"http://127.0.0.1:{server.server_port}"
    configuration = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorization",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "registration_endpoint": issuer + "/registration",
        "scopes_supported": ["openid", "profile", "email"],
    }
    holder["provider"] = Provider(
        jwkest_signing_key, configuration,
        AuthorizationState(HashBasedSubjectIdentifierFactory("interop salt")), {},
        Userinfo(USERS), hash_client_secrets=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Host(issuer, holder["provider"])
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def register(host: Host, **metadata: Any) -> dict[str, Any]:
    response = requests.post(host.issuer + "/registration",
                             json={"redirect_uris": [REDIRECT_URI], **metadata}, timeout=5)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    registered: dict[str, Any] = response.json()
    return registered


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def test_rfc7592_read_update_delete_over_http(host: Host) -> None:
    registered = register(host, client_name="Interop RP")
    uri = registered["registration_client_uri"]
    token = registered["registration_access_token"]
    assert uri == f"{host.issuer}/registration/{registered['client_id']}"
    assert host.provider.provider_configuration["registration_endpoint"] == (
        host.issuer + "/registration")

    read = requests.get(uri, headers=bearer(token), timeout=5)
    assert read.status_code == 200 and read.headers["Cache-Control"] == "no-store"
    info = read.json()
    assert info["client_id"] == registered["client_id"]
    assert info["client_name"] == "Interop RP"
    assert info["registration_access_token"] == token
    assert "client_secret" not in info  # stored hashed: the provider no longer knows it

    for headers, url in (({}, uri), ({}, uri + "?" + urlencode({"access_token": token})),
                         (bearer("wrong"), uri),
                         (bearer(token), f"{host.issuer}/registration/someone-else")):
        refused = requests.get(url, headers=headers, timeout=5)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")

    info.update(client_name="Renamed RP", redirect_uris=[REDIRECT_URI, REDIRECT_URI + "2"])
    updated = requests.put(uri, json=info, headers=bearer(token), timeout=5)
    assert updated.status_code == 200, updated.text
    assert updated.json()["client_name"] == "Renamed RP"
    assert updated.json()["redirect_uris"] == [REDIRECT_URI, REDIRECT_URI + "2"]

    for body, error in (({**info, "client_id": "another"}, "invalid_request"),
                        ({**info, "redirect_uris": ["http://rp.example.com/cb"]},
                         "invalid_redirect_uri")):
        bad = requests.put(uri, json=body, headers=bearer(token), timeout=5)
        assert bad.status_code == 400 and bad.json()["error"] == error

    deleted = requests.delete(uri, headers=bearer(token), timeout=5)
    assert deleted.status_code == 204
    gone = requests.get(uri, headers=bearer(token), timeout=5)
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_token"
    token_response = requests.post(
        host.issuer + "/token", data={"grant_type": "authorization_code", "code": "x",
                                      "redirect_uri": REDIRECT_URI},
        auth=(registered["client_id"], registered["client_secret"]), timeout=5)
    assert token_response.status_code == 401


def authlib_code_flow(host: Host, client: ClientInfo, scope: str) -> tuple[RelyingParty,
                                                                         dict[str, Any], str]:
    rp = RelyingParty(host, client, scope=scope)  # type: ignore[arg-type]
    nonce = generate_token(24)
    verifier = generate_token(64)
    url, state = rp.authorization_url(nonce=nonce, code_verifier=verifier)
    callback = requests.get(url, allow_redirects=False, timeout=5)
    assert callback.status_code == 303, callback.text
    token = rp.fetch_token(authorization_response=callback.headers["Location"], state=state,
                           code_verifier=verifier)
    return rp, token, nonce


def test_authlib_rp_gets_the_narrowed_scope(host: Host) -> None:
    registered = register(host, scope="openid email")
    client = ClientInfo(registered["client_id"], REDIRECT_URI, "client_secret_basic",
                        registered["client_secret"])
    rp, token, nonce = authlib_code_flow(host, client, "openid profile email")
    assert token["scope"] == "openid email"  # RFC 6749 5.1: the scope actually granted
    claims = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                  access_token=token["access_token"])
    assert claims["aud"] == [registered["client_id"]]
    assert set(rp.userinfo()) == {"sub", "email", "email_verified"}


def test_authlib_rp_after_secret_rotation(host: Host) -> None:
    registered = register(host)
    new_secret = host.provider.rotate_client_secret(registered["client_id"])
    old = ClientInfo(registered["client_id"], REDIRECT_URI, "client_secret_basic",
                     registered["client_secret"])
    with pytest.raises(AuthlibOAuthError) as error:
        authlib_code_flow(host, old, "openid")
    assert error.value.error == "invalid_client"
    new = ClientInfo(registered["client_id"], REDIRECT_URI, "client_secret_basic", new_secret)
    _, token, _ = authlib_code_flow(host, new, "openid")
    assert token["scope"] == "openid"
