"""Unit tests of pyop.userinfo.Userinfo (OIDC Core 5.1, 5.5.1)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pyop.storage import MemoryStorage
from pyop.userinfo import Userinfo

ALICE = {"name": "Alice", "email": "alice@example.com", "email_verified": True,
         "address": {"locality": "Wonderland"}, "age": 7}


@pytest.fixture
def userinfo() -> Userinfo:
    return Userinfo({"alice": dict(ALICE), "nobody": None})


class TestMappingAccess:
    def test_getitem_and_contains(self, userinfo: Userinfo) -> None:
        assert userinfo["alice"]["name"] == "Alice"
        assert "alice" in userinfo and "bob" not in userinfo
        with pytest.raises(KeyError):
            userinfo["bob"]

    def test_storage_backend(self) -> None:
        db = MemoryStorage()
        db["alice"] = dict(ALICE)
        userinfo = Userinfo(db)
        assert userinfo.get_claims_for("alice", {"name": None}) == {"name": "Alice"}
        assert userinfo.get_claims_for("bob", {"name": None}) == {}


class TestGetClaimsFor:
    def test_plain_requests(self, userinfo: Userinfo) -> None:
        requested = {"name": None, "email": None, "address": None, "phone_number": None}
        assert userinfo.get_claims_for("alice", requested) == {
            "name": "Alice", "email": "alice@example.com",
            "address": {"locality": "Wonderland"}}

    def test_unknown_user(self, userinfo: Userinfo) -> None:
        assert userinfo.get_claims_for("bob", {"name": None}) == {}
        assert userinfo.get_claims_for("nobody", {"name": None}) == {}

    def test_nothing_requested(self, userinfo: Userinfo) -> None:
        assert userinfo.get_claims_for("alice", {}) == {}

    def test_essential(self, userinfo: Userinfo, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="pyop.userinfo"):
            claims = userinfo.get_claims_for("alice", {"name": {"essential": True},
                                                       "phone_number": {"essential": True},
                                                       "email": {"essential": False}})
        assert claims == {"name": "Alice", "email": "alice@example.com"}
        assert "phone_number" in caplog.text

    @pytest.mark.parametrize("request_,released", [
        ({"value": "Alice"}, True), ({"value": "Bob"}, False),
        ({"values": ["Bob", "Alice"]}, True), ({"values": ["Bob"]}, False),
        ({"values": "Alice"}, True),  # malformed values are ignored
        ({"value": "Alice", "values": ["Bob"]}, False),
        ({"value": "Alice", "essential": True}, True),
        ({}, True),
    ])
    def test_value_and_values(self, userinfo: Userinfo, request_: dict[str, Any],
                              released: bool) -> None:
        claims = userinfo.get_claims_for("alice", {"name": request_})
        assert claims == ({"name": "Alice"} if released else {})

    def test_value_compares_typed_values(self, userinfo: Userinfo) -> None:
        assert userinfo.get_claims_for("alice", {"age": {"value": 7}}) == {"age": 7}
        assert userinfo.get_claims_for("alice", {"age": {"value": "7"}}) == {}
        assert userinfo.get_claims_for("alice", {"email_verified": {"value": True}}) == {
            "email_verified": True}

    def test_given_userinfo(self, userinfo: Userinfo) -> None:
        claims = userinfo.get_claims_for("whoever", {"name": None}, {"name": "Given"})
        assert claims == {"name": "Given"}
