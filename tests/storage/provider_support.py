"""A full Provider over one storage backend, and the requests the provider-level tests send.

Used by the provider-level storage tests and by ``multiprocess_worker.py`` (which runs
in a process of its own, so this module imports nothing from the test packages).
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import urlencode

from pyop.authz_state import AuthorizationState
from pyop.exceptions import OAuthError
from pyop.provider import Provider
from pyop.storage import StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ISSUER = "https://op.example.com"
CLIENT_ID = "client1"
CLIENT_SECRET = "secret-of-client1"
REDIRECT_URI = "https://rp.example.com/callback"
USER_ID = "alice"
USERS = {USER_ID: {"name": "Alice Liddell", "email": "alice@example.com"}}
#: Secret of the stateless (sealed) stores; the URI is stateless://user:<secret>@localhost.
SEALING_SECRET = "a-sealing-secret-of-32-bytes-at-least"
STATELESS_URI = f"stateless://pyop:{SEALING_SECRET}@localhost"

T = TypeVar("T")

#: The four collections of an AuthorizationState.
COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers")


def configuration() -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token",
        "userinfo_endpoint": ISSUER + "/userinfo",
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        # the code flow and public subject identifiers, as the round trips are counted for
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
    }


def clients() -> dict[str, Any]:
    return {CLIENT_ID: {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }}


def new_namespace() -> str:
    """A fresh ``db_name``, so tests sharing a server never see each other's records.

    On Redis ``db_name`` is the database index (pyop 3) and a URI naming a database
    ignores it: :func:`namespaced` puts the namespace in the collection name as well."""
    return "p" + uuid.uuid4().hex[:12]


def namespaced(namespace: str, collection: str) -> str:
    """The collection name of ``collection`` in a test's ``namespace`` (every backend)."""
    return f"{namespace}:{collection}"


@dataclass
class Stores:
    """The four stores of an AuthorizationState, plus what must be closed afterwards."""

    codes: Any
    access_tokens: Any
    refresh_tokens: Any
    subject_identifiers: Any
    closables: list[StorageBase] = field(default_factory=list)

    def close(self) -> None:
        for store in self.closables:
            store.close()
        self.closables.clear()


def stores_from_uri(uri: str, db_name: str, *, replay_uri: Optional[str] = None,
                    replay_kwargs: Optional[dict[str, Any]] = None,
                    ttl: Optional[int] = None, **kwargs: Any) -> Stores:
    """The four stores, each ``StorageBase.from_uri(uri, db_name=..., collection=...)``.

    For ``stateless://`` URIs the codes and tokens are sealed stores and the subject
    identifiers a plain dict; ``replay_uri`` names the store of their shared replay cache
    (an in-process one per sealed store when omitted).
    """
    made: list[StorageBase] = []

    def store(collection: str, **extra: Any) -> StorageBase:
        created = StorageBase.from_uri(uri, collection=namespaced(db_name, collection),
                                       db_name=db_name, ttl=ttl, **kwargs, **extra)
        made.append(created)
        return created

    if StorageBase.type(uri) != "stateless":
        return Stores(*(store(c) for c in COLLECTIONS), closables=made)
    extra: dict[str, Any] = {}
    if replay_uri is not None:
        cache = StorageBase.from_uri(replay_uri, collection=namespaced(db_name, "replay"),
                                     db_name=db_name,
                                     **(replay_kwargs or {}))
        extra["replay_cache"] = cache
    stores = Stores(store("authz_codes", **extra), store("access_tokens", **extra),
                    store("refresh_tokens", **extra), {}, closables=made)
    if replay_uri is not None:
        stores.closables.append(extra["replay_cache"])
    return stores


def make_provider(stores: Stores, signing_key: Any, *,
                  clock: Callable[[], float] = time.time,
                  refresh_token_lifetime: Optional[int] = 3600,
                  refresh_token_threshold: Optional[int] = None,
                  **authz_kwargs: Any) -> Provider:
    """A Provider + AuthorizationState whose stores are ``stores``."""
    authz = AuthorizationState(
        HashBasedSubjectIdentifierFactory("salt"), stores.codes, stores.access_tokens,
        stores.refresh_tokens, stores.subject_identifiers, clock=clock,
        refresh_token_lifetime=refresh_token_lifetime,
        refresh_token_threshold=refresh_token_threshold, **authz_kwargs)
    return Provider(signing_key, configuration(), authz, clients(), Userinfo(dict(USERS)),
                    clock=clock)


# -- requests --------------------------------------------------------------------------------


def basic_auth() -> dict[str, str]:
    raw = f"{CLIENT_ID}:{CLIENT_SECRET}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def authorize(provider: Provider, scope: str = "openid profile") -> str:
    """parse -> authorize for the test user; returns the code."""
    request = provider.parse_authentication_request(urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": scope, "state": "st", "nonce": "n"}))
    response = provider.authorize(request, USER_ID)
    return str(response["code"])


def exchange(provider: Provider, code: str) -> Any:
    """The authorization_code grant; returns the AccessTokenResponse or raises."""
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    return provider.handle_token_request(urlencode(body), basic_auth())


def refresh(provider: Provider, refresh_token: str) -> Any:
    """The refresh_token grant; returns the AccessTokenResponse or raises."""
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return provider.handle_token_request(urlencode(body), basic_auth())


def userinfo(provider: Provider, access_token: str) -> Any:
    return provider.handle_userinfo_request(None, {"Authorization": "Bearer " + access_token})


def outcome(call: Callable[[], Any]) -> str:
    """``"ok"``, or the OAuth error code of the refusal (other exceptions propagate)."""
    try:
        call()
    except OAuthError as error:
        return str(error.oauth_error)
    return "ok"


def per_thread(items: Sequence[T]) -> Callable[[], T]:
    """A function giving each calling thread its own item of ``items`` (round robin)."""
    assigned: dict[int, T] = {}
    lock = threading.Lock()

    def mine() -> T:
        with lock:
            ident = threading.get_ident()
            if ident not in assigned:
                assigned[ident] = items[len(assigned) % len(items)]
            return assigned[ident]

    return mine
