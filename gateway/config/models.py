"""The frozen process settings (listeners, TLS, limits, remote-key fetching) and `Config`, which
bundles them with the core's route table and issuers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.core.models import IssuerConfig, RoutesConfig, TokensConfig

__all__ = [
    "AdminConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "JwksSettings",
    "LimitsConfig",
    "ListenConfig",
    "TlsConfig",
]


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
    """A host and port to listen on."""

    host: str
    port: int


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
    http_redirect: ListenConfig | None = None


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
    keepalive_timeout: float = 75.0  # also the deadline for a request's headers (slowloris)
    max_connections: int = 10_000
    max_body_size: int = 1024**3
    upstream_pool_size: int = 1000
    upstream_pool_size_per_host: int = 256
    upstream_connect_timeout: float = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration."""

    file: Path
    listen: ListenConfig
    admin: AdminConfig
    tls: TlsConfig | None
    issuers: tuple[IssuerConfig, ...]
    tokens: TokensConfig
    jwks: JwksSettings
    limits: LimitsConfig
    log_level: str
    drain_timeout: float
    routes: RoutesConfig
    version: str = ""  # a short hash of every config and key file: which table a replica runs
