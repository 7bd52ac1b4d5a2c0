"""No secret in logs or exception messages ("never log secrets").

Every flow and error path runs with every logger at DEBUG; then no log record (message,
arguments, formatted exception) and no exception raised (``str``, ``repr``, ``to_json``,
error URL, form page, and the whole chain of causes) may contain a client secret,
authorization code, access token, refresh token, ID token, PKCE code_verifier or a
password-like value sent by a client.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import traceback
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional
from urllib.parse import quote_plus, urlencode

import pytest

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, b64url_encode
from pyop.exceptions import OAuthError
from pyop.provider import Provider
from pyop.storage import StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ISSUER = "https://op.example.com"
CLIENT_ID = "client1"
CLIENT_SECRET = "secret-of-client1-" + "S3cr3tV4lu3"
REDIRECT_URI = "https://rp.example.com/callback"
PUBLIC_CLIENT_ID = "public-client"
PUBLIC_REDIRECT_URI = "http://127.0.0.1:8765/cb"
POST_CLIENT_ID = "post-client"
POST_CLIENT_SECRET = "post-secret-" + "P0stS3cr3t"
PASSWORD_LIKE = "hunter2-Passw0rd!"
USER_ID = "alice"


def configuration() -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token",
        "userinfo_endpoint": ISSUER + "/userinfo",
        "registration_endpoint": ISSUER + "/registration",
        "response_types_supported": ["code", "id_token token", "code id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
    }


def client_db() -> dict[str, Any]:
    return {
        CLIENT_ID: {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                    "redirect_uris": [REDIRECT_URI],
                    "response_types": ["code", "id_token token", "code id_token token"],
                    "token_endpoint_auth_method": "client_secret_basic"},
        POST_CLIENT_ID: {"client_id": POST_CLIENT_ID, "client_secret": POST_CLIENT_SECRET,
                         "redirect_uris": [REDIRECT_URI], "response_types": ["code"],
                         "token_endpoint_auth_method": "client_secret_post"},
        PUBLIC_CLIENT_ID: {"client_id": PUBLIC_CLIENT_ID,
                           "redirect_uris": [PUBLIC_REDIRECT_URI],
                           "response_types": ["code"], "token_endpoint_auth_method": "none"},
    }


class Secrets:
    """Every sensitive value seen during a test."""

    def __init__(self) -> None:
        self.values: set[str] = {CLIENT_SECRET, POST_CLIENT_SECRET, PASSWORD_LIKE}

    def add(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and value:
                self.values.add(value)
                if value.count(".") == 2:  # a JWT: its signature alone is secret enough
                    self.values.add(value.rsplit(".", 1)[1])

    def add_response(self, response: Any) -> None:
        for name in ("code", "access_token", "refresh_token", "id_token", "client_secret"):
            if name in response:
                self.add(response[name])


class Captured:
    """The exceptions raised by the operations of a test."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def expect_error(self, function: Callable[..., Any], *args: Any, **kwargs: Any
                     ) -> BaseException:
        try:
            function(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - every error is inspected
            self.errors.append(e)
            return e
        raise AssertionError("expected an error")

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call; an error, if any, is kept for inspection."""
        try:
            return function(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - every error is inspected
            self.errors.append(e)
            return None


def exception_texts(error: BaseException) -> Iterator[str]:
    yield str(error)
    yield repr(error)
    yield "".join(traceback.format_exception(error))  # the whole chain of causes
    for cause in (error.__cause__, error.__context__):
        if cause is not None:
            yield str(cause)
            yield repr(cause)
    if isinstance(error, OAuthError):
        yield error.to_json()
        for method in ("to_error_url", "to_form_post"):
            text = getattr(error, method, lambda: None)()
            if text:
                yield text


def record_texts(records: Iterable[logging.LogRecord]) -> Iterator[str]:
    formatter = logging.Formatter()
    for record in records:
        yield record.getMessage()
        yield repr(record.msg)
        yield repr(record.args)
        if record.exc_info:
            yield formatter.formatException(record.exc_info)
        if record.exc_text:
            yield record.exc_text
        if record.stack_info:
            yield record.stack_info


def assert_no_leak(caplog: pytest.LogCaptureFixture, found: Secrets,
                   captured: Optional[Captured] = None) -> None:
    texts = list(record_texts(caplog.records))
    for error in (captured.errors if captured else []):
        texts.extend(exception_texts(error))
    for text in texts:
        for secret in found.values:
            assert secret not in text, f"a secret leaked into: {text[:300]!r}"
            # also in the encodings a secret may take on its way in
            for encoded in (quote_plus(secret), b64url_encode(secret.encode())):
                if len(encoded) >= 16:
                    assert encoded not in text, f"an encoded secret leaked: {text[:300]!r}"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


def s256(verifier: str) -> str:
    import hashlib

    return b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())


@pytest.fixture(autouse=True)
def debug_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: pyop, oic, urllib3...


@pytest.fixture(scope="module")
def converted_key(jwkest_signing_key: Any) -> SigningKey:
    return SigningKey.from_key(jwkest_signing_key)


@pytest.fixture(params=["memory", "stateless"])
def op(request: Any, clock: Any, converted_key: SigningKey) -> Provider:
    kwargs: dict[str, Any] = {"refresh_token_lifetime": 3600, "clock": clock}
    if request.param == "stateless":
        sealing_secret = "sealing-" + "K3yM4t3r14l-0123456789"
        for name, collection in (("authorization_code_db", "codes"),
                                 ("access_token_db", "access"),
                                 ("refresh_token_db", "refresh")):
            kwargs[name] = StatelessWrapper(collection, sealing_secret, clock=clock)
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt-" + "Sub5alt"),
                               **kwargs)
    users = {USER_ID: {"name": "Alice", "email": "alice@example.com"}}
    return Provider(converted_key, configuration(), authz, client_db(), Userinfo(users),
                    clock=clock)


def auth_query(**overrides: Any) -> str:
    params: dict[str, Any] = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                              "response_type": "code", "scope": "openid profile offline_access",
                              "prompt": "consent", "state": "st", "nonce": "n"}
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


def issue_code(op: Provider, found: Secrets, **overrides: Any) -> str:
    req = op.parse_authentication_request(auth_query(**overrides))
    response = op.authorize(req, USER_ID)
    found.add_response(response)
    return str(response["code"])


def code_body(code: str, **overrides: Any) -> str:
    params: dict[str, Any] = {"grant_type": "authorization_code", "code": code,
                              "redirect_uri": REDIRECT_URI}
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


# -- successful flows ------------------------------------------------------------------------------


def test_code_flow_with_pkce_refresh_and_userinfo(op: Provider,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    found = Secrets()
    verifier = new_verifier()
    found.add(verifier)
    code = issue_code(op, found, code_challenge=s256(verifier), code_challenge_method="S256")
    tokens = op.handle_token_request(code_body(code, code_verifier=verifier),
                                     basic(CLIENT_ID, CLIENT_SECRET))
    found.add_response(tokens)
    refreshed = op.handle_token_request(
        urlencode({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
        basic(CLIENT_ID, CLIENT_SECRET))
    found.add_response(refreshed)
    op.handle_userinfo_request(None, {"Authorization": "Bearer " + refreshed["access_token"]})
    op.handle_userinfo_request(urlencode({"access_token": tokens["access_token"]}),
                               http_method="POST")  # the form body (RFC 6750 2.2)
    assert len(found.values) >= 8
    assert_no_leak(caplog, found)


def test_implicit_and_hybrid_flows(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found = Secrets()
    for response_type in ("id_token token", "code id_token token"):
        req = op.parse_authentication_request(auth_query(response_type=response_type))
        found.add_response(op.authorize(req, USER_ID))
    assert_no_leak(caplog, found)


def test_client_secret_post(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found = Secrets()
    code = issue_code(op, found, client_id=POST_CLIENT_ID, scope="openid", prompt=None)
    found.add_response(op.handle_token_request(code_body(
        code, client_id=POST_CLIENT_ID, client_secret=POST_CLIENT_SECRET)))
    assert_no_leak(caplog, found)


def test_logout_with_id_token_hint(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found = Secrets()
    req = op.parse_authentication_request(auth_query(response_type="id_token token"))
    response = op.authorize(req, USER_ID)
    found.add_response(response)
    end_session = op.parse_end_session_request(urlencode({
        "id_token_hint": response["id_token"],
        "post_logout_redirect_uri": "https://rp.example.com/bye"}))
    op.logout_user(end_session_request=end_session)
    op.do_post_logout_redirect(end_session)
    assert_no_leak(caplog, found)


# -- error paths: token endpoint -------------------------------------------------------------------


def test_wrong_secrets(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found, captured = Secrets(), Captured()
    code = issue_code(op, found)
    for headers, body in [
        (basic(CLIENT_ID, PASSWORD_LIKE), code_body(code)),
        (basic(CLIENT_ID, CLIENT_SECRET + "x"), code_body(code)),
        (basic("unknown-client", PASSWORD_LIKE), code_body(code)),
        (basic(CLIENT_ID, PASSWORD_LIKE), code_body(code, client_secret=PASSWORD_LIKE)),
        (None, code_body(code, client_id=CLIENT_ID, client_secret=PASSWORD_LIKE)),
        (None, code_body(code, client_id=POST_CLIENT_ID, client_secret=PASSWORD_LIKE)),
        (None, code_body(code, client_id=POST_CLIENT_ID, client_secret=[PASSWORD_LIKE] * 2)),
        (basic(POST_CLIENT_ID, POST_CLIENT_SECRET), code_body(code)),
        ({"Authorization": "Basic " + base64.b64encode(
            (CLIENT_ID + PASSWORD_LIKE).encode()).decode()}, code_body(code)),
        ({"Authorization": "Basic " + PASSWORD_LIKE}, code_body(code)),
        ({"Authorization": PASSWORD_LIKE}, code_body(code)),
        ({"Authorization": "Basic " + base64.b64encode(
            b"client1:\xff" + PASSWORD_LIKE.encode()).decode()}, code_body(code)),
        ([("Authorization", "Basic a"), ("authorization", "Basic " + PASSWORD_LIKE)],
         code_body(code)),
    ]:
        captured.expect_error(op.handle_token_request, body, headers)
    assert_no_leak(caplog, found, captured)


def test_replayed_and_misused_codes(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found, captured = Secrets(), Captured()
    verifier = new_verifier()
    found.add(verifier, new_verifier())
    code = issue_code(op, found, code_challenge=s256(verifier), code_challenge_method="S256")
    wrong_verifier = new_verifier()
    found.add(wrong_verifier)
    captured.expect_error(op.handle_token_request,
                          code_body(code, code_verifier=wrong_verifier),
                          basic(CLIENT_ID, CLIENT_SECRET))
    captured.expect_error(op.handle_token_request, code_body(code),
                          basic(CLIENT_ID, CLIENT_SECRET))
    captured.expect_error(op.handle_token_request,
                          code_body(code, code_verifier=verifier,
                                    redirect_uri="https://rp.example.com/other"),
                          basic(CLIENT_ID, CLIENT_SECRET))
    captured.expect_error(op.handle_token_request,
                          code_body(code, code_verifier=verifier, client_id=POST_CLIENT_ID,
                                    client_secret=POST_CLIENT_SECRET))
    tokens = op.handle_token_request(code_body(code, code_verifier=verifier),
                                     basic(CLIENT_ID, CLIENT_SECRET))
    found.add_response(tokens)
    # replay: refused, and the tokens issued from the code revoked
    captured.expect_error(op.handle_token_request, code_body(code, code_verifier=verifier),
                          basic(CLIENT_ID, CLIENT_SECRET))
    captured.call(op.handle_userinfo_request, None,
                  {"Authorization": "Bearer " + tokens["access_token"]})
    captured.call(op.handle_token_request,
                          urlencode({"grant_type": "refresh_token",
                                     "refresh_token": tokens["refresh_token"]}),
                          basic(CLIENT_ID, CLIENT_SECRET))
    # garbage and oversized codes
    garbage = "code-" + secrets.token_urlsafe(24)
    found.add(garbage)
    captured.expect_error(op.handle_token_request, code_body(garbage),
                          basic(CLIENT_ID, CLIENT_SECRET))
    captured.expect_error(op.handle_token_request, code_body(garbage * 5000),
                          basic(CLIENT_ID, CLIENT_SECRET))
    assert_no_leak(caplog, found, captured)


def test_refresh_token_errors(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found, captured = Secrets(), Captured()
    code = issue_code(op, found)
    tokens = op.handle_token_request(code_body(code), basic(CLIENT_ID, CLIENT_SECRET))
    found.add_response(tokens)
    for body, headers in [
        ({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
          "client_id": POST_CLIENT_ID, "client_secret": POST_CLIENT_SECRET}, None),
        ({"grant_type": "refresh_token", "refresh_token": tokens["access_token"]},
         basic(CLIENT_ID, CLIENT_SECRET)),
        ({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
          "scope": "openid email"}, basic(CLIENT_ID, CLIENT_SECRET)),
        ({"grant_type": "refresh_token", "refresh_token": tokens["id_token"]},
         basic(CLIENT_ID, CLIENT_SECRET)),
        ({"grant_type": "password", "username": USER_ID, "password": PASSWORD_LIKE},
         basic(CLIENT_ID, CLIENT_SECRET)),
    ]:
        captured.expect_error(op.handle_token_request, urlencode(body), headers)
    assert_no_leak(caplog, found, captured)


# -- error paths: UserInfo -------------------------------------------------------------------------


def test_bad_bearer_tokens(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found, captured = Secrets(), Captured()
    code = issue_code(op, found)
    tokens = op.handle_token_request(code_body(code), basic(CLIENT_ID, CLIENT_SECRET))
    found.add_response(tokens)
    forged = "at-" + secrets.token_urlsafe(30)
    found.add(forged)
    for request, headers in [
        (None, {"Authorization": "Bearer " + forged}),
        (None, {"Authorization": "Bearer " + tokens["refresh_token"]}),
        (None, {"Authorization": "Bearer " + tokens["id_token"]}),
        (None, {"Authorization": "Bearer " + code}),
        (None, {"Authorization": "Bearer" + tokens["access_token"]}),
        (None, {"Authorization": "Basic " + tokens["access_token"]}),
        (urlencode({"access_token": tokens["access_token"]}),
         {"Authorization": "Bearer " + tokens["access_token"]}),
        (urlencode([("access_token", forged), ("access_token", tokens["access_token"])]),
         None),
        (None, {"Authorization": "Bearer " + forged + " " + PASSWORD_LIKE}),
    ]:
        captured.expect_error(op.handle_userinfo_request, request, headers)
    op.authz_state.revoke_access_token(tokens["access_token"])
    captured.expect_error(op.handle_userinfo_request, None,
                          {"Authorization": "Bearer " + tokens["access_token"]})
    assert_no_leak(caplog, found, captured)


# -- error paths: authorization endpoint ---------------------------------------------------------


def test_authentication_request_errors(op: Provider, caplog: pytest.LogCaptureFixture) -> None:
    found, captured = Secrets(), Captured()
    verifier = new_verifier()
    found.add(verifier)
    for request in [
        # a client that wrongly sends its secret or verifier to the authorization endpoint
        auth_query(client_secret=CLIENT_SECRET, prompt="bogus"),
        auth_query(code_verifier=verifier, code_challenge="short"),
        auth_query(client_id="unknown", client_secret=PASSWORD_LIKE),
        auth_query(redirect_uri="https://evil.example/cb", password=PASSWORD_LIKE),
        auth_query(claims=PASSWORD_LIKE),
        auth_query(max_age=PASSWORD_LIKE),
        auth_query(request=PASSWORD_LIKE),
    ]:
        captured.expect_error(op.parse_authentication_request, request)
    assert_no_leak(caplog, found, captured)


# -- registration --------------------------------------------------------------------------------


@pytest.mark.parametrize("hashed", [False, True])
def test_registration(clock: Any, converted_key: SigningKey, caplog: pytest.LogCaptureFixture,
                      hashed: bool) -> None:
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock)
    op = Provider(converted_key, configuration(), authz, {}, Userinfo({USER_ID: {}}),
                  clock=clock, hash_client_secrets=hashed)
    found, captured = Secrets(), Captured()
    response = op.handle_client_registration_request(json.dumps(
        {"redirect_uris": [REDIRECT_URI], "client_secret": PASSWORD_LIKE}))
    found.add_response(response)
    assert response["client_secret"] != PASSWORD_LIKE
    stored = op.clients[response["client_id"]]
    found.add(stored.get("client_secret_hash"))
    # (metadata values a client sends are its own, public, and may be echoed in errors;
    # key material and secrets may not)
    for body in [
        json.dumps({"redirect_uris": ["https://evil.example/cb#x"],
                    "client_secret": PASSWORD_LIKE}),
        json.dumps({"redirect_uris": [REDIRECT_URI], "subject_type": "bogus",
                    "client_secret": PASSWORD_LIKE}),
        json.dumps({"redirect_uris": [REDIRECT_URI], "jwks": {"keys": [
            {"kty": "oct", "k": b64url_encode(PASSWORD_LIKE.encode())}]}}),
        json.dumps({"redirect_uris": [REDIRECT_URI], "jwks": {"keys": [
            {"kty": "RSA", "n": "AQAB", "e": "AQAB",
             "d": b64url_encode(PASSWORD_LIKE.encode())}]}}),
        json.dumps({"redirect_uris": [REDIRECT_URI], "jwks": {"keys": [
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA",
             "d": b64url_encode(PASSWORD_LIKE.encode())}]}}),
        '{"redirect_uris": ["' + PASSWORD_LIKE + '"',
        b'{"client_secret": "' + PASSWORD_LIKE.encode() + b'\xff"}',
        b"\xff" + PASSWORD_LIKE.encode(),
    ]:
        captured.expect_error(op.handle_client_registration_request, body)
    # the registered client authenticates, and fails with a wrong secret, without leaking
    code = issue_code(op, found, client_id=response["client_id"], scope="openid", prompt=None)
    tokens = op.handle_token_request(code_body(code),
                                     basic(response["client_id"], response["client_secret"]))
    found.add_response(tokens)
    captured.expect_error(op.handle_token_request, code_body(code),
                          basic(response["client_id"], PASSWORD_LIKE))
    assert_no_leak(caplog, found, captured)


def test_the_checker_catches_a_leak(caplog: pytest.LogCaptureFixture) -> None:
    """Control: a secret logged, or in an exception, is detected."""
    found = Secrets()
    logging.getLogger("pyop.test").debug("presented %s", PASSWORD_LIKE)
    with pytest.raises(AssertionError):
        assert_no_leak(caplog, found)
    caplog.clear()
    captured = Captured()
    captured.errors.append(ValueError("bad secret " + CLIENT_SECRET))
    with pytest.raises(AssertionError):
        assert_no_leak(caplog, found, captured)
