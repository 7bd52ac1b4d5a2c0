"""What an authentication request demands of the authentication itself.

- An essential ``acr`` claim request with values that the authentication does not meet is a
  failed authentication (``unmet_authentication_requirements``); voluntary ones are not:
  ``test_oidc_core_5_5_1_1_*``; the host learns what is requested before it authenticates:
  ``test_oidc_core_3_1_2_1_requested_acr_values_*``.
- ``max_age=0`` is ``prompt=login``, within the same second too; ``authorize`` refuses an
  ``auth_time`` before the request (or older than ``max_age``):
  ``test_oidc_core_3_1_2_1_max_age_*``, ``test_oidc_core_3_1_2_1_prompt_login_*``.
- A client's ``default_max_age`` acts as ``max_age`` (and ``auth_time`` is then in the ID
  token): ``test_registration_2_default_max_age_*``.
- ``id_token_hint``: one not issued by this provider is ``invalid_request``; one naming
  another end-user than the one authorized is ``login_required``:
  ``test_oidc_core_3_1_2_1_id_token_hint_*``; the example OP answers ``login_required``
  to ``prompt=none`` with another user's ID token as hint:
  ``test_example_op_prompt_none_with_another_users_hint_is_login_required``.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import FakeClock

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, jws_sign
from pyop.exceptions import (
    IdTokenHintMismatch,
    InvalidAuthenticationRequest,
    ReauthenticationRequired,
    RequestedSubjectMismatch,
    UnmetAuthenticationRequirements,
)
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .helpers import (
    CLIENT_B_ID,
    CLIENT_ID,
    USER_ID,
    assert_redirected,
    auth_query,
    b64_json,
    redeem,
    security_clients,
    security_configuration,
    unverified_claims,
)

OTHER_USER = "bob"
LOA1 = "urn:example:loa:1"
LOA2 = "urn:example:loa:2"
PAIRWISE_CLIENT_ID = "pairwise-client"
PAIRWISE_REDIRECT_URI = "https://pw.example.org/cb"


@pytest.fixture
def op(signing_key: SigningKey, clock: FakeClock) -> Provider:
    """A provider that knows two end-users, with a pairwise client besides the battery's."""
    clients = security_clients()
    clients[PAIRWISE_CLIENT_ID] = {
        "client_id": PAIRWISE_CLIENT_ID, "client_secret": "secret-of-pairwise",
        "redirect_uris": [PAIRWISE_REDIRECT_URI], "response_types": ["code", "id_token"],
        "subject_type": "pairwise", "token_endpoint_auth_method": "client_secret_basic"}
    users = {USER_ID: {"name": "Alice", "acr": LOA1}, OTHER_USER: {"name": "Bob"}}
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock)
    return Provider(signing_key, security_configuration(), authz, clients, Userinfo(users),
                    clock=clock)


def parse(op: Provider, client_id: str = CLIENT_ID, **params: Any) -> Any:
    return op.parse_authentication_request(auth_query(client_id, **params))


def acr_claims(essential: bool, *values: str) -> str:
    spec: dict[str, Any] = {"essential": essential}
    if len(values) == 1:
        spec["value"] = values[0]
    elif values:
        spec["values"] = list(values)
    return json.dumps({"id_token": {"acr": spec}})


def id_token_of(op: Provider, user_id: str, client_id: str = CLIENT_ID) -> str:
    """An ID token the provider issued to ``client_id`` for ``user_id`` (implicit flow)."""
    params: dict[str, Any] = {"response_type": "id_token"}
    if client_id == PAIRWISE_CLIENT_ID:
        params["redirect_uri"] = PAIRWISE_REDIRECT_URI
    response = op.authorize(parse(op, client_id, **params), user_id)
    return str(response["id_token"])


def no_code_issued(op: Provider) -> bool:
    return not list(op.authz_state.authorization_codes.items())


# -- acr (OIDC Core 3.1.2.1 acr_values, 5.5.1.1) ---------------------------------------------------

@pytest.mark.parametrize("achieved", [LOA1, None])
def test_oidc_core_5_5_1_1_essential_acr_unmet_is_a_failed_authentication(
        op: Provider, achieved: Optional[str]) -> None:
    request = parse(op, claims=acr_claims(True, LOA2, "urn:example:loa:3"))
    with pytest.raises(UnmetAuthenticationRequirements) as info:
        op.authorize(request, OTHER_USER, acr=achieved)  # no acr in the user's claims
    assert_redirected(info.value, "unmet_authentication_requirements", fragment=False)
    assert no_code_issued(op)


def test_oidc_core_5_5_1_1_essential_acr_from_extra_claims_or_user_claims_is_checked(
        op: Provider) -> None:
    request = parse(op, claims=acr_claims(True, LOA2))
    # the user's own acr claim (LOA1) would be released: unmet
    with pytest.raises(UnmetAuthenticationRequirements):
        op.authorize(request, USER_ID)
    # pyop 3's way to set acr: extra ID token claims (a dict or a callable)
    with pytest.raises(UnmetAuthenticationRequirements):
        op.authorize(request, USER_ID, {"acr": LOA1})
    response = op.authorize(request, USER_ID, lambda user, client: {"acr": LOA2})
    token = redeem(op, response["code"]).to_dict()
    assert unverified_claims(token["id_token"])["acr"] == LOA2
    # the acr argument wins over the extra claims, as in the ID token
    with pytest.raises(UnmetAuthenticationRequirements):
        op.authorize(request, USER_ID, {"acr": LOA2}, acr=LOA1)


def test_oidc_core_5_5_1_1_essential_acr_met_is_released(op: Provider) -> None:
    request = parse(op, response_type="code id_token",
                    claims=acr_claims(True, LOA1, LOA2))
    response = op.authorize(request, USER_ID, acr=LOA2)
    assert unverified_claims(response["id_token"])["acr"] == LOA2
    token = redeem(op, response["code"]).to_dict()
    assert unverified_claims(token["id_token"])["acr"] == LOA2


@pytest.mark.parametrize("params", [
    {"acr_values": f"{LOA2} urn:example:loa:3"},
    {"claims": acr_claims(False, LOA2)},
    {"claims": acr_claims(True)},  # essential without values: nothing to meet (5.5.1)
])
def test_oidc_core_5_5_1_1_voluntary_acr_unmet_is_no_error(op: Provider,
                                                           params: dict[str, str]) -> None:
    request = parse(op, response_type="id_token", **params)
    response = op.authorize(request, USER_ID, acr=LOA1)
    assert unverified_claims(response["id_token"])["acr"] == LOA1  # the acr achieved


def test_oidc_core_3_1_2_1_requested_acr_values_tell_the_host_what_to_achieve(
        op: Provider) -> None:
    assert op.requested_acr_values(parse(op)) == ([], False)
    request = parse(op, acr_values=f"{LOA2} {LOA1}")
    assert op.requested_acr_values(request) == ([LOA2, LOA1], False)
    assert op.requested_acr_values(request.to_dict()).values == [LOA2, LOA1]
    voluntary = parse(op, acr_values=LOA1, claims=acr_claims(False, LOA2))
    assert op.requested_acr_values(voluntary) == ([LOA2, LOA1], False)
    essential = parse(op, acr_values=LOA1, claims=acr_claims(True, LOA2))
    required = op.requested_acr_values(essential)
    assert required == ([LOA2], True) and required.essential
    assert required.satisfied_by(LOA2) and not required.satisfied_by(LOA1)
    assert not required.satisfied_by(None)
    assert op.requested_acr_values(parse(op, claims=acr_claims(True))) == ([], False)
    # the client's default_acr_values when the request names none (Registration 2)
    op.clients[CLIENT_ID]["default_acr_values"] = [LOA1]
    assert op.requested_acr_values(parse(op)) == ([LOA1], False)
    assert op.requested_acr_values(parse(op, acr_values=LOA2)) == ([LOA2], False)


# -- max_age=0 and prompt=login (OIDC Core 3.1.2.1) -----------------------------------------------

def test_oidc_core_3_1_2_1_max_age_0_requires_login_within_the_same_second(
        op: Provider, clock: FakeClock) -> None:
    request = parse(op, max_age="0")
    for auth_time in (clock.now, clock.now - 0.5, clock.now - 1):
        assert op.requires_authentication(request, auth_time) is True
        assert op.requires_authentication(request.to_dict(), auth_time) is True
    # max_age > 0: the elapsed time decides, as before
    assert op.requires_authentication(parse(op, max_age="1"), clock.now) is False


@pytest.mark.parametrize("params", [{"max_age": "0"}, {"prompt": "login"}])
def test_oidc_core_3_1_2_1_max_age_0_auth_time_before_the_request_is_refused(
        op: Provider, clock: FakeClock, params: dict[str, str]) -> None:
    clock.now = 1_800_000_000.2
    earlier_login = clock.now  # a session that began in the same second as the request
    clock.advance(0.3)
    request = parse(op, response_type="code id_token", **params).to_dict()  # as kept
    for auth_time in (earlier_login, int(clock.now), clock.now - 3600):
        with pytest.raises(ReauthenticationRequired) as info:
            op.authorize(request, USER_ID, auth_time=auth_time)
        assert_redirected(info.value, "login_required", fragment=True)
    assert no_code_issued(op)
    clock.advance(0.3)
    response = op.authorize(request, USER_ID, auth_time=clock.now)  # logged in again
    assert unverified_claims(response["id_token"])["auth_time"] == 1_800_000_000
    # no auth_time: authorize() is called right after a login (auth_time now, if required)
    response = op.authorize(request, USER_ID)
    assert unverified_claims(response["id_token"]).get("auth_time", 1_800_000_000) == \
        1_800_000_000


def test_oidc_core_3_1_2_1_max_age_auth_time_older_than_max_age_is_refused(
        op: Provider, clock: FakeClock) -> None:
    request = parse(op, response_type="id_token", max_age="60")
    with pytest.raises(ReauthenticationRequired):
        op.authorize(request, USER_ID, auth_time=clock.now - 61)
    response = op.authorize(request, USER_ID, auth_time=clock.now - 60)
    assert unverified_claims(response["id_token"])["auth_time"] == int(clock.now) - 60


def test_oidc_core_3_1_2_1_max_age_request_time_cannot_be_set_by_the_client(
        op: Provider, clock: FakeClock) -> None:
    member = "pyop_requested_at"
    request = parse(op, max_age="0", **{member: "0"})
    assert request[member] == clock.now
    with pytest.raises(ReauthenticationRequired):
        op.authorize(request, USER_ID, auth_time=clock.now - 1)
    assert member not in parse(op, **{member: "0"})  # kept only where it matters
    assert member not in parse(op)  # a plain request is stored as before


# -- default_max_age (OIDC Dynamic Registration 2) -------------------------------------------------

def test_registration_2_default_max_age_acts_as_max_age(op: Provider,
                                                         clock: FakeClock) -> None:
    op.clients[CLIENT_ID]["default_max_age"] = 60
    request = parse(op, response_type="code id_token")
    assert op.requires_authentication(request, clock.now - 30) is False
    assert op.requires_authentication(request, clock.now - 61) is True
    # the request's max_age overrides the default
    assert op.requires_authentication(parse(op, max_age="600"), clock.now - 61) is False
    with pytest.raises(ReauthenticationRequired):
        op.authorize(request, USER_ID, auth_time=clock.now - 61)
    # auth_time is REQUIRED in the ID token then (OIDC Core 2 for max_age)
    response = op.authorize(request, USER_ID)
    assert unverified_claims(response["id_token"])["auth_time"] == int(clock.now)
    token = redeem(op, response["code"]).to_dict()
    assert unverified_claims(token["id_token"])["auth_time"] == int(clock.now)


def test_registration_2_default_max_age_0_is_prompt_login(op: Provider,
                                                           clock: FakeClock) -> None:
    op.clients[CLIENT_ID]["default_max_age"] = 0
    request = parse(op)
    assert op.requires_authentication(request, clock.now) is True
    with pytest.raises(ReauthenticationRequired):
        op.authorize(request, USER_ID, auth_time=clock.now - 0.1)


# -- id_token_hint (OIDC Core 3.1.2.1) -------------------------------------------------------------

def _forged_hints(op: Provider, foreign_rsa_key: Any) -> dict[str, str]:
    genuine = id_token_of(op, USER_ID)
    claims = unverified_claims(genuine)
    header, payload, _signature = genuine.split(".")
    return {
        "garbage": "not-a-jwt",
        "alg-none": b64_json({"alg": "none"}) + "." + payload + ".",
        "bad-signature": header + "." + payload + "." + base64.urlsafe_b64encode(
            b"x" * 256).decode().rstrip("="),
        "foreign-key": jws_sign(claims, SigningKey.from_key(foreign_rsa_key)),
        "other-issuer": jws_sign(dict(claims, iss="https://evil.example"),
                                 op._context.keys.active),  # noqa: SLF001 - our key
    }


@pytest.mark.parametrize("kind", ["garbage", "alg-none", "bad-signature", "foreign-key",
                                  "other-issuer"])
def test_oidc_core_3_1_2_1_id_token_hint_not_issued_by_us_is_refused(
        op: Provider, foreign_rsa_key: Any, kind: str) -> None:
    hint = _forged_hints(op, foreign_rsa_key)[kind]
    with pytest.raises(InvalidAuthenticationRequest) as info:
        parse(op, id_token_hint=hint, prompt="none")
    assert_redirected(info.value, "invalid_request", fragment=False)


def test_oidc_core_3_1_2_1_id_token_hint_of_ours_is_accepted_even_expired(
        op: Provider, clock: FakeClock) -> None:
    hint = id_token_of(op, USER_ID)
    clock.advance(365 * 24 * 3600)
    request = parse(op, id_token_hint=hint)
    assert op.hint_matches_user(request, USER_ID) is True
    assert "code" in op.authorize(request, USER_ID)


def test_oidc_core_3_1_2_1_id_token_hint_of_another_user_with_prompt_none_is_login_required(
        op: Provider, clock: FakeClock) -> None:
    request = parse(op, prompt="none", id_token_hint=id_token_of(op, OTHER_USER))
    assert op.hint_matches_user(request, USER_ID) is False
    assert op.requires_authentication(request, clock.now, user_id=USER_ID) is True
    assert op.requires_authentication(request, clock.now) is False  # no user to compare
    with pytest.raises(IdTokenHintMismatch) as info:
        op.authorize(request, USER_ID)
    assert isinstance(info.value, RequestedSubjectMismatch)
    assert_redirected(info.value, "login_required", fragment=False)
    assert no_code_issued(op)


def test_oidc_core_3_1_2_1_id_token_hint_of_another_user_without_prompt_none_is_typed(
        op: Provider) -> None:
    # the host may catch it and ask the end-user to switch accounts
    request = parse(op, response_type="id_token", id_token_hint=id_token_of(op, OTHER_USER))
    with pytest.raises(IdTokenHintMismatch):
        op.authorize(request, USER_ID)
    assert "id_token" in op.authorize(request, OTHER_USER)


@pytest.mark.parametrize("issued_to", [
    CLIENT_ID,
    CLIENT_B_ID,  # issued to another client of ours: its sub of the user
    PAIRWISE_CLIENT_ID,
])
def test_oidc_core_3_1_2_1_id_token_hint_matches_the_same_user(op: Provider,
                                                               issued_to: str) -> None:
    hint = id_token_of(op, USER_ID, issued_to)
    for client_id in {issued_to, CLIENT_ID}:
        if client_id == PAIRWISE_CLIENT_ID:
            request = parse(op, client_id, redirect_uri=PAIRWISE_REDIRECT_URI,
                            id_token_hint=hint, prompt="none")
        else:
            request = parse(op, client_id, id_token_hint=hint, prompt="none")
        assert op.hint_matches_user(request, USER_ID) is True
        assert op.hint_matches_user(request, OTHER_USER) is False
        assert "code" in op.authorize(request, USER_ID)
        with pytest.raises(IdTokenHintMismatch):
            op.authorize(request, OTHER_USER)


def test_oidc_core_3_1_2_1_id_token_hint_pairwise_compared_without_records(
        op: Provider) -> None:
    """A pairwise ``sub`` not recorded (e.g. a sealed store) is computed for the client."""
    hint = id_token_of(op, USER_ID, PAIRWISE_CLIENT_ID)
    request = parse(op, PAIRWISE_CLIENT_ID, redirect_uri=PAIRWISE_REDIRECT_URI,
                    id_token_hint=hint)
    sub = unverified_claims(hint)["sub"]
    op.authz_state.subject_identifiers.delete(sub)
    assert op.hint_matches_user(request, USER_ID) is True
    op.authz_state.subject_identifiers.delete(sub)
    assert op.hint_matches_user(request, OTHER_USER) is False


# -- the example OP (Resource bounds 7) -----------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE_REDIRECT_URI = "https://rp.example.org/callback"


@pytest.fixture
def example_client(tmp_path: Path) -> Any:
    pytest.importorskip("flask", reason="the example needs Flask: pip install -e .[example]")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from example.app import create_app
    from example.users import hash_password

    users = {name: {"password_hash": hash_password(name, iterations=1000),
                    "claims": {"name": name.title()}} for name in ("alice", "bob")}
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    app = create_app({"issuer": "http://127.0.0.1:5999", "data_dir": str(tmp_path / "data"),
                      "users_file": str(users_file), "storage_uri": "memory:"})
    app.testing = True
    return app


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert match, f"no {name} field"
    return match.group(1)


def _redirect_params(response: Any) -> dict[str, str]:
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(EXAMPLE_REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _example_sign_in(browser: Any, client_id: str, user: str,
                     **extra: str) -> dict[str, str]:
    """An authentication request, then the login and consent pages when shown."""
    query = {"client_id": client_id, "redirect_uri": EXAMPLE_REDIRECT_URI,
             "response_type": "code", "scope": "openid", "state": "st4te", "nonce": "n", **extra}
    response = browser.get("/authorization?" + urlencode(query))
    if response.headers["Location"].endswith("/login"):
        page = browser.get("/login").get_data(as_text=True)
        response = browser.post("/login", data={"csrf_token": _field(page, "csrf_token"),
                                                "username": user, "password": user})
    if response.headers["Location"].endswith("/consent"):
        page = browser.get("/consent").get_data(as_text=True)
        response = browser.post("/consent", data={
            "csrf_token": _field(page, "csrf_token"), "request_id": _field(page, "request_id"),
            "decision": "approve"})
    return _redirect_params(response)


def test_example_op_prompt_none_with_another_users_hint_is_login_required(
        example_client: Any) -> None:
    alice_browser, bob_browser = example_client.test_client(), example_client.test_client()
    registered = alice_browser.post("/registration", content_type="application/json",
                                    data=json.dumps({"redirect_uris": [EXAMPLE_REDIRECT_URI]}))
    client = registered.get_json()
    code = _example_sign_in(bob_browser, client["client_id"], "bob")["code"]
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode())
    bobs_id_token = bob_browser.post("/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": EXAMPLE_REDIRECT_URI},
        headers={"Authorization": "Basic " + basic.decode()}).get_json()["id_token"]
    _example_sign_in(alice_browser, client["client_id"], "alice")

    def silent(hint: str) -> dict[str, str]:
        return _redirect_params(alice_browser.get("/authorization?" + urlencode({
            "client_id": client["client_id"], "redirect_uri": EXAMPLE_REDIRECT_URI,
            "response_type": "code", "scope": "openid", "state": "st4te", "prompt": "none",
            "id_token_hint": hint})))

    refused = silent(bobs_id_token)
    assert refused["error"] == "login_required" and "code" not in refused
    # alice's own ID token as hint: the silent sign-in goes through
    alice_code = _example_sign_in(alice_browser, client["client_id"], "alice")["code"]
    alices_id_token = alice_browser.post("/token", data={
        "grant_type": "authorization_code", "code": alice_code,
        "redirect_uri": EXAMPLE_REDIRECT_URI},
        headers={"Authorization": "Basic " + basic.decode()}).get_json()["id_token"]
    assert "code" in silent(alices_id_token)
    # without prompt=none, another user's hint sends alice to the login page
    response = alice_browser.get("/authorization?" + urlencode({
        "client_id": client["client_id"], "redirect_uri": EXAMPLE_REDIRECT_URI,
        "response_type": "code", "scope": "openid", "id_token_hint": bobs_id_token}))
    assert response.headers["Location"].endswith("/login")


def test_oidc_core_3_1_2_1_prompt_login_in_the_example_op_same_second(
        example_client: Any) -> None:
    """A login right after a prompt=login request (same second) is after it."""
    browser = example_client.test_client()
    client = browser.post("/registration", content_type="application/json",
                          data=json.dumps({"redirect_uris": [EXAMPLE_REDIRECT_URI]})).get_json()
    _example_sign_in(browser, client["client_id"], "alice")
    assert "code" in _example_sign_in(browser, client["client_id"], "alice", prompt="login")
    assert "code" in _example_sign_in(browser, client["client_id"], "alice", max_age="0")



def test_oidc_core_3_1_2_1_id_token_hint_audiences_looked_up_boundedly(
        op: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hint of ours with a long ``aud`` list costs at most 4 client look-ups."""
    claims = unverified_claims(id_token_of(op, OTHER_USER))
    claims["aud"] = [f"client-{i}" for i in range(500)]
    claims["sub"] = "a-sub-never-recorded"  # so the audiences are looked at
    hint = jws_sign(claims, op._context.keys.active)  # noqa: SLF001 - our key
    request = parse(op, id_token_hint=hint)
    registry = op._context.clients  # noqa: SLF001 - count the look-ups
    looked_up: list[Any] = []
    original = registry.get

    def counting_get(client_id: Any) -> Any:
        looked_up.append(client_id)
        return original(client_id)

    monkeypatch.setattr(registry, "get", counting_get)
    assert op.hint_matches_user(request, USER_ID) is False
    assert 1 <= len(looked_up) <= 4
