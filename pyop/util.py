"""Small helpers shared by the provider and hosts.

Request parameters in ``application/x-www-form-urlencoded`` form, each given once
(RFC 6749 3.1, 3.2 and Appendix B), strict JSON (RFC 8259 6), loopback redirect URIs
(RFC 8252 7.3), response types and scopes (OIDC Core 3, RFC 6749 3.3) and the ``claims``
request (OIDC Core 5.5).
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from .exceptions import InvalidRequestError
from .response_mode import (
    FORM_POST_CONTENT_SECURITY_POLICY as _FORM_POST_CSP,
)
from .response_mode import (
    render_form_post,
    response_type_set,
    should_form_post,
    should_fragment_encode,
)

__all__ = ["should_fragment_encode", "response_type_set", "is_loopback_host", "find_common_values",
           "should_form_post", "render_form_post", "FORM_POST_CONTENT_SECURITY_POLICY",
           "is_allowed_response_type", "requested_scope_is_allowed"]

#: ``Content-Security-Policy`` to send with a :func:`render_form_post` page (see
#: :data:`pyop.response_mode.FORM_POST_CONTENT_SECURITY_POLICY`).
FORM_POST_CONTENT_SECURITY_POLICY = _FORM_POST_CSP

LOOPBACK_NAMES = frozenset(["localhost"])



def json_encode_function(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode`` with the same results and errors, for encoders without ``indent``
    that escape non-ASCII (the default).

    ``JSONEncoder.encode`` builds a new C encoder on every call; this one is built once.
    It runs without the circular-reference bookkeeping (whose state would be shared
    between threads), so a ``dict`` that contains itself ends in ``RecursionError``:
    that value, and any other than a ``dict``, is then left to ``encoder.encode``, which
    raises what it always did (``ValueError: Circular reference detected``).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None or not encoder.ensure_ascii:
        return encoder.encode
    try:
        one_shot = make(None, encoder.default, json.encoder.encode_basestring_ascii, None,
                        encoder.key_separator, encoder.item_separator, encoder.sort_keys,
                        encoder.skipkeys, encoder.allow_nan)
    except TypeError:  # another interpreter's private constructor: the plain method
        return encoder.encode
    fallback = encoder.encode

    def encode(value: Any) -> str:
        if type(value) is dict:
            try:
                return "".join(one_shot(value, 0))
            except RecursionError:
                pass
        return fallback(value)

    return encode




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


def find_common_values(preferred: Iterable[str], supported: Iterable[str]
                       ) -> set[frozenset[str]]:
    """The values both lists have, as sets of their space-separated words (pyop 3).

    Each value is compared as an unordered set of words, as multi-valued
    ``response_type`` values are (OAuth 2.0 Multiple Response Type Encoding Practices 3):
    ``find_common_values(["id_token code"], ["code id_token", "code"])`` is
    ``{frozenset({"code", "id_token"})}``. Non-string values are ignored.
    """
    preferred_sets = {frozenset(value.split()) for value in preferred if isinstance(value, str)}
    return {frozenset(value.split()) for value in supported
            if isinstance(value, str)} & preferred_sets


def is_allowed_response_type(response_type: Union[str, Iterable[Any]],
                             supported_response_types: Iterable[str]) -> bool:
    """Whether ``response_type`` (a list of its values, or the space-separated string) is
    one of ``supported_response_types``, order aside (OAuth 2.0 Multiple Response Type
    Encoding Practices 3; pyop 3)."""
    requested = response_type_set(response_type)
    return any(requested == response_type_set(value) for value in supported_response_types
               if isinstance(value, str))


def requested_scope_is_allowed(requested_scope: Union[str, Iterable[str]],
                               allowed_scope: str) -> bool:
    """Whether every value of ``requested_scope`` (a list, or a space-separated string) is
    in ``allowed_scope``, a space-separated string (RFC 6749 3.3, 6; pyop 3)."""
    requested = (requested_scope.split() if isinstance(requested_scope, str)
        else list(requested_scope))
    return frozenset(requested).issubset(allowed_scope.split())


#: Default limit on the size of a request body or query string, in characters.
DEFAULT_MAX_REQUEST_SIZE = 64 * 1024


#: Lone surrogates: in a ``str``, but not encodable as UTF-8 (so never echoable in a URL).
_SURROGATES = re.compile("[\ud800-\udfff]")


def is_utf8_encodable(text: str) -> bool:
    """Whether ``text`` has no lone surrogate, so can be encoded as UTF-8 (e.g. in a URL)."""
    return _SURROGATES.search(text) is None


def utf8_or_none(data: Union[bytes, bytearray]) -> Optional[str]:
    """``data`` decoded, or None.

    Callers raise their error outside the ``except`` clause: the
    UnicodeDecodeError holds all of ``data`` (secrets, codes...) and must not
    become the ``__context__`` of the error shown or logged.
    """
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None


#: Most fields a query string or form body may have (as ``parse_qsl(max_num_fields=...)``).
_MAX_FIELDS = 1000


def _unquote_strict(text: str) -> str:
    """``urllib.parse.unquote(text, errors="strict")``: for ASCII text (the usual) the
    octets are decoded as one run, as ``unquote`` does, without its regex split (and,
    without a backslash in the text, without ``unquote_to_bytes``'s Python loop).

    :raises UnicodeDecodeError: percent-encoded octets that are not UTF-8.
    """
    if text.isascii():
        octets = None
        if _escape_decode is not None and "\\" not in text:
            # each "%XX" as the escape "\\xXX", decoded in C; a "%" not followed by two hex
            # digits is an invalid escape: left to unquote_to_bytes, which keeps it as is
            try:
                octets = _escape_decode(text.replace("%", "\\x"))[0]
            except ValueError:
                pass
        if octets is None:
            octets = unquote_to_bytes(text)
        return octets.decode("utf-8")
    return unquote(text, errors="strict")


#: ``codecs.escape_decode``: bytes of a text with backslash escapes (the "string_escape"
#: codec), with ``ValueError`` for an invalid ``\\x`` escape. Not documented: without
#: it (another interpreter), every text goes through ``unquote_to_bytes``.
_escape_decode: Optional[Callable[[str], tuple[bytes, int]]] = getattr(
    codecs, "escape_decode", None)


def _parse_qsl(query: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict",
    max_num_fields=1000)`` for a ``str``, with the same result, calling ``unquote`` only
    for the names and values that have a ``%`` (most have none).

    :raises ValueError: too many fields.
    :raises UnicodeDecodeError: percent-encoded octets that are not UTF-8.
    """
    if not query:
        return []
    if 1 + query.count("&") > _MAX_FIELDS:
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for field in query.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = _unquote_strict(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote_strict(value)
        pairs.append((name, value))
    return pairs


def _parse_qsl_or_error(query: str) -> Union[list[tuple[str, str]], str]:
    """The pairs of a query string, or an error message (see :func:`utf8_or_none`)."""
    try:
        return _parse_qsl(query)
    except UnicodeDecodeError:
        return "request is not valid UTF-8"
    except ValueError:
        return "malformed request"


def parse_request_parameters(
    request: Union[None, str, bytes, Mapping[str, Any]],
    max_size: int = DEFAULT_MAX_REQUEST_SIZE,
) -> dict[str, Union[str, list[str]]]:
    """Parse a query string, form body or mapping into ``name -> value``.

    * bytes must be UTF-8, percent-decoded octets too (RFC 6749 Appendix B),
      and ``str`` input must be encodable as UTF-8 (no lone surrogates);
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
        request = utf8_or_none(request)
        if request is None:
            raise InvalidRequestError("request is not valid UTF-8")
    if isinstance(request, str):
        if len(request) > max_size:
            raise InvalidRequestError("request too large")
        if not request.isascii() and _SURROGATES.search(request):
            raise InvalidRequestError("request is not valid UTF-8")
        parsed = _parse_qsl_or_error(request)
        if isinstance(parsed, str):
            raise InvalidRequestError(parsed)
        pairs = parsed
        # a NUL can only come from the text itself or from "%00"
        may_have_nul = "\x00" in request or "%00" in request
    elif isinstance(request, Mapping):
        pairs = []
        total = 0
        for key, value in request.items():
            if not isinstance(key, str):
                raise InvalidRequestError("parameter names must be strings")
            if _SURROGATES.search(key):
                raise InvalidRequestError("request is not valid UTF-8")
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                if not isinstance(item, str):
                    raise InvalidRequestError(f"parameter {key[:64]} must be a string")
                if _SURROGATES.search(item):
                    raise InvalidRequestError("request is not valid UTF-8")
                total += len(key) + len(item)
                pairs.append((key, item))
        if total > max_size:
            raise InvalidRequestError("request too large")
        may_have_nul = True
    else:
        raise InvalidRequestError("unsupported request type")

    result: dict[str, Union[str, list[str]]] = {}
    for key, value in pairs:
        if value == "":
            continue
        if may_have_nul and ("\x00" in key or "\x00" in value):
            raise InvalidRequestError("NUL character in request")
        previous = result.get(key)
        if previous is None:
            result[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            result[key] = [previous, value]
    return result


_STR_ONLY = frozenset([str])


def duplicated_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """Names given more than once (values parsed into lists)."""
    if set(map(type, parameters.values())) <= _STR_ONLY:  # the usual: no list at all
        return []
    return sorted(name for name, value in parameters.items() if isinstance(value, list))


def parse_parameters(request: Any, max_size: int,
                     error: Callable[[str], Exception]) -> dict[str, Any]:
    """:func:`parse_request_parameters`, its error re-raised as ``error(description)``
    (each endpoint answers with its own error type)."""
    try:
        return parse_request_parameters(request, max_size)
    except InvalidRequestError as e:
        raise error(str(e)) from e


def check_unique_parameters(parameters: Mapping[str, Any],
                            error: Callable[[str], Exception]) -> None:
    """Raise ``error(description)`` when a parameter is given more than once
    (RFC 6749 3.1, 3.2: request parameters MUST NOT be included more than once)."""
    duplicated = duplicated_parameters(parameters)
    if duplicated:
        raise error("repeated parameters: {}".format(", ".join(duplicated)[:200]))


def parse_unique_parameters(request: Any, max_size: int,
                            error: Callable[[str], Exception]) -> dict[str, Any]:
    """The parameters of a request, each given once: :func:`parse_parameters`, then
    :func:`check_unique_parameters`, both raising ``error(description)``."""
    parameters = parse_parameters(request, max_size, error)
    check_unique_parameters(parameters, error)
    return parameters


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
