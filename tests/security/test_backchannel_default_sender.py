"""Back-Channel Logout 1.0 2.5, 2.8: the default delivery of Logout Tokens.

With ``backchannel_logout_supported`` advertised and no sender set by the host, pyop POSTs
the Logout Tokens itself through the provider's guarded outbound fetcher
(``backchannel_logout_delivery="deliver"``): loopback and private addresses are never
contacted unless the fetcher allows them, and a slow relying party never holds the
end-user's logout beyond the sender's total deadline. ``"return"`` leaves the requests
to the host.
"""

from __future__ import annotations

import time
from typing import Callable

import pytest
from support.logout import (
    RP_A,
    RP_B,
    authenticate,
    exchange,
    logout_clients,
    logout_configuration,
    relying_party_servers,
)

from pyop.exceptions import InvalidConfiguration
from pyop.logout_notifications import BackChannelSender
from pyop.outbound import GuardedFetcher
from pyop.provider import Provider

LOOPBACK = ("127.0.0.0/8", "::1/128")


def loopback_fetcher(**options: float) -> GuardedFetcher:
    """A fetcher that may reach the local test servers (explicitly allowed)."""
    return GuardedFetcher(allowed_networks=LOOPBACK, allow_http=True, **options)


def session_with(op: Provider, *client_ids: str) -> str:
    sid = op.new_session_id()
    for client_id in client_ids:
        exchange(op, client_id, authenticate(op, client_id, session_id=sid)["code"])
    return sid


def make_op(make_provider: Callable[..., Provider], uris: dict[str, str],
            **options: object) -> Provider:
    clients = logout_clients(**{client_id: {"backchannel_logout_uri": uri}
                                for client_id, uri in uris.items()})
    return make_provider(config=logout_configuration(), client_db=clients, **options)


def test_bcl_2_5_delivered_by_default_through_the_outbound_fetcher(
        make_provider: Callable[..., Provider]) -> None:
    with relying_party_servers((200, 0.0), (204, 0.0)) as (a, b):
        op = make_op(make_provider, {RP_A: a.uri, RP_B: b.uri},
                     outbound_fetcher=loopback_fetcher())
        result = op.logout_user(session_id=session_with(op, RP_A, RP_B))
    outcome = {r.client_id: (r.delivered, r.status, r.attempts)
               for r in result.backchannel_results}
    assert outcome == {RP_A: (True, 200, 1), RP_B: (True, 204, 1)}
    tokens = {r.client_id: r.logout_token for r in result.backchannel_requests}
    assert a.received == [("application/x-www-form-urlencoded",
                           {"logout_token": tokens[RP_A]})]
    assert b.received == [("application/x-www-form-urlencoded",
                           {"logout_token": tokens[RP_B]})]


def test_bcl_2_5_private_addresses_never_contacted_by_default(
        make_provider: Callable[..., Provider]) -> None:
    """The default fetcher refuses loopback: a client registering a loopback
    backchannel_logout_uri (which registration accepts) cannot make the OP call it."""
    with relying_party_servers((200, 0.0), (200, 0.0)) as (a, b):
        uri_b = b.uri.replace("127.0.0.1", "localhost")
        op = make_op(make_provider, {RP_A: a.uri, RP_B: uri_b})
        assert op.outbound_fetcher.allowed_networks == ()
        result = op.logout_user(session_id=session_with(op, RP_A, RP_B))
    assert a.received == [] and b.received == []
    outcome = {r.client_id: (r.delivered, r.status, r.error) for r in result.backchannel_results}
    assert outcome == {RP_A: (False, None, "FetchError"), RP_B: (False, None, "FetchError")}


def test_bcl_2_5_allowed_networks_are_exactly_what_is_reached(
        make_provider: Callable[..., Provider]) -> None:
    """Only IPv6 loopback allowed: the IPv4 loopback server is still never contacted."""
    with relying_party_servers((200, 0.0)) as (a,):
        op = make_op(make_provider, {RP_A: a.uri},
                     outbound_fetcher=GuardedFetcher(allowed_networks=["::1/128"],
                                                     allow_http=True))
        [result] = op.logout_user(session_id=session_with(op, RP_A)).backchannel_results
    assert a.received == [] and not result.delivered


def test_bcl_2_8_default_sender_deadline_holds_with_a_slow_relying_party(
        make_provider: Callable[..., Provider]) -> None:
    """The default sender's total deadline (5 s): a relying party holding the POST for 30 s
    does not hold the end-user's logout; the other relying party is served meanwhile."""
    with relying_party_servers((200, 30.0), (200, 0.0)) as (slow, fast):
        op = make_op(make_provider, {RP_A: slow.uri, RP_B: fast.uri},
                     outbound_fetcher=loopback_fetcher(deadline=30))
        sid = session_with(op, RP_A, RP_B)
        started = time.monotonic()
        result = op.logout_user(session_id=sid)
        elapsed = time.monotonic() - started
    assert elapsed < 12  # 5 s deadline; the server would hold the request for 30 s
    outcome = {r.client_id: r for r in result.backchannel_results}
    assert outcome[RP_A].delivered is False
    assert outcome[RP_B].delivered is True
    assert slow.received  # reached (allowed), then cut off at the deadline


@pytest.mark.sync_only  # a synchronous BackChannelSender wired by hand
def test_bcl_2_8_through_deadline_holds_with_a_slow_relying_party(
        make_provider: Callable[..., Provider]) -> None:
    with relying_party_servers((200, 30.0)) as (slow,):
        op = make_op(make_provider, {RP_A: slow.uri}, outbound_fetcher=loopback_fetcher())
        op.backchannel_logout_sender = BackChannelSender.through(op.outbound_fetcher,
                                                                 deadline=0.5)
        sid = session_with(op, RP_A)
        started = time.monotonic()
        [result] = op.logout_user(session_id=sid).backchannel_results
        elapsed = time.monotonic() - started
    assert elapsed < 5
    assert not result.delivered and result.error in ("deadline", "FetchError")


def test_bcl_2_5_return_leaves_the_requests_to_the_host(
        make_provider: Callable[..., Provider]) -> None:
    with relying_party_servers((200, 0.0)) as (a,):
        op = make_op(make_provider, {RP_A: a.uri}, outbound_fetcher=loopback_fetcher(),
                     backchannel_logout_delivery="return")
        assert op.backchannel_logout_sender is None
        result = op.logout_user(session_id=session_with(op, RP_A))
    assert a.received == []
    assert [r.client_id for r in result.backchannel_requests] == [RP_A]
    assert result.backchannel_results == []


def test_default_sender_uses_the_fetcher_set_after_construction(
        make_provider: Callable[..., Provider]) -> None:
    with relying_party_servers((200, 0.0)) as (a,):
        op = make_op(make_provider, {RP_A: a.uri})
        op.outbound_fetcher = loopback_fetcher()
        [result] = op.logout_user(session_id=session_with(op, RP_A)).backchannel_results
    assert result.delivered and len(a.received) == 1


def test_without_backchannel_logout_supported_nothing_is_sent(
        make_provider: Callable[..., Provider]) -> None:
    with relying_party_servers((200, 0.0)) as (a,):
        clients = logout_clients(**{RP_A: {"backchannel_logout_uri": a.uri}})
        op = make_provider(config=logout_configuration(backchannel_logout_supported=False),
                           client_db=clients, outbound_fetcher=loopback_fetcher())
        result = op.logout_user(session_id=session_with(op, RP_A))
    assert a.received == [] and result.backchannel_requests == []


@pytest.mark.parametrize("value", ["", "queue", None, True])
def test_backchannel_logout_delivery_values(make_provider: Callable[..., Provider],
                                            value: object) -> None:
    with pytest.raises(InvalidConfiguration, match="backchannel_logout_delivery"):
        make_provider(config=logout_configuration(), client_db=logout_clients(),
                      backchannel_logout_delivery=value)
