"""Regenerate ``data/registration_pyop3.json``: pyop 3.5's answers to registrations.

Run with the interpreter of a virtualenv holding pyop 3.5.0 (never this library)::

    PYTHONHASHSEED=0 /path/to/pyop3-venv/bin/python tests/compat/make_registration_golden.py

Each case holds the provider ``configuration``, the registration ``request`` and pyop 3's
outcome: the ``response`` (with ``client_id``, ``client_secret`` and
``client_id_issued_at``, which are random or time-dependent, replaced by their type
names) or the ``error`` (its ``error`` code). Set-valued members that pyop 3 rebuilt from
Python sets (``response_types``, ``default_acr_values``) are sorted, each value's words
too, since their order depends on hashing. ``tests/test_upgrade_config.py`` registers the
same requests with this library and compares.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "data" / "registration_pyop3.json"
ISSUER = "https://op.example.com"
WEB = "https://rp.example.com/cb"

CONFIGURATION = {
    "issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
    "token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks",
    "registration_endpoint": ISSUER + "/registration",
    "response_types_supported": ["code", "id_token token", "code id_token"],
    "subject_types_supported": ["public", "pairwise"],
    "acr_values_supported": ["urn:example:loa:1", "urn:example:loa:2"],
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
}

CASES: list[dict[str, Any]] = [
    {"name": "minimal", "request": {"redirect_uris": [WEB]}},
    {"name": "full_metadata", "request": {
        "redirect_uris": [WEB, "https://rp.example.com/cb2"], "client_name": "RP",
        "contacts": ["ops@rp.example.com"], "logo_uri": "https://rp.example.com/logo.png",
        "application_type": "web", "subject_type": "pairwise",
        "token_endpoint_auth_method": "client_secret_post",
        "post_logout_redirect_uris": ["https://rp.example.com/bye"],
        "default_max_age": 3600, "require_auth_time": True,
        "initiate_login_uri": "https://rp.example.com/login"}},
    {"name": "response_types_narrowed", "request": {
        "redirect_uris": [WEB], "response_types": ["code", "token id_token", "id_token"]}},
    {"name": "response_types_all_supported", "request": {
        "redirect_uris": [WEB], "response_types": ["id_token code", "code"]}},
    {"name": "default_acr_values_narrowed", "request": {
        "redirect_uris": [WEB], "default_acr_values": ["urn:example:loa:2", "urn:other"]}},
    {"name": "response_types_none_supported", "request": {
        "redirect_uris": [WEB], "response_types": ["token"]}},
    {"name": "token_endpoint_auth_method_unsupported", "request": {
        "redirect_uris": [WEB], "token_endpoint_auth_method": "private_key_jwt"}},
    {"name": "subject_type_unsupported", "request": {
        "redirect_uris": [WEB], "subject_type": "ephemeral"}},
    {"name": "grant_types_partly_supported", "request": {
        "redirect_uris": [WEB], "grant_types": ["authorization_code", "password"]}},
]

_RANDOM = ("client_id", "client_secret", "client_id_issued_at")
_SETS = ("response_types", "default_acr_values")


def normalise(response: dict[str, Any]) -> dict[str, Any]:
    """Random members replaced by their type names; pyop 3's set-ordered lists sorted."""
    result = dict(response)
    for name in _RANDOM:
        if name in result:
            result[name] = type(result[name]).__name__
    for name in _SETS:
        if isinstance(result.get(name), list):
            result[name] = sorted(" ".join(sorted(value.split())) for value in result[name])
    return result


def run_case(case: dict[str, Any], signing_key: Any) -> dict[str, Any]:
    from pyop.authz_state import AuthorizationState
    from pyop.exceptions import InvalidClientRegistrationRequest
    from pyop.provider import Provider
    from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
    from pyop.userinfo import Userinfo

    provider = Provider(signing_key, copy.deepcopy(CONFIGURATION),
                        AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), {},
                        Userinfo({}))
    result: dict[str, Any] = {"name": case["name"], "request": case["request"]}
    try:
        response = provider.handle_client_registration_request(json.dumps(case["request"]))
    except InvalidClientRegistrationRequest as e:
        result["error"] = json.loads(e.to_json())["error"]
        return result
    result["response"] = normalise(response.to_dict())
    result["stored"] = normalise(dict(provider.clients[response["client_id"]]))
    return result


def main() -> int:
    from importlib.metadata import version

    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwkest.jwk import RSAKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from Cryptodome.PublicKey import RSA
    from cryptography.hazmat.primitives import serialization

    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    signing_key = RSAKey(key=RSA.import_key(pem), use="sig", alg="RS256")
    document = {
        "generated_by": "tests/compat/make_registration_golden.py",
        "pyop": version("pyop"), "oic": version("oic"),
        "configuration": CONFIGURATION,
        "cases": [run_case(case, signing_key) for case in CASES],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(document['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
