"""SECURITY.md, "UserInfo": bad bearer tokens at the UserInfo endpoint (RFC 6750, OIDC Core 5.3).

Each SECURITY.md line and the tests covering it:

- No token -> invalid_token (401); token in more than one place -> invalid_request (400):
  ``test_rfc6750_3_1_no_token``, ``test_rfc6750_2_token_in_more_than_one_place``.
- Scheme ``Bearer`` case-insensitive; ``Bearerxyz`` is not a token:
  ``test_rfc6750_2_1_bearer_scheme_case_insensitive``,
  ``test_rfc6750_2_1_scheme_without_space_is_not_a_token``.
- Expired, revoked, unknown token; refresh token, ID token or code as access token -> 401:
  ``test_rfc6750_3_1_expired_access_token``, ``test_rfc6750_3_1_revoked_access_token``,
  ``test_rfc6750_3_1_unknown_access_token``, ``test_rfc6750_3_1_other_artefacts_as_access_token``.
- Token without the openid scope -> 403 insufficient_scope:
  ``test_oidc_core_5_3_token_without_openid_scope``.
- Preamble ("nothing but the library's typed errors"):
  ``test_security_md_garbage_userinfo_requests_raise_typed_errors``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from pyop.exceptions import (
    BearerTokenError,
    InsufficientScope,
    InvalidAccessToken,
    InvalidUserinfoRequest,
)

from .helpers import (
    CLIENT_ID,
    USER_ID,
    assert_oauth_error,
    authorize,
    bearer,
    full_code_flow,
    issue_code,
    redeem,
    refresh,
)


def userinfo_error(provider: Any, body: Any = None, headers: Any = None,
                   http_method: Any = None) -> BearerTokenError:
    with pytest.raises(BearerTokenError) as info:
        provider.handle_userinfo_request(body, headers, http_method=http_method)
    return info.value


def assert_invalid_token(error: BearerTokenError) -> None:
    assert isinstance(error, BearerTokenError)
    assert_oauth_error(error, "invalid_token", 401)
    assert error.www_authenticate.startswith("Bearer")


@pytest.fixture
def access_token(op: Any) -> str:
    return str(full_code_flow(op, scope="openid profile")["access_token"])


def test_rfc6750_positive_control(op: Any, access_token: str) -> None:
    claims = op.handle_userinfo_request(None, bearer(access_token))
    assert claims["sub"]
    assert claims["name"] == "Alice Liddell"


# -- no token / several tokens (RFC 6750 2, 3.1) -----------------------------------------------

@pytest.mark.parametrize("body,headers", [
    (None, None), ("", {}), (None, {"Authorization": ""}), (None, {"Authorization": "Bearer"}),
    (None, {"Authorization": "Bearer "}), ("access_token=", {}), (None, {"X-Token": "abc"}),
], ids=["nothing", "empty", "empty-header", "scheme-alone", "scheme-and-space",
        "empty-body-parameter", "other-header"])
def test_rfc6750_3_1_no_token(op: Any, body: Any, headers: Any) -> None:
    error = userinfo_error(op, body, headers)
    assert_invalid_token(error)
    assert not isinstance(error, InvalidUserinfoRequest)


@pytest.mark.parametrize("place", ["header-and-body", "header-and-body-other-token",
                                   "body-twice", "header-twice"])
def test_rfc6750_2_token_in_more_than_one_place(op: Any, access_token: str, place: str) -> None:
    body: Any = None
    headers: Any = bearer(access_token)
    if place == "header-and-body":
        body = urlencode({"access_token": access_token})
    elif place == "header-and-body-other-token":
        body = urlencode({"access_token": "other"})
    elif place == "body-twice":
        body = urlencode({"access_token": access_token}) + "&access_token=" + access_token
        headers = None
    else:
        headers = [("Authorization", "Bearer " + access_token)] * 2
    error = userinfo_error(op, body, headers)
    assert isinstance(error, InvalidUserinfoRequest)
    assert_oauth_error(error, "invalid_request", 400)


@pytest.mark.parametrize("headers,method", [
    ({"Content-Type": "application/x-www-form-urlencoded"}, None),
    ({"content-type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"}, None),
    ({}, "POST"),
    ({}, "post"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, "POST"),
], ids=["content-type", "content-type-case-and-charset", "method", "method-lowercase",
        "both"])
def test_rfc6750_2_2_token_in_form_body_accepted(op: Any, access_token: str,
                                                 headers: Any, method: Any) -> None:
    claims = op.handle_userinfo_request(urlencode({"access_token": access_token}), headers,
                                        http_method=method)
    assert claims["sub"]


@pytest.mark.parametrize("headers,method", [
    ({}, None),
    (None, None),
    ({}, "GET"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, "GET"),
    ({"Content-Type": "application/json"}, None),
    ({"Content-Type": "multipart/form-data; boundary=x"}, None),
    ({"Content-Type": "text/plain; x=application/x-www-form-urlencoded"}, None),
], ids=["no-headers", "headers-none", "get", "get-with-form-content-type", "json",
        "multipart", "form-type-as-parameter"])
def test_rfc9700_4_3_2_token_in_url_query_refused(op: Any, access_token: str, headers: Any,
                                                  method: Any) -> None:
    """RFC 9700 4.3.2: clients must not send access tokens in the URL query (RFC 6750 2.3),
    where browser histories, proxies and server logs keep them."""
    error = userinfo_error(op, urlencode({"access_token": access_token}), headers,
                           http_method=method)
    assert isinstance(error, InvalidUserinfoRequest)
    assert_oauth_error(error, "invalid_request", 400)


def test_rfc6750_2_3_token_in_url_query_accepted_when_configured(make_op: Any) -> None:
    """``userinfo_token_in_query=True``: pyop 3's behaviour, for legacy clients."""
    provider = make_op(userinfo_token_in_query=True)
    access_token = full_code_flow(provider)["access_token"]
    for method in (None, "GET"):
        claims = provider.handle_userinfo_request(urlencode({"access_token": access_token}),
                                                  http_method=method)
        assert claims["sub"]


# -- the Bearer scheme (RFC 6750 2.1) ----------------------------------------------------------

@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_rfc6750_2_1_bearer_scheme_case_insensitive(op: Any, access_token: str,
                                                    scheme: str) -> None:
    claims = op.handle_userinfo_request(None, {"Authorization": scheme + " " + access_token})
    assert claims["sub"]


@pytest.mark.parametrize("header_name", ["authorization", "AUTHORIZATION"])
def test_rfc7230_3_2_header_name_case_insensitive(op: Any, access_token: str,
                                                  header_name: str) -> None:
    claims = op.handle_userinfo_request(None, {header_name: "Bearer " + access_token})
    assert claims["sub"]


@pytest.mark.parametrize("template", ["Bearer{}", "bearer{}", "BEARER{}", "Bearer-{}",
                                      "Bearer:{}", "Basic {}", "Token {}", "MAC {}", "{}"],
                         ids=["Bearerxyz", "bearerxyz", "BEARERxyz", "dash", "colon", "basic",
                              "token-scheme", "mac-scheme", "no-scheme"])
def test_rfc6750_2_1_scheme_without_space_is_not_a_token(op: Any, access_token: str,
                                                         template: str) -> None:
    error = userinfo_error(op, None, {"Authorization": template.format(access_token)})
    assert error.http_status in (400, 401)
    assert error.oauth_error in ("invalid_token", "invalid_request")


def test_rfc6750_2_1_token_with_inner_space_rejected(op: Any, access_token: str) -> None:
    error = userinfo_error(op, None, {"Authorization": "Bearer " + access_token + " extra"})
    assert error.http_status in (400, 401)


# -- expired, revoked, unknown, wrong artefact (RFC 6750 3.1) ----------------------------------

@pytest.mark.parametrize("seconds", [3600, 3601, 86400])
def test_rfc6750_3_1_expired_access_token(op: Any, clock: Any, access_token: str,
                                          seconds: int) -> None:
    clock.advance(seconds)
    error = userinfo_error(op, None, bearer(access_token))
    assert isinstance(error, InvalidAccessToken)
    assert_invalid_token(error)


def test_rfc6750_3_1_access_token_valid_until_expiry(op: Any, clock: Any,
                                                     access_token: str) -> None:
    clock.advance(3599)
    assert op.handle_userinfo_request(None, bearer(access_token))["sub"]


def test_rfc6750_3_1_revoked_access_token(op: Any, access_token: str) -> None:
    assert op.authz_state.revoke_access_token(access_token)
    error = userinfo_error(op, None, bearer(access_token))
    assert isinstance(error, InvalidAccessToken)
    assert_invalid_token(error)


def test_rfc6750_3_1_access_token_revoked_by_code_replay(op: Any) -> None:
    code = issue_code(op)
    access_token = redeem(op, code)["access_token"]
    with pytest.raises(Exception):  # noqa: B017 - the replay itself is tested elsewhere
        redeem(op, code)
    assert_invalid_token(userinfo_error(op, None, bearer(access_token)))


@pytest.mark.parametrize("token", ["unknown", "A" * 43, "x" * 5000, "\u2603", "null",
                                   "a.b.c"],
                         ids=["word", "token-shaped", "5000-chars", "unicode", "null",
                              "jws-shaped"])
def test_rfc6750_3_1_unknown_access_token(op: Any, token: str) -> None:
    error = userinfo_error(op, None, bearer(token))
    assert isinstance(error, InvalidAccessToken)
    assert_invalid_token(error)


@pytest.mark.parametrize("kind", ["refresh_token", "id_token", "code", "implicit-id_token"])
def test_rfc6750_3_1_other_artefacts_as_access_token(op: Any, kind: str) -> None:
    if kind == "code":
        value = issue_code(op)
    elif kind == "implicit-id_token":
        value = authorize(op, response_type="id_token")["id_token"]
    else:
        value = full_code_flow(op)[kind]
    error = userinfo_error(op, None, bearer(value))
    assert_invalid_token(error)


def test_rfc6750_3_1_access_token_of_another_provider(op: Any, make_op: Any) -> None:
    other = make_op()
    value = full_code_flow(other)["access_token"]
    assert_invalid_token(userinfo_error(op, None, bearer(value)))


# -- scope (OIDC Core 5.3) ---------------------------------------------------------------------

def test_oidc_core_5_3_token_without_openid_scope(op: Any) -> None:
    refresh_token = full_code_flow(op, scope="openid profile")["refresh_token"]
    narrowed = refresh(op, refresh_token, scope="profile")
    error = userinfo_error(op, None, bearer(narrowed["access_token"]))
    assert isinstance(error, InsufficientScope)
    assert_oauth_error(error, "insufficient_scope", 403)
    assert 'error="insufficient_scope"' in error.www_authenticate


def test_oidc_core_5_3_openid_only_token_reveals_sub_only(op: Any) -> None:
    access_token = full_code_flow(op, scope="openid")["access_token"]
    claims = op.handle_userinfo_request(None, bearer(access_token))
    assert set(claims.to_dict()) == {"sub"}


def test_oidc_core_5_3_userinfo_for_the_tokens_user_only(op: Any, access_token: str) -> None:
    sub = op.handle_userinfo_request(None, bearer(access_token))["sub"]
    assert sub == op.authz_state.get_subject_identifier("public", USER_ID)
    assert CLIENT_ID not in sub


# -- preamble: only typed errors ---------------------------------------------------------------

@pytest.mark.parametrize("body,headers", [
    (12345, None), (["access_token", "x"], None), (b"access_token=\xff", None),
    ("access_token=%FF", None), ("access_token=a%00b", None), ({"access_token": 5}, None),
    ({"access_token": ["a", "b"]}, None), (None, "Authorization: Bearer x"), (None, 5),
    (None, {"Authorization": None}), (None, {"Authorization": b"Bearer x"}),
    (None, [("Authorization",)]), ("a=" + "b" * (1 << 20), None),
    (None, {"Authorization": "Bearer " + "b" * (1 << 20)}),
], ids=["integer-body", "list-body", "invalid-utf8", "invalid-utf8-percent", "nul",
        "mapping-integer", "mapping-list", "headers-string", "headers-integer",
        "header-value-none", "header-value-bytes", "bad-header-tuples", "1mb-body",
        "1mb-header"])
def test_security_md_garbage_userinfo_requests_raise_typed_errors(op: Any, body: Any,
                                                                  headers: Any) -> None:
    error = userinfo_error(op, body, headers)
    assert error.http_status in (400, 401)
