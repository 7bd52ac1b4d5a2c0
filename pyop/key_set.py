"""The provider's own keys: which key signs, what is published, what is verified.

RFC 7517 (JWK Set, ``kid`` 4.5), RFC 7638 (thumbprint ``kid``), OIDC Core 10.1 (signing
keys, ``kid`` when several keys are published), OIDC Dynamic Registration 2
(``id_token_signed_response_alg``, ``userinfo_signed_response_alg``), OIDC Core 3.1.2.1 and
RP-Initiated Logout 1.0 2 (``id_token_hint``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Optional, cast

from .crypto import SigningKey, VerificationKey
from .exceptions import InvalidConfiguration, UnauthorizedClient
from .id_token import verify_id_token_hint

__all__ = ["KeySet"]

logger = logging.getLogger(__name__)


class KeySet:
    """The signing keys by alg (the active one first) and every key published.

    :param signing_key: the active ID token signing key, in any form
        :meth:`SigningKey.from_key <pyop.crypto.SigningKey.from_key>` accepts.
    :param signing_keys: more private keys, at most one per alg.
    :param published_keys: keys published and accepted for ``id_token_hint``, never used
        to sign.
    :param thumbprint_kids: give keys without ``kid`` their RFC 7638 thumbprint.
    :raises InvalidConfiguration: a key cannot be used; the message names the field.
    """

    def __init__(self, signing_key: Any, signing_keys: Optional[Sequence[Any]] = None,
                 published_keys: Optional[Sequence[Any]] = None,
                 thumbprint_kids: bool = False) -> None:
        try:
            active = SigningKey.from_key(signing_key)
        except ValueError as e:
            raise InvalidConfiguration(f"signing_key: {e}") from e
        self.by_alg, self.published = _key_sets(
            active, [] if signing_keys is None else signing_keys,
            [] if published_keys is None else published_keys, thumbprint_kids)
        #: The active signing key (the default for every client).
        self.active = cast(SigningKey, self.published[0])

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set to publish (RFC 7517 5): public keys only, the active key first."""
        return {"keys": [key.to_jwk() for key in self.published]}

    @property
    def signing_algs(self) -> list[str]:
        """The JWS algs the provider can sign with (one key each), the active key's first."""
        return list(self.by_alg)

    def signing_key_for(self, client: Mapping[str, Any],
                        member: str = "id_token_signed_response_alg") -> Optional[SigningKey]:
        """The key for a client's registered alg (OIDC Dynamic Registration 2), in O(1).

        The active key when the client registered none; None when the provider has
        no key for the registered alg (a client configured by hand, or a key removed).
        """
        alg = client.get(member)
        if alg is None:
            return self.active
        key = self.by_alg.get(alg) if isinstance(alg, str) else None
        if key is None:
            logger.error("no signing key for %s %.32r of client %.64r", member, alg,
                         client.get("client_id"))
        return key

    def id_token_key(self, client: Mapping[str, Any]) -> SigningKey:
        """The key that signs the client's ID tokens.

        :raises UnauthorizedClient: no key for the client's ``id_token_signed_response_alg``.
        """
        key = self.signing_key_for(client)
        if key is None:
            raise UnauthorizedClient(
                "the provider has no key for the client's id_token_signed_response_alg")
        return key

    def verify_id_token_hint(self, id_token_hint: Any, issuer: str) -> Optional[dict[str, Any]]:
        """Claims of an ID token signed by one of these keys for ``issuer`` (expired ones
        included), or None (OIDC Core 3.1.2.1 ``id_token_hint``)."""
        return verify_id_token_hint(id_token_hint, self.published, issuer)


def _key_sets(active: SigningKey, signing_keys: Any, published_keys: Any,
              thumbprint_kids: bool = False
              ) -> tuple[dict[str, SigningKey], list[VerificationKey]]:
    """The provider's signing keys by alg and every key it publishes (the active key
    first), converted once.

    Keys keep their ``kid`` (none if they have none). Keys without one get their RFC 7638
    thumbprint as kid with ``thumbprint_kids``, and whenever more than one key is
    published: OIDC Core 10.1 requires a ``kid`` in the JWS header when the JWK Set holds
    several keys, so that the verifier can choose (RFC 7517 4.5).

    :raises InvalidConfiguration: a key that cannot be used, two signing keys for one
        alg, or two keys with the same ``kid`` (RFC 7517 4.5); the message names the field.
    """
    for name, value in (("signing_keys", signing_keys), ("published_keys", published_keys)):
        if not isinstance(value, (list, tuple)):
            raise InvalidConfiguration(f"{name}: must be a list of keys")
    signing: list[tuple[str, SigningKey]] = [("signing_key", active)]
    for i, key in enumerate(signing_keys):
        try:
            signing.append((f"signing_keys[{i}]", SigningKey.from_key(key)))
        except ValueError as e:
            raise InvalidConfiguration(f"signing_keys[{i}]: {e}") from e
    published: list[tuple[str, VerificationKey]] = []
    for i, key in enumerate(published_keys):
        try:
            published.append((f"published_keys[{i}]", VerificationKey.from_key(key)))
        except ValueError as e:
            raise InvalidConfiguration(f"published_keys[{i}]: {e}") from e
    if thumbprint_kids or len(signing) + len(published) > 1:
        signing = [(field, key.with_thumbprint_kid()) for field, key in signing]
        published = [(field, key.with_thumbprint_kid()) for field, key in published]
    by_alg: dict[str, SigningKey] = {}
    for field, key in signing:
        if key.alg in by_alg:
            raise InvalidConfiguration(
                f"{field}: a signing key for {key.alg} is already configured "
                "(at most one per alg; publish others with published_keys)")
        by_alg[key.alg] = key
    fields: list[tuple[str, VerificationKey]] = [*signing, *published]
    kids: dict[str, str] = {}
    for field, key in fields:
        if key.kid is None:
            continue
        if key.kid in kids:
            raise InvalidConfiguration(
                f"{field}: duplicate kid {key.kid!r} (also {kids[key.kid]}); "
                "give each key its own kid")
        kids[key.kid] = field
    return by_alg, [key for _field, key in fields]
