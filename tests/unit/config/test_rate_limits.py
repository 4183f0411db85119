"""Rate limits in routes.yaml (per route, in ``defaults:``) and ``rate_limits:`` in gateway.yaml:
typed values, and every problem at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import LimitBackend, load
from gateway.core.ratelimit import AuthFailureSettings, LimitKey, OnBackendError
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import GATEWAY, ROUTES, assert_issues, problems, swap, write

LIMITED = swap(
    ROUTES,
    "routes:\n",
    "defaults:\n  rate_limit: {rate: 100/s, burst: 200, key: client_id}\nroutes:\n",
)


def test_routes_inherit_the_default_limit_and_may_replace_or_drop_it(
    tmp_path: Path, keys: TestKeys
) -> None:
    """A route without ``rate_limit`` takes the default (with its own scope), one with its own
    keeps it, and ``rate_limit: false`` means none."""
    routes = swap(
        LIMITED,
        "    auth: none\n",
        "    auth: none\n"
        "    rate_limit: {rate: 5/min, burst: 2, key: ip, on_backend_error: deny}\n",
    )
    routes = swap(
        routes, "    scopes: [orders:write]\n", "    scopes: [orders:write]\n    rate_limit: off\n"
    )
    config = load(write(tmp_path, keys, routes=routes), ENVIRON)
    read, write_route, health, billing = config.routes.routes
    assert read.rate_limit is not None
    assert (read.rate_limit.quota, read.rate_limit.period, read.rate_limit.burst) == (100, 1.0, 200)
    assert read.rate_limit.key is LimitKey.CLIENT_ID
    assert read.rate_limit.on_backend_error is OnBackendError.ALLOW
    assert read.rate_limit.scope == "GET,HEAD /orders"
    assert billing.rate_limit is not None
    assert billing.rate_limit.scope == "* /billing"
    assert write_route.rate_limit is None
    assert health.rate_limit is not None
    assert (health.rate_limit.quota, health.rate_limit.period) == (5, 60.0)
    assert health.rate_limit.key is LimitKey.IP
    assert health.rate_limit.on_backend_error is OnBackendError.DENY
    assert str(health.rate_limit) == "5/min, burst 2, per ip"


@pytest.mark.parametrize(
    ("text", "quota", "period"),
    [("100/s", 100, 1.0), ("600/min", 600, 60.0), ("50/10s", 50, 10.0), ("1000/h", 1000, 3600.0)],
)
def test_rates_are_requests_per_period(
    tmp_path: Path, keys: TestKeys, text: str, quota: int, period: float
) -> None:
    """``rate`` is requests/period; the burst defaults to the request count."""
    routes = swap(
        ROUTES, "routes:\n", f"defaults:\n  rate_limit: {{rate: {text}, key: ip}}\nroutes:\n"
    )
    limit = load(write(tmp_path, keys, routes=routes), ENVIRON).routes.routes[0].rate_limit
    assert limit is not None
    assert (limit.quota, limit.period, limit.burst) == (quota, period, quota)


ROUTE_CASES = [
    pytest.param("rate: 100/s, burst: 200, key: client_id", "rate: fast, key: ip", "is not a rate",
                 id="bad-rate"),
    pytest.param("rate: 100/s, burst: 200, key: client_id", "rate: 0/s, key: ip", "is not a rate",
                 id="zero-rate"),
    pytest.param("rate: 100/s, burst: 200, key: client_id", "rate: 1/s, key: user",
                 "'key': 'user' is not one of: client_id, subject, ip, route", id="bad-key"),
    pytest.param("rate: 100/s, burst: 200, key: client_id", "rate: 1/s, burst: 0, key: ip",
                 "'burst' must be a positive whole number", id="zero-burst"),
    pytest.param("rate: 100/s, burst: 200, key: client_id", "rate: 1/s, key: ip, bursts: 3",
                 "unknown key 'bursts' in 'rate_limit' (did you mean 'burst'?)", id="unknown-key"),
    pytest.param("rate: 100/s, burst: 200, key: client_id", "burst: 3, key: ip",
                 "'rate_limit' needs 'rate'", id="missing-rate"),
    pytest.param("rate: 100/s, burst: 200, key: client_id",
                 "rate: 1/s, key: ip, on_backend_error: maybe",
                 "'on_backend_error': 'maybe' is not one of: allow, deny", id="bad-on-error"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "fragment"), ROUTE_CASES)
def test_a_bad_limit_is_reported_at_its_line(
    tmp_path: Path, keys: TestKeys, old: str, new: str, fragment: str
) -> None:
    """A bad ``rate_limit`` is one problem at the line of its key."""
    path = write(tmp_path, keys, routes=swap(LIMITED, old, new))
    assert_issues(problems(path), [("routes.yaml", 8, fragment)], tmp_path)


def test_a_bad_route_limit_is_reported_at_the_route_line(tmp_path: Path, keys: TestKeys) -> None:
    """On a route, the problem is at the route's ``rate_limit`` line."""
    routes = swap(
        ROUTES, "    auth: none\n", "    auth: none\n    rate_limit: {rate: 1/s, key: nobody}\n"
    )
    path = write(tmp_path, keys, routes=routes)
    assert_issues(problems(path), [("routes.yaml", 19, "'key': 'nobody'")], tmp_path)


def test_memory_backend_and_the_throttle_are_the_defaults(tmp_path: Path, keys: TestKeys) -> None:
    """Without ``rate_limits:``, counters are in memory and the throttle is on (20 / 1m / 1m)."""
    settings = load(write(tmp_path, keys), ENVIRON).rate_limits
    assert settings.backend is LimitBackend.MEMORY
    assert settings.auth_failures == AuthFailureSettings(
        max_failures=20, window=60.0, cooldown=60.0
    )


def test_redis_backend_and_throttle_numbers_load(tmp_path: Path, keys: TestKeys) -> None:
    """The Redis URL may come from the environment; the throttle's numbers are durations."""
    gateway = GATEWAY + (
        "rate_limits:\n  backend: redis\n  url: ${REDIS_URL}\n  timeout: 50ms\n  pool_size: 8\n"
        "  auth_failures: {max: 5, window: 10s, cooldown: 5m}\n"
    )
    environ = {**ENVIRON, "REDIS_URL": "redis://:secret@redis:6379/0"}
    settings = load(write(tmp_path, keys, gateway=gateway), environ).rate_limits
    assert settings.backend is LimitBackend.REDIS
    assert settings.url == "redis://:secret@redis:6379/0"
    assert "secret" not in repr(settings)
    assert (settings.timeout, settings.pool_size) == (0.05, 8)
    assert settings.auth_failures == AuthFailureSettings(
        max_failures=5, window=10.0, cooldown=300.0
    )


def test_the_throttle_is_off_with_one_line(tmp_path: Path, keys: TestKeys) -> None:
    """``auth_failures: off`` (YAML false) turns the failed-authentication throttle off."""
    gateway = GATEWAY + "rate_limits: {auth_failures: off}\n"
    assert load(write(tmp_path, keys, gateway=gateway), ENVIRON).rate_limits.auth_failures is None


GATEWAY_CASES = [
    pytest.param("rate_limits:\n  backend: redis\n", (24, "'backend: redis' needs a 'url'"),
                 id="redis-without-url"),
    pytest.param("rate_limits:\n  backend: redis\n  url: http://redis:6379\n",
                 (25, "must be a redis://host:port/db"), id="not-a-redis-url"),
    pytest.param("rate_limits:\n  url: redis://redis:6379\n",
                 (24, "'url' is only used with 'backend: redis'"), id="url-without-redis"),
    pytest.param("rate_limits:\n  backend: etcd\n", (24, "'etcd' is not one of"),
                 id="unknown-backend"),
    pytest.param("rate_limits:\n  auth_failures: {max: 0}\n", (24, "'max' must be a positive"),
                 id="zero-failures"),
    pytest.param("rate_limits:\n  timeout: 0s\n", (24, "'timeout' must be longer than zero"),
                 id="zero-timeout"),
]  # fmt: skip


@pytest.mark.parametrize(("added", "expected"), GATEWAY_CASES)
def test_bad_rate_limit_settings_are_reported_at_their_line(
    tmp_path: Path, keys: TestKeys, added: str, expected: tuple[int, str]
) -> None:
    """Each problem in ``rate_limits:`` is one issue at its line."""
    path = write(tmp_path, keys, gateway=GATEWAY + added)
    assert_issues(problems(path), [("gateway.yaml", *expected)], tmp_path)
