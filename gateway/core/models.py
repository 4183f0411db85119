"""The frozen values every decision reads: routes, upstreams, scope rules, issuers, token rules.

They are built by `gateway.config` from the YAML files (and directly by tests and tools); each
default lives here and nowhere else.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yarl

from gateway.core.claim_headers import ClaimHeaders
from gateway.core.cors import CorsPolicy
from gateway.core.keys import KeySet
from gateway.core.params import Binding, PathPattern, has_params
from gateway.core.ratelimit import RateLimit

__all__ = [
    "AuthMode",
    "IssuerConfig",
    "LintCode",
    "Route",
    "RouteMode",
    "RoutesConfig",
    "ScopeFormat",
    "ScopeMode",
    "ScopeRule",
    "TokensConfig",
    "Upstream",
    "WebSocketRoute",
    "path_matches",
]


class ScopeFormat(enum.Enum):
    """How an issuer's scope claim holds its scopes."""

    STRING = "string"  # space-delimited (RFC 8693 section 4.2)
    LIST = "list"  # a JSON array of strings


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
    # The one claim scopes are read from, and its form; other scope-like claims grant nothing.
    # Entra ID: scp as a string; Okta: scp as a list.
    scope_claim: str = "scope"
    scope_format: ScopeFormat = ScopeFormat.STRING
    # Claims forwarded as X-Auth-* headers on every route this issuer's tokens pass.
    claims_to_headers: ClaimHeaders = ()

    @property
    def remote(self) -> bool:
        """Whether the keys come over HTTP (a JWKS URI or OIDC discovery)."""
        return self.jwks_uri is not None or self.discovery


@dataclass(frozen=True, slots=True, kw_only=True)
class TokensConfig:
    """Rules for every token, whatever its issuer."""

    leeway: float = 30.0
    max_lifetime: float | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an upstream's connections go, read once from its URL: the pool's key (``scheme``,
    ``host``, ``port``), the Host field the upstream receives (``authority``: an IPv6 address in
    brackets, the port only when it is not the scheme's default), and the path every forwarded
    path goes under (``base_path``, no trailing slash)."""

    scheme: str
    host: str
    port: int
    authority: str
    base_path: str

    @classmethod
    def of(cls, url: yarl.URL) -> Origin:
        """The origin of an upstream URL."""
        return cls(
            scheme=url.scheme,
            host=url.raw_host or "",
            port=url.port or 0,
            authority=url.host_port_subcomponent or "",
            base_path=url.raw_path.rstrip("/"),
        )


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
    # How the upstream routes paths, so the gateway decides on the same reading.
    case_insensitive: bool = False  # /ADMIN reaches its /admin handler
    ignore_suffix: bool = False  # /admin.json reaches its /admin handler
    origin: Origin = field(init=False, repr=False, compare=False)  # read from ``url``

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin.of(self.url))


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
    CORS_BROAD_ORIGIN = "cors_broad_origin"


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
class WebSocketRoute:
    """A route's ``websocket:`` settings: the route tunnels WebSocket upgrades.

    ``idle_timeout`` and ``max_message_size`` of None take gateway.yaml's ``limits``.
    """

    token_from_subprotocol: bool = False
    idle_timeout: float | None = None
    max_message_size: int | None = None


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
    rate_limit: RateLimit | None = None
    # Claims forwarded as X-Auth-* headers on this route (over the issuer's for the same name).
    claims_to_headers: ClaimHeaders = ()
    websocket: WebSocketRoute | None = None  # tunnels WebSocket upgrades (None: never)
    # Browser access from other origins (gateway.core.cors); None: the gateway leaves CORS alone.
    cors: CorsPolicy | None = None
    # Path parameters bound to claims (`gateway.core.params`): `bind: {tenant: tenant_id}`.
    bind: tuple[Binding, ...] = ()
    line: int = 0

    @property
    def scope(self) -> str:
        """The route's identity for its rate-limit buckets: methods, path, exactness (no two
        routes share one; the line number is left out, so moving a route keeps its counters)."""
        methods = ",".join(sorted(self.methods)) if self.methods is not None else "*"
        return f"{methods} {self.path}{' exact' if self.exact else ''}"

    def matches_path(self, path: str) -> bool:
        """Whether ``path`` is this route's path or under it, literally (the route table also
        applies its upstream's case and suffix rules)."""
        return path_matches(self.path, path, exact=self.exact)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutesConfig:
    """The contents of routes.yaml."""

    upstreams: Mapping[str, Upstream]
    routes: tuple[Route, ...]
    file: Path
    default_mode: RouteMode = RouteMode.ENFORCE  # `defaults: {mode: ...}`
    default_mode_line: int = 0
    default_rate_limit: RateLimit | None = None  # `defaults: {rate_limit: ...}`
    default_cors: CorsPolicy | None = None  # `defaults: {cors: ...}`
    default_cors_line: int = 0

    @property
    def mapped_claims(self) -> frozenset[str]:
        """Every claim some route's ``claims_to_headers`` names."""
        return frozenset(claim for route in self.routes for _, claim in route.claims_to_headers)


def path_matches(pattern: str, path: str, *, exact: bool = False) -> bool:
    """Whole-segment prefix match (``/orders`` matches ``/orders/7``, never ``/ordersX``); a
    ``{name}`` segment of the pattern matches any one segment."""
    if has_params(pattern):
        return PathPattern.parse(pattern).match(path, exact=exact) is not None
    if path == pattern:
        return True
    if exact:
        return False
    prefix = pattern if pattern.endswith("/") else pattern + "/"
    return path.startswith(prefix)
