"""Memory of the in-memory store with many live tokens, and purge of expired ones.

Run in a fresh process (``python -m benchmarks.memcheck --tokens 100000``) so
the resident set size (RSS) measures this store alone. Prints one JSON object:

* ``rss_delta_mb``: RSS growth (``VmRSS`` of ``/proc/self/status``) from just
  before to just after creating the tokens with
  ``AuthorizationState.create_access_token``;
* ``live_after_expiry_write``: records physically left after the injected
  clock is advanced past expiry and one more token is written (the write
  runs the amortised sweep), i.e. 1 when the sweep worked;
* ``live_after_purge``: records left after advancing again and calling
  ``purge_expired()`` explicitly (expected 0).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from typing import Any, Optional

from pyop.authz_state import AuthorizationState
from pyop.storage import MemoryStorage
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

__all__ = ["rss_kib", "run", "main"]


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rss_kib() -> int:
    """Current resident set size in KiB (``VmRSS``), or the peak RSS where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run(tokens: int) -> dict[str, Any]:
    """Create ``tokens`` access tokens, measure the RSS growth, then expire and purge them."""
    clock = _Clock(1_800_000_000.0)
    store = MemoryStorage(clock=clock)
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("bench-salt"),
                               access_token_db=store, clock=clock)
    request = {"client_id": "client1", "redirect_uri": "https://rp.example.com/callback",
               "response_type": "id_token token", "scope": "openid profile email",
               "nonce": "n-0S6_WzA2Mj"}
    scope = ["openid", "profile", "email"]
    sub = authz.get_subject_identifier("public", "alice")
    authz.create_access_token(request, sub, "alice", scope)  # warm up every code path
    store.purge_expired()
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    for i in range(tokens):
        authz.create_access_token(request, sub, f"user{i}", scope)
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_kib()
    live = len(store)

    clock.now += authz.access_token_lifetime + 1
    authz.create_access_token(request, sub, "alice", scope)  # a write runs the sweep
    after_sweep = len(store._data)
    clock.now += authz.access_token_lifetime + 1
    purged = store.purge_expired()
    after_purge = len(store._data)
    return {
        "tokens": tokens,
        "live_tokens": live,
        "rss_before_mb": before / 1024,
        "rss_after_mb": after / 1024,
        "rss_delta_mb": (after - before) / 1024,
        "bytes_per_token": (after - before) * 1024 / max(1, tokens),
        "create_us_per_token": elapsed / max(1, tokens) * 1e6,
        "live_after_expiry_write": after_sweep,
        "purged_explicitly": purged,
        "live_after_purge": after_purge,
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    args = parser.parse_args(argv)
    json.dump(run(args.tokens), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
