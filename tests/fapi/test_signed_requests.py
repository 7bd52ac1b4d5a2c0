"""Signed authorization requests: ``require_signed_request_object`` (RFC 9101 10.5), as
provider metadata and as client metadata, and ``request_object_signing_alg`` (OIDC
Dynamic Registration 2, RFC 9101 10.5), with pushed authorization requests (RFC 9126 3).

Request objects are signed with joserfc, an independent JOSE implementation.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, ISSUER, REDIRECT_URI, USER_ID

from fapi.signing_support import (
    OTHER_CLIENT_ID,
    OTHER_REDIRECT_URI,
    authorization_query,
    fapi_clients,
    fapi_configuration,
    request_object_claims,
    sign_request_object,
    unsigned_request_object,
    url_parameters,
    verify_jarm,
)
from pyop.endpoints.authorization import SIGNED_REQUEST_MEMBER
from pyop.exceptions import (
    InvalidAuthenticationRequest,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidConfiguration,
    InvalidPushedAuthorizationRequest,
    InvalidRedirectURI,
)
from pyop.provider import Provider


@pytest.fixture
def required(build: Callable[..., Provider]) -> Provider:
    """A provider requiring signed request objects of every client."""
    return build(require_signed_request_object=True)


def refused(op: Provider, query: str) -> InvalidAuthenticationRequest:
    with pytest.raises(InvalidAuthenticationRequest) as info:
        op.parse_authentication_request(query)
    return info.value


def signed_query(client_id: str = CLIENT_ID, alg: str = "RS256", **claims: Any) -> str:
    redirect_uri = OTHER_REDIRECT_URI if client_id == OTHER_CLIENT_ID else None
    object_claims = request_object_claims(client_id, **(
        {"redirect_uri": redirect_uri} if redirect_uri else {}), **claims)
    return authorization_query(client_id, **({"redirect_uri": redirect_uri}
                                             if redirect_uri else {}),
                               request=sign_request_object(object_claims, alg))


# -- RFC 9101 10.5: authorization server metadata ------------------------------------------------


def test_rfc9101_10_5_not_published_by_default(build: Callable[..., Provider]) -> None:
    assert "require_signed_request_object" not in build().provider_configuration.to_dict()


def test_rfc9101_10_5_published_when_required(required: Provider) -> None:
    assert required.provider_configuration["require_signed_request_object"] is True


def test_rfc9101_10_5_metadata_true_turns_it_on(build: Callable[..., Provider]) -> None:
    op = build(config=fapi_configuration(require_signed_request_object=True))
    error = refused(op, authorization_query())
    assert error.oauth_error == "invalid_request"


def test_rfc9101_10_5_needs_request_objects(build: Callable[..., Provider]) -> None:
    with pytest.raises(InvalidConfiguration, match="require_signed_request_object"):
        build(config=fapi_configuration(request_parameter_supported=False),
              require_signed_request_object=True)


# -- RFC 9101 10.5: the server MUST reject requests that are not signed request objects ----------


def test_rfc9101_10_5_plain_request_refused_and_redirected(required: Provider) -> None:
    error = refused(required, authorization_query())
    assert error.oauth_error == "invalid_request" and error.redirectable
    url = error.to_error_url()
    assert url is not None
    query, _ = url_parameters(url)
    assert query["error"] == "invalid_request" and query["state"] == "the-state"
    assert query["iss"] == ISSUER


def test_rfc9101_10_5_alg_none_request_object_refused(required: Provider) -> None:
    """Unsigned request objects (``alg: none``) do not count, even where accepted."""
    error = refused(required, authorization_query(
        request=unsigned_request_object(request_object_claims())))
    assert error.oauth_error == "invalid_request"


def test_rfc9101_10_5_signed_request_object_accepted(required: Provider) -> None:
    request = required.parse_authentication_request(signed_query())
    assert request["state"] == "object-state"
    assert request[SIGNED_REQUEST_MEMBER] is True
    code = required.authorize(request, USER_ID)["code"]
    tokens = required.handle_token_request(
        urlencode({"grant_type": "authorization_code", "code": code,
                   "redirect_uri": REDIRECT_URI}),
        {"Authorization": "Basic " + base64.b64encode(
            f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()})
    assert tokens["access_token"] and tokens["id_token"]


def test_rfc9101_10_5_unknown_client_or_redirect_uri_never_redirected(
        required: Provider) -> None:
    with pytest.raises(InvalidClientId) as unknown:
        required.parse_authentication_request(authorization_query(client_id="unknown"))
    assert unknown.value.to_error_url() is None
    with pytest.raises(InvalidRedirectURI) as unregistered:
        required.parse_authentication_request(
            authorization_query(redirect_uri="https://attacker.example/cb"))
    assert unregistered.value.to_error_url() is None


def test_rfc9101_10_5_error_jarm_wrapped_for_jarm_mode(required: Provider) -> None:
    error = refused(required, authorization_query(response_mode="query.jwt"))
    url = error.to_error_url()
    assert url is not None
    query, _ = url_parameters(url)
    assert verify_jarm(query["response"], required)["error"] == "invalid_request"


def test_rfc9101_10_5_member_cannot_be_forged_by_the_client(required: Provider,
                                                            build: Callable[..., Provider]
                                                            ) -> None:
    refused(required, authorization_query(**{SIGNED_REQUEST_MEMBER: "true"}))
    # an object with the member is signed: the member is the provider's own value
    op = build()
    request = op.parse_authentication_request(authorization_query(**{
        SIGNED_REQUEST_MEMBER: "true"}))
    assert SIGNED_REQUEST_MEMBER not in request
    unsigned = op.parse_authentication_request(authorization_query(
        request=unsigned_request_object(request_object_claims(
            **{SIGNED_REQUEST_MEMBER: "true"}))))
    assert SIGNED_REQUEST_MEMBER not in unsigned


def test_rfc9101_10_5_member_absent_without_a_signed_object(build: Callable[..., Provider]
                                                             ) -> None:
    """Requests without a signed object keep the shape they always had (stored records)."""
    request = build().parse_authentication_request(authorization_query())
    assert SIGNED_REQUEST_MEMBER not in request.to_dict()


# -- RFC 9101 10.5: client metadata --------------------------------------------------------------


def test_rfc9101_10_5_client_metadata_required_for_that_client_only(
        build: Callable[..., Provider]) -> None:
    op = build(client_db=fapi_clients(require_signed_request_object=True))
    assert refused(op, authorization_query()).oauth_error == "invalid_request"
    assert op.parse_authentication_request(signed_query())[SIGNED_REQUEST_MEMBER] is True
    other = op.parse_authentication_request(authorization_query(
        OTHER_CLIENT_ID, OTHER_REDIRECT_URI))
    assert other["client_id"] == OTHER_CLIENT_ID  # not required of the other client
    assert "require_signed_request_object" not in op.provider_configuration.to_dict()


def test_rfc9101_10_5_client_metadata_false_or_absent(build: Callable[..., Provider]) -> None:
    op = build(client_db=fapi_clients(require_signed_request_object=False))
    assert op.parse_authentication_request(authorization_query())["client_id"] == CLIENT_ID


JSON = {"Content-Type": "application/json"}


def registration(**metadata: Any) -> str:
    return json.dumps({"redirect_uris": ["https://new.example.com/cb"], **metadata})


def test_rfc9101_10_5_registration(build: Callable[..., Provider]) -> None:
    op = build()
    response = op.handle_client_registration_request(
        registration(require_signed_request_object=True), JSON)
    assert response["require_signed_request_object"] is True
    client = op.get_client(response["client_id"])
    assert client is not None and client["require_signed_request_object"] is True
    read = op.handle_client_read_request(response["client_id"], {
        "Authorization": "Bearer " + response["registration_access_token"]})
    assert read["require_signed_request_object"] is True  # RFC 7592 3: returned
    assert refused(op, authorization_query(response["client_id"],
                                           "https://new.example.com/cb")).oauth_error == \
        "invalid_request"
    for bad in ({"require_signed_request_object": "yes"},
                {"require_signed_request_object": True, "request_object_signing_alg": "none"}):
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            op.handle_client_registration_request(registration(**bad), JSON)
        assert info.value.oauth_error == "invalid_client_metadata"


# -- request_object_signing_alg (OIDC Dynamic Registration 2, RFC 9101 10.5) ---------------------


def test_request_object_signing_alg_enforced(build: Callable[..., Provider]) -> None:
    op = build(client_db=fapi_clients(request_object_signing_alg="ES256",
                                      require_signed_request_object=True))
    error = refused(op, signed_query(alg="RS256"))
    assert error.oauth_error == "invalid_request_object"
    assert op.parse_authentication_request(signed_query(alg="ES256"))[SIGNED_REQUEST_MEMBER]


# -- RFC 9126 3: pushed requests -----------------------------------------------------------------


PAR_HEADERS = {"Content-Type": "application/x-www-form-urlencoded",
               "Authorization": "Basic " + base64.b64encode(
                   f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()}


def push(op: Provider, **parameters: Any) -> Any:
    body = authorization_query(**parameters)
    return op.handle_pushed_authorization_request(body, PAR_HEADERS)


def test_rfc9126_pushed_unsigned_request_refused_when_signed_required(
        required: Provider) -> None:
    """A pushed request is validated as an authorization request (RFC 9126 2.1): without a
    signed request object it is refused when signed requests are required."""
    for parameters in ({}, {"request": unsigned_request_object(request_object_claims())},
                       {SIGNED_REQUEST_MEMBER: "true"}):
        with pytest.raises(InvalidPushedAuthorizationRequest) as info:
            push(required, **parameters)
        assert info.value.oauth_error == "invalid_request"


def test_rfc9126_pushed_signed_request_counts_as_signed(required: Provider) -> None:
    """A pushed request that carried a signed object is a signed request at the
    authorization endpoint, where only client_id and request_uri are sent."""
    response = push(required, request=sign_request_object(request_object_claims()))
    request = required.parse_authentication_request(urlencode(
        {"client_id": CLIENT_ID, "request_uri": response["request_uri"]}))
    assert request[SIGNED_REQUEST_MEMBER] is True and request["state"] == "object-state"
    assert required.authorize(request, USER_ID)["code"]


def test_rfc9126_client_cannot_claim_a_signed_push(build: Callable[..., Provider]) -> None:
    """The member pushed as a parameter, or inside an unsigned object, is dropped at the
    push; the pushed request's record is what the provider wrote."""
    op = build(client_db=fapi_clients())
    for parameters in ({SIGNED_REQUEST_MEMBER: "true"},
                       {"request": unsigned_request_object(request_object_claims(
                           **{SIGNED_REQUEST_MEMBER: "true"}))}):
        response = push(op, **parameters)
        request = op.parse_authentication_request(urlencode(
            {"client_id": CLIENT_ID, "request_uri": response["request_uri"]}))
        assert SIGNED_REQUEST_MEMBER not in request


def test_rfc9126_member_in_a_query_never_counts(required: Provider) -> None:
    """Outside a pushed request's record the member is the client's: ignored."""
    assert refused(required, authorization_query(
        **{SIGNED_REQUEST_MEMBER: "True"})).oauth_error == "invalid_request"
