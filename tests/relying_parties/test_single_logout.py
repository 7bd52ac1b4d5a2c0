"""Single logout with real relying parties, in Chromium (OIDC Back-Channel Logout 1.0,
Front-Channel Logout 1.0; docs/logout.rst).

The example OP runs with ``outbound_allow_loopback`` (the explicit allow-list of its
guarded fetcher: loopback over http), so that it may POST Logout Tokens to the relying
parties of this machine.

Back-channel
    Apache's mod_auth_openidc (a static client whose ``backchannel_logout_uri`` is its
    redirect URI with ``?logout=backchannel``, ``backchannel_logout_session_required``).
    The browser logs in through Apache, then logs out at the OP's ``/logout`` directly;
    the browser sends no request to Apache until the protected page is asked for again,
    and then Apache sends it to the OP to log in: the OP's Logout Token ended Apache's
    session.
Front-channel
    :class:`~.flask_rp.FrontChannelRP`, a small Flask client registered with
    ``frontchannel_logout_uri`` and ``frontchannel_logout_session_required``. After the
    logout at the OP, the OP's page loaded the RP's iframe with the OP's ``iss`` and the
    ``sid`` of the RP's ID token, and its Content-Security-Policy allows frames from exactly
    the RP's origin.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from browser.helpers import Screenshots, ServerThread

from .apache import ApacheRP, Site
from .conftest import PASSWORD, USERNAME
from .flask_rp import FrontChannelRP
from .test_mod_auth_openidc import (
    STATIC_CLIENT_ID,
    STATIC_CLIENT_NAME,
    open_protected_page,
    sign_in,
    static_site,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FLASK_CLIENT_ID = "flask-frontchannel-rp"


@pytest.fixture(scope="module")
def slo_op(rp_chromium: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ServerThread]:
    """The example OP, allowed to reach relying parties on loopback (and only there)."""
    from example.app import DEFAULT_USERS_FILE, create_app
    from example.users import hash_password

    data_dir = tmp_path_factory.mktemp("example-op-slo")
    users = json.loads(DEFAULT_USERS_FILE.read_text(encoding="utf-8"))
    users[USERNAME]["password_hash"] = hash_password(PASSWORD, iterations=1000)
    users_file = data_dir / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    server = ServerThread(lambda url: create_app({
        "issuer": url, "data_dir": str(data_dir), "users_file": str(users_file), "demo": True,
        "outbound_allow_loopback": True}))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backchannel_apache(slo_op: ServerThread) -> Iterator[ApacheRP]:
    """mod_auth_openidc with a static client registered for back-channel logout."""
    client_secret = secrets.token_urlsafe(32)
    site = static_site(slo_op.url, client_secret)
    provider = slo_op.app.extensions["pyop"]
    provider.clients[STATIC_CLIENT_ID] = {
        "client_secret": client_secret,
        "client_name": STATIC_CLIENT_NAME,
        "redirect_uris": [site.redirect_uri],
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        # mod_auth_openidc's back-channel logout endpoint
        "backchannel_logout_uri": site.redirect_uri + "?logout=backchannel",
        "backchannel_logout_session_required": True,
    }
    server = ApacheRP([site])
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def flask_rp(slo_op: ServerThread) -> Iterator[tuple[FrontChannelRP, ServerThread]]:
    made: list[FrontChannelRP] = []

    def factory(url: str) -> Any:
        made.append(FrontChannelRP(slo_op.url, FLASK_CLIENT_ID, secrets.token_urlsafe(32), url))
        return made[0].app()

    server = ServerThread(factory)
    rp = made[0]
    slo_op.app.extensions["pyop"].clients[FLASK_CLIENT_ID] = rp.client_metadata()
    yield rp, server
    server.stop()


class RecordingSender:
    """Wraps the OP's back-channel sender to keep what each delivery became."""

    def __init__(self, sender: Any) -> None:
        self.sender = sender
        self.results: list[Any] = []

    def __call__(self, requests: Any) -> Any:
        results = self.sender(requests)
        self.results.extend(results)
        return results


def log_out_at_the_op(page: Any, op: ServerThread, shots: Screenshots, query: str = "") -> Any:
    """The OP's /logout (without an id_token_hint): "Log out?", confirmed. The answer to the
    confirmation (the logout page)."""
    page.goto(op.url + "/logout" + (f"?{query}" if query else ""))
    page.wait_for_selector("form button[type=submit]")
    shots.take(page, "logout-confirm")
    with page.expect_response(lambda r: r.url == op.url + "/logout"
                              and r.request.method == "POST") as answer:
        page.click("form button[type=submit]")
    return answer.value


def test_backchannel_logout_ends_the_mod_auth_openidc_session(
        page: Any, slo_op: ServerThread, backchannel_apache: ApacheRP,
        screenshots: Screenshots, request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect

    site: Site = backchannel_apache.sites["static"]
    provider = slo_op.app.extensions["pyop"]
    recorder = RecordingSender(provider.backchannel_logout_sender)
    provider.backchannel_logout_sender = recorder
    try:
        sign_in(page, slo_op, site, screenshots, STATIC_CLIENT_NAME)
        expect(page.locator("#REMOTE_USER")).not_to_be_empty()
        # the protected page is served from Apache's session, without the OP
        authorizations = sum(1 for _, path, _ in slo_op.requests if path == "/authorization")
        page.goto(site.protected_url)
        expect(page.locator("#REMOTE_USER")).not_to_be_empty()
        assert sum(1 for _, path, _ in slo_op.requests
                   if path == "/authorization") == authorizations

        to_apache: list[str] = []
        page.on("request", lambda r: to_apache.append(r.url)
                if r.url.startswith(site.url) else None)
        log_out_at_the_op(page, slo_op, screenshots)
        page.wait_for_selector("h1")
        screenshots.take(page, "logged-out")
        assert to_apache == []  # the browser never went to Apache
        [result] = recorder.results
        assert (result.client_id, result.uri) == (
            STATIC_CLIENT_ID, site.redirect_uri + "?logout=backchannel")
        assert result.delivered, (result, backchannel_apache.log_tail())

        # Apache's session is gone: the protected page sends the browser to the OP to log in
        open_protected_page(page, slo_op, site, screenshots)
        screenshots.take(page, "login-again")
        expect(page.locator("input[name=password]")).to_be_visible()
    finally:
        provider.backchannel_logout_sender = recorder.sender
        if request.session.testsfailed:
            print(backchannel_apache.log_tail())


def test_frontchannel_logout_loads_the_rp_iframe(
        page: Any, slo_op: ServerThread, flask_rp: tuple[FrontChannelRP, ServerThread],
        screenshots: Screenshots) -> None:
    from playwright.sync_api import expect

    rp, rp_server = flask_rp
    page.goto(rp.url + "/login")
    page.wait_for_url(slo_op.url + "/login")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(slo_op.url + "/consent")
    expect(page.locator("main")).to_contain_text("Flask RP (front-channel)")
    page.locator("form button[type=submit]").nth(0).click()
    page.wait_for_url(rp.redirect_uri + "**")
    screenshots.take(page, "rp-logged-in")
    [sid] = list(rp.sessions)
    assert rp.logout_calls == []

    # the RP sends the end-user to log out at the OP, and back to it afterwards; the RP holds
    # its answer to the iframe until the OP's page has been looked at
    rp.release.clear()
    try:
        answer = log_out_at_the_op(page, slo_op, screenshots, urlencode({
            "client_id": FLASK_CLIENT_ID, "post_logout_redirect_uri": rp.logged_out_url}))
        assert rp.called.wait(10), "the front-channel iframe was not loaded"
        logout_html = answer.text()
        policy = dict(part.split(" ", 1)
                      for part in answer.headers["content-security-policy"].split("; "))
        # the one iframe, in the page (its frame has no URL until the RP answers)
        [src] = page.locator("iframe").evaluate_all("frames => frames.map(f => f.src)")
        assert src.startswith(rp.frontchannel_logout_uri + "?")
        assert parse_qs(urlsplit(src).query) == {"iss": [slo_op.url], "sid": [sid]}
        screenshots.take(page, "op-logout-page")
    finally:
        rp.release.set()
    # the page's script returns to the RP once the iframe has loaded
    page.wait_for_url(rp.logged_out_url)
    expect(page.locator("#logged-out")).to_be_visible()
    screenshots.take(page, "rp-logged-out")
    assert rp.logout_calls == [(slo_op.url, sid)]
    assert rp.sessions == {}
    assert [(path, parse_qs(query)) for _, path, query in rp_server.requests
            if path in ("/frontchannel_logout", "/logged-out")] == [
        ("/frontchannel_logout", {"iss": [slo_op.url], "sid": [sid]}), ("/logged-out", {})]
    assert logout_html.count("<iframe") == 1
    assert policy["frame-src"] == rp.url  # exactly the RP's origin
    assert policy["default-src"] == "'none'"
    assert policy["script-src"].startswith("'nonce-")
