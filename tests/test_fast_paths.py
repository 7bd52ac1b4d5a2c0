"""The shortcuts of the code flow's common path give what the general path gives.

Each shortcut is compared with the general computation it stands for: empty ``oic``
messages, identifiers, granted scopes, the response type
sets remembered per list of values, the claims of a request without individual claim
requests, the scope claims.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import configuration
from hypothesis import given, settings
from hypothesis import strategies as st
from support.races import THREADS, race

import pyop.message
from pyop import claims_policy
from pyop.message import Message, message_from_plain_values, new_message
from pyop.request_validator import _response_type_sets, _response_type_sets_of
from pyop.response_mode import response_type_set
from pyop.userinfo import Userinfo
from pyop.util import is_valid_identifier

# -- empty messages ---------------------------------------------------------------------------

_MESSAGE_CLASSES = sorted(
    {cls for name in pyop.message.__all__
     for cls in [getattr(pyop.message, name)]
     if isinstance(cls, type) and issubclass(cls, Message)},
    key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", _MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
def test_new_message_is_the_empty_message(cls: type[Message]) -> None:
    made, called = new_message(cls), cls()
    assert type(made) is cls
    assert vars(made) == vars(called)
    assert made.to_dict() == called.to_dict()
    made["x"] = "1"
    assert "x" not in cls().to_dict()  # its own members, not the class defaults


def test_new_message_calls_a_class_with_its_own_constructor() -> None:
    class Counted(pyop.message.AuthorizationResponse):
        made = 0

        def __init__(self, **kwargs: Any) -> None:
            type(self).made += 1
            super().__init__(**kwargs)

    message = new_message(Counted)
    assert type(message) is Counted and Counted.made == 1


def test_new_message_keeps_openid_schema_dropping_empty_defaults() -> None:
    class WithEmptyDefault(pyop.message.UserinfoResponse):
        c_default = {"name": "", "locale": "fr"}

    # OpenIDSchema.from_dict drops members that are None or "" (defaults included)
    assert new_message(WithEmptyDefault).to_dict() == WithEmptyDefault().to_dict() \
        == {"locale": "fr"}


def test_messages_of_plain_values_are_not_shared() -> None:
    first = message_from_plain_values(pyop.message.UserinfoResponse, {"sub": "a"})
    second = message_from_plain_values(pyop.message.UserinfoResponse, {"sub": "b"})
    assert first.to_dict() == {"sub": "a"} and second.to_dict() == {"sub": "b"}


# -- identifiers --------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


@settings(max_examples=1000)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xE000), max_size=12))
def test_valid_identifiers_as_defined(value: str) -> None:
    expected = value != "" and not _CONTROL.search(value) and not _SURROGATE.search(value)
    assert is_valid_identifier(value) is expected


def test_identifiers_of_other_types_are_invalid() -> None:
    class Text(str):
        pass

    for value in (None, b"abc", 1, ["a"], Text("abc")):
        assert is_valid_identifier(value) is False


# -- granted scopes -----------------------------------------------------------------------------

def _provider(make_provider: Any, options: dict[str, Any]) -> Any:
    options = dict(options)
    config = configuration()
    if "scopes_supported" in options:
        config["scopes_supported"] = options.pop("scopes_supported")
    authz = {}
    if "refresh_token_lifetime" in options:
        authz["refresh_token_lifetime"] = options.pop("refresh_token_lifetime")
    return make_provider(config=config, authz_kwargs=authz, **options)


@pytest.mark.sync_only
@pytest.mark.parametrize("scope", [
    ["openid"], ["openid", "profile", "email"], ["email", "openid", "email"],
    ["openid", "custom"], ["openid", "offline_access"], ["phone", "address", "unknown"], [],
])
@pytest.mark.parametrize("options", [
    {}, {"scopes_supported": ["openid", "custom"]}, {"extra_scopes": {"custom": ["x"]}},
    {"refresh_token_lifetime": 3600},
])
def test_granted_scope_as_the_allowed_scopes_give(make_provider: Any, scope: list[str],
                                                   options: dict[str, Any]) -> None:
    op = _provider(make_provider, options)
    ctx = op._context
    request = {"scope": scope}
    allowed = claims_policy.allowed_scopes(ctx)
    assert claims_policy.granted_scope(ctx, request) == [s for s in scope if s in allowed]


@pytest.mark.sync_only
def test_scope_claims_in_order_with_extra_scopes(make_provider: Any) -> None:
    ctx = make_provider(extra_scopes={"custom": ["x", "email"],
                                      "email": ["only_this"]})._context
    claims = claims_policy.scope_claims(ctx, ["openid", "custom", "email", "profile"])
    assert all(value is None for value in claims.values())
    expected: list[str] = []
    for names in (["x", "email"], ["only_this"], list(claims_policy.SCOPE_CLAIMS["profile"])):
        expected += [name for name in names if name not in expected]
    assert list(claims) == expected


# -- response type sets -------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    ["code"], ["code", "id_token token", "code id_token"], ["id_token  code"], [],
    ("code",), "code", [["code", "token"]],
])
def test_response_type_sets_as_computed_one_by_one(values: Any) -> None:
    expected = [response_type_set(value) for value in values]
    sets = _response_type_sets(values)
    assert sorted(map(sorted, sets)) == sorted(map(sorted, set(expected)))
    for value in values:
        assert response_type_set(value) in sets


def test_response_type_sets_follow_a_changed_list() -> None:
    supported = ["code"]
    assert frozenset(["token"]) not in _response_type_sets(supported)
    supported.append("token")  # a provider's metadata changed in place
    assert frozenset(["token"]) in _response_type_sets(supported)


def test_response_type_sets_of_invalid_values_fail_as_before() -> None:
    with pytest.raises(TypeError):
        _response_type_sets([1])
    with pytest.raises(TypeError):
        _response_type_sets(None)


def test_response_type_sets_from_threads() -> None:
    _response_type_sets_of.cache_clear()
    lists = [[f"code{i}", "id_token token"] for i in range(50)]

    def check(_round: int) -> bool:
        return all(_response_type_sets(values) == frozenset(
            response_type_set(value) for value in values) for values in lists)

    outcomes = race(check, rounds=20)  # 8 threads released together, 20 rounds
    assert all(all(round_) and len(round_) == THREADS for round_ in outcomes)


# -- claims of a user ---------------------------------------------------------------------------

def test_claims_requested_without_individual_requests() -> None:
    users = Userinfo({"u": {"name": "N", "email": "e@example.com", "email_verified": False}})
    requested = {"email_verified": None, "name": None, "nickname": None,
                 "email": {"value": "other@example.com"}}
    # in the order requested; the user's missing claims omitted, a mismatching value too
    assert list(users.get_claims_for("u", requested).items()) == [
        ("email_verified", False), ("name", "N")]


def _claims_one_by_one(user: dict[str, Any], requested: dict[str, Any]) -> dict[str, Any]:
    """OIDC Core 5.5.1 by the letter: each requested claim the user has, unless its
    ``value``/``values`` do not match."""
    claims = {}
    for name, request in requested.items():
        if name not in user:
            continue
        if isinstance(request, dict):
            if "value" in request and user[name] != request["value"]:
                continue
            if isinstance(request.get("values"), list) and user[name] not in request["values"]:
                continue
        claims[name] = user[name]
    return claims


_CLAIM = st.sampled_from(["name", "email", "email_verified", "nickname", "locale", "sub"])


@given(st.dictionaries(_CLAIM, st.one_of(st.text(max_size=3), st.booleans()), max_size=5),
       st.dictionaries(_CLAIM, st.one_of(
           st.none(), st.just({}), st.fixed_dictionaries({"value": st.text(max_size=3)}),
           st.fixed_dictionaries({"essential": st.booleans()})), max_size=6))
def test_claims_of_a_user_as_requested(user: dict[str, Any],
                                       requested: dict[str, Any]) -> None:
    claims = Userinfo({"u": user}).get_claims_for("u", requested)
    expected = _claims_one_by_one(user, requested)
    assert list(claims.items()) == list(expected.items())
