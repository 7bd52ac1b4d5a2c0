"""The provider behaviour suite against :class:`pyop.aio.AsyncProvider`.

:class:`LoopDrivenProvider` gives an :class:`~pyop.aio.AsyncProvider` the synchronous
face of :class:`~pyop.provider.Provider`: each coroutine method runs to completion on
the test's event loop, so every test written for the synchronous provider runs
unchanged against the async front end (tests/conftest.py parametrizes
``make_provider`` with both). Attributes the async provider does not have (the
provider's configuration, its storage views) are those of the synchronous provider it
runs (``async_provider.sync``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any, Optional

from pyop.aio import AsyncAuthorizationState, AsyncProvider
from pyop.aio._bridge import in_bridge
from pyop.aio.storage import GreenletStorage
from pyop.aio.userinfo import as_sync_userinfo
from pyop.storage import DictStorage, MemoryStorage, StatelessWrapper, StorageBase


class LoopDriven:
    """A synchronous face of an async pyop object (its coroutine methods run on ``loop``)."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop,
                 owner: Optional[int] = None) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)
        object.__setattr__(self, "_owner", threading.get_ident() if owner is None else owner)

    def _complete(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the test's loop, or, called from another thread (a test
        racing requests in threads), on a loop of that thread's own."""
        if threading.get_ident() == object.__getattribute__(self, "_owner"):
            return object.__getattribute__(self, "_loop").run_until_complete(coroutine)
        return asyncio.run(coroutine)

    def __getattr__(self, name: str) -> Any:
        target = object.__getattribute__(self, "_target")
        loop = object.__getattribute__(self, "_loop")
        if name == "clients":  # the tests read and write it as the sync provider's mapping
            return target.sync.clients
        try:
            attr = getattr(target, name)
        except AttributeError:
            return getattr(target.sync, name)
        if inspect.iscoroutinefunction(attr):
            def run(*args: Any, **kwargs: Any) -> Any:
                if in_bridge():  # a test double called back from inside a request
                    return getattr(target.sync, name)(*args, **kwargs)
                return self._complete(attr(*args, **kwargs))

            return run
        if isinstance(attr, AsyncAuthorizationState):
            return LoopDriven(attr, loop, object.__getattribute__(self, "_owner"))
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        target = object.__getattribute__(self, "_target")
        if name == "userinfo":
            value = as_sync_userinfo(value)
        if name == "outbound_fetcher":
            value = async_fetcher_for(value)
        if name == "backchannel_logout_sender" and hasattr(value, "sender"):
            value = value.sender  # an async sender behind a synchronous test facade
        if name == "backchannel_logout_sender" and value is not None and not (
                inspect.iscoroutinefunction(value)
                or inspect.iscoroutinefunction(vars(type(value)).get("__call__"))):
            target.sync.backchannel_logout_sender = value  # a synchronous test double
            return
        if hasattr(type(target), name) and isinstance(getattr(type(target), name), property) \
                and getattr(type(target), name).fset is not None:
            setattr(target, name, value)
            return
        setattr(target.sync, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(object.__getattribute__(self, "_target").sync, name)


class LoopDrivenProvider(LoopDriven):
    """The synchronous face of an :class:`~pyop.aio.AsyncProvider`."""

    def __init__(self, provider: AsyncProvider, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(provider, loop)


def async_fetcher_for(fetcher: Any) -> Any:
    """The :class:`~pyop.aio.outbound.AsyncGuardedFetcher` configured as the synchronous
    ``fetcher`` a test passes (same guard options)."""
    from pyop.aio.outbound import AsyncGuardedFetcher
    from pyop.outbound import GuardedFetcher

    if not isinstance(fetcher, GuardedFetcher):
        return fetcher  # refused by AsyncProvider as the sync Provider refuses it
    twin = AsyncGuardedFetcher(deadline=fetcher.deadline, max_size=fetcher.max_size,
                               allowed_networks=fetcher.allowed_networks,
                               allow_http=fetcher.allow_http, ssl_context=fetcher.ssl_context,
                               user_agent=fetcher.user_agent)
    twin.proxy = fetcher.proxy
    return twin


def as_async_store(value: Any) -> Any:
    """A synchronous store a test passes (a counting or failing double, a SQLite store) as
    an async store that calls it directly on the loop. The behaviour suite checks the
    protocol code through AsyncProvider; the async backends themselves are checked by the
    storage contract suite (tests/storage/)."""
    if isinstance(value, StorageBase) and not isinstance(
            value, (MemoryStorage, DictStorage, StatelessWrapper)):
        return GreenletStorage(value, blocking_free=True)
    return value
