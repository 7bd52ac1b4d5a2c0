"""Apache's mod_auth_openidc against the example OP, end to end in Chromium.

One Apache httpd (generated configuration, see :mod:`.apache`) serves several
relying parties (:data:`SITES`), each on its own port protecting a CGI page that
prints ``REMOTE_USER`` and the ``OIDC_CLAIM_*`` variables mod_auth_openidc sets:

``static``
    plain http on 127.0.0.1 with a client registered in the OP's client store
    beforehand (``OIDCProviderMetadataURL``, ``OIDCClientID``, ``OIDCClientSecret``).
``dynamic``
    https on :data:`~.conftest.RP_HOST` with ``OIDCMetadataDir``: the user types
    the issuer on mod_auth_openidc's discovery page and mod_auth_openidc registers
    itself at the OP's registration endpoint. It registers its redirect URI as
    ``initiate_login_uri``, which must use https (OIDC Dynamic Registration 2),
    and every response type the OP advertises, implicit and hybrid ones
    included, whose redirect URIs must be https and not localhost: hence TLS and
    a host name that is not a loopback name.
``loopback``
    dynamic registration from https://127.0.0.1, restricted to the code flow by
    the per-provider ``.conf`` of the metadata directory.
``hybrid`` and ``hybrid-fragment``
    dynamic registration, then ``response_type=code id_token`` with
    ``response_mode=form_post``, or with mod_auth_openidc's default (the
    fragment, which its redirect URI page posts back by script).

Chromium logs in as the demo user, consents, and lands on the protected page;
logging out through mod_auth_openidc's ``<redirect_uri>?logout=<url>`` goes
through the OP's end_session_endpoint and ends the OP session too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any, Optional
from urllib.parse import parse_qs

import pytest
from browser.helpers import Screenshots, ServerThread

from .apache import ApacheRP, Site
from .conftest import PASSWORD, RP_HOST, USER_CLAIMS, USERNAME

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATIC_CLIENT_ID = "apache-static"
STATIC_CLIENT_NAME = "Apache (static client)"

#: site name -> (the name it registers, extra directives, the response_type and
#: response_mode it asks for); all but "static" register dynamically
SITES: dict[str, tuple[str, str, str, Optional[str]]] = {
    "static": (STATIC_CLIENT_NAME, "", "code", None),
    "dynamic": ("Apache (dynamic registration)", "", "code", None),
    "loopback": ("Apache (dynamic registration, loopback)", "", "code", None),
    "hybrid": ("Apache (hybrid flow, form_post)",
               '\n    OIDCResponseType "code id_token"\n    OIDCResponseMode form_post',
               "code id_token", "form_post"),
    # mod_auth_openidc's default for hybrid flows: the fragment, posted back by its page
    "hybrid-fragment": ("Apache (hybrid flow, fragment)",
                        '\n    OIDCResponseType "code id_token"', "code id_token", None),
}


def static_site(op_url: str, client_secret: str) -> Site:
    """mod_auth_openidc with a client registered beforehand (docs/example.rst)."""
    return Site("static", "127.0.0.1", https=False, oidc=f"""
    OIDCProviderMetadataURL {op_url}/.well-known/openid-configuration
    OIDCClientID {STATIC_CLIENT_ID}
    OIDCClientSecret {client_secret}
    OIDCRedirectURI {{url}}/protected/redirect_uri
    OIDCCryptoPassphrase {secrets.token_hex(32)}
    OIDCScope "openid email profile"
    OIDCRemoteUserClaim sub
    OIDCPKCEMethod S256""")


def dynamic_site(name: str, op_url: str) -> Site:
    """mod_auth_openidc registering itself through OIDCMetadataDir (docs/example.rst).

    On https://127.0.0.1 ("loopback") it may only register the code flow: the
    per-provider ``.conf`` in OIDCMetadataDir replaces the response types
    mod_auth_openidc registers (all those the OP advertises).
    """
    client_name, extra, _, _ = SITES[name]
    provider_conf = {}
    if name == "loopback":
        registration = {"response_types": ["code"],
                        "grant_types": ["authorization_code", "refresh_token"]}
        provider_conf[op_url] = {"registration_endpoint_json": json.dumps(registration)}
    return Site(name, "127.0.0.1" if name == "loopback" else RP_HOST, https=True, oidc=f"""
    OIDCMetadataDir {{metadata_dir}}
    OIDCRedirectURI {{url}}/protected/redirect_uri
    OIDCCryptoPassphrase {secrets.token_hex(32)}
    OIDCClientName "{client_name}"
    OIDCScope "openid email profile"
    OIDCDefaultLoggedOutURL {{url}}/logged-out.html
    OIDCRemoteUserClaim email{extra}""", provider_conf=provider_conf)


@pytest.fixture(scope="module")
def apache(op_server: ServerThread) -> Iterator[ApacheRP]:
    client_secret = secrets.token_urlsafe(32)
    static = static_site(op_server.url, client_secret)
    provider = op_server.app.extensions["pyop"]
    provider.clients[STATIC_CLIENT_ID] = {
        "client_secret": client_secret,
        "client_name": STATIC_CLIENT_NAME,
        "redirect_uris": [static.redirect_uri],
        "post_logout_redirect_uris": [static.logged_out_url],
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    server = ApacheRP([static, *(dynamic_site(name, op_server.url)
                                 for name in SITES if name != "static")])
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def apache_log(request: pytest.FixtureRequest, apache: ApacheRP) -> Iterator[ApacheRP]:
    """The Apache RPs; their error log is printed when the test fails."""
    failed_before = request.session.testsfailed
    yield apache
    if request.session.testsfailed > failed_before:
        print(apache.log_tail())


def expected_sub(op: ServerThread) -> str:
    provider = op.app.extensions["pyop"]
    sub: str = provider.authz_state.get_subject_identifier("public", USERNAME)
    return sub


def open_protected_page(page: Any, op: ServerThread, site: Site, shots: Screenshots) -> None:
    """From the protected page to the OP's login page (via the discovery page if dynamic)."""
    page.goto(site.protected_url)
    if "OIDCMetadataDir" in site.oidc:
        # mod_auth_openidc's own page: "Select your OpenID Connect Identity Provider"
        page.wait_for_selector("input[name=iss]")
        shots.take(page, "discovery")
        page.fill("input[name=iss]", op.url)
        page.click("input[type=submit]")
    page.wait_for_url(op.url + "/login")


def sign_in(page: Any, op: ServerThread, site: Site, shots: Screenshots, client_name: str
            ) -> None:
    """Log in as the demo user on the OP, approve, and land on the protected page."""
    from playwright.sync_api import expect

    # the OP remembers consents, and these tests share one OP: ask again every time
    op.app.extensions["pyop_example"].forget_consents()
    open_protected_page(page, op, site, shots)
    shots.take(page, "login")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(op.url + "/consent")
    shots.take(page, "consent")
    expect(page.locator("main")).to_contain_text(client_name)
    buttons = page.locator("form button[type=submit]")
    assert buttons.nth(0).get_attribute("value") == "approve"
    buttons.nth(0).click()
    page.wait_for_url(site.protected_url)
    shots.take(page, "protected")


def shown_variables(page: Any) -> dict[str, str]:
    """The variables the CGI page printed, by name."""
    items = page.locator("li").all()
    return {item.get_attribute("id"): item.inner_text() for item in items}


@pytest.mark.parametrize("site_name", list(SITES))
def test_sign_in_shows_remote_user_and_claims(page: Any, op_server: ServerThread,
                                              apache_log: ApacheRP, screenshots: Screenshots,
                                              site_name: str) -> None:
    site = apache_log.sites[site_name]
    client_name, _, response_type, response_mode = SITES[site_name]
    sign_in(page, op_server, site, screenshots, client_name)
    shown = shown_variables(page)
    sub = expected_sub(op_server)
    assert shown["OIDC_CLAIM_sub"] == sub
    assert shown["OIDC_CLAIM_email"] == USER_CLAIMS["email"]
    assert shown["OIDC_CLAIM_name"] == USER_CLAIMS["name"]
    assert shown["OIDC_CLAIM_iss"] == op_server.url
    assert shown["REMOTE_USER"] == (sub if site_name == "static" else USER_CLAIMS["email"])
    authorization = [parse_qs(query) for method, path, query in op_server.requests
                     if path == "/authorization"][-1]
    assert authorization["response_type"] == [response_type]
    assert authorization.get("response_mode") == ([response_mode] if response_mode else None)
    assert authorization["redirect_uri"] == [site.redirect_uri]
    assert set(authorization["scope"][0].split()) == {"openid", "email", "profile"}
    if site_name == "static":
        assert authorization["client_id"] == [STATIC_CLIENT_ID]
        assert authorization["code_challenge_method"] == ["S256"]
    else:
        assert_registered(op_server, apache_log, site, authorization["client_id"][0],
                          client_name)


def assert_registered(op: ServerThread, apache: ApacheRP, site: Site, client_id: str,
                      client_name: str) -> None:
    """mod_auth_openidc registered itself at the OP and kept the client in its metadata dir."""
    assert op.requests.count(("POST", "/registration", "")) >= 1
    kept = [json.loads(path.read_text(encoding="utf-8"))
            for path in apache.metadata_dir(site).glob("*.client")]
    assert [client["client_id"] for client in kept] == [client_id]
    registered = op.app.extensions["pyop"].get_client(client_id)
    assert registered["client_name"] == client_name
    assert registered["redirect_uris"] == [site.redirect_uri]
    assert registered["initiate_login_uri"] == site.redirect_uri  # https, as required
    assert registered["post_logout_redirect_uris"] == [site.logged_out_url]
    if site.name == "loopback":  # as its .conf says
        assert registered["response_types"] == ["code"]
    else:  # all that the example advertises
        assert sorted(registered["response_types"]) == sorted(
            op.app.extensions["pyop"].configuration_information["response_types_supported"])


@pytest.mark.parametrize("site_name", ["static", "dynamic", "loopback"])
def test_logout_ends_the_op_session(page: Any, op_server: ServerThread, apache_log: ApacheRP,
                                    screenshots: Screenshots, site_name: str) -> None:
    from playwright.sync_api import expect

    site = apache_log.sites[site_name]
    client_name = SITES[site_name][0]
    sign_in(page, op_server, site, screenshots, client_name)
    page.click("#logout")
    page.wait_for_url(site.logged_out_url + "**")
    expect(page.locator("#logged-out")).to_be_visible()
    logout = [parse_qs(query) for method, path, query in op_server.requests
              if path == "/logout"][-1]
    assert logout["post_logout_redirect_uri"] == [site.logged_out_url]
    assert logout["id_token_hint"]
    # the OP session is gone: the protected page needs a login at the OP again
    open_protected_page(page, op_server, site, screenshots)
    screenshots.take(page, "login-again")
    expect(page.locator("input[name=password]")).to_be_visible()
