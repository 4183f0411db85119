"""deploy/prometheus/: the alerting rules pass `promtool check rules` and their own
`promtool test rules` cases, name only metrics the gateway exports, and a real scrape of a running
gateway passes `promtool check metrics`."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_aiohttp import AiohttpClient

from gateway.server.app import DOOR, METRICS, create_admin_app
from gateway.server.metrics import Metrics
from tests.conftest import GatewayFactory
from tests.support import TestKeys, TokenFactory

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yaml"
RULE_TESTS = PROMETHEUS / "alerts.test.yaml"
# A metric name in a rule expression, and the suffixes the exposition adds to a family's name.
_METRIC = re.compile(r"\bgateway_[a-z_]+\b")
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info")


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary (Debian package `prometheus`); CI must have it."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (scripts/test.sh installs `prometheus`)")
        pytest.skip("promtool missing (apt-get install prometheus)")
    return found


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.mark.slow
def test_rules_pass_promtool_check(promtool: str) -> None:
    """`promtool check rules` accepts the rules file."""
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_rule_unit_tests_pass(promtool: str) -> None:
    """Every case in alerts.test.yaml passes `promtool test rules`."""
    result = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_firing_case() -> None:
    """Each alert is tested firing at least once, and the tests name no alert that is gone."""
    alerts = {rule["alert"] for rule in _rules()}
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    firing = {check["alertname"] for check in checks if check.get("exp_alerts")}
    assert alerts == firing
    assert {check["alertname"] for check in checks} <= alerts


def test_every_rule_has_severity_and_summary() -> None:
    """Routing needs a severity and a human needs a summary on every alert."""
    for rule in _rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_rules_name_only_exported_metrics() -> None:
    """Every gateway_* name in a rule is a metric family the gateway exports (a renamed metric
    would otherwise silence its alert without any error)."""
    exported = {family.name for family in Metrics().registry.collect()}
    used = {name for rule in _rules() for name in _METRIC.findall(rule["expr"])}
    assert used
    for name in used:
        family = next((name.removesuffix(s) for s in _SUFFIXES if name.endswith(s)), name)
        assert name in exported or family in exported, name


@pytest.mark.slow
async def test_real_scrape_passes_promtool_check_metrics(
    promtool: str,
    gateway: GatewayFactory,
    aiohttp_client: AiohttpClient,
    tokens: TokenFactory,
    keys: TestKeys,
) -> None:
    """/metrics of a gateway that has served allowed, refused and forged requests passes
    `promtool check metrics` (exposition syntax and naming conventions), and carries the series
    the alerts read."""
    client = await gateway()
    serving = asyncio.Event()
    serving.set()
    admin = await aiohttp_client(create_admin_app(serving, client.app[DOOR], client.app[METRICS]))
    forged = tokens.sign(tokens.claims(), key=keys.attacker, headers={"kid": "k1"})
    for headers in (
        {"Authorization": f"Bearer {tokens.good()}"},
        {},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {tokens.good(scope='other')}"},
    ):
        await (await client.get("/orders/1", headers=headers)).read()
    await (await client.get("/nowhere")).read()
    response = await admin.get("/metrics")
    assert response.status == 200
    text = await response.text()
    result = _run(promtool, "check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
    assert 'gateway_auth_refusals_total{reason="bad_signature",route="/orders"} 1.0' in text
    assert 'gateway_auth_refusals_total{reason="missing",route="/orders"} 1.0' in text
    assert 'gateway_auth_refusals_total{reason="no_route",route="none"} 1.0' in text
    assert "gateway_ready 1.0" in text
    # A single process also exposes the standard process and Python collectors.
    for series in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                   "python_info{", "python_gc_collections_total"):  # fmt: skip
        assert f"\n{series}" in text, series
    serving.clear()
    assert "gateway_ready 0.0" in await (await admin.get("/metrics")).text()
