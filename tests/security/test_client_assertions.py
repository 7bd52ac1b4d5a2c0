"""SECURITY.md, "Client authentication": JWT client assertions (``client_secret_jwt``,
``private_key_jwt``; RFC 7523 3, OIDC Core 9).

- Audience injection (RFC 7523bis): by default ``aud`` must be the issuer identifier as a
  single string; the token endpoint URL, another endpoint's URL or an array naming the
  issuer only with ``client_assertion_audiences="issuer-or-endpoint"``:
  ``test_rfc7523bis_aud_is_the_issuer_as_a_single_string``,
  ``test_rfc7523bis_endpoint_audiences_only_with_the_option``.
- ``NaN``, ``Infinity``, ``1e400`` in ``exp``/``iat``/``nbf`` are no NumericDate (RFC 7519 2):
  401 ``invalid_client``, never a crash:
  ``test_rfc7519_2_non_finite_numeric_date_in_assertion_refused``.
- Explicit typing (RFC 8725 3.11): a JWT typed as another kind (a request object, an
  access token...) is no assertion: ``test_rfc8725_3_11_assertion_typ_of_other_kind_refused``.
- A request object (no ``sub``) is no assertion:
  ``test_rfc7523_3_request_object_refused_as_assertion``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any, Callable
from urllib.parse import urlencode

import pytest

from pyop.client_assertion import JWT_BEARER_ASSERTION_TYPE
from pyop.crypto import b64url_encode
from pyop.exceptions import InvalidClientAuthentication
from pyop.provider import Provider

from .helpers import ISSUER, REDIRECT_URI, security_clients, security_configuration

JWT_CLIENT = "jwt-client"
JWT_SECRET = "shared-secret-of-the-jwt-client-0123456789-abcdef"
TOKEN_ENDPOINT = ISSUER + "/token"


@pytest.fixture
def jwt_op(make_op: Callable[..., Provider]) -> Callable[..., Provider]:
    def factory(**kwargs: Any) -> Provider:
        clients = security_clients()
        clients[JWT_CLIENT] = {
            "client_id": JWT_CLIENT, "client_secret": JWT_SECRET,
            "redirect_uris": [REDIRECT_URI], "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_jwt",
            "grant_types": ["authorization_code", "client_credentials"]}
        return make_op(client_db=clients, config=security_configuration(
            introspection_endpoint=ISSUER + "/introspect"), **kwargs)

    return factory


def claims(now: float, **overrides: Any) -> dict[str, Any]:
    value = {"iss": JWT_CLIENT, "sub": JWT_CLIENT, "aud": ISSUER, "exp": int(now) + 60,
             "iat": int(now), "jti": secrets.token_urlsafe(8)}
    value.update(overrides)
    return value


def hs256(payload: str, header: Any = None) -> str:
    signing_input = (b64url_encode(json.dumps(header or {"alg": "HS256"}).encode()) + "."
                     + b64url_encode(payload.encode()))
    mac = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url_encode(mac)


def introspect(op: Provider, assertion: str) -> Any:
    return op.handle_introspection_request(urlencode({
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": assertion,
        "token": "x"}))


def refused(op: Provider, assertion: str) -> InvalidClientAuthentication:
    with pytest.raises(InvalidClientAuthentication) as info:
        introspect(op, assertion)
    assert info.value.oauth_error == "invalid_client" and info.value.http_status == 401
    return info.value


@pytest.mark.parametrize("aud", [TOKEN_ENDPOINT, ISSUER + "/introspect", [ISSUER],
                                 [ISSUER, "https://attacker.example"]])
def test_rfc7523bis_aud_is_the_issuer_as_a_single_string(
        jwt_op: Callable[..., Provider], clock: Any, aud: Any) -> None:
    op = jwt_op()
    assert introspect(op, hs256(json.dumps(claims(clock()))))["active"] is False
    assert "aud" in str(refused(op, hs256(json.dumps(claims(clock(), aud=aud)))))


@pytest.mark.parametrize("aud", [TOKEN_ENDPOINT, ISSUER + "/introspect", [ISSUER],
                                 ["https://other.example", TOKEN_ENDPOINT]])
def test_rfc7523bis_endpoint_audiences_only_with_the_option(
        jwt_op: Callable[..., Provider], clock: Any, aud: Any) -> None:
    op = jwt_op(client_assertion_audiences="issuer-or-endpoint")
    assert introspect(op, hs256(json.dumps(claims(clock(), aud=aud))))["active"] is False


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "null",
                                   '"1700000000"'])
def test_rfc7519_2_non_finite_numeric_date_in_assertion_refused(
        jwt_op: Callable[..., Provider], clock: Any, name: str, value: str) -> None:
    op = jwt_op()
    payload = json.dumps(claims(clock(), **{name: "placeholder"})).replace(
        '"placeholder"', value)
    refused(op, hs256(payload))


@pytest.mark.parametrize("typ", ["oauth-authz-req+jwt", "at+jwt", "logout+jwt", "dpop+jwt",
                                 "application/secevent+jwt"])
def test_rfc8725_3_11_assertion_typ_of_other_kind_refused(
        jwt_op: Callable[..., Provider], clock: Any, typ: str) -> None:
    op = jwt_op()
    assert "typ" in str(refused(op, hs256(json.dumps(claims(clock())),
                                          {"alg": "HS256", "typ": typ})))
    for accepted in ("JWT", "client-authentication+jwt"):
        assert introspect(op, hs256(json.dumps(claims(clock())),
                                    {"alg": "HS256", "typ": accepted}))["active"] is False


def test_rfc7523_3_request_object_refused_as_assertion(jwt_op: Callable[..., Provider],
                                                       clock: Any) -> None:
    op = jwt_op()
    request_object = {k: v for k, v in claims(clock()).items() if k != "sub"}
    request_object.update({"client_id": JWT_CLIENT, "response_type": "code",
                           "scope": "openid"})
    refused(op, hs256(json.dumps(request_object)))
