"""Drive ``AuthorizationState`` through pyop 3's Python API and print what it returns.

Run by ``tests/compat/test_pyop3_sources.py`` twice, in subprocesses: with an interpreter
whose ``pyop`` is pyop 3.5.0 (the ``pyop3_python`` fixture) and with this library's.
Only pyop 3's API is called, the way pyop 3 code (its own ``Provider``, SATOSA)
calls it; the outputs must be equal. Random values (codes, tokens) are reported by their
type, times relative to the token's ``iat`` or to now, exceptions by their class name.

Usage: ``python pyop3_authz_driver.py`` prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

from pyop.access_token import AccessToken
from pyop.authz_state import AuthorizationState
from pyop.message import AuthorizationRequest
from pyop.storage import StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

SALT = "differential-salt"
USER_INFO = {"email": "alice@example.com", "name": "Alice", "phone_number": "+1 555 0100"}
EXTRA = {"acr_custom": "gold"}
AUTH_REQ = {
    "client_id": "client1",
    "redirect_uri": "https://rp.example.com/cb",
    "response_type": "code",
    "scope": ["openid", "email", "profile"],
    "nonce": "n-0S6_WzA2Mj",
    "state": "af0ifjsldkj",
    "claims": {"userinfo": {"given_name": None}},
}


#: subject identifiers made -> their label (the values themselves are compared by the
#: subject identifier tests; here what matters is which one each call answers)
SUBJECTS: dict[str, str] = {}


def outcome(call: Callable[[], Any]) -> Any:
    """The JSON-friendly shape of a call's result, or ``{"raises": ExceptionName}``."""
    try:
        return describe(call())
    except Exception as e:  # noqa: BLE001 - the class is the observation
        return {"raises": type(e).__name__}


def describe(value: Any) -> Any:
    if isinstance(value, AccessToken):
        return {"AccessToken": {"value": describe(value.value), "type": value.type,
                                "expires_in": value.expires_in}}
    if isinstance(value, AuthorizationRequest):
        return {"AuthorizationRequest": describe(value.to_dict())}
    if isinstance(value, tuple):
        return {"tuple": [describe(v) for v in value]}
    if isinstance(value, str) and value in SUBJECTS:
        return SUBJECTS[value]
    if isinstance(value, str) and len(value) >= 32:
        return "<token str>"
    if isinstance(value, dict):
        return {k: describe(v) for k, v in sorted(value.items())}
    return value


def introspection(state: AuthorizationState, token: str) -> Any:
    result = outcome(lambda: state.introspect_access_token(token))
    if isinstance(result, dict) and "exp" in result and "iat" in result:
        result["exp"] = result["exp"] - result["iat"]  # the lifetime
        result["iat"] = abs(result["iat"] - int(time.time())) <= 5  # issued now
    return result


def scenario(state: AuthorizationState, user_info: Any) -> dict[str, Any]:
    """The pyop 3 calls of a code flow, a refresh and the lookups, in order."""
    out: dict[str, Any] = {}
    request = AuthorizationRequest(**AUTH_REQ)
    sub = state.get_subject_identifier("public", "alice")
    out["sub"] = sub
    out["pairwise"] = state.get_subject_identifier("pairwise", "alice", "rp.example.com")
    SUBJECTS.update({sub: "<public sub>", out["pairwise"]: "<pairwise sub>"})
    out["sub"], out["pairwise"] = describe(sub), describe(out["pairwise"])
    out["user_id"] = outcome(lambda: state.get_user_id_for_subject_identifier(sub))
    out["unknown_sub_lookup"] = outcome(
        lambda: state.get_user_id_for_subject_identifier("nobody"))
    out["code_unknown_sub"] = outcome(
        lambda: state.create_authorization_code(request, "nobody"))

    code = state.create_authorization_code(request, sub, user_info=user_info,
                                           extra_id_token_claims=EXTRA)
    out["code"] = describe(code)
    out["request_for_code"] = outcome(lambda: state.get_authorization_request_for_code(code))
    out["sub_for_code"] = outcome(lambda: state.get_subject_identifier_for_code(code))
    out["user_info_for_code"] = outcome(lambda: state.get_user_info_for_code(code))
    out["extra_for_code"] = outcome(lambda: state.get_extra_id_token_claims_for_code(code))
    out["unknown_code_lookup"] = outcome(
        lambda: state.get_subject_identifier_for_code("not-a-code"))

    token = state.exchange_code_for_token(code)
    out["token"] = describe(token)
    out["exchange_unknown"] = outcome(lambda: state.exchange_code_for_token("not-a-code"))
    out["sub_for_used_code"] = outcome(lambda: state.get_subject_identifier_for_code(code))
    out["user_info_for_used_code"] = outcome(lambda: state.get_user_info_for_code(code))

    out["introspection"] = introspection(state, token.value)
    out["introspect_unknown"] = outcome(lambda: state.introspect_access_token("nope"))
    out["user_info_for_token"] = outcome(lambda: state.get_user_info_for_access_token(
        token.value))
    out["request_for_token"] = outcome(
        lambda: {k: v for k, v in state.get_authorization_request_for_access_token(
            token.value).to_dict().items() if k in ("client_id", "claims")})
    out["token_lookup_unknown"] = outcome(
        lambda: state.get_user_info_for_access_token("nope"))

    refresh = state.create_refresh_token(token.value)
    out["refresh"] = describe(refresh)
    out["refresh_unknown_access"] = outcome(lambda: state.create_refresh_token("nope"))
    if refresh is not None:
        first = state.use_refresh_token(refresh)
        out["use_refresh"] = describe(first)
        current = first[1] or refresh  # a client keeps the newest refresh token
        narrowed = state.use_refresh_token(current, scope=["openid", "email"])
        out["use_refresh_narrowed"] = describe(narrowed)
        out["narrowed_introspection"] = introspection(state, narrowed[0].value)
        out["narrowed_user_info"] = outcome(
            lambda: state.get_user_info_for_access_token(narrowed[0].value))
        current = narrowed[1] or current
        out["use_refresh_wider"] = outcome(
            lambda: state.use_refresh_token(current, scope=["openid", "address"]))
        # a refresh token replaced by rotation, used again (pyop 3 accepted it)
        out["reuse_rotated"] = outcome(lambda: state.use_refresh_token(refresh)) \
            if first[1] else None
    out["use_refresh_unknown"] = outcome(lambda: state.use_refresh_token("nope"))

    implicit = state.create_access_token(request, sub, scope=["openid"], user_info=user_info)
    out["implicit"] = describe(implicit)
    out["implicit_introspection"] = introspection(state, implicit.value)
    out["implicit_user_info"] = outcome(
        lambda: state.get_user_info_for_access_token(implicit.value))
    out["implicit_unknown_sub"] = outcome(lambda: state.create_access_token(request, "x"))

    # last: a replayed code (pyop 3 refused it and kept the tokens issued from it)
    out["exchange_again"] = outcome(lambda: state.exchange_code_for_token(code))
    out["token_after_replay"] = introspection(state, token.value)
    return out


def states() -> dict[str, Callable[[], AuthorizationState]]:
    factory = HashBasedSubjectIdentifierFactory(SALT)

    def stateless(collection: str) -> Any:
        return StorageBase.from_uri("stateless://user:a-long-enough-secret@localhost",
                                    db_name="satosa", collection=collection)

    return {
        "memory": lambda: AuthorizationState(factory),
        "memory_refresh": lambda: AuthorizationState(
            HashBasedSubjectIdentifierFactory(SALT), refresh_token_lifetime=600),
        "memory_refresh_threshold": lambda: AuthorizationState(
            HashBasedSubjectIdentifierFactory(SALT), {}, {}, {}, {},
            refresh_token_lifetime=600, refresh_token_threshold=900),
        # SATOSA's stateless configuration: every store from the same stateless:// URI
        "stateless": lambda: AuthorizationState(
            HashBasedSubjectIdentifierFactory(SALT), stateless("authz_codes"),
            stateless("access_tokens"), stateless("refresh_tokens"),
            stateless("subject_identifiers"), refresh_token_lifetime=600),
    }


def main() -> None:
    results: dict[str, Any] = {
        "keys": [AuthorizationState.KEY_AUTHORIZATION_REQUEST,
                 AuthorizationState.KEY_USER_INFO,
                 AuthorizationState.KEY_EXTRA_ID_TOKEN_CLAIMS],
        "access_token": describe(AccessToken("v" * 40, 60, typ="DPoP")),
        "access_token_default": describe(AccessToken("v" * 40, 60)),
    }
    for name, make in states().items():
        state = make()
        results[name] = scenario(state, dict(USER_INFO))
        results[name]["stateless"] = bool(state.stateless)
    json.dump(results, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
