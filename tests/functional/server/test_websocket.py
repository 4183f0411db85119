"""WebSocket tunnels through a real gateway, to a real aiohttp WebSocket upstream, with a real
client (aiohttp's ws_connect)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpServer

from tests.conftest import GatewayFactory, LogCapture
from tests.functional.server.ws_support import WebSocketUpstream, bearer_protocol, websocket_routes
from tests.support import TokenFactory

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def ws_upstream(
    aiohttp_server: AiohttpServer,
) -> AsyncIterator[tuple[WebSocketUpstream, str]]:
    upstream = WebSocketUpstream()
    server = await aiohttp_server(upstream.app())
    yield upstream, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def ws_gateway(gateway: GatewayFactory, ws_upstream: tuple[WebSocketUpstream, str]) -> Client:
    return await gateway(routes=websocket_routes(ws_upstream[1]))


async def test_echo_through_the_tunnel(
    ws_gateway: Client, ws_upstream: tuple[WebSocketUpstream, str], tokens: TokenFactory,
    log_capture: LogCapture,
) -> None:  # fmt: skip
    """Text and binary messages go both ways; the upstream's handshake carries the identity
    headers and neither the token nor the client's key; one access line when it ends."""
    upstream, _ = ws_upstream
    headers = {"Authorization": f"Bearer {tokens.good()}", "X-Auth-Subject": "mallory"}
    async with ws_gateway.ws_connect("/ws/echo", headers=headers) as socket:
        await socket.send_str("hello")
        assert (await socket.receive(timeout=5)).data == "hello"
        await socket.send_bytes(b"\x00\x01")
        assert (await socket.receive(timeout=5)).data == b"\x00\x01"
        await socket.close()
    async with asyncio.timeout(5):
        await upstream.closed_event.wait()
    seen = upstream.handshakes[0]
    assert seen["X-Auth-Subject"] == "alice"
    assert seen.getall("X-Auth-Subject") == ["alice"]
    assert "Authorization" not in seen
    assert upstream.received == ["hello", b"\x00\x01"]
    assert upstream.closed == [1000]
    (line,) = log_capture.events("access")
    assert line["http.response.status_code"] == 101
    assert line["http.request.body.bytes"] == 7
    assert line["http.response.body.bytes"] == 7
    assert line["gateway.websocket.close_reason"] == "client_closed"
    assert line["gateway.websocket.close_code"] == 1000
    assert line["auth.result"] == "allowed"
