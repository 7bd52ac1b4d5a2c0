"""Differential tests: this library against pyop 3.5.0, scenario by scenario.

Every scenario of ``cases.py`` runs once under pyop 3.5.0 (``pyop3_harness.py`` in
the ``pyop3_python`` interpreter, one subprocess for all of them) and once in-process
against this library (``ours.py``); the results must be equal. The only differences
accepted are listed below, each with the reason (a spec requirement, or a defect of
pyop 3 that docs/migrating.rst records); everything else that differs fails.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import pyop.exceptions

from . import cases, discovery_differences
from .conftest import run_json
from .ours import run_ours

# the first test also waits for a virtualenv to be built (pip install from the index)
pytestmark = pytest.mark.timeout(900)

HARNESS = Path(__file__).with_name("pyop3_harness.py")
SCENARIOS = {scenario["id"]: scenario for scenario in cases.all_scenarios()}


def ids(prefix: str) -> list[str]:
    return [sid for sid in SCENARIOS if sid.startswith(prefix)]


@pytest.fixture(scope="module")
def results(pyop3_python: str, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, dict[str, Any]]:
    """{"pyop3": {id: result}, "ours": {id: result}} for every scenario (one run each)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = tmp_path_factory.mktemp("compat-key") / "signing_key.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    payload = {"now": cases.NOW, "key_pem": str(key_pem), "scenarios": list(SCENARIOS.values())}
    theirs = run_json(pyop3_python, HARNESS, payload)["results"]
    return {"pyop3": theirs, "ours": run_ours(payload)}


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Human-readable paths where ``actual`` (ours) differs from ``expected`` (pyop 3)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual), key=str):
            if key not in actual:
                found.append(f"{path}.{key}: missing (pyop 3: {json.dumps(expected[key])[:120]})")
            elif key not in expected:
                found.append(f"{path}.{key}: extra ({json.dumps(actual[key])[:120]})")
            else:
                found += differences(expected[key], actual[key], f"{path}.{key}")
        return found
    if (isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual)
            and any(isinstance(item, (dict, list)) for item in expected)):
        return [d for i, (e, a) in enumerate(zip(expected, actual))
                for d in differences(e, a, f"{path}[{i}]")]
    if expected != actual:
        return [f"{path}: pyop 3 {json.dumps(expected)[:160]} != ours {json.dumps(actual)[:160]}"]
    return []


def assert_same(expected: Any, actual: Any, what: str) -> None:
    found = differences(expected, actual)
    if found:
        shown = "\n  ".join(found[:25])
        more = f"\n  ... and {len(found) - 25} more" if len(found) > 25 else ""
        pytest.fail(f"{what}: {len(found)} difference(s) from pyop 3.5.0:\n  {shown}{more}",
                    pytrace=False)


# -- accepted differences in flows -------------------------------------------------------------

#: Parameters this library adds to a response; absent from pyop 3's, ignored by clients
#: (RFC 6749 4.1.2, 5.1: clients ignore response parameters they do not know).
ADDED_RESPONSE_PARAMETERS = {
    # RFC 9207 2: the issuer in the authorization response (mix-up attack defence)
    "authn": {"iss"},
    # RFC 6749 5.1: the granted scope in the token response (OPTIONAL when unchanged)
    "token": {"scope"},
}
#: Which kind of response each step of a harness result is.
RESPONSE_KIND = {"authn": "authn", "token": "token", "replay": "token", "refresh": "token",
                 "unused_code_after": "token", "new_login_after": "token"}


def is_error(outcome: Any) -> bool:
    return isinstance(outcome, dict) and "classes" in outcome and "exception" in outcome


#: pyop 3's exception names that this library keeps as aliases of another class (the same
#: class object, so pyop 3's ``except`` clause catches it; checked by
#: test_exception_aliases_are_the_same_class), and the class's own name.
EXCEPTION_ALIASES = {"UnknownClientId": "InvalidClientId"}


def _caught_by(name: str, ours: dict[str, Any]) -> bool:
    """Whether an ``except`` clause naming pyop 3's exception ``name`` catches ours."""
    return name in ours["classes"] or EXCEPTION_ALIASES.get(name) in ours["classes"]


def normalise_errors(ours: Any, theirs: Any) -> Any:
    """Errors reduced to what a pyop 3 host relies on: the OAuth error code, and that its
    ``except`` clause (pyop 3's exception class) still catches ours. An error code where
    pyop 3 had none (a non-OAuth exception) is an addition, not a difference."""
    if is_error(theirs):
        if not is_error(ours):
            return ours
        caught = _caught_by(theirs["exception"], ours)
        error = ours["error"] if theirs["error"] is not None or not caught else None
        return {"error": error,
                        "exception": theirs["exception"] if caught else ours["exception"]}
    if is_error(ours):
        return {"error": ours["error"], "exception": ours["exception"]}
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return {k: normalise_errors(v, theirs.get(k)) for k, v in ours.items()}
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [normalise_errors(o, t) for o, t in zip(ours, theirs)]
    return ours


def reduce_errors(theirs: Any) -> Any:
    """pyop 3's errors reduced like :func:`normalise_errors` reduces ours."""
    if is_error(theirs):
        return {"error": theirs["error"], "exception": theirs["exception"]}
    if isinstance(theirs, dict):
        return {k: reduce_errors(v) for k, v in theirs.items()}
    if isinstance(theirs, list):
        return [reduce_errors(v) for v in theirs]
    return theirs


def normalise_flow(ours: Any, theirs: Any) -> Any:
    """Ours with the accepted additions removed where pyop 3 lacks them."""
    ours = copy.deepcopy(ours)
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return ours
    for step, value in ours.items():
        reference = theirs.get(step)
        if not isinstance(value, dict) or not isinstance(reference, dict):
            continue
        kind = RESPONSE_KIND.get(step)
        if kind and "parameters" in value:
            added = ADDED_RESPONSE_PARAMETERS[kind] - set(reference.get("parameters", []))
            value["parameters"] = [p for p in value["parameters"] if p not in added]
    return ours


def flows_of(results: dict[str, Any], side: str, sid: str) -> list[Any]:
    return results[side][sid]


def _subjects(flow: dict[str, Any]) -> dict[str, Any]:
    """What a flow tells about the end-user's identifier (or how it failed)."""
    seen: dict[str, Any] = {}
    for step in ("authn", "token", "userinfo"):
        value = flow.get(step)
        if not isinstance(value, dict):
            continue
        if "error" in value or "exception" in value:
            seen[step] = {"error": value.get("error"), "exception": value.get("exception")}
        elif "id_token" in value:
            seen[step] = value["id_token"]["claims"].get("sub")
        elif "claims" in value:
            seen[step] = value["claims"].get("sub")
    return seen


@pytest.mark.parametrize("sid", ids("sub-"))
def test_subject_identifiers(results: dict[str, Any], sid: str) -> None:
    """``sub`` for every user x client x redirect_uri: public, pairwise, sector, record's own."""
    theirs = [_subjects(flow) for flow in flows_of(results, "pyop3", sid)]
    ours = [_subjects(flow) for flow in flows_of(results, "ours", sid)]
    labelled_theirs = {_label(f): s for f, s in zip(SCENARIOS[sid]["flows"], theirs)}
    labelled_ours = {_label(f): s for f, s in zip(SCENARIOS[sid]["flows"], ours)}
    assert_same(labelled_theirs, labelled_ours, f"{sid}: subject identifiers")


def _label(flow: dict[str, Any]) -> str:
    request = flow["request"]
    return (f"{flow['user']}|{request['client_id']}|{request['redirect_uri']}"
            f"|{request['response_type']}")


def _flow_label(index: int, flow: dict[str, Any]) -> str:
    request = flow["request"]
    extra = [f"claims={request['claims']}" if "claims" in request else "",
             f"extra_authz={flow.get('extra_authz')}" if flow.get("extra_authz") else "",
             f"extra_token={flow.get('extra_token')}" if flow.get("extra_token") else ""]
    return (f"#{index} {flow['user']} {request['client_id']} rt={request['response_type']!r} "
            f"scope={request['scope']!r} " + " ".join(e for e in extra if e)).strip()


# -- accepted differences in behaviour ---------------------------------------------------------

#: Differences of behaviour that a spec requires or that correct a pyop 3 defect, by name;
#: docs/migrating.rst has a row for each. :func:`accept_known_differences` checks that ours
#: is exactly the allowed behaviour before it puts pyop 3's in its place.
KNOWN_FLOW_DIFFERENCES = {
    "requested-own-sub": (
        "OIDC Core 3.1.2.2, 5.5.1: a claims request for the end-user's own sub is answered "
        "(never with another sub); pyop 3 compared the request's {\"value\": ...} object "
        "with the sub and so refused every such request with AuthorizationError"),
    "replayed-code": (
        "RFC 6749 4.1.2: a code is used at most once, and the tokens issued from a replayed "
        "code should be revoked; pyop 3 issued tokens again for a replayed sealed "
        "(stateless) code, and left the tokens of a replayed stored code valid"),
    "precise-authentication-error": (
        "RFC 6749 4.1.2.1, 4.2.2.1: unsupported_response_type for a response type the "
        "provider does not support and invalid_scope for a scope without openid (OIDC Core "
        "3.1.2.1); pyop 3 answered invalid_request to both"),
    "authorize-extra-claims-at-token-endpoint": (
        "the extra_id_token_claims given to authorize are in the token endpoint's ID token "
        "too, with every storage, as pyop 3 did with stateless storage (it dropped them with "
        "the others); OIDC Core 3.3.2.11: claims about the authentication in one ID token of "
        "a hybrid flow should be in both; relying parties ignore claims they do not use "
        "(RFC 7519 4)"),
    "extra-claims-callable-user-id": (
        "the extra_id_token_claims callable receives the local user id at the token "
        "endpoint, as pyop 3 documented it and as authorize passes it; pyop 3's stateless "
        "mode passed the sub instead"),
}
#: pyop 3's error code -> the more precise codes this library answers instead
#: ("precise-authentication-error").
REFINED_AUTHENTICATION_ERRORS = {"invalid_request": {"unsupported_response_type",
                                                     "invalid_scope"}}


def _failed(step: Any) -> bool:
    return isinstance(step, dict) and "exception" in step


def _extra_claims_given(spec: Any, flow: dict[str, Any]) -> dict[str, Any]:
    """The claims an ``extra_authz``/``extra_token`` spec of the harness produces."""
    if not spec:
        return {}
    if "dict" in spec:
        return dict(spec["dict"])
    return dict(spec["callable"], called_with=[flow["user"], flow["request"]["client_id"]])


def accept_known_differences(flow: dict[str, Any], ours: Any, theirs: Any,
                             used: set[str] | None = None) -> Any:
    """Ours (errors normalised) with each :data:`KNOWN_FLOW_DIFFERENCES` difference
    replaced by pyop 3's outcome, once checked to be exactly the allowed one; the names of
    the differences found are added to ``used``."""
    used = set() if used is None else used
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return ours
    ours = copy.deepcopy(ours)
    request = flow["request"]
    # requested-own-sub
    own_sub = cases.USERS.get(flow["user"], {}).get("sub")
    requested = {member["sub"].get("value") for member in (request.get("claims") or {}).values()
                 if isinstance(member, dict) and isinstance(member.get("sub"), dict)}
    if own_sub and requested == {own_sub} and _failed(theirs.get("authn")) \
            and theirs["authn"]["exception"] == "AuthorizationError":
        subjects = _subjects(ours)
        assert subjects and all(sub == own_sub for sub in subjects.values()), subjects
        used.add("requested-own-sub")
        return copy.deepcopy(theirs)
    # precise-authentication-error
    if _failed(theirs.get("authn")) and _failed(ours.get("authn")) and ours["authn"]["error"] \
            in REFINED_AUTHENTICATION_ERRORS.get(theirs["authn"]["error"], ()):
        ours["authn"]["error"] = theirs["authn"]["error"]
        used.add("precise-authentication-error")
    # replayed-code
    if flow.get("replay") and "replay" in ours:
        assert _failed(ours["replay"]) and ours["replay"]["error"] == "invalid_grant", ours
        if ours != theirs:
            used.add("replayed-code")
        ours["replay"] = copy.deepcopy(theirs.get("replay"))
        for step, error in (("refresh", "invalid_grant"), ("userinfo", "invalid_token")):
            if _failed(ours.get(step)) and not _failed(theirs.get(step)):
                assert ours[step]["error"] == error, (step, ours[step])
                ours[step] = copy.deepcopy(theirs.get(step))
    # the extra_id_token_claims of the token endpoint's ID token
    claims = ((ours.get("token") or {}).get("id_token") or {}).get("claims")
    their_claims = ((theirs.get("token") or {}).get("id_token") or {}).get("claims")
    if isinstance(claims, dict) and isinstance(their_claims, dict):
        at_token = _extra_claims_given(flow.get("extra_token"), flow)
        for name, value in _extra_claims_given(flow.get("extra_authz"), flow).items():
            if name not in their_claims and name not in at_token and claims.get(name) == value:
                del claims[name]
                used.add("authorize-extra-claims-at-token-endpoint")
        if "callable" in (flow.get("extra_token") or {}) \
                and claims.get("called_with") == at_token["called_with"] \
                and their_claims.get("called_with") == [their_claims.get("sub"),
                                                        request["client_id"]]:
            claims["called_with"] = their_claims["called_with"]
            used.add("extra-claims-callable-user-id")
    return ours


def compare_flows(results: dict[str, Any], sid: str,
                  select: Callable[[dict[str, Any]], Any] = lambda flow: flow) -> None:
    theirs = flows_of(results, "pyop3", sid)
    ours = flows_of(results, "ours", sid)
    assert not (isinstance(theirs, dict) and "crash" in theirs), theirs
    assert not (isinstance(ours, dict) and "crash" in ours), ours.get("traceback")
    flows = SCENARIOS[sid]["flows"]
    labels = [_flow_label(i, flow) for i, flow in enumerate(flows)]
    assert_same({label: select(reduce_errors(t)) for label, t in zip(labels, theirs)},
                {label: select(accept_known_differences(
                    flow, normalise_errors(normalise_flow(o, t), t), reduce_errors(t)))
                 for label, flow, o, t in zip(labels, flows, ours, theirs)}, sid)


def test_every_known_difference_is_still_one(results: dict[str, Any]) -> None:
    """Each accepted difference is met in the scenarios (the list does not outlive the
    difference), and pyop 3's exception names kept as aliases are the same class."""
    used: set[str] = set()
    for sid in ids("claims-") + ids("special-"):
        for flow, o, t in zip(SCENARIOS[sid]["flows"], flows_of(results, "ours", sid),
                              flows_of(results, "pyop3", sid)):
            accept_known_differences(flow, normalise_errors(normalise_flow(o, t), t),
                                     reduce_errors(t), used)
    assert used == set(KNOWN_FLOW_DIFFERENCES)
    for alias, name in EXCEPTION_ALIASES.items():
        assert getattr(pyop.exceptions, alias) is getattr(pyop.exceptions, name)


#: ID token claims about the token itself rather than the end-user (OIDC Core 2).
ENVELOPE_CLAIMS = {"iss", "aud", "exp", "iat", "nonce", "at_hash", "c_hash", "auth_time"}


def _claims_only(flow: dict[str, Any]) -> dict[str, Any]:
    """End-user claims released (ID tokens and UserInfo), response shape and errors; ``sub``
    (test_subject_identifiers), the ID token envelope and JWS header (test_id_token_envelope)
    left out, so that a difference in released claims shows on its own."""
    flow = copy.deepcopy(flow)
    for step in flow.values():
        if isinstance(step, dict):
            id_token = step.get("id_token")
            if isinstance(id_token, dict):
                id_token.pop("header", None)
                id_token["claims"] = {k: v for k, v in id_token["claims"].items()
                                      if k not in ENVELOPE_CLAIMS | {"sub"}}
            if isinstance(step.get("claims"), dict):
                step["claims"].pop("sub", None)
    return flow


def _envelope_only(flow: dict[str, Any]) -> dict[str, Any]:
    """The JWS header and envelope claims of every ID token of a flow."""
    return {name: {"header": step["id_token"]["header"],
                   "claims": {k: v for k, v in step["id_token"]["claims"].items()
                              if k in ENVELOPE_CLAIMS},
                   "signature": step["id_token"]["signature"]}
            for name, step in flow.items() if isinstance(step, dict) and "id_token" in step}


@pytest.mark.parametrize("sid", ids("claims-") + ids("special-"))
def test_id_token_envelope(results: dict[str, Any], sid: str) -> None:
    """iss, aud, exp, iat, nonce, at_hash/c_hash and the JWS header of every ID token."""
    compare_flows(results, sid, _envelope_only)


@pytest.mark.parametrize("sid", ids("claims-"))
def test_released_claims(results: dict[str, Any], sid: str) -> None:
    """Scope sets x response types x claims requests: ID token and UserInfo claims."""
    compare_flows(results, sid, _claims_only)


@pytest.mark.parametrize("sid", ids("special-"))
def test_extra_claims_requested_sub_refresh_and_errors(results: dict[str, Any], sid: str
                                                        ) -> None:
    """extra_id_token_claims (dict, callable), a requested sub, refresh, replay, bad requests."""
    compare_flows(results, sid, _claims_only)


@pytest.mark.parametrize("sid", ids("special-") + ids("claims-"))
def test_whole_flows_including_sub(results: dict[str, Any], sid: str) -> None:
    compare_flows(results, sid)


# -- discovery ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sid", ids("discovery-"))
def test_discovery_document(results: dict[str, Any], sid: str) -> None:
    """pyop 3's document, member by member, but for DISCOVERY_CORRECTIONS and UNORDERED
    (the differences tests/test_upgrade_config.py accepts too)."""
    theirs = results["pyop3"][sid]
    ours = results["ours"][sid]
    assert "configuration" in theirs, f"pyop 3 refused the configuration: {theirs}"
    assert "configuration" in ours, f"this library refused it: {ours}"
    expected, actual = discovery_differences.comparable(theirs["configuration"],
                                                        ours["configuration"])
    assert_same(expected, actual, f"{sid}: provider_configuration.to_dict()")


# -- registration -------------------------------------------------------------------------------

#: Random or time-dependent members, and RFC 7592 management credentials (pyop 3 had no
#: client configuration endpoint; a client that does not use them ignores them).
REGISTRATION_IGNORED = {"client_id", "client_secret", "client_id_issued_at",
                        "registration_access_token", "registration_client_uri"}
#: Members this library states explicitly with the value the spec makes the default.
REGISTRATION_DEFAULTS_STATED = {
    "token_endpoint_auth_method": "client_secret_basic",  # OIDC Registration 2
}
#: pyop 3 reported every metadata error as invalid_request; RFC 7591 3.2.2 (and OIDC
#: Registration 3.3) define the precise codes.
REFINED_REGISTRATION_ERRORS = {"invalid_request": {"invalid_request", "invalid_client_metadata",
                                                   "invalid_redirect_uri"}}
#: Requests pyop 3 accepted although a spec forbids them: refusing them is required.
MUST_REFUSE = {
    json.dumps({"redirect_uris": ["https://rp.example.com/cb#fragment"]}):
        ("invalid_redirect_uri", "RFC 6749 3.1.2: a redirection URI MUST NOT have a fragment"),
}


def _response_types(values: Any) -> Any:
    """Response types as sets of words: "token id_token" == "id_token token" (pyop 3 joined
    frozensets, so its order and spelling were arbitrary)."""
    if not isinstance(values, list):
        return values
    return sorted(" ".join(sorted(value.split())) for value in values)


def _grant_types_for(response_types: list[str]) -> list[str]:
    """OIDC Registration 2: the grant types that the response types imply."""
    grants = set()
    for value in response_types or ["code"]:
        words = value.split()
        if "code" in words:
            grants.add("authorization_code")
        if "token" in words or "id_token" in words:
            grants.add("implicit")
    return sorted(grants)


@pytest.mark.parametrize("sid", ids("registration-"))
def test_registration_responses(results: dict[str, Any], sid: str) -> None:
    theirs_all, ours_all = results["pyop3"][sid], results["ours"][sid]
    assert len(theirs_all) == len(ours_all) == len(SCENARIOS[sid]["requests"])
    expected_all, actual_all = {}, {}
    for request, theirs, ours in zip(SCENARIOS[sid]["requests"], theirs_all, ours_all):
        label = json.dumps(request)
        t_reg, o_reg = theirs["registration"], ours["registration"]
        if label in MUST_REFUSE:
            code, reason = MUST_REFUSE[label]
            assert o_reg.get("error") == code, f"{label}: must be refused ({reason}): {o_reg}"
            continue
        if "response" not in t_reg and t_reg.get("error") is None:
            # pyop 3 crashed (not an OAuth error): anything but a crash is better
            assert "response" in o_reg or o_reg.get("error"), f"{label}: {o_reg}"
            continue
        if "response" in t_reg and "response" in o_reg:
            expected = {k: v for k, v in t_reg["response"].items()
                        if k not in REGISTRATION_IGNORED}
            actual = {k: v for k, v in o_reg["response"].items() if k not in REGISTRATION_IGNORED}
            for name, value in REGISTRATION_DEFAULTS_STATED.items():
                if name not in expected and actual.get(name) == value:
                    del actual[name]
            if "grant_types" not in expected and actual.get("grant_types") == _grant_types_for(
                    actual.get("response_types", [])):
                del actual["grant_types"]  # the values Registration 2 implies, stated
            for config in (expected, actual):
                if "response_types" in config:
                    config["response_types"] = _response_types(config["response_types"])
            expected_all[label] = {"response": expected,
                                   "stored_response_types": _response_types(
                                       theirs["stored_response_types"]),
                                   "flow": _subjects(theirs.get("flow", {}))}
            actual_all[label] = {"response": actual,
                                 "stored_response_types": _response_types(
                                     ours["stored_response_types"]),
                                 "flow": _subjects(ours.get("flow", {}))}
            continue
        expected_all[label] = {"error": t_reg.get("error") if "response" not in t_reg else
                               "<registered>"}
        code = o_reg.get("error") if "response" not in o_reg else "<registered>"
        if code in REFINED_REGISTRATION_ERRORS.get(expected_all[label]["error"], ()):
            code = expected_all[label]["error"]
        actual_all[label] = {"error": code}
    assert_same(expected_all, actual_all, f"{sid}: handle_client_registration_request")


# -- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sid", ids("jwks-"))
def test_jwks_and_id_token_header(results: dict[str, Any], sid: str) -> None:
    """The published JWKS and the ID token JWS header for a kid-less, empty-kid and kid key."""
    theirs, ours = results["pyop3"][sid], results["ours"][sid]
    headers_theirs = [step["id_token"]["header"] for flow in theirs["flows"]
                      for step in flow.values() if isinstance(step, dict) and "id_token" in step]
    headers_ours = [normalise_flow(o, t) for o, t in zip(ours["flows"], theirs["flows"])]
    headers_ours = [step["id_token"]["header"] for flow in headers_ours
                    for step in flow.values() if isinstance(step, dict) and "id_token" in step]
    assert headers_theirs, theirs
    verified = [step["id_token"]["verified_with_published_jwks"] for flow in ours["flows"]
                for step in flow.values() if isinstance(step, dict) and "id_token" in step]
    assert set(verified) == {"valid"}, "relying parties must verify our ID tokens with the JWKS"
    assert_same({"jwks": theirs["jwks"], "headers": headers_theirs},
                {"jwks": ours["jwks"], "headers": headers_ours}, f"{sid}: jwks and JWS header")


# -- logout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sid", ids("logout-"))
def test_logout_effects(results: dict[str, Any], sid: str) -> None:
    """After ``logout_user``, as under pyop 3: the user's access tokens and unused codes are
    dead, another user's access token lives, and the user's next login works with the same
    ``sub`` (the ``sub -> user_id`` mapping is kept). pyop 3 deleted the codes and access
    tokens and left the refresh tokens (one then failed with ``KeyError``, its access token
    gone); this library revokes them too: ``invalid_grant`` (RFC 6749 5.2, RFC 7009 2.1;
    docs/migrating.rst "Logout revokes refresh tokens too")."""
    theirs, ours = results["pyop3"][sid], results["ours"][sid]
    assert theirs["refresh_after"].get("exception") == "KeyError", theirs["refresh_after"]
    assert ours["refresh_after"].get("error") == "invalid_grant", ours["refresh_after"]
    new_login_sub = ours["new_login_after"].get("id_token", {}).get("claims", {}).get("sub")
    assert new_login_sub == ours["sub_before_logout"], "logout must keep the user's sub"
    expected = reduce_errors({k: v for k, v in theirs.items() if k != "refresh_after"})
    actual = normalise_errors({k: normalise_flow({k: v}, {k: theirs[k]})[k]
                               for k, v in ours.items() if k != "refresh_after"}, theirs)
    assert_same(expected, actual, f"{sid}: observable state after logout_user")
