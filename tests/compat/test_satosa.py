"""SATOSA 8.6.0's OpenID Connect frontend running on this library (downstream test).

``satosa_driver.py`` runs in the ``satosa_python`` interpreter (SATOSA 8.6.0 with this
checkout as its ``pyop``) and drives ``OpenIDConnectFrontend`` as SATOSA does, once per
storage configuration: stateless (``stateless://``), MongoDB (``pymongo.MongoClient``
replaced by mongomock, as SATOSA's tests do) and Redis (a real redis-server). What a
relying party observes must be what pyop 3.5.0 gave it: the ``sub`` (pairwise, from the
redirect_uri's host), the claims, a kid-less JWKS and ID tokens that an oic-based RP
verifies with that JWKS.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwkest import b64e

from .conftest import SatosaPython, run_json, unavailable

# the first test also waits for a virtualenv to be built (pip install from the index)
pytestmark = pytest.mark.timeout(900)

DRIVER = Path(__file__).with_name("satosa_driver.py")
SALT = "satosa-sub-hash-salt"
USER = "alice@idp.example.com"
ISSUER = "https://proxy.example.com"
VARIANTS = ["stateless", "mongodb", "redis"]
FLOWS = ["registered_code_flow", "registered_implicit_flow", "static_code_flow",
         "static_implicit_flow"]
SECTORS = {"registered": "rp.example.com", "static": "static-rp.example.org"}


def pyop3_pairwise_sub(user_id: str, sector: str, salt: str) -> str:
    """pyop 3.5.0's pairwise ``sub``: SHA-256 over sector host, user id and salt, in hex
    (OIDC Core 8.1's example construction); what SATOSA's relying parties know users by."""
    return hashlib.sha256((sector + user_id + salt).encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def satosa_results(satosa_python: SatosaPython, redis_server: Any,
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = {}
    for name, modules in (("mongodb", "mongomock, pymongo"), ("redis", "redis")):
        probe = subprocess.run([satosa_python.python, "-c", f"import {modules}"],
                               capture_output=True, text=True, env=satosa_python.env,
                               check=False)
        if probe.returncode != 0:
            missing[name] = f"the SATOSA interpreter cannot import {modules}"
    workdir = tmp_path_factory.mktemp("satosa")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = workdir / "signing_key.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    modulus = key.public_key().public_numbers().n
    payload = {
        "key_pem": str(key_pem), "salt": SALT, "workdir": str(workdir),
        "variants": [
            {"name": "stateless", "db_uri": "stateless://user:a-long-stateless-secret@localhost"},
            {"name": "mongodb", "db_uri": "mongodb://localhost:27017/satosa", "mongomock": True},
            {"name": "redis", "db_uri": redis_server.url},
        ],
    }
    payload["variants"] = [v for v in payload["variants"] if v["name"] not in missing]
    results = run_json(satosa_python.python, DRIVER, payload, env=satosa_python.env)
    results["_missing"] = missing
    results["_modulus"] = b64e(modulus.to_bytes((modulus.bit_length() + 7) // 8, "big")).decode()
    return results


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest, satosa_results: dict[str, Any]) -> dict[str, Any]:
    if request.param in satosa_results["_missing"]:
        unavailable(satosa_results["_missing"][request.param])
    result = satosa_results[request.param]
    assert "crash" not in result, result.get("crash")
    return dict(result, _modulus=satosa_results["_modulus"], _name=request.param)


def test_discovery_document(variant: dict[str, Any]) -> None:
    discovery = variant["discovery"]
    assert discovery["issuer"] == ISSUER
    assert discovery["subject_types_supported"] == ["pairwise"]
    assert sorted(discovery["scopes_supported"]) == ["email", "openid"]
    assert discovery["response_types_supported"] == ["code", "id_token token"]
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    assert discovery["token_endpoint"] == ISSUER + "/OIDC/token"
    assert discovery["userinfo_endpoint"] == ISSUER + "/OIDC/userinfo"
    assert discovery["registration_endpoint"] == ISSUER + "/OIDC/registration"
    assert discovery["jwks_uri"] == ISSUER + "/OIDC/jwks"
    assert discovery["request_uri_parameter_supported"] is False
    assert sorted(discovery["claims_supported"]) == ["email", "family_name", "given_name",
                                                     "name"]


def test_jwks_publishes_the_kidless_key_as_given(variant: dict[str, Any]) -> None:
    """signing_key_id defaults to "": the key is published and used without a kid."""
    (key,) = variant["jwks"]["keys"]
    assert key["n"] == variant["_modulus"]
    assert {k: key[k] for k in ("kty", "e", "alg", "use")} == {
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "use": "sig"}
    assert "kid" not in key, key


def test_dynamic_registration(variant: dict[str, Any]) -> None:
    assert variant["registration_status"].startswith("201")
    registration = variant["registration"]
    assert registration["redirect_uris"] == ["https://rp.example.com/cb"]
    assert sorted(" ".join(sorted(rt.split())) for rt in registration["response_types"]) == [
        "code", "id_token token"]


@pytest.mark.parametrize("flow", FLOWS)
def test_id_token_header_names_no_kid(variant: dict[str, Any], flow: str) -> None:
    """The kid-less configured key signs as given: no kid that pyop 3 never sent."""
    header = variant[flow]["id_token"]["header"]
    assert header["alg"] == "RS256" and "kid" not in header, header


@pytest.mark.parametrize("flow", FLOWS)
def test_flows(variant: dict[str, Any], flow: str) -> None:
    """Code and implicit flows for the registered and the static client; UserInfo with
    the access token, then a replay of the code."""
    result = variant[flow]
    client = flow.split("_")[0]
    expected_sub = pyop3_pairwise_sub(USER, SECTORS[client], SALT)
    assert result["requested_attributes"] == ["mail"]  # scope "openid email"
    assert result["state"] == "state-1"
    claims = result["id_token"]["claims"]  # verified by the driver (oic, published JWKS)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == expected_sub, "the sub SATOSA's relying parties know must not change"
    assert claims["nonce"] == ("nonce-code" if "code" in flow else "nonce-id_token token")
    assert "at_hash" in claims
    assert result["userinfo"] == {"sub": expected_sub, "email": "alice@example.com"}
    if "code" in flow:
        assert "code" in result["authn_parameters"]
        assert {"access_token", "id_token", "token_type", "expires_in"} <= set(
            result["token_parameters"])
        # refresh tokens (refresh_token_lifetime is set) for the static client, which has no
        # grant_types, as with pyop 3; the registered client's grant_types default to
        # ["authorization_code"] at registration (RFC 7591 2): it may not use the
        # refresh_token grant, so it gets no refresh token (docs/migrating.rst)
        assert ("refresh_token" in result["token_parameters"]) is (client == "static")
        # a replayed code is refused (RFC 6749 4.1.2), with every storage, stateless too
        assert result["code_replay"][0].startswith("400"), result["code_replay"]
        assert result["code_replay"][1] == "invalid_grant"
        # and the access token issued from it is revoked where it is stored; a sealed
        # (stateless) token cannot be revoked and lives until it expires (docs/migrating.rst)
        after = result["userinfo_after_code_replay"]
        if variant["_name"] == "stateless":
            assert after == result["userinfo"], after
        else:
            assert after.get("error") == "invalid_token", after
    else:
        assert {"access_token", "id_token", "token_type", "state"} <= set(
            result["authn_parameters"])
