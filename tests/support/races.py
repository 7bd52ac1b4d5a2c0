"""Threads released together by a barrier, round after round (for atomicity tests)."""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["KEYS", "THREADS", "race"]

THREADS = 8
KEYS = 50


def race(operation: Callable[[int], Any], rounds: int = KEYS,
         threads: int = THREADS) -> list[list[Any]]:
    """Run ``operation(round)`` in ``threads`` threads, released together each round.

    Returns the results per round. Exceptions fail the test.
    """
    barrier = threading.Barrier(threads)
    results: list[list[Any]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        for r in range(rounds):
            try:
                barrier.wait(timeout=30)
                outcome = operation(r)
            except BaseException as error:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(error)
                barrier.abort()
                return
            with lock:
                results[r].append(outcome)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    if errors:
        raise errors[0]
    return results
