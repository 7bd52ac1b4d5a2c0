"""Two OS processes, each with its own Provider, over one Redis and then one PostgreSQL.

What one worker process issues, the other redeems; a replay on the other is refused with
``invalid_grant`` and revokes the grant for both; concurrent redemptions of one code by the
two processes issue tokens once. The two workers (``multiprocess_worker.py``) are started
once for the module and pointed at each backend in turn.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from .provider_support import new_namespace

WORKER = Path(__file__).with_name("multiprocess_worker.py")
ROOT = Path(__file__).resolve().parents[2]
REPLY_TIMEOUT = 30.0


class Worker:
    """A provider in a process of its own, driven by JSON lines.

    At most one command is in flight per worker (``receive`` waits on the pipe, so a second
    reply already read into the text buffer would not be seen).
    """

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, cwd=ROOT, env=env, text=True, bufsize=1)

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(REPLY_TIMEOUT):
                pytest.fail(f"worker gave no answer in {REPLY_TIMEOUT} s: {self.errors()}")
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"worker exited ({self.proc.poll()}): {self.errors()}")
        reply: dict[str, Any] = json.loads(line)
        if "fatal" in reply:
            pytest.fail(f"worker failed: {reply['fatal']}")
        return reply

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.send(op, **args)
        return self.receive()

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("exit")
                self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(10)
        finally:
            self.stderr.close()


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[Worker, Worker]]:
    pair = (Worker(), Worker())  # both start (import pyop, drivers...) in parallel
    try:
        yield pair
    finally:
        for worker in pair:
            worker.stop()


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.servers),
                        pytest.param("postgresql", marks=pytest.mark.servers)])
def backend_uri(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return str(request.getfixturevalue("postgres_url"))


def _setup(workers: tuple[Worker, Worker], uri: str, pem: str) -> None:
    namespace = new_namespace()
    for worker in workers:
        worker.send("setup", uri=uri, db_name=namespace, pem=pem)
    pids = {worker.receive()["pid"] for worker in workers}
    assert len(pids) == 2 and os.getpid() not in pids


def _error(reply: dict[str, Any]) -> Optional[str]:
    return reply.get("error")


def test_codes_and_tokens_cross_processes(workers: tuple[Worker, Worker], backend_uri: str,
                                          signing_key_pem: str) -> None:
    started = time.monotonic()
    _setup(workers, backend_uri, signing_key_pem)
    for issuer, other in (workers, workers[::-1]):
        code = issuer.call("authorize")["code"]
        tokens = other.call("token", code=code)
        assert _error(tokens) is None, tokens
        assert issuer.call("userinfo", access_token=tokens["access_token"])["sub"]
        # refresh (rotating) in the issuing process, replay of the old one in the other
        rotated = issuer.call("refresh", refresh_token=tokens["refresh_token"])
        assert _error(rotated) is None, rotated
        assert _error(other.call("refresh", refresh_token=tokens["refresh_token"])) \
            == "invalid_grant"
        # the replay revoked the grant, for both processes
        assert _error(issuer.call("refresh", refresh_token=rotated["refresh_token"])) \
            == "invalid_grant"
        assert _error(issuer.call("userinfo", access_token=rotated["access_token"])) \
            == "invalid_token"

        # the code, redeemed in the other process, is refused on replay in the issuing one
        code = issuer.call("authorize")["code"]
        tokens = other.call("token", code=code)
        assert _error(tokens) is None, tokens
        assert _error(issuer.call("token", code=code)) == "invalid_grant"
        assert _error(other.call("token", code=code)) == "invalid_grant"
        assert _error(other.call("userinfo", access_token=tokens["access_token"])) \
            == "invalid_token"
    assert time.monotonic() - started < 10


def test_concurrent_redemption_by_two_processes(workers: tuple[Worker, Worker],
                                                backend_uri: str, signing_key_pem: str) -> None:
    _setup(workers, backend_uri, signing_key_pem)
    first, second = workers
    for _ in range(20):
        code = first.call("authorize")["code"]
        first.send("token", code=code)  # both requests in flight at once
        second.send("token", code=code)
        replies = [first.receive(), second.receive()]
        errors = sorted(str(_error(r)) for r in replies)
        assert errors == ["None", "invalid_grant"], replies
