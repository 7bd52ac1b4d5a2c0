"""JWT Secured Authorization Response Mode for OAuth 2.0 (JARM, OpenID Foundation final):
sections 2 (the response JWT, its signing and encoding), 3 (authorization server
metadata) and 4 (client metadata), with the attacks the response JWT must stop.

Every response JWT is verified with joserfc against the provider's published JWK Set,
as a client would, never with pyop's own code.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, ISSUER, REDIRECT_URI, USER_ID, FakeClock
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError

from fapi.signing_support import (
    NOW,
    OP_EC_KEY,
    OTHER_CLIENT_ID,
    OTHER_REDIRECT_URI,
    authorization_query,
    fapi_clients,
    fapi_configuration,
    hidden_fields,
    make_fapi_provider,
    request_object_claims,
    sign_request_object,
    url_parameters,
    verify_jarm,
)
from pyop.crypto import SigningKey
from pyop.exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidRedirectURI,
    ReauthenticationRequired,
    UnauthorizedClient,
)
from pyop.provider import Provider
from pyop.response_mode import JARM_RESPONSE_MODES
from pyop.util import render_form_post, should_form_post, should_fragment_encode


@pytest.fixture
def op(build: Callable[..., Provider]) -> Provider:
    return build()


def send(op: Provider, request: Any, response: Any) -> str:
    """The redirect URL the host sends, by the helpers it uses for every response mode."""
    assert not should_form_post(request)
    return str(response.request(request["redirect_uri"], should_fragment_encode(request)))


def jarm_flow(op: Provider, **parameters: Any) -> tuple[Any, Any]:
    request = op.parse_authentication_request(authorization_query(**parameters))
    return request, op.authorize(request, USER_ID)


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": "Basic " + raw}


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# -- JARM 3: authorization server metadata (opt-in) --------------------------------------------


def test_jarm_3_not_advertised_by_default(make_provider: Callable[..., Provider]) -> None:
    document = make_provider().provider_configuration.to_dict()
    assert not set(JARM_RESPONSE_MODES) & set(document.get("response_modes_supported", []))
    assert "authorization_signing_alg_values_supported" not in document


def test_jarm_3_metadata_when_enabled(op: Provider) -> None:
    document = op.provider_configuration.to_dict()
    assert set(JARM_RESPONSE_MODES) <= set(document["response_modes_supported"])
    assert document["authorization_signing_alg_values_supported"] == op.signing_algs


def test_jarm_3_signing_algs_without_a_key_refused(build: Callable[..., Provider]) -> None:
    for algs in (["ES256"], ["none"], ["ES256", "RS256"]):
        with pytest.raises(InvalidConfiguration, match="authorization_signing_alg"):
            build(config=fapi_configuration(authorization_signing_alg_values_supported=algs))


def test_jarm_2_1_lifetime_bounded_to_ten_minutes(build: Callable[..., Provider]) -> None:
    for lifetime in (0, 601, True, "60"):
        with pytest.raises(InvalidConfiguration, match="authorization_response_lifetime"):
            build(authorization_response_lifetime=lifetime)


def test_jarm_modes_refused_when_not_offered(build: Callable[..., Provider]) -> None:
    op = build(config=fapi_configuration(jarm=False))
    for mode in JARM_RESPONSE_MODES:
        with pytest.raises(InvalidAuthenticationRequest) as info:
            op.parse_authentication_request(authorization_query(response_mode=mode))
        assert info.value.oauth_error == "invalid_request"
        url = info.value.to_error_url()
        assert url is not None
        query, fragment = url_parameters(url)
        assert "response" not in query and "response" not in fragment  # not JARM: not offered
        assert (query or fragment)["error"] == "invalid_request"


# -- JARM 2.1.1, 2.3.1: code response in the query ---------------------------------------------


def test_jarm_2_1_1_code_response_query_jwt(op: Provider) -> None:
    request, response = jarm_flow(op, response_mode="query.jwt")
    assert set(response.keys()) == {"response"}  # JARM 2.3: the only parameter
    query, fragment = url_parameters(send(op, request, response))
    assert set(query) == {"response"} and not fragment
    claims = verify_jarm(query["response"], op)
    assert claims["iss"] == ISSUER and claims["aud"] == CLIENT_ID
    assert claims["state"] == "the-state" and claims["code"]
    assert NOW < claims["exp"] <= NOW + 600  # JARM 2.1: at most 10 minutes recommended
    # the code in the JWT is a working code (RFC 6749 4.1.3)
    token_response = op.handle_token_request(
        urlencode({"grant_type": "authorization_code", "code": claims["code"],
                   "redirect_uri": REDIRECT_URI}), basic())
    assert token_response["access_token"]


def test_jarm_2_1_exp_follows_the_configured_lifetime(build: Callable[..., Provider]) -> None:
    op = build(authorization_response_lifetime=60)
    request, response = jarm_flow(op, response_mode="query.jwt")
    assert verify_jarm(response["response"], op)["exp"] == NOW + 60


def test_jarm_2_2_signed_by_a_published_key_never_none(op: Provider) -> None:
    _, response = jarm_flow(op, response_mode="query.jwt")
    claims = verify_jarm(response["response"], op)
    assert claims["__header__"]["alg"] in op.signing_algs
    assert claims["__header__"]["alg"] != "none"


# -- JARM 2.1.2, 2.3.2, 2.3.4: token responses in the fragment ---------------------------------


def test_jarm_2_1_2_token_response_fragment_jwt(op: Provider) -> None:
    request, response = jarm_flow(op, response_type="id_token token",
                                  response_mode="fragment.jwt")
    query, fragment = url_parameters(send(op, request, response))
    assert set(fragment) == {"response"} and not query
    claims = verify_jarm(fragment["response"], op)
    assert claims["access_token"] and claims["token_type"] == "Bearer"
    assert claims["expires_in"] > 0 and claims["id_token"] and claims["state"] == "the-state"


def test_jarm_2_3_2_fragment_jwt_for_a_code(op: Provider) -> None:
    request, response = jarm_flow(op, response_mode="fragment.jwt")
    query, fragment = url_parameters(send(op, request, response))
    assert set(fragment) == {"response"} and not query
    assert verify_jarm(fragment["response"], op)["code"]


@pytest.mark.parametrize(("response_type", "in_fragment"), [
    ("code", False), ("code id_token", True), ("id_token token", True), ("id_token", True)])
def test_jarm_2_3_4_jwt_picks_the_default_encoding(op: Provider, response_type: str,
                                                   in_fragment: bool) -> None:
    request, response = jarm_flow(op, response_type=response_type, response_mode="jwt")
    query, fragment = url_parameters(send(op, request, response))
    carrier = fragment if in_fragment else query
    assert set(carrier) == {"response"} and not (query if in_fragment else fragment)
    verify_jarm(carrier["response"], op)


@pytest.mark.parametrize("response_type", ["id_token token", "code id_token", "id_token",
                                           "code token"])
def test_jarm_2_3_1_query_jwt_refused_with_tokens(op: Provider, response_type: str) -> None:
    """JARM 2.3.1: query.jwt MUST NOT be used with response types containing token or
    id_token unless the JWT is encrypted, and responses are never encrypted here."""
    with pytest.raises(InvalidAuthenticationRequest) as info:
        op.parse_authentication_request(authorization_query(
            response_type=response_type, response_mode="query.jwt"))
    url = info.value.to_error_url()
    assert url is not None
    query, fragment = url_parameters(url)
    assert not query  # nothing of the response in the query
    claims = verify_jarm(fragment["response"], op)
    assert claims["error"] == "invalid_request"


# -- JARM 2.3.3: form_post.jwt -------------------------------------------------------------------


def test_jarm_2_3_3_form_post_jwt(op: Provider) -> None:
    request, response = jarm_flow(op, response_mode="form_post.jwt")
    assert should_form_post(request)
    fields = hidden_fields(render_form_post(response, request["redirect_uri"]))
    assert set(fields) == {"response"}
    assert verify_jarm(str(fields["response"]), op)["code"]


# -- JARM 2.1.3: errors ----------------------------------------------------------------------


def test_jarm_2_1_3_validation_error_is_a_signed_jwt(op: Provider) -> None:
    with pytest.raises(InvalidAuthenticationRequest) as info:
        op.parse_authentication_request(authorization_query(response_mode="query.jwt",
                                                            scope="profile"))
    url = info.value.to_error_url()
    assert url is not None
    query, _ = url_parameters(url)
    assert set(query) == {"response"}
    claims = verify_jarm(query["response"], op)
    assert claims["error"] == "invalid_scope" and claims["state"] == "the-state"
    assert claims["error_description"]


def test_jarm_2_1_3_form_post_error(op: Provider) -> None:
    with pytest.raises(InvalidAuthenticationRequest) as info:
        op.parse_authentication_request(authorization_query(response_mode="form_post.jwt",
                                                            prompt="bogus"))
    page = info.value.to_form_post()
    assert page is not None
    fields = hidden_fields(page)
    assert set(fields) == {"response"}
    assert verify_jarm(str(fields["response"]), op)["error"] == "invalid_request"


def test_jarm_2_1_3_host_error_is_a_signed_jwt(op: Provider) -> None:
    request = op.parse_authentication_request(authorization_query(response_mode="jwt"))
    url = op.create_authentication_error(request, "login_required", "no session").to_error_url()
    assert url is not None
    query, _ = url_parameters(url)
    claims = verify_jarm(query["response"], op)
    assert claims["error"] == "login_required" and claims["state"] == "the-state"


def test_jarm_2_1_3_authorize_error_is_a_signed_jwt(op: Provider, clock: FakeClock) -> None:
    request = op.parse_authentication_request(authorization_query(response_mode="jwt",
                                                                  prompt="login"))
    with pytest.raises(ReauthenticationRequired) as info:
        op.authorize(request, USER_ID, auth_time=NOW - 10)
    url = info.value.to_error_url()
    assert url is not None
    query, _ = url_parameters(url)
    assert verify_jarm(query["response"], op)["error"] == "login_required"


def test_jarm_error_for_an_unverified_redirect_uri_never_sent(op: Provider) -> None:
    with pytest.raises(InvalidRedirectURI) as info:
        op.parse_authentication_request(authorization_query(
            response_mode="query.jwt", redirect_uri="https://attacker.example/cb"))
    assert info.value.to_error_url() is None and info.value.to_form_post() is None
    with pytest.raises(InvalidClientId) as unknown:
        op.parse_authentication_request(authorization_query(
            client_id="unknown", response_mode="query.jwt"))
    assert unknown.value.to_error_url() is None


def test_jarm_request_object_response_mode(op: Provider) -> None:
    """The response mode may come from a signed request object (RFC 9101 4)."""
    request_object = sign_request_object(request_object_claims(response_mode="query.jwt"))
    request = op.parse_authentication_request(authorization_query(request=request_object))
    response = op.authorize(request, USER_ID)
    claims = verify_jarm(response["response"], op)
    assert claims["state"] == "object-state"


# -- plain modes untouched -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "query", "fragment", "form_post"])
def test_plain_response_modes_unchanged_with_jarm_offered(op: Provider, mode: Any) -> None:
    request, response = jarm_flow(op, response_mode=mode)
    assert "response" not in response and response["code"]
    assert response["iss"] == ISSUER and response["state"] == "the-state"


# -- JARM 4: client metadata ---------------------------------------------------------------------


def test_jarm_4_authorization_signed_response_alg_used(build: Callable[..., Provider]) -> None:
    op = build(signing_keys=[OP_EC_KEY],
               client_db=fapi_clients(authorization_signed_response_alg="ES256"))
    _, response = jarm_flow(op, response_mode="query.jwt")
    claims = verify_jarm(response["response"], op)
    assert claims["__header__"]["alg"] == "ES256" and claims["__header__"]["kid"] == "op-ec"


def test_jarm_4_default_alg_is_rs256(make_provider: Callable[..., Provider],
                                     op_key: SigningKey) -> None:
    """JARM 4: without authorization_signed_response_alg the default is RS256, also when
    the provider's active key is another (here ES256, with an RS256 key besides)."""
    op = make_fapi_provider(make_provider, OP_EC_KEY, signing_keys=[op_key])
    _, response = jarm_flow(op, response_mode="query.jwt")
    assert verify_jarm(response["response"], op)["__header__"]["alg"] == "RS256"
    alone = make_fapi_provider(make_provider, OP_EC_KEY)  # no RS256 key: the active one
    _, response = jarm_flow(alone, response_mode="query.jwt")
    assert verify_jarm(response["response"], alone)["__header__"]["alg"] == "ES256"


def test_jarm_4_alg_without_key_refused_before_anything_is_issued(
        build: Callable[..., Provider]) -> None:
    for alg in ("ES256", "none"):
        op = build(client_db=fapi_clients(authorization_signed_response_alg=alg))
        request = op.parse_authentication_request(authorization_query(response_mode="jwt"))
        with pytest.raises(UnauthorizedClient):
            op.authorize(request, USER_ID)
        assert len(op.authz_state.authorization_codes) == 0  # nothing issued


def test_jarm_4_encrypted_responses_refused(build: Callable[..., Provider]) -> None:
    """A client configured for encrypted responses (JARM 4) would get them in clear:
    refused, with a plain (unsigned, unencrypted) error."""
    op = build(client_db=fapi_clients(authorization_encrypted_response_alg="RSA-OAEP"))
    with pytest.raises(InvalidAuthenticationRequest) as info:
        op.parse_authentication_request(authorization_query(response_mode="query.jwt"))
    url = info.value.to_error_url()
    assert url is not None
    query, _ = url_parameters(url)
    assert query["error"] == "invalid_request" and "response" not in query


def registration(**metadata: Any) -> str:
    return json.dumps({"redirect_uris": ["https://new.example.com/cb"], **metadata})


JSON = {"Content-Type": "application/json"}


def test_jarm_4_registration(build: Callable[..., Provider]) -> None:
    op = build(signing_keys=[OP_EC_KEY])
    response = op.handle_client_registration_request(
        registration(authorization_signed_response_alg="ES256"), JSON)
    assert response["authorization_signed_response_alg"] == "ES256"
    stored = op.get_client(response["client_id"])
    assert stored is not None and stored["authorization_signed_response_alg"] == "ES256"
    for bad in ({"authorization_signed_response_alg": "none"},
                {"authorization_signed_response_alg": "HS256"},
                {"authorization_encrypted_response_alg": "RSA-OAEP"},
                {"authorization_encrypted_response_enc": "A128CBC-HS256"}):
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            op.handle_client_registration_request(registration(**bad), JSON)
        assert info.value.oauth_error == "invalid_client_metadata"


# -- attacks -------------------------------------------------------------------------------------


def test_attack_response_for_another_client_rejected_by_aud(op: Provider) -> None:
    """A response JWT made for one client (aud) fails the other client's check (JARM 2.4
    step 3), so it cannot be injected into another client's session."""
    _, response = jarm_flow(op, response_mode="query.jwt")
    token = response["response"]
    assert unverified_claims(token)["aud"] == CLIENT_ID
    with pytest.raises(InvalidClaimError):
        verify_jarm(token, op, client_id=OTHER_CLIENT_ID)
    _, other = jarm_flow(op, client_id=OTHER_CLIENT_ID, redirect_uri=OTHER_REDIRECT_URI,
                         response_mode="query.jwt")
    assert verify_jarm(other["response"], op, client_id=OTHER_CLIENT_ID)["aud"] == \
        OTHER_CLIENT_ID


def test_attack_replay_of_an_old_response_rejected_by_exp(op: Provider,
                                                          clock: FakeClock) -> None:
    _, response = jarm_flow(op, response_mode="query.jwt")
    token = response["response"]
    verify_jarm(token, op, now=NOW + 599)
    with pytest.raises(ExpiredTokenError):
        verify_jarm(token, op, now=NOW + 600)
    clock.advance(3600)  # a later response is a new JWT with a new exp
    _, later = jarm_flow(op, response_mode="query.jwt")
    assert verify_jarm(later["response"], op, now=NOW + 3600)["exp"] == NOW + 3600 + 600


def test_attack_tampered_response_rejected(op: Provider) -> None:
    _, response = jarm_flow(op, response_mode="query.jwt")
    header, payload, signature = response["response"].split(".")
    claims = unverified_claims(response["response"])
    claims["aud"] = OTHER_CLIENT_ID
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    with pytest.raises(BadSignatureError):
        verify_jarm(f"{header}.{forged_payload.decode()}.{signature}", op,
                    client_id=OTHER_CLIENT_ID)


def test_attack_response_parameters_cannot_set_jwt_claims(op: Provider) -> None:
    """Request parameters echoed in the response (state) never replace iss/aud/exp."""
    request_object = sign_request_object(request_object_claims(
        response_mode="query.jwt", state="s"))
    request = op.parse_authentication_request(authorization_query(request=request_object))
    request["aud"] = OTHER_CLIENT_ID  # nothing of the request but state is echoed
    claims = verify_jarm(op.authorize(request, USER_ID)["response"], op)
    assert claims["aud"] == CLIENT_ID and claims["iss"] == ISSUER
