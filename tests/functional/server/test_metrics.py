"""Every metric moves when it should, and /metrics serves them on the admin app only."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway import __version__
from gateway.config import load
from gateway.server.app import DOOR, METRICS, RELOADER, create_admin_app, create_app
from tests.conftest import GatewayFactory, GatewayTestServer
from tests.support import (
    DEFAULT_ROUTES,
    ENVIRON,
    TestKeys,
    TokenFactory,
    metric_sample,
    write_config,
)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_request_metrics_use_route_patterns(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Requests are counted and timed by route pattern, method and status class; unmatched
    paths count under route "none", never under their raw path."""
    client = await gateway()
    metrics = client.app[METRICS]
    await client.get("/orders/7", headers=_auth(tokens.good()))
    await client.get("/orders/8", headers=_auth(tokens.good()))
    await client.get("/nowhere/123")
    assert metric_sample(metrics, "gateway_requests_total", route="/orders", method="GET",
                         status_class="2xx") == 2  # fmt: skip
    assert metric_sample(metrics, "gateway_requests_total", route="none", status_class="4xx") == 1
    assert metric_sample(metrics, "gateway_request_duration_seconds_count", route="/orders") == 2
    assert metric_sample(metrics, "gateway_upstream_duration_seconds_count", upstream="orders") == 2
    assert "/orders/7" not in metrics.render().decode()
    assert "/nowhere" not in metrics.render().decode()


async def test_auth_refusals_by_route_and_reason(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Each refusal at the door counts under its route pattern and reason; a path no route
    matches counts under route "none", whatever it was (never under the raw path)."""
    client = await gateway()
    metrics = client.app[METRICS]
    await client.get("/orders/1")
    await client.get("/orders/1", headers=_auth(tokens.good(scope="other")))
    await client.get("/orders/1", headers=_auth(tokens.good(exp=1)))
    await client.post("/orders/2/items", headers=_auth(tokens.good(exp=1)))
    for path in ("/nowhere/1", "/nowhere/2", "/%6Eowhere", "/Orders/1"):
        await client.get(path)
    refusals = "gateway_auth_refusals_total"
    assert metric_sample(metrics, refusals, route="/orders", reason="missing") == 1
    assert metric_sample(metrics, refusals, route="/orders", reason="insufficient_scope") == 1
    assert metric_sample(metrics, refusals, route="/orders", reason="expired") == 2
    assert metric_sample(metrics, refusals, route="none", reason="no_route") == 4
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "gateway_auth_refusals"
        for sample in family.samples
    }
    assert routes == {"/orders", "none"}


async def test_upstream_failures_counted(
    aiohttp_client: AiohttpClient, tmp_path: Path, keys: TestKeys, tokens: TokenFactory
) -> None:
    """A refused upstream connection counts as an `unreachable` failure for that upstream."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    app = create_app(load(write_config(tmp_path, keys, upstream=dead), ENVIRON))
    client: TestClient[web.Request, None] = await aiohttp_client(GatewayTestServer(app))
    response = await client.get("/orders/1", headers=_auth(tokens.good()))
    assert response.status == 502
    failures = metric_sample(app[METRICS], "gateway_upstream_failures_total", upstream="orders",
                             kind="unreachable")  # fmt: skip
    assert failures == 1


async def test_in_flight_gauge(
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
) -> None:
    """The in-flight gauge counts a request while the upstream is still answering it."""
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    upstream_app = web.Application()
    upstream_app.router.add_get("/{tail:.*}", slow)
    upstream = await aiohttp_server(upstream_app)
    app = create_app(
        load(write_config(tmp_path, keys, upstream=str(upstream.make_url("")).rstrip("/")), ENVIRON)
    )
    client: TestClient[web.Request, None] = await aiohttp_client(GatewayTestServer(app))
    request = asyncio.create_task(client.get("/orders/1", headers=_auth(tokens.good())))
    for _ in range(100):
        if metric_sample(app[METRICS], "gateway_requests_in_flight") == 1:
            break
        await asyncio.sleep(0.01)
    assert metric_sample(app[METRICS], "gateway_requests_in_flight") == 1
    release.set()
    assert (await request).status == 200
    assert metric_sample(app[METRICS], "gateway_requests_in_flight") == 0


async def test_config_metrics_and_build_info(
    aiohttp_client: AiohttpClient, tmp_path: Path, keys: TestKeys
) -> None:
    """The config version is a label, reloads count by result, and the reload time moves."""
    path = write_config(tmp_path, keys)
    app = create_app(load(path, ENVIRON), environ=ENVIRON)
    await aiohttp_client(GatewayTestServer(app))
    metrics = app[METRICS]
    first = app[DOOR].policy.config.version
    assert metric_sample(metrics, "gateway_config_info", version=first) == 1
    loaded_at = metric_sample(metrics, "gateway_config_last_reload_timestamp_seconds")
    assert loaded_at > 0
    (tmp_path / "routes.yaml").write_text(DEFAULT_ROUTES.format(upstream="http://127.0.0.1:10"))
    assert await app[RELOADER].reload("sighup") is True
    second = app[DOOR].policy.config.version
    assert metric_sample(metrics, "gateway_config_info", version=second) == 1
    assert metric_sample(metrics, "gateway_config_info", version=first) == 0
    assert metric_sample(metrics, "gateway_config_reloads_total", result="applied") == 1
    assert metric_sample(metrics, "gateway_config_last_reload_timestamp_seconds") >= loaded_at
    assert metric_sample(metrics, "gateway_build_info", version=__version__) == 1


async def test_metrics_served_on_admin_not_public(
    gateway: GatewayFactory, aiohttp_client: AiohttpClient
) -> None:
    """/metrics, /healthz and /readyz are admin endpoints; on the public port they are just
    paths that no route matches."""
    client = await gateway()
    serving = asyncio.Event()
    serving.set()
    admin = await aiohttp_client(create_admin_app(serving, client.app[DOOR], client.app[METRICS]))
    response = await admin.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "gateway_requests_total" in await response.text()
    readyz = await (await admin.get("/readyz")).json()
    assert readyz["config_version"] == client.app[DOOR].policy.config.version
    for path in ("/metrics", "/healthz", "/readyz"):
        assert (await client.get(path)).status == 404
