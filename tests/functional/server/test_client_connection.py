"""The client connection's request loop (`gateway.server.connection.GatewayConnection.start`):
requests on one connection answered in order, in the connection's own task, and a request body
the answer left unread never read as the next request.

Clients are raw sockets, and the upstream a socket-level server, so that the bytes are the test's.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web

from gateway.server.aiohttp_overrides import HANDLER, GatewayRunner
from tests.conftest import GatewayFactory
from tests.functional.server.raw_upstreams import RawUpstream, answering, ok, raw_upstream
from tests.raw import RAW_TIMEOUT, http_request
from tests.support import TokenFactory

ROUTES = """\
upstreams:
  raw: {{url: "RAW_URL", timeout: 2s}}
routes:
  - path: /raw
    upstream: raw
    scopes: [orders:read]
"""


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One answer framed by Content-Length: its head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


async def test_pipelined_requests_are_answered_in_order_on_one_connection(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Three requests in one write (allowed, refused, allowed): three answers in that order on
    the same connection, and the upstream sees only the two allowed ones."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        while head := await up.read_head(reader):
            writer.write(ok(head.split(b" ")[1]))
            await writer.drain()

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        auth = [("Authorization", f"Bearer {tokens.good()}")]
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        try:
            writer.write(
                http_request("GET", "/raw/first", auth)
                + http_request("GET", "/raw/refused")
                + http_request("GET", "/raw/third", auth)
            )
            answers = [await asyncio.wait_for(_read_answer(reader), RAW_TIMEOUT) for _ in "123"]
        finally:
            writer.transport.abort()
    assert [head.split(b" ")[1] for head, _ in answers] == [b"200", b"401", b"200"]
    assert [answers[0][1], answers[2][1]] == [b"/raw/first", b"/raw/third"]
    assert len(upstream.heads) == 2
    assert upstream.connections == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_the_upstream_answered_before_is_never_read_as_a_request(
    gateway: GatewayFactory, tokens: TokenFactory, framing: str
) -> None:
    """An upstream that answers a POST before reading its body: the client gets the answer,
    then the connection ends, so the rest of the body (here a whole request with a good token,
    in a Content-Length body or in a chunk) is never parsed as the connection's next request."""
    token = tokens.good()
    smuggled = http_request("GET", "/raw/smuggled", [("Authorization", f"Bearer {token}")])
    start = b"x" * 1000
    if framing == "chunked":
        framed = [("Transfer-Encoding", "chunked")]
        first = b"%x\r\n%s\r\n" % (len(start), start)
        rest = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    else:
        framed = [("Content-Length", str(len(start) + len(smuggled)))]
        first, rest = start, smuggled
    async with raw_upstream(answering(ok(b"early"))) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        try:
            headers = [("Authorization", f"Bearer {token}"), *framed]
            writer.write(http_request("POST", "/raw/upload", headers, first))
            head, body = await asyncio.wait_for(_read_answer(reader), RAW_TIMEOUT)
            assert (head.split(b" ")[1], body) == (b"200", b"early")
            with contextlib.suppress(ConnectionError):
                writer.write(rest)
                await writer.drain()
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), RAW_TIMEOUT) == b""
        finally:
            writer.transport.abort()
        await asyncio.sleep(0.1)
    assert [head.split(b" ")[:2] for head in upstream.heads] == [[b"POST", b"/raw/upload"]]


async def test_requests_on_a_connection_run_in_the_connections_own_task() -> None:
    """The handler is awaited in the connection's task, not in a new task per request (aiohttp's
    own loop makes one, which on Python 3.11 costs a loop turn a request)."""
    tasks: list[asyncio.Task[object] | None] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        tasks.append(asyncio.current_task())
        return web.Response(body=b"ok")

    app = web.Application()
    app[HANDLER] = handler
    runner = GatewayRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(3):
                writer.write(http_request("GET", "/"))
                assert (await asyncio.wait_for(_read_answer(reader), RAW_TIMEOUT))[1] == b"ok"
        finally:
            writer.transport.abort()
    finally:
        await runner.cleanup()
    assert len(tasks) == 3
    assert tasks[0] is not None
    assert tasks[0] is tasks[1] is tasks[2]
