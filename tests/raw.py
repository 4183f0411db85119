"""Raw HTTP/1.1 over a socket, so that no client library normalises what a test sends: requests
to the gateway and the responses it writes, socket-level upstreams that see the bytes it forwards,
and the check every JSON refusal gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, CIMultiDictProxy

Client = TestClient[web.Request, web.Application]
RAW_TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    """A response as the client received it."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @classmethod
    async def of(cls, response: ClientResponse) -> Answer:
        """Read an aiohttp client response completely."""
        return cls(response.status, response.headers, await response.read())

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def http_request(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    host: str = "gateway.test",
) -> bytes:
    """The bytes of one HTTP/1.1 request, exactly as given (latin-1, so NUL and friends pass)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """Read a chunked body (and its trailers) and return the payload."""
    body = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def open_connection(client: Client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A fresh connection to the gateway's listening socket."""
    host, port = client.server.host, client.server.port
    assert host is not None
    assert port is not None
    return await asyncio.open_connection(host, port)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close a connection, whether or not the other side already has."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def parse_head(head: bytes) -> tuple[str, CIMultiDict[str]]:
    """The first line and the header fields of a message head (which ends in a blank line)."""
    first_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return first_line, headers


async def read_body(reader: asyncio.StreamReader, headers: CIMultiDict[str]) -> bytes:
    """The body framed by ``headers``: chunked, else ``Content-Length`` (none: empty)."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return await read_chunked(reader)
    return await reader.readexactly(int(headers.get("Content-Length", "0")))


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """Read one response, framed by its own headers."""
    status_line, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
    body = await read_body(reader, headers)
    return Answer(int(status_line.split(" ")[1]), CIMultiDictProxy(headers), body)


@dataclass(frozen=True)
class RawRequest:
    """One request as it arrived on a socket-level upstream, framing and all."""

    request_line: str
    headers: CIMultiDictProxy[str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> RawRequest:
    """Read one request, framed by its own headers (for socket-level upstreams)."""
    request_line, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
    body = await read_body(reader, headers)
    return RawRequest(request_line, CIMultiDictProxy(headers), body)


@contextlib.asynccontextmanager
async def socket_upstream(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    host: str = "127.0.0.1",
) -> AsyncIterator[str]:
    """Run a socket-level upstream (``serve`` handles each connection) on ``host`` (a loopback
    address) for the block; yields its base URL."""
    server = await asyncio.start_server(serve, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class FixedUpstream:
    """A socket-level upstream that answers every request head with ``response`` (nothing: it just
    hangs up) and aborts the connection; counts connections and requests."""

    response: bytes
    connections: int = 0
    requests: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Count the connection, read a request head, answer (or hang up) and close."""
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            if self.response:
                writer.write(self.response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def fixed_upstream(response: bytes) -> AsyncIterator[tuple[FixedUpstream, str]]:
    """Serve a `FixedUpstream` on 127.0.0.1 for the duration of the block."""
    upstream = FixedUpstream(response)
    async with socket_upstream(upstream.serve) as url:
        yield upstream, url


async def send_raw(client: Client, data: bytes) -> Answer:
    """Write ``data`` to the gateway's listening socket and read one response (framed by its
    headers, so a kept-alive connection does not hang the test; with neither framing header, the
    body runs to the close)."""
    reader, writer = await open_connection(client)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(RAW_TIMEOUT):
            status_line, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
            framed = (
                "Content-Length" in headers
                or "chunked" in headers.get("Transfer-Encoding", "").lower()
            )
            body = await read_body(reader, headers) if framed else await reader.read()
    finally:
        await close(writer)
    return Answer(int(status_line.split(" ")[1]), CIMultiDictProxy(headers), body)


def assert_refusal(
    answer: Answer, status: int, error: str, *, request_id: str | None = None
) -> dict[str, str]:
    """``status`` with the spec's JSON refusal body for ``error`` (and ``request_id``, when
    given); returns the body."""
    assert answer.status == status, answer.body[:300]
    assert answer.headers["Content-Type"].split(";")[0].strip() == "application/json"
    body = answer.json()
    assert isinstance(body, dict)
    assert set(body) == {"error", "error_description", "request_id"}
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    if request_id is not None:
        assert body["request_id"] == request_id
    return body


async def trickle_headers(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, lines: int = 40
) -> bool:
    """Send a request head a header line at a time (0.1 s apart) and never finish it: whether
    the server closed the connection before ``lines`` lines were sent."""
    writer.write(b"GET /orders/health HTTP/1.1\r\nHost: a\r\n")
    for number in range(lines):
        try:
            writer.write(f"X-Trickle-{number}: 1\r\n".encode())
            await writer.drain()
        except ConnectionError:
            return True
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                return True
    return False
