"""What one storage primitive costs on each backend, next to one signature.

``python -m benchmarks.primitives [--backends sqlite,postgresql,redis] [--batches N]``
times each storage call a code flow makes (the record sizes are those of the
flow) in batches that alternate with batches of one RS256 signature, like
``python -m benchmarks`` does for whole flows, and prints the median time per
call and its ratio to the signature. Reading a flow's cost off it: a code flow
makes ``get`` ×6 (4 client reads, the code, the access token), ``set`` ×2,
``compare_and_set_then_set`` ×1 (one round trip on Redis and PostgreSQL, two
elsewhere) and ``add`` of a known key ×1.

Also a bare round trip of the driver (``SELECT 1`` through the DBAPI cursor,
Redis ``PING`` through redis-py), the floor under any statement or command, and
for Redis a ``PING`` on a bare socket (the loopback round trip, no client library).
"""

from __future__ import annotations

import argparse
import itertools
import socket
import sys
import time
from typing import Any, Callable, Optional

from cryptography.hazmat.primitives.asymmetric import rsa

from pyop.crypto import SigningKey
from pyop.storage import RedisWrapper, StorageBase

from .flows import (
    ALL_BACKENDS,
    _engine,
    client_metadata,
    driver_round_trip,
    measure,
    signature_floor,
)

__all__ = ["main", "primitive_costs"]

#: An authorization code record as the flow stores it (about 600 bytes of JSON).
CODE_RECORD: dict[str, Any] = {
    "exp": 0, "iat": 0, "client_id": "bench-client", "sub": "f" * 64, "user_id": "alice",
    "scope": "openid profile email", "token_type": "authorization_code",
    "auth_req": {"client_id": "bench-client", "redirect_uri": "https://rp.example.com/callback",
                 "response_type": "code", "scope": "openid profile email",
                 "state": "af0ifjsldkj", "nonce": "n-0S6_WzA2Mj"},
}


def _socket_ping(url: str) -> Callable[[], Any]:
    """A Redis ``PING`` written and read on a bare TCP socket: the loopback round trip
    itself, without any client library."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def ping() -> bytes:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64)

    return ping


def primitive_costs(backend: str, key: SigningKey, batches: int, batch_seconds: float,
                    log: Callable[[str], None] = print) -> dict[str, tuple[float, float]]:
    """``operation -> (microseconds per call, ratio to one signature)`` on ``backend``."""
    floor = signature_floor(key, {"iss": "https://op.example.com", "sub": "f" * 64,
                                  "aud": "bench-client", "exp": 0, "iat": 0,
                                  "nonce": "n-0S6_WzA2Mj"})
    results: dict[str, tuple[float, float]] = {}
    with _engine(backend) as url:
        options: dict[str, Any] = {}
        if backend == "postgresql-nosync":
            options["postgresql_synchronous_commit"] = "off"
        elif backend == "sqlite-full":
            options["sqlite_synchronous"] = "FULL"
        store = StorageBase.from_uri(url or "memory://", collection="primitives",
                                     db_name="bench", **options)
        try:
            now = time.time()
            record = dict(CODE_RECORD, exp=int(now) + 600, iat=int(now))
            used = dict(record, used=True)
            store.set("client", client_metadata())
            store.add("known-sub", {"user_id": "alice", "type": "public"})
            counter = itertools.count()

            def set_new() -> None:
                store.set(f"code-{next(counter)}", record, expires_at=now + 600)

            def cas_flip() -> None:
                # one successful compare_and_set per call, alternating the two values
                n = next(counter)
                old, new = (record, used) if n % 2 == 0 else (used, record)
                store.compare_and_set("cas", old, new, expires_at=now + 900)

            store.set("cas", record, expires_at=now + 600)
            operations: list[tuple[str, Callable[[], Any]]] = [
                ("get (client record)", lambda: store.get("client")),
                ("get (absent key)", lambda: store.get("absent")),
                ("set (new code)", set_new),
                ("compare_and_set (match)", cas_flip),
                ("add (known key: no write)", lambda: store.add(
                    "known-sub", {"user_id": "alice", "type": "public"})),
            ]
            store.get("warm-up")  # creates the table, fills the pool
            trip = driver_round_trip(store)
            if trip is not None:
                name = "driver round trip (PING)" if isinstance(
                    store, RedisWrapper) else "driver round trip (SELECT 1)"
                operations.insert(0, (name, trip))
            if isinstance(store, RedisWrapper) and url and url.startswith("redis://"):
                operations.insert(0, ("socket round trip (PING)", _socket_ping(url)))
            for name, operation in operations:
                m = measure(operation, floor, batches, batch_seconds)
                results[name] = (m.op_median * 1e6, m.ratio)
                log(f"  {backend:<18} {name:<30} {m.op_median * 1e6:8.1f} us   "
                    f"{m.ratio:5.3f}x signature ({m.floor_median * 1e3:.3f} ms)")
        finally:
            store.close()
    return results


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.primitives",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="memory,sqlite,postgresql,redis",
                        help=f"comma-separated, from {','.join(ALL_BACKENDS)}")
    parser.add_argument("--batches", type=int, default=11)
    parser.add_argument("--batch-seconds", type=float, default=0.05)
    args = parser.parse_args(argv)
    key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    for backend in (b.strip() for b in args.backends.split(",") if b.strip()):
        if backend not in ALL_BACKENDS:
            parser.error(f"unknown backend {backend!r}")
        primitive_costs(backend, key, args.batches, args.batch_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
