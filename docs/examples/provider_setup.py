"""The provider used by the integration guides (docs/integration-*.rst).

``make_provider()`` builds a :class:`pyop.provider.Provider` with every endpoint
configured. The web applications in ``flask_app.py``, ``wsgi_app.py``, ``django_app.py``
and ``fastapi_app.py`` take the provider as an argument, so the same one serves every
guide.

Executed by ``tests/test_docs_examples.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from pyop.authz_state import AuthorizationState
from pyop.keys import load_signing_key
from pyop.provider import Provider
from pyop.storage import StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

#: The four stores of the AuthorizationState, and the client database.
COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers",
               "clients")


def make_provider(issuer: str, signing_key_file: str, users: Mapping[str, Any], *,
                  sub_hash_salt: str, storage_uri: str = "memory://",
                  clients: Optional[Mapping[str, Any]] = None,
                  token_management: bool = False) -> Provider:
    """A provider whose endpoints are the routes of the guides' applications.

    :param issuer: the issuer URL; the endpoints are ``<issuer>/authorization`` etc.
    :param signing_key_file: a PEM private key (``python -m pyop.keys --out FILE``).
    :param users: ``user_id -> claims`` (OIDC Core 5.1 claim names).
    :param sub_hash_salt: a long random secret, kept stable (subject identifiers
        are derived from it).
    :param storage_uri: a pyop storage URI, e.g. ``redis://localhost`` or
        ``postgresql://...``; the default keeps everything in this process.
    :param clients: clients registered up front (``client_id -> metadata``).
    :param token_management: also publish ``<issuer>/introspection`` (RFC 7662) and
        ``<issuer>/revocation`` (RFC 7009), which the Django and FastAPI applications serve.
    """
    stores = {name: StorageBase.from_uri(storage_uri, db_name="provider", collection=name)
              for name in COLLECTIONS}
    for client_id, metadata in (clients or {}).items():
        stores["clients"][client_id] = dict(metadata)

    authz_state = AuthorizationState(
        HashBasedSubjectIdentifierFactory(sub_hash_salt),
        stores["authz_codes"],
        stores["access_tokens"],
        stores["refresh_tokens"],
        stores["subject_identifiers"],
        refresh_token_lifetime=14 * 24 * 60 * 60,  # issue refresh tokens (two weeks)
    )
    signing_key = load_signing_key(signing_key_file)
    configuration_information = provider_configuration(issuer, signing_key.alg,
                                                       token_management=token_management)
    return Provider(signing_key, configuration_information, authz_state, stores["clients"],
                    Userinfo(users))


def provider_configuration(issuer: str, signing_alg: str, *,
                           token_management: bool = False) -> dict[str, Any]:
    """The provider metadata (OIDC Discovery 3): the endpoints are the routes of the
    guides' applications, under ``issuer``."""
    issuer = issuer.rstrip("/")
    configuration_information = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorization",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "registration_endpoint": issuer + "/registration",
        "end_session_endpoint": issuer + "/logout",
        "jwks_uri": issuer + "/jwks",
        "response_types_supported": ["code", "id_token", "id_token token", "code id_token"],
        # the guides' applications answer by redirect (query or fragment), not form_post
        "response_modes_supported": ["query", "fragment"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": [signing_alg],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
    }
    if token_management:
        configuration_information["introspection_endpoint"] = issuer + "/introspection"
        configuration_information["revocation_endpoint"] = issuer + "/revocation"
    return configuration_information
