"""Access tokens of an authorization state: issue, look up, introspect and revoke
bearer tokens (RFC 6750, RFC 7662 2.2, RFC 7009 2.1; implicit and hybrid flows,
OIDC Core 3.2.2.5; ``client_credentials``, RFC 6749 4.4).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from ..access_token import AccessToken
from ..exceptions import (
    InvalidAccessToken,
)
from ..storage.base import canonical_json
from ..util import claims_request_member
from ._records import (
    DPOP_TOKEN_TYPE,
    SealedValueTooLarge,
    authorization_too_large,
    cached_json,
    is_sealed,
    new_token_value,
    scope_list,
)
from ._subjects import SubjectIdentifiers

logger = logging.getLogger(__name__)


def token_type_of(record: Mapping[str, Any]) -> str:
    """``DPoP`` for an access token bound to a DPoP key (``cnf.jkt``, RFC 9449 5), else
    ``Bearer``."""
    cnf = record.get("cnf")
    if cnf is not None and isinstance(cnf, Mapping) and "jkt" in cnf:
        return DPOP_TOKEN_TYPE
    return AccessToken.BEARER_TOKEN_TYPE


class AccessTokens(SubjectIdentifiers):
    """Access tokens of :class:`~pyop.authz_state.AuthorizationState`."""

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
        return AccessToken(stored, self.access_token_lifetime, token_type_of(record))

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
        carried = dict(user_info) if user_info and is_sealed(self.access_tokens) else None
        return self.issue_access_token(authorization_request, subject_identifier, user,
                                       scope_list(scope, authorization_request),
                                       user_info=carried)

    def issue_access_token(self, authorization_request: Mapping[str, Any],
                           subject_identifier: str, user_id: str, scope: Sequence[str],
                           *, user_info: Optional[Mapping[str, Any]] = None,
                           session_id: Optional[str] = None) -> AccessToken:
        """Issue an access token directly (implicit and hybrid flows, OIDC Core 3.2.2.5).

        :param user_info: the end-user's claims the token may release
            (:attr:`KEY_USER_INFO`), kept in its record.
        :param session_id: the login session the grant belongs to (``sid``), kept in its
            record (see :meth:`revoke_session`).
        :raises InvalidAuthenticationRequest: ``invalid_request``, the token would be sealed
            into a value longer than the 4,096 characters read back (a large ``claims``
            request or ``user_info``); not redirectable by itself (see
            ``docs/security.rst``).
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
        if session_id is not None:
            grant["sid"] = session_id
        try:
            return self._create_access_token(grant, int(grant["issued_at"]))
        except SealedValueTooLarge as error:
            raise authorization_too_large(error, authorization_request) from error

    def create_client_access_token(self, client_id: str, scope: Sequence[str], *,
                                   cnf: Optional[Mapping[str, Any]] = None) -> AccessToken:
        """Issue an access token to a client for itself (``client_credentials``, RFC 6749 4.4).

        The record has the client and the scope, and no ``sub`` or ``user_id``: no
        end-user is involved. No refresh token goes with it (RFC 6749 4.4.3).

        :param cnf: the confirmation the token is bound to (RFC 7800 3.1): ``jkt`` of a
            DPoP key (RFC 9449 6) and/or ``x5t#S256`` of a client certificate (RFC 8705 3).
        """
        grant: dict[str, Any] = {"client_id": client_id, "scope": " ".join(scope),
                                 "grant_type": "client_credentials"}
        if cnf:
            grant["cnf"] = dict(cnf)
        return self._create_access_token(grant, self._now())

    def introspect_access_token(self, access_token_value: Any) -> dict[str, Any]:
        """What pyop 3 answered about a live access token (RFC 7662 2.2 members).

        ``{"active": True, "scope", "client_id", "token_type": "Bearer", "exp", "iat",
        "sub", "aud": [client_id]}`` (no ``sub`` for a ``client_credentials`` token), and
        the ``cnf`` of a sender-constrained token (RFC 9449 6.2, RFC 8705 3.2).
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
        result["token_type"] = token_type_of(record)
        if isinstance(record.get("cnf"), dict):  # RFC 9449 6.2, RFC 8705 3.2
            result["cnf"] = dict(record["cnf"])
        return result

    def get_access_token(self, access_token_value: Any) -> dict[str, Any]:
        """The live record of an access token; :class:`InvalidAccessToken` if none.

        A token whose end-user logged out since it was issued is refused
        (:meth:`delete_state_for_subject_identifier`), and one whose grant was revoked
        (a token issued by a refresh, or from a sealed code: its record names its grant,
        whose revocation mark is read, see :meth:`revoke_refresh_token`). With
        ``access_token_cache_ttl``, a token this process issued less than that many
        seconds ago (and did not revoke, nor its grant, nor its end-user log out through
        this process) is answered from memory, without reading ``access_token_db`` or the
        marks.
        """
        issued = self._issued_access_tokens
        if issued is not None and isinstance(access_token_value, str):
            raw = issued.get(access_token_value)
            if raw is not None:
                cached: dict[str, Any] = cached_json(raw)
                if (cached.get("exp", 0) > self._now() and not self._locally_logged_out(cached)
                        and not self._locally_revoked_grant(cached)):
                    return cached
                issued.discard(access_token_value)
        record = self._live(self.access_tokens, access_token_value)
        if (record is None or record.get("token_type") != "access_token"
                or self._revoked_by_logout(record) or self._revoked_grant_of(record)):
            raise InvalidAccessToken("the access token is unknown, expired or revoked")
        return record

    def revoke_access_token(self, access_token_value: str) -> bool:
        """Revoke an access token; True if it was live."""
        return self._delete_access_token(access_token_value)

    @property
    def access_token_values_are_random(self) -> bool:
        """Whether access token values are random strings known before the token is
        stored (every storage but sealed, stateless ones, whose value is the sealed
        record): :meth:`redeem_authorization_code` then accepts ``access_token_value``."""
        return not is_sealed(self.access_tokens)
