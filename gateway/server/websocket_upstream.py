"""The upstream end of a WebSocket tunnel: the connection the handshake switched, now speaking
frames (the gateway is the upstream's client: it masks what it sends).

Reading pauses once ``high_water`` bytes of messages wait unread, so a fast upstream and a slow
client never pile messages up in the gateway; writes wait for the socket to drain.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

from gateway.core.websocket_frames import FrameError, Message, MessageReader, Opcode, encode_frame
from gateway.server.upstream_conn import reset_transport
from gateway.server.upstream_errors import fresh

__all__ = ["UpstreamSocket"]

_HIGH_WATER = 256 * 1024


class UpstreamSocket(asyncio.Protocol):
    """Messages from the upstream (`receive`) and frames to it (`send`)."""

    def __init__(self, max_message_size: int, *, high_water: int = _HIGH_WATER) -> None:
        self._reader = MessageReader(max_message_size)
        self._high_water = high_water
        self._messages: deque[Message] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._error: FrameError | None = None
        self._gone = False
        self._read_paused = False
        self._write_paused = False
        self._transport: asyncio.Transport | None = None

    def attach(self, transport: asyncio.Transport, tail: bytes) -> None:
        """Take the transport over; ``tail``: bytes that arrived with the handshake's answer."""
        self._transport = transport
        transport.set_protocol(self)
        if tail:
            self.data_received(tail)
        if transport.is_closing():
            self._gone = True

    async def receive(self) -> Message | None:
        """The next message or control frame; None once the upstream has gone (raises
        `FrameError` when it broke the protocol)."""
        while not self._messages:
            if self._error is not None:
                raise fresh(self._error)
            if self._gone:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        message = self._messages.popleft()
        self._buffered -= len(message.data)
        if self._read_paused and self._buffered < self._high_water and self._transport:
            self._read_paused = False
            self._transport.resume_reading()
        return message

    async def send(self, opcode: Opcode, payload: bytes) -> None:
        """Write one masked frame and wait until the socket has taken it (raises
        `ConnectionResetError` once the upstream has gone)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the upstream has gone")
        transport.write(encode_frame(opcode, payload))
        if self._write_paused:
            drain = asyncio.get_running_loop().create_future()
            self._drain = drain
            await drain

    @property
    def gone(self) -> bool:
        """Whether the upstream has closed or dropped the connection."""
        return self._gone

    def close(self) -> None:
        """Close the connection (after the close handshake)."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection with a reset (the tunnel broke)."""
        reset_transport(self._transport)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Not called after `set_protocol`; here for a direct connection (tests)."""
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        """Parse frames; stop reading on a protocol error or past the high-water mark."""
        if self._error is not None:
            return
        try:
            messages = self._reader.feed(data)
        except FrameError as exc:
            # Kept without its traceback: that holds this frame, and so this protocol.
            self._error = exc.with_traceback(None)
            self._wake()
            return
        for message in messages:
            self._messages.append(message)
            self._buffered += len(message.data)
        if self._buffered >= self._high_water and not self._read_paused and self._transport:
            self._read_paused = True
            self._transport.pause_reading()
        if messages:
            self._wake()

    def eof_received(self) -> bool:
        """The upstream closed its side: the tunnel ends once what arrived is read."""
        self._gone = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone."""
        self._gone = True
        self._transport = None
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        """The upstream reads slower than we write."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The upstream caught up."""
        self._write_paused = False
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
