"""Unit tests of pyop.exceptions: codes, HTTP statuses, redirectability, serialisation."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pyop.exceptions import (
    AuthorizationError,
    BearerTokenError,
    InsufficientScope,
    InvalidAccessToken,
    InvalidAuthenticationRequest,
    InvalidAuthorizationCode,
    InvalidClientAuthentication,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidEndSessionRequest,
    InvalidRedirectURI,
    InvalidRefreshToken,
    InvalidRequestError,
    InvalidScope,
    InvalidSubjectIdentifier,
    InvalidTokenRequest,
    InvalidUserinfoRequest,
    OAuthError,
    StorageError,
    UnauthorizedClient,
    UnsupportedGrantType,
)

REDIRECT_URI = "https://rp.example.com/cb"


@pytest.mark.parametrize("cls,code,status", [
    (OAuthError, "invalid_request", 400),
    (InvalidRequestError, "invalid_request", 400),
    (InvalidClientAuthentication, "invalid_client", 401),
    (InvalidTokenRequest, "invalid_request", 400),
    (InvalidAuthorizationCode, "invalid_grant", 400),
    (InvalidRefreshToken, "invalid_grant", 400),
    (InvalidScope, "invalid_scope", 400),
    (UnsupportedGrantType, "unsupported_grant_type", 400),
    (UnauthorizedClient, "unauthorized_client", 400),
    (BearerTokenError, "invalid_token", 401),
    (InvalidAccessToken, "invalid_token", 401),
    (InsufficientScope, "insufficient_scope", 403),
    (InvalidUserinfoRequest, "invalid_request", 400),
    (InvalidEndSessionRequest, "invalid_request", 400),
])
def test_codes_and_statuses(cls: Any, code: str, status: int) -> None:
    error = cls("description")
    assert isinstance(error, OAuthError) and isinstance(error, ValueError)
    assert error.oauth_error == code
    assert error.http_status == status
    assert error.redirectable is False
    assert str(error) == "description"
    assert error.to_dict() == {"error": code, "error_description": "description"}
    assert json.loads(error.to_json()) == {"error": code, "error_description": "description"}


def test_explicit_code_and_empty_description() -> None:
    error = InvalidTokenRequest("", oauth_error="invalid_client")
    assert error.to_dict() == {"error": "invalid_client"}
    assert OAuthError().to_dict() == {"error": "invalid_request"}
    assert InvalidTokenRequest("x", {"a": "b"}).request == {"a": "b"}
    assert InvalidTokenRequest("x").request == {}


def test_registration_error() -> None:
    error = InvalidClientRegistrationRequest("bad uri", {"redirect_uris": []},
                                             oauth_error="invalid_redirect_uri")
    assert error.request == {"redirect_uris": []}
    assert error.http_status == 400
    assert json.loads(error.to_json()) == {"error": "invalid_redirect_uri",
                                           "error_description": "bad uri"}
    assert InvalidClientRegistrationRequest("x").oauth_error == "invalid_request"


class TestBearerTokenError:
    def test_www_authenticate(self) -> None:
        assert BearerTokenError("no token").www_authenticate == 'Bearer error="invalid_token"'
        assert InvalidAccessToken().www_authenticate == 'Bearer error="invalid_token"'
        assert InsufficientScope().www_authenticate == 'Bearer error="insufficient_scope"'
        assert InvalidUserinfoRequest().www_authenticate == 'Bearer error="invalid_request"'
        # RFC 6750 3.1: a request without authentication gets no error code
        bare = BearerTokenError("", oauth_error="invalid_request", http_status=401)
        assert bare.www_authenticate == "Bearer"
        assert BearerTokenError("no token", token_missing=True).www_authenticate == "Bearer"

    def test_missing_token_gets_a_bare_challenge(self, provider: Any) -> None:
        with pytest.raises(BearerTokenError) as info:
            provider.handle_userinfo_request("", {})
        assert info.value.token_missing is True
        assert info.value.oauth_error == "invalid_token"
        assert info.value.http_status == 401
        assert info.value.www_authenticate == "Bearer"

    def test_status_override(self) -> None:
        assert BearerTokenError("x", http_status=400).http_status == 400
        assert BearerTokenError("x").http_status == 401
        assert InsufficientScope("x").http_status == 403


class TestInvalidAuthenticationRequest:
    def test_not_verified_is_not_redirectable(self) -> None:
        error = InvalidAuthenticationRequest("x", {"redirect_uri": REDIRECT_URI})
        assert error.redirectable is False
        assert error.to_error_url() is None
        assert error.http_status == 400 and error.oauth_error == "invalid_request"

    def test_verified_query(self) -> None:
        error = InvalidAuthenticationRequest(
            "bad scope", {"redirect_uri": REDIRECT_URI, "state": "s", "response_type": "code"},
            "invalid_scope", redirect_uri_verified=True, issuer="https://op.example.com")
        assert error.redirectable is True
        url = error.to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "?")
        assert parse_qs(urlsplit(url).query) == {
            "error": ["invalid_scope"], "error_description": ["bad scope"], "state": ["s"],
            "iss": ["https://op.example.com"]}

    @pytest.mark.parametrize("request_", [
        {"response_type": "id_token"}, {"response_type": "code token"},
        {"response_type": "code", "response_mode": "fragment"},
        {"response_type": ["code", "id_token"]},
    ])
    def test_verified_fragment(self, request_: dict[str, Any]) -> None:
        error = InvalidAuthenticationRequest("", dict(request_, redirect_uri=REDIRECT_URI),
                                             redirect_uri_verified=True)
        url = error.to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "#")
        assert parse_qs(urlsplit(url).fragment) == {"error": ["invalid_request"]}

    def test_verified_without_redirect_uri(self) -> None:
        error = InvalidAuthenticationRequest("x", {"state": "s"}, redirect_uri_verified=True)
        assert error.to_error_url() is None
        assert InvalidAuthenticationRequest("x", None, redirect_uri_verified=True).request == {}

    def test_non_string_state_dropped(self) -> None:
        error = InvalidAuthenticationRequest("x", {"redirect_uri": REDIRECT_URI, "state": 5},
                                             redirect_uri_verified=True)
        url = error.to_error_url()
        assert url is not None and "state" not in parse_qs(urlsplit(url).query)

    @pytest.mark.parametrize("cls", [InvalidClientId, InvalidRedirectURI])
    def test_fatal_errors_never_redirect(self, cls: Any) -> None:
        error = cls("x", {"redirect_uri": REDIRECT_URI}, redirect_uri_verified=True)
        assert isinstance(error, InvalidAuthenticationRequest)
        assert error.redirect_uri_verified is False
        assert error.redirectable is False
        assert error.to_error_url() is None
        error.redirect_uri_verified = True  # even if a host flips the flag
        assert error.redirectable is False and error.to_error_url() is None
        assert cls("x").oauth_error == "invalid_request"


def test_non_oauth_errors() -> None:
    assert issubclass(InvalidSubjectIdentifier, ValueError)
    assert not issubclass(InvalidSubjectIdentifier, OAuthError)
    assert issubclass(InvalidEndSessionRequest, InvalidSubjectIdentifier)
    assert issubclass(InvalidConfiguration, ValueError)
    assert not issubclass(AuthorizationError, ValueError)
    assert issubclass(AuthorizationError, Exception)
    assert not issubclass(StorageError, ValueError)
    assert StorageError.oauth_error == "server_error"
    assert StorageError.http_status == 503 and StorageError.redirectable is False


def test_hierarchy() -> None:
    for cls in (InvalidAuthorizationCode, InvalidRefreshToken, InvalidScope,
                UnsupportedGrantType, UnauthorizedClient):
        assert issubclass(cls, InvalidTokenRequest)
    for cls in (InvalidAccessToken, InsufficientScope, InvalidUserinfoRequest):
        assert issubclass(cls, BearerTokenError)
    assert issubclass(InvalidClientId, InvalidAuthenticationRequest)
    assert issubclass(InvalidRedirectURI, InvalidAuthenticationRequest)


def test_client_and_redirect_uri_errors_have_one_definition_and_one_meaning() -> None:
    """``InvalidClientId`` (pyop 3: ``UnknownClientId``) is about the client,
    ``InvalidRedirectURI`` about its redirect_uri: two classes, each defined once."""
    import ast
    from pathlib import Path

    import pyop
    from pyop.exceptions import UnknownClientId

    assert UnknownClientId is InvalidClientId
    assert InvalidClientId is not InvalidRedirectURI
    assert not issubclass(InvalidClientId, InvalidRedirectURI)
    assert not issubclass(InvalidRedirectURI, InvalidClientId)
    definitions = []
    for path in Path(pyop.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name in (
                    "InvalidClientId", "UnknownClientId", "InvalidRedirectURI"):
                definitions.append((path.name, node.name))
    assert sorted(definitions) == [("exceptions.py", "InvalidClientId"),
                                   ("exceptions.py", "InvalidRedirectURI")]
    client_error = InvalidClientId("unknown client_id")
    uri_error = InvalidRedirectURI("redirect_uri is not registered for the client")
    assert not client_error.redirectable and not uri_error.redirectable
