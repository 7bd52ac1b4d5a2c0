"""Fixtures of the security battery; ``clock`` and ``make_provider`` come from tests/conftest.py."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pyop.crypto import SigningKey
from pyop.provider import Provider

from .helpers import security_clients, security_configuration

REFRESH_LIFETIME = 3600


@pytest.fixture(scope="session")
def signing_key(jwkest_signing_key: Any) -> SigningKey:
    """The key of tests/conftest.py, converted once (the conversion validates the RSA key,
    which costs about 0.2 s: too much to pay for each of hundreds of providers)."""
    return SigningKey.from_key(jwkest_signing_key)


@pytest.fixture
def make_op(make_provider: Callable[..., Provider], signing_key: SigningKey
            ) -> Callable[..., Provider]:
    """``make_provider`` with the battery's clients, configuration and converted key."""

    def factory(**kwargs: Any) -> Provider:
        kwargs.setdefault("signing_key", signing_key)
        kwargs.setdefault("client_db", security_clients())
        kwargs.setdefault("config", security_configuration())
        return make_provider(**kwargs)

    return factory


@pytest.fixture
def op(make_op: Callable[..., Provider]) -> Provider:
    """A provider issuing refresh tokens (no rotation), with the battery's clients."""
    return make_op(authz_kwargs={"refresh_token_lifetime": REFRESH_LIFETIME})


@pytest.fixture
def rotating_op(make_op: Callable[..., Provider]) -> Provider:
    """Refresh tokens always rotate: the threshold exceeds their lifetime."""
    return make_op(authz_kwargs={"refresh_token_lifetime": REFRESH_LIFETIME,
                                 "refresh_token_threshold": REFRESH_LIFETIME * 10})


@pytest.fixture
def plain_pkce_op(make_op: Callable[..., Provider]) -> Provider:
    return make_op(allow_plain_pkce=True)


@pytest.fixture
def no_refresh_op(make_op: Callable[..., Provider]) -> Provider:
    return make_op()


@pytest.fixture(scope="session")
def foreign_rsa_key() -> Any:
    """An RSA key that is not the provider's."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
