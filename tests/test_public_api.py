"""Pins the public API: ``__all__`` of every public module, and that each name exists."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_API: dict[str, list[str]] = {
    "pyop": ["AuthorizationState", "HashBasedSubjectIdentifierFactory", "Provider", "Userinfo",
             "__version__"],
    "pyop.provider": ["Provider", "SCOPE_CLAIMS"],
    "pyop.aio": ["AsyncProvider", "AsyncAuthorizationState", "AsyncUserinfo", "ThreadedUserinfo",
                 "AsyncStorageBase", "AsyncMemoryStorage", "AsyncStatelessWrapper",
                 "AsyncGuardedFetcher", "AsyncBackChannelSender", "MissingAsyncContext",
                 "EventLoopMismatch"],
    "pyop.aio.provider": ["AsyncProvider"],
    "pyop.aio.authz_state": ["AsyncAuthorizationState"],
    "pyop.aio.userinfo": ["AsyncUserinfo", "ThreadedUserinfo", "as_sync_userinfo"],
    "pyop.aio.storage": ["AsyncStorageBase", "BridgedStorage", "GreenletStorage",
                         "AsyncMemoryStorage", "AsyncStatelessWrapper", "AsyncRedisStorage",
                         "AsyncMongoStorage", "AsyncSQLStorage"],
    "pyop.aio.outbound": ["AsyncGuardedFetcher"],
    "pyop.aio.logout": ["AsyncBackChannelSender", "AsyncFormPoster", "AsyncTransport"],
    "pyop.authz_state": ["AuthorizationState", "new_token_value"],
    "pyop.access_token": ["AccessToken", "extract_bearer_token_from_http_request",
                          "get_header"],
    "pyop.client_authentication": ["authenticate_client", "verify_client_authentication",
                                   "parse_basic_authorization", "hash_client_secret",
                                   "client_secret_matches", "SUPPORTED_AUTH_METHODS"],
    "pyop.client_management": [
        "SERVER_MANAGED_METADATA", "CLIENT_SETTABLE_METADATA", "EXTENSION_CLIENT_METADATA",
        "DEFAULT_REGISTRATION_CLIENT_URI_TEMPLATE", "new_registration_access_token",
        "registration_access_token_matches", "registration_bearer_token",
        "registration_client_uri", "uses_client_secret", "client_allowed_scope",
        "client_allowed_claims", "narrow_scope", "narrow_claims", "narrow_claims_request"],
    "pyop.client_assertion": ["JWT_BEARER_ASSERTION_TYPE", "HMAC_ALGS",
                              "DEFAULT_MAX_ASSERTION_LIFETIME", "ASSERTION_LEEWAY",
                              "MAX_ASSERTION_SIZE", "ClientAssertionVerifier",
                              "assertion_signing_algs", "method_for_alg",
                              "ASSERTION_AUDIENCES", "ASSERTION_TYPES"],
    "pyop.crypto": ["JWSError", "SigningKey", "VerificationKey", "b64url_encode",
                    "b64url_decode", "left_hash", "hash_for_alg", "jws_sign", "jws_verify",
                    "jwk_thumbprint"],
    "pyop.exceptions": [
        "OAuthError", "InvalidRequestError", "InvalidAuthenticationRequest",
        "InvalidRedirectURI", "InvalidClientId", "UnknownClientId", "AuthorizationError",
        "RequestedSubjectMismatch", "InvalidClientAuthentication", "InvalidTokenRequest",
        "InvalidAuthorizationCode",
        "InvalidRefreshToken", "InvalidScope", "UnsupportedGrantType", "UnauthorizedClient",
        "BearerTokenError", "InvalidAccessToken", "InsufficientScope", "TokenWithoutEndUser",
        "InvalidUserinfoRequest",
        "InvalidClientRegistrationRequest", "InvalidRegistrationAccessToken",
        "InvalidSubjectIdentifier",
        "InvalidEndSessionRequest", "InvalidConfiguration", "StorageError", "UnknownUser",
        "FetchError", "IdTokenHintMismatch", "ReauthenticationRequired",
        "UnmetAuthenticationRequirements", "InvalidPushedAuthorizationRequest",
        "InvalidRequestURI", "InvalidClientCertificate", "InvalidDPoPProof", "UseDPoPNonce",
        "DPoPTokenError"],
    "pyop.misuse_checks": ["KNOWN_CONFIGURATION_KEYS", "check_claims_source",
                           "unknown_configuration_keys", "warn_unknown_configuration_keys"],
    "pyop.id_token": ["create_id_token", "verify_id_token_hint", "PROTECTED_CLAIMS"],
    "pyop.keys": ["SUPPORTED_KEY_ALGS", "generate_signing_key", "private_key_to_pem",
                  "write_private_key", "load_signing_key", "public_jwk", "main",
                  "RotationFiles", "rotation_files", "load_retired_keys", "load_rotation_keys"],
    "pyop.cli": ["main", "build_parser"],
    "pyop.cli.check": ["Finding", "SEVERITIES", "check_issuer", "fetch_json"],
    "pyop.cli.output": ["EXIT_OK", "EXIT_FINDINGS", "EXIT_USAGE", "EXIT_FAILURE", "CommandError",
                        "print_json", "print_table", "format_time", "Progress"],
    "pyop.cli.keys": [],
    "pyop.cli.clients": [],
    "pyop.message": [
        "AuthorizationRequest", "AccessTokenRequest", "RefreshAccessTokenRequest",
        "AuthorizationResponse", "AuthorizationErrorResponse", "AccessTokenResponse",
        "TokenErrorResponse", "RegistrationRequest", "RegistrationResponse",
        "ClientRegistrationErrorResponse", "ProviderConfigurationResponse", "IdToken",
        "OpenIDSchema", "EndSessionRequest", "EndSessionResponse", "UserInfoErrorResponse",
        "ClaimsRequest", "TokenIntrospectionResponse", "UserinfoResponse", "Message",
        "PushedAuthorizationResponse"],
    "pyop.registration": [
        "check_redirect_uris", "check_response_and_grant_types",
        "check_token_endpoint_auth_method", "check_subject_type", "check_sector_identifier_uri",
        "check_post_logout_redirect_uris", "check_signing_algs",
        "check_signed_requests_and_jarm", "check_metadata_uris",
        "check_client_keys", "check_scope", "check_logout_uris", "fetch_sector_identifier_uris",
        "grant_types_for_response_types", "DEFAULT_REGISTRATION_CHECKS",
        "RegistrationLimits", "RegistrationSettings", "check_metadata_bounds",
        "check_pushed_authorization_metadata", "check_dpop_bound_access_tokens"],
    "pyop.logout_notifications": [
        "BACKCHANNEL_LOGOUT_EVENT", "LOGOUT_TOKEN_TYPE", "BackChannelLogoutRequest",
        "BackChannelSender", "DeliveryResult", "FormPoster", "FrontChannelLogoutPage",
        "LogoutResult", "SenderSettings",
        "Transport", "client_requires_sid", "frontchannel_logout_page",
        "frontchannel_logout_url", "is_acceptable_logout_uri", "make_logout_token",
        "new_session_id"],
    "pyop.request_validator": [
        "check_client_id", "check_redirect_uri", "check_response_type", "check_response_mode",
        "check_scope", "check_nonce", "check_prompt", "check_max_age", "check_request_objects",
        "check_pkce", "check_claims", "DEFAULT_AUTHENTICATION_CHECKS", "PKCE_VALUE_PATTERN",
        "authorization_request_verify", "client_id_is_known",
        "redirect_uri_is_in_registered_redirect_uris",
        "response_type_is_in_registered_response_types",
        "userinfo_claims_only_specified_when_access_token_is_issued",
        "requested_scope_is_supported", "registration_request_verify",
        "client_preferences_match_provider_capabilities"],
    "pyop.storage": ["StorageBase", "MemoryStorage", "DictStorage", "as_storage",
                     "MongoWrapper", "RedisWrapper", "SQLWrapper", "StatelessWrapper"],
    "pyop.subject_identifier": ["SubjectIdentifierFactory", "HashBasedSubjectIdentifierFactory",
                                "SCHEME_SHA256", "SCHEME_HMAC_SHA256"],
    "pyop.userinfo": ["Userinfo"],
    "pyop.util": ["should_fragment_encode", "response_type_set", "is_loopback_host",
                  "find_common_values", "should_form_post", "render_form_post",
                  "FORM_POST_CONTENT_SECURITY_POLICY", "is_allowed_response_type",
                  "requested_scope_is_allowed", "display_host", "is_valid_identifier",
                  "refers_to_loopback"],
    "pyop.request_object": ["DEFAULT_REQUEST_OBJECT_SIGNING_ALGS", "NBF_LEEWAY", "JWT_CLAIMS",
                            "parse_jwk_set", "verification_keys", "verify_request_object",
                            "merge_request_object", "fetch_jwks", "ForbiddenAddress",
                            "ClientJWK", "DEFAULT_MAX_CLIENT_KEYS", "MIN_RSA_MODULUS_BITS",
                            "MAX_RSA_MODULUS_BITS", "MAX_RSA_EXPONENT",
                            "REQUEST_OBJECT_TYPES", "DEFAULT_MAX_REQUEST_OBJECT_LIFETIME",
                            "request_object_parameters"],
    "pyop.jwt_checks": ["MAX_JTI_LENGTH", "is_numeric_date", "jwt_type", "use_jti_once"],
    "pyop.outbound": ["DEFAULT_DEADLINE", "DEFAULT_MAX_SIZE", "FetchResponse",
                      "ForbiddenAddress", "GuardedFetcher", "fetch_jwks", "is_public_address"],
    "pyop.client_certificate": ["ClientCertificate", "parse_client_certificate",
                                "check_certificate_bound", "certificate_confirmation",
                                "tls_client_auth_matches", "subject_dn_matches",
                                "self_signed_certificate_matches",
                                "check_tls_client_auth_metadata", "TLS_CLIENT_AUTH_METHODS",
                                "TLS_CLIENT_AUTH_SUBJECT_MEMBERS",
                                "MAX_CLIENT_CERTIFICATE_SIZE", "X5T_S256"],
    "pyop.dpop": ["DEFAULT_DPOP_SIGNING_ALGS", "DPOP_PROOF_TYPE", "DPoPNonceProvider",
                  "DPoPProof", "DPoPSettings", "TimeBasedDPoPNonces", "access_token_hash",
                  "as_dpop_error", "check_dpop_bound_request", "check_dpop_jkt_parameter",
                  "check_dpop_signing_algs", "client_requires_dpop", "cnf_matches",
                  "code_binding_matches", "dpop_scheme_token", "is_dpop_bound",
                  "normalize_htu", "pushed_request_proof", "token_request_proof",
                  "verify_dpop_proof"],
    "pyop.profiles": ["PROFILES", "FAPI2", "FAPI2_SIGNING_ALGS", "FAPI2_CLIENT_AUTH_METHODS",
                      "FAPI2_MAX_CODE_LIFETIME", "FAPI2_MAX_PUSHED_REQUEST_LIFETIME",
                      "FAPI2_MIN_RSA_KEY_BITS", "FAPI2_MIN_EC_KEY_BITS",
                      "fapi2_metadata", "install_fapi2_validators",
                      "check_fapi2_authentication_request", "check_fapi2_registration_request",
                      "check_fapi2_client", "check_fapi2_token_request"],
}

#: Imports of pyop 3's README that must keep working.
README_IMPORTS = [
    ("pyop.provider", "Provider"),
    ("pyop.authz_state", "AuthorizationState"),
    ("pyop.subject_identifier", "HashBasedSubjectIdentifierFactory"),
    ("pyop.userinfo", "Userinfo"),
    ("pyop.storage", "MongoWrapper"),
    ("pyop.exceptions", "InvalidAuthenticationRequest"),
    ("pyop.exceptions", "InvalidClientAuthentication"),
    ("pyop.exceptions", "OAuthError"),
    ("pyop.exceptions", "InvalidSubjectIdentifier"),
    ("pyop.exceptions", "BearerTokenError"),
    ("pyop.exceptions", "InvalidClientRegistrationRequest"),
    ("pyop.exceptions", "InvalidAccessToken"),
    ("pyop.access_token", "AccessToken"),
    ("pyop.util", "should_fragment_encode"),
    ("pyop.message", "AuthorizationRequest"),
]


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_all_is_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert list(module.__all__) == PUBLIC_API[module_name]


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_every_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert len(set(module.__all__)) == len(module.__all__), "duplicates in __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_star_import(module_name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module_name} import *", namespace)  # noqa: S102 - test of __all__
    assert set(PUBLIC_API[module_name]) <= set(namespace)


@pytest.mark.parametrize("module_name,name", README_IMPORTS)
def test_pyop3_imports(module_name: str, name: str) -> None:
    assert hasattr(importlib.import_module(module_name), name)


def test_package_reexports_are_the_module_objects() -> None:
    import pyop
    from pyop.authz_state import AuthorizationState
    from pyop.provider import Provider
    from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
    from pyop.userinfo import Userinfo

    assert pyop.Provider is Provider
    assert pyop.AuthorizationState is AuthorizationState
    assert pyop.HashBasedSubjectIdentifierFactory is HashBasedSubjectIdentifierFactory
    assert pyop.Userinfo is Userinfo
    assert isinstance(pyop.__version__, str) and pyop.__version__.startswith("4.")


def test_py_typed_marker() -> None:
    from importlib import resources

    assert resources.files("pyop").joinpath("py.typed").is_file()
