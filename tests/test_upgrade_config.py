"""Upgrade safety of the configuration: discovery, keys and registration as pyop 3.5 had them.

The expected values in ``tests/compat/data/discovery_pyop3.json`` and
``tests/compat/data/registration_pyop3.json`` were produced by pyop 3.5.0 (and SATOSA 8.6's
OpenID Connect frontend); ``tests/compat/make_discovery_golden.py`` and
``tests/compat/make_registration_golden.py`` regenerate them. The JWKS and ID token header
are compared with pyop 3.5.0's, run live, by ``tests/compat/test_keys_live.py``. Every
expected difference is one listed in docs/migrating.rst, with its reason.
"""

from __future__ import annotations

import base64
import copy
import inspect
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from compat.discovery_differences import comparable

from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidClientRegistrationRequest
from pyop.message import RegistrationRequest
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

COMPAT = Path(__file__).resolve().parent / "compat"
DISCOVERY = json.loads((COMPAT / "data" / "discovery_pyop3.json").read_text(encoding="utf-8"))
REGISTRATION = json.loads(
    (COMPAT / "data" / "registration_pyop3.json").read_text(encoding="utf-8"))


def build(signing_key: Any, configuration: dict[str, Any], **kwargs: Any) -> Provider:
    return Provider(signing_key, copy.deepcopy(configuration),
                    AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), {},
                    Userinfo({}), **kwargs)


# -- discovery -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", DISCOVERY["cases"], ids=lambda case: case["name"])
def test_discovery_document_is_pyop3s(case: dict[str, Any], jwkest_signing_key: Any) -> None:
    provider = build(jwkest_signing_key, case["configuration"],
                     extra_scopes=copy.deepcopy(case["extra_scopes"]))
    for name, value in case["updated_after_construction"].items():  # as SATOSA does
        provider.configuration_information[name] = value
    # the differences the differential test accepts too (and no other)
    expected, ours = comparable(case["discovery"], provider.provider_configuration.to_dict())
    assert ours == expected


def test_pyop3_defaults_request_uri_true_is_the_only_value_changed() -> None:
    """The golden data covers the exception: oic defaults it to true."""
    values = [case["discovery"]["request_uri_parameter_supported"]
              for case in DISCOVERY["cases"]]
    assert True in values and False in values


def test_scopes_supported_keeps_the_given_order(jwkest_signing_key: Any) -> None:
    case = next(c for c in DISCOVERY["cases"] if c["name"] == "configured_scopes_extra_scopes")
    provider = build(jwkest_signing_key, case["configuration"],
                     extra_scopes=case["extra_scopes"])
    assert provider.provider_configuration["scopes_supported"] == [
        "openid", "email", "eduperson"]


# -- registration ----------------------------------------------------------------------------

#: What this library registers beyond pyop 3's answer, per case (docs/migrating.rst):
#: grant_types derived from the response types when the client sent none, and narrowed to
#: the supported ones (RFC 7591 3.2.1: the response holds every registered value).
GRANT_TYPES = {
    "minimal": ["authorization_code"],
    "full_metadata": ["authorization_code"],
    "response_types_narrowed": ["authorization_code", "implicit"],
    "response_types_all_supported": ["authorization_code", "implicit"],
    "default_acr_values_narrowed": ["authorization_code"],
    "grant_types_partly_supported": ["authorization_code"],
}


def normalise(response: dict[str, Any]) -> dict[str, Any]:
    """As the golden script does: random members by type name, set-like lists sorted."""
    result = dict(response)
    for name in ("client_id", "client_secret", "client_id_issued_at",
                 "registration_access_token", "registration_client_uri"):
        if name in result:
            result[name] = type(result[name]).__name__
    for name in ("response_types", "default_acr_values"):
        if isinstance(result.get(name), list):
            result[name] = sorted(" ".join(sorted(value.split())) for value in result[name])
    return result


@pytest.mark.parametrize("case", REGISTRATION["cases"], ids=lambda case: case["name"])
def test_registration_answer_is_pyop3s(case: dict[str, Any], jwkest_signing_key: Any) -> None:
    provider = build(jwkest_signing_key, REGISTRATION["configuration"])
    if "error" in case:
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            provider.handle_client_registration_request(json.dumps(case["request"]))
        # pyop 3 answered invalid_request; RFC 7591 3.2.2 names invalid_client_metadata
        assert case["error"] == "invalid_request"
        assert info.value.oauth_error == "invalid_client_metadata"
        return
    ours = normalise(
        provider.handle_client_registration_request(json.dumps(case["request"])).to_dict())
    expected = dict(case["response"])
    # defaults applied are registered metadata, returned (RFC 7591 3.2.1)
    expected.setdefault("token_endpoint_auth_method", "client_secret_basic")
    expected["grant_types"] = GRANT_TYPES[case["name"]]
    # RFC 7592 client configuration endpoint, with a registration_endpoint configured
    expected.update(registration_access_token="str", registration_client_uri="str")
    assert ours == expected


def test_narrowed_values_keep_the_clients_spelling_and_order(jwkest_signing_key: Any) -> None:
    provider = build(jwkest_signing_key, REGISTRATION["configuration"])
    response = provider.handle_client_registration_request(
        {"redirect_uris": ["https://rp.example.com/cb"],
         "response_types": ["token id_token", "id_token", "code"],
         "default_acr_values": ["urn:other", "urn:example:loa:2", "urn:example:loa:1"]})
    assert response["response_types"] == ["token id_token", "code"]
    assert response["default_acr_values"] == ["urn:example:loa:2", "urn:example:loa:1"]
    stored = provider.clients[response["client_id"]]
    assert stored["response_types"] == ["token id_token", "code"]


def test_strict_client_preferences_refuses_what_pyop3_dropped(jwkest_signing_key: Any) -> None:
    provider = build(jwkest_signing_key, REGISTRATION["configuration"],
                     strict_client_preferences=True)
    with pytest.raises(InvalidClientRegistrationRequest, match="response_types: not supported"):
        provider.handle_client_registration_request(
            {"redirect_uris": ["https://rp.example.com/cb"], "response_types": ["code", "token"]})


def test_match_client_preferences_with_provider_capabilities(jwkest_signing_key: Any) -> None:
    provider = build(jwkest_signing_key, REGISTRATION["configuration"])
    signature = inspect.signature(provider.match_client_preferences_with_provider_capabilities)
    assert list(signature.parameters) == ["client_preferences"]  # pyop 3's signature
    request = RegistrationRequest(
        redirect_uris=["https://rp.example.com/cb"], client_name="RP",
        response_types=["code", "token id_token", "id_token"],
        default_acr_values=["urn:example:loa:2", "urn:other"])
    matched = provider.match_client_preferences_with_provider_capabilities(request)
    golden = {case["name"]: case for case in REGISTRATION["cases"]}
    # the values pyop 3 kept for the same preferences
    assert normalise(matched)["response_types"] == golden["response_types_narrowed"][
        "response"]["response_types"]
    assert matched["default_acr_values"] == golden["default_acr_values_narrowed"][
        "response"]["default_acr_values"]
    assert matched["client_name"] == "RP" and matched["redirect_uris"] == [
        "https://rp.example.com/cb"]
    assert request["response_types"] == ["code", "token id_token", "id_token"]  # unchanged
    # a plain mapping is accepted too; no acr_values_supported: nothing to narrow by
    other = build(jwkest_signing_key, {
        name: value for name, value in REGISTRATION["configuration"].items()
        if name != "acr_values_supported"})
    assert other.match_client_preferences_with_provider_capabilities(
        {"default_acr_values": ["urn:x"]}) == {"default_acr_values": ["urn:x"]}


# -- open registration admits only what the configuration offers -----------------------------


@pytest.mark.parametrize("method", ["none", "private_key_jwt", "client_secret_jwt",
                                    "client_secret_post"])
def test_open_registration_refuses_methods_not_configured(jwkest_signing_key: Any,
                                                          method: str) -> None:
    configuration = {key: value for key, value in REGISTRATION["configuration"].items()
                     if key != "token_endpoint_auth_methods_supported"}
    provider = build(jwkest_signing_key, configuration)
    body: dict[str, Any] = {"redirect_uris": ["https://rp.example.com/cb"],
                            "token_endpoint_auth_method": method}
    if method == "private_key_jwt":
        body["jwks_uri"] = "https://rp.example.com/jwks"
    with pytest.raises(InvalidClientRegistrationRequest, match="token_endpoint_auth_method"):
        provider.handle_client_registration_request(body)
    assert not provider.clients
    provider = build(jwkest_signing_key, {
        **configuration, "token_endpoint_auth_methods_supported": ["client_secret_basic", method]})
    assert provider.handle_client_registration_request(body)["token_endpoint_auth_method"] == method


def test_unadvertised_assertion_methods_are_refused_at_the_token_endpoint(
        jwkest_signing_key: Any) -> None:
    from pyop.exceptions import InvalidClientAuthentication

    provider = build(jwkest_signing_key, REGISTRATION["configuration"])
    provider.clients["jwt"] = {"client_id": "jwt", "client_secret": "s" * 64,
                               "redirect_uris": ["https://rp.example.com/cb"],
                               "token_endpoint_auth_method": "client_secret_jwt"}
    assert provider.client_assertion_signing_algs == []
    body = ("grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Frp.example.com%2Fcb"
            "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3A"
            "jwt-bearer&client_assertion=e30.e30.x")
    with pytest.raises(InvalidClientAuthentication, match="alg"):
        provider.handle_token_request(body)


# -- registration errors name the member and the rule ----------------------------------------


@pytest.mark.parametrize("members,message", [
    ({"initiate_login_uri": "http://rp.example.com/login"},
     "initiate_login_uri: must be an https URL"),
    ({"id_token_encrypted_response_enc": "A128CBC-HS256"},
     "id_token_encrypted_response_enc: needs id_token_encrypted_response_alg"),
    ({"token_endpoint_auth_method": "client_secret_basic",
      "token_endpoint_auth_signing_alg": "none"},
     "token_endpoint_auth_signing_alg: must not be none"),
    ({"redirect_uris": [5]}, "redirect_uris: must be an array of strings"),
    ({"contacts": [1, 2]}, "contacts: must be an array of strings"),
    ({"client_name": 5}, "client_name: must be a string"),
    ({"logo_uri": ["https://a.example", "https://b.example"]}, "logo_uri: must be a single string"),
    ({"default_max_age": "one hour"}, "default_max_age: must be a number"),
    ({"require_auth_time": "yes"}, "require_auth_time: must be a boolean"),
    ({"application_type": "desktop"}, "application_type: 'desktop' is not one of native, web"),
    ({"jwks": {"keys": "none"}}, "jwks must be a JWK Set"),
    ({"jwks": {"keys": [{"kty": "RSA", "n": "x"}]}}, "jwks holds a malformed"),
    ({"redirect_uris": ["rp.example.com/cb"]}, "redirect_uris must be absolute URIs"),
    ({"redirect_uris": ["http://rp.example.com/cb"]}, "http redirect_uris are allowed for"),
    ({"response_types": ["token"]}, "response_types: none of the values is supported"),
])
def test_registration_errors_name_the_member_and_the_rule(
        jwkest_signing_key: Any, members: dict[str, Any], message: str) -> None:
    provider = build(jwkest_signing_key, REGISTRATION["configuration"])
    body = {"redirect_uris": ["https://rp.example.com/cb"], **members}
    with pytest.raises(InvalidClientRegistrationRequest) as info:
        provider.handle_client_registration_request(json.dumps(body))
    assert str(info.value).startswith(message), str(info.value)
    assert "AssertionError" not in str(info.value)
    assert info.value.oauth_error in ("invalid_client_metadata", "invalid_redirect_uri")
    assert not provider.clients


def test_missing_required_member_is_named(jwkest_signing_key: Any) -> None:
    from oic.oauth2.message import MissingRequiredAttribute

    from pyop.registration import describe_invalid_metadata

    assert describe_invalid_metadata({}, MissingRequiredAttribute("redirect_uris")) == (
        "redirect_uris: required")


# -- keys: the JWKS and ID token header pyop 3 produced, verifiable with kid matching --------

_PYOP3_SCRIPT = r"""
import base64, json, sys
from jwkest.jwk import RSAKey, rsa_load
from pyop.authz_state import AuthorizationState
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

pem, variants = sys.argv[1], json.loads(sys.argv[2])
out = {}
for name, kwargs in variants.items():
    key = RSAKey(key=rsa_load(pem), **kwargs)
    config = {"issuer": "https://op.example.com",
              "authorization_endpoint": "https://op.example.com/authorization",
              "jwks_uri": "https://op.example.com/jwks", "response_types_supported": ["id_token"],
              "subject_types_supported": ["public"]}
    clients = {"rp": {"redirect_uris": ["https://rp.example.com/cb"],
                      "response_types": ["id_token"]}}
    provider = Provider(key, config, AuthorizationState(HashBasedSubjectIdentifierFactory("s")),
                        clients, Userinfo({"alice": {}}))
    request = provider.parse_authentication_request(
        "response_type=id_token&client_id=rp&redirect_uri=https%3A%2F%2Frp.example.com%2Fcb"
        "&scope=openid&nonce=n")
    id_token = provider.authorize(request, "alice")["id_token"]
    header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
    out[name] = {"jwks": provider.jwks, "header": header}
print(json.dumps(out))
"""

#: Keys as pyop 3 deployments give them: the README's, SATOSA's (``kid=""`` unless
#: ``signing_key_id`` is set), with a kid, and a bare key.
KEY_VARIANTS: dict[str, dict[str, Any]] = {
    "readme": {"use": "sig", "alg": "RS256"},
    "satosa": {"use": "sig", "alg": "RS256", "kid": ""},
    "with_kid": {"use": "sig", "alg": "RS256", "kid": "key-2024"},
    "bare": {},
}


def our_id_token(signing_key: Any, make_config: Callable[[], dict[str, Any]],
                 **kwargs: Any) -> str:
    clients = {"rp": {"redirect_uris": ["https://rp.example.com/cb"],
                      "response_types": ["id_token"]}}
    provider = Provider(signing_key, make_config(),
                        AuthorizationState(HashBasedSubjectIdentifierFactory("s")), clients,
                        Userinfo({"alice": {}}), **kwargs)
    request = provider.parse_authentication_request(
        "response_type=id_token&client_id=rp&redirect_uri=https%3A%2F%2Frp.example.com%2Fcb"
        "&scope=openid&nonce=n")
    token: str = provider.authorize(request, "alice")["id_token"]
    return token


def header_of(token: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    return result


def key_config() -> dict[str, Any]:
    return {"issuer": "https://op.example.com",
            "authorization_endpoint": "https://op.example.com/authorization",
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"]}


@pytest.mark.parametrize("variant", sorted(KEY_VARIANTS))
def test_id_tokens_verify_with_kid_matching_libraries(signing_key_pem: str,
                                                      variant: str) -> None:
    """An RP that pinned the published key verifies with pyjwkest (kid matching, as oic
    does) and with a joserfc/Authlib key set."""
    from joserfc import jwt
    from joserfc.jwk import KeySet
    from jwkest.jwk import KEYS, RSAKey, rsa_load
    from jwkest.jws import JWS

    key = RSAKey(key=rsa_load(signing_key_pem), **KEY_VARIANTS[variant])
    published = build(key, key_config()).jwks
    token = our_id_token(key, key_config)
    keys = KEYS()
    keys.load_dict(published)
    assert JWS().verify_compact(token, keys._keys)["sub"]
    key_set = KeySet.import_key_set(published)  # type: ignore[arg-type]
    assert jwt.decode(token, key_set, algorithms=["RS256"]).claims["aud"] == ["rp"]


def test_thumbprint_kids_are_opt_in_and_verifiable(signing_key_pem: str) -> None:
    from jwkest.jwk import KEYS, RSAKey, rsa_load
    from jwkest.jws import JWS

    key = RSAKey(key=rsa_load(signing_key_pem), use="sig", alg="RS256")
    published = build(key, key_config(), thumbprint_kids=True).jwks
    (jwk,) = published["keys"]
    assert jwk["kid"] and {k: v for k, v in jwk.items() if k != "kid"} == key.serialize()
    token = our_id_token(key, key_config, thumbprint_kids=True)
    assert header_of(token) == {"alg": "RS256", "kid": jwk["kid"]}
    keys = KEYS()
    keys.load_dict(published)
    assert JWS().verify_compact(token, keys._keys)["aud"] == ["rp"]


def test_several_keys_get_thumbprint_kids(signing_key_pem: str) -> None:
    """OIDC Core 10.1: with several keys in the JWK Set, the header names the key."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwkest.jwk import RSAKey, rsa_load

    from pyop.crypto import jwk_thumbprint

    key = RSAKey(key=rsa_load(signing_key_pem), use="sig", alg="RS256")
    provider = build(key, key_config(), published_keys=[ec.generate_private_key(ec.SECP256R1())])
    jwks = provider.jwks["keys"]
    assert [jwk["kid"] for jwk in jwks] == [jwk_thumbprint(jwk) for jwk in jwks]
    assert jwks[0] == {**key.serialize(), "kid": jwks[0]["kid"]}


# -- the claims parameter: published false by default, honoured as pyop 3 honoured it -------


@pytest.mark.parametrize("configured,published,honoured", [
    (None, False, True),  # pyop 3: oic's default false published, the parameter used
    (True, True, True),
    (False, False, False),
])
def test_claims_parameter(jwkest_signing_key: Any, configured: Any, published: bool,
                          honoured: bool) -> None:
    configuration = {**key_config(), "response_types_supported": ["code"],
                     "token_endpoint": "https://op.example.com/token"}
    if configured is not None:
        configuration["claims_parameter_supported"] = configured
    provider = build(jwkest_signing_key, configuration)
    provider.clients = {"rp": {"redirect_uris": ["https://rp.example.com/cb"],
                               "response_types": ["code"]}}
    assert provider.provider_configuration["claims_parameter_supported"] is published
    request = provider.parse_authentication_request(
        "response_type=code&client_id=rp&redirect_uri=https%3A%2F%2Frp.example.com%2Fcb"
        "&scope=openid&claims=" + json.dumps({"userinfo": {"email": None}}))
    assert ("claims" in request) is honoured
