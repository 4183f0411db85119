"""The frozen process settings (listeners, TLS, limits, remote-key fetching) and `Config`, which
bundles them with the core's route table and issuers.

Every default of the config files lives here (and in `gateway.core.models`) and nowhere else: the
readers pass a field only when its key is in the file. `gateway.config` re-exports these names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.clientip import TrustedProxies
from gateway.core.models import IssuerConfig, RoutesConfig, TokensConfig
from gateway.core.ratelimit import AuthFailureSettings
from gateway.core.resource_metadata import ProtectedResource


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    """The configuration is not usable; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = tuple(issues)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenConfig:
    """A host and port to listen on (the public listener's, by default)."""

    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRedirectConfig(ListenConfig):
    """The plain-HTTP listener that only redirects to HTTPS (``tls.http_redirect``)."""

    host: str = ""  # every interface
    port: int = 0  # a free port


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfig:
    """The admin listener (/healthz, /readyz): never on the public port."""

    host: str = "127.0.0.1"
    port: int = 9090


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """HTTPS on the public listener, and optionally a plain-HTTP listener that only redirects."""

    cert: Path
    key: Path
    hsts: str | None = "max-age=31536000"
    http_redirect: HttpRedirectConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JwksSettings:
    """How remote key sets are fetched and cached (for every remote issuer)."""

    timeout: float = 5.0
    max_bytes: int = 1024 * 1024
    default_ttl: float = 300.0
    min_ttl: float = 30.0
    max_ttl: float = 86400.0
    max_stale: float = 86400.0
    kid_miss_cooldown: float = 10.0
    kid_miss_wait: float = 2.0
    retry_min: float = 1.0
    retry_max: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """Server and client limits, explicit so that no library default decides them."""

    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 128
    keepalive_timeout: float = 75.0  # idle time between requests on a kept-alive connection
    # From a request's first byte to the end of its head (slowloris), whatever keep-alive allows.
    header_timeout: float = 10.0
    max_connections: int = 10_000
    max_body_size: int = 1024**3
    upstream_pool_size: int = 1000
    upstream_pool_size_per_host: int = 256
    upstream_connect_timeout: float = 5.0
    # WebSocket tunnels: closed after this long without a message either way; largest message.
    websocket_idle_timeout: float = 300.0
    websocket_max_message_size: int = 1024 * 1024


class LimitBackend(enum.Enum):
    """Where rate-limit counters live."""

    MEMORY = "memory"  # per process (each --workers process and each replica counts alone)
    REDIS = "redis"  # shared by every process and replica pointed at the same Redis


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitSettings:
    """``rate_limits:`` in gateway.yaml: the counters' backend and the failed-auth throttle.

    The limits themselves are per route, in routes.yaml. ``timeout`` bounds everything one
    decision may wait for Redis (connecting, a pooled connection, the round trip); after a
    failure the backend is left alone for ``backoff`` seconds (decisions take the route's
    ``on_backend_error`` at once), then tried again.
    """

    backend: LimitBackend = LimitBackend.MEMORY
    url: str | None = field(default=None, repr=False)  # may carry a password
    timeout: float = 0.1
    pool_size: int = 32
    backoff: float = 1.0
    key_prefix: str = "gateway:rl:"
    max_entries: int = 100_000  # memory backend: buckets kept per process
    auth_failures: AuthFailureSettings | None = field(default_factory=AuthFailureSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingSettings:
    """``tracing:`` in gateway.yaml: OpenTelemetry spans exported over OTLP/HTTP (absent: off).

    ``endpoint`` is the collector's full traces URL (``.../v1/traces``). Root spans are sampled
    at ``sampling_ratio``; a request that continues an incoming trace follows its sampled flag.
    """

    endpoint: str
    service_name: str = "gateway"
    sampling_ratio: float = 1.0
    # Sent with every export (a vendor's API key, say): never shown.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration."""

    file: Path
    routes: RoutesConfig
    listen: ListenConfig = field(default_factory=ListenConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    tls: TlsConfig | None = None
    issuers: tuple[IssuerConfig, ...] = ()
    tokens: TokensConfig = field(default_factory=TokensConfig)
    jwks: JwksSettings = field(default_factory=JwksSettings)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    tracing: TracingSettings | None = None
    log_level: str = "info"
    drain_timeout: float = 20.0
    # More client header names (lower case) never forwarded, beside the built-in lists.
    strip_headers: frozenset[str] = frozenset()
    # Proxies whose forwarding header names the client (client.ip, per-IP limits); None: the peer.
    trusted_proxies: TrustedProxies | None = None
    # RFC 9728 protected-resource metadata, served and named in challenges; None: off.
    protected_resource: ProtectedResource | None = None
    version: str = ""  # a short hash of every config and key file: which table a replica runs
