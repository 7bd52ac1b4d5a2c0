"""Unit tests of pyop.subject_identifier (OIDC Core 8)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pyop.subject_identifier import HashBasedSubjectIdentifierFactory, SubjectIdentifierFactory


def expected(salt: str, *fields: str) -> str:
    data = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
    return hmac.new(salt.encode(), data, hashlib.sha256).hexdigest()


class TestHashBased:
    def test_public(self) -> None:
        factory = HashBasedSubjectIdentifierFactory("salt")
        sub = factory.create_public_identifier("alice")
        assert sub == expected("salt", "public", "alice")
        assert sub == factory.create_public_identifier("alice")
        assert sub != factory.create_public_identifier("bob")
        assert len(sub) == 64 and "alice" not in sub  # OIDC Core 8: no local id leaked

    def test_pairwise(self) -> None:
        factory = HashBasedSubjectIdentifierFactory("salt")
        sub = factory.create_pairwise_identifier("alice", "a.example.com")
        assert sub == expected("salt", "pairwise", "a.example.com", "alice")
        assert sub == factory.create_pairwise_identifier("alice", "a.example.com")
        assert sub != factory.create_pairwise_identifier("alice", "b.example.com")
        assert sub != factory.create_pairwise_identifier("bob", "a.example.com")
        assert sub != factory.create_public_identifier("alice")
        assert factory.create_pairwise_identifier("alice", None) == expected(
            "salt", "pairwise", "", "alice")

    def test_unambiguous_fields(self) -> None:
        factory = HashBasedSubjectIdentifierFactory("salt")
        # plain concatenation would make these equal
        assert factory.create_pairwise_identifier("b.c", "a") != \
            factory.create_pairwise_identifier("c", "a.b")
        assert factory.create_pairwise_identifier("bc", "a") != \
            factory.create_pairwise_identifier("c", "ab")

    def test_salt_matters(self) -> None:
        one = HashBasedSubjectIdentifierFactory("salt-1")
        two = HashBasedSubjectIdentifierFactory("salt-2")
        assert one.create_public_identifier("alice") != two.create_public_identifier("alice")
        assert HashBasedSubjectIdentifierFactory(b"salt").create_public_identifier(  # type: ignore
            "alice") == expected("salt", "public", "alice")

    def test_non_string_user_id(self) -> None:
        factory = HashBasedSubjectIdentifierFactory("salt")
        assert factory.create_public_identifier(42) == expected(  # type: ignore[arg-type]
            "salt", "public", "42")

    @pytest.mark.parametrize("salt", ["", None, b""])
    def test_empty_salt_refused(self, salt: object) -> None:
        with pytest.raises(ValueError):
            HashBasedSubjectIdentifierFactory(salt)  # type: ignore[arg-type]


def test_base_class_is_abstract() -> None:
    factory = SubjectIdentifierFactory()
    with pytest.raises(NotImplementedError):
        factory.create_public_identifier("alice")
    with pytest.raises(NotImplementedError):
        factory.create_pairwise_identifier("alice", "sector")


def test_hash_based_identifiers_are_hmac_sha256_of_length_prefixed_fields() -> None:
    import copy
    import pickle

    factory = HashBasedSubjectIdentifierFactory("s3cret")

    def expected(*fields: str) -> str:
        data = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
        return hmac.new(b"s3cret", data, hashlib.sha256).hexdigest()

    for _ in range(2):  # the keyed template is copied, never consumed
        assert factory.create_public_identifier("alice") == expected("public", "alice")
        assert factory.create_pairwise_identifier("alice", "rp.example.com") == \
            expected("pairwise", "rp.example.com", "alice")
    for clone in (pickle.loads(pickle.dumps(factory)),  # noqa: S301 - our own bytes
                  copy.deepcopy(factory)):
        assert clone.create_public_identifier("bob") == expected("public", "bob")


def test_remembered_identifiers_are_bounded_and_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    from pyop import subject_identifier

    monkeypatch.setattr(subject_identifier, "_MEMO_SIZE", 8)
    factory = HashBasedSubjectIdentifierFactory("salt")
    for round_ in range(3):
        for n in range(20):
            assert factory.create_public_identifier(f"user{n}") == expected(
                "salt", "public", f"user{n}"), round_
            assert factory.create_pairwise_identifier(f"user{n}", "rp.example.com") == expected(
                "salt", "pairwise", "rp.example.com", f"user{n}")
            assert len(factory._memo) <= 8
    state = factory.__getstate__()
    assert "_memo" not in state  # not pickled: no list of the users' identifiers
    clone = pickle.loads(pickle.dumps(factory))  # noqa: S301 - our own bytes
    assert clone._memo == {}
    assert clone.create_public_identifier("user1") == expected("salt", "public", "user1")
