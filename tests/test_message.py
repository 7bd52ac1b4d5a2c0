"""Unit tests of pyop.message: the oic message classes as pyop extends them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from oic.oic import message as oic_message

from pyop.message import (
    AccessTokenRequest,
    AccessTokenResponse,
    AuthorizationRequest,
    AuthorizationResponse,
    EndSessionRequest,
    EndSessionResponse,
    Message,
    OpenIDSchema,
    ProviderConfigurationResponse,
    RefreshAccessTokenRequest,
    RegistrationRequest,
    issued_token_response,
)

BASE_CONFIG = {
    "issuer": "https://op.example.com",
    "authorization_endpoint": "https://op.example.com/authz",
    "token_endpoint": "https://op.example.com/token",
    "jwks_uri": "https://op.example.com/jwks",
    "response_types_supported": ["code"],
    "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256"],
}


class TestAuthorizationRequest:
    def test_pkce_parameters(self) -> None:
        req = AuthorizationRequest().from_dict({
            "client_id": "c", "redirect_uri": "https://rp/cb", "response_type": "code",
            "scope": "openid", "code_challenge": "x" * 43, "code_challenge_method": "S256"})
        assert req["code_challenge"] == "x" * 43
        assert req["code_challenge_method"] == "S256"
        assert issubclass(AuthorizationRequest, oic_message.AuthorizationRequest)
        assert "code_challenge" not in oic_message.AuthorizationRequest.c_param  # not patched

    def test_round_trip_through_json(self) -> None:
        req = AuthorizationRequest(client_id="c", response_type="code id_token",
                                   scope="openid email", state="s", nonce="n",
                                   claims={"userinfo": {"email": {"essential": True}}})
        stored = json.loads(json.dumps(req.to_dict()))
        rebuilt = AuthorizationRequest().from_dict(stored)
        assert rebuilt["scope"] == ["openid", "email"]
        assert rebuilt["response_type"] == ["code", "id_token"]
        assert rebuilt.to_dict() == req.to_dict()

    def test_access_token_request_code_verifier(self) -> None:
        req = AccessTokenRequest().from_urlencoded(
            "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Frp%2Fcb"
            "&code_verifier=" + "v" * 43)
        assert req["code_verifier"] == "v" * 43
        assert issubclass(RefreshAccessTokenRequest, Message)


class TestProviderConfigurationResponse:
    @pytest.mark.parametrize("issuer", ["https://op.example.com", "http://localhost:8000",
                                        "http://127.0.0.1", "http://[::1]:9000"])
    def test_verify_accepts(self, issuer: str) -> None:
        config = ProviderConfigurationResponse(**dict(BASE_CONFIG, issuer=issuer))
        assert config.verify() is True
        assert config["issuer"] == issuer  # restored after oic's https check

    @pytest.mark.parametrize("issuer", ["http://op.example.com", "https://op.example.com?a=b",
                                        "https://op.example.com#f", "op.example.com"])
    def test_verify_refuses(self, issuer: str) -> None:
        config = ProviderConfigurationResponse(**dict(BASE_CONFIG, issuer=issuer))
        with pytest.raises(ValueError, match="issuer"):
            config.verify()
        assert config["issuer"] == issuer

    def test_verify_missing_issuer(self) -> None:
        config = ProviderConfigurationResponse(**{k: v for k, v in BASE_CONFIG.items()
                                                  if k != "issuer"})
        with pytest.raises(ValueError, match="issuer"):
            config.verify()

    def test_issuer_restored_when_oic_refuses(self) -> None:
        config = ProviderConfigurationResponse(**dict(BASE_CONFIG, issuer="http://localhost",
                                                      scopes_supported=["profile"]))
        with pytest.raises(Exception):  # noqa: B017 - oic raises an AssertionError here
            config.verify()
        assert config["issuer"] == "http://localhost"

    def test_extra_members(self) -> None:
        config = ProviderConfigurationResponse(**dict(
            BASE_CONFIG, code_challenge_methods_supported=["S256"],
            introspection_endpoint="https://op.example.com/introspect",
            revocation_endpoint="https://op.example.com/revoke",
            authorization_response_iss_parameter_supported=True))
        config.verify()
        document = json.loads(config.to_json())
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert document["authorization_response_iss_parameter_supported"] is True
        assert ProviderConfigurationResponse.c_default == {}


class TestEndSessionRequest:
    def test_members(self) -> None:
        req = EndSessionRequest().from_urlencoded(
            "id_token_hint=a.b.c&client_id=c&logout_hint=alice&ui_locales=en+fr"
            "&post_logout_redirect_uri=https%3A%2F%2Frp%2Fbye&state=s")
        assert req.to_dict() == {"id_token_hint": "a.b.c", "client_id": "c",
                                 "logout_hint": "alice", "ui_locales": "en fr",
                                 "post_logout_redirect_uri": "https://rp/bye", "state": "s"}
        assert req["ui_locales"] == ["en", "fr"]

    def test_response(self) -> None:
        assert EndSessionResponse(state="s").request("https://rp/bye") == "https://rp/bye?state=s"


class TestResponses:
    def test_authorization_response_encoding(self) -> None:
        response = AuthorizationResponse(code="c d", state="s", iss="https://op.example.com")
        assert response.request("https://rp/cb") == \
            "https://rp/cb?code=c+d&state=s&iss=https%3A%2F%2Fop.example.com"
        assert response.request("https://rp/cb", True).startswith("https://rp/cb#code=c+d")

    def test_access_token_response_json(self) -> None:
        response = AccessTokenResponse(access_token="a", token_type="Bearer", expires_in=5,
                                       scope=["openid", "email"])
        assert json.loads(response.to_json()) == {"access_token": "a", "token_type": "Bearer",
                                                  "expires_in": 5, "scope": "openid email"}

    def test_openid_schema(self) -> None:
        info = OpenIDSchema(sub="s", email="a@b", address={"locality": "x"})
        assert json.loads(info.to_json()) == {"sub": "s", "email": "a@b",
                                              "address": {"locality": "x"}}

    def test_registration_request_is_oic(self) -> None:
        assert RegistrationRequest is oic_message.RegistrationRequest


# -- the shortcuts on the code flow's path: same results as oic -------------------------------

_REQUEST_VALUES = st.one_of(
    st.text(max_size=12), st.integers(min_value=-5, max_value=10 ** 6),
    st.lists(st.text(max_size=6), max_size=3),
    st.dictionaries(st.sampled_from(["userinfo", "id_token"]),
                    st.dictionaries(st.sampled_from(["email", "name"]), st.none(), max_size=2),
                    max_size=2))
_REQUEST_NAMES = st.sampled_from(
    ["client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "prompt",
     "max_age", "ui_locales", "acr_values", "claims", "code_challenge", "display", "name#en",
     "unknown", "registration", "self"])


def _oic_result(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as e:  # noqa: BLE001 - compared with the shortcut's exception
        return "error", type(e)


@given(st.dictionaries(_REQUEST_NAMES, _REQUEST_VALUES, max_size=8))
def test_authorization_request_to_dict_matches_oic(values: dict[str, Any]) -> None:
    built = _oic_result(lambda: AuthorizationRequest().from_dict(values))
    if built[0] != "ok":
        return
    request = built[1]
    expected = _oic_result(lambda: Message.to_dict(request))
    actual = _oic_result(lambda: request.to_dict())
    assert actual == expected
    if actual[0] == "ok":
        assert list(actual[1]) == list(expected[1])


def test_authorization_request_to_dict_of_a_parsed_request() -> None:
    request = AuthorizationRequest().from_dict({
        "client_id": "c", "redirect_uri": "https://rp/cb", "response_type": "code id_token",
        "scope": "openid email", "state": "s", "nonce": "n", "prompt": "login consent",
        "max_age": "30"})
    assert request.to_dict() == Message.to_dict(request) == {
        "client_id": "c", "redirect_uri": "https://rp/cb", "response_type": "code id_token",
        "scope": "openid email", "state": "s", "nonce": "n", "prompt": ["login", "consent"],
        "max_age": 30}
    request["claims"] = oic_message.ClaimsRequest(userinfo={"email": None})
    assert request.to_dict() == Message.to_dict(request)
    assert request.to_dict()["claims"] == {"userinfo": {"email": None}}


@pytest.mark.parametrize("cls", [AuthorizationRequest, ProviderConfigurationResponse])
def test_get_is_oic_get(cls: Any) -> None:
    message = cls(scope="openid email", issuer="https://op.example.com")
    for name in ("scope", "issuer", "absent"):
        assert message.get(name) == Message.get(message, name)
        assert message.get(name, 7) == Message.get(message, name, 7)
    message["scope"] = ["openid"]
    assert message.get("scope") == ["openid"]
    del message["scope"]
    assert message.get("scope", "gone") == "gone"


@given(st.text(max_size=8), st.text(max_size=8),
       st.one_of(st.integers(min_value=0, max_value=10 ** 6), st.booleans(), st.floats(0, 99)),
       st.text(max_size=8), st.text(alphabet=" ab", max_size=6))
def test_issued_token_response_matches_oic(access_token: str, token_type: str, expires_in: Any,
                                           id_token: str, scope: str) -> None:
    expected = _oic_result(lambda: AccessTokenResponse(
        access_token=access_token, token_type=token_type, expires_in=expires_in,
        id_token=id_token, scope=scope))
    actual = _oic_result(lambda: issued_token_response(access_token, token_type, expires_in,
                                                       id_token, scope))
    assert actual[0] == expected[0]
    if actual[0] == "ok":
        assert type(actual[1]) is AccessTokenResponse
        assert list(actual[1].items()) == list(expected[1].items())
        assert actual[1].to_json() == expected[1].to_json()
    else:
        assert actual[1] is expected[1]


_CLAIM_NAMES = st.sampled_from(["sub", "self", "name", "email", "email_verified", "updated_at",
                                "address", "custom", "name#fr", "birthdate", "_claim_names"])
_CLAIM_VALUES = st.one_of(st.text(max_size=5), st.integers(-3, 3), st.booleans(), st.none(),
                          st.floats(0, 2), st.lists(st.text(max_size=3), max_size=2),
                          st.dictionaries(st.sampled_from(["country", "x"]), st.text(max_size=3),
                                          max_size=2))


@given(st.dictionaries(_CLAIM_NAMES, _CLAIM_VALUES, max_size=6))
def test_message_from_plain_values_matches_oic(claims: dict[str, Any]) -> None:
    from pyop.message import UserinfoResponse, message_from_plain_values

    expected = _oic_result(lambda: UserinfoResponse().from_dict(claims))
    actual = _oic_result(lambda: message_from_plain_values(UserinfoResponse, claims))
    assert actual[0] == expected[0]
    if actual[0] == "ok":
        assert type(actual[1]) is UserinfoResponse
        assert list(actual[1].items()) == list(expected[1].items())
        assert actual[1].to_json() == expected[1].to_json()
    else:
        assert actual[1] is expected[1]


def test_message_from_plain_values_fills_plain_members_directly() -> None:
    from pyop.message import UserinfoResponse, message_from_plain_values

    claims = {"sub": "abc", "name": "Alice", "email_verified": True, "updated_at": 5, "x": 1}
    response = message_from_plain_values(UserinfoResponse, claims)
    assert response.to_dict() == claims
    assert response.content_type == "application/json"
    # a value oic converts or drops goes through oic
    assert message_from_plain_values(UserinfoResponse, {"sub": "a", "email": ""}).to_dict() \
        == {"sub": "a"}


@given(st.dictionaries(_REQUEST_NAMES, st.one_of(_REQUEST_VALUES, st.booleans(), st.none()),
                       max_size=8))
def test_message_from_plain_values_matches_oic_for_requests(values: dict[str, Any]) -> None:
    from pyop.message import message_from_plain_values

    expected = _oic_result(lambda: AuthorizationRequest().from_dict(values))
    actual = _oic_result(lambda: message_from_plain_values(AuthorizationRequest, values))
    assert actual[0] == expected[0]
    if actual[0] == "ok":
        assert type(actual[1]) is AuthorizationRequest
        assert list(actual[1].items()) == list(expected[1].items())
    else:
        assert actual[1] is expected[1]


def test_message_from_plain_values_of_a_parsed_request() -> None:
    from pyop.message import message_from_plain_values

    values = {"client_id": "c", "redirect_uri": "https://rp/cb", "response_type": "code",
              "scope": "openid  email", "prompt": "login consent", "state": "s"}
    request = message_from_plain_values(AuthorizationRequest, values)
    assert list(request.items()) == list(AuthorizationRequest().from_dict(values).items())
    assert request["scope"] == ["openid", "", "email"]
    assert request["prompt"] == ["login", "consent"]


@given(st.lists(st.tuples(st.sampled_from(["code", "state", "iss", "expires_in", "scope",
                                           "custom", "name#fr"]), _CLAIM_VALUES), max_size=5))
def test_set_string_member_matches_oic(members: list[tuple[str, Any]]) -> None:
    from pyop.message import AuthorizationResponse, set_string_member

    def fill(assign: Any) -> AuthorizationResponse:
        message = AuthorizationResponse()
        for name, value in members:
            assign(message, name, value)
        return message

    expected = _oic_result(lambda: fill(lambda m, n, v: m.__setitem__(n, v)))
    actual = _oic_result(lambda: fill(set_string_member))
    assert actual[0] == expected[0]
    if actual[0] == "ok":
        assert list(actual[1].items()) == list(expected[1].items())
        assert actual[1].to_urlencoded() == expected[1].to_urlencoded()
    else:
        assert actual[1] is expected[1]
