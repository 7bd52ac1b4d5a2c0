"""SECURITY.md, "Logout": RP-Initiated Logout 1.0 with forged or mismatched input.

Each SECURITY.md line and the tests covering it:

- post_logout_redirect_uri not registered for the client proven by id_token_hint (or named by
  client_id), or with an added query -> no redirect:
  ``test_rp_initiated_logout_3_post_logout_redirect_uri_not_registered``,
  ``test_rp_initiated_logout_3_other_clients_post_logout_redirect_uri``,
  ``test_rp_initiated_logout_3_client_id_without_hint``,
  ``test_rp_initiated_logout_3_registered_uri_redirects`` (control).
- No id_token_hint and no client_id -> no redirect:
  ``test_rp_initiated_logout_3_no_hint_and_no_client_id``.
- id_token_hint not signed by us (garbage, alg none, foreign key, HS256 with our public key)
  -> no redirect, no crash; an expired genuine hint is accepted:
  ``test_rp_initiated_logout_2_forged_id_token_hint``,
  ``test_rp_initiated_logout_2_expired_genuine_hint_accepted``.
- client_id differing from the hint's aud -> error:
  ``test_rp_initiated_logout_2_client_id_differs_from_aud``.
- Preamble ("nothing but the library's typed errors"):
  ``test_security_md_garbage_end_session_requests_raise_typed_errors``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from pyop.crypto import SigningKey, VerificationKey, b64url_encode, jwk_thumbprint, jws_sign
from pyop.exceptions import (
    InvalidAccessToken,
    InvalidAuthorizationCode,
    InvalidEndSessionRequest,
    InvalidSubjectIdentifier,
)
from pyop.message import EndSessionRequest

from .helpers import (
    CLIENT_B_ID,
    CLIENT_B_POST_LOGOUT_URI,
    CLIENT_ID,
    ISSUER,
    POST_LOGOUT_URI,
    USER_ID,
    authorize,
    b64_json,
    bearer,
    full_code_flow,
    issue_code,
    redeem,
    security_clients,
    unverified_claims,
)


@pytest.fixture
def hint(op: Any) -> str:
    """A genuine ID token issued to client1 (its sub is known to the provider)."""
    return str(authorize(op, response_type="id_token")["id_token"])


def end_session(provider: Any, **params: Optional[str]) -> Any:
    return provider.parse_end_session_request(
        urlencode({k: v for k, v in params.items() if v is not None}))


def assert_no_redirect(provider: Any, request: Any) -> None:
    assert provider.do_post_logout_redirect(request) is None
    # not even once the end-user confirmed: no registered target to confirm
    assert provider.do_post_logout_redirect(request, confirmed=True) is None
    assert provider.post_logout_redirect_client(request) is None


def assert_redirects_to(provider: Any, request: Any, uri: str, state: Optional[str], *,
                        confirmed: bool = False) -> None:
    url = provider.do_post_logout_redirect(request, confirmed=confirmed)
    assert url is not None
    parts = urlsplit(url)
    assert parts._replace(query="").geturl() == uri
    assert parse_qs(parts.query).get("state") == ([state] if state else None)


# -- registered post_logout_redirect_uri only (RP-Initiated Logout 1.0, 3) ---------------------

def test_rp_initiated_logout_3_registered_uri_redirects(op: Any, hint: str) -> None:
    request = end_session(op, id_token_hint=hint, post_logout_redirect_uri=POST_LOGOUT_URI,
                          state="s1")
    assert_redirects_to(op, request, POST_LOGOUT_URI, "s1")


@pytest.mark.parametrize("uri", [
    "https://evil.example/logged-out",
    POST_LOGOUT_URI + "?x=1",
    POST_LOGOUT_URI + "?",
    POST_LOGOUT_URI + "/",
    POST_LOGOUT_URI + "#x",
    POST_LOGOUT_URI.upper(),
    "https://rp.example.com:443/logged-out",
    "https://rp.example.com/x/../logged-out",
    "http://rp.example.com/logged-out",
    "https://rp.example.com@evil.example/logged-out",
    "javascript:alert(1)",
], ids=["unregistered", "added-query", "empty-query", "trailing-slash", "fragment", "case",
        "explicit-port", "dot-segments", "http", "userinfo-trick", "javascript"])
@pytest.mark.parametrize("proof", ["hint", "client_id", "hint-and-client_id"])
def test_rp_initiated_logout_3_post_logout_redirect_uri_not_registered(
        op: Any, hint: str, uri: str, proof: str) -> None:
    request = end_session(op, post_logout_redirect_uri=uri, state="s1",
                          id_token_hint=hint if "hint" in proof else None,
                          client_id=CLIENT_ID if "client_id" in proof else None)
    assert_no_redirect(op, request)


def test_rp_initiated_logout_3_other_clients_post_logout_redirect_uri(op: Any,
                                                                       hint: str) -> None:
    # registered, but for client2, while the hint proves client1
    request = end_session(op, id_token_hint=hint,
                          post_logout_redirect_uri=CLIENT_B_POST_LOGOUT_URI)
    assert_no_redirect(op, request)


@pytest.mark.parametrize("client_id,uri,redirects", [
    (CLIENT_ID, POST_LOGOUT_URI, True),
    (CLIENT_B_ID, CLIENT_B_POST_LOGOUT_URI, True),
    (CLIENT_ID, CLIENT_B_POST_LOGOUT_URI, False),
    ("unknown-client", POST_LOGOUT_URI, False),
    (CLIENT_ID.upper(), POST_LOGOUT_URI, False),
], ids=["own-uri", "other-client-own-uri", "other-clients-uri", "unknown-client",
        "client-id-case"])
def test_rp_initiated_logout_3_client_id_without_hint(op: Any, client_id: str, uri: str,
                                                      redirects: bool) -> None:
    """Without a hint, a registered URI of the named client is a candidate: redirected to
    only once the end-user confirmed it (the host's confirmation page)."""
    request = end_session(op, client_id=client_id, post_logout_redirect_uri=uri, state="s")
    if redirects:
        assert op.do_post_logout_redirect(request) is None
        assert op.post_logout_redirect_client(request) == client_id
        assert_redirects_to(op, request, uri, "s", confirmed=True)
    else:
        assert_no_redirect(op, request)


@pytest.mark.parametrize("uri,client_id", [(POST_LOGOUT_URI, CLIENT_ID),
                                           (CLIENT_B_POST_LOGOUT_URI, CLIENT_B_ID)],
                         ids=["client1", "client2"])
def test_rp_initiated_logout_3_no_redirect_without_hint_unless_confirmed(
        op: Any, uri: str, client_id: str) -> None:
    """RP-Initiated Logout 1.0, 3: without an id_token_hint the OP must not redirect unless
    it confirmed the target otherwise. Anyone may name a client (open registration: one of
    their own) and its registered URI: redirecting at once is an open redirector."""
    request = end_session(op, client_id=client_id, post_logout_redirect_uri=uri, state="s")
    assert op.do_post_logout_redirect(request) is None
    assert op.do_post_logout_redirect(request, confirmed=False) is None
    assert op.post_logout_redirect_client(request) == client_id


def test_rp_initiated_logout_3_self_registered_client_is_no_open_redirector(op: Any) -> None:
    """The attack: register a client with an attacker's post_logout_redirect_uri, then link
    victims to the OP's logout endpoint naming it."""
    registered = op.handle_client_registration_request(
        '{"redirect_uris": ["https://evil.example/cb"], '
        '"post_logout_redirect_uris": ["https://evil.example/phish"]}')
    request = end_session(op, client_id=registered["client_id"],
                          post_logout_redirect_uri="https://evil.example/phish")
    assert op.do_post_logout_redirect(request) is None
    # what a host may show the end-user before a confirmed return
    assert op.post_logout_redirect_client(request) == registered["client_id"]
    assert op.do_post_logout_redirect(request, confirmed=True) == "https://evil.example/phish"


def test_rp_initiated_logout_3_hint_redirects_without_confirmation(op: Any, hint: str) -> None:
    request = end_session(op, id_token_hint=hint, post_logout_redirect_uri=POST_LOGOUT_URI)
    assert op.post_logout_redirect_client(request) == CLIENT_ID
    assert_redirects_to(op, request, POST_LOGOUT_URI, None)


@pytest.mark.parametrize("uri", [POST_LOGOUT_URI, CLIENT_B_POST_LOGOUT_URI])
def test_rp_initiated_logout_3_no_hint_and_no_client_id(op: Any, uri: str) -> None:
    request = end_session(op, post_logout_redirect_uri=uri, state="s1")
    assert_no_redirect(op, request)


def test_rp_initiated_logout_3_no_post_logout_redirect_uri(op: Any, hint: str) -> None:
    assert_no_redirect(op, end_session(op, id_token_hint=hint, client_id=CLIENT_ID))


# -- forged id_token_hint (RP-Initiated Logout 1.0, 2; RFC 8725 3.1) ---------------------------

def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return b64_json(header) + "." + b64_json(claims)


def _our_public_key(op: Any) -> VerificationKey:
    return VerificationKey.from_jwk(op.jwks["keys"][0])


def forge_alg_none(op: Any, genuine: str, foreign: Any) -> str:
    return _signing_input({"alg": "none", "typ": "JWT"}, unverified_claims(genuine)) + "."


def forge_alg_none_uppercase(op: Any, genuine: str, foreign: Any) -> str:
    return _signing_input({"alg": "NONE"}, unverified_claims(genuine)) + "."


def forge_alg_none_keeping_signature(op: Any, genuine: str, foreign: Any) -> str:
    kid = our_kid(op)
    return (_signing_input({"alg": "none", "kid": kid}, unverified_claims(genuine)) + "."
            + genuine.split(".")[2])


def forge_foreign_key(op: Any, genuine: str, foreign: Any) -> str:
    return jws_sign(unverified_claims(genuine), SigningKey(foreign), {"typ": "JWT"})


def our_kid(op: Any) -> str:
    """The kid that names our key: its own, or, for a key published without one, the RFC
    7638 thumbprint it also answers to (what earlier releases published as its kid)."""
    jwk = op.jwks["keys"][0]
    return str(jwk.get("kid") or jwk_thumbprint(jwk))


def forge_foreign_key_with_our_kid(op: Any, genuine: str, foreign: Any) -> str:
    kid = our_kid(op)
    return jws_sign(unverified_claims(genuine), SigningKey(foreign, kid=kid), {"typ": "JWT"})


def forge_foreign_key_embedded_jwk(op: Any, genuine: str, foreign: Any) -> str:
    key = SigningKey(foreign)
    return jws_sign(unverified_claims(genuine), key, {"jwk": key.to_jwk(),
                                                      "jku": "https://evil.example/jwks"})


def _hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = _signing_input(header, claims)
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url_encode(mac)


def forge_hs256_with_public_key_pem(op: Any, genuine: str, foreign: Any) -> str:
    pem = _our_public_key(op).public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": our_kid(op)}
    return _hs256(pem, header, unverified_claims(genuine))


def forge_hs256_with_public_key_der(op: Any, genuine: str, foreign: Any) -> str:
    der = _our_public_key(op).public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _hs256(der, {"alg": "HS256"}, unverified_claims(genuine))


def forge_es256_claiming_our_kid(op: Any, genuine: str, foreign: Any) -> str:
    header = {"alg": "ES256", "kid": our_kid(op)}
    return _signing_input(header, unverified_claims(genuine)) + "." + b64url_encode(b"\x01" * 64)


def forge_tampered_payload(op: Any, genuine: str, foreign: Any) -> str:
    header, _, signature = genuine.split(".")
    claims = unverified_claims(genuine)
    claims["aud"] = CLIENT_B_ID
    return header + "." + b64_json(claims) + "." + signature


def forge_empty_signature(op: Any, genuine: str, foreign: Any) -> str:
    return genuine.rsplit(".", 1)[0] + "."


def forge_truncated_signature(op: Any, genuine: str, foreign: Any) -> str:
    return genuine[:-4]


def forge_signed_by_us_other_issuer(op: Any, genuine: str, foreign: Any) -> str:
    # a JWS of ours that is not an ID token of this issuer (e.g. an older deployment)
    claims = dict(unverified_claims(genuine), iss="https://evil.example")
    return jws_sign(claims, op._signing_key)


FORGERIES: dict[str, Callable[[Any, str, Any], str]] = {
    "garbage": lambda op, genuine, foreign: "not-a-jwt",
    "three-garbage-parts": lambda op, genuine, foreign: "a.b.c",
    "empty-parts": lambda op, genuine, foreign: "..",
    "five-parts-jwe-shaped": lambda op, genuine, foreign: genuine + ".x.y",
    "unicode": lambda op, genuine, foreign: "\u2603.\u2603.\u2603",
    "header-not-json": lambda op, genuine, foreign: b64url_encode(b"{") + "." + genuine.split(
        ".", 1)[1],
    "payload-a-list": lambda op, genuine, foreign: b64_json({"alg": "none"}) + "." + b64_json(
        [1]) + ".",
    "one-megabyte": lambda op, genuine, foreign: "a" * (1 << 20) + ".b.c",
    "alg-none": forge_alg_none,
    "alg-none-uppercase": forge_alg_none_uppercase,
    "alg-none-keeping-signature": forge_alg_none_keeping_signature,
    "foreign-key": forge_foreign_key,
    "foreign-key-with-our-kid": forge_foreign_key_with_our_kid,
    "foreign-key-embedded-jwk-and-jku": forge_foreign_key_embedded_jwk,
    "hs256-with-public-key-pem": forge_hs256_with_public_key_pem,
    "hs256-with-public-key-der": forge_hs256_with_public_key_der,
    "es256-claiming-our-kid": forge_es256_claiming_our_kid,
    "tampered-payload": forge_tampered_payload,
    "empty-signature": forge_empty_signature,
    "truncated-signature": forge_truncated_signature,
    "signed-by-us-other-issuer": forge_signed_by_us_other_issuer,
}


@pytest.mark.parametrize("forge", list(FORGERIES.values()), ids=list(FORGERIES))
def test_rp_initiated_logout_2_forged_id_token_hint(op: Any, hint: str, foreign_rsa_key: Any,
                                                    forge: Any) -> None:
    forged = forge(op, hint, foreign_rsa_key)
    sub = unverified_claims(hint)["sub"]
    # built directly, as a host may do, so that oversized hints reach the verification too
    request = EndSessionRequest(id_token_hint=forged, post_logout_redirect_uri=POST_LOGOUT_URI,
                                state="s")
    assert_no_redirect(op, request)
    # with client_id too: the registered URI of client1 must still not be used
    request_with_client = EndSessionRequest(id_token_hint=forged, client_id=CLIENT_ID,
                                            post_logout_redirect_uri=POST_LOGOUT_URI)
    assert_no_redirect(op, request_with_client)
    with pytest.raises(InvalidEndSessionRequest) as info:
        op.logout_user(end_session_request=request)
    assert info.value.http_status == 400
    with pytest.raises(InvalidEndSessionRequest):
        op.logout_user(sub, request)
    # nothing was logged out
    assert op.authz_state.get_user_id_for_subject_identifier(sub) == USER_ID


@pytest.mark.parametrize("seconds", [3601, 86400 * 365])
def test_rp_initiated_logout_2_expired_genuine_hint_accepted(op: Any, clock: Any, hint: str,
                                                             seconds: int) -> None:
    clock.advance(seconds)
    assert unverified_claims(hint)["exp"] < clock()
    request = end_session(op, id_token_hint=hint, post_logout_redirect_uri=POST_LOGOUT_URI,
                          state="s1")
    assert_redirects_to(op, request, POST_LOGOUT_URI, "s1")
    tokens = full_code_flow(op)  # a later login of the hint's subject
    assert tokens["id_token"] and unverified_claims(tokens["id_token"])["sub"] == \
        unverified_claims(hint)["sub"]
    op.logout_user(end_session_request=request)
    with pytest.raises(InvalidAccessToken):  # the subject's grants are revoked
        op.handle_userinfo_request(None, bearer(tokens["access_token"]))


def test_rp_initiated_logout_2_genuine_hint_logs_out_its_subject(op: Any, hint: str) -> None:
    sub = unverified_claims(hint)["sub"]
    assert unverified_claims(hint)["iss"] == ISSUER
    code = issue_code(op)
    op.logout_user(end_session_request=end_session(op, id_token_hint=hint))
    with pytest.raises(InvalidAuthorizationCode):  # issued before the logout: refused
        redeem(op, code)
    # the sub -> user mapping stays, as in pyop 3
    assert op.authz_state.get_user_id_for_subject_identifier(sub) == USER_ID


# -- client_id versus aud (RP-Initiated Logout 1.0, 2) -----------------------------------------

@pytest.mark.parametrize("uri", [CLIENT_B_POST_LOGOUT_URI, POST_LOGOUT_URI])
def test_rp_initiated_logout_2_client_id_differs_from_aud(op: Any, hint: str, uri: str) -> None:
    request = end_session(op, id_token_hint=hint, client_id=CLIENT_B_ID,
                          post_logout_redirect_uri=uri)
    with pytest.raises(InvalidEndSessionRequest) as info:
        op.logout_user(end_session_request=request)
    assert info.value.http_status == 400
    assert info.value.redirectable is False
    assert_no_redirect(op, request)
    # nothing was logged out
    sub = unverified_claims(hint)["sub"]
    assert op.authz_state.get_user_id_for_subject_identifier(sub) == USER_ID


def test_rp_initiated_logout_2_client_id_equal_to_aud_accepted(op: Any, hint: str) -> None:
    request = end_session(op, id_token_hint=hint, client_id=CLIENT_ID,
                          post_logout_redirect_uri=POST_LOGOUT_URI)
    assert_redirects_to(op, request, POST_LOGOUT_URI, None)
    op.logout_user(end_session_request=request)


# -- preamble: only typed errors ---------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "id_token_hint=a&id_token_hint=b",
    "post_logout_redirect_uri=" + POST_LOGOUT_URI + "&post_logout_redirect_uri=" + POST_LOGOUT_URI,
    "client_id=a&client_id=a",
    b"state=\xff",
    "state=%FF",
    "state=a%00b",
    "x=" + "a" * (1 << 20),
    12345,
    {"state": 5},
], ids=["repeated-hint", "repeated-uri", "repeated-client-id", "invalid-utf8",
        "invalid-utf8-percent", "nul", "1mb", "integer", "mapping-integer"])
def test_security_md_garbage_end_session_requests_raise_typed_errors(op: Any,
                                                                      body: Any) -> None:
    with pytest.raises(InvalidEndSessionRequest) as info:
        op.parse_end_session_request(body)
    assert info.value.http_status == 400


# -- the hint and the current session (RP-Initiated Logout 1.0, 2) -----------------------------

def test_rp_initiated_logout_2_hint_of_the_sessions_user_matches(op: Any, hint: str) -> None:
    assert op.id_token_hint_matches(end_session(op, id_token_hint=hint), USER_ID) is True


@pytest.mark.parametrize("user_id", ["bob", None, ""], ids=["other-user", "no-user",
                                                            "empty-user-id"])
def test_rp_initiated_logout_2_hint_of_another_session_does_not_match(
        op: Any, hint: str, user_id: Optional[str]) -> None:
    """An ID token of an earlier, unrelated session (another user, or nobody logged in):
    the OP must ask the end-user before logging out (RP-Initiated Logout 1.0, 2)."""
    assert op.id_token_hint_matches(end_session(op, id_token_hint=hint), user_id) is False


def test_rp_initiated_logout_2_no_hint_does_not_match(op: Any) -> None:
    request = end_session(op, client_id=CLIENT_ID, post_logout_redirect_uri=POST_LOGOUT_URI)
    assert op.id_token_hint_matches(request, USER_ID) is False


@pytest.mark.parametrize("forge", [FORGERIES["alg-none"], FORGERIES["foreign-key-with-our-kid"],
                                   FORGERIES["tampered-payload"]],
                         ids=["alg-none", "foreign-key-with-our-kid", "tampered-payload"])
def test_rp_initiated_logout_2_forged_hint_never_matches(op: Any, hint: str,
                                                         foreign_rsa_key: Any,
                                                         forge: Any) -> None:
    request = EndSessionRequest(id_token_hint=forge(op, hint, foreign_rsa_key))
    with pytest.raises(InvalidEndSessionRequest):
        op.id_token_hint_matches(request, USER_ID)


def test_rp_initiated_logout_2_hint_with_other_client_id_refused(op: Any, hint: str) -> None:
    request = end_session(op, id_token_hint=hint, client_id=CLIENT_B_ID)
    with pytest.raises(InvalidEndSessionRequest):
        op.id_token_hint_matches(request, USER_ID)


@pytest.mark.parametrize("sector_from", ["request", "registration"])
def test_oidc_core_8_1_pairwise_hint_matches_its_user(make_op: Any, sector_from: str) -> None:
    """The hint's sub is compared with the sub issued to the hint's client for the user
    (pairwise here: not the user id, and not the sub other clients see)."""
    clients = security_clients()
    clients[CLIENT_ID]["subject_type"] = "pairwise"
    provider = make_op(client_db=clients, pairwise_sector_from=sector_from)
    pairwise_hint = str(authorize(provider, response_type="id_token")["id_token"])
    public_hint = str(authorize(provider, CLIENT_B_ID, response_type="id_token")["id_token"])
    assert unverified_claims(pairwise_hint)["sub"] != unverified_claims(public_hint)["sub"]
    for token in (pairwise_hint, public_hint):
        request = end_session(provider, id_token_hint=token)
        assert provider.id_token_hint_matches(request, USER_ID) is True
        assert provider.id_token_hint_matches(request, "bob") is False


@pytest.mark.parametrize("subject_type", ["public", "pairwise"])
def test_oidc_core_8_hint_matches_when_its_sub_is_not_recorded(make_op: Any,
                                                               subject_type: str) -> None:
    """A sub the subject identifier store does not know (a sealed store knows only those
    this process made): computed for the hint's client and the user instead."""
    clients = security_clients()
    clients[CLIENT_ID]["subject_type"] = subject_type
    clients[CLIENT_ID]["redirect_uris"] = ["https://other.example.com/cb", *
                                           clients[CLIENT_ID]["redirect_uris"]]
    provider = make_op(client_db=clients)
    token = str(authorize(provider, response_type="id_token")["id_token"])
    sub = unverified_claims(token)["sub"]
    provider.authz_state.subject_identifiers.delete(sub)
    with pytest.raises(InvalidSubjectIdentifier):  # unknown to the store now
        provider.authz_state.get_user_id_for_subject_identifier(sub)
    request = end_session(provider, id_token_hint=token)
    assert provider.id_token_hint_matches(request, "bob") is False
    assert provider.id_token_hint_matches(request, USER_ID) is True


def test_bound_hint_subject_computations_per_logout(make_op: Any) -> None:
    """A hint whose sub is not recorded, of a pairwise client with many redirect URI hosts:
    at most MAX_SECTORS_TRIED + 1 subject identifiers are computed (measured by counting)."""
    from pyop.endpoints.end_session import MAX_SECTORS_TRIED

    clients = security_clients()
    clients[CLIENT_ID]["subject_type"] = "pairwise"
    clients[CLIENT_ID]["redirect_uris"] = [
        *clients[CLIENT_ID]["redirect_uris"],
        *(f"https://rp{n}.example.com/cb" for n in range(100))]
    provider = make_op(client_db=clients)
    token = str(authorize(provider, response_type="id_token")["id_token"])
    provider.authz_state.subject_identifiers.delete(unverified_claims(token)["sub"])
    factory = provider.authz_state.subject_identifier_factory
    calls = []
    original = factory.create_pairwise_identifier

    def counting(user_id: str, sector: str) -> str:
        calls.append(sector)
        return str(original(user_id, sector))

    factory.create_pairwise_identifier = counting  # type: ignore[method-assign]
    assert provider.id_token_hint_matches(end_session(provider, id_token_hint=token),
                                          "bob") is False
    assert 0 < len(calls) <= MAX_SECTORS_TRIED + 1
