"""The OpenID Provider for asyncio applications: :class:`AsyncProvider`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from ..exceptions import InvalidConfiguration
from ..provider import Provider
from ._bridge import await_only
from ._mirrored import ProviderCoroutines
from .authz_state import AsyncAuthorizationState
from .logout import AsyncBackChannelSender
from .outbound import AsyncGuardedFetcher
from .storage.base import as_sync_storage
from .userinfo import as_sync_userinfo

__all__ = ["AsyncProvider"]


class AsyncProvider(ProviderCoroutines):
    """:class:`~pyop.provider.Provider` for asyncio: every public method a coroutine with
    the same arguments, results and typed errors; properties (``issuer``, ``jwks``,
    ``provider_configuration``...) as they are.

    The protocol code is the synchronous provider's, run by
    :func:`~pyop.aio._bridge.run_sync`: each storage round trip, claims lookup and
    request to a client's URL is awaited on the event loop, which is otherwise busy
    only for the CPU work between two of them (parsing, one signature per code flow).

    :param signing_key: as for :class:`~pyop.provider.Provider`.
    :param configuration_information: as for :class:`~pyop.provider.Provider`.
    :param authz_state: an :class:`~pyop.aio.AsyncAuthorizationState`.
    :param clients: the clients: an :class:`~pyop.aio.storage.AsyncStorageBase` or an
        in-memory dict.
    :param userinfo: an :class:`~pyop.aio.AsyncUserinfo`, or a synchronous claims source
        (run in worker threads by :class:`~pyop.aio.ThreadedUserinfo`).
    :param outbound_fetcher: the :class:`~pyop.aio.outbound.AsyncGuardedFetcher` making
        every request to a URL a client registered (``jwks_uri``,
        ``sector_identifier_uri``, back-channel logout); default
        ``AsyncGuardedFetcher()`` (same guard and defaults as
        :class:`~pyop.outbound.GuardedFetcher`).
    :param client_assertion_replay_store: an async store (or in-memory one), as for
        :class:`~pyop.provider.Provider`.
    :param options: every other keyword argument of :class:`~pyop.provider.Provider`,
        except ``executor`` (code redemptions already overlap the signature's wait for
        other requests on the loop).
    :raises InvalidConfiguration: the configuration is invalid; the message names the field.
    """

    def __init__(self, signing_key: Any, configuration_information: Mapping[str, Any],
                 authz_state: AsyncAuthorizationState, clients: Any, userinfo: Any, *,
                 outbound_fetcher: Any = None, client_assertion_replay_store: Any = None,
                 **options: Any) -> None:
        if not isinstance(authz_state, AsyncAuthorizationState):
            raise InvalidConfiguration("authz_state: must be a pyop.aio.AsyncAuthorizationState")
        if options.get("executor") is not None:
            raise InvalidConfiguration("executor: not used by AsyncProvider (leave it out)")
        try:
            sync_clients = as_sync_storage(clients, "clients")
            replay_store = as_sync_storage(client_assertion_replay_store,
                                           "client_assertion_replay_store")
            sync_userinfo = as_sync_userinfo(userinfo)
        except TypeError as e:
            raise InvalidConfiguration(str(e)) from e
        #: The synchronous provider the coroutines run; its storage, claims source and
        #: fetchers are views of the async ones given here (usable only through this object).
        self.sync = Provider(signing_key, configuration_information, authz_state.sync,
                             sync_clients, sync_userinfo,
                             client_assertion_replay_store=replay_store, **options)
        #: The async state given as ``authz_state``.
        self.authz_state = authz_state
        self._clients = clients
        self.outbound_fetcher = (AsyncGuardedFetcher() if outbound_fetcher is None
                                 else outbound_fetcher)
        if self.sync.backchannel_logout_sender is not None:
            # through the fetcher of the moment: a host replacing outbound_fetcher keeps this
            async def post(uri: str, form: dict[str, str], timeout: float) -> int:
                answer = await self.outbound_fetcher.post_form(uri, form, timeout=timeout)
                return int(answer.status)

            self.backchannel_logout_sender = AsyncBackChannelSender(post)

    @property
    def outbound_fetcher(self) -> AsyncGuardedFetcher:
        """The :class:`~pyop.aio.outbound.AsyncGuardedFetcher` making every request to a URL
        a client registered (``jwks_uri``, ``sector_identifier_uri``, back-channel logout)."""
        return self._outbound_fetcher

    @outbound_fetcher.setter
    def outbound_fetcher(self, fetcher: AsyncGuardedFetcher) -> None:
        if not isinstance(fetcher, AsyncGuardedFetcher):
            raise InvalidConfiguration("outbound_fetcher: must be a "
                                       "pyop.aio.outbound.AsyncGuardedFetcher")
        self._outbound_fetcher = fetcher
        fetch_json = _bridged(fetcher.get_json)
        self.sync.jwks_fetcher = fetch_json
        self.sync.sector_identifier_fetcher = fetch_json

    @property
    def backchannel_logout_sender(self) -> Any:
        """Delivers back-channel Logout Tokens at logout: ``await sender(requests) ->
        results`` (default: an :class:`~pyop.aio.logout.AsyncBackChannelSender` through
        :attr:`outbound_fetcher`); None: :meth:`logout_user` returns the requests for the
        host to deliver."""
        return self._backchannel_logout_sender

    @backchannel_logout_sender.setter
    def backchannel_logout_sender(self, sender: Any) -> None:
        self._backchannel_logout_sender = sender
        self.sync.backchannel_logout_sender = None if sender is None else _bridged(sender)

    @property
    def configuration_information(self) -> Any:
        """The provider metadata (OIDC Discovery 3), defaults included; may be updated."""
        return self.sync.configuration_information

    @property
    def clients(self) -> Any:
        """The clients' store given as ``clients`` (an async store, or an in-memory one),
        for the host to manage clients with (``await provider.clients.set(...)``)."""
        return self._clients


def _bridged(coroutine_function: Callable[..., Any]) -> Callable[..., Any]:
    """A synchronous function for the protocol code that awaits ``coroutine_function``."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return await_only(coroutine_function(*args, **kwargs))

    return call


