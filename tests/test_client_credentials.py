"""The ``client_credentials`` grant (RFC 6749 4.4) and what its tokens may do."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, ISSUER, PUBLIC_CLIENT_ID, REDIRECT_URI, FakeClock
from conftest import clients as base_clients

from pyop.authz_state import AuthorizationState
from pyop.exceptions import (
    InsufficientScope,
    InvalidAccessToken,
    InvalidClientRegistrationRequest,
    InvalidScope,
    TokenWithoutEndUser,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from pyop.provider import Provider
from pyop.storage import StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

SERVICE = "service-client"
SERVICE_SECRET = "secret-of-the-service-client"
SCOPED = "scoped-client"
SCOPED_SECRET = "secret-of-the-scoped-client"


def config(grants: Optional[list[str]] = None) -> dict[str, Any]:
    return {
        "issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token", "userinfo_endpoint": ISSUER + "/userinfo",
        "introspection_endpoint": ISSUER + "/introspect",
        "revocation_endpoint": ISSUER + "/revoke",
        "grant_types_supported": grants if grants is not None else [
            "authorization_code", "refresh_token", "client_credentials"],
        "scopes_supported": ["openid", "profile", "email", "api.read", "api.write"],
    }


def clients() -> dict[str, Any]:
    result = base_clients()
    result[SERVICE] = {"client_id": SERVICE, "client_secret": SERVICE_SECRET,
                       "redirect_uris": [REDIRECT_URI], "response_types": ["code"],
                       "grant_types": ["authorization_code", "client_credentials"]}
    result[SCOPED] = {"client_id": SCOPED, "client_secret": SCOPED_SECRET,
                      "redirect_uris": [REDIRECT_URI], "response_types": [],
                      "token_endpoint_auth_method": "client_secret_post",
                      "grant_types": ["client_credentials"], "scope": "api.read openid"}
    result[PUBLIC_CLIENT_ID]["grant_types"] = ["authorization_code", "client_credentials"]
    return result


@pytest.fixture
def op(make_provider: Callable[..., Provider]) -> Provider:
    return make_provider(config=config(), client_db=clients(),
                         authz_kwargs={"refresh_token_lifetime": 3600})


def basic(client_id: str = SERVICE, secret: str = SERVICE_SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(
        f"{client_id}:{secret}".encode()).decode()}


def token(op: Provider, scope: Optional[str] = None, headers: Any = None,
          **body: str) -> dict[str, Any]:
    parameters = {"grant_type": "client_credentials", **body}
    if scope is not None:
        parameters["scope"] = scope
    response = op.handle_token_request(urlencode(parameters),
                                       basic() if headers is None else headers)
    result: dict[str, Any] = json.loads(response.to_json())
    return result


def test_access_token_only(op: Provider) -> None:
    response = token(op, "api.read")
    assert set(response) == {"access_token", "token_type", "expires_in", "scope"}
    assert response["token_type"] == "Bearer"
    assert response["scope"] == "api.read"
    assert response["expires_in"] == 3600


def test_client_secret_post(op: Provider) -> None:
    response = token(op, "api.read", headers={}, client_id=SCOPED, client_secret=SCOPED_SECRET)
    assert response["scope"] == "api.read"


def test_scope_is_narrowed_never_widened(op: Provider) -> None:
    assert token(op, "api.read unknown api.write")["scope"] == "api.read api.write"
    scoped = {"client_id": SCOPED, "client_secret": SCOPED_SECRET}
    # the registered scope bounds the grant; openid is never granted
    assert token(op, "api.read api.write openid", headers={}, **scoped)["scope"] == "api.read"
    assert token(op, headers={}, **scoped)["scope"] == "api.read"


def test_openid_is_never_granted(op: Provider) -> None:
    assert token(op, "openid api.read offline_access")["scope"] == "api.read"
    with pytest.raises(InvalidScope):
        token(op, "openid")
    with pytest.raises(InvalidScope):
        token(op, "api.write", headers={}, client_id=SCOPED, client_secret=SCOPED_SECRET)


def test_no_scope(op: Provider) -> None:
    response = token(op)
    assert "scope" not in response and response["access_token"]


def test_client_not_registered_for_the_grant(op: Provider) -> None:
    with pytest.raises(UnauthorizedClient):
        token(op, headers=basic(CLIENT_ID, CLIENT_SECRET))  # no grant_types registered
    op.clients[CLIENT_ID]["grant_types"] = ["authorization_code"]
    with pytest.raises(UnauthorizedClient):
        token(op, headers=basic(CLIENT_ID, CLIENT_SECRET))


def test_public_client_is_refused(op: Provider) -> None:
    with pytest.raises(UnauthorizedClient):
        token(op, headers={}, client_id=PUBLIC_CLIENT_ID)


def test_wrong_secret(op: Provider) -> None:
    from pyop.exceptions import InvalidClientAuthentication

    with pytest.raises(InvalidClientAuthentication):
        token(op, headers=basic(SERVICE, "wrong"))


def test_grant_not_offered(make_provider: Callable[..., Provider]) -> None:
    provider = make_provider(config=config(["authorization_code"]), client_db=clients())
    with pytest.raises(UnsupportedGrantType):
        token(provider)
    assert "client_credentials" not in make_provider().provider_configuration[
        "grant_types_supported"]


def test_userinfo_refuses_the_token(op: Provider) -> None:
    access_token = token(op, "api.read")["access_token"]
    with pytest.raises(TokenWithoutEndUser) as info:
        op.handle_userinfo_request(None, {"Authorization": "Bearer " + access_token})
    assert isinstance(info.value, InsufficientScope)
    assert info.value.http_status == 403
    assert info.value.oauth_error == "insufficient_scope"
    assert "no end-user" in str(info.value)


def introspect(op: Provider, value: str, headers: Any = None) -> dict[str, Any]:
    response = op.handle_introspection_request(urlencode({"token": value}),
                                               basic() if headers is None else headers)
    result: dict[str, Any] = json.loads(response.to_json())
    return result


def test_introspection(op: Provider, clock: FakeClock) -> None:
    access_token = token(op, "api.read api.write")["access_token"]
    result = introspect(op, access_token)
    assert result == {"active": True, "scope": "api.read api.write", "client_id": SERVICE,
                      "token_type": "Bearer", "iss": ISSUER, "iat": int(clock()),
                      "exp": int(clock()) + 3600}
    assert "sub" not in result
    # another client learns nothing
    assert introspect(op, access_token, basic(CLIENT_ID, CLIENT_SECRET)) == {"active": False}
    clock.advance(3600)
    assert introspect(op, access_token) == {"active": False}


def test_revocation(op: Provider) -> None:
    access_token = token(op, "api.read")["access_token"]
    op.handle_revocation_request(urlencode({"token": access_token}), basic(CLIENT_ID,
                                                                           CLIENT_SECRET))
    assert introspect(op, access_token)["active"] is True  # not the token of that client
    op.handle_revocation_request(urlencode({"token": access_token}), basic())
    assert introspect(op, access_token) == {"active": False}
    with pytest.raises(InvalidAccessToken):
        op.handle_userinfo_request(None, {"Authorization": "Bearer " + access_token})


def test_sealed_access_tokens(jwkest_signing_key: Any, clock: FakeClock) -> None:
    authz = AuthorizationState(
        HashBasedSubjectIdentifierFactory("salt"),
        access_token_db=StatelessWrapper("access_tokens", "k" * 32, clock=clock), clock=clock)
    provider = Provider(jwkest_signing_key, config(), authz, clients(), Userinfo({}),
                        clock=clock)
    access_token = token(provider, "api.read")["access_token"]
    assert introspect(provider, access_token)["client_id"] == SERVICE
    with pytest.raises(TokenWithoutEndUser):
        provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access_token})
    provider.handle_revocation_request(urlencode({"token": access_token}), basic())
    assert introspect(provider, access_token) == {"active": False}


def test_user_tokens_still_reach_userinfo(op: Provider) -> None:
    """The code flow is unchanged: its access tokens still have an end-user."""
    request = op.parse_authentication_request(urlencode({
        "client_id": SERVICE, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid email", "nonce": "n"}))
    code = op.authorize(request, "alice")["code"]
    response = op.handle_token_request(urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}),
        basic())
    claims = op.handle_userinfo_request(None, {"Authorization": "Bearer "
                                               + response["access_token"]})
    assert claims["email"] == "alice@example.com"


def register(op: Provider, **metadata: Any) -> Any:
    return op.handle_client_registration_request(
        json.dumps({"redirect_uris": [REDIRECT_URI], **metadata}))


def test_registration(op: Provider) -> None:
    response = register(op, grant_types=["authorization_code", "client_credentials"])
    assert "client_credentials" in response["grant_types"]
    result = token(op, "api.read",
                   headers=basic(response["client_id"], response["client_secret"]))
    assert result["scope"] == "api.read"


def test_registration_refusals(op: Provider, make_provider: Callable[..., Provider]) -> None:
    with pytest.raises(InvalidClientRegistrationRequest, match="confidential"):
        register(op, grant_types=["authorization_code", "client_credentials"],
                 token_endpoint_auth_method="none")
    provider = make_provider(config=config(["authorization_code"]))
    response = register(provider, grant_types=["authorization_code", "client_credentials"])
    assert response["grant_types"] == ["authorization_code"]  # dropped, as in pyop 3
    provider = make_provider(config=config(["authorization_code"]),
                             strict_client_preferences=True)
    with pytest.raises(InvalidClientRegistrationRequest, match="not supported"):
        register(provider, grant_types=["authorization_code", "client_credentials"])
