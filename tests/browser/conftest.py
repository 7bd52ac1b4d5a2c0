"""Fixtures for the browser tests: Chromium through Playwright, the example OP and an Authlib RP.

Chromium is the system one (Debian's ``chromium``; ``PYOP_CHROMIUM`` overrides
the path); Playwright's own browser downloads are never used. When Chromium,
Playwright, Flask or Authlib is missing the tests are skipped with the reason,
or fail when ``PYOP_REQUIRE_SERVERS=1`` (CI).

On a failing test the screenshots of the login and consent pages it passed,
and of the page it ended on, are saved in ``test-artifacts/``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

REPO = Path(__file__).resolve().parent.parent.parent
if str(REPO) not in sys.path:  # example/ is run from the checkout, not installed
    sys.path.insert(0, str(REPO))



def _unavailable(reason: str) -> None:
    """Skip loudly, or fail when the CI requires every engine (PYOP_REQUIRE_SERVERS=1)."""
    if os.environ.get("PYOP_REQUIRE_SERVERS") == "1":
        pytest.fail(f"browser tests cannot run: {reason} (PYOP_REQUIRE_SERVERS=1)",
                    pytrace=False)
    pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")


def find_chromium() -> Optional[str]:
    """``PYOP_CHROMIUM``, else the system Chromium."""
    configured = os.environ.get("PYOP_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def required_chromium(packages: tuple[tuple[str, str], ...]) -> str:
    """The Chromium to drive, once each (module, package) of ``packages`` imports; else a
    loud skip (a failure under PYOP_REQUIRE_SERVERS=1)."""
    for module, package in packages:
        if importlib.util.find_spec(module) is None:
            _unavailable(f"the Python package {package} is not installed "
                         "(pip install -e .[test])")
    path = find_chromium()
    if path is None:
        _unavailable("no Chromium found: apt-get install chromium, or set PYOP_CHROMIUM "
                     "to its path (never `playwright install`)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    return required_chromium((("playwright", "playwright"), ("flask", "Flask"),
                              ("authlib", "Authlib"), ("requests", "requests")))


@pytest.fixture(scope="session")
def browser(chromium_executable: str, sync_playwright_instance: Any) -> Iterator[Any]:
    try:
        instance = sync_playwright_instance.chromium.launch(
            executable_path=chromium_executable, args=CHROMIUM_ARGS, timeout=30_000)
    except Exception as e:  # Playwright raises its own Error type
        _unavailable(f"Chromium at {chromium_executable} did not start: {e}")
    yield instance
    instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context: no cookies shared between tests."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    yield new_page
    context.close()
