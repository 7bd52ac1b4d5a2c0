"""DPoP proofs at the pushed authorization request endpoint (RFC 9449 10.1): verified as
at the token endpoint, and the pushed request bound to the proof's key, so that the code
it yields is redeemed only with a proof of that key."""

from __future__ import annotations

from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, ISSUER, REDIRECT_URI, USER_ID, FakeClock

from pyop.dpop import TimeBasedDPoPNonces
from pyop.exceptions import InvalidAuthorizationCode, InvalidDPoPProof, UseDPoPNonce
from pyop.provider import Provider

from .dpop_keys import DPoPKey
from .test_dpop import (
    basic,
    configuration_without_dpop,
    dpop_clients,
    dpop_configuration,
    exchange,
    introspect,
    sealed_stores,
)

PAR_URL = ISSUER + "/par"


@pytest.fixture(params=["memory", "stateless"])
def make_dpop_provider(request: pytest.FixtureRequest, make_provider: Callable[..., Provider],
                       clock: FakeClock) -> Callable[..., Provider]:
    def factory(**kwargs: Any) -> Provider:
        authz_kwargs: dict[str, Any] = {"refresh_token_lifetime": 3600}
        if request.param == "stateless":
            authz_kwargs.update(sealed_stores(clock))
        return make_provider(config=dpop_configuration(), client_db=dpop_clients(),
                             authz_kwargs=authz_kwargs, **kwargs)

    return factory


@pytest.fixture
def provider(make_dpop_provider: Callable[..., Provider]) -> Provider:
    return make_dpop_provider()


def pushed_parameters(**extra: str) -> dict[str, str]:
    return {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid", "nonce": "n", "state": "s", **extra}


def push(provider: Provider, proof: Optional[str], headers: Optional[dict[str, Any]] = None,
         **kwargs: Any) -> Any:
    headers = dict(basic() if headers is None else headers)
    if proof is not None:
        headers["DPoP"] = proof
    params = kwargs.pop("params", None) or pushed_parameters()
    return provider.handle_pushed_authorization_request(urlencode(params), headers, **kwargs)


def code_of(provider: Provider, request_uri: str) -> str:
    request = provider.parse_authentication_request(urlencode(
        {"client_id": CLIENT_ID, "request_uri": request_uri}))
    return str(provider.authorize(request, USER_ID)["code"])


def test_rfc9449_10_1_proof_at_par_binds_the_code_to_its_key(provider: Provider,
                                                               clock: FakeClock) -> None:
    key = DPoPKey()
    pushed = push(provider, key.proof("POST", PAR_URL, clock()))
    request = provider.parse_authentication_request(urlencode(
        {"client_id": CLIENT_ID, "request_uri": pushed["request_uri"]}))
    assert request["dpop_jkt"] == key.jkt
    code = str(provider.authorize(request, USER_ID)["code"])
    token = exchange(provider, key, clock, code=code)
    assert token["token_type"] == "DPoP"
    assert introspect(provider, token["access_token"])["cnf"] == {"jkt": key.jkt}


def test_rfc9449_10_1_code_of_par_bound_to_key_a_redeemed_with_key_b_refused(
        provider: Provider, clock: FakeClock) -> None:
    # the attack: a code obtained through a PAR proved with key A, stolen and redeemed
    # with the attacker's key B
    key_a, key_b = DPoPKey(), DPoPKey()
    code = code_of(provider, push(provider, key_a.proof("POST", PAR_URL, clock()))
                   ["request_uri"])
    with pytest.raises(InvalidAuthorizationCode, match="dpop_jkt"):
        exchange(provider, key_b, clock, code=code)
    # nor without any proof (a bearer token for a code bound to a key)
    with pytest.raises(InvalidAuthorizationCode):
        exchange(provider, None, clock, code=code)


def test_rfc9449_10_1_dpop_jkt_and_proof_of_the_same_key_accepted(provider: Provider,
                                                                 clock: FakeClock) -> None:
    key = DPoPKey("RSA", "PS256")
    pushed = push(provider, key.proof("POST", PAR_URL, clock()),
                  params=pushed_parameters(dpop_jkt=key.jkt))
    assert exchange(provider, key, clock, code=code_of(provider, pushed["request_uri"])
                    )["token_type"] == "DPoP"


def test_rfc9449_10_1_dpop_jkt_of_another_key_than_the_proof_refused(
        provider: Provider, clock: FakeClock) -> None:
    key, other = DPoPKey(), DPoPKey()
    with pytest.raises(InvalidDPoPProof, match="dpop_jkt") as info:
        push(provider, key.proof("POST", PAR_URL, clock()),
             params=pushed_parameters(dpop_jkt=other.jkt))
    assert info.value.oauth_error == "invalid_dpop_proof"
    assert info.value.http_status == 400


@pytest.mark.parametrize(("htm", "htu"), [
    ("GET", PAR_URL),  # 4.3 point 8: another method
    ("POST", ISSUER + "/token"),  # 4.3 point 9: a proof made for the token endpoint
])
def test_rfc9449_10_1_proof_for_another_request_refused_at_par(
        provider: Provider, clock: FakeClock, htm: str, htu: str) -> None:
    with pytest.raises(InvalidDPoPProof, match="htm|htu") as info:
        push(provider, DPoPKey().proof(htm, htu, clock()))
    assert info.value.oauth_error == "invalid_dpop_proof"


def test_rfc9449_10_1_htu_is_the_url_the_host_describes(provider: Provider,
                                                        clock: FakeClock) -> None:
    # behind an alias (e.g. the mTLS endpoint alias), the host passes the URL called
    alias = "https://mtls.op.example.com/par"
    key = DPoPKey()
    with pytest.raises(InvalidDPoPProof, match="htu"):
        push(provider, key.proof("POST", alias, clock()))
    pushed = push(provider, key.proof("POST", alias, clock()), http_url=alias)
    assert pushed["request_uri"]


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_rfc9449_10_1_proof_outside_the_iat_window_refused_at_par(
        provider: Provider, clock: FakeClock, offset: int) -> None:
    with pytest.raises(InvalidDPoPProof, match="iat"):
        push(provider, DPoPKey().proof("POST", PAR_URL, clock() + offset))


def test_rfc9449_11_1_proof_replayed_at_par_refused(provider: Provider,
                                                    clock: FakeClock) -> None:
    proof = DPoPKey().proof("POST", PAR_URL, clock())
    push(provider, proof)
    with pytest.raises(InvalidDPoPProof, match="already used"):
        push(provider, proof)


def test_rfc9449_4_3_two_proofs_at_par_refused(provider: Provider, clock: FakeClock) -> None:
    key = DPoPKey()
    headers = [*basic().items(), ("DPoP", key.proof("POST", PAR_URL, clock())),
               ("DPoP", key.proof("POST", PAR_URL, clock()))]
    with pytest.raises(InvalidDPoPProof, match="more than one"):
        provider.handle_pushed_authorization_request(urlencode(pushed_parameters()), headers)


def test_rfc9449_10_1_par_without_proof_unbound(provider: Provider, clock: FakeClock) -> None:
    # a proof at PAR is optional: the code then takes a proof of any key, or none
    code = code_of(provider, push(provider, None)["request_uri"])
    assert exchange(provider, DPoPKey(), clock, code=code)["token_type"] == "DPoP"


def test_rfc9449_8_nonce_required_at_par(make_dpop_provider: Callable[..., Provider],
                                         clock: FakeClock) -> None:
    provider = make_dpop_provider(dpop_nonces=TimeBasedDPoPNonces(clock=clock))
    key = DPoPKey()
    with pytest.raises(UseDPoPNonce) as info:
        push(provider, key.proof("POST", PAR_URL, clock()))
    nonce = info.value.headers["DPoP-Nonce"]
    assert info.value.oauth_error == "use_dpop_nonce"
    pushed = push(provider, key.proof("POST", PAR_URL, clock(), nonce=nonce))
    request = provider.parse_authentication_request(urlencode(
        {"client_id": CLIENT_ID, "request_uri": pushed["request_uri"]}))
    assert request["dpop_jkt"] == key.jkt


def test_dpop_header_at_par_ignored_without_dpop(make_provider: Callable[..., Provider],
                                                 clock: FakeClock) -> None:
    # as pyop 3 (no DPoP): the header is not read, nothing is bound
    provider = make_provider(config=configuration_without_dpop(), client_db=dpop_clients())
    pushed = push(provider, "not even a JWT")
    request = provider.parse_authentication_request(urlencode(
        {"client_id": CLIENT_ID, "request_uri": pushed["request_uri"]}))
    assert "dpop_jkt" not in request
