"""The original README (contract/original-README.txt): every snippet works verbatim.

The snippets live in ``support/readme_app.py`` (a host app made of the README's
code, indentation restored); ``support/__init__.py`` maps the README's pseudo
framework onto Flask. Everything is driven over HTTP with Flask's test client.
The two lifetime snippets (``Provider(..., id_token_lifetime=600)`` and
``AuthorizationState(..., authorization_code_lifetime=300, ...)``) are written
out below with the README's own arguments in place of ``...``.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pymongo
import pytest
from jwkest.jwk import load_jwks
from jwkest.jws import JWS
from support import DB_URI, readme_app_context

import pyop.exceptions
from pyop.exceptions import (
    AuthorizationError,
    InvalidAuthenticationRequest,
    InvalidClientRegistrationRequest,
    OAuthError,
    StorageError,
)
from pyop.message import AuthorizationRequest
from pyop.util import should_fragment_encode

ISSUER = "https://example.com"
CLIENT_ID = "readme-client"
CLIENT_SECRET = "readme-client-secret"
REDIRECT_URI = "https://client.example.com/callback"
LOGGED_OUT_URI = "https://client.example.com/logged-out"
USER_ID = "alice"
USER = {
    "name": "Alice Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "nickname": "al",
    "email": "alice@example.com",
}


@pytest.fixture(scope="module")
def readme_module(signing_key_pem: str) -> Iterator[ModuleType]:
    """The README's host app, loaded once per module (loading the README's key is slow)."""
    with readme_app_context(os.path.dirname(signing_key_pem)) as module:
        yield module


@pytest.fixture
def readme(readme_module: ModuleType) -> Iterator[ModuleType]:
    """The README's host app with empty MongoDB collections, a registered client and the user."""
    module = readme_module
    provider = module.provider
    authentication_validators = list(provider.authentication_request_validators)
    registration_validators = list(provider.registration_request_validators)
    pymongo.MongoClient(DB_URI).drop_database("provider")  # mongomock, as the README's db_uri
    module.user_db[USER_ID] = USER
    module.client_db[CLIENT_ID] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        "response_types": ["code", "id_token token"],
        "post_logout_redirect_uris": [LOGGED_OUT_URI],
    }
    yield module
    module.provider = provider
    provider.authentication_request_validators[:] = authentication_validators
    provider.registration_request_validators[:] = registration_validators


@pytest.fixture
def client(readme: ModuleType) -> Any:
    return readme.app.test_client()


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": "Basic " + credentials}


def authn_params(**overrides: str) -> dict[str, str]:
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
              "scope": "openid profile", "state": "state-123", "nonce": "nonce-456"}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def login(client: Any, **overrides: str) -> Any:
    """Authentication request, then the end-user logs in: the authentication response."""
    response = client.get("/authorization?" + urlencode(authn_params(**overrides)))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_data(as_text=True) == "Please log in"
    return client.post("/authentication-done", data={"user_id": USER_ID})


def location(response: Any) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL without query/fragment, query parameters, fragment parameters) of a redirect."""
    parts = urlsplit(response.headers["Location"])
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return (base, {k: v[0] for k, v in parse_qs(parts.query).items()},
            {k: v[0] for k, v in parse_qs(parts.fragment).items()})


def code_flow(client: Any, **overrides: str) -> str:
    response = login(client, **overrides)
    assert response.status_code == 303
    return location(response)[1]["code"]


def exchange(client: Any, code: str, headers: Any = None) -> Any:
    return client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT_URI},
                       headers=basic() if headers is None else headers)


def verify_id_token(client: Any, id_token: str) -> dict[str, Any]:
    """Verify an ID token with the keys published at the provider's jwks_uri."""
    config = client.get("/.well-known/openid-configuration").get_json()
    jwks = client.get(urlsplit(config["jwks_uri"]).path).get_data(as_text=True)
    claims: dict[str, Any] = JWS().verify_compact(id_token, keys=load_jwks(jwks))
    return claims


def hash_of(value: str) -> str:
    import hashlib

    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


# -- configuration and discovery ------------------------------------------------------------


def test_configuration_snippet_stores_state_in_mongodb(readme: ModuleType, client: Any) -> None:
    from pyop.provider import Provider
    from pyop.storage import MongoWrapper

    assert isinstance(readme.provider, Provider)
    assert all(isinstance(db, MongoWrapper) for db in (
        readme.client_db, readme.user_db, readme.authz_state.authorization_codes,
        readme.authz_state.access_tokens, readme.authz_state.refresh_tokens,
        readme.authz_state.subject_identifiers))
    code_flow(client)
    database = pymongo.MongoClient(DB_URI)["provider"]  # mongomock, as the README's db_uri
    assert database["authz_codes"].count_documents({}) == 1
    # the user's pinned public sub and its reverse record (pyop 3 pinned it too)
    assert database["subject_identifiers"].count_documents({}) == 2
    assert database["clients"].count_documents({"_id": CLIENT_ID}) == 1
    assert database["users"].count_documents({"_id": USER_ID}) == 1


def test_provider_configuration_endpoint(readme: ModuleType, client: Any) -> None:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    config = response.get_json()
    assert config["issuer"] == ISSUER
    # the README's configuration has no jwks_uri: the documented default is derived
    assert config["jwks_uri"] == ISSUER + "/jwks"
    # pyop 3's defaults for what it does not configure
    assert config["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert config["version"] == "3.0"
    assert "code_challenge_methods_supported" not in config
    # what the README configured is published unchanged
    for name, value in readme.configuration_information.items():
        assert config[name] == value, name


def test_published_jwks_holds_the_public_signing_key_only(readme: ModuleType,
                                                           client: Any) -> None:
    response = client.get("/jwks")
    assert response.status_code == 200
    keys = response.get_json()["keys"]
    assert len(keys) == 1
    (key,) = keys
    public = readme.signing_key.serialize(private=False)
    assert key["kty"] == "RSA"
    assert (key["n"], key["e"]) == (public["n"], public["e"])
    assert key.get("use", "sig") == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


@pytest.mark.parametrize(("change", "field"), [
    ({"issuer": "http://example.com"}, "issuer"),
    ({"issuer": "https://example.com?tenant=1"}, "issuer"),
    ({"authorization_endpoint": None}, "authorization_endpoint"),
    ({"token_endpoint": None}, "token_endpoint"),
    ({"id_token_signing_alg_values_supported": ["ES256"]},
     "id_token_signing_alg_values_supported"),
    ({"subject_types_supported": ["public", "anonymous"]}, "subject_types_supported"),
])
def test_invalid_configuration_fails_at_construction_naming_the_field(
        readme: ModuleType, change: dict[str, Any], field: str) -> None:
    from pyop.exceptions import InvalidConfiguration
    from pyop.provider import Provider
    from pyop.userinfo import Userinfo

    configuration = dict(readme.configuration_information)
    configuration.update(change)
    configuration = {k: v for k, v in configuration.items() if v is not None}
    with pytest.raises(InvalidConfiguration) as error:
        Provider(readme.signing_key, configuration, readme.authz_state, readme.client_db,
                 Userinfo(readme.user_db))
    assert field in str(error.value)


def test_loopback_http_issuer_is_allowed(readme: ModuleType) -> None:
    from pyop.provider import Provider
    from pyop.userinfo import Userinfo

    configuration = dict(readme.configuration_information, issuer="http://127.0.0.1:8080")
    provider = Provider(readme.signing_key, configuration, readme.authz_state, readme.client_db,
                        Userinfo(readme.user_db))
    assert provider.provider_configuration["issuer"] == "http://127.0.0.1:8080"
    assert provider.provider_configuration["jwks_uri"] == "http://127.0.0.1:8080/jwks"


# -- authentication requests ----------------------------------------------------------------


def test_valid_authentication_request_is_stored_in_the_session(client: Any) -> None:
    response = client.get("/authorization?" + urlencode(authn_params()))
    assert response.status_code == 200
    assert "Location" not in response.headers
    with client.session_transaction() as session:
        stored = session["authn_req"]
    rebuilt = AuthorizationRequest().from_dict(stored)
    assert rebuilt["client_id"] == CLIENT_ID
    assert rebuilt["redirect_uri"] == REDIRECT_URI
    assert rebuilt["response_type"] == ["code"]
    assert rebuilt["scope"] == ["openid", "profile"]
    assert rebuilt["state"] == "state-123"
    assert rebuilt["nonce"] == "nonce-456"


def test_unknown_client_is_not_redirected(client: Any) -> None:
    response = client.get("/authorization?" + urlencode(authn_params(client_id="unknown")))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.get_data(as_text=True).startswith("Something went wrong: ")


def test_unregistered_redirect_uri_is_not_redirected(client: Any) -> None:
    response = client.get("/authorization?" + urlencode(
        authn_params(redirect_uri="https://attacker.example.com/cb")))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.get_data(as_text=True).startswith("Something went wrong: ")


def test_invalid_request_of_a_valid_client_redirects_the_error(client: Any) -> None:
    response = client.get("/authorization?" + urlencode(authn_params(scope="profile")))
    assert response.status_code == 303
    base, query, fragment = location(response)
    assert base == REDIRECT_URI
    assert fragment == {}
    assert query["error"] == "invalid_scope"
    assert query["state"] == "state-123"
    assert query["iss"] == ISSUER
    assert "code" not in query


def test_unsupported_response_type_error_goes_in_the_fragment(client: Any) -> None:
    # 'code id_token' is not in the README's response_types_supported; its
    # responses (errors included) are fragment-encoded (OIDC Core 3.3.2.6)
    response = client.get("/authorization?" + urlencode(
        authn_params(response_type="code id_token")))
    assert response.status_code == 303
    base, query, fragment = location(response)
    assert base == REDIRECT_URI
    assert query == {}
    assert fragment["error"] == "unsupported_response_type"
    assert fragment["state"] == "state-123"


# -- authorize ------------------------------------------------------------------------------


def test_code_flow_response_is_query_encoded(client: Any) -> None:
    response = login(client)
    assert response.status_code == 303
    base, query, fragment = location(response)
    assert base == REDIRECT_URI
    assert fragment == {}
    assert set(query) == {"code", "state", "iss"}
    assert query["state"] == "state-123"
    assert query["iss"] == ISSUER


def test_implicit_id_token_token_response_is_fragment_encoded(readme: ModuleType,
                                                              client: Any) -> None:
    response = login(client, response_type="id_token token")
    assert response.status_code == 303
    base, query, fragment = location(response)
    assert base == REDIRECT_URI
    assert query == {}
    assert fragment["state"] == "state-123"
    assert fragment["token_type"] == "Bearer"
    assert fragment["expires_in"] == "3600"
    claims = verify_id_token(client, fragment["id_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == [CLIENT_ID]
    assert claims["nonce"] == "nonce-456"
    assert claims["at_hash"] == hash_of(fragment["access_token"])
    assert claims["sub"] == readme.authz_state.get_subject_identifier("public", USER_ID)
    userinfo = client.get("/userinfo",
                          headers={"Authorization": "Bearer " + fragment["access_token"]})
    assert userinfo.status_code == 200
    assert userinfo.get_json()["sub"] == claims["sub"]


@pytest.mark.parametrize(("response_type", "extra", "fragment"), [
    ("code", {}, False),
    ("code", {"response_mode": "query"}, False),
    ("code", {"response_mode": "fragment"}, True),
    ("id_token", {}, True),
    ("id_token token", {}, True),
    ("code id_token", {}, True),
    ("code token", {}, True),
    ("code id_token token", {}, True),
])
def test_should_fragment_encode_on_the_stored_dict(response_type: str, extra: dict[str, str],
                                                   fragment: bool) -> None:
    request = AuthorizationRequest(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI,
                                   response_type=response_type, scope="openid", nonce="n",
                                   **extra)
    stored = json.loads(json.dumps(request.to_dict()))  # what a session keeps
    assert should_fragment_encode(stored) is fragment
    assert should_fragment_encode(request) is fragment


def test_should_fragment_encode_on_the_session_of_a_code_request(client: Any) -> None:
    client.get("/authorization?" + urlencode(authn_params()))
    with client.session_transaction() as session:
        stored = session["authn_req"]
    assert should_fragment_encode(stored) is False


def test_claims_request_survives_the_session_round_trip(readme: ModuleType,
                                                         client: Any) -> None:
    claims_request = {"id_token": {"given_name": {"essential": True}},
                      "userinfo": {"family_name": None}}
    code = code_flow(client, scope="openid", claims=json.dumps(claims_request), max_age="60")
    body = exchange(client, code).get_json()
    id_token = verify_id_token(client, body["id_token"])
    assert id_token["given_name"] == "Alice"
    assert "family_name" not in id_token and "name" not in id_token
    userinfo = client.get("/userinfo",
                          headers={"Authorization": "Bearer " + body["access_token"]})
    assert userinfo.get_json() == {
        "sub": readme.authz_state.get_subject_identifier("public", USER_ID),
        "family_name": "Liddell"}


@pytest.mark.parametrize("params", [
    {"max_age": "300"},
    {"claims": json.dumps({"id_token": {"auth_time": {"essential": True}}})},
])
def test_id_token_has_auth_time_when_max_age_or_essential_auth_time(
        client: Any, params: dict[str, str]) -> None:
    # OIDC Core 2 / 3.1.2.1: "When max_age is used [or auth_time is requested as an
    # Essential Claim], the ID Token returned MUST include an auth_time Claim Value".
    # The README's authorize(authn_req, user_id) passes no auth_time: the end-user
    # has just authenticated, so the provider must still include one.
    import time

    before = int(time.time())
    body = exchange(client, code_flow(client, **params)).get_json()
    claims = verify_id_token(client, body["id_token"])
    assert "auth_time" in claims
    assert before - 5 <= claims["auth_time"] <= int(time.time()) + 5


# -- token endpoint -------------------------------------------------------------------------


def test_code_exchange(readme: ModuleType, client: Any) -> None:
    code = code_flow(client)
    response = exchange(client, code)
    assert response.status_code == 200
    assert response.content_type == "application/json"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid profile"
    assert "refresh_token" not in body  # README: refresh tokens are not issued by default
    claims = verify_id_token(client, body["id_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == [CLIENT_ID]
    assert claims["nonce"] == "nonce-456"
    assert claims["at_hash"] == hash_of(body["access_token"])
    assert claims["sub"] == readme.authz_state.get_subject_identifier("public", USER_ID)


def test_code_exchange_with_a_wrong_secret_is_401_basic(client: Any) -> None:
    code = code_flow(client)
    response = exchange(client, code, headers=basic(secret="wrong"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Basic"
    assert response.get_json()["error"] == "invalid_client"
    # the code is still good for the real client
    assert exchange(client, code).status_code == 200


def test_code_exchange_without_client_authentication_is_401(client: Any) -> None:
    code = code_flow(client)
    response = exchange(client, code, headers={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Basic"
    assert response.get_json()["error"] == "invalid_client"


def test_replayed_code_is_invalid_grant_and_revokes_its_tokens(client: Any) -> None:
    code = code_flow(client)
    first = exchange(client, code)
    assert first.status_code == 200
    access_token = first.get_json()["access_token"]
    replay = exchange(client, code)
    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant"
    # RFC 6749 4.1.2: tokens issued from a replayed code are revoked
    userinfo = client.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
    assert userinfo.status_code == 401


def test_token_request_with_an_unknown_grant_type(client: Any) -> None:
    response = client.post("/token", data={"grant_type": "password", "username": "alice"},
                           headers=basic())
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


# -- userinfo endpoint ----------------------------------------------------------------------


def test_userinfo_with_a_bearer_header(readme: ModuleType, client: Any) -> None:
    access_token = exchange(client, code_flow(client)).get_json()["access_token"]
    response = client.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
    assert response.status_code == 200
    assert response.content_type == "application/json"
    # the profile scope's claims; as in pyop 3, claims_supported does not filter them
    # (Provider(limit_claims_to_claims_supported=True) would drop the nickname)
    assert response.get_json() == {
        "sub": readme.authz_state.get_subject_identifier("public", USER_ID),
        "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
        "nickname": "al"}


def test_userinfo_with_the_token_in_a_form_body(client: Any) -> None:
    access_token = exchange(client, code_flow(client)).get_json()["access_token"]
    response = client.post("/userinfo", data={"access_token": access_token})
    assert response.status_code == 200
    assert response.get_json()["name"] == "Alice Liddell"


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer not-a-token"},
    {},
    {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()},
])
def test_userinfo_with_a_bad_token_is_401_bearer(client: Any, headers: dict[str, str]) -> None:
    response = client.get("/userinfo", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json()["error"] == "invalid_token"


# -- registration endpoint ------------------------------------------------------------------


def test_registration_then_code_flow_with_the_issued_credentials(client: Any) -> None:
    redirect_uri = "https://registered.example.com/cb"
    response = client.post("/registration", data=json.dumps({
        "redirect_uris": [redirect_uri], "response_types": ["code"]}),
        content_type="application/json")
    assert response.status_code == 201
    assert response.content_type == "application/json"
    registered = response.get_json()
    assert registered["redirect_uris"] == [redirect_uri]
    assert registered["client_id"] and registered["client_secret"]
    assert registered["client_secret_expires_at"] == 0

    code = code_flow(client, client_id=registered["client_id"], redirect_uri=redirect_uri)
    token = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                        "redirect_uri": redirect_uri},
                        headers=basic(registered["client_id"], registered["client_secret"]))
    assert token.status_code == 200
    claims = verify_id_token(client, token.get_json()["id_token"])
    assert claims["aud"] == [registered["client_id"]]


def test_registered_pairwise_client_gets_a_pairwise_sub(readme: ModuleType,
                                                         client: Any) -> None:
    redirect_uri = "https://pairwise.example.com/cb"
    registered = client.post("/registration", data=json.dumps({
        "redirect_uris": [redirect_uri], "subject_type": "pairwise"}),
        content_type="application/json").get_json()
    code = code_flow(client, client_id=registered["client_id"], redirect_uri=redirect_uri)
    body = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": redirect_uri},
                       headers=basic(registered["client_id"], registered["client_secret"])
                       ).get_json()
    sub = verify_id_token(client, body["id_token"])["sub"]
    assert sub == readme.authz_state.get_subject_identifier(
        "pairwise", USER_ID, "pairwise.example.com")
    assert sub != readme.authz_state.get_subject_identifier("public", USER_ID)
    userinfo = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert userinfo.get_json()["sub"] == sub


@pytest.mark.parametrize(("body", "error"), [
    # missing redirect_uris: OIDC Registration 3.3 allows either code
    (json.dumps({"response_types": ["code"]}), "invalid_redirect_uri invalid_client_metadata"),
    (json.dumps({"redirect_uris": ["https://client.example.com/cb#fragment"]}),
     "invalid_redirect_uri"),
    (json.dumps({"redirect_uris": ["https://client.example.com/cb"],
                 "response_types": ["code id_token"]}), "invalid_client_metadata"),
    ("this is not JSON", "invalid_request"),
    (json.dumps(["https://client.example.com/cb"]), "invalid_request"),
])
def test_invalid_registration_is_400_with_an_error_object(client: Any, body: str,
                                                          error: str) -> None:
    response = client.post("/registration", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.content_type == "application/json"
    assert response.get_json()["error"] in error.split()
    assert response.get_json()["error_description"]


# -- custom validators ----------------------------------------------------------------------


def test_nonce_validator_snippet(readme: ModuleType, client: Any) -> None:
    # before the README's validator is installed, nonce is optional for code
    assert client.get("/authorization?" + urlencode(
        authn_params(nonce=None))).status_code == 200
    readme.enable_nonce_validator()
    response = client.get("/authorization?" + urlencode(authn_params(nonce=None)))
    assert response.status_code == 303
    base, query, fragment = location(response)
    assert base == REDIRECT_URI
    assert query["error"] == "invalid_request"
    assert query["error_description"] == "The request does not contain a nonce"
    assert query["state"] == "state-123"
    assert login(client).status_code == 303  # with a nonce


def test_software_statement_validator_snippet(readme: ModuleType, client: Any) -> None:
    readme.enable_software_statement_validator()
    metadata = {"redirect_uris": ["https://registered.example.com/cb"]}
    response = client.post("/registration", data=json.dumps(metadata),
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": "The request does not contain a software_statement"}
    metadata["software_statement"] = "eyJhbGciOiJub25lIn0.eyJzb2Z0d2FyZV9pZCI6IngifQ."
    response = client.post("/registration", data=json.dumps(metadata),
                           content_type="application/json")
    assert response.status_code == 201


# -- RP-initiated logout --------------------------------------------------------------------


def id_token_for(client: Any) -> str:
    id_token: str = exchange(client, code_flow(client)).get_json()["id_token"]
    return id_token


def test_logout_redirects_to_a_registered_post_logout_redirect_uri(client: Any) -> None:
    hint = id_token_for(client)
    response = client.get("/logout?" + urlencode({
        "id_token_hint": hint, "post_logout_redirect_uri": LOGGED_OUT_URI, "state": "bye"}))
    assert response.status_code == 303
    assert response.headers["Location"] == LOGGED_OUT_URI + "?state=bye"


def test_logout_to_an_unregistered_uri_does_not_redirect(client: Any) -> None:
    hint = id_token_for(client)
    response = client.get("/logout?" + urlencode({
        "id_token_hint": hint, "post_logout_redirect_uri": "https://attacker.example.com/",
        "state": "bye"}))
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert response.get_data(as_text=True) == "Logout successful!"


def test_logout_without_redirect_uri(client: Any) -> None:
    response = client.get("/logout?" + urlencode({"id_token_hint": id_token_for(client)}))
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Logout successful!"


@pytest.mark.parametrize("query", [
    {"id_token_hint": "garbage", "post_logout_redirect_uri": LOGGED_OUT_URI},
    {"id_token_hint": "a.b.c"},
    {},
])
def test_logout_with_a_bad_or_no_hint_is_unsuccessful(client: Any, query: dict[str, str]
                                                      ) -> None:
    response = client.get("/logout?" + urlencode(query))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.get_data(as_text=True) == "Logout unsuccessful!"


def test_logout_with_a_hint_signed_by_another_key_is_unsuccessful(client: Any) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    header, payload, _ = id_token_for(client).split(".")
    other_key = rsa.generate_private_key(65537, 2048)
    signature = other_key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(),
                               hashes.SHA256())
    forged = "{}.{}.{}".format(header, payload,
                               base64.urlsafe_b64encode(signature).decode().rstrip("="))
    response = client.get("/logout?" + urlencode({
        "id_token_hint": forged, "post_logout_redirect_uri": LOGGED_OUT_URI}))
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "Logout unsuccessful!"


# -- lifetimes ------------------------------------------------------------------------------


def unverified_claims(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload)
                                                                                  % 4)))
    return claims


def implicit_request() -> AuthorizationRequest:
    return AuthorizationRequest(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI,
                                response_type="id_token token", scope="openid", nonce="n")


def test_id_token_lifetime_defaults_to_one_hour(readme: ModuleType) -> None:
    response = readme.provider.authorize(implicit_request(), USER_ID)
    claims = unverified_claims(response["id_token"])
    assert claims["exp"] - claims["iat"] == 3600


def test_id_token_lifetime_snippet(readme: ModuleType) -> None:
    from pyop.provider import Provider
    from pyop.userinfo import Userinfo

    signing_key, configuration_information = readme.signing_key, readme.configuration_information
    authz_state, client_db, user_db = readme.authz_state, readme.client_db, readme.user_db

    provider = Provider(signing_key, configuration_information, authz_state, client_db,
                        Userinfo(user_db), id_token_lifetime=600)

    response = provider.authorize(implicit_request(), USER_ID)
    claims = unverified_claims(response["id_token"])
    assert claims["exp"] - claims["iat"] == 600


def test_default_code_and_token_lifetimes(readme: ModuleType, client: Any) -> None:
    code = code_flow(client)
    record = readme.authz_state.get_authorization_code(code)
    assert record["exp"] - record["iat"] == 600
    body = exchange(client, code).get_json()
    assert body["expires_in"] == 3600
    token = readme.authz_state.get_access_token(body["access_token"])
    assert token["exp"] - token["iat"] == 3600
    assert "refresh_token" not in body


def test_authorization_state_lifetimes_snippet(readme: ModuleType, client: Any) -> None:
    from pyop.authz_state import AuthorizationState
    from pyop.provider import Provider
    from pyop.storage import MongoWrapper
    from pyop.userinfo import Userinfo

    db_uri, subject_id_factory = readme.db_uri, readme.subject_id_factory
    signing_key, configuration_information = readme.signing_key, readme.configuration_information
    client_db, user_db = readme.client_db, readme.user_db

    authz_state = AuthorizationState(subject_id_factory,
                                     MongoWrapper(db_uri, 'provider', 'authz_codes'),
                                     MongoWrapper(db_uri, 'provider', 'access_tokens'),
                                     MongoWrapper(db_uri, 'provider', 'refresh_tokens'),
                                     MongoWrapper(db_uri, 'provider', 'subject_identifiers'),
                                     authorization_code_lifetime=300,
                                     access_token_lifetime=60*60*24,
                                     refresh_token_lifetime=60*60*24*365,
                                     refresh_token_threshold=None)
    provider = Provider(signing_key, configuration_information, authz_state, client_db,
                        Userinfo(user_db))
    readme.provider = provider  # the README's routes now serve this provider

    code = code_flow(client)
    record = authz_state.get_authorization_code(code)
    assert record["exp"] - record["iat"] == 300
    body = exchange(client, code).get_json()
    assert body["expires_in"] == 60 * 60 * 24
    access = authz_state.get_access_token(body["access_token"])
    assert access["exp"] - access["iat"] == 60 * 60 * 24
    # refresh_token_lifetime > 0: refresh tokens are issued
    refresh = authz_state.refresh_tokens[body["refresh_token"]]
    assert refresh["exp"] - refresh["iat"] == 60 * 60 * 24 * 365
    refreshed = client.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": body["refresh_token"]},
                            headers=basic())
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    new_body = refreshed.get_json()
    assert new_body["access_token"] != body["access_token"]
    assert new_body["expires_in"] == 60 * 60 * 24
    # threshold None: the refresh token is not rotated
    assert new_body.get("refresh_token", body["refresh_token"]) == body["refresh_token"]


# -- exceptions -----------------------------------------------------------------------------


def test_all_exceptions_but_authorization_and_storage_errors_are_value_errors() -> None:
    classes = [getattr(pyop.exceptions, name) for name in pyop.exceptions.__all__]
    assert all(inspect.isclass(cls) and issubclass(cls, Exception) for cls in classes)
    for cls in classes:
        if cls in (AuthorizationError, StorageError):
            assert not issubclass(cls, ValueError), cls
        else:
            assert issubclass(cls, ValueError), cls


def test_oauth_errors_carry_their_code_and_description() -> None:
    oauth_errors = [getattr(pyop.exceptions, name) for name in pyop.exceptions.__all__
                    if issubclass(getattr(pyop.exceptions, name), OAuthError)]
    assert len(oauth_errors) >= 15
    for cls in oauth_errors:
        if issubclass(cls, (InvalidAuthenticationRequest, InvalidClientRegistrationRequest)):
            error = cls("the description", {}, oauth_error="invalid_request")
        else:
            error = cls("the description", oauth_error="invalid_request")
        assert error.oauth_error == "invalid_request", cls
        assert str(error) == "the description", cls
        default = cls("d", {}) if issubclass(
            cls, (InvalidAuthenticationRequest, InvalidClientRegistrationRequest)) else cls("d")
        assert isinstance(default.oauth_error, str) and default.oauth_error, cls


def test_readme_authentication_error_carries_the_readme_values() -> None:
    request = {"redirect_uri": REDIRECT_URI, "state": "s", "response_type": "code"}
    error = InvalidAuthenticationRequest("The request does not contain a nonce", request,
                                         oauth_error="invalid_request")
    assert isinstance(error, ValueError)
    assert error.oauth_error == "invalid_request"
    assert str(error) == "The request does not contain a nonce"
