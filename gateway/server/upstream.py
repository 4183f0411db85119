"""The streaming forwarder: one pooled aiohttp client session, bodies never buffered.

The client is set up for a proxy, not for a browser: no cookie jar shared between users, no
automatic decompression, no redirects followed, and no headers the client did not send (aiohttp
would add ``User-Agent``, ``Accept`` and ``Accept-Encoding`` of its own).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import yarl
from aiohttp import web
from multidict import CIMultiDict

from gateway.core.headers import response_headers
from gateway.core.models import Upstream

__all__ = ["BodyTooLarge", "ProxyOutcome", "UpstreamClient", "UpstreamFailure"]

# The client's read buffer: flow control pauses the upstream socket past it, so it bounds memory
# per stream while letting large bodies move in few, large pieces.
_READ_BUFFER = 256 * 1024
# Responses up to this size (with a Content-Length) are read whole and sent in one write.
_BUFFERED_MAX = 64 * 1024
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class UpstreamFailure(Exception):
    """The upstream could not answer; ``kind`` is ``timeout`` (504), ``tls`` or ``unreachable``
    (502)."""

    def __init__(self, upstream: str, *, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.upstream = upstream
        self.kind = kind
        self.detail = detail

    @property
    def timed_out(self) -> bool:
        """Whether the upstream was too slow (504) rather than unreachable (502)."""
        return self.kind == "timeout"


class BodyTooLarge(Exception):
    """A request body without a Content-Length grew past the route's limit while streaming; the
    upstream connection was cut, so the upstream never sees a complete (truncated) body."""


@dataclass(slots=True)
class ProxyOutcome:
    """What the forwarder did, for the access log."""

    response: web.StreamResponse
    upstream_ns: int
    request_bytes: int
    response_bytes: int


class UpstreamClient:
    """One pooled client session per process, for every upstream."""

    def __init__(
        self, *, pool_size: int = 1000, pool_size_per_host: int = 256, connect_timeout: float = 5.0
    ) -> None:
        self._pool_size = pool_size
        # A per-host cap keeps one slow upstream from taking every pooled connection.
        self._pool_size_per_host = pool_size_per_host
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the pooled session (call on the serving loop)."""
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=self._pool_size_per_host,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
            read_bufsize=_READ_BUFFER,
        )

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(
        self,
        request: web.Request,
        upstream: Upstream,
        url: yarl.URL,
        headers: CIMultiDict[str],
        tls: ssl.SSLContext | None = None,
        *,
        body_limit: int | None = None,
    ) -> ProxyOutcome:
        """Send the request upstream and stream the answer back to the client."""
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        counter = _ByteCounter(body_limit)
        body: AsyncIterator[bytes] | None = None
        if request.body_exists:
            body = counter.count(request.content)
            if request.content_length is not None:
                headers["Content-Length"] = str(request.content_length)
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=min(upstream.timeout, self._connect_timeout),
            sock_read=upstream.timeout,
        )
        started = time.perf_counter_ns()
        try:
            upstream_response = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=timeout,
                compress=None,
                ssl=tls if tls is not None else True,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamFailure(upstream.name, kind="timeout", detail=_name(exc)) from None
        except aiohttp.ClientSSLError as exc:
            raise UpstreamFailure(upstream.name, kind="tls", detail=_name(exc)) from None
        except aiohttp.ClientError as exc:
            if isinstance(exc.__cause__, BodyTooLarge):
                raise BodyTooLarge from None
            raise UpstreamFailure(upstream.name, kind="unreachable", detail=_name(exc)) from None
        async with upstream_response:
            headers = response_headers(upstream_response.headers)
            length = upstream_response.content_length
            response: web.StreamResponse
            if length is not None and length <= _BUFFERED_MAX and request.method != "HEAD":
                response = await _buffered(upstream_response, headers, length, upstream.name)
                sent = length
            else:
                response = web.StreamResponse(
                    status=upstream_response.status,
                    reason=upstream_response.reason,
                    headers=headers,
                )
                if "Upgrade" in request.headers:
                    response.force_close()  # the protocol is never switched: no tunnel
                await response.prepare(request)
                sent = await _relay(upstream_response, response, request)
        return ProxyOutcome(
            response=response,
            upstream_ns=time.perf_counter_ns() - started,
            request_bytes=counter.total,
            response_bytes=sent,
        )


def _name(exc: BaseException) -> str:
    return type(exc).__name__


class _ByteCounter:
    def __init__(self, limit: int | None) -> None:
        self.total = 0
        self._limit = limit

    async def count(self, reader: aiohttp.StreamReader) -> AsyncIterator[bytes]:
        async for chunk in reader.iter_any():
            self.total += len(chunk)
            if self._limit is not None and self.total > self._limit:
                raise BodyTooLarge
            yield chunk


async def _buffered(
    source: aiohttp.ClientResponse, headers: CIMultiDict[str], length: int, upstream: str
) -> web.Response:
    """A small body, read whole before anything is sent: one write to the client, and a body
    cut short by the upstream is still a clean 502."""
    try:
        body = await source.content.readexactly(length)
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamFailure(upstream, kind="timeout", detail=_name(exc)) from None
    except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError) as exc:
        raise UpstreamFailure(upstream, kind="unreachable", detail=_name(exc)) from None
    headers.popall("Content-Length", None)
    return web.Response(status=source.status, reason=source.reason, headers=headers, body=body)


async def _relay(
    source: aiohttp.ClientResponse, sink: web.StreamResponse, request: web.Request
) -> int:
    sent = 0
    try:
        # Whatever has arrived, up to the read buffer: fewer, larger writes than fixed chunks.
        async for chunk in source.content.iter_any():
            await sink.write(chunk)
            sent += len(chunk)
        await sink.write_eof()
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        # Headers are gone already: the only honest signal left is to cut the connection,
        # never to finish a chunked body that would look complete.
        if request.transport is not None:
            request.transport.abort()
    return sent
