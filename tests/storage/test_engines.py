"""Test-engine policy: a missing engine skips loudly, or fails under PYOP_REQUIRE_SERVERS=1."""

from __future__ import annotations

import pytest

from .conftest import MONGODB_URI, engine_unavailable


def test_missing_engine_skips_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYOP_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        engine_unavailable("no redis-server")
    assert "UNAVAILABLE" in str(info.value) and "no redis-server" in str(info.value)


def test_missing_engine_fails_when_servers_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYOP_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception) as info:
        engine_unavailable("no redis-server")
    assert "PYOP_REQUIRE_SERVERS=1" in str(info.value)


def test_real_mongodb_configured() -> None:
    """MongoDB has no installable server here: the real-server run is opt-in."""
    if not MONGODB_URI:
        pytest.skip("real MongoDB not tested: set PYOP_TEST_MONGODB_URI=mongodb://... to run "
                    "the contract and race suites against it (mongomock ran them)")
