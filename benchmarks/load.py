"""Throughput of a provider served by waitress with 1, 2 and 4 threads, driven over HTTP.

``python -m benchmarks.load [--flows N] [--threads 1,2,4] [--clients 4]``

A minimal WSGI OP (the README's routes, with the end-user logged in
automatically as ``alice``) runs in a separate process under waitress on
127.0.0.1. This process drives a fixed number of full code flows through it
with ``requests`` from ``--clients`` threads (authorization request, token
request with client_secret_basic, UserInfo request), each run bounded to
``--time-limit`` seconds, and reports flows/s, latency and errors. Traffic
goes to the loopback address only; the server is stopped at the end.

On the 2-core benchmark machine the client and the server share the cores, so
the numbers say how the provider behaves under concurrent requests (no errors,
no lost tokens), not the throughput a dedicated server would reach.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

from .engines import free_port

__all__ = ["make_app", "serve", "run_load", "run_all", "main"]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
JSON_NO_STORE = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def make_app(provider: Any, user_id: str) -> Callable[[dict[str, Any], StartResponse],
                                                      Iterable[bytes]]:
    """A WSGI app with the README's endpoints; every end-user is ``user_id``, already logged in."""
    from pyop.exceptions import BearerTokenError, InvalidAuthenticationRequest, OAuthError
    from pyop.util import should_fragment_encode

    def headers_of(environ: dict[str, Any]) -> dict[str, str]:
        headers = {key[5:].replace("_", "-").title(): value
                   for key, value in environ.items() if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        return headers

    def body_of(environ: dict[str, Any]) -> str:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data: bytes = environ["wsgi.input"].read(length) if length else b""
        return data.decode("utf-8")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        status, headers, body = "404 Not Found", [("Content-Type", "text/plain")], "not found"
        if path == "/authorization":
            try:
                authn_req = provider.parse_authentication_request(
                    environ.get("QUERY_STRING", ""), headers_of(environ))
            except InvalidAuthenticationRequest as e:
                error_url = e.to_error_url()
                if error_url:
                    status, headers, body = "303 See Other", [("Location", error_url)], ""
                else:
                    status, body = "400 Bad Request", str(e)
            else:
                response = provider.authorize(authn_req, user_id)
                location = response.request(authn_req["redirect_uri"],
                                            should_fragment_encode(authn_req))
                status, headers, body = "303 See Other", [("Location", location)], ""
        elif path == "/token":
            try:
                token_response = provider.handle_token_request(body_of(environ),
                                                               headers_of(environ))
                status, headers, body = "200 OK", list(JSON_NO_STORE), token_response.to_json()
            except OAuthError as e:
                headers = list(JSON_NO_STORE)
                if e.http_status == 401:
                    headers.append(("WWW-Authenticate", "Basic"))
                status, body = f"{e.http_status} Error", e.to_json()
        elif path == "/userinfo":
            try:
                claims = provider.handle_userinfo_request(body_of(environ), headers_of(environ))
                status, headers = "200 OK", [("Content-Type", "application/json")]
                body = claims.to_json()
            except BearerTokenError as e:
                status, body = f"{e.http_status} Error", e.to_json()
                headers = [("WWW-Authenticate", e.www_authenticate)]
        elif path == "/.well-known/openid-configuration":
            status, headers = "200 OK", [("Content-Type", "application/json")]
            body = provider.provider_configuration.to_json()
        elif path == "/jwks":
            status, headers = "200 OK", [("Content-Type", "application/json")]
            body = json.dumps(provider.jwks)
        data = body.encode("utf-8")
        start_response(status, headers + [("Content-Length", str(len(data)))])
        return [data]

    return app


def serve(port: int, threads: int) -> None:
    """Serve the benchmark OP (RS256, in-memory storage) with waitress until killed."""
    import waitress  # type: ignore[import-untyped]
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pyop.crypto import SigningKey

    from .flows import USER_ID, build_provider

    key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    provider = build_provider(key, "memory").provider
    # "Task queue depth is N" warnings are the point of a load test, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress.serve(make_app(provider, USER_ID), host="127.0.0.1", port=port, threads=threads,
                   _quiet=True)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if requests.get(base + "/jwks", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout} s")


def _one_flow(session: Any, base: str) -> None:
    """One code flow over HTTP; raises AssertionError on anything unexpected."""
    from .flows import BASIC_AUTH, CODE_QUERY, REDIRECT_URI, USER_ID, USERS

    response = session.get(base + "/authorization?" + CODE_QUERY, allow_redirects=False,
                           timeout=10)
    assert response.status_code == 303, response.status_code
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = session.post(base + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers={"Authorization": BASIC_AUTH}, timeout=10)
    assert response.status_code == 200, (response.status_code, response.text[:200])
    access_token = response.json()["access_token"]
    response = session.get(base + "/userinfo",
                           headers={"Authorization": "Bearer " + access_token}, timeout=10)
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert response.json()["email"] == USERS[USER_ID]["email"]


def run_load(threads: int, flows: int, clients: int, time_limit: float) -> dict[str, Any]:
    """Start a waitress server with ``threads`` threads and drive ``flows`` flows through it."""
    import requests

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "benchmarks.load", "serve", "--port", str(port),
         "--threads", str(threads)], cwd=root, env=env)
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    try:
        _wait_ready(base, proc)
        with requests.Session() as warm:
            for _ in range(3):
                _one_flow(warm, base)
        deadline = time.monotonic() + time_limit

        def worker() -> None:
            nonlocal issued
            with requests.Session() as session:
                while True:
                    with lock:
                        if issued >= flows or time.monotonic() > deadline:
                            return
                        issued += 1
                    started = time.perf_counter()
                    try:
                        _one_flow(session, base)
                    except (AssertionError, requests.RequestException, KeyError,
                            ValueError) as error:
                        with lock:
                            errors.append(f"{type(error).__name__}: {error}"[:200])
                        continue
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)

        started = time.perf_counter()
        workers = [threading.Thread(target=worker) for _ in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    done = len(latencies)
    ordered = sorted(latencies)
    return {
        "threads": threads,
        "clients": clients,
        "flows_requested": flows,
        "flows_done": done,
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": wall,
        "flows_per_s": done / wall if wall else 0.0,
        "p50_ms": statistics.median(ordered) * 1e3 if ordered else None,
        "p95_ms": ordered[int(0.95 * (done - 1))] * 1e3 if ordered else None,
        "time_limited": done + len(errors) < flows,
        "skipped": None,
    }


def run_all(quick: bool = False, log: Callable[[str], None] = print,
            threads: Iterable[int] = (1, 2, 4), flows: Optional[int] = None,
            clients: int = 4, time_limit: float = 20.0) -> list[dict[str, Any]]:
    """Run :func:`run_load` for each thread count; SKIPPED entries when waitress is missing."""
    flows = flows or (30 if quick else 400)
    results: list[dict[str, Any]] = []
    missing = [m for m in ("waitress", "requests") if not _importable(m)]
    for n in threads:
        if missing:
            reason = f"{' and '.join(missing)} not installed (pip install {' '.join(missing)})"
            log(f"  waitress threads={n}: SKIPPED ({reason})")
            results.append({"threads": n, "skipped": reason})
            continue
        r = run_load(n, flows, clients, time_limit)
        limited = " (stopped by the time limit)" if r["time_limited"] else ""
        log(f"  waitress threads={n}: {r['flows_done']} flows in {r['seconds']:.1f} s "
            f"= {r['flows_per_s']:.0f} flows/s ({3 * r['flows_per_s']:.0f} req/s), "
            f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, {r['clients']} client threads, "
            f"errors {r['errors']}{limited}")
        for error in r["first_errors"]:
            log(f"    error: {error}")
        results.append(r)
    return results


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    server = sub.add_parser("serve", help="run the benchmark OP (used by the load run)")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--threads", type=int, default=4)
    parser.add_argument("--flows", type=int, default=None, help="flows per run (default 400)")
    parser.add_argument("--threads", default="1,2,4", help="waitress thread counts")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds per run, at most")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.threads)
        return 0
    results = run_all(args.quick, threads=[int(t) for t in args.threads.split(",")],
                      flows=args.flows, clients=args.clients, time_limit=args.time_limit)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    failed = any(r.get("errors") for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
