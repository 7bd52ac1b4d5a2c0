"""Unit tests of pyop.request_validator: the authentication request checks, one by one."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from conftest import CLIENT_ID, PUBLIC_CLIENT_ID, REDIRECT_URI, configuration

from pyop.crypto import SigningKey
from pyop.exceptions import InvalidAuthenticationRequest, InvalidClientId, InvalidRedirectURI
from pyop.message import AuthorizationRequest, ClaimsRequest
from pyop.provider import Provider
from pyop.request_validator import (
    DEFAULT_AUTHENTICATION_CHECKS,
    PKCE_VALUE_PATTERN,
    check_claims,
    check_client_id,
    check_max_age,
    check_nonce,
    check_pkce,
    check_prompt,
    check_redirect_uri,
    check_request_objects,
    check_response_mode,
    check_response_type,
    check_scope,
)

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture(scope="module")
def converted_key(jwkest_signing_key: Any) -> SigningKey:
    return SigningKey.from_jwkest(jwkest_signing_key)


@pytest.fixture
def provider(make_provider: Callable[..., Provider], converted_key: SigningKey) -> Provider:
    return make_provider(signing_key=converted_key)


def request(**params: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                            "response_type": "code", "scope": ["openid"]}
    base.update(params)
    return {k: v for k, v in base.items() if v is not None}


def assert_error(check: Callable[..., None], provider: Provider, req: dict[str, Any],
                 oauth_error: str = "invalid_request") -> InvalidAuthenticationRequest:
    with pytest.raises(InvalidAuthenticationRequest) as info:
        check(req, provider)
    assert info.value.oauth_error == oauth_error
    assert info.value.request is req
    return info.value


class TestFatalChecks:
    def test_client_id(self, provider: Provider) -> None:
        assert check_client_id(request(), provider)["client_secret"]
        for req in (request(client_id=None), request(client_id=["a", "b"]),
                    request(client_id="unknown")):
            with pytest.raises(InvalidClientId) as info:
                check_client_id(req, provider)
            assert info.value.to_error_url() is None

    def test_redirect_uri(self) -> None:
        client = {"redirect_uris": [REDIRECT_URI, "https://rp.example.com/other"]}
        check_redirect_uri(request(), client)
        check_redirect_uri(request(redirect_uri="https://rp.example.com/other"), client)
        check_redirect_uri(request(), {"redirect_uris": REDIRECT_URI})  # a single string
        for req, registered in (
            (request(redirect_uri=None), client),
            (request(redirect_uri=[REDIRECT_URI, REDIRECT_URI]), client),
            (request(redirect_uri=REDIRECT_URI.upper()), client),
            (request(redirect_uri=REDIRECT_URI + "/x"), client),
            (request(), {}),
            (request(), {"redirect_uris": None}),
        ):
            with pytest.raises(InvalidRedirectURI) as info:
                check_redirect_uri(req, registered)
            assert info.value.to_error_url() is None


class TestResponseType:
    def test_ok(self, provider: Provider) -> None:
        check_response_type(request(response_type=["id_token", "code"]), provider)
        check_response_type(request(response_type="token id_token"), provider)

    def test_missing(self, provider: Provider) -> None:
        assert_error(check_response_type, provider, request(response_type=None))
        assert_error(check_response_type, provider, request(response_type=""))

    def test_unsupported(self, provider: Provider) -> None:
        assert_error(check_response_type, provider, request(response_type="token"),
                     "unsupported_response_type")
        assert_error(check_response_type, provider, request(response_type="code foo"),
                     "unsupported_response_type")

    def test_not_registered(self, provider: Provider) -> None:
        req = request(client_id=PUBLIC_CLIENT_ID, response_type="id_token")
        assert_error(check_response_type, provider, req, "unauthorized_client")

    def test_client_gone(self, provider: Provider) -> None:
        # only code is allowed for a client without response_types
        req = request(client_id="gone")
        check_response_type(req, provider)
        assert_error(check_response_type, provider, request(client_id="gone",
                                                            response_type="id_token"),
                     "unauthorized_client")


class TestResponseMode:
    @pytest.mark.parametrize("response_type,mode", [("code", None), ("code", "query"),
                                                    ("code", "fragment"),
                                                    ("id_token", "fragment"),
                                                    ("code id_token", None)])
    def test_ok(self, provider: Provider, response_type: str, mode: Any) -> None:
        check_response_mode(request(response_type=response_type, response_mode=mode), provider)

    @pytest.mark.parametrize("response_type,mode", [("code", "form_post"), ("code", "web"),
                                                    ("id_token", "query"),
                                                    ("code token", "query")])
    def test_refused(self, provider: Provider, response_type: str, mode: str) -> None:
        assert_error(check_response_mode, provider,
                     request(response_type=response_type, response_mode=mode))

    def test_provider_restriction(self, make_provider: Callable[..., Provider],
                                  converted_key: SigningKey) -> None:
        config = configuration()
        config["response_modes_supported"] = ["fragment"]
        prov = make_provider(config=config, signing_key=converted_key)
        assert_error(check_response_mode, prov, request(response_mode="query"))
        check_response_mode(request(response_mode="fragment"), prov)


class TestOtherChecks:
    def test_request_objects(self, provider: Provider) -> None:
        check_request_objects(request(), provider)
        assert_error(check_request_objects, provider, request(request="x"),
                     "request_not_supported")
        assert_error(check_request_objects, provider, request(request_uri="x"),
                     "request_uri_not_supported")
        assert_error(check_request_objects, provider, request(registration="{}"),
                     "registration_not_supported")

    def test_scope(self, provider: Provider) -> None:
        check_scope(request(scope=["profile", "openid"]), provider)
        for scope in (None, [], ["profile"], ["OPENID"]):
            assert_error(check_scope, provider, request(scope=scope), "invalid_scope")

    @pytest.mark.parametrize("response_type", ["id_token", "id_token token", "code id_token",
                                               "code token", "code id_token token"])
    def test_nonce_required(self, provider: Provider, response_type: str) -> None:
        assert_error(check_nonce, provider, request(response_type=response_type))
        assert_error(check_nonce, provider, request(response_type=response_type, nonce=""))
        check_nonce(request(response_type=response_type, nonce="n"), provider)

    def test_nonce_optional_for_code(self, provider: Provider) -> None:
        check_nonce(request(), provider)

    @pytest.mark.parametrize("prompt", [None, "none", "login", "consent select_account",
                                        ["login", "consent"], ["none"]])
    def test_prompt_ok(self, provider: Provider, prompt: Any) -> None:
        check_prompt(request(prompt=prompt), provider)

    @pytest.mark.parametrize("prompt", ["bogus", "none login", ["none", "consent"],
                                        ["login", "x"], ""])
    def test_prompt_refused(self, provider: Provider, prompt: Any) -> None:
        if prompt == "":
            check_prompt(request(prompt=prompt), provider)  # no values: nothing to check
            return
        assert_error(check_prompt, provider, request(prompt=prompt))

    @pytest.mark.parametrize("max_age", [None, 0, 1, 10**9])
    def test_max_age_ok(self, provider: Provider, max_age: Any) -> None:
        check_max_age(request(max_age=max_age), provider)

    @pytest.mark.parametrize("max_age", [-1, True, False, "10", 1.5, []])
    def test_max_age_refused(self, provider: Provider, max_age: Any) -> None:
        assert_error(check_max_age, provider, request(max_age=max_age))


class TestPkce:
    def test_absent_for_confidential_client(self, provider: Provider) -> None:
        check_pkce(request(), provider)

    def test_required_for_public_client_using_code(self, provider: Provider) -> None:
        assert_error(check_pkce, provider, request(client_id=PUBLIC_CLIENT_ID))
        check_pkce(request(client_id=PUBLIC_CLIENT_ID, response_type="id_token"), provider)

    def test_method_without_challenge(self, provider: Provider) -> None:
        assert_error(check_pkce, provider, request(code_challenge_method="S256"))

    @pytest.mark.parametrize("challenge", ["short", "a" * 42, "a" * 129, "a" * 42 + "+",
                                           "a" * 42 + "=", 5])
    def test_malformed_challenge(self, provider: Provider, challenge: Any) -> None:
        assert_error(check_pkce, provider, request(code_challenge=challenge,
                                                   code_challenge_method="S256"))

    def test_methods(self, provider: Provider, make_provider: Callable[..., Provider],
                     converted_key: SigningKey) -> None:
        check_pkce(request(code_challenge=CHALLENGE, code_challenge_method="S256"), provider)
        assert_error(check_pkce, provider, request(code_challenge=CHALLENGE))  # plain default
        assert_error(check_pkce, provider, request(code_challenge=CHALLENGE,
                                                   code_challenge_method="plain"))
        assert_error(check_pkce, provider, request(code_challenge=CHALLENGE,
                                                   code_challenge_method="s256"))
        permissive = make_provider(allow_plain_pkce=True, signing_key=converted_key)
        check_pkce(request(code_challenge=CHALLENGE), permissive)
        check_pkce(request(code_challenge=CHALLENGE, code_challenge_method="plain"), permissive)

    def test_pattern(self) -> None:
        # RFC 7636 4.1: 43-128 unreserved characters, nothing else
        assert PKCE_VALUE_PATTERN.fullmatch("a" * 43)
        assert PKCE_VALUE_PATTERN.fullmatch("-._~" * 32)
        for value in ("a" * 43 + "\n", "a" * 42, "a" * 129, "a" * 42 + "+", " " + "a" * 43):
            assert not PKCE_VALUE_PATTERN.fullmatch(value)


class TestClaims:
    @pytest.mark.parametrize("claims", [
        None, {}, {"userinfo": None}, {"userinfo": {"name": None}},
        {"id_token": {"auth_time": {"essential": True}, "acr": {"values": ["a", "b"]},
                      "email": {"value": "x", "essential": False}}},
        {"other_member": 5},
    ])
    def test_ok(self, provider: Provider, claims: Any) -> None:
        check_claims(request(claims=claims), provider)

    def test_message_members(self, provider: Provider) -> None:
        from pyop.message import Message

        check_claims(request(claims={"userinfo": Message(name=None)}), provider)
        assert_error(check_claims, provider,
                     request(claims={"id_token": Message(name={"essential": "x"})}))

    def test_message(self, provider: Provider) -> None:
        claims = ClaimsRequest(userinfo={"name": None}, id_token={"email": {"essential": True}})
        check_claims(request(claims=claims), provider)
        req = AuthorizationRequest().from_dict(request(claims={"userinfo": {"name": None}}))
        check_claims(req, provider)

    @pytest.mark.parametrize("claims", [
        "string", ["list"], {"userinfo": "x"}, {"id_token": []}, {"userinfo": {"name": 5}},
        {"id_token": {"name": "x"}}, {"userinfo": {"name": {"essential": 1}}},
        {"id_token": {"name": {"values": "a"}}},
    ])
    def test_refused(self, provider: Provider, claims: Any) -> None:
        assert_error(check_claims, provider, request(claims=claims))


def test_default_checks_order() -> None:
    assert DEFAULT_AUTHENTICATION_CHECKS == (
        check_response_type, check_response_mode, check_request_objects, check_scope,
        check_nonce, check_prompt, check_max_age, check_pkce, check_claims)


@pytest.mark.sync_only  # the checks are bound to the synchronous provider AsyncProvider runs
def test_provider_binds_the_default_checks(provider: Provider) -> None:
    validators = provider.authentication_request_validators
    assert [v.func for v in validators] == list(DEFAULT_AUTHENTICATION_CHECKS)  # type: ignore
    assert all(v.keywords == {"provider": provider} for v in validators)  # type: ignore
