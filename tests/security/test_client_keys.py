"""SECURITY.md, "Client keys": the public keys clients register (``jwks``; ``jwks_uri``
documents go through the same parsing) are bounded, parsed once, and selected before any
signature is checked.

- RSA keys: an odd public exponent 3..2**256-1 (NIST SP 800-56B 6.2.1) and a modulus of
  2048..8192 bits (RFC 7518 3.3); a huge exponent made every verification cost seconds:
  ``test_nist_sp800_56b_rsa_exponent_bounds_at_registration``,
  ``test_rfc7518_3_3_rsa_modulus_bounds_at_registration``.
- At most ``max_client_keys`` (20) keys per client:
  ``test_bound_max_client_keys_at_registration``.
- A record stored before the bounds: keys out of bounds skipped with a log line, the
  others used: ``test_bound_stored_keys_out_of_bounds_skipped_at_use``,
  ``test_bound_stored_key_count_capped_at_use``.
- Keys selected by the JWS header's ``kid`` and ``alg`` before verification:
  ``test_rfc7515_4_1_4_kid_selects_one_key``,
  ``test_bound_without_kid_only_keys_of_the_alg_are_tried``.
- Each client's keys parsed and built once, not per request; a registration update is
  seen: ``test_bound_keys_built_once_per_client``,
  ``test_bound_registration_update_invalidates_parsed_keys``,
  ``test_bound_bogus_assertion_cost_ratio``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.client_assertion import JWT_BEARER_ASSERTION_TYPE
from pyop.client_keys import INLINE_JWKS_CACHE_SIZE, ClientKeys
from pyop.crypto import SigningKey, VerificationKey, b64url_encode, jws_sign
from pyop.exceptions import InvalidClientAuthentication, InvalidClientRegistrationRequest
from pyop.provider import Provider
from pyop.request_object import DEFAULT_MAX_CLIENT_KEYS, parse_jwk_set, verification_keys

from .helpers import ISSUER, REDIRECT_URI, security_configuration

KEY_CLIENT = "key-client"


def _int_b64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def p521_keys() -> list[SigningKey]:
    return [SigningKey(ec.generate_private_key(ec.SECP521R1()), "ES512", f"k{i}")
            for i in range(DEFAULT_MAX_CLIENT_KEYS)]


def rsa_jwk(key: rsa.RSAPrivateKey, **members: Any) -> dict[str, Any]:
    jwk = VerificationKey(key.public_key()).to_jwk()
    jwk.update(members)
    return jwk


def register(op: Provider, jwks: Any) -> dict[str, Any]:
    body = {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["authorization_code"], "jwks": jwks}
    return op.handle_client_registration_request(json.dumps(body)).to_dict()


def registration_refused(op: Provider, jwks: Any) -> str:
    with pytest.raises(InvalidClientRegistrationRequest) as info:
        register(op, jwks)
    assert info.value.oauth_error == "invalid_client_metadata"
    return str(info.value)


def key_client(jwks: Any) -> dict[str, Any]:
    return {KEY_CLIENT: {"client_id": KEY_CLIENT, "redirect_uris": [REDIRECT_URI],
                         "response_types": ["code"],
                         "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}}


@pytest.fixture
def key_op(make_provider: Callable[..., Provider]) -> Callable[..., Provider]:
    def factory(jwks: Any, **kwargs: Any) -> Provider:
        return make_provider(config=security_configuration(), client_db=key_client(jwks),
                             **kwargs)

    return factory


def assertion(key: SigningKey, now: float, *, kid: Any = "keep", client_id: str = KEY_CLIENT
              ) -> str:
    claims = {"iss": client_id, "sub": client_id, "aud": ISSUER, "exp": int(now) + 60,
              "jti": secrets.token_urlsafe(8)}
    if kid == "keep":
        return jws_sign(claims, key)
    headers = None if kid is None else {"kid": kid}
    unnamed = SigningKey(key.private_key, key.alg)  # signs without a kid header
    return jws_sign(claims, unnamed, headers)


def authenticate(op: Provider, token: str) -> None:
    body = {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": token,
            "token": "x"}
    assert op.handle_introspection_request(urlencode(body))["active"] is False


class Counter:
    """Counts key constructions (``VerificationKey.from_jwk``) and signature checks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built = 0
        self.verified = 0
        from_jwk = VerificationKey.from_jwk.__func__  # type: ignore[attr-defined]
        verify = VerificationKey.verify

        def counting_from_jwk(cls: Any, jwk: Any) -> Any:
            self.built += 1
            return from_jwk(cls, jwk)

        def counting_verify(key: Any, signing_input: bytes, signature: bytes) -> bool:
            self.verified += 1
            return verify(key, signing_input, signature)

        monkeypatch.setattr(VerificationKey, "from_jwk", classmethod(counting_from_jwk))
        monkeypatch.setattr(VerificationKey, "verify", counting_verify)


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    yield Counter(monkeypatch)


# -- registration --------------------------------------------------------------------------------


@pytest.mark.parametrize("e", [2**4096 + 1, 2**256 + 1, 65538, 1, 0],
                         ids=["2^4096+1", "2^256+1", "even", "one", "zero"])
def test_nist_sp800_56b_rsa_exponent_bounds_at_registration(
        op: Provider, rsa_key: rsa.RSAPrivateKey, e: int) -> None:
    message = registration_refused(op, {"keys": [rsa_jwk(rsa_key, e=_int_b64(e) or "AA")]})
    assert "jwks" in message and "exponent" in message
    # the bounds themselves are fine
    for good in (3, 65537, 2**256 - 1):
        assert register(op, {"keys": [rsa_jwk(rsa_key, e=_int_b64(good))]})["client_id"]


def test_rfc7518_3_3_rsa_modulus_bounds_at_registration(op: Provider) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    message = registration_refused(op, {"keys": [rsa_jwk(small)]})
    assert "jwks" in message and "2048" in message
    huge_n = (1 << 8200) | secrets.randbits(8199) | 1
    message = registration_refused(op, {"keys": [{"kty": "RSA", "n": _int_b64(huge_n),
                                                  "e": "AQAB"}]})
    assert "8192" in message


def test_bound_max_client_keys_at_registration(op: Provider,
                                               make_op: Callable[..., Provider],
                                               p521_keys: list[SigningKey]) -> None:
    jwks = {"keys": [key.to_jwk() for key in p521_keys]}
    assert register(op, jwks)["client_id"]  # exactly the bound: accepted
    extra = SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256", "extra").to_jwk()
    message = registration_refused(op, {"keys": jwks["keys"] + [extra]})
    assert "jwks" in message and str(DEFAULT_MAX_CLIENT_KEYS) in message
    # the bound is an option
    assert make_op(max_client_keys=21).max_client_keys == 21
    assert register(make_op(max_client_keys=21), {"keys": jwks["keys"] + [extra]})
    registration_refused(make_op(max_client_keys=2), {"keys": jwks["keys"][:3]})


# -- keys stored before the bounds ---------------------------------------------------------------


def test_bound_stored_keys_out_of_bounds_skipped_at_use(
        key_op: Callable[..., Provider], clock: Any, rsa_key: rsa.RSAPrivateKey,
        p521_keys: list[SigningKey], counter: Counter, caplog: pytest.LogCaptureFixture) -> None:
    huge_e = rsa_jwk(rsa_key, e=_int_b64(2**4096 + 1), kid="huge")
    op = key_op({"keys": [huge_e, p521_keys[0].to_jwk()]})
    with caplog.at_level(logging.WARNING, logger="pyop"):
        authenticate(op, assertion(p521_keys[0], clock()))
    assert counter.built == 1  # the huge-exponent key is never built
    assert any("skipped" in r.getMessage() and "exponent" in r.getMessage()
               for r in caplog.records)


def test_bound_stored_key_count_capped_at_use(
        key_op: Callable[..., Provider], clock: Any, p521_keys: list[SigningKey],
        caplog: pytest.LogCaptureFixture) -> None:
    more = [SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256", f"x{i}")
            for i in range(5)]
    op = key_op({"keys": [k.to_jwk() for k in p521_keys] + [k.to_jwk() for k in more]})
    with caplog.at_level(logging.WARNING, logger="pyop"):
        authenticate(op, assertion(p521_keys[-1], clock()))  # within the first 20: used
        with pytest.raises(InvalidClientAuthentication):
            authenticate(op, assertion(more[0], clock()))  # beyond: not used
    assert any("only the first 20" in r.getMessage() for r in caplog.records)


# -- selection by kid and alg --------------------------------------------------------------------


def test_rfc7515_4_1_4_kid_selects_one_key(key_op: Callable[..., Provider], clock: Any,
                                           p521_keys: list[SigningKey],
                                           counter: Counter) -> None:
    op = key_op({"keys": [k.to_jwk() for k in p521_keys]})
    authenticate(op, assertion(p521_keys[-1], clock()))
    assert counter.verified == 1
    counter.verified = 0
    forged = SigningKey(ec.generate_private_key(ec.SECP521R1()), "ES512", "k3")
    with pytest.raises(InvalidClientAuthentication):
        authenticate(op, assertion(forged, clock()))
    assert counter.verified == 1  # only the key named k3 was tried
    counter.verified = 0
    with pytest.raises(InvalidClientAuthentication):
        authenticate(op, assertion(forged, clock(), kid="no-such-kid"))
    assert counter.verified == 0


def test_bound_without_kid_only_keys_of_the_alg_are_tried(
        key_op: Callable[..., Provider], clock: Any, p521_keys: list[SigningKey],
        rsa_key: rsa.RSAPrivateKey, counter: Counter) -> None:
    p256 = [SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256", f"p{i}")
            for i in range(10)]
    jwks = {"keys": [k.to_jwk() for k in p521_keys[:5]] + [k.to_jwk() for k in p256]
            + [rsa_jwk(rsa_key, kid="r", use="enc"), rsa_jwk(rsa_key, kid="r2",
                                                                 key_ops=["encrypt"])]}
    op = key_op(jwks)
    bogus = SigningKey(ec.generate_private_key(ec.SECP521R1()), "ES512")
    with pytest.raises(InvalidClientAuthentication):
        authenticate(op, assertion(bogus, clock(), kid=None))
    assert counter.verified == 5  # the P-521 keys only
    keys = parse_jwk_set(jwks)
    assert len(verification_keys(keys, "RS256")) == 0  # use=enc, key_ops without verify
    assert len(verification_keys(keys, "ES256")) == 10
    assert len(verification_keys(keys, "ES256", "p3")) == 1


# -- parsed once ---------------------------------------------------------------------------------


def test_bound_keys_built_once_per_client(key_op: Callable[..., Provider], clock: Any,
                                          p521_keys: list[SigningKey],
                                          counter: Counter) -> None:
    op = key_op({"keys": [k.to_jwk() for k in p521_keys]})
    bogus = SigningKey(ec.generate_private_key(ec.SECP521R1()), "ES512", "k0")
    for _ in range(10):
        with pytest.raises(InvalidClientAuthentication):
            authenticate(op, assertion(bogus, clock()))
    assert counter.built == len(p521_keys)  # once, not once (or twice) per request
    assert counter.verified == 10


def test_bound_registration_update_invalidates_parsed_keys(clock: Any,
                                                           p521_keys: list[SigningKey]) -> None:
    client_keys = ClientKeys(clock)
    first, _ = client_keys.jwks(KEY_CLIENT, {"jwks": {"keys": [p521_keys[0].to_jwk()]}})
    again, _ = client_keys.jwks(KEY_CLIENT, {"jwks": {"keys": [p521_keys[0].to_jwk()]}})
    assert again is first
    updated, _ = client_keys.jwks(KEY_CLIENT, {"jwks": {"keys": [p521_keys[1].to_jwk()]}})
    assert updated is not None and [k["kid"] for k in updated] == ["k1"]
    # the cache is bounded
    for i in range(INLINE_JWKS_CACHE_SIZE + 10):
        client_keys.jwks(f"c{i}", {"jwks": {"keys": []}})
    assert len(client_keys.inline) == INLINE_JWKS_CACHE_SIZE


def test_bound_bogus_assertion_cost_ratio(key_op: Callable[..., Provider], clock: Any,
                                          p521_keys: list[SigningKey]) -> None:
    """A bogus assertion naming a kid costs about one verification, however many keys the
    client has: 20 keys cost less than 3 times 1 key (before: about 40 times)."""
    many = key_op({"keys": [k.to_jwk() for k in p521_keys]})
    one = key_op({"keys": [p521_keys[0].to_jwk()]})
    bogus = SigningKey(ec.generate_private_key(ec.SECP521R1()), "ES512", "k0")
    tokens = [assertion(bogus, clock()) for _ in range(20)]

    def cost(op: Provider) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for token in tokens:
                with pytest.raises(InvalidClientAuthentication):
                    authenticate(op, token)
            best = min(best, time.perf_counter() - start)
        return best

    cost(many), cost(one)  # warm up (the first parse)
    assert cost(many) < 3 * cost(one)


def test_bound_fetched_jwks_uri_document_capped_at_use(
        make_provider: Callable[..., Provider], clock: Any, p521_keys: list[SigningKey],
        rsa_key: rsa.RSAPrivateKey, counter: Counter) -> None:
    """A ``jwks_uri`` document is parsed with the same bounds: the first ``max_client_keys``
    keys, RSA keys out of bounds skipped; and parsed once per fetch."""
    extra = SigningKey(ec.generate_private_key(ec.SECP521R1()), "ES512", "late")
    document = {"keys": [rsa_jwk(rsa_key, e=_int_b64(2**4096 + 1), kid="huge")]
                + [k.to_jwk() for k in p521_keys] + [extra.to_jwk()]}
    fetched: list[str] = []
    clients = key_client(None)
    del clients[KEY_CLIENT]["jwks"]
    clients[KEY_CLIENT]["jwks_uri"] = "https://rp.example.com/jwks"
    op = make_provider(config=security_configuration(), client_db=clients)
    op.jwks_fetcher = lambda uri: fetched.append(uri) or document
    authenticate(op, assertion(p521_keys[0], clock()))
    authenticate(op, assertion(p521_keys[18], clock()))  # the 20th key of the document
    assert counter.built == DEFAULT_MAX_CLIENT_KEYS - 1  # huge skipped, not built; once
    with pytest.raises(InvalidClientAuthentication):
        authenticate(op, assertion(p521_keys[19], clock()))  # the 21st: beyond the bound
    with pytest.raises(InvalidClientAuthentication):
        authenticate(op, assertion(extra, clock()))
