"""Back-Channel Logout delivery on asyncio (OIDC Back-Channel Logout 1.0, 2.5 and 2.8).

:class:`AsyncBackChannelSender` is :class:`pyop.logout_notifications.BackChannelSender` as a
coroutine: the same options, the same retry rules and results (the
``pyop.logout_notifications.DeliveryLog`` both follow), the requests delivered
concurrently as tasks of the running event loop instead of worker threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Callable, Optional, Protocol

from ..logout_notifications import (
    BackChannelLogoutRequest,
    DeliveryLog,
    DeliveryResult,
    SenderSettings,
    deadline_result,
)

__all__ = ["AsyncBackChannelSender", "AsyncFormPoster", "AsyncTransport"]

#: ``async post(uri, form, timeout) -> HTTP status``: POSTs ``form`` (as
#: ``application/x-www-form-urlencoded``) to ``uri`` within ``timeout`` seconds, raising
#: on any failure (no connection, a forbidden address, the timeout).
AsyncTransport = Callable[[str, dict[str, str], float], Awaitable[int]]


class AsyncFormPoster(Protocol):
    """What :meth:`AsyncBackChannelSender.through` POSTs with: a
    :class:`~pyop.aio.outbound.AsyncGuardedFetcher` (``await post_form(uri, form,
    timeout=...)`` returning an answer with a ``status``)."""

    async def post_form(self, uri: str, form: Mapping[str, str], *,
                        timeout: Optional[float] = None) -> Any:
        """POST ``form`` to ``uri`` within ``timeout`` seconds; an answer with ``status``;
        raises on failure."""


class AsyncBackChannelSender(SenderSettings[AsyncTransport]):
    """POSTs Logout Tokens concurrently, each through ``transport``, all within one total
    ``deadline`` (Back-Channel Logout 1.0 2.5, 2.8); never raises for a client's failure.

    ``transport`` is ``async post(uri, form, timeout) -> status`` (see
    :data:`AsyncTransport`); the other options are those of
    :class:`~pyop.logout_notifications.SenderSettings`. At the deadline the requests not
    done are cancelled (their connections closed) and reported ``"deadline"``.
    """

    @classmethod
    def through(cls, fetcher: AsyncFormPoster, **options: Any) -> AsyncBackChannelSender:
        """A sender POSTing through an async guarded fetcher: ``await
        fetcher.post_form(uri, form, timeout=<time left>)`` (an
        :class:`~pyop.aio.outbound.AsyncGuardedFetcher`: public addresses only unless
        allowed, no redirects, no proxy from the environment). Any failure of the fetcher
        (a :class:`~pyop.exceptions.FetchError`) is a delivery failure of that request.

        :param options: as for the constructor (``deadline``, ``attempts``...).
        """
        async def post(uri: str, form: dict[str, str], timeout: float) -> int:
            return int((await fetcher.post_form(uri, form, timeout=timeout)).status)

        return cls(post, **options)

    async def __call__(self, requests: Sequence[BackChannelLogoutRequest]
                       ) -> list[DeliveryResult]:
        """Deliver ``requests``; one result each, in the same order, within the deadline."""
        if not requests:
            return []
        end = self.clock() + self.deadline
        slots = asyncio.Semaphore(min(self.max_workers, len(requests)))
        logs = [DeliveryLog(request, self.attempts) for request in requests]
        tasks = [asyncio.ensure_future(self._deliver(log, end, slots)) for log in logs]
        try:
            await asyncio.wait(tasks, timeout=max(0.0, end - self.clock()))
        finally:
            late = [task for task in tasks if not task.done()]
            for task in late:
                task.cancel()  # their requests end now, their connections are closed
            if late:
                await asyncio.wait(late)
        return [log.result() if task.done() and not task.cancelled()
                and task.exception() is None else deadline_result(log.request)
                for log, task in zip(logs, tasks)]

    async def _deliver(self, log: DeliveryLog, end: float, slots: asyncio.Semaphore) -> None:
        request = log.request
        async with slots:
            while True:
                timeout = log.begin(end - self.clock())
                if timeout is None:
                    return
                try:
                    log.answered(int(await self.transport(request.uri, request.form, timeout)))
                except Exception as e:  # noqa: BLE001 - a client's failure is a result
                    log.failed(e)
                if not log.retry_pending():
                    return
                await asyncio.sleep(min(self.retry_delay, max(0.0, end - self.clock())))
