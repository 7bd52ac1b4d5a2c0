"""Unit tests of pyop.util: request parsing, response encoding decisions, small helpers."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyop.exceptions import InvalidRequestError
from pyop.message import AuthorizationRequest
from pyop.util import (
    DEFAULT_MAX_REQUEST_SIZE,
    claims_request_member,
    duplicated_parameters,
    find_common_values,
    is_https_or_loopback_http,
    is_loopback_host,
    json_encode_function,
    parse_request_parameters,
    response_type_set,
    should_fragment_encode,
)


class TestParseRequestParameters:
    def test_str_bytes_dict(self) -> None:
        expected = {"a": "1", "b": "x y", "c": "\u00e9"}
        assert parse_request_parameters("a=1&b=x+y&c=%C3%A9") == expected
        assert parse_request_parameters(b"a=1&b=x%20y&c=%C3%A9") == expected
        assert parse_request_parameters(bytearray(b"a=1&b=x+y&c=%C3%A9")) == expected
        assert parse_request_parameters({"a": "1", "b": "x y", "c": "\u00e9"}) == expected
        assert parse_request_parameters("c=\u00e9&a=1&b=x+y") == expected

    def test_none_and_empty(self) -> None:
        assert parse_request_parameters(None) == {}
        assert parse_request_parameters("") == {}
        assert parse_request_parameters(b"") == {}
        assert parse_request_parameters({}) == {}

    def test_blank_values_are_absent(self) -> None:
        assert parse_request_parameters("a=&b=1&c") == {"b": "1"}
        assert parse_request_parameters({"a": "", "b": "1"}) == {"b": "1"}
        # a blank duplicate is not a duplicate
        assert parse_request_parameters("a=1&a=") == {"a": "1"}

    def test_duplicates_become_lists(self) -> None:
        assert parse_request_parameters("a=1&a=2&a=3&b=4") == {"a": ["1", "2", "3"], "b": "4"}
        assert parse_request_parameters({"a": ["1", "2"], "b": ("3",)}) == {"a": ["1", "2"],
                                                                             "b": "3"}

    @pytest.mark.parametrize("body", [b"a=\xff", b"\xc3(", "a=%ff", "a=%C3%28", "%ff=1",
                                      "a=%ED%A0%80"])
    def test_invalid_utf8(self, body: Any) -> None:
        with pytest.raises(InvalidRequestError, match="UTF-8") as info:
            parse_request_parameters(body)
        assert info.value.oauth_error == "invalid_request" and info.value.http_status == 400

    def test_oversized(self) -> None:
        limit = DEFAULT_MAX_REQUEST_SIZE
        assert DEFAULT_MAX_REQUEST_SIZE == 65536
        parse_request_parameters("a=" + "x" * (limit - 2))
        for body in ("a=" + "x" * (limit - 1), b"a=" + b"x" * (limit - 1),
                     {"a": "x" * limit}):
            with pytest.raises(InvalidRequestError, match="too large"):
                parse_request_parameters(body)
        with pytest.raises(InvalidRequestError, match="too large"):
            parse_request_parameters("a=12345", max_size=6)
        assert parse_request_parameters("a=12345", max_size=7) == {"a": "12345"}

    def test_too_many_fields(self) -> None:
        with pytest.raises(InvalidRequestError, match="malformed"):
            parse_request_parameters("&".join(f"a{i}=1" for i in range(1001)))

    @pytest.mark.parametrize("request_", [
        {"a": 1}, {"a": None}, {"a": b"x"}, {"a": ["x", 2]}, {"a": {"b": "c"}}, {1: "a"},
        {"a": [["x"]]},
    ])
    def test_non_string_values(self, request_: Any) -> None:
        with pytest.raises(InvalidRequestError, match="string"):
            parse_request_parameters(request_)

    @pytest.mark.parametrize("request_", [5, 1.5, ["a=1"], object(), True])
    def test_unsupported_types(self, request_: Any) -> None:
        with pytest.raises(InvalidRequestError, match="unsupported"):
            parse_request_parameters(request_)

    @pytest.mark.parametrize("request_", ["a=\ud800", "a\udcff=1", {"a": "\udcff"},
                                          {"a": ["x", "\ud800"]}, {"\ud800": "1"}])
    def test_lone_surrogates(self, request_: Any) -> None:
        # not encodable as UTF-8 (RFC 6749 Appendix B), so never echoed back in a URL
        with pytest.raises(InvalidRequestError, match="UTF-8"):
            parse_request_parameters(request_)

    @pytest.mark.parametrize("request_", ["a=%00", "a%00=1", {"a": "\x00"}, {"a\x00": "1"},
                                          "a=\x00", "b=1&a\x00=1", b"a=%00", b"a=\x00",
                                          "a=x%2500&b=%00"])
    def test_nul(self, request_: Any) -> None:
        with pytest.raises(InvalidRequestError, match="NUL"):
            parse_request_parameters(request_)

    def test_semicolon_is_not_a_separator(self) -> None:
        assert parse_request_parameters("a=1;b=2") == {"a": "1;b=2"}


class TestShouldFragmentEncode:
    @pytest.mark.parametrize("response_type,mode,fragment", [
        ("code", None, False), ("code", "query", False), ("code", "fragment", True),
        ("id_token", None, True), ("id_token token", None, True), ("code id_token", None, True),
        ("code token", None, True), ("code id_token token", None, True),
        ("id_token", "query", True), ("none", None, False), (None, None, False),
        ("code", "form_post", False),
    ])
    def test_dicts(self, response_type: Any, mode: Any, fragment: bool) -> None:
        request = {"response_type": response_type, "response_mode": mode}
        assert should_fragment_encode({k: v for k, v in request.items() if v}) is fragment

    @pytest.mark.parametrize("response_type,fragment", [
        ("code", False), ("id_token", True), ("code id_token", True), ("token id_token", True)])
    def test_messages_and_their_to_dict(self, response_type: str, fragment: bool) -> None:
        message = AuthorizationRequest(client_id="c", redirect_uri="https://rp/cb",
                                       response_type=response_type, scope="openid")
        assert should_fragment_encode(message) is fragment
        assert should_fragment_encode(message.to_dict()) is fragment
        assert should_fragment_encode(AuthorizationRequest().from_dict(message.to_dict())) \
            is fragment

    def test_list_forms(self) -> None:
        assert should_fragment_encode({"response_type": ["code", "id_token"]}) is True
        assert should_fragment_encode({"response_type": ["code id_token"]}) is True
        assert should_fragment_encode({"response_type": ["code"]}) is False


class TestHelpers:
    @pytest.mark.parametrize("value,expected", [
        (None, set()), ("", set()), ("code", {"code"}), ("id_token  code", {"code", "id_token"}),
        (["code", "id_token"], {"code", "id_token"}), (["code id_token"], {"code", "id_token"}),
        (("token",), {"token"}), ([1, None, "code"], {"code"}),
    ])
    def test_response_type_set(self, value: Any, expected: set[str]) -> None:
        assert response_type_set(value) == frozenset(expected)

    def test_response_type_order_insignificant(self) -> None:
        assert response_type_set("token id_token code") == response_type_set(
            "code id_token token")

    @pytest.mark.parametrize("host,loopback", [
        ("localhost", True), ("LOCALHOST", True), ("127.0.0.1", True), ("127.1.2.3", True),
        ("::1", True), ("[::1]", True), (None, False), ("", False), ("example.com", False),
        ("localhost.example.com", False), ("10.0.0.1", False), ("::2", False),
        ("0.0.0.0", False),  # noqa: S104 - a host name, not a bind address
    ])
    def test_is_loopback_host(self, host: Any, loopback: bool) -> None:
        assert is_loopback_host(host) is loopback

    @pytest.mark.parametrize("uri,ok", [
        ("https://op.example.com", True), ("https://op.example.com/path", True),
        ("http://localhost:8000", True), ("http://127.0.0.1", True), ("http://[::1]:80", True),
        ("http://op.example.com", False), ("https://", False), ("ftp://localhost", False),
        ("op.example.com", False), ("", False), ("HTTP://localhost", True),
        ("http://[::1", False), ("https://[op.example.com", False),
    ])
    def test_is_https_or_loopback_http(self, uri: str, ok: bool) -> None:
        assert is_https_or_loopback_http(uri) is ok

    def test_find_common_values(self) -> None:
        # as pyop 3: values compared as unordered sets of their words
        assert find_common_values(["a", "b", "c"], ("b", "c", "d")) == {
            frozenset({"b"}), frozenset({"c"})}
        assert find_common_values(["id_token code"], ["code id_token", "code"]) == {
            frozenset({"code", "id_token"})}
        assert find_common_values([], ["a"]) == set()

    def test_duplicated_parameters(self) -> None:
        assert duplicated_parameters({"b": ["1", "2"], "a": ["x", "y"], "c": "3"}) == ["a", "b"]
        assert duplicated_parameters({}) == []
        assert duplicated_parameters({"a": "1", "b": "2"}) == []

        class Values(list[str]):
            pass

        assert duplicated_parameters({"a": Values(["1", "2"]), "b": "2", "c": 3}) == ["a"]

    @pytest.mark.parametrize("request_,member,expected", [
        ({}, "userinfo", {}),
        ({"claims": None}, "userinfo", {}),
        ({"claims": "not a mapping"}, "userinfo", {}),
        ({"claims": {"id_token": {"a": None}}}, "userinfo", {}),
        ({"claims": {"id_token": {"a": None}}}, "id_token", {"a": None}),
        ({"claims": {"userinfo": ["a"]}}, "userinfo", {}),
        ({"claims": {"userinfo": {"a": {"essential": True}}}}, "userinfo",
         {"a": {"essential": True}}),
    ])
    def test_claims_request_member(self, request_: dict[str, Any], member: str,
                                   expected: dict[str, Any]) -> None:
        assert claims_request_member(request_, member) == expected

    def test_claims_request_member_with_message_member(self) -> None:
        from pyop.message import Message

        request = {"claims": {"userinfo": Message(email={"essential": True})}}
        assert claims_request_member(request, "userinfo") == {"email": {"essential": True}}

    def test_claims_request_member_of_message(self) -> None:
        message = AuthorizationRequest().from_dict({
            "client_id": "c", "response_type": "code", "scope": "openid",
            "claims": {"userinfo": {"email": {"essential": True}}, "id_token": {"x": None}}})
        assert claims_request_member(message, "userinfo") == {"email": {"essential": True}}
        assert claims_request_member(message, "id_token") == {"x": None}
        result = claims_request_member(message, "userinfo")
        result["new"] = None  # a copy: the request is not modified
        assert "new" not in claims_request_member(message, "userinfo")


_QUERY_ALPHABET = st.sampled_from(["a", "b", "=", "&", "+", "%", "%20", "%41", "%e9", "%C3%A9",
                                    "%ZZ", "%2B", "%26", "%3D", " ", "~", "\u00e9", "%C3"])


@settings(max_examples=500)
@given(st.lists(_QUERY_ALPHABET, max_size=40).map("".join))
def test_query_parsing_matches_parse_qsl(query: str) -> None:
    from urllib.parse import parse_qsl

    from pyop.util import _parse_qsl

    try:
        expected: Any = parse_qsl(query, keep_blank_values=True, errors="strict",
                                  max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as e:
        expected = type(e)
    try:
        actual: Any = _parse_qsl(query)
    except (UnicodeDecodeError, ValueError) as e:
        actual = type(e)
    assert actual == expected


#: Also what the escape decoding of ``_unquote_strict`` could misread: backslashes, escapes
#: of a backslash, "%" with one hex digit or a non-hex one.
_UNQUOTE_ALPHABET = st.one_of(_QUERY_ALPHABET, st.sampled_from(
    ["\\", "\\x41", "\\n", "%5C", "%5c", "%5Cx41", "%4", "%0g", "%%41", "x", "1", "G", "%00",
     "%ff", "%FF"]))


@settings(max_examples=500)
@given(st.lists(_UNQUOTE_ALPHABET, max_size=20).map("".join))
def test_unquote_strict_matches_unquote(text: str) -> None:
    from urllib.parse import unquote

    from pyop.util import _unquote_strict

    try:
        expected: Any = unquote(text, errors="strict")
    except UnicodeDecodeError as e:
        expected = type(e)
    try:
        actual: Any = _unquote_strict(text)
    except UnicodeDecodeError as e:
        actual = type(e)
    assert actual == expected


@pytest.mark.parametrize("text", ["a%20b", "%E2%82%AC", "%4", "%0g", "\\x41%41", "plain"])
def test_unquote_strict_without_escape_decode(monkeypatch: pytest.MonkeyPatch,
                                              text: str) -> None:
    """An interpreter without ``codecs.escape_decode``: the same results, decoded by
    ``unquote_to_bytes``."""
    from urllib.parse import unquote

    import pyop.util

    monkeypatch.setattr(pyop.util, "_escape_decode", None)
    assert pyop.util._unquote_strict(text) == unquote(text, errors="strict")


@settings(max_examples=500)
@given(st.lists(st.one_of(_UNQUOTE_ALPHABET, st.sampled_from(["a=", "=b", "b=a&b=c", "&&", "%00"])),
                max_size=40).map("".join))
def test_parse_request_parameters_of_a_query_matches_parse_qsl(query: str) -> None:
    """Blank values omitted, repeated names to lists, errors (and NUL characters) as
    InvalidRequestError, with no exception of the decoding in its context."""
    from urllib.parse import parse_qsl

    expected: Any
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except UnicodeDecodeError:
        expected = "request is not valid UTF-8"
    except ValueError:
        expected = "malformed request"
    else:
        expected = {}
        for name, value in pairs:
            if value and ("\x00" in name or "\x00" in value):
                expected = "NUL character in request"
                break
            if value:
                previous = expected.get(name)
                expected[name] = value if previous is None else (
                    previous + [value] if isinstance(previous, list) else [previous, value])
    try:
        actual: Any = parse_request_parameters(query)
    except InvalidRequestError as e:
        assert e.__context__ is None
        actual = str(e)
    assert actual == expected
    assert parse_request_parameters(query.encode("utf-8")) == actual if isinstance(
        actual, dict) else True


def test_query_parsing_field_limit() -> None:
    from pyop.util import _parse_qsl

    assert len(_parse_qsl("&".join(["a=b"] * 1000))) == 1000
    with pytest.raises(ValueError):
        _parse_qsl("&".join(["a=b"] * 1001))


_JSON_ENCODERS = [json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False),
                  json.JSONEncoder(separators=(",", ":"))]


def _outcome(encode: Any, value: Any) -> tuple[str, str]:
    try:
        return "ok", encode(value)
    except Exception as e:  # noqa: BLE001 - the error is what is compared
        return type(e).__name__, str(e)


def _json_cases() -> list[Any]:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    looped_list: list[Any] = []
    looped_list.append(looped_list)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    return [{"a": 1, "b": [1, 2.5, None, True], "c": {"z": "\u00e9", "y": "\u2028"}},
            {"t": (1, 2)}, {1: "a", "b": 2}, "str", [1, {"b": 1, "a": 2}], 1.5, None,
            {"f": float("nan")}, {"o": object()}, {"s": {1}}, looped, {"l": looped_list},
            deep]


@pytest.mark.parametrize("encoder", _JSON_ENCODERS)
def test_json_encode_function_as_encode(encoder: json.JSONEncoder) -> None:
    """Same text, or the same error, as ``encoder.encode`` (circular values included)."""
    encode = json_encode_function(encoder)
    for value in _json_cases():
        assert _outcome(encode, value) == _outcome(encoder.encode, value)


def test_json_encode_function_threads() -> None:
    """No state shared between calls: concurrent encodings of one value all succeed."""
    encode = json_encode_function(_JSON_ENCODERS[0])
    value = {"b": [{"x": i} for i in range(50)], "a": "v"}
    expected = _JSON_ENCODERS[0].encode(value)
    results: list[str] = []

    def work() -> None:
        for _ in range(200):
            results.append(encode(value))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 800


def test_json_encode_function_other_encoders() -> None:
    """Encoders with ``indent`` or without ``ensure_ascii`` keep their own ``encode``."""
    for encoder in (json.JSONEncoder(indent=2), json.JSONEncoder(ensure_ascii=False)):
        assert json_encode_function(encoder) == encoder.encode


def test_json_encode_function_without_the_c_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C encoder, or with one whose constructor differs, the plain method."""
    encoder = json.JSONEncoder(sort_keys=True)
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert json_encode_function(encoder) == encoder.encode

    def other_signature(*args: Any) -> Any:
        raise TypeError("takes 10 arguments")

    monkeypatch.setattr(json.encoder, "c_make_encoder", other_signature)
    assert json_encode_function(encoder) == encoder.encode
