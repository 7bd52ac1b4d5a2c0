"""SECURITY.md, "Registration": bad client metadata (OIDC Dynamic Registration 1.0, RFC 7591).

Each SECURITY.md line and the tests covering it:

- redirect_uri with a fragment -> invalid_redirect_uri; non-http(s) schemes and plain http
  outside loopback rejected for web clients; native clients may use custom schemes and
  loopback on any port (RFC 8252): ``test_dynreg_2_redirect_uri_with_fragment``,
  ``test_dynreg_2_web_client_redirect_uri_rejected``,
  ``test_dynreg_2_web_client_redirect_uri_accepted``,
  ``test_rfc8252_7_native_client_redirect_uri_accepted``,
  ``test_rfc8252_7_native_client_redirect_uri_rejected``.
- Body not a JSON object -> invalid_client_metadata / invalid_request:
  ``test_dynreg_3_2_body_not_a_json_object``.
- sector_identifier_uri not https, or its array lacks a redirect_uri -> invalid_client_metadata:
  ``test_oidc_core_8_1_sector_identifier_uri_*``.
- token_endpoint_auth_method=none -> no secret; unsupported method -> invalid_client_metadata:
  ``test_dynreg_2_auth_method_none_issues_no_secret``,
  ``test_dynreg_2_unsupported_token_endpoint_auth_method``.
- response_types and grant_types consistent: ``test_dynreg_2_response_and_grant_types_*``.
- Unknown metadata ignored: ``test_rfc7591_2_unknown_metadata_ignored``,
  ``test_rfc7591_2_unknown_metadata_not_registered``.
- Preamble ("nothing but the library's typed errors"):
  ``test_security_md_malformed_metadata_rejected_with_typed_error``.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest

from pyop.exceptions import InvalidClientRegistrationRequest, OAuthError

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    auth_query,
    basic_header,
    full_code_flow,
    refresh,
    security_configuration,
)

WEB_URI = "https://rp.example.com/cb"


def register(provider: Any, body: Any) -> Any:
    return provider.handle_client_registration_request(body)


def registration_error(provider: Any, body: Any) -> InvalidClientRegistrationRequest:
    with pytest.raises(InvalidClientRegistrationRequest) as info:
        register(provider, body)
    error = info.value
    assert error.http_status == 400
    assert error.redirectable is False
    assert json.loads(error.to_json())["error"] == error.oauth_error
    return error


def assert_rejected(provider: Any, body: Any, *oauth_errors: str) -> None:
    clients_before = set(provider.clients)
    error = registration_error(provider, body)
    assert error.oauth_error in oauth_errors, (error.oauth_error, str(error))
    assert set(provider.clients) == clients_before


class FakeFetcher:
    """Stands in for the sector_identifier_uri GET; records the URIs asked for."""

    def __init__(self, document: Any = None, error: Optional[BaseException] = None) -> None:
        self.document = document
        self.error = error
        self.calls: list[str] = []

    def __call__(self, uri: str) -> Any:
        self.calls.append(uri)
        if self.error is not None:
            raise self.error
        return self.document


@pytest.fixture(autouse=True)
def no_network(op: Any) -> FakeFetcher:
    """Registration must never reach the network in these tests."""
    fetcher = FakeFetcher(error=AssertionError("unexpected sector_identifier_uri fetch"))
    op.sector_identifier_fetcher = fetcher
    return fetcher


# -- redirect URIs (OIDC Dynamic Registration 2, RFC 8252 7) -----------------------------------

@pytest.mark.parametrize("uri", [WEB_URI + "#frag", WEB_URI + "#", WEB_URI + "?a=b#c",
                                 "com.example.app:/cb#x"],
                         ids=["fragment", "empty-fragment", "query-and-fragment",
                              "native-fragment"])
def test_dynreg_2_redirect_uri_with_fragment(op: Any, uri: str) -> None:
    native = uri.startswith("com.")
    body = {"redirect_uris": [uri], "application_type": "native" if native else "web"}
    assert_rejected(op, body, "invalid_redirect_uri")


WEB_REJECTED = {
    "custom-scheme": "com.example.app:/cb",
    "custom-scheme-authority": "myapp://cb",
    "javascript": "javascript:alert(document.cookie)",
    "data": "data:text/html,<script>alert(1)</script>",
    "file": "file:///etc/passwd",
    "ftp": "ftp://rp.example.com/cb",
    "vbscript": "vbscript:msgbox",
    "urn-oob": "urn:ietf:wg:oauth:2.0:oob",
    "http-public-host": "http://rp.example.com/cb",
    "http-private-ip": "http://10.0.0.1/cb",
    "http-localhost-suffix-host": "http://localhost.evil.example/cb",
    "http-loopback-lookalike": "http://127.0.0.1.nip.io/cb",
    "relative-path": "/cb",
    "no-scheme": "rp.example.com/cb",
    "scheme-relative": "//rp.example.com/cb",
    "https-without-host": "https:///cb",
    "https-opaque": "https:cb",
    "one-bad-among-good": None,
}


@pytest.mark.parametrize("uri", list(WEB_REJECTED.values()), ids=list(WEB_REJECTED))
def test_dynreg_2_web_client_redirect_uri_rejected(op: Any, uri: Optional[str]) -> None:
    uris = [WEB_URI, "javascript:alert(1)"] if uri is None else [uri]
    assert_rejected(op, {"redirect_uris": uris}, "invalid_redirect_uri")


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080/cb", "http://rp.example.com/cb"],
                         ids=["http-loopback", "http-public-host"])
def test_oidc_core_3_2_2_1_implicit_web_client_needs_https(op: Any, uri: str) -> None:
    body = {"redirect_uris": [uri], "response_types": ["id_token"], "grant_types": ["implicit"]}
    assert_rejected(op, body, "invalid_redirect_uri")


@pytest.mark.parametrize("uri", [WEB_URI, "https://rp.example.com:8443/cb?x=1",
                                 "http://127.0.0.1:8080/cb", "http://localhost/cb",
                                 "http://[::1]:9000/cb"],
                         ids=["https", "https-port-and-query", "http-ipv4-loopback",
                              "http-localhost", "http-ipv6-loopback"])
def test_dynreg_2_web_client_redirect_uri_accepted(op: Any, uri: str) -> None:
    response = register(op, {"redirect_uris": [uri]})
    assert response["redirect_uris"] == [uri]
    assert op.clients[response["client_id"]]["redirect_uris"] == [uri]


@pytest.mark.parametrize("uri", ["com.example.app:/oauth2redirect", "myapp://callback",
                                 "http://127.0.0.1:51234/cb", "http://127.0.0.1/cb",
                                 "http://[::1]:61000/cb", "http://localhost:1234/cb",
                                 "https://app.example.com/cb"],
                         ids=["reverse-domain-scheme", "custom-scheme", "loopback-any-port",
                              "loopback-no-port", "ipv6-loopback", "localhost",
                              "claimed-https"])
def test_rfc8252_7_native_client_redirect_uri_accepted(op: Any, uri: str) -> None:
    response = register(op, {"redirect_uris": [uri], "application_type": "native"})
    assert response["redirect_uris"] == [uri]


@pytest.mark.parametrize("uri", ["javascript:alert(1)", "data:text/html,x", "file:///etc/passwd",
                                 "http://app.example.com/cb", "/cb"],
                         ids=["javascript", "data", "file", "http-public-host", "relative"])
def test_rfc8252_7_native_client_redirect_uri_rejected(op: Any, uri: str) -> None:
    assert_rejected(op, {"redirect_uris": [uri], "application_type": "native"},
                    "invalid_redirect_uri")


@pytest.mark.parametrize("body", [{}, {"redirect_uris": []}, {"client_name": "x"}],
                         ids=["empty-object", "empty-array", "other-metadata-only"])
def test_dynreg_2_redirect_uris_required(op: Any, body: dict[str, Any]) -> None:
    assert_rejected(op, body, "invalid_redirect_uri", "invalid_client_metadata")


@pytest.mark.parametrize("uri", [WEB_URI + "#x", "javascript:alert(1)",
                                 "http://rp.example.com/bye"],
                         ids=["fragment", "javascript", "http-public-host"])
def test_rp_initiated_logout_3_1_bad_post_logout_redirect_uri(op: Any, uri: str) -> None:
    assert_rejected(op, {"redirect_uris": [WEB_URI], "post_logout_redirect_uris": [uri]},
                    "invalid_client_metadata")


# -- body (OIDC Dynamic Registration 3.2) ------------------------------------------------------

NOT_AN_OBJECT = {
    "not-json": "not json",
    "truncated-json": '{"redirect_uris": [',
    "null": "null",
    "empty-list": "[]",
    "list": json.dumps([{"redirect_uris": [WEB_URI]}]),
    "string": '"https://rp.example.com/cb"',
    "number": "42",
    "true": "true",
    "empty": "",
    "whitespace": "   ",
    "invalid-utf8": b'{"redirect_uris": ["\xff"]}',
    "bytes-list": b"[]",
    "none": None,
    "integer-object": 42,
    "python-list": [WEB_URI],
    "deep-nesting": "[" * 30000 + "]" * 30000,
    "nan": '{"redirect_uris": ["' + WEB_URI + '"], "default_max_age": NaN}',
    "1mb": json.dumps({"redirect_uris": [WEB_URI], "client_name": "x" * (1 << 20)}),
}


@pytest.mark.parametrize("body", list(NOT_AN_OBJECT.values()), ids=list(NOT_AN_OBJECT))
def test_dynreg_3_2_body_not_a_json_object(op: Any, body: Any) -> None:
    assert_rejected(op, body, "invalid_client_metadata", "invalid_request")


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_dynreg_3_2_json_object_body_accepted(op: Any, as_bytes: bool) -> None:
    body = json.dumps({"redirect_uris": [WEB_URI]})
    response = register(op, body.encode() if as_bytes else body)
    assert response["client_id"] in op.clients


# -- sector_identifier_uri (OIDC Core 8.1) -----------------------------------------------------

@pytest.mark.parametrize("uri", ["http://rp.example.com/sector.json", "ftp://rp.example.com/s",
                                 "file:///etc/passwd", "https:///sector.json",
                                 "javascript:alert(1)", "/sector.json"],
                         ids=["http", "ftp", "file", "https-without-host", "javascript",
                              "relative"])
def test_oidc_core_8_1_sector_identifier_uri_not_https(op: Any, uri: str) -> None:
    fetcher = FakeFetcher([WEB_URI])
    op.sector_identifier_fetcher = fetcher
    assert_rejected(op, {"redirect_uris": [WEB_URI], "sector_identifier_uri": uri,
                         "subject_type": "pairwise"}, "invalid_client_metadata")
    assert fetcher.calls == []


@pytest.mark.parametrize("document", [
    ["https://other.example.com/cb"],
    [],
    [WEB_URI + "/"],
    [WEB_URI.upper()],
    [WEB_URI + "?x"],
], ids=["other-uri", "empty-array", "trailing-slash", "case", "added-query"])
def test_oidc_core_8_1_sector_identifier_uri_lacks_redirect_uri(op: Any,
                                                                document: list[str]) -> None:
    op.sector_identifier_fetcher = FakeFetcher(document)
    assert_rejected(op, {"redirect_uris": [WEB_URI],
                         "sector_identifier_uri": "https://rp.example.com/sector.json",
                         "subject_type": "pairwise"}, "invalid_client_metadata")


def test_oidc_core_8_1_sector_identifier_uri_lacks_one_of_several(op: Any) -> None:
    op.sector_identifier_fetcher = FakeFetcher([WEB_URI])
    assert_rejected(op, {"redirect_uris": [WEB_URI, "https://rp.example.com/cb2"],
                         "sector_identifier_uri": "https://rp.example.com/sector.json",
                         "subject_type": "pairwise"}, "invalid_client_metadata")


@pytest.mark.parametrize("document", [
    {"redirect_uris": [WEB_URI]}, WEB_URI, None, [1, 2], [[WEB_URI]], 42,
], ids=["object", "string", "null", "numbers", "nested-array", "number"])
def test_oidc_core_8_1_sector_identifier_uri_not_a_json_array(op: Any, document: Any) -> None:
    op.sector_identifier_fetcher = FakeFetcher(document)
    assert_rejected(op, {"redirect_uris": [WEB_URI],
                         "sector_identifier_uri": "https://rp.example.com/sector.json",
                         "subject_type": "pairwise"}, "invalid_client_metadata")


@pytest.mark.parametrize("error", [ConnectionError("down"), ValueError("not json"),
                                   TimeoutError(), OSError("tls")],
                         ids=["connection", "not-json", "timeout", "os-error"])
def test_oidc_core_8_1_sector_identifier_uri_fetch_fails(op: Any, error: Exception) -> None:
    op.sector_identifier_fetcher = FakeFetcher(error=error)
    assert_rejected(op, {"redirect_uris": [WEB_URI],
                         "sector_identifier_uri": "https://rp.example.com/sector.json",
                         "subject_type": "pairwise"}, "invalid_client_metadata")


def test_oidc_core_8_1_sector_identifier_uri_listing_every_redirect_uri_accepted(op: Any
                                                                                  ) -> None:
    uri = "https://rp.example.com/sector.json"
    fetcher = FakeFetcher([WEB_URI, "https://rp.example.com/cb2", "https://other.example/x"])
    op.sector_identifier_fetcher = fetcher
    response = register(op, {"redirect_uris": [WEB_URI, "https://rp.example.com/cb2"],
                             "sector_identifier_uri": uri, "subject_type": "pairwise"})
    assert response["sector_identifier_uri"] == uri
    assert fetcher.calls == [uri]


def test_oidc_core_8_1_pairwise_redirect_uris_on_several_hosts_need_sector(op: Any) -> None:
    assert_rejected(op, {"redirect_uris": [WEB_URI, "https://other.example.com/cb"],
                         "subject_type": "pairwise"}, "invalid_client_metadata")


# -- token_endpoint_auth_method (OIDC Dynamic Registration 2) ----------------------------------

@pytest.mark.parametrize("extra", [{}, {"client_secret": "chosen-by-the-client"},
                                   {"client_secret_expires_at": 0}],
                         ids=["plain", "client-supplied-secret", "client-supplied-expiry"])
def test_dynreg_2_auth_method_none_issues_no_secret(op: Any, extra: dict[str, Any]) -> None:
    response = register(op, {"redirect_uris": [WEB_URI], "token_endpoint_auth_method": "none",
                             **extra})
    assert response["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in response
    assert "client_secret" not in op.clients[response["client_id"]]


def test_dynreg_2_default_auth_method_issues_strong_secret(op: Any) -> None:
    response = register(op, {"redirect_uris": [WEB_URI], "client_secret": "chosen",
                             "client_id": CLIENT_ID, "client_id_issued_at": 1})
    assert response["token_endpoint_auth_method"] == "client_secret_basic"
    assert response["client_secret"] != "chosen"
    assert len(response["client_secret"]) >= 22  # >= 128 bits of base64url
    assert response["client_id"] != CLIENT_ID
    assert response["client_id_issued_at"] > 1
    # the existing client was not overwritten
    assert op.clients[CLIENT_ID]["client_secret"] == CLIENT_SECRET


@pytest.mark.parametrize("method", ["private_key_jwt", "tls_client_auth",
                                    "self_signed_tls_client_auth", "bogus", "NONE",
                                    "client_secret_basic "])
def test_dynreg_2_unsupported_token_endpoint_auth_method(op: Any, method: str) -> None:
    assert_rejected(op, {"redirect_uris": [WEB_URI], "token_endpoint_auth_method": method},
                    "invalid_client_metadata")


def test_dynreg_2_auth_method_not_enabled_by_provider(make_op: Any) -> None:
    provider = make_op(config=security_configuration(
        token_endpoint_auth_methods_supported=["client_secret_basic"]))
    provider.sector_identifier_fetcher = FakeFetcher(error=AssertionError("no fetch"))
    assert_rejected(provider, {"redirect_uris": [WEB_URI],
                               "token_endpoint_auth_method": "client_secret_post"},
                    "invalid_client_metadata")


def test_dynreg_2_registered_auth_method_enforced(op: Any) -> None:
    response = register(op, {"redirect_uris": [WEB_URI],
                             "token_endpoint_auth_method": "client_secret_post"})
    request = op.parse_authentication_request(auth_query(response["client_id"],
                                                         redirect_uri=WEB_URI))
    code = op.authorize(request, "alice")["code"]
    body = f"grant_type=authorization_code&code={code}&redirect_uri={WEB_URI}"
    with pytest.raises(OAuthError) as info:
        op.handle_token_request(body, basic_header(response["client_id"],
                                                   response["client_secret"]))
    assert info.value.oauth_error == "invalid_client"
    assert info.value.http_status == 401


# -- response_types / grant_types (OIDC Dynamic Registration 2) --------------------------------

@pytest.mark.parametrize("response_types,grant_types", [
    (["code"], ["implicit"]),
    (["code"], ["refresh_token"]),
    (["id_token"], ["authorization_code"]),
    (["code id_token"], ["authorization_code"]),
    (["code id_token"], ["implicit"]),
    (["code token"], ["implicit"]),
    (["id_token token"], ["authorization_code", "refresh_token"]),
    (["code", "id_token"], ["authorization_code"]),
])
def test_dynreg_2_response_and_grant_types_inconsistent(op: Any, response_types: list[str],
                                                        grant_types: list[str]) -> None:
    assert_rejected(op, {"redirect_uris": [WEB_URI], "response_types": response_types,
                         "grant_types": grant_types}, "invalid_client_metadata")


@pytest.mark.parametrize("grant_types", [["authorization_code", "password"],
                                         ["authorization_code", "client_credentials"],
                                         ["authorization_code", "bogus"]])
def test_dynreg_2_unsupported_grant_type(op: Any, make_op: Any, grant_types: list[str]) -> None:
    # never registered: dropped by default (as pyop 3), refused when strict
    response = op.handle_client_registration_request(
        {"redirect_uris": [WEB_URI], "grant_types": grant_types})
    assert response["grant_types"] == ["authorization_code"]
    assert op.clients[response["client_id"]]["grant_types"] == ["authorization_code"]
    assert_rejected(make_op(strict_client_preferences=True),
                    {"redirect_uris": [WEB_URI], "grant_types": grant_types},
                    "invalid_client_metadata")
    assert_rejected(op, {"redirect_uris": [WEB_URI], "grant_types": grant_types[1:]},
                    "invalid_client_metadata")


@pytest.mark.parametrize("response_types", [["token"], ["bogus"], ["code", "none"]])
def test_dynreg_2_unsupported_response_type(op: Any, make_op: Any,
                                            response_types: list[str]) -> None:
    strict = make_op(strict_client_preferences=True)
    assert_rejected(strict, {"redirect_uris": [WEB_URI], "response_types": response_types},
                    "invalid_client_metadata")
    supported = [rt for rt in response_types if rt == "code"]
    if not supported:
        assert_rejected(op, {"redirect_uris": [WEB_URI], "response_types": response_types},
                        "invalid_client_metadata")
        return
    response = op.handle_client_registration_request(
        {"redirect_uris": [WEB_URI], "response_types": response_types})
    assert response["response_types"] == supported


@pytest.mark.parametrize("response_types,grant_types", [
    (["code"], ["authorization_code"]),
    (["code"], ["authorization_code", "refresh_token"]),
    (["id_token"], ["implicit"]),
    (["code id_token"], ["authorization_code", "implicit"]),
    (["code id_token token"], ["implicit", "authorization_code", "refresh_token"]),
])
def test_dynreg_2_response_and_grant_types_consistent_accepted(
        op: Any, response_types: list[str], grant_types: list[str]) -> None:
    response = register(op, {"redirect_uris": [WEB_URI], "response_types": response_types,
                             "grant_types": grant_types})
    assert response["response_types"] == response_types
    assert response["grant_types"] == grant_types


@pytest.mark.parametrize("response_types,expected", [
    (["code"], {"authorization_code"}),
    (["id_token"], {"implicit"}),
    (["code id_token"], {"authorization_code", "implicit"}),
])
def test_dynreg_2_response_and_grant_types_default_grants_follow_response_types(
        op: Any, response_types: list[str], expected: set[str]) -> None:
    response = register(op, {"redirect_uris": [WEB_URI], "response_types": response_types})
    assert set(response["grant_types"]) == expected


def test_dynreg_2_response_and_grant_types_enforced_at_authorization(op: Any) -> None:
    client_id = register(op, {"redirect_uris": [WEB_URI], "response_types": ["code"]})[
        "client_id"]
    with pytest.raises(OAuthError) as info:
        op.parse_authentication_request(auth_query(client_id, redirect_uri=WEB_URI,
                                                   response_type="code id_token"))
    assert info.value.oauth_error == "unauthorized_client"


def test_dynreg_2_response_and_grant_types_enforced_at_token_endpoint(op: Any) -> None:
    response = register(op, {"redirect_uris": [WEB_URI], "grant_types": ["authorization_code"]})
    refresh_token = full_code_flow(op)["refresh_token"]
    with pytest.raises(OAuthError) as info:
        op.handle_token_request(
            "grant_type=refresh_token&refresh_token=" + refresh_token,
            basic_header(response["client_id"], response["client_secret"]))
    assert info.value.oauth_error == "unauthorized_client"
    assert refresh(op, refresh_token)["access_token"]  # the owner's grant is untouched


# -- unknown metadata (RFC 7591 2) -------------------------------------------------------------

UNKNOWN_METADATA = {"x_custom": "value", "software_flavour": {"nested": [1, 2]},
                    "allowed_scopes": ["admin"], "is_admin": True}


def test_rfc7591_2_unknown_metadata_ignored(op: Any) -> None:
    response = register(op, {"redirect_uris": [WEB_URI], **UNKNOWN_METADATA})
    client_id = response["client_id"]
    assert response["redirect_uris"] == [WEB_URI]
    request = op.parse_authentication_request(auth_query(client_id, redirect_uri=WEB_URI))
    assert op.authorize(request, "alice")["code"]


def test_rfc7591_2_unknown_metadata_not_registered(op: Any) -> None:
    # "MUST ignore ... for instance, by silently removing unknown metadata from the client's
    # registration record": a host reading its own metadata names (here ``is_admin``,
    # ``allowed_scopes``) from the client record must never find values a client chose
    response = register(op, {"redirect_uris": [WEB_URI], **UNKNOWN_METADATA})
    stored = op.clients[response["client_id"]]
    for name in UNKNOWN_METADATA:
        assert name not in stored
        assert name not in response


# -- preamble: only typed errors ---------------------------------------------------------------

MALFORMED_METADATA: dict[str, dict[str, Any]] = {
    "redirect-uris-number": {"redirect_uris": 1},
    "redirect-uris-object": {"redirect_uris": {"a": WEB_URI}},
    "redirect-uris-null-item": {"redirect_uris": [None]},
    "redirect-uris-nested": {"redirect_uris": [[WEB_URI]]},
    "response-types-number": {"response_types": 5},
    "response-types-number-item": {"response_types": [5]},
    "grant-types-number": {"grant_types": 5},
    "application-type-unknown": {"application_type": "bogus"},
    "application-type-number": {"application_type": 5},
    "subject-type-unknown": {"subject_type": "bogus"},
    "subject-type-number": {"subject_type": 5},
    "auth-method-object": {"token_endpoint_auth_method": {}},
    "post-logout-uris-string": {"post_logout_redirect_uris": "x"},
    "post-logout-uris-number-item": {"post_logout_redirect_uris": [5]},
    "contacts-number": {"contacts": 5},
    "id-token-alg-none": {"id_token_signed_response_alg": "none"},
    "id-token-alg-hs256": {"id_token_signed_response_alg": "HS256"},
    "id-token-alg-number": {"id_token_signed_response_alg": 5},
    "userinfo-alg-unsupported": {"userinfo_signed_response_alg": "ES512"},
    "userinfo-alg-none": {"userinfo_signed_response_alg": "none"},
    "default-max-age-string": {"default_max_age": "x"},
    "require-auth-time-string": {"require_auth_time": "x"},
}


@pytest.mark.parametrize("metadata", list(MALFORMED_METADATA.values()),
                         ids=list(MALFORMED_METADATA))
def test_security_md_malformed_metadata_rejected_with_typed_error(op: Any,
                                                                  metadata: dict[str, Any]
                                                                  ) -> None:
    body = {"redirect_uris": [WEB_URI], **metadata}
    assert_rejected(op, body, "invalid_client_metadata", "invalid_redirect_uri")


# -- userinfo in client URIs (RFC 3986 3.2.1), loopback spellings (OIDC Dynamic Registration 2) --

USERINFO_URIS = {
    "user-at-host": "https://trusted.example@evil.example/cb",
    "user-password-at-host": "https://trusted.example:443@evil.example/cb",
    "empty-userinfo": "https://@evil.example/cb",
    "http-loopback-userinfo": "http://trusted.example@127.0.0.1:8080/cb",
}


@pytest.mark.parametrize("uri", list(USERINFO_URIS.values()), ids=list(USERINFO_URIS))
def test_rfc3986_3_2_1_userinfo_in_redirect_uri_refused(op: Any, uri: str) -> None:
    assert_rejected(op, {"redirect_uris": [uri]}, "invalid_redirect_uri")


def test_rfc3986_3_2_1_userinfo_in_native_redirect_uri_refused(op: Any) -> None:
    assert_rejected(op, {"redirect_uris": ["myapp://trusted.example@evil.example/cb"],
                         "application_type": "native"}, "invalid_redirect_uri")


def test_rfc3986_3_2_1_userinfo_in_post_logout_redirect_uri_refused(op: Any) -> None:
    assert_rejected(op, {"redirect_uris": [WEB_URI], "post_logout_redirect_uris": [
        "https://trusted.example@evil.example/bye"]}, "invalid_client_metadata")


@pytest.mark.parametrize("member", ["client_uri", "logo_uri", "policy_uri", "tos_uri",
                                    "initiate_login_uri", "jwks_uri",
                                    "frontchannel_logout_uri", "backchannel_logout_uri",
                                    "sector_identifier_uri", "request_uris"])
def test_rfc3986_3_2_1_userinfo_in_metadata_uris_refused(op: Any, member: str) -> None:
    uri = "https://trusted.example@evil.example/x"
    body: dict[str, Any] = {"redirect_uris": [WEB_URI],
                            member: [uri] if member == "request_uris" else uri}
    assert_rejected(op, body, "invalid_client_metadata")


LOOPBACK_SPELLINGS = {
    "localhost-trailing-dot": "https://localhost./cb",
    "localhost-upper": "https://LOCALHOST/cb",
    "localhost-subdomain": "https://sub.localhost/cb",
    "localhost-fullwidth": "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/cb",
    "ipv4-short": "https://127.1/cb",
    "ipv4-hex": "https://0x7f000001/cb",
    "ipv4-decimal": "https://2130706433/cb",
    "ipv4-octal": "https://0177.0.0.1/cb",
    "ipv4-other-loopback": "https://127.0.0.2/cb",
    "ipv4-unspecified": "https://0.0.0.0/cb",
    "ipv6-loopback": "https://[::1]/cb",
    "ipv6-mapped": "https://[::ffff:7f00:1]/cb",
    "ipv6-mapped-dotted": "https://[::ffff:127.0.0.1]/cb",
    "localhost-with-port": "https://localhost:8443/cb",
}


@pytest.mark.parametrize("uri", list(LOOPBACK_SPELLINGS.values()), ids=list(LOOPBACK_SPELLINGS))
@pytest.mark.parametrize("response_types", [["id_token"], ["id_token token"],
                                            ["code id_token"]])
def test_dynreg_2_implicit_web_client_loopback_spellings_refused(
        op: Any, uri: str, response_types: list[str]) -> None:
    """Web clients using the implicit grant MUST NOT use localhost (OIDC Dynamic
    Registration 2), in any spelling a browser resolves to this machine."""
    grant_types = ["implicit"] + (["authorization_code"] if "code" in response_types[0] else [])
    assert_rejected(op, {"redirect_uris": [uri], "response_types": response_types,
                         "grant_types": grant_types}, "invalid_redirect_uri")


@pytest.mark.parametrize("uri", ["https://rp.example.com/cb", "https://127.0.0.1.nip.io/cb",
                                 "https://localhost.example/cb", "https://xn--pple-43d.example/cb"])
def test_dynreg_2_implicit_web_client_public_hosts_accepted(op: Any, uri: str) -> None:
    response = register(op, {"redirect_uris": [uri], "response_types": ["id_token"],
                             "grant_types": ["implicit"]})
    assert response["redirect_uris"] == [uri]


@pytest.mark.parametrize("uri", ["https://127.1/cb", "https://localhost./cb"])
def test_dynreg_2_loopback_spelling_allowed_for_code_and_native_clients(op: Any,
                                                                       uri: str) -> None:
    """The rule is for implicit web clients: code flow and native clients keep them."""
    assert register(op, {"redirect_uris": [uri]})["redirect_uris"] == [uri]
    native = register(op, {"redirect_uris": [uri], "application_type": "native",
                           "response_types": ["id_token"], "grant_types": ["implicit"]})
    assert native["redirect_uris"] == [uri]


def test_rfc9700_4_1_3_exact_matching_kept_after_normalisation(op: Any) -> None:
    """Hosts are normalised for policy checks only: authorization still matches the
    registered redirect URI as an exact string."""
    from pyop.exceptions import InvalidRedirectURI

    response = register(op, {"redirect_uris": ["https://RP.example.com/cb"]})
    client_id = response["client_id"]
    query = auth_query(client_id, redirect_uri="https://RP.example.com/cb")
    assert op.parse_authentication_request(query)["redirect_uri"] == "https://RP.example.com/cb"
    for other in ("https://rp.example.com/cb", "https://RP.example.com./cb"):
        with pytest.raises(InvalidRedirectURI):
            op.parse_authentication_request(auth_query(client_id, redirect_uri=other))


def test_oidc_core_8_1_pairwise_hosts_compared_normalised(op: Any) -> None:
    """Two spellings of one host are one host (no sector_identifier_uri needed)."""
    response = register(op, {"redirect_uris": ["https://RP.example.com/a",
                                               "https://rp.example.com./b"],
                             "subject_type": "pairwise"})
    assert response["subject_type"] == "pairwise"


@pytest.mark.parametrize("uri,shown", [
    ("https://xn--pple-43d.example/cb", "xn--pple-43d.example"),
    ("https://\u0430pple.example/cb", "xn--pple-43d.example"),
    ("https://trusted.example@evil.example/cb", "evil.example"),
    ("https://RP.Example.COM:8443/cb", "rp.example.com:8443"),
    ("https://[::1]:8443/cb", "[::1]:8443"),
    ("https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/", "example.com"),
])
def test_display_host_is_ascii(uri: str, shown: str) -> None:
    from pyop.util import display_host

    assert display_host(uri) == shown
    assert display_host(uri).isascii()


@pytest.mark.parametrize("uri", ["com.example.app:/cb", "https:///cb", "not a uri"])
def test_display_host_without_host_raises(uri: str) -> None:
    from pyop.util import display_host

    with pytest.raises(ValueError):
        display_host(uri)
