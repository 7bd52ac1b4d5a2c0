"""Interoperability of DPoP (RFC 9449) with requests-oauth2client.

A small Flask host (the routes docs/fapi.rst shows) serves a provider with DPoP over real
HTTP on a loopback port. The client side is requests-oauth2client's ``OAuth2Client``: an
authorization request carrying ``dpop_jkt`` and PKCE (its ``AuthorizationRequest``), the
code exchange with a proof of that key, UserInfo called through its ``DPoPToken``
(``Authorization: DPoP`` and a proof with ``ath``), a refresh with the same key, and server
nonces (``use_dpop_nonce`` at the token endpoint and at UserInfo, retried by the library).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from conftest import USER_ID, USERS
from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

from pyop.authz_state import AuthorizationState
from pyop.dpop import access_token_hash
from pyop.exceptions import BearerTokenError, DPoPTokenError, InvalidDPoPProof, OAuthError
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

requests_oauth2client = pytest.importorskip("requests_oauth2client")

CLIENT_ID = "dpop-rp"
PUBLIC_CLIENT_ID = "dpop-public-rp"
SECRET = "a-long-client-secret-0123456789"
REDIRECT_URI = "https://rp.example.com/cb"


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def host_app(provider: Provider) -> Flask:
    """The token and UserInfo routes, describing the request for DPoP (``http_method``,
    ``http_url``) and answering errors with their headers (``DPoP-Nonce``,
    ``WWW-Authenticate: DPoP ...``)."""
    app = Flask(__name__)

    @app.post("/token")
    def token() -> Response:
        try:
            result = provider.handle_token_request(
                request.get_data(), request.headers, http_method=request.method,
                http_url=request.url)
        except OAuthError as e:
            response = Response(e.to_json(), status=e.http_status,
                                content_type="application/json")
            if isinstance(e, InvalidDPoPProof):
                response.headers.update(e.headers)
            return response
        return Response(result.to_json(), content_type="application/json",
                        headers={"Cache-Control": "no-store"})

    @app.route("/userinfo", methods=["GET", "POST"])
    def userinfo() -> Response:
        try:
            result = provider.handle_userinfo_request(
                request.get_data(as_text=True) or request.query_string.decode(),
                request.headers, http_method=request.method, http_url=request.url)
        except BearerTokenError as e:
            headers = (e.headers if isinstance(e, DPoPTokenError)
                       else {"WWW-Authenticate": e.www_authenticate})
            return Response(e.to_json(), status=e.http_status, headers=headers,
                            content_type="application/json")
        return Response(result.to_json(), content_type="application/json")

    return app


class Host:
    def __init__(self, provider: Provider, base: str) -> None:
        self.provider = provider
        self.base = base


def build_host(signing_key_pem: str, **provider_kwargs: Any) -> Iterator[Host]:
    server = make_server("127.0.0.1", 0, Flask(__name__), threaded=True,
                         request_handler=_QuietHandler)
    base = f"http://127.0.0.1:{server.server_port}"
    with open(signing_key_pem, "rb") as f:
        signing_key = serialization.load_pem_private_key(f.read(), None)
    config = {"issuer": base, "authorization_endpoint": base + "/authorization",
              "token_endpoint": base + "/token", "userinfo_endpoint": base + "/userinfo",
              "scopes_supported": ["openid", "profile", "offline_access"],
              "subject_types_supported": ["public"],
              "code_challenge_methods_supported": ["S256"],
              "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                        "client_secret_post", "none"],
              "dpop_signing_alg_values_supported": ["ES256", "PS256", "EdDSA"]}
    common = {"redirect_uris": [REDIRECT_URI], "response_types": ["code"],
              "grant_types": ["authorization_code", "refresh_token"]}
    clients = {
        CLIENT_ID: {"client_id": CLIENT_ID, "client_secret": SECRET,
                    "token_endpoint_auth_method": "client_secret_basic",
                    "dpop_bound_access_tokens": True, **common},
        PUBLIC_CLIENT_ID: {"client_id": PUBLIC_CLIENT_ID, "token_endpoint_auth_method": "none",
                           **common},
    }
    provider = Provider(signing_key, config,
                        AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                           refresh_token_lifetime=3600),
                        clients, Userinfo(dict(USERS)), **provider_kwargs)
    server.app = host_app(provider)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Host(provider, base)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture(scope="module")
def host(signing_key_pem: str) -> Iterator[Host]:
    yield from build_host(signing_key_pem)


@pytest.fixture(scope="module")
def nonce_host(signing_key_pem: str) -> Iterator[Host]:
    yield from build_host(signing_key_pem, dpop_nonces=True)


def oauth2_client(host: Host, client_id: str = CLIENT_ID, **kwargs: Any) -> Any:
    from requests_oauth2client import ClientSecretBasic, OAuth2Client, PublicApp

    auth = ClientSecretBasic(client_id, SECRET) if client_id == CLIENT_ID else PublicApp(
        client_id)
    # testing=True: the loopback host serves plain http
    return OAuth2Client(token_endpoint=host.base + "/token",
                        authorization_endpoint=host.base + "/authorization",
                        redirect_uri=REDIRECT_URI, auth=auth, testing=True, **kwargs)


def authorization_response(host: Host, client: Any, **kwargs: Any) -> Any:
    """The library's authorization request (with ``dpop_jkt`` and PKCE), authorized here
    as the host's login page would, and the library's validation of the callback."""
    azr = client.authorization_request(scope="openid profile offline_access", dpop=True,
                                       prompt="consent", **kwargs)
    assert azr.dpop_jkt  # RFC 9449 10: the library sends the key's thumbprint
    provider = host.provider
    query = str(azr.uri).split("?", 1)[1]
    parsed = provider.parse_authentication_request(query)
    assert parsed["dpop_jkt"] == azr.dpop_jkt
    response = provider.authorize(parsed, USER_ID)
    callback = REDIRECT_URI + "?" + urlencode(
        {"code": response["code"], "state": response["state"]})
    return azr.validate_callback(callback)


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_code_flow_with_dpop_then_userinfo(host: Host, alg: str) -> None:
    from requests_oauth2client import DPoPToken

    client = oauth2_client(host)
    token = client.authorization_code(authorization_response(host, client, dpop_alg=alg),
                                      validate=False)
    assert isinstance(token, DPoPToken)
    assert token.token_type == "DPoP"
    jkt = host.provider.authz_state.introspect_access_token(token.access_token)["cnf"]["jkt"]
    assert jkt == token.dpop_key.dpop_jkt
    # UserInfo through the library's auth handler: Authorization: DPoP + a proof with ath
    answer = requests.get(host.base + "/userinfo", auth=token, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"]
    answer = requests.post(host.base + "/userinfo", auth=token, timeout=5)
    assert answer.status_code == 200, answer.text


def test_stolen_token_refused_and_challenge_parsed(host: Host) -> None:
    from requests_oauth2client import DPoPKey

    client = oauth2_client(host)
    token = client.authorization_code(authorization_response(host, client), validate=False)
    # the token sent as a bearer token: refused with a DPoP challenge
    answer = requests.get(host.base + "/userinfo", timeout=5,
                          headers={"Authorization": f"Bearer {token.access_token}"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    assert 'algs="ES256 PS256 EdDSA"' in answer.headers["WWW-Authenticate"]
    # with a proof by the thief's own key, made by the library (its DPoPToken auth handler
    # would take any 401 DPoP challenge for a nonce request)
    thief = DPoPKey.generate()
    url = host.base + "/userinfo"
    ath = access_token_hash(token.access_token)
    answer = requests.get(url, timeout=5, headers={
        "Authorization": f"DPoP {token.access_token}",
        "DPoP": str(thief.proof(htm="GET", htu=url, ath=ath))})
    assert answer.status_code == 401
    assert 'error="invalid_dpop_proof"' in answer.headers["WWW-Authenticate"]


def test_public_client_refresh_with_same_key(host: Host) -> None:
    from requests_oauth2client import DPoPKey, DPoPToken, InvalidGrant

    client = oauth2_client(host, PUBLIC_CLIENT_ID)
    token = client.authorization_code(authorization_response(host, client), validate=False)
    assert token.refresh_token
    refreshed = client.refresh_token(token)  # the library proves with the token's key
    assert isinstance(refreshed, DPoPToken)
    assert requests.get(host.base + "/userinfo", auth=refreshed, timeout=5).status_code == 200
    # the (rotated) refresh token with another key: refused
    with pytest.raises(InvalidGrant):
        client.token_request({"grant_type": "refresh_token",
                              "refresh_token": refreshed.refresh_token},
                             dpop_key=DPoPKey.generate())


def test_client_requiring_dpop_without_proof_refused(host: Host) -> None:
    from requests_oauth2client.exceptions import EndpointError

    client = oauth2_client(host)
    response = authorization_response(host, client)
    with pytest.raises(EndpointError) as info:
        client.token_request({"grant_type": "authorization_code", "code": response.code,
                              "redirect_uri": REDIRECT_URI,
                              "code_verifier": response.code_verifier}, dpop=False)
    assert info.value.response.status_code == 400
    assert info.value.response.json()["error"] == "invalid_dpop_proof"


def test_server_nonces_handled_by_the_library(nonce_host: Host) -> None:
    client = oauth2_client(nonce_host)
    # the token request gets use_dpop_nonce and DPoP-Nonce; the library retries with it
    token = client.authorization_code(authorization_response(nonce_host, client),
                                      validate=False)
    assert token.token_type == "DPoP"
    # UserInfo asks for its nonce (401 use_dpop_nonce); the library retries with it
    answer = requests.get(nonce_host.base + "/userinfo", auth=token, timeout=5)
    assert answer.status_code == 200, answer.text
