"""WebSocket tunnels on routes with a CORS policy, through a real gateway: browsers apply no
CORS to WebSocket, so the policy's origins are checked at the handshake (cross-site WebSocket
hijacking), and an upstream's non-101 answer to a handshake gets the gateway's CORS fields, as
every answer of such a route does."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpServer

from tests.conftest import GatewayFactory, LogCapture
from tests.functional.server.test_websocket_smuggling import SMUGGLED, SwitchingUpstream, handshake
from tests.functional.server.ws_support import WebSocketUpstream
from tests.raw import close, open_connection, read_answer, socket_upstream
from tests.support import ORDERS_HEALTH, TokenFactory, route_table, upstream_line

# Every request here, refused or failed, is freed without the cyclic collector.
pytestmark = pytest.mark.usefixtures("no_request_cycles")

Client = TestClient[web.Request, web.Application]
APP = "https://app.example.com"


def cors_routes(url: str) -> str:
    """``/ws`` (protected), ``/ws-public`` and ``/ws-report`` with the default CORS policy;
    ``/ws-no-cors`` without one."""
    return route_table(
        ORDERS_HEALTH,
        "  - path: /ws\n    upstream: ws\n    scopes: [orders:read]\n    websocket: true\n",
        "  - path: /ws-public\n    upstream: ws\n    auth: none\n    websocket: true\n",
        "  - path: /ws-report\n    upstream: ws\n    scopes: [orders:read]\n    mode: report\n"
        "    websocket: true\n",
        "  - path: /ws-no-cors\n    upstream: ws\n    auth: none\n    websocket: true\n"
        "    cors: false\n",
        upstreams=upstream_line("ws", url)
        + 'defaults:\n  cors: {{origins: [https://app.example.com, "https://*.example.org"], '
        "credentials: true}}\n",
    )


FOREIGN = [
    ("Origin: https://evil.test",),
    ("Origin: http://app.example.com",),
    ("Origin: https://app.example.com.evil.test",),
    ("Origin: https://a.b.example.org",),
    ("Origin: null",),
    ("origin: https://evil.test",),
    ("Origin: https://evil.test", f"Origin: {APP}"),  # two: never a guess at which counts
    (f"Origin: {APP}", "Origin: https://evil.test"),
]


@pytest.mark.parametrize("path", ["/ws/x", "/ws-public/x", "/ws-report/x"])
@pytest.mark.parametrize("origin", FOREIGN, ids=lambda lines: " + ".join(lines))
async def test_a_handshake_from_a_foreign_origin_never_opens_a_tunnel(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture, path: str,
    origin: tuple[str, ...],
) -> None:  # fmt: skip
    """403 at the door (public and report-mode routes too: the visitor's cookies, not the
    token, are what a hijacking page rides on), the upstream never sees the handshake, and the
    bytes after it are never read."""
    upstream = SwitchingUpstream(None)
    async with socket_upstream(upstream.serve) as url:
        client = await gateway(routes=cors_routes(url))
        reader, writer = await open_connection(client)
        try:
            writer.write(handshake(path, tokens.good(), "Cookie: session=1", *origin) + SMUGGLED)
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await read_answer(reader)
                rest = await reader.read()
        finally:
            await close(writer)
    assert answer.status in (400, 403)  # two Origin fields: not a handshake at all
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert rest == b""
    assert upstream.requests == []
    line = log_capture.events("access")[-1]
    if answer.status == 403:
        assert line["gateway.auth.reason"] == "cors_origin_not_allowed"
        assert line["gateway.cors.origin_allowed"] is False


@pytest.mark.parametrize(
    ("path", "origin"),
    [
        ("/ws/echo", APP),
        ("/ws/echo", "HTTPS://App.Example.com:443"),
        ("/ws/echo", "https://shop.example.org"),
        ("/ws/echo", None),  # not a browser
        ("/ws-public/echo", APP),
        ("/ws-no-cors/echo", "https://evil.test"),  # no policy: the upstream's to judge
    ],
)
async def test_an_allowed_origin_or_a_non_browser_client_tunnels(
    gateway: GatewayFactory, aiohttp_server: AiohttpServer, tokens: TokenFactory, path: str,
    origin: str | None,
) -> None:  # fmt: skip
    """A real client through to a real aiohttp WebSocket upstream, which gets the Origin."""
    upstream = WebSocketUpstream()
    server = await aiohttp_server(upstream.app())
    client = await gateway(routes=cors_routes(str(server.make_url("")).rstrip("/")))
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    if origin is not None:
        headers["Origin"] = origin
    async with client.ws_connect(path, headers=headers) as socket:
        await socket.send_str("hello")
        assert (await socket.receive(timeout=5)).data == "hello"
        await socket.close()
    assert upstream.handshakes[0].get("Origin") == origin


async def test_a_handshake_the_upstream_declines_gets_the_gateways_cors_fields(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """An upstream's 401 (or 200, 426...) to a handshake is relayed like any answer of the
    route: its own too-generous Access-Control-* replaced by the policy's, Vary: Origin."""
    declined = (
        b"HTTP/1.1 401 Unauthorized\r\nAccess-Control-Allow-Origin: *\r\n"
        b"Access-Control-Expose-Headers: X-Secret\r\nContent-Length: 2\r\n\r\nno"
    )
    upstream = SwitchingUpstream(declined)
    async with socket_upstream(upstream.serve) as url:
        client = await gateway(routes=cors_routes(url))
        for origin, allowed in ((APP, APP), (None, None)):  # a foreign one is refused first
            extra = (f"Origin: {origin}",) if origin else ()
            reader, writer = await open_connection(client)
            try:
                writer.write(handshake("/ws/x", tokens.good(), *extra))
                await writer.drain()
                async with asyncio.timeout(5):
                    answer = await read_answer(reader)
            finally:
                await close(writer)
            assert answer.status == 401
            assert answer.headers.get("Access-Control-Allow-Origin") == allowed
            assert "X-Secret" not in answer.headers.get("Access-Control-Expose-Headers", "")
            assert answer.headers.getall("Vary") == ["Origin"]
