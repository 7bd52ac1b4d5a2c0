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
from ._records import (
    USED_CODE_FIELDS,
    cached_json,
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
        code = self._store(self.authorization_codes, record, record["exp"], encoded=raw)
        if issued is not None and raw is not None:
            issued.put(code, raw, expires_at=record["exp"])  # never kept past the code's exp
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
        if isinstance(record.get("sid"), str):  # the login session (see revoke_session)
            grant["sid"] = record["sid"]
        codes = self.authorization_codes
        access_token: Optional[AccessToken] = None
        refresh_token: Optional[str] = None
        # the tokens are dated ``issued_at``, taken before this read: if the logout comes
        # after it, they are refused at use
        if not record.get("used") and self._revoked_by_logout(record):
            raise InvalidAuthorizationCode("the end-user logged out after the code was issued")
        if is_sealed(codes):
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
            used = {name: record[name] for name in USED_CODE_FIELDS if name in record}
            used["used"] = True
            used["exp"] = keep_until
            used["issued"] = {"access_token": access_value, "refresh_token": refresh_value}
            tokens = self.access_tokens
            tokens_sealed = is_sealed(tokens)
            if (refresh_value is not None and not tokens_sealed
                    and not is_sealed(self.refresh_tokens)):
                # written before the code is marked used, so a replay that finds the code
                # used finds this token too and revokes it (no window after the mark);
                # removed again if this redemption loses or the storage fails
                refresh_token = self._create_refresh_token(grant, access_value, now,
                                                           refresh_value)
            try:
                if tokens_sealed:
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
            if replaced and not tokens_sealed:
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

    def _revoke_code_grant(self, used_record: Mapping[str, Any]) -> None:
        issued = used_record.get("issued") or {}
        access = issued.get("access_token")
        if isinstance(access, str):
            self._delete_access_token(access)
        refresh = issued.get("refresh_token")
        if isinstance(refresh, str):
            self.revoke_refresh_token(refresh)
        logger.warning("authorization code replayed: tokens issued from it were revoked")
