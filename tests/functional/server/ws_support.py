"""A real aiohttp WebSocket upstream for the tunnel tests, and the routes in front of it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from multidict import CIMultiDictProxy

from gateway.core.websocket import BEARER_PROTOCOL_PREFIX
from tests.conftest import LogCapture
from tests.support import ORDERS_HEALTH, route_table, upstream_line


@dataclass
class WebSocketUpstream:
    """An aiohttp upstream: ``/ws/echo`` echoes, ``/ws/chat`` chooses the ``chat`` subprotocol,
    ``/ws/close`` closes with 4000 after the first message, ``/ws/abrupt`` drops the connection
    after the first message, ``/ws/flood`` sends 64 KiB messages after the first message until
    the connection fails, ``/ws/plain`` answers 200 without switching. Records every
    handshake's headers and every message it got."""

    handshakes: list[CIMultiDictProxy[str]] = field(default_factory=list)
    received: list[object] = field(default_factory=list)
    closed: list[int | None] = field(default_factory=list)
    closed_event: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws/plain", self._plain)
        app.router.add_get("/ws/{kind}", self._socket)
        app.router.add_get("/ws-{variant}/{kind}", self._socket)
        return app

    async def _plain(self, request: web.Request) -> web.Response:
        self.handshakes.append(request.headers)
        return web.Response(text="no websocket here")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        self.handshakes.append(request.headers)
        kind = request.match_info["kind"]
        socket = web.WebSocketResponse(protocols=("chat",) if kind == "chat" else ())
        await socket.prepare(request)
        async for message in socket:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            self.received.append(message.data)
            if kind == "close":
                await socket.close(code=4000, message=b"done")
                break
            if kind == "abrupt":
                assert request.transport is not None
                request.transport.abort()
                break
            if kind == "flood":
                with contextlib.suppress(ConnectionError):
                    while True:
                        await socket.send_bytes(b"x" * 65536)
                break
            if message.type is WSMsgType.TEXT:
                await socket.send_str(message.data)
            else:
                await socket.send_bytes(message.data)
        self.closed.append(socket.close_code)
        self.closed_event.set()
        return socket


async def access_lines(log_capture: LogCapture) -> list[dict[str, object]]:
    """The access lines, once the tunnel's has been written (it follows the close)."""
    async with asyncio.timeout(5):
        while not log_capture.events("access"):  # noqa: ASYNC110 - the log has no event to wait on
            await asyncio.sleep(0.02)
    return log_capture.events("access")


def bearer_protocol(token: str) -> str:
    """The bearer subprotocol entry carrying ``token``."""
    return BEARER_PROTOCOL_PREFIX + base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()


def websocket_routes(url: str) -> str:
    """``/ws`` (token from header or subprotocol), ``/ws-idle`` (idle 500 ms, 64 B messages),
    ``/ws-report`` (report mode) on the WebSocket upstream; ``/plain-ws`` without `websocket`."""
    return route_table(
        ORDERS_HEALTH,
        "  - path: /ws\n    upstream: ws\n    scopes: [orders:read]\n"
        "    websocket: {{token_from_subprotocol: true}}\n",
        "  - path: /ws-idle\n    upstream: ws\n    scopes: [orders:read]\n"
        "    websocket: {{idle_timeout: 500ms, max_message_size: 64}}\n",
        "  - path: /ws-report\n    upstream: ws\n    scopes: [orders:read]\n    mode: report\n"
        "    websocket: true\n",
        "  - path: /ws-public\n    upstream: ws\n    auth: none\n    websocket: true\n",
        "  - path: /ws-none\n    upstream: ws\n    scopes: [orders:read]\n",
        upstreams=upstream_line("ws", url),
    )
