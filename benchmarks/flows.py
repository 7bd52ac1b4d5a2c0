"""Full OpenID Connect flows through pyop, timed against the cost of one signature.

The cost floor of a code flow is the one ID token signature it must make. Every
scenario is timed in batches that alternate with batches of that bare signature
(``pyop.crypto.jws_sign`` of the flow's own ID token payload, same key), in the
same process and run; the ratio of the medians is what the targets are about, so
results hold on a noisy, shared machine. See ``docs/performance.rst``.

Run ``python -m benchmarks --help``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, b64url_decode, jws_sign
from pyop.provider import Provider
from pyop.storage import RedisWrapper, SQLWrapper, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from . import engines
from .counting import PRIMITIVES, count_server_calls, counting_stores

__all__ = ["main", "Measurement", "ScenarioResult", "build_provider", "code_flow"]

ISSUER = "https://op.example.com"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-0123456789"
REDIRECT_URI = "https://rp.example.com/callback"
USER_ID = "alice"
USERS = {
    USER_ID: {
        "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
        "email": "alice@example.com", "email_verified": True, "nickname": "al",
    }
}
#: ``NAME+caches``: the same backend with the opt-in in-process caches on
#: (``Provider(client_cache_ttl=CLIENT_CACHE_TTL)``,
#: ``AuthorizationState(subject_identifier_cache_ttl=SUBJECT_CACHE_TTL,
#: authorization_code_cache_size=CODE_CACHE_SIZE,
#: access_token_cache_ttl=ACCESS_TOKEN_CACHE_TTL)``); ``+executor``: with
#: ``Provider(executor=ThreadPoolExecutor(EXECUTOR_WORKERS))`` (the code redemption is
#: written while the ID token is signed). Each variant is reported on a line of its own.
#: ``postgresql-asyncset``: the code store's ``set`` (issuing a code) commits without
#: waiting for the WAL flush (``SQLWrapper(postgresql_asynchronous_set=True)``), every
#: other write as usual. ``postgresql-unlogged``: codes and access tokens in PostgreSQL's
#: UNLOGGED table (``SQLWrapper(postgresql_unlogged=True)``), the other stores logged.
DEFAULT_BACKENDS = ("memory", "sqlite", "postgresql", "redis", "memory+caches",
                    "postgresql+caches", "redis+caches", "redis+caches+executor",
                    "postgresql+caches+executor", "postgresql-asyncset+caches+executor",
                    "postgresql-unlogged+caches+executor")
CLIENT_CACHE_TTL = 30
SUBJECT_CACHE_TTL = 300
CODE_CACHE_SIZE = 1024
ACCESS_TOKEN_CACHE_TTL = 10
EXECUTOR_WORKERS = 4
#: ``postgresql-nosync``: PostgreSQL with ``synchronous_commit=off`` for the
#: benchmark's connections (no WAL flush wait per write), to tell the cost of
#: the disk from the cost of the round trips. ``sqlite-full``: SQLite with
#: ``PRAGMA synchronous=FULL`` (an fsync per write) instead of the default NORMAL.
ALL_BACKENDS = DEFAULT_BACKENDS + (
    "sqlite+caches", "postgresql-nosync", "sqlite-full", "postgresql-nosync+caches",
    "postgresql-unlogged", "postgresql-unlogged+caches", "postgresql-asyncset+caches",
    "memory+caches+executor", "sqlite+caches+executor")
#: The variants a backend name may carry after its engine, in this order.
VARIANTS = ("caches", "executor")
#: The configuration the Redis and PostgreSQL targets apply to: the fewest storage round
#: trips per flow (caches), and the one left overlapped with the signature (executor).
TARGET_VARIANTS = frozenset(VARIANTS)


def split_backend(backend: str) -> tuple[str, frozenset[str]]:
    """``"redis+caches+executor"`` -> ``("redis", {"caches", "executor"})``;
    ``"redis"`` -> ``("redis", set())``."""
    engine, *variants = backend.split("+")
    if any(v not in VARIANTS for v in variants) or len(set(variants)) != len(variants) \
            or variants != sorted(variants, key=VARIANTS.index):
        raise ValueError(f"unknown backend variant {backend!r}")
    return engine, frozenset(variants)


#: Targets: ratio to the signature floor measured in the same run.
TARGET_MEMORY = 1.5
TARGET_SERVER = 2.5  # Redis, PostgreSQL
TARGET_ES256_MS = 0.35
TARGET_ES256_RATIO = 5.0
TARGET_METADATA = 0.5  # registration, discovery, JWKS
TARGET_RSS_MB = 200.0


def configuration(alg: str) -> dict[str, Any]:
    """Provider metadata of the benchmark OP."""
    return {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token",
        "userinfo_endpoint": ISSUER + "/userinfo",
        "registration_endpoint": ISSUER + "/registration",
        "jwks_uri": ISSUER + "/jwks",
        "response_types_supported": ["code", "id_token token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": [alg],
        "scopes_supported": ["openid", "profile", "email"],
    }


def client_metadata() -> dict[str, Any]:
    """The registered client (client_secret_basic, code and implicit)."""
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        "response_types": ["code", "id_token token"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


# -- providers on each backend ----------------------------------------------------------------


@dataclass
class Deployment:
    """A provider on one storage backend, and how to tear it down."""

    backend: str
    provider: Provider
    close: Callable[[], None]


def build_provider(key: SigningKey, backend: str, url: Optional[str] = None,
                   namespace: str = "bench") -> Deployment:
    """A provider whose authorization state (and, off memory, client db) live on ``backend``.

    ``memory`` is the default ``AuthorizationState`` (no dbs) and a plain dict of
    clients, as in the README. The other backends get one collection per store
    via ``StorageBase.from_uri``, clients included: that is what a deployment
    with several worker processes needs. ``NAME+caches`` turns the opt-in in-process
    caches on (client metadata, written subject identifiers, issued codes and access
    tokens); ``+executor``
    gives the provider a thread pool for code redemptions.
    """
    stores: list[StorageBase] = []
    factory = HashBasedSubjectIdentifierFactory("bench-salt")
    clients: Any
    engine, variants = split_backend(backend)
    authz_options: dict[str, Any] = {}
    provider_options: dict[str, Any] = {}
    closers: list[Callable[[], None]] = []
    if "caches" in variants:
        authz_options["subject_identifier_cache_ttl"] = SUBJECT_CACHE_TTL
        authz_options["authorization_code_cache_size"] = CODE_CACHE_SIZE
        authz_options["access_token_cache_ttl"] = ACCESS_TOKEN_CACHE_TTL
        provider_options["client_cache_ttl"] = CLIENT_CACHE_TTL
    if "executor" in variants:
        pool = ThreadPoolExecutor(EXECUTOR_WORKERS, thread_name_prefix="pyop-redeem")
        provider_options["executor"] = pool
        closers.append(pool.shutdown)
    if engine == "memory":
        authz = AuthorizationState(factory, **authz_options)
        clients = {CLIENT_ID: client_metadata()}
    else:
        assert url is not None

        options: dict[str, Any] = {}
        short_lived: dict[str, Any] = {}
        code_options: dict[str, Any] = {}
        if engine == "postgresql-nosync":
            options["postgresql_synchronous_commit"] = "off"
        elif engine == "postgresql-unlogged":
            short_lived["postgresql_unlogged"] = True
        elif engine == "postgresql-asyncset":
            code_options["postgresql_asynchronous_set"] = True
        elif engine == "sqlite-full":
            options["sqlite_synchronous"] = "FULL"

        def make(collection: str, **extra: Any) -> StorageBase:
            # the namespace in the collection too: on Redis db_name is the database index
            store = StorageBase.from_uri(url, collection=f"{namespace}:{collection}",
                                         db_name=namespace,
                                         **options, **extra)
            stores.append(store)
            return store

        authz = AuthorizationState(factory, make("authz_codes", **short_lived, **code_options),
                                   make("access_tokens", **short_lived),
                                   make("refresh_tokens"), make("subject_identifiers"),
                                   **authz_options)
        clients = make("clients")
        clients[CLIENT_ID] = client_metadata()
    provider = Provider(key, configuration(key.alg), authz, clients, Userinfo(dict(USERS)),
                        **provider_options)

    def close() -> None:
        for closer in closers:
            closer()
        for store in stores:
            store.close()

    return Deployment(backend, provider, close)


# -- the operations ---------------------------------------------------------------------------

BASIC_AUTH = "Basic " + base64.b64encode(
    f"{CLIENT_ID}:{CLIENT_SECRET}".encode("ascii")).decode("ascii")
CODE_QUERY = urlencode({
    "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
    "scope": "openid profile email", "state": "af0ifjsldkj", "nonce": "n-0S6_WzA2Mj",
})
_IMPLICIT_QUERY = urlencode({
    "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "id_token token",
    "scope": "openid profile email", "state": "af0ifjsldkj", "nonce": "n-0S6_WzA2Mj",
})
#: The token request body around the code (a code is base64url: nothing to escape).
TOKEN_BODY_PREFIX = "grant_type=authorization_code&code="
TOKEN_BODY_SUFFIX = "&" + urlencode({"redirect_uri": REDIRECT_URI})
_REGISTRATION = json.dumps({
    "redirect_uris": ["https://rp2.example.com/callback"],
    "response_types": ["code"],
    "client_name": "Benchmark RP",
    "token_endpoint_auth_method": "client_secret_basic",
})


def code_flow(provider: Provider) -> tuple[Any, Any]:
    """One authorization code flow, as the host's routes drive it.

    Returns the token response and the UserInfo response (oic messages); the
    client-side work (building the token request body) is plain string
    concatenation so the harness adds next to nothing.
    """
    authn_req = provider.parse_authentication_request(CODE_QUERY)
    response = provider.authorize(authn_req, USER_ID)
    body = TOKEN_BODY_PREFIX + response["code"] + TOKEN_BODY_SUFFIX
    tokens = provider.handle_token_request(body, {"Authorization": BASIC_AUTH})
    claims = provider.handle_userinfo_request("", {
        "Authorization": "Bearer " + tokens["access_token"]})
    return tokens, claims


#: The pushed authorization request body: the code flow's parameters but client_id (the
#: client authenticates with Basic).
_PAR_BODY = urlencode({
    "redirect_uri": REDIRECT_URI, "response_type": "code",
    "scope": "openid profile email", "state": "af0ifjsldkj", "nonce": "n-0S6_WzA2Mj",
})
_PAR_QUERY_PREFIX = urlencode({"client_id": CLIENT_ID}) + "&request_uri="


def par_code_flow(provider: Provider) -> tuple[Any, Any]:
    """The code flow with a pushed authorization request (RFC 9126): push, authorization
    request with the request_uri, authorize, token, UserInfo."""
    pushed = provider.handle_pushed_authorization_request(_PAR_BODY,
                                                          {"Authorization": BASIC_AUTH})
    authn_req = provider.parse_authentication_request(
        _PAR_QUERY_PREFIX + quote(pushed["request_uri"], safe=""))
    response = provider.authorize(authn_req, USER_ID)
    body = TOKEN_BODY_PREFIX + response["code"] + TOKEN_BODY_SUFFIX
    tokens = provider.handle_token_request(body, {"Authorization": BASIC_AUTH})
    claims = provider.handle_userinfo_request("", {
        "Authorization": "Bearer " + tokens["access_token"]})
    return tokens, claims


def implicit_flow(provider: Provider) -> dict[str, Any]:
    """``id_token token`` at the authorization endpoint (parse, authorize)."""
    authn_req = provider.parse_authentication_request(_IMPLICIT_QUERY)
    response = provider.authorize(authn_req, USER_ID)
    return {"id_token": response["id_token"], "access_token": response["access_token"]}


def registration(provider: Provider) -> dict[str, Any]:
    """One dynamic client registration."""
    return dict(provider.handle_client_registration_request(_REGISTRATION).to_dict())


def discovery(provider: Provider) -> str:
    """The ``/.well-known/openid-configuration`` body."""
    body: str = provider.provider_configuration.to_json()
    return body


def jwks(provider: Provider) -> str:
    """The ``jwks_uri`` body."""
    return json.dumps(provider.jwks)


def id_token_payload(id_token: str) -> dict[str, Any]:
    """The (unverified) payload of a compact JWS."""
    payload: dict[str, Any] = json.loads(b64url_decode(id_token.split(".")[1]))
    return payload


def signature_floor(key: SigningKey, payload: dict[str, Any]) -> Callable[[], Any]:
    """One bare ID token signature with ``key`` (what every code flow must pay)."""

    def sign() -> str:
        return jws_sign(payload, key, {"typ": "JWT"})

    return sign


# -- measurement ------------------------------------------------------------------------------


@dataclass
class Measurement:
    """Per-operation times (seconds) of alternating batches of an operation and its floor."""

    op_times: list[float] = field(default_factory=list)
    floor_times: list[float] = field(default_factory=list)
    op_per_batch: int = 0
    floor_per_batch: int = 0

    @property
    def op_median(self) -> float:
        return statistics.median(self.op_times)

    @property
    def floor_median(self) -> float:
        return statistics.median(self.floor_times)

    @property
    def ratio(self) -> float:
        """Median of the per-batch-pair ratios op / floor: the headline number.

        Each pair of adjacent batches saw about the same machine load, so the
        pair's ratio cancels slow load drift that medians taken separately keep.
        """
        return statistics.median(o / f for o, f in zip(self.op_times, self.floor_times))

    @property
    def ratio_of_medians(self) -> float:
        """Median op time / median floor time (a cross-check of :attr:`ratio`)."""
        return self.op_median / self.floor_median


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def _calls_for(fn: Callable[[], Any], batch_seconds: float) -> int:
    """How many calls of ``fn`` fill about ``batch_seconds`` (at least 3)."""
    estimate = min(_per_call(fn, 3), _per_call(fn, 3))
    return max(3, int(batch_seconds / max(estimate, 1e-7)))


def measure(op: Callable[[], Any], floor: Callable[[], Any], batches: int,
            batch_seconds: float) -> Measurement:
    """Time ``op`` and ``floor`` in ``batches`` alternating batches (order flipped each time)."""
    for _ in range(3):  # warm up caches, connections, prepared scripts
        op()
        floor()
    result = Measurement(op_per_batch=_calls_for(op, batch_seconds),
                         floor_per_batch=_calls_for(floor, batch_seconds))
    gc.collect()
    for batch in range(batches):
        pair = [(op, result.op_per_batch, result.op_times),
                (floor, result.floor_per_batch, result.floor_times)]
        if batch % 2:
            pair.reverse()
        for fn, calls, times in pair:
            times.append(_per_call(fn, calls))
    return result


# -- scenarios --------------------------------------------------------------------------------


@dataclass
class Target:
    """A target: ``measured <= limit`` passes."""

    description: str
    measured: float
    limit: float
    unit: str = "x floor"

    @property
    def passed(self) -> bool:
        return self.measured <= self.limit


@dataclass
class ScenarioResult:
    """One scenario's outcome (``skipped`` carries the reason when it did not run)."""

    name: str
    backend: str
    alg: str
    ms_per_op: Optional[float] = None
    ops_per_s: Optional[float] = None
    floor_ms: Optional[float] = None
    ratio: Optional[float] = None
    ratio_of_medians: Optional[float] = None
    batches: int = 0
    op_per_batch: int = 0
    skipped: Optional[str] = None
    target: Optional[Target] = None
    #: A measured configuration that no target applies to, and why (printed as REFERENCE).
    reference: Optional[str] = None
    round_trips: Optional[dict[str, Any]] = None

    @classmethod
    def from_measurement(cls, name: str, backend: str, alg: str,
                         m: Measurement) -> ScenarioResult:
        return cls(name, backend, alg, ms_per_op=m.op_median * 1e3, ops_per_s=1 / m.op_median,
                   floor_ms=m.floor_median * 1e3, ratio=m.ratio,
                   ratio_of_medians=m.ratio_of_medians,
                   batches=len(m.op_times), op_per_batch=m.op_per_batch)


@dataclass
class Settings:
    batches: int
    batch_seconds: float
    memcheck_tokens: int


def check_code_flow(result: tuple[Any, Any]) -> dict[str, Any]:
    """Check a flow's outcome (a flow that does not work must not be timed).

    Returns the payload of its ID token (the floor signs the same payload).
    """
    tokens, claims = result
    payload = id_token_payload(tokens["id_token"])
    if payload.get("iss") != ISSUER or payload.get("aud") not in (CLIENT_ID, [CLIENT_ID]):
        raise AssertionError(f"unexpected ID token payload: {payload}")
    if not claims.get("sub") or claims.get("email") != USERS[USER_ID]["email"]:
        raise AssertionError(f"unexpected UserInfo response: {claims.to_dict()}")
    return payload


def count_round_trips(deployment: Deployment) -> dict[str, Any]:
    """Storage primitive calls (per store) and server calls during one code flow."""
    provider = deployment.provider
    with counting_stores(provider) as proxies:
        real = {name: proxy.inner for name, proxy in proxies.items()}
        with count_server_calls(real) as server:
            check_code_flow(code_flow(provider))
    per_store = {name: {op: n for op, n in proxy.counts.items() if n}
                 for name, proxy in proxies.items() if sum(proxy.counts.values())}
    totals = {op: sum(p.counts[op] for p in proxies.values()) for op in PRIMITIVES}
    return {
        "per_store": per_store,
        "primitives": {op: n for op, n in totals.items() if n},
        "total": sum(totals.values()),
        "server": dict(sorted(server.items())),
        "server_total": sum(server.values()),
    }


def driver_round_trip(store: StorageBase) -> Optional[Callable[[], Any]]:
    """The cheapest call that reaches ``store``'s server (redis-py ``PING``, ``SELECT 1``
    on a pooled DBAPI connection), or None for in-process stores."""
    if isinstance(store, RedisWrapper):
        client = store._client
        return lambda: client.ping()
    if isinstance(store, SQLWrapper):
        engine = store._engine

        def select_one() -> Any:
            connection = engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute("SELECT 1")
                row = cursor.fetchone()
                cursor.close()
                return row
            finally:
                connection.close()

        return select_one
    return None


def median_call_seconds(fn: Callable[[], Any], calls: int = 400) -> float:
    """Median duration of one call of ``fn`` over ``calls`` calls (after 20 warm-ups)."""
    for _ in range(20):
        fn()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextlib.contextmanager
def _engine(backend: str) -> Iterator[Optional[str]]:
    backend, _ = split_backend(backend)
    if backend == "memory":
        yield None
        return
    starter = {"sqlite": engines.sqlite_url, "sqlite-full": engines.sqlite_url,
               "postgresql": engines.postgresql_url,
               "postgresql-nosync": engines.postgresql_url,
               "postgresql-unlogged": engines.postgresql_url,
               "postgresql-asyncset": engines.postgresql_url, "redis": engines.redis_url}[backend]
    with starter() as url:
        yield url


def run_backend(backend: str, rs_key: SigningKey, settings: Settings,
                log: Callable[[str], None]) -> ScenarioResult:
    """The RS256 code flow on one backend (SKIPPED with the reason when unavailable)."""
    name = f"code flow RS256 [{backend}]"
    try:
        with _engine(backend) as url:
            deployment = build_provider(rs_key, backend, url)
            try:
                payload = check_code_flow(code_flow(deployment.provider))
                trips = count_round_trips(deployment)
                floor = signature_floor(rs_key, payload)
                m = measure(lambda: code_flow(deployment.provider), floor, settings.batches,
                            settings.batch_seconds)
                trip = driver_round_trip(deployment.provider.authz_state.authorization_codes)
                if trip is not None:
                    trips["driver_round_trip_ms"] = median_call_seconds(trip) * 1e3
                    trips["signature_ms"] = m.floor_median * 1e3
            finally:
                deployment.close()
    except engines.EngineUnavailable as error:
        log(f"  {name}: SKIPPED ({error})")
        return ScenarioResult(name, backend, "RS256", skipped=str(error))
    result = ScenarioResult.from_measurement(name, backend, "RS256", m)
    result.round_trips = trips
    engine, variants = split_backend(backend)
    label = describe_variants(engine, variants)
    if engine == "memory" and "executor" not in variants:
        result.target = Target("memory RS256 full flow" + label, m.ratio, TARGET_MEMORY)
    elif engine in SERVER_ENGINES:
        description = f"{engine} RS256 full flow{label}"
        if variants == TARGET_VARIANTS and engine in TARGET_ENGINES:
            result.target = Target(description, m.ratio, TARGET_SERVER)
        else:
            why = ("the targets apply to +caches+executor, the fewest round trips"
                   if variants != TARGET_VARIANTS else
                   "every write waits for a WAL flush; the PostgreSQL targets apply to "
                   "postgresql-asyncset and postgresql-unlogged, whose code issue does not")
            result.reference = (f"{description}: {m.ratio:.2f}x the floor, "
                                f"{trips['total']} storage calls (no target: {why})")
    log("  " + _format_line(result))
    return result


#: Engines on a storage server, to which the Redis and PostgreSQL target applies.
SERVER_ENGINES = ("redis", "postgresql", "postgresql-unlogged", "postgresql-nosync",
                  "postgresql-asyncset")
#: The server engines the Redis and PostgreSQL targets apply to (with TARGET_VARIANTS).
TARGET_ENGINES = ("redis", "postgresql-asyncset", "postgresql-unlogged")


def describe_variants(engine: str, variants: frozenset[str]) -> str:
    """`` (with ...)`` naming the options of a backend variant, for target lines."""
    options = []
    if "caches" in variants:
        options.append("client_cache_ttl, subject_identifier_cache_ttl, "
                       "authorization_code_cache_size, access_token_cache_ttl")
    if "executor" in variants:
        options.append("executor")
    if engine == "postgresql-unlogged":
        options.append("codes and access tokens in the UNLOGGED table")
    elif engine == "postgresql-asyncset":
        options.append("codes issued without waiting for the WAL flush")
    elif engine == "postgresql-nosync":
        options.append("synchronous_commit=off")
    return f" (with {'; '.join(options)})" if options else " (default configuration)"


def run_memory_extras(rs_key: SigningKey, es_key: SigningKey, settings: Settings,
                      log: Callable[[str], None]) -> list[ScenarioResult]:
    """ES256 code flow, implicit flow, registration, discovery and JWKS (memory)."""
    results: list[ScenarioResult] = []

    es = build_provider(es_key, "memory")
    payload = check_code_flow(code_flow(es.provider))
    m = measure(lambda: code_flow(es.provider), signature_floor(es_key, payload),
                settings.batches, settings.batch_seconds)
    result = ScenarioResult.from_measurement("code flow ES256 [memory]", "memory", "ES256", m)
    limit_ms = max(TARGET_ES256_MS, TARGET_ES256_RATIO * m.floor_median * 1e3)
    result.target = Target(
        f"ES256 memory flow <= max({TARGET_ES256_MS} ms, {TARGET_ES256_RATIO:g}x ES256 floor)",
        m.op_median * 1e3, limit_ms, "ms")
    results.append(result)
    log("  " + _format_line(result))

    rs = build_provider(rs_key, "memory")
    floor = signature_floor(rs_key, check_code_flow(code_flow(rs.provider)))
    implicit_first = implicit_flow(rs.provider)
    floor_implicit = signature_floor(rs_key, id_token_payload(implicit_first["id_token"]))
    m = measure(lambda: implicit_flow(rs.provider), floor_implicit, settings.batches,
                settings.batch_seconds)
    result = ScenarioResult.from_measurement("implicit id_token token RS256 [memory]", "memory",
                                             "RS256", m)
    results.append(result)
    log("  " + _format_line(result))

    m = measure(lambda: par_code_flow(rs.provider), floor, settings.batches,
                settings.batch_seconds)
    result = ScenarioResult.from_measurement("PAR code flow RS256 [memory]", "memory",
                                             "RS256", m)
    results.append(result)
    log("  " + _format_line(result))

    metadata_ops: list[tuple[str, Callable[[Provider], Any]]] = [
        ("registration [memory]", registration),
        ("discovery configuration [memory]", discovery),
        ("discovery JWKS [memory]", jwks),
    ]
    for name, op in metadata_ops:
        op(rs.provider)
        m = measure(functools.partial(op, rs.provider), floor, settings.batches,
                    settings.batch_seconds)
        result = ScenarioResult.from_measurement(name, "memory", "RS256", m)
        result.target = Target(name.split(" [")[0], m.ratio, TARGET_METADATA)
        results.append(result)
        log("  " + _format_line(result))
    return results


def run_memcheck(tokens: int) -> dict[str, Any]:
    """Run :mod:`benchmarks.memcheck` in a fresh interpreter and return its JSON."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    completed = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "benchmarks.memcheck", "--tokens", str(tokens)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=True)
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


# -- output -----------------------------------------------------------------------------------


def _format_line(r: ScenarioResult) -> str:
    if r.skipped is not None:
        return f"{r.name:<42} SKIPPED: {r.skipped}"
    assert r.ms_per_op is not None and r.ops_per_s is not None
    return (f"{r.name:<42} {r.ms_per_op:8.3f} ms/op {r.ops_per_s:9.0f} op/s   "
            f"floor {r.floor_ms:6.3f} ms   ratio {r.ratio:5.2f}x "
            f"(of medians {r.ratio_of_medians:5.2f}x)")


def _format_target(t: Target) -> str:
    verdict = "PASS" if t.passed else "FAIL"
    head = f"TARGET {t.description}:"
    if t.unit == "ms":
        return f"{head} measured {t.measured:.3f} ms <= {t.limit:.3f} ms  {verdict}"
    if t.unit == "MB":
        return f"{head} measured {t.measured:.1f} MB < {t.limit:.0f} MB  {verdict}"
    if t.unit == "bool":
        return f"{head} {verdict}"
    return f"{head} measured {t.measured:.2f}x <= {t.limit:.2f}x  {verdict}"


def _format_trips(r: ScenarioResult) -> str:
    trips = r.round_trips or {}
    stores = "; ".join(f"{store} {' '.join(f'{op}={n}' for op, n in ops.items())}"
                       for store, ops in trips.get("per_store", {}).items())
    server = trips.get("server") or {}
    wire = (f"  | server: {trips['server_total']} "
            f"({' '.join(f'{k}={v}' for k, v in server.items())})") if server else ""
    line = f"  {r.backend:<36} {trips.get('total', 0):3d} calls: {stores}{wire}"
    if "driver_round_trip_ms" in trips:
        rtt, signature = trips["driver_round_trip_ms"], trips["signature_ms"]
        server_total = trips.get("server_total", 0)
        line += (f"\n  {'':<36} bare driver round trip {rtt:.3f} ms (signature {signature:.3f} ms):"
                 f" {server_total} of them = {server_total * rtt / signature:.2f}x signature")
    return line


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        load = (float("nan"),) * 3
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "openssl": openssl_backend.openssl_version_text(),
        "loadavg": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _short_label(name: str) -> str:
    """``code flow RS256 [redis]`` -> ``code RS256\nredis`` (chart tick labels)."""
    label, _, backend = name.partition(" [")
    label = (label.replace("code flow", "code").replace("implicit id_token token", "implicit")
             .replace("discovery configuration", "discovery").replace("discovery JWKS", "JWKS"))
    return label + "\n" + (backend.rstrip("]").replace("+executor", "+exec").replace("+", "\n+")
                            .replace("-nosync", "\nnosync").replace("-unlogged", "\nunlogged")
                            .replace("-asyncset", "\nasyncset"))


def write_chart(results: list[ScenarioResult], path: str) -> Optional[str]:
    """Bar charts of op/s and ms/op per scenario (with the floor); None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): chart skipped"
    ran = [r for r in results if r.skipped is None and r.ms_per_op is not None]
    labels = [_short_label(r.name) for r in ran]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(11.0, 0.85 * len(ran)), 9),
                                   constrained_layout=True)
    positions = list(range(len(ran)))
    ax1.bar(positions, [r.ops_per_s or 0 for r in ran], color="#4c72b0")
    for pos, r in zip(positions, ran):
        ax1.annotate(f"{r.ops_per_s:.0f}", (pos, r.ops_per_s or 0), ha="center", va="bottom",
                     fontsize=8)
    ax1.set_ylabel("operations / s (median, log scale)")
    ax1.set_yscale("log")
    ax1.set_title("pyop benchmark: throughput per scenario (one process, one thread)")
    ax2.bar(positions, [r.ms_per_op or 0 for r in ran], color="#55a868", label="ms / op")
    ax2.scatter(positions, [r.floor_ms or 0 for r in ran], color="#c44e52", marker="_", s=700,
                linewidths=3, label="one signature (floor), same run", zorder=3)
    for pos, r in zip(positions, ran):
        ax2.annotate(f"{r.ratio:.2f}x", (pos, r.ms_per_op or 0), ha="center", va="bottom",
                     fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("ms / op (median, log scale)")
    ax2.set_title("latency per scenario; label: ratio to one signature with the same key")
    ax2.legend(loc="upper right", fontsize=8)
    for ax in (ax1, ax2):
        ax.set_xticks(positions)
        ax.set_xticklabels(labels, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time full OpenID Connect flows through pyop against one signature.")
    parser.add_argument("--quick", action="store_true",
                        help="few short batches (a smoke run; numbers are rough)")
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help=f"comma-separated, from {','.join(ALL_BACKENDS)} "
                        "(default %(default)s)")
    parser.add_argument("--batches", type=int, default=None,
                        help="batches per scenario (default 21, --quick 3)")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="target duration of one batch (default 0.15, --quick 0.01)")
    parser.add_argument("--tokens", type=int, default=None,
                        help="live tokens for the memory check (default 100000, --quick 20000)")
    parser.add_argument("--no-memcheck", action="store_true", help="skip the memory check")
    parser.add_argument("--load", action="store_true",
                        help="also run the concurrency benchmark (benchmarks.load, needs waitress)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--chart", metavar="PATH.png", help="write a bar chart (matplotlib)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a target fails")
    args = parser.parse_args(argv)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in ALL_BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {ALL_BACKENDS}")
    settings = Settings(
        batches=args.batches or (3 if args.quick else 21),
        batch_seconds=args.batch_seconds or (0.01 if args.quick else 0.15),
        memcheck_tokens=args.tokens or (20_000 if args.quick else 100_000),
    )

    def log(line: str) -> None:
        print(line, flush=True)

    info = machine_info()
    log(f"pyop benchmark - Python {info['python']}, {info['openssl']}, {info['cpus']} CPUs, "
        f"load {info['loadavg']}")
    log(f"{settings.batches} alternating batches of ~{settings.batch_seconds:g} s per scenario; "
        "times are medians; ratio = median over batch pairs of op / signature (same key, "
        "same run)")
    log("")
    log("Scenarios:")
    rs_key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    es_key = SigningKey(ec.generate_private_key(ec.SECP256R1()))

    results: list[ScenarioResult] = []
    for backend in backends:
        results.append(run_backend(backend, rs_key, settings, log))
    if "memory" in backends:
        results.extend(run_memory_extras(rs_key, es_key, settings, log))

    log("")
    log("Storage round trips per code flow (primitive calls per store | what reaches the server):")
    for r in results:
        if r.round_trips is not None:
            log(_format_trips(r))

    targets = [r.target for r in results if r.target is not None]
    memcheck: Optional[dict[str, Any]] = None
    if not args.no_memcheck:
        memcheck = run_memcheck(settings.memcheck_tokens)
        log("")
        log(f"Memory store: {memcheck['tokens']} live access tokens: "
            f"RSS +{memcheck['rss_delta_mb']:.1f} MB ({memcheck['bytes_per_token']:.0f} B/token, "
            f"{memcheck['create_us_per_token']:.1f} us/token); after expiry + one write "
            f"{memcheck['live_after_expiry_write']} record(s) left, after purge_expired() "
            f"{memcheck['live_after_purge']}")
        scaled = memcheck["rss_delta_mb"] * 100_000 / max(1, memcheck["tokens"])
        note = "" if memcheck["tokens"] == 100_000 else f" (scaled from {memcheck['tokens']})"
        targets.append(Target(f"memory store, 100 000 live tokens{note}", scaled,
                              TARGET_RSS_MB, "MB"))
        purged = memcheck["live_after_expiry_write"] == 1 and memcheck["live_after_purge"] == 0
        targets.append(Target("expired tokens purged (sweep on write, purge_expired)",
                              0.0 if purged else 1.0, 0.0, "bool"))

    load_results: Optional[list[dict[str, Any]]] = None
    if args.load:
        from . import load

        log("")
        log("Concurrency (waitress on 127.0.0.1, full code flows over HTTP):")
        load_results = load.run_all(quick=args.quick, log=log)
        for lr in load_results:
            if lr.get("skipped") is None:
                targets.append(Target(f"HTTP load threads={lr['threads']}: zero errors",
                                      float(lr["errors"]), 0.0, "bool"))

    log("")
    for r in results:
        if r.reference is not None:
            log("REFERENCE " + r.reference)
    for target in targets:
        log(_format_target(target))
    failed = [t for t in targets if not t.passed]
    skipped = [r for r in results if r.skipped is not None]
    log(f"SUMMARY: {len(targets) - len(failed)} passed, {len(failed)} failed, "
        f"{len(skipped)} skipped")

    if args.chart:
        problem = write_chart(results, args.chart)
        log(problem if problem else f"chart written to {args.chart}")
    if args.json:
        document = {
            "machine": info,
            "settings": asdict(settings),
            "scenarios": [asdict(r) | {"target_passed": r.target.passed if r.target else None}
                          for r in results],
            "memcheck": memcheck,
            "load": load_results,
            "targets": [asdict(t) | {"passed": t.passed} for t in targets],
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
        log(f"results written to {args.json}")
    return 1 if (args.strict and failed) else 0
