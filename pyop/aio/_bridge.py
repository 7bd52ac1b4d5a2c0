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
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, Callable, Optional, TypeVar

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
    """A greenlet running synchronous calls for :func:`run_sync`; its parent (the caller's
    greenlet) awaits what it hands over."""

    #: set so that SQLAlchemy's own bridge (its asyncio extension) recognises these
    #: greenlets too: a synchronous SQLAlchemy engine of an ``AsyncEngine`` works inside
    #: (it hands its awaitables to ``parent``, as :func:`await_only` does).
    __sqlalchemy_greenlet_provider__ = True

    #: ``(True, result)`` or ``(False, exception)`` of the call just finished
    outcome: tuple[bool, Any] = (True, None)


#: What a bridge greenlet hands its parent when its call has finished (else an awaitable).
_FINISHED = object()

#: Idle bridge greenlets kept per thread for reuse. Starting a greenlet costs several
#: microseconds (its Python frame stack is allocated, then freed when it ends), about
#: ten times a switch to a suspended one; so a finished call's greenlet waits for the next
#: call of its thread instead of ending. Only the calls made from a thread's main greenlet
#: (an event loop's) use them, and at most this many stay idle per thread (about 6 KB
#: each).
POOL_SIZE = 32

_idle = threading.local()


def _serve(job: Optional[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any],
                               contextvars.Context]]) -> None:
    """The body of a pooled bridge greenlet: run each job it is switched to, leave its
    outcome on the greenlet and hand :data:`_FINISHED` to the parent; ``None``: end."""
    me = greenlet.getcurrent()
    while job is not None:
        fn, args, kwargs, context = job
        job = None
        try:
            me.outcome = (True, context.run(fn, *args, **kwargs))
        except greenlet.GreenletExit:
            raise  # killed while suspended (its caller never resumed it): end
        except BaseException as error:  # noqa: BLE001 - re-raised by run_sync
            me.outcome = (False, error)
        del fn, args, kwargs, context  # nothing of the call stays referenced
        job = me.parent.switch(_FINISHED)


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
    result: T = current.parent.switch(awaitable)
    return result


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` in a greenlet, awaiting on the event loop every
    awaitable it passes to :func:`await_only`; return its result or raise its exception.

    The call sees the caller's :mod:`contextvars` (a copy, as a task does). Called from
    a thread's main greenlet (an event loop's), the greenlet is an idle one of that
    thread's when there is one (see :data:`POOL_SIZE`), else a new one.
    """
    current = greenlet.getcurrent()
    pool: Optional[list[_BridgeGreenlet]] = None
    if current.parent is None:  # the thread's main greenlet
        try:
            pool = _idle.greenlets
        except AttributeError:
            pool = _idle.greenlets = []
    child = pool.pop() if pool else _BridgeGreenlet(_serve, current)
    handed = child.switch((fn, args, kwargs, contextvars.copy_context()))
    while handed is not _FINISHED:
        if child.dead:  # ended by a GreenletExit raised in ``fn``: its value
            result: T = handed
            return result
        try:
            value = await handed
        except BaseException:  # noqa: BLE001 - handed back to the synchronous code
            handed = child.throw(*sys.exc_info())
        else:
            handed = child.switch(value)
    outcome = child.outcome
    child.outcome = _BridgeGreenlet.outcome
    if pool is not None and len(pool) < POOL_SIZE:
        pool.append(child)
    else:
        child.switch(None)  # ends it
    if outcome[0]:
        result = outcome[1]
        return result
    error = outcome[1]
    outcome = _BridgeGreenlet.outcome
    try:
        raise error
    finally:
        del error
