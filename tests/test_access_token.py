"""Unit tests of pyop.access_token: bearer token extraction (RFC 6750) and header lookup."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from pyop.access_token import AccessToken, extract_bearer_token_from_http_request, get_header
from pyop.exceptions import BearerTokenError, InvalidUserinfoRequest


class TestAccessToken:
    def test_attributes(self) -> None:
        token = AccessToken("value", 60)
        assert (token.value, token.expires_in, token.type) == ("value", 60, "Bearer")
        assert AccessToken.BEARER_TOKEN_TYPE == "Bearer"
        assert AccessToken("v", 1, "DPoP").type == "DPoP"

    def test_repr_never_shows_value(self) -> None:
        assert "very-secret" not in repr(AccessToken("very-secret", 60))
        assert repr(AccessToken("very-secret", 60)) == "AccessToken(type='Bearer', expires_in=60)"


class TestGetHeader:
    @pytest.mark.parametrize("headers", [
        {"Authorization": "x"}, {"authorization": "x"}, {"AUTHORIZATION": "x"},
        [("Authorization", "x")], (("aUtHoRiZaTiOn", "x"),),
    ])
    def test_case_insensitive(self, headers: Any) -> None:
        assert get_header(headers, "Authorization") == "x"
        assert get_header(headers, "authorization") == "x"

    @pytest.mark.parametrize("headers", [None, {}, [], "", 0, 5, "not headers", [1, 2],
                                         [("a", "b", "c")], {b"Authorization": "x"},
                                         {"Other": "x"}])
    def test_absent_or_unusable(self, headers: Any) -> None:
        assert get_header(headers, "Authorization") is None

    def test_non_string_value(self) -> None:
        assert get_header({"Authorization": b"Bearer x"}, "Authorization") is None
        assert get_header({"Authorization": None}, "Authorization") is None

    def test_duplicates(self) -> None:
        with pytest.raises(InvalidUserinfoRequest, match="duplicate"):
            get_header({"Authorization": "a", "authorization": "b"}, "Authorization")
        with pytest.raises(InvalidUserinfoRequest):
            get_header([("Authorization", "a"), ("Authorization", "a")], "authorization")

    def test_werkzeug_like_headers(self) -> None:
        class Headers:
            def items(self) -> list[tuple[str, str]]:
                return [("Content-Type", "text/plain"), ("Authorization", "Bearer t")]

        assert get_header(Headers(), "authorization") == "Bearer t"


class TestExtractBearerToken:
    @pytest.mark.parametrize("header", ["Bearer tok", "bearer tok", "BEARER tok",
                                        "  Bearer   tok  ", "Bearer\ttok".replace("\t", " ")])
    def test_header(self, header: str) -> None:
        assert extract_bearer_token_from_http_request(None, header) == "tok"

    def test_body(self) -> None:
        assert extract_bearer_token_from_http_request({"access_token": "tok"}) == "tok"
        assert extract_bearer_token_from_http_request({"access_token": "tok"}, None) == "tok"

    def test_header_wins_when_body_has_no_token(self) -> None:
        assert extract_bearer_token_from_http_request({"other": "x"}, "Bearer tok") == "tok"
        assert extract_bearer_token_from_http_request({"access_token": ""}, "Bearer t") == "t"

    @pytest.mark.parametrize("body,header", [
        (None, None), ({}, None), ({}, "Basic abc"), ({}, "Bearer"), ({}, "Bearer    "),
        ({}, "Bearertok"), ({"access_token": 5}, None), ({"access_token": ""}, None),
        ({}, "tok"),
    ])
    def test_no_token(self, body: Optional[dict[str, Any]], header: Optional[str]) -> None:
        with pytest.raises(BearerTokenError) as info:
            extract_bearer_token_from_http_request(body, header)
        assert type(info.value) is BearerTokenError
        assert info.value.http_status == 401 and info.value.oauth_error == "invalid_token"

    def test_token_in_two_places(self) -> None:
        with pytest.raises(InvalidUserinfoRequest, match="more than one place") as info:
            extract_bearer_token_from_http_request({"access_token": "a"}, "Bearer a")
        assert info.value.http_status == 400

    def test_duplicate_body_token(self) -> None:
        with pytest.raises(InvalidUserinfoRequest, match="duplicate"):
            extract_bearer_token_from_http_request({"access_token": ["a", "b"]})

    def test_malformed_header(self) -> None:
        with pytest.raises(InvalidUserinfoRequest, match="malformed"):
            extract_bearer_token_from_http_request(None, "Bearer a b")
