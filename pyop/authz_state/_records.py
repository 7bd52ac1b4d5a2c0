"""What every part of :class:`~pyop.authz_state.AuthorizationState` shares: the record
helpers, the token value generator (RFC 6749 10.10), and :class:`StateBase` with the
stores, lifetimes and caches its parts use.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import secrets
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, ClassVar, Optional

from .._cache import TTLCache
from ..exceptions import InvalidAuthenticationRequest, InvalidTokenRequest
from ..storage import DictStorage, MemoryStorage, StorageBase, as_storage
from ..subject_identifier import SubjectIdentifierFactory

__all__ = ['StateBase', 'new_token_value', 'merge_record', 'is_sealed', 'SealedValueTooLarge',
           'grant_id_of', 'grant_mark_key']

logger = logging.getLogger(__name__)


#: Maximum number of refresh tokens of the previous version's layout (no grant id) followed
#: when revoking a grant.
MAX_GRANT_CHAIN = 1000
#: Compare-and-set attempts of a mark write against concurrent writers.
MAX_GRANT_UPDATES = 16
#: Longest code or token value looked up (:meth:`StateBase._live`), and longest sealed value
#: issued (:meth:`StateBase._store`): what is issued can be read back.
MAX_TOKEN_LENGTH = 4096
#: Members of a grant that its access and refresh tokens carry over (``scope`` is set apart).
GRANT_FIELDS = ("client_id", "sub", "user_id", "claims", "user_info", "sid", "cnf")
#: Members of a code record kept in its "used" record (with ``used``, ``exp``, ``issued``).
USED_CODE_FIELDS = ("iat", "client_id", "sub", "user_id", "scope", "token_type")
#: Subject identifiers remembered as written, with ``subject_identifier_cache_ttl``.
SUBJECT_CACHE_SIZE = 10_000
#: Access tokens remembered as issued, with ``access_token_cache_ttl``.
ACCESS_TOKEN_CACHE_SIZE = 10_000
#: ``token_type`` of the logout marks kept with the access tokens (never an access token).
LOGOUT_MARK = "logout"
#: ``token_type`` of the grant revocation marks kept with the access tokens.
GRANT_MARK = "grant_revoked"
#: Member of a token record naming its grant (checked against a grant revocation mark).
GRANT_ID = "grant_id"


class SealedValueTooLarge(InvalidTokenRequest):
    """A sealed code or token would be longer than :data:`MAX_TOKEN_LENGTH` characters,
    which no endpoint reads back: it is not issued (``invalid_request``)."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"the grant is too large to be sealed into a {kind} of at most "
            f"{MAX_TOKEN_LENGTH} characters (a smaller claims request, fewer claims carried, "
            "or server-side storage)", oauth_error="invalid_request")


def authorization_too_large(error: SealedValueTooLarge,
                            request: Mapping[str, Any]) -> InvalidAuthenticationRequest:
    """The error of an authorization whose code or token would not fit in a sealed value
    (OIDC Core 3.1.2.6 ``invalid_request``). This layer has not verified the request's
    ``redirect_uri``, so the error is not redirectable by itself."""
    return InvalidAuthenticationRequest(str(error), request_dict(request), "invalid_request")


def grant_id_of(value: str) -> str:
    """The grant id derived from a code or refresh token value: 128 bits of SHA-256 of it
    (never the value itself). Names the grant of a code (its tokens carry it) and of a
    refresh token written without a grant id by an earlier version."""
    digest = hashlib.sha256(b"pyop grant\x00" + value.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def grant_mark_key(grant_id: str) -> str:
    """The storage key of a grant's revocation mark: unlike any token value (no ``:`` in
    those) and any logout mark."""
    return f"grant:{grant_id}"


@functools.lru_cache(maxsize=4096)
def logout_mark_key(subject_identifier: str) -> str:
    """The storage key of a subject identifier's logout mark: fixed length, whatever the
    ``sub``, and unlike any token value (which has no ``:``).

    Remembered for the most recent subject identifiers: a grant's mark is read at the
    token endpoint, at UserInfo and at introspection."""
    digest = hashlib.sha256(subject_identifier.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{LOGOUT_MARK}:{digest}"


#: ``json.loads`` for the JSON texts of this process's caches: canonical JSON written
#: here, a whole JSON text without surrounding whitespace, so the value scanned from the
#: start is the value (without the checks ``json.loads`` makes around it).
_scan_json: Callable[[str, int], tuple[Any, int]] = (
    json.JSONDecoder().scan_once)  # type: ignore[attr-defined]


def cached_json(raw: str) -> Any:
    """The value of a canonical JSON text this process cached."""
    return _scan_json(raw, 0)[0]


def is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def new_token_value() -> str:
    """A random token value: 256 bits from :mod:`secrets` (RFC 6749 10.10)."""
    return secrets.token_urlsafe(32)


def request_dict(request: Mapping[str, Any]) -> dict[str, Any]:
    """An authentication request (an ``oic`` message or a mapping) as a plain dict."""
    to_dict = getattr(request, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(request)


def scope_list(scope: Any, request: Mapping[str, Any]) -> list[str]:
    """The scope of a pyop 3-style call: ``scope``, else the request's (a list, or a
    space-separated string)."""
    value = scope or request.get("scope") or []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def check_cache_ttl(name: str, ttl: Any) -> None:
    """Reject a cache lifetime that is not None or a finite number of seconds >= 0."""
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                            or not 0 <= ttl < float("inf")):
        raise ValueError(f"{name} must be a number of seconds >= 0")


def is_sealed(store: Any) -> bool:
    return callable(getattr(store, "seal", None))


#: Attempts of :func:`merge_record` against concurrent writers of the record.
MERGE_ATTEMPTS = 8


def merge_record(db: StorageBase, key: str, fields: dict[str, Any]) -> Any:
    """Add ``fields`` to the subject identifier record ``key`` (created if absent),
    never replacing a field the record has; returns the record as stored (None if it
    could not be written against concurrent writers).

    A key may be both a user id (its pinned public ``sub``: ``public``, and pyop 3's
    ``pairwise`` list) and a ``sub`` (``user_id`` and ``type``): the fields are merged.
    """
    for _ in range(MERGE_ATTEMPTS):
        current = db.get(key)
        if current is None:
            if db.add(key, fields):
                return fields
            continue
        if not isinstance(current, dict):
            return current
        for name in fields:
            if name not in current:
                break
        else:  # every field is there already (the usual)
            return current
        merged = dict(fields)
        merged.update(current)
        if db.compare_and_set(key, current, merged):
            return merged
    logger.warning("a subject identifier record could not be written (contention)")
    return None


class StateBase:
    """The stores, lifetimes and caches of an authorization state, and the helpers
    each of its parts uses (set by :class:`~pyop.authz_state.AuthorizationState`)."""

    #: Member of a code record holding the authentication request (pyop 3 name).
    KEY_AUTHORIZATION_REQUEST: ClassVar[str] = "auth_req"
    #: Member of a grant record holding the end-user's claims it may release (pyop 3 name).
    KEY_USER_INFO: ClassVar[str] = "user_info"
    #: Member of a code record holding the extra ID token claims (pyop 3 name).
    KEY_EXTRA_ID_TOKEN_CLAIMS: ClassVar[str] = "extra_id_token_claims"

    subject_identifier_factory: SubjectIdentifierFactory
    clock: Callable[[], float]
    authorization_codes: StorageBase
    access_tokens: StorageBase
    refresh_tokens: StorageBase
    subject_identifiers: StorageBase
    authorization_code_lifetime: int
    access_token_lifetime: int
    refresh_token_lifetime: Optional[int]
    refresh_token_threshold: Optional[int]
    _written_subjects: Optional[TTLCache[str]]
    _pinned_subjects: Optional[TTLCache[str]]
    _issued_codes: Optional[TTLCache[str]]
    _issued_access_tokens: Optional[TTLCache[str]]
    _local_logouts: Optional[TTLCache[float]]
    _local_grant_revocations: Optional[TTLCache[float]]
    _sealed_subjects: Optional[TTLCache[str]]

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
               value: Optional[str] = None, encoded: Optional[str] = None) -> str:
        """Store ``record`` under ``value`` (a new random one when None), or seal it.

        :param encoded: ``canonical_json(record)`` when the caller already made it:
            a :class:`~pyop.storage.MemoryStorage` then stores that text as is.
        :raises SealedValueTooLarge: the sealed value would be longer than
            :data:`MAX_TOKEN_LENGTH` (nothing is issued).
        """
        if is_sealed(db):
            sealed: str = db.seal(record, expires_at)  # type: ignore[attr-defined]
            if len(sealed) > MAX_TOKEN_LENGTH:
                raise SealedValueTooLarge(str(record.get("token_type", "token")).replace(
                    "_", " "))
            return sealed
        value = value or new_token_value()
        if encoded is not None and type(db) is MemoryStorage:
            db._set_encoded(value, encoded, expires_at=expires_at)
        else:
            db.set(value, record, expires_at=expires_at)
        return value

    def _live(self, db: StorageBase, value: Any) -> Optional[dict[str, Any]]:
        """The live record of a token value, or None (unknown, expired, malformed)."""
        if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_LENGTH:
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
        return (is_sealed(self.authorization_codes) or is_sealed(self.access_tokens)
                or is_sealed(self.refresh_tokens))

    @property
    def issues_refresh_tokens(self) -> bool:
        """Whether refresh tokens are issued (``refresh_token_lifetime`` > 0)."""
        return bool(self.refresh_token_lifetime and self.refresh_token_lifetime > 0)
