"""The gateway's client connection: aiohttp's request handler (one per connection), with the
gateway's error page, header deadline and request loop.

It reaches into aiohttp's private parts, like `gateway.server.aiohttp_overrides`, whose
`PRIVATE_SHAPES` lists each one this class relies on and is checked on every server built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web, web_protocol
from aiohttp.http import RawRequestMessage
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from gateway.core.headers import request_id
from gateway.core.refusals import parser_refusal
from gateway.server.access import AccessEntry, log_access
from gateway.server.logs import get_logger
from gateway.server.render import render

__all__ = ["GatewayConnection"]

_log = get_logger()


class GatewayConnection(RequestHandler):
    """Override: `RequestHandler.handle_error` (documented nowhere) writes aiohttp's error page;
    ours is the JSON refusal, quotes nothing the client sent, and logs one access line.

    Override: `data_received` also runs the header deadline. aiohttp has only the keep-alive
    timeout, so a head trickled a byte at a time could take all of it; here a request head
    must be complete within ``header_timeout`` of its first byte (of the connection, for the
    first request), whatever keep-alive allows between requests.

    Override: `start`, the connection's request loop. aiohttp's runs each request's handler in a
    task of its own, which on Python 3.11 (no eager tasks) costs a task, a turn of the event loop
    and two WeakSet updates per request: 14 % of a refusal's instructions on asyncio's loop, 4 %
    on uvloop's. This one awaits the handler in the connection's own task, and otherwise keeps
    aiohttp's loop (parser errors answered by `handle_error`, the keep-alive timer) but one
    part: it never lingers. A connection whose request body the answer left unread is closed
    once the answer is out, never read on (the gateway ran aiohttp with ``lingering_time=0``
    already; the door closes such connections itself, and this is the loop's backstop). (The
    task gave each request a fresh copy of the context variables; the gateway keeps no request
    state in context variables.)
    """

    __slots__ = ("_head_deadline", "_head_since", "header_timeout", "on_refusal")
    header_timeout: float
    on_refusal: Callable[[int, str], None] | None

    # One timer per connection, not one per request: the loop time a head started is noted
    # (``_head_since``, None while no head is awaited) and the timer, when it fires, closes the
    # connection if that head is still incomplete, or re-arms itself for the time left. A
    # keep-alive connection thus costs a timer every ``header_timeout`` seconds at most, instead
    # of a timer created and cancelled for every request.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_since: float | None = None
        self._start_head_deadline()

    def data_received(self, data: bytes) -> None:
        # Private: `_current_request` and `_messages` say whether a request is being handled
        # or has been parsed; bytes arriving when neither is the case belong to a head.
        if self._head_since is None and self._current_request is None and not self._messages:
            self._start_head_deadline()
        super().data_received(data)
        if self._messages or self._current_request is not None:
            self._head_since = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._head_since = None
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _start_head_deadline(self) -> None:
        timeout = getattr(self, "header_timeout", 0.0)
        if not timeout:
            return
        self._head_since = self._loop.time()
        if self._head_deadline is None:
            self._head_deadline = self._loop.call_later(timeout, self._check_head)

    def _check_head(self) -> None:
        self._head_deadline = None
        since = self._head_since
        if since is None or self.transport is None:
            return
        if self._current_request is not None or self._messages:
            self._head_since = None
            return
        left = since + self.header_timeout - self._loop.time()
        if left > 0:
            self._head_deadline = self._loop.call_later(left, self._check_head)
            return
        _log.info("request_head_timeout", **{"client.ip": _peer(self.transport)})
        self.transport.close()

    async def start(self) -> None:
        # Private: the handler's state (`_messages`, `_waiter`, `_force_close`, `_close`,
        # `_keepalive`, the keep-alive timer) and `_handle_request`, which calls the handler and
        # `finish_response`; each is in `PRIVATE_SHAPES`.
        loop = self._loop
        while not self._force_close:
            if not self._messages:
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            message, payload = self._messages.popleft()
            self._take_message()
            request, handler = self._request_for(message, payload)
            try:
                try:
                    started = loop.time() if self._logging_enabled else None
                    response, reset = await self._handle_request(request, started, handler)
                except ConnectionError:  # the client left before its answer was written
                    break
                if reset:
                    break
                self._keepalive = bool(response.keep_alive)
                if not payload.is_eof():  # the rest of the body would be read as a request
                    self.close()
                payload.set_exception(web_protocol._PAYLOAD_ACCESS_ERROR)
            except asyncio.CancelledError:
                self.force_close()
                raise
            except Exception as error:
                self.log_exception("Unhandled exception", exc_info=error)
                self.force_close()
            except BaseException:
                self.force_close()
                raise
            finally:
                request._task = None  # type: ignore[assignment]  # no cycle through a traceback
            if not self._keepalive or self._close or self._force_close:
                break
            self._arm_keepalive()
        if not self._force_close:
            self._task_handler = None
            if self.transport is not None:
                self.transport.close()

    def _take_message(self) -> None:
        """Free the parser's slot for the message just taken, and read again if the queue of
        parsed requests paused reading and is now short enough."""
        if self._parser is not None:
            self._parser.message_consumed()
        if self._buffer_paused and len(self._messages) <= self._msg_queue_resume_size:
            self._resume_reading_if_drained()

    def _request_for(
        self, message: RawRequestMessage | web_protocol._ErrInfo, payload: StreamReader
    ) -> tuple[web.BaseRequest, Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]]:
        """The request and its handler: the door, or `handle_error` for a request the parser
        refused (aiohttp's `_ErrInfo`, made a request from its placeholder message)."""
        assert self._manager is not None
        assert self._request_factory is not None
        assert self._request_handler is not None
        self._manager.requests_count += 1
        if isinstance(message, web_protocol._ErrInfo):
            handler = self._make_error_handler(message)
            message = web_protocol.ERROR
        else:
            handler = self._request_handler
        task = self._task_handler or asyncio.current_task(self._loop)
        assert task is not None  # this runs in the connection's task
        writer = StreamWriter(self, self._loop)
        return self._request_factory(message, payload, self, writer, task), handler

    def _arm_keepalive(self) -> None:
        """Close the connection if no next request starts within the keep-alive timeout (one
        timer per connection, re-armed by aiohttp's `_process_keepalive`)."""
        close_at = self._loop.time() + self._keepalive_timeout
        self._next_keepalive_close_time = close_at
        if self._keepalive_handle is None:
            self._keepalive_handle = self._loop.call_at(close_at, self._process_keepalive)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Private: `StreamWriter.output_size` says whether a response has started.
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        refusal = parser_refusal(status)
        rid = request_id([])
        response = render(refusal, rid)
        response.force_close()
        if status >= 500 and exc is not None:
            _log.error(
                "request_failed", **{"error.type": type(exc).__name__, "http.request.id": rid}
            )
        entry = AccessEntry(
            started=datetime.now(UTC),
            request_id=rid,
            client_ip=request.remote,
            status=status,
            response_bytes=len(response.body or b""),  # type: ignore[arg-type]
            auth_reason=refusal.reason,
        )
        log_access(entry)
        on_refusal = getattr(self, "on_refusal", None)
        if on_refusal is not None:  # counted in the request metrics like any refusal
            on_refusal(status, refusal.reason)
        return response


def _peer(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None
