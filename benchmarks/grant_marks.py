"""What the grant revocation mark costs, and what it saves.

``python -m benchmarks.grant_marks [--batches N] [--refreshes N]`` measures, in one run and
on the in-memory stores:

- an access token lookup (what UserInfo and introspection do) of a token whose record names
  its grant -- one more keyed read, of the grant's revocation mark -- against one that does
  not (a server-side code's first access token, or a sealed token issued before grant ids),
  with sealed (stateless) access tokens and with server-side ones; printed as a ratio;
- a refresh and the revocation of its grant after 1 and after ``--refreshes`` refreshes of
  the same refresh token (each with its stored record size): constant now, where the
  previous layout listed every access token in the grant's record.

Batches of the two sides alternate, and the median per call is reported, so that the
ratios hold on a noisy, shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable, Optional

from pyop.authz_state import AuthorizationState
from pyop.storage import StatelessWrapper
from pyop.storage.base import canonical_json
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

__all__ = ["main"]

CLIENT_ID = "bench-client"
AUTH_REQ = {"client_id": CLIENT_ID, "redirect_uri": "https://rp.example.com/callback",
            "response_type": "code", "scope": "openid profile email", "nonce": "n"}
SECRET = "benchmark-sealing-secret-0123456789"


def _state(sealed: bool) -> AuthorizationState:
    stores: dict[str, Any] = {}
    if sealed:
        stores = {"authorization_code_db": StatelessWrapper("authz_codes", SECRET),
                  "access_token_db": StatelessWrapper("access_tokens", SECRET),
                  "refresh_token_db": StatelessWrapper("refresh_tokens", SECRET)}
    return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                              refresh_token_lifetime=86400, **stores)


def _grant(state: AuthorizationState) -> tuple[str, str]:
    code = state.issue_authorization_code(AUTH_REQ, "sub-1", "alice", ["openid", "profile"])
    access, refresh = state.redeem_authorization_code(code, state.get_authorization_code(code))
    assert refresh is not None
    return access.value, refresh


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def paired(a: Callable[[], Any], b: Callable[[], Any], batches: int,
           calls: int = 2000) -> tuple[float, float]:
    """Median seconds per call of ``a`` and of ``b``, in alternating batches."""
    times_a, times_b = [], []
    for _ in range(batches):
        times_a.append(_per_call(a, calls))
        times_b.append(_per_call(b, calls))
    return statistics.median(times_a), statistics.median(times_b)


def lookup_costs(batches: int) -> dict[str, tuple[float, float]]:
    """Per kind of store: (lookup without the mark, lookup with it)."""
    results = {}
    # sealed: a token without grant id (sealed before this version, as its record was)
    # against one issued from a sealed code, which names its grant
    state = _state(sealed=True)
    with_mark, _ = _grant(state)
    record = state.get_access_token(with_mark)
    old = dict(record)
    del old["grant_id"]
    without_mark = state.access_tokens.seal(old, record["exp"])  # type: ignore[attr-defined]
    results["sealed"] = paired(lambda: state.get_access_token(without_mark),
                               lambda: state.get_access_token(with_mark), batches)
    # server-side: the code's first access token (listed, no mark) against a refreshed one
    state = _state(sealed=False)
    first, refresh = _grant(state)
    refreshed = state.refresh_access_token(refresh, CLIENT_ID)[0].value
    results["memory"] = paired(lambda: state.get_access_token(first),
                               lambda: state.get_access_token(refreshed), batches)
    return results


def grant_costs(refreshes: int, batches: int) -> dict[int, dict[str, float]]:
    """After 1 and after ``refreshes`` refreshes: refresh time, record size, revocation."""
    out: dict[int, dict[str, float]] = {}
    for count in (1, refreshes):
        state = _state(sealed=False)
        _, refresh = _grant(state)
        for _ in range(count):
            state.refresh_access_token(refresh, CLIENT_ID)
        size = len(canonical_json(state.refresh_tokens.get(refresh)).encode())
        def one_refresh(state: AuthorizationState = state, refresh: str = refresh) -> Any:
            return state.refresh_access_token(refresh, CLIENT_ID)

        refresh_time = statistics.median(_per_call(one_refresh, 200) for _ in range(batches))
        revocations = []
        for _ in range(batches):
            other = _state(sealed=False)
            _, token = _grant(other)
            for _ in range(count):
                other.refresh_access_token(token, CLIENT_ID)
            start = time.perf_counter()
            other.revoke_refresh_token(token)
            revocations.append(time.perf_counter() - start)
        out[count] = {"record_bytes": size, "refresh_s": refresh_time,
                      "revoke_s": statistics.median(revocations)}
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument("--refreshes", type=int, default=2000)
    args = parser.parse_args(argv)
    for kind, (without, with_mark) in lookup_costs(args.batches).items():
        print(f"access token lookup, {kind:6}: {without * 1e6:7.2f} us without the mark, "
              f"{with_mark * 1e6:7.2f} us with it (ratio {with_mark / without:.2f})")
    costs = grant_costs(args.refreshes, max(3, args.batches // 3))
    for count, figures in costs.items():
        print(f"after {count:5} refreshes: grant record {figures['record_bytes']:.0f} bytes, "
              f"refresh {figures['refresh_s'] * 1e6:7.1f} us, "
              f"revocation {figures['revoke_s'] * 1e6:7.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
