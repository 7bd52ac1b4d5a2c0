"""Refresh tokens of an authorization state (RFC 6749 6): refresh, rotation and replay
detection (RFC 9700 4.14.2), and the revocation of a grant chain (RFC 7009 2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Optional, overload

from ..access_token import AccessToken
from ..exceptions import (
    InvalidRefreshToken,
    InvalidScope,
)
from ._access_tokens import AccessTokens
from ._records import (
    GRANT_FIELDS,
    MAX_GRANT_CHAIN,
    MAX_GRANT_UPDATES,
    Listing,
    expired_entry,
    is_sealed,
    new_token_value,
)

logger = logging.getLogger(__name__)


class RefreshTokens(AccessTokens):
    """Refresh tokens of :class:`~pyop.authz_state.AuthorizationState`."""

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

        grant: dict[str, Any] = {k: record[k] for k in GRANT_FIELDS if k in record}
        grant["scope"] = " ".join(new_scope)
        grant["issued_at"] = issued_at
        threshold = self.refresh_token_threshold
        rotate = rotate or bool(threshold and threshold > 0 and record["exp"] - now < threshold)
        if is_sealed(self.refresh_tokens):
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
        full_grant: dict[str, Any] = {k: record[k] for k in GRANT_FIELDS if k in record}
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
                               access_value: str, now: int) -> Listing:
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
        for _ in range(MAX_GRANT_UPDATES):
            updated = dict(record)
            updated["access_tokens"] = [
                entry for entry in record.get("access_tokens") or []
                if not expired_entry(entry, now)
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
        if (record is None or record.get("token_type") != "refresh_token"
                or self._revoked_by_logout(record)):
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
        while isinstance(value, str) and seen < MAX_GRANT_CHAIN:
            seen += 1
            record = self.refresh_tokens.consume(value)
            if not isinstance(record, dict):
                break
            for entry in record.get("access_tokens") or []:
                if isinstance(entry, list) and entry and isinstance(entry[0], str):
                    self._delete_access_token(entry[0])
            value = record.get("replaced_by")

    def _discard_refresh_token(self, refresh_token: Optional[str]) -> None:
        """Remove a refresh token written for a redemption that did not complete (it was
        never sent); a storage failure here is logged, the token is unknown to anyone."""
        if refresh_token is None:
            return
        try:
            self.refresh_tokens.delete(refresh_token)
        except Exception:  # noqa: BLE001 - the original outcome is what the caller needs
            logger.warning("could not remove the refresh token of an incomplete redemption")
