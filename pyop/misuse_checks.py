"""Early, clear errors for a provider built the wrong way.

Mistakes that would otherwise surface late and obscurely -- a plain dict passed as the
claims source fails with ``AttributeError`` at the first UserInfo request, a misspelled
metadata name is silently published -- are reported when the
:class:`~pyop.provider.Provider` is built:

* :func:`check_claims_source` refuses a claims source without ``get_claims_for``
  (:class:`~pyop.exceptions.InvalidConfiguration` naming the argument);
* :func:`warn_unknown_configuration_keys` logs a warning for every configuration key
  that no specification this library implements defines (OIDC Discovery 3, RFC 8414 2,
  the OIDC logout specifications, RFC 7009, RFC 7662, RFC 7636, RFC 9207), with the
  nearest known name.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import InvalidConfiguration

__all__ = ["KNOWN_CONFIGURATION_KEYS", "check_claims_source", "unknown_configuration_keys",
           "warn_unknown_configuration_keys"]

logger = logging.getLogger(__name__)

#: Provider metadata names defined by the specifications pyop implements or publishes:
#: OpenID Connect Discovery 1.0 section 3, RFC 8414 section 2 (OAuth 2.0 Authorization
#: Server Metadata), RP-Initiated, Front- and Back-Channel Logout, RFC 7009, RFC 7662,
#: RFC 7636, RFC 9207, RFC 9449, OAuth 2.0 Form Post Response Mode, and pyoidc's ``version``.
KNOWN_CONFIGURATION_KEYS = frozenset({
    # OIDC Discovery 1.0, 3
    "issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
    "registration_endpoint", "scopes_supported", "response_types_supported",
    "response_modes_supported", "grant_types_supported", "acr_values_supported",
    "subject_types_supported", "id_token_signing_alg_values_supported",
    "id_token_encryption_alg_values_supported", "id_token_encryption_enc_values_supported",
    "userinfo_signing_alg_values_supported", "userinfo_encryption_alg_values_supported",
    "userinfo_encryption_enc_values_supported", "request_object_signing_alg_values_supported",
    "request_object_encryption_alg_values_supported",
    "request_object_encryption_enc_values_supported", "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported", "display_values_supported",
    "claim_types_supported", "claims_supported", "service_documentation",
    "claims_locales_supported", "ui_locales_supported", "claims_parameter_supported",
    "request_parameter_supported", "request_uri_parameter_supported",
    "require_request_uri_registration", "op_policy_uri", "op_tos_uri",
    # Session Management, RP-Initiated, Front-Channel and Back-Channel Logout 1.0
    "check_session_iframe", "end_session_endpoint", "frontchannel_logout_supported",
    "frontchannel_logout_session_supported", "backchannel_logout_supported",
    "backchannel_logout_session_supported",
    # RFC 8414 2, RFC 7009, RFC 7662, RFC 7636, RFC 9207
    "revocation_endpoint", "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported", "introspection_endpoint",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "code_challenge_methods_supported", "authorization_response_iss_parameter_supported",
    "signed_metadata",
    # RFC 9126 5 (pushed authorization requests)
    "pushed_authorization_request_endpoint", "require_pushed_authorization_requests",
    # pyoidc's ProviderConfigurationResponse default, published by pyop 3
    "version",
    # RFC 9449 5.1 (DPoP)
    "dpop_signing_alg_values_supported",
    # RFC 8705 3.3, 5 (mutual TLS)
    "tls_client_certificate_bound_access_tokens", "mtls_endpoint_aliases",
    # RFC 9101 10.5; JARM 3
    "require_signed_request_object", "authorization_signing_alg_values_supported",
})


def check_claims_source(userinfo: Any) -> None:
    """Refuse a claims source that cannot answer UserInfo requests.

    :raises InvalidConfiguration: ``userinfo`` has no ``get_claims_for`` method (a plain
        dict of users, for example: wrap it as ``Userinfo(users)``).
    """
    if callable(getattr(userinfo, "get_claims_for", None)):
        return
    hint = (" (wrap a dict of users as pyop.userinfo.Userinfo(users))"
            if isinstance(userinfo, Mapping) else "")
    raise InvalidConfiguration(
        f"userinfo: expected a pyop.userinfo.Userinfo or an object with "
        f"get_claims_for(user_id, requested_claims), got {type(userinfo).__name__}{hint}")


def unknown_configuration_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """The keys no known specification defines, each with its nearest known names."""
    unknown: dict[str, list[str]] = {}
    for key in keys:
        if key not in KNOWN_CONFIGURATION_KEYS:
            unknown[key] = difflib.get_close_matches(str(key), KNOWN_CONFIGURATION_KEYS,
                                                     n=1, cutoff=0.75)
    return unknown


def warn_unknown_configuration_keys(configuration: Mapping[str, Any]) -> None:
    """Log a warning for each configuration key that no specification defines.

    Unknown keys are published as given (OIDC Discovery 3 allows additional metadata), so
    a misspelled name would otherwise go unnoticed while the intended setting keeps its
    default.
    """
    for key, nearest in unknown_configuration_keys(configuration).items():
        if nearest:
            logger.warning("configuration_information: unknown key %r (did you mean %r?); "
                           "it is published as given", key, nearest[0])
        else:
            logger.warning("configuration_information: unknown key %r; it is published as "
                           "given", key)
