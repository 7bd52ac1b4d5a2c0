"""SECURITY.md, "Authorization request": bad input at the authorization endpoint.

Each SECURITY.md line and the tests covering it:

- Unknown client_id -> no redirect, even with every other parameter bad (RFC 6749 4.1.2.1):
  ``test_rfc6749_4_1_2_1_unknown_client_never_redirects``.
- redirect_uri unregistered or nearly equal -> no redirect, exact match only (RFC 9700 4.1.3):
  ``test_rfc9700_4_1_3_redirect_uri_exact_match``,
  ``test_rfc9700_4_1_3_other_clients_redirect_uri_never_redirects``,
  ``test_rfc9700_4_1_3_exact_registered_redirect_uri_accepted``.
- redirect_uri missing -> error without redirect:
  ``test_oidc_core_3_1_2_1_missing_redirect_uri_never_redirects``.
- Fatal checks first (client, redirect_uri, the rest):
  ``test_design_fatal_checks_first_*``.
- response_type missing / not registered / not supported:
  ``test_rfc6749_4_1_2_1_missing_response_type``,
  ``test_rfc6749_4_1_2_1_response_type_not_registered_is_unauthorized_client``,
  ``test_rfc6749_4_1_2_1_unsupported_response_type``.
- id_token without nonce -> invalid_request in the fragment; code alone without nonce is fine:
  ``test_oidcc_ensure_request_without_nonce_fails_for_implicit_and_hybrid``,
  ``test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow``.
- Errors for implicit/hybrid in the fragment, never the query:
  ``test_oidc_core_3_2_2_6_implicit_and_hybrid_errors_in_fragment``,
  ``test_oidc_core_3_2_2_6_repeated_implicit_response_type_error_in_fragment``,
  ``test_oidc_core_3_1_2_6_code_flow_errors_in_query`` (control).
- Unknown parameters ignored; duplicates -> invalid_request (RFC 6749 3.1):
  ``test_rfc6749_3_1_unknown_parameters_ignored``, ``test_rfc6749_3_1_duplicate_parameter``,
  ``test_rfc6749_3_1_duplicate_client_id_or_redirect_uri_never_redirects``.
- prompt=none with other values; prompt=none without session -> login_required; bad max_age:
  ``test_oidc_core_3_1_2_1_prompt_none_with_other_values``,
  ``test_oidcc_prompt_none_not_logged_in_login_required``,
  ``test_oidc_core_3_1_2_1_max_age_not_a_non_negative_integer``,
  ``test_oidc_core_3_1_2_1_max_age_valid_values_accepted``.
- request / request_uri -> request_not_supported / request_uri_not_supported:
  ``test_oidcc_request_object_rejected_as_unsupported``,
  ``test_oidcc_request_uri_rejected_as_unsupported``,
  ``test_oidc_discovery_request_objects_advertised_unsupported``.
- PKCE S256, plain only if configured, malformed challenge, public clients:
  ``test_rfc7636_*`` and ``test_rfc9700_2_1_1_public_client_without_pkce_rejected``.
- offline_access without prompt=consent -> scope dropped (OIDC Core 11):
  ``test_oidc_core_11_offline_access_*``.
- Oversized input (listed under "Token endpoint", applied here too):
  ``test_security_md_oversized_authentication_request``.
- Preamble ("nothing but the library's typed errors"):
  ``test_security_md_garbage_authentication_requests_raise_typed_errors``.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlencode

import pytest

from pyop.exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientId,
    InvalidConfiguration,
    InvalidRedirectURI,
)

from .helpers import (
    CLIENT_B_REDIRECT_URI,
    CLIENT_ID,
    CODE_ONLY_CLIENT_ID,
    CODE_ONLY_REDIRECT_URI,
    FRAGMENT_RESPONSE_TYPES,
    PUBLIC_CLIENT_ID,
    PUBLIC_REDIRECT_URI,
    REDIRECT_URI,
    USER_ID,
    assert_not_redirected,
    assert_redirected,
    auth_params,
    auth_query,
    new_verifier,
    redeem,
    s256,
    scope_of,
    security_configuration,
    unverified_claims,
)


def parse_error(provider: Any, request: Any) -> InvalidAuthenticationRequest:
    with pytest.raises(InvalidAuthenticationRequest) as info:
        provider.parse_authentication_request(request)
    return info.value


# -- unknown client (RFC 6749 4.1.2.1) ---------------------------------------------------------

EVERYTHING_ELSE_BAD = {
    "redirect_uri": "https://evil.example/steal",
    "response_type": "bogus token",
    "scope": "email",
    "prompt": "none login",
    "max_age": "-1",
    "request": "eyJhbGciOiJub25lIn0.e30.",
    "request_uri": "https://evil.example/request.jwt",
    "code_challenge": "short",
    "code_challenge_method": "plain",
    "response_mode": "form_post",
    "claims": "not json",
}

UNKNOWN_CLIENT_REQUESTS = {
    "unknown-client": auth_query(client_id="unknown-client",
                                 redirect_uri="https://evil.example/steal"),
    "unknown-client-every-other-parameter-bad": urlencode(
        {"client_id": "unknown-client", **EVERYTHING_ELSE_BAD}) + "&state=a&state=b",
    "unknown-client-implicit-evil-redirect": auth_query(
        client_id="unknown-client", response_type="id_token token",
        redirect_uri="https://evil.example/steal"),
    "unknown-client-registered-redirect-of-known-client": auth_query(client_id="unknown-client"),
    "client-id-case-changed": auth_query(client_id=CLIENT_ID.upper()),
    "client-id-with-trailing-space": auth_query(client_id=CLIENT_ID + " "),
    "missing-client-id": auth_query(client_id=None),
    "empty-client-id": auth_query(client_id=""),
    "missing-client-id-every-other-parameter-bad": urlencode(EVERYTHING_ELSE_BAD),
    "nul-in-client-id": auth_query(client_id=CLIENT_ID + "\x00"),
}


@pytest.mark.parametrize("query", list(UNKNOWN_CLIENT_REQUESTS.values()),
                         ids=list(UNKNOWN_CLIENT_REQUESTS))
def test_rfc6749_4_1_2_1_unknown_client_never_redirects(op: Any, query: str) -> None:
    error = parse_error(op, query)
    assert_not_redirected(error)


def test_rfc6749_4_1_2_1_unknown_client_is_invalid_client_id(op: Any) -> None:
    error = parse_error(op, UNKNOWN_CLIENT_REQUESTS["unknown-client-every-other-parameter-bad"])
    assert isinstance(error, InvalidClientId)
    assert_not_redirected(error)


# -- redirect_uri exact match (RFC 9700 4.1.3) -------------------------------------------------

NEARLY_EQUAL_REDIRECT_URIS = {
    "trailing-slash": REDIRECT_URI + "/",
    "case-path": "https://rp.example.com/Callback",
    "case-host": "https://RP.example.com/callback",
    "case-scheme": "HTTPS://rp.example.com/callback",
    "added-query": REDIRECT_URI + "?x=1",
    "empty-query": REDIRECT_URI + "?",
    "added-fragment": REDIRECT_URI + "#x",
    "explicit-port-443": "https://rp.example.com:443/callback",
    "other-port": "https://rp.example.com:8443/callback",
    "dot-segment-parent": "https://rp.example.com/x/../callback",
    "dot-segment-current": "https://rp.example.com/./callback",
    "percent-encoded": "https://rp.example.com/%63allback",
    "double-slash": "https://rp.example.com//callback",
    "http-downgrade": "http://rp.example.com/callback",
    "userinfo-trick": "https://rp.example.com@evil.example/callback",
    "suffix-host": "https://rp.example.com.evil.example/callback",
    "path-suffix": REDIRECT_URI + "/../../evil",
    "leading-space": " " + REDIRECT_URI,
    "trailing-newline": REDIRECT_URI + "\n",
    "trailing-dot-host": "https://rp.example.com./callback",
    "unregistered": "https://evil.example/callback",
}


@pytest.mark.parametrize("response_type", ["code", "id_token token"])
@pytest.mark.parametrize("redirect_uri", list(NEARLY_EQUAL_REDIRECT_URIS.values()),
                         ids=list(NEARLY_EQUAL_REDIRECT_URIS))
def test_rfc9700_4_1_3_redirect_uri_exact_match(op: Any, redirect_uri: str,
                                                 response_type: str) -> None:
    error = parse_error(op, auth_query(redirect_uri=redirect_uri, response_type=response_type))
    assert isinstance(error, InvalidRedirectURI)
    assert_not_redirected(error)


def test_rfc9700_4_1_3_other_clients_redirect_uri_never_redirects(op: Any) -> None:
    error = parse_error(op, auth_query(redirect_uri=CLIENT_B_REDIRECT_URI))
    assert isinstance(error, InvalidRedirectURI)
    assert_not_redirected(error)


def test_rfc9700_4_1_3_exact_registered_redirect_uri_accepted(op: Any) -> None:
    request = op.parse_authentication_request(auth_query())
    assert request["redirect_uri"] == REDIRECT_URI
    response = op.authorize(request, USER_ID)
    assert response.request(REDIRECT_URI).startswith(REDIRECT_URI + "?")


# -- redirect_uri missing (OIDC Core 3.1.2.1) --------------------------------------------------

@pytest.mark.parametrize("response_type", ["code", "id_token", "code id_token"])
def test_oidc_core_3_1_2_1_missing_redirect_uri_never_redirects(op: Any,
                                                                 response_type: str) -> None:
    # the client has exactly one registered redirect_uri: OAuth would allow omitting it,
    # OpenID Connect does not
    error = parse_error(op, auth_query(redirect_uri=None, response_type=response_type))
    assert isinstance(error, InvalidRedirectURI)
    assert_not_redirected(error)


def test_oidc_core_3_1_2_1_empty_redirect_uri_never_redirects(op: Any) -> None:
    error = parse_error(op, auth_query(redirect_uri=""))
    assert isinstance(error, InvalidRedirectURI)
    assert_not_redirected(error)


# -- fatal checks first (client_id, then redirect_uri, then the rest) -------------------------

def test_design_fatal_checks_first_client_before_redirect_uri(op: Any) -> None:
    error = parse_error(op, auth_query(client_id="unknown-client",
                                       redirect_uri="https://evil.example/cb"))
    assert isinstance(error, InvalidClientId)
    assert_not_redirected(error)


def test_design_fatal_checks_first_redirect_uri_before_the_rest(op: Any) -> None:
    params = {"client_id": CLIENT_ID, **EVERYTHING_ELSE_BAD}
    error = parse_error(op, urlencode(params) + "&state=a&state=b")
    assert isinstance(error, InvalidRedirectURI)
    assert_not_redirected(error)


def test_design_fatal_checks_first_then_errors_redirect(op: Any) -> None:
    params = {**EVERYTHING_ELSE_BAD, "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
              "state": "st4te"}
    error = parse_error(op, urlencode(params))
    assert error.redirectable
    assert error.to_error_url() is not None
    assert error.to_error_url().startswith(REDIRECT_URI)  # type: ignore[union-attr]


@pytest.mark.parametrize("query", [
    auth_query(client_id="unknown-client"),
    auth_query(redirect_uri="https://evil.example/cb"),
    auth_query(redirect_uri=None),
], ids=["unknown-client", "unregistered-redirect-uri", "missing-redirect-uri"])
def test_design_fatal_checks_first_host_validators_not_run(op: Any, query: str) -> None:
    calls: list[Any] = []
    op.authentication_request_validators.append(calls.append)
    assert_not_redirected(parse_error(op, query))
    assert calls == []


def test_design_fatal_checks_first_host_validators_run_after(op: Any) -> None:
    calls: list[Any] = []
    op.authentication_request_validators.append(calls.append)
    op.parse_authentication_request(auth_query())
    assert len(calls) == 1


# -- response_type (RFC 6749 4.1.2.1) ----------------------------------------------------------

def test_rfc6749_4_1_2_1_missing_response_type(op: Any) -> None:
    error = parse_error(op, auth_query(response_type=None))
    assert error.oauth_error in ("invalid_request", "unsupported_response_type")
    assert_redirected(error, error.oauth_error, fragment=False)


@pytest.mark.parametrize("response_type", ["id_token", "code id_token", "id_token token"])
def test_rfc6749_4_1_2_1_response_type_not_registered_is_unauthorized_client(
        op: Any, response_type: str) -> None:
    error = parse_error(op, auth_query(CODE_ONLY_CLIENT_ID, response_type=response_type))
    assert_redirected(error, "unauthorized_client", fragment=True,
                      redirect_uri=CODE_ONLY_REDIRECT_URI)


@pytest.mark.parametrize("response_type,fragment", [
    ("bogus", None),
    ("code bogus", None),
    ("none", False),
    ("token", True),
], ids=["bogus", "code-bogus", "none", "token"])
def test_rfc6749_4_1_2_1_unsupported_response_type(op: Any, response_type: str,
                                                    fragment: Optional[bool]) -> None:
    # an unknown response_type may put its error in either place (never both)
    error = parse_error(op, auth_query(response_type=response_type))
    assert_redirected(error, "unsupported_response_type", fragment=fragment)


def test_rfc6749_4_1_2_1_response_type_registered_but_not_supported_by_provider(
        make_op: Any) -> None:
    provider = make_op(config=security_configuration(response_types_supported=["code"]))
    error = parse_error(provider, auth_query(response_type="id_token"))
    assert_redirected(error, "unsupported_response_type", fragment=True)


# -- nonce (oidcc-ensure-request-without-nonce-*) ----------------------------------------------

@pytest.mark.parametrize("response_type", FRAGMENT_RESPONSE_TYPES)
def test_oidcc_ensure_request_without_nonce_fails_for_implicit_and_hybrid(
        op: Any, response_type: str) -> None:
    error = parse_error(op, auth_query(response_type=response_type, nonce=None))
    assert_redirected(error, "invalid_request", fragment=True)


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(op: Any) -> None:
    request = op.parse_authentication_request(auth_query(nonce=None))
    code = op.authorize(request, USER_ID)["code"]
    id_token = redeem(op, code)["id_token"]
    assert "nonce" not in unverified_claims(id_token)


# -- implicit / hybrid errors in the fragment (OIDC Core 3.2.2.6, 3.3.2.6) ---------------------

ERROR_TRIGGERS: dict[str, tuple[dict[str, Any], str]] = {
    "scope-without-openid": ({"scope": "profile"}, "invalid_scope"),
    "unknown-prompt": ({"prompt": "bogus"}, "invalid_request"),
    "prompt-none-and-login": ({"prompt": "none login"}, "invalid_request"),
    "negative-max-age": ({"max_age": "-1"}, "invalid_request"),
    "request-object": ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    "request-uri": ({"request_uri": "https://rp.example.com/r.jwt"}, "request_uri_not_supported"),
    "response-mode-query": ({"response_mode": "query"}, "invalid_request"),
    "malformed-claims": ({"claims": "{not json"}, "invalid_request"),
}


@pytest.mark.parametrize("trigger", list(ERROR_TRIGGERS))
@pytest.mark.parametrize("response_type", FRAGMENT_RESPONSE_TYPES)
def test_oidc_core_3_2_2_6_implicit_and_hybrid_errors_in_fragment(op: Any, response_type: str,
                                                                   trigger: str) -> None:
    overrides, oauth_error = ERROR_TRIGGERS[trigger]
    error = parse_error(op, auth_query(response_type=response_type, **overrides))
    assert_redirected(error, oauth_error, fragment=True)


@pytest.mark.parametrize("response_type", FRAGMENT_RESPONSE_TYPES)
def test_oidc_core_3_2_2_6_duplicate_parameter_error_in_fragment(op: Any,
                                                                  response_type: str) -> None:
    error = parse_error(op, auth_query(response_type=response_type) + "&nonce=other")
    assert_redirected(error, "invalid_request", fragment=True)


@pytest.mark.parametrize("response_type", FRAGMENT_RESPONSE_TYPES)
def test_oidc_core_3_2_2_6_repeated_implicit_response_type_error_in_fragment(
        op: Any, response_type: str) -> None:
    # every value of the repeated response_type asks for tokens in the fragment:
    # the error about the repetition must not fall back to the query
    query = auth_query(response_type=response_type) + "&" + urlencode(
        {"response_type": response_type})
    error = parse_error(op, query)
    assert_redirected(error, "invalid_request", fragment=True)


@pytest.mark.parametrize("response_type", FRAGMENT_RESPONSE_TYPES)
def test_oidc_core_3_2_2_6_host_error_for_implicit_in_fragment(op: Any,
                                                                response_type: str) -> None:
    request = op.parse_authentication_request(auth_query(response_type=response_type))
    error = op.create_authentication_error(request, "access_denied")
    assert_redirected(error, "access_denied", fragment=True)


@pytest.mark.parametrize("trigger", ["scope-without-openid", "unknown-prompt",
                                     "negative-max-age", "request-object"])
def test_oidc_core_3_1_2_6_code_flow_errors_in_query(op: Any, trigger: str) -> None:
    overrides, oauth_error = ERROR_TRIGGERS[trigger]
    error = parse_error(op, auth_query(**overrides))
    assert_redirected(error, oauth_error, fragment=False)


def test_oauth_response_modes_code_flow_error_with_response_mode_fragment(op: Any) -> None:
    error = parse_error(op, auth_query(response_mode="fragment", scope="profile"))
    assert_redirected(error, "invalid_scope", fragment=True)


# -- unknown and duplicate parameters (RFC 6749 3.1) -------------------------------------------

def test_rfc6749_3_1_unknown_parameters_ignored(op: Any) -> None:
    query = auth_query() + "&" + urlencode({"x_unknown": "1", "foo": "<script>", "resource": "x"})
    request = op.parse_authentication_request(query)
    response = op.authorize(request, USER_ID)
    assert response["code"]
    assert response["state"] == "st4te"


DUPLICABLE = {
    "scope-same-value": "scope=openid",
    "scope-other-value": "scope=openid%20email",
    "state": "state=other",
    "state-same-value": "state=st4te",
    "nonce": "nonce=other",
    "response-type-same-value": "response_type=code",
    "prompt": "prompt=login",
    "max-age": "max_age=10",
    "code-challenge": "code_challenge=" + s256(new_verifier()),
    "response-mode": "response_mode=query",
    "claims": "claims=%7B%7D",
}


@pytest.mark.parametrize("extra", list(DUPLICABLE.values()), ids=list(DUPLICABLE))
def test_rfc6749_3_1_duplicate_parameter(op: Any, extra: str) -> None:
    query = auth_query(prompt="consent", max_age="5", response_mode="query", claims="{}",
                       code_challenge=s256(new_verifier()), code_challenge_method="S256")
    error = parse_error(op, query + "&" + extra)
    state = None if extra.startswith("state=") else "st4te"
    assert_redirected(error, "invalid_request", fragment=False, state=state)


@pytest.mark.parametrize("query", [
    auth_query() + "&client_id=" + CLIENT_ID,
    auth_query() + "&" + urlencode({"redirect_uri": REDIRECT_URI}),
    auth_query() + "&" + urlencode({"redirect_uri": "https://evil.example/cb"}),
], ids=["client-id-same-value", "redirect-uri-same-value", "redirect-uri-other-value"])
def test_rfc6749_3_1_duplicate_client_id_or_redirect_uri_never_redirects(op: Any,
                                                                          query: str) -> None:
    error = parse_error(op, query)
    assert isinstance(error, (InvalidClientId, InvalidRedirectURI))
    assert_not_redirected(error)


# -- prompt and max_age (OIDC Core 3.1.2.1) ----------------------------------------------------

@pytest.mark.parametrize("prompt", ["none login", "none consent", "none select_account",
                                    "login none", "consent none login"])
def test_oidc_core_3_1_2_1_prompt_none_with_other_values(op: Any, prompt: str) -> None:
    error = parse_error(op, auth_query(prompt=prompt))
    assert_redirected(error, "invalid_request", fragment=False)


@pytest.mark.parametrize("response_type,fragment", [("code", False), ("id_token", True),
                                                    ("code id_token", True)])
def test_oidcc_prompt_none_not_logged_in_login_required(op: Any, response_type: str,
                                                        fragment: bool) -> None:
    request = op.parse_authentication_request(auth_query(prompt="none",
                                                         response_type=response_type))
    assert request["prompt"] == ["none"]
    error = op.create_authentication_error(request, "login_required")
    assert_redirected(error, "login_required", fragment=fragment)


def test_oidcc_prompt_none_login_required_after_dict_round_trip(op: Any) -> None:
    # hosts keep ``request.to_dict()`` in their session (original README)
    request = op.parse_authentication_request(auth_query(prompt="none"))
    error = op.create_authentication_error(request.to_dict(), "login_required")
    assert_redirected(error, "login_required", fragment=False)


@pytest.mark.parametrize("max_age", ["-1", "abc", "1.5", "1e3", "+5", " 5", "5 ", "0x10",
                                     "\uff11\uff10", "\u00b2", "-0"],
                         ids=["negative", "word", "decimal", "exponent", "plus-sign",
                              "leading-space", "trailing-space", "hex", "fullwidth-digits",
                              "superscript-digit", "minus-zero"])
def test_oidc_core_3_1_2_1_max_age_not_a_non_negative_integer(op: Any, max_age: str) -> None:
    error = parse_error(op, auth_query(max_age=max_age))
    assert_redirected(error, "invalid_request", fragment=False)


@pytest.mark.parametrize("max_age", ["0", "300", "86400"])
def test_oidc_core_3_1_2_1_max_age_valid_values_accepted(op: Any, max_age: str) -> None:
    request = op.parse_authentication_request(auth_query(max_age=max_age))
    assert request["max_age"] == int(max_age)


# -- request objects (oidcc-*-request-object-supported-correctly-or-rejected-as-unsupported) ---

@pytest.mark.parametrize("response_type,fragment", [("code", False), ("id_token", True),
                                                    ("code id_token token", True)])
def test_oidcc_request_object_rejected_as_unsupported(op: Any, response_type: str,
                                                      fragment: bool) -> None:
    request_object = "eyJhbGciOiJub25lIn0.eyJjbGllbnRfaWQiOiJjbGllbnQxIn0."
    error = parse_error(op, auth_query(response_type=response_type, request=request_object))
    assert_redirected(error, "request_not_supported", fragment=fragment)


@pytest.mark.parametrize("response_type,fragment", [("code", False), ("id_token", True)])
def test_oidcc_request_uri_rejected_as_unsupported(op: Any, response_type: str,
                                                   fragment: bool) -> None:
    error = parse_error(op, auth_query(response_type=response_type,
                                       request_uri="https://rp.example.com/request.jwt"))
    assert_redirected(error, "request_uri_not_supported", fragment=fragment)


def test_oidcc_request_object_for_unknown_client_never_redirects(op: Any) -> None:
    error = parse_error(op, auth_query(client_id="unknown-client", request="a.b.c"))
    assert_not_redirected(error)


def test_oidc_discovery_request_uri_advertised_unsupported(make_op: Any) -> None:
    provider = make_op(config=security_configuration(request_uri_parameter_supported=True))
    metadata = provider.provider_configuration
    assert metadata["request_parameter_supported"] is False
    assert metadata["request_uri_parameter_supported"] is False
    error = parse_error(provider, auth_query(request="a.b.c"))
    assert_redirected(error, "request_not_supported", fragment=False)
    error = parse_error(provider, auth_query(request_uri="https://rp.example.com/r"))
    assert_redirected(error, "request_uri_not_supported", fragment=False)


# -- PKCE (RFC 7636, RFC 9700 2.1.1) -----------------------------------------------------------

def test_rfc7636_s256_accepted_and_verified(op: Any) -> None:
    verifier = new_verifier()
    request = op.parse_authentication_request(auth_query(
        code_challenge=s256(verifier), code_challenge_method="S256"))
    code = op.authorize(request, USER_ID)["code"]
    assert redeem(op, code, code_verifier=verifier)["access_token"]


def test_rfc7636_only_s256_advertised_by_default(op: Any, make_op: Any) -> None:
    assert op.provider_configuration["code_challenge_methods_supported"] == ["S256"]
    # not advertised unless configured (as pyop 3), and plain is never offered by default
    from .helpers import security_configuration

    config = security_configuration()
    del config["code_challenge_methods_supported"]
    assert "code_challenge_methods_supported" not in make_op(
        config=config).provider_configuration
    config["code_challenge_methods_supported"] = ["S256", "plain"]
    with pytest.raises(InvalidConfiguration, match="allow_plain_pkce"):
        make_op(config=config)


@pytest.mark.parametrize("method", ["plain", None], ids=["plain", "method-omitted-means-plain"])
def test_rfc9700_2_1_1_plain_refused_unless_configured(op: Any, method: Any) -> None:
    error = parse_error(op, auth_query(code_challenge=new_verifier(),
                                       code_challenge_method=method))
    assert_redirected(error, "invalid_request", fragment=False)


@pytest.mark.parametrize("method", ["plain", None], ids=["plain", "method-omitted-means-plain"])
def test_rfc7636_plain_accepted_when_configured(plain_pkce_op: Any, method: Any) -> None:
    verifier = new_verifier()
    request = plain_pkce_op.parse_authentication_request(auth_query(
        code_challenge=verifier, code_challenge_method=method))
    code = plain_pkce_op.authorize(request, USER_ID)["code"]
    assert redeem(plain_pkce_op, code, code_verifier=verifier)["access_token"]


@pytest.mark.parametrize("method", ["S512", "s256", "sha256", "none"])
def test_rfc7636_4_4_1_unknown_challenge_method(op: Any, method: str) -> None:
    error = parse_error(op, auth_query(code_challenge=s256(new_verifier()),
                                       code_challenge_method=method))
    assert_redirected(error, "invalid_request", fragment=False)


MALFORMED_CHALLENGES = {
    "42-chars": "a" * 42,
    "129-chars": "a" * 129,
    "short": "abc",
    "padding": s256(new_verifier()) + "=",
    "plus-and-slash": "+/" * 22,
    "space": "a" * 21 + " " + "a" * 21,
    "non-ascii": "\u00e9" * 43,
    "nul-free-control-char": "a" * 42 + "\t",
}


@pytest.mark.parametrize("challenge", list(MALFORMED_CHALLENGES.values()),
                         ids=list(MALFORMED_CHALLENGES))
@pytest.mark.parametrize("method", ["S256", "plain"])
def test_rfc7636_4_2_malformed_challenge_rejected_at_authorization(
        plain_pkce_op: Any, challenge: str, method: str) -> None:
    error = parse_error(plain_pkce_op, auth_query(code_challenge=challenge,
                                                  code_challenge_method=method))
    assert_redirected(error, "invalid_request", fragment=False)


def test_rfc7636_challenge_method_without_challenge(op: Any) -> None:
    error = parse_error(op, auth_query(code_challenge_method="S256"))
    assert_redirected(error, "invalid_request", fragment=False)


def test_rfc9700_2_1_1_public_client_without_pkce_rejected(op: Any) -> None:
    error = parse_error(op, auth_query(PUBLIC_CLIENT_ID))
    assert_redirected(error, "invalid_request", fragment=False, redirect_uri=PUBLIC_REDIRECT_URI)


def test_rfc9700_2_1_1_public_client_with_pkce_accepted(op: Any) -> None:
    verifier = new_verifier()
    request = op.parse_authentication_request(auth_query(
        PUBLIC_CLIENT_ID, code_challenge=s256(verifier), code_challenge_method="S256"))
    code = op.authorize(request, USER_ID)["code"]
    response = redeem(op, code, PUBLIC_CLIENT_ID, code_verifier=verifier)
    assert response["access_token"]


# -- offline_access (OIDC Core 11) -------------------------------------------------------------

@pytest.mark.parametrize("prompt", [None, "login", "none"])
def test_oidc_core_11_offline_access_dropped_without_prompt_consent(op: Any,
                                                                     prompt: Any) -> None:
    request = op.parse_authentication_request(auth_query(scope="openid offline_access",
                                                         prompt=prompt))
    assert "offline_access" not in request["scope"]
    if prompt != "none":
        code = op.authorize(request, USER_ID)["code"]
        assert "offline_access" not in scope_of(redeem(op, code))


def test_oidc_core_11_offline_access_kept_with_prompt_consent(op: Any) -> None:
    request = op.parse_authentication_request(auth_query(scope="openid offline_access",
                                                         prompt="consent"))
    assert "offline_access" in request["scope"]
    code = op.authorize(request, USER_ID)["code"]
    assert "offline_access" in scope_of(redeem(op, code))


# -- oversized input (SECURITY.md, "Token endpoint": a quick 4xx, here at authorization) -------

MEGABYTE = 1 << 20


@pytest.mark.parametrize("request_", [
    auth_query(state="s" * MEGABYTE),
    (auth_query(state="s" * MEGABYTE)).encode(),
    auth_params(state="s" * MEGABYTE),
    auth_query() + "&" + "&".join(f"p{i}=1" for i in range(150_000)),
], ids=["1mb-query", "1mb-bytes", "1mb-mapping-value", "1mb-of-parameters"])
def test_security_md_oversized_authentication_request(op: Any, request_: Any) -> None:
    # too large to be parsed: the client cannot be verified, so nothing is redirected
    assert_not_redirected(parse_error(op, request_))


# -- preamble: only typed errors --------------------------------------------------------------

GARBAGE_REQUESTS: dict[str, Any] = {
    "none": None,
    "empty": "",
    "integer": 12345,
    "list": ["client_id", CLIENT_ID],
    "invalid-utf8-bytes": b"client_id=\xff\xfe",
    "invalid-utf8-percent": "client_id=%FF%FE",
    "nul-in-value": auth_query(state="a\x00b"),
    "nul-in-name": auth_query() + "&st%00ate=x",
    "dict-non-string-value": {**auth_params(), "max_age": 5},
    "dict-non-string-key": {**auth_params(), 5: "x"},
    "dict-nested-dict": {**auth_params(), "claims": {"userinfo": {}}},
    "too-many-fields": "&".join(f"p{i}=1" for i in range(1100)),
    "claims-json-array": auth_query(claims="[1, 2]"),
    "claims-json-deep": auth_query(claims="[" * 20000 + "]" * 20000),
    "claims-member-not-object": auth_query(claims='{"userinfo": 5}'),
    "claims-entry-not-object": auth_query(claims='{"id_token": {"email": 5}}'),
    "claims-essential-not-bool": auth_query(claims='{"userinfo": {"email": {"essential": 1}}}'),
    "claims-values-not-list": auth_query(claims='{"userinfo": {"email": {"values": "a"}}}'),
    "max-age-huge-float": auth_query(max_age="1e400"),
    "response-mode-unknown": auth_query(response_mode="form_post"),
    "prompt-unknown": auth_query(prompt="\u2603"),
    "scope-missing": auth_query(scope=None),
    "registration-param": auth_query(registration="{}"),
}


@pytest.mark.parametrize("request_", list(GARBAGE_REQUESTS.values()),
                         ids=list(GARBAGE_REQUESTS))
def test_security_md_garbage_authentication_requests_raise_typed_errors(op: Any,
                                                                        request_: Any) -> None:
    error = parse_error(op, request_)
    url = error.to_error_url()
    assert url is None or url.startswith(REDIRECT_URI)
