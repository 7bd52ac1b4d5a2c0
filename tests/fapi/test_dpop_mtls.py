"""DPoP (RFC 9449) and mutual TLS (RFC 8705) together: a client that authenticates with its
certificate and proves a DPoP key gets tokens whose one ``cnf`` (RFC 7800 3.1) holds both
confirmations, and every use of them needs both."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from conftest import ISSUER, USER_ID, USERS, FakeClock, configuration

from fapi.certificates import Authority, certificate, pem, thumbprint
from pyop.authz_state import AuthorizationState
from pyop.crypto import b64url_encode
from pyop.dpop import DEFAULT_DPOP_SIGNING_ALGS
from pyop.exceptions import (
    BearerTokenError,
    DPoPTokenError,
    InvalidRefreshToken,
    InvalidTokenRequest,
)
from pyop.provider import Provider
from pyop.storage import StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .dpop_keys import DPoPKey

TOKEN_URL = ISSUER + "/token"
USERINFO_URL = ISSUER + "/userinfo"
REDIRECT = "https://rp.example.com/cb"
VERIFIER = "v" * 43
CHALLENGE = b64url_encode(hashlib.sha256(VERIFIER.encode("ascii")).digest())

CA = Authority()
CLIENT_CERT, _ = CA.issue("CN=Client One,O=Example Org,C=SE", dns=("client.example.com",))
OTHER_CERT, _ = CA.issue("CN=Client Two,O=Example Org,C=SE", dns=("other.example.com",))
SELF_SIGNED, _ = certificate("CN=public client")


def clients() -> dict[str, Any]:
    base = {"redirect_uris": [REDIRECT], "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token"],
            "tls_client_certificate_bound_access_tokens": True}
    return {
        # authenticates with its certificate (RFC 8705 2.1): a confidential client
        "pki": dict(base, client_id="pki", token_endpoint_auth_method="tls_client_auth",
                    tls_client_auth_san_dns="client.example.com"),
        # public: its refresh tokens are bound too (RFC 9449 5, RFC 8705 4)
        "public": dict(base, client_id="public", token_endpoint_auth_method="none"),
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "stateless"])
def provider(request: pytest.FixtureRequest, clock: FakeClock,
             jwkest_signing_key: Any) -> Provider:
    config = configuration()
    config["dpop_signing_alg_values_supported"] = list(DEFAULT_DPOP_SIGNING_ALGS)
    config["token_endpoint_auth_methods_supported"] = ["none", "tls_client_auth"]
    config["introspection_endpoint"] = ISSUER + "/introspect"
    stores: dict[str, Any] = {}
    if request.param == "stateless":
        stores = {name: StatelessWrapper(name, "s" * 32, clock=clock)
                  for name in ("authorization_code_db", "access_token_db",
                               "refresh_token_db", "subject_identifier_db")}
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_lifetime=3600, **stores)
    return Provider(jwkest_signing_key, config, authz, clients(), Userinfo(dict(USERS)),
                    clock=clock)


def exchange(provider: Provider, client_id: str, cert: Any, key: DPoPKey,
             clock: FakeClock) -> dict[str, Any]:
    request = provider.parse_authentication_request(urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "openid profile", "nonce": "n", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256"}))
    code = str(provider.authorize(request, USER_ID)["code"])
    body = urlencode({"grant_type": "authorization_code", "code": code, "client_id": client_id,
                      "redirect_uri": REDIRECT, "code_verifier": VERIFIER})
    response: dict[str, Any] = provider.handle_token_request(
        body, {"DPoP": key.proof("POST", TOKEN_URL, clock())},
        client_certificate=cert).to_dict()
    return response


def userinfo(provider: Provider, token: str, proof: Optional[str], cert: Any,
             scheme: str = "DPoP") -> dict[str, Any]:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    result: dict[str, Any] = provider.handle_userinfo_request(
        "", headers, http_method="GET", client_certificate=cert).to_dict()
    return result


def test_rfc7800_3_1_one_cnf_holds_jkt_and_x5t_s256(provider: Provider,
                                                    clock: FakeClock) -> None:
    key = DPoPKey()
    response = exchange(provider, "pki", pem(CLIENT_CERT), key, clock)
    both = {"jkt": key.jkt, "x5t#S256": thumbprint(CLIENT_CERT)}
    assert response["token_type"] == "DPoP"  # RFC 9449 5
    token = response["access_token"]
    assert provider.authz_state.get_access_token(token)["cnf"] == both
    # introspection describes the whole binding (RFC 9449 6.2, RFC 8705 3.2)
    introspected = json.loads(provider.handle_introspection_request(
        urlencode({"token": token, "client_id": "pki"}),
        client_certificate=pem(CLIENT_CERT)).to_json())
    assert introspected["active"] is True
    assert introspected["cnf"] == both
    assert introspected["token_type"] == "DPoP"

    # UserInfo needs the proof (RFC 9449 7) and the certificate (RFC 8705 3)
    proof = key.proof("GET", USERINFO_URL, clock(), access_token=token)
    assert userinfo(provider, token, proof, pem(CLIENT_CERT))["sub"]
    with pytest.raises(DPoPTokenError):  # certificate, no proof
        userinfo(provider, token, None, pem(CLIENT_CERT))
    with pytest.raises(DPoPTokenError):  # certificate, token sent as a bearer token
        userinfo(provider, token, None, pem(CLIENT_CERT), scheme="Bearer")
    with pytest.raises(DPoPTokenError):  # proof of another key
        userinfo(provider, token, DPoPKey().proof("GET", USERINFO_URL, clock(),
                                                  access_token=token), pem(CLIENT_CERT))
    for cert in (None, pem(OTHER_CERT)):  # a valid proof, but not the bound certificate
        fresh = key.proof("GET", USERINFO_URL, clock(), access_token=token)
        with pytest.raises(BearerTokenError) as error:
            userinfo(provider, token, fresh, cert)
        assert error.value.oauth_error == "invalid_token"


def test_rfc9449_5_rfc8705_4_public_refresh_token_needs_both(provider: Provider,
                                                             clock: FakeClock) -> None:
    key = DPoPKey()
    cert = pem(SELF_SIGNED)
    response = exchange(provider, "public", cert, key, clock)
    both = {"jkt": key.jkt, "x5t#S256": thumbprint(SELF_SIGNED)}
    assert provider.authz_state.get_access_token(response["access_token"])["cnf"] == both
    refresh = response["refresh_token"]
    body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh,
                      "client_id": "public"})
    other_cert, _ = certificate("CN=public client")
    with pytest.raises(InvalidTokenRequest):  # no certificate (RFC 8705 3): refused first
        provider.handle_token_request(body, {"DPoP": key.proof("POST", TOKEN_URL, clock())})
    attempts = [
        ({}, cert),  # no proof
        ({"DPoP": DPoPKey().proof("POST", TOKEN_URL, clock())}, cert),  # another key
        ({"DPoP": key.proof("POST", TOKEN_URL, clock())}, pem(other_cert)),  # another cert
    ]
    for headers, presented in attempts:
        with pytest.raises(InvalidRefreshToken):
            provider.handle_token_request(body, headers, client_certificate=presented)
    second = provider.handle_token_request(
        body, {"DPoP": key.proof("POST", TOKEN_URL, clock())}, client_certificate=cert).to_dict()
    assert second["token_type"] == "DPoP"
    assert provider.authz_state.get_access_token(second["access_token"])["cnf"] == both
