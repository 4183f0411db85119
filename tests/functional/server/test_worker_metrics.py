"""`gateway run --workers 2`: one scrape reports the whole process group, whichever worker
answers it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.functional.gateway_process import running_gateway, until_both_ready
from tests.support import RecordingUpstream, TestKeys, TokenFactory

pytestmark = pytest.mark.slow

ALLOWED = 40
REFUSED = 20
SCRAPES = 8


def _totals(text: str) -> dict[str, float]:
    """Each sample name summed over its label sets, plus the refusal count for /orders."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
            if sample.name == "gateway_auth_refusals_total" and sample.labels == {
                "route": "/orders", "reason": "missing",
            }:  # fmt: skip
                totals["refused /orders missing"] = sample.value
    return totals


async def test_one_scrape_counts_every_workers_requests(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_server: TestServer,
    recorder: RecordingUpstream,
) -> None:
    """Requests spread over two workers (each on a new connection, told apart by the access
    lines' ``process.pid``) are all counted in every scrape of the admin port, whichever worker
    answers it; the live gauges combine (readiness within the second each worker takes to
    write it); the per-process collectors are left out; the run's
    metrics directory is made fresh under PROMETHEUS_MULTIPROC_DIR and removed at exit."""
    parent = tmp_path / "metrics"
    parent.mkdir()
    upstream = str(upstream_server.make_url("")).rstrip("/")
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    good = {"Authorization": f"Bearer {tokens.good()}"}
    async with running_gateway(
        config_dir, keys, upstream=upstream, workers=2,
        environ={"PROMETHEUS_MULTIPROC_DIR": str(parent)},
    ) as gateway:  # fmt: skip
        (started,) = gateway.events("workers_started")
        workers = set(started["gateway.worker.pids"])
        # Both workers are serving before the count starts (the first may be up alone).
        await until_both_ready(gateway)
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request
        async with aiohttp.ClientSession(connector=connector) as session:
            for number in range(ALLOWED + REFUSED):
                headers = good if number < ALLOWED else {}
                async with session.get(gateway.url(f"/orders/{number}"), headers=headers) as r:
                    await r.read()
                    assert r.status == (200 if number < ALLOWED else 401)
            (run_dir,) = parent.iterdir()
            assert run_dir.name.startswith("gateway-metrics-")
            assert any(run_dir.iterdir())
            await _until_logged(gateway, ALLOWED + REFUSED)
            scrapes = []
            for _ in range(SCRAPES):
                async with session.get(gateway.admin_url("/metrics")) as response:
                    assert response.status == 200
                    scrapes.append(await response.text())
            # Each worker writes its readiness every second: within that, the group reads 1.
            await asyncio.sleep(1.2)
            async with session.get(gateway.admin_url("/metrics")) as response:
                ready = _totals(await response.text())["gateway_ready"]
        pids = {line["process.pid"] for line in gateway.events("access")}
        assert pids == workers, "requests did not reach both workers"
    assert len(recorder.requests) == ALLOWED
    for text in scrapes:
        totals = _totals(text)
        assert totals["gateway_requests_total"] == ALLOWED + REFUSED
        assert totals["gateway_request_duration_seconds_count"] == ALLOWED + REFUSED
        assert totals["gateway_upstream_duration_seconds_count"] == ALLOWED
        assert totals["refused /orders missing"] == REFUSED
        assert totals["gateway_requests_in_flight"] == 0
        assert totals["gateway_config_info"] == 1
        assert "python_info" in totals
        assert not any(name.startswith("process_") for name in totals)
    assert ready == 1
    assert list(parent.iterdir()) == []  # the run's directory is gone


async def _until_logged(gateway: object, count: int) -> None:
    """Until ``count`` access lines are on stdout (each is written after its response)."""
    for _ in range(200):
        if len(gateway.events("access")) >= count:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("access lines missing")
