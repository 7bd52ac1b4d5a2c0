"""Subject identifier types (OIDC Core 8): public and pairwise."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Optional

__all__ = ["SubjectIdentifierFactory", "HashBasedSubjectIdentifierFactory"]

#: Identifiers a :class:`HashBasedSubjectIdentifierFactory` remembers (then forgets them all).
_MEMO_SIZE = 4096


class SubjectIdentifierFactory:
    """Creates subject identifiers; subclass to choose another scheme."""

    def create_public_identifier(self, user_id: str) -> str:
        """The same ``sub`` for every client (OIDC Core 8, ``public``)."""
        raise NotImplementedError

    def create_pairwise_identifier(self, user_id: str, sector_identifier: str) -> str:
        """A ``sub`` per sector identifier (OIDC Core 8.1, ``pairwise``)."""
        raise NotImplementedError


class HashBasedSubjectIdentifierFactory(SubjectIdentifierFactory):
    """Subject identifiers as keyed hashes of the user id.

    Computed as HMAC-SHA256 keyed with ``hash_salt`` over length-prefixed
    fields, so no two different (user id, sector) pairs share an input
    (OIDC Core 8.1 suggests ``sub = SHA-256(sector || local_id || salt)``; the
    HMAC and the length prefixes make the concatenation unambiguous). Public
    and pairwise identifiers are domain-separated, so they never collide.

    :param hash_salt: a secret string; changing it changes every ``sub``.
    """

    def __init__(self, hash_salt: str) -> None:
        if not hash_salt:
            raise ValueError("hash_salt must be a non-empty secret")
        self._key = hash_salt.encode("utf-8") if isinstance(hash_salt, str) else bytes(hash_salt)
        #: HMAC-SHA256 keyed, nothing hashed yet: copied for each identifier (never updated)
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)
        #: identifiers computed, by their fields (a user's ``sub`` is needed at every
        #: authorization); bounded by _MEMO_SIZE
        self._memo: dict[tuple[str, ...], str] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_keyed"]  # HMAC objects cannot be pickled or copied by copy.deepcopy
        state.pop("_memo", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)
        self._memo = {}

    def _hash(self, *fields: str) -> str:
        memo = self._memo
        identifier = memo.get(fields)
        if identifier is None:
            identifier = self._mac(fields)
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[fields] = identifier
        return identifier

    def _mac(self, fields: tuple[str, ...]) -> str:
        parts = []
        for field in fields:
            encoded = field.encode("utf-8")
            parts.append(len(encoded).to_bytes(4, "big"))
            parts.append(encoded)
        mac = self._keyed.copy()  # hmac.new(self._key, data, hashlib.sha256), key already set up
        mac.update(b"".join(parts))
        return mac.hexdigest()

    def create_public_identifier(self, user_id: str) -> str:
        return self._hash("public", str(user_id))

    def create_pairwise_identifier(self, user_id: str, sector_identifier: Optional[str]) -> str:
        return self._hash("pairwise", sector_identifier or "", str(user_id))
