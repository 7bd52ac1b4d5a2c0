"""Identifiers from a request with control characters never reach storage.

A NUL (or any C0/C1 control character, DEL) inside a client id, code, token or
registration access token is in no identifier the provider issues (RFC 6749 A.1-A.2,
A.11-A.17 allow printable characters only), and PostgreSQL refuses NUL in text: such an
identifier became a storage error (503). Each endpoint now answers it with its own typed
error before the store is asked. The client store used here behaves like PostgreSQL: it
raises ``StorageError`` when asked for a key with a NUL, and records every key asked for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from pyop.exceptions import (
    InvalidAccessToken,
    InvalidClientAuthentication,
    InvalidRegistrationAccessToken,
    InvalidTokenRequest,
    StorageError,
)
from pyop.util import is_valid_identifier

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    b64_json,
    basic_header,
    bearer,
    client_headers,
    full_code_flow,
    issue_code,
    security_clients,
)

#: One of each kind of control character: C0 (NUL, SOH, LF, US), DEL, C1 (PAD, NEL, APC).
CONTROL_CHARACTERS = ["\x00", "\x01", "\n", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]
IDS = ["nul", "soh", "lf", "us", "del", "pad", "nel", "apc"]


class PostgresLikeClients(dict):  # type: ignore[type-arg]
    """A client store that, like PostgreSQL, fails on a NUL; records the keys asked for."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: list[str] = []

    def get(self, key: Any, default: Any = None) -> Any:
        self.asked.append(key)
        if isinstance(key, str) and "\x00" in key:
            raise StorageError("invalid byte sequence for encoding UTF8: 0x00")
        return super().get(key, default)

    def bad_keys_asked(self) -> list[str]:
        return [key for key in self.asked if not is_valid_identifier(key)]


@pytest.fixture
def store() -> PostgresLikeClients:
    return PostgresLikeClients(security_clients())


@pytest.fixture
def pg_op(make_op: Any, store: PostgresLikeClients) -> Any:
    return make_op(client_db=store, authz_kwargs={"refresh_token_lifetime": 3600})


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=IDS)
def test_rfc6749_2_3_1_basic_client_id_with_control_character_is_invalid_client(
        pg_op: Any, store: PostgresLikeClients, char: str) -> None:
    code = issue_code(pg_op)
    body = (f"grant_type=authorization_code&code={code}"
            "&redirect_uri=https%3A%2F%2Frp.example.com%2Fcallback")
    with pytest.raises(InvalidClientAuthentication) as info:
        pg_op.handle_token_request(body, _basic(f"a{char}b", CLIENT_SECRET))
    assert info.value.http_status == 401
    assert store.bad_keys_asked() == []


@pytest.mark.parametrize("char", [c for c in CONTROL_CHARACTERS if c != "\x00"],
                         ids=IDS[1:])
def test_rfc6749_2_3_1_post_client_id_with_control_character_is_invalid_client(
        pg_op: Any, store: PostgresLikeClients, char: str) -> None:
    with pytest.raises(InvalidClientAuthentication) as info:
        pg_op.handle_token_request({"grant_type": "authorization_code", "code": "x",
                                    "client_id": f"a{char}b", "client_secret": "s"})
    assert info.value.http_status == 401
    assert store.bad_keys_asked() == []


def _hs256_assertion(claims: dict[str, Any], secret: str) -> str:
    signing_input = b64_json({"alg": "HS256", "typ": "JWT"}) + "." + b64_json(claims)
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=IDS)
def test_rfc7523_3_assertion_iss_with_control_character_is_invalid_client(
        pg_op: Any, store: PostgresLikeClients, char: str) -> None:
    issuer = f"a{char}b"
    assertion = _hs256_assertion({"iss": issuer, "sub": issuer, "aud": ISSUER,
                                  "exp": int(time.time()) + 60 * 60 * 24 * 3650,
                                  "jti": "j1"}, "secret" * 8)
    with pytest.raises(InvalidClientAuthentication) as info:
        pg_op.handle_token_request({
            "grant_type": "authorization_code", "code": "x",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})
    assert info.value.http_status == 401
    assert store.bad_keys_asked() == []


def _register(op: Any) -> dict[str, Any]:
    return dict(op.handle_client_registration_request(
        json.dumps({"redirect_uris": ["https://rp.example.com/cb"]})).to_dict())


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=IDS)
@pytest.mark.parametrize("action", ["read", "update", "delete"])
def test_rfc7592_2_management_path_id_with_control_character_is_invalid_token(
        pg_op: Any, store: PostgresLikeClients, char: str, action: str) -> None:
    """``/registration/a%00b``: the host hands over the percent-decoded path id."""
    registered = _register(pg_op)
    headers = bearer(registered["registration_access_token"])
    client_id = registered["client_id"] + char
    with pytest.raises(InvalidRegistrationAccessToken) as info:
        if action == "read":
            pg_op.handle_client_read_request(client_id, headers)
        elif action == "update":
            pg_op.handle_client_update_request(
                client_id, json.dumps({"client_id": client_id,
                                       "redirect_uris": ["https://rp.example.com/cb"]}),
                headers)
        else:
            pg_op.handle_client_delete_request(client_id, headers)
    assert info.value.http_status == 401
    assert store.bad_keys_asked() == []
    assert pg_op.get_client(registered["client_id"]) is not None


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=IDS)
def test_rfc7592_2_registration_access_token_with_control_character_is_invalid_token(
        pg_op: Any, char: str) -> None:
    registered = _register(pg_op)
    token = registered["registration_access_token"]
    with pytest.raises(InvalidRegistrationAccessToken):
        pg_op.handle_client_read_request(registered["client_id"],
                                         {"Authorization": f"Bearer {token}{char}x"})


@pytest.mark.parametrize("char", [c for c in CONTROL_CHARACTERS if c != "\x00"],
                         ids=IDS[1:])
@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
def test_rfc6749_5_2_code_or_refresh_token_with_control_character_is_invalid_grant(
        pg_op: Any, char: str, grant: str) -> None:
    parameter = "code" if grant == "authorization_code" else "refresh_token"
    body = {"grant_type": grant, parameter: f"abc{char}def",
            "redirect_uri": "https://rp.example.com/callback"}
    authz_state = pg_op.authz_state
    store = (authz_state.authorization_codes if grant == "authorization_code"
             else authz_state.refresh_tokens)
    asked: list[Any] = []
    original = type(store).get

    def recording_get(self: Any, key: Any, *args: Any) -> Any:
        asked.append(key)
        return original(self, key, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(store), "get", recording_get)
        patch.setattr(type(store), "consume",
                      lambda self, key: asked.append(key))  # type: ignore[func-returns-value]
        with pytest.raises(InvalidTokenRequest) as info:
            pg_op.handle_token_request(body, client_headers())
    assert info.value.oauth_error == "invalid_grant"
    assert [key for key in asked if not is_valid_identifier(key)] == []


@pytest.mark.parametrize("char", [c for c in CONTROL_CHARACTERS if c != "\x00"],
                         ids=IDS[1:])
def test_rfc7009_2_2_revocation_of_token_with_control_character_is_a_no_op(
        pg_op: Any, char: str) -> None:
    tokens = full_code_flow(pg_op)
    pg_op.handle_revocation_request({"token": tokens["access_token"] + char},
                                    client_headers())
    # the real token still works
    assert pg_op.handle_userinfo_request(None, bearer(tokens["access_token"]))["sub"]


@pytest.mark.parametrize("char", [c for c in CONTROL_CHARACTERS if c != "\x00"],
                         ids=IDS[1:])
def test_rfc7662_2_2_introspection_of_token_with_control_character_is_inactive(
        pg_op: Any, char: str) -> None:
    response = pg_op.handle_introspection_request({"token": "abc" + char},
                                                  client_headers())
    assert response["active"] is False


@pytest.mark.parametrize("char", [c for c in CONTROL_CHARACTERS if c not in "\x00\n"],
                         ids=[i for i, c in zip(IDS, CONTROL_CHARACTERS) if c not in "\x00\n"])
def test_rfc6750_3_1_userinfo_access_token_with_control_character_is_invalid_token(
        pg_op: Any, char: str) -> None:
    with pytest.raises(InvalidAccessToken) as info:
        pg_op.handle_userinfo_request(None, {"Authorization": f"Bearer abc{char}def"})
    assert info.value.http_status == 401


def test_valid_identifiers_still_accepted(pg_op: Any, store: PostgresLikeClients) -> None:
    """Non-ASCII printable ids (as a host may configure) keep working."""
    tokens = full_code_flow(pg_op)
    assert tokens["access_token"]
    assert basic_header(CLIENT_ID, CLIENT_SECRET)
    assert is_valid_identifier("odd client:1+\u00e9")
    assert not is_valid_identifier("")
    assert not is_valid_identifier("\ud800")
    assert not is_valid_identifier(None)
