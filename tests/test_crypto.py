"""Unit tests of pyop.crypto: JWS signing/verification, key conversion, hashes, thumbprints."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pyop.crypto import (
    SUPPORTED_ALGS,
    JWSError,
    SigningKey,
    VerificationKey,
    b64url_decode,
    b64url_encode,
    hash_for_alg,
    jwk_thumbprint,
    jws_sign,
    jws_verify,
    left_hash,
)

PAYLOAD = {"iss": "https://op.example.com", "sub": "alice", "n": 1, "unicode": "\u00e9\u2603"}

# RFC 7638 3.1
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
         "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
         "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v"
         "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")
    return (json.loads(b64url_decode(header)), json.loads(b64url_decode(payload)),
            b64url_decode(signature))


def make_token(header: dict[str, Any], payload: Any, signature: bytes = b"sig") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     b64(signature)])


@pytest.fixture(scope="module")
def rsa_key(rsa_private_key: rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    return rsa_private_key


@pytest.fixture(scope="module")
def keys(rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return {
        "RSA": rsa_key,
        "P-256": ec.generate_private_key(ec.SECP256R1()),
        "P-384": ec.generate_private_key(ec.SECP384R1()),
        "P-521": ec.generate_private_key(ec.SECP521R1()),
        "Ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


ALG_KEYS = [("RS256", "RSA"), ("RS384", "RSA"), ("RS512", "RSA"), ("PS256", "RSA"),
            ("PS384", "RSA"), ("PS512", "RSA"), ("ES256", "P-256"), ("ES384", "P-384"),
            ("ES512", "P-521"), ("EdDSA", "Ed25519")]


class TestSignVerify:
    @pytest.mark.parametrize("alg,key_name", ALG_KEYS)
    def test_round_trip(self, keys: dict[str, Any], alg: str, key_name: str) -> None:
        private = keys[key_name]
        signing = SigningKey(private, alg)
        token = jws_sign(PAYLOAD, signing)
        header, payload, _ = segments(token)
        assert signing.kid is None
        assert header == {"alg": alg}  # a key without kid signs without kid (RFC 7515 4.1.4)
        assert payload == PAYLOAD
        assert jws_verify(token, [signing]) == PAYLOAD
        public = VerificationKey(private.public_key(), alg)
        assert public.kid == signing.kid
        assert jws_verify(token, [public]) == PAYLOAD
        published = VerificationKey.from_jwk(signing.to_jwk())
        assert jws_verify(token, [published]) == PAYLOAD

    def test_rs256_signature_checked_independently(self, rsa_key: rsa.RSAPrivateKey) -> None:
        token = jws_sign(PAYLOAD, SigningKey(rsa_key))
        header_b64, payload_b64, signature_b64 = token.split(".")
        rsa_key.public_key().verify(b64url_decode(signature_b64),
                                    (header_b64 + "." + payload_b64).encode("ascii"),
                                    padding.PKCS1v15(), hashes.SHA256())

    def test_ps256_signature_checked_independently(self, rsa_key: rsa.RSAPrivateKey) -> None:
        token = jws_sign(PAYLOAD, SigningKey(rsa_key, "PS256"))
        header_b64, payload_b64, signature_b64 = token.split(".")
        rsa_key.public_key().verify(
            b64url_decode(signature_b64), (header_b64 + "." + payload_b64).encode("ascii"),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())

    @pytest.mark.parametrize("curve,hash_cls,size", [(ec.SECP256R1, hashes.SHA256, 32),
                                                     (ec.SECP384R1, hashes.SHA384, 48)])
    def test_es_signature_is_raw_r_s(self, curve: Any, hash_cls: Any, size: int) -> None:
        private = ec.generate_private_key(curve())
        token = jws_sign(PAYLOAD, SigningKey(private))
        header_b64, payload_b64, signature_b64 = token.split(".")
        signature = b64url_decode(signature_b64)
        assert len(signature) == 2 * size  # RFC 7518 3.4: R || S, fixed length
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        private.public_key().verify(encode_dss_signature(r, s),
                                    (header_b64 + "." + payload_b64).encode("ascii"),
                                    ec.ECDSA(hash_cls()))

    def test_eddsa_checked_independently(self, keys: dict[str, Any]) -> None:
        private = keys["Ed25519"]
        token = jws_sign(PAYLOAD, SigningKey(private))
        header_b64, payload_b64, signature_b64 = token.split(".")
        private.public_key().verify(b64url_decode(signature_b64),
                                    (header_b64 + "." + payload_b64).encode("ascii"))

    def test_extra_headers(self, rsa_key: rsa.RSAPrivateKey) -> None:
        key = SigningKey(rsa_key, kid="k1")
        header, _, _ = segments(jws_sign({}, key, {"typ": "JWT"}))
        assert header == {"alg": "RS256", "kid": "k1", "typ": "JWT"}

    def test_default_algs(self, keys: dict[str, Any]) -> None:
        assert SigningKey(keys["RSA"]).alg == "RS256"
        assert SigningKey(keys["P-256"]).alg == "ES256"
        assert SigningKey(keys["P-384"]).alg == "ES384"
        assert SigningKey(keys["P-521"]).alg == "ES512"
        assert SigningKey(keys["Ed25519"]).alg == "EdDSA"

    def test_no_kid_by_default_thumbprint_on_request(self, keys: dict[str, Any]) -> None:
        for private in keys.values():
            key = SigningKey(private)
            assert key.kid is None and "kid" not in key.to_jwk()
            named = key.with_thumbprint_kid()
            assert named is not key and key.kid is None  # a copy: the key given is unchanged
            assert named.kid == key.thumbprint == jwk_thumbprint(key.public_jwk)
            assert named.to_jwk()["kid"] == named.kid
            assert segments(jws_sign({}, named))[0] == {"alg": key.alg, "kid": named.kid}
            assert segments(jws_sign({}, key))[0] == {"alg": key.alg}
            assert SigningKey(private, kid="k").with_thumbprint_kid().kid == "k"

    def test_kid_less_key_accepts_its_thumbprint(self, rsa_key: rsa.RSAPrivateKey) -> None:
        # tokens signed by an earlier release carried the thumbprint as kid
        key = SigningKey(rsa_key)
        token = jws_sign(PAYLOAD, key.with_thumbprint_kid())
        assert jws_verify(token, [key]) == PAYLOAD
        with pytest.raises(JWSError):
            jws_verify(jws_sign(PAYLOAD, key, {"kid": "other"}), [key])

    def test_jwkest_key_published_as_given(self, jwkest_signing_key: Any) -> None:
        from jwkest.jwk import RSAKey

        private = jwkest_signing_key.key
        for given in (RSAKey(key=private, use="sig", alg="RS256"), RSAKey(key=private),
                      RSAKey(key=private, use="sig", alg="RS256", kid="k1")):
            key = SigningKey.from_key(given)
            assert key.to_jwk() == given.serialize(private=False)
            assert list(key.to_jwk()) == list(given.serialize(private=False))
            assert VerificationKey.from_key(given).to_jwk() == given.serialize(private=False)

    @pytest.mark.parametrize("alg,key_name", [("ES256", "RSA"), ("EdDSA", "RSA"),
                                              ("ES384", "P-256"), ("RS256", "P-256"),
                                              ("HS256", "RSA"), ("none", "RSA")])
    def test_alg_must_fit_key(self, keys: dict[str, Any], alg: str, key_name: str) -> None:
        with pytest.raises(JWSError):
            SigningKey(keys[key_name], alg)

    def test_to_jwk_has_no_private_members(self, keys: dict[str, Any]) -> None:
        for private in keys.values():
            jwk = SigningKey(private, kid="k").to_jwk()
            assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
            assert jwk["use"] == "sig" and jwk["kid"] == "k"
        ec_jwk = SigningKey(keys["P-521"]).to_jwk()
        assert ec_jwk["crv"] == "P-521" and len(b64url_decode(ec_jwk["x"])) == 66
        assert SigningKey(keys["Ed25519"]).to_jwk()["kty"] == "OKP"


class TestJwsVerifyRejects:
    @pytest.fixture(scope="class")
    @classmethod
    def key(cls, rsa_private_key: rsa.RSAPrivateKey) -> SigningKey:
        return SigningKey(rsa_private_key, kid="main")

    @pytest.fixture(scope="class")
    @classmethod
    def token(cls, key: SigningKey) -> str:
        return jws_sign(PAYLOAD, key)

    def test_alg_none(self, key: SigningKey) -> None:
        unsigned = make_token({"alg": "none", "kid": "main"}, PAYLOAD, b"")
        with pytest.raises(JWSError):
            jws_verify(unsigned, [key])
        with pytest.raises(JWSError):
            jws_verify(unsigned[: unsigned.rindex(".") + 1], [key])

    def test_missing_alg(self, key: SigningKey) -> None:
        with pytest.raises(JWSError):
            jws_verify(make_token({"kid": "main"}, PAYLOAD), [key])

    def test_wrong_kid(self, key: SigningKey, token: str) -> None:
        header_b64, payload_b64, signature_b64 = token.split(".")
        other_header = b64(json.dumps({"alg": "RS256", "kid": "other"}).encode())
        forged = other_header + "." + payload_b64 + "." + signature_b64
        with pytest.raises(JWSError):
            jws_verify(forged, [key])
        # a key with the right kid but another alg does not match either
        with pytest.raises(JWSError):
            jws_verify(token, [VerificationKey(key.public_key, "RS384", "main")])

    def test_wrong_alg(self, key: SigningKey, token: str) -> None:
        _, payload_b64, signature_b64 = token.split(".")
        header = b64(json.dumps({"alg": "PS256", "kid": "main"}).encode())
        with pytest.raises(JWSError):
            jws_verify(header + "." + payload_b64 + "." + signature_b64, [key])

    def test_hmac_alg_confusion(self, key: SigningKey) -> None:
        import hmac as hmac_module

        public_pem = json.dumps(key.to_jwk()).encode()
        header = b64(json.dumps({"alg": "HS256", "kid": "main"}).encode())
        payload = b64(json.dumps(PAYLOAD).encode())
        mac = hmac_module.new(public_pem, (header + "." + payload).encode(), hashlib.sha256)
        with pytest.raises(JWSError):
            jws_verify(header + "." + payload + "." + b64(mac.digest()), [key])

    def test_tampered_payload(self, key: SigningKey, token: str) -> None:
        header_b64, _, signature_b64 = token.split(".")
        payload = b64(json.dumps(dict(PAYLOAD, sub="mallory")).encode())
        with pytest.raises(JWSError, match="signature verification failed"):
            jws_verify(header_b64 + "." + payload + "." + signature_b64, [key])

    def test_tampered_signature(self, key: SigningKey, token: str) -> None:
        header_b64, payload_b64, signature_b64 = token.split(".")
        signature = bytearray(b64url_decode(signature_b64))
        signature[0] ^= 1
        with pytest.raises(JWSError):
            jws_verify(header_b64 + "." + payload_b64 + "." + b64(bytes(signature)), [key])

    def test_foreign_key(self, token: str) -> None:
        other = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                           kid="main")
        with pytest.raises(JWSError):
            jws_verify(token, [other])

    def test_no_keys(self, token: str) -> None:
        with pytest.raises(JWSError):
            jws_verify(token, [])

    def test_header_without_kid_matches_by_alg(self, key: SigningKey) -> None:
        token = jws_sign(PAYLOAD, key, {"kid": None})
        header, _, _ = segments(token)
        assert header["kid"] is None
        assert jws_verify(token, [key]) == PAYLOAD

    def test_several_keys(self, key: SigningKey, token: str) -> None:
        ec_key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        other_rsa = VerificationKey(key.public_key, "RS256", "main-old")
        assert jws_verify(token, [ec_key, other_rsa, key]) == PAYLOAD

    @pytest.mark.parametrize("malformed", [
        None, 42, b"a.b.c", "", "abc", "a.b", "a.b.c.d", "x" * (64 * 1024 + 1) + "..",
        "!!!.e30.AAAA", "e30.!!!.AAAA", "e30.e30.!!!", "e30=.e30.AAAA", "e30.e30.AA+A",
        "e30.e30.AA/A", "\u00e9.e30.AAAA",
    ])
    def test_malformed_tokens(self, key: SigningKey, malformed: Any) -> None:
        with pytest.raises(JWSError):
            jws_verify(malformed, [key])

    @pytest.mark.parametrize("header,payload", [
        (b"not json", b"{}"),
        (b"[]", b"{}"),
        (b'{"alg":"RS256"}', b"[1]"),
        (b'{"alg":"RS256"}', b"\xff\xfe"),
        (b'"RS256"', b"{}"),
        (b'{"alg":5}', b"{}"),
    ])
    def test_malformed_segments(self, key: SigningKey, header: bytes, payload: bytes) -> None:
        with pytest.raises(JWSError):
            jws_verify(b64(header) + "." + b64(payload) + ".AAAA", [key])

    @pytest.mark.parametrize("where", ["header", "payload"])
    def test_deeply_nested_json(self, key: SigningKey, where: str) -> None:
        nested = b64(b"[" * 30_000)
        plain = b64(b'{"alg":"RS256"}')
        token = (nested + "." + plain if where == "header" else plain + "." + nested) + ".AAAA"
        assert len(token) < 64 * 1024
        with pytest.raises(JWSError):
            jws_verify(token, [key])


class TestVerificationKey:
    def test_verify_never_raises(self, rsa_private_key: rsa.RSAPrivateKey) -> None:
        ec_private = ec.generate_private_key(ec.SECP256R1())
        mismatched = VerificationKey(ec_private.public_key(), "RS256")  # alg of another kty
        assert mismatched.verify(b"data", b"sig") is False
        es = VerificationKey(ec_private.public_key())
        assert es.verify(b"data", b"short") is False
        assert es.verify(b"data", b"\x00" * 64) is False
        rs = VerificationKey(rsa_private_key.public_key())
        assert rs.verify(b"data", b"\x00" * 256) is False
        ed = VerificationKey(ed25519.Ed25519PrivateKey.generate().public_key())
        assert ed.verify(b"data", b"x") is False

    def test_unsupported_alg(self, rsa_private_key: rsa.RSAPrivateKey) -> None:
        with pytest.raises(JWSError, match="unsupported alg"):
            VerificationKey(rsa_private_key.public_key(), "HS256")

    def test_from_jwk_with_integer_members(self, rsa_private_key: rsa.RSAPrivateKey) -> None:
        numbers = rsa_private_key.public_key().public_numbers()
        key = VerificationKey.from_jwk({"kty": "RSA", "n": numbers.n, "e": numbers.e})
        assert key.public_jwk == SigningKey(rsa_private_key).public_jwk

    def test_unsupported_curve(self) -> None:
        with pytest.raises(JWSError):
            SigningKey(ec.generate_private_key(ec.SECP256K1()))

    def test_from_jwk(self, rsa_private_key: rsa.RSAPrivateKey) -> None:
        key = VerificationKey.from_jwk(RFC7638_JWK)
        assert key.kid == "2011-04-29" and key.alg == "RS256"
        assert key.public_jwk == {"kty": "RSA", "n": RFC7638_JWK["n"], "e": "AQAB"}
        ed = ed25519.Ed25519PrivateKey.generate()
        jwk = SigningKey(ed).to_jwk()
        assert VerificationKey.from_jwk(jwk).alg == "EdDSA"

    @pytest.mark.parametrize("jwk", [
        {"kty": "oct", "k": "abc"},
        {"kty": "RSA", "n": "AQAB"},
        {"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
        {},
    ])
    def test_from_invalid_jwk(self, jwk: dict[str, Any]) -> None:
        with pytest.raises(JWSError):
            VerificationKey.from_jwk(jwk)


class TestKeyConversion:
    def test_from_jwkest_rsa(self, jwkest_signing_key: Any,
                             rsa_private_key: rsa.RSAPrivateKey) -> None:
        key = SigningKey.from_jwkest(jwkest_signing_key)
        assert key.alg == "RS256"
        assert key.private_key.private_numbers() == rsa_private_key.private_numbers()
        assert jws_verify(jws_sign(PAYLOAD, key),
                          [VerificationKey(rsa_private_key.public_key())]) == PAYLOAD

    def test_from_jwkest_rsa_alg_kid_and_recovered_primes(self) -> None:
        from Cryptodome.PublicKey import RSA
        from jwkest.jwk import RSAKey

        full = RSAKey(key=RSA.generate(2048), alg="PS384", kid="jwkest-kid")
        key = SigningKey.from_jwkest(full)
        assert (key.alg, key.kid) == ("PS384", "jwkest-kid")
        members = full.serialize(private=True)
        without_primes = RSAKey(n=members["n"], e=members["e"], d=members["d"])
        recovered = SigningKey.from_jwkest(without_primes)
        assert recovered.alg == "RS256"
        assert recovered.public_jwk == key.public_jwk
        assert jws_verify(jws_sign(PAYLOAD, recovered),
                          [VerificationKey(key.public_key)]) == PAYLOAD

    def test_from_jwkest_ec_load_key(self) -> None:
        from jwkest.ecc import P256
        from jwkest.jwk import ECKey

        jwkest_key = ECKey().load_key(P256)
        key = SigningKey.from_jwkest(jwkest_key)
        assert key.alg == "ES256"
        serialized = jwkest_key.serialize()
        assert key.public_jwk == {"kty": "EC", "crv": "P-256", "x": serialized["x"],
                                  "y": serialized["y"]}
        assert jws_verify(jws_sign(PAYLOAD, key), [VerificationKey.from_jwk(serialized)]) \
            == PAYLOAD

    def test_from_jwkest_ec_constructed(self) -> None:
        from jwkest.jwk import ECKey

        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.private_numbers()
        as_b64 = [b64(v.to_bytes(32, "big")) for v in (numbers.public_numbers.x,
                                                        numbers.public_numbers.y,
                                                        numbers.private_value)]
        jwkest_key = ECKey(crv="P-256", x=as_b64[0], y=as_b64[1], d=as_b64[2], alg="ES256",
                           kid="ec-1")
        key = SigningKey.from_jwkest(jwkest_key)
        assert key.kid == "ec-1"
        assert jws_verify(jws_sign(PAYLOAD, key),
                          [VerificationKey(private.public_key(), kid="ec-1")]) == PAYLOAD

    def test_from_jwkest_public_keys_refused(self) -> None:
        from Cryptodome.PublicKey import RSA
        from jwkest.jwk import ECKey, RSAKey

        with pytest.raises(JWSError, match="private"):
            SigningKey.from_jwkest(RSAKey(key=RSA.generate(2048).publickey()))
        private = ec.generate_private_key(ec.SECP256R1()).private_numbers()
        public_only = ECKey(crv="P-256", x=b64(private.public_numbers.x.to_bytes(32, "big")),
                            y=b64(private.public_numbers.y.to_bytes(32, "big")))
        with pytest.raises(JWSError):
            SigningKey.from_jwkest(public_only)

    @pytest.mark.parametrize("not_a_key", ["a string", None, 42, object()])
    def test_from_jwkest_garbage(self, not_a_key: Any) -> None:
        with pytest.raises(JWSError):
            SigningKey.from_jwkest(not_a_key)

    def test_from_jwkest_symmetric_refused(self) -> None:
        from jwkest.jwk import SYMKey

        with pytest.raises(JWSError):
            SigningKey.from_jwkest(SYMKey(key=b"0123456789abcdef"))

    def test_from_jwkest_like_okp(self) -> None:
        private = ed25519.Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

        class OKPKey:
            alg = ""
            kid = ""

            def serialize(self, private: bool = False) -> dict[str, Any]:
                return {"kty": "OKP", "crv": "Ed25519", "d": b64(raw)}

        key = SigningKey.from_jwkest(OKPKey())
        assert key.alg == "EdDSA"
        assert jws_verify(jws_sign(PAYLOAD, key), [VerificationKey(private.public_key())]) \
            == PAYLOAD

    def test_from_jwkest_int_members(self, rsa_private_key: rsa.RSAPrivateKey) -> None:
        numbers = rsa_private_key.private_numbers()

        class IntKey:
            def serialize(self, private: bool = False) -> dict[str, Any]:
                return {"kty": "RSA", "n": numbers.public_numbers.n,
                        "e": numbers.public_numbers.e, "d": numbers.d}

        assert SigningKey.from_jwkest(IntKey()).public_jwk == SigningKey(
            rsa_private_key).public_jwk

    def test_from_key(self, rsa_private_key: rsa.RSAPrivateKey, jwkest_signing_key: Any) -> None:
        key = SigningKey(rsa_private_key)
        assert SigningKey.from_key(key) is key
        assert SigningKey.from_key(rsa_private_key).public_jwk == key.public_jwk
        assert SigningKey.from_key(jwkest_signing_key).public_jwk == key.public_jwk
        assert SigningKey.from_key(ec.generate_private_key(ec.SECP384R1())).alg == "ES384"
        assert SigningKey.from_key(ed25519.Ed25519PrivateKey.generate()).alg == "EdDSA"
        with pytest.raises(JWSError):
            SigningKey.from_key("nope")


class TestVerificationKeyFromKey:
    """``VerificationKey.from_key``: the forms accepted for ``published_keys``."""

    def test_forms(self, keys: dict[str, Any]) -> None:
        for private in keys.values():
            signing = SigningKey(private)
            assert VerificationKey.from_key(signing) is signing
            from_private = VerificationKey.from_key(private)
            from_public = VerificationKey.from_key(private.public_key())
            from_jwk = VerificationKey.from_key(signing.to_jwk())
            for key in (from_private, from_public, from_jwk):
                assert type(key) is VerificationKey
                assert key.to_jwk() == signing.to_jwk()

    def test_private_jwk_dict_publishes_public_part_only(self, keys: dict[str, Any]) -> None:
        private_jwk = {"kty": "OKP", "crv": "Ed25519", "x": SigningKey(
            keys["Ed25519"]).public_jwk["x"], "d": "ignored", "kid": "ed-1"}
        key = VerificationKey.from_key(private_jwk)
        assert key.kid == "ed-1" and "d" not in key.to_jwk()

    def test_jwkest_keys_keep_alg_and_kid(self, jwkest_signing_key: Any) -> None:
        from jwkest.jwk import RSAKey

        private = jwkest_signing_key.key
        public = VerificationKey.from_key(RSAKey(key=private.publickey(), alg="PS256",
                                                 kid="next"))
        assert (public.alg, public.kid) == ("PS256", "next")
        default = VerificationKey.from_key(RSAKey(key=private))
        assert default.alg == "RS256" and default.kid is None
        assert default.with_thumbprint_kid().kid == jwk_thumbprint(default.public_jwk)
        assert "d" not in default.to_jwk()

    @pytest.mark.parametrize("jwk", [
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
         "alg": "RS256"},
        {"kty": "RSA", "n": "sXch", "e": "AQAB", "alg": "ES256"},
        {"kty": "RSA", "n": "sXch", "e": "AQAB", "alg": "HS256"},
        {"kty": "oct", "k": "c2VjcmV0"},
    ])
    def test_refuses_alg_that_does_not_fit(self, jwk: dict[str, Any]) -> None:
        with pytest.raises(JWSError):
            VerificationKey.from_key(jwk)

    def test_refuses_other_objects(self) -> None:
        for not_a_key in ("nope", 5, None, b"key"):
            with pytest.raises(JWSError):
                VerificationKey.from_key(not_a_key)

    def test_ed25519_signing_key_refuses_other_algs(self, keys: dict[str, Any]) -> None:
        for alg in ("RS256", "PS256", "ES256"):
            with pytest.raises(JWSError, match="Ed25519"):
                SigningKey(keys["Ed25519"], alg)


class TestHashes:
    @pytest.mark.parametrize("alg,hash_fn", [
        ("RS256", hashlib.sha256), ("PS256", hashlib.sha256), ("ES256", hashlib.sha256),
        ("HS256", hashlib.sha256), ("RS384", hashlib.sha384), ("ES384", hashlib.sha384),
        ("PS512", hashlib.sha512), ("ES512", hashlib.sha512), ("EdDSA", hashlib.sha512),
    ])
    def test_left_hash(self, alg: str, hash_fn: Any) -> None:
        value = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        digest = hash_fn(value.encode("ascii")).digest()
        expected = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
        assert left_hash(value, alg) == expected
        assert hash_for_alg(alg) is hash_fn
        for other in ("", "x", "a" * 64, "b" * 200):
            digest = hash_fn(other.encode("ascii")).digest()
            assert left_hash(other, alg) == base64.urlsafe_b64encode(
                digest[: len(digest) // 2]).rstrip(b"=").decode()

    def test_left_hash_known_value(self) -> None:
        # OIDC Core A.3/A.4 style: SHA-256 of the access token, left 128 bits
        token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        assert left_hash(token, "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"
        assert len(left_hash("x", "RS256")) == 22  # 16 bytes, base64url without padding

    def test_unknown_alg(self) -> None:
        with pytest.raises(JWSError):
            hash_for_alg("HS2")
        with pytest.raises(JWSError):
            left_hash("x", "none")


class TestThumbprintAndBase64:
    def test_rfc7638_example(self) -> None:
        assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT

    def test_thumbprint_ignores_other_members(self) -> None:
        trimmed = {k: RFC7638_JWK[k] for k in ("kty", "n", "e")}
        assert jwk_thumbprint(dict(trimmed, use="sig", extra=1)) == RFC7638_THUMBPRINT

    def test_thumbprint_ec_and_okp(self) -> None:
        jwk = {"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "kid": "ignored"}
        expected = b64(hashlib.sha256(b'{"crv":"P-256","kty":"EC","x":"a","y":"b"}').digest())
        assert jwk_thumbprint(jwk) == expected
        okp = {"kty": "OKP", "crv": "Ed25519", "x": "c"}
        expected = b64(hashlib.sha256(b'{"crv":"Ed25519","kty":"OKP","x":"c"}').digest())
        assert jwk_thumbprint(okp) == expected

    def test_b64url(self) -> None:
        assert b64url_encode(b"\xfb\xff") == "-_8"
        assert b64url_decode("-_8") == b"\xfb\xff"
        assert b64url_decode(b"-_8") == b"\xfb\xff"
        assert b64url_decode("") == b""
        for bad in ("-_8=", "+/8", "\u00e9", b"a=="):
            with pytest.raises(JWSError):
                b64url_decode(bad)
        with pytest.raises(JWSError):
            b64url_decode("a")  # impossible length

    def test_supported_algs(self) -> None:
        assert SUPPORTED_ALGS == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                  "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
        assert "none" not in SUPPORTED_ALGS and "HS256" not in SUPPORTED_ALGS


def test_invalid_signature_is_cryptography_exception() -> None:
    # sanity check of the independent verification used above
    private = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidSignature):
        private.public_key().verify(encode_dss_signature(1, 1), b"x", ec.ECDSA(hashes.SHA256()))


class TestPreparedSigning:
    """``SigningKey`` prepares its signer and JWS header once; results are unchanged."""

    @pytest.mark.parametrize("make, alg", [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "PS384"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ])
    def test_header_segment_is_the_encoded_header(self, make: Any, alg: str) -> None:
        key = SigningKey(make(), alg)
        for headers in (None, {"typ": "JWT"}, {"typ": "JWT"}, {"typ": "JWT", "cty": "x"}):
            expected = {"alg": alg, **(headers or {})}
            segment = key.header_segment(headers)
            assert json.loads(b64url_decode(segment)) == expected
            token = jws_sign({"a": 1}, key, headers)
            assert token.split(".")[0] == segment
            assert jws_verify(token, [VerificationKey(key.private_key.public_key(), alg,
                                                      key.kid)]) == {"a": 1}

    def test_equal_but_differently_typed_header_values_are_not_confused(self) -> None:
        key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        one, true = key.header_segment({"x": 1}), key.header_segment({"x": True})
        assert json.loads(b64url_decode(one))["x"] == 1
        assert json.loads(b64url_decode(true))["x"] is True
        assert json.loads(b64url_decode(key.header_segment({"x": 1.0})))["x"] == 1.0
        assert b64url_decode(key.header_segment({"x": 1.0})) != b64url_decode(one)

    def test_unhashable_header_values_are_encoded_each_time(self) -> None:
        key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        segment = key.header_segment({"crit": ["exp"]})
        assert json.loads(b64url_decode(segment))["crit"] == ["exp"]
        assert key._header_segments == {}

    def test_changed_kid_and_alg_are_followed(self) -> None:
        key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        public = key.private_key.public_key()
        jws_sign({"a": 1}, key)
        key.kid = "renamed"
        key.alg = "PS256"
        token = jws_sign({"a": 1}, key)
        header = json.loads(b64url_decode(token.split(".")[0]))
        assert header == {"alg": "PS256", "kid": "renamed"}
        assert jws_verify(token, [VerificationKey(public, "PS256", "renamed")]) == {"a": 1}
        # PS256 signatures do not verify as RS256: the signer followed the alg
        with pytest.raises(JWSError):
            jws_verify(token.replace(token.split(".")[0], b64url_encode(
                json.dumps({"alg": "RS256", "kid": "renamed"}).encode())),
                [VerificationKey(public, "RS256", "renamed")])

    def test_header_cache_is_bounded(self) -> None:
        key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        for i in range(100):
            assert json.loads(b64url_decode(key.header_segment({"n": i})))["n"] == i
        assert len(key._header_segments) <= 32
