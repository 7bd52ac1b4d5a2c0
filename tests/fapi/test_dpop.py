"""DPoP (RFC 9449): the MUSTs of sections 4-7, 10 and 11, and the attacks they stop, on
in-memory and on sealed (stateless) storage."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    USER_ID,
    FakeClock,
    configuration,
)
from conftest import clients as default_clients

from pyop.crypto import b64url_encode
from pyop.dpop import (
    DEFAULT_DPOP_SIGNING_ALGS,
    DPoPSettings,
    TimeBasedDPoPNonces,
    normalize_htu,
)
from pyop.exceptions import (
    DPoPTokenError,
    InvalidAuthenticationRequest,
    InvalidAuthorizationCode,
    InvalidConfiguration,
    InvalidDPoPProof,
    InvalidPushedAuthorizationRequest,
    InvalidRefreshToken,
    UseDPoPNonce,
)
from pyop.provider import Provider
from pyop.storage import StatelessWrapper

from .dpop_keys import DPoPKey, make_jws

TOKEN_URL = ISSUER + "/token"
USERINFO_URL = ISSUER + "/userinfo"
PUBLIC_REDIRECT = "http://127.0.0.1:8765/cb"
VERIFIER = "v" * 43
CHALLENGE = b64url_encode(hashlib.sha256(VERIFIER.encode()).digest())
DPOP_CLIENT_ID = "dpop-client"


def dpop_configuration(**extra: Any) -> dict[str, Any]:
    config = configuration()
    config["dpop_signing_alg_values_supported"] = list(DEFAULT_DPOP_SIGNING_ALGS)
    config["introspection_endpoint"] = ISSUER + "/introspect"
    config["grant_types_supported"] = ["authorization_code", "implicit", "client_credentials"]
    config.update(extra)
    return config


def configuration_without_dpop() -> dict[str, Any]:
    config = configuration()
    del config["dpop_signing_alg_values_supported"]
    return config


def dpop_clients() -> dict[str, Any]:
    db = default_clients()
    db[CLIENT_ID]["grant_types"] = ["authorization_code", "refresh_token",
                                    "client_credentials"]
    db[DPOP_CLIENT_ID] = dict(db[CLIENT_ID], client_id=DPOP_CLIENT_ID,
                              dpop_bound_access_tokens=True)
    return db


def sealed_stores(clock: FakeClock) -> dict[str, Any]:
    secret = "s" * 32
    return {name: StatelessWrapper(name, secret, clock=clock)
            for name in ("authorization_code_db", "access_token_db", "refresh_token_db",
                         "subject_identifier_db")}


@pytest.fixture(params=["memory", "stateless"])
def storage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_dpop_provider(make_provider: Callable[..., Provider], clock: FakeClock,
                       storage: str) -> Callable[..., Provider]:
    def factory(*, config: Optional[dict[str, Any]] = None, authz: Any = None,
                **kwargs: Any) -> Provider:
        authz_kwargs = {"refresh_token_lifetime": 3600, **(authz or {})}
        if storage == "stateless":
            authz_kwargs.update(sealed_stores(clock))
        return make_provider(config=config or dpop_configuration(), client_db=dpop_clients(),
                             authz_kwargs=authz_kwargs, **kwargs)

    return factory


@pytest.fixture
def provider(make_dpop_provider: Callable[..., Provider]) -> Provider:
    return make_dpop_provider()


@pytest.fixture
def key() -> DPoPKey:
    return DPoPKey()


def basic(client_id: str = CLIENT_ID) -> dict[str, str]:
    raw = f"{client_id}:{CLIENT_SECRET}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def code_for(provider: Provider, client_id: str = CLIENT_ID, **extra: str) -> str:
    public = client_id == PUBLIC_CLIENT_ID
    params = {"client_id": client_id, "redirect_uri": PUBLIC_REDIRECT if public else REDIRECT_URI,
              "response_type": "code", "scope": "openid profile offline_access",
              "prompt": "consent", "nonce": "n", "state": "s", **extra}
    if public:
        params.update(code_challenge=CHALLENGE, code_challenge_method="S256")
    request = provider.parse_authentication_request(urlencode(params))
    return str(provider.authorize(request, USER_ID)["code"])


def token_request(provider: Provider, body: dict[str, str], proof: Optional[str] = None,
                  client_id: str = CLIENT_ID, headers: Any = None, **kwargs: Any) -> Any:
    if headers is None:
        headers = {} if client_id == PUBLIC_CLIENT_ID else basic(client_id)
        if proof is not None:
            headers["DPoP"] = proof
    if client_id == PUBLIC_CLIENT_ID:
        body = dict(body, client_id=PUBLIC_CLIENT_ID)
    return provider.handle_token_request(urlencode(body), headers, **kwargs).to_dict()


def exchange(provider: Provider, key: Optional[DPoPKey], clock: FakeClock,
             client_id: str = CLIENT_ID, code: Optional[str] = None, **kwargs: Any) -> Any:
    code = code or code_for(provider, client_id)
    public = client_id == PUBLIC_CLIENT_ID
    body = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": PUBLIC_REDIRECT if public else REDIRECT_URI}
    if public:
        body["code_verifier"] = VERIFIER
    proof = key.proof("POST", TOKEN_URL, clock()) if key is not None else None
    return token_request(provider, body, proof, client_id, **kwargs)


def userinfo(provider: Provider, token: str, proof: Optional[str], scheme: str = "DPoP",
             method: str = "GET", url: Optional[str] = None) -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return provider.handle_userinfo_request("", headers, http_method=method,
                                            http_url=url).to_dict()


def introspect(provider: Provider, token: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(provider.handle_introspection_request(
        urlencode({"token": token}), basic()).to_json())
    return result


# -- RFC 9449 5, 6: bound tokens --------------------------------------------------------------


def test_rfc9449_5_token_type_dpop_and_cnf_jkt(provider: Provider, key: DPoPKey,
                                               clock: FakeClock) -> None:
    response = exchange(provider, key, clock)
    assert response["token_type"] == "DPoP"
    # RFC 9449 6.2: introspection reports the binding
    info = introspect(provider, response["access_token"])
    assert info["active"] is True
    assert info["token_type"] == "DPoP"
    assert info["cnf"] == {"jkt": key.jkt}
    # RFC 9449 7: the bound token works with a proof of the key
    claims = userinfo(provider, response["access_token"],
                      key.proof("GET", USERINFO_URL, clock(),
                                access_token=response["access_token"]))
    assert claims["sub"]


def test_rfc9449_6_1_jkt_is_rfc7638_thumbprint(provider: Provider, clock: FakeClock) -> None:
    # RFC 7638 3.1's example key and thumbprint
    key = DPoPKey("RSA", "PS256")
    response = exchange(provider, key, clock)
    members = {"e": key.jwk["e"], "kty": "RSA", "n": key.jwk["n"]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"),
                                       sort_keys=True).encode()).digest()
    assert introspect(provider, response["access_token"])["cnf"]["jkt"] == b64url_encode(digest)


@pytest.mark.parametrize("kind,alg", [("EC", "ES256"), ("RSA", "PS256"), ("OKP", "EdDSA"),
                                      ("OKP", "Ed25519")])
def test_rfc9449_5_each_default_alg_binds(provider: Provider, clock: FakeClock, kind: str,
                                          alg: str) -> None:
    key = DPoPKey(kind, alg)
    assert exchange(provider, key, clock)["token_type"] == "DPoP"


def test_rfc9449_5_without_proof_a_bearer_token(provider: Provider, clock: FakeClock) -> None:
    response = exchange(provider, None, clock)
    assert response["token_type"] == "Bearer"
    assert "cnf" not in introspect(provider, response["access_token"])
    assert userinfo(provider, response["access_token"], None, "Bearer")["sub"]


def test_rfc9449_5_client_credentials_token_bound(provider: Provider, key: DPoPKey,
                                                  clock: FakeClock) -> None:
    response = token_request(provider, {"grant_type": "client_credentials"},
                             key.proof("POST", TOKEN_URL, clock()))
    assert response["token_type"] == "DPoP"
    assert introspect(provider, response["access_token"])["cnf"] == {"jkt": key.jkt}


def test_dpop_disabled_by_default_header_ignored(make_provider: Callable[..., Provider],
                                                 key: DPoPKey, clock: FakeClock) -> None:
    # pyop 3 ignored the header: without dpop_signing_alg_values_supported, so does this
    provider = make_provider(config=configuration_without_dpop(), client_db=dpop_clients())
    assert "dpop_signing_alg_values_supported" not in provider.provider_configuration
    response = exchange(provider, key, clock)
    assert response["token_type"] == "Bearer"


def test_rfc9449_5_1_discovery_lists_algs(provider: Provider) -> None:
    published = provider.provider_configuration.to_dict()
    assert published["dpop_signing_alg_values_supported"] == [
        "ES256", "PS256", "EdDSA", "Ed25519"]


@pytest.mark.parametrize("algs", [["HS256"], ["none"], [], "ES256", ["ES256", 7]])
def test_rfc9449_5_1_only_asymmetric_algs_configurable(make_provider: Callable[..., Provider],
                                                       algs: Any) -> None:
    with pytest.raises(InvalidConfiguration, match="dpop_signing_alg_values_supported"):
        make_provider(config=dpop_configuration(dpop_signing_alg_values_supported=algs))


# -- RFC 9449 4.3: proof checks at the token endpoint -------------------------------------------


def refused(provider: Provider, clock: FakeClock, proof: Any, match: Optional[str] = None,
            headers: Any = None, **kwargs: Any) -> InvalidDPoPProof:
    with pytest.raises(InvalidDPoPProof, match=match) as info:
        exchange(provider, None, clock, headers=headers or dict(basic(), DPoP=proof), **kwargs)
    assert info.value.oauth_error in ("invalid_dpop_proof", "use_dpop_nonce")
    assert info.value.http_status == 400
    return info.value


def test_rfc9449_4_3_1_one_dpop_header_only(provider: Provider, key: DPoPKey,
                                            clock: FakeClock) -> None:
    headers = [*basic().items(), ("DPoP", key.proof("POST", TOKEN_URL, clock())),
               ("dpop", key.proof("POST", TOKEN_URL, clock()))]
    refused(provider, clock, None, "more than one", headers=headers)
    # as WSGI servers join repeated headers
    joined = key.proof("POST", TOKEN_URL, clock()) + ", " + key.proof("POST", TOKEN_URL, clock())
    refused(provider, clock, joined, "well-formed")


@pytest.mark.parametrize("proof", ["", "abc", "a.b", "a.b.c", "x" * 9000,
                                   "eyJhbGciOiJFUzI1NiJ9.e30.e30.e30"])
def test_rfc9449_4_3_2_not_a_jwt(provider: Provider, clock: FakeClock, proof: str) -> None:
    refused(provider, clock, proof)


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", 5])
def test_rfc9449_4_3_4_typ_dpop_jwt(provider: Provider, key: DPoPKey, clock: FakeClock,
                                    typ: Any) -> None:
    header = {} if typ is None else {"typ": typ}
    drop = ("typ",) if typ is None else ()
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock(), header=header, drop=drop),
            "typ")


def test_rfc9449_4_3_4_typ_media_type_form_accepted(provider: Provider, key: DPoPKey,
                                                    clock: FakeClock) -> None:
    proof = key.proof("POST", TOKEN_URL, clock(), header={"typ": "application/dpop+jwt"})
    assert exchange(provider, None, clock, headers=dict(basic(), DPoP=proof))[
        "token_type"] == "DPoP"


def test_rfc9449_4_3_5_alg_none_refused(provider: Provider, key: DPoPKey,
                                        clock: FakeClock) -> None:
    claims = {"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": clock()}
    proof = make_jws({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}, claims, None)
    refused(provider, clock, proof, "alg")


def test_rfc9449_4_3_5_symmetric_alg_refused(provider: Provider, clock: FakeClock) -> None:
    import hmac as hmac_module

    secret = b"k" * 32
    jwk = {"kty": "oct", "k": b64url_encode(secret)}
    claims = {"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": clock()}
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}
    signing_input = make_jws(header, claims, None)[:-1]
    signature = hmac_module.new(secret, signing_input.encode(), hashlib.sha256).digest()
    refused(provider, clock, signing_input + "." + b64url_encode(signature), "alg")


def test_rfc9449_4_3_5_alg_outside_configured_list_refused(provider: Provider,
                                                           clock: FakeClock) -> None:
    key = DPoPKey("RSA", "RS256")  # asymmetric, but not in the configured list
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock()), "alg")


def test_rfc9449_4_3_6_signature_by_another_key_refused(provider: Provider, key: DPoPKey,
                                                        clock: FakeClock) -> None:
    other = DPoPKey()
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock(), signer=other.key),
            "signature")


def test_rfc9449_4_3_6_tampered_claims_refused(provider: Provider, key: DPoPKey,
                                               clock: FakeClock) -> None:
    proof = key.proof("POST", ISSUER + "/other", clock())
    head, _, signature = proof.split(".")
    forged = b64url_encode(json.dumps({"jti": "j", "htm": "POST", "htu": TOKEN_URL,
                                       "iat": clock()}).encode())
    refused(provider, clock, f"{head}.{forged}.{signature}", "signature")


@pytest.mark.parametrize("member", ["d", "p", "k"])
def test_rfc9449_4_3_7_private_key_in_jwk_refused(provider: Provider, key: DPoPKey,
                                                  clock: FakeClock, member: str) -> None:
    jwk = dict(key.jwk, **{member: b64url_encode(b"\x01" * 32)})
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock(), header={"jwk": jwk}), "jwk")


@pytest.mark.parametrize("jwk", [None, "a-string", {"kty": "EC"}, {"kty": "weird"}])
def test_rfc9449_4_3_3_jwk_required_and_valid(provider: Provider, key: DPoPKey,
                                              clock: FakeClock, jwk: Any) -> None:
    drop = ("jwk",) if jwk is None else ()
    header = {} if jwk is None else {"jwk": jwk}
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock(), header=header, drop=drop),
            "jwk")


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_rfc9449_4_3_3_required_claims(provider: Provider, key: DPoPKey, clock: FakeClock,
                                       claim: str) -> None:
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock(), drop=(claim,)), claim)


@pytest.mark.parametrize("method", ["GET", "post", "PUT"])
def test_rfc9449_4_3_8_proof_for_another_method_refused(provider: Provider, key: DPoPKey,
                                                        clock: FakeClock, method: str) -> None:
    refused(provider, clock, key.proof(method, TOKEN_URL, clock()), "htm")


@pytest.mark.parametrize("htu", [ISSUER + "/userinfo", "https://evil.example.com/token",
                                 "http://op.example.com/token", ISSUER + "/token/x",
                                 "https://op.example.com:8443/token", "token", 12])
def test_rfc9449_4_3_9_proof_for_another_url_refused(provider: Provider, key: DPoPKey,
                                                     clock: FakeClock, htu: Any) -> None:
    refused(provider, clock, key.proof("POST", htu, clock()), "htu")


@pytest.mark.parametrize("htu", [TOKEN_URL + "?a=b", TOKEN_URL + "#frag",
                                 "HTTPS://OP.EXAMPLE.COM/token", "https://op.example.com:443/token",
                                 "https://op.example.com/./token", "https://op.example.com/%74oken"])
def test_rfc9449_4_3_9_htu_compared_without_query_and_normalised(
        provider: Provider, key: DPoPKey, clock: FakeClock, htu: str) -> None:
    proof = key.proof("POST", htu, clock())
    assert exchange(provider, None, clock, headers=dict(basic(), DPoP=proof))[
        "token_type"] == "DPoP"


def test_rfc9449_4_3_9_host_describes_the_url(provider: Provider, key: DPoPKey,
                                              clock: FakeClock) -> None:
    alias = "https://mtls.op.example.com/token"
    proof = key.proof("POST", alias, clock())
    response = exchange(provider, None, clock, headers=dict(basic(), DPoP=proof),
                        http_url=alias + "?x=1")
    assert response["token_type"] == "DPoP"
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock()), "htu", http_url=alias)


@pytest.mark.parametrize("offset", [-61, 6, -3600, 3600])
def test_rfc9449_4_3_11_iat_window(provider: Provider, key: DPoPKey, clock: FakeClock,
                                   offset: int) -> None:
    refused(provider, clock, key.proof("POST", TOKEN_URL, clock() + offset), "iat")


@pytest.mark.parametrize("iat", ["1e400", "-1e400", "NaN", "true", '"1800000000"', "null"])
def test_rfc9449_4_3_11_iat_must_be_finite_number(provider: Provider, key: DPoPKey,
                                                  clock: FakeClock, iat: str) -> None:
    raw = '{"jti": "j1", "htm": "POST", "htu": "' + TOKEN_URL + '", "iat": ' + iat + "}"
    refused(provider, clock, make_jws({"typ": "dpop+jwt", "alg": key.alg, "jwk": key.jwk},
                                      raw, key.key), "iat")


def test_rfc9449_4_3_11_iat_within_window_accepted(provider: Provider, key: DPoPKey,
                                                   clock: FakeClock) -> None:
    for offset in (-59, 0, 4):
        proof = key.proof("POST", TOKEN_URL, clock() + offset)
        assert exchange(provider, None, clock, headers=dict(basic(), DPoP=proof))[
            "token_type"] == "DPoP"


def test_rfc9449_11_1_proof_replay_refused(provider: Provider, key: DPoPKey,
                                           clock: FakeClock) -> None:
    proof = key.proof("POST", TOKEN_URL, clock())
    assert exchange(provider, None, clock, headers=dict(basic(), DPoP=proof))[
        "token_type"] == "DPoP"
    refused(provider, clock, proof, "already used")
    # another jti of the same key is fine
    assert exchange(provider, key, clock)["token_type"] == "DPoP"


def test_rfc9449_11_1_replay_refused_until_window_ends(provider: Provider, key: DPoPKey,
                                                       clock: FakeClock) -> None:
    proof = key.proof("POST", TOKEN_URL, clock())
    exchange(provider, None, clock, headers=dict(basic(), DPoP=proof))
    clock.advance(59)
    refused(provider, clock, proof, "already used")
    clock.advance(2)
    refused(provider, clock, proof, "iat")  # too old: the jti record may go


def test_rfc9449_5_refused_proof_spends_nothing(provider: Provider, key: DPoPKey,
                                                clock: FakeClock) -> None:
    code = code_for(provider)
    refused(provider, clock, key.proof("GET", TOKEN_URL, clock()), code=code)
    assert exchange(provider, key, clock, code=code)["token_type"] == "DPoP"


def test_rfc9449_5_2_client_requiring_dpop_needs_proof(provider: Provider, key: DPoPKey,
                                                       clock: FakeClock) -> None:
    with pytest.raises(InvalidDPoPProof, match="dpop_bound_access_tokens"):
        exchange(provider, None, clock, client_id=DPOP_CLIENT_ID)
    assert exchange(provider, key, clock, client_id=DPOP_CLIENT_ID)["token_type"] == "DPoP"


# -- RFC 9449 5: refresh tokens -----------------------------------------------------------------


def refresh(provider: Provider, refresh_token: str, proof: Optional[str],
            client_id: str = CLIENT_ID) -> Any:
    return token_request(provider, {"grant_type": "refresh_token",
                                    "refresh_token": refresh_token}, proof, client_id)


def test_rfc9449_5_public_client_refresh_token_bound_to_key(provider: Provider, key: DPoPKey,
                                                            clock: FakeClock) -> None:
    first = exchange(provider, key, clock, client_id=PUBLIC_CLIENT_ID)
    other = DPoPKey()
    with pytest.raises(InvalidRefreshToken, match="bound"):
        refresh(provider, first["refresh_token"], other.proof("POST", TOKEN_URL, clock()),
                PUBLIC_CLIENT_ID)
    with pytest.raises(InvalidRefreshToken, match="bound"):
        refresh(provider, first["refresh_token"], None, PUBLIC_CLIENT_ID)
    second = refresh(provider, first["refresh_token"], key.proof("POST", TOKEN_URL, clock()),
                     PUBLIC_CLIENT_ID)
    assert second["token_type"] == "DPoP"
    assert provider.authz_state.introspect_access_token(second["access_token"])["cnf"] == {
        "jkt": key.jkt}
    # rotated (public client): the new refresh token keeps the binding
    with pytest.raises(InvalidRefreshToken, match="bound"):
        refresh(provider, second["refresh_token"], other.proof("POST", TOKEN_URL, clock()),
                PUBLIC_CLIENT_ID)
    third = refresh(provider, second["refresh_token"], key.proof("POST", TOKEN_URL, clock()),
                    PUBLIC_CLIENT_ID)
    assert third["token_type"] == "DPoP"


def test_rfc9449_5_confidential_client_refresh_token_not_bound(provider: Provider, key: DPoPKey,
                                                               clock: FakeClock) -> None:
    first = exchange(provider, key, clock)
    other = DPoPKey()
    second = refresh(provider, first["refresh_token"], other.proof("POST", TOKEN_URL, clock()))
    assert second["token_type"] == "DPoP"
    assert introspect(provider, second["access_token"])["cnf"] == {"jkt": other.jkt}
    assert refresh(provider, first["refresh_token"], None)["token_type"] == "Bearer"


# -- RFC 9449 10: dpop_jkt ----------------------------------------------------------------------


def test_rfc9449_10_dpop_jkt_binds_the_code(provider: Provider, key: DPoPKey,
                                            clock: FakeClock) -> None:
    code = code_for(provider, dpop_jkt=key.jkt)
    with pytest.raises(InvalidAuthorizationCode, match="dpop_jkt"):
        exchange(provider, DPoPKey(), clock, code=code)
    with pytest.raises(InvalidAuthorizationCode, match="dpop_jkt"):
        exchange(provider, None, clock, code=code)
    assert exchange(provider, key, clock, code=code)["token_type"] == "DPoP"


@pytest.mark.parametrize("value", ["short", "x" * 44, "a+b/" * 11])
def test_rfc9449_10_malformed_dpop_jkt_refused(provider: Provider, value: str) -> None:
    with pytest.raises(InvalidAuthenticationRequest, match="dpop_jkt") as info:
        code_for(provider, dpop_jkt=value)
    assert info.value.redirectable


# -- RFC 9449 7: UserInfo -----------------------------------------------------------------------


def bound_token(provider: Provider, key: DPoPKey, clock: FakeClock) -> str:
    return str(exchange(provider, key, clock)["access_token"])


def refused_at_userinfo(call: Callable[[], Any], error: str) -> DPoPTokenError:
    with pytest.raises(DPoPTokenError) as info:
        call()
    assert info.value.oauth_error == error
    assert info.value.http_status == 401
    challenge = info.value.headers["WWW-Authenticate"]
    assert challenge.startswith(f'DPoP error="{error}"')
    assert 'algs="ES256 PS256 EdDSA Ed25519"' in challenge
    return info.value


def test_rfc9449_7_2_bound_token_as_bearer_refused(provider: Provider, key: DPoPKey,
                                                   clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    refused_at_userinfo(lambda: userinfo(provider, token, None, "Bearer"), "invalid_token")
    # even with a valid proof beside it: the scheme downgrade is refused
    proof = key.proof("GET", USERINFO_URL, clock(), access_token=token)
    refused_at_userinfo(lambda: userinfo(provider, token, proof, "Bearer"), "invalid_token")
    # and as a form parameter
    with pytest.raises(DPoPTokenError):
        provider.handle_userinfo_request(urlencode({"access_token": token}), {},
                                         http_method="POST")


def test_rfc9449_7_1_stolen_token_without_key_refused(provider: Provider, key: DPoPKey,
                                                      clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    thief = DPoPKey()
    refused_at_userinfo(lambda: userinfo(provider, token, thief.proof(
        "GET", USERINFO_URL, clock(), access_token=token)), "invalid_dpop_proof")
    refused_at_userinfo(lambda: userinfo(provider, token, None), "invalid_dpop_proof")


def test_rfc9449_4_3_12_ath_must_hash_the_token(provider: Provider, key: DPoPKey,
                                                clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    other = bound_token(provider, key, clock)
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "GET", USERINFO_URL, clock(), access_token=other)), "invalid_dpop_proof")
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "GET", USERINFO_URL, clock())), "invalid_dpop_proof")


def test_rfc9449_7_proof_for_another_request_refused(provider: Provider, key: DPoPKey,
                                                     clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "POST", USERINFO_URL, clock(), access_token=token)), "invalid_dpop_proof")
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "GET", TOKEN_URL, clock(), access_token=token)), "invalid_dpop_proof")
    # the token endpoint's proof is no good here either
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "POST", TOKEN_URL, clock())), "invalid_dpop_proof")


def test_rfc9449_7_userinfo_post_and_host_url(provider: Provider, key: DPoPKey,
                                              clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    url = "https://api.example.com/userinfo"
    proof = key.proof("POST", url, clock(), access_token=token)
    assert userinfo(provider, token, proof, method="POST", url=url)["sub"]


def test_rfc9449_11_1_userinfo_proof_replay_refused(provider: Provider, key: DPoPKey,
                                                    clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    proof = key.proof("GET", USERINFO_URL, clock(), access_token=token)
    assert userinfo(provider, token, proof)["sub"]
    refused_at_userinfo(lambda: userinfo(provider, token, proof), "invalid_dpop_proof")


def test_rfc9449_7_1_unbound_token_with_dpop_scheme_refused(provider: Provider, key: DPoPKey,
                                                            clock: FakeClock) -> None:
    token = exchange(provider, None, clock)["access_token"]
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "GET", USERINFO_URL, clock(), access_token=token)), "invalid_token")


def test_rfc9449_7_1_unknown_token_gets_dpop_challenge(provider: Provider, key: DPoPKey,
                                                       clock: FakeClock) -> None:
    token = "unknown-token-value"
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "GET", USERINFO_URL, clock(), access_token=token)), "invalid_token")


def test_rfc9449_7_revoked_bound_token_refused(provider: Provider, key: DPoPKey,
                                               clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    clock.advance(3601)
    refused_at_userinfo(lambda: userinfo(provider, token, key.proof(
        "GET", USERINFO_URL, clock(), access_token=token)), "invalid_token")


def test_rfc9449_6_access_token_cache_keeps_cnf(make_dpop_provider: Callable[..., Provider],
                                                key: DPoPKey, clock: FakeClock) -> None:
    provider = make_dpop_provider(authz={"access_token_cache_ttl": 60})
    token = bound_token(provider, key, clock)
    refused_at_userinfo(lambda: userinfo(provider, token, None, "Bearer"), "invalid_token")
    assert introspect(provider, token)["cnf"] == {"jkt": key.jkt}
    assert userinfo(provider, token, key.proof("GET", USERINFO_URL, clock(),
                                               access_token=token))["sub"]


def test_rfc9449_6_binding_kept_after_dpop_disabled(provider: Provider, key: DPoPKey,
                                                    clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    del provider.configuration_information["dpop_signing_alg_values_supported"]
    with pytest.raises(DPoPTokenError):
        userinfo(provider, token, None, "Bearer")


def test_pyop3_introspect_access_token_reports_cnf(provider: Provider, key: DPoPKey,
                                                   clock: FakeClock) -> None:
    token = bound_token(provider, key, clock)
    result = provider.authz_state.introspect_access_token(token)
    assert result["token_type"] == "DPoP"
    assert result["cnf"] == {"jkt": key.jkt}


# -- RFC 9449 8, 9: server nonces --------------------------------------------------------------


@pytest.fixture
def nonce_provider(make_dpop_provider: Callable[..., Provider]) -> Provider:
    return make_dpop_provider(dpop_nonces=True)


def test_rfc9449_8_token_endpoint_nonce_required(nonce_provider: Provider, key: DPoPKey,
                                                 clock: FakeClock) -> None:
    code = code_for(nonce_provider)
    error = refused(nonce_provider, clock, key.proof("POST", TOKEN_URL, clock()), code=code)
    assert isinstance(error, UseDPoPNonce)
    assert error.oauth_error == "use_dpop_nonce"
    nonce = error.headers["DPoP-Nonce"]
    assert nonce == nonce_provider.dpop_nonce()
    proof = key.proof("POST", TOKEN_URL, clock(), nonce=nonce)
    response = exchange(nonce_provider, None, clock, code=code,
                        headers=dict(basic(), DPoP=proof))
    assert response["token_type"] == "DPoP"


def test_rfc9449_8_stale_or_forged_nonce_refused(nonce_provider: Provider, key: DPoPKey,
                                                 clock: FakeClock) -> None:
    nonce = str(nonce_provider.dpop_nonce())
    forged = nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB")
    with pytest.raises(UseDPoPNonce):
        exchange(nonce_provider, None, clock,
                 headers=dict(basic(), DPoP=key.proof("POST", TOKEN_URL, clock(), nonce=forged)))
    clock.advance(601)
    with pytest.raises(UseDPoPNonce) as info:
        exchange(nonce_provider, None, clock,
                 headers=dict(basic(), DPoP=key.proof("POST", TOKEN_URL, clock(), nonce=nonce)))
    assert info.value.headers["DPoP-Nonce"] != nonce


def test_rfc9449_9_resource_nonce(nonce_provider: Provider, key: DPoPKey,
                                  clock: FakeClock) -> None:
    nonce = str(nonce_provider.dpop_nonce())
    proof = key.proof("POST", TOKEN_URL, clock(), nonce=nonce)
    token = exchange(nonce_provider, None, clock, headers=dict(basic(), DPoP=proof))[
        "access_token"]
    error = refused_at_userinfo(lambda: userinfo(nonce_provider, token, key.proof(
        "GET", USERINFO_URL, clock(), access_token=token)), "use_dpop_nonce")
    assert error.headers["DPoP-Nonce"] == nonce
    assert userinfo(nonce_provider, token, key.proof(
        "GET", USERINFO_URL, clock(), access_token=token, nonce=nonce))["sub"]


def test_nonce_provider_pluggable(make_dpop_provider: Callable[..., Provider], key: DPoPKey,
                                  clock: FakeClock) -> None:
    class Fixed:
        def new_nonce(self) -> str:
            return "fixed-nonce"

        def is_valid(self, nonce: str) -> bool:
            return nonce == "fixed-nonce"

    provider = make_dpop_provider(dpop_nonces=Fixed())
    proof = key.proof("POST", TOKEN_URL, clock(), nonce="fixed-nonce")
    assert exchange(provider, None, clock, headers=dict(basic(), DPoP=proof))[
        "token_type"] == "DPoP"
    with pytest.raises(InvalidConfiguration, match="dpop_nonces"):
        make_dpop_provider(dpop_nonces=object())


def test_time_based_nonces_shared_secret() -> None:
    now = [1_800_000_000.0]
    one = TimeBasedDPoPNonces(b"s" * 32, lifetime=300, clock=lambda: now[0])
    two = TimeBasedDPoPNonces(b"s" * 32, lifetime=300, clock=lambda: now[0])
    other = TimeBasedDPoPNonces(b"t" * 32, lifetime=300, clock=lambda: now[0])
    nonce = one.new_nonce()
    assert two.is_valid(nonce) and not other.is_valid(nonce)
    assert not one.is_valid("not base64 !") and not one.is_valid("")
    now[0] += 300
    assert one.is_valid(nonce)
    now[0] += 300
    assert not one.is_valid(nonce)
    with pytest.raises(ValueError):
        TimeBasedDPoPNonces(b"short")


# -- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,expected", [
    ("https://OP.example.COM:443/a/./b/../c?q#f", "https://op.example.com/a/c"),
    ("http://op.example.com:80", "http://op.example.com/"),
    ("https://op.example.com:8443/%7euser/%2f", "https://op.example.com:8443/~user/%2F"),
    ("https://[::1]:443/x", "https://[::1]/x"),
])
def test_rfc3986_6_2_htu_normalisation(url: str, expected: str) -> None:
    assert normalize_htu(url) == expected


@pytest.mark.parametrize("url", ["ftp://op.example.com/", "/token", "https://u:p@h/x",
                                 "https://h:99999/", None, "https:///x"])
def test_htu_normalisation_refuses_non_http_urls(url: Any) -> None:
    assert normalize_htu(url) is None


def test_settings_bounds() -> None:
    with pytest.raises(ValueError):
        DPoPSettings(proof_lifetime=0)
    with pytest.raises(ValueError):
        DPoPSettings(clock_skew=-1)
    assert DPoPSettings().enabled is False


# -- RFC 9449 5.2: client metadata ----------------------------------------------------------------


def register(provider: Provider, **metadata: Any) -> Any:
    body = {"redirect_uris": [REDIRECT_URI], "response_types": ["code"], **metadata}
    return provider.handle_client_registration_request(json.dumps(body)).to_dict()


@pytest.mark.parametrize("value", ["true", 1, None, [True]])
def test_rfc9449_5_2_dpop_bound_access_tokens_boolean(provider: Provider, value: Any) -> None:
    from pyop.exceptions import InvalidClientRegistrationRequest

    if value is None:
        assert "dpop_bound_access_tokens" not in register(provider)
        return
    with pytest.raises(InvalidClientRegistrationRequest, match="dpop_bound_access_tokens"):
        register(provider, dpop_bound_access_tokens=value)


def test_rfc9449_5_2_registered_client_requires_proof(provider: Provider, key: DPoPKey,
                                                      clock: FakeClock) -> None:
    client = register(provider, dpop_bound_access_tokens=True)
    assert client["dpop_bound_access_tokens"] is True
    params = {"client_id": client["client_id"], "redirect_uri": REDIRECT_URI,
              "response_type": "code", "scope": "openid", "nonce": "n"}
    code = provider.authorize(provider.parse_authentication_request(urlencode(params)),
                              USER_ID)["code"]
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    body = urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": REDIRECT_URI})
    with pytest.raises(InvalidDPoPProof):
        provider.handle_token_request(body, headers)
    headers["DPoP"] = key.proof("POST", TOKEN_URL, clock())
    assert provider.handle_token_request(body, headers)["token_type"] == "DPoP"


def test_dpop_bound_access_tokens_ignored_without_dpop(make_provider: Callable[..., Provider],
                                                       clock: FakeClock) -> None:
    # as pyop 3: a provider without DPoP ignores the member (bearer tokens, any value)
    provider = make_provider(config=configuration_without_dpop(), client_db=dpop_clients())
    assert exchange(provider, None, clock, client_id=DPOP_CLIENT_ID)["token_type"] == "Bearer"
    assert "dpop_bound_access_tokens" not in register(provider, dpop_bound_access_tokens="yes")


# -- RFC 9449 10 with RFC 9126: dpop_jkt pushed ---------------------------------------------------


def test_rfc9449_10_dpop_jkt_through_pushed_request(provider: Provider, key: DPoPKey,
                                                    clock: FakeClock) -> None:
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
              "scope": "openid", "nonce": "n", "state": "s", "dpop_jkt": key.jkt}
    pushed = provider.handle_pushed_authorization_request(urlencode(params), basic())
    request = provider.parse_authentication_request(urlencode(
        {"client_id": CLIENT_ID, "request_uri": pushed["request_uri"]}))
    assert request["dpop_jkt"] == key.jkt
    code = str(provider.authorize(request, USER_ID)["code"])
    with pytest.raises(InvalidAuthorizationCode, match="dpop_jkt"):
        exchange(provider, DPoPKey(), clock, code=code)
    assert exchange(provider, key, clock, code=code)["token_type"] == "DPoP"


def test_rfc9449_10_malformed_dpop_jkt_refused_at_par(provider: Provider) -> None:
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
              "scope": "openid", "nonce": "n", "dpop_jkt": "not-a-thumbprint"}
    with pytest.raises(InvalidPushedAuthorizationRequest, match="dpop_jkt") as info:
        provider.handle_pushed_authorization_request(urlencode(params), basic())
    assert info.value.oauth_error == "invalid_request"


def test_verify_dpop_proof_for_a_resource_server(key: DPoPKey, clock: FakeClock) -> None:
    # a resource server of its own checks proofs against the cnf.jkt introspection gave
    from pyop.dpop import verify_dpop_proof
    from pyop.storage import MemoryStorage

    settings = DPoPSettings(lambda: ["ES256"], replay_store=MemoryStorage(clock=clock))
    url = "https://api.example.com/things"
    proof = key.proof("GET", url, clock(), access_token="tok")
    verified = verify_dpop_proof(settings, proof, method="GET", url=url, now=clock(),
                                 access_token="tok")
    assert verified.jkt == key.jkt and verified.cnf == {"jkt": key.jkt}
    with pytest.raises(InvalidDPoPProof, match="already used"):
        verify_dpop_proof(settings, proof, method="GET", url=url, now=clock(),
                          access_token="tok")
    nonces = DPoPSettings(lambda: ["ES256"], nonces=TimeBasedDPoPNonces(clock=clock))
    with pytest.raises(UseDPoPNonce):
        verify_dpop_proof(nonces, key.proof("GET", url, clock()), method="GET", url=url,
                          now=clock())
