"""Test support: real keys, a token factory, a recording upstream and config writers."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as _ec
from cryptography.hazmat.primitives.asymmetric import ed25519 as _ed25519
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa
from jwt.algorithms import get_default_algorithms
from multidict import CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.keys import public_jwk
from gateway.server.log_fields import ECS_VERSION, FIELDS, matches_type
from gateway.server.metrics import Metrics

ISSUER = "https://auth.example.test"
AUDIENCE = "example-api"
DEV_ISSUER = "dev"
DEV_SECRET = "dev-secret-that-is-long-enough-for-hs256-0123456789"
_ALGORITHMS = get_default_algorithms()


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: Mapping[str, Any], payload: Mapping[str, Any] | bytes, key: Any, alg: str) -> str:
    """A compact JWS over exactly this header and payload (bytes: sent verbatim), signed with
    ``alg`` and ``key`` (no PyJWT header or claim checks)."""
    header_segment = b64url(json.dumps(header).encode())
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    payload_segment = b64url(body)
    signature = _ALGORITHMS[alg].sign(f"{header_segment}.{payload_segment}".encode(), key)
    return f"{header_segment}.{payload_segment}.{b64url(signature)}"


@dataclass(frozen=True)
class TestKeys:
    """Every key the tests sign with: the configured ones and an attacker's."""

    __test__ = False  # a helper, not a pytest test class

    rsa: _rsa.RSAPrivateKey
    ec: _ec.EllipticCurvePrivateKey
    ed: _ed25519.Ed25519PrivateKey
    pem_rsa: _rsa.RSAPrivateKey  # configured as a PEM file: no kid, tried for any kid
    attacker: _rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> TestKeys:
        """Fresh keys (RSA 2048, P-256, Ed25519)."""
        return cls(
            rsa=_rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec=_ec.generate_private_key(_ec.SECP256R1()),
            ed=_ed25519.Ed25519PrivateKey.generate(),
            pem_rsa=_rsa.generate_private_key(public_exponent=65537, key_size=2048),
            attacker=_rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def jwks(self) -> dict[str, Any]:
        """The configured JWKS: k1 (RS256), e1 (ES256), o1 (EdDSA)."""
        return {
            "keys": [
                {**public_jwk(self.rsa.public_key()), "kid": "k1", "alg": "RS256", "use": "sig"},
                {**public_jwk(self.ec.public_key()), "kid": "e1", "alg": "ES256", "use": "sig"},
                {**public_jwk(self.ed.public_key()), "kid": "o1", "alg": "EdDSA", "use": "sig"},
            ]
        }

    def public_pem(self, key: _rsa.RSAPrivateKey | None = None) -> bytes:
        """The PEM public key of ``key`` (default: the PEM-configured RSA key)."""
        return (
            (key or self.pem_rsa)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


@dataclass
class TokenFactory:
    """Mints tokens; the defaults make the spec's good token G."""

    keys: TestKeys

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """G's claims with overrides applied (a value of ``...`` removes the claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + 300,
            "scope": "orders:read",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not ...}

    def good(self, **overrides: Any) -> str:
        """G (RS256, kid k1) with claim overrides."""
        return self.sign(self.claims(**overrides))

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        alg: str = "RS256",
        key: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign ``claims`` with PyJWT (default key: RSA k1)."""
        default_kid = {"RS256": "k1", "ES256": "e1", "EdDSA": "o1"}.get(alg)
        signing_key = key
        if signing_key is None:
            signing_key = {
                "RS256": self.keys.rsa,
                "ES256": self.keys.ec,
                "EdDSA": self.keys.ed,
            }.get(alg, DEV_SECRET.encode())
        header: dict[str, Any] = {"kid": default_kid} if default_kid and key is None else {}
        header.update(headers or {})
        return jwt.encode(dict(claims), signing_key, algorithm=alg, headers=header or None)

    def dev(self, **overrides: Any) -> str:
        """An HS256 token for the ``dev`` issuer."""
        claims = self.claims(iss=DEV_ISSUER, aud=..., **overrides)
        return jwt.encode(claims, DEV_SECRET.encode(), algorithm="HS256")

    @staticmethod
    def raw(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes = b"") -> str:
        """A compact JWS built by hand (for forgeries PyJWT would refuse to write)."""
        return ".".join(
            [
                b64url(json.dumps(header).encode()),
                b64url(json.dumps(claims).encode()),
                b64url(signature),
            ]
        )


@dataclass
class Recorded:
    """One request as the upstream saw it."""

    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class RecordingUpstream:
    """A real upstream that records every request and echoes what it saw as JSON."""

    requests: list[Recorded] = field(default_factory=list)

    def app(self) -> web.Application:
        """The aiohttp application to serve."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.raw_path, request.headers, body))
        return web.json_response(
            {"path": request.raw_path, "headers": dict(request.headers), "body_bytes": len(body)},
            headers={"X-Upstream": "recording"},
        )

    @property
    def last(self) -> Recorded:
        """The most recent request (fails the test when there is none)."""
        assert self.requests, "the upstream received no request"
        return self.requests[-1]


# -- route tables -------------------------------------------------------------------------------
# routes.yaml text is a format string: `write_config` fills in ``{upstream}`` (the recording
# upstream), so literal braces are doubled. Tables are built from the pieces below, in order.

ORDERS_UPSTREAM = '  orders: {{url: "{upstream}", timeout: 2s}}\n'

ORDERS_READ_WRITE = """\
  - path: /orders
    upstream: orders
    methods: [GET, HEAD]
    scopes: [orders:read]
  - path: /orders
    upstream: orders
    methods: [POST, PUT, PATCH, DELETE]
    scopes: [orders:write]
"""
"""The sample ``/orders`` routes: GET/HEAD need ``orders:read``, writes ``orders:write``."""

ORDERS_HEALTH = """\
  - path: /orders/health
    upstream: orders
    auth: none
"""
"""The sample public ``/orders/health`` route."""

PUBLIC_CATCH_ALL = """\
  - path: /
    upstream: orders
    auth: none
  - path: /admin
    upstream: orders
    scopes: [admin]
"""
"""A public catch-all ``/`` next to a protected ``/admin``: any request the gateway misreads as
another path would be forwarded (or reach ``/admin`` without its scope check)."""


def route_table(*routes: str, upstreams: str = "") -> str:
    """A routes.yaml format string: the ``orders`` upstream plus ``upstreams`` lines, then
    ``routes`` in the order given."""
    return "upstreams:\n" + ORDERS_UPSTREAM + upstreams + "routes:\n" + "".join(routes)


def upstream_line(name: str, url: str, *, timeout: str = "2s") -> str:
    """An ``upstreams:`` entry for ``route_table(upstreams=...)``."""
    return f'  {name}: {{{{url: "{url}", timeout: {timeout}}}}}\n'


def public_route(path: str, upstream: str = "orders") -> str:
    """A route entry for ``route_table``: ``path`` to ``upstream`` with ``auth: none``."""
    return f"  - path: {path}\n    upstream: {upstream}\n    auth: none\n"


def side_upstream_routes(name: str, url: str, *, timeout: str = "2s") -> str:
    """The public ``/orders/health`` on the recording upstream, and ``/<name>`` on a second
    upstream ``name`` at ``url`` (a socket-level or stalling upstream a test runs itself)."""
    return route_table(
        ORDERS_HEALTH,
        public_route(f"/{name}", name),
        upstreams=upstream_line(name, url, timeout=timeout),
    )


DEFAULT_ROUTES = route_table(ORDERS_READ_WRITE, ORDERS_HEALTH)
"""The spec's sample routes (no catch-all, so an unmatched path is a 404)."""

CATCH_ALL_ROUTES = route_table(PUBLIC_CATCH_ALL, ORDERS_READ_WRITE, ORDERS_HEALTH)
"""The sample routes behind a public catch-all ``/`` and a protected ``/admin``."""

REPORTS = """\
  - path: /reports
    upstream: orders
    methods: [GET]
    scopes: {{any: [reports:read, reports:admin]}}
"""
"""A GET-only ``/reports`` that any of two scopes opens."""

REPORTS_ROUTES = route_table(ORDERS_READ_WRITE, ORDERS_HEALTH, REPORTS)
"""The sample routes plus the GET-only ``/reports``."""


# -- gateway.yaml -------------------------------------------------------------------------------
# Also format strings: ``{issuer}``, ``{audience}`` and ``{dev_issuer}`` are filled in.

GATEWAY_HEAD = """\
listen: {{host: 127.0.0.1, port: 0}}
admin: {{host: 127.0.0.1, port: 0}}
routes: routes.yaml
"""
"""Both listeners on ephemeral ports of 127.0.0.1, and routes from routes.yaml."""

DEV_ISSUER_ENTRY = """\
  - name: dev
    issuer: {dev_issuer}
    algorithms: [HS256]
    secret: ${{ACCESS_TOKEN_SECRET}}
"""
"""The ``dev`` issuer: HS256 with the secret from ``ACCESS_TOKEN_SECRET`` (see `ENVIRON`)."""

LEEWAY = "tokens:\n  leeway: 30s\n"


def local_issuer(
    *,
    algorithms: str = "RS256, ES256, EdDSA",
    keys: str = "keys/public.pem, keys/jwks.json",
    extra: str = "",
) -> str:
    """The ``issuers:`` entry ``local`` (`ISSUER` for `AUDIENCE`, the key files `write_config`
    writes), with other ``algorithms``/``keys`` and ``extra`` member lines if given."""
    head = "  - name: local\n    issuer: {issuer}\n    audiences: [{audience}]\n"
    return head + f"    algorithms: [{algorithms}]\n    keys: [{keys}]\n" + extra


def gateway_config(*issuers: str, extra: str = LEEWAY) -> str:
    """A gateway.yaml format string: `GATEWAY_HEAD`, the ``issuers`` entries, then ``extra``."""
    return GATEWAY_HEAD + "issuers:\n" + "".join(issuers) + extra


DEFAULT_GATEWAY = gateway_config(local_issuer(), DEV_ISSUER_ENTRY)
"""The sample gateway.yaml: the ``local`` and ``dev`` issuers, 30 s leeway."""

NO_AUTH_THROTTLE = "rate_limits:\n  auth_failures: false\n"
"""Turns the failed-authentication throttle off: for tests that measure what the token checks
themselves do under a flood of bad tokens from one address (the throttle would answer 429)."""

UNTHROTTLED_GATEWAY = gateway_config(
    local_issuer(), DEV_ISSUER_ENTRY, extra=LEEWAY + NO_AUTH_THROTTLE
)
"""`DEFAULT_GATEWAY` without the failed-authentication throttle."""


def write_config(
    directory: Path,
    keys: TestKeys,
    *,
    upstream: str = "http://127.0.0.1:9",
    routes: str = DEFAULT_ROUTES,
    gateway: str = DEFAULT_GATEWAY,
) -> Path:
    """Write gateway.yaml, routes.yaml and key files; return gateway.yaml's path.

    ``routes`` and ``gateway`` are format strings: ``{upstream}``, ``{issuer}``, ``{audience}``
    and ``{dev_issuer}`` are filled in.
    """
    (directory / "keys").mkdir(exist_ok=True)
    (directory / "keys" / "public.pem").write_bytes(keys.public_pem())
    (directory / "keys" / "jwks.json").write_text(json.dumps(keys.jwks()))
    values = {
        "upstream": upstream,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "dev_issuer": DEV_ISSUER,
    }
    (directory / "routes.yaml").write_text(routes.format(**values))
    path = directory / "gateway.yaml"
    path.write_text(gateway.format(**values))
    return path


ENVIRON = {"ACCESS_TOKEN_SECRET": DEV_SECRET}


def identity_headers(headers: Mapping[str, str]) -> list[str]:
    """The ``X-Auth-*`` header names in ``headers`` (the gateway's identity headers)."""
    return [name for name in headers if name.lower().startswith("x-auth-")]


def metric_sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of one sample in ``metrics``' exposition text (0 when absent)."""
    for family in text_string_to_metric_families(metrics.render().decode()):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    return 0.0


def log_line_problems(line: Mapping[str, Any]) -> list[str]:
    """What is wrong with one JSON log line against the field catalogue
    (`gateway.server.log_fields`): keys it does not list, values not of the listed type, and a
    missing ``ecs.version`` or ``process.pid``. Empty for a good line."""
    problems = [
        f"{key}: not in the catalogue" if key not in FIELDS else f"{key}: not {FIELDS[key]}"
        for key, value in line.items()
        if key not in FIELDS or not matches_type(value, FIELDS[key])
    ]
    if line.get("ecs.version") != ECS_VERSION:
        problems.append(f"ecs.version is {line.get('ecs.version')!r}")
    if not isinstance(line.get("process.pid"), int):
        problems.append("process.pid missing")
    return problems


def resolve_now(app: web.Application, request: web.Request) -> web.UrlMappingMatchInfo:
    """aiohttp's router resolution of ``request``, driven by hand (``resolve`` never awaits
    anything), for the differential tests that ask real routers how they read a path."""
    coroutine = app.router.resolve(request)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("resolve suspended")  # pragma: no cover
