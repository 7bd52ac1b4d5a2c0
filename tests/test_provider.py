"""Unit tests of pyop.provider.Provider: discovery, flows, token, UserInfo, registration, logout."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    USER_ID,
    USERS,
    FakeClock,
    clients,
    configuration,
)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, VerificationKey, jws_sign, jws_verify
from pyop.exceptions import (
    AuthorizationError,
    BearerTokenError,
    InsufficientScope,
    InvalidAccessToken,
    InvalidAuthenticationRequest,
    InvalidAuthorizationCode,
    InvalidClientAuthentication,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidEndSessionRequest,
    InvalidRedirectURI,
    InvalidRefreshToken,
    InvalidRequestError,
    InvalidScope,
    InvalidSubjectIdentifier,
    InvalidTokenRequest,
    InvalidUserinfoRequest,
    RequestedSubjectMismatch,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from pyop.message import AuthorizationRequest
from pyop.provider import SCOPE_CLAIMS, Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo
from pyop.util import should_fragment_encode

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

ALL_RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token", "code token",
                      "code id_token token"]


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted_key(jwkest_signing_key: Any) -> SigningKey:
    """The conftest key, converted once (the conversion validates the RSA key: ~0.2 s)."""
    return SigningKey.from_jwkest(jwkest_signing_key)


@pytest.fixture
def make_provider(make_provider: Callable[..., Provider], converted_key: SigningKey
                  ) -> Callable[..., Provider]:
    def factory(**kwargs: Any) -> Provider:
        kwargs.setdefault("signing_key", converted_key)
        return make_provider(**kwargs)

    return factory



def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def left_hash(value: str, hash_fn: Callable[..., Any] = hashlib.sha256) -> str:
    """OIDC Core 3.3.2.11, computed independently of pyop."""
    digest = hash_fn(value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def basic_auth(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def auth_params(**params: Any) -> dict[str, str]:
    base = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid", "state": "the-state", "nonce": "the-nonce"}
    base.update(params)
    return {k: v for k, v in base.items() if v is not None}


def parse(provider: Provider, **params: Any) -> AuthorizationRequest:
    return provider.parse_authentication_request(urlencode(auth_params(**params)))


def verify(provider: Provider, token: str) -> dict[str, Any]:
    """Verify an ID token with the provider's *published* public key."""
    keys = [VerificationKey.from_jwk(jwk) for jwk in provider.jwks["keys"]]
    return jws_verify(token, keys)


def exchange(provider: Provider, code: str, headers: Optional[dict[str, str]] = None,
             **params: Any) -> Any:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    body.update(params)
    body = {k: v for k, v in body.items() if v is not None}
    return provider.handle_token_request(urlencode(body), basic_auth() if headers is None
                                         else headers)


def code_flow(provider: Provider, scope: str = "openid", user_id: str = USER_ID,
              **params: Any) -> Any:
    req = parse(provider, scope=scope, **params)
    code = provider.authorize(req, user_id)["code"]
    return exchange(provider, code)


def refresh(provider: Provider, token: str, **params: Any) -> Any:
    body = {"grant_type": "refresh_token", "refresh_token": token}
    body.update(params)
    return provider.handle_token_request(urlencode(body), basic_auth())


def public_sub(user_id: str = USER_ID) -> str:
    return HashBasedSubjectIdentifierFactory("salt").create_public_identifier(user_id)


# -- discovery (OIDC Discovery 3) ------------------------------------------------------------------


class TestDiscovery:
    def test_completed_defaults(self, make_provider: Callable[..., Provider]) -> None:
        config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authz",
                  "token_endpoint": ISSUER + "/token"}
        published = make_provider(config=config).provider_configuration
        # pyop 3's defaults (its own and oic's ProviderConfigurationResponse's)
        assert published.to_dict() == {
            **config,
            "jwks_uri": ISSUER + "/jwks",
            "response_types_supported": ["code", "id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
            "version": "3.0",
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            # oic defaults it to true; request_uri is not supported (OIDC Discovery 3)
            "request_uri_parameter_supported": False,
            "require_request_uri_registration": False,
            "grant_types_supported": ["authorization_code", "implicit"],
            "frontchannel_logout_supported": False,
            "frontchannel_logout_session_supported": False,
            "backchannel_logout_supported": False,
            "backchannel_logout_session_supported": False,
        }

    def test_opt_in_capabilities(self, make_provider: Callable[..., Provider]) -> None:
        config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authz",
                  "token_endpoint": ISSUER + "/token",
                  "token_endpoint_auth_methods_supported": [
                      "client_secret_basic", "client_secret_post", "client_secret_jwt",
                      "private_key_jwt", "none"],
                  "code_challenge_methods_supported": ["S256"],
                  "claims_parameter_supported": True,
                  "authorization_response_iss_parameter_supported": True,
                  "response_modes_supported": ["query", "fragment", "form_post"],
                  "userinfo_signing_alg_values_supported": ["RS256"]}
        published = make_provider(config=config).provider_configuration
        for name, value in config.items():
            assert published[name] == value
        # the assertion algs follow from the JWT methods offered
        assert published["token_endpoint_auth_signing_alg_values_supported"][:3] == [
            "HS256", "HS384", "HS512"]

    def test_pkce_methods_must_be_accepted(self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["code_challenge_methods_supported"] = ["S256", "plain"]
        with pytest.raises(InvalidConfiguration,
                           match="code_challenge_methods_supported: 'plain'.*allow_plain_pkce"):
            make_provider(config=config)
        assert make_provider(config=config, allow_plain_pkce=True).provider_configuration[
            "code_challenge_methods_supported"] == ["S256", "plain"]

    def test_jwks_uri_from_issuer_with_trailing_slash(
            self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["issuer"] = ISSUER + "/"
        assert make_provider(config=config).provider_configuration["jwks_uri"] == ISSUER + "/jwks"

    def test_given_values_are_kept(self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["jwks_uri"] = "https://keys.example.com/jwks.json"
        config["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
        published = make_provider(config=config).provider_configuration
        assert published["jwks_uri"] == "https://keys.example.com/jwks.json"
        assert published["token_endpoint_auth_methods_supported"] == ["client_secret_post"]

    def test_pkce_not_advertised_unless_configured(
            self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        del config["code_challenge_methods_supported"]
        published = make_provider(config=config, allow_plain_pkce=True).provider_configuration
        assert "code_challenge_methods_supported" not in published  # as pyop 3

    def test_refresh_token_grant_accepted_when_refresh_tokens_issued(
            self, provider: Provider, make_provider: Callable[..., Provider]) -> None:
        # published as configured (pyop 3 did not add it either), accepted all the same
        assert provider.provider_configuration["grant_types_supported"] == [
            "authorization_code", "implicit"]
        assert "refresh_token" in provider.grant_types_supported
        no_refresh = make_provider()
        assert "refresh_token" not in no_refresh.provider_configuration["grant_types_supported"]
        assert "refresh_token" not in no_refresh.grant_types_supported

    def test_explicit_grant_types_are_published_as_given(
            self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["grant_types_supported"] = ["authorization_code"]
        prov = make_provider(config=config, authz_kwargs={"refresh_token_lifetime": 60})
        assert prov.provider_configuration["grant_types_supported"] == ["authorization_code"]
        # refresh tokens are issued, so the grant is still accepted
        assert prov.grant_types_supported == ["authorization_code", "refresh_token"]

    @pytest.mark.parametrize("name", ["request_uri_parameter_supported"])
    def test_request_uri_forced_false_with_warning(
            self, make_provider: Callable[..., Provider], caplog: pytest.LogCaptureFixture,
            name: str) -> None:
        config = configuration()
        config[name] = True
        with caplog.at_level(logging.WARNING, logger="pyop.provider"):
            prov = make_provider(config=config)
        assert prov.provider_configuration[name] is False
        assert any(name in record.getMessage() and record.levelno == logging.WARNING
                   for record in caplog.records)

    def test_provider_configuration_reflects_later_updates(
            self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        del config["userinfo_endpoint"]
        prov = make_provider(config=config)
        assert "userinfo_endpoint" not in prov.provider_configuration
        prov.configuration_information["userinfo_endpoint"] = ISSUER + "/late-userinfo"
        assert prov.provider_configuration["userinfo_endpoint"] == ISSUER + "/late-userinfo"
        prov.configuration_information["scopes_supported"] = ["openid", "extra"]
        assert prov.provider_configuration["scopes_supported"] == ["openid", "extra"]

    def test_provider_configuration_is_a_copy(self, provider: Provider) -> None:
        published = provider.provider_configuration
        published["userinfo_endpoint"] = "https://elsewhere.example.com"
        assert provider.configuration_information["userinfo_endpoint"] == ISSUER + "/userinfo"

    def test_provider_configuration_json(self, provider: Provider) -> None:
        document = json.loads(provider.provider_configuration.to_json())
        assert document["issuer"] == ISSUER
        assert document["authorization_endpoint"] == ISSUER + "/authorization"

    @pytest.mark.parametrize("issuer", ["http://127.0.0.1:8080", "http://localhost:8080",
                                        "http://[::1]:8080", "http://localhost"])
    def test_http_issuer_allowed_for_loopback(
            self, make_provider: Callable[..., Provider], issuer: str) -> None:
        prov = make_provider(config=configuration(issuer))
        assert prov.issuer == issuer
        assert prov.provider_configuration["issuer"] == issuer
        assert prov.provider_configuration["jwks_uri"] == issuer + "/jwks"

    @pytest.mark.parametrize("issuer", ["http://op.example.com", "http://localhost.evil.com",
                                        "http://10.0.0.1", "ftp://op.example.com", "https://",
                                        "op.example.com", "https://op.example.com?x=1",
                                        "https://op.example.com#frag"])
    def test_bad_issuer_refused(self, make_provider: Callable[..., Provider], issuer: str
                                ) -> None:
        with pytest.raises(InvalidConfiguration, match="issuer"):
            make_provider(config=configuration(issuer))

    def test_missing_issuer_refused(self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        del config["issuer"]
        with pytest.raises(InvalidConfiguration, match="issuer"):
            make_provider(config=config)

    def test_missing_authorization_endpoint(self, make_provider: Callable[..., Provider]
                                            ) -> None:
        config = configuration()
        del config["authorization_endpoint"]
        with pytest.raises(InvalidConfiguration, match="authorization_endpoint"):
            make_provider(config=config)

    def test_missing_token_endpoint_with_code(self, make_provider: Callable[..., Provider]
                                              ) -> None:
        config = configuration()
        del config["token_endpoint"]
        with pytest.raises(InvalidConfiguration, match="token_endpoint"):
            make_provider(config=config)

    def test_token_endpoint_optional_for_implicit_only(
            self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        del config["token_endpoint"]
        config["response_types_supported"] = ["id_token", "id_token token"]
        prov = make_provider(config=config)
        assert "token_endpoint" not in prov.provider_configuration

    def test_signing_alg_must_be_supported(self, make_provider: Callable[..., Provider]
                                           ) -> None:
        config = configuration()
        config["id_token_signing_alg_values_supported"] = ["ES256"]
        with pytest.raises(InvalidConfiguration, match="id_token_signing_alg_values_supported"):
            make_provider(config=config)

    def test_unknown_subject_type(self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["subject_types_supported"] = ["public", "random"]
        with pytest.raises(InvalidConfiguration, match="subject_types_supported"):
            make_provider(config=config)

    def test_invalid_metadata_names_the_field(self, make_provider: Callable[..., Provider]
                                              ) -> None:
        # OIDC Discovery 3: scopes_supported MUST include openid; docs: the message names the field
        config = configuration()
        config["scopes_supported"] = ["profile"]
        with pytest.raises(InvalidConfiguration, match="scopes_supported"):
            make_provider(config=config)

    def test_metadata_refused_by_oic(self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["scopes_supported"] = ["openid", "bad\"scope"]  # RFC 6749 3.3 scope-token
        with pytest.raises(InvalidConfiguration, match="configuration_information"):
            make_provider(config=config)

    @pytest.mark.parametrize("key", ["not a key", None,
                                     ec.generate_private_key(ec.SECP256K1())])
    def test_invalid_signing_key(self, make_provider: Callable[..., Provider], key: Any
                                 ) -> None:
        with pytest.raises(InvalidConfiguration, match="signing_key"):
            make_provider(signing_key=key or "none")

    def test_jwks_content(self, provider: Provider, jwkest_signing_key: Any) -> None:
        jwks = provider.jwks
        assert len(jwks["keys"]) == 1
        jwk = jwks["keys"][0]
        # the key as given, without kid (pyop 3 published signing_key.serialize())
        assert jwk == jwkest_signing_key.serialize()
        assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig"
        assert "kid" not in jwk
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
        json.dumps(jwks)  # publishable as is
        # the ID tokens name no kid either
        req = parse(provider, response_type="id_token")
        id_token = provider.authorize(req, USER_ID)["id_token"]
        header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
        assert header == {"alg": "RS256"}  # as pyop 3

    def test_thumbprint_kids_on_request(self, make_provider: Callable[..., Provider],
                                        jwkest_signing_key: Any) -> None:
        from pyop.crypto import jwk_thumbprint

        prov = make_provider(thumbprint_kids=True,
                             authz_kwargs={"refresh_token_lifetime": 3600})
        jwk = prov.jwks["keys"][0]
        assert jwk == {**jwkest_signing_key.serialize(), "kid": jwk_thumbprint(jwk)}
        req = parse(prov, response_type="id_token")
        id_token = prov.authorize(req, USER_ID)["id_token"]
        header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
        assert header == {"alg": "RS256", "kid": jwk["kid"]}

    def test_jwkest_key_kid_is_kept(self, make_provider: Callable[..., Provider],
                                    signing_key_pem: str) -> None:
        from jwkest.jwk import RSAKey, rsa_load

        key = RSAKey(key=rsa_load(signing_key_pem), use="sig", alg="RS256", kid="my-kid")
        assert make_provider(signing_key=key).jwks["keys"][0]["kid"] == "my-kid"

    @pytest.mark.parametrize("curve,alg,size", [(ec.SECP256R1(), "ES256", 32),
                                                (ec.SECP384R1(), "ES384", 48)])
    def test_ec_signing_key(self, make_provider: Callable[..., Provider], curve: Any,
                            alg: str, size: int) -> None:
        prov = make_provider(signing_key=ec.generate_private_key(curve))
        assert prov.provider_configuration["id_token_signing_alg_values_supported"] == [alg]
        jwk = prov.jwks["keys"][0]
        assert jwk["kty"] == "EC" and jwk["alg"] == alg and "d" not in jwk
        assert len(base64.urlsafe_b64decode(jwk["x"] + "==")) == size

    def test_eddsa_signing_key(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(signing_key=ed25519.Ed25519PrivateKey.generate())
        jwk = prov.jwks["keys"][0]
        assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
        assert "d" not in jwk

    def test_extra_scopes_advertised(self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        del config["scopes_supported"]
        prov = make_provider(config=config, extra_scopes={"eduperson": ["affiliation"]})
        assert prov.provider_configuration["scopes_supported"] == ["openid", "eduperson"]
        config["scopes_supported"] = ["openid", "email"]
        prov = make_provider(config=config, extra_scopes={"eduperson": ["affiliation"]})
        assert prov.provider_configuration["scopes_supported"] == [
            "openid", "email", "eduperson"]
        assert config["scopes_supported"] == ["openid", "email"]  # the host's list unchanged

    def test_clock_defaults_to_authz_state_clock(self, clock: FakeClock,
                                                 jwkest_signing_key: Any) -> None:
        authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock)
        prov = Provider(jwkest_signing_key, configuration(), authz, clients(), Userinfo(USERS))
        clock.advance(42)
        assert prov.clock() == clock.now

    def test_get_client(self, provider: Provider) -> None:
        assert provider.get_client(CLIENT_ID)["client_secret"] == CLIENT_SECRET
        assert provider.get_client("nobody") is None
        assert provider.get_client(["list"]) is None
        assert provider.get_client(None) is None

    def test_get_client_tolerates_odd_client_db(self, make_provider: Callable[..., Provider]
                                                ) -> None:
        class Broken(dict):  # type: ignore[type-arg]
            def get(self, *args: Any) -> Any:
                raise TypeError("boom")

        assert make_provider(client_db=Broken()).get_client(CLIENT_ID) is None
        assert make_provider(client_db={CLIENT_ID: "not a mapping"}).get_client(CLIENT_ID) is None


# -- authentication requests (OIDC Core 3.1.2) ----------------------------------------------------


class TestParseAuthenticationRequest:
    def test_query_string_bytes_and_dict(self, provider: Provider) -> None:
        params = auth_params()
        for body in (urlencode(params), urlencode(params).encode("utf-8"), dict(params)):
            req = provider.parse_authentication_request(body)
            assert isinstance(req, AuthorizationRequest)
            assert req["client_id"] == CLIENT_ID
            assert req["scope"] == ["openid"]
            assert req["response_type"] == ["code"]
            assert req["state"] == "the-state"

    def test_parameters_exposed(self, provider: Provider) -> None:
        req = parse(provider, prompt="login consent", max_age="30", login_hint="alice@example",
                    acr_values="urn:acr:1 urn:acr:2", ui_locales="en")
        assert req["prompt"] == ["login", "consent"]
        assert req["max_age"] == 30
        assert req["login_hint"] == "alice@example"
        assert req["acr_values"] == ["urn:acr:1", "urn:acr:2"]
        # round trip through the host's session
        rebuilt = AuthorizationRequest().from_dict(json.loads(json.dumps(req.to_dict())))
        assert rebuilt["max_age"] == 30 and rebuilt["prompt"] == ["login", "consent"]

    def test_unknown_client_never_redirected(self, provider: Provider) -> None:
        with pytest.raises(InvalidClientId) as info:
            parse(provider, client_id="unknown")
        assert info.value.to_error_url() is None
        assert info.value.redirectable is False
        assert info.value.oauth_error == "unauthorized_client"  # as pyop 3

    def test_missing_client_id(self, provider: Provider) -> None:
        with pytest.raises(InvalidClientId):
            parse(provider, client_id=None)

    def test_repeated_client_id(self, provider: Provider) -> None:
        query = urlencode(auth_params()) + "&client_id=" + CLIENT_ID
        with pytest.raises(InvalidClientId):
            provider.parse_authentication_request(query)

    @pytest.mark.parametrize("redirect_uri", [None, "https://evil.example.com/cb",
                                              REDIRECT_URI + "/", REDIRECT_URI + "?x=1"])
    def test_bad_redirect_uri_never_redirected(self, provider: Provider,
                                               redirect_uri: Optional[str]) -> None:
        with pytest.raises(InvalidRedirectURI) as info:
            parse(provider, redirect_uri=redirect_uri)
        assert info.value.to_error_url() is None
        assert info.value.redirectable is False

    @pytest.mark.parametrize("request_", [
        dict(auth_params(), state="\ud800"),
        dict(auth_params(scope="profile"), state="\udcff"),
        urlencode(auth_params()) + "&state=\ud800",
    ])
    def test_lone_surrogates_refused(self, provider: Provider, request_: Any) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            provider.parse_authentication_request(request_)
        url = info.value.to_error_url()  # must not raise either
        assert url is None or url.startswith(REDIRECT_URI)

    def test_malformed_request_before_client_check_is_not_redirectable(
            self, provider: Provider) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            provider.parse_authentication_request(b"client_id=%ff")
        assert info.value.to_error_url() is None

    def test_redirectable_error_carries_state_and_iss(self, provider: Provider) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            parse(provider, scope="profile")
        error = info.value
        assert error.oauth_error == "invalid_scope"
        assert error.redirectable is True
        url = error.to_error_url()
        assert url is not None
        parts = urlsplit(url)
        assert url.startswith(REDIRECT_URI + "?")
        query = parse_qs(parts.query)
        assert query["error"] == ["invalid_scope"]
        assert query["state"] == ["the-state"]
        assert query["iss"] == [ISSUER]
        assert query["error_description"] == ["the openid scope is required"]

    def test_implicit_error_in_fragment(self, provider: Provider) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            parse(provider, response_type="id_token", nonce=None)
        url = info.value.to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "#")
        assert parse_qs(urlsplit(url).fragment)["error"] == ["invalid_request"]

    def test_repeated_parameter_is_redirectable_error(self, provider: Provider) -> None:
        query = urlencode(auth_params()) + "&scope=openid+email"
        with pytest.raises(InvalidAuthenticationRequest) as info:
            provider.parse_authentication_request(query)
        assert "scope" in str(info.value)
        assert info.value.to_error_url() is not None

    def test_repeated_response_type_error_in_fragment(self, provider: Provider) -> None:
        # OIDC Core 3.2.2.6: errors of token-issuing response types go in the fragment
        query = urlencode(auth_params(response_type="code")) + "&response_type=id_token"
        with pytest.raises(InvalidAuthenticationRequest, match="response_type") as info:
            provider.parse_authentication_request(query)
        url = info.value.to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "#")
        assert parse_qs(urlsplit(url).fragment)["state"] == ["the-state"]

    @pytest.mark.parametrize("max_age", ["-1", "abc", "1.5", "\u00b2", "\u0661",
                                         "9" * 13])
    def test_bad_max_age(self, provider: Provider, max_age: str) -> None:
        with pytest.raises(InvalidAuthenticationRequest, match="max_age") as info:
            parse(provider, max_age=max_age)
        assert info.value.to_error_url() is not None

    @pytest.mark.parametrize("claims,message", [
        ("{not json", "claims is not valid JSON"),
        ("[" * 20_000, "claims is not valid JSON"),
        ('{"userinfo": {"name": {"value": Infinity}}}', "claims is not valid JSON"),
        ("[1, 2]", "claims must be a JSON object"),
        ('{"userinfo": "x"}', ""),
        ('{"id_token": 5}', ""),
        ('{"id_token": {"name": 5}}', "individual claim requests"),
        ('{"id_token": {"name": {"essential": "yes"}}}', "essential must be a boolean"),
        ('{"userinfo": {"name": {"values": "a"}}}', "values must be an array"),
    ])
    def test_bad_claims_parameter(self, provider: Provider, claims: str, message: str) -> None:
        with pytest.raises(InvalidAuthenticationRequest, match=message or None) as info:
            parse(provider, claims=claims)
        assert info.value.to_error_url() is not None

    def test_claims_with_non_json_numbers_refused(self, provider: Provider) -> None:
        # RFC 8259 6: NaN and Infinity are not JSON; Python's json module accepts them
        with pytest.raises(InvalidAuthenticationRequest):
            parse(provider, claims='{"userinfo": {"name": {"value": NaN}}}')

    def test_malformed_parameter_value(self, provider: Provider) -> None:
        with pytest.raises(InvalidAuthenticationRequest, match="malformed request") as info:
            parse(provider, claims='{"userinfo": "not an object"}')
        assert info.value.to_error_url() is not None

    def test_claims_parameter_ignored_when_not_supported(
            self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["claims_parameter_supported"] = False
        prov = make_provider(config=config)
        req = parse(prov, claims='{"userinfo": {"name": null}}')
        assert "claims" not in req

    def test_offline_access_dropped_without_consent(self, provider: Provider) -> None:
        assert parse(provider, scope="openid offline_access")["scope"] == ["openid"]
        req = parse(provider, scope="openid offline_access", prompt="consent")
        assert req["scope"] == ["openid", "offline_access"]

    @pytest.mark.parametrize("params,error", [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"response_type": "id_token", "response_mode": "query"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"request_uri": "https://rp.example.com/r"}, "request_uri_not_supported"),
        ({"registration": "{}"}, "registration_not_supported"),
        ({"scope": "email"}, "invalid_scope"),
        ({"response_type": "id_token token", "nonce": None}, "invalid_request"),
        ({"prompt": "bogus"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"code_challenge": CHALLENGE + "\n", "code_challenge_method": "S256"},
         "invalid_request"),
        ({"code_challenge": CHALLENGE, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": CHALLENGE, "code_challenge_method": "S512"}, "invalid_request"),
    ])
    def test_invalid_requests(self, provider: Provider, params: dict[str, Any], error: str
                              ) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            parse(provider, **params)
        assert info.value.oauth_error == error
        assert info.value.to_error_url() is not None

    def test_response_type_not_registered_for_client(self, provider: Provider) -> None:
        provider.clients[CLIENT_ID]["response_types"] = ["code"]
        with pytest.raises(InvalidAuthenticationRequest) as info:
            parse(provider, response_type="id_token")
        assert info.value.oauth_error == "unauthorized_client"

    def test_response_types_default_to_code(self, provider: Provider) -> None:
        del provider.clients[CLIENT_ID]["response_types"]
        assert parse(provider)["response_type"] == ["code"]
        with pytest.raises(InvalidAuthenticationRequest) as info:
            parse(provider, response_type="code id_token")
        assert info.value.oauth_error == "unauthorized_client"

    def test_response_mode_not_in_provider_list(self, make_provider: Callable[..., Provider]
                                                ) -> None:
        config = configuration()
        config["response_modes_supported"] = ["query"]
        prov = make_provider(config=config)
        with pytest.raises(InvalidAuthenticationRequest, match="response_mode"):
            parse(prov, response_mode="fragment")

    def test_public_client_needs_pkce(self, provider: Provider) -> None:
        params = {"client_id": PUBLIC_CLIENT_ID, "redirect_uri": "http://127.0.0.1:8765/cb"}
        with pytest.raises(InvalidAuthenticationRequest, match="PKCE"):
            parse(provider, **params)
        req = parse(provider, code_challenge=CHALLENGE, code_challenge_method="S256", **params)
        assert req["code_challenge"] == CHALLENGE

    def test_plain_pkce_when_allowed(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(allow_plain_pkce=True)
        req = parse(prov, code_challenge=VERIFIER)  # method defaults to plain
        code = prov.authorize(req, USER_ID)["code"]
        response = exchange(prov, code, code_verifier=VERIFIER)
        assert response["token_type"] == "Bearer"

    def test_custom_validator_produces_redirectable_error(self, provider: Provider) -> None:
        def require_login_hint(request: Any) -> None:
            if "login_hint" not in request:
                raise InvalidAuthenticationRequest("login_hint required", request,
                                                   oauth_error="login_required")

        provider.authentication_request_validators.append(require_login_hint)
        with pytest.raises(InvalidAuthenticationRequest) as info:
            parse(provider)
        assert info.value.oauth_error == "login_required"
        url = info.value.to_error_url()
        assert url is not None
        query = parse_qs(urlsplit(url).query)
        assert query["error"] == ["login_required"]
        assert query["state"] == ["the-state"]
        assert query["iss"] == [ISSUER]
        assert parse(provider, login_hint="alice")["login_hint"] == "alice"

    def test_custom_validator_runs_after_defaults(self, provider: Provider) -> None:
        seen: list[Any] = []
        provider.authentication_request_validators.append(seen.append)
        with pytest.raises(InvalidAuthenticationRequest):
            parse(provider, scope="email")
        assert seen == []
        parse(provider)
        assert len(seen) == 1 and seen[0]["client_id"] == CLIENT_ID


class TestAuthenticationHelpers:
    def test_requires_authentication(self, provider: Provider, clock: FakeClock) -> None:
        plain = parse(provider)
        assert provider.requires_authentication(plain, None) is True
        assert provider.requires_authentication(plain, clock.now - 10_000) is False
        assert provider.requires_authentication(parse(provider, prompt="login"), clock.now) is True
        with_max_age = parse(provider, max_age="60")
        assert provider.requires_authentication(with_max_age, clock.now - 60) is False
        assert provider.requires_authentication(with_max_age, clock.now - 61) is True
        clock.advance(61)
        assert provider.requires_authentication(with_max_age, clock.now - 61) is True
        assert provider.requires_authentication(with_max_age.to_dict(), clock.now) is False

    def test_create_authentication_error(self, provider: Provider) -> None:
        req = parse(provider, prompt="none")
        error = provider.create_authentication_error(req, "login_required", "no session")
        assert isinstance(error, InvalidAuthenticationRequest)
        assert error.oauth_error == "login_required"
        assert error.redirectable is True
        url = error.to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "?")
        query = parse_qs(urlsplit(url).query)
        assert query == {"error": ["login_required"], "error_description": ["no session"],
                         "state": ["the-state"], "iss": [ISSUER]}

    def test_create_authentication_error_fragment_for_implicit(self, provider: Provider) -> None:
        req = parse(provider, response_type="id_token token")
        url = provider.create_authentication_error(req.to_dict(), "consent_required").to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "#")
        fragment = parse_qs(urlsplit(url).fragment)
        assert fragment["error"] == ["consent_required"]
        assert "error_description" not in fragment


# -- authorization responses (OIDC Core 3.1.2.5, 3.2.2.5, 3.3.2.5) -------------------------------


class TestAuthorize:
    @pytest.mark.parametrize("response_type", ALL_RESPONSE_TYPES)
    def test_response_types(self, provider: Provider, clock: FakeClock, response_type: str
                            ) -> None:
        req = parse(provider, response_type=response_type)
        response = provider.authorize(req, USER_ID)
        values = set(response_type.split())
        assert ("code" in response) == ("code" in values)
        assert ("access_token" in response) == ("token" in values)
        assert ("id_token" in response) == ("id_token" in values)
        assert response["state"] == "the-state"
        assert response["iss"] == ISSUER
        if "token" in values:
            assert response["token_type"] == "Bearer"
            assert response["expires_in"] == 3600
        url = response.request(REDIRECT_URI, should_fragment_encode(req))
        separator = "?" if response_type == "code" else "#"
        assert url.startswith(REDIRECT_URI + separator)
        if "id_token" not in values:
            return
        claims = verify(provider, response["id_token"])
        assert claims["iss"] == ISSUER
        assert claims["sub"] == public_sub()
        assert claims["aud"] == [CLIENT_ID]
        assert claims["nonce"] == "the-nonce"
        assert claims["iat"] == int(clock.now)
        assert claims["exp"] - claims["iat"] == 3600
        if "token" in values:
            assert claims["at_hash"] == left_hash(response["access_token"])
        else:
            assert "at_hash" not in claims
        if "code" in values:
            assert claims["c_hash"] == left_hash(response["code"])
        else:
            assert "c_hash" not in claims

    @pytest.mark.parametrize("as_string,expected", [(False, [CLIENT_ID]), (True, CLIENT_ID)])
    def test_id_token_aud_form(self, make_provider: Callable[..., Provider], as_string: bool,
                               expected: Any) -> None:
        """``aud`` is ``[client_id]`` as pyop 3 issued it; a string with the option (OIDC
        Core 2 allows both), at the authorization and the token endpoint."""
        provider = make_provider(id_token_aud_as_string=as_string)
        response = provider.authorize(parse(provider, response_type="code id_token"), USER_ID)
        assert verify(provider, response["id_token"])["aud"] == expected
        token = exchange(provider, response["code"])
        assert verify(provider, token["id_token"])["aud"] == expected
        assert provider.verify_id_token_hint(token["id_token"])["sub"] == public_sub()

    def test_hash_uses_signing_alg(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(signing_key=ec.generate_private_key(ec.SECP384R1()))
        req = parse(prov, response_type="code id_token token")
        response = prov.authorize(req, USER_ID)
        claims = verify(prov, response["id_token"])
        assert claims["at_hash"] == left_hash(response["access_token"], hashlib.sha384)
        assert claims["c_hash"] == left_hash(response["code"], hashlib.sha384)

    def test_eddsa_hash_is_sha512(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(signing_key=ed25519.Ed25519PrivateKey.generate())
        req = parse(prov, response_type="id_token token")
        response = prov.authorize(req, USER_ID)
        claims = verify(prov, response["id_token"])
        assert claims["at_hash"] == left_hash(response["access_token"], hashlib.sha512)

    def test_id_token_lifetime(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(id_token_lifetime=120)
        claims = verify(prov, prov.authorize(parse(prov, response_type="id_token"),
                                             USER_ID)["id_token"])
        assert claims["exp"] - claims["iat"] == 120

    def test_response_mode_fragment_and_query(self, provider: Provider) -> None:
        req = parse(provider, response_mode="fragment")
        response = provider.authorize(req, USER_ID)
        assert response.request(REDIRECT_URI, should_fragment_encode(req)).startswith(
            REDIRECT_URI + "#code=")
        req = parse(provider, response_mode="query")
        response = provider.authorize(req, USER_ID)
        url = response.request(REDIRECT_URI, should_fragment_encode(req))
        assert url.startswith(REDIRECT_URI + "?code=")
        assert parse_qs(urlsplit(url).query)["iss"] == [ISSUER]

    def test_authorize_on_rebuilt_request(self, provider: Provider) -> None:
        req = parse(provider, response_type="code id_token")
        stored = json.loads(json.dumps(req.to_dict()))
        response = provider.authorize(AuthorizationRequest().from_dict(stored), USER_ID)
        assert {"code", "id_token"} <= set(response.keys())
        assert should_fragment_encode(stored) is True

    @pytest.mark.parametrize("response_type", ["code", "id_token", "code id_token token"])
    def test_authorize_on_to_dict_form(self, provider: Provider, response_type: str) -> None:
        # authorize() takes any Mapping: the request or the dict a host keeps in its session
        req = parse(provider, response_type=response_type, scope="openid email")
        from_dict = provider.authorize(req.to_dict(), USER_ID)
        from_message = provider.authorize(req, USER_ID)
        assert set(from_dict.keys()) == set(from_message.keys())
        if "id_token" in from_dict:
            hashes = ("at_hash", "c_hash")
            claims = {k: v for k, v in verify(provider, from_dict["id_token"]).items()
                      if k not in hashes}
            assert claims == {k: v for k, v in verify(provider, from_message["id_token"]).items()
                              if k not in hashes}
        if "access_token" in from_dict:
            info = provider.handle_userinfo_request(
                None, {"Authorization": "Bearer " + from_dict["access_token"]})
            assert info["email"] == "alice@example.com"
        if "code" in from_dict:
            token = exchange(provider, from_dict["code"])
            assert token["scope"] == ["openid", "email"]

    def test_no_state_no_state_in_response(self, provider: Provider) -> None:
        response = provider.authorize(parse(provider, state=None), USER_ID)
        assert "state" not in response

    def test_auth_time_acr_amr(self, provider: Provider, clock: FakeClock) -> None:
        req = parse(provider, response_type="code id_token")
        response = provider.authorize(req, USER_ID, auth_time=clock.now - 5.7, acr="urn:acr:2",
                                      amr=("pwd", "otp"))
        claims = verify(provider, response["id_token"])
        assert claims["auth_time"] == int(clock.now - 5.7)
        assert claims["acr"] == "urn:acr:2"
        assert claims["amr"] == ["pwd", "otp"]
        token_claims = verify(provider, exchange(provider, response["code"])["id_token"])
        assert token_claims["auth_time"] == int(clock.now - 5.7)
        assert token_claims["acr"] == "urn:acr:2"
        assert token_claims["amr"] == ["pwd", "otp"]

    @pytest.mark.parametrize("params,client_metadata", [
        # max_age=0 refuses an explicit auth_time before the request: tests/security/
        # test_authentication_constraints.py
        ({"max_age": "600"}, {}),
        ({"claims": json.dumps({"id_token": {"auth_time": {"essential": True}}})}, {}),
        ({}, {"require_auth_time": True}),
        ({}, {"default_max_age": 600}),  # Registration 2: default_max_age acts as max_age
    ])
    def test_auth_time_when_required(self, provider: Provider, clock: FakeClock,
                                     params: dict[str, str], client_metadata: dict[str, Any]
                                     ) -> None:
        # OIDC Core 3.1.2.1, 5.5.1, Registration 2: auth_time is then REQUIRED
        provider.clients[CLIENT_ID].update(client_metadata)
        req = parse(provider, response_type="code id_token", **params)
        response = provider.authorize(req, USER_ID)
        assert verify(provider, response["id_token"])["auth_time"] == int(clock.now)
        clock.advance(5)
        token = exchange(provider, response["code"])
        assert verify(provider, token["id_token"])["auth_time"] == int(clock.now) - 5
        explicit = provider.authorize(req, USER_ID, auth_time=clock.now - 100)
        assert verify(provider, explicit["id_token"])["auth_time"] == int(clock.now) - 100

    def test_non_essential_auth_time_request_is_not_forced(self, provider: Provider) -> None:
        claims = json.dumps({"id_token": {"auth_time": None}})
        response = provider.authorize(parse(provider, response_type="id_token", claims=claims),
                                      USER_ID)
        assert "auth_time" not in verify(provider, response["id_token"])

    def test_no_auth_time_acr_amr_unless_supplied(self, provider: Provider) -> None:
        response = provider.authorize(parse(provider, response_type="code id_token"), USER_ID)
        for token in (response["id_token"],
                      exchange(provider, response["code"])["id_token"]):
            claims = verify(provider, token)
            assert not {"auth_time", "acr", "amr"} & set(claims)

    def test_scope_claims_in_id_token_for_response_type_id_token(self, provider: Provider
                                                                 ) -> None:
        req = parse(provider, response_type="id_token", scope="openid email profile")
        claims = verify(provider, provider.authorize(req, USER_ID)["id_token"])
        assert claims["email"] == "alice@example.com"
        assert claims["email_verified"] is True
        assert claims["name"] == "Alice Liddell"
        assert claims["given_name"] == "Alice"
        assert claims["nickname"] == "al"
        assert "phone_number" not in claims and "address" not in claims

    @pytest.mark.parametrize("response_type", ["id_token token", "code id_token"])
    def test_scope_claims_not_in_id_token_when_access_token_issued(
            self, provider: Provider, response_type: str) -> None:
        req = parse(provider, response_type=response_type, scope="openid email")
        claims = verify(provider, provider.authorize(req, USER_ID)["id_token"])
        assert "email" not in claims

    def test_claims_parameter_id_token_member(self, provider: Provider) -> None:
        claims_req = {"id_token": {"email": {"essential": True}, "nickname": None,
                                   "phone_number_verified": {"essential": True},
                                   "sub": {"essential": True}}}
        req = parse(provider, response_type="code id_token", claims=json.dumps(claims_req))
        response = provider.authorize(req, USER_ID)
        for token in (response["id_token"], exchange(provider, response["code"])["id_token"]):
            claims = verify(provider, token)
            assert claims["email"] == "alice@example.com"
            assert claims["nickname"] == "al"
            assert "phone_number_verified" not in claims  # essential but unavailable: omitted
            assert claims["sub"] == public_sub()

    def test_claims_parameter_value_and_values(self, provider: Provider) -> None:
        claims_req = {"id_token": {"given_name": {"value": "Alice"},
                                   "family_name": {"value": "Smith"},
                                   "email": {"values": ["a@b", "alice@example.com"]},
                                   "nickname": {"values": ["bob"]}}}
        req = parse(provider, response_type="id_token", claims=json.dumps(claims_req))
        claims = verify(provider, provider.authorize(req, USER_ID)["id_token"])
        assert claims["given_name"] == "Alice"
        assert claims["email"] == "alice@example.com"
        assert "family_name" not in claims
        assert "nickname" not in claims

    def test_claims_parameter_userinfo_member(self, provider: Provider) -> None:
        claims_req = {"userinfo": {"phone_number": {"essential": True},
                                   "given_name": {"value": "Bob"}, "nickname": None}}
        response = code_flow(provider, claims=json.dumps(claims_req))
        info = provider.handle_userinfo_request(
            None, {"Authorization": "Bearer " + response["access_token"]})
        assert info.to_dict() == {"sub": public_sub(), "phone_number": "+1 555 0100",
                                  "nickname": "al"}
        assert "phone_number" not in verify(provider, response["id_token"])

    def test_claims_supported_filters_released_claims(
            self, make_provider: Callable[..., Provider]) -> None:
        config = configuration()
        config["claims_supported"] = ["sub", "email", "name"]
        prov = make_provider(config=config, limit_claims_to_claims_supported=True)
        req = parse(prov, response_type="id_token", scope="openid email profile",
                    claims=json.dumps({"id_token": {"nickname": None}}))
        claims = verify(prov, prov.authorize(req, USER_ID)["id_token"])
        assert claims["email"] == "alice@example.com" and claims["name"] == "Alice Liddell"
        assert not {"email_verified", "given_name", "family_name", "nickname"} & set(claims)
        access = code_flow(prov, scope="openid email profile")["access_token"]
        info = prov.handle_userinfo_request(None, {"Authorization": "Bearer " + access})
        assert info.to_dict() == {"sub": public_sub(), "email": "alice@example.com",
                                  "name": "Alice Liddell"}

    def test_extra_scopes(self, make_provider: Callable[..., Provider]) -> None:
        users = {USER_ID: dict(USERS[USER_ID], affiliation="staff")}
        prov = make_provider(extra_scopes={"eduperson": ["affiliation", "missing"]})
        prov.userinfo = Userinfo(users)
        req = parse(prov, response_type="id_token", scope="openid eduperson")
        claims = verify(prov, prov.authorize(req, USER_ID)["id_token"])
        assert claims["affiliation"] == "staff"
        assert "missing" not in claims
        access = code_flow(prov, scope="openid eduperson")["access_token"]
        info = prov.handle_userinfo_request(None, {"Authorization": "Bearer " + access})
        assert info.to_dict() == {"sub": public_sub(), "affiliation": "staff"}

    def test_unknown_scopes_not_granted(self, provider: Provider) -> None:
        response = code_flow(provider, scope="openid email frobnicate")
        assert response["scope"] == ["openid", "email"]

    def test_extra_id_token_claims_dict(self, provider: Provider) -> None:
        extra = {"group": "admins", "iss": "https://evil.example.com", "sub": "root",
                 "aud": "other", "nonce": "forged", "exp": 1, "iat": 1, "azp": "x",
                 "at_hash": "x", "c_hash": "y"}
        req = parse(provider, response_type="code id_token token")
        response = provider.authorize(req, USER_ID, extra)
        claims = verify(provider, response["id_token"])
        assert claims["group"] == "admins"
        assert claims["iss"] == ISSUER and claims["sub"] == public_sub()
        assert claims["aud"] == [CLIENT_ID] and claims["nonce"] == "the-nonce"
        assert claims["exp"] - claims["iat"] == 3600 and claims["iat"] > 1
        assert "azp" not in claims
        assert claims["at_hash"] == left_hash(response["access_token"])
        assert claims["c_hash"] == left_hash(response["code"])
        # the claims recorded with the code reach the token endpoint's ID token too
        token = exchange(provider, response["code"])
        token_claims = verify(provider, token["id_token"])
        assert token_claims["group"] == "admins"
        assert token_claims["iss"] == ISSUER and token_claims["sub"] == public_sub()
        assert token_claims["at_hash"] == left_hash(token["access_token"])

    def test_extra_id_token_claims_callable(self, provider: Provider) -> None:
        calls: list[tuple[str, str]] = []

        def extra(user_id: str, client_id: str) -> dict[str, Any]:
            calls.append((user_id, client_id))
            return {"tenant": user_id + "@" + client_id, "sub": "forged"}

        req = parse(provider, response_type="code id_token")
        response = provider.authorize(req, USER_ID, extra)
        claims = verify(provider, response["id_token"])
        assert claims["tenant"] == "alice@client1"
        assert claims["sub"] == public_sub()
        assert calls and set(calls) == {(USER_ID, CLIENT_ID)}
        token_claims = verify(provider, exchange(provider, response["code"])["id_token"])
        assert token_claims["tenant"] == "alice@client1"

    def test_extra_id_token_claims_callable_returning_none(self, provider: Provider) -> None:
        req = parse(provider, response_type="code id_token")
        response = provider.authorize(req, USER_ID, lambda user, client: None)
        assert "tenant" not in verify(provider, response["id_token"])
        assert verify(provider, exchange(provider, response["code"])["id_token"])["sub"]

    def test_extra_id_token_claims_at_token_endpoint(self, provider: Provider) -> None:
        body = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI}
        # only at the token endpoint, as a callable
        code = provider.authorize(parse(provider), USER_ID)["code"]
        token = provider.handle_token_request(
            urlencode(dict(body, code=code)), basic_auth(),
            extra_id_token_claims=lambda user, client: {"at_token": user + "/" + client,
                                                        "aud": "x"})
        claims = verify(provider, token["id_token"])
        assert claims["at_token"] == "alice/client1"
        assert claims["aud"] == [CLIENT_ID]
        # at both: the token endpoint's claims win, the others are kept
        code = provider.authorize(parse(provider), USER_ID, {"a": 1, "b": 1})["code"]
        token = provider.handle_token_request(urlencode(dict(body, code=code)), basic_auth(),
                                              extra_id_token_claims={"b": 2, "nonce": "x"})
        claims = verify(provider, token["id_token"])
        assert claims["a"] == 1 and claims["b"] == 2 and claims["nonce"] == "the-nonce"

    def test_unknown_client_at_authorize(self, provider: Provider) -> None:
        with pytest.raises(InvalidTokenRequest) as info:
            provider.authorize({"client_id": "gone", "response_type": "code"}, USER_ID)
        assert info.value.oauth_error == "invalid_client"


# -- subject identifiers (OIDC Core 8) ------------------------------------------------------------


def pairwise_clients() -> dict[str, Any]:
    db = clients()
    for client_id, uri in (("pw-a", "https://a.example.com/cb"),
                           ("pw-a2", "https://a.example.com/other"),
                           ("pw-b", "https://b.example.com/cb")):
        db[client_id] = {"client_id": client_id, "client_secret": "s", "redirect_uris": [uri],
                         "response_types": ["code", "id_token"], "subject_type": "pairwise"}
    db["pw-sector"] = {"client_id": "pw-sector", "client_secret": "s",
                       "redirect_uris": ["https://c.example.com/cb"],
                       "sector_identifier_uri": "https://b.example.com/sector.json",
                       "response_types": ["id_token"], "subject_type": "pairwise"}
    return db


class TestSubjectIdentifiers:
    def sub_for(self, provider: Provider, client_id: str, user_id: str = USER_ID) -> str:
        uri = provider.clients[client_id]["redirect_uris"][0]
        req = parse(provider, client_id=client_id, redirect_uri=uri, response_type="id_token")
        return str(verify(provider, provider.authorize(req, user_id)["id_token"])["sub"])

    def test_pairwise(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(client_db=pairwise_clients())
        prov.userinfo = Userinfo({**USERS, "bob": {}})
        sub_a = self.sub_for(prov, "pw-a")
        assert sub_a == self.sub_for(prov, "pw-a")  # stable per client
        assert sub_a == self.sub_for(prov, "pw-a2")  # same sector (host)
        sub_b = self.sub_for(prov, "pw-b")
        assert sub_b != sub_a
        assert self.sub_for(prov, "pw-sector") == sub_b  # sector from sector_identifier_uri
        public = self.sub_for(prov, CLIENT_ID)
        assert public == public_sub()
        assert public not in (sub_a, sub_b)
        assert self.sub_for(prov, "pw-a", "bob") != sub_a
        factory = HashBasedSubjectIdentifierFactory("salt")
        assert sub_a == factory.create_pairwise_identifier(USER_ID, "a.example.com")
        # public and pairwise identifiers coexist and both resolve to the user
        lookup = prov.authz_state.get_user_id_for_subject_identifier
        assert lookup(sub_a) == lookup(sub_b) == lookup(public) == USER_ID
        assert lookup(self.sub_for(prov, "pw-a", "bob")) == "bob"
        with pytest.raises(InvalidSubjectIdentifier):
            lookup("never-issued")

    def test_subject_identifier_for(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(client_db=pairwise_clients())
        assert prov.subject_identifier_for(CLIENT_ID, USER_ID) == public_sub()
        assert prov.subject_identifier_for("pw-a", USER_ID) == self.sub_for(prov, "pw-a")
        assert prov.subject_identifier_for("pw-sector", USER_ID) == self.sub_for(prov, "pw-b")
        with pytest.raises(ValueError):
            prov.subject_identifier_for("unknown", USER_ID)

    def test_pairwise_sub_at_token_and_userinfo(self, make_provider: Callable[..., Provider]
                                                ) -> None:
        prov = make_provider(client_db=pairwise_clients())
        req = parse(prov, client_id="pw-a", redirect_uri="https://a.example.com/cb")
        code = prov.authorize(req, USER_ID)["code"]
        token = exchange(prov, code, headers=basic_auth("pw-a", "s"),
                         redirect_uri="https://a.example.com/cb")
        sub = verify(prov, token["id_token"])["sub"]
        assert sub == HashBasedSubjectIdentifierFactory("salt").create_pairwise_identifier(
            USER_ID, "a.example.com")
        info = prov.handle_userinfo_request(None, {"authorization": "Bearer "
                                                   + token["access_token"]})
        assert info["sub"] == sub

    @pytest.mark.parametrize("member", ["id_token", "userinfo"])
    @pytest.mark.parametrize("request_", [{"value": "someone-else"},
                                          {"value": "someone-else", "essential": True},
                                          {"values": ["someone-else", "another"]}])
    def test_requested_sub_of_another_user_is_refused(
            self, provider: Provider, member: str, request_: dict[str, Any],
            monkeypatch: pytest.MonkeyPatch) -> None:
        # OIDC Core 3.1.2.2, 5.5.1: no ID token or access token for another user
        req = parse(provider, response_type="code id_token token", state="st",
                    claims=json.dumps({member: {"sub": request_}}))
        issued: list[str] = []
        for name in ("create_authorization_code", "create_access_token"):
            monkeypatch.setattr(provider.authz_state, name,
                                lambda *a, _name=name, **k: issued.append(_name))
        with pytest.raises(RequestedSubjectMismatch) as info:
            provider.authorize(req, USER_ID)
        error = info.value
        assert isinstance(error, AuthorizationError)  # what pyop 3 raised
        assert isinstance(error, InvalidAuthenticationRequest)
        assert error.oauth_error == "login_required" and error.redirectable
        url = error.to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "#")  # hybrid: fragment
        returned = parse_qs(urlsplit(url).fragment)
        assert returned["error"] == ["login_required"] and returned["state"] == ["st"]
        assert returned["iss"] == [ISSUER]
        assert issued == []  # refused before anything was issued

    @pytest.mark.parametrize("claims", [
        {"id_token": {"sub": {"value": "SUB"}}},
        {"userinfo": {"sub": {"value": "SUB", "essential": True}}},
        {"id_token": {"sub": {"values": ["x", "SUB"]}}, "userinfo": {"sub": {"value": "SUB"}}},
        {"id_token": {"sub": None}},
        {"id_token": {"sub": {"essential": True}}},
    ])
    def test_requested_sub_of_the_user_is_answered(self, provider: Provider,
                                                   claims: dict[str, Any]) -> None:
        # pyop 3 refused any non-null sub request, even the user's own
        body = json.dumps(claims).replace("SUB", public_sub())
        req = parse(provider, response_type="code id_token", claims=body)
        response = provider.authorize(req, USER_ID)
        assert verify(provider, response["id_token"])["sub"] == public_sub()
        token = exchange(provider, response["code"])
        info = provider.handle_userinfo_request(None, {"authorization": "Bearer "
                                                       + token["access_token"]})
        assert info["sub"] == public_sub()

    def test_requested_sub_different_in_id_token_and_userinfo(self, provider: Provider
                                                              ) -> None:
        claims = {"id_token": {"sub": {"value": public_sub()}},
                  "userinfo": {"sub": {"value": public_sub("bob")}}}
        req = parse(provider, claims=json.dumps(claims))
        provider.userinfo = Userinfo({**USERS, "bob": {}})
        with pytest.raises(RequestedSubjectMismatch):
            provider.authorize(req, USER_ID)
        # bob is asked for in userinfo, alice in the ID token: neither user gets tokens
        with pytest.raises(RequestedSubjectMismatch):
            provider.authorize(req, "bob")

    def test_requested_sub_is_the_user_records_own(self, make_provider: Callable[..., Provider]
                                                   ) -> None:
        prov = make_provider()
        prov.userinfo = Userinfo({USER_ID: dict(USERS[USER_ID], sub="chosen")})
        ok = parse(prov, response_type="id_token",
                   claims=json.dumps({"id_token": {"sub": {"value": "chosen"}}}))
        assert verify(prov, prov.authorize(ok, USER_ID)["id_token"])["sub"] == "chosen"
        computed = parse(prov, response_type="id_token",
                         claims=json.dumps({"id_token": {"sub": {"value": public_sub()}}}))
        with pytest.raises(RequestedSubjectMismatch):
            prov.authorize(computed, USER_ID)

    def test_client_without_subject_type_gets_the_first_supported(
            self, make_provider: Callable[..., Provider]) -> None:
        db = pairwise_clients()
        del db["pw-a"]["subject_type"]
        factory = HashBasedSubjectIdentifierFactory("salt")
        pairwise_first = make_provider(client_db=db, config={
            **configuration(), "subject_types_supported": ["pairwise", "public"]})
        assert self.sub_for(pairwise_first, "pw-a") == factory.create_pairwise_identifier(
            USER_ID, "a.example.com")
        public_first = make_provider(client_db=db)  # ["public", "pairwise"]
        assert self.sub_for(public_first, "pw-a") == public_sub()

    def test_pairwise_sector_is_the_request_redirect_uri_netloc(
            self, make_provider: Callable[..., Provider]) -> None:
        db = pairwise_clients()
        db["pw-a"]["redirect_uris"] = ["https://a.example.com/cb", "https://a.example.com:8443/cb",
                                       "https://z.example.com/cb"]
        factory = HashBasedSubjectIdentifierFactory("salt")
        prov = make_provider(client_db=db)
        for uri, sector in (("https://a.example.com/cb", "a.example.com"),
                            ("https://a.example.com:8443/cb", "a.example.com:8443"),
                            ("https://z.example.com/cb", "z.example.com")):
            req = parse(prov, client_id="pw-a", redirect_uri=uri, response_type="id_token")
            sub = verify(prov, prov.authorize(req, USER_ID)["id_token"])["sub"]
            assert sub == factory.create_pairwise_identifier(USER_ID, sector)
            assert prov.subject_identifier_for("pw-a", USER_ID, uri) == sub
        # OIDC Core 8.1 (explicit option): one sector for the client, the registered host
        spec = make_provider(client_db=db, pairwise_sector_from="registration")
        for uri in db["pw-a"]["redirect_uris"]:
            req = parse(spec, client_id="pw-a", redirect_uri=uri, response_type="id_token")
            sub = verify(spec, spec.authorize(req, USER_ID)["id_token"])["sub"]
            assert sub == factory.create_pairwise_identifier(USER_ID, "a.example.com")
        with pytest.raises(InvalidConfiguration, match="pairwise_sector_from"):
            make_provider(pairwise_sector_from="host")

    def test_pairwise_client_whose_redirect_uri_has_no_host(
            self, make_provider: Callable[..., Provider]) -> None:
        # as in pyop 3: no sector identifier, no pairwise sub (ValueError); the request
        # must not get a sub that is the public one
        db = pairwise_clients()
        db["pw-a"]["redirect_uris"] = ["com.example.app:/cb"]
        prov = make_provider(client_db=db)
        with pytest.raises(ValueError):
            prov.subject_identifier_for("pw-a", USER_ID)


# -- token endpoint (RFC 6749 4.1.3, 6) -----------------------------------------------------------


class TestTokenEndpoint:
    def test_code_grant_client_secret_basic(self, provider: Provider, clock: FakeClock) -> None:
        req = parse(provider, scope="openid email")
        code = provider.authorize(req, USER_ID)["code"]
        response = exchange(provider, code)
        assert response["token_type"] == "Bearer"
        assert response["expires_in"] == 3600
        assert response["scope"] == ["openid", "email"]
        assert json.loads(response.to_json())["scope"] == "openid email"
        assert response["refresh_token"]
        claims = verify(provider, response["id_token"])
        assert claims["iss"] == ISSUER and claims["aud"] == [CLIENT_ID]
        assert claims["sub"] == public_sub() and claims["nonce"] == "the-nonce"
        assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 3600
        assert claims["at_hash"] == left_hash(response["access_token"])
        assert "email" not in claims  # scope claims go to UserInfo when an access token exists
        assert json.loads(response.to_json())["access_token"] == response["access_token"]

    def test_basic_credentials_are_form_url_decoded(self, make_provider: Callable[..., Provider]
                                                    ) -> None:
        db = clients()
        db["id:with special"] = dict(db[CLIENT_ID], client_id="id:with special",
                                     client_secret="p@ss:w rd+")
        prov = make_provider(client_db=db)
        req = parse(prov, client_id="id:with special")
        code = prov.authorize(req, USER_ID)["code"]
        raw = "id%3Awith+special:p%40ss%3Aw+rd%2B".encode("ascii")
        headers = {"authorization": "basic " + base64.b64encode(raw).decode("ascii")}
        assert exchange(prov, code, headers=headers)["access_token"]

    def test_code_grant_client_secret_post(self, provider: Provider) -> None:
        provider.clients[CLIENT_ID]["token_endpoint_auth_method"] = "client_secret_post"
        code = provider.authorize(parse(provider), USER_ID)["code"]
        response = exchange(provider, code, headers={}, client_id=CLIENT_ID,
                            client_secret=CLIENT_SECRET)
        assert response["access_token"]
        # the registered method is enforced
        code = provider.authorize(parse(provider), USER_ID)["code"]
        with pytest.raises(InvalidClientAuthentication, match="client_secret_post"):
            exchange(provider, code)

    def test_code_grant_public_client_with_pkce(self, provider: Provider) -> None:
        redirect = "http://127.0.0.1:8765/cb"
        req = parse(provider, client_id=PUBLIC_CLIENT_ID, redirect_uri=redirect,
                    code_challenge=CHALLENGE, code_challenge_method="S256")
        code = provider.authorize(req, USER_ID)["code"]
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                "client_id": PUBLIC_CLIENT_ID}
        with pytest.raises(InvalidAuthorizationCode, match="code_verifier"):
            provider.handle_token_request(urlencode(body))
        with pytest.raises(InvalidAuthorizationCode, match="does not match"):
            provider.handle_token_request(urlencode(dict(body, code_verifier="x" * 43)))
        response = provider.handle_token_request(urlencode(dict(body, code_verifier=VERIFIER)))
        assert verify(provider, response["id_token"])["aud"] == [PUBLIC_CLIENT_ID]

    def test_public_client_cannot_use_secret(self, provider: Provider) -> None:
        body = {"grant_type": "authorization_code", "code": "c", "client_id": PUBLIC_CLIENT_ID,
                "client_secret": "guess"}
        with pytest.raises(InvalidClientAuthentication):
            provider.handle_token_request(urlencode(body))

    def test_code_verifier_without_challenge(self, provider: Provider) -> None:
        code = provider.authorize(parse(provider), USER_ID)["code"]
        with pytest.raises(InvalidAuthorizationCode, match="no code_challenge"):
            exchange(provider, code, code_verifier=VERIFIER)
        assert exchange(provider, code)["access_token"]  # the failed attempt did not use it

    def test_confidential_client_with_pkce(self, provider: Provider) -> None:
        req = parse(provider, code_challenge=CHALLENGE, code_challenge_method="S256")
        code = provider.authorize(req, USER_ID)["code"]
        with pytest.raises(InvalidAuthorizationCode):
            exchange(provider, code)
        assert exchange(provider, code, code_verifier=VERIFIER)["access_token"]

    def test_redirect_uri_must_match(self, provider: Provider) -> None:
        code = provider.authorize(parse(provider), USER_ID)["code"]
        with pytest.raises(InvalidAuthorizationCode) as info:
            exchange(provider, code, redirect_uri=None)
        assert info.value.oauth_error == "invalid_grant"
        with pytest.raises(InvalidAuthorizationCode):
            exchange(provider, code, redirect_uri="https://rp.example.com/other")

    def test_code_of_another_client(self, make_provider: Callable[..., Provider]) -> None:
        db = clients()
        db["other"] = dict(db[CLIENT_ID], client_id="other", client_secret="other-secret")
        prov = make_provider(client_db=db)
        code = prov.authorize(parse(prov), USER_ID)["code"]
        with pytest.raises(InvalidAuthorizationCode, match="another client"):
            exchange(prov, code, headers=basic_auth("other", "other-secret"))

    def test_code_single_use(self, provider: Provider) -> None:
        code = provider.authorize(parse(provider), USER_ID)["code"]
        first = exchange(provider, code)
        with pytest.raises(InvalidAuthorizationCode) as info:
            exchange(provider, code)
        assert info.value.oauth_error == "invalid_grant" and info.value.http_status == 400
        with pytest.raises(InvalidAccessToken):  # the replay revoked the first tokens
            provider.handle_userinfo_request(
                None, {"Authorization": "Bearer " + first["access_token"]})
        with pytest.raises(InvalidRefreshToken):
            refresh(provider, first["refresh_token"])

    def test_code_expiry(self, provider: Provider, clock: FakeClock) -> None:
        code = provider.authorize(parse(provider), USER_ID)["code"]
        clock.advance(599)
        assert exchange(provider, code)["access_token"]
        code = provider.authorize(parse(provider), USER_ID)["code"]
        clock.advance(600)
        with pytest.raises(InvalidAuthorizationCode):
            exchange(provider, code)

    def test_custom_code_lifetime(self, make_provider: Callable[..., Provider],
                                  clock: FakeClock) -> None:
        prov = make_provider(authz_kwargs={"authorization_code_lifetime": 5})
        code = prov.authorize(parse(prov), USER_ID)["code"]
        clock.advance(5)
        with pytest.raises(InvalidAuthorizationCode):
            exchange(prov, code)

    @pytest.mark.parametrize("code", ["", "unknown", "x" * 5000])
    def test_unknown_code(self, provider: Provider, code: str) -> None:
        with pytest.raises(InvalidTokenRequest) as info:
            exchange(provider, code)
        assert info.value.oauth_error in ("invalid_grant", "invalid_request")

    def test_missing_code(self, provider: Provider) -> None:
        with pytest.raises(InvalidTokenRequest) as info:
            provider.handle_token_request("grant_type=authorization_code", basic_auth())
        assert info.value.oauth_error == "invalid_request"

    def test_missing_grant_type(self, provider: Provider) -> None:
        with pytest.raises(InvalidTokenRequest) as info:
            provider.handle_token_request("code=abc", basic_auth())
        assert info.value.oauth_error == "invalid_request"

    @pytest.mark.parametrize("grant_type", ["password", "client_credentials", "implicit",
                                            "urn:ietf:params:oauth:grant-type:device_code"])
    def test_unsupported_grant_type(self, provider: Provider, grant_type: str) -> None:
        with pytest.raises(UnsupportedGrantType) as info:
            provider.handle_token_request(urlencode({"grant_type": grant_type}), basic_auth())
        assert info.value.oauth_error == "unsupported_grant_type"
        assert info.value.http_status == 400

    def test_refresh_grant_unsupported_without_refresh_tokens(
            self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider()
        with pytest.raises(UnsupportedGrantType):
            prov.handle_token_request("grant_type=refresh_token&refresh_token=x", basic_auth())

    def test_grant_not_registered(self, provider: Provider) -> None:
        provider.clients[CLIENT_ID]["grant_types"] = ["authorization_code"]
        with pytest.raises(UnauthorizedClient) as info:
            provider.handle_token_request("grant_type=refresh_token&refresh_token=x",
                                          basic_auth())
        assert info.value.oauth_error == "unauthorized_client"
        provider.clients[CLIENT_ID]["grant_types"] = ["refresh_token"]
        code = provider.authorize(parse(provider), USER_ID)["code"]
        with pytest.raises(UnauthorizedClient):
            exchange(provider, code)

    def test_repeated_parameters(self, provider: Provider) -> None:
        with pytest.raises(InvalidTokenRequest) as info:
            provider.handle_token_request("grant_type=authorization_code&code=a&code=b",
                                          basic_auth())
        assert info.value.oauth_error == "invalid_request" and "code" in str(info.value)

    @pytest.mark.parametrize("headers,body_extra", [
        (None, {}),
        (basic_auth(CLIENT_ID, "wrong"), {}),
        (basic_auth("nobody", "x"), {}),
        ({"Authorization": "Basic !!!"}, {}),
        ({}, {"client_id": CLIENT_ID}),
        ({}, {"client_secret": CLIENT_SECRET}),
    ])
    def test_client_authentication_failures(self, provider: Provider, headers: Any,
                                            body_extra: dict[str, str]) -> None:
        code = provider.authorize(parse(provider), USER_ID)["code"]
        body = dict({"grant_type": "authorization_code", "code": code,
                     "redirect_uri": REDIRECT_URI}, **body_extra)
        with pytest.raises(InvalidClientAuthentication) as info:
            provider.handle_token_request(urlencode(body), headers or {})
        assert info.value.http_status == 401 and info.value.oauth_error == "invalid_client"
        assert exchange(provider, code)["access_token"]  # a failed attempt keeps the code

    def test_credentials_in_header_and_body(self, provider: Provider) -> None:
        body = {"grant_type": "authorization_code", "code": "c", "client_secret": CLIENT_SECRET}
        with pytest.raises(InvalidRequestError):
            provider.handle_token_request(urlencode(body), basic_auth())


class TestRefreshTokens:
    def test_no_refresh_token_when_lifetime_none(self, make_provider: Callable[..., Provider]
                                                 ) -> None:
        for kwargs in ({}, {"refresh_token_lifetime": None}, {"refresh_token_lifetime": 0}):
            prov = make_provider(authz_kwargs=kwargs)
            assert "refresh_token" not in code_flow(prov)

    def test_refresh(self, provider: Provider, clock: FakeClock) -> None:
        first = code_flow(provider, scope="openid email")
        clock.advance(100)
        response = refresh(provider, first["refresh_token"])
        assert response["access_token"] != first["access_token"]
        assert response["token_type"] == "Bearer" and response["expires_in"] == 3600
        assert response["scope"] == ["openid", "email"]
        assert json.loads(response.to_json())["scope"] == "openid email"
        assert "refresh_token" not in response  # no threshold: the same one stays valid
        assert "id_token" not in response
        info = provider.handle_userinfo_request(
            None, {"Authorization": "Bearer " + response["access_token"]})
        assert info["email"] == "alice@example.com"
        # reusable while valid
        assert refresh(provider, first["refresh_token"])["access_token"]

    def test_public_client_refresh_tokens_always_rotate(self, provider: Provider) -> None:
        # RFC 9700 4.14.2: refresh tokens of public clients are sender-constrained or rotated
        redirect = "http://127.0.0.1:8765/cb"
        req = parse(provider, client_id=PUBLIC_CLIENT_ID, redirect_uri=redirect,
                    code_challenge=CHALLENGE, code_challenge_method="S256")
        code = provider.authorize(req, USER_ID)["code"]
        first = provider.handle_token_request(urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
            "client_id": PUBLIC_CLIENT_ID, "code_verifier": VERIFIER}))
        body = {"grant_type": "refresh_token", "client_id": PUBLIC_CLIENT_ID}
        second = provider.handle_token_request(
            urlencode(dict(body, refresh_token=first["refresh_token"])))
        assert second["refresh_token"] != first["refresh_token"]
        third = provider.handle_token_request(
            urlencode(dict(body, refresh_token=second["refresh_token"])))
        assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
        with pytest.raises(InvalidRefreshToken):  # replay of a rotated token
            provider.handle_token_request(
                urlencode(dict(body, refresh_token=first["refresh_token"])))
        with pytest.raises(InvalidRefreshToken):  # ... revoked the grant
            provider.handle_token_request(
                urlencode(dict(body, refresh_token=third["refresh_token"])))

    def test_refresh_token_expiry(self, provider: Provider, clock: FakeClock) -> None:
        first = code_flow(provider)
        clock.advance(3599)
        assert refresh(provider, first["refresh_token"])["access_token"]
        clock.advance(1)
        with pytest.raises(InvalidRefreshToken) as info:
            refresh(provider, first["refresh_token"])
        assert info.value.oauth_error == "invalid_grant"

    def test_rotation_only_below_threshold(self, make_provider: Callable[..., Provider],
                                           clock: FakeClock) -> None:
        prov = make_provider(authz_kwargs={"refresh_token_lifetime": 1000,
                                           "refresh_token_threshold": 100})
        first = code_flow(prov)
        clock.advance(900)  # 100 s left: not below the threshold
        assert "refresh_token" not in refresh(prov, first["refresh_token"])
        clock.advance(1)  # 99 s left
        rotated = refresh(prov, first["refresh_token"])
        new_token = rotated["refresh_token"]
        assert new_token != first["refresh_token"]
        clock.advance(500)  # the new token lives a full lifetime
        assert refresh(prov, new_token)["access_token"]

    def test_replayed_rotated_token_revokes_the_grant(self, make_provider: Callable[..., Provider],
                                                      clock: FakeClock) -> None:
        prov = make_provider(authz_kwargs={"refresh_token_lifetime": 1000,
                                           "refresh_token_threshold": 2000})
        first = code_flow(prov)
        rotated = refresh(prov, first["refresh_token"])
        with pytest.raises(InvalidRefreshToken):
            refresh(prov, first["refresh_token"])
        with pytest.raises(InvalidRefreshToken):
            refresh(prov, rotated["refresh_token"])
        with pytest.raises(InvalidAccessToken):
            prov.handle_userinfo_request(None, {"Authorization": "Bearer "
                                                + rotated["access_token"]})

    def test_scope_narrowing(self, provider: Provider) -> None:
        first = code_flow(provider, scope="openid email phone")
        narrowed = refresh(provider, first["refresh_token"], scope="openid email")
        assert narrowed["scope"] == ["openid", "email"]
        info = provider.handle_userinfo_request(
            None, {"Authorization": "Bearer " + narrowed["access_token"]})
        assert "email" in info and "phone_number" not in info
        # the refresh token keeps the original grant
        assert refresh(provider, first["refresh_token"])["scope"] == ["openid", "email", "phone"]
        with pytest.raises(InvalidScope) as info_error:
            refresh(provider, first["refresh_token"], scope="openid profile")
        assert info_error.value.oauth_error == "invalid_scope"
        with pytest.raises(InvalidScope):
            refresh(provider, first["refresh_token"], scope=" ")

    def test_refresh_token_of_another_client(self, make_provider: Callable[..., Provider]
                                             ) -> None:
        db = clients()
        db["other"] = dict(db[CLIENT_ID], client_id="other", client_secret="other-secret")
        prov = make_provider(client_db=db, authz_kwargs={"refresh_token_lifetime": 600})
        token = code_flow(prov)["refresh_token"]
        body = urlencode({"grant_type": "refresh_token", "refresh_token": token})
        with pytest.raises(InvalidRefreshToken):
            prov.handle_token_request(body, basic_auth("other", "other-secret"))

    def test_missing_refresh_token(self, provider: Provider) -> None:
        with pytest.raises(InvalidTokenRequest) as info:
            provider.handle_token_request("grant_type=refresh_token", basic_auth())
        assert info.value.oauth_error == "invalid_request"

    def test_access_token_cannot_refresh(self, provider: Provider) -> None:
        access = code_flow(provider)["access_token"]
        with pytest.raises(InvalidRefreshToken):
            refresh(provider, access)


# -- UserInfo (OIDC Core 5.3) ---------------------------------------------------------------------


class TestUserinfo:
    def test_scope_claims(self, provider: Provider) -> None:
        access = code_flow(provider, scope="openid profile email address phone")["access_token"]
        info = provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access})
        expected = {"sub": public_sub()}
        for scope in ("profile", "email", "address", "phone"):
            expected.update({c: USERS[USER_ID][c] for c in SCOPE_CLAIMS[scope]
                             if c in USERS[USER_ID]})
        assert info.to_dict() == expected

    @pytest.mark.parametrize("scope,claims", [
        ("profile", {"name", "given_name", "family_name", "nickname"}),
        ("email", {"email", "email_verified"}),
        ("address", {"address"}),
        ("phone", {"phone_number"}),
        ("", set()),
    ])
    def test_scope_to_claims_mapping(self, provider: Provider, scope: str, claims: set[str]
                                     ) -> None:
        access = code_flow(provider, scope=("openid " + scope).strip())["access_token"]
        info = provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access})
        assert set(info.keys()) == claims | {"sub"}

    def test_scope_claims_constant(self) -> None:
        assert SCOPE_CLAIMS["profile"] == (
            "name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
            "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale",
            "updated_at")
        assert SCOPE_CLAIMS["email"] == ("email", "email_verified")
        assert SCOPE_CLAIMS["address"] == ("address",)
        assert SCOPE_CLAIMS["phone"] == ("phone_number", "phone_number_verified")

    def test_token_in_body_or_query(self, provider: Provider) -> None:
        access = code_flow(provider, scope="openid email")["access_token"]
        for request in (urlencode({"access_token": access}), {"access_token": access},
                        urlencode({"access_token": access}).encode("ascii")):
            assert provider.handle_userinfo_request(
                request, http_method="POST")["email"] == "alice@example.com"
            assert provider.handle_userinfo_request(
                request, {"Content-Type": "application/x-www-form-urlencoded"}
            )["email"] == "alice@example.com"
            with pytest.raises(InvalidUserinfoRequest):  # the query (RFC 9700 4.3.2)
                provider.handle_userinfo_request(request)
        provider.userinfo_token_in_query = True  # as pyop 3
        assert provider.handle_userinfo_request(
            urlencode({"access_token": access}), http_method="GET")["sub"] == public_sub()

    def test_header_case_insensitive(self, provider: Provider) -> None:
        access = code_flow(provider)["access_token"]
        for headers in ({"authorization": "bearer " + access},
                        {"AUTHORIZATION": "BEARER " + access},
                        [("Authorization", "Bearer " + access)]):
            assert provider.handle_userinfo_request("", headers)["sub"] == public_sub()

    def test_implicit_access_token(self, provider: Provider) -> None:
        req = parse(provider, response_type="id_token token", scope="openid email",
                    claims=json.dumps({"userinfo": {"nickname": None}}))
        access = provider.authorize(req, USER_ID)["access_token"]
        info = provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access})
        assert info.to_dict() == {"sub": public_sub(), "email": "alice@example.com",
                                  "email_verified": True, "nickname": "al"}

    def test_no_token(self, provider: Provider) -> None:
        with pytest.raises(BearerTokenError) as info:
            provider.handle_userinfo_request()
        assert type(info.value) is BearerTokenError
        assert info.value.http_status == 401 and info.value.oauth_error == "invalid_token"

    def test_token_in_two_places(self, provider: Provider) -> None:
        access = code_flow(provider)["access_token"]
        with pytest.raises(InvalidUserinfoRequest) as info:
            provider.handle_userinfo_request(urlencode({"access_token": access}),
                                             {"Authorization": "Bearer " + access})
        assert info.value.http_status == 400 and info.value.oauth_error == "invalid_request"

    def test_malformed_request(self, provider: Provider) -> None:
        with pytest.raises(InvalidUserinfoRequest) as info:
            provider.handle_userinfo_request(b"access_token=%ff")
        assert info.value.http_status == 400

    def test_unknown_and_expired_token(self, provider: Provider, clock: FakeClock) -> None:
        with pytest.raises(InvalidAccessToken) as info:
            provider.handle_userinfo_request(None, {"Authorization": "Bearer unknown"})
        assert info.value.http_status == 401
        assert info.value.www_authenticate == 'Bearer error="invalid_token"'
        access = code_flow(provider)["access_token"]
        clock.advance(3599)
        assert provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access})
        clock.advance(1)
        with pytest.raises(InvalidAccessToken):
            provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access})

    def test_refresh_token_is_not_an_access_token(self, provider: Provider) -> None:
        token = code_flow(provider)["refresh_token"]
        with pytest.raises(InvalidAccessToken):
            provider.handle_userinfo_request(None, {"Authorization": "Bearer " + token})

    def test_insufficient_scope(self, provider: Provider) -> None:
        first = code_flow(provider, scope="openid email")
        narrowed = refresh(provider, first["refresh_token"], scope="email")
        with pytest.raises(InsufficientScope) as info:
            provider.handle_userinfo_request(None, {"Authorization": "Bearer "
                                                    + narrowed["access_token"]})
        assert info.value.http_status == 403
        assert info.value.www_authenticate == 'Bearer error="insufficient_scope"'

    def test_user_without_claims(self, provider: Provider) -> None:
        provider.userinfo = Userinfo({**USERS, "ghost": {}})  # known, no claims
        access = code_flow(provider, scope="openid profile email", user_id="ghost")["access_token"]
        info = provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access})
        assert info.to_dict() == {"sub": public_sub("ghost")}


# -- Dynamic Client Registration ------------------------------------------------------------------


class TestRegistration:
    def test_defaults_in_response_and_client_stored(self, provider: Provider,
                                                    clock: FakeClock) -> None:
        response = provider.handle_client_registration_request(
            json.dumps({"redirect_uris": ["https://new.example.com/cb"],
                        "client_name": "New"}))
        client_id = response["client_id"]
        assert response["redirect_uris"] == ["https://new.example.com/cb"]
        assert response["client_name"] == "New"
        assert response["response_types"] == ["code"]
        assert response["grant_types"] == ["authorization_code"]
        assert response["application_type"] == "web"
        assert response["token_endpoint_auth_method"] == "client_secret_basic"
        assert response["client_id_issued_at"] == int(clock.now)
        assert response["client_secret_expires_at"] == 0
        assert len(response["client_secret"]) >= 32
        assert len(client_id) >= 16
        stored = provider.clients[client_id]
        assert stored["client_secret"] == response["client_secret"]
        assert stored["redirect_uris"] == ["https://new.example.com/cb"]
        json.loads(response.to_json())
        # the new client can run the code flow
        req = parse(provider, client_id=client_id, redirect_uri="https://new.example.com/cb")
        code = provider.authorize(req, USER_ID)["code"]
        token = exchange(provider, code, headers=basic_auth(client_id, response["client_secret"]),
                         redirect_uri="https://new.example.com/cb")
        assert verify(provider, token["id_token"])["aud"] == [client_id]

    def test_only_registered_metadata_kept(self, provider: Provider) -> None:
        response = provider.handle_client_registration_request({
            "redirect_uris": ["https://new.example.com/cb"], "client_id": "chosen-id",
            "client_secret": "chosen-secret", "client_secret_expires_at": 1,
            "unknown_member": {"x": 1}, "client_name": "New"})
        assert response["client_id"] != "chosen-id"
        assert response["client_secret"] != "chosen-secret"
        assert response["client_secret_expires_at"] == 0
        assert "unknown_member" not in response
        stored = provider.clients[response["client_id"]]
        assert "unknown_member" not in stored and stored["client_name"] == "New"
        assert "chosen-id" not in provider.clients

    def test_body_forms(self, provider: Provider) -> None:
        metadata = {"redirect_uris": ["https://new.example.com/cb"]}
        for body in (json.dumps(metadata), json.dumps(metadata).encode("utf-8"), metadata):
            assert provider.handle_client_registration_request(body)["client_id"]

    def test_none_gets_no_secret(self, provider: Provider) -> None:
        response = provider.handle_client_registration_request(
            {"redirect_uris": ["http://127.0.0.1:9000/cb"], "token_endpoint_auth_method": "none",
             "application_type": "native"})
        assert "client_secret" not in response
        assert "client_secret_expires_at" not in response
        assert "client_secret" not in provider.clients[response["client_id"]]

    def test_native_custom_scheme(self, provider: Provider) -> None:
        response = provider.handle_client_registration_request(
            {"redirect_uris": ["com.example.app:/callback"], "application_type": "native"})
        assert response["application_type"] == "native"
        assert response["redirect_uris"] == ["com.example.app:/callback"]

    def test_web_custom_scheme_refused(self, provider: Provider) -> None:
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            provider.handle_client_registration_request(
                {"redirect_uris": ["com.example.app:/callback"]})
        assert info.value.oauth_error == "invalid_redirect_uri"
        assert json.loads(info.value.to_json())["error"] == "invalid_redirect_uri"

    def test_implicit_client(self, provider: Provider) -> None:
        response = provider.handle_client_registration_request(
            {"redirect_uris": ["https://spa.example.com/cb"],
             "response_types": ["id_token token", "code id_token"]})
        assert response["grant_types"] == ["implicit", "authorization_code"]
        client_id = response["client_id"]
        req = parse(provider, client_id=client_id, redirect_uri="https://spa.example.com/cb",
                    response_type="token id_token")
        assert "access_token" in provider.authorize(req, USER_ID)

    def test_pairwise_with_several_hosts_needs_sector_identifier_uri(
            self, provider: Provider) -> None:
        metadata = {"redirect_uris": ["https://a.example.com/cb", "https://b.example.com/cb"],
                    "subject_type": "pairwise"}
        before = len(provider.clients)
        with pytest.raises(InvalidClientRegistrationRequest, match="sector_identifier_uri") as i:
            provider.handle_client_registration_request(metadata)
        assert i.value.oauth_error == "invalid_client_metadata"
        assert len(provider.clients) == before

        fetched: list[str] = []

        def fetcher(uri: str) -> Any:
            fetched.append(uri)
            return metadata["redirect_uris"]

        provider.sector_identifier_fetcher = fetcher
        uri = "https://sector.example.com/uris.json"
        response = provider.handle_client_registration_request(
            dict(metadata, sector_identifier_uri=uri))
        assert fetched == [uri]
        assert response["subject_type"] == "pairwise"
        client_id = response["client_id"]
        req = parse(provider, client_id=client_id, redirect_uri="https://b.example.com/cb")
        code = provider.authorize(req, USER_ID)["code"]
        token = exchange(provider, code, headers=basic_auth(client_id, response["client_secret"]),
                         redirect_uri="https://b.example.com/cb")
        factory = HashBasedSubjectIdentifierFactory("salt")
        assert verify(provider, token["id_token"])["sub"] == \
            factory.create_pairwise_identifier(USER_ID, "sector.example.com")

    def test_custom_registration_validator(self, provider: Provider) -> None:
        def require_contacts(request: Any) -> None:
            if not request.get("contacts"):
                raise InvalidClientRegistrationRequest("contacts required", request,
                                                       oauth_error="invalid_client_metadata")

        provider.registration_request_validators.append(require_contacts)
        before = len(provider.clients)
        with pytest.raises(InvalidClientRegistrationRequest, match="contacts required"):
            provider.handle_client_registration_request(
                {"redirect_uris": ["https://new.example.com/cb"]})
        assert len(provider.clients) == before
        response = provider.handle_client_registration_request(
            {"redirect_uris": ["https://new.example.com/cb"], "contacts": ["ops@example.com"]})
        assert response["contacts"] == ["ops@example.com"]
        assert len(provider.clients) == before + 1

    @pytest.mark.parametrize("body,error", [
        (b"\xff\xfe", "invalid_request"),
        ("not json", "invalid_request"),
        ("[1, 2]", "invalid_request"),
        ("x" * 70_000, "invalid_request"),
        (None, "invalid_request"),
        (42, "invalid_request"),
        ("{}", "invalid_redirect_uri"),
        ('{"redirect_uris": [1]}', "invalid_client_metadata"),
        ('{"redirect_uris": []}', "invalid_redirect_uri"),
        ('{"redirect_uris": ["https://a.example.com/cb"], "contacts": [1]}',
         "invalid_client_metadata"),
        ('{"redirect_uris": ["https://a.example.com/cb"], "default_max_age": "x"}',
         "invalid_client_metadata"),
        ('{"redirect_uris": ["https://a.example.com/cb"], "response_types": ["token"]}',
         "invalid_client_metadata"),
        ('{"redirect_uris": ["https://a.example.com/cb"], "subject_type": "other"}',
         "invalid_client_metadata"),
        ('{"redirect_uris": ["https://a.example.com/cb"], '
         '"token_endpoint_auth_method": "private_key_jwt"}', "invalid_client_metadata"),
        ('{"redirect_uris": ["https://a.example.com/cb#frag"]}', "invalid_redirect_uri"),
        ('{"redirect_uris": ["https://a.example.com/cb"], "client_name": NaN}',
         "invalid_request"),  # NaN is not JSON (RFC 8259 6)
        ('{"redirect_uris": ["https://a.example.com/cb"], "x": -Infinity}', "invalid_request"),
        ("[" * 100_000, "invalid_request"),
        ("[" * 50_000, "invalid_request"),
        ('{"redirect_uris": ["https://a.example.com/cb"], "application_type": [false]}',
         "invalid_client_metadata"),
        ('{"redirect_uris": ["https://a.example.com/c b"]}', "invalid_redirect_uri"),
        ('{"redirect_uris": ["https://a.example.com/cb"], "logo_uri": "javascript:x"}',
         "invalid_client_metadata"),
    ])
    def test_invalid_registrations(self, provider: Provider, body: Any, error: str) -> None:
        before = dict(provider.clients)
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            provider.handle_client_registration_request(body)
        assert info.value.oauth_error == error
        assert info.value.http_status == 400
        assert provider.clients == before


# -- RP-Initiated Logout --------------------------------------------------------------------------


class TestLogout:
    def id_token(self, provider: Provider) -> str:
        return str(code_flow(provider)["id_token"])

    def test_logout_user_by_subject_identifier(self, provider: Provider) -> None:
        code_flow(provider)
        sub = public_sub()
        assert provider.authz_state.get_user_id_for_subject_identifier(sub) == USER_ID
        provider.logout_user(sub)
        # as pyop 3: the mapping stays, a second logout is no error (the grants are
        # revoked: tests/test_logout_revocation.py)
        assert provider.authz_state.get_user_id_for_subject_identifier(sub) == USER_ID
        provider.logout_user(sub)
        with pytest.raises(InvalidSubjectIdentifier):
            provider.logout_user("never-issued")

    def test_logout_user_by_id_token_hint(self, provider: Provider) -> None:
        tokens = code_flow(provider)
        bearer = {"Authorization": "Bearer " + tokens["access_token"]}
        provider.handle_userinfo_request(None, bearer)
        request = provider.parse_end_session_request(
            urlencode({"id_token_hint": tokens["id_token"]}))
        provider.logout_user(end_session_request=request)
        with pytest.raises(InvalidAccessToken):  # the hint's sub was logged out
            provider.handle_userinfo_request(None, bearer)

    def test_expired_id_token_hint_accepted(self, provider: Provider, clock: FakeClock) -> None:
        hint = self.id_token(provider)
        clock.advance(10 * 3600)
        tokens = code_flow(provider)  # a later login of the same user
        provider.logout_user(end_session_request={"id_token_hint": hint})
        with pytest.raises(InvalidAccessToken):
            provider.handle_userinfo_request(
                None, {"Authorization": "Bearer " + tokens["access_token"]})

    def test_logout_without_subject(self, provider: Provider) -> None:
        with pytest.raises(InvalidSubjectIdentifier):
            provider.logout_user()
        with pytest.raises(InvalidSubjectIdentifier):
            provider.logout_user(end_session_request={"state": "x"})

    def test_foreign_id_token_hint(self, provider: Provider) -> None:
        other = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        forged = jws_sign({"iss": ISSUER, "sub": public_sub(), "aud": CLIENT_ID}, other)
        with pytest.raises(InvalidEndSessionRequest):
            provider.logout_user(end_session_request={"id_token_hint": forged})

    def test_deeply_nested_id_token_hint(self, provider: Provider) -> None:
        header = base64.urlsafe_b64encode(b'{"alg":"RS256"}').rstrip(b"=").decode()
        payload = base64.urlsafe_b64encode(b"[" * 30_000).rstrip(b"=").decode()
        hint = header + "." + payload + ".AAAA"
        request = provider.parse_end_session_request(urlencode({"id_token_hint": hint}))
        with pytest.raises(InvalidEndSessionRequest):
            provider.logout_user(end_session_request=request)
        assert provider.do_post_logout_redirect(request) is None

    def test_client_id_must_match_hint_audience(self, provider: Provider) -> None:
        hint = self.id_token(provider)
        with pytest.raises(InvalidEndSessionRequest):
            provider.logout_user(end_session_request={"id_token_hint": hint,
                                                      "client_id": "other"})
        assert isinstance(InvalidEndSessionRequest("x"), InvalidSubjectIdentifier)

    def test_post_logout_redirect_with_state(self, provider: Provider) -> None:
        hint = self.id_token(provider)
        request = provider.parse_end_session_request(urlencode({
            "id_token_hint": hint, "post_logout_redirect_uri": "https://rp.example.com/logged-out",
            "state": "bye state"}))
        url = provider.do_post_logout_redirect(request)
        assert url == "https://rp.example.com/logged-out?state=bye+state"

    def test_post_logout_redirect_with_client_id_and_no_state(self, provider: Provider) -> None:
        request = provider.parse_end_session_request(
            {"client_id": CLIENT_ID,
             "post_logout_redirect_uri": "https://rp.example.com/logged-out"})
        # without a hint, only once the end-user confirmed it (RP-Initiated Logout 1.0, 3)
        assert provider.do_post_logout_redirect(request) is None
        assert provider.do_post_logout_redirect(
            request, confirmed=True) == "https://rp.example.com/logged-out"

    @pytest.mark.parametrize("request_", [
        {},
        {"post_logout_redirect_uri": "https://rp.example.com/logged-out"},
        {"post_logout_redirect_uri": "https://evil.example.com/", "client_id": CLIENT_ID},
        {"post_logout_redirect_uri": "https://rp.example.com/logged-out", "client_id": "other"},
        {"post_logout_redirect_uri": "https://rp.example.com/logged-out",
         "id_token_hint": "not.a.jwt"},
        {"post_logout_redirect_uri": "https://rp.example.com/logged-out",
         "client_id": PUBLIC_CLIENT_ID},
    ])
    def test_no_post_logout_redirect(self, provider: Provider, request_: dict[str, str]) -> None:
        assert provider.do_post_logout_redirect(request_) is None

    def test_hint_for_another_client_is_not_redirected(self, provider: Provider) -> None:
        hint = self.id_token(provider)
        assert provider.do_post_logout_redirect({
            "id_token_hint": hint, "client_id": PUBLIC_CLIENT_ID,
            "post_logout_redirect_uri": "https://rp.example.com/logged-out"}) is None

    def test_multi_audience_hint_uses_azp(self, provider: Provider) -> None:
        key = provider._signing_key
        token = jws_sign({"iss": ISSUER, "sub": public_sub(), "aud": [CLIENT_ID, "other"],
                          "azp": CLIENT_ID}, key)
        request = {"id_token_hint": token,
                   "post_logout_redirect_uri": "https://rp.example.com/logged-out"}
        assert provider.do_post_logout_redirect(request) == "https://rp.example.com/logged-out"
        token = jws_sign({"iss": ISSUER, "sub": public_sub(), "aud": [CLIENT_ID, "other"]}, key)
        assert provider.do_post_logout_redirect(dict(request, id_token_hint=token)) is None

    def test_verify_id_token_hint(self, provider: Provider, clock: FakeClock) -> None:
        hint = self.id_token(provider)
        clock.advance(10 * 3600)  # expired hints are accepted
        claims = provider.verify_id_token_hint(hint)
        assert claims is not None
        assert claims["sub"] == public_sub() and claims["aud"] == [CLIENT_ID]
        other = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        forged = jws_sign({"iss": ISSUER, "sub": public_sub(), "aud": CLIENT_ID}, other)
        assert provider.verify_id_token_hint(forged) is None
        assert provider.verify_id_token_hint(None) is None
        assert provider.verify_id_token_hint("x.y.z") is None

    def test_parse_end_session_request(self, provider: Provider) -> None:
        request = provider.parse_end_session_request(
            b"state=s&ui_locales=en%20fr&logout_hint=alice&client_id=c&empty=")
        assert request["state"] == "s"
        assert request["ui_locales"] == ["en", "fr"]
        assert request["logout_hint"] == "alice"
        assert request["client_id"] == "c"
        assert "empty" not in request
        with pytest.raises(InvalidEndSessionRequest):
            provider.parse_end_session_request("state=a&state=b")
        with pytest.raises(InvalidEndSessionRequest):
            provider.parse_end_session_request(b"state=%ff")
        with pytest.raises(InvalidEndSessionRequest):
            provider.parse_end_session_request({"state": 5})
        with pytest.raises(InvalidEndSessionRequest):
            provider.parse_end_session_request({"state": "\ud800"})

    def test_post_logout_redirect_never_raises(self, provider: Provider) -> None:
        request = {"client_id": CLIENT_ID, "post_logout_redirect_uri":
                   "https://rp.example.com/logged-out", "state": "\ud800"}
        url = provider.do_post_logout_redirect(request)
        assert url is None or url.startswith("https://rp.example.com/logged-out")


class TestRequestSize:
    def test_max_request_size(self, make_provider: Callable[..., Provider]) -> None:
        prov = make_provider(max_request_size=200)
        with pytest.raises(InvalidAuthenticationRequest, match="too large"):
            prov.parse_authentication_request(urlencode(auth_params(login_hint="x" * 200)))
        with pytest.raises(InvalidRequestError, match="too large"):
            prov.handle_token_request("a=" + "x" * 200)
        with pytest.raises(InvalidUserinfoRequest, match="too large"):
            prov.handle_userinfo_request("access_token=" + "x" * 200)
        with pytest.raises(InvalidEndSessionRequest, match="too large"):
            prov.parse_end_session_request("state=" + "x" * 200)
