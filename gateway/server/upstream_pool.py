"""The pool of upstream connections, keyed by (scheme, host, port, TLS context).

Limits are a total and a per-key cap. Getting a connection is bounded in time: a caller waits
for a free slot no longer than its deadline, then gets `UpstreamFailure(kind="busy")` (answered
503: the upstream was never tried, the gateway's own pool to it was full). Nothing is retried:
a connection that fails is reported, never silently replaced by another attempt.

Idle connections are reused most-recent first (a warm connection is the least likely to have
been closed by the upstream's own keep-alive timer), and dropped after ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from gateway.server.upstream_conn import PoolKey, UpstreamConnection
from gateway.server.upstream_errors import UpstreamFailure

__all__ = ["ConnectionPool", "PoolKey"]


class ConnectionPool:
    """Open, lend, take back and close upstream connections within the configured limits."""

    def __init__(self, *, limit: int, limit_per_key: int, idle_timeout: float) -> None:
        self._limit = limit
        self._limit_per_key = limit_per_key
        self._idle_timeout = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._idle: dict[PoolKey, list[UpstreamConnection]] = {}
        self._open_per_key: dict[PoolKey, int] = {}
        self._open = 0
        self._waiters: dict[PoolKey, deque[asyncio.Future[None]]] = {}
        self._closed = False

    async def acquire(self, key: PoolKey, upstream: str, within: float) -> UpstreamConnection:
        """A connection for ``key``: an idle one, a new one, or one freed in ``within`` seconds.

        Raises `UpstreamFailure` with kind ``busy`` (no slot in time), ``timeout``, ``tls`` or
        ``unreachable`` (connecting failed).
        """
        deadline = self._loop.time() + within
        while True:
            connection = self._take_idle(key)
            if connection is not None:
                return connection
            if self._open_per_key.get(key, 0) < self._limit_per_key and (
                self._open < self._limit or self._evict_one_idle()
            ):
                return await self._connect(key, upstream, deadline - self._loop.time())
            remaining = deadline - self._loop.time()
            if remaining <= 0 or self._closed:
                raise UpstreamFailure(upstream, kind="busy", detail="PoolTimeout")
            waiter = self._loop.create_future()
            queue = self._waiters.setdefault(key, deque())
            queue.append(waiter)
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                raise UpstreamFailure(upstream, kind="busy", detail="PoolTimeout") from None
            finally:
                if not waiter.done():
                    waiter.cancel()
                    queue.remove(waiter)

    def release(self, connection: UpstreamConnection, *, reuse: bool) -> None:
        """Take a connection back: kept idle for the next request only when ``reuse`` (and it is
        still fit), else closed with a reset."""
        if reuse and connection.reusable and not self._closed:
            connection.idle = True
            connection.idle_since = self._loop.time()
            self._idle.setdefault(connection.key, []).append(connection)
            self._wake(connection.key)
        else:
            connection.reset()
            self._forget(connection)

    def detach(self, connection: UpstreamConnection) -> None:
        """Give a connection up for good without closing it (a WebSocket tunnel takes it over):
        it no longer holds a pool slot, so long-lived tunnels never starve plain requests."""
        self._forget(connection)

    async def close(self) -> None:
        """Close every idle connection; connections in use are reset when they come back."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
                self._forget(connection)
        self._idle.clear()
        for queue in self._waiters.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.set_result(None)
            queue.clear()

    def _take_idle(self, key: PoolKey) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        expired_before = self._loop.time() - self._idle_timeout
        while idle:
            connection = idle.pop()
            if connection.dead or connection.idle_since < expired_before:
                connection.close()
                self._forget(connection)
                continue
            return connection
        return None

    def _evict_one_idle(self) -> bool:
        """At the total limit, close the longest-idle connection of any key to make room."""
        oldest: list[UpstreamConnection] | None = None
        for connections in self._idle.values():
            if connections and (oldest is None or connections[0].idle_since < oldest[0].idle_since):
                oldest = connections
        if oldest is None:
            return False
        connection = oldest.pop(0)
        connection.close()
        self._forget(connection)
        return True

    async def _connect(self, key: PoolKey, upstream: str, within: float) -> UpstreamConnection:
        _, host, port, tls = key
        self._open += 1
        self._open_per_key[key] = self._open_per_key.get(key, 0) + 1
        connection = UpstreamConnection(self._loop, key)
        try:
            async with asyncio.timeout(max(within, 0.0)):
                await self._loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except OSError as exc:  # timeouts and TLS failures are OSErrors too
            connection.reset()
            self._forget(connection)
            # Raised from here, not kept in a local: a local would hold the failure whose
            # traceback holds this frame, a cycle only the collector frees.
            raise _connect_failure(upstream, exc) from None
        return connection

    def _forget(self, connection: UpstreamConnection) -> None:
        """Free the slot a connection held (once), and tell a waiter: first one for the same
        key, then one for any other key (the total limit may have been what held it)."""
        if not connection.counted:
            return
        connection.counted = False
        self._open -= 1
        self._open_per_key[connection.key] -= 1
        if not self._wake(connection.key):
            for key in self._waiters:
                if self._wake(key):
                    return

    def _wake(self, key: PoolKey) -> bool:
        queue = self._waiters.get(key)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False


def _connect_failure(upstream: str, error: OSError) -> UpstreamFailure:
    # The ``error.type`` names are those the logs carried under aiohttp's client, so that
    # alerts written against them keep matching.
    if isinstance(error, TimeoutError):
        return UpstreamFailure(upstream, kind="timeout", detail="ConnectionTimeoutError")
    if isinstance(error, ssl.SSLCertVerificationError):
        return UpstreamFailure(upstream, kind="tls", detail="ClientConnectorCertificateError")
    if isinstance(error, ssl.SSLError):
        return UpstreamFailure(upstream, kind="tls", detail="ClientConnectorSSLError")
    return UpstreamFailure(upstream, kind="unreachable", detail="ClientConnectorError")
