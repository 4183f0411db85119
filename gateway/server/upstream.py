"""The streaming forwarder: a pooled HTTP/1.1 client made for proxying, bodies never buffered.

It sends what the handler built and nothing else: no ``User-Agent``, ``Accept`` or
``Accept-Encoding`` of its own, no cookies, no decompression, no redirects followed, no retries.
``Host`` is the upstream URL's ``host[:port]`` (the port only when it is not the scheme's
default), as aiohttp's client sent it before.

Every wait has a deadline that nothing the peers do can lift: the pooled connection (503 past
it), the connect, the response head and each next body chunk, each write of the request body to
the upstream and each read of it from the client, and each write of the answer to the client.
All but the connect (``connect_timeout``, capped by the upstream's timeout) use the upstream's
``timeout``.

A connection goes back to the pool only when its answer ended by its framing, the request body
was sent in full before the answer came, the method is one whose body an upstream reads
(``POST``, ``PUT``, ``PATCH``; a body on ``GET`` and the like may be ignored and then read as the
next request), and nothing else arrived (`gateway.server.upstream_conn`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast

import aiohttp
from aiohttp import http_writer, web
from multidict import CIMultiDict

from gateway.core.cors import CorsHeaders, apply_cors
from gateway.core.headers import response_headers
from gateway.core.models import Upstream
from gateway.core.urls import UpstreamTarget
from gateway.server.tracebacks import drop_tracebacks
from gateway.server.upstream_conn import Head, UpstreamConnection, reset_transport
from gateway.server.upstream_errors import (
    BadResponse,
    BodyTooLarge,
    ConnectionGone,
    UpstreamFailure,
    fresh,
)
from gateway.server.upstream_pool import ConnectionPool, PoolKey
from gateway.server.upstream_sink import ClientSink
from gateway.server.wire import KeptBytesResponse, Whole, whole_answer

__all__ = [
    "RESPONSE_STARTED",
    "BodyTooLarge",
    "ProxyOutcome",
    "Switched",
    "UpstreamClient",
    "UpstreamFailure",
]

# The streamed response once its head is out (the drain cuts such a request mid-body).
RESPONSE_STARTED = web.RequestKey("response_started", web.StreamResponse)

# Responses up to this size (with a Content-Length) are read whole and sent in one write.
_BUFFERED_MAX = 64 * 1024
# aiohttp's client sent ``Content-Length: 0`` for a body-less request on any other method.
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Methods whose body an upstream reads before it answers; after a body on any other method the
# connection is not reused (the upstream may have left the body unread, to be parsed as a request).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CLIENT_GONE = (ConnectionError, aiohttp.ClientConnectionError)


@dataclass(slots=True, init=False)
class ProxyOutcome:
    """What the forwarder did, for the access log. (Made for every forwarded request: its
    ``__init__`` is written out, to be compiled with the module.)"""

    response: web.StreamResponse | Whole  # a Whole is for the door to write
    upstream_ns: int
    request_bytes: int
    response_bytes: int

    def __init__(
        self,
        response: web.StreamResponse | Whole,
        upstream_ns: int,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        self.response = response
        self.upstream_ns = upstream_ns
        self.request_bytes = request_bytes
        self.response_bytes = response_bytes


@dataclass(slots=True)
class Switched:
    """An upstream that answered a handshake with ``101``: its head, and the connection (out of
    the pool) for the caller to judge and take over (`UpstreamConnection.detach`) or reset."""

    headers: list[tuple[str, str]]
    connection: UpstreamConnection
    upstream_ns: int


class UpstreamClient:
    """One connection pool per process, for every upstream.

    ``pool_size`` caps all upstream connections, ``pool_size_per_host`` those to one (scheme,
    host, port, TLS context) so that one slow upstream cannot take them all; ``connect_timeout``
    bounds a TCP and TLS handshake; an idle connection is dropped after ``idle_timeout`` seconds
    (below the 5 s keep-alive of Node and uvicorn, so the upstream rarely closes it first).
    """

    def __init__(
        self,
        *,
        pool_size: int = 1000,
        pool_size_per_host: int = 256,
        connect_timeout: float = 5.0,
        idle_timeout: float = 4.0,
    ) -> None:
        self._pool_size = pool_size
        self._pool_size_per_host = pool_size_per_host
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._pool: ConnectionPool | None = None
        self._default_tls: ssl.SSLContext | None = None

    async def start(self) -> None:
        """Make the pool (call on the serving loop)."""
        self._pool = ConnectionPool(
            limit=self._pool_size,
            limit_per_key=self._pool_size_per_host,
            idle_timeout=self._idle_timeout,
        )

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def forward(
        self,
        request: web.BaseRequest,
        upstream: Upstream,
        url: UpstreamTarget,
        headers: CIMultiDict[str],
        tls: ssl.SSLContext | None = None,
        *,
        body_limit: int | None = None,
        added: tuple[tuple[str, str], ...] = (),
        cors: CorsHeaders | None = None,
    ) -> ProxyOutcome:
        """Send the request upstream and stream the answer back to the client, with the
        ``added`` response headers set (over the upstream's own) and, on a route with a CORS
        policy, ``cors`` in place of the upstream's CORS fields."""
        pool = self._started()
        step = upstream.timeout
        started = time.perf_counter_ns()
        connection = await self._connection(pool, upstream, url, tls)
        exchange = _Exchange(request, upstream, connection, body_limit, added, cors)
        try:
            response, sent = await exchange.run(url, headers, step)
        finally:
            pool.release(connection, reuse=exchange.reusable)
        assert response is not None  # only handshakes switch
        return ProxyOutcome(
            response=response,
            upstream_ns=time.perf_counter_ns() - started,
            request_bytes=exchange.request_bytes,
            response_bytes=sent,
        )

    async def handshake(
        self,
        request: web.BaseRequest,
        upstream: Upstream,
        url: UpstreamTarget,
        headers: CIMultiDict[str],
        tls: ssl.SSLContext | None = None,
        *,
        added: tuple[tuple[str, str], ...] = (),
        cors: CorsHeaders | None = None,
    ) -> ProxyOutcome | Switched:
        """Send a protocol-switching handshake (``headers`` carry its ``Upgrade``): `Switched`
        when the upstream answered ``101``, else its answer relayed to the client exactly as
        `forward` would (the connection is never reused: nothing after an upgrade request may
        be read as the next exchange)."""
        pool = self._started()
        step = upstream.timeout
        started = time.perf_counter_ns()
        connection = await self._connection(pool, upstream, url, tls)
        exchange = _Exchange(request, upstream, connection, None, added, cors, upgrade=True)
        try:
            response, sent = await exchange.run(url, headers, step)
        except BaseException:
            pool.release(connection, reuse=False)
            raise
        elapsed = time.perf_counter_ns() - started
        if response is None:
            pool.detach(connection)
            return Switched(exchange.switched_headers, connection, elapsed)
        pool.release(connection, reuse=False)
        return ProxyOutcome(response, elapsed, exchange.request_bytes, sent)

    def _started(self) -> ConnectionPool:
        assert self._pool is not None, "UpstreamClient.start() was not awaited"
        return self._pool

    async def _connection(
        self,
        pool: ConnectionPool,
        upstream: Upstream,
        url: UpstreamTarget,
        tls: ssl.SSLContext | None,
    ) -> UpstreamConnection:
        """A pooled connection to ``url`` (an https URL without a context of its own gets the
        system's trust store), within the upstream's connect bound."""
        origin = url.origin
        if tls is None and origin.scheme == "https":
            tls = self._default()
        key: PoolKey = (origin.scheme, origin.host, origin.port, tls)
        return await pool.acquire(key, upstream.name, min(upstream.timeout, self._connect_timeout))

    def _default(self) -> ssl.SSLContext:
        if self._default_tls is None:
            self._default_tls = ssl.create_default_context()
        return self._default_tls


class _Exchange:
    """One request and its answer on one pooled connection."""

    __slots__ = (
        "_added",
        "_body_limit",
        "_connection",
        "_cors",
        "_request",
        "_sender",
        "_upgrade",
        "_upstream",
        "body_sent",
        "request_bytes",
        "reusable",
        "switched_headers",
    )

    def __init__(
        self,
        request: web.BaseRequest,
        upstream: Upstream,
        connection: UpstreamConnection,
        body_limit: int | None,
        added: tuple[tuple[str, str], ...] = (),
        cors: CorsHeaders | None = None,
        *,
        upgrade: bool = False,
    ) -> None:
        self._added = added
        self._cors = cors
        self._upgrade = upgrade
        self.switched_headers: list[tuple[str, str]] = []
        self._request = request
        self._upstream = upstream
        self._connection = connection
        self._body_limit = body_limit
        self._sender: asyncio.Task[None] | None = None
        self.body_sent = False
        self.request_bytes = 0
        self.reusable = False

    async def run(
        self, url: UpstreamTarget, headers: CIMultiDict[str], step: float
    ) -> tuple[web.StreamResponse | Whole | None, int]:
        """The relayed answer (a `Whole` for the door to write) and the body bytes sent;
        ``(None, 0)`` when a handshake switched protocols (its head in ``switched_headers``)."""
        request, connection = self._request, self._connection
        method = request.method
        has_body = request.body_exists
        chunked = has_body and request.content_length is None
        connection.begin(head_only=method == "HEAD", upgrade=self._upgrade)
        try:
            connection.write(_request_head(method, url, headers, request.content_length, has_body))
        except ConnectionGone:
            raise self._failure("unreachable", "ConnectionGone") from None
        if has_body:
            self._sender = asyncio.create_task(self._send_body(chunked, step))
        else:
            self.body_sent = True
        try:
            status, reason, raw = await self._head(step)
            if connection.framing == "upgrade":
                self.switched_headers = [
                    (name.decode("latin-1"), value.decode("latin-1")) for name, value in raw
                ]
                return None, 0
            # The body must have gone out whole before the answer came: else the upstream may
            # not have read it all, and its rest would be read as the next request.
            fully_sent_first = self.body_sent
            response, sent = await self._respond(status, reason, raw, step)
        finally:
            # Dropped: a failed sender keeps its exception, whose traceback holds this exchange.
            sender, self._sender = self._sender, None
            if sender is not None:
                if not sender.done():
                    sender.cancel()  # the answer is whole (or failed): the rest is not needed
                elif not sender.cancelled():
                    sender.exception()  # seen: its failure already decided this exchange
        body_ok = not has_body or method in _BODY_METHODS
        self.reusable = fully_sent_first and body_ok and connection.reusable
        return response, sent

    async def _head(self, step: float) -> Head:
        try:
            return await self._connection.head(step)
        except (TimeoutError, ConnectionGone, BadResponse) as exc:
            sender = self._sender
            if sender is not None:
                if not sender.done():
                    sender.cancel()
                elif not sender.cancelled():
                    error = sender.exception()
                    if isinstance(error, (BodyTooLarge, UpstreamFailure)):
                        raise fresh(error) from None
            if isinstance(exc, TimeoutError):
                raise self._failure("timeout", "HeadTimeout") from None
            if isinstance(exc, BadResponse):
                raise self._failure("bad_response", f"BadResponse:{exc.reason}") from None
            raise self._failure("unreachable", "ConnectionGone") from None

    async def _send_body(self, chunked: bool, step: float) -> None:
        """Stream the client's body upstream; on any failure the upstream connection is reset,
        so the upstream never takes a cut body for a whole one."""
        connection, content, limit = self._connection, self._request.content, self._body_limit
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(content.readany(), step)
                except TimeoutError:
                    raise self._failure("client_timeout", "ClientBodyTimeout") from None
                except _CLIENT_GONE as error:  # aiohttp keeps it on the request's body
                    drop_tracebacks(error)
                    raise self._failure("client_closed", "ClientClosed") from None
                if not chunk:
                    break
                self.request_bytes += len(chunk)
                if limit is not None and self.request_bytes > limit:
                    raise BodyTooLarge
                if chunked:
                    connection.writelines([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
                else:
                    connection.write(chunk)
                await connection.drain(step)
                connection.progress()
            if chunked:
                connection.write(b"0\r\n\r\n")
            self.body_sent = True
            connection.progress()
        except TimeoutError:
            connection.reset()
            raise self._failure("timeout", "BodyWriteTimeout") from None
        except ConnectionGone:
            return  # the upstream closed: what it answered, or did not, tells the rest
        except BaseException:
            connection.reset()
            raise

    async def _respond(
        self, status: int, raw_reason: bytes, raw: list[tuple[bytes, bytes]], step: float
    ) -> tuple[web.StreamResponse | Whole, int]:
        request, connection = self._request, self._connection
        length = connection.content_length if connection.framing == "length" else None
        whole = length is not None and length <= _BUFFERED_MAX and request.method != "HEAD"
        if whole:
            body = await self._read_whole(step)
            if self._cors is None:  # the fields as they came (`gateway.server.wire`)
                answer = whole_answer(request.version, status, raw_reason, raw, body, self._added)
                if answer is not None:
                    return answer, len(body)
        headers = response_headers(raw)
        for name, value in self._added:
            headers[name] = value
        if self._cors is not None:
            apply_cors(headers, self._cors)
        reason = raw_reason.decode("utf-8", "surrogateescape") or None
        if whole:
            headers.popall("Content-Length", None)
            return web.Response(status=status, reason=reason, headers=headers, body=body), len(body)
        response = KeptBytesResponse(status=status, reason=reason, headers=headers)
        if "Upgrade" in request.headers:
            response.force_close()  # the protocol is never switched: no tunnel
        try:
            await asyncio.wait_for(response.prepare(request), step)
        except (TimeoutError, *_CLIENT_GONE) as error:
            drop_tracebacks(error)
            self._cut()
            return response, 0
        request[RESPONSE_STARTED] = response
        return response, await self._relay(response, step)

    async def _read_whole(self, step: float) -> bytes:
        """A small body, read whole before anything is sent: one write to the client, and a body
        cut short by the upstream is still a clean 502."""
        pieces = []
        try:
            while chunk := await self._connection.next_chunk(step):
                pieces.append(chunk)
        except TimeoutError:
            raise self._failure("timeout", "BodyTimeout") from None
        except BadResponse as exc:
            raise self._failure("bad_response", f"BadResponse:{exc.reason}") from None
        except ConnectionGone:
            raise self._failure("unreachable", "ConnectionGone") from None
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def _relay(self, sink: web.StreamResponse, step: float) -> int:
        # The body goes from the upstream's parser to the client's transport (`ClientSink`);
        # this task wakes for the end, a failure, or a client that is behind. Each wait is
        # bounded: `step` with no byte from the upstream, or `step` for the client to drain.
        request, connection = self._request, self._connection
        transport = request.transport
        writer = cast(http_writer.StreamWriter, request.writer)  # aiohttp's server writer
        client = None
        try:
            if transport is None:
                raise ConnectionResetError("the client closed before the answer")
            writer.send_headers()
            client = ClientSink(
                transport, chunked=writer.chunked, clock=asyncio.get_running_loop().time
            )
            connection.relay_to(client)
            while not await connection.relayed(step):
                async with asyncio.timeout(step):
                    await writer.drain()
                connection.resume_relay()
            writer.output_size += client.sent
            async with asyncio.timeout(step):
                await sink.write_eof()
        except (TimeoutError, BadResponse, ConnectionGone, *_CLIENT_GONE) as error:
            # Headers are gone already: the only honest signal left is to cut the connection,
            # never to finish a body that would look complete.
            drop_tracebacks(error)
            self._cut()
        return 0 if client is None else client.sent

    def _cut(self) -> None:
        reset_transport(self._request.transport)
        self._connection.reset()

    def _failure(self, kind: str, detail: str) -> UpstreamFailure:
        return UpstreamFailure(self._upstream.name, kind=kind, detail=detail)


def _request_head(
    method: str,
    url: UpstreamTarget,
    headers: CIMultiDict[str],
    content_length: int | None,
    has_body: bool,
) -> bytes:
    lines = [f"{method} {url.path_qs} HTTP/1.1", "Host: " + url.origin.authority]
    if headers:  # every field in one join (no Python step per field)
        lines.append("\r\n".join(map(": ".join, headers.items())))
    if has_body:
        if content_length is not None:
            lines.append(f"Content-Length: {content_length}")
        else:
            lines.append("Transfer-Encoding: chunked")
    elif method not in _NO_BODY_METHODS:
        lines.append("Content-Length: 0")
    head = "\r\n".join(lines) + "\r\n\r\n"
    # Every line ends in the one CR LF written here and the head in one more: a CR or LF
    # anywhere else came from a name or value, and would start a line of the upstream's own.
    # (Two counts over the joined head instead of four tests per header.)
    ends = len(lines) + 1 + (len(headers) - 1 if headers else 0)
    if head.count("\r") != ends or head.count("\n") != ends:
        raise ValueError("a header to forward holds CR or LF")
    return head.encode("utf-8", "surrogateescape")
