"""The exception tree of pyop.

Every OAuth error carries:

* ``oauth_error`` -- the error code of RFC 6749 4.1.2.1 / 5.2, RFC 6750 3.1,
  OIDC Core 3.1.2.6 or OIDC Dynamic Registration 3.3;
* ``http_status`` -- the HTTP status the host should answer with;
* ``redirectable`` -- whether the error may be sent to the client's
  ``redirect_uri`` (only once the client and its redirect URI are verified).

``str(error)`` is the ``error_description``. All exceptions except
:class:`AuthorizationError` and :class:`StorageError` are :class:`ValueError`
subclasses, as in pyop 3.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional

from .response_mode import render_form_post, should_fragment_encode

__all__ = [
    "OAuthError",
    "InvalidRequestError",
    "InvalidAuthenticationRequest",
    "InvalidRedirectURI",
    "InvalidClientId",
    "UnknownClientId",
    "AuthorizationError",
    "RequestedSubjectMismatch",
    "InvalidClientAuthentication",
    "InvalidTokenRequest",
    "InvalidAuthorizationCode",
    "InvalidRefreshToken",
    "InvalidScope",
    "UnsupportedGrantType",
    "UnauthorizedClient",
    "BearerTokenError",
    "InvalidAccessToken",
    "InsufficientScope",
    "TokenWithoutEndUser",
    "InvalidUserinfoRequest",
    "InvalidClientRegistrationRequest",
    "InvalidRegistrationAccessToken",
    "InvalidSubjectIdentifier",
    "InvalidEndSessionRequest",
    "InvalidConfiguration",
    "StorageError",
    "UnknownUser",
    "FetchError",
    "IdTokenHintMismatch",
    "ReauthenticationRequired",
    "UnmetAuthenticationRequirements",
    "InvalidPushedAuthorizationRequest",
    "InvalidRequestURI",
    "InvalidClientCertificate",
    "InvalidDPoPProof",
    "UseDPoPNonce",
    "DPoPTokenError",
]

logger = logging.getLogger(__name__)


class OAuthError(ValueError):
    """Base class of every protocol error (RFC 6749 5.2).

    :param message: the human readable ``error_description``.
    :param oauth_error: the OAuth error code.
    """

    default_oauth_error = "invalid_request"
    http_status = 400
    redirectable = False

    def __init__(self, message: str = "", oauth_error: Optional[str] = None) -> None:
        super().__init__(message)
        self.oauth_error: str = oauth_error or self.default_oauth_error

    def to_dict(self) -> dict[str, str]:
        """The error as the JSON object of RFC 6749 5.2."""
        error = {"error": self.oauth_error}
        description = str(self)
        if description:
            error["error_description"] = description
        return error

    def to_json(self) -> str:
        """The error serialised as the JSON body of RFC 6749 5.2."""
        return json.dumps(self.to_dict())


class InvalidRequestError(OAuthError):
    """An invalid request (RFC 6749 5.2): the base of the errors about a request, as in
    pyop 3; raised itself for a malformed one (bad encoding, duplicate or oversized
    parameters, RFC 6749 3.1).

    :param message: error description.
    :param parsed_request: the request as far as it was parsed (optional), kept as
        :attr:`request` (also readable as :attr:`parsed_request`).
    :param oauth_error: the error code, ``invalid_request`` by default.
    """

    def __init__(self, message: str = "", parsed_request: Optional[Any] = None,
                 oauth_error: Optional[str] = None) -> None:
        super().__init__(message, oauth_error)
        self.request: Any = parsed_request if parsed_request is not None else {}

    @property
    def parsed_request(self) -> Any:
        """The request the error is about (the ``parsed_request`` argument)."""
        return self.request


class InvalidAuthenticationRequest(InvalidRequestError):
    """An invalid authentication request (OIDC Core 3.1.2.6).

    :param message: error description.
    :param parsed_request: the request as far as it could be parsed (a dict or
        an ``oic`` message); used to build the error response.
    :param oauth_error: the error code, ``invalid_request`` by default.

    Hosts call :meth:`to_error_url`: a URL to redirect the user agent to, or
    ``None`` when the error must be shown to the end-user instead because the
    client or its redirect URI could not be verified. For a request with
    ``response_mode=form_post`` (``pyop.util.should_form_post(error.request)``),
    :meth:`to_form_post` gives the HTML page to answer with instead.
    """

    def __init__(
        self,
        message: str,
        parsed_request: Optional[Mapping[str, Any]] = None,
        oauth_error: Optional[str] = "invalid_request",
        *,
        redirect_uri_verified: bool = False,
        issuer: Optional[str] = None,
    ) -> None:
        super().__init__(message, parsed_request, oauth_error)
        #: True only once the library has checked client_id and redirect_uri.
        self.redirect_uri_verified = redirect_uri_verified
        self.issuer = issuer
        #: For a request with a JARM response mode (JARM 2.3), set by the provider once
        #: the redirect_uri is verified: ``sign(parameters) -> JWT``; the error response
        #: is then the single ``response`` parameter (JARM 2.1.3). None: plain parameters.
        self.response_signer: Optional[Callable[[dict[str, Any]], str]] = None

    @property
    def redirectable(self) -> bool:  # type: ignore[override]
        """True once the client and its redirect_uri were verified (fatal checks first)."""
        return self.redirect_uri_verified

    def _error_response(self) -> Any:
        """The error response message (OIDC Core 3.1.2.6; RFC 9207 ``iss``)."""
        from oic.oic.message import AuthorizationErrorResponse

        response = AuthorizationErrorResponse(error=self.oauth_error)
        description = str(self)
        if description:
            response["error_description"] = description
        state = self.request.get("state")
        if isinstance(state, str):
            response["state"] = state
        if self.issuer:
            response["iss"] = self.issuer
        if self.response_signer is not None:
            from oic.oauth2.message import Message

            return Message(response=self.response_signer(response.to_dict()))
        return response

    def to_error_url(self) -> Optional[str]:
        """The redirect URL carrying this error (OIDC Core 3.1.2.6), or ``None``.

        The error goes in the fragment for response types issuing tokens from
        the authorization endpoint (OIDC Core 3.2.2.6, 3.3.2.6) or when
        ``response_mode=fragment`` or ``fragment.jwt``; in the query otherwise (also for
        ``response_mode=form_post``, for hosts that do not answer with
        :meth:`to_form_post`). With a JARM response mode enabled by the provider the
        error travels as a signed JWT, the ``response`` parameter (JARM 2.1.3, 2.3).
        """
        if not self.redirectable:
            return None
        redirect_uri = self.request.get("redirect_uri")
        if not isinstance(redirect_uri, str):
            return None
        response = self._error_response()
        try:
            fragment = should_fragment_encode(self.request)
        except Exception:  # pragma: no cover - defensive: never crash building errors
            fragment = True
        url: str = response.request(redirect_uri, fragment)
        return url

    def to_form_post(self) -> Optional[str]:
        """The error as an auto-submitting HTML form page, or ``None``.

        OAuth 2.0 Form Post Response Mode 2, for requests with
        ``response_mode=form_post``: serve it as :func:`pyop.util.render_form_post`
        says (200, ``text/html``, ``Cache-Control: no-store`` and its
        Content-Security-Policy). ``None`` when the error must not reach the
        client (see :meth:`to_error_url`) or its redirect URI is not http(s).
        """
        if not self.redirectable:
            return None
        redirect_uri = self.request.get("redirect_uri")
        if not isinstance(redirect_uri, str):
            return None
        try:
            return render_form_post(self._error_response(), redirect_uri)
        except ValueError:
            return None


class _NeverRedirected(InvalidAuthenticationRequest):
    """An authentication request error about the client or its ``redirect_uri`` themselves:
    never sent to the client (RFC 6749 4.1.2.1, RFC 9700 4.1.3)."""

    def __init__(self, message: str, parsed_request: Optional[Mapping[str, Any]] = None,
                 oauth_error: Optional[str] = "invalid_request", **kwargs: Any) -> None:
        kwargs["redirect_uri_verified"] = False
        super().__init__(message, parsed_request, oauth_error, **kwargs)

    @property
    def redirectable(self) -> bool:  # type: ignore[override]
        """Always False: the client or its redirect_uri could not be verified."""
        return False

    def to_error_url(self) -> Optional[str]:
        """Always ``None``: this error must never reach an unverified URI."""
        return None

    def to_form_post(self) -> Optional[str]:
        """Always ``None``: this error must never reach an unverified URI."""
        return None


class InvalidClientId(_NeverRedirected):
    """Missing or unknown ``client_id``: never redirected (RFC 6749 4.1.2.1).

    pyop 3 called it :data:`UnknownClientId`: both names are this class.
    """


#: pyop 3's name of :class:`InvalidClientId` (the same class).
UnknownClientId = InvalidClientId


class InvalidRedirectURI(_NeverRedirected):
    """Missing or unregistered ``redirect_uri``, for a known client: never redirected
    (OIDC Core 3.1.2.1, RFC 9700 4.1.3)."""


class AuthorizationError(Exception):
    """The end-user or host refused the authorization (not a ``ValueError``, as in pyop 3)."""


class RequestedSubjectMismatch(InvalidAuthenticationRequest, AuthorizationError):
    """The request asked for a ``sub`` value other than the authenticated end-user's.

    OIDC Core 3.1.2.2 and 5.5.1: the provider must not answer with an ID token or
    access token for another user. Raised by :meth:`~pyop.provider.Provider.authorize`
    before anything is issued; an :class:`AuthorizationError` (what pyop 3 raised) and a
    redirectable :class:`InvalidAuthenticationRequest` whose ``oauth_error`` is
    ``login_required`` (OIDC Core 3.1.2.6): send it with ``to_error_url()``, or ask the
    right end-user to log in.
    """

    default_oauth_error = "login_required"

    def __init__(self, message: str, parsed_request: Optional[Mapping[str, Any]] = None,
                 oauth_error: str = "login_required", **kwargs: Any) -> None:
        super().__init__(message, parsed_request, oauth_error, **kwargs)


class IdTokenHintMismatch(RequestedSubjectMismatch):
    """The request's ``id_token_hint`` names another end-user than the one being authorized.

    OIDC Core 3.1.2.1 (``id_token_hint``): when the end-user it identifies is not the
    one logged in, the provider returns an error such as ``login_required``. Raised by
    :meth:`~pyop.provider.Provider.authorize` before anything is issued; a
    :class:`RequestedSubjectMismatch` (``login_required``, redirectable). For
    ``prompt=none`` send it with ``to_error_url()``; otherwise the host may instead ask the
    end-user to switch accounts (:meth:`~pyop.provider.Provider.hint_matches_user`).
    """


class ReauthenticationRequired(InvalidAuthenticationRequest, AuthorizationError):
    """The ``auth_time`` given to :meth:`~pyop.provider.Provider.authorize` is older than
    the request allows: before the request for ``prompt=login`` or ``max_age=0``, older
    than ``max_age`` (or the client's ``default_max_age``) seconds before the request
    otherwise (OIDC Core 3.1.2.1; OIDC Dynamic Registration 2).

    Nothing is issued. Redirectable, ``oauth_error`` ``login_required`` (OIDC Core
    3.1.2.6): the host should have authenticated the end-user again
    (:meth:`~pyop.provider.Provider.requires_authentication`).
    """

    default_oauth_error = "login_required"

    def __init__(self, message: str, parsed_request: Optional[Mapping[str, Any]] = None,
                 oauth_error: str = "login_required", **kwargs: Any) -> None:
        super().__init__(message, parsed_request, oauth_error, **kwargs)


class UnmetAuthenticationRequirements(InvalidAuthenticationRequest, AuthorizationError):
    """The ``acr`` achieved is not one of the values of an essential ``acr`` claim request.

    OIDC Core 5.5.1.1: the provider must then treat the authentication as failed. Raised
    by :meth:`~pyop.provider.Provider.authorize` before anything is issued; redirectable,
    with ``oauth_error`` ``unmet_authentication_requirements`` (OpenID Connect Core Error
    Code unmet_authentication_requirements 1.0, defined for exactly this case). The host
    may instead authenticate the end-user again with a method that achieves one of
    :meth:`~pyop.provider.Provider.requested_acr_values`.
    """

    default_oauth_error = "unmet_authentication_requirements"

    def __init__(self, message: str, parsed_request: Optional[Mapping[str, Any]] = None,
                 oauth_error: str = "unmet_authentication_requirements",
                 **kwargs: Any) -> None:
        super().__init__(message, parsed_request, oauth_error, **kwargs)


class InvalidClientAuthentication(OAuthError):
    """Client authentication failed (RFC 6749 5.2): answer 401 with ``WWW-Authenticate``."""

    default_oauth_error = "invalid_client"
    http_status = 401


class InvalidTokenRequest(InvalidRequestError):
    """An invalid token request (RFC 6749 5.2).

    :param message: error description.
    :param parsed_request: the parsed request (optional).
    :param oauth_error: the error code, ``invalid_request`` by default.
    """

    def __init__(self, message: str = "", parsed_request: Optional[Mapping[str, Any]] = None,
                 oauth_error: Optional[str] = None) -> None:
        super().__init__(message, parsed_request, oauth_error)


class InvalidAuthorizationCode(InvalidTokenRequest):
    """Unknown, expired, replayed or mismatched authorization code (``invalid_grant``)."""

    default_oauth_error = "invalid_grant"


class InvalidRefreshToken(InvalidTokenRequest):
    """Unknown, expired, foreign or replayed refresh token (``invalid_grant``)."""

    default_oauth_error = "invalid_grant"


class InvalidScope(InvalidTokenRequest):
    """Requested scope exceeds the grant (RFC 6749 6, ``invalid_scope``)."""

    default_oauth_error = "invalid_scope"


class UnsupportedGrantType(InvalidTokenRequest):
    """``grant_type`` not supported by this provider (RFC 6749 5.2)."""

    default_oauth_error = "unsupported_grant_type"


class UnauthorizedClient(InvalidTokenRequest):
    """The client is not registered for this grant type (RFC 6749 5.2)."""

    default_oauth_error = "unauthorized_client"


class BearerTokenError(OAuthError):
    """Bearer token missing or malformed (RFC 6750 3.1): 401 ``invalid_token``.

    ``www_authenticate`` is the ``WWW-Authenticate`` header value to send.
    """

    default_oauth_error = "invalid_token"
    http_status = 401

    def __init__(self, message: str = "", oauth_error: Optional[str] = None,
                 http_status: Optional[int] = None, *, token_missing: bool = False) -> None:
        super().__init__(message, oauth_error)
        if http_status is not None:
            self.http_status = http_status
        #: True when the request carried no token at all (RFC 6750 3.1: then no error code).
        self.token_missing = token_missing

    @property
    def www_authenticate(self) -> str:
        """``WWW-Authenticate`` header value (RFC 6750 3).

        A request without any token gets a bare ``Bearer`` challenge (RFC 6750 3.1: "the
        resource server SHOULD NOT include an error code").
        """
        if self.token_missing or (self.oauth_error == "invalid_request"
                                  and self.http_status == 401):
            return "Bearer"
        return f'Bearer error="{self.oauth_error}"'


class InvalidAccessToken(BearerTokenError):
    """Unknown, expired or revoked access token (RFC 6750 3.1 ``invalid_token``)."""


class InsufficientScope(BearerTokenError):
    """The access token lacks the required scope (RFC 6750 3.1): 403."""

    default_oauth_error = "insufficient_scope"
    http_status = 403


class TokenWithoutEndUser(InsufficientScope):
    """An access token issued to a client for itself (``client_credentials``, RFC 6749 4.4)
    presented at the UserInfo endpoint: there is no end-user to describe (OIDC Core 5.3).
    403 ``insufficient_scope``."""


class InvalidDPoPProof(InvalidTokenRequest):
    """A token request whose DPoP proof is missing, malformed or invalid (RFC 9449 4.3,
    5): 400 ``invalid_dpop_proof``. :attr:`headers` are the response headers to add
    (``DPoP-Nonce`` for :class:`UseDPoPNonce`)."""

    default_oauth_error = "invalid_dpop_proof"

    def __init__(self, message: str = "", parsed_request: Optional[Mapping[str, Any]] = None,
                 oauth_error: Optional[str] = None, *,
                 headers: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(message, parsed_request, oauth_error)
        #: Response headers the host adds to the error response.
        self.headers: dict[str, str] = dict(headers or {})


class UseDPoPNonce(InvalidDPoPProof):
    """The DPoP proof lacks the server nonce, or has a stale one (RFC 9449 8): 400
    ``use_dpop_nonce``; send ``error.headers`` (``DPoP-Nonce: <nonce>``) with it."""

    default_oauth_error = "use_dpop_nonce"


class InvalidUserinfoRequest(BearerTokenError):
    """Malformed UserInfo request, e.g. a token in several places (RFC 6750 2): 400."""

    default_oauth_error = "invalid_request"
    http_status = 400


class DPoPTokenError(BearerTokenError):
    """A request to a protected resource (UserInfo) with a DPoP-bound access token, or the
    ``DPoP`` scheme, that fails (RFC 9449 7.1): 401 with a ``DPoP`` challenge naming the
    error and the accepted ``algs``; ``invalid_dpop_proof`` (missing or invalid proof,
    proof of another key), ``invalid_token`` (e.g. a DPoP-bound token sent as a bearer
    token, RFC 9449 7.2), ``use_dpop_nonce`` (RFC 9449 9), or the error of the request
    otherwise (e.g. 403 ``insufficient_scope``). Send ``error.headers``.
    """

    def __init__(self, message: str = "", oauth_error: Optional[str] = None,
                 http_status: Optional[int] = None, *, algs: Any = (),
                 nonce: Optional[str] = None, token_missing: bool = False) -> None:
        super().__init__(message, oauth_error, http_status, token_missing=token_missing)
        #: The JWS algs accepted for DPoP proofs (the challenge's ``algs``).
        self.algs: list[str] = [alg for alg in algs if isinstance(alg, str)]
        #: A server nonce to send as ``DPoP-Nonce`` (RFC 9449 9), or None.
        self.nonce = nonce

    @property
    def www_authenticate(self) -> str:
        """``WWW-Authenticate`` header value: a ``DPoP`` challenge (RFC 9449 7.1)."""
        params = []
        if not self.token_missing:
            params.append(f'error="{self.oauth_error}"')
            description = str(self).replace("\\", "").replace('"', "'")
            if description:
                params.append(f'error_description="{description}"')
        if self.algs:
            params.append(f'algs="{" ".join(self.algs)}"')
        return "DPoP " + ", ".join(params) if params else "DPoP"

    @property
    def headers(self) -> dict[str, str]:
        """The response headers: ``WWW-Authenticate`` and, with a nonce, ``DPoP-Nonce``."""
        headers = {"WWW-Authenticate": self.www_authenticate}
        if self.nonce is not None:
            headers["DPoP-Nonce"] = self.nonce
        return headers


class InvalidClientRegistrationRequest(InvalidRequestError):
    """Invalid registration request (OIDC Dynamic Registration 3.3).

    :param message: error description.
    :param parsed_request: the parsed request (optional).
    :param oauth_error: ``invalid_request``, ``invalid_redirect_uri`` or
        ``invalid_client_metadata``.
    """

    def __init__(self, message: str, parsed_request: Optional[Any] = None,
                 oauth_error: Optional[str] = "invalid_request") -> None:
        super().__init__(message, parsed_request, oauth_error)
        self.request = parsed_request

    def to_json(self) -> str:
        """The JSON body of the error response (OIDC Dynamic Registration 3.3)."""
        return json.dumps(self.to_dict())


class InvalidRegistrationAccessToken(BearerTokenError):
    """A client configuration request (RFC 7592 2) without a valid registration access token.

    Missing, wrong or revoked token, a token of another client, or an unknown or
    deleted client: all get the same 401 ``invalid_token`` (RFC 7592 2.1, RFC 6750
    3.1), so the answer does not reveal whether the client exists. Send
    ``WWW-Authenticate: <error.www_authenticate>`` and ``error.to_json()``.
    """

    def to_json(self) -> str:
        """The JSON body of the error response (RFC 6750 3.1, RFC 6749 5.2)."""
        return json.dumps(self.to_dict())


class InvalidSubjectIdentifier(ValueError):
    """Unknown subject identifier (e.g. at logout)."""


class UnknownUser(KeyError, ValueError):
    """``Provider.authorize`` was asked to authorize a user its claims source does not know.

    Nothing is issued. A ``KeyError``, as pyop 3's lookup of the user raised, so code
    written for pyop 3 still catches it (and a ``ValueError``, as every error of this
    library but ``AuthorizationError`` and ``StorageError``). The host decides what
    follows: show an error page, or add the user to the claims source and authorize
    again. Not an OAuth error:
    the end-user has logged in at the host, which knows why its user directory lacks them.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown user"


class InvalidEndSessionRequest(OAuthError, InvalidSubjectIdentifier):
    """Invalid RP-initiated logout request (OIDC RP-Initiated Logout 1.0, 2-3); never redirected.

    Also an :class:`InvalidSubjectIdentifier`, so a host catching that (as in
    pyop 3's logout example) answers it with an error page.
    """


class InvalidConfiguration(ValueError):
    """The provider configuration is invalid; the message names the field."""


class StorageError(Exception):
    """The storage backend failed (server down, timeout, corrupt record).

    Hosts map it to ``server_error`` / HTTP 503. ``oauth_error`` and
    ``http_status`` are provided for uniform handling.
    """

    oauth_error = "server_error"
    http_status = 503
    redirectable = False


class FetchError(ValueError):
    """A request to a URL a client registered failed (:mod:`pyop.outbound`).

    ``reason`` (also ``str(error)``) says why -- an address or URL not allowed, no
    connection, a redirect, a status, the deadline, the size limit, not JSON -- and is safe
    to log: it never contains the answer's body. Not an OAuth error: the caller turns it
    into its own (e.g. ``invalid_client_metadata``) without passing the reason on.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidPushedAuthorizationRequest(InvalidRequestError):
    """A refused pushed authorization request (RFC 9126 2.3): answer ``http_status`` (400)
    with :meth:`to_json`; never redirected, whatever the error (``invalid_request``,
    ``invalid_scope``, ``invalid_request_object``, ``unauthorized_client``...). A client
    that failed to authenticate gets :class:`InvalidClientAuthentication` (401) instead.
    """


class InvalidRequestURI(_NeverRedirected):
    """The ``request_uri`` of an authorization request is not a pushed request of this
    client that is still valid and unused (RFC 9126 4: ``invalid_request_uri``, RFC 9101
    6.2). Never redirected: the pushed request holds the redirect URI, and it was not
    read (RFC 6749 4.1.2.1)."""

    default_oauth_error = "invalid_request_uri"

    def __init__(self, message: str, parsed_request: Optional[Mapping[str, Any]] = None,
                 oauth_error: Optional[str] = "invalid_request_uri", **kwargs: Any) -> None:
        super().__init__(message, parsed_request, oauth_error, **kwargs)


class InvalidClientCertificate(InvalidClientAuthentication):
    """The client certificate the host passed is missing where needed, malformed or too
    large, or does not match the client's registration (RFC 8705 2): 401 ``invalid_client``."""


#: Names pyop 3's ``pyop.exceptions`` had from elsewhere, resolved on first use (the oic
#: messages of its error responses; ``should_fragment_encode``, imported above, is the
#: function of :mod:`pyop.util`).
_PYOP3_NAMES = {
    "AuthorizationErrorResponse": ("oic.oic.message", "AuthorizationErrorResponse"),
    "ClientRegistrationErrorResponse": ("oic.oic.message", "ClientRegistrationErrorResponse"),
}


def __getattr__(name: str) -> Any:
    """pyop 3's other module-level names (PEP 562), imported when first asked for."""
    if name in _PYOP3_NAMES:
        import importlib

        module, attribute = _PYOP3_NAMES[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
