"""Unit tests of pyop.subject_identifier (OIDC Core 8)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pyop.subject_identifier import (
    SCHEME_HMAC_SHA256,
    SCHEME_SHA256,
    HashBasedSubjectIdentifierFactory,
    SubjectIdentifierFactory,
)


def expected(salt: str, *fields: str) -> str:
    """The ``scheme="hmac-sha256"`` identifier: HMAC over length-prefixed fields."""
    data = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
    return hmac.new(salt.encode(), data, hashlib.sha256).hexdigest()


def concatenated(salt: str, *fields: str) -> str:
    """The default identifier: SHA-256 of the fields and the salt (OIDC Core 8.1)."""
    return hashlib.sha256(("".join(fields) + salt).encode()).hexdigest()


def hmac_factory(salt: str) -> HashBasedSubjectIdentifierFactory:
    return HashBasedSubjectIdentifierFactory(salt, scheme=SCHEME_HMAC_SHA256)


class TestDefaultScheme:
    """SHA-256 of sector + user id + salt, as pyop 3 (see also test_upgrade_subjects.py)."""

    def test_public(self) -> None:
        factory = HashBasedSubjectIdentifierFactory("salt")
        assert factory.scheme == SCHEME_SHA256
        sub = factory.create_public_identifier("alice")
        assert sub == concatenated("salt", "alice")
        assert sub == factory.create_public_identifier("alice")
        assert sub != factory.create_public_identifier("bob")
        assert len(sub) == 64 and "alice" not in sub  # OIDC Core 8: no local id leaked

    def test_pairwise(self) -> None:
        factory = HashBasedSubjectIdentifierFactory("salt")
        sub = factory.create_pairwise_identifier("alice", "a.example.com:8443")
        assert sub == concatenated("salt", "a.example.com:8443", "alice")
        assert sub != factory.create_pairwise_identifier("alice", "a.example.com")
        assert sub != factory.create_pairwise_identifier("bob", "a.example.com:8443")
        assert sub != factory.create_public_identifier("alice")

    def test_the_concatenation_is_ambiguous(self) -> None:
        # why scheme="hmac-sha256" exists: these pairs share one hash input
        factory = HashBasedSubjectIdentifierFactory("salt")
        assert factory.create_pairwise_identifier("bc", "a") == \
            factory.create_pairwise_identifier("c", "ab")
        assert factory.create_pairwise_identifier("alice", "") == \
            factory.create_public_identifier("alice")

    def test_unicode_bytes_salt_and_non_string_user_id(self) -> None:
        factory = HashBasedSubjectIdentifierFactory("s\u00e4lt")
        assert factory.create_public_identifier("\u00fcser") == \
            concatenated("s\u00e4lt", "\u00fcser")
        assert HashBasedSubjectIdentifierFactory(b"salt").create_public_identifier(  # type: ignore
            "alice") == concatenated("salt", "alice")
        assert HashBasedSubjectIdentifierFactory("salt").create_public_identifier(
            42) == concatenated("salt", "42")  # type: ignore[arg-type]

    def test_unknown_scheme_refused(self) -> None:
        with pytest.raises(ValueError, match="scheme"):
            HashBasedSubjectIdentifierFactory("salt", scheme="md5")


class TestHmacScheme:
    def test_public(self) -> None:
        factory = hmac_factory("salt")
        sub = factory.create_public_identifier("alice")
        assert sub == expected("salt", "public", "alice")
        assert sub == factory.create_public_identifier("alice")
        assert sub != factory.create_public_identifier("bob")
        assert sub != HashBasedSubjectIdentifierFactory("salt").create_public_identifier("alice")
        assert len(sub) == 64 and "alice" not in sub  # OIDC Core 8: no local id leaked

    def test_pairwise(self) -> None:
        factory = hmac_factory("salt")
        sub = factory.create_pairwise_identifier("alice", "a.example.com")
        assert sub == expected("salt", "pairwise", "a.example.com", "alice")
        assert sub == factory.create_pairwise_identifier("alice", "a.example.com")
        assert sub != factory.create_pairwise_identifier("alice", "b.example.com")
        assert sub != factory.create_pairwise_identifier("bob", "a.example.com")
        assert sub != factory.create_public_identifier("alice")
        assert factory.create_pairwise_identifier("alice", None) == expected(
            "salt", "pairwise", "", "alice")

    def test_unambiguous_fields(self) -> None:
        factory = hmac_factory("salt")
        # plain concatenation would make these equal
        assert factory.create_pairwise_identifier("b.c", "a") != \
            factory.create_pairwise_identifier("c", "a.b")
        assert factory.create_pairwise_identifier("bc", "a") != \
            factory.create_pairwise_identifier("c", "ab")
        assert factory.create_pairwise_identifier("alice", "") != \
            factory.create_public_identifier("alice")

    def test_salt_matters(self) -> None:
        one = hmac_factory("salt-1")
        two = hmac_factory("salt-2")
        assert one.create_public_identifier("alice") != two.create_public_identifier("alice")
        assert hmac_factory(b"salt").create_public_identifier(  # type: ignore[arg-type]
            "alice") == expected("salt", "public", "alice")

    def test_non_string_user_id(self) -> None:
        factory = hmac_factory("salt")
        assert factory.create_public_identifier(42) == expected(  # type: ignore[arg-type]
            "salt", "public", "42")


@pytest.mark.parametrize("salt", ["", None, b""])
@pytest.mark.parametrize("scheme", [SCHEME_SHA256, SCHEME_HMAC_SHA256])
def test_empty_salt_refused(salt: object, scheme: str) -> None:
    with pytest.raises(ValueError):
        HashBasedSubjectIdentifierFactory(salt, scheme=scheme)  # type: ignore[arg-type]


def test_base_class_is_abstract() -> None:
    factory = SubjectIdentifierFactory()
    with pytest.raises(NotImplementedError):
        factory.create_public_identifier("alice")
    with pytest.raises(NotImplementedError):
        factory.create_pairwise_identifier("alice", "sector")


def test_hash_based_identifiers_are_hmac_sha256_of_length_prefixed_fields() -> None:
    import copy
    import pickle

    factory = hmac_factory("s3cret")

    def expected(*fields: str) -> str:
        data = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
        return hmac.new(b"s3cret", data, hashlib.sha256).hexdigest()

    for _ in range(2):  # the keyed template is copied, never consumed
        assert factory.create_public_identifier("alice") == expected("public", "alice")
        assert factory.create_pairwise_identifier("alice", "rp.example.com") == \
            expected("pairwise", "rp.example.com", "alice")
    for clone in (pickle.loads(pickle.dumps(factory)),  # noqa: S301 - our own bytes
                  copy.deepcopy(factory)):
        assert clone.scheme == SCHEME_HMAC_SHA256
        assert clone.create_public_identifier("bob") == expected("public", "bob")
    default = HashBasedSubjectIdentifierFactory("s3cret")
    for clone in (pickle.loads(pickle.dumps(default)),  # noqa: S301 - our own bytes
                  copy.deepcopy(default)):
        assert clone.scheme == SCHEME_SHA256
        assert clone.create_public_identifier("bob") == concatenated("s3cret", "bob")


@pytest.mark.parametrize("scheme", [SCHEME_SHA256, SCHEME_HMAC_SHA256])
def test_remembered_identifiers_are_bounded_and_unchanged(monkeypatch: pytest.MonkeyPatch,
                                                          scheme: str) -> None:
    import pickle

    from pyop import subject_identifier

    def want(*fields: str) -> str:
        if scheme == SCHEME_SHA256:
            return concatenated("salt", *fields[1:])
        return expected("salt", *fields)

    monkeypatch.setattr(subject_identifier, "_MEMO_SIZE", 8)
    factory = HashBasedSubjectIdentifierFactory("salt", scheme=scheme)
    for round_ in range(3):
        for n in range(20):
            assert factory.create_public_identifier(f"user{n}") == want(
                "public", f"user{n}"), round_
            assert factory.create_pairwise_identifier(f"user{n}", "rp.example.com") == want(
                "pairwise", "rp.example.com", f"user{n}")
            assert len(factory._memo) <= 8
    state = factory.__getstate__()
    assert "_memo" not in state  # not pickled: no list of the users' identifiers
    clone = pickle.loads(pickle.dumps(factory))  # noqa: S301 - our own bytes
    assert clone._memo == {}
    assert clone.create_public_identifier("user1") == want("public", "user1")
