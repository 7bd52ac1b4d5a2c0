"""When did pyop 3 issue refresh tokens, and could clients use them?

Run with an interpreter that has pyop 3.5.0 installed (never this library's)::

    python tests/security/data/pyop3_refresh_token_issuance.py \
        > tests/security/data/pyop3_refresh_token_issuance.json

It prints ``{"<client>|<scope>": {"refresh_token": bool, "refresh_grant_works": bool}}``
for a client without ``grant_types`` and one registered for ``authorization_code`` only,
with and without ``offline_access``. tests/security/test_refresh_token_eligibility.py
compares this library with the checked-in output, and runs this script live when
``PYOP_TEST_PYOP3_PYTHON`` names such an interpreter.
"""

import base64
import json
from urllib.parse import urlencode

from Cryptodome.PublicKey import RSA
from jwkest.jwk import RSAKey

from pyop.authz_state import AuthorizationState
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ISSUER = "https://op.example.com"
REDIRECT_URI = "https://rp.example.com/cb"
CLIENTS = {
    "no-grant-types": {"client_secret": "s", "redirect_uris": [REDIRECT_URI],
                       "response_types": ["code"],
                       "token_endpoint_auth_method": "client_secret_basic"},
    "code-only": {"client_secret": "s", "redirect_uris": [REDIRECT_URI],
                  "response_types": ["code"], "grant_types": ["authorization_code"],
                  "token_endpoint_auth_method": "client_secret_basic"},
}


def main() -> None:
    key = RSAKey(key=RSA.generate(2048), alg="RS256")
    config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
              "token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks",
              "scopes_supported": ["openid", "offline_access"],
              "subject_types_supported": ["public"]}
    out = {}
    for scope in ("openid", "openid offline_access"):
        for client_id in CLIENTS:
            authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                       refresh_token_lifetime=3600)
            provider = Provider(key, config, authz, CLIENTS, Userinfo({"alice": {}}))
            request = provider.parse_authentication_request(urlencode({
                "client_id": client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
                "scope": scope, "prompt": "consent"}))
            code = provider.authorize(request, "alice")["code"]
            basic = base64.b64encode((client_id + ":s").encode()).decode()
            headers = {"Authorization": "Basic " + basic}
            response = provider.handle_token_request(urlencode({
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": REDIRECT_URI}), headers)
            refresh_token = response.get("refresh_token")
            works = False
            if refresh_token:
                refreshed = provider.handle_token_request(urlencode({
                    "grant_type": "refresh_token", "refresh_token": refresh_token}), headers)
                works = "access_token" in refreshed
            out[client_id + "|" + scope] = {"refresh_token": refresh_token is not None,
                                            "refresh_grant_works": works}
    print(json.dumps(out, sort_keys=True, indent=1))


if __name__ == "__main__":
    main()
