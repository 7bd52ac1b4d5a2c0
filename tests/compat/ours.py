"""Runs the differential scenarios in-process against this library.

The scenarios are executed by the very code that runs them under pyop 3
(:class:`tests.compat.pyop3_harness.Runner`); only the way time is made
deterministic differs: pyop 3 reads ``time.time()`` (patched in its process),
this library takes an injected clock (``clock=`` on ``AuthorizationState``,
``Provider`` and the storage backends).
"""

from __future__ import annotations

import json
from typing import Any

from .pyop3_harness import Runner


def run_ours(payload: dict[str, Any]) -> dict[str, Any]:
    """Results of ``payload["scenarios"]`` with this library, as JSON data (like pyop 3's)."""
    now = float(payload["now"])
    results = Runner(payload["key_pem"], clock=lambda: now).run(payload["scenarios"])
    # the same JSON round trip as the subprocess's output (tuples -> lists, key types)
    return json.loads(json.dumps(results, sort_keys=True))
