"""Driver clients and event loops.

An asyncio driver client (a ``redis.asyncio`` connection pool, an SQLAlchemy
``AsyncEngine``'s pool, an ``AsyncMongoClient``) belongs to the event loop it first ran
on: its connections, futures and locks are that loop's. An application may nevertheless
run several loops over its life or at once -- each ``with TestClient(app)`` block of
Starlette, each test of pytest-asyncio, each restart of ``uvicorn --reload``, a thread
running a loop of its own -- while its provider, and so its stores, are built once.

So the async stores resolve their driver client *when they are used*, on the running loop:

* :class:`LoopLocal` -- one value (a client) per event loop, made on the first use on
  that loop. When the loop shuts down (``asyncio.run``, anyio, uvicorn and
  pytest-asyncio close the loop's asynchronous generators before closing it) the value
  is closed there, on its own loop; a loop closed without that shutdown is noticed the
  next time another loop makes its value, and its value is then dropped (nothing can be
  awaited on a closed loop). No value of a closed loop is kept.
* :class:`LoopBinding` -- for a client the application passed in (``client=``,
  ``engine=``), which the store cannot create again: it serves the loop that first uses
  it; on another loop :class:`EventLoopMismatch` is raised, naming the rule, instead of
  the driver's own error (or a hang). A binding may allow moving to a new loop once the
  first one is closed (SQLAlchemy engines: their pool is replaced).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, Callable, Generic, Optional, TypeVar

from ._bridge import MissingAsyncContext

__all__ = ["EventLoopMismatch", "LoopBinding", "LoopClients", "LoopLocal", "running_loop"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

Loop = asyncio.AbstractEventLoop


class EventLoopMismatch(RuntimeError):
    """An asyncio driver object was used on an event loop it cannot serve.

    Raised by the async stores of :mod:`pyop.aio.storage` instead of the driver's own
    error when a client or engine passed in by the application (``client=``,
    ``engine=``), which belongs to the event loop that first used it, is used on another
    loop. The stores that create their driver clients themselves serve every loop (a
    client per loop). (Outside any running loop, the stores raise
    :class:`~pyop.aio.MissingAsyncContext`.)
    """


def running_loop() -> Optional[Loop]:
    """The running event loop, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _require_loop(what: str) -> Loop:
    loop = running_loop()
    if loop is None:
        raise MissingAsyncContext(
            f"{what} was used outside a running event loop: await the store's coroutines "
            "(or AsyncProvider's) on an event loop")
    return loop


def _ref(loop: Loop) -> Callable[[], Optional[Loop]]:
    try:
        return weakref.ref(loop)
    except TypeError:  # pragma: no cover - a loop class without weak references
        return lambda: loop


def _gone(loop: Optional[Loop]) -> bool:
    return loop is None or loop.is_closed()


class _Slot(Generic[T]):
    """The value of one loop, and the asynchronous generator that closes it when that
    loop shuts down."""

    __slots__ = ("loop", "value", "done", "watcher")

    def __init__(self, loop: Loop, value: T) -> None:
        self.loop = _ref(loop)
        self.value = value
        #: closed or dropped already (set under the owner's lock)
        self.done = False
        self.watcher: Optional[AsyncGenerator[None, None]] = None

    def finish_watcher(self) -> None:
        """End the shutdown watcher without awaiting anything (``done`` is set): once
        finished, the loop never has to finalise it (its loop may be closed)."""
        watcher, self.watcher = self.watcher, None
        if watcher is None:
            return
        closing = watcher.aclose()
        try:
            closing.send(None)
        except StopIteration:
            pass
        except (RuntimeError, GeneratorExit):  # pragma: no cover - being closed by its loop
            closing.close()


class LoopLocal(Generic[T]):
    """One value per event loop (see the module docstring).

    :param make: makes the value of the running loop (called on that loop, once).
    :param close: ``await close(value)`` closes it (on its loop); None: nothing to close
        (e.g. an :class:`asyncio.Lock`), values of closed loops are only dropped.
    :param what: names the values in errors and logs.
    """

    def __init__(self, make: Callable[[], T],
                 close: Optional[Callable[[T], Awaitable[Any]]] = None,
                 what: str = "an async store") -> None:
        self._make = make
        self._close = close
        self.what = what
        self._lock = threading.Lock()
        self._slots: dict[int, _Slot[T]] = {}
        if close is not None:
            # once this is collected (or at exit), end the watchers left: the loop of an
            # unfinished one would otherwise be asked to finalise it, closed or not
            weakref.finalize(self, _finish_all, self._slots)

    def __repr__(self) -> str:
        return f"LoopLocal({self.what}, {len(self._slots)} loop(s))"

    def get(self) -> T:
        """The running loop's value, made on its first use there.

        :raises MissingAsyncContext: no running event loop.
        """
        try:  # inline: read on every statement of the async SQL store
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = _require_loop(self.what)
        slot = self._slots.get(id(loop))
        if slot is not None and slot.loop() is loop:
            return slot.value
        return self._add(loop)

    def current(self) -> Optional[T]:
        """The running loop's value if it has one (never makes one)."""
        loop = running_loop()
        slot = None if loop is None else self._slots.get(id(loop))
        return slot.value if slot is not None and slot.loop() is loop else None

    def values(self) -> list[T]:
        """The values of the loops that are not closed."""
        with self._lock:
            return [s.value for s in self._slots.values() if not _gone(s.loop())]

    def _add(self, loop: Loop) -> T:
        with self._lock:
            stale = self._take_stale()
            slot = self._slots.get(id(loop))
            new = slot is None or slot.loop() is not loop
            if slot is None or new:
                slot = self._slots[id(loop)] = _Slot(loop, self._make())
        for old in stale:
            old.finish_watcher()
        if new and self._close is not None:
            self._watch(slot)
        return slot.value

    def _take_stale(self) -> list[_Slot[T]]:
        """Remove the slots of closed (or collected) loops; called under the lock."""
        stale = [key for key, s in self._slots.items() if _gone(s.loop())]
        slots = [self._slots.pop(key) for key in stale]
        for slot in slots:
            slot.done = True
        if slots:
            logger.debug("%s: dropped the clients of %d closed event loop(s)", self.what,
                         len(slots))
        return slots

    def _watch(self, slot: _Slot[T]) -> None:
        """Start an asynchronous generator on the running loop whose ``finally`` closes
        ``slot``'s value: the loop's ``shutdown_asyncgens`` (run by ``asyncio.run`` and
        the like before closing it) finalises it there."""
        watcher = _watcher(weakref.ref(self), slot)
        step = watcher.asend(None)  # the loop's first-iteration hook registers it
        try:
            step.send(None)
        except StopIteration:
            slot.watcher = watcher
        else:  # pragma: no cover - the watcher never awaits before its first yield
            raise AssertionError("the watcher awaited before its first yield")

    async def _release(self, slot: _Slot[T]) -> None:
        """Close ``slot``'s value on its (running) loop, once."""
        with self._lock:
            if slot.done:
                return
            slot.done = True
            if self._slots.get(id(slot.loop())) is slot:
                del self._slots[id(slot.loop())]
        await self._close_value(slot.value)

    async def _close_value(self, value: T) -> None:
        if self._close is None:
            return
        try:
            await self._close(value)
        except Exception as error:  # noqa: BLE001 - closing is best effort
            logger.debug("%s: error on close: %s", self.what, type(error).__name__)

    async def aclose(self) -> None:
        """Close every value: the running loop's now (awaited); another loop's on that
        loop, scheduled there (it runs when that loop runs); a closed loop's is dropped.
        The next :meth:`get` on a loop makes a new value."""
        current = running_loop()
        with self._lock:
            slots = [s for s in self._slots.values() if not s.done]
            self._slots.clear()
            for slot in slots:
                slot.done = True
        for slot in slots:
            loop = slot.loop()
            if loop is current:
                slot.finish_watcher()
                await self._close_value(slot.value)
            elif loop is None or loop.is_closed():
                slot.finish_watcher()
            else:
                try:
                    asyncio.run_coroutine_threadsafe(self._close_elsewhere(slot), loop)
                except RuntimeError:  # closed meanwhile: nothing to await there
                    slot.finish_watcher()

    async def _close_elsewhere(self, slot: _Slot[T]) -> None:
        """:meth:`aclose` of a value of another loop, run on that loop."""
        slot.finish_watcher()
        await self._close_value(slot.value)


async def _watcher(owner: Callable[[], Optional[LoopLocal[Any]]], slot: _Slot[Any]
                   ) -> AsyncGenerator[None, None]:
    """Suspended until its loop shuts down (or :meth:`_Slot.finish_watcher`); holds its
    :class:`LoopLocal` weakly (which ends the watchers it leaves when collected)."""
    try:
        yield
    finally:
        local = owner()
        if local is not None:
            await local._release(slot)


def _finish_all(slots: dict[int, _Slot[Any]]) -> None:
    """End the watchers of a collected :class:`LoopLocal` (its values are dropped)."""
    for slot in list(slots.values()):
        slot.done = True
        slot.finish_watcher()
    slots.clear()


class LoopBinding:
    """The event loop that a driver object passed in by the application serves (see the
    module docstring).

    :param what: names the object in the error (``"the redis.asyncio client passed as
        client="``).
    :param rebind: called (on the new loop) to move the object to a new loop once the
        loop it served is closed; None: it cannot move.
    :param advice: what to do instead, appended to the error.
    """

    def __init__(self, what: str, *, rebind: Optional[Callable[[], None]] = None,
                 advice: str = "") -> None:
        self.what = what
        self._rebind = rebind
        self._advice = advice
        self._lock = threading.Lock()
        self._loop: Optional[Callable[[], Optional[Loop]]] = None

    def check(self) -> None:
        """Bind to the running loop on first use; else check it is the bound one.

        :raises EventLoopMismatch: another loop, still open, was bound; or it was closed
            and the object cannot move.
        :raises MissingAsyncContext: no running loop.
        """
        loop = _require_loop(self.what)
        bound = self._loop
        if bound is not None and bound() is loop:
            return
        with self._lock:
            owner = None if self._loop is None else self._loop()
            if owner is loop:
                return
            if self._loop is not None:
                if not _gone(owner):
                    raise EventLoopMismatch(
                        f"{self.what} belongs to the event loop that first used it, which "
                        f"is still open; it cannot serve another loop at the same time"
                        f"{self._advice}")
                if self._rebind is None:
                    raise EventLoopMismatch(
                        f"{self.what} belongs to the event loop that first used it, which "
                        f"is closed; it cannot be moved to another loop{self._advice}")
                self._rebind()
                logger.debug("%s moved to a new event loop (the previous one is closed)",
                             self.what)
            self._loop = _ref(loop)


class LoopClients(Generic[T]):
    """The driver client of the running event loop, for a store: one made per loop by
    ``connect`` (a :class:`LoopLocal`), or else the one the application passed in (a
    :class:`LoopBinding`: it serves the loop that first uses it).

    :param given: the application's client (used when ``connect`` is None).
    :param connect: makes the client of a loop, on its first use there.
    :param close: ``await close(client)`` closes a client ``connect`` made.
    :param what: names the clients in errors and logs (``"AsyncRedisStorage's
        redis.asyncio client"``).
    """

    def __init__(self, given: T, *, connect: Optional[Callable[[], T]],
                 close: Callable[[T], Awaitable[Any]], what: str) -> None:
        self._given = given
        self._binding = LoopBinding(
            f"{what} passed in as client=",
            advice=": leave client= out (the store then makes a client per loop)")
        self._made: Optional[LoopLocal[T]] = (
            None if connect is None else LoopLocal(connect, close, what))

    @property
    def per_loop(self) -> bool:
        """Whether the clients are made per loop (no client was passed in)."""
        return self._made is not None

    @property
    def given(self) -> T:
        """The client passed in (meaningful when not :attr:`per_loop`)."""
        return self._given

    def current(self) -> T:
        """The running loop's client.

        :raises EventLoopMismatch: a client passed in, used on a loop it cannot serve.
        :raises MissingAsyncContext: no running loop.
        """
        if self._made is not None:
            return self._made.get()
        self._binding.check()
        return self._given

    async def aclose(self) -> None:
        """Close the clients made per loop (see :meth:`LoopLocal.aclose`); a client
        passed in is the application's to close."""
        if self._made is not None:
            await self._made.aclose()
