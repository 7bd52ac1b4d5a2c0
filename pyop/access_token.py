"""Bearer access tokens (RFC 6750)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import parse_qsl  # noqa: F401 - a pyop 3 name of this module

from .exceptions import BearerTokenError, InvalidUserinfoRequest

__all__ = ["AccessToken", "extract_bearer_token_from_http_request", "get_header"]

logger = logging.getLogger(__name__)


class AccessToken:
    """An issued access token: its value, type and lifetime (RFC 6749 5.1)."""

    BEARER_TOKEN_TYPE = "Bearer"

    def __init__(self, value: str, expires_in: int, typ: str = BEARER_TOKEN_TYPE, *,
                 type: Optional[str] = None) -> None:
        """
        :param value: the token value sent to the client.
        :param expires_in: its lifetime in seconds (RFC 6749 5.1 ``expires_in``).
        :param typ: the token type (RFC 6749 7.1), ``Bearer`` by default; also accepted
            as ``type=`` (which wins when both are given).
        """
        self.value = value
        self.expires_in = expires_in
        self.type = typ if type is None else type

    def __repr__(self) -> str:  # never show the token value
        return f"AccessToken(type={self.type!r}, expires_in={self.expires_in!r})"


def get_header(http_headers: Optional[Any], name: str) -> Optional[str]:
    """Case-insensitive header lookup (RFC 7230 3.2) on any mapping or header list."""
    if not http_headers:
        return None
    lowered = name.lower()
    items = http_headers.items() if hasattr(http_headers, "items") else http_headers
    found: Optional[str] = None
    try:
        for key, value in items:
            if isinstance(key, str) and key.lower() == lowered:
                if found is not None:
                    raise InvalidUserinfoRequest(f"duplicate {name} header")
                found = value if isinstance(value, str) else None
    except (TypeError, ValueError) as e:
        if isinstance(e, InvalidUserinfoRequest):
            raise
        return None
    return found


def extract_bearer_token_from_http_request(
    parsed_request: Optional[Mapping[str, Any]] = None,
    authz_header: Optional[str] = None,
) -> str:
    """The bearer token of a request (RFC 6750 2.1 header, 2.2 form body), with pyop 3's
    signature: the parsed request (form body or query) and the ``Authorization`` header
    value.

    The ``Bearer`` scheme is case-insensitive and must be followed by
    whitespace. A token in more than one place is an ``invalid_request``
    (RFC 6750 2). Raises :class:`BearerTokenError` when there is none.
    """
    header_token: Optional[str] = None
    if authz_header is not None:
        scheme, _, token = authz_header.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            header_token = token.strip()
            if " " in header_token:
                raise InvalidUserinfoRequest("malformed Authorization header")
    body_token: Optional[str] = None
    if parsed_request is not None:
        value = parsed_request.get("access_token")
        if isinstance(value, list):
            raise InvalidUserinfoRequest("duplicate access_token parameter")
        if isinstance(value, str) and value:
            body_token = value
    if header_token is not None and body_token is not None:
        raise InvalidUserinfoRequest("access token given in more than one place")
    if header_token is not None:
        return header_token
    if body_token is not None:
        return body_token
    raise BearerTokenError("no bearer token in the request", token_missing=True)

