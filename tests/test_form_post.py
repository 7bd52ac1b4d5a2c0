"""response_mode=form_post (OAuth 2.0 Form Post Response Mode): pyop.util and the errors."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import configuration

from pyop.crypto import SigningKey
from pyop.exceptions import InvalidAuthenticationRequest
from pyop.message import AuthorizationRequest
from pyop.provider import Provider
from pyop.util import (
    FORM_POST_CONTENT_SECURITY_POLICY,
    render_form_post,
    should_form_post,
    should_fragment_encode,
)

ISSUER = "https://op.example.com"
CLIENT_ID = "client1"
REDIRECT_URI = "https://rp.example.com/callback"
NASTY = "\"<>&'</form><script>alert(1)</script>"


class FormParser(HTMLParser):
    """Collects the form, its hidden fields and every tag of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, Optional[str]]]] = []
        self.fields: dict[str, Optional[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"] or ""] = attributes.get("value")


def parse_page(page: str) -> FormParser:
    parser = FormParser()
    parser.feed(page)
    parser.close()
    return parser


def form_of(parser: FormParser) -> dict[str, Optional[str]]:
    forms = [attrs for tag, attrs in parser.tags if tag == "form"]
    assert len(forms) == 1
    return forms[0]


@pytest.fixture(scope="module")
def converted_key(jwkest_signing_key: Any) -> SigningKey:
    return SigningKey.from_key(jwkest_signing_key)


@pytest.fixture
def op(make_provider: Callable[..., Provider], converted_key: SigningKey) -> Provider:
    config = configuration()
    config["response_modes_supported"] = ["query", "fragment", "form_post"]
    return make_provider(signing_key=converted_key, config=config)


def query(**overrides: Any) -> str:
    params: dict[str, Any] = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                              "response_type": "code", "scope": "openid", "state": "st",
                              "nonce": "n", "response_mode": "form_post"}
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


class TestRenderFormPost:
    def test_escaping_of_values_names_and_action(self) -> None:
        redirect_uri = "https://rp.example.com/cb?a=1&b=\"<x>'"
        page = render_form_post({"state": NASTY, NASTY: "v", "code": "abc"}, redirect_uri)
        assert "<script>" not in page and "</form><script>" not in page
        parser = parse_page(page)
        # every value survives the round trip unchanged
        assert parser.fields == {"state": NASTY, NASTY: "v", "code": "abc"}
        form = form_of(parser)
        assert form["method"] == "post"
        assert form["action"] == redirect_uri
        for raw in ("\"<", "'<", "<x>"):
            assert raw not in page.split("<form", 1)[1].split(">", 1)[0]

    def test_page_structure(self) -> None:
        page = render_form_post({"code": "abc", "state": "s"}, REDIRECT_URI)
        parser = parse_page(page)
        tags = [tag for tag, _ in parser.tags]
        assert "script" not in tags and "link" not in tags and "img" not in tags
        assert "iframe" not in tags and "style" not in tags
        assert "noscript" in tags
        buttons = [attrs for tag, attrs in parser.tags if tag == "button"]
        assert buttons == [{"type": "submit"}]  # no name: nothing extra is posted
        body = [attrs for tag, attrs in parser.tags if tag == "body"][0]
        assert body["onload"] == "document.forms[0].submit()"
        # nothing is loaded from anywhere: the only URL is the form's action
        assert re.findall(r"https?://[^\"'\s]+", page) == [REDIRECT_URI]
        assert page.lower().startswith("<!doctype html>")

    def test_csp_hash_matches_the_onload_handler(self) -> None:
        body = [attrs for tag, attrs in parse_page(
            render_form_post({"code": "c"}, REDIRECT_URI)).tags if tag == "body"][0]
        digest = base64.b64encode(hashlib.sha256(
            (body["onload"] or "").encode("utf-8")).digest()).decode("ascii")
        assert f"'sha256-{digest}'" in FORM_POST_CONTENT_SECURITY_POLICY
        assert "'unsafe-hashes'" in FORM_POST_CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in FORM_POST_CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in FORM_POST_CONTENT_SECURITY_POLICY

    def test_value_types(self) -> None:
        fields = parse_page(render_form_post(
            {"scope": ["openid", "email"], "expires_in": 3600, "flag": True, "gone": None},
            REDIRECT_URI)).fields
        assert fields == {"scope": "openid email", "expires_in": "3600", "flag": "true"}

    @pytest.mark.parametrize("uri", ["javascript:alert(1)", "JavaScript:alert(1)",
                                     "data:text/html,x", "com.example.app:/cb", "", "//x/cb"])
    def test_non_http_redirect_uri_refused(self, uri: str) -> None:
        with pytest.raises(ValueError):
            render_form_post({"code": "c"}, uri)

    def test_should_form_post(self) -> None:
        assert should_form_post({"response_mode": "form_post"})
        assert not should_form_post({"response_mode": "query"})
        assert not should_form_post({})
        message = AuthorizationRequest(response_type="code", response_mode="form_post")
        assert should_form_post(message) and should_form_post(message.to_dict())


class TestProvider:
    def test_form_post_advertised_when_configured(self, op: Provider) -> None:
        assert "form_post" in op.provider_configuration["response_modes_supported"]

    def test_form_post_opt_in(self, make_provider: Callable[..., Provider],
                              converted_key: SigningKey) -> None:
        default = make_provider(signing_key=converted_key)
        assert default.provider_configuration["response_modes_supported"] == [
            "query", "fragment"]
        with pytest.raises(InvalidAuthenticationRequest) as info:
            default.parse_authentication_request(query())
        assert info.value.oauth_error == "invalid_request"

    @pytest.mark.parametrize("response_type", ["code", "id_token", "code id_token",
                                               "id_token token"])
    def test_full_flow(self, op: Provider, response_type: str) -> None:
        req = op.parse_authentication_request(query(response_type=response_type, state=NASTY))
        assert should_form_post(req)
        response = op.authorize(req, "alice")
        page = render_form_post(response, req["redirect_uri"])
        fields = parse_page(page).fields
        assert fields["state"] == NASTY
        assert fields["iss"] == ISSUER
        for name in ("code", "id_token", "access_token"):
            assert (name in fields) == (name in response)
            if name in response:
                assert fields[name] == response[name]

    def test_refused_when_not_configured(self, op: Provider) -> None:
        op.configuration_information["response_modes_supported"] = ["query", "fragment"]
        with pytest.raises(InvalidAuthenticationRequest) as info:
            op.parse_authentication_request(query())
        assert info.value.oauth_error == "invalid_request"
        assert "response_mode" in str(info.value)

    def test_error_form(self, op: Provider) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            op.parse_authentication_request(query(prompt="bogus", state=NASTY))
        error = info.value
        assert should_form_post(error.request)
        page = error.to_form_post()
        assert page is not None and "<script>" not in page
        parser = parse_page(page)
        assert form_of(parser)["action"] == REDIRECT_URI
        assert parser.fields["error"] == "invalid_request"
        assert parser.fields["state"] == NASTY
        assert parser.fields["iss"] == ISSUER
        assert "prompt" in (parser.fields["error_description"] or "")
        # hosts that keep redirecting still get a URL, in the query for code
        url = error.to_error_url()
        assert url is not None and url.startswith(REDIRECT_URI + "?")
        assert parse_qs(urlsplit(url).query)["state"] == [NASTY]

    def test_error_url_of_implicit_form_post_is_fragment_encoded(self, op: Provider) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            op.parse_authentication_request(query(response_type="id_token", nonce=None))
        assert (info.value.to_error_url() or "").startswith(REDIRECT_URI + "#")
        assert parse_page(info.value.to_form_post() or "").fields["error"] == "invalid_request"

    @pytest.mark.parametrize("overrides", [{"client_id": "unknown"},
                                           {"redirect_uri": "https://evil.example/cb"},
                                           {"redirect_uri": None}])
    def test_no_form_for_unverified_clients(self, op: Provider,
                                            overrides: dict[str, Any]) -> None:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            op.parse_authentication_request(query(**overrides))
        assert info.value.to_form_post() is None
        assert info.value.to_error_url() is None

    def test_host_decided_error(self, op: Provider) -> None:
        req = op.parse_authentication_request(query(prompt="none"))
        error = op.create_authentication_error(req, "login_required")
        fields = parse_page(error.to_form_post() or "").fields
        assert fields["error"] == "login_required" and fields["state"] == "st"

    def test_error_form_for_custom_scheme_redirect_uri_is_none(self) -> None:
        error = InvalidAuthenticationRequest(
            "x", {"redirect_uri": "com.example.app:/cb", "response_mode": "form_post"},
            redirect_uri_verified=True)
        assert error.to_form_post() is None
        assert error.to_error_url() is not None

    def test_should_fragment_encode_unchanged_for_form_post(self) -> None:
        assert should_fragment_encode({"response_type": "code", "response_mode": "form_post"}) \
            is False
