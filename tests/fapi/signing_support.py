"""Shared pieces of the signed-request and JARM tests: a provider offering JARM and
request objects, client keys, request objects signed with joserfc (an independent JOSE
implementation), and JARM responses verified with joserfc, never with pyop's code."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

from conftest import CLIENT_ID, CLIENT_SECRET, ISSUER, REDIRECT_URI, configuration
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import ECKey as JoseECKey
from joserfc.jwk import KeySet as JoseKeySet
from joserfc.jwk import RSAKey as JoseRSAKey
from joserfc.jwt import JWTClaimsRegistry

from pyop.crypto import SigningKey
from pyop.provider import Provider
from pyop.response_mode import JARM_RESPONSE_MODES

NOW = 1_800_000_000  # the FakeClock of tests/conftest.py
OTHER_CLIENT_ID = "client2"
OTHER_REDIRECT_URI = "https://rp2.example.com/callback"

#: One RSA and one EC key for every client of these tests (generated once per run).
CLIENT_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CLIENT_EC_KEY = ec.generate_private_key(ec.SECP256R1())
#: A second provider key, for clients that registered ES256 responses.
OP_EC_KEY = SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256", "op-ec")


def public_jwk(private_key: Any, **members: Any) -> dict[str, Any]:
    jwk = dict(SigningKey(private_key).public_jwk)
    jwk.update(members)
    return jwk


CLIENT_JWKS = {"keys": [public_jwk(CLIENT_RSA_KEY, kid="rsa-1"),
                        public_jwk(CLIENT_EC_KEY, kid="ec-1")]}

_JOSE_KEYS: dict[int, Any] = {}


def _jose_key(private_key: Any) -> Any:
    if id(private_key) not in _JOSE_KEYS:
        pem = private_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        cls = JoseRSAKey if isinstance(private_key, rsa.RSAPrivateKey) else JoseECKey
        _JOSE_KEYS[id(private_key)] = cls.import_key(pem)
    return _JOSE_KEYS[id(private_key)]


def sign_request_object(claims: dict[str, Any], alg: str = "RS256") -> str:
    """A request object signed by the client with joserfc."""
    key, kid = (CLIENT_RSA_KEY, "rsa-1") if alg.startswith(("RS", "PS")) else (
        CLIENT_EC_KEY, "ec-1")
    return joserfc_jwt.encode({"alg": alg, "kid": kid}, claims, _jose_key(key),
                              algorithms=[alg])


def unsigned_request_object(claims: dict[str, Any]) -> str:
    from pyop.crypto import b64url_encode

    def part(value: Any) -> str:
        return b64url_encode(json.dumps(value).encode("utf-8"))

    return f"{part({'alg': 'none'})}.{part(claims)}."


def request_object_claims(client_id: str = CLIENT_ID, redirect_uri: str = REDIRECT_URI,
                          **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": client_id, "aud": ISSUER, "client_id": client_id,
                              "response_type": "code", "redirect_uri": redirect_uri,
                              "scope": "openid", "state": "object-state",
                              "nonce": "object-nonce", "exp": NOW + 300, "iat": NOW}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def fapi_configuration(*, jarm: bool = True, **overrides: Any) -> dict[str, Any]:
    config = configuration()
    config["request_parameter_supported"] = True
    config["request_object_signing_alg_values_supported"] = ["RS256", "ES256", "none"]
    config["response_modes_supported"] = ["query", "fragment", "form_post",
                                          *(JARM_RESPONSE_MODES if jarm else ())]
    config.update(overrides)
    return config


def fapi_clients(**client_overrides: Any) -> dict[str, Any]:
    response_types = ["code", "id_token", "id_token token", "code id_token", "code token",
                      "code id_token token"]
    first = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
             "redirect_uris": [REDIRECT_URI], "response_types": response_types,
             "token_endpoint_auth_method": "client_secret_basic", "jwks": CLIENT_JWKS}
    first.update(client_overrides)
    return {
        CLIENT_ID: {k: v for k, v in first.items() if v is not None},
        OTHER_CLIENT_ID: {"client_id": OTHER_CLIENT_ID, "client_secret": "secret-2",
                          "redirect_uris": [OTHER_REDIRECT_URI],
                          "response_types": response_types,
                          "token_endpoint_auth_method": "client_secret_basic",
                          "jwks": CLIENT_JWKS},
    }


def make_fapi_provider(make_provider: Callable[..., Provider], signing_key: SigningKey, *,
                       config: Optional[dict[str, Any]] = None,
                       client_db: Optional[dict[str, Any]] = None,
                       **kwargs: Any) -> Provider:
    kwargs.setdefault("allow_unsigned_request_objects", True)
    return make_provider(config=config or fapi_configuration(), signing_key=signing_key,
                         client_db=client_db if client_db is not None else fapi_clients(),
                         **kwargs)


def authorization_query(client_id: str = CLIENT_ID, redirect_uri: str = REDIRECT_URI,
                        **overrides: Any) -> str:
    params: dict[str, Any] = {"client_id": client_id, "redirect_uri": redirect_uri,
                              "response_type": "code", "scope": "openid",
                              "state": "the-state", "nonce": "the-nonce"}
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


def url_parameters(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The query and the fragment parameters of a redirect URL."""
    parts = urlsplit(url)
    return ({k: v[0] for k, v in parse_qs(parts.query).items()},
            {k: v[0] for k, v in parse_qs(parts.fragment).items()})


def verify_jarm(token: str, provider: Provider, client_id: str = CLIENT_ID,
                now: int = NOW) -> dict[str, Any]:
    """The claims of a JARM response JWT, verified by joserfc as a client would (JARM
    2.4): signature by a key of the provider's JWK Set, ``iss`` the issuer, ``aud`` the
    client's ``client_id``, ``exp`` present and not passed at ``now``."""
    keys = JoseKeySet.import_key_set(provider.jwks)  # type: ignore[arg-type]
    decoded = joserfc_jwt.decode(token, keys, algorithms=["RS256", "ES256", "PS256"])
    registry = JWTClaimsRegistry(now=now, iss={"essential": True, "value": ISSUER},
                                 aud={"essential": True, "value": client_id},
                                 exp={"essential": True})
    registry.validate(decoded.claims)
    claims: dict[str, Any] = dict(decoded.claims)
    claims["__header__"] = dict(decoded.header)
    return claims


def hidden_fields(page: str) -> dict[str, Optional[str]]:
    """The hidden fields of a form_post page (OAuth 2.0 Form Post Response Mode 2)."""
    fields: dict[str, Optional[str]] = {}

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
            attributes = dict(attrs)
            if tag == "input" and attributes.get("type") == "hidden":
                fields[attributes.get("name") or ""] = attributes.get("value")

    parser = Parser()
    parser.feed(page)
    parser.close()
    return fields
