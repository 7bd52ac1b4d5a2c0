"""Unit tests of pyop.registration: client metadata checks and defaults (OIDC Registration 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest
from conftest import configuration
from support.serving import serving

from pyop.crypto import SigningKey
from pyop.exceptions import FetchError, InvalidClientRegistrationRequest
from pyop.outbound import GuardedFetcher
from pyop.provider import Provider
from pyop.registration import (
    DEFAULT_REGISTRATION_CHECKS,
    check_client_keys,
    check_dpop_bound_access_tokens,
    check_logout_uris,
    check_metadata_uris,
    check_post_logout_redirect_uris,
    check_pushed_authorization_metadata,
    check_redirect_uris,
    check_response_and_grant_types,
    check_scope,
    check_sector_identifier_uri,
    check_signing_algs,
    check_subject_type,
    check_token_endpoint_auth_method,
    fetch_sector_identifier_uris,
    grant_types_for_response_types,
    optional_str,
    registration_defaults,
)

WEB_URI = "https://rp.example.com/cb"


@pytest.fixture(scope="module")
def converted_key(jwkest_signing_key: Any) -> SigningKey:
    return SigningKey.from_jwkest(jwkest_signing_key)


@pytest.fixture
def provider(make_provider: Callable[..., Provider], converted_key: SigningKey) -> Provider:
    return make_provider(signing_key=converted_key, authz_kwargs={"refresh_token_lifetime": 60})


def metadata(**members: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"redirect_uris": [WEB_URI]}
    base.update(members)
    return {k: v for k, v in base.items() if v is not None}


def refused(check: Callable[..., None], provider: Provider, request: dict[str, Any],
            oauth_error: str = "invalid_client_metadata") -> str:
    with pytest.raises(InvalidClientRegistrationRequest) as info:
        check(request, provider)
    assert info.value.oauth_error == oauth_error
    assert info.value.request is request
    return str(info.value)


class TestGrantTypes:
    @pytest.mark.parametrize("response_types,grants", [
        (None, []), ([], []), (["code"], ["authorization_code"]),
        (["id_token"], ["implicit"]), (["id_token token"], ["implicit"]),
        (["code id_token"], ["authorization_code", "implicit"]),
        (["code", "id_token token"], ["authorization_code", "implicit"]),
        (["none"], []), ([["code", "token"]], ["authorization_code", "implicit"]),
    ])
    def test_for_response_types(self, response_types: Any, grants: list[str]) -> None:
        assert grant_types_for_response_types(response_types) == grants

    def test_defaults(self) -> None:
        assert registration_defaults({}) == {
            "response_types": ["code"], "application_type": "web",
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"]}
        given = {"response_types": ["id_token"], "application_type": "native",
                 "token_endpoint_auth_method": "none"}
        assert registration_defaults(given) == {"grant_types": ["implicit"]}
        assert registration_defaults({"grant_types": ["authorization_code"]}) == {
            "response_types": ["code"], "application_type": "web",
            "token_endpoint_auth_method": "client_secret_basic"}

    def test_optional_str(self) -> None:
        assert optional_str("x") == "x"
        assert optional_str(5) is None and optional_str(None) is None


class TestRedirectUris:
    @pytest.mark.parametrize("members", [
        {}, {"redirect_uris": ["https://a.example.com/cb", "https://b.example.com/cb?x=1"]},
        {"redirect_uris": ["http://127.0.0.1:8000/cb"]},
        {"redirect_uris": ["http://localhost/cb"]}, {"redirect_uris": ["http://[::1]/cb"]},
        {"redirect_uris": ["https://localhost/cb"]},
        {"redirect_uris": ["com.example.app:/cb"], "application_type": "native"},
        {"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "native",
         "response_types": ["id_token"]},
        {"redirect_uris": ["https://localhost/cb"], "application_type": "native",
         "response_types": ["id_token"]},
        {"redirect_uris": ["https://spa.example.com/cb"], "response_types": ["id_token token"]},
    ])
    def test_accepted(self, provider: Provider, members: dict[str, Any]) -> None:
        check_redirect_uris(metadata(**members), provider)

    @pytest.mark.parametrize("members", [
        {"redirect_uris": None}, {"redirect_uris": []}, {"redirect_uris": "https://a/cb"},
        {"redirect_uris": [5]}, {"redirect_uris": [""]},
        {"redirect_uris": ["https://a.example.com/cb#frag"]},
        {"redirect_uris": ["https://a.example.com/cb#"]},
        {"redirect_uris": ["/relative/cb"]}, {"redirect_uris": ["https:///cb"]},
        {"redirect_uris": ["https://[::1/cb"]},
        {"redirect_uris": ["https://a.example.com/c b"]},
        {"redirect_uris": ["https://a.example.com/cb\n"]},
        {"redirect_uris": ["https://a.example.com/cb\x00"]},
        {"redirect_uris": ["https://a.example.com/\x7f"]},
        {"redirect_uris": ["http://rp.example.com/cb"]},
        {"redirect_uris": ["com.example.app:/cb"]},
        {"redirect_uris": ["javascript:alert(1)"], "application_type": "native"},
        {"redirect_uris": ["data:text/html,x"], "application_type": "native"},
        {"redirect_uris": ["https://localhost/cb"], "response_types": ["id_token"]},
        {"redirect_uris": ["http://127.0.0.1/cb"], "response_types": ["code id_token"]},
    ])
    def test_refused(self, provider: Provider, members: dict[str, Any]) -> None:
        refused(check_redirect_uris, provider, metadata(**members), "invalid_redirect_uri")


class TestResponseAndGrantTypes:
    def test_accepted(self, provider: Provider) -> None:
        check_response_and_grant_types(metadata(), provider)
        check_response_and_grant_types(metadata(response_types=["code", "id_token token"]),
                                       provider)
        check_response_and_grant_types(
            metadata(response_types=["code"],
                     grant_types=["authorization_code", "refresh_token"]), provider)

    def test_unsupported_response_type(self, provider: Provider) -> None:
        message = refused(check_response_and_grant_types, provider,
                          metadata(response_types=["token"]))
        assert "token" in message

    def test_unsupported_grant_type(self, provider: Provider,
                                    make_provider: Callable[..., Provider],
                                    converted_key: SigningKey) -> None:
        # dropped by default (pyop 3), refused with strict_client_preferences
        check_response_and_grant_types(
            metadata(grant_types=["authorization_code", "password"]), provider)
        message = refused(check_response_and_grant_types, provider,
                          metadata(grant_types=["password"]))
        assert message.startswith("grant_types: none of the values is supported")
        strict = make_provider(signing_key=converted_key, strict_client_preferences=True)
        message = refused(check_response_and_grant_types, strict,
                          metadata(grant_types=["authorization_code", "password"]))
        assert message == "grant_types: not supported: 'password'"

    def test_inconsistent_grant_types(self, provider: Provider) -> None:
        message = refused(check_response_and_grant_types, provider,
                          metadata(response_types=["code id_token"],
                                   grant_types=["authorization_code"]))
        assert "implicit" in message

    def test_refresh_token_grant_needs_refresh_tokens(
            self, make_provider: Callable[..., Provider], converted_key: SigningKey) -> None:
        prov = make_provider(signing_key=converted_key, strict_client_preferences=True)
        refused(check_response_and_grant_types, prov,
                metadata(grant_types=["authorization_code", "refresh_token"]))
        prov = make_provider(signing_key=converted_key)
        refused(check_response_and_grant_types, prov, metadata(grant_types=["refresh_token"]))


class TestOtherChecks:
    def test_token_endpoint_auth_method(self, provider: Provider,
                                        make_provider: Callable[..., Provider],
                                        converted_key: SigningKey) -> None:
        for method in (None, "client_secret_basic", "client_secret_post", "none",
                       "client_secret_jwt"):
            check_token_endpoint_auth_method(metadata(token_endpoint_auth_method=method),
                                             provider)
        # private_key_jwt without jwks/jwks_uri: refused
        for method in ("private_key_jwt", "tls_client_auth", "NONE"):
            refused(check_token_endpoint_auth_method, provider,
                    metadata(token_endpoint_auth_method=method))
        config = configuration()
        config["token_endpoint_auth_methods_supported"] = ["client_secret_basic",
                                                           "private_key_jwt"]
        prov = make_provider(config=config, signing_key=converted_key)
        refused(check_token_endpoint_auth_method, prov,
                metadata(token_endpoint_auth_method="none"))
        refused(check_token_endpoint_auth_method, prov,  # no keys to verify assertions with
                metadata(token_endpoint_auth_method="private_key_jwt"))

    def test_subject_type(self, provider: Provider, make_provider: Callable[..., Provider],
                          converted_key: SigningKey) -> None:
        for subject_type in (None, "public", "pairwise"):
            check_subject_type(metadata(subject_type=subject_type), provider)
        refused(check_subject_type, provider, metadata(subject_type="ephemeral"))
        config = configuration()
        config["subject_types_supported"] = ["public"]
        prov = make_provider(config=config, signing_key=converted_key)
        refused(check_subject_type, prov, metadata(subject_type="pairwise"))
        del config["subject_types_supported"]  # pyop 3's default: pairwise only
        prov = make_provider(config=config, signing_key=converted_key)
        check_subject_type(metadata(subject_type="pairwise"), prov)
        refused(check_subject_type, prov, metadata(subject_type="public"))

    def test_post_logout_redirect_uris(self, provider: Provider) -> None:
        check_post_logout_redirect_uris(metadata(), provider)
        check_post_logout_redirect_uris(
            metadata(post_logout_redirect_uris=["https://rp.example.com/bye"]), provider)
        check_post_logout_redirect_uris(
            metadata(post_logout_redirect_uris=["app:/bye"], application_type="native"),
            provider)
        for uris in (["https://rp.example.com/bye#x"], ["http://rp.example.com/bye"],
                     ["app:/bye"], [5]):
            refused(check_post_logout_redirect_uris, provider,
                    metadata(post_logout_redirect_uris=uris))

    def test_signing_algs(self, provider: Provider, make_provider: Callable[..., Provider],
                          converted_key: SigningKey) -> None:
        refused(check_signing_algs, provider, metadata(userinfo_signed_response_alg="RS256"))
        config = configuration()
        config["userinfo_signing_alg_values_supported"] = ["RS256"]  # signed userinfo: opt-in
        provider = make_provider(config=config, signing_key=converted_key)
        check_signing_algs(metadata(), provider)
        check_signing_algs(metadata(id_token_signed_response_alg="RS256"), provider)
        refused(check_signing_algs, provider, metadata(id_token_signed_response_alg="ES256"))
        refused(check_signing_algs, provider, metadata(id_token_signed_response_alg="none"))
        check_signing_algs(metadata(userinfo_signed_response_alg="RS256"), provider)
        for alg in ("ES256", "none", "HS256"):
            message = refused(check_signing_algs, provider,
                              metadata(userinfo_signed_response_alg=alg))
            assert "userinfo_signed_response_alg" in message
        for name in ("id_token_encrypted_response_alg",
                     "userinfo_encrypted_response_alg", "request_object_encryption_alg"):
            message = refused(check_signing_algs, provider, metadata(**{name: "RS256"}))
            assert name in message

    @pytest.mark.parametrize("members", [
        {}, {"logo_uri": "https://rp.example.com/logo.png"},
        {"client_uri": "http://rp.example.com/", "policy_uri": "https://rp.example.com/p?x=1",
         "tos_uri": "https://rp.example.com/tos", "jwks_uri": "https://rp.example.com/jwks",
         "initiate_login_uri": "https://rp.example.com/login",
         "frontchannel_logout_uri": "https://rp.example.com/fc",
         "backchannel_logout_uri": "https://rp.example.com/bc"},
    ])
    def test_metadata_uris_accepted(self, provider: Provider, members: dict[str, Any]) -> None:
        check_metadata_uris(metadata(**members), provider)

    @pytest.mark.parametrize("name,value", [
        ("logo_uri", "javascript:alert(1)"), ("client_uri", "data:text/html,x"),
        ("policy_uri", "https://rp.example.com/p#frag"), ("tos_uri", "https://"),
        ("jwks_uri", "ftp://rp.example.com/jwks"), ("logo_uri", 5), ("logo_uri", ["x"]),
        ("client_uri", "https://rp.example.com/a b"), ("client_uri", "https://rp\x01.com/"),
        ("client_uri", "https://[::1/"), ("initiate_login_uri", "http://rp.example.com/login"),
        ("backchannel_logout_uri", "/relative"),
    ])
    def test_metadata_uris_refused(self, provider: Provider, name: str, value: Any) -> None:
        message = refused(check_metadata_uris, provider, metadata(**{name: value}))
        assert name in message

    def test_default_checks(self) -> None:
        assert DEFAULT_REGISTRATION_CHECKS == (
            check_redirect_uris, check_response_and_grant_types,
            check_token_endpoint_auth_method, check_subject_type, check_sector_identifier_uri,
            check_post_logout_redirect_uris, check_signing_algs, check_metadata_uris,
            check_client_keys, check_scope, check_logout_uris,
            check_pushed_authorization_metadata, check_dpop_bound_access_tokens)


class TestSectorIdentifierUri:
    def test_pairwise_single_host_needs_none(self, provider: Provider) -> None:
        check_sector_identifier_uri(
            metadata(subject_type="pairwise",
                     redirect_uris=["https://a.example.com/1", "https://a.example.com/2"]),
            provider)
        check_sector_identifier_uri(  # public clients may use several hosts
            metadata(redirect_uris=["https://a.example.com/1", "https://b.example.com/2"]),
            provider)

    def test_pairwise_several_hosts(self, provider: Provider) -> None:
        message = refused(check_sector_identifier_uri, provider, metadata(
            subject_type="pairwise",
            redirect_uris=["https://a.example.com/1", "https://b.example.com/2"]))
        assert "sector_identifier_uri" in message

    def test_fetched_document(self, provider: Provider) -> None:
        uris = ["https://a.example.com/1", "https://b.example.com/2"]
        calls: list[str] = []

        def fetcher(uri: str) -> Any:
            calls.append(uri)
            return uris + ["https://c.example.com/3"]

        provider.sector_identifier_fetcher = fetcher
        request = metadata(redirect_uris=uris, subject_type="pairwise",
                           sector_identifier_uri="https://sector.example.com/s.json")
        check_sector_identifier_uri(request, provider)
        assert calls == ["https://sector.example.com/s.json"]

    @pytest.mark.parametrize("document", [
        ["https://a.example.com/1"], {"uris": []}, "https://a.example.com/1", [1, 2], None])
    def test_document_must_list_every_redirect_uri(self, provider: Provider,
                                                   document: Any) -> None:
        provider.sector_identifier_fetcher = lambda uri: document
        refused(check_sector_identifier_uri, provider, metadata(
            redirect_uris=["https://a.example.com/1", "https://b.example.com/2"],
            subject_type="pairwise", sector_identifier_uri="https://sector.example.com/s.json"))

    @pytest.mark.parametrize("uri", ["http://sector.example.com/s.json", "https:///s.json",
                                     "sector.example.com", 5, "https://[::1/s.json"])
    def test_must_be_https(self, provider: Provider, uri: Any) -> None:
        provider.sector_identifier_fetcher = lambda uri: pytest.fail("must not be fetched")
        refused(check_sector_identifier_uri, provider, metadata(sector_identifier_uri=uri))

    def test_fetch_failure(self, provider: Provider) -> None:
        def failing(uri: str) -> Any:
            raise OSError("connection refused")

        provider.sector_identifier_fetcher = failing
        message = refused(check_sector_identifier_uri, provider,
                          metadata(sector_identifier_uri="https://sector.example.com/s.json",
                                   subject_type="pairwise"))
        assert "could not be fetched" in message


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {
        "/ok": (200, {}, json.dumps(["https://a.example.com/cb"]).encode()),
        "/big": (200, {}, b"[" + b'"x",' * 20_000 + b'"x"]'),
        "/missing": (404, {}, b"not found"),
        "/redirect": (302, {"Location": "/ok"}, b""),
        "/notjson": (200, {}, b"<html>"),
    }

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        status, headers, body = self.routes.get(self.path, (500, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Handler)) as url:
        yield url


#: The test server is on loopback: allowed explicitly, with plain http.
LOCAL = GuardedFetcher(allowed_networks=["127.0.0.0/8"], allow_http=True)


class TestFetchSectorIdentifierUris:
    def test_ok(self, server: str) -> None:
        assert fetch_sector_identifier_uris(server + "/ok", fetcher=LOCAL) == [
            "https://a.example.com/cb"]

    def test_loopback_refused_by_default(self, server: str) -> None:
        with pytest.raises(FetchError):
            fetch_sector_identifier_uris(server.replace("http:", "https:") + "/ok")

    def test_size_cap(self, server: str) -> None:
        with pytest.raises(FetchError, match="too large"):
            fetch_sector_identifier_uris(server + "/big", fetcher=LOCAL)
        assert len(fetch_sector_identifier_uris(server + "/big", max_size=200_000,
                                                fetcher=LOCAL)) == 20_001

    def test_http_error(self, server: str) -> None:
        with pytest.raises(FetchError, match="404"):
            fetch_sector_identifier_uris(server + "/missing", fetcher=LOCAL)

    def test_redirect_not_followed(self, server: str) -> None:
        with pytest.raises(FetchError, match="redirect"):
            fetch_sector_identifier_uris(server + "/redirect", fetcher=LOCAL)

    def test_not_json(self, server: str) -> None:
        with pytest.raises(FetchError, match="JSON"):
            fetch_sector_identifier_uris(server + "/notjson", fetcher=LOCAL)
