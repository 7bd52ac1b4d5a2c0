"""Per-client allow-lists: the ``scope`` metadata (RFC 7591 2) and the host-set
``allowed_claims``. Requests beyond them are narrowed, never widened."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    USER_ID,
    USERS,
    clients,
    configuration,
)

from pyop.client_management import (
    client_allowed_claims,
    client_allowed_scope,
    narrow_claims,
    narrow_claims_request,
    narrow_scope,
)
from pyop.exceptions import (
    InsufficientScope,
    InvalidAuthenticationRequest,
    InvalidClientRegistrationRequest,
    InvalidScope,
)
from pyop.message import AuthorizationRequest
from pyop.provider import Provider

BASIC = {"Authorization": "Basic " + base64.b64encode(
    f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()}


def limited_clients(scope: Optional[str] = "openid email offline_access",
                    allowed_claims: Optional[list[str]] = None) -> dict[str, Any]:
    db = clients()
    if scope is not None:
        db[CLIENT_ID]["scope"] = scope
    if allowed_claims is not None:
        db[CLIENT_ID]["allowed_claims"] = allowed_claims
    return db


@pytest.fixture
def make_op(make_provider: Callable[..., Provider]) -> Callable[..., Provider]:
    def factory(**kwargs: Any) -> Provider:
        return make_provider(client_db=limited_clients(**kwargs),
                             authz_kwargs={"refresh_token_lifetime": 3600})
    return factory


def query(scope: str = "openid profile email", response_type: str = "code",
          claims: Optional[dict[str, Any]] = None, **extra: str) -> str:
    params = {"response_type": response_type, "client_id": CLIENT_ID,
              "redirect_uri": REDIRECT_URI, "scope": scope, "nonce": "n", "state": "s", **extra}
    if claims is not None:
        params["claims"] = json.dumps(claims)
    return urlencode(params)


def code_exchange(op: Provider, authn_req: Any) -> Any:
    code = op.authorize(authn_req, USER_ID)["code"]
    body = urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": REDIRECT_URI})
    return op.handle_token_request(body, BASIC)


def id_token_claims(op: Provider, id_token: str) -> dict[str, Any]:
    claims = op.verify_id_token_hint(id_token)
    assert claims is not None
    return claims


def userinfo(op: Provider, access_token: str) -> dict[str, Any]:
    return op.handle_userinfo_request("", {"Authorization": "Bearer " + access_token}).to_dict()


def refresh(op: Provider, refresh_token: str, scope: Optional[str] = None) -> Any:
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        params["scope"] = scope
    return op.handle_token_request(urlencode(params), BASIC)


class TestFunctions:
    def test_allowed_values(self) -> None:
        assert client_allowed_scope({}) is None
        assert client_allowed_scope({"scope": "openid  email"}) == {"openid", "email"}
        assert client_allowed_scope({"scope": ["openid", 5]}) == {"openid"}
        assert client_allowed_scope({"scope": 5}) is None
        assert client_allowed_claims({"allowed_claims": ["email"]}) == {"email"}
        assert client_allowed_claims({"allowed_claims": "email name"}) == {"email", "name"}
        assert client_allowed_claims({}) is None

    def test_narrow_scope_keeps_order(self) -> None:
        assert narrow_scope(["email", "openid", "x"], {"scope": "openid email"}) == [
            "email", "openid"]
        assert narrow_scope(["a", "b"], {}) == ["a", "b"]

    def test_narrow_claims_keeps_authentication_claims(self) -> None:
        claims = {"email": None, "name": None, "sub": None, "auth_time": {"essential": True},
                  "acr": None, "amr": None}
        assert narrow_claims(claims, {"allowed_claims": ["email"]}) == {
            "email": None, "sub": None, "auth_time": {"essential": True}, "acr": None,
            "amr": None}
        assert narrow_claims(claims, {}) == claims

    def test_narrow_claims_request(self) -> None:
        request = {"userinfo": {"email": None, "name": None}, "id_token": {"name": None},
                   "other": 1}
        assert narrow_claims_request(request, {"allowed_claims": ["email"]}) == {
            "userinfo": {"email": None}, "id_token": {}, "other": 1}
        assert narrow_claims_request({"userinfo": "bad"}, {"allowed_claims": []}) == {
            "userinfo": "bad"}


class TestAuthenticationRequest:
    def test_scope_is_narrowed(self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        authn_req = op.parse_authentication_request(query("openid profile email phone"))
        assert authn_req["scope"] == ["openid", "email"]

    def test_openid_must_remain(self, make_op: Callable[..., Provider]) -> None:
        op = make_op(scope="email profile")
        with pytest.raises(InvalidAuthenticationRequest) as info:
            op.parse_authentication_request(query("openid email"))
        assert info.value.oauth_error == "invalid_scope"
        url = info.value.to_error_url()
        assert url is not None and parse_qs(urlsplit(url).query)["error"] == ["invalid_scope"]

    def test_offline_access_outside_the_list_is_dropped(self, make_op: Callable[..., Provider]
                                                         ) -> None:
        op = make_op(scope="openid email")
        authn_req = op.parse_authentication_request(
            query("openid offline_access", prompt="consent"))
        assert authn_req["scope"] == ["openid"]
        assert code_exchange(op, authn_req)["scope"] == ["openid"]

    def test_claims_parameter_is_narrowed(self, make_op: Callable[..., Provider]) -> None:
        op = make_op(allowed_claims=["email", "email_verified"])
        authn_req = op.parse_authentication_request(query(claims={
            "userinfo": {"email": {"essential": True}, "name": None},
            "id_token": {"auth_time": {"essential": True}, "nickname": None}}))
        assert authn_req["claims"].to_dict() == {
            "userinfo": {"email": {"essential": True}},
            "id_token": {"auth_time": {"essential": True}}}
        # the session round trip of the README keeps the narrowed request
        stored = AuthorizationRequest().from_dict(authn_req.to_dict())
        assert stored["claims"].to_dict() == authn_req["claims"].to_dict()

    def test_unlimited_client_is_unchanged(self, make_op: Callable[..., Provider]) -> None:
        op = make_op(scope=None)
        claims = {"userinfo": {"name": None}}
        authn_req = op.parse_authentication_request(query("openid profile phone", claims=claims))
        assert authn_req["scope"] == ["openid", "profile", "phone"]
        assert authn_req["claims"].to_dict() == claims


class TestReleasedClaims:
    def test_code_flow(self, make_op: Callable[..., Provider]) -> None:
        op = make_op(allowed_claims=["email"])
        authn_req = op.parse_authentication_request(query(
            "openid profile email",
            claims={"id_token": {"email": None, "name": None,
                                 "auth_time": {"essential": True}},
                    "userinfo": {"nickname": None}}))
        response = code_exchange(op, authn_req)
        assert response["scope"] == ["openid", "email"]
        id_token = id_token_claims(op, response["id_token"])
        assert id_token["email"] == USERS[USER_ID]["email"]
        assert "name" not in id_token and "auth_time" in id_token
        assert userinfo(op, response["access_token"]) == {
            "sub": id_token["sub"], "email": USERS[USER_ID]["email"]}

    def test_host_passes_an_unnarrowed_request(self, make_op: Callable[..., Provider]) -> None:
        # a request rebuilt by the host, never parsed by the provider: still narrowed
        op = make_op(allowed_claims=["email"])
        authn_req = AuthorizationRequest().from_dict({
            "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
            "scope": "openid profile email phone", "nonce": "n",
            "claims": {"id_token": {"name": None}, "userinfo": {"nickname": None}}})
        response = code_exchange(op, authn_req)
        assert response["scope"] == ["openid", "email"]
        assert "name" not in id_token_claims(op, response["id_token"])
        assert set(userinfo(op, response["access_token"])) == {"sub", "email"}

    def test_implicit_id_token(self, make_op: Callable[..., Provider]) -> None:
        op = make_op(scope="openid profile email", allowed_claims=["given_name"])
        authn_req = op.parse_authentication_request(query("openid profile email phone",
                                                          response_type="id_token"))
        response = op.authorize(authn_req, USER_ID)
        claims = id_token_claims(op, response["id_token"])
        assert claims["given_name"] == USERS[USER_ID]["given_name"]
        assert not {"name", "family_name", "email", "phone_number"} & set(claims)

    def test_allow_list_tightened_after_the_grant(self, make_op: Callable[..., Provider]
                                                  ) -> None:
        op = make_op(scope="openid profile email")
        response = code_exchange(op, op.parse_authentication_request(query()))
        assert "name" in userinfo(op, response["access_token"])
        op.clients[CLIENT_ID] = {**op.clients[CLIENT_ID], "scope": "openid email",
                                 "allowed_claims": ["email"]}
        assert set(userinfo(op, response["access_token"])) == {"sub", "email"}
        op.clients[CLIENT_ID] = {**op.clients[CLIENT_ID], "scope": "email"}
        with pytest.raises(InsufficientScope):
            userinfo(op, response["access_token"])


class TestRefresh:
    def _grant(self, op: Provider, scope: str = "openid email offline_access") -> Any:
        authn_req = op.parse_authentication_request(query(scope, prompt="consent"))
        return code_exchange(op, authn_req)

    def test_requested_values_outside_the_list_are_dropped(
            self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        response = self._grant(op)
        refreshed = refresh(op, response["refresh_token"], "openid email profile")
        assert refreshed["scope"] == ["openid", "email"]

    def test_nothing_allowed_is_invalid_scope(self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        response = self._grant(op)
        with pytest.raises(InvalidScope):
            refresh(op, response["refresh_token"], "profile phone")

    def test_widening_the_grant_is_still_refused(self, make_op: Callable[..., Provider]
                                                 ) -> None:
        op = make_op(scope="openid email profile offline_access")
        response = self._grant(op, "openid email offline_access")
        with pytest.raises(InvalidScope):
            refresh(op, response["refresh_token"], "openid profile")

    def test_grant_narrowed_when_the_list_was_tightened(
            self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        response = self._grant(op)
        assert response["scope"] == ["openid", "email", "offline_access"]
        op.clients[CLIENT_ID] = {**op.clients[CLIENT_ID], "scope": "openid offline_access"}
        refreshed = refresh(op, response["refresh_token"])
        assert refreshed["scope"] == ["openid", "offline_access"]
        assert refresh(op, response["refresh_token"], "openid")["scope"] == ["openid"]

    def test_foreign_refresh_token_is_invalid_grant(self, make_op: Callable[..., Provider]
                                                    ) -> None:
        op = make_op()
        response = self._grant(op)
        op.clients[CLIENT_ID] = {**op.clients[CLIENT_ID], "scope": "profile"}
        with pytest.raises(InvalidScope):
            refresh(op, response["refresh_token"])  # the grant has nothing left
        with pytest.raises(Exception) as info:
            refresh(op, "not-a-refresh-token")
        assert getattr(info.value, "oauth_error", None) == "invalid_grant"


class TestRegistration:
    def _register(self, op: Provider, **metadata: Any) -> dict[str, Any]:
        body = {"redirect_uris": ["https://rp.example.com/cb"], **metadata}
        return op.handle_client_registration_request(json.dumps(body)).to_dict()

    def test_scope_is_registered_and_limits_requests(self, make_op: Callable[..., Provider]
                                                     ) -> None:
        op = make_op()
        registered = self._register(op, scope="  openid   email ")
        assert registered["scope"] == "openid email"
        authn_req = op.parse_authentication_request(urlencode({
            "response_type": "code", "client_id": registered["client_id"],
            "redirect_uri": "https://rp.example.com/cb", "scope": "openid profile email"}))
        assert authn_req["scope"] == ["openid", "email"]

    @pytest.mark.parametrize("scope", ["openid admin", "   ", 5, ["openid"], None])
    def test_invalid_scope_refused(self, make_op: Callable[..., Provider], scope: Any) -> None:
        op = make_op()
        body = {"redirect_uris": ["https://rp.example.com/cb"], "scope": scope}
        if scope is None:
            body["scope"] = {"a": 1}
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            op.handle_client_registration_request(json.dumps(body))
        assert info.value.oauth_error == "invalid_client_metadata"

    def test_supported_scopes_only(self, make_provider: Callable[..., Provider]) -> None:
        op = make_provider(extra_scopes={"eduperson": ["eduperson_principal_name"]},
                           config={**configuration(), "scopes_supported": ["openid", "email"]})
        assert self._register(op, scope="openid eduperson email")["scope"]
        # the standard scopes are granted even when not advertised (as in pyop 3)
        assert self._register(op, scope="openid profile phone")["scope"]
        for scope in ("openid unknown-scope", "openid offline_access"):  # no refresh tokens
            with pytest.raises(InvalidClientRegistrationRequest):
                self._register(op, scope=scope)
        with_refresh = make_provider(authz_kwargs={"refresh_token_lifetime": 60},
                                     config={**configuration(),
                                             "scopes_supported": ["openid", "email"]})
        assert self._register(with_refresh, scope="openid offline_access")["scope"]

    def test_empty_scope_is_no_scope(self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        registered = self._register(op, scope="")
        assert "scope" not in op.clients[registered["client_id"]]

    def test_allowed_claims_not_client_settable(self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        registered = self._register(op, allowed_claims=["everything"])
        assert "allowed_claims" not in registered
        assert "allowed_claims" not in op.clients[registered["client_id"]]

    def test_without_scope_no_limit(self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        registered = self._register(op)
        assert "scope" not in op.clients[registered["client_id"]]
