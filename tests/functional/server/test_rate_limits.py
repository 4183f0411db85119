"""Rate limits and the failed-authentication throttle in a running gateway (memory backend),
with a real recording upstream and raw sockets from distinct loopback addresses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from gateway.config import Config
from gateway.server.app import METRICS, RELOADER, create_app
from tests.conftest import GatewayFactory, GatewayTestServer, LogCapture
from tests.raw import RAW_TIMEOUT, Answer, assert_refusal, http_request, parse_head, read_body
from tests.support import (
    ENVIRON,
    ORDERS_HEALTH,
    UNTHROTTLED_GATEWAY,
    RecordingUpstream,
    TestKeys,
    TokenFactory,
    metric_sample,
    route_table,
)

Client = TestClient[web.Request, web.Application]

LIMITED_READS = """\
  - path: /orders
    upstream: orders
    methods: [GET, HEAD]
    scopes: [orders:read]
    rate_limit: {{rate: 3/min, burst: 3, key: client_id}}
"""
"""GET /orders: 3 requests per client_id, then one every 20 s."""

IP_LIMITED_HEALTH = """\
  - path: /orders/health
    upstream: orders
    auth: none
    rate_limit: {{rate: 2/min, burst: 2, key: ip, name: health}}
"""

IP_LIMITED_READS = LIMITED_READS.replace("key: client_id", "key: ip")


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def test_n_plus_one_requests_give_n_allowed_and_one_429_with_its_headers(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
) -> None:
    """With a limit of 3, three requests pass carrying the remaining quota, the fourth is a 429
    with Retry-After and the RateLimit fields, and never reaches the upstream."""
    client = await gateway(routes=route_table(LIMITED_READS, ORDERS_HEALTH))
    token = tokens.good(client_id="app-1")
    answers = [
        await Answer.of(await client.get("/orders/1", headers=bearer(token))) for _ in range(4)
    ]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    for answer, remaining in zip(answers[:3], (2, 1, 0), strict=True):
        assert answer.headers["RateLimit-Policy"] == '"client_id";q=3;w=60'
        assert answer.headers["RateLimit"] == f'"client_id";r={remaining};t={20 * (3 - remaining)}'
        assert "Retry-After" not in answer.headers
    refused = answers[3]
    assert_refusal(refused, 429, "too_many_requests")
    assert refused.headers["Retry-After"] == "20"
    assert refused.headers["RateLimit"] == '"client_id";r=0;t=60'
    assert refused.headers["RateLimit-Policy"] == '"client_id";q=3;w=60'
    assert len(recorder.requests) == 3
    access = log_capture.events("access")
    assert access[-1]["gateway.auth.reason"] == "rate_limited"
    assert access[-1]["http.response.status_code"] == 429
    assert access[-1]["gateway.client.id"] == "app-1"
    metrics = client.app[METRICS]
    assert metric_sample(metrics, "gateway_rate_limited_total", route="/orders") == 1


async def test_each_client_id_has_its_own_bucket(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Another client id is not slowed down by one that spent its quota."""
    client = await gateway(routes=route_table(LIMITED_READS, ORDERS_HEALTH))
    spent, fresh = tokens.good(client_id="app-1"), tokens.good(client_id="app-2")
    statuses = [(await client.get("/orders/1", headers=bearer(spent))).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert (await client.get("/orders/1", headers=bearer(fresh))).status == 200


async def test_routes_without_a_limit_carry_no_fields(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Only a limited route's responses carry RateLimit fields."""
    client = await gateway(routes=route_table(LIMITED_READS, ORDERS_HEALTH))
    response = await client.get("/orders/health")
    assert response.status == 200
    assert "RateLimit" not in response.headers


async def test_an_ip_limit_is_decided_before_authentication(
    gateway: GatewayFactory, recorder: RecordingUpstream
) -> None:
    """Keyed by IP, requests without any token spend the quota: 401, 401, 401, then 429."""
    client = await gateway(routes=route_table(IP_LIMITED_READS, ORDERS_HEALTH))
    statuses = [(await client.get("/orders/1")).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert recorder.requests == []


async def test_a_client_limit_is_decided_after_authentication(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Requests refused by authentication never spend a client's (or a route's) quota."""
    client = await gateway(routes=route_table(LIMITED_READS, ORDERS_HEALTH))
    for _ in range(5):
        assert (await client.get("/orders/1")).status == 401
    token = tokens.good(client_id="app-1")
    assert (
        (await client.get("/orders/1", headers=bearer(token)))
        .headers["RateLimit"]
        .startswith('"client_id";r=2;')
    )


async def test_a_public_route_may_be_limited_per_ip_with_a_named_policy(
    gateway: GatewayFactory,
) -> None:
    """A public route's limit counts per peer address; the policy carries its configured name."""
    client = await gateway(routes=route_table(LIMITED_READS, IP_LIMITED_HEALTH))
    statuses = []
    for _ in range(3):
        response = await client.get("/orders/health")
        statuses.append(response.status)
    assert statuses == [200, 200, 429]
    assert response.headers["RateLimit-Policy"] == '"health";q=2;w=60'


async def test_a_reload_keeps_the_counters_of_unchanged_limits(
    aiohttp_client: AiohttpClient,
    make_config: Callable[..., Config],
    upstream_server: TestServer,
    tokens: TokenFactory,
    tmp_path: Path,
) -> None:
    """Reloading routes.yaml with another route's limit changed keeps /orders spent; changing
    /orders' own limit starts it afresh."""
    upstream = str(upstream_server.make_url("")).rstrip("/")
    config = make_config(upstream=upstream, routes=route_table(LIMITED_READS, ORDERS_HEALTH))
    app = create_app(config, environ=ENVIRON)
    client = cast("Client", await aiohttp_client(GatewayTestServer(app)))
    token = tokens.good(client_id="app-1")
    for _ in range(3):
        await client.get("/orders/1", headers=bearer(token))
    routes_file = tmp_path / "routes.yaml"
    text = routes_file.read_text()
    reloader = client.app[RELOADER]
    routes_file.write_text(text + "    rate_limit: {rate: 1/s, key: ip}\n")  # on /orders/health
    assert await reloader.reload("test")
    assert (await client.get("/orders/1", headers=bearer(token))).status == 429
    routes_file.write_text(text.replace("rate: 3/min, burst: 3", "rate: 4/min, burst: 4"))
    assert await reloader.reload("test")
    assert (await client.get("/orders/1", headers=bearer(token))).status == 200


# -- failed-authentication throttle, from distinct loopback addresses -----------------------------


async def raw_get(client: Client, source: str, token: str) -> int:
    """GET /orders/1 with ``token`` over a fresh connection from ``source``; the status."""
    host, port = client.server.host, client.server.port
    assert host is not None
    assert port is not None
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        request = http_request("GET", "/orders/1", [("Authorization", f"Bearer {token}")])
        writer.write(request)
        async with asyncio.timeout(RAW_TIMEOUT):
            status_line, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
            await read_body(reader, headers)
    finally:
        writer.close()
    return int(status_line.split(" ")[1])


async def test_a_forged_token_flood_is_cut_to_429_and_other_addresses_are_unaffected(
    gateway: GatewayFactory, tokens: TokenFactory, keys: TestKeys, recorder: RecordingUpstream
) -> None:
    """With the default numbers, 127.0.0.2's first 20 forged tokens get 401 and the rest 429
    (even a valid token: no signature work is done for it), while 127.0.0.3 is served."""
    client = await gateway()
    forged = tokens.sign(tokens.claims(), key=keys.attacker, headers={"kid": "k1"})
    flood = [await raw_get(client, "127.0.0.2", forged) for _ in range(30)]
    assert flood == [401] * 20 + [429] * 10
    assert await raw_get(client, "127.0.0.2", tokens.good()) == 429
    assert await raw_get(client, "127.0.0.3", tokens.good()) == 200
    assert len(recorder.requests) == 1
    metrics = client.app[METRICS]
    assert metric_sample(metrics, "gateway_rate_limited_total", reason="auth_throttled") == 11


@pytest.mark.parametrize(
    "bad",
    ["not-a-jwt", "unknown-issuer", "unknown-kid"],
)
async def test_every_kind_of_invalid_token_counts(
    gateway: GatewayFactory, tokens: TokenFactory, keys: TestKeys, bad: str
) -> None:
    """Malformed tokens, unknown issuers and unknown kids count towards the throttle."""
    client = await gateway()
    token = {
        "not-a-jwt": "abc.def",
        "unknown-issuer": tokens.good(iss="https://evil.example"),
        "unknown-kid": tokens.sign(tokens.claims(), headers={"kid": "nope"}),
    }[bad]
    statuses = [await raw_get(client, "127.0.0.4", token) for _ in range(21)]
    assert statuses[-1] == 429


async def test_expired_tokens_do_not_count(gateway: GatewayFactory, tokens: TokenFactory) -> None:
    """A genuine token past its expiry is the client's clock, not an attack: no throttle."""
    client = await gateway()
    expired = tokens.good(iat=1, exp=2)
    statuses = [await raw_get(client, "127.0.0.5", expired) for _ in range(25)]
    assert statuses == [401] * 25


async def test_the_throttle_is_off_with_one_line(
    gateway: GatewayFactory, tokens: TokenFactory, keys: TestKeys
) -> None:
    """``rate_limits: {auth_failures: off}``: every forged token is checked and refused 401."""
    client = await gateway(gateway=UNTHROTTLED_GATEWAY)
    forged = tokens.sign(tokens.claims(), key=keys.attacker, headers={"kid": "k1"})
    statuses = [await raw_get(client, "127.0.0.6", forged) for _ in range(25)]
    assert statuses == [401] * 25
