"""Raw HTTP/1.1 over a socket, so that no client library normalises what a test sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
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


async def send_raw(client: Client, data: bytes) -> Answer:
    """Write ``data`` to the gateway's listening socket and read one response (framed by its
    headers, so a kept-alive connection does not hang the test)."""
    host, port = client.server.host, client.server.port
    assert host is not None
    assert port is not None
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(RAW_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines:
                name, _, value = line.partition(":")
                headers.add(name.strip(), value.strip())
            if "Content-Length" in headers:
                body = await reader.readexactly(int(headers["Content-Length"]))
            elif "chunked" in headers.get("Transfer-Encoding", "").lower():
                body = await read_chunked(reader)
            else:
                body = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Answer(int(status_line.split(" ")[1]), CIMultiDictProxy(headers), body)
