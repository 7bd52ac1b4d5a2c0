"""SECURITY.md, "Authorization request": request objects *supported correctly* (the other half
of "request / request_uri when unsupported -> request_not_supported", whose tests are in
``test_authorization_request.py``; oidcc-*-request-object-supported-correctly-or-rejected-
as-unsupported).

With ``request_parameter_supported``, a request object is never silently ignored: its values
are used, or the request is refused.

- Signed object honoured, its values win (OIDC Core 6.3.3):
  ``test_oidc_core_6_3_3_signed_request_object_values_are_used``.
- Unsigned object refused unless ``none`` is advertised (OIDC Core 6.1, Discovery 3):
  ``test_oidc_core_6_1_unsigned_request_object_rejected_unless_advertised``,
  ``test_oidc_core_6_1_unsigned_request_object_supported_when_advertised``.
- Bad signature, foreign key, HMAC keyed with the client's public key (RFC 8725 2.1):
  ``test_oidc_core_6_3_2_request_object_signature_verified``.
- Fatal checks first (unknown client / unregistered redirect_uri never redirect, also with
  a request object): ``test_design_fatal_checks_first_with_request_object``.
- A redirect_uri inside the object must be registered, else no redirect (RFC 9700 4.1.3):
  ``test_rfc9700_4_1_3_redirect_uri_in_request_object_exact_match``.
- ``request_uri`` stays unsupported: ``test_oidcc_request_uri_still_rejected``.
- Cross-JWT confusion (RFC 9101 10.8): a ``typ`` of another kind refused, ``JWT`` and
  ``oauth-authz-req+jwt`` accepted; a signed object must carry ``iss``, ``aud`` and ``exp``;
  a client assertion (``sub`` = client_id) is no request object:
  ``test_rfc9101_10_8_*``, ``test_rfc9101_4_request_object_explicit_or_generic_typ_accepted``.
- ``exp`` at most ``max_request_object_lifetime`` ahead; a ``jti`` makes the object
  single-use: ``test_rfc9101_10_8_request_object_lifetime_bounded``,
  ``test_rfc9101_10_8_request_object_jti_single_use``.
- ``NaN``, ``Infinity`` and ``1e400`` are no NumericDate (RFC 7519 2):
  ``test_rfc7519_2_non_finite_numeric_date_in_request_object_refused``.
- Only the key named by ``kid`` is tried: ``test_rfc7515_4_1_4_request_object_kid_selects_the_key``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Callable

import pytest
from conftest import FakeClock
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pyop.crypto import SigningKey, VerificationKey, b64url_encode, jws_sign
from pyop.exceptions import InvalidAuthenticationRequest
from pyop.provider import Provider

from .helpers import (
    CLIENT_ID,
    ISSUER,
    REDIRECT_URI,
    USER_ID,
    assert_not_redirected,
    assert_redirected,
    auth_query,
    redeem,
    security_clients,
    security_configuration,
    unverified_claims,
)


@pytest.fixture(scope="module")
def client_key() -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256",
                      "client-key")


@pytest.fixture
def ro_op(make_op: Callable[..., Provider], client_key: SigningKey) -> Callable[..., Provider]:
    def factory(**kwargs: Any) -> Provider:
        clients = security_clients()
        clients[CLIENT_ID]["jwks"] = {"keys": [client_key.to_jwk()]}
        return make_op(config=security_configuration(request_parameter_supported=True),
                       client_db=clients, **kwargs)

    return factory


def b64_json(value: Any) -> str:
    return b64url_encode(json.dumps(value).encode("utf-8"))


def request_claims(**overrides: Any) -> dict[str, Any]:
    claims = {"iss": CLIENT_ID, "aud": ISSUER, "client_id": CLIENT_ID, "response_type": "code",
              "scope": "openid", "nonce": "object-nonce", "state": "object-state",
              "exp": int(FakeClock().now) + 300}
    claims.update(overrides)
    return claims


def parse_error(provider: Provider, query: str) -> InvalidAuthenticationRequest:
    with pytest.raises(InvalidAuthenticationRequest) as info:
        provider.parse_authentication_request(query)
    return info.value


def test_oidc_core_6_3_3_signed_request_object_values_are_used(
        ro_op: Callable[..., Provider], client_key: SigningKey) -> None:
    op = ro_op()
    request_object = jws_sign(request_claims(), client_key)
    authn_req = op.parse_authentication_request(auth_query(request=request_object))
    response = op.authorize(authn_req, USER_ID)
    assert response["state"] == "object-state"
    tokens = redeem(op, response["code"])
    assert unverified_claims(tokens["id_token"])["nonce"] == "object-nonce"


def test_oidc_core_6_1_unsigned_request_object_rejected_unless_advertised(
        ro_op: Callable[..., Provider]) -> None:
    op = ro_op()
    assert "none" not in op.provider_configuration[
        "request_object_signing_alg_values_supported"]
    unsigned = f"{b64_json({'alg': 'none'})}.{b64_json(request_claims())}."
    assert_redirected(parse_error(op, auth_query(request=unsigned)), "invalid_request_object",
                      fragment=False)


def test_oidc_core_6_1_unsigned_request_object_supported_when_advertised(
        ro_op: Callable[..., Provider]) -> None:
    op = ro_op(allow_unsigned_request_objects=True)
    assert "none" in op.provider_configuration["request_object_signing_alg_values_supported"]
    unsigned = f"{b64_json({'alg': 'none'})}.{b64_json(request_claims())}."
    assert op.parse_authentication_request(auth_query(request=unsigned))["nonce"] == \
        "object-nonce"


def test_oidc_core_6_3_2_request_object_signature_verified(
        ro_op: Callable[..., Provider], client_key: SigningKey, foreign_rsa_key: Any) -> None:
    op = ro_op()
    genuine = jws_sign(request_claims(), client_key)
    header, _, signature = genuine.split(".")
    tampered = f"{header}.{b64_json(request_claims(scope='openid email'))}.{signature}"
    foreign = jws_sign(request_claims(), SigningKey(foreign_rsa_key, "RS256", "client-key"))
    public_pem = client_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64_json({'alg': 'HS256'})}.{b64_json(request_claims())}"
    hmac_confused = signing_input + "." + b64url_encode(
        hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    for request_object in (tampered, foreign, hmac_confused):
        assert_redirected(parse_error(op, auth_query(request=request_object)),
                          "invalid_request_object", fragment=False)


def test_design_fatal_checks_first_with_request_object(ro_op: Callable[..., Provider],
                                                       client_key: SigningKey) -> None:
    op = ro_op()
    request_object = jws_sign(request_claims(), client_key)
    assert_not_redirected(parse_error(op, auth_query(client_id="unknown",
                                                     request=request_object)))
    assert_not_redirected(parse_error(op, auth_query(redirect_uri="https://evil.example/cb",
                                                     request=request_object)))


@pytest.mark.parametrize("uri", ["https://evil.example/cb", REDIRECT_URI + "/",
                                 REDIRECT_URI + "?x=1", REDIRECT_URI.upper()])
def test_rfc9700_4_1_3_redirect_uri_in_request_object_exact_match(
        ro_op: Callable[..., Provider], client_key: SigningKey, uri: str) -> None:
    op = ro_op()
    request_object = jws_sign(request_claims(redirect_uri=uri), client_key)
    assert_not_redirected(parse_error(op, auth_query(request=request_object)))


def test_oidcc_request_uri_still_rejected(ro_op: Callable[..., Provider]) -> None:
    op = ro_op()
    assert op.provider_configuration["request_uri_parameter_supported"] is False
    error = parse_error(op, auth_query(request_uri="https://rp.example.com/request.jwt"))
    assert_redirected(error, "request_uri_not_supported", fragment=False)


# -- RFC 9101 10.8 and RFC 7519 2: cross-JWT confusion, lifetime, replay, NumericDates --------


def refused_object(op: Provider, request_object: str) -> InvalidAuthenticationRequest:
    error = parse_error(op, auth_query(request=request_object))
    assert_redirected(error, "invalid_request_object", fragment=False)
    return error


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "dpop+jwt", "logout+jwt",
                                 "secevent+jwt", "client-authentication+jwt",
                                 "token-introspection+jwt", "AT+JWT", "", 5])
def test_rfc9101_10_8_request_object_typ_of_other_kind_refused(
        ro_op: Callable[..., Provider], client_key: SigningKey, typ: Any) -> None:
    op = ro_op()
    error = refused_object(op, jws_sign(request_claims(), client_key, {"typ": typ}))
    assert "typ" in str(error)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "oauth-authz-req+jwt",
                                 "application/oauth-authz-req+jwt", "JOSE"])
def test_rfc9101_4_request_object_explicit_or_generic_typ_accepted(
        ro_op: Callable[..., Provider], client_key: SigningKey, typ: str) -> None:
    op = ro_op()
    request_object = jws_sign(request_claims(), client_key, {"typ": typ})
    assert op.parse_authentication_request(auth_query(request=request_object))["nonce"] == \
        "object-nonce"


@pytest.mark.parametrize("missing", ["iss", "aud", "exp"])
def test_rfc9101_10_8_signed_request_object_must_name_issuer_audience_and_expiry(
        ro_op: Callable[..., Provider], client_key: SigningKey, missing: str) -> None:
    claims = request_claims()
    del claims[missing]
    request_object = jws_sign(claims, client_key)
    assert missing in str(refused_object(ro_op(), request_object))
    # the documented option checks them only when present
    lenient = ro_op(require_request_object_claims=False)
    assert lenient.parse_authentication_request(auth_query(request=request_object))


@pytest.mark.parametrize("aud", [ISSUER, [ISSUER], ["https://other.example", ISSUER]])
def test_rfc9101_10_8_request_object_aud_string_or_array_with_issuer(
        ro_op: Callable[..., Provider], client_key: SigningKey, aud: Any) -> None:
    op = ro_op()
    request_object = jws_sign(request_claims(aud=aud), client_key)
    assert op.parse_authentication_request(auth_query(request=request_object))


def test_rfc9101_10_8_request_object_lifetime_bounded(ro_op: Callable[..., Provider],
                                                      client_key: SigningKey,
                                                      clock: Any) -> None:
    now = int(clock())
    op = ro_op()
    assert op.parse_authentication_request(auth_query(
        request=jws_sign(request_claims(exp=now + 3600), client_key)))
    error = refused_object(op, jws_sign(request_claims(exp=now + 3601), client_key))
    assert "lives too long" in str(error)
    error = refused_object(op, jws_sign(request_claims(exp=now), client_key))
    assert "expired" in str(error)
    longer = ro_op(max_request_object_lifetime=86400)
    assert longer.parse_authentication_request(auth_query(
        request=jws_sign(request_claims(exp=now + 7200), client_key)))


def test_rfc9101_10_8_request_object_jti_single_use(ro_op: Callable[..., Provider],
                                                    client_key: SigningKey) -> None:
    op = ro_op()
    request_object = jws_sign(request_claims(jti="object-1"), client_key)
    assert op.parse_authentication_request(auth_query(request=request_object))
    error = refused_object(op, request_object)
    assert "already used" in str(error)
    # another jti, or the same jti of another client, is another object
    assert op.parse_authentication_request(auth_query(
        request=jws_sign(request_claims(jti="object-2"), client_key)))
    # the record is keyed by a digest: no client-chosen text in storage keys
    keys = list(op.client_assertion_verifier.replay_store.keys())
    assert any(key.startswith("request_object_jti:") for key in keys)
    assert not any("object-1" in key for key in keys)


def test_rfc9101_10_8_client_assertion_refused_as_request_object(
        ro_op: Callable[..., Provider], client_key: SigningKey) -> None:
    """A client assertion (iss = sub = client_id, RFC 7523 3) is no request object, even
    when it names the issuer and carries request parameters."""
    op = ro_op()
    error = refused_object(op, jws_sign(request_claims(sub=CLIENT_ID, jti="a1"), client_key))
    assert "client assertion" in str(error)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_rfc7519_2_non_finite_numeric_date_in_request_object_refused(
        ro_op: Callable[..., Provider], client_key: SigningKey, name: str, value: str) -> None:
    op = ro_op()
    claims = request_claims()
    claims[name] = "placeholder"
    payload = json.dumps(claims).replace('"placeholder"', value)
    signing_input = client_key.header_segment() + "." + b64url_encode(payload.encode())
    request_object = signing_input + "." + b64url_encode(
        client_key.sign(signing_input.encode("ascii")))
    error = refused_object(op, request_object)
    assert name in str(error)


def test_rfc7515_4_1_4_request_object_kid_selects_the_key(
        make_op: Callable[..., Provider], client_key: SigningKey,
        monkeypatch: pytest.MonkeyPatch) -> None:
    others = [SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                         "RS256", f"other-{i}") for i in range(3)]
    clients = security_clients()
    clients[CLIENT_ID]["jwks"] = {"keys": [k.to_jwk() for k in others] + [client_key.to_jwk()]}
    op = make_op(config=security_configuration(request_parameter_supported=True),
                 client_db=clients)
    calls: list[Any] = []
    verify = VerificationKey.verify

    def counting(key: Any, signing_input: bytes, signature: bytes) -> bool:
        calls.append(key.kid)
        return verify(key, signing_input, signature)

    monkeypatch.setattr(VerificationKey, "verify", counting)
    assert op.parse_authentication_request(auth_query(
        request=jws_sign(request_claims(), client_key)))
    assert calls == ["client-key"]
