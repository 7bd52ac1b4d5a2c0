"""Refresh tokens of an authorization state (RFC 6749 6): refresh, rotation and replay
detection (RFC 9700 4.14.2), and the revocation of a grant chain (RFC 7009 2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Optional, overload

from ..access_token import AccessToken
from ..dpop import cnf_matches
from ..exceptions import (
    InvalidRefreshToken,
    InvalidScope,
)
from ._access_tokens import AccessTokens
from ._records import (
    GRANT_FIELDS,
    GRANT_ID,
    MAX_GRANT_CHAIN,
    MAX_TOKEN_LENGTH,
    grant_id_of,
    is_sealed,
    new_token_value,
)

logger = logging.getLogger(__name__)


def _check_refresh_token_binding(record: Mapping[str, Any],
                                 cnf: Optional[Mapping[str, Any]]) -> None:
    """A bound refresh token (a public client's: RFC 9449 5, RFC 8705 4) is used with the
    same confirmation: every member of its ``cnf`` (``jkt`` and/or ``x5t#S256``) is in the
    request's with the same value.

    :raises InvalidRefreshToken: a member is missing or differs (``invalid_grant``)."""
    if not cnf_matches(record.get("cnf"), cnf):
        raise InvalidRefreshToken("the refresh token is bound to another client certificate "
                                  "or key")


class RefreshTokens(AccessTokens):
    """Refresh tokens of :class:`~pyop.authz_state.AuthorizationState`."""

    # -- refresh tokens (RFC 6749 6) -----------------------------------------------------------

    def _refresh_token_record(self, grant: Mapping[str, Any],
                              access_token_value: Optional[str], now: int) -> dict[str, Any]:
        """A refresh token record: the grant (with its ``grant_id``), and, when the access
        token issued with it does not carry the grant id, that token (one entry, never
        more: the tokens issued later carry the grant id)."""
        record = dict(grant)
        record["iat"] = now
        record["exp"] = now + (self.refresh_token_lifetime or 0)
        record["token_type"] = "refresh_token"
        if access_token_value is not None:
            record["access_tokens"] = [[access_token_value, now + self.access_token_lifetime]]
        return record

    def _create_refresh_token(self, grant: Mapping[str, Any], access_token_value: Optional[str],
                              now: int, value: Optional[str] = None) -> str:
        record = self._refresh_token_record(grant, access_token_value, now)
        return self._store(self.refresh_tokens, record, record["exp"], value)

    @staticmethod
    def _grant_id(record: Mapping[str, Any], refresh_token: str) -> str:
        """The grant id of a refresh token record: its own, or (a record of an earlier
        version) one derived from the token value."""
        grant_id = record.get(GRANT_ID)
        return grant_id if isinstance(grant_id, str) and grant_id else grant_id_of(refresh_token)

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
                             scope: Optional[Sequence[str]] = None, *, rotate: bool = False,
                             cnf: Optional[Mapping[str, Any]] = None
                             ) -> tuple[AccessToken, Optional[str], dict[str, Any]]:
        """Issue a new access token from a refresh token (RFC 6749 6).

        The refresh token must belong to ``client_id``; ``scope`` may narrow
        the grant, never widen it. When ``refresh_token_threshold`` is set and
        the token expires within it, a new refresh token replaces it (rotation);
        replaying a rotated token revokes the grant (RFC 9700 4.14.2).

        ``rotate=True`` always rotates (public clients, RFC 9700 4.14.2).

        ``cnf``: the confirmation of the request (RFC 7800 3.1): ``jkt`` of a DPoP proof's
        key (RFC 9449 6) and/or the client certificate's ``x5t#S256`` (RFC 8705 3), which
        the new access token is bound to. A refresh token that is bound itself (``cnf`` in
        its record: a public client's, RFC 9449 5, RFC 8705 4) is refused unless every
        member of its ``cnf`` is the same in ``cnf``.

        A refresh racing a revocation of its grant (:meth:`revoke_refresh_token`, in this
        or another process) is linearizable: either it takes effect before the
        revocation, whose mark then refuses the tokens it issued (RFC 7009 2.1), or it
        reads the mark and fails with :class:`InvalidRefreshToken`. Without rotation it
        writes its access token, carrying the grant id, and nothing else (the refresh token's
        record is never rewritten, so concurrent refreshes do not contend); with rotation
        it takes effect at one compare-and-set on the presented token's record.

        With sealed refresh tokens, presenting one that was already used by a rotation (or
        revoked) revokes its grant before it is refused (RFC 9700 4.14.2).

        :returns: the access token, the new refresh token (or None when the
            same one stays valid) and the grant record.
        :raises InvalidRefreshToken: unknown, expired, foreign or replayed, or revoked
            (or used to rotate) while this refresh was under way, or the end-user logged
            out since the token was issued.
        :raises InvalidScope: ``scope`` wider than the grant.
        :raises InvalidTokenRequest: ``invalid_request``, a sealed token of the grant would
            be longer than 4,096 characters (nothing is issued, nothing spent).
        """
        record = self._live(self.refresh_tokens, refresh_token)
        if record is None:
            self._reused_sealed_refresh_token(refresh_token, client_id)
        if record is None or record.get("token_type") != "refresh_token":
            raise InvalidRefreshToken("unknown or expired refresh token")
        if record.get("client_id") != client_id:
            raise InvalidRefreshToken("refresh token of another client")
        _check_refresh_token_binding(record, cnf)
        # the new tokens are dated before the marks are read: a logout or revocation after
        # the reads revokes them too
        issued_at = float(self.clock())
        now = int(issued_at)
        if self._revoked_by_logout(record):
            raise InvalidRefreshToken("the end-user logged out after the grant")
        grant_id = self._grant_id(record, refresh_token)
        if self._grant_revoked(grant_id):
            raise InvalidRefreshToken("unknown, expired or revoked refresh token")
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

        grant: dict[str, Any] = {k: record[k] for k in GRANT_FIELDS if k in record}
        grant["scope"] = " ".join(new_scope)
        grant["issued_at"] = issued_at
        grant[GRANT_ID] = grant_id
        # the access token is bound to the request's confirmation, not the refresh token's
        grant.pop("cnf", None)
        if cnf:
            grant["cnf"] = dict(cnf)
        threshold = self.refresh_token_threshold
        rotate = rotate or bool(threshold and threshold > 0 and record["exp"] - now < threshold)
        if is_sealed(self.refresh_tokens):
            return self._use_sealed_refresh_token(refresh_token, record, grant, now, rotate)
        # the access token carries the grant id: revoking the grant reaches it through the
        # grant's revocation mark, read at every use, without the grant listing it
        access_token = self._create_access_token(grant, now, new_token_value())
        if rotate:
            new_refresh = self._rotate_refresh_token(refresh_token, record, access_token, now,
                                                     grant)
            return access_token, new_refresh, record
        return access_token, None, record

    def _spent_sealed_refresh_token(self, refresh_token: Any) -> Optional[dict[str, Any]]:
        """The record of a genuine, unexpired sealed refresh token that was consumed by a
        rotation (or revoked), marked ``rotated`` as a server-side rotated record is: it
        can no longer be used, but revoking it revokes its grant. None for anything else."""
        store = self.refresh_tokens
        if (not is_sealed(store) or not isinstance(refresh_token, str)
                or len(refresh_token) > MAX_TOKEN_LENGTH):
            return None
        record = store.unseal(refresh_token)  # type: ignore[attr-defined]
        if not isinstance(record, dict) or record.get("token_type") != "refresh_token":
            return None
        return dict(record, rotated=True)

    def _reused_sealed_refresh_token(self, refresh_token: Any, client_id: str) -> None:
        """A sealed refresh token that is genuine and unexpired but consumed (rotated) or
        revoked is reused: its grant is revoked (RFC 9700 4.14.2) before it is refused."""
        record = self._spent_sealed_refresh_token(refresh_token)
        if record is not None and record.get("client_id") == client_id:
            self._revoke_grant(self._grant_id(record, refresh_token))
            logger.warning("a used or revoked refresh token was presented: its grant was "
                           "revoked")

    def _use_sealed_refresh_token(self, refresh_token: str, record: dict[str, Any],
                                  grant: dict[str, Any], now: int, rotate: bool
                                  ) -> tuple[AccessToken, Optional[str], dict[str, Any]]:
        """:meth:`refresh_access_token` for sealed (stateless) refresh tokens.

        A sealed record cannot change; the tokens issued from it carry its grant id.
        Rotation consumes the presented token in the replay cache (single use,
        RFC 9700 4.14.2), atomically against a concurrent revocation, which consumes it
        too: exactly one of them wins. The new tokens are made first (a grant too large to
        seal fails before the token is spent); when the consume fails -- the reuse of a
        rotated token, or a concurrent use -- they are discarded and the grant is revoked.
        """
        access_token = self._create_access_token(grant, now, new_token_value())
        if not rotate:
            return access_token, None, record
        full_grant = dict(grant)
        full_grant["scope"] = record["scope"]
        full_grant.pop("cnf", None)
        if "cnf" in record:  # a bound refresh token's successor is bound the same way
            full_grant["cnf"] = record["cnf"]
        try:
            new_refresh = self._create_refresh_token(full_grant, None, now)
        except Exception:
            self._discard_issued(access_token.value)
            raise
        if self.refresh_tokens.consume(refresh_token) is None:
            self._discard_issued(access_token.value)
            self._revoke_grant(grant[GRANT_ID])
            raise InvalidRefreshToken("refresh token already used")
        return access_token, new_refresh, record

    def _rotate_refresh_token(self, refresh_token: str, record: dict[str, Any],
                              access_token: AccessToken, now: int,
                              grant: Mapping[str, Any]) -> str:
        """Replace a stored refresh token by a new one of the same grant.

        The new refresh token is written first, with ``add`` (never over another record),
        and only then does one compare-and-set mark the presented token rotated and point
        it to its successor (RFC 9700 4.14.2). That compare-and-set is where the rotation
        takes effect: a revocation of the grant before it makes the compare-and-set fail
        (the presented record was consumed), and the rotation removes what it wrote; one
        after it reaches the new tokens through the grant's revocation mark, as their
        records carry the grant id. No re-check after the compare-and-set is needed, so
        the presented token may expire right after it: the rotated record keeps the
        token's own expiry. Should the process stop between the writes, the new tokens,
        never sent, expire unused and the presented token is still usable.

        :raises InvalidRefreshToken: the token was used (or revoked, or expired) meanwhile;
            a concurrent use revokes the grant, as a replay does.
        """
        full_grant: dict[str, Any] = {k: record[k] for k in GRANT_FIELDS if k in record}
        full_grant["scope"] = record["scope"]
        full_grant["issued_at"] = grant["issued_at"]
        full_grant[GRANT_ID] = grant[GRANT_ID]
        new_refresh = new_token_value()
        rotated = dict(record)
        rotated.update(rotated=True, replaced_by=new_refresh)
        new_record = self._refresh_token_record(full_grant, None, now)
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
            self._revoke_grant(grant[GRANT_ID])
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

    def get_refresh_token(self, refresh_token_value: Any) -> Optional[dict[str, Any]]:
        """The unexpired record of a refresh token, or None (unknown, expired, revoked,
        or its end-user logged out since it was issued).

        A token replaced by rotation is returned too, with ``rotated`` set: it can no
        longer be used, but revoking it still revokes its grant.
        """
        record = self._live(self.refresh_tokens, refresh_token_value)
        if record is None:
            record = self._spent_sealed_refresh_token(refresh_token_value)
        if (record is None or record.get("token_type") != "refresh_token"
                or self._revoked_by_logout(record)
                or self._grant_revoked(self._grant_id(record, refresh_token_value))):
            return None
        return record

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Revoke a refresh token and its grant.

        RFC 7009 2.1: revoking a refresh token also invalidates the access tokens of the
        same grant, and the refresh tokens that replaced it by rotation (RFC 9700
        4.14.2). Every token of a grant carries the grant's id (``grant_id``), and one
        write of a *grant revocation mark* revokes them all, wherever they are stored or
        sealed: every use of a token of the grant reads the mark. The cost does not depend
        on how often the grant was refreshed: a read of the token, the mark, a ``consume``
        of the token and the deletion of the access token issued with it when its record
        lists it (a server-side code's first access token, which does not carry the grant
        id and is read without the mark).

        The mark is written before the token is taken, so that a failure in between leaves
        the grant revoked. A refresh racing the revocation either reads the mark and is
        refused, or issues tokens the mark refuses at their first use.

        Records of an earlier version (no ``grant_id``: the access tokens issued with them
        listed, the refresh tokens that replaced them linked by ``replaced_by``) are
        revoked as they were, each record of the chain taken with one ``consume``; the
        tokens issued from them since carry a grant id derived from their value, which is
        marked as well.
        """
        store = self.refresh_tokens
        if not isinstance(refresh_token, str) or not refresh_token:
            return
        if is_sealed(store):
            record = store.unseal(refresh_token)  # type: ignore[attr-defined]
            if not isinstance(record, dict) or record.get("token_type") != "refresh_token":
                return
            self._revoke_grant(self._grant_id(record, refresh_token))
            store.delete(refresh_token)
            self._delete_listed_access_tokens(record)
            return
        value: Optional[str] = refresh_token
        seen = 0
        while isinstance(value, str) and seen < MAX_GRANT_CHAIN:
            seen += 1
            current = store.get(value)
            if isinstance(current, dict):
                if current.get("token_type", "refresh_token") != "refresh_token":
                    break  # not a refresh token (a store shared with the access tokens)
                self._revoke_grant(self._grant_id(current, value))
            record = store.consume(value)
            if not isinstance(record, dict):
                break
            if record.get(GRANT_ID) != (current or {}).get(GRANT_ID):
                self._revoke_grant(self._grant_id(record, value))
            self._delete_listed_access_tokens(record)
            if record.get(GRANT_ID):
                break  # its successors carry the same grant id: revoked by the mark
            value = record.get("replaced_by")

    def _delete_listed_access_tokens(self, record: Mapping[str, Any]) -> None:
        """Delete the access tokens a refresh token record lists (at most one in this
        version's records; those of an earlier version list every refresh's)."""
        for entry in record.get("access_tokens") or []:
            if isinstance(entry, list) and entry and isinstance(entry[0], str):
                self._delete_access_token(entry[0])

    def _discard_refresh_token(self, refresh_token: Optional[str]) -> None:
        """Remove a refresh token written for a redemption that did not complete (it was
        never sent); a storage failure here is logged, the token is unknown to anyone."""
        if refresh_token is None:
            return
        try:
            self.refresh_tokens.delete(refresh_token)
        except Exception:  # noqa: BLE001 - the original outcome is what the caller needs
            logger.warning("could not remove the refresh token of an incomplete redemption")
