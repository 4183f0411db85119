"""Every Prometheus metric the gateway exports, in one place, on a registry of its own.

Names carry the ``gateway_`` prefix and base units (seconds, bytes). The route label is the
matched route's *path pattern* (or ``none``), never the raw request path, whose cardinality an
attacker controls.

With ``gateway run --workers N`` every worker is a process of its own and a scrape reaches
whichever worker the kernel hands the connection to. The supervisor then gives the workers a
fresh ``PROMETHEUS_MULTIPROC_DIR``, prometheus_client keeps each worker's values in files there,
and `Metrics.render` reads them all (`MultiProcessCollector`): one scrape reports the whole
process group. Gauges say how the workers' values combine (`multiprocess_mode`). The
per-process collectors (``process_*``, ``python_gc_*``) only exist for a single process.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.server.hot_metrics import Tally

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "Metrics", "multiprocess_dir", "status_class"]

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


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """Where the worker processes' values are kept, when prometheus_client was started in
    multiprocess mode (the variable was set before it was imported); else None."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ...: the status label (bounded cardinality)."""
    return f"{status // 100}xx"


class Metrics:
    """The gateway's metrics on a private registry (so several gateways can live in one process,
    as they do in the tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.multiprocess_dir = multiprocess_dir()
        self.state = _ProcessState()
        # The per-request updates (gateway.server.access), flushed before they are read.
        self.tally = Tally(eager=self.multiprocess_dir is not None)
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
        # Across workers, the worst answers: one worker without its backend is a degraded group.
        self.rate_limit_backend_up = Gauge(
            "gateway_rate_limit_backend_up",
            "1 while the rate-limit backend answers (memory: always), 0 while it is down.",
            registry=registry, multiprocess_mode="livemin",
        )  # fmt: skip
        self.rate_limit_backend_up.set(1)
        self.websocket_tunnels = Counter(
            "gateway_websocket_tunnels",
            "WebSocket tunnels that ended, by route pattern and why they ended.",
            ["route", "reason"], registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "Requests being handled right now.", registry=registry,
            multiprocess_mode="livesum",
        )  # fmt: skip
        # Set by the admin app to what /readyz answers, so an alert can see a replica that is up
        # but not ready (draining, or an issuer without usable keys). Across workers: 1 only
        # when every live worker is ready (a probe may reach any of them).
        self.ready = Gauge(
            "gateway_ready", "1 while /readyz answers 200 (serving, every issuer has keys).",
            registry=registry, multiprocess_mode="livemin",
        )  # fmt: skip
        self.jwks_fetches = Counter(
            "gateway_jwks_fetches", "Remote key-set fetches, by issuer and result.",
            ["issuer", "result"], registry=registry,
        )  # fmt: skip
        # Across workers: the fewest keys any worker holds (each fetches its own key sets).
        self.jwks_keys = Gauge(
            "gateway_jwks_keys", "Usable keys loaded, per remote issuer.", ["issuer"],
            registry=registry, multiprocess_mode="livemin",
        )  # fmt: skip
        self.jwks_skipped = Counter(
            "gateway_jwks_keys_skipped", "Keys left out of fetched key sets, by issuer and reason.",
            ["issuer", "reason"], registry=registry,
        )  # fmt: skip
        self.config_reloads = Counter(
            "gateway_config_reloads", "Configuration reloads, by result.", ["result"],
            registry=registry,
        )  # fmt: skip
        if self.multiprocess_dir is None:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
            registry.register(self.state)
            self._exposed = registry
        else:
            # Counters, histograms and gauges from every worker's files; the answering worker's
            # own state (config version, build); python_info (the same interpreter for all).
            self._exposed = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(self._exposed, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            PlatformCollector(registry=self._exposed)
            self._exposed.register(self.state)

    @property
    def multiprocess(self) -> bool:
        """Whether this process is one of several workers whose values render together."""
        return self.multiprocess_dir is not None

    def set_config_version(self, version: str, loaded_at: float) -> None:
        """Expose the running config version (exactly one label value at a time)."""
        self.state.config_version = version
        self.state.loaded_at = loaded_at

    def render(self) -> bytes:
        """The text exposition format: this process's metrics, or every worker's."""
        self.tally.flush()
        return generate_latest(self._exposed)


class _ProcessState(Collector):
    """What this process runs (config version, when it was loaded, the build), read at each
    scrape. A collector rather than gauges: a gauge's old label value would live on in the
    workers' shared files after a reload, and these describe the process that answers."""

    def __init__(self) -> None:
        self.config_version = ""
        self.loaded_at = 0.0

    def collect(self) -> Iterator[Metric]:
        """The three state metrics."""
        info = GaugeMetricFamily(
            "gateway_config_info", "The running configuration's version (value is always 1).",
            labels=["version"],
        )  # fmt: skip
        if self.config_version:
            info.add_metric([self.config_version], 1)
        yield info
        yield GaugeMetricFamily(
            "gateway_config_last_reload_timestamp_seconds",
            "When the running configuration was loaded (Unix time).", value=self.loaded_at,
        )  # fmt: skip
        yield InfoMetricFamily(
            "gateway_build", "Build information.",
            value={"version": __version__, "python": platform.python_version()},
        )  # fmt: skip
