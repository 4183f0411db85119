"""A streamed answer's body, written to the client as llhttp hands it over.

The upstream parser's body callback writes each piece straight to the client's transport: no
queue between them, and no task wake-up, future or timer per piece. The task relaying the answer
wakes only when the answer ends or fails, or when the client reads slower than the upstream
writes: past the client transport's high-water mark the upstream socket pauses until the client
has drained it. So the bytes a stream holds are what the client's transport buffers (its
high-water mark plus the last read), never a queue as well; and a relayed piece costs a write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["ClientSink"]


class ClientSink:
    """Where a relayed answer's body goes: the client's transport, chunk-framed or not."""

    __slots__ = ("_chunked", "_clock", "_high_water", "_transport", "gone", "last_write", "sent")

    def __init__(
        self, transport: asyncio.Transport, *, chunked: bool, clock: Callable[[], float]
    ) -> None:
        self._transport = transport
        self._chunked = chunked
        self._clock = clock
        # The transport's own mark: above it the transport has paused its protocol, so the
        # relay's wait for the client to drain is aiohttp's, and ends when the transport says.
        self._high_water = transport.get_write_buffer_limits()[1]
        self.sent = 0  # body bytes written (chunk framing not counted)
        self.last_write = clock()  # when the upstream last moved the body on
        self.gone = False  # the client's transport closed under the relay

    def feed(self, body: bytes) -> bool:
        """Write ``body`` to the client; whether the upstream should pause (the client is behind,
        or gone)."""
        transport = self._transport
        if transport.is_closing():
            self.gone = True
            return True
        if self._chunked:
            transport.writelines((b"%x\r\n" % len(body), body, b"\r\n"))
        else:
            transport.write(body)
        self.sent += len(body)
        self.last_write = self._clock()
        return transport.get_write_buffer_size() > self._high_water

    def moved(self) -> None:
        """The client drained: a wait for the upstream's next byte starts now."""
        self.last_write = self._clock()
