"""Lifecycle of authorization codes, access tokens, refresh tokens and subject identifiers.

Every state change goes through the storage contract of :mod:`pyop.storage`:
codes are redeemed with an atomic compare-and-set, so exactly one of any
number of concurrent redemptions succeeds on every backend, and a replayed
code revokes the tokens issued from it (RFC 6749 4.1.2, RFC 9700 4.14.2). The tokens of a
grant carry its id (``grant_id``) and revoking the grant writes one *grant revocation
mark* that every use of them reads (RFC 7009 2.1), stored or sealed: a grant's record
keeps its size however often it is refreshed, and a refresh racing the revocation reads
the mark and is refused, or took effect first and its tokens are refused at use.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

from .._cache import TTLCache
from ..storage import StorageBase
from ..subject_identifier import SubjectIdentifierFactory
from ._pushed_requests import DEFAULT_PUSHED_REQUEST_LIFETIME, PushedRequests
from ._pyop3_api import Pyop3Lookups
from ._records import (
    ACCESS_TOKEN_CACHE_SIZE,
    SUBJECT_CACHE_SIZE,
    check_cache_ttl,
    is_sealed,
    new_token_value,
)
from ._records import (
    merge_record as merge_record,
)
from ._sessions import Sessions

__all__ = ["AuthorizationState", "new_token_value"]

logger = logging.getLogger(__name__)


class AuthorizationState(Pyop3Lookups, Sessions, PushedRequests):
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
    :param pushed_authorization_request_db: storage for pushed authorization requests
        (RFC 9126): a pyop storage or a plain dict. None (default): the authorization code
        storage, shared by every worker that redeems codes (the records are told apart by
        their ``token_type``). A sealed (stateless) store seals each request into its
        ``request_uri``, used once through the store's replay cache.
    :param pushed_authorization_request_lifetime: seconds a pushed request can be used at
        the authorization endpoint (``expires_in``, default 60; RFC 9126 2.2).

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
        pushed_authorization_request_db: Optional[Any] = None,
        pushed_authorization_request_lifetime: int = DEFAULT_PUSHED_REQUEST_LIFETIME,
    ) -> None:
        self.subject_identifier_factory = subject_identifier_factory
        self.clock = clock
        check_cache_ttl("subject_identifier_cache_ttl", subject_identifier_cache_ttl)
        #: sub -> user_id of the mappings this process wrote recently
        self._written_subjects: Optional[TTLCache[str]] = None
        #: user_id -> the user's pinned public sub, read or written recently
        self._pinned_subjects: Optional[TTLCache[str]] = None
        if subject_identifier_cache_ttl:
            self._written_subjects = TTLCache(subject_identifier_cache_ttl, SUBJECT_CACHE_SIZE,
                                              lambda: self.clock())
            self._pinned_subjects = TTLCache(subject_identifier_cache_ttl, SUBJECT_CACHE_SIZE,
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
        if authorization_code_cache_size is not None and not is_sealed(
                self.authorization_codes):
            self._issued_codes = TTLCache(float(authorization_code_lifetime),
                                          authorization_code_cache_size, lambda: self.clock())
        self.access_tokens: StorageBase = self._as_storage(access_token_db)
        check_cache_ttl("access_token_cache_ttl", access_token_cache_ttl)
        #: access token value -> canonical JSON of its record, for the tokens this process
        #: issued less than ``access_token_cache_ttl`` seconds ago (and not revoked here)
        self._issued_access_tokens: Optional[TTLCache[str]] = None
        if access_token_cache_ttl and not is_sealed(self.access_tokens):
            self._issued_access_tokens = TTLCache(float(access_token_cache_ttl),
                                                  ACCESS_TOKEN_CACHE_SIZE,
                                                  lambda: self.clock())
        #: sub -> time of its logout through this process, for as long as a cached access
        #: token issued before it may be answered from memory
        self._local_logouts: Optional[TTLCache[float]] = None
        #: grant id -> time of its revocation through this process, likewise
        self._local_grant_revocations: Optional[TTLCache[float]] = None
        if self._issued_access_tokens is not None:
            self._local_logouts = TTLCache(float(access_token_cache_ttl or 0),
                                           ACCESS_TOKEN_CACHE_SIZE, lambda: self.clock())
            self._local_grant_revocations = TTLCache(float(access_token_cache_ttl or 0),
                                                     ACCESS_TOKEN_CACHE_SIZE,
                                                     lambda: self.clock())
        self.refresh_tokens: StorageBase = self._as_storage(refresh_token_db)
        self.subject_identifiers: StorageBase = self._as_storage(subject_identifier_db)
        #: sub -> user_id of the subject identifiers made by this process when their store
        #: is sealed, which records nothing (pyop 3's stateless mode kept them in memory):
        #: for :meth:`get_user_id_for_subject_identifier` in this process, bounded, and
        #: kept as long as a code or access token may be used
        self._sealed_subjects: Optional[TTLCache[str]] = None
        if is_sealed(self.subject_identifiers):
            self._sealed_subjects = TTLCache(
                float(max(authorization_code_lifetime, access_token_lifetime)),
                SUBJECT_CACHE_SIZE, lambda: self.clock())
        self.authorization_code_lifetime = authorization_code_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.refresh_token_threshold = refresh_token_threshold
        if (isinstance(pushed_authorization_request_lifetime, bool)
                or not isinstance(pushed_authorization_request_lifetime, int)
                or pushed_authorization_request_lifetime < 1):
            raise ValueError("pushed_authorization_request_lifetime must be an integer >= 1")
        #: Where pushed authorization requests are kept (RFC 9126).
        self.pushed_authorization_requests: StorageBase = (
            self.authorization_codes if pushed_authorization_request_db is None
            else self._as_storage(pushed_authorization_request_db))
        self.pushed_authorization_request_lifetime = pushed_authorization_request_lifetime

