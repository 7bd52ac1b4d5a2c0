"""End-users of the example OP: a JSON file of password hashes and OIDC claims.

The file maps a user id (the login name) to the user's password hash and claims::

    {
      "alice": {
        "password_hash": "pbkdf2_sha256$600000$<salt>$<hash>",
        "claims": {"name": "Alice Liddell", "email": "alice@example.com", ...}
      }
    }

Claims use the standard claim names (OIDC Core 5.1); ``sub`` is not stored, the
provider derives it. Hashes are PBKDF2-HMAC-SHA256 (``hashlib``); make one with
``python -m example --hash-password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

__all__ = ["PBKDF2_ITERATIONS", "UserStore", "derive_key", "hash_password", "verify_password"]

#: PBKDF2-HMAC-SHA256 iterations for new hashes (OWASP Password Storage Cheat Sheet).
PBKDF2_ITERATIONS = 600_000

_SCHEME = "pbkdf2_sha256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(password: str, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA256 of ``password``: the costly step of every password check."""
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "surrogatepass"), salt,
                               iterations)


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS,
                  salt: Optional[bytes] = None) -> str:
    """Hash ``password`` as ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64url)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = derive_key(password, salt, iterations)
    return f"{_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the ``encoded`` hash; False for a malformed hash."""
    try:
        scheme, iterations_text, salt_b64, hash_b64 = encoded.split("$")
        iterations = int(iterations_text)
        salt, expected = _unb64(salt_b64), _unb64(hash_b64)
    except (ValueError, AttributeError):
        return False
    if scheme != _SCHEME or not 1 <= iterations <= 10_000_000:
        return False
    digest = derive_key(password, salt, iterations)
    return hmac.compare_digest(digest, expected)


class UserStore:
    """The end-users: checks passwords and holds the claims released to clients.

    :param users: ``user id -> {"password_hash": str, "claims": {...}}``.
    :raises ValueError: a malformed entry.
    """

    def __init__(self, users: Mapping[str, Any]) -> None:
        self._hashes: dict[str, str] = {}
        #: ``user id -> claims``, the database given to :class:`pyop.userinfo.Userinfo`.
        self.claims: dict[str, dict[str, Any]] = {}
        for user_id, entry in users.items():
            if not isinstance(user_id, str) or not user_id or not isinstance(entry, Mapping):
                raise ValueError("users: each entry must be a non-empty name -> object")
            password_hash = entry.get("password_hash")
            claims = entry.get("claims", {})
            if not isinstance(password_hash, str) or not isinstance(claims, Mapping):
                raise ValueError(f"users: {user_id!r} needs a password_hash and a claims object")
            if "sub" in claims:
                raise ValueError(f"users: {user_id!r}: 'sub' is derived by the provider")
            self._hashes[user_id] = password_hash
            self.claims[user_id] = dict(claims)
        # Checked for unknown users, so they take as long as known ones (matches nothing).
        iterations = next((encoded.split("$")[1] for encoded in self._hashes.values()
                           if encoded.count("$") == 3), str(PBKDF2_ITERATIONS))
        self._dummy_hash = "$".join(
            [_SCHEME, iterations, _b64(secrets.token_bytes(16)), _b64(bytes(32))])

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> UserStore:
        """Load a users JSON file (see the module documentation)."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: must hold a JSON object")
        return cls(data)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._hashes

    def authenticate(self, username: str, password: str) -> Optional[str]:
        """The user id when ``password`` is ``username``'s, else None (constant work)."""
        encoded = self._hashes.get(username)
        matches = verify_password(password, encoded if encoded is not None else self._dummy_hash)
        return username if matches and encoded is not None else None

    def display_name(self, user_id: str) -> str:
        """A name to greet the user with."""
        claims = self.claims.get(user_id, {})
        for name in ("name", "preferred_username", "given_name", "email"):
            value = claims.get(name)
            if isinstance(value, str) and value:
                return value
        return user_id
