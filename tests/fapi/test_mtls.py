"""Mutual TLS (RFC 8705): client authentication with a certificate (section 2) and
certificate-bound access tokens (section 3), with the attacks those sections guard against."""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from conftest import ISSUER, USER_ID, USERS, FakeClock, configuration
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from fapi.certificates import (
    Authority,
    NameOID,
    certificate,
    der,
    ec_jwk,
    name,
    pem,
    rdn,
    thumbprint,
    x5c_jwk,
)
from pyop.authz_state import AuthorizationState
from pyop.client_certificate import (
    MAX_CLIENT_CERTIFICATE_SIZE,
    check_tls_client_auth_metadata,
    parse_client_certificate,
    subject_dn_matches,
    tls_client_auth_matches,
)
from pyop.crypto import b64url_encode
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidClientAuthentication,
    InvalidClientCertificate,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidRefreshToken,
    InvalidTokenRequest,
)
from pyop.provider import Provider
from pyop.storage import StatelessWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

REDIRECT = "https://rp.example.com/cb"
VERIFIER = "v" * 43
CHALLENGE = b64url_encode(hashlib.sha256(VERIFIER.encode("ascii")).digest())
MTLS_METHODS = ["client_secret_basic", "private_key_jwt", "none", "tls_client_auth",
                "self_signed_tls_client_auth"]

CA = Authority()
#: the certificate the PKI client registered (its subject and SANs)
CLIENT_CERT, CLIENT_KEY = CA.issue(
    "CN=Client One,O=Example Org,C=SE", dns=("client.example.com",),
    uris=("https://client.example.com/id",), ips=("2001:db8::1",),
    emails=("Ops@Example.COM",))
#: another client's certificate, from the same CA
OTHER_CERT, _ = CA.issue("CN=Client Two,O=Example Org,C=SE", dns=("other.example.com",))
SELF_SIGNED, SELF_SIGNED_KEY = certificate("CN=self-signed client")
STRANGER, _ = certificate("CN=self-signed client")  # same subject, another key


def clients() -> dict[str, Any]:
    base = {"redirect_uris": [REDIRECT], "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}
    return {
        "pki-dn": dict(base, client_id="pki-dn", token_endpoint_auth_method="tls_client_auth",
                       tls_client_auth_subject_dn="CN=Client One,O=Example Org,C=SE"),
        "pki-bound": dict(base, client_id="pki-bound",
                          token_endpoint_auth_method="tls_client_auth",
                          tls_client_auth_san_dns="client.example.com",
                          tls_client_certificate_bound_access_tokens=True),
        "self-signed": dict(base, client_id="self-signed",
                            token_endpoint_auth_method="self_signed_tls_client_auth",
                            jwks={"keys": [x5c_jwk(SELF_SIGNED)]},
                            tls_client_certificate_bound_access_tokens=True),
        "secret": dict(base, client_id="secret", client_secret="s3cret-s3cret",
                       token_endpoint_auth_method="client_secret_basic"),
        "public": dict(base, client_id="public", token_endpoint_auth_method="none",
                       grant_types=["authorization_code", "refresh_token"],
                       tls_client_certificate_bound_access_tokens=True),
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, signing_key: Any, *, client_db: Optional[dict[str, Any]] = None,
         config: Optional[dict[str, Any]] = None, authz: Optional[AuthorizationState] = None,
         **kwargs: Any) -> Provider:
    if config is None:
        config = configuration()
        config["token_endpoint_auth_methods_supported"] = MTLS_METHODS
        config["introspection_endpoint"] = ISSUER + "/introspect"
        config["revocation_endpoint"] = ISSUER + "/revoke"
        config["grant_types_supported"] = ["authorization_code", "refresh_token",
                                           "client_credentials"]
    authz = authz or AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                                        refresh_token_lifetime=3600)
    return Provider(signing_key, config, authz, clients() if client_db is None else client_db,
                    Userinfo(dict(USERS)), clock=clock, **kwargs)


@pytest.fixture
def provider(clock: FakeClock, jwkest_signing_key: Any) -> Provider:
    return make(clock, jwkest_signing_key)


def code_for(provider: Provider, client_id: str) -> str:
    request = provider.parse_authentication_request(urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "openid profile", "nonce": "n", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256"}))
    return str(provider.authorize(request, USER_ID)["code"])


def token_body(client_id: str, code: str, **extra: str) -> str:
    return urlencode({"grant_type": "authorization_code", "code": code, "client_id": client_id,
                      "redirect_uri": REDIRECT, "code_verifier": VERIFIER, **extra})


def exchange(provider: Provider, client_id: str, cert: Any, *, headers: Any = None,
             **extra: str) -> Any:
    return provider.handle_token_request(token_body(client_id, code_for(provider, client_id),
                                                    **extra),
                                         headers, client_certificate=cert)


def record_of(provider: Provider, token: str) -> dict[str, Any]:
    return provider.authz_state.get_access_token(token)


def basic(client_id: str, secret: str) -> dict[str, str]:
    value = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": "Basic " + value}


# -- the certificate the host passes ------------------------------------------------------------

class TestCertificateParsing:
    def test_rfc8705_3_1_x5t_s256_is_the_sha256_of_the_der_certificate(self) -> None:
        expected = thumbprint(CLIENT_CERT)
        assert parse_client_certificate(pem(CLIENT_CERT)).thumbprint == expected
        assert parse_client_certificate(pem(CLIENT_CERT).encode()).thumbprint == expected
        assert parse_client_certificate(der(CLIENT_CERT)).thumbprint == expected
        assert len(expected) == 43 and "=" not in expected

    def test_subject_and_sans_extracted(self) -> None:
        parsed = parse_client_certificate(pem(CLIENT_CERT))
        assert parsed.subject_dn == "CN=Client One,O=Example Org,C=SE"
        assert parsed.san_dns == ["client.example.com"]
        assert parsed.san_uri == ["https://client.example.com/id"]
        assert [str(ip) for ip in parsed.san_ip] == ["2001:db8::1"]
        assert parsed.san_email == ["Ops@Example.COM"]

    @pytest.mark.parametrize("garbage", [
        b"", "", "not a certificate", b"\x30\x82\x01\x00garbage",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "caf\u00e9", 42, ["a"], b"\x00" * 100,
    ])
    def test_garbage_certificate_is_a_typed_invalid_client(self, garbage: Any) -> None:
        with pytest.raises(InvalidClientCertificate) as info:
            parse_client_certificate(garbage)
        assert info.value.oauth_error == "invalid_client" and info.value.http_status == 401

    def test_bound_on_certificate_size(self) -> None:
        oversized = pem(CLIENT_CERT) + " " * MAX_CLIENT_CERTIFICATE_SIZE
        with pytest.raises(InvalidClientCertificate):
            parse_client_certificate(oversized)
        assert len(pem(CLIENT_CERT)) < MAX_CLIENT_CERTIFICATE_SIZE // 4

    @pytest.mark.parametrize("garbage", [b"junk", "-----BEGIN CERTIFICATE-----\nxx", b"\x30"])
    def test_garbage_certificate_at_the_token_endpoint_is_invalid_client_never_500(
            self, provider: Provider, garbage: Any) -> None:
        for client_id, headers in (("pki-dn", None), ("secret", basic("secret", "s3cret-s3cret"))):
            with pytest.raises(InvalidClientAuthentication) as info:
                exchange(provider, client_id, garbage, headers=headers)
            assert info.value.oauth_error == "invalid_client"


# -- RFC 8705 2.1: PKI mutual TLS method ------------------------------------------------------

class TestTlsClientAuth:
    def test_rfc8705_2_1_subject_dn_authenticates(self, provider: Provider) -> None:
        response = exchange(provider, "pki-dn", pem(CLIENT_CERT))
        assert response["token_type"] == "Bearer"
        # this client did not ask for bound tokens: a bearer token
        assert "cnf" not in record_of(provider, response["access_token"])

    def test_rfc8705_2_1_der_certificate_accepted(self, provider: Provider) -> None:
        assert exchange(provider, "pki-dn", der(CLIENT_CERT))["access_token"]

    def test_rfc8705_2_without_certificate_refused(self, provider: Provider) -> None:
        with pytest.raises(InvalidClientCertificate) as info:
            exchange(provider, "pki-dn", None)
        assert info.value.oauth_error == "invalid_client"

    def test_rfc8705_2_1_another_clients_certificate_refused(self, provider: Provider) -> None:
        with pytest.raises(InvalidClientAuthentication):
            exchange(provider, "pki-dn", pem(OTHER_CERT))

    def test_rfc8705_2_1_self_signed_certificate_with_the_same_subject_refused(
            self, provider: Provider) -> None:
        # the chain is the TLS terminator's to validate; a host that passes a certificate
        # whose DN matches is trusted to have validated it. What pyop checks is the DN:
        # a self-signed certificate with another subject is refused
        with pytest.raises(InvalidClientAuthentication):
            exchange(provider, "pki-dn", pem(SELF_SIGNED))

    def test_rfc8705_2_client_id_is_required_in_the_body(self, provider: Provider) -> None:
        body = urlencode({"grant_type": "authorization_code",
                          "code": code_for(provider, "pki-dn"), "redirect_uri": REDIRECT,
                          "code_verifier": VERIFIER})
        with pytest.raises(InvalidClientAuthentication):
            provider.handle_token_request(body, client_certificate=pem(CLIENT_CERT))

    def test_rfc6749_2_3_tls_client_must_not_use_another_method(self, provider: Provider
                                                               ) -> None:
        body = token_body("pki-dn", code_for(provider, "pki-dn"), client_secret="x")
        with pytest.raises(InvalidClientAuthentication):
            provider.handle_token_request(body, client_certificate=pem(CLIENT_CERT))

    def test_a_secret_client_cannot_authenticate_with_a_certificate(self, provider: Provider
                                                                  ) -> None:
        with pytest.raises(InvalidClientAuthentication):
            exchange(provider, "secret", pem(CLIENT_CERT))

    @pytest.mark.parametrize("metadata", [
        {"tls_client_auth_subject_dn": "CN=Client One,O=Example Org,C=SE",
         "tls_client_auth_san_dns": "client.example.com"},
        {},
    ])
    def test_rfc8705_2_1_2_metadata_without_exactly_one_matcher_refused_at_authentication(
            self, clock: FakeClock, jwkest_signing_key: Any, metadata: dict[str, Any]) -> None:
        db = clients()
        db["odd"] = dict(client_id="odd", redirect_uris=[REDIRECT], response_types=["code"],
                         token_endpoint_auth_method="tls_client_auth", **metadata)
        provider = make(clock, jwkest_signing_key, client_db=db)
        with pytest.raises(InvalidClientAuthentication):
            exchange(provider, "odd", pem(CLIENT_CERT))


class TestSubjectDnComparison:
    """RFC 8705 2.1.2: the DN compared as RFC 4517 distinguishedNameMatch does."""

    @pytest.mark.parametrize("registered", [
        "CN=Client One,O=Example Org,C=SE",
        "cn=client one,o=EXAMPLE ORG,c=se",           # case (caseIgnoreMatch)
        "CN=Client  One , O=Example Org,C=SE",         # insignificant spaces (RFC 4518)
        "CN=Client One, O=Example Org, C=SE",          # RFC 1779-style separators
        "CN=Client\\20One,O=Example Org,C=SE",         # escaping
        "2.5.4.3=Client One,2.5.4.10=Example Org,2.5.4.6=SE",  # OIDs for names
    ])
    def test_same_dn_written_differently_matches(self, registered: str) -> None:
        assert subject_dn_matches(registered, parse_client_certificate(pem(CLIENT_CERT)))

    @pytest.mark.parametrize("registered", [
        "C=SE,O=Example Org,CN=Client One",   # the RDNs in another order: another DN
        "CN=Client One,O=Example Org",        # a suffix
        "CN=Client One,O=Example Org,C=SE,DC=extra",
        "CN=Client Onf,O=Example Org,C=SE",
        "CN=Client One+O=Example Org,C=SE",   # one multi-valued RDN instead of two
        "O=Client One,CN=Example Org,C=SE",   # the values under other attribute types
        "",
        "not a dn",
    ])
    def test_other_dn_does_not_match(self, registered: str) -> None:
        assert not subject_dn_matches(registered, parse_client_certificate(pem(CLIENT_CERT)))

    def test_escaped_special_characters(self) -> None:
        # x509.Name lists the RDNs in ASN.1 order, the reverse of the string's
        cert, _ = CA.issue(x509.Name([rdn((NameOID.ORGANIZATION_NAME, "O")),
                                      rdn((NameOID.COMMON_NAME, "a,b+c"))]))
        parsed = parse_client_certificate(der(cert))
        assert subject_dn_matches("CN=a\\,b\\+c,O=O", parsed)
        assert subject_dn_matches("CN=a\\2cb\\2bc,O=O", parsed)
        # unescaped, the comma splits the RDN: another DN
        assert not subject_dn_matches("CN=a,b+c,O=O", parsed)

    def test_multi_valued_rdn_in_any_order(self) -> None:
        cert, _ = CA.issue(x509.Name([rdn((NameOID.ORGANIZATION_NAME, "O")),
                                      rdn((NameOID.COMMON_NAME, "x"),
                                          (NameOID.SERIAL_NUMBER, "42"))]))
        parsed = parse_client_certificate(der(cert))
        assert subject_dn_matches("CN=x+2.5.4.5=42,O=O", parsed)
        assert subject_dn_matches("2.5.4.5=42+CN=x,O=O", parsed)
        assert not subject_dn_matches("CN=x,O=O", parsed)
        assert not subject_dn_matches("CN=x+2.5.4.5=43,O=O", parsed)

    def test_dn_differing_only_in_case_authenticates_at_the_token_endpoint(
            self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        db = clients()
        db["pki-dn"]["tls_client_auth_subject_dn"] = "cn=CLIENT ONE,o=example org,c=se"
        provider = make(clock, jwkest_signing_key, client_db=db)
        assert exchange(provider, "pki-dn", pem(CLIENT_CERT))["access_token"]

    def test_dn_in_another_order_refused_at_the_token_endpoint(
            self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        db = clients()
        db["pki-dn"]["tls_client_auth_subject_dn"] = "C=SE,O=Example Org,CN=Client One"
        provider = make(clock, jwkest_signing_key, client_db=db)
        with pytest.raises(InvalidClientAuthentication):
            exchange(provider, "pki-dn", pem(CLIENT_CERT))


class TestSanMatching:
    """RFC 8705 2.1.2: one SAN of the registered type matches."""

    @pytest.mark.parametrize(("member", "value", "matches"), [
        ("tls_client_auth_san_dns", "client.example.com", True),
        ("tls_client_auth_san_dns", "CLIENT.Example.com", True),
        ("tls_client_auth_san_dns", "example.com", False),
        ("tls_client_auth_san_dns", "Client One", False),  # the CN is not a SAN
        ("tls_client_auth_san_uri", "https://client.example.com/id", True),
        ("tls_client_auth_san_uri", "https://client.example.com/id/", False),
        ("tls_client_auth_san_ip", "2001:db8::1", True),
        ("tls_client_auth_san_ip", "2001:0db8:0:0:0:0:0:1", True),
        ("tls_client_auth_san_ip", "2001:db8::2", False),
        ("tls_client_auth_san_email", "Ops@example.com", True),
        ("tls_client_auth_san_email", "ops@example.com", False),  # the local part is exact
        ("tls_client_auth_san_dns", "other.example.com", False),
    ])
    def test_san_matching(self, clock: FakeClock, jwkest_signing_key: Any, member: str,
                          value: str, matches: bool) -> None:
        db = clients()
        db["san"] = dict(client_id="san", redirect_uris=[REDIRECT], response_types=["code"],
                         token_endpoint_auth_method="tls_client_auth", **{member: value})
        provider = make(clock, jwkest_signing_key, client_db=db)
        if matches:
            assert exchange(provider, "san", pem(CLIENT_CERT))["access_token"]
        else:
            with pytest.raises(InvalidClientAuthentication):
                exchange(provider, "san", pem(CLIENT_CERT))

    def test_wildcard_san_matches_only_the_same_wildcard(self, clock: FakeClock,
                                                         jwkest_signing_key: Any) -> None:
        wildcard, _ = CA.issue("CN=w", dns=("*.example.com",))
        db = clients()
        db["san"] = dict(client_id="san", redirect_uris=[REDIRECT], response_types=["code"],
                         token_endpoint_auth_method="tls_client_auth",
                         tls_client_auth_san_dns="client.example.com")
        provider = make(clock, jwkest_signing_key, client_db=db)
        with pytest.raises(InvalidClientAuthentication):
            exchange(provider, "san", pem(wildcard))


# -- RFC 8705 2.2: self-signed certificate method ---------------------------------------------

class TestSelfSignedTlsClientAuth:
    def test_rfc8705_2_2_registered_certificate_authenticates(self, provider: Provider
                                                             ) -> None:
        response = exchange(provider, "self-signed", pem(SELF_SIGNED))
        assert record_of(provider, response["access_token"])["cnf"] == {
            "x5t#S256": thumbprint(SELF_SIGNED)}

    def test_rfc8705_2_2_certificate_not_in_jwks_refused(self, provider: Provider) -> None:
        # same subject, another key: not the registered certificate
        with pytest.raises(InvalidClientCertificate):
            exchange(provider, "self-signed", pem(STRANGER))

    def test_rfc8705_2_2_ca_issued_certificate_not_registered_refused(
            self, provider: Provider) -> None:
        with pytest.raises(InvalidClientCertificate):
            exchange(provider, "self-signed", pem(CLIENT_CERT))

    def test_certificate_with_the_registered_key_but_another_x5c_refused(
            self, provider: Provider) -> None:
        # a new certificate made with the same key: the JWK names a certificate, this one
        reissued, _ = certificate("CN=reissued", key=SELF_SIGNED_KEY)
        with pytest.raises(InvalidClientCertificate):
            exchange(provider, "self-signed", pem(reissued))

    @pytest.mark.parametrize("form", ["x5t#S256", "public key"])
    def test_rfc8705_2_2_2_jwk_forms(self, clock: FakeClock, jwkest_signing_key: Any,
                                     form: str) -> None:
        jwk = x5c_jwk(SELF_SIGNED)
        del jwk["x5c"]
        if form == "x5t#S256":
            jwk["x5t#S256"] = thumbprint(SELF_SIGNED)
        db = clients()
        db["self-signed"]["jwks"] = {"keys": [jwk]}
        provider = make(clock, jwkest_signing_key, client_db=db)
        assert exchange(provider, "self-signed", pem(SELF_SIGNED))["access_token"]
        with pytest.raises(InvalidClientCertificate):
            exchange(provider, "self-signed", pem(STRANGER))

    def test_rfc8705_2_2_2_jwks_uri(self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        db = clients()
        del db["self-signed"]["jwks"]
        db["self-signed"]["jwks_uri"] = "https://rp.example.com/jwks"
        provider = make(clock, jwkest_signing_key, client_db=db)
        fetched: list[str] = []

        def fetcher(uri: str) -> Any:
            fetched.append(uri)
            return {"keys": [x5c_jwk(SELF_SIGNED)]}

        provider.jwks_fetcher = fetcher
        assert exchange(provider, "self-signed", pem(SELF_SIGNED))["access_token"]
        assert exchange(provider, "self-signed", pem(SELF_SIGNED))["access_token"]
        assert fetched == ["https://rp.example.com/jwks"]  # cached
        with pytest.raises(InvalidClientCertificate):
            exchange(provider, "self-signed", pem(STRANGER))


# -- RFC 8705 3: certificate-bound access tokens ----------------------------------------------

class TestCertificateBoundTokens:
    def test_rfc8705_3_token_bound_to_the_certificate(self, provider: Provider) -> None:
        response = exchange(provider, "pki-bound", pem(CLIENT_CERT))
        token = response["access_token"]
        assert record_of(provider, token)["cnf"] == {"x5t#S256": thumbprint(CLIENT_CERT)}
        userinfo = provider.handle_userinfo_request(
            None, {"Authorization": "Bearer " + token}, client_certificate=der(CLIENT_CERT))
        assert userinfo["sub"]

    @pytest.mark.parametrize("presented", [None, "other", "garbage"])
    def test_rfc8705_3_stolen_bound_token_refused_at_userinfo(
            self, provider: Provider, presented: Optional[str]) -> None:
        token = exchange(provider, "pki-bound", pem(CLIENT_CERT))["access_token"]
        cert = {None: None, "other": pem(OTHER_CERT), "garbage": b"junk"}[presented]
        with pytest.raises(InvalidAccessToken) as info:
            provider.handle_userinfo_request(None, {"Authorization": "Bearer " + token},
                                             client_certificate=cert)
        assert info.value.http_status == 401 and info.value.oauth_error == "invalid_token"
        assert info.value.www_authenticate == 'Bearer error="invalid_token"'

    def test_rfc8705_3_2_introspection_returns_cnf(self, provider: Provider) -> None:
        token = exchange(provider, "pki-bound", pem(CLIENT_CERT))["access_token"]
        answer = provider.handle_introspection_request(
            urlencode({"token": token, "client_id": "pki-bound"}),
            client_certificate=pem(CLIENT_CERT))
        assert answer["active"] is True
        assert answer.to_dict()["cnf"] == {"x5t#S256": thumbprint(CLIENT_CERT)}
        # pyop 3's AuthorizationState method too
        assert provider.authz_state.introspect_access_token(token)["cnf"] == {
            "x5t#S256": thumbprint(CLIENT_CERT)}

    def test_rfc8705_2_introspection_and_revocation_authenticate_with_the_certificate(
            self, provider: Provider) -> None:
        token = exchange(provider, "pki-dn", pem(CLIENT_CERT))["access_token"]
        body = urlencode({"token": token, "client_id": "pki-dn"})
        with pytest.raises(InvalidClientAuthentication):
            provider.handle_introspection_request(body)
        with pytest.raises(InvalidClientAuthentication):
            provider.handle_revocation_request(body, client_certificate=pem(OTHER_CERT))
        answer = provider.handle_introspection_request(body, client_certificate=pem(CLIENT_CERT))
        assert answer["active"] is True and "cnf" not in answer.to_dict()
        for garbage in (b"junk", "x" * (MAX_CLIENT_CERTIFICATE_SIZE + 1)):
            with pytest.raises(InvalidClientCertificate):
                provider.handle_introspection_request(body, client_certificate=garbage)
            with pytest.raises(InvalidClientCertificate):
                provider.handle_revocation_request(body, client_certificate=garbage)
        provider.handle_revocation_request(body, client_certificate=pem(CLIENT_CERT))
        with pytest.raises(InvalidAccessToken):
            record_of(provider, token)

    def test_unbound_token_works_with_or_without_certificate(self, provider: Provider) -> None:
        token = exchange(provider, "secret", pem(CLIENT_CERT),
                         headers=basic("secret", "s3cret-s3cret"))["access_token"]
        assert "cnf" not in record_of(provider, token)
        for cert in (None, pem(OTHER_CERT), b"junk"):
            assert provider.handle_userinfo_request(
                None, {"Authorization": "Bearer " + token}, client_certificate=cert)["sub"]

    def test_rfc8705_3_4_registered_binding_without_certificate_refused(
            self, provider: Provider) -> None:
        body = token_body("public", code_for(provider, "public"))
        with pytest.raises(InvalidTokenRequest) as info:
            provider.handle_token_request(body)
        assert info.value.oauth_error == "invalid_request"

    def test_global_option_binds_every_mtls_token_but_clients_that_registered_false(
            self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        db = clients()
        db["opted-out"] = dict(db["secret"], client_id="opted-out",
                               tls_client_certificate_bound_access_tokens=False)
        provider = make(clock, jwkest_signing_key, client_db=db,
                        bind_tokens_to_client_certificates=True)
        token = exchange(provider, "secret", pem(OTHER_CERT),
                         headers=basic("secret", "s3cret-s3cret"))["access_token"]
        assert record_of(provider, token)["cnf"] == {"x5t#S256": thumbprint(OTHER_CERT)}
        token = exchange(provider, "opted-out", pem(OTHER_CERT),
                         headers=basic("opted-out", "s3cret-s3cret"))["access_token"]
        assert "cnf" not in record_of(provider, token)
        # without a certificate: a bearer token, as before
        token = exchange(provider, "secret", None,
                         headers=basic("secret", "s3cret-s3cret"))["access_token"]
        assert "cnf" not in record_of(provider, token)
        assert provider.provider_configuration[
            "tls_client_certificate_bound_access_tokens"] is True

    def test_client_credentials_token_bound(self, provider: Provider) -> None:
        response = provider.handle_token_request(
            urlencode({"grant_type": "client_credentials", "client_id": "pki-bound"}),
            client_certificate=pem(CLIENT_CERT))
        assert record_of(provider, response["access_token"])["cnf"] == {
            "x5t#S256": thumbprint(CLIENT_CERT)}

    def test_refresh_of_a_confidential_client_binds_the_new_token_to_the_new_certificate(
            self, provider: Provider) -> None:
        renewed, _ = CA.issue("CN=Client One renewed", dns=("client.example.com",))
        refresh = exchange(provider, "pki-bound", pem(CLIENT_CERT))["refresh_token"]
        response = provider.handle_token_request(
            urlencode({"grant_type": "refresh_token", "refresh_token": refresh,
                       "client_id": "pki-bound"}), client_certificate=pem(renewed))
        assert record_of(provider, response["access_token"])["cnf"] == {
            "x5t#S256": thumbprint(renewed)}

    def test_rfc8705_4_public_client_refresh_token_bound(self, provider: Provider) -> None:
        first = exchange(provider, "public", pem(SELF_SIGNED))
        assert record_of(provider, first["access_token"])["cnf"] == {
            "x5t#S256": thumbprint(SELF_SIGNED)}
        refresh = first["refresh_token"]

        def refresh_with(cert: Any, token: str) -> Any:
            return provider.handle_token_request(
                urlencode({"grant_type": "refresh_token", "refresh_token": token,
                           "client_id": "public"}), client_certificate=cert)

        for stolen_with in (pem(STRANGER),):
            with pytest.raises(InvalidRefreshToken) as info:
                refresh_with(stolen_with, refresh)
            assert info.value.oauth_error == "invalid_grant"
        with pytest.raises(InvalidTokenRequest):  # no certificate at all
            refresh_with(None, refresh)
        second = refresh_with(pem(SELF_SIGNED), refresh)
        assert record_of(provider, second["access_token"])["cnf"] == {
            "x5t#S256": thumbprint(SELF_SIGNED)}
        # rotated (public client): the new refresh token is bound as well
        with pytest.raises(InvalidRefreshToken):
            refresh_with(pem(STRANGER), second["refresh_token"])
        assert refresh_with(pem(SELF_SIGNED), second["refresh_token"])["access_token"]

    def test_code_redemption_on_an_executor_binds_the_token(
            self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        with ThreadPoolExecutor(1) as executor:
            provider = make(clock, jwkest_signing_key, executor=executor)
            token = exchange(provider, "pki-bound", pem(CLIENT_CERT))["access_token"]
        assert record_of(provider, token)["cnf"] == {"x5t#S256": thumbprint(CLIENT_CERT)}

    def test_sealed_tokens_carry_cnf(self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        secret = "k" * 32
        authz = AuthorizationState(
            HashBasedSubjectIdentifierFactory("salt"),
            StatelessWrapper("authz_codes", secret, clock=clock),
            StatelessWrapper("access_tokens", secret, clock=clock),
            StatelessWrapper("refresh_tokens", secret, clock=clock),
            StatelessWrapper("subject_identifiers", secret, clock=clock),
            clock=clock, refresh_token_lifetime=3600)
        provider = make(clock, jwkest_signing_key, authz=authz)
        first = exchange(provider, "public", pem(SELF_SIGNED))
        assert record_of(provider, first["access_token"])["cnf"] == {
            "x5t#S256": thumbprint(SELF_SIGNED)}
        with pytest.raises(InvalidAccessToken):
            provider.handle_userinfo_request(
                None, {"Authorization": "Bearer " + first["access_token"]},
                client_certificate=pem(STRANGER))
        body = urlencode({"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                          "client_id": "public"})
        with pytest.raises(InvalidRefreshToken):
            provider.handle_token_request(body, client_certificate=pem(STRANGER))
        second = provider.handle_token_request(body, client_certificate=pem(SELF_SIGNED))
        assert record_of(provider, second["access_token"])["cnf"] == {
            "x5t#S256": thumbprint(SELF_SIGNED)}
        with pytest.raises(InvalidRefreshToken):  # the rotated sealed token is bound too
            provider.handle_token_request(
                urlencode({"grant_type": "refresh_token",
                           "refresh_token": second["refresh_token"], "client_id": "public"}),
                client_certificate=pem(STRANGER))

    def test_access_token_cache_keeps_cnf(self, clock: FakeClock, jwkest_signing_key: Any
                                          ) -> None:
        authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"), clock=clock,
                                   access_token_cache_ttl=60)
        provider = make(clock, jwkest_signing_key, authz=authz)
        token = exchange(provider, "pki-bound", pem(CLIENT_CERT))["access_token"]
        reads: list[str] = []
        store = authz.access_tokens
        original = store.get

        def counting_get(key: str, *args: Any) -> Any:
            reads.append(key)
            return original(key, *args)

        store.get = counting_get  # type: ignore[method-assign]
        with pytest.raises(InvalidAccessToken):
            provider.handle_userinfo_request(None, {"Authorization": "Bearer " + token})
        assert provider.handle_userinfo_request(
            None, {"Authorization": "Bearer " + token}, client_certificate=pem(CLIENT_CERT))
        assert reads == []  # answered from the cache, with its cnf


# -- registration (RFC 8705 2.1.2, 2.2.2, 3.4) -------------------------------------------------

class TestRegistration:
    def register(self, provider: Provider, **metadata: Any) -> Any:
        return provider.handle_client_registration_request(json.dumps(
            {"redirect_uris": [REDIRECT], **metadata}))

    def test_tls_client_auth_registered_with_its_matcher(self, provider: Provider) -> None:
        response = self.register(provider, token_endpoint_auth_method="tls_client_auth",
                                 tls_client_auth_subject_dn="CN=Client One,O=Example Org,C=SE",
                                 tls_client_certificate_bound_access_tokens=True)
        client_id = response["client_id"]
        stored = provider.clients[client_id]
        assert stored["tls_client_auth_subject_dn"] == "CN=Client One,O=Example Org,C=SE"
        assert stored["tls_client_certificate_bound_access_tokens"] is True
        assert "client_secret" not in response.to_dict()
        token = exchange(provider, client_id, pem(CLIENT_CERT))["access_token"]
        assert record_of(provider, token)["cnf"] == {"x5t#S256": thumbprint(CLIENT_CERT)}

    @pytest.mark.parametrize("metadata", [
        {"token_endpoint_auth_method": "tls_client_auth"},
        {"token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "junk"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "1.2.3"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": "/rel"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_email": "x"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": ""},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": 5},
        {"token_endpoint_auth_method": "self_signed_tls_client_auth"},
        {"tls_client_certificate_bound_access_tokens": "yes"},
    ])
    def test_rfc8705_2_1_2_invalid_metadata_refused(self, provider: Provider,
                                                    metadata: dict[str, Any]) -> None:
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            self.register(provider, **metadata)
        assert info.value.oauth_error == "invalid_client_metadata"

    def test_self_signed_registered_with_jwks(self, provider: Provider) -> None:
        response = self.register(provider, token_endpoint_auth_method="self_signed_tls_client_auth",
                                 jwks={"keys": [x5c_jwk(SELF_SIGNED)]})
        assert exchange(provider, response["client_id"], pem(SELF_SIGNED))["access_token"]

    def test_methods_not_offered_refused(self, clock: FakeClock, jwkest_signing_key: Any
                                         ) -> None:
        provider = make(clock, jwkest_signing_key, config=configuration())
        with pytest.raises(InvalidClientRegistrationRequest):
            self.register(provider, token_endpoint_auth_method="tls_client_auth",
                          tls_client_auth_san_dns="client.example.com")


# -- discovery (RFC 8705 3.3, 5) ----------------------------------------------------------------

class TestDiscovery:
    def test_not_advertised_by_default(self, clock: FakeClock, jwkest_signing_key: Any
                                       ) -> None:
        config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
                  "token_endpoint": ISSUER + "/token"}  # pyop 3's defaults for the rest
        document = make(clock, jwkest_signing_key, config=config).provider_configuration
        document = document.to_dict()
        assert "tls_client_certificate_bound_access_tokens" not in document
        assert "mtls_endpoint_aliases" not in document
        assert "tls_client_auth" not in document["token_endpoint_auth_methods_supported"]

    def test_rfc8705_5_aliases_published_when_configured(
            self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        config = configuration()
        aliases = {"token_endpoint": "https://mtls.op.example.com/token",
                   "userinfo_endpoint": "https://mtls.op.example.com/userinfo"}
        config["mtls_endpoint_aliases"] = aliases
        config["tls_client_certificate_bound_access_tokens"] = True
        document = make(clock, jwkest_signing_key, config=config).provider_configuration
        assert document["mtls_endpoint_aliases"] == aliases
        assert document["tls_client_certificate_bound_access_tokens"] is True
        assert document["token_endpoint"] == ISSUER + "/token"

    @pytest.mark.parametrize(("member", "value"), [
        ("mtls_endpoint_aliases", "https://mtls.op.example.com/token"),
        ("mtls_endpoint_aliases", {"token_endpoint": "http://mtls.op.example.com/token"}),
        ("mtls_endpoint_aliases", {"token": "https://mtls.op.example.com/token"}),
        ("mtls_endpoint_aliases", {}),
        ("tls_client_certificate_bound_access_tokens", "true"),
    ])
    def test_invalid_configuration_refused(self, clock: FakeClock, jwkest_signing_key: Any,
                                           member: str, value: Any) -> None:
        config = configuration()
        config[member] = value
        with pytest.raises(InvalidConfiguration):
            make(clock, jwkest_signing_key, config=config)

    def test_rfc8705_5_client_assertion_audience_may_be_the_alias(
            self, clock: FakeClock, jwkest_signing_key: Any) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        from pyop.crypto import SigningKey, jws_sign

        key = ec.generate_private_key(ec.SECP256R1())
        jwk = ec_jwk(key.public_key())
        config = configuration()
        config["token_endpoint_auth_methods_supported"] = ["private_key_jwt"]
        alias = "https://mtls.op.example.com/token"
        config["mtls_endpoint_aliases"] = {"token_endpoint": alias}
        db = {"jwt": {"client_id": "jwt", "redirect_uris": [REDIRECT], "response_types": ["code"],
                      "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}}}
        provider = make(clock, jwkest_signing_key, client_db=db, config=config,
                        client_assertion_audiences="issuer-or-endpoint")

        def assertion(aud: str, jti: str) -> str:
            claims = {"iss": "jwt", "sub": "jwt", "aud": aud, "jti": jti,
                      "iat": int(clock()), "exp": int(clock()) + 60}
            return jws_sign(claims, SigningKey(key, "ES256"))

        def body(aud: str, jti: str) -> str:
            return token_body("jwt", code_for(provider, "jwt"), client_assertion_type=(
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                client_assertion=assertion(aud, jti))

        assert provider.handle_token_request(body(alias, "1"))["access_token"]
        with pytest.raises(InvalidClientAuthentication):
            provider.handle_token_request(body("https://elsewhere.example/token", "2"))


def test_shared_client_authentication_accepts_the_certificate(provider: Provider) -> None:
    """The helper every endpoint authenticating clients uses (token, introspection,
    revocation, pushed authorization requests) takes the certificate."""
    client_id, client = provider._context.authenticate_client(
        {"client_id": "pki-dn"}, None, "pushed_authorization_request_endpoint",
        client_certificate=pem(CLIENT_CERT))
    assert client_id == "pki-dn" and client["token_endpoint_auth_method"] == "tls_client_auth"
    with pytest.raises(InvalidClientAuthentication):
        provider._context.authenticate_client({"client_id": "pki-dn"}, None,
                                              client_certificate=pem(OTHER_CERT))


def test_name_helper_round_trips() -> None:
    assert name("CN=x").rfc4514_string() == "CN=x"


# -- bad input never escapes as another exception ----------------------------------------------

@given(st.one_of(st.binary(max_size=3000), st.text(max_size=3000),
                 st.binary(max_size=2000).map(lambda b: b"-----BEGIN CERTIFICATE-----\n" + b)))
@settings(max_examples=300)
def test_fuzz_certificate_parsing_raises_only_the_typed_error(value: Any) -> None:
    try:
        parse_client_certificate(value)
    except InvalidClientCertificate:
        pass


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_fuzz_registered_matchers_never_raise(value: str) -> None:
    parsed = parse_client_certificate(der(CLIENT_CERT))
    assert isinstance(subject_dn_matches(value, parsed), bool)
    for member in ("tls_client_auth_subject_dn", "tls_client_auth_san_dns",
                   "tls_client_auth_san_uri", "tls_client_auth_san_ip",
                   "tls_client_auth_san_email"):
        metadata = {"token_endpoint_auth_method": "tls_client_auth", member: value}
        problem = check_tls_client_auth_metadata(metadata)
        assert problem is None or isinstance(problem, str)
        assert isinstance(tls_client_auth_matches(metadata, parsed), bool)
