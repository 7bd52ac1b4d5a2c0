"""Several signing keys, per-client algs, signed UserInfo and key rotation.

OIDC Core 2, 3.1.3.7, 3.3.2.11, 5.3.2; OIDC Dynamic Registration 2; OIDC Discovery 3;
RFC 7515 4.1.4 (kid), RFC 7518 3, RFC 8037 3.1, RFC 7638 (thumbprints), RFC 8725 3.1
(algorithm verification). Interop: ID tokens and signed UserInfo responses are
verified by Authlib's JOSE implementation (joserfc) and ``authlib.oidc.core``
against the published JWK Set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from authlib.oidc.core import CodeIDToken, HybridIDToken
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    REDIRECT_URI,
    USER_ID,
    clients,
    configuration,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from pyop.crypto import (
    SigningKey,
    VerificationKey,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    jws_sign,
)
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidEndSessionRequest,
    InvalidUserinfoRequest,
    UnauthorizedClient,
)
from pyop.message import EndSessionRequest, UserinfoResponse
from pyop.provider import Provider

ALGS = ["RS256", "PS256", "ES256", "EdDSA"]
HASH_FOR = {"RS256": hashlib.sha256, "PS256": hashlib.sha256, "ES256": hashlib.sha256,
            "EdDSA": hashlib.sha512}
NONCE = "n-0S6_WzA2Mj"

# joserfc warns that RFC 9864 deprecates "EdDSA" for the fully-specified "Ed25519";
# OIDC deployments still use "EdDSA", which is what pyop signs with.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated:Warning")


@pytest.fixture(scope="module")
def second_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys(rsa_private_key: rsa.RSAPrivateKey, second_rsa_key: rsa.RSAPrivateKey
         ) -> dict[str, SigningKey]:
    """One signing key per alg; the PS256 key is another RSA key than the RS256 one."""
    return {
        "RS256": SigningKey(rsa_private_key, kid="rs"),
        "PS256": SigningKey(second_rsa_key, "PS256", kid="ps"),
        "ES256": SigningKey(ec.generate_private_key(ec.SECP256R1()), kid="es"),
        "EdDSA": SigningKey(ed25519.Ed25519PrivateKey.generate(), kid="ed"),
    }


@pytest.fixture
def multi_key_provider(make_provider: Callable[..., Provider], keys: dict[str, SigningKey]
                       ) -> Provider:
    """RS256 active; PS256, ES256 and EdDSA for clients that registered them."""
    config = configuration()
    config["userinfo_signing_alg_values_supported"] = ALGS  # signed userinfo is opt-in
    return make_provider(signing_key=keys["RS256"], config=config,
                         signing_keys=[keys["PS256"], keys["ES256"], keys["EdDSA"]])


def header_of(token: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(b64url_decode(token.split(".")[0]))
    return result


def half_hash(value: str, alg: str) -> str:
    digest = HASH_FOR[alg](value.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def register_alg(provider: Provider, **metadata: Any) -> None:
    provider.clients[CLIENT_ID] = {**provider.clients[CLIENT_ID], **metadata}


def code_flow(provider: Provider, response_type: str = "code") -> tuple[dict[str, Any],
                                                                        dict[str, Any]]:
    """Authorization then token request for CLIENT_ID: (authorization params, token response)."""
    request = provider.parse_authentication_request(urlencode({
        "response_type": response_type, "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
        "scope": "openid profile", "nonce": NONCE, "state": "s"}))
    response = provider.authorize(request, USER_ID)
    params = response.to_dict()
    tokens = provider.handle_token_request(urlencode({
        "grant_type": "authorization_code", "code": params["code"],
        "redirect_uri": REDIRECT_URI}), basic_auth())
    return params, tokens.to_dict()


def basic_auth() -> dict[str, str]:
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return {"Authorization": "Basic " + credentials}


def authlib_decode(token: str, jwks: dict[str, Any], algs: list[str]) -> Any:
    """Verify a JWS with Authlib's JOSE implementation against our published JWK Set."""
    return jwt.decode(token, key=KeySet.import_key_set(jwks),
                      registry=JWSRegistry(algorithms=algs))


# -- construction --------------------------------------------------------------------------------

class TestConfiguration:
    def test_single_key_unchanged(self, provider: Provider) -> None:
        assert provider.signing_algs == ["RS256"]
        assert len(provider.jwks["keys"]) == 1
        published = provider.provider_configuration
        assert published["id_token_signing_alg_values_supported"] == ["RS256"]
        assert "userinfo_signing_alg_values_supported" not in published  # opt-in

    def test_all_keys_published_public_only(self, multi_key_provider: Provider,
                                            keys: dict[str, SigningKey]) -> None:
        jwks = multi_key_provider.jwks["keys"]
        assert [(k["kid"], k["alg"], k["use"]) for k in jwks] == [
            ("rs", "RS256", "sig"), ("ps", "PS256", "sig"), ("es", "ES256", "sig"),
            ("ed", "EdDSA", "sig")]
        for jwk in jwks:
            assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
        assert multi_key_provider.signing_algs == ALGS
        config = multi_key_provider.provider_configuration
        assert config["id_token_signing_alg_values_supported"] == ALGS
        assert config["userinfo_signing_alg_values_supported"] == ALGS

    def test_signing_keys_in_every_accepted_form(self, make_provider: Callable[..., Provider],
                                                 jwkest_signing_key: Any,
                                                 second_rsa_key: rsa.RSAPrivateKey) -> None:
        ed = ed25519.Ed25519PrivateKey.generate()
        provider = make_provider(signing_key=SigningKey(second_rsa_key, "PS256"),
                                 signing_keys=[jwkest_signing_key, ed])
        assert provider.signing_algs == ["PS256", "RS256", "EdDSA"]
        kids = [k["kid"] for k in provider.jwks["keys"]]
        assert kids == [jwk_thumbprint(k) for k in provider.jwks["keys"]]  # RFC 7638 default

    def test_published_keys_in_every_accepted_form(self, make_provider: Callable[..., Provider],
                                                   keys: dict[str, SigningKey]) -> None:
        provider = make_provider(signing_key=keys["RS256"], published_keys=[
            keys["PS256"].private_key, keys["ES256"].public_key, keys["EdDSA"].to_jwk()])
        assert provider.signing_algs == ["RS256"]  # published keys never sign
        jwks = provider.jwks["keys"]
        assert [k["alg"] for k in jwks] == ["RS256", "RS256", "ES256", "EdDSA"]
        assert jwks[3]["kid"] == "ed"
        assert provider.provider_configuration["id_token_signing_alg_values_supported"] == [
            "RS256"]

    def test_two_signing_keys_for_one_alg(self, make_provider: Callable[..., Provider],
                                          keys: dict[str, SigningKey],
                                          second_rsa_key: rsa.RSAPrivateKey) -> None:
        with pytest.raises(InvalidConfiguration, match=r"signing_keys\[0\].*RS256"):
            make_provider(signing_key=keys["RS256"], signing_keys=[second_rsa_key])
        with pytest.raises(InvalidConfiguration, match=r"signing_keys\[1\].*EdDSA"):
            make_provider(signing_key=keys["RS256"],
                          signing_keys=[keys["EdDSA"], ed25519.Ed25519PrivateKey.generate()])

    def test_duplicate_kids(self, make_provider: Callable[..., Provider],
                            keys: dict[str, SigningKey],
                            rsa_private_key: rsa.RSAPrivateKey) -> None:
        with pytest.raises(InvalidConfiguration, match=r"published_keys\[0\]: duplicate kid"):
            make_provider(signing_key=keys["RS256"], published_keys=[keys["RS256"].to_jwk()])
        # the same RSA key for RS256 and PS256: one thumbprint
        with pytest.raises(InvalidConfiguration, match=r"signing_keys\[0\]: duplicate kid"):
            make_provider(signing_key=rsa_private_key,
                          signing_keys=[SigningKey(rsa_private_key, "PS256")])
        with pytest.raises(InvalidConfiguration, match=r"published_keys\[1\]: duplicate kid 'x'"):
            make_provider(signing_key=keys["RS256"], published_keys=[
                SigningKey(keys["ES256"].private_key, kid="x"),
                SigningKey(keys["EdDSA"].private_key, kid="x")])
        # distinct kids make the same RSA key usable for both algs
        provider = make_provider(signing_key=rsa_private_key,
                                 signing_keys=[SigningKey(rsa_private_key, "PS256", kid="ps")])
        assert provider.signing_algs == ["RS256", "PS256"]

    @pytest.mark.parametrize("bad", ["nope", {"kty": "oct", "k": "c2VjcmV0"},
                                     {"kty": "RSA", "n": "sXch", "e": "AQAB", "alg": "HS256"}])
    def test_unusable_keys(self, make_provider: Callable[..., Provider],
                           keys: dict[str, SigningKey], bad: Any) -> None:
        with pytest.raises(InvalidConfiguration, match=r"published_keys\[0\]"):
            make_provider(signing_key=keys["RS256"], published_keys=[bad])
        with pytest.raises(InvalidConfiguration, match=r"signing_keys\[0\]"):
            make_provider(signing_key=keys["RS256"], signing_keys=[bad])
        with pytest.raises(InvalidConfiguration, match=r"signing_keys\[0\]"):  # public only
            make_provider(signing_key=keys["RS256"], signing_keys=[keys["ES256"].public_key])

    @pytest.mark.parametrize("name", ["signing_keys", "published_keys"])
    def test_a_single_key_instead_of_a_list(self, make_provider: Callable[..., Provider],
                                            keys: dict[str, SigningKey], name: str) -> None:
        for value in (keys["EdDSA"], keys["EdDSA"].to_jwk(), "key", iter([keys["EdDSA"]])):
            with pytest.raises(InvalidConfiguration, match=f"{name}: must be a list"):
                make_provider(signing_key=keys["RS256"], **{name: value})

    @pytest.mark.parametrize("name", ["id_token_signing_alg_values_supported",
                                      "userinfo_signing_alg_values_supported"])
    def test_advertised_algs_need_keys(self, make_provider: Callable[..., Provider],
                                       keys: dict[str, SigningKey], name: str) -> None:
        from conftest import configuration

        for algs in (["RS256", "ES256"], ["RS256", "none"], ["RS256", "HS256"]):
            with pytest.raises(InvalidConfiguration, match=name):
                make_provider(signing_key=keys["RS256"], config={**configuration(), name: algs})
        # a key may exist without being advertised
        provider = make_provider(signing_key=keys["RS256"], signing_keys=[keys["EdDSA"]],
                                 config={**configuration(), name: ["RS256"]})
        assert provider.provider_configuration[name] == ["RS256"]


# -- ID tokens -----------------------------------------------------------------------------------

class TestIdTokenAlgs:
    @pytest.mark.parametrize("alg", ALGS)
    def test_token_endpoint_uses_registered_alg(self, multi_key_provider: Provider,
                                                keys: dict[str, SigningKey], alg: str) -> None:
        register_alg(multi_key_provider, id_token_signed_response_alg=alg)
        _, tokens = code_flow(multi_key_provider)
        id_token = tokens["id_token"]
        assert header_of(id_token) == {"alg": alg, "kid": keys[alg].kid}
        claims = multi_key_provider.verify_id_token_hint(id_token)
        assert claims is not None
        assert claims["at_hash"] == half_hash(tokens["access_token"], alg)

    @pytest.mark.parametrize("alg", ALGS)
    def test_authorization_endpoint_uses_registered_alg(self, multi_key_provider: Provider,
                                                        keys: dict[str, SigningKey],
                                                        alg: str) -> None:
        register_alg(multi_key_provider, id_token_signed_response_alg=alg)
        params, tokens = code_flow(multi_key_provider, "code id_token token")
        front = params["id_token"]
        assert header_of(front)["alg"] == alg and header_of(front)["kid"] == keys[alg].kid
        claims = multi_key_provider.verify_id_token_hint(front)
        assert claims is not None
        assert claims["c_hash"] == half_hash(params["code"], alg)
        assert claims["at_hash"] == half_hash(params["access_token"], alg)
        assert header_of(tokens["id_token"])["alg"] == alg

    def test_eddsa_hashes_are_sha512(self, multi_key_provider: Provider) -> None:
        register_alg(multi_key_provider, id_token_signed_response_alg="EdDSA")
        _, tokens = code_flow(multi_key_provider)
        claims = multi_key_provider.verify_id_token_hint(tokens["id_token"])
        assert claims is not None
        assert len(b64url_decode(claims["at_hash"])) == 32  # half of SHA-512

    def test_default_is_the_active_key(self, make_provider: Callable[..., Provider],
                                       keys: dict[str, SigningKey]) -> None:
        provider = make_provider(signing_key=keys["ES256"],
                                 signing_keys=[keys["RS256"], keys["EdDSA"]])
        _, tokens = code_flow(provider)
        assert header_of(tokens["id_token"])["alg"] == "ES256"
        assert provider.clients[CLIENT_ID].get("id_token_signed_response_alg") is None

    def test_registered_alg_without_key_refused_before_anything_is_issued(
            self, multi_key_provider: Provider, keys: dict[str, SigningKey],
            caplog: pytest.LogCaptureFixture) -> None:
        register_alg(multi_key_provider, id_token_signed_response_alg="PS512")
        request = multi_key_provider.parse_authentication_request(urlencode({
            "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
            "scope": "openid", "nonce": NONCE}))
        with pytest.raises(UnauthorizedClient, match="id_token_signed_response_alg"):
            multi_key_provider.authorize(request, USER_ID)
        assert "no signing key for id_token_signed_response_alg" in caplog.text

        # a key removed after the code was issued: the code is not spent
        register_alg(multi_key_provider, id_token_signed_response_alg="EdDSA")
        code = multi_key_provider.authorize(request, USER_ID)["code"]
        register_alg(multi_key_provider, id_token_signed_response_alg=["EdDSA"])
        body = urlencode({"grant_type": "authorization_code", "code": code,
                          "redirect_uri": REDIRECT_URI})
        with pytest.raises(UnauthorizedClient):
            multi_key_provider.handle_token_request(body, basic_auth())
        register_alg(multi_key_provider, id_token_signed_response_alg="EdDSA")
        tokens = multi_key_provider.handle_token_request(body, basic_auth())
        assert header_of(tokens["id_token"])["alg"] == "EdDSA"


# -- UserInfo ------------------------------------------------------------------------------------

class TestSignedUserinfo:
    def test_unsigned_by_default(self, multi_key_provider: Provider) -> None:
        _, tokens = code_flow(multi_key_provider)
        response = multi_key_provider.handle_userinfo_request(
            "", {"Authorization": "Bearer " + tokens["access_token"]})
        assert isinstance(response, UserinfoResponse)
        assert response.content_type == "application/json"
        assert response.signed_jwt is None
        assert response.to_body() == response.to_json()
        assert json.loads(response.to_json())["name"] == "Alice Liddell"

    @pytest.mark.parametrize("alg", ALGS)
    def test_signed_with_registered_alg(self, multi_key_provider: Provider,
                                        keys: dict[str, SigningKey], alg: str) -> None:
        register_alg(multi_key_provider, userinfo_signed_response_alg=alg)
        _, tokens = code_flow(multi_key_provider)
        response = multi_key_provider.handle_userinfo_request(
            "", {"Authorization": "Bearer " + tokens["access_token"]})
        assert response.content_type == "application/jwt"
        body = response.to_body()
        assert header_of(body)["alg"] == alg and header_of(body)["kid"] == keys[alg].kid
        token = authlib_decode(body, multi_key_provider.jwks, [alg])
        assert token.claims["iss"] == ISSUER and token.claims["aud"] == CLIENT_ID
        assert token.claims["name"] == "Alice Liddell" and token.claims["sub"]
        # to_json() stays the JSON of the claims, as for hosts written for pyop 3
        assert json.loads(response.to_json())["sub"] == token.claims["sub"]
        assert "iss" not in json.loads(response.to_json())

    def test_claims_cannot_override_iss_and_aud(self) -> None:
        key = SigningKey(ed25519.Ed25519PrivateKey.generate())
        response = UserinfoResponse(sub="a", iss="https://evil.example.com", aud="other")
        jws = response.sign(key, issuer=ISSUER, audience=CLIENT_ID)
        payload = json.loads(b64url_decode(jws.split(".")[1]))
        assert (payload["iss"], payload["aud"]) == (ISSUER, CLIENT_ID)

    def test_registered_alg_without_key(self, multi_key_provider: Provider) -> None:
        _, tokens = code_flow(multi_key_provider)
        register_alg(multi_key_provider, userinfo_signed_response_alg="ES512")
        with pytest.raises(InvalidUserinfoRequest, match="userinfo_signed_response_alg"):
            multi_key_provider.handle_userinfo_request(
                "", {"Authorization": "Bearer " + tokens["access_token"]})

    def test_deleted_client_gets_no_userinfo(self, multi_key_provider: Provider) -> None:
        # a deleted client's access tokens stop working (RFC 7592 2.3)
        register_alg(multi_key_provider, userinfo_signed_response_alg="EdDSA")
        _, tokens = code_flow(multi_key_provider)
        del multi_key_provider.clients[CLIENT_ID]
        with pytest.raises(InvalidAccessToken):
            multi_key_provider.handle_userinfo_request(
                "", {"Authorization": "Bearer " + tokens["access_token"]})


# -- registration --------------------------------------------------------------------------------

class TestRegistration:
    def register(self, provider: Provider, **metadata: Any) -> dict[str, Any]:
        body = json.dumps({"redirect_uris": ["https://new.example.com/cb"], **metadata})
        response = provider.handle_client_registration_request(body)
        return dict(provider.clients[response["client_id"]])

    @pytest.mark.parametrize("alg", ALGS)
    def test_algs_with_a_key_accepted(self, multi_key_provider: Provider, alg: str) -> None:
        client = self.register(multi_key_provider, id_token_signed_response_alg=alg,
                               userinfo_signed_response_alg=alg)
        assert client["id_token_signed_response_alg"] == alg
        assert client["userinfo_signed_response_alg"] == alg

    @pytest.mark.parametrize("member", ["id_token_signed_response_alg",
                                        "userinfo_signed_response_alg"])
    @pytest.mark.parametrize("alg", ["none", "HS256", "PS512", "ES384", "eddsa"])
    def test_algs_without_a_key_refused(self, multi_key_provider: Provider, member: str,
                                        alg: str) -> None:
        with pytest.raises(InvalidClientRegistrationRequest, match=member) as info:
            self.register(multi_key_provider, **{member: alg})
        assert info.value.oauth_error == "invalid_client_metadata"

    def test_alg_with_key_but_not_advertised_refused(self, make_provider: Callable[..., Provider],
                                                     keys: dict[str, SigningKey]) -> None:
        from conftest import configuration

        provider = make_provider(signing_key=keys["RS256"], signing_keys=[keys["EdDSA"]],
                                 config={**configuration(),
                                         "userinfo_signing_alg_values_supported": ["RS256"]})
        self.register(provider, id_token_signed_response_alg="EdDSA")
        with pytest.raises(InvalidClientRegistrationRequest):
            self.register(provider, userinfo_signed_response_alg="EdDSA")


# -- verification of our own tokens and rotation ------------------------------------------------

class TestRotation:
    def test_publish_switch_retire_remove(self, make_provider: Callable[..., Provider],
                                          keys: dict[str, SigningKey]) -> None:
        old, new = keys["RS256"], SigningKey(keys["PS256"].private_key, "RS256", kid="rs-next")
        client_db = clients()
        client_db[CLIENT_ID]["post_logout_redirect_uris"] = ["https://rp.example.com/bye"]

        def build(active: SigningKey, published: list[Any]) -> Provider:
            return make_provider(signing_key=active, published_keys=published,
                                 client_db=client_db)

        def logout_redirect(provider: Provider, hint: str) -> Any:
            return provider.do_post_logout_redirect(EndSessionRequest(
                id_token_hint=hint, post_logout_redirect_uri="https://rp.example.com/bye"))

        # 1. the next key is published, not used
        provider = build(old, [new])
        assert [k["kid"] for k in provider.jwks["keys"]] == ["rs", "rs-next"]
        _, tokens = code_flow(provider)
        before = tokens["id_token"]
        assert header_of(before)["kid"] == "rs"
        # 2. switch: new tokens carry the new kid; old ones still verify (logout)
        provider = build(new, [old])
        _, tokens = code_flow(provider)
        after = tokens["id_token"]
        assert header_of(after)["kid"] == "rs-next"
        assert provider.verify_id_token_hint(before) is not None
        assert logout_redirect(provider, before) == "https://rp.example.com/bye"
        # ... and RPs verify both with the published JWK Set
        for token in (before, after):
            authlib_decode(token, provider.jwks, ["RS256"])
        # 3. retired: the public JWK alone is enough
        provider = build(new, [old.to_jwk()])
        assert provider.verify_id_token_hint(before) is not None
        # 4. removed: no longer accepted
        provider = build(new, [])
        assert provider.verify_id_token_hint(before) is None
        assert provider.verify_id_token_hint(after) is not None
        assert logout_redirect(provider, before) is None
        with pytest.raises(InvalidEndSessionRequest):
            provider.logout_user(end_session_request=EndSessionRequest(id_token_hint=before))

    def test_hint_signed_by_other_signing_key_verifies(self, multi_key_provider: Provider
                                                       ) -> None:
        register_alg(multi_key_provider, id_token_signed_response_alg="EdDSA")
        _, tokens = code_flow(multi_key_provider)
        assert multi_key_provider.verify_id_token_hint(tokens["id_token"]) is not None


# -- hostile tokens (RFC 8725 3.1; SECURITY.md "Logout") -----------------------------------------

class TestHostileHints:
    @pytest.fixture
    def claims(self) -> dict[str, Any]:
        return {"iss": ISSUER, "sub": "alice-sub", "aud": CLIENT_ID, "iat": 1, "exp": 2}

    def test_genuine_control(self, multi_key_provider: Provider, keys: dict[str, SigningKey],
                             claims: dict[str, Any]) -> None:
        for key in keys.values():
            assert multi_key_provider.verify_id_token_hint(jws_sign(claims, key)) == claims

    def test_unknown_kid(self, multi_key_provider: Provider, keys: dict[str, SigningKey],
                         claims: dict[str, Any]) -> None:
        token = jws_sign(claims, keys["RS256"], {"kid": "unknown"})
        assert multi_key_provider.verify_id_token_hint(token) is None

    @pytest.mark.parametrize("signer,kid", [("RS256", "ps"), ("PS256", "rs"), ("EdDSA", "es"),
                                            ("ES256", "ed")])
    def test_kid_of_another_key(self, multi_key_provider: Provider, keys: dict[str, SigningKey],
                                claims: dict[str, Any], signer: str, kid: str) -> None:
        token = jws_sign(claims, keys[signer], {"kid": kid})
        assert multi_key_provider.verify_id_token_hint(token) is None

    def test_alg_does_not_match_the_kid(self, multi_key_provider: Provider,
                                        keys: dict[str, SigningKey],
                                        claims: dict[str, Any]) -> None:
        # the RS256 key itself, signing with PSS under its own kid
        pss = SigningKey(keys["RS256"].private_key, "PS256", kid="rs")
        assert multi_key_provider.verify_id_token_hint(jws_sign(claims, pss)) is None
        # an RS* alg of another size with the RS256 key's kid
        rs512 = SigningKey(keys["RS256"].private_key, "RS512", kid="rs")
        assert multi_key_provider.verify_id_token_hint(jws_sign(claims, rs512)) is None

    def test_alg_none(self, multi_key_provider: Provider, claims: dict[str, Any]) -> None:
        for kid in ("rs", "ed", None):
            header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
            token = (b64url_encode(json.dumps(header).encode()) + "."
                     + b64url_encode(json.dumps(claims).encode()) + ".")
            assert multi_key_provider.verify_id_token_hint(token) is None

    @pytest.mark.parametrize("alg", ALGS)
    def test_hmac_with_the_public_key_as_secret(self, multi_key_provider: Provider,
                                                keys: dict[str, SigningKey],
                                                claims: dict[str, Any], alg: str) -> None:
        key = keys[alg]
        pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        secrets = [pem, json.dumps(key.to_jwk()).encode(),
                   json.dumps(multi_key_provider.jwks).encode()]
        for secret in secrets:
            for kid in (key.kid, None):
                header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
                signing_input = (b64url_encode(json.dumps(header).encode()) + "."
                                 + b64url_encode(json.dumps(claims).encode()))
                mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
                token = signing_input + "." + b64url_encode(mac)
                assert multi_key_provider.verify_id_token_hint(token) is None

    def test_foreign_key_with_our_kid(self, multi_key_provider: Provider,
                                      claims: dict[str, Any]) -> None:
        foreign = SigningKey(ed25519.Ed25519PrivateKey.generate(), kid="ed")
        assert multi_key_provider.verify_id_token_hint(jws_sign(claims, foreign)) is None

    def test_published_key_of_another_issuer_claim(self, multi_key_provider: Provider,
                                                   keys: dict[str, SigningKey],
                                                   claims: dict[str, Any]) -> None:
        token = jws_sign({**claims, "iss": "https://evil.example.com"}, keys["EdDSA"])
        assert multi_key_provider.verify_id_token_hint(token) is None


# -- interop: Authlib as the RP ------------------------------------------------------------------

class TestAuthlibInterop:
    @pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA"])
    def test_id_tokens_validate_with_authlib(self, multi_key_provider: Provider,
                                             alg: str) -> None:
        register_alg(multi_key_provider, id_token_signed_response_alg=alg)
        params, tokens = code_flow(multi_key_provider, "code id_token token")
        jwks = json.loads(json.dumps(multi_key_provider.jwks))  # as served at jwks_uri
        algs = multi_key_provider.provider_configuration["id_token_signing_alg_values_supported"]
        for id_token, claims_cls, extra in (
                (tokens["id_token"], CodeIDToken, {"access_token": tokens["access_token"]}),
                (params["id_token"], HybridIDToken, {"access_token": params["access_token"],
                                                     "code": params["code"]})):
            token = authlib_decode(id_token, jwks, algs)
            assert token.header["alg"] == alg
            claims = claims_cls(
                token.claims, token.header,
                {"iss": {"essential": True, "values": [ISSUER]},
                 "aud": {"essential": True, "values": [CLIENT_ID]}},
                {"nonce": NONCE, "client_id": CLIENT_ID, **extra})
            claims.validate(now=claims["iat"], leeway=0)  # at_hash, c_hash included

    def test_authlib_refuses_a_token_of_a_removed_key(self, make_provider: Callable[..., Provider],
                                                      keys: dict[str, SigningKey]) -> None:
        from joserfc.errors import JoseError

        provider = make_provider(signing_key=keys["EdDSA"])
        _, tokens = code_flow(provider)
        rotated = make_provider(signing_key=keys["ES256"])
        with pytest.raises((JoseError, ValueError)):
            authlib_decode(tokens["id_token"], rotated.jwks, ["ES256", "EdDSA"])

    def test_verification_key_round_trip_with_authlib_jwks(self, keys: dict[str, SigningKey]
                                                           ) -> None:
        for key in keys.values():
            exported = KeySet.import_key_set({"keys": [key.to_jwk()]}).as_dict()["keys"][0]
            assert VerificationKey.from_key(exported).to_jwk() == key.to_jwk()
