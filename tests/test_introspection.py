"""Token introspection (RFC 7662): ``Provider.handle_introspection_request``."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    USER_ID,
    configuration,
)
from conftest import clients as default_clients

from pyop.exceptions import InvalidClientAuthentication, InvalidRequestError
from pyop.message import TokenIntrospectionResponse
from pyop.provider import Provider

OTHER_ID = "client2"
OTHER_SECRET = "secret-of-client2"


def basic_auth(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def two_clients() -> dict[str, Any]:
    db = default_clients()
    db[OTHER_ID] = dict(db[CLIENT_ID], client_id=OTHER_ID, client_secret=OTHER_SECRET)
    return db


def issue_tokens(provider: Provider, client_id: str = CLIENT_ID,
                 secret: str = CLIENT_SECRET, scope: str = "openid profile") -> Any:
    """A code flow for ``client_id``: its token response (access and refresh token)."""
    request = provider.parse_authentication_request(urlencode({
        "client_id": client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": scope, "state": "s", "nonce": "n"}))
    code = provider.authorize(request, USER_ID)["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    return provider.handle_token_request(urlencode(body), basic_auth(client_id, secret))


def introspect(provider: Provider, token: Optional[str], hint: Optional[str] = None,
               headers: Optional[dict[str, str]] = None) -> dict[str, Any]:
    body = {k: v for k, v in {"token": token, "token_type_hint": hint}.items() if v is not None}
    response = provider.handle_introspection_request(
        urlencode(body), basic_auth() if headers is None else headers)
    assert isinstance(response, TokenIntrospectionResponse)
    parsed: dict[str, Any] = json.loads(response.to_json())
    return parsed


@pytest.fixture
def provider(make_provider: Callable[..., Provider]) -> Provider:
    return make_provider(client_db=two_clients(), authz_kwargs={"refresh_token_lifetime": 3600})


def test_active_access_token(provider: Provider, clock: Any) -> None:
    tokens = issue_tokens(provider)
    result = introspect(provider, tokens["access_token"])
    sub = provider.authz_state.get_access_token(tokens["access_token"])["sub"]
    assert result == {"active": True, "scope": "openid profile", "client_id": CLIENT_ID,
                      "sub": sub, "exp": int(clock.now) + 3600, "iat": int(clock.now),
                      "token_type": "Bearer", "iss": ISSUER}


def test_active_refresh_token(provider: Provider, clock: Any) -> None:
    tokens = issue_tokens(provider)
    result = introspect(provider, tokens["refresh_token"])
    assert result["active"] is True
    assert result["token_type"] == "refresh_token"
    assert result["client_id"] == CLIENT_ID and result["scope"] == "openid profile"
    assert result["exp"] == int(clock.now) + 3600 and result["iat"] == int(clock.now)
    assert result["iss"] == ISSUER and result["sub"]


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "id_token", "bogus"])
def test_hint_is_honoured_and_not_required(provider: Provider, hint: Optional[str]) -> None:
    tokens = issue_tokens(provider)
    assert introspect(provider, tokens["access_token"], hint)["token_type"] == "Bearer"
    assert introspect(provider, tokens["refresh_token"], hint)["token_type"] == "refresh_token"


def test_token_of_another_client_is_inactive(provider: Provider) -> None:
    tokens = issue_tokens(provider, OTHER_ID, OTHER_SECRET)
    assert introspect(provider, tokens["access_token"]) == {"active": False}
    assert introspect(provider, tokens["refresh_token"], "refresh_token") == {"active": False}
    # its own client sees it active
    other = basic_auth(OTHER_ID, OTHER_SECRET)
    assert introspect(provider, tokens["access_token"], headers=other)["active"] is True


def test_unknown_token_is_inactive(provider: Provider) -> None:
    assert introspect(provider, "no-such-token") == {"active": False}
    assert introspect(provider, "x" * 5000) == {"active": False}


def test_expired_tokens_are_inactive(provider: Provider, clock: Any) -> None:
    tokens = issue_tokens(provider)
    clock.advance(3600)
    assert introspect(provider, tokens["access_token"]) == {"active": False}
    assert introspect(provider, tokens["refresh_token"]) == {"active": False}


def test_revoked_tokens_are_inactive(provider: Provider) -> None:
    tokens = issue_tokens(provider)
    provider.authz_state.revoke_refresh_token(tokens["refresh_token"])
    assert introspect(provider, tokens["access_token"]) == {"active": False}
    assert introspect(provider, tokens["refresh_token"]) == {"active": False}


def test_rotated_refresh_token_is_inactive(make_provider: Callable[..., Provider]) -> None:
    provider = make_provider(authz_kwargs={"refresh_token_lifetime": 3600,
                                           "refresh_token_threshold": 7200})
    tokens = issue_tokens(provider)
    body = urlencode({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    refreshed = provider.handle_token_request(body, basic_auth())
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert introspect(provider, tokens["refresh_token"]) == {"active": False}
    assert introspect(provider, refreshed["refresh_token"])["active"] is True
    assert introspect(provider, refreshed["access_token"])["active"] is True


def test_wrong_secret_is_invalid_client(provider: Provider) -> None:
    tokens = issue_tokens(provider)
    with pytest.raises(InvalidClientAuthentication) as error:
        introspect(provider, tokens["access_token"], headers=basic_auth(CLIENT_ID, "wrong"))
    assert error.value.http_status == 401 and error.value.oauth_error == "invalid_client"


def test_no_client_authentication_is_invalid_client(provider: Provider) -> None:
    with pytest.raises(InvalidClientAuthentication):
        provider.handle_introspection_request(urlencode({"token": "t"}), {})


def test_public_client_is_refused(provider: Provider) -> None:
    with pytest.raises(InvalidClientAuthentication) as error:
        provider.handle_introspection_request(
            urlencode({"token": "t", "client_id": PUBLIC_CLIENT_ID}), {})
    assert error.value.http_status == 401 and error.value.oauth_error == "invalid_client"


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token_type_hint": "access_token"}])
def test_missing_token_is_invalid_request(provider: Provider, body: dict[str, str]) -> None:
    with pytest.raises(InvalidRequestError) as error:
        provider.handle_introspection_request(urlencode(body), basic_auth())
    assert error.value.oauth_error == "invalid_request" and error.value.http_status == 400


def test_repeated_token_is_invalid_request(provider: Provider) -> None:
    with pytest.raises(InvalidRequestError):
        provider.handle_introspection_request("token=a&token=b", basic_auth())


def test_client_secret_post(make_provider: Callable[..., Provider]) -> None:
    db = two_clients()
    db[CLIENT_ID]["token_endpoint_auth_method"] = "client_secret_post"
    provider = make_provider(client_db=db)
    request = provider.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}))
    code = provider.authorize(request, USER_ID)["code"]
    tokens = provider.handle_token_request(urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
    response = provider.handle_introspection_request(urlencode({
        "token": tokens["access_token"], "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}))
    assert response["active"] is True


def test_endpoints_advertised_only_when_configured(make_provider: Callable[..., Provider]
                                                   ) -> None:
    published = make_provider().provider_configuration.to_dict()
    assert "introspection_endpoint" not in published
    assert "revocation_endpoint" not in published
    config = configuration()
    config.update(introspection_endpoint=ISSUER + "/introspect",
                  introspection_endpoint_auth_methods_supported=["client_secret_basic"],
                  revocation_endpoint=ISSUER + "/revoke")
    published = make_provider(config=config).provider_configuration.to_dict()
    assert published["introspection_endpoint"] == ISSUER + "/introspect"
    assert published["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic"]
    assert published["revocation_endpoint"] == ISSUER + "/revoke"
    # not configured: the token endpoint's methods, which the endpoint accepts (RFC 8414 2)
    assert published["revocation_endpoint_auth_methods_supported"] == published[
        "token_endpoint_auth_methods_supported"]


def test_endpoint_auth_methods_derived_from_the_token_endpoint(
        make_provider: Callable[..., Provider]) -> None:
    config = configuration()
    config.update(introspection_endpoint=ISSUER + "/introspect",
                  revocation_endpoint=ISSUER + "/revoke",
                  token_endpoint_auth_methods_supported=[
                      "client_secret_basic", "private_key_jwt", "none"])
    provider = make_provider(config=config)
    published = provider.provider_configuration.to_dict()
    # public clients may revoke but not introspect
    assert published["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "private_key_jwt"]
    assert published["revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "private_key_jwt", "none"]
    algs = published["token_endpoint_auth_signing_alg_values_supported"]
    assert algs and "HS256" not in algs
    assert published["introspection_endpoint_auth_signing_alg_values_supported"] == algs
    assert published["revocation_endpoint_auth_signing_alg_values_supported"] == algs
    # an endpoint set after construction gets them too
    provider.configuration_information.pop("revocation_endpoint")
    published = provider.provider_configuration.to_dict()
    assert "revocation_endpoint_auth_methods_supported" not in published
    provider.configuration_information["revocation_endpoint"] = ISSUER + "/revoke2"
    assert "revocation_endpoint_auth_methods_supported" in (
        provider.provider_configuration.to_dict())


def test_response_message() -> None:
    response = TokenIntrospectionResponse(active=False)
    assert response.verify()
    assert json.loads(response.to_json()) == {"active": False}
