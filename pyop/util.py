"""Small helpers shared by the provider and hosts."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any, Union
from urllib.parse import parse_qsl, urlsplit

from .exceptions import InvalidRequestError

__all__ = ["should_fragment_encode", "response_type_set", "is_loopback_host", "find_common_values"]

LOOPBACK_NAMES = frozenset(["localhost"])


def response_type_set(response_type: Union[None, str, Iterable[Any]]) -> frozenset[str]:
    """Normalise a ``response_type`` to a set of its space-separated values.

    Accepts the forms found in the wild: ``"code id_token"``, ``["code", "id_token"]``
    (an ``oic`` message) and ``["code id_token"]`` (a flattened ``to_dict()``).
    Order is not significant (OAuth 2.0 Multiple Response Type Encoding Practices 3).
    """
    if response_type is None:
        return frozenset()
    if isinstance(response_type, str):
        return frozenset(response_type.split())
    values: set[str] = set()
    for item in response_type:
        if isinstance(item, str):
            values.update(item.split())
    return frozenset(values)


def should_fragment_encode(authentication_request: Mapping[str, Any]) -> bool:
    """Whether the authorization response goes in the fragment.

    Responses carrying an ID token or access token from the authorization
    endpoint are always fragment-encoded (OIDC Core 3.2.2.5, 3.3.2.5; OAuth 2.0
    Multiple Response Types 2.1: tokens MUST NOT be query-encoded), and so are
    their errors. A code-only response is query-encoded unless the request
    asked for ``response_mode=fragment``.

    Works on an ``AuthorizationRequest`` message and on the ``dict`` returned by
    its ``to_dict()``.
    """
    if response_type_set(authentication_request.get("response_type")) - {"code", "none"}:
        return True
    return authentication_request.get("response_mode") == "fragment"


def is_loopback_host(host: Union[str, None]) -> bool:
    """True for ``localhost`` and loopback IP literals (RFC 8252 7.3, 8.3)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_https_or_loopback_http(uri: str) -> bool:
    """True for an https URI, or an http URI whose host is a loopback address."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme == "https":
        return bool(host)
    return parts.scheme == "http" and is_loopback_host(host)


def find_common_values(preferred: Iterable[Any], supported: Iterable[Any]) -> set[Any]:
    """Values present in both iterables."""
    return set(preferred) & set(supported)


#: Default limit on the size of a request body or query string, in characters.
DEFAULT_MAX_REQUEST_SIZE = 64 * 1024


def parse_request_parameters(
    request: Union[None, str, bytes, Mapping[str, Any]],
    max_size: int = DEFAULT_MAX_REQUEST_SIZE,
) -> dict[str, Union[str, list[str]]]:
    """Parse a query string, form body or mapping into ``name -> value``.

    * bytes must be UTF-8, percent-decoded octets too (RFC 6749 Appendix B);
    * parameters sent without a value are treated as omitted (RFC 6749 3.1);
    * a name given more than once maps to a list, so callers can reject
      duplicates (RFC 6749 3.1, 3.2) with a precise error.

    Raises :class:`~pyop.exceptions.InvalidRequestError` on oversized input,
    invalid UTF-8 or values that are not strings.
    """
    pairs: list[tuple[str, str]]
    if request is None:
        return {}
    if isinstance(request, (bytes, bytearray)):
        if len(request) > max_size:
            raise InvalidRequestError("request too large")
        try:
            request = bytes(request).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidRequestError("request is not valid UTF-8") from e
    if isinstance(request, str):
        if len(request) > max_size:
            raise InvalidRequestError("request too large")
        try:
            pairs = parse_qsl(request, keep_blank_values=True, errors="strict",
                              max_num_fields=1000)
        except UnicodeDecodeError as e:
            raise InvalidRequestError("request is not valid UTF-8") from e
        except ValueError as e:
            raise InvalidRequestError("malformed request") from e
    elif isinstance(request, Mapping):
        pairs = []
        total = 0
        for key, value in request.items():
            if not isinstance(key, str):
                raise InvalidRequestError("parameter names must be strings")
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                if not isinstance(item, str):
                    raise InvalidRequestError(f"parameter {key[:64]} must be a string")
                total += len(key) + len(item)
                pairs.append((key, item))
        if total > max_size:
            raise InvalidRequestError("request too large")
    else:
        raise InvalidRequestError("unsupported request type")

    result: dict[str, Union[str, list[str]]] = {}
    for key, value in pairs:
        if value == "":
            continue
        if "\x00" in key or "\x00" in value:
            raise InvalidRequestError("NUL character in request")
        previous = result.get(key)
        if previous is None:
            result[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            result[key] = [previous, value]
    return result


def duplicated_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """Names given more than once (values parsed into lists)."""
    return sorted(name for name, value in parameters.items() if isinstance(value, list))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 6)")


def strict_json_loads(text: str) -> Any:
    """``json.loads`` refusing NaN/Infinity, which are not JSON (RFC 8259 6).

    :raises ValueError: invalid JSON (also for nesting too deep to parse).
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as e:
        raise ValueError("JSON nested too deeply") from e


def claims_request_member(authentication_request: Mapping[str, Any], member: str) -> dict[str, Any]:
    """The ``userinfo`` or ``id_token`` member of a ``claims`` request (OIDC Core 5.5) as a dict.

    Works on ``oic`` messages and on plain dicts; an absent or malformed
    member gives an empty dict.
    """
    claims: Any = authentication_request.get("claims")
    if claims is None:
        return {}
    if hasattr(claims, "to_dict"):
        claims = claims.to_dict()
    value: Any = claims.get(member) if isinstance(claims, Mapping) else None
    if value is not None and hasattr(value, "to_dict"):
        value = value.to_dict()
    return dict(value) if isinstance(value, Mapping) else {}
