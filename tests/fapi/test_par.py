"""Pushed authorization requests (RFC 9126): the MUSTs of sections 2-6 and the attacks of
section 7, on in-memory, sealed (stateless) and SQLite storage.

Test names cite the section they enforce.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey
from pyop.exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientAuthentication,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidPushedAuthorizationRequest,
    InvalidRedirectURI,
    InvalidRequestURI,
    OAuthError,
)
from pyop.message import PushedAuthorizationResponse
from pyop.storage import MemoryStorage
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

from .par_support import (
    CLIENT_B_ID,
    CLIENT_B_SECRET,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    JWT_CLIENT_ID,
    JWT_REDIRECT_URI,
    PAR_ENDPOINT,
    POST_CLIENT_ID,
    POST_CLIENT_SECRET,
    PREFIX,
    PUBLIC_CLIENT_ID,
    PUBLIC_REDIRECT_URI,
    REDIRECT_URI,
    TOKEN_ENDPOINT,
    USER_ID,
    FakeClock,
    ParBackend,
    assertion,
    authorization_parameters,
    authorize_pushed,
    basic,
    clients,
    configuration,
    memory_stores,
    pkce_pair,
    push,
    request_object,
    stateless_stores,
    uri_stores,
)

BACKENDS = ["memory", "stateless", "sqlite"]


@pytest.fixture(scope="module")
def op_key(rsa_private_key: Any) -> SigningKey:
    return SigningKey.from_key(rsa_private_key)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, op_key: SigningKey) -> Iterator[ParBackend]:
    clock = FakeClock()
    if request.param == "memory":
        make = memory_stores
    elif request.param == "stateless":
        make = stateless_stores(clock)
    else:
        make = uri_stores(f"sqlite:///{request.getfixturevalue('tmp_path')}/pyop.db")
    built = ParBackend(request.param, clock, make, op_key)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def provider(backend: ParBackend) -> Any:
    return backend.provider()


def error_of(call: Any) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        call()
    return info.value


def request_uri_key(request_uri: str) -> str:
    assert request_uri.startswith(PREFIX)
    return request_uri[len(PREFIX):]


# -- RFC 9126 2: the endpoint, client authentication -----------------------------------------


def test_rfc9126_2_client_authenticated_as_at_token_endpoint(provider: Any) -> None:
    assert push(provider)["request_uri"].startswith(PREFIX)
    for headers in (basic(CLIENT_ID, "wrong"), {}, basic("unknown-client", "x")):
        error = error_of(lambda h=headers: push(provider, h))
        assert isinstance(error, InvalidClientAuthentication)
        assert error.oauth_error == "invalid_client" and error.http_status == 401


def test_rfc9126_2_registered_authentication_method_required(provider: Any) -> None:
    # client1 registered client_secret_basic: client_secret_post is refused, as at /token
    body = urlencode({**authorization_parameters(), "client_id": CLIENT_ID,
                      "client_secret": CLIENT_SECRET})
    error = error_of(lambda: provider.handle_pushed_authorization_request(body, {}))
    assert error.http_status == 401 and error.oauth_error == "invalid_client"
    # and a client_secret_post client pushes with its method
    body = urlencode({**authorization_parameters("https://post.example.com/cb"),
                      "client_id": POST_CLIENT_ID, "client_secret": POST_CLIENT_SECRET})
    assert provider.handle_pushed_authorization_request(body, {})["expires_in"] == 60


def test_rfc9126_2_public_client_pushes_with_its_client_id(provider: Any) -> None:
    _, challenge = pkce_pair()
    body = urlencode({**authorization_parameters(PUBLIC_REDIRECT_URI, code_challenge=challenge,
                                                 code_challenge_method="S256"),
                      "client_id": PUBLIC_CLIENT_ID})
    response = provider.handle_pushed_authorization_request(body, {})
    request = authorize_pushed(provider, response["request_uri"], PUBLIC_CLIENT_ID)
    assert request["code_challenge"] == challenge


def test_rfc9126_2_assertion_audience_is_the_issuer(backend: ParBackend) -> None:
    """RFC 9126 2 lists the issuer, token endpoint and PAR endpoint as audiences; RFC 7523bis
    (and FAPI 2.0) narrow it to the issuer by default: the endpoints are accepted only under
    ``client_assertion_audiences="issuer-or-endpoint"``."""
    provider = backend.provider()

    def push_with(aud: Any) -> Any:
        body = urlencode({**authorization_parameters(JWT_REDIRECT_URI),
                          "client_id": JWT_CLIENT_ID,
                          "client_assertion_type":
                              "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                          "client_assertion": assertion(aud=aud)})
        return backend_provider.handle_pushed_authorization_request(body, {})

    backend_provider = provider
    assert push_with(ISSUER)["request_uri"].startswith(PREFIX)
    for aud in (PAR_ENDPOINT, TOKEN_ENDPOINT):
        assert error_of(lambda a=aud: push_with(a)).http_status == 401
    backend_provider = backend.provider(client_assertion_audiences="issuer-or-endpoint")
    for aud in (ISSUER, PAR_ENDPOINT, TOKEN_ENDPOINT):
        assert push_with(aud)["request_uri"].startswith(PREFIX)
    assert error_of(lambda: push_with("https://other.example.com/par")).http_status == 401


# -- RFC 9126 2.1: the request ---------------------------------------------------------------


def test_rfc9126_2_1_request_uri_must_not_be_pushed(provider: Any) -> None:
    error = error_of(lambda: push(provider, request_uri=PREFIX + "x" * 43))
    assert isinstance(error, InvalidPushedAuthorizationRequest)
    assert error.oauth_error == "invalid_request" and error.http_status == 400
    assert not error.redirectable


@pytest.mark.parametrize(("params", "oauth_error"), [
    ({"redirect_uri": "https://attacker.example.com/cb"}, "invalid_request"),
    ({"redirect_uri": None}, "invalid_request"),
    ({"scope": "profile"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
    ({"claims": "{not json"}, "invalid_request"),
])
def test_rfc9126_2_1_validated_as_an_authorization_request(provider: Any, params: Any,
                                                           oauth_error: str) -> None:
    error = error_of(lambda: push(provider, **params))
    assert isinstance(error, InvalidPushedAuthorizationRequest)
    assert error.oauth_error == oauth_error and error.http_status == 400
    # RFC 9126 2.3: answered to the client, never redirected
    assert not error.redirectable
    assert json.loads(error.to_json())["error"] == oauth_error


def test_rfc9126_2_1_public_client_without_pkce_refused(provider: Any) -> None:
    body = urlencode({**authorization_parameters(PUBLIC_REDIRECT_URI),
                      "client_id": PUBLIC_CLIENT_ID})
    error = error_of(lambda: provider.handle_pushed_authorization_request(body, {}))
    assert error.http_status == 400 and error.oauth_error == "invalid_request"


def test_rfc9126_2_1_client_id_is_the_authenticated_clients(provider: Any) -> None:
    error = error_of(lambda: push(provider, client_id=CLIENT_B_ID))
    assert error.http_status == 400 and error.oauth_error == "invalid_request"


def test_rfc6749_3_1_each_parameter_once_and_form_encoded(provider: Any) -> None:
    body = urlencode(authorization_parameters()) + "&scope=openid+email"
    error = error_of(lambda: provider.handle_pushed_authorization_request(body, basic()))
    assert isinstance(error, InvalidPushedAuthorizationRequest)
    error = error_of(lambda: provider.handle_pushed_authorization_request(
        urlencode(authorization_parameters()),
        {**basic(), "Content-Type": "application/json"}))
    assert isinstance(error, InvalidPushedAuthorizationRequest)


def test_rfc9126_2_1_client_credentials_never_kept(backend: ParBackend) -> None:
    store = MemoryStorage()
    provider = backend.provider(authz_kwargs={"pushed_authorization_request_db": store})
    body = urlencode({**authorization_parameters("https://post.example.com/cb"),
                      "client_id": POST_CLIENT_ID, "client_secret": POST_CLIENT_SECRET})
    request_uri = provider.handle_pushed_authorization_request(body, {})["request_uri"]
    record = store.get(request_uri_key(request_uri))
    assert POST_CLIENT_SECRET not in json.dumps(record)
    assert record["client_id"] == POST_CLIENT_ID
    request = authorize_pushed(provider, request_uri, POST_CLIENT_ID)
    assert "client_secret" not in request


# -- RFC 9126 2.2: the response --------------------------------------------------------------


def test_rfc9126_2_2_created_with_request_uri_and_expires_in(backend: ParBackend) -> None:
    response = push(backend.provider())
    assert isinstance(response, PushedAuthorizationResponse)
    assert response.http_status == 201
    body = json.loads(response.to_json())
    assert set(body) == {"request_uri", "expires_in"}
    assert body["request_uri"].startswith(PREFIX) and body["expires_in"] == 60
    shorter = backend.provider(authz_kwargs={"pushed_authorization_request_lifetime": 30})
    assert push(shorter)["expires_in"] == 30


def test_rfc9126_2_2_request_uri_lifetime_must_be_positive() -> None:
    for lifetime in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                               pushed_authorization_request_lifetime=lifetime)


def test_rfc9126_7_1_request_uri_cannot_be_guessed(backend: ParBackend) -> None:
    """RFC 9126 2.2, 7.1: a cryptographically strong random part. Server-side: 256 random
    bits (43 base64url characters, distinct); sealed: AES-256-GCM with a 96-bit random
    nonce, and any change to the value is refused."""
    provider = backend.provider()
    keys = [request_uri_key(push(provider)["request_uri"]) for _ in range(50)]
    assert len(set(keys)) == len(keys)
    assert all(len(key) * 6 >= 128 for key in keys)
    if not backend.sealed:
        assert all(len(key) == 43 for key in keys)
    for key in keys[:5]:
        forged = key[:-2] + ("A" if key[-2] != "A" else "B") + key[-1]
        error = error_of(lambda f=forged: authorize_pushed(provider, PREFIX + f))
        assert isinstance(error, InvalidRequestURI)
    guesses = ["", "0" * 43, "../" + keys[0], keys[0] + "x", "a" * 5000]
    for guess in guesses:
        assert isinstance(error_of(lambda g=guess: authorize_pushed(provider, PREFIX + g)),
                          InvalidRequestURI)
    # the genuine ones still work
    assert authorize_pushed(provider, PREFIX + keys[-1])["state"] == "state-of-par"


# -- RFC 9126 3: request objects -------------------------------------------------------------


def _push_object(provider: Any, claims: dict[str, Any], **kwargs: Any) -> Any:
    body = urlencode({"client_id": JWT_CLIENT_ID,
                      "client_assertion_type":
                          "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                      "client_assertion": assertion(),
                      "request": request_object(claims, **kwargs)})
    return provider.handle_pushed_authorization_request(body, {})


def test_rfc9126_3_request_object_is_the_request(provider: Any) -> None:
    claims = {"response_type": "code", "scope": "openid email",
              "redirect_uri": JWT_REDIRECT_URI, "state": "from-the-object", "nonce": "n1"}
    request_uri = _push_object(provider, claims)["request_uri"]
    request = authorize_pushed(provider, request_uri, JWT_CLIENT_ID)
    assert request["state"] == "from-the-object" and request["scope"] == ["openid", "email"]
    assert "request" not in request


def test_rfc9126_3_request_object_signature_verified(provider: Any) -> None:
    claims = {"response_type": "code", "scope": "openid", "redirect_uri": JWT_REDIRECT_URI}
    other_key = SigningKey.from_key(ec.generate_private_key(ec.SECP256R1()))
    error = error_of(lambda: _push_object(provider, claims, key=other_key))
    assert isinstance(error, InvalidPushedAuthorizationRequest)
    assert error.oauth_error == "invalid_request_object" and error.http_status == 400


def test_rfc9126_3_request_object_of_the_authenticated_client(provider: Any) -> None:
    claims = {"response_type": "code", "scope": "openid", "redirect_uri": JWT_REDIRECT_URI,
              "client_id": CLIENT_B_ID}
    error = error_of(lambda: _push_object(provider, claims))
    assert error.oauth_error == "invalid_request_object" and error.http_status == 400


def test_rfc9126_3_request_object_redirect_uri_checked(provider: Any) -> None:
    claims = {"response_type": "code", "scope": "openid",
              "redirect_uri": "https://attacker.example.com/cb"}
    error = error_of(lambda: _push_object(provider, claims))
    assert isinstance(error, InvalidPushedAuthorizationRequest) and not error.redirectable


def test_rfc9101_request_object_without_request_parameter_support(backend: ParBackend) -> None:
    provider = backend.provider(config=configuration(request_parameter_supported=False))
    claims = {"response_type": "code", "scope": "openid", "redirect_uri": JWT_REDIRECT_URI}
    error = error_of(lambda: _push_object(provider, claims))
    assert error.oauth_error == "request_not_supported" and error.http_status == 400


# -- RFC 9126 4: the authorization request ---------------------------------------------------


def test_rfc9126_4_request_uri_used_once(provider: Any) -> None:
    request_uri = push(provider)["request_uri"]
    assert authorize_pushed(provider, request_uri)["client_id"] == CLIENT_ID
    error = error_of(lambda: authorize_pushed(provider, request_uri))
    assert isinstance(error, InvalidRequestURI)
    assert error.oauth_error == "invalid_request_uri"
    assert not error.redirectable and error.to_error_url() is None


def test_rfc9126_4_request_uri_of_another_client_refused(provider: Any) -> None:
    request_uri = push(provider)["request_uri"]
    error = error_of(lambda: authorize_pushed(provider, request_uri, CLIENT_B_ID))
    assert isinstance(error, InvalidRequestURI) and error.to_error_url() is None
    # the attempt did not spend it: the client that pushed it still can use it once
    assert authorize_pushed(provider, request_uri)["redirect_uri"] == REDIRECT_URI


def test_rfc9126_4_expired_request_uri_refused(backend: ParBackend) -> None:
    provider = backend.provider()
    request_uri = push(provider)["request_uri"]
    backend.clock.advance(61)
    error = error_of(lambda: authorize_pushed(provider, request_uri))
    assert isinstance(error, InvalidRequestURI) and not error.redirectable


def test_rfc9126_4_request_uri_used_just_before_expiry(backend: ParBackend) -> None:
    provider = backend.provider()
    request_uri = push(provider)["request_uri"]
    backend.clock.advance(59)
    assert authorize_pushed(provider, request_uri)["state"] == "state-of-par"


def test_rfc9126_4_other_parameters_ignored(provider: Any) -> None:
    """RFC 9126 4 (and RFC 9101 5): only the pushed parameters are used; parameters added
    to the authorization request (an attacker's redirect_uri, scope, state...) are not."""
    request_uri = push(provider)["request_uri"]
    request = authorize_pushed(provider, request_uri,
                               redirect_uri="https://attacker.example.com/cb",
                               scope="openid email", state="injected", nonce="injected",
                               response_type="code id_token", prompt="none",
                               claims=json.dumps({"id_token": {"email": None}}))
    assert request["redirect_uri"] == REDIRECT_URI
    assert request["scope"] == ["openid", "profile"]
    assert request["state"] == "state-of-par" and request["nonce"] == "nonce-of-par"
    assert request["response_type"] == ["code"]
    assert "prompt" not in request and "claims" not in request


def test_rfc9126_4_request_uri_without_client_id_refused(provider: Any) -> None:
    request_uri = push(provider)["request_uri"]
    error = error_of(lambda: provider.parse_authentication_request(
        urlencode({"request_uri": request_uri})))
    assert isinstance(error, InvalidAuthenticationRequest) and error.to_error_url() is None
    # an unknown client_id neither
    error = error_of(lambda: authorize_pushed(provider, request_uri, "unknown"))
    assert error.to_error_url() is None
    assert authorize_pushed(provider, request_uri)["client_id"] == CLIENT_ID


def test_rfc9126_4_validated_again_at_the_authorization_endpoint(backend: ParBackend) -> None:
    """RFC 9126 4, 7.4: the pushed request is validated as any authorization request when it
    is used; a redirect URI the client no longer has is refused (never redirected)."""
    client_db = clients()
    provider = backend.provider(client_db=client_db)
    request_uri = push(provider)["request_uri"]
    client_db[CLIENT_ID]["redirect_uris"] = ["https://rp.example.com/new-callback"]
    error = error_of(lambda: authorize_pushed(provider, request_uri))
    assert isinstance(error, InvalidRedirectURI) and error.to_error_url() is None


def test_rfc9126_4_full_code_flow_with_pkce(provider: Any) -> None:
    verifier, challenge = pkce_pair()
    request_uri = push(provider, code_challenge=challenge,
                       code_challenge_method="S256")["request_uri"]
    request = authorize_pushed(provider, request_uri)
    response = provider.authorize(request, USER_ID)
    url = response.request(request["redirect_uri"], False)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(REDIRECT_URI) and query["state"] == ["state-of-par"]
    assert query["iss"] == [ISSUER]
    tokens = provider.handle_token_request(
        urlencode({"grant_type": "authorization_code", "code": query["code"][0],
                   "redirect_uri": REDIRECT_URI, "code_verifier": verifier}), basic())
    assert tokens["token_type"] == "Bearer" and "id_token" in tokens


def test_rfc9126_4_errors_after_taking_are_redirected_to_the_pushed_uri(backend: ParBackend
                                                                         ) -> None:
    """The pushed redirect_uri was verified when pushed and again when taken: errors of the
    host (e.g. ``login_required``) go there, never to a redirect_uri of the query."""
    provider = backend.provider()
    request_uri = push(provider)["request_uri"]
    request = authorize_pushed(provider, request_uri,
                               redirect_uri="https://attacker.example.com/cb")
    error = provider.create_authentication_error(request, "login_required")
    url = error.to_error_url()
    assert url is not None and url.startswith(REDIRECT_URI)


def test_rfc9126_4_code_value_is_not_a_request_uri_and_back(provider: Any) -> None:
    """Codes and pushed requests may share a store: neither is accepted as the other."""
    request = authorize_pushed(provider, push(provider)["request_uri"])
    code = provider.authorize(request, USER_ID)["code"]
    assert isinstance(error_of(lambda: authorize_pushed(provider, PREFIX + code)),
                      InvalidRequestURI)
    key = request_uri_key(push(provider)["request_uri"])
    error = error_of(lambda: provider.handle_token_request(
        urlencode({"grant_type": "authorization_code", "code": key,
                   "redirect_uri": REDIRECT_URI}), basic()))
    assert error.oauth_error == "invalid_grant"
    assert authorize_pushed(provider, PREFIX + key)["client_id"] == CLIENT_ID


def test_rfc9101_request_uri_by_reference_still_unsupported(provider: Any) -> None:
    """Only pushed request URNs are taken; other request_uri values are refused as before."""
    error = error_of(lambda: provider.parse_authentication_request(urlencode({
        **authorization_parameters(), "client_id": CLIENT_ID,
        "request_uri": "https://rp.example.com/request.jwt"})))
    assert error.oauth_error == "request_uri_not_supported"


# -- RFC 9126 4, 5, 6: pushed requests required ----------------------------------------------


def _plain_request(provider: Any, client_id: str = CLIENT_ID,
                   redirect_uri: str = REDIRECT_URI) -> Any:
    return provider.parse_authentication_request(urlencode({
        **authorization_parameters(redirect_uri), "client_id": client_id}))


def test_rfc9126_4_pushed_requests_required_by_the_provider(backend: ParBackend) -> None:
    provider = backend.provider(require_pushed_authorization_requests=True)
    error = error_of(lambda: _plain_request(provider))
    assert isinstance(error, InvalidAuthenticationRequest)
    assert error.oauth_error == "invalid_request"
    url = error.to_error_url()  # the client and its redirect_uri were verified
    assert url is not None and url.startswith(REDIRECT_URI + "?")
    assert authorize_pushed(provider, push(provider)["request_uri"])["client_id"] == CLIENT_ID
    document = provider.provider_configuration.to_dict()
    assert document["require_pushed_authorization_requests"] is True
    assert document["pushed_authorization_request_endpoint"] == PAR_ENDPOINT


def test_rfc9126_6_pushed_requests_required_by_the_client(backend: ParBackend) -> None:
    client_db = clients()
    client_db[CLIENT_B_ID]["require_pushed_authorization_requests"] = True
    provider = backend.provider(client_db=client_db)
    error = error_of(lambda: _plain_request(provider, CLIENT_B_ID, "https://rp2.example.com/callback"))
    assert error.oauth_error == "invalid_request"
    assert _plain_request(provider)["client_id"] == CLIENT_ID  # other clients unaffected
    response = provider.handle_pushed_authorization_request(
        urlencode(authorization_parameters("https://rp2.example.com/callback")),
        basic(CLIENT_B_ID, CLIENT_B_SECRET))
    assert authorize_pushed(provider, response["request_uri"], CLIENT_B_ID)["state"]
    assert "require_pushed_authorization_requests" not in (
        provider.provider_configuration.to_dict())


def test_rfc9126_6_client_metadata_registered(backend: ParBackend) -> None:
    provider = backend.provider()
    base = {"redirect_uris": ["https://new.example.com/cb"]}
    with pytest.raises(InvalidClientRegistrationRequest):
        provider.handle_client_registration_request(json.dumps(
            {**base, "require_pushed_authorization_requests": "yes"}))
    registered = provider.handle_client_registration_request(json.dumps(
        {**base, "require_pushed_authorization_requests": True}))
    client = provider.get_client(registered["client_id"])
    assert client["require_pushed_authorization_requests"] is True


def test_rfc9126_5_discovery_members_only_when_configured(backend: ParBackend) -> None:
    config = configuration()
    del config["pushed_authorization_request_endpoint"]
    document = backend.provider(config=config).provider_configuration.to_dict()
    assert "pushed_authorization_request_endpoint" not in document
    assert "require_pushed_authorization_requests" not in document
    with pytest.raises(InvalidConfiguration):
        backend.provider(config=config, require_pushed_authorization_requests=True)
    with pytest.raises(InvalidConfiguration):
        backend.provider(config=configuration(
            pushed_authorization_request_endpoint="http://op.example.com/par"))
    document = backend.provider(
        config=configuration(require_pushed_authorization_requests=True)
    ).provider_configuration.to_dict()
    assert document["require_pushed_authorization_requests"] is True


# -- RFC 9126 7: attacks, single use under concurrency ---------------------------------------


def test_rfc9126_7_3_concurrent_uses_of_one_request_uri_take_it_once(
        backend: ParBackend) -> None:
    """Of 4 concurrent authorization requests with one request_uri exactly one gets it:
    threads of one provider (in-process state), or providers of their own over one SQLite
    file (separate workers)."""
    first = backend.provider()
    providers = ([first] + [backend.provider() for _ in range(3)]
                 if backend.name == "sqlite" else [first] * 4)
    for _ in range(10):
        request_uri = push(first)["request_uri"]
        outcomes: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(providers))

        def take(p: Any, uri: str, results: list[str], barrier: Any, lock: Any) -> None:
            barrier.wait(10)
            try:
                authorize_pushed(p, uri)
                result = "ok"
            except OAuthError as error:
                result = error.oauth_error
            with lock:
                results.append(result)

        threads = [threading.Thread(target=take, args=(p, request_uri, outcomes, barrier, lock))
                   for p in providers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["invalid_request_uri"] * (len(providers) - 1) + ["ok"]


def test_rfc9126_7_sealed_request_uri_reveals_nothing_and_is_bounded(
        backend: ParBackend) -> None:
    provider = backend.provider()
    marker = "a-state-value-that-must-not-be-readable"
    request_uri = push(provider, state=marker)["request_uri"]
    assert marker not in request_uri
    # 4,096 characters of request_uri value at most: a larger sealed request is refused at
    # the push (with server-side storage it is kept)
    big = "x" * 5000
    if backend.sealed:
        error = error_of(lambda: push(provider, state=big))
        assert isinstance(error, InvalidPushedAuthorizationRequest)
        assert error.oauth_error == "invalid_request" and error.http_status == 400
    else:
        request_uri = push(provider, state=big)["request_uri"]
        assert len(request_uri) < 100
        assert authorize_pushed(provider, request_uri)["state"] == big


def test_rfc9126_sealed_requests_by_default_when_codes_are_sealed(op_key: SigningKey) -> None:
    """Without a store of their own, pushed requests go where codes go: sealed codes, sealed
    requests (single use through the codes' replay cache)."""
    clock = FakeClock()
    backend = ParBackend("stateless-default", clock, lambda: {
        k: v for k, v in stateless_stores(clock)().items() if k != "pushed"}, op_key)
    provider = backend.provider()
    authz = provider.authz_state
    assert authz.pushed_authorization_requests is authz.authorization_codes
    assert authz.pushed_requests_are_sealed
    request_uri = push(provider)["request_uri"]
    assert authz.authorization_codes.unseal(request_uri_key(request_uri))["client_id"] == (
        CLIENT_ID)
    authorize_pushed(provider, request_uri)
    assert isinstance(error_of(lambda: authorize_pushed(provider, request_uri)),
                      InvalidRequestURI)


def test_pyop3_authorization_state_arguments_unchanged() -> None:
    """The new arguments are keyword-only: pyop 3's positional call still means the same."""
    codes, tokens, refresh, subjects = {}, {}, {}, {}
    state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), codes, tokens,
                               refresh, subjects)
    assert state.pushed_authorization_requests is state.authorization_codes
    with pytest.raises(TypeError):
        AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), codes, tokens,  # type: ignore[misc]
                           refresh, subjects, 600)
