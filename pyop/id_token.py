"""ID Tokens (OIDC Core 2, 3.1.3.6, 3.2.2.10, 3.3.2.11)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from .crypto import JWSError, SigningKey, VerificationKey, jws_sign, jws_verify, left_hash

__all__ = ["create_id_token", "verify_id_token_hint", "PROTECTED_CLAIMS"]

logger = logging.getLogger(__name__)

#: Claims the library sets itself; extra claims from the host cannot override them.
PROTECTED_CLAIMS = frozenset(["iss", "sub", "aud", "exp", "iat", "nonce", "at_hash", "c_hash",
                              "azp"])


def create_id_token(
    signing_key: SigningKey,
    issuer: str,
    client_id: str,
    subject_identifier: str,
    *,
    now: int,
    lifetime: int,
    nonce: Optional[str] = None,
    auth_time: Optional[int] = None,
    acr: Optional[str] = None,
    amr: Optional[Sequence[str]] = None,
    access_token: Optional[str] = None,
    authorization_code: Optional[str] = None,
    claims: Optional[Mapping[str, Any]] = None,
    extra_claims: Optional[Mapping[str, Any]] = None,
    audience: Any = None,
    sid: Optional[str] = None,
) -> str:
    """Create and sign an ID token (OIDC Core 2).

    ``at_hash``/``c_hash`` use the hash of the signing alg (OIDC Core
    3.3.2.11). ``claims`` are end-user claims (OIDC Core 5.4 / 5.5);
    ``extra_claims`` come from the host. Neither may override the claims in
    :data:`PROTECTED_CLAIMS`. ``audience`` is the ``aud`` claim, ``client_id`` or a list
    holding it (OIDC Core 2 allows both); by default ``client_id``. ``sid`` is the login
    session (Front-Channel Logout 1.0 3, Back-Channel Logout 1.0 2.1), set over any
    extra claim of that name.
    """
    payload: dict[str, Any] = {}
    for source in (claims, extra_claims):
        if source:
            for name, value in source.items():
                if name in PROTECTED_CLAIMS:
                    logger.warning("ignoring extra ID token claim %s set by the library", name)
                    continue
                payload[name] = value
    payload.update(iss=issuer, sub=subject_identifier,
                   aud=client_id if audience is None else audience, iat=now, exp=now + lifetime)
    if nonce is not None:
        payload["nonce"] = nonce
    if auth_time is not None:
        payload["auth_time"] = int(auth_time)
    if acr is not None:
        payload["acr"] = acr
    if amr is not None:
        payload["amr"] = list(amr)
    if access_token is not None:
        payload["at_hash"] = left_hash(access_token, signing_key.alg)
    if authorization_code is not None:
        payload["c_hash"] = left_hash(authorization_code, signing_key.alg)
    if sid is not None:
        payload["sid"] = sid
    # the JOSE header is {"alg"} plus the key's kid if it has one, as pyop 3 made it (OIDC
    # Core 2 asks for no typ; relying parties compare headers with what pyop 3 sent)
    return jws_sign(payload, signing_key)


def verify_id_token_hint(token: Any, keys: Sequence[VerificationKey],
                         issuer: str) -> Optional[dict[str, Any]]:
    """Claims of an ID token this provider issued, or ``None``.

    Used for ``id_token_hint`` (OIDC Core 3.1.2.1, RP-Initiated Logout 2): the
    signature must verify with one of our keys and the alg must be the key's
    (so ``alg: none`` and foreign keys fail); ``iss`` must be ours. An expired
    token is accepted, as the specifications allow.
    """
    try:
        claims = jws_verify(token, keys)
    except JWSError:
        return None
    if claims.get("iss") != issuer or not isinstance(claims.get("sub"), str):
        return None
    aud = claims.get("aud")
    if not (isinstance(aud, str) or (isinstance(aud, list) and aud and all(
            isinstance(a, str) for a in aud))):
        return None
    return claims
