"""WebSocket tunnels: the handshake with the upstream, then messages relayed both ways until
one side closes, the token expires, the tunnel idles, or the gateway shuts down.

The gateway terminates WebSocket on both sides and relays messages (frame level), rather than
splicing bytes: it must itself close the tunnel with a close code when the token expires, on
idle and at shutdown, count bytes and cap message sizes, and none of that can be done safely in
the middle of someone else's frame. The client side is aiohttp's `web.WebSocketResponse`; the
upstream side is a connection from the gateway's own pool, switched by a checked ``101``
(`gateway.core.websocket.check_switch`) and framed by `gateway.server.websocket_upstream`.
Pings are answered on each side by the gateway (each hop keeps itself alive); no extension
(permessage-deflate) is negotiated on either side.

How a tunnel ends (``gateway.websocket.close_reason`` in the access line) and the close codes
each side gets: the side that closes first has its code relayed to the other; the gateway
closes both sides with 1008 at token expiry, 1001 on idle and at shutdown; a side that drops or
breaks the protocol leaves the other closed with 1001 (client gone) or 1011 (upstream gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from gateway.core.cors import CorsHeaders
from gateway.core.outcomes import Forward
from gateway.core.urls import UpstreamTarget
from gateway.core.websocket import (
    WEBSOCKET_VERSION,
    SwitchError,
    Upgrade,
    check_switch,
    new_key,
)
from gateway.core.websocket_frames import (
    CloseCode,
    FrameError,
    Opcode,
    close_payload,
    parse_close,
)
from gateway.server.tracebacks import drop_tracebacks
from gateway.server.upstream import (
    RESPONSE_STARTED,
    ProxyOutcome,
    UpstreamClient,
    UpstreamFailure,
)
from gateway.server.upstream_errors import ConnectionGone
from gateway.server.websocket_upstream import UpstreamSocket

__all__ = [
    "CLOSE_GRACE",
    "CloseReason",
    "Tunnel",
    "TunnelEnd",
    "TunnelOutcome",
    "TunnelSettings",
    "Tunnels",
    "handshake_headers",
    "open_tunnel",
]

# How long each side gets to answer a close frame before its connection is simply closed.
CLOSE_GRACE = 1.0
# Codes that may be relayed as they came, with 3000-4999 (1005 and 1006 are never sent).
_RELAYED = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class CloseReason(enum.Enum):
    """Why a tunnel ended: the access log's ``gateway.websocket.close_reason``."""

    CLIENT_CLOSED = "client_closed"
    UPSTREAM_CLOSED = "upstream_closed"
    CLIENT_GONE = "client_gone"  # the client's connection dropped without a close frame
    UPSTREAM_GONE = "upstream_gone"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason code, not a secret
    IDLE_TIMEOUT = "idle_timeout"
    SHUTDOWN = "shutdown"
    MESSAGE_TOO_BIG = "message_too_big"  # the client's message was over the limit
    CLIENT_PROTOCOL_ERROR = "client_protocol_error"
    UPSTREAM_PROTOCOL_ERROR = "upstream_protocol_error"  # the upstream's (or its size limit)


@dataclass(frozen=True, slots=True)
class TunnelEnd:
    """How a tunnel ended; ``code`` is the close code of the frame that ended it (1006 when a
    connection dropped without one)."""

    reason: CloseReason
    code: int


# The code and text the gateway closes both sides with when the end is its own decision.
_GATEWAY_CLOSES = {
    CloseReason.TOKEN_EXPIRED: (CloseCode.POLICY_VIOLATION, "token expired"),
    CloseReason.IDLE_TIMEOUT: (CloseCode.GOING_AWAY, "idle timeout"),
    CloseReason.SHUTDOWN: (CloseCode.GOING_AWAY, "going away"),
}


class Tunnel:
    """One established tunnel: relays until it ends, then closes both sides."""

    def __init__(
        self,
        client: web.WebSocketResponse,
        upstream: UpstreamSocket,
        *,
        idle_timeout: float,
        expires_at: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._upstream = upstream
        self._idle_timeout = idle_timeout
        self._expires_at = expires_at
        self._clock = clock
        self._shutdown = asyncio.Event()
        self._last_activity = 0.0
        self.client_bytes = 0  # message payload bytes, client to upstream
        self.upstream_bytes = 0  # and upstream to client

    def shut_down(self) -> None:
        """End the tunnel now (1001 to both sides): the gateway is shutting down."""
        self._shutdown.set()

    async def run(self) -> TunnelEnd:
        """Relay until the tunnel ends, close both sides, and say how it ended."""
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        tasks = [
            asyncio.create_task(self._from_client()),
            asyncio.create_task(self._from_upstream()),
            asyncio.create_task(self._watch()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        end = next(result for result in results if isinstance(result, TunnelEnd))
        try:
            async with asyncio.timeout(3 * CLOSE_GRACE):
                await self._close(end)
        except (TimeoutError, ConnectionError, aiohttp.ClientError) as error:
            drop_tracebacks(error)  # a failed drain's, kept by its waiter
        finally:
            self._upstream.close()
            # aiohttp keeps the error a close ran into, and its traceback holds the response
            # (and the request): dropped here, the tunnel is freed without the cyclic collector.
            drop_tracebacks(self._client.exception())
        return end

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    async def _from_client(self) -> TunnelEnd:
        client, upstream = self._client, self._upstream
        try:
            while True:
                message = await client.receive()
                self._touch()
                kind = message.type
                if kind is WSMsgType.TEXT:
                    data = message.data.encode()
                    await upstream.send(Opcode.TEXT, data)
                    self.client_bytes += len(data)
                elif kind is WSMsgType.BINARY:
                    await upstream.send(Opcode.BINARY, message.data)
                    self.client_bytes += len(message.data)
                elif kind is WSMsgType.PING:
                    await client.pong(message.data)
                elif kind is WSMsgType.CLOSE:
                    return TunnelEnd(CloseReason.CLIENT_CLOSED, int(message.data))
                elif kind is WSMsgType.ERROR:
                    code = getattr(message.data, "code", CloseCode.PROTOCOL_ERROR)
                    if code == CloseCode.MESSAGE_TOO_BIG:
                        return TunnelEnd(CloseReason.MESSAGE_TOO_BIG, code)
                    return TunnelEnd(CloseReason.CLIENT_PROTOCOL_ERROR, int(code))
                elif kind is not WSMsgType.PONG:  # CLOSING, CLOSED: the connection dropped
                    return TunnelEnd(CloseReason.CLIENT_GONE, CloseCode.ABNORMAL)
        except ConnectionError as error:
            return self._gone(error)

    async def _from_upstream(self) -> TunnelEnd:
        client, upstream = self._client, self._upstream
        while True:
            try:
                message = await upstream.receive()
                if message is None:
                    return TunnelEnd(CloseReason.UPSTREAM_GONE, CloseCode.ABNORMAL)
                self._touch()
                opcode = message.opcode
                if opcode == Opcode.CLOSE:
                    code, _ = parse_close(message.data)
                    return TunnelEnd(CloseReason.UPSTREAM_CLOSED, code)
                if opcode == Opcode.PING:
                    await upstream.send(Opcode.PONG, message.data)
                    continue
                if opcode == Opcode.PONG:
                    continue
                if opcode == Opcode.TEXT:
                    await client.send_str(message.data.decode())
                else:
                    await client.send_bytes(message.data)
                self.upstream_bytes += len(message.data)
            except FrameError as exc:
                return TunnelEnd(CloseReason.UPSTREAM_PROTOCOL_ERROR, exc.code)
            except ConnectionError as error:
                return self._gone(error)

    def _gone(self, error: ConnectionError) -> TunnelEnd:
        """A write failed: which side left. aiohttp's drain fails with a `ConnectionError` its
        waiter keeps (`gateway.server.tracebacks`), its closed-transport check and the upstream
        socket with `ConnectionResetError`."""
        drop_tracebacks(error)
        reason = CloseReason.UPSTREAM_GONE if self._upstream.gone else CloseReason.CLIENT_GONE
        return TunnelEnd(reason, CloseCode.ABNORMAL)

    async def _watch(self) -> TunnelEnd:
        """The gateway's own reasons to end the tunnel: expiry, idle time, shutdown."""
        loop = asyncio.get_running_loop()
        expiry = None
        if self._expires_at is not None:
            expiry = loop.time() + (self._expires_at - self._clock())
        while True:
            now = loop.time()
            if self._shutdown.is_set():
                return TunnelEnd(CloseReason.SHUTDOWN, CloseCode.GOING_AWAY)
            if expiry is not None and now >= expiry:
                return TunnelEnd(CloseReason.TOKEN_EXPIRED, CloseCode.POLICY_VIOLATION)
            idle_at = self._last_activity + self._idle_timeout
            if now >= idle_at:
                return TunnelEnd(CloseReason.IDLE_TIMEOUT, CloseCode.GOING_AWAY)
            wake = idle_at if expiry is None else min(idle_at, expiry)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._shutdown.wait(), wake - now)

    async def _close(self, end: TunnelEnd) -> None:
        reason = end.reason
        relayed = end.code if end.code in _RELAYED or 3000 <= end.code <= 4999 else 1000
        if reason in _GATEWAY_CLOSES:
            code, text = _GATEWAY_CLOSES[reason]
            await asyncio.gather(self._close_client(code, text), self._close_upstream(code, text))
        elif reason is CloseReason.CLIENT_CLOSED:
            await self._close_upstream(relayed, "")
            await self._close_client(relayed, "")
        elif reason is CloseReason.UPSTREAM_CLOSED:
            await self._close_client(relayed, "")
            await self._upstream.send(Opcode.CLOSE, close_payload(relayed))  # the reply
        elif reason is CloseReason.UPSTREAM_PROTOCOL_ERROR:
            await self._upstream.send(Opcode.CLOSE, close_payload(end.code))
            await self._close_client(CloseCode.INTERNAL_ERROR, "upstream error")
        elif reason is CloseReason.UPSTREAM_GONE:
            await self._close_client(CloseCode.INTERNAL_ERROR, "upstream gone")
        else:  # the client dropped, broke the protocol or sent too much: aiohttp has closed it
            await self._close_upstream(CloseCode.GOING_AWAY, "")

    async def _close_client(self, code: int, text: str) -> None:
        await self._client.close(code=code, message=text.encode())

    async def _close_upstream(self, code: int, text: str) -> None:
        """Send a close frame and wait (briefly) for the upstream's own."""
        upstream = self._upstream
        await upstream.send(Opcode.CLOSE, close_payload(code, text))
        with contextlib.suppress(TimeoutError, FrameError):
            async with asyncio.timeout(CLOSE_GRACE):
                while (message := await upstream.receive()) is not None:
                    if message.opcode == Opcode.CLOSE:
                        return


class Tunnels:
    """The open tunnels of one process, so that a shutdown can close them (1001) at once."""

    def __init__(self) -> None:
        self._open: set[Tunnel] = set()

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def track(self, tunnel: Tunnel) -> Iterator[None]:
        """Count ``tunnel`` as open while the block runs."""
        self._open.add(tunnel)
        try:
            yield
        finally:
            self._open.discard(tunnel)

    def shut_down(self) -> None:
        """Close every open tunnel with 1001 (each closes within its close grace)."""
        for tunnel in list(self._open):
            tunnel.shut_down()


def handshake_headers(headers: CIMultiDict[str], upgrade: Upgrade, key: str) -> None:
    """Turn the upstream headers of a request (hop-by-hop already removed) into the gateway's
    own handshake: the client's ``Sec-WebSocket-*`` values are replaced (a key of the
    gateway's, the subprotocols offered without any bearer entry, no extension)."""
    for name in list(headers):
        if name.lower().startswith("sec-websocket-"):
            headers.popall(name, None)
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Version"] = WEBSOCKET_VERSION
    headers["Sec-WebSocket-Key"] = key
    if upgrade.protocols:
        headers["Sec-WebSocket-Protocol"] = ", ".join(upgrade.protocols)


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelSettings:
    """What one tunnel is held to (the route's settings, else gateway.yaml's limits)."""

    idle_timeout: float
    max_message_size: int
    leeway: float  # the token is accepted until exp + leeway: the tunnel lasts as long


@dataclass(frozen=True, slots=True)
class TunnelOutcome:
    """What a tunnel moved and how it ended, for the access log."""

    response: web.WebSocketResponse
    end: TunnelEnd
    upstream_ns: int  # the handshake with the upstream
    client_bytes: int
    upstream_bytes: int


async def open_tunnel(
    request: web.BaseRequest,
    client: UpstreamClient,
    decision: Forward,
    url: UpstreamTarget,
    headers: CIMultiDict[str],
    tls: ssl.SSLContext | None,
    *,
    settings: TunnelSettings,
    tunnels: Tunnels,
    added: tuple[tuple[str, str], ...] = (),
    cors: CorsHeaders | None = None,
) -> ProxyOutcome | TunnelOutcome:
    """Hand the upstream the gateway's handshake; on a real switch, answer the client's
    handshake and relay until the tunnel ends. Any other answer is relayed as a plain response
    (`ProxyOutcome`, with ``cors`` in place of the upstream's CORS fields, as every answer of a
    CORS route), and both connections are closed after it; a ``101`` that does not switch as
    asked is an `UpstreamFailure` (502) and opens nothing."""
    upgrade = decision.websocket
    assert upgrade is not None
    key = new_key()
    handshake_headers(headers, upgrade, key)
    outcome = await client.handshake(
        request, decision.upstream, url, headers, tls, added=added, cors=cors
    )
    if isinstance(outcome, ProxyOutcome):
        return outcome
    connection = outcome.connection
    try:
        chosen = check_switch(101, outcome.headers, key, upgrade.protocols)
        transport, tail = connection.detach()
    except SwitchError as exc:
        connection.reset()
        raise UpstreamFailure(
            decision.upstream.name, kind="bad_response", detail=f"BadUpgrade:{exc.problem}"
        ) from None
    except ConnectionGone:
        raise UpstreamFailure(
            decision.upstream.name, kind="unreachable", detail="ConnectionGone"
        ) from None
    upstream = UpstreamSocket(settings.max_message_size)
    upstream.attach(transport, tail)
    response = web.WebSocketResponse(
        protocols=(chosen,) if chosen else (), timeout=CLOSE_GRACE, autoclose=False,
        autoping=False, compress=False, max_msg_size=settings.max_message_size,
    )  # fmt: skip
    for name, value in added:
        response.headers[name] = value
    try:
        await response.prepare(request)
    except BaseException:
        upstream.abort()
        raise
    request[RESPONSE_STARTED] = response
    claims = decision.claims
    expires_at = claims.expires_at + settings.leeway if claims is not None else None
    tunnel = Tunnel(response, upstream, idle_timeout=settings.idle_timeout, expires_at=expires_at)
    with tunnels.track(tunnel):
        end = await _run_to_the_end(tunnel)
    return TunnelOutcome(
        response, end, outcome.upstream_ns, tunnel.client_bytes, tunnel.upstream_bytes
    )


async def _run_to_the_end(tunnel: Tunnel) -> TunnelEnd:
    """Run the tunnel; if the handler is cancelled meanwhile (aiohttp's handler cancellation
    on a lost connection, the drain's cut), the tunnel still closes both sides and says how
    it ended (within its close grace), so the access line is written."""
    run = asyncio.create_task(tunnel.run())
    try:
        return await asyncio.shield(run)
    except asyncio.CancelledError:
        tunnel.shut_down()
        end = await run
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # answered: the tunnel is closed and will be logged
        return end
