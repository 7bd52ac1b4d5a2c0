"""Subject identifiers of an authorization state (OIDC Core 8: public and pairwise
``sub``, pinned and recorded for reverse lookup) and logout (OIDC RP-Initiated Logout
1.0, 2): the logout marks that revoke the grants of a ``sub`` (RFC 7009 2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

from ..exceptions import (
    InvalidSubjectIdentifier,
)
from ..storage import StorageBase
from ._records import (
    GRANT_ID,
    GRANT_MARK,
    LOGOUT_MARK,
    MAX_GRANT_UPDATES,
    StateBase,
    grant_mark_key,
    is_sealed,
    is_time,
    logout_mark_key,
    merge_record,
)

logger = logging.getLogger(__name__)


class SubjectIdentifiers(StateBase):
    """Subject identifiers and logout marks of :class:`~pyop.authz_state.AuthorizationState`."""

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
        sealed = is_sealed(db)
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
            record = merge_record(db, user_id, {"public": sub})
            if isinstance(record, dict) and isinstance(record.get("public"), str):
                sub = record["public"]
        if subject_type == "public" and self._pinned_subjects is not None:
            self._pinned_subjects.put(user_id, sub)
        # the reverse record, checked on every authorization (without the cache), so a
        # logout or a store change made by another process is always repaired
        record = merge_record(db, sub, {"user_id": user_id, "type": subject_type})
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
        if is_sealed(db):
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
        if (isinstance(record, dict) and isinstance(record.get("public"), str)
                and record["public"]):
            return str(record["public"])
        return None

    def _user_id_for_pyop3(self, subject_identifier: Any) -> str:
        """The user id of a ``sub`` given to a pyop 3-style call.

        :raises InvalidSubjectIdentifier: unknown ``sub`` (with a sealed subject
            identifier store: one this process did not make recently, as in pyop 3's
            stateless mode, which kept them in memory).
        """
        return self.get_user_id_for_subject_identifier(subject_identifier)

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
        if not is_sealed(self.subject_identifiers):
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
        if is_sealed(tokens):
            cache = getattr(tokens, "replay_cache", None)
            if isinstance(cache, StorageBase):
                return cache
            return self.subject_identifiers
        return tokens

    def _write_logout_mark(self, subject_identifier: str, now: float) -> None:
        """Store (or move forward) the logout mark of ``subject_identifier``."""
        store = self._logout_mark_store()
        key = logout_mark_key(subject_identifier)
        lifetime = max(self.authorization_code_lifetime, self.access_token_lifetime,
                       self.refresh_token_lifetime or 0)
        expires_at = now + lifetime + 1
        mark = {"token_type": LOGOUT_MARK, "sub": subject_identifier, "logged_out_at": now}
        for _ in range(MAX_GRANT_UPDATES):
            if store.add(key, mark, expires_at=expires_at):
                return
            current = store.get(key)
            if not isinstance(current, dict):
                continue  # expired or removed meanwhile: add again
            marked: Any = current.get("logged_out_at")
            if is_time(marked) and marked >= now:
                return  # a logout at the same time or later is already marked
            if store.compare_and_set(key, current, mark, expires_at=expires_at):
                return
        store.set(key, mark, expires_at=expires_at)

    def _logged_out_at(self, subject_identifier: str) -> Optional[float]:
        """The time of the last marked logout of ``subject_identifier``, or None."""
        mark = self._logout_mark_store().get(logout_mark_key(subject_identifier))
        if not isinstance(mark, dict) or mark.get("token_type") != LOGOUT_MARK:
            return None
        at: Any = mark.get("logged_out_at")
        return float(at) if is_time(at) else None

    @staticmethod
    def _issued_by(record: Mapping[str, Any], logged_out_at: Optional[float]) -> bool:
        """Whether a grant record was issued at or before a logout: by its ``issued_at``
        (the clock's reading), else by its ``iat`` second (a record of an earlier version:
        the second of the logout counts as before it); an undated one is."""
        if logged_out_at is None:
            return False
        issued_at: Any = record.get("issued_at")
        if is_time(issued_at):
            return bool(issued_at <= logged_out_at)
        iat: Any = record.get("iat")
        return not is_time(iat) or iat <= logged_out_at

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

    # -- grant revocation marks (RFC 7009 2.1, RFC 6749 4.1.2, RFC 9700 4.14.2) ----------------

    def _mark_lifetime(self) -> int:
        """Seconds a mark is kept: the longest lifetime of a code or token it may refuse."""
        return max(self.authorization_code_lifetime, self.access_token_lifetime,
                   self.refresh_token_lifetime or 0) + 1

    def _revoke_grant(self, grant_id: str) -> None:
        """Revoke every token carrying ``grant_id``: one keyed write of a *grant revocation
        mark*, with the logout marks (with the access tokens, or in the replay cache of
        sealed ones), kept until the longest token lifetime has passed.

        No token is looked for: the tokens of the grant carry its id and every use of one
        reads the mark (:meth:`_grant_revoked`). The first mark stays: a grant revoked once
        issues no token after it (its refresh tokens read the mark too), so the tokens it
        refuses are those issued before it, which expire before it does."""
        now = float(self.clock())
        local = self._local_grant_revocations
        if local is not None:
            # before the mark is stored: a cached token of the grant is refused from now on
            local.put(grant_id, now)
            issued = self._issued_access_tokens
            if issued is not None and len(local) >= local.max_size:
                issued.clear()  # entries may be evicted: the cached tokens go too
        mark = {"token_type": GRANT_MARK, "revoked_at": now}
        self._logout_mark_store().add(grant_mark_key(grant_id), mark,
                                      expires_at=now + self._mark_lifetime())

    def _grant_revoked(self, grant_id: Any) -> bool:
        """Whether a grant revocation mark exists for ``grant_id`` (one keyed read)."""
        if not isinstance(grant_id, str) or not grant_id:
            return False
        mark = self._logout_mark_store().get(grant_mark_key(grant_id))
        return isinstance(mark, dict) and mark.get("token_type") == GRANT_MARK

    def _revoked_grant_of(self, record: Mapping[str, Any]) -> bool:
        """Whether a token record names a grant that was revoked (no read for a record
        without grant id: tokens listed where their revocation deletes them)."""
        grant_id = record.get(GRANT_ID)
        return grant_id is not None and self._grant_revoked(grant_id)

    def _locally_revoked_grant(self, record: Mapping[str, Any]) -> bool:
        """:meth:`_revoked_grant_of` for the revocations made through this process only
        (no read: for the tokens this process answers from memory)."""
        local = self._local_grant_revocations
        grant_id = record.get(GRANT_ID)
        return (local is not None and isinstance(grant_id, str)
                and local.get(grant_id) is not None)
