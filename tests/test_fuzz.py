"""Property tests (Hypothesis) of every entry point of the provider.

Property: each call returns a message or raises one of the library's typed errors
(:class:`pyop.exceptions.OAuthError`, :class:`pyop.exceptions.InvalidSubjectIdentifier`)
and nothing else; a failed call leaves the provider's state unchanged.

Profiles: ``ci`` (1000 examples per test, derandomized; used by default) and ``long``
(20000 examples): ``pytest tests/test_fuzz.py --hypothesis-profile=long --timeout=0`` (a
test of the long profile runs for longer than the suite's 300-second per-test timeout).

The profiles are registered in ``tests/conftest.py``, before the Hypothesis plugin reads
``--hypothesis-profile``.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Optional
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey
from pyop.exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientRegistrationRequest,
    InvalidEndSessionRequest,
    InvalidSubjectIdentifier,
    OAuthError,
)
from pyop.message import (
    AccessTokenResponse,
    AuthorizationRequest,
    AuthorizationResponse,
    EndSessionRequest,
    OpenIDSchema,
    RegistrationResponse,
)
from pyop.provider import Provider
from pyop.storage import MemoryStorage
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo
from pyop.util import response_type_set, should_fragment_encode

#: Every test here runs with the active profile (``ci`` unless another is chosen).
FUZZ = settings()

ISSUER = "https://op.example.com"
CLIENT_ID = "client1"
CLIENT_SECRET = "secret-of-client1"
REDIRECT_URI = "https://rp.example.com/callback"
LOGGED_OUT = "https://rp.example.com/logged-out"
PUBLIC_CLIENT_ID = "public-client"
PUBLIC_REDIRECT_URI = "http://127.0.0.1:8765/cb"
PAIRWISE_CLIENT_ID = "pairwise-client"
PAIRWISE_REDIRECT_URI = "https://pw.example.com/cb"
USER_ID = "alice"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
ALL_RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token", "code token",
                      "code id_token token"]
TYPED_ERRORS = (OAuthError, InvalidSubjectIdentifier)
SIGNING_KEY = SigningKey(ec.generate_private_key(ec.SECP256R1()))
REGISTERED_REDIRECTS = (REDIRECT_URI, PUBLIC_REDIRECT_URI, PAIRWISE_REDIRECT_URI)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def client_db() -> dict[str, Any]:
    return {
        CLIENT_ID: {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                    "redirect_uris": [REDIRECT_URI], "response_types": ALL_RESPONSE_TYPES,
                    "post_logout_redirect_uris": [LOGGED_OUT]},
        PUBLIC_CLIENT_ID: {"client_id": PUBLIC_CLIENT_ID, "redirect_uris": [PUBLIC_REDIRECT_URI],
                           "response_types": ["code"], "token_endpoint_auth_method": "none"},
        PAIRWISE_CLIENT_ID: {"client_id": PAIRWISE_CLIENT_ID, "client_secret": "pw-secret",
                             "redirect_uris": [PAIRWISE_REDIRECT_URI], "subject_type": "pairwise",
                             "response_types": ["code", "id_token"],
                             "token_endpoint_auth_method": "client_secret_post"},
    }


def make_provider(clients: Any = None) -> Provider:
    clock = Clock()
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                               refresh_token_lifetime=3600)
    config = {
        "issuer": ISSUER, "authorization_endpoint": ISSUER + "/authz",
        "token_endpoint": ISSUER + "/token", "userinfo_endpoint": ISSUER + "/userinfo",
        "response_types_supported": ALL_RESPONSE_TYPES,
        "subject_types_supported": ["public", "pairwise"],
        "scopes_supported": ["openid", "profile", "email", "address", "phone",
                             "offline_access"],
    }
    users = {USER_ID: {"name": "Alice", "email": "alice@example.com", "email_verified": True,
                       "address": {"locality": "Wonderland"}, "phone_number": "+1 555"}}
    return Provider(SIGNING_KEY, config, authz, client_db() if clients is None else clients,
                    Userinfo(users), clock=clock)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def typed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Optional[Exception]]:
    """(result, None) or (None, typed error); any other exception fails the test."""
    try:
        return call(*args, **kwargs), None
    except TYPED_ERRORS as e:
        return None, e


# -- strategies -----------------------------------------------------------------------------------

huge_text = st.integers(60_000, 70_000).map(lambda n: "x" * n)
odd_text = st.one_of(st.text(max_size=20), huge_text,
                     st.sampled_from(["", " ", "\x00", "%ff", "\ud800", "a" * 4097, "null",
                                      "[", "{}", "NaN", "\u00e9", "=", "&"]))
odd_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), odd_text,
                        st.binary(max_size=10))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=6)
odd_values = st.recursive(
    odd_scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.tuples(children, children),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=5)


def header_name(name: str) -> st.SearchStrategy[str]:
    """``name`` in some letter cases."""
    return st.sampled_from([name, name.lower(), name.upper(), name.swapcase(),
                            "".join(c.upper() if i % 2 else c for i, c in enumerate(name))])


def parameter_dicts(values: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts over the given parameter names, each value a likely one, odd text or odd type."""
    def value(name: str) -> st.SearchStrategy[Any]:
        return st.one_of(st.sampled_from(values[name]), odd_text, odd_values)

    return st.fixed_dictionaries({}, optional={name: value(name) for name in values})


def mutated(base: st.SearchStrategy[dict[str, Any]], values: dict[str, list[Any]],
            max_mutations: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    """A (valid) base dict with up to ``max_mutations`` parameters set, replaced or removed."""
    def mutation(name: str) -> st.SearchStrategy[tuple[str, Any]]:
        value = st.one_of(st.sampled_from(values[name]), st.one_of(odd_text, odd_values),
                          st.just(REMOVE))
        return st.tuples(st.just(name), value)

    def apply(params: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
        params = dict(params)
        for name, value in changes:
            if value is REMOVE:
                params.pop(name, None)
            else:
                params[name] = value
        return params

    changes = st.lists(st.sampled_from(sorted(values)).flatmap(mutation), max_size=max_mutations)
    return st.builds(apply, base, changes)


REMOVE = object()


def encode(pairs: Any) -> str:
    """urlencode, keeping lone surrogates as (invalid UTF-8) percent-escapes."""
    return urlencode(pairs, errors="surrogatepass")


def encodings(params: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """A parameter dict as a dict, a query string, bytes, or with duplicated parameters."""
    def as_pairs(d: dict[str, Any]) -> list[tuple[str, str]]:
        return [(k, v if isinstance(v, str) else json.dumps(v, default=repr))
                for k, v in d.items()]

    def with_duplicate(d: dict[str, Any], extra: str) -> str:
        pairs = as_pairs(d)
        if pairs:
            pairs.append((pairs[0][0], extra))
        return encode(pairs)

    return st.one_of(
        params,
        params.map(lambda d: encode(as_pairs(d))),
        params.map(lambda d: encode(as_pairs(d)).encode("ascii")),
        st.builds(with_duplicate, params, st.text(max_size=5)),
        params.map(lambda d: {k: [v, v] for k, v in d.items()}),
    )


def headers_strategy(values: list[str]) -> st.SearchStrategy[Any]:
    entry = st.tuples(st.one_of(header_name("Authorization"), st.text(max_size=10)),
                      st.one_of(st.sampled_from(values), odd_text, odd_values))
    return st.one_of(
        st.none(), odd_values,
        st.lists(entry, max_size=3).map(dict),
        st.lists(entry, max_size=3),
    )


AUTH_VALUES: dict[str, list[Any]] = {
    "client_id": [CLIENT_ID, PUBLIC_CLIENT_ID, PAIRWISE_CLIENT_ID, "unknown"],
    "redirect_uri": list(REGISTERED_REDIRECTS) + ["https://evil.example.com/cb"],
    "response_type": ALL_RESPONSE_TYPES + ["token", "none", "code code", "token id_token"],
    "scope": ["openid", "openid profile email address phone", "openid offline_access",
              "profile", "openid unknown"],
    "state": ["state"], "nonce": ["nonce"],
    "response_mode": ["query", "fragment", "form_post"],
    "prompt": ["none", "login", "consent", "select_account", "none login", "bogus"],
    "max_age": ["0", "60", "-1", "1e3", "99999999999999999999", "\u0661"],
    "claims": ['{"userinfo": {"email": {"essential": true}}}',
               '{"id_token": {"name": null, "email": {"value": "alice@example.com"}}}',
               '{"id_token": {"name": {"values": ["Alice"]}}}', '{"userinfo": []}', "[]",
               '{"id_token": {"x": {"value": NaN}}}', "[" * 5000, '{"userinfo": {"a": 1}}'],
    "code_challenge": [CHALLENGE, "short", CHALLENGE + "\n"],
    "code_challenge_method": ["S256", "plain", "S512"],
    "login_hint": ["alice"], "acr_values": ["urn:a urn:b"], "ui_locales": ["en fr"],
    "display": ["page", "weird"], "id_token_hint": ["a.b.c"],
    "request": ["eyJ.x.y"], "request_uri": ["https://rp.example.com/r"], "registration": ["{}"],
}


def authentication_requests() -> st.SearchStrategy[Any]:
    base = st.fixed_dictionaries({
        "client_id": st.sampled_from([CLIENT_ID, PUBLIC_CLIENT_ID, PAIRWISE_CLIENT_ID]),
        "response_type": st.sampled_from(ALL_RESPONSE_TYPES),
        "scope": st.sampled_from(AUTH_VALUES["scope"]),
        "nonce": st.just("nonce"), "state": st.just("state"),
    })
    redirects = {CLIENT_ID: REDIRECT_URI, PUBLIC_CLIENT_ID: PUBLIC_REDIRECT_URI,
                 PAIRWISE_CLIENT_ID: PAIRWISE_REDIRECT_URI}

    def complete(b: dict[str, Any]) -> dict[str, Any]:
        completed = dict(b, redirect_uri=redirects[b["client_id"]])
        if b["client_id"] == PUBLIC_CLIENT_ID:
            completed.update(response_type="code", code_challenge=CHALLENGE,
                             code_challenge_method="S256")
        elif b["client_id"] == PAIRWISE_CLIENT_ID:
            completed["response_type"] = b["response_type"].split()[0]
        return completed

    valid = base.map(complete)
    return st.one_of(encodings(valid), encodings(mutated(valid, AUTH_VALUES)),
                     encodings(parameter_dicts(AUTH_VALUES)))


# -- authentication requests and authorize ---------------------------------------------------------


def check_authentication_error(error: Exception) -> None:
    assert isinstance(error, InvalidAuthenticationRequest), repr(error)
    url = error.to_error_url()
    if url is not None:
        # only ever a verified, registered redirect URI
        assert error.redirectable
        assert url.startswith(tuple(uri + sep for uri in REGISTERED_REDIRECTS for sep in "?#"))
        assert "error=" in url


def parse_and_authorize(provider: Provider, request: Any) -> None:
    authn_req, error = typed(provider.parse_authentication_request, request)
    if error is not None:
        check_authentication_error(error)
        return
    assert isinstance(authn_req, AuthorizationRequest)
    stored = json.loads(json.dumps(authn_req.to_dict()))  # what a host keeps in its session
    for req in (authn_req, AuthorizationRequest().from_dict(stored)):
        response = provider.authorize(req, USER_ID, auth_time=provider.clock() - 1)
        assert isinstance(response, AuthorizationResponse)
        response_types = response_type_set(req["response_type"])
        assert ("code" in response) == ("code" in response_types)
        assert ("access_token" in response) == ("token" in response_types)
        assert ("id_token" in response) == ("id_token" in response_types)
        assert response["iss"] == ISSUER
        url = response.request(req["redirect_uri"], should_fragment_encode(req))
        assert url.startswith(req["redirect_uri"] + ("#" if response_types != {"code"} or
                                                     req.get("response_mode") == "fragment"
                                                     else "?"))


@FUZZ
@given(st.text(max_size=300))
def test_parse_authentication_request_text(text: str) -> None:
    parse_and_authorize(make_provider(), text)


@FUZZ
@given(st.binary(max_size=300))
def test_parse_authentication_request_bytes(data: bytes) -> None:
    parse_and_authorize(make_provider(), data)


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(sorted(AUTH_VALUES)), st.text(max_size=10),
                                 st.integers()), odd_values, max_size=8))
def test_parse_authentication_request_odd_dicts(request: dict[Any, Any]) -> None:
    parse_and_authorize(make_provider(), request)


@FUZZ
@given(authentication_requests(), headers_strategy(["x"]))
@example({"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
          "scope": "openid", "state": "\udcff"}, None)
def test_parse_and_authorize(request: Any, headers: Any) -> None:
    provider = make_provider()
    parse_and_authorize(provider, request)
    _, error = typed(provider.parse_authentication_request, request, headers)
    if error is not None:
        check_authentication_error(error)


# -- token endpoint --------------------------------------------------------------------------------


class TokenSetup:
    """A provider with a fresh code, a PKCE code, and an issued access/refresh token."""

    def __init__(self) -> None:
        self.provider = provider = make_provider()
        req = provider.parse_authentication_request(urlencode({
            "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid email", "nonce": "n"}))
        self.code = provider.authorize(req, USER_ID)["code"]
        issued = provider.authorize(req, USER_ID)["code"]
        self.tokens = provider.handle_token_request(
            urlencode({"grant_type": "authorization_code", "code": issued,
                       "redirect_uri": REDIRECT_URI}),
            {"Authorization": basic(CLIENT_ID, CLIENT_SECRET)})
        public_req = provider.parse_authentication_request(urlencode({
            "client_id": PUBLIC_CLIENT_ID, "redirect_uri": PUBLIC_REDIRECT_URI,
            "response_type": "code", "scope": "openid", "code_challenge": CHALLENGE,
            "code_challenge_method": "S256"}))
        self.public_code = provider.authorize(public_req, USER_ID)["code"]

    def code_unused(self, code: str) -> bool:
        return not self.provider.authz_state.get_authorization_code(code).get("used")


def token_values() -> dict[str, list[Any]]:
    return {
        "grant_type": ["authorization_code", "refresh_token", "password", "implicit"],
        "code": ["CODE", "PUBLIC_CODE", "unknown"],
        "redirect_uri": [REDIRECT_URI, PUBLIC_REDIRECT_URI, "https://evil.example.com/cb"],
        "client_id": [CLIENT_ID, PUBLIC_CLIENT_ID, PAIRWISE_CLIENT_ID, "unknown"],
        "client_secret": [CLIENT_SECRET, "pw-secret", "wrong"],
        "code_verifier": [VERIFIER, "x" * 43, "short"],
        "refresh_token": ["REFRESH", "ACCESS", "unknown"],
        "scope": ["openid", "openid email", "openid profile", " ", "email"],
    }


def substitute(value: Any, setup: TokenSetup) -> Any:
    replacements = {"CODE": setup.code, "PUBLIC_CODE": setup.public_code,
                    "REFRESH": setup.tokens["refresh_token"],
                    "ACCESS": setup.tokens["access_token"]}
    if isinstance(value, str):
        return replacements.get(value, value)
    if isinstance(value, dict):
        return {k: substitute(v, setup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, setup) for v in value]
    return value


TOKEN_HEADER_VALUES = [basic(CLIENT_ID, CLIENT_SECRET), basic(CLIENT_ID, "wrong"),
                       basic(PUBLIC_CLIENT_ID, ""), "Basic !!!", "Bearer x", "Basic"]


CONFIDENTIAL = {"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
VALID_TOKEN_REQUESTS = [
    ({"grant_type": "authorization_code", "code": "CODE", "redirect_uri": REDIRECT_URI},
     CONFIDENTIAL),
    ({"grant_type": "authorization_code", "code": "PUBLIC_CODE",
      "redirect_uri": PUBLIC_REDIRECT_URI, "client_id": PUBLIC_CLIENT_ID,
      "code_verifier": VERIFIER}, None),
    ({"grant_type": "refresh_token", "refresh_token": "REFRESH"}, CONFIDENTIAL),
    ({"grant_type": "refresh_token", "refresh_token": "REFRESH", "scope": "openid"},
     {"authorization": basic(CLIENT_ID, CLIENT_SECRET)}),
]


def token_requests() -> st.SearchStrategy[tuple[Any, Any]]:
    valid = st.sampled_from(VALID_TOKEN_REQUESTS)
    mutated_body = valid.flatmap(lambda pair: st.tuples(
        encodings(mutated(st.just(pair[0]), token_values())),
        st.one_of(st.just(pair[1]), headers_strategy(TOKEN_HEADER_VALUES))))
    anything = st.tuples(
        st.one_of(st.text(max_size=300), st.binary(max_size=300), odd_values,
                  encodings(parameter_dicts(token_values()))),
        headers_strategy(TOKEN_HEADER_VALUES))
    return st.one_of(valid, mutated_body, anything)


@FUZZ
@given(token_requests())
def test_handle_token_request(request: tuple[Any, Any]) -> None:
    body, headers = request
    setup = TokenSetup()
    body = substitute(body, setup)
    response, error = typed(setup.provider.handle_token_request, body, headers)
    if error is not None:
        assert isinstance(error, OAuthError), repr(error)
        assert error.http_status in (400, 401)
        json.loads(error.to_json())
        # nothing was redeemed or revoked
        assert setup.code_unused(setup.code) and setup.code_unused(setup.public_code)
        assert setup.provider.authz_state.get_access_token(setup.tokens["access_token"])
        return
    assert isinstance(response, AccessTokenResponse)
    assert response["token_type"] == "Bearer"
    json.loads(response.to_json())


@FUZZ
@given(st.sampled_from(["authorization_code", "refresh_token"]),
       st.fixed_dictionaries({}, optional={"scope": st.sampled_from(token_values()["scope"]),
                                           "code_verifier": st.just(VERIFIER)}),
       st.one_of(json_values, st.sampled_from(["openid", "email"])))
def test_handle_token_request_extra_claims(grant_type: str, extra: dict[str, Any],
                                           claims: Any) -> None:
    setup = TokenSetup()
    body = {"grant_type": grant_type, "code": setup.code, "redirect_uri": REDIRECT_URI,
            "refresh_token": setup.tokens["refresh_token"], **extra}
    extra_claims = claims if isinstance(claims, dict) else None
    response, error = typed(setup.provider.handle_token_request, body,
                            {"authorization": basic(CLIENT_ID, CLIENT_SECRET)},
                            extra_id_token_claims=extra_claims)
    if error is not None:
        assert isinstance(error, OAuthError)
        assert setup.code_unused(setup.code)
        return
    assert isinstance(response, AccessTokenResponse)
    json.loads(response.to_json())


# -- UserInfo --------------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=200), st.binary(max_size=200), odd_values,
                 encodings(parameter_dicts({"access_token": ["ACCESS", "REFRESH", "x"]}))),
       headers_strategy(["Bearer ACCESS", "bearer ACCESS", "Bearer REFRESH", "Bearer",
                         "Basic ACCESS", "Bearer ACCESS x"]))
def test_handle_userinfo_request(body: Any, headers: Any) -> None:
    setup = TokenSetup()
    access = setup.tokens["access_token"]

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("ACCESS", access).replace("REFRESH",
                                                           setup.tokens["refresh_token"])
        return substitute(value, setup)

    if isinstance(headers, dict):
        headers = {k: fill(v) for k, v in headers.items()}
    elif isinstance(headers, list):
        headers = [(entry[0], fill(entry[1])) if isinstance(entry, tuple) else entry
                   for entry in headers]
    response, error = typed(setup.provider.handle_userinfo_request, fill(body), headers)
    if error is not None:
        assert isinstance(error, OAuthError), repr(error)
        assert error.http_status in (400, 401, 403)
        assert setup.provider.authz_state.get_access_token(access)
        return
    assert isinstance(response, OpenIDSchema)
    assert response["sub"] == setup.provider.authz_state.get_access_token(access)["sub"]
    assert response["email"] == "alice@example.com"
    json.loads(response.to_json())


# -- registration ----------------------------------------------------------------------------------

REGISTRATION_VALUES: dict[str, list[Any]] = {
    "redirect_uris": [["https://new.example.com/cb"], ["app:/cb"], ["http://127.0.0.1/cb"],
                      ["https://a.example.com/1", "https://b.example.com/2"], [], ["#"],
                      ["https://new.example.com@evil.example/cb"], ["https://127.1/cb"],
                      ["https://new.example.com/c\x00b"], ["https://new.example.com/c\x85b"],
                      ["https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/cb"]],
    "response_types": [["code"], ["id_token"], ["code id_token"], ["token"]],
    "grant_types": [["authorization_code"], ["implicit"], ["refresh_token"], ["password"]],
    "application_type": ["web", "native", "other"],
    "token_endpoint_auth_method": ["none", "client_secret_post", "private_key_jwt"],
    "subject_type": ["public", "pairwise", "other"],
    "sector_identifier_uri": ["https://sector.example.com/uris.json", "http://x"],
    "post_logout_redirect_uris": [["https://new.example.com/bye"], ["x"]],
    "id_token_signed_response_alg": ["ES256", "RS256", "none"],
    "userinfo_signed_response_alg": ["RS256"],
    "contacts": [["ops@example.com"], [1]],
    "client_name": ["New client"], "default_max_age": [60, "x"],
}


def registrations() -> st.SearchStrategy[Any]:
    params = st.one_of(
        mutated(st.just({"redirect_uris": ["https://new.example.com/cb"]}), REGISTRATION_VALUES,
                max_mutations=3),
        parameter_dicts(REGISTRATION_VALUES))
    return st.one_of(
        st.text(max_size=300), st.binary(max_size=300), odd_values, params,
        params.map(lambda d: json.dumps(d, default=repr)),
        params.map(lambda d: json.dumps(d, default=repr).encode("utf-8", "surrogatepass")),
        st.builds(lambda d, member: json.dumps(d, default=repr)[:-1] + member,
                  params, st.sampled_from([', "x": NaN}', ', "x": Infinity}', "}", ",]",
                                           ', "x": 1e400}', ', "default_max_age": -1e400}',
                                           ', "jwks": {"keys": [{"kty": "EC", "x": 1e999}]}}',
                                           ', "contacts": [1E+309]}'])),
    )


@FUZZ
@given(registrations(), st.booleans())
@example({"redirect_uris": ["https://new.example.com/cb"], "application_type": [False]}, False)
def test_handle_client_registration_request(body: Any, memory_storage: bool) -> None:
    clients: Any = client_db()
    if memory_storage:
        clients = MemoryStorage()
        for client_id, client in client_db().items():
            clients[client_id] = client
    provider = make_provider(clients)
    provider.sector_identifier_fetcher = lambda uri: [
        "https://a.example.com/1", "https://b.example.com/2", "https://new.example.com/cb"]
    before = sorted(provider.clients.keys())
    response, error = typed(provider.handle_client_registration_request, body)
    if error is not None:
        assert isinstance(error, InvalidClientRegistrationRequest), repr(error)
        assert error.oauth_error in ("invalid_request", "invalid_redirect_uri",
                                     "invalid_client_metadata")
        json.loads(error.to_json())
        assert sorted(provider.clients.keys()) == before
        return
    assert isinstance(response, RegistrationResponse)
    client_id = response["client_id"]
    assert sorted(provider.clients.keys()) == sorted(before + [client_id])
    # the response is the JSON body of RFC 7591 / OIDC Registration 3.2: strict JSON
    document = json.loads(json.dumps(response.to_dict(), allow_nan=False))
    assert document["client_id"] == client_id
    assert ("client_secret" in document) == (document["token_endpoint_auth_method"] != "none")


# -- logout ----------------------------------------------------------------------------------------

LOGOUT_VALUES: dict[str, list[Any]] = {
    "id_token_hint": ["ID_TOKEN", "FOREIGN", "a.b.c", "eyJhbGciOiJub25lIn0.e30."],
    "post_logout_redirect_uri": [LOGGED_OUT, "https://evil.example.com/"],
    "client_id": [CLIENT_ID, PUBLIC_CLIENT_ID, "other"],
    "state": ["state", "a b&c"],
    "logout_hint": ["alice"], "ui_locales": ["en"],
}


VALID_LOGOUT = {"id_token_hint": "ID_TOKEN", "post_logout_redirect_uri": LOGGED_OUT,
                "state": "state"}


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), odd_values,
                 encodings(parameter_dicts(LOGOUT_VALUES)),
                 encodings(mutated(st.just(VALID_LOGOUT), LOGOUT_VALUES))),
       st.one_of(st.none(), st.sampled_from(["SUB", "unknown", ""]), odd_values))
@example({"id_token_hint": "ID_TOKEN", "post_logout_redirect_uri": LOGGED_OUT,
          "state": "\ud800"}, None)
def test_logout(body: Any, subject_identifier: Any) -> None:
    setup = TokenSetup()
    provider = setup.provider
    id_token = setup.tokens["id_token"]
    foreign = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    from pyop.crypto import jws_sign

    forged = jws_sign({"iss": ISSUER, "sub": "x", "aud": CLIENT_ID}, foreign)
    sub = provider.authz_state.get_subject_identifier("public", USER_ID)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("ID_TOKEN", id_token).replace("FOREIGN", forged)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    body = fill(body)
    if subject_identifier == "SUB":
        subject_identifier = sub

    logged_out = False
    parsed, error = typed(provider.parse_end_session_request, body)
    if error is not None:
        assert isinstance(error, InvalidEndSessionRequest), repr(error)
    else:
        assert isinstance(parsed, EndSessionRequest)
    for request in ([parsed] if parsed is not None else []) + (
            [body] if isinstance(body, dict) else []):
        url, error = typed(provider.do_post_logout_redirect, request)
        assert error is None, repr(error)
        assert url is None or url == LOGGED_OUT or url.startswith(LOGGED_OUT + "?state=")
        _, error = typed(provider.logout_user, subject_identifier, request)
        if error is None:
            logged_out = True
        elif not logged_out:  # a failed logout forgets nothing
            assert provider.authz_state.get_user_id_for_subject_identifier(sub) == USER_ID
    _, error = typed(provider.logout_user, subject_identifier)
    if error is not None:
        assert isinstance(error, InvalidSubjectIdentifier)


# -- identifiers with control characters, non-finite numbers ------------------------------------

#: C0, DEL and C1 control characters.
CONTROL_CHARACTERS = st.sampled_from(["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f",
                                      "\x7f", "\x80", "\x85", "\x9f"])


def with_control_character(value: str) -> st.SearchStrategy[str]:
    """``value`` with a control character inserted somewhere."""
    return st.tuples(st.integers(0, len(value)), CONTROL_CHARACTERS).map(
        lambda pair: value[:pair[0]] + pair[1] + value[pair[0]:])


class RecordingClients(dict):  # type: ignore[type-arg]
    """A client store that, like PostgreSQL, cannot look up a NUL: records every key."""

    asked: list[Any]

    def get(self, key: Any, default: Any = None) -> Any:
        self.asked.append(key)
        return super().get(key, default)


def _bad(keys: list[Any]) -> list[Any]:
    from pyop.util import is_valid_identifier

    return [key for key in keys if not is_valid_identifier(key)]


IDENTIFIER_SETUP: dict[str, Any] = {}


def identifier_setup() -> dict[str, Any]:
    """One provider with a registered client, a code flow's tokens (built once)."""
    if not IDENTIFIER_SETUP:
        clients = RecordingClients(client_db())
        clients.asked = []
        provider = make_provider(clients)
        provider.configuration_information["registration_endpoint"] = ISSUER + "/registration"
        registered = provider.handle_client_registration_request(
            json.dumps({"redirect_uris": ["https://new.example.com/cb"]}))
        IDENTIFIER_SETUP.update(provider=provider, clients=clients,
                                registered=registered.to_dict())
    return IDENTIFIER_SETUP


@FUZZ
@given(st.sampled_from(["basic", "post", "assertion", "code", "refresh_token", "revocation",
                        "introspection", "userinfo", "read", "update", "delete",
                        "registration_token"]),
       st.one_of(with_control_character(CLIENT_ID), with_control_character("abc-token"),
                 with_control_character("")))
def test_identifiers_with_control_characters_end_in_typed_errors(where: str,
                                                                 value: str) -> None:
    setup = identifier_setup()
    provider, clients, registered = setup["provider"], setup["clients"], setup["registered"]
    clients.asked.clear()
    auth = {"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
    management = {"Authorization": "Bearer " + registered["registration_access_token"]}
    calls: dict[str, Callable[[], Any]] = {
        "basic": lambda: provider.handle_token_request(
            {"grant_type": "authorization_code", "code": "x"},
            {"Authorization": basic(value, "s")}),
        "post": lambda: provider.handle_token_request(
            {"grant_type": "authorization_code", "code": "x", "client_id": value,
             "client_secret": "s"}),
        "assertion": lambda: provider.handle_token_request({
            "grant_type": "authorization_code", "code": "x",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": ".".join(base64.urlsafe_b64encode(json.dumps(part).encode())
                                         .rstrip(b"=").decode() for part in (
                {"alg": "HS256"}, {"iss": value, "sub": value, "aud": ISSUER})) + ".c2ln"}),
        "code": lambda: provider.handle_token_request(
            {"grant_type": "authorization_code", "code": value,
             "redirect_uri": REDIRECT_URI}, auth),
        "refresh_token": lambda: provider.handle_token_request(
            {"grant_type": "refresh_token", "refresh_token": value}, auth),
        "revocation": lambda: provider.handle_revocation_request({"token": value}, auth),
        "introspection": lambda: provider.handle_introspection_request({"token": value}, auth),
        "userinfo": lambda: provider.handle_userinfo_request(
            None, {"Authorization": "Bearer " + value}),
        "read": lambda: provider.handle_client_read_request(value, management),
        "update": lambda: provider.handle_client_update_request(
            value, json.dumps({"client_id": value, "redirect_uris": [REDIRECT_URI]}),
            management),
        "delete": lambda: provider.handle_client_delete_request(value, management),
        "registration_token": lambda: provider.handle_client_read_request(
            registered["client_id"], {"Authorization": "Bearer " + value}),
    }
    result, error = typed(calls[where])
    if where in ("revocation", "introspection"):
        assert error is None or isinstance(error, OAuthError)
        if where == "introspection" and error is None:
            assert result["active"] is False
    else:
        assert error is not None, (where, value)
    assert _bad(clients.asked) == [], (where, clients.asked)
    assert provider.get_client(registered["client_id"]) is not None


@FUZZ
@given(st.sampled_from(["1e400", "-1e400", "1E309", "9" * 400 + ".0", "1e-400", "NaN",
                        "-Infinity", "Infinity"]),
       st.sampled_from(["claims", "registration"]))
def test_non_finite_numbers_end_in_typed_errors(number: str, where: str) -> None:
    setup = identifier_setup()
    provider = setup["provider"]
    if where == "claims":
        claims = '{"userinfo": {"email": {"value": NUMBER}}}'.replace("NUMBER", number)
        query = urlencode({"client_id": CLIENT_ID, "response_type": "code", "scope": "openid",
                           "redirect_uri": REDIRECT_URI, "claims": claims})
        result, error = typed(provider.parse_authentication_request, query)
    else:
        body = '{"redirect_uris": ["https://new.example.com/cb"], "x": N}'.replace("N", number)
        result, error = typed(provider.handle_client_registration_request, body)
    if number == "1e-400":  # underflows to 0.0: finite, parsed
        return
    assert error is not None and error.oauth_error == "invalid_request", (number, error)
