"""Authorization codes of an authorization state (RFC 6749 4.1.2): issue, the cache of
the codes this process issued, and the single-use redemption that revokes the tokens of
a replayed code (RFC 9700 4.14.2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from ..access_token import AccessToken
from ..exceptions import (
    InvalidAuthorizationCode,
)
from ..storage.base import canonical_json
from ..util import claims_request_member
from ._access_tokens import token_type_of
from ._records import (
    GRANT_ID,
    MAX_TOKEN_LENGTH,
    USED_CODE_FIELDS,
    SealedValueTooLarge,
    authorization_too_large,
    cached_json,
    grant_id_of,
    is_sealed,
    new_token_value,
    request_dict,
    scope_list,
)
from ._refresh_tokens import RefreshTokens

logger = logging.getLogger(__name__)


class AuthorizationCodes(RefreshTokens):
    """Authorization codes of :class:`~pyop.authz_state.AuthorizationState`."""

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
        if is_sealed(self.authorization_codes):
            if user_info:
                data[self.KEY_USER_INFO] = dict(user_info)
            data[self.KEY_EXTRA_ID_TOKEN_CLAIMS] = dict(extra_id_token_claims or {})
        return self.issue_authorization_code(
            request_dict(authorization_request), subject_identifier, user,
            scope_list(scope, authorization_request), data)

    def issue_authorization_code(self, authorization_request: Mapping[str, Any],
                                 subject_identifier: str, user_id: str,
                                 scope: Sequence[str],
                                 extra: Optional[Mapping[str, Any]] = None) -> str:
        """Issue an authorization code bound to the request, user and granted scope.

        :param extra: further data to keep with the code (``auth_time``, ``acr``...,
            :attr:`KEY_EXTRA_ID_TOKEN_CLAIMS`, and :attr:`KEY_USER_INFO`: the claims the
            grant may release, carried over to its access and refresh tokens).
        :raises InvalidAuthenticationRequest: ``invalid_request``, a sealed code would be
            longer than the 4,096 characters the token endpoint reads (a large ``claims``
            request, many claims carried): no code is issued that could never be redeemed.
            Not redirectable by itself: this layer has not verified the ``redirect_uri``.
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
        issued = self._issued_codes
        raw: Optional[str] = None
        if issued is not None:
            # the record as storage holds it (JSON), so a hit returns what a read would;
            # made once for the cache and a memory store
            try:
                raw = canonical_json(record)
            except (TypeError, ValueError):  # not JSON (a plain dict store keeps it as is)
                raw = None
        try:
            code = self._store(self.authorization_codes, record, record["exp"], encoded=raw)
        except SealedValueTooLarge as error:
            raise authorization_too_large(error, authorization_request) from error
        if issued is not None and raw is not None:
            issued.put(code, raw, expires_at=record["exp"])  # never kept past the code's exp
        return code

    def get_authorization_code(self, authorization_code: Any) -> dict[str, Any]:
        """The record of an unexpired code (used or not); :class:`InvalidAuthorizationCode`.

        A sealed code already redeemed reads as a server-side one does: its record with
        ``used: True`` (and its ``grant_id``), so that redeeming it again revokes its grant.
        """
        record = self._live(self.authorization_codes, authorization_code)
        if record is None:
            record = self._spent_sealed_code(authorization_code)
        if record is None or record.get("token_type") != "authorization_code":
            raise InvalidAuthorizationCode("unknown or expired authorization code")
        return record

    def _spent_sealed_code(self, authorization_code: Any) -> Optional[dict[str, Any]]:
        """The record of a genuine, unexpired sealed code already redeemed (or revoked),
        marked ``used`` with the id of the grant it issued, as a server-side code's "used"
        record is: redeeming it again revokes that grant (RFC 6749 4.1.2). None for
        anything else."""
        codes = self.authorization_codes
        if (not is_sealed(codes) or not isinstance(authorization_code, str)
                or len(authorization_code) > MAX_TOKEN_LENGTH):
            return None
        record = codes.unseal(authorization_code)  # type: ignore[attr-defined]
        if not isinstance(record, dict) or record.get("token_type") != "authorization_code":
            return None
        return dict(record, used=True, grant_id=grant_id_of(authorization_code))

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
                record: dict[str, Any] = cached_json(raw)
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
            issue_refresh_token: bool = True,
            cnf: Optional[Mapping[str, Any]] = None,
            bind_refresh_token: bool = False) -> tuple[AccessToken, Optional[str]]:
        """Exchange a code for an access token (and refresh token), exactly once.

        The code record is atomically replaced by a "used" record naming the
        tokens issued; a second redemption finds it and revokes those tokens
        (RFC 6749 4.1.2). On sealed (stateless) storage the replay cache makes
        the code single-use, and a spent code (:meth:`get_authorization_code` reads it as
        used) redeemed again revokes the grant it issued, whose tokens carry its id
        (derived from the code).

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
        :param cnf: the confirmation the access token is bound to (RFC 7800 3.1), kept in
            its record: ``jkt`` of a DPoP proof's key (RFC 9449 6) and/or ``x5t#S256`` of a
            client certificate (RFC 8705 3), in one dict.
        :param bind_refresh_token: the refresh token carries ``cnf`` too (a public client's,
            RFC 9449 5, RFC 8705 4): refreshing then needs every member of it again.
        :raises InvalidAuthorizationCode: the code was already used, or the end-user
            logged out since it was issued (:meth:`delete_state_for_subject_identifier`).
        :raises InvalidTokenRequest: ``invalid_request``, a sealed token would be longer
            than 4,096 characters; the code is not spent.
        :raises ValueError: ``access_token_value`` given with sealed access tokens.
        """
        if access_token_value is not None and not self.access_token_values_are_random:
            raise ValueError("sealed access tokens: their value cannot be chosen in advance")
        self.forget_issued_authorization_code(authorization_code)
        issued_at = float(self.clock())
        now = int(issued_at)
        access_value = access_token_value or new_token_value()
        wants_refresh = self.issues_refresh_tokens and issue_refresh_token
        refresh_sealed = is_sealed(self.refresh_tokens)
        # the value of a refresh token stored server-side (a sealed one's is its record)
        refresh_value = new_token_value() if wants_refresh and not refresh_sealed else None
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
        if isinstance(record.get("sid"), str):  # the login session (see revoke_session)
            grant["sid"] = record["sid"]
        codes = self.authorization_codes
        # the tokens are dated ``issued_at``, taken before this read: if the logout comes
        # after it, they are refused at use
        if not record.get("used") and self._revoked_by_logout(record):
            raise InvalidAuthorizationCode("the end-user logged out after the code was issued")
        if record.get("used"):
            self._revoke_code_grant(record)
            raise InvalidAuthorizationCode("authorization code already used")
        access_token: Optional[AccessToken] = None
        refresh_token: Optional[str] = None
        access_sealed = is_sealed(self.access_tokens)
        codes_sealed = is_sealed(codes)
        # with every store server-side, the first access token is listed where a revocation
        # deletes it (the "used" code record, the refresh token's record) and is read
        # without the grant's mark; otherwise it carries the grant id, as later tokens do
        tagged = self.stateless
        # the grant id (a hash of the code) only where a record carries it
        grant_id = (grant_id_of(authorization_code) if tagged or wants_refresh
                    else "")
        access_grant = dict(grant, grant_id=grant_id) if tagged else grant
        refresh_grant = dict(grant, grant_id=grant_id) if wants_refresh else grant
        if cnf:  # sender-constrained (RFC 8705 3)
            access_grant = dict(access_grant, cnf=dict(cnf))
            if bind_refresh_token and wants_refresh:
                refresh_grant["cnf"] = dict(cnf)
        listed = None if tagged else access_value
        # sealed tokens store nothing: made before the code is spent, so that a grant too
        # large to seal fails without spending it
        if access_sealed:
            access_token = self._create_access_token(access_grant, now)
        if wants_refresh and refresh_sealed:
            refresh_token = self._create_refresh_token(refresh_grant, None, now)
        if codes_sealed:
            if codes.consume(authorization_code) is None:
                # redeemed meanwhile (or revoked): what the other redemption issued goes
                logger.warning("concurrent or repeated redemption of an authorization code")
                self._revoke_grant(grant_id)
                raise InvalidAuthorizationCode("authorization code already used")
        else:
            # the "used" record outlives the code, so a late replay still revokes the tokens;
            # it keeps what a replay needs, not the authentication request (half the bytes
            # to serialise and store)
            keep_until = max(int(record["exp"]), now + self.access_token_lifetime)
            used = {name: record[name] for name in USED_CODE_FIELDS if name in record}
            used["used"] = True
            used["exp"] = keep_until
            used["issued"] = {"access_token": None if access_sealed else access_value,
                              "refresh_token": refresh_value}
            if tagged or wants_refresh:
                used[GRANT_ID] = grant_id
            if refresh_value is not None:
                # written before the code is marked used, so a replay that finds the code
                # used finds this token too and revokes it (no window after the mark);
                # removed again if this redemption loses or the storage fails
                refresh_token = self._create_refresh_token(refresh_grant, listed, now,
                                                           refresh_value)
            try:
                if access_sealed:
                    replaced = codes.compare_and_set(authorization_code, record, used,
                                                     expires_at=keep_until)
                else:
                    # the access token is stored only if the code was marked used: one
                    # round trip for both where the backend allows it (Redis, PostgreSQL);
                    # remembered before, so that a replay revoking it as soon as the code
                    # is marked used forgets it here too
                    access_record = self._access_token_record(access_grant, now)
                    self._cache_issued_access_token(access_value, access_record)
                    replaced = codes.compare_and_set_then_set(
                        authorization_code, record, used, keep_until,
                        self.access_tokens, access_value, access_record, access_record["exp"])
            except Exception:
                self._forget_access_token(access_value)
                self._discard_refresh_token(refresh_value)
                raise
            if replaced and not access_sealed:
                access_token = AccessToken(access_value, self.access_token_lifetime,
                                           token_type_of(access_record))
            if not replaced:
                self._forget_access_token(access_value)
                self._discard_refresh_token(refresh_value)
                current = codes.get(authorization_code)
                if not isinstance(current, dict):
                    # gone since the record was read or cached (expired, deleted): the
                    # answer a read would have given
                    raise InvalidAuthorizationCode("unknown or expired authorization code")
                logger.warning("concurrent or repeated redemption of an authorization code")
                self._revoke_code_grant(current)
                raise InvalidAuthorizationCode("authorization code already used")

        if access_token is None:
            access_token = self._create_access_token(access_grant, now, access_value)
        if refresh_value is not None and refresh_token is None:
            refresh_token = self._create_refresh_token(refresh_grant, listed, now,
                                                       refresh_value)
        return access_token, refresh_token

    def _revoke_code_grant(self, used_record: Mapping[str, Any]) -> None:
        """Revoke what a replayed code issued (RFC 6749 4.1.2): its grant's mark, and the
        tokens its "used" record lists (those of an earlier version's record too)."""
        grant_id = used_record.get(GRANT_ID)
        if isinstance(grant_id, str) and grant_id:
            self._revoke_grant(grant_id)
        issued = used_record.get("issued") or {}
        access = issued.get("access_token")
        if isinstance(access, str):
            self._delete_access_token(access)
        refresh = issued.get("refresh_token")
        if isinstance(refresh, str):
            self.revoke_refresh_token(refresh)
        logger.warning("authorization code replayed: tokens issued from it were revoked")
