"""Runs the differential scenarios in-process against this library.

The scenarios are executed by the very code that runs them under pyop 3
(:class:`tests.compat.pyop3_harness.Runner`); only the way time is made
deterministic differs: pyop 3 reads ``time.time()`` (patched in its process),
this library takes an injected clock (``clock=`` on ``AuthorizationState``,
``Provider`` and the storage backends).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Callable

from .pyop3_harness import Runner

#: How far the clock moves at each reading (seconds).
TICK = 1e-6


def ticking_clock(now: float) -> Callable[[], float]:
    """``now``, a microsecond later at each reading: deterministic, and every second
    (``iat``, ``exp``, ``expires_in``) is ``now``'s, as under pyop 3's frozen ``time.time``.
    A clock that never moves cannot order events: logout revokes what was issued up to
    its clock reading (docs/token-lifecycle.rst "Logout"), so under a frozen clock a login
    after the logout would count as before it. pyop 3 deleted records instead of comparing
    times, so its clock can stay frozen."""
    counter = itertools.count()
    return lambda: now + next(counter) * TICK


def run_ours(payload: dict[str, Any]) -> dict[str, Any]:
    """Results of ``payload["scenarios"]`` with this library, as JSON data (like pyop 3's)."""
    results = Runner(payload["key_pem"], clock=ticking_clock(float(payload["now"]))).run(
        payload["scenarios"])
    # the same JSON round trip as the subprocess's output (tuples -> lists, key types)
    return json.loads(json.dumps(results, sort_keys=True))
