"""The pyop 3 exchanges and lookups of an authorization state: exchange a code for a
token (RFC 6749 4.1.2), a refresh token for an access token's grant (RFC 6749 6), and
read what a code or access token was issued for.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, cast

from ..access_token import AccessToken
from ..exceptions import (
    InvalidAuthorizationCode,
)
from ..message import AuthorizationRequest
from ._codes import AuthorizationCodes
from ._records import (
    GRANT_FIELDS,
    GRANT_ID,
    grant_id_of,
    is_sealed,
)

logger = logging.getLogger(__name__)


class Pyop3Lookups(AuthorizationCodes):
    """pyop 3's exchanges and lookups of :class:`~pyop.authz_state.AuthorizationState`."""

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
        grant: dict[str, Any] = {k: record[k] for k in GRANT_FIELDS if k in record}
        grant["scope"] = record["scope"]
        grant_id = record.get(GRANT_ID)
        if isinstance(grant_id, str) and grant_id:  # the token's grant: revoked with it
            grant[GRANT_ID] = grant_id
            return self._create_refresh_token(grant, None, self._now())
        # a grant of its own, listing the access token (revoking it deletes that token)
        grant[GRANT_ID] = grant_id_of(access_token_value)
        return self._create_refresh_token(grant, access_token_value, self._now())

    def _code_record(self, authorization_code: Any) -> dict[str, Any]:
        """The record of an unexpired code for the pyop 3 lookups, used or not.

        A sealed code is read from its value, so it can still be looked up after its
        exchange, as in pyop 3; a stored code that was redeemed keeps only what replay
        detection needs (``sub``, ``client_id``, ``scope``...).

        :raises InvalidAuthorizationCode: unknown or expired code.
        """
        codes = self.authorization_codes
        if is_sealed(codes):
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
