"""Limits on a hostile internet: body size (413 before reading), refusing without reading,
the header deadline, and the connection cap."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.conftest import GatewayFactory, LogCapture
from tests.raw import Client, http_request, send_raw, trickle_headers
from tests.support import DEFAULT_GATEWAY, DEFAULT_ROUTES, RecordingUpstream, TokenFactory

# Every request here, refused or failed, is freed without the cyclic collector.
pytestmark = pytest.mark.usefixtures("no_request_cycles")

SMALL_BODY_ROUTES = DEFAULT_ROUTES.replace(
    "    methods: [POST, PUT, PATCH, DELETE]\n",
    "    methods: [POST, PUT, PATCH, DELETE]\n    max_body_size: 1KiB\n",
)
SHORT_KEEPALIVE = DEFAULT_GATEWAY + "limits:\n  keepalive_timeout: 500ms\n  max_connections: 3\n"


async def _open(client: Client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert client.server.host is not None
    assert client.server.port is not None
    return await asyncio.open_connection(client.server.host, client.server.port)


async def test_content_length_over_route_limit_is_413_before_reading(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """A Content-Length above the route's max_body_size is refused from the headers alone."""
    client = await gateway(routes=SMALL_BODY_ROUTES)
    token = tokens.good(scope="orders:write")
    request = http_request(
        "POST", "/orders", [("Authorization", f"Bearer {token}"), ("Content-Length", "2048")]
    )
    answer = await send_raw(client, request)  # no body sent at all: refused from headers
    assert answer.status == 413
    assert answer.json()["error"] == "payload_too_large"
    assert recorder.requests == []


async def test_chunked_body_growing_past_the_limit_is_cut(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """A chunked body that grows past the limit is answered 413, and the upstream never receives
    it as a complete request."""
    client = await gateway(routes=SMALL_BODY_ROUTES)
    token = tokens.good(scope="orders:write")
    chunks = b"".join(b"%x\r\n%s\r\n" % (512, b"x" * 512) for _ in range(4)) + b"0\r\n\r\n"
    request = http_request(
        "POST", "/orders",
        [("Authorization", f"Bearer {token}"), ("Transfer-Encoding", "chunked")], chunks,
    )  # fmt: skip
    answer = await send_raw(client, request)
    assert answer.status == 413
    await asyncio.sleep(0.2)
    assert recorder.requests == []


async def test_refused_request_body_is_never_read(
    gateway: GatewayFactory, recorder: RecordingUpstream
) -> None:
    """A POST without a token announcing 1 GiB is answered 401 at once and the connection
    closed, without waiting for (or draining) the body."""
    client = await gateway()
    reader, writer = await _open(client)
    started = time.monotonic()
    writer.write(http_request("POST", "/orders", [("Content-Length", str(1024**3))]))
    writer.write(b"x" * 1024 * 1024)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 401")
    assert b"Connection: close" in head
    with contextlib.suppress(ConnectionResetError):  # unread bytes make the close an RST
        await asyncio.wait_for(reader.read(), 5)  # the gateway closes the connection
    assert time.monotonic() - started < 2
    writer.close()
    assert recorder.requests == []


async def test_body_that_looks_like_a_request_is_not_parsed_as_one(
    gateway: GatewayFactory, recorder: RecordingUpstream
) -> None:
    """S-17: a refused POST whose body is a second request gets exactly one response."""
    client = await gateway()
    smuggled = http_request("GET", "/orders/health")
    request = http_request("POST", "/orders", [("Content-Length", str(len(smuggled)))], smuggled)
    reader, writer = await _open(client)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert data.count(b"HTTP/1.1 ") == 1
    assert data.startswith(b"HTTP/1.1 401")
    assert recorder.requests == []


async def test_slowloris_headers_are_cut_at_the_deadline(gateway: GatewayFactory) -> None:
    """A client trickling header lines is disconnected at keepalive_timeout (the header
    deadline), even though it keeps sending."""
    client = await gateway(gateway=SHORT_KEEPALIVE)
    reader, writer = await _open(client)
    started = time.monotonic()
    closed = await trickle_headers(reader, writer)
    elapsed = time.monotonic() - started
    writer.close()
    assert closed
    assert elapsed < 2.0


async def test_idle_keepalive_connection_is_closed(gateway: GatewayFactory) -> None:
    """An idle keep-alive connection is closed after keepalive_timeout."""
    client = await gateway(gateway=SHORT_KEEPALIVE)
    reader, writer = await _open(client)
    writer.write(http_request("GET", "/orders/health"))
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    started = time.monotonic()
    rest = await asyncio.wait_for(reader.read(), 5)  # body, then EOF when the gateway closes
    assert time.monotonic() - started < 2
    assert rest.endswith(b"}") or rest == b""
    writer.close()


async def test_connections_over_the_cap_are_closed(
    gateway: GatewayFactory, log_capture: LogCapture
) -> None:
    """Past max_connections, a new connection is closed at once while the others stay served."""
    client = await gateway(gateway=SHORT_KEEPALIVE)
    held = [await _open(client) for _ in range(3)]
    reader, writer = await _open(client)
    writer.write(http_request("GET", "/orders/health"))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    for _, held_writer in held:
        held_writer.close()


@pytest.mark.parametrize("size", [9000, 20000])
async def test_oversized_header_is_400_without_echo(
    gateway: GatewayFactory, recorder: RecordingUpstream, log_capture: LogCapture, size: int
) -> None:
    """D-02/J-37: a header line past max_field_size is a JSON 400 that quotes none of it."""
    client = await gateway()
    secret = "S3CR3T" + "A" * size
    answer = await send_raw(client, http_request("GET", "/orders", [("Authorization", secret)]))
    assert answer.status == 400
    assert answer.json()["error"] == "bad_request"
    assert b"S3CR3T" not in answer.body
    assert "S3CR3T" not in log_capture.text
    assert recorder.requests == []
