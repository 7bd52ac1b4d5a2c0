"""Fixtures for third-party relying parties run against the example OP in Chromium.

The OP is the example (``example/``) on a free loopback port in a thread, with
its own data directory. The relying parties are real deployments: Apache httpd
with mod_auth_openidc (Debian's ``apache2`` and ``libapache2-mod-auth-openidc``),
started from a generated configuration (see :mod:`.apache`). Chromium is the
system one, driven through Playwright as in ``tests/browser``; it resolves
:data:`RP_HOST` to 127.0.0.1 and accepts the RP's self-signed certificate.

A missing Apache, module, Chromium or Python package is a loud skip with the
reason, or a failure when ``PYOP_REQUIRE_SERVERS=1`` (CI). On a failing test
the screenshots of the pages it passed are saved in ``test-artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from browser.conftest import CHROMIUM_ARGS, _unavailable, required_chromium
from browser.helpers import ServerThread

from .apache import missing_apache_parts

#: The RP's host name in the browser: not a loopback name, so that the RP may
#: register implicit and hybrid response types (OIDC Dynamic Registration 2,
#: ``redirect_uris``: such web clients MUST NOT use localhost). Chromium maps it
#: to 127.0.0.1; ``.test`` is reserved for testing (RFC 6761 6.2).
RP_HOST = "rp.pyop.test"

#: The demo user of the example and the claims the bundled users file gives them.
USERNAME = PASSWORD = "alice"
USER_CLAIMS = {"name": "Alice Liddell", "email": "alice@example.com"}



@pytest.fixture(scope="session")
def rp_chromium() -> str:
    """Chromium, Playwright and Apache with mod_auth_openidc, or a loud skip."""
    missing = missing_apache_parts()
    if missing is not None:
        _unavailable(missing)
    return required_chromium((("playwright", "playwright"), ("flask", "Flask")))


@pytest.fixture(scope="session")
def rp_browser(rp_chromium: str, sync_playwright_instance: Any) -> Iterator[Any]:
    """A Chromium of its own (the one of tests/browser does not resolve RP_HOST)."""
    try:
        instance = sync_playwright_instance.chromium.launch(
            executable_path=rp_chromium, timeout=30_000,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {RP_HOST} 127.0.0.1"])
    except Exception as e:  # Playwright raises its own Error type
        _unavailable(f"Chromium at {rp_chromium} did not start: {e}")
    yield instance
    instance.close()


@pytest.fixture
def page(rp_browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies) that accepts the RP's certificate."""
    context = rp_browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    yield new_page
    context.close()


@pytest.fixture(scope="module")
def op_server(rp_chromium: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ServerThread]:
    """The example OP (SQLite in its own data directory), served from a thread."""
    from example.app import DEFAULT_USERS_FILE, create_app
    from example.users import hash_password

    data_dir = tmp_path_factory.mktemp("example-op")
    # the bundled users, with a cheap hash of the same password
    users = json.loads(DEFAULT_USERS_FILE.read_text(encoding="utf-8"))
    users[USERNAME]["password_hash"] = hash_password(PASSWORD, iterations=1000)
    users_file = data_dir / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    server = ServerThread(lambda url: create_app({
        "issuer": url, "data_dir": str(data_dir), "users_file": str(users_file), "demo": True}))
    yield server
    server.stop()
