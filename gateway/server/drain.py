"""Draining: the requests in flight, waited for at shutdown and cut at the drain deadline.

`InFlight` knows every request being handled: the door runs each one through `InFlight.run`,
inside its own accounting. At shutdown the server waits for them until the deadline, then cuts
the rest: each cut request's task is cancelled and `run` answers for it, so the door still writes
its access line. A request that had sent nothing yet gets a 503 ``temporarily_unavailable``; one
whose response had started keeps the status it sent, and its connection is reset before the
body ends, so that the client can tell the body is incomplete. Both are logged with
``gateway.auth.reason: shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.core.refusals import Refusal
from gateway.server.access import RequestRecord
from gateway.server.upstream import RESPONSE_STARTED
from gateway.server.upstream_conn import reset_transport
from gateway.server.wire import Whole

__all__ = ["CUT_GRACE", "SHUTDOWN_REASON", "SHUTTING_DOWN", "InFlight"]

# The access log's gateway.auth.reason for a request cut at the deadline.
SHUTDOWN_REASON = "shutdown"
SHUTTING_DOWN = Refusal(
    503,
    "temporarily_unavailable",
    "The gateway is shutting down; retry the request",
    SHUTDOWN_REASON,
    {"Retry-After": "1"},
)
CUT_GRACE = 0.3  # how long cut requests get to unwind and write their answer and access line


class InFlight:
    """The requests being handled, so that shutdown can wait for them and cut the rest."""

    def __init__(self) -> None:
        self._requests: dict[asyncio.Task[object], web.BaseRequest] = {}
        self._cutting: set[asyncio.Task[object]] = set()
        # Set when no request is in flight; made when the drain starts (before that nobody waits
        # for it, and keeping it per request would cost every request two calls).
        self._idle: asyncio.Event | None = None
        self._on_drain: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._requests)

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the drain starts (to end what would never finish by itself:
        WebSocket tunnels)."""
        self._on_drain.append(callback)

    async def drain(self, deadline: float) -> int:
        """Wait until the loop time ``deadline`` for every request in flight to finish, then cut
        the rest; the number cut (each has had its answer and access line once this returns, or
        `CUT_GRACE` has passed)."""
        idle = self._idle = asyncio.Event()
        if not self._requests:
            idle.set()
        for callback in self._on_drain:
            callback()
        if self._requests:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await idle.wait()
        cut = list(self._requests)
        for task in cut:
            self._cutting.add(task)
            task.cancel()
        if cut:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), CUT_GRACE)
        return len(cut)

    async def run(
        self,
        request: web.BaseRequest,
        record: RequestRecord,
        answer: Callable[[], Awaitable[web.StreamResponse | Whole | Refusal]],
    ) -> web.StreamResponse | Whole | Refusal:
        """``answer()``, tracked; a request cut at the drain deadline is answered here."""
        task = asyncio.current_task()
        assert task is not None  # a handler always runs in a task
        self._requests[task] = request
        idle = self._idle
        if idle is not None:
            idle.clear()
        try:
            return await answer()
        except asyncio.CancelledError:
            if task not in self._cutting:
                raise
            return _cut(request, record)
        finally:
            if task in self._cutting:
                self._cutting.discard(task)
                task.uncancel()  # the cancellation was ours, and it is answered
            del self._requests[task]
            if not self._requests and self._idle is not None:
                self._idle.set()


def _cut(request: web.BaseRequest, record: RequestRecord) -> web.StreamResponse:
    """The answer for a request cut at the drain deadline, noted on its access record."""
    started = request.get(RESPONSE_STARTED)
    if started is None:
        response: web.StreamResponse = record.refuse(SHUTTING_DOWN, keep_auth=True)
    else:
        # The status and part of the body are out. The connection is reset before aiohttp ends
        # the response: a chunked body never gets its last chunk, and a body read until the
        # close (an HTTP/1.0 client's) never looks complete, which a clean close would make it.
        response = started
        reset_transport(request.transport)
    response.force_close()
    record.auth_reason = SHUTDOWN_REASON
    return response
