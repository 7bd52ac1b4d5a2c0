"""End-user claims source (OIDC Core 5.1, 5.3)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

__all__ = ["Userinfo"]

logger = logging.getLogger(__name__)


_NONE_ONLY = frozenset([type(None)])


class Userinfo:
    """Claims of the end-users, looked up by the host's local user id.

    :param db: any mapping ``user_id -> dict of claims`` (a dict, or a pyop
        storage such as ``MongoWrapper``); claim names are the standard OIDC
        claim names (OIDC Core 5.1).
    """

    def __init__(self, db: Mapping[str, Any]) -> None:
        self._db = db

    def __getitem__(self, item: str) -> Any:
        return self._db[item]

    def __contains__(self, item: object) -> bool:
        return item in self._db

    def get_claims_for(
        self,
        user_id: str,
        requested_claims: Mapping[str, Any],
        userinfo: Optional[Mapping[str, Any]] = None,
    ) -> dict[str, Any]:
        """The requested claims the user has, honouring ``value``/``values``.

        :param user_id: the host's local user id.
        :param requested_claims: ``claim name -> None`` or an individual claim
            request ``{"essential": bool, "value": v, "values": [...]}``
            (OIDC Core 5.5.1). A claim requested with ``value``/``values`` is
            returned only when the user's value matches. Essential claims the
            user lacks are omitted (not an error, OIDC Core 5.5.1).
        :param userinfo: the user's claims, when the caller already has them.
        """
        if userinfo is None:
            userinfo = self._db.get(user_id, {})
            if userinfo is None:
                userinfo = {}
        if set(map(type, requested_claims.values())) <= _NONE_ONLY:
            # no individual claim request (the usual): the claims the user has, in order
            return {name: userinfo[name] for name in requested_claims if name in userinfo}
        claims: dict[str, Any] = {}
        for name, request in requested_claims.items():
            if request is None:  # released when the user has it
                if name in userinfo:
                    claims[name] = userinfo[name]
                continue
            if name not in userinfo:
                # (None, the usual request, first: isinstance on an ABC is slow)
                if (request is not None and isinstance(request, Mapping)
                        and request.get("essential")):
                    logger.info("essential claim %s not available for the user", name)
                continue
            value = userinfo[name]
            if request is not None and isinstance(request, Mapping):
                if "value" in request and value != request["value"]:
                    continue
                values = request.get("values")
                if isinstance(values, list) and value not in values:
                    continue
            claims[name] = value
        return claims
