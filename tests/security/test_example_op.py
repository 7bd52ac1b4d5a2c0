"""The example OP (``example/``, what hosts copy) under attack: consent per claim, logout
that ends the session on the server, login throttling, and what the consent page shows
of a self-registered client."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

pytest.importorskip("flask", reason="the example needs Flask: pip install -e .[example]")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # example/ is run from the checkout, not installed
    sys.path.insert(0, str(REPO))

from flask import Flask  # noqa: E402

import example.users  # noqa: E402
from example.app import (  # noqa: E402
    DEFAULT_USERS_FILE,
    MAX_CLIENT_NAME_LENGTH,
    SESSION_ABSOLUTE_LIFETIME,
    SESSION_IDLE_LIFETIME,
    create_app,
    display_host,
    https_origin,
)
from example.throttle import (  # noqa: E402
    FREE_FAILURES_PER_ACCOUNT,
    FREE_FAILURES_PER_ADDRESS,
    MAX_DELAY,
    LoginThrottle,
    address_key,
)
from example.users import hash_password  # noqa: E402
from pyop.keys import generate_signing_key, write_private_key  # noqa: E402
from pyop.provider import SCOPE_CLAIMS  # noqa: E402

ISSUER = "http://127.0.0.1:5999"
REDIRECT_URI = "https://rp.example.org/callback"

Client = Any


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("example-key") / "signing_key.pem"
    write_private_key(generate_signing_key("RS256"), path)
    return path


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled users (alice / alice) with cheap hashes."""
    users = json.loads(DEFAULT_USERS_FILE.read_text(encoding="utf-8"))
    for name, entry in users.items():
        entry["password_hash"] = hash_password(name, iterations=1000)
    users["bob"] = {"password_hash": hash_password("bob", iterations=1000),
                    "claims": {"name": "Bob"}}
    path = tmp_path_factory.mktemp("users") / "users.json"
    path.write_text(json.dumps(users), encoding="utf-8")
    return path


@pytest.fixture
def make_app(tmp_path: Path, key_path: Path, users_file: Path) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        app = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
                          "signing_key": str(key_path), "users_file": str(users_file),
                          "storage_uri": "memory:", **config})
        app.testing = True
        return app
    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Client:
    return app.test_client()


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the password key derivations (PBKDF2) of the example's user store."""
    calls: list[int] = []
    real = example.users.derive_key

    def spy(password: str, salt: bytes, iterations: int) -> bytes:
        calls.append(iterations)
        return real(password, salt, iterations)

    monkeypatch.setattr(example.users, "derive_key", spy)
    return calls


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def register(client: Client, **metadata: Any) -> dict[str, Any]:
    body = {"redirect_uris": [REDIRECT_URI], "client_name": "Test RP", **metadata}
    body = {name: value for name, value in body.items() if value is not None}
    response = client.post("/registration", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 201, response.get_data(as_text=True)
    result: dict[str, Any] = response.get_json()
    return result


def form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert match, f"no {name} field in the page"
    return match.group(1)


def authn_query(client_id: str, **extra: str) -> str:
    params = {"client_id": client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
              "scope": "openid profile email", "state": "st", "nonce": "n", **extra}
    return "/authorization?" + urlencode(params)


def login(client: Client, username: str = "alice", password: str = "alice",
          address: str = "192.0.2.1") -> Any:
    html = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf_token": form_value(html, "csrf_token"),
                                       "username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def consent(client: Client) -> Any:
    html = client.get("/consent").get_data(as_text=True)
    return client.post("/consent", data={"csrf_token": form_value(html, "csrf_token"),
                                         "request_id": form_value(html, "request_id"),
                                         "decision": "approve"})


def redirect_params(response: Any) -> dict[str, str]:
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_flow(client: Client, client_id: str, **extra: str) -> dict[str, str]:
    assert client.get(authn_query(client_id, **extra)).headers["Location"].endswith("/login")
    assert login(client).headers["Location"].endswith("/consent")
    return redirect_params(consent(client))


def consent_page(client: Client, registered: dict[str, Any], **extra: str) -> Any:
    client.get(authn_query(registered["client_id"], **extra))
    if "user_id" not in _session(client):
        login(client)
    return client.get("/consent")


def _session(client: Client) -> dict[str, Any]:
    with client.session_transaction() as session:
        return dict(session)


def session_cookie(client: Client, app: Flask) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    value: str = cookie.value
    return value


# -- 14. consent is given, and remembered, per claim (OIDC Core 5.4, 5.5) -----------------------

def test_oidc_core_5_5_prompt_none_with_claims_never_approved_gets_consent_required(
        client: Client) -> None:
    registered = register(client)
    code_flow(client, registered["client_id"])
    client_id = registered["client_id"]
    assert "code" in redirect_params(client.get(authn_query(client_id, prompt="none")))
    for claims in ({"userinfo": {"phone_number": None}},
                   {"id_token": {"address": {"essential": True}}},
                   {"userinfo": {"x_internal_id": None}}):
        params = redirect_params(client.get(authn_query(
            client_id, prompt="none", claims=json.dumps(claims))))
        assert params["error"] == "consent_required", claims
        assert "code" not in params


def test_oidc_core_5_4_consent_covers_the_claims_shown_not_the_scope_name(
        app: Flask, client: Client) -> None:
    """A consent remembered for the ``profile`` scope when it released fewer claims (or
    stored without its claims) does not cover the claims it releases now."""
    registered = register(client)
    client_id = registered["client_id"]
    code_flow(client, client_id)
    example_op = app.extensions["pyop_example"]
    granted = example_op.granted("alice", client_id)
    assert set(granted["claims"]) >= {*SCOPE_CLAIMS["profile"], *SCOPE_CLAIMS["email"]}
    assert "birthdate" in granted["claims"]
    # the stored consent lacks one claim the scope releases: asked again
    example_op.consents["alice"] = {"grants": [{
        **granted, "claims": [c for c in granted["claims"] if c != "birthdate"]}]}
    params = redirect_params(client.get(authn_query(client_id, prompt="none")))
    assert params["error"] == "consent_required"
    assert client.get(authn_query(client_id)).headers["Location"].endswith("/consent")
    # approving stores the claims again
    assert "code" in redirect_params(consent(client))
    assert "birthdate" in example_op.granted("alice", client_id)["claims"]
    assert "code" in redirect_params(client.get(authn_query(client_id, prompt="none")))


def test_oidc_core_5_4_consent_page_lists_the_claims_of_each_scope(client: Client) -> None:
    registered = register(client)
    html = consent_page(client, registered, claims=json.dumps(
        {"userinfo": {"phone_number": {"essential": True}}})).get_data(as_text=True)
    scopes = html.split('class="scopes"')[1].split("</ul>")[0]
    for claim in (*SCOPE_CLAIMS["profile"], *SCOPE_CLAIMS["email"]):
        assert f"<code>{claim}</code>" in scopes, claim
    explicit = html.split('class="claims"')[1].split("</ul>")[0]
    assert "<code>phone_number</code>" in explicit and "required" in explicit


# -- 15. logout ends the session on the server; sessions expire ----------------------------------

def test_logout_ends_the_session_a_copy_of_the_cookie_does_not_log_in(
        app: Flask, client: Client) -> None:
    registered = register(client)
    client_id = registered["client_id"]
    code_flow(client, client_id)
    stolen = session_cookie(client, app)
    html = client.get("/").get_data(as_text=True)
    assert "Signed in as" in html
    client.post("/logout", data={"csrf_token": form_value(html, "csrf_token")})
    # the pre-logout cookie, replayed (a copy taken before, or a logout in another tab)
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], stolen)
    assert _session(replay).get("user_id") == "alice"  # the cookie still says alice...
    assert "Not signed in" in replay.get("/").get_data(as_text=True)  # ...the server does not
    params = redirect_params(replay.get(authn_query(client_id, prompt="none")))
    assert params["error"] == "login_required"
    assert replay.get(authn_query(client_id)).headers["Location"].endswith("/login")


def test_a_new_login_ends_the_previous_session(app: Flask, client: Client) -> None:
    login(client)
    before = session_cookie(client, app)
    login(client, "bob", "bob")
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], before)
    assert "Not signed in" in replay.get("/").get_data(as_text=True)
    assert "Signed in as <strong>Bob</strong>" in client.get("/").get_data(as_text=True)


def test_session_idle_lifetime(app: Flask, client: Client) -> None:
    clock = FakeClock(time.time())
    app.extensions["pyop"].clock = clock
    login(client)
    for _ in range(3):  # used within the idle lifetime: kept, beyond the idle lifetime
        clock.now += SESSION_IDLE_LIFETIME - 60
        assert "Signed in as" in client.get("/").get_data(as_text=True)
    clock.now += SESSION_IDLE_LIFETIME + 1
    assert "Not signed in" in client.get("/").get_data(as_text=True)
    assert len(app.extensions["pyop_example"].sessions) == 0  # and deleted


def test_session_absolute_lifetime(app: Flask, client: Client) -> None:
    clock = FakeClock(time.time())
    app.extensions["pyop"].clock = clock
    login(client)
    used = 0.0
    while used + SESSION_IDLE_LIFETIME / 2 < SESSION_ABSOLUTE_LIFETIME:
        clock.now += SESSION_IDLE_LIFETIME / 2
        used += SESSION_IDLE_LIFETIME / 2
        assert "Signed in as" in client.get("/").get_data(as_text=True)
    clock.now += SESSION_IDLE_LIFETIME / 2 + 1
    assert "Not signed in" in client.get("/").get_data(as_text=True)


def test_session_store_writes_at_most_once_a_minute(app: Flask, client: Client,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(time.time())
    app.extensions["pyop"].clock = clock
    login(client)
    sessions = app.extensions["pyop_example"].sessions
    writes: list[str] = []
    real_set = sessions.set

    def counting_set(key: str, *args: Any, **kwargs: Any) -> None:
        writes.append(key)
        real_set(key, *args, **kwargs)

    monkeypatch.setattr(sessions, "set", counting_set)
    for _ in range(20):
        client.get("/")
    assert writes == []
    clock.now += 61
    for _ in range(20):
        client.get("/")
    assert len(writes) == 1  # the last use, once


def test_session_store_holds_no_session_ids(app: Flask, client: Client) -> None:
    login(client)
    sid = _session(client)["sid"]
    stored = app.extensions["pyop_example"].sessions
    assert len(stored) == 1 and sid not in stored
    assert sid not in json.dumps(dict(stored.items()))


# -- 16. login throttling, before the key derivation ----------------------------------------------

def test_login_throttled_per_account_before_the_key_derivation(
        app: Flask, client: Client, derivations: list[int]) -> None:
    throttle = app.extensions["pyop_example"].throttle
    throttle.clock = clock = FakeClock(1000.0)
    for attempt in range(FREE_FAILURES_PER_ACCOUNT + 1):
        response = login(client, "alice", f"guess-{attempt}", address=f"198.51.100.{attempt}")
        assert response.status_code == 200
        assert "Wrong username or password" in response.get_data(as_text=True)
    assert len(derivations) == FREE_FAILURES_PER_ACCOUNT + 1
    # now slowed down: refused with 429 and no key derivation, even for the right password
    for attempt in range(50):
        response = login(client, "alice", "alice" if attempt % 2 else "guess",
                         address=f"203.0.113.{attempt}")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert "Too many failed sign-in attempts. Wait 1 second and try again." in \
            response.get_data(as_text=True)
    assert len(derivations) == FREE_FAILURES_PER_ACCOUNT + 1
    assert "user_id" not in _session(client)
    # each further failure doubles the wait
    clock.now += 1
    assert login(client, "alice", "guess").status_code == 200
    assert login(client, "alice", "guess").headers["Retry-After"] == "2"
    clock.now += 2
    login(client, "alice", "guess")
    assert login(client, "alice", "guess").headers["Retry-After"] == "4"
    # other accounts are not slowed down; the right password after the wait logs in
    assert login(client, "bob", "bob", address="192.0.2.99").status_code == 303
    clock.now += 4
    assert login(client, "alice", "alice").status_code == 303
    assert login(client, "alice", "wrong").status_code == 200  # the success forgot the failures


def test_login_throttled_per_address(app: Flask, client: Client, derivations: list[int]) -> None:
    throttle = app.extensions["pyop_example"].throttle
    throttle.clock = FakeClock(1000.0)
    for attempt in range(FREE_FAILURES_PER_ADDRESS + 1):  # one guess per account name
        assert login(client, f"user{attempt}", "guess").status_code == 200
    assert len(derivations) == FREE_FAILURES_PER_ADDRESS + 1
    refused = login(client, "alice", "alice")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert len(derivations) == FREE_FAILURES_PER_ADDRESS + 1
    # another address is not slowed down; an IPv6 client counts per /64
    assert login(client, "alice", "alice", address="192.0.2.2").status_code == 303
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::7")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "192.0.2.1"


def test_login_throttle_bounds_the_waits_and_a_guessing_run(derivations: list[int]) -> None:
    """A day of guessing at one account, as fast as it is allowed: the number of password
    checks it gets (each one a key derivation)."""
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    checks = 0
    while clock.now < 24 * 3600:
        wait = throttle.retry_after("alice", f"198.51.100.{checks % 250}")
        if wait:
            assert wait <= MAX_DELAY
            clock.now += wait
            continue
        checks += 1
        throttle.failed("alice", f"198.51.100.{checks % 250}")
    # 5 free, then 1 s, 2 s, ... up to 15 minutes between guesses: about 96 a day
    assert checks < FREE_FAILURES_PER_ACCOUNT + 10 + 24 * 3600 / MAX_DELAY + 1


def test_login_refused_when_every_password_check_slot_is_busy(
        app: Flask, client: Client, derivations: list[int]) -> None:
    throttle = app.extensions["pyop_example"].throttle
    taken = 0
    while throttle.begin_check():  # other requests are checking passwords
        taken += 1
    try:
        response = login(client)
        assert response.status_code == 429 and response.headers["Retry-After"] == "1"
        assert "The service is busy." in response.get_data(as_text=True)
        assert derivations == []
    finally:
        for _ in range(taken):
            throttle.end_check()
    assert login(client).status_code == 303


def test_login_throttle_tables_are_bounded() -> None:
    throttle = LoginThrottle(clock=FakeClock(0.0), max_entries=100)
    for attempt in range(5000):
        throttle.failed(f"user-{attempt}-" + "x" * 1000, f"2001:db8:{attempt:x}::1")
    assert len(throttle.accounts) == 100 and len(throttle.addresses) == 100
    sizes = {len(key) for key in throttle.accounts._records}
    assert sizes == {64}  # a hash, whatever the length of the name


def test_login_throttle_forgets_old_failures() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(FREE_FAILURES_PER_ACCOUNT + 1):
        throttle.failed("alice", "192.0.2.1")
    assert throttle.retry_after("alice", "192.0.2.1") == 1
    clock.now += 2 * 3600
    assert throttle.retry_after("alice", "192.0.2.1") == 0
    throttle.failed("alice", "192.0.2.1")
    assert throttle.retry_after("alice", "192.0.2.1") == 0  # counting from zero again


def test_long_user_names_are_cut_before_they_are_kept(client: Client) -> None:
    response = login(client, "a" * 100_000, "guess")
    assert response.status_code == 200
    assert "a" * 257 not in response.get_data(as_text=True)


# -- 17. what the consent page shows of a self-registered client (OIDC Dynamic Registration 2) --

def test_registration_2_client_name_is_marked_unverified_and_escaped(client: Client) -> None:
    registered = register(client, client_name="<script>alert(1)</script> Your Bank")
    html = consent_page(client, registered).get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Your Bank" in html
    assert '<span class="unverified">unverified name</span>' in html
    assert "this service has not checked" in html


def test_verified_clients_are_not_marked(make_app: Callable[..., Flask]) -> None:
    app = make_app(verified_clients=["checked-by-the-operator"])
    assert app.extensions["pyop_example"].verified_clients == {"checked-by-the-operator"}
    registered = register(app.test_client())
    app.extensions["pyop_example"].verified_clients = frozenset([registered["client_id"]])
    html = consent_page(app.test_client(), registered).get_data(as_text=True)
    assert "Test RP" in html and "unverified" not in html


def test_client_name_length_is_bounded_and_formatting_characters_removed(
        client: Client) -> None:
    registered = register(client, client_name="Your Bank\u202egnp.exe " + "x" * 2000)
    html = consent_page(client, registered).get_data(as_text=True)
    name = re.search(r'<strong class="client-name">([^<]*)</strong>', html)
    assert name is not None
    assert len(name.group(1)) == MAX_CLIENT_NAME_LENGTH and name.group(1).endswith("…")
    assert "\u202e" not in html and "x" * 100 not in html
    assert name.group(1).startswith("Your Bankgnp.exe")


def test_client_without_name_is_shown_by_its_redirect_host(client: Client) -> None:
    registered = register(client, client_name=None)
    html = consent_page(client, registered).get_data(as_text=True)
    assert '<strong class="client-name">rp.example.org</strong>' in html
    assert registered["client_id"] not in html
    login_page = client.get("/login").get_data(as_text=True)
    assert registered["client_id"] not in login_page


def test_redirect_host_is_shown_in_ascii_idna_form() -> None:
    assert display_host("https://b\u00fccher.example/cb") == "xn--bcher-kva.example"
    assert display_host("https://\u0430pple.com/") == "xn--pple-43d.com"  # Cyrillic "а"
    assert display_host("https://RP.example.org:8443/cb") == "rp.example.org:8443"
    assert display_host("http://[::1]:8080/cb") == "[::1]:8080"
    assert display_host("https://a.example;script-src/x") is None
    assert display_host("not a url") is None


def test_logo_policy_and_terms_are_shown_and_the_csp_allows_the_logo_origin_only(
        client: Client) -> None:
    registered = register(client, logo_uri="https://cdn.rp.example.org/logo.png",
                          policy_uri="https://rp.example.org/privacy",
                          tos_uri="https://rp.example.org/terms")
    response = consent_page(client, registered)
    html = response.get_data(as_text=True)
    assert '<img class="logo" src="https://cdn.rp.example.org/logo.png"' in html
    assert ('<a href="https://rp.example.org/privacy" target="_blank" '
            'rel="noopener noreferrer">privacy policy</a>') in html
    assert ('<a href="https://rp.example.org/terms" target="_blank" '
            'rel="noopener noreferrer">terms of service</a>') in html
    csp = response.headers["Content-Security-Policy"]
    assert "img-src 'self' https://cdn.rp.example.org;" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # other pages keep the policy without it
    assert "cdn.rp.example.org" not in client.get("/").headers["Content-Security-Policy"]


def test_logo_over_http_or_with_a_bad_host_is_not_shown() -> None:
    assert https_origin("http://cdn.rp.example.org/logo.png") is None
    assert https_origin("https://a.example;script-src 'unsafe-inline'/l.png") is None
    assert https_origin("javascript:alert(1)") is None
    assert https_origin("https://cdn.example:8443/l.png") == "https://cdn.example:8443"


def test_http_logo_leaves_the_csp_alone(client: Client) -> None:
    registered = register(client, logo_uri="http://rp.example.org/logo.png")
    response = consent_page(client, registered)
    assert "<img" not in response.get_data(as_text=True)
    assert "img-src 'self';" in response.headers["Content-Security-Policy"]

