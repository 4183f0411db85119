"""The harness of the differential whole-response tests (`send_whole`, the refusal and answer
wires): one aiohttp low-level server answers each request two ways, a raw socket sends the
case's request (and then, where the connection may stay open, a closing one) and reads to the
end, and the two byte streams are compared with their Date values blanked."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def low_level_server(handler: Handler) -> AsyncIterator[int]:
    """``handler`` served by aiohttp's low-level server on 127.0.0.1; yields its port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(web.Server(handler, access_log=None), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def exchange(port: int, first: bytes, *, then_close: bool, closing_target: str) -> bytes:
    """Send ``first`` (followed by a ``Connection: close`` request for ``closing_target`` when
    ``then_close``) and read everything until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closing = f"GET {closing_target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    writer.write(first + closing if then_close else first)
    try:
        return await asyncio.wait_for(reader.read(-1), 5)
    finally:
        writer.close()


def blank_dates(data: bytes) -> bytes:
    """``data`` with every Date field's value replaced (the two writes straddle seconds)."""
    return re.sub(rb"(?im)^Date: [^\r\n]*", b"Date: -", data)


def stays_open(version: str, connection: str | None) -> bool:
    """Whether a request of this version and Connection value leaves the connection open, so
    that a second request may follow it (llhttp refuses bytes after one that ends it)."""
    return connection == "keep-alive" or (version == "1.1" and connection is None)
