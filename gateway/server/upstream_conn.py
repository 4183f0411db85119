"""One HTTP/1.1 connection to an upstream: the asyncio protocol, its response parser (httptools,
that is llhttp in strict mode) and the facts that decide whether it may carry another request.

A connection is either *active* (one exchange on it, the client reads what arrives) or *idle*
(in the pool). Any byte or end-of-stream that arrives while idle kills it: an upstream that
speaks unasked is either closing or out of step, and reusing it could hand one client's request
the answer meant for another. Likewise a response followed by anything (stray bytes, a second
response) is complete for its client, but the connection is not reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
from collections import deque
from itertools import chain
from operator import itemgetter
from typing import cast

import httptools

from gateway.server.upstream_errors import BadResponse, ConnectionGone, fresh
from gateway.server.upstream_sink import ClientSink

__all__ = ["Head", "PoolKey", "UpstreamConnection", "reset_transport"]

# Header values may hold HTAB and visible bytes (RFC 9110 5.5); llhttp already refuses CR, LF and
# NUL, and the status reason is not checked by it at all.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_HEADERS = 256
_MAX_HEAD_BYTES = 64 * 1024
_VALUE = itemgetter(1)
# The fields that say how the body ends (noted as they arrive: read once, not searched for).
_FRAMING_FIELDS = frozenset({b"content-length", b"transfer-encoding"})
# Response body bytes queued (for an answer read whole, or before a relay takes over) before the
# upstream socket is paused. A relayed answer queues nothing (`relay_to`).
_HIGH_WATER = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)
# Every upstream socket is read into this one buffer (the size of the loops' own read buffers):
# the loop calls `get_buffer` and `buffer_updated` back to back, and the parser copies out what
# it keeps before returning. One copy per read instead of two (the loop's bytes, then llhttp's).
# Shared by every connection of the process: a worker serves from one loop in one thread.
_READ_BUFFER = memoryview(bytearray(128 * 1024))

Head = tuple[int, bytes, list[tuple[bytes, bytes]]]
# Which connections may serve a request: scheme, host, port and the TLS context (by identity).
PoolKey = tuple[str, str, int, ssl.SSLContext | None]


class _Inert:
    """Callbacks for the parser a finished connection keeps (it never parses again)."""


# The parser of every connection that has ended (`UpstreamConnection._retire`): its own parser
# holds its bound methods, a pair otherwise left to the (rare, `settle_heap`) cyclic collector.
_NO_PARSER = httptools.HttpResponseParser(_Inert())


class _Stop(Exception):
    """Raised inside a parser callback to stop llhttp where it stands."""


def reset_transport(transport: asyncio.Transport | None) -> None:
    """Close with a TCP reset (SO_LINGER 0), never a clean FIN: a peer reading a body that has no
    length must not take a cut for its end."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Already gone: abort() below is all that is left to do.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class UpstreamConnection(asyncio.BufferedProtocol):
    """The protocol of one upstream connection; the pool owns it, one exchange at a time uses it.

    Per-connection objects (parser, header list, body queue) are made once and reused by every
    exchange on the connection.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, key: PoolKey) -> None:
        self.key = key
        self.counted = True  # holds one of the pool's slots until the pool forgets it
        self.idle_since = 0.0
        self.idle = False
        self.dead = False
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[bool] | None = None
        self._drain_waiter: asyncio.Future[bool] | None = None
        self._write_paused = False
        self._read_paused = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._framing_fields: list[tuple[bytes, bytes]] = []  # (lower-case name, value)
        self._upgrade = False  # the exchange asked to switch protocols (a WebSocket handshake)
        self._tail = bytearray()  # bytes after a 101, for whoever takes the connection over
        self._begin_exchange(head_only=False)

    # -- the exchange, as the client sees it ------------------------------------------------

    def _begin_exchange(self, *, head_only: bool) -> None:
        self._head_only = head_only
        self._status = 0
        self._reason = b""
        self._headers.clear()
        self._framing_fields.clear()
        # Bytes read since the last body byte that were none (a head, 1xx heads, trailers,
        # chunk framing); `_body_moved` says a read carried body bytes.
        self._unframed = 0
        self._body_moved = False
        self._head_ready = False
        self._interim = False
        self._framing = "close"
        self.content_length: int | None = None  # the answer's, when its framing is "length"
        self._complete = False
        self._keep_alive = False
        self._stray = False
        self._error: BaseException | None = None
        self._sink: ClientSink | None = None  # a streamed answer's body goes here (`relay_to`)

    def begin(self, *, head_only: bool, upgrade: bool = False) -> None:
        """Start an exchange (``head_only`` for HEAD: the answer has no body whatever it says;
        ``upgrade`` for a handshake, whose ``101`` answer ends the exchange as its final head:
        framing ``upgrade``, the bytes after it kept for `detach`)."""
        self.idle = False
        self._upgrade = upgrade
        self._begin_exchange(head_only=head_only)

    def detach(self) -> tuple[asyncio.Transport, bytes]:
        """Hand the transport over after a ``101`` (with the bytes that followed the head); this
        protocol stops reading it, and the pool must `ConnectionPool.detach` it."""
        transport = self._transport
        if transport is None or self._framing != "upgrade":
            raise ConnectionGone
        self._retire()
        self._transport = None
        tail = bytes(self._tail)
        self._tail.clear()
        return transport, tail

    def write(self, data: bytes) -> None:
        """Queue bytes for the upstream."""
        if self._transport is None or self.dead:
            raise ConnectionGone
        self._transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        """Queue several pieces for the upstream, without joining them."""
        if self._transport is None or self.dead:
            raise ConnectionGone
        self._transport.writelines(data)

    async def drain(self, within: float) -> None:
        """Wait until the upstream has taken the written bytes off the buffer (``within`` seconds at
        most: an upstream that stops reading a request body does not hold it forever)."""
        if not self._write_paused:
            return
        if self.dead:
            raise ConnectionGone
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        await self._wait(waiter, within)
        if self.dead:
            raise ConnectionGone

    def progress(self) -> None:
        """The request body moved: a wait for the answer starts again (the head's deadline runs
        from the last request byte sent, not from the first)."""
        self._wake()

    async def head(self, within: float) -> Head:
        """The final response's status, reason and raw headers (interim 1xx answers skipped)."""
        while not self._head_ready:
            if self._error is not None:
                raise fresh(self._error)
            await self._next_event(within)
        return self._status, self._reason, self._headers

    @property
    def framing(self) -> str:
        """How the body ends: ``none`` (HEAD, 1xx, 204, 304), ``length``, ``chunked`` or
        ``close`` (read until the upstream closes: such a connection is never reused);
        ``upgrade`` after the ``101`` of a handshake (never reused either)."""
        return self._framing

    async def next_chunk(self, within: float) -> bytes:
        """The body bytes that have arrived (waiting ``within`` seconds at most for some);
        ``b""`` once the body is complete by its framing."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise fresh(self._error)
            await self._next_event(within)
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        if len(chunks) > 0:
            chunks.clear()
        self._buffered = 0
        self._resume_reading()
        return data

    def relay_to(self, sink: ClientSink) -> None:
        """From now on, hand the body to ``sink`` as llhttp yields it (what has arrived first)
        instead of queueing it for `next_chunk`; `relayed` waits for the end."""
        self._sink = sink
        backlogged = False
        for chunk in self._chunks:
            backlogged = sink.feed(chunk)
        self._chunks.clear()
        self._buffered = 0
        if backlogged:
            self._pause_reading()
        else:
            self._resume_reading()

    async def relayed(self, within: float) -> bool:
        """Wait until the relayed body is complete (True) or the client is behind (False: the
        upstream is paused until `resume_relay`). TimeoutError once ``within`` seconds pass with
        no byte relayed; a timer per wait, moved on when it fires, not one per piece."""
        sink = self._sink
        assert sink is not None
        while True:
            if self._error is not None:
                raise fresh(self._error)
            if sink.gone:
                raise ConnectionResetError("the client closed during the answer")
            if self._complete:
                self._resume_reading()  # an idle pooled connection is read: stray bytes kill it
                return True
            if self._read_paused:
                return False
            waiter = self._loop.create_future()
            self._waiter = waiter
            timer = self._loop.call_at(sink.last_write + within, _expire, waiter)
            try:
                woken = await waiter
            finally:
                timer.cancel()
            if not woken and self._loop.time() >= sink.last_write + within:
                raise TimeoutError  # raised here, not set on the future (see `_wait`)

    def resume_relay(self) -> None:
        """The client drained: read the upstream again."""
        if self._sink is not None:
            self._sink.moved()
        self._resume_reading()

    @property
    def reusable(self) -> bool:
        """Whether the answer ended by its framing, the upstream offered keep-alive, nothing else
        arrived, and the connection is still open."""
        return (
            self._complete
            and self._keep_alive
            and not self._stray
            and not self.dead
            and self._framing in ("length", "chunked", "none")
            and not self._head_only
            and self._transport is not None
            and not self._transport.is_closing()
        )

    def reset(self) -> None:
        """Drop the connection with a TCP reset (the upstream sees an aborted exchange)."""
        self._retire()
        reset_transport(self._transport)

    def close(self) -> None:
        """Close the connection cleanly (an idle connection that is no longer wanted)."""
        self._retire()
        if self._transport is not None:
            self._transport.close()

    async def _next_event(self, within: float) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        await self._wait(waiter, within)

    async def _wait(self, waiter: asyncio.Future[bool], within: float) -> None:
        timer = self._loop.call_later(within, _expire, waiter)
        try:
            woken = await waiter
        finally:
            timer.cancel()
        if not woken:
            # Raised here, not set on the future: the future would keep the exception, whose
            # traceback holds this frame, which holds the future (a cycle through the request).
            raise TimeoutError

    def _retire(self) -> None:
        """The connection carries nothing more: its parser (which holds this connection's bound
        methods) is let go, so the pair is freed by reference counting."""
        self.dead = True
        self._parser = _NO_PARSER

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(True)

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._complete:
            self._error = error
        for waiter in (self._waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(True)
        self._waiter = self._drain_waiter = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (uvloop's are not `asyncio.Transport` subclasses, but are one)."""
        self._transport = cast("asyncio.Transport", transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        """The shared read buffer (the socket is read straight into it; no bytes per read)."""
        return _READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        """What arrived in the read buffer."""
        self.data_received(_READ_BUFFER[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Parse what arrived; bytes on an idle or finished connection kill it."""
        if self.idle or self.dead:
            self.reset()
            return
        if self._framing == "upgrade" and self._head_ready:
            self._tail += data  # the new protocol's, until `detach`
            return
        if self._complete:
            self._stray = True
            return
        try:
            self._parser.feed_data(data)
            if self._body_moved:
                self._body_moved = False
                self._unframed = 0
            elif not self._complete:
                # A read that moved no body on: a head, trailers or framing still growing. Bound
                # them as they grow (an endless value or name is never a whole field; llhttp
                # would keep it until the timeout), where `on_headers_complete` checks a whole
                # head.
                self._unframed += len(data)
                if self._unframed > _MAX_HEAD_BYTES:
                    self._bad("trailers_too_large" if self._head_ready else "head_too_large")
        except httptools.HttpParserUpgrade as exc:
            if self._framing == "upgrade":
                self._tail += data[exc.args[0] :]
            else:
                self._bad("upgrade")
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Stop):
                self._bad(_reason(exc.__context__))
        except httptools.HttpParserError:
            if self._complete:
                self._stray = True  # bytes after a complete answer: it stands, the link does not
            else:
                self._bad("parse")

    def eof_received(self) -> bool:
        """The upstream closed its side: the end of a read-until-close body, else a cut."""
        if not self.idle and self._head_ready and self._framing == "close":
            self._complete = True
        self.dead = True
        self._fail(ConnectionGone())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Whatever was in progress ends here; an idle connection leaves the pool."""
        self.dead = True
        if exc is None and not self.idle and self._head_ready and self._framing == "close":
            self._complete = True
        self._fail(ConnectionGone())
        self._transport = None
        self._retire()

    def pause_writing(self) -> None:
        """The upstream reads slower than we write."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The upstream caught up."""
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(True)

    def _bad(self, reason: str) -> None:
        self._retire()
        self._fail(BadResponse(reason))
        reset_transport(self._transport)

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A response starts: after a complete one, that is a second answer nobody asked for."""
        if self._complete:
            self._stray = True
            raise _Stop

    def on_status(self, status: bytes) -> None:
        """Part of the reason phrase."""
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header line (llhttp has checked the name is a token and the value has no CR, LF
        or NUL). The count is checked as fields come; the other control bytes and the size once
        for the whole head (`on_headers_complete`), and the size as a head arrives
        (`data_received`)."""
        headers = self._headers
        if len(headers) >= _MAX_HEADERS:
            raise BadResponse("too_many_headers")
        headers.append((name, value))
        lower = name.lower()
        if lower in _FRAMING_FIELDS:
            self._framing_fields.append((lower, value))

    def on_headers_complete(self) -> None:
        """The head is whole: check it, decide the framing, and skip 1xx interim answers."""
        headers = self._headers
        if sum(map(len, chain.from_iterable(headers))) > _MAX_HEAD_BYTES:
            raise BadResponse("head_too_large")
        # One search over every value: HTAB joins them, a byte a value may hold itself.
        if _CONTROL.search(b"\t".join(map(_VALUE, headers))) is not None:
            raise BadResponse("header_bytes")
        status = self._parser.get_status_code()
        if status == 101 and self._upgrade:
            # The final head of a handshake; whether it really switched is judged by the caller.
            self._status = status
            self._framing = "upgrade"
            self._head_ready = True
            self._wake()
            return
        if 100 <= status < 200:
            # A 101 outside a handshake (none was asked for) is skipped like any interim answer,
            # or reported by llhttp as an upgrade (a bad response).
            self._interim = True
            self._headers.clear()
            self._framing_fields.clear()
            self._reason = b""
            return
        if _CONTROL.search(self._reason) is not None:
            raise BadResponse("status_reason")
        self._status = status
        self._framing = self._framing_of(status)
        self._head_ready = True
        self._wake()
        if self._head_only:
            # llhttp would wait for the body a Content-Length announces; a HEAD answer has none.
            self._complete = True
            raise _Stop

    def _framing_of(self, status: int) -> str:
        if status in (204, 304):
            return "none"
        length = chunked = False
        for lower, value in self._framing_fields:
            if lower == b"content-length":
                length = True
                self.content_length = int(value)  # llhttp has checked: one value, all digits
            elif lower == b"transfer-encoding":
                # llhttp refuses chunked anywhere but last; a coding after it is read to close.
                chunked = value.rstrip().lower().endswith(b"chunked")
        if self._head_only:
            return "none"
        if chunked:
            return "chunked"
        return "length" if length else "close"

    def on_body(self, body: bytes) -> None:
        """Body bytes (de-chunked by llhttp): to the client when relayed, else queued; the
        socket pauses when the client is behind, or past the queue's high-water mark."""
        self._body_moved = True
        sink = self._sink
        if sink is not None:
            if sink.feed(body) and not self._read_paused:
                self._pause_reading()
                self._wake()
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._read_paused:
            self._pause_reading()
        self._wake()

    def _pause_reading(self) -> None:
        if self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()

    def on_message_complete(self) -> None:
        """The answer ended by its framing."""
        if self._interim:
            self._interim = False
            return
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()


def _reason(error: BaseException | None) -> str:
    """Why a parser callback refused the answer (a callback that failed otherwise: ``parse``)."""
    return error.reason if isinstance(error, BadResponse) else "parse"


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
