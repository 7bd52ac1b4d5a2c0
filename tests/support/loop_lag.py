"""A probe of the event loop's responsiveness, for the asyncio tests.

A task wakes every ``tick`` seconds and records the time between two wake-ups: a gap much
longer than the tick is a time during which the loop ran something else without
yielding (blocking I/O, or long CPU work).

Two things that are not a block by the code under test are kept out of the figures:

* the cyclic garbage collector: after thousands of tests the heap is large and one full
  collection can hold the interpreter for a few hundred milliseconds, wherever it falls.
  The probe collects, then freezes the surviving objects (:func:`gc.freeze`) for the
  measured window, so a collection there only scans what the window allocated;
* the machine: a shared CI host can deschedule the whole process. :func:`smallest_gap`
  measures again when a gap exceeds the bound; a real block is there on every attempt
  (the tests that show the probe failing keep failing on each one).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable

__all__ = ["ATTEMPTS", "LagProbe", "lag_probe", "smallest_gap"]

ATTEMPTS = 3  #: measurements made at most by :func:`smallest_gap`


class LagProbe:
    """Wakes every ``tick`` seconds; keeps the gaps between two wake-ups."""

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.gaps: list[float] = []
        self._last = time.perf_counter()

    async def run(self) -> None:
        self._last = time.perf_counter()
        while True:
            await asyncio.sleep(self.tick)
            self._record()

    def _record(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    @property
    def ticks(self) -> int:
        return len(self.gaps)

    @property
    def max_gap(self) -> float:
        """The longest gap seen (0 before the first one)."""
        return max(self.gaps, default=0.0)


@contextlib.asynccontextmanager
async def lag_probe(tick: float = 0.005) -> AsyncIterator[LagProbe]:
    """A :class:`LagProbe` ticking on the running loop for the body of the ``with``
    (started, and ticking, before the body runs)."""
    gc.collect()
    gc.freeze()
    try:
        probe = LagProbe(tick)
        task = asyncio.create_task(probe.run())
        await asyncio.sleep(tick * 2)
        try:
            yield probe
        finally:
            probe._record()  # the gap up to the end of the body counts too (a block just before it)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        gc.unfreeze()


def smallest_gap(measure: Callable[[], float], bound: float,
                 attempts: int = ATTEMPTS) -> list[float]:
    """Call ``measure`` (one measurement: the largest gap it saw, in seconds) until a result
    is under ``bound``, at most ``attempts`` times; every result, in order.

    Assert on ``min(...)``: code that blocks the loop exceeds the bound on every attempt.
    """
    results: list[float] = []
    for _ in range(attempts):
        results.append(measure())
        if results[-1] < bound:
            break
    return results
