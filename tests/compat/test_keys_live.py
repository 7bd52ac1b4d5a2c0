"""The JWK Set and the ID token header of pyop 3-style keys, against pyop 3.5.0 run live.

The keys as pyop 3 deployments give them (``KEY_VARIANTS`` of
``tests/test_upgrade_config.py``: the README's, SATOSA's ``kid=""``, a key with a kid, a
bare key) are published and used by pyop 3.5.0 and by this library; the JWK Sets and the
JWS headers must be equal.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from test_upgrade_config import (
    _PYOP3_SCRIPT,
    KEY_VARIANTS,
    build,
    header_of,
    key_config,
    our_id_token,
)


@pytest.fixture(scope="module")
def pyop3_keys(pyop3_python: str, signing_key_pem: str) -> dict[str, Any]:
    result = subprocess.run(
        [pyop3_python, "-c", _PYOP3_SCRIPT, signing_key_pem, json.dumps(KEY_VARIANTS)],
        capture_output=True, text=True, timeout=120, cwd="/", check=True)
    produced: dict[str, Any] = json.loads(result.stdout)
    return produced


@pytest.mark.parametrize("variant", sorted(KEY_VARIANTS))
def test_jwks_and_id_token_header_are_pyop3s(pyop3_keys: dict[str, Any], signing_key_pem: str,
                                             variant: str) -> None:
    from jwkest.jwk import RSAKey, rsa_load

    key = RSAKey(key=rsa_load(signing_key_pem), **KEY_VARIANTS[variant])
    provider = build(key, key_config())
    assert provider.jwks == pyop3_keys[variant]["jwks"]
    assert header_of(our_id_token(key, key_config)) == pyop3_keys[variant]["header"]


