"""The ``fapi2`` profile's bounds on keys and lifetimes (FAPI 2.0 Security Profile 5.4 key
sizes, 5.3.2.2 pushed request and authorization code lifetimes): each refused under the
profile, the compliant value accepted."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, VerificationKey, jws_sign
from pyop.exceptions import (
    InvalidClientAuthentication,
    InvalidConfiguration,
    InvalidDPoPProof,
    InvalidPushedAuthorizationRequest,
)
from pyop.profiles import FAPI2_MAX_PUSHED_REQUEST_LIFETIME, fapi2_metadata
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .dpop_keys import make_jws
from .par_support import ISSUER, PAR_ENDPOINT, USERS
from .test_fapi2_profile import (
    ASSERTION_TYPE,
    JWT_REDIRECT,
    auth_params,
    fapi_clients,
    fapi_configuration,
    jwt_auth,
    make,
)

RSA_1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SMALL_CLIENT = "small-key-client"
LARGE_CLIENT = "large-key-client"


def provider_with_key_clients(**authz_kwargs: Any) -> Provider:
    clients = fapi_clients()
    for client_id, key in ((SMALL_CLIENT, RSA_1024), (LARGE_CLIENT, RSA_2048)):
        clients[client_id] = {
            "client_id": client_id, "redirect_uris": [JWT_REDIRECT], "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{**VerificationKey(key.public_key(), "PS256").to_jwk(),
                               "kid": client_id + "-key"}]}}
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                               authorization_code_lifetime=60, **authz_kwargs)
    return Provider(SigningKey.from_key(ec.generate_private_key(ec.SECP256R1())),
                    fapi_configuration(request_parameter_supported=True), authz, clients,
                    Userinfo(dict(USERS)), profile="fapi2")


def assertion_of(client_id: str, key: Any) -> dict[str, str]:
    now = int(time.time())
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": jws_sign(
        {"iss": client_id, "sub": client_id, "aud": ISSUER, "iat": now, "exp": now + 60,
         "jti": secrets.token_urlsafe(16)}, SigningKey(key, "PS256", client_id + "-key"))}


@pytest.fixture(scope="module")
def provider() -> Provider:
    return provider_with_key_clients()


# -- 5.4: key sizes ------------------------------------------------------------------------------


def test_fapi2_5_4_provider_rsa_signing_key_below_2048_bits_refused() -> None:
    with pytest.raises(InvalidConfiguration, match="1024 bits"):
        make(signing_key=SigningKey(RSA_1024, "PS256"))
    assert make(signing_key=SigningKey(RSA_2048, "PS256")).profile == "fapi2"
    # without the profile, as before: a 1024-bit RSA key is the host's choice
    assert make(signing_key=SigningKey(RSA_1024, "PS256"), profile=None).profile is None


def test_fapi2_5_4_elliptic_curve_key_below_224_bits_refused() -> None:
    # keys on curves below P-256 cannot sign JWSs here at all; the profile's check still
    # names the bound for a key that reaches it
    class Key:
        private_key = ec.generate_private_key(ec.SECP192R1())

    with pytest.raises(InvalidConfiguration, match="192 bits"):
        fapi2_metadata(fapi_configuration(), ["ES256"], allow_plain_pkce=False,
                       client_assertion_audiences="issuer", authorization_code_lifetime=60,
                       bind_tokens_to_client_certificates=False, signing_keys=[Key()])
    assert fapi2_metadata(fapi_configuration(), ["ES256"], allow_plain_pkce=False,
                          client_assertion_audiences="issuer", authorization_code_lifetime=60,
                          bind_tokens_to_client_certificates=False,
                          signing_keys=[SigningKey.from_key(ec.generate_private_key(
                              ec.SECP256R1()))])["response_types_supported"] == ["code"]


def test_fapi2_5_4_client_assertion_of_small_rsa_key_refused(provider: Provider) -> None:
    params = auth_params(client_id=SMALL_CLIENT)
    with pytest.raises(InvalidClientAuthentication) as info:
        provider.handle_pushed_authorization_request(
            urlencode({**params, **assertion_of(SMALL_CLIENT, RSA_1024)}))
    assert info.value.oauth_error == "invalid_client"
    pushed = provider.handle_pushed_authorization_request(urlencode(
        {**auth_params(client_id=LARGE_CLIENT), **assertion_of(LARGE_CLIENT, RSA_2048)}))
    assert pushed["request_uri"]


def test_fapi2_5_4_request_object_of_small_rsa_key_refused(provider: Provider) -> None:
    def request_object(key: Any) -> str:
        now = int(time.time())
        claims = {**auth_params(client_id=LARGE_CLIENT), "iss": LARGE_CLIENT, "aud": ISSUER,
                  "iat": now, "nbf": now, "exp": now + 60, "jti": secrets.token_urlsafe(8)}
        return jws_sign(claims, SigningKey(key, "PS256", LARGE_CLIENT + "-key"),
                        {"typ": "oauth-authz-req+jwt"})

    auth = assertion_of(LARGE_CLIENT, RSA_2048)
    with pytest.raises(InvalidPushedAuthorizationRequest) as info:
        provider.handle_pushed_authorization_request(urlencode(
            {"client_id": LARGE_CLIENT, "request": request_object(RSA_1024), **auth}))
    assert info.value.oauth_error == "invalid_request_object"
    pushed = provider.handle_pushed_authorization_request(urlencode(
        {"client_id": LARGE_CLIENT, "request": request_object(RSA_2048),
         **assertion_of(LARGE_CLIENT, RSA_2048)}))
    assert pushed["request_uri"]


def test_fapi2_5_4_dpop_proof_of_small_rsa_key_refused(provider: Provider) -> None:
    def proof(key: Any) -> str:
        jwk = VerificationKey(key.public_key(), "PS256").to_jwk()
        return make_jws({"typ": "dpop+jwt", "alg": "PS256", "jwk": jwk},
                        {"jti": secrets.token_urlsafe(8), "htm": "POST", "htu": PAR_ENDPOINT,
                         "iat": int(time.time())}, SigningKey(key, "PS256"))

    with pytest.raises(InvalidDPoPProof, match="jwk"):
        provider.handle_pushed_authorization_request(
            urlencode({**auth_params(), **jwt_auth()}), {"DPoP": proof(RSA_1024)})
    pushed = provider.handle_pushed_authorization_request(
        urlencode({**auth_params(), **jwt_auth()}), {"DPoP": proof(RSA_2048)})
    assert pushed["request_uri"]


# -- 5.3.2.2: lifetimes --------------------------------------------------------------------------


def test_fapi2_5_3_2_2_pushed_request_expires_in_below_600_seconds() -> None:
    with pytest.raises(InvalidConfiguration, match="pushed_authorization_request_lifetime"):
        provider_with_key_clients(pushed_authorization_request_lifetime=600)
    provider = provider_with_key_clients(
        pushed_authorization_request_lifetime=FAPI2_MAX_PUSHED_REQUEST_LIFETIME)
    pushed = provider.handle_pushed_authorization_request(
        urlencode({**auth_params(), **jwt_auth()}))
    assert pushed["expires_in"] == 599
    # the default (60 seconds) complies
    default = provider_with_key_clients().handle_pushed_authorization_request(
        urlencode({**auth_params(), **jwt_auth()}))
    assert default["expires_in"] < 600


def test_fapi2_5_3_2_2_code_lifetime_default_refused() -> None:
    # AuthorizationState's default code lifetime (600 s, as pyop 3) is refused, not clamped
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"))
    with pytest.raises(InvalidConfiguration, match="authorization_code_lifetime"):
        Provider(SigningKey.from_key(ec.generate_private_key(ec.SECP256R1())),
                 fapi_configuration(), authz, fapi_clients(), Userinfo(dict(USERS)),
                 profile="fapi2")
