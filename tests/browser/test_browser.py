"""End to end in a real browser: the example OP, an Authlib relying party and headless Chromium.

The RP (a small Flask app) registers itself at the OP's open registration
endpoint, starts the code flow with PKCE through Authlib's Flask client, and
on its callback exchanges the code and validates the ID token with Authlib
(signature against the OP's JWKS, ``iss``, ``aud``, ``nonce``...). Chromium
logs in on the OP's login page, approves the consent page and lands on the RP.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from .helpers import Screenshots, ServerThread

pytestmark = pytest.mark.browser

RP_NAME = "Authlib test RP"


def create_rp(rp_url: str, op_url: str) -> Any:
    """The relying party: registers dynamically, then signs users in with Authlib."""
    import requests
    from authlib.integrations.flask_client import OAuth, OAuthError
    from flask import Flask, redirect, render_template_string, request, session

    metadata = requests.get(op_url + "/.well-known/openid-configuration", timeout=10).json()
    registration = requests.post(metadata["registration_endpoint"], timeout=10, json={
        "client_name": RP_NAME,
        "redirect_uris": [rp_url + "/callback"],
        "post_logout_redirect_uris": [rp_url + "/logged-out"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    })
    assert registration.status_code == 201, registration.text
    client = registration.json()

    app = Flask("authlib_rp")
    # own cookie name: browsers share cookies between the ports of 127.0.0.1
    app.config.update(SECRET_KEY=secrets.token_hex(32), SESSION_COOKIE_NAME="rp_session")
    oauth = OAuth(app)
    op = oauth.register(
        "op", client_id=client["client_id"], client_secret=client["client_secret"],
        server_metadata_url=op_url + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic"})
    app.config["RP_CLIENT"] = client

    page = """<!doctype html><title>RP</title>
    {% if error %}<p>error: <span id="error">{{ error }}</span></p>
    <p>iss: <span id="iss">{{ iss }}</span></p>{% endif %}
    {% if sub %}<p>sub: <span id="sub">{{ sub }}</span></p>
    <p>name: <span id="name">{{ name }}</span></p>
    <p>email: <span id="email">{{ email }}</span></p>
    <a id="logout" href="/logout">Log out</a>{% endif %}
    {% if logged_out %}<p id="logged-out">logged out</p>{% endif %}"""

    @app.route("/login")
    def login() -> Any:
        extra = {"prompt": request.args["prompt"]} if "prompt" in request.args else {}
        return op.authorize_redirect(rp_url + "/callback", **extra)

    @app.route("/silent")
    def silent() -> Any:
        return op.authorize_redirect(rp_url + "/callback", prompt="none")

    @app.route("/callback")
    def callback() -> Any:
        try:
            token = op.authorize_access_token()  # code exchange + ID token validation
        except OAuthError as e:
            return render_template_string(page, error=e.error, iss=request.args.get("iss"))
        id_token_claims = token["userinfo"]  # validated by Authlib: signature, iss, aud, nonce
        assert id_token_claims["iss"] == metadata["issuer"]
        assert id_token_claims["aud"] in (client["client_id"], [client["client_id"]])
        assert id_token_claims["nonce"]
        assert request.args.get("iss") == metadata["issuer"]  # RFC 9207
        userinfo = op.userinfo(token=token)
        assert userinfo["sub"] == id_token_claims["sub"]  # OIDC Core 5.3.2
        session["id_token"] = token["id_token"]
        return render_template_string(page, sub=id_token_claims["sub"],
                                      name=userinfo.get("name"), email=userinfo.get("email"))

    @app.route("/logout")
    def logout() -> Any:
        state = secrets.token_urlsafe(16)
        session["logout_state"] = state
        query = urlencode({"id_token_hint": session.pop("id_token", ""),
                           "post_logout_redirect_uri": rp_url + "/logged-out",
                           "state": state})
        return redirect(metadata["end_session_endpoint"] + "?" + query)

    @app.route("/logged-out")
    def logged_out() -> Any:
        expected = session.pop("logout_state", None)
        if not expected or request.args.get("state") != expected:
            return "bad logout state", 400
        return render_template_string(page, logged_out=True)

    return app


@pytest.fixture(scope="module")
def op_server(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ServerThread]:
    """The example OP with its default storage (SQLite in its data directory)."""
    from example.app import DEFAULT_USERS_FILE, create_app
    from example.users import hash_password

    data_dir = tmp_path_factory.mktemp("example-op")
    # the bundled users, with a cheap hash of the same password (alice / alice)
    users = json.loads(DEFAULT_USERS_FILE.read_text(encoding="utf-8"))
    users["alice"]["password_hash"] = hash_password("alice", iterations=1000)
    users_file = data_dir / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    server = ServerThread(lambda url: create_app({
        "issuer": url, "data_dir": str(data_dir), "users_file": str(users_file), "demo": True}))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rp_server(op_server: ServerThread) -> Iterator[ServerThread]:
    server = ServerThread(lambda url: create_rp(url, op_server.url))
    yield server
    server.stop()


def sign_in(page: Any, op: ServerThread, rp: ServerThread, shots: Screenshots,
            decision: str = "approve") -> None:
    """From the RP's login link through the OP's login and consent pages.

    With ``prompt=consent``: the OP remembers consents, and these tests share one OP.
    """
    from playwright.sync_api import expect

    page.goto(rp.url + "/login?prompt=consent")
    page.wait_for_url(op.url + "/login")
    shots.take(page, "login")
    expect(page.locator("body")).to_contain_text("demo user: alice / alice")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice")
    page.click("form button[type=submit]")
    page.wait_for_url(op.url + "/consent")
    shots.take(page, "consent")
    expect(page.locator("main")).to_contain_text(RP_NAME)
    expect(page.locator("main")).to_contain_text("email")
    buttons = page.locator("form button[type=submit]")
    assert buttons.nth(0).get_attribute("value") == "approve"
    buttons.nth(0 if decision == "approve" else 1).click()
    page.wait_for_url(rp.url + "/callback?**")


def expected_sub(op: ServerThread) -> str:
    provider = op.app.extensions["pyop"]
    sub: str = provider.authz_state.get_subject_identifier("public", "alice")
    return sub


def test_code_flow_with_pkce_login_and_consent(page: Any, op_server: ServerThread,
                                               rp_server: ServerThread,
                                               screenshots: Screenshots) -> None:
    from playwright.sync_api import expect

    sign_in(page, op_server, rp_server, screenshots)
    expect(page.locator("#sub")).to_have_text(expected_sub(op_server))
    expect(page.locator("#name")).to_have_text("Alice Liddell")
    authorization = [parse_qs(query) for method, path, query in op_server.requests
                     if path == "/authorization"][-1]
    assert authorization["code_challenge_method"] == ["S256"]  # Authlib used PKCE
    assert authorization["nonce"] and authorization["state"]
    expect(page.locator("#email")).to_have_text("alice@example.com")
    # the OP cookie is HttpOnly, SameSite=Lax and not the RP's
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["pyop_example_session"]["httpOnly"] is True
    assert cookies["pyop_example_session"]["sameSite"] == "Lax"
    assert "rp_session" in cookies


def test_prompt_none_without_session_returns_login_required(page: Any, op_server: ServerThread,
                                                            rp_server: ServerThread,
                                                            screenshots: Screenshots) -> None:
    from playwright.sync_api import expect

    page.goto(rp_server.url + "/silent")
    page.wait_for_url(rp_server.url + "/callback?**")
    assert "error=login_required" in urlsplit(page.url).query
    expect(page.locator("#error")).to_have_text("login_required")
    expect(page.locator("#iss")).to_have_text(op_server.url)


def test_deny_returns_access_denied(page: Any, op_server: ServerThread,
                                    rp_server: ServerThread, screenshots: Screenshots) -> None:
    from playwright.sync_api import expect

    sign_in(page, op_server, rp_server, screenshots, decision="deny")
    expect(page.locator("#error")).to_have_text("access_denied")


def test_rp_initiated_logout_returns_to_rp(page: Any, op_server: ServerThread,
                                          rp_server: ServerThread,
                                          screenshots: Screenshots) -> None:
    from playwright.sync_api import expect

    sign_in(page, op_server, rp_server, screenshots)
    expect(page.locator("#sub")).to_have_text(expected_sub(op_server))
    page.click("#logout")
    page.wait_for_url(rp_server.url + "/logged-out?**")
    expect(page.locator("#logged-out")).to_be_visible()
    # the OP session is gone: a silent sign-in needs a login again
    page.goto(rp_server.url + "/silent")
    page.wait_for_url(rp_server.url + "/callback?**")
    expect(page.locator("#error")).to_have_text("login_required")


def test_failure_screenshots_are_saved(tmp_path: Path, page: Any) -> None:
    """The artifact writer used on failures (exercised here without failing)."""
    page.set_content("<p>hello</p>")
    shots = Screenshots()
    shots.take(page, "login")
    saved = shots.save(tmp_path, "test_x[param]")
    names = sorted(p.name for p in saved)
    assert names == ["test_x_param_-final.png", "test_x_param_-login.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in saved)
    assert (tmp_path / "test_x_param_-final.html").read_text().count("hello") == 1


def test_remembered_consent_skips_the_consent_page(browser: Any, page: Any,
                                                   op_server: ServerThread,
                                                   rp_server: ServerThread,
                                                   screenshots: Screenshots) -> None:
    from playwright.sync_api import expect

    sign_in(page, op_server, rp_server, screenshots)
    expect(page.locator("#sub")).to_have_text(expected_sub(op_server))
    # another browser, the same user and client, the same scopes: login only
    context = browser.new_context()
    try:
        other = context.new_page()
        served_before = len(op_server.requests)
        other.goto(rp_server.url + "/login")
        other.wait_for_url(op_server.url + "/login")
        other.fill("input[name=username]", "alice")
        other.fill("input[name=password]", "alice")
        other.click("form button[type=submit]")
        other.wait_for_url(rp_server.url + "/callback?**")
        expect(other.locator("#sub")).to_have_text(expected_sub(op_server))
        paths = [path for method, path, query in op_server.requests[served_before:]]
        assert "/login" in paths and "/consent" not in paths, paths
    finally:
        context.close()


#: Where the screenshots of the example's pages are written (see docs/example.rst).
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "screenshots"
#: Desktop, and a phone 390 px wide.
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "390px": {"width": 390, "height": 844}}


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_screenshots_of_the_pages(browser: Any, op_server: ServerThread,
                                  rp_server: ServerThread, viewport: str) -> None:
    """The login, consent, error, logout and 404 pages, in
    ``test-artifacts/screenshots/<viewport>/``; none is wider than the screen."""
    from playwright.sync_api import expect

    directory = SCREENSHOTS / viewport
    directory.mkdir(parents=True, exist_ok=True)
    width = VIEWPORTS[viewport]["width"]
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    context.set_default_timeout(10_000)
    page = context.new_page()

    def shoot(name: str) -> None:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name}: {scroll_width}px wide on a {width}px screen"
        page.screenshot(path=str(directory / f"{name}.png"), full_page=True)

    try:
        client_id = rp_server.app.config["RP_CLIENT"]["client_id"]
        claims = json.dumps({"userinfo": {"email": {"essential": True}, "phone_number": None}})
        # a request with a claims parameter, to show the claim descriptions
        page.goto(op_server.url + "/authorization?" + urlencode({
            "client_id": client_id, "redirect_uri": rp_server.url + "/callback",
            "response_type": "code", "scope": "openid profile email", "nonce": "n",
            "state": "s", "prompt": "consent", "claims": claims}))
        page.wait_for_url(op_server.url + "/login")
        shoot("login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "alice")
        page.click("form button[type=submit]")
        page.wait_for_url(op_server.url + "/consent")
        expect(page.locator("ul.claims")).to_contain_text("Your phone number")
        expect(page.locator(".essential")).to_have_text("required")
        expect(page.locator(".unverified")).to_have_text("unverified name")
        expect(page.locator("ul.scopes")).to_contain_text("birthdate")
        shoot("consent")

        page.goto(op_server.url + "/authorization?" + urlencode({
            "client_id": "no-such-client", "redirect_uri": "https://rp.example/cb",
            "response_type": "code", "scope": "openid"}))
        expect(page.locator("h1")).to_have_text("Sign-in request refused")
        page.click("details summary")
        expect(page.locator("details dd").first).to_be_visible()
        shoot("error")

        page.goto(op_server.url + "/logout?" + urlencode({
            "client_id": client_id, "post_logout_redirect_uri": rp_server.url + "/logged-out"}))
        expect(page.locator("h1")).to_have_text("Log out?")
        expect(page.locator("a.button.secondary")).to_have_text(
            "Stay signed in and return to " + RP_NAME)
        shoot("logout")

        page.goto(op_server.url + "/no-such-page")
        expect(page.locator("h1")).to_have_text("Page not found")
        shoot("404")
    finally:
        context.close()
    assert sorted(p.name for p in directory.glob("*.png")) == [
        "404.png", "consent.png", "error.png", "login.png", "logout.png"]
