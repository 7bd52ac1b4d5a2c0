"""Drives SATOSA 8.6.0's OpenIDConnectFrontend on this library (run in the SATOSA venv).

Reads ``{"key_pem", "salt", "variants": [{"name", "db_uri", "mongomock"}], ...}`` as JSON
on stdin and prints, per variant, what a relying party observes: the discovery document,
the JWKS, a dynamic registration, a code flow and an implicit flow for the registered
client and for a static client (``client_db_path``), with the ID tokens verified the way
SATOSA's relying parties do (pyoidc's ``IdToken.from_jwt`` with the keys of the published
JWKS), and the UserInfo responses.

The frontend is configured as SATOSA documents it (``signing_key_path`` with the default
``signing_key_id``, i.e. a kid-less key; ``provider`` with ``client_registration_supported``,
``response_types_supported``, ``subject_types_supported``, ``scopes_supported``...).
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

INTERNAL_ATTRIBUTES = {
    "attributes": {
        "mail": {"openid": ["email"], "saml": ["mail"]},
        "givenname": {"openid": ["given_name"], "saml": ["givenName"]},
        "surname": {"openid": ["family_name"], "saml": ["sn"]},
        "displayname": {"openid": ["name"], "saml": ["displayName"]},
    }
}
ATTRIBUTES = {"mail": ["alice@example.com"], "givenname": ["Alice"], "surname": ["Liddell"],
              "displayname": ["Alice Liddell"]}
BASE_URL = "https://proxy.example.com"


def _location_parameters(response: Any) -> dict[str, str]:
    location = dict(response.headers)["Location"]
    parts = urlsplit(location)
    return dict(parse_qsl(parts.fragment or parts.query))


def _json(response: Any) -> Any:
    message = response.message
    return json.loads(message if isinstance(message, str) else message[0])


def _verify_id_token(token: str, jwks: dict[str, Any], issuer: str, client_id: str) -> Any:
    """As an oic-based RP: keys from the JWKS document, signature and claims checked."""
    from jwkest.jwk import load_jwks
    from oic.oic.message import IdToken

    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    id_token = IdToken().from_jwt(token, key=load_jwks(json.dumps(jwks)))
    id_token.verify(iss=issuer, client_id=client_id, skew=300)
    return {"header": header, "claims": id_token.to_dict()}


def run_variant(variant: dict[str, Any], payload: dict[str, Any], workdir: Path) -> Any:
    from satosa.context import Context
    from satosa.frontends.openid_connect import OpenIDConnectFrontend
    from satosa.internal import AuthenticationInformation, InternalData
    from satosa.state import State

    if variant.get("mongomock"):
        import mongomock
        import pymongo

        pymongo.MongoClient = mongomock.MongoClient  # as SATOSA's own tests do

    static_client = {"client_id": "static-rp", "client_secret": "static-secret",
                     "redirect_uris": ["https://static-rp.example.org/cb"],
                     "response_types": ["code", "id_token token"],
                     "token_endpoint_auth_method": "client_secret_basic"}
    client_db = workdir / f"{variant['name']}-clients.json"
    client_db.write_text(json.dumps({"static-rp": static_client}))
    conf = {
        "signing_key_path": payload["key_pem"],
        "sub_hash_salt": payload["salt"],
        "client_db_path": str(client_db),
        "provider": {
            "client_registration_supported": True,
            "response_types_supported": ["code", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "scopes_supported": ["openid", "email"],
            "refresh_token_lifetime": 3600,
        },
    }
    if variant.get("db_uri"):
        conf["db_uri"] = variant["db_uri"]

    captured: dict[str, Any] = {}

    def auth_req_callback(context: Any, internal_request: Any) -> str:
        captured["internal_request"] = internal_request
        return "to the backend"

    frontend = OpenIDConnectFrontend(auth_req_callback, INTERNAL_ATTRIBUTES, conf, BASE_URL,
                                     "OIDC")
    frontend.register_endpoints(["Saml2"])
    context = Context()
    result: dict[str, Any] = {
        "pyop_file": __import__("pyop").__file__,
        "discovery": _json(frontend.provider_config(context)),
        "jwks": _json(frontend.jwks(context)),
    }
    issuer = result["discovery"]["issuer"]

    # dynamic registration (OIDC Registration 3)
    context = Context()
    context.request = {"redirect_uris": ["https://rp.example.com/cb"],
                       "response_types": ["code", "id_token token"]}
    registered = frontend.client_registration(context)
    result["registration_status"] = registered.status
    client = _json(registered)
    result["registration"] = {k: v for k, v in client.items()
                              if k not in ("client_id", "client_secret", "client_id_issued_at",
                                           "registration_access_token",
                                           "registration_client_uri")}

    def flow(client_id: str, secret: str, redirect_uri: str, response_type: str) -> Any:
        context = Context()
        context.state = State()
        context.request = {"client_id": client_id, "redirect_uri": redirect_uri,
                           "response_type": response_type, "scope": "openid email",
                           "nonce": "nonce-" + response_type, "state": "state-1"}
        assert frontend.handle_authn_request(context) == "to the backend"
        internal_request = captured.pop("internal_request")
        internal_response = InternalData(
            auth_info=AuthenticationInformation("urn:oasis:names:tc:SAML:2.0:ac:classes:"
                                                "PasswordProtectedTransport", "2024-01-01T00:00Z",
                                                "https://idp.example.com"),
            subject_id="alice@idp.example.com", subject_type=internal_request.subject_type,
            attributes=dict(ATTRIBUTES))
        redirect = frontend.handle_authn_response(context, internal_response)
        params = _location_parameters(redirect)
        out: dict[str, Any] = {"requested_attributes": sorted(internal_request.attributes),
                               "authn_parameters": sorted(params),
                               "state": params.get("state")}
        access_token = params.get("access_token")
        if "code" in params:
            token_context = Context()
            token_context.request = {"grant_type": "authorization_code", "code": params["code"],
                                     "redirect_uri": redirect_uri}
            token_context.request_authorization = "Basic " + base64.b64encode(
                f"{client_id}:{secret}".encode()).decode()
            token_response = _json(frontend.token_endpoint(token_context))
            out["token_parameters"] = sorted(token_response)
            out["id_token"] = _verify_id_token(token_response["id_token"], result["jwks"],
                                               issuer, client_id)
            access_token = token_response["access_token"]
        else:
            out["id_token"] = _verify_id_token(params["id_token"], result["jwks"], issuer,
                                               client_id)

        def userinfo() -> Any:
            userinfo_context = Context()
            userinfo_context.request = {}
            userinfo_context.request_authorization = "Bearer " + access_token
            return _json(frontend.userinfo_endpoint(userinfo_context))

        out["userinfo"] = userinfo()
        if "code" in params:
            # the code again: refused, and the tokens issued from it revoked (RFC 6749 4.1.2)
            replay = frontend.token_endpoint(token_context)
            out["code_replay"] = [replay.status, _json(replay).get("error")]
            out["userinfo_after_code_replay"] = userinfo()
        return out

    for label, (client_id, secret, redirect_uri) in {
        "registered": (client["client_id"], client["client_secret"], "https://rp.example.com/cb"),
        "static": ("static-rp", "static-secret", "https://static-rp.example.org/cb"),
    }.items():
        result[f"{label}_code_flow"] = flow(client_id, secret, redirect_uri, "code")
        result[f"{label}_implicit_flow"] = flow(client_id, secret, redirect_uri,
                                                "id_token token")
    return result


def main() -> None:
    payload = json.load(sys.stdin)
    workdir = Path(payload["workdir"])
    results = {}
    for variant in payload["variants"]:
        try:
            results[variant["name"]] = run_variant(variant, payload, workdir)
        except Exception:  # noqa: BLE001 - reported to the test
            results[variant["name"]] = {"crash": traceback.format_exc()[-3000:]}
    json.dump(results, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
