"""Mutual TLS interop (RFC 8705) with requests-oauth2client, a client library that is not
ours, over real TLS.

The host is realistic: a local HTTPS server (the ``ssl`` module) asks for a client
certificate, validates it against the CA it trusts (for ``tls_client_auth``) or the
self-signed certificate it pins (for ``self_signed_tls_client_auth``), and passes the
verified certificate (DER, ``getpeercert(binary_form=True)``) to the provider.
requests-oauth2client has no class of its own for mutual TLS client authentication: its
documented way is a ``requests`` session that presents the certificate, with ``PublicApp``
authentication (the ``client_id`` in the body, RFC 8705 2).
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from support.serving import serving

requests = pytest.importorskip("requests")
ro2c = pytest.importorskip("requests_oauth2client")

from conftest import USER_ID, USERS, FakeClock, configuration  # noqa: E402

from fapi.certificates import (  # noqa: E402
    Authority,
    certificate,
    key_pem,
    pem,
    thumbprint,
    x5c_jwk,
)
from pyop.authz_state import AuthorizationState  # noqa: E402
from pyop.crypto import b64url_encode  # noqa: E402
from pyop.exceptions import OAuthError  # noqa: E402
from pyop.provider import Provider  # noqa: E402
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory  # noqa: E402
from pyop.userinfo import Userinfo  # noqa: E402

REDIRECT = "https://rp.example.com/cb"
VERIFIER = "w" * 43

CA = Authority("CN=Interop CA")
CLIENT_CERT, CLIENT_KEY = CA.issue("CN=interop client,O=Example", dns=("rp.example.com",))
ROGUE_CA = Authority("CN=Rogue CA")
# the same subject as the registered client, from a CA the server does not trust
ROGUE_CERT, ROGUE_KEY = ROGUE_CA.issue("CN=interop client,O=Example", dns=("rp.example.com",))
SELF_SIGNED, SELF_SIGNED_KEY = certificate("CN=self-signed interop client")
OTHER_CERT, OTHER_KEY = CA.issue("CN=another client,O=Example")


class Host(BaseHTTPRequestHandler):
    """The host's routes: the verified client certificate goes to the provider."""

    provider: Provider

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _certificate(self) -> Any:
        return self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]

    def _answer(self, status: int, body: Any, headers: Any = ()) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        headers = dict(self.headers.items())
        cert = self._certificate()
        try:
            if self.path == "/token":
                result = self.provider.handle_token_request(body, headers,
                                                            client_certificate=cert)
                self._answer(200, result.to_json())
            elif self.path == "/introspect":
                result = self.provider.handle_introspection_request(
                    body, headers, client_certificate=cert)
                self._answer(200, result.to_json())
            elif self.path == "/userinfo":
                self._userinfo(body, "POST")
            else:
                self._answer(404, {})
        except OAuthError as error:
            extra = [("WWW-Authenticate", "Basic")] if error.http_status == 401 else []
            self._answer(error.http_status, error.to_json(), extra)

    def do_GET(self) -> None:  # noqa: N802
        self._userinfo(None, "GET")

    def _userinfo(self, body: Any, method: str) -> None:
        try:
            result = self.provider.handle_userinfo_request(
                body, dict(self.headers.items()), http_method=method,
                client_certificate=self._certificate())
            self._answer(200, result.to_json())
        except OAuthError as error:
            self._answer(error.http_status, error.to_json(),
                         [("WWW-Authenticate", getattr(error, "www_authenticate", "Bearer"))])


@pytest.fixture(scope="module")
def files(tmp_path_factory: Any) -> dict[str, str]:
    directory: Path = tmp_path_factory.mktemp("mtls")
    server_cert, server_key = CA.issue("CN=localhost", dns=("localhost",), ips=("127.0.0.1",),
                                       client_auth=False)
    paths = {}
    for label, content in {
        "ca": CA.pem(), "server_cert": pem(server_cert).encode(),
        "server_key": key_pem(server_key),
        # what the server accepts: the CA's certificates and the pinned self-signed one
        "trusted": CA.pem() + pem(SELF_SIGNED).encode(),
        "client_cert": pem(CLIENT_CERT).encode(), "client_key": key_pem(CLIENT_KEY),
        "rogue_cert": pem(ROGUE_CERT).encode(), "rogue_key": key_pem(ROGUE_KEY),
        "self_cert": pem(SELF_SIGNED).encode(), "self_key": key_pem(SELF_SIGNED_KEY),
        "other_cert": pem(OTHER_CERT).encode(), "other_key": key_pem(OTHER_KEY),
    }.items():
        path = directory / f"{label}.pem"
        path.write_bytes(content)
        paths[label] = str(path)
    return paths


@pytest.fixture
def provider(jwkest_signing_key: Any) -> Provider:
    clock = FakeClock()
    config = configuration()
    config["token_endpoint_auth_methods_supported"] = ["tls_client_auth",
                                                       "self_signed_tls_client_auth"]
    config["tls_client_certificate_bound_access_tokens"] = True
    clients = {
        "pki": {"client_id": "pki", "redirect_uris": [REDIRECT], "response_types": ["code"],
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": "CN=interop client,O=Example",
                "tls_client_certificate_bound_access_tokens": True},
        "self": {"client_id": "self", "redirect_uris": [REDIRECT], "response_types": ["code"],
                 "token_endpoint_auth_method": "self_signed_tls_client_auth",
                 "jwks": {"keys": [x5c_jwk(SELF_SIGNED)]},
                 "tls_client_certificate_bound_access_tokens": True},
    }
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_lifetime=3600)
    return Provider(jwkest_signing_key, config, authz, clients, Userinfo(dict(USERS)),
                    clock=clock)


@pytest.fixture
def server(provider: Provider, files: dict[str, str]) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["server_cert"], files["server_key"])
    context.load_verify_locations(files["trusted"])
    context.verify_mode = ssl.CERT_OPTIONAL  # a client without a certificate gets a 401
    handler = type("BoundHost", (Host,), {"provider": provider})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    with serving(httpd, "https") as url:
        yield url


def oauth_client(base: str, files: dict[str, str], client_id: str, cert: str) -> Any:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the verify below
    session.verify = files["ca"]
    session.cert = (files[cert + "_cert"], files[cert + "_key"])
    return ro2c.OAuth2Client(token_endpoint=base + "/token",
                             introspection_endpoint=base + "/introspect",
                             userinfo_endpoint=base + "/userinfo",
                             auth=ro2c.PublicApp(client_id), session=session)


def code_for(provider: Provider, client_id: str) -> str:
    challenge = b64url_encode(hashlib.sha256(VERIFIER.encode()).digest())
    request = provider.parse_authentication_request(urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "openid profile", "code_challenge": challenge,
        "code_challenge_method": "S256"}))
    return str(provider.authorize(request, USER_ID)["code"])


@pytest.mark.parametrize(("client_id", "cert", "presented"), [
    ("pki", "client", CLIENT_CERT), ("self", "self", SELF_SIGNED)])
def test_rfc8705_full_flow_over_mutual_tls(provider: Provider, server: str,
                                           files: dict[str, str], client_id: str, cert: str,
                                           presented: Any) -> None:
    client = oauth_client(server, files, client_id, cert)
    token = client.authorization_code(code_for(provider, client_id), redirect_uri=REDIRECT,
                                      code_verifier=VERIFIER, validate=False)
    # RFC 8705 3: bound to the certificate of the connection
    record = provider.authz_state.get_access_token(str(token.access_token))
    assert record["cnf"] == {"x5t#S256": thumbprint(presented)}
    introspected = client.introspect_token(token.access_token)
    assert introspected["active"] is True
    assert introspected["cnf"] == {"x5t#S256": thumbprint(presented)}
    claims = client.userinfo(token)
    assert claims["sub"] and claims["name"] == USERS[USER_ID]["name"]
    refreshed = client.refresh_token(token)
    assert provider.authz_state.get_access_token(str(refreshed.access_token))["cnf"] == {
        "x5t#S256": thumbprint(presented)}


def test_rfc8705_3_stolen_token_refused_over_another_connection(
        provider: Provider, server: str, files: dict[str, str]) -> None:
    client = oauth_client(server, files, "pki", "client")
    token = client.authorization_code(code_for(provider, "pki"), redirect_uri=REDIRECT,
                                      code_verifier=VERIFIER, validate=False)
    headers = {"Authorization": f"Bearer {token.access_token}"}
    # another client's certificate (valid, same CA), and no certificate at all
    for cert in ((files["other_cert"], files["other_key"]), None):
        response = requests.get(server + "/userinfo", headers=headers, cert=cert,
                                verify=files["ca"], timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_rfc8705_2_wrong_certificates_refused(provider: Provider, server: str,
                                              files: dict[str, str]) -> None:
    # a certificate of another client of the same CA: invalid_client
    client = oauth_client(server, files, "pki", "other")
    with pytest.raises(ro2c.InvalidClient):
        client.authorization_code(code_for(provider, "pki"), redirect_uri=REDIRECT,
                                  code_verifier=VERIFIER, validate=False)
    # the right subject from an untrusted CA: the TLS terminator refuses the handshake
    client = oauth_client(server, files, "pki", "rogue")
    with pytest.raises(requests.exceptions.RequestException):
        client.authorization_code(code_for(provider, "pki"), redirect_uri=REDIRECT,
                                  code_verifier=VERIFIER, validate=False)
