"""Login sessions (``sid``) and single logout: ID token ``sid`` (Front-Channel Logout 1.0 3,
Back-Channel Logout 1.0 2.1), the grants of one session revoked (offline ones kept,
Back-Channel Logout 1.0 2.7), front-channel iframe URLs and page (Front-Channel Logout
1.0 4), logout URI registration, and ``prompt=create`` (Initiating User Registration 1.0).
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import pytest
from support.logout import (
    ISSUER,
    RP_A,
    RP_B,
    RP_PLAIN,
    authenticate,
    exchange,
    logout_clients,
    logout_configuration,
    refresh,
    unverified_claims,
)

from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthenticationRequest,
    InvalidClientRegistrationRequest,
    InvalidSubjectIdentifier,
    InvalidTokenRequest,
)
from pyop.logout_notifications import (
    LogoutResult,
    frontchannel_logout_page,
    frontchannel_logout_url,
)
from pyop.provider import Provider


@pytest.fixture
def op(make_provider: Callable[..., Provider]) -> Provider:
    # the host delivers the Logout Tokens: these tests make no requests
    return make_provider(config=logout_configuration(), client_db=logout_clients(),
                         authz_kwargs={"refresh_token_lifetime": 3600},
                         backchannel_logout_delivery="return")


def code_grant(provider: Provider, client_id: str, session_id: Any = None,
               scope: str = "openid") -> dict[str, Any]:
    prompt = "consent" if "offline_access" in scope else None
    response = authenticate(provider, client_id, session_id=session_id, scope=scope,
                            prompt=prompt)
    tokens = exchange(provider, client_id, response["code"])
    tokens["session_id"] = response.session_id
    return tokens


def is_live(provider: Provider, access_token: str) -> bool:
    try:
        provider.authz_state.get_access_token(access_token)
    except InvalidAccessToken:
        return False
    return True


def can_refresh(provider: Provider, client_id: str, refresh_token: str) -> bool:
    try:
        refresh(provider, client_id, refresh_token)
    except InvalidTokenRequest:
        return False
    return True


# -- sid in ID tokens and grant records ------------------------------------------------------


def test_without_a_session_nothing_changes(op: Provider) -> None:
    """pyop 3 issued no sid: a client without session requirements gets none, and its
    records have no sid (upgrade safety)."""
    tokens = code_grant(op, RP_B)
    assert tokens["session_id"] is None
    assert "sid" not in unverified_claims(tokens["id_token"])
    assert "sid" not in op.authz_state.get_access_token(tokens["access_token"])


def test_the_host_session_is_kept_in_every_record_but_sid_only_where_required(
        op: Provider) -> None:
    sid = op.new_session_id()
    response = authenticate(op, RP_B, session_id=sid)
    assert response.session_id == sid
    assert "session_id" not in response.to_dict()  # never sent to the client
    assert op.authz_state.get_authorization_code(response["code"])["sid"] == sid
    tokens = exchange(op, RP_B, response["code"])
    assert "sid" not in unverified_claims(tokens["id_token"])  # rp-b does not require it
    assert op.authz_state.get_access_token(tokens["access_token"])["sid"] == sid
    assert op.authz_state.get_refresh_token(tokens["refresh_token"])["sid"] == sid
    refreshed = refresh(op, RP_B, tokens["refresh_token"])
    assert op.authz_state.get_access_token(refreshed["access_token"])["sid"] == sid


@pytest.mark.parametrize("response_type", ["code", "id_token", "code id_token"])
def test_sid_in_id_tokens_of_clients_requiring_it(op: Provider, response_type: str) -> None:
    """Front-Channel Logout 1.0 3 / Back-Channel Logout 1.0 2.1: sid in the ID token of
    a client that registered *_session_required, in every flow."""
    sid = op.new_session_id()
    response = authenticate(op, RP_A, session_id=sid, response_type=response_type)
    if "id_token" in response:
        assert unverified_claims(response["id_token"])["sid"] == sid
    if "code" in response:
        tokens = exchange(op, RP_A, response["code"])
        assert unverified_claims(tokens["id_token"])["sid"] == sid


def test_a_session_is_minted_when_the_client_requires_sid(op: Provider) -> None:
    first = authenticate(op, RP_A, response_type="id_token")
    second = authenticate(op, RP_A, response_type="id_token")
    assert isinstance(first.session_id, str) and len(first.session_id) >= 22
    assert first.session_id != second.session_id
    assert unverified_claims(first["id_token"])["sid"] == first.session_id


def test_id_token_sid_option_puts_sid_in_every_id_token(
        make_provider: Callable[..., Provider]) -> None:
    op = make_provider(config=logout_configuration(), client_db=logout_clients(),
                       id_token_sid=True)
    response = authenticate(op, RP_PLAIN, response_type="id_token")
    assert unverified_claims(response["id_token"])["sid"] == response.session_id


def test_a_host_extra_sid_claim_is_replaced_by_the_session(op: Provider) -> None:
    sid = op.new_session_id()
    request = op.parse_authentication_request(
        "client_id=rp-a&redirect_uri=https%3A%2F%2Fa.example%2Fcallback"
        "&response_type=id_token&scope=openid&nonce=n")
    response = op.authorize(request, "alice", {"sid": "forged"}, session_id=sid)
    assert unverified_claims(response["id_token"])["sid"] == sid


@pytest.mark.parametrize("bad", ["", 7, "x" * 256])
def test_a_malformed_session_id_is_refused(op: Provider, bad: Any) -> None:
    with pytest.raises(ValueError):
        authenticate(op, RP_A, session_id=bad)


# -- per-session revocation --------------------------------------------------------------------


def test_logging_a_session_out_revokes_its_grants_only(op: Provider, clock: Any) -> None:
    one, two = op.new_session_id(), op.new_session_id()
    a1, b1, a2 = code_grant(op, RP_A, one), code_grant(op, RP_B, one), code_grant(op, RP_A, two)
    pending = authenticate(op, RP_B, session_id=one)["code"]
    implicit = authenticate(op, RP_A, session_id=one, response_type="id_token")
    assert implicit.session_id == one
    result = op.logout_user(session_id=one)
    assert isinstance(result, LogoutResult)
    assert result.session_id == one and result.offline_revoked is False
    for tokens, client_id in ((a1, RP_A), (b1, RP_B)):
        assert not is_live(op, tokens["access_token"])
        assert not can_refresh(op, client_id, tokens["refresh_token"])
    with pytest.raises(InvalidTokenRequest):
        exchange(op, RP_B, pending)  # the code of the session
    assert is_live(op, a2["access_token"])  # the other session of the same user
    assert can_refresh(op, RP_A, a2["refresh_token"])
    clock.advance(1)
    later = code_grant(op, RP_A, one)  # a grant after the logout (a new login, same sid)
    assert is_live(op, later["access_token"])


def test_offline_grants_survive_a_session_logout_by_default(op: Provider) -> None:
    """Back-Channel Logout 1.0 2.7, OIDC Core 11: offline_access tokens normally survive."""
    sid = op.new_session_id()
    online = code_grant(op, RP_A, sid)
    offline = code_grant(op, RP_A, sid, scope="openid offline_access")
    assert "offline_access" in offline["scope"]
    op.logout_user(session_id=sid)
    assert not can_refresh(op, RP_A, online["refresh_token"])
    assert is_live(op, offline["access_token"])
    assert can_refresh(op, RP_A, offline["refresh_token"])


def test_revoke_offline_revokes_the_session_offline_grants_too(op: Provider) -> None:
    sid = op.new_session_id()
    offline = code_grant(op, RP_A, sid, scope="openid offline_access")
    result = op.logout_user(session_id=sid, revoke_offline=True)
    assert result.offline_revoked is True
    assert not is_live(op, offline["access_token"])
    assert not can_refresh(op, RP_A, offline["refresh_token"])


def test_a_later_partial_logout_does_not_revive_what_a_full_one_revoked(op: Provider) -> None:
    sid = op.new_session_id()
    offline = code_grant(op, RP_A, sid, scope="openid offline_access")
    op.logout_user(session_id=sid, revoke_offline=True)
    op.logout_user(session_id=sid)  # keeps offline grants issued from now on only
    assert not can_refresh(op, RP_A, offline["refresh_token"])


def test_subject_logout_keeps_pyop3_behaviour(op: Provider) -> None:
    """pyop 3 revoked every token of the sub at logout, offline ones included."""
    sid = op.new_session_id()
    offline = code_grant(op, RP_A, sid, scope="openid offline_access")
    other = code_grant(op, RP_B)
    sub = op.authz_state.get_access_token(other["access_token"])["sub"]
    result = op.logout_user(sub)
    assert result.session_id is None and result.offline_revoked is True
    assert not is_live(op, offline["access_token"]) and not is_live(op, other["access_token"])
    with pytest.raises(ValueError):
        op.logout_user(sub, revoke_offline=False)


def test_the_id_token_hint_sid_selects_the_session(op: Provider) -> None:
    one, two = op.new_session_id(), op.new_session_id()
    a1, a2 = code_grant(op, RP_A, one), code_grant(op, RP_A, two)
    request = op.parse_end_session_request({"id_token_hint": a1["id_token"]})
    result = op.logout_user(end_session_request=request)
    assert result.session_id == one
    assert not is_live(op, a1["access_token"]) and is_live(op, a2["access_token"])


def test_no_session_and_no_sub_is_an_error(op: Provider) -> None:
    with pytest.raises(InvalidSubjectIdentifier):
        op.logout_user()
    with pytest.raises(InvalidSubjectIdentifier):
        op.logout_user(session_id="")


def test_a_cached_token_of_a_logged_out_session_is_refused_at_once(
        make_provider: Callable[..., Provider]) -> None:
    op = make_provider(config=logout_configuration(), client_db=logout_clients(),
                       authz_kwargs={"access_token_cache_ttl": 300})
    one, two = op.new_session_id(), op.new_session_id()
    a1, a2 = code_grant(op, RP_A, one), code_grant(op, RP_A, two)
    assert is_live(op, a1["access_token"])
    op.logout_user(session_id=one)
    assert not is_live(op, a1["access_token"])
    assert is_live(op, a2["access_token"])


def test_session_logout_costs_one_read_per_grant_use_only_with_a_session(
        make_provider: Callable[..., Provider]) -> None:
    """Bound: a grant without a session is checked with the one mark read it had; a grant
    with a session with one more."""
    from benchmarks.counting import CountingStore
    from pyop.storage import MemoryStorage

    tokens = CountingStore(MemoryStorage())
    op = make_provider(config=logout_configuration(), client_db=logout_clients(),
                       authz_kwargs={"access_token_db": tokens})
    plain = code_grant(op, RP_B)
    with_session = code_grant(op, RP_B, op.new_session_id())
    counts = []
    for grant in (plain, with_session):
        before = sum(tokens.counts.values())
        op.authz_state.get_access_token(grant["access_token"])
        counts.append(sum(tokens.counts.values()) - before)
    assert counts[1] == counts[0] + 1


# -- which clients are told -----------------------------------------------------------------


def test_the_result_names_the_session_clients_with_logout_uris(op: Provider) -> None:
    one, two = op.new_session_id(), op.new_session_id()
    code_grant(op, RP_A, one)
    code_grant(op, RP_PLAIN, one)  # no logout URI: not indexed, not told
    code_grant(op, RP_B, two)
    result = op.logout_user(session_id=one)
    assert result.clients == [RP_A]
    assert [r.client_id for r in result.backchannel_requests] == [RP_A]
    assert result.backchannel_results == []  # "return": the host delivers
    assert len(result.frontchannel_urls) == 1


def test_subject_logout_tells_every_client_of_the_sub(op: Provider) -> None:
    one, two = op.new_session_id(), op.new_session_id()
    a = code_grant(op, RP_A, one)
    code_grant(op, RP_A, two)
    code_grant(op, RP_B)
    sub = op.authz_state.get_access_token(a["access_token"])["sub"]
    result = op.logout_user(sub)
    assert sorted(result.clients) == [RP_A, RP_B]
    sids = sorted(unverified_claims(r.logout_token).get("sid", "-")
                  for r in result.backchannel_requests if r.client_id == RP_A)
    assert sids == sorted([one, two])  # rp-a requires sid: one token per session
    [b_request] = [r for r in result.backchannel_requests if r.client_id == RP_B]
    assert "sid" not in unverified_claims(b_request.logout_token)
    assert unverified_claims(b_request.logout_token)["sub"] == sub


def test_without_the_discovery_flags_no_notification_is_made(
        make_provider: Callable[..., Provider]) -> None:
    config = logout_configuration(backchannel_logout_supported=False,
                                  frontchannel_logout_supported=False)
    op = make_provider(config=config, client_db=logout_clients())
    sid = op.new_session_id()
    code_grant(op, RP_A, sid)
    result = op.logout_user(session_id=sid)
    assert result.clients == []  # nothing indexed for channels that are off
    assert result.backchannel_requests == [] and result.frontchannel_urls == []


def test_discovery_defaults_stay_off() -> None:
    """pyop 3 advertised no logout channel: the capabilities are opt-in."""
    from pyop.configuration import configuration_defaults

    defaults = configuration_defaults(ISSUER, ["RS256"])
    for name in ("backchannel_logout_supported", "backchannel_logout_session_supported",
                 "frontchannel_logout_supported", "frontchannel_logout_session_supported"):
        assert defaults[name] is False


# -- front-channel ------------------------------------------------------------------------------


def test_frontchannel_urls_carry_iss_and_sid_when_required(op: Provider) -> None:
    sid = op.new_session_id()
    code_grant(op, RP_A, sid)
    code_grant(op, RP_B, sid)
    urls = op.logout_user(session_id=sid).frontchannel_urls
    a_url = next(url for url in urls if url.startswith("https://a.example/"))
    query = dict(parse_qsl(urlsplit(a_url).query))
    assert query == {"x": "1", "y": "a b", "iss": ISSUER, "sid": sid}  # merged, encoded
    assert "https://b.example/fc" in urls  # not required: the URI as registered


def test_frontchannel_url_encoding_and_replacement() -> None:
    url = frontchannel_logout_url("https://rp.example/fc?sid=old&iss=old&k=v",
                                  "https://op.example/a b&c", "s&d=1")
    query = parse_qsl(urlsplit(url).query)
    assert query == [("k", "v"), ("iss", "https://op.example/a b&c"), ("sid", "s&d=1")]
    assert frontchannel_logout_url("https://rp.example/fc", ISSUER, None) == (
        "https://rp.example/fc")


def test_logout_page_escapes_and_allows_exactly_the_frames() -> None:
    page = frontchannel_logout_page(
        ["https://a.example/fc?x=1&y=\"><script>alert(1)</script>",
         "https://b.example:8443/fc", "javascript:alert(1)", "http://evil.example/fc"],
        title="<b>t</b>", message="bye <i>")
    assert "<script>alert" not in page.html and "<b>t" not in page.html
    assert "&lt;b&gt;t&lt;/b&gt;" in page.html and "bye &lt;i&gt;" in page.html
    assert page.html.count("<iframe") == 2  # javascript: and plain http refused
    assert "evil.example" not in page.html
    directives = dict(d.strip().split(" ", 1) for d in page.content_security_policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-src"].split() == ["https://a.example", "https://b.example:8443"]
    assert "script-src" not in directives  # no redirect, no script
    assert "<script" not in page.html


def test_logout_page_redirect_runs_only_with_its_nonce() -> None:
    page = frontchannel_logout_page(["https://a.example/fc"],
                                    post_logout_redirect_uri="https://rp.example/bye?a=1&b=2")
    nonce = re.search(r"script-src 'nonce-([^']+)'", page.content_security_policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in page.html
    assert 'href="https://rp.example/bye?a=1&amp;b=2"' in page.html
    assert "rp.example/bye" not in page.html.split("<script", 1)[1]  # not in script text
    other = frontchannel_logout_page([], post_logout_redirect_uri="https://rp.example/bye")
    assert "frame-src 'none'" in other.content_security_policy
    assert nonce.group(1) not in other.content_security_policy


def test_logout_page_script_braces_and_parentheses_balance() -> None:
    """The redirect script is plain JavaScript (no template doubling of its braces left
    over): every block and call it opens is closed, in order. Chromium runs it in
    tests/relying_parties/test_single_logout.py."""
    page = frontchannel_logout_page(["https://a.example/fc"],
                                    post_logout_redirect_uri="https://rp.example/bye")
    script = page.html.split("<script", 1)[1].split(">", 1)[1].split("</script>", 1)[0]
    assert "{{" not in script and "}}" not in script
    stack: list[str] = []
    for ch in script:
        if ch in "({":
            stack.append(ch)
        elif ch in ")}":
            assert stack and stack.pop() == {")": "(", "}": "{"}[ch], script
    assert stack == [], script


def test_logout_result_renders_its_page(op: Provider) -> None:
    sid = op.new_session_id()
    code_grant(op, RP_A, sid)
    result = op.logout_user(session_id=sid)
    page = result.frontchannel_page()
    assert page.html.count("<iframe") == 1
    assert "frame-src https://a.example;" in page.content_security_policy + ";"


# -- registration -------------------------------------------------------------------------------


def register(op: Provider, **metadata: Any) -> dict[str, Any]:
    body = {"redirect_uris": ["https://rp.example/cb"], **metadata}
    return dict(op.handle_client_registration_request(body))


def test_logout_metadata_is_registered(op: Provider) -> None:
    client = register(op, backchannel_logout_uri="https://rp.example/bc",
                      backchannel_logout_session_required=True,
                      frontchannel_logout_uri="https://rp.example/fc",
                      frontchannel_logout_session_required=False)
    stored = op.clients[client["client_id"]]
    assert stored["backchannel_logout_uri"] == "https://rp.example/bc"
    assert stored["backchannel_logout_session_required"] is True
    assert stored["frontchannel_logout_uri"] == "https://rp.example/fc"


@pytest.mark.parametrize("metadata", [
    {"backchannel_logout_uri": "http://rp.example/bc"},
    {"backchannel_logout_uri": "https://rp.example/bc#frag"},
    {"backchannel_logout_uri": "https://user:pw@rp.example/bc"},
    {"backchannel_logout_uri": "/bc"},
    {"backchannel_logout_uri": "javascript:alert(1)"},
    {"frontchannel_logout_uri": "https://other.example/fc"},
    {"frontchannel_logout_uri": "https://rp.example:444/fc"},
    {"frontchannel_logout_uri": "http://rp.example/fc"},
    {"backchannel_logout_session_required": "yes"},
])
def test_bad_logout_metadata_is_refused(op: Provider, metadata: dict[str, Any]) -> None:
    with pytest.raises(InvalidClientRegistrationRequest) as error:
        register(op, **metadata)
    assert error.value.oauth_error == "invalid_client_metadata"


def test_loopback_http_logout_uris_are_allowed(op: Provider) -> None:
    client = register(op, redirect_uris=["http://127.0.0.1:9000/cb"],
                      backchannel_logout_uri="http://127.0.0.1:9000/bc",
                      frontchannel_logout_uri="http://127.0.0.1:9000/fc")
    assert client["backchannel_logout_uri"] == "http://127.0.0.1:9000/bc"


# -- prompt=create ---------------------------------------------------------------------------


def test_prompt_create_is_refused_unless_enabled(op: Provider) -> None:
    with pytest.raises(InvalidAuthenticationRequest):
        authenticate(op, RP_A, prompt="create")
    assert "prompt_values_supported" not in op.provider_configuration.to_dict()


def test_prompt_create_when_enabled(make_provider: Callable[..., Provider]) -> None:
    op = make_provider(config=logout_configuration(), client_db=logout_clients(),
                       prompt_create=True)
    assert op.provider_configuration["prompt_values_supported"] == [
        "none", "login", "consent", "select_account", "create"]
    request = op.parse_authentication_request(
        "client_id=rp-a&redirect_uri=https%3A%2F%2Fa.example%2Fcallback"
        "&response_type=code&scope=openid&prompt=create%20login")
    assert op.requested_prompts(request) == {"login", "create"}
    kept = request.to_dict()  # what a host keeps in its session
    assert op.requested_prompts(kept) == {"login", "create"}
    response = op.authorize(kept, "alice")
    assert "code" in response
    only = op.parse_authentication_request(
        "client_id=rp-a&redirect_uri=https%3A%2F%2Fa.example%2Fcallback"
        "&response_type=code&scope=openid&prompt=create")
    assert op.requested_prompts(only) == {"create"}
    plain = op.parse_authentication_request(
        "client_id=rp-a&redirect_uri=https%3A%2F%2Fa.example%2Fcallback"
        "&response_type=code&scope=openid")
    assert op.requested_prompts(plain) == frozenset()
    with pytest.raises(InvalidAuthenticationRequest):
        op.parse_authentication_request(
            "client_id=rp-a&redirect_uri=https%3A%2F%2Fa.example%2Fcallback"
            "&response_type=code&scope=openid&prompt=none%20create")


def test_prompt_create_keeps_a_configured_list(make_provider: Callable[..., Provider]) -> None:
    op = make_provider(config=logout_configuration(prompt_values_supported=["none", "login"]),
                       client_db=logout_clients(), prompt_create=True)
    assert op.provider_configuration["prompt_values_supported"] == ["none", "login", "create"]


def test_with_the_channels_off_a_client_requiring_sid_gets_what_pyop3_gave(
        make_provider: Callable[..., Provider]) -> None:
    """Upgrade safety: a provider that does not advertise the logout channels (pyop 3's
    defaults) issues no sid and writes no logout index, whatever the clients registered."""
    from benchmarks.counting import CountingStore
    from pyop.storage import MemoryStorage

    config = logout_configuration()
    for name in ("backchannel_logout_supported", "backchannel_logout_session_supported",
                 "frontchannel_logout_supported", "frontchannel_logout_session_supported"):
        del config[name]
    tokens = CountingStore(MemoryStorage())
    op = make_provider(config=config, client_db=logout_clients(),
                       authz_kwargs={"access_token_db": tokens})
    counts = {}
    for client_id in (RP_A, RP_PLAIN):
        before = sum(tokens.counts.values())
        response = authenticate(op, client_id, response_type="code id_token")
        assert response.session_id is None
        assert "sid" not in unverified_claims(response["id_token"])
        tokens_response = exchange(op, client_id, response["code"])
        counts[client_id] = sum(tokens.counts.values()) - before
        assert "sid" not in unverified_claims(tokens_response["id_token"])
    assert counts[RP_A] == counts[RP_PLAIN]
    assert all(not str(key).startswith(("session-clients", "subject-clients"))
               for key in tokens.inner.keys())


@pytest.mark.parametrize("uri", ["stateless", "sqlite"])
def test_session_logout_on_sealed_and_sql_stores(
        make_provider: Callable[..., Provider], tmp_path: Any, uri: str) -> None:
    """Sealed (stateless) tokens carry their sid in the sealed record; the session mark
    and the index go where the subject's logout marks go."""
    from storage.provider_support import STATELESS_URI, stores_from_uri

    if uri == "stateless":
        stores = stores_from_uri(STATELESS_URI, "slo")
    else:
        stores = stores_from_uri(f"sqlite:///{tmp_path}/op.db", "slo")
    op = make_provider(config=logout_configuration(), client_db=logout_clients(),
                       authz_kwargs={"authorization_code_db": stores.codes,
                                     "access_token_db": stores.access_tokens,
                                     "refresh_token_db": stores.refresh_tokens,
                                     "subject_identifier_db": stores.subject_identifiers,
                                     "refresh_token_lifetime": 3600})
    one, two = op.new_session_id(), op.new_session_id()
    a1, a2 = code_grant(op, RP_A, one), code_grant(op, RP_A, two)
    result = op.logout_user(session_id=one)
    assert result.clients == [RP_A] and len(result.backchannel_requests) == 1
    assert not is_live(op, a1["access_token"])
    assert not can_refresh(op, RP_A, a1["refresh_token"])
    assert is_live(op, a2["access_token"])
    assert can_refresh(op, RP_A, a2["refresh_token"])
    for closable in stores.closables:
        close = getattr(closable, "close", None)
        if callable(close):
            close()
