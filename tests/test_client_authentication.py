"""Unit tests of pyop.client_authentication (RFC 6749 2.3, OIDC Core 9)."""

from __future__ import annotations

import base64
from typing import Any, Optional

import pytest

from pyop.client_authentication import (
    SUPPORTED_AUTH_METHODS,
    authenticate_client,
    parse_basic_authorization,
    verify_client_authentication,
)
from pyop.exceptions import InvalidClientAuthentication, InvalidRequestError

CLIENTS: dict[str, Any] = {
    "basic": {"client_secret": "s3cret", "token_endpoint_auth_method": "client_secret_basic"},
    "default": {"client_secret": "s3cret"},
    "post": {"client_secret": "s3cret", "token_endpoint_auth_method": "client_secret_post"},
    "public": {"token_endpoint_auth_method": "none"},
    "no-secret": {"token_endpoint_auth_method": "client_secret_basic"},
    "expiring": {"client_secret": "s3cret", "client_secret_expires_at": 1000},
    "never-expiring": {"client_secret": "s3cret", "client_secret_expires_at": 0},
    "not-a-mapping": "oops",
}


def basic(client_id: str, secret: str, scheme: str = "Basic") -> str:
    raw = f"{client_id}:{secret}".encode()
    return scheme + " " + base64.b64encode(raw).decode("ascii")


def authenticate(body: dict[str, Any], headers: Optional[Any] = None,
                 now: Optional[float] = None) -> str:
    return verify_client_authentication(CLIENTS, body, headers, now=now)


class TestParseBasicAuthorization:
    def test_plain(self) -> None:
        assert parse_basic_authorization(basic("client", "secret")) == ("client", "secret")

    def test_scheme_case_and_whitespace(self) -> None:
        assert parse_basic_authorization("  " + basic("c", "s", "bAsIc") + "  ") == ("c", "s")

    def test_form_url_decoded(self) -> None:
        # RFC 6749 2.3.1: id and secret are application/x-www-form-urlencoded first
        assert parse_basic_authorization(basic("a%3Ab+c", "p%25%3A+x")) == ("a:b c", "p%: x")

    def test_secret_with_colon(self) -> None:
        assert parse_basic_authorization(basic("c", "a:b:c")) == ("c", "a:b:c")

    def test_empty_secret(self) -> None:
        assert parse_basic_authorization(basic("c", "")) == ("c", "")

    def test_utf8(self) -> None:
        assert parse_basic_authorization(basic("cli\u00e9nt", "s\u2603")) == (
            "cli\u00e9nt", "s\u2603")

    @pytest.mark.parametrize("header", [
        "Basic", "Basic ", "Bearer abc", "Digest " + base64.b64encode(b"a:b").decode(),
        "Basic !!!!", "Basic YWJj",  # no colon
        "Basic " + base64.b64encode(b":secret").decode(),  # empty client id
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),  # not UTF-8
        "Basic YWJjOmRlZg",  # missing padding
        "Basic YWJj OmRlZg==",
    ])
    def test_malformed(self, header: str) -> None:
        with pytest.raises(InvalidClientAuthentication) as info:
            parse_basic_authorization(header)
        assert info.value.oauth_error == "invalid_client" and info.value.http_status == 401


class TestVerifyClientAuthentication:
    def test_methods(self) -> None:
        assert SUPPORTED_AUTH_METHODS == ("client_secret_basic", "client_secret_post",
                                          "client_secret_jwt", "private_key_jwt", "none",
                                          "tls_client_auth", "self_signed_tls_client_auth")

    def test_basic(self) -> None:
        assert authenticate({}, {"Authorization": basic("basic", "s3cret")}) == "basic"
        assert authenticate({}, {"authorization": basic("default", "s3cret")}) == "default"
        assert authenticate({"client_id": "basic"},
                            [("AUTHORIZATION", basic("basic", "s3cret"))]) == "basic"

    def test_post(self) -> None:
        assert authenticate({"client_id": "post", "client_secret": "s3cret"}) == "post"

    def test_none(self) -> None:
        assert authenticate({"client_id": "public"}) == "public"
        assert authenticate({"client_id": "public"}, {"Authorization": "  "}) == "public"

    @pytest.mark.parametrize("body,headers", [
        ({"client_id": "basic", "client_secret": "s3cret"}, None),  # post for a basic client
        ({"client_id": "basic"}, None),  # none for a basic client
        ({}, {"Authorization": basic("post", "s3cret")}),  # basic for a post client
        ({"client_id": "post"}, None),
        ({}, {"Authorization": basic("public", "")}),  # basic for a public client
        ({"client_id": "public", "client_secret": "x"}, None),
    ])
    def test_registered_method_enforced(self, body: dict[str, Any], headers: Any) -> None:
        with pytest.raises(InvalidClientAuthentication, match="must authenticate with"):
            authenticate(body, headers)

    @pytest.mark.parametrize("body,headers", [
        ({}, {"Authorization": basic("basic", "wrong")}),
        ({}, {"Authorization": basic("basic", "s3cre")}),
        ({}, {"Authorization": basic("basic", "")}),
        ({}, {"Authorization": basic("unknown", "s3cret")}),
        ({}, {"Authorization": basic("not-a-mapping", "s3cret")}),
        ({}, {"Authorization": basic("no-secret", "")}),
        ({"client_id": "post", "client_secret": "S3CRET"}, None),
        ({"client_id": "unknown"}, None),
    ])
    def test_wrong_credentials(self, body: dict[str, Any], headers: Any) -> None:
        with pytest.raises(InvalidClientAuthentication) as info:
            authenticate(body, headers)
        assert info.value.http_status == 401

    def test_no_authentication(self) -> None:
        for body, headers in (({}, None), ({}, {}), ({"client_id": 5}, None),
                              ({}, {"Authorization": 5})):
            with pytest.raises(InvalidClientAuthentication, match="no client authentication"):
                authenticate(body, headers)
        # a string is the Authorization header value itself (pyop 3's call style)
        with pytest.raises(InvalidClientAuthentication):
            authenticate({}, "garbage")

    def test_secret_without_id(self) -> None:
        with pytest.raises(InvalidClientAuthentication, match="without client_id"):
            authenticate({"client_secret": "s3cret"})

    def test_credentials_in_header_and_body(self) -> None:
        with pytest.raises(InvalidRequestError, match="both"):
            authenticate({"client_secret": "s3cret"}, {"Authorization": basic("basic", "s3cret")})

    def test_body_client_id_must_match_header(self) -> None:
        with pytest.raises(InvalidRequestError, match="differs"):
            authenticate({"client_id": "other"}, {"Authorization": basic("basic", "s3cret")})

    def test_duplicate_credentials(self) -> None:
        with pytest.raises(InvalidRequestError):
            authenticate({"client_id": ["a", "b"]})
        with pytest.raises(InvalidRequestError):
            authenticate({"client_id": "post", "client_secret": ["s3cret", "s3cret"]})

    def test_duplicate_authorization_header(self) -> None:
        headers = [("Authorization", basic("basic", "s3cret")), ("authorization", "Basic x")]
        with pytest.raises(InvalidRequestError, match="duplicate"):
            authenticate({}, headers)

    def test_secret_expiry(self) -> None:
        headers = {"Authorization": basic("expiring", "s3cret")}
        assert authenticate({}, headers, now=999) == "expiring"
        assert authenticate({}, headers) == "expiring"  # no clock: not checked
        with pytest.raises(InvalidClientAuthentication, match="expired"):
            authenticate({}, headers, now=1000)
        never = {"Authorization": basic("never-expiring", "s3cret")}
        assert authenticate({}, never, now=10**12) == "never-expiring"

    def test_authenticate_client_returns_the_metadata(self) -> None:
        client_id, client = authenticate_client(CLIENTS, {"client_id": "post",
                                                          "client_secret": "s3cret"})
        assert client_id == "post" and client is CLIENTS["post"]
        with pytest.raises(InvalidClientAuthentication):
            authenticate_client(CLIENTS, {"client_id": "post", "client_secret": "nope"})

    def test_client_db_without_get(self) -> None:
        with pytest.raises(InvalidClientAuthentication):
            verify_client_authentication([("basic", {})], {"client_id": "basic"})  # type: ignore
