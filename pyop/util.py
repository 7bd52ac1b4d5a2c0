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
           "is_allowed_response_type", "requested_scope_is_allowed", "display_host",
           "is_valid_identifier", "refers_to_loopback"]

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


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when it overflows to infinity
    (``1e400``): RFC 8259 6 has no infinite numbers, and an infinity taken from a
    request ends in errors far from where it was read."""
    value = float(text)
    if value in (_INFINITY, -_INFINITY):
        raise ValueError("number out of range (RFC 8259 6)")
    return value


_INFINITY = float("inf")


def strict_json_loads(text: str) -> Any:
    """``json.loads`` refusing NaN/Infinity, which are not JSON (RFC 8259 6), and numbers
    too large to be finite floats (``1e400``).

    :raises ValueError: invalid JSON (also for nesting too deep to parse).
    """
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as e:
        raise ValueError("JSON nested too deeply") from e


#: C0 and C1 control characters and DEL.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` has a C0 or C1 control character or DEL (``\\x00``-``\\x1f``,
    ``\\x7f``-``\\x9f``)."""
    return _CONTROL_CHARACTERS.search(text) is not None


def is_valid_identifier(value: Any) -> bool:
    """Whether ``value`` may be an identifier taken from a request -- a client id, code,
    access or refresh token, registration access token -- to look up in storage: a
    non-empty ``str`` without control characters (C0, C1, DEL) or lone surrogates.

    Such characters are in no identifier the provider issues (RFC 6749 A.1-A.2, A.11-A.17:
    ``client_id``, codes and tokens are printable characters), and some backends cannot
    even look them up (PostgreSQL refuses NUL in text). Each endpoint answers an invalid
    identifier with its own error, before storage is asked.
    """
    if type(value) is not str or value == "":
        return False
    if value.isascii() and value.isprintable():  # " " to "~": the usual, no search
        return True
    return (_CONTROL_CHARACTERS.search(value) is None
            and (value.isascii() or _SURROGATES.search(value) is None))


# -- hosts of URIs: normalised for policy checks, ASCII for display --------------------------

def normalise_host(host: str) -> Optional[str]:
    """The ASCII (IDNA, RFC 5891) lower-case form of a URI's host, without a trailing dot
    and IPv6 brackets, for policy checks (never for redirect URI matching, which is by
    exact string, RFC 9700 4.1.3); None when the host cannot be converted.

    Uses the ``idna`` package (UTS 46 mapping: full-width letters, upper case...) when it
    is installed (``requests`` depends on it), else Python's IDNA 2003 codec.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.isascii():
        ascii_host = host.lower()
    else:
        converted = _to_ascii(host)
        if converted is None:
            return None
        ascii_host = converted
    return ascii_host.rstrip(".") if ascii_host != "." else None


def _to_ascii(host: str) -> Optional[str]:
    try:
        import idna
    except ImportError:  # pragma: no cover - idna comes with requests
        pass
    else:
        try:
            return str(idna.encode(host.rstrip("."), uts46=True).decode("ascii"))
        except (idna.IDNAError, UnicodeError, ValueError):
            pass
    try:
        return host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _ipv4_number(part: str) -> Optional[int]:
    """A part of an IPv4 address as the URL standard reads it: decimal, ``0x`` hex or
    ``0`` octal."""
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def ipv4_host_address(host: str) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address a browser reads in ``host`` (WHATWG URL, IPv4 parser): ``127.1``,
    ``0x7f000001``, ``2130706433`` and ``0177.0.0.1`` are all 127.0.0.1; None when the
    host is not an IPv4 address in any spelling."""
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not 1 <= len(parts) <= 4 or any(not part for part in parts):
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    values = [number for number in numbers if number is not None]
    if any(number > 255 for number in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1]
    for index, number in enumerate(values[:-1]):
        address += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(address)


def refers_to_loopback(host: Optional[str]) -> bool:
    """Whether a URI host names this machine in any spelling a browser accepts:
    ``localhost`` and its subdomains (RFC 6761 6.3) with or without a trailing dot, in
    any case or width (``ｌｏｃａｌｈｏｓｔ``), loopback and unspecified IP addresses in any
    IPv4 spelling (``127.1``, ``0x7f000001``, ``2130706433``, ``0177.0.0.1``) and IPv6
    ones (``::1``, ``::ffff:7f00:1``).

    For refusals (OIDC Dynamic Registration 2: web clients using the implicit grant
    must not use localhost); :func:`is_loopback_host` decides where plain http is allowed.
    """
    if not host:
        return False
    normalised = normalise_host(host)
    if normalised is None:
        return False
    if normalised == "localhost" or normalised.endswith(".localhost"):
        return True
    address: Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]
    try:
        address = ipaddress.ip_address(normalised.split("%", 1)[0])
    except ValueError:
        address = ipv4_host_address(normalised)
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            address = mapped
    return address is not None and (address.is_loopback or address.is_unspecified)


def display_host(uri: str) -> str:
    """The host (and port, when given) of ``uri`` in ASCII form (IDNA A-labels, RFC 5891),
    for pages where a person judges where they are sent (e.g. a consent page): a
    homograph such as ``xn--pple-43d.example`` is shown as such, not as ``аpple.example``.
    The userinfo (``trusted.example@``) is never part of it.

    :raises ValueError: ``uri`` has no host, or one that is not a valid host name.
    """
    parts = urlsplit(uri)
    host = parts.hostname
    if not host:
        raise ValueError("the URI has no host")
    normalised = normalise_host(host)
    if normalised is None or not normalised.isascii() or has_control_characters(normalised):
        raise ValueError("the URI's host is not a valid host name")
    if ":" in normalised:
        normalised = f"[{normalised}]"
    port = parts.port
    return f"{normalised}:{port}" if port is not None else normalised


def has_userinfo(uri: str) -> bool:
    """Whether ``uri`` has a userinfo part (``https://trusted.example@evil.example/``),
    deprecated for http(s) (RFC 3986 3.2.1, RFC 9110 4.2.4): it makes the URI read as
    naming another host."""
    try:
        return "@" in urlsplit(uri).netloc
    except ValueError:
        return False


def media_type(http_headers: Optional[Any]) -> Optional[str]:
    """The media type of the ``Content-Type`` header (lower case, without parameters), or
    None when the headers carry none.

    :raises InvalidRequestError: more than one ``Content-Type`` header.
    """
    if not http_headers:
        return None
    values: list[str] = []
    try:
        items = http_headers.items() if hasattr(http_headers, "items") else http_headers
        for name, value in items:
            if isinstance(name, str) and name.lower() == "content-type":
                values.append(value if isinstance(value, str) else "")
    except (TypeError, ValueError):  # not a mapping nor a list of pairs: no headers
        return None
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequestError("more than one Content-Type header")
    found = values[0]
    return found.split(";", 1)[0].strip().lower()


#: The media type of form-encoded requests (RFC 6749 3.2, 4.1.3; RFC 7009 2.1; RFC 7662 2.1).
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


def check_content_type(http_headers: Optional[Any], expected: str,
                       error: Callable[[str], Exception]) -> None:
    """Raise ``error(description)`` when the headers carry a ``Content-Type`` other than
    ``expected``; headers without one (hosts passing no headers, or only some) pass.
    """
    try:
        found = media_type(http_headers)
    except InvalidRequestError as e:
        raise error(str(e)) from e
    if found is not None and found != expected:
        raise error(f"Content-Type must be {expected}")


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
