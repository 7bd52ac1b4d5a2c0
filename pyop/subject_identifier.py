"""Subject identifier types (OIDC Core 8): public and pairwise."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Optional

__all__ = [
    "SubjectIdentifierFactory",
    "HashBasedSubjectIdentifierFactory",
    "SCHEME_SHA256",
    "SCHEME_HMAC_SHA256",
]

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


#: :class:`HashBasedSubjectIdentifierFactory` scheme (the default): SHA-256 of the
#: concatenated fields and the salt, as pyop 3 computed identifiers (OIDC Core 8.1).
SCHEME_SHA256 = "sha256"
#: :class:`HashBasedSubjectIdentifierFactory` scheme for new deployments: HMAC-SHA256
#: keyed with the salt over length-prefixed, labelled fields.
SCHEME_HMAC_SHA256 = "hmac-sha256"
_SCHEMES = (SCHEME_SHA256, SCHEME_HMAC_SHA256)


class HashBasedSubjectIdentifierFactory(SubjectIdentifierFactory):
    """Subject identifiers as hashes of the user id and a secret salt.

    With the default ``scheme="sha256"`` the identifiers are those of pyop 3,
    the formula OIDC Core 8.1 suggests: the hex SHA-256 of the UTF-8 bytes of
    ``sector_identifier + user_id + hash_salt`` (pairwise) or of
    ``user_id + hash_salt`` (public). A deployment upgrading from pyop 3 keeps
    every ``sub`` it issued.

    ``scheme="hmac-sha256"`` is for new deployments: HMAC-SHA256 keyed with
    ``hash_salt`` over length-prefixed, domain-separated fields. Plain
    concatenation is ambiguous (user ``"bc"`` in sector ``"a"`` and user ``"c"``
    in sector ``"ab"`` hash the same input, and a public identifier equals the
    pairwise one for an empty sector); the length prefixes and the
    ``public``/``pairwise`` labels make every input distinct. Switching an existing
    deployment to it changes every ``sub``.

    :param hash_salt: a secret string; changing it changes every ``sub``.
    :param scheme: ``"sha256"`` (default, pyop 3's identifiers) or ``"hmac-sha256"``.
    :raises ValueError: an empty salt or an unknown scheme.
    """

    def __init__(self, hash_salt: str, *, scheme: str = SCHEME_SHA256) -> None:
        if not hash_salt:
            raise ValueError("hash_salt must be a non-empty secret")
        if scheme not in _SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(_SCHEMES)}")
        self.scheme = scheme
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
        state.setdefault("scheme", SCHEME_HMAC_SHA256)  # pickled before schemes existed
        self.__dict__.update(state)
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)
        self._memo = {}

    def _hash(self, *fields: str) -> str:
        memo = self._memo
        identifier = memo.get(fields)
        if identifier is None:
            if self.scheme == SCHEME_SHA256:
                identifier = self._sha256(fields)
            else:
                identifier = self._mac(fields)
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[fields] = identifier
        return identifier

    def _sha256(self, fields: tuple[str, ...]) -> str:
        # fields[0] is the public/pairwise label: not hashed in this scheme (OIDC Core 8.1)
        data = "".join(fields[1:]).encode("utf-8") + self._key
        return hashlib.sha256(data).hexdigest()

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
