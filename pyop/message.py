"""OIDC message classes (``oic`` messages) as pyop uses them.

``AuthorizationRequest().from_dict(...)`` is how hosts rebuild a request stored
in their session (see the README). The classes are ``oic`` messages with
verification rules relaxed where pyop does the checking itself (e.g. the
issuer scheme of :class:`ProviderConfigurationResponse`, which allows http for
loopback hosts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, TypeVar, cast
from urllib.parse import urlsplit

from oic.oauth2.message import (
    OPTIONAL_LIST_OF_SP_SEP_STRINGS,
    OPTIONAL_LIST_OF_STRINGS,
    REQUIRED_LIST_OF_SP_SEP_STRINGS,
    SINGLE_OPTIONAL_INT,
    SINGLE_OPTIONAL_STRING,
    SINGLE_REQUIRED_STRING,
    Message,
    ParamDefinition,
)
from oic.oic import message as oic_message
from oic.oic.message import SINGLE_OPTIONAL_BOOLEAN

from .crypto import SigningKey, jws_sign
from .util import is_https_or_loopback_http

_SINGLE_REQUIRED_BOOLEAN = ParamDefinition(bool, True, None, None, False)
#: ``oic``'s serializer of space-separated lists (``scope``, ``response_type``): a list
#: becomes ``" ".join(list)``.
_SP_SEP_LIST_SERIALIZER = REQUIRED_LIST_OF_SP_SEP_STRINGS.serializer
#: ... and its deserializer: a ``str`` becomes ``value.split(" ")``.
_SP_SEP_LIST_DESERIALIZER = REQUIRED_LIST_OF_SP_SEP_STRINGS.deserializer
_SINGLE_REQUIRED_INT = ParamDefinition(int, True, None, None, False)


class _DictGet:
    """``get`` as one dict lookup.

    ``oic``'s ``Message.get`` is ``try: return self[item] except KeyError: return
    default`` with ``__getitem__`` reading ``self._dict``: the same result, but two
    Python calls and, for an absent member, a raised and caught ``KeyError``. The
    provider reads its configuration and the authentication request with ``get`` many
    times per request. Mixed into the classes below only (before the ``oic`` class).
    """

    _dict: dict[str, Any]

    def get(self, item: Any, default: Any = None) -> Any:
        return self._dict.get(item, default)

__all__ = [
    "AuthorizationRequest",
    "AccessTokenRequest",
    "RefreshAccessTokenRequest",
    "AuthorizationResponse",
    "AuthorizationErrorResponse",
    "AccessTokenResponse",
    "TokenErrorResponse",
    "RegistrationRequest",
    "RegistrationResponse",
    "ClientRegistrationErrorResponse",
    "ProviderConfigurationResponse",
    "IdToken",
    "OpenIDSchema",
    "EndSessionRequest",
    "EndSessionResponse",
    "UserInfoErrorResponse",
    "ClaimsRequest",
    "TokenIntrospectionResponse",
    "UserinfoResponse",
    "Message",
    "PushedAuthorizationResponse",
]


class AuthorizationRequest(_DictGet, oic_message.AuthorizationRequest):
    """OIDC authentication request (OIDC Core 3.1.2.1) with PKCE (RFC 7636 4.3)."""

    c_param = oic_message.AuthorizationRequest.c_param.copy()
    c_param.update(
        {
            "code_challenge": SINGLE_OPTIONAL_STRING,
            "code_challenge_method": SINGLE_OPTIONAL_STRING,
        }
    )

    def to_dict(self, lev: int = 0) -> dict[str, Any]:
        """``oic``'s ``to_dict`` (same result), in one pass over the members.

        Members that are all parameters of the request whose (serialised) values are
        strings, integers or lists starting with a string -- the requests
        :meth:`~pyop.provider.Provider.parse_authentication_request` returns, unless
        they have a ``claims`` parameter -- are copied directly; any other request is
        left to ``oic``.
        """
        get = self.c_param.get
        result: dict[str, Any] = {}
        for key, value in self._dict.items():
            param = get(key)
            if param is None:
                return cast(dict[str, Any], super().to_dict(lev))  # e.g. "name#lang" members
            serializer = param.serializer
            if serializer:
                if serializer is not _SP_SEP_LIST_SERIALIZER:
                    value = serializer(value, "dict", lev + 1)
                elif type(value) is list:
                    value = " ".join(value)  # what it returns for a list (scope...)
                elif type(value) is not str:  # (a str it returns as it is)
                    value = serializer(value, "dict", lev + 1)
            kind = type(value)
            if kind is str or kind is int or (kind is list and (not value
                                                                or type(value[0]) is str)):
                result[key] = value
            else:
                return cast(dict[str, Any], super().to_dict(lev))
        return result


class AccessTokenRequest(oic_message.AccessTokenRequest):
    """Token request (RFC 6749 4.1.3) with PKCE ``code_verifier`` (RFC 7636 4.5)."""

    c_param = oic_message.AccessTokenRequest.c_param.copy()
    c_param.update({"code_verifier": SINGLE_OPTIONAL_STRING})


class RefreshAccessTokenRequest(oic_message.RefreshAccessTokenRequest):
    """Refresh request (RFC 6749 6)."""


class ProviderConfigurationResponse(_DictGet, oic_message.ProviderConfigurationResponse):
    """OpenID Provider Metadata (OIDC Discovery 3) plus RFC 8414/7636/9207 members.

    ``verify()`` allows an ``http`` issuer for loopback hosts only.
    """

    c_param = oic_message.ProviderConfigurationResponse.c_param.copy()
    c_param.update(
        {
            "code_challenge_methods_supported": OPTIONAL_LIST_OF_STRINGS,
            "introspection_endpoint": SINGLE_OPTIONAL_STRING,
            "introspection_endpoint_auth_methods_supported": OPTIONAL_LIST_OF_STRINGS,
            "revocation_endpoint": SINGLE_OPTIONAL_STRING,
            "revocation_endpoint_auth_methods_supported": OPTIONAL_LIST_OF_STRINGS,
            "authorization_response_iss_parameter_supported": SINGLE_OPTIONAL_BOOLEAN,
            # RFC 9101 10.5; JARM 3
            "require_signed_request_object": SINGLE_OPTIONAL_BOOLEAN,
            "authorization_signing_alg_values_supported": OPTIONAL_LIST_OF_STRINGS,
        }
    )
    c_default: dict[str, Any] = {}

    def verify(self, **kwargs: Any) -> bool:
        issuer = self.get("issuer")
        if not isinstance(issuer, str) or not is_https_or_loopback_http(issuer):
            raise ValueError("issuer must be an https URL (http only for loopback hosts)")
        parts = urlsplit(issuer)
        if parts.query or parts.fragment:
            raise ValueError("issuer must not have a query or fragment")
        original = self["issuer"]
        try:
            # oic insists on https; the scheme was checked above.
            self._dict["issuer"] = "https://" + issuer.split("://", 1)[1]
            super().verify(**kwargs)
        finally:
            self._dict["issuer"] = original
        return True


class TokenIntrospectionResponse(Message):
    """Token introspection response (RFC 7662 2.2).

    ``active`` is required; the other members are present for active tokens only.
    ``scope`` is the space-separated string of the RFC.
    """

    c_param = {
        "active": _SINGLE_REQUIRED_BOOLEAN,
        "scope": SINGLE_OPTIONAL_STRING,
        "client_id": SINGLE_OPTIONAL_STRING,
        "username": SINGLE_OPTIONAL_STRING,
        "token_type": SINGLE_OPTIONAL_STRING,
        "exp": SINGLE_OPTIONAL_INT,
        "iat": SINGLE_OPTIONAL_INT,
        "nbf": SINGLE_OPTIONAL_INT,
        "sub": SINGLE_OPTIONAL_STRING,
        "aud": OPTIONAL_LIST_OF_STRINGS,
        "iss": SINGLE_OPTIONAL_STRING,
        "jti": SINGLE_OPTIONAL_STRING,
    }


class PushedAuthorizationResponse(Message):
    """The answer to a pushed authorization request (RFC 9126 2.2): the ``request_uri``
    to send to the authorization endpoint and its lifetime in seconds (``expires_in``).

    Send it with :attr:`http_status` (201 Created), ``Content-Type: application/json``
    and ``Cache-Control: no-store``."""

    c_param = {
        "request_uri": SINGLE_REQUIRED_STRING,
        "expires_in": _SINGLE_REQUIRED_INT,
    }
    #: The HTTP status of the response (RFC 9126 2.2: 201 Created).
    http_status = 201


class EndSessionRequest(oic_message.EndSessionRequest):
    """RP-Initiated Logout request (OIDC RP-Initiated Logout 1.0, 2)."""

    c_param = oic_message.EndSessionRequest.c_param.copy()
    c_param.update(
        {
            "client_id": SINGLE_OPTIONAL_STRING,
            "logout_hint": SINGLE_OPTIONAL_STRING,
            "ui_locales": OPTIONAL_LIST_OF_SP_SEP_STRINGS,
        }
    )


AuthorizationResponse = oic_message.AuthorizationResponse
AuthorizationErrorResponse = oic_message.AuthorizationErrorResponse
AccessTokenResponse = oic_message.AccessTokenResponse
TokenErrorResponse = oic_message.TokenErrorResponse
RegistrationRequest = oic_message.RegistrationRequest
RegistrationResponse = oic_message.RegistrationResponse
ClientRegistrationErrorResponse = oic_message.ClientRegistrationErrorResponse
IdToken = oic_message.IdToken
OpenIDSchema = oic_message.OpenIDSchema
EndSessionResponse = oic_message.EndSessionResponse
UserInfoErrorResponse = oic_message.UserInfoErrorResponse
ClaimsRequest = oic_message.ClaimsRequest


class UserinfoResponse(OpenIDSchema):
    """A UserInfo response (OIDC Core 5.3.2): JSON, or a signed JWT for some clients.

    ``to_json()`` is the plain JSON response, as in pyop 3. Hosts send
    :meth:`to_body` with the ``Content-Type`` :attr:`content_type`, which also
    serves clients that registered ``userinfo_signed_response_alg``
    (OIDC Dynamic Registration 2): the body is then a JWS (RFC 7515 7.1) of the
    claims plus ``iss`` and ``aud``, and the content type ``application/jwt``.
    """

    #: ``application/json``, or ``application/jwt`` once :meth:`sign` was called.
    content_type = "application/json"
    #: The compact JWS of the signed response, or None.
    signed_jwt: Optional[str] = None

    def sign(self, key: SigningKey, *, issuer: str, audience: str) -> str:
        """Sign the claims with ``key`` (OIDC Core 5.3.2: with ``iss`` and ``aud``).

        :returns: the compact JWS, also kept in :attr:`signed_jwt`.
        """
        payload = self.to_dict()
        payload["iss"] = issuer
        payload["aud"] = audience
        self.signed_jwt = jws_sign(payload, key, {"typ": "JWT"})
        self.content_type = "application/jwt"
        return self.signed_jwt

    def to_body(self) -> str:
        """The response body: the signed JWT if any, else the JSON object."""
        return self.signed_jwt if self.signed_jwt is not None else self.to_json()


def issued_token_response(access_token: str, token_type: str, expires_in: int,
                          id_token: str, scope: str) -> AccessTokenResponse:
    """``AccessTokenResponse(access_token=..., token_type=..., expires_in=..., id_token=...,
    scope=...)`` for values the provider has just issued, without ``oic``'s per-member
    type dispatch.

    Equal to that construction (the same members in the same order, ``scope`` split on
    single spaces into a list, empty strings left out): the members are filled in
    directly only when every value has exactly the type ``oic`` would keep as it is
    (``str``, and ``int`` for ``expires_in``); anything else goes through ``oic``.
    """
    if (type(access_token) is str and type(token_type) is str and type(expires_in) is int
            and type(id_token) is str and type(scope) is str):
        response = new_message(AccessTokenResponse)
        values = response._dict
        for name, value in (("access_token", access_token), ("token_type", token_type)):
            if value:
                values[name] = value
        values["expires_in"] = expires_in
        if id_token:
            values["id_token"] = id_token
        if scope:
            values["scope"] = scope.split(" ")
        return response
    return AccessTokenResponse(access_token=access_token, token_type=token_type,
                               expires_in=expires_in, id_token=id_token, scope=scope)


def set_string_member(message: Message, name: str, value: Any) -> None:
    """``message[name] = value``, stored directly when ``oic`` would store it as is: a
    ``str`` for a member declared as a single string, or not declared at all."""
    param = message.c_param.get(name)
    if type(value) is str and (param is None or param.type is str):
        message._dict[name] = value
    else:
        message[name] = value


_M = TypeVar("_M", bound=Message)

_MESSAGE_INIT = Message.__init__
_MESSAGE_FROM_DICT = Message.from_dict
#: ``OpenIDSchema.from_dict``: ``Message.from_dict``, then members that are None or ""
#: are dropped (a no-op on an empty message whose defaults have none).
_SCHEMA_FROM_DICT = oic_message.OpenIDSchema.from_dict


def new_message(cls: type[_M]) -> _M:
    """``cls()``: an empty message, without ``oic``'s ``from_dict({})`` pass.

    The attributes ``Message.__init__`` sets are set directly when ``cls`` keeps
    ``oic``'s ``__init__`` and a ``from_dict`` known to do nothing on no values (that of
    ``Message``, or ``OpenIDSchema``'s when no default member is None or empty); any
    other class is called.
    """
    from_dict = cls.from_dict
    if cls.__init__ is not _MESSAGE_INIT or (
            from_dict is not _MESSAGE_FROM_DICT and from_dict is not _SCHEMA_FROM_DICT):
        return cls()
    defaults = cls.c_default
    if defaults and from_dict is _SCHEMA_FROM_DICT and any(
            value is None or value == "" for value in defaults.values()):
        return cls()
    message = cls.__new__(cls)
    message._dict = defaults.copy()
    message.lax = False
    message.jwt = None
    message.jws_header = None
    message.jwe_header = None
    message.verify_ssl = True
    return message


def message_from_plain_values(cls: type[_M], values: Mapping[str, Any]) -> _M:
    """``cls().from_dict(values)`` (what ``cls(**values)`` does), without ``oic``'s per-member
    dispatch when the result is known without it.

    That is when each value is a non-empty ``str``, an ``int`` or a ``bool`` (exactly these
    types) and is either a member of ``cls`` declared with that type (kept as is by
    ``oic``), a member declared as a list of strings with a deserializer, given as a
    ``str`` (``oic`` stores ``deserializer(value, sformat="urlencoded")``: the
    space-separated values), or not a member at all (stored as is by ``oic`` too, unless
    the class has a ``"*"`` member or the name a ``#`` language tag). Anything else --
    lists, objects, ``None``, empty strings, a value of another type, which ``oic``
    converts, drops or rejects -- goes through ``oic``, with its errors.
    """
    spec = cls.c_param
    get = spec.get
    message = new_message(cls)
    members = message._dict  # the class defaults, then the values (as oic fills them)
    for name, value in values.items():
        kind = type(value)
        if kind is str:
            if not value:
                break
        elif kind is not int and kind is not bool:
            break
        param = get(name)
        if param is None:
            if "#" in name or "*" in spec:
                break
        elif param.type is not kind:
            if not (kind is str and param.type == [str] and param.deserializer is not None):
                break
            if param.deserializer is _SP_SEP_LIST_DESERIALIZER:
                value = value.split(" ")  # what it returns for a str (scope, response_type)
            else:
                try:
                    value = param.deserializer(value, sformat="urlencoded")
                except Exception:  # noqa: BLE001 - oic turns it into its own error
                    break
        members[name] = value
    else:
        return message
    return cls().from_dict(values)  # type: ignore[no-any-return]
