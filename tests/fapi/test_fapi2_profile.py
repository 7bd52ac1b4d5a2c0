"""The ``fapi2`` profile: FAPI 2.0 Security Profile (final) section 5 for the authorization
server. Each requirement: refused under the profile, accepted when compliant; then full
compliant flows (PAR + private_key_jwt + PKCE S256 + DPoP, and PAR + mutual TLS)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, VerificationKey, jws_sign
from pyop.exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientAuthentication,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidDPoPProof,
    InvalidPushedAuthorizationRequest,
    InvalidTokenRequest,
)
from pyop.profiles import FAPI2_SIGNING_ALGS
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .certificates import certificate, pem
from .dpop_keys import DPoPKey
from .par_support import (
    CLIENT_KEY,
    CLIENT_KEY_ID,
    ISSUER,
    PAR_ENDPOINT,
    TOKEN_ENDPOINT,
    USER_ID,
    USERS,
    pkce_pair,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
USERINFO_ENDPOINT = ISSUER + "/userinfo"
JWT_CLIENT = "fapi-jwt-client"
JWT_REDIRECT = "https://rp.example.com/cb"
MTLS_CLIENT = "fapi-mtls-client"
MTLS_REDIRECT = "https://mtls.example.com/cb"
SECRET_CLIENT = "secret-client"
MTLS_CERT, _ = certificate("CN=FAPI Client,O=Example Org,C=SE")


def fapi_configuration(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": TOKEN_ENDPOINT,
        "userinfo_endpoint": USERINFO_ENDPOINT,
        "registration_endpoint": ISSUER + "/registration",
        "pushed_authorization_request_endpoint": PAR_ENDPOINT,
        "jwks_uri": ISSUER + "/jwks",
        "response_types_supported": ["code", "code id_token", "id_token"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile"],
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt", "tls_client_auth", "client_secret_basic"],
        "dpop_signing_alg_values_supported": ["ES256", "PS256", "RS256"],
    }
    config.update(overrides)
    return {name: value for name, value in config.items() if value is not None}


def fapi_clients() -> dict[str, Any]:
    return {
        JWT_CLIENT: {"client_id": JWT_CLIENT, "redirect_uris": [JWT_REDIRECT],
                     "response_types": ["code"],
                     "token_endpoint_auth_method": "private_key_jwt",
                     "jwks": {"keys": [{**VerificationKey.from_key(CLIENT_KEY).to_jwk(),
                                        "kid": CLIENT_KEY_ID}]}},
        MTLS_CLIENT: {"client_id": MTLS_CLIENT, "redirect_uris": [MTLS_REDIRECT],
                      "response_types": ["code"], "token_endpoint_auth_method": "tls_client_auth",
                      "tls_client_auth_subject_dn": "CN=FAPI Client,O=Example Org,C=SE"},
        SECRET_CLIENT: {"client_id": SECRET_CLIENT, "client_secret": "s3cret-of-the-client",
                        "redirect_uris": [JWT_REDIRECT], "response_types": ["code"],
                        "token_endpoint_auth_method": "client_secret_post"},
    }


def authz_state(code_lifetime: int = 60) -> AuthorizationState:
    return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                              authorization_code_lifetime=code_lifetime)


def make(config: Optional[dict[str, Any]] = None, *, signing_key: Any = None,
         code_lifetime: int = 60, profile: Optional[str] = "fapi2", **kwargs: Any) -> Provider:
    key = signing_key or SigningKey.from_key(ec.generate_private_key(ec.SECP256R1()))
    return Provider(key, config or fapi_configuration(), authz_state(code_lifetime),
                    fapi_clients(), Userinfo(dict(USERS)), profile=profile, **kwargs)


@pytest.fixture(scope="module")
def provider() -> Provider:
    return make()


def auth_params(client_id: str = JWT_CLIENT, redirect_uri: str = JWT_REDIRECT,
                **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"response_type": "code", "scope": "openid profile",
                              "client_id": client_id, "redirect_uri": redirect_uri,
                              "state": "st", "nonce": "nn",
                              "code_challenge": pkce_pair()[1],
                              "code_challenge_method": "S256"}
    params.update(extra)
    return {name: value for name, value in params.items() if value is not None}


def jwt_auth(aud: Any = ISSUER) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(aud)}


def _assertion(aud: Any) -> str:
    """A private_key_jwt assertion of JWT_CLIENT for ``aud`` (OIDC Core 9)."""
    now = int(time.time())
    return jws_sign({"iss": JWT_CLIENT, "sub": JWT_CLIENT, "aud": aud, "iat": now,
                     "exp": now + 60, "jti": secrets.token_urlsafe(16)}, CLIENT_KEY)


def push(provider: Provider, params: dict[str, Any], auth: Optional[dict[str, str]] = None,
         **kwargs: Any) -> Any:
    return provider.handle_pushed_authorization_request(
        urlencode({**params, **(jwt_auth() if auth is None else auth)}), **kwargs)


def code_via_par(provider: Provider, verifier_challenge: Optional[tuple[str, str]] = None
                 ) -> tuple[str, str]:
    verifier, challenge = verifier_challenge or pkce_pair()
    pushed = push(provider, auth_params(code_challenge=challenge))
    request = provider.parse_authentication_request(
        urlencode({"client_id": JWT_CLIENT, "request_uri": pushed["request_uri"]}))
    response = provider.authorize(request, USER_ID)
    return str(response["code"]), verifier


def token_body(code: str, verifier: str, auth: Optional[dict[str, str]] = None) -> str:
    return urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": JWT_REDIRECT, "code_verifier": verifier,
                      **(jwt_auth() if auth is None else auth)})


# -- configuration -------------------------------------------------------------------------------


def test_unknown_profile_refused() -> None:
    with pytest.raises(InvalidConfiguration, match="profile"):
        make(profile="fapi1")
    assert make(profile=None).profile is None
    assert make().profile == "fapi2"


def test_fapi2_5_3_2_2_par_endpoint_required() -> None:
    with pytest.raises(InvalidConfiguration, match="pushed_authorization_request_endpoint"):
        make(fapi_configuration(pushed_authorization_request_endpoint=None))
    discovery = make().provider_configuration
    assert discovery["require_pushed_authorization_requests"] is True
    assert discovery["pushed_authorization_request_endpoint"] == PAR_ENDPOINT


def test_fapi2_5_3_2_2_authorization_request_without_par_refused(provider: Provider) -> None:
    with pytest.raises(InvalidAuthenticationRequest):
        provider.parse_authentication_request(urlencode(auth_params()))
    pushed = push(provider, auth_params())
    request = provider.parse_authentication_request(
        urlencode({"client_id": JWT_CLIENT, "request_uri": pushed["request_uri"]}))
    assert request["client_id"] == JWT_CLIENT


@pytest.mark.parametrize("pkce", [{"code_challenge": None, "code_challenge_method": None},
                                  {"code_challenge_method": "plain"},
                                  {"code_challenge_method": None}])
def test_fapi2_5_3_2_2_pkce_s256_required(provider: Provider, pkce: dict[str, Any]) -> None:
    with pytest.raises(InvalidPushedAuthorizationRequest):
        push(provider, auth_params(**pkce))
    assert push(provider, auth_params())["request_uri"]


def test_fapi2_5_3_2_2_plain_pkce_option_refused() -> None:
    with pytest.raises(InvalidConfiguration, match="allow_plain_pkce"):
        make(allow_plain_pkce=True)
    assert make().provider_configuration["code_challenge_methods_supported"] == ["S256"]


def test_fapi2_5_3_2_1_client_authentication_methods(provider: Provider) -> None:
    secret = {"client_id": SECRET_CLIENT, "client_secret": "s3cret-of-the-client"}
    with pytest.raises(InvalidClientAuthentication) as error:
        push(provider, auth_params(client_id=SECRET_CLIENT), auth=secret)
    assert error.value.oauth_error == "invalid_client"
    with pytest.raises(InvalidClientAuthentication) as error:
        provider.handle_token_request(urlencode(
            {"grant_type": "authorization_code", "code": "abc", "redirect_uri": JWT_REDIRECT,
             **secret}), {"DPoP": DPoPKey().proof("POST", TOKEN_ENDPOINT, time.time())})
    assert error.value.oauth_error == "invalid_client"
    assert push(provider, auth_params())["request_uri"]  # private_key_jwt accepted
    assert provider.provider_configuration["token_endpoint_auth_methods_supported"] == [
        "private_key_jwt", "tls_client_auth"]


def register(provider: Provider, **metadata: Any) -> Any:
    body = {"redirect_uris": ["https://new.example.com/cb"], "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [VerificationKey.from_key(CLIENT_KEY).to_jwk()]}}
    body.update(metadata)
    return provider.handle_client_registration_request(
        json.dumps({name: value for name, value in body.items() if value is not None}))


@pytest.mark.parametrize("metadata", [{"token_endpoint_auth_method": "client_secret_basic"},
                                      {"token_endpoint_auth_method": None},
                                      {"token_endpoint_auth_method": "none"}])
def test_fapi2_5_3_2_1_registration_refuses_other_auth_methods(provider: Provider,
                                                              metadata: dict[str, Any]) -> None:
    with pytest.raises(InvalidClientRegistrationRequest) as error:
        register(provider, **metadata)
    assert error.value.oauth_error == "invalid_client_metadata"
    assert register(provider)["token_endpoint_auth_method"] == "private_key_jwt"


def test_fapi2_5_3_2_1_sender_constrained_tokens_required(provider: Provider) -> None:
    code, verifier = code_via_par(provider)
    with pytest.raises(InvalidTokenRequest) as error:
        provider.handle_token_request(token_body(code, verifier))
    assert error.value.oauth_error == "invalid_request"
    key = DPoPKey()
    response = provider.handle_token_request(
        token_body(code, verifier), {"DPoP": key.proof("POST", TOKEN_ENDPOINT, time.time())})
    assert response["token_type"] == "DPoP"  # the code was not spent by the refusal


def test_fapi2_5_3_2_1_configuration_without_sender_constraint_refused() -> None:
    with pytest.raises(InvalidConfiguration, match="sender-constrained"):
        make(fapi_configuration(dpop_signing_alg_values_supported=None))
    provider = make(fapi_configuration(dpop_signing_alg_values_supported=None),
                    bind_tokens_to_client_certificates=True)
    assert provider.provider_configuration["tls_client_certificate_bound_access_tokens"]


def test_fapi2_5_3_2_2_iss_in_authorization_response(provider: Provider) -> None:
    pushed = push(provider, auth_params())
    request = provider.parse_authentication_request(
        urlencode({"client_id": JWT_CLIENT, "request_uri": pushed["request_uri"]}))
    assert provider.authorize(request, USER_ID)["iss"] == ISSUER
    assert provider.provider_configuration[
        "authorization_response_iss_parameter_supported"] is True


@pytest.mark.parametrize("response_type", ["code id_token", "id_token", "token"])
def test_fapi2_5_3_2_2_code_flow_only(provider: Provider, response_type: str) -> None:
    with pytest.raises(InvalidPushedAuthorizationRequest) as error:
        push(provider, auth_params(response_type=response_type))
    assert error.value.oauth_error == "unsupported_response_type"
    with pytest.raises(InvalidClientRegistrationRequest) as reg_error:
        register(provider, response_types=[response_type])
    assert reg_error.value.oauth_error == "invalid_client_metadata"
    assert provider.provider_configuration["response_types_supported"] == ["code"]
    assert "implicit" not in provider.provider_configuration["grant_types_supported"]


def test_fapi2_5_3_2_2_code_lifetime_at_most_60_seconds() -> None:
    with pytest.raises(InvalidConfiguration, match="authorization_code_lifetime"):
        make(code_lifetime=600)
    with pytest.raises(InvalidConfiguration, match="authorization_code_lifetime"):
        make(code_lifetime=61)
    assert make(code_lifetime=60).authz_state.authorization_code_lifetime == 60


def test_fapi2_5_4_1_signing_key_alg_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidConfiguration, match="RS256"):
        make(signing_key=SigningKey(rsa_key, "RS256"))
    assert make(signing_key=SigningKey(rsa_key, "PS256")).signing_algs == ["PS256"]


def test_fapi2_5_4_1_advertised_algs_narrowed(provider: Provider) -> None:
    discovery = provider.provider_configuration
    for name in ("id_token_signing_alg_values_supported",
                 "request_object_signing_alg_values_supported",
                 "token_endpoint_auth_signing_alg_values_supported",
                 "dpop_signing_alg_values_supported"):
        assert discovery[name], name
        assert set(discovery[name]) <= set(FAPI2_SIGNING_ALGS), name
    assert discovery["dpop_signing_alg_values_supported"] == ["ES256", "PS256"]
    assert "RS256" in make(profile=None).provider_configuration[
        "dpop_signing_alg_values_supported"]


def test_fapi2_5_4_1_dpop_proof_of_other_alg_refused(provider: Provider) -> None:
    code, verifier = code_via_par(provider)
    rs256 = DPoPKey("RSA", "RS256")
    with pytest.raises(InvalidDPoPProof):
        provider.handle_token_request(token_body(code, verifier), {
            "DPoP": rs256.proof("POST", TOKEN_ENDPOINT, time.time())})
    ps256 = DPoPKey("RSA", "PS256")
    assert provider.handle_token_request(token_body(code, verifier), {
        "DPoP": ps256.proof("POST", TOKEN_ENDPOINT, time.time())})["token_type"] == "DPoP"


@pytest.mark.parametrize("name", ["id_token_signed_response_alg", "request_object_signing_alg",
                                  "token_endpoint_auth_signing_alg"])
def test_fapi2_5_4_1_registration_refuses_other_algs(provider: Provider, name: str) -> None:
    with pytest.raises(InvalidClientRegistrationRequest):
        register(provider, **{name: "RS256"})
    assert register(provider, **{name: "ES256"})[name] == "ES256"


def test_fapi2_5_3_2_1_assertion_audience_issuer_only(provider: Provider) -> None:
    with pytest.raises(InvalidConfiguration, match="client_assertion_audiences"):
        make(client_assertion_audiences="issuer-or-endpoint")
    with pytest.raises(InvalidClientAuthentication):
        push(provider, auth_params(), auth=jwt_auth(aud=PAR_ENDPOINT))
    with pytest.raises(InvalidClientAuthentication):
        push(provider, auth_params(), auth=jwt_auth(aud=[ISSUER]))
    assert push(provider, auth_params(), auth=jwt_auth(aud=ISSUER))["request_uri"]


def test_fapi2_registration_refuses_http_redirect_uris(provider: Provider) -> None:
    with pytest.raises(InvalidClientRegistrationRequest) as error:
        register(provider, redirect_uris=["http://127.0.0.1:8000/cb"])
    assert error.value.oauth_error == "invalid_redirect_uri"


def test_without_profile_nothing_enforced() -> None:
    provider = make(profile=None, code_lifetime=600)
    request = provider.parse_authentication_request(urlencode(auth_params(
        code_challenge=None, code_challenge_method=None)))
    assert request["client_id"] == JWT_CLIENT
    assert "id_token" in provider.provider_configuration["response_types_supported"]


# -- full compliant flows --------------------------------------------------------------------------


def test_fapi2_full_flow_par_private_key_jwt_pkce_dpop(provider: Provider) -> None:
    verifier, challenge = pkce_pair()
    pushed = push(provider, auth_params(code_challenge=challenge))
    assert pushed.http_status == 201
    request = provider.parse_authentication_request(
        urlencode({"client_id": JWT_CLIENT, "request_uri": pushed["request_uri"]}))
    authorization = provider.authorize(request, USER_ID)
    assert authorization["iss"] == ISSUER and authorization["state"] == "st"
    key = DPoPKey()
    tokens = provider.handle_token_request(
        token_body(str(authorization["code"]), verifier),
        {"DPoP": key.proof("POST", TOKEN_ENDPOINT, time.time())})
    assert tokens["token_type"] == "DPoP"
    access_token = tokens["access_token"]
    info = provider.handle_userinfo_request(None, {
        "Authorization": "DPoP " + access_token,
        "DPoP": key.proof("GET", USERINFO_ENDPOINT, time.time(), access_token=access_token)},
        http_method="GET")
    assert info["name"] == USERS[USER_ID]["name"]


def test_fapi2_full_flow_par_mtls_bound(provider: Provider) -> None:
    provider = make(bind_tokens_to_client_certificates=True)
    certificate_pem = pem(MTLS_CERT)
    verifier, challenge = pkce_pair()
    pushed = push(provider, auth_params(MTLS_CLIENT, MTLS_REDIRECT, code_challenge=challenge),
                  auth={"client_id": MTLS_CLIENT}, client_certificate=certificate_pem)
    request = provider.parse_authentication_request(
        urlencode({"client_id": MTLS_CLIENT, "request_uri": pushed["request_uri"]}))
    code = str(provider.authorize(request, USER_ID)["code"])
    body = urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": MTLS_REDIRECT, "code_verifier": verifier,
                      "client_id": MTLS_CLIENT})
    tokens = provider.handle_token_request(body, client_certificate=certificate_pem)
    assert tokens["token_type"] == "Bearer"  # certificate-bound (RFC 8705 3)
    introspection = provider.handle_introspection_request(
        urlencode({"token": tokens["access_token"], "client_id": MTLS_CLIENT}),
        client_certificate=certificate_pem)
    assert "x5t#S256" in introspection["cnf"]


def test_fapi2_mtls_client_without_binding_refused() -> None:
    provider = make()  # DPoP only: mutual TLS authenticates but does not bind
    certificate_pem = pem(MTLS_CERT)
    verifier, challenge = pkce_pair()
    pushed = push(provider, auth_params(MTLS_CLIENT, MTLS_REDIRECT, code_challenge=challenge),
                  auth={"client_id": MTLS_CLIENT}, client_certificate=certificate_pem)
    request = provider.parse_authentication_request(
        urlencode({"client_id": MTLS_CLIENT, "request_uri": pushed["request_uri"]}))
    code = str(provider.authorize(request, USER_ID)["code"])
    body = urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": MTLS_REDIRECT, "code_verifier": verifier,
                      "client_id": MTLS_CLIENT})
    with pytest.raises(InvalidTokenRequest, match="sender-constrained"):
        provider.handle_token_request(body, client_certificate=certificate_pem)
