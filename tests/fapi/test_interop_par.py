"""Interoperability of pushed authorization requests (RFC 9126) with requests-oauth2client.

The client side is requests-oauth2client's ``OAuth2Client`` with a
``pushed_authorization_request_endpoint``: it pushes the authorization request (with PKCE,
``state`` and ``nonce`` of its own), builds the authorization URL from the ``request_uri``,
validates the authorization response (``state``, ``iss``) and exchanges the code, verifying
the ID token. Its HTTP requests reach the provider through a ``requests`` transport adapter
that answers as a host's routes would (status, JSON body); the front channel (the browser)
is the test calling ``parse_authentication_request`` and ``authorize`` with the URL the
client built.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests_oauth2client import (
    AuthorizationRequest,
    ClientSecretBasic,
    OAuth2Client,
    PrivateKeyJwt,
)
from requests_oauth2client.exceptions import InvalidClient, InvalidRequest

from pyop.crypto import SigningKey, VerificationKey, b64url_encode
from pyop.exceptions import OAuthError
from pyop.provider import Provider

from .par_support import (
    CLIENT_ID,
    CLIENT_KEY,
    CLIENT_KEY_ID,
    CLIENT_SECRET,
    ISSUER,
    JWT_CLIENT_ID,
    JWT_REDIRECT_URI,
    PAR_ENDPOINT,
    REDIRECT_URI,
    TOKEN_ENDPOINT,
    USER_ID,
    FakeClock,
    ParBackend,
    memory_stores,
    stateless_stores,
)


class ProviderAdapter(BaseAdapter):
    """A ``requests`` transport answering as the host's PAR and token routes do."""

    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider
        self.calls: list[tuple[str, int]] = []

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        path = urlsplit(request.url).path
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        headers = dict(request.headers)
        try:
            if path == "/par":
                result = self.provider.handle_pushed_authorization_request(body, headers)
                status = result.http_status
            elif path == "/token":
                result = self.provider.handle_token_request(body, headers)
                status = 200
            else:  # pragma: no cover - the client calls nothing else
                raise AssertionError(path)
            payload = result.to_json()
        except OAuthError as error:
            status, payload = error.http_status, error.to_json()
        self.calls.append((path, status))
        response = requests.Response()
        response.status_code = status
        response._content = payload.encode()
        response.headers["Content-Type"] = "application/json"
        response.headers["Cache-Control"] = "no-store"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


@pytest.fixture(params=["memory", "stateless"])
def provider(request: pytest.FixtureRequest, rsa_private_key: Any) -> Provider:
    clock = FakeClock()
    make = memory_stores if request.param == "memory" else stateless_stores(clock)
    return ParBackend(request.param, clock, make,
                      # requests-oauth2client wants a kid in ID token headers
                      SigningKey.from_key(rsa_private_key)).provider(thumbprint_kids=True)


def client_for(provider: Provider, auth: Any, redirect_uri: str) -> tuple[OAuth2Client,
                                                                          ProviderAdapter]:
    session = requests.Session()
    adapter = ProviderAdapter(provider)
    session.mount(ISSUER + "/", adapter)
    client = OAuth2Client(
        token_endpoint=TOKEN_ENDPOINT, auth=auth, session=session,
        authorization_endpoint=ISSUER + "/authorization",
        pushed_authorization_request_endpoint=PAR_ENDPOINT, redirect_uri=redirect_uri,
        issuer=ISSUER, authorization_response_iss_parameter_supported=True,
        authorization_server_jwks={"keys": provider.jwks["keys"]})
    return client, adapter


def front_channel(provider: Provider, authorization_url: str, redirect_uri: str) -> str:
    """What the user agent and the host do: the authorization endpoint, the end-user's
    login, the redirect back to the client."""
    query = urlsplit(authorization_url).query
    request = provider.parse_authentication_request(query)
    assert request["redirect_uri"] == redirect_uri
    response = provider.authorize(request, USER_ID)
    return str(response.request(request["redirect_uri"], False))


def full_flow(provider: Provider, client: OAuth2Client, redirect_uri: str) -> None:
    authorization_request: AuthorizationRequest = client.authorization_request(
        scope="openid profile")
    pushed = client.pushed_authorization_request(authorization_request)
    assert pushed.request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.expires_at is not None  # from expires_in
    url = str(pushed.uri)
    # only client_id and request_uri travel through the browser (RFC 9126 4)
    assert "redirect_uri" not in url and "code_challenge" not in url and "state" not in url
    callback = front_channel(provider, url, redirect_uri)
    response = authorization_request.validate_callback(callback)  # state and iss checked
    token = client.authorization_code(response)  # PKCE verifier, ID token verified
    assert token.access_token and token.id_token is not None
    assert token.id_token.claims["nonce"] == authorization_request.nonce
    # the request_uri was used once: the same authorization URL again is refused
    with pytest.raises(OAuthError) as info:
        provider.parse_authentication_request(urlsplit(url).query)
    assert info.value.oauth_error == "invalid_request_uri"
    assert info.value.to_error_url() is None


def test_requests_oauth2client_par_with_client_secret_basic(provider: Provider) -> None:
    client, adapter = client_for(provider, ClientSecretBasic(CLIENT_ID, CLIENT_SECRET),
                                 REDIRECT_URI)
    full_flow(provider, client, REDIRECT_URI)
    assert adapter.calls == [("/par", 201), ("/token", 200)]


def test_requests_oauth2client_par_with_private_key_jwt(provider: Provider) -> None:
    """private_key_jwt with ``aud`` = the issuer (RFC 9126 2 SHOULD, RFC 7523bis)."""
    auth = PrivateKeyJwt(JWT_CLIENT_ID, _client_jwk(), alg="ES256", aud=ISSUER)
    client, _ = client_for(provider, auth, JWT_REDIRECT_URI)
    full_flow(provider, client, JWT_REDIRECT_URI)


def test_requests_oauth2client_default_audience_is_the_endpoint(provider: Provider) -> None:
    """requests-oauth2client's default assertion ``aud`` is the endpoint called: refused
    by default (RFC 7523bis), accepted under ``client_assertion_audiences="issuer-or-endpoint"``
    (RFC 9126 2 lists the PAR endpoint URL)."""
    auth = PrivateKeyJwt(JWT_CLIENT_ID, _client_jwk(), alg="ES256")
    client, adapter = client_for(provider, auth, JWT_REDIRECT_URI)
    with pytest.raises(InvalidClient):
        client.pushed_authorization_request(client.authorization_request(scope="openid"))
    assert adapter.calls == [("/par", 401)]
    lenient = Provider(provider.signing_key, dict(provider.configuration_information.to_dict()),
                       provider.authz_state, provider.clients, provider.userinfo,
                       clock=provider.clock, client_assertion_audiences="issuer-or-endpoint",
                       thumbprint_kids=True)
    client, _ = client_for(lenient, auth, JWT_REDIRECT_URI)
    full_flow(lenient, client, JWT_REDIRECT_URI)


def test_requests_oauth2client_sees_par_errors(provider: Provider) -> None:
    client, adapter = client_for(provider, ClientSecretBasic(CLIENT_ID, CLIENT_SECRET),
                                 "https://attacker.example.com/cb")
    with pytest.raises(InvalidRequest):
        client.pushed_authorization_request(client.authorization_request(scope="openid"))
    assert adapter.calls == [("/par", 400)]
    client, adapter = client_for(provider, ClientSecretBasic(CLIENT_ID, "wrong"), REDIRECT_URI)
    with pytest.raises(InvalidClient):
        client.pushed_authorization_request(client.authorization_request(scope="openid"))
    assert adapter.calls == [("/par", 401)]


def _client_jwk() -> dict[str, Any]:
    """The client's private key as a JWK (RFC 7518 6.2.2), for requests-oauth2client."""
    numbers = CLIENT_KEY.private_key.private_numbers()  # type: ignore[union-attr]
    return {**VerificationKey.from_key(CLIENT_KEY).to_jwk(), "kid": CLIENT_KEY_ID,
            "alg": "ES256", "d": b64url_encode(numbers.private_value.to_bytes(32, "big"))}
