"""The scenarios of the differential tests (plain JSON data, see pyop3_harness.py).

Each scenario builds one provider (``op``: configuration, clients, users, salt,
storage, keyword arguments) and exercises it; the harness runs the same list under
pyop 3.5.0 and under this library. Scenario ids are stable: the tests are
parametrised by them.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

ISSUER = "https://op.example.com"
#: Fixed UNIX time of both runs (pyop 3: patched time.time; this library: injected clock).
NOW = 1_700_000_000
NONCE = "n-0S6_WzA2Mj"
STATE = "af0ifjsldkj"


def configuration(**members: Any) -> dict[str, Any]:
    """A pyop 3-style configuration: the members SATOSA and the pyop 3 README set."""
    config = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token",
        "userinfo_endpoint": ISSUER + "/userinfo",
        "jwks_uri": ISSUER + "/jwks",
    }
    config.update(members)
    return {name: value for name, value in config.items() if value is not None}


ALL_RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token", "code token",
                      "code id_token token"]
STANDARD_SCOPES = ["openid", "profile", "email", "address", "phone"]

ALICE = {
    "name": "Alice Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "nickname": "al",
    "preferred_username": "alice",
    "email": "alice@example.com",
    "email_verified": True,
    "phone_number": "+1 555 0100",
    "phone_number_verified": False,
    "address": {"street_address": "1 Rabbit Hole", "locality": "Wonderland",
                "country": "UK"},
    "birthdate": "1852-05-04",
    "locale": "en-GB",
    "eduperson_principal_name": "alice@wonderland.example",
    "not_a_standard_claim": "never released by scope",
}

#: user ids (unicode among them); "carol" and "dave" carry their own ``sub``
USERS: dict[str, dict[str, Any]] = {
    "alice": ALICE,
    "bob": {"email": "bob@example.com", "name": "Bob"},
    "ünïcødé": {"email": "u@example.com", "name": "Ünïcødé Üser"},
    "用户": {"name": "用户"},
    "🙂 emoji user": {"name": "Smile"},
    "user@example.com": {"email": "user@example.com"},
    "123": {"name": "numeric id"},
    "carol": {"sub": "carol-sub-from-the-user-record", "email": "carol@example.com"},
    "dave": {"sub": "ダヴェ", "name": "Dave"},
}

#: (client_id, metadata); token_endpoint_auth_method varies too
SUB_CLIENTS: dict[str, dict[str, Any]] = {
    "public-client": {"subject_type": "public",
                      "redirect_uris": ["https://rp1.example.com/cb"]},
    "pairwise-client": {"subject_type": "pairwise",
                        "redirect_uris": ["https://rp2.example.com/cb",
                                          "https://rp2.example.com:8443/other/path?x=1",
                                          "http://localhost:8080/cb",
                                          "https://RP2.example.com/cb"],
                        "token_endpoint_auth_method": "client_secret_post"},
    "sector-client": {"subject_type": "pairwise",
                      "sector_identifier_uri": "https://sector.example.org/uris.json",
                      "redirect_uris": ["https://a.example.net/cb",
                                        "https://b.example.net:4443/cb"]},
    "default-client": {"redirect_uris": ["https://rp3.example.com/cb",
                                         "https://rp3.example.com/other"]},
    "same-host-client": {"subject_type": "pairwise",
                         "redirect_uris": ["https://rp2.example.com/another-client"]},
}


def client(client_id: str, response_types: list[str] | None = None,
           **metadata: Any) -> dict[str, Any]:
    record = {"client_id": client_id, "client_secret": "secret-of-" + client_id,
              "response_types": response_types or ["code"],
              "redirect_uris": ["https://rp.example.com/cb"]}
    record.update(metadata)
    return record


def code_flow(user: str, client_id: str, redirect_uri: str, scope: str = "openid",
              response_type: str = "code", **extra: Any) -> dict[str, Any]:
    request = {"response_type": response_type, "client_id": client_id,
               "redirect_uri": redirect_uri, "scope": scope, "nonce": NONCE, "state": STATE}
    flow: dict[str, Any] = {"user": user, "request": request}
    for name in ("claims", "prompt", "max_age"):
        if name in extra:
            request[name] = extra.pop(name)
    flow.update(extra)
    return flow


# -- subject identifiers ------------------------------------------------------------------------


def subject_scenarios() -> list[dict[str, Any]]:
    scenarios = []
    clients = {cid: client(cid, ["code", "id_token"], **meta) for cid, meta in SUB_CLIENTS.items()}
    subject_types: dict[str, Any] = {
        "public-first": ["public", "pairwise"],
        "pairwise-first": ["pairwise", "public"],
        "public-only": ["public"],
        "unset": None,
    }
    for (label, types), salt, storage in itertools.product(
            subject_types.items(), ["salt", "sälz ✓"], ["memory", "stateless"]):
        if storage == "stateless" and salt != "salt":
            continue
        flows = []
        for user in USERS:
            for cid, meta in SUB_CLIENTS.items():
                for redirect_uri in meta["redirect_uris"]:
                    flows.append(code_flow(user, cid, redirect_uri))
        # the implicit flow takes the same sub
        flows.append(code_flow("alice", "pairwise-client", "https://rp2.example.com/cb",
                               response_type="id_token"))
        flows.append(code_flow("bob", "default-client", "https://rp3.example.com/cb",
                               response_type="id_token"))
        scenarios.append({
            "id": f"sub-{label}-salt={salt}-{storage}", "kind": "flows",
            "op": {"config": configuration(subject_types_supported=types), "clients": clients,
                   "users": USERS, "salt": salt, "storage": storage},
            "flows": flows,
        })
    return scenarios


# -- claims: scopes x response types x claims requests --------------------------------------------

# offline_access is left out: pyoidc made pyop 3 refuse it without prompt=consent, where
# OIDC Core 11 says to ignore it; special_flow_scenarios requests it with prompt=consent
SCOPE_SETS = ["openid", "openid email", "openid profile email address phone",
              "openid unknown-scope", "openid eduperson"]
CLAIMS_REQUESTS: dict[str, Any] = {
    "none": None,
    "id_token-email": {"id_token": {"email": None}},
    "both": {"id_token": {"name": {"essential": True}, "not_a_standard_claim": None},
             "userinfo": {"phone_number": None, "eduperson_principal_name": None}},
}


def claims_scenarios() -> list[dict[str, Any]]:
    scenarios = []
    variants = {
        "openid-only": {"config": configuration(scopes_supported=["openid"],
                                                response_types_supported=ALL_RESPONSE_TYPES)},
        "standard-scopes": {"config": configuration(scopes_supported=STANDARD_SCOPES,
                                                    response_types_supported=ALL_RESPONSE_TYPES)},
        "extra-scopes": {"config": configuration(scopes_supported=["openid", "email"],
                                                 response_types_supported=ALL_RESPONSE_TYPES),
                         "provider_kwargs": {"extra_scopes": {
                             "eduperson": ["eduperson_principal_name"]}}},
    }
    clients = {"rp": client("rp", ALL_RESPONSE_TYPES)}
    for label, variant in variants.items():
        for storage in ("memory", "stateless"):
            flows = []
            for scope, response_type, (_, claims) in itertools.product(
                    SCOPE_SETS, ALL_RESPONSE_TYPES, CLAIMS_REQUESTS.items()):
                extra = {} if claims is None else {"claims": claims}
                flows.append(code_flow("alice", "rp", "https://rp.example.com/cb", scope,
                                       response_type, **extra))
            op = dict(copy.deepcopy(variant), clients=clients, users=USERS, storage=storage)
            scenarios.append({"id": f"claims-{label}-{storage}", "kind": "flows", "op": op,
                              "flows": flows})
    return scenarios


def special_flow_scenarios() -> list[dict[str, Any]]:
    """extra_id_token_claims, requested sub, claims requests pyop 3 refuses, refresh, replay."""
    clients = {"rp": client("rp", ALL_RESPONSE_TYPES)}
    config = configuration(scopes_supported=STANDARD_SCOPES,
                           response_types_supported=ALL_RESPONSE_TYPES)
    extra_dict = {"dict": {"acr": "https://refeds.org/profile/mfa", "email": "override@x"}}
    extra_callable = {"callable": {"eduPersonAssurance": ["low", "medium"]}}
    flows = []
    for response_type in ("code", "id_token", "id_token token", "code id_token"):
        for spec_a, spec_t in ((extra_dict, None), (None, extra_dict), (extra_callable, None),
                               (None, extra_callable), (extra_dict, extra_callable)):
            flows.append(code_flow("alice", "rp", "https://rp.example.com/cb", "openid email",
                                   response_type, extra_authz=spec_a, extra_token=spec_t))
    # a requested sub (OIDC Core 3.1.2.2, 5.5.1): the right one, a wrong one, disagreeing ones
    right_sub = {"claims": {"id_token": {"sub": {"value": "carol-sub-from-the-user-record"}}}}
    flows.append(code_flow("carol", "rp", "https://rp.example.com/cb", **right_sub))
    flows.append(code_flow("carol", "rp", "https://rp.example.com/cb", response_type="id_token",
                           **copy.deepcopy(right_sub)))
    flows.append(code_flow("carol", "rp", "https://rp.example.com/cb", claims={
        "id_token": {"sub": {"value": "someone-else"}}}))
    flows.append(code_flow("carol", "rp", "https://rp.example.com/cb", claims={
        "userinfo": {"sub": {"value": "someone-else"}}}))
    flows.append(code_flow("carol", "rp", "https://rp.example.com/cb", claims={
        "id_token": {"sub": {"value": "carol-sub-from-the-user-record"}},
        "userinfo": {"sub": {"value": "someone-else"}}}))
    # userinfo claims cannot be requested when no access token is issued (OIDC Core 5.5)
    flows.append(code_flow("alice", "rp", "https://rp.example.com/cb", response_type="id_token",
                           claims={"userinfo": {"email": None}}))
    # refresh and code replay
    flows.append(code_flow("alice", "rp", "https://rp.example.com/cb", "openid email",
                           refresh=True, replay=True))
    flows.append(code_flow("alice", "rp", "https://rp.example.com/cb", "openid offline_access",
                           prompt="consent", refresh=True))
    # errors in the request
    flows.append(code_flow("alice", "rp", "https://elsewhere.example.com/cb"))
    flows.append(code_flow("alice", "no-such-client", "https://rp.example.com/cb"))
    flows.append(code_flow("alice", "rp", "https://rp.example.com/cb", response_type="token"))
    flows.append(code_flow("alice", "rp", "https://rp.example.com/cb", scope="email"))
    scenarios = []
    for storage in ("memory", "stateless"):
        scenarios.append({
            "id": f"special-{storage}", "kind": "flows",
            "op": {"config": config, "clients": clients, "users": USERS, "storage": storage,
                   "authz_kwargs": {"refresh_token_lifetime": 3600},
                   "provider_kwargs": {"id_token_lifetime": 600}},
            "flows": copy.deepcopy(flows),
        })
    return scenarios


# -- discovery ------------------------------------------------------------------------------------


def satosa_configuration(**members: Any) -> dict[str, Any]:
    """What SATOSA 8.6.0's OpenIDConnectFrontend passes to Provider (_create_provider)."""
    base = ISSUER + "/OIDC"
    config = {
        "issuer": ISSUER,
        "authorization_endpoint": base + "/authorization",
        "jwks_uri": base + "/jwks",
        "response_types_supported": ["code", "id_token token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_modes_supported": ["fragment", "query"],
        "subject_types_supported": ["pairwise"],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "claims_supported": ["email", "name", "given_name", "family_name", "sub"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "scopes_supported": ["openid", "email"],
        "token_endpoint": base + "/token",
        "registration_endpoint": base + "/registration",
    }
    config.update(members)
    return {name: value for name, value in config.items() if value is not None}


DISCOVERY_CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "minimal": (configuration(userinfo_endpoint=None), {}),
    "readme": (configuration(response_types_supported=["code"],
                             subject_types_supported=["public"]), {}),
    "satosa": (satosa_configuration(), {}),
    "satosa-public-extra-scopes": (
        satosa_configuration(subject_types_supported=["public", "pairwise"]),
        {"extra_scopes": {"eduperson": ["eduperson_principal_name", "eduperson_affiliation"]}}),
    "satosa-implicit-only": (satosa_configuration(response_types_supported=["id_token"],
                                                  token_endpoint=None), {}),
    "implicit-only-no-token-endpoint": (
        configuration(response_types_supported=["id_token", "id_token token"],
                      token_endpoint=None, userinfo_endpoint=None), {}),
    "scopes": (configuration(scopes_supported=STANDARD_SCOPES), {}),
    "extra-scopes-only": (configuration(), {"extra_scopes": {"custom": ["custom_claim"]}}),
    "subject-types-pairwise": (configuration(subject_types_supported=["pairwise"]), {}),
    "all-response-types": (configuration(response_types_supported=ALL_RESPONSE_TYPES), {}),
    "registration-endpoint": (configuration(registration_endpoint=ISSUER + "/registration"), {}),
    "end-session-endpoint": (configuration(end_session_endpoint=ISSUER + "/logout"), {}),
    "claims-supported": (configuration(claims_supported=["sub", "email", "name"]), {}),
    "response-modes": (configuration(response_modes_supported=["query", "fragment"]), {}),
    "auth-methods": (configuration(
        token_endpoint_auth_methods_supported=["client_secret_post"]), {}),
    "grant-types": (configuration(grant_types_supported=["authorization_code"]), {}),
    "request-uri-true": (configuration(request_uri_parameter_supported=True), {}),
    "id-token-lifetime": (configuration(), {"id_token_lifetime": 60}),
    "service-documentation": (configuration(
        service_documentation="https://op.example.com/docs", ui_locales_supported=["en", "sv"],
        op_policy_uri="https://op.example.com/policy"), {}),
}


def discovery_scenarios() -> list[dict[str, Any]]:
    return [{"id": f"discovery-{label}", "kind": "discovery",
             "op": {"config": config, "provider_kwargs": kwargs}}
            for label, (config, kwargs) in DISCOVERY_CONFIGS.items()]


# -- dynamic registration (OIDC Registration 3) ---------------------------------------------------

REGISTRATION_REQUESTS: list[Any] = [
    {"redirect_uris": ["https://rp.example.com/cb"]},
    {"redirect_uris": ["https://rp.example.com/cb", "https://rp.example.com:8443/cb2"],
     "response_types": ["code", "id_token token"], "client_name": "RP",
     "contacts": ["admin@rp.example.com"]},
    {"redirect_uris": ["https://rp.example.com/cb"], "response_types": ["code", "token"]},
    {"redirect_uris": ["https://rp.example.com/cb"], "response_types": ["token id_token"]},
    {"redirect_uris": ["https://rp.example.com/cb"], "response_types": ["token"]},
    {"redirect_uris": ["https://rp.example.com/cb"], "subject_type": "public"},
    {"redirect_uris": ["https://rp.example.com/cb"], "subject_type": "pairwise"},
    {"redirect_uris": ["https://rp.example.com/cb"],
     "token_endpoint_auth_method": "client_secret_post"},
    {"redirect_uris": ["https://rp.example.com/cb"],
     "id_token_signed_response_alg": "RS256"},
    {"redirect_uris": ["https://rp.example.com/cb"], "id_token_signed_response_alg": "ES512"},
    {"redirect_uris": ["https://rp.example.com/cb"], "default_acr_values": ["unknown-acr"]},
    {"redirect_uris": ["https://rp.example.com/cb#fragment"]},
    {"response_types": ["code"]},
    {"redirect_uris": "https://rp.example.com/cb"},
    "this is not JSON",
]


def registration_scenarios() -> list[dict[str, Any]]:
    scenarios = []
    for label, config in {
        "satosa": satosa_configuration(response_types_supported=["code", "id_token token"]),
        "public-all-types": configuration(registration_endpoint=ISSUER + "/registration",
                                          subject_types_supported=["public", "pairwise"],
                                          response_types_supported=ALL_RESPONSE_TYPES),
    }.items():
        scenarios.append({"id": f"registration-{label}", "kind": "registration",
                          "op": {"config": config, "users": USERS},
                          "requests": REGISTRATION_REQUESTS, "flow": {"user": "alice"}})
    return scenarios


# -- keys -----------------------------------------------------------------------------------------


def jwks_scenarios() -> list[dict[str, Any]]:
    scenarios = []
    for label, kid in (("kidless", None), ("empty-kid", ""), ("kid", "signing-key-2024")):
        flows = [code_flow("alice", "rp", "https://rp.example.com/cb", response_type=rt)
                 for rt in ("code", "id_token", "id_token token")]
        scenarios.append({
            "id": f"jwks-{label}", "kind": "jwks",
            "op": {"config": configuration(response_types_supported=ALL_RESPONSE_TYPES),
                   "clients": {"rp": client("rp", ALL_RESPONSE_TYPES)}, "users": USERS,
                   "kid": kid},
            "flows": flows,
        })
    return scenarios


# -- logout ---------------------------------------------------------------------------------------


def logout_scenarios() -> list[dict[str, Any]]:
    op = {"config": configuration(), "clients": {"rp": client("rp")}, "users": USERS,
          "authz_kwargs": {"refresh_token_lifetime": 3600}}
    return [{"id": f"logout-by-{by}", "kind": "logout", "op": op, "client_id": "rp",
             "user": "alice", "other_user": "bob", "by": by}
            for by in ("subject_identifier", "id_token_hint")]


def all_scenarios() -> list[dict[str, Any]]:
    return (subject_scenarios() + claims_scenarios() + special_flow_scenarios()
            + discovery_scenarios() + registration_scenarios() + jwks_scenarios()
            + logout_scenarios())
