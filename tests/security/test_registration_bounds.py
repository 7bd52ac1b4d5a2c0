"""Bounds and gates of dynamic registration (RFC 7591 3), client lifetime, media types and
non-finite JSON numbers.

Bounds are asserted by measuring what is stored: the JSON size of each stored client
record, whatever the request sent.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest

from pyop.exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientAuthentication,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidRegistrationAccessToken,
    InvalidRequestError,
    InvalidTokenRequest,
)
from pyop.registration import RegistrationLimits

from .helpers import auth_query, bearer, client_headers, full_code_flow, issue_code

WEB_URI = "https://rp.example.com/cb"
JSON_HEADERS = {"Content-Type": "application/json"}


def register(op: Any, body: Any, headers: Any = None) -> dict[str, Any]:
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return dict(op.handle_client_registration_request(body, headers).to_dict())


def refused(op: Any, body: Any, headers: Any = None) -> InvalidClientRegistrationRequest:
    before = dict(op.clients)
    with pytest.raises(InvalidClientRegistrationRequest) as info:
        register(op, body, headers)
    assert info.value.http_status == 400
    assert dict(op.clients) == before  # nothing stored
    return info.value


def stored_size(op: Any, client_id: str) -> int:
    return len(json.dumps(op.clients[client_id], separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8"))


# -- metadata bounds ------------------------------------------------------------------------------

def test_bound_redirect_uris_count(op: Any) -> None:
    uris = [f"{WEB_URI}/{i}" for i in range(21)]
    assert refused(op, {"redirect_uris": uris}).oauth_error == "invalid_redirect_uri"
    assert len(register(op, {"redirect_uris": uris[:20]})["redirect_uris"]) == 20


def test_bound_contacts_count(op: Any) -> None:
    contacts = [f"admin{i}@rp.example.com" for i in range(11)]
    error = refused(op, {"redirect_uris": [WEB_URI], "contacts": contacts})
    assert error.oauth_error == "invalid_client_metadata"
    assert len(register(op, {"redirect_uris": [WEB_URI], "contacts": contacts[:10]})
               ["contacts"]) == 10


@pytest.mark.parametrize("member", ["client_name", "logo_uri", "redirect_uris"])
def test_bound_string_length(op: Any, member: str) -> None:
    long_uri = WEB_URI + "/" + "a" * 2100
    body: dict[str, Any] = {"redirect_uris": [WEB_URI]}
    body[member] = [long_uri] if member == "redirect_uris" else (
        long_uri if member == "logo_uri" else "n" * 2049)
    refused(op, body)


def test_bound_total_metadata_size(op: Any) -> None:
    """Unknown members are not stored, but still count: the request is bounded."""
    body = {"redirect_uris": [WEB_URI], "x-padding": ["p" * 2000] * 9}
    assert "larger than" in str(refused(op, body))


def test_bound_stored_bytes_per_client(op: Any) -> None:
    """The largest registration the default limits admit stores a bounded record."""
    limits = RegistrationLimits()
    body: dict[str, Any] = {
        "redirect_uris": [f"{WEB_URI}/{i:02d}" + "r" * 350 for i in range(20)],
        "contacts": [f"c{i}@" + "e" * 200 + ".example" for i in range(10)],
        "x-ignored": "u" * 100,
    }
    fillers = {"client_name": "n", "client_uri": WEB_URI + "/", "policy_uri": WEB_URI + "/",
               "tos_uri": WEB_URI + "/", "logo_uri": WEB_URI + "/"}
    for name, start in fillers.items():
        room = limits.max_metadata_size - len(json.dumps(body, separators=(",", ":")))
        count = min(limits.max_string_length - len(start), room - len(name) - len(start) - 6)
        if count > 0:
            body[name] = start + "f" * count
    assert limits.max_metadata_size - 20 <= len(json.dumps(body, separators=(",", ":"))) \
        <= limits.max_metadata_size
    client_id = register(op, body)["client_id"]
    size = stored_size(op, client_id)
    # the metadata bound plus the provider's own members (id, secret, token hash, defaults)
    assert size <= limits.max_metadata_size + 1024, size
    # the request just over the bound is refused: nothing bigger is ever stored
    body["client_name"] = body["client_name"][:-50]
    body["contacts"] = body["contacts"] + []
    body["x-more"] = "m" * 100
    refused(op, body)


def test_bound_limits_configurable(make_op: Any) -> None:
    op = make_op(registration_limits=RegistrationLimits(max_array_items=2,
                                                        max_metadata_size=1000))
    refused(op, {"redirect_uris": [WEB_URI + "/1", WEB_URI + "/2", WEB_URI + "/3"]})
    refused(op, {"redirect_uris": [WEB_URI], "client_name": "n" * 1000})
    assert register(op, {"redirect_uris": [WEB_URI + "/1", WEB_URI + "/2"]})


@pytest.mark.parametrize("bad", [0, -1, True, "10", 1.5])
def test_bound_limits_validated(bad: Any) -> None:
    with pytest.raises(InvalidConfiguration):
        RegistrationLimits(max_array_items=bad)


def test_bound_update_request_bounded(op: Any) -> None:
    registered = register(op, {"redirect_uris": [WEB_URI]})
    body = {"client_id": registered["client_id"],
            "redirect_uris": [f"{WEB_URI}/{i}" for i in range(21)]}
    with pytest.raises(InvalidClientRegistrationRequest):
        op.handle_client_update_request(registered["client_id"], json.dumps(body),
                                        bearer(registered["registration_access_token"]))
    assert op.clients[registered["client_id"]]["redirect_uris"] == [WEB_URI]


# -- RFC 8259 6: numbers too large to be finite -------------------------------------------------

def _rsa_jwk(foreign_rsa_key: Any) -> dict[str, Any]:
    numbers = foreign_rsa_key.public_key().public_numbers()

    def b64(i: int) -> str:
        return base64.urlsafe_b64encode(
            i.to_bytes((i.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "use": "sig"}


@pytest.mark.parametrize("store", ["dict", "memory"])
def test_rfc8259_6_overflowing_number_at_registration_is_400(make_op: Any, foreign_rsa_key: Any,
                                                             store: str) -> None:
    """``1e400`` parsed as infinity: a dict store kept a client that no JSON can carry,
    a pyop storage failed with a bare ValueError (500)."""
    from pyop.storage import MemoryStorage

    op = make_op(client_db={} if store == "dict" else MemoryStorage())
    jwk = {**_rsa_jwk(foreign_rsa_key), "x-extra": "OVERFLOW"}
    body = json.dumps({"redirect_uris": [WEB_URI], "token_endpoint_auth_method": "private_key_jwt",
                       "jwks": {"keys": [jwk]}}).replace('"OVERFLOW"', "1e400")
    refused(op, body)
    refused(op, '{"redirect_uris": ["' + WEB_URI + '"], "default_max_age": -1e400}')
    assert list(op.clients) == []


def test_rfc8259_6_overflowing_number_in_claims_request_is_invalid_request(op: Any) -> None:
    claims = '{"userinfo": {"email": {"value": 1e400}}}'
    with pytest.raises(InvalidAuthenticationRequest) as info:
        op.parse_authentication_request(auth_query(claims=claims))
    assert info.value.oauth_error == "invalid_request"


def test_rfc8259_6_finite_numbers_still_parsed(op: Any) -> None:
    registered = register(op, '{"redirect_uris": ["' + WEB_URI + '"], "default_max_age": 3600}')
    assert registered["default_max_age"] == 3600


# -- initial access tokens (RFC 7591 3) -----------------------------------------------------------

@pytest.fixture(params=["collection", "callable"])
def gated_op(request: pytest.FixtureRequest, make_op: Any) -> Any:
    tokens = {"iat-one", "iat-two"}
    gate: Any = tokens if request.param == "collection" else tokens.__contains__
    return make_op(initial_access_tokens=gate)


@pytest.mark.parametrize("headers", [None, {}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic aWF0LW9uZQ=="},
                                     {"Authorization": "Bearer iat-one\x00"}],
                         ids=["none", "empty", "wrong", "basic", "control-character"])
def test_rfc7591_3_initial_access_token_required(gated_op: Any, headers: Any) -> None:
    before = dict(gated_op.clients)
    with pytest.raises(InvalidRegistrationAccessToken) as info:
        register(gated_op, {"redirect_uris": [WEB_URI]}, headers)
    assert info.value.http_status == 401
    assert info.value.www_authenticate.startswith("Bearer")
    assert dict(gated_op.clients) == before


def test_rfc7591_3_initial_access_token_accepted(gated_op: Any) -> None:
    for token in ("iat-one", "iat-two"):
        response = register(gated_op, {"redirect_uris": [WEB_URI]},
                            {"Authorization": f"Bearer {token}", **JSON_HEADERS})
        assert gated_op.get_client(response["client_id"]) is not None


def test_rfc7591_3_initial_access_tokens_compared_in_constant_time(
        make_op: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every accepted token is compared, digests of equal length, with compare_digest."""
    import hmac as hmac_module

    op = make_op(initial_access_tokens=["first-token", "second-token", "third-token"])
    calls: list[tuple[int, int]] = []
    real = hmac_module.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr("pyop.registration.hmac.compare_digest", counting)
    register(op, {"redirect_uris": [WEB_URI]}, {"Authorization": "Bearer first-token"})
    assert calls == [(32, 32)] * 3
    calls.clear()
    with pytest.raises(InvalidRegistrationAccessToken):
        register(op, {"redirect_uris": [WEB_URI]}, {"Authorization": "Bearer f"})
    assert calls == [(32, 32)] * 3


@pytest.mark.parametrize("bad", ["one-token", [""], [1], 5])
def test_rfc7591_3_initial_access_tokens_validated(make_op: Any, bad: Any) -> None:
    with pytest.raises(InvalidConfiguration):
        make_op(initial_access_tokens=bad)


# -- the registration policy hook -----------------------------------------------------------------

def test_registration_policy_sees_metadata_and_headers(make_op: Any) -> None:
    seen: list[tuple[dict[str, Any], Any]] = []

    def policy(metadata: Any, headers: Any) -> None:
        seen.append((dict(metadata), headers))
        if any("evil" in uri for uri in metadata.get("redirect_uris", [])):
            raise InvalidClientRegistrationRequest("host not allowed", metadata,
                                                   oauth_error="invalid_redirect_uri")
        if metadata.get("client_name") == "spam":
            raise ValueError("no spam")

    op = make_op(registration_policy=policy)
    headers = {"X-Forwarded-For": "203.0.113.7"}
    assert register(op, {"redirect_uris": [WEB_URI]}, headers)
    assert seen[-1] == ({"redirect_uris": [WEB_URI]}, headers)
    assert refused(op, {"redirect_uris": ["https://evil.example/cb"]}).oauth_error == \
        "invalid_redirect_uri"
    error = refused(op, {"redirect_uris": [WEB_URI], "client_name": "spam"})
    assert error.oauth_error == "invalid_client_metadata" and "no spam" in str(error)


def test_registration_policy_applies_to_updates(make_op: Any) -> None:
    def policy(metadata: Any, headers: Any) -> None:
        if metadata.get("client_name") == "spam":
            raise ValueError("no spam")

    op = make_op(registration_policy=policy)
    registered = register(op, {"redirect_uris": [WEB_URI]})
    with pytest.raises(InvalidClientRegistrationRequest):
        op.handle_client_update_request(
            registered["client_id"],
            json.dumps({"client_id": registered["client_id"], "redirect_uris": [WEB_URI],
                        "client_name": "spam"}),
            bearer(registered["registration_access_token"]))


def test_registration_policy_must_be_callable(make_op: Any) -> None:
    with pytest.raises(InvalidConfiguration):
        make_op(registration_policy="allow")


# -- client lifetime -------------------------------------------------------------------------------

def test_rfc7591_3_2_1_default_client_secret_never_expires(op: Any) -> None:
    """pyop 3: client_secret_expires_at 0 (never)."""
    registered = register(op, {"redirect_uris": [WEB_URI]})
    assert registered["client_secret_expires_at"] == 0
    assert "client_expires_at" not in op.clients[registered["client_id"]]


@pytest.fixture
def mortal_op(make_op: Any) -> Any:
    return make_op(registered_client_lifetime=3600)


def test_rfc7591_3_2_1_client_lifetime_sets_secret_expiry(mortal_op: Any) -> None:
    registered = register(mortal_op, {"redirect_uris": [WEB_URI]})
    assert registered["client_secret_expires_at"] == int(mortal_op.clock()) + 3600
    assert "client_expires_at" not in registered  # internal


def test_rfc7591_3_2_1_expired_client_refused_everywhere_and_purged(mortal_op: Any,
                                                                   clock: Any) -> None:
    registered = register(mortal_op, {"redirect_uris": ["https://rp.example.com/callback"]})
    client_id, secret = registered["client_id"], registered["client_secret"]
    headers = bearer(registered["registration_access_token"])
    assert mortal_op.get_client(client_id) is not None
    clock.advance(3601)
    with pytest.raises(InvalidClientId):
        mortal_op.parse_authentication_request(auth_query(
            client_id, redirect_uri="https://rp.example.com/callback"))
    with pytest.raises(InvalidClientAuthentication):
        mortal_op.handle_token_request(
            {"grant_type": "authorization_code", "code": "x", "client_id": client_id,
             "client_secret": secret, "redirect_uri": "https://rp.example.com/callback"})
    with pytest.raises(InvalidRegistrationAccessToken):
        mortal_op.handle_client_read_request(client_id, headers)
    assert client_id not in mortal_op.clients  # removed when it was asked for


def test_rfc7591_3_2_1_expired_client_not_served_from_cache(make_op: Any, clock: Any) -> None:
    op = make_op(registered_client_lifetime=60, client_cache_ttl=3600)
    client_id = register(op, {"redirect_uris": [WEB_URI]})["client_id"]
    assert op.get_client(client_id) is not None  # cached now
    clock.advance(61)
    assert op.get_client(client_id) is None


def test_rfc7591_3_2_1_client_lifetime_kept_by_updates_and_rotation(mortal_op: Any) -> None:
    registered = register(mortal_op, {"redirect_uris": [WEB_URI]})
    client_id = registered["client_id"]
    expires = registered["client_secret_expires_at"]
    updated = mortal_op.handle_client_update_request(
        client_id, json.dumps({"client_id": client_id, "redirect_uris": [WEB_URI]}),
        bearer(registered["registration_access_token"]), rotate_client_secret=True)
    assert updated["client_secret_expires_at"] == expires
    assert mortal_op.clients[client_id]["client_expires_at"] == expires


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3600"])
def test_client_lifetime_validated(make_op: Any, bad: Any) -> None:
    with pytest.raises(InvalidConfiguration):
        make_op(registered_client_lifetime=bad)


# -- media types (RFC 6749 3.2, 4.1.3; RFC 7009 2.1; RFC 7662 2.1; RFC 7591 3.1) -------------------

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json",
                                          "multipart/form-data; boundary=x", ""])
def test_rfc6749_3_2_token_request_other_media_type_refused(op: Any,
                                                           content_type: str) -> None:
    code = issue_code(op)
    body = (f"grant_type=authorization_code&code={code}"
            f"&redirect_uri={quote('https://rp.example.com/callback', safe='')}")
    with pytest.raises(InvalidTokenRequest) as info:
        op.handle_token_request(body, {**client_headers(), "Content-Type": content_type})
    assert info.value.oauth_error == "invalid_request"
    # the code was not spent
    assert op.handle_token_request(body, client_headers())["access_token"]


@pytest.mark.parametrize("content_type", [FORM, FORM + "; charset=UTF-8",
                                          "Application/X-WWW-Form-Urlencoded"])
def test_rfc6749_3_2_token_request_form_media_type_accepted(op: Any, content_type: str) -> None:
    code = issue_code(op)
    body = (f"grant_type=authorization_code&code={code}"
            f"&redirect_uri={quote('https://rp.example.com/callback', safe='')}")
    response = op.handle_token_request(body, {**client_headers(),
                                              "content-type": content_type})
    assert response["access_token"]


def test_rfc6749_3_2_repeated_content_type_refused(op: Any) -> None:
    headers = [*client_headers().items(), ("Content-Type", FORM), ("Content-Type", FORM)]
    with pytest.raises(InvalidTokenRequest):
        op.handle_token_request("grant_type=authorization_code&code=x", headers)


@pytest.mark.parametrize("endpoint", ["revocation", "introspection"])
def test_rfc7009_rfc7662_2_1_other_media_type_refused(op: Any, endpoint: str) -> None:
    tokens = full_code_flow(op)
    handler = getattr(op, f"handle_{endpoint}_request")
    with pytest.raises(InvalidRequestError) as info:
        handler({"token": tokens["access_token"]},
                {**client_headers(), "Content-Type": "text/plain"})
    assert info.value.oauth_error == "invalid_request"
    handler({"token": tokens["access_token"]}, {**client_headers(), "Content-Type": FORM})


@pytest.mark.parametrize("content_type", ["text/plain", FORM])
def test_rfc7591_3_1_registration_other_media_type_refused(op: Any, content_type: str) -> None:
    error = refused(op, {"redirect_uris": [WEB_URI]}, {"Content-Type": content_type})
    assert error.oauth_error == "invalid_request"


def test_rfc7591_3_1_registration_json_media_type_accepted(op: Any) -> None:
    assert register(op, {"redirect_uris": [WEB_URI]},
                    {"Content-Type": "application/json; charset=utf-8"})
    assert register(op, {"redirect_uris": [WEB_URI]}, {"Authorization": "x"})  # no type
