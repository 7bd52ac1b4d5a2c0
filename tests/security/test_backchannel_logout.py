"""Back-Channel Logout 1.0: the Logout Token (2.4) and its delivery (2.5, 2.8).

The token is verifiable with the provider's JWKS, typed ``logout+jwt``, never carries a
``nonce``, has a fresh ``jti``; only the registered ``backchannel_logout_uri`` of the clients
of the logged-out session are contacted; a slow or failing relying party never holds the
end-user's logout beyond the sender's deadline, and never makes it fail.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support.logout import (
    ISSUER,
    RP_A,
    RP_B,
    RP_PLAIN,
    FakeTransport,
    SyncSenderFacade,
    authenticate,
    exchange,
    logout_clients,
    logout_configuration,
    relying_party_servers,
    unverified_claims,
    unverified_header,
    urllib_transport,
)

from pyop.crypto import SigningKey, VerificationKey, jws_verify
from pyop.logout_notifications import (
    BACKCHANNEL_LOGOUT_EVENT,
    BackChannelLogoutRequest,
    BackChannelSender,
    DeliveryResult,
)
from pyop.provider import Provider


@pytest.fixture
def op(make_provider: Callable[..., Provider]) -> Provider:
    return make_provider(config=logout_configuration(), client_db=logout_clients(),
                         backchannel_logout_delivery="return")  # no requests made


#: Builds a sender from BackChannelSender's arguments.
MakeSender = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def make_sender(request: pytest.FixtureRequest) -> MakeSender:
    """BackChannelSender, or AsyncBackChannelSender behind the same synchronous call."""
    return BackChannelSender if request.param == "sync" else SyncSenderFacade


def published_keys(provider: Provider) -> list[VerificationKey]:
    return [VerificationKey.from_jwk(jwk) for jwk in provider.jwks["keys"]]


def session_with(op: Provider, *client_ids: str) -> str:
    sid = op.new_session_id()
    for client_id in client_ids:
        exchange(op, client_id, authenticate(op, client_id, session_id=sid)["code"])
    return sid


# -- the Logout Token (Back-Channel Logout 1.0 2.4) ---------------------------------------------


def test_bcl_2_4_logout_token_claims_and_signature(op: Provider, clock: Any) -> None:
    sid = session_with(op, RP_A, RP_B)
    [a, b] = sorted(op.logout_user(session_id=sid).backchannel_requests,
                    key=lambda r: r.client_id)
    for request, client_id in ((a, RP_A), (b, RP_B)):
        claims = jws_verify(request.logout_token, published_keys(op))
        assert claims["iss"] == ISSUER
        assert claims["aud"] == client_id
        assert claims["iat"] == int(clock.now)
        assert claims["exp"] == int(clock.now) + 120
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert "nonce" not in claims
        assert isinstance(claims["sub"], str)
        assert unverified_header(request.logout_token)["typ"] == "logout+jwt"
        assert request.form == {"logout_token": request.logout_token}
        assert request.uri == op.clients[client_id]["backchannel_logout_uri"]
    assert unverified_claims(a.logout_token)["sid"] == sid  # rp-a requires sid
    assert "sid" not in unverified_claims(b.logout_token)  # rp-b: sub only


def test_bcl_2_4_jti_is_unique(op: Provider) -> None:
    jtis = set()
    for _ in range(20):
        sid = session_with(op, RP_A)
        [request] = op.logout_user(session_id=sid).backchannel_requests
        jtis.add(unverified_claims(request.logout_token)["jti"])
    assert len(jtis) == 20


def test_bcl_2_4_logout_token_is_never_an_id_token(op: Provider) -> None:
    """A Logout Token cannot pass for an ID token: typ, no nonce, events, and a verifier
    of ID tokens sees no nonce to match."""
    sid = session_with(op, RP_A)
    [request] = op.logout_user(session_id=sid).backchannel_requests
    header = unverified_header(request.logout_token)
    assert header["typ"] == "logout+jwt"
    assert set(unverified_claims(request.logout_token)) <= {
        "iss", "aud", "iat", "exp", "jti", "events", "sub", "sid"}


def test_bcl_2_4_signed_with_the_client_id_token_alg(
        make_provider: Callable[..., Provider], jwkest_signing_key: Any) -> None:
    ec_key = SigningKey.from_key(ec.generate_private_key(ec.SECP256R1()))
    clients = logout_clients(**{RP_A: {"id_token_signed_response_alg": "ES256"}})
    config = logout_configuration(id_token_signing_alg_values_supported=["RS256", "ES256"])
    op = make_provider(config=config, client_db=clients, signing_keys=[ec_key])
    sid = session_with(op, RP_A, RP_B)
    requests = {r.client_id: r for r in op.logout_user(session_id=sid).backchannel_requests}
    assert unverified_header(requests[RP_A].logout_token)["alg"] == "ES256"
    assert unverified_header(requests[RP_B].logout_token)["alg"] == "RS256"
    for request in requests.values():
        jws_verify(request.logout_token, published_keys(op))


def test_bcl_2_4_logout_token_lifetime_option(make_provider: Callable[..., Provider]) -> None:
    op = make_provider(config=logout_configuration(), client_db=logout_clients(),
                       logout_token_lifetime=30)
    sid = session_with(op, RP_A)
    [request] = op.logout_user(session_id=sid).backchannel_requests
    claims = unverified_claims(request.logout_token)
    assert claims["exp"] - claims["iat"] == 30


# -- who is contacted (Back-Channel Logout 1.0 2.5) ------------------------------------------


def test_bcl_2_5_only_registered_uris_of_the_session_clients_are_contacted(
        make_sender: MakeSender, op: Provider) -> None:
    transport = FakeTransport()
    op.backchannel_logout_sender = make_sender(transport, deadline=5)
    sid = session_with(op, RP_A, RP_PLAIN)
    session_with(op, RP_B)  # another session: rp-b is not told
    result = op.logout_user(session_id=sid)
    assert transport.uris == ["https://a.example/bc"]
    assert [(r.client_id, r.delivered, r.status) for r in result.backchannel_results] == [
        (RP_A, True, 200)]


@pytest.mark.parametrize("uri", [
    "http://a.example/bc",  # plain http off loopback
    "https://user@a.example/bc",  # userinfo
    "https://a.example/bc#x",  # fragment
    "https://a.example;script-src/bc",  # not a host name
    "https://10.0.0.1 /bc",
    "file:///etc/passwd",
])
def test_bcl_2_5_unacceptable_uris_set_by_the_host_are_never_contacted(
        make_sender: MakeSender,
        make_provider: Callable[..., Provider], uri: str) -> None:
    """A client stored directly by the host (not through registration) with a bad URI."""
    clients = logout_clients(**{RP_A: {"backchannel_logout_uri": uri}})
    op = make_provider(config=logout_configuration(), client_db=clients)
    transport = FakeTransport()
    op.backchannel_logout_sender = make_sender(transport, deadline=5)
    sid = session_with(op, RP_A)
    result = op.logout_user(session_id=sid)
    assert transport.calls == []
    assert [(r.client_id, r.delivered) for r in result.backchannel_results] == [(RP_A, False)]


def test_bcl_2_5_a_client_deleted_since_is_not_contacted(
        make_sender: MakeSender, op: Provider) -> None:
    transport = FakeTransport()
    op.backchannel_logout_sender = make_sender(transport, deadline=5)
    sid = session_with(op, RP_A, RP_B)
    del op.clients[RP_A]
    op.client_changed(RP_A)
    op.logout_user(session_id=sid)
    assert transport.uris == ["https://b.example/bc"]


# -- delivery: deadline, retries, failures (Back-Channel Logout 1.0 2.8) --------------------


def test_bcl_2_8_a_slow_relying_party_never_delays_the_logout_beyond_the_deadline(
        make_sender: MakeSender,
        make_provider: Callable[..., Provider]) -> None:
    with relying_party_servers((200, 30.0), (200, 0.0)) as (slow, fast):
        clients = logout_clients(**{RP_A: {"backchannel_logout_uri": slow.uri},
                                    RP_B: {"backchannel_logout_uri": fast.uri}})
        op = make_provider(config=logout_configuration(), client_db=clients)
        op.backchannel_logout_sender = make_sender(urllib_transport, deadline=0.5)
        sid = session_with(op, RP_A, RP_B)
        started = time.monotonic()
        result = op.logout_user(session_id=sid)
        elapsed = time.monotonic() - started
        assert elapsed < 5  # the server would hold the request for 30 s
        outcome = {r.client_id: r for r in result.backchannel_results}
        assert outcome[RP_A].delivered is False
        assert outcome[RP_B].delivered is True and outcome[RP_B].status == 200
        [(content_type, form)] = fast.received
        assert content_type == "application/x-www-form-urlencoded"
        assert form == {"logout_token": next(
            r.logout_token for r in result.backchannel_requests if r.client_id == RP_B)}


def test_bcl_2_5_deliveries_run_concurrently(
        make_sender: MakeSender) -> None:
    """Four relying parties answering after 1 s each are served in about 1 s, not 4."""
    with relying_party_servers(*[(200, 1.0)] * 4) as servers:
        requests = [BackChannelLogoutRequest(f"rp{i}", server.uri, f"token{i}")
                    for i, server in enumerate(servers)]
        sender = make_sender(urllib_transport, deadline=20, max_workers=4)
        started = time.monotonic()
        results = sender(requests)
        elapsed = time.monotonic() - started
    assert [r.delivered for r in results] == [True] * 4
    assert [r.client_id for r in results] == ["rp0", "rp1", "rp2", "rp3"]
    assert elapsed < 3.5


def test_bcl_2_8_server_errors_are_retried_a_bounded_number_of_times(
        make_sender: MakeSender) -> None:
    transport = FakeTransport(lambda uri: 503)
    sender = make_sender(transport, deadline=5, attempts=3, retry_delay=0.01)
    [result] = sender([BackChannelLogoutRequest("rp", "https://rp.example/bc", "t")])
    assert len(transport.calls) == 3
    assert result == DeliveryResult("rp", "https://rp.example/bc", False, 503, 3, "status 503")


def test_bcl_2_8_a_refusal_is_not_retried(
        make_sender: MakeSender) -> None:
    transport = FakeTransport(lambda uri: 400)
    sender = make_sender(transport, deadline=5, attempts=3, retry_delay=0.01)
    [result] = sender([BackChannelLogoutRequest("rp", "https://rp.example/bc", "t")])
    assert len(transport.calls) == 1 and result.status == 400 and not result.delivered


def test_bcl_2_8_transport_errors_are_results_not_exceptions(
        make_sender: MakeSender, op: Provider) -> None:
    transport = FakeTransport(lambda uri: ConnectionRefusedError("no"))
    op.backchannel_logout_sender = make_sender(transport, deadline=5, attempts=2,
                                                     retry_delay=0.01)
    sid = session_with(op, RP_A)
    [result] = op.logout_user(session_id=sid).backchannel_results
    assert result.delivered is False and result.error == "ConnectionRefusedError"
    assert result.attempts == 2 and len(transport.calls) == 2


def test_bcl_2_8_a_failing_sender_never_fails_the_logout(op: Provider) -> None:
    def broken(requests: Any) -> Any:
        raise RuntimeError("queue down")

    op.backchannel_logout_sender = broken
    sid = session_with(op, RP_A)
    access = exchange(op, RP_B, authenticate(op, RP_B, session_id=sid)["code"])["access_token"]
    result = op.logout_user(session_id=sid)
    assert [(r.client_id, r.delivered, r.error) for r in result.backchannel_results] == [
        (RP_A, False, "sender failed"), (RP_B, False, "sender failed")]
    from pyop.exceptions import InvalidAccessToken
    with pytest.raises(InvalidAccessToken):  # the grants were revoked all the same
        op.authz_state.get_access_token(access)


def test_bcl_2_8_retries_stop_at_the_deadline(
        make_sender: MakeSender) -> None:
    """An always-failing client with many attempts allowed: the deadline bounds them."""
    transport = FakeTransport(lambda uri: 500)
    sender = make_sender(transport, deadline=0.3, attempts=64, retry_delay=0.05)
    started = time.monotonic()
    [result] = sender([BackChannelLogoutRequest("rp", "https://rp.example/bc", "t")])
    assert time.monotonic() - started < 3
    assert not result.delivered and len(transport.calls) < 64


def test_the_transport_gets_the_time_left(
        make_sender: MakeSender) -> None:
    transport = FakeTransport()
    sender = make_sender(transport, deadline=2)
    sender([BackChannelLogoutRequest("rp", "https://rp.example/bc", "t")])
    [(_, _, timeout)] = transport.calls
    assert 0 < timeout <= 2


@pytest.mark.parametrize("options", [{"deadline": 0}, {"deadline": float("inf")},
                                     {"attempts": 0}, {"max_workers": 1000},
                                     {"attempts": True}, {"retry_delay": -1}])
def test_sender_options_are_checked(
        make_sender: MakeSender, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_sender(FakeTransport(), **options)
