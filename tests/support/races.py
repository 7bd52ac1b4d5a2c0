"""Threads released together by a barrier, round after round (for atomicity tests)."""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["KEYS", "THREADS", "race", "race_code_redemptions"]

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


def race_code_redemptions(redeem: Callable[[str], str], codes: list[str],
                          threads: int = 4) -> list[str]:
    """Redeem each code from ``threads`` threads at once (``redeem(code)`` returns the
    access token issued); check that exactly one redemption per code wins and the others
    fail with ``InvalidAuthorizationCode``. Returns the winners' access tokens, which the
    losers' replay should have revoked (RFC 6749 4.1.2)."""
    from pyop.exceptions import InvalidAuthorizationCode

    def attempt(round_: int) -> Any:
        try:
            return redeem(codes[round_])
        except InvalidAuthorizationCode as error:
            return error

    winners = []
    for outcomes in race(attempt, rounds=len(codes), threads=threads):
        won = [o for o in outcomes if isinstance(o, str)]
        assert len(outcomes) == threads and len(won) == 1, outcomes
        assert all(isinstance(o, InvalidAuthorizationCode) for o in outcomes if o not in won)
        winners.extend(won)
    return winners
