"""How an authorization response travels back to the client.

Response types and response modes: OAuth 2.0 Multiple Response Type Encoding Practices
2-3 (query or fragment), OAuth 2.0 Form Post Response Mode 2 (an auto-submitted form).
The exceptions and the endpoints build their redirects with these helpers, which use
nothing else of pyop.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Union
from urllib.parse import urlsplit

__all__ = ["response_type_set", "should_fragment_encode", "should_form_post",
           "render_form_post", "FORM_POST_CONTENT_SECURITY_POLICY", "JARM_RESPONSE_MODES",
           "is_jarm_mode"]

logger = logging.getLogger(__name__)

def response_type_set(response_type: Union[None, str, Iterable[Any]]) -> frozenset[str]:
    """Normalise a ``response_type`` to a set of its space-separated values.

    Accepts the forms found in the wild: ``"code id_token"``, ``["code", "id_token"]``
    (an ``oic`` message) and ``["code id_token"]`` (a flattened ``to_dict()``).
    Order is not significant (OAuth 2.0 Multiple Response Type Encoding Practices 3).
    """
    if response_type is None:
        return frozenset()
    if isinstance(response_type, str):
        return (_split_cached(response_type) if len(response_type) <= 64
            else frozenset(response_type.split()))
    if (type(response_type) is list and len(response_type) == 1
            and type(response_type[0]) is str):  # an oic message's usual ["code"]
        value = response_type[0]
        return _split_cached(value) if len(value) <= 64 else frozenset(value.split())
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


#: The response modes of JWT Secured Authorization Response Mode for OAuth 2.0 (JARM) 2.3:
#: the response parameters travel in one signed JWT, the ``response`` parameter.
JARM_RESPONSE_MODES = ("jwt", "query.jwt", "fragment.jwt", "form_post.jwt")


def is_jarm_mode(response_mode: Any) -> bool:
    """Whether ``response_mode`` is one of :data:`JARM_RESPONSE_MODES` (JARM 2.3)."""
    return isinstance(response_mode, str) and response_mode in JARM_RESPONSE_MODES


def should_fragment_encode(authentication_request: Mapping[str, Any]) -> bool:
    """Whether the authorization response goes in the fragment.

    Responses carrying an ID token or access token from the authorization
    endpoint are always fragment-encoded (OIDC Core 3.2.2.5, 3.3.2.5; OAuth 2.0
    Multiple Response Types 2.1: tokens MUST NOT be query-encoded), and so are
    their errors. A code-only response is query-encoded unless the request
    asked for ``response_mode=fragment`` or ``fragment.jwt`` (JARM 2.3.2; ``jwt`` is
    ``query.jwt`` for a code and ``fragment.jwt`` for tokens, JARM 2.3.4).

    Works on an ``AuthorizationRequest`` message and on the ``dict`` returned by
    its ``to_dict()``.
    """
    if response_type_set(authentication_request.get("response_type")) - {"code", "none"}:
        return True
    return authentication_request.get("response_mode") in ("fragment", "fragment.jwt")


def should_form_post(authentication_request: Mapping[str, Any]) -> bool:
    """Whether the response goes back as an auto-submitted HTML form.

    True when the request asked for ``response_mode=form_post`` (OAuth 2.0
    Form Post Response Mode 2) or ``form_post.jwt`` (JARM 2.3.3), which
    :meth:`Provider.parse_authentication_request
    <pyop.provider.Provider.parse_authentication_request>` accepts when
    ``response_modes_supported`` lists it. Check it before
    :func:`should_fragment_encode`; works on a request message, its ``to_dict()``
    and the ``request`` of an :class:`~pyop.exceptions.InvalidAuthenticationRequest`.
    """
    return authentication_request.get("response_mode") in ("form_post", "form_post.jwt")


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
    items: Any = (response_message.to_dict() if hasattr(response_message, "to_dict")
        else dict(response_message))
    fields = "\n".join(
        _FORM_POST_FIELD.format(name=html.escape(str(name), quote=True),
                                value=html.escape(_form_value(value), quote=True))
        for name, value in items.items() if value is not None)
    return _FORM_POST_PAGE.format(script=_FORM_POST_SCRIPT,
                                  action=html.escape(redirect_uri, quote=True), fields=fields)


def error_context(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What an error response needs from a request whose redirect_uri is verified
    (OIDC Core 3.1.2.6).

    A repeated ``response_type`` keeps all its values, so an error for any
    response type that issues tokens still goes in the fragment (OIDC Core
    3.2.2.6); other repeated values are left out.
    """
    context = {name: parameters[name] for name in
               ("redirect_uri", "state", "response_type", "response_mode")
               if isinstance(parameters.get(name), str)}
    response_type = parameters.get("response_type")
    if isinstance(response_type, list):
        context["response_type"] = " ".join(str(value) for value in response_type)
    return context
