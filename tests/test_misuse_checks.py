"""Early, clear errors for a provider built or used the wrong way."""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
from conftest import CLIENT_ID, REDIRECT_URI, configuration

from pyop.exceptions import InvalidConfiguration, UnknownUser
from pyop.message import AuthorizationRequest
from pyop.misuse_checks import KNOWN_CONFIGURATION_KEYS, unknown_configuration_keys
from pyop.provider import Provider
from pyop.userinfo import Userinfo

LOGGER = "pyop.misuse_checks"


def test_a_dict_as_claims_source_fails_at_construction(
        make_provider: Callable[..., Provider], jwkest_signing_key: Any) -> None:
    provider = make_provider()
    with pytest.raises(InvalidConfiguration) as error:
        Provider(jwkest_signing_key, configuration(), provider.authz_state, {},
                 {"alice": {"email": "a@example.com"}})
    message = str(error.value)
    assert message.startswith("userinfo:")
    assert "get_claims_for" in message and "Userinfo(users)" in message and "dict" in message


def test_an_object_without_get_claims_for_is_named(
        make_provider: Callable[..., Provider], jwkest_signing_key: Any) -> None:
    provider = make_provider()
    with pytest.raises(InvalidConfiguration, match="userinfo: .* got object$"):
        Provider(jwkest_signing_key, configuration(), provider.authz_state, {}, object())


def test_any_claims_source_with_get_claims_for_is_accepted(
        make_provider: Callable[..., Provider], jwkest_signing_key: Any) -> None:
    class Directory:
        def get_claims_for(self, user_id: str, requested: Any, *rest: Any) -> dict[str, Any]:
            return {}

    provider = make_provider()
    Provider(jwkest_signing_key, configuration(), provider.authz_state, {}, Directory())
    Provider(jwkest_signing_key, configuration(), provider.authz_state, {}, Userinfo({}))


def test_a_misspelled_key_is_warned_about_with_the_nearest_name(
        make_provider: Callable[..., Provider], caplog: pytest.LogCaptureFixture) -> None:
    config = configuration()
    config["response_type_supported"] = config.pop("response_types_supported")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        make_provider(config=config)
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert warnings == ["configuration_information: unknown key 'response_type_supported' "
                        "(did you mean 'response_types_supported'?); it is published as given"]


def test_an_unknown_key_without_a_near_name(
        make_provider: Callable[..., Provider], caplog: pytest.LogCaptureFixture) -> None:
    config = {**configuration(), "x_vendor_flag": True}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        make_provider(config=config)
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "configuration_information: unknown key 'x_vendor_flag'; it is published as given"]


def test_known_keys_give_no_warning(make_provider: Callable[..., Provider],
                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        provider = make_provider()
    assert not [r for r in caplog.records if r.name == LOGGER]
    # every member the provider publishes by default is known
    assert unknown_configuration_keys(provider.provider_configuration.keys()) == {}


def test_the_known_keys_cover_discovery_and_the_oauth_metadata() -> None:
    from oic.oic.message import ProviderConfigurationResponse

    assert set(ProviderConfigurationResponse.c_param) <= KNOWN_CONFIGURATION_KEYS
    assert {"introspection_endpoint", "revocation_endpoint",
            "code_challenge_methods_supported", "version"} <= KNOWN_CONFIGURATION_KEYS


def _request() -> AuthorizationRequest:
    return AuthorizationRequest(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI,
                                response_type="code", scope="openid", state="s", nonce="n")


def test_authorizing_an_unknown_user_is_reported_and_issues_nothing(
        make_provider: Callable[..., Provider]) -> None:
    provider = make_provider()
    codes = provider.authz_state.authorization_codes
    before = len(codes)
    with pytest.raises(UnknownUser) as error:
        provider.authorize(_request(), "nobody")
    assert isinstance(error.value, KeyError)  # as pyop 3's userinfo[user_id] lookup raised
    assert "nobody" in str(error.value) and "userinfo" in str(error.value)
    assert len(codes) == before


def test_a_known_user_is_authorized(make_provider: Callable[..., Provider]) -> None:
    from conftest import USERS

    provider = make_provider()
    user_id = next(iter(USERS))
    assert "code" in provider.authorize(_request(), user_id)


def test_a_claims_source_that_cannot_tell_is_trusted(
        make_provider: Callable[..., Provider], jwkest_signing_key: Any) -> None:
    class Directory:
        def get_claims_for(self, user_id: str, requested: Any, *rest: Any) -> dict[str, Any]:
            return {"email": "x@example.com"}

        def __getitem__(self, user_id: str) -> dict[str, Any]:
            raise KeyError(user_id)

    base = make_provider()
    provider = Provider(jwkest_signing_key, configuration(), base.authz_state,
                        base.clients, Directory())
    assert "code" in provider.authorize(_request(), "anyone")
