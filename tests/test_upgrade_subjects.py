"""Upgrade safety: the subject identifiers and the claims pyop 3.5.0 issued are issued unchanged.

The expected values in ``tests/compat/data/subjects_pyop3.json`` were produced by pyop 3.5.0
(``tests/compat/make_subjects_golden.py`` regenerates them;
``tests/compat/test_pyop3_sources.py`` regenerates them with pyop 3.5.0 and checks that
they are unchanged).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import FakeClock

from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAuthenticationRequest
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

COMPAT = Path(__file__).parent / "compat"
GOLDEN_PATH = COMPAT / "data" / "subjects_pyop3.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
ISSUER = "https://op.example.com"
RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token"]


def payload(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def client_records() -> dict[str, Any]:
    return {client_id: dict(metadata, client_id=client_id, client_secret="secret",
                            response_types=list(RESPONSE_TYPES),
                            token_endpoint_auth_method="client_secret_basic")
            for client_id, metadata in GOLDEN["clients"].items()}


@pytest.fixture
def make_op(jwkest_signing_key: Any) -> Callable[..., Provider]:
    """A provider configured as the pyop 3 one that produced the golden values."""

    def factory(configuration: Optional[dict[str, Any]] = None, **kwargs: Any) -> Provider:
        config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
                  "token_endpoint": ISSUER + "/token",
                  "userinfo_endpoint": ISSUER + "/userinfo",
                  "response_types_supported": list(RESPONSE_TYPES)}
        config.update(configuration or {})
        clock = FakeClock(GOLDEN["now"])
        authz = AuthorizationState(HashBasedSubjectIdentifierFactory(GOLDEN["salt"]),
                                   clock=clock)
        return Provider(jwkest_signing_key, config, authz, client_records(),
                        Userinfo(json.loads(json.dumps(GOLDEN["users"]))), clock=clock,
                        extra_scopes=GOLDEN["extra_scopes"], **kwargs)

    return factory


def basic(client_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:secret".encode()).decode()}


# -- the factory -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN["factory"],
                         ids=lambda c: f"{c['type']}-{c['user_id']}-{c.get('sector')}")
def test_factory_identifiers_are_pyop3s(case: dict[str, Any]) -> None:
    factory = HashBasedSubjectIdentifierFactory(case["salt"])
    if case["type"] == "public":
        assert factory.create_public_identifier(case["user_id"]) == case["sub"]
    else:
        assert factory.create_pairwise_identifier(case["user_id"], case["sector"]) == case["sub"]


def test_golden_data_covers_the_cases() -> None:
    assert GOLDEN["pyop_version"] == "3.5.0"
    assert len(GOLDEN["factory"]) >= 200
    sectors = {c.get("sector") for c in GOLDEN["factory"]}
    assert "rp.example.com:8443" in sectors and "[::1]:9000" in sectors
    assert {c["client_id"] for c in GOLDEN["subjects"]} == set(GOLDEN["clients"])
    assert len({c["sub"] for c in GOLDEN["subjects"]}) == 12  # 2 users x (public + 5 sectors)


# -- the provider: subject type, sector identifier, the user's own sub -------------------------


def test_subjects_issued_by_the_provider_are_pyop3s(make_op: Callable[..., Provider]) -> None:
    providers: dict[str, Provider] = {}
    for case in GOLDEN["subjects"]:
        types = case["subject_types_supported"]
        key = ",".join(types)
        if key not in providers:
            providers[key] = make_op({"subject_types_supported": types})
        op = providers[key]
        request = op.parse_authentication_request(urlencode({
            "client_id": case["client_id"], "redirect_uri": case["redirect_uri"],
            "response_type": "code", "scope": "openid", "nonce": "n"}))
        code = op.authorize(request, case["user_id"])["code"]
        assert op.authz_state.get_authorization_code(code)["sub"] == case["sub"], case
        assert op.subject_identifier_for(case["client_id"], case["user_id"],
                                         case["redirect_uri"]) == case["sub"]
        assert op.authz_state.get_user_id_for_subject_identifier(case["sub"]) == \
            case["user_id"]
        # the token endpoint and UserInfo use the sub of the grant
        token = op.handle_token_request(urlencode({
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": case["redirect_uri"]}), basic(case["client_id"]))
        assert payload(token["id_token"])["sub"] == case["sub"]
        info = op.handle_userinfo_request("", {"Authorization": "Bearer "
                                               + token["access_token"]})
        assert info["sub"] == case["sub"]


def test_a_client_without_subject_type_gets_the_first_supported_one(
        make_op: Callable[..., Provider]) -> None:
    by_types = {tuple(c["subject_types_supported"]): c["sub"] for c in GOLDEN["subjects"]
                if c["client_id"] == "c-default" and c["user_id"] == "alice"}
    factory = HashBasedSubjectIdentifierFactory(GOLDEN["salt"])
    public = factory.create_public_identifier("alice")
    pairwise = factory.create_pairwise_identifier("alice", "rp.example.com:8443")
    assert by_types[("public", "pairwise")] == by_types[("public",)] == public
    assert by_types[("pairwise", "public")] == by_types[("pairwise",)] == pairwise
    for types, expected in ((["pairwise", "public"], pairwise), (["public", "pairwise"], public)):
        op = make_op({"subject_types_supported": types})
        assert op.subject_identifier_for("c-default", "alice") == expected


def test_pairwise_sub_depends_on_the_request_redirect_uri_as_in_pyop3(
        make_op: Callable[..., Provider]) -> None:
    # a pairwise client with several redirect_uri hosts (and ports) and no
    # sector_identifier_uri: one sub per host:port, as pyop 3 issued them
    subs = {c["redirect_uri"]: c["sub"] for c in GOLDEN["subjects"]
            if c["client_id"] == "c-pairwise" and c["user_id"] == "alice"
            and c["subject_types_supported"] == ["pairwise"]}
    assert len(set(subs.values())) == 4
    op = make_op({"subject_types_supported": ["pairwise"]})
    for redirect_uri, sub in subs.items():
        assert op.subject_identifier_for("c-pairwise", "alice", redirect_uri) == sub
    # without a redirect_uri: the first registered one stands for the request's
    first = GOLDEN["clients"]["c-pairwise"]["redirect_uris"][0]
    assert op.subject_identifier_for("c-pairwise", "alice") == subs[first]


def test_registration_sector_option_follows_oidc_core_8_1(
        make_op: Callable[..., Provider]) -> None:
    op = make_op({"subject_types_supported": ["pairwise"]}, pairwise_sector_from="registration")
    factory = HashBasedSubjectIdentifierFactory(GOLDEN["salt"])
    # one sub for the client whatever redirect_uri the request uses: the host of its first
    # registered redirect_uri, no port
    for redirect_uri in GOLDEN["clients"]["c-pairwise"]["redirect_uris"]:
        assert op.subject_identifier_for("c-pairwise", "alice", redirect_uri) == \
            factory.create_pairwise_identifier("alice", "rp.example.com")
    assert op.subject_identifier_for("c-sector", "alice") == \
        factory.create_pairwise_identifier("alice", "sector.example.org")
    with pytest.raises(Exception, match="pairwise_sector_from"):
        make_op(pairwise_sector_from="first-uri")


def test_a_sub_in_the_user_record_is_issued_and_resolvable(
        make_op: Callable[..., Provider]) -> None:
    op = make_op({"subject_types_supported": ["pairwise"]})
    chosen = GOLDEN["users"]["carol"]["sub"]
    for client_id, metadata in GOLDEN["clients"].items():
        redirect_uri = metadata["redirect_uris"][0]
        request = op.parse_authentication_request(urlencode({
            "client_id": client_id, "redirect_uri": redirect_uri,
            "response_type": "code id_token", "scope": "openid email", "nonce": "n"}))
        response = op.authorize(request, "carol")
        assert payload(response["id_token"])["sub"] == chosen
        assert op.subject_identifier_for(client_id, "carol") == chosen
        token = op.handle_token_request(urlencode({
            "grant_type": "authorization_code", "code": response["code"],
            "redirect_uri": redirect_uri}), basic(client_id))
        assert payload(token["id_token"])["sub"] == chosen
        info = op.handle_userinfo_request("", {"Authorization": "Bearer "
                                               + token["access_token"]})
        assert info.to_dict() == {"sub": chosen, "email": "carol@example.com"}
    assert op.authz_state.get_user_id_for_subject_identifier(chosen) == "carol"
    op.logout_user(chosen)  # logout by the chosen sub works too
    # a sub recorded for another user (the user data changed) now resolves to its new owner
    op.userinfo = Userinfo({"dave": {"sub": chosen}})
    assert op.subject_identifier_for("c-public", "dave") == chosen
    assert op.authz_state.get_user_id_for_subject_identifier(chosen) == "dave"


# -- the claims released ----------------------------------------------------------------------

#: claims whose value differs between two runs (they hash random codes and tokens)
_RANDOM = ("at_hash", "c_hash")


def _our_case(op: Provider, case: dict[str, Any]) -> dict[str, Any]:
    redirect_uri = "https://rp.example.com/cb"
    parameters = {"client_id": "c-public", "redirect_uri": redirect_uri,
                  "response_type": case["response_type"], "scope": case["scope"],
                  "nonce": "n", "state": "s"}
    if case["claims"] is not None:
        parameters["claims"] = json.dumps(case["claims"])
    ours: dict[str, Any] = {}
    try:
        request = op.parse_authentication_request(urlencode(parameters))
        response = op.authorize(request, case["user_id"])
    except InvalidAuthenticationRequest as e:
        return {"error": e.oauth_error}
    access_token = response.get("access_token")
    if "id_token" in response:
        ours["authorization_id_token"] = payload(response["id_token"])
    if "code" in response:
        token = op.handle_token_request(urlencode({
            "grant_type": "authorization_code", "code": response["code"],
            "redirect_uri": redirect_uri}), basic("c-public"))
        ours["token_id_token"] = payload(token["id_token"])
        access_token = token["access_token"]
    if access_token is not None:
        ours["userinfo"] = op.handle_userinfo_request(
            "", {"Authorization": "Bearer " + access_token}).to_dict()
    return ours


def _comparable(id_token: dict[str, Any], case: dict[str, Any], ours: bool) -> dict[str, Any]:
    claims = {k: v for k, v in id_token.items() if k not in _RANDOM}
    if isinstance(claims.get("aud"), str):
        claims["aud"] = [claims["aud"]]  # the same audience, as a one-element array
    requested_auth_time = (case["claims"] or {}).get("id_token", {}).get("auth_time")
    if ours and requested_auth_time and requested_auth_time.get("essential"):
        # OIDC Core 5.5.1: an essential auth_time is now included
        assert claims.pop("auth_time") == GOLDEN["now"]
    return claims


def _claim_cases() -> list[dict[str, Any]]:
    return GOLDEN["claims"]


@pytest.mark.parametrize("config_name", sorted(GOLDEN["configs"]))
def test_claims_released_are_pyop3s(make_op: Callable[..., Provider], config_name: str) -> None:
    compared = 0
    op = make_op(GOLDEN["configs"][config_name])
    for case in _claim_cases():
        if case["config"] != config_name:
            continue
        ours = _our_case(op, case)
        label = (case["scope"], case["claims"], case["response_type"], case["user_id"])
        if case.get("error_message") == "consent in prompt":
            # pyop 3 refused offline_access without prompt=consent; OIDC Core 11 says to
            # ignore it: the request is answered as one without offline_access
            userinfo_claims_without_token = case["response_type"] == "id_token" and \
                "userinfo" in (case["claims"] or {})
            assert ("error" in ours) == userinfo_claims_without_token, label
            continue
        if case.get("error") == "TypeError":
            # pyop 3 crashed on an ID-token-only response for a user whose record has
            # its own sub: now that sub is issued
            assert ours["authorization_id_token"]["sub"] == \
                GOLDEN["users"][case["user_id"]]["sub"], label
            continue
        if case.get("error"):
            assert ours == {"error": case["oauth_error"]}, label
            compared += 1
            continue
        assert set(ours) == {k for k in case if k in (
            "authorization_id_token", "token_id_token", "userinfo")}, label
        for member in ("authorization_id_token", "token_id_token"):
            if member in case:
                assert _comparable(ours[member], case, True) == \
                    _comparable(case[member], case, False), \
                    (member, label)
        if "userinfo" in case:
            assert ours["userinfo"] == case["userinfo"], label
        compared += 1
    assert compared >= 150


def test_claims_supported_limits_only_on_request(make_op: Callable[..., Provider]) -> None:
    readme = GOLDEN["configs"]["readme"]
    case = {"scope": "openid email profile", "claims": None, "response_type": "id_token",
            "user_id": "alice"}
    released = _our_case(make_op(readme), case)["authorization_id_token"]
    assert released["email"] == "alice@example.com" and released["nickname"] == "al"
    limited = _our_case(make_op(readme, limit_claims_to_claims_supported=True),
                        case)["authorization_id_token"]
    assert limited["name"] == "Alice Liddell" and "email" not in limited
    assert "nickname" not in limited


def test_extra_scopes_are_advertised_next_to_given_scopes(
        make_op: Callable[..., Provider]) -> None:
    # pyop 3 added the extra_scopes to scopes_supported, given or not
    op = make_op({"scopes_supported": ["openid", "email"]})
    assert op.provider_configuration["scopes_supported"] == ["openid", "email", "eduperson"]
    op = make_op({"scopes_supported": ["openid", "eduperson"]})
    assert op.provider_configuration["scopes_supported"] == ["openid", "eduperson"]
