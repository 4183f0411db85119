"""WebSocket smuggling: only a real 101 opens a tunnel; bytes after a refused or declined
upgrade are never read as frames, nor passed to the upstream as a second request."""

from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.core.websocket import accept_value
from tests.conftest import GatewayFactory, LogCapture
from tests.functional.server.ws_support import websocket_routes
from tests.raw import RawRequest, close, open_connection, read_answer, read_request, socket_upstream
from tests.support import RecordingUpstream, TokenFactory

Client = TestClient[web.Request, web.Application]
KEY = base64.b64encode(b"0123456789abcdef").decode()
SMUGGLED = b"GET /orders/health?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def handshake(path: str, token: str, *extra: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1", "Host: gw", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {KEY}", f"Authorization: Bearer {token}",
        *extra,
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SwitchingUpstream:
    """A socket-level upstream answering each handshake with ``answer(request)``, then
    recording every byte that follows on the connection."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.requests: list[RawRequest] = []
        self.after = bytearray()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader)
            self.requests.append(request)
            key = request.headers["Sec-WebSocket-Key"]
            answer = self.answer or (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_value(key).encode() + b"\r\n\r\n"
            )  # fmt: skip
            writer.write(answer)
            await writer.drain()
            while chunk := await reader.read(65536):
                self.after += chunk
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


WRONG_ACCEPT = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + accept_value(KEY).encode() + b"\r\n\r\n"
)  # the client's key's accept: the upstream never saw that key (the gateway sends its own)


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, id="200-not-101"),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
            502, id="wrong-accept",
        ),
        pytest.param(WRONG_ACCEPT, 502, id="accept-of-the-client-key"),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            502, id="h2c-101",
        ),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 502, id="bare-101"),
    ],
)  # fmt: skip
async def test_only_a_real_101_opens_a_tunnel(
    gateway: GatewayFactory, tokens: TokenFactory, answer: bytes, status: int
) -> None:
    """Whatever the upstream answers instead of a valid switch, the client gets a plain
    response, the connection closes, and the bytes the client sent after the handshake never
    reach the upstream (as frames or as a request)."""
    upstream = SwitchingUpstream(answer)
    async with socket_upstream(upstream.serve) as url:
        client = await gateway(routes=websocket_routes(url))
        reader, writer = await open_connection(client)
        try:
            writer.write(handshake("/ws/x", tokens.good()) + SMUGGLED)
            await writer.drain()
            async with asyncio.timeout(5):
                first = await read_answer(reader)
                rest = await reader.read()  # the gateway closes the connection
        finally:
            await close(writer)
    assert first.status == status
    assert rest == b""
    assert len(upstream.requests) == 1
    assert b"smuggled" not in bytes(upstream.after)


async def test_a_real_101_tunnels_and_frames_follow(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """With a valid switch, the client gets 101 with the accept for its own key, and the
    upstream's handshake carries the gateway's key, never the client's."""
    upstream = SwitchingUpstream(None)
    async with socket_upstream(upstream.serve) as url:
        client = await gateway(routes=websocket_routes(url))
        reader, writer = await open_connection(client)
        try:
            writer.write(handshake("/ws/x", tokens.good()))
            await writer.drain()
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
        finally:
            await close(writer)
    assert head.startswith(b"HTTP/1.1 101")
    assert f"Sec-WebSocket-Accept: {accept_value(KEY)}".encode() in head
    assert upstream.requests[0].headers["Sec-WebSocket-Key"] != KEY


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(("Content-Length: 5",), id="body"),
        pytest.param(("Sec-WebSocket-Version: 8",), id="second-version"),
        pytest.param(("Upgrade: h2c",), id="second-upgrade"),
    ],
)
async def test_malformed_handshakes_are_refused_at_the_door(
    gateway: GatewayFactory, tokens: TokenFactory, extra: tuple[str, ...]
) -> None:
    """A malformed handshake on a WebSocket route is a 400 and reaches no upstream."""
    upstream = SwitchingUpstream(None)
    async with socket_upstream(upstream.serve) as url:
        client = await gateway(routes=websocket_routes(url))
        reader, writer = await open_connection(client)
        try:
            writer.write(handshake("/ws/x", tokens.good(), *extra) + b"hello")
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await read_answer(reader)
        finally:
            await close(writer)
    assert answer.status == 400
    assert answer.headers["Sec-WebSocket-Version"] == "13"
    assert upstream.requests == []


async def test_routes_without_websocket_keep_todays_behaviour(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """On a route without `websocket`, an upgrade reaches the upstream as a plain GET without
    Upgrade, the client gets the upstream's answer (never a 101) and the connection closes:
    the bytes after it are never read as a request."""
    client = await gateway(routes=websocket_routes("{upstream}"))  # the recording upstream
    reader, writer = await open_connection(client)
    try:
        writer.write(handshake("/ws-none/x", tokens.good()) + SMUGGLED)
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await read_answer(reader)
            rest = await reader.read()
    finally:
        await close(writer)
    assert answer.status == 200
    assert rest == b""
    assert [seen.raw_path for seen in recorder.requests] == ["/ws-none/x"]
    assert "Upgrade" not in recorder.last.headers


@pytest.mark.parametrize("path", ["/ws-none/x", "/ws/echo"])
async def test_a_bearer_subprotocol_on_a_plain_request_never_reaches_the_upstream(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream, path: str
) -> None:
    """A plain GET (no Upgrade) carrying a token as a bearer subprotocol entry, on a route
    without `websocket` and on one that tunnels: the upstream gets the other entries, never
    the token (it reaches an upstream only as Authorization, with forward_token)."""
    client = await gateway(routes=websocket_routes("{upstream}"))
    token = tokens.good()
    entry = "base64url.bearer.authorization.k8s.io." + base64.urlsafe_b64encode(
        token.encode()
    ).decode().rstrip("=")
    response = await client.get(
        path,
        headers={"Authorization": f"Bearer {token}", "Sec-WebSocket-Protocol": f"chat, {entry}"},
    )
    assert response.status == 200
    seen = recorder.last.headers
    assert seen.get("Sec-WebSocket-Protocol") == "chat"
    assert token not in str(seen)
    assert entry not in str(seen)
