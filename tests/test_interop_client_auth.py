"""Interoperability of JWT client authentication and ``client_credentials`` with Authlib.

A minimal Flask host (the routes of docs/client-authentication.rst) serves a provider
over real HTTP on a loopback port; the client side is Authlib's ``OAuth2Session`` with
its RFC 7523 client authentication methods (``authlib.oauth2.rfc7523.ClientSecretJWT``
and ``PrivateKeyJWT``, which sign with ``joserfc``), fetching tokens with the
``client_credentials`` grant and introspecting and revoking them. The
``private_key_jwt`` client publishes its keys at a ``jwks_uri`` on the same server,
fetched by the provider's :func:`~pyop.request_object.fetch_jwks` (loopback allowed
for the test).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import client_secret_jwt_sign, private_key_jwt_sign
from conftest import USERS
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from joserfc.jwk import ECKey, OctKey, RSAKey
from support.token_routes import add_token_routes
from werkzeug.serving import WSGIRequestHandler, make_server

from pyop.authz_state import AuthorizationState
from pyop.crypto import VerificationKey
from pyop.provider import Provider
from pyop.request_object import fetch_jwks
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

SECRET_CLIENT = "rp-secret-jwt"
SECRET = "a-long-shared-secret-for-client-secret-jwt-0123456789"
RSA_CLIENT = "rp-private-key-jwt"
EC_CLIENT = "rp-private-key-jwt-es256"
SCOPE = "api.read api.write"


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class ShortLivedClientSecretJWT(ClientSecretJWT):
    """Authlib's ClientSecretJWT with a one-minute assertion (Authlib's default is an hour)."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        return client_secret_jwt_sign(OctKey.import_key(auth.client_secret),
                                      client_id=auth.client_id, token_endpoint=token_endpoint,
                                      alg=self.alg, expires_in=60)


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's PrivateKeyJWT with a one-minute assertion."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id,
                                    token_endpoint=token_endpoint, alg=self.alg, expires_in=60)


def flask_app(provider: Provider, client_jwks: dict[str, Any]) -> Flask:
    app = add_token_routes(Flask(__name__), provider, token=True)

    @app.get("/rp-jwks")  # the RP's own key set (served here for the test)
    def rp_jwks() -> Any:
        return client_jwks

    return app


class Host:
    def __init__(self, provider: Provider, base: str, keys: dict[str, Any]) -> None:
        self.provider = provider
        self.base = base
        self.keys = keys


@pytest.fixture(scope="module")
def rp_keys() -> dict[str, Any]:
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1())}


def pem(key: Any) -> str:
    return str(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode())


def build_host(signing_key_pem: str, rp_keys: dict[str, Any],
               **provider_kwargs: Any) -> Iterator[Host]:
    client_jwks: dict[str, Any] = {"keys": []}
    # threaded: the token request makes the provider fetch the RP's jwks_uri from this server
    server = make_server("127.0.0.1", 0, Flask(__name__), threaded=True,
                         request_handler=_QuietHandler)
    base = f"http://127.0.0.1:{server.server_port}"
    with open(signing_key_pem, "rb") as f:
        signing_key = serialization.load_pem_private_key(f.read(), None)
    config = {"issuer": base, "authorization_endpoint": base + "/authorization",
              "token_endpoint": base + "/token", "introspection_endpoint": base + "/introspect",
              "revocation_endpoint": base + "/revoke",
              "grant_types_supported": ["authorization_code", "client_credentials"],
              "scopes_supported": ["openid", "api.read", "api.write"],
              "token_endpoint_auth_methods_supported": [  # JWT authentication: opt-in
                  "client_secret_basic", "client_secret_jwt", "private_key_jwt"]}
    common = {"redirect_uris": ["https://rp.example.com/cb"], "response_types": ["code"],
              "grant_types": ["authorization_code", "client_credentials"]}
    clients = {
        SECRET_CLIENT: {"client_id": SECRET_CLIENT, "client_secret": SECRET,
                        "token_endpoint_auth_method": "client_secret_jwt", **common},
        RSA_CLIENT: {"client_id": RSA_CLIENT, "token_endpoint_auth_method": "private_key_jwt",
                     "jwks_uri": base + "/rp-jwks", **common},
        EC_CLIENT: {"client_id": EC_CLIENT, "token_endpoint_auth_method": "private_key_jwt",
                    "token_endpoint_auth_signing_alg": "ES256",
                    "jwks": {"keys": [VerificationKey(rp_keys["ec"].public_key()).to_jwk()]},
                    **common},
    }
    client_jwks["keys"].append(VerificationKey(rp_keys["rsa"].public_key()).to_jwk())
    # Authlib's assertions name the endpoint called (RFC 7523 3, OIDC Core 9)
    provider_kwargs.setdefault("client_assertion_audiences", "issuer-or-endpoint")
    provider = Provider(signing_key, config,
                        AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), clients,
                        Userinfo(dict(USERS)), **provider_kwargs)
    provider.jwks_fetcher = functools.partial(fetch_jwks, allow_private_addresses=True)
    server.app = flask_app(provider, client_jwks)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Host(provider, base, rp_keys)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture(scope="module")
def host(signing_key_pem: str, rp_keys: dict[str, Any]) -> Iterator[Host]:
    yield from build_host(signing_key_pem, rp_keys)


def session(host: Host, client_id: str, credential: Any, auth: Any) -> OAuth2Session:
    rp = OAuth2Session(client_id, credential, scope=SCOPE,
                       token_endpoint_auth_method=auth.name,
                       revocation_endpoint_auth_method=auth.name)
    rp.register_client_auth_method(auth)
    return rp


def check_lifecycle(host: Host, rp: OAuth2Session, client_id: str) -> None:
    token = rp.fetch_token(host.base + "/token", grant_type="client_credentials", timeout=5)
    assert token["token_type"] == "Bearer" and token["scope"] == SCOPE
    assert "id_token" not in token and "refresh_token" not in token
    # introspection and revocation authenticate with a fresh assertion each, whose aud is
    # the endpoint called (Authlib's default)
    response = rp.introspect_token(host.base + "/introspect", token=token["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    assert response.json()["client_id"] == client_id
    assert "sub" not in response.json()
    response = rp.revoke_token(host.base + "/revoke", token=token["access_token"])
    assert response.status_code == 200, response.text
    response = rp.introspect_token(host.base + "/introspect", token=token["access_token"])
    assert response.json() == {"active": False}


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_authlib_client_secret_jwt(host: Host, alg: str) -> None:
    with session(host, SECRET_CLIENT, SECRET, ShortLivedClientSecretJWT(alg=alg)) as rp:
        check_lifecycle(host, rp, SECRET_CLIENT)


def test_authlib_private_key_jwt_rs256_with_jwks_uri(host: Host) -> None:
    key = RSAKey.import_key(pem(host.keys["rsa"]))
    with session(host, RSA_CLIENT, key, ShortLivedPrivateKeyJWT()) as rp:
        check_lifecycle(host, rp, RSA_CLIENT)


def test_authlib_private_key_jwt_es256_with_jwks(host: Host) -> None:
    key = ECKey.import_key(pem(host.keys["ec"]))
    with session(host, EC_CLIENT, key, ShortLivedPrivateKeyJWT(alg="ES256")) as rp:
        check_lifecycle(host, rp, EC_CLIENT)


def test_authlib_assertion_with_fixed_token_endpoint_audience(host: Host) -> None:
    """ClientSecretJWT(token_endpoint): aud is the token endpoint, also at introspection."""
    auth = ShortLivedClientSecretJWT(host.base + "/token")
    with session(host, SECRET_CLIENT, SECRET, auth) as rp:
        check_lifecycle(host, rp, SECRET_CLIENT)


def test_authlib_wrong_secret_and_wrong_key(host: Host) -> None:
    with session(host, SECRET_CLIENT, "not-the-secret", ShortLivedClientSecretJWT()) as rp:
        with pytest.raises(OAuthError) as info:
            rp.fetch_token(host.base + "/token", grant_type="client_credentials", timeout=5)
        assert info.value.error == "invalid_client"
    other = RSAKey.import_key(pem(rsa.generate_private_key(public_exponent=65537,
                                                           key_size=2048)))
    with session(host, RSA_CLIENT, other, ShortLivedPrivateKeyJWT()) as rp:
        with pytest.raises(OAuthError) as info:
            rp.fetch_token(host.base + "/token", grant_type="client_credentials", timeout=5)
        assert info.value.error == "invalid_client"


def test_authlib_endpoint_audience_refused_by_default(signing_key_pem: str,
                                                     rp_keys: dict[str, Any]) -> None:
    """Authlib's stock assertions name the token endpoint: refused with the default
    ``client_assertion_audiences="issuer"`` (RFC 7523bis), accepted with the issuer."""
    for built in build_host(signing_key_pem, rp_keys, client_assertion_audiences="issuer"):
        with session(built, SECRET_CLIENT, SECRET, ShortLivedClientSecretJWT()) as rp:
            with pytest.raises(OAuthError) as info:
                rp.fetch_token(built.base + "/token", grant_type="client_credentials",
                               timeout=5)
            assert info.value.error == "invalid_client"
            assert "aud" in info.value.description
        auth = ShortLivedClientSecretJWT(built.base)  # aud: the issuer identifier
        with session(built, SECRET_CLIENT, SECRET, auth) as rp:
            token = rp.fetch_token(built.base + "/token", grant_type="client_credentials",
                                   timeout=5)
            assert token["scope"] == SCOPE


def test_authlib_default_hour_long_assertion(signing_key_pem: str,
                                             rp_keys: dict[str, Any]) -> None:
    """Authlib's stock ClientSecretJWT signs assertions valid for an hour: refused by the
    default max_client_assertion_lifetime, accepted when the host raises it."""
    for lifetime, accepted in ((None, False), (3600, True)):
        kwargs = {} if lifetime is None else {"max_client_assertion_lifetime": lifetime}
        for built in build_host(signing_key_pem, rp_keys, **kwargs):
            with session(built, SECRET_CLIENT, SECRET, ClientSecretJWT()) as rp:
                if accepted:
                    token = rp.fetch_token(built.base + "/token",
                                           grant_type="client_credentials", timeout=5)
                    assert token["scope"] == SCOPE
                else:
                    with pytest.raises(OAuthError) as info:
                        rp.fetch_token(built.base + "/token", grant_type="client_credentials",
                                       timeout=5)
                    assert info.value.error == "invalid_client"
                    assert "lives too long" in info.value.description
