"""Sealed, self-contained values: :class:`StatelessWrapper`.

In stateless mode the value *is* the key: :meth:`StatelessWrapper.seal`
encrypts and authenticates a value with its expiry into an opaque token,
and :meth:`StatelessWrapper.unseal` gives it back, or ``None`` for anything
that is not a genuine, unexpired token of this collection.

Token format (base64url, no padding, RFC 4648 5)::

    version (1 byte, 0x01) || nonce (12 random bytes) || AES-256-GCM(plaintext) || tag (16)

* AEAD: AES-256-GCM from ``cryptography`` (NIST SP 800-38D); the version
  byte is the associated data; the 96-bit nonce comes from ``os.urandom``.
* Key: HKDF-SHA256 (RFC 5869) of the secret with
  ``info = b"pyop sealed " + collection``: a token sealed for one collection
  (say ``authz_codes``) does not unseal in another (``access_tokens``).
* Plaintext: the JSON array ``[expires_at, value]``; the expiry is
  authenticated with the value.

Single use and revocation need state: :meth:`~StatelessWrapper.consume`
and :meth:`~StatelessWrapper.delete` record ``sha256(token)`` in a *replay
cache* (any :class:`~pyop.storage.StorageBase`) until the token's own
expiry. The default replay cache is an in-process :class:`MemoryStorage`;
pass a shared one (e.g. a :class:`~pyop.storage.RedisWrapper`) when the
provider runs in several processes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .base import Clock, StorageBase, check_expires_at, check_ttl
from .memory import MemoryStorage
from .schemes import register_backend

__all__ = ["StatelessWrapper"]

logger = logging.getLogger(__name__)

Secret = Union[str, bytes]

_VERSION = b"\x01"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def derive_key(secret: Secret, collection: str) -> bytes:
    """The 256-bit sealing key of ``collection``: HKDF-SHA256 (RFC 5869) of ``secret``."""
    material = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"pyop sealed " + collection.encode("utf-8"))
    return hkdf.derive(material)


class StatelessWrapper(StorageBase):
    """Stateless store: values sealed into the tokens themselves.

    ``StorageBase.from_uri("stateless://user:SECRET@host", collection="authz_codes")``
    or ``StatelessWrapper("authz_codes", SECRET)``; pyop 3's
    ``StatelessWrapper(collection, encryption_key, alg=None)`` and
    ``from_uri("stateless://user:SECRET@host?alg=aes256", ...)`` work too.

    Contract on this store: ``get(token)`` unseals (``default`` when invalid,
    expired, consumed or revoked); ``set`` does nothing (the value lives in
    the token); ``consume(token)`` unseals and enforces single use through
    the replay cache; ``delete(token)`` revokes the token until it expires;
    ``keys()`` yields nothing. ``compare_and_set`` and ``add`` cannot be
    honoured on immutable tokens and raise ``NotImplementedError``.

    :param collection: token type; part of the key derivation.
    :param secret: the secret (str or bytes, at least 16 bytes recommended),
        or a sequence of secrets for rotation: the first seals, all unseal. pyop 3
        named it ``encryption_key``, accepted as a keyword too.
    :param alg: pyop 3's algorithm name: ``None`` or ``"aes256"`` (any case), the only
        value pyop 3 accepted; either selects this sealing, AES-256-GCM (the token
        format above, not pyop 3's, whose tokens do not unseal here). Kept in
        :attr:`alg`.
    :param replay_cache: where consumed/revoked token hashes are kept; an
        in-process :class:`MemoryStorage` by default.
    :param clock: current UNIX time; decides expiry.
    :param ttl: default lifetime for :meth:`seal` without ``expires_at``.
    :raises ValueError: empty secret, or an ``alg`` other than ``aes256``.
    """

    #: Longer input is rejected by :meth:`unseal` without decoding it.
    max_token_length = 65536

    #: pyop 3's name of the (only) algorithm: AES with a 256-bit key, here AES-256-GCM.
    alg = "aes256"

    def __init__(self, collection: str,
                 secret: Union[Secret, Sequence[Secret], None] = None,
                 alg: Optional[str] = None, *,
                 encryption_key: Union[Secret, Sequence[Secret], None] = None,
                 replay_cache: Optional[StorageBase] = None, clock: Clock = time.time,
                 ttl: Optional[float] = None) -> None:
        if alg is not None and (not isinstance(alg, str) or alg.lower() != "aes256"):
            raise ValueError("unsupported encryption algorithm for sealed values "
                             "(only aes256)")
        if secret is not None and encryption_key is not None:
            raise TypeError("give the secret once (secret or encryption_key)")
        if secret is None:
            secret = encryption_key
        if secret is None:
            raise ValueError("StatelessWrapper needs a non-empty secret")
        secrets_: list[Secret] = ([secret] if isinstance(secret, (str, bytes))
                                  else list(secret))
        if not secrets_ or any(not s for s in secrets_):
            raise ValueError("StatelessWrapper needs a non-empty secret")
        if any(len(s) < 16 for s in secrets_):
            logger.warning("StatelessWrapper: a secret shorter than 16 bytes is weak")
        self.collection = collection
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self._aeads = [AESGCM(derive_key(s, collection)) for s in secrets_]
        self._owns_replay_cache = replay_cache is None
        self.replay_cache: StorageBase = (MemoryStorage(clock=clock) if replay_cache is None
                                          else replay_cache)

    def __repr__(self) -> str:
        return (f"StatelessWrapper(collection={self.collection!r}, "
                f"replay_cache={self.replay_cache!r})")

    # -- sealing ------------------------------------------------------------

    def seal(self, value: Any, expires_at: Optional[float] = None) -> str:
        """Seal ``value`` (a JSON-serialisable object, in practice a dict) until ``expires_at``.

        :param expires_at: absolute UNIX expiry; ``now + ttl`` when omitted.
        :returns: the token, base64url without padding.
        :raises ValueError: no expiry (none given and no ``ttl``), or not finite.
        :raises TypeError: ``value`` is not JSON-serialisable.
        """
        if expires_at is None:
            if not self.ttl:
                raise ValueError("sealed values need an expiry (expires_at or ttl)")
            expiry = self._clock() + self.ttl
        else:
            expiry = check_expires_at(expires_at)
        plaintext = json.dumps([expiry, value], separators=(",", ":"),
                               allow_nan=False).encode("utf-8")
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._aeads[0].encrypt(nonce, plaintext, _VERSION)
        return _b64encode(_VERSION + nonce + sealed)

    def pack(self, value: Any) -> Optional[str]:
        """Seal ``value`` into a token (pyop 3's method, built on :meth:`seal`).

        As in pyop 3, a false value (``None``, ``{}``, ``""``) packs to ``None``. The
        expiry is ``value["exp"]`` when ``value`` is a mapping with a numeric ``exp`` (as
        pyop 3's records had), else ``now + ttl``.

        :raises ValueError: no expiry (neither ``exp`` nor ``ttl``): a sealed value
            always expires.
        """
        if not value:
            return None
        expires_at = value.get("exp") if isinstance(value, Mapping) else None
        if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
            expires_at = None
        return self.seal(value, expires_at)

    def unseal(self, token: Any) -> Optional[Any]:
        """The value sealed in ``token``, or ``None``.

        ``None`` for anything but a genuine unexpired token of this
        collection and secret: tampered, truncated, empty, non-base64,
        non-canonical base64, garbage, non-str, expired, other collection,
        other secret. Never raises. (Consumption and revocation are not
        checked here: see :meth:`get`.)
        """
        opened = self._open(token)
        return None if opened is None else opened[0]

    def _open(self, token: Any) -> Optional[tuple[Any, float]]:
        """``(value, expires_at)`` of a valid, unexpired token, else None; never raises."""
        try:
            if not isinstance(token, str) or not 0 < len(token) <= self.max_token_length:
                return None
            if not _BASE64URL.fullmatch(token):
                return None
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            # One token, one string: reject non-canonical encodings (stray
            # low bits in the last character), so sha256(token) identifies it.
            if _b64encode(raw) != token:
                return None
            if len(raw) < 1 + _NONCE_SIZE + _TAG_SIZE or raw[:1] != _VERSION:
                return None
            nonce, sealed = raw[1:1 + _NONCE_SIZE], raw[1 + _NONCE_SIZE:]
            plaintext = None
            for aead in self._aeads:
                try:
                    plaintext = aead.decrypt(nonce, sealed, _VERSION)
                    break
                except InvalidTag:
                    continue
            if plaintext is None:
                return None
            expiry, value = json.loads(plaintext)
            if isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
                return None
            if not math.isfinite(expiry) or expiry <= self._clock():
                return None
            return value, float(expiry)
        except (ValueError, TypeError, binascii.Error, UnicodeError, RecursionError):
            return None
        except Exception:  # pragma: no cover - defensive: unseal never raises
            logger.exception("StatelessWrapper: unexpected error while unsealing")
            return None

    @staticmethod
    def _replay_key(token: str) -> str:
        return hashlib.sha256(token.encode("ascii")).hexdigest()

    # -- contract -----------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Unseal ``key``; ``default`` if invalid, expired, consumed or revoked."""
        opened = self._open(key)
        if opened is None:
            return default
        if self.replay_cache.get(self._replay_key(key)) is not None:
            return default
        return opened[0]

    def __getitem__(self, key: str) -> Any:
        """``store[token]``: the unsealed value, or ``None`` for anything that is not a
        valid token of this collection (as pyop 3's stateless store answered)."""
        return self.get(key)

    def set(self, key: str, value: Any, expires_at: Optional[float] = None) -> None:
        """No-op: the value lives in the token (create tokens with :meth:`seal`)."""

    def delete(self, key: str) -> bool:
        """Revoke the token until its expiry; True if it was valid and not yet revoked/used."""
        opened = self._open(key)
        if opened is None:
            return False
        return self.replay_cache.add(self._replay_key(key), True, expires_at=opened[1])

    def consume(self, key: str) -> Any:
        """Unseal and mark used: the first call returns the value, later ones ``None``.

        Atomic as the replay cache's :meth:`~StorageBase.add` is: across
        processes only with a shared replay cache.
        """
        opened = self._open(key)
        if opened is None:
            return None
        if not self.replay_cache.add(self._replay_key(key), True, expires_at=opened[1]):
            return None
        return opened[0]

    def compare_and_set(self, key: str, expected: Any, new: Any,
                        expires_at: Optional[float] = None) -> bool:
        """Not possible on sealed values: they are immutable.

        :raises NotImplementedError: always; use :meth:`consume` or :meth:`delete`.
        """
        raise NotImplementedError("sealed values are immutable: consume() or delete() the "
                                  "token and seal() a new one")

    def add(self, key: str, value: Any, expires_at: Optional[float] = None) -> bool:
        """Not possible on sealed values: the token is the value.

        :raises NotImplementedError: always; use :meth:`seal`.
        """
        raise NotImplementedError("sealed values are created with seal()")

    def purge_expired(self) -> int:
        """Purge the replay cache's expired entries."""
        return self.replay_cache.purge_expired()

    def close(self) -> None:
        """Close the replay cache if this wrapper created it."""
        if self._owns_replay_cache:
            self.replay_cache.close()

    def keys(self) -> Iterator[str]:
        """Nothing: sealed values are not enumerable."""
        return iter(())


def _create(db_uri: str, collection: str, db_name: Optional[str], ttl: Optional[int],
            **kwargs: Any) -> StatelessWrapper:
    """``StorageBase.from_uri`` for ``stateless://user:SECRET@host[?alg=aes256]``."""
    parts = urlsplit(db_uri)
    algs = [a.lower() for a in parse_qs(parts.query).get("alg", [])]
    if any(a != "aes256" for a in algs):
        raise ValueError("stateless:// URI: the only alg is aes256")
    password = parts.password
    if not password:
        raise ValueError("stateless:// URI needs the secret as its password "
                         "(stateless://user:SECRET@host)")
    alg = parse_qs(urlsplit(db_uri).query).get("alg")  # pyop 3: ?alg=aes256
    if alg and "alg" not in kwargs:
        kwargs["alg"] = alg[0]
    return StatelessWrapper(collection, unquote(password), ttl=ttl, **kwargs)


register_backend("stateless", _create, frozenset({"stateless"}))
