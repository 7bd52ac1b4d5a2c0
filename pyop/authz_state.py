"""Lifecycle of authorization codes, access tokens, refresh tokens and subject identifiers.

Every state change goes through the storage contract of :mod:`pyop.storage`:
codes are redeemed with an atomic compare-and-set, so exactly one of any
number of concurrent redemptions succeeds on every backend, and a replayed
code revokes the tokens issued from it (RFC 6749 4.1.2, RFC 9700 4.14.2). A refresh
and the revocation of its grant are linearizable: the refresh writes its tokens first and
links them to the grant with one compare-and-set, the revocation takes each record of the
grant with one ``consume`` (RFC 7009 2.1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Callable, Literal, Optional, cast, overload

from ._cache import TTLCache
from .access_token import AccessToken
from .exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    InvalidRefreshToken,
    InvalidScope,
    InvalidSubjectIdentifier,
)
from .message import AuthorizationRequest
from .storage import DictStorage, MemoryStorage, StorageBase, as_storage
from .storage.base import canonical_json
from .subject_identifier import SubjectIdentifierFactory
from .util import claims_request_member

__all__ = ["AuthorizationState", "new_token_value"]

logger = logging.getLogger(__name__)

#: Maximum number of refresh tokens followed when revoking a grant.
_MAX_GRANT_CHAIN = 1000
#: Compare-and-set attempts to list an access token in its grant before the refresh is
#: refused (each failed attempt means a concurrent refresh of the same grant succeeded).
_MAX_GRANT_UPDATES = 16
#: Outcome of listing an access token in its grant (``_remember_access_token``).
_Listing = Literal["listed", "gone", "rotated", "contended"]
#: Members of a grant that its access and refresh tokens carry over (``scope`` is set apart).
_GRANT_FIELDS = ("client_id", "sub", "user_id", "claims", "user_info")
#: Members of a code record kept in its "used" record (with ``used``, ``exp``, ``issued``).
_USED_CODE_FIELDS = ("iat", "client_id", "sub", "user_id", "scope", "token_type")
#: Subject identifiers remembered as written, with ``subject_identifier_cache_ttl``.
_SUBJECT_CACHE_SIZE = 10_000
#: Access tokens remembered as issued, with ``access_token_cache_ttl``.
_ACCESS_TOKEN_CACHE_SIZE = 10_000
#: ``token_type`` of the logout marks kept with the access tokens (never an access token).
_LOGOUT_MARK = "logout"


def _logout_mark_key(subject_identifier: str) -> str:
    """The storage key of a subject identifier's logout mark: fixed length, whatever the
    ``sub``, and unlike any token value (which has no ``:``)."""
    digest = hashlib.sha256(subject_identifier.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{_LOGOUT_MARK}:{digest}"


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def new_token_value() -> str:
    """A random token value: 256 bits from :mod:`secrets` (RFC 6749 10.10)."""
    return secrets.token_urlsafe(32)


def _request_dict(request: Mapping[str, Any]) -> dict[str, Any]:
    """An authentication request (an ``oic`` message or a mapping) as a plain dict."""
    to_dict = getattr(request, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(request)


def _scope_list(scope: Any, request: Mapping[str, Any]) -> list[str]:
    """The scope of a pyop 3-style call: ``scope``, else the request's (a list, or a
    space-separated string)."""
    value = scope or request.get("scope") or []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def _check_cache_ttl(name: str, ttl: Any) -> None:
    """Reject a cache lifetime that is not None or a finite number of seconds >= 0."""
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                            or not 0 <= ttl < float("inf")):
        raise ValueError(f"{name} must be a number of seconds >= 0")


def _expired(entry: Any, now: int) -> bool:
    """Whether an ``[access token, exp]`` entry of a grant has expired (anything else is
    kept: revoking the grant still tries it)."""
    return (isinstance(entry, list) and len(entry) > 1 and isinstance(entry[1], (int, float))
            and not isinstance(entry[1], bool) and entry[1] <= now)


def _is_sealed(store: Any) -> bool:
    return callable(getattr(store, "seal", None))


#: Attempts of :func:`_merge_record` against concurrent writers of the record.
_MERGE_ATTEMPTS = 8


def _merge_record(db: StorageBase, key: str, fields: dict[str, Any]) -> Any:
    """Add ``fields`` to the subject identifier record ``key`` (created if absent),
    never replacing a field the record has; returns the record as stored (None if it
    could not be written against concurrent writers).

    A key may be both a user id (its pinned public ``sub``: ``public``, and pyop 3's
    ``pairwise`` list) and a ``sub`` (``user_id`` and ``type``): the fields are merged.
    """
    for _ in range(_MERGE_ATTEMPTS):
        current = db.get(key)
        if current is None:
            if db.add(key, fields):
                return fields
            continue
        if not isinstance(current, dict) or all(k in current for k in fields):
            return current
        merged = dict(fields)
        merged.update(current)
        if db.compare_and_set(key, current, merged):
            return merged
    logger.warning("a subject identifier record could not be written (contention)")
    return None


class AuthorizationState:
    """State of the grants the provider issued.

    :param subject_identifier_factory: creates public/pairwise subject identifiers.
    :param authorization_code_db: storage for authorization codes (a pyop
        storage, a plain dict, or ``None`` for in-memory storage).
    :param access_token_db: storage for access tokens.
    :param refresh_token_db: storage for refresh tokens.
    :param subject_identifier_db: storage mapping subject identifiers to user ids.
    :param authorization_code_lifetime: seconds a code is valid (default 600).
    :param access_token_lifetime: seconds an access token is valid (default 3600).
    :param refresh_token_lifetime: seconds a refresh token is valid; refresh
        tokens are issued only when this is > 0.
    :param refresh_token_threshold: when > 0, a refresh token whose remaining
        lifetime is below this many seconds is replaced (rotated) when used.
    :param clock: returns the current UNIX time; injectable for tests.
    :param subject_identifier_cache_ttl: seconds during which this process does not
        read or write a user's subject identifiers again once it has (off by default: the
        pinned public ``sub`` and the reverse record are read on every authorization and
        written when missing). A logout made through another
        process is then not repaired by a new login here before the entry expires.
    :param authorization_code_cache_size: how many of the codes this process issued it
        keeps in memory (least recently used first out; off by default), so that the token
        endpoint of this process redeems them without reading them back from
        ``authorization_code_db`` (see :meth:`authorization_code_for_redemption`). Entries
        expire with their code and are dropped when the code is redeemed here. Not used
        with sealed (stateless) code storage.
    :param access_token_cache_ttl: seconds during which this process answers for an access
        token it issued from memory instead of reading it back from ``access_token_db``
        (:meth:`get_access_token`, hence UserInfo and introspection; off by
        default). A revocation made through this process is seen at once (a logout too);
        one made through another process (RFC 7009 revocation, a replayed code, a revoked
        refresh token, a logout) is seen here only when the entry expires, so a revoked
        token can keep working for up to this many seconds in this process (the propagation window
        RFC 7009 2.2 asks to keep short). At most 10 000 tokens are remembered. Not used
        with sealed (stateless) access tokens.

    Two call styles are accepted by the methods pyop 3 had: pyop 3's
    (``create_authorization_code(request, sub, scope=None, user_info=None,
    extra_id_token_claims=None)``, ``create_access_token(request, sub, scope=None,
    user_info=None)``, ``use_refresh_token(refresh_token, scope=None)``), with the same
    return values and exceptions, and this library's own, which names the user and the
    client explicitly (``create_authorization_code(request, sub, user_id, scope,
    extra)``, ``create_access_token(request, sub, user_id, scope)``,
    ``use_refresh_token(refresh_token, client_id, scope, rotate=...)``; also available
    as :meth:`issue_authorization_code`, :meth:`issue_access_token` and
    :meth:`refresh_access_token`). A string in the third (second for
    ``use_refresh_token``) position is a user id (client id), a list or None a scope.
    See ``docs/migrating.rst``.

    Logout (:meth:`delete_state_for_subject_identifier`) writes a *logout mark* for the
    subject identifier, and every grant issued for that ``sub`` up to the logout is refused
    from then on: see :meth:`delete_state_for_subject_identifier`.
    """

    #: Member of a code record holding the authentication request (pyop 3 name).
    KEY_AUTHORIZATION_REQUEST = "auth_req"
    #: Member of a grant record holding the end-user's claims it may release (pyop 3 name).
    KEY_USER_INFO = "user_info"
    #: Member of a code record holding the extra ID token claims (pyop 3 name).
    KEY_EXTRA_ID_TOKEN_CLAIMS = "extra_id_token_claims"

    def __init__(
        self,
        subject_identifier_factory: SubjectIdentifierFactory,
        authorization_code_db: Optional[Any] = None,
        access_token_db: Optional[Any] = None,
        refresh_token_db: Optional[Any] = None,
        subject_identifier_db: Optional[Any] = None,
        *,
        authorization_code_lifetime: int = 600,
        access_token_lifetime: int = 60 * 60,
        refresh_token_lifetime: Optional[int] = None,
        refresh_token_threshold: Optional[int] = None,
        clock: Callable[[], float] = time.time,
        subject_identifier_cache_ttl: Optional[float] = None,
        authorization_code_cache_size: Optional[int] = None,
        access_token_cache_ttl: Optional[float] = None,
    ) -> None:
        self.subject_identifier_factory = subject_identifier_factory
        self.clock = clock
        _check_cache_ttl("subject_identifier_cache_ttl", subject_identifier_cache_ttl)
        #: sub -> user_id of the mappings this process wrote recently
        self._written_subjects: Optional[TTLCache[str]] = None
        #: user_id -> the user's pinned public sub, read or written recently
        self._pinned_subjects: Optional[TTLCache[str]] = None
        if subject_identifier_cache_ttl:
            self._written_subjects = TTLCache(subject_identifier_cache_ttl, _SUBJECT_CACHE_SIZE,
                                              lambda: self.clock())
            self._pinned_subjects = TTLCache(subject_identifier_cache_ttl, _SUBJECT_CACHE_SIZE,
                                             lambda: self.clock())
        if authorization_code_cache_size is not None and (
                isinstance(authorization_code_cache_size, bool)
                or not isinstance(authorization_code_cache_size, int)
                or authorization_code_cache_size < 1):
            raise ValueError("authorization_code_cache_size must be an integer >= 1 (or None)")
        self.authorization_codes: StorageBase = self._as_storage(authorization_code_db)
        #: code -> canonical JSON of the record, for the unredeemed codes this process
        #: issued; an entry expires at its code's ``exp``
        self._issued_codes: Optional[TTLCache[str]] = None
        if authorization_code_cache_size is not None and not _is_sealed(
                self.authorization_codes):
            self._issued_codes = TTLCache(float(authorization_code_lifetime),
                                          authorization_code_cache_size, lambda: self.clock())
        self.access_tokens: StorageBase = self._as_storage(access_token_db)
        _check_cache_ttl("access_token_cache_ttl", access_token_cache_ttl)
        #: access token value -> canonical JSON of its record, for the tokens this process
        #: issued less than ``access_token_cache_ttl`` seconds ago (and not revoked here)
        self._issued_access_tokens: Optional[TTLCache[str]] = None
        if access_token_cache_ttl and not _is_sealed(self.access_tokens):
            self._issued_access_tokens = TTLCache(float(access_token_cache_ttl),
                                                  _ACCESS_TOKEN_CACHE_SIZE,
                                                  lambda: self.clock())
        #: sub -> time of its logout through this process, for as long as a cached access
        #: token issued before it may be answered from memory
        self._local_logouts: Optional[TTLCache[float]] = None
        if self._issued_access_tokens is not None:
            self._local_logouts = TTLCache(float(access_token_cache_ttl or 0),
                                           _ACCESS_TOKEN_CACHE_SIZE, lambda: self.clock())
        self.refresh_tokens: StorageBase = self._as_storage(refresh_token_db)
        self.subject_identifiers: StorageBase = self._as_storage(subject_identifier_db)
        #: sub -> user_id of the subject identifiers made by this process when their store
        #: is sealed, which records nothing (pyop 3's stateless mode kept them in memory):
        #: for :meth:`get_user_id_for_subject_identifier` in this process, bounded, and
        #: kept as long as a code or access token may be used
        self._sealed_subjects: Optional[TTLCache[str]] = None
        if _is_sealed(self.subject_identifiers):
            self._sealed_subjects = TTLCache(
                float(max(authorization_code_lifetime, access_token_lifetime)),
                _SUBJECT_CACHE_SIZE, lambda: self.clock())
        self.authorization_code_lifetime = authorization_code_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.refresh_token_threshold = refresh_token_threshold

    # -- helpers -------------------------------------------------------------------------------

    def _as_storage(self, db: Any) -> StorageBase:
        """The storage for ``db``; stores created here (None, plain dicts) use our clock."""
        if db is None:
            return MemoryStorage(clock=self.clock)
        if isinstance(db, StorageBase):
            return db
        if isinstance(db, MutableMapping):
            return DictStorage(db, clock=self.clock)
        return as_storage(db)

    def _now(self) -> int:
        return int(self.clock())

    @staticmethod
    def _store(db: StorageBase, record: dict[str, Any], expires_at: int,
               value: Optional[str] = None) -> str:
        if _is_sealed(db):
            sealed: str = db.seal(record, expires_at)  # type: ignore[attr-defined]
            return sealed
        value = value or new_token_value()
        db.set(value, record, expires_at=expires_at)
        return value

    def _live(self, db: StorageBase, value: Any) -> Optional[dict[str, Any]]:
        """The live record of a token value, or None (unknown, expired, malformed)."""
        if not isinstance(value, str) or not value or len(value) > 4096:
            return None
        record = db.get(value)
        if not isinstance(record, dict):
            return None
        if record.get("exp", 0) <= self._now():
            return None
        return record

    @property
    def stateless(self) -> bool:
        """Whether codes, access tokens or refresh tokens are sealed (stateless), as
        pyop 3's attribute of that name: their records then travel in the values, with
        the claims they may release (:attr:`KEY_USER_INFO`)."""
        return any(_is_sealed(db) for db in (self.authorization_codes, self.access_tokens,
                                             self.refresh_tokens))

    @property
    def issues_refresh_tokens(self) -> bool:
        """Whether refresh tokens are issued (``refresh_token_lifetime`` > 0)."""
        return bool(self.refresh_token_lifetime and self.refresh_token_lifetime > 0)

    # -- subject identifiers (OIDC Core 8) -----------------------------------------------------

    def get_subject_identifier(self, subject_type: str, user_id: str,
                               sector_identifier: Optional[str] = None) -> str:
        """The ``sub`` of a user for a subject type, recorded for keyed reverse lookup.

        A user's ``public`` identifier is pinned, as pyop 3 did: the first one recorded
        for the user (under the user id, ``{"public": sub}``, pyop 3's record included)
        is returned from then on, even if the factory (its salt) changes. ``pairwise``
        identifiers are computed every time (OIDC Core 8.1). Every ``sub`` returned is
        recorded under itself as ``{"user_id": ..., "type": ...}`` for
        :meth:`get_user_id_for_subject_identifier`. See "Subject identifier records"
        in ``docs/storage.rst``.

        :param subject_type: ``public`` or ``pairwise``.
        :param user_id: the host's local user id.
        :param sector_identifier: the client's sector identifier (required for
            ``pairwise``, OIDC Core 8.1): by default the ``host[:port]`` of its
            sector_identifier_uri or of the request's redirect_uri, see
            :meth:`Provider.subject_identifier_for <pyop.provider.Provider.subject_identifier_for>`.
        :raises ValueError: unknown subject type or missing sector identifier.
        """
        db = self.subject_identifiers
        sealed = _is_sealed(db)
        if subject_type == "public":
            pinned = None if sealed else self._pinned_public_identifier(user_id)
            sub = pinned or self.subject_identifier_factory.create_public_identifier(user_id)
        elif subject_type == "pairwise":
            if not sector_identifier:
                raise ValueError("pairwise subject identifiers need a sector identifier")
            sub = self.subject_identifier_factory.create_pairwise_identifier(
                user_id, sector_identifier)
        else:
            raise ValueError(f"unknown subject_type {subject_type!r}")
        if sealed:
            if self._sealed_subjects is not None:
                self._sealed_subjects.put(sub, user_id)
            return sub
        written = self._written_subjects
        if written is not None and written.get(sub) == user_id:
            return sub  # written by this process less than subject_identifier_cache_ttl ago
        if subject_type == "public" and pinned is None:
            # pin it; a concurrent first login that pinned another one first wins
            record = _merge_record(db, user_id, {"public": sub})
            if isinstance(record, dict) and isinstance(record.get("public"), str):
                sub = record["public"]
        if subject_type == "public" and self._pinned_subjects is not None:
            self._pinned_subjects.put(user_id, sub)
        # the reverse record, checked on every authorization (without the cache), so a
        # logout or a store change made by another process is always repaired
        record = _merge_record(db, sub, {"user_id": user_id, "type": subject_type})
        if isinstance(record, dict) and record.get("user_id") != user_id:
            logger.warning("a %s subject identifier is recorded for another user: the "
                           "record is kept", subject_type)
        elif written is not None:
            written.put(sub, user_id)
        return sub

    def record_subject_identifier(self, subject_identifier: str, user_id: str,
                                  subject_type: str = "public") -> None:
        """Record a ``sub`` chosen outside the factory (the user record's own ``sub``
        claim, as pyop 3 issued it) for keyed reverse lookup ``sub -> user_id``.

        The host's user data decides: a ``sub`` recorded for another user is moved to
        this one (and a warning logged).
        """
        db = self.subject_identifiers
        if _is_sealed(db):
            return
        written = self._written_subjects
        if written is not None and written.get(subject_identifier) == user_id:
            return
        record = {"user_id": user_id, "type": subject_type}
        if not db.add(subject_identifier, record):
            current = db.get(subject_identifier)
            if not isinstance(current, dict) or current.get("user_id") != user_id:
                logger.warning("a subject identifier from a user record was recorded for "
                               "another user; it now resolves to the new one")
                db.set(subject_identifier, record)
        if written is not None:
            written.put(subject_identifier, user_id)

    def _pinned_public_identifier(self, user_id: str) -> Optional[str]:
        """The public ``sub`` recorded under the user id (by pyop 3 or this library)."""
        if not isinstance(user_id, str):
            return None
        cache = self._pinned_subjects
        if cache is not None:
            hit = cache.get(user_id)
            if hit is not None:
                return hit
        record = self.subject_identifiers.get(user_id)
        if isinstance(record, dict) and isinstance(record.get("public"), str) \
                and record["public"]:
            return str(record["public"])
        return None

    def get_user_id_for_subject_identifier(self, subject_identifier: str) -> str:
        """Keyed reverse lookup ``sub -> user_id``; :class:`InvalidSubjectIdentifier` if unknown.

        With a sealed (stateless) subject identifier store, which records nothing, only
        the subject identifiers this process made recently are known (as in pyop 3's
        stateless mode, which kept them in memory).
        """
        sealed = self._sealed_subjects
        if sealed is not None:
            user_id = sealed.get(subject_identifier) if isinstance(
                subject_identifier, str) else None
            if user_id is None:
                raise InvalidSubjectIdentifier("unknown subject identifier")
            return user_id
        record = self.subject_identifiers.get(subject_identifier) if isinstance(
            subject_identifier, str) else None
        if not isinstance(record, dict) or "user_id" not in record:
            raise InvalidSubjectIdentifier("unknown subject identifier")
        return str(record["user_id"])

    def delete_state_for_subject_identifier(self, subject_identifier: str) -> None:
        """Log the end-user out of this ``sub``: revoke every grant issued for it so far
        (OIDC RP-Initiated Logout 1.0, 2; what pyop 3's logout deleted, and more).

        Revoked: the authorization codes, access tokens and refresh tokens issued for
        ``subject_identifier`` up to and including the instant of the logout (by the
        provider's clock, against the ``issued_at`` each record keeps), whichever client
        they were issued to -- for a pairwise ``sub`` that is the clients of one sector
        (OIDC Core 8.1), for a public ``sub`` every client that got it -- and the tokens
        later obtained from them (a racing refresh or code redemption issues tokens dated
        before the logout, refused as well). Not revoked:
        ``client_credentials`` tokens (no end-user, RFC 6749 4.4), the grants of the user's
        other subject identifiers (another sector's pairwise ``sub``), grants issued after
        the logout, and ID tokens already sent (self-contained, OIDC Core 2).

        No grant is looked for: one keyed write stores a *logout mark* (the time of the
        logout) under a key derived from the ``sub``, with the access tokens (in the replay
        cache of sealed, stateless access tokens), until the longest code or token lifetime
        has passed; code redemption, refresh, UserInfo and introspection read it and refuse
        a grant issued at or before it (RFC 7009 2.1 asks the same of a revoked grant). The
        subject identifier record is kept, as in pyop 3: the ``sub`` stays known to
        :meth:`get_user_id_for_subject_identifier`, and a second logout is no error.

        :raises InvalidSubjectIdentifier: not a string, or (unless the subject identifier
            store is sealed, so knows no ``sub``) a ``sub`` that was never issued.
        """
        if not isinstance(subject_identifier, str) or not subject_identifier:
            raise InvalidSubjectIdentifier("unknown subject identifier")
        if not _is_sealed(self.subject_identifiers):
            self.get_user_id_for_subject_identifier(subject_identifier)
        now = float(self.clock())
        local = self._local_logouts
        if local is not None:
            # before the mark is stored: a cached token of this sub is refused from now on
            local.put(subject_identifier, now)
            issued = self._issued_access_tokens
            if issued is not None and len(local) >= local.max_size:
                issued.clear()  # marks may be evicted: the cached tokens go too
        self._write_logout_mark(subject_identifier, now)
        logger.info("logout: the grants of a subject identifier were revoked")

    def _logout_mark_store(self) -> StorageBase:
        """Where logout marks are kept: with the access tokens, in the replay cache when
        they are sealed (read where the tokens are, shared where they are)."""
        tokens = self.access_tokens
        if _is_sealed(tokens):
            cache = getattr(tokens, "replay_cache", None)
            if isinstance(cache, StorageBase):
                return cache
            return self.subject_identifiers
        return tokens

    def _write_logout_mark(self, subject_identifier: str, now: float) -> None:
        """Store (or move forward) the logout mark of ``subject_identifier``."""
        store = self._logout_mark_store()
        key = _logout_mark_key(subject_identifier)
        lifetime = max(self.authorization_code_lifetime, self.access_token_lifetime,
                       self.refresh_token_lifetime or 0)
        expires_at = now + lifetime + 1
        mark = {"token_type": _LOGOUT_MARK, "sub": subject_identifier, "logged_out_at": now}
        for _ in range(_MAX_GRANT_UPDATES):
            if store.add(key, mark, expires_at=expires_at):
                return
            current = store.get(key)
            if not isinstance(current, dict):
                continue  # expired or removed meanwhile: add again
            marked: Any = current.get("logged_out_at")
            if _is_time(marked) and marked >= now:
                return  # a logout at the same time or later is already marked
            if store.compare_and_set(key, current, mark, expires_at=expires_at):
                return
        store.set(key, mark, expires_at=expires_at)

    def _logged_out_at(self, subject_identifier: str) -> Optional[float]:
        """The time of the last marked logout of ``subject_identifier``, or None."""
        mark = self._logout_mark_store().get(_logout_mark_key(subject_identifier))
        if not isinstance(mark, dict) or mark.get("token_type") != _LOGOUT_MARK:
            return None
        at: Any = mark.get("logged_out_at")
        return float(at) if _is_time(at) else None

    @staticmethod
    def _issued_by(record: Mapping[str, Any], logged_out_at: Optional[float]) -> bool:
        """Whether a grant record was issued at or before a logout: by its ``issued_at``
        (the clock's reading), else by its ``iat`` second (a record of an earlier version:
        the second of the logout counts as before it); an undated one is."""
        if logged_out_at is None:
            return False
        issued_at: Any = record.get("issued_at")
        if _is_time(issued_at):
            return bool(issued_at <= logged_out_at)
        iat: Any = record.get("iat")
        return not _is_time(iat) or iat <= logged_out_at

    def _revoked_by_logout(self, record: Mapping[str, Any]) -> bool:
        """Whether the end-user of a grant record logged out since it was issued (one
        keyed read; False for a grant without end-user, ``client_credentials``)."""
        sub = record.get("sub")
        if not isinstance(sub, str):
            return False
        return self._issued_by(record, self._logged_out_at(sub))

    def _locally_logged_out(self, record: Mapping[str, Any]) -> bool:
        """:meth:`_revoked_by_logout` for the logouts made through this process only
        (no read: for the tokens this process answers from memory)."""
        local = self._local_logouts
        sub = record.get("sub")
        if local is None or not isinstance(sub, str):
            return False
        return self._issued_by(record, local.get(sub))

    # -- authorization codes (RFC 6749 4.1.2) --------------------------------------------------

    def create_authorization_code(self, authorization_request: Mapping[str, Any],
                                  subject_identifier: str, scope: Any = None,
                                  user_info: Any = None, extra_id_token_claims: Any = None,
                                  *, user_id: Optional[str] = None,
                                  extra: Optional[Mapping[str, Any]] = None) -> str:
        """Issue an authorization code (RFC 6749 4.1.2), in either call style.

        pyop 3's: ``(authorization_request, subject_identifier, scope=None,
        user_info=None, extra_id_token_claims=None)``. The subject identifier must be
        known (:meth:`get_subject_identifier` made it), else
        :class:`InvalidSubjectIdentifier`; ``scope`` defaults to the request's. As in
        pyop 3, ``user_info`` and ``extra_id_token_claims`` are kept with the code only
        when codes are sealed (:attr:`stateless`), which then carry them to the tokens
        issued from the code; server-side stores read the claims from the user source
        when they are released.

        This library's: ``(authorization_request, subject_identifier, user_id, scope,
        extra=None)``, see :meth:`issue_authorization_code`.
        """
        if isinstance(scope, str) or user_id is not None:
            if user_id is None:  # (request, sub, user_id, scope[, extra])
                user_id, scope, extra = scope, user_info, extra or extra_id_token_claims
            return self.issue_authorization_code(authorization_request, subject_identifier,
                                                 user_id, scope, extra)
        user = self._user_id_for_pyop3(subject_identifier)
        data: dict[str, Any] = {}
        if _is_sealed(self.authorization_codes):
            if user_info:
                data[self.KEY_USER_INFO] = dict(user_info)
            data[self.KEY_EXTRA_ID_TOKEN_CLAIMS] = dict(extra_id_token_claims or {})
        return self.issue_authorization_code(
            _request_dict(authorization_request), subject_identifier, user,
            _scope_list(scope, authorization_request), data)

    def _user_id_for_pyop3(self, subject_identifier: Any) -> str:
        """The user id of a ``sub`` given to a pyop 3-style call.

        :raises InvalidSubjectIdentifier: unknown ``sub`` (with a sealed subject
            identifier store: one this process did not make recently, as in pyop 3's
            stateless mode, which kept them in memory).
        """
        return self.get_user_id_for_subject_identifier(subject_identifier)

    def issue_authorization_code(self, authorization_request: Mapping[str, Any],
                                 subject_identifier: str, user_id: str,
                                 scope: Sequence[str],
                                 extra: Optional[Mapping[str, Any]] = None) -> str:
        """Issue an authorization code bound to the request, user and granted scope.

        :param extra: further data to keep with the code (``auth_time``, ``acr``...,
            :attr:`KEY_EXTRA_ID_TOKEN_CLAIMS`, and :attr:`KEY_USER_INFO`: the claims the
            grant may release, carried over to its access and refresh tokens).
        """
        issued_at = float(self.clock())
        now = int(issued_at)
        record: dict[str, Any] = {
            "exp": now + self.authorization_code_lifetime,
            "iat": now,
            "issued_at": issued_at,
            "client_id": authorization_request["client_id"],
            "sub": subject_identifier,
            "user_id": user_id,
            "scope": " ".join(scope),
            "auth_req": dict(authorization_request),
            "token_type": "authorization_code",
        }
        if extra:
            record.update(extra)
        code = self._store(self.authorization_codes, record, record["exp"])
        issued = self._issued_codes
        if issued is not None:
            # the record as storage holds it (JSON), so a hit returns what a read would;
            # never kept past the code's exp
            try:
                raw = canonical_json(record)
            except (TypeError, ValueError):  # not JSON (a plain dict store keeps it as is)
                return code
            issued.put(code, raw, expires_at=record["exp"])
        return code

    def get_authorization_code(self, authorization_code: Any) -> dict[str, Any]:
        """The record of an unexpired code (used or not); :class:`InvalidAuthorizationCode`."""
        record = self._live(self.authorization_codes, authorization_code)
        if record is None or record.get("token_type") != "authorization_code":
            raise InvalidAuthorizationCode("unknown or expired authorization code")
        return record

    def authorization_code_for_redemption(self, authorization_code: Any
                                          ) -> tuple[dict[str, Any], bool]:
        """The record of a code about to be redeemed, and whether it came from this
        process's cache of the codes it issued (``authorization_code_cache_size``).

        A code record does not change until the code is redeemed, and
        :meth:`redeem_authorization_code` marks it used with a compare-and-set against
        the whole record, so a cached record is safe to redeem with: if another process
        redeemed the code meanwhile, the compare-and-set fails and the tokens issued from
        it are revoked, as with a record read from storage (RFC 6749 4.1.2). A cached
        record is always unused; a caller whose checks fail on it must read the stored
        record (:meth:`get_authorization_code`) and decide on that one, since the code
        may have been used meanwhile (a replay must still revoke). Without a cache entry
        (cache off, another process issued the code, expired, evicted) this reads
        storage like :meth:`get_authorization_code`.

        :raises InvalidAuthorizationCode: unknown or expired code.
        """
        issued = self._issued_codes
        if issued is not None and isinstance(authorization_code, str):
            raw = issued.get(authorization_code)
            if raw is not None:
                record: dict[str, Any] = json.loads(raw)
                if record.get("token_type") == "authorization_code":  # as a read checks
                    return record, True
        return self.get_authorization_code(authorization_code), False

    def checked_authorization_code(self, authorization_code: Any,
                                   check: Callable[[Mapping[str, Any]], None]
                                   ) -> dict[str, Any]:
        """The record of a code about to be redeemed, once ``check`` accepts it
        (RFC 6749 4.1.3: same client, redirect_uri, PKCE verifier).

        The record comes from :meth:`authorization_code_for_redemption`. When ``check``
        raises :class:`InvalidAuthorizationCode` on a record of this process's cache, the
        stored record decides, as without the cache: the code may have been used since,
        and then a replay revokes the tokens issued from it (RFC 6749 4.1.2). The cache
        entry is forgotten when the stored record is gone or differs.

        :raises InvalidAuthorizationCode: unknown or expired code, or ``check`` refused
            the record.
        """
        record, cached = self.authorization_code_for_redemption(authorization_code)
        if not cached:
            check(record)
            return record
        try:
            check(record)
        except InvalidAuthorizationCode:
            try:
                stored = self.get_authorization_code(authorization_code)
            except InvalidAuthorizationCode:
                self.forget_issued_authorization_code(authorization_code)
                raise
            if stored != record:  # used (or changed) since: the entry is stale
                self.forget_issued_authorization_code(authorization_code)
            check(stored)
            return stored
        return record

    def forget_issued_authorization_code(self, authorization_code: Any) -> None:
        """Drop a code from this process's cache of issued codes (no error if absent)."""
        if self._issued_codes is not None and isinstance(authorization_code, str):
            self._issued_codes.discard(authorization_code)

    def redeem_authorization_code(
            self, authorization_code: str, record: Mapping[str, Any], *,
            access_token_value: Optional[str] = None,
            issue_refresh_token: bool = True) -> tuple[AccessToken, Optional[str]]:
        """Exchange a code for an access token (and refresh token), exactly once.

        The code record is atomically replaced by a "used" record naming the
        tokens issued; a second redemption finds it and revokes those tokens
        (RFC 6749 4.1.2). On sealed (stateless) storage the replay cache makes
        the code single-use.

        The code leaves this process's cache of issued codes
        (``authorization_code_cache_size``), whatever the outcome.

        :param access_token_value: the value of the access token to issue, made by the
            caller with :func:`new_token_value` so that it can compute the ID token's
            ``at_hash`` (OIDC Core 3.1.3.6) before the redemption completes; generated
            here when None. Not with sealed (stateless) access tokens, whose value is
            the sealed record (:attr:`access_token_values_are_random` is False).
        :param issue_refresh_token: False issues no refresh token (even when
            ``refresh_token_lifetime`` is set): pyop 3's :meth:`exchange_code_for_token`
            left that to :meth:`create_refresh_token`.
        :raises InvalidAuthorizationCode: the code was already used, or the end-user
            logged out since it was issued (:meth:`delete_state_for_subject_identifier`).
        :raises ValueError: ``access_token_value`` given with sealed access tokens.
        """
        if access_token_value is not None and not self.access_token_values_are_random:
            raise ValueError("sealed access tokens: their value cannot be chosen in advance")
        self.forget_issued_authorization_code(authorization_code)
        issued_at = float(self.clock())
        now = int(issued_at)
        access_value = access_token_value or new_token_value()
        refresh_value = (new_token_value() if self.issues_refresh_tokens and issue_refresh_token
                         else None)
        grant = {
            "client_id": record["client_id"],
            "sub": record["sub"],
            "user_id": record["user_id"],
            "scope": record["scope"],
            "claims": claims_request_member(record.get("auth_req", {}), "userinfo") or None,
            "issued_at": issued_at,
        }
        user_info = record.get(self.KEY_USER_INFO)
        if isinstance(user_info, dict):  # the claims a sealed grant may release
            grant[self.KEY_USER_INFO] = user_info
        codes = self.authorization_codes
        access_token: Optional[AccessToken] = None
        refresh_token: Optional[str] = None
        # the tokens are dated ``issued_at``, taken before this read: if the logout comes
        # after it, they are refused at use
        if not record.get("used") and self._revoked_by_logout(record):
            raise InvalidAuthorizationCode("the end-user logged out after the code was issued")
        if _is_sealed(codes):
            if codes.consume(authorization_code) is None:
                raise InvalidAuthorizationCode("authorization code already used")
        else:
            if record.get("used"):
                self._revoke_code_grant(record)
                raise InvalidAuthorizationCode("authorization code already used")
            # the "used" record outlives the code, so a late replay still revokes the tokens;
            # it keeps what a replay needs, not the authentication request (half the bytes
            # to serialise and store)
            keep_until = max(int(record["exp"]), now + self.access_token_lifetime)
            used = {name: record[name] for name in _USED_CODE_FIELDS if name in record}
            used["used"] = True
            used["exp"] = keep_until
            used["issued"] = {"access_token": access_value, "refresh_token": refresh_value}
            tokens = self.access_tokens
            if refresh_value is not None and not _is_sealed(self.refresh_tokens) \
                    and not _is_sealed(tokens):
                # written before the code is marked used, so a replay that finds the code
                # used finds this token too and revokes it (no window after the mark);
                # removed again if this redemption loses or the storage fails
                refresh_token = self._create_refresh_token(grant, access_value, now,
                                                           refresh_value)
            try:
                if _is_sealed(tokens):
                    replaced = codes.compare_and_set(authorization_code, record, used,
                                                     expires_at=keep_until)
                else:
                    # the access token is stored only if the code was marked used: one
                    # round trip for both where the backend allows it (Redis, PostgreSQL);
                    # remembered before, so that a replay revoking it as soon as the code
                    # is marked used forgets it here too
                    access_record = self._access_token_record(grant, now)
                    self._cache_issued_access_token(access_value, access_record)
                    replaced = codes.compare_and_set_then_set(
                        authorization_code, record, used, keep_until,
                        tokens, access_value, access_record, access_record["exp"])
            except Exception:
                self._forget_access_token(access_value)
                self._discard_refresh_token(refresh_token)
                raise
            if replaced and not _is_sealed(tokens):
                access_token = AccessToken(access_value, self.access_token_lifetime)
            if not replaced:
                self._forget_access_token(access_value)
                self._discard_refresh_token(refresh_token)
                current = codes.get(authorization_code)
                if not isinstance(current, dict):
                    # gone since the record was read or cached (expired, deleted): the
                    # answer a read would have given
                    raise InvalidAuthorizationCode("unknown or expired authorization code")
                logger.warning("concurrent or repeated redemption of an authorization code")
                self._revoke_code_grant(current)
                raise InvalidAuthorizationCode("authorization code already used")

        if access_token is None:
            access_token = self._create_access_token(grant, now, access_value)
        if refresh_value is not None and refresh_token is None:
            refresh_token = self._create_refresh_token(grant, access_token.value, now,
                                                       refresh_value)
        return access_token, refresh_token

    @property
    def access_token_values_are_random(self) -> bool:
        """Whether access token values are random strings known before the token is
        stored (every storage but sealed, stateless ones, whose value is the sealed
        record): :meth:`redeem_authorization_code` then accepts ``access_token_value``."""
        return not _is_sealed(self.access_tokens)

    def _discard_refresh_token(self, refresh_token: Optional[str]) -> None:
        """Remove a refresh token written for a redemption that did not complete (it was
        never sent); a storage failure here is logged, the token is unknown to anyone."""
        if refresh_token is None:
            return
        try:
            self.refresh_tokens.delete(refresh_token)
        except Exception:  # noqa: BLE001 - the original outcome is what the caller needs
            logger.warning("could not remove the refresh token of an incomplete redemption")

    def _revoke_code_grant(self, used_record: Mapping[str, Any]) -> None:
        issued = used_record.get("issued") or {}
        access = issued.get("access_token")
        if isinstance(access, str):
            self._delete_access_token(access)
        refresh = issued.get("refresh_token")
        if isinstance(refresh, str):
            self.revoke_refresh_token(refresh)
        logger.warning("authorization code replayed: tokens issued from it were revoked")

    # -- access tokens (RFC 6750) --------------------------------------------------------------

    def _access_token_record(self, grant: Mapping[str, Any], now: int) -> dict[str, Any]:
        record = dict(grant)
        record["iat"] = now
        record["exp"] = now + self.access_token_lifetime
        record["token_type"] = "access_token"
        return record

    def _create_access_token(self, grant: Mapping[str, Any], now: int,
                             value: Optional[str] = None) -> AccessToken:
        record = self._access_token_record(grant, now)
        if self._issued_access_tokens is not None:  # never with sealed access tokens
            # remembered before it is stored: the value may already be known (a refresh
            # token's grant lists it), and a revocation in this process made as soon as it
            # is stored must find the entry to forget it
            value = value or new_token_value()
            self._cache_issued_access_token(value, record)
        try:
            stored = self._store(self.access_tokens, record, record["exp"], value)
        except Exception:
            if value is not None:
                self._forget_access_token(value)
            raise
        return AccessToken(stored, self.access_token_lifetime)

    def _cache_issued_access_token(self, value: str, record: Mapping[str, Any]) -> None:
        """Remember a token this process is storing (``access_token_cache_ttl``)."""
        issued = self._issued_access_tokens
        if issued is None:
            return
        try:
            raw = canonical_json(record)
        except (TypeError, ValueError):  # not JSON (a plain dict store keeps it as is)
            return
        issued.put(value, raw, expires_at=record["exp"])

    def _forget_access_token(self, value: Any) -> None:
        """Drop an access token from this process's cache (no error if absent)."""
        if self._issued_access_tokens is not None and isinstance(value, str):
            self._issued_access_tokens.discard(value)

    def _delete_access_token(self, value: str) -> bool:
        """Delete a stored access token and forget it in this process; True if it was stored."""
        self._forget_access_token(value)
        return bool(self.access_tokens.delete(value))

    def create_access_token(self, authorization_request: Mapping[str, Any],
                            subject_identifier: str, scope: Any = None,
                            user_info: Any = None, *, user_id: Optional[str] = None
                            ) -> AccessToken:
        """Issue an access token directly (implicit and hybrid flows, OIDC Core 3.2.2.5),
        in either call style.

        pyop 3's: ``(authorization_request, subject_identifier, scope=None,
        user_info=None)``; :class:`InvalidSubjectIdentifier` for an unknown ``sub``;
        ``user_info`` is carried by the token only when access tokens are sealed.
        This library's: ``(authorization_request, subject_identifier, user_id, scope)``,
        see :meth:`issue_access_token`.
        """
        if isinstance(scope, str) or user_id is not None:
            if user_id is None:  # (request, sub, user_id, scope)
                user_id, scope = scope, user_info
            return self.issue_access_token(authorization_request, subject_identifier,
                                           user_id, scope)
        user = self._user_id_for_pyop3(subject_identifier)
        carried = dict(user_info) if user_info and _is_sealed(self.access_tokens) else None
        return self.issue_access_token(authorization_request, subject_identifier, user,
                                       _scope_list(scope, authorization_request),
                                       user_info=carried)

    def issue_access_token(self, authorization_request: Mapping[str, Any],
                           subject_identifier: str, user_id: str, scope: Sequence[str],
                           *, user_info: Optional[Mapping[str, Any]] = None) -> AccessToken:
        """Issue an access token directly (implicit and hybrid flows, OIDC Core 3.2.2.5).

        :param user_info: the end-user's claims the token may release
            (:attr:`KEY_USER_INFO`), kept in its record.
        """
        grant = {
            "client_id": authorization_request["client_id"],
            "sub": subject_identifier,
            "user_id": user_id,
            "scope": " ".join(scope),
            "claims": claims_request_member(authorization_request, "userinfo") or None,
            "issued_at": float(self.clock()),
        }
        if user_info is not None:
            grant[self.KEY_USER_INFO] = dict(user_info)
        return self._create_access_token(grant, int(grant["issued_at"]))

    def create_client_access_token(self, client_id: str, scope: Sequence[str]) -> AccessToken:
        """Issue an access token to a client for itself (``client_credentials``, RFC 6749 4.4).

        The record has the client and the scope, and no ``sub`` or ``user_id``: no
        end-user is involved. No refresh token goes with it (RFC 6749 4.4.3).
        """
        grant = {"client_id": client_id, "scope": " ".join(scope),
                 "grant_type": "client_credentials"}
        return self._create_access_token(grant, self._now())

    def introspect_access_token(self, access_token_value: Any) -> dict[str, Any]:
        """What pyop 3 answered about a live access token (RFC 7662 2.2 members).

        ``{"active": True, "scope", "client_id", "token_type": "Bearer", "exp", "iat",
        "sub", "aud": [client_id]}`` (no ``sub`` for a ``client_credentials`` token).
        The token's full record is :meth:`get_access_token`.

        :raises InvalidAccessToken: unknown, expired or revoked token (pyop 3 answered
            ``active: False`` for an expired token it still stored; storage backends
            here drop expired records).
        """
        record = self.get_access_token(access_token_value)
        result: dict[str, Any] = {"active": True}
        for name in ("scope", "client_id", "exp", "iat", "sub"):
            if name in record:
                result[name] = record[name]
        if "client_id" in record:
            result["aud"] = [record["client_id"]]
        result["token_type"] = AccessToken.BEARER_TOKEN_TYPE
        return result

    def get_access_token(self, access_token_value: Any) -> dict[str, Any]:
        """The live record of an access token; :class:`InvalidAccessToken` if none.

        A token whose end-user logged out since it was issued is refused
        (:meth:`delete_state_for_subject_identifier`). With ``access_token_cache_ttl``, a
        token this process issued less than that many seconds ago (and did not revoke, nor
        its end-user log out through this process) is answered from memory, without
        reading ``access_token_db`` or the logout mark.
        """
        issued = self._issued_access_tokens
        if issued is not None and isinstance(access_token_value, str):
            raw = issued.get(access_token_value)
            if raw is not None:
                cached: dict[str, Any] = json.loads(raw)
                if cached.get("exp", 0) > self._now() and not self._locally_logged_out(cached):
                    return cached
                issued.discard(access_token_value)
        record = self._live(self.access_tokens, access_token_value)
        if record is None or record.get("token_type") != "access_token" \
                or self._revoked_by_logout(record):
            raise InvalidAccessToken("the access token is unknown, expired or revoked")
        return record

    def revoke_access_token(self, access_token_value: str) -> bool:
        """Revoke an access token; True if it was live."""
        return self._delete_access_token(access_token_value)

    # -- refresh tokens (RFC 6749 6) -----------------------------------------------------------

    def _refresh_token_record(self, grant: Mapping[str, Any], access_token_value: str,
                              now: int) -> dict[str, Any]:
        record = dict(grant)
        record["iat"] = now
        record["exp"] = now + (self.refresh_token_lifetime or 0)
        record["token_type"] = "refresh_token"
        record["access_tokens"] = [[access_token_value, now + self.access_token_lifetime]]
        return record

    def _create_refresh_token(self, grant: Mapping[str, Any], access_token_value: str,
                              now: int, value: Optional[str] = None) -> str:
        record = self._refresh_token_record(grant, access_token_value, now)
        return self._store(self.refresh_tokens, record, record["exp"], value)

    @overload
    def use_refresh_token(self, refresh_token: Any, scope: Optional[list[str]] = None
                          ) -> tuple[AccessToken, Optional[str]]: ...

    @overload
    def use_refresh_token(self, refresh_token: Any, client_id: str,
                          scope: Optional[Sequence[str]] = None, *, rotate: bool = False
                          ) -> tuple[AccessToken, Optional[str], dict[str, Any]]: ...

    def use_refresh_token(self, refresh_token: Any, *args: Any, **kwargs: Any) -> Any:
        """Issue a new access token from a refresh token (RFC 6749 6), in either call style.

        pyop 3's: ``use_refresh_token(refresh_token, scope=None)`` returns
        ``(access_token, new_refresh_token or None)``; the token's own client is used.
        This library's: ``use_refresh_token(refresh_token, client_id, scope=None,
        rotate=False)`` returns the grant record too, see :meth:`refresh_access_token`.

        :raises InvalidRefreshToken: unknown, expired or replayed refresh token.
        :raises InvalidScope: ``scope`` wider than the grant.
        """
        first = args[0] if args else kwargs.get("client_id")
        if isinstance(first, str) or "client_id" in kwargs or "rotate" in kwargs:
            return self.refresh_access_token(refresh_token, *args, **kwargs)
        if len(args) > 1 or set(kwargs) - {"scope"}:
            raise TypeError("use_refresh_token(refresh_token, scope=None) or "
                            "use_refresh_token(refresh_token, client_id, scope=None, *, "
                            "rotate=False)")
        scope = args[0] if args else kwargs.get("scope")
        record = self.get_refresh_token(refresh_token)
        if record is None:
            raise InvalidRefreshToken("unknown or expired refresh token")
        access_token, new_refresh, _ = self.refresh_access_token(
            refresh_token, str(record.get("client_id")), list(scope) if scope else None)
        return access_token, new_refresh

    def refresh_access_token(self, refresh_token: Any, client_id: str,
                             scope: Optional[Sequence[str]] = None, *, rotate: bool = False
                             ) -> tuple[AccessToken, Optional[str], dict[str, Any]]:
        """Issue a new access token from a refresh token (RFC 6749 6).

        The refresh token must belong to ``client_id``; ``scope`` may narrow
        the grant, never widen it. When ``refresh_token_threshold`` is set and
        the token expires within it, a new refresh token replaces it (rotation);
        replaying a rotated token revokes the grant (RFC 9700 4.14.2).

        ``rotate=True`` always rotates (public clients, RFC 9700 4.14.2).

        A refresh racing a revocation of its grant (:meth:`revoke_refresh_token`, in this
        or another process) is linearizable: either it completes before the revocation,
        whose revocation then reaches the tokens it issued (RFC 7009 2.1), or it fails
        with :class:`InvalidRefreshToken` and leaves no token behind. The new tokens are
        written first and made reachable from the grant by one atomic compare-and-set on
        the presented token's record, the point at which the refresh takes effect.

        :returns: the access token, the new refresh token (or None when the
            same one stays valid) and the grant record.
        :raises InvalidRefreshToken: unknown, expired, foreign or replayed, or revoked
            (or used to rotate) while this refresh was under way, or the end-user logged
            out since the token was issued.
        :raises InvalidScope: ``scope`` wider than the grant.
        """
        record = self._live(self.refresh_tokens, refresh_token)
        if record is None or record.get("token_type") != "refresh_token":
            raise InvalidRefreshToken("unknown or expired refresh token")
        if record.get("client_id") != client_id:
            raise InvalidRefreshToken("refresh token of another client")
        # the new tokens are dated before the logout mark is read: a logout after the read
        # revokes them too
        issued_at = float(self.clock())
        now = int(issued_at)
        if self._revoked_by_logout(record):
            raise InvalidRefreshToken("the end-user logged out after the grant")
        if record.get("rotated"):
            self.revoke_refresh_token(refresh_token)
            raise InvalidRefreshToken("refresh token already used")
        granted = record["scope"].split()
        if scope is not None:
            wider = [s for s in scope if s not in granted]
            if wider:
                raise InvalidScope("scope exceeds the original grant")
            new_scope = [s for s in granted if s in scope]
        else:
            new_scope = granted

        grant: dict[str, Any] = {k: record[k] for k in _GRANT_FIELDS if k in record}
        grant["scope"] = " ".join(new_scope)
        grant["issued_at"] = issued_at
        threshold = self.refresh_token_threshold
        rotate = rotate or bool(threshold and threshold > 0 and record["exp"] - now < threshold)
        if _is_sealed(self.refresh_tokens):
            return self._use_sealed_refresh_token(refresh_token, record, grant, now, rotate)
        # the access token is stored before any record lists it, so that a revocation
        # finding it listed deletes a stored token, never one stored after it
        access_token = self._create_access_token(grant, now, new_token_value())
        if rotate:
            new_refresh = self._rotate_refresh_token(refresh_token, record, access_token, now,
                                                     issued_at)
            return access_token, new_refresh, record
        try:
            listed = self._remember_access_token(refresh_token, record, access_token.value, now)
        except Exception:
            # a failed (or unanswered) compare-and-set may or may not have listed it: the
            # token is never sent, so it is deleted either way
            self._discard_issued(access_token.value)
            raise
        if listed == "listed":
            return access_token, None, record
        self._discard_issued(access_token.value)
        if listed == "rotated":
            # used concurrently by a rotation: the replay of a rotated token (RFC 9700 4.14.2)
            self.revoke_refresh_token(refresh_token)
            raise InvalidRefreshToken("refresh token already used")
        if listed == "contended":
            logger.warning("refresh refused: the access token could not be recorded in its "
                           "grant (contention)")
            raise InvalidRefreshToken("too many concurrent uses of the refresh token")
        raise InvalidRefreshToken("unknown, expired or revoked refresh token")

    def _use_sealed_refresh_token(self, refresh_token: str, record: dict[str, Any],
                                  grant: dict[str, Any], now: int, rotate: bool
                                  ) -> tuple[AccessToken, Optional[str], dict[str, Any]]:
        """:meth:`refresh_access_token` for sealed (stateless) refresh tokens.

        A sealed record cannot change, so it cannot list the access tokens issued from it
        later; rotation consumes the presented token in the replay cache (single use,
        RFC 9700 4.14.2), atomically against a concurrent revocation, which consumes it
        too: exactly one of them wins.
        """
        if not rotate:
            return self._create_access_token(grant, now, new_token_value()), None, record
        if self.refresh_tokens.consume(refresh_token) is None:
            raise InvalidRefreshToken("refresh token already used")
        full_grant = dict(grant)
        full_grant["scope"] = record["scope"]
        access_token = self._create_access_token(grant, now, new_token_value())
        new_refresh = self._create_refresh_token(full_grant, access_token.value, now)
        return access_token, new_refresh, record

    def _rotate_refresh_token(self, refresh_token: str, record: dict[str, Any],
                              access_token: AccessToken, now: int,
                              issued_at: Optional[float] = None) -> str:
        """Replace a stored refresh token by a new one listing ``access_token`` (stored).

        The new refresh token is written first, with ``add`` (never over another record),
        and only then does one compare-and-set mark the presented token rotated and point
        it to its successor (RFC 9700 4.14.2). That compare-and-set is where the rotation
        takes effect: a revocation consuming the presented token after it finds the
        successor and the access token already stored, and revokes them (RFC 7009 2.1);
        one consuming it before makes the compare-and-set fail, and the rotation removes
        what it wrote. No re-check after the compare-and-set is needed, so the presented
        token may expire right after it: the rotated record keeps the token's own expiry.
        Should the process stop between the writes, the new tokens, never sent, expire
        unused and the presented token is still usable.

        :raises InvalidRefreshToken: the token was used (or revoked, or expired) meanwhile;
            a concurrent use revokes the grant, as a replay does.
        """
        full_grant: dict[str, Any] = {k: record[k] for k in _GRANT_FIELDS if k in record}
        full_grant["scope"] = record["scope"]
        if issued_at is not None:
            full_grant["issued_at"] = issued_at
        new_refresh = new_token_value()
        rotated = dict(record)
        rotated.update(rotated=True, replaced_by=new_refresh)
        new_record = self._refresh_token_record(full_grant, access_token.value, now)
        try:
            added = self.refresh_tokens.add(new_refresh, new_record,
                                            expires_at=new_record["exp"])
            replaced = added and self.refresh_tokens.compare_and_set(
                refresh_token, record, rotated, expires_at=record["exp"])
        except Exception:
            # the compare-and-set may have taken effect unanswered: the old token is then
            # rotated to a successor removed here, which fails closed
            self._discard_issued(access_token.value, new_refresh)
            raise
        if not added:  # a 256-bit random value already taken: only a broken store does that
            self._discard_issued(access_token.value)
            raise InvalidRefreshToken("could not issue a new refresh token")
        if not replaced:
            self._discard_issued(access_token.value, new_refresh)
            # used meanwhile (a concurrent rotation or refresh: the replay of a token
            # that must be used once), or revoked or expired: revoking is then harmless
            self.revoke_refresh_token(refresh_token)
            raise InvalidRefreshToken("refresh token already used")
        return new_refresh

    def _discard_issued(self, access_value: str, refresh_value: Optional[str] = None) -> None:
        """Remove the tokens of a refresh that did not complete (they were never sent).

        The access token leaves this process's cache too. A storage failure here is
        logged, not raised: the caller reports the refresh's own outcome, and the tokens,
        unknown to anyone, expire by themselves.
        """
        try:
            self._delete_access_token(access_value)
        except Exception:  # noqa: BLE001 - the original outcome is what the caller needs
            logger.warning("could not remove the access token of an incomplete refresh")
        self._discard_refresh_token(refresh_value)

    def _remember_access_token(self, refresh_token: str, record: dict[str, Any],
                               access_value: str, now: int) -> _Listing:
        """List a stored access token in its refresh token's grant, so that revoking the
        grant reaches it (RFC 7009 2.1).

        A compare-and-set on the grant's record (expired entries dropped), retried
        against the current record when a concurrent refresh listed its own token first.
        Returns ``"listed"`` when it is listed; ``"gone"`` when the record no longer exists
        or is no longer usable (revoked, expired); ``"rotated"`` when the token was
        rotated meanwhile; ``"contended"`` when every attempt lost to a concurrent
        refresh. In the last three cases the access token is not listed: the caller
        must not issue it.
        """
        for _ in range(_MAX_GRANT_UPDATES):
            updated = dict(record)
            updated["access_tokens"] = [
                entry for entry in record.get("access_tokens") or [] if not _expired(entry, now)
            ] + [[access_value, now + self.access_token_lifetime]]
            if self.refresh_tokens.compare_and_set(refresh_token, record, updated,
                                                   expires_at=record["exp"]):
                return "listed"
            current = self.refresh_tokens.get(refresh_token)
            if (not isinstance(current, dict) or current.get("token_type") != "refresh_token"
                    or current.get("client_id") != record.get("client_id")
                    or not isinstance(current.get("exp"), (int, float))
                    or current["exp"] <= self._now()):
                return "gone"
            if current.get("rotated"):
                return "rotated"
            record = current
        return "contended"

    def get_refresh_token(self, refresh_token_value: Any) -> Optional[dict[str, Any]]:
        """The unexpired record of a refresh token, or None (unknown, expired, revoked,
        or its end-user logged out since it was issued).

        A token replaced by rotation is returned too, with ``rotated`` set: it can no
        longer be used, but revoking it still revokes its grant.
        """
        record = self._live(self.refresh_tokens, refresh_token_value)
        if record is None or record.get("token_type") != "refresh_token" \
                or self._revoked_by_logout(record):
            return None
        return record

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Revoke a refresh token and every token derived from it (its grant chain).

        RFC 7009 2.1: revoking a refresh token also invalidates the access tokens of the
        same grant, and the refresh tokens that replaced it by rotation (RFC 9700
        4.14.2). Each record of the chain is taken with one atomic ``consume`` (get and
        delete), so a refresh listing a new access token in a record, or rotating it, does
        so either before the record is taken (and its tokens are revoked here) or not at
        all (it then fails and removes what it wrote): none survives the revocation.
        """
        value: Optional[str] = refresh_token
        seen = 0
        while isinstance(value, str) and seen < _MAX_GRANT_CHAIN:
            seen += 1
            record = self.refresh_tokens.consume(value)
            if not isinstance(record, dict):
                break
            for entry in record.get("access_tokens") or []:
                if isinstance(entry, list) and entry and isinstance(entry[0], str):
                    self._delete_access_token(entry[0])
            value = record.get("replaced_by")

    # -- pyop 3 exchanges and lookups ----------------------------------------------------------

    def exchange_code_for_token(self, authorization_code: Any) -> AccessToken:
        """Exchange an authorization code for an access token, once (RFC 6749 4.1.2).

        pyop 3's method: no refresh token is issued here (see
        :meth:`create_refresh_token`); the client and ``redirect_uri`` checks of the token
        request (RFC 6749 4.1.3) are the caller's. A second exchange of the same code
        raises and revokes the token issued by the first.

        :raises InvalidAuthorizationCode: unknown, expired or already used code.
        """
        record = self.get_authorization_code(authorization_code)
        access_token, _ = self.redeem_authorization_code(authorization_code, record,
                                                         issue_refresh_token=False)
        return access_token

    def create_refresh_token(self, access_token_value: Any) -> Optional[str]:
        """A refresh token for the grant of a live access token (RFC 6749 6), pyop 3's method.

        :returns: the refresh token, or None when ``refresh_token_lifetime`` is not set
            (as in pyop 3) or the access token has no end-user (``client_credentials``,
            RFC 6749 4.4.3).
        :raises InvalidAccessToken: unknown, expired or revoked access token.
        """
        record = self.get_access_token(access_token_value)
        if not self.issues_refresh_tokens or "user_id" not in record:
            return None
        grant: dict[str, Any] = {k: record[k] for k in _GRANT_FIELDS if k in record}
        grant["scope"] = record["scope"]
        return self._create_refresh_token(grant, access_token_value, self._now())

    def _code_record(self, authorization_code: Any) -> dict[str, Any]:
        """The record of an unexpired code for the pyop 3 lookups, used or not.

        A sealed code is read from its value, so it can still be looked up after its
        exchange, as in pyop 3; a stored code that was redeemed keeps only what replay
        detection needs (``sub``, ``client_id``, ``scope``...).

        :raises InvalidAuthorizationCode: unknown or expired code.
        """
        codes = self.authorization_codes
        if _is_sealed(codes):
            record = codes.unseal(authorization_code) if isinstance(  # type: ignore[attr-defined]
                authorization_code, str) else None
            if not isinstance(record, dict) or record.get("token_type") != "authorization_code":
                raise InvalidAuthorizationCode("unknown or expired authorization code")
            return record
        return self.get_authorization_code(authorization_code)

    def get_authorization_request_for_code(self, authorization_code: Any
                                           ) -> AuthorizationRequest:
        """The authentication request a code was issued for.

        :raises InvalidAuthorizationCode: unknown or expired code, or a stored code
            already redeemed (its "used" record no longer holds the request).
        """
        auth_req = self._code_record(authorization_code).get(self.KEY_AUTHORIZATION_REQUEST)
        if not isinstance(auth_req, dict):
            raise InvalidAuthorizationCode("the authorization code was already redeemed")
        return cast(AuthorizationRequest, AuthorizationRequest().from_dict(auth_req))

    def get_subject_identifier_for_code(self, authorization_code: Any) -> str:
        """The ``sub`` a code was issued for; :class:`InvalidAuthorizationCode` if unknown."""
        return str(self._code_record(authorization_code)["sub"])

    def get_user_info_for_code(self, authorization_code: Any) -> Optional[dict[str, Any]]:
        """The end-user claims a code carries (:attr:`KEY_USER_INFO`), or None.

        Sealed codes carry them (what :meth:`create_authorization_code` or the provider
        put in); stored codes do not, as in pyop 3.

        :raises InvalidAuthorizationCode: unknown or expired code.
        """
        user_info = self._code_record(authorization_code).get(self.KEY_USER_INFO)
        return user_info if isinstance(user_info, dict) else None

    def get_extra_id_token_claims_for_code(self, authorization_code: Any
                                           ) -> Optional[dict[str, Any]]:
        """The extra ID token claims kept with a code (:attr:`KEY_EXTRA_ID_TOKEN_CLAIMS`),
        or None; :class:`InvalidAuthorizationCode` if the code is unknown or expired."""
        extra = self._code_record(authorization_code).get(self.KEY_EXTRA_ID_TOKEN_CLAIMS)
        return extra if isinstance(extra, dict) else None

    def get_user_info_for_access_token(self, access_token_value: Any
                                       ) -> Optional[dict[str, Any]]:
        """The end-user claims an access token carries (:attr:`KEY_USER_INFO`), or None.

        :raises InvalidAccessToken: unknown, expired or revoked token.
        """
        user_info = self.get_access_token(access_token_value).get(self.KEY_USER_INFO)
        return user_info if isinstance(user_info, dict) else None

    def get_authorization_request_for_access_token(self, access_token_value: Any
                                                   ) -> AuthorizationRequest:
        """The authorization an access token was issued for, as an authentication request.

        Access tokens do not keep the whole request (data minimisation): the answer has
        its ``client_id``, the token's ``scope`` and the ``userinfo`` member of its
        ``claims`` request (OIDC Core 5.5), which is what UserInfo needs.

        :raises InvalidAccessToken: unknown, expired or revoked token.
        """
        record = self.get_access_token(access_token_value)
        request: dict[str, Any] = {"client_id": record.get("client_id"),
                                   "scope": str(record.get("scope", "")).split()}
        if record.get("claims"):
            request["claims"] = {"userinfo": record["claims"]}
        return cast(AuthorizationRequest, AuthorizationRequest().from_dict(request))
