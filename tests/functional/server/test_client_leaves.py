"""A client that leaves while the gateway waits for it to take an answer.

aiohttp's drain hands the writer a `ConnectionError` kept in its waiter future, and the
traceback it gathers on the way up holds the frame that awaits that future: a reference cycle
through every frame it passed, the request's among them. The gateway runs the cyclic collector
rarely (`gateway.server.app.settle_heap`), so each such client would keep its request, its
exchange and its buffers for minutes: in a 50-connection download soak, 74 of them held 9 MiB.
Each test fills the client's socket until the gateway's writes pause, then leaves;
``no_request_cycles`` is the check. The streamed answer's case is in ``test_relay``.
"""

from __future__ import annotations

import asyncio

import pytest
from pytest_aiohttp import AiohttpServer

from tests.conftest import GatewayFactory, LogCapture
from tests.functional.server.raw_upstreams import RawUpstream, answering, ok, raw_upstream
from tests.functional.server.ws_support import WebSocketUpstream, access_lines, websocket_routes
from tests.raw import http_request
from tests.support import TokenFactory

pytestmark = pytest.mark.usefixtures("no_request_cycles")

ROUTES = """\
upstreams:
  raw: {{url: "RAW_URL", timeout: 5s}}
routes:
  - path: /raw
    upstream: raw
    CORS
"""
BODY = b"x" * 60_000  # read whole (at most 64 KiB), then written in one piece
PIPELINED = 400  # 24 MB of answers: more than loopback's socket buffers hold


@pytest.mark.parametrize("leaves", ["reset", "close"])
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("", id="from-the-upstreams-bytes"),
        pytest.param("cors: {{origins: [https://app.test]}}", id="as-a-response-object"),
    ],
)
async def test_a_client_that_leaves_while_answers_wait_for_it_leaves_no_cycle(
    gateway: GatewayFactory, tokens: TokenFactory, leaves: str, answer: str
) -> None:
    """Pipelined requests for small answers that the client never reads: the gateway's
    transport passes its high-water mark and the handler waits in aiohttp's drain when the
    client leaves. A route with CORS answers through a `web.Response` (``send_whole``), one
    without from the upstream's bytes (``wire.send``): two different drains."""
    async with raw_upstream(answering(ok(BODY))) as upstream:
        routes = ROUTES.replace("RAW_URL", upstream.url).replace("CORS", answer)
        client = await gateway(routes=routes)
        assert client.server.host is not None
        assert client.server.port is not None
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        auth = [("Authorization", f"Bearer {tokens.good()}"), ("Origin", "https://app.test")]
        request = http_request("GET", "/raw/small", auth)
        writer.write(request * PIPELINED)
        await reader.readuntil(b"\r\n\r\n")  # answering has begun
        answered = -1
        async with asyncio.timeout(10):
            while answered != len(upstream.heads):  # until the gateway stops: it waits
                answered = len(upstream.heads)
                await asyncio.sleep(0.3)
        assert answered < PIPELINED  # the sockets are full: a drain is waiting
        if leaves == "reset":
            writer.transport.abort()
        else:  # a clean close, unread bytes left in its socket
            writer.close()
        await asyncio.sleep(0.5)  # the gateway sees the connection go, the handler ends


@pytest.mark.parametrize("leaves", ["reset", "close"])
async def test_a_websocket_client_that_leaves_while_messages_wait_for_it_leaves_no_cycle(
    gateway: GatewayFactory,
    aiohttp_server: AiohttpServer,
    tokens: TokenFactory,
    log_capture: LogCapture,
    leaves: str,
) -> None:
    """A tunnel whose upstream sends faster than the client reads: the gateway waits in
    aiohttp's drain for the client when it leaves. The tunnel ends as the client's going
    (``client_gone``), with its one access line."""
    upstream = WebSocketUpstream()
    server = await aiohttp_server(upstream.app())
    client = await gateway(routes=websocket_routes(str(server.make_url("")).rstrip("/")))
    assert client.server.host is not None
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    handshake = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Authorization", f"Bearer {tokens.good()}"),
    ]
    writer.write(http_request("GET", "/ws/flood", handshake))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.write(b"\x81\x82\x00\x00\x00\x00go")  # "go", masked with zeros
    async with asyncio.timeout(10):  # until the upstream waits too: everything is full
        while len(upstream.received) < 1:  # noqa: ASYNC110 - the upstream has no event for it
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)
    if leaves == "reset":
        writer.transport.abort()
    else:
        writer.close()
    (line,) = await access_lines(log_capture)
    assert line["gateway.websocket.close_reason"] == "client_gone"


@pytest.mark.parametrize("leaves", ["reset", "close"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_client_that_leaves_mid_upload_leaves_no_cycle(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    log_capture: LogCapture,
    leaves: str,
    framing: str,
) -> None:
    """A client that leaves halfway through its body: aiohttp fails the body's reader with the
    connection's error and keeps it there. The upstream's connection is cut, never reused for
    the next request, and the access line says 502 (``client_closed`` in the upstream failures
    metric)."""
    cut = asyncio.Event()

    async def read_forever(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        try:
            while await reader.read(65536):
                pass
        finally:
            cut.set()

    async with raw_upstream(read_forever) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url).replace("CORS", ""))
        assert client.server.host is not None
        assert client.server.port is not None
        _, writer = await asyncio.open_connection(client.server.host, client.server.port)
        fields = [("Authorization", f"Bearer {tokens.good()}")]
        if framing == "length":
            fields.append(("Content-Length", str(1 << 20)))
            writer.write(http_request("POST", "/raw/upload", fields) + b"x" * 65536)
        else:
            fields.append(("Transfer-Encoding", "chunked"))
            writer.write(http_request("POST", "/raw/upload", fields) + b"10000\r\n" + b"x" * 65536)
        await writer.drain()
        async with asyncio.timeout(5):
            while not upstream.heads:  # noqa: ASYNC110 - the upstream has no event for it
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the gateway waits for the rest of the body
        if leaves == "reset":
            writer.transport.abort()
        else:
            writer.close()
        await asyncio.wait_for(cut.wait(), 5)
        (line,) = await access_lines(log_capture)
    assert line["http.response.status_code"] == 502
