"""A socket-level upstream for tests of the upstream client, and raw-socket requests to the
gateway: no library between the bytes and what the gateway does with them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from tests.raw import Client, http_request

__all__ = [
    "RawUpstream",
    "Serve",
    "answering",
    "ok",
    "raw_get",
    "raw_get_or_cut",
    "raw_status",
    "raw_upstream",
]

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawUpstream"], Awaitable[None]]


@dataclass
class RawUpstream:
    """A socket-level upstream: counts connections and request heads, runs ``serve`` on each."""

    serve: Serve
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    url: str = ""
    _open: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        """Read and record one request head (b"" once the gateway closed the connection)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return b""
        self.heads.append(head)
        return head

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = writer
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await self.serve(reader, writer, self)
        finally:
            writer.transport.abort()
            del self._open[task]

    async def stop(self) -> None:
        """End every connection still open (the gateway may hold some in its pool)."""
        for task, writer in list(self._open.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)


@contextlib.asynccontextmanager
async def raw_upstream(serve: Serve) -> AsyncIterator[RawUpstream]:
    """Run a `RawUpstream` for the length of the block."""
    upstream = RawUpstream(serve)
    server = await asyncio.start_server(upstream._accept, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield upstream
    finally:
        server.close()
        await upstream.stop()
        await server.wait_closed()


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def answering(answer: bytes) -> Serve:
    """A `Serve` that writes ``answer`` once a request's head has come, for every request on
    the connection (a body is never read)."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        while await up.read_head(reader):
            writer.write(answer)
            await writer.drain()

    return serve


async def raw_get(
    client: Client, target: str, token: str, *, version: str = "1.1", extra: bytes = b""
) -> tuple[bytes, bytes]:
    """One GET over a fresh raw socket; returns the head and everything after it until the
    gateway closes (the request says ``Connection: close``)."""
    assert client.server.host is not None
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    headers = [("Authorization", f"Bearer {token}"), ("Connection", "close")]
    request = http_request("GET", target, headers).replace(b"HTTP/1.1", f"HTTP/{version}".encode())
    writer.write(request + extra)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        return head, await reader.read()
    finally:
        writer.transport.abort()


async def raw_get_or_cut(client: Client, target: str, token: str) -> tuple[bytes, bytes]:
    """`raw_get`, with a connection the gateway resets before the head (or the whole of it)
    arrived read as an empty head and body."""
    try:
        return await raw_get(client, target, token)
    except (ConnectionResetError, asyncio.IncompleteReadError):
        return b"", b""


async def raw_status(client: Client, target: str, token: str) -> tuple[int, bytes]:
    head, rest = await raw_get(client, target, token)
    return int(head.split(b" ")[1]), rest
