"""Smoke test of the benchmark suite: it runs and reports. Not a timed assertion.

The targets (PASS/FAIL lines) depend on the machine and its load; they are read
by people from ``python -m benchmarks``, never asserted here.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_entry_point_runs_quickly(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--backends", "memory,sqlite",
         "--batches", "2", "--batch-seconds", "0.002", "--tokens", "2000", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "TARGET memory RS256 full flow" in completed.stdout
    assert "SUMMARY:" in completed.stdout

    results = json.loads(out.read_text())
    names = {s["name"] for s in results["scenarios"]}
    assert {"code flow RS256 [memory]", "code flow ES256 [memory]", "registration [memory]",
            "discovery configuration [memory]", "discovery JWKS [memory]",
            "implicit id_token token RS256 [memory]"} <= names
    for scenario in results["scenarios"]:
        assert scenario["skipped"] or scenario["ms_per_op"] > 0
    memory = next(s for s in results["scenarios"] if s["name"] == "code flow RS256 [memory]")
    trips = memory["round_trips"]
    assert trips["per_store"]["authorization_codes"]["compare_and_set_then_set"] == 1
    assert trips["total"] >= 4
    assert results["memcheck"]["live_after_purge"] == 0
    assert all("passed" in target for target in results["targets"])


def test_load_benchmark_app_serves_a_code_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The WSGI app of benchmarks.load answers a full flow (called in-process, no server)."""
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is not installed, only checked out
    from cryptography.hazmat.primitives.asymmetric import ec

    from benchmarks.flows import (
        BASIC_AUTH,
        CODE_QUERY,
        REDIRECT_URI,
        TOKEN_BODY_SUFFIX,
        USER_ID,
        build_provider,
    )
    from benchmarks.load import make_app
    from pyop.crypto import SigningKey

    provider = build_provider(SigningKey(ec.generate_private_key(ec.SECP256R1())),
                              "memory").provider
    app = make_app(provider, USER_ID)

    def call(method: str, path: str, query: str = "", body: str = "",
             **headers: str) -> tuple[str, dict[str, str], bytes]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body.encode()),
        }
        environ.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
        seen: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            seen["status"], seen["headers"] = status, dict(response_headers)

        data = b"".join(app(environ, start_response))
        return seen["status"], seen["headers"], data

    status, headers, _ = call("GET", "/authorization", CODE_QUERY)
    assert status.startswith("303")
    assert headers["Location"].startswith(REDIRECT_URI)
    code = parse_qs(urlsplit(headers["Location"]).query)["code"][0]
    status, _, data = call("POST", "/token",
                           body="grant_type=authorization_code&code=" + code + TOKEN_BODY_SUFFIX,
                           authorization=BASIC_AUTH)
    assert status.startswith("200"), data
    access_token = json.loads(data)["access_token"]
    status, _, data = call("GET", "/userinfo", authorization="Bearer " + access_token)
    assert status.startswith("200"), data
    assert json.loads(data)["sub"]
    status, _, _ = call("GET", "/userinfo", authorization="Bearer " + access_token + "x")
    assert status.startswith("401")


def test_backend_names_and_their_variants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.flows import (
        ALL_BACKENDS,
        TARGET_VARIANTS,
        describe_variants,
        split_backend,
    )

    assert split_backend("redis") == ("redis", frozenset())
    assert split_backend("postgresql-unlogged+caches+executor") == (
        "postgresql-unlogged", frozenset({"caches", "executor"}))
    for wrong in ("redis+executor+caches", "redis+caches+caches", "redis+fast"):
        with pytest.raises(ValueError):
            split_backend(wrong)
    for name in ALL_BACKENDS:
        split_backend(name)  # every advertised name parses
    assert split_backend("redis+caches+executor")[1] == TARGET_VARIANTS
    assert describe_variants("postgresql", frozenset()) == " (default configuration)"
    assert "UNLOGGED" in describe_variants("postgresql-unlogged", TARGET_VARIANTS)


def test_executor_variant_runs_a_flow_and_closes_its_pool(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from cryptography.hazmat.primitives.asymmetric import ec

    from benchmarks.flows import build_provider, check_code_flow, code_flow
    from pyop.crypto import SigningKey

    deployment = build_provider(SigningKey(ec.generate_private_key(ec.SECP256R1())),
                                "memory+caches+executor")
    executor = deployment.provider.executor
    assert executor is not None
    assert check_code_flow(code_flow(deployment.provider))["aud"]
    deployment.close()
    with pytest.raises(RuntimeError):  # shut down with the deployment
        executor.submit(print)


def test_dpop_flow_benchmark_runs() -> None:
    completed = subprocess.run([sys.executable, "-m", "benchmarks.dpop_flow", "--quick"],
                               cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "DPoP code flow, provider side" in completed.stdout


def test_async_load_benchmark_runs_quickly(tmp_path: Path) -> None:
    """``python -m benchmarks.async_load --quick``: both front ends under uvicorn, every
    cell, the table and the JSON (no timing is asserted)."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    out = tmp_path / "async.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.async_load", "--quick", "--concurrency", "1,4",
         "--slow-ms", "5", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, (completed.stdout[-2000:], completed.stderr[-2000:])
    assert "async/sync" in completed.stdout
    assert "memory, user 5 ms" in completed.stdout

    results = json.loads(out.read_text())
    cells = {(c["front"], c["concurrency"], c["slow_ms"]) for c in results["cells"]}
    assert cells == {(front, c, 0.0) for front in ("async", "sync") for c in (1, 4)} | {
        ("async", 4, 5.0), ("sync", 4, 5.0)}
    for cell in results["cells"]:
        assert cell["backend"] == "memory"
        assert cell["errors"] == 0
        assert cell["flows_done"] == 6
    assert [(r["concurrency"], r["slow_ms"]) for r in results["ratios"]] == [
        (1, 0.0), (4, 0.0), (4, 5.0)]
    assert all(r["ratio"] > 0 for r in results["ratios"])


def test_async_load_app_serves_a_code_flow_on_both_front_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Starlette app of benchmarks.async_load answers a full flow with AsyncProvider
    and with the sync Provider (in-process through httpx's ASGI transport, no server),
    and refuses a wrong access token."""
    pytest.importorskip("starlette")
    httpx = pytest.importorskip("httpx")
    monkeypatch.syspath_prepend(str(ROOT))
    import asyncio

    from cryptography.hazmat.primitives.asymmetric import ec

    from benchmarks.async_load import (
        AsyncUsers,
        _build_async,
        _build_sync,
        make_app,
        one_flow,
        slow_sync_userinfo,
    )
    from benchmarks.flows import USER_ID, USERS
    from pyop.crypto import SigningKey

    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    builders = {
        "async": lambda: _build_async(key, None, "t", AsyncUsers(USERS, 0.001)),
        "sync": lambda: _async_value(_build_sync(key, None, "t",
                                                 slow_sync_userinfo(USERS, 0.001))),
    }

    async def drive(front: str) -> None:
        app = make_app(front, builders[front], USER_ID)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport) as client:
                for _ in range(2):
                    await one_flow(client, "http://op.test")
                response = await client.get("http://op.test/userinfo",
                                            headers={"Authorization": "Bearer nope"})
                assert response.status_code == 401
                assert "WWW-Authenticate" in response.headers

    for front in ("async", "sync"):
        asyncio.run(drive(front))
    with pytest.raises(ValueError):
        make_app("threads", builders["sync"], USER_ID)


async def _async_value(value: Any) -> Any:
    return value


def test_aio_sql_cpu_counts_the_front_ends_switches_and_thread_hops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-memory rows of benchmarks/aio_sql_cpu.py: both providers serve the flow with
    each claims source; a Userinfo over a dict takes no thread hop, a subclass of it one
    per lookup (the user's record at authorize, the claims at UserInfo)."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.aio_sql_cpu import run_backend

    hops = {}
    for userinfo in ("dict", "threaded", "async"):
        row = run_backend("memory", 1, 2, 1, userinfo=userinfo)["code flow (memory)"]
        assert row["sync_ms"] > 0 and row["async_ms"] > 0
        hops[userinfo] = (row["greenlet_switches"], row["thread_hops"])
    assert hops["dict"] == (8, 0)  # four run_sync calls, each into a greenlet and back
    assert hops["threaded"][1] == 2 and hops["async"][1] == 0
    assert hops["async"][0] == hops["threaded"][0] == 12  # + the two lookups awaited
