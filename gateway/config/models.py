"""The frozen value objects that a validated configuration is made of."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yarl

from gateway.core.keys import KeySet

__all__ = [
    "AdminConfig",
    "AuthMode",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "IssuerConfig",
    "JwksSettings",
    "LimitsConfig",
    "LintCode",
    "ListenConfig",
    "Route",
    "RouteMode",
    "RoutesConfig",
    "ScopeMode",
    "ScopeRule",
    "TlsConfig",
    "TokensConfig",
    "Upstream",
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
class IssuerConfig:
    """A trusted token issuer with its algorithm allowlist and its keys."""

    name: str
    issuer: str
    algorithms: frozenset[str]
    audiences: tuple[str, ...] = ()
    keys: KeySet = field(default_factory=KeySet)
    key_files: tuple[Path, ...] = ()
    require_typ: str | None = None
    jwks_uri: yarl.URL | None = None
    discovery: bool = False
    allow_insecure_http: bool = False

    @property
    def remote(self) -> bool:
        """Whether the keys come over HTTP (a JWKS URI or OIDC discovery)."""
        return self.jwks_uri is not None or self.discovery


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
class TokensConfig:
    """Rules for every token, whatever its issuer."""

    leeway: float = 30.0
    max_lifetime: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """A service behind the gateway."""

    name: str
    url: yarl.URL
    timeout: float = 30.0
    ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    tls_verify: bool = True


class AuthMode(enum.Enum):
    """Whether a route needs a token."""

    REQUIRED = "required"
    NONE = "none"


class RouteMode(enum.Enum):
    """What a protected route does with its decision: refuse (``enforce``), or only log and
    count what it would have refused and forward the request anyway (``report``)."""

    ENFORCE = "enforce"
    REPORT = "report"


class LintCode(enum.Enum):
    """The route-table warnings of `gateway check`; a route may opt out of one (``lint_ignore``)."""

    REPORT_MODE = "report_mode"
    SHADOWED = "shadowed"
    PUBLIC_UNDER_PROTECTED = "public_under_protected"
    PROTECTED_UNDER_PUBLIC = "protected_under_public"
    METHOD_GAP = "method_gap"


class ScopeMode(enum.Enum):
    """How a route's scope list is read: all of them, or at least one."""

    ALL = "all"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class ScopeRule:
    """The scopes a route needs."""

    mode: ScopeMode = ScopeMode.ALL
    scopes: tuple[str, ...] = ()

    def satisfied_by(self, granted: frozenset[str]) -> bool:
        """Exact string matching: ``orders:readX`` does not satisfy ``orders:read``."""
        if self.mode is ScopeMode.ANY:
            return any(scope in granted for scope in self.scopes)
        return all(scope in granted for scope in self.scopes)

    def __str__(self) -> str:
        joined = " ".join(self.scopes)
        return f"any of: {joined}" if self.mode is ScopeMode.ANY else joined


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One entry of the route table."""

    path: str
    upstream: str
    methods: frozenset[str] | None = None
    auth: AuthMode = AuthMode.REQUIRED
    scopes: ScopeRule = ScopeRule()
    issuers: frozenset[str] | None = None
    strip_prefix: bool = False
    max_body_size: int | None = None
    forward_token: bool = False
    exact: bool = False
    mode: RouteMode = RouteMode.ENFORCE
    lint_ignore: frozenset[LintCode] = frozenset()
    line: int = 0

    def matches_path(self, path: str) -> bool:
        """Whole-segment prefix match (``/orders`` matches ``/orders/7``, never ``/ordersX``)."""
        if path == self.path:
            return True
        if self.exact:
            return False
        prefix = self.path if self.path.endswith("/") else self.path + "/"
        return path.startswith(prefix)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutesConfig:
    """The contents of routes.yaml."""

    upstreams: Mapping[str, Upstream]
    routes: tuple[Route, ...]
    file: Path
    default_mode: RouteMode = RouteMode.ENFORCE  # `defaults: {mode: ...}`
    default_mode_line: int = 0


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
