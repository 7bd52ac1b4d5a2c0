"""SECURITY.md, "Token endpoint": bad input at the token endpoint.

Each SECURITY.md line and the tests covering it:

- Code used twice -> 400 invalid_grant, every token issued from it revoked; exactly one of N
  concurrent redemptions succeeds: ``test_rfc6749_4_1_2_code_used_twice*``,
  ``test_rfc6749_4_1_2_code_replay_revokes_*``,
  ``test_rfc6749_4_1_2_concurrent_redemptions_exactly_one_succeeds`` (memory and sealed
  storage; Redis, SQL and MongoDB run the same race in tests/storage).
- Code of client A presented by B, redirect_uri differing, expired or unknown code ->
  invalid_grant: ``test_rfc6749_4_1_3_code_of_another_client``,
  ``test_rfc6749_4_1_3_redirect_uri_differs``, ``test_rfc6749_4_1_2_expired_code``,
  ``test_rfc6749_5_2_unknown_code``, ``test_rfc6749_5_2_other_token_types_as_code``.
- code_verifier wrong, missing, sent without challenge (downgrade), outside 43-128 chars of
  [A-Za-z0-9-._~] -> invalid_grant: ``test_rfc7636_4_6_*``, ``test_rfc9700_4_8_2_*``.
- Client credentials in the Basic header and the body -> invalid_request:
  ``test_rfc6749_2_3_1_credentials_in_header_and_body``.
- Basic header: standard base64, split(':', 1), form-url-decoded; malformed -> 401
  invalid_client (WWW-Authenticate: documented for hosts), never a crash; constant-time
  comparison: ``test_rfc6749_2_3_1_basic_*``, ``test_rfc6749_5_2_malformed_basic_header``,
  ``test_rfc6749_5_2_invalid_client_www_authenticate_documented``,
  ``test_design_secrets_compared_in_constant_time``.
- Wrong secret / unknown client -> 401 invalid_client:
  ``test_rfc6749_5_2_wrong_client_credentials``.
- Unsupported grant_type, grant not registered, missing grant_type:
  ``test_rfc6749_5_2_unsupported_grant_type``, ``test_rfc6749_5_2_grant_not_registered_*``,
  ``test_rfc6749_5_2_missing_grant_type``.
- Refresh: other client's token, wider scope, narrower ok, rotation replay revokes the grant,
  access token as refresh token: ``test_rfc6749_6_*``, ``test_rfc9700_4_14_2_*`` (including
  ``test_rfc9700_4_14_2_public_client_refresh_token_rotates_or_is_not_issued``: the MUST of
  RFC 9700 4.14.2 for public clients).
- Cache-Control: no-store documented: ``test_rfc6749_5_1_cache_control_no_store_documented``.
- Oversized input -> 4xx error: ``test_security_md_oversized_token_request``.
- Preamble ("nothing but the library's typed errors"):
  ``test_security_md_garbage_token_requests_raise_typed_errors``.
"""

from __future__ import annotations

import base64
import hmac
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import pytest

from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    InvalidClientAuthentication,
    InvalidRefreshToken,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from pyop.storage import StatelessWrapper

from .helpers import (
    CLIENT_B_ID,
    CLIENT_B_SECRET,
    CLIENT_ID,
    CLIENT_SECRET,
    CODE_ONLY_CLIENT_ID,
    ODD_CLIENT_ID,
    ODD_CLIENT_SECRET,
    POST_CLIENT_ID,
    POST_CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    assert_oauth_error,
    basic_header,
    bearer,
    client_headers,
    code_request,
    full_code_flow,
    issue_code,
    new_verifier,
    redeem,
    refresh,
    s256,
    scope_of,
    security_clients,
)

ROOT = Path(__file__).resolve().parents[2]


def token_error(call: Callable[[], Any]) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        call()
    return info.value


def assert_access_token_rejected(provider: Any, access_token: str) -> None:
    with pytest.raises(InvalidAccessToken) as info:
        provider.handle_userinfo_request(None, bearer(access_token))
    assert info.value.http_status == 401


def assert_invalid_grant(error: OAuthError) -> None:
    assert isinstance(error, (InvalidAuthorizationCode, InvalidRefreshToken))
    assert_oauth_error(error, "invalid_grant", 400)


# -- code replay (RFC 6749 4.1.2, 10.5) --------------------------------------------------------

def test_rfc6749_4_1_2_code_used_twice_invalid_grant(op: Any) -> None:
    code = issue_code(op)
    assert redeem(op, code)["access_token"]
    assert_invalid_grant(token_error(lambda: redeem(op, code)))


def test_rfc6749_4_1_2_code_used_twice_still_invalid_with_wrong_redirect_or_verifier(
        op: Any) -> None:
    verifier = new_verifier()
    code = issue_code(op, code_challenge=s256(verifier), code_challenge_method="S256")
    assert redeem(op, code, code_verifier=verifier)["access_token"]
    assert_invalid_grant(token_error(lambda: redeem(op, code)))
    assert_invalid_grant(token_error(lambda: redeem(op, code, code_verifier=verifier,
                                                    redirect_uri="https://evil.example/")))


def test_rfc6749_4_1_2_code_replay_revokes_access_token(op: Any) -> None:
    code = issue_code(op)
    first = redeem(op, code)
    assert op.handle_userinfo_request(None, bearer(first["access_token"]))["sub"]
    assert_invalid_grant(token_error(lambda: redeem(op, code)))
    assert_access_token_rejected(op, first["access_token"])


def test_rfc6749_4_1_2_code_replay_revokes_refresh_token(op: Any) -> None:
    code = issue_code(op)
    first = redeem(op, code)
    assert_invalid_grant(token_error(lambda: redeem(op, code)))
    assert_invalid_grant(token_error(lambda: refresh(op, first["refresh_token"])))


def test_rfc6749_4_1_2_code_replay_revokes_every_access_token_refreshed_from_it(
        op: Any) -> None:
    code = issue_code(op)
    first = redeem(op, code)
    refreshed = [refresh(op, first["refresh_token"])["access_token"] for _ in range(2)]
    assert_invalid_grant(token_error(lambda: redeem(op, code)))
    for access_token in [first["access_token"], *refreshed]:
        assert_access_token_rejected(op, access_token)


def test_rfc6749_4_1_2_code_replay_revokes_rotated_refresh_tokens(rotating_op: Any) -> None:
    code = issue_code(rotating_op)
    first = redeem(rotating_op, code)
    second = refresh(rotating_op, first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert_invalid_grant(token_error(lambda: redeem(rotating_op, code)))
    assert_invalid_grant(token_error(lambda: refresh(rotating_op, second["refresh_token"])))
    for access_token in (first["access_token"], second["access_token"]):
        assert_access_token_rejected(rotating_op, access_token)


@pytest.fixture(params=["memory", "sealed"])
def any_store_op(request: Any, make_op: Any, clock: Any) -> Any:
    """Memory storage, and sealed codes with their in-process replay cache.

    (Redis, SQL and MongoDB run the same race in tests/storage.)
    """
    kwargs: dict[str, Any] = {"refresh_token_lifetime": 3600}
    if request.param == "sealed":
        kwargs["authorization_code_db"] = StatelessWrapper("authz_codes", "s" * 32, clock=clock)
    return make_op(authz_kwargs=kwargs)


def test_rfc6749_4_1_2_concurrent_redemptions_exactly_one_succeeds(any_store_op: Any) -> None:
    op = any_store_op
    threads_per_code, codes = 8, [issue_code(op) for _ in range(50)]
    successes: Counter[str] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(code: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            redeem(op, code)
        except BaseException as e:  # noqa: BLE001 - every outcome is recorded and checked
            with lock:
                failures.append(e)
        else:
            with lock:
                successes[code] += 1

    for code in codes:
        barrier = threading.Barrier(threads_per_code)
        threads = [threading.Thread(target=worker, args=(code, barrier))
                   for _ in range(threads_per_code)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert successes == Counter({code: 1 for code in codes})
    assert len(failures) == len(codes) * (threads_per_code - 1)
    for error in failures:
        assert isinstance(error, InvalidAuthorizationCode), repr(error)
        assert_oauth_error(error, "invalid_grant", 400)


# -- code binding, expiry (RFC 6749 4.1.3, 10.5) -----------------------------------------------

def test_rfc6749_4_1_3_code_of_another_client(op: Any) -> None:
    code = issue_code(op, CLIENT_ID)
    error = token_error(lambda: op.handle_token_request(
        code_request(code, CLIENT_B_ID, redirect_uri=REDIRECT_URI), client_headers(CLIENT_B_ID)))
    assert_invalid_grant(error)
    # the rightful client can still redeem it
    assert redeem(op, code)["access_token"]


def test_rfc6749_4_1_3_code_of_confidential_client_by_public_client(op: Any) -> None:
    code = issue_code(op, CLIENT_ID)
    error = token_error(lambda: op.handle_token_request(
        code_request(code, PUBLIC_CLIENT_ID, redirect_uri=REDIRECT_URI,
                     client_id=PUBLIC_CLIENT_ID), {}))
    assert_invalid_grant(error)


@pytest.mark.parametrize("redirect_uri", [
    None, REDIRECT_URI + "/", "https://rp2.example.com/callback", REDIRECT_URI.upper(),
    REDIRECT_URI + "?x=1",
], ids=["missing", "trailing-slash", "other-client", "case", "added-query"])
def test_rfc6749_4_1_3_redirect_uri_differs(op: Any, redirect_uri: Any) -> None:
    code = issue_code(op)
    assert_invalid_grant(token_error(lambda: redeem(op, code, redirect_uri=redirect_uri)))


@pytest.mark.parametrize("seconds", [600, 601, 86400])
def test_rfc6749_4_1_2_expired_code(op: Any, clock: Any, seconds: int) -> None:
    code = issue_code(op)
    clock.advance(seconds)
    assert_invalid_grant(token_error(lambda: redeem(op, code)))


def test_rfc6749_4_1_2_code_valid_until_expiry(op: Any, clock: Any) -> None:
    code = issue_code(op)
    clock.advance(599)
    assert redeem(op, code)["access_token"]


@pytest.mark.parametrize("code", [
    "unknown", "A" * 43, "x" * 5000, "\u2603", "null", "{}", "a.b.c", "../../etc/passwd",
], ids=["word", "token-shaped", "5000-chars", "unicode", "null", "json", "jws-shaped",
        "path"])
def test_rfc6749_5_2_unknown_code(op: Any, code: str) -> None:
    assert_invalid_grant(token_error(lambda: redeem(op, code)))


def test_rfc6749_5_2_code_of_another_provider_instance(op: Any, make_op: Any) -> None:
    other = make_op(authz_kwargs={"refresh_token_lifetime": 3600})
    code = issue_code(other)
    assert_invalid_grant(token_error(lambda: redeem(op, code)))


@pytest.mark.parametrize("kind", ["access_token", "refresh_token", "id_token"])
def test_rfc6749_5_2_other_token_types_as_code(op: Any, kind: str) -> None:
    value = full_code_flow(op)[kind]
    assert_invalid_grant(token_error(lambda: redeem(op, value)))


def test_rfc6749_4_1_3_missing_code(op: Any) -> None:
    error = token_error(lambda: op.handle_token_request(
        urlencode({"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI}),
        client_headers()))
    assert_oauth_error(error, "invalid_request", 400)


# -- PKCE at the token endpoint (RFC 7636 4.6, RFC 9700 4.8.2) ---------------------------------

def pkce_code(provider: Any, verifier: str, method: str = "S256") -> str:
    challenge = s256(verifier) if method == "S256" else verifier
    return issue_code(provider, code_challenge=challenge, code_challenge_method=method)


def test_rfc7636_4_6_correct_verifier_accepted(op: Any) -> None:
    verifier = new_verifier()
    assert redeem(op, pkce_code(op, verifier), code_verifier=verifier)["access_token"]


@pytest.mark.parametrize("method", ["S256", "plain"])
def test_rfc7636_4_6_wrong_verifier(plain_pkce_op: Any, method: str) -> None:
    code = pkce_code(plain_pkce_op, new_verifier(), method)
    assert_invalid_grant(token_error(lambda: redeem(plain_pkce_op, code,
                                                    code_verifier=new_verifier())))


def test_rfc7636_4_6_challenge_as_verifier(op: Any) -> None:
    verifier = new_verifier()
    code = pkce_code(op, verifier)
    assert_invalid_grant(token_error(lambda: redeem(op, code, code_verifier=s256(verifier))))


@pytest.mark.parametrize("method", ["S256", "plain"])
def test_rfc7636_4_6_missing_verifier_when_challenge_sent(plain_pkce_op: Any,
                                                          method: str) -> None:
    code = pkce_code(plain_pkce_op, new_verifier(), method)
    assert_invalid_grant(token_error(lambda: redeem(plain_pkce_op, code)))


def test_rfc9700_4_8_2_verifier_without_challenge_is_pkce_downgrade(op: Any) -> None:
    code = issue_code(op)
    assert_invalid_grant(token_error(lambda: redeem(op, code, code_verifier=new_verifier())))


def test_rfc9700_4_8_2_public_client_verifier_without_challenge_impossible(op: Any) -> None:
    # public clients cannot even obtain a code without a challenge
    with pytest.raises(OAuthError):
        issue_code(op, PUBLIC_CLIENT_ID)


BAD_VERIFIERS = {
    "42-chars": "a" * 42,
    "129-chars": "a" * 129,
    "plus": "+" + "a" * 42,
    "slash": "/" + "a" * 42,
    "padding": "a" * 42 + "=",
    "space": "a" * 21 + " " + "a" * 21,
    "non-ascii": "\u00e9" + "a" * 42,
    "percent": "%41" + "a" * 40,
    "tab": "a" * 42 + "\t",
}


@pytest.mark.parametrize("verifier", list(BAD_VERIFIERS.values()), ids=list(BAD_VERIFIERS))
def test_rfc7636_4_1_verifier_syntax(op: Any, verifier: str) -> None:
    # the challenge is the genuine S256 of the bad verifier: only its syntax is wrong
    code = issue_code(op, code_challenge=s256(verifier), code_challenge_method="S256")
    assert_invalid_grant(token_error(lambda: redeem(op, code, code_verifier=verifier)))


@pytest.mark.parametrize("length", [43, 128])
def test_rfc7636_4_1_verifier_length_bounds_accepted(op: Any, length: int) -> None:
    verifier = ("abcXYZ019-._~" * 10)[:length]
    code = issue_code(op, code_challenge=s256(verifier), code_challenge_method="S256")
    assert redeem(op, code, code_verifier=verifier)["access_token"]


# -- client authentication (RFC 6749 2.3.1, 5.2) -----------------------------------------------

@pytest.mark.parametrize("body", [
    {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    {"client_secret": CLIENT_SECRET},
    {"client_secret": "something-else"},
], ids=["id-and-secret", "secret-only", "other-secret"])
def test_rfc6749_2_3_1_credentials_in_header_and_body(op: Any, body: dict[str, str]) -> None:
    code = issue_code(op)
    error = token_error(lambda: op.handle_token_request(code_request(code, **body),
                                                        client_headers()))
    assert_oauth_error(error, "invalid_request", 400)


def test_rfc6749_2_3_1_header_and_body_client_id_differ(op: Any) -> None:
    code = issue_code(op)
    error = token_error(lambda: op.handle_token_request(code_request(code, client_id=CLIENT_B_ID),
                                                        client_headers()))
    assert_oauth_error(error, "invalid_request", 400)


def test_rfc6749_2_3_1_basic_credentials_form_url_decoded(op: Any) -> None:
    code = issue_code(op, ODD_CLIENT_ID)
    response = op.handle_token_request(code_request(code, ODD_CLIENT_ID),
                                       basic_header(ODD_CLIENT_ID, ODD_CLIENT_SECRET))
    assert response["access_token"]


def test_rfc6749_2_3_1_basic_credentials_not_encoded_are_decoded(op: Any) -> None:
    # the client forgot to form-url-encode: '%3A' and '+' in its secret are decoded, so
    # the secret no longer matches (proof that the parts are decoded)
    code = issue_code(op, ODD_CLIENT_ID)
    raw = "{}:{}".format("odd+client%3A1%2B%C3%A9", ODD_CLIENT_SECRET)
    header = {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
    error = token_error(lambda: op.handle_token_request(code_request(code, ODD_CLIENT_ID),
                                                        header))
    assert isinstance(error, InvalidClientAuthentication)
    assert_oauth_error(error, "invalid_client", 401)


@pytest.mark.parametrize("encode", [True, False], ids=["encoded", "raw-colons"])
def test_rfc6749_2_3_1_basic_split_on_first_colon(make_op: Any, encode: bool) -> None:
    clients = security_clients()
    clients[CLIENT_ID]["client_secret"] = "s:e:c:r:e:t"
    provider = make_op(client_db=clients)
    code = issue_code(provider)
    if encode:
        headers = basic_header(CLIENT_ID, "s:e:c:r:e:t")
    else:
        raw = base64.b64encode(b"client1:s:e:c:r:e:t").decode()
        headers = {"Authorization": "Basic " + raw}
    assert provider.handle_token_request(code_request(code), headers)["access_token"]


@pytest.mark.parametrize("name", ["authorization", "AUTHORIZATION", "Authorization"])
def test_rfc7230_3_2_authorization_header_name_case_insensitive(op: Any, name: str) -> None:
    code = issue_code(op)
    value = client_headers()["Authorization"]
    assert op.handle_token_request(code_request(code), {name: value})["access_token"]


def test_rfc7617_2_basic_scheme_case_insensitive(op: Any) -> None:
    code = issue_code(op)
    value = client_headers()["Authorization"].replace("Basic", "bAsIc")
    assert op.handle_token_request(code_request(code), {"Authorization": value})["access_token"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


MALFORMED_BASIC = {
    "empty-header": "",
    "whitespace-header": "   ",
    "not-base64": "Basic !!!notbase64!!!",
    "no-colon": "Basic " + b64(b"client1secret-of-client1"),
    "empty-credentials": "Basic ",
    "basic-alone": "Basic",
    "empty-client-id": "Basic " + b64(b":" + CLIENT_SECRET.encode()),
    "empty-secret": "Basic " + b64(b"client1:"),
    "only-colon": "Basic " + b64(b":"),
    "unicode-garbage": "Basic \u2603\u2603\u2603",
    "non-utf8-payload": "Basic " + b64(b"\xff\xfe:\xfd"),
    "urlsafe-alphabet": "Basic " + b64(b"client1:secret?>>").replace("+", "-").replace("/", "_"),
    "missing-padding": "Basic " + b64(b"client1:secret-of-client").rstrip("="),
    "bearer-scheme": "Bearer x",
    "digest-scheme": "Digest username=client1",
    "no-scheme": b64(b"client1:secret-of-client1"),
    "double-space": "Basic  " + b64(b"client1:wrong"),
    "trailing-garbage": "Basic " + b64(b"client1:secret-of-client1") + " extra",
    "nul-in-secret": "Basic " + b64(b"client1:secret-of-client1\x00"),
    "percent-garbage": "Basic " + b64(b"client1:%zz%"),
    "one-megabyte": "Basic " + "A" * (1 << 20),
}


@pytest.mark.parametrize("header", list(MALFORMED_BASIC.values()), ids=list(MALFORMED_BASIC))
def test_rfc6749_5_2_malformed_basic_header(op: Any, header: str) -> None:
    code = issue_code(op)
    error = token_error(lambda: op.handle_token_request(code_request(code),
                                                        {"Authorization": header}))
    assert isinstance(error, InvalidClientAuthentication), repr(error)
    assert_oauth_error(error, "invalid_client", 401)


def test_rfc6749_5_2_invalid_client_www_authenticate_documented() -> None:
    # the host sends WWW-Authenticate; the library says so where hosts look
    errors = (ROOT / "docs" / "errors.rst").read_text(encoding="utf-8")
    notes = re.findall(r"^:class:`~pyop\.exceptions\.InvalidClientAuthentication`\n((?:   .*\n)+)",
                       errors, re.MULTILINE)
    assert any("WWW-Authenticate" in note for note in notes)
    assert "WWW-Authenticate" in (InvalidClientAuthentication.__doc__ or "")
    assert '"WWW-Authenticate"' in (ROOT / "README.md").read_text(encoding="utf-8")


def test_design_secrets_compared_in_constant_time(op: Any, monkeypatch: Any) -> None:
    real = hmac.compare_digest
    calls: list[tuple[Any, Any]] = []

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    import pyop.client_authentication

    monkeypatch.setattr(pyop.client_authentication.hmac, "compare_digest", spy)
    code = issue_code(op)
    error = token_error(lambda: op.handle_token_request(
        code_request(code), basic_header(CLIENT_ID, "wrong-secret")))
    assert_oauth_error(error, "invalid_client", 401)
    assert any(CLIENT_SECRET.encode() in (a, b) or CLIENT_SECRET in (a, b) for a, b in calls)
    calls.clear()
    assert op.handle_token_request(code_request(code), client_headers())["access_token"]
    assert any(CLIENT_SECRET.encode() in (a, b) or CLIENT_SECRET in (a, b) for a, b in calls)


def test_design_pkce_compared_in_constant_time(op: Any, monkeypatch: Any) -> None:
    real = hmac.compare_digest
    calls: list[tuple[Any, Any]] = []

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    import pyop.provider

    monkeypatch.setattr(pyop.provider.hmac, "compare_digest", spy)
    verifier = new_verifier()
    code = pkce_code(op, verifier)
    assert_invalid_grant(token_error(lambda: redeem(op, code, code_verifier=new_verifier())))
    challenge = s256(verifier)
    assert any(challenge.encode() in (a, b) or challenge in (a, b) for a, b in calls)


WRONG_CREDENTIALS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "wrong-secret-basic": (basic_header(CLIENT_ID, "wrong"), {}),
    "secret-prefix-basic": (basic_header(CLIENT_ID, CLIENT_SECRET[:-1]), {}),
    "secret-extended-basic": (basic_header(CLIENT_ID, CLIENT_SECRET + "x"), {}),
    "secret-case-basic": (basic_header(CLIENT_ID, CLIENT_SECRET.upper()), {}),
    "other-clients-secret-basic": (basic_header(CLIENT_ID, CLIENT_B_SECRET), {}),
    "unknown-client-basic": (basic_header("unknown-client", CLIENT_SECRET), {}),
    "unknown-client-post": ({}, {"client_id": "unknown-client", "client_secret": "x"}),
    "unknown-client-none": ({}, {"client_id": "unknown-client"}),
    "wrong-secret-post": ({}, {"client_id": POST_CLIENT_ID, "client_secret": "wrong"}),
    "basic-client-uses-post": ({}, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
    "post-client-uses-basic": (basic_header(POST_CLIENT_ID, POST_CLIENT_SECRET), {}),
    "confidential-client-without-secret": ({}, {"client_id": CLIENT_ID}),
    "public-client-with-secret": ({}, {"client_id": PUBLIC_CLIENT_ID, "client_secret": "x"}),
    "public-client-basic": (basic_header(PUBLIC_CLIENT_ID, ""), {}),
    "secret-without-client-id": ({}, {"client_secret": CLIENT_SECRET}),
    "no-authentication": ({}, {}),
}


@pytest.mark.parametrize("credentials", list(WRONG_CREDENTIALS.values()),
                         ids=list(WRONG_CREDENTIALS))
def test_rfc6749_5_2_wrong_client_credentials(op: Any, credentials: Any) -> None:
    headers, body = credentials
    code = issue_code(op)
    error = token_error(lambda: op.handle_token_request(code_request(code, **body), headers))
    assert isinstance(error, InvalidClientAuthentication), repr(error)
    assert_oauth_error(error, "invalid_client", 401)
    # a failed authentication does not burn the client's code
    assert redeem(op, code)["access_token"]


@pytest.mark.parametrize("credentials", list(WRONG_CREDENTIALS.values())[:6],
                         ids=list(WRONG_CREDENTIALS)[:6])
def test_rfc6749_5_2_wrong_client_credentials_at_refresh(op: Any, credentials: Any) -> None:
    headers, body = credentials
    refresh_token = full_code_flow(op)["refresh_token"]
    error = token_error(lambda: op.handle_token_request(
        urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token, **body}),
        headers))
    assert_oauth_error(error, "invalid_client", 401)


def test_rfc6749_5_2_expired_client_secret(make_op: Any, clock: Any) -> None:
    clients = security_clients()
    clients[CLIENT_ID]["client_secret_expires_at"] = int(clock()) + 10
    provider = make_op(client_db=clients)
    code = issue_code(provider)
    clock.advance(10)
    error = token_error(lambda: redeem(provider, code))
    assert_oauth_error(error, "invalid_client", 401)


# -- grant types (RFC 6749 5.2) ----------------------------------------------------------------

@pytest.mark.parametrize("grant_type", [
    "password", "client_credentials", "implicit", "bogus", "AUTHORIZATION_CODE",
    "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:token-exchange", "urn:openid:params:grant-type:ciba",
])
def test_rfc6749_5_2_unsupported_grant_type(op: Any, grant_type: str) -> None:
    error = token_error(lambda: op.handle_token_request(
        urlencode({"grant_type": grant_type, "username": "alice", "password": "x"}),
        client_headers()))
    assert isinstance(error, UnsupportedGrantType)
    assert_oauth_error(error, "unsupported_grant_type", 400)


def test_rfc6749_5_2_refresh_grant_unsupported_without_refresh_tokens(no_refresh_op: Any
                                                                      ) -> None:
    error = token_error(lambda: refresh(no_refresh_op, "anything"))
    assert_oauth_error(error, "unsupported_grant_type", 400)


def test_rfc6749_5_2_grant_not_registered_is_unauthorized_client(op: Any) -> None:
    error = token_error(lambda: refresh(op, "anything", CODE_ONLY_CLIENT_ID))
    assert isinstance(error, UnauthorizedClient)
    assert_oauth_error(error, "unauthorized_client", 400)


def test_rfc6749_5_2_grant_not_registered_even_with_a_real_refresh_token(make_op: Any) -> None:
    clients = security_clients()
    provider = make_op(client_db=clients, authz_kwargs={"refresh_token_lifetime": 3600})
    refresh_token = full_code_flow(provider)["refresh_token"]
    clients[CLIENT_ID]["grant_types"] = ["authorization_code"]
    error = token_error(lambda: refresh(provider, refresh_token))
    assert_oauth_error(error, "unauthorized_client", 400)


def test_rfc6749_5_2_missing_grant_type(op: Any) -> None:
    code = issue_code(op)
    error = token_error(lambda: op.handle_token_request(code_request(code, grant_type=None),
                                                        client_headers()))
    assert_oauth_error(error, "invalid_request", 400)


def test_rfc6749_3_2_repeated_parameters(op: Any) -> None:
    code = issue_code(op)
    error = token_error(lambda: op.handle_token_request(
        code_request(code) + "&grant_type=authorization_code", client_headers()))
    assert_oauth_error(error, "invalid_request", 400)
    error = token_error(lambda: op.handle_token_request(
        code_request(code) + "&code=" + code, client_headers()))
    assert_oauth_error(error, "invalid_request", 400)


# -- refresh tokens (RFC 6749 6, RFC 9700 4.14.2) ----------------------------------------------

def test_rfc6749_6_refresh_token_of_another_client(op: Any) -> None:
    refresh_token = full_code_flow(op)["refresh_token"]
    assert_invalid_grant(token_error(lambda: refresh(op, refresh_token, CLIENT_B_ID)))
    # still the rightful client's
    assert refresh(op, refresh_token)["access_token"]


@pytest.mark.parametrize("scope", ["openid profile email", "openid email", "email",
                                   "openid offline_access", "openid profile bogus"])
def test_rfc6749_6_wider_scope_is_invalid_scope(op: Any, scope: str) -> None:
    refresh_token = full_code_flow(op, scope="openid profile")["refresh_token"]
    error = token_error(lambda: refresh(op, refresh_token, scope=scope))
    assert isinstance(error, InvalidScope)
    assert_oauth_error(error, "invalid_scope", 400)


@pytest.mark.parametrize("scope", ["openid", "openid profile", "profile openid"])
def test_rfc6749_6_narrower_or_equal_scope_ok(op: Any, scope: str) -> None:
    refresh_token = full_code_flow(op, scope="openid profile")["refresh_token"]
    response = refresh(op, refresh_token, scope=scope)
    assert sorted(scope_of(response)) == sorted(scope.split())
    claims = op.handle_userinfo_request(None, bearer(response["access_token"]))
    assert ("name" in claims) == ("profile" in scope.split())


def test_rfc6749_6_expired_refresh_token(op: Any, clock: Any) -> None:
    refresh_token = full_code_flow(op)["refresh_token"]
    clock.advance(3600)
    assert_invalid_grant(token_error(lambda: refresh(op, refresh_token)))


@pytest.mark.parametrize("kind", ["access_token", "id_token", "code"])
def test_rfc6749_6_other_token_types_as_refresh_token(op: Any, kind: str) -> None:
    if kind == "code":
        value = issue_code(op)
    else:
        value = full_code_flow(op)[kind]
    assert_invalid_grant(token_error(lambda: refresh(op, value)))


@pytest.mark.parametrize("value", ["unknown", "x" * 5000, "\u2603"])
def test_rfc6749_6_unknown_refresh_token(op: Any, value: str) -> None:
    assert_invalid_grant(token_error(lambda: refresh(op, value)))


def test_rfc9700_4_14_2_rotation_issues_new_refresh_token(rotating_op: Any) -> None:
    first = full_code_flow(rotating_op)
    second = refresh(rotating_op, first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert refresh(rotating_op, second["refresh_token"])["access_token"]


def test_rfc9700_4_14_2_rotated_refresh_token_replay_invalid_grant(rotating_op: Any) -> None:
    first = full_code_flow(rotating_op)
    refresh(rotating_op, first["refresh_token"])
    assert_invalid_grant(token_error(lambda: refresh(rotating_op, first["refresh_token"])))


def test_rfc9700_4_14_2_replay_revokes_new_refresh_token_and_its_access_token(
        rotating_op: Any) -> None:
    first = full_code_flow(rotating_op)
    second = refresh(rotating_op, first["refresh_token"])
    assert_invalid_grant(token_error(lambda: refresh(rotating_op, first["refresh_token"])))
    assert_invalid_grant(token_error(lambda: refresh(rotating_op, second["refresh_token"])))
    assert_access_token_rejected(rotating_op, second["access_token"])


def test_rfc9700_4_14_2_replay_revokes_the_whole_chain(rotating_op: Any) -> None:
    first = full_code_flow(rotating_op)
    second = refresh(rotating_op, first["refresh_token"])
    third = refresh(rotating_op, second["refresh_token"])
    assert_invalid_grant(token_error(lambda: refresh(rotating_op, first["refresh_token"])))
    assert_invalid_grant(token_error(lambda: refresh(rotating_op, third["refresh_token"])))
    for response in (second, third):
        assert_access_token_rejected(rotating_op, response["access_token"])


def test_rfc9700_4_14_2_replay_revokes_every_access_token_of_the_grant(
        rotating_op: Any) -> None:
    first = full_code_flow(rotating_op)
    second = refresh(rotating_op, first["refresh_token"])
    assert_invalid_grant(token_error(lambda: refresh(rotating_op, first["refresh_token"])))
    for response in (first, second):
        assert_access_token_rejected(rotating_op, response["access_token"])


def test_rfc9700_4_14_2_public_client_refresh_token_rotates_or_is_not_issued(op: Any) -> None:
    # "Authorization servers MUST utilize one of these methods to detect refresh token replay
    # by malicious actors for public clients": sender-constraining (not implemented) or
    # rotation. The provider is configured without a rotation threshold: a public client
    # must then get no refresh token, or one that rotates anyway.
    verifier = new_verifier()
    code = issue_code(op, PUBLIC_CLIENT_ID, code_challenge=s256(verifier),
                      code_challenge_method="S256")
    first = redeem(op, code, PUBLIC_CLIENT_ID, code_verifier=verifier)
    if "refresh_token" not in first:
        return
    second = refresh(op, first["refresh_token"], PUBLIC_CLIENT_ID)
    assert second.get("refresh_token") not in (None, first["refresh_token"])
    assert_invalid_grant(token_error(lambda: refresh(op, first["refresh_token"],
                                                     PUBLIC_CLIENT_ID)))


def test_rfc9700_4_14_2_concurrent_rotation_exactly_one_succeeds(rotating_op: Any) -> None:
    refresh_token = full_code_flow(rotating_op)["refresh_token"]
    barrier = threading.Barrier(8)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            result: Any = refresh(rotating_op, refresh_token)
        except BaseException as e:  # noqa: BLE001 - every outcome is checked
            result = e
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(outcomes) - len(errors) == 1
    for error in errors:
        assert_invalid_grant(error)


# -- Cache-Control (RFC 6749 5.1) --------------------------------------------------------------

def test_rfc6749_5_1_cache_control_no_store_documented() -> None:
    from pyop.provider import Provider

    assert "no-store" in (Provider.handle_token_request.__doc__ or "")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert '"Cache-Control": "no-store"' in readme
    security = (ROOT / "docs" / "security.rst").read_text(encoding="utf-8")
    assert "Cache-Control: no-store" in security


# -- oversized input ---------------------------------------------------------------------------

MEGABYTE = 1 << 20

OVERSIZED: dict[str, Callable[[str], tuple[Any, Any]]] = {
    "1mb-body-str": lambda code: (code_request(code) + "&x=" + "a" * MEGABYTE, client_headers()),
    "1mb-body-bytes": lambda code: ((code_request(code) + "&x=" + "a" * MEGABYTE).encode(),
                                    client_headers()),
    "1mb-code": lambda code: (code_request("a" * MEGABYTE), client_headers()),
    "1mb-parameter-in-mapping": lambda code: ({"grant_type": "authorization_code", "code": code,
                                               "redirect_uri": "a" * MEGABYTE},
                                              client_headers()),
    "1mb-many-parameters": lambda code: ("&".join(f"p{i}=1" for i in range(150000)),
                                         client_headers()),
    "1mb-authorization-header": lambda code: (code_request(code),
                                              {"Authorization": "Basic " + "A" * MEGABYTE}),
    "1mb-client-id-in-basic": lambda code: (code_request(code),
                                            basic_header("c" * MEGABYTE, "s")),
    "1mb-verifier": lambda code: (code_request(code, code_verifier="a" * MEGABYTE),
                                  client_headers()),
}


@pytest.mark.parametrize("make_request", list(OVERSIZED.values()), ids=list(OVERSIZED))
def test_security_md_oversized_token_request(op: Any, make_request: Any) -> None:
    body, headers = make_request(issue_code(op))
    error = token_error(lambda: op.handle_token_request(body, headers))
    assert 400 <= error.http_status < 500
    assert error.oauth_error in ("invalid_request", "invalid_client", "invalid_grant")


# -- preamble: only typed errors ---------------------------------------------------------------

GARBAGE: dict[str, tuple[Any, Any]] = {
    "none-body": (None, None),
    "empty-body": ("", {}),
    "integer-body": (12345, client_headers()),
    "list-body": (["grant_type", "authorization_code"], client_headers()),
    "invalid-utf8": (b"grant_type=\xff", client_headers()),
    "invalid-utf8-percent": ("grant_type=%FF", client_headers()),
    "nul": ("grant_type=authorization_code&code=a%00b", client_headers()),
    "mapping-non-string-value": ({"grant_type": 5}, client_headers()),
    "mapping-nested": ({"grant_type": {"a": "b"}}, client_headers()),
    "headers-string": ("grant_type=authorization_code", "Authorization: Basic x"),
    "headers-integer": ("grant_type=authorization_code", 5),
    "headers-value-none": ("grant_type=authorization_code", {"Authorization": None}),
    "headers-value-bytes": ("grant_type=authorization_code",
                            {"Authorization": client_headers()["Authorization"].encode()}),
    "headers-bad-tuples": ("grant_type=authorization_code", [("Authorization",)]),
    "headers-duplicate-authorization": (
        "grant_type=authorization_code",
        [("Authorization", client_headers()["Authorization"])] * 2),
    "scope-not-string": ({"grant_type": "refresh_token", "refresh_token": "x",
                          "scope": ["a", "b"]}, client_headers()),
}


@pytest.mark.parametrize("body,headers", list(GARBAGE.values()), ids=list(GARBAGE))
def test_security_md_garbage_token_requests_raise_typed_errors(op: Any, body: Any,
                                                               headers: Any) -> None:
    error = token_error(lambda: op.handle_token_request(body, headers))
    assert 400 <= error.http_status < 500
