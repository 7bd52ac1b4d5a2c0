"""Fuzzing JWT client authentication (RFC 7523 3, OIDC Core 9) with Hypothesis.

Assertions are mutated member by member (header and claims: removed, retyped, or given odd
values: non-finite numbers such as ``NaN``, ``Infinity`` and ``1e400`` in the NumericDate
claims, control characters in ``iss``/``sub``), signed with the right or a wrong key, or
replaced by arbitrary text. Whatever
arrives, the provider answers with a typed error (400/401) or authenticates; and it
authenticates only an assertion that satisfies every rule, exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from typing import Any, Optional
from urllib.parse import urlencode

from conftest import ISSUER, REDIRECT_URI, USERS, FakeClock
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import event, given
from hypothesis import strategies as st

from pyop.authz_state import AuthorizationState
from pyop.client_assertion import JWT_BEARER_ASSERTION_TYPE
from pyop.crypto import SigningKey
from pyop.exceptions import InvalidClientAuthentication, InvalidRequestError
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

TOKEN_ENDPOINT = ISSUER + "/token"
INTROSPECTION_ENDPOINT = ISSUER + "/introspect"
CLIENT = "jwt-client"
SECRET = "shared-secret-of-the-jwt-client-0123456789-abcdefghijklmnop"
NOW = 1_700_000_000
SIGNING_KEY = SigningKey(ec.generate_private_key(ec.SECP256R1()))
HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}

ODD = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                st.floats(allow_nan=False), st.text(max_size=20),
                st.lists(st.text(max_size=8), max_size=3),
                st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
MISSING = object()
#: NumericDate values JSON parsers accept that are no finite number (RFC 7519 2): ``NaN``,
#: ``Infinity``, ``-Infinity`` (Python's json writes and reads them) and ``1e400`` (read as
#: an infinite float; written here through a placeholder).
RAW_1E400 = "\x00raw-1e400\x00"
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, RAW_1E400])
#: ``iss``/``sub`` values with control characters around or inside the client id.
CONTROL = st.builds(lambda before, after: before + CLIENT + after,
                    st.text(st.characters(max_codepoint=0x1f), max_size=2),
                    st.text(st.characters(max_codepoint=0x1f), max_size=2)).filter(
                        lambda value: value != CLIENT)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def provider(clock: FakeClock) -> Provider:
    clients = {CLIENT: {
        "client_id": CLIENT, "client_secret": SECRET, "redirect_uris": [REDIRECT_URI],
        "response_types": ["code"], "token_endpoint_auth_method": "client_secret_jwt",
        "grant_types": ["authorization_code"]}}
    config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
              "token_endpoint": TOKEN_ENDPOINT, "introspection_endpoint": INTROSPECTION_ENDPOINT,
              "token_endpoint_auth_methods_supported": ["client_secret_jwt"]}
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock)
    return Provider(SIGNING_KEY, config, authz, clients, Userinfo(USERS), clock=clock)


def valid_claims() -> dict[str, Any]:
    return {"iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "exp": NOW + 60,
            "iat": NOW, "jti": "jti-1"}


@st.composite
def assertions(draw: Any) -> tuple[str, bool]:
    """An assertion, and whether it satisfies every rule (so must authenticate)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.text(max_size=200), st.from_regex(
            r"[A-Za-z0-9_\-]{0,40}\.[A-Za-z0-9_\-]{0,40}\.[A-Za-z0-9_\-]{0,40}",
            fullmatch=True))), False
    claims: dict[str, Any] = valid_claims()
    header: dict[str, Any] = {"alg": draw(st.sampled_from(sorted(HMAC_HASHES))), "typ": "JWT"}
    valid = True
    for name in draw(st.sets(st.sampled_from(sorted(claims)), max_size=3)):
        if name in ("exp", "iat") and draw(st.integers(0, 3)) == 0:
            value = draw(NON_FINITE)
        elif name in ("iss", "sub") and draw(st.integers(0, 3)) == 0:
            value = draw(CONTROL)
        else:
            value = draw(st.one_of(st.just(MISSING), ODD))
        if value is MISSING:
            del claims[name]
        else:
            claims[name] = value
        valid = valid and _still_valid(name, claims.get(name, MISSING))
    if draw(st.booleans()):
        value = draw(st.one_of(st.sampled_from(["none", "RS256", "ES256", "hs256", "", "HS1"]),
                               ODD))
        header["alg"] = value
        valid = valid and isinstance(value, str) and value in HMAC_HASHES
    if draw(st.integers(0, 4)) == 0:
        header[draw(st.sampled_from(["kid", "jku", "crit", "typ", "zip"]))] = draw(ODD)
        valid = False  # crit/zip may be refused, other members ignored: not required
    if draw(st.integers(0, 5)) == 0:
        claims["nbf"] = draw(st.one_of(NON_FINITE, st.just(NOW - 10)))
        valid = valid and claims["nbf"] == NOW - 10
    secret = draw(st.sampled_from([SECRET, SECRET + "x", ""]))
    valid = valid and secret == SECRET
    payload = json.dumps(claims).replace(json.dumps(RAW_1E400), "1e400")
    signing_input = b64(json.dumps(header).encode()) + "." + b64(payload.encode())
    alg = header.get("alg")
    digest = HMAC_HASHES.get(alg) if isinstance(alg, str) else None
    mac = hmac.new(secret.encode(), signing_input.encode(),
                   digest or hashlib.sha256).digest()
    if draw(st.integers(0, 9)) == 0:
        mac = mac[:-1] + bytes([mac[-1] ^ 1])
        valid = False
    return signing_input + "." + b64(mac), valid


def _still_valid(name: str, value: Any) -> bool:
    """Whether a claim replaced by ``value`` leaves the assertion acceptable."""
    if value is MISSING:
        return name == "iat"  # iat is optional (RFC 7523 3, item 6)
    if name in ("iss", "sub"):
        return value == CLIENT
    if name == "aud":  # the issuer as a single string (RFC 7523bis), the default
        return isinstance(value, str) and value == ISSUER
    if name == "jti":
        return isinstance(value, str) and 0 < len(value)
    return False  # exp/iat given other values: outcome decided by the provider's rules


@given(assertions(), st.sampled_from([JWT_BEARER_ASSERTION_TYPE, JWT_BEARER_ASSERTION_TYPE,
                                      "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                                      ""]),
       st.sampled_from([None, CLIENT, "other-client"]))
def test_client_assertions(assertion: tuple[str, bool], assertion_type: str,
                           client_id: Optional[str]) -> None:
    token, valid = assertion
    op = provider(FakeClock(NOW))
    parameters = {"client_assertion_type": assertion_type, "client_assertion": token,
                  "token": "unknown-token"}
    if client_id is not None:
        parameters["client_id"] = client_id
    body = urlencode(parameters)
    must_pass = valid and assertion_type == JWT_BEARER_ASSERTION_TYPE and client_id in (
        None, CLIENT)
    try:
        response = op.handle_introspection_request(body)
    except (InvalidClientAuthentication, InvalidRequestError) as error:
        assert error.http_status in (400, 401)
        json.loads(error.to_json())
        assert not must_pass, f"refused a valid assertion: {error}"
        event("refused")
        return
    event("authenticated")
    # authenticated: the assertion met every rule, and it is single-use
    assert response["active"] is False
    assert assertion_type == JWT_BEARER_ASSERTION_TYPE and client_id in (None, CLIENT)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == claims["sub"] == CLIENT
    assert claims["aud"] == ISSUER
    assert isinstance(claims["exp"], (int, float)) and NOW < claims["exp"] <= NOW + 300 + 60
    for name in ("exp", "iat", "nbf"):  # no NaN or infinity slipped through
        assert name not in claims or math.isfinite(claims[name])
    try:
        op.handle_introspection_request(body)
    except InvalidClientAuthentication:
        pass
    else:
        raise AssertionError("a client assertion authenticated twice")
