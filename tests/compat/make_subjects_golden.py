"""Regenerate ``data/subjects_pyop3.json``: subject identifiers and released claims of pyop 3.5.0.

Run it with a Python environment where pyop 3.5.0 is installed (never the one of this
repository), from the repository root::

    python -m venv /tmp/pyop3 && /tmp/pyop3/bin/pip install pyop==3.5.0
    /tmp/pyop3/bin/python tests/compat/make_subjects_golden.py

It writes ``tests/compat/data/subjects_pyop3.json`` (or the path given as argument).
``tests/test_upgrade_subjects.py`` checks this library against those values.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlencode

NOW = 1_800_000_000
ISSUER = "https://op.example.com"
SALT = "salt"

SALTS = ["salt", "s3cr3t-\u00fcn\u00efc\u00f6d\u00e9", "x" * 64]
USER_IDS = ["alice", "bob", "user@example.com", "\u00fcn\u00efc\u00f6d\u00e9", "12345",
            "b.c", "c", "with space", "CN=Alice,O=Example"]
SECTORS = ["rp.example.com", "rp.example.com:8443", "127.0.0.1:8765", "[::1]:9000",
           "a", "a.b", "xn--bcher-kva.example:443"]

#: the user claims of the provider scenarios (all the standard claims of OIDC Core 5.1)
USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
        "middle_name": "P", "nickname": "al", "preferred_username": "alice",
        "profile": "https://example.com/alice", "picture": "https://example.com/a.png",
        "website": "https://alice.example.com", "gender": "female",
        "birthdate": "1852-05-04", "zoneinfo": "Europe/London", "locale": "en-GB",
        "updated_at": 1_700_000_000, "email": "alice@example.com", "email_verified": True,
        "address": {"street_address": "1 Rabbit Hole", "locality": "Wonderland"},
        "phone_number": "+1 555 0100", "phone_number_verified": False,
        "eduperson_principal_name": "alice@example.com", "custom": "c-value",
    },
    "bob": {"name": "Bob", "email": "bob@example.com"},
    "carol": {"sub": "carol-chosen-sub", "name": "Carol", "email": "carol@example.com"},
}

CLIENTS: dict[str, dict[str, Any]] = {
    "c-default": {"redirect_uris": ["https://rp.example.com:8443/cb"]},
    "c-public": {"redirect_uris": ["https://rp.example.com/cb"], "subject_type": "public"},
    "c-pairwise": {"redirect_uris": ["https://rp.example.com/cb",
                                     "https://rp.example.com:8443/cb",
                                     "https://other.example.org/cb",
                                     "http://127.0.0.1:8765/cb"],
                   "subject_type": "pairwise"},
    "c-sector": {"redirect_uris": ["https://c.example.com/cb"], "subject_type": "pairwise",
                 "sector_identifier_uri": "https://sector.example.org:8443/sector.json"},
}

SUBJECT_TYPES = [None, ["public"], ["pairwise"], ["public", "pairwise"],
                 ["pairwise", "public"]]

CLAIM_REQUESTS: list[Any] = [
    None,
    {"id_token": {"email": None}},
    {"userinfo": {"name": {"essential": True}, "nickname": None, "custom": None}},
    {"id_token": {"given_name": {"value": "Alice"}, "custom": None},
     "userinfo": {"eduperson_principal_name": None}},
    {"id_token": {"auth_time": {"essential": True}}},
]
SCOPES = ["openid", "openid email", "openid profile email address phone",
          "openid eduperson", "openid email unknown-scope", "openid profile offline_access"]
RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token"]
CONFIGS: dict[str, dict[str, Any]] = {
    # pyop 3's defaults: scopes_supported ["openid"] (plus the extra_scopes)
    "defaults": {},
    # as in pyop 3's README
    "readme": {"scopes_supported": ["openid"],
               "claims_supported": ["sub", "name", "given_name", "family_name"]},
}
EXTRA_SCOPES = {"eduperson": ["eduperson_principal_name"]}


def payload(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def factory_values() -> list[dict[str, Any]]:
    from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

    values = []
    for salt in SALTS:
        factory = HashBasedSubjectIdentifierFactory(salt)
        for user_id in USER_IDS:
            values.append({"salt": salt, "user_id": user_id, "type": "public",
                           "sub": factory.create_public_identifier(user_id)})
            for sector in SECTORS:
                values.append({"salt": salt, "user_id": user_id, "type": "pairwise",
                               "sector": sector,
                               "sub": factory.create_pairwise_identifier(user_id, sector)})
    return values


def make_provider(key: Any, configuration: dict[str, Any], clients: dict[str, Any]) -> Any:
    from pyop.authz_state import AuthorizationState
    from pyop.provider import Provider
    from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
    from pyop.userinfo import Userinfo

    config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
              "token_endpoint": ISSUER + "/token", "userinfo_endpoint": ISSUER + "/userinfo",
              "jwks_uri": ISSUER + "/jwks",
              "response_types_supported": ["code", "id_token", "id_token token",
                                           "code id_token"]}
    config.update(configuration)
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory(SALT))
    return Provider(key, config, authz, clients, Userinfo(USERS), extra_scopes=EXTRA_SCOPES)


def client_records() -> dict[str, Any]:
    return {client_id: dict(metadata, client_id=client_id, client_secret="secret",
                            response_types=RESPONSE_TYPES,
                            token_endpoint_auth_method="client_secret_basic")
            for client_id, metadata in CLIENTS.items()}


def subject_values(key: Any) -> list[dict[str, Any]]:
    values = []
    for subject_types in SUBJECT_TYPES:
        config = {} if subject_types is None else {"subject_types_supported": subject_types}
        provider = make_provider(key, config, client_records())
        effective = list(provider.configuration_information["subject_types_supported"])
        for client_id, metadata in CLIENTS.items():
            for redirect_uri, user_id in itertools.product(metadata["redirect_uris"],
                                                           ["alice", "bob"]):
                request = provider.parse_authentication_request(urlencode({
                    "client_id": client_id, "redirect_uri": redirect_uri,
                    "response_type": "code", "scope": "openid", "nonce": "n"}))
                code = provider.authorize(request, user_id)["code"]
                sub = provider.authz_state.authorization_codes[code]["sub"]
                values.append({"subject_types_supported": effective, "client_id": client_id,
                               "redirect_uri": redirect_uri, "user_id": user_id, "sub": sub})
    return values


def basic(client_id: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:secret".encode()).decode()
    return {"Authorization": "Basic " + token}


def claim_values(key: Any) -> list[dict[str, Any]]:
    values = []
    client_id, redirect_uri = "c-public", "https://rp.example.com/cb"
    for (config_name, configuration), scope, claims, response_type, user_id in itertools.product(
            CONFIGS.items(), SCOPES, CLAIM_REQUESTS, RESPONSE_TYPES, ["alice", "carol"]):
        provider = make_provider(key, configuration, client_records())
        parameters = {"client_id": client_id, "redirect_uri": redirect_uri,
                      "response_type": response_type, "scope": scope, "nonce": "n",
                      "state": "s"}
        if claims is not None:
            parameters["claims"] = json.dumps(claims)
        case: dict[str, Any] = {"config": config_name, "scope": scope, "claims": claims,
                                "response_type": response_type, "user_id": user_id}
        try:
            request = provider.parse_authentication_request(urlencode(parameters))
            response = provider.authorize(request, user_id)
        except Exception as e:  # noqa: BLE001 - recorded as pyop 3's outcome
            case["error"] = type(e).__name__
            case["oauth_error"] = getattr(e, "oauth_error", None)
            case["error_message"] = str(e)[:200]
            values.append(case)
            continue
        access_token = response.get("access_token")
        if "id_token" in response:
            case["authorization_id_token"] = payload(response["id_token"])
        if "code" in response:
            try:
                token = provider.handle_token_request(urlencode({
                    "grant_type": "authorization_code", "code": response["code"],
                    "redirect_uri": redirect_uri}), basic(client_id))
            except Exception as e:  # noqa: BLE001
                case["token_error"] = type(e).__name__
            else:
                case["token_id_token"] = payload(token["id_token"])
                access_token = token["access_token"]
        if access_token is not None:
            userinfo = provider.handle_userinfo_request(
                "", {"Authorization": "Bearer " + access_token})
            case["userinfo"] = userinfo.to_dict()
        values.append(case)
    return values


def requested_sub_values(key: Any) -> list[dict[str, Any]]:
    """What pyop 3 does with a ``sub`` requested through the claims parameter."""
    provider = make_provider(key, {"subject_types_supported": ["public"]}, client_records())
    alice_sub = provider.authz_state.get_subject_identifier("public", "alice")
    values = []
    for member, request in itertools.product(
            ["id_token", "userinfo"],
            [{"value": alice_sub}, {"value": "someone-else"}, None, {"essential": True}]):
        claims = {member: {"sub": request}}
        request_message = provider.parse_authentication_request(urlencode({
            "client_id": "c-public", "redirect_uri": "https://rp.example.com/cb",
            "response_type": "code", "scope": "openid", "claims": json.dumps(claims)}))
        case: dict[str, Any] = {"claims": claims, "user_id": "alice"}
        try:
            provider.authorize(request_message, "alice")
        except Exception as e:  # noqa: BLE001
            case["error"] = type(e).__name__
            case["oauth_error"] = getattr(e, "oauth_error", None)
        values.append(case)
    return values


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # pyop 3 warns about every unadvertised scope
    from Cryptodome.PublicKey import RSA
    from jwkest.jwk import RSAKey

    import pyop

    time.time = lambda: float(NOW)  # fixed iat/exp
    key = RSAKey(key=RSA.generate(2048), alg="RS256", use="sig", kid="k")
    version = getattr(pyop, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version
        version = dist_version("pyop")
    data = {
        "generator": "tests/compat/make_subjects_golden.py",
        "pyop_version": version,
        "now": NOW,
        "salt": SALT,
        "users": USERS,
        "clients": CLIENTS,
        "extra_scopes": EXTRA_SCOPES,
        "configs": CONFIGS,
        "factory": factory_values(),
        "subjects": subject_values(key),
        "claims": claim_values(key),
        "requested_sub": requested_sub_values(key),
    }
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "data", "subjects_pyop3.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True, ensure_ascii=True)
        f.write("\n")


if __name__ == "__main__":
    main()
