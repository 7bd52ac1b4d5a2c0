"""Regenerate ``data/discovery_pyop3.json``: the discovery documents pyop 3.5 publishes.

Run with the interpreter of a virtualenv holding pyop 3.5.0 and SATOSA 8.6 (never this
library)::

    PYTHONHASHSEED=0 /path/to/pyop3-venv/bin/python tests/compat/make_discovery_golden.py

For each case the file holds what the provider was given (``configuration``,
``extra_scopes``, and ``updated_after_construction``: members the host set on
``provider.configuration_information`` afterwards, as SATOSA does) and the
``discovery`` document (``provider.provider_configuration.to_dict()``).
``tests/test_upgrade_config.py`` builds this library's provider from the same input and
compares.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "data" / "discovery_pyop3.json"
ISSUER = "https://op.example.com"

#: The configuration of pyop's README (its example provider), with the ``jwks_uri`` that
#: pyop 3 requires (this library derives it when missing).
README_CONFIGURATION = {
    "issuer": "https://example.com",
    "authorization_endpoint": "https://example.com/authorization",
    "token_endpoint": "https://example.com/token",
    "userinfo_endpoint": "https://example.com/userinfo",
    "registration_endpoint": "https://example.com/registration",
    "jwks_uri": "https://example.com/jwks",
    "response_types_supported": ["code", "id_token token"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "response_modes_supported": ["fragment", "query"],
    "subject_types_supported": ["public", "pairwise"],
    "grant_types_supported": ["authorization_code", "implicit"],
    "claim_types_supported": ["normal"],
    "claims_parameter_supported": True,
    "claims_supported": ["sub", "name", "given_name", "family_name"],
    "request_parameter_supported": False,
    "request_uri_parameter_supported": False,
    "scopes_supported": ["openid", "profile"],
}

MINIMAL = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
           "token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks"}

PLAIN_CASES: list[dict[str, Any]] = [
    {"name": "readme", "configuration": README_CONFIGURATION},
    {"name": "minimal", "configuration": MINIMAL},
    {"name": "minimal_extra_scopes", "configuration": MINIMAL,
     "extra_scopes": {"eduperson": ["eduperson_affiliation"], "custom": ["custom_claim"]}},
    {"name": "configured_scopes_extra_scopes",
     "configuration": {**MINIMAL, "scopes_supported": ["openid", "email"]},
     "extra_scopes": {"eduperson": ["eduperson_affiliation"]}},
    {"name": "id_token_only",
     "configuration": {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
                       "jwks_uri": ISSUER + "/jwks", "response_types_supported": ["id_token"]}},
    {"name": "registration_and_userinfo",
     "configuration": {**MINIMAL, "userinfo_endpoint": ISSUER + "/userinfo",
                       "registration_endpoint": ISSUER + "/registration",
                       "subject_types_supported": ["public"],
                       "token_endpoint_auth_methods_supported": [
                           "client_secret_basic", "client_secret_post"],
                       "acr_values_supported": ["urn:example:loa:1"]}},
]

#: SATOSA's OpenID Connect frontend ``provider`` settings.
SATOSA_CASES: list[dict[str, Any]] = [
    {"name": "satosa_defaults", "provider": {}},
    {"name": "satosa_code_flow_registration",
     "provider": {"response_types_supported": ["code", "id_token token"],
                  "subject_types_supported": ["public", "pairwise"],
                  "scopes_supported": ["openid", "email"],
                  "extra_scopes": {"eduperson": ["eduperson_affiliation"]},
                  "client_registration_supported": True}},
]


def _key(directory: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwkest.jwk import RSAKey, rsa_load

    path = Path(directory) / "signing_key.pem"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return path, RSAKey(key=rsa_load(str(path)), use="sig", alg="RS256")


def plain_case(case: dict[str, Any], signing_key: Any) -> dict[str, Any]:
    from pyop.authz_state import AuthorizationState
    from pyop.provider import Provider
    from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
    from pyop.userinfo import Userinfo

    given = copy.deepcopy(case["configuration"])
    provider = Provider(signing_key, copy.deepcopy(given),
                        AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), {},
                        Userinfo({}), extra_scopes=copy.deepcopy(case.get("extra_scopes")))
    return {"name": case["name"], "configuration": given,
            "extra_scopes": case.get("extra_scopes"), "updated_after_construction": {},
            "discovery": provider.provider_configuration.to_dict()}


def satosa_case(case: dict[str, Any], key_path: Path) -> dict[str, Any]:
    import satosa.frontends.openid_connect as frontend_module

    recorded: dict[str, Any] = {}

    class RecordingProvider(frontend_module.Provider):  # type: ignore[misc,name-defined]
        def __init__(self, signing_key: Any, configuration: Any, *args: Any,
                     **kwargs: Any) -> None:
            recorded["configuration"] = copy.deepcopy(configuration)
            recorded["extra_scopes"] = copy.deepcopy(kwargs.get("extra_scopes"))
            super().__init__(signing_key, configuration, *args, **kwargs)

    frontend_module.Provider = RecordingProvider
    internal_attributes = {"attributes": {
        "mail": {"openid": ["email"]}, "givenname": {"openid": ["given_name"]},
        "edupersonaffiliation": {"openid": ["eduperson_affiliation"]}}}
    conf = {"signing_key_path": str(key_path), "provider": copy.deepcopy(case["provider"])}
    frontend = frontend_module.OpenIDConnectFrontend(
        lambda *args: None, internal_attributes, conf, ISSUER, "OIDC")
    before = frontend.provider.configuration_information.to_dict()
    frontend.register_endpoints(["Saml2"])
    after = frontend.provider.configuration_information.to_dict()
    updated = {name: value for name, value in after.items() if before.get(name) != value}
    return {"name": case["name"], "configuration": recorded["configuration"],
            "extra_scopes": recorded["extra_scopes"], "updated_after_construction": updated,
            "discovery": frontend.provider.provider_configuration.to_dict()}


def main() -> int:
    import pyop

    if not getattr(pyop, "__version__", "3.5.0").startswith("3.") and "site-packages" not in (
            pyop.__file__ or ""):
        print("run with the interpreter of a pyop 3.5 virtualenv", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as directory:
        key_path, signing_key = _key(directory)
        cases = [plain_case(case, signing_key) for case in PLAIN_CASES]
        cases += [satosa_case(case, key_path) for case in SATOSA_CASES]
    from importlib.metadata import version

    document = {
        "generated_by": "tests/compat/make_discovery_golden.py",
        "pyop": version("pyop"), "oic": version("oic"), "satosa": version("satosa"),
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(cases)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
