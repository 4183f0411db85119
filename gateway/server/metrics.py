"""Every Prometheus metric the gateway exports, in one place, on a registry of its own.

Names carry the ``gateway_`` prefix and base units (seconds, bytes). The route label is the
matched route's *path pattern* (or ``none``), never the raw request path, whose cardinality an
attacker controls.
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway import __version__

__all__ = ["CONTENT_TYPE", "Metrics", "status_class"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ...: the status label (bounded cardinality)."""
    return f"{status // 100}xx"


class Metrics:
    """The gateway's metrics on a private registry (so several gateways can live in one process,
    as they do in the tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "gateway_requests", "Requests answered, by route pattern, method and status class.",
            ["route", "method", "status_class"], registry=registry,
        )  # fmt: skip
        self.request_duration = Histogram(
            "gateway_request_duration_seconds", "Time from request to the end of the response.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds", "Time spent with the upstream, per upstream.",
            ["upstream"], buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.auth_refusals = Counter(
            "gateway_auth_refusals",
            "Requests refused at the door, by route pattern (none: no route matched) and reason.",
            ["route", "reason"], registry=registry,
        )  # fmt: skip
        self.auth_would_deny = Counter(
            "gateway_auth_would_deny",
            "Requests a report-mode route forwarded although enforce mode would have refused "
            "them, by route pattern and reason.",
            ["route", "reason"], registry=registry,
        )  # fmt: skip
        self.upstream_failures = Counter(
            "gateway_upstream_failures", "Upstream exchanges that failed, by upstream and kind.",
            ["upstream", "kind"], registry=registry,
        )  # fmt: skip
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Requests refused by a rate limit (rate_limited), the failed-authentication "
            "throttle (auth_throttled) or unreachable counters (rate_limit_unavailable), by "
            "route pattern and reason.",
            ["route", "reason"], registry=registry,
        )  # fmt: skip
        self.rate_limit_backend_errors = Counter(
            "gateway_rate_limit_backend_errors",
            "Rate-limit decisions the shared backend could not answer, by reason (each route's "
            "on_backend_error then decides).",
            ["reason"], registry=registry,
        )  # fmt: skip
        self.rate_limit_backend_up = Gauge(
            "gateway_rate_limit_backend_up",
            "1 while the rate-limit backend answers (memory: always), 0 while it is down.",
            registry=registry,
        )  # fmt: skip
        self.rate_limit_backend_up.set(1)
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "Requests being handled right now.", registry=registry
        )
        # Set by the admin app to what /readyz answers, so an alert can see a replica that is up
        # but not ready (draining, or an issuer without usable keys).
        self.ready = Gauge(
            "gateway_ready", "1 while /readyz answers 200 (serving, every issuer has keys).",
            registry=registry,
        )  # fmt: skip
        self.jwks_fetches = Counter(
            "gateway_jwks_fetches", "Remote key-set fetches, by issuer and result.",
            ["issuer", "result"], registry=registry,
        )  # fmt: skip
        self.jwks_keys = Gauge(
            "gateway_jwks_keys", "Usable keys loaded, per remote issuer.", ["issuer"],
            registry=registry,
        )  # fmt: skip
        self.jwks_skipped = Counter(
            "gateway_jwks_keys_skipped", "Keys left out of fetched key sets, by issuer and reason.",
            ["issuer", "reason"], registry=registry,
        )  # fmt: skip
        self.config_reloads = Counter(
            "gateway_config_reloads", "Configuration reloads, by result.", ["result"],
            registry=registry,
        )  # fmt: skip
        self.config_reload_timestamp = Gauge(
            "gateway_config_last_reload_timestamp_seconds",
            "When the running configuration was loaded (Unix time).", registry=registry,
        )  # fmt: skip
        self.config_info = Gauge(
            "gateway_config_info", "The running configuration's version (value is always 1).",
            ["version"], registry=registry,
        )  # fmt: skip
        Info("gateway_build", "Build information.", registry=registry).info(
            {"version": __version__, "python": platform.python_version()}
        )

    def set_config_version(self, version: str, loaded_at: float) -> None:
        """Expose the running config version (exactly one label value at a time)."""
        self.config_info.clear()
        self.config_info.labels(version=version).set(1)
        self.config_reload_timestamp.set(loaded_at)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
