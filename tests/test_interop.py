"""Interoperability: a real Relying Party library (Authlib) against a pyop host app.

The OP is the README's host app (``support/readme_app.py``: the README's routes,
verbatim) serving a provider configured for every response type, refresh
tokens and RP-initiated logout, over real HTTP on a loopback port (Werkzeug's
server in a thread; ``http://127.0.0.1`` issuers are allowed for development).

The RP side is Authlib's client: ``OAuth2Session`` builds the authentication
requests (state, nonce, PKCE S256), redeems codes and refresh tokens with
``client_secret_basic``, ``client_secret_post`` or ``none`` and calls the
UserInfo endpoint; ID tokens are verified the way Authlib's own OpenID client
does it (``OpenIDMixin.parse_id_token``): the JWK Set is fetched from the
published ``jwks_uri`` and decoded with Authlib's JOSE implementation
(``joserfc``), then validated by ``authlib.oidc.core``'s ``CodeIDToken`` /
``ImplicitIDToken`` / ``HybridIDToken`` (iss, aud, exp, iat, nonce, at_hash,
c_hash, azp). The end-user's login is simulated by a browser-like
``requests.Session`` posting to the app's "authentication done" route, which
runs the README's ``provider.authorize`` snippet.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken, HybridIDToken, IDToken, ImplicitIDToken
from conftest import OPT_IN_CAPABILITIES
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidClaimError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from support import readme_app_context
from werkzeug.serving import WSGIRequestHandler, make_server

from pyop.authz_state import AuthorizationState
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

USER_ID = "alice"
USERS = {
    USER_ID: {
        "name": "Alice Liddell",
        "given_name": "Alice",
        "family_name": "Liddell",
        "email": "alice@example.com",
        "email_verified": True,
    }
}
ALL_RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token", "code token",
                      "code id_token token"]
SCOPE = "openid profile email"


@dataclass(frozen=True)
class ClientInfo:
    client_id: str
    redirect_uri: str
    auth_method: str
    client_secret: Optional[str] = None


CONFIDENTIAL = ClientInfo("rp-confidential", "https://rp.example.com/callback",
                          "client_secret_basic", "secret-of-the-confidential-rp")
POST_CLIENT = ClientInfo("rp-post", "https://rp-post.example.com/callback",
                         "client_secret_post", "secret-of-the-post-rp")
PUBLIC = ClientInfo("rp-public", "http://127.0.0.1:8765/callback", "none")
LOGGED_OUT_URI = "https://rp.example.com/logged-out"


def clients() -> dict[str, dict[str, Any]]:
    return {
        CONFIDENTIAL.client_id: {
            "client_id": CONFIDENTIAL.client_id,
            "client_secret": CONFIDENTIAL.client_secret,
            "redirect_uris": [CONFIDENTIAL.redirect_uri],
            "response_types": ALL_RESPONSE_TYPES,
            "token_endpoint_auth_method": "client_secret_basic",
            "post_logout_redirect_uris": [LOGGED_OUT_URI],
        },
        POST_CLIENT.client_id: {
            "client_id": POST_CLIENT.client_id,
            "client_secret": POST_CLIENT.client_secret,
            "redirect_uris": [POST_CLIENT.redirect_uri],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        },
        PUBLIC.client_id: {
            "client_id": PUBLIC.client_id,
            "redirect_uris": [PUBLIC.redirect_uri],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        },
    }


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


@dataclass
class OP:
    issuer: str
    module: ModuleType

    @property
    def provider(self) -> Provider:
        provider: Provider = self.module.provider
        return provider


@pytest.fixture(scope="module")
def op(signing_key_pem: str) -> Iterator[OP]:
    """The README's host app with an all-flows provider, served on a loopback port."""
    with readme_app_context(os.path.dirname(signing_key_pem)) as module:
        server = make_server("127.0.0.1", 0, module.app.flask, request_handler=_QuietHandler)
        issuer = f"http://127.0.0.1:{server.server_port}"
        configuration = {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorization",
            "token_endpoint": issuer + "/token",
            "userinfo_endpoint": issuer + "/userinfo",
            "registration_endpoint": issuer + "/registration",
            "end_session_endpoint": issuer + "/logout",
            "response_types_supported": ALL_RESPONSE_TYPES,
            "subject_types_supported": ["public", "pairwise"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            # beyond pyop 3's defaults: offered when configured
            "grant_types_supported": ["authorization_code", "implicit", "refresh_token"],
            **OPT_IN_CAPABILITIES,
        }
        authz_state = AuthorizationState(HashBasedSubjectIdentifierFactory("interop salt"),
                                         refresh_token_lifetime=3600)
        # the README's routes look `provider` up at call time: serve this one
        module.provider = Provider(module.signing_key, configuration, authz_state, clients(),
                                   Userinfo(USERS))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield OP(issuer, module)
        finally:
            server.shutdown()
            thread.join(5)
            server.server_close()


class RelyingParty:
    """An OpenID Connect RP made of Authlib's client pieces."""

    def __init__(self, op: OP, client: ClientInfo, scope: str = SCOPE) -> None:
        self.client = client
        self.session = OAuth2Session(
            client.client_id, client.client_secret, scope=scope,
            redirect_uri=client.redirect_uri, token_endpoint_auth_method=client.auth_method,
            code_challenge_method="S256")
        response = self.session.get(op.issuer + "/.well-known/openid-configuration",
                                    withhold_token=True, timeout=5)
        response.raise_for_status()
        self.metadata: dict[str, Any] = response.json()
        # OIDC Discovery 4.3: the issuer must be the URL the metadata was fetched from
        assert self.metadata["issuer"] == op.issuer
        self.issuer = op.issuer

    def key_set(self) -> KeySet:
        response = self.session.get(self.metadata["jwks_uri"], withhold_token=True, timeout=5)
        response.raise_for_status()
        return KeySet.import_key_set(response.json())

    def authorization_url(self, response_type: str = "code", **kwargs: Any) -> tuple[str, str]:
        url, state = self.session.create_authorization_url(
            self.metadata["authorization_endpoint"], response_type=response_type, **kwargs)
        return str(url), str(state)

    def validate_id_token(self, id_token: str, claims_cls: type[IDToken], nonce: str,
                          **params: str) -> IDToken:
        """Verify the signature with the published JWKS, then the claims, with Authlib."""
        token = jwt.decode(id_token, key=self.key_set(), registry=JWSRegistry(
            algorithms=self.metadata["id_token_signing_alg_values_supported"],
            strict_check_header=False))
        claims = claims_cls(
            token.claims, token.header,
            {"iss": {"essential": True, "values": [self.issuer]},
             "aud": {"essential": True, "values": [self.client.client_id]}},
            {"nonce": nonce, "client_id": self.client.client_id, **params})
        claims.validate(leeway=0)
        return claims

    def fetch_token(self, **kwargs: Any) -> dict[str, Any]:
        token: dict[str, Any] = self.session.fetch_token(self.metadata["token_endpoint"],
                                                         timeout=5, **kwargs)
        return token

    def userinfo(self) -> dict[str, Any]:
        response = self.session.get(self.metadata["userinfo_endpoint"], timeout=5)
        response.raise_for_status()
        userinfo: dict[str, Any] = response.json()
        return userinfo


def authenticate(op: OP, authorization_url: str) -> str:
    """The user agent: the authentication request, the end-user logs in; the redirect URL."""
    browser = requests.Session()
    response = browser.get(authorization_url, allow_redirects=False, timeout=5)
    assert response.status_code == 200, response.text
    response = browser.post(op.issuer + "/authentication-done", data={"user_id": USER_ID},
                            allow_redirects=False, timeout=5)
    assert response.status_code == 303, response.text
    return response.headers["Location"]


def split_redirect(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    parts = urlsplit(url)
    return (f"{parts.scheme}://{parts.netloc}{parts.path}", dict(parse_qsl(parts.query)),
            dict(parse_qsl(parts.fragment)))


def public_sub(op: OP) -> str:
    return op.provider.authz_state.get_subject_identifier("public", USER_ID)


def check_standard_claims(claims: IDToken, op: OP, rp: RelyingParty, nonce: str) -> None:
    assert claims["iss"] == op.issuer
    assert claims["aud"] == [rp.client.client_id]  # pyop 3's form, validated by Authlib
    assert claims["sub"] == public_sub(op)
    assert claims["nonce"] == nonce
    assert claims["exp"] - claims["iat"] == 3600


def code_flow(op: OP, rp: RelyingParty, *, pkce: bool) -> tuple[dict[str, Any], str]:
    """A complete code flow; returns the token response and the nonce."""
    nonce = generate_token(24)
    verifier = generate_token(64) if pkce else None
    url, state = rp.authorization_url(nonce=nonce, code_verifier=verifier)
    query = dict(parse_qsl(urlsplit(url).query))
    if pkce:
        assert verifier is not None
        assert query["code_challenge"] == create_s256_code_challenge(verifier)
        assert query["code_challenge_method"] == "S256"
    callback = authenticate(op, url)
    base, params, fragment = split_redirect(callback)
    assert base == rp.client.redirect_uri
    assert fragment == {}
    assert set(params) == {"code", "state", "iss"}
    assert params["iss"] == op.issuer  # RFC 9207
    extra = {"code_verifier": verifier} if pkce else {}
    token = rp.fetch_token(authorization_response=callback, state=state, **extra)
    return token, nonce


# -- discovery ------------------------------------------------------------------------------


def test_discovery_and_jwks(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    metadata = rp.metadata
    assert metadata["jwks_uri"] == op.issuer + "/jwks"
    assert metadata["end_session_endpoint"] == op.issuer + "/logout"
    assert sorted(metadata["response_types_supported"]) == sorted(ALL_RESPONSE_TYPES)
    assert metadata["grant_types_supported"] == ["authorization_code", "implicit",
                                                 "refresh_token"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    key_set = rp.key_set()
    assert len(key_set.keys) == 1
    (key,) = key_set.keys
    assert key.key_type == "RSA"
    assert key.is_private is False


# -- authorization code flow ----------------------------------------------------------------


def test_code_flow_public_client_with_pkce(op: OP) -> None:
    rp = RelyingParty(op, PUBLIC)
    token, nonce = code_flow(op, rp, pkce=True)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == SCOPE
    claims = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                  access_token=token["access_token"])
    check_standard_claims(claims, op, rp, nonce)
    assert "at_hash" in claims
    assert rp.userinfo() == {"sub": public_sub(op), **USERS[USER_ID]}


def test_code_flow_confidential_client_basic_auth_with_pkce(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    token, nonce = code_flow(op, rp, pkce=True)
    claims = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                  access_token=token["access_token"])
    check_standard_claims(claims, op, rp, nonce)
    assert token["refresh_token"]
    assert rp.userinfo()["email"] == "alice@example.com"


def test_code_flow_client_secret_post(op: OP) -> None:
    rp = RelyingParty(op, POST_CLIENT)
    token, nonce = code_flow(op, rp, pkce=False)
    claims = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                  access_token=token["access_token"])
    check_standard_claims(claims, op, rp, nonce)
    assert rp.userinfo()["sub"] == claims["sub"]


def test_code_flow_with_max_age_has_auth_time(op: OP) -> None:
    # OIDC Core 3.1.2.1: with max_age the ID token MUST contain auth_time; Authlib's
    # IDToken.validate_auth_time enforces it (claims_params max_age).
    rp = RelyingParty(op, CONFIDENTIAL)
    nonce = generate_token(24)
    url, state = rp.authorization_url(nonce=nonce, max_age=600)
    token = rp.fetch_token(authorization_response=authenticate(op, url), state=state)
    claims = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                  access_token=token["access_token"], max_age="600")
    check_standard_claims(claims, op, rp, nonce)
    assert isinstance(claims["auth_time"], int)


def test_pkce_wrong_verifier_is_invalid_grant(op: OP) -> None:
    rp = RelyingParty(op, PUBLIC)
    url, state = rp.authorization_url(nonce="n", code_verifier=generate_token(64))
    callback = authenticate(op, url)
    with pytest.raises(OAuthError) as error:
        rp.fetch_token(authorization_response=callback, state=state,
                       code_verifier=generate_token(64))
    assert error.value.error == "invalid_grant"


def test_public_client_without_pkce_is_refused(op: OP) -> None:
    rp = RelyingParty(op, PUBLIC)
    url, state = rp.authorization_url(nonce="n")
    response = requests.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 303
    base, query, fragment = split_redirect(response.headers["Location"])
    assert base == PUBLIC.redirect_uri
    assert query["error"] == "invalid_request"
    assert query["state"] == state


def test_wrong_client_secret_is_invalid_client(op: OP) -> None:
    rp = RelyingParty(op, ClientInfo(CONFIDENTIAL.client_id, CONFIDENTIAL.redirect_uri,
                                     "client_secret_basic", "not-the-secret"))
    url, state = rp.authorization_url(nonce="n")
    callback = authenticate(op, url)
    with pytest.raises(OAuthError) as error:
        rp.fetch_token(authorization_response=callback, state=state)
    assert error.value.error == "invalid_client"


# -- hybrid flows ---------------------------------------------------------------------------


def hybrid_front_channel(op: OP, rp: RelyingParty, response_type: str
                         ) -> tuple[dict[str, str], str]:
    nonce = generate_token(24)
    url, state = rp.authorization_url(response_type=response_type, nonce=nonce)
    base, query, fragment = split_redirect(authenticate(op, url))
    assert base == rp.client.redirect_uri
    assert query == {}  # OIDC Core 3.3.2.5: fragment-encoded
    assert fragment["state"] == state
    assert fragment["iss"] == op.issuer
    return fragment, nonce


def test_hybrid_code_id_token(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    fragment, nonce = hybrid_front_channel(op, rp, "code id_token")
    assert set(fragment) == {"code", "id_token", "state", "iss"}
    front = rp.validate_id_token(fragment["id_token"], HybridIDToken, nonce,
                                 code=fragment["code"])
    check_standard_claims(front, op, rp, nonce)
    assert "c_hash" in front and "at_hash" not in front

    token = rp.fetch_token(code=fragment["code"], grant_type="authorization_code")
    back = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                access_token=token["access_token"])
    # OIDC Core 3.3.3.6: both ID tokens have the same iss and sub
    assert (back["iss"], back["sub"]) == (front["iss"], front["sub"])
    assert rp.userinfo()["sub"] == front["sub"]


def test_hybrid_code_token(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    fragment, nonce = hybrid_front_channel(op, rp, "code token")
    assert set(fragment) == {"code", "access_token", "token_type", "expires_in", "state", "iss"}
    assert fragment["token_type"] == "Bearer"
    rp.session.token = {"access_token": fragment["access_token"], "token_type": "Bearer"}
    assert rp.userinfo()["sub"] == public_sub(op)

    token = rp.fetch_token(code=fragment["code"], grant_type="authorization_code")
    claims = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                  access_token=token["access_token"])
    check_standard_claims(claims, op, rp, nonce)
    assert token["access_token"] != fragment["access_token"]


def test_hybrid_code_id_token_token(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    fragment, nonce = hybrid_front_channel(op, rp, "code id_token token")
    assert set(fragment) == {"code", "id_token", "access_token", "token_type", "expires_in",
                             "state", "iss"}
    front = rp.validate_id_token(fragment["id_token"], HybridIDToken, nonce,
                                 code=fragment["code"], access_token=fragment["access_token"])
    check_standard_claims(front, op, rp, nonce)
    assert "c_hash" in front and "at_hash" in front

    token = rp.fetch_token(code=fragment["code"], grant_type="authorization_code")
    back = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                access_token=token["access_token"])
    assert (back["iss"], back["sub"]) == (front["iss"], front["sub"])


# -- implicit flows -------------------------------------------------------------------------


def test_implicit_id_token(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    nonce = generate_token(24)
    url, state = rp.authorization_url(response_type="id_token", nonce=nonce)
    base, query, fragment = split_redirect(authenticate(op, url))
    assert base == CONFIDENTIAL.redirect_uri
    assert query == {}
    assert set(fragment) == {"id_token", "state", "iss"}
    assert fragment["state"] == state
    claims = rp.validate_id_token(fragment["id_token"], ImplicitIDToken, nonce)
    check_standard_claims(claims, op, rp, nonce)
    assert "at_hash" not in claims and "c_hash" not in claims
    # no access token: the scope's claims are in the ID token (OIDC Core 5.4)
    for name, value in USERS[USER_ID].items():
        assert claims[name] == value


def test_implicit_id_token_token(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    nonce = generate_token(24)
    url, state = rp.authorization_url(response_type="id_token token", nonce=nonce)
    callback = authenticate(op, url)
    token = rp.session.fetch_token(authorization_response=callback, state=state)  # fragment
    assert token["token_type"] == "Bearer"
    assert int(token["expires_in"]) == 3600
    claims = rp.validate_id_token(token["id_token"], ImplicitIDToken, nonce,
                                  access_token=token["access_token"])
    check_standard_claims(claims, op, rp, nonce)
    assert "at_hash" in claims
    assert rp.userinfo() == {"sub": public_sub(op), **USERS[USER_ID]}


def test_implicit_without_nonce_is_refused(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    url, state = rp.authorization_url(response_type="id_token token")
    response = requests.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 303
    base, query, fragment = split_redirect(response.headers["Location"])
    assert base == CONFIDENTIAL.redirect_uri
    assert query == {}
    assert fragment["error"] == "invalid_request"
    assert fragment["state"] == state


# -- Authlib's checks are live --------------------------------------------------------------


def test_authlib_rejects_a_tampered_id_token_and_a_wrong_nonce(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    token, nonce = code_flow(op, rp, pkce=False)
    id_token = token["id_token"]
    header, payload, signature = id_token.split(".")
    claims = json.loads(jwt_segment(payload))
    claims["sub"] = "mallory"
    forged = ".".join([header, encode_segment(json.dumps(claims)), signature])
    with pytest.raises(BadSignatureError):
        rp.validate_id_token(forged, CodeIDToken, nonce)
    with pytest.raises(InvalidClaimError):
        rp.validate_id_token(id_token, CodeIDToken, "another nonce")
    with pytest.raises(InvalidClaimError):
        rp.validate_id_token(id_token, CodeIDToken, nonce, access_token="another token")
    with pytest.raises(MissingClaimError):  # a code-flow ID token has no c_hash
        rp.validate_id_token(id_token, HybridIDToken, nonce, code="a code")


def jwt_segment(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def encode_segment(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- refresh tokens -------------------------------------------------------------------------


def test_refresh_token_grant(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    token, _ = code_flow(op, rp, pkce=False)
    refreshed = rp.session.refresh_token(rp.metadata["token_endpoint"],
                                         refresh_token=token["refresh_token"], timeout=5)
    assert refreshed["token_type"] == "Bearer"
    assert refreshed["expires_in"] == 3600
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["scope"] == SCOPE
    assert "id_token" not in refreshed
    assert rp.userinfo() == {"sub": public_sub(op), **USERS[USER_ID]}
    # a narrower scope may be requested (RFC 6749 6), a wider one may not
    narrowed = rp.session.refresh_token(rp.metadata["token_endpoint"],
                                        refresh_token=token["refresh_token"],
                                        scope="openid email", timeout=5)
    assert narrowed["scope"] == "openid email"
    assert rp.userinfo() == {"sub": public_sub(op), "email": "alice@example.com",
                             "email_verified": True}
    with pytest.raises(OAuthError) as error:
        rp.session.refresh_token(rp.metadata["token_endpoint"],
                                 refresh_token=token["refresh_token"],
                                 scope="openid profile email phone", timeout=5)
    assert error.value.error == "invalid_scope"


def test_refresh_token_of_another_client_is_invalid_grant(op: OP) -> None:
    token, _ = code_flow(op, RelyingParty(op, CONFIDENTIAL), pkce=False)
    other = RelyingParty(op, POST_CLIENT)
    with pytest.raises(OAuthError) as error:
        other.session.refresh_token(other.metadata["token_endpoint"],
                                    refresh_token=token["refresh_token"], timeout=5)
    assert error.value.error == "invalid_grant"


# -- dynamic registration, then a flow with the issued credentials ---------------------------


def test_dynamic_registration_then_code_flow(op: OP) -> None:
    redirect_uri = "https://registered-rp.example.com/cb"
    response = requests.post(op.issuer + "/registration", timeout=5, data=json.dumps({
        "redirect_uris": [redirect_uri], "response_types": ["code"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_post"}))
    assert response.status_code == 201, response.text
    registered = response.json()
    assert registered["token_endpoint_auth_method"] == "client_secret_post"
    rp = RelyingParty(op, ClientInfo(registered["client_id"], redirect_uri,
                                     "client_secret_post", registered["client_secret"]))
    token, nonce = code_flow(op, rp, pkce=True)
    claims = rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                                  access_token=token["access_token"])
    assert claims["aud"] == [registered["client_id"]]
    refreshed = rp.session.refresh_token(rp.metadata["token_endpoint"],
                                         refresh_token=token["refresh_token"], timeout=5)
    assert refreshed["access_token"]


# -- RP-initiated logout --------------------------------------------------------------------


def test_rp_initiated_logout_with_id_token_hint(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    token, nonce = code_flow(op, rp, pkce=False)
    rp.validate_id_token(token["id_token"], CodeIDToken, nonce,
                         access_token=token["access_token"])
    state = generate_token(16)
    logout_url = add_params_to_uri(rp.metadata["end_session_endpoint"], [
        ("id_token_hint", token["id_token"]), ("post_logout_redirect_uri", LOGGED_OUT_URI),
        ("state", state)])
    response = requests.get(logout_url, allow_redirects=False, timeout=5)
    assert response.status_code == 303
    assert response.headers["Location"] == f"{LOGGED_OUT_URI}?state={state}"


def test_rp_initiated_logout_to_an_unregistered_uri_does_not_redirect(op: OP) -> None:
    rp = RelyingParty(op, CONFIDENTIAL)
    token, _ = code_flow(op, rp, pkce=False)
    logout_url = add_params_to_uri(rp.metadata["end_session_endpoint"], [
        ("id_token_hint", token["id_token"]),
        ("post_logout_redirect_uri", "https://attacker.example.com/"), ("state", "s")])
    response = requests.get(logout_url, allow_redirects=False, timeout=5)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert response.text == "Logout successful!"
