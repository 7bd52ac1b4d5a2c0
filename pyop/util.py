"""Small helpers shared by the provider and hosts."""

from __future__ import annotations

import codecs
import functools
import html
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from .exceptions import InvalidRequestError

__all__ = ["should_fragment_encode", "response_type_set", "is_loopback_host", "find_common_values",
           "should_form_post", "render_form_post", "FORM_POST_CONTENT_SECURITY_POLICY",
           "is_allowed_response_type", "requested_scope_is_allowed"]

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
        return _split_cached(response_type) if len(response_type) <= 64 \
            else frozenset(response_type.split())
    if type(response_type) is list and len(response_type) == 1 \
            and type(response_type[0]) is str:  # an oic message's usual ["code"]
        return _split_response_type(response_type[0])
    values: set[str] = set()
    for item in response_type:
        if isinstance(item, str):
            values.update(_split_response_type(item))
    return frozenset(values)


@functools.lru_cache(maxsize=64)
def _split_cached(value: str) -> frozenset[str]:
    return frozenset(value.split())


def _split_response_type(value: str) -> frozenset[str]:
    """``frozenset(value.split())``; the few short values seen in practice are cached."""
    if len(value) > 64:
        return frozenset(value.split())
    return _split_cached(value)


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


def should_form_post(authentication_request: Mapping[str, Any]) -> bool:
    """Whether the response goes back as an auto-submitted HTML form.

    True when the request asked for ``response_mode=form_post`` (OAuth 2.0
    Form Post Response Mode 2), which :meth:`Provider.parse_authentication_request
    <pyop.provider.Provider.parse_authentication_request>` accepts when
    ``response_modes_supported`` lists it. Check it before
    :func:`should_fragment_encode`; works on a request message, its ``to_dict()``
    and the ``request`` of an :class:`~pyop.exceptions.InvalidAuthenticationRequest`.
    """
    return authentication_request.get("response_mode") == "form_post"


#: The script of the form_post page: the ``onload`` attribute of its body.
_FORM_POST_SCRIPT = "document.forms[0].submit()"

#: ``Content-Security-Policy`` to send with a :func:`render_form_post` page: nothing may
#: load, and the only script allowed is the page's ``onload`` handler, by its hash
#: (CSP Level 3 ``'unsafe-hashes'``; browsers without it show the Continue button
#: instead). ``form-action`` is left unrestricted on purpose: the form posts to
#: the client.
FORM_POST_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    "script-src 'unsafe-hashes' 'sha256-ePniVEkSivX/c7XWBGafqh8tSpiRrKiqYeqbG7N1TOE='; "
    "base-uri 'none'; frame-ancestors 'none'"
)

_FORM_POST_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Submit this form</title>
</head>
<body onload="{script}">
<form method="post" action="{action}">
{fields}
<noscript>
<p>JavaScript is disabled in your browser. Press Continue to go back to the application.</p>
<button type="submit">Continue</button>
</noscript>
</form>
</body>
</html>
"""


_FORM_POST_FIELD = '<input type="hidden" name="{name}" value="{value}">'


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    return str(value)


def render_form_post(response_message: Mapping[str, Any], redirect_uri: str) -> str:
    """An HTML page that POSTs the response parameters to the client's ``redirect_uri``.

    OAuth 2.0 Form Post Response Mode 2: each parameter becomes a hidden field
    of a form with ``method="post"`` and ``action`` the redirect URI,
    submitted on load; a ``<noscript>`` Continue button stands in for
    JavaScript. Every name and value is escaped with ``html.escape(quote=True)``;
    the page loads nothing. Serve it with status 200, ``Content-Type:
    text/html; charset=utf-8``, ``Cache-Control: no-store`` and
    ``Content-Security-Policy:`` :data:`FORM_POST_CONTENT_SECURITY_POLICY`.

    :param response_message: the authorization response (e.g. from
        :meth:`Provider.authorize <pyop.provider.Provider.authorize>`) or an
        error response; an ``oic`` message or a mapping. List values are
        space-joined, ``None`` values left out.
    :param redirect_uri: the verified redirect URI of the request.
    :raises ValueError: ``redirect_uri`` is not an http(s) URL (a form cannot
        post to a custom scheme, and a ``javascript:`` action would run in the
        provider's origin).
    """
    try:
        scheme = urlsplit(redirect_uri).scheme.lower()
    except (AttributeError, TypeError, ValueError) as e:
        raise ValueError("form_post needs an http(s) redirect_uri") from e
    if scheme not in ("http", "https"):
        raise ValueError("form_post needs an http(s) redirect_uri")
    items: Any = response_message.to_dict() if hasattr(response_message, "to_dict") \
        else dict(response_message)
    fields = "\n".join(
        _FORM_POST_FIELD.format(name=html.escape(str(name), quote=True),
                                value=html.escape(_form_value(value), quote=True))
        for name, value in items.items() if value is not None)
    return _FORM_POST_PAGE.format(script=_FORM_POST_SCRIPT,
                                  action=html.escape(redirect_uri, quote=True), fields=fields)


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
    requested = requested_scope.split() if isinstance(requested_scope, str) \
        else list(requested_scope)
    return frozenset(requested).issubset(allowed_scope.split())


#: Default limit on the size of a request body or query string, in characters.
DEFAULT_MAX_REQUEST_SIZE = 64 * 1024


#: Lone surrogates: in a ``str``, but not encodable as UTF-8 (so never echoable in a URL).
_SURROGATES = re.compile("[\ud800-\udfff]")


def is_utf8_encodable(text: str) -> bool:
    """Whether ``text`` has no lone surrogate, so can be encoded as UTF-8 (e.g. in a URL)."""
    return _SURROGATES.search(text) is None


def _utf8_or_none(data: Union[bytes, bytearray]) -> Optional[str]:
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
    """The pairs of a query string, or an error message (see :func:`_utf8_or_none`)."""
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
        request = _utf8_or_none(request)
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
