"""How several signing keys, JWT client authentication, the client configuration endpoint
(RFC 7592), the allow-lists and the opt-in caches work together."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import ISSUER, USER_ID, FakeClock, configuration

from pyop.client_assertion import JWT_BEARER_ASSERTION_TYPE
from pyop.crypto import SigningKey, jws_sign, jws_verify
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidClientAuthentication,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidTokenRequest,
    TokenWithoutEndUser,
)
from pyop.provider import Provider
from pyop.request_object import verification_keys
from pyop.storage import MemoryStorage, StatelessWrapper

WEB_URI = "https://rp.example.com/cb"
TOKEN_ENDPOINT = ISSUER + "/token"
INTROSPECTION_ENDPOINT = ISSUER + "/introspect"
REVOCATION_ENDPOINT = ISSUER + "/revoke"
JWKS_URI = "https://rp.example.com/jwks.json"


def config(**changes: Any) -> dict[str, Any]:
    values = configuration()
    values.update({
        "introspection_endpoint": INTROSPECTION_ENDPOINT,
        "revocation_endpoint": REVOCATION_ENDPOINT,
        "grant_types_supported": ["authorization_code", "implicit", "client_credentials"],
        "scopes_supported": ["openid", "profile", "email", "api", "admin"],
    })
    values.update(changes)
    return values


def hashed_config(**changes: Any) -> dict[str, Any]:
    """``config`` for ``hash_client_secrets``: client_secret_jwt (which needs the secret
    itself) not offered."""
    values = config()
    values["token_endpoint_auth_methods_supported"] = [
        method for method in values["token_endpoint_auth_methods_supported"]
        if method != "client_secret_jwt"]
    values.update(changes)
    return values


def rsa_key(alg: str = "RS256") -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import rsa
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)


def ec_key() -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import ec
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")


@pytest.fixture(scope="module")
def es256() -> SigningKey:
    return ec_key()


@pytest.fixture(scope="module")
def client_keys() -> tuple[SigningKey, SigningKey]:
    return rsa_key(), rsa_key()


class Fetcher:
    """A jwks_fetcher serving a JWK Set the test changes."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.calls = 0

    def __call__(self, uri: str) -> Any:
        assert uri == JWKS_URI
        self.calls += 1
        return {"keys": [key.to_jwk() for key in self.keys]}


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher()


@pytest.fixture
def op(make_provider: Callable[..., Provider], es256: SigningKey, fetcher: Fetcher) -> Provider:
    signed_userinfo = config(userinfo_signing_alg_values_supported=["RS256", "ES256"])
    provider = make_provider(config=signed_userinfo, client_db=MemoryStorage(),
                             signing_keys=[es256])
    provider.jwks_fetcher = fetcher
    return provider


def register(op: Provider, **metadata: Any) -> dict[str, Any]:
    body = {"redirect_uris": [WEB_URI], **metadata}
    return op.handle_client_registration_request(json.dumps(body)).to_dict()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(
        f"{client_id}:{secret}".encode()).decode()}


def update(op: Provider, info: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Send back the last client information response, changed (None removes a member)."""
    body = {k: v for k, v in info.items()
            if k not in ("registration_access_token", "registration_client_uri")}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    return op.handle_client_update_request(
        info["client_id"], json.dumps(body), bearer(info["registration_access_token"])
    ).to_dict()


def delete(op: Provider, info: dict[str, Any]) -> None:
    op.handle_client_delete_request(info["client_id"], bearer(info["registration_access_token"]))


def assertion(client_id: str, key: Any, now: float, aud: str = ISSUER) -> str:
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": int(now) + 60,
              "iat": int(now), "jti": secrets.token_urlsafe(16)}
    if isinstance(key, str):  # client_secret_jwt
        import hashlib
        import hmac

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = b64(json.dumps({"alg": "HS256"}).encode()) + "." + b64(
            json.dumps(claims).encode())
        mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64(mac)
    return jws_sign(claims, key, {"typ": "JWT"})


def assertion_params(client_id: str, key: Any, now: float, aud: str = ISSUER
                     ) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": assertion(client_id, key, now, aud)}


def client_credentials(op: Provider, params: dict[str, str],
                       headers: Optional[dict[str, str]] = None, scope: Optional[str] = None
                       ) -> dict[str, Any]:
    body = {"grant_type": "client_credentials", **params}
    if scope is not None:
        body["scope"] = scope
    return op.handle_token_request(urlencode(body), headers).to_dict()


def introspect(op: Provider, token: str, params: dict[str, str],
               headers: Optional[dict[str, str]] = None) -> dict[str, Any]:
    return op.handle_introspection_request(urlencode({"token": token, **params}),
                                           headers).to_dict()


def user_access_token(op: Provider, client_id: str, scope: str = "openid profile email"
                      ) -> str:
    query = urlencode({"response_type": "code", "client_id": client_id,
                       "redirect_uri": WEB_URI, "scope": scope, "nonce": "n"})
    authn_req = op.parse_authentication_request(query)
    code = op.authorize(authn_req, USER_ID)["code"]
    record = op.authz_state.get_authorization_code(code)
    access_token, _ = op.authz_state.redeem_authorization_code(code, record)
    return access_token.value


def jwt_payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# -- RFC 7592 update of JWT-authenticated clients ----------------------------------------------

def test_update_to_private_key_jwt_needs_keys(op: Provider) -> None:
    info = register(op)
    with pytest.raises(InvalidClientRegistrationRequest) as error:
        update(op, info, token_endpoint_auth_method="private_key_jwt")
    assert error.value.oauth_error == "invalid_client_metadata"
    assert op.clients[info["client_id"]]["token_endpoint_auth_method"] == "client_secret_basic"


def test_update_of_private_key_jwt_checks_the_signing_alg_family(
        op: Provider, client_keys: tuple[SigningKey, SigningKey]) -> None:
    jwks = {"keys": [client_keys[0].to_jwk()]}
    info = register(op, token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    for alg in ("HS256", "none"):
        with pytest.raises(InvalidClientRegistrationRequest) as error:
            update(op, info, token_endpoint_auth_signing_alg=alg)
        assert error.value.oauth_error == "invalid_client_metadata"
    with pytest.raises(InvalidClientRegistrationRequest):
        update(op, info, jwks=None)  # private_key_jwt without keys
    assert update(op, info, token_endpoint_auth_signing_alg="RS256")[
        "token_endpoint_auth_signing_alg"] == "RS256"


def test_update_to_client_secret_jwt_refused_with_hashed_secrets(
        make_provider: Callable[..., Provider]) -> None:
    op = make_provider(config=hashed_config(), client_db=MemoryStorage(),
                       hash_client_secrets=True)
    info = register(op)
    with pytest.raises(InvalidClientRegistrationRequest) as error:
        update(op, info, token_endpoint_auth_method="client_secret_jwt")
    assert error.value.oauth_error == "invalid_client_metadata"
    stored = op.clients[info["client_id"]]
    assert stored["token_endpoint_auth_method"] == "client_secret_basic"
    assert "client_secret_hash" in stored


def test_update_to_private_key_jwt_drops_the_secret(
        op: Provider, clock: FakeClock, client_keys: tuple[SigningKey, SigningKey]) -> None:
    info = register(op, grant_types=["authorization_code", "client_credentials"])
    secret = info["client_secret"]
    updated = update(op, info, token_endpoint_auth_method="private_key_jwt",
                     jwks={"keys": [client_keys[0].to_jwk()]}, client_secret=None,
                     client_secret_expires_at=None)
    assert "client_secret" not in updated
    stored = op.clients[info["client_id"]]
    assert not {"client_secret", "client_secret_hash", "client_secret_expires_at"} & set(stored)
    with pytest.raises(InvalidClientAuthentication):
        client_credentials(op, {}, basic(info["client_id"], secret))
    granted = client_credentials(op, assertion_params(info["client_id"], client_keys[0],
                                                      clock()))
    assert granted["access_token"]


def test_update_to_client_secret_jwt_issues_a_512_bit_secret(op: Provider,
                                                             clock: FakeClock) -> None:
    """The secret of a client_secret_jwt client is an HS512 key (RFC 7518 3.2): a client
    moving to the method from client_secret_basic gets a new, long enough, secret."""
    info = register(op, grant_types=["authorization_code", "client_credentials"])
    old_secret = info["client_secret"]
    updated = update(op, info, token_endpoint_auth_method="client_secret_jwt")
    new_secret = updated.get("client_secret")
    assert new_secret is not None and new_secret != old_secret
    assert len(base64.urlsafe_b64decode(new_secret + "==")) * 8 >= 512
    assert client_credentials(op, assertion_params(info["client_id"], new_secret, clock()))
    with pytest.raises(InvalidClientAuthentication):
        client_credentials(op, assertion_params(info["client_id"], old_secret, clock()))


def test_update_from_private_key_jwt_to_client_secret_jwt_issues_a_512_bit_secret(
        op: Provider, client_keys: tuple[SigningKey, SigningKey]) -> None:
    info = register(op, token_endpoint_auth_method="private_key_jwt",
                    jwks={"keys": [client_keys[0].to_jwk()]})
    updated = update(op, info, token_endpoint_auth_method="client_secret_jwt", jwks=None)
    assert len(base64.urlsafe_b64decode(updated["client_secret"] + "==")) * 8 >= 512


def test_update_of_jwks_uri_forgets_the_cached_document(
        op: Provider, fetcher: Fetcher, clock: FakeClock,
        client_keys: tuple[SigningKey, SigningKey]) -> None:
    """A client that removed a key from its jwks_uri document and told the provider with an
    update request (RFC 7592 2.2) is no longer accepted with it, not even for the rest of
    the 5 minutes the document is cached."""
    old_key, new_key = client_keys
    fetcher.keys = [old_key]
    info = register(op, token_endpoint_auth_method="private_key_jwt", jwks_uri=JWKS_URI,
                    grant_types=["authorization_code", "client_credentials"])
    client_id = info["client_id"]
    assert client_credentials(op, assertion_params(client_id, old_key, clock()))
    fetcher.keys = [new_key]
    update(op, info, client_name="rotated")
    clock.advance(1)
    with pytest.raises(InvalidClientAuthentication):
        client_credentials(op, assertion_params(client_id, old_key, clock()))
    assert client_credentials(op, assertion_params(client_id, new_key, clock()))


def test_removed_key_of_jwks_uri_refused_after_the_documented_cache_time(
        op: Provider, fetcher: Fetcher, clock: FakeClock,
        client_keys: tuple[SigningKey, SigningKey]) -> None:
    old_key, new_key = client_keys
    fetcher.keys = [old_key]
    info = register(op, token_endpoint_auth_method="private_key_jwt", jwks_uri=JWKS_URI,
                    grant_types=["authorization_code", "client_credentials"])
    assert client_credentials(op, assertion_params(info["client_id"], old_key, clock()))
    fetcher.keys = [new_key]
    clock.advance(5 * 60)
    with pytest.raises(InvalidClientAuthentication):
        client_credentials(op, assertion_params(info["client_id"], old_key, clock()))


# -- signing algs and allow-lists through updates ------------------------------------------------

@pytest.mark.parametrize("member", ["id_token_signed_response_alg",
                                    "userinfo_signed_response_alg"])
@pytest.mark.parametrize("alg", ["none", "ES512", "HS256"])
def test_update_of_signing_alg_is_checked_against_the_keys(op: Provider, member: str,
                                                           alg: str) -> None:
    info = register(op)
    with pytest.raises(InvalidClientRegistrationRequest) as error:
        update(op, info, **{member: alg})
    assert error.value.oauth_error == "invalid_client_metadata"
    assert member not in op.clients[info["client_id"]]
    assert update(op, info, **{member: "ES256"})[member] == "ES256"


def test_scope_update_applies_to_new_requests_and_existing_tokens(op: Provider) -> None:
    info = register(op, scope="openid profile email")
    client_id = info["client_id"]
    token = user_access_token(op, client_id)
    assert "email" in op.handle_userinfo_request(None, bearer(token)).to_dict()
    update(op, info, scope="openid profile")
    claims = op.handle_userinfo_request(None, bearer(token)).to_dict()
    assert "email" not in claims and claims["name"]
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": WEB_URI,
                       "scope": "openid email profile", "nonce": "n"})
    assert op.parse_authentication_request(query)["scope"] == ["openid", "profile"]


# -- client_credentials with allow-lists and JWT authentication ----------------------------------

def test_client_credentials_bounded_by_the_scope_allow_list(op: Provider) -> None:
    info = register(op, grant_types=["authorization_code", "client_credentials"],
                    scope="openid api")
    headers = basic(info["client_id"], info["client_secret"])
    assert client_credentials(op, {}, headers, scope="api admin openid")["scope"] == "api"
    assert client_credentials(op, {}, headers)["scope"] == "api"
    with pytest.raises(InvalidTokenRequest) as error:
        client_credentials(op, {}, headers, scope="admin openid offline_access")
    assert error.value.oauth_error == "invalid_scope"
    update(op, info, scope="openid admin")
    assert client_credentials(op, {}, headers, scope="api admin")["scope"] == "admin"


def test_client_credentials_token_never_reaches_signed_userinfo(op: Provider) -> None:
    info = register(op, grant_types=["authorization_code", "client_credentials"],
                    userinfo_signed_response_alg="ES256")
    token = client_credentials(op, {}, basic(info["client_id"], info["client_secret"]),
                               scope="api")["access_token"]
    with pytest.raises(TokenWithoutEndUser):
        op.handle_userinfo_request(None, bearer(token))


@pytest.mark.parametrize("method", ["client_secret_jwt", "private_key_jwt"])
def test_introspection_and_revocation_with_endpoint_audience(
        make_provider: Callable[..., Provider], clock: FakeClock,
        client_keys: tuple[SigningKey, SigningKey], method: str) -> None:
    op = make_provider(config=config(), client_db=MemoryStorage(),
                       client_assertion_audiences="issuer-or-endpoint")
    metadata: dict[str, Any] = {"token_endpoint_auth_method": method,
                                "grant_types": ["authorization_code", "client_credentials"]}
    if method == "private_key_jwt":
        metadata["jwks"] = {"keys": [client_keys[0].to_jwk()]}
    info = register(op, **metadata)
    client_id = info["client_id"]
    key: Any = info.get("client_secret") or client_keys[0]
    token = client_credentials(op, assertion_params(client_id, key, clock(), TOKEN_ENDPOINT),
                               scope="api")["access_token"]
    answer = introspect(op, token, assertion_params(client_id, key, clock(),
                                                    INTROSPECTION_ENDPOINT))
    assert answer["active"] is True and answer["client_id"] == client_id
    assert "sub" not in answer and answer["scope"] == "api"
    # the audience of one endpoint is not accepted at another
    with pytest.raises(InvalidClientAuthentication):
        introspect(op, token, assertion_params(client_id, key, clock(), REVOCATION_ENDPOINT))
    op.handle_revocation_request(urlencode({"token": token, **assertion_params(
        client_id, key, clock(), REVOCATION_ENDPOINT)}))
    assert introspect(op, token, assertion_params(client_id, key, clock()))["active"] is False


def test_deleted_clients_client_credentials_token(op: Provider) -> None:
    info = register(op, grant_types=["authorization_code", "client_credentials"])
    other = register(op, grant_types=["authorization_code", "client_credentials"])
    headers = basic(info["client_id"], info["client_secret"])
    token = client_credentials(op, {}, headers, scope="api")["access_token"]
    delete(op, info)
    with pytest.raises(InvalidClientAuthentication):
        introspect(op, token, {}, headers)
    answer = introspect(op, token, {}, basic(other["client_id"], other["client_secret"]))
    assert answer == {"active": False}


def test_assertion_replay_with_sealed_codes(make_provider: Callable[..., Provider],
                                            clock: FakeClock) -> None:
    codes = StatelessWrapper("codes", secrets.token_bytes(32), clock=clock)
    op = make_provider(config=config(), client_db=MemoryStorage(),
                       authz_kwargs={"authorization_code_db": codes})
    info = register(op, token_endpoint_auth_method="client_secret_jwt",
                    grant_types=["authorization_code", "client_credentials"])
    params = assertion_params(info["client_id"], info["client_secret"], clock())
    assert client_credentials(op, params)["access_token"]
    with pytest.raises(InvalidClientAuthentication) as error:
        client_credentials(op, params)
    assert "already used" in str(error.value)


def test_cached_client_authenticates_with_keys_updated_in_process(
        make_provider: Callable[..., Provider], clock: FakeClock,
        client_keys: tuple[SigningKey, SigningKey]) -> None:
    op = make_provider(config=config(), client_db=MemoryStorage(), client_cache_ttl=600)
    old_key, new_key = client_keys
    info = register(op, token_endpoint_auth_method="private_key_jwt",
                    jwks={"keys": [old_key.to_jwk()]},
                    grant_types=["authorization_code", "client_credentials"])
    client_id = info["client_id"]
    assert client_credentials(op, assertion_params(client_id, old_key, clock()))
    update(op, info, jwks={"keys": [new_key.to_jwk()]})
    assert client_credentials(op, assertion_params(client_id, new_key, clock()))
    with pytest.raises(InvalidClientAuthentication):
        client_credentials(op, assertion_params(client_id, old_key, clock()))


# -- signed UserInfo and allowed_claims ---------------------------------------------------------

def test_signed_userinfo_holds_only_allowed_claims(op: Provider, es256: SigningKey) -> None:
    info = register(op, userinfo_signed_response_alg="ES256")
    client_id = info["client_id"]
    stored = dict(op.clients[client_id])
    stored["allowed_claims"] = ["email"]
    op.clients[client_id] = stored
    op.client_changed(client_id)
    token = user_access_token(op, client_id)
    response = op.handle_userinfo_request(None, bearer(token))
    assert response.content_type == "application/jwt"
    jwt = response.to_body()
    keys = verification_keys(op.jwks["keys"], "ES256")
    claims = jws_verify(jwt, keys)
    assert claims["iss"] == ISSUER and claims["aud"] == client_id
    assert claims["email"] and claims["sub"]
    assert "name" not in claims and "family_name" not in claims
    assert jwt_payload(jwt) == claims


# -- discovery consistent with registration ----------------------------------------------------

def test_a_client_can_register_what_discovery_advertises(
        op: Provider, client_keys: tuple[SigningKey, SigningKey]) -> None:
    published = op.provider_configuration.to_dict()
    methods = published["token_endpoint_auth_methods_supported"]
    assert set(methods) == {"client_secret_basic", "client_secret_post", "client_secret_jwt",
                            "private_key_jwt", "none"}
    jwks = {"keys": [client_keys[0].to_jwk()]}
    for method in methods:
        metadata: dict[str, Any] = {"token_endpoint_auth_method": method}
        if method == "private_key_jwt":
            metadata["jwks"] = jwks
        register(op, **metadata)
    for alg in published["token_endpoint_auth_signing_alg_values_supported"]:
        method = "client_secret_jwt" if alg.startswith("HS") else "private_key_jwt"
        register(op, token_endpoint_auth_method=method, token_endpoint_auth_signing_alg=alg,
                 **({"jwks": jwks} if method == "private_key_jwt" else {}))
    for member, published_name in (
            ("id_token_signed_response_alg", "id_token_signing_alg_values_supported"),
            ("userinfo_signed_response_alg", "userinfo_signing_alg_values_supported")):
        assert published[published_name] == ["RS256", "ES256"]
        for alg in published[published_name]:
            register(op, **{member: alg})
    assert "client_credentials" in published["grant_types_supported"]
    register(op, grant_types=["authorization_code", "client_credentials"])


def test_client_credentials_is_advertised_only_when_configured(
        make_provider: Callable[..., Provider]) -> None:
    values = config()
    del values["grant_types_supported"]
    op = make_provider(config=values, client_db=MemoryStorage())
    assert "client_credentials" not in op.provider_configuration["grant_types_supported"]
    registered = register(op, grant_types=["authorization_code", "client_credentials"])
    assert registered["grant_types"] == ["authorization_code"]  # dropped, as in pyop 3
    with pytest.raises(InvalidClientRegistrationRequest):
        register(make_provider(config=values, client_db=MemoryStorage(),
                               strict_client_preferences=True),
                 grant_types=["authorization_code", "client_credentials"])


def test_discovery_with_hashed_secrets(make_provider: Callable[..., Provider]) -> None:
    op = make_provider(config=hashed_config(), client_db=MemoryStorage(),
                       hash_client_secrets=True)
    published = op.provider_configuration.to_dict()
    assert "client_secret_jwt" not in published["token_endpoint_auth_methods_supported"]
    assert not any(alg.startswith("HS") for alg in
                   published["token_endpoint_auth_signing_alg_values_supported"])


@pytest.mark.parametrize("member,value", [
    ("token_endpoint_auth_methods_supported", ["client_secret_basic", "client_secret_jwt"]),
    ("token_endpoint_auth_signing_alg_values_supported", ["HS256", "RS256"]),
])
def test_hashed_secrets_cannot_advertise_client_secret_jwt(
        make_provider: Callable[..., Provider], member: str, value: list[str]) -> None:
    """Registration refuses client_secret_jwt with hashed secrets: discovery must not offer
    it (OIDC Discovery 3), nor its HMAC algorithms."""
    with pytest.raises(InvalidConfiguration) as error:
        make_provider(config=hashed_config(**{member: value}), client_db=MemoryStorage(),
                      hash_client_secrets=True)
    assert member in str(error.value)


def test_assertion_algs_of_a_method_not_offered_are_not_advertised(
        make_provider: Callable[..., Provider]) -> None:
    with pytest.raises(InvalidConfiguration) as error:
        make_provider(config=config(
            token_endpoint_auth_methods_supported=["client_secret_basic", "private_key_jwt"],
            token_endpoint_auth_signing_alg_values_supported=["RS256", "HS256"]),
            client_db=MemoryStorage())
    assert "token_endpoint_auth_signing_alg_values_supported" in str(error.value)


def hashed_secrets_op_with_a_secret_jwt_client(make_provider: Callable[..., Provider]
                                               ) -> Provider:
    """No registration endpoint, hashed secrets, and a hand-configured client_secret_jwt
    client "svc" whose secret is stored in clear."""
    values = config(token_endpoint_auth_methods_supported=["client_secret_basic",
                                                           "client_secret_jwt"])
    del values["registration_endpoint"]
    return make_provider(config=values, hash_client_secrets=True, client_db={"svc": {
        "client_id": "svc", "client_secret": secrets.token_urlsafe(64),
        "redirect_uris": [WEB_URI], "token_endpoint_auth_method": "client_secret_jwt",
        "grant_types": ["client_credentials"]}})


def test_without_registration_hand_configured_client_secret_jwt_with_hashed_secrets(
        make_provider: Callable[..., Provider], clock: FakeClock) -> None:
    """Without a registration_endpoint nothing is registered: a host storing hashed secrets
    may still offer client_secret_jwt to clients it configures with a secret in clear."""
    op = hashed_secrets_op_with_a_secret_jwt_client(make_provider)
    secret = op.clients["svc"]["client_secret"]
    assert "HS256" in op.provider_configuration[
        "token_endpoint_auth_signing_alg_values_supported"]
    assert client_credentials(op, assertion_params("svc", secret, clock()))["access_token"]


# -- deletion with the opt-in caches -------------------------------------------------------------

def test_deleted_client_is_gone_with_caches_on(
        make_provider: Callable[..., Provider], clock: FakeClock,
        client_keys: tuple[SigningKey, SigningKey]) -> None:
    op = make_provider(config=config(), client_db=MemoryStorage(), client_cache_ttl=600,
                       authz_kwargs={"subject_identifier_cache_ttl": 600})
    grants = ["authorization_code", "client_credentials"]
    registered = {
        "client_secret_basic": register(op, grant_types=grants),
        "client_secret_post": register(op, grant_types=grants,
                                       token_endpoint_auth_method="client_secret_post"),
        "client_secret_jwt": register(op, grant_types=grants,
                                      token_endpoint_auth_method="client_secret_jwt"),
        "private_key_jwt": register(op, grant_types=grants,
                                    token_endpoint_auth_method="private_key_jwt",
                                    jwks={"keys": [client_keys[0].to_jwk()]}),
    }

    def credentials(method: str, info: dict[str, Any]) -> tuple[dict[str, str],
                                                               Optional[dict[str, str]]]:
        if method == "client_secret_basic":
            return {}, basic(info["client_id"], info["client_secret"])
        if method == "client_secret_post":
            return {"client_id": info["client_id"],
                    "client_secret": info["client_secret"]}, None
        key: Any = info["client_secret"] if method == "client_secret_jwt" else client_keys[0]
        return assertion_params(info["client_id"], key, clock()), None

    for method, info in registered.items():
        token = user_access_token(op, info["client_id"])  # caches client and subject
        assert op.handle_userinfo_request(None, bearer(token))["sub"]
        assert client_credentials(op, *credentials(method, info), scope="api")
        delete(op, info)
        with pytest.raises(InvalidClientAuthentication):
            client_credentials(op, *credentials(method, info), scope="api")
        with pytest.raises(InvalidClientId):
            user_access_token(op, info["client_id"])
        with pytest.raises(InvalidAccessToken):
            op.handle_userinfo_request(None, bearer(token))


def test_deleted_clients_client_credentials_token_at_userinfo(op: Provider) -> None:
    """A token of a deleted client is dead at UserInfo (401 ``invalid_token``, RFC 6750
    3.1), whatever grant issued it: a 403 would tell that it had been valid."""
    info = register(op, grant_types=["authorization_code", "client_credentials"])
    token = client_credentials(op, {}, basic(info["client_id"], info["client_secret"]),
                               scope="api")["access_token"]
    with pytest.raises(TokenWithoutEndUser):
        op.handle_userinfo_request(None, bearer(token))
    delete(op, info)
    with pytest.raises(InvalidAccessToken) as error:
        op.handle_userinfo_request(None, bearer(token))
    assert error.value.http_status == 401


def test_rotating_a_client_secret_jwt_secret_with_hashed_secrets_is_refused(
        make_provider: Callable[..., Provider], clock: FakeClock) -> None:
    """A client_secret_jwt client keeps working: its secret is its HMAC key, which a
    stored hash cannot check (RFC 7523 3, OIDC Core 9)."""
    op = hashed_secrets_op_with_a_secret_jwt_client(make_provider)
    secret = op.clients["svc"]["client_secret"]
    with pytest.raises(ValueError, match="client_secret_jwt"):
        op.rotate_client_secret("svc")
    assert op.clients["svc"]["client_secret"] == secret
    assert client_credentials(op, assertion_params("svc", secret, clock()))["access_token"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post",
                                    "client_secret_jwt", "private_key_jwt", "none"])
def test_read_then_update_with_the_same_metadata_changes_nothing(
        op: Provider, method: str, client_keys: tuple[SigningKey, SigningKey]) -> None:
    metadata: dict[str, Any] = {"token_endpoint_auth_method": method, "scope": "openid api",
                                "userinfo_signed_response_alg": "ES256",
                                "id_token_signed_response_alg": "ES256"}
    if method == "private_key_jwt":
        metadata.update(jwks={"keys": [client_keys[0].to_jwk()]},
                        token_endpoint_auth_signing_alg="RS256")
    info = register(op, **metadata)
    before = dict(op.clients[info["client_id"]])
    read = op.handle_client_read_request(
        info["client_id"], bearer(info["registration_access_token"])).to_dict()
    updated = update(op, read)
    assert op.clients[info["client_id"]] == before
    assert updated.get("client_secret") == info.get("client_secret")


def test_introspection_applies_the_scope_allow_list_as_it_is_now(op: Provider) -> None:
    """Narrowing a client's ``scope`` takes effect for the tokens it holds, at UserInfo
    and at introspection alike: the answer names what the token is good for now."""
    info = register(op, grant_types=["authorization_code", "client_credentials"],
                    scope="openid profile email api admin")
    headers = basic(info["client_id"], info["client_secret"])
    service_token = client_credentials(op, {}, headers, scope="api admin")["access_token"]
    user_token = user_access_token(op, info["client_id"])
    assert introspect(op, user_token, {}, headers)["scope"] == "openid profile email"
    update(op, info, scope="openid profile api")
    assert introspect(op, service_token, {}, headers)["scope"] == "api"
    assert introspect(op, user_token, {}, headers)["scope"] == "openid profile"
    assert "email" not in op.handle_userinfo_request(None, bearer(user_token)).to_dict()


def test_client_credentials_never_grants_openid_or_offline_access_even_if_allowed(
        make_provider: Callable[..., Provider]) -> None:
    """No end-user, so no ``openid`` and no refresh token (RFC 6749 4.4.3), even for a
    client whose ``scope`` allow-list holds both."""
    op = make_provider(config=config(), client_db=MemoryStorage(),
                       authz_kwargs={"refresh_token_lifetime": 3600})
    info = register(op, grant_types=["authorization_code", "refresh_token",
                                     "client_credentials"],
                    scope="openid offline_access api")
    headers = basic(info["client_id"], info["client_secret"])
    granted = client_credentials(op, {}, headers, scope="openid offline_access api")
    assert granted["scope"] == "api" and "refresh_token" not in granted
    assert client_credentials(op, {}, headers)["scope"] == "api"
    with pytest.raises(InvalidTokenRequest) as error:
        client_credentials(op, {}, headers, scope="openid offline_access")
    assert error.value.oauth_error == "invalid_scope"
