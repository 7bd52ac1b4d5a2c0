"""``AuthorizationState`` driven through pyop 3's Python API, as pyop 3 code calls it.

* the pyop 3 call styles, return values and exceptions, next to this library's own;
* the expected differences from pyop 3.5.0 (``tests/compat/test_pyop3_sources.py`` makes
  the same calls on pyop 3.5.0 and here and compares them, but for the differences listed
  here and in docs/migrating.rst);
* sealed (stateless) grants carry the claims they may release, so a host that forgets
  the user after ``authorize`` (SATOSA's stateless mode) still gets them in the ID token
  and at UserInfo (OIDC Core 3.1.3.3, 5.3), minimised and encrypted;
* ``StatelessWrapper``'s pyop 3 constructor, ``pack`` and ``alg``.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    USER_ID,
    USERS,
    FakeClock,
    clients,
    configuration,
)

from pyop.access_token import AccessToken
from pyop.authz_state import AuthorizationState
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    InvalidRefreshToken,
    InvalidScope,
    InvalidSubjectIdentifier,
)
from pyop.message import AuthorizationRequest
from pyop.provider import Provider
from pyop.storage import StatelessWrapper, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

DRIVER = Path(__file__).parent / "compat" / "pyop3_authz_driver.py"
ROOT = Path(__file__).resolve().parent.parent
SECRET = "a-long-enough-secret-for-sealing"
AUTH_REQ = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": ["openid", "email", "profile"], "nonce": "n",
            "claims": {"userinfo": {"given_name": None}}}
USER_INFO = {"email": "alice@example.com", "name": "Alice"}


def stateless(collection: str, clock: Any = None) -> StorageBase:
    kwargs = {"clock": clock} if clock is not None else {}
    return StorageBase.from_uri(f"stateless://user:{SECRET}@localhost", db_name="satosa",
                                collection=collection, **kwargs)


@pytest.fixture(params=["memory", "stateless"])
def state(request: Any, clock: FakeClock) -> AuthorizationState:
    """Both pyop 3 configurations: the default (in-memory) and SATOSA's stateless one."""
    if request.param == "memory":
        return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                  refresh_token_lifetime=600, clock=clock)
    return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                              stateless("authz_codes", clock), stateless("access_tokens", clock),
                              stateless("refresh_tokens", clock),
                              stateless("subject_identifiers", clock),
                              refresh_token_lifetime=600, clock=clock)


def request() -> AuthorizationRequest:
    return AuthorizationRequest(**AUTH_REQ)


# -- the API itself ----------------------------------------------------------------------------

#: every public method of pyop 3's AuthorizationState and its parameters, in order
PYOP3_METHODS = {
    "__init__": ["subject_identifier_factory", "authorization_code_db", "access_token_db",
                 "refresh_token_db", "subject_identifier_db", "authorization_code_lifetime",
                 "access_token_lifetime", "refresh_token_lifetime", "refresh_token_threshold"],
    "create_authorization_code": ["authorization_request", "subject_identifier", "scope",
                                  "user_info", "extra_id_token_claims"],
    "create_access_token": ["authorization_request", "subject_identifier", "scope",
                            "user_info"],
    "exchange_code_for_token": ["authorization_code"],
    "introspect_access_token": ["access_token_value"],
    "create_refresh_token": ["access_token_value"],
    "get_subject_identifier": ["subject_type", "user_id", "sector_identifier"],
    "get_user_id_for_subject_identifier": ["subject_identifier"],
    "get_user_info_for_code": ["authorization_code"],
    "get_extra_id_token_claims_for_code": ["authorization_code"],
    "get_authorization_request_for_code": ["authorization_code"],
    "get_subject_identifier_for_code": ["authorization_code"],
    "delete_state_for_subject_identifier": ["subject_identifier"],
    "get_authorization_request_for_access_token": ["access_token_value"],
    "get_user_info_for_access_token": ["access_token"],
}


@pytest.mark.parametrize("name", sorted(PYOP3_METHODS))
def test_pyop3_methods_and_parameters(name: str) -> None:
    """pyop 3's parameters come first, in pyop 3's order and kind (positional or keyword
    where pyop 3 had them so, keyword-only after ``*`` in the constructor)."""
    params = list(inspect.signature(getattr(AuthorizationState, name)).parameters.values())[1:]
    expected = PYOP3_METHODS[name]
    if name == "get_user_info_for_access_token":
        # pyop 3 named it access_token here and access_token_value elsewhere: positional use
        assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        return
    assert [p.name for p in params[:len(expected)]] == expected
    keyword_only = {"authorization_code_lifetime", "access_token_lifetime",
                    "refresh_token_lifetime", "refresh_token_threshold"}
    for param in params[:len(expected)]:
        wanted = (inspect.Parameter.KEYWORD_ONLY if param.name in keyword_only
                  else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        assert param.kind is wanted, param.name
    assert all(p.default is not inspect.Parameter.empty or p.kind is p.VAR_KEYWORD
               for p in params[len(expected):]), "new parameters must be optional"


LIST_PYOP3_METHODS = """
import inspect, json
from pyop.authz_state import AuthorizationState
print(json.dumps({name: [p for p in inspect.signature(member).parameters][1:]
                  for name, member in vars(AuthorizationState).items()
                  if callable(member) and (not name.startswith("_") or name == "__init__")}))
"""


def test_pyop3_use_refresh_token_signature() -> None:
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"))
    assert "use_refresh_token" in dir(state)
    # (refresh_token, scope=None): keyword scope, positional scope list
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token("unknown", scope=["openid"])
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token("unknown", ["openid"])
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token("unknown")


def test_constructor_defaults_and_keys() -> None:
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"))
    assert (state.authorization_code_lifetime, state.access_token_lifetime,
            state.refresh_token_lifetime, state.refresh_token_threshold) == (600, 3600, None,
                                                                               None)
    assert state.stateless is False
    assert (AuthorizationState.KEY_AUTHORIZATION_REQUEST, AuthorizationState.KEY_USER_INFO,
            AuthorizationState.KEY_EXTRA_ID_TOKEN_CLAIMS) == ("auth_req", "user_info",
                                                              "extra_id_token_claims")
    sealed = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                stateless("authz_codes"))
    assert sealed.stateless is True


def test_access_token_typ() -> None:
    token = AccessToken("value", 60, typ="DPoP")
    assert (token.value, token.type, token.expires_in) == ("value", "DPoP", 60)
    assert AccessToken("value", 60).type == AccessToken.BEARER_TOKEN_TYPE == "Bearer"
    assert AccessToken("value", 60, "mac").type == "mac"
    assert AccessToken("value", 60, type="N_A").type == "N_A"


def test_code_flow_through_pyop3_calls(state: AuthorizationState) -> None:
    """pyop 3's Provider sequence: lookups, exchange, refresh token, UserInfo lookups."""
    sub = state.get_subject_identifier("public", USER_ID)
    assert state.get_user_id_for_subject_identifier(sub) == USER_ID
    code = state.create_authorization_code(request(), sub, user_info=USER_INFO,
                                           extra_id_token_claims={"x": 1})
    assert isinstance(code, str)
    auth_req = state.get_authorization_request_for_code(code)
    assert isinstance(auth_req, AuthorizationRequest)
    assert auth_req.to_dict() == request().to_dict()
    assert state.get_subject_identifier_for_code(code) == sub
    access = state.exchange_code_for_token(code)
    assert isinstance(access, AccessToken)
    assert (access.type, access.expires_in) == ("Bearer", 3600)
    refresh = state.create_refresh_token(access.value)
    assert isinstance(refresh, str)
    introspection = state.introspect_access_token(access.value)
    assert introspection == {
        "active": True, "scope": "openid email profile", "client_id": CLIENT_ID,
        "aud": [CLIENT_ID], "sub": sub, "token_type": "Bearer",
        "iat": introspection["iat"], "exp": introspection["iat"] + 3600}
    for_token = state.get_authorization_request_for_access_token(access.value)
    assert isinstance(for_token, AuthorizationRequest)
    assert for_token["client_id"] == CLIENT_ID
    assert for_token["claims"].to_dict() == {"userinfo": {"given_name": None}}
    new_access, new_refresh = state.use_refresh_token(refresh, scope=["openid"])
    assert new_refresh is None
    assert state.introspect_access_token(new_access.value)["scope"] == "openid"
    with pytest.raises(InvalidScope):
        state.use_refresh_token(refresh, scope=["openid", "phone"])
    if state.stateless:
        # pyop 3's stateless mode: the code and its tokens carry the claims
        assert state.get_user_info_for_code(code) == USER_INFO
        assert state.get_extra_id_token_claims_for_code(code) == {"x": 1}
        assert state.get_user_info_for_access_token(access.value) == USER_INFO
        assert state.get_user_info_for_access_token(new_access.value) == USER_INFO
    else:
        # pyop 3 kept no claims in stored codes and tokens: they are read when released
        assert state.get_user_info_for_code(code) is None
        assert state.get_extra_id_token_claims_for_code(code) is None
        assert state.get_user_info_for_access_token(access.value) is None


def test_errors_as_pyop3(state: AuthorizationState, clock: FakeClock) -> None:
    sub = state.get_subject_identifier("public", USER_ID)
    with pytest.raises(InvalidSubjectIdentifier):
        state.create_authorization_code(request(), "unknown-sub")
    with pytest.raises(InvalidSubjectIdentifier):
        state.create_access_token(request(), "unknown-sub")
    with pytest.raises(InvalidSubjectIdentifier):
        state.get_user_id_for_subject_identifier("unknown-sub")
    for lookup in (state.get_authorization_request_for_code, state.get_user_info_for_code,
                   state.get_subject_identifier_for_code,
                   state.get_extra_id_token_claims_for_code, state.exchange_code_for_token):
        with pytest.raises(InvalidAuthorizationCode):
            lookup("unknown")  # type: ignore[operator]
    for token_lookup in (state.introspect_access_token, state.get_user_info_for_access_token,
                         state.get_authorization_request_for_access_token,
                         state.create_refresh_token):
        with pytest.raises(InvalidAccessToken):
            token_lookup("unknown")  # type: ignore[operator]
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token("unknown")
    code = state.create_authorization_code(request(), sub)
    clock.advance(601)
    with pytest.raises(InvalidAuthorizationCode):
        state.exchange_code_for_token(code)
    code = state.create_authorization_code(request(), sub)
    state.exchange_code_for_token(code)
    with pytest.raises(InvalidAuthorizationCode):
        state.exchange_code_for_token(code)


def test_scope_argument_and_implicit_token(state: AuthorizationState) -> None:
    sub = state.get_subject_identifier("public", USER_ID)
    code = state.create_authorization_code(request(), sub, ["openid"])
    token = state.exchange_code_for_token(code)
    assert state.introspect_access_token(token.value)["scope"] == "openid"
    implicit = state.create_access_token(request(), sub, ["openid", "email"],
                                         user_info=USER_INFO)
    assert isinstance(implicit, AccessToken)
    assert state.introspect_access_token(implicit.value)["scope"] == "openid email"
    assert state.get_user_info_for_access_token(implicit.value) == (
        USER_INFO if state.stateless else None)


def test_no_refresh_token_without_lifetime() -> None:
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"))
    sub = state.get_subject_identifier("public", USER_ID)
    token = state.exchange_code_for_token(state.create_authorization_code(request(), sub))
    assert state.create_refresh_token(token.value) is None


def test_refresh_token_rotated_near_expiry(clock: FakeClock) -> None:
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                               refresh_token_lifetime=600, refresh_token_threshold=100,
                               clock=clock)
    sub = state.get_subject_identifier("public", USER_ID)
    token = state.exchange_code_for_token(state.create_authorization_code(request(), sub))
    refresh = state.create_refresh_token(token.value)
    assert refresh is not None
    assert state.use_refresh_token(refresh)[1] is None
    clock.advance(550)
    _, rotated = state.use_refresh_token(refresh)
    assert isinstance(rotated, str) and rotated != refresh
    with pytest.raises(InvalidRefreshToken):  # RFC 9700 4.14.2 (pyop 3 accepted it)
        state.use_refresh_token(refresh)


def test_delete_state_for_subject_identifier(state: AuthorizationState) -> None:
    # as in pyop 3: the subject's codes and access tokens go, its mapping stays, and a
    # second logout is no error
    sub = state.get_subject_identifier("public", USER_ID)
    code = state.create_authorization_code(AUTH_REQ, sub)
    token = state.create_access_token(AUTH_REQ, sub)
    state.delete_state_for_subject_identifier(sub)
    assert state.get_user_id_for_subject_identifier(sub) == USER_ID
    state.delete_state_for_subject_identifier(sub)
    with pytest.raises(InvalidAuthorizationCode):
        state.exchange_code_for_token(code)
    with pytest.raises(InvalidAccessToken):
        state.introspect_access_token(token.value)


def test_library_call_style_still_works(clock: FakeClock) -> None:
    """This library's own signatures, through the same names and the explicit ones."""
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                               refresh_token_lifetime=600, clock=clock)
    code = state.create_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"],
                                           {"acr": "x"})
    record = state.get_authorization_code(code)
    assert (record["user_id"], record["scope"], record["acr"]) == (USER_ID, "openid", "x")
    code2 = state.create_authorization_code(AUTH_REQ, "sub-1", user_id=USER_ID,
                                            scope=["openid"], extra={"acr": "y"})
    assert state.get_authorization_code(code2)["acr"] == "y"
    access, refresh = state.redeem_authorization_code(code, record)
    assert refresh is not None
    new_access, new_refresh, grant = state.use_refresh_token(refresh, CLIENT_ID)
    assert grant["client_id"] == CLIENT_ID and new_refresh is None
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token(refresh, "another-client")
    assert len(state.use_refresh_token(refresh, CLIENT_ID, ["openid"], rotate=True)) == 3
    token = state.create_access_token(AUTH_REQ, "sub-1", USER_ID, ["openid"])
    assert state.get_access_token(token.value)["user_id"] == USER_ID
    assert state.issue_access_token(AUTH_REQ, "sub-1", USER_ID, ["openid"]).type == "Bearer"
    assert isinstance(state.issue_authorization_code(AUTH_REQ, "sub-1", USER_ID, ["openid"]),
                      str)


# -- differential test against pyop 3.5.0 ------------------------------------------------------

#: (configuration, observation): where this library answers differently, and why
#: (docs/migrating.rst): a replayed code revokes the tokens issued from it (RFC 6749
#: 4.1.2), sealed or not, a sealed code is single-use (RFC 6749 4.1.2), a refresh token
#: replaced by rotation is refused (RFC 9700 4.14.2)
EXPECTED_DIFFERENCES = {
    ("memory", "token_after_replay"): {"raises": "InvalidAccessToken"},
    ("memory_refresh", "token_after_replay"): {"raises": "InvalidAccessToken"},
    ("memory_refresh_threshold", "token_after_replay"): {"raises": "InvalidAccessToken"},
    ("memory_refresh_threshold", "reuse_rotated"): {"raises": "InvalidRefreshToken"},
    ("stateless", "exchange_again"): {"raises": "InvalidAuthorizationCode"},
    ("stateless", "token_after_replay"): {"raises": "InvalidAccessToken"},
}


def run_driver(python: Path, pythonpath: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    done = subprocess.run([str(python), str(DRIVER)], capture_output=True, text=True,
                          env=env, cwd=str(DRIVER.parent), timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- sealed grants carry the claims (SATOSA's stateless mode) ----------------------------------

def basic_auth() -> dict[str, str]:
    raw = f"{CLIENT_ID}:{CLIENT_SECRET}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def satosa_like(jwkest_signing_key: Any, clock: FakeClock, *, sealed: bool = True,
                client_db: Any = None) -> tuple[Provider, dict[str, Any]]:
    """A provider configured as SATOSA's OIDC frontend: every store from one URI, users
    in a plain dict that the host empties after ``authorize`` in stateless mode."""
    if sealed:
        authz = AuthorizationState(
            HashBasedSubjectIdentifierFactory("salt"), stateless("authz_codes", clock),
            stateless("access_tokens", clock), stateless("refresh_tokens", clock),
            stateless("subject_identifiers", clock), refresh_token_lifetime=3600, clock=clock)
    else:
        authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                   refresh_token_lifetime=3600, clock=clock)
    users: dict[str, Any] = {}
    provider = Provider(jwkest_signing_key, configuration(), authz,
                        client_db if client_db is not None else clients(), Userinfo(users),
                        clock=clock)
    return provider, users


def authorize_and_forget(provider: Provider, users: dict[str, Any], forget: bool = True,
                         **params: str) -> str:
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
             "scope": "openid email profile", "nonce": "n", "state": "s",
             "claims": json.dumps({"id_token": {"nickname": None},
                                   "userinfo": {"phone_number": None}})}
    query.update(params)
    auth_req = provider.parse_authentication_request(urlencode(query))
    users[USER_ID] = dict(USERS[USER_ID])
    response = provider.authorize(auth_req, USER_ID,
                                  extra_id_token_claims=lambda user, client: {"team": "red"})
    if forget:
        del users[USER_ID]  # what SATOSA does in stateless mode
    code: str = response["code"]
    return code


def id_token_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


def token_request(provider: Provider, **body: str) -> Any:
    return provider.handle_token_request(urlencode(body), basic_auth())


def test_sealed_grant_releases_claims_after_the_host_forgot_the_user(
        jwkest_signing_key: Any, clock: FakeClock) -> None:
    provider, users = satosa_like(jwkest_signing_key, clock)
    code = authorize_and_forget(provider, users)
    assert users == {}
    tokens = token_request(provider, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI)
    claims = id_token_claims(tokens["id_token"])
    assert claims["nickname"] == "al"  # the id_token member of the claims request
    assert claims["team"] == "red"     # extra_id_token_claims evaluated at authorize
    assert "email" not in claims       # scope claims go to UserInfo (OIDC Core 5.4)
    info = provider.handle_userinfo_request(
        "", {"Authorization": "Bearer " + tokens["access_token"]}).to_dict()
    user = USERS[USER_ID]
    assert info == {"sub": claims["sub"], "email": user["email"],
                    "email_verified": True, "name": user["name"],
                    "given_name": user["given_name"], "family_name": user["family_name"],
                    "nickname": user["nickname"], "phone_number": user["phone_number"]}
    refreshed = token_request(provider, grant_type="refresh_token",
                              refresh_token=tokens["refresh_token"], scope="openid email")
    info = provider.handle_userinfo_request(
        "", {"Authorization": "Bearer " + refreshed["access_token"]}).to_dict()
    # narrowed by the refresh's scope; the claims request still applies (OIDC Core 5.5)
    assert info == {"sub": claims["sub"], "email": user["email"], "email_verified": True,
                    "phone_number": user["phone_number"]}


def test_sealed_grant_carries_only_releasable_claims_encrypted(
        jwkest_signing_key: Any, clock: FakeClock) -> None:
    provider, users = satosa_like(jwkest_signing_key, clock)
    code = authorize_and_forget(provider, users, scope="openid email")
    carried = provider.authz_state.get_user_info_for_code(code)
    # email scope (OIDC Core 5.4), id_token nickname and userinfo phone_number (5.5);
    # not the name, the address...: the grant may not release them
    assert carried == {"email": "alice@example.com", "email_verified": True,
                       "nickname": "al", "phone_number": "+1 555 0100"}
    raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    assert b"alice@example.com" not in raw and b"Rabbit" not in raw
    tokens = token_request(provider, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI)
    for value in (tokens["access_token"], tokens["refresh_token"]):
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        assert b"alice@example.com" not in raw
    assert provider.authz_state.get_user_info_for_access_token(tokens["access_token"]) == \
        carried


def test_introspection_does_not_reveal_carried_claims(jwkest_signing_key: Any,
                                                      clock: FakeClock) -> None:
    config = configuration()
    config["introspection_endpoint"] = config["issuer"] + "/introspect"
    authz = AuthorizationState(
        HashBasedSubjectIdentifierFactory("salt"), stateless("authz_codes", clock),
        stateless("access_tokens", clock), stateless("refresh_tokens", clock),
        refresh_token_lifetime=3600, clock=clock)
    users: dict[str, Any] = {}
    provider = Provider(jwkest_signing_key, config, authz, clients(), Userinfo(users),
                        clock=clock)
    code = authorize_and_forget(provider, users)
    tokens = token_request(provider, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = provider.handle_introspection_request(urlencode({"token": token}),
                                                       basic_auth()).to_dict()
        assert answer["active"] is True
        assert "alice@example.com" not in json.dumps(answer)
        assert set(answer) <= {"active", "scope", "client_id", "exp", "iat", "token_type",
                               "iss", "sub"}


def test_sealed_grant_within_the_client_allow_list(jwkest_signing_key: Any,
                                                   clock: FakeClock) -> None:
    client_db = clients()
    client_db[CLIENT_ID]["allowed_claims"] = ["email"]
    provider, users = satosa_like(jwkest_signing_key, clock, client_db=client_db)
    code = authorize_and_forget(provider, users)
    assert provider.authz_state.get_user_info_for_code(code) == {"email": "alice@example.com"}


def test_sealed_grant_uses_carried_claims_even_if_the_user_changed(
        jwkest_signing_key: Any, clock: FakeClock) -> None:
    """Sealed grants release the claims as they were at authorization (pyop 3's stateless
    mode did the same): the user source is not read again."""
    provider, users = satosa_like(jwkest_signing_key, clock)
    code = authorize_and_forget(provider, users, forget=False)
    users[USER_ID]["email"] = "changed@example.com"
    tokens = token_request(provider, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI)
    info = provider.handle_userinfo_request(
        "", {"Authorization": "Bearer " + tokens["access_token"]}).to_dict()
    assert info["email"] == "alice@example.com"


def test_server_side_grants_read_the_user_source(jwkest_signing_key: Any,
                                                 clock: FakeClock) -> None:
    """As in pyop 3, stored codes and tokens keep no claims: they are read from the user
    source when released (a user the host forgot has none)."""
    provider, users = satosa_like(jwkest_signing_key, clock, sealed=False)
    code = authorize_and_forget(provider, users, forget=False)
    assert provider.authz_state.get_user_info_for_code(code) is None
    users[USER_ID]["email"] = "changed@example.com"
    tokens = token_request(provider, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI)
    assert provider.authz_state.get_user_info_for_access_token(tokens["access_token"]) is None
    info = provider.handle_userinfo_request(
        "", {"Authorization": "Bearer " + tokens["access_token"]}).to_dict()
    assert info["email"] == "changed@example.com"


def test_sealed_implicit_token_carries_claims(jwkest_signing_key: Any,
                                              clock: FakeClock) -> None:
    provider, users = satosa_like(jwkest_signing_key, clock)
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
             "response_type": "id_token token", "scope": "openid email", "nonce": "n"}
    auth_req = provider.parse_authentication_request(urlencode(query))
    users[USER_ID] = dict(USERS[USER_ID])
    response = provider.authorize(auth_req, USER_ID)
    del users[USER_ID]
    info = provider.handle_userinfo_request(
        "", {"Authorization": "Bearer " + response["access_token"]}).to_dict()
    assert info["email"] == "alice@example.com"


# -- StatelessWrapper: pyop 3's constructor, pack and alg --------------------------------------

def test_stateless_wrapper_pyop3_constructor() -> None:
    by_keyword = StatelessWrapper(collection="authz_codes", encryption_key=SECRET, alg=None)
    positional = StatelessWrapper("authz_codes", SECRET, "AES256")
    assert by_keyword.alg == positional.alg == "aes256"
    token = positional.seal({"a": 1}, expires_at=2_000_000_000)
    assert by_keyword.unseal(token) == {"a": 1}
    with pytest.raises(ValueError):
        StatelessWrapper("authz_codes", SECRET, alg="des")
    with pytest.raises(ValueError):
        StorageBase.from_uri(f"stateless://user:{SECRET}@localhost?alg=des",
                             collection="authz_codes")
    assert StorageBase.from_uri(f"stateless://user:{SECRET}@localhost?alg=aes256",
                                collection="authz_codes").alg == "aes256"
    with pytest.raises(TypeError):
        StatelessWrapper("authz_codes", SECRET, encryption_key=SECRET)


def test_stateless_wrapper_pack(clock: FakeClock) -> None:
    store = StatelessWrapper("access_tokens", SECRET, clock=clock, ttl=60)
    assert store.pack(None) is None and store.pack({}) is None
    token = store.pack({"sub": "x", "exp": int(clock()) + 10})
    assert isinstance(token, str) and store[token]["sub"] == "x" and token in store
    clock.advance(11)  # the record's exp is the token's expiry
    assert token not in store
    short = store.pack({"sub": "y"})  # no exp: now + ttl
    assert short is not None and store.unseal(short) == {"sub": "y"}
    clock.advance(61)
    assert store.unseal(short) is None
    with pytest.raises(ValueError):
        StatelessWrapper("access_tokens", SECRET).pack({"no": "expiry"})


def test_stateless_wrapper_pack_feeds_authorization_state(clock: FakeClock) -> None:
    """A value packed with pyop 3's record shape unseals through the wrapper's mapping
    interface, as pyop 3 read its packed values."""
    store = StatelessWrapper("authz_codes", SECRET, clock=clock)
    packed = store.pack({"exp": int(clock()) + 600, "sub": "s", "granted_scope": "openid"})
    assert packed is not None
    assert store[packed] == {"exp": int(clock()) + 600, "sub": "s", "granted_scope": "openid"}

