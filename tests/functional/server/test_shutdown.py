"""Shutdown keeps its promise: ``drain_timeout`` bounds the whole shutdown of a real ``gateway run``
process, and a request cut at the deadline still gets its access line (503 if nothing had been
sent, else the status already sent; ``gateway.auth.reason: shutdown``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config import load
from gateway.server.app import SHUTDOWN_MARGIN, GatewayServer
from tests.conftest import LogCapture
from tests.functional.gateway_process import running_gateway
from tests.support import (
    DEFAULT_GATEWAY,
    DEFAULT_ROUTES,
    ENVIRON,
    TestKeys,
    TokenFactory,
    write_config,
)

DRAIN_SECONDS = 2.0
NEVER_ANSWERING_ROUTES = DEFAULT_ROUTES.replace("timeout: 2s", "timeout: 60s")
# A streamed answer (chunked: no length, so the gateway relays it as it comes) that stalls.
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n"


class StalledUpstream:
    """A raw TCP upstream that reads a request head and never finishes its answer; with ``head``
    it first sends that much of one."""

    def __init__(self, head: bytes | None) -> None:
        self.head = head
        self.received = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            self.received.set()
            if self.head is not None:
                writer.write(self.head)
                await writer.drain()
            await reader.read()  # until the gateway gives up on this connection

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Listen on a loopback port for the block; its base URL."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            for writer in self._writers:
                writer.close()
            server.close()
            await server.wait_closed()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(None, 503, id="nothing-sent"),
        pytest.param(STREAM_HEAD, 200, id="stream-started"),
    ],
)
async def test_sigterm_exits_within_drain_timeout_and_logs_the_cut_request(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, head: bytes | None, status: int
) -> None:
    """With a request stuck on an upstream that never answers, SIGTERM makes the process exit 0
    within drain_timeout plus the margin, and the cut request has its access line."""
    upstream = StalledUpstream(head)
    got_headers = asyncio.Event()

    async def request(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes | str]:
        """The status and body the client got; an error's name instead of what it did not get."""
        status = 0
        try:
            async with session.get(
                url, headers={"Authorization": f"Bearer {tokens.good()}"}
            ) as got:
                status = got.status
                got_headers.set()
                return status, await got.read()
        except aiohttp.ClientError as exc:
            return status, type(exc).__name__

    async with (
        upstream.serving() as upstream_url,
        running_gateway(
            tmp_path, keys, upstream=upstream_url, routes=NEVER_ANSWERING_ROUTES,
            drain_timeout=f"{DRAIN_SECONDS:g}s",
        ) as gateway,
        aiohttp.ClientSession() as session,
    ):  # fmt: skip
        in_flight = asyncio.create_task(request(session, gateway.url("/orders/1")))
        await asyncio.wait_for(upstream.received.wait(), 10)
        if head is not None:
            await asyncio.wait_for(got_headers.wait(), 10)
        signalled = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        exit_code = await gateway.wait()
        took = time.monotonic() - signalled
        answer = await asyncio.wait_for(in_flight, 5)
    assert exit_code == 0
    assert DRAIN_SECONDS - 0.1 < took < DRAIN_SECONDS + SHUTDOWN_MARGIN, took
    (access,) = gateway.events("access")
    assert access["url.path"] == "/orders/1"
    assert access["http.response.status_code"] == status
    assert access["gateway.auth.result"] == "allowed"
    assert access["gateway.auth.reason"] == "shutdown"
    assert access["gateway.upstream.name"] == "orders"
    if head is None:
        assert answer[0] == 503
        assert isinstance(answer[1], bytes)
        assert b'"error":"temporarily_unavailable"' in answer[1].replace(b" ", b"")
    else:  # the status was sent; the body stops short, and the client can tell
        assert answer == (200, "ClientPayloadError")
    (stopped,) = gateway.events("stopped")
    assert stopped["gateway.shutdown.requests_cut"] == 1
    assert "Traceback" not in gateway.stderr_text()


async def test_stop_cuts_requests_at_the_drain_deadline_in_process(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """GatewayServer.stop() returns within drain_timeout plus the margin with a request stuck on
    its upstream; the client gets a 503 and the access line says shutdown."""
    upstream = StalledUpstream(None)
    async with upstream.serving() as upstream_url:
        server = await _started_with_a_short_drain(tmp_path, keys, upstream_url)
        url = f"http://127.0.0.1:{server.public_port}/orders/1"
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {tokens.good()}"}
            in_flight = asyncio.create_task(session.get(url, headers=headers))
            await asyncio.wait_for(upstream.received.wait(), 5)
            started = time.monotonic()
            await server.stop()
            took = time.monotonic() - started
            response = await asyncio.wait_for(in_flight, 5)
            body = await response.json()
    assert 0.45 < took < 0.5 + SHUTDOWN_MARGIN, took
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Connection"] == "close"
    assert body["error"] == "temporarily_unavailable"
    (access,) = log_capture.events("access")
    assert access["http.response.status_code"] == 503
    assert access["gateway.auth.reason"] == "shutdown"
    assert access["http.request.id"] == body["request_id"]
    (stopped,) = log_capture.events("stopped")
    assert stopped["gateway.shutdown.requests_cut"] == 1


# An answer read until the upstream closes: relayed to an HTTP/1.0 client the same way, so only
# the way its connection ends tells that client whether it has the whole body.
CLOSE_DELIMITED_HEAD = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial"


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_a_started_answer_cut_at_the_drain_deadline_is_reset(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, version: str
) -> None:
    """An answer whose head and part of its body are out when the drain deadline passes: the
    client's connection is reset, never closed cleanly. An HTTP/1.0 client reads a body
    without a length until the close, so a clean close would hand it ``partial`` as the whole
    body; an HTTP/1.1 one gets it chunked and must see it end without its last chunk."""
    upstream = StalledUpstream(CLOSE_DELIMITED_HEAD)
    async with upstream.serving() as upstream_url:
        server = await _started_with_a_short_drain(tmp_path, keys, upstream_url)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
        request = f"GET /orders/1 HTTP/{version}\r\nHost: gateway.test\r\n"
        writer.write(f"{request}Authorization: Bearer {tokens.good()}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(f"HTTP/{version} 200 ".encode())
        await server.stop()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 5)
        writer.close()


async def _started_with_a_short_drain(
    tmp_path: Path, keys: TestKeys, upstream: str
) -> GatewayServer:
    """An in-process GatewayServer with a 500 ms drain in front of ``upstream``, started (the
    test stops it)."""
    gateway_yaml = DEFAULT_GATEWAY.replace("tokens:\n", "drain_timeout: 500ms\ntokens:\n")
    path = write_config(
        tmp_path, keys, upstream=upstream, routes=NEVER_ANSWERING_ROUTES, gateway=gateway_yaml
    )
    server = GatewayServer(load(path, ENVIRON), watch=False)
    await server.start()
    return server
