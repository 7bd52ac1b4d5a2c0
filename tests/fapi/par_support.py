"""A provider with pushed authorization requests (RFC 9126) over one storage backend, and
the requests the PAR tests send."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import ec

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, VerificationKey, b64url_encode, jws_sign
from pyop.provider import Provider
from pyop.storage import StatelessWrapper, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ISSUER = "https://op.example.com"
PAR_ENDPOINT = ISSUER + "/par"
TOKEN_ENDPOINT = ISSUER + "/token"
CLIENT_ID = "client1"
CLIENT_SECRET = "secret-of-client1"
REDIRECT_URI = "https://rp.example.com/callback"
CLIENT_B_ID = "client2"
CLIENT_B_SECRET = "secret-of-client2"
CLIENT_B_REDIRECT_URI = "https://rp2.example.com/callback"
PUBLIC_CLIENT_ID = "public-client"
PUBLIC_REDIRECT_URI = "http://127.0.0.1:8765/cb"
POST_CLIENT_ID = "post-client"
POST_CLIENT_SECRET = "secret-of-post-client"
JWT_CLIENT_ID = "jwt-client"
JWT_REDIRECT_URI = "https://jwt.example.com/cb"
USER_ID = "alice"
USERS = {USER_ID: {"name": "Alice Liddell", "email": "alice@example.com"}}
SEALING_SECRET = "a-sealing-secret-of-32-bytes-at-least"
PREFIX = "urn:ietf:params:oauth:request_uri:"

#: The client's key for private_key_jwt and request objects (ES256: quick to make).
CLIENT_KEY = SigningKey.from_key(ec.generate_private_key(ec.SECP256R1()))
#: Its kid in the client's registered JWK Set.
CLIENT_KEY_ID = "jwt-client-key-1"


def configuration(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": TOKEN_ENDPOINT,
        "userinfo_endpoint": ISSUER + "/userinfo",
        "registration_endpoint": ISSUER + "/registration",
        "pushed_authorization_request_endpoint": PAR_ENDPOINT,
        "response_types_supported": ["code", "code id_token"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": True,
        "claims_parameter_supported": True,
    }
    config.update(overrides)
    return config


def clients() -> dict[str, Any]:
    common = {"response_types": ["code", "code id_token"]}
    return {
        CLIENT_ID: {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                    "redirect_uris": [REDIRECT_URI],
                    "token_endpoint_auth_method": "client_secret_basic", **common},
        CLIENT_B_ID: {"client_id": CLIENT_B_ID, "client_secret": CLIENT_B_SECRET,
                      "redirect_uris": [CLIENT_B_REDIRECT_URI],
                      "token_endpoint_auth_method": "client_secret_basic", **common},
        PUBLIC_CLIENT_ID: {"client_id": PUBLIC_CLIENT_ID, "redirect_uris": [PUBLIC_REDIRECT_URI],
                           "token_endpoint_auth_method": "none", "response_types": ["code"]},
        POST_CLIENT_ID: {"client_id": POST_CLIENT_ID, "client_secret": POST_CLIENT_SECRET,
                         "redirect_uris": ["https://post.example.com/cb"],
                         "token_endpoint_auth_method": "client_secret_post", **common},
        JWT_CLIENT_ID: {"client_id": JWT_CLIENT_ID, "redirect_uris": [JWT_REDIRECT_URI],
                        "token_endpoint_auth_method": "private_key_jwt",
                        "jwks": {"keys": [{**VerificationKey.from_key(CLIENT_KEY).to_jwk(),
                                           "kid": CLIENT_KEY_ID}]},
                        **common},
    }


class FakeClock:
    """Starts at the real time, so that server-side stores keep what is not yet expired."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ParBackend:
    """Builds providers over the state of one storage backend (memory, stateless, sqlite)."""

    name: str
    clock: FakeClock
    make_stores: Callable[[], dict[str, Any]]
    signing_key: SigningKey
    closables: list[StorageBase] = field(default_factory=list)

    def provider(self, *, config: Optional[dict[str, Any]] = None,
                 client_db: Optional[dict[str, Any]] = None,
                 authz_kwargs: Optional[dict[str, Any]] = None,
                 **provider_kwargs: Any) -> Provider:
        stores = self.make_stores()
        self.closables.extend(s for s in stores.values() if isinstance(s, StorageBase))
        kwargs = {"pushed_authorization_request_db": stores.get("pushed"),
                  **(authz_kwargs or {})}
        authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                   stores.get("codes"), stores.get("access_tokens"),
                                   stores.get("refresh_tokens"),
                                   stores.get("subject_identifiers"), clock=self.clock,
                                   **kwargs)
        return Provider(self.signing_key, config or configuration(), authz,
                        client_db if client_db is not None else clients(),
                        Userinfo(dict(USERS)), clock=self.clock, **provider_kwargs)

    @property
    def sealed(self) -> bool:
        return self.name.startswith("stateless")

    def close(self) -> None:
        for store in self.closables:
            store.close()


def memory_stores() -> dict[str, Any]:
    return {}


def stateless_stores(clock: FakeClock) -> Callable[[], dict[str, Any]]:
    """Sealed codes, tokens and pushed requests, one in-process replay cache (one worker)."""
    made: dict[str, Any] = {}

    def make() -> dict[str, Any]:
        if not made:
            made.update({
                "codes": StatelessWrapper("authz_codes", SEALING_SECRET, clock=clock),
                "access_tokens": StatelessWrapper("access_tokens", SEALING_SECRET, clock=clock),
                "refresh_tokens": StatelessWrapper("refresh_tokens", SEALING_SECRET,
                                                   clock=clock),
                "subject_identifiers": {},
                "pushed": StatelessWrapper("pushed_requests", SEALING_SECRET, clock=clock),
            })
        return dict(made)
    return make


def uri_stores(uri: str) -> Callable[[], dict[str, Any]]:
    """Stores of a server (or file) shared by every provider built: each its own objects,
    as separate workers would have."""
    namespace = "p" + uuid.uuid4().hex[:12]

    def make() -> dict[str, Any]:
        def store(collection: str) -> StorageBase:
            return StorageBase.from_uri(uri, collection=f"{namespace}:{collection}",
                                        db_name=namespace)
        return {"codes": store("authz_codes"), "access_tokens": store("access_tokens"),
                "refresh_tokens": store("refresh_tokens"),
                "subject_identifiers": store("subject_identifiers")}
    return make


# -- requests --------------------------------------------------------------------------------


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())
    return verifier, challenge


def authorization_parameters(redirect_uri: str = REDIRECT_URI, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"response_type": "code", "scope": "openid profile",
                              "redirect_uri": redirect_uri, "state": "state-of-par",
                              "nonce": "nonce-of-par"}
    params.update(extra)
    return {name: value for name, value in params.items() if value is not None}


def push(provider: Provider, headers: Optional[dict[str, str]] = None, **params: Any) -> Any:
    """A pushed authorization request of client1 (Basic authentication)."""
    return provider.handle_pushed_authorization_request(
        urlencode(authorization_parameters(**params)), basic() if headers is None else headers)


def authorize_pushed(provider: Provider, request_uri: str, client_id: str = CLIENT_ID,
                     **extra: Any) -> Any:
    return provider.parse_authentication_request(
        urlencode({"client_id": client_id, "request_uri": request_uri, **extra}))


def assertion(client_id: str = JWT_CLIENT_ID, aud: Any = ISSUER) -> str:
    now = int(time.time())
    return jws_sign({"iss": client_id, "sub": client_id, "aud": aud, "iat": now,
                     "exp": now + 60, "jti": secrets.token_urlsafe(16)}, CLIENT_KEY)


def request_object(claims: dict[str, Any], key: SigningKey = CLIENT_KEY,
                   client_id: str = JWT_CLIENT_ID) -> str:
    now = int(time.time())
    payload = {"iss": client_id, "aud": ISSUER, "exp": now + 60, "iat": now,
               "jti": secrets.token_urlsafe(16), "client_id": client_id, **claims}
    return jws_sign(payload, key, {"typ": "oauth-authz-req+jwt"})
