"""Letting go of the tracebacks of exceptions that a future keeps.

asyncio hands a coroutine that awaits a failed future the exception the future holds, and on its
way up the exception gathers a traceback: every frame it passes, the first of them the frame
that awaits the future. The future holds the exception, the exception its traceback, the
traceback that frame, and the frame the future: a reference cycle, which through the other
frames holds every local they had (the request, its record, the upstream exchange, their
buffers). aiohttp's drain is such a future when the client has left: its waiter fails with
``ConnectionError("Connection lost")``.

The gateway runs the cyclic collector rarely (`gateway.server.app.settle_heap`), so each cycle
would keep its request for minutes: in a download soak, the clients that left mid-answer held
9 MiB of a 68 MiB gateway. Where the gateway catches such an exception and carries on, it drops
the tracebacks first; the tests' ``no_request_cycles`` fixture checks that none is left.
"""

from __future__ import annotations

__all__ = ["drop_tracebacks"]


def drop_tracebacks(error: BaseException | None) -> None:
    """Clear the tracebacks of ``error`` and of the exceptions it chains to (its cause or
    context: a transport's own error, with the frames that held the transport)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.with_traceback(None)
        error = error.__cause__ or error.__context__
