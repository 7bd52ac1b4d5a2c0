"""Which storage backend a URI selects: the registry of URI schemes (RFC 3986 3.1).

Each backend module registers the schemes it serves with :func:`register_backend` when
it is imported (``pyop.storage`` imports them all), and
:meth:`pyop.storage.StorageBase.from_uri` / :meth:`~pyop.storage.StorageBase.type`
look the URI up here, so the storage contract imports no backend. A host adds a backend
the same way: register it, then name it by its URI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = ["Backend", "register_backend", "backend_for", "uri_scheme"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """A registered storage backend.

    :param kind: what :meth:`StorageBase.type` returns for its URIs (``"redis"``...).
    :param create: ``create(db_uri, collection, db_name, ttl, **kwargs)`` returns the store.
    :param schemes: the URI schemes it serves (lower case).
    :param accepts: ``accepts(scheme, db_uri)`` claims URIs of other schemes; asked
        in registration order once no backend registered the scheme itself.
    :param needs_collection: whether ``from_uri`` requires a collection name.
    """

    kind: str
    create: Callable[..., Any]
    schemes: frozenset[str]
    accepts: Optional[Callable[[str, str], bool]] = None
    needs_collection: bool = True


#: The registered backends by kind, in registration order.
_BACKENDS: dict[str, Backend] = {}


def register_backend(kind: str, create: Callable[..., Any], schemes: frozenset[str], *,
                     accepts: Optional[Callable[[str, str], bool]] = None,
                     needs_collection: bool = True) -> Backend:
    """Register (or replace) the backend of ``kind`` for ``schemes``."""
    backend = Backend(kind, create, frozenset(s.lower() for s in schemes), accepts,
                      needs_collection)
    _BACKENDS[kind] = backend
    logger.debug("storage backend %r serves %s", kind, sorted(backend.schemes))
    return backend


def uri_scheme(db_uri: str) -> str:
    """The lower-case scheme of a storage URI.

    :raises ValueError: not a URI (no ``:``).
    """
    if not isinstance(db_uri, str) or ":" not in db_uri:
        raise ValueError("not a storage URI (expected scheme://...)")
    return db_uri.split(":", 1)[0].strip().lower()


def backend_for(db_uri: str) -> Backend:
    """The backend serving ``db_uri``.

    :raises ValueError: unknown scheme (the message names the scheme, never the rest
        of the URI, which may hold a password).
    """
    scheme = uri_scheme(db_uri)
    for backend in _BACKENDS.values():
        if scheme in backend.schemes:
            return backend
    if scheme:
        for backend in _BACKENDS.values():
            if backend.accepts is not None and backend.accepts(scheme, db_uri):
                return backend
    raise ValueError(f"unknown storage URI scheme {scheme!r}")
