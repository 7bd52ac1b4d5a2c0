"""What is released about the end-user: scopes, claims, subject identifiers, ID tokens.

OIDC Core 5.4 (claims of the standard scopes), 5.5 (the ``claims`` request parameter),
8 and 8.1 (public and pairwise subject identifiers, sector identifiers), 2 and 3.1.3.6
(ID token claims), 11 (``offline_access``); RFC 7591 2 (a client's ``scope`` allow-list);
OIDC Discovery 3 (``claims_supported``, ``scopes_supported``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from .client_management import narrow_claims
from .context import ProviderContext
from .crypto import SigningKey
from .exceptions import InvalidSubjectIdentifier, RequestedSubjectMismatch
from .id_token import create_id_token
from .response_mode import error_context
from .util import claims_request_member

__all__ = ["SCOPE_CLAIMS", "ExtraClaims", "allowed_scopes", "granted_scope", "scope_claims",
           "subject_identifier", "check_requested_subject", "knows_user", "user_record",
           "user_claims",
           "claims_to_carry", "extra_claims", "id_token", "auth_time_required",
           "effective_max_age", "subject_names_user"]

logger = logging.getLogger(__name__)

#: Claims requested by the standard scope values (OIDC Core 5.4).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname",
                "preferred_username", "profile", "picture", "website", "gender", "birthdate",
                "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}

#: Extra ID token claims: a mapping, or ``(user_id, client_id) -> mapping``.
ExtraClaims = Union[None, Mapping[str, Any], Callable[[str, str], Optional[Mapping[str, Any]]]]


# -- scopes (OIDC Core 5.4, 11; RFC 7591 2) ------------------------------------------------------

def allowed_scopes(ctx: ProviderContext) -> set[str]:
    """Scope values granted when requested: the advertised ones, and, as in pyop 3,
    the standard ones of OIDC Core 5.4 and those of ``extra_scopes`` even when not
    advertised (OIDC Discovery 3: ``scopes_supported`` need not list them all)."""
    configuration = ctx.configuration
    allowed = set(configuration.metadata.get("scopes_supported") or [])
    allowed.update(SCOPE_CLAIMS)
    allowed.update(configuration.extra_scopes)
    if not configuration.scopes_configured:
        # scopes_supported defaults to ["openid"] (pyop 3): the standard scopes of OIDC
        # Core 5.4 stay usable, as they were with pyop 3
        allowed.update(SCOPE_CLAIMS)
    allowed.update(["openid", "offline_access"] if ctx.authz_state.issues_refresh_tokens
                   else ["openid"])
    return allowed


def granted_scope(ctx: ProviderContext, authentication_request: Mapping[str, Any]) -> list[str]:
    """The requested scope values that may be granted, in the request's order."""
    requested = authentication_request.get("scope") or []
    for value in requested:
        # "openid" and the scopes of OIDC Core 5.4 are always allowed (allowed_scopes)
        if value != "openid" and value not in SCOPE_CLAIMS:
            break
    else:
        return list(requested)
    allowed = allowed_scopes(ctx)
    return [s for s in requested if s in allowed]


def scope_claims(ctx: ProviderContext, scope: Iterable[str]) -> dict[str, None]:
    """Claims the scope values request (OIDC Core 5.4); an ``extra_scopes`` entry for
    a standard scope replaces its claims, as in pyop 3."""
    claims: dict[str, None] = {}
    extra = ctx.configuration.extra_scopes
    for value in scope:
        names = extra[value] if value in extra else SCOPE_CLAIMS.get(value, ())
        claims.update(dict.fromkeys(names))  # claim -> None, in order
    return claims


# -- subject identifiers (OIDC Core 8) -----------------------------------------------------------

def knows_user(ctx: ProviderContext, user_id: str) -> bool:
    """Whether the claims source knows the user (a source that cannot tell, without
    ``__contains__``, is taken to know every user)."""
    if getattr(type(ctx.userinfo), "__contains__", None) is None:
        return True
    return user_id in ctx.userinfo


def user_record(ctx: ProviderContext, user_id: str) -> Optional[Mapping[str, Any]]:
    """The user's claims (``userinfo[user_id]``), or None when the user has none."""
    try:
        record = ctx.userinfo[user_id]
    except KeyError:
        return None
    return record if type(record) is dict or isinstance(record, Mapping) else None


def _subject_type(ctx: ProviderContext, client: Mapping[str, Any]) -> str:
    """The client's ``subject_type``, else the first of ``subject_types_supported``
    (as pyop 3; OIDC Registration 2 leaves the default to the provider)."""
    subject_type = client.get("subject_type")
    if isinstance(subject_type, str) and subject_type:
        return subject_type
    supported = ctx.configuration.metadata.get("subject_types_supported") or []
    return str(supported[0]) if supported else "public"


def _sector_identifier(ctx: ProviderContext, client: Mapping[str, Any],
                       redirect_uri: Optional[str]) -> Optional[str]:
    """The sector identifier of a pairwise client (OIDC Core 8.1), per
    ``pairwise_sector_from``."""
    sector_uri = client.get("sector_identifier_uri")
    uris = client.get("redirect_uris") or []
    if ctx.configuration.pairwise_sector_from == "request":
        # the netloc (host[:port]), as pyop 3 computed it
        uri = sector_uri if isinstance(sector_uri, str) else redirect_uri
        if not isinstance(uri, str):
            uri = uris[0] if uris else None
        return urlsplit(uri).netloc if isinstance(uri, str) else None
    if isinstance(sector_uri, str):
        return urlsplit(sector_uri).hostname
    return urlsplit(uris[0]).hostname if uris and isinstance(uris[0], str) else None


def subject_identifier(ctx: ProviderContext, client: Mapping[str, Any], user_id: str,
                       redirect_uri: Optional[str] = None,
                       record: Optional[Mapping[str, Any]] = None,
                       *, record_read: bool = False) -> str:
    """The ``sub`` of a user for a client, recorded for reverse lookup (OIDC Core 8).

    :param redirect_uri: the authentication request's redirect_uri.
    :param record: the user's claims when the caller read them (``record_read``), else
        they are read here.
    """
    if not record_read:
        record = user_record(ctx, user_id)
    chosen = record.get("sub") if record is not None else None
    if chosen:
        # the host chose the user's sub (as pyop 3: for every client, recorded as public)
        sub = chosen if isinstance(chosen, str) else str(chosen)
        ctx.authz_state.record_subject_identifier(sub, user_id, "public")
        return sub
    subject_type = _subject_type(ctx, client)
    sector = (_sector_identifier(ctx, client, redirect_uri)
              if subject_type == "pairwise" else None)
    return ctx.authz_state.get_subject_identifier(subject_type, user_id, sector)


def check_requested_subject(ctx: ProviderContext, authentication_request: Mapping[str, Any],
                            sub: str) -> None:
    """A ``sub`` requested with a value must be the end-user's (OIDC Core 3.1.2.2, 5.5.1).

    :raises RequestedSubjectMismatch: another ``sub`` was requested (also when the
        ``id_token`` and ``userinfo`` members ask for different ones).
    """
    if authentication_request.get("claims") is None:
        return  # no claims request (the usual): nothing requested
    for member in ("id_token", "userinfo"):
        request = claims_request_member(authentication_request, member).get("sub")
        if not isinstance(request, Mapping):
            continue
        mismatch = "value" in request and request["value"] != sub
        values = request.get("values")
        if isinstance(values, list) and sub not in values:
            mismatch = True
        if mismatch:
            raise RequestedSubjectMismatch(
                "the authenticated end-user is not the one requested",
                error_context(authentication_request), "login_required",
                redirect_uri_verified=True, issuer=ctx.issuer)


# -- claims (OIDC Core 5.4, 5.5) -----------------------------------------------------------------

def _filter_supported(ctx: ProviderContext, claims: dict[str, Any]) -> dict[str, Any]:
    if not ctx.configuration.limit_claims_to_claims_supported:
        return claims
    supported = ctx.configuration.metadata.get("claims_supported")
    if not supported:
        return claims
    return {k: v for k, v in claims.items() if k in supported}


def user_claims(ctx: ProviderContext, user_id: str, requested: Mapping[str, Any],
                record: Any = None) -> dict[str, Any]:
    """The requested claims of the user, read from ``record`` when it is a mapping
    (the user record read once at authorization, or the claims a sealed grant carries,
    see :func:`claims_to_carry`), else from the user source."""
    requested = _filter_supported(ctx, dict(requested))
    requested.pop("sub", None)
    if not requested:
        return {}
    if type(record) is dict or (record is not None and isinstance(record, Mapping)):
        return ctx.userinfo.get_claims_for(user_id, requested, record)
    return ctx.userinfo.get_claims_for(user_id, requested)


def claims_to_carry(ctx: ProviderContext, user_id: str, client: Mapping[str, Any],
                    scope: Iterable[str], authentication_request: Mapping[str, Any]
                    ) -> Optional[dict[str, Any]]:
    """The end-user's claims a grant carries when its codes or tokens are sealed.

    With sealed (stateless) storage the code and tokens are the only state, and the
    host may forget the user once ``authorize`` returns (pyop 3's stateless mode
    carried the user's claims the same way). Only the claims the grant may release
    are kept: those of its scope (OIDC Core 5.4) and of the ``userinfo`` and
    ``id_token`` members of its ``claims`` request (OIDC Core 5.5), within the
    client's allow-lists and ``claims_supported``; their values are filtered by the
    request (``value``/``values``) when released. They are sealed (encrypted and
    authenticated) with the rest of the record. None when nothing is sealed.
    """
    if not getattr(ctx.authz_state, "stateless", False):
        return None
    requested: dict[str, Any] = dict(scope_claims(ctx, scope))
    requested.update(claims_request_member(authentication_request, "userinfo"))
    requested.update(claims_request_member(authentication_request, "id_token"))
    names = _filter_supported(ctx, narrow_claims(requested, client))
    names.pop("sub", None)
    if not names:
        return {}
    return dict(ctx.userinfo.get_claims_for(user_id, dict.fromkeys(names)))


# -- ID tokens (OIDC Core 2, 3.1.3.6, 3.2.2.10) --------------------------------------------------

def extra_claims(extra: ExtraClaims, user_id: str,
                 client_id: str) -> Optional[Mapping[str, Any]]:
    """The host's extra ID token claims for this user and client."""
    if extra is None:
        return None
    if callable(extra):
        return extra(user_id, client_id)
    return extra


def id_token(ctx: ProviderContext, *, client_id: str, sub: str, user_id: str,
             nonce: Optional[str], claims: Mapping[str, Any], extra: ExtraClaims,
             auth_time: Optional[int] = None, acr: Optional[str] = None,
             amr: Optional[Iterable[str]] = None, access_token: Optional[str] = None,
             code: Optional[str] = None, signing_key: Optional[SigningKey] = None,
             sid: Optional[str] = None) -> str:
    """A signed ID token (OIDC Core 2), with the provider's issuer and lifetime (and the
    login session's ``sid`` when given, Back-Channel Logout 1.0 2.1)."""
    return create_id_token(
        signing_key or ctx.keys.active, ctx.issuer, client_id, sub, now=ctx.now(),
        lifetime=ctx.configuration.id_token_lifetime, nonce=nonce, auth_time=auth_time,
        acr=acr, amr=list(amr) if amr is not None else None, access_token=access_token,
        authorization_code=code, claims=claims,
        extra_claims=extra_claims(extra, user_id, client_id),
        audience=client_id if ctx.configuration.id_token_aud_as_string else [client_id],
        sid=sid)


def auth_time_required(authentication_request: Mapping[str, Any],
                       client: Mapping[str, Any]) -> bool:
    """Whether the ID token must carry ``auth_time`` (OIDC Core 3.1.2.1, 5.5.1;
    OIDC Dynamic Registration 2 ``require_auth_time``, ``default_max_age``)."""
    if ("max_age" in authentication_request or client.get("require_auth_time")
            or effective_max_age(authentication_request, client) is not None):
        return True
    requested = claims_request_member(authentication_request, "id_token").get("auth_time")
    return (requested is not None and isinstance(requested, Mapping)
            and requested.get("essential") is True)


def effective_max_age(authentication_request: Mapping[str, Any],
                      client: Mapping[str, Any]) -> Optional[int]:
    """The ``max_age`` that applies to a request: its own, else the client's registered
    ``default_max_age`` (OIDC Core 3.1.2.1; OIDC Dynamic Registration 2: "The max_age
    request parameter overrides this default value"); None when neither is set."""
    for value in (authentication_request.get("max_age"), client.get("default_max_age")):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def subject_names_user(ctx: ProviderContext, sub: Any, user_id: str,
                       client: Optional[Mapping[str, Any]],
                       redirect_uri: Optional[str] = None) -> bool:
    """Whether ``sub``, a subject identifier issued to ``client`` (e.g. the ``sub`` of a
    verified ``id_token_hint``, OIDC Core 3.1.2.1; RP-Initiated Logout 1.0, 2), is the one of
    ``user_id``.

    The ``sub`` recorded for reverse lookup decides when there is one (public and pairwise
    alike, whichever redirect_uri the ID token was issued for); otherwise (a sealed
    subject identifier store, or a ``sub`` never recorded) the ``sub`` of ``user_id`` for
    ``client`` is computed as :func:`subject_identifier` issues it, with ``redirect_uri``
    (the request's) for the sector identifier of a pairwise client. ``client`` None: only
    the recorded ``sub`` decides.
    """
    if not isinstance(sub, str) or not sub:
        return False
    try:
        return ctx.authz_state.get_user_id_for_subject_identifier(sub) == user_id
    except InvalidSubjectIdentifier:
        pass
    if client is None:
        return False
    try:
        return subject_identifier(ctx, client, user_id, redirect_uri) == sub
    except ValueError:  # e.g. a pairwise client without any URI for a sector identifier
        return False
