"""pyop for asyncio applications (FastAPI, Starlette, any ASGI framework).

:class:`AsyncProvider` has the methods of :class:`pyop.provider.Provider` as
coroutines, on :class:`AsyncAuthorizationState`, async storage
(:mod:`pyop.aio.storage`) and async claims sources (:class:`AsyncUserinfo`). The
protocol code is the same as the synchronous provider's, run in greenlets whose I/O is
awaited on the event loop: see :mod:`pyop.aio._bridge` and ``docs/concepts.rst``.
"""

from ._bridge import MissingAsyncContext
from ._loops import EventLoopMismatch
from .authz_state import AsyncAuthorizationState
from .logout import AsyncBackChannelSender
from .outbound import AsyncGuardedFetcher
from .provider import AsyncProvider
from .storage import AsyncMemoryStorage, AsyncStatelessWrapper, AsyncStorageBase
from .userinfo import AsyncUserinfo, ThreadedUserinfo

__all__ = [
    "AsyncProvider",
    "AsyncAuthorizationState",
    "AsyncUserinfo",
    "ThreadedUserinfo",
    "AsyncStorageBase",
    "AsyncMemoryStorage",
    "AsyncStatelessWrapper",
    "AsyncGuardedFetcher",
    "AsyncBackChannelSender",
    "MissingAsyncContext",
    "EventLoopMismatch",
]
