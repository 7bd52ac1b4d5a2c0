"""The fully-specified JWS algorithm ``Ed25519`` (RFC 9864 2.2): EdDSA (RFC 8037 3.1) with
the Ed25519 parameter set only. Signed and verified with Ed25519 keys exactly as EdDSA;
refused with any other key; accepted where a provider lists it (DPoP proofs, client
assertions, request objects, ID token signing keys) and never added to a list the
provider derives by itself."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    REDIRECT_URI,
    USER_ID,
    FakeClock,
    configuration,
)
from conftest import clients as default_clients
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyop.client_assertion import JWT_BEARER_ASSERTION_TYPE, assertion_signing_algs
from pyop.crypto import (
    OPT_IN_ALGS,
    SUPPORTED_ALGS,
    JWSError,
    SigningKey,
    VerificationKey,
    b64url_decode,
    b64url_encode,
    hash_for_alg,
    jws_sign,
    jws_verify,
    left_hash,
)
from pyop.dpop import DEFAULT_DPOP_SIGNING_ALGS
from pyop.exceptions import InvalidClientAuthentication, InvalidConfiguration, InvalidDPoPProof
from pyop.profiles import FAPI2_SIGNING_ALGS, check_fapi2_registration_request, fapi2_metadata
from pyop.provider import Provider
from pyop.request_object import parse_jwk_set, verification_keys

from .dpop_keys import DPoPKey

TOKEN_URL = ISSUER + "/token"

#: RFC 8037 A.1 / A.4: the Ed25519 key and the JWS of "Example of Ed25519 signing".
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_JWS = ("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
               "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")


def rfc8037_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))


def okp_jwk(key: ed25519.Ed25519PrivateKey, **members: Any) -> dict[str, Any]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw), **members}


def p256_jwk(**members: Any) -> dict[str, Any]:
    return {**VerificationKey(ec.generate_private_key(ec.SECP256R1()).public_key()).public_jwk,
            **members}


def ed448_jwk(**members: Any) -> dict[str, Any]:
    raw = ed448.Ed448PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                     PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed448", "x": b64url_encode(raw), **members}


# -- signing and verification (RFC 9864 2.2, RFC 8037 3.1) --------------------------------------


def test_rfc8037_a4_vector_still_verifies_as_eddsa() -> None:
    key = VerificationKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})
    assert key.alg == "EdDSA"  # an Ed25519 key without alg: EdDSA, as before
    header, payload, signature = RFC8037_JWS.split(".")
    assert key.verify(f"{header}.{payload}".encode(), b64url_decode(signature))


def test_rfc9864_ed25519_signs_the_same_bytes_as_eddsa() -> None:
    # RFC 9864 2.2: Ed25519 is EdDSA with the Ed25519 parameter set; Ed25519 signatures are
    # deterministic (RFC 8032 5.1.6), so the two algs sign an input identically
    header, payload, signature = RFC8037_JWS.split(".")
    signing_input = f"{header}.{payload}".encode()
    ed = SigningKey(rfc8037_key(), "Ed25519")
    assert ed.alg == "Ed25519"
    assert b64url_encode(ed.sign(signing_input)) == signature
    assert ed.sign(signing_input) == SigningKey(rfc8037_key(), "EdDSA").sign(signing_input)


def test_rfc9864_ed25519_sign_and_verify() -> None:
    key = SigningKey(ed25519.Ed25519PrivateKey.generate(), "Ed25519", kid="ed")
    token = jws_sign({"iss": "me", "n": 1}, key)
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header == {"alg": "Ed25519", "kid": "ed"}
    assert jws_verify(token, [VerificationKey.from_key(key)]) == {"iss": "me", "n": 1}
    # the verifier of the other alg name does not accept it (RFC 8725 3.1: the key's alg)
    eddsa = VerificationKey(key.public_key, "EdDSA", "ed")
    with pytest.raises(JWSError):
        jws_verify(token, [eddsa])
    with pytest.raises(JWSError):
        jws_verify(jws_sign({"n": 1}, SigningKey(key.private_key, "EdDSA", kid="ed")),
                   [VerificationKey.from_key(key)])
    # a tampered signature fails
    head, body, signature = token.split(".")
    flipped = bytearray(b64url_decode(signature))
    flipped[0] ^= 1
    with pytest.raises(JWSError):
        jws_verify(f"{head}.{body}.{b64url_encode(bytes(flipped))}",
                   [VerificationKey.from_key(key)])


def test_rfc9864_ed25519_hash_is_sha512() -> None:
    # OIDC Core 3.3.2.11 at_hash / c_hash: the hash of the alg, SHA-512 for Ed25519 as for
    # EdDSA with Ed25519 (RFC 8032 5.1)
    assert hash_for_alg("Ed25519") is hashlib.sha512
    assert left_hash("token", "Ed25519") == left_hash("token", "EdDSA")
    assert left_hash("token", "Ed25519") == b64url_encode(
        hashlib.sha512(b"token").digest()[:32])


def test_rfc9864_jwk_with_alg_ed25519() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    key = VerificationKey.from_key(okp_jwk(private, alg="Ed25519", kid="k1"))
    assert key.alg == "Ed25519" and key.kid == "k1"
    assert key.to_jwk()["alg"] == "Ed25519"
    signed = jws_sign({"a": 1}, SigningKey(private, "Ed25519", kid="k1"))
    assert jws_verify(signed, [key]) == {"a": 1}
    # a cryptography key published with its alg (RFC 7517 4.4)
    published = SigningKey(private, "Ed25519").to_jwk()
    assert published == {**okp_jwk(private), "use": "sig", "alg": "Ed25519"}
    # a client's JWK Set: a key with alg Ed25519 verifies Ed25519 only; one without alg
    # both names; one with alg EdDSA EdDSA only (RFC 7517 4.4)
    for members, algs in (({"alg": "Ed25519"}, {"Ed25519"}), ({}, {"EdDSA", "Ed25519"}),
                          ({"alg": "EdDSA"}, {"EdDSA"})):
        jwks = parse_jwk_set({"keys": [okp_jwk(private, **members)]})
        usable = {alg for alg in ("EdDSA", "Ed25519") if verification_keys(jwks, alg)}
        assert usable == algs, members
    keys = verification_keys(parse_jwk_set({"keys": [okp_jwk(private)]}), "Ed25519")
    assert jws_verify(jws_sign({"a": 2}, SigningKey(private, "Ed25519")), keys) == {"a": 2}


def test_rfc9864_ed25519_refused_with_p256_key() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(JWSError):
        SigningKey(private, "Ed25519")
    with pytest.raises(JWSError):
        VerificationKey.from_key(p256_jwk(alg="Ed25519"))
    with pytest.raises(JWSError):
        VerificationKey.from_key(VerificationKey(private.public_key(), "Ed25519"))
    # a JWS claiming Ed25519 signed by a P-256 key (as ES256) is refused
    es = SigningKey(private, "ES256")
    head = b64url_encode(b'{"alg":"Ed25519"}')
    body = b64url_encode(b'{"a":1}')
    forged = f"{head}.{body}." + b64url_encode(es.sign(f"{head}.{body}".encode()))
    with pytest.raises(JWSError):
        jws_verify(forged, [VerificationKey(private.public_key(), "Ed25519")])
    # a P-256 JWK without alg never qualifies for Ed25519
    assert verification_keys(parse_jwk_set({"keys": [p256_jwk()]}), "Ed25519") == []


def test_rfc9864_ed25519_refused_with_ed448_key() -> None:
    # RFC 9864 2.2: Ed25519 names the Ed25519 curve only; Ed448 keys are not understood
    with pytest.raises(JWSError):
        SigningKey(ed448.Ed448PrivateKey.generate(), "Ed25519")
    with pytest.raises(JWSError):
        VerificationKey.from_jwk(ed448_jwk(alg="Ed25519"))
    with pytest.raises(ValueError):
        parse_jwk_set({"keys": [ed448_jwk()]})
    assert verification_keys([ed448_jwk()], "Ed25519") == []
    assert verification_keys([ed448_jwk(alg="Ed25519")], "Ed25519") == []


def test_rfc9864_ed25519_is_opt_in() -> None:
    assert "Ed25519" in SUPPORTED_ALGS and OPT_IN_ALGS == {"Ed25519"}
    # derived lists (discovery defaults) are those of earlier releases
    assert "Ed25519" not in assertion_signing_algs(["private_key_jwt", "client_secret_jwt"])
    # the recommended DPoP list and the FAPI 2.0 5.4.1 algorithms name it beside EdDSA
    assert DEFAULT_DPOP_SIGNING_ALGS == ("ES256", "PS256", "EdDSA", "Ed25519")
    assert FAPI2_SIGNING_ALGS == ("PS256", "ES256", "EdDSA", "Ed25519")


def test_rfc9864_discovery_defaults_unchanged(provider: Provider) -> None:
    published = provider.provider_configuration.to_dict()
    for name, value in published.items():
        if name.endswith("_alg_values_supported") and name != (
                "dpop_signing_alg_values_supported"):
            assert "Ed25519" not in value, name
    # the test configuration lists DPoP algs without Ed25519: not added
    assert published["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]


# -- DPoP proofs (RFC 9449 4.3 point 5) ---------------------------------------------------------


def dpop_provider(make_provider: Callable[..., Provider], algs: list[str]) -> Provider:
    config = configuration()
    config["dpop_signing_alg_values_supported"] = algs
    return make_provider(config=config)


def code_for(provider: Provider, client_id: str = CLIENT_ID) -> str:
    request = provider.parse_authentication_request(urlencode({
        "client_id": client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid", "nonce": "n", "state": "s"}))
    return str(provider.authorize(request, USER_ID)["code"])


def dpop_exchange(provider: Provider, proof: str) -> dict[str, Any]:
    body = {"grant_type": "authorization_code", "code": code_for(provider),
            "redirect_uri": REDIRECT_URI}
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    headers = {"Authorization": "Basic " + basic, "DPoP": proof}
    return dict(provider.handle_token_request(urlencode(body), headers,
                                              http_method="POST", http_url=TOKEN_URL).to_dict())


def test_rfc9864_dpop_proof_ed25519_accepted_when_configured(
        make_provider: Callable[..., Provider], clock: FakeClock) -> None:
    provider = dpop_provider(make_provider, ["ES256", "Ed25519"])
    assert provider.provider_configuration["dpop_signing_alg_values_supported"] == [
        "ES256", "Ed25519"]
    key = DPoPKey("OKP", "Ed25519")
    response = dpop_exchange(provider, key.proof("POST", TOKEN_URL, clock()))
    assert response["token_type"] == "DPoP"
    record = provider.authz_state.introspect_access_token(response["access_token"])
    assert record["cnf"] == {"jkt": key.jkt}  # RFC 9449 6.1: the same thumbprint as EdDSA
    # the proof with the polymorphic name is refused: not listed
    with pytest.raises(InvalidDPoPProof):
        dpop_exchange(provider, DPoPKey("OKP", "EdDSA").proof("POST", TOKEN_URL, clock()))


def test_rfc9864_dpop_proof_ed25519_refused_when_not_configured(
        make_provider: Callable[..., Provider], clock: FakeClock) -> None:
    provider = dpop_provider(make_provider, ["ES256", "PS256", "EdDSA"])
    key = DPoPKey("OKP", "Ed25519")
    with pytest.raises(InvalidDPoPProof, match="alg is not accepted"):
        dpop_exchange(provider, key.proof("POST", TOKEN_URL, clock()))
    # the same key under EdDSA is accepted
    eddsa = DPoPKey("OKP", "EdDSA")
    assert dpop_exchange(provider, eddsa.proof("POST", TOKEN_URL, clock()))[
        "token_type"] == "DPoP"


@pytest.mark.parametrize("jwk", [p256_jwk, ed448_jwk])
def test_rfc9864_dpop_proof_ed25519_with_other_key_refused(
        make_provider: Callable[..., Provider], clock: FakeClock,
        jwk: Callable[..., dict[str, Any]]) -> None:
    provider = dpop_provider(make_provider, ["ES256", "Ed25519"])
    key = DPoPKey("OKP", "Ed25519")
    # the header names another key (RFC 9449 4.3 points 6-7: the jwk must fit the alg)
    proof = key.proof("POST", TOKEN_URL, clock(), header={"jwk": jwk()})
    with pytest.raises(InvalidDPoPProof):
        dpop_exchange(provider, proof)


# -- client assertions (RFC 7523 3, OIDC Core 9 private_key_jwt) ---------------------------------

ED_CLIENT_ID = "ed25519-client"


def assertion_provider(make_provider: Callable[..., Provider], key: SigningKey,
                       algs: Optional[list[str]]) -> Provider:
    config = configuration()
    if algs is not None:
        config["token_endpoint_auth_signing_alg_values_supported"] = algs
    db = default_clients()
    client = {name: value for name, value in db[CLIENT_ID].items() if name != "client_secret"}
    client.update(client_id=ED_CLIENT_ID, token_endpoint_auth_method="private_key_jwt",
                  jwks={"keys": [VerificationKey.from_key(key).to_jwk()]})
    db[ED_CLIENT_ID] = client
    return make_provider(config=config, client_db=db)


def assertion_exchange(provider: Provider, key: SigningKey, now: float) -> dict[str, Any]:
    assertion = jws_sign({"iss": ED_CLIENT_ID, "sub": ED_CLIENT_ID, "aud": ISSUER,
                          "jti": secrets.token_urlsafe(16), "iat": int(now),
                          "exp": int(now) + 60}, key)
    body = {"grant_type": "authorization_code", "code": code_for(provider, ED_CLIENT_ID),
            "redirect_uri": REDIRECT_URI, "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": assertion}
    return dict(provider.handle_token_request(urlencode(body), {}).to_dict())


def test_rfc9864_client_assertion_ed25519_accepted_when_configured(
        make_provider: Callable[..., Provider], clock: FakeClock) -> None:
    key = SigningKey(ed25519.Ed25519PrivateKey.generate(), "Ed25519", kid="ed-1")
    provider = assertion_provider(make_provider, key, ["ES256", "EdDSA", "Ed25519"])
    assert "Ed25519" in provider.client_assertion_signing_algs
    assert assertion_exchange(provider, key, clock())["token_type"] == "Bearer"


def test_rfc9864_client_assertion_ed25519_refused_when_not_configured(
        make_provider: Callable[..., Provider], clock: FakeClock) -> None:
    key = SigningKey(ed25519.Ed25519PrivateKey.generate(), "Ed25519", kid="ed-1")
    provider = assertion_provider(make_provider, key, None)  # derived: no Ed25519
    assert "Ed25519" not in provider.client_assertion_signing_algs
    with pytest.raises(InvalidClientAuthentication):
        assertion_exchange(provider, key, clock())
    # the same key as EdDSA (derived list) is accepted
    eddsa = SigningKey(key.private_key, "EdDSA", kid="ed-1")
    provider = assertion_provider(make_provider, eddsa, None)
    assert assertion_exchange(provider, eddsa, clock())["token_type"] == "Bearer"


# -- the provider's own signing key ---------------------------------------------------------------


def test_rfc9864_provider_signs_id_tokens_with_ed25519(
        make_provider: Callable[..., Provider]) -> None:
    key = SigningKey(ed25519.Ed25519PrivateKey.generate(), "Ed25519", kid="op-ed")
    provider = make_provider(signing_key=key)
    assert provider.provider_configuration["id_token_signing_alg_values_supported"] == [
        "Ed25519"]
    assert provider.jwks["keys"][0]["alg"] == "Ed25519"
    request = provider.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "id_token",
        "scope": "openid", "nonce": "n", "state": "s"}))
    id_token = provider.authorize(request, USER_ID)["id_token"]
    assert json.loads(b64url_decode(id_token.split(".")[0]))["alg"] == "Ed25519"
    verifier = VerificationKey.from_jwk(provider.jwks["keys"][0])
    assert jws_verify(id_token, [verifier])["nonce"] == "n"


# -- FAPI 2.0 5.4.1: EdDSA (Ed25519), also under its fully-specified name -------------------------


def fapi2(given: dict[str, Any], signing_algs: list[str]) -> dict[str, Any]:
    return fapi2_metadata({"pushed_authorization_request_endpoint": ISSUER + "/par",
                           "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                           "dpop_signing_alg_values_supported": ["ES256"], **given},
                          signing_algs, allow_plain_pkce=False,
                          client_assertion_audiences="issuer",
                          authorization_code_lifetime=60,
                          bind_tokens_to_client_certificates=False)


def test_fapi2_5_4_1_ed25519_accepted_by_the_profile() -> None:
    # a provider key of alg Ed25519 is allowed; configured lists keep Ed25519
    metadata = fapi2({"dpop_signing_alg_values_supported": ["ES256", "Ed25519", "RS256"],
                      "token_endpoint_auth_signing_alg_values_supported": [
                          "PS256", "Ed25519", "HS256"]}, ["Ed25519"])
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "Ed25519"]
    assert metadata["token_endpoint_auth_signing_alg_values_supported"] == ["PS256", "Ed25519"]
    # lists the profile fills in are those of before: Ed25519 only when configured
    defaulted = fapi2({}, ["PS256"])
    for name in ("request_object_signing_alg_values_supported",
                 "token_endpoint_auth_signing_alg_values_supported"):
        assert defaulted[name] == ["PS256", "ES256", "EdDSA"], name
    with pytest.raises(InvalidConfiguration):
        fapi2({}, ["RS256"])


def test_fapi2_5_4_1_registration_accepts_ed25519() -> None:
    check_fapi2_registration_request(
        {"token_endpoint_auth_method": "private_key_jwt", "redirect_uris": [REDIRECT_URI],
         "token_endpoint_auth_signing_alg": "Ed25519",
         "request_object_signing_alg": "Ed25519"}, ctx=None)  # type: ignore[arg-type]
