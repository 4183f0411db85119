"""WebSocket tunnels through a real gateway, to a real aiohttp WebSocket upstream, with a real
client (aiohttp's ws_connect)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpServer

from gateway.server.app import IN_FLIGHT, METRICS
from tests.conftest import GatewayFactory, LogCapture
from tests.functional.server.ws_support import (
    WebSocketUpstream,
    access_lines,
    bearer_protocol,
    websocket_routes,
)
from tests.support import TokenFactory, metric_sample

# Every request here, refused or failed, is freed without the cyclic collector.
pytestmark = pytest.mark.usefixtures("no_request_cycles")

Client = TestClient[web.Request, web.Application]


Upstream = tuple[WebSocketUpstream, str]


@pytest.fixture
async def ws_upstream(aiohttp_server: AiohttpServer) -> Upstream:
    """A real aiohttp WebSocket upstream and its URL."""
    upstream = WebSocketUpstream()
    server = await aiohttp_server(upstream.app())
    return upstream, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def ws_gateway(gateway: GatewayFactory, ws_upstream: Upstream) -> Client:
    """The gateway in front of the WebSocket upstream (`websocket_routes`)."""
    return await gateway(routes=websocket_routes(ws_upstream[1]))


async def test_echo_through_the_tunnel(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory,
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
    assert line["gateway.auth.result"] == "allowed"


async def test_token_from_the_bearer_subprotocol(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """The token in the bearer subprotocol opens the tunnel; the upstream is offered only the
    other subprotocols, chooses one, and the client gets that one, never the bearer entry."""
    upstream, _ = ws_upstream
    token = tokens.good()
    protocols = ("chat", bearer_protocol(token))
    async with ws_gateway.ws_connect("/ws/chat", protocols=protocols) as socket:
        assert socket.protocol == "chat"
        await socket.send_str("hi")
        assert (await socket.receive(timeout=5)).data == "hi"
    seen = upstream.handshakes[0]
    assert seen["Sec-WebSocket-Protocol"] == "chat"
    assert seen["X-Auth-Subject"] == "alice"
    assert "Authorization" not in seen
    assert token not in str(dict(seen))
    assert token not in log_capture.text
    assert bearer_protocol(token) not in log_capture.text


@pytest.mark.parametrize(
    ("path", "headers", "protocols", "status"),
    [
        pytest.param("/ws/echo", {}, (), 401, id="no-token"),
        pytest.param("/ws/echo", {}, ("bad",), 401, id="other-protocol-only"),
        pytest.param("/ws/echo", {"Authorization": "Bearer good"}, ("bearer",), 400,
                     id="header-and-subprotocol"),
        pytest.param("/ws/echo", {}, ("bearer", "bearer"), 400, id="two-bearer-entries"),
        pytest.param("/ws/echo", {}, ("upper",), 400, id="upper-case-prefix"),
        pytest.param("/ws-idle/echo", {}, ("bearer",), 401, id="route-without-subprotocol-token"),
        pytest.param("/ws/echo", {}, ("scope",), 403, id="insufficient-scope"),
    ],
)  # fmt: skip
async def test_refused_handshakes_never_reach_the_upstream(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory, log_capture: LogCapture,
    path: str, headers: dict[str, str], protocols: tuple[str, ...], status: int,
) -> None:  # fmt: skip
    """Every refused handshake gets its HTTP refusal and the upstream sees nothing; a token
    never appears in the log."""
    good = tokens.good()
    entries = {
        "bearer": bearer_protocol(good),
        "upper": bearer_protocol(good).upper(),
        "scope": bearer_protocol(tokens.good(scope="other")),
        "bad": "bad",
    }
    offered = tuple(entries[name] for name in protocols)
    sent = {k: v.replace("good", good) for k, v in headers.items()}
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await ws_gateway.ws_connect(path, headers=sent, protocols=offered)
    assert caught.value.status == status
    assert ws_upstream[0].handshakes == []
    assert good not in log_capture.text


async def test_the_upstream_closing_is_relayed(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """The upstream's close code reaches the client and the access line."""
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    async with ws_gateway.ws_connect("/ws/close", headers=headers) as socket:
        await socket.send_str("bye")
        message = await socket.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 4000
    (line,) = await access_lines(log_capture)
    assert line["gateway.websocket.close_reason"] == "upstream_closed"
    assert line["gateway.websocket.close_code"] == 4000


async def test_an_upstream_that_drops_closes_the_client_with_1011(
    ws_gateway: Client, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """An upstream connection that drops mid-tunnel closes the client with 1011."""
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    async with ws_gateway.ws_connect("/ws/abrupt", headers=headers) as socket:
        await socket.send_str("x")
        message = await socket.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 1011
    (line,) = await access_lines(log_capture)
    assert line["gateway.websocket.close_reason"] == "upstream_gone"


async def test_idle_tunnels_are_closed(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """A tunnel with no message either way for the route's idle_timeout is closed with 1001
    on both sides."""
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    async with ws_gateway.ws_connect("/ws-idle/echo", headers=headers) as socket:
        message = await socket.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 1001
    async with asyncio.timeout(5):
        await ws_upstream[0].closed_event.wait()
    assert ws_upstream[0].closed == [1001]
    (line,) = await access_lines(log_capture)
    assert line["gateway.websocket.close_reason"] == "idle_timeout"


async def test_messages_over_the_limit_close_the_tunnel(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """A client message over the route's max_message_size closes it with 1009 and never
    reaches the upstream."""
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    async with ws_gateway.ws_connect("/ws-idle/echo", headers=headers) as socket:
        await socket.send_bytes(b"x" * 65)
        message = await socket.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 1009
    (line,) = await access_lines(log_capture)
    assert line["gateway.websocket.close_reason"] == "message_too_big"
    assert ws_upstream[0].received == []


async def test_report_mode_tunnels_and_says_would_deny(
    ws_gateway: Client, ws_upstream: Upstream, log_capture: LogCapture
) -> None:
    """A report-mode route tunnels a handshake without a token, logged as would_deny."""
    async with ws_gateway.ws_connect("/ws-report/echo") as socket:
        await socket.send_str("x")
        assert (await socket.receive(timeout=5)).data == "x"
    (line,) = await access_lines(log_capture)
    assert (line["gateway.auth.result"], line["gateway.auth.reason"]) == ("would_deny", "missing")
    assert "X-Auth-Subject" not in ws_upstream[0].handshakes[0]


async def test_an_upstream_answering_200_opens_no_tunnel(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory
) -> None:
    """An upstream that answers 200 instead of 101: the client gets that answer, not a
    tunnel."""
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await ws_gateway.ws_connect("/ws/plain", headers=headers)
    assert caught.value.status == 200
    assert len(ws_upstream[0].handshakes) == 1


@pytest.mark.slow
async def test_the_tunnel_closes_when_the_token_expires(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """A tunnel lasts as long as its token would be accepted (exp + leeway), then both sides
    get 1008."""
    now = int(time.time())
    token = tokens.good(
        iat=now - 60, exp=now + 2 - 30
    )  # the tests' leeway is 30 s  # accepted for about 2 more seconds
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    async with ws_gateway.ws_connect("/ws/echo", headers=headers) as socket:
        await socket.send_str("still valid")
        assert (await socket.receive(timeout=5)).data == "still valid"
        message = await socket.receive(timeout=10)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 1008
    assert 1 <= time.monotonic() - started <= 6
    async with asyncio.timeout(5):
        await ws_upstream[0].closed_event.wait()
    assert ws_upstream[0].closed == [1008]
    (line,) = await access_lines(log_capture)
    assert line["gateway.websocket.close_reason"] == "token_expired"
    assert line["gateway.websocket.close_code"] == 1008


async def test_shutdown_closes_tunnels_with_1001(
    ws_gateway: Client, ws_upstream: Upstream, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """The drain closes open tunnels at once (1001 both sides) instead of waiting them out;
    each is logged, counted, and no longer in flight."""
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    app = ws_gateway.app
    async with ws_gateway.ws_connect("/ws/echo", headers=headers) as socket:
        await socket.send_str("x")
        await socket.receive(timeout=5)
        assert metric_sample(app[METRICS], "gateway_requests_in_flight") == 1
        loop = asyncio.get_running_loop()
        drain = asyncio.create_task(app[IN_FLIGHT].drain(loop.time() + 10))
        message = await socket.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 1001
        assert await asyncio.wait_for(drain, 5) == 0  # none left to cut
    assert ws_upstream[0].closed == [1001]
    (line,) = await access_lines(log_capture)
    assert line["gateway.websocket.close_reason"] == "shutdown"
    assert metric_sample(app[METRICS], "gateway_requests_in_flight") == 0
    assert (
        metric_sample(
            app[METRICS], "gateway_websocket_tunnels_total", route="/ws", reason="shutdown"
        )
        == 1
    )
