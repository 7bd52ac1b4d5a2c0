"""Checks shared by the JWTs clients sign: client assertions and request objects.

* NumericDate values (RFC 7519 2) must be finite numbers: JSON parsers accept ``NaN``,
  ``Infinity`` and ``1e400`` (an infinite float), which compare false with everything
  and would otherwise slip through ``exp``/``nbf``/``iat`` checks.
* Explicit typing (RFC 8725 3.11, RFC 9101 10.8): :func:`jwt_type` reads the ``typ``
  header the way RFC 7515 4.1.9 defines it (case-insensitive, ``application/`` optional).
* Single use (RFC 7523 3 item 7, RFC 9101 10.8 via ``jti``): :func:`use_jti_once` records
  a ``jti`` with the atomic ``add`` of the storage contract until the JWT expires.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, Optional

__all__ = ["MAX_JTI_LENGTH", "is_numeric_date", "jwt_type", "use_jti_once"]

#: Longest ``jti`` accepted, in characters.
MAX_JTI_LENGTH = 512


def is_numeric_date(value: Any) -> bool:
    """Whether ``value`` is a JSON number usable as a NumericDate (RFC 7519 2): an int, or
    a finite float; never a boolean, ``NaN`` or an infinity."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def jwt_type(header: Mapping[str, Any]) -> Optional[str]:
    """The JWS ``typ`` header as a lowercase media type without ``application/``
    (RFC 7515 4.1.9), or None when absent; ``""`` when it is not a string."""
    typ = header.get("typ")
    if typ is None:
        return None
    if not isinstance(typ, str):
        return ""
    typ = typ.strip().lower()
    return typ[len("application/"):] if typ.startswith("application/") else typ


def use_jti_once(store: Any, kind: str, client_id: str, jti: str, expires_at: float) -> bool:
    """Record that ``client_id`` used ``jti`` for a JWT of ``kind``; False when already used.

    The record lives in ``store`` (anything with the storage contract's atomic ``add``)
    until ``expires_at`` (after which the JWT is refused as expired anyway), under a key
    that is a digest: fixed length, and no client-chosen text in storage keys. Of any
    number of concurrent calls with the same values, exactly one returns True.
    """
    digest = hashlib.sha256(f"{client_id}\x00{jti}".encode("utf-8", "surrogatepass"))
    key = f"{kind}:{digest.hexdigest()}"
    expires = int(expires_at) + 1
    return bool(store.add(key, {"token_type": kind, "exp": expires}, expires_at=expires))
