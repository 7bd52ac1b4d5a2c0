"""The state of issued grants, for :mod:`pyop.aio`: :class:`AsyncAuthorizationState`."""

from __future__ import annotations

from typing import Any, Optional

from ..authz_state import AuthorizationState
from ..subject_identifier import SubjectIdentifierFactory
from ._mirrored import AuthorizationStateCoroutines
from .storage.base import as_sync_storage

__all__ = ["AsyncAuthorizationState"]


class AsyncAuthorizationState(AuthorizationStateCoroutines):
    """:class:`~pyop.authz_state.AuthorizationState` on async storage, its public methods
    as coroutines (same arguments, results and exceptions).

    :param subject_identifier_factory: as for :class:`~pyop.authz_state.AuthorizationState`.
    :param authorization_code_db: an :class:`~pyop.aio.storage.AsyncStorageBase` (e.g.
        ``AsyncStorageBase.from_uri("redis://...", collection="authz_codes")``), an
        in-memory store or dict, or None (in memory); likewise ``access_token_db``,
        ``refresh_token_db``, ``subject_identifier_db`` and the keyword
        ``pushed_authorization_request_db``.
    :param options: the other keyword arguments of
        :class:`~pyop.authz_state.AuthorizationState` (lifetimes, caches, clock).
    :raises TypeError: a synchronous store that makes I/O was given (it would block the
        event loop).
    """

    def __init__(self, subject_identifier_factory: SubjectIdentifierFactory,
                 authorization_code_db: Optional[Any] = None,
                 access_token_db: Optional[Any] = None,
                 refresh_token_db: Optional[Any] = None,
                 subject_identifier_db: Optional[Any] = None, **options: Any) -> None:
        if "pushed_authorization_request_db" in options:
            options["pushed_authorization_request_db"] = as_sync_storage(
                options["pushed_authorization_request_db"], "pushed_authorization_request_db")
        #: The synchronous state the coroutines run (its stores are the async ones' views).
        self.sync = AuthorizationState(
            subject_identifier_factory,
            as_sync_storage(authorization_code_db, "authorization_code_db"),
            as_sync_storage(access_token_db, "access_token_db"),
            as_sync_storage(refresh_token_db, "refresh_token_db"),
            as_sync_storage(subject_identifier_db, "subject_identifier_db"),
            **options)
