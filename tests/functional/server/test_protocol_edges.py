"""Protocol edges, over raw sockets: 100-continue only after the decision, transfer codings,
and a header deadline of its own."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import GatewayFactory, LogCapture
from tests.raw import (
    close,
    http_request,
    open_connection,
    read_answer,
    send_raw,
    trickle_headers,
)
from tests.support import DEFAULT_GATEWAY, RecordingUpstream, TokenFactory

SMALL_BODY_GATEWAY = DEFAULT_GATEWAY + "limits:\n  max_body_size: 1KiB\n"


async def _first_response_line(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.readuntil(b"\r\n")


@pytest.mark.parametrize(
    ("auth", "length", "status"),
    [
        pytest.param(None, 10, b"401", id="no-token"),
        pytest.param("Bearer not.a.jwt", 10, b"401", id="bad-token"),
        pytest.param("read-only", 10, b"403", id="missing-scope"),
        pytest.param("writer", 4096, b"413", id="body-too-large"),
    ],
)
async def test_a_refused_request_never_gets_100_continue(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    auth: str | None,
    length: int,
    status: bytes,
) -> None:
    """A request that waits for ``100 Continue`` and will be refused gets its refusal as the
    first (and final) response, and never sends its body anywhere."""
    client = await gateway(gateway=SMALL_BODY_GATEWAY)
    token = {"read-only": tokens.good(), "writer": tokens.good(scope="orders:write")}
    headers = [("Expect", "100-continue"), ("Content-Length", str(length))]
    if auth is not None:
        headers.append(("Authorization", (token.get(auth) and f"Bearer {token[auth]}") or auth))
    reader, writer = await open_connection(client)
    try:
        writer.write(http_request("POST", "/orders/7", headers))
        await writer.drain()
        first = await _first_response_line(reader)
        assert first.split(b" ")[1] == status, first
    finally:
        await close(writer)
    assert recorder.requests == []


async def test_an_allowed_request_gets_100_continue_then_its_answer(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """An allowed request is told to continue, sends its body, and the upstream gets it all."""
    client = await gateway()
    body = b"x" * 100
    headers = [
        ("Expect", "100-continue"),
        ("Content-Length", str(len(body))),
        ("Authorization", f"Bearer {tokens.good(scope='orders:write')}"),
    ]
    reader, writer = await open_connection(client)
    try:
        writer.write(http_request("POST", "/orders/7", headers))
        await writer.drain()
        assert await _first_response_line(reader) == b"HTTP/1.1 100 Continue\r\n"
        assert await reader.readuntil(b"\r\n") == b"\r\n"
        writer.write(body)
        await writer.drain()
        answer = await read_answer(reader)
    finally:
        await close(writer)
    assert answer.status == 200
    assert recorder.last.body == body


@pytest.mark.parametrize("value", ["something-else", "100-continue, x", "101-switch"])
async def test_an_unmet_expectation_is_417(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream, value: str
) -> None:
    """An ``Expect`` other than ``100-continue`` is refused with 417 and never forwarded."""
    client = await gateway()
    headers = [("Expect", value), ("Authorization", f"Bearer {tokens.good()}")]
    answer = await send_raw(client, http_request("GET", "/orders/7", headers))
    assert answer.status == 417
    assert answer.json()["error"] == "expectation_failed"
    assert recorder.requests == []


CHUNKED_BODY = b"3\r\nabc\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "coding",
    [
        pytest.param("gzip, chunked", id="gzip-then-chunked"),
        pytest.param("deflate, chunked", id="deflate-then-chunked"),
        pytest.param("identity, chunked", id="identity-then-chunked"),
        pytest.param("x-custom, chunked", id="unknown-then-chunked"),
        pytest.param("GZIP, Chunked", id="upper-case"),
    ],
)
async def test_a_coding_other_than_chunked_is_501(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    coding: str,
) -> None:
    """RFC 9112 section 6.1: a transfer coding the gateway cannot decode is 501, and nothing is
    forwarded (the upstream would otherwise frame the body differently)."""
    client = await gateway()
    headers = [
        ("Transfer-Encoding", coding),
        ("Authorization", f"Bearer {tokens.good(scope='orders:write')}"),
    ]
    answer = await send_raw(client, http_request("POST", "/orders/7", headers) + CHUNKED_BODY)
    assert answer.status == 501, answer.body
    assert recorder.requests == []
    assert answer.json()["error"] == "not_implemented"
    (line,) = log_capture.events("access")
    assert line["gateway.auth.reason"] == "unsupported_transfer_coding"


async def test_transfer_encoding_on_http10_is_400_and_closes(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
) -> None:
    """``Transfer-Encoding`` on an HTTP/1.0 request is a 400, and the connection is closed."""
    client = await gateway()
    head = (
        b"POST /orders/7 HTTP/1.0\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n"
        + f"Authorization: Bearer {tokens.good(scope='orders:write')}\r\n\r\n".encode()
    )
    reader, writer = await open_connection(client)
    try:
        writer.write(head + CHUNKED_BODY + http_request("GET", "/orders/health"))
        await writer.drain()
        async with asyncio.timeout(5):
            data = await reader.read()  # until the gateway closes
    finally:
        await close(writer)
    assert data.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), data[:40]
    assert data.count(b"HTTP/1.") == 1  # nothing after it was read as a request
    assert recorder.requests == []
    (line,) = log_capture.events("access")
    # aiohttp's C parser (llhttp) refuses it first; the decision's own rule is the backstop.
    assert line["gateway.auth.reason"] in {"unparseable_request", "transfer_encoding_http10"}


HEADER_DEADLINE = DEFAULT_GATEWAY + "limits:\n  header_timeout: 1s\n  keepalive_timeout: 30s\n"


@pytest.mark.slow
async def test_a_trickled_head_is_cut_at_the_header_deadline(gateway: GatewayFactory) -> None:
    """With keep-alive at 30 s, a head trickled a line at a time is still cut at the 1 s
    header deadline."""
    client = await gateway(gateway=HEADER_DEADLINE)
    reader, writer = await open_connection(client)
    started = time.monotonic()
    closed = await trickle_headers(reader, writer)
    elapsed = time.monotonic() - started
    await close(writer)
    assert closed
    assert 0.8 < elapsed < 2.5


@pytest.mark.slow
async def test_a_silent_connection_is_cut_at_the_header_deadline(gateway: GatewayFactory) -> None:
    """A connection that sends nothing at all is closed at the header deadline."""
    client = await gateway(gateway=HEADER_DEADLINE)
    reader, writer = await open_connection(client)
    started = time.monotonic()
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    await close(writer)
    assert 0.8 < time.monotonic() - started < 2.5


@pytest.mark.slow
async def test_an_idle_kept_alive_connection_outlives_the_header_deadline(
    gateway: GatewayFactory,
) -> None:
    """Between requests the keep-alive timeout applies, not the header deadline: a connection
    idle for longer than the deadline still serves its next request."""
    client = await gateway(gateway=HEADER_DEADLINE)
    reader, writer = await open_connection(client)
    try:
        writer.write(http_request("GET", "/orders/health"))
        await writer.drain()
        assert (await read_answer(reader)).status == 200
        await asyncio.sleep(1.6)
        writer.write(http_request("GET", "/orders/health"))
        await writer.drain()
        async with asyncio.timeout(5):
            assert (await read_answer(reader)).status == 200
    finally:
        await close(writer)
