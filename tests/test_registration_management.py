"""Client configuration endpoint (RFC 7592, OIDC Dynamic Registration 4) and secret rotation."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
from conftest import CLIENT_ID, REDIRECT_URI, USER_ID, configuration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyop.client_authentication import client_secret_matches, hash_client_secret
from pyop.client_management import (
    new_registration_access_token,
    registration_access_token_matches,
    registration_bearer_token,
    registration_client_uri,
    uses_client_secret,
)
from pyop.crypto import SigningKey
from pyop.exceptions import (
    BearerTokenError,
    InvalidClientAuthentication,
    InvalidClientId,
    InvalidClientRegistrationRequest,
    InvalidRegistrationAccessToken,
    InvalidTokenRequest,
    OAuthError,
)
from pyop.provider import Provider
from pyop.storage import MemoryStorage

WEB_URI = "https://rp.example.com/cb"
OTHER_URI = "https://rp.example.com/other"


def register(provider: Provider, **metadata: Any) -> dict[str, Any]:
    body = {"redirect_uris": [WEB_URI], **metadata}
    return provider.handle_client_registration_request(json.dumps(body)).to_dict()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(
        f"{client_id}:{secret}".encode()).decode()}


def update_body(info: dict[str, Any], **changes: Any) -> str:
    """What a client sends back: its last client information response, changed."""
    body = {k: v for k, v in info.items()
            if k not in ("registration_access_token", "registration_client_uri")}
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def authentication_query(client_id: str) -> str:
    return urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": WEB_URI,
                      "scope": "openid", "nonce": "n"})


def code_for(provider: Provider, client_id: str) -> str:
    authn_req = provider.parse_authentication_request(authentication_query(client_id))
    return str(provider.authorize(authn_req, USER_ID)["code"])


def token_request(provider: Provider, client_id: str, secret: str, code: str) -> Any:
    body = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": WEB_URI})
    return provider.handle_token_request(body, basic(client_id, secret))


@pytest.fixture(scope="module")
def converted_key(jwkest_signing_key: Any) -> SigningKey:
    return SigningKey.from_key(jwkest_signing_key)


@pytest.fixture
def op(make_provider: Callable[..., Provider], converted_key: SigningKey) -> Provider:
    return make_provider(signing_key=converted_key, authz_kwargs={"refresh_token_lifetime": 3600})


@pytest.fixture
def hashing_op(make_provider: Callable[..., Provider], converted_key: SigningKey) -> Provider:
    return make_provider(signing_key=converted_key, hash_client_secrets=True)


class TestRegistrationResponse:
    def test_token_and_uri_returned_once_only_hash_stored(self, op: Provider) -> None:
        response = register(op)
        token = response["registration_access_token"]
        assert len(base64.urlsafe_b64decode(token + "==")) == 32  # 256 bits
        assert response["registration_client_uri"] == (
            "https://op.example.com/registration/" + response["client_id"])
        stored = op.clients[response["client_id"]]
        assert "registration_access_token" not in stored
        assert "registration_client_uri" not in stored
        assert token not in json.dumps(stored)
        assert stored["registration_access_token_hash"].startswith("hmac_sha256$")

    def test_tokens_differ_per_client(self, op: Provider) -> None:
        assert register(op)["registration_access_token"] != register(op)[
            "registration_access_token"]

    def test_without_registration_endpoint_no_token(self, make_provider: Callable[..., Provider]
                                                     ) -> None:
        config = configuration()
        del config["registration_endpoint"]
        response = register(make_provider(config=config))
        assert "registration_access_token" not in response
        assert "registration_client_uri" not in response

    def test_uri_template_is_configurable(self, op: Provider) -> None:
        op.registration_client_uri_template = "https://op.example.com/clients?id={client_id}"
        response = register(op)
        assert response["registration_client_uri"] == (
            "https://op.example.com/clients?id=" + response["client_id"])

    def test_uri_quotes_the_client_id(self) -> None:
        assert registration_client_uri("{registration_endpoint}/{client_id}",
                                       "https://op.example.com/reg/", "a b/c") == (
            "https://op.example.com/reg/a%20b%2Fc")


class TestRead:
    def test_returns_current_metadata(self, op: Provider) -> None:
        registered = register(op, client_name="RP", scope="openid email")
        info = op.handle_client_read_request(
            registered["client_id"], bearer(registered["registration_access_token"])).to_dict()
        assert info == registered  # RFC 7592 3: the same members, the secret in clear

    def test_never_returns_hashes_nor_host_members(self, hashing_op: Provider) -> None:
        registered = register(hashing_op)
        client_id = registered["client_id"]
        record = dict(hashing_op.clients[client_id])
        record.update(allowed_claims=["email"], internal_note="vip")
        hashing_op.clients[client_id] = record
        info = hashing_op.handle_client_read_request(
            client_id, bearer(registered["registration_access_token"])).to_dict()
        for name in ("client_secret", "client_secret_hash", "registration_access_token_hash",
                     "allowed_claims", "internal_note"):
            assert name not in info
        assert info["client_secret_expires_at"] == 0
        assert info["registration_access_token"] == registered["registration_access_token"]

    def test_scheme_is_case_insensitive_header_name_too(self, op: Provider) -> None:
        registered = register(op)
        headers = {"authorization": "bEaReR " + registered["registration_access_token"]}
        assert op.handle_client_read_request(registered["client_id"], headers)["client_id"] == \
            registered["client_id"]


class TestUpdate:
    def test_full_replacement(self, op: Provider) -> None:
        registered = register(op, client_name="RP", contacts=["a@rp.example.com"])
        client_id, token = registered["client_id"], registered["registration_access_token"]
        body = update_body(registered, redirect_uris=[OTHER_URI], contacts=None)
        updated = op.handle_client_update_request(client_id, body, bearer(token)).to_dict()
        assert updated["redirect_uris"] == [OTHER_URI]
        assert "contacts" not in updated and "contacts" not in op.clients[client_id]
        assert updated["client_name"] == "RP"
        assert updated["client_secret"] == registered["client_secret"]
        assert updated["client_id_issued_at"] == registered["client_id_issued_at"]
        assert updated["registration_access_token"] == token  # not rotated by default
        assert op.handle_client_read_request(client_id, bearer(token)).to_dict() == updated

    def test_minimal_body(self, op: Provider) -> None:
        registered = register(op, client_name="RP")
        client_id = registered["client_id"]
        body = json.dumps({"client_id": client_id, "redirect_uris": [OTHER_URI]})
        updated = op.handle_client_update_request(
            client_id, body, bearer(registered["registration_access_token"])).to_dict()
        assert "client_name" not in updated
        assert updated["token_endpoint_auth_method"] == "client_secret_basic"
        assert updated["client_secret"] == registered["client_secret"]

    def test_server_managed_members_are_ignored(self, op: Provider, clock: Any) -> None:
        registered = register(op)
        client_id, token = registered["client_id"], registered["registration_access_token"]
        body = update_body(registered, client_id_issued_at=1, client_secret_expires_at=2,
                           registration_access_token="chosen-by-client",
                           registration_client_uri="https://evil.example.com/")
        updated = op.handle_client_update_request(client_id, body, bearer(token)).to_dict()
        assert updated["client_id_issued_at"] == registered["client_id_issued_at"]
        assert updated["client_secret_expires_at"] == 0
        assert updated["registration_access_token"] == token
        assert updated["registration_client_uri"] == registered["registration_client_uri"]
        assert not registration_access_token_matches(op.clients[client_id], "chosen-by-client")

    def test_host_members_survive(self, op: Provider) -> None:
        registered = register(op)
        client_id, token = registered["client_id"], registered["registration_access_token"]
        op.clients[client_id] = {**op.clients[client_id], "allowed_claims": ["email"]}
        op.handle_client_update_request(client_id, update_body(registered, client_name="x"),
                                        bearer(token))
        assert op.clients[client_id]["allowed_claims"] == ["email"]
        assert op.clients[client_id]["client_name"] == "x"

    @pytest.mark.parametrize("changes,oauth_error", [
        ({"redirect_uris": ["https://rp.example.com/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "magic"}, "invalid_client_metadata"),
        ({"scope": "openid admin"}, "invalid_client_metadata"),
        ({"jwks_uri": "javascript:alert(1)"}, "invalid_client_metadata"),
    ])
    def test_validated_like_registration(self, op: Provider, changes: dict[str, Any],
                                         oauth_error: str) -> None:
        registered = register(op)
        client_id = registered["client_id"]
        before = dict(op.clients[client_id])
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            op.handle_client_update_request(client_id, update_body(registered, **changes),
                                            bearer(registered["registration_access_token"]))
        assert info.value.oauth_error == oauth_error
        assert info.value.http_status == 400 and json.loads(info.value.to_json())["error"]
        assert op.clients[client_id] == before

    def test_host_validators_run(self, op: Provider) -> None:
        def no_contacts(request: Any) -> None:
            if request.get("contacts"):
                raise InvalidClientRegistrationRequest("no contacts", request,
                                                       oauth_error="invalid_client_metadata")

        registered = register(op)
        op.registration_request_validators.append(no_contacts)
        with pytest.raises(InvalidClientRegistrationRequest):
            op.handle_client_update_request(
                registered["client_id"], update_body(registered, contacts=["a@b.example"]),
                bearer(registered["registration_access_token"]))

    @pytest.mark.parametrize("body", ["not json", "[]", "null", b"\xff"])
    def test_malformed_body(self, op: Provider, body: Any) -> None:
        registered = register(op)
        with pytest.raises(InvalidClientRegistrationRequest):
            op.handle_client_update_request(registered["client_id"], body,
                                            bearer(registered["registration_access_token"]))

    def test_rotate_registration_access_token(self, op: Provider) -> None:
        registered = register(op)
        client_id, old = registered["client_id"], registered["registration_access_token"]
        updated = op.handle_client_update_request(client_id, update_body(registered),
                                                  bearer(old),
                                                  rotate_registration_access_token=True)
        new = updated["registration_access_token"]
        assert new != old
        with pytest.raises(InvalidRegistrationAccessToken):
            op.handle_client_read_request(client_id, bearer(old))
        assert op.handle_client_read_request(client_id, bearer(new))["client_id"] == client_id

    def test_rotate_client_secret_on_update(self, op: Provider) -> None:
        registered = register(op)
        client_id, old = registered["client_id"], registered["client_secret"]
        updated = op.handle_client_update_request(
            client_id, update_body(registered), bearer(registered["registration_access_token"]),
            rotate_client_secret=True)
        assert updated["client_secret"] != old
        assert client_secret_matches(op.clients[client_id], updated["client_secret"])
        assert not client_secret_matches(op.clients[client_id], old)

    def test_switch_to_public_drops_the_secret_and_back(self, hashing_op: Provider) -> None:
        registered = register(hashing_op)
        client_id, token = registered["client_id"], registered["registration_access_token"]
        public = hashing_op.handle_client_update_request(
            client_id, update_body(registered, token_endpoint_auth_method="none"),
            bearer(token)).to_dict()
        assert "client_secret" not in public
        stored = hashing_op.clients[client_id]
        assert not {"client_secret", "client_secret_hash", "client_secret_expires_at"} & set(
            stored)
        confidential = hashing_op.handle_client_update_request(
            client_id, update_body(public, token_endpoint_auth_method="client_secret_post"),
            bearer(token)).to_dict()
        assert confidential["client_secret"]  # a new secret, returned once
        assert client_secret_matches(hashing_op.clients[client_id],
                                     confidential["client_secret"])
        assert "client_secret" not in hashing_op.clients[client_id]

    def test_with_a_storage_backend(self, make_provider: Callable[..., Provider]) -> None:
        op = make_provider(client_db=MemoryStorage())
        registered = register(op)
        client_id, token = registered["client_id"], registered["registration_access_token"]
        op.handle_client_update_request(client_id, update_body(registered, client_name="S"),
                                        bearer(token))
        assert op.handle_client_read_request(client_id, bearer(token))["client_name"] == "S"
        op.handle_client_delete_request(client_id, bearer(token))
        assert op.get_client(client_id) is None


class TestDelete:
    def test_client_can_no_longer_authenticate_nor_authorize(self, op: Provider) -> None:
        registered = register(op)
        client_id, secret = registered["client_id"], registered["client_secret"]
        token = registered["registration_access_token"]
        pending = op.parse_authentication_request(authentication_query(client_id))
        code = code_for(op, client_id)
        op.handle_client_delete_request(client_id, bearer(token))
        # a tombstone holding nothing but the time of deletion (RFC 7592 2.3)
        assert op.get_client(client_id) is None
        assert op.clients[client_id] == {"client_deleted_at": op.clock()}
        with pytest.raises(InvalidClientId):
            op.parse_authentication_request(authentication_query(client_id))
        with pytest.raises(InvalidTokenRequest) as info:
            op.authorize(pending, USER_ID)
        assert info.value.oauth_error == "invalid_client"
        with pytest.raises(InvalidClientAuthentication):
            token_request(op, client_id, secret, code)
        for call in (lambda: op.handle_client_read_request(client_id, bearer(token)),
                     lambda: op.handle_client_delete_request(client_id, bearer(token))):
            with pytest.raises(InvalidRegistrationAccessToken):
                call()

    def test_access_tokens_stop_working_at_userinfo(self, op: Provider) -> None:
        registered = register(op)
        client_id = registered["client_id"]
        response = token_request(op, client_id, registered["client_secret"],
                                 code_for(op, client_id))
        headers = bearer(response["access_token"])
        assert op.handle_userinfo_request("", headers)["sub"]
        op.handle_client_delete_request(client_id,
                                        bearer(registered["registration_access_token"]))
        with pytest.raises(BearerTokenError) as info:
            op.handle_userinfo_request("", headers)
        assert info.value.oauth_error == "invalid_token" and info.value.http_status == 401


class TestRotateClientSecret:
    @pytest.mark.parametrize("hashed", [False, True])
    def test_old_secret_stops_working(self, make_provider: Callable[..., Provider],
                                      hashed: bool) -> None:
        op = make_provider(hash_client_secrets=hashed)
        registered = register(op)
        client_id, old = registered["client_id"], registered["client_secret"]
        new = op.rotate_client_secret(client_id)
        assert new != old and len(new) >= 43
        stored = op.clients[client_id]
        assert ("client_secret_hash" in stored) is hashed
        assert ("client_secret" in stored) is not hashed
        with pytest.raises(InvalidClientAuthentication):
            token_request(op, client_id, old, code_for(op, client_id))
        assert token_request(op, client_id, new, code_for(op, client_id))["access_token"]

    def test_static_client_and_expiry(self, op: Provider, clock: Any) -> None:
        new = op.rotate_client_secret(CLIENT_ID, expires_at=int(clock()) + 60)
        assert client_secret_matches(op.clients[CLIENT_ID], new)
        assert op.clients[CLIENT_ID]["client_secret_expires_at"] == int(clock()) + 60
        assert op.clients[CLIENT_ID]["redirect_uris"] == [REDIRECT_URI]

    def test_refused_for_unknown_and_public_clients(self, op: Provider) -> None:
        with pytest.raises(ValueError, match="unknown client"):
            op.rotate_client_secret("nobody")
        public = register(op, token_endpoint_auth_method="none")
        with pytest.raises(ValueError, match="does not authenticate with a client secret"):
            op.rotate_client_secret(public["client_id"])


class TestHelpers:
    @pytest.mark.parametrize("headers,expected", [
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"AUTHORIZATION": "bearer   abc  "}, "abc"),
        ([("Authorization", "Bearer abc")], "abc"),
        ({"Authorization": "Bearerabc"}, None),
        ({"Authorization": "Bearer a b"}, None),
        ({"Authorization": "Basic abc"}, None),
        ({"Authorization": "Bearer "}, None),
        ([("Authorization", "Bearer a"), ("authorization", "Bearer a")], None),
        ({}, None), (None, None),
    ])
    def test_bearer_token(self, headers: Any, expected: Any) -> None:
        assert registration_bearer_token(headers) == expected

    def test_token_matching(self) -> None:

        token = new_registration_access_token()
        client = {"registration_access_token_hash": hash_client_secret(token)}
        assert registration_access_token_matches(client, token)
        assert not registration_access_token_matches(client, token + "x")
        assert not registration_access_token_matches(None, token)
        assert not registration_access_token_matches({}, token)
        assert not registration_access_token_matches({"registration_access_token_hash": 5},
                                                     token)

    @pytest.mark.parametrize("method,expected", [
        (None, True), ("client_secret_basic", True), ("client_secret_post", True),
        ("client_secret_jwt", True), ("none", False), ("private_key_jwt", False)])
    def test_uses_client_secret(self, method: Any, expected: bool) -> None:
        client = {} if method is None else {"token_endpoint_auth_method": method}
        assert uses_client_secret(client) is expected


class TestSecurity:
    """Negative cases (RFC 7592 2.1-2.3, RFC 6750 2): all end in the library's typed errors."""

    def _two_clients(self, op: Provider) -> tuple[dict[str, Any], dict[str, Any]]:
        return register(op), register(op)

    @pytest.mark.parametrize("operation", ["read", "update", "delete"])
    def test_another_clients_token(self, op: Provider, operation: str) -> None:
        a, b = self._two_clients(op)
        headers = bearer(b["registration_access_token"])
        before = dict(op.clients[a["client_id"]])
        with pytest.raises(InvalidRegistrationAccessToken) as info:
            if operation == "read":
                op.handle_client_read_request(a["client_id"], headers)
            elif operation == "update":
                op.handle_client_update_request(a["client_id"],
                                                update_body(a, client_name="x"), headers)
            else:
                op.handle_client_delete_request(a["client_id"], headers)
        assert info.value.http_status == 401 and info.value.oauth_error == "invalid_token"
        assert op.clients[a["client_id"]] == before

    def test_unknown_client_and_wrong_token_look_the_same(self, op: Provider) -> None:
        a = register(op)
        errors = []
        for client_id, token in ((a["client_id"], "wrong"),
                                 ("no-such-client", a["registration_access_token"]),
                                 ("no-such-client", "wrong")):
            with pytest.raises(InvalidRegistrationAccessToken) as info:
                op.handle_client_read_request(client_id, bearer(token))
            errors.append((str(info.value), info.value.to_json(),
                           info.value.www_authenticate, info.value.http_status))
        assert len(set(errors)) == 1
        assert errors[0][2] == 'Bearer error="invalid_token"'

    def test_static_client_without_token_hash(self, op: Provider) -> None:
        for token in ("", "x", "None"):
            with pytest.raises(InvalidRegistrationAccessToken):
                op.handle_client_read_request(CLIENT_ID, bearer(token or "-"))

    @pytest.mark.parametrize("headers", [
        None, {}, {"Authorization": "Basic Y2xpZW50MTpzZWNyZXQ="}, {"Authorization": "Bearer"},
    ])
    def test_no_token(self, op: Provider, headers: Any) -> None:
        a = register(op)
        with pytest.raises(InvalidRegistrationAccessToken) as info:
            op.handle_client_read_request(a["client_id"], headers)
        assert info.value.http_status == 401
        assert info.value.www_authenticate == "Bearer"  # RFC 6750 3.1: no error code

    def test_token_outside_the_header_is_refused(self, op: Provider) -> None:
        # RFC 6750 2.2 (form body) does not apply to JSON bodies, and 2.3 (query) is not
        # supported: a token anywhere but the Authorization header is no token
        a = register(op)
        token = a["registration_access_token"]
        with pytest.raises(InvalidRegistrationAccessToken):
            op.handle_client_update_request(
                a["client_id"], update_body(a, access_token=token), {})
        with pytest.raises(InvalidRegistrationAccessToken):
            op.handle_client_read_request(a["client_id"], {"X-Access-Token": token})

    def test_token_of_a_deleted_client(self, op: Provider) -> None:
        a = register(op)
        headers = bearer(a["registration_access_token"])
        op.handle_client_delete_request(a["client_id"], headers)
        with pytest.raises(InvalidRegistrationAccessToken):
            op.handle_client_update_request(a["client_id"], update_body(a), headers)

    def test_token_survives_no_re_registration(self, op: Provider) -> None:
        # a client deleted and another registered: the old token opens nothing
        a = register(op)
        op.handle_client_delete_request(a["client_id"], bearer(a["registration_access_token"]))
        b = register(op)
        with pytest.raises(InvalidRegistrationAccessToken):
            op.handle_client_read_request(b["client_id"], bearer(a["registration_access_token"]))

    @pytest.mark.parametrize("client_id", [None, "someone-else", CLIENT_ID, 5])
    def test_update_cannot_change_client_id(self, op: Provider, client_id: Any) -> None:
        a = register(op)
        body = update_body(a)
        body_dict = json.loads(body)
        if client_id is None:
            del body_dict["client_id"]
        else:
            body_dict["client_id"] = client_id
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            op.handle_client_update_request(a["client_id"], json.dumps(body_dict),
                                            bearer(a["registration_access_token"]))
        assert info.value.oauth_error == "invalid_request"
        assert a["client_id"] in op.clients and op.get_client(CLIENT_ID) is not None

    @pytest.mark.parametrize("secret", ["wrong", "", 5, ["x"]])
    def test_update_with_wrong_secret(self, hashing_op: Provider, secret: Any) -> None:
        a = register(hashing_op)
        before = dict(hashing_op.clients[a["client_id"]])
        with pytest.raises(InvalidClientRegistrationRequest) as info:
            hashing_op.handle_client_update_request(
                a["client_id"], update_body(a, client_secret=secret, client_name="x"),
                bearer(a["registration_access_token"]))
        assert info.value.oauth_error == "invalid_request"
        assert hashing_op.clients[a["client_id"]] == before

    def test_client_cannot_choose_its_secret(self, op: Provider) -> None:
        a = register(op)
        body = json.dumps({"client_id": a["client_id"], "redirect_uris": [WEB_URI],
                           "client_secret": a["client_secret"]})
        updated = op.handle_client_update_request(a["client_id"], body,
                                                  bearer(a["registration_access_token"]))
        assert updated["client_secret"] == a["client_secret"]

    def test_update_cannot_set_host_members(self, op: Provider) -> None:
        a = register(op)
        body = update_body(a, allowed_claims=["everything"],
                           registration_access_token_hash="hmac_sha256$x$y",
                           client_secret_hash="hmac_sha256$x$y")
        op.handle_client_update_request(a["client_id"], body,
                                        bearer(a["registration_access_token"]))
        stored = op.clients[a["client_id"]]
        assert "allowed_claims" not in stored and "client_secret_hash" not in stored
        assert registration_access_token_matches(stored, a["registration_access_token"])

    def test_nothing_secret_is_logged(self, op: Provider,
                                      caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="pyop")
        a = register(op)
        token = a["registration_access_token"]
        op.handle_client_read_request(a["client_id"], bearer(token))
        op.handle_client_update_request(a["client_id"], update_body(a), bearer(token),
                                        rotate_client_secret=True)
        new_secret = op.rotate_client_secret(a["client_id"])
        with pytest.raises(InvalidRegistrationAccessToken) as info:
            op.handle_client_read_request(a["client_id"], bearer(token + "x"))
        op.handle_client_delete_request(a["client_id"], bearer(token))
        text = caplog.text + str(info.value) + info.value.to_json()
        for secret in (token, a["client_secret"], new_secret):
            assert secret not in text


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.text(max_size=200), st.binary(max_size=100),
                      st.dictionaries(st.sampled_from(
                          ["client_id", "client_secret", "redirect_uris", "scope",
                           "token_endpoint_auth_method", "response_types", "grant_types",
                           "registration_access_token", "jwks", "contacts"]), _JSON)),
       client_id=st.one_of(st.none(), st.integers(), st.text(max_size=20)),
       authorization=st.one_of(st.none(), st.text(max_size=60)),
       use_token=st.booleans(), use_client_id=st.booleans())
def test_fuzz_management_requests_raise_only_typed_errors(
        make_provider: Callable[..., Provider], converted_key: SigningKey, body: Any,
        client_id: Any, authorization: Any, use_token: bool, use_client_id: bool) -> None:
    op = make_provider(signing_key=converted_key)
    registered = register(op)
    if use_client_id:
        client_id = registered["client_id"]
        if isinstance(body, dict) and "client_id" not in body:
            body = {**body, "client_id": client_id}
    headers = {} if authorization is None else {"Authorization": authorization}
    if use_token:
        headers = bearer(registered["registration_access_token"])
    for call in (lambda: op.handle_client_read_request(client_id, headers),
                 lambda: op.handle_client_update_request(client_id, body, headers),
                 lambda: op.handle_client_delete_request(client_id, headers)):
        try:
            call()
        except OAuthError:
            pass


class TestWithClientCache:
    """RFC 7592 changes take effect at once in the process that made them, also with
    the opt-in client cache; the management calls read the stored client, not the cache."""

    @pytest.fixture
    def cached_op(self, make_provider: Callable[..., Provider],
                  converted_key: SigningKey) -> Provider:
        return make_provider(signing_key=converted_key, client_cache_ttl=300)

    def test_deleted_client_cannot_authenticate(self, cached_op: Provider) -> None:
        info = register(cached_op)
        client_id, secret = info["client_id"], info["client_secret"]
        code = code_for(cached_op, client_id)  # the client is now cached
        cached_op.handle_client_delete_request(
            client_id, bearer(info["registration_access_token"]))
        with pytest.raises(InvalidClientAuthentication):
            token_request(cached_op, client_id, secret, code)
        with pytest.raises(InvalidClientId):
            cached_op.parse_authentication_request(authentication_query(client_id))

    def test_update_seen_at_once(self, cached_op: Provider) -> None:
        info = register(cached_op)
        client_id = info["client_id"]
        code_for(cached_op, client_id)  # cached with the old redirect_uris
        cached_op.handle_client_update_request(
            client_id, update_body(info, redirect_uris=[OTHER_URI]),
            bearer(info["registration_access_token"]))
        with pytest.raises(OAuthError):
            cached_op.parse_authentication_request(authentication_query(client_id))

    def test_rotated_secret_replaces_the_old_one_at_once(self, cached_op: Provider) -> None:
        info = register(cached_op)
        client_id, old_secret = info["client_id"], info["client_secret"]
        token_request(cached_op, client_id, old_secret, code_for(cached_op, client_id))
        new_secret = cached_op.rotate_client_secret(client_id)
        with pytest.raises(InvalidClientAuthentication):
            token_request(cached_op, client_id, old_secret, code_for(cached_op, client_id))
        assert token_request(cached_op, client_id, new_secret,
                             code_for(cached_op, client_id))["access_token"]

    def test_update_reads_the_stored_client_not_the_cache(self, cached_op: Provider) -> None:
        info = register(cached_op)
        client_id = info["client_id"]
        code_for(cached_op, client_id)  # cached
        # another process rotated the registration access token meanwhile
        stored = dict(cached_op.clients[client_id])
        other_token = new_registration_access_token()
        stored["registration_access_token_hash"] = hash_client_secret(other_token)
        cached_op.clients[client_id] = stored
        with pytest.raises(InvalidRegistrationAccessToken):
            cached_op.handle_client_read_request(
                client_id, bearer(info["registration_access_token"]))
        assert cached_op.handle_client_read_request(
            client_id, bearer(other_token))["client_id"] == client_id
