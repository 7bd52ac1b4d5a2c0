"""A client assertion authenticates once, on every backend (RFC 7523 3: ``jti``).

The replay store is a backend store; where the backend is shared (SQL, Redis, MongoDB)
each thread has a Provider with a store object of its own over the same collection, as
separate workers would. 8 threads present the same assertion at once: exactly one is
authenticated. Sealed (stateless) codes keep the ``jti`` in their replay cache, here a
backend store as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from typing import Any

from pyop.authz_state import AuthorizationState
from pyop.client_assertion import JWT_BEARER_ASSERTION_TYPE
from pyop.exceptions import InvalidClientAuthentication
from pyop.provider import Provider
from pyop.storage import StatelessWrapper, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .conftest import Backend
from .test_races import THREADS, _stores, _thread_store, race

ISSUER = "https://op.example.com"
CLIENT = "jwt-client"
SECRET = "shared-secret-of-the-jwt-client-0123456789"
ROUNDS = 5


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def assertion(now: float, jti: str) -> str:
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "exp": int(now) + 60,
              "jti": jti}
    signing_input = b64(b'{"alg":"HS256"}') + "." + b64(json.dumps(claims).encode())
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def provider(signing_key: Any, backend: Backend, replay_store: StorageBase,
             sealed: bool = False) -> Provider:
    codes = StatelessWrapper("authz_codes", "k" * 32, replay_cache=replay_store,
                             clock=backend.now) if sealed else None
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), codes,
                               clock=backend.now)
    config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authz",
              "token_endpoint": ISSUER + "/token",
              # JWT client authentication is offered only when configured
              "token_endpoint_auth_methods_supported": ["client_secret_jwt"]}
    clients = {CLIENT: {"client_id": CLIENT, "client_secret": SECRET,
                        "redirect_uris": ["https://rp.example.com/cb"],
                        "token_endpoint_auth_method": "client_secret_jwt"}}
    return Provider(signing_key, config, authz, clients, Userinfo({}), clock=backend.now,
                    client_assertion_replay_store=None if sealed else replay_store)


def authenticated(op: Provider, value: str) -> bool:
    body = {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": value,
            "token": "unknown"}
    try:
        op.handle_introspection_request(body)
    except InvalidClientAuthentication as e:
        assert str(e) == "client_assertion already used"
        return False
    return True


def check_single_use(race_backend: Backend, signing_key: Any, sealed: bool) -> None:
    stores = _stores(race_backend)
    providers = {id(store): provider(signing_key, race_backend, store, sealed)
                 for store in stores}
    mine = _thread_store(stores)
    assertions = [assertion(race_backend.now(), f"jti-{r}-{threading.get_ident()}")
                  for r in range(ROUNDS)]
    results = race(lambda r: authenticated(providers[id(mine())], assertions[r]),
                   rounds=ROUNDS)
    for r, outcomes in enumerate(results):
        assert len(outcomes) == THREADS
        assert outcomes.count(True) == 1, f"round {r}: {outcomes}"
    # and later, sequentially
    assert not authenticated(providers[id(stores[-1])], assertions[0])


def test_concurrent_assertion_replay_exactly_one_success(race_backend: Backend,
                                                         jwkest_signing_key: Any) -> None:
    check_single_use(race_backend, jwkest_signing_key, sealed=False)


def test_concurrent_assertion_replay_with_sealed_codes(race_backend: Backend,
                                                       jwkest_signing_key: Any) -> None:
    check_single_use(race_backend, jwkest_signing_key, sealed=True)
