"""Logout revokes the end-user's grants (OIDC RP-Initiated Logout 1.0, 2; RFC 7009 2.1).

``Provider.logout_user`` (``AuthorizationState.delete_state_for_subject_identifier``)
stores one logout mark per subject identifier; every authorization code, access token
and refresh token issued for that ``sub`` up to the logout is refused afterwards -- on
every storage backend, sealed (stateless) tokens included, and from every process sharing
the stores. What stays: ``client_credentials`` tokens, the grants of other subject
identifiers (another sector's pairwise ``sub``), grants issued after the logout and the
``sub -> user_id`` mapping (kept, as pyop 3 kept it).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from storage.conftest import mongomock_client, postgres_url, redis_server  # noqa: F401
from storage.provider_support import (
    STATELESS_URI,
    USER_ID,
    Stores,
    authorize,
    exchange,
    make_provider,
    new_namespace,
    outcome,
    refresh,
    stores_from_uri,
    userinfo,
)

from benchmarks.counting import CountingStore
from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    InvalidRefreshToken,
    InvalidSubjectIdentifier,
)
from pyop.provider import Provider
from pyop.storage import MemoryStorage, StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

BACKENDS = ["memory", "dict", "sqlite", "postgresql", "redis", "mongomock", "stateless",
            "stateless-redis"]
#: Backends whose state lives in a server (or file): each provider gets stores of its own
#: over it, as a separate worker process would.
SHARED = {"sqlite", "postgresql", "redis", "mongomock", "stateless-redis"}
SEALED = {"stateless", "stateless-redis"}
SERVERS = {"postgresql", "redis", "stateless-redis"}


class ShiftedClock:
    """The real time plus an offset the test moves forward (Redis decides expiry with the
    real time, so the clock stays near it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Deployment:
    """Providers over one backend's state: ``provider()`` is a new worker process."""

    def __init__(self, name: str, request: pytest.FixtureRequest, key: SigningKey) -> None:
        self.name = name
        self.key = key
        self.clock = ShiftedClock()
        self.stores: list[Stores] = []
        namespace = new_namespace()
        kwargs: dict[str, Any] = {}
        if name == "memory":
            uri = "memory://"
        elif name == "dict":
            uri = ""
        elif name == "sqlite":
            uri = f"sqlite:///{request.getfixturevalue('tmp_path')}/pyop.db"
        elif name == "postgresql":
            uri = request.getfixturevalue("postgres_url")
        elif name == "redis":
            uri = request.getfixturevalue("redis_server").url
        elif name == "mongomock":
            uri = "mongodb://localhost"
            kwargs["client"] = request.getfixturevalue("mongomock_client")
        else:
            uri = STATELESS_URI
            if name == "stateless-redis":
                kwargs["replay_uri"] = request.getfixturevalue("redis_server").url

        def build() -> Stores:
            if not uri:
                return Stores({}, {}, {}, {})
            return stores_from_uri(uri, namespace, **kwargs)

        self.build = build

    def provider(self, **authz_kwargs: Any) -> Provider:
        if self.name in SHARED or not self.stores:
            self.stores.append(self.build())
        authz_kwargs.setdefault("refresh_token_lifetime", 3600)
        return make_provider(self.stores[-1], self.key, clock=self.clock, **authz_kwargs)

    def close(self) -> None:
        for stores in self.stores:
            stores.close()


@pytest.fixture(scope="module")
def signing_key(rsa_private_key: Any) -> SigningKey:
    return SigningKey.from_key(rsa_private_key)


@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.servers) if n in SERVERS else n
                        for n in BACKENDS])
def deployment(request: pytest.FixtureRequest, signing_key: SigningKey
               ) -> Iterator[Deployment]:
    built = Deployment(request.param, request, signing_key)
    try:
        yield built
    finally:
        built.close()


def assert_refused(provider: Provider, code: str, tokens: Any, refreshed: Any) -> None:
    assert outcome(lambda: exchange(provider, code)) == "invalid_grant"
    assert outcome(lambda: userinfo(provider, tokens["access_token"])) == "invalid_token"
    assert outcome(lambda: userinfo(provider, refreshed["access_token"])) == "invalid_token"
    assert outcome(lambda: refresh(provider, tokens["refresh_token"])) == "invalid_grant"


def test_logout_revokes_every_grant_of_the_subject(deployment: Deployment) -> None:
    """A code not redeemed yet, the access tokens and the refresh token of the subject are
    refused after the logout, by the process that logged out and by another one."""
    first = deployment.provider()
    other = deployment.provider()  # another worker (the same one for in-process state)
    pending_code = authorize(first)
    tokens = exchange(first, authorize(first))
    refreshed = refresh(other, tokens["refresh_token"])
    sub = userinfo(other, tokens["access_token"])["sub"]
    assert userinfo(first, refreshed["access_token"])["sub"] == sub

    first.logout_user(sub)

    for provider in (first, other):
        assert_refused(provider, pending_code, tokens, refreshed)
        authz = provider.authz_state
        assert authz.get_refresh_token(tokens["refresh_token"]) is None
        with pytest.raises(InvalidAccessToken):
            authz.introspect_access_token(tokens["access_token"])
    if deployment.name in SEALED:
        # the sealed values still open (their seal is intact): the server-side mark refuses them
        sealed = first.authz_state.access_tokens
        assert isinstance(sealed, StatelessWrapper)
        assert sealed.unseal(tokens["access_token"])["sub"] == sub
        assert first.authz_state.refresh_tokens.get(tokens["refresh_token"]) is not None
    # the mapping stays, as in pyop 3; a second logout is no error
    assert first.authz_state.get_user_id_for_subject_identifier(sub) == USER_ID
    first.logout_user(sub)

    # a login after the logout works, everywhere, right after it
    deployment.clock.advance(0.01)
    again = exchange(other, authorize(first))
    assert userinfo(first, again["access_token"])["sub"] == sub
    assert outcome(lambda: refresh(other, again["refresh_token"])) == "ok"
    assert outcome(lambda: exchange(other, pending_code)) == "invalid_grant"


def test_logout_by_id_token_hint_revokes(deployment: Deployment) -> None:
    provider = deployment.provider()
    tokens = exchange(provider, authorize(provider))
    provider.logout_user(end_session_request={"id_token_hint": tokens["id_token"]})
    assert outcome(lambda: userinfo(provider, tokens["access_token"])) == "invalid_token"
    assert outcome(lambda: refresh(provider, tokens["refresh_token"])) == "invalid_grant"


# -- what is and is not revoked (AuthorizationState, in memory) --------------------------------

AUTH_REQ = {"client_id": "client1", "redirect_uri": "https://rp.example.com/cb",
            "response_type": "code", "scope": "openid"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_state(clock: Clock, **kwargs: Any) -> AuthorizationState:
    kwargs.setdefault("refresh_token_lifetime", 86400)
    return AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock, **kwargs)


def grant(state: AuthorizationState, sub: str, user_id: str = USER_ID,
          client_id: str = "client1") -> tuple[str, Any, Optional[str]]:
    """A pending code, and an access + refresh token from another code."""
    request = dict(AUTH_REQ, client_id=client_id)
    pending = state.create_authorization_code(request, sub, user_id, ["openid"])
    code = state.create_authorization_code(request, sub, user_id, ["openid"])
    access, refresh_token = state.redeem_authorization_code(
        code, state.get_authorization_code(code))
    return pending, access, refresh_token


def assert_revoked(state: AuthorizationState, pending: str, access: Any,
                   refresh_token: Optional[str], client_id: str = "client1") -> None:
    with pytest.raises(InvalidAuthorizationCode):
        state.redeem_authorization_code(pending, state.get_authorization_code(pending))
    with pytest.raises(InvalidAccessToken):
        state.introspect_access_token(access.value)
    assert refresh_token is not None
    assert state.get_refresh_token(refresh_token) is None
    with pytest.raises(InvalidRefreshToken):
        state.use_refresh_token(refresh_token, client_id)


def assert_live(state: AuthorizationState, pending: str, access: Any,
                refresh_token: Optional[str], client_id: str = "client1") -> None:
    assert state.introspect_access_token(access.value)["client_id"] == client_id
    assert refresh_token is not None and state.get_refresh_token(refresh_token) is not None
    state.use_refresh_token(refresh_token, client_id)
    state.redeem_authorization_code(pending, state.get_authorization_code(pending))


def test_pairwise_logout_revokes_that_sector_only() -> None:
    clock = Clock()
    state = make_state(clock)
    sub_a = state.get_subject_identifier("pairwise", USER_ID, "a.example.com")
    sub_b = state.get_subject_identifier("pairwise", USER_ID, "b.example.com")
    a_grants = [grant(state, sub_a, client_id=c) for c in ("client1", "client2")]
    b_grant = grant(state, sub_b, client_id="client3")
    state.delete_state_for_subject_identifier(sub_a)
    for client_id, grants in zip(("client1", "client2"), a_grants):
        assert_revoked(state, *grants, client_id=client_id)
    assert_live(state, *b_grant, client_id="client3")


def test_logout_leaves_other_users_client_credentials_and_later_grants() -> None:
    clock = Clock()
    state = make_state(clock)
    alice = state.get_subject_identifier("public", USER_ID)
    bob = state.get_subject_identifier("public", "bob")
    alice_grant = grant(state, alice)
    bob_grant = grant(state, bob, "bob")
    service = state.create_client_access_token("service", ["api"])
    state.delete_state_for_subject_identifier(alice)
    assert_revoked(state, *alice_grant)
    assert_live(state, *bob_grant)
    assert state.introspect_access_token(service.value)["client_id"] == "service"
    # issued at the instant of the logout (by the clock): refused too; later ones are not,
    # even within the same second (a new login right after a logout)
    code = state.create_authorization_code(AUTH_REQ, alice, USER_ID, ["openid"])
    with pytest.raises(InvalidAuthorizationCode):
        state.redeem_authorization_code(code, state.get_authorization_code(code))
    implicit = state.create_access_token(AUTH_REQ, alice, USER_ID, ["openid"])
    with pytest.raises(InvalidAccessToken):
        state.introspect_access_token(implicit.value)
    clock.now += 0.25
    assert_live(state, *grant(state, alice))


def test_records_without_issued_at_count_by_their_second() -> None:
    """A record of an earlier version has only ``iat`` (whole seconds): issued in the
    second of the logout, it is taken as issued before it."""
    clock = Clock()
    tokens = MemoryStorage(clock=clock)
    state = make_state(clock, access_token_db=tokens)
    sub = state.get_subject_identifier("public", USER_ID)
    now = int(clock.now)
    for name, iat in (("old", now - 5), ("same-second", now), ("later", now + 1)):
        tokens.set(name, {"token_type": "access_token", "client_id": "client1", "sub": sub,
                          "user_id": USER_ID, "scope": "openid", "iat": iat,
                          "exp": now + 3600}, expires_at=now + 3600)
    clock.now += 0.5
    state.delete_state_for_subject_identifier(sub)
    for name in ("old", "same-second"):
        with pytest.raises(InvalidAccessToken):
            state.introspect_access_token(name)
    assert state.introspect_access_token("later")["sub"] == sub


def test_tokens_of_a_refresh_racing_the_logout_are_refused() -> None:
    """A refresh that read no mark and then loses the race to the logout issues tokens
    dated before it: they are refused at use."""
    clock = Clock()
    state = make_state(clock)
    sub = state.get_subject_identifier("public", USER_ID)
    _, _, refresh_token = grant(state, sub)
    assert refresh_token is not None
    real = state._logged_out_at

    def logout_after_reading(subject: str) -> Optional[float]:
        seen = real(subject)
        clock.now += 0.5  # the logout lands after the read, in the same second
        state.delete_state_for_subject_identifier(sub)
        return seen

    setattr(state, "_logged_out_at", logout_after_reading)  # noqa: B010
    access, _, _ = state.use_refresh_token(refresh_token, "client1")
    setattr(state, "_logged_out_at", real)  # noqa: B010
    with pytest.raises(InvalidAccessToken):
        state.introspect_access_token(access.value)


def test_the_mark_expires_after_the_longest_lifetime() -> None:
    clock = Clock()
    tokens = MemoryStorage(clock=clock)
    state = make_state(clock, access_token_db=tokens, refresh_token_lifetime=7200)
    sub = state.get_subject_identifier("public", USER_ID)
    state.delete_state_for_subject_identifier(sub)
    [key] = list(tokens.keys())
    assert key.startswith("logout:") and sub not in key
    assert tokens.get(key)["logged_out_at"] == clock.now
    clock.now += 7200
    assert tokens.get(key) is not None
    clock.now += 1
    assert tokens.get(key) is None


def test_a_later_logout_moves_the_mark_forward() -> None:
    clock = Clock()
    tokens = MemoryStorage(clock=clock)
    state = make_state(clock, access_token_db=tokens)
    sub = state.get_subject_identifier("public", USER_ID)
    state.delete_state_for_subject_identifier(sub)
    clock.now += 10
    later = grant(state, sub)
    state.delete_state_for_subject_identifier(sub)
    assert_revoked(state, *later)


def test_unknown_subject_identifiers_are_refused() -> None:
    state = make_state(Clock())
    for sub in ("never-issued", "", None, 5):
        with pytest.raises(InvalidSubjectIdentifier):
            state.delete_state_for_subject_identifier(sub)  # type: ignore[arg-type]


def test_logout_costs_one_read_and_one_write() -> None:
    clock = Clock()
    subjects, tokens = CountingStore(MemoryStorage(clock=clock)), \
        CountingStore(MemoryStorage(clock=clock))
    state = make_state(clock, access_token_db=tokens, subject_identifier_db=subjects)
    sub = state.get_subject_identifier("public", USER_ID)
    subjects.counts.clear()
    state.delete_state_for_subject_identifier(sub)
    assert dict(subjects.counts) == {"get": 1}  # the sub is known
    assert dict(tokens.counts) == {"add": 1}  # the mark


# -- the access token cache (access_token_cache_ttl) -------------------------------------------

def test_a_logout_through_this_process_empties_its_cache_for_the_subject() -> None:
    clock = Clock()
    tokens = CountingStore(MemoryStorage(clock=clock))
    state = make_state(clock, access_token_db=tokens, access_token_cache_ttl=60)
    sub = state.get_subject_identifier("public", USER_ID)
    _, access, _ = grant(state, sub)
    tokens.counts.clear()
    assert state.introspect_access_token(access.value)["sub"] == sub
    assert tokens.counts["get"] == 0  # answered from memory
    state.delete_state_for_subject_identifier(sub)
    with pytest.raises(InvalidAccessToken):
        state.introspect_access_token(access.value)


def test_a_logout_through_another_process_is_seen_when_the_entry_expires() -> None:
    """The documented propagation window of ``access_token_cache_ttl``."""
    clock = Clock()
    shared = dict(authorization_code_db=MemoryStorage(clock=clock),
                  access_token_db=MemoryStorage(clock=clock),
                  refresh_token_db=MemoryStorage(clock=clock),
                  subject_identifier_db=MemoryStorage(clock=clock))
    issuing = make_state(clock, access_token_cache_ttl=60, **shared)
    other = make_state(clock, **shared)
    sub = issuing.get_subject_identifier("public", USER_ID)
    _, access, _ = grant(issuing, sub)
    other.delete_state_for_subject_identifier(sub)
    with pytest.raises(InvalidAccessToken):
        other.introspect_access_token(access.value)
    assert issuing.introspect_access_token(access.value)["sub"] == sub  # from memory
    clock.now += 60
    with pytest.raises(InvalidAccessToken):
        issuing.introspect_access_token(access.value)


# -- pyop 3.5.0 (differential) -----------------------------------------------------------------

PYOP3_SCRIPT = r"""
import json
from oic.oic.message import AuthorizationRequest
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidSubjectIdentifier
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory

state = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"))
sub = state.get_subject_identifier("public", "alice")
req = AuthorizationRequest(client_id="client1", redirect_uri="https://rp.example.com/cb",
                           response_type="code", scope="openid")
pending = state.create_authorization_code(req, sub)
token = state.create_access_token(req, sub)
state.delete_state_for_subject_identifier(sub)
out = {"code_known": pending in state.authorization_codes,
       "token_known": token.value in state.access_tokens,
       "mapping_kept": state.get_user_id_for_subject_identifier(sub) == "alice"}
try:
    state.delete_state_for_subject_identifier(sub)
    out["second_logout"] = "ok"
except InvalidSubjectIdentifier:
    out["second_logout"] = "InvalidSubjectIdentifier"
try:
    state.delete_state_for_subject_identifier("never-issued")
    out["unknown"] = "ok"
except InvalidSubjectIdentifier:
    out["unknown"] = "InvalidSubjectIdentifier"
print(json.dumps(out))
"""


def test_observable_logout_behaviour_matches_pyop3(pyop3_python: str) -> None:
    result = subprocess.run([pyop3_python, "-c", PYOP3_SCRIPT], capture_output=True, text=True,
                            timeout=120, check=True, cwd="/")
    pyop3 = json.loads(result.stdout)

    state = make_state(Clock())
    sub = state.get_subject_identifier("public", "alice")
    pending = state.create_authorization_code(AUTH_REQ, sub, "alice", ["openid"])
    token = state.create_access_token(AUTH_REQ, sub, "alice", ["openid"])
    state.delete_state_for_subject_identifier(sub)
    ours: dict[str, Any] = {}
    try:
        state.redeem_authorization_code(pending, state.get_authorization_code(pending))
        ours["code_known"] = True
    except InvalidAuthorizationCode:
        ours["code_known"] = False
    try:
        state.introspect_access_token(token.value)
        ours["token_known"] = True
    except InvalidAccessToken:
        ours["token_known"] = False
    ours["mapping_kept"] = state.get_user_id_for_subject_identifier(sub) == "alice"
    for name, value in (("second_logout", sub), ("unknown", "never-issued")):
        try:
            state.delete_state_for_subject_identifier(value)
            ours[name] = "ok"
        except InvalidSubjectIdentifier:
            ours[name] = "InvalidSubjectIdentifier"
    assert pyop3 == {"code_known": False, "token_known": False, "mapping_kept": True,
                     "second_logout": "ok", "unknown": "InvalidSubjectIdentifier"}
    assert ours == pyop3
