"""Streamed answers, relayed from the upstream's parser straight to the client's socket.

The relay's task sleeps while the body moves and wakes for the end, a failure or a client that
is behind; these tests hold it to the same bounds as a task woken per piece: the route's timeout
counts from the last byte the upstream sent, a client that is behind pauses the upstream and the
connection is reused once the answer is complete, chunked answers keep their framing for each
HTTP version, and a client that leaves takes the upstream connection with it.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from gateway.server.upstream_conn import UpstreamConnection
from gateway.server.upstream_sink import ClientSink
from tests.conftest import GatewayFactory, LogCapture
from tests.functional.server.raw_upstreams import (
    RawUpstream,
    ok,
    raw_get,
    raw_get_or_cut,
    raw_upstream,
)
from tests.raw import http_request, read_chunked
from tests.support import DEFAULT_GATEWAY, TokenFactory

pytestmark = pytest.mark.usefixtures("no_request_cycles")

ROUTES = """\
upstreams:
  raw: {{url: "RAW_URL", timeout: 500ms}}
routes:
  - path: /raw
    upstream: raw
"""
ONE_CONNECTION = DEFAULT_GATEWAY + "limits:\n  upstream_pool_size_per_host: 1\n"
PIECE = 64 * 1024


def _piece(index: int) -> bytes:
    """A 64 KiB piece that says where it belongs (so a lost or repeated piece shows)."""
    return (b"%08d" % index) * (PIECE // 8)


@pytest.mark.parametrize("gap", [0.3, None], ids=["steady-but-slow", "stalls"])
async def test_the_timeout_counts_from_the_upstreams_last_byte(
    gateway: GatewayFactory, tokens: TokenFactory, gap: float | None
) -> None:
    """An upstream that sends a piece every 0.3 s, longer in all than its 500 ms timeout, is
    relayed whole; one that stops after the first piece is cut (a reset, never a clean end)
    within the timeout of its last byte."""
    pieces = 6

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (pieces * PIECE))
        for index in range(pieces):
            writer.write(_piece(index))
            await writer.drain()
            await asyncio.sleep(10 if gap is None else gap)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        started = time.monotonic()
        head, body = await raw_get_or_cut(client, "/raw/slow", tokens.good())
        took = time.monotonic() - started
    if gap is not None:
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == b"".join(_piece(index) for index in range(pieces))
        assert took > pieces * gap - gap
    else:
        assert len(body) < pieces * PIECE
        assert 0.4 < took < 2.0


async def test_a_client_that_is_behind_pauses_the_upstream_and_the_connection_is_reused(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """A client reading an 8 MiB answer slower than the upstream sends it gets every byte in
    order; the upstream connection (one allowed per host) then serves the next request: it
    was read again once the answer was complete, not left paused in the pool."""
    pieces = 128

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        while head := await up.read_head(reader):
            if not head.startswith(b"GET /raw/big"):
                writer.write(ok(b"small"))
                await writer.drain()
                continue
            # All at once: the gateway reads it as fast as it can, so the client is behind
            # when the last piece comes, and the answer completes with the upstream paused.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (pieces * PIECE))
            writer.write(b"".join(_piece(index) for index in range(pieces)))
            await writer.drain()

    async with raw_upstream(serve) as upstream:
        client = await gateway(
            routes=ROUTES.replace("RAW_URL", upstream.url), gateway=ONE_CONNECTION
        )
        assert client.server.host is not None
        assert client.server.port is not None
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(
            sock, (client.server.host, client.server.port)
        )
        reader, writer = await asyncio.open_connection(sock=sock, limit=16 * 1024)
        auth = [("Authorization", f"Bearer {tokens.good()}")]
        writer.write(http_request("GET", "/raw/big", auth))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        body = bytearray()
        async with asyncio.timeout(20):
            while len(body) < pieces * PIECE:
                body += await reader.read(16 * 1024)
                await asyncio.sleep(0.001)  # about 16 MiB/s: behind a loopback upstream
        writer.transport.abort()
        assert bytes(body) == b"".join(_piece(index) for index in range(pieces))
        async with asyncio.timeout(5):
            head, small = await raw_get(client, "/raw/small", tokens.good())
        assert head.startswith(b"HTTP/1.1 200 ")
        assert small == b"small"
        assert upstream.connections == 1


CHUNKS = [b"a", b"b" * 100, b"c" * 200_000, b"d" * 3, b"e" * PIECE]


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_a_chunked_answer_keeps_its_framing_for_each_http_version(
    gateway: GatewayFactory, tokens: TokenFactory, version: str
) -> None:
    """A chunked answer reaches an HTTP/1.1 client chunked (whatever the pieces' sizes) and an
    HTTP/1.0 client as the bare bytes up to a clean close, with nothing lost or added."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in CHUNKS:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await up.read_head(reader)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        head, rest = await raw_get(client, "/raw/chunked", tokens.good(), version=version)
    fields = head.lower()
    if version == "1.1":
        assert b"transfer-encoding: chunked" in fields
        reader = asyncio.StreamReader()
        reader.feed_data(rest)
        reader.feed_eof()
        assert await read_chunked(reader) == b"".join(CHUNKS)
        assert await reader.read() == b""
    else:
        assert b"transfer-encoding" not in fields
        assert rest == b"".join(CHUNKS)


@pytest.mark.parametrize("leaves", ["reset", "close"])
@pytest.mark.parametrize("behind", [False, True], ids=["reading", "behind"])
async def test_a_client_that_leaves_mid_answer_takes_the_upstream_connection_with_it(
    gateway: GatewayFactory, tokens: TokenFactory, leaves: str, behind: bool
) -> None:
    """A client that leaves (a reset, or a clean close) after 1 MiB of a 64 MiB answer: the
    upstream's connection is closed soon after (its next write fails), and the next request
    opens a new one, never resuming the old answer."""
    pieces = 1024
    upstream_cut = asyncio.Event()

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        head = await up.read_head(reader)
        if not head.startswith(b"GET /raw/big"):
            writer.write(ok(b"small"))
            await writer.drain()
            await up.read_head(reader)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (pieces * PIECE))
        try:
            for index in range(pieces):
                writer.write(_piece(index))
                await writer.drain()
                await asyncio.sleep(0.002)
            await asyncio.sleep(10)
        except ConnectionError:
            upstream_cut.set()
            raise

    async with raw_upstream(serve) as upstream:
        client = await gateway(
            routes=ROUTES.replace("RAW_URL", upstream.url), gateway=ONE_CONNECTION
        )
        assert client.server.host is not None
        assert client.server.port is not None
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        auth = [("Authorization", f"Bearer {tokens.good()}")]
        writer.write(http_request("GET", "/raw/big", auth))
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(16 * PIECE)
        if behind:  # the gateway waits for this client to drain when it leaves
            await asyncio.sleep(0.5)
        if leaves == "reset":
            writer.transport.abort()
        else:  # a clean close, unread bytes left in its socket
            writer.close()
        await asyncio.wait_for(upstream_cut.wait(), 5)
        async with asyncio.timeout(5):
            head, small = await raw_get(client, "/raw/small", tokens.good())
        assert head.startswith(b"HTTP/1.1 200 ")
        assert small == b"small"
        assert upstream.connections == 2


async def test_an_answer_completed_while_the_client_is_behind_leaves_the_connection_reading() -> (
    None
):
    """An answer whose last bytes arrive while the client is behind (the upstream paused) ends
    with the connection read again: the next exchange on it gets its answer, and the bytes
    relayed are the body. (A connection left paused would wait out its timeout in the pool.)"""
    loop = asyncio.get_running_loop()
    body = bytes(range(256)) * 1200

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        for answer in (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
                       ok(b"next")):  # fmt: skip
            await up.read_head(reader)
            writer.write(answer)
            await writer.drain()
        await up.read_head(reader)

    async with raw_upstream(serve) as upstream:
        host, port = upstream.url.removeprefix("http://").split(":")
        _, connection = await loop.create_connection(
            lambda: UpstreamConnection(loop, ("http", host, int(port), None)), host, int(port)
        )
        # The client: a socket whose peer reads nothing until the answer is over, its buffers
        # filled first, so that every piece relayed finds the client behind.
        client_socket, peer = socket.socketpair()
        client, _ = await loop.create_connection(asyncio.Protocol, sock=client_socket)
        client.set_write_buffer_limits(high=0)
        filler = 0
        while client.get_write_buffer_size() == 0:
            client.write(b"-" * PIECE)
            filler += PIECE
        try:
            connection.begin(head_only=False)
            connection.write(b"GET /big HTTP/1.1\r\nHost: upstream\r\n\r\n")
            status, _, _ = await connection.head(1.0)
            assert status == 200
            sink = ClientSink(client, chunked=False, clock=loop.time)
            connection.relay_to(sink)
            pauses = 0
            while not await connection.relayed(1.0):
                pauses += 1
                connection.resume_relay()  # as after a drain, though the client is still behind
            assert pauses > 0
            assert sink.sent == len(body)
            assert connection.reusable
            connection.begin(head_only=False)
            connection.write(b"GET /next HTTP/1.1\r\nHost: upstream\r\n\r\n")
            status, _, _ = await connection.head(1.0)
            assert status == 200
            assert await connection.next_chunk(1.0) == b"next"
            received = bytearray()
            peer.setblocking(False)
            while len(received) < filler + len(body):
                received += await loop.sock_recv(peer, 1 << 20)
            assert received[filler:] == body
        finally:
            connection.close()
            client.abort()
            peer.close()


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_failure_inside_the_gateway_after_the_head_went_out_cuts_the_answer(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    log_capture: LogCapture,
    monkeypatch: pytest.MonkeyPatch,
    framing: str,
    version: str,
) -> None:
    """An error of the gateway's own once a streamed answer's head is out (injected here: no
    input provokes one) resets the connection: the client sees its answer cut short, never a
    500 written after part of a 200's body, which it would read as more body, and never a
    clean close, which ends an HTTP/1.0 client's chunked-upstream body (read until the close)
    as if it were whole. The access line says the 200 the client got; ``request_failed`` says
    why it was cut."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        if framing == "length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (8 * PIECE))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index in range(8):
            await asyncio.sleep(0.05)
            piece = _piece(index)
            writer.write(piece if framing == "length" else b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        await asyncio.sleep(5)

    class BrokenSink(ClientSink):
        """Fails the relay's first look at it, once the head is out. Injected where the
        compiled request path looks a name up (`gateway.server.upstream.ClientSink`): mypyc
        calls the compiled modules' own methods directly, so patching those changes nothing."""

        @property
        def gone(self) -> bool:
            raise RuntimeError("injected")

        @gone.setter
        def gone(self, value: bool) -> None:
            pass

    monkeypatch.setattr("gateway.server.upstream.ClientSink", BrokenSink)
    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        assert client.server.host is not None
        assert client.server.port is not None
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        request = http_request("GET", "/raw/big", [("Authorization", f"Bearer {tokens.good()}")])
        writer.write(request.replace(b"HTTP/1.1", f"HTTP/{version}".encode(), 1))
        received, reset = await _read_to_the_end(reader)
        writer.close()
    assert reset  # a clean close would end the read
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/{version} 200 ".encode())
    assert b"HTTP/1." not in rest
    assert len(rest) < 8 * PIECE
    (failed,) = log_capture.events("request_failed")
    (line,) = log_capture.events("access")
    assert line["http.response.status_code"] == 200
    assert failed["http.request.id"] == line["http.request.id"]


async def _read_to_the_end(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """Everything the gateway sends until it closes (within 5 s), and whether it ended with a
    reset rather than a clean close."""
    received = b""
    async with asyncio.timeout(5):
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            return received, True
    return received, False
