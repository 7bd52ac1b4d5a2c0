"""pyop for asyncio applications (FastAPI, Starlette, any ASGI framework).

:class:`AsyncProvider` has the methods of :class:`pyop.provider.Provider` as
coroutines, on :class:`AsyncAuthorizationState`, async storage
(:mod:`pyop.aio.storage`) and async claims sources (:class:`AsyncUserinfo`). The
protocol code is the same as the synchronous provider's: see :mod:`pyop.aio._bridge`
and ``docs/concepts.rst``.
"""
