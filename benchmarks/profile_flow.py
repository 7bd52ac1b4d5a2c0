"""Where the time of an RS256 code flow goes, signature aside.

``python -m benchmarks.profile_flow [--flows N] [--top N] [--backend NAME]`` prints

1. the median time of each step of the flow measured without a profiler
   (``parse``, ``authorize``, ``token`` minus one signature, ``userinfo``),
   next to one bare signature, so the non-signature budget can be read off;
2. a cProfile of the same flows: the functions with the most own time, the
   RSA signature left out, and the own time grouped by area (pyop module,
   ``oic``, ``json``, ``urllib``, other standard library, storage drivers).

``--backend`` (``memory`` by default; ``sqlite``, ``postgresql``, ``redis``...) runs
the flows on that storage backend, the engine started as ``python -m benchmarks``
starts it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.crypto import SigningKey
from pyop.provider import Provider

from .flows import (
    ALL_BACKENDS,
    BASIC_AUTH,
    CODE_QUERY,
    REDIRECT_URI,
    USER_ID,
    _engine,
    build_provider,
    check_code_flow,
    code_flow,
    signature_floor,
)

__all__ = ["step_breakdown", "profile_flows", "main"]

_REDIRECT_Q = quote(REDIRECT_URI, safe="")


@contextlib.contextmanager
def provider_on(key: SigningKey, backend: str = "memory") -> Iterator[Provider]:
    """A benchmark provider on ``backend`` (its engine started for the block)."""
    with _engine(backend) as url:
        deployment = build_provider(key, backend, url, namespace="profile")
        try:
            yield deployment.provider
        finally:
            deployment.close()


def step_breakdown(key: SigningKey, flows: int,
                   provider: Optional[Provider] = None) -> dict[str, float]:
    """Median microseconds of each step over ``flows`` flows (no profiler)."""
    if provider is None:
        provider = build_provider(key, "memory").provider
    floor = signature_floor(key, check_code_flow(code_flow(provider)))
    steps: dict[str, list[float]] = collections.defaultdict(list)
    clock = time.perf_counter
    for _ in range(50):
        code_flow(provider)
    for _ in range(flows):
        t0 = clock()
        authn_req = provider.parse_authentication_request(CODE_QUERY)
        t1 = clock()
        response = provider.authorize(authn_req, USER_ID)
        t2 = clock()
        body = ("grant_type=authorization_code&code=" + response["code"]
                + "&redirect_uri=" + _REDIRECT_Q)
        t3 = clock()
        tokens = provider.handle_token_request(body, {"Authorization": BASIC_AUTH})
        t4 = clock()
        provider.handle_userinfo_request("", {"Authorization": "Bearer " + tokens["access_token"]})
        t5 = clock()
        floor()
        t6 = clock()
        steps["parse_authentication_request"].append(t1 - t0)
        steps["authorize"].append(t2 - t1)
        steps["handle_token_request (incl. signature)"].append(t4 - t3)
        steps["handle_userinfo_request"].append(t5 - t4)
        steps["signature (jws_sign, floor)"].append(t6 - t5)
        steps["flow total"].append((t2 - t0) + (t5 - t3))
    result = {name: statistics.median(values) * 1e6 for name, values in steps.items()}
    result["flow minus signature"] = (result["flow total"]
                                      - result["signature (jws_sign, floor)"])
    return result


def _area(filename: str) -> str:
    if "/pyop/" in filename:
        return "pyop." + os.path.splitext(filename.split("/pyop/", 1)[1])[0].replace("/", ".")
    if "/oic/" in filename:
        return "oic (messages)"
    for driver in ("sqlalchemy", "psycopg", "redis", "sqlite3", "pymongo"):
        if f"/{driver}/" in filename:
            return f"{driver} (driver)"
    if "/json/" in filename:
        return "json (stdlib)"
    if filename.endswith("urllib/parse.py"):
        return "urllib.parse (stdlib)"
    if "/benchmarks/" in filename:
        return "benchmark harness"
    if filename == "~":
        return "builtins / C"
    return "other stdlib / libraries"


def profile_flows(key: SigningKey, flows: int, top: int,
                  out: Callable[[str], None] = print,
                  provider: Optional[Provider] = None) -> dict[str, Any]:
    """cProfile ``flows`` code flows; print the top own-time functions and the areas."""
    if provider is None:
        provider = build_provider(key, "memory").provider
    for _ in range(50):
        code_flow(provider)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(flows):
        code_flow(provider)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    rows = []
    areas: collections.Counter[str] = collections.Counter()
    signature = 0.0
    for (filename, line, name), (_cc, ncalls, tottime, _cum, _callers) in raw.items():
        if "sign" in name and "RSAPrivateKey" in name or "EllipticCurvePrivateKey" in name:
            signature += tottime
            continue
        label = f"{name} ({os.path.basename(filename)}:{line})" if filename != "~" else name
        rows.append((tottime, ncalls, label))
        areas[_area(filename)] += tottime
    rows.sort(reverse=True)
    rest = total - signature
    out(f"profiled {flows} flows: {total / flows * 1e3:.3f} ms/flow under cProfile, of which "
        f"signature {signature / flows * 1e3:.3f} ms, everything else "
        f"{rest / flows * 1e3:.3f} ms (profiler overhead inflates the latter)")
    out(f"top {top} functions by own time, signature excluded (us/flow, calls/flow, % of rest):")
    for tottime, ncalls, label in rows[:top]:
        out(f"  {tottime / flows * 1e6:7.1f} us  {ncalls / flows:6.1f}x  "
            f"{100 * tottime / rest:5.1f}%  {label}")
    out("own time by area (signature excluded):")
    for area, seconds in areas.most_common():
        out(f"  {seconds / flows * 1e6:7.1f} us  {100 * seconds / rest:5.1f}%  {area}")
    return {"ms_per_flow_profiled": total / flows * 1e3,
            "signature_ms": signature / flows * 1e3,
            "areas_us": {a: s / flows * 1e6 for a, s in areas.items()},
            "top": [(label, t / flows * 1e6, n / flows) for t, n, label in rows[:top]]}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_flow",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--alg", choices=("RS256", "ES256"), default="RS256")
    parser.add_argument("--backend", choices=ALL_BACKENDS, default="memory",
                        help="storage backend of the flows (default %(default)s)")
    args = parser.parse_args(argv)
    if args.alg == "RS256":
        key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    else:
        key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    with provider_on(key, args.backend) as provider:
        print(f"Step breakdown, {args.alg}, {args.backend}, median of {args.flows} flows "
              "(no profiler):")
        for name, micros in step_breakdown(key, args.flows, provider).items():
            print(f"  {micros:8.1f} us  {name}")
        print()
        profile_flows(key, args.flows, args.top, provider=provider)
    return 0


if __name__ == "__main__":
    sys.exit(main())
