"""Shared rate limits through a real Redis: two gateways enforce one limit, a dead or stalled
Redis never hangs a request, each route's on_backend_error holds, and the gateway recovers by
itself when Redis returns.

Two gateways are two applications in this test process, each built by `create_app` with its own
`Limiting`, so each has its own redis-py client and connection pool, its own memory and its own
route table: what they share is Redis alone, as two replicas do. Separate processes would prove
nothing more about the counting (the GCRA runs inside Redis, on Redis's clock) and would cost
each test two interpreter start-ups on a machine shared by several people; their requests are
interleaved here with ``asyncio.gather``, so the script's atomicity is what keeps the sum exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from gateway.config import load
from gateway.server.app import METRICS, create_app
from tests.conftest import GatewayTestServer, LogCapture
from tests.functional.redis_server import RedisServer, redis_binary
from tests.support import (
    DEFAULT_GATEWAY,
    ENVIRON,
    ORDERS_HEALTH,
    TestKeys,
    TokenFactory,
    metric_sample,
    route_table,
    write_config,
)

Client = TestClient[web.Request, web.Application]

ROUTES = route_table(
    """\
  - path: /orders
    upstream: orders
    methods: [GET, HEAD]
    scopes: [orders:read]
    rate_limit: {{rate: 10/min, burst: 10, key: client_id}}
  - path: /orders
    upstream: orders
    methods: [POST]
    scopes: [orders:read]
    rate_limit: {{rate: 10/min, burst: 10, key: client_id, on_backend_error: deny}}
""",
    ORDERS_HEALTH,
)
"""GET /orders fails open when Redis is gone; POST /orders fails closed."""

TIMEOUT_S = 0.2


def redis_gateway(url: str, timeout: str = "200ms") -> str:
    """`DEFAULT_GATEWAY` with the Redis backend at ``url`` (short backoff)."""
    return DEFAULT_GATEWAY + (
        f"rate_limits:\n  backend: redis\n  url: {url}\n  timeout: {timeout}\n  backoff: 200ms\n"
    )


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped at the end."""
    server = RedisServer(redis_binary(), tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def start(
    aiohttp_client: AiohttpClient, upstream_server: TestServer, tmp_path: Path, keys: TestKeys
) -> Callable[..., Awaitable[Client]]:
    """Start one more gateway (its own app, Redis client and pool) against Redis at a URL."""
    count = 0

    async def go(url: str, redis_timeout: str = "200ms") -> Client:
        nonlocal count
        count += 1
        directory = tmp_path / f"gateway{count}"
        directory.mkdir()
        upstream = str(upstream_server.make_url("")).rstrip("/")
        path = write_config(
            directory,
            keys,
            upstream=upstream,
            routes=ROUTES,
            gateway=redis_gateway(url, redis_timeout),
        )
        app = create_app(load(path, ENVIRON), environ=ENVIRON)
        return cast("Client", await aiohttp_client(GatewayTestServer(app)))

    return go


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def test_two_gateways_share_one_limit(
    redis: RedisServer, start: Callable[..., Awaitable[Client]], tokens: TokenFactory
) -> None:
    """30 interleaved requests, 15 through each gateway: exactly the limit (10) are allowed in
    total, and the remaining quota each reports counts the other's requests too."""
    # A generous timeout: on a loaded machine a slow round trip would fail open (GET's
    # on_backend_error is allow) and be counted as allowed.
    first, second = await start(redis.url, "5s"), await start(redis.url, "5s")
    token = tokens.good(client_id="shared-app")

    async def get(client: Client) -> int:
        response = await client.get("/orders/1", headers=bearer(token))
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(get(c) for _ in range(15) for c in (first, second)))
    for client in (first, second):
        assert metric_sample(client.app[METRICS], "gateway_rate_limit_backend_errors_total") == 0
    assert statuses.count(200) == 10
    assert statuses.count(429) == 20
    refused = await second.get("/orders/1", headers=bearer(token))
    assert refused.headers["RateLimit"].startswith('"client_id";r=0;')


async def test_remaining_quota_counts_across_gateways(
    redis: RedisServer, start: Callable[..., Awaitable[Client]], tokens: TokenFactory
) -> None:
    """A request through the second gateway sees the first's."""
    first, second = await start(redis.url, "5s"), await start(redis.url, "5s")
    token = tokens.good(client_id="app-9")
    a = await first.get("/orders/1", headers=bearer(token))
    b = await second.get("/orders/1", headers=bearer(token))
    assert a.headers["RateLimit"].startswith('"client_id";r=9;')
    assert b.headers["RateLimit"].startswith('"client_id";r=8;')


async def test_redis_stopped_mid_run_fails_open_or_closed_per_route_and_recovers(
    redis: RedisServer,
    start: Callable[..., Awaitable[Client]],
    tokens: TokenFactory,
    log_capture: LogCapture,
) -> None:
    """With Redis killed, GET (allow) is served without fields and POST (deny) is a 503, each
    within the timeout; once Redis is back the limits apply again, with no restart."""
    client = await start(redis.url)
    token = tokens.good(client_id="app-1")
    assert "RateLimit" in (await client.get("/orders/1", headers=bearer(token))).headers
    await redis.stop()
    for _ in range(5):
        started = time.monotonic()
        allowed = await client.get("/orders/1", headers=bearer(token))
        denied = await client.post("/orders", headers=bearer(token))
        assert time.monotonic() - started < 2 * TIMEOUT_S + 1.5  # slack for a loaded machine
        assert allowed.status == 200
        assert "RateLimit" not in allowed.headers
        assert denied.status == 503
        assert (await denied.json())["error"] == "temporarily_unavailable"
        assert denied.headers["Retry-After"] == "1"
    metrics = client.app[METRICS]
    assert metric_sample(metrics, "gateway_rate_limit_backend_up") == 0
    assert metric_sample(metrics, "gateway_rate_limit_backend_errors_total") >= 1
    assert (
        metric_sample(
            metrics, "gateway_rate_limited_total", route="/orders", reason="rate_limit_unavailable"
        )
        == 5
    )
    down = [
        e
        for e in log_capture.events("rate_limit_backend")
        if e["gateway.rate_limit.backend_state"] == "down"
    ]
    assert len(down) == 1
    access = log_capture.events("access")
    assert access[-1]["gateway.auth.reason"] == "rate_limit_unavailable"

    await redis.start()  # same port, empty: the counters start over
    deadline = time.monotonic() + 5
    while True:
        response = await client.post("/orders", headers=bearer(token))
        if response.status == 200:
            break
        assert time.monotonic() < deadline, "the gateway never used Redis again"
        await asyncio.sleep(0.05)
    assert response.headers["RateLimit"].startswith('"client_id";r=9;')
    assert metric_sample(metrics, "gateway_rate_limit_backend_up") == 1
    assert [
        e["gateway.rate_limit.backend_state"] for e in log_capture.events("rate_limit_backend")
    ] == ["down", "up"]


@pytest.fixture
async def stalled_redis() -> AsyncIterator[str]:
    """A TCP listener that accepts connections and never answers: a hung Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_hung_redis_never_hangs_a_request(
    stalled_redis: str, start: Callable[..., Awaitable[Client]], tokens: TokenFactory
) -> None:
    """Redis that accepts and never answers costs one timeout, then nothing (backoff), and each
    route's on_backend_error answers."""
    client = await start(stalled_redis)
    token = tokens.good(client_id="app-1")
    started = time.monotonic()
    statuses = await asyncio.gather(
        *(client.get("/orders/1", headers=bearer(token)) for _ in range(20)),
        *(client.post("/orders", headers=bearer(token)) for _ in range(20)),
    )
    assert time.monotonic() - started < 3 * TIMEOUT_S + 2.0  # never redis-py's 5 s, or forever
    assert [r.status for r in statuses] == [200] * 20 + [503] * 20
