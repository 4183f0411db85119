"""Draining: the requests in flight, waited for at shutdown and cut at the drain deadline.

`InFlight` knows every request being handled (its middleware sits inside the access-log
middleware). At shutdown the server waits for them until the deadline, then cuts the rest: each
cut request's handler is cancelled and the middleware answers for it, so the access-log
middleware still writes its line. A request that had sent nothing yet gets a 503
``temporarily_unavailable``; one whose response had started keeps the status it sent, and its
connection is closed before the body ends, so that the client can tell the body is incomplete.
Both are logged with ``auth.reason: shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.core.refusals import Refusal
from gateway.server.access import ACCESS

__all__ = ["CUT_GRACE", "SHUTDOWN_REASON", "SHUTTING_DOWN", "InFlight"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SHUTDOWN_REASON = "shutdown"  # the access log's auth.reason for a request cut at the deadline
SHUTTING_DOWN = Refusal(
    503,
    "temporarily_unavailable",
    "The gateway is shutting down; retry the request",
    SHUTDOWN_REASON,
    {"Retry-After": "1"},
)
CUT_GRACE = 0.3  # how long cut requests get to unwind and write their answer and access line
_STARTED = web.RequestKey("response_started", web.StreamResponse)


class InFlight:
    """The requests being handled, so that shutdown can wait for them and cut the rest."""

    def __init__(self) -> None:
        self._requests: dict[asyncio.Task[object], web.Request] = {}
        self._cutting: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._requests)

    def install(self, app: web.Application) -> None:
        """Track ``app``'s requests: call before the app starts, after the access-log middleware
        is in place (this one must run inside it)."""
        app.middlewares.append(self._middleware())
        app.on_response_prepare.append(_note_started)

    async def drain(self, deadline: float) -> int:
        """Wait until the loop time ``deadline`` for every request in flight to finish, then cut
        the rest; the number cut (each has had its answer and access line once this returns, or
        `CUT_GRACE` has passed)."""
        if self._requests:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._idle.wait()
        cut = list(self._requests)
        for task in cut:
            self._cutting.add(task)
            task.cancel()
        if cut:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), CUT_GRACE)
        return len(cut)

    def _middleware(self) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None  # a handler always runs in a task
            self._requests[task] = request
            self._idle.clear()
            try:
                return await handler(request)
            except asyncio.CancelledError:
                if task not in self._cutting:
                    raise
                return _cut(request)
            finally:
                if task in self._cutting:
                    self._cutting.discard(task)
                    task.uncancel()  # the cancellation was ours, and it is answered
                del self._requests[task]
                if not self._requests:
                    self._idle.set()

        return middleware


async def _note_started(request: web.Request, response: web.StreamResponse) -> None:
    request[_STARTED] = response


def _cut(request: web.Request) -> web.StreamResponse:
    """The answer for a request cut at the drain deadline, noted on its access record."""
    record = request[ACCESS]
    started = request.get(_STARTED)
    if started is None:
        response: web.StreamResponse = record.refuse(SHUTTING_DOWN, keep_auth=True)
    else:
        # The status and part of the body are out. Closing the connection before aiohttp ends the
        # response keeps a chunked body from looking complete (its last chunk is never written).
        response = started
        if request.transport is not None:
            request.transport.close()
    response.force_close()
    record.auth_reason = SHUTDOWN_REASON
    return response
