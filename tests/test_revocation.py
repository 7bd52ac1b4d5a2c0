"""Token revocation (RFC 7009): ``Provider.handle_revocation_request``.

The last tests run Authlib's client (``OAuth2Session.introspect_token`` and
``revoke_token``) against a minimal Flask app exposing both endpoints as
docs/token-lifecycle.rst shows them, over HTTP on a loopback port.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from authlib.integrations.requests_client import OAuth2Session
from conftest import CLIENT_ID, CLIENT_SECRET, PUBLIC_CLIENT_ID, REDIRECT_URI, USER_ID
from flask import Flask
from support.serving import serving
from support.token_routes import add_token_routes
from test_introspection import OTHER_ID, OTHER_SECRET, basic_auth, issue_tokens, two_clients
from werkzeug.serving import WSGIRequestHandler, make_server

from pyop.exceptions import (
    InvalidAccessToken,
    InvalidClientAuthentication,
    InvalidRefreshToken,
    InvalidRequestError,
)
from pyop.provider import Provider


@pytest.fixture
def provider(make_provider: Callable[..., Provider]) -> Provider:
    return make_provider(client_db=two_clients(), authz_kwargs={"refresh_token_lifetime": 3600})


def revoke(provider: Provider, token: Optional[str], hint: Optional[str] = None,
           headers: Optional[dict[str, str]] = None) -> None:
    body = {k: v for k, v in {"token": token, "token_type_hint": hint}.items() if v is not None}
    result = provider.handle_revocation_request(
        urlencode(body), basic_auth() if headers is None else headers)
    assert result is None


def userinfo(provider: Provider, access_token: str) -> Any:
    return provider.handle_userinfo_request("", {"Authorization": "Bearer " + access_token})


def refresh(provider: Provider, refresh_token: str) -> Any:
    body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})
    return provider.handle_token_request(body, basic_auth())


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "unknown"])
def test_revoked_access_token_fails_at_userinfo(provider: Provider, hint: Optional[str]
                                                ) -> None:
    tokens = issue_tokens(provider)
    assert userinfo(provider, tokens["access_token"])["sub"]
    revoke(provider, tokens["access_token"], hint)
    with pytest.raises(InvalidAccessToken):
        userinfo(provider, tokens["access_token"])
    # the refresh token is left alone
    assert refresh(provider, tokens["refresh_token"])["access_token"]


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
def test_revoked_refresh_token_revokes_its_grant(provider: Provider, hint: Optional[str]
                                                 ) -> None:
    tokens = issue_tokens(provider)
    refreshed = refresh(provider, tokens["refresh_token"])
    revoke(provider, tokens["refresh_token"], hint)
    with pytest.raises(InvalidRefreshToken):
        refresh(provider, tokens["refresh_token"])
    for access_token in (tokens["access_token"], refreshed["access_token"]):
        with pytest.raises(InvalidAccessToken):
            userinfo(provider, access_token)


def test_token_of_another_client_is_left_alone(provider: Provider) -> None:
    tokens = issue_tokens(provider, OTHER_ID, OTHER_SECRET)
    revoke(provider, tokens["access_token"])  # no error (RFC 7009 2.2)
    revoke(provider, tokens["refresh_token"], "refresh_token")
    assert userinfo(provider, tokens["access_token"])["sub"]
    body = urlencode({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert provider.handle_token_request(body, basic_auth(OTHER_ID, OTHER_SECRET))


def test_unknown_token_is_no_error(provider: Provider) -> None:
    revoke(provider, "no-such-token")
    revoke(provider, "no-such-token", "refresh_token")
    revoke(provider, "x" * 5000)


def test_revoking_twice_is_no_error(provider: Provider) -> None:
    tokens = issue_tokens(provider)
    revoke(provider, tokens["refresh_token"])
    revoke(provider, tokens["refresh_token"])
    revoke(provider, tokens["access_token"])


def test_public_client_revokes_its_own_tokens(make_provider: Callable[..., Provider]) -> None:
    provider = make_provider(authz_kwargs={"refresh_token_lifetime": 3600})
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                         ).rstrip(b"=").decode()
    redirect_uri = "http://127.0.0.1:8765/cb"
    request = provider.parse_authentication_request(urlencode({
        "client_id": PUBLIC_CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code",
        "scope": "openid", "nonce": "n", "code_challenge": challenge,
        "code_challenge_method": "S256"}))
    code = provider.authorize(request, USER_ID)["code"]
    tokens = provider.handle_token_request(urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": PUBLIC_CLIENT_ID, "code_verifier": verifier}))
    provider.handle_revocation_request(
        urlencode({"token": tokens["refresh_token"], "client_id": PUBLIC_CLIENT_ID}))
    with pytest.raises(InvalidAccessToken):
        userinfo(provider, tokens["access_token"])


def test_public_client_cannot_revoke_tokens_of_others(provider: Provider) -> None:
    tokens = issue_tokens(provider)
    provider.handle_revocation_request(
        urlencode({"token": tokens["access_token"], "client_id": PUBLIC_CLIENT_ID}))
    assert userinfo(provider, tokens["access_token"])["sub"]


def test_wrong_secret_is_invalid_client(provider: Provider) -> None:
    tokens = issue_tokens(provider)
    with pytest.raises(InvalidClientAuthentication) as error:
        revoke(provider, tokens["access_token"], headers=basic_auth(CLIENT_ID, "wrong"))
    assert error.value.http_status == 401 and error.value.oauth_error == "invalid_client"
    assert userinfo(provider, tokens["access_token"])["sub"]


def test_confidential_client_without_secret_is_invalid_client(provider: Provider) -> None:
    tokens = issue_tokens(provider)
    with pytest.raises(InvalidClientAuthentication):
        provider.handle_revocation_request(
            urlencode({"token": tokens["access_token"], "client_id": CLIENT_ID}))
    assert userinfo(provider, tokens["access_token"])["sub"]


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token_type_hint": "refresh_token"}])
def test_missing_token_is_invalid_request(provider: Provider, body: dict[str, str]) -> None:
    with pytest.raises(InvalidRequestError) as error:
        provider.handle_revocation_request(urlencode(body), basic_auth())
    assert error.value.oauth_error == "invalid_request" and error.value.http_status == 400


# -- interoperability: Authlib's client against a Flask host ---------------------------------------

class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def flask_app(provider: Provider) -> Flask:
    """The two routes of docs/token-lifecycle.rst."""
    return add_token_routes(Flask(__name__), provider)


@pytest.fixture
def served(provider: Provider) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, flask_app(provider), request_handler=_QuietHandler)
    with serving(server) as url:
        yield url


def test_authlib_introspects_and_revokes(provider: Provider, served: str) -> None:
    tokens = issue_tokens(provider)
    with OAuth2Session(CLIENT_ID, CLIENT_SECRET, redirect_uri=REDIRECT_URI,
                       token_endpoint_auth_method="client_secret_basic") as session:
        response = session.introspect_token(served + "/introspect",
                                            token=tokens["access_token"],
                                            token_type_hint="access_token")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.json()["active"] is True
        assert response.json()["client_id"] == CLIENT_ID
        assert response.json()["token_type"] == "Bearer"

        response = session.revoke_token(served + "/revoke", token=tokens["refresh_token"],
                                        token_type_hint="refresh_token")
        assert response.status_code == 200 and response.content == b""

        for token in (tokens["access_token"], tokens["refresh_token"]):
            response = session.introspect_token(served + "/introspect", token=token)
            assert response.status_code == 200 and response.json() == {"active": False}
    with pytest.raises(InvalidAccessToken):
        userinfo(provider, tokens["access_token"])

    with OAuth2Session(CLIENT_ID, "wrong-secret") as session:
        response = session.introspect_token(served + "/introspect", token="anything")
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        response = session.revoke_token(served + "/revoke", token="anything")
        assert response.status_code == 401
