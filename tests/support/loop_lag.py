"""A probe of the event loop's responsiveness, for the asyncio tests.

A task wakes every ``tick`` seconds and records the time between two wake-ups: a gap much
longer than the tick is a time during which the loop ran something else without
yielding (blocking I/O, or long CPU work).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

__all__ = ["LagProbe", "lag_probe"]


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
