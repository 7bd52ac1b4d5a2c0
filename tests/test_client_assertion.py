"""JWT client authentication: ``client_secret_jwt`` and ``private_key_jwt``.

RFC 7523 2.2 and 3, RFC 7521 4.2, OIDC Core 9, RFC 6749 2.3. Assertions are
signed here with :mod:`pyop.crypto` (asymmetric) and :mod:`hmac` (HS*); the
Authlib-signed ones are in ``test_interop.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Mapping
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    OPT_IN_CAPABILITIES,
    REDIRECT_URI,
    FakeClock,
    clients,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pyop.authz_state import AuthorizationState
from pyop.client_assertion import (
    DEFAULT_MAX_ASSERTION_LIFETIME,
    HMAC_ALGS,
    JWT_BEARER_ASSERTION_TYPE,
    MAX_ASSERTION_SIZE,
    ClientAssertionVerifier,
    assertion_signing_algs,
    method_for_alg,
)
from pyop.client_authentication import authenticate_client, verify_client_authentication
from pyop.crypto import OPT_IN_ALGS, SUPPORTED_ALGS, SigningKey, jws_sign
from pyop.exceptions import (
    InvalidClientAuthentication,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidRequestError,
)
from pyop.provider import Provider
from pyop.storage import MemoryStorage, StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

TOKEN_ENDPOINT = ISSUER + "/token"
INTROSPECTION_ENDPOINT = ISSUER + "/introspect"
REVOCATION_ENDPOINT = ISSUER + "/revoke"
JWT_CLIENT = "jwt-client"
JWT_SECRET = "shared-secret-of-the-jwt-client-0123456789"
KEY_CLIENT = "key-client"
URI_CLIENT = "uri-client"
JWKS_URI = "https://rp.example.com/jwks.json"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs_sign(claims: Mapping[str, Any], secret: str, alg: str = "HS256",
            header: Optional[Mapping[str, Any]] = None) -> str:
    head = {"alg": alg, "typ": "JWT", **(header or {})}
    signing_input = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64(mac)


def unsigned(claims: Mapping[str, Any]) -> str:
    return (b64(json.dumps({"alg": "none"}).encode()) + "."
            + b64(json.dumps(claims).encode()) + ".")


def make_key(alg: str) -> SigningKey:
    if alg.startswith(("RS", "PS")):
        return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)
    if alg in ("EdDSA", "Ed25519"):
        return SigningKey(ed25519.Ed25519PrivateKey.generate(), alg)
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
    return SigningKey(ec.generate_private_key(curve), alg)


@pytest.fixture(scope="module")
def rs_key() -> SigningKey:
    return make_key("RS256")


@pytest.fixture(scope="module")
def es_key() -> SigningKey:
    return make_key("ES256")


def claims_for(client_id: str, now: float, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": ISSUER,
                              "exp": int(now) + 60, "iat": int(now),
                              "jti": secrets.token_urlsafe(16)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def jwt_clients(keys: Mapping[str, SigningKey]) -> dict[str, Any]:
    all_clients = clients()
    all_clients[JWT_CLIENT] = {
        "client_id": JWT_CLIENT, "client_secret": JWT_SECRET, "redirect_uris": [REDIRECT_URI],
        "response_types": ["code"], "token_endpoint_auth_method": "client_secret_jwt",
        "grant_types": ["authorization_code", "client_credentials"]}
    all_clients[KEY_CLIENT] = {
        "client_id": KEY_CLIENT, "redirect_uris": [REDIRECT_URI], "response_types": ["code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.to_jwk() for key in keys.values()]}}
    all_clients[URI_CLIENT] = {
        "client_id": URI_CLIENT, "redirect_uris": [REDIRECT_URI], "response_types": ["code"],
        "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": JWKS_URI}
    return all_clients


def jwt_config() -> dict[str, Any]:
    return {
        "issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": TOKEN_ENDPOINT, "introspection_endpoint": INTROSPECTION_ENDPOINT,
        "revocation_endpoint": REVOCATION_ENDPOINT, "registration_endpoint": ISSUER + "/reg",
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "scopes_supported": ["openid", "profile", "email", "api"],
        # JWT client authentication is offered only when configured
        "token_endpoint_auth_methods_supported": list(
            OPT_IN_CAPABILITIES["token_endpoint_auth_methods_supported"]),
    }


class Fetcher:
    """A jwks_fetcher serving a mutable JWK Set and counting the fetches."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = keys
        self.calls = 0
        self.fail = False

    def __call__(self, uri: str) -> Any:
        assert uri == JWKS_URI
        self.calls += 1
        if self.fail:
            raise OSError("unreachable")
        return {"keys": [key.to_jwk() for key in self.keys]}


@pytest.fixture
def fetcher(rs_key: SigningKey) -> Fetcher:
    return Fetcher([rs_key])


@pytest.fixture
def op(make_provider: Callable[..., Provider], rs_key: SigningKey, es_key: SigningKey,
       fetcher: Fetcher) -> Provider:
    provider = make_provider(config=jwt_config(),
                             client_db=jwt_clients({"rs": rs_key, "es": es_key}))
    provider.jwks_fetcher = fetcher
    return provider


@pytest.fixture
def endpoint_op(make_provider: Callable[..., Provider], rs_key: SigningKey,
                es_key: SigningKey, fetcher: Fetcher) -> Provider:
    """A provider that also accepts the token endpoint or the endpoint called as ``aud``."""
    provider = make_provider(config=jwt_config(),
                             client_db=jwt_clients({"rs": rs_key, "es": es_key}),
                             client_assertion_audiences="issuer-or-endpoint")
    provider.jwks_fetcher = fetcher
    return provider


def assertion_body(assertion: str, **extra: str) -> str:
    return urlencode({"client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                      "client_assertion": assertion, "token": "x", **extra})


def authenticate(op: Provider, assertion: str, headers: Optional[Mapping[str, str]] = None,
                 **extra: str) -> None:
    """Authenticate at the introspection endpoint (an unknown token: inactive, no error)."""
    response = op.handle_introspection_request(assertion_body(assertion, **extra), headers)
    assert response["active"] is False


def refused(op: Provider, assertion: str, message: Optional[str] = None, **extra: str
            ) -> InvalidClientAuthentication:
    with pytest.raises(InvalidClientAuthentication) as info:
        authenticate(op, assertion, **extra)
    assert info.value.http_status == 401
    assert info.value.oauth_error == "invalid_client"
    if message is not None:
        assert message in str(info.value)
    return info.value


# -- client_secret_jwt ---------------------------------------------------------------------------

@pytest.mark.parametrize("alg", HMAC_ALGS)
def test_client_secret_jwt(op: Provider, clock: FakeClock, alg: str) -> None:
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET, alg))


def test_client_secret_jwt_at_the_token_endpoint(op: Provider, clock: FakeClock) -> None:
    body = urlencode({"grant_type": "client_credentials", "scope": "api",
                      "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                      "client_assertion": hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET)})
    response = op.handle_token_request(body)
    assert json.loads(response.to_json())["scope"] == "api"


def test_client_secret_jwt_at_the_revocation_endpoint(op: Provider, endpoint_op: Provider,
                                                      clock: FakeClock) -> None:
    op.handle_revocation_request(assertion_body(hs_sign(claims_for(JWT_CLIENT, clock()),
                                                        JWT_SECRET)))
    claims = claims_for(JWT_CLIENT, clock(), aud=REVOCATION_ENDPOINT)
    endpoint_op.handle_revocation_request(assertion_body(hs_sign(claims, JWT_SECRET)))


def test_wrong_secret(op: Provider, clock: FakeClock) -> None:
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock()), "not-the-secret"),
            "signature verification failed")


def test_wrong_client(op: Provider, clock: FakeClock) -> None:
    """An assertion naming a client_secret_basic client, MACed with that client's secret."""
    refused(op, hs_sign(claims_for(CLIENT_ID, clock()), CLIENT_SECRET),
            "must authenticate with client_secret_basic")


def test_unknown_client(op: Provider, clock: FakeClock) -> None:
    refused(op, hs_sign(claims_for("nobody", clock()), JWT_SECRET),
            "unknown client or wrong credentials")


def test_alg_none_is_refused(op: Provider, clock: FakeClock) -> None:
    refused(op, unsigned(claims_for(JWT_CLIENT, clock())), "alg is missing, none")
    refused(op, unsigned(claims_for(KEY_CLIENT, clock())), "alg is missing, none")


def test_unsupported_alg_is_refused(op: Provider, clock: FakeClock) -> None:
    assertion = hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET)
    header = b64(json.dumps({"alg": "HS1"}).encode())
    refused(op, header + assertion[assertion.index("."):], "alg is missing, none")


def test_hmac_signed_with_the_public_key_is_refused(op: Provider, clock: FakeClock,
                                                     rs_key: SigningKey) -> None:
    """Algorithm confusion (RFC 8725 2.1): HS256 keyed with the client's public key."""
    claims = claims_for(KEY_CLIENT, clock())
    pem = rs_key.public_key.public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem.decode(), json.dumps(rs_key.to_jwk())):
        refused(op, hs_sign(claims, secret), "must authenticate with private_key_jwt")


def test_asymmetric_for_client_secret_jwt_is_refused(op: Provider, clock: FakeClock,
                                                     rs_key: SigningKey) -> None:
    refused(op, jws_sign(claims_for(JWT_CLIENT, clock()), rs_key),
            "must authenticate with client_secret_jwt")


def test_registered_signing_alg_is_enforced(op: Provider, clock: FakeClock) -> None:
    op.clients[JWT_CLIENT]["token_endpoint_auth_signing_alg"] = "HS512"
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET, "HS256"),
            "alg differs from the registered one")
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET, "HS512"))


def test_configured_algs_are_enforced(make_provider: Callable[..., Provider], clock: FakeClock,
                                      rs_key: SigningKey) -> None:
    config = jwt_config()
    config["token_endpoint_auth_signing_alg_values_supported"] = ["HS512", "ES256"]
    provider = make_provider(config=config, client_db=jwt_clients({"rs": rs_key}))
    refused(provider, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET), "not supported")
    refused(provider, jws_sign(claims_for(KEY_CLIENT, clock()), rs_key), "not supported")
    authenticate(provider, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET, "HS512"))


def test_expired_client_secret(op: Provider, clock: FakeClock) -> None:
    op.clients[JWT_CLIENT]["client_secret_expires_at"] = int(clock()) - 1
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET), "client secret expired")


def test_hashed_secret_cannot_verify_a_mac(op: Provider, clock: FakeClock,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from pyop.client_authentication import hash_client_secret

    client = op.clients[JWT_CLIENT]
    client["client_secret_hash"] = hash_client_secret(client.pop("client_secret"))
    with caplog.at_level(logging.DEBUG):
        error = refused(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET))
    assert JWT_SECRET not in str(error)
    assert JWT_SECRET not in caplog.text


# -- private_key_jwt ------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", sorted(SUPPORTED_ALGS - OPT_IN_ALGS))
def test_private_key_jwt_every_supported_alg(make_provider: Callable[..., Provider],
                                             clock: FakeClock, alg: str) -> None:
    key = make_key(alg)
    provider = make_provider(config=jwt_config(), client_db=jwt_clients({alg: key}))
    authenticate(provider, jws_sign(claims_for(KEY_CLIENT, clock()), key))


def test_private_key_jwt_es256(op: Provider, clock: FakeClock, es_key: SigningKey) -> None:
    authenticate(op, jws_sign(claims_for(KEY_CLIENT, clock()), es_key))


def test_private_key_jwt_with_json_string_jwks(op: Provider, clock: FakeClock,
                                               rs_key: SigningKey) -> None:
    op.clients[KEY_CLIENT]["jwks"] = json.dumps({"keys": [rs_key.to_jwk()]})
    authenticate(op, jws_sign(claims_for(KEY_CLIENT, clock()), rs_key))


def test_foreign_key_is_refused(op: Provider, clock: FakeClock) -> None:
    refused(op, jws_sign(claims_for(KEY_CLIENT, clock()), make_key("RS256")),
            "signature verification failed")


def test_tampered_payload_is_refused(op: Provider, clock: FakeClock, rs_key: SigningKey) -> None:
    header, _, signature = jws_sign(claims_for(KEY_CLIENT, clock()), rs_key).split(".")
    other = b64(json.dumps(claims_for(KEY_CLIENT, clock(), jti="other")).encode())
    refused(op, f"{header}.{other}.{signature}", "signature verification failed")


def test_unknown_kid_is_refused(op: Provider, clock: FakeClock, rs_key: SigningKey) -> None:
    refused(op, jws_sign(claims_for(KEY_CLIENT, clock()), rs_key, {"kid": "unknown"}),
            "signature verification failed")


def test_jwks_uri(op: Provider, clock: FakeClock, rs_key: SigningKey, fetcher: Fetcher) -> None:
    authenticate(op, jws_sign(claims_for(URI_CLIENT, clock()), rs_key))
    authenticate(op, jws_sign(claims_for(URI_CLIENT, clock(), jti="2"), rs_key))
    assert fetcher.calls == 1  # cached


def test_jwks_uri_refetched_once_on_unknown_kid(op: Provider, clock: FakeClock,
                                                rs_key: SigningKey, fetcher: Fetcher) -> None:
    authenticate(op, jws_sign(claims_for(URI_CLIENT, clock()), rs_key))
    rotated = make_key("RS256")
    fetcher.keys = [rotated]
    clock.advance(31)  # the cached document is older than the refetch interval
    authenticate(op, jws_sign(claims_for(URI_CLIENT, clock()), rotated))
    assert fetcher.calls == 2
    # an unknown kid right after: at most one refetch per interval, then refused
    refused(op, jws_sign(claims_for(URI_CLIENT, clock(), jti="x"), make_key("RS256")))
    assert fetcher.calls == 2


def test_jwks_uri_unreachable(op: Provider, clock: FakeClock, rs_key: SigningKey,
                              fetcher: Fetcher) -> None:
    fetcher.fail = True
    refused(op, jws_sign(claims_for(URI_CLIENT, clock()), rs_key),
            "signature verification failed")


def test_client_without_keys(op: Provider, clock: FakeClock, rs_key: SigningKey) -> None:
    del op.clients[KEY_CLIENT]["jwks"]
    refused(op, jws_sign(claims_for(KEY_CLIENT, clock()), rs_key))


# -- claims (RFC 7523 3) --------------------------------------------------------------------------

def test_iss_differs_from_sub(op: Provider, clock: FakeClock) -> None:
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock(), sub=CLIENT_ID), JWT_SECRET),
            "iss and sub")
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock(), sub=None), JWT_SECRET), "iss and sub")


def test_client_id_parameter(op: Provider, clock: FakeClock) -> None:
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET), client_id=JWT_CLIENT)
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock(), jti="2"), JWT_SECRET),
            "client_id differs", client_id=CLIENT_ID)


@pytest.mark.parametrize("aud", [ISSUER, TOKEN_ENDPOINT, INTROSPECTION_ENDPOINT,
                                 ["https://other.example.com", TOKEN_ENDPOINT]])
def test_accepted_audiences_with_endpoint_option(endpoint_op: Provider, clock: FakeClock,
                                                 aud: Any) -> None:
    authenticate(endpoint_op, hs_sign(claims_for(JWT_CLIENT, clock(), aud=aud), JWT_SECRET))


@pytest.mark.parametrize("aud", [TOKEN_ENDPOINT, INTROSPECTION_ENDPOINT, [ISSUER],
                                 ["https://other.example.com", ISSUER]])
def test_rfc7523bis_default_audience_is_the_issuer_as_a_single_string(
        op: Provider, clock: FakeClock, aud: Any) -> None:
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, clock(), aud=ISSUER), JWT_SECRET))
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock(), aud=aud), JWT_SECRET), "aud")


@pytest.mark.parametrize("aud", [None, "https://other.example.com", ISSUER + "/",
                                 REVOCATION_ENDPOINT, [], [1], 7])
def test_wrong_audience(op: Provider, clock: FakeClock, aud: Any) -> None:
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock(), aud=aud), JWT_SECRET), "aud")


def test_introspection_endpoint_is_no_audience_at_the_token_endpoint(
        endpoint_op: Provider, clock: FakeClock) -> None:
    body = urlencode({"grant_type": "client_credentials",
                      "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                      "client_assertion": hs_sign(claims_for(
                          JWT_CLIENT, clock(), aud=INTROSPECTION_ENDPOINT), JWT_SECRET)})
    with pytest.raises(InvalidClientAuthentication, match="aud"):
        endpoint_op.handle_token_request(body)


def test_expiry(op: Provider, clock: FakeClock) -> None:
    now = int(clock())
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, exp=now - 61), JWT_SECRET), "expired")
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, exp=None), JWT_SECRET), "exp is missing")
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, exp="soon"), JWT_SECRET), "exp is missing")
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, exp=True), JWT_SECRET), "exp is missing")
    # within the clock-skew leeway
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, now, exp=now - 30), JWT_SECRET))


def test_far_future_exp(op: Provider, clock: FakeClock) -> None:
    now = int(clock())
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, exp=now + DEFAULT_MAX_ASSERTION_LIFETIME + 1),
                        JWT_SECRET), "lives too long")
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, exp=now + 10**12), JWT_SECRET),
            "lives too long")
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, now, exp=now + DEFAULT_MAX_ASSERTION_LIFETIME),
                             JWT_SECRET))


def test_max_lifetime_is_configurable(make_provider: Callable[..., Provider],
                                      clock: FakeClock, rs_key: SigningKey) -> None:
    provider = make_provider(config=jwt_config(), client_db=jwt_clients({"rs": rs_key}),
                             max_client_assertion_lifetime=3600)
    now = int(clock())
    authenticate(provider, hs_sign(claims_for(JWT_CLIENT, now, exp=now + 3600), JWT_SECRET))


@pytest.mark.parametrize("name", ["nbf", "iat"])
def test_nbf_and_iat(op: Provider, clock: FakeClock, name: str) -> None:
    now = int(clock())
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, **{name: now + 120}), JWT_SECRET),
            "in the future")
    refused(op, hs_sign(claims_for(JWT_CLIENT, now, **{name: "now"}), JWT_SECRET),
            "not a number")
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, now, **{name: now + 30}), JWT_SECRET))


@pytest.mark.parametrize("jti", [None, "", 12, ["a"], "x" * 513])
def test_jti_required(op: Provider, clock: FakeClock, jti: Any) -> None:
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock(), jti=jti), JWT_SECRET), "jti")


def test_replayed_jti(op: Provider, clock: FakeClock, rs_key: SigningKey) -> None:
    assertion = hs_sign(claims_for(JWT_CLIENT, clock(), jti="once"), JWT_SECRET)
    authenticate(op, assertion)
    refused(op, assertion, "already used")
    # the same jti in a new assertion is a replay too; of another client it is not
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock(), jti="once", iat=int(clock()) - 1),
                        JWT_SECRET), "already used")
    authenticate(op, jws_sign(claims_for(KEY_CLIENT, clock(), jti="once"), rs_key))


def test_jti_is_remembered_until_the_assertion_expires(op: Provider, clock: FakeClock) -> None:
    assertion = hs_sign(claims_for(JWT_CLIENT, clock(), jti="t"), JWT_SECRET)
    authenticate(op, assertion)
    clock.advance(60 + 59)  # exp is now + 60, plus the 60 s leeway
    refused(op, assertion, "already used")
    clock.advance(2)
    refused(op, assertion, "expired")


def test_failed_assertion_does_not_burn_the_jti(op: Provider, clock: FakeClock) -> None:
    claims = claims_for(JWT_CLIENT, clock(), jti="keep")
    refused(op, hs_sign(claims, "wrong"))
    authenticate(op, hs_sign(claims, JWT_SECRET))


def test_concurrent_replay_exactly_one_succeeds(op: Provider, clock: FakeClock) -> None:
    assertion = hs_sign(claims_for(JWT_CLIENT, clock(), jti="race"), JWT_SECRET)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait(timeout=10)
        try:
            authenticate(op, assertion)
            result = "ok"
        except InvalidClientAuthentication as e:
            result = str(e)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["client_assertion already used"] * 7 + ["ok"]


def test_replay_store_on_sealed_storage(jwkest_signing_key: Any, clock: FakeClock,
                                        rs_key: SigningKey) -> None:
    """Sealed codes hold no records: the sealed store's replay cache keeps the jti."""
    replay_cache = MemoryStorage(clock=clock)
    codes = StatelessWrapper("authz_codes", "secret" * 8, replay_cache=replay_cache,
                             clock=clock)
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), codes, clock=clock)
    provider = Provider(jwkest_signing_key, jwt_config(), authz, jwt_clients({"rs": rs_key}),
                        Userinfo({}), clock=clock)
    assertion = hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET)
    authenticate(provider, assertion)
    refused(provider, assertion, "already used")
    assert len(list(replay_cache.keys())) == 1


def test_explicit_replay_store(make_provider: Callable[..., Provider], clock: FakeClock,
                               rs_key: SigningKey) -> None:
    store = MemoryStorage(clock=clock)
    provider = make_provider(config=jwt_config(), client_db=jwt_clients({"rs": rs_key}),
                             client_assertion_replay_store=store)
    authenticate(provider, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET))
    [key] = list(store.keys())
    assert key.startswith("client_assertion_jti:") and "jti" not in key[21:]
    # a jti record is no authorization code
    assert provider.authz_state.authorization_codes.get(key) is None


def test_default_replay_store_is_the_code_store(op: Provider, clock: FakeClock) -> None:
    authenticate(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET))
    [key] = list(op.authz_state.authorization_codes.keys())
    from pyop.exceptions import InvalidAuthorizationCode
    with pytest.raises(InvalidAuthorizationCode):
        op.authz_state.get_authorization_code(key)


# -- malformed assertions and combinations (RFC 6749 2.3, RFC 7521 4.2) ---------------------------

@pytest.mark.parametrize("assertion", [
    "garbage", "a.b", "a.b.c", "a.b.c.d.e", "...", "é.é.é",
    b64(b"[]") + "." + b64(b"{}") + ".", b64(b'{"alg":"HS256"}') + "." + b64(b"[1]") + ".x",
    b64(b'{"alg":"HS256"}') + "." + b64(b"{") + ".x", b64(b'{"alg":7}') + "." + b64(b"{}") + ".x",
])
def test_malformed_assertion(op: Provider, assertion: str) -> None:
    refused(op, assertion)


def test_empty_assertion(op: Provider) -> None:
    with pytest.raises((InvalidRequestError, InvalidClientAuthentication)):
        authenticate(op, "")


def test_oversized_assertion(op: Provider, clock: FakeClock) -> None:
    claims = claims_for(JWT_CLIENT, clock(), padding="x" * MAX_ASSERTION_SIZE)
    refused(op, hs_sign(claims, JWT_SECRET), "too large")


def test_crit_header_is_refused(op: Provider, clock: FakeClock) -> None:
    refused(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET,
                        header={"crit": ["exp"], "exp": 1}), "critical")


def test_assertion_with_basic_header_is_invalid_request(op: Provider, clock: FakeClock) -> None:
    basic = "Basic " + base64.b64encode(f"{JWT_CLIENT}:{JWT_SECRET}".encode()).decode()
    with pytest.raises(InvalidRequestError, match="more than one"):
        authenticate(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET),
                     {"Authorization": basic})


def test_assertion_with_client_secret_is_invalid_request(op: Provider, clock: FakeClock) -> None:
    with pytest.raises(InvalidRequestError, match="more than one"):
        authenticate(op, hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET),
                     client_secret=JWT_SECRET)


@pytest.mark.parametrize("body", [
    {"client_assertion": "a.b.c"}, {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE},
    {"client_assertion": "a.b.c", "client_assertion_type": [JWT_BEARER_ASSERTION_TYPE] * 2},
])
def test_incomplete_assertion_parameters(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        authenticate_client({}, dict(body, token="x"), None, now=0)


def test_repeated_assertion_is_invalid_request(op: Provider, clock: FakeClock) -> None:
    assertion = hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET)
    body = assertion_body(assertion) + "&" + urlencode({"client_assertion": assertion})
    with pytest.raises(InvalidRequestError):
        op.handle_introspection_request(body)


def test_unsupported_assertion_type(op: Provider, clock: FakeClock) -> None:
    body = urlencode({"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2"
                      "-bearer", "client_assertion": "x", "token": "x"})
    with pytest.raises(InvalidClientAuthentication, match="unsupported client_assertion_type"):
        op.handle_introspection_request(body)


def test_jwt_client_cannot_use_its_secret_directly(op: Provider) -> None:
    basic = "Basic " + base64.b64encode(f"{JWT_CLIENT}:{JWT_SECRET}".encode()).decode()
    with pytest.raises(InvalidClientAuthentication, match="client_secret_jwt"):
        op.handle_introspection_request("token=x", {"Authorization": basic})


def test_no_secret_in_messages_or_logs(op: Provider, clock: FakeClock,
                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for assertion in (hs_sign(claims_for(JWT_CLIENT, clock()), "wrong-secret"),
                          hs_sign(claims_for(JWT_CLIENT, clock(), exp=0), JWT_SECRET),
                          "x" + hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET)):
            error = refused(op, assertion)
            assert JWT_SECRET not in str(error) and assertion not in str(error)
            assert error.__cause__ is None or assertion not in str(error.__cause__)
    assert JWT_SECRET not in caplog.text and "wrong-secret" not in caplog.text


# -- the functions, directly ---------------------------------------------------------------------

def test_authenticate_client_without_verifier_refuses_assertions(clock: FakeClock) -> None:
    body = {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET)}
    with pytest.raises(InvalidClientAuthentication, match="not accepted"):
        authenticate_client(jwt_clients({}), body, None, now=clock())


def test_verify_client_authentication_with_verifier(clock: FakeClock) -> None:
    verifier = ClientAssertionVerifier(MemoryStorage(clock=clock))
    body = {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": hs_sign(claims_for(JWT_CLIENT, clock()), JWT_SECRET)}
    assert verify_client_authentication(jwt_clients({}), body, None, now=clock(),
                                        assertion_verifier=verifier,
                                        audiences=[ISSUER]) == JWT_CLIENT


def test_verifier_without_key_resolver(clock: FakeClock, rs_key: SigningKey) -> None:
    verifier = ClientAssertionVerifier(MemoryStorage(clock=clock))
    with pytest.raises(InvalidClientAuthentication, match="not available"):
        verifier.verify(jws_sign(claims_for(KEY_CLIENT, clock()), rs_key),
                        jwt_clients({"rs": rs_key}), audiences=[TOKEN_ENDPOINT], now=clock())


def test_algs_and_methods() -> None:
    assert assertion_signing_algs(["client_secret_basic"]) == []
    assert assertion_signing_algs(["client_secret_jwt"]) == list(HMAC_ALGS)
    # RFC 9864 Ed25519 is accepted only where configured, never in the derived list
    assert set(assertion_signing_algs(["private_key_jwt"])) == SUPPORTED_ALGS - OPT_IN_ALGS
    assert "Ed25519" not in assertion_signing_algs(["private_key_jwt"])
    assert method_for_alg("HS384") == "client_secret_jwt"
    assert method_for_alg("ES256") == "private_key_jwt"
    assert method_for_alg("none") is None and method_for_alg("HS1") is None


# -- discovery and registration ------------------------------------------------------------------

def test_discovery(op: Provider) -> None:
    published = op.provider_configuration
    assert {"client_secret_jwt", "private_key_jwt"} <= set(
        published["token_endpoint_auth_methods_supported"])
    algs = published["token_endpoint_auth_signing_alg_values_supported"]
    assert set(algs) == set(HMAC_ALGS) | (SUPPORTED_ALGS - OPT_IN_ALGS) and "none" not in algs
    assert "Ed25519" not in algs  # RFC 9864: opt-in, the pyop 3 discovery defaults kept


def test_discovery_with_hashed_secrets(make_provider: Callable[..., Provider]) -> None:
    published = make_provider(hash_client_secrets=True).provider_configuration
    assert "client_secret_jwt" not in published["token_endpoint_auth_methods_supported"]
    assert not set(HMAC_ALGS) & set(
        published["token_endpoint_auth_signing_alg_values_supported"])


def test_discovery_without_jwt_methods(make_provider: Callable[..., Provider]) -> None:
    config = jwt_config()
    config["token_endpoint_auth_methods_supported"] = ["client_secret_basic"]
    published = make_provider(config=config).provider_configuration
    assert "token_endpoint_auth_signing_alg_values_supported" not in published


@pytest.mark.parametrize("algs", [["none"], ["RS256", "none"], ["HS1"], [1]])
def test_invalid_configured_algs(make_provider: Callable[..., Provider], algs: Any) -> None:
    config = jwt_config()
    config["token_endpoint_auth_signing_alg_values_supported"] = algs
    with pytest.raises(InvalidConfiguration,
                       match="token_endpoint_auth_signing_alg_values_supported"):
        make_provider(config=config)


def register(provider: Provider, **metadata: Any) -> Any:
    return provider.handle_client_registration_request(
        json.dumps({"redirect_uris": [REDIRECT_URI], **metadata}))


def registration_refused(provider: Provider, **metadata: Any) -> str:
    with pytest.raises(InvalidClientRegistrationRequest) as info:
        register(provider, **metadata)
    assert info.value.oauth_error == "invalid_client_metadata"
    return str(info.value)


def test_registration_and_use_of_client_secret_jwt(op: Provider, clock: FakeClock) -> None:
    response = register(op, token_endpoint_auth_method="client_secret_jwt",
                        token_endpoint_auth_signing_alg="HS384")
    assert len(response["client_secret"].encode()) >= 64  # an HS512 key (RFC 7518 3.2)
    claims = claims_for(response["client_id"], clock())
    authenticate(op, hs_sign(claims, response["client_secret"], "HS384"))


def test_registration_and_use_of_private_key_jwt(op: Provider, clock: FakeClock,
                                                 es_key: SigningKey) -> None:
    response = register(op, token_endpoint_auth_method="private_key_jwt",
                        jwks={"keys": [es_key.to_jwk()]},
                        token_endpoint_auth_signing_alg="ES256")
    authenticate(op, jws_sign(claims_for(response["client_id"], clock()), es_key))


def test_registration_of_private_key_jwt_with_jwks_uri(op: Provider) -> None:
    response = register(op, token_endpoint_auth_method="private_key_jwt", jwks_uri=JWKS_URI)
    assert response["token_endpoint_auth_method"] == "private_key_jwt"


def test_registration_refusals(op: Provider, rs_key: SigningKey) -> None:
    jwks = {"keys": [rs_key.to_jwk()]}
    assert "needs jwks or jwks_uri" in registration_refused(
        op, token_endpoint_auth_method="private_key_jwt")
    for method, alg, extra in [("private_key_jwt", "HS256", {"jwks": jwks}),
                               ("client_secret_jwt", "RS256", {}),
                               ("client_secret_jwt", "HS1", {})]:
        assert "token_endpoint_auth_signing_alg" in registration_refused(
            op, token_endpoint_auth_method=method, token_endpoint_auth_signing_alg=alg,
            **extra)
    for method, extra in [("private_key_jwt", {"jwks": jwks}), ("client_secret_jwt", {})]:
        registration_refused(op, token_endpoint_auth_method=method,  # refused by oic already
                             token_endpoint_auth_signing_alg="none", **extra)
    assert "needs client_secret_jwt or private_key_jwt" in registration_refused(
        op, token_endpoint_auth_signing_alg="RS256")


def test_registration_of_client_secret_jwt_with_hashed_secrets(
        make_provider: Callable[..., Provider]) -> None:
    config = jwt_config()
    config["token_endpoint_auth_methods_supported"].remove("client_secret_jwt")
    provider = make_provider(config=config, hash_client_secrets=True)
    message = registration_refused(provider, token_endpoint_auth_method="client_secret_jwt")
    assert "hashed" in message
    assert not [c for c in provider.clients if c not in clients()]  # nothing stored
