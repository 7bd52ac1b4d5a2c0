"""Async end-user claims sources (OIDC Core 5.1, 5.3) for :class:`~pyop.aio.AsyncProvider`.

A claims source is an :class:`AsyncUserinfo`: ``await get_claims_for(user_id,
requested_claims, userinfo=None)`` with the semantics of
:meth:`pyop.userinfo.Userinfo.get_claims_for` (only the requested claims the user
has, ``value``/``values`` honoured; OIDC Core 5.5.1). Two optional coroutines let the
provider ask more: ``get_user(user_id)`` (the user's claims record, or None) and
``has_user(user_id)``. :class:`ThreadedUserinfo` adapts a synchronous source (a
:class:`~pyop.userinfo.Userinfo` over a database, an LDAP directory...) by running each
call in a worker thread, so that its waits never block the event loop -- except a
:class:`~pyop.userinfo.Userinfo` over a plain ``dict`` (exactly those types: its lookups
are dictionary reads that never wait), which the protocol code calls directly, as the
synchronous provider does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from typing import Any, Optional, Protocol, runtime_checkable

from ..userinfo import Userinfo
from ._bridge import await_only

__all__ = ["AsyncUserinfo", "ThreadedUserinfo", "as_sync_userinfo"]


@runtime_checkable
class AsyncUserinfo(Protocol):
    """An async claims source (see the module docstring)."""

    async def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                             userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """The requested claims the user has (OIDC Core 5.5.1)."""


class ThreadedUserinfo:
    """An :class:`AsyncUserinfo` over a synchronous claims source: every lookup runs in
    a worker thread (:func:`asyncio.to_thread`, the loop's default executor).

    :param source: a :class:`~pyop.userinfo.Userinfo` or any object with its methods
        (``get_claims_for``, and optionally ``__getitem__`` and ``__contains__``).
    """

    def __init__(self, source: Any) -> None:
        self.source = source

    def __repr__(self) -> str:
        return f"ThreadedUserinfo({self.source!r})"

    async def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                             userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """The source's ``get_claims_for``, run in a worker thread (OIDC Core 5.5.1)."""
        if userinfo is None:
            claims = await asyncio.to_thread(self.source.get_claims_for, user_id,
                                             requested_claims)
        else:
            claims = await asyncio.to_thread(self.source.get_claims_for, user_id,
                                             requested_claims, userinfo)
        return dict(claims)

    async def get_user(self, user_id: str) -> Optional[Mapping[str, Any]]:
        """The user's claims record (``source[user_id]``), or None."""
        if getattr(type(self.source), "__getitem__", None) is None:
            return None

        def read() -> Optional[Mapping[str, Any]]:
            try:
                record = self.source[user_id]
            except KeyError:
                return None
            return record if isinstance(record, Mapping) else None

        return await asyncio.to_thread(read)

    async def has_user(self, user_id: str) -> bool:
        """Whether the source knows the user (True when it cannot tell)."""
        if getattr(type(self.source), "__contains__", None) is None:
            return True
        return bool(await asyncio.to_thread(self.source.__contains__, user_id))


class _BridgedUserinfo:
    """The synchronous claims source the protocol code reads, over an :class:`AsyncUserinfo`
    (every call awaits on the event loop; see :mod:`pyop.aio._bridge`)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                       userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        if userinfo is None:
            return dict(await_only(self.source.get_claims_for(user_id, requested_claims)))
        return dict(await_only(self.source.get_claims_for(user_id, requested_claims, userinfo)))

    def __getitem__(self, user_id: str) -> Any:
        get_user = getattr(self.source, "get_user", None)
        record = await_only(get_user(user_id)) if get_user is not None else None
        if record is None:
            raise KeyError(user_id)
        return record


class _BridgedUserinfoWithUsers(_BridgedUserinfo):
    """:class:`_BridgedUserinfo` of a source that tells which users it knows."""

    def __contains__(self, user_id: object) -> bool:
        return bool(await_only(self.source.has_user(user_id)))


def _never_blocks(source: Any) -> bool:
    """Whether ``source`` is a :class:`~pyop.userinfo.Userinfo` over a ``dict``: exactly
    those two types (a subclass of either may override a lookup with one that waits), so
    every lookup is an in-memory dictionary read."""
    return type(source) is Userinfo and type(source._db) is dict


def as_sync_userinfo(source: Any) -> Any:
    """The synchronous view, for the protocol code, of the claims source given to
    :class:`~pyop.aio.AsyncProvider`: an :class:`AsyncUserinfo` (``get_claims_for`` a
    coroutine function) is bridged; a :class:`~pyop.userinfo.Userinfo` over a ``dict``
    (exactly those types) is used as it is, without a thread (its lookups never wait);
    any other source is first wrapped in :class:`ThreadedUserinfo` (a synchronous source
    may block).

    :raises TypeError: ``source`` has no ``get_claims_for``.
    """
    if not callable(getattr(source, "get_claims_for", None)):
        raise TypeError("userinfo: expected a claims source with get_claims_for "
                        f"(pyop.aio.AsyncUserinfo), not {type(source).__name__}")
    if _never_blocks(source):
        return source
    if not inspect.iscoroutinefunction(source.get_claims_for):
        source = ThreadedUserinfo(source)
    if inspect.iscoroutinefunction(getattr(source, "has_user", None)):
        return _BridgedUserinfoWithUsers(source)
    return _BridgedUserinfo(source)
