"""Fixtures shared by the signed-request and JARM tests: a provider built by
:func:`fapi.signing_support.make_fapi_provider` with the session's RSA signing key."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from fapi.signing_support import make_fapi_provider
from pyop.crypto import SigningKey
from pyop.provider import Provider


@pytest.fixture(scope="module")
def op_key(jwkest_signing_key: Any) -> SigningKey:
    return SigningKey.from_key(jwkest_signing_key)


@pytest.fixture
def build(make_provider: Callable[..., Provider], op_key: SigningKey
          ) -> Callable[..., Provider]:
    def factory(**kwargs: Any) -> Provider:
        return make_fapi_provider(make_provider, op_key, **kwargs)

    return factory
