"""Running the protocol code, which is synchronous, on an event loop without blocking it.

pyop's protocol logic (request parsing and validation, grants, tokens, claims) is written
once, as ordinary functions. :mod:`pyop.aio` runs those same functions from coroutines:
:func:`run_sync` starts the function in a *greenlet* (a coroutine of the ``greenlet``
package, the mechanism SQLAlchemy's asyncio extension uses for the same purpose), and
every I/O point the function reaches -- a storage round trip, a claims lookup, a request
to a client's URL -- calls :func:`await_only` with the coroutine of a native async
driver. :func:`await_only` suspends the greenlet and hands the awaitable to
:func:`run_sync`, which awaits it *on the event loop* (so other tasks run meanwhile) and
resumes the greenlet with its result or exception.

So the event loop is blocked only for the CPU work between two I/O points (parsing,
signing), never for an I/O wait, and a fix to the protocol logic applies to both
:class:`~pyop.provider.Provider` and :class:`~pyop.aio.AsyncProvider` at once.

Thread locks: greenlets of one event loop share its thread, so the protocol code never
holds a :class:`threading.Lock` across an I/O point (it would stop the loop), and the
objects that are awaited (storage, claims sources, fetchers) use asyncio primitives.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, Callable, TypeVar

import greenlet  # type: ignore[import-untyped]

__all__ = ["MissingAsyncContext", "await_only", "in_bridge", "run_sync"]

T = TypeVar("T")


class MissingAsyncContext(RuntimeError):
    """An async driver was used from synchronous code outside :func:`run_sync`.

    The objects of :mod:`pyop.aio` (async storage, async claims sources) are
    awaited by :class:`~pyop.aio.AsyncProvider`; they cannot serve a synchronous
    :class:`~pyop.provider.Provider` called directly.
    """


class _BridgeGreenlet(greenlet.greenlet):
    """The greenlet running one synchronous call; its parent awaits what it hands over."""

    #: set so that SQLAlchemy's own bridge (its asyncio extension) recognises these
    #: greenlets too: a synchronous SQLAlchemy engine of an ``AsyncEngine`` works inside.
    __sqlalchemy_greenlet_provider__ = True

    def __init__(self, fn: Callable[..., Any], driver: greenlet.greenlet) -> None:
        super().__init__(fn, driver)
        self.driver = driver


def in_bridge() -> bool:
    """Whether the current code runs inside :func:`run_sync` (so it may :func:`await_only`)."""
    return isinstance(greenlet.getcurrent(), _BridgeGreenlet)


def await_only(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` on the event loop from synchronous code run by :func:`run_sync`.

    :raises MissingAsyncContext: not inside :func:`run_sync` (the awaitable is closed).
    """
    current = greenlet.getcurrent()
    if not isinstance(current, _BridgeGreenlet):
        if isinstance(awaitable, Coroutine):
            awaitable.close()  # never awaited: no "coroutine was never awaited" warning
        raise MissingAsyncContext(
            "an async pyop object was used from synchronous code: use it through "
            "pyop.aio (AsyncProvider, AsyncAuthorizationState), which awaits it")
    result: T = current.driver.switch(awaitable)
    return result


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` in a greenlet, awaiting on the event loop every
    awaitable it passes to :func:`await_only`; return its result or raise its exception.

    The call sees the caller's :mod:`contextvars` (a copy, as a task does).
    """
    child = _BridgeGreenlet(fn, greenlet.getcurrent())
    child.gr_context = contextvars.copy_context()
    handed = child.switch(*args, **kwargs)
    while not child.dead:
        try:
            value = await handed
        except BaseException:  # noqa: BLE001 - handed back to the synchronous code
            handed = child.throw(*sys.exc_info())
        else:
            handed = child.switch(value)
    result: T = handed
    return result
