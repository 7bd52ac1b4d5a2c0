"""Shared fixtures: signing keys, a clock, clients, users and a provider."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from browser.helpers import Screenshots, record_report, screenshots_fixture

# the interpreter with pyop 3.5.0 (built once per session), for differential tests anywhere
from compat.conftest import pyop3_python  # noqa: F401 - a fixture
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, settings

from pyop.authz_state import AuthorizationState
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ISSUER = "https://op.example.com"
CLIENT_ID = "client1"
CLIENT_SECRET = "secret-of-client1"
REDIRECT_URI = "https://rp.example.com/callback"
PUBLIC_CLIENT_ID = "public-client"
USER_ID = "alice"
USERS = {
    USER_ID: {
        "name": "Alice Liddell",
        "given_name": "Alice",
        "family_name": "Liddell",
        "email": "alice@example.com",
        "email_verified": True,
        "phone_number": "+1 555 0100",
        "address": {"street_address": "1 Rabbit Hole", "locality": "Wonderland"},
        "nickname": "al",
    }
}


class FakeClock:
    """An injectable clock."""

    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def signing_key_pem(rsa_private_key: rsa.RSAPrivateKey, tmp_path_factory: Any) -> str:
    path = tmp_path_factory.mktemp("keys") / "signing_key.pem"
    path.write_bytes(rsa_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return str(path)


@pytest.fixture(scope="session")
def jwkest_signing_key(signing_key_pem: str) -> Any:
    from jwkest.jwk import RSAKey, rsa_load

    return RSAKey(key=rsa_load(signing_key_pem), use="sig", alg="RS256")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def configuration(issuer: str = ISSUER) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorization",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "registration_endpoint": issuer + "/registration",
        "end_session_endpoint": issuer + "/logout",
        "response_types_supported": ["code", "id_token", "id_token token", "code id_token",
                                     "code token", "code id_token token"],
        "subject_types_supported": ["public", "pairwise"],
        "scopes_supported": ["openid", "profile", "email", "address", "phone",
                             "offline_access"],
        **OPT_IN_CAPABILITIES,
    }


#: Capabilities beyond pyop 3's defaults, which a provider offers only when configured:
#: the test configuration enables them (see docs/configuration.rst).
OPT_IN_CAPABILITIES: dict[str, Any] = {
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                              "client_secret_jwt", "private_key_jwt", "none"],
    "claims_parameter_supported": True,
    "code_challenge_methods_supported": ["S256"],
    "response_modes_supported": ["query", "fragment"],
    "claim_types_supported": ["normal"],
    "authorization_response_iss_parameter_supported": True,
    "backchannel_logout_supported": True,
    "backchannel_logout_session_supported": True,
    "frontchannel_logout_supported": True,
    "frontchannel_logout_session_supported": True,
    "pushed_authorization_request_endpoint": ISSUER + "/par",
    "tls_client_certificate_bound_access_tokens": True,
    "dpop_signing_alg_values_supported": ["ES256", "PS256", "EdDSA"],
}


def clients() -> dict[str, Any]:
    return {
        CLIENT_ID: {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI],
            "response_types": ["code", "id_token", "id_token token", "code id_token",
                               "code token", "code id_token token"],
            "token_endpoint_auth_method": "client_secret_basic",
            "post_logout_redirect_uris": ["https://rp.example.com/logged-out"],
        },
        PUBLIC_CLIENT_ID: {
            "client_id": PUBLIC_CLIENT_ID,
            "redirect_uris": ["http://127.0.0.1:8765/cb"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    }


@pytest.fixture
def front_end(request: pytest.FixtureRequest) -> str:
    """Which provider ``make_provider`` builds: ``"sync"`` (:class:`~pyop.provider.Provider`)
    or ``"async"`` (:class:`~pyop.aio.AsyncProvider` behind a loop-driven face); see
    :func:`pytest_generate_tests`."""
    return str(getattr(request, "param", "sync"))


#: Modules whose tests use ``make_provider`` but exercise the synchronous provider only
#: (threads and executors racing one provider, pyop 3 API objects, the docs' examples).
SYNC_ONLY_MODULES = frozenset({
    "test_executor", "test_docs_examples", "test_docs_snippets", "test_readme",
})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that builds a provider through ``make_provider`` runs against both
    front ends (the sync :class:`Provider` and :class:`pyop.aio.AsyncProvider`)."""
    if "front_end" not in metafunc.fixturenames or "make_provider" not in metafunc.fixturenames:
        return
    if metafunc.module.__name__.rpartition(".")[2] in SYNC_ONLY_MODULES \
            or metafunc.definition.get_closest_marker("sync_only"):
        return
    metafunc.parametrize("front_end", ["sync", "async"], indirect=True)


@pytest.fixture
def make_provider(jwkest_signing_key: Any, clock: FakeClock,
                  front_end: str) -> Iterator[Callable[..., Provider]]:
    """Build a provider on in-memory storage; keyword arguments override the defaults."""
    loops: list[Any] = []

    def factory(*, config: Any = None, client_db: Any = None, signing_key: Any = None,
                authz_kwargs: Any = None, **provider_kwargs: Any) -> Provider:
        if config is None:
            config = configuration()
            if provider_kwargs.get("hash_client_secrets"):  # client_secret_jwt needs the secret
                config["token_endpoint_auth_methods_supported"] = [
                    m for m in config["token_endpoint_auth_methods_supported"]
                    if m != "client_secret_jwt"]
        client_db = client_db if client_db is not None else clients()
        if front_end == "async":
            return _async_provider(signing_key or jwkest_signing_key, config, client_db,
                                   clock, authz_kwargs or {}, provider_kwargs, loops)
        authz = AuthorizationState(
            HashBasedSubjectIdentifierFactory("salt"), clock=clock, **(authz_kwargs or {}))
        return Provider(signing_key or jwkest_signing_key, config, authz, client_db,
                        Userinfo(dict(USERS)), clock=clock, **provider_kwargs)

    yield factory
    for loop in loops:
        loop.close()


def _async_provider(signing_key: Any, config: Any, client_db: Any, clock: FakeClock,
                    authz_kwargs: dict[str, Any], provider_kwargs: dict[str, Any],
                    loops: list[Any]) -> Any:
    """An AsyncProvider like the sync one, behind the loop-driven face of
    tests/support/async_front_end.py (stores given as dicts or memory stores stay in memory)."""
    import asyncio

    from support.async_front_end import LoopDrivenProvider, as_async_store

    from pyop.aio import AsyncAuthorizationState, AsyncProvider

    loop = asyncio.new_event_loop()
    loops.append(loop)
    authz_kwargs = {k: as_async_store(v) for k, v in authz_kwargs.items()}
    authz = AsyncAuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                                    **authz_kwargs)
    # code redemptions overlap other requests on the loop: AsyncProvider takes no executor
    provider_kwargs = {k: as_async_store(v) for k, v in provider_kwargs.items()
                       if k != "executor"}
    client_db = as_async_store(client_db)
    fetcher = provider_kwargs.pop("outbound_fetcher", None)
    if fetcher is not None:
        from support.async_front_end import async_fetcher_for

        provider_kwargs["outbound_fetcher"] = async_fetcher_for(fetcher)
    provider = AsyncProvider(signing_key, config, authz, client_db, Userinfo(dict(USERS)),
                             clock=clock, **provider_kwargs)
    return LoopDrivenProvider(provider, loop)


@pytest.fixture
def provider(make_provider: Callable[..., Provider]) -> Provider:
    return make_provider(authz_kwargs={"refresh_token_lifetime": 3600})


def require_servers() -> bool:
    """True when a missing test engine must fail the run instead of skipping (CI)."""
    return os.environ.get("PYOP_REQUIRE_SERVERS") == "1"



# Hypothesis profiles: "ci" (default: 1000 examples, derandomized, no example database) and
# "long" (20 000 examples) for local runs: pytest --hypothesis-profile=long --timeout=0
# (beyond the 300-second per-test timeout). Registered at
# import, before the Hypothesis plugin reads --hypothesis-profile.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=1000, deadline=None, derandomize=True,
                          database=None, suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=20_000, deadline=None,
                          suppress_health_check=_QUIET)
settings.load_profile("ci")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser tests run last. Playwright's sync API (one instance for the session,
    below) keeps its own event loop marked as running in the main thread while it is
    started, and every test that runs coroutines itself (pyop.aio, the async stores and
    fetchers) would then find a loop already running."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def sync_playwright_instance() -> Any:
    """One Playwright (sync API) for the whole run: it cannot be started twice at once,
    and several test directories launch their own Chromium from it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:
        yield instance


# -- browser tests (tests/browser, tests/relying_parties): screenshots of a failed test ----

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    record_report(item, report)
    return report


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, page: Any) -> Iterator[Screenshots]:
    """The pages a browser test passed, saved in ``test-artifacts/`` when it fails (the
    ``page`` fixture is that of tests/browser or tests/relying_parties)."""
    yield from screenshots_fixture(request, page)
